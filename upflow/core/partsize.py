"""Part-size math for S3 multipart uploads (pure; no I/O).

Like s3transfer's ``ChunksizeAdjuster``: start from the product's minimum part
size and grow it, in whole MiB, until the object fits in the part budget.
"""

from __future__ import annotations

from dataclasses import dataclass

from upflow.definition import S3_MAX_OBJECT_SIZE, S3_MAX_PART_SIZE, Limits, MiB


class PartPlanError(ValueError):
    """The object cannot be uploaded under these limits."""


@dataclass(frozen=True)
class PartPlan:
    part_size: int
    part_count: int
    object_size: int

    def part_range(self, part_number: int) -> tuple[int, int]:
        """``[start, end)`` byte offsets of 1-based ``part_number``."""
        if not 1 <= part_number <= self.part_count:
            raise PartPlanError(f"part {part_number} is outside 1..{self.part_count}")
        start = (part_number - 1) * self.part_size
        return start, min(start + self.part_size, self.object_size)

    def expected_size(self, part_number: int) -> int:
        start, end = self.part_range(part_number)
        return end - start


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def plan_parts(object_size: int, limits: Limits) -> PartPlan:
    """Choose the part size for ``object_size`` bytes.

    At least ``limits.min_part_size``, rounded up to whole MiB, and large
    enough that the part count stays within ``limits.max_parts``. An empty
    object would still need one (empty) part, but upflow refuses empty files,
    so 0 is an error here.
    """
    if object_size <= 0:
        raise PartPlanError("size must be a positive number of bytes")
    if object_size > limits.max_upload_size or object_size > S3_MAX_OBJECT_SIZE:
        raise PartPlanError(f"size {object_size} exceeds the maximum of {limits.max_upload_size} bytes")
    smallest_fitting = _ceil_div(object_size, limits.max_parts)
    part_size = max(limits.min_part_size, _ceil_div(smallest_fitting, MiB) * MiB)
    if part_size > S3_MAX_PART_SIZE:
        raise PartPlanError("object needs parts larger than S3's 5 GiB part maximum")
    return PartPlan(
        part_size=part_size, part_count=_ceil_div(object_size, part_size), object_size=object_size
    )

from __future__ import annotations

import pytest

from upflow.core.partsize import PartPlanError, plan_parts
from upflow.definition import S3_MAX_OBJECT_SIZE, TB, GiB, Limits, MiB

LIMITS = Limits()


@pytest.mark.parametrize("size", [0, -1])
def test_non_positive_sizes_are_refused(size: int) -> None:
    with pytest.raises(PartPlanError):
        plan_parts(size, LIMITS)


def test_one_byte_is_one_minimum_part() -> None:
    plan = plan_parts(1, LIMITS)
    assert (plan.part_size, plan.part_count) == (8 * MiB, 1)
    assert plan.part_range(1) == (0, 1)


def test_exactly_8_mib_is_one_part_and_one_more_byte_is_two() -> None:
    assert plan_parts(8 * MiB, LIMITS).part_count == 1
    plan = plan_parts(8 * MiB + 1, LIMITS)
    assert plan.part_count == 2
    assert plan.expected_size(2) == 1


def test_ten_thousand_minimum_parts_fit_exactly() -> None:
    plan = plan_parts(10_000 * 8 * MiB, LIMITS)
    assert (plan.part_size, plan.part_count) == (8 * MiB, 10_000)


def test_one_byte_over_ten_thousand_parts_grows_the_part_by_a_whole_mib() -> None:
    plan = plan_parts(10_000 * 8 * MiB + 1, LIMITS)
    assert plan.part_size == 9 * MiB
    assert plan.part_count <= 10_000
    assert plan.part_size % MiB == 0


def test_two_terabytes_fit_in_ten_thousand_whole_mib_parts() -> None:
    plan = plan_parts(2 * TB, LIMITS)
    assert plan.part_count <= 10_000
    assert plan.part_size % MiB == 0
    assert plan.part_size * plan.part_count >= 2 * TB
    assert (plan.part_size - MiB) * 10_000 < 2 * TB  # the smallest whole-MiB size that fits
    last_start, last_end = plan.part_range(plan.part_count)
    assert last_end == 2 * TB and 0 < last_end - last_start <= plan.part_size


def test_the_s3_maximum_object_fits_when_the_cap_allows_it() -> None:
    limits = Limits(max_upload_size=S3_MAX_OBJECT_SIZE)
    plan = plan_parts(S3_MAX_OBJECT_SIZE, limits)
    assert plan.part_count <= 10_000 and plan.part_size <= 5 * GiB


def test_over_the_cap_is_refused() -> None:
    with pytest.raises(PartPlanError):
        plan_parts(2 * TB + 1, LIMITS)


def test_a_cap_above_s3s_maximum_is_a_configuration_error() -> None:
    with pytest.raises(ValueError):
        Limits(max_upload_size=S3_MAX_OBJECT_SIZE + 1)


@pytest.mark.parametrize("part", [0, 2])
def test_part_numbers_outside_the_plan_have_no_range(part: int) -> None:
    with pytest.raises(PartPlanError):
        plan_parts(100, LIMITS).part_range(part)

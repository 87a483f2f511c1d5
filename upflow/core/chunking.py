"""The chunk plan: cut ``[0, size)`` into byte ranges processed by parallel workers.

Pure arithmetic; see ``docs/design.md`` ("The chunk rule").
"""

from __future__ import annotations

from dataclasses import dataclass

from upflow.definition import Limits, MiB


@dataclass(frozen=True)
class ChunkRange:
    """One chunk: the raw object bytes ``[start, end)``."""

    index: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def chunk_size_for(object_size: int, limits: Limits) -> int:
    """``limits.chunk_size``, grown so the plan has at most ``limits.max_chunks`` chunks.

    A grown size is rounded up to whole MiB (the default size is used as is).
    """
    if object_size < 0:
        raise ValueError("object_size must be >= 0")
    if limits.chunk_size <= 0 or limits.max_chunks <= 0:
        raise ValueError("chunk_size and max_chunks must be positive")
    size = limits.chunk_size
    if _ceil_div(object_size, size) <= limits.max_chunks:
        return size
    needed = _ceil_div(object_size, limits.max_chunks)
    return _ceil_div(needed, MiB) * MiB


def chunk_count(object_size: int, chunk_size: int) -> int:
    """Number of chunks of ``chunk_size`` bytes covering ``object_size`` bytes (0 for an empty object)."""
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    if object_size < 0:
        raise ValueError("object_size must be >= 0")
    return _ceil_div(object_size, chunk_size)


def plan_chunks(
    object_size: int, chunk_size: int, first_index: int = 0, count: int | None = None
) -> list[ChunkRange]:
    """A page of the plan: chunks ``first_index .. first_index + count - 1`` (clipped to the plan)."""
    total = chunk_count(object_size, chunk_size)
    if first_index < 0:
        raise ValueError("first_index must be >= 0")
    last = total if count is None else min(total, first_index + max(0, count))
    return [
        ChunkRange(i, i * chunk_size, min(object_size, (i + 1) * chunk_size))
        for i in range(first_index, last)
    ]

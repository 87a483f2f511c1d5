from __future__ import annotations

import itertools

import pytest

from upflow.core.chunking import ChunkRange, chunk_count, chunk_size_for, plan_chunks
from upflow.definition import TB, Limits, MiB

L = Limits()


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, 8 * MiB),
        (1, 8 * MiB),
        (8 * MiB, 8 * MiB),
        (10_000 * 8 * MiB, 8 * MiB),
        (10_000 * 8 * MiB + 1, 9 * MiB),
        (10_001 * 8 * MiB, 9 * MiB),
    ],
)
def test_chunk_size_for(size: int, expected: int) -> None:
    assert chunk_size_for(size, L) == expected
    assert chunk_count(size, expected) <= L.max_chunks


def test_two_terabytes() -> None:
    size = 2 * TB
    cs = chunk_size_for(size, L)
    assert cs % MiB == 0
    assert chunk_count(size, cs) <= 10_000
    assert chunk_count(size, cs - MiB) > 10_000  # the smallest whole-MiB size that fits
    assert cs == 191 * MiB


def test_counts() -> None:
    assert chunk_count(0, 8 * MiB) == 0
    assert chunk_count(1, 8 * MiB) == 1
    assert chunk_count(8 * MiB, 8 * MiB) == 1
    assert chunk_count(8 * MiB + 1, 8 * MiB) == 2
    with pytest.raises(ValueError):
        chunk_count(1, 0)


def test_plan_and_paging() -> None:
    assert plan_chunks(0, 10) == []
    assert plan_chunks(1, 10) == [ChunkRange(0, 0, 1)]
    full = plan_chunks(95, 10)
    assert [c.index for c in full] == list(range(10))
    assert full[-1] == ChunkRange(9, 90, 95)
    assert all(a.end == b.start for a, b in itertools.pairwise(full))
    pages = [plan_chunks(95, 10, first, 3) for first in range(0, 10, 3)]
    assert [c for p in pages for c in p] == full
    assert plan_chunks(95, 10, 12, 3) == []
    cs = chunk_size_for(2 * TB, L)
    n = chunk_count(2 * TB, cs)
    big = plan_chunks(2 * TB, cs, n - 1, 1000)
    assert len(big) == 1 and big[0].end == 2 * TB and big[0].start == (n - 1) * cs

"""bench/browser_upload.py: its file, the bare page's checksums and the order of the clients."""

from __future__ import annotations

import zlib
from base64 import b64decode
from pathlib import Path

import pytest

from bench.browser_upload import CLIENTS, part_checksums, round_order, write_csv
from upflow.core.checker import check_file
from upflow.definition import Limits, MiB


@pytest.mark.parametrize("size", [27, 100, 4096, MiB, MiB + 13, 3 * MiB + 1])
def test_the_file_has_exactly_the_size_asked(tmp_path: Path, size: int) -> None:
    path = tmp_path / "bench.csv"
    write_csv(path, size)
    assert path.stat().st_size == size


@pytest.mark.parametrize("size", [100, MiB, MiB + 13, MiB + 57])
def test_every_row_of_the_file_is_valid(tmp_path: Path, size: int) -> None:
    """The page's preview must accept it, and the last row, stretched to fit, is valid too."""
    path = tmp_path / "bench.csv"
    write_csv(path, size)
    summary = check_file(path, None, Limits()).summary
    assert summary.rows_total > 0
    assert summary.rows_invalid == 0


def test_checksums_are_s3_s_crc32_of_each_part(tmp_path: Path) -> None:
    path = tmp_path / "parts.bin"
    data = bytes(range(256)) * 40  # 10,240 bytes: parts of 4096, 4096, 2048
    path.write_bytes(data)
    sums = part_checksums(path, 4096)
    assert len(sums) == 3
    for index, value in enumerate(sums):
        part = data[index * 4096 : (index + 1) * 4096]
        assert int.from_bytes(b64decode(value), "big") == zlib.crc32(part)


def test_each_round_runs_every_client_once_and_the_order_alternates() -> None:
    assert round_order(0) == CLIENTS
    assert round_order(1) == CLIENTS[::-1]
    assert round_order(2) == CLIENTS
    assert all(sorted(round_order(r)) == sorted(CLIENTS) for r in range(4))

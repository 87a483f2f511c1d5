"""Error files: per-chunk CSV with chunk-local line offsets, and the final report with file lines."""

from __future__ import annotations

import csv
import io
import typing
from collections.abc import Iterable, Sequence

from upflow.core.rules import RowError

REPORT_HEADER = ("line", "column", "code", "message", "value")
CHUNK_HEADER = ("line_offset", "column", "code", "message", "value")


def encode_chunk_errors(errors: Sequence[RowError]) -> bytes:
    """UTF-8 CSV (RFC 4180 quoting) of a chunk's errors, header first."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CHUNK_HEADER)
    for e in errors:
        w.writerow((e.line_offset, e.column, e.code, e.message, e.value))
    return buf.getvalue().encode("utf-8")


def decode_chunk_errors(data: bytes) -> list[RowError]:
    """Inverse of :func:`encode_chunk_errors`; raises ``ValueError`` on a foreign file."""
    if not data:
        return []
    rows = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    header = next(rows, None)
    if header is None:
        return []
    if tuple(header) != CHUNK_HEADER:
        raise ValueError(f"not a chunk error file (header {header!r})")
    out: list[RowError] = []
    for r in rows:
        if len(r) != len(CHUNK_HEADER):
            raise ValueError(f"chunk error row with {len(r)} fields")
        out.append(RowError(int(r[0]), r[1], r[2], r[3], r[4]))
    return out


def write_report(out: typing.TextIO, chunks: Iterable[tuple[int, Sequence[RowError]]]) -> int:
    """Write the final report: ``line`` = 1 + newlines before the chunk + the error's line offset.

    ``chunks`` must come in chunk order; returns the number of error rows written.
    """
    w = csv.writer(out, lineterminator="\n")
    w.writerow(REPORT_HEADER)
    n = 0
    for newlines_before, errors in chunks:
        for e in errors:
            w.writerow((1 + newlines_before + e.line_offset, e.column, e.code, e.message, e.value))
            n += 1
    return n

"""Error files: per-chunk CSV with chunk-local line offsets, and the final report with file lines.

Every CSV a person opens (the error report here, the totals CSV) starts with a UTF-8 BOM, so
spreadsheets read it as UTF-8, and passes its cells through :func:`safe_cell` (OWASP's CSV
injection guidance): the values come from the uploaded file, and a cell such as
``=HYPERLINK(...)`` must open as text, not as a formula.
"""

from __future__ import annotations

import csv
import io
import re
import typing
from collections.abc import Iterable, Sequence

from upflow.core.rules import RowError

REPORT_HEADER = ("line", "column", "code", "message", "value")
UTF8_BOM = "\ufeff"
# A spreadsheet starts a formula at these (tab and CR too: some strip them first).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A plain decimal number is no formula: "-12.50" stays a number, not text.
_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def safe_cell(text: str) -> str:
    """``text`` as a spreadsheet must show it: a leading ``'`` keeps a would-be formula text."""
    if text.startswith(_FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


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
    """Write the final report: ``line`` = 1 + line breaks before the chunk + the error's line offset.

    ``chunks`` must come in chunk order; returns the number of error rows written.
    """
    out.write(UTF8_BOM)
    w = csv.writer(out, lineterminator="\n")
    w.writerow(REPORT_HEADER)
    n = 0
    for line_breaks_before, errors in chunks:
        for e in errors:
            w.writerow(
                (
                    1 + line_breaks_before + e.line_offset,
                    safe_cell(e.column),
                    e.code,
                    safe_cell(e.message),
                    safe_cell(e.value),
                )
            )
            n += 1
    return n

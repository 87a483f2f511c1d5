"""Error files: per-chunk CSV with chunk-local line offsets, and the final report with file lines.

Both are written as the errors come and read back as they arrive — a chunk's or an upload's
errors are never all in memory: a chunk worker encodes into an S3 multipart upload
(:class:`ChunkErrorWriter`), the finaliser decodes each chunk's file from its GET stream
(:func:`iter_chunk_errors`) into the report's own multipart upload (:class:`ReportWriter`),
and ``upflow check`` writes the report to a file the same way.

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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Protocol

from upflow.core.rules import RowError, make_errors
from upflow.definition import S3_MAX_PART_SIZE, S3_MAX_PARTS, MiB

REPORT_HEADER = ("line", "column", "code", "message", "value")
UTF8_BOM = "\ufeff"
# A spreadsheet starts a formula at these (tab and CR too: some strip them first).
_FORMULA_STARTS = frozenset("=+-@\t\r")
# A plain decimal number is no formula: "-12.50" stays a number, not text.
_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")

CHUNK_HEADER = ("line_offset", "column", "code", "message", "value")
# A report row is at most this many bytes longer than its row in the chunk's file: the file
# line (under 10**20: at most 19 more digits than the offset) and a ``'`` before each of the
# three cells from the file (a ``'`` never changes whether a cell is quoted).
REPORT_ROW_GROWTH = 22
# Rows decoded from a chunk's error file per batch handed on.
DECODE_BATCH_ROWS = 4096

# An error as a row: (line offset, as an int or its digits, column, code, message, value), from
# a RowError's fields or as a chunk's error file holds it.
ChunkRow = Sequence[Any]
_CHUNK_ROW = attrgetter("line_offset", "column", "code", "message", "value")


class ByteSink(Protocol):
    """Where encoded bytes go: a file, ``io.BytesIO``, ``upflow.aws.s3.ObjectWriter``."""

    def write(self, data: bytes, /) -> object: ...


def safe_cell(text: str) -> str:
    """``text`` as a spreadsheet must show it: a leading ``'`` keeps a would-be formula text."""
    if text[:1] in _FORMULA_STARTS and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def _csv_text(rows: Iterable[Sequence[object]]) -> str:
    """``rows`` as CSV text (RFC 4180 quoting, ``\\n`` line ends)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


class ChunkErrorWriter:
    """An :class:`upflow.core.rules.ErrorSink` that writes a chunk's error file into ``out``
    as the errors come: the header, then one UTF-8 CSV row per error. ``rows`` and ``size``
    (bytes) count what was written; the bytes are a pure function of the errors."""

    def __init__(self, out: ByteSink) -> None:
        self._out = out
        self.rows = 0
        self.size = 0
        self._emit(_csv_text([CHUNK_HEADER]))

    def write(self, errors: Sequence[RowError]) -> None:
        if errors:
            self._emit(_csv_text(map(_CHUNK_ROW, errors)))
            self.rows += len(errors)

    def _emit(self, text: str) -> None:
        data = text.encode("utf-8")
        self._out.write(data)
        self.size += len(data)


def encode_chunk_errors(errors: Sequence[RowError]) -> bytes:
    """A chunk's whole error file in memory (what :class:`ChunkErrorWriter` streams)."""
    buf = io.BytesIO()
    ChunkErrorWriter(buf).write(errors)
    return buf.getvalue()


def iter_chunk_rows(
    stream: typing.BinaryIO, batch_rows: int = DECODE_BATCH_ROWS
) -> Iterator[list[list[str]]]:
    """The rows of a chunk's error file (``line_offset``, ``column``, ``code``, ``message``,
    ``value``, as text), decoded from ``stream`` as it is read, in batches of at most
    ``batch_rows``. Raises ``ValueError`` on a foreign file. ``stream`` is left open."""
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    try:
        rows = csv.reader(text)
        header = next(rows, None)
        if header is None:
            return
        if tuple(header) != CHUNK_HEADER:
            raise ValueError(f"not a chunk error file (header {header!r})")
        width = len(CHUNK_HEADER)
        batch: list[list[str]] = []
        for r in rows:
            if len(r) != width:
                raise ValueError(f"chunk error row with {len(r)} fields")
            batch.append(r)
            if len(batch) >= batch_rows:
                yield batch
                batch = []
        if batch:
            yield batch
    finally:
        text.detach()  # the caller's stream stays theirs to close


def chunk_row_errors(rows: Sequence[Sequence[str]]) -> list[RowError]:
    """The ``RowError``s of chunk file rows."""
    return make_errors(
        (int(r[0]) for r in rows),
        (r[1] for r in rows),
        (r[2] for r in rows),
        (r[3] for r in rows),
        (r[4] for r in rows),
        len(rows),
    )


def iter_chunk_errors(
    stream: typing.BinaryIO, batch_rows: int = DECODE_BATCH_ROWS
) -> Iterator[list[RowError]]:
    """:func:`iter_chunk_rows` as ``RowError``s."""
    return map(chunk_row_errors, iter_chunk_rows(stream, batch_rows))


def decode_chunk_errors(data: bytes) -> list[RowError]:
    """Inverse of :func:`encode_chunk_errors`; raises ``ValueError`` on a foreign file."""
    return [error for batch in iter_chunk_errors(io.BytesIO(data)) for error in batch]


class ReportSink(Protocol):
    """Where the final report's rows go: each chunk's errors (in row order) with the line
    breaks of the file before the chunk, chunk after chunk in file order."""

    def write(self, line_breaks_before: int, errors: Sequence[RowError]) -> None: ...


def _report_head() -> str:
    return UTF8_BOM + _csv_text([REPORT_HEADER])


def _report_text(line_breaks_before: int, rows: Iterable[ChunkRow]) -> str:
    """The report rows of one chunk's error rows (a ``RowError``'s fields, or a chunk file
    row): ``line`` = 1 + line breaks before the chunk + the line offset; every cell that
    comes from the file through :func:`safe_cell`."""
    first_line = 1 + line_breaks_before
    return _csv_text(
        (first_line + int(r[0]), safe_cell(r[1]), r[2], safe_cell(r[3]), safe_cell(r[4])) for r in rows
    )


class ReportWriter:
    """A :class:`ReportSink` writing the final report into ``out`` as it comes: the BOM and
    the header at once (``head=False``: not — a slice of the report after its first), then
    each batch's rows. ``rows`` and ``size`` (bytes) count them."""

    def __init__(self, out: ByteSink, head: bool = True) -> None:
        self._out = out
        self.rows = 0
        self.size = 0
        if head:
            self._emit(_report_head())

    def write(self, line_breaks_before: int, errors: Sequence[RowError]) -> None:
        self.write_rows(line_breaks_before, list(map(_CHUNK_ROW, errors)))

    def write_rows(self, line_breaks_before: int, rows: Sequence[ChunkRow]) -> None:
        """Rows as a chunk's error file holds them (:func:`iter_chunk_rows`): the finaliser
        rewrites them without making a ``RowError`` of each."""
        if rows:
            self._emit(_report_text(line_breaks_before, rows))
            self.rows += len(rows)

    def _emit(self, text: str) -> None:
        data = text.encode("utf-8")
        self._out.write(data)
        self.size += len(data)


class ReportList:
    """A :class:`ReportSink` keeping ``(file line, error)`` in memory (tests, small files)."""

    def __init__(self) -> None:
        self.errors: list[tuple[int, RowError]] = []

    def write(self, line_breaks_before: int, errors: Sequence[RowError]) -> None:
        first_line = 1 + line_breaks_before
        self.errors.extend((first_line + e.line_offset, e) for e in errors)


class NoReport:
    """A :class:`ReportSink` that drops the rows (``upflow check`` without ``--report``)."""

    def write(self, line_breaks_before: int, errors: Sequence[RowError]) -> None:
        pass


def write_report(out: typing.TextIO, chunks: Iterable[tuple[int, Sequence[RowError]]]) -> int:
    """The final report of ``chunks`` (line breaks before the chunk, its errors; in chunk
    order) into a text stream — :class:`ReportWriter`'s text. Returns the rows written."""
    out.write(_report_head())
    n = 0
    for line_breaks_before, errors in chunks:
        out.write(_report_text(line_breaks_before, map(_CHUNK_ROW, errors)))
        n += len(errors)
    return n


# The bytes of a chunk error file's header line (the report has one header, not one a chunk).
CHUNK_HEADER_BYTES = len(_csv_text([CHUNK_HEADER]).encode("utf-8"))


@dataclass(frozen=True)
class ReportSlice:
    """Chunks ``first_chunk`` .. ``end_chunk - 1`` of an upload, whose error rows make one
    contiguous piece of the report; ``line_breaks_before``: the file's line breaks before them."""

    index: int
    first_chunk: int
    end_chunk: int
    line_breaks_before: int


def plan_report_slices(chunks: Sequence[tuple[int, int]], slice_bytes: int) -> list[ReportSlice]:
    """The report cut into contiguous slices of chunks, to be rewritten at once by many tasks
    and joined by S3 (``UploadPartCopy``: every part but the last at least 5 MiB).

    ``chunks``: each chunk's (error file bytes, line breaks), in file order. Every slice but
    the last holds at least ``slice_bytes`` of error rows (headers not counted); its piece of
    the report holds at least as many bytes, since a report row is never shorter than the
    file row it comes from (``REPORT_ROW_GROWTH``). Deterministic: any caller gets the same
    slices. One slice when the rows are fewer than ``slice_bytes``."""
    slices: list[ReportSlice] = []
    first, rows_bytes, line_breaks, before = 0, 0, 0, 0
    for index, (errors_size, chunk_line_breaks) in enumerate(chunks):
        rows_bytes += max(0, errors_size - CHUNK_HEADER_BYTES) if errors_size else 0
        line_breaks += chunk_line_breaks
        if rows_bytes >= slice_bytes and index + 1 < len(chunks):
            slices.append(ReportSlice(len(slices), first, index + 1, before))
            first, rows_bytes, before = index + 1, 0, line_breaks
    slices.append(ReportSlice(len(slices), first, len(chunks), before))
    return slices


def report_size_bound(chunk_files_size: int, rows: int) -> int:
    """At most how many bytes the report of chunk error files of ``chunk_files_size`` bytes
    in all, holding ``rows`` rows, can take."""
    return len(_report_head().encode("utf-8")) + chunk_files_size + rows * REPORT_ROW_GROWTH


def report_part_size(size_bound: int, min_part_size: int) -> int:
    """The part size that streams an object of at most ``size_bound`` bytes to S3 in at most
    10,000 parts: ``min_part_size``, grown in whole MiB when the object needs it (memory
    holds one part). Raises ``ValueError`` when even 5 GiB parts would not do."""
    fitting = -(-size_bound // S3_MAX_PARTS)
    part_size = max(min_part_size, -(-fitting // MiB) * MiB)
    if part_size > S3_MAX_PART_SIZE:
        raise ValueError(
            f"a report of up to {size_bound} bytes does not fit in {S3_MAX_PARTS} parts of 5 GiB"
        )
    return part_size

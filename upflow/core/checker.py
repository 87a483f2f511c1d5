"""The offline ``upflow check FILE`` path and the ``POST /preview`` logic.

``check_file`` runs the very same code as the Lambda workers — each chunk alone with a
speculated start state, the transfer functions composed, the misspeculated chunks parsed
again with their true state, then the merge — only sequentially over a local file. Going in
file order, it knows each chunk's true start state and the line breaks before it when the
chunk comes: it learns whether the speculation holds before reading the chunk's rows
(``chunk.speculated_compatible``), parses the rows once with the right state, and streams
their errors straight into the report at their file lines — never all in memory.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from upflow.core.chunk import process_chunk, speculated_compatible
from upflow.core.chunking import chunk_size_for, plan_chunks
from upflow.core.detect import FileFormat, detect_format
from upflow.core.dialect import SR, Cursor, ParserState, line_breaks, next_record, record_end, split_record
from upflow.core.money import cents_to_decimal
from upflow.core.report import ReportList, ReportSink
from upflow.core.rules import (
    Accumulator,
    Context,
    DocumentTotal,
    DocumentTotals,
    ErrorList,
    RegionResult,
    RowError,
    Summary,
    scalar_row,
    summarize,
)
from upflow.definition import Limits


@dataclass(frozen=True)
class CheckResult:
    format: FileFormat
    summary: Summary
    # (file line, error) in file order, when kept in memory (no report sink given); else empty.
    errors: list[tuple[int, RowError]]
    totals: tuple[DocumentTotal, ...] = ()  # per document over the whole file, sorted by document
    reparsed: tuple[int, ...] = ()  # chunks whose speculated start state was wrong


def merge_totals(parts: Sequence[DocumentTotals]) -> tuple[DocumentTotal, ...]:
    """Per-document totals over several regions, sorted by document (summed in integer cents)."""
    merged: dict[str, list[Any]] = {}
    for part in parts:
        for document, doc_type, rows, cents in zip(
            part.documents, part.doc_types, part.rows, part.cents, strict=True
        ):
            m = merged.get(document)
            if m is None:
                merged[document] = [doc_type, rows, cents]
            else:
                m[1] += rows
                m[2] += cents
    return tuple(
        DocumentTotal(document, doc_type, rows, cents_to_decimal(cents))
        for document, (doc_type, rows, cents) in sorted(merged.items())
    )


class _AtLines:
    """The :class:`upflow.core.rules.ErrorSink` of one chunk: its errors go on to the report
    with the line breaks before the chunk."""

    def __init__(self, report: ReportSink, line_breaks_before: int) -> None:
        self.report = report
        self.line_breaks_before = line_breaks_before

    def write(self, errors: Sequence[RowError]) -> None:
        self.report.write(self.line_breaks_before, errors)


def check_file(
    path: str | os.PathLike[str],
    chunk_size: int | None,
    limits: Limits,
    *,
    fast: bool = True,
    report: ReportSink | None = None,
) -> CheckResult:
    """Validate a local CSV chunk by chunk exactly as the pipeline does. Raises ``FormatError``.

    The errors go to ``report`` as they are found, in file order (``ReportWriter``: the
    pipeline's report, into a file); ``None`` keeps them in memory, in ``errors``.
    """
    kept = ReportList()  # stays empty when the errors go to ``report``
    out = kept if report is None else report
    size = os.path.getsize(path)
    regions: list[RegionResult] = []
    reparsed: list[int] = []
    with open(path, "rb") as fh:

        def read(start: int, end: int) -> bytes:
            fh.seek(start)
            return fh.read(max(0, end - start))

        head = read(0, limits.sniff_bytes)
        fmt = detect_format(head, size <= limits.sniff_bytes, limits)
        cs = chunk_size if chunk_size is not None else chunk_size_for(size, limits)
        state = ParserState.START_RECORD  # the true state at the next chunk's start
        breaks_before = 0
        for chunk in plan_chunks(size, cs):
            data = read(chunk.start, chunk.end)
            # A worker speculates; a chunk whose speculation does not give its true parse is
            # parsed again with the true state (``ChunkResult.needs_reparse``). Known here
            # before the rows are read, so they are parsed once, with the state that holds.
            if state not in speculated_compatible(data, chunk, size, fmt, read):
                reparsed.append(chunk.index)
            result = process_chunk(
                data,
                chunk,
                size,
                fmt,
                read,
                limits,
                start_state=state,
                fast=fast,
                errors=_AtLines(out, breaks_before),
            )
            del data
            regions.append(result.region)
            breaks_before += result.line_breaks
            state = ParserState(result.transfer[state])
    light = [dataclasses.replace(r, totals=DocumentTotals.empty()) for r in regions]
    return CheckResult(
        fmt, summarize(light), kept.errors, merge_totals([r.totals for r in regions]), tuple(reparsed)
    )


def preview(head: bytes, at_eof: bool, limits: Limits, max_rows: int = 20) -> dict[str, object]:
    """The detected format and the first rows with their verdicts. Raises ``FormatError``."""
    fmt = detect_format(head, at_eof, limits)
    ctx = Context(fmt, limits)
    rows: list[dict[str, object]] = []
    pos = fmt.data_start
    line = 1 + fmt.header_newlines
    n = len(head)
    cursor = Cursor(head, n, ctx.delim_byte)
    while pos < n and len(rows) < max_rows:
        e, _ = record_end(cursor, pos, SR)
        if e < 0:
            if not at_eof:
                break  # a partial last row of a longer file
            e = n
        raw = head[pos:e]
        if raw:
            row_errors = ErrorList()
            acc = Accumulator(row_errors)
            scalar_row(acc, raw, pos, 0, ctx)
            acc.settle()
            rows.append(
                {
                    "line": line,
                    "values": split_record(raw.decode(fmt.encoding, "replace"), fmt.delimiter),
                    "valid": acc.rows_valid == 1,
                    "errors": [
                        {"code": er.code, "column": er.column, "message": er.message}
                        for er in row_errors.errors
                    ],
                }
            )
        following = next_record(head, e, n) if e < n else n
        line += line_breaks(head, pos, following)
        pos = following
    c = fmt.columns
    return {
        "encoding": fmt.encoding,
        "delimiter": fmt.delimiter,
        "header": list(fmt.header),
        "columns": {
            "document": fmt.header[c.document],
            "amount": fmt.header[c.amount],
            "name": fmt.column_name(c.name),
            "date": fmt.column_name(c.date),
        },
        "rows": rows,
    }

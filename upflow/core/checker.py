"""The offline ``upflow check FILE`` path and the ``POST /preview`` logic.

``check_file`` runs the very same code as the Lambda workers — each chunk alone with a
speculated start state, the transfer functions composed, the misspeculated chunks parsed
again with their true state, then the merge — only sequentially over a local file.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from upflow.core.chunk import ChunkResult, process_chunk, true_start_states
from upflow.core.chunking import chunk_size_for, plan_chunks
from upflow.core.detect import FileFormat, detect_format
from upflow.core.dialect import SR, Cursor, line_breaks, next_record, record_end, split_record
from upflow.core.money import cents_to_decimal
from upflow.core.rules import (
    Accumulator,
    Context,
    DocumentTotal,
    DocumentTotals,
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
    errors: list[tuple[int, RowError]]  # (file line, error), in file order
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


def check_file(
    path: str | os.PathLike[str], chunk_size: int | None, limits: Limits, *, fast: bool = True
) -> CheckResult:
    """Validate a local CSV chunk by chunk exactly as the pipeline does. Raises ``FormatError``."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:

        def read(start: int, end: int) -> bytes:
            fh.seek(start)
            return fh.read(max(0, end - start))

        head = read(0, limits.sniff_bytes)
        fmt = detect_format(head, size <= limits.sniff_bytes, limits)
        cs = chunk_size if chunk_size is not None else chunk_size_for(size, limits)
        chunks = plan_chunks(size, cs)
        # Every chunk on its own, as the workers run (in any order), speculating its start state.
        results: list[ChunkResult] = [
            process_chunk(read(c.start, c.end), c, size, fmt, read, limits, fast=fast) for c in chunks
        ]
        # Once all transfer functions are known: the true start states; a chunk whose parse
        # does not hold with its true state is parsed again.
        reparsed: list[int] = []
        for chunk, state in zip(chunks, true_start_states(results), strict=True):
            if results[chunk.index].needs_reparse(state):
                data = read(chunk.start, chunk.end)
                results[chunk.index] = process_chunk(
                    data, chunk, size, fmt, read, limits, start_state=state, fast=fast
                )
                reparsed.append(chunk.index)
    errors: list[tuple[int, RowError]] = []
    breaks_before = 0
    for res in results:
        errors.extend((1 + breaks_before + e.line_offset, e) for e in res.region.errors)
        breaks_before += res.line_breaks
    regions = [r.region for r in results]
    light = [dataclasses.replace(r, totals=DocumentTotals.empty(), errors=()) for r in regions]
    return CheckResult(
        fmt, summarize(light), errors, merge_totals([r.totals for r in regions]), tuple(reparsed)
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
            acc = Accumulator()
            scalar_row(acc, raw, pos, 0, ctx)
            rows.append(
                {
                    "line": line,
                    "values": split_record(raw.decode(fmt.encoding, "replace"), fmt.delimiter),
                    "valid": acc.rows_valid == 1,
                    "errors": [
                        {"code": er.code, "column": er.column, "message": er.message} for _, er in acc.errors
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

"""The offline ``upflow check FILE`` path and the ``POST /preview`` logic.

``check_file`` runs the very same split / parity / parse / validate / merge code
as the Lambda workers, only sequentially over a local file.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from upflow.core.chunk import process_chunk
from upflow.core.chunking import chunk_size_for, plan_chunks
from upflow.core.csvscan import find_row_end, split_fields
from upflow.core.detect import FileFormat, detect_format
from upflow.core.money import cents_to_decimal
from upflow.core.rules import (
    Accumulator,
    Context,
    DocumentTotal,
    DocumentTotals,
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
    errors: list[tuple[int, RowError]]  # (file line, error), in file order
    totals: tuple[DocumentTotal, ...] = ()  # per document over the whole file, sorted by document


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
        parity = 0
        newlines_before = 0
        light: list[RegionResult] = []
        totals: list[DocumentTotals] = []
        errors: list[tuple[int, RowError]] = []
        for chunk in plan_chunks(size, cs):
            data = read(chunk.start, chunk.end)
            res = process_chunk(data, chunk, size, fmt, bool(parity), read, limits, fast=fast)
            errors.extend((1 + newlines_before + e.line_offset, e) for e in res.errors)
            totals.append(res.totals)
            light.append(dataclasses.replace(res, totals=DocumentTotals.empty(), errors=()))
            # The same rule the workers use: parity and newlines of the raw range.
            parity ^= data.count(b'"') & 1
            newlines_before += data.count(b"\n")
    return CheckResult(fmt, summarize(light), errors, merge_totals(totals))


def preview(head: bytes, at_eof: bool, limits: Limits, max_rows: int = 20) -> dict[str, object]:
    """The detected format and the first rows with their verdicts. Raises ``FormatError``."""
    fmt = detect_format(head, at_eof, limits)
    ctx = Context(fmt, limits)
    rows: list[dict[str, object]] = []
    pos = fmt.data_start
    line = 1 + fmt.header_newlines
    n = len(head)
    while pos < n and len(rows) < max_rows:
        e = find_row_end(head, pos, n)
        if e == n and not at_eof:
            break  # a partial last row of a longer file
        raw = head[pos:e]
        body = raw[:-1] if raw.endswith(b"\r") else raw
        if body:
            acc = Accumulator()
            scalar_row(acc, raw, pos, 0, ctx)
            rows.append(
                {
                    "line": line,
                    "values": split_fields(body.decode(fmt.encoding, "replace"), fmt.delimiter),
                    "valid": acc.rows_valid == 1,
                    "errors": [
                        {"code": er.code, "column": er.column, "message": er.message} for _, er in acc.errors
                    ],
                }
            )
        line += head.count(b"\n", pos, min(e + 1, n))
        pos = e + 1
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

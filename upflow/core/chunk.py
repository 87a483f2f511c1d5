"""Processing one chunk: which rows it owns, the tail read, and the region of whole rows.

The chunk's whole rows go to :func:`upflow.core.kernel.process_region` (the compiled kernel,
or the scalar reference where it cannot run), the row crossing its end to
:func:`upflow.core.rules.scalar_row`. Row boundaries come from the dialect in ``csvscan``.
See ``docs/processing.md``.
"""

from __future__ import annotations

from collections.abc import Callable

from upflow.core import kernel
from upflow.core.chunking import ChunkRange
from upflow.core.csvscan import first_row_start, last_row_end, row_end_from, row_starts_at
from upflow.core.detect import FileFormat
from upflow.core.rules import Accumulator, Context, RegionResult, scalar_region, scalar_row
from upflow.definition import KiB, Limits

TAIL_FIRST_READ = 64 * KiB

ReadRange = Callable[[int, int], bytes]


def _read_last_row(
    data: bytes, r: int, chunk: ChunkRange, object_size: int, read_tail: ReadRange, max_row: int
) -> tuple[bytes, bool]:
    """The row starting at ``data[r]`` that runs past ``chunk.end``: (bytes, too_long).

    Reads ``[chunk.end, …)`` in doubling pieces, never beyond the row's end or
    ``row start + max_row + 1`` (enough to prove it too long).
    """
    row = data[r:]
    if len(row) > max_row:
        return row, True
    in_quotes = bool(row.count(b'"') & 1)
    pieces = [row]
    have = len(row)
    pos = chunk.end
    limit = min(object_size, chunk.start + r + max_row + 1)
    step = TAIL_FIRST_READ
    eof = False
    while pos < limit:
        want = min(limit, pos + step)
        piece = read_tail(pos, want)
        end, in_quotes = row_end_from(piece, 0, in_quotes)
        if end >= 0:
            pieces.append(piece[:end])
            return b"".join(pieces), have + end > max_row
        pieces.append(piece)
        have += len(piece)
        if len(piece) < want - pos:
            eof = True  # the object ended early
            break
        pos = want
        step *= 2
    eof = eof or pos >= object_size
    return b"".join(pieces), (not eof) or have > max_row


def process_chunk(
    data: bytes,
    chunk: ChunkRange,
    object_size: int,
    fmt: FileFormat,
    in_quotes_at_start: bool,
    read_tail: ReadRange,
    limits: Limits,
    *,
    fast: bool = True,
) -> RegionResult:
    """Process the rows owned by ``chunk`` (first byte in ``[start, end)``); deterministic.

    ``fast=False`` lets the scalar reference decide every row (same result, slower); with
    ``fast`` the compiled kernel runs where it loads. ``read_tail`` is also used once for the
    byte before ``chunk.start`` when the chunk begins after the header (to know whether a
    row starts exactly there).
    """
    if len(data) != chunk.end - chunk.start:
        raise ValueError(f"data has {len(data)} bytes, chunk {chunk.index} spans {chunk.end - chunk.start}")
    ctx = Context(fmt, limits)
    acc = Accumulator()
    n = len(data)
    lo = max(chunk.start, fmt.data_start)
    if lo >= chunk.end or lo >= object_size:
        return acc.result()
    if lo == fmt.data_start:
        f = lo - chunk.start
    elif row_starts_at(read_tail(chunk.start - 1, chunk.start), in_quotes_at_start):
        f = 0
    else:
        f = first_row_start(data, 0, n, in_quotes_at_start)
        if f < 0 or f >= n:
            return acc.result()
    line_base = data.count(b"\n", 0, f)
    last_nl = last_row_end(data, f)
    region_end = f if last_nl < 0 else last_nl + 1
    lines = line_base  # newlines in data[:region_end]
    if region_end > f:
        region = kernel.process_region if fast else scalar_region
        lines = region(acc, data, f, region_end, line_base, ctx)
    if region_end < n:
        if chunk.end >= object_size:
            scalar_row(acc, data[region_end:], region_end, lines, ctx)
        else:
            row, too_long = _read_last_row(data, region_end, chunk, object_size, read_tail, ctx.max_row)
            scalar_row(acc, row, region_end, lines, ctx, too_long=too_long)
    return acc.result()

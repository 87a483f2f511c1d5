"""Processing one chunk: its start state, which records it owns, the tail read, the region.

A chunk knows nothing of the chunks before it: it computes its transfer function over the
six parser states, speculates its start state (or is given it), and parses the records
whose first byte it holds. The records go to :func:`upflow.core.kernel.process_region` (the
compiled kernel, or the scalar reference where it cannot run), the one crossing its end to
:func:`upflow.core.rules.scalar_row`. Record and field boundaries come from ``dialect``.
See ``docs/processing.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from upflow.core import kernel
from upflow.core.chunking import ChunkRange
from upflow.core.detect import FileFormat
from upflow.core.dialect import (
    ALL_STATES,
    CR,
    EC,
    IDENTITY,
    SR,
    STATES,
    Cursor,
    Divergence,
    ParserState,
    compose,
    diverge,
    line_breaks,
    next_record_start,
    record_end,
    run,
    speculate,
)
from upflow.core.rules import Accumulator, Context, ErrorSink, RegionResult, scalar_region, scalar_row
from upflow.definition import KiB, Limits

TAIL_FIRST_READ = 64 * KiB

ReadRange = Callable[[int, int], bytes]


@dataclass(frozen=True)
class ChunkResult:
    """What a chunk's worker publishes.

    * ``region``: the owned records' totals and errors (``line_offset``: line breaks between
      the chunk's first byte and the record's);
    * ``start_state``: the state it parsed with at ``max(chunk.start, data_start)`` (given,
      known, or speculated);
    * ``transfer``: the state at ``chunk.end`` for each state there (index = start state);
      the identity for a chunk before the data;
    * ``compatible``: the start states that give exactly this parse: the chunk is parsed
      again only when its true start state is not among them;
    * ``line_breaks``: line breaks in ``[chunk.start, chunk.end)`` (a ``\\r`` at the end counts
      unless the next byte is a ``\\n``); the file line of an error is 1 + the line breaks of
      the earlier chunks + its ``line_offset``. Like ``transfer``, independent of the state.
    """

    region: RegionResult
    start_state: ParserState
    transfer: tuple[ParserState, ...]
    compatible: frozenset[ParserState]
    line_breaks: int

    def needs_reparse(self, true_state: ParserState) -> bool:
        """Whether the chunk must be processed again with ``start_state=true_state``."""
        return true_state not in self.compatible


def true_start_states(results: Sequence[ChunkResult]) -> list[ParserState]:
    """Each chunk's true start state (the chunks of one file, in order)."""
    return compose(r.transfer for r in results)


def _read_last_row(
    data: bytes,
    r: int,
    state: ParserState,
    chunk: ChunkRange,
    object_size: int,
    read_tail: ReadRange,
    ctx: Context,
) -> tuple[bytes, bool]:
    """The record starting at ``data[r]`` that runs past ``chunk.end`` (``state``: its state
    there): (bytes up to its terminator, too_long).

    Reads ``[chunk.end, …)`` in doubling pieces, never beyond the record's end or
    ``record start + max_row + 1`` (enough to prove it too long).
    """
    max_row = ctx.max_row
    row = data[r:]
    if len(row) > max_row:
        return row, True
    pieces = [row]
    have = len(row)
    pos = chunk.end
    limit = min(object_size, chunk.start + r + max_row + 1)
    step = TAIL_FIRST_READ
    eof = False
    while pos < limit:
        want = min(limit, pos + step)
        piece = read_tail(pos, want)
        end, state = record_end(Cursor(piece, len(piece), ctx.delim_byte), 0, state)
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


def _line_breaks_of(
    data: bytes,
    chunk: ChunkRange,
    object_size: int,
    read_tail: ReadRange,
    count: Callable[[bytes, int, int], int],
) -> int:
    breaks = count(data, 0, len(data))
    if data and data[-1] == CR and chunk.end < object_size and read_tail(chunk.end, chunk.end + 1) == b"\n":
        breaks -= 1  # the \r\n is counted at its \n, in the next chunk
    return breaks


def _start(
    cursor: Cursor,
    chunk: ChunkRange,
    object_size: int,
    fmt: FileFormat,
    read_tail: ReadRange,
    start_state: ParserState | None,
) -> tuple[ParserState, Divergence] | None:
    """The state the chunk is parsed with at ``max(chunk.start, fmt.data_start)`` and the
    trajectories from there; ``None`` when it owns no record (before the data, or empty)."""
    lo = max(chunk.start, fmt.data_start)
    if lo >= chunk.end or lo >= object_size:
        return None
    divergence = diverge(cursor, lo - chunk.start)
    if lo == fmt.data_start:
        return SR, divergence  # right after the header: known
    if start_state is not None:
        return start_state, divergence
    return speculate(divergence, read_tail(chunk.start - 1, chunk.start), cursor.delimiter), divergence


def speculated_compatible(
    data: bytes, chunk: ChunkRange, object_size: int, fmt: FileFormat, read_tail: ReadRange
) -> frozenset[ParserState]:
    """The ``compatible`` of :func:`process_chunk` with a speculated start state — the start
    states that parse ``chunk`` as the speculated one does — known from the chunk's bytes
    before any row is read: a caller that already knows the true state (``upflow check``,
    going through the file in order) sees whether the speculation would hold without
    parsing the rows twice."""
    cursor = Cursor(data, len(data), ord(fmt.delimiter))
    started = _start(cursor, chunk, object_size, fmt, read_tail, None)
    return ALL_STATES if started is None else started[1].compatible(started[0])


def process_chunk(
    data: bytes,
    chunk: ChunkRange,
    object_size: int,
    fmt: FileFormat,
    read_tail: ReadRange,
    limits: Limits,
    *,
    start_state: ParserState | None = None,
    fast: bool = True,
    errors: ErrorSink | None = None,
) -> ChunkResult:
    """Process the records owned by ``chunk`` (first byte in ``[start, end)``); deterministic.

    ``start_state``: the parser state at ``max(chunk.start, fmt.data_start)`` when known (the
    composed true state, for a re-parse); ``None`` lets the chunk speculate (from its own
    bytes and the byte before it, read with ``read_tail``). The chunk holding ``data_start``
    starts in ``START_RECORD`` there whatever is given. ``fast=False`` lets the scalar
    reference decide every row (same result, slower); with ``fast`` the compiled kernel runs
    where it loads. ``read_tail`` also reads the byte after the chunk when its last byte is a
    ``\\r``, and the rest of the record crossing its end. ``errors``: where the row errors go
    as they are found, in row order (``None``: kept in memory, in ``region.errors``).
    """
    n = len(data)
    if n != chunk.end - chunk.start:
        raise ValueError(f"data has {n} bytes, chunk {chunk.index} spans {chunk.end - chunk.start}")
    ctx = Context(fmt, limits)
    acc = Accumulator(errors)
    count = kernel.line_breaks if fast else line_breaks
    breaks = _line_breaks_of(data, chunk, object_size, read_tail, count)
    cursor = Cursor(data, n, ctx.delim_byte)
    started = _start(cursor, chunk, object_size, fmt, read_tail, start_state)
    if started is None:  # before the data (or an empty range): owns nothing
        state = SR if start_state is None else start_state
        return ChunkResult(acc.result(), state, IDENTITY, ALL_STATES, breaks)
    state, divergence = started
    a = max(chunk.start, fmt.data_start) - chunk.start
    f = next_record_start(cursor, a, state)
    if f >= n:  # no record starts here: the chunk is inside one record
        end_state = (
            divergence.states[state]
            if not divergence.converged
            else run(cursor, divergence.at, divergence.states[0])
        )
    else:
        at_eof = chunk.end >= object_size
        region = kernel.process_region if fast else scalar_region
        open_at, lines = region(acc, data, f, n, count(data, 0, f), ctx, at_eof)
        if open_at < n:
            _, end_state = record_end(cursor, open_at, SR)
            if not at_eof:
                row, too_long = _read_last_row(data, open_at, end_state, chunk, object_size, read_tail, ctx)
                scalar_row(acc, row, open_at, lines, ctx, too_long=too_long)
        else:
            end_state = EC if data[n - 1] == CR else SR  # the last record ended at the last byte
    # Trajectories that met share the parsed one's end state; else each ran to the end already.
    transfer = (end_state,) * len(STATES) if divergence.converged else divergence.states
    return ChunkResult(acc.result(), state, transfer, divergence.compatible(state), breaks)

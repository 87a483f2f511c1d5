"""The CSV dialect: CPython's ``csv.reader`` as a state machine over bytes (``docs/processing.md``).

The reader is CPython 3.11's (``Modules/_csv.c``) with ``delimiter=D, quotechar='"',
doublequote=True, strict=False, skipinitialspace=False``, fed lines split at ``\\n``,
``\\r\\n`` and a lone ``\\r`` (``newline=''``). Its six states, over bytes:

* ``TRANSITIONS`` is the one definition: (state, byte class) → (next state, action).
  ``csv.reader`` also sees an end-of-line event after each line break; here it is folded
  into the bytes: a ``\\n`` outside quotes goes straight to ``START_RECORD``, a ``\\r``
  outside quotes to ``EAT_CRNL`` ("a record just ended at a ``\\r``: a ``\\n`` right
  after it belongs to it").
* Everything else is derived from it and tested against it: the field splitter
  (:func:`split_record`), the record scanner (:func:`record_end`), the six trajectories
  of a byte range (:func:`diverge`, :func:`transfer_function`), speculation, composition.
  ``scan.c`` transcribes the record and field rules for the compiled kernel.

The structural bytes (``"``, the delimiter, ``\\r``, ``\\n``) are ASCII, and UTF-8 and
cp1252 never put an ASCII byte inside a multi-byte character, so the machine over bytes
reads exactly what ``csv.reader`` reads over the decoded text.

Chunks: the state at a chunk's first byte depends on everything before it. Each chunk
computes its *transfer function* (the state at its end for each of the six states at its
start), speculates its start state and parses with it; once every transfer function is
known, :func:`compose` gives each chunk's true start state, and only a chunk whose
true state is not among the states *compatible* with its parse is parsed again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import cache

QUOTE = 0x22
CR = 0x0D
LF = 0x0A


class ParserState(IntEnum):
    """``csv.reader``'s states (``_csv.c`` without an escape character), at a byte boundary."""

    START_RECORD = 0
    START_FIELD = 1
    IN_FIELD = 2
    IN_QUOTED_FIELD = 3
    QUOTE_IN_QUOTED_FIELD = 4
    EAT_CRNL = 5


class ByteClass(IntEnum):
    OTHER = 0
    DELIMITER = 1
    QUOTE = 2
    CR = 3
    LF = 4


class Action(IntEnum):
    """What ``csv.reader`` does with the byte."""

    NONE = 0  # nothing (an opening or closing quote; the \n of a \r\n)
    ADD = 1  # the byte is field content
    FIELD = 2  # ends the field under way (the delimiter)
    RECORD = 3  # ends the record, saving the field under way; from START_RECORD / EAT_CRNL a blank line


SR, SF, F, Q, QQ, EC = ParserState
STATES: tuple[ParserState, ...] = tuple(ParserState)
ALL_STATES: frozenset[ParserState] = frozenset(ParserState)
IDENTITY: tuple[ParserState, ...] = STATES

_O, _D, _Q, _CR, _LF = ByteClass
_N, _ADD, _FIELD, _RECORD = Action

# The machine: TRANSITIONS[state][byte class] = (next state, action). Columns: other,
# delimiter, quote, \r, \n.
TRANSITIONS: dict[ParserState, tuple[tuple[ParserState, Action], ...]] = {
    SR: ((F, _ADD), (SF, _FIELD), (Q, _N), (EC, _RECORD), (SR, _RECORD)),
    SF: ((F, _ADD), (SF, _FIELD), (Q, _N), (EC, _RECORD), (SR, _RECORD)),
    F: ((F, _ADD), (SF, _FIELD), (F, _ADD), (EC, _RECORD), (SR, _RECORD)),
    Q: ((Q, _ADD), (Q, _ADD), (QQ, _N), (Q, _ADD), (Q, _ADD)),
    QQ: ((F, _ADD), (SF, _FIELD), (Q, _ADD), (EC, _RECORD), (SR, _RECORD)),
    # The \r that ended a record is followed by its \n (eaten) or by the next record's first
    # byte, read as in START_RECORD (csv.reader's end-of-line event came first).
    EC: ((F, _ADD), (SF, _FIELD), (Q, _N), (EC, _RECORD), (SR, _N)),
}


def byte_class(byte: int, delimiter: int) -> ByteClass:
    if byte == delimiter:
        return _D
    if byte == QUOTE:
        return _Q
    if byte == CR:
        return _CR
    if byte == LF:
        return _LF
    return _O


def step(state: ParserState, byte: int, delimiter: int) -> ParserState:
    """The state after ``byte`` (the machine one byte at a time: the reference for tests)."""
    return TRANSITIONS[state][byte_class(byte, delimiter)][0]


def starts_record(state: ParserState, byte: int) -> bool:
    """Whether ``byte``, read in ``state``, is the first byte of a record (a blank one included)."""
    return state is SR or (state is EC and byte != LF)


# Derived rules the fast paths use (a test checks them against TRANSITIONS):
# on a quote, each state goes to ...
QUOTE_NEXT: dict[ParserState, ParserState] = {s: TRANSITIONS[s][_Q][0] for s in STATES}


def after_run(last: int, delimiter: int) -> ParserState:
    """The state after a non-empty run of bytes without a quote, from any state but IN_QUOTED_FIELD.

    Every such state goes to the same state on any non-quote byte, so only the run's last
    byte matters.
    """
    if last == LF:
        return SR
    if last == CR:
        return EC
    return SF if last == delimiter else F


def next_record(buf: bytes, terminator: int, hi: int) -> int:
    """The first byte after the record terminator at ``terminator`` (past the ``\\n`` of a ``\\r\\n``)."""
    if buf[terminator] == CR and terminator + 1 < hi and buf[terminator + 1] == LF:
        return terminator + 2
    return terminator + 1


def line_breaks(buf: bytes, lo: int, hi: int) -> int:
    """Line breaks in ``buf[lo:hi]``: ``\\n``, ``\\r\\n`` and a lone ``\\r`` each count once, inside
    quotes too (a ``\\r`` at ``hi - 1`` counts unless ``buf[hi]`` is a ``\\n``)."""
    breaks = buf.count(b"\n", lo, hi)
    crs = buf.count(b"\r", lo, hi)
    if crs:
        breaks += crs - buf.count(b"\r\n", lo, hi + 1)
    return breaks


class _Next:
    """The next index ``>= i`` of one byte in ``buf[:hi]`` (``hi`` if none): ``bytes.find``,
    remembered for every ``i`` up to it, so a forward scan costs one pass over the buffer."""

    __slots__ = ("at", "buf", "hi", "needle", "since")

    def __init__(self, buf: bytes, needle: bytes, hi: int) -> None:
        self.buf = buf
        self.needle = needle
        self.hi = hi
        self.since = 0  # no needle in [since, at)
        self.at = -1

    def __call__(self, i: int) -> int:
        if not self.since <= i <= self.at:
            j = self.buf.find(self.needle, i, self.hi)
            self.since = i
            self.at = self.hi if j < 0 else j
        return self.at


@cache
def _record_pattern(delimiter: int) -> re.Pattern[bytes]:
    """A record from its first byte up to its terminator (or the end), fields read as
    ``_field_pattern`` reads them: what ``record_end`` finds from START_RECORD, in one match."""
    d = re.escape(bytes([delimiter]))
    field = b'(?:"[^"]*+(?:""[^"]*+)*+(?:"[^' + d + b"\\r\\n]*+)?|[^" + d + b'"\\r\\n][^' + d + b"\\r\\n]*+)?"
    return re.compile(field + b"(?:" + d + field + b")*+")


class Cursor:
    """Where the next ``"``, ``\\r`` and ``\\n`` are in ``buf[:hi]``, for scans moving forward."""

    __slots__ = ("buf", "cr", "delimiter", "hi", "lf", "quote", "record")

    def __init__(self, buf: bytes, hi: int, delimiter: int) -> None:
        self.buf = buf
        self.hi = hi
        self.delimiter = delimiter
        self.quote = _Next(buf, b'"', hi)
        self.cr = _Next(buf, b"\r", hi)
        self.lf = _Next(buf, b"\n", hi)
        self.record = _record_pattern(delimiter).match

    def terminator(self, i: int) -> int:
        """The next ``\\r`` or ``\\n`` at or after ``i`` (``hi`` if none)."""
        lf = self.lf(i)
        cr = self.cr(i)
        return cr if cr < lf else lf


def record_end(cursor: Cursor, pos: int, state: ParserState = SR) -> tuple[int, ParserState]:
    """The record being read at ``pos`` in ``state`` (``START_RECORD`` at its first byte, or a
    state inside it): ``(index of its terminator, state)``, or ``(-1, state at hi)`` when it
    has none before ``hi`` (the returned state means nothing when a terminator is found).

    Jumps from quote to quote: between two quotes, outside quotes, the first ``\\r`` or
    ``\\n`` ends the record; inside quotes nothing does. From START_RECORD, a record holding
    a quote is matched whole by a regular expression first.
    """
    if state is EC:
        raise ValueError("EAT_CRNL is between records")
    buf, hi = cursor.buf, cursor.hi
    if state is SR and cursor.quote(pos) < hi:
        match = cursor.record(buf, pos, hi)
        assert match is not None  # the pattern matches the empty string
        if match.end() < hi:
            return match.end(), state
    i = pos
    while True:
        q = cursor.quote(i)
        if state is not Q and q > i:
            t = cursor.terminator(i)
            if t < q:
                return t, state
            state = after_run(buf[q - 1], cursor.delimiter)
        if q >= hi:
            return -1, state
        state = QUOTE_NEXT[state]
        i = q + 1


def next_record_start(cursor: Cursor, pos: int, state: ParserState) -> int:
    """The first index ``>= pos`` where a record starts, ``state`` being the state at ``pos``
    (``>= hi`` if none starts before ``hi``)."""
    buf, hi = cursor.buf, cursor.hi
    if pos >= hi or state is SR:
        return pos
    if state is EC:
        return pos + 1 if buf[pos] == LF else pos
    end, _ = record_end(cursor, pos, state)
    return hi if end < 0 else next_record(buf, end, hi)


def run(cursor: Cursor, pos: int, state: ParserState) -> ParserState:
    """The state at ``hi`` of the trajectory in ``state`` at ``pos`` (quote to quote)."""
    buf, hi = cursor.buf, cursor.hi
    i = pos
    while True:
        q = cursor.quote(i)
        if state is not Q and q > i:
            state = after_run(buf[q - 1], cursor.delimiter)
        if q >= hi:
            return state
        state = QUOTE_NEXT[state]
        i = q + 1


@cache
def _field_pattern(delimiter: str) -> re.Pattern[str]:
    """One field at a field start, read by TRANSITIONS: unquoted, up to the delimiter (a quote
    in it is a literal); or quoted — ``""`` is a quote, a lone quote closes the quoting (the
    rest, up to the delimiter, is literal) — running to the end of the text if never closed."""
    d = re.escape(delimiter)
    return re.compile(f'"([^"]*+(?:""[^"]*+)*+)(?:"([^{d}\\r\\n]*+))?|([^{d}"\\r\\n][^{d}\\r\\n]*+)?')


def split_record(text: str, delimiter: str) -> list[str]:
    """The fields ``csv.reader`` gives for one record's text (without its terminator).

    ``""`` (a blank line) gives ``[]``. A ``\\r`` or ``\\n`` outside quotes is not part of a
    record (:func:`record_end` ends it there) and raises ``ValueError``.
    """
    if '"' not in text:
        if "\r" in text or "\n" in text:
            raise ValueError("a record ends at a line break outside quotes")
        return text.split(delimiter) if text else []
    match = _field_pattern(delimiter).match
    fields: list[str] = []
    pos, n = 0, len(text)
    while True:
        m = match(text, pos)
        assert m is not None  # the pattern matches the empty string
        quoted, rest, plain = m.groups()
        if quoted is None:
            fields.append(plain or "")
        else:
            fields.append(quoted.replace('""', '"') + (rest or ""))
        pos = m.end()
        if pos >= n:
            return fields
        if text[pos] != delimiter:
            raise ValueError("a record ends at a line break outside quotes")
        pos += 1


@dataclass(frozen=True)
class Divergence:
    """The six trajectories from ``lo`` (one per start state) until they meet or reach ``hi``.

    ``states[s]`` is the state at ``at`` of the trajectory that started in ``s``; once all are
    equal (``converged``) they stay equal, so nothing after ``at`` can tell them apart.
    ``classes`` groups the start states by the record starts they give in ``[lo, hi)`` — the
    same record starts, the same parse — and ``anomalies[s]`` counts the lenient readings
    (a quote inside an unquoted field, a byte after a closing quote) of trajectory ``s``
    before ``at``: a well-formed file has none on its true trajectory.
    """

    at: int
    states: tuple[ParserState, ...]
    classes: tuple[frozenset[ParserState], ...]
    anomalies: tuple[int, ...]

    @property
    def converged(self) -> bool:
        return len(set(self.states)) == 1

    def compatible(self, state: ParserState) -> frozenset[ParserState]:
        """The start states giving the same record starts as ``state``."""
        return next(c for c in self.classes if state in c)


def _refine(partition: list[int], signatures: Sequence[object]) -> list[int]:
    ids: dict[tuple[int, object], int] = {}
    return [ids.setdefault((p, sig), len(ids)) for p, sig in zip(partition, signatures, strict=True)]


def diverge(cursor: Cursor, lo: int) -> Divergence:
    """The six trajectories over ``[lo, hi)`` until they meet (see :class:`Divergence`).

    Jumps from quote to quote. Over a run without quotes every state but ``IN_QUOTED_FIELD``
    lands in the same state after the run's first byte, so the runs' record starts differ
    only at that first byte, or between quoted and unquoted trajectories; at most two
    trajectories survive the first byte, and they usually meet at the first quoted field.
    """
    buf, hi, delimiter = cursor.buf, cursor.hi, cursor.delimiter
    current = list(STATES)
    partition = [0] * len(STATES)
    anomalies = [0] * len(STATES)
    i = lo
    while i < hi and len(set(current)) > 1:
        q = cursor.quote(i)
        if q > i:  # a run of bytes without a quote
            first = buf[i]
            # Record starts after the run's first byte (the same for every unquoted trajectory):
            # does the run hold one before hi? Only asked when an in-quotes trajectory is beside.
            later: bool | None = None
            signatures: list[tuple[bool, bool]] = []
            for origin, state in enumerate(current):
                if state is Q:
                    signatures.append((False, False))
                    continue
                if later is None:
                    t = cursor.terminator(i)
                    later = t < q and next_record(buf, t, hi) < hi
                signatures.append((starts_record(state, first), later))
                if state is QQ and byte_class(first, delimiter) is _O:
                    anomalies[origin] += 1  # text after a closing quote
            end = after_run(buf[q - 1], delimiter)
            current = [Q if state is Q else end for state in current]
            partition = _refine(partition, signatures)
            i = q
            continue
        # a quote at i
        for origin, state in enumerate(current):
            if state is F:
                anomalies[origin] += 1  # a quote inside an unquoted field
        partition = _refine(partition, [state is SR or state is EC for state in current])
        current = [QUOTE_NEXT[state] for state in current]
        i += 1
    groups: dict[int, set[ParserState]] = {}
    for origin, p in enumerate(partition):
        groups.setdefault(p, set()).add(STATES[origin])
    return Divergence(
        at=min(i, hi),
        states=tuple(current),
        classes=tuple(frozenset(g) for g in groups.values()),
        anomalies=tuple(anomalies),
    )


def transfer_function(data: bytes, lo: int, hi: int, delimiter: int) -> tuple[ParserState, ...]:
    """The state at ``hi`` for each state at ``lo`` (index = start state)."""
    cursor = Cursor(data, hi, delimiter)
    d = diverge(cursor, lo)
    if not d.converged:
        return d.states
    return (run(cursor, d.at, d.states[0]),) * len(STATES)


def _prior(byte_before: bytes, delimiter: int) -> list[ParserState]:
    """Start states from the most to the least likely, knowing only the byte before the range."""
    if byte_before == b'"':
        first = [QQ, Q, F]  # a closing quote, an opening one, a literal one
    elif not byte_before:
        first = [SR]
    else:
        first = [after_run(byte_before[0], delimiter), Q, QQ]
    return first + [s for s in STATES if s not in first]


def speculate(divergence: Divergence, byte_before: bytes, delimiter: int) -> ParserState:
    """The likeliest start state: the fewest lenient readings, then the byte before decides.

    Without quotes every trajectory reads cleanly and the unquoted state the byte before
    gives wins; a chunk starting inside a quoted field reads its closing quote as a quote
    inside an unquoted field, and the in-quotes state wins (Ge et al., SIGMOD 2019).
    """
    prior = _prior(byte_before, delimiter)
    return min(STATES, key=lambda s: (divergence.anomalies[s], prior.index(s)))


def compose(
    transfers: Iterable[Sequence[int]], first: ParserState = ParserState.START_RECORD
) -> list[ParserState]:
    """Each chunk's true start state, from the chunks' transfer functions in file order."""
    states: list[ParserState] = []
    state = first
    for transfer in transfers:
        states.append(state)
        state = ParserState(transfer[state])
    return states


def encode_states(states: Iterable[int]) -> str:
    """States as digits (a transfer function ``"012345"``, a set ``"25"``), for storage."""
    return "".join(str(int(s)) for s in states)


def decode_states(text: str) -> tuple[ParserState, ...]:
    return tuple(ParserState(int(c)) for c in text)

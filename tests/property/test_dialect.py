"""The dialect's machine is csv.reader; everything derived from it agrees with it byte by byte."""

from __future__ import annotations

import csv
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from upflow.core.dialect import (
    CR,
    IDENTITY,
    LF,
    QUOTE,
    QUOTE_NEXT,
    SR,
    STATES,
    TRANSITIONS,
    Action,
    ByteClass,
    Cursor,
    ParserState,
    after_run,
    byte_class,
    compose,
    decode_states,
    diverge,
    encode_states,
    line_breaks,
    next_record,
    next_record_start,
    record_end,
    speculate,
    split_record,
    starts_record,
    step,
    transfer_function,
)

DELIMS = b",;\t|"
ALPHABET = b'"";,\t|\r\n\x00 a9'
BYTES = st.binary(max_size=60).map(lambda b: bytes(ALPHABET[x % len(ALPHABET)] for x in b))


def _by_table(buf: bytes, delim: int) -> list[list[str]]:
    """Records one byte at a time through TRANSITIONS (blank lines as [], like csv.reader)."""
    records: list[list[str]] = []
    state = SR
    fields: list[str] | None = None
    field = bytearray()
    blank = False
    for byte in buf:
        if starts_record(state, byte):
            fields, field, blank = [], bytearray(), byte in (CR, LF)
        state, action = TRANSITIONS[state][byte_class(byte, delim)]
        if action is Action.ADD:
            field.append(byte)
        elif action is Action.FIELD:
            assert fields is not None
            fields.append(field.decode("latin-1"))
            field = bytearray()
        elif action is Action.RECORD:
            assert fields is not None
            records.append([] if blank else [*fields, field.decode("latin-1")])
            fields = None
    if fields is not None:  # the end of the file inside a record
        records.append([*fields, field.decode("latin-1")])
    return records


def _csv(buf: bytes, delim: int) -> list[list[str]]:
    return list(csv.reader(io.StringIO(buf.decode("latin-1"), newline=""), delimiter=chr(delim)))


def _walk(buf: bytes, lo: int, hi: int, state: ParserState, delim: int) -> ParserState:
    for byte in buf[lo:hi]:
        state = step(state, byte, delim)
    return state


@settings(max_examples=1000)
@given(BYTES, st.sampled_from(DELIMS))
def test_the_table_is_csv_reader(buf: bytes, delim: int) -> None:
    assert _by_table(buf, delim) == _csv(buf, delim)


@settings(max_examples=1000)
@given(BYTES, st.sampled_from(DELIMS))
def test_record_scanner_and_field_splitter_are_csv_reader(buf: bytes, delim: int) -> None:
    cursor = Cursor(buf, len(buf), delim)
    records = []
    pos = 0
    while pos < len(buf):
        end, _ = record_end(cursor, pos, SR)
        records.append(split_record(buf[pos : len(buf) if end < 0 else end].decode("latin-1"), chr(delim)))
        if end < 0:
            break
        pos = next_record(buf, end, len(buf))
    assert records == _csv(buf, delim)


def test_derived_rules_follow_the_table() -> None:
    for delim in DELIMS:
        for state in STATES:
            assert QUOTE_NEXT[state] == step(state, QUOTE, delim)
            if state is not ParserState.IN_QUOTED_FIELD:
                for byte in (ord("a"), 0, ord(" "), CR, LF, delim):
                    assert step(state, byte, delim) == after_run(byte, delim) or state is ParserState.EAT_CRNL
    assert [byte_class(b, ord(";")) for b in b'a;"\r\n'] == list(ByteClass)


@settings(max_examples=1000)
@given(BYTES, st.sampled_from(DELIMS), st.data())
def test_transfer_function_divergence_and_record_starts(buf: bytes, delim: int, data: st.DataObject) -> None:
    lo = data.draw(st.integers(0, len(buf)))
    hi = data.draw(st.integers(lo, len(buf)))
    assert transfer_function(buf, lo, hi, delim) == tuple(_walk(buf, lo, hi, s, delim) for s in STATES)
    cursor = Cursor(buf, hi, delim)
    d = diverge(cursor, lo)
    assert d.states == tuple(_walk(buf, lo, d.at, s, delim) for s in STATES)
    assert d.converged or d.at == hi

    def starts(state: ParserState) -> list[int]:
        out = []
        for pos in range(lo, hi):
            if starts_record(state, buf[pos]):
                out.append(pos)
            state = step(state, buf[pos], delim)
        return out

    for state in STATES:
        mine = starts(state)
        assert d.compatible(state) == {s for s in STATES if starts(s) == mine}
        first = next_record_start(Cursor(buf, hi, delim), lo, state)
        assert (mine[0] if mine else hi) == min(first, hi)


@given(st.lists(st.tuples(*[st.sampled_from(STATES)] * 6), max_size=8), st.sampled_from(STATES))
def test_compose_is_the_states_one_chunk_after_another(
    transfers: list[tuple[ParserState, ...]], first: ParserState
) -> None:
    states = compose(transfers, first)
    state = first
    for k, transfer in enumerate(transfers):
        assert states[k] == state
        state = transfer[state]
    assert compose([IDENTITY] * 3) == [SR] * 3
    assert [decode_states(encode_states(t)) for t in transfers] == transfers


@given(BYTES)
def test_line_breaks_are_universal_newlines(buf: bytes) -> None:
    text = buf.decode("latin-1")
    lines = list(io.StringIO(text, newline=""))
    assert line_breaks(buf, 0, len(buf)) == sum(1 for line in lines if line.endswith(("\r", "\n")))


def test_speculation_reads_the_byte_before_and_the_quotes() -> None:
    delim = ord(";")
    unquoted = b"x;1\n2;3\n"  # no quote: the byte before decides the unquoted state
    cursor = Cursor(unquoted, len(unquoted), delim)
    assert speculate(diverge(cursor, 0), b"\n", delim) is ParserState.START_RECORD
    assert speculate(diverge(cursor, 0), b";", delim) is ParserState.START_FIELD
    assert speculate(diverge(cursor, 0), b"\r", delim) is ParserState.EAT_CRNL
    assert speculate(diverge(cursor, 0), b"a", delim) is ParserState.IN_FIELD
    inside = b'nha";1\n"a";2\n'  # the end of a quoted field: its closing quote
    cursor = Cursor(inside, len(inside), delim)
    assert speculate(diverge(cursor, 0), b"i", delim) is ParserState.IN_QUOTED_FIELD
    opening = b'1;2\n3;"a b";4\n'
    cursor = Cursor(opening, len(opening), delim)
    assert speculate(diverge(cursor, 0), b"\n", delim) is ParserState.START_RECORD


def test_split_record_refuses_a_line_break_outside_quotes() -> None:
    import pytest

    for text in ("a\nb", "a;b\r", '"a"\n', '"a"b\r;c'):
        with pytest.raises(ValueError):
            split_record(text, ";")
    assert split_record('"a\r\nb";"c""d"e;"f', ";") == ["a\r\nb", 'c"de', "f"]
    assert split_record('x"y;"";"', ";") == ['x"y', "", ""]

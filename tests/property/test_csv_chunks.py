"""Chunks parsed alone, speculated, composed and re-parsed == Python's csv.reader; kernel == reference.

The oracle is ``csv.reader`` with the detected delimiter over the decoded text (lines split at
``\\n``, ``\\r\\n`` and a lone ``\\r``): its records, judged by the rules with *its* fields
(``scalar_row(..., fields=record)``), each on the line it starts on. upflow's chunks must
give the same rows, totals and errors at the same lines — rows csv reads but upflow rejects
(too long, wrong field count) included: none disappears.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections import Counter

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from upflow.core.checker import check_file, merge_totals, preview
from upflow.core.chunk import ChunkResult, process_chunk, true_start_states
from upflow.core.chunking import ChunkRange, plan_chunks
from upflow.core.detect import FileFormat, FormatError, detect_format
from upflow.core.dialect import SR, STATES, ParserState, starts_record, step
from upflow.core.rules import Accumulator, Context, RegionResult, scalar_row
from upflow.definition import Limits

DOCS = [
    "529.982.247-25",
    "52998224725",
    "11.222.333/0001-81",
    "11222333000181",
    "12ABC34501DE35",
    "12abc34501de35",
    "11111111111",
    "123",
    "529.982.247-24",
    "abc",
]
AMOUNTS = ["10", "1.234,56", "1,234.56", "R$ -10,00", "(12,50)", "1.234", "x", "0,5", "7"]
TEXT = st.text(alphabet=st.sampled_from(list('ab ;,|\t"\nçã\r')), max_size=8)
HEADER = ["documento", "nome", "valor"]
BOM = b"\xef\xbb\xbf"


def _limits() -> Limits:
    # A small head so NUL bytes can appear past it (detection rejects a head holding one).
    return Limits(max_row_bytes=60, sniff_bytes=48)


@st.composite
def csv_files(draw: st.DrawFn, well_formed: bool = False) -> tuple[bytes, str]:
    """Rows of quoted / unquoted cells, blank lines, wrong field counts, too-long rows, raw text."""
    delim = draw(st.sampled_from([",", ";", "\t", "|"]))
    nl = draw(st.sampled_from(["\n", "\r\n", "\r"]))

    def cell(value: str) -> str:
        if any(c in value for c in (delim, '"', "\n", "\r")) or (value and draw(st.booleans())):
            return '"' + value.replace('"', '""') + '"'
        return value

    lines = [delim.join(header_cell for header_cell in HEADER)]
    for _ in range(draw(st.integers(0, 25))):
        kind = draw(st.integers(0, 9))
        if kind == 0:
            lines.append("")  # blank line
            continue
        cells = [cell(draw(st.sampled_from(DOCS))), cell(draw(TEXT)), cell(draw(st.sampled_from(AMOUNTS)))]
        if kind == 1 and not well_formed:
            cells = cells[: draw(st.integers(1, 2))]
        elif kind == 2 and not well_formed:
            cells.append(cell(draw(TEXT)))
        elif kind == 3 and not well_formed:
            cells[1] = "x" * draw(st.integers(50, 150))  # longer than the row limit
        elif kind == 4 and not well_formed:
            cells[1] = draw(TEXT)  # raw: stray quotes, delimiters, line breaks
        lines.append(delim.join(cells))
    text = nl.join(lines)
    if draw(st.booleans()):
        text += nl
    bom = draw(st.booleans()) and not well_formed
    return (BOM if bom else b"") + text.encode("utf-8"), delim


# Fuzzed bodies: tokens rich in quotes, delimiters, CR, LF, NUL, spaces, documents and amounts.
TOKENS = ['"', '"', '""', "\r", "\n", "\r\n", "\x00", " ", "a", "9", "ç", 'TV 42" Samsung', *DOCS, *AMOUNTS]


@st.composite
def fuzzed_files(draw: st.DrawFn) -> tuple[bytes, str]:
    delim = draw(st.sampled_from([",", ";", "\t", "|"]))
    tokens = st.sampled_from([*TOKENS, delim, delim, "\n"])
    body = "".join(draw(st.lists(tokens, max_size=120)))
    bom = BOM if draw(st.booleans()) else b""
    return bom + (delim.join(HEADER) + draw(st.sampled_from(["\n", "\r\n", "\r"])) + body).encode(), delim


def _detect(data: bytes, limits: Limits) -> FileFormat | None:
    try:
        return detect_format(data[: limits.sniff_bytes], len(data) <= limits.sniff_bytes, limits)
    except FormatError:
        return None


class Reader:
    """``read_tail`` over a bytes object, recording the reads."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.reads: list[tuple[int, int]] = []

    def __call__(self, a: int, b: int) -> bytes:
        assert 0 <= a <= b
        self.reads.append((a, b))
        return self.data[a:b]


def _process(
    data: bytes,
    chunk: ChunkRange,
    fmt: FileFormat,
    limits: Limits,
    *,
    state: ParserState | None = None,
    fast: bool = True,
    read: Reader | None = None,
) -> ChunkResult:
    return process_chunk(
        data[chunk.start : chunk.end],
        chunk,
        len(data),
        fmt,
        read or Reader(data),
        limits,
        start_state=state,
        fast=fast,
    )


def _pipeline(
    data: bytes, fmt: FileFormat, limits: Limits, chunk_size: int, fast: bool
) -> tuple[list[ChunkResult], list[int]]:
    """What the workers and the composer do: speculate every chunk, compose, re-parse the wrong ones."""
    read = Reader(data)
    chunks = plan_chunks(len(data), chunk_size)
    results = [_process(data, c, fmt, limits, fast=fast, read=read) for c in chunks]
    reparsed = []
    for chunk, state in zip(chunks, true_start_states(results), strict=True):
        if results[chunk.index].needs_reparse(state):
            results[chunk.index] = _process(data, chunk, fmt, limits, state=state, fast=fast, read=read)
            reparsed.append(chunk.index)
    # No worker reads another chunk's bytes but the byte on each side and its last row's tail.
    for a, b in read.reads:
        assert b - a == 1 or b - a <= limits.max_row_bytes + 1, (a, b)
    return results, reparsed


def _true_states(data: bytes, fmt: FileFormat, chunks: list[ChunkRange]) -> list[ParserState]:
    """The state at each chunk's ``max(start, data_start)``, one byte at a time from the header's end."""
    delim = ord(fmt.delimiter)
    states = []
    state, pos = SR, fmt.data_start
    for chunk in chunks:
        while pos < chunk.start:
            state = step(state, data[pos], delim)
            pos += 1
        states.append(state)
    return states


def _errors(results: list[ChunkResult]) -> list[tuple[int, str, str, str, str]]:
    out = []
    before = 0
    for r in results:
        out += [(1 + before + e.line_offset, e.column, e.code, e.message, e.value) for e in r.region.errors]
        before += r.line_breaks
    return out


def _oracle(data: bytes, fmt: FileFormat, limits: Limits) -> tuple[RegionResult, list[tuple[int, list[str]]]]:
    """csv.reader's records (line, fields) and the rules' verdicts on them."""
    text = data.decode(fmt.encoding)
    if fmt.bom:
        text = text[1:]
    lines = list(io.StringIO(text, newline=""))
    reader = csv.reader(iter(lines), delimiter=fmt.delimiter)
    assert tuple(f.strip() for f in next(reader)) == fmt.header
    ctx = Context(fmt, limits)
    acc = Accumulator()
    records = []
    # Does the last record run to the end of the file inside quotes (its last line break is then
    # field content, not a terminator)? A line appended after it would join its last field.
    sentinel = list(csv.reader([*lines, "\x01"], delimiter=fmt.delimiter))[-1]
    open_at_eof = sentinel != ["\x01"]
    before = reader.line_num
    for k, record in enumerate(reader):
        first, last = before + 1, reader.line_num
        before = last
        raw = "".join(lines[first - 1 : last])
        if not (open_at_eof and last == len(lines)):
            raw = _strip_terminator(raw)
        if not record:
            assert raw == ""
            continue
        records.append((first, record))
        scalar_row(acc, raw.encode(fmt.encoding), k, first - 1, ctx, fields=record)
    return acc.result(), records


def _strip_terminator(line: str) -> str:
    for terminator in ("\r\n", "\n", "\r"):
        if line.endswith(terminator):
            return line[: -len(terminator)]
    return line


def _assert_equal_to_oracle(results: list[ChunkResult], expected: RegionResult) -> None:
    regions = [r.region for r in results]
    assert sum(r.rows_total for r in regions) == expected.rows_total
    assert sum(r.rows_valid for r in regions) == expected.rows_valid
    assert sum(r.rows_invalid for r in regions) == expected.rows_invalid
    assert sum((Counter(r.errors_by_code) for r in regions), Counter()) == Counter(expected.errors_by_code)
    assert sum(r.amount_valid for r in regions) == expected.amount_valid
    assert merge_totals([r.totals for r in regions]) == merge_totals([expected.totals])
    oracle_errors = [(1 + e.line_offset, e.column, e.code, e.message, e.value) for e in expected.errors]
    assert _errors(results) == oracle_errors


def _check_against_oracle(data: bytes, chunk_size: int, fast: bool) -> None:
    limits = _limits()
    fmt = _detect(data, limits)
    assume(fmt is not None)
    assert fmt is not None
    expected, _ = _oracle(data, fmt, limits)
    results, reparsed = _pipeline(data, fmt, limits, chunk_size, fast)
    _assert_equal_to_oracle(results, expected)
    # Composition gives the true states; the re-parsed chunks are those speculated wrong.
    chunks = plan_chunks(len(data), chunk_size)
    truth = _true_states(data, fmt, chunks)
    starts = [max(c.start, fmt.data_start) for c in chunks]
    composed = true_start_states(results)
    for chunk, lo, state, true in zip(chunks, starts, composed, truth, strict=True):
        if lo < chunk.end:
            assert state == true, chunk
            assert results[chunk.index].start_state == true or true in results[chunk.index].compatible
    # Sequentially, one chunk: the same again.
    whole = _process(data, ChunkRange(0, 0, len(data)), fmt, limits, fast=fast)
    _assert_equal_to_oracle([whole], expected)
    assert reparsed == sorted(reparsed)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(csv_files(), st.integers(1, 200), st.booleans())
def test_generated_files_equal_csv_reader(file: tuple[bytes, str], chunk_size: int, fast: bool) -> None:
    _check_against_oracle(file[0], chunk_size, fast)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(fuzzed_files(), st.one_of(st.integers(1, 200), st.integers(200, 2_000)), st.booleans())
def test_fuzzed_bytes_equal_csv_reader(file: tuple[bytes, str], chunk_size: int, fast: bool) -> None:
    _check_against_oracle(file[0], chunk_size, fast)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(st.one_of(fuzzed_files(), csv_files()), st.integers(1, 120))
def test_any_start_state_kernel_equals_reference_and_compatible_states_parse_alike(
    file: tuple[bytes, str], chunk_size: int
) -> None:
    data, _ = file
    limits = _limits()
    fmt = _detect(data, limits)
    assume(fmt is not None)
    assert fmt is not None
    delim = ord(fmt.delimiter)
    for chunk in plan_chunks(len(data), chunk_size):
        by_state = {}
        for state in STATES:
            fast = _process(data, chunk, fmt, limits, state=state, fast=True)
            assert fast == _process(data, chunk, fmt, limits, state=state, fast=False)
            by_state[state] = fast
        lo = max(chunk.start, fmt.data_start)
        for state, res in by_state.items():
            # Transfer and line breaks do not depend on the state; compatible states parse alike.
            assert res.transfer == by_state[SR].transfer and res.line_breaks == by_state[SR].line_breaks
            for other in res.compatible:
                assert by_state[other].region == res.region
            if lo < chunk.end and lo > fmt.data_start:
                assert res.start_state == state
                # compatible == the start states giving the same record starts (byte by byte)
                mine = _record_starts(data, lo, chunk.end, state, delim)
                assert res.compatible == {
                    s for s in STATES if _record_starts(data, lo, chunk.end, s, delim) == mine
                }
                for s in STATES:  # the transfer function, byte by byte
                    end = s
                    for byte in data[lo : chunk.end]:
                        end = step(end, byte, delim)
                    assert res.transfer[s] == end


def _record_starts(data: bytes, lo: int, hi: int, state: ParserState, delim: int) -> list[int]:
    starts = []
    for pos in range(lo, hi):
        if starts_record(state, data[pos]):
            starts.append(pos)
        state = step(state, data[pos], delim)
    return starts


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.one_of(csv_files(well_formed=True), fuzzed_files()))
def test_preview_rows_are_csv_reader_records(file: tuple[bytes, str]) -> None:
    data, _ = file
    limits = Limits(sniff_bytes=4096)
    try:
        out = preview(data, True, limits, max_rows=10**6)
    except FormatError:
        assume(False)
        return
    fmt = detect_format(data, True, limits)
    _, records = _oracle(data, fmt, limits)
    rows = out["rows"]
    assert isinstance(rows, list)
    assert [(r["line"], r["values"]) for r in rows] == records


@pytest.mark.parametrize("chunk_size", [97, 997, 64 * 1024, 1 << 20, None])
def test_tv_42_inch_quote_in_an_unquoted_field(tmp_path, chunk_size: int | None) -> None:
    # The parity rule read this stray quote as opening a quoted field for the rest of the file.
    rows = ["52998224725;Maria;10,00\n"] * 100_000
    rows[2] = '52998224725;TV 42" Samsung;10,00\n'
    path = tmp_path / "tv.csv"
    path.write_bytes(("documento;produto;valor\n" + "".join(rows)).encode())
    res = check_file(path, chunk_size, Limits())
    assert res.summary.rows_total == res.summary.rows_valid == 100_000
    assert res.errors == [] and res.reparsed == ()
    assert res.totals[0].rows == 100_000


def test_long_row_reads_are_bounded() -> None:
    limits = dataclasses.replace(_limits(), max_row_bytes=100)
    data = b"documento;valor\n52998224725;1\n" + b"5" * 10_000 + b";1\n52998224725;2\n"
    fmt = detect_format(data, True, limits)
    read = Reader(data)
    res = _process(data, ChunkRange(0, 0, 40), fmt, limits, read=read)
    assert res.region.errors[-1].code == "row_too_long"
    assert sum(b - a for a, b in read.reads) <= limits.max_row_bytes + 1


def test_line_numbers_count_every_line_break() -> None:
    # \n, \r\n and a lone \r are one line each, inside quotes too; a record is on the line it starts.
    data = b'documento;nome;valor\r\n123;"a\rb\r\nc";1\r52998224725;x\n\n1;2\r\n'
    limits = Limits()
    fmt = detect_format(data, True, limits)
    for size in range(1, len(data) + 1):
        results, _ = _pipeline(data, fmt, limits, size, fast=True)
        assert [(line, code) for line, _, code, _, _ in _errors(results)] == [
            (2, "invalid_document"),
            (5, "missing_field"),
            (7, "missing_field"),
        ]


def test_chunks_before_the_data_own_nothing() -> None:
    data = b'"documento\n\n\n";valor\n52998224725;1\n'
    limits = Limits()
    fmt = detect_format(data, True, limits)
    assert fmt.data_start == data.index(b"\n52998") + 1 and fmt.header_newlines == 4
    for size in (1, 3, 5):
        results, reparsed = _pipeline(data, fmt, limits, size, fast=True)
        assert sum(r.region.rows_valid for r in results) == 1 and reparsed == []
        early = [
            r for r, c in zip(results, plan_chunks(len(data), size), strict=True) if c.end <= fmt.data_start
        ]
        assert all(r.transfer == STATES and r.compatible == set(STATES) for r in early)


def test_a_chunk_inside_a_quoted_field_speculates_in_quotes() -> None:
    # The chunk starts inside a quoted name with a line break: its closing quote reads as a
    # quote inside an unquoted field for the unquoted guess, so the quoted one wins.
    row = '52998224725;"Silva; ""Júnior""\nsegunda linha";10,00\n'
    data = ("documento;nome;valor\n" + row * 50).encode()
    limits = Limits()
    fmt = detect_format(data, True, limits)
    cut = data.index(b"segunda", 200)
    chunk = ChunkRange(1, cut, len(data))
    res = _process(data, chunk, fmt, limits)
    assert res.start_state == ParserState.IN_QUOTED_FIELD
    assert res.region.rows_valid == data[cut:].count(b"segunda") - 1  # all but the one it starts in
    assert not res.needs_reparse(_true_states(data, fmt, [chunk])[0])

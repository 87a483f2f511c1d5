"""Chunked processing == sequential processing == Python's csv module; kernel == scalar reference."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from upflow.core.checker import merge_totals, preview
from upflow.core.chunk import process_chunk
from upflow.core.chunking import ChunkRange, plan_chunks
from upflow.core.detect import FileFormat, detect_format
from upflow.core.rules import RegionResult, RowError
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
    "",
    "abc",
]
AMOUNTS = ["10", "1.234,56", "1,234.56", "R$ -10,00", "(12,50)", "1.234", "x", "", "0,5"]
TEXT = st.text(alphabet=st.sampled_from(list('ab ;,|\t"\nçã\r')), max_size=8)


@st.composite
def csv_files(draw: st.DrawFn, well_formed: bool = False) -> tuple[bytes, str]:
    delim = draw(st.sampled_from([",", ";", "\t", "|"]))
    header = ["documento", "nome", "valor"]
    nl = draw(st.sampled_from(["\n", "\r\n"]))

    def cell(value: str) -> str:
        if any(c in value for c in (delim, '"', "\n", "\r")) or (value and draw(st.booleans())):
            return '"' + value.replace('"', '""') + '"'
        return value

    lines = [delim.join(header)]
    for _ in range(draw(st.integers(0, 25))):
        kind = draw(st.integers(0, 9))
        if kind == 0:
            lines.append("")  # blank line
            continue
        doc = draw(st.sampled_from(DOCS))
        name = draw(TEXT)
        amount = draw(st.sampled_from(AMOUNTS))
        cells = [cell(doc), cell(name), cell(amount)]
        if kind == 1 and not well_formed:
            cells = cells[: draw(st.integers(1, 2))]
        elif kind == 2 and not well_formed:
            cells.append(cell(draw(TEXT)))
        elif kind == 3 and not well_formed:
            cells[1] = "x" * draw(st.integers(50, 150))  # longer than the row limit below
        elif kind == 4 and not well_formed:
            cells[1] = draw(TEXT)  # raw, possibly unbalanced quotes / stray delimiters
        lines.append(delim.join(cells))
    text = nl.join(lines)
    if draw(st.booleans()):
        text += nl
    bom = draw(st.booleans()) and not well_formed
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"), delim


def _limits() -> Limits:
    return Limits(max_row_bytes=60, sniff_bytes=4096)


def _run_chunked(
    data: bytes, fmt: FileFormat, limits: Limits, chunk_size: int, **kw: object
) -> tuple[list[RegionResult], list[tuple[int, RowError]]]:
    reads: list[tuple[int, int]] = []

    def read(a: int, b: int) -> bytes:
        assert 0 <= a <= b
        reads.append((a, b))
        return data[a:b]

    parity = newlines = 0
    results: list[RegionResult] = []
    errors: list[tuple[int, RowError]] = []
    for ch in plan_chunks(len(data), chunk_size):
        raw = data[ch.start : ch.end]
        res = process_chunk(raw, ch, len(data), fmt, bool(parity), read, limits, **kw)  # type: ignore[arg-type]
        results.append(res)
        errors.extend((1 + newlines + e.line_offset, e) for e in res.errors)
        parity ^= raw.count(b'"') & 1
        newlines += raw.count(b"\n")
    # Tail reads never go further than one row limit past the row's first byte (+1 byte to prove it).
    assert all(b - a <= limits.max_row_bytes + 1 + chunk_size for a, b in reads)
    return results, errors


def _strip_lines(errors: list[tuple[int, RowError]]) -> list[tuple[int, str, str, str, str]]:
    return [(line, e.column, e.code, e.message, e.value) for line, e in errors]


def _sequential(data: bytes, fmt: FileFormat, limits: Limits) -> RegionResult:
    whole = ChunkRange(0, 0, len(data))
    return process_chunk(data, whole, len(data), fmt, False, lambda a, b: data[a:b], limits, fast=False)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csv_files(), st.integers(1, 200), st.booleans())
def test_chunked_equals_sequential(file: tuple[bytes, str], chunk_size: int, fast: bool) -> None:
    data, _ = file
    limits = _limits()
    fmt = detect_format(data, True, limits) if _mappable(data, limits) else None
    if fmt is None:
        return
    seq = _sequential(data, fmt, limits)
    results, errors = _run_chunked(data, fmt, limits, chunk_size, fast=fast)
    assert sum(r.rows_total for r in results) == seq.rows_total
    assert sum(r.rows_valid for r in results) == seq.rows_valid
    assert sum(r.rows_invalid for r in results) == seq.rows_invalid
    assert sum((Counter(r.errors_by_code) for r in results), Counter()) == Counter(seq.errors_by_code)
    assert sum(r.amount_valid for r in results) == seq.amount_valid
    assert merge_totals([r.totals for r in results]) == merge_totals([seq.totals])
    assert _strip_lines(errors) == _strip_lines([(1 + e.line_offset, e) for e in seq.errors])


def _mappable(data: bytes, limits: Limits) -> bool:
    try:
        detect_format(data, True, limits)
    except Exception:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(csv_files(), st.integers(1, 200))
def test_kernel_equals_scalar_reference(file: tuple[bytes, str], chunk_size: int) -> None:
    data, _ = file
    limits = _limits()
    if not _mappable(data, limits):
        return
    fmt = detect_format(data, True, limits)
    for ch in [ChunkRange(0, 0, len(data)), *plan_chunks(len(data), chunk_size)]:
        raw = data[ch.start : ch.end]
        parity = bool(data[: ch.start].count(b'"') & 1)
        args = (raw, ch, len(data), fmt, parity, lambda a, b: data[a:b], limits)
        assert process_chunk(*args, fast=True) == process_chunk(*args, fast=False)


def test_kernel_equals_scalar_reference_on_bench_like_data() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from bench.processor import generate_csv

    data = generate_csv(3_000, seed=1)
    limits = Limits()
    fmt = detect_format(data[: limits.sniff_bytes], False, limits)
    ch = ChunkRange(0, 0, len(data))
    args = (data, ch, len(data), fmt, False, lambda a, b: data[a:b], limits)
    fast = process_chunk(*args, fast=True)  # the compiled kernel
    assert fast == process_chunk(*args, fast=False)
    assert 0.02 < fast.rows_invalid / fast.rows_total < 0.1


@settings(max_examples=150, deadline=None)
@given(csv_files(well_formed=True))
def test_rows_equal_python_csv(file: tuple[bytes, str]) -> None:
    data, delim = file
    limits = Limits(sniff_bytes=4096)
    if not _mappable(data, limits):
        return
    ours = preview(data, True, limits, max_rows=10**6)["rows"]
    assert isinstance(ours, list)
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=delim)
    header = next(reader)
    assert header == ["documento", "nome", "valor"]
    theirs = []
    before = reader.line_num
    for rec in reader:
        if rec:
            theirs.append({"line": before + 1, "values": rec})
        before = reader.line_num
    assert [r["values"] for r in ours] == [r["values"] for r in theirs]
    if b"\r" not in data:  # csv counts a lone \r as a line too; upflow counts \n only
        assert [r["line"] for r in ours] == [r["line"] for r in theirs]


def test_long_row_reads_are_bounded() -> None:
    limits = dataclasses.replace(_limits(), max_row_bytes=100)
    data = b"documento;valor\n52998224725;1\n" + b"5" * 10_000 + b";1\n52998224725;2\n"
    fmt = detect_format(data, True, limits)
    read_sizes: list[int] = []

    def read(a: int, b: int) -> bytes:
        read_sizes.append(b - a)
        return data[a:b]

    res = process_chunk(data[:40], ChunkRange(0, 0, 40), len(data), fmt, False, read, limits)
    assert res.errors[-1].code == "row_too_long"
    assert sum(read_sizes) <= limits.max_row_bytes + 1

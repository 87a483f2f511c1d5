from __future__ import annotations

import csv
import io
import itertools
import random

import pytest

from upflow.core.report import (
    CHUNK_HEADER_BYTES,
    REPORT_HEADER,
    UTF8_BOM,
    ReportSlice,
    decode_chunk_errors,
    encode_chunk_errors,
    plan_report_slices,
    safe_cell,
    write_report,
)
from upflow.core.rules import RowError

ERRS = [
    RowError(0, "documento", "invalid_document", "CPF check digits do not match", "529.982.247-24"),
    RowError(3, "", "extra_fields", "row has 5 fields", 'a;"b\nc";d,e'),
    RowError(7, "valor", "invalid_amount", "not a money amount", 'R$ ção\r\n"x"'),
]


def test_roundtrip() -> None:
    assert decode_chunk_errors(encode_chunk_errors(ERRS)) == ERRS
    assert decode_chunk_errors(encode_chunk_errors([])) == []
    assert decode_chunk_errors(b"") == []
    with pytest.raises(ValueError):
        decode_chunk_errors(b"a,b\n1,2\n")


def test_write_report_lines() -> None:
    out = io.StringIO()
    n = write_report(out, [(0, ERRS[:1]), (10, []), (25, ERRS[1:])])
    assert n == 3
    assert out.getvalue().startswith(UTF8_BOM)
    rows = list(csv.reader(io.StringIO(out.getvalue().removeprefix(UTF8_BOM), newline="")))
    assert tuple(rows[0]) == REPORT_HEADER
    assert [int(r[0]) for r in rows[1:]] == [1, 29, 33]
    assert rows[2][4] == 'a;"b\nc";d,e'


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+55 11", "'+55 11"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-12.50", "-12.50"),  # a plain number is no formula
        ("529.982.247-25", "529.982.247-25"),
        ("", ""),
    ],
)
def test_cells_that_would_open_as_formulas_open_as_text(cell: str, shown: str) -> None:
    assert safe_cell(cell) == shown


def test_the_report_neutralises_values_from_the_file() -> None:
    out = io.StringIO()
    write_report(out, [(0, [RowError(0, "=col", "invalid_amount", "m", '=HYPERLINK("x")')])])
    rows = list(csv.reader(io.StringIO(out.getvalue().removeprefix(UTF8_BOM), newline="")))
    assert rows[1][1] == "'=col" and rows[1][4] == '\'=HYPERLINK("x")'


@pytest.mark.parametrize("seed", range(40))
def test_report_slices_cover_the_chunks_in_order_each_big_enough_to_be_a_copied_part(seed: int) -> None:
    rng = random.Random(seed)
    slice_bytes = rng.choice([100, 1_000, 5_000])
    chunks = [
        (rng.choice([0, 0, CHUNK_HEADER_BYTES + rng.randrange(1, 3_000)]), rng.randrange(0, 50))
        for _ in range(rng.randrange(1, 60))
    ]
    slices = plan_report_slices(chunks, slice_bytes)
    assert plan_report_slices(chunks, slice_bytes) == slices  # every caller plans the same
    assert [s.index for s in slices] == list(range(len(slices)))
    assert slices[0].first_chunk == 0 and slices[-1].end_chunk == len(chunks)
    for before, after in itertools.pairwise(slices):
        assert before.end_chunk == after.first_chunk
    for piece in slices:
        assert piece.first_chunk < piece.end_chunk
        assert piece.line_breaks_before == sum(breaks for _, breaks in chunks[: piece.first_chunk])
        rows = sum(
            max(0, size - CHUNK_HEADER_BYTES) for size, _ in chunks[piece.first_chunk : piece.end_chunk]
        )
        if piece is not slices[-1]:
            assert rows >= slice_bytes  # its piece of the report is at least as long
            last_size = chunks[piece.end_chunk - 1][0]
            assert rows - max(0, last_size - CHUNK_HEADER_BYTES) < slice_bytes  # and no longer than needed


def test_a_report_smaller_than_a_slice_is_one_slice() -> None:
    assert plan_report_slices([(0, 3), (CHUNK_HEADER_BYTES + 10, 4)], 100) == [ReportSlice(0, 0, 2, 0)]
    assert plan_report_slices([(0, 7)], 100) == [ReportSlice(0, 0, 1, 0)]

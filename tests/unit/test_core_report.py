from __future__ import annotations

import csv
import io

import pytest

from upflow.core.report import (
    REPORT_HEADER,
    UTF8_BOM,
    decode_chunk_errors,
    encode_chunk_errors,
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

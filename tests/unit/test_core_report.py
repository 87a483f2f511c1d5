from __future__ import annotations

import csv
import io

import pytest

from upflow.core.report import REPORT_HEADER, decode_chunk_errors, encode_chunk_errors, write_report
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
    rows = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert tuple(rows[0]) == REPORT_HEADER
    assert [int(r[0]) for r in rows[1:]] == [1, 29, 33]
    assert rows[2][4] == 'a;"b\nc";d,e'

"""check_file vs an independent sequential computation (csv module + validate-docbr)."""

from __future__ import annotations

import csv
import io
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from validate_docbr import CNPJ, CPF

from upflow.core.checker import check_file, preview
from upflow.core.detect import FormatError
from upflow.core.money import MoneyError, parse_amount
from upflow.definition import Limits

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.processor import generate_csv


def _independent(data: bytes) -> tuple[int, int, Decimal, dict[str, int], dict[int, set[str]]]:
    cpf, cnpj = CPF(), CNPJ()
    text = data.decode("utf-8")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=";")
    next(reader)
    rows = valid = 0
    amount = Decimal(0)
    per_doc: dict[str, int] = {}
    bad: dict[int, set[str]] = {}
    line_before = reader.line_num
    for rec in reader:
        line = line_before + 1
        line_before = reader.line_num
        if not rec:
            continue
        rows += 1
        codes: set[str] = set()
        if len(rec) < 4:
            codes.add("missing_field")
        elif len(rec) > 4:
            codes.add("extra_fields")
        else:
            if not (cpf.validate(rec[0]) or cnpj.validate(rec[0])):
                codes.add("invalid_document")
            try:
                value = parse_amount(rec[2])
            except MoneyError:
                codes.add("invalid_amount")
        if codes:
            bad[line] = codes
            continue
        valid += 1
        amount += value
        key = "".join(c for c in rec[0].upper() if c.isalnum()).zfill(11)
        per_doc[key] = per_doc.get(key, 0) + 1
    return rows, valid, amount, per_doc, bad


@pytest.mark.parametrize("chunk_size", [None, 997, 64 * 1024])
def test_check_file_matches_independent(tmp_path: Path, chunk_size: int | None) -> None:
    data = generate_csv(4_000, seed=chunk_size or 3)
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    res = check_file(path, chunk_size, Limits())
    rows, valid, amount, per_doc, bad = _independent(data)
    assert res.summary.rows_total == rows
    assert res.summary.rows_valid == valid
    assert res.summary.rows_invalid == rows - valid
    assert res.summary.amount_valid == amount
    assert {t.document: t.rows for t in res.totals} == per_doc
    got: dict[int, set[str]] = {}
    for line, e in res.errors:
        got.setdefault(line, set()).add(e.code)
    assert got == bad
    assert [line for line, _ in res.errors] == sorted(line for line, _ in res.errors)
    assert sum(res.summary.errors.values()) == len(res.errors)


def test_check_file_crlf_quotes_and_too_long(tmp_path: Path) -> None:
    data = (
        b'\xef\xbb\xbfcpf,valor\r\n529.982.247-25,"1,00"\r\n\r\n"11.222.333/0001-81","R$ 2,50"\r\n'
        + b"1" * 300
        + b",1\r\n"
        + b'"52998224725","3"'
    )
    path = tmp_path / "g.csv"
    path.write_bytes(data)
    limits = Limits(max_row_bytes=100)
    for cs in (1, 7, 50, None):
        res = check_file(path, cs, limits)
        assert (res.summary.rows_total, res.summary.rows_valid) == (4, 3)
        assert [(line, e.code) for line, e in res.errors] == [(5, "row_too_long")]
        assert res.summary.amount_valid == Decimal("6.50")


def test_check_file_format_error(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_bytes(b"a;b\n1;2\n")
    with pytest.raises(FormatError):
        check_file(path, None, Limits())


def test_preview() -> None:
    head = "documento;nome;valor\n529.982.247-25;José;1.234,56\n\n123;Ana;x\n52998224725;Cut".encode()
    out = preview(head, False, Limits())
    assert out["encoding"] == "utf-8" and out["delimiter"] == ";"
    assert out["columns"] == {"document": "documento", "amount": "valor", "name": "nome", "date": None}
    rows = out["rows"]
    assert isinstance(rows, list) and len(rows) == 2  # the partial last row is ignored
    first = {"line": 2, "values": ["529.982.247-25", "José", "1.234,56"], "valid": True, "errors": []}
    assert rows[0] == first
    assert rows[1]["line"] == 4 and rows[1]["valid"] is False
    assert {e["code"] for e in rows[1]["errors"]} == {"invalid_document", "invalid_amount"}
    assert len(preview(head, True, Limits())["rows"]) == 3  # type: ignore[arg-type]
    with pytest.raises(FormatError):
        preview(b"foo;bar\n1;2\n", True, Limits())


def test_check_file_reparses_a_misspeculated_chunk(tmp_path: Path) -> None:
    # A quoted field holding what looks like rows: a chunk starting right after one of its line
    # breaks reads cleanly both in and out of quotes, and the byte before (\n) makes it guess
    # "out". Composition finds the true state (in quotes) and the chunk is parsed again.
    inside = "52998224725;fake;1,00\n" * 3
    data = f'documento;nome;valor\n52998224725;"quoted\n{inside}";2,00\n52998224725;after;3,00\n'.encode()
    path = tmp_path / "q.csv"
    path.write_bytes(data)
    cut = data.index(b"52998224725;fake")
    res = check_file(path, cut, Limits())
    assert res.reparsed[:1] == (1,)  # (and any later chunk inside the quoted field)
    assert (res.summary.rows_total, res.summary.rows_valid) == (2, 2)
    assert res.summary.amount_valid == Decimal("5.00")
    for size in range(1, len(data) + 1, 7):
        again = check_file(path, size, Limits())
        assert (again.summary, again.totals) == (res.summary, res.totals)


def test_check_file_lines_count_lone_cr_and_crlf(tmp_path: Path) -> None:
    data = b"documento;valor\r123;1\r\n\r52998224725;x\n"
    path = tmp_path / "cr.csv"
    path.write_bytes(data)
    for size in (1, 2, 3, 5, None):
        res = check_file(path, size, Limits())
        assert [(line, e.code) for line, e in res.errors] == [(2, "invalid_document"), (4, "invalid_amount")]

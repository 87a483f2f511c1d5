"""bench/pipeline.py: the generator's bookkeeping against an independent recount, and the check.

The recount reads the generated file with the ``csv`` module and judges documents with
validate-docbr and amounts with a regular expression of the notations the generator
writes: nothing of upflow's parser or of the generator's own tables.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import pytest
from validate_docbr import CNPJ, CPF

from bench.pipeline import (
    Expected,
    amount_text,
    cents_text,
    check_summary,
    check_totals,
    generate_csv,
    kind_of,
    parse_size,
    text_cents,
)
from upflow.definition import GiB, KiB, MiB

# Two places, an optional "R$ " and "-", integer digits plain or grouped by 3 with the
# separator the decimal one is not.
AMOUNT = re.compile(r"(?:R\$ )?(-)?(\d+|\d{1,3}(?:([.,])\d{3})+)([.,])(\d{2})")


def recount_amount(text: str) -> int | None:
    match = AMOUNT.fullmatch(text)
    if match is None or match.group(3) == match.group(4):
        return None
    cents = int(re.sub(r"[.,]", "", match.group(2))) * 100 + int(match.group(5))
    return -cents if match.group(1) else cents


def recount(path: Path) -> tuple[dict[str, object], dict[str, tuple[str, int, int]]]:
    cpf, cnpj = CPF(), CNPJ()
    rows_total = rows_valid = amount = 0
    errors: Counter[str] = Counter()
    totals: dict[str, tuple[str, int, int]] = {}
    with path.open(encoding="utf-8", newline="") as source:
        reader = csv.reader(source, delimiter=";")
        assert next(reader) == ["documento", "nome", "valor", "data"]
        for record in reader:
            if not record:
                continue  # a blank line is not a row
            rows_total += 1
            if len(record) != 4:
                errors["missing_field" if len(record) < 4 else "extra_fields"] += 1
                continue
            document, _, value, _ = record
            if cpf.validate(document):
                kind, key = "cpf", re.sub(r"\D", "", document)
            elif cnpj.validate(document):
                kind, key = "cnpj", re.sub(r"[^0-9A-Z]", "", document.upper())
            else:
                errors["invalid_document"] += 1
                continue
            cents = recount_amount(value)
            if cents is None:
                errors["invalid_amount"] += 1
                continue
            rows_valid += 1
            amount += cents
            _, rows, total = totals.get(key, (kind, 0, 0))
            totals[key] = (kind, rows + 1, total + cents)
    summary = {
        "rows_total": rows_total,
        "rows_valid": rows_valid,
        "rows_invalid": rows_total - rows_valid,
        "errors": dict(sorted(errors.items())),
        "amount_valid": cents_text(amount),
    }
    return summary, totals


@pytest.mark.parametrize(
    ("size", "documents", "seed"), [(256 * KiB, 300, 1), (600 * KiB, 2_000, 2), (64 * KiB, 5, 3)]
)
def test_expected_totals_equal_a_csv_and_validate_docbr_recount(
    tmp_path: Path, size: int, documents: int, seed: int
) -> None:
    path = tmp_path / "generated.csv"
    expected = generate_csv(
        path, size, documents, seed=seed, error_rate=0.05, quoted_rate=0.02, blank_rate=0.005
    )
    assert path.stat().st_size == size
    summary, totals = recount(path)
    assert expected.summary() == summary
    assert expected.totals() == totals
    assert set(expected.errors) == {"invalid_document", "invalid_amount", "missing_field", "extra_fields"}
    assert len(set(expected.documents)) == documents
    text = path.read_text(encoding="utf-8")
    assert '""' in text and "\n\n" in text, "quoted names and blank lines are in the file"
    if documents >= 100:  # every kind of document is there
        kinds = Counter(kind for kind, _, _ in totals.values())
        assert kinds["cpf"] and kinds["cnpj"]
        assert any(re.search("[A-Z]", document) for document in totals), "alphanumeric CNPJs"


def test_the_same_seed_gives_the_same_file(tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    generate_csv(first, 100 * KiB, 50, seed=9)
    generate_csv(second, 100 * KiB, 50, seed=9)
    assert first.read_bytes() == second.read_bytes()


def test_expected_survives_json(tmp_path: Path) -> None:
    expected = generate_csv(tmp_path / "x.csv", 64 * KiB, 20, seed=4)
    again = Expected.from_json(expected.to_json())
    assert again.totals() == expected.totals() and again.summary() == expected.summary()


@pytest.mark.parametrize("cents", [0, 5, -5, 100, 123456, -123456789, 10**15 + 7])
def test_amount_texts_round_trip(cents: int) -> None:
    assert text_cents(cents_text(cents)) == cents
    for style in range(5):
        assert recount_amount(amount_text(cents, style)) == cents


def totals_csv(path: Path, totals: dict[str, tuple[str, int, int]]) -> None:
    lines = [f"{d},{k},{r},{cents_text(c)}\n" for d, (k, r, c) in sorted(totals.items())]
    path.write_bytes("\ufeffdocument,type,rows,amount\n".encode() + "".join(lines).encode())


def test_the_check_passes_the_right_totals_and_names_every_wrong_one(tmp_path: Path) -> None:
    expected = generate_csv(tmp_path / "x.csv", 64 * KiB, 30, seed=5)
    totals = expected.totals()
    good = tmp_path / "good.csv"
    totals_csv(good, totals)
    assert check_totals(good, expected) == []

    first, second, third = sorted(totals)[:3]
    kind, rows, cents = totals[first]
    wrong = dict(totals)
    wrong[first] = (kind, rows, cents + 1)  # one cent off
    del wrong[second]  # missing
    wrong["52998224725"] = ("cpf", 1, 100)  # not in the file
    wrong[third] = ("cnpj" if totals[third][0] == "cpf" else "cpf", *totals[third][1:])
    bad = tmp_path / "bad.csv"
    totals_csv(bad, wrong)
    problems = check_totals(bad, expected)
    assert len(problems) == 4, problems
    assert any(first in p for p in problems) and any(second in p for p in problems)
    assert any("52998224725" in p for p in problems) and any(third in p for p in problems)


def test_the_summary_check_compares_every_count(tmp_path: Path) -> None:
    expected = generate_csv(tmp_path / "x.csv", 64 * KiB, 30, seed=6, error_rate=0.05)
    cli = {"upload_id": "u", "status": "completed_with_errors", **expected.summary()}
    assert check_summary(cli, expected) == []
    assert len(check_summary({**cli, "rows_valid": cli["rows_valid"] + 1}, expected)) == 1


@pytest.mark.parametrize(
    ("text", "size"),
    [("64MiB", 64 * MiB), ("1GiB", GiB), ("4G", 4 * GiB), ("1000000", 10**6), ("2MB", 2 * 10**6)],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_process_kinds_group_the_stack_s_children() -> None:
    assert kind_of("pump-chunks-0") == kind_of("pump-chunks-11") == "chunk workers (pumps)"
    assert kind_of("pump-events-0") == "planner (events pump)"
    assert kind_of("pump-reconciler-0") == "reconciler (pump)"
    assert kind_of("chalice local") == "API (chalice local)"
    assert kind_of("moto") == "moto"

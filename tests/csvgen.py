"""Generates CSV files whose right answer is known by construction.

The generator decides every row's fate (valid, or which error) and its
amount, so the expected summary, per-document totals and error lines are an
independent oracle: they come from the generator's own bookkeeping, not
from any parser.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from validate_docbr import CNPJ, CPF

from upflow.testing.documents import random_cnpj


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isalnum()).upper()


def _mask(document: str) -> str:
    if len(document) == 11:
        return f"{document[:3]}.{document[3:6]}.{document[6:9]}-{document[9:]}"
    return f"{document[:2]}.{document[2:5]}.{document[5:8]}/{document[8:12]}-{document[12:]}"


def _broken(document: str) -> str:
    last = document[-1]
    return document[:-1] + str((int(last) + 1) % 10)


def _format_amount(cents: int, style: int) -> str:
    negative = cents < 0
    units, frac = divmod(abs(cents), 100)
    if style == 0:
        text = f"{units}.{frac:02d}"
    elif style == 1:
        text = f"{units},{frac:02d}"
    elif style == 2:
        text = f"{units:,}".replace(",", ".") + f",{frac:02d}"
    else:
        text = "R$ " + f"{units:,}".replace(",", ".") + f",{frac:02d}"
    if negative:
        text = text.replace("R$ ", "R$ -") if text.startswith("R$") else "-" + text
    return text


@dataclass
class Expected:
    rows_total: int = 0
    rows_valid: int = 0
    rows_invalid: int = 0
    amount_valid: Decimal = Decimal("0.00")
    errors: Counter[str] = field(default_factory=Counter)
    totals: dict[str, tuple[str, int, Decimal]] = field(default_factory=dict)
    error_lines: list[tuple[int, str]] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {
            "rows_total": self.rows_total,
            "rows_valid": self.rows_valid,
            "rows_invalid": self.rows_invalid,
            "errors": dict(self.errors),
            "amount_valid": f"{self.amount_valid:.2f}",
        }


def generate(
    target_bytes: int, seed: int = 7, error_rate: float = 0.03, documents: int = 3000, crlf: bool = False
) -> tuple[bytes, Expected]:
    """A ``;``-separated file of about ``target_bytes`` with planted errors.

    ``documents`` distinct documents repeat across rows. Each chunk writes one
    DynamoDB update per distinct document it holds, and moto serves about a
    hundred requests a second here, so tests keep this modest.
    """
    rng = random.Random(seed)
    cpf, cnpj = CPF(), CNPJ()
    pool: list[tuple[str, str]] = []
    for index in range(documents):
        slot = index % 5
        if slot < 3:
            pool.append((_digits(cpf.generate()), "cpf"))
        elif slot == 3:
            pool.append((_digits(cnpj.generate()), "cnpj"))
        else:
            pool.append((random_cnpj(rng, alnum=True), "cnpj"))
    newline = "\r\n" if crlf else "\n"
    lines: list[str] = [f"documento;nome;valor;data{newline}"]
    size = len(lines[0])
    line_number = 2  # the header is line 1
    expected = Expected()
    sums: dict[str, list[object]] = defaultdict(lambda: ["", 0, Decimal(0)])
    while size < target_bytes:
        document, kind = rng.choice(pool)
        shown = _mask(document) if rng.random() < 0.5 else document
        cents = rng.randint(-50_000, 5_000_000)
        amount = _format_amount(cents, rng.randrange(4))
        name = f"Cliente {rng.randrange(10**6)}"
        if rng.random() < 0.02:
            name = (
                f'"Silva; ""Júnior""{newline}segunda linha"'  # delimiter, quotes and a newline inside quotes
            )
        fields = [shown, name, amount, "2026-07-01"]
        fate = "valid"
        if rng.random() < error_rate:
            fate = rng.choice(["invalid_document", "invalid_amount", "missing_field", "extra_fields"])
            if fate == "invalid_document":
                fields[0] = _broken(document) if document.isdigit() else document[:-1] + "X"
            elif fate == "invalid_amount":
                fields[2] = rng.choice(["12,3a", "abc", "1.2.3,4,5"])
            elif fate == "missing_field":
                fields = fields[:2]
            else:
                fields.append("surplus")
        row = ";".join(fields) + newline
        lines.append(row)
        size += len(row.encode())
        expected.rows_total += 1
        if fate == "valid":
            expected.rows_valid += 1
            value = Decimal(cents) / 100
            expected.amount_valid += value
            entry = sums[document]
            entry[0] = kind
            entry[1] = int(entry[1]) + 1  # type: ignore[call-overload]
            entry[2] = Decimal(entry[2]) + value  # type: ignore[arg-type]
        else:
            expected.rows_invalid += 1
            expected.errors[fate] += 1
            expected.error_lines.append((line_number, fate))
        line_number += row.count("\n")
        if rng.random() < 0.005:
            lines.append(newline)  # blank lines are skipped, not rows
            size += len(newline)
            line_number += 1
    expected.totals = {doc: (str(v[0]), int(v[1]), Decimal(v[2])) for doc, v in sums.items()}  # type: ignore[call-overload, arg-type]
    return "".join(lines).encode("utf-8"), expected

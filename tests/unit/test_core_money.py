from __future__ import annotations

from decimal import Decimal

import pytest

from upflow.core import money
from upflow.core.money import MoneyError, parse_amount, parse_cents


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1234", "1234.00"),
        ("1234.56", "1234.56"),
        ("1234,56", "1234.56"),
        ("1.234,56", "1234.56"),
        ("1,234.56", "1234.56"),
        ("1.234.567,8", "1234567.80"),
        ("1.234.567", "1234567.00"),
        ("R$ 1.234,56", "1234.56"),
        ("R$1.234,56", "1234.56"),
        ("R$\xa01.234,56", "1234.56"),
        ("-1.234,56", "-1234.56"),
        ("R$ -10,00", "-10.00"),
        ("-R$ 10,00", "-10.00"),
        ("(12,50)", "-12.50"),
        ("+5", "5.00"),
        ("  7,5 ", "7.50"),
        ("0,01", "0.01"),
        ("0", "0.00"),
        ("999999999999999", "999999999999999.00"),
    ],
)
def test_accepted(text: str, value: str) -> None:
    assert parse_amount(text) == Decimal(value)
    assert str(parse_amount(text)) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1.234", money.MSG_AMBIGUOUS),
        ("1,234", money.MSG_AMBIGUOUS),
        ("1234,567", money.MSG_DECIMALS),
        ("1,2345", money.MSG_DECIMALS),
        ("1.23.456", money.MSG_GROUPING),
        ("12,3,4", money.MSG_GROUPING),
        ("1.234.56", money.MSG_GROUPING),
        ("1,234,56.7", money.MSG_GROUPING),
        ("1.234,567", money.MSG_DECIMALS),
        ("1,234.5,6", money.MSG_GROUPING),
        ("abc", money.MSG_NOT_MONEY),
        ("R$", money.MSG_NOT_MONEY),
        ("", money.MSG_NOT_MONEY),
        ("1..2", money.MSG_GROUPING),
        ("--1", money.MSG_NOT_MONEY),
        ("-(1)", money.MSG_NOT_MONEY),
        ("(1", money.MSG_NOT_MONEY),
        ("1e5", money.MSG_NOT_MONEY),
        (".5", money.MSG_NOT_MONEY),
        ("5.", money.MSG_NOT_MONEY),
        ("1 234,56", money.MSG_NOT_MONEY),
        ("1234567890123456", money.MSG_TOO_LARGE),
    ],
)
def test_rejected(text: str, message: str) -> None:
    with pytest.raises(MoneyError) as exc:
        parse_cents(text)
    assert str(exc.value) == message


def test_verdict_depends_only_on_shape() -> None:
    # The fast path relies on it: replacing digits by other digits never changes the verdict.
    import random

    rng = random.Random(3)
    alphabet = "0123456789.,-+R$ ()"
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 12)))
        other = "".join(str(rng.randrange(10)) if c.isdigit() else c for c in text)
        assert _verdict(text) == _verdict(other), (text, other)


def _verdict(text: str) -> tuple[str, int, int]:
    try:
        sign, _, dec = money.parse_parts(text)
    except MoneyError as e:
        return (str(e), 0, 0)
    return ("ok", len(dec), sign)

"""Exact money parsing (integer cents / ``Decimal``) for Brazilian and international notations.

Accepted (surrounding whitespace ignored, NBSP included)::

    1234   1234.56   1234,56   1.234,56   1,234.56   1.234.567   R$ 1.234,56
    -1.234,56   R$ -10,00   -R$ 10,00   +5   (12,50)  → -12.50 (accounting negative)

Rules (they depend only on the *shape* of the text, never on digit values):

* at most 2 decimal places; the decimal separator is the last ``.``/``,`` when it
  is followed by 1–2 digits (or when both separators appear, the last one);
* digit grouping: first group 1–3 digits, then groups of exactly 3, all with the
  same separator, which differs from the decimal separator;
* ``1.234`` / ``1,234`` (a single separator followed by exactly 3 digits after
  1–3 digits) is **ambiguous** (1234 or 1.234?) and rejected;
* at most 15 integer digits; one sign at most (``-``/``+`` before or after
  ``R$``), or parentheses instead of a sign.
"""

from __future__ import annotations

import re
from decimal import Context, Decimal

MAX_INTEGER_DIGITS = 15

MSG_NOT_MONEY = "not a money amount"
MSG_AMBIGUOUS = "ambiguous amount: one separator followed by 3 digits (thousands or decimals?)"
MSG_DECIMALS = "more than 2 decimal places"
MSG_GROUPING = "bad digit grouping"
MSG_TOO_LARGE = f"amount too large (more than {MAX_INTEGER_DIGITS} integer digits)"

# The grammar, read left to right in one pass (never a backtracking pattern: a field of a
# million spaces is decided in linear time — tests/unit/test_core_hostile.py):
#   ws* [ "(" ws* ] [sign] ws* ["R$"] ws* [sign] ws* number ws* [ ")" ] ws*
# where number = digit ([0-9.,]* digit)? and ws is any Unicode whitespace (NBSP included).
_DIGITS = frozenset("0123456789")
_NUMBER_CHARS = frozenset("0123456789.,")
_SIGNS = ("-", "+")
_GROUPED = re.compile(r"[0-9]{1,3}(?:X[0-9]{3})+")


class MoneyError(ValueError):
    """The text is not an accepted amount; ``str(err)`` is the reason."""


def _check_grouped(intpart: str, sep: str) -> str:
    # Linear: {1,3} bounds the only choice, and each X must be followed by exactly 3 digits.
    if not _GROUPED.fullmatch(intpart.replace(sep, "X")):
        raise MoneyError(MSG_GROUPING)
    return intpart.replace(sep, "")


def parse_parts(text: str) -> tuple[int, str, str]:
    """``(sign, integer digits, decimal digits)`` of an amount; raises :class:`MoneyError`."""
    rest = text.strip()
    opened = rest.startswith("(")
    if opened:
        rest = rest[1:].lstrip()
    closed = rest.endswith(")")
    if closed:
        rest = rest[:-1].rstrip()
    s1 = s2 = None
    if rest.startswith(_SIGNS):
        s1, rest = rest[0], rest[1:].lstrip()
    if rest.startswith("R$"):
        rest = rest[2:].lstrip()
    if rest.startswith(_SIGNS):
        s2, rest = rest[0], rest[1:].lstrip()
    num = rest
    if not num or num[0] not in _DIGITS or num[-1] not in _DIGITS or not _NUMBER_CHARS.issuperset(num):
        raise MoneyError(MSG_NOT_MONEY)
    if opened != closed:
        raise MoneyError(MSG_NOT_MONEY)
    if (s1 is not None and s2 is not None) or (opened and (s1 or s2)):
        raise MoneyError(MSG_NOT_MONEY)
    sign = -1 if opened or "-" in (s1, s2) else 1
    dots, commas = num.count("."), num.count(",")
    if dots == 0 and commas == 0:
        intdigits, decdigits = num, ""
    elif dots and commas:
        k = max(num.rfind("."), num.rfind(","))
        dec_sep = num[k]
        grp_sep = "," if dec_sep == "." else "."
        intpart, decdigits = num[:k], num[k + 1 :]
        if dec_sep in intpart:
            raise MoneyError(MSG_GROUPING)
        if len(decdigits) > 2:
            raise MoneyError(MSG_DECIMALS)
        intdigits = _check_grouped(intpart, grp_sep)
    else:
        sep = "." if dots else ","
        if dots + commas >= 2:
            intdigits, decdigits = _check_grouped(num, sep), ""
        else:
            intpart, decdigits = num.split(sep)
            if len(decdigits) == 3 and len(intpart) <= 3:
                raise MoneyError(MSG_AMBIGUOUS)
            if len(decdigits) > 2:
                raise MoneyError(MSG_DECIMALS)
            intdigits = intpart
    if len(intdigits) > MAX_INTEGER_DIGITS:
        raise MoneyError(MSG_TOO_LARGE)
    return sign, intdigits, decdigits


def parse_cents(text: str) -> int:
    """The amount in integer cents; raises :class:`MoneyError`."""
    sign, intdigits, decdigits = parse_parts(text)
    return sign * int(intdigits + decdigits.ljust(2, "0"))


_EXACT = Context(prec=80)
_EXACT_LIMIT = 10**79


def cents_to_decimal(cents: int) -> Decimal:
    """Exact ``Decimal`` with two places (``Decimal('12.50')``), independent of the context precision."""
    if -_EXACT_LIMIT < cents < _EXACT_LIMIT:
        return Decimal(cents).scaleb(-2, _EXACT)  # exact: fewer digits than the precision
    return Decimal(f"{cents}E-2")


def parse_amount(text: str) -> Decimal:
    """The amount as an exact two-place ``Decimal``; raises :class:`MoneyError`."""
    return cents_to_decimal(parse_cents(text))

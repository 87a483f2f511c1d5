"""Hostile content costs linear time: any single field, up to the row limit, is decided fast.

The money pattern used to be one regular expression with nested optional whitespace runs: a
field of 400 spaces and an ``x`` took over 10 s (and held ``POST /preview`` as long). It is now
read left to right in one pass. These tests feed 1 MiB fields built against each piece of the
grammar through the money parser, the document classifier and a whole row of the reference,
with a bound generous enough never to be a flaky timer: the old pattern did not finish on
fields a thousand times shorter.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upflow.core.detect import FileFormat, detect_format
from upflow.core.documents import classify_document
from upflow.core.money import MoneyError, parse_parts
from upflow.core.rules import Accumulator, Context, scalar_row
from upflow.definition import Limits, MiB

MEG = 1 * MiB
# Seconds one 1 MiB field may take. The linear parser needs milliseconds; the old pattern
# needed more than this for 400 characters.
BOUND = 2.0

HOSTILE = {
    "spaces then x": " " * MEG + "x",
    "spaces between every token": "(" + " " * MEG + "-" + " " * MEG + "R$" + " " * MEG + "5",
    "signs and spaces": "- " * (MEG // 2) + "1",
    "NBSP run": "\u00a0" * MEG + "1,00x",
    "open paren and spaces": "(" + " " * MEG,
    "digits and separators": "1." * (MEG // 2) + "x",
    "bad grouping": "1" + ".1234" * (MEG // 5),
    "separators only": ".," * (MEG // 2),
    "R$ repeated": "R$" * (MEG // 2) + "1",
    "one long number": "9" * MEG,
}


def decided_fast(call: Callable[[], object]) -> None:
    started = time.perf_counter()
    call()
    assert time.perf_counter() - started < BOUND


@pytest.mark.parametrize("field", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_amount_is_decided_in_linear_time(field: str) -> None:
    def parse() -> None:
        with pytest.raises(MoneyError):
            parse_parts(field)

    decided_fast(parse)


@pytest.mark.parametrize("field", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_document_is_decided_in_linear_time(field: str) -> None:
    decided_fast(lambda: classify_document(field))


def test_a_hostile_row_is_decided_in_linear_time() -> None:
    fmt: FileFormat = detect_format(b"documento;valor\n52998224725;1,00\n", True, Limits())
    limits = Limits(max_row_bytes=4 * MEG)
    ctx = Context(fmt, limits)
    for field in HOSTILE.values():
        row = f"{field};{field}".encode()
        acc = Accumulator()
        decided_fast(lambda row=row, acc=acc: scalar_row(acc, row, 0, 0, ctx))  # type: ignore[misc]
        assert acc.rows_invalid == 1


# The grammar as the old pattern stated it: on short texts (where it is fast) the one-pass
# parser must agree with it on every verdict.
_OLD = re.compile(
    r"^\s*(?:(?P<open>\()\s*)?(?P<s1>[-+])?\s*(?P<cur>R\$)?\s*(?P<s2>[-+])?\s*"
    r"(?P<num>[0-9](?:[0-9.,]*[0-9])?)\s*(?P<close>\))?\s*$"
)


def _old_shape(text: str) -> tuple[str, str, str, str, str] | None:
    m = _OLD.match(text)
    if m is None or (m.group("open") is None) != (m.group("close") is None):
        return None
    s1, s2 = m.group("s1"), m.group("s2")
    if (s1 and s2) or (m.group("open") and (s1 or s2)):
        return None
    return (m.group("open") or "", s1 or "", m.group("cur") or "", s2 or "", m.group("num"))


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=" \u00a0\t()-+R$0123456789.,x", max_size=14))
def test_the_one_pass_parser_accepts_exactly_what_the_old_pattern_did(text: str) -> None:
    old = _old_shape(text)
    try:
        parse_parts(text)
        accepted_shape = True
    except MoneyError as error:
        accepted_shape = str(error) != "not a money amount"
    assert accepted_shape == (old is not None), text

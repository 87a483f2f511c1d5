"""Accumulator totals: rows summed by the reference and parts summed elsewhere (the kernel) merge exactly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from upflow.core.rules import Accumulator

DOCUMENTS = ["52998224725", "11222333000181", "12ABC34501DE35", "00000000191", "5299822472", "99"]
CENTS = st.integers(-(2**70), 2**70)  # beyond int64 too: the reference sums Python integers


def _doc_type(document: str) -> str:
    return "cpf" if len(document) == 11 else "cnpj"


@given(
    st.lists(st.tuples(st.sampled_from(DOCUMENTS), CENTS), max_size=20),
    st.lists(st.dictionaries(st.sampled_from(DOCUMENTS), st.tuples(st.integers(1, 50), CENTS)), max_size=3),
)
def test_summed_parts_merge_with_the_reference_rows(
    rows: list[tuple[str, int]], parts: list[dict[str, tuple[int, int]]]
) -> None:
    acc = Accumulator()
    expected: dict[str, list[int]] = {}
    for document, cents in rows:
        acc.add_valid(document, _doc_type(document), cents)
        t = expected.setdefault(document, [0, 0])
        t[0] += 1
        t[1] += cents
    for part in parts:
        documents = sorted(part)  # a part arrives sorted by document, as the kernel's does
        acc.add_summed(
            documents,
            [_doc_type(d) for d in documents],
            [part[d][0] for d in documents],
            [part[d][1] for d in documents],
        )
        for document, (n, cents) in part.items():
            t = expected.setdefault(document, [0, 0])
            t[0] += n
            t[1] += cents
    totals = acc.result().totals
    assert totals.documents == sorted(expected)
    assert totals.rows == [expected[d][0] for d in totals.documents]
    assert totals.cents == [expected[d][1] for d in totals.documents]
    assert totals.doc_types == [_doc_type(d) for d in totals.documents]


def test_large_parts_merge_whichever_side_holds_new_documents() -> None:
    # Beyond a few new documents the merge re-sorts instead of inserting one by one.
    acc = Accumulator()
    expected: dict[str, list[int]] = {}
    for step, count in ((3, 2_000), (7, 500), (11, 300)):
        documents = sorted(f"{k * step:011d}" for k in range(count))
        acc.add_summed(documents, ["cpf"] * count, [1] * count, [step] * count)
        for d in documents:
            t = expected.setdefault(d, [0, 0])
            t[0] += 1
            t[1] += step
    for k in range(0, 3_000, 13):
        document = f"{k:011d}"
        acc.add_valid(document, "cpf", -1)
        t = expected.setdefault(document, [0, 0])
        t[0] += 1
        t[1] -= 1
    totals = acc.result().totals
    assert totals.documents == sorted(expected)
    assert [[r, c] for r, c in zip(totals.rows, totals.cents, strict=True)] == [
        expected[d] for d in sorted(expected)
    ]

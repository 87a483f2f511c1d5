"""The compiled consolidation (scan.c) equals the pure-Python reference (consolidation.py).

The partial's bytes and sketch, and a shard's sums, are compared on adversarial columns and
pieces: texts the format cannot carry, values beyond int64 and sums that leave it, documents
too long for the C table's slots, a document with two types, malformed pieces, and enough
documents and exception lines to drive the C code's resumable edges (table growth, a full
exception buffer). Where the reference raises, the compiled path raises too.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upflow.core import consolidation as c
from upflow.core import kernel

INT64 = 2**63
BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Printable characters the format carries, and some it cannot (",", line breaks, non-ASCII).
ODD = BASE36 + " .-/_\t\"'"
UNFIT = ",\n\r\xe7"

Columns = tuple[list[str], list[str], list[int], list[int]]


def outcome(run: Callable[[], Any]) -> Any:
    """What ``run`` returns, or that it raised ValueError (the reference's refusals)."""
    try:
        return run()
    except ValueError:
        return "ValueError"


@pytest.fixture(scope="module", autouse=True)
def compiled() -> None:
    # Were the kernel missing, every comparison would compare the reference with itself.
    assert kernel.load() is not None, "the kernel is not built: run `make`"


documents_plain = st.text(alphabet=BASE36, min_size=11, max_size=14)
documents_odd = st.one_of(
    documents_plain,
    st.text(alphabet=ODD, min_size=0, max_size=60),
    st.text(alphabet=ODD + UNFIT, min_size=1, max_size=20),
)
doc_types = st.one_of(st.sampled_from(["cpf", "cnpj"]), st.text(alphabet=ODD + UNFIT, max_size=12))
int64s = st.integers(-INT64, INT64 - 1)
any_ints = st.one_of(
    int64s, st.integers(-(2**70), 2**70), st.sampled_from([-INT64, INT64 - 1, INT64, -INT64 - 1])
)


def columns(docs: st.SearchStrategy[str], types: st.SearchStrategy[str], ints: st.SearchStrategy[int]) -> Any:
    return st.lists(st.tuples(docs, types, ints, ints), max_size=80).map(
        lambda rows: ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows])
    )


@settings(max_examples=400, deadline=None)
@given(columns(documents_plain, st.sampled_from(["cpf", "cnpj"]), int64s))
def test_compiled_partial_equals_the_reference(cols: Columns) -> None:
    cols = _unique(cols)
    compiled = c.compiled_partial(*cols)
    assert compiled is not None  # ordinary columns: the C code decided, not the fallback
    assert compiled == c.reference_partial(*cols)


@settings(max_examples=400, deadline=None)
@given(columns(documents_odd, doc_types, any_ints))
def test_partial_of_odd_columns_equals_the_reference_or_both_refuse(cols: Columns) -> None:
    # Duplicates, texts that would cut a record, values beyond int64: the compiled path
    # declines, the reference decides (or raises); either way the same outcome.
    assert outcome(lambda: c.encode_partial(*cols)) == outcome(lambda: c.reference_partial(*cols))


def test_the_compiled_partial_declines_what_it_cannot_write() -> None:
    ok = (["00000000191"], ["cpf"], [1], [5])
    assert c.compiled_partial(*ok) is not None
    assert c.compiled_partial(["00000000191"], ["cpf"], [1], [INT64]) is None  # beyond int64
    assert c.compiled_partial(["0000,0000191"], ["cpf"], [1], [5]) is None  # would cut the record
    assert c.compiled_partial(["1", "1"], ["cpf", "cpf"], [1, 1], [5, 5]) is None  # twice
    assert c.compiled_partial(["1"], ["cpf", "cpf"], [1], [5]) is None  # ragged columns
    with pytest.raises(ValueError, match="twice"):
        c.encode_partial(["1", "1"], ["cpf", "cpf"], [1, 1], [5, 5])
    with pytest.raises(ValueError, match="cut its record"):
        c.encode_partial(["0000\n0191"], ["cpf"], [1], [5])
    big = c.encode_partial(["00000000191"], ["cpf"], [1], [INT64 * 10])
    assert big.data.endswith(b"00000000191,cpf,1,92233720368547758080\n")


def test_the_hash_is_pinned() -> None:
    # Buckets and sketches are compared across processes, machines and releases: the hash
    # is part of the format (scan.c computes the same; the partial property tests hold it).
    assert c.document_hash("") == 0
    assert c.document_hash("00000000191") == 0x0BD636BD97F6D27D
    assert c.document_hash("11222333000181") == 0x4EEC9936D20A3A03
    assert c.document_hash("12ABC34501DE35") == 0xB7F7EBCA9B91388E


# --- the reduce ------------------------------------------------------------------------------


def shard_pieces(partials: Sequence[c.Partial], shard: c.Shard) -> list[bytes]:
    pieces = []
    for partial in partials:
        lo, hi = c.index_range(shard.first_bucket, shard.end_bucket)
        start, end = c.records_range(partial.data[lo:hi], shard.first_bucket, shard.end_bucket)
        pieces.append(partial.data[start:end])
    return pieces


def _unique(cols: Columns) -> Columns:
    seen: dict[str, int] = {}
    for i, document in enumerate(cols[0]):
        seen.setdefault(document, i)
    keep = sorted(seen.values())
    return (
        [cols[0][i] for i in keep],
        [cols[1][i] for i in keep],
        [cols[2][i] for i in keep],
        [cols[3][i] for i in keep],
    )


# Documents long enough not to fit the C table's slot (SUM_TEXT bytes with the type) go
# through the exception path; huge values too; a shared pool makes documents repeat.
reduce_documents = st.one_of(documents_plain, st.text(alphabet=BASE36, min_size=30, max_size=50))
near_limit = st.one_of(int64s, st.sampled_from([INT64 - 1, -INT64, INT64 // 2, -(INT64 // 2)]), any_ints)


@settings(max_examples=300, deadline=None)
@given(
    pool=st.lists(reduce_documents, min_size=1, max_size=30, unique=True),
    chunks=st.lists(st.lists(st.tuples(st.integers(0, 29), near_limit, near_limit), max_size=30), max_size=6),
    shard_count=st.integers(1, 9),
)
def test_compiled_reduce_equals_the_reference(
    pool: list[str], chunks: list[list[tuple[int, int, int]]], shard_count: int
) -> None:
    partials = []
    for chunk in chunks:
        picked = {pool[k % len(pool)]: (rows, cents) for k, rows, cents in chunk}
        docs = sorted(picked)
        types = ["cpf" if len(d) == 11 else "cnpj" for d in docs]
        partials.append(
            c.reference_partial(docs, types, [picked[d][0] for d in docs], [picked[d][1] for d in docs])
        )
    for shard in c.plan_shards(shard_count):
        pieces = shard_pieces(partials, shard)
        assert c.reduce_shard(pieces) == c.reduce_shard(pieces, fast=False)


PIECE_BYTES = b"0123456789AB,,,,---\n\n\n\r cpf"


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.binary(max_size=60).map(lambda b: bytes(PIECE_BYTES[x % len(PIECE_BYTES)] for x in b)), max_size=4
    )
)
def test_reduce_of_malformed_pieces_equals_the_reference_or_both_refuse(pieces: list[bytes]) -> None:
    # Pieces are cut by the index at record boundaries; corrupt ones must still not be
    # summed differently: whatever the reference reads, the compiled reduce reads.
    assert outcome(lambda: c.reduce_shard(pieces)) == outcome(lambda: c.reduce_shard(pieces, fast=False))


def test_a_document_with_two_types_is_refused_by_both() -> None:
    pieces = [b"00000000191,cpf,1,5\n", b"00000000191,cnpj,1,5\n"]
    for fast in (True, False):
        with pytest.raises(ValueError, match="two types"):
            c.reduce_shard(pieces, fast=fast)
    # Also when one of the lines is an exception line (a value beyond int64) in C.
    pieces = [b"00000000191,cpf,1,5\n", b"00000000191,cnpj,1,99999999999999999999\n"]
    with pytest.raises(ValueError, match="two types"):
        c.reduce_shard(pieces)


def test_reduce_past_the_c_buffers_and_int64() -> None:
    # > 2,048 documents (the first table's half), > 1,024 exception lines in one piece (the
    # exception buffer), sums that leave int64 after a few chunks.
    rng = random.Random(4)
    docs = sorted({f"{rng.randrange(10**11):011d}" for _ in range(6_000)})
    long_docs = [f"{k:040d}" for k in range(1_500)]  # longer than a slot: exception lines
    partials = []
    for chunk in range(4):
        picked = docs[chunk * 1_000 : chunk * 1_000 + 3_000] + long_docs
        cents = [(INT64 // 3) * (1 if k % 2 else -1) + chunk for k in range(len(picked))]
        types = ["cpf"] * len(picked)
        partials.append(c.encode_partial(picked, types, [1] * len(picked), cents))
    (piece_set,) = [shard_pieces(partials, s) for s in c.plan_shards(1)]
    assert sum(p.count(b"\n") for p in piece_set) == 4 * 4_500
    compiled = c.reduce_shard(piece_set)
    assert compiled == c.reduce_shard(piece_set, fast=False)
    assert len(compiled) == len(docs[:6_000]) + len(long_docs)
    assert max(abs(r.cents) for r in compiled) > INT64  # some sums left int64, exactly

"""Partial objects, the shard plan and the reduce (pure): sums equal a plain recount."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upflow.core import consolidation as c

documents = st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=11, max_size=14)
# A document's type is a function of the document (the reduce refuses one with two types).
records = st.dictionaries(
    documents, st.tuples(st.integers(1, 10**6), st.integers(-(10**20), 10**20)), max_size=60
).map(
    lambda d: [
        c.PartialRecord(doc, "cpf" if len(doc) == 11 else "cnpj", rows, cents)
        for doc, (rows, cents) in d.items()
    ]
)


def encode(records: Iterable[c.PartialRecord]) -> c.Partial:
    rs = list(records)
    return c.encode_partial(
        [r.document for r in rs], [r.doc_type for r in rs], [r.rows for r in rs], [r.cents for r in rs]
    )


def read_share(partial: bytes, shard: c.Shard) -> bytes:
    """What a reducer reads: the index entries, then its records (two ranges)."""
    c.check_magic(partial[:8])
    lo, hi = c.index_range(shard.first_bucket, shard.end_bucket)
    start, end = c.records_range(partial[lo:hi], shard.first_bucket, shard.end_bucket)
    return partial[start:end]


@settings(max_examples=150, deadline=None)
@given(chunks=st.lists(records, min_size=1, max_size=6), shard_count=st.integers(1, 40))
def test_reduce_over_shards_equals_a_recount(chunks: list[list[c.PartialRecord]], shard_count: int) -> None:
    partials = [encode(chunk) for chunk in chunks]
    shards = c.plan_shards(shard_count)
    assert len(shards) == shard_count
    reduced: list[c.PartialRecord] = []
    for shard in shards:
        share = c.reduce_shard(read_share(p.data, shard) for p in partials)
        assert all(
            c.shard_of_bucket(c.bucket_of(c.document_hash(r.document)), shard_count) == shard.index
            for r in share
        )
        reduced.extend(share)
    expected: dict[str, list[int]] = {}
    for chunk in chunks:
        for r in chunk:
            expected.setdefault(r.document, [0, 0])
            expected[r.document][0] += r.rows
            expected[r.document][1] += r.cents
    assert sorted((r.document, r.rows, r.cents) for r in reduced) == sorted(
        (doc, rows, cents) for doc, (rows, cents) in expected.items()
    )


@given(records)
def test_a_partial_is_a_pure_function_of_its_records(chunk: list[c.PartialRecord]) -> None:
    shuffled = list(chunk)
    random.Random(7).shuffle(shuffled)
    first, second = encode(chunk), encode(shuffled)
    assert first == second
    assert first.documents == len(chunk)
    assert first.data.startswith(c.MAGIC) and len(first.data) >= c.HEADER_BYTES


def test_shards_cover_every_bucket_once() -> None:
    for count in (1, 2, 3, 7, 100, 4095, 4096):
        shards = c.plan_shards(count)
        assert shards[0].first_bucket == 0 and shards[-1].end_bucket == c.BUCKETS
        assert all(a.end_bucket == b.first_bucket for a, b in itertools.pairwise(shards))
        assert all(s.first_bucket < s.end_bucket for s in shards)
        for bucket in (0, 1, c.BUCKETS // 2, c.BUCKETS - 1):
            owner = shards[c.shard_of_bucket(bucket, count)]
            assert owner.first_bucket <= bucket < owner.end_bucket


def test_shard_count_grows_with_documents_and_partial_records() -> None:
    assert c.shard_count_for(0, 0, 20_000, 10**6) == 1
    assert c.shard_count_for(20_000, 20_000, 20_000, 10**6) == 1
    assert c.shard_count_for(20_001, 20_001, 20_000, 10**6) == 2
    # Few documents seen in many chunks: the reads, not the writes, set R.
    assert c.shard_count_for(1_000, 10**7, 20_000, 10**6) == 10
    assert c.shard_count_for(10**9, 10**9, 20_000, 10**6) == c.BUCKETS
    with pytest.raises(ValueError):
        c.plan_shards(0)


def test_sketch_estimates_distinct_documents() -> None:
    docs = [f"{n:011d}" for n in range(200_000)]
    # Ten overlapping chunks: every document is in two of them.
    chunks = [docs[i * 20_000 : (i + 2) * 20_000] for i in range(10)]
    sketches = [
        c.encode_partial(chunk, ["cpf"] * len(chunk), [1] * len(chunk), [1] * len(chunk)).sketch
        for chunk in chunks
    ]
    estimate = c.estimate_distinct(c.merge_sketches(sketches))
    assert 0.8 * len(docs) <= estimate <= 1.2 * len(docs)
    small = c.merge_sketches([c.encode_partial(["00000000191"], ["cpf"], [1], [1]).sketch] * 3)
    assert c.estimate_distinct(small) == 1


def test_duplicate_document_and_foreign_objects_are_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        c.encode_partial(["1", "1"], ["cpf", "cpf"], [1, 1], [1, 1])
    with pytest.raises(ValueError, match="not an upflow partial"):
        c.check_magic(b"PK\x03\x04....")
    with pytest.raises(ValueError):
        c.index_range(5, 5)
    with pytest.raises(ValueError):
        c.records_range(b"\x00" * 8, 0, 1)


def test_largest_documents() -> None:
    rs = [c.PartialRecord(f"{i:011d}", "cpf", 1, cents) for i, cents in enumerate([5, 50, -7, 50, 1])]
    assert [r.document for r in c.largest(rs, 3)] == ["00000000001", "00000000003", "00000000000"]


def test_a_partial_of_known_records_byte_for_byte() -> None:
    # The format as docs/design.md states it: magic, the bucket index, the records.
    docs = ["00000000191", "11222333000181"]
    partial = c.encode_partial(docs, ["cpf", "cnpj"], [2, 1], [-150, 10**20])
    buckets = [c.bucket_of(c.document_hash(d)) for d in docs]
    lines = {
        d: line
        for d, line in zip(
            docs, [b"00000000191,cpf,2,-150\n", b"11222333000181,cnpj,1,100000000000000000000\n"], strict=True
        )
    }
    records = b"".join(lines[d] for _, d in sorted(zip(buckets, docs, strict=True)))
    index = [
        sum(len(lines[d]) for b, d in zip(buckets, docs, strict=True) if b < bucket)
        for bucket in range(c.BUCKETS + 1)
    ]
    assert partial.data == c.MAGIC + b"".join(i.to_bytes(8, "big") for i in index) + records
    assert partial.sketch == tuple(sorted(map(c.document_hash, docs)))

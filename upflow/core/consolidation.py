"""Map/reduce consolidation, pure: partial objects, the shard plan and the reduce of one shard.

Map. A chunk's per-document totals become one *partial* object, a pure function of the
totals (same bytes on every redelivery). Its records are laid out by hash bucket, with an
index of where each bucket starts, so a reducer that owns a range of buckets reads its share
of any partial with two small ranged GETs (the two index entries, then the records).

    magic      8 bytes  b"UPFLOWP1"
    index      (BUCKETS + 1) big-endian uint64: offset of bucket b's first record,
               counted from the end of the index; entry BUCKETS is the records' length
    records    b"document,doc_type,rows,cents\\n", in (bucket, document) order

Reduce. When every chunk is done, the number of shards R is chosen from an estimate of the
distinct documents (a k-minimum-values sketch each chunk publishes, merged), and shard r
owns buckets ``[r·B/R, (r+1)·B/R)``. Each reducer sums its buckets over all partials and
writes each document once. See docs/design.md ("Consolidation").
"""

from __future__ import annotations

import hashlib
import heapq
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

MAGIC = b"UPFLOWP1"
# Hash buckets of the partial layout: the finest split of the documents a reduce can make.
_BUCKET_BITS = 12
BUCKETS = 1 << _BUCKET_BITS
_BUCKET_SHIFT = 64 - _BUCKET_BITS  # the top bits of the 64-bit document hash pick the bucket
_OFFSET = struct.Struct(">Q")
INDEX_BYTES = (BUCKETS + 1) * _OFFSET.size
HEADER_BYTES = len(MAGIC) + INDEX_BYTES
# Size of the k-minimum-values sketch of a chunk's documents (relative error ~ 1/sqrt(K)).
SKETCH_SIZE = 256
_HASH_SPACE = float(1 << 64)


def document_hash(document: str) -> int:
    """A stable 64-bit hash of a normalised document (the same in every process and release)."""
    return int.from_bytes(hashlib.blake2b(document.encode("ascii"), digest_size=8).digest(), "big")


def bucket_of(document_hash_value: int) -> int:
    return document_hash_value >> _BUCKET_SHIFT


@dataclass(frozen=True, slots=True)
class PartialRecord:
    """One document's share of one chunk (or, after the reduce, of the whole file)."""

    document: str
    doc_type: str
    rows: int
    cents: int


@dataclass(frozen=True)
class Partial:
    """A chunk's partial object and the sketch of its documents."""

    data: bytes
    documents: int
    sketch: tuple[int, ...]


def encode_partial(records: Iterable[PartialRecord]) -> Partial:
    """The partial object of a chunk's per-document totals (each document at most once)."""
    keyed = sorted((document_hash(r.document) >> _BUCKET_SHIFT, r.document, r) for r in records)
    index = [0] * (BUCKETS + 1)
    lines: list[bytes] = []
    length = 0
    hashes: list[int] = []
    previous = ""
    for bucket, document, record in keyed:
        if document == previous:
            raise ValueError(f"document {document} appears twice in one partial")
        previous = document
        line = f"{document},{record.doc_type},{record.rows},{record.cents}\n".encode("ascii")
        index[bucket + 1] += len(line)
        lines.append(line)
        length += len(line)
        hashes.append(document_hash(document))
    for bucket in range(BUCKETS):
        index[bucket + 1] += index[bucket]
    assert index[BUCKETS] == length
    head = MAGIC + b"".join(_OFFSET.pack(offset) for offset in index)
    return Partial(head + b"".join(lines), len(keyed), tuple(heapq.nsmallest(SKETCH_SIZE, set(hashes))))


def index_range(first_bucket: int, end_bucket: int) -> tuple[int, int]:
    """Byte range ``[start, end)`` of the index entries a reducer of ``[first, end)`` needs."""
    _check_buckets(first_bucket, end_bucket)
    start = len(MAGIC) + first_bucket * _OFFSET.size
    return start, start + (end_bucket - first_bucket + 1) * _OFFSET.size


def records_range(index_entries: bytes, first_bucket: int, end_bucket: int) -> tuple[int, int]:
    """Byte range ``[start, end)`` of the records of buckets ``[first, end)``, from the entries
    read at :func:`index_range` (empty when the partial has none there)."""
    _check_buckets(first_bucket, end_bucket)
    expected = (end_bucket - first_bucket + 1) * _OFFSET.size
    if len(index_entries) != expected:
        raise ValueError(f"index read has {len(index_entries)} bytes, expected {expected}")
    (start,) = _OFFSET.unpack_from(index_entries, 0)
    (end,) = _OFFSET.unpack_from(index_entries, expected - _OFFSET.size)
    if end < start:
        raise ValueError("corrupt partial index (offsets decrease)")
    return HEADER_BYTES + start, HEADER_BYTES + end


def check_magic(head: bytes) -> None:
    if head[: len(MAGIC)] != MAGIC:
        raise ValueError("not an upflow partial object")


def _check_buckets(first_bucket: int, end_bucket: int) -> None:
    if not 0 <= first_bucket < end_bucket <= BUCKETS:
        raise ValueError(f"bucket range [{first_bucket}, {end_bucket}) is not within [0, {BUCKETS})")


def decode_records(data: bytes) -> Iterator[PartialRecord]:
    """The records of a byte range cut at record boundaries (as :func:`records_range` gives)."""
    for line in data.splitlines():
        document, doc_type, rows, cents = line.decode("ascii").split(",")
        yield PartialRecord(document, doc_type, int(rows), int(cents))


def merge_sketches(sketches: Iterable[Sequence[int]]) -> tuple[int, ...]:
    """The sketch of the union of the chunks' documents."""
    return tuple(heapq.nsmallest(SKETCH_SIZE, set().union(*map(set, sketches))))


def estimate_distinct(sketch: Sequence[int]) -> int:
    """Distinct documents estimated from a merged sketch (exact below SKETCH_SIZE)."""
    if len(sketch) < SKETCH_SIZE:
        return len(sketch)
    kth = max(sketch) + 1
    return int((SKETCH_SIZE - 1) * _HASH_SPACE / kth)


@dataclass(frozen=True)
class Shard:
    """One reduce task: the documents whose bucket is in ``[first_bucket, end_bucket)``."""

    index: int
    first_bucket: int
    end_bucket: int


def shard_count_for(
    estimated_documents: int, partial_records: int, documents_per_shard: int, records_per_shard: int
) -> int:
    """R: enough shards that none writes more than ``documents_per_shard`` documents (estimated)
    nor reads more than ``records_per_shard`` partial records (exact: the chunks' document
    counts summed), within ``[1, BUCKETS]``."""
    if documents_per_shard <= 0 or records_per_shard <= 0:
        raise ValueError("documents_per_shard and records_per_shard must be positive")
    wanted = max(-(-estimated_documents // documents_per_shard), -(-partial_records // records_per_shard))
    return max(1, min(BUCKETS, wanted))


def plan_shards(shard_count: int) -> list[Shard]:
    """``shard_count`` shards over the buckets, split evenly."""
    if not 1 <= shard_count <= BUCKETS:
        raise ValueError(f"shard_count must be within 1..{BUCKETS}")
    return [
        Shard(r, r * BUCKETS // shard_count, (r + 1) * BUCKETS // shard_count) for r in range(shard_count)
    ]


def shard_of_bucket(bucket: int, shard_count: int) -> int:
    """The shard that owns ``bucket`` in a plan of ``shard_count`` shards (inverse of the split)."""
    return ((bucket + 1) * shard_count - 1) // BUCKETS


def reduce_records(pieces: Iterable[Iterable[PartialRecord]]) -> list[PartialRecord]:
    """Sum every document's shares; sorted by document."""
    sums: dict[str, list[int]] = {}
    types: dict[str, str] = {}
    for piece in pieces:
        for record in piece:
            total = sums.get(record.document)
            if total is None:
                sums[record.document] = [record.rows, record.cents]
                types[record.document] = record.doc_type
            else:
                total[0] += record.rows
                total[1] += record.cents
    return [PartialRecord(document, types[document], *sums[document]) for document in sorted(sums)]


def largest(records: Iterable[PartialRecord], count: int) -> list[PartialRecord]:
    """The ``count`` documents with the largest amounts (ties by document), largest first."""
    return heapq.nsmallest(count, records, key=lambda r: (-r.cents, r.document))

"""Map/reduce consolidation, pure: partial objects, the shard plan and the reduce of one shard.

Map. A chunk's per-document totals become one *partial* object, a pure function of the
totals (same bytes on every redelivery). Its records are laid out by hash bucket, with an
index of where each bucket starts, so a reducer that owns a range of buckets reads its share
of any partial with two small ranged GETs (the two index entries, then the records).

    magic      8 bytes  b"UPFLOWP2"
    index      (BUCKETS + 1) big-endian uint64: offset of bucket b's first record,
               counted from the end of the index; entry BUCKETS is the records' length
    records    b"document,doc_type,rows,cents\\n", in (bucket, document) order

A document's bucket is the top 12 bits of its 64-bit hash (:func:`document_hash`), whose
full value also feeds the chunk's sketch: one hash per document.

Reduce. When every chunk is done, the number of shards R is chosen from an estimate of the
distinct documents (a k-minimum-values sketch each chunk publishes, merged), and shard r
owns buckets ``[r·B/R, (r+1)·B/R)``. Each reducer sums its buckets over all partials and
writes each document once. See docs/design.md ("Consolidation").

Two implementations of the partial and of the reduce: the reference here, in Python, and a
compiled one in ``scan.c`` (through ``upflow.core.kernel``) that writes the same bytes and
sums the same totals without a Python object per record (a property test holds them equal).
The compiled one runs where the kernel loads; the reference decides wherever it does not,
and whatever the compiled one declines (values beyond int64, texts the format cannot carry).
"""

from __future__ import annotations

import ctypes
import heapq
import re
import struct
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from upflow.core import kernel

MAGIC = b"UPFLOWP2"
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
_MASK64 = (1 << 64) - 1
_LENGTH_FACTOR = 0x9E3779B97F4A7C15  # 2^64 / golden ratio: the hash's start, times the length
# Characters that would cut a record (the format has no quoting): refused in documents and types.
_UNFIT = re.compile(r"[,\n\r]")
# Longest decimal text of an int64 ("-9223372036854775808") and the record's four separators.
_INT64_TEXT = 20
_RECORD_EXTRA = 2 * _INT64_TEXT + 4
# Exception lines the compiled reduce hands back per call (pairs start, end).
_EXCEPTION_LINES = 1024
_FIRST_SUM_SLOTS = 1 << 12


def _fmix64(h: int) -> int:
    """MurmurHash3's 64-bit finaliser (scan.c's fmix64)."""
    h ^= h >> 33
    h = h * 0xFF51AFD7ED558CCD & _MASK64
    h ^= h >> 33
    h = h * 0xC4CEB9FE1A85EC53 & _MASK64
    return h ^ (h >> 33)


def document_hash(document: str) -> int:
    """A stable 64-bit hash of a normalised document (the same in every process, machine and
    release; scan.c computes the same): ``h = length × 0x9E3779B97F4A7C15``, then
    ``h = fmix64(h ^ w)`` for each 8-byte little-endian word ``w`` of the ASCII text (the last
    one padded with zero bytes). Not cryptographic: it spreads documents over buckets and
    feeds the distinct-count sketch; nothing depends on it being hard to collide."""
    data = document.encode("ascii")
    h = len(data) * _LENGTH_FACTOR & _MASK64
    for at in range(0, len(data), 8):
        h = _fmix64(h ^ int.from_bytes(data[at : at + 8], "little"))
    return h


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


def encode_partial(
    documents: Sequence[str],
    doc_types: Sequence[str],
    rows: Sequence[int],
    cents: Sequence[int],
    *,
    fast: bool = True,
) -> Partial:
    """The partial object of a chunk's per-document totals, given as columns (each document
    at most once; any order). ``fast=False``: the reference alone."""
    if fast:
        partial = compiled_partial(documents, doc_types, rows, cents)
        if partial is not None:
            return partial
    return reference_partial(documents, doc_types, rows, cents)


def reference_partial(
    documents: Sequence[str], doc_types: Sequence[str], rows: Sequence[int], cents: Sequence[int]
) -> Partial:
    """:func:`encode_partial` in Python: the definition of the partial's bytes."""
    n = len(documents)
    if not len(doc_types) == len(rows) == len(cents) == n:
        raise ValueError("the columns of a partial differ in length")
    hashes = list(map(document_hash, documents))
    order = sorted(range(n), key=lambda i: (hashes[i] >> _BUCKET_SHIFT, documents[i]))
    index = [0] * (BUCKETS + 1)
    lines: list[bytes] = []
    previous: str | None = None
    for i in order:
        document, doc_type = documents[i], doc_types[i]
        if document == previous:
            raise ValueError(f"document {document} appears twice in one partial")
        previous = document
        if _UNFIT.search(document) or _UNFIT.search(doc_type):
            raise ValueError(f"document {document!r} of type {doc_type!r} would cut its record")
        line = f"{document},{doc_type},{rows[i]},{cents[i]}\n".encode("ascii")
        index[(hashes[i] >> _BUCKET_SHIFT) + 1] += len(line)
        lines.append(line)
    for bucket in range(BUCKETS):
        index[bucket + 1] += index[bucket]
    head = MAGIC + b"".join(_OFFSET.pack(offset) for offset in index)
    return Partial(head + b"".join(lines), n, tuple(heapq.nsmallest(SKETCH_SIZE, set(hashes))))


def compiled_partial(
    documents: Sequence[str], doc_types: Sequence[str], rows: Sequence[int], cents: Sequence[int]
) -> Partial | None:
    """:func:`reference_partial`'s bytes made in C (scan.c's upflow_partial), or None where
    the reference must decide: no kernel, values beyond int64, texts the format cannot
    carry, a document twice (the reference then raises)."""
    lib = kernel.load()
    n = len(documents)
    if lib is None or not len(doc_types) == len(rows) == len(cents) == n:
        return None
    try:
        docs = "\n".join(documents).encode("ascii")
        types = "\n".join(doc_types).encode("ascii")
        row_values, cent_values = array("q", rows), array("q", cents)
    except (UnicodeEncodeError, OverflowError, TypeError):
        return None
    out = bytearray(HEADER_BYTES + len(docs) + len(types) + 2 + n * _RECORD_EXTRA)
    out[: len(MAGIC)] = MAGIC
    scratch = array("q", bytes(8 * (5 * n + BUCKETS + 3)))
    sketch = array("Q", bytes(8 * SKETCH_SIZE))
    sketch_n = ctypes.c_int64()
    at = kernel.address(out)
    length = lib.partial(
        docs,
        len(docs),
        types,
        len(types),
        row_values.buffer_info()[0],
        cent_values.buffer_info()[0],
        n,
        _BUCKET_BITS,
        scratch.buffer_info()[0],
        at + len(MAGIC),
        at + HEADER_BYTES,
        sketch.buffer_info()[0],
        SKETCH_SIZE,
        ctypes.byref(sketch_n),
    )
    if length < 0:
        return None
    return Partial(bytes(memoryview(out)[: HEADER_BYTES + length]), n, tuple(sketch[: sketch_n.value]))


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
        yield _decode_line(line)


def _decode_line(line: bytes) -> PartialRecord:
    document, doc_type, rows, cents = line.decode("ascii").split(",")
    return PartialRecord(document, doc_type, int(rows), int(cents))


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


def reduce_shard(pieces: Iterable[bytes], *, fast: bool = True) -> list[PartialRecord]:
    """Every document's shares in ``pieces`` (record ranges of partials, as
    :func:`records_range` cuts them) summed; sorted by document. ``fast=False``: the
    reference alone."""
    lib = kernel.load() if fast else None
    if lib is None:
        return reduce_records(map(decode_records, pieces))
    sums = _CompiledSums(lib)
    for piece in pieces:
        sums.add(piece)
    return sums.result()


def reduce_records(pieces: Iterable[Iterable[PartialRecord]]) -> list[PartialRecord]:
    """Sum every document's shares; sorted by document. The reference of :func:`reduce_shard`."""
    sums: dict[str, list[int]] = {}
    types: dict[str, str] = {}
    for piece in pieces:
        for record in piece:
            total = sums.get(record.document)
            if total is None:
                sums[record.document] = [record.rows, record.cents]
                types[record.document] = record.doc_type
            else:
                _same_type(record.document, types[record.document], record.doc_type)
                total[0] += record.rows
                total[1] += record.cents
    return [PartialRecord(document, types[document], *sums[document]) for document in sorted(sums)]


def _same_type(document: str, first: str, other: str) -> None:
    if first != other:
        raise ValueError(f"document {document} has two types in the partials: {first}, {other}")


class _CompiledSums:
    """The compiled reduce (scan.c's upflow_reduce): a table of sums in C fed piece by piece,
    so a shard's records never become Python objects. Lines it declines (values beyond
    int64, non-canonical text) come back as exceptions, summed here with Python integers
    and merged at the end: the totals are the reference's."""

    def __init__(self, lib: kernel.Kernel) -> None:
        self.lib = lib
        self.capacity = _FIRST_SUM_SLOTS
        self.table = bytearray(kernel.SUM_BYTES * self.capacity)
        self.state = array("q", bytes(8 * kernel.R_LEN))
        self.exceptions = array("q", bytes(16 * _EXCEPTION_LINES))
        self.extra: dict[str, list[int]] = {}  # document -> [rows, cents] of exception lines
        self.extra_types: dict[str, str] = {}

    def add(self, piece: bytes) -> None:
        state = self.state
        state[kernel.R_POS] = 0
        while True:
            status = self.lib.reduce(
                piece,
                len(piece),
                state.buffer_info()[0],
                kernel.address(self.table),
                self.capacity,
                self.exceptions.buffer_info()[0],
                _EXCEPTION_LINES,
            )
            self._drain(piece)
            if status == kernel.ST_TABLE_FULL:
                self._grow()
            elif status != kernel.ST_EXC_FULL:
                return

    def _drain(self, piece: bytes) -> None:
        count = self.state[kernel.R_NEXC]
        bounds = self.exceptions[: 2 * count].tolist()
        for k in range(count):
            line = piece[bounds[2 * k] : bounds[2 * k + 1]]
            # The C code cuts lines at "\n" only; the reference's splitlines also at "\r".
            for part in line.splitlines() or [line]:
                record = _decode_line(part)
                total = self.extra.get(record.document)
                if total is None:
                    self.extra[record.document] = [record.rows, record.cents]
                    self.extra_types[record.document] = record.doc_type
                else:
                    _same_type(record.document, self.extra_types[record.document], record.doc_type)
                    total[0] += record.rows
                    total[1] += record.cents
        self.state[kernel.R_NEXC] = 0

    def _grow(self) -> None:
        capacity = self.capacity * 4
        table = bytearray(kernel.SUM_BYTES * capacity)
        self.lib.reduce_rehash(kernel.address(self.table), self.capacity, kernel.address(table), capacity)
        self.table, self.capacity = table, capacity

    def result(self) -> list[PartialRecord]:
        used = self.state[kernel.R_USED]
        docs = bytearray((kernel.SUM_TEXT + 1) * used)
        type_texts = bytearray((kernel.SUM_TEXT + 1) * used)
        ints = array("q", bytes(16 * used))
        docs_len, types_len = ctypes.c_int64(), ctypes.c_int64()
        n = self.lib.reduce_sorted(
            kernel.address(self.table),
            self.capacity,
            kernel.address(docs),
            ctypes.byref(docs_len),
            kernel.address(type_texts),
            ctypes.byref(types_len),
            ints.buffer_info()[0],
        )
        documents = str(memoryview(docs)[: docs_len.value - 1], "ascii").split("\n") if n else []
        doc_types = str(memoryview(type_texts)[: types_len.value - 1], "ascii").split("\n") if n else []
        rows, cents = ints[0 : 2 * n : 2].tolist(), ints[1 : 2 * n : 2].tolist()
        if not self.extra:
            return list(map(PartialRecord, documents, doc_types, rows, cents))
        types = dict(zip(documents, doc_types, strict=True))
        sums = {d: [r, c] for d, r, c in zip(documents, rows, cents, strict=True)}
        for document, (extra_rows, extra_cents) in self.extra.items():
            extra_type = self.extra_types[document]
            total = sums.get(document)
            if total is None:
                sums[document] = [extra_rows, extra_cents]
                types[document] = extra_type
            else:
                _same_type(document, types[document], extra_type)
                total[0] += extra_rows
                total[1] += extra_cents
        return [PartialRecord(d, types[d], *sums[d]) for d in sorted(sums)]


def largest(records: Iterable[PartialRecord], count: int) -> list[PartialRecord]:
    """The ``count`` documents with the largest amounts (ties by document), largest first."""
    return heapq.nsmallest(count, records, key=lambda r: (-r.cents, r.document))

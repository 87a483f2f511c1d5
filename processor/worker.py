"""The chunk worker: one chunk message → validated rows applied exactly once.

Steps (docs/design.md, "The chunk rule" and "Exactly-once effects"):
1. read the chunk's raw range, publish its quote parity and newline count;
2. learn the quote state at its start from the earlier chunks' parities;
3. parse, validate and aggregate the rows it owns (pure ``upflow.core``);
4. store its row errors in S3 (deterministic, so overwriting is harmless);
5. apply per-document totals, each write guarded by the chunk's index on the item;
6. flip the chunk to ``completed`` and add its summary to the upload in one transaction;
7. finalise the upload when it was the last chunk.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from processor.batch import Record, receive_count
from processor.finalize import maybe_finalize
from processor.model import (
    CHUNK_COMPLETED,
    CHUNK_FAILED,
    CHUNK_PROCESSING,
    chunk_errors_key,
    chunk_items,
    chunk_key,
)
from upflow.aws.dynamo import ConditionFailed, Item, TransactionCancelled, Update, transact
from upflow.core.chunking import ChunkRange
from upflow.core.csvscan import scan_range
from upflow.core.detect import FileFormat
from upflow.core.report import encode_chunk_errors
from upflow.core.rows import DocumentTotal, RegionResult, process_chunk
from upflow.server.uploads import iso, upload_key
from upflow.server.wiring import Services

log = logging.getLogger("upflow.worker")
_TRANSACTION_ATTEMPTS = 8
_WRITE_THREADS = 16
# Results item attribute: indexes of the chunks whose share is already added.
APPLIED_CHUNKS = "applied_chunks"


def process_message(services: Services, record: Record) -> None:
    body: dict[str, Any] = json.loads(record["body"])
    upload_id, index = str(body["upload_id"]), int(body["index"])
    try:
        process_chunk_once(services, upload_id, index)
    except Exception as error:
        _record_failure(
            services,
            upload_id,
            index,
            error,
            final=receive_count(record) >= services.config.limits.max_receives,
        )
        raise


def process_chunk_once(services: Services, upload_id: str, index: int) -> None:
    upload = services.status.get(upload_key(upload_id))
    chunk_item = services.status.get(chunk_key(upload_id, index))
    if upload is None or chunk_item is None:
        raise RuntimeError(f"chunk {index} of upload {upload_id} is not planned")
    if chunk_item["status"] == CHUNK_COMPLETED:
        return  # a duplicate delivery: the effects are already in
    _mark_processing(services, upload_id, index, chunk_item)

    key = str(upload["key"])
    chunk = ChunkRange(index=index, start=int(chunk_item["start"]), end=int(chunk_item["end"]))
    data = services.store.read_range(key, chunk.start, chunk.end)
    if len(data) != chunk.end - chunk.start:
        raise RuntimeError(f"short read of chunk {index}: {len(data)} of {chunk.end - chunk.start} bytes")
    stats = scan_range(data)
    _publish_stats(services, upload_id, index, stats.quote_parity, stats.newlines)
    in_quotes = _quote_state_at(services, upload_id, key, index)

    file_format = FileFormat.from_json(upload["format"])
    object_size = int(upload["object_size"])
    result = process_chunk(
        data,
        chunk,
        object_size,
        file_format,
        in_quotes,
        lambda start, end: services.store.read_range(key, start, min(end, object_size)),
        services.config.limits,
    )
    del data
    if result.errors:
        services.store.put_bytes(chunk_errors_key(upload_id, index), encode_chunk_errors(result.errors))
    _apply_totals(services, upload_id, index, result.totals)
    _complete(services, upload_id, index, result)
    maybe_finalize(services, upload_id)


def _mark_processing(services: Services, upload_id: str, index: int, chunk_item: Item) -> None:
    now = iso(time.time())
    if chunk_item["status"] == CHUNK_FAILED:
        # A late redelivery of a chunk already counted as failed: un-count it atomically.
        try:
            transact(
                services.status.client,
                [
                    services.status.tx_update(
                        chunk_key(upload_id, index),
                        Update(
                            set={"status": CHUNK_PROCESSING, "updated_at": now},
                            add={"attempts": 1},
                            condition="#s = :failed",
                            condition_names={"#s": "status"},
                            condition_values={":failed": CHUNK_FAILED},
                        ),
                    ),
                    services.status.tx_update(upload_key(upload_id), Update(add={"chunks_failed": -1})),
                ],
            )
        except TransactionCancelled:
            pass  # someone else moved it first; the state below decides
        return
    try:
        services.status.update(
            chunk_key(upload_id, index),
            Update(
                set={"status": CHUNK_PROCESSING, "updated_at": now},
                add={"attempts": 1},
                condition="#s IN (:pending, :processing)",
                condition_names={"#s": "status"},
                condition_values={":pending": "pending", ":processing": CHUNK_PROCESSING},
            ),
        )
    except ConditionFailed:
        pass


def _publish_stats(services: Services, upload_id: str, index: int, parity: int, newlines: int) -> None:
    services.status.update(
        chunk_key(upload_id, index), Update(set={"quote_parity": parity, "newlines": newlines})
    )


def _quote_state_at(services: Services, upload_id: str, key: str, index: int) -> bool:
    """Quote state at the chunk's first byte: XOR of all earlier chunks' parities.

    Earlier workers publish theirs as soon as they have read their range. One
    still missing (its worker has not run yet, or died before reading) is
    counted here from S3 and published: it is a pure function of the bytes,
    so two publishers always agree.
    """
    if index == 0:
        return False
    earlier = {
        int(item["index"]): item
        for item in chunk_items(
            services.status,
            upload_id,
            projection=("index", "start", "end", "quote_parity", "newlines"),
            before_index=index,
        )
    }
    if len(earlier) != index:
        raise RuntimeError(f"upload {upload_id}: only {len(earlier)} of {index} earlier chunks are planned")
    parity = 0
    for position in range(index):
        item = earlier[position]
        if "quote_parity" not in item:
            stats = _count_range(services, key, int(item["start"]), int(item["end"]))
            _publish_stats(services, upload_id, position, stats[0], stats[1])
            item["quote_parity"] = stats[0]
        parity ^= int(item["quote_parity"])
    return parity == 1


def _count_range(services: Services, key: str, start: int, end: int) -> tuple[int, int]:
    quotes = newlines = 0
    for piece in services.store.iter_range(key, start, end):
        stats = scan_range(piece)
        quotes += stats.quote_parity
        newlines += stats.newlines
    return quotes % 2, newlines


def _apply_totals(services: Services, upload_id: str, index: int, totals: Sequence[DocumentTotal]) -> None:
    """Add this chunk's share to each document's item, once.

    Each document item keeps the set of chunk indexes already added to it
    (``applied_chunks``); the update adds the counts *and* the index under the
    condition that the index is not there yet. A redelivered or raced chunk
    finds its index present and adds nothing. Single-item conditional writes
    (run in parallel) cost half a transaction's capacity and never conflict
    with another chunk's writes to the same hot document.
    """

    def apply(total: DocumentTotal) -> None:
        try:
            services.results.update(
                {"upload_id": upload_id, "document": total.document},
                Update(
                    set={"doc_type": total.doc_type},
                    add={"rows": total.rows, "amount": total.amount, APPLIED_CHUNKS: {index}},
                    condition="NOT contains(#applied, :chunk)",
                    condition_names={"#applied": APPLIED_CHUNKS},
                    condition_values={":chunk": index},
                ),
            )
        except ConditionFailed:
            pass  # this chunk's share is already in

    with ThreadPoolExecutor(max_workers=_WRITE_THREADS) as pool:
        for _ in pool.map(apply, totals):
            pass


def _transact_guarded(services: Services, operations: list[dict[str, Any]]) -> bool:
    """Run a transaction; False when its first (guard) condition says it already happened."""
    for attempt in range(_TRANSACTION_ATTEMPTS):
        try:
            transact(services.status.client, operations)
            return True
        except TransactionCancelled as cancelled:
            if cancelled.reasons and cancelled.reasons[0] == "ConditionalCheckFailed":
                return False
            if "TransactionConflict" not in cancelled.reasons and "ThrottlingError" not in cancelled.reasons:
                raise
            time.sleep(min(2.0, 0.05 * 2**attempt) * random.random())
    raise RuntimeError("transaction kept conflicting")


def _complete(services: Services, upload_id: str, index: int, result: RegionResult) -> None:
    error_counts = {f"err_{code}": count for code, count in result.errors_by_code.items() if count}
    counts: dict[str, int | Decimal] = {
        "rows_total": result.rows_total,
        "rows_valid": result.rows_valid,
        "rows_invalid": result.rows_invalid,
        "amount_valid": result.amount_valid,
        **error_counts,
    }
    operations = [
        services.status.tx_update(
            chunk_key(upload_id, index),
            Update(
                set={
                    "status": CHUNK_COMPLETED,
                    "updated_at": iso(time.time()),
                    "errors_count": len(result.errors),
                    **counts,
                },
                condition="#s = :processing",
                condition_names={"#s": "status"},
                condition_values={":processing": CHUNK_PROCESSING},
            ),
        ),
        services.status.tx_update(
            upload_key(upload_id),
            Update(add={"chunks_done": 1, **counts}, set={"updated_at": iso(time.time())}),
        ),
    ]
    _transact_guarded(services, operations)


def _record_failure(services: Services, upload_id: str, index: int, error: Exception, final: bool) -> None:
    message = f"{type(error).__name__}: {error}"[:1000]
    try:
        if not final:
            services.status.update(chunk_key(upload_id, index), Update(set={"last_error": message}))
            return
        transact(
            services.status.client,
            [
                services.status.tx_update(
                    chunk_key(upload_id, index),
                    Update(
                        set={"status": CHUNK_FAILED, "last_error": message, "updated_at": iso(time.time())},
                        condition="#s IN (:pending, :processing)",
                        condition_names={"#s": "status"},
                        condition_values={":pending": "pending", ":processing": CHUNK_PROCESSING},
                    ),
                ),
                services.status.tx_update(upload_key(upload_id), Update(add={"chunks_failed": 1})),
            ],
        )
        maybe_finalize(services, upload_id)
    except Exception:
        log.exception("could not record the failure of chunk %s of %s", index, upload_id)

"""The chunk worker (map): one chunk message → its rows validated, its totals in one partial.

Steps (docs/design.md, "The chunk rule" and "Exactly-once effects"):
1. read the chunk's raw range, publish its quote parity and newline count;
2. learn the quote state at its start from the earlier chunks' parities;
3. parse, validate and aggregate the rows it owns (pure ``upflow.core``);
4. store its row errors and its per-document partial totals in S3 (each object a pure
   function of the chunk's bytes: a redelivery overwrites them with the same bytes);
5. flip the chunk to ``completed`` and add its summary to the upload in one transaction;
6. ask :func:`processor.finalize.advance` what comes next (the reduce, once every chunk is in).
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any

from processor.batch import Record, receive_count
from processor.finalize import advance, encode_sketch
from processor.model import chunk_errors_key, chunk_items, chunk_key, partial_key
from processor.workitems import CHUNK_WORK, complete, mark_processing, record_failure
from upflow.aws.dynamo import Item, Update
from upflow.core.chunk import process_chunk
from upflow.core.chunking import ChunkRange
from upflow.core.consolidation import Partial, PartialRecord, encode_partial
from upflow.core.csvscan import scan_range
from upflow.core.detect import FileFormat
from upflow.core.report import encode_chunk_errors
from upflow.core.rules import DocumentTotals, RegionResult
from upflow.server.states import CHUNK_COMPLETED
from upflow.server.uploads import upload_key
from upflow.server.wiring import Services

log = logging.getLogger("upflow.worker")
_TRANSACTION_ATTEMPTS = 8


def process_message(services: Services, record: Record) -> None:
    body: dict[str, Any] = json.loads(record["body"])
    upload_id, index = str(body["upload_id"]), int(body["index"])
    try:
        process_chunk_once(services, upload_id, index)
    except Exception as error:
        final = receive_count(record) >= services.config.limits.max_receives
        if record_failure(services, CHUNK_WORK, upload_id, index, error, final):
            advance(services, upload_id)
        raise


def process_chunk_once(services: Services, upload_id: str, index: int) -> None:
    upload = services.status.get(upload_key(upload_id))
    chunk_item = services.status.get(chunk_key(upload_id, index))
    if upload is None or chunk_item is None:
        raise RuntimeError(f"chunk {index} of upload {upload_id} is not planned")
    if chunk_item["status"] == CHUNK_COMPLETED:
        # A duplicate delivery: the effects are in. What follows them may not be (the
        # caller that completed it may have died before advancing): re-check it.
        advance(services, upload_id)
        return
    mark_processing(services, CHUNK_WORK, upload_id, index, chunk_item)
    result, partial = map_chunk(services, upload_id, upload, chunk_item)
    _complete(services, upload_id, index, result, partial)
    advance(services, upload_id)


def map_chunk(
    services: Services, upload_id: str, upload: Item, chunk_item: Item
) -> tuple[RegionResult, Partial]:
    """The chunk's rows processed and its two objects (errors, partial) written: everything
    but the status. Safe to repeat: the objects are pure functions of the chunk's bytes."""
    key = str(upload["key"])
    index = int(chunk_item["index"])
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
    partial = encode_partial(_records(result.totals))
    services.store.put_bytes(
        partial_key(upload_id, index), partial.data, content_type="application/octet-stream"
    )
    return result, partial


def _records(totals: DocumentTotals) -> list[PartialRecord]:
    return list(map(PartialRecord, totals.documents, totals.doc_types, totals.rows, totals.cents))


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


def _complete(services: Services, upload_id: str, index: int, result: RegionResult, partial: Partial) -> None:
    error_counts = {f"err_{code}": count for code, count in result.errors_by_code.items() if count}
    counts: dict[str, int | Decimal] = {
        "rows_total": result.rows_total,
        "rows_valid": result.rows_valid,
        "rows_invalid": result.rows_invalid,
        "amount_valid": result.amount_valid,
        **error_counts,
    }
    fields = {
        "errors_count": len(result.errors),
        "documents": partial.documents,
        "sketch": encode_sketch(partial.sketch),
        **counts,
    }
    complete(services, CHUNK_WORK, upload_id, index, fields, counts)

"""The reducer: one shard of an upload's documents, summed over every chunk's partial, written once.

A reduce message names an upload and a shard (a range of hash buckets,
``upflow.core.consolidation``). The reducer reads that range of every chunk's partial
object (two small ranged GETs each: the index entries, then the records), sums each
document's shares, and writes every document of the shard exactly once: BatchWriteItem
puts to the results table (a redelivery writes the same items again, harmlessly) and one
sorted CSV object. Then it flips the shard to ``completed`` and counts it on the upload
in one transaction, and asks :func:`processor.finalize.advance` what comes next.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from processor.batch import Record, receive_count
from processor.finalize import REPORT_CHUNK_ATTRIBUTES, advance, rewrite_report
from processor.model import chunk_items, partial_key, report_slice_key, shard_csv_key, shard_key
from processor.workitems import ITEM_COMPLETED, SHARD_WORK, complete, mark_processing, record_failure
from upflow.aws import telemetry
from upflow.aws.dynamo import Item
from upflow.aws.telemetry import logger
from upflow.core.consolidation import (
    PartialRecord,
    Shard,
    check_magic,
    index_range,
    largest,
    records_range,
    reduce_shard,
)
from upflow.core.money import cents_to_decimal
from upflow.core.report import safe_cell
from upflow.core.rules import decimal_str
from upflow.definition import METRIC_REDUCE_DURATION, results_partition
from upflow.server.uploads import upload_key
from upflow.server.wiring import Services

# Partials read at once: bounds the records in flight (and the threads) per reducer.
_READ_WINDOW = 32
_READ_THREADS = 16
# Result writes in flight per reducer: slices of 20 BatchWriteItem requests, 4 at a time.
_WRITE_SLICE = 500
_WRITE_THREADS = 4
TOP_DOCUMENTS = 10


def reduce_message(services: Services, record: Record) -> None:
    body: dict[str, Any] = json.loads(record["body"])
    upload_id, shard = str(body["upload_id"]), int(body["shard"])
    telemetry.work_on(upload_id, shard=shard)
    try:
        reduce_shard_once(services, upload_id, shard)
    except Exception as error:
        final = receive_count(record) >= services.config.limits.max_receives
        if record_failure(services, SHARD_WORK, upload_id, shard, error, final):
            advance(services, upload_id)
        raise


def reduce_shard_once(services: Services, upload_id: str, index: int) -> None:
    upload = services.status.get(upload_key(upload_id))
    item = services.status.get(shard_key(upload_id, index))
    if upload is None or item is None:
        raise RuntimeError(f"shard {index} of upload {upload_id} is not planned")
    if item["status"] != ITEM_COMPLETED:
        started = time.perf_counter()
        mark_processing(services, SHARD_WORK, upload_id, index, item)
        shard = Shard(index, int(item["first_bucket"]), int(item["end_bucket"]))
        totals = (
            reduce_shard(_shares(services, upload_id, int(upload["chunk_total"]), shard))
            if shard.first_bucket < shard.end_bucket
            else []  # a task that only rewrites a slice of the report
        )
        _write_results(services, [_result_item(upload_id, index, total) for total in totals])
        totals_csv = shard_csv(totals)
        services.store.put_bytes(shard_csv_key(upload_id, index), totals_csv)
        report = _rewrite_report_slice(services, upload_id, index, item)
        if _complete(services, upload_id, index, totals, {"csv_bytes": len(totals_csv), **report}):
            seconds = time.perf_counter() - started
            telemetry.emit(METRIC_REDUCE_DURATION, seconds * 1000)
            logger.info(
                "shard reduced", extra={"documents": len(totals), "duration_ms": round(seconds * 1000, 1)}
            )
    # A redelivery of finished work re-checks what comes next: finalisation is never lost.
    advance(services, upload_id)


def _shares(services: Services, upload_id: str, chunk_total: int, shard: Shard) -> Iterator[bytes]:
    """This shard's records of every chunk's partial (raw bytes: the reduce parses them), a
    window of chunks at a time. Each chunk's partial is the one its item names (the
    re-parse's, for a chunk parsed again from its true start state)."""
    start_states = {
        int(item["index"]): item.get("start_state")
        for item in chunk_items(services.status, upload_id, ("index", "start_state"))
        if "start_state" in item
    }

    def read(chunk: int) -> bytes:
        key = partial_key(upload_id, chunk, start_states.get(chunk))
        lo, hi = index_range(shard.first_bucket, shard.end_bucket)
        if shard.first_bucket == 0:
            # The first shard's entries follow the magic: one GET reads both and checks the object.
            head = services.store.read_range(key, 0, hi)
            check_magic(head)
            entries = head[lo:]
        else:
            entries = services.store.read_range(key, lo, hi)
        start, end = records_range(entries, shard.first_bucket, shard.end_bucket)
        return services.store.read_range(key, start, end) if end > start else b""

    with ThreadPoolExecutor(max_workers=_READ_THREADS) as pool:
        for first in range(0, chunk_total, _READ_WINDOW):
            yield from pool.map(read, range(first, min(chunk_total, first + _READ_WINDOW)))


def _write_results(services: Services, items: list[dict[str, Any]]) -> None:
    """The shard's result items, a few BatchWriteItem requests in flight at once: a request
    waits on the service for longer than it costs here (the puts are idempotent, so a
    slice written twice after a crash is harmless)."""
    slices = [items[at : at + _WRITE_SLICE] for at in range(0, len(items), _WRITE_SLICE)]
    if len(slices) <= 1:
        services.results.put_many(items)
        return
    with ThreadPoolExecutor(max_workers=_WRITE_THREADS) as pool:
        for _ in pool.map(services.results.put_many, slices):
            pass  # re-raises the first failed slice's error


def _result_item(upload_id: str, shard: int, total: PartialRecord) -> dict[str, Any]:
    return {
        "pk": results_partition(upload_id, shard),
        "document": total.document,
        "doc_type": total.doc_type,
        "rows": total.rows,
        "amount": cents_to_decimal(total.cents),
    }


def shard_csv(totals: list[PartialRecord]) -> bytes:
    """The shard's lines of the totals CSV (no header: the finaliser merges shards under one)."""
    # Documents are [0-9A-Z] and amounts plain numbers: safe_cell changes nothing today, and
    # keeps it so if a field ever comes from the file as it was written.
    return "".join(
        f"{safe_cell(t.document)},{t.doc_type},{t.rows},{safe_cell(decimal_str(cents_to_decimal(t.cents)))}\n"
        for t in totals
    ).encode("ascii")


def _rewrite_report_slice(services: Services, upload_id: str, index: int, item: Item) -> dict[str, Any]:
    """This task's slice of a large report (``report_first_chunk`` .. ``report_end_chunk``),
    rewritten at its file lines into its own object; the finaliser joins the slices. Answers
    what the shard item keeps of it (none when the task has no slice)."""
    if "report_first_chunk" not in item:
        return {}
    first, end = int(item["report_first_chunk"]), int(item["report_end_chunk"])
    chunks = chunk_items(
        services.status, upload_id, REPORT_CHUNK_ATTRIBUTES, before_index=end, from_index=first
    )
    rows, first_errors = rewrite_report(
        services,
        upload_id,
        list(chunks),
        int(item["report_line_breaks_before"]),
        report_slice_key(upload_id, index),
        head=index == 0,
    )
    return {"report_rows": rows, "first_errors": first_errors}


def _complete(
    services: Services, upload_id: str, index: int, totals: list[PartialRecord], fields: dict[str, Any]
) -> bool:
    top = [
        {
            "document": t.document,
            "doc_type": t.doc_type,
            "rows": t.rows,
            "amount": cents_to_decimal(t.cents),
        }
        for t in largest(totals, TOP_DOCUMENTS)
    ]
    amount: Decimal = cents_to_decimal(sum(t.cents for t in totals))
    return complete(
        services,
        SHARD_WORK,
        upload_id,
        index,
        {"documents": len(totals), "amount": amount, "top_documents": top, **fields},
    )

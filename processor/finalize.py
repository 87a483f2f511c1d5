"""What comes after the work: the reduce plan, the error report, the totals and the final status.

:func:`advance` is the one driver of an upload from "every chunk mapped" to its final
status. Whoever finishes a piece of work calls it — a worker after its chunk (also for
a redelivered message of a chunk already done), a reducer after its shard, the planner
after its last page — and it is idempotent: every step is a conditional write, so two
callers racing, or one re-driven after a crash at any instant, reach the same state once.
"""

from __future__ import annotations

import heapq
import itertools
import struct
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from processor.model import (
    active_item,
    chunk_errors_key,
    chunk_items,
    chunk_key,
    chunk_message,
    reduce_message,
    report_key,
    report_slice_key,
    shard_csv_key,
    shard_items,
    shard_key,
    sketch_items,
    totals_key,
)
from upflow.aws import telemetry
from upflow.aws.dynamo import ConditionFailed, Item, TransactionCancelled, Update, transact
from upflow.aws.telemetry import logger
from upflow.core.consolidation import BUCKETS, estimate_distinct, merge_sketches, plan_shards, shard_count_for
from upflow.core.dialect import ParserState, compose, decode_states, encode_states
from upflow.core.report import (
    UTF8_BOM,
    ReportSlice,
    ReportWriter,
    chunk_row_errors,
    iter_chunk_rows,
    plan_report_slices,
    report_part_size,
    report_size_bound,
)
from upflow.definition import METRIC_SPECULATION_MISSES, METRIC_UPLOADS_COMPLETED, METRIC_UPLOADS_FAILED
from upflow.server.states import (
    CHUNK,
    CHUNK_COMPLETED,
    CHUNK_PENDING,
    COMPLETED,
    COMPLETED_WITH_ERRORS,
    FAILED,
    PROCESSING,
    REDUCING,
    SHARD,
    UPLOAD,
)
from upflow.server.uploads import iso, upload_key
from upflow.server.wiring import Services

TOTALS_HEADER = b"document,type,rows,amount\n"
# The totals merge: read-ahead GETs in flight, the buffers of all shards' pieces (two each),
# a piece's bounds, and the lines handed to the writer at once.
_MERGE_READERS = 16
_MERGE_BUFFERS = 256 * 1024 * 1024
_MERGE_PIECE_MIN = 32 * 1024
_MERGE_PIECE_MAX = 1024 * 1024
_MERGE_BATCH_LINES = 4096
TOP_DOCUMENTS = 10
# What the report's rewrite reads of each chunk item (start_state names its error file).
REPORT_CHUNK_ATTRIBUTES = ("index", "line_breaks", "errors_count", "errors_size", "start_state")
_SKETCH_VALUE = struct.Struct(">Q")
# A chunk's counts that its completion adds to the upload (with its err_<code> counts).
SUMMARY_COUNTS = frozenset({"rows_total", "rows_valid", "rows_invalid", "amount_valid"})


def encode_sketch(sketch: Sequence[int]) -> bytes:
    """A chunk's document sketch as a binary attribute of its item."""
    return b"".join(_SKETCH_VALUE.pack(value) for value in sketch)


def decode_sketch(raw: Any) -> tuple[int, ...]:
    data = bytes(getattr(raw, "value", raw))
    return tuple(value for (value,) in _SKETCH_VALUE.iter_unpack(data))


def fail_upload(
    services: Services, upload_id: str, code: str, message: str, from_states: Sequence[str]
) -> None:
    guard = UPLOAD.condition(to=FAILED, from_=from_states)
    try:
        services.status.update(
            upload_key(upload_id),
            guard.update(set={"error_code": code, "error_message": message, "updated_at": iso(time.time())}),
        )
    except ConditionFailed:
        logger.info(
            "not marking the upload failed: it has left those states", extra={"from_states": from_states}
        )
        return
    telemetry.emit(METRIC_UPLOADS_FAILED, 1)
    logger.warning("upload failed", extra={"error_code": code, "error_message": message})


def advance(services: Services, upload_id: str) -> None:
    """Take the upload one step on from the work that has ended (no-op when nothing has)."""
    item = services.status.get(upload_key(upload_id))
    if item is None or "chunk_total" not in item:
        return
    if "shard_total" not in item:
        if item["status"] in (PROCESSING, FAILED):
            _after_map(services, upload_id, item)
    elif item["status"] in (REDUCING, FAILED):
        _after_reduce(services, upload_id, item)


def _after_map(services: Services, upload_id: str, item: Item) -> None:
    total = int(item["chunk_total"])
    done, failed = int(item.get("chunks_done", 0)), int(item.get("chunks_failed", 0))
    if int(item.get("plan_next", 0)) < total:
        return  # the planner has not written every chunk yet
    if done == total:
        _plan_reduce(services, upload_id)
    elif done + failed == total and failed and item["status"] == PROCESSING:
        fail_upload(
            services,
            upload_id,
            "chunks_failed",
            f"{failed} of {total} chunks failed after retries; POST /uploads/{upload_id}/retry re-runs them",
            from_states=(PROCESSING,),
        )


def _plan_reduce(services: Services, upload_id: str) -> None:
    """Every chunk is mapped: compose their transfer functions; re-parse the chunks whose
    speculated start state was wrong, or, when none was, choose R and start R reducers."""
    limits = services.config.limits
    partial_records = 0
    chunks = list(
        chunk_items(
            services.status,
            upload_id,
            projection=("index", "transfer", "compatible", "documents", "errors_size", "line_breaks"),
        )
    )
    true_states = compose(decode_states(str(chunk["transfer"])) for chunk in chunks)
    wrong = [
        (int(chunk["index"]), state)
        for chunk, state in zip(chunks, true_states, strict=True)
        if state not in decode_states(str(chunk["compatible"]))
    ]
    if wrong:
        _reparse(services, upload_id, wrong)
        return
    for chunk in chunks:
        partial_records += int(chunk.get("documents", 0))
    # Every chunk is completed, and each wrote its sketch in its completion's transaction.
    sketches = [decode_sketch(item["sketch"]) for item in sketch_items(services.status, upload_id)]
    document_shards = shard_count_for(
        estimate_distinct(merge_sketches(sketches)),
        partial_records,
        limits.documents_per_shard,
        limits.partial_records_per_shard,
    )
    # A report too large for one finaliser is rewritten by the reduce tasks, a slice each
    # (the tasks beyond the document shards reduce no bucket).
    slices = len(_report_slices(chunks, limits.report_slice_bytes))
    report_slices = slices if slices > 1 else 0
    shard_total = max(document_shards, report_slices)
    try:
        services.status.update(
            upload_key(upload_id),
            UPLOAD.condition(to=REDUCING, from_=(PROCESSING, FAILED))
            .and_("chunks_done = chunk_total AND attribute_not_exists(shard_total)")
            .update(
                set={
                    "shard_total": shard_total,
                    "document_shards": document_shards,
                    "report_slices": report_slices,
                    "reduce_next": 0,
                    "updated_at": iso(time.time()),
                },
                set_if_missing={"shards_done": 0, "shards_failed": 0},
                remove=("error_code", "error_message"),
            ),
        )
    except ConditionFailed:
        pass  # another caller planned it (maybe with another estimate): its plan stands
    else:
        logger.info(
            "every chunk mapped; reduce planned",
            extra={
                "shard_total": shard_total,
                "document_shards": document_shards,
                "report_slices": report_slices,
            },
        )
    item = services.status.get(upload_key(upload_id))
    if item is not None and "shard_total" in item:
        _start_shards(services, upload_id, item)


def _reparse(services: Services, upload_id: str, wrong: Sequence[tuple[int, ParserState]]) -> None:
    """Send each misspeculated chunk back to ``pending`` with its true start state, taking its
    counts back off the upload in the same transaction (its re-parse adds the right ones)."""
    requeued: list[int] = []
    for index, state in wrong:
        item = services.status.get(chunk_key(upload_id, index))
        if item is None or item["status"] != CHUNK_COMPLETED:
            continue
        counts = {name: -item[name] for name in item if name in SUMMARY_COUNTS or name.startswith("err_")}
        try:
            transact(
                services.status.client,
                [
                    services.status.tx_update(
                        chunk_key(upload_id, index),
                        CHUNK.condition(to=CHUNK_PENDING, from_=CHUNK_COMPLETED).update(
                            set={"start_state": encode_states([state]), "updated_at": iso(time.time())}
                        ),
                    ),
                    services.status.tx_update(
                        upload_key(upload_id), Update(add={"chunks_done": -1, **counts})
                    ),
                ],
            )
        except TransactionCancelled:
            continue  # another caller sent it back first
        requeued.append(index)
    if requeued:
        # Chunks parsed twice: their speculated start state was not the true one.
        telemetry.emit(METRIC_SPECULATION_MISSES, len(requeued))
        logger.info("chunks misspeculated, parsed again", extra={"chunks": requeued})
    services.chunks.send_json([chunk_message(upload_id, index) for index in requeued])


def _report_slices(chunks: Sequence[Item], slice_bytes: int) -> list[ReportSlice]:
    return plan_report_slices(
        [(int(chunk.get("errors_size", 0)), int(chunk.get("line_breaks", 0))) for chunk in chunks],
        slice_bytes,
    )


def _start_shards(services: Services, upload_id: str, item: Item) -> None:
    """Write the shard items and send their messages, once (re-driven if a caller died midway).

    Shard r < ``document_shards`` reduces its range of buckets; shard r < ``report_slices``
    also rewrites slice r of the report. The slices are planned again from the chunk items,
    which no longer change: every caller gets the same."""
    shard_total = int(item["shard_total"])
    if int(item.get("reduce_next", 0)) >= shard_total:
        return
    document_shards = int(item.get("document_shards", shard_total))
    report_slices = int(item.get("report_slices", 0))
    buckets: list[tuple[int, int]] = [(s.first_bucket, s.end_bucket) for s in plan_shards(document_shards)]
    buckets += [(BUCKETS, BUCKETS)] * (shard_total - document_shards)
    slices: list[ReportSlice] = []
    if report_slices:
        chunks = chunk_items(services.status, upload_id, projection=("index", "errors_size", "line_breaks"))
        slices = _report_slices(list(chunks), services.config.limits.report_slice_bytes)
        if len(slices) != report_slices:
            raise RuntimeError(f"the report was planned in {report_slices} slices, now {len(slices)}")
    for index, (first_bucket, end_bucket) in enumerate(buckets):
        report = (
            {
                "report_first_chunk": slices[index].first_chunk,
                "report_end_chunk": slices[index].end_chunk,
                "report_line_breaks_before": slices[index].line_breaks_before,
            }
            if index < len(slices)
            else {}
        )
        services.status.put_new(
            {
                **shard_key(upload_id, index),
                "upload_id": upload_id,
                "index": index,
                "first_bucket": first_bucket,
                "end_bucket": end_bucket,
                **report,
                "status": SHARD.initial,
                "attempts": 0,
            },
            key_attr="pk",
        )
    services.chunks.send_json([reduce_message(upload_id, index) for index in range(shard_total)])
    try:
        services.status.update(
            upload_key(upload_id),
            Update(
                set={"reduce_next": shard_total},
                condition="reduce_next < :total",
                condition_values={":total": shard_total},
            ),
        )
    except ConditionFailed:
        pass


def _after_reduce(services: Services, upload_id: str, item: Item) -> None:
    total = int(item["shard_total"])
    done, failed = int(item.get("shards_done", 0)), int(item.get("shards_failed", 0))
    if int(item.get("reduce_next", 0)) < total:
        _start_shards(services, upload_id, item)
    elif done == total:
        _finalize_success(services, upload_id, item)
    elif done + failed == total and failed and item["status"] == REDUCING:
        fail_upload(
            services,
            upload_id,
            "shards_failed",
            f"{failed} of {total} reduce shards failed after retries; "
            f"POST /uploads/{upload_id}/retry re-runs them",
            from_states=(REDUCING,),
        )


def _write_report(services: Services, upload_id: str, item: Item) -> list[dict[str, Any]]:
    """The error report from the chunks' error files: rewritten here, or, when the reduce
    tasks rewrote it in slices, joined by S3 from their objects. Answers the first errors,
    for the upload's status."""
    key = report_key(upload_id)
    counted = sum(int(value) for name, value in item.items() if name.startswith("err_"))
    report_slices = int(item.get("report_slices", 0))
    if report_slices:
        shards = shard_items(services.status, upload_id, projection=("index", "report_rows", "first_errors"))
        slices = [shard for shard in shards if int(shard["index"]) < report_slices]
        services.store.join(key, [report_slice_key(upload_id, k) for k in range(report_slices)])
        rows = sum(int(shard.get("report_rows", 0)) for shard in slices)
        shown = services.config.limits.first_errors_shown
        first_errors = [error for shard in slices for error in shard.get("first_errors", [])][:shown]
    else:
        chunks = chunk_items(services.status, upload_id, projection=REPORT_CHUNK_ATTRIBUTES)
        rows, first_errors = rewrite_report(services, upload_id, list(chunks), 0, key, head=True)
    if rows != counted:
        # A file that disagrees with its chunk's count was not written by the parse that
        # completed the chunk (a stale delivery overwrote it): say so, but do not hold the
        # upload back for it.
        logger.error("error files and chunk counts disagree", extra={"rows": rows, "counted": counted})
    return first_errors


def rewrite_report(
    services: Services, upload_id: str, chunks: Sequence[Item], line_breaks_before: int, key: str, head: bool
) -> tuple[int, list[dict[str, Any]]]:
    """The rows of ``chunks``' error files (consecutive chunk items, with
    ``REPORT_CHUNK_ATTRIBUTES``), rewritten at their file lines into ``key`` — the whole report
    (``head``: BOM and header first) or one slice of it. Streamed: each file is read from its
    GET as it arrives and the output goes to S3 in parts as it is written (never whole in
    memory, nor on disk). Answers the rows written and the first errors among them."""
    limits = services.config.limits
    counted = sum(int(chunk.get("errors_count", 0)) for chunk in chunks)
    files_size = sum(int(chunk.get("errors_size", 0)) for chunk in chunks)
    part_size = report_part_size(report_size_bound(files_size, counted), limits.report_part_size)
    first_errors: list[dict[str, Any]] = []
    with services.store.writer(key, part_size, content_type="text/csv") as out:
        report = ReportWriter(out, head=head)
        for chunk in chunks:
            if int(chunk.get("errors_count", 0)):
                errors_key = chunk_errors_key(upload_id, int(chunk["index"]), chunk.get("start_state"))
                with services.store.open_stream(errors_key) as stream:
                    for batch in iter_chunk_rows(stream):
                        report.write_rows(line_breaks_before, batch)
                        wanted = limits.first_errors_shown - len(first_errors)
                        for error in chunk_row_errors(batch[: max(0, wanted)]):
                            first_errors.append(
                                {
                                    "line": 1 + line_breaks_before + error.line_offset,
                                    "column": error.column,
                                    "code": error.code,
                                    "message": error.message,
                                    "value": error.value[:200],
                                }
                            )
            line_breaks_before += int(chunk["line_breaks"])
        out.finish()
    return report.rows, first_errors


def _finalize_success(services: Services, upload_id: str, item: dict[str, Any]) -> None:
    key = report_key(upload_id)
    first_errors = _write_report(services, upload_id, item)
    documents_total, top_documents = _write_totals(services, upload_id, int(item["shard_total"]))
    status = COMPLETED_WITH_ERRORS if int(item.get("rows_invalid", 0)) else COMPLETED
    try:
        services.status.update(
            upload_key(upload_id),
            UPLOAD.condition(to=status, from_=(REDUCING, FAILED))
            .and_("shards_done = shard_total")
            .update(
                set={
                    "report_key": key,
                    "first_errors": first_errors,
                    "results_key": totals_key(upload_id),
                    "documents_total": documents_total,
                    "top_documents": top_documents,
                    "updated_at": iso(time.time()),
                },
                remove=("error_code", "error_message"),
            ),
        )
    except ConditionFailed:
        logger.info("the upload was finalised by another caller")
        return
    telemetry.emit(METRIC_UPLOADS_COMPLETED, 1)
    logger.info("upload finalised", extra={"status": status, "documents_total": documents_total})
    services.status.delete(active_item(upload_id))


def _write_totals(services: Services, upload_id: str, shard_total: int) -> tuple[int, list[dict[str, Any]]]:
    """Merge the shards' sorted CSVs into one sorted totals CSV; answer the document count and
    the largest documents. Streamed both ways: each shard is read in ranged pieces, the next
    one read ahead while this one is merged (the merge waits on no GET), and the totals go to
    S3 in parts as they are merged — no disk (Lambda's /tmp is 512 MB) and ~256 MiB of
    buffers at most, whatever the documents."""
    documents_total = 0
    csv_bytes = 0
    top: list[dict[str, Any]] = []
    for shard in shard_items(
        services.status, upload_id, projection=("documents", "top_documents", "csv_bytes")
    ):
        documents_total += int(shard.get("documents", 0))
        csv_bytes += int(shard.get("csv_bytes", 0))
        top.extend(shard.get("top_documents", []))
    top = heapq.nsmallest(TOP_DOCUMENTS, top, key=lambda d: (-Decimal(d["amount"]), str(d["document"])))
    head = UTF8_BOM.encode() + TOTALS_HEADER
    part_size = report_part_size(len(head) + csv_bytes, services.config.limits.report_part_size)
    piece = min(_MERGE_PIECE_MAX, max(_MERGE_PIECE_MIN, _MERGE_BUFFERS // (2 * shard_total)))
    with (
        ThreadPoolExecutor(max_workers=_MERGE_READERS) as readers,
        services.store.writer(totals_key(upload_id), part_size, "text/csv; charset=utf-8") as out,
    ):
        shards = [
            services.store.iter_lines(shard_csv_key(upload_id, index), piece, prefetch=readers)
            for index in range(shard_total)
        ]
        out.write(head)
        # Lines start with the document and "," sorts before every document character,
        # so line order is document order.
        merged = heapq.merge(*shards)
        while batch := list(itertools.islice(merged, _MERGE_BATCH_LINES)):
            out.write(b"".join(batch))
        out.finish()
    return documents_total, top

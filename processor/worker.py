"""The chunk worker (map): one chunk message → its rows validated, its totals in one partial.

Steps (docs/design.md, "The chunk rule" and "Exactly-once effects"):
1. read the chunk's raw range (and nothing of any other chunk but the tail of its last row);
2. speculate the CSV parser state at its start, compute its transfer function;
3. parse, validate and aggregate the rows it owns (pure ``upflow.core``);
4. store its row errors and its per-document partial totals in S3 (each object a pure
   function of the chunk's bytes: a redelivery overwrites them with the same bytes);
5. flip the chunk to ``completed`` and add its summary to the upload in one transaction;
6. ask :func:`processor.finalize.advance` what comes next (the reduce, once every chunk is in).
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

from processor.batch import Record, receive_count
from processor.finalize import advance, encode_sketch
from processor.model import chunk_errors_key, chunk_key, partial_key, sketch_key
from processor.workitems import CHUNK_WORK, complete, mark_processing, record_failure
from upflow.aws import telemetry
from upflow.aws.dynamo import Item, Update
from upflow.aws.telemetry import logger, traced
from upflow.core.chunk import ChunkResult, process_chunk
from upflow.core.chunking import ChunkRange
from upflow.core.consolidation import Partial, encode_partial
from upflow.core.detect import FileFormat
from upflow.core.dialect import decode_states, encode_states
from upflow.core.report import ChunkErrorWriter
from upflow.definition import (
    METRIC_CHUNK_DURATION,
    METRIC_ROWS_INVALID,
    METRIC_ROWS_PER_SECOND,
    METRIC_ROWS_VALID,
)
from upflow.server.states import CHUNK_COMPLETED
from upflow.server.uploads import upload_key
from upflow.server.wiring import Services

_TRANSACTION_ATTEMPTS = 8
# Parsing and validating a chunk's rows: an X-Ray subsegment of its own when tracing is on.
_parse = traced(process_chunk)


def process_message(services: Services, record: Record) -> None:
    body: dict[str, Any] = json.loads(record["body"])
    upload_id, index = str(body["upload_id"]), int(body["index"])
    telemetry.work_on(upload_id, chunk=index)
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
    started = time.perf_counter()
    mark_processing(services, CHUNK_WORK, upload_id, index, chunk_item)
    result, partial, errors_size = map_chunk(services, upload_id, upload, chunk_item)
    if complete_chunk(services, upload_id, index, result, partial, errors_size):
        _count_chunk(result, time.perf_counter() - started)
    else:
        logger.info("chunk mapped again; another delivery had completed it first")
    advance(services, upload_id)


def _count_chunk(chunk: ChunkResult, seconds: float) -> None:
    """The metrics of a chunk whose counts went into its upload (once per completed parse)."""
    region = chunk.region
    telemetry.emit(METRIC_CHUNK_DURATION, seconds * 1000)
    telemetry.emit(METRIC_ROWS_PER_SECOND, region.rows_total / seconds if seconds > 0 else 0.0)
    telemetry.emit(METRIC_ROWS_VALID, region.rows_valid)
    telemetry.emit(METRIC_ROWS_INVALID, region.rows_invalid)
    logger.info(
        "chunk mapped",
        extra={
            "rows_total": region.rows_total,
            "rows_valid": region.rows_valid,
            "rows_invalid": region.rows_invalid,
            "duration_ms": round(seconds * 1000, 1),
        },
    )


def map_chunk(
    services: Services, upload_id: str, upload: Item, chunk_item: Item
) -> tuple[ChunkResult, Partial, int]:
    """The chunk's rows processed and its two objects (errors, partial) written: everything
    but the status. Safe to repeat: the objects are pure functions of the chunk's bytes and
    its start state (speculated, or the true one ``advance`` set for a re-parse). Answers
    the result, the partial and the size of the error file (0: none written)."""
    key = str(upload["key"])
    index = int(chunk_item["index"])
    chunk = ChunkRange(index=index, start=int(chunk_item["start"]), end=int(chunk_item["end"]))
    data = services.store.read_range(key, chunk.start, chunk.end)
    if len(data) != chunk.end - chunk.start:
        raise RuntimeError(f"short read of chunk {index}: {len(data)} of {chunk.end - chunk.start} bytes")
    # A re-parse's start state, named by the chunk item (its objects are named after it too).
    given: str | None = str(chunk_item["start_state"]) if chunk_item.get("start_state") else None
    object_size = int(upload["object_size"])
    limits = services.config.limits
    # The errors go to S3 as they are found, in parts (the same parts on a redelivery): a
    # chunk whose every row is invalid never holds its error file in memory. Nothing is
    # kept (the multipart upload is aborted) when the parse fails or finds no error.
    errors_key = chunk_errors_key(upload_id, index, given)
    with services.store.writer(errors_key, limits.report_part_size) as errors_out:
        result = _parse(
            data,
            chunk,
            object_size,
            FileFormat.from_json(upload["format"]),
            lambda start, end: services.store.read_range(key, start, min(end, object_size)),
            limits,
            start_state=decode_states(given)[0] if given else None,
            errors=ChunkErrorWriter(errors_out),
        )
        del data
        errors_size = errors_out.finish() if result.region.error_count else 0
    region = result.region
    totals = region.totals
    partial = encode_partial(totals.documents, totals.doc_types, totals.rows, totals.cents)
    services.store.put_bytes(
        partial_key(upload_id, index, given),
        partial.data,
        content_type="application/octet-stream",
    )
    return result, partial, errors_size


def complete_chunk(
    services: Services, upload_id: str, index: int, chunk: ChunkResult, partial: Partial, errors_size: int
) -> bool:
    """The chunk completed with what ``map_chunk`` found, its counts added to the upload and its
    sketch written, in one transaction; False when that parse must not count (another delivery
    completed the chunk, or the chunk was sent back to be parsed from another start state)."""
    result = chunk.region
    error_counts = {f"err_{code}": count for code, count in result.errors_by_code.items() if count}
    counts: dict[str, int | Decimal] = {
        "rows_total": result.rows_total,
        "rows_valid": result.rows_valid,
        "rows_invalid": result.rows_invalid,
        "amount_valid": result.amount_valid,
        **error_counts,
    }
    fields = {
        "errors_count": result.error_count,
        # The error file's bytes: the finaliser sizes the report's parts from their sum.
        "errors_size": errors_size,
        # What advance() composes: the true start states follow from every chunk's transfer
        # function; a chunk whose true state is not in `compatible` is parsed again.
        "parsed_state": encode_states([chunk.start_state]),
        "transfer": encode_states(chunk.transfer),
        "compatible": encode_states(sorted(chunk.compatible)),
        "line_breaks": chunk.line_breaks,
        "documents": partial.documents,
        **counts,
    }
    parsed_state = fields["parsed_state"]
    return complete(
        services,
        CHUNK_WORK,
        upload_id,
        index,
        fields,
        counts,
        # A parse that began before advance() sent the chunk back with its true start state
        # (a late duplicate delivery) must not complete the chunk with the speculated rows.
        require=lambda guard: guard.and_(
            "attribute_not_exists(start_state) OR start_state = :parsed_state",
            values={":parsed_state": parsed_state},
        ),
        also=[
            services.status.tx_update(
                sketch_key(upload_id, index), Update(set={"sketch": encode_sketch(partial.sketch)})
            )
        ],
    )

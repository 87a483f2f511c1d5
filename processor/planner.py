"""The planner: an S3 "Object Created" event → chunk items + chunk messages.

Idempotent: EventBridge and SQS deliver at least once (moto even sends two
events per multipart complete). The upload item's plan fields are set under a
condition, chunk items are created with ``attribute_not_exists``, and the
plan is written in pages of ``plan_page_chunks`` chunks, each page
re-enqueueing the next, so a 2 TB object (10,000 chunks) never needs one long
invocation.
"""

from __future__ import annotations

import json
import time
from typing import Any

from processor.batch import Record, receive_count
from processor.finalize import advance, fail_upload
from processor.model import active_item, chunk_key, chunk_message, plan_page_message
from upflow.aws import telemetry
from upflow.aws.dynamo import ConditionFailed, Update
from upflow.aws.s3 import NoSuchKey
from upflow.aws.telemetry import logger
from upflow.core.chunking import chunk_count, chunk_size_for, plan_chunks
from upflow.core.detect import FormatError, detect_format
from upflow.core.naming import upload_id_from_key
from upflow.server.states import CHUNK, PROCESSING, UPLOAD, UPLOADED, UPLOADING
from upflow.server.uploads import iso, upload_key
from upflow.server.wiring import Services

# The upload states a plan starts from: the S3 event can arrive before the complete call answers.
PLAN_FROM = (UPLOADING, UPLOADED)


def plan_message(services: Services, record: Record) -> None:
    body: dict[str, Any] = json.loads(record["body"])
    telemetry.work_on(_upload_id_of(body))
    try:
        _dispatch(services, body, record)
    except Exception as error:
        if receive_count(record) >= services.config.limits.max_receives:
            # The message is about to go to the DLQ: say so on the upload rather than leave it stuck.
            upload_id = _upload_id_of(body)
            if upload_id:
                fail_upload(
                    services,
                    upload_id,
                    "planning_failed",
                    f"planning failed {receive_count(record)} times: {type(error).__name__}: {error}"[:1000],
                    from_states=(UPLOADING, UPLOADED, PROCESSING),
                )
        raise


def _upload_id_of(body: dict[str, Any]) -> str | None:
    if body.get("type") == "plan_page":
        return str(body["upload_id"])
    return upload_id_from_key(str(body.get("detail", {}).get("object", {}).get("key", "")))


def _dispatch(services: Services, body: dict[str, Any], record: Record) -> None:
    if body.get("type") == "plan_page":
        write_plan_page(services, str(body["upload_id"]), int(body["next_index"]))
    elif body.get("detail-type") == "Object Created":
        detail = body.get("detail", {})
        start_plan(services, str(detail.get("object", {}).get("key", "")))
    else:
        logger.warning(
            "ignoring a message that is neither an S3 event nor a plan page",
            extra={"body": record["body"][:200]},
        )


def start_plan(services: Services, key: str) -> None:
    upload_id = upload_id_from_key(key)
    if upload_id is None:
        logger.warning("ignoring an object outside the uploads layout", extra={"key": key})
        return
    item = services.status.get(upload_key(upload_id))
    if item is None or item.get("key") != key:
        logger.warning("ignoring an object no upload record matches", extra={"key": key})
        return
    if "chunk_total" in item:
        # A duplicate event. If an earlier attempt died mid-plan, resume it.
        if int(item.get("plan_next", 0)) < int(item["chunk_total"]):
            write_plan_page(services, upload_id, int(item.get("plan_next", 0)))
        return
    if item["status"] not in PLAN_FROM:
        logger.info("not planning: the upload is past planning", extra={"status": item["status"]})
        return
    limits = services.config.limits
    try:
        size = services.store.object_size(key)
    except NoSuchKey:
        logger.warning("not planning: the object is gone (expired or deleted)", extra={"key": key})
        return
    head = services.store.read_range(key, 0, min(size, limits.sniff_bytes))
    try:
        file_format = detect_format(head, at_eof=size <= limits.sniff_bytes, limits=limits)
    except FormatError as error:
        fail_upload(services, upload_id, error.code, error.message, from_states=PLAN_FROM)
        return
    chunk_size = chunk_size_for(size, limits)
    total = chunk_count(size, chunk_size)
    # On the reconciler's list first: a planner that dies after the transition below is found
    # (an entry for an upload that did not start is dropped by the reconciler).
    services.status.put(active_item(upload_id))
    try:
        services.status.update(
            upload_key(upload_id),
            UPLOAD.condition(to=PROCESSING, from_=PLAN_FROM)
            .and_("attribute_not_exists(chunk_total)")
            .update(
                set={
                    "object_size": size,
                    "format": file_format.to_json(),
                    "chunk_size": chunk_size,
                    "chunk_total": total,
                    "plan_next": 0,
                    "updated_at": iso(time.time()),
                },
                set_if_missing={"chunks_done": 0, "chunks_failed": 0},
            ),
        )
    except ConditionFailed:
        return  # another delivery of the same event won the race
    logger.info(
        "planned",
        extra={
            "object_size": size,
            "chunk_size": chunk_size,
            "chunk_total": total,
            "format": file_format.to_json(),
        },
    )
    write_plan_page(services, upload_id, 0)


def write_plan_page(services: Services, upload_id: str, first_index: int) -> None:
    item = services.status.get(upload_key(upload_id))
    if item is None or "chunk_total" not in item:
        raise RuntimeError(f"plan page for upload {upload_id} without a plan")
    total = int(item["chunk_total"])
    plan_next = int(item.get("plan_next", 0))
    if first_index >= total:
        return
    if plan_next > first_index:
        # This page was written by an earlier delivery, which may have died after counting it
        # and before asking for the next page: ask again (a second page message is a no-op).
        if plan_next == first_index + services.config.limits.plan_page_chunks and plan_next < total:
            services.events.send_json([plan_page_message(upload_id, plan_next)])
        return
    page = plan_chunks(
        int(item["object_size"]),
        int(item["chunk_size"]),
        first_index,
        services.config.limits.plan_page_chunks,
    )
    for chunk in page:
        services.status.put_new(
            {
                **chunk_key(upload_id, chunk.index),
                "upload_id": upload_id,
                "index": chunk.index,
                "start": chunk.start,
                "end": chunk.end,
                "status": CHUNK.initial,
                "attempts": 0,
            },
            key_attr="pk",
        )
    services.chunks.send_json([chunk_message(upload_id, chunk.index) for chunk in page])
    next_index = first_index + len(page)
    try:
        services.status.update(
            upload_key(upload_id),
            Update(
                set={"plan_next": next_index},
                condition="plan_next = :first",
                condition_values={":first": first_index},
            ),
        )
    except ConditionFailed:
        return
    if next_index < total:
        services.events.send_json([plan_page_message(upload_id, next_index)])
    else:
        # The last page's chunks may all have finished before plan_next said the plan was
        # whole; their advance() calls then stopped short, so the planner checks too.
        advance(services, upload_id)

"""The reconciler: what a dead process left behind is found on a schedule, and moved on.

A Lambda killed by its timeout or its memory limit runs no ``except`` block: its chunk (or
shard) stays ``processing``, and after ``max_receives`` deliveries its message lands in the
DLQ with nobody told. Every few minutes (an EventBridge schedule in infra, a loop in the local
stack) the reconciler:

1. drains both DLQs: each message's work item is marked ``failed`` with the reason (or, for a
   planning message, the upload is failed), then the upload is re-checked (``advance``), so it
   ends ``failed`` and ``upflow retry`` can recover it;
2. walks the active uploads (``processing``/``reducing``): an item ``processing`` for longer
   than its queue's visibility timeout whose worker died is sent again (its message may be
   lost with the process), or failed once it has had ``max_receives`` attempts; then
   ``advance`` re-checks the upload, so a crash between the last completion and the next
   step never leaves it waiting.

Everything here is idempotent: the work it re-sends is, and every state change is a
conditional write through the state machines.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from processor.finalize import advance, fail_upload
from processor.model import active_item, active_uploads
from processor.workitems import (
    CHUNK_WORK,
    ITEM_PENDING,
    ITEM_PROCESSING,
    SHARD_WORK,
    WorkKind,
    record_failure,
)
from upflow.aws import telemetry
from upflow.aws.sqs import Queue
from upflow.aws.telemetry import logger
from upflow.definition import (
    CHUNK_HANDLER,
    FUNCTIONS,
    METRIC_MESSAGES_DEAD_LETTERED,
    METRIC_MESSAGES_REDRIVEN,
    VISIBILITY_TIMEOUT_FACTOR,
)
from upflow.server.states import (
    ABORTED,
    COMPLETED,
    COMPLETED_WITH_ERRORS,
    FAILED,
    PROCESSING,
    REDUCING,
    UPLOADED,
    UPLOADING,
)
from upflow.server.wiring import Services

_DLQ_BATCH = 10
# Upload states with no work under way (a failed upload re-enters the list on retry).
ENDED = frozenset({ABORTED, COMPLETED, COMPLETED_WITH_ERRORS, FAILED})


@dataclass
class Reconciled:
    """What one pass did (logged, and answered by the handler)."""

    dead_letters: int = 0
    failed: list[str] = field(default_factory=list)
    redriven: list[str] = field(default_factory=list)
    uploads_checked: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "dead_letters": self.dead_letters,
            "failed": self.failed,
            "redriven": self.redriven,
            "uploads_checked": self.uploads_checked,
        }


def stuck_after_seconds(services: Services) -> int:
    """How long an item may stay ``processing`` before its worker is presumed dead: the
    chunks queue's visibility timeout (a live worker's message would have come back by then)."""
    override = services.config.limits.stuck_after_seconds
    if override:
        return override
    return VISIBILITY_TIMEOUT_FACTOR * FUNCTIONS[CHUNK_HANDLER].timeout_seconds


def reconcile(services: Services, now: float | None = None) -> Reconciled:
    report = Reconciled()
    now = time.time() if now is None else now
    _drain_dead_letters(services, services.events_dlq, report)
    _drain_dead_letters(services, services.chunks_dlq, report)
    stuck_after = stuck_after_seconds(services)
    for upload_id in active_uploads(services.status):
        report.uploads_checked += 1
        with telemetry.unit_of_work():  # each upload's lines and metrics carry its id
            telemetry.work_on(upload_id)
            _check_upload(services, upload_id, now - stuck_after, report)
    if report.dead_letters or report.failed or report.redriven:
        logger.warning("reconciled", extra=report.to_json())
    return report


def _check_upload(services: Services, upload_id: str, older_than: float, report: Reconciled) -> None:
    upload = services.status.get({"pk": f"UPLOAD#{upload_id}", "sk": "META"})
    if upload is None or upload["status"] in ENDED:
        services.status.delete(active_item(upload_id))
        return
    if upload["status"] not in (PROCESSING, REDUCING):
        return  # not started yet: the planner put it on the list just before it starts
    kind = SHARD_WORK if upload["status"] == REDUCING else CHUNK_WORK
    _recover_stuck(services, kind, upload_id, older_than, report)
    advance(services, upload_id)


def _drain_dead_letters(services: Services, dlq: Queue, report: Reconciled) -> None:
    limits = services.config.limits
    while True:
        messages = dlq.receive(_DLQ_BATCH, 0)
        if not messages:
            return
        for message in messages:
            report.dead_letters += 1
            receives = int(message.get("Attributes", {}).get("ApproximateReceiveCount", limits.max_receives))
            with telemetry.sqs_message(message.get("MessageId"), receives):
                telemetry.emit(METRIC_MESSAGES_DEAD_LETTERED, 1)
                reason = RuntimeError(
                    f"dead-lettered after {receives} deliveries with no recorded outcome "
                    "(the function timed out or ran out of memory)"
                )
                logger.warning("a dead-lettered message", extra={"queue": dlq.name})
                _fail_dead_work(services, json.loads(message["Body"]), reason, report)
        dlq.delete([message["ReceiptHandle"] for message in messages])


def _fail_dead_work(services: Services, body: dict[str, Any], reason: Exception, report: Reconciled) -> None:
    kind_name = body.get("type")
    upload_id = str(body.get("upload_id", ""))
    if kind_name in ("chunk", "reduce") and upload_id:
        kind = CHUNK_WORK if kind_name == "chunk" else SHARD_WORK
        index = int(body["index" if kind is CHUNK_WORK else "shard"])
        if kind is CHUNK_WORK:
            telemetry.work_on(upload_id, chunk=index)
        else:
            telemetry.work_on(upload_id, shard=index)
        if record_failure(services, kind, upload_id, index, reason, final=True):
            report.failed.append(f"{upload_id}/{kind.name}/{index}")
        advance(services, upload_id)
        return
    # A planning message (an S3 event or a plan page): the upload cannot be planned.
    if not upload_id:
        key = str(body.get("detail", {}).get("object", {}).get("key", ""))
        upload_id = key.split("/")[1] if key.count("/") >= 2 else ""
    if upload_id:
        telemetry.work_on(upload_id)
        fail_upload(
            services,
            upload_id,
            "planning_failed",
            f"planning failed: {reason}",
            from_states=(UPLOADING, UPLOADED, PROCESSING),
        )
        report.failed.append(f"{upload_id}/plan")


def _recover_stuck(
    services: Services, kind: WorkKind, upload_id: str, older_than: float, report: Reconciled
) -> None:
    limits = services.config.limits
    resend: list[int] = []
    for item in kind.items(services.status, upload_id, ("index", "status", "updated_at", "attempts")):
        # A `pending` item with an updated_at was sent back (re-parse, retry): its sender may have
        # died before sending its message. The planner's pending items have none: their messages
        # go out before the plan says it is whole, and a queue backlog is not a loss.
        moved_back = item["status"] == ITEM_PENDING and "updated_at" in item
        if (
            not (item["status"] == ITEM_PROCESSING or moved_back)
            or _seconds(item.get("updated_at")) > older_than
        ):
            continue
        index = int(item["index"])
        if item["status"] == ITEM_PROCESSING and int(item.get("attempts", 0)) >= limits.max_receives:
            error = RuntimeError(
                f"no outcome after {int(item['attempts'])} attempts "
                "(the function timed out or ran out of memory)"
            )
            if record_failure(services, kind, upload_id, index, error, final=True):
                report.failed.append(f"{upload_id}/{kind.name}/{index}")
        else:
            resend.append(index)
    if resend:
        # The worker died with its message in flight: SQS redelivers it after the visibility
        # timeout, unless the process took it (the local pump) — sending it again is harmless.
        services.chunks.send_json([kind.message(upload_id, index) for index in resend])
        report.redriven.extend(f"{upload_id}/{kind.name}/{index}" for index in resend)
        telemetry.emit(METRIC_MESSAGES_REDRIVEN, len(resend))
        logger.warning(f"{kind.name}s re-sent: their workers died", extra={"indexes": resend})


def _seconds(iso_text: Any) -> float:
    if not iso_text:
        return 0.0
    return datetime.fromisoformat(str(iso_text).replace("Z", "+00:00")).timestamp()

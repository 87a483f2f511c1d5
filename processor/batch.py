"""SQS batch plumbing shared by both consumers: partial failures and backoff."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from upflow.aws import telemetry
from upflow.aws.sqs import Queue, queue_name_from_arn
from upflow.aws.telemetry import logger
from upflow.server.wiring import Services

Record = dict[str, Any]


def receive_count(record: Record) -> int:
    return int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))


def backoff_seconds(receives: int, base: int) -> int:
    """Visibility delay before the next attempt: base, 2·base, 4·base … capped at 15 min."""
    return int(min(900, base * 2 ** max(0, receives - 1)))


def run_batch(
    services: Services, records: Iterable[Record], handle: Callable[[Record], None]
) -> dict[str, Any]:
    """Run ``handle`` per record; answer Lambda's partial batch response.

    A failed record stays on the queue (SQS moves it to the DLQ after
    ``max_receives``); we shorten its visibility to an exponential backoff so
    a transient failure is retried in seconds rather than after the full
    visibility timeout.
    """
    failures: list[dict[str, str]] = []
    for record in records:
        # Every log line of the record's work carries its message id and attempt (and the
        # upload, chunk or shard the handler names); its metrics are one EMF record.
        with telemetry.sqs_message(record.get("messageId"), receive_count(record)):
            try:
                handle(record)
            except Exception:
                logger.exception("message failed; it stays on the queue")
                failures.append({"itemIdentifier": record["messageId"]})
                _delay_retry(services, record)
    return {"batchItemFailures": failures}


def _delay_retry(services: Services, record: Record) -> None:
    arn = str(record.get("eventSourceARN", ""))
    name = queue_name_from_arn(arn)
    queue: Queue | None = {services.events.name: services.events, services.chunks.name: services.chunks}.get(
        name
    )
    if queue is None or "receiptHandle" not in record:
        return
    delay = backoff_seconds(receive_count(record), services.config.limits.retry_backoff_seconds)
    try:
        queue.change_visibility(record["receiptHandle"], delay)
    except Exception:  # best effort: without it the message simply waits out its visibility timeout
        logger.warning("could not delay the retry", exc_info=True)

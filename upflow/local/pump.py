"""The local queue pump: what Lambda's SQS event source mapping does, here.

(And, with ``--role reconciler``, what the EventBridge schedule does: it calls the
reconciler handler every ``reconcile_every_seconds``.)

``chalice local`` serves routes only. The pump long-polls the events and
chunks queues on the local AWS, wraps the real messages in the Lambda SQS
event shape and calls the very handler functions of ``api/app.py``; it
deletes only the messages the handler did not report in
``batchItemFailures`` (or none, when the handler raised), so retries and the
DLQ behave as they do under Lambda.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from upflow.aws.sqs import Queue
from upflow.build import API_DIR

Handler = Callable[[dict[str, Any], Any], Any]


def lambda_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One SQS message in the shape Lambda hands to a function."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": dict(message.get("MessageAttributes", {})),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def pump_once(queue: Queue, queue_arn: str, handler: Handler, batch_size: int, wait_seconds: int) -> int:
    """Receive one batch, run the handler, delete what succeeded. Returns messages seen."""
    messages = queue.receive(batch_size, wait_seconds)
    if not messages:
        return 0
    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    event = {"Records": [lambda_record(message, queue_arn, region) for message in messages]}
    try:
        answer = handler(event, None)
    except Exception as error:  # a Lambda error fails the whole batch
        print(f"pump: handler raised {error!r}; {len(messages)} messages stay on the queue", file=sys.stderr)
        return len(messages)
    failed = {item["itemIdentifier"] for item in (answer or {}).get("batchItemFailures", [])}
    done = [message["ReceiptHandle"] for message in messages if message["MessageId"] not in failed]
    queue.delete(done)
    return len(messages)


def _load_handlers() -> dict[str, tuple[Handler, str]]:
    sys.path.insert(0, str(API_DIR))
    chalice_app = importlib.import_module("app")  # the very module Lambda imports

    from upflow.server.wiring import services_from_env

    services = services_from_env()
    return {
        "events": (chalice_app.plan_object, services.config.names.events_queue),
        "chunks": (chalice_app.process_chunks, services.config.names.chunks_queue),
    }


def reconcile_forever(handler: Handler, every: float, stopping: Callable[[], bool]) -> None:
    """Call the scheduled handler every ``every`` seconds (first after one period, as a rate rule)."""
    due = time.monotonic() + every
    while not stopping():
        if time.monotonic() < due:
            time.sleep(min(0.5, max(0.0, due - time.monotonic())))
            continue
        try:
            print(f"pump[reconciler]: {handler({}, None)}", file=sys.stderr)
        except Exception as error:  # a failed pass is followed by the next, as on AWS
            print(f"pump[reconciler]: {error!r}", file=sys.stderr)
        due = time.monotonic() + every


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Feed SQS messages to upflow's handlers, like Lambda would.")
    parser.add_argument("--role", choices=["events", "chunks", "reconciler"], required=True)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--wait-seconds", type=int, default=1)
    args = parser.parse_args(argv)

    stopping = False

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    from upflow.aws.clients import sqs_client

    if args.role == "reconciler":
        from upflow.server.wiring import services_from_env

        sys.path.insert(0, str(API_DIR))
        chalice_app = importlib.import_module("app")
        every = services_from_env().config.limits.reconcile_every_seconds
        reconcile_forever(chalice_app.reconcile, every, lambda: stopping)
        return 0
    handler, queue_name = _load_handlers()[args.role]
    queue = Queue(sqs_client(), queue_name)
    queue_arn = queue.arn()
    while not stopping:
        try:
            pump_once(queue, queue_arn, handler, args.batch_size, args.wait_seconds)
        except Exception as error:  # the local AWS restarting must not kill the pump
            print(f"pump[{args.role}]: {error!r}", file=sys.stderr)
            time.sleep(0.5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

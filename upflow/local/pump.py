"""The local queue pump: what Lambda's SQS event source mapping does, here.

(And, with ``--role reconciler``, what the EventBridge schedule does: it calls the
reconciler handler every ``reconcile_every_seconds``.)

``chalice local`` serves routes only. The pump long-polls the events and
chunks queues on the local AWS, wraps the real messages in the Lambda SQS
event shape and calls the very handler functions of ``api/app.py``; it
deletes only the messages the handler did not report in
``batchItemFailures`` (or none, when the handler raised), so retries and the
DLQ behave as they do under Lambda.

The local queues' visibility timeout is short (seconds, ``upflow.local.stack``), so
that the message of a killed pump comes back quickly; while a handler runs, the pump
keeps its messages invisible (a heartbeat every third of the timeout), as the 6x
margin over the function's timeout does on AWS. It writes one JSON line per batch it
receives and handles (``{"pump": …, "event": "received" | "handled", …}``): an upload
can be followed through the logs with grep, and the supervisor knows what each pump holds.

``UPFLOW_LOCAL_CRASH`` makes the pump kill itself at a chosen AWS call of the handlers
(``upflow.local.crash``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from upflow.aws.sqs import Queue
from upflow.build import API_DIR

Handler = Callable[[dict[str, Any], Any], Any]
# The bodies of the messages the handler is working on (for crash points that name one).
_handling: list[str] = []


def pump_log(role: str, event: str, **fields: Any) -> None:
    """One JSON line on stdout (the supervisor relays it, with the process name, to its log)."""
    print(json.dumps({"pump": role, "event": event, "pid": os.getpid(), **fields}), flush=True)


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


class Heartbeat:
    """While a handler runs, its messages' visibility timeout starts again every ``every`` s.

    A handler that fails a message sets its visibility to the retry backoff itself; a beat
    that lands between that and the handler's return puts the full timeout back, which only
    delays that retry (the window is a few instructions, a beat is seconds apart).
    """

    def __init__(self, queue: Queue, receipt_handles: Sequence[str], visibility: int, every: float) -> None:
        self._queue = queue
        self._handles = list(receipt_handles)
        self._visibility = visibility
        self._every = every
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        if self._every > 0:
            self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    def _beat(self) -> None:
        while not self._done.wait(self._every):
            for handle in self._handles:
                try:
                    self._queue.change_visibility(handle, self._visibility)
                except Exception as error:  # the message may be gone (deleted, expired): SQS decides
                    print(f"pump: heartbeat: {error!r}", file=sys.stderr, flush=True)


def pump_once(
    queue: Queue,
    queue_arn: str,
    handler: Handler,
    batch_size: int,
    wait_seconds: int,
    visibility: int = 0,
    role: str = "pump",
) -> int:
    """Receive one batch, run the handler, delete what succeeded. Returns messages seen.

    ``visibility`` > 0: the queue's visibility timeout, kept from running out while the
    handler runs (a heartbeat every third of it).
    """
    messages = queue.receive(batch_size, wait_seconds)
    if not messages:
        return 0
    pump_log(
        role,
        "received",
        messages=[
            {
                "id": message["MessageId"],
                "receives": int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
                "body": message["Body"],
            }
            for message in messages
        ],
    )
    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    event = {"Records": [lambda_record(message, queue_arn, region) for message in messages]}
    started = time.monotonic()
    handles = [message["ReceiptHandle"] for message in messages]
    _handling[:] = [message["Body"] for message in messages]
    try:
        with Heartbeat(queue, handles, visibility, visibility / 3 if visibility else 0):
            answer = handler(event, None)
    except Exception as error:  # a Lambda error fails the whole batch
        pump_log(role, "handled", ids=[m["MessageId"] for m in messages], raised=repr(error)[:1000])
        return len(messages)
    finally:
        _handling.clear()
    failed = {item["itemIdentifier"] for item in (answer or {}).get("batchItemFailures", [])}
    done = [message["ReceiptHandle"] for message in messages if message["MessageId"] not in failed]
    queue.delete(done)
    pump_log(
        role,
        "handled",
        ids=[m["MessageId"] for m in messages],
        failed=sorted(failed),
        seconds=round(time.monotonic() - started, 3),
    )
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


def reconcile_forever(
    handler: Handler, every: float, stopping: Callable[[], bool], busy: threading.Event | None = None
) -> None:
    """Call the scheduled handler every ``every`` seconds (first after one period, as a rate rule)."""
    busy = busy or threading.Event()
    due = time.monotonic() + every
    while not stopping():
        if time.monotonic() < due:
            time.sleep(min(0.5, max(0.0, due - time.monotonic())))
            continue
        busy.set()
        try:
            pump_log("reconciler", "reconciled", answer=handler({}, None))
        except Exception as error:  # a failed pass is followed by the next, as on AWS
            pump_log("reconciler", "reconciled", raised=repr(error)[:1000])
        finally:
            busy.clear()
        due = time.monotonic() + every


def _handler_clients(services: Any) -> list[Any]:
    """The boto3 clients the handlers use: the ones the process-wide services hold.

    The adapters keep them private (nothing else needs them); the crash hooks go on these
    very objects, so every call a handler makes passes the hooks.
    """
    return [services.status.client, services.results.client, services.store._client, services.chunks._client]


def _arm_crash(role: str) -> None:
    from upflow.local.crash import arm, crash_point_from_env
    from upflow.server.wiring import services_from_env

    point = crash_point_from_env(os.environ)
    if point is None:
        return
    arm(_handler_clients(services_from_env()), point, lambda line: print(line, flush=True), lambda: _handling)
    pump_log(role, "armed", point=str(point))


def _visibility_timeout(queue: Queue, client: Any) -> int:
    attributes = client.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["VisibilityTimeout"])
    return int(attributes["Attributes"]["VisibilityTimeout"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Feed SQS messages to upflow's handlers, like Lambda would.")
    parser.add_argument("--role", choices=["events", "chunks", "reconciler"], required=True)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--wait-seconds", type=int, default=1)
    args = parser.parse_args(argv)

    stopping = False
    busy = threading.Event()  # set while the reconciler's pass runs

    def stop(_signum: int, _frame: Any) -> None:
        # In a handler: finish it, unless the supervisor's grace runs out first (the work is
        # idempotent either way). A queue pump waiting on its queue finishes that receive (at
        # most --wait-seconds) and handles what it brings: left mid-poll, the local SQS would
        # still hand a message to the dead connection, a receive that nobody handles (the
        # message hidden for a visibility timeout, one delivery of its five spent). The
        # reconciler, waiting for its schedule, stops now.
        nonlocal stopping
        stopping = True
        if args.role == "reconciler" and not busy.is_set():
            raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    from upflow.aws.clients import sqs_client

    if args.role == "reconciler":
        from upflow.server.wiring import services_from_env

        sys.path.insert(0, str(API_DIR))
        chalice_app = importlib.import_module("app")
        _arm_crash(args.role)
        every = services_from_env().config.limits.reconcile_every_seconds
        reconcile_forever(chalice_app.reconcile, every, lambda: stopping, busy)
        return 0
    handler, queue_name = _load_handlers()[args.role]
    _arm_crash(args.role)
    client = sqs_client()
    queue = Queue(client, queue_name)
    queue_arn = queue.arn()
    visibility = _visibility_timeout(queue, client)
    while not stopping:
        try:
            pump_once(queue, queue_arn, handler, args.batch_size, args.wait_seconds, visibility, args.role)
        except Exception as error:  # the local AWS restarting must not kill the pump
            print(f"pump[{args.role}]: {error!r}", file=sys.stderr, flush=True)
            time.sleep(0.5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

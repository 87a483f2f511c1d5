"""Crashes on purpose, at a chosen AWS call, for the chaos test: the process kills itself with SIGKILL.

    UPFLOW_LOCAL_CRASH="[after:]<service>.<operation>[:<text>]:<nth>[@<message text>]"

A pump started with this variable hooks the boto3 clients it hands the handlers (botocore's
``before-parameter-build`` and ``after-call`` events) and, at the ``nth`` call of
``<service>.<operation>`` whose parameters contain ``<text>`` (any, if empty) — counting only
calls made while it handles a message whose body contains ``<message text>``, when given —
kills its own process: just before the call, or just after it returned with ``after:``. Like a Lambda
stopped by its timeout or its memory limit, it runs no ``except`` and no ``finally``. The
crash is injected from the local side, so the processor's code carries no test hook. Examples:

* ``s3.PutObject:reports/:1`` — the last shard is reduced, the final report not yet written;
* ``sqs.SendMessageBatch:"type": "plan_page":1@"plan_page"`` — handling a plan page: the page
  written, the next not yet asked for;
* ``after:dynamodb.TransactWriteItems:chunks_done:1`` — a chunk's completion committed, nothing after.

The text is matched against the call's parameters as the code passed them: every key and every
string value, nested ones too (an SQS message body as its JSON text), but no object's body.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

CRASH_ENV = "UPFLOW_LOCAL_CRASH"
_AFTER = "after:"
_CONTEXT_MARK = "upflow_local_crash"
# Parameters that hold an object's bytes: never searched (and never copied).
_PAYLOADS = frozenset({"Body"})


@dataclass(frozen=True)
class CrashPoint:
    service: str  # botocore's event name of the service: "s3", "sqs", "dynamodb"
    operation: str  # the API operation: "PutObject", "SendMessageBatch", …
    text: str  # a substring of the call's parameters ("" matches every call)
    nth: int  # crash at the nth matching call of this process (1 = the first)
    after: bool = False  # after the call returned, instead of before it was sent
    handling: str = ""  # count only calls made while handling a message whose body holds this

    @classmethod
    def parse(cls, spec: str) -> CrashPoint:
        after = spec.startswith(_AFTER)
        rest = spec[len(_AFTER) :] if after else spec
        rest, at, handling = rest.partition("@")
        if at and not handling:
            raise ValueError(f"{CRASH_ENV}: nothing after '@' in {spec!r}")
        call, _, tail = rest.partition(":")
        text, _, nth = tail.rpartition(":")
        service, _, operation = call.partition(".")
        if not (service and operation and nth.isdigit() and int(nth) >= 1):
            raise ValueError(
                f"{CRASH_ENV} must be '[after:]<service>.<operation>[:<text>]:<nth>[@<message text>]',"
                f" not {spec!r}"
            )
        return cls(service, operation, text, int(nth), after, handling)

    def __str__(self) -> str:
        text = f":{self.text}" if self.text else ""
        handling = f"@{self.handling}" if self.handling else ""
        return f"{_AFTER if self.after else ''}{self.service}.{self.operation}{text}:{self.nth}{handling}"


def crash_point_from_env(env: Mapping[str, str]) -> CrashPoint | None:
    spec = env.get(CRASH_ENV, "").strip()
    return CrashPoint.parse(spec) if spec else None


def call_text(params: Any) -> str:
    """Every key and string value of a call's parameters, one per line (payloads left out)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                found.append(str(key))
                if key not in _PAYLOADS:
                    walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    walk(params)
    return "\n".join(found)


def crash_now(point: CrashPoint, matched: str, announce: Callable[[str], None]) -> None:
    """Say what is crashing and where (the line reaches the log before the process dies), then die."""
    announce(json.dumps({"event": "crash", "point": str(point), "pid": os.getpid(), "call": matched[:300]}))
    os.kill(os.getpid(), signal.SIGKILL)


def _print_line(line: str) -> None:
    print(line, flush=True)
    sys.stdout.flush()


def arm(
    clients: Iterable[Any],
    point: CrashPoint,
    announce: Callable[[str], None] = _print_line,
    handling: Callable[[], Sequence[str]] = tuple,
) -> None:
    """Register the crash on each of ``clients`` (boto3 clients); the count is shared by all.
    ``handling`` answers the bodies of the messages being handled now."""
    lock = threading.Lock()
    matches = 0

    def before(params: Any, context: Any = None, **_: Any) -> None:
        nonlocal matches
        if point.handling and not any(point.handling in body for body in handling()):
            return
        text = call_text(params)
        if point.text and point.text not in text:
            return
        with lock:
            matches += 1
            due = matches == point.nth
        if not due:
            return
        if point.after and isinstance(context, dict):
            context[_CONTEXT_MARK] = text
        else:
            crash_now(point, text, announce)

    def after(context: Any = None, **_: Any) -> None:
        if isinstance(context, dict) and _CONTEXT_MARK in context:
            crash_now(point, str(context[_CONTEXT_MARK]), announce)

    for client in {id(client): client for client in clients}.values():
        events = client.meta.events
        events.register(f"before-parameter-build.{point.service}.{point.operation}", before)
        if point.after:
            events.register(f"after-call.{point.service}.{point.operation}", after)

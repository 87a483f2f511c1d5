"""What the handlers tell their operators: JSON logs, CloudWatch metrics (EMF) and X-Ray traces.

Powertools for AWS Lambda (Python) does the formats: one ``Logger`` (JSON lines), EMF metric
records (``AmazonCloudWatchEMFProvider``, the engine of Powertools ``Metrics``) and one
``Tracer``. In Lambda the library comes from the AWS-published Powertools layer, not the
deployment zip; locally and in tests it is an ordinary dependency, and the local pump and
``chalice local`` run the very same handlers, so the same lines appear in their output.

The scopes, all thread-local (``chalice local`` serves requests on threads):

* :func:`invocation` — one Lambda invocation (an HTTP request, an SQS batch, a reconciler
  pass): ``cold_start`` and the Lambda context's ``function_*`` keys on every line; the
  metrics emitted outside any unit below are written as one EMF record when it ends.
* :func:`unit_of_work` — one piece of work inside it (an SQS record, an upload the
  reconciler checks): its keys (``message_id``, ``attempt``, and whatever the work adds with
  :func:`append_keys`: ``upload_id``, ``chunk`` or ``shard``) on every line until it ends,
  then removed; its metrics one EMF record, with those keys as metadata (never dimensions:
  an upload id would make a metric per upload).

Metrics are only those of ``upflow.definition.METRICS``, in the namespace of the stack
(``metrics_namespace``), with the one dimension ``service`` (``METRIC_SERVICE``).

Tracing is off unless ``POWERTOOLS_TRACE_DISABLED`` is set to a false value (the stack's
tracing setting does that); even then Powertools keeps it off outside Lambda and under
``chalice local``, so no local process ever looks for an X-Ray daemon.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Any, TextIO, TypeVar

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from upflow.definition import (
    FUNCTIONS,
    LOG_KEY_ATTEMPT,
    LOG_KEY_CHUNK,
    LOG_KEY_MESSAGE,
    LOG_KEY_SHARD,
    LOG_KEY_UPLOAD,
    METRIC_SERVICE,
    METRICS,
    MetricSpec,
    metrics_namespace,
    stack_from_env,
)

Function = TypeVar("Function", bound=Callable[..., Any])

_FALSE = frozenset({"0", "false", "no", "off"})
_redirected: list[TextIO] = []  # set by redirect_output (tests), else sys.stdout at the time
_batch: ContextVar[AmazonCloudWatchEMFProvider | None] = ContextVar("upflow_metric_batch", default=None)
_invocations = itertools.count()  # next() is atomic: the first invocation of the process is the cold one


def output() -> TextIO:
    """Where log lines and EMF records go: stdout (Lambda sends it to CloudWatch Logs)."""
    return _redirected[-1] if _redirected else sys.stdout


class _OutputHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes to :func:`output` as it is when the line is written (a
    test may have swapped ``sys.stdout`` since the logger was made)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.setStream(output())
        super().emit(record)


logger = Logger(service=METRIC_SERVICE, logger_handler=_OutputHandler(), utc=True, use_rfc3339=True)


def _tracing_disabled() -> bool | None:
    """True (off) unless POWERTOOLS_TRACE_DISABLED says false; then None: Powertools decides,
    which means on in Lambda and off anywhere else."""
    return None if os.environ.get("POWERTOOLS_TRACE_DISABLED", "").strip().lower() in _FALSE else True


tracer = Tracer(service=METRIC_SERVICE, disabled=_tracing_disabled())


def traced(function: Function) -> Function:
    """An X-Ray subsegment around ``function`` when tracing is on; ``function`` itself when off
    (a disabled Powertools wrapper still costs ~30 µs a call, and S3 reads are many).
    Responses are never recorded: they are object bytes and items."""
    if tracer.disabled:
        return function
    capture: Callable[[Function], Function] = tracer.capture_method(capture_response=False)
    return capture(function)


@contextmanager
def redirect_output(stream: TextIO) -> Iterator[TextIO]:
    """Send log lines and EMF records to ``stream`` for as long as the block runs."""
    _redirected.append(stream)
    try:
        yield stream
    finally:
        _redirected.remove(stream)


def namespace() -> str:
    return metrics_namespace(stack_from_env(os.environ))


def _new_batch() -> AmazonCloudWatchEMFProvider:
    return AmazonCloudWatchEMFProvider(namespace=namespace(), service=METRIC_SERVICE)


def _write(batch: AmazonCloudWatchEMFProvider) -> None:
    """One EMF record of the batch's metrics (nothing when it has none)."""
    if batch.metric_set and not is_metrics_disabled():
        stream = output()
        stream.write(json.dumps(batch.serialize_metric_set(), separators=(",", ":"), default=str) + "\n")
        stream.flush()
    batch.clear_metrics()


def emit(metric: MetricSpec, value: float) -> None:
    """Add one value of ``metric`` to the current unit of work (or write it at once outside any)."""
    if metric not in METRICS:
        raise ValueError(f"{metric.name} is not one of upflow.definition.METRICS")
    batch = _batch.get()
    if batch is None:
        single = _new_batch()
        for key, known in logger.thread_safe_get_current_keys().items():
            single.add_metadata(key, known)
        single.add_metric(name=metric.name, unit=metric.unit, value=value)
        _write(single)
        return
    batch.add_metric(name=metric.name, unit=metric.unit, value=value)


def append_keys(**keys: Any) -> None:
    """Keys on every log line (and metric metadata) until the current unit of work ends."""
    present = {key: value for key, value in keys.items() if value is not None}
    logger.thread_safe_append_keys(**present)
    batch = _batch.get()
    if batch is not None:
        for key, value in present.items():
            batch.add_metadata(key, value)


@contextmanager
def unit_of_work(**keys: Any) -> Iterator[None]:
    """A piece of work: its keys on every line inside, removed after; its metrics one record."""
    before = logger.thread_safe_get_current_keys()
    batch = _new_batch()
    for key, value in before.items():
        batch.add_metadata(key, value)
    token = _batch.set(batch)
    try:
        append_keys(**keys)
        yield
    finally:
        _batch.reset(token)
        logger.thread_safe_clear_keys()
        logger.thread_safe_append_keys(**before)
        _write(batch)


def work_on(upload_id: str | None, *, chunk: int | None = None, shard: int | None = None) -> None:
    """Name the upload (and its chunk or shard) the current unit of work is about."""
    append_keys(**{LOG_KEY_UPLOAD: upload_id, LOG_KEY_CHUNK: chunk, LOG_KEY_SHARD: shard})


def sqs_message(message_id: str | None, attempt: int) -> AbstractContextManager[None]:
    """The unit of work of one SQS message (``attempt``: its ApproximateReceiveCount)."""
    return unit_of_work(**{LOG_KEY_MESSAGE: message_id, LOG_KEY_ATTEMPT: attempt})


def _context_keys(handler: str, context: Any) -> dict[str, Any]:
    """Powertools' Lambda context keys; the local pump calls handlers without a context, so
    there they name the handler and a request id made here."""
    if context is None:
        return {
            "function_name": handler,
            "function_memory_size": FUNCTIONS[handler].memory_mb,
            "function_request_id": str(uuid.uuid4()),
        }
    return {
        "function_name": getattr(context, "function_name", handler),
        "function_memory_size": getattr(context, "memory_limit_in_mb", FUNCTIONS[handler].memory_mb),
        "function_arn": getattr(context, "invoked_function_arn", None) or None,
        "function_request_id": getattr(context, "aws_request_id", None) or str(uuid.uuid4()),
    }


@contextmanager
def invocation(handler: str, context: Any) -> Iterator[None]:
    """One invocation of ``handler`` (a name of ``upflow.definition.FUNCTIONS``).

    It starts from no keys: a key appended outside any unit of work (a script or a test
    calling the processor's functions directly) would otherwise stay on the thread's logger
    and name the wrong upload on every line of every later invocation there."""
    logger.thread_safe_clear_keys()
    with unit_of_work(cold_start=next(_invocations) == 0, **_context_keys(handler, context)):
        yield

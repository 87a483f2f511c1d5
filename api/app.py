"""upflow's Chalice app: the HTTP API and the two SQS consumers.

Routes only translate HTTP to service calls (``upflow.server.uploads``,
``processor.service``); the SQS handlers hand real SQS event records to
``processor`` — the same functions run in Lambda, under the local pump and in
tests.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from functools import cache
from typing import Any

from chalice.app import Chalice, CORSConfig, Request, Response, SQSEvent

from processor.batch import run_batch
from processor.planner import plan_message
from processor.reconciler import reconcile as reconcile_pass
from processor.service import ProcessingService
from processor.work import handle_work
from upflow.aws import telemetry
from upflow.aws.telemetry import logger
from upflow.definition import (
    API_HANDLER,
    CHUNK_HANDLER,
    METRIC_MESSAGES_REDRIVEN,
    PLANNER_HANDLER,
    RECONCILER_HANDLER,
    Limits,
    local_rate_limit_from_env,
    names_for,
    runtime_config_from_env,
)
from upflow.server.guard import RateLimiter, parse_json_object, retry_after, too_large
from upflow.server.results import ResultsService
from upflow.server.uploads import HttpError
from upflow.server.wiring import services_from_env

# Chalice's own log (a route's uncaught error) is the logger named after the app, "upflow": the
# Powertools logger's (upflow.aws.telemetry), so its lines are JSON with the request's keys too.
# Left to Chalice, it would take that logger over (its own handler, level ERROR).
app = Chalice(app_name="upflow", configure_logs=False)
app.api.binary_types.extend(["text/csv", "application/octet-stream"])
app.api.cors = CORSConfig(
    allow_origin=os.environ.get("UPFLOW_WEB_ORIGIN", "*"),
    allow_headers=["Authorization", "Content-Type"],
    max_age=600,
)

_LOCAL_NAMES = names_for(os.environ.get("UPFLOW_STACK", "local"))
_LIMITS = Limits()


def _request() -> Request:
    request = app.current_request
    if request is None:
        raise RuntimeError("no current request outside a route")
    return request


def _raw_body() -> bytes:
    raw = _request().raw_body
    # A str (API Gateway, non-binary types) may hold lone surrogates: keep them, as bytes that
    # are not UTF-8, so the parser refuses them with a 400 instead of an encode error here.
    return raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw or b"")


def _json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body=json.dumps(body),
        status_code=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def _handle(view: Callable[[], Any], status: int = 200) -> Response:
    try:
        return _json_response(status, view())
    except HttpError as error:
        return _json_response(error.status, error.body(), error.headers)


def _limits() -> Limits:
    return services_from_env().config.limits


def _refuse_declared_length(max_bytes: int, what: str) -> None:
    """413 from the Content-Length header alone, before the body is decoded or parsed."""
    declared = (_request().headers.get("content-length") or "").strip()
    if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise too_large(max_bytes, what)


def _json_body(max_bytes: int | None = None, *, optional: bool = False) -> dict[str, Any]:
    """The request's JSON object, within the limits (``upflow.server.guard``): 413/400 naming the field.

    ``optional``: an empty body is ``{}``."""
    limits = _limits()
    cap = limits.max_json_body_bytes if max_bytes is None else max_bytes
    _refuse_declared_length(cap, "JSON body")
    raw = _raw_body()
    if optional and not raw:
        return {}
    return parse_json_object(
        raw,
        max_bytes=cap,
        max_depth=limits.max_json_depth,
        max_number_chars=limits.max_json_number_chars,
    )


def _query_int(name: str) -> int | None:
    """An optional non-negative integer query parameter; 400 naming it when it is not one."""
    params = _request().query_params
    raw = None if params is None else params.get(name)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise HttpError(400, "invalid_field", f"{name} must be a whole number of bytes", name)
    return int(raw)


def _authorized(upload_id: str) -> None:
    services_from_env().uploads.authorize(upload_id, _request().headers.get("authorization"))


def _processing() -> ProcessingService:
    return ProcessingService(services_from_env())


@cache
def _local_limiter() -> RateLimiter | None:
    """chalice local's per-client token bucket, when UPFLOW_LOCAL_RATE_LIMIT is on (off by default;
    a deployed stack is throttled by API Gateway's stage settings and usage plan instead)."""
    if local_rate_limit_from_env(os.environ, _LIMITS) is None:
        return None  # off: nothing else is read (no secret needed for /health)
    setting = runtime_config_from_env().local_rate_limit  # "on": the stack's own limits
    assert setting is not None
    return RateLimiter(setting.rate, setting.burst)


@app.middleware("http")  # registered first: the outermost, so it sees every answer (429s too)
def observe(event: Request, get_response: Callable[[Request], Response]) -> Response:
    """One JSON line per request, with the upload it names; the request's metrics flushed."""
    with telemetry.invocation(API_HANDLER, event.lambda_context):
        upload_id = (event.uri_params or {}).get("upload_id")
        telemetry.work_on(upload_id[:64] if upload_id else None)  # as sent: bounded, not trusted
        started = time.perf_counter()
        response = get_response(event)
        logger.info(
            "request",
            extra={
                "method": event.method,
                "route": event.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return response


@app.middleware("http")
def rate_limit(event: Request, get_response: Callable[[Request], Response]) -> Response:
    limiter = _local_limiter()
    if limiter is None or event.method == "OPTIONS":
        return get_response(event)
    client = str((event.context.get("identity") or {}).get("sourceIp") or "unknown")
    wait = limiter.acquire(client)
    if wait <= 0:
        return get_response(event)
    return _json_response(
        429,
        {
            "error": "rate_limited",
            "message": f"too many requests: at most {limiter.rate:g} per second (bursts of {limiter.burst})",
        },
        {
            "Retry-After": retry_after(wait),
            "Access-Control-Allow-Origin": os.environ.get("UPFLOW_WEB_ORIGIN", "*"),
        },
    )


@app.route("/health", methods=["GET"])
def health() -> Response:
    return _json_response(200, {"status": "ok"})


@app.route("/uploads", methods=["POST"])
def initiate_upload() -> Response:
    return _handle(lambda: services_from_env().uploads.initiate(_json_body()), status=201)


@app.route("/uploads/{upload_id}/parts", methods=["POST"])
def sign_parts(upload_id: str) -> Response:
    def view() -> Any:
        _authorized(upload_id)
        return services_from_env().uploads.sign_parts(upload_id, _json_body())

    return _handle(view)


@app.route("/uploads/{upload_id}/parts", methods=["GET"])
def list_parts(upload_id: str) -> Response:
    def view() -> Any:
        _authorized(upload_id)
        return services_from_env().uploads.list_parts(upload_id)

    return _handle(view)


@app.route("/uploads/{upload_id}/complete", methods=["POST"])
def complete_upload(upload_id: str) -> Response:
    def view() -> Any:
        _authorized(upload_id)
        # The one body that grows with the upload: every part's ETag and CRC32.
        body = _json_body(_limits().max_complete_body_bytes, optional=True)
        return services_from_env().uploads.complete(upload_id, body)

    return _handle(view)


@app.route("/uploads/{upload_id}/token", methods=["POST"])
def renew_token(upload_id: str) -> Response:
    """A fresh token for the holder of this upload's token, expired or not (within the grace)."""
    return _handle(
        lambda: services_from_env().uploads.renew_token(upload_id, _request().headers.get("authorization"))
    )


@app.route("/uploads/{upload_id}", methods=["DELETE"])
def abort_upload(upload_id: str) -> Response:
    def view() -> Any:
        _authorized(upload_id)
        return services_from_env().uploads.abort(upload_id)

    return _handle(view)


@app.route("/uploads/{upload_id}", methods=["GET"])
def upload_status(upload_id: str) -> Response:
    def view() -> Any:
        _authorized(upload_id)
        return _processing().status(upload_id)

    return _handle(view)


@app.route("/uploads/{upload_id}/errors", methods=["GET"])
def error_report(upload_id: str) -> Response:
    def view() -> Any:
        _authorized(upload_id)
        return _processing().error_report_url(upload_id)

    return _handle(view)


@app.route("/uploads/{upload_id}/results", methods=["GET"])
def upload_results(upload_id: str) -> Response:
    """A page of the upload's totals per document (``?cursor=…&limit=…``) and the CSV's link."""

    def view() -> Any:
        _authorized(upload_id)
        services = services_from_env()
        query = _request().query_params
        cursor, limit = (None, None) if query is None else (query.get("cursor"), query.get("limit"))
        results = ResultsService(services.config, services.store, services.results, services.uploads)
        return results.page(upload_id, cursor, limit)

    return _handle(view)


@app.route("/uploads/{upload_id}/retry", methods=["POST"])
def retry_upload(upload_id: str) -> Response:
    def view() -> Any:
        _authorized(upload_id)
        answer = _processing().retry(upload_id)
        telemetry.emit(METRIC_MESSAGES_REDRIVEN, answer["requeued"])
        return answer

    return _handle(view)


@app.route("/preview", methods=["POST"], content_types=["text/csv", "application/octet-stream"])
def preview() -> Response:
    """The head of a CSV checked. With ``?size=N`` (the whole file's bytes), also the part
    plan an upload of it would get, so the page can checksum the first parts before the click."""

    def view() -> Any:
        services = services_from_env()
        # More than the preview size is refused on its Content-Length, before the body is
        # decoded; the service refuses a longer body too, so at most that much is ever parsed.
        preview_bytes = services.config.limits.preview_bytes
        _refuse_declared_length(preview_bytes, "preview body (the head of the file)")
        size = _query_int("size")
        plan = None if size is None else services.uploads.plan(size)
        head = _raw_body()
        if len(head) > preview_bytes:
            raise too_large(preview_bytes, "preview body (the head of the file)")
        answer = ProcessingService(services).preview(head, object_size=size)
        if plan is not None:
            answer["upload"] = {"part_size": plan.part_size, "part_count": plan.part_count}
        return answer

    return _handle(view)


@app.on_sqs_message(
    queue=os.environ.get("UPFLOW_EVENTS_QUEUE", _LOCAL_NAMES.events_queue),
    batch_size=_LIMITS.events_batch_size,
    name=PLANNER_HANDLER,
)
def plan_object(event: SQSEvent) -> dict[str, Any]:
    with telemetry.invocation(PLANNER_HANDLER, event.context):
        services = services_from_env()
        return run_batch(services, event.to_dict()["Records"], lambda record: plan_message(services, record))


@app.on_sqs_message(
    queue=os.environ.get("UPFLOW_CHUNKS_QUEUE", _LOCAL_NAMES.chunks_queue),
    batch_size=int(os.environ.get("UPFLOW_CHUNK_BATCH_SIZE", _LIMITS.chunk_batch_size)),
    name=CHUNK_HANDLER,
)
def process_chunks(event: SQSEvent) -> dict[str, Any]:
    with telemetry.invocation(CHUNK_HANDLER, event.context):
        services = services_from_env()
        return run_batch(services, event.to_dict()["Records"], lambda record: handle_work(services, record))


@app.lambda_function(name=RECONCILER_HANDLER)
def reconcile(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Run by an EventBridge schedule (infra) and by the local stack's loop."""
    with telemetry.invocation(RECONCILER_HANDLER, context):
        return reconcile_pass(services_from_env()).to_json()

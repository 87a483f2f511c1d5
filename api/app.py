"""upflow's Chalice app: the HTTP API and the two SQS consumers.

Routes only translate HTTP to service calls (``upflow.server.uploads``,
``processor.service``); the SQS handlers hand real SQS event records to
``processor`` — the same functions run in Lambda, under the local pump and in
tests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from chalice.app import Chalice, CORSConfig, Request, Response, SQSEvent

from processor.batch import run_batch
from processor.planner import plan_message
from processor.service import ProcessingService
from processor.work import handle_work
from upflow.definition import CHUNK_HANDLER, PLANNER_HANDLER, Limits, names_for
from upflow.server.results import ResultsService
from upflow.server.uploads import HttpError
from upflow.server.wiring import services_from_env

app = Chalice(app_name="upflow")
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
    return raw.encode() if isinstance(raw, str) else bytes(raw or b"")


def _json_response(status: int, body: Any) -> Response:
    return Response(body=json.dumps(body), status_code=status, headers={"Content-Type": "application/json"})


def _handle(view: Callable[[], Any], status: int = 200) -> Response:
    try:
        return _json_response(status, view())
    except HttpError as error:
        return _json_response(error.status, error.body())


def _json_body() -> dict[str, Any]:
    raw = _raw_body()
    if not raw:
        raise HttpError(400, "invalid_json", "the request body must be a JSON object")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HttpError(400, "invalid_json", f"the request body is not valid JSON: {error}") from error
    if not isinstance(body, dict):
        raise HttpError(400, "invalid_json", "the request body must be a JSON object")
    return body


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
        body = _json_body() if _raw_body() else {}
        return services_from_env().uploads.complete(upload_id, body)

    return _handle(view)


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
        return services_from_env().uploads.status(upload_id)

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
        return _processing().retry(upload_id)

    return _handle(view)


@app.route("/preview", methods=["POST"], content_types=["text/csv", "application/octet-stream"])
def preview() -> Response:
    """The head of a CSV checked. With ``?size=N`` (the whole file's bytes), also the part
    plan an upload of it would get, so the page can checksum the first parts before the click."""

    def view() -> Any:
        services = services_from_env()
        size = _query_int("size")
        plan = None if size is None else services.uploads.plan(size)
        answer = ProcessingService(services).preview(_raw_body(), object_size=size)
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
    services = services_from_env()
    return run_batch(services, event.to_dict()["Records"], lambda record: plan_message(services, record))


@app.on_sqs_message(
    queue=os.environ.get("UPFLOW_CHUNKS_QUEUE", _LOCAL_NAMES.chunks_queue),
    batch_size=int(os.environ.get("UPFLOW_CHUNK_BATCH_SIZE", _LIMITS.chunk_batch_size)),
    name=CHUNK_HANDLER,
)
def process_chunks(event: SQSEvent) -> dict[str, Any]:
    services = services_from_env()
    return run_batch(services, event.to_dict()["Records"], lambda record: handle_work(services, record))

"""upflow.aws.telemetry's scopes: which keys each JSON line carries, and when metrics are written.

The lines and records are read back from the stream the module writes to (``redirect_output``),
exactly as the handlers write them to stdout.
"""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import pytest

from upflow.aws import telemetry
from upflow.aws.telemetry import logger
from upflow.definition import (
    CHUNK_HANDLER,
    METRIC_CHUNK_DURATION,
    METRIC_ROWS_VALID,
    METRIC_SERVICE,
    METRIC_UPLOADS_COMPLETED,
    MetricSpec,
    metrics_namespace,
)


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_work_keys_are_on_every_line_of_the_work_and_gone_after_it() -> None:
    out = io.StringIO()
    with telemetry.redirect_output(out):
        with telemetry.invocation(CHUNK_HANDLER, None):
            logger.info("before the message")
            with telemetry.sqs_message("m-1", 2):
                telemetry.work_on("u-1", chunk=7)
                logger.info("inside", extra={"rows": 3})
            logger.info("after the message")
        logger.info("after the invocation")
    before, inside, after_message, after_invocation = lines(out)
    invocation_keys = ("cold_start", "function_name", "function_memory_size", "function_request_id")
    for line in (before, inside, after_message):
        assert line["service"] == METRIC_SERVICE
        assert line["function_name"] == CHUNK_HANDLER
        assert all(key in line for key in invocation_keys)
    assert {key: inside[key] for key in ("message_id", "attempt", "upload_id", "chunk", "rows")} == {
        "message_id": "m-1",
        "attempt": 2,
        "upload_id": "u-1",
        "chunk": 7,
        "rows": 3,
    }
    assert len({line["function_request_id"] for line in (before, inside, after_message)}) == 1
    for key in ("message_id", "attempt", "upload_id", "chunk"):
        assert key not in after_message and key not in before
    assert not any(key in after_invocation for key in invocation_keys)


def test_a_unit_of_works_metrics_are_one_emf_record_with_its_keys_as_metadata(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("UPFLOW_STACK", "unit")
    out = io.StringIO()
    with telemetry.redirect_output(out), telemetry.invocation(CHUNK_HANDLER, None):
        with telemetry.sqs_message("m-2", 1):
            telemetry.work_on("u-2", shard=3)
            telemetry.emit(METRIC_ROWS_VALID, 10)
            telemetry.emit(METRIC_ROWS_VALID, 5)
            telemetry.emit(METRIC_CHUNK_DURATION, 12.5)
            assert out.getvalue() == ""  # nothing written before the work ends
        telemetry.emit(METRIC_UPLOADS_COMPLETED, 1)  # outside the message: the invocation's record
    work, rest = lines(out)
    directive = work["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == metrics_namespace("unit")
    assert directive["Dimensions"] == [["service"]]
    assert {(m["Name"], m["Unit"]) for m in directive["Metrics"]} == {
        ("RowsValid", "Count"),
        ("ChunkDuration", "Milliseconds"),
    }
    assert work["RowsValid"] == [10.0, 5.0] and work["ChunkDuration"] == [12.5]
    assert (work["service"], work["upload_id"], work["shard"], work["message_id"]) == (
        METRIC_SERVICE,
        "u-2",
        3,
        "m-2",
    )
    assert rest["UploadsCompleted"] == [1.0] and "upload_id" not in rest
    assert rest["function_request_id"] == work["function_request_id"]


def test_a_metric_outside_any_invocation_is_written_at_once_and_only_ours_are_taken() -> None:
    out = io.StringIO()
    with telemetry.redirect_output(out):
        telemetry.emit(METRIC_UPLOADS_COMPLETED, 1)
        assert lines(out)[0]["UploadsCompleted"] == [1.0]
        with pytest.raises(ValueError, match="not one of"):
            telemetry.emit(MetricSpec("Invented", "Count", (CHUNK_HANDLER,)), 1)


def test_later_invocations_are_warm_and_each_has_its_own_request_id() -> None:
    out = io.StringIO()
    with telemetry.redirect_output(out):
        for _ in range(2):
            with telemetry.invocation(CHUNK_HANDLER, None):
                logger.info("work")
    first, second = lines(out)
    assert second["cold_start"] is False
    assert first["function_request_id"] != second["function_request_id"]


def test_concurrent_requests_on_threads_keep_their_own_keys() -> None:
    """chalice local serves requests on threads: one request's keys never reach another's lines."""
    out = io.StringIO()
    both_inside = threading.Barrier(2)

    def request(upload_id: str) -> None:
        with telemetry.invocation("api_handler", None):
            telemetry.work_on(upload_id)
            both_inside.wait(5)
            logger.info("request")

    with telemetry.redirect_output(out):
        threads = [threading.Thread(target=request, args=(name,)) for name in ("u-a", "u-b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    found = lines(out)
    assert sorted(line["upload_id"] for line in found) == ["u-a", "u-b"]
    assert len({line["function_request_id"] for line in found}) == 2

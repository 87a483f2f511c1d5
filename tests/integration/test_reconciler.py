"""The reconciler on the real local stack: work a dead Lambda left behind is moved on.

A Lambda killed by its timeout or memory limit runs no ``except`` block. Two ways it leaves
an upload, both reproduced here with real queue messages and status items:

* the worker took the chunk's message, marked the chunk ``processing`` and died; the message
  is gone (here: taken off the queue by the test) — the reconciler re-sends it;
* every delivery died that way, so SQS moved the message to the DLQ — the reconciler fails the
  chunk with the reason, the upload ends ``failed``, and ``retry`` recovers it.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import time
from typing import Any

import pytest
from csvgen import generate
from support import Api, take_chunk_message, wait_until

from processor.reconciler import reconcile
from processor.workitems import CHUNK_WORK, mark_processing
from upflow.aws import telemetry
from upflow.aws.dynamo import Update
from upflow.definition import (
    METRIC_MESSAGES_DEAD_LETTERED,
    METRIC_MESSAGES_REDRIVEN,
    METRIC_UPLOADS_FAILED,
    runtime_config_from_env,
)
from upflow.local.stack import LocalStack
from upflow.server.wiring import Services, build_services


@pytest.fixture(scope="module")
def services(stack: LocalStack, aws_env: dict[str, str]) -> Services:
    config = runtime_config_from_env(aws_env)
    # Anything `processing` for a second is presumed dead: the test decides who died.
    limits = dataclasses.replace(config.limits, stuck_after_seconds=1)
    return build_services(dataclasses.replace(config, limits=limits))


def metric_total(out: io.StringIO, name: str) -> float:
    """The sum of ``name``'s values over the EMF records written to ``out``."""
    records = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    return sum(sum(r[name]) for r in records if "_aws" in r and name in r)


def planned_upload(api: Api, services: Services, stack: LocalStack, seed: int) -> tuple[dict[str, Any], Any]:
    payload, expected = generate(200 * 1024, seed=seed, documents=120)
    created = api.upload_bytes(payload, filename="morto.csv")
    upload_id = created["upload_id"]
    wait_until(
        lambda: services.status.get({"pk": f"UPLOAD#{upload_id}", "sk": "CHUNK#000000"}) is not None,
        60,
        "the planner did not plan the upload",
    )
    return created, expected


def test_a_chunk_whose_worker_died_with_its_message_is_redriven(
    api: Api, stack: LocalStack, services: Services
) -> None:
    stack.pause_chunk_workers()
    try:
        created, expected = planned_upload(api, services, stack, seed=41)
        upload_id = created["upload_id"]
        take_chunk_message(services, upload_id)
        key = {"pk": f"UPLOAD#{upload_id}", "sk": "CHUNK#000000"}
        item = services.status.get(key)
        assert item is not None
        mark_processing(services, CHUNK_WORK, upload_id, 0, item)
        time.sleep(1.5)
        out = io.StringIO()
        with telemetry.redirect_output(out):
            report = reconcile(services)
        assert f"{upload_id}/chunk/0" in report.redriven
        assert metric_total(out, METRIC_MESSAGES_REDRIVEN.name) >= 1
    finally:
        stack.resume_chunk_workers()
    final = api.wait_final(upload_id, created["token"], timeout=120)
    assert final["status"] in ("completed", "completed_with_errors")
    assert final["summary"]["rows_valid"] == expected.rows_valid
    assert final["documents_total"] == len(expected.totals)


def test_a_dead_lettered_chunk_fails_with_its_reason_and_retry_recovers_it(
    api: Api, stack: LocalStack, services: Services
) -> None:
    stack.pause_chunk_workers()
    try:
        created, expected = planned_upload(api, services, stack, seed=43)
        upload_id, token = created["upload_id"], created["token"]
        body = take_chunk_message(services, upload_id)
        key = {"pk": f"UPLOAD#{upload_id}", "sk": "CHUNK#000000"}
        # Five deliveries, each killed before any except block ran, then SQS's redrive.
        services.status.update(
            key, Update(set={"status": "processing"}, add={"attempts": services.config.limits.max_receives})
        )
        services.chunks_dlq.send_json([body])
        out = io.StringIO()
        with telemetry.redirect_output(out):
            report = reconcile(services)
        assert f"{upload_id}/chunk/0" in report.failed and report.dead_letters >= 1
        assert metric_total(out, METRIC_MESSAGES_DEAD_LETTERED.name) >= 1
        # The chunk counted failed was the upload's last: the same pass failed the upload.
        assert metric_total(out, METRIC_UPLOADS_FAILED.name) == 1
    finally:
        stack.resume_chunk_workers()
    final = api.wait_final(upload_id, token, timeout=60)
    assert final["status"] == "failed" and final["error"]["code"] == "chunks_failed", final
    chunk = services.status.get(key)
    assert chunk is not None and "timed out or ran out of memory" in chunk["last_error"]
    assert services.chunks_dlq.approximate_count() == 0
    status, answer = api.call("POST", f"/uploads/{upload_id}/retry", token)
    assert (status, answer["requeued"]) == (200, 1)
    final = api.wait_final(upload_id, token, timeout=120)
    assert final["status"] in ("completed", "completed_with_errors")
    assert final["summary"]["rows_valid"] == expected.rows_valid


def test_the_local_stack_runs_the_reconciler_on_its_schedule(stack: LocalStack) -> None:
    pid = stack.pid_of("pump-reconciler-0")
    os.kill(pid, 0)  # alive: the local stack's stand-in for the EventBridge schedule

"""Chaos: the processing processes killed with SIGKILL, at random moments and at chosen ones.

One local stack of its own, with the local timeouts shorter still (a killed pump's message
back after 4 s, the reconciler every 3 s) and small chunks (64 KiB: uploads of a few hundred
KiB are planned in pages of two chunks, mapped in several chunks, reduced in several shards).
Uploads go in one after another while

* at random moments (seeded; the seed is printed, ``UPFLOW_CHAOS_SEED`` replays it) a random
  pump — planner, either chunk worker, reconciler — is killed with SIGKILL, whatever it is
  doing, at least ``RANDOM_KILLS`` times;
* at chosen moments a pump kills itself (``upflow.local.crash``, injected from the local side:
  no hook in the processor's code): during planning between two plan pages and in the middle
  of one, right after a chunk's completion committed, between the last chunk and the reduce,
  right after a shard's completion, between the last shard and the final report, in the
  middle of finalisation, and just before the final status.

The supervisor starts every killed pump again, as Lambda runs the next invocation. Every
upload must end completed, its counts, per-document totals and error report equal to the
offline check (``upflow.core.checker.check_file``) of the same bytes. No message may be
killed on its fifth delivery (SQS would dead-letter it, and the upload would wait for
``upflow retry``, as designed): a random kill spares a pump holding a message delivered
before, so a message meets at most one random kill and the few chosen crashes its work passes.
"""

from __future__ import annotations

import csv
import io
import os
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from csvgen import generate
from support import Api

from upflow.core.checker import CheckResult, check_file
from upflow.definition import RESULTS_PREFIX, Limits
from upflow.local.crash import CRASH_ENV
from upflow.local.processes import free_port
from upflow.local.stack import DEFAULT_S3, LocalStack, LocalTimeouts, start_stack

CHUNK_SIZE = 64 * 1024
TIMEOUTS = LocalTimeouts(visibility_seconds=4, stuck_after_seconds=12, reconcile_every_seconds=3)
RANDOM_KILLS = 20
# The processes that process: each dies like a Lambda stopped by its timeout.
PUMPS = ("pump-events-0", "pump-chunks-0", "pump-chunks-1", "pump-reconciler-0")
PUMP_WEIGHTS = (2, 3, 3, 1)
# The share of random kills aimed at a pump handling a message (when one is).
BUSY_KILLS = 0.75
# A random kill spares a pump holding a message delivered this often already.
MAX_RECEIVES_KILLED = 1
# Each pump's chosen crashes, one after another (the next armed when the last has struck).
CHOSEN: dict[str, list[str]] = {
    "pump-events-0": [
        # Handling a plan page: the page written and counted, the next page not yet asked for.
        'sqs.SendMessageBatch:"type": "plan_page":1@"type": "plan_page"',
        # Handling a plan page: its chunk items written, their messages not yet sent.
        'sqs.SendMessageBatch:"type": "chunk":1@"type": "plan_page"',
    ],
    "pump-chunks-0": [
        # A chunk's completion committed; nothing after it (advance) ran.
        "after:dynamodb.TransactWriteItems:chunks_done:2",
        # The last chunk mapped and the reduce planned; its messages not yet sent.
        'sqs.SendMessageBatch:"type": "reduce":1',
        # Finalising: the report written, the totals not yet.
        "s3.PutObject:/totals.csv:1",
    ],
    "pump-chunks-1": [
        # The last shard reduced; the final report not yet written.
        "s3.PutObject:reports/:1",
        # A shard's completion committed; nothing after it ran.
        "after:dynamodb.TransactWriteItems:shards_done:1",
        # Report and totals written; the final status not yet.
        "dynamodb.UpdateItem:reports/:1",
    ],
}
MAX_UPLOADS = 30
UPLOADS_AT_ONCE = 3
IN_FLIGHT = ("uploading", "uploaded", "processing", "reducing")
WALL_SECONDS = 240.0


@dataclass
class Upload:
    name: str
    payload: bytes
    expected: CheckResult
    upload_id: str = ""
    token: str = ""
    final: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def chaos_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    log_dir = tmp_path_factory.mktemp("chaos-logs")
    print(f"chaos stack logs: {log_dir}")
    stack = start_stack(
        moto_port=free_port(),
        api_port=free_port(),
        web_port=None,
        chunk_workers=2,
        stack_name="chaos",
        extra_env={
            "UPFLOW_CHUNK_SIZE": str(CHUNK_SIZE),
            "UPFLOW_PLAN_PAGE_CHUNKS": "2",
            "UPFLOW_DOCUMENTS_PER_SHARD": "60",
            "UPFLOW_RETRY_BACKOFF_SECONDS": "1",
        },
        log_dir=log_dir,
        serve_page=False,
        s3=os.environ.get("UPFLOW_TEST_S3", DEFAULT_S3),  # type: ignore[arg-type]
        s3_dir=tmp_path_factory.mktemp("chaos-s3"),
        timeouts=TIMEOUTS,
    )
    try:
        yield stack
    finally:
        stack.stop()


def make_upload(index: int, rng: random.Random, work: Path) -> Upload:
    payload, _ = generate(rng.randint(200, 420) * 1024, seed=rng.randrange(2**31), documents=150)
    path = work / f"caos-{index}.csv"
    path.write_bytes(payload)
    return Upload(f"caos-{index}.csv", payload, check_file(path, CHUNK_SIZE, Limits()))


def describe(held: list[dict[str, Any]]) -> str:
    if not held:
        return "idle"
    return ", ".join(f"{m['body'][:90]} (delivery {m['receives']})" for m in held)


def assert_exact(api: Api, stack: LocalStack, upload: Upload) -> None:
    final, expected = upload.final, upload.expected
    assert final["status"] in ("completed", "completed_with_errors"), final
    summary, want = final["summary"], expected.summary
    assert (summary["rows_total"], summary["rows_valid"], summary["rows_invalid"]) == (
        want.rows_total,
        want.rows_valid,
        want.rows_invalid,
    ), upload.name
    assert summary["errors"] == {code: n for code, n in want.errors.items() if n}, upload.name
    assert Decimal(summary["amount_valid"]) == want.amount_valid, upload.name
    assert final["documents_total"] == len(expected.totals), upload.name
    s3 = stack.boto3_client("s3")
    totals_key = f"{RESULTS_PREFIX}{upload.upload_id}/totals.csv"
    totals = s3.get_object(Bucket=stack.names.bucket, Key=totals_key)["Body"].read().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(totals)))
    assert rows[0] == ["document", "type", "rows", "amount"]
    assert [(d, t, int(n), Decimal(a)) for d, t, n, a in rows[1:]] == [
        (t.document, t.doc_type, t.rows, t.amount) for t in expected.totals
    ], upload.name
    report = (
        s3.get_object(Bucket=stack.names.bucket, Key=final["report_key"])["Body"].read().decode("utf-8-sig")
    )
    lines = list(csv.DictReader(io.StringIO(report)))
    assert [(int(r["line"]), r["code"]) for r in lines] == [(line, e.code) for line, e in expected.errors]


def test_every_upload_ends_exact_whatever_dies_when(chaos_stack: LocalStack, tmp_path: Path) -> None:
    stack = chaos_stack
    seed = int(os.environ.get("UPFLOW_CHAOS_SEED", str(time.time_ns() % 2**32)))
    print(f"chaos seed {seed} (UPFLOW_CHAOS_SEED={seed} replays the same choices)")
    rng = random.Random(seed)
    api = Api(stack.api_url)
    started = time.monotonic()
    uploads: list[Upload] = []
    chosen = {name: list(points) for name, points in CHOSEN.items()}
    armed: dict[str, str] = {}
    kills: list[str] = []
    stop_uploading = threading.Event()
    upload_errors: list[BaseException] = []

    def unfinished() -> int:
        return sum(
            1
            for upload in uploads
            if api.call("GET", f"/uploads/{upload.upload_id}", upload.token)[1]["status"] in IN_FLIGHT
        )

    def keep_uploading() -> None:
        """New uploads as long as the chaos goes on, a few at a time (a short backlog: every
        stage of some upload is always near)."""
        upload_rng = random.Random(rng.randrange(2**31))
        try:
            while not stop_uploading.is_set() and len(uploads) < MAX_UPLOADS:
                if unfinished() >= UPLOADS_AT_ONCE:
                    stop_uploading.wait(0.5)
                    continue
                upload = make_upload(len(uploads), upload_rng, tmp_path)
                created = api.upload_bytes(upload.payload, filename=upload.name)
                upload.upload_id, upload.token = created["upload_id"], created["token"]
                uploads.append(upload)
        except BaseException as error:  # the test fails on it below
            upload_errors.append(error)

    uploader = threading.Thread(target=keep_uploading, name="uploads", daemon=True)
    uploader.start()
    try:
        while time.monotonic() - started < WALL_SECONDS:
            # Arm each pump's next chosen crash once the last one struck (the supervisor then
            # started the pump again, without it).
            for name, points in chosen.items():
                if name in armed and not stack.supervisor.overridden(name):
                    point = armed.pop(name)  # it struck, or a random kill took the pump first
                    if (name, point) in {(pump, said["point"]) for pump, said in stack.crashes}:
                        print(f"{time.monotonic() - started:5.1f}s {name} crashed at {points.pop(0)}")
                if name not in armed and points:
                    armed[name] = points[0]
                    stack.replace(name, {CRASH_ENV: armed[name]})
            if len(kills) < RANDOM_KILLS:
                time.sleep(rng.uniform(0.3, 1.5))
                # Mostly a pump at work (the moments that matter), sometimes any pump.
                busy = [name for name in PUMPS if stack.held(name)]
                if busy and rng.random() < BUSY_KILLS:
                    victim = rng.choice(busy)
                else:
                    victim = rng.choices(PUMPS, PUMP_WEIGHTS)[0]
                held = stack.held(victim)
                if all(m["receives"] <= MAX_RECEIVES_KILLED for m in held):
                    try:
                        pid = stack.kill(victim)
                    except ProcessLookupError:
                        continue  # dead already (a chosen crash), not started again yet
                    kills.append(f"{time.monotonic() - started:5.1f}s {victim} (pid {pid}): {describe(held)}")
                continue
            if not any(chosen.values()) and not armed:
                break
            time.sleep(0.3)
        print(f"kills and chosen crashes done after {time.monotonic() - started:.0f}s")
        stop_uploading.set()
        uploader.join(60)
        assert not upload_errors, upload_errors
        for upload in uploads:
            left = WALL_SECONDS - (time.monotonic() - started)
            upload.final = api.wait_final(upload.upload_id, upload.token, timeout=max(30.0, left))
    finally:
        stop_uploading.set()
        struck = [{"pump": pump, **said} for pump, said in stack.crashes]
        print(
            f"{len(uploads)} uploads, {len(kills)} random kills, {len(struck)} chosen crashes, "
            f"restarts {stack.restarts}, {time.monotonic() - started:.0f}s"
        )
        for kill in kills:
            print(f"  killed {kill}")
        for crash in struck:
            print(f"  crashed {crash['pump']} at {crash['point']}: {crash['call'][:120]!r}")

    assert len(kills) >= RANDOM_KILLS
    assert sorted(c["point"] for c in struck) == sorted(p for points in CHOSEN.values() for p in points)
    for upload in uploads:
        assert_exact(api, stack, upload)

"""The local pump's pieces: the reconciler's schedule, and the crashes the chaos test injects."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from upflow.local.crash import CrashPoint, call_text
from upflow.local.pump import reconcile_forever


def test_the_reconciler_runs_every_period_and_survives_a_failed_pass() -> None:
    calls: list[float] = []
    started = time.monotonic()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(time.monotonic() - started)
        if len(calls) == 1:
            raise RuntimeError("the local AWS restarted")  # the next pass still comes
        return {"dead_letters": 0}

    reconcile_forever(handler, 0.2, lambda: len(calls) >= 3)
    assert len(calls) == 3
    assert calls[0] >= 0.2  # first after one period, not at start-up
    assert all(later - earlier >= 0.19 for earlier, later in itertools.pairwise(calls))


# --- crashes on purpose (upflow.local.crash) ---------------------------------------------------

CRASHING_CLIENT = """
import sys
import boto3
from botocore.stub import Stubber
from upflow.local.crash import CrashPoint, arm

s3 = boto3.client(
    "s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
    aws_access_key_id="testing", aws_secret_access_key="testing",
)
stubber = Stubber(s3)  # answers every call in-process: nothing leaves the machine
for _ in range(4):
    stubber.add_response("put_object", {})
stubber.activate()
arm([s3], CrashPoint.parse(sys.argv[1]))
for key in ("data/a", "reports/1/errors.csv", "data/b", "reports/2/errors.csv"):
    s3.put_object(Bucket="b", Key=key, Body=b"reports/ in a body is never matched")
    print("returned", key, flush=True)
"""


def run_crashing_client(point: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CRASHING_CLIENT, point],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_a_crash_point_kills_the_process_just_before_its_nth_matching_call() -> None:
    done = run_crashing_client("s3.PutObject:reports/:2")
    assert done.returncode == -signal.SIGKILL, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:3] == ["returned data/a", "returned reports/1/errors.csv", "returned data/b"]
    said = json.loads(lines[3])
    assert said["event"] == "crash" and said["point"] == "s3.PutObject:reports/:2"
    assert "reports/2/errors.csv" in said["call"]
    assert len(lines) == 4


def test_an_after_crash_point_kills_it_once_the_call_returned() -> None:
    done = run_crashing_client("after:s3.PutObject:reports/:1")
    assert done.returncode == -signal.SIGKILL, done.stderr
    lines = done.stdout.splitlines()
    # The call was made (its answer came back), the code after it never ran.
    assert lines[0] == "returned data/a"
    assert json.loads(lines[1])["call"].count("reports/1/errors.csv") == 1
    assert len(lines) == 2


def test_crash_points_read_and_print_back() -> None:
    for spec in (
        "s3.PutObject:reports/:1",
        'sqs.SendMessageBatch:"type": "plan_page":2',
        "after:dynamodb.TransactWriteItems:chunks_done:3",
        "dynamodb.GetItem:1",
        'sqs.SendMessageBatch:"type": "plan_page":1@"type": "plan_page"',
    ):
        assert str(CrashPoint.parse(spec)) == spec
    point = CrashPoint.parse('sqs.SendMessageBatch:"a": 1:2')  # the text may hold colons
    assert (point.service, point.operation, point.text, point.nth) == ("sqs", "SendMessageBatch", '"a": 1', 2)
    point = CrashPoint.parse("s3.PutObject:reports/:1@plan_page")
    assert (point.text, point.nth, point.handling) == ("reports/", 1, "plan_page")
    for bad in ("s3.PutObject", "s3:1", "s3.PutObject:x:0", "s3.PutObject:x:y", "s3.PutObject:1@"):
        with pytest.raises(ValueError, match="UPFLOW_LOCAL_CRASH"):
            CrashPoint.parse(bad)


def test_a_calls_text_holds_its_keys_and_strings_but_no_body() -> None:
    text = call_text(
        {
            "Key": "results/u1/totals.csv",
            "Body": b"secret bytes",
            "Entries": [{"Id": "0", "MessageBody": '{"type": "plan_page"}'}],
            "Item": {"chunks_done": {"N": "1"}},
        }
    )
    assert "results/u1/totals.csv" in text and '{"type": "plan_page"}' in text and "chunks_done" in text
    assert "secret" not in text

"""Pure pieces of the pipeline's message handling, on JSON event fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from processor.batch import backoff_seconds, receive_count
from processor.model import chunk_message, chunk_sort_key, plan_page_message
from processor.planner import _upload_id_of
from upflow.aws.sqs import queue_name_from_arn
from upflow.definition import names_for, object_created_pattern
from upflow.local.pump import lambda_record

EVENTS = Path(__file__).resolve().parents[1] / "events"


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((EVENTS / name).read_text()))


def test_the_upload_id_comes_from_the_object_key_of_an_s3_event() -> None:
    event = load("eventbridge_object_created.json")
    assert _upload_id_of(event) == "0123456789abcdef0123456789abcdef"
    assert _upload_id_of(plan_page_message("abc", 1000)) == "abc"
    assert _upload_id_of({"detail": {"object": {"key": "reports/x/errors.csv"}}}) is None


def test_the_rule_pattern_matches_the_event_fixture() -> None:
    event = load("eventbridge_object_created.json")
    pattern = object_created_pattern(names_for("dev").bucket)
    assert event["source"] in pattern["source"] and event["detail-type"] in pattern["detail-type"]
    assert event["detail"]["bucket"]["name"] in pattern["detail"]["bucket"]["name"]
    assert event["detail"]["object"]["key"].startswith(pattern["detail"]["object"]["key"][0]["prefix"])


def test_sqs_record_fields() -> None:
    record = load("sqs_record.json")
    assert receive_count(record) == 2
    assert receive_count({}) == 1
    assert queue_name_from_arn(record["eventSourceARN"]) == "upflow-dev-chunks"
    assert json.loads(record["body"]) == chunk_message("0123456789abcdef0123456789abcdef", 3)


@pytest.mark.parametrize(("receives", "delay"), [(1, 10), (2, 20), (3, 40), (10, 900), (50, 900)])
def test_retry_backoff_doubles_and_is_capped(receives: int, delay: int) -> None:
    assert backoff_seconds(receives, base=10) == delay


def test_chunk_sort_keys_sort_in_chunk_order() -> None:
    keys = [chunk_sort_key(index) for index in (0, 9, 10, 999, 9_999)]
    assert keys == sorted(keys)


def test_the_pump_builds_lambdas_record_shape_from_an_sqs_message() -> None:
    fixture = load("sqs_record.json")
    message = {
        "MessageId": fixture["messageId"],
        "ReceiptHandle": fixture["receiptHandle"],
        "Body": fixture["body"],
        "Attributes": fixture["attributes"],
        "MD5OfBody": fixture["md5OfBody"],
    }
    assert lambda_record(message, fixture["eventSourceARN"], "us-east-1") == fixture

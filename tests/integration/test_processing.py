"""The whole pipeline on the moto server: S3 event → EventBridge → SQS → planner →
chunks → workers → DynamoDB, checked against the generator's own bookkeeping."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from typing import Any

import pytest
import requests
from csvgen import Expected, generate
from support import Api, wait_until

from processor.model import chunk_message, reduce_message
from processor.worker import map_chunk
from upflow.definition import MiB, results_partition, runtime_config_from_env
from upflow.local.stack import LocalStack
from upflow.server.wiring import Services, build_services


@pytest.fixture(scope="module")
def services(stack: LocalStack, aws_env: dict[str, str]) -> Services:
    return build_services(runtime_config_from_env(aws_env))


def results_of(dynamodb: Any, stack: LocalStack, upload_id: str) -> dict[str, tuple[str, int, Decimal]]:
    """Every results item of the upload, read partition by partition (one per reduce shard)."""
    meta = dynamodb.get_item(
        TableName=stack.names.status_table,
        Key={"pk": {"S": f"UPLOAD#{upload_id}"}, "sk": {"S": "META"}},
        ConsistentRead=True,
    )["Item"]
    found: dict[str, tuple[str, int, Decimal]] = {}
    for shard in range(int(meta["shard_total"]["N"])):
        kwargs: dict[str, Any] = {
            "TableName": stack.names.results_table,
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": results_partition(upload_id, shard)}},
        }
        while True:
            page = dynamodb.query(**kwargs)
            for item in page["Items"]:
                assert item["document"]["S"] not in found, "a document is in two shards"
                found[item["document"]["S"]] = (
                    item["doc_type"]["S"],
                    int(item["rows"]["N"]),
                    Decimal(item["amount"]["N"]),
                )
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return found


def assert_matches(
    api: Api,
    dynamodb: Any,
    stack: LocalStack,
    created: dict[str, Any],
    expected: Expected,
    final: dict[str, Any],
) -> None:
    upload_id, token = created["upload_id"], created["token"]
    assert final["status"] == ("completed_with_errors" if expected.rows_invalid else "completed"), final
    summary = final["summary"]
    assert {k: summary[k] for k in expected.summary()} == expected.summary()
    assert final["chunks"]["done"] == final["chunks"]["total"] and final["chunks"]["failed"] == 0
    assert results_of(dynamodb, stack, upload_id) == expected.totals
    status, link = api.call("GET", f"/uploads/{upload_id}/errors", token)
    assert status == 200, link
    report = requests.get(link["url"], timeout=60)
    assert report.status_code == 200
    assert report.content.startswith(b"\xef\xbb\xbf"), "the report starts with a BOM for spreadsheets"
    rows = list(csv.reader(io.StringIO(report.content.decode("utf-8-sig"))))
    assert rows[0] == ["line", "column", "code", "message", "value"]
    assert [(int(r[0]), r[2]) for r in rows[1:]] == expected.error_lines
    assert [(e["line"], e["code"]) for e in final["first_errors"]] == expected.error_lines[
        : len(final["first_errors"])
    ]


def test_a_large_file_is_validated_and_consolidated_exactly(
    api: Api, dynamodb: Any, stack: LocalStack
) -> None:
    payload, expected = generate(50 * 1024 * 1024 + 12345, seed=11, documents=600)
    created = api.upload_bytes(payload, filename="grande.csv")
    final = api.wait_final(created["upload_id"], created["token"], timeout=600)
    assert final["chunks"]["total"] == 7  # 50 MiB in 8 MiB chunks
    assert final["format"]["delimiter"] == ";"
    assert_matches(api, dynamodb, stack, created, expected, final)


def test_every_chunk_delivered_twice_and_a_worker_killed_mid_chunk(
    api: Api, dynamodb: Any, stack: LocalStack, services: Services
) -> None:
    payload, expected = generate(20 * MiB, seed=23, crlf=True, documents=400)
    stack.pause_chunk_workers()
    try:
        created = api.upload_bytes(payload, filename="duplicado.csv")
        upload_id, token = created["upload_id"], created["token"]
        wait_until(
            lambda: (
                api.call("GET", f"/uploads/{upload_id}", token)[1]["chunks"]["total"] == 3
                and services.status.get({"pk": f"UPLOAD#{upload_id}", "sk": "CHUNK#000002"}) is not None
            ),
            60,
            "the planner did not plan the upload",
        )
        # A second copy of every chunk message, as SQS may deliver.
        services.chunks.send_json([chunk_message(upload_id, index) for index in range(3)])
        # A worker that died after writing chunk 0's objects, before its status write.
        item = services.status.get({"pk": f"UPLOAD#{upload_id}", "sk": "META"})
        chunk_item = services.status.get({"pk": f"UPLOAD#{upload_id}", "sk": "CHUNK#000000"})
        assert item is not None and chunk_item is not None
        _, partial, _ = map_chunk(services, upload_id, item, chunk_item)
        assert partial.documents > 2 * 99
    finally:
        stack.resume_chunk_workers()
    final = api.wait_final(upload_id, token, timeout=300)
    assert_matches(api, dynamodb, stack, created, expected, final)
    # A late duplicate of finished map and reduce work changes nothing.
    services.chunks.send_json([chunk_message(upload_id, 0), reduce_message(upload_id, 0)])
    wait_until(lambda: services.chunks.approximate_count() == 0, 60, "the duplicates were not consumed")
    final = api.wait_final(upload_id, token, timeout=300)
    assert_matches(api, dynamodb, stack, created, expected, final)


def test_a_poison_chunk_goes_to_the_dlq_shows_failed_and_retry_recovers_it(
    api: Api, dynamodb: Any, s3: Any, sqs: Any, stack: LocalStack, services: Services
) -> None:
    payload, expected = generate(256 * 1024, seed=5, documents=300)
    stack.pause_chunk_workers()
    try:
        created = api.upload_bytes(payload, filename="veneno.csv")
        upload_id, token = created["upload_id"], created["token"]
        wait_until(
            lambda: services.status.get({"pk": f"UPLOAD#{upload_id}", "sk": "CHUNK#000000"}) is not None,
            60,
            "the planner did not plan the upload",
        )
        # The object becomes unreadable: every attempt at the chunk fails.
        s3.delete_object(Bucket=stack.names.bucket, Key=created["key"])
    finally:
        stack.resume_chunk_workers()
    final = api.wait_final(upload_id, token, timeout=120)
    assert final["status"] == "failed" and final["chunks"]["failed"] == 1
    assert final["error"]["code"] == "chunks_failed"
    chunk = services.status.get({"pk": f"UPLOAD#{upload_id}", "sk": "CHUNK#000000"})
    assert chunk is not None and chunk["status"] == "failed" and "NoSuchKey" in chunk["last_error"]
    assert int(chunk["attempts"]) == services.config.limits.max_receives == 5
    dlq_url = sqs.get_queue_url(QueueName=stack.names.chunks_dlq)["QueueUrl"]

    def dead_lettered() -> bool:
        messages = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=1).get(
            "Messages", []
        )
        return any(json.loads(m["Body"]).get("upload_id") == upload_id for m in messages)

    wait_until(dead_lettered, 60, "the poison chunk never reached the DLQ")
    # The object is back (same bytes); retry re-runs the failed chunk.
    s3.put_object(Bucket=stack.names.bucket, Key=created["key"], Body=payload)
    status, answer = api.call("POST", f"/uploads/{upload_id}/retry", token)
    assert (status, answer["requeued"]) == (200, 1)
    final = api.wait_final(upload_id, token, timeout=120)
    assert_matches(api, dynamodb, stack, created, expected, final)
    status, answer = api.call("POST", f"/uploads/{upload_id}/retry", token)
    assert status == 409


BAD_FILES = [
    ("header_only.csv", b"documento;valor\n", "no_data_rows"),
    ("no_header.csv", b"52998224725;10,00\n11144477735;5,00\n", "unmapped_header"),
    ("garbage.csv", bytes(range(256)) * 64, None),
    ("wrong_delimiter.csv", b"documento:valor\n52998224725:10,00\n", "unmapped_header"),
    ("one_line.csv", b"documento;valor;" + b"x" * (50 * MiB), None),
]


@pytest.mark.parametrize(("filename", "payload", "code"), BAD_FILES, ids=[f[0] for f in BAD_FILES])
def test_bad_files_end_in_a_clear_status(api: Api, filename: str, payload: bytes, code: str | None) -> None:
    created = api.upload_bytes(payload, filename=filename)
    final = api.wait_final(created["upload_id"], created["token"], timeout=180)
    assert final["status"] == "failed", final
    assert final["error"]["message"]
    if code:
        assert final["error"]["code"] == code


def test_an_empty_file_is_refused_before_any_upload(api: Api) -> None:
    status, body = api.call("POST", "/uploads", json_body={"filename": "empty.csv", "size": 0})
    assert status == 400 and body["field"] == "size"


def test_cp1252_with_accents_is_decoded(api: Api, dynamodb: Any, stack: LocalStack) -> None:
    text = "documento;nome;valor\r\n529.982.247-25;João Ação;1.234,56\r\n111.444.777-35;Zé;abc\r\n"
    created = api.upload_bytes(text.encode("cp1252"), filename="acentos.csv")
    final = api.wait_final(created["upload_id"], created["token"], timeout=120)
    assert final["format"]["encoding"] == "cp1252"
    assert final["status"] == "completed_with_errors"
    assert final["summary"]["rows_valid"] == 1 and final["summary"]["amount_valid"] == "1234.56"
    assert final["first_errors"][0]["line"] == 3 and final["first_errors"][0]["code"] == "invalid_amount"
    assert results_of(dynamodb, stack, created["upload_id"]) == {
        "52998224725": ("cpf", 1, Decimal("1234.56"))
    }

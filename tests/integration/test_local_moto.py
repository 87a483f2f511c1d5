"""The local stack's moto: DynamoDB's per-item atomicity and bounded memory
(upflow.local.motoserver), and ``upflow dev --s3 moto`` (S3 on moto too) carrying an upload."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from csvgen import generate
from support import Total, run_cli

from upflow.definition import RESULTS_TABLE_KEYS
from upflow.local.processes import free_port
from upflow.local.stack import LocalStack, start_stack

WRITERS = 8
ADDS = 120


def test_concurrent_conditional_adds_to_one_item_are_all_kept(dynamodb: Any, stack: LocalStack) -> None:
    """The processor's exactly-once write, raced: every ADD lands once, none is lost.

    Unserialized, moto lets two threads read the same item and store one result
    over the other (a chunk's share went missing that way in CI).
    """
    partition, sort = RESULTS_TABLE_KEYS
    key = {partition: {"S": f"atomic-{uuid.uuid4().hex}"}, sort: {"S": "52998224725"}}

    def add(index: int) -> None:
        dynamodb.update_item(
            TableName=stack.names.results_table,
            Key=key,
            UpdateExpression="ADD #rows :one, #applied :chunk",
            ConditionExpression="NOT contains(#applied, :index)",
            ExpressionAttributeNames={"#rows": "rows", "#applied": "applied_chunks"},
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":chunk": {"NS": [str(index)]},
                ":index": {"N": str(index)},
            },
        )

    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(add, range(ADDS)))
    item = dynamodb.get_item(TableName=stack.names.results_table, Key=key, ConsistentRead=True)["Item"]
    assert int(item["rows"]["N"]) == ADDS
    assert sorted(int(n) for n in item["applied_chunks"]["NS"]) == list(range(ADDS))


def _resident_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def test_transactions_leave_no_copies_behind_in_moto(dynamodb: Any, stack: LocalStack) -> None:
    """moto copies each table a transaction touches (for its rollback) and, unless told to
    forget them, keeps every copy for its dashboard: a chunk's completion cost moto memory in
    proportion to the chunks already in the table (~2 GiB over a 512-chunk upload).

    Here 150 transactions on a table of 200 items: kept, their copies would be ~30,000 items
    (~25 MiB); the server grows by much less."""
    table = f"moto-copies-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    try:
        fields = {f"count_{n}": {"N": str(n)} for n in range(10)}
        for first in range(0, 200, 25):
            dynamodb.batch_write_item(
                RequestItems={
                    table: [
                        {"PutRequest": {"Item": {"pk": {"S": f"item-{i}"}, **fields}}}
                        for i in range(first, first + 25)
                    ]
                }
            )

        def transaction(number: int) -> None:
            dynamodb.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": table,
                            "Key": {"pk": {"S": f"item-{number % 200}"}},
                            "UpdateExpression": "ADD count_0 :one",
                            "ExpressionAttributeValues": {":one": {"N": "1"}},
                        }
                    }
                ]
            )

        moto = stack.pid_of("moto")
        for number in range(20):  # the server's allocator warmed up by the same work
            transaction(number)
        before = _resident_bytes(moto)
        for number in range(150):
            transaction(number)
        grown = _resident_bytes(moto) - before
        assert grown < 8 * 1024 * 1024, f"moto grew by {grown / 2**20:.1f} MiB over 150 transactions"
    finally:
        dynamodb.delete_table(TableName=table)


def test_a_stack_with_s3_on_moto_carries_an_upload_to_exact_totals(tmp_path: Path) -> None:
    """The session's stack keeps S3 on SeaweedFS; ``--s3 moto`` (moto's own S3 and its own
    "Object Created" notifications to EventBridge) runs the same pipeline to the same result."""
    payload, expected = generate(600 * 1024, seed=77, error_rate=0.03, documents=120)
    path = tmp_path / "on-moto.csv"
    path.write_bytes(payload)
    stack = start_stack(
        moto_port=free_port(),
        api_port=free_port(),
        web_port=None,
        chunk_workers=1,
        stack_name="on-moto",
        extra_env={"UPFLOW_CHUNK_SIZE": str(256 * 1024), "UPFLOW_RETRY_BACKOFF_SECONDS": "1"},
        log_dir=tmp_path / "logs",
        serve_page=False,
        s3="moto",
    )
    try:
        assert stack.s3 == "moto" and stack.s3_endpoint == stack.endpoint
        home = tmp_path / "home"
        done = run_cli(
            ["upload", str(path), "--api", stack.api_url, "--wait", "--json", "--plain", "--timeout", "180"],
            home,
        )
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert {k: summary[k] for k in expected.summary()} == expected.summary()
        results = run_cli(["results", summary["upload_id"], "--api", stack.api_url, "--json"], home)
        assert results.returncode == 0, results.stderr
        got = sorted(json.loads(results.stdout)["documents"], key=lambda total: str(total["document"]))
        assert got == [
            Total(document, doc_type, rows, amount).as_api()
            for document, (doc_type, rows, amount) in sorted(expected.totals.items())
        ]
    finally:
        stack.stop()

"""Cost as code: the AWS requests one upload makes, counted on the real local stack.

Every boto3 client of every process of the stack (API, planner, workers, reducers) appends
one line per request to the stack's request log (``UPFLOW_REQUEST_LOG``, set by the session
fixture). A test reads the lines one upload added and holds them to the design's bounds
(docs/design.md, "Consolidation"; priced in docs/performance.md):

* DynamoDB write requests ≤ documents / 25 + 6·chunks + 6·shards + 24 — the results are
  written once per document in batches of 25, the rest is per chunk, per shard or per upload;
* no item grows with the chunk count: a result item holds its five attributes, whatever the
  number of chunks its document appeared in;
* S3 reads of the partials: exactly two ranged GETs per (chunk, shard), plus one per chunk.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from csvgen import generate
from support import Api

from upflow.definition import MiB, results_partition
from upflow.local.stack import LocalStack

DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


def requests_since(log: Path, offset: int) -> Counter[tuple[str, str]]:
    with log.open("rb") as lines:
        lines.seek(offset)
        return Counter(tuple(line.decode().split()) for line in lines)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("size", "documents"), [(20 * MiB, 3_000), (600 * 1024, 900)], ids=["3-chunks", "1-chunk"]
)
def test_requests_per_upload_stay_within_the_bounds(
    api: Api, dynamodb: Any, stack: LocalStack, request_log: Path, size: int, documents: int
) -> None:
    payload, expected = generate(size, seed=31, documents=documents)
    start = request_log.stat().st_size if request_log.exists() else 0
    created = api.upload_bytes(payload, filename="custo.csv")
    final = api.wait_final(created["upload_id"], created["token"], timeout=300)
    assert final["status"] in ("completed", "completed_with_errors"), final
    counts = requests_since(request_log, start)

    chunks, shards = final["chunks"]["total"], final["shards"]["total"]
    distinct = len(expected.totals)
    assert final["documents_total"] == distinct
    assert shards >= 2, "the fixture's small shards should split this upload"
    writes = sum(
        n
        for (service, operation), n in counts.items()
        if service == "dynamodb" and operation in DYNAMODB_WRITES
    )
    batch_writes = counts[("dynamodb", "BatchWriteItem")]
    bound = distinct / 25 + 6 * chunks + 6 * shards + 24
    report = ", ".join(f"{service} {operation} {n}" for (service, operation), n in sorted(counts.items()))
    print(f"\n{chunks} chunks, {shards} shards, {distinct} documents, {writes} DynamoDB writes")
    print(f"(bound {bound:.0f}); {report}")
    assert writes <= bound, report
    # The results themselves: one batch per 25 documents of each shard, never one write per row.
    assert batch_writes <= sum(math.ceil(distinct / shards / 25) + 1 for _ in range(shards)), report
    # A reducer reads two ranges of each chunk's partial (index entries, records) — at most.
    assert counts[("s3", "GetObject")] <= 2 * chunks * shards + 4 * chunks + 2 * shards + 8, report

    # No item grows with the chunk count.
    item = dynamodb.query(
        TableName=stack.names.results_table,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": results_partition(created["upload_id"], 0)}},
        Limit=1,
    )["Items"][0]
    assert set(item) == {"pk", "document", "doc_type", "rows", "amount"}

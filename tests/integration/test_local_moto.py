"""The local stack's moto keeps DynamoDB's per-item atomicity (upflow.local.motoserver)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from upflow.definition import RESULTS_TABLE_KEYS
from upflow.local.stack import LocalStack

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

"""The status and results tables: on-demand, point-in-time recovery on."""

from __future__ import annotations

import pulumi_aws as aws

from upflow.definition import RESULTS_TABLE_KEYS, STATUS_TABLE_KEYS, ResourceNames


def string_keyed_table(name: str, table_name: str, keys: tuple[str, str]) -> aws.dynamodb.Table:
    """A PAY_PER_REQUEST table with a string partition key and a string sort key."""
    hash_key, range_key = keys
    return aws.dynamodb.Table(
        name,
        name=table_name,
        billing_mode="PAY_PER_REQUEST",
        hash_key=hash_key,
        range_key=range_key,
        attributes=[{"name": hash_key, "type": "S"}, {"name": range_key, "type": "S"}],
        point_in_time_recovery={"enabled": True},
        server_side_encryption={"enabled": True},
    )


def create_tables(names: ResourceNames) -> tuple[aws.dynamodb.Table, aws.dynamodb.Table]:
    """(status table, results table)."""
    return (
        string_keyed_table("status-table", names.status_table, STATUS_TABLE_KEYS),
        string_keyed_table("results-table", names.results_table, RESULTS_TABLE_KEYS),
    )

"""Builds the adapters and services from a ``RuntimeConfig`` (once per process)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from upflow.aws import clients
from upflow.aws.dynamo import Table
from upflow.aws.s3 import S3Store
from upflow.aws.sqs import Queue
from upflow.definition import RuntimeConfig, runtime_config_from_env
from upflow.server.uploads import UploadService


@dataclass(frozen=True)
class Services:
    config: RuntimeConfig
    store: S3Store
    status: Table
    results: Table
    events: Queue
    chunks: Queue
    events_dlq: Queue
    chunks_dlq: Queue
    uploads: UploadService


def build_services(config: RuntimeConfig) -> Services:
    dynamodb = clients.dynamodb_client()
    sqs = clients.sqs_client()
    store = S3Store(clients.s3_client(), config.names.bucket)
    status = Table(dynamodb, config.names.status_table)
    return Services(
        config=config,
        store=store,
        status=status,
        results=Table(dynamodb, config.names.results_table),
        events=Queue(sqs, config.names.events_queue),
        chunks=Queue(sqs, config.names.chunks_queue),
        events_dlq=Queue(sqs, config.names.events_dlq),
        chunks_dlq=Queue(sqs, config.names.chunks_dlq),
        uploads=UploadService(config, store, status),
    )


@cache
def services_from_env() -> Services:
    """The process-wide services (Lambda containers and ``chalice local`` alike)."""
    return build_services(runtime_config_from_env())

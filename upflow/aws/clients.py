"""Construction of boto3 clients, shared by the API, the processor and the local stack."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

# SigV4 everywhere: presigned URLs must sign the checksum headers, which SigV2 cannot.
_S3_CONFIG = Config(
    signature_version="s3v4", retries={"max_attempts": 8, "mode": "adaptive"}, max_pool_connections=32
)
_DEFAULT_CONFIG = Config(retries={"max_attempts": 8, "mode": "adaptive"}, max_pool_connections=32)
# Cost as code: with this variable naming a file, every AWS request a client makes is appended
# to it as one line "<service> <operation>" (a test counts them per upload; docs/performance.md).
REQUEST_LOG_ENV = "UPFLOW_REQUEST_LOG"

_Client = TypeVar("_Client")


def _counted(client: _Client) -> _Client:
    path = os.environ.get(REQUEST_LOG_ENV)
    if path:

        def record(model: Any, **_: Any) -> None:
            # One short O_APPEND write per request: lines from many processes never interleave.
            line = f"{model.service_model.service_name} {model.name}\n".encode()
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)

        client.meta.events.register("before-call", record)  # type: ignore[attr-defined]
    return client


def s3_client(session: boto3.session.Session | None = None) -> S3Client:
    return _counted((session or boto3.session.Session()).client("s3", config=_S3_CONFIG))


def dynamodb_client(session: boto3.session.Session | None = None) -> DynamoDBClient:
    return _counted((session or boto3.session.Session()).client("dynamodb", config=_DEFAULT_CONFIG))


def sqs_client(session: boto3.session.Session | None = None) -> SQSClient:
    return _counted((session or boto3.session.Session()).client("sqs", config=_DEFAULT_CONFIG))

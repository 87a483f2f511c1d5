"""Construction of boto3 clients, shared by the API, the processor and the local stack."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

# SigV4 everywhere: presigned URLs must sign the checksum headers, which SigV2 cannot.
_S3_CONFIG = Config(signature_version="s3v4", retries={"max_attempts": 8, "mode": "adaptive"})
_DEFAULT_CONFIG = Config(retries={"max_attempts": 8, "mode": "adaptive"}, max_pool_connections=32)


def s3_client(session: boto3.session.Session | None = None) -> S3Client:
    return (session or boto3.session.Session()).client("s3", config=_S3_CONFIG)


def dynamodb_client(session: boto3.session.Session | None = None) -> DynamoDBClient:
    return (session or boto3.session.Session()).client("dynamodb", config=_DEFAULT_CONFIG)


def sqs_client(session: boto3.session.Session | None = None) -> SQSClient:
    return (session or boto3.session.Session()).client("sqs", config=_DEFAULT_CONFIG)

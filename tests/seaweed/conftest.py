"""SeaweedFS fixtures: a real S3 that checks signatures, expiry and checksums.

S3 is SeaweedFS (``weed mini`` on free 127.0.0.1 ports, see
``upflow.testing.seaweed``); the status table is the local stack's moto
DynamoDB. The upload service is the real one, with an S3 client built by
``upflow.aws.clients.s3_client`` and pointed at SeaweedFS through
``AWS_ENDPOINT_URL_S3`` (which boto3 honours over ``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from upflow.aws.clients import s3_client
from upflow.aws.dynamo import Table
from upflow.aws.s3 import S3Store
from upflow.definition import Limits, RuntimeConfig
from upflow.local.stack import LocalStack
from upflow.server.uploads import UploadService
from upflow.testing.direct import ServiceApi
from upflow.testing.seaweed import SeaweedS3, running_seaweed

BUCKET = "upflow-seaweed-uploads"


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    with running_seaweed([BUCKET], workdir=tmp_path_factory.mktemp("seaweed")) as server:
        yield server


@pytest.fixture(scope="session")
def seaweed_bucket() -> str:
    return BUCKET


@pytest.fixture(scope="session")
def seaweed_s3(seaweed: SeaweedS3) -> Any:
    """A boto3 S3 client for SeaweedFS built exactly as the API builds its own."""
    session = boto3.session.Session(
        aws_access_key_id=seaweed.access_key,
        aws_secret_access_key=seaweed.secret_key,
        region_name=seaweed.region,
    )
    patcher = pytest.MonkeyPatch()
    patcher.setenv("AWS_ENDPOINT_URL_S3", seaweed.endpoint)
    try:
        return s3_client(session)
    finally:
        patcher.undo()


@pytest.fixture(scope="session")
def make_api(stack: LocalStack, dynamodb: Any, seaweed_s3: Any) -> Callable[..., ServiceApi]:
    """``ServiceApi`` over the real ``UploadService``; ``url_expiry_seconds`` is adjustable."""

    def build(url_expiry_seconds: int = 900) -> ServiceApi:
        config = RuntimeConfig(
            names=dataclasses.replace(stack.names, bucket=BUCKET),
            limits=Limits(url_expiry_seconds=url_expiry_seconds),
            token_secret=b"seaweed-tests-secret",
        )
        store = S3Store(seaweed_s3, BUCKET)
        return ServiceApi(UploadService(config, store, Table(dynamodb, stack.names.status_table)))

    return build

"""Shared fixtures: one real local stack per test session.

``stack`` starts a moto server and SeaweedFS as S3 (HTTP, 127.0.0.1, free
ports; ``UPFLOW_TEST_S3=moto`` keeps S3 on moto), creates every resource from
``upflow.definition`` with boto3, runs the S3 event source, ``chalice local``
and the queue pump (real SQS messages into the real handlers), and serves the
built web page when ``web/dist`` exists. Nothing is mocked in-process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import Api

from upflow.aws.clients import REQUEST_LOG_ENV
from upflow.local.processes import free_port
from upflow.local.stack import DEFAULT_S3, WEB_DIST, LocalStack, start_stack

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    log_dir = tmp_path_factory.mktemp("stack-logs")
    print(f"local stack logs: {log_dir}")
    local = start_stack(
        moto_port=free_port(),
        api_port=free_port(),
        web_port=free_port(),
        chunk_workers=2,
        stack_name="test",
        # Fast retries, and plan pages of 2 chunks so every multi-chunk upload in the
        # suite is planned through the planner's self-re-enqueued continuation messages.
        extra_env={
            "UPFLOW_RETRY_BACKOFF_SECONDS": "1",
            "UPFLOW_PLAN_PAGE_CHUNKS": "2",
            # The stack's scheduled reconciler runs, but not within a test's time: tests that
            # need it call it (tests/integration/test_reconciler.py); it must not drain a DLQ
            # another test is reading.
            "UPFLOW_RECONCILE_EVERY_SECONDS": "86400",
            # Small shards, so every upload of a few hundred documents is reduced by several.
            "UPFLOW_DOCUMENTS_PER_SHARD": "150",
            # Every AWS request of every process, one line each (tests/integration/test_request_counts.py).
            REQUEST_LOG_ENV: str(tmp_path_factory.mktemp("aws-requests") / "requests.log"),
        },
        log_dir=log_dir,
        serve_page=(WEB_DIST / "index.html").exists(),
        s3=os.environ.get("UPFLOW_TEST_S3", DEFAULT_S3),  # type: ignore[arg-type]
        s3_dir=tmp_path_factory.mktemp("stack-s3"),
    )
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="session")
def request_log(stack: LocalStack) -> Path:
    return Path(stack.env[REQUEST_LOG_ENV])


@pytest.fixture(scope="session", autouse=False)
def aws_env(stack: LocalStack, monkeypatch_session: pytest.MonkeyPatch) -> dict[str, str]:
    """Point this test process's boto3 at the local AWS (same variables as the stack)."""
    for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3"):
        monkeypatch_session.delenv(name, raising=False)
    for name, value in stack.client_env().items():
        monkeypatch_session.setenv(name, value)
    return stack.env


@pytest.fixture(scope="session")
def monkeypatch_session() -> Iterator[pytest.MonkeyPatch]:
    patcher = pytest.MonkeyPatch()
    yield patcher
    patcher.undo()


@pytest.fixture(scope="session")
def api_url(stack: LocalStack) -> str:
    return stack.api_url


@pytest.fixture(scope="session")
def s3(stack: LocalStack) -> Any:
    return stack.boto3_client("s3")


@pytest.fixture(scope="session")
def dynamodb(stack: LocalStack) -> Any:
    return stack.boto3_client("dynamodb")


@pytest.fixture(scope="session")
def sqs(stack: LocalStack) -> Any:
    return stack.boto3_client("sqs")


@pytest.fixture(scope="session")
def api(api_url: str) -> Api:
    return Api(api_url)

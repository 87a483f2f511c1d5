"""Shared fixtures: one real local stack per test session.

``stack`` starts a moto server (HTTP, 127.0.0.1, free port), creates every
resource from ``upflow.definition`` with boto3, runs ``chalice local`` and the
queue pump (real SQS messages into the real handlers), and serves the built
web page when ``web/dist`` exists. Nothing is mocked in-process.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import Api

from upflow.local.processes import LOCAL_CREDENTIALS, free_port
from upflow.local.stack import WEB_DIST, LocalStack, start_stack

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
        extra_env={"UPFLOW_RETRY_BACKOFF_SECONDS": "1", "UPFLOW_PLAN_PAGE_CHUNKS": "2"},
        log_dir=log_dir,
        serve_page=(WEB_DIST / "index.html").exists(),
    )
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="session", autouse=False)
def aws_env(stack: LocalStack, monkeypatch_session: pytest.MonkeyPatch) -> dict[str, str]:
    """Point this test process's boto3 at the local AWS (same variables as the stack)."""
    for name, value in {**LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": stack.endpoint}.items():
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

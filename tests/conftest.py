"""Shared fixtures: one real local stack per test session.

``stack`` starts a moto server (HTTP, 127.0.0.1, free port), creates every
resource from ``upflow.definition`` with boto3, runs ``chalice local`` and the
queue pump (real SQS messages into the real handlers), and serves the built
web page when ``web/dist`` exists. Nothing is mocked in-process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from upflow.local.processes import LOCAL_CREDENTIALS, free_port
from upflow.local.stack import WEB_DIST, LocalStack, start_stack

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    log_dir = ARTIFACTS / "stack-logs"
    local = start_stack(
        moto_port=free_port(),
        api_port=free_port(),
        web_port=free_port(),
        chunk_workers=2,
        stack_name="test",
        extra_env={"UPFLOW_RETRY_BACKOFF_SECONDS": "1"},
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


class Api:
    """A thin HTTP helper for tests: JSON in, (status, JSON) out."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()

    def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        json_body: Any = None,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        response = self.http.request(
            method, self.base_url + path, json=json_body, data=data, headers=all_headers, timeout=60
        )
        try:
            body = response.json()
        except ValueError:
            body = response.text
        return response.status_code, body

    def upload_bytes(self, payload: bytes, filename: str = "data.csv") -> dict[str, Any]:
        """Initiate, sign, PUT every part with its CRC32, complete. Returns the initiate answer."""
        import base64
        import zlib

        status, created = self.call(
            "POST", "/uploads", json_body={"filename": filename, "size": len(payload)}
        )
        assert status == 201, created
        part_size, count, token = created["part_size"], created["part_count"], created["token"]
        upload_id = created["upload_id"]
        for first in range(1, count + 1, 100):
            numbers = list(range(first, min(count, first + 99) + 1))
            pieces = {n: payload[(n - 1) * part_size : n * part_size] for n in numbers}
            checksums = {
                str(n): base64.b64encode(zlib.crc32(piece).to_bytes(4, "big")).decode()
                for n, piece in pieces.items()
            }
            status, signed = self.call(
                "POST",
                f"/uploads/{upload_id}/parts",
                token,
                {"part_numbers": numbers, "checksums": checksums},
            )
            assert status == 200, signed
            for n in numbers:
                put = self.http.put(
                    signed["urls"][str(n)], data=pieces[n], headers=signed["headers"][str(n)], timeout=120
                )
                assert put.status_code == 200, put.text
        status, done = self.call("POST", f"/uploads/{upload_id}/complete", token, {})
        assert status == 200, done
        return dict(created)

    def wait_final(self, upload_id: str, token: str, timeout: float = 300.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            status, last = self.call("GET", f"/uploads/{upload_id}", token)
            assert status == 200, last
            if last["status"] in ("completed", "completed_with_errors", "failed"):
                return dict(last)
            time.sleep(0.5)
        raise AssertionError(f"upload {upload_id} did not finish: {last}")


@pytest.fixture(scope="session")
def api(api_url: str) -> Api:
    return Api(api_url)


def wait_until(predicate: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(message)

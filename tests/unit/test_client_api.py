"""ApiClient against a scripted transport: request shapes, retries, error bodies."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from upflow.client.api import ApiClient, ApiError, Backoff, HttpResponse, TransportError


class ScriptedTransport:
    def __init__(self, *answers: HttpResponse | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[dict[str, Any]] = []

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: float | None = None,
    ) -> HttpResponse:
        self.requests.append(
            {
                "method": method,
                "url": url,
                "headers": dict(headers or {}),
                "json": json.loads(body) if body else None,
            }
        )
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def download(self, url: str, dest: Path, *, timeout: float | None = None) -> int:
        dest.write_bytes(b"x")
        return 1


def ok(doc: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(status, {"content-type": "application/json"}, json.dumps(doc).encode())


def client(transport: ScriptedTransport, sleeps: list[float] | None = None) -> ApiClient:
    record = sleeps if sleeps is not None else []
    return ApiClient(
        "http://api.test/", transport, backoff=Backoff(base=1.0, cap=4.0, max_attempts=4), sleep=record.append
    )


def test_initiate_posts_filename_and_size() -> None:
    transport = ScriptedTransport(
        ok(
            {
                "upload_id": "u1",
                "key": "uploads/u1/a.csv",
                "part_size": 8388608,
                "part_count": 2,
                "token": "t",
                "expires_at": "2030-01-01T00:00:00Z",
                "checksum_algorithm": "CRC32",
            },
            201,
        )
    )
    initiated = client(transport).initiate("a.csv", 10_000_000)
    assert initiated.upload_id == "u1" and initiated.part_count == 2 and initiated.token == "t"
    sent = transport.requests[0]
    assert (sent["method"], sent["url"]) == ("POST", "http://api.test/uploads")
    assert sent["json"] == {"filename": "a.csv", "size": 10_000_000, "content_type": "text/csv"}
    assert "Authorization" not in sent["headers"]


def test_sign_parts_sends_checksums_and_bearer_token_and_keeps_the_answered_headers() -> None:
    url = "http://s3/b/k?partNumber=2&X-Amz-SignedHeaders=host%3Bx-amz-checksum-crc32"
    transport = ScriptedTransport(
        ok(
            {
                "urls": {"2": url},
                "expires_at": "2030-01-01T00:00:00Z",
                "headers": {
                    "2": {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-sdk-checksum-algorithm": "CRC32"}
                },
            }
        )
    )
    signed = client(transport).sign_parts("u1", "tok", [2], {2: "AAAAAA=="})
    sent = transport.requests[0]
    assert sent["url"] == "http://api.test/uploads/u1/parts"
    assert sent["headers"]["Authorization"] == "Bearer tok"
    assert sent["json"] == {"part_numbers": [2], "checksums": {"2": "AAAAAA=="}}
    assert signed[2].url == url
    assert signed[2].headers == {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-sdk-checksum-algorithm": "CRC32"}
    assert signed[2].expires_at == 1893456000.0


def test_sign_parts_without_answered_headers_derives_them_from_the_url() -> None:
    url = "http://s3/b/k?partNumber=1&X-Amz-SignedHeaders=host%3Bx-amz-checksum-crc32"
    transport = ScriptedTransport(ok({"urls": {"1": url}, "expires_at": "2030-01-01T00:00:00Z"}))
    signed = client(transport).sign_parts("u1", "tok", [1], {1: "AAAAAA=="})
    assert signed[1].headers == {"x-amz-checksum-crc32": "AAAAAA=="}


def test_retries_network_errors_and_5xx_with_backoff_then_succeeds() -> None:
    sleeps: list[float] = []
    transport = ScriptedTransport(
        TransportError("refused"), ok({"error": "x", "message": "m"}, 503), ok({"status": "ok"})
    )
    assert client(transport, sleeps).health() == {"status": "ok"}
    assert len(transport.requests) == 3
    assert len(sleeps) == 2 and 0 <= sleeps[0] < 1.0 and 0 <= sleeps[1] < 2.0


def test_gives_up_after_max_attempts() -> None:
    transport = ScriptedTransport(*[ok({"error": "boom", "message": "m"}, 500)] * 4)
    with pytest.raises(ApiError) as raised:
        client(transport).health()
    assert raised.value.status == 500 and len(transport.requests) == 4


def test_client_errors_are_not_retried_and_carry_the_error_body() -> None:
    transport = ScriptedTransport(
        ok({"error": "missing_parts", "message": "2 parts are missing", "field": "parts"}, 422)
    )
    with pytest.raises(ApiError) as raised:
        client(transport).complete("u1", "tok", {1: '"e"'})
    error = raised.value
    assert (error.status, error.error, error.field) == (422, "missing_parts", "parts")
    assert len(transport.requests) == 1
    assert transport.requests[0]["json"] == {"parts": [{"part_number": 1, "etag": '"e"'}]}


def test_non_json_error_body() -> None:
    transport = ScriptedTransport(HttpResponse(404, {}, b"<html>nope</html>"))
    with pytest.raises(ApiError) as raised:
        client(transport).status("u1", "tok")
    assert raised.value.error == "http_error" and "nope" in raised.value.message


def test_status_document_is_typed_and_kept_whole() -> None:
    doc = {
        "upload_id": "u1",
        "status": "processing",
        "size": 5,
        "part_size": 8,
        "part_count": 1,
        "chunks": {"total": 4, "done": 2, "failed": 1},
        "summary": {"rows_total": 9},
        "error": None,
        "report_key": None,
    }
    status = client(ScriptedTransport(ok(doc))).status("u1", "tok")
    assert (status.chunks_total, status.chunks_done, status.chunks_failed) == (4, 2, 1)
    assert status.summary == {"rows_total": 9} and status.raw == doc


def test_list_parts_abort_retry_and_report_routes() -> None:
    transport = ScriptedTransport(
        ok({"parts": [{"part_number": 1, "size": 8, "etag": '"a"', "checksum_crc32": "AAAAAA=="}]}),
        ok({"upload_id": "u1", "status": "aborted"}),
        ok({"upload_id": "u1", "requeued": 3}),
        ok({"url": "http://s3/r", "expires_at": "2030-01-01T00:00:00Z"}),
    )
    api = client(transport)
    assert api.list_parts("u1", "t")[0].checksum_crc32 == "AAAAAA=="
    assert api.abort("u1", "t")["status"] == "aborted"
    assert api.retry("u1", "t")["requeued"] == 3
    assert api.error_report_url("u1", "t") == "http://s3/r"
    assert [(r["method"], r["url"]) for r in transport.requests] == [
        ("GET", "http://api.test/uploads/u1/parts"),
        ("DELETE", "http://api.test/uploads/u1"),
        ("POST", "http://api.test/uploads/u1/retry"),
        ("GET", "http://api.test/uploads/u1/errors"),
    ]

"""The API against abuse, over HTTP (`chalice local` + the local S3): token expiry and renewal,
ListParts checked against the plan at complete with real multipart uploads, hostile bodies
(never a 500), the upload window at initiate, and chalice local's rate limiter."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from support import Api, crc32_b64

from upflow.core import tokens
from upflow.definition import LOCAL_RATE_LIMIT_ENV, TB, Limits, MiB
from upflow.local.processes import free_port, start_chalice_local
from upflow.local.stack import LocalStack

LIMITS = Limits()
JSON = {"Content-Type": "application/json"}


def new_upload(api: Api, size: int = 20 * MiB, **extra: Any) -> dict[str, Any]:
    status, body = api.call("POST", "/uploads", json_body={"filename": "abuse.csv", "size": size, **extra})
    assert status == 201, body
    return dict(body)


def secret(stack: LocalStack) -> bytes:
    return stack.env["UPFLOW_TOKEN_SECRET"].encode()


# --- tokens ----------------------------------------------------------------------


def test_an_expired_token_is_401_token_expired_and_renewal_continues(api: Api, stack: LocalStack) -> None:
    created = new_upload(api)
    upload_id = created["upload_id"]
    assert created["token_expires_at"].endswith("Z")
    # A genuine token, issued a TTL and a minute ago (the server's clock is this machine's).
    expired = tokens.issue_token(secret(stack), upload_id, time.time() - LIMITS.token_ttl_seconds - 60)
    for method, suffix in (("GET", ""), ("POST", "/parts"), ("GET", "/parts"), ("POST", "/complete")):
        status, body = api.call(method, f"/uploads/{upload_id}{suffix}", expired, {"part_numbers": [1]})
        assert (status, body["error"], body["field"]) == (401, "token_expired", "authorization"), body
        assert f"POST /uploads/{upload_id}/token" in body["message"] and body["renewable"] is True
    status, renewed = api.call("POST", f"/uploads/{upload_id}/token", expired)
    assert status == 200, renewed
    assert renewed["upload_id"] == upload_id and renewed["status"] == "uploading"
    status, doc = api.call("GET", f"/uploads/{upload_id}", renewed["token"])
    assert status == 200 and doc["status"] == "uploading"
    # A still-valid token renews too (a client may refresh ahead of expiry).
    assert api.call("POST", f"/uploads/{upload_id}/token", created["token"])[0] == 200
    api.call("DELETE", f"/uploads/{upload_id}", renewed["token"])


def test_a_token_past_the_grace_cannot_be_renewed(api: Api, stack: LocalStack) -> None:
    created = new_upload(api)
    upload_id = created["upload_id"]
    ancient = time.time() - LIMITS.token_ttl_seconds - LIMITS.token_renewal_grace_seconds - 60
    token = tokens.issue_token(secret(stack), upload_id, ancient)
    for method, suffix in (("GET", ""), ("POST", "/token")):
        status, body = api.call(method, f"/uploads/{upload_id}{suffix}", token)
        assert (status, body["error"], body["renewable"]) == (401, "token_expired", False), body
        assert "start a new upload" in body["message"]
    api.call("DELETE", f"/uploads/{upload_id}", created["token"])


def test_renewal_needs_the_uploads_own_genuine_token(api: Api, stack: LocalStack) -> None:
    mine, other = new_upload(api), new_upload(api)
    path = f"/uploads/{mine['upload_id']}/token"
    old = time.time() - LIMITS.token_ttl_seconds - 60
    forged = tokens.issue_token(b"not-the-stack-secret", mine["upload_id"], old)
    others_expired = tokens.issue_token(secret(stack), other["upload_id"], old)
    for token in (other["token"], others_expired, forged, "garbage"):
        status, body = api.call("POST", path, token)
        assert (status, body["error"], body["field"]) == (403, "forbidden", "authorization"), token
    status, body = api.call("POST", path)
    assert (status, body["error"]) == (401, "unauthorized")
    missing = "0" * 32
    status, body = api.call(
        "POST", f"/uploads/{missing}/token", tokens.issue_token(secret(stack), missing, old)
    )
    assert (status, body["error"]) == (404, "not_found")
    for upload in (mine, other):
        api.call("DELETE", f"/uploads/{upload['upload_id']}", upload["token"])


# --- parts against the plan at complete ----------------------------------------------


def put_part(api: Api, upload: dict[str, Any], number: int, data: bytes) -> dict[str, Any]:
    status, signed = api.call(
        "POST",
        f"/uploads/{upload['upload_id']}/parts",
        upload["token"],
        {"part_numbers": [number], "checksums": {str(number): crc32_b64(data)}},
    )
    assert status == 200, signed
    put = requests.put(
        signed["urls"][str(number)], data=data, headers=signed["headers"][str(number)], timeout=60
    )
    assert put.status_code == 200, put.text
    return {"part_number": number, "etag": put.headers["ETag"], "checksum_crc32": crc32_b64(data)}


def object_exists(s3: Any, stack: LocalStack, key: str) -> bool:
    return bool(s3.list_objects_v2(Bucket=stack.names.bucket, Prefix=key).get("KeyCount", 0))


@pytest.mark.parametrize(
    ("wrong_part", "wrong_size"),
    [(2, 6 * MiB), (2, 9 * MiB), (3, 4 * MiB + 1), (3, 3 * MiB)],
    ids=["middle-short", "middle-long", "last-long", "last-short"],
)
def test_complete_refuses_a_wrong_size_part_sent_through_a_presigned_url(
    api: Api, s3: Any, stack: LocalStack, wrong_part: int, wrong_size: int
) -> None:
    payload = bytes(range(256)) * (20 * MiB // 256)  # 20 MiB: parts of 8, 8 and 4 MiB
    upload = new_upload(api, size=len(payload))
    assert (upload["part_size"], upload["part_count"]) == (8 * MiB, 3)
    pieces = {n: payload[(n - 1) * 8 * MiB : n * 8 * MiB] for n in (1, 2, 3)}
    parts = {n: put_part(api, upload, n, pieces[n]) for n in (1, 2, 3)}
    parts[wrong_part] = put_part(api, upload, wrong_part, b"x" * wrong_size)  # overwrites it in S3
    path = f"/uploads/{upload['upload_id']}"
    for body in ({}, {"parts": list(parts.values())}):
        status, refused = api.call("POST", f"{path}/complete", upload["token"], body)
        assert (status, refused["error"], refused["field"]) == (422, "wrong_part_size", "parts"), refused
        assert f"part {wrong_part} has {wrong_size} bytes" in refused["message"]
    assert not object_exists(s3, stack, upload["key"])  # nothing was completed
    assert api.call("GET", path, upload["token"])[1]["status"] == "uploading"
    # The MPU stays open: the right bytes again, and it completes.
    parts[wrong_part] = put_part(api, upload, wrong_part, pieces[wrong_part])
    status, done = api.call("POST", f"{path}/complete", upload["token"], {"parts": list(parts.values())})
    assert status == 200, done
    assert s3.get_object(Bucket=stack.names.bucket, Key=upload["key"])["Body"].read() == payload


# --- hostile bodies ---------------------------------------------------------------------


def mpus(s3: Any, stack: LocalStack) -> set[str]:
    return {u["UploadId"] for u in s3.list_multipart_uploads(Bucket=stack.names.bucket).get("Uploads", [])}


HOSTILE = [
    ("deep arrays", b"[" * 10_000 + b"]" * 10_000, 400, "too_deep", "body"),
    (
        "deep size",
        b'{"filename": "a.csv", "size": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        400,
        "too_deep",
        "size",
    ),
    ("10 MB", b'{"filename": "' + b"a" * 10 * 2**20 + b'.csv", "size": 10}', 413, "too_large", "body"),
    ("1e999999", b'{"filename": "a.csv", "size": 1e999999}', 400, "invalid_number", "size"),
    ("5000 digits", b'{"filename": "a.csv", "size": ' + b"7" * 5000 + b"}", 400, "invalid_number", "size"),
    ("NaN", b'{"filename": "a.csv", "size": NaN}', 400, "invalid_number", "size"),
    ("not UTF-8", b'{"filename": "\xff\xfe\xfa.csv", "size": 10}', 400, "invalid_json", "body"),
    ("an array", b'[{"filename": "a.csv", "size": 10}]', 400, "invalid_json", "body"),
    ("a number", b"12", 400, "invalid_json", "body"),
    ("a string", b'"{}"', 400, "invalid_json", "body"),
]


@pytest.mark.parametrize(
    ("raw", "status", "error", "field"), [case[1:] for case in HOSTILE], ids=[c[0] for c in HOSTILE]
)
def test_hostile_bodies_get_a_json_400_or_413_never_a_500(
    api: Api, s3: Any, stack: LocalStack, raw: bytes, status: int, error: str, field: str
) -> None:
    before = mpus(s3, stack)
    got, body = api.call("POST", "/uploads", data=raw, headers=JSON)
    assert (got, body["error"], body["field"]) == (status, error, field), body
    assert body["message"]
    assert mpus(s3, stack) == before  # nothing was created
    # The routes behind a token parse the same way (after the token is checked).
    upload = new_upload(api)
    for suffix in ("/parts", "/complete"):
        got, body = api.call(
            "POST", f"/uploads/{upload['upload_id']}{suffix}", upload["token"], data=raw, headers=JSON
        )
        if (suffix, error) == ("/complete", "too_large"):
            assert got == 413  # complete's cap is larger (2 MiB), a 10 MB body is over it too
        assert (got, body["error"], body["field"]) == (status, error, field), (suffix, body)
    api.call("DELETE", f"/uploads/{upload['upload_id']}", upload["token"])


def test_a_body_over_64_kib_is_413_but_complete_takes_every_parts_etag(api: Api) -> None:
    padded = b'{"filename": "a.csv", "size": 10, "pad": "' + b"x" * (64 * 1024) + b'"}'
    status, body = api.call("POST", "/uploads", data=padded, headers=JSON)
    assert (status, body["error"], body["field"]) == (413, "too_large", "body")
    upload = new_upload(api)
    many = {
        "parts": [
            {"part_number": n, "etag": '"d41d8cd98f00b204e9800998ecf8427e"', "checksum_crc32": "AAAAAA=="}
            for n in range(1, 10_001)
        ]
    }
    status, body = api.call("POST", f"/uploads/{upload['upload_id']}/complete", upload["token"], many)
    assert status == 422 and body["error"] == "missing_parts", body  # parsed, then checked against S3
    api.call("DELETE", f"/uploads/{upload['upload_id']}", upload["token"])


def test_preview_refuses_more_than_the_preview_size(api: Api) -> None:
    head = b"documento;valor\n" + b"52998224725;10,00\n" * 10
    csv = {"Content-Type": "text/csv"}
    too_big = head + b"x" * (LIMITS.preview_bytes - len(head) + 1)
    status, body = api.call("POST", "/preview", data=too_big, headers=csv)
    assert (status, body["error"], body["field"]) == (413, "too_large", "body"), body
    status, body = api.call("POST", "/preview", data=b"x" * 10 * 2**20, headers=csv)
    assert (status, body["error"], body["field"]) == (413, "too_large", "body")
    exactly = head + b"52998224725;1,00\n" * ((LIMITS.preview_bytes - len(head)) // 17)
    exactly += b"\n" * (LIMITS.preview_bytes - len(exactly))
    assert len(exactly) == LIMITS.preview_bytes
    status, body = api.call("POST", "/preview", data=exactly, headers=csv)
    assert status == 200, body


# --- the upload window ----------------------------------------------------------------


def test_a_stated_rate_too_slow_for_the_lifecycle_is_refused_and_creates_nothing(
    api: Api, s3: Any, stack: LocalStack
) -> None:
    before = mpus(s3, stack)
    status, body = api.call(
        "POST",
        "/uploads",
        json_body={"filename": "big.csv", "size": 2 * TB, "rate_bytes_per_second": 10_000_000},
    )
    assert (status, body["error"], body["field"]) == (422, "upload_window_too_short", "size"), body
    assert body["window_seconds"] == LIMITS.upload_window_seconds
    assert body["needed_seconds"] == 200_000 and "55.6 h" in body["message"] and "22.0 h" in body["message"]
    assert mpus(s3, stack) == before
    status, body = api.call(
        "POST", "/uploads", json_body={"filename": "big.csv", "size": 2 * TB, "rate_bytes_per_second": "fast"}
    )
    assert (status, body["field"]) == (400, "rate_bytes_per_second")


def test_without_a_rate_a_big_file_gets_a_warning_and_a_small_one_none(api: Api) -> None:
    big = new_upload(api, size=2 * TB)
    assert big["warning"]["code"] == "upload_window_tight"
    assert big["warning"]["needed_rate_bytes_per_second"] == -(-2 * TB // LIMITS.upload_window_seconds)
    fast = new_upload(api, size=2 * TB, rate_bytes_per_second=100_000_000)
    small = new_upload(api, size=20 * MiB)
    assert "warning" not in fast and "warning" not in small
    for upload in (big, fast, small):
        api.call("DELETE", f"/uploads/{upload['upload_id']}", upload["token"])


# --- chalice local's rate limiter ---------------------------------------------------------


@pytest.fixture(scope="module")
def limited_api(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A second `chalice local` on the same stack with UPFLOW_LOCAL_RATE_LIMIT on (2/s, bursts of 3)."""
    log = tmp_path_factory.mktemp("limited-api") / "api.log"
    child, url = start_chalice_local(
        "127.0.0.1", free_port(), {**stack.env, LOCAL_RATE_LIMIT_ENV: "2/3"}, log
    )
    try:
        yield Api(url)
    finally:
        child.stop()


def test_chalice_local_limits_each_client_with_429_and_retry_after(limited_api: Api, api: Api) -> None:
    time.sleep(2)  # the start-up's health checks refilled
    answers = [limited_api.http.get(f"{limited_api.base_url}/health", timeout=10) for _ in range(6)]
    codes = [answer.status_code for answer in answers]
    assert codes[:3] == [200, 200, 200] and 429 in codes[3:], codes
    refused = next(answer for answer in answers if answer.status_code == 429)
    assert refused.json()["error"] == "rate_limited" and refused.json()["message"]
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["Content-Type"] == "application/json"
    # Every route, /preview and initiate included, shares the bucket ...
    status, body = limited_api.call(
        "POST", "/preview", data=b"documento;valor\n", headers={"Content-Type": "text/csv"}
    )
    assert (status, body["error"]) == (429, "rate_limited")
    status, body = limited_api.call("POST", "/uploads", json_body={"filename": "a.csv", "size": 10})
    assert (status, body["error"]) == (429, "rate_limited")
    # ... which refills at the rate; the unlimited stack was never throttled.
    time.sleep(int(refused.headers["Retry-After"]) + 0.5)
    assert limited_api.call("GET", "/health")[0] == 200
    assert all(api.call("GET", "/health")[0] == 200 for _ in range(20))

"""Presigned part URLs from OUR signer against an S3 that enforces them (SeaweedFS).

moto accepts anything; these prove what the URLs really guarantee:

* a good part with its signed CRC32 headers is stored (200);
* the right headers with corrupted bytes: 400 BadDigest (the CRC32 is checked);
* the same URL without the signed headers: 403 (the checksum cannot be dropped);
* another CRC32 value than the signed one (to match tampered bytes): 403;
* a tampered URL (other part number, altered signature): 403;
* an expired URL (signed with a 1 s expiry): 403 "Request has expired";
* an extra unsigned ``x-amz-*`` header: 403, which is why the client sends
  exactly the headers the URL signed;
* the CLI's uploader, end to end with these URLs, stores the file byte for byte.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from upflow.client.api import Backoff, HttpResponse, RequestsTransport, SignedPart
from upflow.client.journal import Journal
from upflow.client.progress import Progress
from upflow.client.uploader import UploadOptions, crc32_b64, upload_file
from upflow.testing.direct import ServiceApi

pytestmark = pytest.mark.seaweed
MiB = 1024 * 1024
PART = os.urandom(8 * MiB)
CRC = crc32_b64(PART)


def sign_part_1(api: ServiceApi, size: int = 20 * MiB, checksum: str = CRC) -> tuple[str, str, SignedPart]:
    initiated = api.initiate("security.csv", size)
    signed = api.sign_parts(initiated.upload_id, initiated.token, [1], {1: checksum})[1]
    return initiated.upload_id, initiated.token, signed


def put(url: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.put(url, data=body, headers=headers, timeout=60)


def error_code(response: requests.Response) -> str:
    text = response.text
    return text.split("<Code>", 1)[1].split("</Code>", 1)[0] if "<Code>" in text else text[:200]


def test_the_signer_signs_both_checksum_headers(make_api: Callable[..., ServiceApi]) -> None:
    _, _, signed = sign_part_1(make_api())
    assert "X-Amz-SignedHeaders=host%3Bx-amz-checksum-crc32%3Bx-amz-sdk-checksum-algorithm" in signed.url
    assert signed.headers == {"x-amz-checksum-crc32": CRC, "x-amz-sdk-checksum-algorithm": "CRC32"}


def test_a_good_part_is_stored(make_api: Callable[..., ServiceApi]) -> None:
    api = make_api()
    upload_id, token, signed = sign_part_1(api)
    response = put(signed.url, PART, dict(signed.headers))
    assert response.status_code == 200, response.text
    (listed,) = api.list_parts(upload_id, token)
    assert (listed.part_number, listed.size) == (1, len(PART))
    assert listed.etag.strip('"') == response.headers["ETag"].strip('"')


def test_corrupted_bytes_with_the_signed_checksum_get_400_bad_digest(
    make_api: Callable[..., ServiceApi],
) -> None:
    api = make_api()
    upload_id, token, signed = sign_part_1(api)
    corrupted = bytearray(PART)
    corrupted[4321] ^= 0x01
    response = put(signed.url, bytes(corrupted), dict(signed.headers))
    assert response.status_code == 400 and error_code(response) == "BadDigest", response.text
    assert api.list_parts(upload_id, token) == []


def test_the_same_url_without_the_checksum_headers_gets_403(make_api: Callable[..., ServiceApi]) -> None:
    api = make_api()
    upload_id, token, signed = sign_part_1(api)
    response = put(signed.url, PART, {})
    assert response.status_code == 403 and error_code(response) == "SignatureDoesNotMatch", response.text
    only_crc = {"x-amz-checksum-crc32": CRC}
    response = put(signed.url, PART, only_crc)
    assert response.status_code == 403, response.text
    assert api.list_parts(upload_id, token) == []


def test_another_checksum_than_the_signed_one_gets_403(make_api: Callable[..., ServiceApi]) -> None:
    """Tampered bytes sent with *their own* CRC32: the signature no longer matches."""
    api = make_api()
    upload_id, token, signed = sign_part_1(api)
    forged = b"x" * len(PART)
    headers = {**signed.headers, "x-amz-checksum-crc32": crc32_b64(forged)}
    response = put(signed.url, forged, headers)
    assert response.status_code == 403 and error_code(response) == "SignatureDoesNotMatch", response.text
    assert api.list_parts(upload_id, token) == []


@pytest.mark.parametrize("tamper", ["part_number", "signature", "expires"])
def test_a_tampered_url_gets_403(make_api: Callable[..., ServiceApi], tamper: str) -> None:
    api = make_api()
    upload_id, token, signed = sign_part_1(api)
    url = signed.url
    if tamper == "part_number":
        assert "partNumber=1&" in url
        url = url.replace("partNumber=1&", "partNumber=2&")
    elif tamper == "signature":
        head, signature = url.rsplit("X-Amz-Signature=", 1)
        url = head + "X-Amz-Signature=" + ("0" if signature[0] != "0" else "1") + signature[1:]
    else:
        assert "X-Amz-Expires=900" in url
        url = url.replace("X-Amz-Expires=900", "X-Amz-Expires=604800")
    response = put(url, PART, dict(signed.headers))
    assert response.status_code == 403, response.text
    assert api.list_parts(upload_id, token) == []


def test_an_expired_url_gets_403(make_api: Callable[..., ServiceApi]) -> None:
    api = make_api(url_expiry_seconds=1)
    upload_id, token, signed = sign_part_1(api)
    time.sleep(2.5)
    response = put(signed.url, PART, dict(signed.headers))
    assert response.status_code == 403 and "expired" in response.text.lower(), response.text
    assert api.list_parts(upload_id, token) == []


def test_an_unsigned_extra_amz_header_gets_403(make_api: Callable[..., ServiceApi]) -> None:
    api = make_api()
    _, _, signed = sign_part_1(api)
    response = put(signed.url, PART, {**signed.headers, "x-amz-meta-extra": "1"})
    assert response.status_code == 403, response.text


# SeaweedFS 4.48's ListParts omits ChecksumCRC32, and it refuses (400 InvalidRequest)
# a CompleteMultipartUpload of a CRC32 upload without per-part checksums, as AWS does.
# ``UploadService.complete`` builds the part list from ListParts only, so completing
# fails on SeaweedFS until it also uses the ``checksum_crc32`` the client sends per part
# in the complete body. Strict: this turns red (XPASS) the day the service does that.


def test_the_cli_uploader_stores_the_file_byte_for_byte(
    make_api: Callable[..., ServiceApi], seaweed_s3: Any, seaweed_bucket: str, tmp_path: Path
) -> None:
    path = tmp_path / "whole.csv"
    data = os.urandom(20 * MiB + 777)
    path.write_bytes(data)
    api = make_api()
    result = upload_file(
        path,
        api,
        RequestsTransport(),
        Journal(tmp_path / "home"),
        "direct:seaweed",
        UploadOptions(concurrency=4, backoff=Backoff(base=0.1, cap=1.0, max_attempts=4)),
        lambda total: Progress(total, io.StringIO(), tty=False),
    )
    assert result.parts_sent == 3
    body = seaweed_s3.get_object(Bucket=seaweed_bucket, Key=result.key)["Body"].read()
    assert body == data


class FirstPutLate:
    """A transport whose first PUT of each URL path waits ``delay`` seconds before going out."""

    def __init__(self, inner: RequestsTransport, delay: float) -> None:
        self.inner = inner
        self.delay = delay
        self.seen: set[str] = set()
        self.statuses: list[tuple[str, int]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> HttpResponse:
        part = url.split("partNumber=", 1)[1].split("&", 1)[0]
        if part not in self.seen:
            self.seen.add(part)
            time.sleep(self.delay)
        response = self.inner.request(method, url, **kwargs)
        self.statuses.append((part, response.status))
        return response

    def download(self, url: str, dest: Path, *, timeout: float | None = None) -> int:
        return self.inner.download(url, dest, timeout=timeout)


def test_the_uploader_re_signs_urls_that_expired_and_retries(
    make_api: Callable[..., ServiceApi], seaweed_s3: Any, seaweed_bucket: str, tmp_path: Path
) -> None:
    """URLs valid for 1 s, first PUTs 2 s late: S3 says 403, the uploader re-signs, every part lands."""
    path = tmp_path / "slow.csv"
    data = os.urandom(16 * MiB + 5)
    path.write_bytes(data)
    transport = FirstPutLate(RequestsTransport(), delay=2.0)
    result = upload_file(
        path,
        make_api(url_expiry_seconds=1),
        transport,
        Journal(tmp_path / "home"),
        "direct:seaweed-expiring",
        UploadOptions(concurrency=3, resign_margin=0.0, backoff=Backoff(base=0.05, cap=0.2, max_attempts=4)),
        lambda total: Progress(total, io.StringIO(), tty=False),
    )
    assert result.parts_sent == 3
    assert sorted(transport.statuses) == [
        ("1", 200),
        ("1", 403),
        ("2", 200),
        ("2", 403),
        ("3", 200),
        ("3", 403),
    ]
    assert seaweed_s3.get_object(Bucket=seaweed_bucket, Key=result.key)["Body"].read() == data

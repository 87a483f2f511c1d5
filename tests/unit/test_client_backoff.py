"""Backoff schedule and the headers a part PUT must send."""

from __future__ import annotations

import pytest

from upflow.client.api import (
    Backoff,
    chunked,
    is_retryable_status,
    parse_timestamp,
    signed_header_names,
    signed_put_headers,
)


def test_backoff_ceiling_doubles_up_to_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=10.0)
    assert [backoff.ceiling(n) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff.ceiling(10_000) == 10.0  # no overflow for absurd attempt numbers


def test_full_jitter_is_uniform_between_zero_and_the_ceiling() -> None:
    backoff = Backoff(base=1.0, cap=100.0)
    assert backoff.delay(3, rng=lambda: 0.0) == 0.0
    assert backoff.delay(3, rng=lambda: 0.5) == 4.0
    assert backoff.delay(3, rng=lambda: 0.999) == pytest.approx(7.992)
    delays = [backoff.delay(4) for _ in range(500)]
    assert all(0.0 <= d < 16.0 for d in delays)
    assert max(delays) > 8.0 and min(delays) < 8.0  # spread, not a fixed schedule


@pytest.mark.parametrize(
    ("status", "retry"),
    [
        (500, True),
        (502, True),
        (503, True),
        (429, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (409, False),
        (422, False),
    ],
)
def test_retryable_statuses(status: int, retry: bool) -> None:
    assert is_retryable_status(status) is retry


URL_BOTH = (
    "http://s3/b/k?uploadId=x&partNumber=1&X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-SignedHeaders=host%3Bx-amz-checksum-crc32%3Bx-amz-sdk-checksum-algorithm&X-Amz-Signature=ab"
)
URL_CRC = "http://s3/b/k?partNumber=1&X-Amz-SignedHeaders=host%3Bx-amz-checksum-crc32&X-Amz-Signature=ab"
URL_NONE = "http://s3/b/k?partNumber=1&X-Amz-SignedHeaders=host&X-Amz-Signature=ab"


def test_signed_header_names_are_read_from_the_url() -> None:
    assert signed_header_names(URL_BOTH) == {"host", "x-amz-checksum-crc32", "x-amz-sdk-checksum-algorithm"}
    assert signed_header_names("http://s3/b/k") == frozenset()


def test_put_headers_are_exactly_the_signed_ones() -> None:
    assert signed_put_headers(URL_BOTH, "AAAAAA==", None) == {
        "x-amz-checksum-crc32": "AAAAAA==",
        "x-amz-sdk-checksum-algorithm": "CRC32",
    }
    # An unsigned x-amz-* header makes S3 (and SeaweedFS) refuse the request: never add one.
    assert signed_put_headers(URL_CRC, "AAAAAA==", None) == {"x-amz-checksum-crc32": "AAAAAA=="}
    assert signed_put_headers(URL_NONE, "AAAAAA==", None) == {}
    with pytest.raises(ValueError):
        signed_put_headers(URL_CRC, None, None)


def test_headers_answered_by_the_api_win() -> None:
    given = {"x-amz-checksum-crc32": "BBBBBB==", "x-amz-sdk-checksum-algorithm": "CRC32"}
    assert signed_put_headers(URL_NONE, "AAAAAA==", given) == given


def test_parse_timestamp() -> None:
    assert parse_timestamp("1970-01-01T00:01:40Z") == 100.0
    assert parse_timestamp("1970-01-01T00:01:40+00:00") == 100.0
    assert parse_timestamp("1970-01-01T00:01:40") == 100.0


def test_chunked_batches() -> None:
    assert list(chunked(list(range(1, 251)), 100)) == [
        list(range(1, 101)),
        list(range(101, 201)),
        list(range(201, 251)),
    ]

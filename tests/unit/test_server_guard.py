"""The request guards: bounded JSON bodies (every refusal a 400/413 naming a field) and the token bucket."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upflow.definition import (
    LOCAL_RATE_LIMIT_ENV,
    Limits,
    RateLimit,
    local_rate_limit_from_env,
    runtime_config_from_env,
)
from upflow.server.guard import RateLimiter, parse_json_object, retry_after
from upflow.server.uploads import HttpError

LIMITS = Limits()


def parse(raw: bytes | str, max_bytes: int = LIMITS.max_json_body_bytes) -> dict[str, Any]:
    return parse_json_object(
        raw,
        max_bytes=max_bytes,
        max_depth=LIMITS.max_json_depth,
        max_number_chars=LIMITS.max_json_number_chars,
    )


def refusal(raw: bytes | str, max_bytes: int = LIMITS.max_json_body_bytes) -> tuple[int, str, str | None]:
    with pytest.raises(HttpError) as caught:
        parse(raw, max_bytes)
    error = caught.value
    assert error.message
    return error.status, error.error, error.field


def test_an_ordinary_body_parses() -> None:
    body = {"filename": "a.csv", "size": 2 * 10**12, "sign": {"part_numbers": [1, 2]}, "rate": 1.5e7}
    assert parse(json.dumps(body)) == body
    assert parse(json.dumps(body).encode()) == body


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"[" * 10_000 + b"]" * 10_000, (400, "too_deep", "body")),
        (b'{"size": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", (400, "too_deep", "size")),
        (b'{"a": 1, "sign": {"x": ' + b"[" * 50 + b"]" * 50 + b"}}", (400, "too_deep", "sign")),
        (b'{"filename": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "size": 1}', None),  # brackets in a string
        (b'{"size": 1e999999}', (400, "invalid_number", "size")),
        (b'{"size": -1e999999}', (400, "invalid_number", "size")),
        (b'{"size": ' + b"9" * 5000 + b"}", (400, "invalid_number", "size")),
        (b'{"sign": {"part_size": ' + b"1" * 40 + b"}}", (400, "invalid_number", "sign.part_size")),
        (b'{"part_numbers": [1, 2, ' + b"3" * 100 + b"]}", (400, "invalid_number", "part_numbers")),
        (b'{"size": NaN}', (400, "invalid_number", "size")),
        (b'{"size": Infinity}', (400, "invalid_number", "size")),
        (b'{"filename": "\xff\xfe.csv"}', (400, "invalid_json", "body")),
        ('{"filename": "\udcff.csv"}', (400, "invalid_json", "body")),  # a lone surrogate (API Gateway str)
        (b"\xef\xbb\xbf{}", (400, "invalid_json", "body")),  # a BOM is not JSON
        (b"[1, 2]", (400, "invalid_json", "body")),
        (b'"a string"', (400, "invalid_json", "body")),
        (b"null", (400, "invalid_json", "body")),
        (b"12", (400, "invalid_json", "body")),
        (b"", (400, "invalid_json", "body")),
        (b"   ", (400, "invalid_json", "body")),
        (b"{not json", (400, "invalid_json", "body")),
        (b'{"a": "unterminated', (400, "invalid_json", "body")),
    ],
)
def test_hostile_bodies_are_refused_naming_the_field(raw: bytes | str, expected: Any) -> None:
    if expected is None:
        assert parse(raw)["size"] == 1
    else:
        assert refusal(raw) == expected


def test_a_body_over_the_cap_is_413_naming_body() -> None:
    assert refusal(b" " * (LIMITS.max_json_body_bytes + 1)) == (413, "too_large", "body")
    assert refusal(b"{" + b" " * 10 * 2**20 + b"}") == (413, "too_large", "body")
    # complete's larger cap holds 10,000 parts' ETags and CRC32s, as the CLI sends them
    parts = [
        {"part_number": n, "etag": '"d41d8cd98f00b204e9800998ecf8427e"', "checksum_crc32": "AAAAAA=="}
        for n in range(1, 10_001)
    ]
    raw = json.dumps({"parts": parts}).encode()
    assert LIMITS.max_json_body_bytes < len(raw) < LIMITS.max_complete_body_bytes
    assert len(parse(raw, LIMITS.max_complete_body_bytes)["parts"]) == 10_000


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=300) | st.text(max_size=300).map(lambda text: text.encode("utf-8", "surrogatepass"))
)
def test_no_bytes_raise_anything_but_an_http_error(raw: bytes) -> None:
    try:
        body = parse(raw)
    except HttpError as error:
        assert error.status in (400, 413) and error.field
    else:
        assert isinstance(body, dict)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=5), JSON_VALUES, max_size=4))
def test_any_json_object_parses_or_is_refused_with_a_field(body: dict[str, Any]) -> None:
    try:
        parsed = parse(json.dumps(body))
    except HttpError as error:
        assert (error.status, error.error) in ((400, "invalid_number"), (400, "too_deep"))
        assert error.field
    else:
        assert parsed.keys() == body.keys()


def test_the_token_bucket_allows_a_burst_then_the_rate() -> None:
    now = [100.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.acquire("a")
    assert wait == pytest.approx(0.5) and retry_after(wait) == "1"
    assert limiter.acquire("b") == 0.0  # per client
    now[0] += 0.5
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0
    now[0] += 60
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]  # refilled, never beyond the burst
    assert limiter.acquire("a") > 0


def test_the_token_bucket_keeps_a_bounded_number_of_clients() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, clock=lambda: 0.0, max_clients=3)
    for client in "abcd":
        assert limiter.acquire(client) == 0.0
    assert limiter.acquire("d") > 0  # still known
    assert limiter.acquire("a") == 0.0  # forgotten: a fresh (full) bucket
    with pytest.raises(ValueError):
        RateLimiter(rate=0, burst=1)


def test_the_limits_come_from_the_environment() -> None:
    env = {
        "UPFLOW_TOKEN_SECRET": "s",
        "UPFLOW_TOKEN_TTL_SECONDS": "3600",
        "UPFLOW_LIFECYCLE_DAYS": "3",
        "UPFLOW_REPORT_RETENTION_DAYS": "7",
        "UPFLOW_API_RATE_LIMIT": "5",
        "UPFLOW_API_BURST_LIMIT": "9",
        LOCAL_RATE_LIMIT_ENV: "on",
    }
    config = runtime_config_from_env(env)
    assert (config.limits.token_ttl_seconds, config.limits.lifecycle_days) == (3600, 3)
    assert config.limits.report_retention_days == 7
    assert config.local_rate_limit == RateLimit(5.0, 9)  # "on": the stack's API limits
    assert runtime_config_from_env({**env, LOCAL_RATE_LIMIT_ENV: "2.5/4"}).local_rate_limit == RateLimit(
        2.5, 4
    )
    for off in ("", "0", "off"):
        assert runtime_config_from_env({**env, LOCAL_RATE_LIMIT_ENV: off}).local_rate_limit is None
    assert runtime_config_from_env({"UPFLOW_TOKEN_SECRET": "s"}).local_rate_limit is None  # off by default
    for bad in ("fast", "0/3", "2/0", "-1"):
        with pytest.raises(ValueError, match=LOCAL_RATE_LIMIT_ENV):
            local_rate_limit_from_env({LOCAL_RATE_LIMIT_ENV: bad}, LIMITS)

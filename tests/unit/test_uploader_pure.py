"""The uploader's pure decisions: checksums, which parts to send, retry classes, throttle."""

from __future__ import annotations

import base64
import zlib

import pytest

from upflow.client.api import ListedPart, SignedPart
from upflow.client.uploader import (
    FATAL,
    RESIGN,
    RETRY,
    Throttle,
    UploadFailed,
    classify_put_failure,
    crc32_b64,
    known_etags,
    needs_signing,
    parts_to_send,
    plan_from,
    throttle_from_env,
)
from upflow.core.partsize import PartPlan

PLAN = PartPlan(part_size=10, part_count=4, object_size=35)  # parts of 10, 10, 10, 5 bytes


def test_crc32_is_base64_of_big_endian_value() -> None:
    # CRC32("hello world") = 0x0D4A1185
    assert crc32_b64(b"hello world") == base64.b64encode(bytes.fromhex("0d4a1185")).decode() == "DUoRhQ=="
    assert crc32_b64(b"") == "AAAAAA=="
    data = bytes(range(256)) * 100
    assert base64.b64decode(crc32_b64(data)) == zlib.crc32(data).to_bytes(4, "big")


def test_parts_to_send_is_everything_when_s3_has_nothing() -> None:
    assert parts_to_send(PLAN, []) == [1, 2, 3, 4]


def test_parts_to_send_skips_parts_s3_has_with_the_right_size() -> None:
    listed = [ListedPart(1, 10, '"a"'), ListedPart(3, 10, '"c"'), ListedPart(4, 5, '"d"')]
    assert parts_to_send(PLAN, listed) == [2]
    assert known_etags(PLAN, listed) == {1: '"a"', 3: '"c"', 4: '"d"'}


def test_parts_of_the_wrong_size_are_sent_again_and_not_trusted() -> None:
    listed = [ListedPart(1, 9, '"short"'), ListedPart(4, 10, '"long"'), ListedPart(2, 10, '"ok"')]
    assert parts_to_send(PLAN, listed) == [1, 3, 4]
    assert known_etags(PLAN, listed) == {2: '"ok"'}


def test_parts_beyond_the_plan_are_ignored() -> None:
    listed = [ListedPart(n, 10, f'"{n}"') for n in (1, 2, 3)] + [
        ListedPart(4, 5, '"4"'),
        ListedPart(9, 10, '"x"'),
    ]
    assert parts_to_send(PLAN, listed) == []
    assert set(known_etags(PLAN, listed)) == {1, 2, 3, 4}


@pytest.mark.parametrize(
    ("status", "body", "action"),
    [
        (403, b"<Code>AccessDenied</Code><Message>Request has expired</Message>", RESIGN),
        (403, b"<Code>SignatureDoesNotMatch</Code>", RESIGN),
        (500, b"", RETRY),
        (503, b"<Code>SlowDown</Code>", RETRY),
        (429, b"", RETRY),
        (408, b"", RETRY),
        (400, b"<Code>BadDigest</Code>", RETRY),
        (400, b"<Code>RequestTimeout</Code>", RETRY),
        (400, b"<Code>InvalidArgument</Code>", FATAL),
        (404, b"<Code>NoSuchUpload</Code>", FATAL),
    ],
)
def test_classify_put_failure(status: int, body: bytes, action: str) -> None:
    assert classify_put_failure(status, body) == action


def test_needs_signing_before_first_use_and_near_expiry() -> None:
    signed = SignedPart(1, "u", {}, expires_at=1000.0)
    assert needs_signing(None, 0.0, 60.0)
    assert not needs_signing(signed, 900.0, 60.0)
    assert needs_signing(signed, 940.0, 60.0)
    assert needs_signing(signed, 1001.0, 60.0)


def test_plan_from_accepts_the_servers_plan_and_refuses_one_that_does_not_cover_the_file() -> None:
    assert plan_from(35, 10, 4) == PLAN
    with pytest.raises(UploadFailed):
        plan_from(35, 10, 3)
    with pytest.raises(UploadFailed):
        plan_from(35, 0, 4)


def test_throttle_spaces_sends_at_the_configured_rate() -> None:
    now = [100.0]
    throttle = Throttle(bps=1000, clock=lambda: now[0])
    assert throttle.reserve(500) == 0.0  # first send goes at once, holds the line until 100.5
    assert throttle.reserve(1000) == pytest.approx(0.5)  # then waits for the first, holds until 101.5
    now[0] = 101.0
    assert throttle.reserve(100) == pytest.approx(0.5)
    now[0] = 200.0  # idle time is not banked
    assert throttle.reserve(100) == 0.0


def test_no_throttle_by_default() -> None:
    assert Throttle(0).reserve(10**9) == 0.0
    assert throttle_from_env({}) == 0
    assert throttle_from_env({"UPFLOW_THROTTLE_BPS": "2097152"}) == 2 * 1024 * 1024

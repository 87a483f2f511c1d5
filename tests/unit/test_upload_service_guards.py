"""UploadService in-process with an injected clock: token expiry and renewal, the upload
window at initiate, and ListParts checked against the plan at complete (fake S3 and table)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from upflow.aws.s3 import UploadedPart
from upflow.core import tokens
from upflow.core.partsize import PartPlan
from upflow.definition import TB, Limits, MiB, RuntimeConfig, names_for
from upflow.server.uploads import HttpError, UploadService, check_parts_against_plan, upload_key

SECRET = b"unit-secret"
START = 1_700_000_000.0
LIMITS = Limits()
DAY = 86_400


class FakeStore:
    def __init__(self) -> None:
        self.created: list[str] = []
        self.completed: list[str] = []
        self.parts: list[UploadedPart] = []

    def create_multipart_upload(self, key: str, content_type: str, checksum: bool = True) -> str:
        self.created.append(key)
        return f"mpu-{len(self.created)}"

    def list_parts(self, key: str, mpu_id: str) -> list[UploadedPart]:
        return list(self.parts)

    def complete_multipart_upload(self, key: str, mpu_id: str, parts: list[UploadedPart]) -> str:
        self.completed.append(key)
        return '"final"'


class FakeTable:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def get(self, key: dict[str, str], consistent: bool = True) -> dict[str, Any] | None:
        return self.items.get(key["pk"])

    def put_new(self, item: dict[str, Any], key_attr: str) -> bool:
        self.items[item["pk"]] = dict(item)
        return True

    def update(self, key: dict[str, str], update: Any) -> None:
        self.items[key["pk"]]["status"] = "uploaded"


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world() -> tuple[UploadService, FakeStore, FakeTable, Clock]:
    store, table, clock = FakeStore(), FakeTable(), Clock()
    config = RuntimeConfig(names=names_for("unit"), limits=LIMITS, token_secret=SECRET)
    service = UploadService(config, cast(Any, store), cast(Any, table), clock=clock)
    return service, store, table, clock


def refused(call: Any) -> HttpError:
    with pytest.raises(HttpError) as caught:
        call()
    return caught.value


def test_tokens_expire_after_the_ttl_with_a_401_saying_how_to_continue(world: Any) -> None:
    service, _, _, clock = world
    created = service.initiate({"filename": "a.csv", "size": 10})
    upload_id, token = created["upload_id"], created["token"]
    assert created["token_expires_at"] == "2023-11-21T22:13:20Z"  # START + 7 days
    clock.now = START + LIMITS.token_ttl_seconds - 1
    service.authorize(upload_id, f"Bearer {token}")
    clock.now = START + LIMITS.token_ttl_seconds
    error = refused(lambda: service.authorize(upload_id, f"Bearer {token}"))
    assert (error.status, error.error, error.field) == (401, "token_expired", "authorization")
    assert f"POST /uploads/{upload_id}/token" in error.message
    assert error.body()["renewable"] is True
    # Past the grace (the lifecycle), the message says to start again instead.
    clock.now = START + LIMITS.token_ttl_seconds + LIMITS.lifecycle_days * DAY + 1
    error = refused(lambda: service.authorize(upload_id, f"Bearer {token}"))
    assert (error.status, error.error) == (401, "token_expired")
    assert "start a new upload" in error.message and error.body()["renewable"] is False


def test_an_expired_token_is_renewed_within_the_grace_and_the_new_one_works(world: Any) -> None:
    service, _, _, clock = world
    created = service.initiate({"filename": "a.csv", "size": 10})
    upload_id, old = created["upload_id"], created["token"]
    clock.now = START + LIMITS.token_ttl_seconds + 3600
    renewed = service.renew_token(upload_id, f"Bearer {old}")
    assert renewed["upload_id"] == upload_id and renewed["status"] == "uploading"
    assert renewed["token"] != old
    service.authorize(upload_id, f"Bearer {renewed['token']}")
    # Too old to renew: 401 token_expired, not renewable.
    clock.now = START + LIMITS.token_ttl_seconds + LIMITS.lifecycle_days * DAY + 1
    error = refused(lambda: service.renew_token(upload_id, f"Bearer {old}"))
    assert (error.status, error.error, error.body()["renewable"]) == (401, "token_expired", False)


def test_forged_or_foreign_tokens_stay_403_expired_or_not(world: Any) -> None:
    service, _, _, clock = world
    mine = service.initiate({"filename": "a.csv", "size": 10})
    other = service.initiate({"filename": "b.csv", "size": 10})
    forged = tokens.issue_token(b"not-the-secret", mine["upload_id"], START)
    for now in (START, START + LIMITS.token_ttl_seconds + 10):
        clock.now = now
        for token in (other["token"], forged, "garbage", mine["token"][:-1] + "x"):
            for call in (service.authorize, service.renew_token):
                error = refused(lambda call=call, token=token: call(mine["upload_id"], f"Bearer {token}"))
                assert (error.status, error.error, error.field) == (403, "forbidden", "authorization")
    error = refused(lambda: service.renew_token(mine["upload_id"], None))
    assert (error.status, error.error) == (401, "unauthorized")


def test_renewing_the_token_of_an_unknown_upload_is_404(world: Any) -> None:
    service, *_ = world
    token = tokens.issue_token(SECRET, "f" * 32, START)
    assert refused(lambda: service.renew_token("f" * 32, f"Bearer {token}")).status == 404


def test_a_stated_rate_too_slow_for_the_window_is_refused_before_anything_is_made(world: Any) -> None:
    service, store, table, _ = world
    # 2 TB at 185 Mbit/s takes a whole day: more than the 22 h the 1-day lifecycle leaves.
    rate = 185e6 / 8
    error = refused(
        lambda: service.initiate({"filename": "big.csv", "size": 2 * TB, "rate_bytes_per_second": rate})
    )
    assert (error.status, error.error, error.field) == (422, "upload_window_too_short", "size")
    body = error.body()
    assert body["window_seconds"] == DAY - 2 * 3600
    assert body["needed_seconds"] == pytest.approx(2 * TB / rate, abs=1)
    assert body["needed_rate_bytes_per_second"] == -(-2 * TB // (DAY - 2 * 3600))
    assert "needs 24.0 h" in error.message and "has 22.0 h" in error.message  # the time needed, the window
    assert store.created == [] and table.items == {}
    # Fast enough: created, no warning.
    created = service.initiate({"filename": "big.csv", "size": 2 * TB, "rate_bytes_per_second": 1e9})
    assert "warning" not in created


def test_without_a_rate_a_file_that_would_not_fit_at_the_floor_gets_a_warning(world: Any) -> None:
    service, *_ = world
    window = LIMITS.upload_window_seconds
    fits = LIMITS.assumed_rate_bytes_per_second * window
    assert "warning" not in service.initiate({"filename": "a.csv", "size": fits})
    created = service.initiate({"filename": "a.csv", "size": fits + 1})
    warning = created["warning"]
    assert warning["code"] == "upload_window_tight" and warning["window_seconds"] == window
    assert warning["needed_rate_bytes_per_second"] > LIMITS.assumed_rate_bytes_per_second * 0.99
    assert "Mbit/s" in warning["message"]
    assert 900 * 10**9 < fits < 2 * TB  # by default: ~990 GB fit at 100 Mbit/s in 22 h; 2 TB warns


@pytest.mark.parametrize("rate", [0, -1, True, "fast", [1], float("inf") * 0])
def test_a_rate_that_is_no_rate_is_400_naming_it(world: Any, rate: Any) -> None:
    service, store, *_ = world
    error = refused(
        lambda: service.initiate({"filename": "a.csv", "size": 10, "rate_bytes_per_second": rate})
    )
    assert (error.status, error.field) == (400, "rate_bytes_per_second")
    assert store.created == []


def test_a_longer_lifecycle_widens_the_window() -> None:
    limits = Limits(lifecycle_days=3)
    assert limits.upload_window_seconds == 3 * DAY - 2 * 3600
    assert limits.token_renewal_grace_seconds == 3 * DAY
    assert limits.expiry_days_by_prefix()["reports/"] == 3 + limits.report_retention_days
    with pytest.raises(ValueError):
        Limits(lifecycle_days=0)


PLAN = PartPlan(part_size=8 * MiB, part_count=3, object_size=20 * MiB)


def parts(*sizes: int, numbers: list[int] | None = None) -> dict[int, UploadedPart]:
    numbers = numbers or list(range(1, len(sizes) + 1))
    return {n: UploadedPart(n, size, f'"e{n}"', None) for n, size in zip(numbers, sizes, strict=True)}


@pytest.mark.parametrize(
    ("listed", "error"),
    [
        (parts(8 * MiB, 8 * MiB, 4 * MiB), None),
        (parts(8 * MiB, 8 * MiB), "missing_parts"),
        (parts(8 * MiB, 8 * MiB, 4 * MiB, 1, numbers=[1, 2, 3, 4]), "unexpected_part"),
        (parts(8 * MiB, 8 * MiB - 1, 4 * MiB + 1), "wrong_part_size"),  # total right, a middle part short
        (parts(8 * MiB, 8 * MiB, 4 * MiB + 1), "wrong_part_size"),  # the last longer than the rest
        (parts(8 * MiB, 8 * MiB, 3 * MiB), "wrong_part_size"),  # the last short
        (parts(5 * MiB, 8 * MiB, 7 * MiB), "wrong_part_size"),
    ],
)
def test_listparts_is_checked_against_the_plan(listed: dict[int, UploadedPart], error: str | None) -> None:
    if error is None:
        check_parts_against_plan(PLAN, listed)
        return
    refusal = refused(lambda: check_parts_against_plan(PLAN, listed))
    assert (refusal.status, refusal.error, refusal.field) == (422, error, "parts")


def test_complete_never_completes_a_bad_multipart_upload(world: Any) -> None:
    service, store, table, _ = world
    created = service.initiate({"filename": "a.csv", "size": 20 * MiB})
    store.parts = list(parts(8 * MiB, 8 * MiB, 5 * MiB).values())
    error = refused(lambda: service.complete(created["upload_id"], {}))
    assert (error.status, error.error) == (422, "wrong_part_size")
    assert store.completed == []
    assert table.items[upload_key(created["upload_id"])["pk"]]["status"] == "uploading"
    store.parts = list(parts(8 * MiB, 8 * MiB, 4 * MiB).values())
    assert service.complete(created["upload_id"], {})["status"] == "uploaded"
    assert store.completed == [created["key"]]


def test_unicode_digits_in_checksum_keys_are_a_400_not_a_500(world: Any) -> None:
    service, *_ = world
    created = service.initiate({"filename": "a.csv", "size": 10})
    error = refused(
        lambda: service.sign_parts(
            created["upload_id"], {"part_numbers": [1], "checksums": {"²": "AAAAAA=="}}
        )
    )
    assert (error.status, error.field) == (400, "checksums")


def test_a_part_listed_twice_is_the_one_the_client_names_else_the_misfit() -> None:
    from upflow.server.uploads import one_entry_per_part

    good, bad = UploadedPart(2, 8 * MiB, '"good"', None), UploadedPart(2, 6 * MiB, '"bad"', None)
    first, last = UploadedPart(1, 8 * MiB, '"1"', None), UploadedPart(3, 4 * MiB, '"3"', None)
    for listed in ([first, good, bad, last], [first, bad, good, last]):
        named = one_entry_per_part(listed, PLAN, {"parts": [{"part_number": 2, "etag": "good"}]})
        assert named[2] == good
        check_parts_against_plan(PLAN, named)
        unnamed = one_entry_per_part(listed, PLAN, {})
        assert unnamed[2] == bad  # refused, rather than guessing which upload is the current one
        assert (
            refused(lambda unnamed=unnamed: check_parts_against_plan(PLAN, unnamed)).error
            == "wrong_part_size"
        )
        assert one_entry_per_part(listed, PLAN, {"parts": [{"part_number": 2, "etag": '"bad"'}]})[2] == bad

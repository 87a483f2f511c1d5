"""The CLI's uploader on an expired token (renew, keep it, continue) and its measured rate
(kept in the journal, stated when S3 aborted the last try), against ``FakeCloud``."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from upflow.client.api import ApiClient, ApiError, Backoff, HttpResponse
from upflow.client.journal import Fingerprint, Journal
from upflow.client.progress import Progress
from upflow.client.uploader import SendTimings, TokenKeeper, UploadFailed, UploadOptions, upload_file
from upflow.definition import Limits, MiB
from upflow.testing.fakes import FakeCloud

LIMITS = Limits(min_part_size=5 * MiB)
FAST = UploadOptions(concurrency=1, backoff=Backoff(base=0.0, cap=0.0, max_attempts=3))
API = "http://api.test"


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.csv"
    path.write_bytes(os.urandom(12 * MiB + 123))  # 3 parts: 5 MiB, 5 MiB, 2 MiB + 123
    return path


def quiet(total: int) -> Progress:
    return Progress(total, io.StringIO(), tty=False)


def run(cloud: FakeCloud, path: Path, journal: Journal, log: list[str] | None = None):
    return upload_file(
        path, cloud, cloud, journal, API, FAST, quiet, log=(log if log is not None else []).append
    )


def interrupted(cloud: FakeCloud, path: Path, journal: Journal) -> str:
    """A first run that sends part 1 and 2 and dies on part 3; answers its upload id."""
    cloud.faults[3] = [lambda n: HttpResponse(400, {}, b"<Code>InvalidArgument</Code>")]
    with pytest.raises(UploadFailed):
        run(cloud, path, journal)
    (upload_id,) = cloud.uploads
    return upload_id


def test_a_resume_with_an_expired_token_renews_it_and_continues(data_file: Path, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "home")
    cloud = FakeCloud(limits=LIMITS, clock=time.time)
    upload_id = interrupted(cloud, data_file, journal)
    old = cloud.uploads[upload_id].token
    cloud.expired_tokens.add(old)  # days later: the API answers 401 token_expired
    log: list[str] = []
    result = run(cloud, data_file, journal, log)
    assert result.upload_id == upload_id and result.resumed and result.parts_sent == 1
    assert cloud.renewals == [upload_id]
    new = cloud.uploads[upload_id].token
    assert new != old and result.token == new
    assert journal.token_for(upload_id) == new  # `upflow status ID` finds the new one
    assert any("renewed" in line for line in log)
    assert cloud.uploads[upload_id].completed == data_file.read_bytes()


def test_a_token_expiring_mid_upload_is_renewed_once_and_the_parts_go_on(
    data_file: Path, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "home")
    cloud = FakeCloud(limits=LIMITS, clock=time.time)
    list_parts = cloud.list_parts

    def list_then_expire(upload_id: str, token: str) -> Any:
        answer = list_parts(upload_id, token)
        cloud.expired_tokens.add(token)  # the next call (signing) meets an expired token
        return answer

    cloud.list_parts = list_then_expire  # type: ignore[method-assign]
    result = run(cloud, data_file, journal)
    assert result.parts_sent == 3 and len(cloud.renewals) == 1
    assert result.token == cloud.uploads[result.upload_id].token


def test_a_token_too_old_to_renew_starts_a_new_upload(data_file: Path, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "home")
    cloud = FakeCloud(limits=LIMITS, clock=time.time)
    first = interrupted(cloud, data_file, journal)
    cloud.expired_tokens.add(cloud.uploads[first].token)

    def too_old(upload_id: str, token: str) -> Any:
        raise ApiError(401, "token_expired", "too old to renew; start a new upload", "authorization")

    cloud.renew_token = too_old  # type: ignore[method-assign]
    result = run(cloud, data_file, journal)
    assert result.upload_id != first and not result.resumed and result.parts_sent == 3


def test_other_refusals_are_not_renewed() -> None:
    calls: list[str] = []

    class Api:
        def renew_token(self, upload_id: str, token: str) -> Any:
            calls.append(token)
            raise AssertionError("must not renew")

    keeper = TokenKeeper(Api(), "u1", "t1")  # type: ignore[arg-type]
    for error in (ApiError(403, "forbidden", "no"), ApiError(401, "unauthorized", "no")):

        def refused(token: str, error: ApiError = error) -> None:
            raise error

        with pytest.raises(ApiError):
            keeper.call(refused)
    assert calls == [] and keeper.renewals == 0


def test_runs_keep_their_timings_in_the_journal_and_a_restart_states_the_rate(
    data_file: Path, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "home")
    cloud = FakeCloud(limits=LIMITS, clock=time.time)
    first = interrupted(cloud, data_file, journal)
    entry = journal.lookup(Fingerprint.of(data_file), API)
    assert entry is not None and entry.upload_id == first
    assert entry.bytes_sent == 10 * MiB and entry.seconds_sending > 0  # parts 1 and 2
    # Say those runs took 100 s; then S3's lifecycle aborts the upload.
    journal.record(replace(entry, seconds_sending=100.0))
    cloud.uploads[first].status = "aborted"
    result = run(cloud, data_file, journal)
    assert result.upload_id != first
    assert cloud.initiate_rates == [None, pytest.approx(10 * MiB / 100.0)]


def test_too_little_measured_states_no_rate() -> None:
    fingerprint = Fingerprint("/x.csv", 10, 1)
    entry = journal_entry(fingerprint)
    assert entry.measured_rate is None
    assert replace(entry, bytes_sent=MiB, seconds_sending=100).measured_rate is None  # < 8 MiB
    assert replace(entry, bytes_sent=100 * MiB, seconds_sending=0.5).measured_rate is None  # < 1 s
    assert replace(entry, bytes_sent=100 * MiB, seconds_sending=10).measured_rate == 10 * MiB


def journal_entry(fingerprint: Fingerprint) -> Any:
    from upflow.client.journal import JournalEntry

    return JournalEntry(fingerprint.path, fingerprint.size, fingerprint.mtime_ns, API, "u1", "t", 5, 2, 0.0)


def test_send_timings_flush_every_interval_and_at_the_end(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "home")
    fingerprint = Fingerprint("/x.csv", 10, 1)
    journal.record(journal_entry(fingerprint))
    now = [0.0]
    timings = SendTimings(journal, fingerprint, API, "u1", every=15.0, clock=lambda: now[0])
    timings.start()
    now[0] = 10.0
    timings.sent(5 * MiB)
    assert journal.lookup(fingerprint, API).bytes_sent == 0  # type: ignore[union-attr]
    now[0] = 20.0
    timings.sent(5 * MiB)  # 20 s since the start: flushed
    entry = journal.lookup(fingerprint, API)
    assert entry is not None and (entry.bytes_sent, entry.seconds_sending) == (10 * MiB, 20.0)
    now[0] = 30.0
    timings.sent(MiB)
    timings.flush()
    entry = journal.lookup(fingerprint, API)
    assert entry is not None and (entry.bytes_sent, entry.seconds_sending) == (11 * MiB, 30.0)
    # An old journal file without timings still reads.
    path = next((tmp_path / "home" / "journal").glob("*.json"))
    doc = json.loads(path.read_text())
    del doc["bytes_sent"], doc["seconds_sending"]
    path.write_text(json.dumps(doc))
    assert journal.lookup(fingerprint, API).bytes_sent == 0  # type: ignore[union-attr]


class Scripted:
    def __init__(self, *answers: HttpResponse) -> None:
        self.answers = list(answers)
        self.sent: list[dict[str, Any]] = []

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: float | None = None,
    ) -> HttpResponse:
        self.sent.append({"method": method, "url": url, "headers": dict(headers or {}), "body": body})
        return self.answers.pop(0)

    def download(self, url: str, dest: Path, *, timeout: float | None = None) -> int:
        raise NotImplementedError


def answer(status: int, doc: Any) -> HttpResponse:
    return HttpResponse(status, {"content-type": "application/json"}, json.dumps(doc).encode())


def test_the_client_renews_states_its_rate_and_reads_the_warning() -> None:
    transport = Scripted(
        answer(200, {"upload_id": "u1", "status": "uploading", "token": "new", "token_expires_at": "T"}),
        answer(
            201,
            {
                "upload_id": "u2",
                "key": "uploads/u2/a.csv",
                "part_size": 8 * MiB,
                "part_count": 1,
                "token": "t2",
                "token_expires_at": "T2",
                "expires_at": "E",
                "warning": {"code": "upload_window_tight", "message": "slow"},
            },
        ),
        answer(401, {"error": "token_expired", "message": "renew", "field": "authorization"}),
    )
    client = ApiClient(API, transport, backoff=Backoff(max_attempts=1), sleep=lambda _: None)
    renewed = client.renew_token("u1", "old")
    assert (renewed.token, renewed.token_expires_at) == ("new", "T")
    assert transport.sent[0]["url"] == f"{API}/uploads/u1/token"
    assert transport.sent[0]["headers"]["Authorization"] == "Bearer old"
    initiated = client.initiate("a.csv", 10, rate_bytes_per_second=1234.56789)
    assert json.loads(transport.sent[1]["body"])["rate_bytes_per_second"] == 1234.568
    assert initiated.warning == {"code": "upload_window_tight", "message": "slow"}
    assert initiated.token_expires_at == "T2"
    with pytest.raises(ApiError) as caught:
        client.status("u1", "old")
    assert (caught.value.status, caught.value.error, caught.value.field) == (
        401,
        "token_expired",
        "authorization",
    )

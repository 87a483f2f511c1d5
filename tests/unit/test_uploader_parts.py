"""The part uploader and the resume logic against an in-memory API + S3 (``FakeCloud``)."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest

from upflow.client.api import ApiError, Backoff, HttpResponse
from upflow.client.journal import Fingerprint, Journal
from upflow.client.progress import Progress
from upflow.client.uploader import (
    PartUploader,
    UploadFailed,
    UploadOptions,
    crc32_b64,
    plan_from,
    upload_file,
)
from upflow.definition import Limits, MiB
from upflow.testing.fakes import FakeCloud

LIMITS = Limits(min_part_size=5 * MiB)
FAST = UploadOptions(concurrency=4, backoff=Backoff(base=0.0, cap=0.0, max_attempts=5))
API = "http://api.test"


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.csv"
    path.write_bytes(os.urandom(12 * MiB + 123))  # 3 parts: 5 MiB, 5 MiB, 2 MiB + 123
    return path


def quiet(total: int) -> Progress:
    return Progress(total, io.StringIO(), tty=False)


def run(cloud: FakeCloud, path: Path, journal: Journal, options: UploadOptions = FAST):
    return upload_file(path, cloud, cloud, journal, API, options, quiet)


def test_uploads_every_part_and_completes_byte_for_byte(data_file: Path, tmp_path: Path) -> None:
    cloud = FakeCloud(limits=LIMITS, clock=time.time)
    result = run(cloud, data_file, Journal(tmp_path / "home"))
    upload = cloud.uploads[result.upload_id]
    assert upload.status == "uploaded" and upload.completed == data_file.read_bytes()
    assert (result.part_count, result.parts_sent, result.resumed) == (3, 3, False)
    assert sorted(cloud.puts) == [1, 2, 3]
    assert all(1 <= len(batch) <= 100 for batch in cloud.sign_calls)
    assert sorted(n for batch in cloud.sign_calls for n in batch) == [1, 2, 3]


def test_journal_entry_is_written_before_parts_and_removed_after_completion(
    data_file: Path, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "home")
    cloud = FakeCloud(limits=LIMITS, clock=time.time)
    seen: list[object] = []
    original = cloud.request

    def spying_request(*args, **kwargs):  # records the journal state at the first PUT
        if not seen:
            seen.append(journal.lookup(Fingerprint.of(data_file), API))
        return original(*args, **kwargs)

    cloud.request = spying_request  # type: ignore[method-assign]
    result = run(cloud, data_file, journal)
    entry = seen[0]
    assert entry is not None and entry.upload_id == result.upload_id  # type: ignore[attr-defined]
    assert journal.lookup(Fingerprint.of(data_file), API) is None
    assert journal.token_for(result.upload_id) == cloud.uploads[result.upload_id].token


def test_resume_sends_only_the_parts_s3_lacks(data_file: Path, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "home")
    cloud = FakeCloud(limits=LIMITS, clock=time.time)
    cloud.faults[3] = [lambda n: HttpResponse(400, {}, b"<Code>InvalidArgument</Code>")]  # fatal: run 1 dies
    with pytest.raises(UploadFailed):
        run(cloud, data_file, journal)
    (upload,) = cloud.uploads.values()
    assert 3 not in upload.parts
    first_puts = len(cloud.puts)
    # Pretend part 1 was never stored either: ListParts, not the journal, decides.
    upload.parts.pop(1, None)
    missing = sorted({1, 2, 3} - set(upload.parts))
    assert 1 in missing and 3 in missing
    result = run(cloud, data_file, journal)
    assert result.upload_id == upload.upload_id and result.resumed
    assert sorted(cloud.puts[first_puts:]) == missing
    assert result.parts_sent == len(missing)
    assert upload.completed == data_file.read_bytes()


def test_a_changed_file_starts_a_new_upload(data_file: Path, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "home")
    cloud = FakeCloud(limits=LIMITS, clock=time.time)
    cloud.faults[2] = [lambda n: HttpResponse(400, {}, b"<Code>InvalidArgument</Code>")]
    with pytest.raises(UploadFailed):
        run(cloud, data_file, journal)
    (first,) = cloud.uploads
    stat = data_file.stat()
    os.utime(data_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    result = run(cloud, data_file, journal)
    assert result.upload_id != first and not result.resumed and result.parts_sent == 3


@pytest.mark.parametrize("state", ["aborted", "uploaded", "completed", "unknown"])
def test_a_journal_entry_for_a_finished_or_unknown_upload_starts_fresh(
    data_file: Path, tmp_path: Path, state: str
) -> None:
    journal = Journal(tmp_path / "home")
    cloud = FakeCloud(limits=LIMITS, clock=time.time)
    cloud.faults[1] = [lambda n: HttpResponse(400, {}, b"<Code>InvalidArgument</Code>")]
    with pytest.raises(UploadFailed):
        run(cloud, data_file, journal)
    (first,) = cloud.uploads
    if state == "unknown":
        del cloud.uploads[first]
    else:
        cloud.uploads[first].status = state
    result = run(cloud, data_file, journal)
    assert result.upload_id != first and not result.resumed


def test_transient_failures_are_retried(data_file: Path, tmp_path: Path) -> None:
    cloud = FakeCloud(limits=LIMITS, clock=time.time)
    cloud.faults[1] = ["connection", lambda n: HttpResponse(503, {}, b"<Code>SlowDown</Code>")]
    cloud.faults[2] = [lambda n: HttpResponse(500, {}, b"")]
    result = run(cloud, data_file, Journal(tmp_path / "home"))
    assert cloud.uploads[result.upload_id].completed == data_file.read_bytes()
    assert sorted(cloud.puts) == [1, 1, 1, 2, 2, 3]


def test_a_corrupted_transfer_bad_digest_is_retried(data_file: Path, tmp_path: Path) -> None:
    cloud = FakeCloud(limits=LIMITS, clock=time.time)
    cloud.faults[2] = [lambda n: HttpResponse(400, {}, b"<Error><Code>BadDigest</Code></Error>")]
    result = run(cloud, data_file, Journal(tmp_path / "home"))
    assert cloud.puts.count(2) == 2 and result.parts_sent == 3


def test_gives_up_after_max_attempts(data_file: Path, tmp_path: Path) -> None:
    cloud = FakeCloud(limits=LIMITS, clock=time.time)
    cloud.faults[2] = ["connection"] * 10
    with pytest.raises(UploadFailed, match="part 2 failed 5 times"):
        run(cloud, data_file, Journal(tmp_path / "home"))


def test_a_403_gets_a_fresh_url_before_the_retry(data_file: Path, tmp_path: Path) -> None:
    cloud = FakeCloud(limits=LIMITS, clock=time.time)
    cloud.faults[3] = [lambda n: HttpResponse(403, {}, b"<Code>AccessDenied</Code>Request has expired")]
    result = run(cloud, data_file, Journal(tmp_path / "home"))
    assert cloud.puts.count(3) == 2
    assert sum(batch.count(3) for batch in cloud.sign_calls) == 2
    assert cloud.uploads[result.upload_id].completed == data_file.read_bytes()


def test_expired_urls_are_re_signed_before_use(data_file: Path) -> None:
    """A URL past (or near) expires_at is never used: the worker signs again first."""
    now = [1000.0]
    cloud = FakeCloud(limits=LIMITS, clock=lambda: now[0], url_ttl=10.0)
    initiated = cloud.initiate("big.csv", data_file.stat().st_size)
    plan = plan_from(data_file.stat().st_size, initiated.part_size, initiated.part_count)

    def slow_clock_sleep(seconds: float) -> None:  # every backoff sleep lets 30 s pass
        now[0] += 30.0

    # Part 1's first PUT fails with a 500; by the retry its URL has expired.
    cloud.faults[1] = [lambda n: HttpResponse(500, {}, b"")]
    options = UploadOptions(
        concurrency=1, backoff=Backoff(base=1.0, cap=1.0, max_attempts=3), resign_margin=2.0
    )
    uploader = PartUploader(
        cloud,
        cloud,
        initiated.upload_id,
        initiated.token,
        plan,
        data_file,
        options,
        quiet(plan.object_size),
        sleep=slow_clock_sleep,
        clock=lambda: now[0],
    )
    etags = uploader.run([1, 2, 3])
    assert set(etags) == {1, 2, 3}
    assert cloud.puts.count(1) == 2
    assert sum(batch.count(1) for batch in cloud.sign_calls) == 2  # re-signed, not sent to an expired URL
    assert uploader.stats.resigned == 1


def test_signing_is_batched_at_most_100_per_call(tmp_path: Path) -> None:
    """With many parts in flight the signer coalesces requests, never above the API's 100."""
    cloud = FakeCloud(limits=LIMITS, clock=time.time)
    size = 5 * MiB * 3
    path = tmp_path / "f.csv"
    path.write_bytes(b"x" * size)
    initiated = cloud.initiate("f.csv", size)
    plan = plan_from(size, initiated.part_size, initiated.part_count)
    uploader = PartUploader(
        cloud,
        cloud,
        initiated.upload_id,
        initiated.token,
        plan,
        path,
        UploadOptions(concurrency=3),
        quiet(size),
    )
    uploader.run([1, 2, 3])
    assert sum(len(b) for b in cloud.sign_calls) == 3
    assert all(len(b) <= 100 for b in cloud.sign_calls)


def test_an_api_refusal_while_signing_stops_the_upload(data_file: Path, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "home")
    cloud = FakeCloud(limits=LIMITS, clock=time.time)
    original = cloud.sign_parts

    def aborted(*args, **kwargs):
        raise ApiError(409, "upload_aborted", "the upload was aborted")

    cloud.sign_parts = aborted  # type: ignore[method-assign]
    with pytest.raises(ApiError):
        run(cloud, data_file, journal)
    cloud.sign_parts = original  # type: ignore[method-assign]
    assert cloud.puts == []


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(UploadFailed, match="empty"):
        run(FakeCloud(limits=LIMITS), path, Journal(tmp_path / "home"))


def test_plain_progress_lines_name_each_part(data_file: Path, tmp_path: Path) -> None:
    cloud = FakeCloud(limits=LIMITS, clock=time.time)
    out = io.StringIO()
    upload_file(
        data_file,
        cloud,
        cloud,
        Journal(tmp_path / "home"),
        API,
        FAST,
        lambda total: Progress(total, out, tty=False),
    )
    lines = [line for line in out.getvalue().splitlines() if line.startswith("sent part")]
    assert sorted(line.split()[2] for line in lines) == ["1/3", "2/3", "3/3"]


@pytest.mark.parametrize("s3_lists_checksums", [True, False])
def test_complete_carries_every_parts_crc32_even_for_parts_sent_by_an_earlier_run(
    data_file: Path, tmp_path: Path, s3_lists_checksums: bool
) -> None:
    journal = Journal(tmp_path / "home")
    cloud = FakeCloud(limits=LIMITS, clock=time.time, list_checksums=s3_lists_checksums)
    cloud.faults[3] = [lambda n: HttpResponse(400, {}, b"<Code>InvalidArgument</Code>")]
    with pytest.raises(UploadFailed):
        run(cloud, data_file, journal)
    run(cloud, data_file, journal)
    data = data_file.read_bytes()
    size = 5 * MiB
    expected = {n: crc32_b64(data[(n - 1) * size : n * size]) for n in (1, 2, 3)}
    assert cloud.complete_checksums == expected

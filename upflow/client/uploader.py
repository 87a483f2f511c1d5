"""The resumable, parallel part uploader behind ``upflow upload``.

How one run goes:

1. Fingerprint the file (absolute path, size, mtime_ns). If the journal knows
   an upload for it and the API still says ``uploading``, resume it; if the
   upload is unknown, aborted or already completed, start a new one.
2. Ask the API which parts S3 has (``GET /uploads/{id}/parts``: the truth, not
   the journal) and send only the missing ones (or ones of the wrong size).
3. ``concurrency`` worker threads each read one part into memory (``os.pread``;
   memory ≤ concurrency × part size), compute its CRC32 while doing so, get a
   URL signed *with* that CRC32 (requests are batched, ≤ 100 parts per API call)
   and PUT it with exactly the headers the URL signed.
4. Failures (network errors, 5xx, 429, BadDigest) are retried with exponential
   backoff and full jitter; a 403 (expired/invalid signature) or a URL close to
   ``expires_at`` is re-signed first.
5. Complete the upload and drop the journal entry.

An upload token that expires meanwhile (401 ``token_expired``; a resume days later) is
exchanged for a new one (``POST /uploads/{id}/token``) and the call repeated; the journal
keeps the new token. The journal also keeps how fast the runs sent their parts: a rerun
whose upload S3 has aborted states that rate when it initiates again, so the API can refuse
a file that cannot arrive before the lifecycle aborts it once more.

``UPFLOW_THROTTLE_BPS`` (bytes per second, all workers together) slows the
upload down on purpose; the integration test uses it to SIGKILL the CLI
deterministically mid-upload. Unset or 0 means no throttle.
"""

from __future__ import annotations

import base64
import os
import queue
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from dataclasses import replace as dataclass_replace
from functools import partial
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from upflow.client.api import (
    ApiError,
    Backoff,
    Completed,
    Initiated,
    ListedPart,
    Renewed,
    SignedPart,
    Transport,
    TransportError,
    UploadStatus,
    is_retryable_status,
    is_token_expired,
)
from upflow.client.journal import Fingerprint, Journal, JournalEntry
from upflow.client.progress import Progress
from upflow.core.partsize import PartPlan

MAX_PARTS_PER_SIGN_CALL = 100
THROTTLE_ENV = "UPFLOW_THROTTLE_BPS"


class UploadApi(Protocol):
    """What the uploader needs from the API (``upflow.client.ApiClient`` fits)."""

    def initiate(self, filename: str, size: int, content_type: str | None = "text/csv") -> Initiated: ...

    def status(self, upload_id: str, token: str) -> UploadStatus: ...

    def sign_parts(
        self,
        upload_id: str,
        token: str,
        part_numbers: Sequence[int],
        checksums: Mapping[int, str] | None = None,
    ) -> dict[int, SignedPart]: ...

    def list_parts(self, upload_id: str, token: str) -> list[ListedPart]: ...

    def complete(
        self,
        upload_id: str,
        token: str,
        parts: Mapping[int, str] | None = None,
        checksums: Mapping[int, str] | None = None,
    ) -> Completed: ...


@runtime_checkable
class ResumingApi(Protocol):
    """What an ``UploadApi`` may do besides (``ApiClient`` does): renew an expired token and
    hear the rate the client measured. Without it, an expired token ends the upload."""

    def renew_token(self, upload_id: str, token: str) -> Renewed: ...

    def initiate(
        self,
        filename: str,
        size: int,
        content_type: str | None = "text/csv",
        rate_bytes_per_second: float | None = None,
    ) -> Initiated: ...


class UploadFailed(Exception):
    pass


T = TypeVar("T")


class TokenKeeper:
    """An upload's bearer token, renewed when the API answers 401 ``token_expired``.

    ``call(fn)`` runs ``fn(token)``; on an expired token it renews it (``POST
    /uploads/{id}/token``, authorised by the expired token) and runs ``fn`` once more with
    the new one. Shared by the signer thread and the main thread: however many calls saw
    the token expire, it is renewed once. ``on_renewed`` keeps the new token (the journal).
    """

    def __init__(
        self,
        api: UploadApi,
        upload_id: str,
        token: str,
        on_renewed: Callable[[str], None] = lambda _: None,
    ) -> None:
        self._api = api
        self._upload_id = upload_id
        self._token = token
        self._on_renewed = on_renewed
        self._lock = threading.Lock()
        self.renewals = 0

    @property
    def token(self) -> str:
        with self._lock:
            return self._token

    def renew(self, stale: str) -> str:
        api = self._api
        if not isinstance(api, ResumingApi):
            raise UploadFailed("the upload token expired and this API client cannot renew it")
        with self._lock:
            if self._token == stale:  # nobody renewed it meanwhile
                self._token = api.renew_token(self._upload_id, stale).token
                self.renewals += 1
                self._on_renewed(self._token)
            return self._token

    def call(self, fn: Callable[[str], T]) -> T:
        token = self.token
        try:
            return fn(token)
        except ApiError as error:
            if not is_token_expired(error) or not isinstance(self._api, ResumingApi):
                raise
        return fn(self.renew(token))


# --- pure pieces -------------------------------------------------------------------


def crc32_b64(data: bytes | memoryview) -> str:
    """S3's ``x-amz-checksum-crc32`` value: base64 of the big-endian CRC32."""
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def plan_from(size: int, part_size: int, part_count: int) -> PartPlan:
    """The server's plan, checked against the local size."""
    if part_size <= 0 or part_count != -(-size // part_size):
        raise UploadFailed(f"server plan {part_count} × {part_size} B does not cover {size} B")
    return PartPlan(part_size=part_size, part_count=part_count, object_size=size)


def parts_to_send(plan: PartPlan, listed: Iterable[ListedPart]) -> list[int]:
    """Parts S3 lacks, or holds with the wrong size (those are overwritten), ascending."""
    have = {part.part_number: part.size for part in listed}
    return [n for n in range(1, plan.part_count + 1) if have.get(n) != plan.expected_size(n)]


def known_etags(plan: PartPlan, listed: Iterable[ListedPart]) -> dict[int, str]:
    """ETags of the parts S3 already has with the right size."""
    return {
        part.part_number: part.etag
        for part in listed
        if 1 <= part.part_number <= plan.part_count and part.size == plan.expected_size(part.part_number)
    }


RETRY, RESIGN, FATAL = "retry", "resign", "fatal"


def classify_put_failure(status: int, body: bytes) -> str:
    """What to do after a part PUT answered ``status`` (not 200)."""
    if status == 403:
        # Expired or otherwise refused signature: a fresh URL may fix it.
        return RESIGN
    if is_retryable_status(status) or status == 408:
        return RETRY
    if status == 400 and (
        b"BadDigest" in body or b"RequestTimeout" in body or b"XAmzContentSHA256Mismatch" in body
    ):
        # The bytes were damaged on the way (we hashed the very bytes we sent).
        return RETRY
    return FATAL


def needs_signing(signed: SignedPart | None, now: float, margin: float) -> bool:
    return signed is None or signed.expires_at - now <= margin


def throttle_from_env(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    raw = env.get(THROTTLE_ENV, "").strip()
    return int(raw) if raw else 0


class Throttle:
    """Spaces part starts so all workers together send ≤ ``bps`` bytes per second."""

    def __init__(self, bps: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.bps = bps
        self._clock = clock
        self._lock = threading.Lock()
        self._next = 0.0

    def reserve(self, nbytes: int) -> float:
        """Seconds the caller should wait before sending ``nbytes``."""
        if self.bps <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + nbytes / self.bps
            return start - now


# --- signing ----------------------------------------------------------------------


SignFn = Callable[[list[int], dict[int, str]], dict[int, SignedPart]]


class BatchSigner:
    """Collects sign requests from the workers and signs them ≤ ``max_batch`` per API call."""

    def __init__(self, sign: SignFn, max_batch: int = MAX_PARTS_PER_SIGN_CALL) -> None:
        self._sign = sign
        self._max_batch = max_batch
        self._queue: queue.Queue[tuple[int, str, Future[SignedPart]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="upflow-signer", daemon=True)
        self._thread.start()
        self.calls = 0

    def request(self, part_number: int, checksum: str) -> SignedPart:
        future: Future[SignedPart] = Future()
        self._queue.put((part_number, checksum, future))
        return future.result()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._run(batch)
            if stop:
                return

    def _run(self, batch: list[tuple[int, str, Future[SignedPart]]]) -> None:
        numbers = [number for number, _, _ in batch]
        checksums = {number: checksum for number, checksum, _ in batch}
        self.calls += 1
        try:
            signed = self._sign(numbers, checksums)
        except BaseException as error:
            for _, _, future in batch:
                future.set_exception(error)
            return
        for number, _, future in batch:
            if number in signed:
                future.set_result(signed[number])
            else:
                future.set_exception(UploadFailed(f"the API signed no URL for part {number}"))


# --- the part uploader -------------------------------------------------------------


@dataclass(frozen=True)
class UploadOptions:
    concurrency: int = 8
    backoff: Backoff = field(default_factory=lambda: Backoff(base=0.5, cap=20.0, max_attempts=8))
    # Re-sign a URL that expires within this many seconds before (re)using it.
    resign_margin: float = 60.0
    put_timeout: float = 300.0
    throttle_bps: int = 0


@dataclass
class PartStats:
    sent: list[int] = field(default_factory=list)
    checksums: dict[int, str] = field(default_factory=dict)
    attempts: int = 0
    resigned: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def read_part(fd: int, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of ``fd`` (``os.pread``: safe to call from many threads)."""
    chunks: list[bytes] = []
    offset = start
    while offset < end:
        piece = os.pread(fd, end - offset, offset)
        if not piece:
            raise UploadFailed(f"file is shorter than expected: no bytes at offset {offset}")
        chunks.append(piece)
        offset += len(piece)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class PartUploader:
    def __init__(
        self,
        api: UploadApi,
        transport: Transport,
        upload_id: str,
        token: str,
        plan: PartPlan,
        path: Path,
        options: UploadOptions,
        progress: Progress,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] | None = None,
        keeper: TokenKeeper | None = None,
        on_sent: Callable[[int], None] = lambda _: None,
    ) -> None:
        self._api = api
        self._transport = transport
        self._upload_id = upload_id
        self._keeper = keeper if keeper is not None else TokenKeeper(api, upload_id, token)
        self._on_sent = on_sent
        self._plan = plan
        self._path = path
        self._options = options
        self._progress = progress
        self._sleep = sleep
        self._clock = clock
        self._rng = rng
        self._stop = threading.Event()
        self._throttle = Throttle(options.throttle_bps)
        self.stats = PartStats()

    def _sign(self, numbers: list[int], checksums: dict[int, str]) -> dict[int, SignedPart]:
        upload_id = self._upload_id
        return self._keeper.call(lambda token: self._api.sign_parts(upload_id, token, numbers, checksums))

    def run(self, part_numbers: Sequence[int]) -> dict[int, str]:
        """PUT ``part_numbers``; answer their ETags. Raises on the first part that cannot be sent."""
        if not part_numbers:
            return {}
        signer = BatchSigner(self._sign)
        fd = os.open(self._path, os.O_RDONLY)
        etags: dict[int, str] = {}
        workers = max(1, min(self._options.concurrency, len(part_numbers)))
        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="upflow-part")
        try:
            futures = {executor.submit(self._send_part, fd, signer, n): n for n in part_numbers}
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                self._stop.set()
                for future in futures:
                    future.cancel()
                error = failed[0].exception()
                assert error is not None
                raise error
            for future, number in futures.items():
                etags[number] = future.result()
            return etags
        except BaseException:
            self._stop.set()
            executor.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
            signer.close()
            os.close(fd)

    def _delay(self, attempt: int) -> float:
        if self._rng is None:
            return self._options.backoff.delay(attempt)
        return self._options.backoff.delay(attempt, self._rng)

    def _send_part(self, fd: int, signer: BatchSigner, number: int) -> str:
        if self._stop.is_set():
            raise UploadFailed("upload stopped")
        start, end = self._plan.part_range(number)
        data = read_part(fd, start, end)
        checksum = crc32_b64(data)
        signed: SignedPart | None = None
        attempt = 0
        last_problem = ""
        while True:
            if self._stop.is_set():
                raise UploadFailed("upload stopped")
            # Throttle first, sign second: a URL is never left to age while we wait.
            wait_for = self._throttle.reserve(len(data))
            if wait_for > 0:
                self._sleep(wait_for)
            if needs_signing(signed, self._clock(), self._options.resign_margin):
                if signed is not None:
                    with self.stats.lock:
                        self.stats.resigned += 1
                signed = signer.request(number, checksum)
            assert signed is not None
            with self.stats.lock:
                self.stats.attempts += 1
            try:
                response = self._transport.request(
                    "PUT", signed.url, headers=signed.headers, body=data, timeout=self._options.put_timeout
                )
            except TransportError as error:
                action, last_problem = RETRY, str(error)
            else:
                if response.status == 200:
                    etag = response.headers.get("etag", "")
                    with self.stats.lock:
                        self.stats.sent.append(number)
                        self.stats.checksums[number] = checksum
                    self._progress.advance(len(data), event=f"sent part {number}/{self._plan.part_count}")
                    self._on_sent(len(data))
                    return etag
                action = classify_put_failure(response.status, response.body)
                last_problem = f"HTTP {response.status}: {response.text()[:300]}"
                if action == FATAL:
                    raise UploadFailed(f"part {number}: {last_problem}")
                if action == RESIGN:
                    signed = None
                    with self.stats.lock:
                        self.stats.resigned += 1
            if attempt + 1 >= self._options.backoff.max_attempts:
                raise UploadFailed(f"part {number} failed {attempt + 1} times; last: {last_problem}")
            self._sleep(self._delay(attempt))
            attempt += 1


# --- orchestration -------------------------------------------------------------------


def part_checksums(
    plan: PartPlan, path: Path, listed: Iterable[ListedPart], sent: Mapping[int, str]
) -> dict[int, str]:
    """CRC32 of every part, for ``complete``: what we sent, else what S3 listed, else read from disk.

    S3 lists part checksums of a CRC32 upload; an S3 that does not (SeaweedFS)
    costs a re-read of only the parts a previous run sent.
    """
    checksums = {p.part_number: p.checksum_crc32 for p in listed if p.checksum_crc32}
    checksums.update(sent)
    missing = [n for n in range(1, plan.part_count + 1) if n not in checksums]
    if missing:
        fd = os.open(path, os.O_RDONLY)
        try:
            for number in missing:
                checksums[number] = crc32_b64(read_part(fd, *plan.part_range(number)))
        finally:
            os.close(fd)
    return {n: checksums[n] for n in range(1, plan.part_count + 1)}


@dataclass(frozen=True)
class UploadTarget:
    upload_id: str
    token: str
    plan: PartPlan
    resumed: bool


@dataclass(frozen=True)
class UploadResult:
    upload_id: str
    token: str
    key: str
    size: int
    etag: str
    part_count: int
    parts_sent: int
    bytes_sent: int
    resumed: bool
    elapsed: float


def save_token(journal: Journal, fingerprint: Fingerprint, api_url: str, upload_id: str, token: str) -> None:
    """Keep a renewed token: in the file's resume entry (if it is still this upload's) and by id."""
    entry = journal.lookup(fingerprint, api_url)
    if entry is not None and entry.upload_id == upload_id:
        journal.record(dataclass_replace(entry, token=token))
    else:
        journal.remember_token(upload_id, token, api_url)


class SendTimings:
    """Adds how many bytes the runs sent, and for how long, to the file's journal entry.

    Flushed every ``every`` seconds while parts go out (a killed run loses at most that)
    and when a run ends; ``start`` opens a run, ``sent`` counts a part.
    """

    def __init__(
        self,
        journal: Journal,
        fingerprint: Fingerprint,
        api_url: str,
        upload_id: str,
        *,
        every: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._journal = journal
        self._fingerprint = fingerprint
        self._api_url = api_url
        self._upload_id = upload_id
        self._every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._bytes = 0
        self._since = clock()

    def start(self) -> None:
        with self._lock:
            self._bytes, self._since = 0, self._clock()

    def sent(self, nbytes: int) -> None:
        with self._lock:
            self._bytes += nbytes
            if self._clock() - self._since >= self._every:
                self._flush()

    def flush(self) -> None:
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        now = self._clock()
        nbytes, seconds = self._bytes, now - self._since
        self._bytes, self._since = 0, now
        if nbytes <= 0:
            return
        entry = self._journal.lookup(self._fingerprint, self._api_url)
        if entry is None or entry.upload_id != self._upload_id:
            return
        self._journal.record(
            dataclass_replace(
                entry, bytes_sent=entry.bytes_sent + nbytes, seconds_sending=entry.seconds_sending + seconds
            )
        )


def resolve_target(
    api: UploadApi,
    journal: Journal,
    path: Path,
    fingerprint: Fingerprint,
    api_url: str,
    *,
    content_type: str | None = "text/csv",
    log: Callable[[str], None] = lambda _: None,
) -> UploadTarget:
    """Resume the journal's upload for this exact file, or start a new one.

    An expired token in the journal is renewed first; a token too old to renew, like an
    upload the API no longer knows, starts a new upload. One started again after S3 aborted
    the last (its lifecycle ran out) states the rate the earlier runs measured.
    """
    entry = journal.lookup(fingerprint, api_url)
    rate: float | None = None
    if entry is not None:
        upload_id = entry.upload_id

        def renewed(token: str) -> None:
            log(f"journal: the token of upload {upload_id} had expired; renewed it")
            save_token(journal, fingerprint, api_url, upload_id, token)

        keeper = TokenKeeper(api, upload_id, entry.token, on_renewed=renewed)
        try:
            status = keeper.call(lambda token: api.status(upload_id, token))
        except ApiError as error:
            if error.status not in (401, 403, 404):
                raise
            log(
                f"journal: upload {entry.upload_id} is unknown to the API ({error.error}); starting a new one"
            )
        else:
            if status.status == "uploading":
                log(f"resuming upload {entry.upload_id}")
                plan = plan_from(
                    fingerprint.size,
                    status.part_size or entry.part_size,
                    status.part_count or entry.part_count,
                )
                return UploadTarget(entry.upload_id, keeper.token, plan, resumed=True)
            log(f"journal: upload {entry.upload_id} is {status.status}; starting a new one")
        rate = entry.measured_rate
        journal.forget(fingerprint, api_url)
    if rate is None or not isinstance(api, ResumingApi):
        initiated = api.initiate(path.name, fingerprint.size, content_type)
    else:
        log(f"earlier runs sent {rate / 1e6:.1f} MB/s; telling the API")
        initiated = api.initiate(path.name, fingerprint.size, content_type, rate_bytes_per_second=rate)
    if initiated.warning:
        log(f"warning: {initiated.warning.get('message', initiated.warning)}")
    plan = plan_from(fingerprint.size, initiated.part_size, initiated.part_count)
    journal.record(
        JournalEntry(
            path=fingerprint.path,
            size=fingerprint.size,
            mtime_ns=fingerprint.mtime_ns,
            api=api_url,
            upload_id=initiated.upload_id,
            token=initiated.token,
            part_size=plan.part_size,
            part_count=plan.part_count,
            created_at=time.time(),
        )
    )
    return UploadTarget(initiated.upload_id, initiated.token, plan, resumed=False)


def _complete(
    api: UploadApi, upload_id: str, etags: dict[int, str], checksums: dict[int, str], token: str
) -> Completed:
    return api.complete(upload_id, token, etags, checksums)


def upload_file(
    path: Path,
    api: UploadApi,
    transport: Transport,
    journal: Journal,
    api_url: str,
    options: UploadOptions,
    make_progress: Callable[[int], Progress],
    *,
    on_target: Callable[[UploadTarget], None] = lambda _: None,
    log: Callable[[str], None] = lambda _: None,
    max_rounds: int = 3,
) -> UploadResult:
    """Upload (or resume uploading) ``path``; answer once the API has completed it."""
    started = time.monotonic()
    fingerprint = Fingerprint.of(path)
    if fingerprint.size == 0:
        raise UploadFailed("the file is empty")
    target = resolve_target(api, journal, path, fingerprint, api_url, log=log)
    on_target(target)
    plan = target.plan
    upload_id = target.upload_id

    def renewed(token: str) -> None:
        log(f"the token of upload {upload_id} expired; renewed it")
        save_token(journal, fingerprint, api_url, upload_id, token)

    keeper = TokenKeeper(api, upload_id, target.token, on_renewed=renewed)
    timings = SendTimings(journal, fingerprint, api_url, upload_id)
    progress = make_progress(fingerprint.size)
    parts_sent = 0
    bytes_sent = 0
    for round_number in range(max_rounds):
        listed = keeper.call(lambda token: api.list_parts(upload_id, token))
        missing = parts_to_send(plan, listed)
        etags = known_etags(plan, listed)
        if round_number == 0:
            progress.skip(sum(plan.expected_size(n) for n in etags))
            if target.resumed:
                progress.message(
                    f"{len(etags)}/{plan.part_count} parts already in S3; sending {len(missing)}"
                )
        uploader = PartUploader(
            api,
            transport,
            upload_id,
            keeper.token,
            plan,
            Path(fingerprint.path),
            options,
            progress,
            keeper=keeper,
            on_sent=timings.sent,
        )
        timings.start()
        try:
            etags.update(uploader.run(missing))
        finally:
            timings.flush()
        parts_sent += len(uploader.stats.sent)
        bytes_sent += sum(plan.expected_size(n) for n in uploader.stats.sent)
        if Fingerprint.of(path) != fingerprint:
            raise UploadFailed("the file changed while it was being uploaded; run again to start over")
        checksums = part_checksums(plan, Path(fingerprint.path), listed, uploader.stats.checksums)
        try:
            completed = keeper.call(partial(_complete, api, upload_id, etags, checksums))
        except ApiError as error:
            if error.status == 422 and round_number + 1 < max_rounds:
                progress.message(f"complete refused ({error.error}: {error.message}); checking parts again")
                continue
            raise
        progress.finish()
        journal.forget(fingerprint, api_url)
        return UploadResult(
            upload_id=upload_id,
            token=keeper.token,
            key=completed.key,
            size=fingerprint.size,
            etag=completed.etag,
            part_count=plan.part_count,
            parts_sent=parts_sent,
            bytes_sent=bytes_sent,
            resumed=target.resumed,
            elapsed=time.monotonic() - started,
        )
    raise UploadFailed("the upload could not be completed")

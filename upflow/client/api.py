"""Typed HTTP client of the upflow API (see docs/design.md, "HTTP API").

Only ``requests`` underneath, and even that sits behind a small ``Transport``
protocol so tests hand in a fake instead of patching anything. Every call
retries network errors, 429 and 5xx with exponential backoff and full jitter;
4xx answers become ``ApiError`` carrying the API's ``error``/``message``/``field``.
"""

from __future__ import annotations

import json as jsonlib
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

DEFAULT_API = "http://127.0.0.1:8000"
USER_AGENT = "upflow-cli/0.1"


# --- transport ----------------------------------------------------------------


@dataclass(frozen=True)
class HttpResponse:
    """An HTTP answer; ``headers`` keys are lower-case."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return jsonlib.loads(self.body) if self.body else None

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class TransportError(Exception):
    """The request did not produce an HTTP answer (connection refused/reset, timeout, …)."""


class Transport(Protocol):
    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: float | None = None,
    ) -> HttpResponse: ...

    def download(self, url: str, dest: Path, *, timeout: float | None = None) -> int:
        """Stream ``url`` into ``dest``; answer the number of bytes written."""
        ...


class RequestsTransport:
    """``Transport`` over one ``requests.Session`` with a pool sized for ``max_connections``."""

    def __init__(self, max_connections: int = 16) -> None:
        import requests
        from requests.adapters import HTTPAdapter

        self._requests = requests
        self._session = requests.Session()
        # No urllib3-level retries: the uploader and the client own the retry policy.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(4, max_connections), max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers["User-Agent"] = USER_AGENT

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: float | None = None,
    ) -> HttpResponse:
        try:
            response = self._session.request(
                method, url, headers=dict(headers or {}), data=body, timeout=timeout, allow_redirects=False
            )
            content = response.content
        except self._requests.RequestException as error:
            raise TransportError(f"{method} {_redact(url)}: {error.__class__.__name__}: {error}") from error
        return HttpResponse(
            status=response.status_code,
            headers={name.lower(): value for name, value in response.headers.items()},
            body=content,
        )

    def download(self, url: str, dest: Path, *, timeout: float | None = None) -> int:
        written = 0
        try:
            with self._session.get(url, stream=True, timeout=timeout) as response:
                if response.status_code != 200:
                    raise ApiError(response.status_code, "download_failed", response.text[:500])
                tmp = dest.with_name(dest.name + ".part")
                with open(tmp, "wb") as out:
                    for piece in response.iter_content(chunk_size=1024 * 1024):
                        out.write(piece)
                        written += len(piece)
                tmp.replace(dest)
        except self._requests.RequestException as error:
            raise TransportError(f"GET {_redact(url)}: {error}") from error
        return written

    def close(self) -> None:
        self._session.close()


def _redact(url: str) -> str:
    """A URL without its query string (presigned URLs carry signatures)."""
    return url.split("?", 1)[0]


# --- retry policy ---------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter (AWS architecture blog's "Full Jitter")."""

    base: float = 0.5
    cap: float = 20.0
    max_attempts: int = 8

    def ceiling(self, attempt: int) -> float:
        """Upper bound of the sleep after failed attempt ``attempt`` (0-based)."""
        return min(self.cap, self.base * (2.0 ** min(attempt, 30)))

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Sleep after failed attempt ``attempt``: uniform in ``[0, ceiling(attempt))``."""
        return rng() * self.ceiling(attempt)


def is_retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


# --- answers --------------------------------------------------------------------


class ApiError(Exception):
    """The API answered with an error status (its JSON error body, when it sent one)."""

    def __init__(self, status: int, error: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{status} {error}: {message}")
        self.status = status
        self.error = error
        self.message = message
        self.field = field

    @classmethod
    def from_response(cls, response: HttpResponse) -> ApiError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and "error" in body:
            field_name = body.get("field")
            return cls(
                response.status,
                str(body["error"]),
                str(body.get("message", "")),
                str(field_name) if field_name is not None else None,
            )
        return cls(response.status, "http_error", response.text()[:500])


def parse_timestamp(value: str) -> float:
    """Epoch seconds of an ISO-8601 UTC timestamp such as ``2024-01-02T03:04:05Z``."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


TOKEN_EXPIRED = "token_expired"


def is_token_expired(error: BaseException) -> bool:
    """The API refused an upload's token as expired (401): ``POST /uploads/{id}/token`` renews it."""
    return isinstance(error, ApiError) and error.status == 401 and error.error == TOKEN_EXPIRED


@dataclass(frozen=True)
class Initiated:
    upload_id: str
    key: str
    part_size: int
    part_count: int
    token: str
    expires_at: str
    checksum_algorithm: str | None = "CRC32"
    token_expires_at: str = ""
    # {code, message, …} when the file may not arrive before S3 aborts the upload (docs/design.md).
    warning: dict[str, Any] | None = None


@dataclass(frozen=True)
class Renewed:
    """``POST /uploads/{id}/token``: the upload's new token."""

    upload_id: str
    token: str
    token_expires_at: str


@dataclass(frozen=True)
class SignedPart:
    part_number: int
    url: str
    # Headers the URL signed and the PUT must send, exactly (see ``signed_put_headers``).
    headers: Mapping[str, str]
    expires_at: float


@dataclass(frozen=True)
class ListedPart:
    part_number: int
    size: int
    etag: str
    checksum_crc32: str | None = None


def listed_parts_from_json(doc: Mapping[str, Any]) -> list[ListedPart]:
    """``GET /uploads/{id}/parts`` answer → parts."""
    return [
        ListedPart(
            part_number=int(part["part_number"]),
            size=int(part["size"]),
            etag=str(part["etag"]),
            checksum_crc32=part.get("checksum_crc32"),
        )
        for part in doc["parts"]
    ]


def complete_body(parts: Mapping[int, str] | None, checksums: Mapping[int, str] | None) -> dict[str, Any]:
    """``POST /uploads/{id}/complete`` body: the ETags seen, with each part's CRC32 when known."""
    if parts is None:
        return {}
    entries: list[dict[str, Any]] = []
    for number, etag in sorted(parts.items()):
        entry: dict[str, Any] = {"part_number": number, "etag": etag}
        if checksums and number in checksums:
            entry["checksum_crc32"] = checksums[number]
        entries.append(entry)
    return {"parts": entries}


def initiated_from_json(doc: Mapping[str, Any]) -> Initiated:
    """``POST /uploads`` answer → ``Initiated``."""
    warning = doc.get("warning")
    return Initiated(
        upload_id=str(doc["upload_id"]),
        key=str(doc["key"]),
        part_size=int(doc["part_size"]),
        part_count=int(doc["part_count"]),
        token=str(doc["token"]),
        expires_at=str(doc.get("expires_at", "")),
        checksum_algorithm=doc.get("checksum_algorithm", "CRC32"),
        token_expires_at=str(doc.get("token_expires_at", "")),
        warning=dict(warning) if isinstance(warning, dict) else None,
    )


def completed_from_json(doc: Mapping[str, Any]) -> Completed:
    return Completed(
        upload_id=str(doc["upload_id"]),
        status=str(doc["status"]),
        key=str(doc.get("key", "")),
        size=int(doc.get("size", 0)),
        etag=str(doc.get("etag", "")),
    )


@dataclass(frozen=True)
class Completed:
    upload_id: str
    status: str
    key: str
    size: int
    etag: str


@dataclass(frozen=True)
class UploadStatus:
    """The status document of ``GET /uploads/{id}``; ``raw`` keeps every field."""

    upload_id: str
    status: str
    size: int
    part_size: int
    part_count: int
    chunks_total: int
    chunks_done: int
    chunks_failed: int
    summary: dict[str, Any]
    error: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> UploadStatus:
        chunks = doc.get("chunks") or {}
        summary = doc.get("summary") or {}
        error = doc.get("error")
        return cls(
            upload_id=str(doc["upload_id"]),
            status=str(doc["status"]),
            size=int(doc.get("size", 0)),
            part_size=int(doc.get("part_size", 0)),
            part_count=int(doc.get("part_count", 0)),
            chunks_total=int(chunks.get("total", 0)),
            chunks_done=int(chunks.get("done", 0)),
            chunks_failed=int(chunks.get("failed", 0)),
            summary=dict(summary),
            error=dict(error) if isinstance(error, dict) else None,
            raw=dict(doc),
        )


@dataclass(frozen=True)
class ResultsPage:
    """One page of ``GET /uploads/{id}/results``: totals per document, in document order."""

    upload_id: str
    # {document, type, rows, amount}; amount is exact decimal text ("1234.50")
    documents: list[dict[str, Any]]
    next_cursor: str | None
    documents_total: int
    download_url: str
    download_expires_at: str

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ResultsPage:
        download = doc.get("download") or {}
        cursor = doc.get("next_cursor")
        return cls(
            upload_id=str(doc["upload_id"]),
            documents=[dict(entry) for entry in doc.get("documents") or []],
            next_cursor=str(cursor) if cursor else None,
            documents_total=int(doc.get("documents_total", 0)),
            download_url=str(download.get("url", "")),
            download_expires_at=str(download.get("expires_at", "")),
        )


# The checksum headers a part URL may sign (design.md: the URL signs them when
# the client sends a checksum).
CHECKSUM_HEADER = "x-amz-checksum-crc32"
CHECKSUM_ALGORITHM_HEADER = "x-amz-sdk-checksum-algorithm"


def signed_header_names(url: str) -> frozenset[str]:
    """Lower-case header names in a SigV4 presigned URL's ``X-Amz-SignedHeaders``."""
    from urllib.parse import parse_qs, urlsplit

    query = parse_qs(urlsplit(url).query)
    raw = query.get("X-Amz-SignedHeaders") or query.get("x-amz-signedheaders") or [""]
    return frozenset(name.strip().lower() for name in raw[0].split(";") if name.strip())


def signed_put_headers(url: str, checksum_b64: str | None, given: Mapping[str, str] | None) -> dict[str, str]:
    """The headers a part PUT must carry.

    S3 (and SeaweedFS, verified) refuse a presigned request that carries an
    ``x-amz-*`` header the URL did not sign, and one that leaves out a signed
    header. So send exactly what the URL signed: the API's ``headers`` for the
    part when it answered them, else derive them from ``X-Amz-SignedHeaders``.
    """
    if given:
        return {name: value for name, value in given.items()}
    names = signed_header_names(url)
    headers: dict[str, str] = {}
    if CHECKSUM_HEADER in names:
        if checksum_b64 is None:
            raise ValueError("the URL signs a CRC32 checksum but none was computed")
        headers[CHECKSUM_HEADER] = checksum_b64
    if CHECKSUM_ALGORITHM_HEADER in names:
        headers[CHECKSUM_ALGORITHM_HEADER] = "CRC32"
    return headers


def chunked(numbers: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(numbers), size):
        yield list(numbers[start : start + size])


# --- the client -------------------------------------------------------------------


class ApiClient:
    """One upflow API. Upload-scoped calls take the upload's bearer token."""

    def __init__(
        self,
        base_url: str = DEFAULT_API,
        transport: Transport | None = None,
        *,
        backoff: Backoff = Backoff(base=0.3, cap=10.0, max_attempts=6),
        timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.transport: Transport = transport if transport is not None else RequestsTransport()
        self._backoff = backoff
        self._timeout = timeout
        self._sleep = sleep

    # --- plumbing ---
    def _call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        payload: Any = None,
        raw: bytes | None = None,
        content_type: str | None = None,
        ok: Sequence[int] = (200, 201),
    ) -> Any:
        headers = {"Accept": "application/json"}
        body: bytes | None = None
        if payload is not None:
            body = jsonlib.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        elif raw is not None:
            body = raw
            headers["Content-Type"] = content_type or "application/octet-stream"
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        url = f"{self.base_url}{path}"
        attempt = 0
        while True:
            try:
                response = self.transport.request(
                    method, url, headers=headers, body=body, timeout=self._timeout
                )
            except TransportError:
                if attempt + 1 >= self._backoff.max_attempts:
                    raise
            else:
                if response.status in ok:
                    return response.json()
                if not is_retryable_status(response.status) or attempt + 1 >= self._backoff.max_attempts:
                    raise ApiError.from_response(response)
            self._sleep(self._backoff.delay(attempt))
            attempt += 1

    # --- routes ---
    def health(self) -> dict[str, Any]:
        return dict(self._call("GET", "/health"))

    def initiate(
        self,
        filename: str,
        size: int,
        content_type: str | None = "text/csv",
        rate_bytes_per_second: float | None = None,
    ) -> Initiated:
        """Start an upload. ``rate_bytes_per_second``, when known (measured by an earlier run),
        lets the API refuse (422 ``upload_window_too_short``) a file that cannot arrive in time."""
        payload: dict[str, Any] = {"filename": filename, "size": size}
        if content_type is not None:
            payload["content_type"] = content_type
        if rate_bytes_per_second is not None:
            payload["rate_bytes_per_second"] = round(rate_bytes_per_second, 3)
        doc = self._call("POST", "/uploads", payload=payload)
        return initiated_from_json(doc)

    def renew_token(self, upload_id: str, token: str) -> Renewed:
        """A new token for the upload, given its current one, expired or not (docs/design.md)."""
        doc = self._call("POST", f"/uploads/{upload_id}/token", token=token, payload={})
        return Renewed(str(doc["upload_id"]), str(doc["token"]), str(doc.get("token_expires_at", "")))

    def sign_parts(
        self,
        upload_id: str,
        token: str,
        part_numbers: Sequence[int],
        checksums: Mapping[int, str] | None = None,
    ) -> dict[int, SignedPart]:
        """Presigned URLs for ``part_numbers`` (≤ 100, the API's limit per call)."""
        payload: dict[str, Any] = {"part_numbers": list(part_numbers)}
        if checksums:
            payload["checksums"] = {str(n): value for n, value in checksums.items()}
        doc = self._call("POST", f"/uploads/{upload_id}/parts", token=token, payload=payload)
        expires_at = parse_timestamp(str(doc["expires_at"]))
        all_headers = doc.get("headers") or {}
        signed: dict[int, SignedPart] = {}
        for key, url in doc["urls"].items():
            number = int(key)
            given = all_headers.get(key)
            checksum = (checksums or {}).get(number)
            signed[number] = SignedPart(
                part_number=number,
                url=str(url),
                headers=signed_put_headers(str(url), checksum, given),
                expires_at=expires_at,
            )
        return signed

    def list_parts(self, upload_id: str, token: str) -> list[ListedPart]:
        doc = self._call("GET", f"/uploads/{upload_id}/parts", token=token)
        return listed_parts_from_json(doc)

    def complete(
        self,
        upload_id: str,
        token: str,
        parts: Mapping[int, str] | None = None,
        checksums: Mapping[int, str] | None = None,
    ) -> Completed:
        """Complete; ``parts`` are the ETags the client saw, ``checksums`` their CRC32s.

        ``checksum_crc32`` per part is an addition to the documented contract
        (ignored by an API that does not read it): an S3 whose ListParts omits
        part checksums (SeaweedFS) needs them to complete a CRC32 upload.
        """
        payload = complete_body(parts, checksums)
        doc = self._call("POST", f"/uploads/{upload_id}/complete", token=token, payload=payload)
        return completed_from_json(doc)

    def abort(self, upload_id: str, token: str) -> dict[str, Any]:
        return dict(self._call("DELETE", f"/uploads/{upload_id}", token=token))

    def status(self, upload_id: str, token: str) -> UploadStatus:
        return UploadStatus.from_json(self._call("GET", f"/uploads/{upload_id}", token=token))

    def error_report_url(self, upload_id: str, token: str) -> str:
        return str(self._call("GET", f"/uploads/{upload_id}/errors", token=token)["url"])

    def download_error_report(self, upload_id: str, token: str, dest: Path) -> int:
        return self.transport.download(self.error_report_url(upload_id, token), dest, timeout=self._timeout)

    def results(
        self, upload_id: str, token: str, cursor: str | None = None, limit: int | None = None
    ) -> ResultsPage:
        """One page of the upload's totals per document (409 ``results_not_ready`` before they exist)."""
        from urllib.parse import quote, urlencode

        query = urlencode(
            {name: value for name, value in (("cursor", cursor), ("limit", limit)) if value is not None}
        )
        path = f"/uploads/{quote(upload_id, safe='')}/results" + (f"?{query}" if query else "")
        return ResultsPage.from_json(self._call("GET", path, token=token))

    def iter_results(self, upload_id: str, token: str, limit: int = 1000) -> Iterator[ResultsPage]:
        """Every page of the upload's totals, following ``next_cursor`` to the end."""
        cursor: str | None = None
        while True:
            page = self.results(upload_id, token, cursor, limit)
            yield page
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def download_results(self, upload_id: str, token: str, dest: Path) -> int:
        """Stream the upload's totals CSV (its presigned link) into ``dest``; the bytes written."""
        url = self.results(upload_id, token, limit=1).download_url
        return self.transport.download(url, dest, timeout=self._timeout)

    def retry(self, upload_id: str, token: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/uploads/{upload_id}/retry", token=token, payload={}))

    def preview(self, head: bytes) -> dict[str, Any]:
        return dict(self._call("POST", "/preview", raw=head, content_type="text/csv"))

"""In-memory stand-ins for the upflow API and S3, injected into the uploader in unit tests.

``FakeCloud`` plays both sides the uploader talks to: the API (``UploadApi``:
initiate, status, sign, list, complete) and the S3 part URLs (``Transport``:
``PUT fake-s3://…``). It checks what real S3 checks for presigned part URLs:
expiry, that the signed checksum headers are sent exactly, and the CRC32 of
the body (400 BadDigest). Faults can be scripted per part.
"""

from __future__ import annotations

import base64
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

from upflow.client.api import (
    CHECKSUM_ALGORITHM_HEADER,
    CHECKSUM_HEADER,
    ApiError,
    Completed,
    HttpResponse,
    Initiated,
    ListedPart,
    Renewed,
    SignedPart,
    TransportError,
    UploadStatus,
)
from upflow.core.partsize import plan_parts
from upflow.definition import Limits


def _crc(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


@dataclass
class FakeUpload:
    upload_id: str
    token: str
    size: int
    part_size: int
    part_count: int
    status: str = "uploading"
    parts: dict[int, bytes] = field(default_factory=dict)
    completed: bytes | None = None


# A fault returns a response (or raises TransportError) instead of storing the part.
Fault = Callable[[int], HttpResponse | None]


class FakeCloud:
    def __init__(
        self,
        *,
        limits: Limits | None = None,
        clock: Callable[[], float] | None = None,
        url_ttl: float = 900.0,
        list_checksums: bool = True,
    ) -> None:
        self.limits = limits or Limits()
        self._clock = clock or (lambda: 0.0)
        self.url_ttl = url_ttl
        # False: ListParts omits part checksums, like SeaweedFS.
        self.list_checksums = list_checksums
        self.uploads: dict[str, FakeUpload] = {}
        self.sign_calls: list[list[int]] = []
        self.puts: list[int] = []
        self.faults: dict[int, list[Fault | str]] = {}
        self.complete_checksums: dict[int, str] = {}
        # Rates stated at initiate, in order; tokens the API calls expired (401 token_expired).
        self.initiate_rates: list[float | None] = []
        self.expired_tokens: set[str] = set()
        self.renewals: list[str] = []
        self._lock = threading.Lock()
        self._counter = 0

    # --- API side (UploadApi) ---
    def initiate(
        self,
        filename: str,
        size: int,
        content_type: str | None = "text/csv",
        rate_bytes_per_second: float | None = None,
    ) -> Initiated:
        self.initiate_rates.append(rate_bytes_per_second)
        plan = plan_parts(size, self.limits)
        with self._lock:
            self._counter += 1
            upload_id = f"up{self._counter:04d}"
        upload = FakeUpload(upload_id, f"tok-{upload_id}", size, plan.part_size, plan.part_count)
        self.uploads[upload_id] = upload
        return Initiated(
            upload_id,
            f"uploads/{upload_id}/{filename}",
            plan.part_size,
            plan.part_count,
            upload.token,
            "2099-01-01T00:00:00Z",
        )

    def _get(self, upload_id: str, token: str) -> FakeUpload:
        upload = self.uploads.get(upload_id)
        if upload is None:
            raise ApiError(404, "not_found", f"upload {upload_id} does not exist")
        if token != upload.token:
            raise ApiError(403, "forbidden", "token does not grant access to this upload")
        if token in self.expired_tokens:
            raise ApiError(401, "token_expired", "the upload token expired; renew it", "authorization")
        return upload

    def renew_token(self, upload_id: str, token: str) -> Renewed:
        upload = self.uploads.get(upload_id)
        if upload is None:
            raise ApiError(404, "not_found", f"upload {upload_id} does not exist")
        if token != upload.token:
            raise ApiError(403, "forbidden", "token does not grant access to this upload")
        with self._lock:
            upload.token = f"{token}+renewed"
            self.renewals.append(upload_id)
        return Renewed(upload_id, upload.token, "2099-01-01T00:00:00Z")

    def status(self, upload_id: str, token: str) -> UploadStatus:
        upload = self._get(upload_id, token)
        return UploadStatus.from_json(
            {
                "upload_id": upload_id,
                "status": upload.status,
                "size": upload.size,
                "part_size": upload.part_size,
                "part_count": upload.part_count,
            }
        )

    def sign_parts(
        self,
        upload_id: str,
        token: str,
        part_numbers: Sequence[int],
        checksums: Mapping[int, str] | None = None,
    ) -> dict[int, SignedPart]:
        upload = self._get(upload_id, token)
        if upload.status != "uploading":
            raise ApiError(409, "upload_completed", "not uploading")
        if not 1 <= len(part_numbers) <= self.limits.max_parts_per_sign_call:
            raise ApiError(400, "too_many_parts", "1..100 parts per call")
        if len(set(part_numbers)) != len(part_numbers):
            raise ApiError(400, "invalid_field", "part numbers must not repeat")
        checksums = checksums or {}
        if set(checksums) != set(part_numbers):
            raise ApiError(400, "checksum_required", "checksums missing")
        with self._lock:
            self.sign_calls.append(list(part_numbers))
        expires = self._clock() + self.url_ttl
        signed: dict[int, SignedPart] = {}
        for number in part_numbers:
            url = (
                f"fake-s3://{upload_id}/{number}?expires={expires}&crc={quote(checksums[number], safe='')}"
                f"&X-Amz-SignedHeaders=host%3B{CHECKSUM_HEADER}%3B{CHECKSUM_ALGORITHM_HEADER}"
            )
            headers = {CHECKSUM_HEADER: checksums[number], CHECKSUM_ALGORITHM_HEADER: "CRC32"}
            signed[number] = SignedPart(number, url, headers, expires)
        return signed

    def list_parts(self, upload_id: str, token: str) -> list[ListedPart]:
        upload = self._get(upload_id, token)
        return [
            ListedPart(
                n, len(data), f'"etag-{n}-{zlib.crc32(data)}"', _crc(data) if self.list_checksums else None
            )
            for n, data in sorted(upload.parts.items())
        ]

    def complete(
        self,
        upload_id: str,
        token: str,
        parts: Mapping[int, str] | None = None,
        checksums: Mapping[int, str] | None = None,
    ) -> Completed:
        upload = self._get(upload_id, token)
        if upload.status != "uploading":
            raise ApiError(409, "upload_completed", "already complete")
        missing = [n for n in range(1, upload.part_count + 1) if n not in upload.parts]
        if missing:
            raise ApiError(422, "missing_parts", f"missing {missing[:10]}")
        listed = {p.part_number: p.etag for p in self.list_parts(upload_id, token)}
        for number, etag in (parts or {}).items():
            if etag.strip('"') != listed[number].strip('"'):
                raise ApiError(422, "etag_mismatch", f"part {number}")
        for number, checksum in (checksums or {}).items():
            if checksum != _crc(upload.parts[number]):
                raise ApiError(400, "bad_checksum", f"part {number}'s checksum differs")
        self.complete_checksums = dict(checksums or {})
        upload.completed = b"".join(upload.parts[n] for n in range(1, upload.part_count + 1))
        upload.status = "uploaded"
        return Completed(upload_id, "uploaded", f"uploads/{upload_id}/x.csv", upload.size, '"final"')

    # --- S3 side (Transport) ---
    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: float | None = None,
    ) -> HttpResponse:
        assert method == "PUT" and url.startswith("fake-s3://"), (method, url)
        parsed = urlsplit(url)
        upload_id, number = parsed.netloc, int(parsed.path.strip("/"))
        query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        with self._lock:
            self.puts.append(number)
            queue = self.faults.get(number)
            fault = queue.pop(0) if queue else None
        if fault == "connection":
            raise TransportError("connection reset by fake peer")
        if callable(fault):
            answer = fault(number)
            if answer is not None:
                return answer
        data = body or b""
        headers = {k.lower(): v for k, v in (headers or {}).items()}
        if self._clock() > float(query["expires"]):
            return HttpResponse(
                403, {}, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message>"
            )
        signed = {CHECKSUM_HEADER: query["crc"], CHECKSUM_ALGORITHM_HEADER: "CRC32"}
        sent = {k: v for k, v in headers.items() if k.startswith("x-amz-")}
        if sent != signed:
            return HttpResponse(403, {}, b"<Error><Code>SignatureDoesNotMatch</Code></Error>")
        if _crc(data) != query["crc"]:
            return HttpResponse(400, {}, b"<Error><Code>BadDigest</Code></Error>")
        upload = self.uploads[upload_id]
        upload.parts[number] = data
        return HttpResponse(200, {"etag": f'"etag-{number}-{zlib.crc32(data)}"'}, b"")

    def download(self, url: str, dest: Path, *, timeout: float | None = None) -> int:
        raise NotImplementedError

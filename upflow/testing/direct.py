"""``UploadApi`` served in-process by ``upflow.server.uploads.UploadService`` (no HTTP, no Chalice).

The SeaweedFS tests and the upload benchmark use it to drive the real
uploader with URLs presigned by the real signer (``UploadService`` →
``S3Store.presign_part``) without running ``chalice local``. Answers are
translated exactly as ``ApiClient`` translates the HTTP ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from upflow.client.api import (
    ApiError,
    Completed,
    Initiated,
    ListedPart,
    Renewed,
    SignedPart,
    UploadStatus,
    complete_body,
    completed_from_json,
    initiated_from_json,
    listed_parts_from_json,
    parse_timestamp,
    signed_put_headers,
)
from upflow.server.uploads import HttpError, UploadService


class ServiceApi:
    def __init__(self, service: UploadService) -> None:
        self.service = service

    def _auth(self, upload_id: str, token: str) -> None:
        self._guard(lambda: self.service.authorize(upload_id, f"Bearer {token}"))

    @staticmethod
    def _guard(call: Any) -> Any:
        try:
            return call()
        except HttpError as error:
            raise ApiError(error.status, error.error, error.message, error.field) from error

    def initiate(
        self,
        filename: str,
        size: int,
        content_type: str | None = "text/csv",
        rate_bytes_per_second: float | None = None,
    ) -> Initiated:
        body: dict[str, Any] = {"filename": filename, "size": size}
        if content_type is not None:
            body["content_type"] = content_type
        if rate_bytes_per_second is not None:
            body["rate_bytes_per_second"] = rate_bytes_per_second
        return initiated_from_json(self._guard(lambda: self.service.initiate(body)))

    def renew_token(self, upload_id: str, token: str) -> Renewed:
        doc = self._guard(lambda: self.service.renew_token(upload_id, f"Bearer {token}"))
        return Renewed(doc["upload_id"], doc["token"], doc["token_expires_at"])

    def status(self, upload_id: str, token: str) -> UploadStatus:
        self._auth(upload_id, token)
        return UploadStatus.from_json(self._guard(lambda: self.service.status(upload_id)))

    def sign_parts(
        self,
        upload_id: str,
        token: str,
        part_numbers: Sequence[int],
        checksums: Mapping[int, str] | None = None,
    ) -> dict[int, SignedPart]:
        self._auth(upload_id, token)
        body: dict[str, Any] = {"part_numbers": list(part_numbers)}
        if checksums:
            body["checksums"] = {str(n): v for n, v in checksums.items()}
        doc = self._guard(lambda: self.service.sign_parts(upload_id, body))
        expires_at = parse_timestamp(doc["expires_at"])
        headers = doc.get("headers") or {}
        return {
            int(key): SignedPart(
                part_number=int(key),
                url=url,
                headers=signed_put_headers(url, (checksums or {}).get(int(key)), headers.get(key)),
                expires_at=expires_at,
            )
            for key, url in doc["urls"].items()
        }

    def list_parts(self, upload_id: str, token: str) -> list[ListedPart]:
        self._auth(upload_id, token)
        doc = self._guard(lambda: self.service.list_parts(upload_id))
        return listed_parts_from_json(doc)

    def complete(
        self,
        upload_id: str,
        token: str,
        parts: Mapping[int, str] | None = None,
        checksums: Mapping[int, str] | None = None,
    ) -> Completed:
        self._auth(upload_id, token)
        body = complete_body(parts, checksums)
        doc = self._guard(lambda: self.service.complete(upload_id, body))
        return completed_from_json(doc)

    def abort(self, upload_id: str, token: str) -> dict[str, Any]:
        self._auth(upload_id, token)
        return dict(self._guard(lambda: self.service.abort(upload_id)))

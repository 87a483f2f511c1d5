"""The processing half of the HTTP API: error report, retry, preview."""

from __future__ import annotations

import time
from typing import Any

from processor.model import chunk_items
from processor.workitems import CHUNK_WORK, SHARD_WORK, requeue_failed
from upflow.core.checker import preview
from upflow.core.detect import FormatError
from upflow.core.naming import sanitise_filename
from upflow.server.chunkview import CHUNK_VIEW_ATTRIBUTES, chunk_view, empty_chunk_view
from upflow.server.states import FAILED
from upflow.server.uploads import HttpError, epoch_ms, iso, status_document
from upflow.server.wiring import Services


class ProcessingService:
    def __init__(self, services: Services) -> None:
        self._services = services

    def status(self, upload_id: str) -> dict[str, Any]:
        """The status document with the chunks' view (counts by state, timings, grid).

        One Query of the upload's chunk items, eventually consistent (a view that may lag a
        second): it reads, and is charged for, whole items, ~470 bytes each (the sketches are
        items of their own), so ~600 read units and ~5 pages for 10,000 chunks (docs/design.md)."""
        item = self._services.uploads.load(upload_id)
        chunk_total = int(item.get("chunk_total", 0))
        if not chunk_total:
            return status_document(item, empty_chunk_view())
        items = chunk_items(self._services.status, upload_id, CHUNK_VIEW_ATTRIBUTES, consistent=False)
        return status_document(item, chunk_view(items, chunk_total, epoch_ms(time.time())))

    def error_report_url(self, upload_id: str) -> dict[str, Any]:
        item = self._services.uploads.load(upload_id)
        report = item.get("report_key")
        if not report:
            raise HttpError(
                404,
                "report_not_ready",
                f"upload {upload_id} has no error report yet (status {item['status']})",
            )
        expires_in = self._services.config.limits.url_expiry_seconds
        # A header value: ASCII, no quotes or separators, whatever the uploaded name was.
        filename = f"{sanitise_filename(str(item['filename'])).removesuffix('.csv')}-errors.csv"
        return {
            "url": self._services.store.presign_get(str(report), expires_in, filename),
            "expires_at": iso(time.time() + expires_in),
        }

    def retry(self, upload_id: str) -> dict[str, Any]:
        """Re-run every failed chunk (map) or, once the reduce has started, every failed
        shard; the upload goes back to ``processing`` or ``reducing``."""
        item = self._services.uploads.load(upload_id)
        kind = SHARD_WORK if "shard_total" in item else CHUNK_WORK
        if item["status"] not in (FAILED, kind.upload_state) or "chunk_total" not in item:
            raise HttpError(
                409, "nothing_to_retry", f"upload {upload_id} is {item['status']}: no failed work to retry"
            )
        requeued = requeue_failed(self._services, kind, upload_id)
        if not requeued and item["status"] == FAILED:
            raise HttpError(
                409,
                "nothing_to_retry",
                f"upload {upload_id} failed before chunking: {item.get('error_message', '')}",
            )
        return {"upload_id": upload_id, "requeued": len(requeued)}

    def preview(self, data: bytes, object_size: int | None = None) -> dict[str, Any]:
        """The head of a file checked; ``object_size``, when the client sends it, says whether
        the head is the whole file (else a head shorter than the preview size is taken as all)."""
        limits = self._services.config.limits
        if not data:
            raise HttpError(
                400, "empty_body", "send the first MiB of the CSV file as the request body", "body"
            )
        if len(data) > limits.preview_bytes:
            raise HttpError(
                413, "too_large", f"send at most {limits.preview_bytes} bytes (the head of the file)", "body"
            )
        if object_size is not None and len(data) > object_size:
            raise HttpError(
                400, "invalid_size", f"the body has {len(data)} bytes, more than size {object_size}", "size"
            )
        at_eof = len(data) < limits.preview_bytes if object_size is None else len(data) == object_size
        try:
            return dict(preview(data, at_eof=at_eof, limits=limits))
        except FormatError as error:
            raise HttpError(422, error.code, error.message, error.field or "file") from error

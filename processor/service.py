"""The processing half of the HTTP API: error report, retry, preview."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from processor.model import chunk_items, chunk_key, chunk_message, reduce_message, shard_items, shard_key
from upflow.aws.dynamo import Item, Table, TransactionCancelled, transact
from upflow.core.checker import preview
from upflow.core.detect import FormatError
from upflow.server.states import CHUNK, FAILED, PROCESSING, REDUCING, SHARD, UPLOAD, StateMachine
from upflow.server.uploads import ApiError, iso, upload_key
from upflow.server.wiring import Services


@dataclass(frozen=True)
class _RetryableWork:
    """One kind of work item a retry can re-run, and the upload states around it."""

    machine: StateMachine
    items: Callable[[Table, str, Sequence[str]], Iterator[Item]]
    key: Callable[[str, int], dict[str, str]]
    message: Callable[[str, int], dict[str, Any]]
    failed_counter: str
    # The upload states a retry starts from (failed, or still running with some work failed)
    # and the one it goes back to.
    upload_from: tuple[str, ...]
    upload_to: str


_CHUNK_RETRY = _RetryableWork(
    CHUNK, chunk_items, chunk_key, chunk_message, "chunks_failed", (FAILED, PROCESSING), PROCESSING
)
_SHARD_RETRY = _RetryableWork(
    SHARD, shard_items, shard_key, reduce_message, "shards_failed", (FAILED, REDUCING), REDUCING
)


class ProcessingService:
    def __init__(self, services: Services) -> None:
        self._services = services

    def error_report_url(self, upload_id: str) -> dict[str, Any]:
        item = self._services.uploads.load(upload_id)
        report = item.get("report_key")
        if not report:
            raise ApiError(
                404,
                "report_not_ready",
                f"upload {upload_id} has no error report yet (status {item['status']})",
            )
        expires_in = self._services.config.limits.url_expiry_seconds
        filename = f"{str(item['filename']).rsplit('.', 1)[0]}-errors.csv"
        return {
            "url": self._services.store.presign_get(str(report), expires_in, filename),
            "expires_at": iso(time.time() + expires_in),
        }

    def retry(self, upload_id: str) -> dict[str, Any]:
        """Re-enqueue every failed chunk (map) or, once the reduce has started, every failed
        shard; the upload goes back to ``processing`` or ``reducing``."""
        item = self._services.uploads.load(upload_id)
        reducing = "shard_total" in item
        work = _SHARD_RETRY if reducing else _CHUNK_RETRY
        if item["status"] not in work.upload_from or "chunk_total" not in item:
            raise ApiError(
                409, "nothing_to_retry", f"upload {upload_id} is {item['status']}: no failed work to retry"
            )
        status = self._services.status
        failed = [
            int(i["index"])
            for i in work.items(status, upload_id, ("index", "status"))
            if i["status"] == FAILED
        ]
        requeued: list[int] = []
        for index in failed:
            try:
                transact(
                    status.client,
                    [
                        status.tx_update(
                            work.key(upload_id, index),
                            work.machine.condition(to=work.machine.initial, from_=FAILED).update(
                                set={"updated_at": iso(time.time())}, remove=("last_error",)
                            ),
                        ),
                        status.tx_update(
                            upload_key(upload_id),
                            UPLOAD.condition(to=work.upload_to, from_=work.upload_from).update(
                                add={work.failed_counter: -1}, remove=("error_code", "error_message")
                            ),
                        ),
                    ],
                )
            except TransactionCancelled:
                continue  # it left `failed` meanwhile (a late redelivery got it)
            requeued.append(index)
        if not failed and item["status"] == FAILED:
            raise ApiError(
                409,
                "nothing_to_retry",
                f"upload {upload_id} failed before chunking: {item.get('error_message', '')}",
            )
        self._services.chunks.send_json([work.message(upload_id, index) for index in requeued])
        return {"upload_id": upload_id, "requeued": len(requeued)}

    def preview(self, data: bytes, object_size: int | None = None) -> dict[str, Any]:
        """The head of a file checked; ``object_size``, when the client sends it, says whether
        the head is the whole file (else a head shorter than the preview size is taken as all)."""
        limits = self._services.config.limits
        if not data:
            raise ApiError(
                400, "empty_body", "send the first MiB of the CSV file as the request body", "body"
            )
        if len(data) > limits.preview_bytes:
            raise ApiError(
                413, "too_large", f"send at most {limits.preview_bytes} bytes (the head of the file)", "body"
            )
        if object_size is not None and len(data) > object_size:
            raise ApiError(
                400, "invalid_size", f"the body has {len(data)} bytes, more than size {object_size}", "size"
            )
        at_eof = len(data) < limits.preview_bytes if object_size is None else len(data) == object_size
        try:
            return dict(preview(data, at_eof=at_eof, limits=limits))
        except FormatError as error:
            raise ApiError(422, error.code, error.message, error.field or "file") from error

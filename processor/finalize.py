"""Finalisation: the error report with file line numbers, and the final status."""

from __future__ import annotations

import io
import logging
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any

from processor.model import chunk_errors_key, chunk_items, report_key
from upflow.aws.dynamo import ConditionFailed, Update
from upflow.core.report import decode_chunk_errors, write_report
from upflow.core.rows import RowError
from upflow.server.uploads import COMPLETED, COMPLETED_WITH_ERRORS, FAILED, PROCESSING, iso, upload_key
from upflow.server.wiring import Services

log = logging.getLogger("upflow.finalize")


def fail_upload(
    services: Services, upload_id: str, code: str, message: str, from_states: Sequence[str]
) -> None:
    values = {f":s{position}": state for position, state in enumerate(from_states)}
    try:
        services.status.update(
            upload_key(upload_id),
            Update(
                set={
                    "status": FAILED,
                    "error_code": code,
                    "error_message": message,
                    "updated_at": iso(time.time()),
                },
                condition=f"#s IN ({', '.join(values)})",
                condition_names={"#s": "status"},
                condition_values=values,
            ),
        )
    except ConditionFailed:
        log.info("upload %s already left %s; not marking it failed", upload_id, from_states)


def maybe_finalize(services: Services, upload_id: str) -> None:
    """Set the final status once every chunk has ended (whoever gets here last)."""
    item = services.status.get(upload_key(upload_id))
    if item is None or "chunk_total" not in item:
        return
    total = int(item["chunk_total"])
    done, failed = int(item.get("chunks_done", 0)), int(item.get("chunks_failed", 0))
    if int(item.get("plan_next", 0)) < total:
        return
    if done == total:
        _finalize_success(services, upload_id, item)
    elif done + failed == total and failed:
        fail_upload(
            services,
            upload_id,
            "chunks_failed",
            f"{failed} of {total} chunks failed after retries; POST /uploads/{upload_id}/retry re-runs them",
            from_states=(PROCESSING,),
        )


def _chunk_errors(services: Services, upload_id: str) -> Iterator[tuple[int, Sequence[RowError]]]:
    """(newlines before the chunk, its errors) for every chunk, in file order."""
    newlines_before = 0
    for chunk in chunk_items(services.status, upload_id, projection=("index", "newlines", "errors_count")):
        errors: Sequence[RowError] = ()
        if int(chunk.get("errors_count", 0)):
            errors = decode_chunk_errors(
                services.store.get_bytes(chunk_errors_key(upload_id, int(chunk["index"])))
            )
        yield newlines_before, errors
        newlines_before += int(chunk["newlines"])


def _finalize_success(services: Services, upload_id: str, item: dict[str, Any]) -> None:
    limit = services.config.limits.first_errors_shown
    first_errors: list[dict[str, Any]] = []

    def remember_first(
        chunks: Iterator[tuple[int, Sequence[RowError]]],
    ) -> Iterator[tuple[int, Sequence[RowError]]]:
        for newlines_before, errors in chunks:
            for error in errors:
                if len(first_errors) >= limit:
                    break
                first_errors.append(
                    {
                        "line": 1 + newlines_before + error.line_offset,
                        "column": error.column,
                        "code": error.code,
                        "message": error.message,
                        "value": error.value[:200],
                    }
                )
            yield newlines_before, errors

    key = report_key(upload_id)
    # Spooled: small reports stay in memory, large ones go to Lambda's /tmp.
    with tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        write_report(text, remember_first(_chunk_errors(services, upload_id)))
        text.flush()
        text.detach()  # hand the bytes back to `raw` without closing it
        raw.seek(0)
        services.store.upload_file(key, raw, content_type="text/csv")
    status = COMPLETED_WITH_ERRORS if int(item.get("rows_invalid", 0)) else COMPLETED
    try:
        services.status.update(
            upload_key(upload_id),
            Update(
                set={
                    "status": status,
                    "report_key": key,
                    "first_errors": first_errors,
                    "updated_at": iso(time.time()),
                },
                remove=("error_code", "error_message"),
                condition="#s IN (:processing, :failed) AND chunks_done = chunk_total",
                condition_names={"#s": "status"},
                condition_values={":processing": PROCESSING, ":failed": FAILED},
            ),
        )
    except ConditionFailed:
        log.info("upload %s was finalised by another worker", upload_id)

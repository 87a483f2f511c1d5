"""Item keys, S3 keys and messages of the pipeline (see docs/design.md)."""

from __future__ import annotations

from typing import Any

from upflow.definition import CHUNK_ERRORS_PREFIX, REPORTS_PREFIX
from upflow.uploads import upload_key

CHUNK_PREFIX = "CHUNK#"
PENDING = "pending"
CHUNK_PROCESSING = "processing"
CHUNK_COMPLETED = "completed"
CHUNK_FAILED = "failed"

__all__ = ["upload_key"]


def chunk_sort_key(index: int) -> str:
    return f"{CHUNK_PREFIX}{index:06d}"


def chunk_key(upload_id: str, index: int) -> dict[str, str]:
    return {"pk": f"UPLOAD#{upload_id}", "sk": chunk_sort_key(index)}


def chunk_errors_key(upload_id: str, index: int) -> str:
    return f"{CHUNK_ERRORS_PREFIX}{upload_id}/{index:06d}.csv"


def report_key(upload_id: str) -> str:
    return f"{REPORTS_PREFIX}{upload_id}/errors.csv"


def chunk_message(upload_id: str, index: int) -> dict[str, Any]:
    return {"type": "chunk", "upload_id": upload_id, "index": index}


def plan_page_message(upload_id: str, next_index: int) -> dict[str, Any]:
    return {"type": "plan_page", "upload_id": upload_id, "next_index": next_index}

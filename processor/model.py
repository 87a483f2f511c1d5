"""Item keys, S3 keys and messages of the pipeline (see docs/design.md)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from upflow.aws.dynamo import Item, Table
from upflow.definition import CHUNK_ERRORS_PREFIX, REPORTS_PREFIX
from upflow.server.uploads import upload_pk

CHUNK_PREFIX = "CHUNK#"
PENDING = "pending"
CHUNK_PROCESSING = "processing"
CHUNK_COMPLETED = "completed"
CHUNK_FAILED = "failed"


def chunk_sort_key(index: int) -> str:
    return f"{CHUNK_PREFIX}{index:06d}"


def chunk_key(upload_id: str, index: int) -> dict[str, str]:
    return {"pk": upload_pk(upload_id), "sk": chunk_sort_key(index)}


# The highest chunk index the plan can produce is max_chunks - 1 (< 1,000,000).
_LAST_CHUNK_SORT_KEY = chunk_sort_key(999_999)


def chunk_items(
    status: Table, upload_id: str, projection: Sequence[str], before_index: int | None = None
) -> Iterator[Item]:
    """The upload's chunk items in chunk order (all, or those before ``before_index``)."""
    last = _LAST_CHUNK_SORT_KEY if before_index is None else chunk_sort_key(before_index - 1)
    return status.query(
        "pk",
        upload_pk(upload_id),
        sort_name="sk",
        sort_between=(chunk_sort_key(0), last),
        projection=projection,
    )


def chunk_errors_key(upload_id: str, index: int) -> str:
    return f"{CHUNK_ERRORS_PREFIX}{upload_id}/{index:06d}.csv"


def report_key(upload_id: str) -> str:
    return f"{REPORTS_PREFIX}{upload_id}/errors.csv"


def chunk_message(upload_id: str, index: int) -> dict[str, Any]:
    return {"type": "chunk", "upload_id": upload_id, "index": index}


def plan_page_message(upload_id: str, next_index: int) -> dict[str, Any]:
    return {"type": "plan_page", "upload_id": upload_id, "next_index": next_index}

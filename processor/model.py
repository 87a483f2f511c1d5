"""Item keys, S3 keys and messages of the pipeline (see docs/design.md)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from upflow.aws.dynamo import Item, Table
from upflow.definition import CHUNK_ERRORS_PREFIX, PARTIALS_PREFIX, REPORTS_PREFIX, RESULTS_PREFIX
from upflow.server.uploads import upload_pk

CHUNK_PREFIX = "CHUNK#"
SHARD_PREFIX = "SHARD#"
# A chunk's document sketch has an item of its own: it is most of a chunk item's bytes, and
# DynamoDB charges a Query for whole items, so the chunk items (read by every status poll,
# the reconciler and the finaliser) stay small and only the reduce's planning reads these.
SKETCH_PREFIX = "SKETCH#"
# Item states and their transitions: upflow.server.states (CHUNK, SHARD).


def chunk_sort_key(index: int) -> str:
    return f"{CHUNK_PREFIX}{index:06d}"


def chunk_key(upload_id: str, index: int) -> dict[str, str]:
    return {"pk": upload_pk(upload_id), "sk": chunk_sort_key(index)}


# The highest chunk index the plan can produce is max_chunks - 1 (< 1,000,000).
_LAST_CHUNK_SORT_KEY = chunk_sort_key(999_999)


def chunk_items(
    status: Table,
    upload_id: str,
    projection: Sequence[str],
    before_index: int | None = None,
    consistent: bool = True,
    from_index: int = 0,
) -> Iterator[Item]:
    """The upload's chunk items in chunk order (all, or those from ``from_index`` and before
    ``before_index``)."""
    last = _LAST_CHUNK_SORT_KEY if before_index is None else chunk_sort_key(before_index - 1)
    return status.query(
        "pk",
        upload_pk(upload_id),
        sort_name="sk",
        sort_between=(chunk_sort_key(from_index), last),
        projection=projection,
        consistent=consistent,
    )


def sketch_key(upload_id: str, index: int) -> dict[str, str]:
    return {"pk": upload_pk(upload_id), "sk": f"{SKETCH_PREFIX}{index:06d}"}


def sketch_items(status: Table, upload_id: str) -> Iterator[Item]:
    """The upload's chunk sketches (one item a completed chunk), in chunk order."""
    return status.query("pk", upload_pk(upload_id), sort_name="sk", sort_prefix=SKETCH_PREFIX)


def shard_key(upload_id: str, index: int) -> dict[str, str]:
    return {"pk": upload_pk(upload_id), "sk": f"{SHARD_PREFIX}{index:04d}"}


def shard_items(status: Table, upload_id: str, projection: Sequence[str]) -> Iterator[Item]:
    """The upload's reduce shard items in shard order."""
    return status.query(
        "pk", upload_pk(upload_id), sort_name="sk", sort_prefix=SHARD_PREFIX, projection=projection
    )


# The index of uploads that have work under way (the reconciler's list): one item per upload,
# put when planning starts, deleted when it ends for good. One small partition, two writes per upload.
ACTIVE_PK = "ACTIVE"


def active_item(upload_id: str) -> dict[str, str]:
    return {"pk": ACTIVE_PK, "sk": upload_id}


def active_uploads(status: Table) -> list[str]:
    return [str(item["sk"]) for item in status.query("pk", ACTIVE_PK, projection=("sk",))]


def _parse_tag(start_state: str | None) -> str:
    """What a chunk's objects are named after besides its index: nothing for the parse from
    its speculated start state; the state for a parse from the state its item names (a
    re-parse). The two parses' objects never share a key, so a late speculative parse can
    never overwrite what the reduce and the report read (they follow the item)."""
    return f"-from{start_state}" if start_state else ""


def partial_key(upload_id: str, index: int, start_state: str | None = None) -> str:
    """The chunk's partial totals (map output, ``upflow.core.consolidation``); ``start_state``:
    the chunk item's, if it has one."""
    return f"{PARTIALS_PREFIX}{upload_id}/{index:06d}{_parse_tag(start_state)}.bin"


def shard_csv_key(upload_id: str, index: int) -> str:
    return f"{RESULTS_PREFIX}{upload_id}/shards/{index:04d}.csv"


def totals_key(upload_id: str) -> str:
    """The merged, sorted totals CSV users download."""
    return f"{RESULTS_PREFIX}{upload_id}/totals.csv"


def chunk_errors_key(upload_id: str, index: int, start_state: str | None = None) -> str:
    """The chunk's error file; ``start_state``: the chunk item's, if it has one."""
    return f"{CHUNK_ERRORS_PREFIX}{upload_id}/{index:06d}{_parse_tag(start_state)}.csv"


def report_slice_key(upload_id: str, index: int) -> str:
    """A slice of a large report, rewritten by a reduce task; the finaliser joins them (they
    expire with the chunks' error files)."""
    return f"{CHUNK_ERRORS_PREFIX}{upload_id}/report-{index:05d}.csv"


def report_key(upload_id: str) -> str:
    return f"{REPORTS_PREFIX}{upload_id}/errors.csv"


def chunk_message(upload_id: str, index: int) -> dict[str, Any]:
    return {"type": "chunk", "upload_id": upload_id, "index": index}


def reduce_message(upload_id: str, shard: int) -> dict[str, Any]:
    return {"type": "reduce", "upload_id": upload_id, "shard": shard}


def plan_page_message(upload_id: str, next_index: int) -> dict[str, Any]:
    return {"type": "plan_page", "upload_id": upload_id, "next_index": next_index}

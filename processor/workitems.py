"""The status bookkeeping shared by both kinds of parallel work: map chunks and reduce shards.

A chunk and a shard live the same life (``upflow.server.states``: the CHUNK and SHARD
machines share one table): picked up, completed with its counts added to the upload in
the same transaction, failed on its last receive, re-run by a retry. One implementation
serves both, so the exactly-once argument is made once (docs/design.md).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from processor.model import (
    active_item,
    chunk_items,
    chunk_key,
    chunk_message,
    reduce_message,
    shard_items,
    shard_key,
)
from upflow.aws.dynamo import ConditionFailed, Item, Table, TransactionCancelled, Update, transact
from upflow.server.states import (
    CHUNK,
    CHUNK_COMPLETED,
    CHUNK_FAILED,
    CHUNK_PENDING,
    CHUNK_PROCESSING,
    FAILED,
    PROCESSING,
    REDUCING,
    SHARD,
    UPLOAD,
    Guard,
    StateMachine,
)
from upflow.server.uploads import epoch_ms, iso, upload_key
from upflow.server.wiring import Services

# A shard's states carry a chunk's names (one table: tests/unit/test_state_machines.py).
ITEM_PENDING, ITEM_PROCESSING, ITEM_COMPLETED, ITEM_FAILED = (
    CHUNK_PENDING,
    CHUNK_PROCESSING,
    CHUNK_COMPLETED,
    CHUNK_FAILED,
)

_TRANSACTION_ATTEMPTS = 8


@dataclass(frozen=True)
class WorkKind:
    """One kind of work item: its machine, keys, message and counters on the upload."""

    name: str
    machine: StateMachine
    key: Callable[[str, int], dict[str, str]]
    items: Callable[[Table, str, Sequence[str]], Iterator[Item]]
    message: Callable[[str, int], dict[str, Any]]
    done_counter: str
    failed_counter: str
    # The upload state while this work runs (a retry moves the upload back to it).
    upload_state: str


CHUNK_WORK = WorkKind(
    "chunk", CHUNK, chunk_key, chunk_items, chunk_message, "chunks_done", "chunks_failed", PROCESSING
)
SHARD_WORK = WorkKind(
    "shard", SHARD, shard_key, shard_items, reduce_message, "shards_done", "shards_failed", REDUCING
)


def mark_processing(services: Services, kind: WorkKind, upload_id: str, index: int, item: Item) -> None:
    """Count an attempt; a late redelivery of an item already counted failed is un-counted.

    ``started_at`` (epoch ms) is this attempt's start: the operators' view (``GET /uploads/{id}``)
    times a completed item from it to ``finished_at``."""
    clock = time.time()
    now = iso(clock)
    started = {"updated_at": now, "started_at": epoch_ms(clock)}
    if item["status"] == ITEM_FAILED:
        try:
            transact(
                services.status.client,
                [
                    services.status.tx_update(
                        kind.key(upload_id, index),
                        kind.machine.condition(to=ITEM_PROCESSING, from_=ITEM_FAILED).update(
                            set=started, add={"attempts": 1}
                        ),
                    ),
                    services.status.tx_update(upload_key(upload_id), Update(add={kind.failed_counter: -1})),
                ],
            )
        except TransactionCancelled:
            pass  # someone else moved it first; the work that follows is idempotent
        return
    try:
        services.status.update(
            kind.key(upload_id, index),
            kind.machine.condition(to=ITEM_PROCESSING, from_=(ITEM_PENDING, ITEM_PROCESSING)).update(
                set=started, add={"attempts": 1}
            ),
        )
    except ConditionFailed:
        pass


def complete(
    services: Services,
    kind: WorkKind,
    upload_id: str,
    index: int,
    fields: Mapping[str, Any],
    upload_counts: Mapping[str, int | Decimal] | None = None,
    *,
    require: Callable[[Guard], Guard] | None = None,
    also: Sequence[dict[str, Any]] = (),
) -> bool:
    """Flip the item to ``completed`` with ``fields`` and add it (and ``upload_counts``) to the
    upload, in one transaction; False when another delivery completed it first (its counts
    are in once). ``finished_at`` (epoch ms) ends the item's timing (``mark_processing``).

    ``require`` adds clauses to the item's guard (the transaction fails like a completed
    item's when they do not hold); ``also`` are more writes of the same transaction, made only
    when the completion is."""
    clock = time.time()
    guard = kind.machine.condition(to=ITEM_COMPLETED, from_=ITEM_PROCESSING)
    if require is not None:
        guard = require(guard)
    operations = [
        services.status.tx_update(
            kind.key(upload_id, index),
            guard.update(set={"updated_at": iso(clock), "finished_at": epoch_ms(clock), **fields}),
        ),
        services.status.tx_update(
            upload_key(upload_id),
            Update(add={kind.done_counter: 1, **(upload_counts or {})}, set={"updated_at": iso(clock)}),
        ),
        *also,
    ]
    for attempt in range(_TRANSACTION_ATTEMPTS):
        try:
            transact(services.status.client, operations)
            return True
        except TransactionCancelled as cancelled:
            if cancelled.reasons and cancelled.reasons[0] == "ConditionalCheckFailed":
                return False
            if "TransactionConflict" not in cancelled.reasons and "ThrottlingError" not in cancelled.reasons:
                raise
            time.sleep(min(2.0, 0.05 * 2**attempt) * random.random())
    raise RuntimeError("transaction kept conflicting")


def record_failure(
    services: Services, kind: WorkKind, upload_id: str, index: int, error: Exception, final: bool
) -> bool:
    """Keep the error on the item; on the last receive also mark it ``failed`` and count it.

    Answers whether it was counted failed now (the caller then re-checks the upload)."""
    message = f"{type(error).__name__}: {error}"[:1000]
    if not final:
        services.status.update(kind.key(upload_id, index), Update(set={"last_error": message}))
        return False
    try:
        transact(
            services.status.client,
            [
                services.status.tx_update(
                    kind.key(upload_id, index),
                    kind.machine.condition(to=ITEM_FAILED, from_=(ITEM_PENDING, ITEM_PROCESSING)).update(
                        set={"last_error": message, "updated_at": iso(time.time())}
                    ),
                ),
                services.status.tx_update(upload_key(upload_id), Update(add={kind.failed_counter: 1})),
            ],
        )
    except TransactionCancelled:
        return False
    return True


def requeue_failed(services: Services, kind: WorkKind, upload_id: str) -> list[int]:
    """Move every failed item back to ``pending`` (un-counting it) and send its message again;
    the upload goes back to the state of this work. Answers the indexes re-queued."""
    status = services.status
    failed = [
        int(i["index"])
        for i in kind.items(status, upload_id, ("index", "status"))
        if i["status"] == ITEM_FAILED
    ]
    requeued: list[int] = []
    for index in failed:
        try:
            transact(
                status.client,
                [
                    status.tx_update(
                        kind.key(upload_id, index),
                        kind.machine.condition(to=kind.machine.initial, from_=ITEM_FAILED).update(
                            set={"updated_at": iso(time.time())}, remove=("last_error",)
                        ),
                    ),
                    status.tx_update(
                        upload_key(upload_id),
                        UPLOAD.condition(to=kind.upload_state, from_=(FAILED, kind.upload_state)).update(
                            add={kind.failed_counter: -1}, remove=("error_code", "error_message")
                        ),
                    ),
                ],
            )
        except TransactionCancelled:
            continue  # it left `failed` meanwhile (a late redelivery got it)
        requeued.append(index)
    if requeued:
        services.status.put(active_item(upload_id))  # the reconciler watches it again
    services.chunks.send_json([kind.message(upload_id, index) for index in requeued])
    return requeued

"""Every (from, to) pair of every state machine, written to the local stack's real status table.

For each pair an item is put in state ``from`` and moved to ``to`` the way the
code moves it (``machine.condition(...).update(...)``, by ``UpdateItem`` and
inside a transaction). An allowed pair succeeds; a refused one cannot be
built, and the write guarded by every allowed source of ``to`` fails its
conditional check and leaves the item as it was.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from upflow.aws.dynamo import ConditionFailed, Table, TransactionCancelled, Update, transact
from upflow.local.stack import LocalStack
from upflow.server.states import (
    CHUNK,
    COMPLETED,
    FAILED,
    MACHINES,
    PROCESSING,
    REDUCING,
    SHARD,
    UPLOAD,
    UPLOADED,
    UPLOADING,
    StateMachine,
)

PAIRS = [
    pytest.param(machine, source, target, id=f"{machine.name}:{source}->{target}")
    for machine in MACHINES
    for source in sorted(machine.states)
    for target in sorted(machine.states)
]
WRITES = ("update", "transact")
# One partition of the status table for this module's items, removed at its end.
_PK = f"UPLOAD#states-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def table(stack: LocalStack) -> Iterator[Table]:
    status = Table(stack.boto3_client("dynamodb"), stack.names.status_table)
    yield status
    # Leave the status table as the other tests expect it: only their uploads' items.
    for item in status.query("pk", _PK, projection=("pk", "sk")):
        status.client.delete_item(
            TableName=status.name, Key={"pk": {"S": item["pk"]}, "sk": {"S": item["sk"]}}
        )


def _item_in(table: Table, machine: StateMachine, state: str, **attributes: Any) -> dict[str, str]:
    key = {"pk": _PK, "sk": f"{machine.name}#{uuid.uuid4().hex}"}
    assert table.put_new({**key, machine.attribute: state, "marker": "before", **attributes}, key_attr="pk")
    return key


def _write(table: Table, how: str, key: dict[str, str], update: Update) -> bool:
    """Apply ``update``; False when its condition failed."""
    if how == "update":
        try:
            table.update(key, update)
        except ConditionFailed:
            return False
        return True
    try:
        transact(table.client, [table.tx_update(key, update)])
    except TransactionCancelled as cancelled:
        assert cancelled.reasons == ["ConditionalCheckFailed"], cancelled.reasons
        return False
    return True


@pytest.mark.parametrize("how", WRITES)
@pytest.mark.parametrize(("machine", "source", "target"), PAIRS)
def test_a_transition_succeeds_exactly_when_the_machine_allows_it(
    table: Table, machine: StateMachine, source: str, target: str, how: str
) -> None:
    attribute = machine.attribute
    if machine.allows(source, target):
        for sources in ((source,), tuple(sorted(machine.sources(target)))):
            key = _item_in(table, machine, source)
            guarded = machine.condition(to=target, from_=sources).update(set={"marker": "after"})
            assert _write(table, how, key, guarded), f"{source}->{target} from {sources} was refused"
            after = table.get(key)
            assert after is not None
            assert (after[attribute], after["marker"]) == (target, "after")
        return

    with pytest.raises(ValueError, match="not an allowed transition"):
        machine.condition(to=target, from_=source)
    allowed_sources = machine.sources(target)
    if not allowed_sources:
        # Nothing moves an item into this state: it is the one items are created in.
        assert target == machine.initial
        with pytest.raises(ValueError):
            machine.condition(to=target, from_=allowed_sources)
        return
    key = _item_in(table, machine, source)
    guarded = machine.condition(to=target, from_=allowed_sources).update(set={"marker": "after"})
    assert not _write(table, how, key, guarded), f"{source}->{target} was written"
    after = table.get(key)
    assert after is not None
    assert (after[attribute], after["marker"]) == (source, "before")


def test_the_tables_cover_every_pair() -> None:
    assert len(PAIRS) == sum(len(machine.states) ** 2 for machine in MACHINES)
    assert {machine.name for machine in MACHINES} == {UPLOAD.name, CHUNK.name, SHARD.name}


@pytest.mark.parametrize("how", WRITES)
def test_the_planner_guard_also_needs_no_plan_yet(table: Table, how: str) -> None:
    guard = UPLOAD.condition(to=PROCESSING, from_=(UPLOADING, UPLOADED)).and_(
        "attribute_not_exists(chunk_total)"
    )
    fresh = _item_in(table, UPLOAD, UPLOADED)
    assert _write(table, how, fresh, guard.update(set={"chunk_total": 3}))
    planned = _item_in(table, UPLOAD, UPLOADED, chunk_total=3)
    assert not _write(table, how, planned, guard.update(set={"chunk_total": 4}))
    assert table.get(planned) == {**planned, "status": UPLOADED, "marker": "before", "chunk_total": 3}


@pytest.mark.parametrize("how", WRITES)
def test_the_finaliser_guard_also_needs_every_shard_done(table: Table, how: str) -> None:
    guard = UPLOAD.condition(to=COMPLETED, from_=(REDUCING, FAILED)).and_("shards_done = shard_total")
    done = _item_in(table, UPLOAD, FAILED, shards_done=2, shard_total=2)
    assert _write(table, how, done, guard.update(remove=("marker",)))
    assert table.get(done) == {**done, "status": COMPLETED, "shards_done": 2, "shard_total": 2}
    short = _item_in(table, UPLOAD, REDUCING, shards_done=1, shard_total=2)
    assert not _write(table, how, short, guard.update())

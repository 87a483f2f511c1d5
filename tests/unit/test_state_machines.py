"""The state machines' tables and the guards they build.

Pure; the same transitions written to DynamoDB: tests/integration/test_states.py.
"""

from __future__ import annotations

import pytest

from upflow.server.states import (
    CHUNK,
    MACHINES,
    SHARD,
    UPLOAD,
    Guard,
    StateMachine,
)

# The tables as docs/design.md ("State machines") shows them. A change to a machine
# shows here as a diff a reviewer reads.
UPLOAD_TABLE = {
    ("uploading", "uploaded"),
    ("uploading", "aborted"),
    ("uploading", "processing"),
    ("uploaded", "processing"),
    ("uploading", "failed"),
    ("uploaded", "failed"),
    ("processing", "failed"),
    ("processing", "reducing"),
    ("reducing", "failed"),
    ("reducing", "completed"),
    ("reducing", "completed_with_errors"),
    ("failed", "completed"),
    ("failed", "completed_with_errors"),
    ("failed", "processing"),
    ("failed", "reducing"),
    ("processing", "processing"),
    ("reducing", "reducing"),
}
CHUNK_TABLE = {
    ("pending", "processing"),
    ("processing", "processing"),
    ("failed", "processing"),
    ("processing", "completed"),
    ("pending", "failed"),
    ("processing", "failed"),
    ("failed", "pending"),
    ("completed", "pending"),
}


def test_the_upload_machine() -> None:
    assert UPLOAD.name == "upload"
    assert UPLOAD.states == {
        "uploading",
        "uploaded",
        "aborted",
        "processing",
        "reducing",
        "completed",
        "completed_with_errors",
        "failed",
    }
    assert UPLOAD.initial == "uploading"
    assert UPLOAD.transitions == UPLOAD_TABLE
    # Nothing leaves these: an upload that ended for good.
    ended = {"aborted", "completed", "completed_with_errors"}
    assert {s for s in UPLOAD.states if not UPLOAD.targets(s)} == ended
    # Nothing enters the initial state: it is only ever created.
    assert UPLOAD.sources("uploading") == frozenset()


def test_the_chunk_machine() -> None:
    assert CHUNK.name == "chunk"
    assert CHUNK.states == {"pending", "processing", "completed", "failed"}
    assert CHUNK.initial == "pending"
    assert CHUNK.transitions == CHUNK_TABLE
    # A completed chunk is left only to be parsed again with its true start state.
    assert CHUNK.targets("completed") == {"pending"}
    assert CHUNK.sources("pending") == {"failed", "completed"}


def test_the_shard_machine_is_the_chunk_machine_for_reduce_work() -> None:
    # A reduce shard is retried, failed and re-run exactly like a chunk; it is never re-parsed.
    assert SHARD.name == "shard"
    assert SHARD.initial == "pending"
    assert SHARD.transitions == CHUNK_TABLE - {("completed", "pending")}
    assert {s for s in SHARD.states if not SHARD.targets(s)} == {"completed"}


def test_every_state_is_reachable_from_the_initial_one() -> None:
    for machine in MACHINES:
        reached, frontier = {machine.initial}, [machine.initial]
        while frontier:
            for target in machine.targets(frontier.pop()):
                if target not in reached:
                    reached.add(target)
                    frontier.append(target)
        assert reached == machine.states, machine.name


@pytest.mark.parametrize("machine", MACHINES, ids=lambda machine: machine.name)
def test_every_pair_is_built_exactly_when_allowed(machine: StateMachine) -> None:
    for source in machine.states:
        for target in machine.states:
            if (source, target) in machine.transitions:
                guard = machine.condition(to=target, from_=source)
                assert (guard.to, guard.from_) == (target, (source,))
                assert machine.allows(source, target)
            else:
                assert not machine.allows(source, target)
                with pytest.raises(ValueError, match=f"{source} -> {target} is not an allowed transition"):
                    machine.condition(to=target, from_=source)
                # Nor hidden among allowed sources.
                with pytest.raises(ValueError):
                    machine.condition(to=target, from_=(*sorted(machine.sources(target)), source))


def test_one_source_is_an_equality_several_are_an_in() -> None:
    one = UPLOAD.condition(to="uploaded", from_="uploading")
    assert one.condition == "#state = :state_uploading"
    assert one.condition_names == {"#state": "status"}
    assert one.condition_values == {":state_uploading": "uploading"}

    several = UPLOAD.condition(to="completed_with_errors", from_=("reducing", "failed", "reducing"))
    assert several.from_ == ("reducing", "failed")
    assert several.condition == "#state IN (:state_reducing, :state_failed)"
    assert several.condition_values == {":state_reducing": "reducing", ":state_failed": "failed"}


def test_unknown_states_and_no_source_are_refused() -> None:
    with pytest.raises(ValueError, match="'done' is not a state"):
        CHUNK.condition(to="done", from_="processing")
    with pytest.raises(ValueError, match="'running' is not a state"):
        CHUNK.condition(to="completed", from_="running")
    with pytest.raises(ValueError, match="at least one source"):
        CHUNK.condition(to="completed", from_=())
    with pytest.raises(ValueError, match="not an allowed transition"):
        UPLOAD.condition(to="uploading", from_=UPLOAD.states)


def test_the_update_sets_the_status_under_the_condition() -> None:
    update = CHUNK.condition(to="failed", from_=("pending", "processing")).update(
        set={"last_error": "boom"}, add={"attempts": 1}, remove=("x",)
    )
    assert update.set == {"status": "failed", "last_error": "boom"}
    rendered = update.render()
    assert rendered["ConditionExpression"] == "#state IN (:state_pending, :state_processing)"
    names = rendered["ExpressionAttributeNames"]
    values = rendered["ExpressionAttributeValues"]
    assert names["#state"] == "status"
    assert values[":state_pending"] == {"S": "pending"} and values[":state_processing"] == {"S": "processing"}
    # The update's own placeholders are distinct from the condition's.
    assert set(names) == {"#state", "#u0", "#u1", "#u2", "#u3"}
    assert rendered["UpdateExpression"] == "SET #u0 = :u0, #u1 = :u1 ADD #u2 :u2 REMOVE #u3"
    assert values[":u0"] == {"S": "failed"}


def test_the_status_is_only_set_by_the_guard() -> None:
    guard = CHUNK.condition(to="completed", from_="processing")
    with pytest.raises(ValueError, match="do not pass it in set"):
        guard.update(set={"status": "failed"})


def test_a_clause_can_be_added_but_not_over_the_state_placeholders() -> None:
    guard = UPLOAD.condition(to="processing", from_=("uploading", "uploaded")).and_(
        "attribute_not_exists(chunk_total)"
    )
    assert guard.condition == (
        "(#state IN (:state_uploading, :state_uploaded)) AND (attribute_not_exists(chunk_total))"
    )
    both = guard.and_("#n = :n", names={"#n": "chunks_done"}, values={":n": 0})
    assert both.condition_names == {"#state": "status", "#n": "chunks_done"}
    assert both.condition_values[":n"] == 0
    with pytest.raises(ValueError, match="already used"):
        guard.and_("#state = :x", names={"#state": "other"}, values={":x": 1})
    with pytest.raises(ValueError, match="already used"):
        guard.and_("size = :state_uploaded", values={":state_uploaded": 1})


def test_a_machine_is_a_table() -> None:
    # How a later kind of item gets its machine: a table, nothing else.
    lamp = StateMachine.from_table("lamp", initial="off", table=[("off", "on"), ("on", "off")])
    assert lamp.states == {"off", "on"}
    assert isinstance(lamp.condition(to="on", from_="off"), Guard)
    with pytest.raises(ValueError):
        lamp.condition(to="on", from_="on")
    with pytest.raises(ValueError, match="unknown"):
        StateMachine("bad", frozenset({"a"}), "a", frozenset({("a", "b")}))
    with pytest.raises(ValueError, match="initial"):
        StateMachine("bad", frozenset({"a"}), "b", frozenset())
    with pytest.raises(ValueError, match="lower_snake"):
        StateMachine.from_table("bad", initial="a", table=[("a", "B-2")])


def test_machines_are_frozen() -> None:
    with pytest.raises(AttributeError):
        UPLOAD.initial = "uploaded"  # type: ignore[misc]

"""The state machines of the status table's items: states, allowed transitions, guards.

Each machine is a table of ``(from, to)`` pairs. Every write of a ``status``
goes through ``machine.condition(to=..., from_=...)``, which refuses (with
``ValueError``, when the write is built) a transition the table does not hold
and otherwise answers the DynamoDB condition that makes the write happen only
from those states; ``Guard.update`` turns it into the ``Update`` that also sets
the status. docs/design.md ("State machines") shows the same tables.

A new kind of item gets its machine by adding a table here; nothing else in
this module knows which machines exist.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from upflow.aws.dynamo import Update

# --- upload item (pk UPLOAD#<id>, sk META) ---------------------------------
UPLOADING = "uploading"
UPLOADED = "uploaded"
ABORTED = "aborted"
PROCESSING = "processing"
REDUCING = "reducing"
COMPLETED = "completed"
COMPLETED_WITH_ERRORS = "completed_with_errors"
FAILED = "failed"

# --- chunk item (pk UPLOAD#<id>, sk CHUNK#<index>) --------------------------
CHUNK_PENDING = "pending"
CHUNK_PROCESSING = "processing"
CHUNK_COMPLETED = "completed"
CHUNK_FAILED = "failed"

# --- reduce shard item (pk UPLOAD#<id>, sk SHARD#<index>) ------------------
SHARD_PENDING = "pending"
SHARD_PROCESSING = "processing"
SHARD_COMPLETED = "completed"
SHARD_FAILED = "failed"

# Placeholders of the state condition; ``Update.render`` uses #u<n> and :u<n>,
# so these never collide with the update's own.
_STATE_NAME = "#state"
_STATE_WORD = re.compile(r"[a-z][a-z0-9_]*")  # usable in a placeholder (:state_<name>)


@dataclass(frozen=True)
class Guard:
    """A checked transition of one machine: the condition for ``Update(...)``.

    ``condition`` holds when the item's status is one of ``from_`` (plus any
    clause added with ``and_``); ``update`` builds the write that sets the
    status to ``to`` under it.
    """

    machine: str
    attribute: str
    to: str
    from_: tuple[str, ...]
    condition: str
    condition_names: Mapping[str, str]
    condition_values: Mapping[str, Any]

    def and_(
        self,
        clause: str,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> Guard:
        """This guard with ``clause`` also required (e.g. ``attribute_not_exists(chunk_total)``)."""
        names, values = dict(names or {}), dict(values or {})
        clash = (names.keys() & self.condition_names.keys()) | (values.keys() & self.condition_values.keys())
        if clash:
            raise ValueError(f"placeholders {sorted(clash)} are already used by the state condition")
        return Guard(
            machine=self.machine,
            attribute=self.attribute,
            to=self.to,
            from_=self.from_,
            condition=f"({self.condition}) AND ({clause})",
            condition_names={**self.condition_names, **names},
            condition_values={**self.condition_values, **values},
        )

    def update(
        self,
        set: Mapping[str, Any] | None = None,
        add: Mapping[str, int | Decimal | AbstractSet[int]] | None = None,
        set_if_missing: Mapping[str, Any] | None = None,
        remove: Sequence[str] = (),
    ) -> Update:
        """The ``Update`` that moves the item to ``to`` (and writes ``set``/``add``/…) under this guard."""
        fields = dict(set or {})
        if self.attribute in fields:
            raise ValueError(f"the guard sets {self.attribute!r}; do not pass it in set")
        return Update(
            set={self.attribute: self.to, **fields},
            add=dict(add or {}),
            set_if_missing=dict(set_if_missing or {}),
            remove=tuple(remove),
            condition=self.condition,
            condition_names=dict(self.condition_names),
            condition_values=dict(self.condition_values),
        )


@dataclass(frozen=True)
class StateMachine:
    """The states of one kind of item and the transitions between them.

    ``initial`` is the state an item is created in (by a conditional put, not
    a transition); ``transitions`` holds every allowed ``(from, to)``, self
    transitions included where the code writes them.
    """

    name: str
    states: frozenset[str]
    initial: str
    transitions: frozenset[tuple[str, str]]
    attribute: str = field(default="status")

    def __post_init__(self) -> None:
        for state in self.states:
            if not _STATE_WORD.fullmatch(state):
                raise ValueError(f"{self.name}: state {state!r} is not a lower_snake name")
        if self.initial not in self.states:
            raise ValueError(f"{self.name}: initial state {self.initial!r} is not one of its states")
        for source, target in self.transitions:
            unknown = {source, target} - self.states
            if unknown:
                raise ValueError(f"{self.name}: {source} -> {target} names unknown {sorted(unknown)}")

    @classmethod
    def from_table(
        cls, name: str, initial: str, table: Iterable[tuple[str, str]], attribute: str = "status"
    ) -> StateMachine:
        """A machine from its transition table; its states are those the table (and ``initial``) name."""
        transitions = frozenset(table)
        states = frozenset({initial, *(state for pair in transitions for state in pair)})
        return cls(name=name, states=states, initial=initial, transitions=transitions, attribute=attribute)

    def allows(self, from_: str, to: str) -> bool:
        return (from_, to) in self.transitions

    def sources(self, to: str) -> frozenset[str]:
        """The states an item may move to ``to`` from."""
        return frozenset(source for source, target in self.transitions if target == to)

    def targets(self, from_: str) -> frozenset[str]:
        """The states an item in ``from_`` may move to."""
        return frozenset(target for source, target in self.transitions if source == from_)

    def condition(self, to: str, from_: str | Iterable[str]) -> Guard:
        """The guard of a write moving the item to ``to`` from any of ``from_``.

        Raises ``ValueError`` when ``from_`` is empty, names an unknown state,
        or holds a state this machine does not allow to move to ``to``.
        """
        sources = (from_,) if isinstance(from_, str) else tuple(dict.fromkeys(from_))
        if to not in self.states:
            raise ValueError(f"{self.name}: {to!r} is not a state (states: {sorted(self.states)})")
        if not sources:
            raise ValueError(f"{self.name}: a transition to {to!r} needs at least one source state")
        for source in sources:
            if source not in self.states:
                raise ValueError(f"{self.name}: {source!r} is not a state (states: {sorted(self.states)})")
            if not self.allows(source, to):
                raise ValueError(
                    f"{self.name}: {source} -> {to} is not an allowed transition "
                    f"(allowed into {to}: {sorted(self.sources(to)) or 'none'})"
                )
        values = {f":state_{source}": source for source in sources}
        if len(values) == 1:
            condition = f"{_STATE_NAME} = {next(iter(values))}"
        else:
            condition = f"{_STATE_NAME} IN ({', '.join(values)})"
        return Guard(
            machine=self.name,
            attribute=self.attribute,
            to=to,
            from_=sources,
            condition=condition,
            condition_names={_STATE_NAME: self.attribute},
            condition_values=values,
        )


# The upload: created `uploading` by POST /uploads (upflow.server.uploads.initiate).
UPLOAD = StateMachine.from_table(
    "upload",
    initial=UPLOADING,
    table=[
        (UPLOADING, UPLOADED),  # API complete
        (UPLOADING, ABORTED),  # API abort
        (UPLOADING, PROCESSING),  # planner start (the S3 event can beat the complete call)
        (UPLOADED, PROCESSING),  # planner start
        (UPLOADING, FAILED),  # planner: unreadable format, or planning failed for good
        (UPLOADED, FAILED),  # planner: same
        (PROCESSING, FAILED),  # planner gave up on a plan page; finaliser: chunks failed
        (PROCESSING, REDUCING),  # every chunk mapped: the reduce shards are planned
        (REDUCING, FAILED),  # shards failed after retries
        (REDUCING, COMPLETED),  # finaliser: every shard reduced, no invalid row
        (REDUCING, COMPLETED_WITH_ERRORS),  # finaliser: every shard reduced, some invalid rows
        (FAILED, COMPLETED),  # finaliser after a late redelivery completed the failed shards
        (FAILED, COMPLETED_WITH_ERRORS),  # same
        (FAILED, PROCESSING),  # API retry of the failed chunks
        (FAILED, REDUCING),  # API retry of the failed shards
        (PROCESSING, PROCESSING),  # API retry while other chunks still run
        (REDUCING, REDUCING),  # API retry while other shards still run
    ],
)

# A chunk: created `pending` by the planner (processor.planner.write_plan_page).
CHUNK = StateMachine.from_table(
    "chunk",
    initial=CHUNK_PENDING,
    table=[
        (CHUNK_PENDING, CHUNK_PROCESSING),  # worker picks it up
        (CHUNK_PROCESSING, CHUNK_PROCESSING),  # redelivery after a worker died or raised
        (CHUNK_FAILED, CHUNK_PROCESSING),  # late redelivery of a chunk already counted failed
        (CHUNK_PROCESSING, CHUNK_COMPLETED),  # worker applied its effects
        (CHUNK_PENDING, CHUNK_FAILED),  # last receive failed before it was marked processing
        (CHUNK_PROCESSING, CHUNK_FAILED),  # last receive failed
        (CHUNK_FAILED, CHUNK_PENDING),  # API retry
        (CHUNK_COMPLETED, CHUNK_PENDING),  # its speculated start state was wrong: parse it again
    ],
)

# A reduce shard: created `pending` when every chunk is mapped (processor.finalize.advance).
# It lives a chunk's life — picked up, completed, failed on its last receive, retried — but a
# shard is never parsed again, so the chunk's re-parse transition is not its.
SHARD = StateMachine.from_table(
    "shard",
    initial=SHARD_PENDING,
    table=CHUNK.transitions - {(CHUNK_COMPLETED, CHUNK_PENDING)},
)
assert (SHARD_PENDING, SHARD_PROCESSING, SHARD_COMPLETED, SHARD_FAILED) == (
    CHUNK_PENDING,
    CHUNK_PROCESSING,
    CHUNK_COMPLETED,
    CHUNK_FAILED,
)

MACHINES: tuple[StateMachine, ...] = (UPLOAD, CHUNK, SHARD)

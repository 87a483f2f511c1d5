"""The operators' view of one upload's chunks: counts by state, timings, the grid.

A pure function of the chunk items (``GET /uploads/{id}`` reads them with one Query of the
upload's ``CHUNK#`` range; docs/design.md, "HTTP API", says what that costs). Every list it
answers is bounded: the grid is one character per chunk (at most ``max_chunks``, 10,000),
the others at most ``SLOWEST_CHUNKS`` entries.
"""

from __future__ import annotations

import heapq
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from upflow.aws.dynamo import Item
from upflow.server.states import CHUNK_COMPLETED, CHUNK_FAILED, CHUNK_PENDING, CHUNK_PROCESSING

# The grid's alphabet: one character per chunk, in chunk order (docs/design.md, "HTTP API").
GRID_CODES = {CHUNK_PENDING: "P", CHUNK_PROCESSING: "R", CHUNK_COMPLETED: "C", CHUNK_FAILED: "F"}
CHUNK_STATES = tuple(GRID_CODES)
# How many chunks each of the lists names (slowest completed, longest running, failed).
SLOWEST_CHUNKS = 10
# What the view reads of each chunk item (a projection: the Query still reads, and is
# charged for, whole items).
CHUNK_VIEW_ATTRIBUTES = (
    "index",
    "status",
    "started_at",
    "finished_at",
    "rows_total",
    "attempts",
    "last_error",
)
# A failed chunk's error as the view shows it (the item keeps up to 1,000 characters).
_ERROR_CHARS = 300


@dataclass(frozen=True)
class _Timed:
    index: int
    seconds: float
    rows: int
    attempts: int
    started_ms: int
    finished_ms: int


def _seconds(milliseconds: float) -> float:
    return round(milliseconds / 1000, 3)


def chunk_view(items: Iterable[Item], chunk_total: int, now_ms: int) -> dict[str, Any]:
    """``by_state``, ``grid``, ``timings``, ``slowest``, ``running`` and ``failures`` of an
    upload whose plan has ``chunk_total`` chunks, from its chunk items (any order).

    Chunks the planner has not written yet count as pending. A completed chunk is timed from
    its last attempt's ``started_at`` to its ``finished_at`` (epoch ms; items written before
    those existed are counted, not timed).
    """
    states: dict[int, str] = {}
    timed: list[_Timed] = []
    running: list[tuple[int, int, int]] = []  # (started_ms, index, attempts)
    failures: list[dict[str, Any]] = []
    for item in items:
        index, status = int(item["index"]), str(item["status"])
        if not 0 <= index < chunk_total or status not in GRID_CODES:
            continue  # not a chunk of this plan: the view stays within the plan's size
        states[index] = status
        attempts = int(item.get("attempts", 0))
        started = item.get("started_at")
        if status == CHUNK_COMPLETED and started is not None and item.get("finished_at") is not None:
            finished = int(item["finished_at"])
            if finished >= int(started):
                timed.append(
                    _Timed(
                        index,
                        _seconds(finished - int(started)),
                        int(item.get("rows_total", 0)),
                        attempts,
                        int(started),
                        finished,
                    )
                )
        elif status == CHUNK_PROCESSING and started is not None:
            running.append((int(started), index, attempts))
        elif status == CHUNK_FAILED:
            failures.append(
                {
                    "index": index,
                    "attempts": attempts,
                    "error": str(item.get("last_error", ""))[:_ERROR_CHARS],
                }
            )
    by_state = dict.fromkeys(CHUNK_STATES, 0)
    for status in states.values():
        by_state[status] += 1
    by_state[CHUNK_PENDING] += chunk_total - len(states)
    grid = "".join(GRID_CODES[states.get(index, CHUNK_PENDING)] for index in range(chunk_total))
    slowest = heapq.nlargest(SLOWEST_CHUNKS, timed, key=lambda chunk: (chunk.seconds, -chunk.index))
    return {
        "by_state": by_state,
        "grid": grid,
        "timings": _timings(timed),
        "slowest": [
            {"index": c.index, "seconds": c.seconds, "rows": c.rows, "attempts": c.attempts} for c in slowest
        ],
        "running": [
            {"index": index, "seconds": _seconds(max(0, now_ms - started)), "attempts": attempts}
            for started, index, attempts in heapq.nsmallest(SLOWEST_CHUNKS, running)
        ],
        "failures": sorted(failures, key=lambda failure: int(failure["index"]))[:SLOWEST_CHUNKS],
    }


def _timings(timed: list[_Timed]) -> dict[str, Any] | None:
    """Seconds per completed chunk (min, median, max, total) and rows per second: overall (the
    rows of the timed chunks over the time from the first start to the last finish, workers in
    parallel) and per chunk-second (one worker's rate)."""
    if not timed:
        return None
    seconds = [chunk.seconds for chunk in timed]
    rows = sum(chunk.rows for chunk in timed)
    total = sum(seconds)
    elapsed = _seconds(max(c.finished_ms for c in timed) - min(c.started_ms for c in timed))
    return {
        "chunks": len(timed),
        "min_seconds": min(seconds),
        "median_seconds": round(statistics.median(seconds), 3),
        "max_seconds": max(seconds),
        "total_seconds": round(total, 3),
        "elapsed_seconds": elapsed,
        "rows": rows,
        "rows_per_second": round(rows / elapsed, 1) if elapsed > 0 else None,
        "rows_per_chunk_second": round(rows / total, 1) if total > 0 else None,
    }


def empty_chunk_view() -> dict[str, Any]:
    """The view of an upload not planned yet: no chunks."""
    return chunk_view((), 0, 0)

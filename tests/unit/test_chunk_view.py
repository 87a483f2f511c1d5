"""The operators' view of an upload's chunks (``upflow.server.chunkview``) and its rendering by
``upflow status --watch`` (``upflow.client.watch``), on hand-made chunk items."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

from upflow.client.api import UploadStatus
from upflow.client.watch import exit_code, frame_lines, has_ended, watch
from upflow.server.chunkview import SLOWEST_CHUNKS, chunk_view, empty_chunk_view

NOW_MS = 1_700_000_100_000


def item(index: int, status: str, **fields: Any) -> dict[str, Any]:
    """A chunk item as DynamoDB answers it: numbers are Decimals."""
    return {"index": Decimal(index), "status": status, "attempts": Decimal(1)} | {
        name: Decimal(value) if isinstance(value, int) else value for name, value in fields.items()
    }


def completed(index: int, started: int, seconds: float, rows: int, attempts: int = 1) -> dict[str, Any]:
    return item(
        index,
        "completed",
        started_at=started,
        finished_at=started + round(seconds * 1000),
        rows_total=rows,
        attempts=attempts,
    )


def test_counts_grid_timings_and_lists() -> None:
    t0 = 1_700_000_000_000
    items = [
        completed(0, t0, 2.0, 1_000),
        completed(1, t0, 4.0, 3_000, attempts=2),
        completed(2, t0 + 4_000, 1.0, 500),
        item(3, "processing", started_at=NOW_MS - 7_500, attempts=2),
        item(4, "failed", attempts=5, last_error="NoSuchKey: gone " + "x" * 1_000),
        item(5, "pending"),
        # chunks 6 and 7 are not written yet by the planner: pending
    ]
    view = chunk_view(items, 8, NOW_MS)
    assert view["by_state"] == {"pending": 3, "processing": 1, "completed": 3, "failed": 1}
    assert view["grid"] == "CCCRFPPP"
    assert view["timings"] == {
        "chunks": 3,
        "min_seconds": 1.0,
        "median_seconds": 2.0,
        "max_seconds": 4.0,
        "total_seconds": 7.0,
        # from the first start (t0) to the last finish (t0 + 5 s)
        "elapsed_seconds": 5.0,
        "rows": 4_500,
        "rows_per_second": 900.0,
        "rows_per_chunk_second": round(4_500 / 7, 1),
    }
    assert view["slowest"] == [
        {"index": 1, "seconds": 4.0, "rows": 3_000, "attempts": 2},
        {"index": 0, "seconds": 2.0, "rows": 1_000, "attempts": 1},
        {"index": 2, "seconds": 1.0, "rows": 500, "attempts": 1},
    ]
    assert view["running"] == [{"index": 3, "seconds": 7.5, "attempts": 2}]
    [failure] = view["failures"]
    assert failure["index"] == 4 and failure["attempts"] == 5
    assert failure["error"].startswith("NoSuchKey: gone") and len(failure["error"]) == 300


def test_lists_are_bounded_and_the_grid_is_one_character_per_chunk() -> None:
    t0 = 1_700_000_000_000
    total = 10_000
    items = [completed(i, t0 + i, 1 + (i % 97) / 10, 10) for i in range(total)]
    view = chunk_view(reversed(items), total, NOW_MS)  # any order
    assert view["grid"] == "C" * total
    assert view["by_state"]["completed"] == total
    assert len(view["slowest"]) == SLOWEST_CHUNKS
    assert [c["seconds"] for c in view["slowest"]] == [10.6] * SLOWEST_CHUNKS
    # Ties go to the lowest index first.
    assert [c["index"] for c in view["slowest"]] == [96 + 97 * k for k in range(SLOWEST_CHUNKS)]


def test_untimed_and_foreign_items_are_counted_or_ignored() -> None:
    items = [
        item(0, "completed", rows_total=10),  # written before chunks were timed
        item(1, "completed", started_at=5_000, finished_at=4_000, rows_total=10),  # clock went back
        item(2, "processing"),  # no started_at: counted, not listed
        item(9, "completed"),  # outside the plan of 3 chunks
    ]
    view = chunk_view(items, 3, NOW_MS)
    assert view["by_state"] == {"pending": 0, "processing": 1, "completed": 2, "failed": 0}
    assert view["grid"] == "CCR"
    assert view["timings"] is None and view["slowest"] == [] and view["running"] == []


def test_an_upload_without_chunks_has_an_empty_view() -> None:
    assert empty_chunk_view() == {
        "by_state": {"pending": 0, "processing": 0, "completed": 0, "failed": 0},
        "grid": "",
        "timings": None,
        "slowest": [],
        "running": [],
        "failures": [],
    }


def document(status: str, view: dict[str, Any], total: int) -> dict[str, Any]:
    done = view["by_state"]["completed"]
    failed = view["by_state"]["failed"]
    return {
        "upload_id": "u1",
        "filename": "big.csv",
        "status": status,
        "size": 1,
        "part_size": 1,
        "part_count": 1,
        "chunks": {"total": total, "done": done, "failed": failed, **view},
        "shards": {"total": 4, "done": 1, "failed": 0},
        "summary": {},
        "error": None,
    }


def test_a_frame_shows_states_rates_and_the_slowest_chunks() -> None:
    t0 = 1_700_000_000_000
    view = chunk_view(
        [completed(0, t0, 2.0, 1_000), completed(1, t0, 4.0, 3_000), item(2, "processing", started_at=t0)],
        4,
        t0 + 10_000,
    )
    lines = frame_lines(document("processing", view, 4))
    text = "\n".join(lines)
    assert "chunks    4 total: 1 pending, 1 processing, 2 completed, 0 failed" in lines
    assert "rows/s    1,000 overall, 667 per chunk-second (4,000 rows in 4.00 s)" in lines
    assert "slowest chunks:" in lines
    assert lines[lines.index("slowest chunks:") + 1].split() == [
        "#1",
        "4.00",
        "s",
        "3,000",
        "rows",
        "1",
        "attempt",
    ]
    assert "running longest:" in text and "#2" in text and "10.00 s" in text
    assert "reduce    1/4 shards" in lines


def test_the_watch_stops_when_the_upload_ends_and_says_how() -> None:
    t0 = 1_700_000_000_000
    pending = chunk_view([item(0, "pending"), item(1, "pending")], 2, t0)
    half = chunk_view([completed(0, t0, 1.0, 10), item(1, "processing", started_at=t0)], 2, t0 + 1_000)
    done = chunk_view([completed(0, t0, 1.0, 10), completed(1, t0, 2.0, 20)], 2, t0 + 3_000)
    docs = [
        document("processing", pending, 2),
        document("processing", pending, 2),  # unchanged: not written again
        document("processing", half, 2),
        document("completed", done, 2),
    ]
    answers = iter(UploadStatus.from_json(doc) for doc in docs)
    slept: list[float] = []
    out = io.StringIO()
    final = watch(lambda: next(answers), out, interval=2.0, clear=False, sleep=slept.append)
    assert final.status == "completed" and exit_code(final) == 0
    assert slept == [2.0, 2.0, 2.0]
    frames = out.getvalue().split("\n\n")
    assert len(frames) == 3
    assert frames[-1].splitlines()[2] == "chunks    2 total: 0 pending, 0 processing, 2 completed, 0 failed"


def test_a_failed_upload_is_watched_until_its_chunks_stop_and_exits_non_zero() -> None:
    still_running = chunk_view([item(0, "failed"), item(1, "processing", started_at=0)], 2, 1_000)
    stopped = chunk_view([item(0, "failed"), completed(1, 0, 1.0, 10)], 2, 2_000)
    assert not has_ended(document("failed", still_running, 2))
    assert has_ended(document("failed", stopped, 2))
    assert exit_code(UploadStatus.from_json(document("failed", stopped, 2))) == 1
    assert exit_code(UploadStatus.from_json(document("aborted", empty_chunk_view(), 0))) == 1
    assert exit_code(UploadStatus.from_json(document("completed_with_errors", stopped, 2))) == 0


def test_on_a_terminal_every_frame_clears_the_screen() -> None:
    docs = iter([document("uploaded", empty_chunk_view(), 0), document("aborted", empty_chunk_view(), 0)])
    out = io.StringIO()
    watch(lambda: UploadStatus.from_json(next(docs)), out, interval=1.0, clear=True, sleep=lambda _: None)
    assert out.getvalue().count("\033[H\033[2J") == 2

"""``upflow status ID --watch``: one upload followed live, as plain text frames.

Each refresh reads ``GET /uploads/{id}`` and renders its chunk view (docs/design.md, "HTTP
API": ``chunks.by_state``, ``timings``, ``slowest``, ``running``, ``failures``) as a few
lines. On a terminal the screen is cleared before each frame; otherwise a frame is written
only when it differs from the last one, so a log of the watch stays short.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TextIO

from upflow.client.api import UploadStatus

# The upload states after which nothing changes by itself (a retry starts it again).
SUCCEEDED = frozenset({"completed", "completed_with_errors"})
ENDED = SUCCEEDED | {"failed", "aborted"}
CHUNK_STATES = ("pending", "processing", "completed", "failed")
# Lines of each list a frame shows (the API answers up to 10).
SHOWN = 5
CLEAR_SCREEN = "\033[H\033[2J"


def _count(value: Any) -> str:
    return f"{round(float(value)):,}"


def _seconds(value: Any) -> str:
    return f"{float(value):.2f} s"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def by_state(doc: Mapping[str, Any]) -> dict[str, int]:
    """Chunks per state: the API's view, or (from an API without it) the upload's counters."""
    chunks = doc.get("chunks") or {}
    counted = chunks.get("by_state")
    if isinstance(counted, Mapping):
        return {state: int(counted.get(state, 0)) for state in CHUNK_STATES}
    total, done, failed = (int(chunks.get(name, 0)) for name in ("total", "done", "failed"))
    return {"pending": max(0, total - done - failed), "processing": 0, "completed": done, "failed": failed}


def has_ended(doc: Mapping[str, Any]) -> bool:
    """The upload is final and no chunk is still in flight (a failed upload's other chunks may
    still be running; the watch waits for them, as the page does)."""
    if doc.get("status") not in ENDED:
        return False
    states = by_state(doc)
    return doc.get("status") != "failed" or states["pending"] + states["processing"] == 0


def frame_lines(doc: Mapping[str, Any]) -> list[str]:
    """One frame of the watch: the upload, its chunks by state, rows per second, the slowest,
    longest-running and failed chunks, the reduce, the error."""
    chunks = doc.get("chunks") or {}
    states = by_state(doc)
    lines = [
        f"upload    {doc.get('upload_id')}  {doc.get('filename', '')}",
        f"status    {doc.get('status')}",
        f"chunks    {_count(chunks.get('total', 0))} total: "
        + ", ".join(f"{_count(states[state])} {state}" for state in CHUNK_STATES),
    ]
    timings = chunks.get("timings")
    if isinstance(timings, Mapping):
        overall = timings.get("rows_per_second")
        per_chunk = timings.get("rows_per_chunk_second")
        lines.append(
            f"rows/s    {_count(overall) if overall is not None else '-'} overall, "
            f"{_count(per_chunk) if per_chunk is not None else '-'} per chunk-second "
            f"({_count(timings.get('rows', 0))} rows in {_seconds(timings.get('elapsed_seconds', 0))})"
        )
        lines.append(
            f"timings   {_plural(int(timings.get('chunks', 0)), 'chunk')}: "
            f"min {_seconds(timings['min_seconds'])}, median {_seconds(timings['median_seconds'])}, "
            f"max {_seconds(timings['max_seconds'])}, total {_seconds(timings['total_seconds'])}"
        )
    slowest = list(chunks.get("slowest") or [])[:SHOWN]
    if slowest:
        lines.append("slowest chunks:")
        lines.extend(
            f"  #{int(c['index']):<6} {_seconds(c['seconds']):>10}  {_count(c['rows']):>12} rows  "
            f"{_plural(int(c['attempts']), 'attempt')}"
            for c in slowest
        )
    running = list(chunks.get("running") or [])[:SHOWN]
    if running:
        lines.append("running longest:")
        lines.extend(
            f"  #{int(c['index']):<6} {_seconds(c['seconds']):>10}  attempt {int(c['attempts'])}"
            for c in running
        )
    failures = list(chunks.get("failures") or [])[:SHOWN]
    if failures:
        lines.append("failed chunks:")
        lines.extend(
            f"  #{int(c['index']):<6} after {_plural(int(c['attempts']), 'attempt')}: {c.get('error', '')}"
            for c in failures
        )
    shards = doc.get("shards") or {}
    if int(shards.get("total", 0)):
        failed = f", {_count(shards.get('failed', 0))} failed" if int(shards.get("failed", 0)) else ""
        lines.append(f"reduce    {_count(shards.get('done', 0))}/{_count(shards['total'])} shards{failed}")
    error = doc.get("error")
    if isinstance(error, Mapping):
        lines.append(f"error     {error.get('code')}: {error.get('message')}")
    return lines


def watch(
    read_status: Callable[[], UploadStatus],
    out: TextIO,
    *,
    interval: float,
    clear: bool,
    sleep: Callable[[float], None],
    render: Callable[[Mapping[str, Any]], str] | None = None,
) -> UploadStatus:
    """Show the upload until :func:`has_ended`; answers its last status.

    ``render`` turns a status document into the text of a frame (default: the lines of
    :func:`frame_lines`); ``clear`` clears the screen before each frame (a terminal)."""
    draw = render or (lambda doc: "\n".join(frame_lines(doc)) + "\n")
    last = ""
    while True:
        status = read_status()
        text = draw(status.raw)
        if clear:
            out.write(CLEAR_SCREEN + text)
        elif text != last:
            out.write(("\n" if last else "") + text)
        out.flush()
        last = text
        if has_ended(status.raw):
            return status
        sleep(interval)


def exit_code(status: UploadStatus) -> int:
    """0 when the upload's rows were processed (with or without row errors), 1 otherwise."""
    return 0 if status.status in SUCCEEDED else 1

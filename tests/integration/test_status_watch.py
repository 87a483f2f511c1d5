"""The operators' view of one upload on the local stack: ``GET /uploads/{id}``'s chunk view and
``upflow status ID --watch``.

* While the chunk workers are paused, the planned chunks show as pending, in the counts, the
  grid and the watch's frames;
* once they run, the watch follows the upload to ``completed`` and exits 0, its last frame
  counting every chunk completed; the status document then times every chunk (started and
  finished by the worker), its rows are the upload's, and the slowest list is in order;
* a chunk that fails for good is listed with its error, and the watch of that upload exits 1.
"""

from __future__ import annotations

import re
import subprocess
import threading
from pathlib import Path
from typing import Any

from csvgen import generate
from support import Api, start_cli, wait_until

from upflow.definition import MiB
from upflow.local.stack import LocalStack


class Watch:
    """``upflow status ID --watch`` running, its output gathered line by line as it comes."""

    def __init__(self, upload_id: str, token: str, api_url: str, home: Path) -> None:
        self.process = start_cli(
            ["status", upload_id, "--watch", "--interval", "0.5", "--api", api_url, "--token", token], home
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def finish(self, timeout: float) -> tuple[int, list[str], str]:
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError("the watch did not end:\n" + "\n".join(self.lines[-30:])) from None
        self._reader.join(10)
        assert self.process.stderr is not None
        return code, self.lines, self.process.stderr.read()


def last_frame(lines: list[str]) -> list[str]:
    """The lines after the last blank line: frames are separated by one (not a terminal)."""
    blank = max((i for i, line in enumerate(lines) if not line), default=-1)
    return lines[blank + 1 :]


def status_of(api: Api, upload_id: str, token: str) -> dict[str, Any]:
    code, doc = api.call("GET", f"/uploads/{upload_id}", token)
    assert code == 200, doc
    return dict(doc)


def test_the_watch_follows_an_upload_from_pending_chunks_to_completed(
    api: Api, stack: LocalStack, tmp_path: Path
) -> None:
    payload, expected = generate(16 * MiB + 300_000, seed=41, documents=300)
    stack.pause_chunk_workers()
    try:
        created = api.upload_bytes(payload, filename="acompanha.csv")
        upload_id, token = created["upload_id"], created["token"]
        wait_until(
            lambda: status_of(api, upload_id, token)["chunks"]["grid"] == "PPP",
            60,
            "the planner did not plan the 3 chunks",
        )
        doc = status_of(api, upload_id, token)
        assert doc["chunks"]["by_state"] == {"pending": 3, "processing": 0, "completed": 0, "failed": 0}
        assert doc["chunks"]["timings"] is None and doc["chunks"]["slowest"] == []
        watch = Watch(upload_id, token, stack.api_url, tmp_path / "home")
        wait_until(
            lambda: watch.saw("chunks    3 total: 3 pending, 0 processing, 0 completed, 0 failed"),
            30,
            f"the watch showed no pending chunks: {watch.lines}",
        )
    finally:
        stack.resume_chunk_workers()
    code, lines, stderr = watch.finish(timeout=240)
    assert code == 0, (lines[-30:], stderr)
    frame = last_frame(lines)
    assert frame[1] == f"status    {'completed_with_errors' if expected.rows_invalid else 'completed'}"
    assert frame[2] == "chunks    3 total: 0 pending, 0 processing, 3 completed, 0 failed", frame
    assert any(line.startswith("rows/s    ") for line in frame), frame
    assert frame[frame.index("slowest chunks:") + 1].lstrip().startswith("#"), frame

    final = status_of(api, upload_id, token)
    chunks = final["chunks"]
    assert chunks["grid"] == "CCC"
    assert chunks["by_state"] == {"pending": 0, "processing": 0, "completed": 3, "failed": 0}
    timings = chunks["timings"]
    assert timings["chunks"] == 3
    assert timings["rows"] == final["summary"]["rows_total"] == expected.rows_total
    assert 0 < timings["min_seconds"] <= timings["median_seconds"] <= timings["max_seconds"]
    assert timings["total_seconds"] >= timings["max_seconds"]
    assert timings["elapsed_seconds"] >= timings["max_seconds"]
    assert timings["rows_per_second"] > 0
    slowest = chunks["slowest"]
    assert sorted(c["index"] for c in slowest) == [0, 1, 2]
    assert [c["seconds"] for c in slowest] == sorted((c["seconds"] for c in slowest), reverse=True)
    assert slowest[0]["seconds"] == timings["max_seconds"]
    assert sum(c["rows"] for c in slowest) == expected.rows_total
    assert all(c["attempts"] >= 1 for c in slowest)
    assert chunks["running"] == [] and chunks["failures"] == []


def test_a_failed_chunk_is_listed_and_its_watch_exits_non_zero(
    api: Api, s3: Any, stack: LocalStack, tmp_path: Path
) -> None:
    payload, _ = generate(256 * 1024, seed=43, documents=100)
    stack.pause_chunk_workers()
    try:
        created = api.upload_bytes(payload, filename="falha.csv")
        upload_id, token = created["upload_id"], created["token"]
        wait_until(
            lambda: status_of(api, upload_id, token)["chunks"]["grid"] == "P",
            60,
            "the upload was not planned",
        )
        s3.delete_object(Bucket=stack.names.bucket, Key=created["key"])  # every attempt fails
    finally:
        stack.resume_chunk_workers()
    code, lines, stderr = Watch(upload_id, token, stack.api_url, tmp_path / "home").finish(timeout=120)
    assert code == 1, (lines[-30:], stderr)
    frame = last_frame(lines)
    assert frame[1] == "status    failed"
    assert frame[2] == "chunks    1 total: 0 pending, 0 processing, 0 completed, 1 failed"
    # Five receives (maxReceiveCount), five attempts: a pump stopped by the pause while it polled
    # handles what that poll brings (test_local_supervision.py), so no receive goes unattempted.
    failed_line = frame[frame.index("failed chunks:") + 1]
    assert re.fullmatch(r"  #0      after 5 attempts: NoSuchKey: .*", failed_line), failed_line
    chunks = status_of(api, upload_id, token)["chunks"]
    assert chunks["grid"] == "F"
    [failure] = chunks["failures"]
    assert failure["index"] == 0 and "NoSuchKey" in failure["error"]
    assert f"after {failure['attempts']} attempts" in failed_line

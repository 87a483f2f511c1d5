"""Progress math (rate window, ETA, formatting) and both renderers."""

from __future__ import annotations

import io

import pytest

from upflow.client.progress import (
    Progress,
    RateWindow,
    Snapshot,
    bar,
    eta_seconds,
    format_bytes,
    format_duration,
)


def test_format_bytes_and_duration() -> None:
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(200 * 1024 * 1024) == "200.0 MiB"
    assert format_bytes(3 * 1024**3) == "3.0 GiB"
    assert format_duration(None) == "--:--"
    assert format_duration(float("nan")) == "--:--"
    assert format_duration(65) == "01:05"
    assert format_duration(3725) == "1:02:05"


def test_eta() -> None:
    assert eta_seconds(100, 0.0) is None
    assert eta_seconds(0, 0.0) == 0.0
    assert eta_seconds(100, 25.0) == 4.0


def test_rate_window_uses_only_recent_samples() -> None:
    window = RateWindow(window=10.0)
    assert window.rate() == 0.0
    window.add(0.0, 0)
    window.add(1.0, 100)  # 100 B/s
    assert window.rate() == 100.0
    for t in range(2, 30):
        window.add(float(t), 100 + (t - 1) * 1000)  # then 1000 B/s
    assert window.rate() == pytest.approx(1000.0)


def test_bar() -> None:
    assert bar(0.0, 10) == ".........."
    assert bar(0.5, 10) == "#####....."
    assert bar(2.0, 10) == "##########"


def test_snapshot_line() -> None:
    snap = Snapshot(done=50 * 1024 * 1024, total=100 * 1024 * 1024, rate=10 * 1024 * 1024, elapsed=5)
    assert snap.fraction == 0.5 and snap.eta == 5.0
    assert snap.line() == " 50.0% 50.0 MiB/100.0 MiB 10.0 MiB/s ETA 00:05"


def test_plain_renderer_prints_one_line_per_event_and_skipped_bytes_do_not_count_as_rate() -> None:
    now = [0.0]
    out = io.StringIO()
    progress = Progress(300, out, tty=False, clock=lambda: now[0])
    progress.skip(100)
    now[0] = 1.0
    progress.advance(100, event="sent part 2/3")
    now[0] = 2.0
    progress.advance(100)  # no event: nothing printed in plain mode
    lines = out.getvalue().splitlines()
    assert lines == ["sent part 2/3  66.7% 200 B/300 B 100 B/s ETA 00:01"]
    assert progress.sent == 200 and progress.snapshot().done == 300


def test_tty_renderer_redraws_in_place() -> None:
    now = [0.0]
    out = io.StringIO()
    progress = Progress(100, out, tty=True, clock=lambda: now[0], interval=0.5)
    now[0] = 1.0
    progress.advance(10)
    now[0] = 1.1
    progress.advance(10)  # within the interval: no redraw
    progress.finish()
    text = out.getvalue()
    assert text.count("\r\033[K") == 2 and text.endswith("\n") and "[" in text and "ETA" in text

"""Progress reporting: rate/ETA math (pure) and two renderers (TTY bar, plain lines).

The uploader calls ``Progress.advance(n)`` from its worker threads; the
renderer draws at most every ``interval`` seconds on a TTY, and on anything
else (CI logs, pipes) prints one plain line per event it is told about.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

MiB = 1024 * 1024


def format_bytes(n: float) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", MiB), ("KiB", 1024)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:  # None or NaN
        return "--:--"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def eta_seconds(remaining: int, rate: float) -> float | None:
    """Seconds to send ``remaining`` bytes at ``rate`` bytes/s; None while the rate is unknown."""
    if remaining <= 0:
        return 0.0
    if rate <= 0:
        return None
    return remaining / rate


class RateWindow:
    """Bytes per second over the last ``window`` seconds (pure apart from its samples)."""

    def __init__(self, window: float = 10.0) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, total: int) -> None:
        """Record that ``total`` bytes had been sent (cumulative) at time ``now``."""
        self._samples.append((now, total))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()

    def rate(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0


def bar(fraction: float, width: int = 30) -> str:
    fraction = min(1.0, max(0.0, fraction))
    filled = int(fraction * width)
    return "#" * filled + "." * (width - filled)


@dataclass(frozen=True)
class Snapshot:
    done: int
    total: int
    rate: float
    elapsed: float

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    @property
    def eta(self) -> float | None:
        return eta_seconds(self.total - self.done, self.rate)

    def line(self) -> str:
        return (
            f"{self.fraction * 100:5.1f}% {format_bytes(self.done)}/{format_bytes(self.total)} "
            f"{format_bytes(self.rate)}/s ETA {format_duration(self.eta)}"
        )


class Progress:
    """Thread-safe byte counter with a renderer.

    ``skipped`` bytes (parts already in S3 on a resume) count as done but not
    towards the rate.
    """

    def __init__(
        self,
        total: int,
        out: TextIO,
        *,
        tty: bool,
        label: str = "upload",
        interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        enabled: bool = True,
    ) -> None:
        self.total = total
        self._out = out
        self._tty = tty
        self._label = label
        self._interval = interval
        self._clock = clock
        self._enabled = enabled
        self._lock = threading.Lock()
        self._done = 0
        self._sent = 0
        self._start = clock()
        self._last_draw = 0.0
        self._window = RateWindow()
        self._window.add(self._start, 0)

    def skip(self, n: int) -> None:
        with self._lock:
            self._done += n

    def advance(self, n: int, event: str | None = None) -> None:
        with self._lock:
            self._done += n
            self._sent += n
            now = self._clock()
            self._window.add(now, self._sent)
            snapshot = self._snapshot(now)
            if not self._enabled:
                return
            if self._tty:
                if now - self._last_draw >= self._interval or snapshot.done >= self.total:
                    self._last_draw = now
                    self._draw(snapshot)
            elif event is not None:
                self._out.write(f"{event} {snapshot.line()}\n")
                self._out.flush()

    def message(self, text: str) -> None:
        """A line that must not be mixed into the bar."""
        if not self._enabled:
            return
        with self._lock:
            if self._tty:
                self._out.write("\r\033[K")
            self._out.write(text + "\n")
            self._out.flush()

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._snapshot(self._clock())

    def _snapshot(self, now: float) -> Snapshot:
        rate = self._window.rate()
        return Snapshot(done=self._done, total=self.total, rate=rate, elapsed=now - self._start)

    def _draw(self, snapshot: Snapshot) -> None:
        self._out.write(f"\r\033[K{self._label} [{bar(snapshot.fraction)}] {snapshot.line()}")
        self._out.flush()

    def finish(self) -> Snapshot:
        with self._lock:
            snapshot = self._snapshot(self._clock())
            if self._enabled and self._tty:
                self._draw(snapshot)
                self._out.write("\n")
                self._out.flush()
        return snapshot

    @property
    def sent(self) -> int:
        with self._lock:
            return self._sent

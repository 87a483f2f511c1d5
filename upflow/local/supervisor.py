"""The local stack's supervisor: a dead pump is replaced, as Lambda replaces a dead function.

On AWS a Lambda that crashes, times out or runs out of memory is simply invoked again
for the next message; the queues, tables and objects carry on. Locally the supervisor
(``upflow dev``, or the ``LocalStack`` of a test) watches its children: a pump process
(``pump-events``, ``pump-chunks-N``, ``pump-reconciler``) or the S3 event source
(``s3-events``, SeaweedFS only) that ends is started again within a second, with the
same command and environment, while the rest of the stack and its state go on. moto,
SeaweedFS and ``chalice local`` hold the stack's state (or serve it): one of them ending
ends the stack, with a message saying which and how (``fatal``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from upflow.local.processes import Child, LineSink, exit_reason, stop_children

# How often the supervisor looks at its children.
POLL_SECONDS = 0.2
# A child that ends by itself within this long of its start is started again only after a
# growing pause (1 s, 2 s, … 30 s): a pump that cannot start must not spin. One killed by a
# signal is started again at once.
_QUICK_DEATH_SECONDS = 5.0
_MAX_RESTART_PAUSE = 30.0


def restartable(name: str) -> bool:
    """Processes that hold no state: replaced when they end."""
    return name.startswith("pump-") or name == "s3-events"


class Supervisor:
    """Watches ``children`` (a list shared with the stack) from its own thread.

    Children it starts again are started from that thread, which lives until the stack is
    stopped: a child dies with the thread that started it (``PR_SET_PDEATHSIG``).
    """

    def __init__(self, children: list[Child], sink: LineSink | None = None, log_dir: Path | None = None):
        self.children = children
        self.sink = sink
        self.log_path = log_dir / "supervisor.log" if log_dir else None
        self.restarts: Counter[str] = Counter()
        self.fatal: str | None = None
        # The crashes on purpose that struck (upflow.local.crash): (child name, what it said).
        self.crashes: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.RLock()
        self._paused: dict[str, Child] = {}
        self._next_env: dict[str, dict[str, str]] = {}
        self._base_env: dict[str, dict[str, str]] = {}
        self._overridden: set[str] = set()
        self._started_at: dict[str, float] = {}
        self._quick_deaths: Counter[str] = Counter()
        self._not_before: dict[str, float] = {}
        self._held: dict[str, tuple[int, list[dict[str, Any]]]] = {}
        self._stopping = False
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    # --- what a pump says ----------------------------------------------------------
    def watcher(self, name: str) -> Callable[[bytes], None]:
        """A line watcher for the child ``name``: keeps what the pump says it holds."""

        def watch(line: bytes) -> None:
            if line.startswith(b'{"event": "crash"'):  # upflow.local.crash, just before it dies
                with contextlib.suppress(ValueError):
                    self.crashes.append((name, json.loads(line)))
                return
            if not line.startswith(b'{"pump"'):
                return
            try:
                said = json.loads(line)
            except ValueError:
                return
            if said.get("event") == "received":
                self._held[name] = (int(said.get("pid", 0)), list(said.get("messages", [])))
            elif said.get("event") == "handled":
                self._held[name] = (int(said.get("pid", 0)), [])

        return watch

    def held(self, name: str) -> list[dict[str, Any]]:
        """The messages the pump ``name`` holds now (``id``, ``receives``, ``body``), by its last word."""
        pid, messages = self._held.get(name, (0, []))
        child = self.child(name)
        return list(messages) if child is not None and child.pid == pid else []

    # --- the children --------------------------------------------------------------
    def child(self, name: str) -> Child | None:
        with self._lock:
            return next((child for child in self.children if child.name == name), None)

    def add(self, child: Child) -> None:
        with self._lock:
            self.children.append(child)
            self._base_env.setdefault(child.name, dict(child.env))
            self._started_at[child.name] = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def pause(self, name_prefix: str) -> None:
        """Stop the children whose name starts with ``name_prefix``, and do not replace them."""
        with self._lock:
            paused = [child for child in self.children if child.name.startswith(name_prefix)]
            for child in paused:
                self.children.remove(child)
                self._paused[child.name] = child
        stop_children(paused)

    def resume(self, name_prefix: str) -> list[Child]:
        """Start again what ``pause`` stopped (from the caller's thread)."""
        with self._lock:
            names = [name for name in self._paused if name.startswith(name_prefix)]
            started = [self._paused.pop(name).respawn(self._base_env.get(name)) for name in names]
            for child in started:
                self.add(child)
        return started

    def kill(self, name: str, signum: int) -> int:
        """Send ``signum`` to the child ``name`` (its process only); answers its pid.
        ProcessLookupError: it has ended and is not started again yet."""
        with self._lock:
            child = self.child(name)
            if child is None:
                raise KeyError(f"no child named {name!r}")
            if not child.alive():  # dead already, its replacement not yet started
                raise ProcessLookupError(f"{name} is not running")
            os.kill(child.pid, signum)
            return child.pid

    def replace(self, name: str, extra_env: Mapping[str, str], signum: int, timeout: float) -> int:
        """End the child ``name`` with ``signum`` and have it started again once with ``extra_env``
        added to its environment (its later restarts have the stack's). Answers the new pid."""
        with self._lock:
            self._next_env[name] = {**self._base_env[name], **extra_env}
            old = self.kill(name, signum)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            child = self.child(name)
            if child is not None and child.pid != old and child.alive():
                return child.pid
            time.sleep(0.05)
        raise TimeoutError(f"{name} was not started again within {timeout:.0f}s")

    def overridden(self, name: str) -> bool:
        """Whether the running ``name`` was started with ``replace``'s extra environment."""
        with self._lock:
            return name in self._overridden

    # --- watching ------------------------------------------------------------------
    def say(self, text: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {text}\n".encode()
        if self.log_path is not None:
            with self.log_path.open("ab") as log:
                log.write(line)
        if self.sink is not None:
            self.sink("supervisor", line)
        else:
            print(f"supervisor: {text}", file=sys.stderr, flush=True)

    def _watch(self) -> None:
        while not self._ended.wait(POLL_SECONDS):
            with self._lock:
                if not self._stopping:
                    self._check()

    def _check(self) -> None:
        now = time.monotonic()
        for index, child in enumerate(self.children):
            name = child.name
            if child.alive():
                continue
            reason = exit_reason(child.process.returncode)
            if not restartable(name):
                if self.fatal is None:
                    self.fatal = f"{name} ended ({reason}); it holds the stack's state, so the stack stops"
                    self.say(self.fatal)
                continue
            if name not in self._not_before:  # just found dead: when may it start again?
                child.close()
                lived = now - self._started_at.get(name, 0.0)
                # Killed (a signal: Lambda's timeout, a test): at once. Ended by itself soon after
                # its start (it cannot start?): after a pause that grows while that goes on.
                failing = child.process.returncode >= 0 and lived < _QUICK_DEATH_SECONDS
                self._quick_deaths[name] = self._quick_deaths[name] + 1 if failing else 0
                pause = min(_MAX_RESTART_PAUSE, 2.0 ** (self._quick_deaths[name] - 1))
                self._not_before[name] = now + (pause if self._quick_deaths[name] else 0.0)
            if self._not_before[name] > now:
                continue
            del self._not_before[name]
            env = self._next_env.pop(name, None)
            replacement = child.respawn(env if env is not None else self._base_env.get(name))
            if env is not None:
                self._overridden.add(name)
            else:
                self._overridden.discard(name)
            self.children[index] = replacement
            self._started_at[name] = now
            self.restarts[name] += 1
            self.say(
                f"{name} ended ({reason}); started again as pid {replacement.pid} "
                f"(restart {self.restarts[name]})"
            )

    def stop(self) -> None:
        """Stop every child at once (SIGTERM, then SIGKILL after a short grace), then the watch."""
        with self._lock:
            self._stopping = True
            children = list(self.children)
        stop_children(children)
        self._ended.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(5.0)

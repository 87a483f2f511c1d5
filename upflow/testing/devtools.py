"""Chromium driven over its DevTools pipe, with no network instrumentation.

For the upload benchmark. Playwright enables the DevTools ``Network`` domain on
every page and worker it drives, and with it on, Chromium copies every
in-memory request body (an ``ArrayBuffer`` PUT) into DevTools events that the
driver then decodes: measured on this machine at ~26 MiB/s for 512 MiB of part
PUTs, against ~107 MiB/s for the same page with the domain off (docs/performance.md).
A user's browser has no DevTools attached, so the benchmark drives the page
with the few commands it needs (navigate, evaluate, set a file input) sent
over ``--remote-debugging-pipe`` — file descriptors 3 and 4 of the child,
messages as JSON ended by a NUL byte — and never enables ``Network``.

Tests keep Playwright: they need its routing and request events.

    with DevToolsBrowser.launch() as browser:
        page = browser.page()
        page.navigate("http://127.0.0.1:8080/")
        page.set_input_files("[data-testid=file-input]", [path])
        page.evaluate("document.title")
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from upflow.testing.browser import CHROMIUM, CHROMIUM_ARGS

# Chromium reads commands from fd 3 and writes answers to fd 4.
_COMMAND_FD = 3
_ANSWER_FD = 4


class DevToolsError(RuntimeError):
    """A command failed, the page threw, or Chromium went away."""


class DevToolsBrowser:
    """One headless Chromium and the pipe to it."""

    def __init__(self, pid: int, commands: int, answers: int, profile: Path) -> None:
        self._pid = pid
        self._commands = commands
        self._profile = profile
        self._answers: dict[int, dict[str, Any]] = {}
        self._next_id = 0
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._closed = False
        self._reader = threading.Thread(target=self._read, args=(answers,), daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def profile(self) -> Path:
        """The throw-away user-data directory (removed by ``close``)."""
        return self._profile

    @classmethod
    def launch(cls, extra_args: tuple[str, ...] = (), executable: str = CHROMIUM) -> DevToolsBrowser:
        """Start ``executable`` headless with the tests' arguments and ``extra_args``
        (benchmarks pass diagnostic switches and other Chromium builds this way)."""
        profile = Path(tempfile.mkdtemp(prefix="upflow-chromium-"))
        to_child_read, to_child_write = _pipe()
        from_child_read, from_child_write = _pipe()
        argv = [
            executable,
            "--headless",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            *CHROMIUM_ARGS,
            *extra_args,
            "about:blank",
        ]
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        spawned = False
        try:
            # posix_spawn, not subprocess + preexec_fn: safe with threads running.
            pid = os.posix_spawn(
                executable,
                argv,
                dict(os.environ),
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, devnull, 0),
                    (os.POSIX_SPAWN_DUP2, devnull, 1),
                    (os.POSIX_SPAWN_DUP2, devnull, 2),
                    (os.POSIX_SPAWN_DUP2, to_child_read, _COMMAND_FD),
                    (os.POSIX_SPAWN_DUP2, from_child_write, _ANSWER_FD),
                ],
            )
            spawned = True
        finally:
            # The child holds its own copies; ours of its ends (and all, on failure) go.
            for fd in (devnull, to_child_read, from_child_write):
                os.close(fd)
            if not spawned:
                os.close(to_child_write)
                os.close(from_child_read)
                shutil.rmtree(profile, ignore_errors=True)
        return cls(pid, to_child_write, from_child_read, profile)

    def __enter__(self) -> DevToolsBrowser:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = 60,
    ) -> dict[str, Any]:
        """Send one command and wait for its answer's ``result``."""
        with self._lock:
            self._next_id += 1
            command_id = self._next_id
        message: dict[str, Any] = {"id": command_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        try:
            os.write(self._commands, json.dumps(message).encode() + b"\0")
        except OSError as error:
            raise DevToolsError(f"{method}: Chromium is gone ({error})") from error
        with self._arrived:
            if not self._arrived.wait_for(lambda: command_id in self._answers or self._closed, timeout):
                raise DevToolsError(f"{method}: no answer in {timeout} s")
            answer = self._answers.pop(command_id, None)
        if answer is None:
            raise DevToolsError(f"{method}: Chromium closed the pipe")
        if "error" in answer:
            raise DevToolsError(f"{method}: {answer['error'].get('message', answer['error'])}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    def page(self) -> DevToolsPage:
        """The first tab, attached (flat session mode)."""
        targets = self.send("Target.getTargets")["targetInfos"]
        target = next(t for t in targets if t["type"] == "page")
        attached = self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        return DevToolsPage(self, attached["sessionId"])

    def close(self) -> None:
        if not self._closed:
            try:
                self.send("Browser.close", timeout=5)
            except DevToolsError:
                pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pid, _ = os.waitpid(self._pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.05)
        else:
            os.kill(self._pid, 9)
            os.waitpid(self._pid, 0)
        os.close(self._commands)
        shutil.rmtree(self._profile, ignore_errors=True)

    def _read(self, fd: int) -> None:
        pending = b""
        with os.fdopen(fd, "rb", buffering=0) as answers:
            while chunk := answers.read(1 << 16):
                pending += chunk
                *messages, pending = pending.split(b"\0")
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:  # events (no id) are not used
                        with self._arrived:
                            self._answers[message["id"]] = message
                            self._arrived.notify_all()
        with self._arrived:
            self._closed = True
            self._arrived.notify_all()


class DevToolsPage:
    """One attached tab: the commands the benchmark needs."""

    def __init__(self, browser: DevToolsBrowser, session: str) -> None:
        self._browser = browser
        self._session = session

    def navigate(self, url: str, timeout: float = 30) -> None:
        self._browser.send("Page.navigate", {"url": url}, self._session)
        self.wait_for("document.readyState === 'complete'", timeout)

    def evaluate(self, expression: str, timeout: float = 60) -> Any:
        """The value of ``expression`` (awaited if it is a promise)."""
        answer = self._browser.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            self._session,
            timeout,
        )
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise DevToolsError(f"page threw: {text}")
        return answer["result"].get("value")

    def wait_for(self, expression: str, timeout: float, poll: float = 0.05) -> None:
        """Evaluate ``expression`` until it is truthy (an element counts: only its truth is read)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.evaluate(f"Boolean({expression})"):
                return
            if time.monotonic() > deadline:
                raise DevToolsError(f"still false after {timeout} s: {expression}")
            time.sleep(poll)

    def set_input_files(self, selector: str, paths: list[Path]) -> None:
        """Choose files in an ``<input type=file>``, as a user would (fires ``change``)."""
        root = self._browser.send("DOM.getDocument", {}, self._session)["root"]["nodeId"]
        node = self._browser.send("DOM.querySelector", {"nodeId": root, "selector": selector}, self._session)
        if not node.get("nodeId"):
            raise DevToolsError(f"no element matches {selector}")
        self._browser.send(
            "DOM.setFileInputFiles",
            {"files": [str(p) for p in paths], "nodeId": node["nodeId"]},
            self._session,
        )


def _pipe() -> tuple[int, int]:
    """A pipe whose ends sit above fd 10, so dup2 onto 3 and 4 never meets itself."""
    read_end, write_end = os.pipe()
    high = (
        fcntl.fcntl(read_end, fcntl.F_DUPFD_CLOEXEC, 10),
        fcntl.fcntl(write_end, fcntl.F_DUPFD_CLOEXEC, 10),
    )
    os.close(read_end)
    os.close(write_end)
    return high

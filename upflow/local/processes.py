"""Child processes of the local stack: moto server, ``chalice local``, the pumps.

Each child runs in its own process group and session, so a terminal's Ctrl-C
reaches only the supervisor (``upflow dev``), which stops them all. Each child
also dies with its supervisor, however it ends (``PR_SET_PDEATHSIG``): even a
supervisor killed by SIGKILL, which runs no clean-up, leaves nothing behind.
The children's output goes through the supervisor: every line is appended to
the child's log file and, for ``upflow dev``, printed with the child's name.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from upflow.build import API_DIR, remove_staged_vendor

# moto takes any credentials; SeaweedFS (the local S3) knows this one identity,
# and refuses a session token it did not issue, so there is none.
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# Variables of the caller's environment that would redirect or re-credential the
# local stack's boto3 clients.
_FOREIGN_AWS_VARIABLES = (
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL_S3",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)
# How long stopping waits for children to exit on SIGTERM before it kills them: a pump
# finishing its batch may take longer, and its work is idempotent.
STOP_GRACE_SECONDS = 3.0
# Longest piece of a child's output relayed as one line (a longer line arrives in pieces).
_MAX_LINE = 64 * 1024
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

# Called with (child name, one line of its output, newline included).
LineSink = Callable[[str, bytes], None]


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


# Resolved once, before any fork: the child then calls a ready function pointer.
_PRCTL = _load_prctl()


def die_with_parent(signum: int = signal.SIGKILL) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child receive ``signum`` when its parent dies.

    Linux sends it when the *thread* that forked the child ends, so children are
    started from threads that live as long as the stack (the caller's, the
    supervisor's). The parent may die between fork and prctl: then the child
    already has another parent, and ends itself.
    """
    parent = os.getpid()

    def arrange() -> None:
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return arrange


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _bin(name: str) -> str:
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


class Child:
    """A subprocess in its own session, stopped with its whole group, dying with its parent.

    With a ``log_path`` or a ``sink``, its stdout and stderr come through a pipe: a
    thread appends every line to the log file and hands it to ``sink`` (and to
    ``watch``, which the stack uses to follow what a pump is doing).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path | None = None,
        log_path: Path | None = None,
        sink: LineSink | None = None,
        watch: Callable[[bytes], None] | None = None,
    ) -> None:
        self.name = name
        self.argv = tuple(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.log_path = log_path
        self.sink = sink
        self.watch = watch
        self._log: IO[bytes] | None = open(log_path, "ab") if log_path else None  # noqa: SIM115 - closed in close()
        relayed = self._log is not None or sink is not None
        self.process = subprocess.Popen(
            list(argv),
            # Unbuffered, so a line is relayed when it is written, and a process killed
            # with SIGKILL has lost none of what it said.
            env={**self.env, "PYTHONUNBUFFERED": "1"} if relayed else self.env,
            cwd=str(cwd) if cwd else None,
            stdout=subprocess.PIPE if relayed else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if relayed else subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            # Not thread-safe in general; here only prctl and getppid run before exec.
            preexec_fn=die_with_parent(),
        )
        self.pid = self.process.pid
        self.closed = False  # reaped and done with: its group id is no longer ours to signal
        self._relay: threading.Thread | None = None
        if relayed:
            self._relay = threading.Thread(target=self._relay_lines, name=f"relay {name}", daemon=True)
            self._relay.start()

    def _relay_lines(self) -> None:
        pipe = self.process.stdout
        assert pipe is not None
        with contextlib.suppress(ValueError, OSError):  # the pipe closed under us at close()
            for line in iter(lambda: pipe.readline(_MAX_LINE), b""):
                if self._log is not None:
                    with contextlib.suppress(ValueError, OSError):  # a full disk must not stop the relay
                        self._log.write(line)
                        self._log.flush()
                if self.watch is not None:
                    self.watch(line)
                if self.sink is not None:
                    self.sink(self.name, line if line.endswith(b"\n") else line + b"\n")

    def respawn(self, env: Mapping[str, str] | None = None) -> Child:
        """A fresh process of the same command (with ``env`` instead, when given)."""
        return Child(
            self.name,
            self.argv,
            self.env if env is None else env,
            cwd=self.cwd,
            log_path=self.log_path,
            sink=self.sink,
            watch=self.watch,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal_group(self, signum: int) -> None:
        """``signum`` to the child's process group: the child and whatever it started."""
        if self.closed:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def close(self) -> None:
        """Reap the child and finish relaying its output (call once it has exited)."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(1.0)
        if self._relay is not None:
            self._relay.join(1.0)
        # A pipe still being read (something the child started holds its other end) is left
        # to its relay thread, which ends with it: closing it under a reader could block.
        if self.process.stdout is not None and not (self._relay and self._relay.is_alive()):
            with contextlib.suppress(OSError):
                self.process.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        self.closed = True

    def stop(self, timeout: float = STOP_GRACE_SECONDS) -> None:
        stop_children([self], timeout)


def stop_children(children: Sequence[Child], grace: float = STOP_GRACE_SECONDS) -> None:
    """Stop every child at once: SIGTERM to every group, SIGKILL to what is left after ``grace``.

    One at a time, a stack of eight children took up to 80 s, and a supervisor killed
    meanwhile left the rest running; all at once it takes at most ``grace`` seconds.
    """
    for child in children:
        if child.alive():
            child.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(max(0.0, deadline - time.monotonic()))
    for child in children:
        # The leader may be gone and something it started still in its group.
        child.signal_group(signal.SIGKILL)
    for child in children:
        child.close()


def exit_reason(returncode: int | None) -> str:
    """How a child ended, in words: "exit code 1", "signal SIGKILL"."""
    if returncode is None:
        return "running"
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


def wait_http(url: str, child: Child, timeout: float = 60.0) -> None:
    """Poll ``url`` until it answers (any HTTP status) or the child dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(
                f"{child.name} ended ({exit_reason(child.process.returncode)}) before answering {url}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise TimeoutError(f"{child.name} did not answer {url} within {timeout:.0f}s")


def _wait_or_stop(url: str, child: Child) -> None:
    try:
        wait_http(url, child)
    except BaseException:
        child.stop()
        raise


def start_moto(
    host: str, port: int, log_path: Path | None = None, sink: LineSink | None = None
) -> tuple[Child, str]:
    env = {**os.environ, **LOCAL_CREDENTIALS}
    child = Child(
        "moto",
        [sys.executable, "-m", "upflow.local.motoserver", "-H", host, "-p", str(port)],
        env,
        log_path=log_path,
        sink=sink,
    )
    endpoint = f"http://{host}:{port}"
    _wait_or_stop(f"{endpoint}/moto-api/", child)
    return child, endpoint


def aws_env(endpoint: str, s3_endpoint: str | None = None) -> dict[str, str]:
    """The variables that point boto3 at the local AWS: credentials, and the endpoints.

    ``AWS_ENDPOINT_URL`` serves every service; ``AWS_ENDPOINT_URL_S3``, which
    botocore prefers for S3, sends S3 (and the URLs presigned for it) to
    ``s3_endpoint`` when S3 lives elsewhere (SeaweedFS).
    """
    env = {**LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}
    if s3_endpoint and s3_endpoint != endpoint:
        env["AWS_ENDPOINT_URL_S3"] = s3_endpoint
    return env


def stack_env(endpoint: str, app_env: Mapping[str, str], s3_endpoint: str | None = None) -> dict[str, str]:
    """Environment for every process that talks to the local AWS."""
    inherited = {name: value for name, value in os.environ.items() if name not in _FOREIGN_AWS_VARIABLES}
    return {**inherited, **aws_env(endpoint, s3_endpoint), **app_env}


def start_chalice_local(
    host: str, port: int, env: Mapping[str, str], log_path: Path | None = None, sink: LineSink | None = None
) -> tuple[Child, str]:
    # A build interrupted before its clean-up leaves api/vendor behind; chalice local
    # would then serve that copy of upflow instead of the working tree.
    if remove_staged_vendor(API_DIR):
        print(f"upflow: removed {API_DIR / 'vendor'} left by an interrupted build", file=sys.stderr)
    child = Child(
        "chalice local",
        [_bin("chalice"), "local", "--host", host, "--port", str(port), "--no-autoreload", "--stage", "dev"],
        env,
        cwd=API_DIR,
        log_path=log_path,
        sink=sink,
    )
    url = f"http://{host}:{port}"
    _wait_or_stop(f"{url}/health", child)
    return child, url

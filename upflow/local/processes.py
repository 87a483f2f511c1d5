"""Child processes of the local stack: moto server and ``chalice local``.

Each child runs in its own process group so stopping the stack (Ctrl-C,
SIGTERM, or a test session ending) leaves nothing behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from upflow.build import API_DIR, remove_staged_vendor

LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _bin(name: str) -> str:
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


class Child:
    """A subprocess in its own session, stopped with its whole group."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.name = name
        self._log = open(log_path, "ab") if log_path else None  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=str(cwd) if cwd else None,
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
        if self._log:
            self._log.close()
            self._log = None


def wait_http(url: str, child: Child, timeout: float = 60.0) -> None:
    """Poll ``url`` until it answers (any HTTP status) or the child dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(
                f"{child.name} exited with code {child.process.returncode} before answering {url}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise TimeoutError(f"{child.name} did not answer {url} within {timeout:.0f}s")


def start_moto(host: str, port: int, log_path: Path | None = None) -> tuple[Child, str]:
    env = {**os.environ, **LOCAL_CREDENTIALS}
    child = Child(
        "moto",
        [sys.executable, "-m", "upflow.local.motoserver", "-H", host, "-p", str(port)],
        env,
        log_path=log_path,
    )
    endpoint = f"http://{host}:{port}"
    wait_http(f"{endpoint}/moto-api/", child)
    return child, endpoint


def stack_env(endpoint: str, app_env: Mapping[str, str]) -> dict[str, str]:
    """Environment for every process that talks to the local AWS."""
    return {**os.environ, **LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, **app_env}


def start_chalice_local(
    host: str, port: int, env: Mapping[str, str], log_path: Path | None = None
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
    )
    url = f"http://{host}:{port}"
    wait_http(f"{url}/health", child)
    return child, url

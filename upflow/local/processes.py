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
            stdin=subprocess.DEVNULL,
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

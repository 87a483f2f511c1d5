"""Upload throughput: upflow's uploader vs boto3 ``upload_file``, same file, same S3.

    .venv/bin/python bench/upload.py                 # starts a throwaway SeaweedFS
    .venv/bin/python bench/upload.py --endpoint http://127.0.0.1:9000 --bucket b \\
        --access-key K --secret-key S                # any S3-compatible server

Generates a random file (512 MiB by default; not timed), then uploads it

* through the CLI's path: ``upflow.client.uploader.PartUploader`` (threads, CRC32 per
  part, signed URLs, plain HTTP PUTs) with URLs presigned in-process by
  ``upflow.aws.s3.S3Store.presign_part``, the signer the API uses. The HTTP API
  and DynamoDB are left out (``StoreApi`` below stands in for them), so sign
  calls cost microseconds here instead of a round trip to the API;
* with boto3 ``upload_file`` and the default ``TransferConfig`` (8 MiB parts,
  10 threads; boto3 also computes a CRC32 per part by default),

checks both objects byte for byte, and prints MiB/s of each and the ratio
upflow / boto3 (target ≥ 1.0). moto is not a useful target: its byte path is
slow and single-threaded, so it would measure moto.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from upflow.aws.s3 import S3Store, UploadedPart  # noqa: E402
from upflow.client.api import (  # noqa: E402
    Completed,
    Initiated,
    ListedPart,
    RequestsTransport,
    SignedPart,
    UploadStatus,
    signed_put_headers,
)
from upflow.client.progress import Progress  # noqa: E402
from upflow.client.uploader import PartUploader, UploadOptions, plan_from  # noqa: E402
from upflow.core.partsize import plan_parts  # noqa: E402
from upflow.definition import Limits, MiB  # noqa: E402


class StoreApi:
    """The upload API's S3 half, in-process: plan, create MPU, sign, list, complete."""

    def __init__(self, store: S3Store, limits: Limits) -> None:
        self.store = store
        self.limits = limits
        self.keys: dict[str, str] = {}
        self.sign_calls = 0

    def initiate(self, filename: str, size: int, content_type: str | None = "text/csv") -> Initiated:
        plan = plan_parts(size, self.limits)
        key = f"bench/{uuid.uuid4().hex}/{filename}"
        mpu_id = self.store.create_multipart_upload(key, content_type or "text/csv", checksum=True)
        self.keys[mpu_id] = key
        return Initiated(mpu_id, key, plan.part_size, plan.part_count, "", "")

    def status(self, upload_id: str, token: str) -> UploadStatus:
        raise NotImplementedError

    def sign_parts(
        self,
        upload_id: str,
        token: str,
        part_numbers: Sequence[int],
        checksums: Mapping[int, str] | None = None,
    ) -> dict[int, SignedPart]:
        self.sign_calls += 1
        expires = self.limits.url_expiry_seconds
        signed: dict[int, SignedPart] = {}
        for number in part_numbers:
            checksum = (checksums or {}).get(number)
            part = self.store.presign_part(self.keys[upload_id], upload_id, number, expires, checksum)
            headers = signed_put_headers(part.url, checksum, part.headers)
            signed[number] = SignedPart(number, part.url, headers, time.time() + expires)
        return signed

    def list_parts(self, upload_id: str, token: str) -> list[ListedPart]:
        return [
            ListedPart(p.part_number, p.size, p.etag, p.checksum_crc32)
            for p in self.store.list_parts(self.keys[upload_id], upload_id)
        ]

    def complete(
        self,
        upload_id: str,
        token: str,
        parts: Mapping[int, str] | None = None,
        checksums: Mapping[int, str] | None = None,
    ) -> Completed:
        key = self.keys[upload_id]
        assert parts is not None
        ordered = [UploadedPart(n, 0, etag, (checksums or {}).get(n)) for n, etag in sorted(parts.items())]
        etag = self.store.complete_multipart_upload(key, upload_id, ordered)
        return Completed(upload_id, "uploaded", key, 0, etag)


@dataclass(frozen=True)
class Target:
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    region: str

    def client(self) -> Any:
        """An S3 client as the API builds it (SigV4), pointed at ``endpoint``."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(signature_version="s3v4", max_pool_connections=32),
        )


@contextmanager
def target_from(args: argparse.Namespace) -> Iterator[Target]:
    if args.endpoint:
        target = Target(
            args.endpoint,
            args.bucket,
            args.access_key or os.environ.get("AWS_ACCESS_KEY_ID", ""),
            args.secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
            args.region,
        )
        client = target.client()
        try:
            client.head_bucket(Bucket=target.bucket)
        except Exception:
            client.create_bucket(Bucket=target.bucket)
        yield target
        return
    from upflow.testing.seaweed import running_seaweed

    with running_seaweed([args.bucket]) as server:
        print(f"SeaweedFS S3 at {server.endpoint} (weed mini, temp dir)", flush=True)
        yield Target(server.endpoint, args.bucket, server.access_key, server.secret_key, server.region)


def make_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        remaining = size
        while remaining:
            block = os.urandom(min(remaining, 8 * MiB))
            out.write(block)
            digest.update(block)
            remaining -= len(block)
    return digest.hexdigest()


def object_sha256(client: Any, bucket: str, key: str) -> str:
    digest = hashlib.sha256()
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    for piece in iter(lambda: body.read(8 * MiB), b""):
        digest.update(piece)
    return digest.hexdigest()


def run_upflow(target: Target, path: Path, concurrency: int) -> tuple[float, str, int]:
    client = target.client()
    api = StoreApi(S3Store(client, target.bucket), Limits())
    size = path.stat().st_size
    transport = RequestsTransport(max_connections=concurrency + 4)
    started = time.perf_counter()
    initiated = api.initiate(path.name, size)
    plan = plan_from(size, initiated.part_size, initiated.part_count)
    uploader = PartUploader(
        api,
        transport,
        initiated.upload_id,
        "",
        plan,
        path,
        UploadOptions(concurrency=concurrency),
        Progress(size, io.StringIO(), tty=False, enabled=False),
    )
    etags = uploader.run(list(range(1, plan.part_count + 1)))
    api.complete(initiated.upload_id, "", etags, uploader.stats.checksums)
    elapsed = time.perf_counter() - started
    transport.close()
    return elapsed, initiated.key, api.sign_calls


def run_boto3(target: Target, path: Path) -> tuple[float, str]:
    from boto3.s3.transfer import TransferConfig

    client = target.client()
    key = f"bench/{uuid.uuid4().hex}/boto3-{path.name}"
    started = time.perf_counter()
    client.upload_file(str(path), target.bucket, key, Config=TransferConfig())
    return time.perf_counter() - started, key


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--concurrency", type=int, default=8, help="upflow's threads (the CLI default: 8)")
    parser.add_argument("--endpoint", help="S3-compatible endpoint (default: start SeaweedFS)")
    parser.add_argument("--bucket", default="upflow-bench")
    parser.add_argument("--access-key")
    parser.add_argument("--secret-key")
    parser.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    parser.add_argument("--repeat", type=int, default=1, help="alternate the two uploads this many times")
    args = parser.parse_args(argv)

    size = args.size_mib * MiB
    with tempfile.TemporaryDirectory(prefix="upflow-bench-") as tmp:
        path = Path(tmp) / "bench.csv"
        print(f"generating {args.size_mib} MiB …", flush=True)
        expected = make_file(path, size)
        with target_from(args) as target:
            client = target.client()
            ours: list[float] = []
            theirs: list[float] = []
            for round_number in range(1, args.repeat + 1):
                elapsed, key, sign_calls = run_upflow(target, path, args.concurrency)
                assert object_sha256(client, target.bucket, key) == expected, "upflow object differs"
                ours.append(elapsed)
                print(
                    f"[{round_number}] upflow uploader: {size / MiB / elapsed:8.1f} MiB/s "
                    f"({elapsed:.2f} s, concurrency {args.concurrency}, {sign_calls} sign calls)",
                    flush=True,
                )
                elapsed, key = run_boto3(target, path)
                assert object_sha256(client, target.bucket, key) == expected, "boto3 object differs"
                theirs.append(elapsed)
                print(
                    f"[{round_number}] boto3 upload_file: {size / MiB / elapsed:8.1f} MiB/s ({elapsed:.2f} s)"
                )
            best_ours, best_theirs = min(ours), min(theirs)
            ratio = best_theirs / best_ours
            print(
                f"upflow {size / MiB / best_ours:.1f} MiB/s, boto3 {size / MiB / best_theirs:.1f} MiB/s, "
                f"ratio {ratio:.2f} (target ≥ 1.0; best of {args.repeat})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

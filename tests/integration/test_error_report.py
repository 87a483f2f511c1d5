"""The error report is streamed to S3 in parts, on the real local stack.

* A chunk worker whose every row is invalid stays within 256 MiB: the worker's own map step
  (``processor.worker.map_chunk``) runs in a fresh process against the stack's S3 and reports
  its peak RSS (VmHWM); its error file, far larger than what the process grew by, is a
  multipart object holding every error at its line.
* ``ObjectWriter`` cuts the same parts whatever the write sizes (a redelivery writes the same
  object), and leaves nothing behind — no object, no multipart upload — when it fails.
* An all-invalid upload through the whole pipeline ends with a multipart report holding every
  error row at its physical line, BOM first and formula cells neutralised.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from support import Api

from processor.model import chunk_errors_key, partial_key, report_key
from upflow.aws.clients import REQUEST_LOG_ENV
from upflow.core.report import REPORT_HEADER, iter_chunk_errors
from upflow.definition import MiB, runtime_config_from_env
from upflow.local.stack import LocalStack
from upflow.server.wiring import Services, build_services

REPO = Path(__file__).resolve().parents[2]
HEADER = b"documento;nome;valor;data\n"
# A hostile shape: 16 bytes a row, two errors each (invalid document, invalid amount).
SHORT_ROW = b"1;abcdefghi;x;d\n"
BOUND_MIB = 256


@pytest.fixture(scope="module")
def services(stack: LocalStack, aws_env: dict[str, str]) -> Services:
    return build_services(runtime_config_from_env(aws_env))


def _parts_of(etag: str) -> int:
    """Parts of an object by its ETag: ``"<md5 of the parts' md5s>-N"`` after a multipart upload."""
    value = etag.strip('"')
    return int(value.rsplit("-", 1)[1]) if "-" in value else 1


def _multipart_uploads(s3: Any, bucket: str, key: str) -> list[Any]:
    return list(s3.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads", []))


# The worker's map step in a fresh interpreter; VmHWM is this process image's peak RSS.
_MEASURED_MAP = """
import json, sys, time
def kib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field))
from processor.worker import map_chunk
from upflow.core.detect import detect_format
from upflow.definition import runtime_config_from_env
from upflow.server.wiring import build_services
key, size, upload_id = sys.argv[1], int(sys.argv[2]), sys.argv[3]
services = build_services(runtime_config_from_env())
limits = services.config.limits
fmt = detect_format(services.store.read_range(key, 0, limits.sniff_bytes), False, limits)
baseline = kib("VmRSS:")  # interpreter, boto3, the handler's modules, clients that have talked to S3
started = time.perf_counter()
upload = {"key": key, "object_size": size, "format": fmt.to_json()}
result, partial, errors_size = map_chunk(services, upload_id, upload, {"index": 0, "start": 0, "end": size})
print(json.dumps({
    "baseline_kib": baseline,
    "peak_kib": kib("VmHWM:"),
    "seconds": round(time.perf_counter() - started, 1),
    "rows_invalid": result.region.rows_invalid,
    "error_count": result.region.error_count,
    "errors_size": errors_size,
}))
"""


def test_a_chunk_whose_every_row_is_invalid_is_mapped_within_256_mib(
    stack: LocalStack, services: Services, s3: Any
) -> None:
    rows = (8 * MiB - len(HEADER)) // len(SHORT_ROW)
    payload = HEADER + SHORT_ROW * rows
    upload_id = f"rss-{uuid.uuid4().hex[:12]}"
    key = f"tests/{upload_id}.csv"  # not under uploads/: no pipeline runs on it
    bucket = stack.names.bucket
    s3.put_object(Bucket=bucket, Key=key, Body=payload)
    errors_key = chunk_errors_key(upload_id, 0)
    env = {name: value for name, value in stack.env.items() if name != REQUEST_LOG_ENV}
    try:
        run = subprocess.run(
            [sys.executable, "-c", _MEASURED_MAP, key, str(len(payload)), upload_id],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr
        measured = json.loads(run.stdout.strip().splitlines()[-1])
        peak, baseline = measured["peak_kib"] // 1024, measured["baseline_kib"] // 1024
        errors_mib = measured["errors_size"] // MiB
        print(f"\nmap of an all-invalid 8 MiB chunk: peak RSS {peak} MiB (baseline {baseline} MiB),")
        print(f"error file {errors_mib} MiB, {measured['error_count']} errors, {measured['seconds']} s")
        assert measured["rows_invalid"] == rows and measured["error_count"] == 2 * rows
        assert peak <= BOUND_MIB
        # Meaningful: the process grew by less than the error file it wrote, so it never held
        # it (nor its million errors as objects: with 8-byte rows, twice as many kept in
        # memory took this map to a 686 MiB peak before the errors were streamed).
        assert peak - baseline < errors_mib
        # Written in parts of report_part_size, every part but the last full.
        head = s3.head_object(Bucket=bucket, Key=errors_key)
        assert head["ContentLength"] == measured["errors_size"]
        part_size = services.config.limits.report_part_size
        assert _parts_of(head["ETag"]) == math.ceil(measured["errors_size"] / part_size) > 1
        assert _multipart_uploads(s3, bucket, errors_key) == []
        # Every error, in row order at its line offset: row k (line offset k) has two.
        count = 0
        with services.store.open_stream(errors_key) as stream:
            for errors in iter_chunk_errors(stream):
                for error in errors:
                    assert error.line_offset == count // 2 + 1  # the header is line offset 0
                    assert error.code == ("invalid_document", "invalid_amount")[count % 2]
                    count += 1
        assert count == 2 * rows
    finally:
        for leftover in (key, errors_key, partial_key(upload_id, 0)):
            s3.delete_object(Bucket=bucket, Key=leftover)


def test_an_object_writer_makes_the_same_parts_and_leaves_nothing_when_it_fails(
    stack: LocalStack, services: Services, s3: Any
) -> None:
    bucket = stack.names.bucket
    part_size = 5 * MiB  # S3's smallest
    content = random.Random(5).randbytes(2 * part_size + 123_456)
    key = f"tests/writer-{uuid.uuid4().hex[:12]}.bin"
    etags = []
    try:
        for seed in (1, 2):
            rng = random.Random(seed)
            with services.store.writer(key, part_size, "application/octet-stream") as out:
                at = 0
                while at < len(content):  # writes of any size: the parts do not depend on them
                    step = rng.randrange(1, 3 * MiB)
                    out.write(content[at : at + step])
                    at += step
                assert out.finish() == len(content)
                assert out.parts == 3
            etags.append(s3.head_object(Bucket=bucket, Key=key)["ETag"])
            assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == content
        assert etags[0] == etags[1] and _parts_of(etags[0]) == 3

        # A failure after two parts: the multipart upload is aborted, the object untouched.
        with pytest.raises(RuntimeError), services.store.writer(key, part_size) as out:
            out.write(b"x" * (2 * part_size + 1))
            assert out.parts == 2 and len(_multipart_uploads(s3, bucket, key)) == 1
            raise RuntimeError("the parse failed")
        assert _multipart_uploads(s3, bucket, key) == []
        assert s3.head_object(Bucket=bucket, Key=key)["ETag"] == etags[0]

        # Nothing finished, nothing written; a small object is one PutObject.
        other = key + ".small"
        with services.store.writer(other, part_size) as out:
            out.write(b"header\n")
        assert not services.store.exists(other)
        with services.store.writer(other, part_size) as out:
            out.write(b"header\n")
            out.finish()
        assert _parts_of(s3.head_object(Bucket=bucket, Key=other)["ETag"]) == 1
        s3.delete_object(Bucket=bucket, Key=other)
    finally:
        s3.delete_object(Bucket=bucket, Key=key)


def test_an_all_invalid_upload_reports_every_row_in_a_multipart_report(
    api: Api, stack: LocalStack, s3: Any
) -> None:
    # ~130,000 rows, two errors each: the chunk's error file and the report (~15 MiB each)
    # both go to S3 in two parts. One row carries formulas the report must neutralise.
    rows = (2 * MiB) // len(SHORT_ROW)
    formula = b'=HYPERLINK("http://x");b;@SUM(1);d\n'
    payload = HEADER + formula + SHORT_ROW * rows
    created = api.upload_bytes(payload, filename="invalido.csv")
    upload_id, token = created["upload_id"], created["token"]
    final = api.wait_final(upload_id, token, timeout=300)
    assert final["status"] == "completed_with_errors", final
    assert final["summary"]["rows_invalid"] == rows + 1
    assert final["summary"]["errors"] == {"invalid_document": rows + 1, "invalid_amount": rows + 1}
    assert [(e["line"], e["code"]) for e in final["first_errors"][:4]] == [
        (2, "invalid_document"),
        (2, "invalid_amount"),
        (3, "invalid_document"),
        (3, "invalid_amount"),
    ]
    head = s3.head_object(Bucket=stack.names.bucket, Key=report_key(upload_id))
    assert _parts_of(head["ETag"]) >= 2
    status, link = api.call("GET", f"/uploads/{upload_id}/errors", token)
    assert status == 200, link
    response = requests.get(link["url"], timeout=60)
    assert response.status_code == 200
    assert response.content.startswith(b"\xef\xbb\xbf"), "the report starts with a BOM for spreadsheets"
    reader = csv.reader(io.StringIO(response.content.decode("utf-8-sig"), newline=""))
    assert tuple(next(reader)) == REPORT_HEADER
    first = next(reader), next(reader)
    assert first[0][4] == '\'=HYPERLINK("http://x")' and first[1][4] == "'@SUM(1)"
    count = 0
    for k, row in enumerate(reader):
        assert int(row[0]) == k // 2 + 3
        assert row[2] == ("invalid_document", "invalid_amount")[k % 2]
        count += 1
    assert count == 2 * rows

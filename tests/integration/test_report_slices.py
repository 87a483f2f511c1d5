"""A report too large for one finaliser is rewritten in slices by the reduce tasks and joined by S3.

A stack of its own with 1 MiB chunks and 5 MiB report slices (S3's smallest copied part): a
file of a few valid rows and ~4 MiB of invalid ones makes ~7 MiB of errors a chunk, so every
chunk's errors close a slice. The report must be byte for byte the one ``upflow check
--report`` writes offline, made of one copied part per slice; totals and summary as offline.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from csvgen import generate
from support import Api

from processor.model import report_slice_key
from upflow.core.checker import check_file
from upflow.core.report import ReportWriter
from upflow.definition import RESULTS_PREFIX, Limits, MiB
from upflow.local.processes import free_port
from upflow.local.stack import LocalStack, start_stack

CHUNK_SIZE = 1 * MiB
SLICE_BYTES = 5 * MiB
INVALID_ROW = b"1;abcdefghi;x;d\n"  # an invalid document and an invalid amount


@pytest.fixture(scope="module")
def slicing_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack = start_stack(
        moto_port=free_port(),
        api_port=free_port(),
        web_port=None,
        chunk_workers=2,
        stack_name="slices",
        extra_env={
            "UPFLOW_CHUNK_SIZE": str(CHUNK_SIZE),
            "UPFLOW_REPORT_SLICE_BYTES": str(SLICE_BYTES),
            "UPFLOW_RETRY_BACKOFF_SECONDS": "1",
        },
        log_dir=tmp_path_factory.mktemp("slices-logs"),
        serve_page=False,
        s3_dir=tmp_path_factory.mktemp("slices-s3"),
    )
    try:
        yield stack
    finally:
        stack.stop()


def test_a_large_report_is_rewritten_in_slices_and_joined_exactly(
    slicing_stack: LocalStack, tmp_path: Path
) -> None:
    valid, _ = generate(300 * 1024, seed=71, error_rate=0.02, documents=200)
    payload = valid + INVALID_ROW * ((4 * MiB) // len(INVALID_ROW))
    path = tmp_path / "muitos-erros.csv"
    path.write_bytes(payload)
    offline = io.BytesIO()
    expected = check_file(path, CHUNK_SIZE, Limits(), report=ReportWriter(offline))

    api = Api(slicing_stack.api_url)
    created = api.upload_bytes(payload, filename=path.name)
    upload_id, token = created["upload_id"], created["token"]
    final = api.wait_final(upload_id, token, timeout=300)
    assert final["status"] == "completed_with_errors", final
    chunks, shards = final["chunks"]["total"], final["shards"]["total"]
    assert chunks == 5 and shards >= 3, (chunks, shards)  # ~7 MiB of errors a chunk: a slice each, about

    s3: Any = slicing_stack.boto3_client("s3")
    bucket = slicing_stack.names.bucket
    report = s3.get_object(Bucket=bucket, Key=final["report_key"])
    parts = re.fullmatch(r'"[0-9a-f]+-(\d+)"', report["ETag"])
    assert parts is not None and int(parts.group(1)) == shards, report["ETag"]  # one copied part a slice
    assert report["Body"].read() == offline.getvalue()
    for index in range(shards):  # the slices stay for the chunks' error files' lifetime
        assert s3.head_object(Bucket=bucket, Key=report_slice_key(upload_id, index))["ContentLength"] > 0

    want = expected.summary
    summary = final["summary"]
    assert (summary["rows_total"], summary["rows_valid"], summary["rows_invalid"]) == (
        want.rows_total,
        want.rows_valid,
        want.rows_invalid,
    )
    assert Decimal(summary["amount_valid"]) == want.amount_valid
    first = [(e["line"], e["code"]) for e in final["first_errors"]]
    lines = list(csv.reader(io.StringIO(offline.getvalue().decode("utf-8-sig"))))[1:]
    assert first == [(int(line[0]), line[2]) for line in lines[: len(first)]] and len(first) == 20
    totals = s3.get_object(Bucket=bucket, Key=f"{RESULTS_PREFIX}{upload_id}/totals.csv")["Body"].read()
    rows = list(csv.reader(io.StringIO(totals.decode("utf-8-sig"))))[1:]
    assert [(d, t, int(n), Decimal(a)) for d, t, n, a in rows] == [
        (t.document, t.doc_type, t.rows, t.amount) for t in expected.totals
    ]

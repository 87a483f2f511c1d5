"""Test helpers shared by the test modules (importable as ``support``)."""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

from upflow.definition import RESULTS_PREFIX, results_partition
from upflow.server.wiring import Services
from upflow.testing.documents import random_cnpj, random_cpf


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def wait_until(predicate: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(message)


class Api:
    """A thin HTTP helper for tests: JSON in, (status, JSON) out."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()

    def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        json_body: Any = None,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        response = self.http.request(
            method, self.base_url + path, json=json_body, data=data, headers=all_headers, timeout=60
        )
        try:
            body = response.json()
        except ValueError:
            body = response.text
        return response.status_code, body

    def upload_bytes(self, payload: bytes, filename: str = "data.csv") -> dict[str, Any]:
        """Initiate, sign, PUT every part with its CRC32, complete. Returns the initiate answer."""
        status, created = self.call(
            "POST", "/uploads", json_body={"filename": filename, "size": len(payload)}
        )
        assert status == 201, created
        part_size, count, token = created["part_size"], created["part_count"], created["token"]
        upload_id = created["upload_id"]
        completed: list[dict[str, Any]] = []
        for first in range(1, count + 1, 100):
            numbers = list(range(first, min(count, first + 99) + 1))
            pieces = {n: payload[(n - 1) * part_size : n * part_size] for n in numbers}
            checksums = {
                str(n): base64.b64encode(zlib.crc32(piece).to_bytes(4, "big")).decode()
                for n, piece in pieces.items()
            }
            status, signed = self.call(
                "POST",
                f"/uploads/{upload_id}/parts",
                token,
                {"part_numbers": numbers, "checksums": checksums},
            )
            assert status == 200, signed
            for n in numbers:
                put = self.http.put(
                    signed["urls"][str(n)], data=pieces[n], headers=signed["headers"][str(n)], timeout=120
                )
                assert put.status_code == 200, put.text
                completed.append(
                    {"part_number": n, "etag": put.headers["ETag"], "checksum_crc32": checksums[str(n)]}
                )
        # As the CLI and the page do: the local S3 (SeaweedFS) lists no part checksums,
        # and a CRC32 upload needs them all at complete.
        status, done = self.call("POST", f"/uploads/{upload_id}/complete", token, {"parts": completed})
        assert status == 200, done
        return dict(created)

    def wait_final(self, upload_id: str, token: str, timeout: float = 300.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            status, last = self.call("GET", f"/uploads/{upload_id}", token)
            assert status == 200, last
            if last["status"] in ("completed", "completed_with_errors", "failed"):
                return dict(last)
            time.sleep(0.5)
        raise AssertionError(f"upload {upload_id} did not finish: {last}")


@dataclass(frozen=True)
class Total:
    """One document's consolidated total, as a reducer writes it."""

    document: str
    doc_type: str
    rows: int
    amount: Decimal

    def as_api(self) -> dict[str, Any]:
        return {
            "document": self.document,
            "type": self.doc_type,
            "rows": self.rows,
            "amount": f"{self.amount:.2f}",
        }


def totals_csv(totals: Sequence[Total]) -> bytes:
    """The merged results CSV: UTF-8 with BOM, header ``document,type,rows,amount``, by document."""
    lines = ["document,type,rows,amount"]
    lines += [
        f"{t.document},{t.doc_type},{t.rows},{t.amount:.2f}" for t in sorted(totals, key=lambda t: t.document)
    ]
    return ("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8")


def write_results(
    dynamodb: Any,
    s3: Any,
    names: Any,
    upload_id: str,
    shards: Sequence[Sequence[Total]],
    status: str = "completed",
) -> bytes:
    """Write an upload's results as the reducers do (docs/design.md): one results item per
    document in its shard's partition, the merged CSV, and the upload item's result fields.
    ``shards[i]`` are shard i's documents (any order; an empty one is allowed). Answers the CSV."""
    everything = [total for shard in shards for total in shard]
    requests_: list[Any] = [
        {
            "PutRequest": {
                "Item": {
                    "pk": {"S": results_partition(upload_id, index)},
                    "document": {"S": t.document},
                    "doc_type": {"S": t.doc_type},
                    "rows": {"N": str(t.rows)},
                    "amount": {"N": f"{t.amount:.2f}"},
                }
            }
        }
        for index, shard in enumerate(shards)
        for t in shard
    ]
    for start in range(0, len(requests_), 25):
        pending: dict[str, Any] = {names.results_table: requests_[start : start + 25]}
        while pending:
            pending = dict(dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {})
    csv = totals_csv(everything)
    key = f"{RESULTS_PREFIX}{upload_id}/totals.csv"
    s3.put_object(Bucket=names.bucket, Key=key, Body=csv, ContentType="text/csv; charset=utf-8")
    top = sorted(everything, key=lambda t: (-t.amount, t.document))[:10]
    dynamodb.update_item(
        TableName=names.status_table,
        Key={"pk": {"S": f"UPLOAD#{upload_id}"}, "sk": {"S": "META"}},
        UpdateExpression=(
            "SET #s = :s, shard_total = :n, documents_total = :d, results_key = :k, top_documents = :t"
        ),
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={
            ":s": {"S": status},
            ":n": {"N": str(len(shards))},
            ":d": {"N": str(len(everything))},
            ":k": {"S": key},
            ":t": {
                "L": [
                    {
                        "M": {
                            "document": {"S": t.document},
                            "doc_type": {"S": t.doc_type},
                            "rows": {"N": str(t.rows)},
                            "amount": {"N": f"{t.amount:.2f}"},
                        }
                    }
                    for t in top
                ]
            },
        },
    )
    return csv


def random_totals(seed: int, count: int) -> list[Total]:
    """``count`` distinct documents (CPF, CNPJ, alphanumeric CNPJ) with random totals."""
    rng = random.Random(seed)
    documents: set[str] = set()
    while len(documents) < count:
        kind = rng.randrange(3)
        documents.add(random_cpf(rng) if kind == 0 else random_cnpj(rng, alnum=kind == 2))
    return [
        Total(
            document=document,
            doc_type="cpf" if len(document) == 11 else "cnpj",
            rows=rng.randrange(1, 500),
            amount=Decimal(rng.randrange(-10_000, 10**9)) / 100,
        )
        for document in sorted(documents)
    ]


def in_shards(
    totals: Sequence[Total], shard_total: int, empty: frozenset[int] = frozenset()
) -> list[list[Total]]:
    """Spread ``totals`` over ``shard_total`` shards (those in ``empty`` get none), shuffled."""
    rng = random.Random(len(totals))
    used = [index for index in range(shard_total) if index not in empty]
    shards: list[list[Total]] = [[] for _ in range(shard_total)]
    for total in totals:
        shards[rng.choice(used)].append(total)
    for shard in shards:
        rng.shuffle(shard)  # the table sorts them; the order written must not matter
    return shards


def expected_order(shards: Sequence[Sequence[Total]]) -> list[dict[str, Any]]:
    """Shard by shard, by document inside each: the order the results API pages in."""
    return [total.as_api() for shard in shards for total in sorted(shard, key=lambda t: t.document)]


def _cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPFLOW_")}
    env.update({"UPFLOW_HOME": str(home), "PYTHONUNBUFFERED": "1"})
    return env


def run_cli(args: list[str], home: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The ``upflow`` command in a subprocess, with its own home (journal) and no UPFLOW_* leaking in."""
    return subprocess.run(
        [sys.executable, "-m", "upflow.client.cli", *args],
        env=_cli_env(home),
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(args: list[str], home: Path) -> subprocess.Popen[str]:
    """``run_cli`` started, not waited for: its stdout a pipe read line by line (stderr too)."""
    return subprocess.Popen(
        [sys.executable, "-m", "upflow.client.cli", *args],
        env=_cli_env(home),
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def take_chunk_message(services: Services, upload_id: str) -> dict[str, Any]:
    """Receive (and delete) the upload's chunk message, as a worker that then dies would."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for message in services.chunks.receive(10, 1):
            services.chunks.delete([message["ReceiptHandle"]])
            body = json.loads(message["Body"])
            if body.get("upload_id") == upload_id:
                return dict(body)
    raise AssertionError("the chunk message never arrived")

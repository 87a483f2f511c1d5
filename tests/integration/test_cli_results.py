"""``upflow results`` against the local stack, and ``upflow check`` printing the totals offline.

The upload is created through the API and never completed (the pipeline leaves it
alone); its results are written as the reducers write them (``support.write_results``).
The CLI runs as a subprocess, finding the upload's token in its journal like after
``upflow upload``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from csvgen import generate
from support import Api, Total, expected_order, in_shards, random_totals, run_cli, write_results

from upflow.client.journal import Journal
from upflow.definition import KiB, MiB
from upflow.local.stack import LocalStack


def new_upload(api: Api, filename: str = "data.csv") -> dict[str, Any]:
    status, body = api.call("POST", "/uploads", json_body={"filename": filename, "size": 20 * MiB})
    assert status == 201, body
    return dict(body)


def cli(args: list[str], home: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run_cli(args, home, timeout)


@pytest.fixture(scope="module")
def processed(stack: LocalStack, api: Api, dynamodb: Any, s3: Any) -> dict[str, Any]:
    """An upload with 1,234 documents over 3 shards: the CLI reads them in two pages of 1,000."""
    created = new_upload(api, filename="pagamentos.csv")
    shards = in_shards(random_totals(seed=11, count=1234), 3)
    csv = write_results(dynamodb, s3, stack.names, created["upload_id"], shards)
    return {**created, "shards": shards, "csv": csv}


@pytest.fixture
def home(tmp_path: Path, api_url: str, processed: dict[str, Any]) -> Path:
    """A CLI home whose journal holds the upload's token (as ``upflow upload`` leaves it)."""
    home = tmp_path / "home"
    Journal(home).remember_token(processed["upload_id"], processed["token"], api_url)
    return home


def test_json_is_one_object_with_every_document_in_order(
    api_url: str, home: Path, processed: dict[str, Any]
) -> None:
    done = cli(["results", processed["upload_id"], "--api", api_url, "--json"], home)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer == {"upload_id": processed["upload_id"], "documents": expected_order(processed["shards"])}
    assert len(answer["documents"]) == 1234
    assert "1234 of 1234 documents" in done.stderr


def test_the_table_lists_every_document(api_url: str, home: Path, processed: dict[str, Any]) -> None:
    done = cli(["results", processed["upload_id"], "--api", api_url], home)
    assert done.returncode == 0, done.stderr
    header, *lines = done.stdout.splitlines()
    assert header.split() == ["document", "type", "rows", "amount"]
    rows = [line.split() for line in lines]
    assert rows == [
        [d["document"], d["type"], str(d["rows"]), d["amount"]] for d in expected_order(processed["shards"])
    ]


def test_o_downloads_the_csv(api_url: str, home: Path, processed: dict[str, Any], tmp_path: Path) -> None:
    dest = tmp_path / "totals.csv"
    done = cli(["results", processed["upload_id"], "--api", api_url, "-o", str(dest)], home)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(dest)
    assert dest.read_bytes() == processed["csv"]
    assert not dest.with_name("totals.csv.part").exists()
    text = dest.read_text(encoding="utf-8-sig").splitlines()
    assert text[0] == "document,type,rows,amount" and len(text) == 1 + 1234


def test_token_from_the_flag_and_clear_refusals(
    api_url: str, api: Api, processed: dict[str, Any], tmp_path: Path
) -> None:
    empty = tmp_path / "empty-home"
    upload_id = processed["upload_id"]
    refused = cli(["results", upload_id, "--api", api_url, "--json"], empty)
    assert refused.returncode == 1 and "--token" in refused.stderr and not refused.stdout

    done = cli(["results", upload_id, "--api", api_url, "--json", "--token", processed["token"]], empty)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["documents"]) == 1234

    pending = new_upload(api)
    refused = cli(["results", pending["upload_id"], "--api", api_url, "--token", pending["token"]], empty)
    assert refused.returncode == 1 and not refused.stdout
    assert f"upload {pending['upload_id']} has no results yet" in refused.stderr
    assert "uploading" in refused.stderr and "upflow status" in refused.stderr

    both = cli(["results", upload_id, "-o", str(tmp_path / "x.csv"), "--json"], empty)
    assert both.returncode == 2 and "not allowed with" in both.stderr


def test_check_prints_the_totals_per_document_offline(tmp_path: Path) -> None:
    payload, expected = generate(200 * KiB, seed=5, error_rate=0.05, documents=120)
    path = tmp_path / "pagamentos.csv"
    path.write_bytes(payload)
    documents = [
        Total(document, doc_type, rows, amount).as_api()
        for document, (doc_type, rows, amount) in sorted(expected.totals.items())
    ]
    assert 50 < len(documents) <= 120

    # Small chunks: a document's rows are summed across chunks, as the reducers do.
    done = cli(["check", str(path), "--json", "--chunk-size", str(16 * KiB)], tmp_path)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["documents"] == documents
    assert {k: answer[k] for k in expected.summary()} == expected.summary()

    text = cli(["check", str(path)], tmp_path)
    assert text.returncode == 0, text.stderr
    summary, _, table = text.stdout.partition("\n\n")
    assert f"rows_valid:   {expected.rows_valid}" in summary
    count, header, *lines = table.splitlines()
    assert count == f"documents:    {len(documents)}"
    assert header.split() == ["document", "type", "rows", "amount"]
    assert [line.split() for line in lines] == [
        [d["document"], d["type"], str(d["rows"]), d["amount"]] for d in documents
    ]

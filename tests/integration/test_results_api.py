"""``GET /uploads/{id}/results`` over HTTP (`chalice local`) against the moto server.

Each test creates its upload through the API and never completes it, so the pipeline
leaves it alone; the results are written straight into moto's tables and bucket as
the reducers write them (``support.write_results``, after docs/design.md), and the
API is asked for them as a client would.
"""

from __future__ import annotations

import base64
import json
import time
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest
import requests
from support import Api, expected_order, in_shards, random_totals, write_results

from upflow.core import tokens
from upflow.definition import MiB
from upflow.local.stack import LocalStack


def new_upload(api: Api, filename: str = "data.csv") -> dict[str, Any]:
    status, body = api.call("POST", "/uploads", json_body={"filename": filename, "size": 20 * MiB})
    assert status == 201, body
    return dict(body)


def page(api: Api, upload_id: str, token: str | None, **query: Any) -> tuple[int, Any]:
    params = "&".join(f"{name}={quote(str(value), safe='')}" for name, value in query.items())
    return api.call("GET", f"/uploads/{upload_id}/results" + (f"?{params}" if params else ""), token)


def walk(api: Api, upload_id: str, token: str, limit: int) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query: dict[str, Any] = {"limit": limit} if cursor is None else {"limit": limit, "cursor": cursor}
        status, body = page(api, upload_id, token, **query)
        assert status == 200, body
        assert len(body["documents"]) <= limit
        documents.extend(body["documents"])
        cursor = body["next_cursor"]
        if cursor is None:
            return documents
        assert len(body["documents"]) == limit  # only the last page is short


@pytest.fixture(scope="module")
def finished(stack: LocalStack, api: Api, dynamodb: Any, s3: Any) -> dict[str, Any]:
    """One upload with 157 documents over 5 shards, shard 2 empty."""
    created = new_upload(api, filename='Relatório "março" 2026.csv')
    totals = random_totals(seed=7, count=157)
    shards = in_shards(totals, 5, empty=frozenset({2}))
    csv = write_results(
        dynamodb, s3, stack.names, created["upload_id"], shards, status="completed_with_errors"
    )
    return {**created, "totals": totals, "shards": shards, "csv": csv}


@pytest.mark.parametrize("limit", [1, 3, 31, 100, 1000])
def test_pages_answer_every_document_once_in_shard_and_document_order(
    api: Api, finished: dict[str, Any], limit: int
) -> None:
    documents = walk(api, finished["upload_id"], finished["token"], limit)
    assert documents == expected_order(finished["shards"])
    assert len({d["document"] for d in documents}) == len(finished["totals"])


def test_a_page_holds_the_count_the_types_and_exact_amounts(api: Api, finished: dict[str, Any]) -> None:
    status, body = page(api, finished["upload_id"], finished["token"])
    assert status == 200, body
    assert set(body) == {"upload_id", "documents", "next_cursor", "documents_total", "download"}
    assert body["upload_id"] == finished["upload_id"]
    assert body["documents_total"] == len(finished["totals"]) == 157
    assert len(body["documents"]) == 100  # the default page size
    for document in body["documents"]:
        assert document["type"] == ("cpf" if len(document["document"]) == 11 else "cnpj")
        assert isinstance(document["rows"], int)
        assert Decimal(document["amount"]).as_tuple().exponent == -2  # "1234.50", "-0.10", "3.00"
    assert set(body["download"]) == {"url", "expires_at"}


def test_the_status_document_carries_the_count_and_the_largest_documents(
    api: Api, finished: dict[str, Any]
) -> None:
    status, doc = api.call("GET", f"/uploads/{finished['upload_id']}", finished["token"])
    assert status == 200, doc
    assert doc["documents_total"] == 157
    largest = sorted(finished["totals"], key=lambda t: (-t.amount, t.document))[:10]
    assert doc["top_documents"] == [total.as_api() for total in largest]


def test_the_link_downloads_the_csv_under_a_safe_name(api: Api, finished: dict[str, Any]) -> None:
    status, body = page(api, finished["upload_id"], finished["token"], limit=1)
    assert status == 200, body
    got = requests.get(body["download"]["url"], timeout=30)
    assert got.status_code == 200, got.text
    assert got.content == finished["csv"]
    assert got.content.startswith(b"\xef\xbb\xbfdocument,type,rows,amount\r\n")
    disposition = got.headers["Content-Disposition"]
    assert disposition == 'attachment; filename="Relatorio_marco_2026-totals.csv"'


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        "e30",  # {}
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        base64.urlsafe_b64encode(b"[1, 2]").decode().rstrip("="),
        "A" * 600,
    ],
)
def test_a_garbled_cursor_is_refused_naming_it(api: Api, finished: dict[str, Any], cursor: str) -> None:
    status, body = page(api, finished["upload_id"], finished["token"], cursor=cursor)
    assert (status, body["error"], body["field"]) == (400, "invalid_cursor", "cursor"), body


def forged(upload_id: str, shard: Any, after: Any) -> str:
    raw = json.dumps({"after": after, "shard": shard, "upload_id": upload_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def test_a_cursor_of_another_upload_or_out_of_range_is_refused(
    stack: LocalStack, api: Api, dynamodb: Any, s3: Any, finished: dict[str, Any]
) -> None:
    other = new_upload(api)
    write_results(dynamodb, s3, stack.names, other["upload_id"], [random_totals(seed=8, count=5)])
    status, body = page(api, other["upload_id"], other["token"], limit=2)
    assert status == 200 and body["next_cursor"], body
    status, body = page(api, finished["upload_id"], finished["token"], cursor=body["next_cursor"])
    assert (status, body["field"]) == (400, "cursor"), body
    assert "another upload" in body["message"]

    upload_id, token = finished["upload_id"], finished["token"]
    first = finished["totals"][0].document
    assert page(api, upload_id, token, cursor=forged(upload_id, 1, first))[0] == 200  # a well-formed one
    for shard, after in [
        (5, None),
        (-1, None),
        (True, None),
        ("1", None),
        (1, "12345"),
        (1, 123),
        (1, "x" * 14),
    ]:
        status, body = page(api, upload_id, token, cursor=forged(upload_id, shard, after))
        assert (status, body["field"]) == (400, "cursor"), (shard, after, body)
    padded = forged(upload_id, 1, None) + "=="  # the same position spelt another way
    status, body = page(api, upload_id, token, cursor=padded)
    assert (status, body["field"]) == (400, "cursor"), body


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "abc", "", "1.5", "١٢"])
def test_a_limit_outside_1_to_1000_is_refused_naming_it(
    api: Api, finished: dict[str, Any], limit: str
) -> None:
    status, body = page(api, finished["upload_id"], finished["token"], limit=limit)
    assert (status, body["error"], body["field"]) == (400, "invalid_field", "limit"), body


def test_tokens_are_checked_like_on_every_upload_route(api: Api, finished: dict[str, Any]) -> None:
    other = new_upload(api)
    status, body = page(api, finished["upload_id"], other["token"])
    assert (status, body["error"]) == (403, "forbidden"), body
    status, body = page(api, finished["upload_id"], None)
    assert (status, body["error"]) == (401, "unauthorized"), body


def test_results_before_they_exist_are_a_409_with_the_status(stack: LocalStack, api: Api) -> None:
    created = new_upload(api)
    status, body = page(api, created["upload_id"], created["token"])
    assert status == 409, body
    assert (body["error"], body["status"]) == ("results_not_ready", "uploading")
    assert "uploading" in body["message"]
    status, body = page(api, created["upload_id"], created["token"], limit="0")
    assert (status, body["field"]) == (400, "limit"), body  # a bad request is refused first

    missing = "0" * 32
    token = tokens.issue_token(stack.env["UPFLOW_TOKEN_SECRET"].encode(), missing, time.time())
    status, body = page(api, missing, token)
    assert (status, body["error"]) == (404, "not_found"), body

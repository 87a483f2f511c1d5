"""The multipart-upload API over HTTP (`chalice local`) against a real moto server."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from support import Api, crc32_b64

from processor.model import ACTIVE_PK
from upflow.definition import TB, MiB
from upflow.local.stack import LocalStack

# Uploads the queue pump may still be processing (earlier tests' files): their items change
# under the test's feet, whatever the request under test does.
BUSY = frozenset({"uploaded", "processing", "reducing"})


@dataclass(frozen=True)
class Snapshot:
    """What a refused request must not change: upload objects, MPUs, status items by upload."""

    objects: list[str]
    uploads: list[str]
    items: dict[str, list[str]]
    busy: frozenset[str]

    def settled(self, busy: frozenset[str]) -> dict[str, list[str]]:
        return {pk: items for pk, items in self.items.items() if pk not in busy}


def snapshot(stack: LocalStack, s3: Any, dynamodb: Any) -> Snapshot:
    bucket = stack.names.bucket
    # Processing writes outside uploads/ (chunk-errors/, reports/); a request only under it.
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="uploads/").get("Contents", [])
    mpus = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    items: dict[str, list[str]] = {}
    busy: set[str] = set()
    for item in dynamodb.scan(TableName=stack.names.status_table)["Items"]:
        pk = item["pk"]["S"]
        if pk == ACTIVE_PK:
            continue  # the reconciler's index: processing of earlier uploads changes it, no request does
        items.setdefault(pk, []).append(repr(sorted(item.items())))
        if item["sk"]["S"] == "META" and item.get("status", {}).get("S") in BUSY:
            busy.add(pk)
    return Snapshot(
        objects=sorted(o["Key"] for o in listed),
        uploads=sorted(u["UploadId"] for u in mpus),
        items={pk: sorted(reprs) for pk, reprs in items.items()},
        busy=frozenset(busy),
    )


@pytest.fixture
def unchanged(stack: LocalStack, s3: Any, dynamodb: Any) -> Any:
    class Checker:
        def __enter__(self) -> None:
            self.before = snapshot(stack, s3, dynamodb)

        def __exit__(self, *exc: object) -> None:
            after = snapshot(stack, s3, dynamodb)
            assert (after.objects, after.uploads) == (self.before.objects, self.before.uploads)
            busy = self.before.busy | after.busy
            assert after.settled(busy) == self.before.settled(busy)

    return Checker()


def new_upload(api: Api, size: int = 20 * MiB, filename: str = "data.csv") -> dict[str, Any]:
    status, body = api.call("POST", "/uploads", json_body={"filename": filename, "size": size})
    assert status == 201, body
    return dict(body)


def test_health(api: Api) -> None:
    assert api.call("GET", "/health") == (200, {"status": "ok"})


def test_initiate_answers_the_plan_and_records_the_upload(api: Api) -> None:
    created = new_upload(api, size=20 * MiB, filename="Relatório.csv")
    assert created["part_size"] == 8 * MiB and created["part_count"] == 3
    assert created["key"] == f"uploads/{created['upload_id']}/Relatorio.csv"
    assert created["expires_at"].endswith("Z")
    status, doc = api.call("GET", f"/uploads/{created['upload_id']}", created["token"])
    assert status == 200
    assert doc["status"] == "uploading" and doc["filename"] == "Relatório.csv" and doc["size"] == 20 * MiB


def test_two_terabytes_are_planned_within_ten_thousand_parts(api: Api) -> None:
    created = new_upload(api, size=2 * TB)
    assert created["part_count"] <= 10_000 and created["part_size"] % MiB == 0
    api.call("DELETE", f"/uploads/{created['upload_id']}", created["token"])


def test_full_upload_through_presigned_urls_is_byte_identical(api: Api, s3: Any, stack: LocalStack) -> None:
    payload = b"documento,valor\n" + os.urandom(3 * MiB).hex().encode()[: 17 * MiB]
    created = api.upload_bytes(payload, filename="bytes.csv")
    status, doc = api.call("GET", f"/uploads/{created['upload_id']}", created["token"])
    assert status == 200 and doc["status"] != "uploading"
    stored = s3.get_object(Bucket=stack.names.bucket, Key=created["key"])["Body"].read()
    assert stored == payload


def test_list_parts_pages_past_one_thousand_parts(api: Api, stack: LocalStack) -> None:
    # 1,001 one-byte parts are not allowed by S3 (5 MiB minimum) except the last, but
    # ListParts does not check sizes: it is the paging we test here.
    created = new_upload(api, size=1_001 * 8 * MiB)
    upload_id, token = created["upload_id"], created["token"]
    for first in range(1, 1_002, 100):
        numbers = list(range(first, min(1_001, first + 99) + 1))
        status, signed = api.call(
            "POST",
            f"/uploads/{upload_id}/parts",
            token,
            {"part_numbers": numbers, "checksums": {str(n): crc32_b64(b"x") for n in numbers}},
        )
        assert status == 200, signed
        for n in numbers:
            assert (
                requests.put(signed["urls"][str(n)], data=b"x", headers=signed["headers"][str(n)]).status_code
                == 200
            )
    status, listed = api.call("GET", f"/uploads/{upload_id}/parts", token)
    assert status == 200
    assert [p["part_number"] for p in listed["parts"]] == list(range(1, 1_002))
    assert all(p["size"] == 1 and p["etag"] for p in listed["parts"])
    # and completing refuses the wrong sizes
    status, body = api.call("POST", f"/uploads/{upload_id}/complete", token, {})
    assert (status, body["error"]) == (422, "wrong_part_size")
    api.call("DELETE", f"/uploads/{upload_id}", token)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"filename": "a.csv", "size": 0}, 400, "size"),
        ({"filename": "a.csv", "size": -5}, 400, "size"),
        ({"filename": "a.csv", "size": 2 * TB + 1}, 413, "size"),
        ({"filename": "a.csv", "size": "12"}, 400, "size"),
        ({"filename": "a.csv", "size": 1.5}, 400, "size"),
        ({"filename": "a.csv", "size": True}, 400, "size"),
        ({"filename": "a.csv"}, 400, "size"),
        ({"filename": "../../etc/passwd.csv", "size": 10}, 400, "filename"),
        ({"filename": "a\x00b.csv", "size": 10}, 400, "filename"),
        ({"filename": "x" * 2048 + ".csv", "size": 10}, 400, "filename"),
        ({"filename": "report.xlsx", "size": 10}, 400, "filename"),
        ({"size": 10}, 400, "filename"),
        ({"filename": "a.csv", "size": 10, "content_type": "image/png"}, 400, "content_type"),
    ],
)
def test_initiate_refuses_bad_input_and_changes_nothing(
    api: Api, unchanged: Any, body: dict[str, Any], status: int, field: str
) -> None:
    with unchanged:
        got_status, got = api.call("POST", "/uploads", json_body=body)
    assert got_status == status
    assert got["field"] == field and got["error"] and got["message"]


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", "", "null"])
def test_malformed_json_is_400(api: Api, unchanged: Any, raw: str) -> None:
    with unchanged:
        status, body = api.call("POST", "/uploads", data=raw, headers={"Content-Type": "application/json"})
    assert status == 400 and body["error"] == "invalid_json"


@pytest.mark.parametrize(
    ("numbers", "field_error"),
    [
        ([0], "invalid_part_number"),
        ([4], "invalid_part_number"),
        (list(range(1, 102)), "too_many_parts"),
        ([], "invalid_field"),
        (["1"], "invalid_field"),
        ([1, 1], "invalid_field"),
    ],
)
def test_sign_refuses_bad_part_numbers(
    api: Api, unchanged: Any, numbers: list[Any], field_error: str
) -> None:
    created = new_upload(api, size=20 * MiB)  # 3 parts
    with unchanged:
        status, body = api.call(
            "POST", f"/uploads/{created['upload_id']}/parts", created["token"], {"part_numbers": numbers}
        )
    assert status == 400 and body["error"] == field_error and body["field"] == "part_numbers"


def test_sign_refuses_bad_checksums(api: Api) -> None:
    created = new_upload(api)
    path, token = f"/uploads/{created['upload_id']}/parts", created["token"]
    status, body = api.call("POST", path, token, {"part_numbers": [1]})
    assert (status, body["error"], body["field"]) == (400, "checksum_required", "checksums")
    status, body = api.call("POST", path, token, {"part_numbers": [1], "checksums": {"1": "not-base64!"}})
    assert (status, body["field"]) == (400, "checksums")
    status, body = api.call("POST", path, token, {"part_numbers": [1], "checksums": {"2": crc32_b64(b"a")}})
    assert (status, body["field"]) == (400, "checksums")


def test_signed_urls_carry_the_checksum_headers(api: Api) -> None:
    created = new_upload(api)
    checksum = crc32_b64(b"abc")
    status, body = api.call(
        "POST",
        f"/uploads/{created['upload_id']}/parts",
        created["token"],
        {"part_numbers": [2], "checksums": {"2": checksum}},
    )
    assert status == 200
    assert body["headers"]["2"] == {"x-amz-checksum-crc32": checksum, "x-amz-sdk-checksum-algorithm": "CRC32"}
    assert "x-amz-checksum-crc32" in body["urls"]["2"].lower()  # in X-Amz-SignedHeaders
    assert "X-Amz-Expires=900" in body["urls"]["2"]


def test_unknown_upload_without_a_valid_token_is_401_or_403(api: Api) -> None:
    status, body = api.call("GET", "/uploads/doesnotexist", "forged-token")
    assert status == 403 and body["error"] == "forbidden"
    status, body = api.call("GET", "/uploads/doesnotexist")
    assert status == 401 and body["error"] == "unauthorized"


def test_unknown_upload_with_a_real_token_shape_is_404(api: Api, stack: LocalStack) -> None:
    import time

    from upflow.core.tokens import issue_token

    secret = stack.env["UPFLOW_TOKEN_SECRET"].encode()
    token = issue_token(secret, "doesnotexist", time.time())
    status, body = api.call("GET", "/uploads/doesnotexist", token)
    assert status == 404 and body["error"] == "not_found"


@pytest.mark.parametrize(
    "method_path",
    [
        ("GET", ""),
        ("POST", "/parts"),
        ("GET", "/parts"),
        ("POST", "/complete"),
        ("DELETE", ""),
        ("GET", "/errors"),
        ("POST", "/retry"),
    ],
)
def test_every_upload_route_needs_the_uploads_own_token(
    api: Api, unchanged: Any, method_path: tuple[str, str]
) -> None:
    method, suffix = method_path
    mine, other = new_upload(api), new_upload(api)
    path = f"/uploads/{mine['upload_id']}{suffix}"
    body = {"part_numbers": [1], "checksums": {"1": crc32_b64(b"")}}
    with unchanged:
        assert api.call(method, path, None, body)[0] == 401
        assert api.call(method, path, "garbage", body)[0] == 403
        status, answer = api.call(method, path, other["token"], body)
        assert status == 403 and answer["error"] == "forbidden"
        assert api.call(method, path, _tampered(mine["token"]), body)[0] == 403


def _tampered(token: str) -> str:
    """``token`` with its last character changed, always (a fixed "AA" ending could equal it)."""
    return token[:-1] + ("B" if token.endswith("A") else "A")


def test_complete_with_a_missing_part_is_refused(api: Api) -> None:
    created = new_upload(api, size=8 * MiB + 10)
    upload_id, token = created["upload_id"], created["token"]
    part = b"a" * (8 * MiB)
    status, signed = api.call(
        "POST",
        f"/uploads/{upload_id}/parts",
        token,
        {"part_numbers": [1], "checksums": {"1": crc32_b64(part)}},
    )
    assert requests.put(signed["urls"]["1"], data=part, headers=signed["headers"]["1"]).status_code == 200
    status, body = api.call("POST", f"/uploads/{upload_id}/complete", token, {})
    assert (status, body["error"]) == (422, "missing_parts")
    assert api.call("GET", f"/uploads/{upload_id}", token)[1]["status"] == "uploading"


def test_complete_checks_client_etags(api: Api) -> None:
    payload = b"documento,valor\n" + b"1,2\n" * 10
    status, created = api.call("POST", "/uploads", json_body={"filename": "e.csv", "size": len(payload)})
    upload_id, token = created["upload_id"], created["token"]
    status, signed = api.call(
        "POST",
        f"/uploads/{upload_id}/parts",
        token,
        {"part_numbers": [1], "checksums": {"1": crc32_b64(payload)}},
    )
    put = requests.put(signed["urls"]["1"], data=payload, headers=signed["headers"]["1"])
    status, body = api.call(
        "POST", f"/uploads/{upload_id}/complete", token, {"parts": [{"part_number": 1, "etag": '"0000"'}]}
    )
    assert (status, body["error"]) == (422, "etag_mismatch")
    status, body = api.call(
        "POST",
        f"/uploads/{upload_id}/complete",
        token,
        {"parts": [{"part_number": 1, "etag": put.headers["ETag"], "checksum_crc32": crc32_b64(payload)}]},
    )
    assert status == 200 and body["status"] == "uploaded"


def test_complete_twice_is_a_conflict(api: Api) -> None:
    created = api.upload_bytes(b"documento,valor\n1,2\n", filename="twice.csv")
    status, body = api.call("POST", f"/uploads/{created['upload_id']}/complete", created["token"], {})
    assert (status, body["error"]) == (409, "upload_completed")
    status, body = api.call("DELETE", f"/uploads/{created['upload_id']}", created["token"])
    assert status == 409


def test_abort_then_complete_is_a_conflict_and_abort_is_idempotent(
    api: Api, s3: Any, stack: LocalStack
) -> None:
    created = new_upload(api)
    upload_id, token = created["upload_id"], created["token"]
    assert api.call("DELETE", f"/uploads/{upload_id}", token) == (
        200,
        {"upload_id": upload_id, "status": "aborted"},
    )
    uploads = s3.list_multipart_uploads(Bucket=stack.names.bucket).get("Uploads", [])
    assert created["key"] not in {u["Key"] for u in uploads}
    status, body = api.call("POST", f"/uploads/{upload_id}/complete", token, {})
    assert (status, body["error"]) == (409, "upload_aborted")
    status, body = api.call("POST", f"/uploads/{upload_id}/parts", token, {"part_numbers": [1]})
    assert status == 409
    assert api.call("DELETE", f"/uploads/{upload_id}", token)[0] == 200
    assert api.call("GET", f"/uploads/{upload_id}", token)[1]["status"] == "aborted"


def test_cors_preflight_allows_the_web_origin(api: Api, stack: LocalStack) -> None:
    origin = stack.env["UPFLOW_WEB_ORIGIN"]
    response = requests.options(
        f"{api.base_url}/uploads",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == origin
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()


def _pieces(payload: bytes, part_size: int) -> dict[int, bytes]:
    return {1 + i // part_size: payload[i : i + part_size] for i in range(0, len(payload), part_size)}


def test_initiate_signs_the_first_parts_it_is_sent_and_the_upload_completes(
    api: Api, s3: Any, stack: LocalStack
) -> None:
    payload = b"documento;valor\n" + os.urandom(10 * MiB).hex().encode()[: 20 * MiB - 16]
    pieces = _pieces(payload, 8 * MiB)  # the plan for 20 MiB: 3 parts of 8 MiB
    checksums = {str(n): crc32_b64(pieces[n]) for n in (1, 2)}
    status, created = api.call(
        "POST",
        "/uploads",
        json_body={
            "filename": "head-start.csv",
            "size": len(payload),
            "sign": {"part_size": 8 * MiB, "part_numbers": [1, 2], "checksums": checksums},
        },
    )
    assert status == 201, created
    signed, token = created["signed"], created["token"]
    assert sorted(signed["urls"]) == ["1", "2"] and signed["expires_at"].endswith("Z")
    assert signed["headers"]["1"] == {
        "x-amz-checksum-crc32": checksums["1"],
        "x-amz-sdk-checksum-algorithm": "CRC32",
    }
    # Part 3 the usual way; then every part goes to S3 through its URL.
    status, rest = api.call(
        "POST",
        f"/uploads/{created['upload_id']}/parts",
        token,
        {"part_numbers": [3], "checksums": {"3": crc32_b64(pieces[3])}},
    )
    assert status == 200, rest
    parts = []
    for n, source in ((1, signed), (2, signed), (3, rest)):
        put = requests.put(
            source["urls"][str(n)], data=pieces[n], headers=source["headers"][str(n)], timeout=60
        )
        assert put.status_code == 200, put.text
        parts.append({"part_number": n, "etag": put.headers["ETag"], "checksum_crc32": crc32_b64(pieces[n])})
    status, done = api.call("POST", f"/uploads/{created['upload_id']}/complete", token, {"parts": parts})
    assert status == 200, done
    assert s3.get_object(Bucket=stack.names.bucket, Key=created["key"])["Body"].read() == payload


def test_initiate_does_not_sign_parts_checksummed_for_another_part_size(api: Api) -> None:
    # The client computed its checksums for 5 MiB parts (4 of them); the plan says 8 MiB
    # (3 parts). The upload is made, nothing is signed, and the client signs its parts
    # the usual way: part 4 of the other plan is no error.
    status, created = api.call(
        "POST",
        "/uploads",
        json_body={
            "filename": "a.csv",
            "size": 20 * MiB,
            "sign": {
                "part_size": 5 * MiB,
                "part_numbers": [1, 4],
                "checksums": {"1": crc32_b64(b"a"), "4": crc32_b64(b"b")},
            },
        },
    )
    assert status == 201, created
    assert created["signed"] is None and created["part_size"] == 8 * MiB
    assert new_upload(api)["signed"] is None  # and none is asked for without `sign`
    api.call("DELETE", f"/uploads/{created['upload_id']}", created["token"])


@pytest.mark.parametrize(
    ("sign", "error", "field"),
    [
        ([1, 2], "invalid_field", "sign"),
        ({"part_numbers": [1], "checksums": {"1": "AAAAAA=="}}, "invalid_field", "sign.part_size"),
        ({"part_size": True, "part_numbers": [1]}, "invalid_field", "sign.part_size"),
        (
            {"part_size": 8 * MiB, "part_numbers": [4], "checksums": {}},
            "invalid_part_number",
            "sign.part_numbers",
        ),
        ({"part_size": 8 * MiB, "part_numbers": []}, "invalid_field", "sign.part_numbers"),
        ({"part_size": 8 * MiB, "part_numbers": [1]}, "checksum_required", "sign.checksums"),
        (
            {"part_size": 8 * MiB, "part_numbers": [1], "checksums": {"1": "nope"}},
            "invalid_checksum",
            "sign.checksums",
        ),
    ],
)
def test_initiate_refuses_a_bad_sign_request_before_creating_anything(
    api: Api, unchanged: Any, sign: Any, error: str, field: str
) -> None:
    with unchanged:
        status, body = api.call(
            "POST", "/uploads", json_body={"filename": "a.csv", "size": 20 * MiB, "sign": sign}
        )
    assert (status, body["error"], body["field"]) == (400, error, field), body
    assert body["message"]


HEAD = b"documento;valor\n52998224725;10,00\n11222333000181;5,50\n"


def test_preview_with_the_file_size_answers_the_part_plan(api: Api) -> None:
    status, body = api.call(
        "POST", f"/preview?size={512 * MiB}", data=HEAD, headers={"Content-Type": "text/csv"}
    )
    assert status == 200, body
    assert body["upload"] == {"part_size": 8 * MiB, "part_count": 64}
    assert body["delimiter"] == ";" and [row["valid"] for row in body["rows"]] == [True, True]
    status, body = api.call("POST", "/preview", data=HEAD, headers={"Content-Type": "text/csv"})
    assert status == 200 and "upload" not in body


def test_preview_of_a_whole_small_file_reads_its_last_row(api: Api) -> None:
    # With the size, the server knows the head is the whole file: the unterminated last row
    # is a row, not a cut-off piece of a longer file.
    head = HEAD + b"52998224725;1,00"
    status, body = api.call(
        "POST", f"/preview?size={len(head)}", data=head, headers={"Content-Type": "text/csv"}
    )
    assert status == 200, body
    assert len(body["rows"]) == 3 and body["upload"]["part_count"] == 1


@pytest.mark.parametrize(
    ("query", "status", "error"),
    [
        ("size=abc", 400, "invalid_field"),
        ("size=-1", 400, "invalid_field"),
        ("size=0", 400, "invalid_size"),
        ("size=10", 400, "invalid_size"),  # fewer bytes than the head sent
        (f"size={2 * TB + 1}", 413, "too_large"),
    ],
)
def test_preview_refuses_a_bad_size(api: Api, query: str, status: int, error: str) -> None:
    got_status, body = api.call("POST", f"/preview?{query}", data=HEAD, headers={"Content-Type": "text/csv"})
    assert (got_status, body["error"], body["field"]) == (status, error, "size"), body

"""Test helpers shared by the test modules (importable as ``support``)."""

from __future__ import annotations

import base64
import time
import zlib
from collections.abc import Callable
from typing import Any

import requests


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
        status, done = self.call("POST", f"/uploads/{upload_id}/complete", token, {})
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

"""The upload page in real Chromium against the real local stack.

The local stack comes from the session ``stack`` fixture (tests/conftest.py); the page
(``web_url``), Chromium and a fresh profile per test from tests/e2e/conftest.py: ``web/dist``
served on the origin the stack allowed for CORS, Debian's /usr/bin/chromium driven by
Playwright's sync API.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from csvgen import Expected, generate
from playwright.sync_api import BrowserContext, Page, Request, Route
from playwright.sync_api import Error as PlaywrightError
from webpage import ARTIFACTS, recent_upload, wait_final_status, wait_uploaded

from upflow.client.uploader import crc32_b64
from upflow.definition import MiB
from upflow.local.stack import LocalStack

pytestmark = pytest.mark.browser


# --- fixtures ---------------------------------------------------------------


@dataclass
class CsvFile:
    path: Path
    data: bytes
    expected: Expected


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> CsvFile:
    """≥ 64 MiB of ``;``-separated rows with planted errors (9 parts of 8 MiB)."""
    data, expected = generate(64 * MiB + 123_457, seed=11, documents=400)
    assert len(data) >= 64 * MiB
    path = tmp_path_factory.mktemp("e2e") / "pagamentos.csv"
    path.write_bytes(data)
    return CsvFile(path, data, expected)


# --- helpers -------------------------------------------------------------------


def br_count(n: int) -> str:
    """The page's pt-BR count format: 1.234.567."""
    return f"{n:,}".replace(",", ".")


def br_money(amount: Decimal) -> str:
    """The page's BRL format: R$ 1.234,56 (exact, from the decimal)."""
    quantized = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    sign = "-" if quantized < 0 else ""
    units, cents = f"{abs(quantized):.2f}".split(".")
    return f"{sign}R$ {int(units):,}".replace(",", ".") + f",{cents}"


def is_part_put(request: Request, endpoint: str) -> bool:
    return request.method == "PUT" and request.url.startswith(endpoint) and "partNumber=" in request.url


def part_number(url: str) -> int:
    return int(parse_qs(urlsplit(url).query)["partNumber"][0])


def choose(page: Page, path: Path) -> None:
    """Choose ``path`` in the page's file input, once it is enabled.

    The input stays disabled until config.json has loaded; a file set earlier is ignored.
    """
    page.wait_for_selector("[data-testid=file-input]:not([disabled])", timeout=30_000)
    page.get_by_test_id("file-input").set_input_files(str(path))


def choose_and_start(page: Page, path: Path, expect_resume: bool = False) -> None:
    choose(page, path)
    start = page.get_by_test_id("start-button")
    start.wait_for(timeout=90_000)  # the preview answers first; slow on a loaded 2-core machine
    assert start.inner_text() == ("Resume upload" if expect_resume else "Start upload")
    start.click()


class HeldParts:
    """A route handler that keeps part PUTs waiting, unsent, while ``holding``.

    Holds the upload mid-flight for as long as a test needs, whatever the speed of
    the machine (DevTools' upload throttling does not slow in-memory request bodies,
    which the page sends). ``release`` lets the held requests go; those the page
    aborted meanwhile (pause, cancel) are gone already.
    """

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.holding = False
        self.held: list[Route] = []
        self.seen: list[str] = []

    def handle(self, route: Route) -> None:
        if not is_part_put(route.request, self.endpoint):
            route.continue_()
            return
        self.seen.append(route.request.url)
        if self.holding:
            self.held.append(route)
        else:
            route.continue_()

    def release(self) -> None:
        self.holding = False
        held, self.held = self.held, []
        for route in held:
            try:
                route.continue_()
            except PlaywrightError:
                pass  # the page aborted it meanwhile


def wait_for(page: Page, predicate: Callable[[], bool], timeout: float, message: str) -> None:
    """Poll ``predicate`` while letting Playwright dispatch events (route handlers run meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        page.wait_for_timeout(200)
    raise AssertionError(message)


def saved_session(page: Page) -> dict[str, Any]:
    """The {upload_id, token, key, part_size, …} the page keeps in localStorage for resuming."""
    raw = page.evaluate(
        "() => Object.keys(localStorage).filter(k => k.startsWith('upflow.session.'))"
        ".map(k => localStorage.getItem(k))"
    )
    assert len(raw) == 1, f"expected one saved session, found {raw!r}"
    session: dict[str, Any] = json.loads(raw[0])
    return session


# --- tests -------------------------------------------------------------------------


@pytest.mark.timeout(1500)
def test_upload_reaches_completed_with_errors_with_right_counts(
    context: BrowserContext, web_url: str, big_csv: CsvFile, stack: LocalStack
) -> None:
    """(1) A 64 MiB CSV with planted errors: preview, upload, processing, the right numbers on screen."""
    page = context.new_page()
    page.goto(web_url)
    choose(page, big_csv.path)
    page.get_by_test_id("preview").wait_for(timeout=30_000)
    assert page.get_by_test_id("preview-delimiter").inner_text() == "semicolon (;)"
    assert "documento" in page.get_by_test_id("preview-columns").inner_text()
    page.get_by_test_id("start-button").click()

    bar = page.get_by_test_id("progress-bar")
    bar.wait_for()
    assert bar.get_attribute("role") == "progressbar"
    wait_uploaded(page)
    assert bar.get_attribute("aria-valuenow") == "100"

    status = wait_final_status(page)
    exp = big_csv.expected
    page.screenshot(path=str(ARTIFACTS / "e2e-upload-finished.png"), full_page=True)
    assert status == "completed_with_errors", page.get_by_test_id("status-panel").inner_text()
    assert page.get_by_test_id("status-text").inner_text() == "Completed with errors"
    assert page.get_by_test_id("rows-valid").inner_text() == br_count(exp.rows_valid)
    assert page.get_by_test_id("rows-invalid").inner_text() == br_count(exp.rows_invalid)
    assert page.get_by_test_id("amount-valid").inner_text() == br_money(exp.amount_valid)
    first_errors = page.get_by_test_id("first-errors")
    first_line = int(first_errors.locator("tbody tr").first.locator("td").first.inner_text())
    assert first_line == exp.error_lines[0][0]
    assert page.get_by_test_id("download-report").is_visible()
    # The finished upload is in the recent list, and the resume session was dropped.
    assert page.get_by_test_id("recent-uploads").inner_text().startswith(big_csv.path.name)
    assert (
        page.evaluate("() => Object.keys(localStorage).some(k => k.startsWith('upflow.session.'))") is False
    )


def test_upload_survives_aborted_part_puts_byte_identical(
    context: BrowserContext, web_url: str, big_csv: CsvFile, stack: LocalStack, s3: Any
) -> None:
    """(2) About 1 PUT in 5 is cut by the network; retries finish the upload and S3 holds the same bytes.

    Every PUT also carries the CRC32 the page computed (in its workers) for that part: moto
    takes the header without checking it, so the test checks it against the file's bytes.
    """
    page = context.new_page()
    counts = {"puts": 0, "aborted": 0}
    sent_checksums: dict[int, set[str]] = {}

    def flaky(route: Route) -> None:
        if not is_part_put(route.request, stack.s3_endpoint):
            route.continue_()
            return
        number = part_number(route.request.url)
        sent_checksums.setdefault(number, set()).add(route.request.headers.get("x-amz-checksum-crc32", ""))
        counts["puts"] += 1
        if counts["puts"] % 5 == 2:
            counts["aborted"] += 1
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route(f"{stack.s3_endpoint}/**", flaky)
    page.goto(web_url)
    choose_and_start(page, big_csv.path)
    wait_uploaded(page)

    assert counts["aborted"] >= 1, counts
    recent = recent_upload(page)
    status = page.request.get(
        f"{stack.api_url}/uploads/{recent['upload_id']}",
        headers={"Authorization": f"Bearer {recent['token']}"},
    ).json()
    stored = s3.get_object(Bucket=stack.names.bucket, Key=status["key"])["Body"].read()
    assert len(stored) == len(big_csv.data)
    assert stored == big_csv.data
    size = int(status["part_size"])
    parts = -(-len(big_csv.data) // size)
    expected = {n: {crc32_b64(big_csv.data[(n - 1) * size : n * size])} for n in range(1, parts + 1)}
    assert sent_checksums == expected


def test_first_parts_are_checksummed_while_the_preview_is_read_and_signed_by_initiate(
    context: BrowserContext, web_url: str, big_csv: CsvFile, stack: LocalStack, s3: Any
) -> None:
    """The head start: parts 1-6 are read before the click, and their URLs come with POST /uploads.

    No sign call asks for them again, their PUTs use the URLs initiate answered, and the
    object is byte-identical.
    """
    page = context.new_page()
    api_calls: list[tuple[str, dict[str, Any]]] = []
    part_urls: dict[int, str] = {}

    def on_request(request: Request) -> None:
        if request.url.startswith(stack.api_url) and request.method == "POST" and "/uploads" in request.url:
            api_calls.append((urlsplit(request.url).path, json.loads(request.post_data or "{}")))
        elif is_part_put(request, stack.s3_endpoint):
            part_urls.setdefault(part_number(request.url), request.url)

    page.on("request", on_request)
    created: dict[str, Any] = {}
    page.on(
        "response",
        lambda r: (
            created.update(r.json())
            if r.request.method == "POST" and urlsplit(r.url).path == "/uploads"
            else None
        ),
    )
    page.goto(web_url)
    choose(page, big_csv.path)
    page.get_by_test_id("preview").wait_for(timeout=30_000)
    page.wait_for_timeout(5_000)  # a person reads the preview; the page reads 6 parts (48 MiB)
    page.get_by_test_id("start-button").click()
    wait_uploaded(page)

    initiate = next(body for path, body in api_calls if path == "/uploads")
    head = list(range(1, 7))
    assert initiate["sign"]["part_size"] == 8 * MiB
    assert initiate["sign"]["part_numbers"] == head
    assert initiate["sign"]["checksums"] == {
        str(n): crc32_b64(big_csv.data[(n - 1) * 8 * MiB : n * 8 * MiB]) for n in head
    }
    assert sorted(int(n) for n in created["signed"]["urls"]) == head
    signed_later = [n for path, body in api_calls if path.endswith("/parts") for n in body["part_numbers"]]
    assert not set(signed_later) & set(head), signed_later
    assert sorted(signed_later) == list(range(7, created["part_count"] + 1))
    assert all(part_urls[n] == created["signed"]["urls"][str(n)] for n in head)
    stored = s3.get_object(Bucket=stack.names.bucket, Key=created["key"])["Body"].read()
    assert stored == big_csv.data


def test_reload_mid_upload_resumes_without_resending_parts(
    context: BrowserContext, web_url: str, big_csv: CsvFile, stack: LocalStack
) -> None:
    """(3) Reload while parts are missing, choose the same file: only the missing parts are PUT.

    The complete request names every part's CRC32, those sent before the reload included
    (read from the file again where S3's ListParts lists none, as SeaweedFS's does not)."""
    page = context.new_page()
    allowed_before_reload = 3
    completes: list[Any] = []

    def note_complete(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/complete"):
            completes.append(request.post_data_json)

    page.on("request", note_complete)
    state: dict[str, Any] = {"phase": "before", "allowed": 0, "after": []}

    def gate(route: Route) -> None:
        request = route.request
        if not is_part_put(request, stack.s3_endpoint):
            route.continue_()
        elif state["phase"] == "before":
            if state["allowed"] < allowed_before_reload:
                state["allowed"] += 1
                route.continue_()
            else:
                route.abort("internetdisconnected")  # the rest never reach S3
        else:
            state["after"].append(part_number(request.url))
            route.continue_()

    page.route(f"{stack.s3_endpoint}/**", gate)
    page.goto(web_url)
    choose_and_start(page, big_csv.path)

    page.wait_for_function("() => Object.keys(localStorage).some(k => k.startsWith('upflow.session.'))")

    def stored_parts() -> list[int]:
        session = saved_session(page)
        answer = page.request.get(
            f"{stack.api_url}/uploads/{session['upload_id']}/parts",
            headers={"Authorization": f"Bearer {session['token']}"},
        ).json()
        return sorted(p["part_number"] for p in answer["parts"])

    wait_for(
        page, lambda: len(stored_parts()) == allowed_before_reload, 60, "the first parts never reached S3"
    )
    before = stored_parts()
    session = saved_session(page)
    part_count = int(session["part_count"])
    assert part_count == 9  # 64 MiB + a bit, in 8 MiB parts

    page.reload()  # PUTs the old page still tries during the reload stay blocked: they never reach S3
    state["phase"] = "after"
    choose_and_start(page, big_csv.path, expect_resume=True)
    wait_uploaded(page)

    sent_after = state["after"]
    assert not set(sent_after) & set(before), (
        f"parts {before} were already on S3 but sent again: {sent_after}"
    )
    assert set(sent_after) | set(before) == set(range(1, part_count + 1))
    assert sorted(sent_after) == sorted(set(sent_after)), f"a part was sent twice: {sent_after}"
    assert recent_upload(page)["upload_id"] == session["upload_id"]  # the same upload, resumed
    part_size = int(session["part_size"])
    assert completes and completes[-1]["parts"] == [
        {
            "part_number": n,
            "etag": completes[-1]["parts"][n - 1]["etag"],
            "checksum_crc32": crc32_b64(big_csv.data[(n - 1) * part_size : n * part_size]),
        }
        for n in range(1, part_count + 1)
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.txt", b"documento;valor\n1;2\n", "is not a CSV file"),
        ("empty.csv", b"", "is empty"),
    ],
)
def test_bad_files_are_refused_before_any_request(
    context: BrowserContext,
    web_url: str,
    stack: LocalStack,
    tmp_path: Path,
    name: str,
    content: bytes,
    message: str,
) -> None:
    """(4) Not a CSV, or empty: a message in words and not a single request to the API or S3."""
    page = context.new_page()
    page.goto(web_url)
    page.get_by_test_id("file-input").wait_for()
    page.wait_for_load_state("networkidle")
    sent: list[str] = []
    page.on(
        "request",
        lambda r: (
            sent.append(f"{r.method} {r.url}")
            if r.url.startswith((stack.api_url, stack.s3_endpoint))
            else None
        ),
    )
    path = tmp_path / name
    path.write_bytes(content)
    choose(page, path)
    error = page.get_by_test_id("error-message")
    error.wait_for(timeout=10_000)
    assert message in error.inner_text()
    assert name in error.inner_text()
    assert page.get_by_test_id("start-button").count() == 0
    page.wait_for_timeout(500)
    assert sent == []


def test_pause_resume_and_cancel(
    context: BrowserContext, web_url: str, big_csv: CsvFile, stack: LocalStack, tmp_path: Path
) -> None:
    """Pause stops part PUTs, resume finishes the upload; cancel sends DELETE and the server says aborted.

    Part PUTs are held at the network layer (``HeldParts``) while the buttons are
    pressed, so each one acts mid-upload however fast the machine uploads.
    """
    head = big_csv.data[: 24 * MiB]
    head = head[: head.rindex(b"\n") + 1]
    page = context.new_page()
    parts = HeldParts(stack.s3_endpoint)
    page.route(f"{stack.s3_endpoint}/**", parts.handle)
    deletes: list[str] = []
    page.on(
        "request",
        lambda r: deletes.append(r.url) if r.method == "DELETE" and r.url.startswith(stack.api_url) else None,
    )
    page.goto(web_url)

    paused_file = tmp_path / "pausa.csv"
    paused_file.write_bytes(head)
    parts.holding = True
    choose_and_start(page, paused_file)
    wait_for(page, lambda: len(parts.held) >= 1, 30, "no part PUT started")
    page.get_by_test_id("pause-button").click()
    page.wait_for_selector('[data-testid=upload-phase][data-phase="paused"]')
    parts.release()  # what the pause aborted stays aborted
    page.wait_for_timeout(300)
    sent_when_paused = len(parts.seen)
    page.wait_for_timeout(2000)
    assert len(parts.seen) == sent_when_paused, "part PUTs went on while paused"
    resume = page.get_by_test_id("resume-button")
    resume.focus()
    page.keyboard.press("Enter")  # keyboard usable
    wait_uploaded(page, timeout_ms=120_000)
    assert len(parts.seen) > sent_when_paused

    cancelled_file = tmp_path / "cancela.csv"
    cancelled_file.write_bytes(head)
    parts.holding = True
    sent_before = len(parts.seen)
    choose_and_start(page, cancelled_file)
    wait_for(page, lambda: len(parts.seen) > sent_before, 30, "the second upload sent no part")
    session = saved_session(page)
    page.get_by_test_id("cancel-button").click()
    page.wait_for_selector('[data-testid=upload-phase][data-phase="cancelled"]', timeout=30_000)
    parts.release()
    assert deletes == [f"{stack.api_url}/uploads/{session['upload_id']}"]
    status = page.request.get(
        f"{stack.api_url}/uploads/{session['upload_id']}",
        headers={"Authorization": f"Bearer {session['token']}"},
    ).json()
    assert status["status"] == "aborted"
    assert (
        page.evaluate("() => Object.keys(localStorage).some(k => k.startsWith('upflow.session.'))") is False
    )

"""The page's chunk grid in real Chromium against the real local stack.

A 3-chunk file is uploaded through the page while the chunk workers are paused: the grid shows
every chunk pending, one labelled cell each. The workers resume and, on the same page (it polls
the status), the grid reaches every chunk completed, one cell per chunk of the plan.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from csvgen import generate
from playwright.sync_api import BrowserContext, Page
from support import Api
from webpage import ARTIFACTS, recent_upload, wait_final_status, wait_uploaded

from upflow.definition import MiB
from upflow.local.stack import LocalStack

pytestmark = pytest.mark.browser

CHUNKS = 3  # 16 MiB and a bit, in 8 MiB chunks


def start_upload(page: Page, path: Path) -> None:
    """Choose ``path`` once the page is ready, start it once the preview answered, and wait for
    the upload's end (tests/e2e/test_web_upload_e2e.py drives the upload itself in detail)."""
    page.wait_for_selector("[data-testid=file-input]:not([disabled])", timeout=30_000)
    page.get_by_test_id("file-input").set_input_files(str(path))
    page.get_by_test_id("start-button").click(timeout=90_000)
    wait_uploaded(page)


def cell_states(page: Page) -> list[str]:
    return [
        str(state)
        for state in page.eval_on_selector_all(
            "[data-testid=chunk-cell]", "cells => cells.map(c => c.dataset.state)"
        )
    ]


def wait_for_grid(page: Page, expected: list[str], timeout_ms: float) -> None:
    """Until the grid's cells, in order, have exactly the ``expected`` states."""
    page.wait_for_function(
        "expected => JSON.stringify([...document.querySelectorAll('[data-testid=chunk-cell]')]"
        ".map(c => c.dataset.state)) === JSON.stringify(expected)",
        arg=expected,
        timeout=timeout_ms,
    )


@pytest.mark.timeout(600)
def test_the_grid_shows_pending_chunks_then_reaches_all_completed(
    context: BrowserContext, web_url: str, stack: LocalStack, api: Api, tmp_path: Path
) -> None:
    data, expected = generate(16 * MiB + 300_000, seed=47, documents=300)
    path = tmp_path / "grade.csv"
    path.write_bytes(data)
    page = context.new_page()
    page.goto(web_url)
    stack.pause_chunk_workers()
    try:
        start_upload(page, path)
        wait_for_grid(page, ["pending"] * CHUNKS, timeout_ms=60_000)
        titles = page.eval_on_selector_all("[data-testid=chunk-cell]", "cells => cells.map(c => c.title)")
        assert titles == [f"chunk {index}: pending" for index in range(CHUNKS)]
        grid = page.get_by_test_id("chunk-grid")
        assert grid.get_attribute("role") == "img"
        assert grid.get_attribute("aria-label") == f"{CHUNKS} chunks: {CHUNKS} pending"
        assert page.get_by_test_id("chunks-pending").inner_text() == str(CHUNKS)
        assert page.get_by_test_id("status-text").get_attribute("data-status") == "processing"
    finally:
        stack.resume_chunk_workers()

    status = wait_final_status(page, timeout_s=300, shot="e2e-chunk-grid-timeout.png")
    assert status == ("completed_with_errors" if expected.rows_invalid else "completed")
    wait_for_grid(page, ["completed"] * CHUNKS, timeout_ms=10_000)
    page.screenshot(path=str(ARTIFACTS / "e2e-chunk-grid.png"), full_page=True)
    recent = recent_upload(page)
    code, doc = api.call("GET", f"/uploads/{recent['upload_id']}", recent["token"])
    assert code == 200, doc
    assert len(cell_states(page)) == doc["chunks"]["total"] == CHUNKS
    assert set(cell_states(page)) == {"completed"}
    assert page.get_by_test_id("chunks-completed").inner_text() == str(CHUNKS)
    assert (
        page.get_by_test_id("chunk-grid").get_attribute("aria-label")
        == f"{CHUNKS} chunks: {CHUNKS} completed"
    )
    assert "rows/s" in page.get_by_test_id("chunk-timings").inner_text()

"""What the browser tests read off the upload page (tests/e2e)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
ARTIFACTS.mkdir(parents=True, exist_ok=True)
FINAL = ("completed", "completed_with_errors", "failed")


def wait_uploaded(page: Page, timeout_ms: float = 240_000) -> None:
    page.wait_for_selector('[data-testid=upload-phase][data-phase="uploaded"]', timeout=timeout_ms)


def wait_final_status(page: Page, timeout_s: float = 900, shot: str = "e2e-status-timeout.png") -> str:
    """Wait for a final status; on time-out, keep a screenshot and say where processing stood."""
    selector = ", ".join(f'[data-testid=status-text][data-status="{s}"]' for s in FINAL)
    try:
        page.wait_for_selector(selector, timeout=timeout_s * 1000)
    except PlaywrightTimeoutError:
        page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
        panel = page.get_by_test_id("status-panel")
        seen = panel.inner_text() if panel.count() else page.inner_text("body")
        raise AssertionError(f"no final status within {timeout_s:.0f} s; the page shows:\n{seen}") from None
    return str(page.get_by_test_id("status-text").get_attribute("data-status"))


def recent_upload(page: Page) -> dict[str, Any]:
    """The {upload_id, token, …} the page keeps of its last upload."""
    raw = page.evaluate("() => localStorage.getItem('upflow.recent')")
    items: list[dict[str, Any]] = json.loads(raw)
    return items[0]

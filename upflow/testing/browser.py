"""Debian's Chromium as tests and benchmarks launch it (never ``playwright install``)."""

from __future__ import annotations

from typing import Any

CHROMIUM = "/usr/bin/chromium"
# Headless as root on a closed network: no sandbox, no GPU, and none of the
# background connections that would be refused here, many at a time.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def launch_chromium(playwright: Any) -> Any:
    """A headless Chromium browser from a Playwright sync handle."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))

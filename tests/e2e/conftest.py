"""The page's fixtures for the browser tests: its URL on the stack's allowed origin, Debian's
Chromium (one per module), a fresh profile per test."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, sync_playwright

from upflow.local.stack import WEB_DIST, LocalStack
from upflow.local.webserver import WebServer, serve_web
from upflow.testing.browser import launch_chromium


@pytest.fixture(scope="module")
def web_url(stack: LocalStack) -> Iterator[str]:
    """The page's URL: the stack's own server if it serves one, else ours on the allowed origin."""
    if stack.web_url:
        yield stack.web_url
        return
    if not (WEB_DIST / "index.html").is_file():
        pytest.fail(f"{WEB_DIST}/index.html is missing: run `make web` (npm run build) first")
    origin = urlsplit(stack.env.get("UPFLOW_WEB_ORIGIN", ""))
    if not origin.hostname or not origin.port:
        pytest.fail("the stack has no UPFLOW_WEB_ORIGIN with a port: the page would fail CORS")
    server: WebServer = serve_web(WEB_DIST, origin.hostname, origin.port, stack.api_url)
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh profile per test: empty localStorage, so no upload is resumed by accident."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 1100})
    try:
        yield ctx
    finally:
        ctx.close()

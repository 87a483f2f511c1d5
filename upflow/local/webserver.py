"""Serve the built page (``web/dist``) and its ``/config.json`` on loopback.

The page reads ``config.json`` at start-up for the API URL, so the same build
works against any API: this server generates that file from ``api_url``.
Standard library only: a ``ThreadingHTTPServer`` in a daemon thread.

    server = serve_web(Path("web/dist"), "127.0.0.1", 8080, "http://127.0.0.1:8000")
    print(server.url)
    server.close()
"""

from __future__ import annotations

import json
import threading
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_PORT = 8080
CONFIG_PATH = "/config.json"


class _Handler(SimpleHTTPRequestHandler):
    """Static files from ``directory`` plus the generated ``/config.json``."""

    config_body: bytes = b"{}"

    def __init__(self, *args: Any, directory: str, config_body: bytes, **kwargs: Any) -> None:
        self.config_body = config_body
        super().__init__(*args, directory=directory, **kwargs)

    def end_headers(self) -> None:
        path = urlsplit(self.path).path
        # index.html and config.json must never be cached (new builds, new API URLs);
        # Vite's hashed assets may be cached for good.
        if path.startswith("/assets/"):
            self.send_header("Cache-Control", "public, max-age=31536000, immutable")
        else:
            self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def _send_config(self, head_only: bool) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.config_body)))
        self.end_headers()
        if not head_only:
            self.wfile.write(self.config_body)

    def do_GET(self) -> None:
        if urlsplit(self.path).path == CONFIG_PATH:
            self._send_config(head_only=False)
            return
        super().do_GET()

    def do_HEAD(self) -> None:
        if urlsplit(self.path).path == CONFIG_PATH:
            self._send_config(head_only=True)
            return
        super().do_HEAD()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the dev console is for the API and the pump."""


class WebServer:
    """A running static server; ``close()`` stops it and joins its thread."""

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        host, port = httpd.server_address[0], httpd.server_address[1]
        self.host = str(host)
        self.port = int(port)
        self.url = f"http://{self.host}:{self.port}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> WebServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def config_json(api_url: str) -> bytes:
    """The body of ``/config.json`` for ``api_url``."""
    return json.dumps({"apiUrl": api_url.rstrip("/")}).encode()


def serve_web(dist_dir: Path, host: str, port: int, api_url: str) -> WebServer:
    """Serve ``dist_dir`` on ``host:port`` (0 picks a free port) in a background thread."""
    index = dist_dir / "index.html"
    if not index.is_file():
        raise FileNotFoundError(f"{index} is missing: build the page first (make web)")
    handler = partial(_Handler, directory=str(dist_dir.resolve()), config_body=config_json(api_url))
    httpd = ThreadingHTTPServer((host, port), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name=f"upflow-web-{port}", daemon=True)
    thread.start()
    return WebServer(httpd, thread)

"""moto server with DynamoDB's per-item atomicity: ``python -m upflow.local.motoserver -H HOST -p PORT``.

moto applies a DynamoDB write as read, check, modify, store, in whichever
server thread handles the request, so two concurrent ``UpdateItem`` calls on
one item can both read the old item and one of them is lost (seen once in CI:
one chunk's share missing from three documents). Real DynamoDB serializes the
writes to an item, and the processor's exactly-once totals rely on it (one
conditional ``ADD`` per document and chunk). This server is moto's own
application and request handler, with one lock around DynamoDB requests; S3,
SQS and the rest stay concurrent. Only the local stack uses it.

It also gives events put with ``PutEvents`` EventBridge's whole envelope on
their way to a target: moto's default input template drops ``account``,
which EventBridge (and S3's "Object Created" event) always carries.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.events.utils import EventTemplateParser
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# EventBridge's envelope, field for field (moto's own template lacks "account").
EVENT_ENVELOPE_TEMPLATE = (
    '{"version": "0", "id": "<id>", "detail-type": "<detail-type>", "source": "<source>", '
    '"account": "<account>", "time": <time>, "region": "<region>", "resources": <resources>, '
    '"detail": <detail>}'
)


class SerializedDynamoDB:
    """WSGI middleware: DynamoDB requests (``X-Amz-Target: DynamoDB_…``) one at a time."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return self._app(environ, start_response)
        with self._lock:
            # The whole answer is produced under the lock, not only the call.
            return list(self._app(environ, start_response))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args(argv)
    # As moto.server's main: some answers (queue URLs) name the port, and SIGTERM exits cleanly.
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = EVENT_ENVELOPE_TEMPLATE
    moto_app = DomainDispatcherApplication(create_backend_app)
    moto_app.debug = True  # type: ignore[attr-defined]
    run_simple(
        args.host, args.port, SerializedDynamoDB(moto_app), threaded=True, request_handler=MotoRequestHandler
    )


if __name__ == "__main__":
    main()

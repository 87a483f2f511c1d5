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

And it lets moto forget the objects it has dropped. moto keeps every model object it
ever made (each ``Item``, each SQS message, each S3 key and part) in a list per class,
for its ``/moto-api/data.json`` dashboard; nothing else of the server reads them. Every
``UpdateItem`` makes a copy of the item it updates and every ``TransactWriteItems`` a
copy of each whole table it touches, so the status table's copies alone grew moto by
~1.3 MB per chunk completed *per chunk already in the table* (measured: 81 → 771 MiB
over 512 chunks, quadratic): the 4 GiB pipeline run's moto peaked at ~2 GiB. After each
request the lists are dropped (moto's own ``reset_model_data``, what its reset API
calls); the backends, which hold the live state, keep every table, queue and object.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.core.model_instances import reset_model_data
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


class ForgetModelInstances:
    """WSGI middleware: after each request, moto's per-class lists of every model object
    it made are dropped (module docstring); only its dashboard reads them."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            return self._app(environ, start_response)
        finally:
            reset_model_data()


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
        args.host,
        args.port,
        ForgetModelInstances(SerializedDynamoDB(moto_app)),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()

"""The results half of the HTTP API: an upload's consolidated totals per document.

The reducers write one item per document into the results table, partitioned by
shard (``results_partition(upload_id, shard)``, sorted by document inside each),
and the merged CSV to ``results_key``; the upload item then holds ``shard_total``,
``documents_total``, ``results_key`` and ``top_documents``. ``ResultsService.page``
walks the shards in order, one partition query at a time, so a page costs reads
in proportion to its size however many documents the upload has.

The cursor is opaque to clients: urlsafe base64 (unpadded) of a small JSON
``{"upload_id", "shard", "after"}`` — the shard to read and the last document
answered in it (null: from the shard's start). It names its upload so a cursor
of another upload is refused instead of silently paging the wrong data.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from upflow.aws.dynamo import Item, Table
from upflow.aws.s3 import S3Store
from upflow.core import naming
from upflow.definition import RuntimeConfig, results_partition
from upflow.server.states import COMPLETED, COMPLETED_WITH_ERRORS
from upflow.server.uploads import HttpError, UploadService, document_total, iso

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# The only statuses with results (the reducers write them before the finaliser sets these).
RESULT_STATES = frozenset({COMPLETED, COMPLETED_WITH_ERRORS})
# Attributes a page reads of each results item.
_PROJECTION = ("document", "doc_type", "rows", "amount")
# A normalised document: an 11-digit CPF or a 14-character CNPJ (12 alphanumerics, 2 check digits).
_DOCUMENT = re.compile(r"\d{11}|[0-9A-Z]{12}\d{2}")
_CURSOR_TEXT = re.compile(r"[A-Za-z0-9_-]{1,512}")
_CURSOR_KEYS = frozenset({"upload_id", "shard", "after"})


class ResultsNotReady(HttpError):
    """409 with the upload's status in the error body, so a client can say what to wait for."""

    def __init__(self, upload_id: str, status: str) -> None:
        super().__init__(409, "results_not_ready", _not_ready_message(upload_id, status))
        self.upload_status = status

    def body(self) -> dict[str, str]:
        return {**super().body(), "status": self.upload_status}


def _not_ready_message(upload_id: str, status: str) -> str:
    if status in RESULT_STATES:
        return f"upload {upload_id} is {status} but has no consolidated results recorded"
    if status == "failed":
        return f"upload {upload_id} failed: retry its failed chunks, the totals come once it completes"
    if status == "aborted":
        return f"upload {upload_id} was aborted: it has no results"
    return f"upload {upload_id} is {status}: the totals are ready once processing completes"


@dataclass(frozen=True)
class Position:
    """Where a page starts: ``shard``, after document ``after`` (None: the shard's first)."""

    shard: int
    after: str | None = None


def encode_cursor(upload_id: str, position: Position) -> str:
    doc = {"upload_id": upload_id, "shard": position.shard, "after": position.after}
    raw = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _bad_cursor(message: str) -> HttpError:
    return HttpError(400, "invalid_cursor", message, "cursor")


def decode_cursor(cursor: str, upload_id: str, shard_total: int) -> Position:
    """The position ``cursor`` names; ``HttpError`` 400 naming ``cursor`` unless it is one of
    this upload's, exactly as ``encode_cursor`` writes it."""
    if not _CURSOR_TEXT.fullmatch(cursor):
        raise _bad_cursor("cursor is not a cursor this API answered")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        doc = json.loads(raw.decode())
    except (binascii.Error, ValueError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise _bad_cursor("cursor is garbled") from None
    if not isinstance(doc, dict) or set(doc) != _CURSOR_KEYS:
        raise _bad_cursor("cursor is garbled")
    if doc["upload_id"] != upload_id:
        raise _bad_cursor("cursor belongs to another upload")
    shard, after = doc["shard"], doc["after"]
    if isinstance(shard, bool) or not isinstance(shard, int) or not 0 <= shard < shard_total:
        raise _bad_cursor("cursor is garbled")
    if after is not None and not (isinstance(after, str) and _DOCUMENT.fullmatch(after)):
        raise _bad_cursor("cursor is garbled")
    position = Position(shard, after)
    if encode_cursor(upload_id, position) != cursor:
        raise _bad_cursor("cursor is garbled")  # the same JSON spelt another way: not ours
    return position


def parse_limit(raw: Any) -> int:
    """A page size within 1..MAX_LIMIT (``DEFAULT_LIMIT`` when absent); 400 naming ``limit``."""
    if raw is None:
        return DEFAULT_LIMIT
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 6:
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_LIMIT:
        message = f"limit must be a whole number within 1..{MAX_LIMIT}"
        raise HttpError(400, "invalid_field", message, "limit")
    return raw


def totals_filename(filename: str) -> str:
    """``<original name>-totals.csv``, ASCII and free of quotes and separators (a header value)."""
    stem = naming.sanitise_filename(filename).removesuffix(".csv")
    return f"{stem}-totals.csv"


class ResultsService:
    def __init__(
        self,
        config: RuntimeConfig,
        store: S3Store,
        results_table: Table,
        uploads: UploadService,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._limits = config.limits
        self._store = store
        self._table = results_table
        self._uploads = uploads
        self._clock = clock

    def _ready(self, upload_id: str) -> Item:
        """The upload item, once its results exist; 404 unknown, 409 ``results_not_ready``."""
        item = self._uploads.load(upload_id)
        status = str(item["status"])
        if status not in RESULT_STATES or not all(
            name in item for name in ("shard_total", "documents_total", "results_key")
        ):
            raise ResultsNotReady(upload_id, status)
        return item

    def page(self, upload_id: str, cursor: str | None, limit: Any = None) -> dict[str, Any]:
        """``GET /uploads/{id}/results``: up to ``limit`` documents after ``cursor``, in order."""
        size = parse_limit(limit)
        item = self._ready(upload_id)
        shard_total = int(item["shard_total"])
        position = Position(0) if cursor is None else decode_cursor(cursor, upload_id, shard_total)
        documents, following = self._read(upload_id, position, shard_total, size)
        return {
            "upload_id": upload_id,
            "documents": [document_total(entry) for entry in documents],
            "next_cursor": None if following is None else encode_cursor(upload_id, following),
            "documents_total": int(item["documents_total"]),
            "download": self._download(item),
        }

    def _read(
        self, upload_id: str, position: Position, shard_total: int, size: int
    ) -> tuple[list[Item], Position | None]:
        """Up to ``size`` items from ``position`` on, and where the next page starts (None: the end).

        Each query asks for one item more than the page still needs: that item is not
        answered, it only tells a page that ends inside a shard from one that ends with it.
        """
        shard, after = position.shard, position.after
        found: list[Item] = []
        while len(found) < size and shard < shard_total:
            wanted = size - len(found)
            partition = results_partition(upload_id, shard)
            start = None if after is None else {"pk": partition, "document": after}
            page = self._table.query_page(
                "pk", partition, limit=wanted + 1, start_key=start, projection=_PROJECTION
            )
            taken = page.items[:wanted]
            found.extend(taken)
            if len(page.items) > wanted:
                return found, Position(shard, str(taken[-1]["document"]))
            if page.last_key is None:
                shard, after = shard + 1, None
            else:  # the 1 MB page limit: go on from where DynamoDB stopped
                after = str(page.last_key["document"])
        return found, (Position(shard, after) if shard < shard_total else None)

    def _download(self, item: Item) -> dict[str, str]:
        expires_in = self._limits.url_expiry_seconds
        filename = totals_filename(str(item["filename"]))
        return {
            "url": self._store.presign_get(str(item["results_key"]), expires_in, filename),
            "expires_at": iso(self._clock() + expires_in),
        }

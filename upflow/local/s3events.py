"""S3 "Object Created" events for the local SeaweedFS, delivered where S3 delivers them: EventBridge.

    python -m upflow.local.s3events --filer 127.0.0.1:8888.18888 --bucket B [--since-ns N]

SeaweedFS sends no S3 event notifications, but its filer logs every metadata
change, and ``weed filer.meta.tail -pathPrefix=… -timeAgo=…`` follows that
log (replaying it from a past moment first). This process runs that tail on
``/buckets/<bucket>/<prefix>``, turns each object creation into the event S3
sends to EventBridge (source ``aws.s3``, detail-type ``Object Created``; the
shape of ``tests/events/eventbridge_object_created.json``) and puts it on the
local EventBridge (moto) with ``PutEvents``. The rule from
``upflow.definition.object_created_pattern`` then routes it to the events
queue, as in production.

* Once per object: a PutObject or a CompleteMultipartUpload is one creation
  of the object's entry. Multipart part files live under
  ``/buckets/<bucket>/.uploads/``, outside the tailed prefix; folders and
  metadata-only updates (same chunks, same ETag) are skipped; an overwrite is
  a new object, as in S3.
* Nothing missed: the tail starts at ``--since-ns`` (the stack passes a time
  before SeaweedFS started, so the filer replays everything created while
  this process was starting), and when it exits it is restarted from the
  last change handled. An event is put before its change counts as handled,
  so a crash between the two repeats it: duplicates, which the planner
  absorbs, never gaps.
* ``--probe-key``: the creation of that object is not an event; it marks
  ``--ready-file`` (how the stack knows the tail is live before the API
  accepts uploads).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from upflow.definition import UPLOADS_PREFIX
from upflow.local.processes import die_with_parent

DETAIL_TYPE = "Object Created"
SOURCE = "aws.s3"
# moto's account (the local stack's); real S3 names the requester's account.
LOCAL_ACCOUNT = "123456789012"
# Replay from slightly before the last change handled when the tail restarts.
RESTART_MARGIN_NS = 1_000_000_000
PROBE_NAME = ".upflow-events-probe"
_UPLOAD_ID_ATTRIBUTE = "x-seaweedfs-upload-id"
_ETAG_ATTRIBUTE = "seaweed-x-amz-etag"


@dataclass(frozen=True)
class Created:
    """One object creation read from the filer's metadata log."""

    key: str
    size: int
    etag: str
    reason: str  # "PutObject" or "CompleteMultipartUpload", as S3 says
    ts_ns: int


class JsonStream:
    """Splits ``weed filer.meta.tail``'s output (indented JSON objects, one after another)."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def feed(self, line: str) -> dict[str, Any] | None:
        """Add one line; return the object it completes, if any."""
        if line.startswith("{"):
            self._lines = []  # a new top-level object: whatever came before was no JSON
        elif not self._lines:
            return None
        self._lines.append(line)
        # A top-level object ends with a "}" in column 0 (or is one line).
        if not (line.startswith("}") or (len(self._lines) == 1 and line.rstrip().endswith("}"))):
            return None
        try:
            value = json.loads("".join(self._lines))
        except ValueError:
            return None  # not the end yet
        self._lines = []
        return value if isinstance(value, dict) else None

    def objects(self, lines: Iterable[str]) -> Iterator[dict[str, Any]]:
        for line in lines:
            value = self.feed(line)
            if value is not None:
                yield value


def _extended(entry: dict[str, Any]) -> dict[str, str]:
    """The entry's extended attributes (base64 in the JSON), names in lower case."""
    decoded: dict[str, str] = {}
    for name, value in (entry.get("extended") or {}).items():
        try:
            decoded[name.lower()] = base64.b64decode(value).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            continue
    return decoded


def _etag(entry: dict[str, Any]) -> str:
    etag = _extended(entry).get(_ETAG_ATTRIBUTE, "")
    if etag:
        return etag.strip('"')
    md5 = (entry.get("attributes") or {}).get("md5") or ""
    try:
        return base64.b64decode(md5).hex()
    except (binascii.Error, ValueError):
        return ""


def _chunk_ids(entry: dict[str, Any]) -> list[str]:
    return [str(chunk.get("fileId", "")) for chunk in entry.get("chunks") or []]


def object_created(message: dict[str, Any], bucket: str, prefix: str = UPLOADS_PREFIX) -> Created | None:
    """The object creation ``message`` records, if it is one under ``prefix`` of ``bucket``."""
    notification = message.get("eventNotification") or {}
    new, old = notification.get("newEntry"), notification.get("oldEntry")
    if not new or new.get("isDirectory"):
        return None  # a deletion or a folder
    directory = str(message.get("directory", ""))
    parent = str(notification.get("newParentPath") or directory)
    root = f"/buckets/{bucket}/"
    path = f"{parent.rstrip('/')}/{new.get('name', '')}"
    if not path.startswith(root):
        return None
    key = path[len(root) :]
    if not key.startswith(prefix):
        return None
    if (
        old
        and (parent, old.get("name")) == (directory, new.get("name"))
        and (_etag(old), _chunk_ids(old)) == (_etag(new), _chunk_ids(new))
    ):
        return None  # the same object, its metadata updated
    extended = _extended(new)
    return Created(
        key=key,
        size=int((new.get("attributes") or {}).get("fileSize", 0)),
        etag=_etag(new),
        reason="CompleteMultipartUpload" if _UPLOAD_ID_ATTRIBUTE in extended else "PutObject",
        ts_ns=int(message.get("tsNs", 0)),
    )


def event_detail(created: Created, bucket: str, account: str = LOCAL_ACCOUNT) -> dict[str, Any]:
    """The ``detail`` S3 puts in an "Object Created" EventBridge event."""
    return {
        "version": "0",
        "bucket": {"name": bucket},
        "object": {
            "key": created.key,
            "size": created.size,
            "etag": created.etag,
            "sequencer": f"{created.ts_ns:018X}",
        },
        "request-id": secrets.token_hex(8).upper(),
        "requester": account,
        "reason": created.reason,
    }


def put_events_entry(
    created: Created, bucket: str, account: str = LOCAL_ACCOUNT, event_bus: str | None = None
) -> dict[str, Any]:
    """The ``PutEvents`` entry EventBridge turns into S3's event (it adds id, account, region)."""
    entry: dict[str, Any] = {
        "Source": SOURCE,
        "DetailType": DETAIL_TYPE,
        "Resources": [f"arn:aws:s3:::{bucket}"],
        "Time": datetime.fromtimestamp(created.ts_ns / 1e9, UTC) if created.ts_ns else datetime.now(UTC),
        "Detail": json.dumps(event_detail(created, bucket, account)),
    }
    if event_bus:
        entry["EventBusName"] = event_bus
    return entry


def tail_command(weed: str, filer: str, bucket: str, prefix: str, since_ns: int, now_ns: int) -> list[str]:
    cmd = [weed, "filer.meta.tail", f"-filer={filer}", f"-pathPrefix=/buckets/{bucket}/{prefix}"]
    if since_ns:
        cmd.append(f"-timeAgo={max(1, now_ns - since_ns)}ns")
    return cmd


def _log(text: str) -> None:
    print(f"s3events: {text}", file=sys.stderr, flush=True)


class EventSource:
    """Follows the filer's log and puts one EventBridge event per object created."""

    def __init__(
        self,
        weed: str,
        filer: str,
        bucket: str,
        events: Any,
        *,
        prefix: str = UPLOADS_PREFIX,
        since_ns: int = 0,
        event_bus: str | None = None,
        probe_key: str | None = None,
        ready_file: Path | None = None,
    ) -> None:
        self.weed, self.filer, self.bucket, self.prefix = weed, filer, bucket, prefix
        self.events = events
        self.event_bus = event_bus
        self.probe_key = probe_key
        self.ready_file = ready_file
        self.handled_ns = since_ns
        self.stopping = False
        self._tail: subprocess.Popen[str] | None = None

    def handle(self, message: dict[str, Any]) -> None:
        ts_ns = int(message.get("tsNs", 0))
        if ts_ns and ts_ns <= self.handled_ns:
            return  # replayed after a restart of the tail: already handled
        created = object_created(message, self.bucket, self.prefix)
        if created is not None:
            if created.key == self.probe_key:
                if self.ready_file is not None:
                    self.ready_file.write_text(str(created.ts_ns))
                _log(f"live: saw the probe {created.key}")
            else:
                self.put(created)
        if ts_ns:
            self.handled_ns = ts_ns

    def put(self, created: Created) -> None:
        """``PutEvents`` until EventBridge takes it (the local AWS may be restarting)."""
        delay = 0.2
        while True:
            try:
                answer = self.events.put_events(
                    Entries=[put_events_entry(created, self.bucket, event_bus=self.event_bus)]
                )
                if not answer.get("FailedEntryCount"):
                    _log(f"Object Created {created.key} ({created.reason}, {created.size} bytes)")
                    return
                _log(f"PutEvents refused {created.key}: {answer.get('Entries')}")
            except Exception as error:  # retried, never dropped
                _log(f"PutEvents failed for {created.key}: {error!r}")
            if self.stopping:
                raise SystemExit(1)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def run(self) -> None:
        """Tail, and restart the tail from the last change handled whenever it exits."""
        while not self.stopping:
            since = self.handled_ns - RESTART_MARGIN_NS if self.handled_ns else 0
            cmd = tail_command(self.weed, self.filer, self.bucket, self.prefix, max(since, 0), time.time_ns())
            _log(f"following {' '.join(cmd[1:])}")
            self._tail = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
                preexec_fn=die_with_parent(),  # this process killed (SIGKILL) takes its tail along
            )
            assert self._tail.stdout is not None
            for message in JsonStream().objects(self._tail.stdout):
                self.handle(message)
            code = self._tail.wait()
            if not self.stopping:
                _log(f"the tail exited ({code}); restarting it from the last change handled")
                time.sleep(1.0)

    def stop(self) -> None:
        self.stopping = True
        if self._tail is not None and self._tail.poll() is None:
            self._tail.terminate()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filer", required=True, help="the filer as weed takes it: host:port.grpcPort")
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", default=UPLOADS_PREFIX)
    parser.add_argument("--since-ns", type=int, default=0, help="replay changes since this Unix time (ns)")
    parser.add_argument("--event-bus", help="EventBridge bus (default: the account's default bus)")
    parser.add_argument("--probe-key", help="an object whose creation marks --ready-file instead")
    parser.add_argument("--ready-file", type=Path)
    parser.add_argument("--weed", help="the weed binary (default: as upflow.local.seaweed finds it)")
    args = parser.parse_args(argv)

    import boto3

    from upflow.local.seaweed import weed_binary

    source = EventSource(
        args.weed or weed_binary(),
        args.filer,
        args.bucket,
        boto3.client("events", region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1")),
        prefix=args.prefix,
        since_ns=args.since_ns,
        event_bus=args.event_bus,
        probe_key=args.probe_key,
        ready_file=args.ready_file,
    )

    def stop(_signum: int, _frame: Any) -> None:
        source.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        source.run()
    finally:
        source.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

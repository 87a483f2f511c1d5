"""The local resume journal: which upload a file on this machine belongs to.

One JSON file per file fingerprint (absolute path + size + mtime_ns + API URL)
under ``$UPFLOW_HOME/journal/`` (default ``~/.upflow/journal/``), written
atomically (temp file + ``os.replace``) so a SIGKILL never leaves half an
entry. The journal only *speeds up* a resume: S3's ListParts, through the API,
is the truth about which parts exist.

Tokens are kept separately under ``tokens/<upload_id>.json`` so ``upflow
status/report/retry ID`` still work after the resume entry is gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


def upflow_home(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    explicit = env.get("UPFLOW_HOME")
    return Path(explicit) if explicit else Path.home() / ".upflow"


@dataclass(frozen=True)
class Fingerprint:
    """What identifies "the same file, unchanged" across runs."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> Fingerprint:
        resolved = path.resolve()
        stat = resolved.stat()
        return cls(path=str(resolved), size=stat.st_size, mtime_ns=stat.st_mtime_ns)

    def key(self, api: str) -> str:
        """Stable file name of this fingerprint's entry for API ``api``."""
        text = json.dumps([self.path, self.size, self.mtime_ns, api.rstrip("/")], separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class JournalEntry:
    path: str
    size: int
    mtime_ns: int
    api: str
    upload_id: str
    token: str
    part_size: int
    part_count: int
    created_at: float
    # Timings of the runs so far: bytes PUT to S3 and the seconds spent sending them. A rerun
    # whose upload S3 aborted (lifecycle) states the rate they give when it initiates again.
    bytes_sent: int = 0
    seconds_sending: float = 0.0

    # Fewer bytes or seconds than these measure nothing worth telling the API.
    MIN_MEASURED_BYTES = 8 * 1024 * 1024
    MIN_MEASURED_SECONDS = 1.0

    @property
    def measured_rate(self) -> float | None:
        """Bytes per second the earlier runs achieved, if they sent enough to tell."""
        if self.bytes_sent < self.MIN_MEASURED_BYTES or self.seconds_sending < self.MIN_MEASURED_SECONDS:
            return None
        return self.bytes_sent / self.seconds_sending

    @property
    def fingerprint(self) -> Fingerprint:
        return Fingerprint(self.path, self.size, self.mtime_ns)

    def matches(self, fingerprint: Fingerprint, api: str) -> bool:
        return self.fingerprint == fingerprint and self.api.rstrip("/") == api.rstrip("/")

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> JournalEntry:
        return cls(
            path=str(doc["path"]),
            size=int(doc["size"]),
            mtime_ns=int(doc["mtime_ns"]),
            api=str(doc["api"]),
            upload_id=str(doc["upload_id"]),
            token=str(doc["token"]),
            part_size=int(doc["part_size"]),
            part_count=int(doc["part_count"]),
            created_at=float(doc.get("created_at", 0.0)),
            bytes_sent=int(doc.get("bytes_sent", 0)),
            seconds_sending=float(doc.get("seconds_sending", 0.0)),
        )


def _write_atomically(path: Path, doc: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(doc, out, indent=1, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)  # holds a bearer token
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _read(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


class Journal:
    def __init__(self, home: Path | None = None) -> None:
        self.home = home if home is not None else upflow_home()
        self._entries = self.home / "journal"
        self._tokens = self.home / "tokens"

    # --- resume entries ---
    def _entry_path(self, fingerprint: Fingerprint, api: str) -> Path:
        return self._entries / f"{fingerprint.key(api)}.json"

    def lookup(self, fingerprint: Fingerprint, api: str) -> JournalEntry | None:
        doc = _read(self._entry_path(fingerprint, api))
        if doc is None:
            return None
        try:
            entry = JournalEntry.from_json(doc)
        except (KeyError, TypeError, ValueError):
            return None
        return entry if entry.matches(fingerprint, api) else None

    def record(self, entry: JournalEntry) -> None:
        _write_atomically(self._entry_path(entry.fingerprint, entry.api), asdict(entry))
        self.remember_token(entry.upload_id, entry.token, entry.api)

    def forget(self, fingerprint: Fingerprint, api: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._entry_path(fingerprint, api).unlink()

    # --- tokens ---
    def remember_token(self, upload_id: str, token: str, api: str) -> None:
        _write_atomically(
            self._tokens / f"{_safe_id(upload_id)}.json",
            {"upload_id": upload_id, "token": token, "api": api, "saved_at": time.time()},
        )

    def token_for(self, upload_id: str) -> str | None:
        doc = _read(self._tokens / f"{_safe_id(upload_id)}.json")
        if doc is None or doc.get("upload_id") != upload_id:
            return None
        token = doc.get("token")
        return str(token) if token else None


def _safe_id(upload_id: str) -> str:
    """Upload ids are hex; anything else is hashed so it cannot escape the folder."""
    if upload_id and all(ch.isalnum() or ch in "-_" for ch in upload_id):
        return upload_id
    return hashlib.sha256(upload_id.encode()).hexdigest()

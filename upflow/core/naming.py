"""Filename rules: what a client may call its file, and the key we store it under."""

from __future__ import annotations

import re
import unicodedata

from upflow.definition import UPLOADS_PREFIX

CSV_CONTENT_TYPES = frozenset(
    {"text/csv", "application/csv", "text/comma-separated-values", "application/vnd.ms-excel", "text/plain"}
)
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class FilenameError(ValueError):
    pass


def validate_filename(filename: object, max_length: int) -> str:
    """Return ``filename`` if a client may use it, else raise ``FilenameError``.

    The name is only ever used to build a display name and the tail of a key
    we generate, but refusing traversal and control characters outright gives
    the client a clear answer instead of a silently mangled name.
    """
    if not isinstance(filename, str) or not filename.strip():
        raise FilenameError("filename must be a non-empty string")
    if len(filename) > max_length:
        raise FilenameError(f"filename is longer than {max_length} characters")
    if any(unicodedata.category(ch) == "Cc" for ch in filename):
        raise FilenameError("filename contains control characters")
    if "/" in filename or "\\" in filename or filename in {".", ".."}:
        raise FilenameError("filename must not contain path separators")
    if not filename.lower().endswith(".csv"):
        raise FilenameError("only .csv files are accepted")
    return filename


def validate_content_type(content_type: object) -> str | None:
    if content_type is None:
        return None
    if not isinstance(content_type, str):
        raise FilenameError("content_type must be a string")
    base = content_type.split(";", 1)[0].strip().lower()
    if base not in CSV_CONTENT_TYPES:
        raise FilenameError(f"content type {base!r} is not CSV")
    return base


def sanitise_filename(filename: str) -> str:
    """ASCII-only, separator-free version of ``filename`` for use in an S3 key."""
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    stem, dot, _ext = ascii_name.rpartition(".")
    safe_stem = _SAFE.sub("_", stem if dot else ascii_name).strip("._") or "upload"
    return f"{safe_stem[:120]}.csv"


def object_key(upload_id: str, filename: str) -> str:
    return f"{UPLOADS_PREFIX}{upload_id}/{sanitise_filename(filename)}"


def upload_id_from_key(key: str) -> str | None:
    """The upload id inside ``uploads/<id>/<name>``, or None for other keys."""
    if not key.startswith(UPLOADS_PREFIX):
        return None
    parts = key[len(UPLOADS_PREFIX) :].split("/")
    return parts[0] if len(parts) == 2 and parts[0] else None

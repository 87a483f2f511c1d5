"""Guards against hostile requests: bounded JSON bodies and a per-client token bucket.

``parse_json_object`` turns a request body into a JSON object or an ``HttpError`` that
names what is wrong — never an exception the route does not expect (a 500):

* more bytes than the route's cap → 413 ``too_large`` naming ``body``;
* not UTF-8, not JSON, or JSON that is not an object → 400 ``invalid_json`` naming ``body``;
* nesting deeper than ``max_depth`` → 400 ``too_deep`` naming the top-level field it is in
  (checked before the parser recurses: ``[[[[…]]]]`` 10,000 deep never reaches it);
* a number longer than ``max_number_chars`` (a 5,000-digit integer is refused by Python's
  own int limit with a ValueError), or one that is not finite (``1e999999``, ``NaN``)
  → 400 ``invalid_number`` naming the field that holds it.

``RateLimiter`` is the token bucket ``chalice local`` applies per client address when
``UPFLOW_LOCAL_RATE_LIMIT`` is on; a deployed stack is throttled by API Gateway instead.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from itertools import accumulate
from typing import Any

from upflow.server.uploads import HttpError

BODY = "body"

# A JSON string (escapes included), or one structural character.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}:]', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


class _BadNumber:
    """Stands in for a number the parser met but upflow refuses (found afterwards, with its field)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def too_large(limit: int, what: str = "JSON body") -> HttpError:
    return HttpError(413, "too_large", f"the {what} must be at most {limit} bytes", BODY)


def _depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text`` (strings skipped)."""
    brackets = _BRACKETS.findall(_STRING.sub("", text))
    if not brackets:
        return 0
    return max(accumulate(1 if ch in "[{" else -1 for ch in brackets))


def _deep_field(text: str, max_depth: int) -> str:
    """The top-level key whose value nests deeper than ``max_depth`` (``body`` at the root)."""
    depth, root, key, last = 0, "", None, None
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            root = root or token
            if depth > max_depth:
                return key if root == "{" and key is not None else BODY
        elif token in "]}":
            depth -= 1
        elif token == ":":
            if depth == 1 and last is not None:
                key = last
        elif depth == 1:
            try:
                last = json.loads(token)
            except ValueError:
                last = None
    return BODY


def _bad_number_path(value: Any, path: tuple[str, ...] = ()) -> tuple[tuple[str, ...], _BadNumber] | None:
    if isinstance(value, _BadNumber):
        return path, value
    if isinstance(value, dict):
        for key, inner in value.items():
            found = _bad_number_path(inner, (*path, str(key)))
            if found is not None:
                return found
    elif isinstance(value, list):
        for inner in value:  # a list's elements are named by the list
            found = _bad_number_path(inner, path)
            if found is not None:
                return found
    return None


def parse_json_object(
    raw: bytes | str, *, max_bytes: int, max_depth: int, max_number_chars: int
) -> dict[str, Any]:
    """``raw`` as a JSON object, within the limits; ``HttpError`` (400/413) naming the field otherwise."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    if len(data) > max_bytes:
        raise too_large(max_bytes)
    if not data.strip():
        raise HttpError(400, "invalid_json", "the request body must be a JSON object", BODY)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise HttpError(
            400, "invalid_json", f"the request body is not UTF-8 (byte {error.start})", BODY
        ) from error
    if _depth(text) > max_depth:
        raise HttpError(
            400,
            "too_deep",
            f"the request body nests arrays and objects more than {max_depth} deep",
            _deep_field(text, max_depth),
        )

    def parse_int(token: str) -> Any:
        if len(token) > max_number_chars:
            return _BadNumber(f"a number of {len(token)} characters (at most {max_number_chars})")
        return int(token)

    def parse_float(token: str) -> Any:
        if len(token) > max_number_chars:
            return _BadNumber(f"a number of {len(token)} characters (at most {max_number_chars})")
        value = float(token)
        return value if math.isfinite(value) else _BadNumber(f"{token} is not a finite number")

    def parse_constant(token: str) -> Any:
        return _BadNumber(f"{token} is not a number JSON allows")

    try:
        body = json.loads(text, parse_int=parse_int, parse_float=parse_float, parse_constant=parse_constant)
    except (ValueError, RecursionError) as error:  # JSONDecodeError is a ValueError
        raise HttpError(400, "invalid_json", f"the request body is not valid JSON: {error}", BODY) from error
    if not isinstance(body, dict):
        raise HttpError(400, "invalid_json", "the request body must be a JSON object", BODY)
    found = _bad_number_path(body)
    if found is not None:
        path, bad = found
        field = ".".join(path) or BODY
        raise HttpError(400, "invalid_number", f"{field} is {bad.reason}", field)
    return body


class RateLimiter:
    """Token buckets per client key: ``rate`` requests per second, ``burst`` at once.

    ``acquire`` answers 0 when the request may go, else the seconds until it could. At most
    ``max_clients`` buckets are kept (the least recently seen are dropped: a full bucket).
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key → (tokens, at)
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self._max_clients:
                self._buckets.popitem(last=False)
            return wait


def retry_after(wait: float) -> str:
    """The ``Retry-After`` value (whole seconds, at least 1) for a wait of ``wait`` seconds."""
    return str(max(1, math.ceil(wait)))

"""Per-upload bearer tokens: the upload id and the token's issue time, HMAC-signed under a server secret.

A token is ``<issued_at>.<mac>``: ``issued_at`` the issue time in whole epoch seconds
(decimal), ``mac`` the unpadded base64url HMAC-SHA256 of
``upflow-upload:v2:<issued_at>:<upload_id>``. Stateless on purpose: any API instance
checks a token without a lookup, a token for one upload is worthless for another, and
its issue time cannot be moved without the secret. Pure: callers pass the clock's reading.

A genuine token is good for ``ttl`` seconds after it was issued; after that it is
*expired* (401), but for ``grace`` seconds more it still proves who holds the upload, so
it may be exchanged for a fresh one (``POST /uploads/{id}/token``, docs/design.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

UNAUTHORIZED = "unauthorized"
FORBIDDEN = "forbidden"
TOKEN_EXPIRED = "token_expired"

_TOKEN = re.compile(r"([0-9]{1,12})\.([A-Za-z0-9_-]{43})")


class TokenError(Exception):
    """A request's token does not open the upload: ``status`` 401 or 403, ``code`` for the API."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or (UNAUTHORIZED if status == 401 else FORBIDDEN)


class TokenExpired(TokenError):
    """A genuine token past its lifetime; ``renewable_until`` says until when it can be renewed."""

    def __init__(self, issued_at: int, expired_at: int, renewable_until: int, renewable: bool) -> None:
        if renewable:
            message = "the upload token has expired; renew it"
        else:
            message = "the upload token has expired and is too old to renew"
        super().__init__(401, message, TOKEN_EXPIRED)
        self.issued_at = issued_at
        self.expired_at = expired_at
        self.renewable_until = renewable_until
        self.renewable = renewable


def _mac(secret: bytes, upload_id: str, issued_at: int) -> str:
    if not secret:
        raise ValueError("token secret is empty")
    message = f"upflow-upload:v2:{issued_at}:{upload_id}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def issue_token(secret: bytes, upload_id: str, issued_at: float) -> str:
    """The token of ``upload_id`` issued at ``issued_at`` (epoch seconds; the fraction is dropped)."""
    when = int(issued_at)
    if when < 0:
        raise ValueError("issued_at must not be before the epoch")
    return f"{when}.{_mac(secret, upload_id, when)}"


def bearer_from_header(authorization: str | None) -> str:
    if not authorization:
        raise TokenError(401, "missing Authorization: Bearer <token> header")
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise TokenError(401, "Authorization header must be 'Bearer <token>'")
    return value.strip()


def verify_token(secret: bytes, upload_id: str, token: str) -> int:
    """The issue time of ``token``; ``TokenError`` (403) unless it is genuine and ``upload_id``'s.

    Says nothing about expiry: see :func:`check_token` and :func:`check_renewal`.
    """
    match = _TOKEN.fullmatch(token)
    if match is not None:
        issued_at = int(match.group(1))
        if hmac.compare_digest(_mac(secret, upload_id, issued_at).encode(), match.group(2).encode()):
            return issued_at
    raise TokenError(403, "token does not grant access to this upload")


def _expired(issued_at: int, now: float, ttl_seconds: int, grace_seconds: int) -> TokenExpired | None:
    expired_at = issued_at + ttl_seconds
    if now < expired_at:
        return None
    renewable_until = expired_at + grace_seconds
    return TokenExpired(issued_at, expired_at, renewable_until, renewable=now <= renewable_until)


def check_token(
    secret: bytes, upload_id: str, token: str, *, now: float, ttl_seconds: int, grace_seconds: int
) -> int:
    """The issue time of a genuine, unexpired token of ``upload_id``.

    ``TokenError`` 403 for a forged token or another upload's (checked first: nothing about
    a token's age is told to whoever cannot sign one); ``TokenExpired`` 401 once
    ``ttl_seconds`` have passed since its issue.
    """
    issued_at = verify_token(secret, upload_id, token)
    expired = _expired(issued_at, now, ttl_seconds, grace_seconds)
    if expired is not None:
        raise expired
    return issued_at


def check_renewal(
    secret: bytes, upload_id: str, token: str, *, now: float, ttl_seconds: int, grace_seconds: int
) -> int:
    """The issue time of a genuine token of ``upload_id`` that may be renewed: unexpired, or
    expired less than ``grace_seconds`` ago. ``TokenError`` 403 / ``TokenExpired`` 401 otherwise."""
    issued_at = verify_token(secret, upload_id, token)
    expired = _expired(issued_at, now, ttl_seconds, grace_seconds)
    if expired is not None and not expired.renewable:
        raise expired
    return issued_at


def expires_at(issued_at: int, ttl_seconds: int) -> int:
    return issued_at + ttl_seconds

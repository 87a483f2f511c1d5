"""Per-upload bearer tokens: an HMAC of the upload id under a server secret.

Stateless on purpose: any API instance can check a token without a lookup,
and a token for one upload is worthless for another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


class TokenError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _mac(secret: bytes, upload_id: str) -> bytes:
    if not secret:
        raise ValueError("token secret is empty")
    return hmac.new(secret, b"upflow-upload:" + upload_id.encode(), hashlib.sha256).digest()


def issue_token(secret: bytes, upload_id: str) -> str:
    return base64.urlsafe_b64encode(_mac(secret, upload_id)).rstrip(b"=").decode()


def bearer_from_header(authorization: str | None) -> str:
    if not authorization:
        raise TokenError(401, "missing Authorization: Bearer <token> header")
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise TokenError(401, "Authorization header must be 'Bearer <token>'")
    return value.strip()


def check_token(secret: bytes, upload_id: str, token: str) -> None:
    """Raise ``TokenError`` (403) unless ``token`` belongs to ``upload_id``."""
    expected = issue_token(secret, upload_id)
    if not hmac.compare_digest(expected.encode(), token.encode("utf-8", "replace")):
        raise TokenError(403, "token does not grant access to this upload")

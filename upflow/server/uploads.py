"""The upload service: the multipart-upload half of the HTTP API.

Routes in ``api/app.py`` parse HTTP and call these methods; everything here
takes already-decoded JSON and answers JSON-ready dicts or raises
``HttpError`` with the status, code and field the client sees.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Any

from upflow.aws import telemetry
from upflow.aws.dynamo import ConditionFailed, Item, Table
from upflow.aws.s3 import NoSuchUpload, S3Store, UploadedPart
from upflow.core import naming, tokens
from upflow.core.partsize import PartPlan, PartPlanError, plan_parts
from upflow.definition import (
    METRIC_BYTES_UPLOADED,
    METRIC_PARTS_SIGNED,
    METRIC_UPLOADS_ABORTED,
    METRIC_UPLOADS_INITIATED,
    RuntimeConfig,
)
from upflow.server.states import ABORTED, UPLOAD, UPLOADED, UPLOADING

ERROR_CODES = (
    "invalid_document",
    "invalid_amount",
    "missing_field",
    "extra_fields",
    "row_too_long",
    "encoding_error",
)


class HttpError(Exception):
    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        field: str | None = None,
        *,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.field = field
        # More of the answer's fields (numbers a client can act on), and response headers.
        self.details = dict(details or {})
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        body.update(self.details)
        return body


def upload_pk(upload_id: str) -> str:
    """Partition of the status table holding one upload's items (upload, chunks)."""
    return f"UPLOAD#{upload_id}"


def upload_key(upload_id: str) -> dict[str, str]:
    return {"pk": upload_pk(upload_id), "sk": "META"}


def epoch_ms(timestamp: float) -> int:
    """Epoch milliseconds (an int: DynamoDB takes no floats), as chunk items time their work."""
    return int(timestamp * 1000)


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


def _bits_per_second(rate: float) -> str:
    return f"{rate * 8 / 1e6:.0f} Mbit/s"


def _size_text(size: int) -> str:
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6)):
        if size >= scale:
            return f"{size / scale:.2f} {unit}"
    return f"{size} bytes"


AUTHORIZATION = "authorization"
RATE_FIELD = "rate_bytes_per_second"


def _stated_rate(body: Mapping[str, Any]) -> float | None:
    """The client's stated upload rate (bytes per second), if any; 400 naming it if it is no rate."""
    rate = body.get(RATE_FIELD)
    if rate is None:
        return None
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
        raise HttpError(
            400, "invalid_field", f"{RATE_FIELD} must be a positive number of bytes per second", RATE_FIELD
        )
    return float(rate)


def _claimed_etags(body: Mapping[str, Any]) -> dict[int, str]:
    claimed = body.get("parts")
    if not isinstance(claimed, list):
        return {}
    return {
        entry["part_number"]: entry["etag"].strip('"')
        for entry in claimed
        if isinstance(entry, dict)
        and isinstance(entry.get("part_number"), int)
        and isinstance(entry.get("etag"), str)
    }


def one_entry_per_part(
    listed: list[UploadedPart], plan: PartPlan, body: Mapping[str, Any]
) -> dict[int, UploadedPart]:
    """ListParts by part number. S3 lists each part once (its last upload); an S3-compatible
    store may list every upload of a part (SeaweedFS does). Then the one whose ETag the client
    names in ``parts`` is taken (complete uses that version); without a name, one that does not
    fit the plan wins, so the plan check refuses rather than guessing which upload is current."""
    claimed = _claimed_etags(body)
    parts: dict[int, UploadedPart] = {}
    for part in listed:
        number = part.part_number
        kept = parts.get(number)
        if kept is not None:
            wanted = claimed.get(number)
            if wanted is not None:
                if kept.etag.strip('"') == wanted:
                    continue
            elif not (1 <= number <= plan.part_count and kept.size == plan.expected_size(number)):
                continue
        parts[number] = part
    return parts


def check_parts_against_plan(plan: PartPlan, parts: Mapping[int, UploadedPart]) -> None:
    """ListParts' answer against the upload's plan, before anything is completed.

    Every part number within 1..part_count and each present; every part but the last exactly
    ``part_size``, the last the remainder (≤ ``part_size``); so the count is ``part_count``
    and the total the declared size (both checked anyway). 422 naming ``parts`` otherwise.
    """
    beyond = sorted(n for n in parts if not 1 <= n <= plan.part_count)
    if beyond:
        raise HttpError(
            422, "unexpected_part", f"parts {beyond[:10]} are outside 1..{plan.part_count}", "parts"
        )
    missing = [n for n in range(1, plan.part_count + 1) if n not in parts]
    if missing:
        raise HttpError(
            422, "missing_parts", f"{len(missing)} parts are missing, first {missing[:10]}", "parts"
        )
    for number in range(1, plan.part_count + 1):
        expected, size = plan.expected_size(number), parts[number].size
        if size != expected:
            rule = (
                "the last part holds the rest of the file"
                if number == plan.part_count
                else f"every part but the last has {plan.part_size}"
            )
            message = f"part {number} has {size} bytes, expected {expected} ({rule})"
            raise HttpError(422, "wrong_part_size", message, "parts")
    total = sum(part.size for part in parts.values())
    if len(parts) != plan.part_count or total != plan.object_size:
        raise HttpError(
            422,
            "wrong_total_size",
            f"{len(parts)} parts of {total} bytes in all; the upload declared "
            f"{plan.part_count} parts of {plan.object_size} bytes",
            "parts",
        )


def _part_numbers(body: Mapping[str, Any], part_count: int, max_per_call: int, prefix: str = "") -> list[int]:
    field = f"{prefix}part_numbers"
    raw = body.get("part_numbers")
    if not isinstance(raw, list) or not raw:
        raise HttpError(400, "invalid_field", "part_numbers must be a non-empty list", field)
    if len(raw) > max_per_call:
        raise HttpError(400, "too_many_parts", f"at most {max_per_call} part numbers per call", field)
    numbers: list[int] = []
    for value in raw:
        if isinstance(value, bool) or not isinstance(value, int):
            raise HttpError(400, "invalid_field", "part numbers must be integers", field)
        if not 1 <= value <= part_count:
            raise HttpError(400, "invalid_part_number", f"part {value} is outside 1..{part_count}", field)
        numbers.append(value)
    if len(set(numbers)) != len(numbers):
        raise HttpError(400, "invalid_field", "part numbers must not repeat", field)
    return numbers


def _checksums(body: Mapping[str, Any], numbers: list[int], prefix: str = "") -> dict[int, str]:
    field = f"{prefix}checksums"
    raw = body.get("checksums")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise HttpError(400, "invalid_field", "checksums must be an object of part number to CRC32", field)
    wanted = set(numbers)
    parsed: dict[int, str] = {}
    for key, value in raw.items():
        if not (isinstance(key, str) and key.isascii() and key.isdigit() and int(key) in wanted):
            raise HttpError(400, "invalid_field", f"checksum for part {key!r} not requested", field)
        try:
            decoded = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
        except (binascii.Error, ValueError):
            decoded = b""
        if len(decoded) != 4:
            raise HttpError(400, "invalid_checksum", f"checksum of part {key} is not a base64 CRC32", field)
        parsed[int(key)] = value
    return parsed


@dataclass(frozen=True)
class PartsToSign:
    """A checked request to sign parts: a sign call's, or the ``sign`` of ``POST /uploads``."""

    part_numbers: tuple[int, ...]
    checksums: dict[int, str]


def _signing_request(
    body: Mapping[str, Any], part_count: int, max_per_call: int, checksum: bool, prefix: str = ""
) -> PartsToSign:
    """The part numbers and checksums of a request to sign parts, checked against the upload."""
    numbers = _part_numbers(body, part_count, max_per_call, prefix)
    checksums = _checksums(body, numbers, prefix)
    if checksum and len(checksums) != len(numbers):
        missing = sorted(set(numbers) - set(checksums))
        raise HttpError(
            400,
            "checksum_required",
            f"this upload verifies CRC32 per part; checksums missing for parts {missing[:10]}",
            f"{prefix}checksums",
        )
    if checksums and not checksum:
        raise HttpError(
            400, "invalid_field", "this upload was created without checksums", f"{prefix}checksums"
        )
    return PartsToSign(tuple(numbers), checksums)


@dataclass(frozen=True)
class Upload:
    """The upload item, as far as the upload half of the API needs it."""

    upload_id: str
    key: str
    mpu_id: str
    status: str
    plan: PartPlan
    checksum: bool

    @classmethod
    def from_item(cls, item: Item) -> Upload:
        return cls(
            upload_id=str(item["upload_id"]),
            key=str(item["key"]),
            mpu_id=str(item["mpu_id"]),
            status=str(item["status"]),
            plan=PartPlan(
                part_size=int(item["part_size"]),
                part_count=int(item["part_count"]),
                object_size=int(item["size"]),
            ),
            checksum=bool(item.get("checksum", False)),
        )


class UploadService:
    def __init__(
        self,
        config: RuntimeConfig,
        store: S3Store,
        status_table: Table,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._limits = config.limits
        self._store = store
        self._table = status_table
        self._clock = clock

    # --- auth ------------------------------------------------------------
    def _token_times(self) -> dict[str, int]:
        return {
            "ttl_seconds": self._limits.token_ttl_seconds,
            "grace_seconds": self._limits.token_renewal_grace_seconds,
        }

    @staticmethod
    def _token_refusal(upload_id: str, error: tokens.TokenError) -> HttpError:
        if isinstance(error, tokens.TokenExpired):
            if error.renewable:
                message = (
                    f"the upload token expired at {iso(error.expired_at)}; exchange it for a new one "
                    f"with POST /uploads/{upload_id}/token (Authorization: Bearer <this token>) "
                    f"before {iso(error.renewable_until)}, then repeat the request with the new token"
                )
            else:
                message = (
                    f"the upload token expired at {iso(error.expired_at)} and could be renewed only "
                    f"until {iso(error.renewable_until)}; start a new upload"
                )
            return HttpError(
                401,
                error.code,
                message,
                AUTHORIZATION,
                details={"renewable": error.renewable, "renewable_until": iso(error.renewable_until)},
            )
        return HttpError(error.status, error.code, error.message, AUTHORIZATION)

    def authorize(self, upload_id: str, authorization: str | None) -> None:
        """Let the request through with a genuine, unexpired token of ``upload_id``.

        401 ``unauthorized`` without one, 403 ``forbidden`` for a forged token or another
        upload's, 401 ``token_expired`` (saying how to renew it) past its lifetime.
        """
        try:
            token = tokens.bearer_from_header(authorization)
            tokens.check_token(
                self._config.token_secret, upload_id, token, now=self._clock(), **self._token_times()
            )
        except tokens.TokenError as error:
            raise self._token_refusal(upload_id, error) from error

    def _issue(self, upload_id: str, now: float) -> dict[str, str]:
        issued_at = int(now)
        return {
            "token": tokens.issue_token(self._config.token_secret, upload_id, issued_at),
            "token_expires_at": iso(tokens.expires_at(issued_at, self._limits.token_ttl_seconds)),
        }

    def renew_token(self, upload_id: str, authorization: str | None) -> dict[str, Any]:
        """``POST /uploads/{id}/token``: a fresh token for the holder of a genuine one.

        The old token may have expired up to ``token_renewal_grace_seconds`` (the lifecycle)
        ago: it still proves the caller was given this upload, and nobody else can sign one.
        """
        now = self._clock()
        try:
            token = tokens.bearer_from_header(authorization)
            tokens.check_renewal(self._config.token_secret, upload_id, token, now=now, **self._token_times())
        except tokens.TokenError as error:
            raise self._token_refusal(upload_id, error) from error
        item = self.load(upload_id)
        return {"upload_id": upload_id, "status": item["status"], **self._issue(upload_id, now)}

    def load(self, upload_id: str) -> Item:
        item = self._table.get(upload_key(upload_id))
        if item is None:
            raise HttpError(404, "not_found", f"upload {upload_id} does not exist")
        return item

    # --- routes ----------------------------------------------------------
    def plan(self, size: Any) -> PartPlan:
        """The part plan for an object of ``size`` bytes; ``HttpError`` naming ``size`` if none fits."""
        if size is None:
            raise HttpError(400, "missing_field", "size is required", "size")
        if isinstance(size, bool) or not isinstance(size, int):
            raise HttpError(400, "invalid_field", "size must be an integer", "size")
        if size <= 0:
            raise HttpError(400, "invalid_size", "size must be a positive number of bytes", "size")
        if size > self._limits.max_upload_size:
            raise HttpError(
                413, "too_large", f"size exceeds the maximum of {self._limits.max_upload_size} bytes", "size"
            )
        try:
            return plan_parts(size, self._limits)
        except PartPlanError as error:
            raise HttpError(413, "too_large", str(error), "size") from error

    def _first_parts(self, body: Mapping[str, Any], plan: PartPlan, checksum: bool) -> PartsToSign | None:
        """The parts ``POST /uploads`` is asked to sign at once (``sign``), checked before S3 is called.

        None when there is no ``sign``, or when its checksums were computed for another
        part size than the plan's (the client guessed; it signs those parts later).
        """
        raw = body.get("sign")
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise HttpError(
                400, "invalid_field", "sign must be an object {part_size, part_numbers, checksums}", "sign"
            )
        part_size = raw.get("part_size")
        if isinstance(part_size, bool) or not isinstance(part_size, int) or part_size <= 0:
            raise HttpError(
                400, "invalid_field", "sign.part_size must be the positive part size used", "sign.part_size"
            )
        if part_size != plan.part_size:
            return None  # its part numbers and checksums belong to another plan
        return _signing_request(
            raw, plan.part_count, self._limits.max_parts_per_sign_call, checksum, prefix="sign."
        )

    def upload_window(self, size: int, rate: float | None) -> dict[str, Any] | None:
        """Can ``size`` bytes arrive before S3 aborts the upload (``lifecycle_days``, less a margin)?

        At a stated ``rate``: 422 ``upload_window_too_short`` naming ``size`` when not. Without
        one: a warning (answered, not raised) when not at ``assumed_rate_bytes_per_second``.
        """
        window = self._limits.upload_window_seconds
        needed_rate = size / window
        days = self._limits.lifecycle_days
        lifecycle = f"{days} day{'s' if days != 1 else ''}"
        if rate is not None:
            needed = size / rate
            if needed > window:
                raise HttpError(
                    422,
                    "upload_window_too_short",
                    f"at {_bits_per_second(rate)} this {_size_text(size)} file needs {_hours(needed)}, "
                    f"but an upload has {_hours(window)} (S3 aborts unfinished uploads after "
                    f"{lifecycle}): it needs at least {_bits_per_second(needed_rate)}. Upload from a "
                    "faster link, split the file, or ask for a stack with a longer lifecycleDays",
                    "size",
                    details={
                        "needed_seconds": math.ceil(needed),
                        "window_seconds": window,
                        "needed_rate_bytes_per_second": math.ceil(needed_rate),
                    },
                )
            return None
        assumed = self._limits.assumed_rate_bytes_per_second
        if size / assumed <= window:
            return None
        return {
            "code": "upload_window_tight",
            "message": (
                f"this {_size_text(size)} file must arrive within {_hours(window)} (S3 aborts unfinished "
                f"uploads after {lifecycle}): that takes at least {_bits_per_second(needed_rate)} "
                f"sustained ({_hours(size / assumed)} at {_bits_per_second(assumed)})"
            ),
            "window_seconds": window,
            "needed_rate_bytes_per_second": math.ceil(needed_rate),
        }

    def initiate(self, body: Mapping[str, Any]) -> dict[str, Any]:
        try:
            filename = naming.validate_filename(body.get("filename"), self._limits.max_filename_length)
        except naming.FilenameError as error:
            raise HttpError(400, "invalid_filename", str(error), "filename") from error
        plan = self.plan(body.get("size"))
        size = plan.object_size
        warning = self.upload_window(size, _stated_rate(body))
        try:
            content_type = naming.validate_content_type(body.get("content_type"))
        except naming.FilenameError as error:
            raise HttpError(400, "invalid_content_type", str(error), "content_type") from error
        checksum_choice = body.get("checksum_algorithm", "CRC32")
        if checksum_choice not in ("CRC32", None):
            raise HttpError(
                400, "invalid_field", "checksum_algorithm must be 'CRC32' or null", "checksum_algorithm"
            )
        checksum = checksum_choice == "CRC32"
        first_parts = self._first_parts(body, plan, checksum)

        upload_id = uuid.uuid4().hex
        key = naming.object_key(upload_id, filename)
        mpu_id = self._store.create_multipart_upload(key, content_type or "text/csv", checksum=checksum)
        now = self._clock()
        expires = now + self._limits.lifecycle_days * 86400
        item = {
            **upload_key(upload_id),
            "upload_id": upload_id,
            "key": key,
            "filename": filename,
            "size": size,
            "part_size": plan.part_size,
            "part_count": plan.part_count,
            "mpu_id": mpu_id,
            "checksum": checksum,
            "status": UPLOAD.initial,
            "created_at": iso(now),
            "updated_at": iso(now),
        }
        self._table.put_new(item, key_attr="pk")
        telemetry.work_on(upload_id)
        telemetry.emit(METRIC_UPLOADS_INITIATED, 1)
        return {
            "upload_id": upload_id,
            "key": key,
            "part_size": plan.part_size,
            "part_count": plan.part_count,
            "checksum_algorithm": "CRC32" if checksum else None,
            **self._issue(upload_id, now),
            "expires_at": iso(expires),
            # The first parts' URLs ride on this answer, so the first PUT does not
            # wait for a sign call (one round trip less before the first byte moves).
            "signed": None if first_parts is None else self._presign(key, mpu_id, first_parts),
            **({} if warning is None else {"warning": warning}),
        }

    def _uploading(self, upload_id: str) -> Upload:
        upload = Upload.from_item(self.load(upload_id))
        if upload.status == ABORTED:
            raise HttpError(409, "upload_aborted", "the upload was aborted")
        if upload.status != UPLOADING:
            raise HttpError(409, "upload_completed", "the upload is already complete")
        return upload

    def sign_parts(self, upload_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        upload = self._uploading(upload_id)
        parts = _signing_request(
            body, upload.plan.part_count, self._limits.max_parts_per_sign_call, upload.checksum
        )
        return self._presign(upload.key, upload.mpu_id, parts)

    def _presign(self, key: str, mpu_id: str, parts: PartsToSign) -> dict[str, Any]:
        """``{urls, headers, expires_at}`` for ``parts``: what sign calls answer."""
        expires_in = self._limits.url_expiry_seconds
        urls: dict[str, str] = {}
        headers: dict[str, dict[str, str]] = {}
        for number in parts.part_numbers:
            signed = self._store.presign_part(key, mpu_id, number, expires_in, parts.checksums.get(number))
            urls[str(number)] = signed.url
            headers[str(number)] = signed.headers
        telemetry.emit(METRIC_PARTS_SIGNED, len(urls))
        return {"urls": urls, "headers": headers, "expires_at": iso(self._clock() + expires_in)}

    def _list(self, upload: Upload) -> list[UploadedPart]:
        try:
            return self._store.list_parts(upload.key, upload.mpu_id)
        except NoSuchUpload as error:
            raise HttpError(409, "upload_gone", "S3 no longer has this multipart upload") from error

    def list_parts(self, upload_id: str) -> dict[str, Any]:
        upload = self._uploading(upload_id)
        return {
            "parts": [
                {
                    "part_number": part.part_number,
                    "size": part.size,
                    "etag": part.etag,
                    "checksum_crc32": part.checksum_crc32,
                }
                for part in self._list(upload)
            ]
        }

    def complete(self, upload_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        upload = self._uploading(upload_id)
        parts = one_entry_per_part(self._list(upload), upload.plan, body)
        check_parts_against_plan(upload.plan, parts)
        parts = self._merge_client_parts(body, parts)
        ordered = [parts[n] for n in range(1, upload.plan.part_count + 1)]
        try:
            etag = self._store.complete_multipart_upload(upload.key, upload.mpu_id, ordered)
        except NoSuchUpload as error:
            raise HttpError(409, "upload_completed", "the upload is already complete") from error
        telemetry.emit(METRIC_BYTES_UPLOADED, upload.plan.object_size)
        try:
            self._table.update(
                upload_key(upload_id),
                UPLOAD.condition(to=UPLOADED, from_=UPLOADING).update(
                    set={"updated_at": iso(self._clock()), "etag": etag}
                ),
            )
        except ConditionFailed:
            # The processor may already have moved it on (the S3 event can beat us here).
            pass
        return {
            "upload_id": upload_id,
            "status": UPLOADED,
            "key": upload.key,
            "size": upload.plan.object_size,
            "etag": etag,
        }

    @staticmethod
    def _merge_client_parts(
        body: Mapping[str, Any], parts: dict[int, UploadedPart]
    ) -> dict[int, UploadedPart]:
        """Check the client's ``{part_number, etag, checksum_crc32?}`` against S3's list.

        ETags must match. A client CRC32 fills in a part whose ListParts entry
        has none (some S3-compatible stores do not return it, yet require it
        at complete for a CRC32 upload); where S3 has one, they must agree.
        """
        claimed = body.get("parts")
        if claimed is None:
            return parts
        merged = dict(parts)
        if not isinstance(claimed, list):
            raise HttpError(400, "invalid_field", "parts must be a list of {part_number, etag}", "parts")
        for entry in claimed:
            if not isinstance(entry, dict):
                raise HttpError(400, "invalid_field", "parts must be a list of {part_number, etag}", "parts")
            number, etag = entry.get("part_number"), entry.get("etag")
            if not isinstance(number, int) or not isinstance(etag, str) or number not in parts:
                raise HttpError(400, "invalid_field", f"unknown part in parts: {entry!r}", "parts")
            if etag.strip('"') != parts[number].etag.strip('"'):
                raise HttpError(422, "etag_mismatch", f"part {number}'s ETag differs from S3's", "parts")
            checksum = entry.get("checksum_crc32")
            if checksum is None:
                continue
            stored = parts[number].checksum_crc32
            if not isinstance(checksum, str) or (stored is not None and stored != checksum):
                raise HttpError(422, "checksum_mismatch", f"part {number}'s CRC32 differs from S3's", "parts")
            if stored is None:
                merged[number] = replace(parts[number], checksum_crc32=checksum)
        return merged

    def abort(self, upload_id: str) -> dict[str, Any]:
        upload = Upload.from_item(self.load(upload_id))
        if upload.status == ABORTED:
            return {"upload_id": upload_id, "status": ABORTED}
        if upload.status != UPLOADING:
            raise HttpError(409, "upload_completed", "a completed upload cannot be aborted")
        try:
            self._table.update(
                upload_key(upload_id),
                UPLOAD.condition(to=ABORTED, from_=UPLOADING).update(set={"updated_at": iso(self._clock())}),
            )
        except ConditionFailed as error:
            raise HttpError(409, "upload_completed", "the upload changed state meanwhile") from error
        telemetry.emit(METRIC_UPLOADS_ABORTED, 1)
        self._store.abort_multipart_upload(upload.key, upload.mpu_id)
        return {"upload_id": upload_id, "status": ABORTED}

    def status(self, upload_id: str) -> dict[str, Any]:
        return status_document(self.load(upload_id))


def _decimal_text(value: Any) -> str:
    amount = Decimal(value) if value is not None else Decimal(0)
    return f"{amount:.2f}" if amount == amount.quantize(Decimal("0.01")) else str(amount)


def plain(value: Any) -> Any:
    """DynamoDB's ``Decimal`` numbers as JSON-ready ints (or decimal strings)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, dict):
        return {key: plain(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [plain(inner) for inner in value]
    return value


def summary_from_item(item: Item) -> dict[str, Any]:
    errors = {
        code: int(item.get(f"err_{code}", 0)) for code in ERROR_CODES if int(item.get(f"err_{code}", 0))
    }
    return {
        "upload_id": item["upload_id"],
        "status": item["status"],
        "rows_total": int(item.get("rows_total", 0)),
        "rows_valid": int(item.get("rows_valid", 0)),
        "rows_invalid": int(item.get("rows_invalid", 0)),
        "errors": errors,
        "amount_valid": _decimal_text(item.get("amount_valid")),
    }


def money_text(value: Any) -> str:
    """An exact amount as two-place decimal text ("1234.50"), never scientific notation."""
    with localcontext() as context:
        context.prec = 80
        return f"{Decimal(value).quantize(Decimal('0.01')):f}"


def document_total(entry: Mapping[str, Any]) -> dict[str, Any]:
    """One document's consolidated total as the API answers it (results pages, ``top_documents``)."""
    return {
        "document": str(entry["document"]),
        "type": str(entry["doc_type"]),
        "rows": int(entry["rows"]),
        "amount": money_text(entry["amount"]),
    }


def status_document(item: Item, chunk_view: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The status document of ``GET /uploads/{id}`` from the upload item; ``chunk_view``
    (``upflow.server.chunkview``, read from the chunk items) joins ``chunks`` when given."""
    error = None
    if item.get("error_code"):
        error = {"code": item["error_code"], "message": item.get("error_message", "")}
    document: dict[str, Any] = {
        "upload_id": item["upload_id"],
        "key": item["key"],
        "filename": item["filename"],
        "size": int(item["size"]),
        "part_size": int(item["part_size"]),
        "part_count": int(item["part_count"]),
        "status": item["status"],
        "created_at": item["created_at"],
        "updated_at": item.get("updated_at", item["created_at"]),
        "error": error,
        "format": plain(item.get("format")),
        "chunks": {
            "total": int(item.get("chunk_total", 0)),
            "done": int(item.get("chunks_done", 0)),
            "failed": int(item.get("chunks_failed", 0)),
            **(chunk_view or {}),
        },
        # The reduce: zero until every chunk is mapped (docs/design.md, "Consolidation").
        "shards": {
            "total": int(item.get("shard_total", 0)),
            "done": int(item.get("shards_done", 0)),
            "failed": int(item.get("shards_failed", 0)),
        },
        "summary": summary_from_item(item),
        "first_errors": plain(item.get("first_errors", [])),
        "report_key": item.get("report_key"),
    }
    # Written with the results (docs/design.md): how many documents, and the largest by amount.
    if "documents_total" in item:
        document["documents_total"] = int(item["documents_total"])
    if "top_documents" in item:
        document["top_documents"] = [document_total(entry) for entry in item["top_documents"]]
    return document

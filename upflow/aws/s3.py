"""S3 adapter: multipart uploads, presigning, range reads, small objects, streamed objects."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from botocore.exceptions import ClientError

from upflow.aws.telemetry import traced
from upflow.definition import S3_MAX_PART_SIZE, S3_MAX_PARTS, S3_MIN_PART_SIZE

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CHECKSUM_ALGORITHM = "CRC32"
# UploadPartCopy requests in flight in one join (each copies up to 5 GiB inside S3).
_JOIN_COPIES = 8
CHECKSUM_HEADER = "x-amz-checksum-crc32"
CHECKSUM_ALGORITHM_HEADER = "x-amz-sdk-checksum-algorithm"


class NoSuchUpload(Exception):
    """The multipart upload does not exist (completed, aborted or never was)."""


class NoSuchKey(Exception):
    pass


@dataclass(frozen=True)
class UploadedPart:
    part_number: int
    size: int
    etag: str
    checksum_crc32: str | None


@dataclass(frozen=True)
class PresignedPart:
    url: str
    headers: dict[str, str]


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class S3Store:
    """All S3 calls upflow makes, against one bucket."""

    def __init__(self, client: S3Client, bucket: str) -> None:
        self._client = client
        self.bucket = bucket

    # --- multipart -------------------------------------------------------
    def create_multipart_upload(self, key: str, content_type: str, checksum: bool) -> str:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "ContentType": content_type}
        if checksum:
            kwargs["ChecksumAlgorithm"] = CHECKSUM_ALGORITHM
        return self._client.create_multipart_upload(**kwargs)["UploadId"]

    def presign_part(
        self, key: str, mpu_id: str, part_number: int, expires_in: int, checksum_crc32: str | None
    ) -> PresignedPart:
        """A URL for one ``UploadPart``; with a checksum, the URL signs its headers.

        S3 then refuses (400 BadDigest) bytes whose CRC32 differs from the signed
        value, and (403) a request that leaves the signed headers out.
        """
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "UploadId": mpu_id,
            "PartNumber": part_number,
        }
        headers: dict[str, str] = {}
        if checksum_crc32 is not None:
            params["ChecksumCRC32"] = checksum_crc32
            params["ChecksumAlgorithm"] = CHECKSUM_ALGORITHM
            headers = {CHECKSUM_HEADER: checksum_crc32, CHECKSUM_ALGORITHM_HEADER: CHECKSUM_ALGORITHM}
        url = self._client.generate_presigned_url("upload_part", Params=params, ExpiresIn=expires_in)
        return PresignedPart(url=url, headers=headers)

    def list_parts(self, key: str, mpu_id: str) -> list[UploadedPart]:
        """Every uploaded part, following ``PartNumberMarker`` through all pages."""
        parts: list[UploadedPart] = []
        marker = 0
        while True:
            try:
                page = self._client.list_parts(
                    Bucket=self.bucket, Key=key, UploadId=mpu_id, PartNumberMarker=marker, MaxParts=1000
                )
            except ClientError as error:
                if _error_code(error) == "NoSuchUpload":
                    raise NoSuchUpload(mpu_id) from error
                raise
            for part in page.get("Parts", []):
                parts.append(
                    UploadedPart(
                        part_number=part["PartNumber"],
                        size=part["Size"],
                        etag=part["ETag"],
                        checksum_crc32=part.get("ChecksumCRC32"),
                    )
                )
            if not page.get("IsTruncated"):
                return parts
            marker = int(page["NextPartNumberMarker"])

    def complete_multipart_upload(self, key: str, mpu_id: str, parts: list[UploadedPart]) -> str:
        completed: list[dict[str, Any]] = []
        for part in parts:
            entry: dict[str, Any] = {"PartNumber": part.part_number, "ETag": part.etag}
            if part.checksum_crc32:
                entry["ChecksumCRC32"] = part.checksum_crc32
            completed.append(entry)
        try:
            answer = self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=mpu_id,
                MultipartUpload={"Parts": completed},  # type: ignore[typeddict-item]
            )
        except ClientError as error:
            if _error_code(error) == "NoSuchUpload":
                raise NoSuchUpload(mpu_id) from error
            raise
        return str(answer.get("ETag", ""))

    def abort_multipart_upload(self, key: str, mpu_id: str) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=mpu_id)
        except ClientError as error:
            if _error_code(error) != "NoSuchUpload":
                raise

    def upload_part(self, key: str, mpu_id: str, part_number: int, data: bytes) -> UploadedPart:
        """One part of a multipart upload this process writes itself (not a presigned one)."""
        answer = self._client.upload_part(
            Bucket=self.bucket, Key=key, UploadId=mpu_id, PartNumber=part_number, Body=data
        )
        # The SDK may checksum the part on its own (CRC32 by default): complete must repeat it.
        return UploadedPart(part_number, len(data), answer["ETag"], answer.get("ChecksumCRC32"))

    @traced
    def join(self, key: str, sources: Sequence[str], content_type: str = "text/csv") -> None:
        """Make ``key`` the objects ``sources`` one after another, copied by S3 itself (one
        UploadPartCopy each, a few at once): nothing passes through this process. Every
        source but the last must be at least 5 MiB, none over 5 GiB. A failure aborts."""
        if not sources or len(sources) > S3_MAX_PARTS:
            raise ValueError(f"join needs 1..{S3_MAX_PARTS} sources, not {len(sources)}")
        mpu_id = self.create_multipart_upload(key, content_type, checksum=False)

        def copy(number: int, source: str) -> UploadedPart:
            answer = self._client.upload_part_copy(
                Bucket=self.bucket,
                Key=key,
                UploadId=mpu_id,
                PartNumber=number,
                CopySource={"Bucket": self.bucket, "Key": source},
            )
            result = answer["CopyPartResult"]
            return UploadedPart(number, 0, str(result["ETag"]), result.get("ChecksumCRC32"))

        try:
            with ThreadPoolExecutor(max_workers=min(_JOIN_COPIES, len(sources))) as pool:
                parts = list(pool.map(copy, range(1, len(sources) + 1), sources))
            self.complete_multipart_upload(key, mpu_id, parts)
        except BaseException:
            self.abort_multipart_upload(key, mpu_id)
            raise

    def writer(self, key: str, part_size: int, content_type: str = "text/csv") -> ObjectWriter:
        """An object written as it is produced (see :class:`ObjectWriter`)."""
        return ObjectWriter(self, key, part_size, content_type)

    # --- objects ---------------------------------------------------------
    def object_size(self, key: str) -> int:
        try:
            return int(self._client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as error:
            if _error_code(error) in {"404", "NoSuchKey", "NotFound"}:
                raise NoSuchKey(key) from error
            raise

    @traced
    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)``; fewer only at the end of the object."""
        if end <= start:
            return b""
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end - 1}")[
                "Body"
            ]
        except ClientError as error:
            if _error_code(error) == "InvalidRange":
                return b""
            if _error_code(error) in {"NoSuchKey", "404"}:
                raise NoSuchKey(key) from error
            raise
        with body:
            return body.read()

    def iter_lines(
        self, key: str, piece: int = 256 * 1024, prefetch: Executor | None = None
    ) -> Iterator[bytes]:
        """The object's lines (each with its ``\\n``), read lazily in ranged pieces: many
        objects can be streamed side by side in bounded memory (about two pieces each).
        ``prefetch``: the next piece is read on it while this one is consumed, so a merge of
        many objects waits on no GET."""

        def fetch(at: int) -> bytes:
            return self.read_range(key, at, at + piece)

        pending = b""
        offset = 0
        ahead: Future[bytes] | None = prefetch.submit(fetch, 0) if prefetch else None
        while True:
            data = ahead.result() if ahead is not None else fetch(offset)
            offset += len(data)
            if prefetch is not None and len(data) == piece:
                ahead = prefetch.submit(fetch, offset)
            lines = (pending + data).split(b"\n")
            pending = lines.pop()
            for line in lines:
                yield line + b"\n"
            if len(data) < piece:
                break
        if pending:
            yield pending

    def put_bytes(self, key: str, data: bytes, content_type: str = "text/csv") -> None:
        self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def open_stream(self, key: str, buffer_size: int = 256 * 1024) -> BinaryIO:
        """The object's bytes as a stream read as they arrive (one GET; close it when done)."""
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as error:
            if _error_code(error) in {"NoSuchKey", "404"}:
                raise NoSuchKey(key) from error
            raise
        # botocore's StreamingBody is a raw stream (readinto); buffered, it reads as a file does.
        return io.BufferedReader(cast(io.RawIOBase, body), buffer_size)

    def exists(self, key: str) -> bool:
        try:
            self.object_size(key)
        except NoSuchKey:
            return False
        return True

    def presign_get(self, key: str, expires_in: int, filename: str) -> str:
        return self._client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ResponseContentDisposition": f'attachment; filename="{filename}"',
            },
            ExpiresIn=expires_in,
        )


class ObjectWriter:
    """An object written as it is produced, holding at most about one part in memory.

    Bytes are buffered up to ``part_size`` and sent as the parts of one multipart upload,
    started when the first part is full; an object that never fills one goes by a single
    PutObject. Parts are cut every ``part_size`` bytes, so the same bytes written again (a
    redelivered chunk) make the same parts and the same object. Nothing is visible until
    :meth:`finish`; leaving the ``with`` block without it (an exception, or nothing worth
    keeping) aborts the multipart upload, so no part is left behind and billed.
    """

    def __init__(self, store: S3Store, key: str, part_size: int, content_type: str) -> None:
        if not S3_MIN_PART_SIZE <= part_size <= S3_MAX_PART_SIZE:
            raise ValueError(f"part_size {part_size} is outside S3's 5 MiB .. 5 GiB")
        self.key = key
        self.part_size = part_size
        self.size = 0
        self._store = store
        self._content_type = content_type
        self._buffer = bytearray()
        self._mpu_id: str | None = None
        self._parts: list[UploadedPart] = []
        self._ended = False

    @property
    def parts(self) -> int:
        """Parts sent so far (0 while the object fits in one PutObject)."""
        return len(self._parts)

    def write(self, data: bytes) -> int:
        if self._ended:
            raise ValueError(f"s3://{self._store.bucket}/{self.key} is already finished or aborted")
        self._buffer += data
        self.size += len(data)
        while len(self._buffer) >= self.part_size:
            with memoryview(self._buffer) as view:
                part = bytes(view[: self.part_size])
            del self._buffer[: self.part_size]
            self._send(part)
        return len(data)

    def _send(self, part: bytes) -> None:
        if self._mpu_id is None:
            self._mpu_id = self._store.create_multipart_upload(self.key, self._content_type, checksum=False)
        if len(self._parts) >= S3_MAX_PARTS:
            raise ValueError(f"s3://{self._store.bucket}/{self.key} needs more than {S3_MAX_PARTS} parts")
        self._parts.append(self._store.upload_part(self.key, self._mpu_id, len(self._parts) + 1, part))

    def finish(self) -> int:
        """Make the object what was written (its last part and CompleteMultipartUpload, or one
        PutObject); answer its size."""
        if self._ended:
            raise ValueError(f"s3://{self._store.bucket}/{self.key} is already finished or aborted")
        if self._mpu_id is None:
            self._store.put_bytes(self.key, bytes(self._buffer), content_type=self._content_type)
        else:
            if self._buffer:
                self._send(bytes(self._buffer))  # the last part may be smaller
            self._store.complete_multipart_upload(self.key, self._mpu_id, self._parts)
        self._buffer = bytearray()
        self._ended = True
        return self.size

    def abort(self) -> None:
        """Drop what was written (abort the multipart upload under way, if any)."""
        self._buffer = bytearray()
        self._ended = True
        if self._mpu_id is not None:
            mpu_id, self._mpu_id = self._mpu_id, None
            self._store.abort_multipart_upload(self.key, mpu_id)

    def __enter__(self) -> ObjectWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if not self._ended:  # an exception, finish() failing, or nothing to keep
            self.abort()

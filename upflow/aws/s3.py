"""S3 adapter: multipart uploads, presigning, range reads, small objects."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CHECKSUM_ALGORITHM = "CRC32"
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

    # --- objects ---------------------------------------------------------
    def object_size(self, key: str) -> int:
        try:
            return int(self._client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as error:
            if _error_code(error) in {"404", "NoSuchKey", "NotFound"}:
                raise NoSuchKey(key) from error
            raise

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

    def iter_lines(self, key: str, piece: int = 256 * 1024) -> Iterator[bytes]:
        """The object's lines (each with its ``\\n``), read lazily in ranged pieces: many
        objects can be streamed side by side in bounded memory."""
        pending = b""
        offset = 0
        while True:
            data = self.read_range(key, offset, offset + piece)
            offset += len(data)
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

    def upload_file(self, key: str, fileobj: IO[bytes], content_type: str = "text/csv") -> None:
        self._client.upload_fileobj(fileobj, self.bucket, key, ExtraArgs={"ContentType": content_type})

    def get_bytes(self, key: str) -> bytes:
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as error:
            if _error_code(error) in {"NoSuchKey", "404"}:
                raise NoSuchKey(key) from error
            raise
        with body:
            return body.read()

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

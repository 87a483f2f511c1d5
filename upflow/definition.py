"""The one definition of every upflow resource name, limit and event pattern.

The Pulumi program (``infra/``), the local stack (``upflow.local``) and the
application (``api/``, ``processor/``) all read these values; nothing else
spells a queue name, a lifecycle day count or a part-size rule. This module
imports neither boto3 nor pulumi so every side can use it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB
TB = 10**12

# --- S3 multipart limits (AWS documents these; they bound every plan) -------
S3_MIN_PART_SIZE = 5 * MiB
S3_MAX_PART_SIZE = 5 * GiB
S3_MAX_PARTS = 10_000
S3_MAX_OBJECT_SIZE = 5 * TiB

# --- Key layout inside the uploads bucket -----------------------------------
UPLOADS_PREFIX = "uploads/"
REPORTS_PREFIX = "reports/"
# Per-chunk partial error files, merged into the final report by the finaliser.
CHUNK_ERRORS_PREFIX = "chunk-errors/"
# Per-chunk partial totals (map), read by the reducers (upflow.core.consolidation).
PARTIALS_PREFIX = "partials/"
# Consolidated totals: one sorted CSV per shard, merged into results/<id>/totals.csv.
RESULTS_PREFIX = "results/"


@dataclass(frozen=True)
class Limits:
    """Tunable limits. Defaults are the product's; a stack may override them."""

    min_part_size: int = 8 * MiB
    max_parts: int = S3_MAX_PARTS
    max_upload_size: int = 2 * TB
    max_filename_length: int = 255
    max_parts_per_sign_call: int = 100
    url_expiry_seconds: int = 15 * 60
    token_ttl_seconds: int = 7 * 24 * 3600
    lifecycle_days: int = 1
    chunk_size: int = 8 * MiB
    max_chunks: int = 10_000
    max_row_bytes: int = 1 * MiB
    # Bytes of the object the planner reads to detect encoding/delimiter/header.
    sniff_bytes: int = 64 * KiB
    # Chunks the planner writes per invocation before re-enqueueing itself.
    plan_page_chunks: int = 1_000
    chunk_batch_size: int = 1
    events_batch_size: int = 1
    max_receives: int = 3
    preview_bytes: int = 1 * MiB
    # A failed message becomes visible again after base * 2**(receives-1) seconds.
    retry_backoff_seconds: int = 10
    first_errors_shown: int = 20
    # Reduce: R grows so no shard writes more than this many documents (estimated) ...
    documents_per_shard: int = 20_000
    # ... nor reads more than this many partial records (a document once per chunk it is in).
    partial_records_per_shard: int = 2_000_000

    def __post_init__(self) -> None:
        if self.max_upload_size > S3_MAX_OBJECT_SIZE:
            raise ValueError(
                f"max_upload_size {self.max_upload_size} exceeds S3's object maximum {S3_MAX_OBJECT_SIZE}"
            )
        if self.min_part_size < S3_MIN_PART_SIZE:
            raise ValueError("min_part_size is below S3's 5 MiB minimum")
        if not 1 <= self.max_parts <= S3_MAX_PARTS:
            raise ValueError("max_parts must be within 1..10000")


@dataclass(frozen=True)
class FunctionSpec:
    """Lambda sizing for one Chalice handler (read by infra and by the pump)."""

    memory_mb: int
    timeout_seconds: int


# Chalice handler names (the function names in app.py) and their sizing.
API_HANDLER = "api_handler"
PLANNER_HANDLER = "plan_object"
CHUNK_HANDLER = "process_chunks"
FUNCTIONS: Mapping[str, FunctionSpec] = {
    API_HANDLER: FunctionSpec(memory_mb=512, timeout_seconds=29),
    PLANNER_HANDLER: FunctionSpec(memory_mb=1024, timeout_seconds=300),
    CHUNK_HANDLER: FunctionSpec(memory_mb=2048, timeout_seconds=300),
}
# AWS's guidance: a queue's visibility timeout >= 6x its consumer's timeout.
VISIBILITY_TIMEOUT_FACTOR = 6


@dataclass(frozen=True)
class ResourceNames:
    """Physical names of one stack's resources (``upflow-<stack>-...``)."""

    stack: str
    bucket: str
    status_table: str
    results_table: str
    events_queue: str
    events_dlq: str
    chunks_queue: str
    chunks_dlq: str
    event_rule: str
    site_bucket: str = ""

    def as_env(self) -> dict[str, str]:
        """Environment variables through which the application finds them."""
        return {
            "UPFLOW_STACK": self.stack,
            "UPFLOW_BUCKET": self.bucket,
            "UPFLOW_STATUS_TABLE": self.status_table,
            "UPFLOW_RESULTS_TABLE": self.results_table,
            "UPFLOW_EVENTS_QUEUE": self.events_queue,
            "UPFLOW_CHUNKS_QUEUE": self.chunks_queue,
        }


def names_for(stack: str, bucket_suffix: str = "") -> ResourceNames:
    """Names for ``stack``. Bucket names are global, so deploys add a suffix."""
    base = f"upflow-{stack}"
    suffix = f"-{bucket_suffix}" if bucket_suffix else ""
    return ResourceNames(
        stack=stack,
        bucket=f"{base}-uploads{suffix}",
        status_table=f"{base}-status",
        results_table=f"{base}-results",
        events_queue=f"{base}-events",
        events_dlq=f"{base}-events-dlq",
        chunks_queue=f"{base}-chunks",
        chunks_dlq=f"{base}-chunks-dlq",
        event_rule=f"{base}-object-created",
        site_bucket=f"{base}-site{suffix}",
    )


def object_created_pattern(bucket: str) -> dict[str, Any]:
    """EventBridge pattern: objects created under the uploads prefix of ``bucket``."""
    return {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [bucket]},
            "object": {"key": [{"prefix": UPLOADS_PREFIX}]},
        },
    }


# DynamoDB key schema (both tables: string partition + sort key).
STATUS_TABLE_KEYS = ("pk", "sk")
# Results: one item per document of an upload, written once by the reducer of its shard.
# The partition key is "<upload_id>#<shard:04d>" (results_partition), so one upload's
# documents spread over as many partitions as it has shards instead of one hot key.
RESULTS_TABLE_KEYS = ("pk", "document")


def results_partition(upload_id: str, shard: int) -> str:
    return f"{upload_id}#{shard:04d}"


CORS_EXPOSE_HEADERS = ("ETag",)
CORS_ALLOWED_METHODS = ("GET", "PUT", "POST", "HEAD")
CORS_ALLOWED_HEADERS = ("*",)


@dataclass(frozen=True)
class RuntimeConfig:
    """What a running handler needs: names, limits, secret, allowed origin."""

    names: ResourceNames
    limits: Limits = field(default_factory=Limits)
    token_secret: bytes = b""
    web_origin: str = "*"


def _int_env(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    return default if raw in (None, "") else int(raw)


def runtime_config_from_env(env: Mapping[str, str] | None = None) -> RuntimeConfig:
    """Build the runtime config from ``UPFLOW_*`` variables (Lambda and local alike)."""
    env = os.environ if env is None else env
    stack = env.get("UPFLOW_STACK", "local")
    defaults = names_for(stack)
    names = ResourceNames(
        stack=stack,
        bucket=env.get("UPFLOW_BUCKET", defaults.bucket),
        status_table=env.get("UPFLOW_STATUS_TABLE", defaults.status_table),
        results_table=env.get("UPFLOW_RESULTS_TABLE", defaults.results_table),
        events_queue=env.get("UPFLOW_EVENTS_QUEUE", defaults.events_queue),
        events_dlq=defaults.events_dlq,
        chunks_queue=env.get("UPFLOW_CHUNKS_QUEUE", defaults.chunks_queue),
        chunks_dlq=defaults.chunks_dlq,
        event_rule=defaults.event_rule,
    )
    base = Limits()
    limits = Limits(
        max_upload_size=_int_env(env, "UPFLOW_MAX_UPLOAD_SIZE", base.max_upload_size),
        url_expiry_seconds=_int_env(env, "UPFLOW_URL_EXPIRY_SECONDS", base.url_expiry_seconds),
        chunk_size=_int_env(env, "UPFLOW_CHUNK_SIZE", base.chunk_size),
        lifecycle_days=_int_env(env, "UPFLOW_LIFECYCLE_DAYS", base.lifecycle_days),
        chunk_batch_size=_int_env(env, "UPFLOW_CHUNK_BATCH_SIZE", base.chunk_batch_size),
        retry_backoff_seconds=_int_env(env, "UPFLOW_RETRY_BACKOFF_SECONDS", base.retry_backoff_seconds),
        plan_page_chunks=_int_env(env, "UPFLOW_PLAN_PAGE_CHUNKS", base.plan_page_chunks),
        documents_per_shard=_int_env(env, "UPFLOW_DOCUMENTS_PER_SHARD", base.documents_per_shard),
    )
    secret = env.get("UPFLOW_TOKEN_SECRET", "")
    if not secret:
        raise RuntimeError("UPFLOW_TOKEN_SECRET is not set: the API cannot sign upload tokens")
    return RuntimeConfig(
        names=names,
        limits=limits,
        token_secret=secret.encode(),
        web_origin=env.get("UPFLOW_WEB_ORIGIN", "*"),
    )

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
DAY = 24 * 3600

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
    # An upload token is good for this long after it is issued; an expired one can still be
    # renewed (POST /uploads/{id}/token) for token_renewal_grace_seconds more.
    token_ttl_seconds: int = 7 * 24 * 3600
    # S3 aborts incomplete multipart uploads, and expires the raw objects (and their partials and
    # chunk errors), this many days after they were made (stack setting lifecycleDays).
    lifecycle_days: int = 1
    # Reports (reports/) and totals (results/) outlive the raw object by this many days.
    report_retention_days: int = 30
    results_retention_days: int = 30
    # The part of the lifecycle an upload may plan to use: the rest is left for retries and complete.
    upload_window_margin_seconds: int = 2 * 3600
    # A rate that most links sustain, assumed when a client states none (100 Mbit/s): an initiate
    # answers a warning when the file could not finish in the window at it. (2 TB a day is ~185 Mbit/s.)
    assumed_rate_bytes_per_second: int = 12_500_000
    # Hostile requests: JSON bodies (POST /uploads, sign calls) at most this big, ...
    max_json_body_bytes: int = 64 * KiB
    # ... but complete lists up to 10,000 parts' ETags and CRC32s (~110 bytes each).
    max_complete_body_bytes: int = 2 * MiB
    # No request of the API nests deeper than 3; numbers longer than this are no sizes.
    max_json_depth: int = 16
    max_json_number_chars: int = 32
    # Requests per second (steady) and burst: API Gateway's stage throttling and usage plan, and
    # chalice local's per-client token bucket when UPFLOW_LOCAL_RATE_LIMIT is on.
    api_rate_limit: int = 50
    api_burst_limit: int = 100
    # Most concurrent Lambda invocations per SQS event source mapping (AWS allows 2..1000), so one
    # giant upload can neither take the account's concurrency nor throttle the tables.
    events_max_concurrency: int = 2
    chunks_max_concurrency: int = 20
    chunk_size: int = 8 * MiB
    max_chunks: int = 10_000
    max_row_bytes: int = 1 * MiB
    # Bytes of the object the planner reads to detect encoding/delimiter/header.
    sniff_bytes: int = 64 * KiB
    # Chunks the planner writes per invocation before re-enqueueing itself.
    plan_page_chunks: int = 1_000
    chunk_batch_size: int = 1
    events_batch_size: int = 1
    # Deliveries of a message before SQS dead-letters it (AWS advises >= 5 for Lambda sources).
    max_receives: int = 5
    # An item `processing` longer than this has a dead worker (0: the chunks queue's visibility
    # timeout, VISIBILITY_TIMEOUT_FACTOR x the processor's timeout); the reconciler moves it on.
    stuck_after_seconds: int = 0
    # How often the reconciler runs (an EventBridge schedule; a loop in the local stack).
    reconcile_every_seconds: int = 300
    preview_bytes: int = 1 * MiB
    # A failed message becomes visible again after base * 2**(receives-1) seconds.
    retry_backoff_seconds: int = 10
    first_errors_shown: int = 20
    # A chunk's error file and the error report go to S3 in parts of this size as they are
    # written (memory holds about one part); the finaliser grows it, in whole MiB, for a
    # report that would need more than 10,000 parts.
    report_part_size: int = 8 * MiB
    # A report holding more error rows than this is rewritten in slices of about this many bytes,
    # by the reduce tasks at once, and joined by S3 (UploadPartCopy) — one finaliser rewriting
    # it all (~15 MB/s) would not fit its timeout beyond a few GB. At least S3's 5 MiB part.
    report_slice_bytes: int = 512 * MiB
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
        if not S3_MIN_PART_SIZE <= self.report_part_size <= S3_MAX_PART_SIZE:
            raise ValueError("report_part_size must be within S3's part sizes (5 MiB to 5 GiB)")
        if not S3_MIN_PART_SIZE <= self.report_slice_bytes <= S3_MAX_PART_SIZE // 2:
            raise ValueError("report_slice_bytes must be within 5 MiB and 2.5 GiB (S3's copied parts)")
        if not 1 <= self.max_parts <= S3_MAX_PARTS:
            raise ValueError("max_parts must be within 1..10000")
        if self.lifecycle_days < 1:
            raise ValueError("lifecycle_days must be at least 1")
        if not 0 <= self.upload_window_margin_seconds < self.lifecycle_days * DAY:
            raise ValueError("upload_window_margin_seconds must be shorter than the lifecycle")
        for name in (
            "token_ttl_seconds",
            "report_retention_days",
            "results_retention_days",
            "api_rate_limit",
            "api_burst_limit",
            "assumed_rate_bytes_per_second",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")

    @property
    def lifecycle_seconds(self) -> int:
        return self.lifecycle_days * DAY

    @property
    def upload_window_seconds(self) -> int:
        """How long an upload may take: S3 aborts it ``lifecycle_days`` after initiate (at the
        earliest; S3 rounds up to the next midnight UTC), less the margin."""
        return self.lifecycle_seconds - self.upload_window_margin_seconds

    @property
    def token_renewal_grace_seconds(self) -> int:
        """How long after its expiry a genuine token may still be renewed: the lifecycle, the
        longest an upload can go on (docs/design.md, "Tokens")."""
        return self.lifecycle_seconds

    def expiry_days_by_prefix(self) -> dict[str, int]:
        """Days after which S3 expires the objects under each prefix of the uploads bucket.

        The raw object and what is derived from it chunk by chunk go with it; reports and
        totals are made after the object, and kept their own retention beyond its expiry.
        """
        return {
            UPLOADS_PREFIX: self.lifecycle_days,
            PARTIALS_PREFIX: self.lifecycle_days,
            CHUNK_ERRORS_PREFIX: self.lifecycle_days,
            REPORTS_PREFIX: self.lifecycle_days + self.report_retention_days,
            RESULTS_PREFIX: self.lifecycle_days + self.results_retention_days,
        }


@dataclass(frozen=True)
class FunctionSpec:
    """Lambda sizing for one Chalice handler (read by infra and by the pump)."""

    memory_mb: int
    timeout_seconds: int


# Chalice handler names (the function names in app.py) and their sizing.
API_HANDLER = "api_handler"
PLANNER_HANDLER = "plan_object"
CHUNK_HANDLER = "process_chunks"
RECONCILER_HANDLER = "reconcile"
FUNCTIONS: Mapping[str, FunctionSpec] = {
    API_HANDLER: FunctionSpec(memory_mb=512, timeout_seconds=29),
    PLANNER_HANDLER: FunctionSpec(memory_mb=1024, timeout_seconds=300),
    CHUNK_HANDLER: FunctionSpec(memory_mb=2048, timeout_seconds=300),
    RECONCILER_HANDLER: FunctionSpec(memory_mb=512, timeout_seconds=300),
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
            "UPFLOW_EVENTS_DLQ": self.events_dlq,
            "UPFLOW_CHUNKS_DLQ": self.chunks_dlq,
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
class RateLimit:
    """A token bucket: ``rate`` requests per second, up to ``burst`` at once."""

    rate: float
    burst: int


# chalice local only: "on" (the stack's api_rate_limit/api_burst_limit, as API Gateway applies
# them) or "<rate>/<burst>"; unset, empty, "0" or "off": no limit (the test suite's default).
LOCAL_RATE_LIMIT_ENV = "UPFLOW_LOCAL_RATE_LIMIT"


def local_rate_limit_from_env(env: Mapping[str, str], limits: Limits) -> RateLimit | None:
    raw = env.get(LOCAL_RATE_LIMIT_ENV, "").strip().lower()
    if raw in ("", "0", "off", "false", "no"):
        return None
    if raw in ("1", "on", "true", "yes"):
        return RateLimit(float(limits.api_rate_limit), limits.api_burst_limit)
    rate, slash, burst = raw.partition("/")
    try:
        limit = RateLimit(float(rate), int(burst) if slash else max(1, int(float(rate))))
    except ValueError:
        limit = RateLimit(0.0, 0)
    if not (limit.rate > 0 and limit.burst >= 1):
        raise ValueError(f"{LOCAL_RATE_LIMIT_ENV} must be 'on', 'off' or '<rate>/<burst>', not {raw!r}")
    return limit


@dataclass(frozen=True)
class RuntimeConfig:
    """What a running handler needs: names, limits, secret, allowed origin."""

    names: ResourceNames
    limits: Limits = field(default_factory=Limits)
    token_secret: bytes = b""
    web_origin: str = "*"
    # chalice local's per-client limiter (None: off; API Gateway throttles a deployed stack).
    local_rate_limit: RateLimit | None = None


def _int_env(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    return default if raw in (None, "") else int(raw)


def runtime_config_from_env(env: Mapping[str, str] | None = None) -> RuntimeConfig:
    """Build the runtime config from ``UPFLOW_*`` variables (Lambda and local alike)."""
    env = os.environ if env is None else env
    stack = stack_from_env(env)
    defaults = names_for(stack)
    names = ResourceNames(
        stack=stack,
        bucket=env.get("UPFLOW_BUCKET", defaults.bucket),
        status_table=env.get("UPFLOW_STATUS_TABLE", defaults.status_table),
        results_table=env.get("UPFLOW_RESULTS_TABLE", defaults.results_table),
        events_queue=env.get("UPFLOW_EVENTS_QUEUE", defaults.events_queue),
        events_dlq=env.get("UPFLOW_EVENTS_DLQ", defaults.events_dlq),
        chunks_queue=env.get("UPFLOW_CHUNKS_QUEUE", defaults.chunks_queue),
        chunks_dlq=env.get("UPFLOW_CHUNKS_DLQ", defaults.chunks_dlq),
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
        report_slice_bytes=_int_env(env, "UPFLOW_REPORT_SLICE_BYTES", base.report_slice_bytes),
        max_receives=_int_env(env, "UPFLOW_MAX_RECEIVES", base.max_receives),
        stuck_after_seconds=_int_env(env, "UPFLOW_STUCK_AFTER_SECONDS", base.stuck_after_seconds),
        reconcile_every_seconds=_int_env(env, "UPFLOW_RECONCILE_EVERY_SECONDS", base.reconcile_every_seconds),
        token_ttl_seconds=_int_env(env, "UPFLOW_TOKEN_TTL_SECONDS", base.token_ttl_seconds),
        report_retention_days=_int_env(env, "UPFLOW_REPORT_RETENTION_DAYS", base.report_retention_days),
        results_retention_days=_int_env(env, "UPFLOW_RESULTS_RETENTION_DAYS", base.results_retention_days),
        upload_window_margin_seconds=_int_env(
            env, "UPFLOW_UPLOAD_WINDOW_MARGIN_SECONDS", base.upload_window_margin_seconds
        ),
        assumed_rate_bytes_per_second=_int_env(
            env, "UPFLOW_ASSUMED_RATE_BYTES_PER_SECOND", base.assumed_rate_bytes_per_second
        ),
        api_rate_limit=_int_env(env, "UPFLOW_API_RATE_LIMIT", base.api_rate_limit),
        api_burst_limit=_int_env(env, "UPFLOW_API_BURST_LIMIT", base.api_burst_limit),
    )
    secret = env.get("UPFLOW_TOKEN_SECRET", "")
    if not secret:
        raise RuntimeError("UPFLOW_TOKEN_SECRET is not set: the API cannot sign upload tokens")
    return RuntimeConfig(
        names=names,
        limits=limits,
        token_secret=secret.encode(),
        web_origin=env.get("UPFLOW_WEB_ORIGIN", "*"),
        local_rate_limit=local_rate_limit_from_env(env, limits),
    )


# --- Observability: one metric namespace per stack, every metric the code emits ----
# Powertools Metrics writes these as CloudWatch embedded metric format (EMF) records;
# infra's dashboard and alarms name them from here, and a test holds the two equal.
METRIC_SERVICE = "upflow"  # Powertools' "service" dimension on every metric


def metrics_namespace(stack: str) -> str:
    return f"upflow/{stack}"


def stack_from_env(env: Mapping[str, str]) -> str:
    """The stack a process belongs to (``UPFLOW_STACK``; ``local`` when unset)."""
    return env.get("UPFLOW_STACK", "local")


@dataclass(frozen=True)
class MetricSpec:
    """One custom metric: its name, CloudWatch unit, and the function(s) that emit it."""

    name: str
    unit: str  # a CloudWatch unit name ("Count", "Bytes", "Milliseconds", "Count/Second")
    emitted_by: tuple[str, ...]  # handler names (FUNCTIONS)


METRIC_UPLOADS_INITIATED = MetricSpec("UploadsInitiated", "Count", (API_HANDLER,))
METRIC_UPLOADS_COMPLETED = MetricSpec(
    "UploadsCompleted", "Count", (CHUNK_HANDLER, PLANNER_HANDLER, RECONCILER_HANDLER)
)
METRIC_UPLOADS_FAILED = MetricSpec(
    "UploadsFailed", "Count", (CHUNK_HANDLER, PLANNER_HANDLER, RECONCILER_HANDLER)
)
METRIC_UPLOADS_ABORTED = MetricSpec("UploadsAborted", "Count", (API_HANDLER,))
METRIC_BYTES_UPLOADED = MetricSpec("BytesUploaded", "Bytes", (API_HANDLER,))
METRIC_PARTS_SIGNED = MetricSpec("PartsSigned", "Count", (API_HANDLER,))
METRIC_CHUNK_DURATION = MetricSpec("ChunkDuration", "Milliseconds", (CHUNK_HANDLER,))
METRIC_REDUCE_DURATION = MetricSpec("ReduceDuration", "Milliseconds", (CHUNK_HANDLER,))
METRIC_ROWS_PER_SECOND = MetricSpec("RowsPerSecond", "Count/Second", (CHUNK_HANDLER,))
METRIC_ROWS_VALID = MetricSpec("RowsValid", "Count", (CHUNK_HANDLER,))
METRIC_ROWS_INVALID = MetricSpec("RowsInvalid", "Count", (CHUNK_HANDLER,))
METRIC_MESSAGES_REDRIVEN = MetricSpec("MessagesRedriven", "Count", (RECONCILER_HANDLER, API_HANDLER))
METRIC_MESSAGES_DEAD_LETTERED = MetricSpec("MessagesDeadLettered", "Count", (RECONCILER_HANDLER,))
METRIC_SPECULATION_MISSES = MetricSpec(
    "SpeculationMisses", "Count", (CHUNK_HANDLER, PLANNER_HANDLER, RECONCILER_HANDLER)
)
METRICS: tuple[MetricSpec, ...] = (
    METRIC_UPLOADS_INITIATED,
    METRIC_UPLOADS_COMPLETED,
    METRIC_UPLOADS_FAILED,
    METRIC_UPLOADS_ABORTED,
    METRIC_BYTES_UPLOADED,
    METRIC_PARTS_SIGNED,
    METRIC_CHUNK_DURATION,
    METRIC_REDUCE_DURATION,
    METRIC_ROWS_PER_SECOND,
    METRIC_ROWS_VALID,
    METRIC_ROWS_INVALID,
    METRIC_MESSAGES_REDRIVEN,
    METRIC_MESSAGES_DEAD_LETTERED,
    METRIC_SPECULATION_MISSES,
)

# --- Structured logs: the keys every handler's JSON lines carry (Powertools Logger) ----
# Besides Powertools' own (level, message, timestamp, service, location, exception) and the
# invocation's: cold_start, function_name, function_request_id, function_memory_size.
LOG_KEY_UPLOAD = "upload_id"
LOG_KEY_CHUNK = "chunk"  # the chunk index (map work)
LOG_KEY_SHARD = "shard"  # the shard index (reduce work)
LOG_KEY_MESSAGE = "message_id"  # the SQS message being handled
LOG_KEY_ATTEMPT = "attempt"  # its delivery: SQS ApproximateReceiveCount

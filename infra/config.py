"""The stack's configuration: ``pulumi config`` values over upflow.definition's defaults."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pulumi

from upflow.build import ARCHITECTURES, DEFAULT_ARCHITECTURE
from upflow.definition import (
    API_HANDLER,
    CHUNK_HANDLER,
    FUNCTIONS,
    PLANNER_HANDLER,
    RECONCILER_HANDLER,
    VISIBILITY_TIMEOUT_FACTOR,
    FunctionSpec,
    Limits,
    ResourceNames,
    names_for,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_NAMESPACE = "upflow"
DEFAULT_BUILD_DIR = REPO_ROOT / "build" / "chalice"
DEFAULT_WEB_DIST = REPO_ROOT / "web" / "dist"
# Infra-only: CloudWatch log retention of the functions' log groups.
DEFAULT_LOG_RETENTION_DAYS = 14
# Config key prefix of each handler's sizing (``apiMemoryMb``, ``plannerTimeoutSeconds``, ...).
FUNCTION_CONFIG_PREFIX: Mapping[str, str] = {
    API_HANDLER: "api",
    PLANNER_HANDLER: "planner",
    CHUNK_HANDLER: "processor",
    RECONCILER_HANDLER: "reconciler",
}
# Every ``upflow:*`` key load_config reads (docs/deploy.md and Pulumi.example.yaml list them).
CONFIG_KEYS = (
    "tokenSecret",
    "bucketSuffix",
    "webOrigin",
    "chunkSize",
    "maxUploadSize",
    "urlExpirySeconds",
    "lifecycleDays",
    "reportRetentionDays",
    "resultsRetentionDays",
    "tokenTtlSeconds",
    "apiRateLimit",
    "apiBurstLimit",
    "chunkBatchSize",
    "eventsBatchSize",
    "eventsMaxConcurrency",
    "chunksMaxConcurrency",
    "reconcileEveryMinutes",
    "alarmEmails",
    "eventsAgeAlarmSeconds",
    "chunksAgeAlarmSeconds",
    "dlqAgeAlarmSeconds",
    *(
        f"{prefix}{field}"
        for prefix in FUNCTION_CONFIG_PREFIX.values()
        for field in ("MemoryMb", "TimeoutSeconds")
    ),
    "lambdaArchitecture",
    "powertoolsLayerArn",
    "logLevel",
    "tracing",
    "logRetentionDays",
    "forceDestroyUploads",
    "buildDir",
    "webDist",
)
# AWS hard limits the configured values must respect.
API_GATEWAY_MAX_TIMEOUT_SECONDS = 29
SQS_MAX_VISIBILITY_SECONDS = 12 * 3600
SQS_MAX_BATCH_SIZE = 10_000
# Maximum concurrency of an SQS event source mapping (more than 1000 needs a quota raise).
SQS_MAPPING_MIN_CONCURRENCY = 2
SQS_MAPPING_MAX_CONCURRENCY = 1000
# AWS's guidance for Lambda SQS sources: redrive after at least 5 receives, so a throttled or
# briefly failing function does not dead-letter work; SQS allows at most 1000.
MIN_MAX_RECEIVES = 5
SQS_MAX_RECEIVE_COUNT = 1000
# ... and a source queue's visibility timeout at least 6x the function's timeout.
AWS_VISIBILITY_GUIDANCE_FACTOR = 6
# SQS's default retention of the main queues (the program does not change it); an age alarm
# above it could never fire.
SQS_DEFAULT_RETENTION_SECONDS = 4 * 24 * 3600
# Infra-only: keep dead letters for SQS's maximum, so they outlive the source's retention
# (infra/queues.py).
DLQ_RETENTION_SECONDS = 14 * 24 * 3600
# Main queues' age alarm default: this many visibility timeouts (a message that old has been
# waiting, not just in flight once).
QUEUE_AGE_ALARM_VISIBILITIES = 2
# DLQ age alarm default: this many reconciler periods (the reconciler drains the DLQs every
# period, so an older dead letter means it is not running or keeps failing).
DLQ_AGE_ALARM_PERIODS = 3
# EventBridge schedules have a granularity of one minute.
SCHEDULE_UNIT_SECONDS = 60
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# Where the AWS provider takes its region when ``aws:region`` is not set (in this order).
REGION_ENV_VARS = ("AWS_REGION", "AWS_DEFAULT_REGION")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
# Powertools Logger's levels (``upflow:logLevel`` → POWERTOOLS_LOG_LEVEL).
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_LOG_LEVEL = "INFO"
# A Lambda layer version ARN (``upflow:powertoolsLayerArn``).
_LAYER_ARN = re.compile(
    r"arn:aws[a-z-]*:lambda:(?P<region>[a-z0-9-]+):\d{12}:layer:(?P<layer>[A-Za-z0-9_-]{1,140}):\d+"
)


class ConfigError(pulumi.RunError):
    """A configured value is out of range (``pulumi up`` prints just the message)."""


@dataclass(frozen=True)
class StackConfig:
    """Everything ``infra.program.define`` needs; tests build it directly."""

    names: ResourceNames
    token_secret: pulumi.Input[str]
    # The stack's AWS region (``aws:region``): the dashboard's widgets and the default
    # Powertools layer ARN name it.
    region: str
    limits: Limits = field(default_factory=Limits)
    functions: Mapping[str, FunctionSpec] = field(default_factory=lambda: dict(FUNCTIONS))
    # None: the CloudFront URL of the site (https://<id>.cloudfront.net).
    web_origin: str | None = None
    # The functions' instruction set; `make package` must have built the zip for it.
    architecture: str = DEFAULT_ARCHITECTURE
    log_retention_days: int = DEFAULT_LOG_RETENTION_DAYS
    force_destroy_uploads: bool = False
    build_dir: Path = DEFAULT_BUILD_DIR
    web_dist: Path = DEFAULT_WEB_DIST
    # Who the alarms' SNS topic emails (each address must confirm the subscription).
    alarm_emails: tuple[str, ...] = ()
    # ApproximateAgeOfOldestMessage thresholds (seconds); None: the defaults of age_alarm_seconds.
    events_age_alarm_seconds: int | None = None
    chunks_age_alarm_seconds: int | None = None
    dlq_age_alarm_seconds: int | None = None
    # X-Ray active tracing of every function and the API stage (``upflow:tracing``).
    tracing: bool = False
    # POWERTOOLS_LOG_LEVEL of every function (``upflow:logLevel``).
    log_level: str = DEFAULT_LOG_LEVEL
    # The Powertools layer every function gets; None: the AWS-published one for the
    # region, architecture and runtime (infra.functions.powertools_layer_arn).
    powertools_layer_arn: str | None = None

    def __post_init__(self) -> None:
        validate(self)

    @property
    def reconcile_every_minutes(self) -> int:
        """The reconciler's schedule (``upflow:reconcileEveryMinutes``, Limits.reconcile_every_seconds)."""
        return self.limits.reconcile_every_seconds // SCHEDULE_UNIT_SECONDS

    def age_alarm_seconds(self) -> dict[str, int]:
        """The age-of-oldest-message threshold of each queue, by queue name.

        Defaults: a main queue, twice its visibility timeout (6x its consumer's timeout, so a
        message that old has waited, not just been in flight once); a DLQ, three reconciler
        periods (the reconciler drains both every period).
        """
        names = self.names
        dlq = self.dlq_age_alarm_seconds or DLQ_AGE_ALARM_PERIODS * self.limits.reconcile_every_seconds
        return {
            names.events_queue: self.events_age_alarm_seconds
            or QUEUE_AGE_ALARM_VISIBILITIES * visibility_timeout(self.functions[PLANNER_HANDLER]),
            names.chunks_queue: self.chunks_age_alarm_seconds
            or QUEUE_AGE_ALARM_VISIBILITIES * visibility_timeout(self.functions[CHUNK_HANDLER]),
            names.events_dlq: dlq,
            names.chunks_dlq: dlq,
        }


_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def validate(config: StackConfig) -> None:
    for bucket in (config.names.bucket, config.names.site_bucket):
        if not _BUCKET_NAME.fullmatch(bucket):
            raise ConfigError(
                f"{bucket!r} is not a valid S3 bucket name: use a lowercase stack name and bucketSuffix"
            )
    missing = set(FUNCTIONS) - set(config.functions)
    if missing:
        raise ConfigError(f"no sizing for handlers {sorted(missing)}")
    api_timeout = config.functions[API_HANDLER].timeout_seconds
    if api_timeout > API_GATEWAY_MAX_TIMEOUT_SECONDS:
        raise ConfigError(
            f"apiTimeoutSeconds {api_timeout} exceeds API Gateway's {API_GATEWAY_MAX_TIMEOUT_SECONDS} s"
        )
    for handler in (PLANNER_HANDLER, CHUNK_HANDLER):
        visibility = visibility_timeout(config.functions[handler])
        # Holds while definition.VISIBILITY_TIMEOUT_FACTOR does; refuses a stack if it ever did not.
        if visibility < AWS_VISIBILITY_GUIDANCE_FACTOR * config.functions[handler].timeout_seconds:
            raise ConfigError(
                f"the queue visibility {visibility} s is under {AWS_VISIBILITY_GUIDANCE_FACTOR}x "
                f"{FUNCTION_CONFIG_PREFIX[handler]}TimeoutSeconds (AWS's guidance for Lambda SQS sources)"
            )
        if visibility > SQS_MAX_VISIBILITY_SECONDS:
            raise ConfigError(
                f"{FUNCTION_CONFIG_PREFIX[handler]}TimeoutSeconds makes the queue visibility "
                f"{visibility} s, above SQS's {SQS_MAX_VISIBILITY_SECONDS} s"
            )
    for label, size in (
        ("chunkBatchSize", config.limits.chunk_batch_size),
        ("eventsBatchSize", config.limits.events_batch_size),
    ):
        if not 1 <= size <= SQS_MAX_BATCH_SIZE:
            raise ConfigError(f"{label} must be within 1..{SQS_MAX_BATCH_SIZE}")
    if config.limits.lifecycle_days < 1:
        raise ConfigError("lifecycleDays must be at least 1")
    for label, concurrency in (
        ("eventsMaxConcurrency", config.limits.events_max_concurrency),
        ("chunksMaxConcurrency", config.limits.chunks_max_concurrency),
    ):
        if not SQS_MAPPING_MIN_CONCURRENCY <= concurrency <= SQS_MAPPING_MAX_CONCURRENCY:
            raise ConfigError(
                f"{label} must be within {SQS_MAPPING_MIN_CONCURRENCY}..{SQS_MAPPING_MAX_CONCURRENCY} "
                "(the maximum concurrency AWS allows an SQS event source mapping)"
            )
    if config.limits.api_burst_limit < config.limits.api_rate_limit:
        raise ConfigError("apiBurstLimit must be at least apiRateLimit (a second's worth of requests)")
    if not MIN_MAX_RECEIVES <= config.limits.max_receives <= SQS_MAX_RECEIVE_COUNT:
        raise ConfigError(
            f"max_receives {config.limits.max_receives} must be within {MIN_MAX_RECEIVES}.."
            f"{SQS_MAX_RECEIVE_COUNT} (AWS advises at least {MIN_MAX_RECEIVES} for a Lambda SQS source)"
        )
    every = config.limits.reconcile_every_seconds
    if every < SCHEDULE_UNIT_SECONDS or every % SCHEDULE_UNIT_SECONDS:
        raise ConfigError(
            f"reconcileEveryMinutes must be a whole number of minutes, at least 1 (not {every} s)"
        )
    for label, seconds in (
        ("eventsAgeAlarmSeconds", config.events_age_alarm_seconds),
        ("chunksAgeAlarmSeconds", config.chunks_age_alarm_seconds),
    ):
        if seconds is not None and not SCHEDULE_UNIT_SECONDS <= seconds < SQS_DEFAULT_RETENTION_SECONDS:
            raise ConfigError(
                f"{label} must be within {SCHEDULE_UNIT_SECONDS}..{SQS_DEFAULT_RETENTION_SECONDS - 1} "
                "(a message older than the queue's retention is gone: the alarm could never fire)"
            )
    dlq_age = config.dlq_age_alarm_seconds
    if dlq_age is not None and not SCHEDULE_UNIT_SECONDS <= dlq_age < DLQ_RETENTION_SECONDS:
        raise ConfigError(
            f"dlqAgeAlarmSeconds must be within {SCHEDULE_UNIT_SECONDS}..{DLQ_RETENTION_SECONDS - 1}"
        )
    for email in config.alarm_emails:
        if not isinstance(email, str) or not _EMAIL.fullmatch(email):
            raise ConfigError(f"alarmEmails: {email!r} is not an email address")
    if config.architecture not in ARCHITECTURES:
        raise ConfigError(
            f"lambdaArchitecture {config.architecture!r} is not one of {', '.join(ARCHITECTURES)}"
        )
    if not _REGION.fullmatch(config.region):
        raise ConfigError(f"aws:region {config.region!r} is not an AWS region name (e.g. eu-west-1)")
    if config.log_level not in LOG_LEVELS:
        raise ConfigError(f"logLevel {config.log_level!r} is not one of {', '.join(LOG_LEVELS)}")
    if config.powertools_layer_arn is not None:
        validate_layer_arn(config.powertools_layer_arn, config.region, config.architecture)


def validate_layer_arn(arn: str, region: str, architecture: str) -> None:
    """A layer version ARN in the stack's region; an AWS Powertools layer's name says its
    architecture (``…-x86_64``, ``…-arm64``), which must be the functions'."""
    match = _LAYER_ARN.fullmatch(arn)
    if match is None:
        raise ConfigError(
            f"powertoolsLayerArn {arn!r} is not a layer version ARN "
            "(arn:aws:lambda:<region>:<account>:layer:<name>:<version>)"
        )
    if match["region"] != region:
        raise ConfigError(
            f"powertoolsLayerArn is in {match['region']}, but the stack is in {region}: "
            "Lambda only attaches layers of the function's own region"
        )
    layer = match["layer"]
    other = [arch for arch in ARCHITECTURES if arch != architecture and layer.endswith(f"-{arch}")]
    if other:
        raise ConfigError(
            f"powertoolsLayerArn {layer!r} is built for {other[0]}, but lambdaArchitecture is {architecture}"
        )


def visibility_timeout(consumer: FunctionSpec) -> int:
    """AWS's guidance: at least VISIBILITY_TIMEOUT_FACTOR x the consumer's timeout."""
    return VISIBILITY_TIMEOUT_FACTOR * consumer.timeout_seconds


def _path(raw: str | None, default: Path) -> Path:
    if not raw:
        return default
    path = Path(raw)
    return path if path.is_absolute() else REPO_ROOT / path


def load_config(stack: str | None = None) -> StackConfig:
    """Read the ``upflow:*`` keys of the current stack (see Pulumi.example.yaml)."""
    config = pulumi.Config(CONFIG_NAMESPACE)
    stack = stack or pulumi.get_stack()
    base = Limits()

    def get_int(key: str, default: int) -> int:
        value = config.get_int(key)
        return default if value is None else value

    try:
        limits = Limits(
            chunk_size=config.get_int("chunkSize") or base.chunk_size,
            max_upload_size=config.get_int("maxUploadSize") or base.max_upload_size,
            url_expiry_seconds=config.get_int("urlExpirySeconds") or base.url_expiry_seconds,
            lifecycle_days=get_int("lifecycleDays", base.lifecycle_days),
            report_retention_days=get_int("reportRetentionDays", base.report_retention_days),
            results_retention_days=get_int("resultsRetentionDays", base.results_retention_days),
            token_ttl_seconds=get_int("tokenTtlSeconds", base.token_ttl_seconds),
            api_rate_limit=get_int("apiRateLimit", base.api_rate_limit),
            api_burst_limit=get_int("apiBurstLimit", base.api_burst_limit),
            chunk_batch_size=config.get_int("chunkBatchSize") or base.chunk_batch_size,
            events_batch_size=config.get_int("eventsBatchSize") or base.events_batch_size,
            events_max_concurrency=get_int("eventsMaxConcurrency", base.events_max_concurrency),
            chunks_max_concurrency=get_int("chunksMaxConcurrency", base.chunks_max_concurrency),
            reconcile_every_seconds=SCHEDULE_UNIT_SECONDS
            * get_int("reconcileEveryMinutes", base.reconcile_every_seconds // SCHEDULE_UNIT_SECONDS),
        )
    except ValueError as error:  # Limits' own checks (lifecycleDays >= 1, positive rates, ...)
        raise ConfigError(f"upflow config: {error}") from error
    functions = {
        handler: FunctionSpec(
            memory_mb=config.get_int(f"{prefix}MemoryMb") or FUNCTIONS[handler].memory_mb,
            timeout_seconds=config.get_int(f"{prefix}TimeoutSeconds") or FUNCTIONS[handler].timeout_seconds,
        )
        for handler, prefix in FUNCTION_CONFIG_PREFIX.items()
    }
    return StackConfig(
        names=names_for(stack, config.get("bucketSuffix") or ""),
        token_secret=config.require_secret("tokenSecret"),
        region=stack_region(),
        limits=limits,
        functions=functions,
        web_origin=config.get("webOrigin") or None,
        architecture=config.get("lambdaArchitecture") or DEFAULT_ARCHITECTURE,
        log_retention_days=config.get_int("logRetentionDays") or DEFAULT_LOG_RETENTION_DAYS,
        force_destroy_uploads=config.get_bool("forceDestroyUploads") or False,
        build_dir=_path(config.get("buildDir"), DEFAULT_BUILD_DIR),
        web_dist=_path(config.get("webDist"), DEFAULT_WEB_DIST),
        alarm_emails=_emails(config),
        events_age_alarm_seconds=_optional_int(config, "eventsAgeAlarmSeconds"),
        chunks_age_alarm_seconds=_optional_int(config, "chunksAgeAlarmSeconds"),
        dlq_age_alarm_seconds=_optional_int(config, "dlqAgeAlarmSeconds"),
        tracing=config.get_bool("tracing") or False,
        log_level=(config.get("logLevel") or DEFAULT_LOG_LEVEL).upper(),
        powertools_layer_arn=config.get("powertoolsLayerArn") or None,
    )


def stack_region() -> str:
    """The region the AWS provider deploys to: ``aws:region``, else the environment's."""
    region = pulumi.Config("aws").get("region") or next(
        (os.environ[name] for name in REGION_ENV_VARS if os.environ.get(name)), None
    )
    if not region:
        raise ConfigError("no AWS region: pulumi config set aws:region eu-west-1 (or export AWS_REGION)")
    return region


def _optional_int(config: pulumi.Config, key: str) -> int | None:
    """An integer whose default depends on other settings: unset or empty means that default."""
    raw = (config.get(key) or "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"upflow:{key} must be a whole number of seconds, not {raw!r}") from None


def _emails(config: pulumi.Config) -> tuple[str, ...]:
    """``upflow:alarmEmails``: a list of addresses (set with ``pulumi config set --path``)."""
    hint = "pulumi config set --path 'upflow:alarmEmails[0]' ops@example.com"
    try:
        value = config.get_object("alarmEmails")
    except pulumi.ConfigTypeError:  # not JSON: a bare address, set without --path
        raise ConfigError(f"upflow:alarmEmails must be a list of email addresses: {hint}") from None
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(email, str) for email in value):
        raise ConfigError(f"upflow:alarmEmails must be a list of email addresses, not {value!r}: {hint}")
    return tuple(value)

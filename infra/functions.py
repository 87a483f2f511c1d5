"""One Lambda function per Chalice handler, each with its own role, log group and (for
the SQS consumers) an event source mapping that reports partial batch failures and caps
how many invocations it runs at once. The reconciler is run by a schedule (infra/schedule.py).

Every function gets the AWS-published Powertools for AWS Lambda (Python) layer (Logger,
Metrics, Tracer: the deployment zip does not carry the library) and Powertools' settings in
its environment; ``upflow:tracing`` turns on X-Ray active tracing."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import policies
from infra.chalice_artifacts import ChaliceArtifacts
from infra.config import ConfigError, StackConfig, visibility_timeout
from upflow.definition import (
    CHUNK_HANDLER,
    FUNCTIONS,
    METRIC_SERVICE,
    PLANNER_HANDLER,
    Limits,
    metrics_namespace,
)

# The Powertools for AWS Lambda (Python) layers AWS publishes, one per Python version and
# architecture: arn:aws:lambda:<region>:017000801446:layer:AWSLambdaPowertoolsPythonV3-<py>-<arch>:<n>.
POWERTOOLS_LAYER_ACCOUNT = "017000801446"
POWERTOOLS_LAYER_PREFIX = "AWSLambdaPowertoolsPythonV3"
# Layer version 27 holds Powertools 3.23.0 (the newest whose number could be checked offline;
# requirements.txt pins 3.37.0 for local runs and tests). Resolve the layer of another release
# with `aws ssm get-parameter --name /aws/service/powertools/python/<arch>/python3.11/<version>`
# and set upflow:powertoolsLayerArn (docs/deploy.md).
POWERTOOLS_LAYER_VERSION = 27
# Regions outside the commercial partition (China, GovCloud) publish the layer from other
# accounts: those stacks must set upflow:powertoolsLayerArn.
_OTHER_PARTITION_REGIONS = ("cn-", "us-gov-")
# Powertools' own environment variables.
POWERTOOLS_SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
POWERTOOLS_METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
POWERTOOLS_LOG_LEVEL = "POWERTOOLS_LOG_LEVEL"
POWERTOOLS_TRACE_DISABLED = "POWERTOOLS_TRACE_DISABLED"
# What X-Ray active tracing needs from a function's role (xray:PutTraceSegments,
# PutTelemetryRecords, sampling rules). X-Ray's actions take no resource ARN: this managed
# policy's Resource "*" is the one wildcard a role gets, and only while upflow:tracing is on.
XRAY_WRITE_POLICY_ARN = "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess"
TRACING_ACTIVE = "Active"
TRACING_PASS_THROUGH = "PassThrough"  # Lambda's default: trace only what a caller sampled


@dataclass(frozen=True)
class Deployed:
    """One deployed handler."""

    function: aws.lambda_.Function
    role: aws.iam.Role
    log_group: aws.cloudwatch.LogGroup
    access_policy: aws.iam.RolePolicy
    xray_access: aws.iam.RolePolicyAttachment | None  # while upflow:tracing is on


@dataclass(frozen=True)
class Consumer:
    """Which queue feeds which handler, how many messages at a time, in how many invocations at most."""

    handler: str
    queue: aws.sqs.Queue
    batch_size: int
    max_concurrency: int


def function_name(stack: str, handler: str) -> str:
    """Infra-only naming: ``upflow-<stack>-<handler with dashes>`` (≤ 64 characters)."""
    name = f"upflow-{stack}-{handler.replace('_', '-')}"
    if len(name) > 64:
        raise ValueError(f"Lambda function name {name!r} is longer than 64 characters")
    return name


def log_group_name(function: str) -> str:
    """The group Lambda writes to by default; created here so it has a retention."""
    return f"/aws/lambda/{function}"


def stuck_after_seconds(config: StackConfig) -> int:
    """When the reconciler presumes a ``processing`` item's worker dead: the chunks queue's
    visibility timeout as this stack sizes the processor (a live worker's message would have
    come back by then), unless Limits.stuck_after_seconds says otherwise."""
    return config.limits.stuck_after_seconds or visibility_timeout(config.functions[CHUNK_HANDLER])


def powertools_layer_arn(region: str, architecture: str, runtime: str) -> str:
    """The AWS-published Powertools layer for a Lambda runtime (``python3.11``) and architecture."""
    if region.startswith(_OTHER_PARTITION_REGIONS):
        raise ConfigError(
            f"{region} is outside the aws partition, where Powertools' layers come from other "
            "accounts: set upflow:powertoolsLayerArn"
        )
    python = runtime.replace(".", "")  # python3.11 → python311
    return (
        f"arn:aws:lambda:{region}:{POWERTOOLS_LAYER_ACCOUNT}:layer:"
        f"{POWERTOOLS_LAYER_PREFIX}-{python}-{architecture}:{POWERTOOLS_LAYER_VERSION}"
    )


def layer_arn(config: StackConfig, runtime: str) -> str:
    """``upflow:powertoolsLayerArn``, else the AWS-published layer for the stack."""
    return config.powertools_layer_arn or powertools_layer_arn(config.region, config.architecture, runtime)


def powertools_environment(config: StackConfig) -> dict[str, str]:
    """Powertools' settings: service and namespace of every metric (upflow.definition), the
    log level, and the tracer off unless X-Ray traces the function."""
    return {
        POWERTOOLS_SERVICE_NAME: METRIC_SERVICE,
        POWERTOOLS_METRICS_NAMESPACE: metrics_namespace(config.names.stack),
        POWERTOOLS_LOG_LEVEL: config.log_level,
        POWERTOOLS_TRACE_DISABLED: "false" if config.tracing else "true",
    }


def plain_environment(config: StackConfig) -> dict[str, str]:
    """The non-secret variables ``runtime_config_from_env`` reads (minus the web origin), and
    Powertools' settings.

    ``names.as_env()`` includes both DLQs (the reconciler drains them)."""
    names, limits = config.names, config.limits
    return {
        **powertools_environment(config),
        **names.as_env(),
        "UPFLOW_CHUNK_SIZE": str(limits.chunk_size),
        "UPFLOW_MAX_UPLOAD_SIZE": str(limits.max_upload_size),
        "UPFLOW_URL_EXPIRY_SECONDS": str(limits.url_expiry_seconds),
        "UPFLOW_LIFECYCLE_DAYS": str(limits.lifecycle_days),
        "UPFLOW_TOKEN_TTL_SECONDS": str(limits.token_ttl_seconds),
        "UPFLOW_CHUNK_BATCH_SIZE": str(limits.chunk_batch_size),
        # The reconciler: attempts before an item is failed (the redrive's maxReceiveCount too),
        # and how long an item may stay processing.
        "UPFLOW_MAX_RECEIVES": str(limits.max_receives),
        "UPFLOW_STUCK_AFTER_SECONDS": str(stuck_after_seconds(config)),
    }


def environment(config: StackConfig, web_origin: pulumi.Input[str]) -> dict[str, pulumi.Input[str]]:
    env: dict[str, pulumi.Input[str]] = dict(plain_environment(config))
    env["UPFLOW_WEB_ORIGIN"] = web_origin
    env["UPFLOW_TOKEN_SECRET"] = pulumi.Output.secret(config.token_secret)
    return env


def _policy_json(handler: str) -> Callable[[policies.ResourceArns], str]:
    return lambda arns: json.dumps(policies.function_policy(handler, arns))


def create_functions(
    config: StackConfig,
    artifacts: ChaliceArtifacts,
    arns: pulumi.Output[policies.ResourceArns],
    web_origin: pulumi.Input[str],
) -> dict[str, Deployed]:
    """Every handler of upflow.definition.FUNCTIONS, from the one deployment zip."""
    code = pulumi.FileArchive(str(artifacts.zip_path))
    env = environment(config, web_origin)
    deployed: dict[str, Deployed] = {}
    for handler in FUNCTIONS:
        spec = config.functions[handler]
        template = artifacts.functions[handler]
        name = function_name(config.names.stack, handler)
        log_group = aws.cloudwatch.LogGroup(
            f"{handler}-logs", name=log_group_name(name), retention_in_days=config.log_retention_days
        )
        role = aws.iam.Role(
            f"{handler}-role",
            assume_role_policy=json.dumps(policies.assume_role_policy()),
            description=f"upflow {config.names.stack}: the {handler} Lambda function",
        )
        child = pulumi.ResourceOptions(parent=role)
        access = aws.iam.RolePolicy(
            f"{handler}-access",
            role=role.id,
            policy=arns.apply(_policy_json(handler)),
            opts=child,
        )
        logs = aws.iam.RolePolicy(
            f"{handler}-logs",
            role=role.id,
            policy=log_group.arn.apply(lambda arn: json.dumps(policies.logs_policy(arn))),
            opts=child,
        )
        xray = (
            aws.iam.RolePolicyAttachment(
                f"{handler}-xray", role=role.name, policy_arn=XRAY_WRITE_POLICY_ARN, opts=child
            )
            if config.tracing
            else None
        )
        function = aws.lambda_.Function(
            handler,
            name=name,
            role=role.arn,
            code=code,
            handler=template.handler,
            runtime=template.runtime,
            architectures=[config.architecture],
            memory_size=spec.memory_mb,
            timeout=spec.timeout_seconds,
            environment={"variables": env},
            layers=[layer_arn(config, template.runtime)],
            tracing_config={"mode": TRACING_ACTIVE if config.tracing else TRACING_PASS_THROUGH},
            opts=pulumi.ResourceOptions(
                depends_on=[log_group, access, logs, *([xray] if xray is not None else [])]
            ),
        )
        deployed[handler] = Deployed(function, role, log_group, access, xray)
    return deployed


def consumers(limits: Limits, events_queue: aws.sqs.Queue, chunks_queue: aws.sqs.Queue) -> list[Consumer]:
    return [
        Consumer(PLANNER_HANDLER, events_queue, limits.events_batch_size, limits.events_max_concurrency),
        Consumer(CHUNK_HANDLER, chunks_queue, limits.chunk_batch_size, limits.chunks_max_concurrency),
    ]


# SQS requires a batching window once a batch may exceed 10 messages.
SQS_UNWINDOWED_MAX_BATCH = 10
BATCHING_WINDOW_SECONDS = 1


def create_event_source_mappings(
    functions: Mapping[str, Deployed], feeds: list[Consumer]
) -> dict[str, aws.lambda_.EventSourceMapping]:
    mappings: dict[str, aws.lambda_.EventSourceMapping] = {}
    for feed in feeds:
        target = functions[feed.handler]
        mappings[feed.handler] = aws.lambda_.EventSourceMapping(
            f"{feed.handler}-sqs",
            event_source_arn=feed.queue.arn,
            function_name=target.function.arn,
            batch_size=feed.batch_size,
            maximum_batching_window_in_seconds=(
                BATCHING_WINDOW_SECONDS if feed.batch_size > SQS_UNWINDOWED_MAX_BATCH else None
            ),
            function_response_types=["ReportBatchItemFailures"],
            # However deep the queue (a 2 TB upload is 10,000 chunks), at most this many
            # invocations at once: the rest of the account's concurrency (the API) and the
            # tables' write rate are left to everyone else.
            scaling_config={"maximum_concurrency": feed.max_concurrency},
            # The role must be able to receive before Lambda validates the mapping.
            opts=pulumi.ResourceOptions(depends_on=[target.access_policy]),
        )
    return mappings

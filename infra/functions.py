"""One Lambda function per Chalice handler, each with its own role, log group and (for
the SQS consumers) an event source mapping that reports partial batch failures and caps
how many invocations it runs at once. The reconciler is run by a schedule (infra/schedule.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import policies
from infra.chalice_artifacts import ChaliceArtifacts
from infra.config import StackConfig, visibility_timeout
from upflow.definition import CHUNK_HANDLER, FUNCTIONS, PLANNER_HANDLER, Limits


@dataclass(frozen=True)
class Deployed:
    """One deployed handler."""

    function: aws.lambda_.Function
    role: aws.iam.Role
    log_group: aws.cloudwatch.LogGroup
    access_policy: aws.iam.RolePolicy


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


def plain_environment(config: StackConfig) -> dict[str, str]:
    """The non-secret variables ``runtime_config_from_env`` reads (minus the web origin).

    ``names.as_env()`` includes both DLQs (the reconciler drains them)."""
    names, limits = config.names, config.limits
    return {
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
            opts=pulumi.ResourceOptions(depends_on=[log_group, access, logs]),
        )
        deployed[handler] = Deployed(function, role, log_group, access)
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

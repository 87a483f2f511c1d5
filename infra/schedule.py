"""The reconciler's schedule: an EventBridge rule ``rate(N minutes)`` invoking its function.

processor.reconciler drains the DLQs and moves on work whose worker died; it is idempotent,
so a pass that fails or overlaps the next one does no harm, and a pass that did not run is
made up by the next. Hence no retries of a failed invocation: the schedule is the retry.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.config import SCHEDULE_UNIT_SECONDS, StackConfig
from infra.functions import Deployed

# Lambda's bounds of an asynchronous invocation's maximum event age.
ASYNC_MIN_EVENT_AGE_SECONDS = 60
ASYNC_MAX_EVENT_AGE_SECONDS = 6 * 3600


@dataclass(frozen=True)
class ReconcileSchedule:
    rule: aws.cloudwatch.EventRule
    target: aws.cloudwatch.EventTarget
    permission: aws.lambda_.Permission
    invoke_config: aws.lambda_.FunctionEventInvokeConfig


def schedule_rule_name(stack: str) -> str:
    """Infra-only naming: ``upflow-<stack>-reconcile`` (EventBridge allows 64 characters)."""
    name = f"upflow-{stack}-reconcile"
    if len(name) > 64:
        raise ValueError(f"EventBridge rule name {name!r} is longer than 64 characters")
    return name


def schedule_expression(minutes: int) -> str:
    """EventBridge's rate expression: ``rate(1 minute)`` is singular, ``rate(5 minutes)`` plural."""
    if minutes < 1:
        raise ValueError("a rate schedule needs at least 1 minute")
    return f"rate({minutes} {'minute' if minutes == 1 else 'minutes'})"


def max_event_age_seconds(every_seconds: int) -> int:
    """A pass still queued when the next is due is stale: drop it (within Lambda's bounds)."""
    return max(ASYNC_MIN_EVENT_AGE_SECONDS, min(ASYNC_MAX_EVENT_AGE_SECONDS, every_seconds))


def schedule_reconciler(config: StackConfig, reconciler: Deployed) -> ReconcileSchedule:
    """The rule, its target, and the permission letting that rule (only) invoke the function."""
    function = reconciler.function
    minutes = config.reconcile_every_minutes
    rule = aws.cloudwatch.EventRule(
        "reconcile-schedule",
        name=schedule_rule_name(config.names.stack),
        description=f"upflow {config.names.stack}: run the reconciler every {minutes} min",
        schedule_expression=schedule_expression(minutes),
    )
    child = pulumi.ResourceOptions(parent=rule)
    permission = aws.lambda_.Permission(
        "reconcile-schedule-invoke",
        action="lambda:InvokeFunction",
        function=function.name,
        principal="events.amazonaws.com",
        source_arn=rule.arn,
        opts=child,
    )
    target = aws.cloudwatch.EventTarget(
        "reconcile-schedule-target",
        rule=rule.name,
        arn=function.arn,
        opts=pulumi.ResourceOptions(parent=rule, depends_on=[permission]),
    )
    invoke_config = aws.lambda_.FunctionEventInvokeConfig(
        "reconcile-invoke-config",
        function_name=function.name,
        maximum_retry_attempts=0,
        maximum_event_age_in_seconds=max_event_age_seconds(minutes * SCHEDULE_UNIT_SECONDS),
        opts=pulumi.ResourceOptions(parent=function),
    )
    return ReconcileSchedule(rule, target, permission, invoke_config)

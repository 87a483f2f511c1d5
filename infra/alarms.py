"""CloudWatch alarms, all notifying one SNS topic (emails: ``upflow:alarmEmails``).

Queues (AWS/SQS, dimension QueueName):

* each DLQ: any visible message (``ApproximateNumberOfMessagesVisible`` > 0): work died
  ``max_receives`` times, or EventBridge could not deliver an S3 event;
* each queue and DLQ: the oldest message older than a threshold
  (``ApproximateAgeOfOldestMessage``, StackConfig.age_alarm_seconds): a main queue that is
  not drained (its consumer failing or throttled), a DLQ the reconciler does not drain.

Uploads (the stack's Powertools namespace, dimension service): any upload that ended
``failed`` (``UploadsFailed`` > 0 in a period).

Functions (AWS/Lambda, dimension FunctionName): any invocation that raised, timed out or ran
out of memory (``Errors`` > 0), any throttled invocation (``Throttles`` > 0).

Tables (AWS/DynamoDB, dimension TableName): any throttled read or write
(``ReadThrottleEvents`` / ``WriteThrottleEvents`` > 0).

The topic also hears when an alarm returns to OK (the reconciler drains a DLQ within a period).
docs/operations.md says what each alarm means and what to do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.config import StackConfig
from infra.dashboard import (
    DYNAMODB_NAMESPACE,
    DYNAMODB_READ_THROTTLES,
    DYNAMODB_WRITE_THROTTLES,
    LAMBDA_ERRORS,
    LAMBDA_NAMESPACE,
    LAMBDA_THROTTLES,
    SERVICE_DIMENSION,
    SQS_NAMESPACE,
    SQS_OLDEST_AGE,
    SQS_VISIBLE,
)
from infra.functions import function_name
from infra.queues import QueuePair
from upflow.definition import FUNCTIONS, METRIC_SERVICE, METRIC_UPLOADS_FAILED, metrics_namespace

DEPTH_METRIC = SQS_VISIBLE
AGE_METRIC = SQS_OLDEST_AGE
# SQS sends its metrics to CloudWatch every minute; one minute's maximum decides.
PERIOD_SECONDS = 60
# Errors, throttles and failed uploads: the sum over five minutes (one email per incident,
# not one per minute of it).
EVENT_PERIOD_SECONDS = 300
EVALUATION_PERIODS = 1
# An idle queue, function or table sends no data points: that is no alarm.
TREAT_MISSING_DATA = "notBreaching"


@dataclass(frozen=True)
class Monitoring:
    topic: aws.sns.Topic
    subscriptions: list[aws.sns.TopicSubscription]
    alarms: dict[str, aws.cloudwatch.MetricAlarm]  # by alarm name


def topic_name(stack: str) -> str:
    """Infra-only naming: ``upflow-<stack>-alarms``."""
    return f"upflow-{stack}-alarms"


def depth_alarm_name(queue_name: str) -> str:
    return f"{queue_name}-messages"


def age_alarm_name(queue_name: str) -> str:
    return f"{queue_name}-oldest-message"


def uploads_failed_alarm_name(stack: str) -> str:
    return f"upflow-{stack}-uploads-failed"


def function_alarm_name(function_name: str, metric: str) -> str:
    """``upflow-dev-process-chunks-errors``, ``…-throttles``."""
    return f"{function_name}-{metric.lower()}"


def table_alarm_name(table_name: str, metric: str) -> str:
    """``upflow-dev-status-read-throttles``, ``…-write-throttles``."""
    kind = "read" if metric == DYNAMODB_READ_THROTTLES else "write"
    return f"{table_name}-{kind}-throttles"


def _alarm(
    name: str,
    topic: aws.sns.Topic,
    *,
    namespace: str,
    metric: str,
    dimensions: Mapping[str, pulumi.Input[str]],
    statistic: str,
    period: int,
    threshold: int,
    description: str,
    opts: pulumi.ResourceOptions | None = None,
) -> aws.cloudwatch.MetricAlarm:
    return aws.cloudwatch.MetricAlarm(
        name,
        name=name,
        alarm_description=description,
        namespace=namespace,
        metric_name=metric,
        dimensions=dict(dimensions),
        statistic=statistic,
        period=period,
        evaluation_periods=EVALUATION_PERIODS,
        comparison_operator="GreaterThanThreshold",
        threshold=threshold,
        treat_missing_data=TREAT_MISSING_DATA,
        alarm_actions=[topic.arn],
        ok_actions=[topic.arn],
        opts=opts,
    )


def queue_alarms(
    config: StackConfig, topic: aws.sns.Topic, events: QueuePair, chunks: QueuePair
) -> dict[str, aws.cloudwatch.MetricAlarm]:
    names = config.names
    minutes = config.reconcile_every_minutes
    ages = config.age_alarm_seconds()
    alarms: dict[str, aws.cloudwatch.MetricAlarm] = {}
    for pair, queue_name, dlq_name, work in (
        (events, names.events_queue, names.events_dlq, "planning"),
        (chunks, names.chunks_queue, names.chunks_dlq, "chunk or reduce"),
    ):
        depth = depth_alarm_name(dlq_name)
        alarms[depth] = _alarm(
            depth,
            topic,
            namespace=SQS_NAMESPACE,
            metric=DEPTH_METRIC,
            dimensions={"QueueName": pair.dlq.name},
            statistic="Maximum",
            period=PERIOD_SECONDS,
            threshold=0,
            description=(
                f"Dead letters in {dlq_name}: {work} work failed {config.limits.max_receives} times "
                f"without an outcome (timeout, out of memory). The reconciler fails it within "
                f"{minutes} min; read the function's logs."
            ),
        )
        for queue, name, what in (
            (pair.queue, queue_name, "its consumer is failing, throttled or too slow for the backlog"),
            (pair.dlq, dlq_name, "the reconciler is not draining it (see its logs)"),
        ):
            alarm = age_alarm_name(name)
            alarms[alarm] = _alarm(
                alarm,
                topic,
                namespace=SQS_NAMESPACE,
                metric=AGE_METRIC,
                dimensions={"QueueName": queue.name},
                statistic="Maximum",
                period=PERIOD_SECONDS,
                threshold=ages[name],
                description=f"The oldest message in {name} is over {ages[name]} s old: {what}.",
            )
    return alarms


def uploads_failed_alarm(config: StackConfig, topic: aws.sns.Topic) -> aws.cloudwatch.MetricAlarm:
    stack = config.names.stack
    name = uploads_failed_alarm_name(stack)
    return _alarm(
        name,
        topic,
        namespace=metrics_namespace(stack),
        metric=METRIC_UPLOADS_FAILED.name,
        dimensions={SERVICE_DIMENSION: METRIC_SERVICE},
        statistic="Sum",
        period=EVENT_PERIOD_SECONDS,
        threshold=0,
        description=(
            f"An upload of stack {stack} ended failed. Its status (upflow status ID) gives the reason; "
            "the logs of its upload_id tell more (docs/operations.md); upflow retry ID recovers it."
        ),
    )


def function_alarms(
    config: StackConfig, topic: aws.sns.Topic, functions: Mapping[str, aws.lambda_.Function]
) -> dict[str, aws.cloudwatch.MetricAlarm]:
    alarms: dict[str, aws.cloudwatch.MetricAlarm] = {}
    for handler in FUNCTIONS:
        function = functions[handler]
        physical = function_name(config.names.stack, handler)
        for metric, what in (
            (
                LAMBDA_ERRORS,
                "an invocation raised, timed out or ran out of memory (its message is retried, "
                "then dead-lettered); search its log group for level ERROR",
            ),
            (
                LAMBDA_THROTTLES,
                "Lambda refused invocations for want of concurrency (the account's limit or a "
                "reserved concurrency); queued work waits, API calls get 429/502",
            ),
        ):
            name = function_alarm_name(physical, metric)
            alarms[name] = _alarm(
                name,
                topic,
                namespace=LAMBDA_NAMESPACE,
                metric=metric,
                dimensions={"FunctionName": function.name},
                statistic="Sum",
                period=EVENT_PERIOD_SECONDS,
                threshold=0,
                description=f"{physical}: {what}.",
            )
    return alarms


def table_alarms(
    topic: aws.sns.Topic, tables: Sequence[tuple[str, aws.dynamodb.Table]]
) -> dict[str, aws.cloudwatch.MetricAlarm]:
    alarms: dict[str, aws.cloudwatch.MetricAlarm] = {}
    for table_name, table in tables:
        for metric, what in (
            (DYNAMODB_READ_THROTTLES, "reads"),
            (DYNAMODB_WRITE_THROTTLES, "writes"),
        ):
            name = table_alarm_name(table_name, metric)
            alarms[name] = _alarm(
                name,
                topic,
                namespace=DYNAMODB_NAMESPACE,
                metric=metric,
                dimensions={"TableName": table.name},
                statistic="Sum",
                period=EVENT_PERIOD_SECONDS,
                threshold=0,
                description=(
                    f"{table_name} throttled {what} (on-demand capacity grows by doubling; a burst "
                    "above twice the previous peak, or a hot partition, is throttled). The SDK retries; "
                    "lower chunksMaxConcurrency if it persists."
                ),
            )
    return alarms


def create_alarms(
    config: StackConfig,
    events: QueuePair,
    chunks: QueuePair,
    functions: Mapping[str, aws.lambda_.Function],
    tables: Sequence[tuple[str, aws.dynamodb.Table]],
) -> Monitoring:
    names = config.names
    topic = aws.sns.Topic("alarms", name=topic_name(names.stack), display_name=f"upflow {names.stack}")
    subscriptions = [
        aws.sns.TopicSubscription(
            f"alarms-email-{email}",
            topic=topic.arn,
            protocol="email",
            endpoint=email,
            opts=pulumi.ResourceOptions(parent=topic),
        )
        for email in config.alarm_emails
    ]
    alarms = queue_alarms(config, topic, events, chunks)
    failed = uploads_failed_alarm(config, topic)
    alarms[uploads_failed_alarm_name(names.stack)] = failed
    alarms.update(function_alarms(config, topic, functions))
    alarms.update(table_alarms(topic, tables))
    return Monitoring(topic, subscriptions, alarms)

"""CloudWatch alarms on the queues, all notifying one SNS topic (emails: ``upflow:alarmEmails``).

* each DLQ: any visible message (``ApproximateNumberOfMessagesVisible`` > 0): work died
  ``max_receives`` times, or EventBridge could not deliver an S3 event;
* each queue and DLQ: the oldest message older than a threshold
  (``ApproximateAgeOfOldestMessage``, StackConfig.age_alarm_seconds): a main queue that is
  not drained (its consumer failing or throttled), a DLQ the reconciler does not drain.

The topic also hears when an alarm returns to OK (the reconciler drains a DLQ within a period).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.config import StackConfig
from infra.queues import QueuePair

SQS_NAMESPACE = "AWS/SQS"
DEPTH_METRIC = "ApproximateNumberOfMessagesVisible"
AGE_METRIC = "ApproximateAgeOfOldestMessage"
# SQS sends its metrics to CloudWatch every minute; one minute's maximum decides.
PERIOD_SECONDS = 60
EVALUATION_PERIODS = 1
# An idle queue sends no data points: that is no alarm.
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


def _alarm(
    name: str,
    queue: aws.sqs.Queue,
    topic: aws.sns.Topic,
    *,
    metric: str,
    threshold: int,
    description: str,
) -> aws.cloudwatch.MetricAlarm:
    return aws.cloudwatch.MetricAlarm(
        name,
        name=name,
        alarm_description=description,
        namespace=SQS_NAMESPACE,
        metric_name=metric,
        dimensions={"QueueName": queue.name},
        statistic="Maximum",
        period=PERIOD_SECONDS,
        evaluation_periods=EVALUATION_PERIODS,
        comparison_operator="GreaterThanThreshold",
        threshold=threshold,
        treat_missing_data=TREAT_MISSING_DATA,
        alarm_actions=[topic.arn],
        ok_actions=[topic.arn],
    )


def create_alarms(config: StackConfig, events: QueuePair, chunks: QueuePair) -> Monitoring:
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
            pair.dlq,
            topic,
            metric=DEPTH_METRIC,
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
                queue,
                topic,
                metric=AGE_METRIC,
                threshold=ages[name],
                description=f"The oldest message in {name} is over {ages[name]} s old: {what}.",
            )
    return Monitoring(topic, subscriptions, alarms)

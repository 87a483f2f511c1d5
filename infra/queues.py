"""The events and chunks queues, each with a dead-letter queue and redrive."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi_aws as aws

from infra import policies
from infra.config import DLQ_RETENTION_SECONDS, visibility_timeout
from upflow.definition import FunctionSpec


@dataclass(frozen=True)
class QueuePair:
    queue: aws.sqs.Queue
    dlq: aws.sqs.Queue


def queue_with_dlq(
    name: str, queue_name: str, dlq_name: str, *, consumer: FunctionSpec, max_receives: int
) -> QueuePair:
    """A queue whose visibility covers its consumer's timeout, redriving to its own DLQ."""
    dlq = aws.sqs.Queue(
        f"{name}-dlq",
        name=dlq_name,
        message_retention_seconds=DLQ_RETENTION_SECONDS,
        sqs_managed_sse_enabled=True,
    )
    queue = aws.sqs.Queue(
        name,
        name=queue_name,
        visibility_timeout_seconds=visibility_timeout(consumer),
        sqs_managed_sse_enabled=True,
        redrive_policy=dlq.arn.apply(lambda arn: json.dumps(policies.redrive_policy(arn, max_receives))),
    )
    return QueuePair(queue, dlq)

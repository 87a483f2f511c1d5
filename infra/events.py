"""S3 "Object Created" under uploads/ → EventBridge rule → events queue (failures → events DLQ)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import policies
from infra.queues import QueuePair
from upflow.definition import ResourceNames, object_created_pattern


@dataclass(frozen=True)
class ObjectCreatedRoute:
    rule: aws.cloudwatch.EventRule
    target: aws.cloudwatch.EventTarget


def event_pattern_json(bucket: str) -> str:
    """The rule's pattern: the same dict the local stack uses, JSON-encoded."""
    return json.dumps(object_created_pattern(bucket))


def allow_rule(name: str, queue: aws.sqs.Queue, rule: aws.cloudwatch.EventRule) -> aws.sqs.QueuePolicy:
    return aws.sqs.QueuePolicy(
        name,
        queue_url=queue.url,
        policy=pulumi.Output.all(queue.arn, rule.arn).apply(
            lambda arns: json.dumps(policies.eventbridge_to_queue_policy(arns[0], arns[1]))
        ),
    )


def route_object_created(
    names: ResourceNames, bucket: aws.s3.Bucket, events: QueuePair
) -> ObjectCreatedRoute:
    """The rule, its target and the queue policies that let the rule deliver.

    Infra-only choice: events EventBridge cannot deliver go to the events DLQ --
    the same raw S3 event the planner's failures end up as, so one queue holds
    every "object created but never planned" message.
    """
    rule = aws.cloudwatch.EventRule(
        "object-created",
        name=names.event_rule,
        description=f"S3 objects created in {names.bucket} → {names.events_queue}",
        event_pattern=event_pattern_json(names.bucket),
        opts=pulumi.ResourceOptions(depends_on=[bucket]),
    )
    queue_policy = allow_rule("events-queue-policy", events.queue, rule)
    dlq_policy = allow_rule("events-dlq-policy", events.dlq, rule)
    target = aws.cloudwatch.EventTarget(
        "object-created-to-events-queue",
        rule=rule.name,
        arn=events.queue.arn,
        dead_letter_config={"arn": events.dlq.arn},
        opts=pulumi.ResourceOptions(depends_on=[queue_policy, dlq_policy]),
    )
    return ObjectCreatedRoute(rule, target)

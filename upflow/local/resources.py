"""Creates one stack's resources with boto3, from ``upflow.definition``.

The local counterpart of ``infra/``: same names, same limits, same event
pattern. Run against moto (S3: SeaweedFS) here; it would work against any AWS account too.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from upflow.definition import (
    CHUNK_HANDLER,
    CORS_ALLOWED_HEADERS,
    CORS_ALLOWED_METHODS,
    CORS_EXPOSE_HEADERS,
    FUNCTIONS,
    PLANNER_HANDLER,
    RESULTS_TABLE_KEYS,
    STATUS_TABLE_KEYS,
    VISIBILITY_TIMEOUT_FACTOR,
    Limits,
    ResourceNames,
    object_created_pattern,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient


def create_bucket(
    s3: S3Client, names: ResourceNames, limits: Limits, web_origins: list[str], *, aws_s3: bool = True
) -> None:
    """The uploads bucket. ``aws_s3=False``: an S3 that has neither Block Public Access
    (SeaweedFS answers NotImplemented; it serves nothing unsigned anyway) nor EventBridge
    notifications (``upflow.local.s3events`` sends them)."""
    s3.create_bucket(Bucket=names.bucket)
    if aws_s3:
        s3.put_public_access_block(
            Bucket=names.bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
    s3.put_bucket_encryption(
        Bucket=names.bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_bucket_cors(
        Bucket=names.bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedOrigins": web_origins,
                    "AllowedMethods": list(CORS_ALLOWED_METHODS),
                    "AllowedHeaders": list(CORS_ALLOWED_HEADERS),
                    "ExposeHeaders": list(CORS_EXPOSE_HEADERS),
                    "MaxAgeSeconds": 3000,
                }
            ]
        },
    )
    s3.put_bucket_lifecycle_configuration(
        Bucket=names.bucket,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "abort-incomplete-multipart-uploads",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": limits.lifecycle_days},
                },
                {
                    "ID": "expire-objects",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "Expiration": {"Days": limits.lifecycle_days},
                },
            ]
        },
    )
    if aws_s3:
        s3.put_bucket_notification_configuration(
            Bucket=names.bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
        )


def _queue_with_dlq(sqs: SQSClient, name: str, dlq_name: str, visibility: int, limits: Limits) -> str:
    dlq_url = sqs.create_queue(QueueName=dlq_name, Attributes={"MessageRetentionPeriod": "1209600"})[
        "QueueUrl"
    ]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(visibility),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": limits.max_receives}
            ),
        },
    )["QueueUrl"]
    return url


def create_queues(
    sqs: SQSClient, names: ResourceNames, limits: Limits, visibility_seconds: int | None = None
) -> dict[str, str]:
    """The events and chunks queues with their DLQs. Their visibility timeout is
    VISIBILITY_TIMEOUT_FACTOR x their consumer's timeout, as in infra, unless
    ``visibility_seconds`` says otherwise: the local stack's is short, so that the message
    of a killed process comes back within seconds (its pumps keep a live handler's
    messages invisible; ``upflow.local.pump``)."""
    planner_timeout = FUNCTIONS[PLANNER_HANDLER].timeout_seconds
    chunk_timeout = FUNCTIONS[CHUNK_HANDLER].timeout_seconds
    events_visibility = visibility_seconds or VISIBILITY_TIMEOUT_FACTOR * planner_timeout
    chunks_visibility = visibility_seconds or VISIBILITY_TIMEOUT_FACTOR * chunk_timeout
    return {
        "events": _queue_with_dlq(sqs, names.events_queue, names.events_dlq, events_visibility, limits),
        "chunks": _queue_with_dlq(sqs, names.chunks_queue, names.chunks_dlq, chunks_visibility, limits),
    }


def _table(dynamodb: DynamoDBClient, name: str, keys: tuple[str, str]) -> None:
    partition, sort = keys
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": partition, "AttributeType": "S"},
            {"AttributeName": sort, "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": partition, "KeyType": "HASH"},
            {"AttributeName": sort, "KeyType": "RANGE"},
        ],
    )


def create_tables(dynamodb: DynamoDBClient, names: ResourceNames) -> None:
    _table(dynamodb, names.status_table, STATUS_TABLE_KEYS)
    _table(dynamodb, names.results_table, RESULTS_TABLE_KEYS)


def create_rule(
    events: EventBridgeClient, sqs: SQSClient, names: ResourceNames, events_queue_url: str
) -> None:
    queue_arn = sqs.get_queue_attributes(QueueUrl=events_queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    rule_arn = events.put_rule(
        Name=names.event_rule, EventPattern=json.dumps(object_created_pattern(names.bucket)), State="ENABLED"
    )["RuleArn"]
    policy: dict[str, Any] = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=events_queue_url, Attributes={"Policy": json.dumps(policy)})
    events.put_targets(Rule=names.event_rule, Targets=[{"Id": "events-queue", "Arn": queue_arn}])


def create_stack(
    s3: S3Client,
    sqs: SQSClient,
    dynamodb: DynamoDBClient,
    events: EventBridgeClient,
    names: ResourceNames,
    limits: Limits,
    web_origins: list[str],
    *,
    aws_s3: bool = True,
    visibility_seconds: int | None = None,
) -> None:
    """Create every resource of ``names`` (fails if they already exist)."""
    create_bucket(s3, names, limits, web_origins, aws_s3=aws_s3)
    queue_urls = create_queues(sqs, names, limits, visibility_seconds)
    create_tables(dynamodb, names)
    create_rule(events, sqs, names, queue_urls["events"])

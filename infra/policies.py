"""IAM and resource policy documents (pure: ARNs in, ``dict`` out).

Every statement names its resources; the only wildcards are object-key
wildcards under a prefix (``<bucket>/uploads/*``) and log-stream wildcards under
a function's own log group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from upflow.definition import (
    API_HANDLER,
    CHUNK_ERRORS_PREFIX,
    CHUNK_HANDLER,
    PARTIALS_PREFIX,
    PLANNER_HANDLER,
    RECONCILER_HANDLER,
    REPORTS_PREFIX,
    RESULTS_PREFIX,
    UPLOADS_PREFIX,
)

PolicyDocument = dict[str, Any]
Statement = dict[str, Any]

VERSION = "2012-10-17"

# --- actions per concern ----------------------------------------------------
# CreateMultipartUpload, UploadPart (presigned) and CompleteMultipartUpload are s3:PutObject.
API_S3_OBJECT_ACTIONS = (
    "s3:PutObject",
    "s3:GetObject",
    "s3:ListMultipartUploadParts",
    "s3:AbortMultipartUpload",
)
# Bucket-level: without it a GET/HEAD of a missing key answers 403 instead of 404.
S3_LIST_BUCKET = "s3:ListBucket"
API_DYNAMODB_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    # POST /uploads/{id}/retry moves each failed chunk and the upload's counter in one transaction.
    "dynamodb:TransactWriteItems",
    "dynamodb:ConditionCheckItem",
)
PLANNER_DYNAMODB_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:TransactWriteItems",
    "dynamodb:ConditionCheckItem",
)
PROCESSOR_DYNAMODB_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:TransactWriteItems",
    "dynamodb:ConditionCheckItem",
)
# The app knows queues by name (ResourceNames.as_env), so senders resolve the URL first.
SQS_SEND_ACTIONS = ("sqs:SendMessage", "sqs:GetQueueUrl")
# What a Lambda SQS event source mapping needs from the function's role.
SQS_CONSUME_ACTIONS = (
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
    # processor.batch shortens a failed message's visibility through the queue's URL.
    "sqs:GetQueueUrl",
)
# The reconciler (processor.reconciler) walks the status table: the active-uploads list (Query,
# DeleteItem of an ended upload's entry), the work items and the upload (the state machines'
# conditional updates and transactions), and processor.finalize.advance (PutItem of the
# reduce plan). It never reads or writes the results table.
RECONCILER_DYNAMODB_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:TransactWriteItems",
)
# What draining a dead-letter queue takes: no event source mapping, the reconciler receives
# (asking for every attribute: ApproximateReceiveCount) and deletes by the queue's URL.
SQS_DRAIN_ACTIONS = (
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
)
LOGS_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents")


def _allow(actions: Sequence[str], resources: Sequence[str], sid: str) -> Statement:
    return {"Sid": sid, "Effect": "Allow", "Action": list(actions), "Resource": list(resources)}


def document(*statements: Statement) -> PolicyDocument:
    return {"Version": VERSION, "Statement": list(statements)}


def objects(bucket_arn: str, *prefixes: str) -> list[str]:
    """Object ARNs under each key prefix (``uploads/`` → ``<bucket_arn>/uploads/*``)."""
    return [f"{bucket_arn}/{prefix}*" for prefix in prefixes]


def assume_role_policy(service: str = "lambda.amazonaws.com") -> PolicyDocument:
    return document({"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"})


def logs_policy(log_group_arn: str) -> PolicyDocument:
    """Write to the function's own log group (created by the program, so no CreateLogGroup)."""
    return document(_allow(LOGS_ACTIONS, [f"{log_group_arn}:*"], "WriteOwnLogs"))


def api_policy(
    bucket_arn: str, status_table_arn: str, results_table_arn: str, chunks_queue_arn: str
) -> PolicyDocument:
    return document(
        _allow(API_S3_OBJECT_ACTIONS, objects(bucket_arn, UPLOADS_PREFIX, REPORTS_PREFIX), "Uploads"),
        # GET /uploads/{id}/results presigns a GET of the totals CSV: the link carries these rights.
        _allow(["s3:GetObject"], objects(bucket_arn, RESULTS_PREFIX), "ReadResults"),
        _allow([S3_LIST_BUCKET], [bucket_arn], "ListUploadsBucket"),
        _allow(API_DYNAMODB_ACTIONS, [status_table_arn, results_table_arn], "Tables"),
        _allow(SQS_SEND_ACTIONS, [chunks_queue_arn], "RequeueChunks"),
    )


def _pipeline_objects(bucket_arn: str) -> list[Statement]:
    """What whoever runs ``processor.finalize.advance`` touches in S3: a worker or a reducer,
    and the planner too (after its last page it may start the reduce or finalise)."""
    return [
        _allow(
            ["s3:GetObject"],
            objects(bucket_arn, UPLOADS_PREFIX, CHUNK_ERRORS_PREFIX, PARTIALS_PREFIX, RESULTS_PREFIX),
            "ReadObjects",
        ),
        _allow(
            # Error files and reports are streamed by multipart upload (PutObject rights), and
            # one that fails is aborted (upflow.aws.s3.ObjectWriter).
            ["s3:PutObject", "s3:AbortMultipartUpload"],
            objects(bucket_arn, CHUNK_ERRORS_PREFIX, PARTIALS_PREFIX, RESULTS_PREFIX, REPORTS_PREFIX),
            "WriteOutputs",
        ),
        _allow([S3_LIST_BUCKET], [bucket_arn], "ListUploadsBucket"),
    ]


def planner_policy(
    bucket_arn: str,
    status_table_arn: str,
    results_table_arn: str,
    events_queue_arn: str,
    chunks_queue_arn: str,
) -> PolicyDocument:
    return document(
        *_pipeline_objects(bucket_arn),
        _allow(PLANNER_DYNAMODB_ACTIONS, [status_table_arn, results_table_arn], "Tables"),
        _allow(SQS_SEND_ACTIONS, [events_queue_arn, chunks_queue_arn], "SendEventsAndChunks"),
        _allow(SQS_CONSUME_ACTIONS, [events_queue_arn], "ConsumeEvents"),
    )


def processor_policy(
    bucket_arn: str, status_table_arn: str, results_table_arn: str, chunks_queue_arn: str
) -> PolicyDocument:
    return document(
        *_pipeline_objects(bucket_arn),
        _allow(PROCESSOR_DYNAMODB_ACTIONS, [status_table_arn, results_table_arn], "Tables"),
        # The reduce tasks (and re-parses) go on the chunks queue the processor consumes.
        _allow(SQS_SEND_ACTIONS, [chunks_queue_arn], "SendWork"),
        _allow(SQS_CONSUME_ACTIONS, [chunks_queue_arn], "ConsumeChunks"),
    )


def reconciler_policy(
    bucket_arn: str,
    status_table_arn: str,
    chunks_queue_arn: str,
    events_dlq_arn: str,
    chunks_dlq_arn: str,
) -> PolicyDocument:
    """Drain both DLQs, fail or re-send stuck work, and advance the upload as a worker would."""
    return document(
        *_pipeline_objects(bucket_arn),
        _allow(RECONCILER_DYNAMODB_ACTIONS, [status_table_arn], "StatusTable"),
        # Stuck chunks and shards are sent again to the chunks queue (and advance's reducers).
        _allow(SQS_SEND_ACTIONS, [chunks_queue_arn], "SendWork"),
        _allow(SQS_DRAIN_ACTIONS, [events_dlq_arn, chunks_dlq_arn], "DrainDeadLetters"),
    )


def deny_insecure_transport(bucket_arn: str) -> Statement:
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def tls_only_bucket_policy(bucket_arn: str) -> PolicyDocument:
    return document(deny_insecure_transport(bucket_arn))


def site_bucket_policy(bucket_arn: str, distribution_arn: str) -> PolicyDocument:
    """CloudFront (through origin access control) may read; nobody may use plain HTTP."""
    return document(
        {
            "Sid": "CloudFrontReads",
            "Effect": "Allow",
            "Principal": {"Service": "cloudfront.amazonaws.com"},
            "Action": "s3:GetObject",
            "Resource": f"{bucket_arn}/*",
            "Condition": {"StringEquals": {"AWS:SourceArn": distribution_arn}},
        },
        deny_insecure_transport(bucket_arn),
    )


def eventbridge_to_queue_policy(queue_arn: str, rule_arn: str) -> PolicyDocument:
    """Let one EventBridge rule (and nothing else) send to the queue."""
    return document(
        {
            "Sid": "EventBridgeRuleSends",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
        }
    )


def redrive_policy(dead_letter_arn: str, max_receives: int) -> dict[str, Any]:
    return {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": max_receives}


def wildcard_resources(policy: PolicyDocument) -> list[str]:
    """Resources of Allow statements that are a bare ``*`` (or ``arn:*``-style catch-alls)."""
    found: list[str] = []
    for statement in policy["Statement"]:
        if statement.get("Effect") != "Allow":
            continue
        resources = statement.get("Resource", [])
        for resource in [resources] if isinstance(resources, str) else resources:
            if resource == "*" or resource.startswith("arn:*") or ":*:*" in resource:
                found.append(resource)
    return found


@dataclass(frozen=True)
class ResourceArns:
    """The ARNs the functions' policies are about."""

    bucket: str
    status_table: str
    results_table: str
    events_queue: str
    chunks_queue: str
    events_dlq: str
    chunks_dlq: str


def function_policy(handler: str, arns: ResourceArns) -> PolicyDocument:
    """The access policy of one Chalice handler (see upflow.definition.FUNCTIONS)."""
    if handler == API_HANDLER:
        return api_policy(arns.bucket, arns.status_table, arns.results_table, arns.chunks_queue)
    if handler == PLANNER_HANDLER:
        return planner_policy(
            arns.bucket, arns.status_table, arns.results_table, arns.events_queue, arns.chunks_queue
        )
    if handler == CHUNK_HANDLER:
        return processor_policy(arns.bucket, arns.status_table, arns.results_table, arns.chunks_queue)
    if handler == RECONCILER_HANDLER:
        return reconciler_policy(
            arns.bucket, arns.status_table, arns.chunks_queue, arns.events_dlq, arns.chunks_dlq
        )
    raise ValueError(f"no policy for handler {handler!r}")

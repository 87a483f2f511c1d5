"""The uploads bucket: private, encrypted, TLS-only, CORS for the web page, events to EventBridge,
a lifecycle per prefix (upflow.definition.Limits.expiry_days_by_prefix), and S3 request metrics
(4xx/5xx errors, for the dashboard)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import policies
from upflow.definition import (
    CORS_ALLOWED_HEADERS,
    CORS_ALLOWED_METHODS,
    CORS_EXPOSE_HEADERS,
    Limits,
    ResourceNames,
)

# Infra-only: how long browsers may cache the CORS preflight answer.
CORS_MAX_AGE_SECONDS = 3000
ABORT_MPU_RULE_ID = "abort-incomplete-multipart-uploads"
# S3 publishes request metrics (AWS/S3 4xxErrors, 5xxErrors, ...; dimensions BucketName and
# FilterId) only for a bucket's request-metrics configurations, each named by its filter id.
# One for the whole bucket (no filter): the name the S3 console gives such a filter.
REQUEST_METRICS_FILTER_ID = "EntireBucket"


def expire_rule_id(prefix: str) -> str:
    """``expire-uploads``, ``expire-reports``, ... (one rule per prefix)."""
    return f"expire-{prefix.strip('/')}"


def lifecycle_rules(limits: Limits) -> list[aws.s3.BucketLifecycleConfigurationRuleArgsDict]:
    """The bucket's lifecycle: incomplete multipart uploads aborted after ``lifecycle_days``
    (whole bucket: uploads/, and the error files and reports a killed worker was streaming), and
    each prefix expired after its own days."""
    rules: list[aws.s3.BucketLifecycleConfigurationRuleArgsDict] = [
        {
            "id": ABORT_MPU_RULE_ID,
            "status": "Enabled",
            "filter": {},
            "abort_incomplete_multipart_upload": {"days_after_initiation": limits.lifecycle_days},
        }
    ]
    for prefix, days in limits.expiry_days_by_prefix().items():
        rules.append(
            {
                "id": expire_rule_id(prefix),
                "status": "Enabled",
                "filter": {"prefix": prefix},
                "expiration": {"days": days},
            }
        )
    return rules


@dataclass(frozen=True)
class PrivateBucket:
    bucket: aws.s3.Bucket
    public_access_block: aws.s3.BucketPublicAccessBlock
    encryption: aws.s3.BucketServerSideEncryptionConfiguration


@dataclass(frozen=True)
class UploadsBucket:
    bucket: aws.s3.Bucket
    policy: aws.s3.BucketPolicy
    notification: aws.s3.BucketNotification
    request_metrics: aws.s3.BucketMetric


def private_bucket(
    name: str, physical_name: str, *, force_destroy: bool, opts: pulumi.ResourceOptions | None = None
) -> PrivateBucket:
    """A bucket with Block Public Access on and SSE-S3 default encryption."""
    bucket = aws.s3.Bucket(name, bucket=physical_name, force_destroy=force_destroy, opts=opts)
    child = pulumi.ResourceOptions(parent=bucket)
    public_access_block = aws.s3.BucketPublicAccessBlock(
        f"{name}-public-access-block",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=child,
    )
    encryption = aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-encryption",
        bucket=bucket.id,
        rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
        opts=child,
    )
    return PrivateBucket(bucket, public_access_block, encryption)


def create_uploads_bucket(
    names: ResourceNames, *, limits: Limits, web_origin: pulumi.Input[str], force_destroy: bool
) -> UploadsBucket:
    private = private_bucket("uploads", names.bucket, force_destroy=force_destroy)
    bucket = private.bucket
    child = pulumi.ResourceOptions(parent=bucket)
    policy = aws.s3.BucketPolicy(
        "uploads-policy",
        bucket=bucket.id,
        policy=bucket.arn.apply(lambda arn: json.dumps(policies.tls_only_bucket_policy(arn))),
        opts=pulumi.ResourceOptions(parent=bucket, depends_on=[private.public_access_block]),
    )
    aws.s3.BucketCorsConfiguration(
        "uploads-cors",
        bucket=bucket.id,
        cors_rules=[
            {
                "allowed_origins": [web_origin],
                "allowed_methods": list(CORS_ALLOWED_METHODS),
                "allowed_headers": list(CORS_ALLOWED_HEADERS),
                "expose_headers": list(CORS_EXPOSE_HEADERS),
                "max_age_seconds": CORS_MAX_AGE_SECONDS,
            }
        ],
        opts=child,
    )
    aws.s3.BucketLifecycleConfiguration(
        "uploads-lifecycle",
        bucket=bucket.id,
        rules=lifecycle_rules(limits),
        opts=child,
    )
    notification = aws.s3.BucketNotification(
        "uploads-notification", bucket=bucket.id, eventbridge=True, opts=child
    )
    # Paid per metric (CloudWatch custom-metric pricing); what shows expired or refused part
    # URLs (403s on presigned PUTs) and S3-side failures.
    request_metrics = aws.s3.BucketMetric(
        "uploads-request-metrics", bucket=bucket.id, name=REQUEST_METRICS_FILTER_ID, opts=child
    )
    return UploadsBucket(bucket, policy, notification, request_metrics)

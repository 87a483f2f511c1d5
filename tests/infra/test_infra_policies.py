"""The pure policy builders: least privilege, no wildcard resources."""

from __future__ import annotations

import pytest

from infra import policies
from upflow.definition import FUNCTIONS

ARNS = policies.ResourceArns(
    bucket="arn:aws:s3:::b",
    status_table="arn:aws:dynamodb:r:1:table/s",
    results_table="arn:aws:dynamodb:r:1:table/r",
    events_queue="arn:aws:sqs:r:1:e",
    chunks_queue="arn:aws:sqs:r:1:c",
    events_dlq="arn:aws:sqs:r:1:e-dlq",
    chunks_dlq="arn:aws:sqs:r:1:c-dlq",
)


@pytest.mark.parametrize("handler", list(FUNCTIONS))
def test_function_policies_name_every_resource(handler):
    document = policies.function_policy(handler, ARNS)
    assert document["Version"] == "2012-10-17"
    assert policies.wildcard_resources(document) == []
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        assert all(not action.endswith(":*") for action in statement["Action"]), statement


def test_unknown_handler_has_no_policy():
    with pytest.raises(ValueError, match="no policy"):
        policies.function_policy("nope", ARNS)


def test_wildcard_detector_finds_catch_alls():
    document = policies.document(
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["logs:PutLogEvents"], "Resource": ["arn:*:logs:*:*:*"]},
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*"},
    )
    assert policies.wildcard_resources(document) == ["*", "arn:*:logs:*:*:*"]


def test_logs_policy_is_limited_to_one_group():
    document = policies.logs_policy("arn:aws:logs:r:1:log-group:/aws/lambda/f")
    (statement,) = document["Statement"]
    assert statement["Resource"] == ["arn:aws:logs:r:1:log-group:/aws/lambda/f:*"]
    assert "logs:CreateLogGroup" not in statement["Action"]


def test_redrive_policy():
    assert policies.redrive_policy("arn:dlq", 5) == {"deadLetterTargetArn": "arn:dlq", "maxReceiveCount": 5}


def test_tls_only_policy_denies_insecure_transport():
    (statement,) = policies.tls_only_bucket_policy("arn:aws:s3:::b")["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statement["Resource"] == ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]


def _granted(handler: str) -> set[tuple[str, str]]:
    document = policies.function_policy(handler, ARNS)
    return {
        (action, resource)
        for statement in document["Statement"]
        for action in statement["Action"]
        for resource in statement["Resource"]
    }


def test_the_api_can_run_the_retry_transaction_and_requeue_chunks():
    granted = _granted("api_handler")
    assert ("dynamodb:TransactWriteItems", ARNS.status_table) in granted
    assert ("sqs:SendMessage", ARNS.chunks_queue) in granted
    assert ("s3:GetObject", f"{ARNS.bucket}/reports/*") in granted  # presigned report downloads


def test_the_planner_can_tell_a_missing_object_from_a_refused_one():
    assert ("s3:ListBucket", ARNS.bucket) in _granted("plan_object")


def test_consumers_can_delay_a_failed_messages_retry():
    for handler, queue in (("process_chunks", ARNS.chunks_queue), ("plan_object", ARNS.events_queue)):
        granted = _granted(handler)
        assert ("sqs:GetQueueUrl", queue) in granted
        assert ("sqs:ChangeMessageVisibility", queue) in granted


def test_the_reconciler_drains_both_dlqs_and_requeues_to_the_chunks_queue_only():
    granted = _granted("reconcile")
    for dlq in (ARNS.events_dlq, ARNS.chunks_dlq):
        for action in ("ReceiveMessage", "DeleteMessage", "GetQueueAttributes", "GetQueueUrl"):
            assert (f"sqs:{action}", dlq) in granted
        assert ("sqs:SendMessage", dlq) not in granted
    assert ("sqs:SendMessage", ARNS.chunks_queue) in granted
    assert not {(a, r) for a, r in granted if r in (ARNS.events_queue, ARNS.results_table)}
    assert ("dynamodb:DeleteItem", ARNS.status_table) in granted
    # processor.finalize.advance: the same S3 rights as the processor.
    s3 = {(a, r) for a, r in granted if a.startswith("s3:")}
    assert s3 == {(a, r) for a, r in _granted("process_chunks") if a.startswith("s3:")}


def test_whoever_finalises_can_abort_a_streamed_error_file_or_report() -> None:
    # upflow.aws.s3.ObjectWriter aborts its multipart upload when the work fails.
    for handler in ("process_chunks", "plan_object", "reconcile"):
        granted = _granted(handler)
        for prefix in ("chunk-errors", "reports"):
            assert ("s3:PutObject", f"{ARNS.bucket}/{prefix}/*") in granted
            assert ("s3:AbortMultipartUpload", f"{ARNS.bucket}/{prefix}/*") in granted

"""The whole Pulumi program under mocks: every resource's inputs and the stack outputs.

`infra.program.define` runs once per scenario under `pulumi.runtime.set_mocks`; the
mocks record each resource's inputs (camelCase, as the engine receives them).
"""

from __future__ import annotations

import json

import pytest

from infra.alarms import AGE_METRIC, DEPTH_METRIC, age_alarm_name, depth_alarm_name
from infra.api_gateway import GATEWAY_RESPONSES
from infra.chalice_artifacts import ArtifactError
from infra.functions import function_name, log_group_name
from infra.policies import wildcard_resources
from infra.schedule import max_event_age_seconds, schedule_expression
from infra.site import WebBuildMissing
from upflow import definition
from upflow.definition import (
    API_HANDLER,
    CHUNK_ERRORS_PREFIX,
    CHUNK_HANDLER,
    CORS_ALLOWED_HEADERS,
    CORS_ALLOWED_METHODS,
    FUNCTIONS,
    PARTIALS_PREFIX,
    PLANNER_HANDLER,
    RECONCILER_HANDLER,
    REPORTS_PREFIX,
    RESULTS_PREFIX,
    RESULTS_TABLE_KEYS,
    STATUS_TABLE_KEYS,
    UPLOADS_PREFIX,
    VISIBILITY_TIMEOUT_FACTOR,
    FunctionSpec,
    Limits,
    names_for,
    object_created_pattern,
)

NAMES = names_for("test", "abc")
CLOUDFRONT_URL = "https://d111111abcdef8.cloudfront.net"
API_URL = "https://a1b2c3.execute-api.us-east-1.amazonaws.com/api"

BUCKET = "aws:s3/bucket:Bucket"
QUEUE = "aws:sqs/queue:Queue"
FUNCTION = "aws:lambda/function:Function"
MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping"
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
PERMISSION = "aws:lambda/permission:Permission"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = "aws:sns/topic:Topic"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"


@pytest.fixture(scope="module")
def run(make_config, stack_runner):
    """The default stack: web origin = the CloudFront URL."""
    return stack_runner(make_config())


@pytest.fixture(scope="module")
def tuned(make_config, stack_runner):
    """A stack with every tunable moved off its default."""
    functions = {
        API_HANDLER: FunctionSpec(memory_mb=256, timeout_seconds=20),
        PLANNER_HANDLER: FunctionSpec(memory_mb=768, timeout_seconds=120),
        CHUNK_HANDLER: FunctionSpec(memory_mb=3008, timeout_seconds=600),
        RECONCILER_HANDLER: FunctionSpec(memory_mb=256, timeout_seconds=120),
    }
    limits = Limits(
        lifecycle_days=3,
        report_retention_days=60,
        results_retention_days=90,
        token_ttl_seconds=3600,
        api_rate_limit=20,
        api_burst_limit=40,
        chunk_batch_size=5,
        events_batch_size=2,
        events_max_concurrency=3,
        chunks_max_concurrency=50,
        chunk_size=16 * 2**20,
        reconcile_every_seconds=60,
    )
    return stack_runner(
        make_config(
            web_origin="https://upload.example.com",
            limits=limits,
            functions=functions,
            log_retention_days=30,
            alarm_emails=("ops@example.com", "oncall@example.org"),
            chunks_age_alarm_seconds=7200,
            dlq_age_alarm_seconds=600,
        )
    )


def bucket_resource(run, suffix: str, typ: str):
    return run.one(f"aws:s3/{typ}", f"uploads-{suffix}")


# --- storage -------------------------------------------------------------------


def test_uploads_bucket_is_named_by_definition(run):
    assert run.one(BUCKET, "uploads").inputs["bucket"] == NAMES.bucket
    assert run.one(BUCKET, "site").inputs["bucket"] == NAMES.site_bucket


@pytest.mark.parametrize("bucket", ["uploads", "site"])
def test_buckets_block_public_access_and_encrypt(run, bucket):
    block = run.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", f"{bucket}-public-access-block")
    for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"):
        assert block.inputs[flag] is True, flag
    sse = run.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        f"{bucket}-encryption",
    )
    assert sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"


@pytest.mark.parametrize("bucket", ["uploads", "site"])
def test_bucket_policies_deny_plain_http(run, bucket):
    policy = run.one("aws:s3/bucketPolicy:BucketPolicy", f"{bucket}-policy").json("policy")
    deny = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert deny == [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [
                f"arn:aws:s3:::{getattr(NAMES, 'bucket' if bucket == 'uploads' else 'site_bucket')}",
                f"arn:aws:s3:::{getattr(NAMES, 'bucket' if bucket == 'uploads' else 'site_bucket')}/*",
            ],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ]


def test_uploads_policy_allows_nothing(run):
    policy = run.one("aws:s3/bucketPolicy:BucketPolicy", "uploads-policy").json("policy")
    assert [s["Effect"] for s in policy["Statement"]] == ["Deny"]


def test_cors_allows_the_web_origin_and_exposes_etag(run, tuned):
    (rule,) = run.one("aws:s3/bucketCorsConfiguration:BucketCorsConfiguration").inputs["corsRules"]
    assert rule["allowedOrigins"] == [CLOUDFRONT_URL]
    assert rule["exposeHeaders"] == ["ETag"]
    assert rule["allowedMethods"] == list(CORS_ALLOWED_METHODS)
    assert rule["allowedHeaders"] == list(CORS_ALLOWED_HEADERS)
    (tuned_rule,) = tuned.one("aws:s3/bucketCorsConfiguration:BucketCorsConfiguration").inputs["corsRules"]
    assert tuned_rule["allowedOrigins"] == ["https://upload.example.com"]


def test_uploads_bucket_sends_events_to_eventbridge(run):
    notification = run.one("aws:s3/bucketNotification:BucketNotification")
    assert notification.inputs == {"bucket": NAMES.bucket, "eventbridge": True}


@pytest.mark.parametrize(
    ("scenario", "days", "reports", "results"),
    [("run", 1, 1 + 30, 1 + 30), ("tuned", 3, 3 + 60, 3 + 90)],
)
def test_lifecycle_aborts_multipart_uploads_and_expires_each_prefix(
    request, scenario, days, reports, results
):
    stack = request.getfixturevalue(scenario)
    rules = stack.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs["rules"]
    by_id = {rule["id"]: rule for rule in rules}
    assert all(rule["status"] == "Enabled" for rule in rules)
    # Incomplete multipart uploads: aborted lifecycleDays after initiate, anywhere in the bucket.
    abort = by_id.pop("abort-incomplete-multipart-uploads")
    assert abort["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": days}
    assert "expiration" not in abort and not abort.get("filter")
    # Every object: the raw upload and what is derived from it chunk by chunk go with the
    # lifecycle; reports and totals stay their own retention after the raw object expires.
    expiry = {rule["filter"]["prefix"]: rule["expiration"]["days"] for rule in by_id.values()}
    assert expiry == {
        UPLOADS_PREFIX: days,
        PARTIALS_PREFIX: days,
        CHUNK_ERRORS_PREFIX: days,
        REPORTS_PREFIX: reports,
        RESULTS_PREFIX: results,
    }
    assert set(by_id) == {f"expire-{prefix.strip('/')}" for prefix in expiry}


def test_every_prefix_of_the_bucket_has_an_expiry(run):
    """A prefix added to definition.py without a lifecycle rule would keep its objects forever."""
    prefixes = {value for name, value in vars(definition).items() if name.endswith("_PREFIX")}
    rules = run.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs["rules"]
    assert prefixes == {rule["filter"]["prefix"] for rule in rules if "expiration" in rule}


# --- queues --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("queue", "dlq", "consumer"),
    [
        (NAMES.events_queue, NAMES.events_dlq, PLANNER_HANDLER),
        (NAMES.chunks_queue, NAMES.chunks_dlq, CHUNK_HANDLER),
    ],
)
def test_queues_redrive_to_their_dlq_and_outlast_the_consumer(run, tuned, queue, dlq, consumer):
    for stack, timeout in (
        (run, FUNCTIONS[consumer].timeout_seconds),
        (tuned, {PLANNER_HANDLER: 120, CHUNK_HANDLER: 600}[consumer]),
    ):
        queues = {r.inputs["name"]: r for r in stack.of_type(QUEUE)}
        main = queues[queue]
        assert json.loads(main.inputs["redrivePolicy"]) == {
            "deadLetterTargetArn": f"arn:aws:sqs:us-east-1:123456789012:{dlq}",
            "maxReceiveCount": Limits().max_receives,
        }
        assert Limits().max_receives == 5  # AWS's guidance for Lambda SQS sources: at least 5
        assert main.inputs["visibilityTimeoutSeconds"] == VISIBILITY_TIMEOUT_FACTOR * timeout
        assert main.inputs["visibilityTimeoutSeconds"] >= 6 * timeout
        assert "redrivePolicy" not in queues[dlq].inputs
    assert {r.inputs["name"] for r in run.of_type(QUEUE)} == {
        NAMES.events_queue,
        NAMES.events_dlq,
        NAMES.chunks_queue,
        NAMES.chunks_dlq,
    }


@pytest.mark.parametrize("policy_name", ["events-queue-policy", "events-dlq-policy"])
def test_only_the_rule_may_send_to_the_events_queue_and_its_dlq(run, policy_name):
    queue_policy = run.one("aws:sqs/queuePolicy:QueuePolicy", policy_name)
    (statement,) = queue_policy.json("policy")["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": f"arn:aws:events:us-east-1:123456789012:rule/{NAMES.event_rule}"}
    }
    queue = NAMES.events_queue if policy_name == "events-queue-policy" else NAMES.events_dlq
    assert statement["Resource"] == f"arn:aws:sqs:us-east-1:123456789012:{queue}"
    assert queue_policy.inputs["queueUrl"].endswith(f"/{queue}")


# --- tables --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "keys"), [(NAMES.status_table, STATUS_TABLE_KEYS), (NAMES.results_table, RESULTS_TABLE_KEYS)]
)
def test_tables_are_on_demand_with_point_in_time_recovery(run, name, keys):
    (table,) = [r for r in run.of_type("aws:dynamodb/table:Table") if r.inputs["name"] == name]
    assert table.inputs["billingMode"] == "PAY_PER_REQUEST"
    assert table.inputs["pointInTimeRecovery"] == {"enabled": True}
    assert (table.inputs["hashKey"], table.inputs["rangeKey"]) == keys
    assert table.inputs["attributes"] == [{"name": keys[0], "type": "S"}, {"name": keys[1], "type": "S"}]


# --- events --------------------------------------------------------------------


def test_rule_pattern_is_the_definitions(run):
    rule = run.one(RULE, "object-created")
    assert rule.inputs["name"] == NAMES.event_rule
    assert rule.json("eventPattern") == object_created_pattern(NAMES.bucket)


def test_rule_targets_the_events_queue_with_a_dead_letter_queue(run):
    target = run.one(TARGET, "object-created-to-events-queue")
    assert target.inputs["rule"] == NAMES.event_rule
    assert target.inputs["arn"] == f"arn:aws:sqs:us-east-1:123456789012:{NAMES.events_queue}"
    dlq = f"arn:aws:sqs:us-east-1:123456789012:{NAMES.events_dlq}"
    assert target.inputs["deadLetterConfig"] == {"arn": dlq}


# --- functions -----------------------------------------------------------------


def test_one_function_per_handler_sized_by_definition(run):
    functions = {r.name: r for r in run.of_type(FUNCTION)}
    assert set(functions) == set(FUNCTIONS)
    expected_handlers = {
        API_HANDLER: "app.app",
        PLANNER_HANDLER: f"app.{PLANNER_HANDLER}",
        CHUNK_HANDLER: f"app.{CHUNK_HANDLER}",
        RECONCILER_HANDLER: f"app.{RECONCILER_HANDLER}",
    }
    assert len(functions) == 4
    for handler, spec in FUNCTIONS.items():
        inputs = functions[handler].inputs
        assert inputs["name"] == function_name("test", handler)
        assert inputs["handler"] == expected_handlers[handler]
        assert inputs["runtime"] in ("python3.11", "python3.12")
        assert inputs["memorySize"] == spec.memory_mb
        assert inputs["timeout"] == spec.timeout_seconds
        assert inputs["architectures"] == ["x86_64"]
        assert inputs["role"].endswith(f"/{handler}-role")


def test_function_sizing_follows_config(tuned):
    sizes = {r.name: (r.inputs["memorySize"], r.inputs["timeout"]) for r in tuned.of_type(FUNCTION)}
    assert sizes == {
        API_HANDLER: (256, 20),
        PLANNER_HANDLER: (768, 120),
        CHUNK_HANDLER: (3008, 600),
        RECONCILER_HANDLER: (256, 120),
    }


def test_functions_deploy_the_chalice_zip(run, chalice_build):
    for function in run.of_type(FUNCTION):
        assert function.inputs["code"].path == str(chalice_build / "deployment.zip")


def test_function_environment(run, tuned):
    limits = Limits()
    for function in run.of_type(FUNCTION):
        assert "environment" in function.secret_inputs  # it carries the token secret
        env = function.inputs["environment"]["variables"]
        assert env == {
            **NAMES.as_env(),
            "UPFLOW_TOKEN_SECRET": "test-token-secret",
            "UPFLOW_WEB_ORIGIN": CLOUDFRONT_URL,
            "UPFLOW_CHUNK_SIZE": str(limits.chunk_size),
            "UPFLOW_MAX_UPLOAD_SIZE": str(limits.max_upload_size),
            "UPFLOW_URL_EXPIRY_SECONDS": str(limits.url_expiry_seconds),
            "UPFLOW_LIFECYCLE_DAYS": str(limits.lifecycle_days),
            "UPFLOW_TOKEN_TTL_SECONDS": str(limits.token_ttl_seconds),
            "UPFLOW_CHUNK_BATCH_SIZE": str(limits.chunk_batch_size),
            "UPFLOW_MAX_RECEIVES": "5",
            # The chunks queue's visibility timeout: 6 x the processor's timeout.
            "UPFLOW_STUCK_AFTER_SECONDS": str(6 * FUNCTIONS[CHUNK_HANDLER].timeout_seconds),
            # Powertools (tests/infra/test_infra_observability.py covers their settings).
            "POWERTOOLS_SERVICE_NAME": "upflow",
            "POWERTOOLS_METRICS_NAMESPACE": "upflow/test",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        # The reconciler drains both DLQs, which every function knows by name.
        assert (env["UPFLOW_EVENTS_DLQ"], env["UPFLOW_CHUNKS_DLQ"]) == (NAMES.events_dlq, NAMES.chunks_dlq)
    assert len(run.of_type(FUNCTION)) == len(FUNCTIONS) == 4
    for function in tuned.of_type(FUNCTION):
        # A stack that gives the processor 600 s: its items are stuck only after 3600 s.
        assert function.inputs["environment"]["variables"]["UPFLOW_STUCK_AFTER_SECONDS"] == "3600"
    env = tuned.one(FUNCTION, API_HANDLER).inputs["environment"]["variables"]
    assert env["UPFLOW_WEB_ORIGIN"] == "https://upload.example.com"
    assert env["UPFLOW_CHUNK_SIZE"] == str(16 * 2**20)
    assert env["UPFLOW_LIFECYCLE_DAYS"] == "3"
    assert env["UPFLOW_TOKEN_TTL_SECONDS"] == "3600"
    assert env["UPFLOW_CHUNK_BATCH_SIZE"] == "5"


def test_log_groups_have_retention(run, tuned):
    for stack, days in ((run, 14), (tuned, 30)):
        groups = {
            r.inputs["name"]: r.inputs["retentionInDays"]
            for r in stack.of_type("aws:cloudwatch/logGroup:LogGroup")
        }
        assert groups == {log_group_name(function_name("test", h)): days for h in FUNCTIONS}


@pytest.mark.parametrize(
    ("scenario", "sizes", "concurrency"),
    [
        (
            "run",
            {PLANNER_HANDLER: Limits().events_batch_size, CHUNK_HANDLER: Limits().chunk_batch_size},
            {PLANNER_HANDLER: 2, CHUNK_HANDLER: 20},
        ),
        ("tuned", {PLANNER_HANDLER: 2, CHUNK_HANDLER: 5}, {PLANNER_HANDLER: 3, CHUNK_HANDLER: 50}),
    ],
)
def test_queues_feed_their_handlers_reporting_item_failures(request, scenario, sizes, concurrency):
    stack = request.getfixturevalue(scenario)
    queues = {PLANNER_HANDLER: NAMES.events_queue, CHUNK_HANDLER: NAMES.chunks_queue}
    mappings = stack.of_type(MAPPING)
    assert len(mappings) == 2
    for mapping in mappings:
        handler = mapping.name.removesuffix("-sqs")
        assert mapping.inputs["eventSourceArn"] == f"arn:aws:sqs:us-east-1:123456789012:{queues[handler]}"
        assert mapping.inputs["functionName"].endswith(f":function:{function_name('test', handler)}")
        assert mapping.inputs["functionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping.inputs["batchSize"] == sizes[handler]
        # One giant upload cannot take every invocation (nor every table write) there is.
        assert mapping.inputs["scalingConfig"] == {"maximumConcurrency": concurrency[handler]}
        assert 2 <= concurrency[handler] <= 1000
    assert (Limits().events_max_concurrency, Limits().chunks_max_concurrency) == (2, 20)


# --- IAM -----------------------------------------------------------------------


def all_policy_documents(run):
    yield from ((r.name, r.json("policy")) for r in run.of_type(ROLE_POLICY))
    yield from ((r.name, r.json("policy")) for r in run.of_type("aws:s3/bucketPolicy:BucketPolicy"))
    yield from ((r.name, r.json("policy")) for r in run.of_type("aws:sqs/queuePolicy:QueuePolicy"))


def test_no_policy_grants_on_a_wildcard_resource(run):
    documents = list(all_policy_documents(run))
    assert len(documents) == 2 * len(FUNCTIONS) + 2 + 2
    for name, document in documents:
        assert wildcard_resources(document) == [], name
        for statement in document["Statement"]:
            resources = statement["Resource"]
            for resource in [resources] if isinstance(resources, str) else resources:
                assert resource != "*", name
                assert resource.startswith("arn:aws:"), (name, resource)


def access(run, handler):
    return {
        statement["Sid"]: statement
        for statement in run.one(ROLE_POLICY, f"{handler}-access").json("policy")["Statement"]
    }


def test_each_function_has_its_own_role(run):
    roles = {f.inputs["role"] for f in run.of_type(FUNCTION)}
    assert len(roles) == len(FUNCTIONS)
    for role in run.of_type("aws:iam/role:Role"):
        (statement,) = role.json("assumeRolePolicy")["Statement"]
        assert statement["Principal"] == {"Service": "lambda.amazonaws.com"}


def test_logs_policy_is_scoped_to_the_functions_log_group(run):
    for handler in FUNCTIONS:
        (statement,) = run.one(ROLE_POLICY, f"{handler}-logs").json("policy")["Statement"]
        group = log_group_name(function_name("test", handler))
        assert statement["Resource"] == [f"arn:aws:logs:us-east-1:123456789012:log-group:{group}:*"]
        assert set(statement["Action"]) == {"logs:CreateLogStream", "logs:PutLogEvents"}


ARN_S3 = f"arn:aws:s3:::{NAMES.bucket}"
ARN_STATUS = f"arn:aws:dynamodb:us-east-1:123456789012:table/{NAMES.status_table}"
ARN_RESULTS = f"arn:aws:dynamodb:us-east-1:123456789012:table/{NAMES.results_table}"
ARN_EVENTS = f"arn:aws:sqs:us-east-1:123456789012:{NAMES.events_queue}"
ARN_CHUNKS = f"arn:aws:sqs:us-east-1:123456789012:{NAMES.chunks_queue}"


def test_api_permissions(run):
    statements = access(run, API_HANDLER)
    assert statements["Uploads"]["Resource"] == [f"{ARN_S3}/uploads/*", f"{ARN_S3}/reports/*"]
    assert set(statements["Uploads"]["Action"]) == {
        "s3:PutObject",
        "s3:GetObject",
        "s3:ListMultipartUploadParts",
        "s3:AbortMultipartUpload",
    }
    assert statements["ReadResults"] == {
        "Sid": "ReadResults",
        "Effect": "Allow",
        "Action": ["s3:GetObject"],
        "Resource": [f"{ARN_S3}/results/*"],
    }
    assert statements["Tables"]["Resource"] == [ARN_STATUS, ARN_RESULTS]
    assert statements["RequeueChunks"]["Resource"] == [ARN_CHUNKS]
    assert "sqs:SendMessage" in statements["RequeueChunks"]["Action"]
    actions = {a for s in statements.values() for a in s["Action"]}
    assert not {a for a in actions if a.startswith("sqs:Receive") or a == "sqs:DeleteMessage"}


PIPELINE_READS = [
    f"{ARN_S3}/uploads/*",
    f"{ARN_S3}/chunk-errors/*",
    f"{ARN_S3}/partials/*",
    f"{ARN_S3}/results/*",
]
PIPELINE_WRITES = [
    f"{ARN_S3}/chunk-errors/*",
    f"{ARN_S3}/partials/*",
    f"{ARN_S3}/results/*",
    f"{ARN_S3}/reports/*",
]


def test_planner_permissions(run):
    # The planner's last page may start the reduce or finalise (processor.finalize.advance).
    statements = access(run, PLANNER_HANDLER)
    assert statements["ReadObjects"]["Resource"] == PIPELINE_READS
    assert statements["ReadObjects"]["Action"] == ["s3:GetObject"]
    assert statements["WriteOutputs"]["Resource"] == PIPELINE_WRITES
    assert statements["WriteOutputs"]["Action"] == ["s3:PutObject", "s3:AbortMultipartUpload"]
    assert statements["Tables"]["Resource"] == [ARN_STATUS, ARN_RESULTS]
    assert statements["SendEventsAndChunks"]["Resource"] == [ARN_EVENTS, ARN_CHUNKS]
    assert statements["ConsumeEvents"]["Resource"] == [ARN_EVENTS]
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage"} <= set(statements["ConsumeEvents"]["Action"])


def test_processor_permissions(run):
    statements = access(run, CHUNK_HANDLER)
    assert statements["ReadObjects"]["Resource"] == PIPELINE_READS
    assert statements["WriteOutputs"]["Resource"] == PIPELINE_WRITES
    assert {"dynamodb:TransactWriteItems", "dynamodb:BatchWriteItem", "dynamodb:Query"} <= set(
        statements["Tables"]["Action"]
    )
    assert statements["ConsumeChunks"]["Resource"] == [ARN_CHUNKS]
    # It sends reduce tasks to its own queue, and nowhere else.
    assert statements["SendWork"]["Resource"] == [ARN_CHUNKS]
    senders = [s for s in statements.values() if "sqs:SendMessage" in s["Action"]]
    assert senders == [statements["SendWork"]]


ARN_EVENTS_DLQ = f"arn:aws:sqs:us-east-1:123456789012:{NAMES.events_dlq}"
ARN_CHUNKS_DLQ = f"arn:aws:sqs:us-east-1:123456789012:{NAMES.chunks_dlq}"


def test_reconciler_permissions(run):
    statements = access(run, RECONCILER_HANDLER)
    assert set(statements) == {
        "ReadObjects",
        "WriteOutputs",
        "ListUploadsBucket",
        "StatusTable",
        "SendWork",
        "DrainDeadLetters",
    }
    # processor.finalize.advance's S3 rights, exactly the processor's.
    processor = access(run, CHUNK_HANDLER)
    for sid in ("ReadObjects", "WriteOutputs", "ListUploadsBucket"):
        assert statements[sid] == processor[sid], sid
    assert statements["ReadObjects"]["Resource"] == PIPELINE_READS
    assert statements["WriteOutputs"]["Resource"] == PIPELINE_WRITES
    # The status table only (never the results table), DeleteItem included (the active list).
    assert statements["StatusTable"]["Resource"] == [ARN_STATUS]
    assert set(statements["StatusTable"]["Action"]) == {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:TransactWriteItems",
    }
    # It sends to the chunks queue only, and receives from the two DLQs only.
    assert statements["SendWork"] == {
        "Sid": "SendWork",
        "Effect": "Allow",
        "Action": ["sqs:SendMessage", "sqs:GetQueueUrl"],
        "Resource": [ARN_CHUNKS],
    }
    assert statements["DrainDeadLetters"]["Resource"] == [ARN_EVENTS_DLQ, ARN_CHUNKS_DLQ]
    assert set(statements["DrainDeadLetters"]["Action"]) == {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
    }
    sqs_grants = {
        (action, resource)
        for statement in statements.values()
        for action in statement["Action"]
        if action.startswith("sqs:")
        for resource in statement["Resource"]
    }
    assert {resource for _, resource in sqs_grants} == {ARN_CHUNKS, ARN_EVENTS_DLQ, ARN_CHUNKS_DLQ}
    assert ("sqs:ReceiveMessage", ARN_CHUNKS) not in sqs_grants
    assert not any(action == "sqs:SendMessage" and resource != ARN_CHUNKS for action, resource in sqs_grants)


def test_no_other_function_touches_the_dlqs(run):
    for handler in (API_HANDLER, PLANNER_HANDLER, CHUNK_HANDLER):
        resources = {r for s in access(run, handler).values() for r in s["Resource"]}
        assert not resources & {ARN_EVENTS_DLQ, ARN_CHUNKS_DLQ}, handler


# --- the reconciler's schedule ---------------------------------------------------


RECONCILER_ARN = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name('test', RECONCILER_HANDLER)}"


@pytest.mark.parametrize(
    ("scenario", "expression", "max_age"), [("run", "rate(5 minutes)", 300), ("tuned", "rate(1 minute)", 60)]
)
def test_the_reconciler_runs_on_a_schedule(request, scenario, expression, max_age):
    stack = request.getfixturevalue(scenario)
    assert Limits().reconcile_every_seconds == 300
    rule = stack.one(RULE, "reconcile-schedule")
    assert rule.inputs["name"] == "upflow-test-reconcile"
    assert rule.inputs["scheduleExpression"] == expression
    assert "eventPattern" not in rule.inputs
    target = stack.one(TARGET, "reconcile-schedule-target")
    assert target.inputs["rule"] == "upflow-test-reconcile"
    assert target.inputs["arn"] == RECONCILER_ARN
    # Only that rule may invoke the reconciler.
    permission = stack.one(PERMISSION, "reconcile-schedule-invoke")
    assert permission.inputs["action"] == "lambda:InvokeFunction"
    assert permission.inputs["function"] == function_name("test", RECONCILER_HANDLER)
    assert permission.inputs["principal"] == "events.amazonaws.com"
    rule_arn = "arn:aws:events:us-east-1:123456789012:rule/upflow-test-reconcile"
    assert permission.inputs["sourceArn"] == rule_arn
    # A failed pass is not retried, nor a late one run: the next scheduled pass does it.
    config = stack.one("aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig").inputs
    assert config["functionName"] == function_name("test", RECONCILER_HANDLER)
    assert (config["maximumRetryAttempts"], config["maximumEventAgeInSeconds"]) == (0, max_age)
    # Nothing else invokes it: no queue feeds it, and the object-created rule targets the queue.
    assert not [m for m in stack.of_type(MAPPING) if m.inputs["functionName"] == RECONCILER_ARN]
    invokers = {p.name for p in stack.of_type(PERMISSION)}
    assert invokers == {"api-invoke", "reconcile-schedule-invoke"}
    assert {t.inputs["arn"] for t in stack.of_type(TARGET)} == {RECONCILER_ARN, ARN_EVENTS}


def test_schedule_expressions():
    # EventBridge refuses "rate(1 minutes)" and "rate(5 minute)".
    expressions = [schedule_expression(minutes) for minutes in (1, 2, 60)]
    assert expressions == ["rate(1 minute)", "rate(2 minutes)", "rate(60 minutes)"]
    with pytest.raises(ValueError):
        schedule_expression(0)
    # Lambda's bounds of an async event's age: 60 s .. 6 h.
    assert [max_event_age_seconds(s) for s in (60, 300, 86_400)] == [60, 300, 21_600]


# --- alarms ----------------------------------------------------------------------------


TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:upflow-test-alarms"


def alarms_by_name(stack):
    return {alarm.inputs["name"]: alarm.inputs for alarm in stack.of_type(ALARM)}


def test_the_alarm_topic(run, tuned):
    topic = run.one(TOPIC, "alarms")
    assert topic.inputs["name"] == "upflow-test-alarms"
    # None by default: the topic is there (an output) for whoever subscribes.
    assert run.of_type(SUBSCRIPTION) == []
    subscriptions = {r.inputs["endpoint"]: r.inputs for r in tuned.of_type(SUBSCRIPTION)}
    assert set(subscriptions) == {"ops@example.com", "oncall@example.org"}
    for subscription in subscriptions.values():
        assert subscription["protocol"] == "email"
        assert subscription["topic"] == TOPIC_ARN


@pytest.mark.parametrize("scenario", ["run", "tuned"])
def test_every_dlq_alarms_on_any_message(request, scenario):
    alarms = alarms_by_name(request.getfixturevalue(scenario))
    for dlq in (NAMES.events_dlq, NAMES.chunks_dlq):
        alarm = alarms[depth_alarm_name(dlq)]
        assert (alarm["namespace"], alarm["metricName"]) == ("AWS/SQS", DEPTH_METRIC)
        assert DEPTH_METRIC == "ApproximateNumberOfMessagesVisible"
        assert alarm["dimensions"] == {"QueueName": dlq}
        assert (alarm["comparisonOperator"], alarm["threshold"]) == ("GreaterThanThreshold", 0)
        assert alarm["statistic"] == "Maximum"
        assert alarm["evaluationPeriods"] == 1
        assert alarm["treatMissingData"] == "notBreaching"
        assert alarm["alarmActions"] == [TOPIC_ARN]
        assert alarm["okActions"] == [TOPIC_ARN]


@pytest.mark.parametrize(
    ("scenario", "thresholds"),
    [
        (
            "run",
            {
                # Twice the visibility timeout: 2 x 6 x 300 s.
                NAMES.events_queue: 3600,
                NAMES.chunks_queue: 3600,
                # Three reconciler periods: 3 x 300 s.
                NAMES.events_dlq: 900,
                NAMES.chunks_dlq: 900,
            },
        ),
        (
            "tuned",
            {
                NAMES.events_queue: 2 * 6 * 120,  # the planner's 120 s timeout, no override
                NAMES.chunks_queue: 7200,
                NAMES.events_dlq: 600,
                NAMES.chunks_dlq: 600,
            },
        ),
    ],
)
def test_every_queue_alarms_on_its_oldest_messages_age(request, scenario, thresholds):
    alarms = alarms_by_name(request.getfixturevalue(scenario))
    for queue, threshold in thresholds.items():
        alarm = alarms[age_alarm_name(queue)]
        assert (alarm["namespace"], alarm["metricName"]) == ("AWS/SQS", AGE_METRIC)
        assert AGE_METRIC == "ApproximateAgeOfOldestMessage"
        assert alarm["dimensions"] == {"QueueName": queue}
        assert (alarm["comparisonOperator"], alarm["threshold"]) == ("GreaterThanThreshold", threshold)
        assert alarm["statistic"] == "Maximum"
        assert alarm["treatMissingData"] == "notBreaching"
        assert alarm["alarmActions"] == [TOPIC_ARN]
        assert alarm["okActions"] == [TOPIC_ARN]
    # Those and the two DLQ depth alarms are every queue alarm (the others: test_infra_observability).
    sqs = {name for name, alarm in alarms.items() if alarm["namespace"] == "AWS/SQS"}
    assert len(sqs) == len(thresholds) + 2


# --- API Gateway ---------------------------------------------------------------


def test_rest_api_is_chalices_swagger_pointed_at_the_api_function(run):
    api = run.one("aws:apigateway/restApi:RestApi")
    body = api.json("body")
    function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name('test', API_HANDLER)}"
    invoke = f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{function_arn}/invocations"
    integrations = [
        op["x-amazon-apigateway-integration"] for path in body["paths"].values() for op in path.values()
    ]
    lambda_uris = [i["uri"] for i in integrations if i["type"] == "aws_proxy"]
    assert set(body["paths"]) == {"/health", "/uploads", "/uploads/{upload_id}"}  # routed by path
    assert lambda_uris and set(lambda_uris) == {invoke}
    assert "Fn::Sub" not in api.inputs["body"]


def preflight_origins(stack):
    body = stack.one("aws:apigateway/restApi:RestApi").json("body")
    return {
        op["x-amazon-apigateway-integration"]["responses"]["default"]["responseParameters"][
            "method.response.header.Access-Control-Allow-Origin"
        ]
        for path in body["paths"].values()
        for method, op in path.items()
        if method == "options"
    }


def test_api_preflights_allow_the_web_origin(run, tuned):
    assert preflight_origins(run) == {f"'{CLOUDFRONT_URL}'"}
    assert preflight_origins(tuned) == {"'https://upload.example.com'"}


def test_stage_deployment_and_invoke_permission(run):
    stage = run.one("aws:apigateway/stage:Stage")
    assert stage.inputs["stageName"] == "api"
    assert stage.inputs["restApi"] == "a1b2c3"
    deployment = run.one("aws:apigateway/deployment:Deployment")
    assert deployment.inputs["restApi"] == "a1b2c3"
    assert deployment.inputs["triggers"]["body"]  # a new deployment whenever the routes change
    permission = run.one(PERMISSION, "api-invoke")
    assert permission.inputs["principal"] == "apigateway.amazonaws.com"
    assert permission.inputs["action"] == "lambda:InvokeFunction"
    assert permission.inputs["function"] == function_name("test", API_HANDLER)
    assert permission.inputs["sourceArn"] == "arn:aws:execute-api:us-east-1:123456789012:a1b2c3/*"


@pytest.mark.parametrize(("scenario", "rate", "burst"), [("run", 50, 100), ("tuned", 20, 40)])
def test_the_stage_is_throttled_and_has_a_usage_plan(request, scenario, rate, burst):
    stack = request.getfixturevalue(scenario)
    assert (Limits().api_rate_limit, Limits().api_burst_limit) == (50, 100)
    settings = stack.one("aws:apigateway/methodSettings:MethodSettings")
    assert settings.inputs["restApi"] == "a1b2c3"
    assert settings.inputs["stageName"] == "api"
    assert settings.inputs["methodPath"] == "*/*"  # every route, /preview included
    assert settings.inputs["settings"] == {"throttlingRateLimit": rate, "throttlingBurstLimit": burst}
    plan = stack.one("aws:apigateway/usagePlan:UsagePlan")
    assert plan.inputs["name"] == "upflow-test-api"
    assert plan.inputs["apiStages"] == [{"apiId": "a1b2c3", "stage": "api"}]
    assert plan.inputs["throttleSettings"] == {"rateLimit": rate, "burstLimit": burst}


@pytest.mark.parametrize(
    ("scenario", "origin"), [("run", CLOUDFRONT_URL), ("tuned", "https://upload.example.com")]
)
def test_gateway_refusals_answer_the_apis_json_errors(request, scenario, origin):
    stack = request.getfixturevalue(scenario)
    responses = {
        r.inputs["responseType"]: r.inputs for r in stack.of_type("aws:apigateway/response:Response")
    }
    assert set(responses) == {"THROTTLED", "REQUEST_TOO_LARGE"}
    throttled, too_large = responses["THROTTLED"], responses["REQUEST_TOO_LARGE"]
    assert throttled["statusCode"] == "429" and too_large["statusCode"] == "413"
    assert json.loads(throttled["responseTemplates"]["application/json"])["error"] == "rate_limited"
    body = json.loads(too_large["responseTemplates"]["application/json"])
    assert (body["error"], body["field"]) == ("too_large", "body")
    assert throttled["responseParameters"]["gatewayresponse.header.Retry-After"] == "'1'"
    for response in responses.values():
        assert response["restApiId"] == "a1b2c3"
        parameters = response["responseParameters"]
        assert parameters["gatewayresponse.header.Access-Control-Allow-Origin"] == f"'{origin}'"
        assert parameters["gatewayresponse.header.Content-Type"] == "'application/json'"
    # Gateway responses take effect with a deployment: the deployment changes with them.
    triggers = stack.one("aws:apigateway/deployment:Deployment").inputs["triggers"]
    assert set(triggers) == {"body", "gateway_responses"}
    assert len(GATEWAY_RESPONSES) == len(responses)


# --- web hosting ----------------------------------------------------------------


def test_cloudfront_serves_the_private_site_bucket(run):
    cdn = run.one("aws:cloudfront/distribution:Distribution")
    assert cdn.inputs["defaultRootObject"] == "index.html"
    (origin,) = cdn.inputs["origins"]
    assert origin["domainName"] == f"{NAMES.site_bucket}.s3.us-east-1.amazonaws.com"
    assert origin["originAccessControlId"] == "site-oac-id"
    assert cdn.inputs["defaultCacheBehavior"]["viewerProtocolPolicy"] == "redirect-to-https"
    oac = run.one("aws:cloudfront/originAccessControl:OriginAccessControl")
    assert (oac.inputs["originAccessControlOriginType"], oac.inputs["signingBehavior"]) == ("s3", "always")
    site_policy = run.one("aws:s3/bucketPolicy:BucketPolicy", "site-policy").json("policy")
    (allow,) = [s for s in site_policy["Statement"] if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert allow["Condition"] == {
        "StringEquals": {"AWS:SourceArn": "arn:aws:cloudfront::123456789012:distribution/E2EXAMPLE"}
    }


def test_web_build_is_uploaded_with_content_types(run):
    objects = {r.inputs["key"]: r.inputs for r in run.of_type(OBJECT)}
    assert set(objects) == {
        "index.html",
        "assets/index-3f2a1b.js",
        "assets/index-3f2a1b.css",
        "favicon.svg",
        "config.json",
    }
    assert objects["index.html"]["contentType"].startswith("text/html")
    assert objects["assets/index-3f2a1b.js"]["contentType"].startswith("text/javascript")
    assert objects["assets/index-3f2a1b.css"]["contentType"].startswith("text/css")
    assert objects["favicon.svg"]["contentType"] == "image/svg+xml"
    assert all(o["bucket"] == NAMES.site_bucket for o in objects.values())


def test_config_json_is_built_from_the_api_url(run):
    config = run.one(OBJECT, "site/config.json").inputs
    assert json.loads(config["content"]) == {"apiUrl": API_URL}
    assert config["contentType"] == "application/json"
    assert config["cacheControl"] == "no-cache"
    assert "source" not in config  # generated, never the dev leftover in web/dist


# --- outputs -------------------------------------------------------------------


def test_stack_outputs(run):
    expected = {
        "api_url": API_URL,
        "web_url": CLOUDFRONT_URL,
        "bucket": NAMES.bucket,
        "status_table": NAMES.status_table,
        "results_table": NAMES.results_table,
        "events_queue": NAMES.events_queue,
        "events_dlq": NAMES.events_dlq,
        "chunks_queue": NAMES.chunks_queue,
        "chunks_dlq": NAMES.chunks_dlq,
    }
    assert {key: run.outputs[key] for key in expected} == expected
    assert run.outputs["chunks_dlq_url"].endswith(f"/{NAMES.chunks_dlq}")
    assert run.outputs["web_origin"] == CLOUDFRONT_URL
    assert run.outputs["alarm_topic_arn"] == "arn:aws:sns:us-east-1:123456789012:upflow-test-alarms"
    assert run.outputs["dashboard_url"] == (
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1"
        "#dashboards/dashboard/upflow-test"
    )


# --- missing artifacts ------------------------------------------------------------


def test_arm64_stack_deploys_arm64_functions(make_config, stack_runner, arm64_build):
    run = stack_runner(make_config(architecture="arm64", build_dir=arm64_build))
    functions = run.of_type(FUNCTION)
    assert len(functions) == len(FUNCTIONS)
    assert all(function.inputs["architectures"] == ["arm64"] for function in functions)
    assert all(function.inputs["code"].path == str(arm64_build / "deployment.zip") for function in functions)


@pytest.mark.parametrize(("stack", "build"), [("arm64", "chalice_build"), ("x86_64", "arm64_build")])
def test_a_zip_built_for_another_architecture_is_refused(request, make_config, stack_runner, stack, build):
    config = make_config(architecture=stack, build_dir=request.getfixturevalue(build))
    with pytest.raises(ArtifactError, match=f"make package LAMBDA_ARCH={stack}"):
        stack_runner(config)


def test_missing_build_folder_names_make_package(make_config, stack_runner, tmp_path):
    with pytest.raises(ArtifactError, match="make package"):
        stack_runner(make_config(build_dir=tmp_path / "nope"))


def test_missing_web_build_names_make_web(make_config, stack_runner, tmp_path):
    with pytest.raises(WebBuildMissing, match="make web"):
        stack_runner(make_config(web_dist=tmp_path / "dist"))

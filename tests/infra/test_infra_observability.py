"""The operators' view in infra, through the Pulumi mocks: the dashboard, the alarms beside the
queues' ones, X-Ray tracing (off by default) and the Powertools layer and settings.

The central check: every metric the dashboard and the alarms name is either one
upflow.definition.METRICS declares (the functions emit those through Powertools Metrics; the
EMF test checks the emission) or one AWS publishes for a resource this stack creates — the
table below lists what AWS publishes, written out here rather than taken from infra, and the
dimension values must be the names of the queues, functions, tables and bucket the program
declared.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from infra.config import REPO_ROOT
from infra.dashboard import StackResources, dashboard_body, widget_titles
from infra.functions import function_name
from upflow.definition import (
    API_HANDLER,
    CHUNK_HANDLER,
    FUNCTIONS,
    METRIC_SERVICE,
    METRICS,
    PLANNER_HANDLER,
    RECONCILER_HANDLER,
    names_for,
)

NAMES = names_for("test", "abc")
NAMESPACE = "upflow/test"
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:upflow-test-alarms"
OPERATIONS_DOC = REPO_ROOT / "docs" / "operations.md"

DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
FUNCTION = "aws:lambda/function:Function"
QUEUE = "aws:sqs/queue:Queue"
TABLE = "aws:dynamodb/table:Table"
BUCKET_METRIC = "aws:s3/bucketMetric:BucketMetric"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
STAGE = "aws:apigateway/stage:Stage"

# What CloudWatch receives from AWS for the resource types of this stack, by (namespace,
# metric): the dimension names it is published with (AWS docs: "Available CloudWatch metrics
# for Amazon SQS", "Types of metrics for Lambda functions", "DynamoDB Metrics and
# dimensions", "Amazon S3 request metrics" — the last only for a bucket's request-metrics
# configuration, named by FilterId).
AWS_PUBLISHED: dict[tuple[str, str], frozenset[str]] = {
    ("AWS/SQS", "ApproximateNumberOfMessagesVisible"): frozenset({"QueueName"}),
    ("AWS/SQS", "ApproximateAgeOfOldestMessage"): frozenset({"QueueName"}),
    ("AWS/Lambda", "Errors"): frozenset({"FunctionName"}),
    ("AWS/Lambda", "Throttles"): frozenset({"FunctionName"}),
    ("AWS/Lambda", "Duration"): frozenset({"FunctionName"}),
    ("AWS/Lambda", "ConcurrentExecutions"): frozenset({"FunctionName"}),
    ("AWS/DynamoDB", "ReadThrottleEvents"): frozenset({"TableName"}),
    ("AWS/DynamoDB", "WriteThrottleEvents"): frozenset({"TableName"}),
    ("AWS/DynamoDB", "ConsumedReadCapacityUnits"): frozenset({"TableName"}),
    ("AWS/DynamoDB", "ConsumedWriteCapacityUnits"): frozenset({"TableName"}),
    ("AWS/S3", "4xxErrors"): frozenset({"BucketName", "FilterId"}),
    ("AWS/S3", "5xxErrors"): frozenset({"BucketName", "FilterId"}),
}


@dataclass(frozen=True)
class MetricRef:
    """A metric a widget or alarm names."""

    where: str  # widget title or alarm name
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    stat: str


def dashboard_refs(stack) -> list[MetricRef]:
    body = stack.one(DASHBOARD).json("dashboardBody")
    refs = []
    for widget in body["widgets"]:
        if widget["type"] != "metric":
            continue
        for row in widget["properties"]["metrics"]:
            options = row[-1] if isinstance(row[-1], dict) else {}
            namespace, name, *pairs = [part for part in row if not isinstance(part, dict)]
            assert len(pairs) % 2 == 0, row
            dimensions = tuple(zip(pairs[::2], pairs[1::2], strict=True))
            refs.append(
                MetricRef(widget["properties"]["title"], namespace, name, dimensions, options.get("stat", ""))
            )
    return refs


def alarm_refs(stack) -> list[MetricRef]:
    refs = []
    for alarm in stack.of_type(ALARM):
        inputs = alarm.inputs
        assert "metricQueries" not in inputs  # plain metric alarms only: the refs below are all
        refs.append(
            MetricRef(
                inputs["name"],
                inputs["namespace"],
                inputs["metricName"],
                tuple(sorted(inputs.get("dimensions", {}).items())),
                inputs["statistic"],
            )
        )
    return refs


def unknown_metrics(stack, refs: list[MetricRef]) -> list[str]:
    """What in ``refs`` nobody publishes: neither declared in METRICS (with Powertools' service
    dimension), nor an AWS metric of a resource of ``stack`` with the dimensions AWS gives it."""
    declared = {spec.name for spec in METRICS}
    resources = {
        "QueueName": {r.inputs["name"] for r in stack.of_type(QUEUE)},
        "FunctionName": {r.inputs["name"] for r in stack.of_type(FUNCTION)},
        "TableName": {r.inputs["name"] for r in stack.of_type(TABLE)},
    }
    # The mocked bucket id is its name; the configuration's name is its FilterId.
    request_metrics = {(r.inputs["bucket"], r.inputs["name"]) for r in stack.of_type(BUCKET_METRIC)}
    problems = []
    for ref in refs:
        dimensions = dict(ref.dimensions)
        if ref.namespace == NAMESPACE:
            if ref.name not in declared:
                problems.append(f"{ref.where}: {ref.name} is not in definition.METRICS")
            if dimensions != {"service": METRIC_SERVICE}:
                problems.append(f"{ref.where}: {ref.name} has dimensions {dimensions}, not Powertools'")
            continue
        expected = AWS_PUBLISHED.get((ref.namespace, ref.name))
        if expected is None:
            problems.append(f"{ref.where}: AWS publishes no {ref.namespace} {ref.name} for this stack")
            continue
        if set(dimensions) != expected:
            problems.append(f"{ref.where}: {ref.name} has dimensions {sorted(dimensions)}, not {expected}")
            continue
        if "BucketName" in dimensions:
            if (dimensions["BucketName"], dimensions["FilterId"]) not in request_metrics:
                problems.append(f"{ref.where}: no request-metrics configuration {dimensions}")
            continue
        for key, value in dimensions.items():
            if value not in resources[key]:
                problems.append(f"{ref.where}: {key} {value!r} is no resource of the stack")
    return problems


@pytest.fixture(scope="module")
def run(make_config, stack_runner):
    return stack_runner(make_config())


@pytest.fixture(scope="module")
def traced(make_config, stack_runner):
    return stack_runner(make_config(tracing=True, log_level="DEBUG", alarm_emails=("ops@example.com",)))


# --- every metric named is emitted or published ------------------------------------


@pytest.mark.parametrize("scenario", ["run", "traced"])
def test_every_metric_the_dashboard_and_alarms_name_is_emitted_or_published(request, scenario):
    stack = request.getfixturevalue(scenario)
    refs = dashboard_refs(stack) + alarm_refs(stack)
    assert len(refs) > 60  # 14 custom lines and the AWS ones of 4 queues, 4 functions, 2 tables, 1 bucket
    assert unknown_metrics(stack, refs) == []


def test_the_check_refuses_metrics_nobody_publishes(run):
    bogus = [
        MetricRef("a", NAMESPACE, "ChunksExploded", (("service", METRIC_SERVICE),), "Sum"),
        MetricRef("b", NAMESPACE, "RowsValid", (("service", "other"),), "Sum"),
        MetricRef("c", "AWS/SQS", "ApproximateNumberOfMessagesVisible", (("QueueName", "no-such"),), "Sum"),
        MetricRef("d", "AWS/SQS", "NumberOfMessagesVisible", (("QueueName", NAMES.chunks_dlq),), "Sum"),
        MetricRef("e", "AWS/Lambda", "Errors", (("Function", NAMES.bucket),), "Sum"),
        MetricRef("f", "AWS/S3", "4xxErrors", (("BucketName", NAMES.bucket), ("FilterId", "other")), "Sum"),
        MetricRef("g", "AWS/DynamoDB", "ReadThrottleEvents", (("TableName", NAMES.status_table),), "Sum"),
    ]
    problems = unknown_metrics(run, bogus)
    assert [problem.split(":")[0] for problem in problems] == ["a", "b", "c", "d", "e", "f"]


def test_every_declared_metric_is_on_the_dashboard(run):
    drawn = {ref.name for ref in dashboard_refs(run) if ref.namespace == NAMESPACE}
    assert drawn == {spec.name for spec in METRICS}
    assert len(METRICS) == 14


def test_the_dashboard_shows_each_resource(run):
    refs = {(ref.namespace, ref.name, ref.dimensions, ref.stat) for ref in dashboard_refs(run)}
    for queue in (NAMES.events_queue, NAMES.events_dlq, NAMES.chunks_queue, NAMES.chunks_dlq):
        for metric in ("ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"):
            assert ("AWS/SQS", metric, (("QueueName", queue),), "Maximum") in refs
    for handler in FUNCTIONS:
        dimension = (("FunctionName", function_name("test", handler)),)
        assert ("AWS/Lambda", "Errors", dimension, "Sum") in refs
        assert ("AWS/Lambda", "Throttles", dimension, "Sum") in refs
        assert ("AWS/Lambda", "Duration", dimension, "p50") in refs
        assert ("AWS/Lambda", "Duration", dimension, "p99") in refs
        assert ("AWS/Lambda", "ConcurrentExecutions", dimension, "Maximum") in refs
    for table in (NAMES.status_table, NAMES.results_table):
        for metric in (
            "ReadThrottleEvents",
            "WriteThrottleEvents",
            "ConsumedReadCapacityUnits",
            "ConsumedWriteCapacityUnits",
        ):
            assert ("AWS/DynamoDB", metric, (("TableName", table),), "Sum") in refs
    bucket = (("BucketName", NAMES.bucket), ("FilterId", "EntireBucket"))
    assert ("AWS/S3", "4xxErrors", bucket, "Sum") in refs
    assert ("AWS/S3", "5xxErrors", bucket, "Sum") in refs
    # Durations as percentiles, counts as sums.
    custom = {(ref.name, ref.stat) for ref in dashboard_refs(run) if ref.namespace == NAMESPACE}
    assert {("ChunkDuration", "p50"), ("ChunkDuration", "p99"), ("UploadsFailed", "Sum")} <= custom


def test_the_uploads_bucket_publishes_request_metrics(run):
    (configuration,) = run.of_type(BUCKET_METRIC)
    assert configuration.inputs["bucket"] == NAMES.bucket
    assert configuration.inputs["name"] == "EntireBucket"
    assert "filter" not in configuration.inputs  # the whole bucket


def test_the_dashboard_resource_and_its_url(run):
    dashboard = run.one(DASHBOARD)
    assert dashboard.inputs["dashboardName"] == "upflow-test"
    body = dashboard.json("dashboardBody")
    graphs = [w for w in body["widgets"] if w["type"] == "metric"]
    assert {w["properties"]["title"] for w in graphs} == set(widget_titles())
    assert all(w["properties"]["region"] == "us-east-1" for w in graphs)
    assert run.outputs["dashboard_url"].endswith("?region=us-east-1#dashboards/dashboard/upflow-test")


def test_the_dashboard_layout_fits_the_grid_without_overlaps():
    resources = StackResources(
        stack="prod",
        region="eu-west-1",
        functions=tuple(function_name("prod", handler) for handler in FUNCTIONS),
        queues=tuple(f"upflow-prod-{queue}" for queue in ("events", "events-dlq", "chunks", "chunks-dlq")),
        tables=("upflow-prod-status", "upflow-prod-results"),
        bucket="upflow-prod-uploads",
        request_metrics_filter="EntireBucket",
    )
    body = dashboard_body(resources)
    cells: set[tuple[int, int]] = set()
    for widget in body["widgets"]:
        assert widget["x"] >= 0 and widget["x"] + widget["width"] <= 24
        area = {
            (x, y)
            for x in range(widget["x"], widget["x"] + widget["width"])
            for y in range(widget["y"], widget["y"] + widget["height"])
        }
        assert not area & cells, widget
        cells |= area
    rows = [row for w in body["widgets"] if w["type"] == "metric" for row in w["properties"]["metrics"]]
    # Labels drop the stack's prefix: the dashboard is the stack's already.
    labels = {row[-1]["label"] for row in rows}
    assert "chunks-dlq" in labels and "process-chunks p99" in labels
    assert {row[0] for row in rows} == {"upflow/prod", "AWS/SQS", "AWS/Lambda", "AWS/DynamoDB", "AWS/S3"}
    # Part counts get their own scale beside byte counts.
    assert {row[1] for row in rows if row[-1].get("yAxis") == "right"} == {"PartsSigned"}


# --- alarms ---------------------------------------------------------------------------


def alarms_by_name(stack):
    return {alarm.inputs["name"]: alarm.inputs for alarm in stack.of_type(ALARM)}


def assert_any_event_alarms(alarm, topic=TOPIC_ARN):
    assert (alarm["comparisonOperator"], alarm["threshold"]) == ("GreaterThanThreshold", 0)
    assert alarm["statistic"] == "Sum"
    assert (alarm["period"], alarm["evaluationPeriods"]) == (300, 1)
    assert alarm["treatMissingData"] == "notBreaching"
    assert alarm["alarmActions"] == [topic]
    assert alarm["okActions"] == [topic]


def test_a_failed_upload_alarms(run):
    alarm = alarms_by_name(run)["upflow-test-uploads-failed"]
    assert (alarm["namespace"], alarm["metricName"]) == (NAMESPACE, "UploadsFailed")
    assert alarm["dimensions"] == {"service": METRIC_SERVICE}
    assert_any_event_alarms(alarm)


@pytest.mark.parametrize("handler", [API_HANDLER, PLANNER_HANDLER, CHUNK_HANDLER, RECONCILER_HANDLER])
def test_every_function_alarms_on_errors_and_throttles(run, handler):
    alarms = alarms_by_name(run)
    name = function_name("test", handler)
    for metric, suffix in (("Errors", "errors"), ("Throttles", "throttles")):
        alarm = alarms[f"{name}-{suffix}"]
        assert (alarm["namespace"], alarm["metricName"]) == ("AWS/Lambda", metric)
        assert alarm["dimensions"] == {"FunctionName": name}
        assert_any_event_alarms(alarm)


@pytest.mark.parametrize("table", [NAMES.status_table, NAMES.results_table])
def test_every_table_alarms_on_throttled_reads_and_writes(run, table):
    alarms = alarms_by_name(run)
    for metric, kind in (("ReadThrottleEvents", "read"), ("WriteThrottleEvents", "write")):
        alarm = alarms[f"{table}-{kind}-throttles"]
        assert (alarm["namespace"], alarm["metricName"]) == ("AWS/DynamoDB", metric)
        assert alarm["dimensions"] == {"TableName": table}
        assert_any_event_alarms(alarm)


def test_every_alarm_tells_the_one_topic_whose_subscribers_are_a_setting(run, traced):
    alarms = alarms_by_name(run)
    # 6 queue alarms (two DLQ depths, four ages), failed uploads, 2 per function, 2 per table.
    assert len(alarms) == 6 + 1 + 2 * len(FUNCTIONS) + 2 * 2
    assert all(a["alarmActions"] == [TOPIC_ARN] == a["okActions"] for a in alarms.values())
    assert all(a["alarmDescription"] for a in alarms.values())
    (subscription,) = traced.of_type("aws:sns/topicSubscription:TopicSubscription")
    assert (subscription.inputs["endpoint"], subscription.inputs["topic"]) == ("ops@example.com", TOPIC_ARN)


# --- tracing ----------------------------------------------------------------------------


def test_tracing_is_off_by_default(run):
    for function in run.of_type(FUNCTION):
        assert function.inputs["tracingConfig"] == {"mode": "PassThrough"}
        assert function.inputs["environment"]["variables"]["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert run.of_type(ATTACHMENT) == []
    assert run.one(STAGE).inputs["xrayTracingEnabled"] is False


def test_the_tracing_setting_traces_every_function_and_the_api_stage(traced):
    functions = traced.of_type(FUNCTION)
    assert len(functions) == len(FUNCTIONS)
    for function in functions:
        assert function.inputs["tracingConfig"] == {"mode": "Active"}
        assert function.inputs["environment"]["variables"]["POWERTOOLS_TRACE_DISABLED"] == "false"
    # Each function's own role may write segments (the roles are named by the mocks after
    # their logical names, "<handler>-role").
    attachments = {a.inputs["role"]: a.inputs["policyArn"] for a in traced.of_type(ATTACHMENT)}
    assert attachments == {
        f"{handler}-role": "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess" for handler in FUNCTIONS
    }
    assert traced.one(STAGE).inputs["xrayTracingEnabled"] is True


# --- the Powertools layer and settings ----------------------------------------------------


def layer(arch: str, region: str = "us-east-1") -> str:
    return f"arn:aws:lambda:{region}:017000801446:layer:AWSLambdaPowertoolsPythonV3-python311-{arch}:27"


def test_every_function_gets_the_powertools_layer_and_settings(run, traced):
    for stack, level in ((run, "INFO"), (traced, "DEBUG")):
        functions = stack.of_type(FUNCTION)
        assert {f.name for f in functions} == set(FUNCTIONS)
        for function in functions:
            assert function.inputs["runtime"] == "python3.11"  # the layer's Python
            assert function.inputs["layers"] == [layer("x86_64")]
            env = function.inputs["environment"]["variables"]
            assert env["POWERTOOLS_SERVICE_NAME"] == METRIC_SERVICE
            assert env["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE
            assert env["POWERTOOLS_LOG_LEVEL"] == level


def test_an_arm64_stack_gets_the_arm64_layer(make_config, stack_runner, arm64_build):
    stack = stack_runner(make_config(architecture="arm64", build_dir=arm64_build))
    assert {tuple(f.inputs["layers"]) for f in stack.of_type(FUNCTION)} == {(layer("arm64"),)}


def test_the_layer_setting_overrides_the_default(make_config, stack_runner):
    own = "arn:aws:lambda:us-east-1:123456789012:layer:my-powertools:3"
    stack = stack_runner(make_config(powertools_layer_arn=own))
    functions = stack.of_type(FUNCTION)
    assert len(functions) == len(FUNCTIONS)
    assert all(f.inputs["layers"] == [own] for f in functions)


# --- docs/operations.md ---------------------------------------------------------------------


def test_the_operations_doc_names_every_metric_and_widget():
    text = OPERATIONS_DOC.read_text()
    assert [spec.name for spec in METRICS if f"`{spec.name}`" not in text] == []
    assert [title for title in widget_titles() if title not in text] == []

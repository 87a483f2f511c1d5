"""The stack's CloudWatch dashboard: every custom metric the functions emit (upflow.definition.METRICS,
namespace ``upflow/<stack>``, dimension ``service``) beside the AWS metrics that say where work
waits or fails: each queue's depth and oldest message, each function's errors, throttles,
duration and concurrency, each table's throttling and consumed capacity, the uploads bucket's
4xx/5xx. docs/operations.md says what to read on each widget.

The body is a pure function of the stack's resource names (:func:`dashboard_body`), so it is
tested without Pulumi; :func:`create_dashboard` feeds it the names of the resources the
program created. The stack output ``dashboard_url`` opens it in the console.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from upflow.definition import (
    FUNCTIONS,
    METRIC_BYTES_UPLOADED,
    METRIC_CHUNK_DURATION,
    METRIC_MESSAGES_DEAD_LETTERED,
    METRIC_MESSAGES_REDRIVEN,
    METRIC_PARTS_SIGNED,
    METRIC_REDUCE_DURATION,
    METRIC_ROWS_INVALID,
    METRIC_ROWS_PER_SECOND,
    METRIC_ROWS_VALID,
    METRIC_SERVICE,
    METRIC_SPECULATION_MISSES,
    METRIC_UPLOADS_ABORTED,
    METRIC_UPLOADS_COMPLETED,
    METRIC_UPLOADS_FAILED,
    METRIC_UPLOADS_INITIATED,
    METRICS,
    MetricSpec,
    metrics_namespace,
)

# AWS namespaces and metric names (what CloudWatch publishes for these resource types).
SQS_NAMESPACE = "AWS/SQS"
LAMBDA_NAMESPACE = "AWS/Lambda"
DYNAMODB_NAMESPACE = "AWS/DynamoDB"
S3_NAMESPACE = "AWS/S3"
SQS_VISIBLE = "ApproximateNumberOfMessagesVisible"
SQS_OLDEST_AGE = "ApproximateAgeOfOldestMessage"
LAMBDA_ERRORS = "Errors"
LAMBDA_THROTTLES = "Throttles"
LAMBDA_DURATION = "Duration"
LAMBDA_CONCURRENCY = "ConcurrentExecutions"
DYNAMODB_READ_THROTTLES = "ReadThrottleEvents"
DYNAMODB_WRITE_THROTTLES = "WriteThrottleEvents"
DYNAMODB_READ_CAPACITY = "ConsumedReadCapacityUnits"
DYNAMODB_WRITE_CAPACITY = "ConsumedWriteCapacityUnits"
S3_4XX = "4xxErrors"
S3_5XX = "5xxErrors"
# The dimension Powertools Metrics puts on every metric (POWERTOOLS_SERVICE_NAME).
SERVICE_DIMENSION = "service"

# One minute: the finest period of Lambda, SQS and EMF metrics alike.
PERIOD_SECONDS = 60
# What the dashboard shows when opened.
DEFAULT_RANGE = "-PT3H"
# The grid is 24 units wide: two graphs a row.
GRID_WIDTH = 24
GRAPH_WIDTH = 12
GRAPH_HEIGHT = 6
HEADING_HEIGHT = 1
INTRO_HEIGHT = 2

# Widget titles (docs/operations.md names them).
UPLOADS_TITLE = "Uploads: initiated, completed, failed, aborted"
TRANSFER_TITLE = "Bytes uploaded and parts signed"
DURATION_TITLE = "Chunk and reduce duration (p50, p99)"
THROUGHPUT_TITLE = "Rows per second per chunk (p50, p10)"
ROWS_TITLE = "Rows valid and invalid"
RECOVERY_TITLE = "Re-driven, dead-lettered, speculation misses"
QUEUE_DEPTH_TITLE = "Queues: visible messages"
QUEUE_AGE_TITLE = "Queues: age of the oldest message (s)"
LAMBDA_ERRORS_TITLE = "Lambda errors"
LAMBDA_THROTTLES_TITLE = "Lambda throttles"
LAMBDA_DURATION_TITLE = "Lambda duration p50 / p99 (ms)"
LAMBDA_CONCURRENCY_TITLE = "Lambda concurrent executions"
DYNAMODB_THROTTLES_TITLE = "DynamoDB throttle events"
DYNAMODB_CAPACITY_TITLE = "DynamoDB consumed capacity"
S3_ERRORS_TITLE = "S3 4xx and 5xx errors (uploads bucket)"
AWS_TITLES = (
    QUEUE_DEPTH_TITLE,
    QUEUE_AGE_TITLE,
    LAMBDA_ERRORS_TITLE,
    LAMBDA_THROTTLES_TITLE,
    LAMBDA_DURATION_TITLE,
    LAMBDA_CONCURRENCY_TITLE,
    DYNAMODB_THROTTLES_TITLE,
    DYNAMODB_CAPACITY_TITLE,
    S3_ERRORS_TITLE,
)

# Every custom metric, grouped by what an operator asks of it; each with its statistics.
CUSTOM_GRAPHS: tuple[tuple[str, tuple[tuple[MetricSpec, tuple[str, ...]], ...]], ...] = (
    (
        UPLOADS_TITLE,
        (
            (METRIC_UPLOADS_INITIATED, ("Sum",)),
            (METRIC_UPLOADS_COMPLETED, ("Sum",)),
            (METRIC_UPLOADS_FAILED, ("Sum",)),
            (METRIC_UPLOADS_ABORTED, ("Sum",)),
        ),
    ),
    (TRANSFER_TITLE, ((METRIC_BYTES_UPLOADED, ("Sum",)), (METRIC_PARTS_SIGNED, ("Sum",)))),
    (
        DURATION_TITLE,
        ((METRIC_CHUNK_DURATION, ("p50", "p99")), (METRIC_REDUCE_DURATION, ("p50", "p99"))),
    ),
    # p10: the slow tail of chunks (a low rate is the bad end).
    (THROUGHPUT_TITLE, ((METRIC_ROWS_PER_SECOND, ("p50", "p10")),)),
    (ROWS_TITLE, ((METRIC_ROWS_VALID, ("Sum",)), (METRIC_ROWS_INVALID, ("Sum",)))),
    (
        RECOVERY_TITLE,
        (
            (METRIC_MESSAGES_REDRIVEN, ("Sum",)),
            (METRIC_MESSAGES_DEAD_LETTERED, ("Sum",)),
            (METRIC_SPECULATION_MISSES, ("Sum",)),
        ),
    ),
)


# Drawn against the right axis: part counts beside byte counts.
RIGHT_AXIS_METRICS = frozenset({METRIC_PARTS_SIGNED.name})


@dataclass(frozen=True)
class StackResources:
    """The physical names the dashboard's AWS metrics are about."""

    stack: str
    region: str
    functions: tuple[str, ...]  # Lambda function names
    queues: tuple[str, ...]  # both queues and both DLQs
    tables: tuple[str, ...]
    bucket: str
    request_metrics_filter: str  # the bucket's request-metrics configuration (FilterId)


@dataclass(frozen=True)
class Metric:
    """One line of a graph: a metric (namespace, name, dimensions) and the statistic drawn."""

    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    stat: str
    label: str
    right_axis: bool = False  # a second scale for a line of another magnitude

    def row(self) -> list[Any]:
        """CloudWatch's metric array: namespace, name, dimension name/value pairs, options."""
        pairs = [part for dimension in self.dimensions for part in dimension]
        options: dict[str, str] = {"stat": self.stat, "label": self.label}
        if self.right_axis:
            options["yAxis"] = "right"
        return [self.namespace, self.name, *pairs, options]


@dataclass(frozen=True)
class Graph:
    title: str
    metrics: tuple[Metric, ...]


@dataclass(frozen=True)
class Section:
    heading: str
    graphs: tuple[Graph, ...]


def dashboard_name(stack: str) -> str:
    """Infra-only naming: ``upflow-<stack>`` (letters, digits, ``-`` and ``_``)."""
    return f"upflow-{stack}"


def dashboard_url(region: str, name: str) -> str:
    return (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards/dashboard/{name}"
    )


def short_label(stack: str, name: str) -> str:
    """``upflow-dev-chunks-dlq`` → ``chunks-dlq``: the stack is the dashboard's already."""
    return name.removeprefix(f"upflow-{stack}-")


def custom_metric(stack: str, spec: MetricSpec, stat: str) -> Metric:
    label = spec.name if stat == "Sum" else f"{spec.name} {stat}"
    return Metric(
        metrics_namespace(stack),
        spec.name,
        ((SERVICE_DIMENSION, METRIC_SERVICE),),
        stat,
        label,
        right_axis=spec.name in RIGHT_AXIS_METRICS,
    )


def custom_section(stack: str) -> Section:
    graphs = tuple(
        Graph(title, tuple(custom_metric(stack, spec, stat) for spec, stats in lines for stat in stats))
        for title, lines in CUSTOM_GRAPHS
    )
    drawn = {metric.name for graph in graphs for metric in graph.metrics}
    missing = [spec.name for spec in METRICS if spec.name not in drawn]
    if missing:  # a metric added to definition.METRICS must get a place here
        raise ValueError(f"metrics missing from the dashboard: {missing}")
    return Section(f"upflow/{stack}: uploads and processing (Powertools metrics)", graphs)


def _per(
    namespace: str, metric: str, dimension: str, names: Sequence[str], stat: str, stack: str, suffix: str = ""
) -> tuple[Metric, ...]:
    return tuple(
        Metric(namespace, metric, ((dimension, name),), stat, f"{short_label(stack, name)}{suffix}")
        for name in names
    )


def aws_sections(resources: StackResources) -> tuple[Section, ...]:
    stack, functions, tables = resources.stack, resources.functions, resources.tables
    queues = Section(
        "Queues (AWS/SQS)",
        (
            Graph(
                QUEUE_DEPTH_TITLE,
                _per(SQS_NAMESPACE, SQS_VISIBLE, "QueueName", resources.queues, "Maximum", stack),
            ),
            Graph(
                QUEUE_AGE_TITLE,
                _per(SQS_NAMESPACE, SQS_OLDEST_AGE, "QueueName", resources.queues, "Maximum", stack),
            ),
        ),
    )
    lambdas = Section(
        "Functions (AWS/Lambda)",
        (
            Graph(
                LAMBDA_ERRORS_TITLE,
                _per(LAMBDA_NAMESPACE, LAMBDA_ERRORS, "FunctionName", functions, "Sum", stack),
            ),
            Graph(
                LAMBDA_THROTTLES_TITLE,
                _per(LAMBDA_NAMESPACE, LAMBDA_THROTTLES, "FunctionName", functions, "Sum", stack),
            ),
            Graph(
                LAMBDA_DURATION_TITLE,
                tuple(
                    metric
                    for stat in ("p50", "p99")
                    for metric in _per(
                        LAMBDA_NAMESPACE, LAMBDA_DURATION, "FunctionName", functions, stat, stack, f" {stat}"
                    )
                ),
            ),
            Graph(
                LAMBDA_CONCURRENCY_TITLE,
                _per(LAMBDA_NAMESPACE, LAMBDA_CONCURRENCY, "FunctionName", functions, "Maximum", stack),
            ),
        ),
    )

    def per_table(metric: str, what: str) -> tuple[Metric, ...]:
        return _per(DYNAMODB_NAMESPACE, metric, "TableName", tables, "Sum", stack, f" {what}")

    dynamodb = Section(
        "Tables (AWS/DynamoDB)",
        (
            Graph(
                DYNAMODB_THROTTLES_TITLE,
                per_table(DYNAMODB_READ_THROTTLES, "reads") + per_table(DYNAMODB_WRITE_THROTTLES, "writes"),
            ),
            Graph(
                DYNAMODB_CAPACITY_TITLE,
                per_table(DYNAMODB_READ_CAPACITY, "reads") + per_table(DYNAMODB_WRITE_CAPACITY, "writes"),
            ),
        ),
    )
    bucket = (("BucketName", resources.bucket), ("FilterId", resources.request_metrics_filter))
    s3 = Section(
        "Uploads bucket (AWS/S3 request metrics)",
        (
            Graph(
                S3_ERRORS_TITLE,
                tuple(Metric(S3_NAMESPACE, name, bucket, "Sum", name) for name in (S3_4XX, S3_5XX)),
            ),
        ),
    )
    return (queues, lambdas, dynamodb, s3)


def sections(resources: StackResources) -> tuple[Section, ...]:
    return (custom_section(resources.stack), *aws_sections(resources))


def _text(markdown: str, y: int, height: int) -> dict[str, Any]:
    return {
        "type": "text",
        "x": 0,
        "y": y,
        "width": GRID_WIDTH,
        "height": height,
        "properties": {"markdown": markdown},
    }


def graph_widget(graph: Graph, region: str, x: int, y: int) -> dict[str, Any]:
    return {
        "type": "metric",
        "x": x,
        "y": y,
        "width": GRAPH_WIDTH,
        "height": GRAPH_HEIGHT,
        "properties": {
            "title": graph.title,
            "region": region,
            "view": "timeSeries",
            "stacked": False,
            "period": PERIOD_SECONDS,
            "metrics": [metric.row() for metric in graph.metrics],
        },
    }


def dashboard_body(resources: StackResources) -> dict[str, Any]:
    """The dashboard's JSON body (CloudWatch's dashboard body structure), laid out top down."""
    widgets = [
        _text(
            f"# upflow {resources.stack}\n"
            "Where uploads are and why: docs/operations.md names each widget, the alarms and the "
            "Logs Insights queries.",
            0,
            INTRO_HEIGHT,
        )
    ]
    y = INTRO_HEIGHT
    for section in sections(resources):
        widgets.append(_text(f"## {section.heading}", y, HEADING_HEIGHT))
        y += HEADING_HEIGHT
        for index, graph in enumerate(section.graphs):
            column = index % (GRID_WIDTH // GRAPH_WIDTH)
            widgets.append(graph_widget(graph, resources.region, column * GRAPH_WIDTH, y))
            if column == GRID_WIDTH // GRAPH_WIDTH - 1 or index == len(section.graphs) - 1:
                y += GRAPH_HEIGHT
    return {"start": DEFAULT_RANGE, "periodOverride": "inherit", "widgets": widgets}


def widget_titles() -> tuple[str, ...]:
    """Every graph's title (docs/operations.md names each)."""
    return (*(title for title, _ in CUSTOM_GRAPHS), *AWS_TITLES)


@dataclass(frozen=True)
class Dashboard:
    dashboard: aws.cloudwatch.Dashboard
    url: pulumi.Output[str]


def create_dashboard(
    stack: str,
    region: str,
    functions: Mapping[str, aws.lambda_.Function],
    queues: Sequence[aws.sqs.Queue],
    tables: Sequence[aws.dynamodb.Table],
    bucket: aws.s3.Bucket,
    request_metrics: aws.s3.BucketMetric,
) -> Dashboard:
    """The dashboard, drawn from the names of the resources the program created."""
    handlers = list(FUNCTIONS)
    names = pulumi.Output.all(
        [functions[handler].name for handler in handlers],
        [queue.name for queue in queues],
        [table.name for table in tables],
        bucket.bucket,
        request_metrics.name,
    )

    def body(values: list[Any]) -> str:
        function_names, queue_names, table_names, bucket_name, filter_id = values
        resources = StackResources(
            stack=stack,
            region=region,
            functions=tuple(function_names),
            queues=tuple(queue_names),
            tables=tuple(table_names),
            bucket=bucket_name,
            request_metrics_filter=filter_id,
        )
        return json.dumps(dashboard_body(resources), sort_keys=True)

    dashboard = aws.cloudwatch.Dashboard(
        "dashboard", dashboard_name=dashboard_name(stack), dashboard_body=names.apply(body)
    )
    return Dashboard(dashboard, dashboard.dashboard_name.apply(lambda name: dashboard_url(region, name)))

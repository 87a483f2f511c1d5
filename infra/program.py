"""The whole stack, as one function of its configuration (``__main__`` and the tests call it)."""

from __future__ import annotations

import pulumi

from infra import policies
from infra.alarms import create_alarms
from infra.api_gateway import create_rest_api
from infra.chalice_artifacts import read_artifacts, require_architecture
from infra.config import StackConfig
from infra.dashboard import create_dashboard
from infra.events import route_object_created
from infra.functions import consumers, create_event_source_mappings, create_functions
from infra.queues import queue_with_dlq
from infra.schedule import schedule_reconciler
from infra.site import create_site_hosting, publish_site, site_files
from infra.storage import create_uploads_bucket
from infra.tables import create_tables
from upflow.definition import API_HANDLER, CHUNK_HANDLER, PLANNER_HANDLER, RECONCILER_HANDLER


def define(config: StackConfig) -> dict[str, pulumi.Output[str]]:
    """Declare every resource of one stack; return the stack outputs (not yet exported)."""
    # Check the build artifacts first, so a missing `make package`/`make web` stops everything.
    artifacts = read_artifacts(config.build_dir)
    require_architecture(artifacts, config.architecture)
    files = site_files(config.web_dist)
    names, limits = config.names, config.limits

    site = create_site_hosting(names)
    # The API and the bucket answer CORS for the page's origin. Defaulting to the CloudFront
    # URL makes no cycle: the distribution depends only on the site bucket, while config.json
    # (which depends on the API) is an object in that bucket, not part of the distribution.
    web_origin: pulumi.Input[str] = config.web_origin or site.url

    uploads = create_uploads_bucket(
        names,
        limits=limits,
        web_origin=web_origin,
        force_destroy=config.force_destroy_uploads,
    )
    events = queue_with_dlq(
        "events-queue",
        names.events_queue,
        names.events_dlq,
        consumer=config.functions[PLANNER_HANDLER],
        max_receives=limits.max_receives,
    )
    chunks = queue_with_dlq(
        "chunks-queue",
        names.chunks_queue,
        names.chunks_dlq,
        consumer=config.functions[CHUNK_HANDLER],
        max_receives=limits.max_receives,
    )
    status_table, results_table = create_tables(names)
    route_object_created(names, uploads.bucket, events)

    arns = pulumi.Output.all(
        uploads.bucket.arn,
        status_table.arn,
        results_table.arn,
        events.queue.arn,
        chunks.queue.arn,
        events.dlq.arn,
        chunks.dlq.arn,
    ).apply(lambda values: policies.ResourceArns(*values))
    functions = create_functions(config, artifacts, arns, web_origin)
    create_event_source_mappings(functions, consumers(limits, events.queue, chunks.queue))
    schedule_reconciler(config, functions[RECONCILER_HANDLER])
    lambdas = {handler: deployed.function for handler, deployed in functions.items()}
    monitoring = create_alarms(
        config,
        events,
        chunks,
        lambdas,
        [(names.status_table, status_table), (names.results_table, results_table)],
    )
    dashboard = create_dashboard(
        names.stack,
        config.region,
        lambdas,
        [events.queue, events.dlq, chunks.queue, chunks.dlq],
        [status_table, results_table],
        uploads.bucket,
        uploads.request_metrics,
    )
    api = create_rest_api(
        names, artifacts, functions[API_HANDLER].function, web_origin, limits, tracing=config.tracing
    )
    publish_site(site, files, api.url)

    return {
        "api_url": api.url,
        "web_url": site.url,
        "web_origin": pulumi.Output.from_input(web_origin),
        "bucket": uploads.bucket.bucket,
        "site_bucket": site.bucket.bucket,
        "distribution_id": site.distribution.id,
        "status_table": status_table.name,
        "results_table": results_table.name,
        "events_queue": events.queue.name,
        "events_dlq": events.dlq.name,
        "chunks_queue": chunks.queue.name,
        "chunks_dlq": chunks.dlq.name,
        "events_queue_url": events.queue.url,
        "events_dlq_url": events.dlq.url,
        "chunks_queue_url": chunks.queue.url,
        "chunks_dlq_url": chunks.dlq.url,
        "alarm_topic_arn": monitoring.topic.arn,
        "dashboard_url": dashboard.url,
    }


def export(outputs: dict[str, pulumi.Output[str]]) -> None:
    for key, value in outputs.items():
        pulumi.export(key, value)

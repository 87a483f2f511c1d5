"""X-Ray tracing of the handlers' work: off unless the stack turns it on, then a subsegment around
every S3 read, chunk parse, DynamoDB write and SQS send.

With tracing on, a process that believes it is in Lambda (``LAMBDA_TASK_ROOT``, a sampled
``_X_AMZN_TRACE_ID``) sends its subsegments over UDP to ``AWS_XRAY_DAEMON_ADDRESS``: here a
socket of the test stands in for the X-Ray daemon, and the work runs against the local stack.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from upflow.aws import telemetry
from upflow.aws.s3 import S3Store
from upflow.build import REPO_ROOT
from upflow.local.stack import LocalStack

TRACE_ID = "1-5759e988-bd862e3fe1be46a994272793"
# What a traced Lambda sees: its function's trace (sampled) and where the daemon listens.
LAMBDA_TRACE_HEADER = f"Root={TRACE_ID};Parent=53995c3f42cd8ad8;Sampled=1"

WORK = textwrap.dedent(
    """
    import sys
    from processor.worker import _parse
    from upflow.aws.telemetry import tracer
    from upflow.core.chunking import ChunkRange
    from upflow.core.detect import detect_format
    from upflow.definition import Limits, runtime_config_from_env
    from upflow.server.wiring import build_services
    from upflow.aws.clients import sqs_client
    from upflow.aws.sqs import Queue

    assert not tracer.disabled
    key, queue_name = sys.argv[1], sys.argv[2]
    services = build_services(runtime_config_from_env())
    data = services.store.read_range(key, 0, 1000)
    limits = Limits()
    fmt = detect_format(data, at_eof=True, limits=limits)
    result = _parse(data, ChunkRange(0, 0, len(data)), len(data), fmt, lambda s, e: data[s:e], limits)
    assert result.region.rows_valid == 1
    services.status.put({"pk": f"TRACE#{key}", "sk": "META"})
    services.status.delete({"pk": f"TRACE#{key}", "sk": "META"})
    Queue(sqs_client(), queue_name).send_json([{"type": "trace-probe"}])
    """
)


def test_tracing_is_off_by_default_and_then_costs_nothing() -> None:
    """The test process is no Lambda and sets no POWERTOOLS_TRACE_DISABLED: no tracer, and the
    adapters' methods are the plain functions (no wrapper, no X-Ray daemon looked for)."""
    assert os.environ.get("POWERTOOLS_TRACE_DISABLED") is None
    assert telemetry.tracer.disabled
    assert not hasattr(S3Store.read_range, "__wrapped__")

    def work() -> int:
        return 1

    assert telemetry.traced(work) is work


@pytest.fixture()
def daemon() -> Iterator[socket.socket]:
    """A UDP socket where the X-Ray daemon would listen."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2)
        yield sock


def received(sock: socket.socket) -> list[dict[str, Any]]:
    """Every segment document sent so far: ``{"format": "json", "version": 1}\\n<document>``."""
    documents: list[dict[str, Any]] = []
    while True:
        try:
            datagram, _ = sock.recvfrom(65536)
        except TimeoutError:
            return documents
        header, _, body = datagram.decode().partition("\n")
        assert json.loads(header) == {"format": "json", "version": 1}
        documents.append(json.loads(body))


def test_with_tracing_on_reads_parses_writes_and_sends_are_subsegments(
    stack: LocalStack, daemon: socket.socket
) -> None:
    s3, sqs = stack.boto3_client("s3"), stack.boto3_client("sqs")
    key = f"trace-probe/{uuid.uuid4().hex}.csv"
    s3.put_object(Bucket=stack.names.bucket, Key=key, Body=b"documento;valor\n529.982.247-25;10,50\n")
    queue_name = f"upflow-trace-probe-{uuid.uuid4().hex[:12]}"
    queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    try:
        env = {
            **stack.env,
            "POWERTOOLS_TRACE_DISABLED": "false",
            "LAMBDA_TASK_ROOT": str(REPO_ROOT),
            "AWS_LAMBDA_FUNCTION_NAME": "process_chunks",
            "_X_AMZN_TRACE_ID": LAMBDA_TRACE_HEADER,
            "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
        }
        done = subprocess.run(
            [sys.executable, "-c", WORK, key, queue_name],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        documents = received(daemon)
    finally:
        sqs.delete_queue(QueueUrl=queue_url)
        s3.delete_object(Bucket=stack.names.bucket, Key=key)
    assert documents, "no segment reached the daemon"
    assert {document["trace_id"] for document in documents} == {TRACE_ID}
    names = {document["name"] for document in documents}
    # Ours: one around each piece of work ...
    assert {
        "## upflow.aws.s3.S3Store.read_range",
        "## upflow.core.chunk.process_chunk",
        "## upflow.aws.dynamo.Table.put",
        "## upflow.aws.dynamo.Table.delete",
        "## upflow.aws.sqs.Queue.send_json",
    } <= names, names
    # ... with the AWS calls inside (Powertools patches botocore when tracing is on).
    assert {"s3", "dynamodb", "sqs"} <= names, names

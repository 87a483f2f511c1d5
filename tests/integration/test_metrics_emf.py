"""The handlers' CloudWatch metrics (EMF) and JSON logs, read from the local stack's processes.

One upload goes through the whole pipeline (API, planner, map chunks, reduce shards, finalise);
then the JSON lines the processes wrote (the pump and ``chalice local`` logs under the stack's
``log_dir``: their stdout, where Lambda's would go to CloudWatch Logs) are parsed. The EMF
records must name only metrics of ``upflow.definition.METRICS`` with their units, in the stack's
namespace, with the one dimension ``service``, and their values must be the work done: the rows
of the file as ``upflow.core.checker.check_file`` counts them, one chunk duration per chunk, one
reduce duration per shard, one completed upload, the parts signed and the bytes uploaded.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from csvgen import generate
from support import Api, wait_until

from processor.reconciler import reconcile
from upflow.aws import telemetry
from upflow.core.checker import CheckResult, check_file
from upflow.core.chunk import process_chunk
from upflow.core.chunking import ChunkRange, chunk_size_for
from upflow.core.detect import detect_format
from upflow.definition import (
    CHUNK_HANDLER,
    LOG_KEY_ATTEMPT,
    LOG_KEY_CHUNK,
    LOG_KEY_MESSAGE,
    LOG_KEY_SHARD,
    LOG_KEY_UPLOAD,
    METRIC_SERVICE,
    METRICS,
    PLANNER_HANDLER,
    RECONCILER_HANDLER,
    MiB,
    metrics_namespace,
    runtime_config_from_env,
)
from upflow.local.stack import LocalStack
from upflow.server.wiring import Services, build_services

UNITS = {metric.name: metric.unit for metric in METRICS}
# What Powertools' Lambda context gives every line of an invocation (the pump makes its own).
INVOCATION_KEYS = ("cold_start", "function_name", "function_request_id")


def json_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects among a process's output lines (other lines: chalice's access log…)."""
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if line.startswith("{"):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line being written as we read
                if isinstance(record, dict):
                    yield record


def lines_of(stack: LocalStack, pattern: str, upload_id: str) -> list[dict[str, Any]]:
    assert stack.log_dir is not None
    return [
        record
        for path in sorted(stack.log_dir.glob(pattern))
        for record in json_lines(path)
        if record.get(LOG_KEY_UPLOAD) == upload_id
    ]


def emf(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [record for record in records if "_aws" in record]


def values(records: list[dict[str, Any]], name: str) -> list[float]:
    """Every value of metric ``name`` (a record holds one value or a list of them)."""
    found: list[float] = []
    for record in emf(records):
        if name in record:
            value = record[name]
            found.extend(value if isinstance(value, list) else [value])
    return found


def assert_well_formed(record: dict[str, Any], namespace: str) -> None:
    """An EMF record as CloudWatch reads it: one directive, our namespace, the service dimension,
    every metric named there one of ours with its unit and a value at the root."""
    directives = record["_aws"]["CloudWatchMetrics"]
    assert len(directives) == 1
    directive = directives[0]
    assert directive["Namespace"] == namespace
    assert directive["Dimensions"] == [["service"]]
    assert record["service"] == METRIC_SERVICE
    assert isinstance(record["_aws"]["Timestamp"], int)
    assert directive["Metrics"], record
    for metric in directive["Metrics"]:
        assert UNITS.get(metric["Name"]) == metric["Unit"], metric
        assert metric["Name"] in record
    # High-cardinality keys are metadata, never dimensions.
    assert LOG_KEY_UPLOAD not in directive["Dimensions"][0]


@dataclass(frozen=True)
class Processed:
    upload_id: str
    size: int
    part_count: int
    chunk_total: int
    shard_total: int
    checked: CheckResult
    chunk_lines: list[dict[str, Any]]
    planner_lines: list[dict[str, Any]]
    api_lines: list[dict[str, Any]]


@pytest.fixture(scope="module")
def services(stack: LocalStack, aws_env: dict[str, str]) -> Services:
    return build_services(runtime_config_from_env(aws_env))


@pytest.fixture(scope="module")
def processed(api: Api, stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Processed:
    payload, _ = generate(17 * MiB, seed=41, documents=400)
    path = tmp_path_factory.mktemp("metrics") / "metricas.csv"
    path.write_bytes(payload)
    limits = runtime_config_from_env(stack.env).limits
    checked = check_file(path, None, limits)  # the stack's chunk size (chunk_size_for), as the planner
    created = api.upload_bytes(payload, filename="metricas.csv")
    upload_id = created["upload_id"]
    final = api.wait_final(upload_id, created["token"], timeout=300)
    assert final["status"] in ("completed", "completed_with_errors"), final

    def finished() -> bool:  # the finalising record's metrics are written as its work ends
        return 1 in values(lines_of(stack, "pump-chunks-*.log", upload_id), "UploadsCompleted")

    wait_until(finished, 30, "no UploadsCompleted record for the upload")
    return Processed(
        upload_id=upload_id,
        size=len(payload),
        part_count=created["part_count"],
        chunk_total=final["chunks"]["total"],
        shard_total=final["shards"]["total"],
        checked=checked,
        chunk_lines=lines_of(stack, "pump-chunks-*.log", upload_id),
        planner_lines=lines_of(stack, "pump-events-*.log", upload_id),
        api_lines=lines_of(stack, "api.log", upload_id),
    )


def test_every_record_is_emf_in_the_stacks_namespace_with_only_the_service_dimension(
    processed: Processed, stack: LocalStack
) -> None:
    records = emf(processed.chunk_lines + processed.planner_lines + processed.api_lines)
    assert len(records) >= processed.chunk_total + processed.shard_total
    for record in records:
        assert_well_formed(record, metrics_namespace(stack.names.stack))


def test_one_chunk_duration_and_rate_per_chunk_and_the_rows_of_the_file(processed: Processed) -> None:
    checked, lines = processed.checked, processed.chunk_lines
    assert processed.chunk_total >= 3  # 17 MiB in 8 MiB chunks
    # This file's speculated start states are all right: no chunk is parsed twice, so the
    # rows the chunks count are the file's rows exactly.
    assert checked.reparsed == ()
    assert values(lines, "SpeculationMisses") == []
    chunk_records = [record for record in emf(lines) if "ChunkDuration" in record]
    assert sorted(record[LOG_KEY_CHUNK] for record in chunk_records) == list(range(processed.chunk_total))
    assert len(values(lines, "ChunkDuration")) == processed.chunk_total
    assert all(value > 0 for value in values(lines, "ChunkDuration"))
    assert sum(values(lines, "RowsValid")) == checked.summary.rows_valid
    assert sum(values(lines, "RowsInvalid")) == checked.summary.rows_invalid
    assert checked.summary.rows_invalid > 0  # the generator planted errors
    for record in chunk_records:
        # rows per second: the chunk's rows over its duration
        (rate,), (millis,) = record["RowsPerSecond"], record["ChunkDuration"]
        (valid,), (invalid,) = record["RowsValid"], record["RowsInvalid"]
        assert rate > 0
        assert math.isclose(rate * millis / 1000, valid + invalid, rel_tol=1e-6)
        assert record["function_name"] == CHUNK_HANDLER
        assert record[LOG_KEY_MESSAGE] and record[LOG_KEY_ATTEMPT] >= 1


def test_one_reduce_duration_per_shard_and_one_completed_upload(processed: Processed) -> None:
    lines = processed.chunk_lines
    reduce_records = [record for record in emf(lines) if "ReduceDuration" in record]
    assert processed.shard_total >= 2  # 400 documents in shards of 150
    assert sorted(record[LOG_KEY_SHARD] for record in reduce_records) == list(range(processed.shard_total))
    assert len(values(lines, "ReduceDuration")) == processed.shard_total
    assert all(value > 0 for value in values(lines, "ReduceDuration"))
    assert values(lines, "UploadsCompleted") == [1.0]
    assert values(lines + processed.planner_lines, "UploadsFailed") == []


def test_the_api_counts_the_initiate_the_parts_signed_and_the_bytes(processed: Processed) -> None:
    lines = processed.api_lines
    assert values(lines, "UploadsInitiated") == [1.0]
    assert sum(values(lines, "PartsSigned")) == processed.part_count
    assert values(lines, "BytesUploaded") == [float(processed.size)]
    assert values(lines, "UploadsAborted") == []
    for record in emf(lines):
        assert record["function_name"] == "api_handler"


def test_an_abort_is_counted_once_however_often_it_is_asked(api: Api, stack: LocalStack) -> None:
    status, created = api.call("POST", "/uploads", json_body={"filename": "desisto.csv", "size": 100})
    assert status == 201, created
    upload_id = created["upload_id"]
    for _ in range(2):  # the second abort answers the same, and changes nothing
        status, body = api.call("DELETE", f"/uploads/{upload_id}", created["token"])
        assert status == 200, body

    def counted() -> bool:
        return values(lines_of(stack, "api.log", upload_id), "UploadsAborted") == [1.0]

    wait_until(counted, 10, "UploadsAborted was not written once")
    assert values(lines_of(stack, "api.log", upload_id), "UploadsInitiated") == [1.0]


def test_every_line_of_the_uploads_work_carries_its_keys(processed: Processed) -> None:
    logs = [record for record in processed.chunk_lines if "_aws" not in record]
    mapped = [record for record in logs if record["message"] == "chunk mapped"]
    assert sorted(record[LOG_KEY_CHUNK] for record in mapped) == list(range(processed.chunk_total))
    reduced = [record for record in logs if record["message"] == "shard reduced"]
    assert sorted(record[LOG_KEY_SHARD] for record in reduced) == list(range(processed.shard_total))
    assert [record["message"] for record in logs].count("upload finalised") == 1
    for record in logs:
        assert record["service"] == METRIC_SERVICE and record["level"] in ("INFO", "WARNING", "ERROR")
        assert record["function_name"] == CHUNK_HANDLER
        for key in (*INVOCATION_KEYS, LOG_KEY_MESSAGE, LOG_KEY_ATTEMPT):
            assert key in record, (key, record)
        assert (LOG_KEY_CHUNK in record) != (LOG_KEY_SHARD in record), record
    planned = [record for record in processed.planner_lines if record.get("message") == "planned"]
    assert len(planned) == 1 and planned[0]["chunk_total"] == processed.chunk_total
    assert planned[0]["function_name"] == PLANNER_HANDLER and planned[0][LOG_KEY_MESSAGE]
    requests = [record for record in processed.api_lines if record.get("message") == "request"]
    assert {(r["method"], r["route"], r["status"]) for r in requests} >= {
        ("POST", "/uploads/{upload_id}/parts", 200),
        ("POST", "/uploads/{upload_id}/complete", 200),
        ("GET", "/uploads/{upload_id}", 200),
    }


def test_the_reconciler_counts_a_dead_lettered_message_of_the_upload(
    processed: Processed, services: Services, stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A late dead letter for a chunk already done: counted, and it changes nothing. The
    reconciler's pass runs here, in the test's process, as its handler runs it."""
    monkeypatch.setenv("UPFLOW_STACK", stack.names.stack)  # as the handler's environment says
    upload_id = processed.upload_id
    services.chunks_dlq.send_json([{"type": "chunk", "upload_id": upload_id, "index": 1}])
    wait_until(lambda: services.chunks_dlq.approximate_count() >= 1, 10, "the dead letter did not arrive")
    out = io.StringIO()
    with telemetry.redirect_output(out), telemetry.invocation(RECONCILER_HANDLER, None):
        report = reconcile(services)
    assert report.dead_letters >= 1
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    ours = [record for record in records if record.get(LOG_KEY_UPLOAD) == upload_id]
    assert values(ours, "MessagesDeadLettered") == [1.0]
    (counted,) = [record for record in emf(ours) if "MessagesDeadLettered" in record]
    assert counted[LOG_KEY_CHUNK] == 1 and counted["function_name"] == RECONCILER_HANDLER
    assert_well_formed(counted, metrics_namespace(stack.names.stack))
    assert values(ours, "UploadsFailed") == [] and values(ours, "MessagesRedriven") == []


def misspeculating_file(chunk_size: int) -> bytes:
    """Valid rows, then a quoted field holding lines that look like rows, one of which starts
    exactly at the second chunk: its worker speculates "outside quotes" (the byte before is a
    line break), and only once every chunk is mapped does the composition say otherwise."""
    header = b"documento;nome;valor\n"
    opening = b'52998224725;"quoted\n'
    fake = b"52998224725;fake;1,00\n"
    filler_bytes = chunk_size - 10 * len(fake) - len(header) - len(opening)
    row = b"52998224725;" + b"x" * 82 + b";1,00\n"  # 100 bytes
    rows, rest = divmod(filler_bytes, len(row))
    last = b"52998224725;" + b"y" * (rest + len(row) - 18) + b";1,00\n"
    return header + row * (rows - 1) + last + opening + fake * 20 + b'";2,00\n52998224725;after;3,00\n'


def test_a_chunk_parsed_twice_is_one_speculation_miss_and_counts_its_rows_per_parse(
    api: Api, stack: LocalStack, tmp_path: Path
) -> None:
    limits = runtime_config_from_env(stack.env).limits
    payload = misspeculating_file(limits.chunk_size)
    chunk_size = chunk_size_for(len(payload), limits)
    assert payload.index(b"52998224725;fake") + 10 * 22 == chunk_size
    path = tmp_path / "aspas.csv"
    path.write_bytes(payload)
    checked = check_file(path, None, limits)
    assert checked.reparsed == (1,)
    # The rows chunk 1's first (speculated) parse counts: the worker's parse, run here.
    fmt = detect_format(payload[: limits.sniff_bytes], at_eof=False, limits=limits)
    second = ChunkRange(index=1, start=chunk_size, end=len(payload))
    speculated = process_chunk(
        payload[chunk_size:], second, len(payload), fmt, lambda a, b: payload[a:b], limits
    ).region
    created = api.upload_bytes(payload, filename="aspas.csv")
    upload_id = created["upload_id"]
    final = api.wait_final(upload_id, created["token"], timeout=120)
    assert final["summary"]["rows_valid"] == checked.summary.rows_valid, final

    def finished() -> bool:
        return 1 in values(lines_of(stack, "pump-chunks-*.log", upload_id), "UploadsCompleted")

    wait_until(finished, 30, "no UploadsCompleted record for the upload")
    lines = lines_of(stack, "pump-chunks-*.log", upload_id) + lines_of(stack, "pump-events-*.log", upload_id)
    assert values(lines, "SpeculationMisses") == [1.0]
    assert len(values(lines, "ChunkDuration")) == final["chunks"]["total"] + 1  # chunk 1 twice
    # Rows count once per committed parse: the file's, plus chunk 1's first parse.
    assert sum(values(lines, "RowsValid")) == checked.summary.rows_valid + speculated.rows_valid
    assert sum(values(lines, "RowsInvalid")) == checked.summary.rows_invalid + speculated.rows_invalid
    assert values(lines, "UploadsCompleted") == [1.0]

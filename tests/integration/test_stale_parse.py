"""A parse that started from a speculated state never completes a chunk sent back to be parsed
from its true one.

When ``advance`` finds a chunk's speculation wrong it moves the chunk back to ``pending`` with
``start_state`` set, and a worker parses it again. A late duplicate delivery of the first
message, whose worker read the chunk item before that, parses from the speculated state; its
completion must fail (its rows would be the wrong ones) and leave no sketch. Reproduced step
by step with the worker's own functions against the local stack, its chunk pumps paused.
"""

from __future__ import annotations

import csv
import io

import pytest
from csvgen import generate
from support import Api, take_chunk_message, wait_until

from processor.finalize import decode_sketch
from processor.model import chunk_errors_key, chunk_key, partial_key, sketch_key
from processor.worker import complete_chunk, map_chunk, process_chunk_once
from processor.workitems import CHUNK_WORK, mark_processing
from upflow.aws.dynamo import Update
from upflow.core.consolidation import SKETCH_SIZE
from upflow.core.dialect import ParserState, encode_states
from upflow.definition import runtime_config_from_env
from upflow.local.stack import LocalStack
from upflow.server.uploads import upload_key
from upflow.server.wiring import Services, build_services


@pytest.fixture(scope="module")
def services(stack: LocalStack, aws_env: dict[str, str]) -> Services:
    return build_services(runtime_config_from_env(aws_env))


def test_a_stale_speculative_parse_neither_completes_a_chunk_sent_back_nor_touches_its_objects(
    api: Api, stack: LocalStack, services: Services
) -> None:
    payload, expected = generate(150 * 1024, seed=61, error_rate=0.02, documents=90)
    stack.pause_chunk_workers()  # until the end: no pump runs the reduce before the test is done
    try:
        created = api.upload_bytes(payload, filename="tardio.csv")
        upload_id = created["upload_id"]
        key = chunk_key(upload_id, 0)
        wait_until(lambda: services.status.get(key) is not None, 60, "the planner did not plan the upload")
        take_chunk_message(services, upload_id)  # the test is the only worker of this chunk
        upload = services.status.get(upload_key(upload_id))
        stale = services.status.get(key)
        assert upload is not None and stale is not None and "start_state" not in stale
        mark_processing(services, CHUNK_WORK, upload_id, 0, stale)

        # Meanwhile the chunk was sent back with another start state and is being parsed again.
        wrong = encode_states([ParserState.IN_QUOTED_FIELD])
        services.status.update(key, Update(set={"start_state": wrong}))
        result, partial, errors_size = map_chunk(services, upload_id, upload, stale)
        assert result.start_state != ParserState.IN_QUOTED_FIELD and errors_size > 0
        assert not complete_chunk(services, upload_id, 0, result, partial, errors_size)
        item = services.status.get(key)
        after = services.status.get(upload_key(upload_id))
        assert item is not None and after is not None
        assert item["status"] == "processing" and "rows_total" not in item
        assert int(after.get("chunks_done", 0)) == 0 and "rows_total" not in after
        assert services.status.get(sketch_key(upload_id, 0)) is None

        # The parse from the chunk item's own start state completes it, its objects named
        # after that state ...
        true_state = encode_states([result.start_state])
        services.status.update(key, Update(set={"start_state": true_state}))
        process_chunk_once(services, upload_id, 0)
        sketch = services.status.get(sketch_key(upload_id, 0))
        assert sketch is not None
        assert len(decode_sketch(sketch["sketch"])) == min(SKETCH_SIZE, len(expected.totals))
        assert services.store.exists(partial_key(upload_id, 0, true_state))
        assert services.store.exists(chunk_errors_key(upload_id, 0, true_state))
        # ... so the speculative parse's objects, written late, are nobody's input.
        services.store.put_bytes(partial_key(upload_id, 0), b"a late speculative partial")
        services.store.put_bytes(chunk_errors_key(upload_id, 0), b"a late speculative error file")
    finally:
        stack.resume_chunk_workers()
    final = api.wait_final(upload_id, created["token"], timeout=120)
    assert {k: final["summary"][k] for k in expected.summary()} == expected.summary()
    assert final["documents_total"] == len(expected.totals)
    with services.store.open_stream(str(final["report_key"])) as stream:
        report = stream.read().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(report, newline="")))
    assert len(rows) - 1 == sum(expected.errors.values())  # a header, then every error

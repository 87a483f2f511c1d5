"""The local S3 (SeaweedFS) behaves as S3 does where upflow relies on it.

* An object created through it — one PUT, or a multipart upload's complete —
  puts exactly one "Object Created" event, of the shape S3 sends to
  EventBridge (``tests/events/eventbridge_object_created.json``), through
  the stack's own EventBridge rule; parts and folders put none.
* The event source replays what was created before it started.
* Presigned URLs without a valid signature are refused.

The events are read from a temporary extra SQS target of the rule (a "tap").
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from support import Api, crc32_b64

from upflow.definition import UPLOADS_PREFIX, object_created_pattern
from upflow.local.processes import free_port
from upflow.local.s3events import JsonStream, object_created
from upflow.local.stack import LocalStack, start_stack

MiB = 1024 * 1024
FIXTURE = json.loads((Path(__file__).parents[1] / "events" / "eventbridge_object_created.json").read_text())


def shape(value: Any) -> Any:
    """The keys and value types of a JSON document, all the way down."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


@pytest.fixture(scope="module")
def seaweed_stack(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The session's stack when its S3 is SeaweedFS, else one of this module's own: these tests
    run whichever S3 the rest of the suite uses."""
    if stack.s3 == "seaweed":
        yield stack
        return
    own = start_stack(
        moto_port=free_port(),
        api_port=free_port(),
        web_port=None,
        chunk_workers=1,
        stack_name="s3events",
        log_dir=tmp_path_factory.mktemp("s3events-logs"),
        serve_page=False,
        s3="seaweed",
        s3_dir=tmp_path_factory.mktemp("s3events-s3"),
    )
    try:
        yield own
    finally:
        own.stop()


# This module's clients talk to the SeaweedFS stack, whichever the session's is.
@pytest.fixture(scope="module")
def s3(seaweed_stack: LocalStack) -> Any:
    return seaweed_stack.boto3_client("s3")


@pytest.fixture(scope="module")
def sqs(seaweed_stack: LocalStack) -> Any:
    return seaweed_stack.boto3_client("sqs")


@pytest.fixture(scope="module")
def api(seaweed_stack: LocalStack) -> Api:
    return Api(seaweed_stack.api_url)


class Tap:
    """An SQS queue added as a target of an EventBridge rule, for the duration of a test."""

    def __init__(self, sqs: Any, events: Any, rule: str, bus: str | None = None) -> None:
        self.sqs, self.events, self.rule, self.bus = sqs, events, rule, bus
        self.url = sqs.create_queue(QueueName=f"tap-{uuid.uuid4().hex[:12]}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_targets(Rule=rule, Targets=[{"Id": "test-tap", "Arn": arn}], **self._bus())
        self.seen: list[dict[str, Any]] = []

    def _bus(self) -> dict[str, str]:
        return {"EventBusName": self.bus} if self.bus else {}

    def events_for(self, key: str, settle: float = 3.0, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Every event for ``key``: waits for the first, then ``settle`` seconds for more."""
        deadline, settled = time.monotonic() + timeout, None
        while time.monotonic() < (settled or deadline):
            answer = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            for message in answer.get("Messages", []):
                self.seen.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
            mine = [event for event in self.seen if event["detail"]["object"]["key"] == key]
            if mine and settled is None:
                settled = time.monotonic() + settle
        return [event for event in self.seen if event["detail"]["object"]["key"] == key]

    def close(self) -> None:
        self.events.remove_targets(Rule=self.rule, Ids=["test-tap"], **self._bus())
        self.sqs.delete_queue(QueueUrl=self.url)


@pytest.fixture
def tap(seaweed_stack: LocalStack, sqs: Any) -> Iterator[Tap]:
    taps = Tap(sqs, seaweed_stack.boto3_client("events"), seaweed_stack.names.event_rule)
    try:
        yield taps
    finally:
        taps.close()


def new_key(name: str = "data.csv") -> str:
    return f"{UPLOADS_PREFIX}{uuid.uuid4().hex}/{name}"


def assert_s3_event(event: dict[str, Any], bucket: str, key: str, size: int, etag: str, reason: str) -> None:
    assert shape(event) == shape(FIXTURE)
    assert list(event) == list(FIXTURE) and list(event["detail"]) == list(FIXTURE["detail"])
    assert (event["source"], event["detail-type"], event["version"]) == ("aws.s3", "Object Created", "0")
    assert event["resources"] == [f"arn:aws:s3:::{bucket}"]
    assert event["time"].endswith("Z") and event["region"] == "us-east-1"
    detail = event["detail"]
    assert detail["bucket"] == {"name": bucket}
    assert (detail["object"]["key"], detail["object"]["size"]) == (key, size)
    assert detail["object"]["etag"] == etag.strip('"')
    assert detail["reason"] == reason


def test_a_put_object_makes_one_object_created_event_of_s3s_shape(
    seaweed_stack: LocalStack, s3: Any, tap: Tap
) -> None:
    bucket, key = seaweed_stack.names.bucket, new_key()
    body = b"documento;valor\n52998224725;10,00\n"
    etag = s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"]
    (event,) = tap.events_for(key)
    assert_s3_event(event, bucket, key, len(body), etag, "PutObject")


def test_a_multipart_upload_makes_one_event_and_its_parts_none(
    seaweed_stack: LocalStack, s3: Any, tap: Tap
) -> None:
    bucket, key = seaweed_stack.names.bucket, new_key()
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), b"tail\n"]
    mpu = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32")["UploadId"]
    completed = []
    for number, data in enumerate(parts, 1):
        answer = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=mpu, PartNumber=number, Body=data, ChecksumCRC32=crc32_b64(data)
        )
        completed.append({"PartNumber": number, "ETag": answer["ETag"], "ChecksumCRC32": crc32_b64(data)})
    etag = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=mpu, MultipartUpload={"Parts": completed}
    )["ETag"]
    assert etag.strip('"').endswith("-3")
    (event,) = tap.events_for(key)
    assert_s3_event(event, bucket, key, sum(map(len, parts)), etag, "CompleteMultipartUpload")
    # Nothing for the part files, the upload's folders, or the objects outside uploads/.
    assert all(e["detail"]["object"]["key"].startswith(UPLOADS_PREFIX) for e in tap.seen)
    assert not [e for e in tap.seen if ".uploads" in e["detail"]["object"]["key"]]


def test_objects_outside_the_uploads_prefix_make_no_event(
    seaweed_stack: LocalStack, s3: Any, tap: Tap
) -> None:
    bucket = seaweed_stack.names.bucket
    outside, inside = f"reports/{uuid.uuid4().hex}.csv", new_key()
    s3.put_object(Bucket=bucket, Key=outside, Body=b"x")
    s3.put_object(Bucket=bucket, Key=inside, Body=b"y")
    assert len(tap.events_for(inside)) == 1
    assert tap.events_for(outside, settle=0, timeout=1) == []


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_a_killed_tail_is_restarted_and_nothing_is_missed_or_repeated(
    seaweed_stack: LocalStack, s3: Any, tap: Tap
) -> None:
    bucket, before, after = seaweed_stack.names.bucket, new_key("before.csv"), new_key("after.csv")
    s3.put_object(Bucket=bucket, Key=before, Body=b"1\n")
    assert len(tap.events_for(before, settle=0)) == 1
    (tail,) = children_of(seaweed_stack.pid_of("s3-events"))
    os.kill(tail, signal.SIGKILL)
    s3.put_object(Bucket=bucket, Key=after, Body=b"2\n")  # while no tail runs
    assert len(tap.events_for(after)) == 1
    assert len(tap.events_for(before, settle=0, timeout=1)) == 1  # the replay skipped what was handled
    assert children_of(seaweed_stack.pid_of("s3-events")) not in ([], [tail])


def test_the_event_source_replays_what_was_created_before_it_started(
    seaweed_stack: LocalStack, s3: Any, sqs: Any, tmp_path: Path
) -> None:
    """A second source, started after the PUT with --since-ns before it, still sends its event
    (to a bus of its own, so that the stack's source does not answer for it)."""
    events = seaweed_stack.boto3_client("events")
    bus, bucket, key = f"replay-{uuid.uuid4().hex[:8]}", seaweed_stack.names.bucket, new_key()
    events.create_event_bus(Name=bus)
    events.put_rule(
        Name="replay",
        EventBusName=bus,
        EventPattern=json.dumps(object_created_pattern(bucket)),
        State="ENABLED",
    )
    replay_tap = Tap(sqs, events, "replay", bus=bus)
    since = time.time_ns()
    etag = s3.put_object(Bucket=bucket, Key=key, Body=b"before\n")["ETag"]
    time.sleep(1.0)
    log = tmp_path / "s3events.log"
    with open(log, "wb") as out:
        source = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "upflow.local.s3events",
                f"--filer={seaweed_stack.s3_filer}",
                f"--bucket={bucket}",
                f"--since-ns={since}",
                f"--event-bus={bus}",
            ],
            env=seaweed_stack.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        (event,) = replay_tap.events_for(key)
        assert_s3_event(event, bucket, key, len(b"before\n"), etag, "PutObject")
    finally:
        source.terminate()
        source.wait(10)
        replay_tap.close()
        events.delete_rule(Name="replay", EventBusName=bus)
        events.delete_event_bus(Name=bus)
    assert source.returncode == 0, log.read_text()


def test_presigned_part_urls_without_a_valid_signature_are_refused(
    seaweed_stack: LocalStack, api: Api
) -> None:
    status, created = api.call("POST", "/uploads", json_body={"filename": "signed.csv", "size": 20 * MiB})
    assert status == 201, created
    upload_id, token = created["upload_id"], created["token"]
    part = os.urandom(8 * MiB)
    status, signed = api.call(
        "POST",
        f"/uploads/{upload_id}/parts",
        token,
        {"part_numbers": [1], "checksums": {"1": crc32_b64(part)}},
    )
    assert status == 200, signed
    url, headers = signed["urls"]["1"], signed["headers"]["1"]
    assert url.startswith(seaweed_stack.s3_endpoint + "/")
    query = {name: value for name, _, value in (p.partition("=") for p in url.split("?", 1)[1].split("&"))}
    forged = url.replace(f"X-Amz-Signature={query['X-Amz-Signature']}", "X-Amz-Signature=" + "0" * 64)
    unsigned = url.split("?", 1)[0] + f"?partNumber=1&uploadId={query['uploadId']}"
    other_part = url.replace("partNumber=1&", "partNumber=2&")
    assert other_part != url
    try:
        for name, target, sent_headers, body in [
            ("forged signature", forged, headers, part),
            ("no signature", unsigned, headers, part),
            ("another part number", other_part, headers, part),
            ("signed headers left out", url, {}, part),
        ]:
            response = requests.put(target, data=body, headers=sent_headers, timeout=60)
            assert response.status_code == 403, (name, response.status_code, response.text[:300])
        corrupted = bytearray(part)
        corrupted[77] ^= 1
        response = requests.put(url, data=bytes(corrupted), headers=headers, timeout=60)
        assert response.status_code == 400 and "BadDigest" in response.text, response.text[:300]
        status, listed = api.call("GET", f"/uploads/{upload_id}/parts", token)
        assert status == 200 and listed["parts"] == []
        response = requests.put(url, data=part, headers=headers, timeout=60)
        assert response.status_code == 200, response.text[:300]
    finally:
        api.call("DELETE", f"/uploads/{upload_id}", token)


# --- the event source's reading of the filer's log (no stack needed) ---------------------

ENTRY: dict[str, Any] = {
    "name": "data.csv",
    "isDirectory": False,
    "chunks": [{"fileId": "3,01a2b3c4d5"}],
    "attributes": {"fileSize": "4", "md5": base64.b64encode(bytes.fromhex("0" * 32)).decode()},
    # The filer's JSON carries extended attributes in base64.
    "extended": {"Seaweed-X-Amz-ETag": base64.b64encode(b"b943a63ed04dcf318b2c07759ba5218b").decode()},
}


def message(directory: str, new: dict[str, Any] | None, old: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "directory": directory,
        "eventNotification": {"oldEntry": old, "newEntry": new, "newParentPath": directory if new else ""},
        "tsNs": "1796525109239272607",
    }


def test_the_filer_log_is_read_as_object_creations_once_each() -> None:
    root = "/buckets/b/uploads/abc"
    created = object_created(message(root, ENTRY), "b")
    assert created is not None
    assert (created.key, created.size, created.etag, created.reason) == (
        "uploads/abc/data.csv",
        4,
        "b943a63ed04dcf318b2c07759ba5218b",
        "PutObject",
    )
    completed = {**ENTRY, "extended": {**ENTRY["extended"], "X-Seaweedfs-Upload-Id": "YWJj"}}
    assert object_created(message(root, {**ENTRY, "extended": {}}), "b").etag == "0" * 32  # type: ignore[union-attr]
    assert object_created(message(root, completed), "b").reason == "CompleteMultipartUpload"  # type: ignore[union-attr]
    assert object_created(message(root, None, ENTRY), "b") is None  # a deletion
    assert object_created(message(root, {**ENTRY, "isDirectory": True}), "b") is None
    assert object_created(message("/buckets/b/.uploads/x", ENTRY), "b") is None  # a part file
    assert object_created(message("/buckets/other/uploads/abc", ENTRY), "b") is None
    assert object_created(message(root, ENTRY, ENTRY), "b") is None  # metadata updated, same object
    rewritten = {**ENTRY, "chunks": [{"fileId": "4,0badc0ffee"}]}
    assert object_created(message(root, rewritten, ENTRY), "b") is not None  # an overwrite


def test_the_tails_indented_json_objects_are_split() -> None:
    first = json.dumps(message("/buckets/b/uploads/a", ENTRY), indent=2)
    second = json.dumps({"directory": "/x", "note": "}"}, indent=2)
    text = "a stray line\n" + first + "\n" + second + "\n{ not json\n" + json.dumps({"one": "line"}) + "\n"
    lines = text.splitlines(keepends=True)
    parsed = list(JsonStream().objects(lines))
    assert [p.get("directory", p) for p in parsed] == [
        "/buckets/b/uploads/a",
        "/x",
        {"one": "line"},
    ]

"""The local stack as a supervisor: pumps replaced when they die, nothing left when it stops.

``upflow dev`` runs in a subprocess on free ports (its CLI flags), in its own session as a
terminal would start it. Before it is stopped, every process it started — and anything
those started — is read from /proc; after, none of them may still run (a zombie waiting
for a reaper that never comes has run its last instruction: it counts as gone).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from upflow.aws.sqs import Queue
from upflow.local.processes import LOCAL_CREDENTIALS, STOP_GRACE_SECONDS, free_port
from upflow.local.pump import pump_once
from upflow.local.stack import LocalStack, start_stack

REPO = Path(__file__).resolve().parents[2]
STARTED = "Ctrl-C stops everything."
# Every child gets SIGTERM at once and SIGKILL after the grace: gone well within this.
STOP_BOUND_SECONDS = STOP_GRACE_SECONDS + 3.0
# PR_SET_PDEATHSIG: the kernel kills the children as their parent dies.
ORPHAN_BOUND_SECONDS = 3.0


@dataclass(frozen=True)
class Process:
    pid: int
    started: int  # clock ticks after boot: tells a reused pid apart
    command: str


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of ``pid``, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), fields[0], int(fields[19])


def descendants(root: int) -> list[Process]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            children.setdefault(stat[0], []).append(int(entry.name))
    found: list[Process] = []
    todo = [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            stat = _stat(pid)
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if stat is not None:
                found.append(Process(pid, stat[2], command))
                todo.append(pid)
    return found


def running(process: Process) -> bool:
    stat = _stat(process.pid)
    return stat is not None and stat[2] == process.started and stat[1] not in ("Z", "X")


def wait_for(predicate: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``predicate`` held; fails after ``timeout``."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout:.0f}s")
        time.sleep(0.05)
    return time.monotonic() - started


class Dev:
    """``upflow dev`` in its own session, its output collected line by line."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.moto_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("UPFLOW_", "AWS_"))}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "upflow.client.cli",
                "dev",
                f"--moto-port={self.moto_port}",
                f"--api-port={free_port()}",
                f"--web-port={free_port()}",
                "--s3=moto",
                "--chunk-workers=1",
                f"--work-dir={work_dir}",
            ],
            env={**env, "PYTHONUNBUFFERED": "1"},
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def line(self, pattern: str, timeout: float = 90.0) -> re.Match[str]:
        """The first output line matching ``pattern`` (waiting for it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if found := re.search(pattern, line):
                    return found
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line matches {pattern!r}:\n" + "\n".join(self.lines[-40:]))

    def started(self) -> list[Process]:
        """Wait until it serves; answers every process under it (at least moto, API, 3 pumps)."""
        self.line(re.escape(STARTED))
        processes = descendants(self.process.pid)
        commands = " ".join(p.command for p in processes)
        for part in ("upflow.local.motoserver", "chalice local", "--role events", "--role chunks"):
            assert part in commands, commands
        assert "--role reconciler" in commands
        return processes

    def pid_of(self, part: str) -> int:
        (pid,) = [p.pid for p in descendants(self.process.pid) if part in p.command]
        return pid

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[Dev]:
    running_dev = Dev(tmp_path)
    try:
        yield running_dev
    finally:
        running_dev.close()


def assert_all_gone(processes: list[Process], bound: float) -> float:
    seconds = wait_for(lambda: not any(running(p) for p in processes), bound)
    left = [p.command for p in processes if running(p)]
    assert not left, left
    return seconds


def test_ctrl_c_stops_everything(dev: Dev) -> None:
    processes = dev.started()
    os.killpg(dev.process.pid, signal.SIGINT)  # what a terminal sends its foreground group
    assert dev.process.wait(STOP_BOUND_SECONDS) == 0
    print(f"gone {assert_all_gone(processes, STOP_BOUND_SECONDS):.2f}s after upflow dev ended")


def test_sighup_stops_everything(dev: Dev) -> None:
    """Closing the terminal of `make dev`: children in their own sessions get no SIGHUP."""
    processes = dev.started()
    os.kill(dev.process.pid, signal.SIGHUP)
    assert dev.process.wait(STOP_BOUND_SECONDS) == 0
    assert_all_gone(processes, STOP_BOUND_SECONDS)


def test_sigkill_of_upflow_dev_leaves_no_process(dev: Dev) -> None:
    """No clean-up runs in a process killed with SIGKILL: the children die with it all the same."""
    processes = dev.started()
    os.kill(dev.process.pid, signal.SIGKILL)
    dev.process.wait(5)
    print(f"gone {assert_all_gone(processes, ORPHAN_BOUND_SECONDS):.2f}s after SIGKILL")


def test_sigterm_stops_everything_and_a_dead_pump_is_replaced_meanwhile(dev: Dev) -> None:
    processes = dev.started()
    # Every line of a child reaches upflow dev's stdout with the child's name, and its log file.
    sqs = boto3.client(
        "sqs",
        endpoint_url=f"http://127.0.0.1:{dev.moto_port}",
        region_name=LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"],
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    marker = uuid.uuid4().hex
    url = sqs.get_queue_url(QueueName="upflow-local-events")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"probe": marker}))  # the planner ignores it
    relayed = dev.line(rf"^pump-events-0 +\| (\{{.*{marker}.*\}})$", timeout=60)
    said = json.loads(relayed.group(1))
    assert said["pump"] == "events" and said["event"] == "received"
    assert json.loads(said["messages"][0]["body"]) == {"probe": marker}
    dev.line(r"^pump-events-0 +\| \{.*\"event\": \"handled\"", timeout=60)
    assert relayed.group(1) in (dev.work_dir / "logs" / "pump-events-0.log").read_text().splitlines()
    # moto's access log (every pump polls it every second, "POST /") stays in its file only.
    assert '"POST / HTTP/1.1" 200' in (dev.work_dir / "logs" / "moto.log").read_text()
    assert not [line for line in dev.lines if line.startswith("moto") and "POST / HTTP" in line]

    # A pump killed as a Lambda is by its timeout: replaced, the stack goes on.
    killed = dev.pid_of("--role chunks")
    os.kill(killed, signal.SIGKILL)
    restarted = dev.line(
        r"^supervisor +\| .*pump-chunks-0 ended \(signal SIGKILL\); started again as pid (\d+) \(restart 1\)",
        timeout=30,
    )
    replacement = int(restarted.group(1))
    assert replacement != killed and dev.pid_of("--role chunks") == replacement
    assert dev.process.poll() is None

    processes += [p for p in descendants(dev.process.pid) if p.pid == replacement]
    os.kill(dev.process.pid, signal.SIGTERM)
    assert dev.process.wait(STOP_BOUND_SECONDS) == 0
    assert_all_gone(processes, STOP_BOUND_SECONDS)


def test_moto_dying_stops_the_stack_with_a_clear_message(dev: Dev) -> None:
    """moto's memory is the stack's state: no replacement could carry it on."""
    processes = dev.started()
    os.kill(dev.pid_of("upflow.local.motoserver"), signal.SIGKILL)
    assert dev.process.wait(STOP_BOUND_SECONDS + 5) == 1
    dev.line(r"stopping: moto ended \(signal SIGKILL\); it holds the stack's state", timeout=1)
    assert_all_gone(processes, STOP_BOUND_SECONDS)


def test_the_pump_keeps_a_running_handlers_message_invisible(stack: LocalStack) -> None:
    """The local visibility timeout is seconds long; a handler that runs longer keeps its message
    (a heartbeat), while a killed pump's message comes back after those seconds."""
    sqs = stack.boto3_client("sqs")
    name = f"heartbeat-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    queue = Queue(sqs, name)
    seen_by_others: dict[str, int] = {}

    def handler_watching_the_queue(event: dict[str, Any], context: Any) -> dict[str, Any]:
        body = event["Records"][0]["body"]
        others = 0
        for _ in range(4):  # 2 s: two visibility timeouts
            time.sleep(0.5)
            others += len(queue.receive(1, 0))
        seen_by_others[body] = others
        return {"batchItemFailures": []}

    queue.send_json([{"kept": True}])
    assert pump_once(queue, queue.arn(), handler_watching_the_queue, 1, 1, visibility=1) == 1
    assert seen_by_others == {json.dumps({"kept": True}): 0}
    assert queue.approximate_count() == 0  # handled, then deleted

    # Without the heartbeat (a pump that died holding it), the message is received again.
    queue.send_json([{"kept": False}])
    assert pump_once(queue, queue.arn(), handler_watching_the_queue, 1, 1, visibility=0) == 1
    assert seen_by_others[json.dumps({"kept": False})] >= 1
    sqs.delete_queue(QueueUrl=url)


@pytest.mark.seaweed
def test_a_killed_s3_event_source_is_replaced_and_takes_its_tail_along(tmp_path: Path) -> None:
    """s3-events (SeaweedFS's "Object Created" events) runs `weed filer.meta.tail`: killed with
    SIGKILL, it leaves no tail behind, and its replacement sends the events of new objects."""
    stack = start_stack(
        moto_port=free_port(),
        api_port=free_port(),
        web_port=None,
        chunk_workers=1,
        stack_name="sources",
        log_dir=tmp_path / "logs",
        serve_page=False,
        s3="seaweed",
        s3_dir=tmp_path / "s3",
    )
    try:
        old = stack.pid_of("s3-events")
        tails = descendants(old)
        assert [p for p in tails if "filer.meta.tail" in p.command], tails
        stack.kill("s3-events")
        assert_all_gone(tails, ORPHAN_BOUND_SECONDS)
        wait_for(lambda: stack.restarts.get("s3-events", 0) == 1, 30)
        assert stack.pid_of("s3-events") != old
        key = f"uploads/{uuid.uuid4().hex}/after.csv"
        stack.boto3_client("s3").put_object(Bucket=stack.names.bucket, Key=key, Body=b"1\n")
        events_log = tmp_path / "logs" / "pump-events-0.log"
        # The planner receives its event (and ignores it: no upload has that key).
        wait_for(lambda: key in events_log.read_text(errors="replace"), 60)
    finally:
        stack.stop()


def test_a_pump_stopped_while_it_polls_handles_what_that_poll_brings(stack: LocalStack) -> None:
    """SIGTERM (a pause, a stop) reaches a pump waiting on its queue. The local SQS still answers
    that long poll, with a message sent meanwhile: the pump must handle it before it ends, or the
    receive is lost (the message hidden for a visibility timeout, one of its five deliveries
    spent with no attempt: what made a test see 4 attempts of a poison chunk instead of 5)."""
    sqs = stack.boto3_client("sqs")
    name = f"stopping-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    body = json.dumps({"type": "chunk", "upload_id": "no-such-upload", "index": 0})
    pump = subprocess.Popen(
        [sys.executable, "-m", "upflow.local.pump", "--role", "chunks", "--wait-seconds", "2"],
        env={**stack.env, "UPFLOW_CHUNKS_QUEUE": name},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(4)  # started, and polling (one 2 s poll after another)
        assert pump.poll() is None
        pump.send_signal(signal.SIGTERM)
        sqs.send_message(QueueUrl=url, MessageBody=body)  # into the poll under way
        output, _ = pump.communicate(timeout=STOP_BOUND_SECONDS)
    finally:
        if pump.poll() is None:
            pump.kill()
    assert pump.returncode == 0, output
    said = [json.loads(line) for line in output.splitlines() if line.startswith('{"pump"')]
    handled = [s for s in said if s["event"] == "handled"]
    if handled:  # the poll brought it: handled (it fails: no such upload) before the pump ended
        assert [m["body"] for s in said if s["event"] == "received" for m in s["messages"]] == [body]
    else:  # the poll had ended before the message came: nobody received it
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "1", output
    sqs.delete_queue(QueueUrl=url)

"""``upflow dev``: S3 + moto server + resources + S3 events + ``chalice local`` + queue pump + web page.

``s3="seaweed"``: S3 is SeaweedFS (``upflow.local.seaweed``: objects on disk,
SigV4, expiry and checksums enforced, ranged reads), with its "Object Created"
events put on moto's EventBridge by ``upflow.local.s3events``; DynamoDB, SQS
and EventBridge are moto. ``s3="moto"`` keeps S3 on moto too (objects in
memory, its own EventBridge notifications, no signature checks). ``DEFAULT_S3``
says which one ``upflow dev`` and the test suite run.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import boto3

from upflow.build import REPO_ROOT
from upflow.definition import UPLOADS_PREFIX, Limits, ResourceNames, names_for
from upflow.local.processes import (
    LOCAL_CREDENTIALS,
    Child,
    LineSink,
    aws_env,
    exit_reason,
    free_port,
    stack_env,
    start_chalice_local,
    start_moto,
    stop_children,
)
from upflow.local.resources import create_stack
from upflow.local.s3events import PROBE_NAME
from upflow.local.supervisor import Supervisor

WEB_DIST = REPO_ROOT / "web" / "dist"
S3Server = Literal["seaweed", "moto"]
S3_SERVERS: tuple[S3Server, ...] = ("seaweed", "moto")
DEFAULT_S3: S3Server = "seaweed"


@dataclass(frozen=True)
class LocalTimeouts:
    """The local stack's stand-ins for the deployed timeouts (``upflow.definition``: 30 min of
    visibility for the chunks queue, items stuck after that, a reconciler every 5 min), short
    so that the work of a killed process is taken up again within a minute
    (docs/design.md, "Failure model"). The pumps keep a live handler's messages invisible."""

    # Both queues: a killed pump's message is received again after this long.
    visibility_seconds: int = 10
    # An item `processing` this long has a dead worker: longer than the visibility timeout (SQS
    # redelivers first) and than a local chunk takes (a live one run twice is only wasted work).
    stuck_after_seconds: int = 45
    # The reconciler's period (the EventBridge schedule's rate on AWS).
    reconcile_every_seconds: int = 10

    def env(self) -> dict[str, str]:
        return {
            "UPFLOW_STUCK_AFTER_SECONDS": str(self.stuck_after_seconds),
            "UPFLOW_RECONCILE_EVERY_SECONDS": str(self.reconcile_every_seconds),
        }


LOCAL_TIMEOUTS = LocalTimeouts()


@dataclass
class LocalStack:
    endpoint: str  # moto: DynamoDB, SQS, EventBridge (and S3 when s3 == "moto")
    api_url: str
    names: ResourceNames
    env: dict[str, str]
    supervisor: Supervisor
    web_url: str | None = None
    chunk_workers: int = 2
    log_dir: Path | None = None
    s3: S3Server = DEFAULT_S3
    s3_endpoint: str = ""  # where S3 requests and presigned URLs go
    s3_filer: str = ""  # SeaweedFS's filer (host:port.grpcPort), whose log s3-events follows
    sink: LineSink | None = None  # where every child's output lines go besides its log
    _web: Any = None
    _scratch: Path | None = None  # removed on stop()

    @property
    def children(self) -> list[Child]:
        """The running children (the supervisor replaces a pump that ends)."""
        return self.supervisor.children

    @property
    def restarts(self) -> dict[str, int]:
        """How many times each child was started again after it ended, by name."""
        return dict(self.supervisor.restarts)

    @property
    def fatal(self) -> str | None:
        """Why the stack cannot go on (moto, SeaweedFS or ``chalice local`` ended), or None."""
        return self.supervisor.fatal

    def pause_chunk_workers(self) -> None:
        """Stop the chunk pump (messages wait on the queue, as with a throttled Lambda)."""
        self.supervisor.pause("pump-chunks")

    def pause_processing(self) -> None:
        """Stop every pump, planner included: S3 events wait on their queue and nothing
        but uploads runs (for benchmarks of the upload path alone)."""
        self.supervisor.pause("pump-")

    def resume_chunk_workers(self) -> None:
        self.supervisor.resume("pump-chunks")

    def pid_of(self, name: str) -> int:
        """The process id of the child named ``name`` ("moto", "chalice local", …)."""
        child = self.supervisor.child(name)
        if child is None:
            raise KeyError(f"no child named {name!r}")
        return child.pid

    def kill(self, name: str, signum: int = signal.SIGKILL) -> int:
        """Kill the child ``name`` (SIGKILL: no clean-up runs, as a Lambda timeout); answers its pid.
        A pump or s3-events is started again by the supervisor."""
        return self.supervisor.kill(name, signum)

    def replace(
        self, name: str, extra_env: Mapping[str, str], signum: int = signal.SIGTERM, timeout: float = 60.0
    ) -> int:
        """Have the pump ``name`` started again once with ``extra_env`` (e.g. a crash point,
        ``upflow.local.crash``); answers the new process's pid."""
        return self.supervisor.replace(name, extra_env, signum, timeout)

    @property
    def crashes(self) -> list[tuple[str, dict[str, Any]]]:
        """The crashes on purpose that struck (``upflow.local.crash``): (pump, what it said)."""
        return list(self.supervisor.crashes)

    def held(self, name: str) -> list[dict[str, Any]]:
        """The messages the pump ``name`` is handling now (``id``, ``receives``, ``body``)."""
        return self.supervisor.held(name)

    def client_env(self) -> dict[str, str]:
        """The variables that point a process's boto3 at this stack (credentials, endpoints)."""
        return aws_env(self.endpoint, self.s3_endpoint)

    def boto3_client(self, service: str) -> Any:
        from botocore.config import Config

        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.s3_endpoint if service == "s3" and self.s3_endpoint else self.endpoint,
            region_name=LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"],
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(signature_version="s3v4") if service == "s3" else None,
        )

    def stop(self) -> None:
        """Stop every child at once (SIGTERM, then SIGKILL after a few seconds)."""
        if self._web is not None:
            self._web.close()
            self._web = None
        self.supervisor.stop()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


# A werkzeug access-log line: `127.0.0.1 - - [06/Dec/2026 06:37:09] "POST / HTTP/1.1" 200 -`.
_ACCESS_LOG_LINE = re.compile(rb'^[0-9.]+ - - \[[^]]*\] "')


def _no_access_log(sink: LineSink | None) -> LineSink | None:
    """``sink`` without moto's access log: every pump polls it every second, and its lines name
    no upload ("POST /"); they stay in moto's log file."""
    if sink is None:
        return None
    target = sink

    def relay(name: str, line: bytes) -> None:
        if not _ACCESS_LOG_LINE.match(line):
            target(name, line)

    return relay


def start_pump(
    env: Mapping[str, str],
    chunk_workers: int,
    log_dir: Path | None,
    roles: tuple[str, ...] = ("events", "chunks", "reconciler"),
    sink: LineSink | None = None,
    supervisor: Supervisor | None = None,
) -> list[Child]:
    workers = (
        ([("events", 0)] if "events" in roles else [])
        + ([("chunks", index) for index in range(chunk_workers)] if "chunks" in roles else [])
        + ([("reconciler", 0)] if "reconciler" in roles else [])
    )
    children = []
    for role, index in workers:
        name = f"pump-{role}-{index}"
        children.append(
            Child(
                name,
                [sys.executable, "-m", "upflow.local.pump", "--role", role],
                env,
                log_path=(log_dir / f"{name}.log") if log_dir else None,
                sink=sink,
                watch=supervisor.watcher(name) if supervisor is not None else None,
            )
        )
    return children


def start_seaweed_s3(root: Path, log_dir: Path | None, port: int | None) -> Any:
    """SeaweedFS with its data under ``root``, known to it as the local credentials."""
    from upflow.local.seaweed import start_seaweed

    return start_seaweed(
        root,
        LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        s3_port=port,
        log_path=log_dir / "seaweedfs.log" if log_dir else None,
    )


def start_s3_events(
    stack: LocalStack, filer: str, since_ns: int, ready_file: Path, timeout: float = 60.0
) -> Child:
    """Start ``upflow.local.s3events`` and return once it is seen to follow the bucket.

    It replays the filer's log from ``since_ns`` (before SeaweedFS started), so
    no object created meanwhile is missed; the probe only proves it is live.
    """
    probe_key = f"{UPLOADS_PREFIX}{PROBE_NAME}"
    child = Child(
        "s3-events",
        [
            sys.executable,
            "-m",
            "upflow.local.s3events",
            f"--filer={filer}",
            f"--bucket={stack.names.bucket}",
            f"--prefix={UPLOADS_PREFIX}",
            f"--since-ns={since_ns}",
            f"--probe-key={probe_key}",
            f"--ready-file={ready_file}",
        ],
        stack.env,
        log_path=stack.log_dir / "s3-events.log" if stack.log_dir else None,
        sink=stack.sink,
    )
    try:
        s3 = stack.boto3_client("s3")
        deadline = time.monotonic() + timeout
        while True:
            if not child.alive():
                raise RuntimeError(f"s3-events ended ({exit_reason(child.process.returncode)}; see its log)")
            if not ready_file.exists():
                try:
                    s3.put_object(Bucket=stack.names.bucket, Key=probe_key, Body=b"")
                except Exception:  # SeaweedFS may still be growing its first volumes
                    pass
            if ready_file.exists():
                s3.delete_object(Bucket=stack.names.bucket, Key=probe_key)
                return child
            if time.monotonic() > deadline:
                raise TimeoutError(f"s3-events did not see {probe_key} within {timeout:.0f}s")
            time.sleep(0.5)
    except BaseException:
        child.stop()
        raise


def start_stack(
    host: str = "127.0.0.1",
    moto_port: int = 5000,
    api_port: int = 8000,
    web_port: int | None = 8080,
    chunk_workers: int = 2,
    stack_name: str = "local",
    extra_env: Mapping[str, str] | None = None,
    log_dir: Path | None = None,
    serve_page: bool = True,
    s3: S3Server = DEFAULT_S3,
    s3_port: int | None = None,
    s3_dir: Path | None = None,
    timeouts: LocalTimeouts | None = LOCAL_TIMEOUTS,
    sink: LineSink | None = None,
) -> LocalStack:
    """Start everything; on any failure, stop what was started and re-raise.

    ``s3="seaweed"`` keeps its objects in ``s3_dir`` (default: a temp dir,
    removed by ``stop()``) and serves S3 on ``s3_port`` (default: a free port).
    ``timeouts``: the local queues' visibility timeout and the reconciler's settings
    (``extra_env`` may override the latter); None: the deployed stack's.
    ``sink`` gets every line every child writes (they also go to ``log_dir``).

    The children die with the thread that calls this (``PR_SET_PDEATHSIG``): call it
    from a thread that outlives the stack (the main thread, a session fixture's).
    """
    if s3 not in S3_SERVERS:
        raise ValueError(f"s3 must be one of {S3_SERVERS}, not {s3!r}")
    names = names_for(stack_name)
    limits = Limits()
    web_origin = f"http://{host}:{web_port}" if web_port else "*"
    supervisor = Supervisor([], sink, log_dir)
    scratch: Path | None = None
    if log_dir:
        log_dir.mkdir(parents=True, exist_ok=True)
    try:
        since_ns = time.time_ns()
        moto, endpoint = start_moto(
            host, moto_port, log_path=log_dir / "moto.log" if log_dir else None, sink=_no_access_log(sink)
        )
        supervisor.add(moto)
        s3_endpoint = endpoint
        seaweed: Any = None
        if s3 == "seaweed":
            if s3_dir is None:
                scratch = s3_dir = Path(tempfile.mkdtemp(prefix="upflow-s3-"))
            seaweed = start_seaweed_s3(s3_dir, log_dir, s3_port)
            seaweed.child.sink = sink  # its lines from now on; the start-up is in its log
            supervisor.add(seaweed.child)
            s3_endpoint = seaweed.endpoint
        app_env = {
            **names.as_env(),
            "UPFLOW_TOKEN_SECRET": secrets.token_urlsafe(32),
            "UPFLOW_WEB_ORIGIN": web_origin,
            **(timeouts.env() if timeouts else {}),
            **(extra_env or {}),
        }
        env = stack_env(endpoint, app_env, s3_endpoint)
        stack = LocalStack(
            endpoint=endpoint,
            api_url="",
            names=names,
            env=env,
            supervisor=supervisor,
            chunk_workers=chunk_workers,
            log_dir=log_dir,
            s3=s3,
            s3_endpoint=s3_endpoint,
            s3_filer=seaweed.filer_address if seaweed is not None else "",
            sink=sink,
        )
        create_stack(
            stack.boto3_client("s3"),
            stack.boto3_client("sqs"),
            stack.boto3_client("dynamodb"),
            stack.boto3_client("events"),
            names,
            limits,
            web_origins=[web_origin],
            aws_s3=s3 == "moto",
            visibility_seconds=timeouts.visibility_seconds if timeouts else None,
        )
        if seaweed is not None:
            assert s3_dir is not None
            ready = s3_dir / "s3-events.ready"
            ready.unlink(missing_ok=True)
            supervisor.add(start_s3_events(stack, seaweed.filer_address, since_ns, ready))
        # Only now may uploads start: every object they create has its event.
        api, api_url = start_chalice_local(
            host, api_port, env, log_path=log_dir / "api.log" if log_dir else None, sink=sink
        )
        supervisor.add(api)
        stack.api_url = api_url
        for pump in start_pump(env, chunk_workers, log_dir, sink=sink, supervisor=supervisor):
            supervisor.add(pump)
        if web_port and serve_page:
            from upflow.local.webserver import serve_web

            stack._web = serve_web(WEB_DIST, host, web_port, api_url)
            stack.web_url = stack._web.url
        stack._scratch = scratch
        supervisor.start()
        return stack
    except BaseException:
        stop_children(supervisor.children)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        raise


class PrefixedOutput:
    """``upflow dev``'s stdout: each child's lines as ``<name> | <line>``, whole lines only.

    A terminal that went away (SIGHUP) or a closed pipe loses the echo, not the logs.
    """

    def __init__(self, stream: IO[bytes], width: int = 16) -> None:
        self._stream = stream
        self._width = width
        self._lock = threading.Lock()

    def __call__(self, name: str, line: bytes) -> None:
        self.write(f"{name:<{self._width}} | ".encode() + line)

    def say(self, text: str) -> None:
        self.write(text.encode() + b"\n")

    def write(self, data: bytes) -> None:
        with self._lock, contextlib.suppress(OSError, ValueError):
            self._stream.write(data)
            self._stream.flush()


def run_dev(
    moto_port: int = 5000,
    api_port: int = 8000,
    web_port: int = 8080,
    host: str = "127.0.0.1",
    chunk_workers: int = 2,
    s3: S3Server | None = None,
    s3_port: int = 8333,
    work_dir: Path | None = None,
) -> int:
    """Run the local stack until Ctrl-C, SIGTERM or SIGHUP; stop every child on the way out.

    Every line a child writes is printed with its name (``pump-chunks-0 | …``) and kept in
    ``<work_dir>/logs/<name>.log`` (default work dir: ``.upflow``); SeaweedFS keeps its
    objects in ``<work_dir>/s3``, which lives as long as the stack (moto's state does too).
    A pump that dies is started again; moto, SeaweedFS or ``chalice local`` dying stops
    the stack (exit status 1). Killed itself, even by SIGKILL, it leaves no child behind.
    """
    if moto_port == 0:
        moto_port = free_port(host)
    work_dir = work_dir or REPO_ROOT / ".upflow"
    log_dir = work_dir / "logs"
    s3_dir = work_dir / "s3"
    shutil.rmtree(s3_dir, ignore_errors=True)
    serve_page = (WEB_DIST / "index.html").exists()
    out = PrefixedOutput(sys.stdout.buffer)
    stopped = threading.Event()
    starting = True

    def stop(signum: int, _frame: Any) -> None:
        stopped.set()
        if starting:  # start_stack stops what it started so far
            raise KeyboardInterrupt(signal.Signals(signum).name)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    stack: LocalStack | None = None
    try:
        stack = start_stack(
            host,
            moto_port,
            api_port,
            web_port,
            chunk_workers,
            log_dir=log_dir,
            serve_page=serve_page,
            s3=s3 or DEFAULT_S3,
            s3_port=s3_port or None,
            s3_dir=s3_dir,
            sink=out,
        )
        starting = False
        if stack.s3 == "seaweed":
            out.say(f"S3 (SeaweedFS):    {stack.s3_endpoint}   objects in {s3_dir}")
            out.say(f"local AWS (moto):  {stack.endpoint}   DynamoDB, SQS, EventBridge")
        else:
            out.say(f"local AWS (moto):  {stack.endpoint}   S3, DynamoDB, SQS, EventBridge")
        out.say(f"API:               {stack.api_url}")
        out.say(f"web page:          {stack.web_url or 'not built (run `make web`)'}")
        out.say(f"logs:              {log_dir}")
        out.say("Ctrl-C stops everything.")
        while not stopped.wait(0.5):
            if stack.fatal:
                out.say(f"stopping: {stack.fatal} (see {log_dir})")
                return 1
    except KeyboardInterrupt:
        starting = False
        out.say("stopped while starting")
        return 130
    finally:
        starting = False
        if stack is not None:
            stack.stop()
        shutil.rmtree(s3_dir, ignore_errors=True)  # moto's state is gone too
    return 0

"""``upflow dev``: S3 + moto server + resources + S3 events + ``chalice local`` + queue pump + web page.

``s3="seaweed"``: S3 is SeaweedFS (``upflow.local.seaweed``: objects on disk,
SigV4, expiry and checksums enforced, ranged reads), with its "Object Created"
events put on moto's EventBridge by ``upflow.local.s3events``; DynamoDB, SQS
and EventBridge are moto. ``s3="moto"`` keeps S3 on moto too (objects in
memory, its own EventBridge notifications, no signature checks). ``DEFAULT_S3``
says which one ``upflow dev`` and the test suite run.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import boto3

from upflow.build import REPO_ROOT
from upflow.definition import UPLOADS_PREFIX, Limits, ResourceNames, names_for
from upflow.local.processes import (
    LOCAL_CREDENTIALS,
    Child,
    aws_env,
    free_port,
    stack_env,
    start_chalice_local,
    start_moto,
)
from upflow.local.resources import create_stack
from upflow.local.s3events import PROBE_NAME

WEB_DIST = REPO_ROOT / "web" / "dist"
S3Server = Literal["seaweed", "moto"]
S3_SERVERS: tuple[S3Server, ...] = ("seaweed", "moto")
DEFAULT_S3: S3Server = "moto"


@dataclass
class LocalStack:
    endpoint: str  # moto: DynamoDB, SQS, EventBridge (and S3 when s3 == "moto")
    api_url: str
    names: ResourceNames
    env: dict[str, str]
    web_url: str | None = None
    children: list[Child] = field(default_factory=list)
    chunk_workers: int = 2
    log_dir: Path | None = None
    s3: S3Server = "moto"
    s3_endpoint: str = ""  # where S3 requests and presigned URLs go
    s3_filer: str = ""  # SeaweedFS's filer (host:port.grpcPort), whose log s3-events follows
    _web: Any = None
    _scratch: Path | None = None  # removed on stop()

    def pause_chunk_workers(self) -> None:
        """Stop the chunk pump (messages wait on the queue, as with a throttled Lambda)."""
        self._stop_children("pump-chunks")

    def pause_processing(self) -> None:
        """Stop every pump, planner included: S3 events wait on their queue and nothing
        but uploads runs (for benchmarks of the upload path alone)."""
        self._stop_children("pump-")

    def _stop_children(self, name_prefix: str) -> None:
        for child in [c for c in self.children if c.name.startswith(name_prefix)]:
            child.stop()
            self.children.remove(child)

    def resume_chunk_workers(self) -> None:
        if not any(c.name.startswith("pump-chunks") for c in self.children):
            self.children.extend(start_pump(self.env, self.chunk_workers, self.log_dir, roles=("chunks",)))

    def pid_of(self, name: str) -> int:
        """The process id of the child named ``name`` ("moto", "chalice local", …)."""
        return next(child.process.pid for child in self.children if child.name == name)

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
        if self._web is not None:
            self._web.close()
            self._web = None
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


def start_pump(
    env: Mapping[str, str],
    chunk_workers: int,
    log_dir: Path | None,
    roles: tuple[str, ...] = ("events", "chunks", "reconciler"),
) -> list[Child]:
    workers = (
        ([("events", 0)] if "events" in roles else [])
        + ([("chunks", index) for index in range(chunk_workers)] if "chunks" in roles else [])
        + ([("reconciler", 0)] if "reconciler" in roles else [])
    )
    return [
        Child(
            f"pump-{role}-{index}",
            [sys.executable, "-m", "upflow.local.pump", "--role", role],
            env,
            log_path=(log_dir / f"pump-{role}-{index}.log") if log_dir else None,
        )
        for role, index in workers
    ]


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
    )
    try:
        s3 = stack.boto3_client("s3")
        deadline = time.monotonic() + timeout
        while True:
            if not child.alive():
                raise RuntimeError(f"s3-events exited with code {child.process.returncode} (see its log)")
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
) -> LocalStack:
    """Start everything; on any failure, stop what was started and re-raise.

    ``s3="seaweed"`` keeps its objects in ``s3_dir`` (default: a temp dir,
    removed by ``stop()``) and serves S3 on ``s3_port`` (default: a free port).
    """
    if s3 not in S3_SERVERS:
        raise ValueError(f"s3 must be one of {S3_SERVERS}, not {s3!r}")
    names = names_for(stack_name)
    limits = Limits()
    web_origin = f"http://{host}:{web_port}" if web_port else "*"
    children: list[Child] = []
    scratch: Path | None = None
    if log_dir:
        log_dir.mkdir(parents=True, exist_ok=True)
    try:
        since_ns = time.time_ns()
        moto, endpoint = start_moto(host, moto_port, log_path=log_dir / "moto.log" if log_dir else None)
        children.append(moto)
        s3_endpoint = endpoint
        seaweed: Any = None
        if s3 == "seaweed":
            if s3_dir is None:
                scratch = s3_dir = Path(tempfile.mkdtemp(prefix="upflow-s3-"))
            seaweed = start_seaweed_s3(s3_dir, log_dir, s3_port)
            children.append(seaweed.child)
            s3_endpoint = seaweed.endpoint
        app_env = {
            **names.as_env(),
            "UPFLOW_TOKEN_SECRET": secrets.token_urlsafe(32),
            "UPFLOW_WEB_ORIGIN": web_origin,
            **(extra_env or {}),
        }
        env = stack_env(endpoint, app_env, s3_endpoint)
        stack = LocalStack(
            endpoint=endpoint,
            api_url="",
            names=names,
            env=env,
            children=children,
            chunk_workers=chunk_workers,
            log_dir=log_dir,
            s3=s3,
            s3_endpoint=s3_endpoint,
            s3_filer=seaweed.filer_address if seaweed is not None else "",
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
        )
        if seaweed is not None:
            assert s3_dir is not None
            ready = s3_dir / "s3-events.ready"
            ready.unlink(missing_ok=True)
            children.append(start_s3_events(stack, seaweed.filer_address, since_ns, ready))
        # Only now may uploads start: every object they create has its event.
        api, api_url = start_chalice_local(
            host, api_port, env, log_path=log_dir / "api.log" if log_dir else None
        )
        children.append(api)
        stack.api_url = api_url
        children.extend(start_pump(env, chunk_workers, log_dir))
        if web_port and serve_page:
            from upflow.local.webserver import serve_web

            stack._web = serve_web(WEB_DIST, host, web_port, api_url)
            stack.web_url = stack._web.url
        stack._scratch = scratch
        return stack
    except BaseException:
        for child in reversed(children):
            child.stop()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        raise


def run_dev(
    moto_port: int = 5000,
    api_port: int = 8000,
    web_port: int = 8080,
    host: str = "127.0.0.1",
    chunk_workers: int = 2,
    s3: S3Server | None = None,
    s3_port: int = 8333,
) -> int:
    """Run the local stack until Ctrl-C or SIGTERM; stop every child on the way out.

    Logs go to ``.upflow/logs``; SeaweedFS keeps its objects in ``.upflow/s3``, which
    lives as long as the stack (moto's state does too).
    """
    if moto_port == 0:
        moto_port = free_port(host)
    work_dir = REPO_ROOT / ".upflow"
    log_dir = work_dir / "logs"
    s3_dir = work_dir / "s3"
    shutil.rmtree(s3_dir, ignore_errors=True)
    serve_page = (WEB_DIST / "index.html").exists()
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
    )
    stopped = threading.Event()

    def stop(_signum: int, _frame: Any) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if stack.s3 == "seaweed":
        print(f"S3 (SeaweedFS):    {stack.s3_endpoint}   objects in {s3_dir}")
        print(f"local AWS (moto):  {stack.endpoint}   DynamoDB, SQS, EventBridge")
    else:
        print(f"local AWS (moto):  {stack.endpoint}   S3, DynamoDB, SQS, EventBridge")
    print(f"API:               {stack.api_url}")
    if stack.web_url:
        print(f"web page:          {stack.web_url}")
    else:
        print("web page:          not built (run `make web`)")
    print(f"logs:              {log_dir}")
    print("Ctrl-C stops everything.", flush=True)
    try:
        while not stopped.wait(1.0):
            dead = [child.name for child in stack.children if not child.alive()]
            if dead:
                print(f"stopping: {', '.join(dead)} exited (see {log_dir})", file=sys.stderr)
                return 1
    finally:
        stack.stop()
        shutil.rmtree(s3_dir, ignore_errors=True)  # moto's state is gone too
    return 0

"""``upflow dev``: moto server + resources + ``chalice local`` + queue pump + web page."""

from __future__ import annotations

import secrets
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from upflow.build import REPO_ROOT
from upflow.definition import Limits, ResourceNames, names_for
from upflow.local.processes import (
    LOCAL_CREDENTIALS,
    Child,
    free_port,
    stack_env,
    start_chalice_local,
    start_moto,
)
from upflow.local.resources import create_stack

WEB_DIST = REPO_ROOT / "web" / "dist"


@dataclass
class LocalStack:
    endpoint: str
    api_url: str
    names: ResourceNames
    env: dict[str, str]
    web_url: str | None = None
    children: list[Child] = field(default_factory=list)
    chunk_workers: int = 2
    log_dir: Path | None = None
    _web: Any = None

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

    def boto3_client(self, service: str) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint,
            region_name=LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"],
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=LOCAL_CREDENTIALS["AWS_SESSION_TOKEN"],
        )

    def stop(self) -> None:
        if self._web is not None:
            self._web.close()
            self._web = None
        for child in reversed(self.children):
            child.stop()
        self.children.clear()


def start_pump(
    env: Mapping[str, str],
    chunk_workers: int,
    log_dir: Path | None,
    roles: tuple[str, ...] = ("events", "chunks"),
) -> list[Child]:
    workers = ([("events", 0)] if "events" in roles else []) + (
        [("chunks", index) for index in range(chunk_workers)] if "chunks" in roles else []
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
) -> LocalStack:
    """Start everything; on any failure, stop what was started and re-raise."""
    names = names_for(stack_name)
    limits = Limits()
    web_origin = f"http://{host}:{web_port}" if web_port else "*"
    children: list[Child] = []
    if log_dir:
        log_dir.mkdir(parents=True, exist_ok=True)
    try:
        moto, endpoint = start_moto(host, moto_port, log_path=log_dir / "moto.log" if log_dir else None)
        children.append(moto)
        app_env = {
            **names.as_env(),
            "UPFLOW_TOKEN_SECRET": secrets.token_urlsafe(32),
            "UPFLOW_WEB_ORIGIN": web_origin,
            **(extra_env or {}),
        }
        env = stack_env(endpoint, app_env)
        stack = LocalStack(
            endpoint=endpoint,
            api_url="",
            names=names,
            env=env,
            children=children,
            chunk_workers=chunk_workers,
            log_dir=log_dir,
        )
        create_stack(
            stack.boto3_client("s3"),
            stack.boto3_client("sqs"),
            stack.boto3_client("dynamodb"),
            stack.boto3_client("events"),
            names,
            limits,
            web_origins=[web_origin],
        )
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
        return stack
    except BaseException:
        for child in reversed(children):
            child.stop()
        raise


def run_dev(
    moto_port: int = 5000,
    api_port: int = 8000,
    web_port: int = 8080,
    host: str = "127.0.0.1",
    chunk_workers: int = 2,
) -> int:
    """Run the local stack until Ctrl-C or SIGTERM; stop every child on the way out."""
    if moto_port == 0:
        moto_port = free_port(host)
    log_dir = REPO_ROOT / ".upflow" / "logs"
    serve_page = (WEB_DIST / "index.html").exists()
    stack = start_stack(
        host, moto_port, api_port, web_port, chunk_workers, log_dir=log_dir, serve_page=serve_page
    )
    stopped = threading.Event()

    def stop(_signum: int, _frame: Any) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"local AWS (moto):  {stack.endpoint}")
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
    return 0

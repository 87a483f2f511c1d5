"""Fixtures for the Pulumi program's tests: a real (stub-app) Chalice build, a fake web
build, and a runner that executes ``infra.program.define`` under ``pulumi.runtime.set_mocks``.

Nothing here needs the network, an AWS account or the Pulumi CLI (gcc builds the stub's kernel).
"""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `infra` is not an installed package
    sys.path.insert(0, str(REPO_ROOT))

from infra.config import StackConfig  # noqa: E402
from infra.program import define  # noqa: E402
from upflow import build  # noqa: E402
from upflow.definition import CHUNK_HANDLER, PLANNER_HANDLER, RECONCILER_HANDLER, names_for  # noqa: E402

ACCOUNT = "123456789012"
REGION = "us-east-1"
TOKEN_SECRET = "test-token-secret"

# A stand-in for api/app.py with upflow's handler names. `chalice package` of it needs no
# network (no requirements), yet produces the same template shape as the real app.
STUB_APP = f"""
from chalice import Chalice

app = Chalice(app_name="upflow")


@app.route("/health")
def health():
    return {{"status": "ok"}}


@app.route("/uploads", methods=["POST"], cors=True)
def initiate():
    return {{}}


@app.route("/uploads/{{upload_id}}", methods=["GET", "DELETE"], cors=True)
def upload(upload_id):
    return {{}}


@app.on_sqs_message(queue="upflow-local-events", batch_size=1)
def {PLANNER_HANDLER}(event):
    return None


@app.on_sqs_message(queue="upflow-local-chunks", batch_size=1)
def {CHUNK_HANDLER}(event):
    return None


@app.lambda_function(name="{RECONCILER_HANDLER}")
def {RECONCILER_HANDLER}(event, context):
    return {{}}
"""


@pytest.fixture(scope="session")
def stub_api(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("stub-api")
    (project / ".chalice").mkdir()
    (project / ".chalice" / "config.json").write_text(
        json.dumps(
            {
                "version": "2.0",
                "app_name": "upflow",
                "stages": {"dev": {"api_gateway_stage": "api"}},
            }
        )
    )
    (project / "app.py").write_text(STUB_APP)
    (project / "requirements.txt").write_text("")
    return project


@pytest.fixture(scope="session")
def chalice_build(stub_api: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sam.json + deployment.zip (x86_64), made by upflow.build's own `chalice package` step.

    No repo module is vendored (the stub imports none); the row kernel is, as infra checks it.
    """
    return build.package(tmp_path_factory.mktemp("chalice-build"), api_dir=stub_api, shipped=())


# e_machine of each architecture, at offset 18 of an ELF header (little-endian).
def elf_header(arch: str) -> bytes:
    machine = build.ARCHITECTURES[arch].elf_machine
    return b"\x7fELF\x02\x01\x01" + bytes(11) + machine.to_bytes(2, "little") + bytes(44)


def retarget(source: Path, dest: Path, *, template: str | None = None, kernel: str | None = None) -> Path:
    """A copy of the build in ``source`` whose template and/or row kernel claim another architecture.

    ``kernel="none"`` drops the kernel from the zip. Saves needing a cross compiler in infra tests.
    """
    shutil.copytree(source, dest)
    if template is not None:
        sam = json.loads((dest / build.TEMPLATE_NAME).read_text())
        for resource in sam["Resources"].values():
            if resource["Type"] == "AWS::Serverless::Function":
                resource["Properties"]["Architectures"] = [template]
        (dest / build.TEMPLATE_NAME).write_text(json.dumps(sam))
    if kernel is not None:
        with (
            zipfile.ZipFile(source / build.ZIP_NAME) as old,
            zipfile.ZipFile(dest / build.ZIP_NAME, "w") as new,
        ):
            for info in old.infolist():
                if info.filename != build.KERNEL_ENTRY:
                    new.writestr(info, old.read(info))
            if kernel != "none":
                new.writestr(build.KERNEL_ENTRY, elf_header(kernel))
    return dest


@pytest.fixture(scope="session")
def retargeted() -> Callable[..., Path]:
    """:func:`retarget`, for the tests (a conftest is not importable by name)."""
    return retarget


@pytest.fixture(scope="session")
def arm64_build(chalice_build: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stub build as `make package LAMBDA_ARCH=arm64` would make it (template and kernel arm64)."""
    dest = tmp_path_factory.mktemp("arm64") / "build"
    return retarget(chalice_build, dest, template="arm64", kernel="arm64")


@pytest.fixture(scope="session")
def web_dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("web-dist")
    (dist / "assets").mkdir()
    (dist / "index.html").write_text("<!doctype html><title>upflow</title>")
    (dist / "assets" / "index-3f2a1b.js").write_text("console.log('upflow')")
    (dist / "assets" / "index-3f2a1b.css").write_text("body{}")
    (dist / "favicon.svg").write_text("<svg/>")
    (dist / "config.json").write_text('{"apiUrl": "http://localhost:8000"}')  # a dev leftover
    return dist


@pytest.fixture(scope="session")
def make_config(chalice_build: Path, web_dist: Path) -> Callable[..., StackConfig]:
    def make(**overrides: Any) -> StackConfig:
        values: dict[str, Any] = {
            "names": names_for("test", "abc"),
            "token_secret": pulumi.Output.secret(TOKEN_SECRET),
            "region": REGION,
            "build_dir": chalice_build,
            "web_dist": web_dist,
        }
        values.update(overrides)
        return StackConfig(**values)

    return make


# --- the mock engine ---------------------------------------------------------


# How the mock monitor hands a secret input to new_resource: {SECRET_SIG: SECRET_MARK, "value": v}.
SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRET_MARK = "1b47061264138c4ac30d75fd1eb44270"


def unsecret(value: Any) -> Any:
    """``value`` with every secret wrapper replaced by its plain content."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_MARK:
            return unsecret(value["value"])
        return {key: unsecret(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unsecret(item) for item in value]
    return value


@dataclass(frozen=True)
class Res:
    typ: str
    name: str
    inputs: dict[str, Any]  # camelCase, secrets unwrapped
    secret_inputs: frozenset[str] = frozenset()  # top-level inputs that arrived as secrets

    def json(self, key: str) -> Any:
        """An input holding a JSON document (policies, patterns, swagger), decoded."""
        return json.loads(self.inputs[key])


@dataclass
class StackRun:
    resources: list[Res]
    outputs: dict[str, Any]
    state: dict[str, dict[str, Any]] = field(default_factory=dict)  # name → mocked state

    def of_type(self, typ: str) -> list[Res]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str, name: str | None = None) -> Res:
        found = [r for r in self.of_type(typ) if name is None or r.name == name]
        assert len(found) == 1, f"expected one {typ} {name or ''}, found {[r.name for r in found]}"
        return found[0]


def _computed(typ: str, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(id, extra state) the provider would compute for the resource types the program reads."""
    if typ == "aws:s3/bucket:Bucket":
        bucket = inputs["bucket"]
        return bucket, {
            "arn": f"arn:aws:s3:::{bucket}",
            "bucketRegionalDomainName": f"{bucket}.s3.{REGION}.amazonaws.com",
        }
    if typ == "aws:sqs/queue:Queue":
        queue = inputs["name"]
        url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{queue}"
        return url, {"arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}", "url": url}
    if typ == "aws:dynamodb/table:Table":
        return inputs["name"], {"arn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{inputs['name']}"}
    if typ == "aws:lambda/function:Function":
        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{inputs['name']}"
        invoke = f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{arn}/invocations"
        return inputs["name"], {"arn": arn, "invokeArn": invoke}
    if typ == "aws:cloudwatch/logGroup:LogGroup":
        return inputs["name"], {"arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{inputs['name']}"}
    if typ == "aws:sns/topic:Topic":
        return f"arn:aws:sns:{REGION}:{ACCOUNT}:{inputs['name']}", {
            "arn": f"arn:aws:sns:{REGION}:{ACCOUNT}:{inputs['name']}"
        }
    if typ == "aws:cloudwatch/eventRule:EventRule":
        return inputs["name"], {"arn": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{inputs['name']}"}
    if typ == "aws:iam/role:Role":
        return f"{name}-role", {"arn": f"arn:aws:iam::{ACCOUNT}:role/{name}", "name": name}
    if typ == "aws:apigateway/restApi:RestApi":
        return "a1b2c3", {
            "executionArn": f"arn:aws:execute-api:{REGION}:{ACCOUNT}:a1b2c3",
            "rootResourceId": "root",
        }
    if typ == "aws:apigateway/stage:Stage":
        return f"{name}-id", {
            "invokeUrl": f"https://a1b2c3.execute-api.{REGION}.amazonaws.com/{inputs['stageName']}"
        }
    if typ == "aws:cloudfront/distribution:Distribution":
        return "E2EXAMPLE", {
            "arn": f"arn:aws:cloudfront::{ACCOUNT}:distribution/E2EXAMPLE",
            "domainName": "d111111abcdef8.cloudfront.net",
        }
    return f"{name}-id", {}


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[Res] = []
        self.state: dict[str, dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        resource_id, extra = _computed(args.typ, args.name, args.inputs)
        secret = frozenset(
            key
            for key, value in args.inputs.items()
            if isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_MARK
        )
        self.resources.append(Res(args.typ, args.name, unsecret(dict(args.inputs)), secret))
        state = {**args.inputs, **extra}
        self.state[args.name] = state
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        raise AssertionError(f"the program must not call data sources: {args.token}")


def run_stack(config: StackConfig) -> StackRun:
    """Run the whole program under fresh mocks; return every resource and the resolved outputs."""
    mocks = RecordingMocks()
    pulumi.runtime.settings.reset_options()  # a fresh root stack for every run
    pulumi.runtime.set_mocks(mocks, project="upflow", stack=config.names.stack, preview=False)
    outputs: dict[str, Any] = {}

    def program() -> pulumi.Output[None]:
        return pulumi.Output.all(**define(config)).apply(outputs.update)

    # pulumi.runtime.test runs the program and waits for every registration to finish.
    pulumi.runtime.test(program)()
    return StackRun(mocks.resources, outputs, mocks.state)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """pulumi_aws warns about its own deprecated V2 classes when a module is first loaded."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.filterwarnings("ignore::DeprecationWarning:pulumi_aws"))


@pytest.fixture(scope="module")
def stack_runner() -> Iterator[Callable[[StackConfig], StackRun]]:
    """``run_stack``, with the global Pulumi settings reset when the module is done."""
    yield run_stack
    pulumi.runtime.settings.reset_options()

"""`make package` (python -m upflow.build) of the real api/ makes a zip that holds only what runs in
Lambda, and works there.

The zip is opened and every entry checked against an explicit allow-list; then it is unzipped and
imported by a bare interpreter (-S -s: no site-packages) whose path holds only the unzipped folder
plus boto3 and its dependencies -- what the Lambda Python runtime provides -- and Powertools with the
X-Ray SDK -- what the AWS-published Powertools layer provides. An arm64 build (Debian's
aarch64 cross gcc) is checked for its architecture. Chalice caches the Lambda wheels of
api/requirements.txt (none today) in api/.chalice/deployments.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `infra` is not an installed package
    sys.path.insert(0, str(REPO_ROOT))

from infra.chalice_artifacts import (  # noqa: E402
    kernel_architecture,
    read_artifacts,
    require_architecture,
    rewrite_swagger,
)
from upflow import build  # noqa: E402
from upflow.definition import (  # noqa: E402
    API_HANDLER,
    CHUNK_HANDLER,
    FUNCTIONS,
    PLANNER_HANDLER,
    RECONCILER_HANDLER,
)

MAX_ZIP_BYTES = 2 * 1000 * 1000  # the target: 2 MB
KERNEL = "upflow/core/_scan.so"
# Everything the zip may hold. Repo code: the Chalice app, the processor, and of upflow only
# definition, core (without its build code), the AWS adapters and the server side.
ALLOWED = (
    r"app\.py",
    r"chalicelib/[\w/]+\.py",
    r"processor/\w+\.py",
    r"upflow/__init__\.py",
    r"upflow/definition\.py",
    r"upflow/core/(?!kernel_build\.py$)\w+\.py",
    re.escape(KERNEL),
    r"upflow/(aws|server)/\w+\.py",
    # Chalice's own runtime module, which `chalice package` adds to every zip.
    r"chalice/(__init__|app)\.py",
)
# Third-party packages of api/requirements.txt, by distribution: their import names. Lambda's
# runtime brings boto3, so there are none; a new one must be added here consciously (and its
# import and dist-info folders are then allowed).
THIRD_PARTY: dict[str, tuple[str, ...]] = {}
# What must never ship (the allow-list already refuses it; named here so a widened allow-list
# still cannot let it in).
FORBIDDEN = (
    "upflow/client/",  # CLI, uploader, HTTP API client, journal, progress
    "upflow/local/",  # the local stack
    "upflow/testing/",  # testing helpers
    "upflow/build.py",  # build code
    "upflow/core/kernel_build.py",
    "upflow/core/scan.c",
    "tests/",
    "bench/",
    "infra/",
    "web/",
    "api/",
    "vendor/",
)
# What the Lambda Python runtime ships besides the standard library.
RUNTIME_PACKAGES = ("boto3", "botocore", "jmespath", "s3transfer", "dateutil", "urllib3", "six")
# What the AWS-published Powertools for AWS Lambda (Python) layer adds (/opt/python in Lambda;
# infra attaches it to every function): Powertools, and the X-Ray SDK its Tracer imports. The
# zip never holds them (THIRD_PARTY stays empty).
LAYER_PACKAGES = ("aws_lambda_powertools", "aws_xray_sdk", "wrapt", "typing_extensions")
# Every route of docs/design.md, as API Gateway resource paths.
ROUTES = {
    "/health": {"get"},
    "/uploads": {"post"},
    "/uploads/{upload_id}/parts": {"post", "get"},
    "/uploads/{upload_id}/complete": {"post"},
    "/uploads/{upload_id}/token": {"post"},
    "/uploads/{upload_id}": {"get", "delete"},
    "/uploads/{upload_id}/errors": {"get"},
    "/uploads/{upload_id}/results": {"get"},
    "/uploads/{upload_id}/retry": {"post"},
    "/preview": {"post"},
}
INVOKE = (
    "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/"
    "arn:aws:lambda:us-east-1:123456789012:function:upflow-test-api-handler/invocations"
)


def allowed_patterns() -> list[re.Pattern[str]]:
    patterns = list(ALLOWED)
    for dist, modules in THIRD_PARTY.items():
        patterns.append(re.escape(dist.replace("-", "_")) + r"-[^/]+\.dist-info/.+")
        patterns.extend(re.escape(module) + r"(/.+|\.py)" for module in modules)
    return [re.compile(pattern) for pattern in patterns]


def run_build(outdir: Path, *args: str) -> Path:
    result = subprocess.run(
        [sys.executable, "-m", "upflow.build", str(outdir), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert result.returncode == 0, f"python -m upflow.build failed:\n{result.stdout}\n{result.stderr}"
    assert "Could not install dependencies" not in result.stdout + result.stderr, (
        "chalice could not find Lambda-compatible wheels:\n" + result.stdout + result.stderr
    )
    return outdir


@pytest.fixture(scope="session")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_build(tmp_path_factory.mktemp("chalice-package"))


@pytest.fixture(scope="session")
def zip_names(package_dir: Path) -> list[str]:
    with zipfile.ZipFile(package_dir / "deployment.zip") as archive:
        return [name for name in archive.namelist() if not name.endswith("/")]


@pytest.fixture(scope="session")
def unzipped(package_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("lambda-root")
    with zipfile.ZipFile(package_dir / "deployment.zip") as archive:
        archive.extractall(target)
    return target


def linked_packages(folder: Path, names: tuple[str, ...]) -> Path:
    """``folder`` holding only the packages ``names`` (symlinked from this venv)."""
    for name in names:
        module = __import__(name)
        source = Path(module.__file__ or "")
        source = source.parent if source.name == "__init__.py" else source
        (folder / source.name).symlink_to(source, target_is_directory=source.is_dir())
    return folder


@pytest.fixture(scope="session")
def runtime_libs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding only boto3 and its dependencies."""
    return linked_packages(tmp_path_factory.mktemp("lambda-runtime-libs"), RUNTIME_PACKAGES)


@pytest.fixture(scope="session")
def powertools_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding only what the Powertools layer brings."""
    return linked_packages(tmp_path_factory.mktemp("powertools-layer"), LAYER_PACKAGES)


def test_zip_holds_nothing_but_the_allow_list(zip_names):
    patterns = allowed_patterns()
    unexpected = [name for name in zip_names if not any(p.fullmatch(name) for p in patterns)]
    assert unexpected == [], f"not allowed in the Lambda zip: {unexpected}"
    forbidden = [name for name in zip_names if name.startswith(FORBIDDEN) or name.endswith((".c", ".pyc"))]
    assert forbidden == []
    assert not any("__pycache__" in name or "/tests/" in name or "/test_" in name for name in zip_names)


def test_zip_is_small(package_dir):
    size = (package_dir / "deployment.zip").stat().st_size
    assert size <= MAX_ZIP_BYTES, f"deployment.zip is {size:,} bytes"


def test_zip_holds_every_shipped_module_and_the_kernel(zip_names):
    """The allow-list is not vacuous: every repo module meant for Lambda is there."""
    expected = {"app.py", KERNEL, *build.shipped_files()}
    assert expected <= set(zip_names), sorted(expected - set(zip_names))
    repo_entries = {name for name in zip_names if name.startswith(("upflow/", "processor/"))}
    assert repo_entries == {KERNEL, *build.shipped_files()}


def test_runtime_requirements_are_the_allow_lists():
    lines = (REPO_ROOT / "api" / "requirements.txt").read_text().splitlines()
    requirements = [line.split("#", 1)[0].strip() for line in lines]
    names = {re.split(r"[=<>~!\[; ]", line, maxsplit=1)[0].lower() for line in requirements if line}
    assert names == set(THIRD_PARTY)


def test_the_zip_says_its_architecture(package_dir):
    artifacts = read_artifacts(package_dir)
    assert artifacts.architecture == "x86_64"
    assert kernel_architecture(artifacts.zip_path) == "x86_64"
    require_architecture(artifacts, "x86_64")


IMPORT_SCRIPT = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys
    root = sys.argv[1]
    import app
    import processor, upflow
    modules = ["app"]
    for package in (processor, upflow):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name == "upflow.core._scan":  # the kernel: a ctypes library, not a module
                continue
            importlib.import_module(info.name)
            modules.append(info.name)
    loaded = {name: getattr(sys.modules[name], "__file__", None) or "" for name in modules}
    outside = {n: f for n, f in loaded.items() if not f.startswith(root)}
    handlers = {name: callable(getattr(app, name)) for name in ("plan_object", "process_chunks", "reconcile")}
    from upflow.core import kernel
    lib = kernel.load()
    third_party = sorted({name.split(".")[0] for name in sys.modules if not name.startswith("__")}
                         - set(sys.stdlib_module_names) - {"app", "processor", "upflow", "chalice"})
    print(json.dumps({"outside": outside, "handlers": handlers, "app_name": app.app.app_name,
                      "site": [p for p in sys.path if "site-packages" in p], "modules": modules,
                      "third_party": third_party, "kernel": str(lib.path) if lib else None}))
    """
)


def test_app_and_every_shipped_module_import_from_the_zip_alone(unzipped, runtime_libs, powertools_layer):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join([str(unzipped), str(runtime_libs), str(powertools_layer)]),
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "UPFLOW_STACK": "test",
        "UPFLOW_TOKEN_SECRET": "package-test",
    }
    result = subprocess.run(
        [sys.executable, "-S", "-s", "-c", IMPORT_SCRIPT, str(unzipped)],
        cwd=unzipped,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["site"] == []  # nothing from any site-packages
    assert report["outside"] == {}  # every module came from the zip
    assert {"processor.worker", "processor.reconciler", "upflow.server.wiring", "upflow.core.kernel"} <= set(
        report["modules"]
    )
    # Beyond the standard library, only what the Lambda runtime provides (boto3 and its
    # dependencies) and the Powertools layer.
    assert set(report["third_party"]) <= set(RUNTIME_PACKAGES) | set(LAYER_PACKAGES)
    assert "aws_lambda_powertools" in report["third_party"]
    assert report["handlers"] == {"plan_object": True, "process_chunks": True, RECONCILER_HANDLER: True}
    assert report["app_name"] == "upflow"
    assert report["kernel"] == str(unzipped / "upflow" / "core" / "_scan.so")  # the zip's own, loaded


def test_template_matches_the_definition_and_the_design(package_dir):
    """What infra reads from the real template: the four handlers and every route."""
    artifacts = read_artifacts(package_dir)
    assert set(artifacts.functions) == set(FUNCTIONS)
    assert artifacts.functions[API_HANDLER].handler == "app.app"
    assert artifacts.functions[PLANNER_HANDLER].handler == f"app.{PLANNER_HANDLER}"
    assert artifacts.functions[CHUNK_HANDLER].handler == f"app.{CHUNK_HANDLER}"
    # @app.lambda_function: no event source in the template (infra schedules it).
    assert artifacts.functions[RECONCILER_HANDLER].handler == f"app.{RECONCILER_HANDLER}"
    assert len(artifacts.functions) == 4
    assert artifacts.stage_name == "api"
    body = rewrite_swagger(
        artifacts.swagger,
        {artifacts.functions[API_HANDLER].logical_id: INVOKE},
        allow_origin="https://web.example",
    )
    assert "Fn::" not in json.dumps(body)
    routes = {path: {method for method in ops if method != "options"} for path, ops in body["paths"].items()}
    assert routes == ROUTES
    for ops in body["paths"].values():
        for method, op in ops.items():
            if method != "options":
                assert op["x-amazon-apigateway-integration"]["uri"] == INVOKE


def test_arm64_build_has_an_arm64_kernel_and_functions(tmp_path, zip_names):
    """`make package LAMBDA_ARCH=arm64`: Debian's aarch64 cross gcc (.ci/run installs it)."""
    arm = build.ARCHITECTURES["arm64"]
    if shutil.which(arm.gcc) is None:
        message = f"{arm.gcc} missing: apt-get install {arm.debian_package}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    outdir = run_build(tmp_path / "arm64", "--architecture", "arm64")
    artifacts = read_artifacts(outdir)
    assert artifacts.architecture == "arm64"
    assert kernel_architecture(artifacts.zip_path) == "arm64"
    require_architecture(artifacts, "arm64")
    with zipfile.ZipFile(artifacts.zip_path) as archive:
        kernel = archive.read(KERNEL)
        assert sorted(name for name in archive.namelist() if not name.endswith("/")) == sorted(zip_names)
    readelf = shutil.which("readelf")
    if readelf:  # binutils' readelf reads any architecture's ELF: no undefined dynamic symbol
        library = tmp_path / "_scan.so"
        library.write_bytes(kernel)
        symbols = subprocess.run(
            [readelf, "--dyn-syms", "-W", str(library)], capture_output=True, text=True, check=True
        ).stdout
        undefined = [line for line in symbols.splitlines() if " UND " in line and line.split()[-1] != "UND"]
        assert undefined == []

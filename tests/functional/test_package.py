"""`make package` (python -m upflow.build) of the real api/ makes a zip that works in Lambda.

The zip is unzipped and imported by a bare interpreter (-S -s: no site-packages) whose
path holds only the unzipped folder plus boto3 and its dependencies -- what the Lambda
Python runtime provides. The first run downloads Lambda-compatible wheels of
api/requirements.txt from PyPI; chalice caches them in api/.chalice/deployments.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `infra` is not an installed package
    sys.path.insert(0, str(REPO_ROOT))

from infra.chalice_artifacts import read_artifacts, rewrite_swagger  # noqa: E402
from upflow.definition import API_HANDLER, CHUNK_HANDLER, FUNCTIONS, PLANNER_HANDLER  # noqa: E402

# What the Lambda Python runtime ships besides the standard library.
RUNTIME_PACKAGES = ("boto3", "botocore", "jmespath", "s3transfer", "dateutil", "urllib3", "six")
# Every route of docs/design.md, as API Gateway resource paths.
ROUTES = {
    "/health": {"get"},
    "/uploads": {"post"},
    "/uploads/{upload_id}/parts": {"post", "get"},
    "/uploads/{upload_id}/complete": {"post"},
    "/uploads/{upload_id}": {"get", "delete"},
    "/uploads/{upload_id}/errors": {"get"},
    "/uploads/{upload_id}/retry": {"post"},
    "/preview": {"post"},
}
INVOKE = (
    "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/"
    "arn:aws:lambda:us-east-1:123456789012:function:upflow-test-api-handler/invocations"
)


@pytest.fixture(scope="session")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("chalice-package")
    result = subprocess.run(
        [sys.executable, "-m", "upflow.build", str(outdir)],
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
def unzipped(package_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("lambda-root")
    with zipfile.ZipFile(package_dir / "deployment.zip") as archive:
        archive.extractall(target)
    return target


@pytest.fixture(scope="session")
def runtime_libs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding only boto3 and its dependencies (symlinked from this venv)."""
    libs = tmp_path_factory.mktemp("lambda-runtime-libs")
    for name in RUNTIME_PACKAGES:
        module = __import__(name)
        source = Path(module.__file__ or "")
        source = source.parent if source.name == "__init__.py" else source
        (libs / source.name).symlink_to(source, target_is_directory=source.is_dir())
    return libs


def test_zip_holds_app_vendored_packages_and_requirements(unzipped):
    names = {p.relative_to(unzipped).as_posix() for p in unzipped.rglob("*")}
    assert "app.py" in names
    for required in (
        "upflow/definition.py",
        "processor/planner.py",
        "processor/worker.py",
        "chalice/app.py",
        "numpy/__init__.py",
        "validate_docbr/__init__.py",
        "upflow/core/_scan.so",
    ):
        assert required in names, required
    assert not any("__pycache__" in name for name in names if name.startswith(("upflow/", "processor/")))


IMPORT_SCRIPT = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys
    root = sys.argv[1]
    import app
    import processor
    modules = ["app"]
    for info in pkgutil.walk_packages(processor.__path__, "processor."):
        importlib.import_module(info.name)
        modules.append(info.name)
    for name in ["upflow.definition", "upflow.server.uploads", "upflow.server.wiring", "upflow.core.fastpath",
                 "upflow.core.documents", "numpy", "validate_docbr"]:
        importlib.import_module(name)
        modules.append(name)
    loaded = {name: getattr(sys.modules[name], "__file__", None) or "" for name in modules}
    outside = {n: f for n, f in loaded.items() if not f.startswith(root)}
    handlers = {name: callable(getattr(app, name)) for name in ("plan_object", "process_chunks")}
    from upflow.core import kernel
    lib = kernel.load()
    print(json.dumps({"outside": outside, "handlers": handlers, "app_name": app.app.app_name,
                      "site": [p for p in sys.path if "site-packages" in p],
                      "kernel": str(lib.path) if lib else None}))
    """
)


def test_app_and_processor_import_from_the_zip_alone(unzipped, runtime_libs):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join([str(unzipped), str(runtime_libs)]),
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
    assert report["handlers"] == {"plan_object": True, "process_chunks": True}
    assert report["app_name"] == "upflow"
    assert report["kernel"] == str(unzipped / "upflow" / "core" / "_scan.so")  # the zip's own, loaded


def test_template_matches_the_definition_and_the_design(package_dir):
    """What infra reads from the real template: the three handlers and every route."""
    artifacts = read_artifacts(package_dir)
    assert set(artifacts.functions) == set(FUNCTIONS)
    assert artifacts.functions[API_HANDLER].handler == "app.app"
    assert artifacts.functions[PLANNER_HANDLER].handler == f"app.{PLANNER_HANDLER}"
    assert artifacts.functions[CHUNK_HANDLER].handler == f"app.{CHUNK_HANDLER}"
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

"""pyproject.toml installs a working CLI: `pip install` of the project into a fresh venv (no dev
dependencies, no extras), then `upflow --help` and `upflow check` on a small CSV.

The project's sources (pyproject.toml, upflow/, processor/) are copied to a temporary folder first,
so setuptools' in-tree build (build/, *.egg-info) never writes into the working tree. pip reaches
PyPI for the dependencies and the build backend; its cache keeps reruns fast.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
import venv
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "upflow", "processor")
# Never needed by the CLI: the server side's, the tests', the numpy path's (gone).
NOT_INSTALLED = ("boto3", "botocore", "chalice", "numpy", "validate_docbr", "moto", "pulumi")
CSV = "documento;valor\n529.982.247-25;10,50\n111.111.111-11;3,00\n"


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("install")
    source = root / "src"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", ".scan-*", "*.egg-info")
    for name in SOURCES:
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        elif path.is_file():
            shutil.copy2(path, source / name)
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", str(source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"pip install failed:\n{done.stdout}\n{done.stderr}"
    return env_dir


def run(env_dir: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_upflow_help(fresh_venv, tmp_path):
    done = run(fresh_venv, str(fresh_venv / "bin" / "upflow"), "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: upflow")
    for command in ("upload", "status", "abort", "report", "retry", "check"):
        assert command in done.stdout


def test_upflow_check_a_small_file(fresh_venv, tmp_path):
    data = tmp_path / "small.csv"
    data.write_text(CSV)
    upflow = str(fresh_venv / "bin" / "upflow")
    done = run(fresh_venv, upflow, "check", str(data), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["status"] == "completed_with_errors"
    assert (summary["rows_total"], summary["rows_valid"], summary["rows_invalid"]) == (2, 1, 1)
    assert summary["errors"] == {"invalid_document": 1}
    assert summary["amount_valid"] == "10.50"
    text = run(fresh_venv, upflow, "check", str(data), cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert re.search(r"rows_valid:\s+1\b", text.stdout)


def test_the_cli_comes_with_its_dependencies_only(fresh_venv, tmp_path):
    python = str(fresh_venv / "bin" / "python")
    probe = (
        "import importlib.util as u, json, sys; "
        "print(json.dumps([m for m in sys.argv[1:] if u.find_spec(m)]))"
    )
    done = run(fresh_venv, python, "-c", probe, "requests", *NOT_INSTALLED, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["requests"]
    installed = run(fresh_venv, python, "-c", "import upflow; print(upflow.__file__)", cwd=tmp_path)
    assert str(fresh_venv) in installed.stdout  # the installed copy, not the working tree
    check = run(fresh_venv, python, "-m", "pip", "check", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr


# --- pyproject.toml and the pinned requirements agree ------------------------------------


def _name(requirement: str) -> str:
    return re.split(r"[=<>~!\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-r"):
            continue
        assert "==" in line, f"{path.name}: {line} is not pinned"
        pins[_name(line)] = line.split("==", 1)[1].strip()
    return pins


def _declared(requirements: list[str]) -> dict[str, str]:
    return {_name(r): r for r in requirements if not r.startswith("upflow[")}


def test_requirements_pin_what_pyproject_declares():
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    runtime = _declared(project["dependencies"]) | _declared(project["optional-dependencies"]["server"])
    dev = _declared(project["optional-dependencies"]["dev"])
    pinned_runtime = _pins(REPO_ROOT / "requirements.txt")
    pinned_dev = _pins(REPO_ROOT / "requirements-dev.txt")
    assert set(pinned_runtime) == set(runtime)
    assert set(pinned_dev) == set(dev)
    for declared, pins in ((runtime, pinned_runtime), (dev, pinned_dev)):
        for name, requirement in declared.items():
            specifier = Requirement(requirement).specifier
            assert specifier.contains(pins[name], prereleases=True), (name, pins[name], str(specifier))
    assert "requests" in _declared(project["dependencies"])
    assert "numpy" not in pinned_runtime | pinned_dev  # no remaining code or test needs it

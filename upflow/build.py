"""``make package``: build the Chalice deployment artifacts the Pulumi program deploys.

Run as ``python -m upflow.build build/chalice``. It

1. stages the repo's ``upflow/`` and ``processor/`` packages into ``api/vendor/``
   (Chalice copies ``vendor/`` into the root of the deployment zip), deleting and
   recreating that folder each run and skipping ``__pycache__``, and compiles the row
   kernel (``upflow/core/scan.c``) fresh into it: the zip never carries a stale library.
   The folder is deleted again once ``chalice package`` has run (see
   ``remove_staged_vendor``);
2. runs ``chalice package <outdir>`` in ``api/``, which writes ``sam.json`` (the
   SAM template: function handlers, runtime, the API's swagger body) and
   ``deployment.zip`` (app.py, chalicelib, vendor and Lambda-compatible wheels of
   ``api/requirements.txt``) into ``<outdir>``.

``infra/`` reads exactly these two files. This module imports neither boto3 nor pulumi.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from upflow.core.kernel_build import LIBRARY_NAME, KernelBuildError
from upflow.core.kernel_build import build as build_kernel

REPO_ROOT = Path(__file__).resolve().parent.parent
API_DIR = REPO_ROOT / "api"
DEFAULT_OUTDIR = Path("build/chalice")
# Repo packages the Lambda code imports; staged as top-level packages of the zip.
VENDORED_PACKAGES: tuple[str, ...] = ("upflow", "processor")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*.so")
# The Chalice stage to package; `dev` is Chalice's default stage name.
STAGE_ENV = "UPFLOW_CHALICE_STAGE"
DEFAULT_STAGE = "dev"
TEMPLATE_NAME = "sam.json"
ZIP_NAME = "deployment.zip"
# `chalice package` builds a botocore session and refuses to run without a region.
# The template itself is region-neutral (it uses ${AWS::Region}), so any region works.
FALLBACK_REGION = "us-east-1"


class BuildError(RuntimeError):
    """The build could not produce the artifacts (the message says why)."""


def stage_vendor(
    api_dir: Path = API_DIR, repo_root: Path = REPO_ROOT, packages: Sequence[str] = VENDORED_PACKAGES
) -> Path:
    """Recreate ``<api_dir>/vendor`` holding a copy of each of ``packages``."""
    vendor = api_dir / "vendor"
    if vendor.exists():
        shutil.rmtree(vendor)
    vendor.mkdir(parents=True)
    for name in packages:
        source = repo_root / name
        if not source.is_dir():
            raise BuildError(f"package {name!r} not found at {source}")
        shutil.copytree(source, vendor / name, ignore=_IGNORE)
    if "upflow" in packages:
        try:
            build_kernel(vendor / "upflow" / "core" / LIBRARY_NAME)
        except KernelBuildError as error:
            raise BuildError(str(error)) from error
    return vendor


def remove_staged_vendor(api_dir: Path = API_DIR) -> bool:
    """Delete ``<api_dir>/vendor`` if a build left it; True if there was one.

    It must not outlive the build: ``chalice local`` puts ``vendor/`` on ``sys.path``,
    where its copy of ``upflow`` wins over the working tree's (an editable install is
    found only after ``sys.path``), so it would serve the code of the last package.
    """
    vendor = api_dir / "vendor"
    if not vendor.exists():
        return False
    shutil.rmtree(vendor)
    return True


def chalice_command() -> list[str]:
    """The ``chalice`` CLI of this interpreter's environment (never one from PATH)."""
    # Not resolved: a venv's bin/python is a symlink out of the venv.
    script = Path(sys.executable).parent / "chalice"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from chalice.cli import main; sys.exit(main())"]


def package(
    outdir: Path,
    *,
    api_dir: Path = API_DIR,
    repo_root: Path = REPO_ROOT,
    stage: str | None = None,
    packages: Sequence[str] = VENDORED_PACKAGES,
) -> Path:
    """Stage the vendor folder and run ``chalice package``; return the resolved ``outdir``."""
    if not (api_dir / "app.py").is_file():
        raise BuildError(f"no Chalice app at {api_dir / 'app.py'}")
    stage = stage or os.environ.get(STAGE_ENV) or DEFAULT_STAGE
    outdir = outdir.resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    for name in (TEMPLATE_NAME, ZIP_NAME):
        (outdir / name).unlink(missing_ok=True)
    env = dict(os.environ)
    if not (env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION")):
        env["AWS_DEFAULT_REGION"] = FALLBACK_REGION
    command = [*chalice_command(), "package", "--stage", stage, str(outdir)]
    try:
        stage_vendor(api_dir, repo_root, packages)
        result = subprocess.run(command, cwd=api_dir, env=env, check=False)
    finally:
        remove_staged_vendor(api_dir)
    if result.returncode != 0:
        raise BuildError(f"`{' '.join(command)}` failed with exit code {result.returncode}")
    missing = [name for name in (TEMPLATE_NAME, ZIP_NAME) if not (outdir / name).is_file()]
    if missing:
        raise BuildError(f"chalice package did not write {', '.join(missing)} into {outdir}")
    return outdir


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m upflow.build", description=__doc__.split("\n")[0])
    parser.add_argument(
        "outdir",
        nargs="?",
        type=Path,
        default=DEFAULT_OUTDIR,
        help=f"where sam.json and deployment.zip go (default {DEFAULT_OUTDIR})",
    )
    parser.add_argument(
        "--api-dir", type=Path, default=API_DIR, help="the Chalice project to package (default: api/)"
    )
    parser.add_argument(
        "--stage", default=None, help=f"Chalice stage (default ${STAGE_ENV} or {DEFAULT_STAGE!r})"
    )
    args = parser.parse_args(argv)
    try:
        outdir = package(args.outdir, api_dir=args.api_dir.resolve(), stage=args.stage)
    except BuildError as error:
        print(f"upflow.build: {error}", file=sys.stderr)
        return 1
    print(f"upflow.build: wrote {outdir / TEMPLATE_NAME} and {outdir / ZIP_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

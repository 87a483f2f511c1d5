"""``make package``: build the Lambda deployment artifacts the Pulumi program deploys.

Run as ``python -m upflow.build build/chalice [--architecture x86_64|arm64]``. It

1. stages a throwaway copy of the Chalice project (``api/app.py``, ``chalicelib/`` if any,
   ``requirements.txt``, ``.chalice/``) in a temporary folder, with the stage's
   ``lambda_architecture`` set to the chosen Lambda architecture, and in its ``vendor/``
   (Chalice copies ``vendor/`` into the root of the zip) exactly the repo modules that run
   in Lambda: :data:`SHIPPED` (``processor``, ``upflow/{core,aws,server}``,
   ``upflow/definition.py``), ``*.py`` files only and without :data:`BUILD_ONLY` -- no
   client, CLI, uploader, local stack, testing helpers, build code, C sources or caches;
2. compiles the row kernel (``upflow/core/scan.c``) fresh into that ``vendor/`` for the
   chosen architecture (Debian's cross gcc where the build machine is another one) and
   checks the library's ELF header says that architecture;
3. runs ``chalice package <outdir>`` there, which writes ``sam.json`` (the SAM template:
   function handlers, runtime, architecture, the API's swagger body) and
   ``deployment.zip`` (app.py, Chalice's runtime, vendor and Lambda-compatible wheels of
   ``api/requirements.txt``) into ``<outdir>``.

``api/`` itself is never written to (the wheel cache, ``api/.chalice/deployments``, is
shared), so ``chalice local`` keeps serving the working tree. ``infra/`` reads exactly the
two files and refuses a build whose architecture is not the stack's. This module imports
neither boto3 nor pulumi, and is not part of the zip.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
API_DIR = REPO_ROOT / "api"
DEFAULT_OUTDIR = Path("build/chalice")
# What runs in Lambda besides the Chalice app: repo paths (folders or files), copied into the
# zip's root. Only ``*.py`` files of the folders are taken.
SHIPPED: tuple[str, ...] = (
    "processor",
    "upflow/__init__.py",
    "upflow/definition.py",
    "upflow/core",
    "upflow/aws",
    "upflow/server",
)
# Build code inside a shipped folder: never in the zip.
BUILD_ONLY: frozenset[str] = frozenset({"upflow/core/kernel_build.py", "upflow/core/scan.c"})
# The compiled row kernel: where it goes in the zip (and where upflow.core.kernel loads it).
KERNEL_ENTRY = "upflow/core/_scan.so"
# The Chalice project files copied into the staging folder (vendor/ is built, never copied).
PROJECT_FILES: tuple[str, ...] = ("app.py", "requirements.txt")
PROJECT_TREES: tuple[str, ...] = ("chalicelib",)
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*.so")
# The Chalice stage to package; `dev` is Chalice's default stage name.
STAGE_ENV = "UPFLOW_CHALICE_STAGE"
DEFAULT_STAGE = "dev"
TEMPLATE_NAME = "sam.json"
ZIP_NAME = "deployment.zip"
# `chalice package` builds a botocore session and refuses to run without a region.
# The template itself is region-neutral (it uses ${AWS::Region}), so any region works.
FALLBACK_REGION = "us-east-1"


@dataclass(frozen=True)
class Architecture:
    """A Lambda instruction set architecture and how to compile the kernel for it."""

    name: str  # Lambda's name (the functions' ``architectures``, Chalice's lambda_architecture)
    machine: str  # ``platform.machine()`` of a Linux host of that architecture
    gnu_triplet: str  # prefix of Debian's (cross) gcc: ``<triplet>-gcc``
    elf_machine: int  # ``e_machine`` of an ELF file built for it

    @property
    def gcc(self) -> str:
        return f"{self.gnu_triplet}-gcc"

    @property
    def debian_package(self) -> str:
        """The Debian package that installs :attr:`gcc` (``gcc-aarch64-linux-gnu``)."""
        return f"gcc-{self.gnu_triplet.replace('_', '-')}"


ARCHITECTURES: Mapping[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture("x86_64", "x86_64", "x86_64-linux-gnu", 62),  # EM_X86_64
        Architecture("arm64", "aarch64", "aarch64-linux-gnu", 183),  # EM_AARCH64
    )
}
DEFAULT_ARCHITECTURE = "x86_64"


class BuildError(RuntimeError):
    """The build could not produce the artifacts (the message says why)."""


def architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise BuildError(
            f"unknown Lambda architecture {name!r}: use one of {', '.join(ARCHITECTURES)}"
        ) from None


def elf_architecture(header: bytes) -> str | None:
    """The Lambda architecture an ELF file (its first 20 bytes suffice) is built for, if any."""
    if len(header) < 20 or header[:4] != b"\x7fELF" or header[5] != 1:  # little-endian only
        return None
    machine = int.from_bytes(header[18:20], "little")
    return next((arch.name for arch in ARCHITECTURES.values() if arch.elf_machine == machine), None)


def kernel_compiler(arch: Architecture) -> str:
    """The gcc that builds for ``arch``: Debian's ``<triplet>-gcc`` (which the native gcc
    also provides), else plain ``gcc`` on a host of that architecture."""
    found = shutil.which(arch.gcc)
    if found is None and platform.machine() == arch.machine:
        found = shutil.which("gcc")
    if found is None:
        raise BuildError(
            f"the row kernel for Lambda {arch.name} is compiled with {arch.gcc}, which is not "
            f"installed: install Debian's {arch.debian_package} package "
            f"(apt-get install {arch.debian_package})"
        )
    return found


def build_kernel(dest: Path, arch: Architecture) -> Path:
    """Compile ``scan.c`` into ``dest`` for ``arch`` (upflow.core.kernel_build's one command)."""
    env = {**os.environ, "CC": kernel_compiler(arch)}
    done = subprocess.run(
        [sys.executable, "-m", "upflow.core.kernel_build", str(dest)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not dest.is_file():
        raise BuildError(f"building the row kernel for {arch.name} failed:\n{done.stdout}{done.stderr}")
    with dest.open("rb") as library:
        built_for = elf_architecture(library.read(20))
    if built_for != arch.name:
        raise BuildError(f"{env['CC']} built the row kernel for {built_for}, not {arch.name}")
    return dest


def shipped_files(repo_root: Path = REPO_ROOT, shipped: Sequence[str] = SHIPPED) -> list[str]:
    """The repo files (relative POSIX paths) the zip carries, sorted."""
    files: set[str] = set()
    for entry in shipped:
        source = repo_root / entry
        if source.is_file():
            files.add(entry)
        elif source.is_dir():
            files.update(
                path.relative_to(repo_root).as_posix()
                for path in source.rglob("*.py")
                if "__pycache__" not in path.parts
            )
        else:
            raise BuildError(f"{entry!r} not found at {source}")
    return sorted(files - BUILD_ONLY)


def stage_vendor(
    vendor: Path,
    repo_root: Path = REPO_ROOT,
    shipped: Sequence[str] = SHIPPED,
    arch: str = DEFAULT_ARCHITECTURE,
    kernel: bool = True,
) -> Path:
    """Recreate ``vendor`` holding :func:`shipped_files` and (``kernel``) the compiled kernel."""
    target = architecture(arch)
    if vendor.exists():
        shutil.rmtree(vendor)
    vendor.mkdir(parents=True)
    for name in shipped_files(repo_root, shipped):
        (vendor / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo_root / name, vendor / name)
    if kernel:
        build_kernel(vendor / KERNEL_ENTRY, target)
    return vendor


def stage_project(
    project: Path,
    *,
    api_dir: Path = API_DIR,
    repo_root: Path = REPO_ROOT,
    stage: str = DEFAULT_STAGE,
    shipped: Sequence[str] = SHIPPED,
    arch: str = DEFAULT_ARCHITECTURE,
    kernel: bool = True,
) -> Path:
    """A copy of the Chalice project in ``project`` (created), ready for ``chalice package``."""
    if not (api_dir / "app.py").is_file():
        raise BuildError(f"no Chalice app at {api_dir / 'app.py'}")
    config_path = api_dir / ".chalice" / "config.json"
    if not config_path.is_file():
        raise BuildError(f"no Chalice config at {config_path}")
    project.mkdir(parents=True)
    for name in PROJECT_FILES:
        if (api_dir / name).is_file():
            shutil.copy2(api_dir / name, project / name)
    for name in PROJECT_TREES:
        if (api_dir / name).is_dir():
            shutil.copytree(api_dir / name, project / name, ignore=_IGNORE)
    dot_chalice = project / ".chalice"
    dot_chalice.mkdir()
    for policy in (api_dir / ".chalice").glob("policy-*.json"):
        shutil.copy2(policy, dot_chalice / policy.name)
    config = json.loads(config_path.read_text())
    config.setdefault("stages", {}).setdefault(stage, {})["lambda_architecture"] = architecture(arch).name
    (dot_chalice / "config.json").write_text(json.dumps(config, indent=2))
    # Chalice caches the Lambda wheels of requirements.txt here: keep the project's cache.
    cache = api_dir / ".chalice" / "deployments"
    cache.mkdir(exist_ok=True)
    (dot_chalice / "deployments").symlink_to(cache, target_is_directory=True)
    stage_vendor(project / "vendor", repo_root, shipped, arch, kernel)
    return project


def remove_staged_vendor(api_dir: Path = API_DIR) -> bool:
    """Delete ``<api_dir>/vendor`` if an older build left it; True if there was one.

    The build no longer writes there, but a leftover must not stay: ``chalice local`` puts
    ``vendor/`` on ``sys.path``, where its copy of ``upflow`` would win over the working
    tree's (an editable install is found only after ``sys.path``).
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


def template_architectures(template: Mapping[str, Any]) -> set[str]:
    """Every ``Architectures`` entry of the template's functions (Chalice writes one each)."""
    resources: Mapping[str, Any] = template.get("Resources", {})
    return {
        arch
        for resource in resources.values()
        if resource.get("Type") == "AWS::Serverless::Function"
        for arch in resource["Properties"].get("Architectures", [DEFAULT_ARCHITECTURE])
    }


def package(
    outdir: Path,
    *,
    api_dir: Path = API_DIR,
    repo_root: Path = REPO_ROOT,
    stage: str | None = None,
    shipped: Sequence[str] = SHIPPED,
    arch: str = DEFAULT_ARCHITECTURE,
    kernel: bool = True,
) -> Path:
    """Stage the project and run ``chalice package``; return the resolved ``outdir``."""
    stage = stage or os.environ.get(STAGE_ENV) or DEFAULT_STAGE
    outdir = outdir.resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    for name in (TEMPLATE_NAME, ZIP_NAME):
        (outdir / name).unlink(missing_ok=True)
    env = dict(os.environ)
    if not (env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION")):
        env["AWS_DEFAULT_REGION"] = FALLBACK_REGION
    command = [*chalice_command(), "package", "--stage", stage, str(outdir)]
    with tempfile.TemporaryDirectory(prefix="upflow-package-") as work:
        project = stage_project(
            Path(work) / "api",
            api_dir=api_dir,
            repo_root=repo_root,
            stage=stage,
            shipped=shipped,
            arch=arch,
            kernel=kernel,
        )
        result = subprocess.run(command, cwd=project, env=env, check=False)
    if result.returncode != 0:
        raise BuildError(f"`{' '.join(command)}` failed with exit code {result.returncode}")
    missing = [name for name in (TEMPLATE_NAME, ZIP_NAME) if not (outdir / name).is_file()]
    if missing:
        raise BuildError(f"chalice package did not write {', '.join(missing)} into {outdir}")
    found = template_architectures(json.loads((outdir / TEMPLATE_NAME).read_text()))
    if found != {arch}:
        raise BuildError(f"chalice package wrote functions for {sorted(found)}, not {arch}")
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
    parser.add_argument(
        "--architecture",
        choices=sorted(ARCHITECTURES),
        default=DEFAULT_ARCHITECTURE,
        help="Lambda architecture of the functions and the row kernel; must be the stack's "
        f"upflow:lambdaArchitecture (default {DEFAULT_ARCHITECTURE})",
    )
    args = parser.parse_args(argv)
    try:
        outdir = package(
            args.outdir, api_dir=args.api_dir.resolve(), stage=args.stage, arch=args.architecture
        )
    except BuildError as error:
        print(f"upflow.build: {error}", file=sys.stderr)
        return 1
    print(f"upflow.build: wrote {outdir / TEMPLATE_NAME} and {outdir / ZIP_NAME} for {args.architecture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

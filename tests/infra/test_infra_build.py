"""upflow.build: what it stages, the kernel's compiler per architecture, and the `chalice package` step
(run on the stub app in the session fixture; the real app is built in tests/functional/test_package.py).
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
from pathlib import Path

import pytest

from upflow import build

# Client side, local stack, testing helpers and build code: never in the Lambda zip.
NOT_SHIPPED_PREFIXES = (
    "upflow/client/",
    "upflow/local/",
    "upflow/testing/",
    "upflow/build.py",
    "upflow/core/kernel_build.py",
    "upflow/core/scan.c",
)


def test_the_real_shipped_set_is_what_runs_in_lambda():
    files = build.shipped_files()
    assert {"upflow/__init__.py", "upflow/definition.py", "processor/worker.py"} <= set(files)
    assert "upflow/core/kernel.py" in files and "upflow/server/wiring.py" in files
    assert "upflow/aws/dynamo.py" in files
    assert not [name for name in files if name.startswith(NOT_SHIPPED_PREFIXES)]
    assert all(name.endswith(".py") for name in files)
    tops = {name.split("/")[0] for name in files}
    assert tops == {"upflow", "processor"}
    packages = {name.rsplit("/", 1)[0] for name in files}
    assert packages == {"upflow", "processor", "upflow/core", "upflow/aws", "upflow/server"}


def test_stage_vendor_recreates_the_folder_with_python_files_only(tmp_path):
    repo = tmp_path / "repo"
    (repo / "pkg" / "__pycache__").mkdir(parents=True)
    (repo / "pkg" / "sub").mkdir()
    (repo / "pkg" / "mod.py").write_text("X = 1\n")
    (repo / "pkg" / "sub" / "deep.py").write_text("Y = 2\n")
    (repo / "pkg" / "notes.md").write_text("no\n")
    (repo / "pkg" / "lib.c").write_text("int x;\n")
    (repo / "pkg" / "old.so").write_bytes(b"\0")
    (repo / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    (repo / "pkg" / "stale.pyc").write_bytes(b"\0")
    (repo / "single.py").write_text("Z = 3\n")
    (repo / "other.py").write_text("not shipped\n")
    vendor = tmp_path / "vendor"
    (vendor / "old").mkdir(parents=True)

    build.stage_vendor(vendor, repo, ["pkg", "single.py"], kernel=False)

    files = sorted(p.relative_to(vendor).as_posix() for p in vendor.rglob("*") if p.is_file())
    assert files == ["pkg/mod.py", "pkg/sub/deep.py", "single.py"]


def test_build_only_files_are_never_staged(tmp_path):
    repo = tmp_path / "repo"
    (repo / "upflow" / "core").mkdir(parents=True)
    for name in ("kernel.py", "kernel_build.py", "scan.c"):
        (repo / "upflow" / "core" / name).write_text("#\n")
    assert build.shipped_files(repo, ["upflow/core"]) == ["upflow/core/kernel.py"]


def test_stage_vendor_compiles_the_kernel(tmp_path):
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "mod.py").write_text("X = 1\n")
    vendor = build.stage_vendor(tmp_path / "vendor", repo, ["pkg"])
    kernel = vendor / build.KERNEL_ENTRY
    assert build.elf_architecture(kernel.read_bytes()[:20]) == build.DEFAULT_ARCHITECTURE == "x86_64"
    assert kernel.stat().st_mode & 0o755 == 0o755  # Lambda's runtime user must be able to load it


def test_missing_package_is_an_error(tmp_path):
    with pytest.raises(build.BuildError, match="nope"):
        build.stage_vendor(tmp_path / "vendor", tmp_path, ["nope"], kernel=False)


def test_no_app_is_an_error(tmp_path):
    with pytest.raises(build.BuildError, match="no Chalice app"):
        build.package(tmp_path / "out", api_dir=tmp_path)


def test_unknown_architecture_is_an_error(tmp_path, stub_api):
    with pytest.raises(build.BuildError, match="unknown Lambda architecture 'sparc'"):
        build.package(tmp_path / "out", api_dir=stub_api, shipped=(), arch="sparc")
    with pytest.raises(SystemExit):
        build.main([str(tmp_path / "out"), "--architecture", "sparc"])


def test_chalice_comes_from_this_interpreter():
    command = build.chalice_command()
    assert Path(command[0]).parent == Path(sys.executable).parent


# --- the kernel's compiler and architecture --------------------------------------------


def test_architectures_and_their_compilers():
    assert set(build.ARCHITECTURES) == {"x86_64", "arm64"}
    arm = build.ARCHITECTURES["arm64"]
    assert (arm.gcc, arm.debian_package) == ("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu")
    x86 = build.ARCHITECTURES["x86_64"]
    assert (x86.gcc, x86.debian_package) == ("x86_64-linux-gnu-gcc", "gcc-x86-64-linux-gnu")


def test_a_missing_cross_compiler_names_the_debian_package(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    with pytest.raises(build.BuildError, match=r"install Debian's gcc-aarch64-linux-gnu package"):
        build.kernel_compiler(build.ARCHITECTURES["arm64"])


def test_a_native_build_falls_back_to_plain_gcc(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/gcc" if name == "gcc" else None)
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert build.kernel_compiler(build.ARCHITECTURES["arm64"]) == "/usr/bin/gcc"
    with pytest.raises(build.BuildError, match="gcc-x86-64-linux-gnu"):
        build.kernel_compiler(build.ARCHITECTURES["x86_64"])


def test_a_compiler_for_the_wrong_architecture_is_caught(monkeypatch, tmp_path):
    # A "cross compiler" that is really the native gcc: the ELF header check refuses its output.
    monkeypatch.setattr(build, "kernel_compiler", lambda _arch: "gcc")
    with pytest.raises(build.BuildError, match="not arm64"):
        build.build_kernel(tmp_path / "_scan.so", build.ARCHITECTURES["arm64"])


def test_elf_architecture():
    def header(machine: int, data: int = 1) -> bytes:
        return b"\x7fELF\x02" + bytes([data]) + b"\x01" + bytes(11) + machine.to_bytes(2, "little")

    assert build.elf_architecture(header(62)) == "x86_64"
    assert build.elf_architecture(header(183)) == "arm64"
    assert build.elf_architecture(header(3)) is None  # i386
    assert build.elf_architecture(header(62, data=2)) is None  # big-endian
    assert build.elf_architecture(b"PK\x03\x04" + bytes(16)) is None
    assert build.elf_architecture(b"\x7fELF") is None


# --- staging the Chalice project -------------------------------------------------------


def test_stage_project_copies_the_app_and_sets_the_architecture(stub_api, tmp_path):
    stub_api = Path(shutil.copytree(stub_api, tmp_path / "stub"))
    (stub_api / ".chalice" / "policy-dev.json").write_text("{}")
    project = build.stage_project(tmp_path / "api", api_dir=stub_api, shipped=(), arch="arm64", kernel=False)
    assert (project / "app.py").read_text() == (stub_api / "app.py").read_text()
    assert (project / ".chalice" / "policy-dev.json").is_file()
    config = json.loads((project / ".chalice" / "config.json").read_text())
    assert config["stages"]["dev"]["lambda_architecture"] == "arm64"
    assert config["stages"]["dev"]["api_gateway_stage"] == "api"  # the rest is the project's
    assert "lambda_architecture" not in json.loads((stub_api / ".chalice" / "config.json").read_text())
    # The wheel cache is the project's own, shared across builds.
    assert (project / ".chalice" / "deployments").resolve() == (stub_api / ".chalice" / "deployments")
    assert not (stub_api / "vendor").exists()


def test_packaging_writes_both_artifacts(chalice_build):
    assert sorted(p.name for p in chalice_build.iterdir()) == ["deployment.zip", "sam.json"]


def test_packaging_for_arm64_writes_arm64_functions(stub_api, tmp_path):
    out = build.package(tmp_path / "out", api_dir=stub_api, shipped=(), arch="arm64", kernel=False)
    template = json.loads((out / build.TEMPLATE_NAME).read_text())
    assert build.template_architectures(template) == {"arm64"}


def test_packaging_never_writes_into_the_project(tmp_path):
    # `chalice package` fails on this app; nothing may be left in api/ (a vendor/ there would
    # be imported by `chalice local` instead of the working tree).
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "mod.py").write_text("X = 1\n")
    api = tmp_path / "api"
    (api / ".chalice").mkdir(parents=True)
    (api / ".chalice" / "config.json").write_text('{"version": "2.0", "app_name": "x"}')
    (api / "app.py").write_text("raise SystemExit('not a Chalice app')\n")

    with pytest.raises(build.BuildError, match="failed with exit code"):
        build.package(tmp_path / "out", api_dir=api, repo_root=repo, shipped=["pkg"], kernel=False)

    assert sorted(p.name for p in api.iterdir()) == [".chalice", "app.py"]
    assert sorted(p.name for p in (api / ".chalice").iterdir()) == ["config.json", "deployments"]


def test_a_leftover_vendor_folder_is_removed(tmp_path):
    (tmp_path / "vendor" / "upflow").mkdir(parents=True)
    assert build.remove_staged_vendor(tmp_path) is True
    assert not (tmp_path / "vendor").exists()
    assert build.remove_staged_vendor(tmp_path) is False


def test_the_real_package_run_left_no_vendor_folder(chalice_build):
    assert not (build.API_DIR / "vendor").exists()

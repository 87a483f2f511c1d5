"""upflow.build's staging step (the `chalice package` step runs in the session fixture)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from upflow import build


def test_stage_vendor_recreates_the_folder_without_caches(tmp_path):
    repo = tmp_path / "repo"
    (repo / "pkg" / "__pycache__").mkdir(parents=True)
    (repo / "pkg" / "sub").mkdir()
    (repo / "pkg" / "mod.py").write_text("X = 1\n")
    (repo / "pkg" / "sub" / "deep.py").write_text("Y = 2\n")
    (repo / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    (repo / "pkg" / "stale.pyc").write_bytes(b"\0")
    api = tmp_path / "api"
    (api / "vendor" / "old").mkdir(parents=True)

    vendor = build.stage_vendor(api, repo, ["pkg"])

    files = sorted(p.relative_to(vendor).as_posix() for p in vendor.rglob("*") if p.is_file())
    assert files == ["pkg/mod.py", "pkg/sub/deep.py"]
    assert not (vendor / "old").exists()


def test_missing_package_is_an_error(tmp_path):
    with pytest.raises(build.BuildError, match="nope"):
        build.stage_vendor(tmp_path / "api", tmp_path, ["nope"])


def test_no_app_is_an_error(tmp_path):
    with pytest.raises(build.BuildError, match="no Chalice app"):
        build.package(tmp_path / "out", api_dir=tmp_path)


def test_chalice_comes_from_this_interpreter():
    command = build.chalice_command()
    assert Path(command[0]).parent == Path(sys.executable).parent


def test_packaging_writes_both_artifacts(chalice_build):
    assert sorted(p.name for p in chalice_build.iterdir()) == ["deployment.zip", "sam.json"]


def test_vendor_packages_are_the_repos():
    assert build.VENDORED_PACKAGES == ("upflow", "processor")


def test_packaging_leaves_no_vendor_folder_for_chalice_local_to_pick_up(tmp_path):
    # `chalice package` fails on this app; the staged vendor/ must go all the same, or
    # `chalice local` would import its copy of the packages instead of the working tree.
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "mod.py").write_text("X = 1\n")
    api = tmp_path / "api"
    api.mkdir()
    (api / "app.py").write_text("raise SystemExit('not a Chalice app')\n")

    with pytest.raises(build.BuildError, match="failed with exit code"):
        build.package(tmp_path / "out", api_dir=api, repo_root=repo, packages=["pkg"])

    assert not (api / "vendor").exists()
    assert build.remove_staged_vendor(api) is False


def test_the_real_package_run_removed_its_vendor_folder(chalice_build):
    assert not (build.API_DIR / "vendor").exists()

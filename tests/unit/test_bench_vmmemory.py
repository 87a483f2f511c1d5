"""bench/vmmemory.py: reading and deferring the VM's free page reporting (a sysfs-like folder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.vmmemory import deferred_page_reporting, page_reporting


def _driver(folder: Path, **values: int) -> Path:
    folder.mkdir()
    for name, value in values.items():
        (folder / name).write_text(f"{value}\n")
    return folder


def test_no_driver_means_nothing_to_report(tmp_path: Path) -> None:
    assert page_reporting(tmp_path / "absent") is None


def test_describes_a_driver_that_reports_at_once(tmp_path: Path) -> None:
    folder = _driver(tmp_path / "p", page_reporting_order=9, min_free_ms=0, reported_kib=2048)
    state = page_reporting(folder)
    assert state is not None
    assert (state.order, state.min_free_ms, state.reported_kib) == (9, 0, 2048)
    assert state.describe() == (
        "free page reporting on: blocks of 2 MiB and up, reported as soon as freed (min_free_ms=0)"
    )


def test_a_mainline_driver_has_only_the_order(tmp_path: Path) -> None:
    state = page_reporting(_driver(tmp_path / "p", page_reporting_order=3))
    assert state is not None and state.min_free_ms is None
    assert state.describe() == "free page reporting on: blocks of 32 KiB and up"


def test_deferral_is_undone_after_the_run_even_when_it_fails(tmp_path: Path) -> None:
    folder = _driver(tmp_path / "p", page_reporting_order=9, min_free_ms=0)
    with pytest.raises(ZeroDivisionError), deferred_page_reporting(10_000, folder) as previous:
        assert previous == 0
        assert (folder / "min_free_ms").read_text() == "10000\n"
        _ = 1 / 0
    assert (folder / "min_free_ms").read_text() == "0\n"


def test_deferral_needs_the_knob(tmp_path: Path) -> None:
    folder = _driver(tmp_path / "p", page_reporting_order=9)
    with pytest.raises(RuntimeError, match="min_free_ms"), deferred_page_reporting(10_000, folder):
        pass

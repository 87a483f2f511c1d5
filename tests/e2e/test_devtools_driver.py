"""The bare DevTools-pipe driver the upload benchmark uses, against real Chromium."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from upflow.testing.devtools import DevToolsBrowser, DevToolsError

pytestmark = pytest.mark.browser

PAGE = (
    "data:text/html,<input type=file id=f>"
    "<script>document.getElementById('f').onchange ="
    " e => { document.title = 'chosen ' + e.target.files[0].size }</script>"
)


def test_navigates_evaluates_and_chooses_a_file(tmp_path: Path) -> None:
    chosen = tmp_path / "rows.csv"
    chosen.write_bytes(b"documento;valor\n52998224725;1,00\n")
    with DevToolsBrowser.launch() as browser:
        page = browser.page()
        page.navigate(PAGE)
        assert page.evaluate("1 + 1") == 2
        assert page.evaluate("Promise.resolve({a: [1, 'x']})") == {"a": [1, "x"]}  # awaited, by value
        page.set_input_files("#f", [chosen])
        page.wait_for("document.title.startsWith('chosen')", timeout=10)
        assert page.evaluate("document.title") == f"chosen {chosen.stat().st_size}"
        assert page.evaluate("document.getElementById('f').files[0].name") == "rows.csv"


def test_errors_name_what_failed(tmp_path: Path) -> None:
    with DevToolsBrowser.launch() as browser:
        page = browser.page()
        page.navigate(PAGE)
        with pytest.raises(DevToolsError, match=r"page threw: .*boom"):
            page.evaluate("(() => { throw new Error('boom') })()")
        with pytest.raises(DevToolsError, match="no element matches #missing"):
            page.set_input_files("#missing", [tmp_path])
        with pytest.raises(DevToolsError, match="still false after"):
            page.wait_for("false", timeout=0.2)
        with pytest.raises(DevToolsError, match=r"Nope\.method"):
            browser.send("Nope.method")


def test_close_reaps_chromium_and_its_profile() -> None:
    browser = DevToolsBrowser.launch()
    pid, profile = browser.pid, browser.profile
    assert profile.is_dir()
    browser.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped: no zombie left behind
    assert not profile.exists()


def test_extra_switches_reach_chromium_s_command_line() -> None:
    with DevToolsBrowser.launch(("--enable-features=NetworkServiceInProcess",)) as browser:
        argv = Path(f"/proc/{browser.pid}/cmdline").read_bytes().split(b"\0")
        assert b"--enable-features=NetworkServiceInProcess" in argv
        assert browser.page().evaluate("navigator.userAgent").startswith("Mozilla/")


def test_a_chromium_that_cannot_start_leaves_no_profile(tmp_path: Path) -> None:
    profiles = Path(tempfile.gettempdir())
    before = set(profiles.glob("upflow-chromium-*"))
    with pytest.raises(FileNotFoundError):
        DevToolsBrowser.launch(executable=str(tmp_path / "no-such-chromium"))
    assert set(profiles.glob("upflow-chromium-*")) == before

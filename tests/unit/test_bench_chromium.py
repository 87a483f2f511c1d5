"""bench/chromium.py: the benchmarks' choice of Chromium, from their command line."""

from __future__ import annotations

import argparse

from bench.chromium import ChromiumChoice, add_chromium_options, chromium_choice
from upflow.testing.browser import CHROMIUM


def choice(*argv: str) -> ChromiumChoice:
    parser = argparse.ArgumentParser()
    add_chromium_options(parser)
    return chromium_choice(parser.parse_args(argv))


def test_without_options_the_benchmark_launches_debian_s_chromium() -> None:
    chosen = choice()
    assert chosen == ChromiumChoice(CHROMIUM, ())
    assert chosen.is_default


def test_switches_and_another_build_are_a_diagnosis_and_say_what_ran() -> None:
    chosen = choice(
        "--chromium",
        "/usr/bin/chromium-headless-shell",
        "--chromium-arg=--enable-features=NetworkServiceInProcess",
        # with "=": argparse would take a lone "--js-flags=..." for an option of its own
        "--chromium-arg=--js-flags=--expose-gc",
    )
    assert not chosen.is_default
    assert chosen.extra_args == ("--enable-features=NetworkServiceInProcess", "--js-flags=--expose-gc")
    assert chosen.describe() == (
        "/usr/bin/chromium-headless-shell --enable-features=NetworkServiceInProcess --js-flags=--expose-gc"
    )
    assert not choice("--chromium-arg=--mute-audio").is_default

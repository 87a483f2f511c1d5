"""Which Chromium the browser benchmarks launch, and with what extra switches.

By default Debian's /usr/bin/chromium with the tests' arguments, as a user's
browser runs the page. The two options exist for diagnosis, to see how much
of the page's cost is Chromium's own make-up on this machine, for instance
``--chromium /usr/bin/chromium-headless-shell`` (Debian's package of the
headless shell Playwright launches for headless runs) or
``--chromium-arg=--enable-features=NetworkServiceInProcess`` (the network
service inside the browser process, one process hop less per byte). Figures
taken with them are not the benchmark's figures (web/README.md).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from upflow.testing.browser import CHROMIUM
from upflow.testing.devtools import DevToolsBrowser


@dataclass(frozen=True)
class ChromiumChoice:
    executable: str = CHROMIUM
    extra_args: tuple[str, ...] = ()

    @property
    def is_default(self) -> bool:
        return self == ChromiumChoice()

    def launch(self) -> DevToolsBrowser:
        return DevToolsBrowser.launch(self.extra_args, executable=self.executable)

    def describe(self) -> str:
        return " ".join((self.executable, *self.extra_args))


def add_chromium_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--chromium",
        default=CHROMIUM,
        metavar="PATH",
        help=f"the Chromium to launch (default {CHROMIUM}; diagnosis only)",
    )
    parser.add_argument(
        "--chromium-arg",
        action="append",
        default=[],
        metavar="SWITCH",
        help="one more Chromium switch, e.g. --chromium-arg=--enable-features=X (repeatable; diagnosis only)",
    )


def chromium_choice(args: argparse.Namespace) -> ChromiumChoice:
    return ChromiumChoice(args.chromium, tuple(args.chromium_arg))

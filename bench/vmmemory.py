"""This VM's free page reporting: how soon memory the guest frees goes back to the host.

The benchmark machine is a Firecracker guest whose ``page_reporting`` driver hands
freed memory to the host. With ``min_free_ms=0`` it reports memory as soon as it
is freed, so the next time the guest uses those pages the host must fault them in
again, on top of the guest's own page fault. A client that frees a lot of memory
during an upload pays that cost, and so does whatever allocates next. Chromium
frees fresh buffers for every part it sends, and moto then allocates several times
the object's size for ``complete``. web/README.md has the figures.

The upload benchmarks print the setting next to their results. With
``--defer-page-reporting MS`` they raise ``min_free_ms`` for the run and put the
old value back afterwards. That requires root, and it changes the machine, not
the clients.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

PARAMETERS = Path("/sys/module/page_reporting/parameters")


@dataclass(frozen=True)
class PageReporting:
    """The driver's parameters, as far as this kernel exposes them."""

    #: smallest block reported, as a power of two of pages (9: 2 MiB)
    order: int | None
    #: how long a block must stay free before it is reported (a patched driver's knob)
    min_free_ms: int | None
    #: total reported since boot
    reported_kib: int | None

    def describe(self) -> str:
        words = []
        if self.order is not None:
            kib = 4 << self.order
            block = f"{kib // 1024} MiB" if kib >= 1024 else f"{kib} KiB"
            words.append(f"blocks of {block} and up")
        if self.min_free_ms is not None:
            words.append(
                "reported as soon as freed (min_free_ms=0)"
                if self.min_free_ms == 0
                else f"after {self.min_free_ms} ms free (min_free_ms={self.min_free_ms})"
            )
        return "free page reporting on: " + ", ".join(words) if words else "free page reporting on"


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def page_reporting(parameters: Path = PARAMETERS) -> PageReporting | None:
    """The VM's page reporting, or None where the kernel has no such driver."""
    if not parameters.is_dir():
        return None
    return PageReporting(
        order=_read_int(parameters / "page_reporting_order"),
        min_free_ms=_read_int(parameters / "min_free_ms"),
        reported_kib=_read_int(parameters / "reported_kib"),
    )


@contextmanager
def deferred_page_reporting(min_free_ms: int, parameters: Path = PARAMETERS) -> Iterator[int]:
    """Report only memory that stayed free ``min_free_ms``, for the ``with`` block.

    Yields the previous value, and writes it back at the end, whatever happens.
    """
    knob = parameters / "min_free_ms"
    previous = _read_int(knob)
    if previous is None:
        raise RuntimeError(f"{knob} is not there: this kernel's page reporting has no min_free_ms")
    try:
        knob.write_text(f"{min_free_ms}\n")
    except PermissionError as error:
        raise RuntimeError(f"writing {knob} needs root") from error
    try:
        yield previous
    finally:
        knob.write_text(f"{previous}\n")


def add_page_reporting_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--defer-page-reporting",
        type=int,
        metavar="MS",
        default=None,
        help="root only: report to the host only memory free for MS ms, for this run (bench/vmmemory.py)",
    )


def run_and_name_the_machine(defer_ms: int | None, measure: Callable[[], int]) -> int:
    """``measure()`` (page reporting deferred if asked), then a last line naming the setting."""
    before = page_reporting()
    if defer_ms is None:
        status = measure()
        if before is not None:
            print(f"machine: {before.describe()}")
        return status
    if before is None:
        raise RuntimeError("--defer-page-reporting: this kernel has no page reporting driver")
    with deferred_page_reporting(defer_ms) as previous:
        status = measure()
        during = replace(before, min_free_ms=defer_ms).describe()
        print(f"machine: {during} for this run (the machine's setting: {previous} ms)")
    return status

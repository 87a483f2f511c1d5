"""CPU-seconds used by a process and its descendants, read from ``/proc`` (Linux).

The upload benchmarks run the client and the store (moto) on the same two
cores, so a client's rate depends on the CPU it takes from the store. These
figures show where a run's CPU time went: Chromium's processes against the
CLI's one process, and moto's share during each upload.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from pathlib import Path

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")


def _processes() -> dict[int, tuple[int, int]]:
    """Every live process: pid -> (parent pid, user + system clock ticks), one read each."""
    found: dict[int, tuple[int, int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # Fields after the command name, which is in parentheses and may hold spaces.
        fields = text[text.rindex(")") + 2 :].split()
        found[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return found


def _tree(root_pid: int, processes: dict[int, tuple[int, int]]) -> list[int]:
    """``root_pid`` and its live descendants, as far as ``processes`` shows them."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _ticks) in processes.items():
        children.setdefault(parent, []).append(pid)
    found: list[int] = []
    pending = [root_pid] if root_pid in processes else []
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def tree_cpu_seconds(root_pid: int) -> float:
    """User + system CPU of ``root_pid`` and every live descendant, in seconds.

    Descendants that already exited count only once reaped (in their parent's
    children times), so call this while the processes of interest still run.
    """
    processes = _processes()
    return sum(processes[pid][1] for pid in _tree(root_pid, processes)) / _TICKS_PER_SECOND


def chromium_process_kind(argv: list[str]) -> str:
    """What a Chromium process does, from its command line: ``browser`` (no
    ``--type``), ``renderer``, ``gpu-process``, or a utility's service
    (``--utility-sub-type=network.mojom.NetworkService`` gives ``network``)."""
    kind = "browser"
    for arg in argv:
        if arg.startswith("--type="):
            kind = arg.removeprefix("--type=")
        elif arg.startswith("--utility-sub-type="):
            return arg.removeprefix("--utility-sub-type=").split(".")[0]
    return kind


def _argv(pid: int) -> list[str]:
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:  # gone meanwhile
        return []
    # Chromium rewrites its children's titles into one space-separated string.
    return raw.replace(b"\0", b" ").decode(errors="replace").split()


def cpu_seconds_by_kind(root_pid: int, kind_of: Callable[[list[str]], str]) -> dict[str, float]:
    """User + system CPU of ``root_pid``'s live tree, summed per ``kind_of(argv)``:
    with ``chromium_process_kind``, Chromium's CPU per process type."""
    processes = _processes()
    seconds: dict[str, float] = {}
    for pid in _tree(root_pid, processes):
        kind = kind_of(_argv(pid))
        seconds[kind] = seconds.get(kind, 0.0) + processes[pid][1] / _TICKS_PER_SECOND
    return seconds


def _rusage_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def reaped_children_cpu_seconds() -> float:
    """User + system CPU of this process's children that have exited and been waited for."""
    return _rusage_seconds(resource.RUSAGE_CHILDREN)


def own_cpu_seconds() -> float:
    """User + system CPU of this process, all its threads (not its children)."""
    return _rusage_seconds(resource.RUSAGE_SELF)

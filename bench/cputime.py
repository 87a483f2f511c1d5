"""CPU-seconds used by a process and its descendants, read from ``/proc`` (Linux).

The upload benchmarks run the client and the store (moto) on the same two
cores, so a client's rate depends on the CPU it takes from the store. These
figures show where a run's CPU time went: Chromium's processes against the
CLI's one process, and moto's share during each upload.
"""

from __future__ import annotations

import os
import resource
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


def tree_cpu_seconds(root_pid: int) -> float:
    """User + system CPU of ``root_pid`` and every live descendant, in seconds.

    Descendants that already exited count only once reaped (in their parent's
    children times), so call this while the processes of interest still run.
    """
    processes = _processes()
    children: dict[int, list[int]] = {}
    for pid, (parent, _ticks) in processes.items():
        children.setdefault(parent, []).append(pid)
    ticks = 0
    pending = [root_pid] if root_pid in processes else []
    while pending:
        pid = pending.pop()
        ticks += processes[pid][1]
        pending.extend(children.get(pid, []))
    return ticks / _TICKS_PER_SECOND


def _rusage_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def reaped_children_cpu_seconds() -> float:
    """User + system CPU of this process's children that have exited and been waited for."""
    return _rusage_seconds(resource.RUSAGE_CHILDREN)


def own_cpu_seconds() -> float:
    """User + system CPU of this process, all its threads (not its children)."""
    return _rusage_seconds(resource.RUSAGE_SELF)

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


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:  # gone meanwhile
        return None
    # Fields after the command name, which is in parentheses and may hold spaces.
    return text[text.rindex(")") + 2 :].split()


def _parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                parents[int(entry.name)] = int(fields[1])
    return parents


def tree_cpu_seconds(root_pid: int) -> float:
    """User + system CPU of ``root_pid`` and every live descendant, in seconds.

    Descendants that already exited count only once reaped (in their parent's
    children times), so call this while the processes of interest still run.
    """
    parents = _parents()
    tree = {root_pid}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    total = 0
    for pid in tree:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS_PER_SECOND


def reaped_children_cpu_seconds() -> float:
    """User + system CPU of this process's children that have exited and been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def own_cpu_seconds() -> float:
    """User + system CPU of this process, all its threads (not its children)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

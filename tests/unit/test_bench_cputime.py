"""bench/cputime.py: CPU-seconds of a process tree, read from /proc."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bench.cputime import (
    chromium_process_kind,
    cpu_seconds_by_kind,
    own_cpu_seconds,
    reaped_children_cpu_seconds,
    tree_cpu_seconds,
)

# A child whose own child burns CPU for `seconds`, prints "done", then both wait for stdin.
_BURNER = """
import subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c", '''
import sys, time
end = time.process_time() + float(sys.argv[1])
while time.process_time() < end:
    pass
print("done", flush=True)
sys.stdin.read()
''', sys.argv[1]], stdout=sys.stdout, stdin=sys.stdin)
grandchild.wait()
"""


@contextmanager
def burnt_tree(burn: float) -> Iterator[int]:
    """The pid of a child whose grandchild has burnt `burn` CPU-seconds; both wait, alive."""
    child = subprocess.Popen(
        [sys.executable, "-c", _BURNER, str(burn)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "done"
        yield child.pid
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)


def test_tree_cpu_counts_a_grandchild_that_is_still_running() -> None:
    burn = 0.4
    with burnt_tree(burn) as pid:
        used = tree_cpu_seconds(pid)
    # the grandchild's burn, plus two interpreters starting; clock ticks are 10 ms
    assert burn - 0.02 <= used < burn + 5


def test_tree_cpu_of_a_process_that_is_gone_is_zero() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(10)
    assert tree_cpu_seconds(child.pid) == 0


def test_reaped_children_cpu_grows_by_what_a_waited_for_child_used() -> None:
    before = reaped_children_cpu_seconds()
    started = time.perf_counter()
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    subprocess.run([sys.executable, "-c", burn], check=True)
    grew = reaped_children_cpu_seconds() - before
    assert 0.28 <= grew <= time.perf_counter() - started + 0.05


def test_own_cpu_grows_by_this_process_s_work() -> None:
    before = own_cpu_seconds()
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    assert own_cpu_seconds() - before >= 0.19


def test_cpu_by_kind_puts_each_process_of_the_tree_under_its_kind() -> None:
    burn = 0.4
    with burnt_tree(burn) as pid:
        # both run `python -c CODE`; only the child's CODE imports subprocess
        split = cpu_seconds_by_kind(pid, lambda argv: "child" if "subprocess," in argv else "grandchild")
        # both idle, waiting on stdin: the split adds up to the tree's total
        total = tree_cpu_seconds(pid)
    assert set(split) == {"child", "grandchild"}
    assert burn - 0.02 <= split["grandchild"] < burn + 5
    assert abs(sum(split.values()) - total) < 0.05


def test_chromium_process_kinds_come_from_the_command_line() -> None:
    assert chromium_process_kind(["/usr/lib/chromium/chromium", "--headless", "about:blank"]) == "browser"
    assert chromium_process_kind(["/usr/lib/chromium/chromium", "--type=renderer", "--lang=en"]) == "renderer"
    assert chromium_process_kind(["/usr/lib/chromium/chromium", "--type=gpu-process"]) == "gpu-process"
    network = ["chromium", "--type=utility", "--utility-sub-type=network.mojom.NetworkService", "--x"]
    assert chromium_process_kind(network) == "network"
    storage = ["chromium", "--utility-sub-type=storage.mojom.StorageService", "--type=utility"]
    assert chromium_process_kind(storage) == "storage"

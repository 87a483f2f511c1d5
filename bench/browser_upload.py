"""Browser vs CLI upload throughput: the same file, the same API and S3 endpoint, one run.

    .venv/bin/python bench/browser_upload.py               # 512 MiB, a fresh local stack
    .venv/bin/python bench/browser_upload.py --size-mib 128 --rounds 2

Starts the local stack (moto server + resources + ``chalice local``; the
planner and chunk workers paused, so nothing but the uploads runs), serves
``web/dist`` with ``upflow.local.webserver`` on the origin the stack allowed,
writes one CSV (a valid ``;`` file made by repeating a block of rows: the
page's preflight must accept it), then uploads it under a new name each time
(a hard link; ``sync`` first, so no write-back runs while timing)

* with the CLI: ``upflow upload FILE --api URL -q`` in a subprocess, timed
  wall-clock (process start included, ~0.3 s);
* with the page in headless Chromium (Debian's /usr/bin/chromium), driven
  over the bare DevTools pipe (``upflow.testing.devtools``; ``--driver
  playwright`` for Playwright, whose Network instrumentation copies every
  in-memory PUT body: web/README.md): choose the file, wait for the preview,
  click "Start upload"; the time is the page's own (``data-elapsed-ms``: from
  the click handler, POST /uploads included, to the answer of
  POST /uploads/{id}/complete), so the driver's polling latency is not counted;

and prints both MiB/s and the ratio browser / CLI (target >= 0.8), best of
``--rounds`` (3) each; the order alternates, CLI first in odd rounds and the
page first in even ones. Each upload's line also gives the CPU-seconds its
client used (Chromium's processes from the click on; the CLI's process, its
start-up included), moto's meanwhile, and the page's ``complete`` call; the
summary splits Chromium's by process (renderer, browser, network service), and
sets its total, spread over the machine's cores, against the CLI's whole upload.
A page upload's line also gives its phases from the page's resource timing: when
the first part PUT started, and how long the PUTs took. The last line names the
VM's free page reporting, which weighs on the page more than on the CLI
(``bench/vmmemory.py``; ``--defer-page-reporting MS`` defers it for the run, as root).
Each round uploads a file of a different name (a fresh upload, no resume).
Both clients pay the same per-part costs: a sign call to the API (batched), a
CRC32 of the part, a PUT to the same moto endpoint.
bench/browser_ceiling.py measures what bare Chromium can PUT on the machine.
``--chromium PATH`` and ``--chromium-arg SWITCH`` (bench/chromium.py) launch
another Chromium build or add switches, to diagnose Chromium's share; such runs
say so in their output and are not the benchmark's figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.chromium import ChromiumChoice, add_chromium_options, chromium_choice  # noqa: E402
from bench.cputime import (  # noqa: E402
    chromium_process_kind,
    cpu_seconds_by_kind,
    reaped_children_cpu_seconds,
    tree_cpu_seconds,
)
from bench.vmmemory import add_page_reporting_option, run_and_name_the_machine  # noqa: E402
from upflow.definition import MiB  # noqa: E402
from upflow.local.processes import free_port  # noqa: E402
from upflow.local.stack import WEB_DIST, LocalStack, start_stack  # noqa: E402
from upflow.local.webserver import WebServer, serve_web  # noqa: E402
from upflow.testing.browser import launch_chromium  # noqa: E402
from upflow.testing.devtools import DevToolsError  # noqa: E402

VALID_CPFS = ["52998224725", "11144477735"]


def write_csv(path: Path, size: int) -> None:
    """A valid CSV of exactly ``size`` bytes: one header, a block of rows repeated, padded with a row."""
    rows = [
        f"{VALID_CPFS[i % len(VALID_CPFS)]};Cliente {i:06d};{(i * 37) % 100000},{i % 100:02d};2026-07-01\n"
        for i in range(8192)
    ]
    block = "".join(rows).encode()
    header = b"documento;nome;valor;data\n"
    with path.open("wb") as out:
        written = out.write(header)
        while written + len(block) <= size:
            written += out.write(block)
        rest = size - written
        for row in rows:
            encoded = row.encode()
            if len(encoded) > rest:
                break
            written += out.write(encoded)
            rest -= len(encoded)
        if rest > 0:  # pad the last field of a final row to land on the exact size
            stem = f"{VALID_CPFS[0]};Cliente;1,00;"
            filler = max(0, rest - len(stem) - 1)
            written += out.write((stem + "x" * filler + "\n").encode()[:rest])


@contextmanager
def bench_stack(name: str, work: Path, page_dir: Path) -> Iterator[tuple[LocalStack, WebServer]]:
    """A fresh local stack with processing paused (no planner nor validation competing
    for the CPU), and ``page_dir`` served on the origin its CORS rules allow."""
    stack = start_stack(
        moto_port=free_port(),
        api_port=free_port(),
        web_port=free_port(),
        chunk_workers=1,
        stack_name=name,
        log_dir=work / "logs",
        serve_page=False,
    )
    try:
        stack.pause_processing()
        origin = urlsplit(stack.env["UPFLOW_WEB_ORIGIN"])
        assert origin.hostname and origin.port, "the stack names a web origin with a port"
        web = serve_web(page_dir, origin.hostname, origin.port, stack.api_url)
        try:
            yield stack, web
        finally:
            web.close()
    finally:
        stack.stop()


@dataclass(frozen=True)
class Run:
    """One upload: its time and the CPU-seconds the client used meanwhile."""

    seconds: float
    client_cpu: float | None
    #: the page's POST /uploads/{id}/complete, request to answer (S3's concatenation in moto)
    complete_seconds: float | None = None
    #: from the click to the first part PUT's request, and from there to the last PUT's answer
    first_put_seconds: float | None = None
    puts_seconds: float | None = None
    #: the page's client_cpu per Chromium process type (renderer, browser, network, ...)
    client_cpu_by_process: dict[str, float] | None = None


def cli_upload(path: Path, api_url: str, home: Path, concurrency: int | None) -> Run:
    env = {**os.environ, "UPFLOW_HOME": str(home)}
    extra = ["--concurrency", str(concurrency)] if concurrency else []
    cpu_before = reaped_children_cpu_seconds()
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "upflow.client.cli", "upload", str(path), "--api", api_url, "-q", *extra],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return Run(time.perf_counter() - started, reaped_children_cpu_seconds() - cpu_before)


PHASE_DONE = ", ".join(f'[data-testid=upload-phase][data-phase="{p}"]' for p in ("uploaded", "failed"))
# The page's own clock: from the click's handler to S3's CompleteMultipartUpload answer.
ELAPSED_MS = "document.querySelector('[data-testid=upload-phase]').dataset.elapsedMs"
# The page's phases from its resource timing, relative to the click (``window.__clickedAt``):
# [first PUT's start, last PUT's end, complete's start, complete's end] in ms, or null.
PHASES_MS = """(() => {
  const all = performance.getEntriesByType('resource')
  const puts = all.filter((r) => r.name.includes('partNumber='))
  const complete = all.filter((r) => r.name.endsWith('/complete')).pop()
  if (!puts.length || !complete) return null
  const at = window.__clickedAt
  return [Math.min(...puts.map((r) => r.startTime)) - at, Math.max(...puts.map((r) => r.responseEnd)) - at,
          complete.startTime - at, complete.responseEnd - at]
})()"""


def browser_upload(web_url: str, path: Path, chromium: ChromiumChoice) -> Run:
    """The page in headless Chromium driven over the DevTools pipe (no Network domain)."""
    with chromium.launch() as browser:
        page = browser.page()
        page.navigate(web_url)
        page.wait_for("document.querySelector('[data-testid=file-input]:not([disabled])')", timeout=60)
        page.set_input_files("[data-testid=file-input]", [path])
        try:
            page.wait_for("document.querySelector('[data-testid=start-button]:not([disabled])')", timeout=60)
        except DevToolsError as error:
            shown = page.evaluate("document.body.innerText")[:800]
            raise RuntimeError(f"no start button; the page shows: {shown}") from error
        # The default buffer (250 entries) would drop the complete call of a many-part upload.
        page.evaluate("performance.setResourceTimingBufferSize(100000)")
        cpu_before = cpu_seconds_by_kind(browser.pid, chromium_process_kind)
        page.evaluate(
            "window.__clickedAt = performance.now(); "
            "document.querySelector('[data-testid=start-button]').click()"
        )
        page.wait_for(f"document.querySelector('{PHASE_DONE}')", timeout=3600, poll=0.1)
        # Chromium's processes only; the driver's polls cost them ~nothing
        cpu_after = cpu_seconds_by_kind(browser.pid, chromium_process_kind)
        cpu_by_process = {kind: used - cpu_before.get(kind, 0.0) for kind, used in cpu_after.items()}
        cpu_used = sum(cpu_by_process.values())
        if page.evaluate("document.querySelector('[data-testid=upload-phase]').dataset.phase") != "uploaded":
            message = page.evaluate("document.querySelector('[data-testid=error-message]')?.innerText")
            raise RuntimeError(f"the page's upload failed: {message}")
        phases = page.evaluate(PHASES_MS)
        seconds = int(page.evaluate(ELAPSED_MS) or "0") / 1000
        if phases is None:
            return Run(seconds, cpu_used, client_cpu_by_process=cpu_by_process)
        first_put, last_put_end, complete_start, complete_end = (ms / 1000 for ms in phases)
        return Run(
            seconds,
            cpu_used,
            complete_seconds=complete_end - complete_start,
            first_put_seconds=first_put,
            puts_seconds=last_put_end - first_put,
            client_cpu_by_process=cpu_by_process,
        )


def browser_upload_playwright(web_url: str, path: Path) -> Run:
    """The same under Playwright, whose Network instrumentation copies in-memory PUT bodies."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_context().new_page()
            page.goto(web_url)
            page.get_by_test_id("file-input").set_input_files(str(path))
            start = page.get_by_test_id("start-button")
            start.wait_for(timeout=60_000)
            start.click()
            page.wait_for_selector(PHASE_DONE, timeout=3_600_000)
            phase = page.get_by_test_id("upload-phase")
            if phase.get_attribute("data-phase") != "uploaded":
                raise RuntimeError(
                    f"the page's upload failed: {page.get_by_test_id('error-message').inner_text()}"
                )
            return Run(int(phase.get_attribute("data-elapsed-ms") or "0") / 1000, None)
        finally:
            browser.close()


def describe(run: Run, moto_cpu: float) -> str:
    """The CPU figures of one upload, for its line of output."""
    parts = [f"{run.seconds:5.2f} s"]
    if run.client_cpu is not None:
        parts.append(f"client {run.client_cpu:4.1f} CPU-s")
    parts.append(f"moto {moto_cpu:4.1f} CPU-s")
    if run.first_put_seconds is not None and run.puts_seconds is not None:
        parts.append(f"first PUT at {run.first_put_seconds:4.2f} s, PUTs {run.puts_seconds:4.2f} s")
    if run.complete_seconds is not None:
        parts.append(f"complete {run.complete_seconds:4.2f} s")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of one upload each; the best counts")
    parser.add_argument("--cli-concurrency", type=int, default=None, help="CLI parts in flight")
    parser.add_argument(
        "--driver",
        choices=("devtools", "playwright"),
        default="devtools",
        help="drive Chromium over the bare DevTools pipe (default) or with Playwright",
    )
    add_chromium_options(parser)
    add_page_reporting_option(parser)
    args = parser.parse_args(argv)
    return run_and_name_the_machine(args.defer_page_reporting, lambda: measure(args))


def measure(args: argparse.Namespace) -> int:
    if not (WEB_DIST / "index.html").is_file():
        print(f"{WEB_DIST}/index.html is missing: run `make web` first", file=sys.stderr)
        return 2

    size = args.size_mib * MiB
    chromium = chromium_choice(args)
    if args.driver == "playwright" and not chromium.is_default:
        print("--chromium and --chromium-arg apply to the devtools driver only", file=sys.stderr)
        return 2
    runs: dict[str, list[Run]] = {"cli": [], "browser": []}
    store_cpu: dict[str, list[float]] = {"cli": [], "browser": []}
    with tempfile.TemporaryDirectory(prefix="upflow-bench-") as tmp:
        work = Path(tmp)
        with bench_stack("bench", work, WEB_DIST) as (stack, web):
            moto_pid = stack.pid_of("moto")
            source = work / "bench.csv"
            write_csv(source, size)
            for round_ in range(args.rounds):
                # ABBA order: whoever runs right after the other pays or gains from the
                # state it leaves (moto's `complete` cost differs by order: web/README.md).
                for who in ("cli", "browser") if round_ % 2 == 0 else ("browser", "cli"):
                    # A new name (a fresh upload, no resume) for the same bytes: no 512 MiB
                    # written per round, and nothing left to write back while timing.
                    path = work / f"bench-{who}-{round_}.csv"
                    os.link(source, path)
                    os.sync()
                    moto_before = tree_cpu_seconds(moto_pid)
                    if who == "cli":
                        run = cli_upload(path, stack.api_url, work / "cli-home", args.cli_concurrency)
                    elif args.driver == "devtools":
                        run = browser_upload(web.url, path, chromium)
                    else:
                        run = browser_upload_playwright(web.url, path)
                    store_cpu[who].append(tree_cpu_seconds(moto_pid) - moto_before)
                    runs[who].append(run)
                    path.unlink()
                    rate = size / MiB / run.seconds
                    line = (
                        f"round {round_ + 1} {who:7s}: {rate:7.1f} MiB/s  {describe(run, store_cpu[who][-1])}"
                    )
                    print(line, flush=True)

    best = {who: min(r.seconds for r in done) for who, done in runs.items()}
    cli_rate = size / MiB / best["cli"]
    page_rate = size / MiB / best["browser"]
    print(f"file: {args.size_mib} MiB, endpoint: local stack (moto server), best of {args.rounds}")
    print(f"CLI (upflow upload): {cli_rate:7.1f} MiB/s")
    print(f"browser (Chromium, {args.driver}): {page_rate:7.1f} MiB/s")
    if not chromium.is_default:
        print(f"  launched as: {chromium.describe()} (a diagnosis, not the benchmark's figure)")
    ratio = page_rate / cli_rate
    print(f"ratio browser/CLI:   {ratio:7.2f} (target >= 0.80) {'OK' if ratio >= 0.8 else 'BELOW TARGET'}")
    page_cpu = [r.client_cpu for r in runs["browser"] if r.client_cpu is not None]
    cli_cpu = [r.client_cpu for r in runs["cli"] if r.client_cpu is not None]
    if page_cpu and cli_cpu:
        cores = os.cpu_count() or 1
        floor = statistics.median(page_cpu) / cores
        print(
            f"CPU-seconds per upload (median): Chromium {statistics.median(page_cpu):.1f}, "
            f"CLI {statistics.median(cli_cpu):.1f}; moto {statistics.median(store_cpu['browser']):.1f} "
            f"during the page's, {statistics.median(store_cpu['cli']):.1f} during the CLI's"
        )
        by_process = [r.client_cpu_by_process for r in runs["browser"] if r.client_cpu_by_process]
        kinds = sorted(
            {kind for split in by_process for kind in split}, key=lambda k: -by_process[0].get(k, 0.0)
        )
        shares = ", ".join(
            f"{kind} {statistics.median(split.get(kind, 0.0) for split in by_process):.1f}"
            for kind in kinds
            if max(split.get(kind, 0.0) for split in by_process) >= 0.05
        )
        print(f"Chromium's CPU-seconds by process (median): {shares}")
        print(
            f"Chromium's own CPU alone needs >= {floor:.1f} s on {cores} cores; "
            f"the CLI's whole best upload took {best['cli']:.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

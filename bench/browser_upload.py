"""The page's upload throughput against a bare page and the CLI: same file, same stack, one run.

    .venv/bin/python bench/browser_upload.py               # 512 MiB, 3 rounds, a fresh local stack
    .venv/bin/python bench/browser_upload.py --size-mib 128 --rounds 2

Starts the local stack (moto server + resources + ``chalice local``; the planner
and chunk workers paused, so nothing but the uploads runs), serves the built page
(``web/dist``) and ``bench/bare_page.html`` on the origin the stack's CORS rules
allow, writes one valid ``;`` CSV, then, each round, uploads it under a new name
(a hard link, ``sync`` first) with three clients:

* ``page``: upflow's page in headless Chromium (Debian's /usr/bin/chromium), driven
  over the bare DevTools pipe (``upflow.testing.devtools``; Playwright's Network
  domain would copy every in-memory PUT body: docs/performance.md). Choose the file,
  wait for "Start upload", click; the time is the page's own ``data-elapsed-ms``
  (from the click's handler, ``POST /uploads`` included, to the answer of ``complete``);
* ``bare``: ``bench/bare_page.html`` in the same Chromium, launched the same way:
  ``POST /uploads`` (signing the first 100 parts), sign calls for later batches,
  6 ``fetch`` PUTs of file slices in flight, ``complete``. The same API, the same
  presigned parts, the same CRC32 headers, but the checksums are computed in Python
  before its timer starts: it is what any page costs Chromium here, with nothing in it;
* ``cli``: ``upflow upload FILE --api URL -q`` in a subprocess, timed wall-clock
  (the interpreter's start-up included, ~0.3 s).

The order alternates (page, bare, CLI in even rounds; the reverse in odd ones),
and each client's best round counts. Prints MiB/s of each, page/bare (target
>= 0.9: the page's own overhead) and page/CLI (reported, not a target: on a
machine where the store shares the client's cores, Chromium's own CPU sets it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from upflow.client.uploader import crc32_b64  # noqa: E402
from upflow.core.partsize import plan_parts  # noqa: E402
from upflow.definition import Limits, MiB  # noqa: E402
from upflow.local.processes import free_port  # noqa: E402
from upflow.local.stack import WEB_DIST, LocalStack, start_stack  # noqa: E402
from upflow.local.webserver import WebServer, serve_web  # noqa: E402
from upflow.testing.devtools import DevToolsBrowser, DevToolsError  # noqa: E402

BARE_PAGE = Path(__file__).resolve().parent / "bare_page.html"
BARE_NAME = "bare.html"
CLIENTS = ("page", "bare", "cli")
IN_FLIGHT = 6  # Chromium's connections per host; the page's Uppy limit
TARGET_PAGE_TO_BARE = 0.9
VALID_CPFS = ["52998224725", "11144477735"]


def write_csv(path: Path, size: int) -> None:
    """A valid CSV of exactly ``size`` bytes: one header, a block of rows repeated, a last row to fit."""
    rows = [
        f"{VALID_CPFS[i % len(VALID_CPFS)]};Cliente {i:06d};{(i * 37) % 100000},{i % 100:02d};2026-07-01\n"
        for i in range(8192)
    ]
    block = "".join(rows).encode()
    header = b"documento;nome;valor;data\n"
    # The last row's name is stretched to land on the exact size; whole rows stop early
    # enough to leave room for it (only a file smaller than header + last row cuts it).
    last = (f"{VALID_CPFS[0]};", ";1,00;2026-07-01\n")
    room = len("".join(last)) + 1
    with path.open("wb") as out:
        written = out.write(header[:size])
        while written + len(block) + room <= size:
            written += out.write(block)
        for row in rows:
            encoded = row.encode()
            if written + len(encoded) + room > size:
                break
            written += out.write(encoded)
        rest = size - written
        if rest > 0:
            name = "x" * max(1, rest - room + 1)
            out.write(f"{last[0]}{name}{last[1]}".encode()[:rest])


def part_checksums(path: Path, part_size: int) -> list[str]:
    """The CRC32 header value of each part, in order (what the bare page is given)."""
    size = path.stat().st_size
    with path.open("rb") as source:
        return [crc32_b64(source.read(part_size)) for _ in range(math.ceil(size / part_size))]


def round_order(round_: int) -> tuple[str, ...]:
    """Page, bare, CLI in even rounds, the reverse in odd ones: whoever runs right after
    another pays or gains from the state it leaves (moto's ``complete`` costs more after
    the page), so no client always follows the same one."""
    return CLIENTS if round_ % 2 == 0 else CLIENTS[::-1]


def site_dir(work: Path) -> Path:
    """``web/dist`` (linked, not copied) plus the bare page, served from one origin."""
    site = work / "site"
    site.mkdir()
    for entry in WEB_DIST.iterdir():
        (site / entry.name).symlink_to(entry.resolve())
    shutil.copyfile(BARE_PAGE, site / BARE_NAME)
    return site


@contextmanager
def bench_stack(work: Path, site: Path) -> Iterator[tuple[LocalStack, WebServer]]:
    """A fresh local stack with processing paused, and ``site`` served on its web origin."""
    stack = start_stack(
        moto_port=free_port(),
        api_port=free_port(),
        web_port=free_port(),
        chunk_workers=1,
        stack_name="bench",
        log_dir=work / "logs",
        serve_page=False,
    )
    try:
        stack.pause_processing()
        origin = urlsplit(stack.env["UPFLOW_WEB_ORIGIN"])
        assert origin.hostname and origin.port, "the stack names a web origin with a port"
        with serve_web(site, origin.hostname, origin.port, stack.api_url) as web:
            yield stack, web
    finally:
        stack.stop()


PHASE_DONE = ", ".join(f'[data-testid=upload-phase][data-phase="{p}"]' for p in ("uploaded", "failed"))


def page_upload(web_url: str, path: Path) -> float:
    """upflow's page: choose the file, click "Start upload"; the page's own elapsed time."""
    with DevToolsBrowser.launch() as browser:
        page = browser.page()
        page.navigate(web_url)
        page.wait_for("document.querySelector('[data-testid=file-input]:not([disabled])')", timeout=60)
        page.set_input_files("[data-testid=file-input]", [path])
        try:
            page.wait_for("document.querySelector('[data-testid=start-button]:not([disabled])')", timeout=60)
        except DevToolsError as error:
            shown = page.evaluate("document.body.innerText")[:800]
            raise RuntimeError(f"no start button; the page shows: {shown}") from error
        page.evaluate("document.querySelector('[data-testid=start-button]').click()")
        page.wait_for(f"document.querySelector('{PHASE_DONE}')", timeout=3600, poll=0.1)
        phase = page.evaluate("({...document.querySelector('[data-testid=upload-phase]').dataset})")
        if phase.get("phase") != "uploaded":
            message = page.evaluate("document.querySelector('[data-testid=error-message]')?.innerText")
            raise RuntimeError(f"the page's upload failed: {message}")
        return int(phase["elapsedMs"]) / 1000


def bare_upload(web_url: str, api_url: str, path: Path, part_size: int, checksums: list[str]) -> float:
    """The bare page: the same API calls and PUTs, nothing else; its own elapsed time."""
    with DevToolsBrowser.launch() as browser:
        page = browser.page()
        page.navigate(f"{web_url}/{BARE_NAME}")
        page.set_input_files("#file", [path])
        page.wait_for("document.getElementById('file').files.length === 1", timeout=10)
        arguments = ", ".join(json.dumps(a) for a in (api_url.rstrip("/"), part_size, checksums, IN_FLIGHT))
        call = f"bareUpload({arguments})"
        done = page.evaluate(call, timeout=3600)
        if done["status"] != "uploaded" or done["size"] != path.stat().st_size:
            raise RuntimeError(f"the bare page's upload ended with {done}")
        return float(done["ms"]) / 1000


def cli_upload(path: Path, api_url: str, home: Path) -> float:
    env = {**os.environ, "UPFLOW_HOME": str(home)}
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "upflow.client.cli", "upload", str(path), "--api", api_url, "-q"],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of one upload per client; the best counts"
    )
    args = parser.parse_args(argv)
    if not (WEB_DIST / "index.html").is_file():
        print(f"{WEB_DIST}/index.html is missing: run `make web` first", file=sys.stderr)
        return 2

    size = args.size_mib * MiB
    part_size = plan_parts(size, Limits()).part_size
    times: dict[str, list[float]] = {who: [] for who in CLIENTS}
    with tempfile.TemporaryDirectory(prefix="upflow-bench-") as tmp:
        work = Path(tmp)
        source = work / "bench.csv"
        write_csv(source, size)
        checksums = part_checksums(source, part_size)
        with bench_stack(work, site_dir(work)) as (stack, web):
            for round_ in range(args.rounds):
                for who in round_order(round_):
                    # A new name (a fresh upload, no resume) for the same bytes: nothing
                    # written per round, nothing left to write back while timing.
                    path = work / f"bench-{who}-{round_}.csv"
                    os.link(source, path)
                    os.sync()
                    if who == "page":
                        seconds = page_upload(web.url, path)
                    elif who == "bare":
                        seconds = bare_upload(web.url, stack.api_url, path, part_size, checksums)
                    else:
                        seconds = cli_upload(path, stack.api_url, work / "cli-home")
                    path.unlink()
                    times[who].append(seconds)
                    print(
                        f"round {round_ + 1} {who:4s}: {size / MiB / seconds:6.1f} MiB/s ({seconds:5.2f} s)",
                        flush=True,
                    )

    rate = {who: size / MiB / min(done) for who, done in times.items()}
    per_round = " ".join(f"{b / p:.2f}" for p, b in zip(times["page"], times["bare"], strict=True))
    page_to_bare = rate["page"] / rate["bare"]
    verdict = "OK" if page_to_bare >= TARGET_PAGE_TO_BARE else "BELOW TARGET"
    print(
        f"{args.size_mib} MiB in {len(checksums)} parts of {part_size // MiB} MiB, local stack (moto), "
        f"{os.cpu_count()} cores; best of {args.rounds} rounds, order alternating"
    )
    print(f"page (web/dist, Chromium, DevTools pipe): {rate['page']:6.1f} MiB/s")
    print(f"bare page (fetch, same Chromium):         {rate['bare']:6.1f} MiB/s")
    print(f"CLI (upflow upload):                      {rate['cli']:6.1f} MiB/s")
    print(
        f"page/bare: {page_to_bare:.2f} (target >= {TARGET_PAGE_TO_BARE}) {verdict}; per round: {per_round}"
    )
    print(f"page/CLI:  {rate['page'] / rate['cli']:.2f} (reported, not a target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What Chromium itself can PUT on this machine, with no page logic at all.

    .venv/bin/python bench/browser_ceiling.py                  # 512 MiB, 2 rounds
    .venv/bin/python bench/browser_ceiling.py --size-mib 128 --rounds 1

The ceiling under bench/browser_upload.py's ratio. One local stack (moto
server); one file; the part size the API would choose; every part presigned
up front (no API in the loop); 6 PUTs in flight; the PUT phase only (no
create, no complete). Four senders, alternating, each a fresh multipart
upload aborted afterwards:

* ``python``: 6 threads, ``os.pread`` + ``zlib.crc32`` + one ``requests`` PUT with
  the ``x-amz-checksum-crc32`` header — what the CLI does per part;
* ``blob``: bench/ceiling/index.html in headless Chromium, the file slice as the
  XHR body (Chromium's cheapest path; no checksum possible);
* ``twice``: a worker reads each part first (as a checksum needs), then the
  file slice is sent — two reads per part;
* ``once``: a worker reads each part and the PUT sends those bytes — one read
  per part, upflow's page since 2026-11-26.

Chromium runs under ``upflow.testing.devtools`` (no DevTools Network domain),
as in bench/browser_upload.py, and takes its ``--chromium``/``--chromium-arg``
diagnosis options (bench/chromium.py). Prints MiB/s per sender, each browser
sender's ratio to ``python``, and the CPU-seconds the sender (this process's
threads, or Chromium's processes) and moto used during the PUTs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.browser_upload import bench_stack, write_csv  # noqa: E402
from bench.chromium import add_chromium_options, chromium_choice  # noqa: E402
from bench.cputime import own_cpu_seconds, tree_cpu_seconds  # noqa: E402
from bench.vmmemory import add_page_reporting_option, run_and_name_the_machine  # noqa: E402
from upflow.client.uploader import crc32_b64  # noqa: E402
from upflow.core.partsize import plan_parts  # noqa: E402
from upflow.definition import Limits, MiB  # noqa: E402
from upflow.testing.devtools import DevToolsPage  # noqa: E402

PAGE_DIR = Path(__file__).resolve().parent / "ceiling"
IN_FLIGHT = 6
BROWSER_MODES = ("blob", "twice", "once")


def python_puts(path: Path, urls: list[str], part_size: int) -> float:
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=IN_FLIGHT))
    fd = os.open(path, os.O_RDONLY)

    def put(index: int) -> None:
        data = os.pread(fd, part_size, index * part_size)
        answer = session.put(urls[index], data=data, headers={"x-amz-checksum-crc32": crc32_b64(data)})
        answer.raise_for_status()

    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            list(pool.map(put, range(len(urls))))
        return time.perf_counter() - started
    finally:
        os.close(fd)
        session.close()


def browser_puts(page: DevToolsPage, urls: list[str], part_size: int, mode: str) -> float:
    call = f"uploadParts({json.dumps(urls)}, {part_size}, {json.dumps(mode)}, {IN_FLIGHT})"
    return float(page.evaluate(call, timeout=3600)) / 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--part-mib", type=int, default=None, help="part size (default: the API's choice)")
    add_chromium_options(parser)
    add_page_reporting_option(parser)
    args = parser.parse_args(argv)
    return run_and_name_the_machine(args.defer_page_reporting, lambda: measure(args))


def measure(args: argparse.Namespace) -> int:
    size = args.size_mib * MiB
    chromium = chromium_choice(args)
    part_size = args.part_mib * MiB if args.part_mib else plan_parts(size, Limits()).part_size
    times: dict[str, list[float]] = {m: [] for m in ("python", *BROWSER_MODES)}
    # CPU-seconds per sender during its PUTs: the sender's own (this process's threads
    # for python, Chromium's processes for a page) and moto's.
    sender_cpu: dict[str, list[float]] = {m: [] for m in times}
    store_cpu: dict[str, list[float]] = {m: [] for m in times}
    with tempfile.TemporaryDirectory(prefix="upflow-ceiling-") as tmp:
        work = Path(tmp)
        with bench_stack("ceiling", work, PAGE_DIR) as (stack, web):
            s3: Any = stack.boto3_client("s3")
            bucket = stack.names.bucket
            data = work / "ceiling.csv"
            write_csv(data, size)
            parts = math.ceil(size / part_size)
            with chromium.launch() as browser:
                page = browser.page()
                page.navigate(web.url + "/index.html")
                page.set_input_files("#file", [data])

                def sender(mode: str) -> Callable[[list[str]], float]:
                    if mode == "python":
                        return lambda urls: python_puts(data, urls, part_size)
                    return lambda urls: browser_puts(page, urls, part_size, mode)

                senders = {mode: sender(mode) for mode in times}
                moto_pid = stack.pid_of("moto")

                def sender_cpu_now(mode: str) -> float:
                    # python PUTs from this process's threads; the stack and Chromium are its children
                    return own_cpu_seconds() if mode == "python" else tree_cpu_seconds(browser.pid)

                for round_ in range(args.rounds):
                    for name, send in senders.items():
                        # outside the uploads prefix: no event, nothing to process
                        key = f"bench/ceiling-{name}-{round_}.csv"
                        upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
                        urls = [
                            s3.generate_presigned_url(
                                "upload_part",
                                Params={"Bucket": bucket, "Key": key, "UploadId": upload_id, "PartNumber": n},
                                ExpiresIn=3600,
                            )
                            for n in range(1, parts + 1)
                        ]
                        os.sync()  # moto's spilled parts of the last sender: written back now
                        sender_before = sender_cpu_now(name)
                        moto_before = tree_cpu_seconds(moto_pid)
                        try:
                            times[name].append(send(urls))
                            sender_cpu[name].append(sender_cpu_now(name) - sender_before)
                            store_cpu[name].append(tree_cpu_seconds(moto_pid) - moto_before)
                        finally:
                            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
                        rate = size / MiB / times[name][-1]
                        print(
                            f"round {round_ + 1} {name:6s}: {rate:7.1f} MiB/s, sender"
                            f" {sender_cpu[name][-1]:4.1f} CPU-s, moto {store_cpu[name][-1]:4.1f} CPU-s",
                            flush=True,
                        )

    def cpu_line(mode: str) -> str:
        sender = statistics.median(sender_cpu[mode])
        return f", sender {sender:.1f} CPU-s, moto {statistics.median(store_cpu[mode]):.1f} CPU-s"

    print(f"{args.size_mib} MiB in {parts} parts of {part_size // MiB} MiB, {IN_FLIGHT} in flight, PUTs only")
    if not chromium.is_default:
        print(f"Chromium launched as: {chromium.describe()} (a diagnosis)")
    python_rate = size / MiB / statistics.median(times["python"])
    print(f"python (CLI's way):  {python_rate:7.1f} MiB/s (median of {args.rounds}){cpu_line('python')}")
    for mode in BROWSER_MODES:
        rate = size / MiB / statistics.median(times[mode])
        ratio = rate / python_rate
        print(f"chromium {mode:6s}:     {rate:7.1f} MiB/s   ratio to python {ratio:.2f}{cpu_line(mode)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

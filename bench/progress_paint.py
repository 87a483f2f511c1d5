"""What a progress bar costs headless Chromium to paint, with and without a CSS transition.

    .venv/bin/python bench/progress_paint.py                 # 3 rounds of 10 s each
    .venv/bin/python bench/progress_paint.py --rounds 1 --seconds 5

The page updates its progress bar 5 times a second (every 200 ms, as upflow's page
does during an upload). Three tiny pages, alternating, each in a fresh headless
Chromium (``upflow.testing.devtools``, the benchmark's driver):

* ``idle``: the bar, never updated;
* ``steps``: the bar's width and a text set every 200 ms, no transition (the page now);
* ``transition``: the same, with ``transition: width 300ms`` on the bar (the page
  before 2026-11-26, Tailwind's ``transition-[width] duration-300``): each update
  starts an animation that runs until the next one, so Chromium lays out and paints
  a frame ~60 times a second for the whole upload.

Prints the CPU-seconds Chromium's processes used over each window, and the medians.
On the benchmark machine the transition cost ~1.5 CPU-seconds per 10 s, in CPU the
upload needs (web/README.md).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.cputime import tree_cpu_seconds  # noqa: E402
from upflow.testing.devtools import DevToolsBrowser  # noqa: E402

BAR_STYLES = {
    "idle": "",
    "steps": "",
    "transition": "transition: width 300ms ease;",
}
UPDATE_MS = 200
SETTLE_S = 2.0


def page_html(mode: str) -> str:
    updates = (
        ""
        if mode == "idle"
        else f"""
<script>
  let pct = 0
  setInterval(() => {{
    pct = (pct + 1) % 100
    document.getElementById('bar').style.width = pct + '%'
    document.getElementById('text').textContent = pct + ' %'
  }}, {UPDATE_MS})
</script>"""
    )
    return f"""<!doctype html>
<html><body style="font-family: sans-serif">
<div style="height: 12px; width: 600px; background: #e2e8f0; border-radius: 9999px; overflow: hidden">
  <div id="bar" style="height: 100%; width: 0%; background: #4f46e5; {BAR_STYLES[mode]}"></div>
</div>
<p id="text">0 %</p>{updates}
</body></html>
"""


def measure(url: str, seconds: float) -> float:
    """Chromium's CPU-seconds over ``seconds`` on ``url``, after it has settled."""
    with DevToolsBrowser.launch() as browser:
        browser.page().navigate(url)
        time.sleep(SETTLE_S)
        before = tree_cpu_seconds(browser.pid)
        time.sleep(seconds)
        return tree_cpu_seconds(browser.pid) - before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per page")
    args = parser.parse_args(argv)
    results: dict[str, list[float]] = {mode: [] for mode in BAR_STYLES}
    with tempfile.TemporaryDirectory(prefix="upflow-paint-") as tmp:
        urls = {}
        for mode in BAR_STYLES:
            path = Path(tmp) / f"{mode}.html"
            path.write_text(page_html(mode))
            urls[mode] = path.as_uri()
        for round_number in range(1, args.rounds + 1):
            for mode in BAR_STYLES:
                used = measure(urls[mode], args.seconds)
                results[mode].append(used)
                print(
                    f"round {round_number} {mode:10s}: {used:5.2f} CPU-s in {args.seconds:.0f} s", flush=True
                )
    print(f"median CPU-seconds per {args.seconds:.0f} s of a page updating its bar every {UPDATE_MS} ms:")
    for mode, values in results.items():
        print(f"  {mode:10s} {statistics.median(values):5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

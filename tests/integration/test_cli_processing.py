"""The processing subcommands against the local stack: ``upload --wait``, ``report``, ``retry``, ``check``.

* ``upflow upload FILE --wait --json`` prints exactly the summary the
  generator planted (rows, error counts, amount), as the status document's
  ``summary`` object;
* ``upflow check FILE --json`` computes the same summary offline;
* ``upflow report ID -o FILE`` downloads the error report (one line per bad row);
* ``upflow retry ID`` on a finished upload is refused with the API's 409.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from csvgen import generate
from support import run_cli

SUMMARY_FIELDS = ["upload_id", "status", "rows_total", "rows_valid", "rows_invalid", "errors", "amount_valid"]


def cli(args: list[str], home: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return run_cli(args, home, timeout)


def test_upload_wait_json_check_report_and_retry(api_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    payload, expected = generate(3 * 1024 * 1024, seed=31, error_rate=0.05, documents=500)
    path = tmp_path / "payments.csv"
    path.write_bytes(payload)
    assert expected.rows_invalid > 0

    done = cli(
        [
            "upload",
            str(path),
            "--api",
            api_url,
            "--wait",
            "--json",
            "--plain",
            "--poll-interval",
            "0.3",
            "--timeout",
            "240",
        ],
        home,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert list(summary) == SUMMARY_FIELDS
    assert summary["status"] == "completed_with_errors"
    assert {k: summary[k] for k in expected.summary()} == expected.summary()
    assert "processing [" in done.stderr  # followed with plain progress lines
    upload_id = summary["upload_id"]

    checked = cli(["check", str(path), "--json"], home)
    assert checked.returncode == 0, checked.stderr
    offline = json.loads(checked.stdout)
    assert len(offline.pop("documents")) == len(expected.totals)  # the totals per document, too
    assert offline == {**summary, "upload_id": ""}

    report = tmp_path / "errors.csv"
    got = cli(["report", upload_id, "--api", api_url, "-o", str(report)], home)
    assert got.returncode == 0, got.stderr
    lines = report.read_text(encoding="utf-8").splitlines()
    assert len(lines) >= expected.rows_invalid  # a header, then one line per invalid row

    refused = cli(["retry", upload_id, "--api", api_url], home)
    assert refused.returncode == 1 and "409" in refused.stderr and "nothing_to_retry" in refused.stderr

    status = cli(["status", upload_id, "--api", api_url], home)
    assert status.returncode == 0, status.stderr
    assert (
        "completed_with_errors" in status.stdout and f"rows_invalid: {expected.rows_invalid}" in status.stdout
    )

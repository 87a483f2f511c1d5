"""``upflow upload`` as a real subprocess against the local stack (moto server + ``chalice local``).

What these prove:

* a full upload through the CLI lands in S3 byte for byte;
* a CLI killed with SIGKILL mid-upload resumes the *same* upload on the next
  run and PUTs only the parts S3 did not have (counted from the CLI's own
  ``sent part N/M`` lines and checked against ListParts taken between runs);
* a changed file starts a new upload, and ``status``/``abort`` find the token
  in the journal.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from upflow.local.stack import LocalStack

MiB = 1024 * 1024
REPO = Path(__file__).resolve().parents[2]
UPFLOW = [sys.executable, "-m", "upflow.client.cli"]


def make_csv(path: Path, size: int, seed: bytes = b"") -> bytes:
    """``size`` bytes of CSV-looking text (an unmapped header, so processing stops early)."""
    header = b"alpha,beta\n" + seed
    body = base64.encodebytes(os.urandom((size - len(header)) * 3 // 4 + 3))
    data = (header + body)[:size]
    path.write_bytes(data)
    return data


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPFLOW_")}
    env.update({"UPFLOW_HOME": str(home), "PYTHONUNBUFFERED": "1", **extra})
    return env


def run_cli(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*UPFLOW, *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def sent_parts(stderr: str) -> list[int]:
    return [
        int(line.split()[2].split("/")[0]) for line in stderr.splitlines() if line.startswith("sent part ")
    ]


def s3_object(s3: Any, stack: LocalStack, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=stack.names.bucket, Key=key)["Body"].read())


def listed_parts(s3: Any, stack: LocalStack, upload_id: str) -> set[int]:
    """Part numbers S3 holds for ``upload_id``'s multipart upload (straight from moto)."""
    uploads = s3.list_multipart_uploads(Bucket=stack.names.bucket, Prefix=f"uploads/{upload_id}/")["Uploads"]
    (mpu,) = uploads
    parts = s3.list_parts(Bucket=stack.names.bucket, Key=mpu["Key"], UploadId=mpu["UploadId"], MaxParts=1000)
    return {p["PartNumber"] for p in parts.get("Parts", [])}


def test_cli_uploads_a_file_byte_for_byte(stack: LocalStack, api_url: str, s3: Any, tmp_path: Path) -> None:
    path = tmp_path / "payments.csv"
    data = make_csv(path, 20 * MiB + 12345)  # 3 parts of the server's 8 MiB
    done = run_cli(["upload", str(path), "--api", api_url, "--json", "--plain"], cli_env(tmp_path / "home"))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "uploaded" and result["size"] == len(data) and result["part_count"] == 3
    assert sorted(sent_parts(done.stderr)) == [1, 2, 3]
    assert s3_object(s3, stack, result["key"]) == data
    # The journal entry is gone (a second run starts over) but the token stays for `status`.
    status = run_cli(["status", result["upload_id"], "--api", api_url, "--json"], cli_env(tmp_path / "home"))
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["upload_id"] == result["upload_id"]


def test_cli_resumes_after_sigkill_and_sends_only_missing_parts(
    stack: LocalStack, api_url: str, s3: Any, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    path = tmp_path / "big.csv"
    data = make_csv(path, 200 * MiB)  # 25 parts of 8 MiB
    # Throttled to 16 MiB/s with 2 workers: ~13 s for the lot, so the kill lands mid-upload.
    env = cli_env(home, UPFLOW_THROTTLE_BPS=str(16 * MiB))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "upflow.client.cli",
            "upload",
            str(path),
            "--api",
            api_url,
            "--plain",
            "-c",
            "2",
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None and proc.stdout is not None
    first_lines: list[str] = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            first_lines.append(line)
            if len(sent_parts("".join(first_lines))) >= 6:
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "".join(first_lines)
    upload_id = proc.stdout.read().split("upload_id:")[1].split()[0]
    first_sent = set(sent_parts("".join(first_lines)))
    time.sleep(1.0)  # let moto settle any PUT that was mid-flight when the CLI died
    in_s3 = listed_parts(s3, stack, upload_id)
    assert first_sent <= in_s3 and 6 <= len(in_s3) < 25

    second = run_cli(["upload", str(path), "--api", api_url, "--plain", "-c", "4", "--json"], cli_env(home))
    assert second.returncode == 0, second.stderr
    result = json.loads(second.stdout)
    assert result["upload_id"] == upload_id, "the second run must continue the same upload"
    resent = sent_parts(second.stderr)
    assert sorted(resent) == sorted(set(range(1, 26)) - in_s3), "only the parts S3 lacked are sent"
    assert result["parts_sent"] == len(resent) == 25 - len(in_s3)
    assert s3_object(s3, stack, result["key"]) == data


def test_a_changed_file_starts_a_new_upload_and_abort_uses_the_journal_token(
    stack: LocalStack, api_url: str, s3: Any, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    path = tmp_path / "changing.csv"
    make_csv(path, 9 * MiB)
    env = cli_env(home, UPFLOW_THROTTLE_BPS=str(2 * MiB))  # part 1 takes ~4 s: kill before it lands
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "upflow.client.cli",
            "upload",
            str(path),
            "--api",
            api_url,
            "--plain",
            "-c",
            "1",
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first_line = proc.stdout.readline()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    first_id = first_line.split("upload_id:")[1].strip()

    data = make_csv(path, 9 * MiB, seed=b"1,2\n")  # new content, new size/mtime
    done = run_cli(["upload", str(path), "--api", api_url, "--json", "--plain"], cli_env(home))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["upload_id"] != first_id
    assert s3_object(s3, stack, result["key"]) == data

    aborted = run_cli(["abort", first_id, "--api", api_url], cli_env(home))
    assert aborted.returncode == 0, aborted.stderr
    assert f"{first_id} aborted" in aborted.stdout
    status = run_cli(["status", first_id, "--api", api_url, "--json"], cli_env(home))
    assert json.loads(status.stdout)["status"] == "aborted"


def test_status_of_an_upload_without_a_token_is_a_clear_error(api_url: str, tmp_path: Path) -> None:
    done = run_cli(["status", "0123456789abcdef", "--api", api_url], cli_env(tmp_path / "home"))
    assert done.returncode == 1 and "--token" in done.stderr


@pytest.mark.parametrize("token", ["forged"])
def test_a_forged_token_is_refused_by_the_api(api_url: str, tmp_path: Path, token: str) -> None:
    path = tmp_path / "small.csv"
    make_csv(path, 1000)
    done = run_cli(["upload", str(path), "--api", api_url, "--json"], cli_env(tmp_path / "home"))
    assert done.returncode == 0, done.stderr
    upload_id = json.loads(done.stdout)["upload_id"]
    refused = run_cli(["status", upload_id, "--api", api_url, "--token", token], cli_env(tmp_path / "home"))
    assert refused.returncode == 1 and "403" in refused.stderr

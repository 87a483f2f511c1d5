"""Row errors are streamed: found, encoded and written as they come, never all held.

A chunk's errors go to an ``ErrorSink`` in bounded batches, in row order, and the streamed
error file, report and ``upflow check`` report equal what the in-memory path produces. The
last test runs ``upflow check --report`` on a 64 MiB file whose every row is invalid in a
fresh process and holds its peak RSS (VmHWM) to 256 MiB.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from bench.processor import generate_csv
from upflow.client.cli import main
from upflow.core.checker import check_file
from upflow.core.chunk import process_chunk
from upflow.core.chunking import ChunkRange
from upflow.core.detect import detect_format
from upflow.core.kernel import EXCEPTION_ROWS
from upflow.core.report import (
    REPORT_HEADER,
    UTF8_BOM,
    ChunkErrorWriter,
    NoReport,
    ReportWriter,
    decode_chunk_errors,
    iter_chunk_errors,
    iter_chunk_rows,
    report_part_size,
    report_size_bound,
    write_report,
)
from upflow.core.rules import SETTLE_EVERY_ERRORS, RowError
from upflow.definition import GiB, Limits, MiB

REPO = Path(__file__).resolve().parents[2]


class Batches:
    """An ``ErrorSink`` that records each batch it is handed."""

    def __init__(self) -> None:
        self.batches: list[list[RowError]] = []

    def write(self, errors: Sequence[RowError]) -> None:
        self.batches.append(list(errors))


def _hostile_file() -> bytes:
    """~18,000 rows with an error (more than two kernel drains, more than four scalar
    settles), quoted names (rows the kernel hands to the reference) and formula-like values."""
    data = generate_csv(30_000, seed=11, error_rate=0.6)
    extra = '=HYPERLINK("x");"a\nb";1,00;2026-01-01\n52998224725;x;@SUM(1);2026-01-01\n'
    return data + extra.encode()


@pytest.mark.parametrize("fast", [True, False], ids=["kernel", "reference"])
def test_streamed_errors_are_the_kept_errors_in_bounded_batches(fast: bool) -> None:
    data = _hostile_file()
    limits = Limits()
    fmt = detect_format(data[: limits.sniff_bytes], False, limits)
    whole = ChunkRange(0, 0, len(data))

    def run(sink: Batches | ChunkErrorWriter | None) -> Sequence[RowError]:
        return process_chunk(
            data, whole, len(data), fmt, lambda a, b: data[a:b], limits, fast=fast, errors=sink
        ).region.errors

    kept = run(None)
    assert len(kept) > 2 * EXCEPTION_ROWS
    batches = Batches()
    assert run(batches) == ()  # streamed: nothing kept
    assert [e for batch in batches.batches for e in batch] == list(kept)
    # Bounded: a kernel batch is one drain (two errors at most per exception row); a reference
    # batch is flushed once SETTLE_EVERY_ERRORS are pending (a row adds at most two).
    largest = max(map(len, batches.batches))
    assert largest <= (2 * EXCEPTION_ROWS if fast else SETTLE_EVERY_ERRORS + 1)
    assert len(batches.batches) >= 3
    encoded = io.BytesIO()
    writer = ChunkErrorWriter(encoded)
    run(writer)
    assert decode_chunk_errors(encoded.getvalue()) == list(kept)
    assert (writer.rows, writer.size) == (len(kept), len(encoded.getvalue()))


class TrickleRaw(io.RawIOBase):
    """A raw stream handing out at most 7 bytes a read, as a slow network does."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(7, len(buffer), len(self.data) - self.at)
        buffer[:n] = self.data[self.at : self.at + n]
        self.at += n
        return n


def test_a_chunk_error_file_is_decoded_in_batches_as_it_arrives() -> None:
    errors = [RowError(k, "valor", "invalid_amount", 'not "money"\r\n', f"v{k};\n,x") for k in range(10_000)]
    stream = io.BufferedReader(TrickleRaw(chunk_file(errors)), 16)
    batches = list(iter_chunk_errors(stream, batch_rows=4096))
    assert list(map(len, batches)) == [4096, 4096, 1808]
    assert [e for batch in batches for e in batch] == errors
    assert not stream.closed  # the caller's to close
    with pytest.raises(ValueError):
        list(iter_chunk_errors(io.BytesIO(b"a,b\n1,2\n")))


def chunk_file(errors: Sequence[RowError]) -> bytes:
    """The chunk error file of ``errors``, as a worker streams it."""
    out = io.BytesIO()
    ChunkErrorWriter(out).write(errors)
    return out.getvalue()


def test_the_streamed_report_is_the_report_with_bom_and_safe_cells() -> None:
    chunks = [
        (0, [RowError(0, "documento", "invalid_document", "m", '=HYPERLINK("x")')]),
        (41, []),
        (10**18, [RowError(3, "=col", "extra_fields", "-2+3", 'a;"b\nc"'), RowError(9, "", "x", "", "+1")]),
    ]
    out = io.BytesIO()
    report = ReportWriter(out)
    for before, errors in chunks:
        report.write(before, errors)
    text = io.StringIO()
    assert write_report(text, chunks) == report.rows == 3
    assert out.getvalue() == text.getvalue().encode("utf-8") and report.size == len(out.getvalue())
    assert out.getvalue().startswith(UTF8_BOM.encode())
    # The finaliser's way: each chunk's file decoded row by row, rewritten without RowErrors.
    via_files = io.BytesIO()
    from_files = ReportWriter(via_files)
    for before, errors in chunks:
        for batch in iter_chunk_rows(io.BytesIO(chunk_file(errors)), batch_rows=1):
            from_files.write_rows(before, batch)
    assert via_files.getvalue() == out.getvalue() and from_files.rows == 3
    rows = list(csv.reader(io.StringIO(text.getvalue().removeprefix(UTF8_BOM), newline="")))
    assert tuple(rows[0]) == REPORT_HEADER
    assert rows[1] == ["1", "documento", "invalid_document", "m", '\'=HYPERLINK("x")']
    assert rows[2] == [str(10**18 + 4), "'=col", "extra_fields", "'-2+3", 'a;"b\nc"']
    assert rows[3][4] == "'+1"


def test_the_report_size_bound_holds_for_the_worst_rows() -> None:
    # One-digit offsets turned into 20-digit lines, and every cell from the file neutralised.
    errors = [RowError(0, "=c", "invalid_amount", "-m", '@"v"\n') for _ in range(1000)]
    files_size = len(chunk_file(errors))
    out = io.BytesIO()
    ReportWriter(out).write(10**20 - 2, errors)
    assert len(out.getvalue()) <= report_size_bound(files_size, len(errors))
    assert len(out.getvalue()) > report_size_bound(files_size, len(errors)) - 100  # and is tight


def test_report_parts_fit_s3s_10000() -> None:
    assert report_part_size(1, 8 * MiB) == 8 * MiB
    assert report_part_size(80 * GiB, 8 * MiB) == 9 * MiB  # 8 MiB parts would need 10,240
    for bound in (80 * GiB, 1000 * GiB + 1, 3 * 1024 * GiB):
        part = report_part_size(bound, 8 * MiB)
        assert part % MiB == 0 and part * 10_000 >= bound
    with pytest.raises(ValueError):
        report_part_size(10_000 * 5 * GiB + 1, 8 * MiB)


def _reparse_file() -> bytes:
    # A quoted field holding lines that look like rows makes the chunk after its first line
    # break misspeculate (see test_core_checker); errors before, inside and after it.
    inside = "52998224725;fake;1,00\n" * 3
    return (
        "documento;nome;valor\n123;a;1,00\n"
        f'52998224725;"quoted\n{inside}";2,00\n=1+2;b;x\n52998224725;after;3,00\n'
    ).encode()


def test_check_file_streams_the_same_report(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    data = _reparse_file()
    path.write_bytes(data)
    for chunk_size in (data.index(b"52998224725;fake"), 5, 64, None):
        kept = check_file(path, chunk_size, Limits())
        assert [(line, e.code) for line, e in kept.errors] == [
            (2, "invalid_document"),
            (8, "invalid_document"),
            (8, "invalid_amount"),
        ]
        out = io.BytesIO()
        streamed = check_file(path, chunk_size, Limits(), report=ReportWriter(out))
        assert streamed.errors == []
        assert (streamed.summary, streamed.totals, streamed.reparsed) == (
            kept.summary,
            kept.totals,
            kept.reparsed,
        )
        # The kept errors' report (line = 1 + line breaks before + offset), byte for byte.
        text = io.StringIO()
        write_report(text, [(line - 1 - e.line_offset, [e]) for line, e in kept.errors])
        assert out.getvalue() == text.getvalue().encode("utf-8")
        assert "'=1+2" in text.getvalue()
    assert check_file(path, data.index(b"52998224725;fake"), Limits()).reparsed[:1] == (1,)
    assert check_file(path, 7, Limits(), report=NoReport()).summary == kept.summary


def test_check_writes_its_report_and_removes_it_when_the_file_cannot_be_checked(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_bytes(_reparse_file())
    report = tmp_path / "errors.csv"
    out, err = io.StringIO(), io.StringIO()
    assert main(["check", str(path), "--json", "--report", str(report)], out=out, err=err, env={}) == 0
    assert json.loads(out.getvalue())["rows_invalid"] == 2
    assert "wrote 3 error rows" in err.getvalue()
    rows = list(csv.reader(io.StringIO(report.read_bytes().decode("utf-8-sig"), newline="")))
    assert [r[0] for r in rows] == ["line", "2", "8", "8"]
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"a;b\n1;2\n")
    assert (
        main(["check", str(bad), "--report", str(report)], out=io.StringIO(), err=io.StringIO(), env={}) == 1
    )
    assert not report.exists()


# A fresh interpreter running the `upflow` command; it reports its own peak RSS (VmHWM: its
# address space's high-water mark; ru_maxrss would carry a parent's size across exec).
_MEASURED_CLI = """
import json, sys
def kib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field))
from upflow.client.cli import main
baseline = kib("VmRSS:")
code = main(sys.argv[1:])
print(json.dumps({"exit": code, "baseline_kib": baseline, "peak_kib": kib("VmHWM:")}), file=sys.stderr)
"""
ROW_BYTES = 128
BOUND_MIB = 256


def test_check_of_a_64_mib_all_invalid_file_stays_within_256_mib(tmp_path: Path) -> None:
    # Every row has an invalid CPF and an invalid amount: 512 Ki rows, 1 Mi errors. Kept in
    # memory (as before streaming), 2.35 M such errors took ~650 MiB; the report is ~70 MiB.
    row = "529.982.247-26;{:->92};R$ 1,2,3;2026-01-01\n".format("Fulano").encode()
    assert len(row) == ROW_BYTES
    rows = 64 * MiB // ROW_BYTES
    path = tmp_path / "invalid.csv"
    with path.open("wb") as fh:
        fh.write(b"documento;nome;valor;data\n")
        for _ in range(rows // 4096):
            fh.write(row * 4096)
    report = tmp_path / "errors.csv"
    run = subprocess.run(
        [sys.executable, "-c", _MEASURED_CLI, "check", str(path), "--json", "--report", str(report)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    measured = json.loads(run.stderr.strip().splitlines()[-1])
    assert measured["exit"] == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["rows_invalid"] == rows
    assert summary["errors"] == {"invalid_amount": rows, "invalid_document": rows}
    peak, baseline = measured["peak_kib"] // 1024, measured["baseline_kib"] // 1024
    report_mib = report.stat().st_size // MiB
    print(f"\npeak RSS {peak} MiB (interpreter and imports {baseline} MiB), report {report_mib} MiB")
    assert peak <= BOUND_MIB
    # Meaningful: it grew by far less than the report it wrote, so it never held it.
    assert peak - baseline < report_mib // 2
    # Every error row, at its physical line, in order: line k + 2 holds row k's two errors.
    with report.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        assert tuple(next(reader)) == REPORT_HEADER
        count = 0
        for k, r in enumerate(reader):
            assert int(r[0]) == k // 2 + 2
            assert r[2] == ("invalid_document", "invalid_amount")[k % 2]
            count += 1
    assert count == 2 * rows

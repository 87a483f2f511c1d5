"""Processor benchmark: naive csv+validate-docbr baseline vs upflow's process_chunk.

    make bench-processor      # or: .venv/bin/python bench/processor.py [--rows N] [--repeat K]

Generates one CSV (not timed), then prints rows/s per core of (a) the naive
baseline and (b) ``process_chunk`` over the file's 8 MiB chunks in one process — each
chunk alone, speculating its start state, then the transfer functions composed and any
misspeculated chunk parsed again, as the pipeline does — their ratio, and the peak RSS of
a child process processing one 64 MiB chunk.

Then (c), the map/reduce consolidation on a second file of the same rows over
``--map-documents`` distinct documents (100,000 by default, as ``bench/pipeline.py``: each
8 MiB chunk then holds ~80 % of them): CPU seconds per 8 MiB chunk of processing it and of
encoding its partial, and CPU nanoseconds per partial record of the reduce (every shard
of the product's plan over every partial), each by the compiled path and by the
pure-Python reference (checked equal). CPU time, not wall time: the machine is shared.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from upflow.core.chunk import ChunkResult, process_chunk, true_start_states
from upflow.core.chunking import ChunkRange, plan_chunks
from upflow.core.consolidation import (
    encode_partial,
    estimate_distinct,
    index_range,
    merge_sketches,
    plan_shards,
    records_range,
    reduce_shard,
    shard_count_for,
)
from upflow.core.detect import detect_format
from upflow.core.money import MoneyError, parse_cents
from upflow.core.rules import summarize
from upflow.definition import Limits, MiB
from upflow.testing.documents import random_cnpj, random_cpf

T = TypeVar("T")
HEADER = "documento;nome;valor;data\n"
_NAMES = [
    "Maria Silva",
    "João Souza",
    "Ana Paula",
    "José Santos",
    "Carlos Lima",
    "Fernanda Costa",
    "Luís Araújo",
    "Beatriz Rocha",
    "Pedro Alves",
    "Conceição Dias",
]


def _render_doc(rng: random.Random, doc: str) -> str:
    if len(doc) == 11:
        return f"{doc[:3]}.{doc[3:6]}.{doc[6:9]}-{doc[9:]}" if rng.random() < 0.5 else doc
    form = rng.random()
    if form < 0.4:
        return f"{doc[:2]}.{doc[2:5]}.{doc[5:8]}/{doc[8:12]}-{doc[12:]}"
    if form < 0.5:
        return doc.lower()
    return doc


def _render_amount(rng: random.Random) -> str:
    cents = rng.randrange(1, 10_000_000)
    neg = rng.random() < 0.05
    i, c = divmod(cents, 100)
    br = f"{i:,}".replace(",", ".")
    form = rng.randrange(8)
    text = [
        f"{i},{c:02d}",
        f"{br},{c:02d}",
        f"{i}.{c:02d}",
        f"{i:,}.{c:02d}",
        f"R$ {br},{c:02d}",
        f"{i}",
        f"R$ {i},{c:02d}",
        f"{br},{c:02d}",
    ][form]
    if neg:
        text = f"R$ -{text[3:]}" if text.startswith("R$ ") else f"-{text}"
    return text


def generate_csv(rows: int, seed: int = 7, error_rate: float = 0.05, pool: int = 20_000) -> bytes:
    """A ``documento;nome;valor;data`` CSV with ~``error_rate`` planted errors (UTF-8, accents, quotes)."""
    rng = random.Random(seed)
    docs = [random_cpf(rng) if k % 2 else random_cnpj(rng, alnum=k % 4 == 0) for k in range(pool)]
    out = io.StringIO()
    out.write(HEADER)
    for k in range(rows):
        doc = _render_doc(rng, rng.choice(docs))
        amount = _render_amount(rng)
        name = rng.choice(_NAMES)
        date = f"2026-{1 + k % 12:02d}-{1 + k % 28:02d}"
        if rng.random() < error_rate:
            kind = rng.randrange(5)
            if kind == 0:  # a wrong check digit
                last = doc[-1]
                doc = doc[:-1] + str((int(last) + 1) % 10) if last.isdigit() else doc[:-1] + "0"
            elif kind == 1:
                amount = rng.choice(["12,3,4", "abc", "1.234", "10,555", "R$", "1..2"])
            elif kind == 2:
                out.write(f"{doc};{name}\n")
                continue
            elif kind == 3:
                out.write(f"{doc};{name};{amount};{date};extra\n")
                continue
            else:
                doc = rng.choice(["11111111111", "123", "12.345.678/0001-00", "ABC"])
        if rng.random() < 0.01:
            name = f'"{name}; filial ""centro"""'
        out.write(f"{doc};{name};{amount};{date}\n")
    return out.getvalue().encode("utf-8")


def naive_baseline(data: bytes) -> tuple[int, int]:
    """csv.reader + validate-docbr per row (+ the same money parser): (rows, valid)."""
    from validate_docbr import CNPJ, CPF

    cpf, cnpj = CPF(), CNPJ()
    totals: dict[str, int] = {}
    rows = valid = 0
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=";")
    next(reader)
    for rec in reader:
        if not rec:
            continue
        rows += 1
        if len(rec) != 4:
            continue
        doc = rec[0]
        if not (cpf.validate(doc) or cnpj.validate(doc)):
            continue
        try:
            cents = parse_cents(rec[2])
        except MoneyError:
            continue
        valid += 1
        totals[doc] = totals.get(doc, 0) + cents
    return rows, valid


def run_upflow(data: bytes, chunk_size: int, limits: Limits) -> tuple[int, int, int]:
    """(rows, valid rows, chunks parsed again)."""
    results, reparsed = process_file(data, chunk_size, limits)
    s = summarize(r.region for r in results)
    return s.rows_total, s.rows_valid, reparsed


def process_file(data: bytes, chunk_size: int, limits: Limits) -> tuple[list[ChunkResult], int]:
    """Every chunk's result, as the pipeline gets them, and how many were parsed again."""
    fmt = detect_format(data[: limits.sniff_bytes], len(data) <= limits.sniff_bytes, limits)

    def read(a: int, b: int) -> bytes:
        return data[a:b]

    chunks = plan_chunks(len(data), chunk_size)
    results = [process_chunk(data[c.start : c.end], c, len(data), fmt, read, limits) for c in chunks]
    reparsed = 0
    for c, state in zip(chunks, true_start_states(results), strict=True):
        if results[c.index].needs_reparse(state):
            results[c.index] = process_chunk(
                data[c.start : c.end], c, len(data), fmt, read, limits, start_state=state
            )
            reparsed += 1
    return results, reparsed


def _best_cpu(repeat: int, run: Callable[[], T]) -> tuple[float, T]:
    """The least CPU seconds of ``repeat`` runs of ``run``, and its (last) result."""
    c0 = time.process_time()
    result = run()
    best = time.process_time() - c0
    for _ in range(repeat - 1):
        c0 = time.process_time()
        result = run()
        best = min(best, time.process_time() - c0)
    return best, result


def consolidation(data: bytes, limits: Limits, repeat: int) -> None:
    """(c): CPU per 8 MiB chunk of processing and of the partial, per record of the reduce."""
    chunk_count = len(plan_chunks(len(data), limits.chunk_size))
    parse_cpu, results = _best_cpu(repeat, lambda: process_file(data, limits.chunk_size, limits)[0])
    columns = [(t.documents, t.doc_types, t.rows, t.cents) for t in (r.region.totals for r in results)]
    fast_cpu, partials = _best_cpu(repeat, lambda: [encode_partial(*cols) for cols in columns])
    ref_cpu, ref = _best_cpu(1, lambda: [encode_partial(*cols, fast=False) for cols in columns])
    if partials != ref:
        raise SystemExit("the compiled partials differ from the reference's")
    records = sum(p.documents for p in partials)
    estimate = estimate_distinct(merge_sketches(p.sketch for p in partials))
    shards = plan_shards(
        shard_count_for(estimate, records, limits.documents_per_shard, limits.partial_records_per_shard)
    )

    def pieces(shard_index: int) -> list[bytes]:
        shard, out = shards[shard_index], []
        for partial in partials:
            lo, hi = index_range(shard.first_bucket, shard.end_bucket)
            start, end = records_range(partial.data[lo:hi], shard.first_bucket, shard.end_bucket)
            out.append(partial.data[start:end])
        return out

    shard_pieces = [pieces(k) for k in range(len(shards))]
    reduce_cpu, reduced = _best_cpu(repeat, lambda: [reduce_shard(p) for p in shard_pieces])
    reduce_ref_cpu, reduced_ref = _best_cpu(1, lambda: [reduce_shard(p, fast=False) for p in shard_pieces])
    if reduced != reduced_ref:
        raise SystemExit("the compiled reduce differs from the reference's")
    documents = sum(map(len, reduced))
    print(
        f"(c) consolidation: {chunk_count} chunks of 8 MiB, {records / chunk_count:,.0f} documents per "
        f"chunk ({documents:,} distinct), {len(shards)} shards"
    )
    print(f"    per chunk, CPU s: processing {parse_cpu / chunk_count:.3f} (best of {repeat})")
    print(
        f"    per chunk, CPU s: partial {fast_cpu / chunk_count:.4f} compiled (best of {repeat}), "
        f"{ref_cpu / chunk_count:.3f} reference"
    )
    print(
        f"    reduce, CPU ns per partial record: {reduce_cpu / records * 1e9:.0f} compiled "
        f"(best of {repeat}), {reduce_ref_cpu / records * 1e9:.0f} reference ({records:,} records)"
    )


def rss_child(path: str, size: int) -> None:
    """Process chunk 0 (``size`` bytes) of ``path`` and print the peak RSS in MiB."""
    limits = Limits()
    total = os.path.getsize(path)
    with open(path, "rb") as fh:

        def read(a: int, b: int) -> bytes:
            fh.seek(a)
            return fh.read(b - a)

        fmt = detect_format(read(0, limits.sniff_bytes), False, limits)
        data = read(0, size)
        res = process_chunk(data, ChunkRange(0, 0, size), total, fmt, read, limits)
    print(f"{peak_rss_mib():.1f} {res.region.rows_total}")


def peak_rss_mib() -> float:
    """Peak RSS of this process image in MiB.

    ``VmHWM`` belongs to the process's own address space; ``ru_maxrss`` is kept across
    fork + exec on Linux, so a child of a big parent would report the parent's size.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rss-child", nargs=2, metavar=("PATH", "BYTES"))
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="runs of (b); the best is reported (default 3)")
    ap.add_argument(
        "--map-documents",
        type=int,
        default=100_000,
        help="distinct documents of (c)'s file (default 100,000)",
    )
    ap.add_argument("--skip-consolidation", action="store_true", help="leave (c) out")
    args = ap.parse_args()
    if args.rss_child:
        rss_child(args.rss_child[0], int(args.rss_child[1]))
        return
    limits = Limits()
    t0 = time.perf_counter()
    data = generate_csv(args.rows)
    print(
        f"generated {args.rows:,} rows, {len(data) / MiB:.1f} MiB in {time.perf_counter() - t0:.1f} s "
        "(not timed)"
    )
    naive_rate = naive_cpu = 0.0
    if not args.skip_naive:
        t0, c0 = time.perf_counter(), time.process_time()
        n_rows, n_valid = naive_baseline(data)
        dt, naive_cpu = time.perf_counter() - t0, time.process_time() - c0
        naive_rate = n_rows / dt
        print(
            f"(a) naive csv.reader + validate-docbr: {n_rows:,} rows ({n_valid:,} valid) in {dt:.2f} s "
            f"= {naive_rate / 1e6:.3f} M rows/s per core"
        )
    best = best_cpu = float("inf")
    for _ in range(max(1, args.repeat)):
        t0, c0 = time.perf_counter(), time.process_time()
        u_rows, u_valid, reparsed = run_upflow(data, limits.chunk_size, limits)
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    rate = u_rows / best
    print(
        f"(b) upflow process_chunk, 8 MiB chunks, 1 process: {u_rows:,} rows ({u_valid:,} valid) in "
        f"{best:.2f} s (best of {args.repeat}) = {rate / 1e6:.3f} M rows/s per core (target >= 2.0); "
        f"{reparsed} chunk(s) misspeculated and parsed again"
    )
    # On a shared machine wall time includes waiting for a core; CPU time of this process does not.
    print(
        f"    CPU time: {best_cpu:.3f} s (best of {args.repeat}) = "
        f"{u_rows / best_cpu / 1e6:.3f} M rows/s per CPU-second"
    )
    if naive_rate:
        print(f"    ratio (b)/(a): {rate / naive_rate:.1f}x wall, {naive_cpu / best_cpu:.1f}x CPU")
    # Peak RSS of one 64 MiB chunk, in a fresh child process.
    chunk = 64 * MiB
    body = data[len(HEADER) :]
    with tempfile.NamedTemporaryFile(suffix=".csv", delete=False) as tmp:
        tmp.write(HEADER.encode())
        written = len(HEADER)
        while written < chunk + MiB:
            tmp.write(body)
            written += len(body)
        path = tmp.name
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--rss-child", path, str(chunk)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
    finally:
        os.unlink(path)
    print(
        f"peak RSS processing one 64 MiB chunk ({int(out[1]):,} rows): {float(out[0]):.1f} MiB "
        "(target <= 256)"
    )
    if not args.skip_consolidation:
        del data
        consolidation(generate_csv(args.rows, pool=args.map_documents), limits, args.repeat)


if __name__ == "__main__":
    main()

"""End to end through the local stack: upload, processing, results; MB/s, where the time goes.

    .venv/bin/python bench/pipeline.py                          # 1 GiB, 100,000 documents
    .venv/bin/python bench/pipeline.py --size 64MiB --documents 10000
    .venv/bin/python bench/pipeline.py --size 4GiB --documents 200000 --keep

Generates (untimed, streamed to disk, memory bounded by the documents, not the
size) a ``;`` CSV whose right answer is known by construction: N distinct valid
documents (CPF, numeric CNPJ, the 2026 alphanumeric CNPJ; plain, masked, lower
case), amounts in five notations, quoted names holding the delimiter, doubled
quotes and a line break, blank lines, and planted invalid rows (wrong check
digit, bad amount, missing and extra fields). The generator keeps each
document's rows and exact integer cents and the summary counts.

Then starts its own local stack (``upflow.local.stack.start_stack``: free
ports, its own temp dirs, every AWS request logged to a file), and times, as a
user would run them:

* upload: ``upflow upload FILE --api URL --wait --json`` from its start to the
  ``uploaded …`` line on its stderr (``complete`` answered);
* processing: from there to the final status (planner → map → reduce →
  finalise), the boundaries seen by polling the upload's status item in
  DynamoDB every ``--poll`` seconds; the CLI's own return (it polls every
  second) is printed too;
* results: ``upflow results ID -o totals.csv``.

Every document's rows and amount in the downloaded CSV, and the summary, are
checked exactly against the generator's. Prints MB/s end to end (the two
commands' wall time), each phase's seconds, the chunk and shard counts, the
stack's peak RSS (sum over its processes, sampled from /proc), the CPU seconds
of each kind of process per phase (from /proc), the AWS requests per
operation per phase (the stack's request log), the ratio end-to-end MB/s /
upload MB/s measured in this run (what processing costs on top of moving the
bytes), and the target check (>= 25 MB/s end to end; MB = 10^6 bytes).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from upflow.aws.clients import REQUEST_LOG_ENV  # noqa: E402
from upflow.definition import GiB, KiB, MiB  # noqa: E402
from upflow.local.processes import free_port  # noqa: E402
from upflow.local.stack import LocalStack, start_stack  # noqa: E402
from upflow.testing.documents import random_cnpj, random_cpf  # noqa: E402

TARGET_MB_PER_S = 25.0
# The stack's choice of S3 server, when it offers one (an older stack is moto only).
_STACK = importlib.import_module("upflow.local.stack")
S3_CHOICES: tuple[str, ...] = tuple(getattr(_STACK, "S3_SERVERS", ("moto",)))
DEFAULT_S3: str = str(getattr(_STACK, "DEFAULT_S3", "moto"))
MB = 1_000_000
DATA_DIR = REPO / ".upflow" / "bench"  # --keep puts the file here (.upflow/ is ignored by git)
GENERATOR_VERSION = 1  # bump when the generator's output changes: kept files are regenerated

# --- the file ------------------------------------------------------------------------------

HEADER = "documento;nome;valor;data\n"
NAMES = (
    "Maria Silva",
    "João Souza",
    "Ana Paula Ferreira",
    "José Santos",
    "Carlos Lima",
    "Fernanda Costa",
    "Luís Araújo",
    "Beatriz Rocha",
    "Pedro Alves",
    "Conceição Dias",
    "Comércio de Peças Ltda",
    "Padaria Pão Quente ME",
)
# A valid row's name holding the delimiter, doubled quotes and a line break (a quoted field).
QUOTED_NAMES = (
    '"Silva; ""Júnior""\nsegunda linha"',
    '"Loja ""Centro""; filial 2"',
    '"Souza;\nSouza"',
)
DATES = tuple(f"2026-{month:02d}-{day:02d}" for month in range(1, 13) for day in (1, 10, 20, 28))
# Amounts the product refuses (invalid_amount): garbage, too many separators, ambiguous, 3 decimals.
BAD_AMOUNTS = ("12,3a", "abc", "1.2.3,4,5", "1.234", "10,555", "R$", "1..2")
ERROR_CODES = ("invalid_document", "invalid_amount", "missing_field", "extra_fields")
AMOUNT_TABLE = 8192  # distinct amount texts (each with its exact cents) the rows draw from
BATCH_ROWS = 4096
MIN_SIZE = 4 * KiB
_LAST_ROOM = 96  # bytes kept for the last row, whose name is stretched to the exact size


def mask(document: str) -> str:
    if len(document) == 11:
        return f"{document[:3]}.{document[3:6]}.{document[6:9]}-{document[9:]}"
    return f"{document[:2]}.{document[2:5]}.{document[5:8]}/{document[8:12]}-{document[12:]}"


def broken(document: str) -> str:
    """The document with its last check digit wrong (always a digit, in CPF and both CNPJs)."""
    return document[:-1] + str((int(document[-1]) + 1) % 10)


def amount_text(cents: int, style: int) -> str:
    """Five notations the product accepts: 1234.56, 1234,56, 1.234,56, 1,234.56, R$ 1.234,56."""
    units, frac = divmod(abs(cents), 100)
    grouped = f"{units:,}"
    text = (
        f"{units}.{frac:02d}",
        f"{units},{frac:02d}",
        grouped.replace(",", ".") + f",{frac:02d}",
        f"{grouped}.{frac:02d}",
        "R$ " + grouped.replace(",", ".") + f",{frac:02d}",
    )[style]
    if cents < 0:
        text = "R$ -" + text[3:] if text.startswith("R$ ") else "-" + text
    return text


def cents_text(cents: int) -> str:
    """Two-place decimal text, as the results write amounts ("1234.50", "-0.05")."""
    units, frac = divmod(abs(cents), 100)
    return f"{'-' if cents < 0 else ''}{units}.{frac:02d}"


def text_cents(text: str) -> int:
    """The inverse of :func:`cents_text` (exact; refuses anything else)."""
    match = re.fullmatch(r"(-?)(\d+)\.(\d\d)", text)
    if match is None:
        raise ValueError(f"not a two-place amount: {text!r}")
    value = int(match.group(2)) * 100 + int(match.group(3))
    return -value if match.group(1) else value


@dataclass
class DocumentPool:
    documents: list[str]  # as the results show them: digits, or upper-case letters and digits
    kinds: list[str]  # "cpf" or "cnpj"
    shown: list[str]  # two spellings of each: index 2d and 2d + 1 are document d


def make_pool(count: int, rng: random.Random) -> DocumentPool:
    """``count`` distinct valid documents: 3/5 CPF, 1/5 numeric CNPJ, 1/5 alphanumeric CNPJ."""
    documents: list[str] = []
    kinds: list[str] = []
    shown: list[str] = []
    seen: set[str] = set()
    while len(documents) < count:
        slot = len(documents) % 5
        document = random_cpf(rng) if slot < 3 else random_cnpj(rng, alnum=slot == 4)
        if document in seen or len(set(document)) == 1:
            continue  # distinct, and never all-equal characters (refused by both validators)
        seen.add(document)
        documents.append(document)
        kinds.append("cpf" if slot < 3 else "cnpj")
        # Plain and masked; the alphanumeric CNPJ also in lower case (letters are upper-cased).
        second = document.lower() if slot == 4 and rng.random() < 0.5 else mask(document)
        shown.extend((document, second))
    return DocumentPool(documents, kinds, shown)


@dataclass
class Expected:
    """The right answer, by construction: per document (index into ``documents``) and in sum."""

    size: int
    documents: list[str]
    kinds: list[str]
    rows: list[int]
    cents: list[int]
    rows_total: int = 0
    rows_valid: int = 0
    rows_invalid: int = 0
    amount_valid_cents: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    blank_lines: int = 0

    def totals(self) -> dict[str, tuple[str, int, int]]:
        """document → (type, rows, cents), for the documents with at least one valid row."""
        return {
            document: (kind, rows, cents)
            for document, kind, rows, cents in zip(
                self.documents, self.kinds, self.rows, self.cents, strict=True
            )
            if rows
        }

    def summary(self) -> dict[str, Any]:
        return {
            "rows_total": self.rows_total,
            "rows_valid": self.rows_valid,
            "rows_invalid": self.rows_invalid,
            "errors": {code: n for code, n in sorted(self.errors.items()) if n},
            "amount_valid": cents_text(self.amount_valid_cents),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "documents": self.documents,
            "kinds": self.kinds,
            "rows": self.rows,
            "cents": self.cents,
            "rows_total": self.rows_total,
            "rows_valid": self.rows_valid,
            "rows_invalid": self.rows_invalid,
            "amount_valid_cents": self.amount_valid_cents,
            "errors": dict(self.errors),
            "blank_lines": self.blank_lines,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Expected:
        return cls(
            size=int(doc["size"]),
            documents=list(doc["documents"]),
            kinds=list(doc["kinds"]),
            rows=[int(n) for n in doc["rows"]],
            cents=[int(n) for n in doc["cents"]],
            rows_total=int(doc["rows_total"]),
            rows_valid=int(doc["rows_valid"]),
            rows_invalid=int(doc["rows_invalid"]),
            amount_valid_cents=int(doc["amount_valid_cents"]),
            errors=Counter({str(k): int(v) for k, v in doc["errors"].items()}),
            blank_lines=int(doc["blank_lines"]),
        )


@dataclass
class _Batch:
    """Rows about to be written, with what each adds: ``doc`` -1 for an invalid row or a blank line."""

    lines: list[str]
    docs: list[int]
    cents: list[int]
    fates: list[str]  # "" valid, "blank", or the error code


def _error_row(rng: random.Random, pool: DocumentPool, fate: str) -> str:
    index = rng.randrange(len(pool.shown))
    shown = pool.shown[index]
    name = rng.choice(NAMES)
    amount = amount_text(rng.randint(-50_000, 5_000_000), rng.randrange(5))
    date = rng.choice(DATES)
    if fate == "invalid_document":
        shown = broken(pool.documents[index >> 1])
        if rng.random() < 0.5:
            shown = mask(shown)
    elif fate == "invalid_amount":
        amount = rng.choice(BAD_AMOUNTS)
    elif fate == "missing_field":
        return f"{shown};{name}\n"
    else:
        return f"{shown};{name};{amount};{date};sobra\n"
    return f"{shown};{name};{amount};{date}\n"


class _Rows:
    """Draws batches of rows; the tables make a row a few list lookups and one f-string."""

    def __init__(
        self, pool: DocumentPool, rng: random.Random, error_rate: float, quoted_rate: float, blank_rate: float
    ) -> None:
        self.pool = pool
        self.rng = rng
        self.error_rate = error_rate
        self.quoted_rate = quoted_rate
        self.blank_rate = blank_rate
        amounts = [
            rng.randint(-50_000, 5_000_000) if rng.random() < 0.1 else rng.randint(1, 500_000)
            for _ in range(AMOUNT_TABLE)
        ]
        self.amount_cents = amounts
        # "amount;date\n": the row's tail in one lookup.
        self.tails = [f"{amount_text(c, rng.randrange(5))};{rng.choice(DATES)}\n" for c in amounts]
        self.shown_range = range(len(pool.shown))
        self.tail_range = range(AMOUNT_TABLE)
        self.name_range = range(len(NAMES))

    def _count(self, rate: float, rows: int) -> int:
        expected = rate * rows
        whole = int(expected)
        return whole + (1 if self.rng.random() < expected - whole else 0)

    def batch(self) -> _Batch:
        rng, shown, names, tails = self.rng, self.pool.shown, NAMES, self.tails
        picks = rng.choices(self.shown_range, k=BATCH_ROWS)
        ends = rng.choices(self.tail_range, k=BATCH_ROWS)
        who = rng.choices(self.name_range, k=BATCH_ROWS)
        lines = [f"{shown[p]};{names[n]};{tails[t]}" for p, n, t in zip(picks, who, ends, strict=True)]
        docs = [p >> 1 for p in picks]
        amount_cents = self.amount_cents
        cents = [amount_cents[t] for t in ends]
        fates = [""] * BATCH_ROWS
        # Quoted names replace some rows' names (still valid rows).
        for _ in range(self._count(self.quoted_rate, BATCH_ROWS)):
            at = rng.randrange(BATCH_ROWS)
            lines[at] = f"{shown[picks[at]]};{rng.choice(QUOTED_NAMES)};{tails[ends[at]]}"
        extra: list[tuple[int, str, str]] = []
        for _ in range(self._count(self.error_rate, BATCH_ROWS)):
            fate = rng.choice(ERROR_CODES)
            extra.append((rng.randrange(BATCH_ROWS + 1), _error_row(rng, self.pool, fate), fate))
        for _ in range(self._count(self.blank_rate, BATCH_ROWS)):
            extra.append((rng.randrange(BATCH_ROWS + 1), "\n", "blank"))
        for at, line, fate in sorted(extra, reverse=True):  # from the end: earlier positions hold
            lines.insert(at, line)
            docs.insert(at, -1)
            cents.insert(at, 0)
            fates.insert(at, fate)
        return _Batch(lines, docs, cents, fates)


def _account(expected: Expected, batch: _Batch, count: int) -> None:
    rows, cents = expected.rows, expected.cents
    valid = 0
    amount = 0
    for doc, value in zip(batch.docs[:count], batch.cents[:count], strict=True):
        if doc >= 0:
            rows[doc] += 1
            cents[doc] += value
            valid += 1
            amount += value
    fates = Counter(batch.fates[:count])
    blank = fates.pop("blank", 0)
    fates.pop("", None)
    invalid = sum(fates.values())
    expected.rows_valid += valid
    expected.rows_invalid += invalid
    expected.rows_total += valid + invalid
    expected.amount_valid_cents += amount
    expected.errors.update(fates)
    expected.blank_lines += blank


def generate_csv(
    path: Path,
    size: int,
    documents: int,
    seed: int = 2026,
    error_rate: float = 0.01,
    quoted_rate: float = 0.002,
    blank_rate: float = 0.0005,
) -> Expected:
    """Write a CSV of exactly ``size`` bytes to ``path`` and answer what it must total.

    Streamed: one batch of rows in memory at a time; the bookkeeping is per document.
    """
    if size < MIN_SIZE:
        raise ValueError(f"size must be at least {MIN_SIZE} bytes")
    rng = random.Random(seed)
    pool = make_pool(documents, rng)
    expected = Expected(size, pool.documents, pool.kinds, [0] * documents, [0] * documents)
    rows = _Rows(pool, rng, error_rate, quoted_rate, blank_rate)
    limit = size - _LAST_ROOM
    with path.open("wb") as out:
        written = out.write(HEADER.encode())
        while True:
            batch = rows.batch()
            blob = "".join(batch.lines).encode()
            if written + len(blob) <= limit:
                written += out.write(blob)
                _account(expected, batch, len(batch.lines))
                continue
            count = 0
            for line in batch.lines:  # the last batch: whole rows while they fit
                encoded = line.encode()
                if written + len(encoded) > limit:
                    break
                written += out.write(encoded)
                count += 1
            _account(expected, batch, count)
            break
        # The last row: a valid one, its name stretched to land on the exact size.
        doc = rng.randrange(documents)
        cents = rng.randint(1, 500_000)
        head, tail = f"{pool.documents[doc]};", f";{amount_text(cents, 1)};2026-12-06\n"
        room = size - written - len(head.encode()) - len(tail.encode())
        out.write(f"{head}{'x' * room}{tail}".encode())
        last = _Batch([""], [doc], [cents], [""])
        _account(expected, last, 1)
    return expected


def kept_paths(size: int, documents: int, seed: int, error_rate: float) -> tuple[Path, Path]:
    stem = f"pipeline-v{GENERATOR_VERSION}-{size}-{documents}-{seed}-{error_rate:g}"
    return DATA_DIR / f"{stem}.csv", DATA_DIR / f"{stem}.expected.json"


def prepare_file(args: argparse.Namespace, work: Path) -> tuple[Path, Expected, float]:
    """The file and its expectation: reused from ``--keep``'s directory, or generated (seconds)."""
    if args.keep:
        path, sidecar = kept_paths(args.size, args.documents, args.seed, args.error_rate)
        if path.is_file() and sidecar.is_file() and path.stat().st_size == args.size:
            print(f"reusing {path}", flush=True)
            return path, Expected.from_json(json.loads(sidecar.read_text())), 0.0
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        path, sidecar = work / "pipeline.csv", work / "pipeline.expected.json"
    print(f"generating {args.size / MiB:,.0f} MiB, {args.documents:,} documents → {path} …", flush=True)
    started = time.perf_counter()
    expected = generate_csv(path, args.size, args.documents, args.seed, args.error_rate)
    seconds = time.perf_counter() - started
    if args.keep:
        sidecar.write_text(json.dumps(expected.to_json()))
    os.sync()  # nothing left to write back while the upload is timed
    return path, expected, seconds


# --- the stack's processes, from /proc --------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def kind_of(child_name: str) -> str:
    """Group the stack's children: every chunk pump is one kind, and so on."""
    if child_name.startswith("pump-"):
        role = child_name.removeprefix("pump-").rsplit("-", 1)[0]
        return {"chunks": "chunk workers (pumps)", "events": "planner (events pump)"}.get(
            role, f"{role} (pump)"
        )
    if child_name == "chalice local":
        return "API (chalice local)"
    if child_name == "seaweedfs":
        return "S3 (SeaweedFS)"
    return child_name


def read_proc() -> list[tuple[int, float, int]]:
    """(session id, CPU seconds incl. reaped children, RSS bytes) of every process."""
    found: list[tuple[int, float, int]] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                raw = stat.read()
        except OSError:
            continue  # gone meanwhile
        fields = raw[raw.rfind(b")") + 2 :].split()
        # fields[n] is stat field n + 3: session 6, utime..cstime 14..17, rss 24
        session = int(fields[3])
        ticks = sum(int(value) for value in fields[11:15])
        found.append((session, ticks / CLOCK_TICKS, int(fields[21]) * PAGE_SIZE))
    return found


class ProcessKinds:
    """CPU seconds and RSS of the stack's processes, by kind (each child is its own session)."""

    def __init__(self, stack: LocalStack) -> None:
        self.sessions = {child.process.pid: kind_of(child.name) for child in stack.children}
        self.kinds = sorted(set(self.sessions.values()))

    def sample(self) -> tuple[dict[str, float], dict[str, int]]:
        cpu = dict.fromkeys(self.kinds, 0.0)
        rss = dict.fromkeys(self.kinds, 0)
        for session, seconds, resident in read_proc():
            kind = self.sessions.get(session)
            if kind is not None:
                cpu[kind] += seconds
                rss[kind] += resident
        return cpu, rss


def wait_idle(kinds: ProcessKinds, timeout: float = 60.0, cores: float = 0.1) -> float:
    """Wait until the stack's processes use less than ``cores`` (their start-up, imports
    included, is over), so the upload's CPU is the upload's; the seconds waited."""
    started = time.perf_counter()
    before = sum(kinds.sample()[0].values())
    while time.perf_counter() - started < timeout:
        time.sleep(0.5)
        now = sum(kinds.sample()[0].values())
        if (now - before) / 0.5 < cores:
            break
        before = now
    return time.perf_counter() - started


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (all cores, /proc/stat; idle and iowait excluded)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def own_cpu() -> tuple[float, float]:
    """(this process's CPU seconds, its reaped children's: the CLI commands)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, children.ru_utime + children.ru_stime


# --- the run -----------------------------------------------------------------------------------

FINAL = ("completed", "completed_with_errors", "failed", "aborted")
MARKS = ("start", "uploaded", "planned", "mapped", "reduced", "final", "cli_done", "results_done")
PHASES = (
    ("upload", "start", "uploaded"),
    ("plan", "uploaded", "planned"),
    ("map", "planned", "mapped"),
    ("reduce", "mapped", "reduced"),
    ("finalise", "reduced", "final"),
    ("results", "cli_done", "results_done"),
)


@dataclass
class Mark:
    at: float  # perf_counter
    cpu: dict[str, float]
    own: float
    clients: float
    log_offset: int
    machine: float


class Monitor:
    """Samples /proc (peak RSS) and the upload's status item; marks the phase boundaries."""

    def __init__(self, stack: LocalStack, request_log: Path, interval: float) -> None:
        self.stack = stack
        self.kinds = ProcessKinds(stack)
        self.request_log = request_log
        self.interval = interval
        self.marks: dict[str, Mark] = {}
        self.peak_rss = 0
        self.peak_rss_by_kind: dict[str, int] = dict.fromkeys(self.kinds.kinds, 0)
        self.upload_id: str | None = None
        self.item: dict[str, Any] = {}
        self.samples = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._dynamodb = stack.boto3_client("dynamodb")
        self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)
        self._last_line = 0.0

    def __enter__(self) -> Monitor:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def mark(self, name: str) -> None:
        with self._lock:
            if name in self.marks:
                return
            at = time.perf_counter()
            cpu, rss = self.kinds.sample()
            self._note_rss(rss)
            own, clients = own_cpu()
            offset = self.request_log.stat().st_size if self.request_log.exists() else 0
            self.marks[name] = Mark(at, cpu, own, clients, offset, machine_busy())

    def _note_rss(self, rss: Mapping[str, int]) -> None:
        self.peak_rss = max(self.peak_rss, sum(rss.values()))
        for kind, value in rss.items():
            self.peak_rss_by_kind[kind] = max(self.peak_rss_by_kind[kind], value)

    def _status_item(self, upload_id: str) -> dict[str, Any]:
        answer = self._dynamodb.get_item(
            TableName=self.stack.names.status_table,
            Key={"pk": {"S": f"UPLOAD#{upload_id}"}, "sk": {"S": "META"}},
            ConsistentRead=True,
        )
        return {name: next(iter(value.values())) for name, value in answer.get("Item", {}).items()}

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            _, rss = self.kinds.sample()
            with self._lock:
                self._note_rss(rss)
                self.samples += 1
            if self.upload_id is None or "final" in self.marks:
                continue
            try:
                item = self._status_item(self.upload_id)
            except Exception as error:  # the stack under load: try again next tick
                print(f"monitor: {error!r}", file=sys.stderr)
                continue
            self.item = item
            self._observe(item)

    def _observe(self, item: Mapping[str, Any]) -> None:
        status = str(item.get("status", ""))
        chunk_total = int(item.get("chunk_total", -1))
        if chunk_total >= 0 and int(item.get("plan_next", 0)) >= chunk_total:
            self.mark("planned")
        if "shard_total" in item or status in FINAL:
            self.mark("planned")
            self.mark("mapped")
        if "shard_total" in item and int(item.get("shards_done", 0)) >= int(item["shard_total"]):
            self.mark("reduced")
        if status in FINAL:
            self.mark("reduced")
            self.mark("final")
        now = time.perf_counter()
        if now - self._last_line >= 10 and "start" in self.marks:
            self._last_line = now
            shards = (
                f", shards {item.get('shards_done', 0)}/{item['shard_total']}"
                if "shard_total" in item
                else ""
            )
            print(
                f"  +{now - self.marks['start'].at:6.1f} s  {status or 'uploading'}: chunks "
                f"{item.get('chunks_done', 0)}/{chunk_total if chunk_total >= 0 else '?'}{shards}; "
                f"stack RSS peak {self.peak_rss / GiB:.2f} GiB",
                file=sys.stderr,
                flush=True,
            )


@dataclass
class Run:
    upload_id: str
    summary: dict[str, Any]
    totals_path: Path
    cli_stderr: list[str]


def _follow_stderr(stream: IO[str], lines: list[str], on_line: Callable[[str], None]) -> None:
    for line in stream:
        lines.append(line.rstrip("\n"))
        on_line(line)


def run_pipeline(stack: LocalStack, monitor: Monitor, path: Path, work: Path) -> Run:
    env = {**os.environ, "UPFLOW_HOME": str(work / "cli-home")}
    env.pop("UPFLOW_API", None)
    cli = [sys.executable, "-m", "upflow.client.cli"]
    started = re.compile(r"^upload (\S+) started")
    stderr_lines: list[str] = []
    upload_ids: list[str] = []

    def on_line(line: str) -> None:
        found = started.match(line)
        if found and monitor.upload_id is None:
            upload_ids.append(found.group(1))
            monitor.upload_id = found.group(1)
        if line.startswith("uploaded "):
            monitor.mark("uploaded")

    monitor.mark("start")
    upload = subprocess.Popen(
        [*cli, "upload", str(path), "--api", stack.api_url, "--wait", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert upload.stderr is not None and upload.stdout is not None
    reader = threading.Thread(target=_follow_stderr, args=(upload.stderr, stderr_lines, on_line), daemon=True)
    reader.start()
    stdout = upload.stdout.read()
    code = upload.wait()
    reader.join()
    monitor.mark("cli_done")
    if code != 0 or not upload_ids:
        tail = "\n".join(stderr_lines[-20:])
        raise RuntimeError(f"upflow upload exited with {code}:\n{tail}\n{stdout}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    upload_id = upload_ids[0]
    # The CLI returns on its own poll; make sure the monitor has seen the end too.
    deadline = time.monotonic() + 30
    while "final" not in monitor.marks and time.monotonic() < deadline:
        time.sleep(0.05)
    totals = work / "totals.csv"
    subprocess.run(
        [*cli, "results", upload_id, "--api", stack.api_url, "-o", str(totals), "-q"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    monitor.mark("results_done")
    return Run(upload_id, summary, totals, stderr_lines)


def log_errors(log_dir: Path, limit: int = 5) -> list[str]:
    """The distinct exception lines of the pumps' logs (what failed the chunks), first ones first."""
    found: dict[str, int] = {}
    for path in sorted(log_dir.glob("pump-*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if re.match(r"^[A-Za-z_.]*(Error|Exception)\b.*:", line):
                found[f"{path.name}: {line[:300]}"] = found.get(f"{path.name}: {line[:300]}", 0) + 1
    return [f"{line} (×{count})" for line, count in list(found.items())[:limit]]


# --- the check ---------------------------------------------------------------------------------


def check_totals(totals_path: Path, expected: Expected) -> list[str]:
    """Every document's type, rows and cents against the expectation; the problems found."""
    want = expected.totals()
    problems: list[str] = []
    seen = 0
    previous = ""
    with totals_path.open(encoding="utf-8-sig", newline="") as source:
        reader = csv.reader(source)
        header = next(reader, None)
        if header != ["document", "type", "rows", "amount"]:
            return [f"unexpected header {header!r}"]
        for record in reader:
            seen += 1
            if len(record) != 4:
                problems.append(f"malformed line {record!r}")
                continue
            document, kind, rows, amount = record
            if document <= previous:
                problems.append(f"not in document order: {previous} then {document}")
            previous = document
            expect = want.pop(document, None)
            if expect is None:
                problems.append(f"unexpected document {document} ({kind}, {rows}, {amount})")
                continue
            got = (kind, int(rows), text_cents(amount))
            if got != expect:
                problems.append(
                    f"{document}: got {kind} {rows} rows {amount}, "
                    f"expected {expect[0]} {expect[1]} rows {cents_text(expect[2])}"
                )
    problems.extend(f"missing document {document}" for document in sorted(want)[:20])
    if len(want) > 20:
        problems.append(f"… {len(want) - 20} more missing documents")
    return problems


def check_summary(summary: Mapping[str, Any], expected: Expected) -> list[str]:
    want = expected.summary()
    got = {name: summary.get(name) for name in want}
    got["errors"] = {code: n for code, n in sorted((got["errors"] or {}).items()) if n}
    return [
        f"summary {name}: got {got[name]!r}, expected {want[name]!r}"
        for name in want
        if got[name] != want[name]
    ]


# --- the report --------------------------------------------------------------------------------


def requests_between(log: Path, start: int, end: int) -> Counter[str]:
    with log.open("rb") as lines:
        lines.seek(start)
        data = lines.read(end - start)
    return Counter(" ".join(line.split()) for line in data.decode().splitlines() if line.strip())


def seconds(marks: Mapping[str, Mark], first: str, last: str) -> float:
    return marks[last].at - marks[first].at


def print_report(
    args: argparse.Namespace, stack: LocalStack, monitor: Monitor, run: Run, expected: Expected, log: Path
) -> tuple[float, float]:
    marks = monitor.marks
    size = expected.size
    e2e = seconds(marks, "start", "results_done")
    upload_s = seconds(marks, "start", "uploaded")
    processing_s = seconds(marks, "uploaded", "final")
    results_s = seconds(marks, "cli_done", "results_done")
    e2e_rate = size / MB / e2e
    upload_rate = size / MB / upload_s
    item = monitor.item
    chunks, shards = int(item.get("chunk_total", 0)), int(item.get("shard_total", 0))
    cores = os.cpu_count() or 1

    print()
    print(
        f"{size / MiB:,.0f} MiB ({size / MB:,.0f} MB), {expected.rows_total:,} rows, "
        f"{len(expected.totals()):,} documents with valid rows, {expected.rows_invalid:,} invalid rows; "
        f"S3 {args.s3}, {args.chunk_workers} chunk workers, {cores} cores"
    )
    print(f"upload {run.upload_id}: {chunks} chunks, {shards} reduce shards, status {item.get('status')}")
    print()
    print("phase                           seconds    MB/s of the file")
    rows = [
        ("upload (CLI start → complete)", upload_s),
        ("processing (→ final status)", processing_s),
        ("  plan (→ every chunk planned)", seconds(marks, "uploaded", "planned")),
        ("  map (→ every chunk mapped)", seconds(marks, "planned", "mapped")),
        ("  reduce (→ every shard reduced)", seconds(marks, "mapped", "reduced")),
        ("  finalise (→ completed)", seconds(marks, "reduced", "final")),
        ("  CLI's --wait returned after", seconds(marks, "uploaded", "cli_done")),
        ("results (upflow results -o)", results_s),
        ("end to end (both commands)", e2e),
    ]
    for label, value in rows:
        print(f"{label:32s} {value:7.2f}    {size / MB / value if value > 0 else 0:8.1f}")
    print(f"(status polled every {args.poll:.2f} s: phase boundaries are ± that)")

    print()
    print("CPU seconds by process kind and phase (from /proc)")
    phase_names = [name for name, _, _ in PHASES]
    print(f"{'':26s}" + "".join(f"{name:>10s}" for name in phase_names) + f"{'processing':>12s}")
    for kind in monitor.kinds.kinds:
        values = [marks[last].cpu[kind] - marks[first].cpu[kind] for _, first, last in PHASES]
        proc = marks["final"].cpu[kind] - marks["uploaded"].cpu[kind]
        print(f"{kind:26s}" + "".join(f"{v:10.1f}" for v in values) + f"{proc:12.1f}")
    client_cpu = {
        name: marks[last].clients - marks[first].clients if name in ("upload", "results") else 0.0
        for name, first, last in PHASES
    }
    upload_cli = marks["cli_done"].clients - marks["start"].clients
    print(
        f"{'CLI commands':26s}"
        + "".join(f"{client_cpu[name]:10.1f}" for name in phase_names)
        + f"{'':12s}  (upload --wait: {upload_cli:.1f} s in all)"
    )
    bench_cpu = marks["results_done"].own - marks["start"].own
    stack_total = [
        sum(marks[last].cpu.values()) - sum(marks[first].cpu.values()) for _, first, last in PHASES
    ]
    walls = [seconds(marks, first, last) for _, first, last in PHASES]
    proc_total = sum(marks["final"].cpu.values()) - sum(marks["uploaded"].cpu.values())
    print(f"{'stack, all kinds':26s}" + "".join(f"{v:10.1f}" for v in stack_total) + f"{proc_total:12.1f}")
    machine = [marks[last].machine - marks[first].machine for _, first, last in PHASES]
    machine_proc = marks["final"].machine - marks["uploaded"].machine
    print(
        f"{'machine, every process':26s}" + "".join(f"{v:10.1f}" for v in machine) + f"{machine_proc:12.1f}"
    )
    print(
        f"{'wall × cores':26s}"
        + "".join(f"{w * cores:10.1f}" for w in walls)
        + f"{processing_s * cores:12.1f}"
    )
    others = (
        marks["results_done"].machine
        - marks["start"].machine
        - (sum(marks["results_done"].cpu.values()) - sum(marks["start"].cpu.values()))
        - (marks["results_done"].clients - marks["start"].clients)
        - bench_cpu
    )
    print(
        f"(this benchmark's own process, monitor included: {bench_cpu:.1f} CPU-s over the run; "
        f"everything else on the machine, kernel threads and other tenants' work: {others:.1f} CPU-s)"
    )

    print()
    print(
        f"stack peak RSS {monitor.peak_rss / GiB:.2f} GiB (sum over its processes, "
        f"{monitor.samples} samples); per kind peak: "
        + ", ".join(f"{kind} {value / MiB:,.0f} MiB" for kind, value in monitor.peak_rss_by_kind.items())
    )

    print()
    print("AWS requests per operation and phase (the stack's request log)")
    counted = [
        (name, requests_between(log, marks[first].log_offset, marks[last].log_offset))
        for name, first, last in PHASES
    ]
    processing = requests_between(log, marks["uploaded"].log_offset, marks["final"].log_offset)
    operations = sorted(set().union(*(c for _, c in counted)))
    print(f"{'':38s}" + "".join(f"{name:>9s}" for name in phase_names) + f"{'processing':>12s}")
    for operation in operations:
        print(
            f"{operation:38s}"
            + "".join(f"{c[operation]:9d}" for _, c in counted)
            + f"{processing[operation]:12d}"
        )
    print(f"{'all':38s}" + "".join(f"{c.total():9d}" for _, c in counted) + f"{processing.total():12d}")

    # The bound the stack's own CPU sets, whatever else the machine runs: processing cannot take
    # less than its CPU seconds over the cores, so end to end cannot be faster than this.
    floor = upload_s + proc_total / cores + results_s
    capacity = e2e * cores
    print()
    print(
        f"CPU bound: processing took {proc_total:.0f} CPU-s of the stack; on {cores} cores no less than "
        f"{proc_total / cores:.1f} s, so end to end (this upload and results) at most "
        f"{size / MB / floor:.1f} MB/s"
    )
    if others > 0.1 * capacity:
        print(
            f"NOTE: the machine was shared: other processes used {others:.0f} CPU-s, "
            f"{others / capacity:.0%} of its {capacity:.0f} CPU-s during the run; wall times are pessimistic"
        )
    return e2e_rate, upload_rate


@contextmanager
def bench_stack(args: argparse.Namespace, work: Path, log: Path) -> Iterator[LocalStack]:
    extra = {REQUEST_LOG_ENV: str(log)}
    for assignment in args.env:
        name, _, value = assignment.partition("=")
        extra[name] = value
    choice: dict[str, Any] = {"s3": args.s3, "s3_dir": work / "s3"} if len(S3_CHOICES) > 1 else {}
    stack = start_stack(
        moto_port=free_port(),
        api_port=free_port(),
        web_port=None,
        chunk_workers=args.chunk_workers,
        stack_name="bench",
        extra_env=extra,
        log_dir=work / "logs",
        serve_page=False,
        **choice,
    )
    try:
        yield stack
    finally:
        stack.stop()


SIZE_UNITS = {"": 1, "B": 1, "K": KiB, "KIB": KiB, "M": MiB, "MIB": MiB, "G": GiB, "GIB": GiB, "MB": MB}


def parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if match is None or match.group(2).upper() not in SIZE_UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 64MiB, 1GiB, 4GiB)")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).upper()])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=parse_size, default=GiB, help="file size: 64MiB, 1GiB (default), 4GiB")
    parser.add_argument("--documents", type=int, default=100_000, help="distinct documents (default 100,000)")
    parser.add_argument("--chunk-workers", type=int, default=2, help="chunk pumps of the stack (default 2)")
    parser.add_argument("--keep", action="store_true", help=f"keep the file (and reuse it) in {DATA_DIR}")
    parser.add_argument(
        "--s3", choices=S3_CHOICES, default=DEFAULT_S3, help=f"the stack's S3 server (default {DEFAULT_S3})"
    )
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--error-rate", type=float, default=0.01, help="share of invalid rows (default 0.01)")
    parser.add_argument("--poll", type=float, default=0.25, help="seconds between status samples")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="extra environment for the stack"
    )
    args = parser.parse_args(argv)
    if args.documents < 1 or args.size < MIN_SIZE:
        parser.error(f"--documents must be >= 1 and --size >= {MIN_SIZE}")

    work = Path(tempfile.mkdtemp(prefix="upflow-bench-pipeline-"))
    try:
        path, expected, generated = prepare_file(args, work)
        if generated:
            print(f"generated in {generated:.1f} s ({args.size / MB / generated:.0f} MB/s, untimed)")
        log = work / "aws-requests.log"
        print(f"starting the local stack (S3: {args.s3}) …", flush=True)
        with bench_stack(args, work, log) as stack, Monitor(stack, log, args.poll) as monitor:
            idle = wait_idle(monitor.kinds)
            print(f"stack idle after {idle:.1f} s; uploading with the CLI ({stack.api_url}) …", flush=True)
            try:
                run = run_pipeline(stack, monitor, path, work)
            except BaseException:
                kept = Path(tempfile.mkdtemp(prefix="upflow-bench-logs-"))
                shutil.copytree(work / "logs", kept, dirs_exist_ok=True)
                print(f"the stack's logs are kept in {kept}", file=sys.stderr)
                for line in log_errors(kept):
                    print(f"  {line}", file=sys.stderr)
                raise
        problems = check_summary(run.summary, expected) + check_totals(run.totals_path, expected)
        e2e_rate, upload_rate = print_report(args, stack, monitor, run, expected, log)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print()
    if problems:
        print(f"CHECK FAILED: {len(problems)} problems; the first ones:")
        for problem in problems[:20]:
            print(f"  {problem}")
    else:
        print(
            f"check: all {len(expected.totals()):,} documents' rows and amounts and the summary "
            f"({expected.rows_total:,} rows) exactly as generated"
        )
    ratio = e2e_rate / upload_rate
    verdict = "OK" if e2e_rate >= TARGET_MB_PER_S else "BELOW TARGET"
    print(
        f"end to end: {e2e_rate:.1f} MB/s ({e2e_rate * MB / MiB:.1f} MiB/s); "
        f"upload alone {upload_rate:.1f} MB/s"
    )
    print(f"ratio end-to-end / upload: {ratio:.2f} (end to end takes {1 / ratio:.1f}× the upload's time)")
    print(f"target >= {TARGET_MB_PER_S:.0f} MB/s end to end: {verdict}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""Row processing of one chunk: ownership, parsing, validation, per-document aggregation.

The scalar path in this module is the reference implementation; ``fastpath``
computes the same result with numpy and falls back to :func:`scalar_row` for any
row it cannot decide. See ``docs/processing.md``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from itertools import repeat
from operator import itemgetter
from typing import Any, overload

from upflow.core.chunking import ChunkRange
from upflow.core.csvscan import find_row_end, first_row_start, split_fields
from upflow.core.detect import FileFormat
from upflow.core.documents import classify_document
from upflow.core.money import MoneyError, cents_to_decimal, parse_cents
from upflow.definition import KiB, Limits

INVALID_DOCUMENT = "invalid_document"
INVALID_AMOUNT = "invalid_amount"
MISSING_FIELD = "missing_field"
EXTRA_FIELDS = "extra_fields"
ROW_TOO_LONG = "row_too_long"
ENCODING_ERROR = "encoding_error"
ERROR_CODES = (INVALID_DOCUMENT, INVALID_AMOUNT, MISSING_FIELD, EXTRA_FIELDS, ROW_TOO_LONG, ENCODING_ERROR)

VALUE_MAX_CHARS = 200
TAIL_FIRST_READ = 64 * KiB
# Shapes (of document / amount text) seen fewer times than this in a block go to the scalar path.
FAST_MIN_GROUP = 16

ReadRange = Callable[[int, int], bytes]

_new_object = object.__new__


@dataclass(frozen=True, slots=True)
class RowError:
    line_offset: int
    column: str
    code: str
    message: str
    value: str


def _build(cls: type[Any], count: int, columns: Iterable[tuple[str, Iterable[Any]]]) -> list[Any]:
    """``count`` instances of the frozen slots dataclass ``cls`` from parallel columns, ~2x faster
    than calling it: its ``__init__`` makes one Python-level ``object.__setattr__`` call per field,
    here each slot is filled for all objects by one C-level ``map`` over its descriptor."""
    objs = list(map(_new_object, repeat(cls, count)))
    for name, values in columns:
        deque(map(getattr(cls, name).__set__, objs, values), maxlen=0)
    return objs


def make_errors(
    line_offsets: Iterable[int],
    columns: Iterable[str],
    codes: Iterable[str],
    messages: Iterable[str],
    values: Iterable[str],
    count: int,
) -> list[RowError]:
    """``count`` ``RowError``s of parallel iterables (equal to ``map(RowError, ...)``)."""
    return _build(
        RowError,
        count,
        (
            ("line_offset", line_offsets),
            ("column", columns),
            ("code", codes),
            ("message", messages),
            ("value", values),
        ),
    )


_SET_ERROR_FIELDS = tuple(getattr(RowError, name).__set__ for name in RowError.__slots__)


def new_error(line_offset: int, column: str, code: str, message: str, value: str) -> RowError:
    """``RowError(...)`` without the frozen dataclass ``__init__`` (~2x cheaper, same object)."""
    err: RowError = _new_object(RowError)
    set_line, set_column, set_code, set_message, set_value = _SET_ERROR_FIELDS
    set_line(err, line_offset)
    set_column(err, column)
    set_code(err, code)
    set_message(err, message)
    set_value(err, value)
    return err


@dataclass(frozen=True, slots=True)
class DocumentTotal:
    document: str
    doc_type: str
    rows: int
    amount: Decimal


def make_totals(
    documents: list[str], doc_types: list[str], rows: list[int], amounts: list[Decimal]
) -> tuple[DocumentTotal, ...]:
    """``DocumentTotal``s of parallel lists, equal to ``map(DocumentTotal, ...)`` (see ``_build``)."""
    columns = (("document", documents), ("doc_type", doc_types), ("rows", rows), ("amount", amounts))
    return tuple(_build(DocumentTotal, len(documents), columns))


class DocumentTotals(Sequence[DocumentTotal]):
    """A region's per-document totals, sorted by document, held as four columns.

    The ``DocumentTotal`` objects (and their ``Decimal`` amounts) are made on first read:
    a chunk's totals go one by one into DynamoDB, where each write costs far more than the
    object, so processing itself never builds tens of thousands of them.
    """

    __slots__ = ("_objects", "cents", "doc_types", "documents", "rows")

    def __init__(self, documents: list[str], doc_types: list[str], rows: list[int], cents: list[int]) -> None:
        self.documents = documents
        self.doc_types = doc_types
        self.rows = rows
        self.cents = cents
        self._objects: tuple[DocumentTotal, ...] | None = None

    @classmethod
    def empty(cls) -> DocumentTotals:
        return cls([], [], [], [])

    def _materialized(self) -> tuple[DocumentTotal, ...]:
        if self._objects is None:
            amounts = list(map(cents_to_decimal, self.cents))
            self._objects = make_totals(self.documents, self.doc_types, self.rows, amounts)
        return self._objects

    def __len__(self) -> int:
        return len(self.documents)

    @overload
    def __getitem__(self, index: int) -> DocumentTotal: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[DocumentTotal, ...]: ...

    def __getitem__(self, index: int | slice) -> DocumentTotal | tuple[DocumentTotal, ...]:
        return self._materialized()[index]

    def __iter__(self) -> Iterator[DocumentTotal]:
        return iter(self._materialized())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DocumentTotals):
            return (self.documents, self.doc_types, self.rows, self.cents) == (
                other.documents,
                other.doc_types,
                other.rows,
                other.cents,
            )
        if isinstance(other, Sequence):
            return self._materialized() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((tuple(self.documents), tuple(self.rows), tuple(self.cents)))

    def __repr__(self) -> str:
        return f"DocumentTotals({list(self._materialized())!r})"


@dataclass(frozen=True)
class RegionResult:
    rows_total: int
    rows_valid: int
    rows_invalid: int
    errors_by_code: Mapping[str, int]
    amount_valid: Decimal
    totals: DocumentTotals
    errors: tuple[RowError, ...]


@dataclass(frozen=True)
class Summary:
    rows_total: int
    rows_valid: int
    rows_invalid: int
    errors: Mapping[str, int]
    amount_valid: Decimal

    def to_json(self, upload_id: str, status: str) -> dict[str, object]:
        return {
            "upload_id": upload_id,
            "status": status,
            "rows_total": self.rows_total,
            "rows_valid": self.rows_valid,
            "rows_invalid": self.rows_invalid,
            "errors": dict(sorted(self.errors.items())),
            "amount_valid": decimal_str(self.amount_valid),
        }


def decimal_str(value: Decimal) -> str:
    """Plain two-place decimal text (``"1234.50"``), never scientific notation."""
    with localcontext() as ctx:
        ctx.prec = 80
        return f"{value.quantize(Decimal('0.01')):f}"


def summarize(results: Iterable[RegionResult]) -> Summary:
    rows_total = rows_valid = rows_invalid = 0
    errors: dict[str, int] = {}
    amount = Decimal("0.00")
    with localcontext() as ctx:
        ctx.prec = 80
        for r in results:
            rows_total += r.rows_total
            rows_valid += r.rows_valid
            rows_invalid += r.rows_invalid
            for code, n in r.errors_by_code.items():
                errors[code] = errors.get(code, 0) + n
            amount += r.amount_valid
    return Summary(rows_total, rows_valid, rows_invalid, errors, amount)


class Context:
    """Per-file constants the row code needs."""

    def __init__(self, fmt: FileFormat, limits: Limits) -> None:
        self.fmt = fmt
        self.encoding = fmt.encoding
        self.delimiter = fmt.delimiter
        self.delim_byte = fmt.delimiter.encode("ascii")[0]
        self.ncols = len(fmt.header)
        self.doc_i = fmt.columns.document
        self.amt_i = fmt.columns.amount
        self.doc_col = fmt.header[self.doc_i]
        self.amt_col = fmt.header[self.amt_i]
        self.max_row = limits.max_row_bytes


@dataclass
class Accumulator:
    """Mutable totals of a region; :meth:`result` freezes them (deterministically)."""

    rows_total: int = 0
    rows_valid: int = 0
    rows_invalid: int = 0
    cents_valid: int = 0
    errors_by_code: dict[str, int] = field(default_factory=dict)
    totals: dict[str, list[Any]] = field(default_factory=dict)  # document -> [doc_type, rows, cents]
    errors: list[tuple[int, RowError]] = field(default_factory=list)  # (row position, error)
    # Fast-path aggregates (numpy arrays: documents, rows, cents), each already summed per document;
    # merged with ``totals`` by ``fastpath.merge_totals``.
    fast_totals: list[tuple[Any, Any, Any]] = field(default_factory=list)

    def error(self, pos: int, err: RowError) -> None:
        self.errors.append((pos, err))
        self.count_errors(err.code, 1)

    def count_errors(self, code: str, n: int) -> None:
        """Count ``n`` errors of ``code`` whose records the caller appends itself (in bulk)."""
        if n:
            self.errors_by_code[code] = self.errors_by_code.get(code, 0) + n

    def add_valid(self, document: str, doc_type: str, cents: int) -> None:
        self.rows_valid += 1
        self.cents_valid += cents
        t = self.totals.get(document)
        if t is None:
            self.totals[document] = [doc_type, 1, cents]
        else:
            t[1] += 1
            t[2] += cents

    def result(self) -> RegionResult:
        totals: DocumentTotals
        if self.fast_totals:
            from upflow.core.fastpath import merge_totals

            totals = merge_totals(self.totals, self.fast_totals)
        else:
            items = sorted(self.totals.items())
            totals = DocumentTotals(
                [d for d, _ in items],
                [t[0] for _, t in items],
                [t[1] for _, t in items],
                [t[2] for _, t in items],
            )
        self.errors.sort(key=itemgetter(0))  # stable: a row's errors keep their order
        return RegionResult(
            rows_total=self.rows_total,
            rows_valid=self.rows_valid,
            rows_invalid=self.rows_invalid,
            errors_by_code=dict(sorted(self.errors_by_code.items())),
            amount_valid=cents_to_decimal(self.cents_valid),
            totals=totals,
            errors=tuple(e for _, e in self.errors),
        )


def clip(text: str) -> str:
    """The error ``value`` of a field/row text: at most ``VALUE_MAX_CHARS`` characters (+ an ellipsis)."""
    return text if len(text) <= VALUE_MAX_CHARS else text[:VALUE_MAX_CHARS] + "…"


_clip = clip


def scalar_row(
    acc: Accumulator, row: bytes, pos: int, line_offset: int, ctx: Context, too_long: bool = False
) -> None:
    """Process one row (bytes without its terminating ``\\n``); ``pos`` orders errors."""
    if too_long or len(row) > ctx.max_row:
        acc.rows_total += 1
        acc.rows_invalid += 1
        acc.error(
            pos,
            RowError(
                line_offset,
                "",
                ROW_TOO_LONG,
                f"row is longer than {ctx.max_row} bytes",
                # Every reader of a too-long row holds at least max_row + 1 of its bytes:
                # a prefix within that keeps the value identical however it was read.
                _clip(row[: min(ctx.max_row, VALUE_MAX_CHARS * 4)].decode(ctx.encoding, "replace")),
            ),
        )
        return
    if row.endswith(b"\r"):
        row = row[:-1]
    if not row:
        return
    acc.rows_total += 1
    try:
        text = row.decode(ctx.encoding)
    except UnicodeDecodeError:
        acc.rows_invalid += 1
        acc.error(
            pos,
            RowError(
                line_offset,
                "",
                ENCODING_ERROR,
                f"row is not valid {ctx.encoding} text",
                _clip(row.decode(ctx.encoding, "replace")),
            ),
        )
        return
    fields = split_fields(text, ctx.delimiter)
    n = len(fields)
    if n != ctx.ncols:
        acc.rows_invalid += 1
        if n < ctx.ncols:
            acc.error(
                pos,
                RowError(
                    line_offset,
                    ctx.fmt.header[n],
                    MISSING_FIELD,
                    f"row has {n} fields, the header has {ctx.ncols}",
                    _clip(text),
                ),
            )
        else:
            acc.error(
                pos,
                RowError(
                    line_offset,
                    "",
                    EXTRA_FIELDS,
                    f"row has {n} fields, the header has {ctx.ncols}",
                    _clip(text),
                ),
            )
        return
    ok = True
    doc = fields[ctx.doc_i]
    verdict = None
    if not doc.strip():
        ok = False
        acc.error(pos, RowError(line_offset, ctx.doc_col, MISSING_FIELD, "document is empty", _clip(doc)))
    else:
        verdict = classify_document(doc)
        if not verdict.valid:
            ok = False
            acc.error(pos, RowError(line_offset, ctx.doc_col, INVALID_DOCUMENT, verdict.problem, _clip(doc)))
    amount = fields[ctx.amt_i]
    cents = 0
    if not amount.strip():
        ok = False
        acc.error(pos, RowError(line_offset, ctx.amt_col, MISSING_FIELD, "amount is empty", _clip(amount)))
    else:
        try:
            cents = parse_cents(amount)
        except MoneyError as exc:
            ok = False
            acc.error(pos, RowError(line_offset, ctx.amt_col, INVALID_AMOUNT, str(exc), _clip(amount)))
    if ok and verdict is not None:
        acc.add_valid(verdict.document, verdict.doc_type, cents)
    else:
        acc.rows_invalid += 1


def scalar_region(acc: Accumulator, buf: bytes, lo: int, hi: int, line_base: int, ctx: Context) -> int:
    """Rows in ``buf[lo:hi]``: ``lo`` is a row start (even parity), ``hi`` a row end or EOF.

    Returns ``line_base`` plus the number of ``\n`` in ``buf[lo:hi]``.
    """
    pos = lo
    lines = line_base
    while pos < hi:
        e = find_row_end(buf, pos, hi)
        scalar_row(acc, buf[pos:e], pos, lines, ctx)
        lines += buf.count(b"\n", pos, min(e + 1, hi))
        pos = e + 1
    return lines


def count_quotes(data: bytes, lo: int, hi: int) -> int:
    """Number of ``"`` bytes in ``data[lo:hi]`` (numpy for long ranges: ~5x faster than ``bytes.count``)."""
    if hi - lo < 1 << 16:
        return data.count(b'"', lo, hi)
    import numpy as np

    return int(np.count_nonzero(np.frombuffer(data, np.uint8, hi - lo, lo) == 34))


def _last_even_newline(data: bytes, f: int) -> int:
    """Position of the last ``\\n`` in ``data[f:]`` at even parity counted from ``f``; -1 if none."""
    j = data.rfind(b"\n", f)
    if j < 0:
        return -1
    odd = count_quotes(data, f, j) & 1
    while odd:
        k = data.rfind(b"\n", f, j)
        if k < 0:
            return -1
        odd ^= count_quotes(data, k, j) & 1
        j = k
    return j


def _read_last_row(
    data: bytes, r: int, chunk: ChunkRange, object_size: int, read_tail: ReadRange, max_row: int
) -> tuple[bytes, bool]:
    """The row starting at ``data[r]`` that runs past ``chunk.end``: (bytes, too_long).

    Reads ``[chunk.end, …)`` in doubling pieces, never beyond the row's end or
    ``row start + max_row + 1`` (enough to prove it too long).
    """
    row = data[r:]
    if len(row) > max_row:
        return row, True
    odd = row.count(b'"') & 1
    pieces = [row]
    have = len(row)
    pos = chunk.end
    limit = min(object_size, chunk.start + r + max_row + 1)
    step = TAIL_FIRST_READ
    eof = False
    while pos < limit:
        want = min(limit, pos + step)
        piece = read_tail(pos, want)
        i = 0
        while True:
            j = piece.find(b"\n", i)
            if j < 0:
                odd ^= piece.count(b'"', i) & 1
                break
            odd ^= piece.count(b'"', i, j) & 1
            if not odd:
                pieces.append(piece[:j])
                return b"".join(pieces), have + j > max_row
            i = j + 1
        pieces.append(piece)
        have += len(piece)
        if len(piece) < want - pos:
            eof = True  # the object ended early
            break
        pos = want
        step *= 2
    eof = eof or pos >= object_size
    return b"".join(pieces), (not eof) or have > max_row


def process_chunk(
    data: bytes,
    chunk: ChunkRange,
    object_size: int,
    fmt: FileFormat,
    in_quotes_at_start: bool,
    read_tail: ReadRange,
    limits: Limits,
    *,
    fast: bool = True,
    fast_min_group: int = FAST_MIN_GROUP,
    kernel: bool = True,
) -> RegionResult:
    """Process the rows owned by ``chunk`` (first byte in ``[start, end)``); deterministic.

    ``fast=False`` forces the scalar reference path (same result, slower); with ``fast``, the
    compiled kernel runs where it is built (``kernel=False``: the numpy path; same result).
    ``read_tail`` is also used once for the byte before ``chunk.start`` when the
    chunk begins after the header (to know whether a row starts exactly there).
    """
    if len(data) != chunk.end - chunk.start:
        raise ValueError(f"data has {len(data)} bytes, chunk {chunk.index} spans {chunk.end - chunk.start}")
    ctx = Context(fmt, limits)
    acc = Accumulator()
    n = len(data)
    lo = max(chunk.start, fmt.data_start)
    if lo >= chunk.end or lo >= object_size:
        return acc.result()
    if lo == fmt.data_start:
        f = lo - chunk.start
    elif read_tail(chunk.start - 1, chunk.start) == b"\n" and not in_quotes_at_start:
        f = 0
    else:
        f = first_row_start(data, 0, n, in_quotes_at_start)
        if f < 0 or f >= n:
            return acc.result()
    line_base = data.count(b"\n", 0, f)
    last_nl = _last_even_newline(data, f)
    region_end = f if last_nl < 0 else last_nl + 1
    lines = line_base  # newlines in data[:region_end]
    if region_end > f:
        if fast:
            from upflow.core import kernel as compiled
            from upflow.core.fastpath import fast_region

            lib = compiled.load() if kernel and compiled.supports(ctx) else None
            if lib is not None:
                lines = compiled.kernel_region(lib, acc, data, f, region_end, line_base, ctx, fast_min_group)
            else:
                lines = fast_region(acc, data, f, region_end, line_base, ctx, fast_min_group)
        else:
            lines = scalar_region(acc, data, f, region_end, line_base, ctx)
    if region_end < n:
        if chunk.end >= object_size:
            scalar_row(acc, data[region_end:], region_end, lines, ctx)
        else:
            row, too_long = _read_last_row(data, region_end, chunk, object_size, read_tail, ctx.max_row)
            scalar_row(acc, row, region_end, lines, ctx, too_long=too_long)
    return acc.result()

"""The row rules: the scalar reference that defines what every row means.

``scalar_row`` *is* the rule set (records and fields through ``dialect``, documents, money, the
error codes); the compiled kernel (``kernel``) decides only the rows it can decide exactly
as this module does and hands every other row back to it. Also here: the per-region
accumulator and the result types every engine produces. See ``docs/processing.md``.

Layering (each module imports only the ones above it): ``dialect``, ``detect``,
``documents``, ``money`` → ``rules`` → ``kernel`` → ``chunk`` (``process_chunk``).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from itertools import repeat
from operator import itemgetter
from typing import Any, Protocol, overload

from upflow.core.detect import FileFormat
from upflow.core.dialect import SR, Cursor, line_breaks, next_record, record_end, split_record
from upflow.core.documents import classify_document
from upflow.core.money import MoneyError, cents_to_decimal, parse_cents
from upflow.definition import Limits

INVALID_DOCUMENT = "invalid_document"
INVALID_AMOUNT = "invalid_amount"
MISSING_FIELD = "missing_field"
EXTRA_FIELDS = "extra_fields"
ROW_TOO_LONG = "row_too_long"
ENCODING_ERROR = "encoding_error"
ERROR_CODES = (INVALID_DOCUMENT, INVALID_AMOUNT, MISSING_FIELD, EXTRA_FIELDS, ROW_TOO_LONG, ENCODING_ERROR)

VALUE_MAX_CHARS = 200
# The scalar loop hands its errors to the sink every this many (the kernel: after each drain of
# its exception rows, at most 8,192 rows): a region never holds more of them than that.
SETTLE_EVERY_ERRORS = 4096

_new_object = object.__new__


@dataclass(frozen=True, slots=True)
class RowError:
    line_offset: int
    column: str
    code: str
    message: str
    value: str


class ErrorSink(Protocol):
    """Where a region's row errors go as they are found, so none waits for the region's end.

    ``write`` gets batches in row order: every error of a batch belongs to a row after the
    rows of the batches before it (a row's errors in their order). Implementations:
    :class:`ErrorList` (in memory), :class:`upflow.core.report.ChunkErrorWriter` (a chunk's
    error file, encoded as it comes, into any byte stream: a file, an S3 multipart upload).
    """

    def write(self, errors: Sequence[RowError]) -> None: ...


class ErrorList:
    """An :class:`ErrorSink` that keeps every error in memory (tests, ``POST /preview``)."""

    def __init__(self) -> None:
        self.errors: list[RowError] = []

    def write(self, errors: Sequence[RowError]) -> None:
        self.errors.extend(errors)


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


# Per-document totals as parallel columns: documents, doc types, rows, cents.
Columns = tuple[list[str], list[str], list[int], list[int]]


@dataclass(frozen=True)
class RegionResult:
    """A region's counts and totals. ``errors``: its errors when they were kept in memory
    (no sink given); with a sink they went there as they came, and ``errors`` is empty."""

    rows_total: int
    rows_valid: int
    rows_invalid: int
    errors_by_code: Mapping[str, int]
    amount_valid: Decimal
    totals: DocumentTotals
    errors: tuple[RowError, ...]

    @property
    def error_count(self) -> int:
        """Errors found (a row may have two), wherever they went."""
        return sum(self.errors_by_code.values())


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
    """Mutable totals of a region; :meth:`result` freezes them (deterministically).

    Errors go to ``sink`` (``None``: an :class:`ErrorList`, whose errors the result keeps).
    They wait in ``pending`` only until :meth:`settle`, which the region drivers call where no
    later error can belong to an earlier row, so a region holds a bounded number of them.
    """

    sink: ErrorSink | None = None
    rows_total: int = 0
    rows_valid: int = 0
    rows_invalid: int = 0
    cents_valid: int = 0
    errors_by_code: dict[str, int] = field(default_factory=dict)
    totals: dict[str, list[Any]] = field(default_factory=dict)  # document -> [doc_type, rows, cents]
    # (row position, error) not yet written to the sink; the kernel appends by kind, not by row.
    pending: list[tuple[int, RowError]] = field(default_factory=list)
    # Totals already summed per document elsewhere (the kernel's table): parallel columns
    # (documents, doc types, rows, cents), each part sorted by document.
    summed: list[Columns] = field(default_factory=list)
    _kept: ErrorList | None = field(init=False, default=None, repr=False, compare=False)
    _out: ErrorSink = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.sink is None:
            self._kept = ErrorList()
            self._out = self._kept
        else:
            self._out = self.sink

    def error(self, pos: int, err: RowError) -> None:
        self.pending.append((pos, err))
        self.count_errors(err.code, 1)

    def settle(self) -> None:
        """Write the pending errors to the sink in row order (the sort is stable: a row's
        errors keep their order). Only where every later error belongs to a later row."""
        if self.pending:
            self.pending.sort(key=itemgetter(0))
            self._out.write([e for _, e in self.pending])
            self.pending.clear()

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

    def add_summed(
        self, documents: list[str], doc_types: list[str], rows: list[int], cents: list[int]
    ) -> None:
        """Add per-document sums made elsewhere, sorted by document (the caller counts their
        rows and amount)."""
        if documents:
            self.summed.append((documents, doc_types, rows, cents))

    def result(self) -> RegionResult:
        self.settle()
        return RegionResult(
            rows_total=self.rows_total,
            rows_valid=self.rows_valid,
            rows_invalid=self.rows_invalid,
            errors_by_code=dict(sorted(self.errors_by_code.items())),
            amount_valid=cents_to_decimal(self.cents_valid),
            totals=self._merged_totals(),
            errors=tuple(self._kept.errors) if self._kept is not None else (),
        )

    def _merged_totals(self) -> DocumentTotals:
        """``totals`` and the ``summed`` parts as one ``DocumentTotals``, sorted by document."""
        parts = list(self.summed)
        if self.totals:
            documents = sorted(self.totals)
            values = list(map(self.totals.__getitem__, documents))
            parts.append((documents, [t[0] for t in values], [t[1] for t in values], [t[2] for t in values]))
        if not parts:
            return DocumentTotals.empty()
        merged = parts[0]
        for part in parts[1:]:
            merged = _merge_sorted(merged, part)
        return DocumentTotals(*merged)


_INSERT_AT_MOST = 64  # documents new to the larger side inserted one by one; beyond, one sort


def _merge_sorted(a: Columns, b: Columns) -> Columns:
    """Per-document totals of two column sets, each sorted by document with a document once."""
    if len(b[0]) > len(a[0]):
        a, b = b, a
    documents, doc_types, rows, cents = list(a[0]), list(a[1]), list(a[2]), list(a[3])
    n = len(documents)
    new: list[tuple[str, str, int, int]] = []
    for document, doc_type, k, c in zip(b[0], b[1], b[2], b[3], strict=True):
        i = bisect_left(documents, document)
        if i < n and documents[i] == document:
            rows[i] += k
            cents[i] += c
        else:
            new.append((document, doc_type, k, c))
    if len(new) <= _INSERT_AT_MOST:
        for document, doc_type, k, c in new:
            i = bisect_left(documents, document)
            documents.insert(i, document)
            doc_types.insert(i, doc_type)
            rows.insert(i, k)
            cents.insert(i, c)
        return documents, doc_types, rows, cents
    documents += [e[0] for e in new]
    doc_types += [e[1] for e in new]
    rows += [e[2] for e in new]
    cents += [e[3] for e in new]
    order = sorted(range(len(documents)), key=documents.__getitem__)  # two sorted runs: a merge
    return (
        [documents[i] for i in order],
        [doc_types[i] for i in order],
        [rows[i] for i in order],
        [cents[i] for i in order],
    )


def clip(text: str) -> str:
    """The error ``value`` of a field/row text: at most ``VALUE_MAX_CHARS`` characters (+ an ellipsis)."""
    return text if len(text) <= VALUE_MAX_CHARS else text[:VALUE_MAX_CHARS] + "…"


def scalar_row(
    acc: Accumulator,
    row: bytes,
    pos: int,
    line_offset: int,
    ctx: Context,
    too_long: bool = False,
    fields: list[str] | None = None,
) -> None:
    """Process one record: its bytes without the terminator; ``pos`` orders errors.

    ``fields`` are the record's fields when another reader split them (a test hands in
    ``csv.reader``'s); by default :func:`upflow.core.dialect.split_record` splits them.
    """
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
                clip(row[: min(ctx.max_row, VALUE_MAX_CHARS * 4)].decode(ctx.encoding, "replace")),
            ),
        )
        return
    if not row:  # a blank line: csv.reader's []
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
                clip(row.decode(ctx.encoding, "replace")),
            ),
        )
        return
    if fields is None:
        fields = split_record(text, ctx.delimiter)
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
                    clip(text),
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
                    clip(text),
                ),
            )
        return
    ok = True
    doc = fields[ctx.doc_i]
    verdict = None
    if not doc.strip():
        ok = False
        acc.error(pos, RowError(line_offset, ctx.doc_col, MISSING_FIELD, "document is empty", clip(doc)))
    else:
        verdict = classify_document(doc)
        if not verdict.valid:
            ok = False
            acc.error(pos, RowError(line_offset, ctx.doc_col, INVALID_DOCUMENT, verdict.problem, clip(doc)))
    amount = fields[ctx.amt_i]
    cents = 0
    if not amount.strip():
        ok = False
        acc.error(pos, RowError(line_offset, ctx.amt_col, MISSING_FIELD, "amount is empty", clip(amount)))
    else:
        try:
            cents = parse_cents(amount)
        except MoneyError as exc:
            ok = False
            acc.error(pos, RowError(line_offset, ctx.amt_col, INVALID_AMOUNT, str(exc), clip(amount)))
    if ok and verdict is not None:
        acc.add_valid(verdict.document, verdict.doc_type, cents)
    else:
        acc.rows_invalid += 1


def scalar_region(
    acc: Accumulator, buf: bytes, lo: int, hi: int, line_base: int, ctx: Context, at_eof: bool
) -> tuple[int, int]:
    """The records starting in ``buf[lo:hi]``, ``lo`` being a record start.

    A record still open at ``hi`` (no terminator before it) is processed only ``at_eof``
    (``hi`` is the end of the file); otherwise it is left to the caller, who reads the rest.
    Returns ``(start of the record open at hi, or hi; line_base + line breaks up to there)``.
    """
    cursor = Cursor(buf, hi, ctx.delim_byte)
    pos = lo
    lines = line_base
    while pos < hi:
        end = cursor.terminator(pos)
        plain = cursor.quote(pos) > end  # no quote: the first line break ends it
        if not plain:
            end, _ = record_end(cursor, pos, SR)
        if end < 0 or end >= hi:
            if at_eof:
                scalar_row(acc, buf[pos:hi], pos, lines, ctx)
            return pos, lines
        scalar_row(acc, buf[pos:end], pos, lines, ctx)
        if len(acc.pending) >= SETTLE_EVERY_ERRORS:
            acc.settle()  # rows come in order here: every later error is a later row's
        following = next_record(buf, end, hi)
        # Its terminator is one line break; only quotes hold more.
        lines += 1 if plain else line_breaks(buf, pos, following)
        pos = following
    return hi, lines

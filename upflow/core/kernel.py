"""The compiled row kernel (``scan.c``) through ctypes, and the region driver around it.

:func:`kernel_region` has the contract of :func:`upflow.core.rules.scalar_region`: the
kernel decides the ordinary rows in one pass (no per-row Python) and hands back, as
exception rows, every row that needs Python — errors to write (with their codes) and rows
only the reference can decide (those go through :func:`upflow.core.rules.scalar_row`).
Valid rows come back summed per normalised document.

:func:`process_region` is what chunk processing calls: the kernel where it loads, the
scalar reference where it does not (not built, another architecture, ``UPFLOW_KERNEL=0``)
and for the rest of a region whose sums would leave int64. Buffers shared with the C code
are ``array`` objects (and the chunk's ``bytes``, passed without a copy).
"""

from __future__ import annotations

import ctypes
import logging
import os
from array import array
from collections.abc import Callable, Iterable
from functools import cache
from itertools import repeat
from pathlib import Path

from upflow.core import dialect
from upflow.core.detect import CP1252_UNDEFINED_BYTES
from upflow.core.dialect import CR, LF
from upflow.core.documents import (
    CNPJ,
    CPF,
    MSG_CNPJ_CHECK,
    MSG_CNPJ_REPEATED,
    MSG_CPF_CHECK,
    MSG_CPF_REPEATED,
    msg_length,
)
from upflow.core.money import MSG_AMBIGUOUS, MSG_DECIMALS, MSG_GROUPING, MSG_NOT_MONEY, MSG_TOO_LARGE
from upflow.core.rules import (
    EXTRA_FIELDS,
    INVALID_AMOUNT,
    INVALID_DOCUMENT,
    MISSING_FIELD,
    Accumulator,
    Context,
    clip,
    make_errors,
    scalar_region,
    scalar_row,
)

# The library make (or the package build) compiles beside this module; kernel_build.py itself
# is build code and does not ship.
DEFAULT_DEST = Path(__file__).with_name("_scan.so")

log = logging.getLogger(__name__)

# Set to "0" to let the scalar reference decide every row even where the kernel is built.
DISABLE_ENV = "UPFLOW_KERNEL"

# Mirrors of the enums and limits in scan.c (a test compares them with the C source).
(
    S_POS,
    S_LINES,
    S_ROWS_TOTAL,
    S_ROWS_VALID,
    S_ROWS_INVALID,
    S_CENTS,
    S_NEXC,
    S_USED,
    S_STATUS,
    S_OPEN,
    S_LEN,
) = range(11)
ST_DONE, ST_EXC_FULL, ST_TABLE_FULL, ST_OVERFLOW = range(4)
P_DELIM, P_NCOLS, P_DOC_I, P_AMT_I, P_MAX_ROW, P_UTF8, P_EXC_CAP, P_TABLE_CAP, P_EOF, P_LEN = range(10)
K_FALLBACK, K_FIELDS, K_INVALID = range(3)
(X_KIND, X_START, X_END, X_LINE, X_NFIELDS, X_DOC, X_DOC_N, X_AMT, X_DS, X_DE, X_AS, X_AE, X_COLS) = range(13)
MAX_FIELDS = 256

EMPTY_KEY = 2**64 - 1
ENTRY_WORDS = 3  # scan.c's struct Entry { u64 key; i64 rows; i64 cents; }: 24 bytes
# The reduce's table (scan.c's Sum): hash, rows, cents, two lengths and SUM_TEXT bytes of text.
R_POS, R_USED, R_NEXC, R_LEN = range(4)
SUM_TEXT = 38
SUM_BYTES = 3 * 8 + 2 + SUM_TEXT
EXCEPTION_ROWS = 8192
FIRST_TABLE_CAPACITY = 1 << 12

# Verdict codes of scan.c (0 = valid) → the reference's messages.
D_VALID, D_CPF_REPEATED, D_CPF_CHECK, D_CNPJ_REPEATED, D_CNPJ_CHECK, D_LENGTH, D_FALLBACK = range(7)
A_VALID, A_NOT_MONEY, A_AMBIGUOUS, A_DECIMALS, A_GROUPING, A_TOO_LARGE, A_FALLBACK = range(7)
_DOC_MESSAGES = {
    D_CPF_REPEATED: MSG_CPF_REPEATED,
    D_CPF_CHECK: MSG_CPF_CHECK,
    D_CNPJ_REPEATED: MSG_CNPJ_REPEATED,
    D_CNPJ_CHECK: MSG_CNPJ_CHECK,
}
_AMOUNT_MESSAGES = {
    A_NOT_MONEY: MSG_NOT_MONEY,
    A_AMBIGUOUS: MSG_AMBIGUOUS,
    A_DECIMALS: MSG_DECIMALS,
    A_GROUPING: MSG_GROUPING,
    A_TOO_LARGE: MSG_TOO_LARGE,
}

_p = ctypes.c_void_p
_i64 = ctypes.c_int64


class Kernel:
    """The loaded library with its entry points typed."""

    def __init__(self, path: Path) -> None:
        lib = ctypes.CDLL(str(path))
        self.path = path
        self.scan = lib.upflow_scan
        self.scan.argtypes = [_p, _i64, _p, _p, _p, _p, _p]
        self.scan.restype = _i64
        self.rehash = lib.upflow_rehash
        self.rehash.argtypes = [_p, _i64, _p, _i64]
        self.rehash.restype = None
        self.compact = lib.upflow_compact
        self.compact.argtypes = [_p, _i64, _p]
        self.compact.restype = _i64
        self.line_breaks = lib.upflow_line_breaks
        self.line_breaks.argtypes = [_p, _i64, _i64]
        self.line_breaks.restype = _i64
        self.texts = lib.upflow_texts
        self.texts.argtypes = [_p, _i64, _i64, _p, _p, _p]
        self.texts.restype = _i64
        # Consolidation (upflow.core.consolidation drives these).
        self.partial = lib.upflow_partial
        self.partial.argtypes = [_p, _i64, _p, _i64, _p, _p, _i64, _i64, _p, _p, _p, _p, _i64, _p]
        self.partial.restype = _i64
        self.reduce = lib.upflow_reduce
        self.reduce.argtypes = [_p, _i64, _p, _p, _i64, _p, _i64]
        self.reduce.restype = _i64
        self.reduce_rehash = lib.upflow_reduce_rehash
        self.reduce_rehash.argtypes = [_p, _i64, _p, _i64]
        self.reduce_rehash.restype = None
        self.reduce_sorted = lib.upflow_reduce_sorted
        self.reduce_sorted.argtypes = [_p, _i64, _p, _p, _p, _p, _p]
        self.reduce_sorted.restype = _i64


def address(buffer: bytearray) -> int:
    """Where ``buffer``'s bytes are, for the C code (0 for an empty one, which it never reads)."""
    return ctypes.addressof(ctypes.c_char.from_buffer(buffer)) if buffer else 0


def load(path: Path = DEFAULT_DEST) -> Kernel | None:
    """The kernel, or None when it is disabled (``UPFLOW_KERNEL=0``), not built or not loadable."""
    if os.environ.get(DISABLE_ENV, "1") == "0":
        return None
    return _load(path)


@cache
def _load(path: Path) -> Kernel | None:
    """Loads once per process (so a missing library is logged once)."""
    if not path.is_file():
        log.warning("row kernel %s is not built (run `make`): the scalar reference decides every row", path)
        return None
    try:
        return Kernel(path)
    except (OSError, AttributeError) as error:  # built for another architecture, or a stale build
        log.warning("row kernel %s does not load (%s): the scalar reference decides every row", path, error)
        return None


def supports(ctx: Context) -> bool:
    return ctx.ncols < MAX_FIELDS


def line_breaks(buf: bytes, lo: int, hi: int) -> int:
    """:func:`upflow.core.dialect.line_breaks` (``hi <= len(buf)``), in C where the kernel loads."""
    kernel = load()
    if kernel is None or hi <= lo:
        return dialect.line_breaks(buf, lo, hi)
    count: int = kernel.line_breaks(buf, lo, hi)
    if buf[hi - 1] == CR and hi < len(buf) and buf[hi] == LF:
        count -= 1  # the \r of a \r\n straddling hi: the \n is counted where it is
    return count


def process_region(
    acc: Accumulator, buf: bytes, lo: int, hi: int, line_base: int, ctx: Context, at_eof: bool
) -> tuple[int, int]:
    """The records of ``buf[lo:hi]`` by the kernel where it loads, else by the scalar reference.

    Same contract as :func:`upflow.core.rules.scalar_region`.
    """
    kernel = load() if supports(ctx) else None
    if kernel is None:
        return scalar_region(acc, buf, lo, hi, line_base, ctx, at_eof)
    return kernel_region(kernel, acc, buf, lo, hi, line_base, ctx, at_eof)


def _bad_bytes(encoding: str) -> tuple[int, bytes]:
    """``(utf8 flag, table)``: for a single-byte encoding, the bytes that make a row undecodable."""
    bad = bytearray(256)
    if encoding == "utf-8":
        return 1, bytes(bad)
    if encoding == "cp1252":
        for byte in CP1252_UNDEFINED_BYTES:
            bad[byte] = 1
    else:  # any other encoding: rows with non-ASCII bytes go to the reference
        bad[128:] = b"\x01" * 128
    return 0, bytes(bad)


# The doc types of scan.c's upflow_texts (0, 1).
_DOC_TYPES = (CPF, CNPJ)


class _Table:
    """The kernel's open-addressing sums: ``capacity`` entries of (key, rows, cents) words."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.words = array("Q", (EMPTY_KEY, 0, 0)) * capacity

    @property
    def address(self) -> int:
        address: int = self.words.buffer_info()[0]
        return address

    def grown(self, kernel: Kernel) -> _Table:
        bigger = _Table(self.capacity * 4)
        kernel.rehash(self.address, self.capacity, bigger.address, bigger.capacity)
        return bigger

    def flush(self, kernel: Kernel, acc: Accumulator) -> None:
        """Hand the sums to ``acc`` as columns sorted by document (the table is spent afterwards)."""
        n_cpf = ctypes.c_int64()
        n = kernel.compact(self.address, self.capacity, ctypes.byref(n_cpf))
        if n:
            acc.add_summed(*table_documents(kernel, self.words, n, n_cpf.value))


def table_documents(
    kernel: Kernel, words: array[int], n: int, n_cpf: int
) -> tuple[list[str], list[str], list[int], list[int]]:
    """The columns (documents, doc types, rows, cents) of a compacted table's ``n`` entries
    (``n_cpf`` CPFs, then CNPJs), sorted by document: the texts are made in C (scan.c's
    upflow_texts), so Python makes no object per document but its ``str``."""
    if n == 0:
        return [], [], [], []
    text = bytearray(15 * n)  # 11 or 14 characters and a '\n' each
    merged = array("q", bytes(8 * ENTRY_WORDS * n))
    types = bytearray(n)
    length = kernel.texts(
        words.buffer_info()[0], n, n_cpf, address(text), merged.buffer_info()[0], address(types)
    )
    return (
        str(memoryview(text)[: length - 1], "ascii").split("\n"),
        list(map(_DOC_TYPES.__getitem__, types)),
        merged[1::ENTRY_WORDS].tolist(),
        merged[2::ENTRY_WORDS].tolist(),
    )


@cache
def _document_message(code: int, n: int) -> str:
    return msg_length(n) if code == D_LENGTH else _DOC_MESSAGES[code]


def _amount_message(code: int, _n: int) -> str:
    return _AMOUNT_MESSAGES[code]


class _Exceptions:
    """The exception rows of one drain: columns (``X_…``) read on demand, rows selected by index."""

    def __init__(self, buffer: array[int], n: int) -> None:
        self.buffer = buffer
        self.end = n * X_COLS
        self.columns: dict[int, list[int]] = {}

    def column(self, col: int) -> list[int]:
        values = self.columns.get(col)
        if values is None:
            values = self.columns[col] = self.buffer[col : self.end : X_COLS].tolist()
        return values

    def take(self, col: int, rows: list[int]) -> list[int]:
        return list(map(self.column(col).__getitem__, rows))

    def texts(self, buf: bytes, start_col: int, end_col: int, rows: list[int], encoding: str) -> list[str]:
        """The decoded bytes ``buf[start:end)`` of ``rows``."""
        bounds = zip(self.take(start_col, rows), self.take(end_col, rows), strict=True)
        return [buf[a:b].decode(encoding) for a, b in bounds]


def _drain(acc: Accumulator, buf: bytes, buffer: array[int], n: int, ctx: Context) -> None:
    """Turn the kernel's exception rows into errors (or reference-path rows)."""
    if n == 0:
        return
    exc = _Exceptions(buffer, n)
    kinds, doc, amt, nfields = (exc.column(col) for col in (X_KIND, X_DOC, X_AMT, X_NFIELDS))
    invalid = [i for i, kind in enumerate(kinds) if kind == K_INVALID]
    bad_doc = [i for i in invalid if doc[i] != D_VALID]
    _field_errors(acc, buf, exc, bad_doc, X_DOC, X_DS, X_DE, ctx.doc_col, INVALID_DOCUMENT, _document_message)
    bad_amt = [i for i in invalid if amt[i] != A_VALID]
    _field_errors(acc, buf, exc, bad_amt, X_AMT, X_AS, X_AE, ctx.amt_col, INVALID_AMOUNT, _amount_message)
    wrong_count = [i for i, kind in enumerate(kinds) if kind == K_FIELDS]
    missing = [i for i in wrong_count if nfields[i] < ctx.ncols]
    _field_count_errors(acc, buf, exc, missing, MISSING_FIELD, ctx)
    extra = [i for i in wrong_count if nfields[i] > ctx.ncols]
    _field_count_errors(acc, buf, exc, extra, EXTRA_FIELDS, ctx)
    fallback = [i for i, kind in enumerate(kinds) if kind == K_FALLBACK]
    for pos, end, line in zip(
        exc.take(X_START, fallback), exc.take(X_END, fallback), exc.take(X_LINE, fallback), strict=True
    ):
        scalar_row(acc, buf[pos:end], pos, line, ctx)


def _field_errors(
    acc: Accumulator,
    buf: bytes,
    exc: _Exceptions,
    rows: list[int],
    code_col: int,
    start_col: int,
    end_col: int,
    column: str,
    code: str,
    message: Callable[[int, int], str],
) -> None:
    """One ``code`` error per exception row in ``rows``, on its field ``[start_col, end_col)``."""
    if not rows:
        return
    # Judged fields are ASCII and at most 64 bytes (scan.c): no decoding surprises, no clipping.
    values = exc.texts(buf, start_col, end_col, rows, "ascii")
    messages = list(map(message, exc.take(code_col, rows), exc.take(X_DOC_N, rows)))
    _add_errors(acc, exc, rows, code, repeat(column), messages, values)


def _field_count_errors(
    acc: Accumulator, buf: bytes, exc: _Exceptions, rows: list[int], code: str, ctx: Context
) -> None:
    """``missing_field`` (too few fields) or ``extra_fields`` (too many) errors of ``rows``."""
    if not rows:
        return
    enc, header, ncols = ctx.encoding, ctx.fmt.header, ctx.ncols
    counts = exc.take(X_NFIELDS, rows)
    texts = list(map(clip, exc.texts(buf, X_START, X_END, rows, enc)))
    columns = [header[k] for k in counts] if code == MISSING_FIELD else repeat("")
    messages = [f"row has {k} fields, the header has {ncols}" for k in counts]
    _add_errors(acc, exc, rows, code, columns, messages, texts)


def _add_errors(
    acc: Accumulator,
    exc: _Exceptions,
    rows: list[int],
    code: str,
    columns: Iterable[str],
    messages: list[str],
    values: list[str],
) -> None:
    """One ``code`` error per exception row in ``rows`` (line and position from the row), column-wise."""
    errors = make_errors(exc.take(X_LINE, rows), columns, repeat(code), messages, values, len(rows))
    acc.pending.extend(zip(exc.take(X_START, rows), errors, strict=True))
    acc.count_errors(code, len(rows))


def kernel_region(
    kernel: Kernel, acc: Accumulator, buf: bytes, lo: int, hi: int, line_base: int, ctx: Context, at_eof: bool
) -> tuple[int, int]:
    """Same contract as :func:`upflow.core.rules.scalar_region`."""
    utf8, bad = _bad_bytes(ctx.encoding)
    # Buffers sized to the region: a small one (a small chunk) does not pay for 8,192 rows.
    # Each exception row holds at least one byte; the table grows when half full.
    exc_rows = min(EXCEPTION_ROWS, hi - lo + 1)
    table = _Table(min(FIRST_TABLE_CAPACITY, max(16, 1 << (hi - lo).bit_length())))
    params = array("q", bytes(8 * P_LEN))
    for slot, value in (
        (P_DELIM, ctx.delim_byte),
        (P_NCOLS, ctx.ncols),
        (P_DOC_I, ctx.doc_i),
        (P_AMT_I, ctx.amt_i),
        (P_MAX_ROW, ctx.max_row),
        (P_UTF8, utf8),
        (P_EXC_CAP, exc_rows),
        (P_TABLE_CAP, table.capacity),
        (P_EOF, int(at_eof)),
    ):
        params[slot] = value
    state = array("q", bytes(8 * S_LEN))
    state[S_POS], state[S_LINES], state[S_OPEN] = lo, line_base, hi
    exc = array("q", bytes(8 * X_COLS * exc_rows))  # scan.c writes every column it reports
    params_at, state_at, exc_at = (a.buffer_info()[0] for a in (params, state, exc))
    while True:
        status = kernel.scan(buf, hi, params_at, bad, state_at, exc_at, table.address)
        _drain(acc, buf, exc, state[S_NEXC], ctx)
        acc.settle()  # the next scan's rows all come after this drain's
        state[S_NEXC] = 0
        if status == ST_TABLE_FULL:
            table = table.grown(kernel)
            params[P_TABLE_CAP] = table.capacity
        elif status != ST_EXC_FULL:
            break
    acc.rows_total += state[S_ROWS_TOTAL]
    acc.rows_valid += state[S_ROWS_VALID]
    acc.rows_invalid += state[S_ROWS_INVALID]
    acc.cents_valid += state[S_CENTS]
    table.flush(kernel, acc)
    if status == ST_OVERFLOW:
        # A sum would leave int64 (beyond 92 quadrillion reais): the reference, with Python
        # integers, finishes the region from the row that would have overflowed.
        return scalar_region(acc, buf, state[S_POS], hi, state[S_LINES], ctx, at_eof)
    return state[S_OPEN], state[S_LINES]

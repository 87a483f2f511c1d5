"""The compiled row kernel (``scan.c``) through ctypes, and the region driver around it.

:func:`kernel_region` has the contract of :func:`upflow.core.rows.scalar_region`: the
kernel decides the ordinary rows in one pass (no per-row Python) and hands back, as
exception rows, every row that needs Python — errors to write (with their codes) and rows
only the reference can decide (those go through :func:`upflow.core.rows.scalar_row`).
Valid rows come back summed per normalised document.

When the library is not built (a checkout without ``make``), :func:`load` returns None and
the numpy fast path runs instead; ``make`` and ``make package`` always build it.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from upflow.core.detect import CP1252_UNDEFINED_BYTES
from upflow.core.documents import (
    MSG_CNPJ_CHECK,
    MSG_CNPJ_REPEATED,
    MSG_CPF_CHECK,
    MSG_CPF_REPEATED,
    msg_length,
)
from upflow.core.kernel_build import DEFAULT_DEST
from upflow.core.money import MSG_AMBIGUOUS, MSG_DECIMALS, MSG_GROUPING, MSG_NOT_MONEY, MSG_TOO_LARGE
from upflow.core.rows import (
    EXTRA_FIELDS,
    INVALID_AMOUNT,
    INVALID_DOCUMENT,
    MISSING_FIELD,
    Accumulator,
    Context,
    clip,
    make_errors,
    scalar_row,
)

Arr = npt.NDArray[Any]
log = logging.getLogger(__name__)

# Set to "0" to run the numpy fast path even where the kernel is built (comparisons, debugging).
DISABLE_ENV = "UPFLOW_KERNEL"

# Mirrors of the enums and limits in scan.c (a test compares them with the C source).
(S_POS, S_LINES, S_ROWS_TOTAL, S_ROWS_VALID, S_ROWS_INVALID, S_CENTS, S_NEXC, S_USED, S_STATUS, S_LEN) = (
    range(10)
)
ST_DONE, ST_EXC_FULL, ST_TABLE_FULL, ST_OVERFLOW = range(4)
P_DELIM, P_NCOLS, P_DOC_I, P_AMT_I, P_MAX_ROW, P_UTF8, P_EXC_CAP, P_TABLE_CAP, P_LEN = range(9)
K_FALLBACK, K_FIELDS, K_INVALID = range(3)
(X_KIND, X_START, X_END, X_CEND, X_LINE, X_NFIELDS, X_DOC, X_DOC_N, X_AMT, X_DS, X_DE, X_AS, X_AE, X_COLS) = (
    range(14)
)
MAX_FIELDS = 256

EMPTY_KEY = np.uint64(2**64 - 1)
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
    """The loaded library with its two entry points typed."""

    def __init__(self, path: Path) -> None:
        lib = ctypes.CDLL(str(path))
        self.path = path
        self.scan = lib.upflow_scan
        self.scan.argtypes = [_p, _i64, _p, _p, _p, _p, _p]
        self.scan.restype = _i64
        self.rehash = lib.upflow_rehash
        self.rehash.argtypes = [_p, _i64, _p, _i64]
        self.rehash.restype = None


@cache
def load(path: Path = DEFAULT_DEST) -> Kernel | None:
    """The kernel, or None when it is not built or disabled (the numpy path then runs)."""
    if os.environ.get(DISABLE_ENV, "1") == "0":
        return None
    if not path.is_file():
        log.warning("row kernel %s is not built (run `make`): using the numpy path", path)
        return None
    try:
        return Kernel(path)
    except OSError as error:  # e.g. built for another architecture
        log.warning("row kernel %s does not load (%s): using the numpy path", path, error)
        return None


def supports(ctx: Context) -> bool:
    return ctx.ncols < MAX_FIELDS


def _bad_bytes(encoding: str) -> tuple[int, Arr]:
    """``(utf8 flag, table)``: for a single-byte encoding, the bytes that make a row undecodable."""
    bad = np.zeros(256, np.uint8)
    if encoding == "utf-8":
        return 1, bad
    if encoding == "cp1252":
        bad[list(CP1252_UNDEFINED_BYTES)] = 1
    else:  # any other encoding: rows with non-ASCII bytes go to the reference
        bad[128:] = 1
    return 0, bad


ENTRY = np.dtype([("key", "<u8"), ("rows", "<i8"), ("cents", "<i8")])  # scan.c's Entry


class _Table:
    """The kernel's open-addressing sums: ``key`` (EMPTY_KEY when free), ``rows``, ``cents``."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.entries = np.zeros(capacity, ENTRY)
        self.entries["key"] = EMPTY_KEY

    def grown(self, kernel: Kernel) -> _Table:
        bigger = _Table(self.capacity * 4)
        kernel.rehash(self.entries.ctypes.data, self.capacity, bigger.entries.ctypes.data, bigger.capacity)
        return bigger

    def flush(self, acc: Accumulator) -> None:
        from upflow.core.fastpath import cnpj_strings, cpf_strings

        used = self.entries[self.entries["key"] != EMPTY_KEY]
        keys, rows, cents = used["key"], used["rows"], used["cents"]
        is_cnpj = (keys & np.uint64(1)).astype(bool)
        values = (keys >> np.uint64(1)).astype(np.int64)
        for sel, strings in ((~is_cnpj, cpf_strings), (is_cnpj, cnpj_strings)):
            if sel.any():
                acc.fast_totals.append((strings(values[sel]), rows[sel], cents[sel]))


@cache
def _document_message(code: int, n: int) -> str:
    return msg_length(n) if code == D_LENGTH else _DOC_MESSAGES[code]


def _field_errors(
    acc: Accumulator,
    buf: bytes,
    rows: Arr,
    code_col: int,
    start_col: int,
    end_col: int,
    column: str,
    code: str,
    message: Callable[[int, int], str],
) -> None:
    """One ``code`` error per exception row whose ``code_col`` is set (built column-wise)."""
    rows = rows[rows[:, code_col] != 0]
    if rows.shape[0] == 0:
        return
    # Judged fields are ASCII and at most 64 bytes (scan.c): no decoding surprises, no clipping.
    values = [buf[a:b].decode("ascii") for a, b in _bounds(rows, start_col, end_col)]
    messages = list(map(message, rows[:, code_col].tolist(), rows[:, X_DOC_N].tolist()))
    _add_errors(acc, rows, code, repeat(column), messages, values)


def _bounds(rows: Arr, start_col: int, end_col: int) -> Iterator[tuple[int, int]]:
    return zip(rows[:, start_col].tolist(), rows[:, end_col].tolist(), strict=True)


def _add_errors(
    acc: Accumulator, rows: Arr, code: str, columns: Iterable[str], messages: list[str], values: list[str]
) -> None:
    """One ``code`` error per exception row (line and position from the row), built column-wise."""
    n = rows.shape[0]
    errors = make_errors(rows[:, X_LINE].tolist(), columns, repeat(code), messages, values, n)
    acc.errors.extend(zip(rows[:, X_START].tolist(), errors, strict=True))
    acc.count_errors(code, n)


def _drain(acc: Accumulator, buf: bytes, exc: Arr, ctx: Context) -> None:
    """Turn the kernel's exception rows into errors (or reference-path rows)."""
    if exc.shape[0] == 0:
        return
    kinds = exc[:, X_KIND]
    invalid = exc[kinds == K_INVALID]
    _field_errors(acc, buf, invalid, X_DOC, X_DS, X_DE, ctx.doc_col, INVALID_DOCUMENT, _document_message)
    _field_errors(
        acc,
        buf,
        invalid,
        X_AMT,
        X_AS,
        X_AE,
        ctx.amt_col,
        INVALID_AMOUNT,
        lambda code, _n: _AMOUNT_MESSAGES[code],
    )
    wrong_count = exc[kinds == K_FIELDS]
    _field_count_errors(acc, buf, wrong_count, MISSING_FIELD, ctx)
    _field_count_errors(acc, buf, wrong_count, EXTRA_FIELDS, ctx)
    for pos, end, line in exc[kinds == K_FALLBACK][:, [X_START, X_END, X_LINE]].tolist():
        scalar_row(acc, buf[pos:end], pos, line, ctx)


def _field_count_errors(acc: Accumulator, buf: bytes, rows: Arr, code: str, ctx: Context) -> None:
    """``missing_field`` (too few fields) or ``extra_fields`` (too many) errors, built column-wise."""
    missing = code == MISSING_FIELD
    rows = rows[(rows[:, X_NFIELDS] < ctx.ncols) == missing]
    if rows.shape[0] == 0:
        return
    enc, header, ncols = ctx.encoding, ctx.fmt.header, ctx.ncols
    counts = rows[:, X_NFIELDS].tolist()
    texts = [clip(buf[a:b].decode(enc)) for a, b in _bounds(rows, X_START, X_CEND)]
    columns = [header[k] for k in counts] if missing else repeat("")
    messages = [f"row has {k} fields, the header has {ncols}" for k in counts]
    _add_errors(acc, rows, code, columns, messages, texts)


def kernel_region(
    kernel: Kernel,
    acc: Accumulator,
    buf: bytes,
    lo: int,
    hi: int,
    line_base: int,
    ctx: Context,
    min_group: int,
) -> int:
    """Same contract as :func:`upflow.core.rows.scalar_region` (returns the line count at ``hi``)."""
    data = np.frombuffer(buf, np.uint8)
    utf8, bad = _bad_bytes(ctx.encoding)
    table = _Table(FIRST_TABLE_CAPACITY)
    params = np.array(
        [ctx.delim_byte, ctx.ncols, ctx.doc_i, ctx.amt_i, ctx.max_row, utf8, EXCEPTION_ROWS, table.capacity],
        np.int64,
    )
    state = np.zeros(S_LEN, np.int64)
    state[S_POS], state[S_LINES] = lo, line_base
    exc = np.empty((EXCEPTION_ROWS, X_COLS), np.int64)  # scan.c writes every column it reports
    while True:
        status = kernel.scan(
            data.ctypes.data,
            hi,
            params.ctypes.data,
            bad.ctypes.data,
            state.ctypes.data,
            exc.ctypes.data,
            table.entries.ctypes.data,
        )
        _drain(acc, buf, exc[: int(state[S_NEXC])], ctx)
        state[S_NEXC] = 0
        if status == ST_TABLE_FULL:
            table = table.grown(kernel)
            params[P_TABLE_CAP] = table.capacity
        elif status != ST_EXC_FULL:
            break
    acc.rows_total += int(state[S_ROWS_TOTAL])
    acc.rows_valid += int(state[S_ROWS_VALID])
    acc.rows_invalid += int(state[S_ROWS_INVALID])
    acc.cents_valid += int(state[S_CENTS])
    table.flush(acc)
    lines = int(state[S_LINES])
    if status == ST_OVERFLOW:
        # A sum would leave int64 (sums beyond 92 quadrillion reais): the numpy path, which
        # falls back to Python integers, finishes the region.
        from upflow.core.fastpath import fast_region

        return fast_region(acc, buf, int(state[S_POS]), hi, lines, ctx, min_group)
    return lines

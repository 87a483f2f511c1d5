"""numpy fast path for :func:`upflow.core.rows.process_chunk`.

Works on blocks of ~4 MiB of complete rows. Fields split on the delimiters at even
quote parity. A decodable row within the row limit with the wrong number of fields
gets its ``missing_field`` / ``extra_fields`` error here. A row with the right number
of fields is decided here when its document and amount fields hold no ``"`` and
their *shapes* (each character replaced by its class: digit, letter, ``.``, …) are
common in the block. Shapes are validated once with the scalar rules (``documents``
/ ``money``), then check digits and amounts are computed column-wise; valid rows are
reduced per document per block (int64 cents) and once more per region. Every other
row goes through :func:`upflow.core.rows.scalar_row`, the reference; a property test
proves both paths give identical results.
"""

from __future__ import annotations

from decimal import Context as DecimalContext
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from upflow.core.csvscan import first_row_start
from upflow.core.documents import (
    CNPJ,
    CNPJ_W1,
    CNPJ_W2,
    CPF,
    MSG_CNPJ_CHECK,
    MSG_CNPJ_REPEATED,
    MSG_CPF_CHECK,
    MSG_CPF_REPEATED,
    msg_length,
)
from upflow.core.money import MoneyError, cents_to_decimal, parse_parts
from upflow.core.rows import (
    EXTRA_FIELDS,
    INVALID_AMOUNT,
    INVALID_DOCUMENT,
    MISSING_FIELD,
    Accumulator,
    Context,
    DocumentTotal,
    RowError,
    clip,
    scalar_row,
)
from upflow.definition import MiB

Arr = npt.NDArray[Any]

_EXACT = DecimalContext(prec=80)

BLOCK_BYTES = 4 * MiB
DOC_W = 18
AMT_W = 16

_DOC_OTHER = 7
_DOC_LUT = np.full(256, _DOC_OTHER, np.uint8)
_DOC_LUT[ord("0") : ord("9") + 1] = 1
# Letters share the digits' class (alphanumeric CNPJs vary letter positions freely); whether a
# document has any letter is a separate bit of its shape key.
_DOC_LUT[ord("A") : ord("Z") + 1] = 1
_DOC_LUT[ord("a") : ord("z") + 1] = 1
_DOC_LUT[ord(".")] = 3
_DOC_LUT[ord("-")] = 4
_DOC_LUT[ord("/")] = 5

_AMT_OTHER = 15
_AMT_CHARS = {1: "1", 2: ".", 3: ",", 4: "-", 5: "+", 6: "R", 7: "$", 8: " ", 9: "(", 10: ")"}
_AMT_LUT = np.full(256, _AMT_OTHER, np.uint8)
for _cls, _ch in _AMT_CHARS.items():
    _AMT_LUT[ord(_ch)] = _cls
_AMT_LUT[ord("0") : ord("9") + 1] = 1

_DOC_SHIFT = np.uint64(1) << (3 * np.arange(DOC_W)).astype(np.uint64)
_AMT_SHIFT = np.uint64(1) << (4 * np.arange(AMT_W)).astype(np.uint64)
_CPF_W9 = np.arange(10, 1, -1, dtype=np.int64)
_CPF_W10 = np.arange(11, 1, -1, dtype=np.int64)
_CNPJ_W1 = np.array(CNPJ_W1, np.int64)
_CNPJ_W2 = np.array(CNPJ_W2, np.int64)
_POW10_11 = 10 ** np.arange(10, -1, -1, dtype=np.int64)
_POW36_12 = 36 ** np.arange(11, -1, -1, dtype=np.int64)


def _dot(m: Arr, v: Arr) -> Arr:
    """``m @ v`` (einsum: no BLAS threads, faster on narrow integer matrices)."""
    out: Arr = np.einsum("ij,j->i", m, v)
    return out


def _count(mask: Arr) -> Arr:
    """Per-row number of true cells of a boolean matrix with fewer than 256 columns (uint8)."""
    out: Arr = np.einsum("ij->i", mask.view(np.uint8))
    return out


def _gather(a: Arr, fs: Arr, fe: Arr, width: int) -> tuple[Arr, Arr]:
    """Left-aligned ``(n, width)`` matrix of the field bytes (0 beyond the field) and the inside mask.

    ``a`` must be followed by at least ``width`` padding bytes (see ``_block``): each row is
    then one contiguous ``width``-byte copy from a strided window view.
    """
    windows = np.lib.stride_tricks.as_strided(a, shape=(a.size - width, width), strides=(1, 1))
    m = windows[fs]
    inside = np.arange(width, dtype=np.int32)[None, :] < (fe - fs).astype(np.int32)[:, None]
    m *= inside
    return m, inside


def _groups(keys: Arr, min_group: int) -> list[tuple[int, Arr]]:
    """``(shape key, row indices)`` for every shape seen at least ``min_group`` times."""
    if keys.size == 0:
        return []
    order = np.argsort(keys)
    ks = keys[order]
    bounds = np.flatnonzero(ks[1:] != ks[:-1]) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [ks.size]))
    return [
        (int(ks[s]), order[s:e])
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
        if e - s >= min_group
    ]


def _cpf_check(d: Arr) -> tuple[Arr, Arr]:
    """(valid, repeated) for an ``(n, 11)`` int64 digit matrix."""
    rep = _count(d == d[:, :1]) == d.shape[1]
    r1 = _dot(d[:, :9], _CPF_W9) * 10 % 11
    r1[r1 == 10] = 0
    r2 = _dot(d[:, :10], _CPF_W10) * 10 % 11
    r2[r2 == 10] = 0
    return (~rep) & (r1 == d[:, 9]) & (r2 == d[:, 10]), rep


def _cnpj_dv(v: Arr, w: Arr) -> Arr:
    r = _dot(v[:, : w.size], w) % 11
    return np.where(r < 2, 0, 11 - r)


def _cnpj_check(v: Arr) -> tuple[Arr, Arr]:
    """(valid, repeated) for an ``(n, 14)`` int64 matrix of ``ord(upper(c)) - 48``."""
    rep = _count(v == v[:, :1]) == v.shape[1]
    ok = (~rep) & (_cnpj_dv(v, _CNPJ_W1) == v[:, 12]) & (_cnpj_dv(v, _CNPJ_W2) == v[:, 13])
    return ok, rep


class _Block:
    """Per-block decisions for the simple rows (index space of the simple rows)."""

    def __init__(self, n: int) -> None:
        self.doc_state = np.zeros(n, np.int8)  # 0 undecided, 1 valid, 2 invalid
        self.doc_msg = np.zeros(n, np.int32)
        self.doc_cnpj = np.zeros(n, bool)
        self.doc_key = np.zeros(n, np.int64)
        self.amt_state = np.zeros(n, np.int8)
        self.amt_msg = np.zeros(n, np.int32)
        self.cents = np.zeros(n, np.int64)
        self.messages: list[str] = []

    def msg(self, text: str) -> int:
        self.messages.append(text)
        return len(self.messages) - 1


def _documents(blk: _Block, a: Arr, fs: Arr, fe: Arr, min_group: int) -> None:
    dl = fe - fs
    m, inside = _gather(a, fs, fe, DOC_W)
    cls = _DOC_LUT[m]
    cls[~inside] = 0
    ok = (dl >= 1) & (dl <= DOC_W) & (_count(cls == _DOC_OTHER) == 0)
    cand = np.flatnonzero(ok)
    keys = _dot(cls, _DOC_SHIFT)[cand]
    keys |= (_count(m >= 65)[cand] > 0).astype(np.uint64) << np.uint64(63)
    for key, sel in _groups(keys, min_group):
        rows = cand[sel]
        shape = [(key >> (3 * i)) & 7 for i in range(DOC_W)]
        letters = bool(key >> 63)
        pos = [i for i, c in enumerate(shape) if c == 1]
        n = len(pos)
        sub = m[rows[:, None], np.array(pos, np.intp)].astype(np.int64)
        if not letters and 5 not in shape and n <= 11:
            d = np.zeros((rows.size, 11), np.int64)
            d[:, 11 - n :] = sub - 48
            valid, rep = _cpf_check(d)
            blk.doc_key[rows] = _dot(d, _POW10_11)
            bad_rep, bad_check = blk.msg(MSG_CPF_REPEATED), blk.msg(MSG_CPF_CHECK)
        elif n == 14:
            v = np.where(sub >= 97, sub - 32, sub) - 48
            valid, rep = _cnpj_check(v)
            code = v[:, :12]
            code = np.where(code >= 17, code - 7, code)
            blk.doc_key[rows] = _dot(code, _POW36_12)
            blk.doc_cnpj[rows] = True
            bad_rep, bad_check = blk.msg(MSG_CNPJ_REPEATED), blk.msg(MSG_CNPJ_CHECK)
        else:
            blk.doc_state[rows] = 2
            blk.doc_msg[rows] = blk.msg(msg_length(n))
            continue
        blk.doc_state[rows] = np.where(valid, 1, 2)
        blk.doc_msg[rows] = np.where(rep, bad_rep, bad_check)


def _amounts(blk: _Block, a: Arr, fs: Arr, fe: Arr, min_group: int) -> None:
    al = fe - fs
    m, inside = _gather(a, fs, fe, AMT_W)
    cls = _AMT_LUT[m]
    cls[~inside] = 0
    ok = (al >= 1) & (al <= AMT_W) & (_count(cls == _AMT_OTHER) == 0) & (_count(cls == 1) > 0)
    cand = np.flatnonzero(ok)
    keys = _dot(cls, _AMT_SHIFT)[cand]
    for key, sel in _groups(keys, min_group):
        rows = cand[sel]
        shape = [(key >> (4 * i)) & 15 for i in range(AMT_W)]
        text = "".join(_AMT_CHARS[c] for c in shape if c)
        try:
            sign, _intd, decd = parse_parts(text)
        except MoneyError as exc:
            blk.amt_state[rows] = 2
            blk.amt_msg[rows] = blk.msg(str(exc))
            continue
        pos = [i for i, c in enumerate(shape) if c == 1]
        pw = 10 ** np.arange(len(pos) - 1, -1, -1, dtype=np.int64)
        digits = m[rows[:, None], np.array(pos, np.intp)].astype(np.int64) - 48
        blk.cents[rows] = sign * _dot(digits, pw) * (10 ** (2 - len(decd)))
        blk.amt_state[rows] = 1


def _exact_sum(x: Arr) -> int:
    if x.size == 0:
        return 0
    if int(np.abs(x).max()) * x.size < 2**63:
        return int(x.sum())
    return sum(x.tolist())


_CP1252_UNDEFINED = np.array([0x81, 0x8D, 0x8F, 0x90, 0x9D], np.uint8)


def _undecodable(buf: bytes, b_lo: int, b_hi: int, a: Arr, hi8: Arr, encoding: str) -> Arr:
    """Positions of bytes that may make their row undecodable (sorted)."""
    if encoding == "utf-8":
        try:
            buf[b_lo:b_hi].decode("utf-8")
        except UnicodeDecodeError:
            return hi8
        return hi8[:0]
    if encoding == "cp1252":
        return hi8[np.isin(a[hi8], _CP1252_UNDEFINED)]
    return hi8


def _field_count_errors(
    acc: Accumulator,
    buf: bytes,
    b_lo: int,
    rows: Arr,
    starts: Arr,
    cend: Arr,
    nfields: Arr,
    nl: Arr,
    line_base: int,
    ctx: Context,
) -> None:
    """``missing_field`` / ``extra_fields`` for decodable rows with the wrong number of fields."""
    if rows.size == 0:
        return
    acc.rows_total += rows.size
    acc.rows_invalid += rows.size
    st = starts[rows]
    lines = (line_base + np.searchsorted(nl, st)).tolist()
    pos_l = (st + b_lo).tolist()
    ends_l = (cend[rows] + b_lo).tolist()
    header, ncols, enc = ctx.fmt.header, ctx.ncols, ctx.encoding
    for k, n in enumerate(nfields[rows].tolist()):
        text = clip(buf[pos_l[k] : ends_l[k]].decode(enc))
        if n < ncols:
            err = RowError(
                lines[k], header[n], MISSING_FIELD, f"row has {n} fields, the header has {ncols}", text
            )
        else:
            err = RowError(lines[k], "", EXTRA_FIELDS, f"row has {n} fields, the header has {ncols}", text)
        acc.error(pos_l[k], err)


def _block(
    acc: Accumulator,
    buf: bytes,
    b_lo: int,
    b_hi: int,
    line_base: int,
    ctx: Context,
    min_group: int,
    keys_out: list[tuple[bool, Arr, Arr, Arr]],
) -> int:
    """Decide the rows of ``buf[b_lo:b_hi]`` (whole rows); returns the number of ``\n`` in it."""
    a = np.frombuffer(buf, np.uint8, count=b_hi - b_lo, offset=b_lo)
    padded = np.zeros(a.size + 2 * max(DOC_W, AMT_W), np.uint8)
    padded[: a.size] = a
    nl = np.flatnonzero(a == 10)
    has_q = buf.find(b'"', b_lo, b_hi) >= 0
    q = np.flatnonzero(a == 34) if has_q else None
    ends = nl[(np.searchsorted(q, nl) & 1) == 0] if q is not None else nl
    if ends.size == 0:
        return nl.size
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    raw_len = ends - starts
    cend = ends - ((raw_len > 0) & (a[ends - 1] == 13))
    nonblank = cend > starts
    ok_row = nonblank & (raw_len <= ctx.max_row)
    hi8 = np.flatnonzero(a >= 128)
    if hi8.size:
        # Non-ASCII text (accented names) is fine as long as the row decodes; rows with bytes
        # that may not decode go to the scalar path, which reports encoding_error.
        bad = _undecodable(buf, b_lo, b_hi, a, hi8, ctx.encoding)
        if bad.size:
            ok_row &= np.searchsorted(bad, ends) == np.searchsorted(bad, starts)
    dpos = np.flatnonzero(a == ctx.delim_byte)
    if q is not None and dpos.size:
        # Fields split on delimiters at even parity; the block starts at even parity and every
        # row holds an even number of quotes, so the parity since the block start is the row's.
        # Only the (few) rows holding a quote can have delimiters at odd parity.
        rq = np.flatnonzero(np.searchsorted(q, ends) != np.searchsorted(q, starts))
        if rq.size:
            d_lo = np.searchsorted(dpos, starts[rq])
            cnt = np.searchsorted(dpos, ends[rq]) - d_lo
            di = np.repeat(d_lo - (np.cumsum(cnt) - cnt), cnt) + np.arange(int(cnt.sum()))
            odd = di[(np.searchsorted(q, dpos[di]) & 1) == 1]
            if odd.size:
                dpos = np.delete(dpos, odd)
    d0 = np.searchsorted(dpos, starts)
    # Delimiters of row i end where row i + 1's begin (only "\r\n" lies between them).
    d1 = np.empty_like(d0)
    d1[:-1] = d0[1:]
    d1[-1] = np.searchsorted(dpos, cend[-1])
    nfields = d1 - d0 + 1
    simple = ok_row & (nfields == ctx.ncols)
    _field_count_errors(
        acc, buf, b_lo, np.flatnonzero(ok_row & ~simple), starts, cend, nfields, nl, line_base, ctx
    )
    idx = np.flatnonzero(simple)
    st, ce, sd0 = starts[idx], cend[idx], d0[idx]
    last = ctx.ncols - 1

    def bounds(j: int) -> tuple[Arr, Arr]:
        fs = st if j == 0 else dpos[sd0 + (j - 1)] + 1
        fe = ce if j == last else dpos[sd0 + j]
        return fs, fe

    blk = _Block(idx.size)
    dfs, dfe = bounds(ctx.doc_i)
    afs, afe = bounds(ctx.amt_i)
    if idx.size:
        _documents(blk, padded, dfs, dfe, min_group)
        _amounts(blk, padded, afs, afe, min_group)
    decided = (blk.doc_state != 0) & (blk.amt_state != 0)
    # Rows the fast path leaves to the reference implementation.
    fallback = nonblank & ~ok_row
    fallback[idx[~decided]] = True
    fb = np.flatnonzero(fallback)
    if fb.size:
        fb_line = line_base + np.searchsorted(nl, starts[fb])
        for s, e, ln in zip(starts[fb].tolist(), ends[fb].tolist(), fb_line.tolist(), strict=True):
            scalar_row(acc, buf[b_lo + s : b_lo + e], b_lo + s, ln, ctx)
    dec = np.flatnonzero(decided)
    if dec.size == 0:
        return nl.size
    doc_ok = blk.doc_state[dec] == 1
    amt_ok = blk.amt_state[dec] == 1
    valid = doc_ok & amt_ok
    n_valid = int(valid.sum())
    acc.rows_total += dec.size
    acc.rows_valid += n_valid
    acc.rows_invalid += dec.size - n_valid
    v = dec[valid]
    cents = blk.cents[v]
    acc.cents_valid += _exact_sum(cents)
    is_cnpj = blk.doc_cnpj[v]
    keys = blk.doc_key[v]
    # Reduced per block (documents repeat), so what is kept until the region ends stays small.
    for flag, sel in ((False, ~is_cnpj), (True, is_cnpj)):
        if sel.any():
            k = keys[sel]
            keys_out.append((flag, *_reduce(k, np.ones(k.size, np.int64), cents[sel])))
    bad = dec[~valid]
    if bad.size:
        rows_st = st[bad]
        lines = (line_base + np.searchsorted(nl, rows_st)).tolist()
        pos_l = (rows_st + b_lo).tolist()
        msgs = blk.messages
        dbad = ~doc_ok[~valid]
        abad = ~amt_ok[~valid]
        d_fs, d_fe = (dfs[bad] + b_lo).tolist(), (dfe[bad] + b_lo).tolist()
        a_fs, a_fe = (afs[bad] + b_lo).tolist(), (afe[bad] + b_lo).tolist()
        dmsg, amsg = blk.doc_msg[bad].tolist(), blk.amt_msg[bad].tolist()
        for k, (db, ab) in enumerate(zip(dbad.tolist(), abad.tolist(), strict=True)):
            if db:
                acc.error(
                    pos_l[k],
                    RowError(
                        lines[k],
                        ctx.doc_col,
                        INVALID_DOCUMENT,
                        msgs[dmsg[k]],
                        buf[d_fs[k] : d_fe[k]].decode("ascii"),
                    ),
                )
            if ab:
                acc.error(
                    pos_l[k],
                    RowError(
                        lines[k],
                        ctx.amt_col,
                        INVALID_AMOUNT,
                        msgs[amsg[k]],
                        buf[a_fs[k] : a_fe[k]].decode("ascii"),
                    ),
                )
    return nl.size


def _cnpj_strings(keys: Arr) -> Arr:
    """``U14`` array of the CNPJs whose first 12 characters are the base-36 ``keys``."""
    codes = (keys[:, None] // _POW36_12[None, :]) % 36
    chars = np.where(codes < 10, codes + 48, codes + 55)
    v = chars - 48
    full = np.empty((keys.size, 14), np.uint8)
    full[:, :12] = chars
    full[:, 12] = _cnpj_dv(v, _CNPJ_W1) + 48
    v13 = np.concatenate((v, (full[:, 12:13].astype(np.int64) - 48)), axis=1)
    full[:, 13] = _cnpj_dv(v13, _CNPJ_W2) + 48
    return full.view("S14").ravel().astype("U14")


def _cpf_strings(keys: Arr) -> Arr:
    """``U14`` array of the 11-digit CPFs ``keys``."""
    digits = ((keys[:, None] // _POW10_11[None, :]) % 10 + 48).astype(np.uint8)
    return np.ascontiguousarray(digits).view("S11").ravel().astype("U14")


def _sum_sorted(values: Arr, starts: Arr) -> Arr:
    """Exact per-group sums of ``values`` (groups start at ``starts``); object dtype if int64 may overflow."""
    if values.dtype != object and int(np.abs(values).max()) * values.size < 2**63:
        return np.add.reduceat(values, starts)
    return np.add.reduceat(values.astype(object), starts)


def _reduce(keys: Arr, rows: Arr, cents: Arr) -> tuple[Arr, Arr, Arr]:
    """Sorted distinct ``keys`` with their summed ``rows`` and (exactly) summed ``cents``."""
    order = np.argsort(keys)
    ks = keys[order]
    starts = np.concatenate(([0], np.flatnonzero(ks[1:] != ks[:-1]) + 1))
    return ks[starts], np.add.reduceat(rows[order], starts), _sum_sorted(cents[order], starts)


def merge_totals(scalar: dict[str, list[Any]], fast: list[tuple[Any, Any, Any]]) -> tuple[DocumentTotal, ...]:
    """Per-document totals (sorted by document) of the scalar dict and the fast-path arrays."""
    docs_p = [d for d, _, _ in fast]
    rows_p = [r for _, r, _ in fast]
    cents_p = [c for _, _, c in fast]
    if scalar:
        items = list(scalar.items())
        docs_p.append(np.array([d for d, _ in items], dtype="U14"))
        rows_p.append(np.array([t[1] for _, t in items], dtype=np.int64))
        cents_p.append(np.array([t[2] for _, t in items], dtype=object))
    docs = np.concatenate(docs_p)
    rows = np.concatenate(rows_p)
    if any(c.dtype == object for c in cents_p):
        cents = np.concatenate([c.astype(object) for c in cents_p])
    else:
        cents = np.concatenate(cents_p)
    if docs.size == 0:
        return ()
    order = np.argsort(docs)
    ds = docs[order]
    starts = np.concatenate(([0], np.flatnonzero(ds[1:] != ds[:-1]) + 1))
    doc_list: list[str] = ds[starts].tolist()
    n_rows: list[int] = np.add.reduceat(rows[order], starts).tolist()
    sums = _sum_sorted(cents[order], starts).tolist()
    types = [CPF if len(d) == 11 else CNPJ for d in doc_list]
    if cents.dtype == object:
        amounts = list(map(cents_to_decimal, sums))
    else:  # int64 sums: Decimal(c).scaleb(-2) is exact under a precision of 80 digits
        ctx = _EXACT
        amounts = [Decimal(c).scaleb(-2, ctx) for c in sums]
    return tuple(map(DocumentTotal, doc_list, types, n_rows, amounts))


def fast_region(
    acc: Accumulator, buf: bytes, lo: int, hi: int, line_base: int, ctx: Context, min_group: int
) -> int:
    """Same contract as :func:`upflow.core.rows.scalar_region` (returns the line count at ``hi``)."""
    keys_out: list[tuple[bool, Arr, Arr, Arr]] = []
    pos, lines = lo, line_base
    while pos < hi:
        end = hi
        cut = pos + BLOCK_BYTES
        if cut < hi:
            nxt = first_row_start(buf, cut, hi, bool(buf.count(b'"', pos, cut) & 1))
            end = hi if nxt < 0 else nxt
        lines += _block(acc, buf, pos, end, lines, ctx, min_group, keys_out)
        pos = end
    for cnpj, doc_type in ((False, CPF), (True, CNPJ)):
        parts = [p[1:] for p in keys_out if p[0] == cnpj]
        if parts:
            uniq, rows, cents = _reduce(*(np.concatenate(col) for col in zip(*parts, strict=True)))
            docs = _cpf_strings(uniq) if doc_type == CPF else _cnpj_strings(uniq)
            acc.fast_totals.append((docs, rows, cents))
    return lines

"""numpy fast path for :func:`upflow.core.rows.process_chunk`.

Works on blocks of ~4 MiB of complete rows. Fields split on the delimiters at even
quote parity. A decodable row within the row limit with the wrong number of fields
gets its ``missing_field`` / ``extra_fields`` error here. For a row with the right
number of fields:

* documents are judged once per *distinct* text (hash of the zero-padded 24-byte field,
  verified byte for byte): common *shapes* (each character replaced by its class:
  digit, letter, ``.``, …) get column-wise check digits and keys (one weighted dot per
  quantity), rare ones the scalar ``classify_document`` once per distinct text;
* amounts are grouped by shape; each common shape is judged once with ``money`` and its
  cents are one weighted dot of the field bytes;
* valid rows are summed per distinct document text (``bincount``) and per normalised
  document once per region.

Every other row (quotes in a judged field, blank or over-long fields, rare amount shapes,
undecodable bytes, …) goes through :func:`upflow.core.rows.scalar_row`, the reference; a
property test proves both paths give identical results.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from upflow.core.csvscan import first_row_start
from upflow.core.detect import CP1252_UNDEFINED_BYTES
from upflow.core.documents import (
    CNPJ,
    CNPJ_W1,
    CNPJ_W2,
    CPF,
    MSG_CNPJ_CHECK,
    MSG_CNPJ_REPEATED,
    MSG_CPF_CHECK,
    MSG_CPF_REPEATED,
    classify_document,
    msg_length,
)
from upflow.core.money import MoneyError, parse_parts
from upflow.core.rows import (
    EXTRA_FIELDS,
    INVALID_AMOUNT,
    INVALID_DOCUMENT,
    MISSING_FIELD,
    Accumulator,
    Context,
    DocumentTotals,
    clip,
    count_quotes,
    new_error,
    scalar_row,
)
from upflow.definition import MiB

Arr = npt.NDArray[Any]

_DOC_TYPES = np.array([CNPJ, CPF], dtype=object)

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
_DOC_LUT[0] = 0  # padding beyond the field (a real NUL byte excludes its field, see _documents)

_AMT_OTHER = 15
_AMT_CHARS = {1: "1", 2: ".", 3: ",", 4: "-", 5: "+", 6: "R", 7: "$", 8: " ", 9: "(", 10: ")"}
_AMT_LUT = np.full(256, _AMT_OTHER, np.uint8)
for _cls, _ch in _AMT_CHARS.items():
    _AMT_LUT[ord(_ch)] = _cls
_AMT_LUT[ord("0") : ord("9") + 1] = 1
_AMT_TABLE = _AMT_LUT.tobytes()

_DOC_SHIFT = np.uint64(1) << (3 * np.arange(DOC_W)).astype(np.uint64)
_NIBBLE_LOW = np.uint64(0x1111111111111111)
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
    # Row k of the table is the mask of a k-byte field: one row gather instead of a broadcast compare.
    table = np.arange(width)[None, :] < np.arange(width + 1)[:, None]
    inside = np.take(table, np.minimum(fe - fs, width), axis=0)
    np.multiply(m, inside.view(np.uint8), out=m)
    return m, inside


_SPAN_HASH = np.uint64(0x9E3779B97F4A7C15)


def _spans(keys: Arr, min_group: int) -> tuple[Arr, list[tuple[int, int, int]]]:
    """``(order, [(shape key, start, end), …])``: ``keys[order][start:end]`` is one shape, in a run of
    at least ``min_group`` rows.

    Rows are ordered by a 16-bit hash of their key (a stable radix sort: few distinct shapes, ~5x
    faster than sorting the 64-bit keys) and runs split where the key changes. Two shapes with
    the same hash may interleave into shorter runs; a run below ``min_group`` only sends its rows
    to the scalar path, so the result is the same.
    """
    order = np.argsort(((keys * _SPAN_HASH) >> np.uint64(48)).astype(np.uint16), kind="stable")
    if keys.size == 0:
        return order, []
    ks = keys[order]
    bounds = np.flatnonzero(ks[1:] != ks[:-1]) + 1
    starts = [0, *bounds.tolist()]
    ends = [*bounds.tolist(), int(ks.size)]
    spans = [(int(ks[s]), s, e) for s, e in zip(starts, ends, strict=True) if e - s >= min_group]
    return order, spans


def _groups(keys: Arr, min_group: int) -> list[tuple[int, Arr]]:
    """``(shape key, row indices)`` for every shape seen at least ``min_group`` times."""
    order, spans = _spans(keys, min_group)
    return [(key, order[s:e]) for key, s, e in spans]


def _cnpj_dv(v: Arr, w: Arr) -> Arr:
    r = _dot(v[:, : w.size], w) % 11
    return np.where(r < 2, 0, 11 - r)


def _wdots(sub: Arr, pos: list[int], weights: list[list[int]]) -> list[Arr]:
    """Per weight list ``w``, per row ``sum(w[k] * (sub[:, pos[k]] - 48))``: one ``(n, width) @ (width, q)``
    product with the weights scattered to the positions (integer matmul: no BLAS, exact)."""
    w = np.zeros((sub.shape[1], len(weights)), np.int64)
    for j, ws in enumerate(weights):
        w[pos[: len(ws)], j] = ws
    out = sub @ w
    out -= 48 * w.sum(axis=0)
    return [out[:, j] for j in range(len(weights))]


def _cpf_group(sub: Arr, pos: list[int]) -> tuple[Arr, Arr, Arr]:
    """(valid, repeated, key) of a CPF shape: digits of ``sub`` (bytes) at ``pos``, left-padded to 11."""
    n = len(pos)
    pad = 11 - n  # digit k of the 11 is pos[k - pad]
    if n == 0:
        none = np.zeros(sub.shape[0], bool)
        return none, ~none, np.zeros(sub.shape[0], np.int64)
    cols = np.take(sub, pos, axis=1)
    mx, mn = cols.max(axis=1), cols.min(axis=1)
    rep = (mx == mn) & (mx == 48) if pad else mx == mn
    ks = range(pad, 11)
    s1, s2, key = _wdots(
        sub,
        pos,
        [[10 - k for k in ks if k < 9], [11 - k for k in ks if k < 10], [10 ** (10 - k) for k in ks]],
    )
    r1 = s1 * 10 % 11
    r1[r1 == 10] = 0
    r2 = s2 * 10 % 11
    r2[r2 == 10] = 0
    d10 = cols[:, -1].astype(np.int64) - 48
    d9 = cols[:, -2].astype(np.int64) - 48 if n >= 2 else np.zeros_like(d10)
    return (~rep) & (r1 == d9) & (r2 == d10), rep, key


def _cnpj_group(sub: Arr, pos: list[int], letters: bool) -> tuple[Arr, Arr, Arr]:
    """(valid, repeated, key) of a 14-character CNPJ shape: characters of ``sub`` at ``pos``."""
    if letters:
        sub = np.where(sub >= 97, sub - 32, sub)  # upper case
    cols = np.take(sub, pos, axis=1)
    rep = cols.max(axis=1) == cols.min(axis=1)
    weights = [list(CNPJ_W1), list(CNPJ_W2)]
    if not letters:  # at most 57 × (36**12 - 1) / 35 < 2**63
        weights.append(_POW36_12.tolist())
    sums = _wdots(sub, pos, weights)
    r1 = sums[0] % 11
    r2 = sums[1] % 11
    dv1 = np.where(r1 < 2, 0, 11 - r1)
    dv2 = np.where(r2 < 2, 0, 11 - r2)
    ok = (~rep) & (dv1 == cols[:, 12].astype(np.int64) - 48) & (dv2 == cols[:, 13].astype(np.int64) - 48)
    if letters:  # base-36 digit of a character: 0-9, A=10 … Z=35
        code = cols[:, :12].astype(np.int64) - 48
        code -= 7 * (code >= 17)
        key = _dot(code, _POW36_12)
    else:
        key = sums[2]
    return ok, rep, key


class _Block:
    """Per-block decisions for the simple rows (index space of the simple rows)."""

    def __init__(self, n: int) -> None:
        self.doc_state: Arr = np.zeros(n, np.int8)  # 0 undecided, 1 valid, 2 invalid
        self.doc_msg: Arr = np.zeros(n, np.int32)
        self.doc_inv: Arr = np.zeros(n, np.intp)  # distinct document value of each row
        self.doc_cnpj_d: Arr = np.zeros(0, bool)  # per distinct value: CNPJ?
        self.doc_key_d: Arr = np.zeros(0, np.int64)  # per distinct value: normalised key (valid ones)
        self.amt_state = np.zeros(n, np.int8)
        self.amt_msg = np.zeros(n, np.int32)
        self.cents = np.zeros(n, np.int64)
        self.messages: list[str] = []

    def msg(self, text: str) -> int:
        self.messages.append(text)
        return len(self.messages) - 1


_KEY_W = 24  # document fields up to this many bytes are compared as three uint64 words
_H1, _H2, _H3, _H4 = (
    np.uint64(k) for k in (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93)
)


def _distinct(m: Arr, dl: Arr) -> tuple[Arr, Arr, Arr]:
    """Distinct rows of the zero-padded ``(n, 24)`` byte matrix ``m`` (with lengths ``dl``).

    Returns ``(first, inv, same)``: one representative row index per distinct value, each row's
    value index, and whether the row really equals its representative (a hash collision makes
    it false, and that row is then left to the scalar path).
    """
    u = m.view(np.uint64)
    h = u[:, 0] * _H1
    h ^= u[:, 1] * _H2
    h ^= u[:, 2] * _H3
    h ^= dl.astype(np.uint64) * _H4
    # Sort the hashes with the row index in their low bits (a plain uint64 sort, ~3x faster than
    # argsort): the high bits group equal values, the low bits give each row back.
    bits = max(1, (h.size - 1).bit_length())
    low = np.uint64((1 << bits) - 1)
    h &= ~low
    h |= np.arange(h.size, dtype=np.uint64)
    h.sort()
    order = (h & low).astype(np.intp)
    hs = h >> np.uint64(bits)
    new = np.empty(hs.size, bool)
    new[:1] = True
    np.not_equal(hs[1:], hs[:-1], out=new[1:])
    gid = np.cumsum(new) - 1
    inv = np.empty_like(gid)
    inv[order] = gid
    first = order[new]
    rep = first[inv]
    r = u[rep]  # column by column: 2x faster than ``(u == r).all(axis=1)``
    same = dl == dl[rep]
    for j in range(3):
        same &= u[:, j] == r[:, j]
    return first, inv, same


def _documents(
    blk: _Block, buf: bytes, b_lo: int, a: Arr, fs: Arr, fe: Arr, min_group: int, encoding: str
) -> None:
    """Judge each distinct document text once; verdicts, keys and value ids map back to the rows."""
    dl_all = fe - fs
    m_all, _ = _gather(a, fs, fe, _KEY_W)
    first, inv, same = _distinct(m_all, dl_all)
    nd = first.size
    m18 = m_all[first, :DOC_W]
    dl = dl_all[first]
    state = np.zeros(nd, np.int8)
    dmsg = np.zeros(nd, np.int32)
    dcnpj = np.zeros(nd, bool)
    dkey = np.zeros(nd, np.int64)
    cls = np.take(_DOC_LUT, m18)
    # Bytes beyond the field are 0 and class 0; a field holding a real NUL byte is not a
    # candidate (its NUL is not counted as a nonzero byte).
    ok = (dl >= 1) & (dl <= DOC_W) & (_count(cls == _DOC_OTHER) == 0) & (_count(m18 != 0) == dl)
    cand = np.flatnonzero(ok)
    keys = _dot(cls, _DOC_SHIFT)[cand]
    keys |= (_count(m18 >= 65)[cand] > 0).astype(np.uint64) << np.uint64(63)
    for key, sel in _groups(keys, min_group):
        rows = cand[sel]
        shape = [(key >> (3 * i)) & 7 for i in range(DOC_W)]
        letters = bool(key >> 63)
        pos = [i for i, c in enumerate(shape) if c == 1]
        n = len(pos)
        sub = m18[rows]  # (g, 18) bytes, 0 beyond the field
        if not letters and 5 not in shape and n <= 11:
            valid, rep, dkey[rows] = _cpf_group(sub, pos)
            bad_rep, bad_check = blk.msg(MSG_CPF_REPEATED), blk.msg(MSG_CPF_CHECK)
        elif n == 14:
            valid, rep, dkey[rows] = _cnpj_group(sub, pos, letters)
            dcnpj[rows] = True
            bad_rep, bad_check = blk.msg(MSG_CNPJ_REPEATED), blk.msg(MSG_CNPJ_CHECK)
        else:
            state[rows] = 2
            dmsg[rows] = blk.msg(msg_length(n))
            continue
        state[rows] = np.where(valid, 1, 2)
        dmsg[rows] = np.where(rep, bad_rep, bad_check)
    # Rare shapes: the scalar rules once per distinct text (blank, quoted or over-long fields stay
    # undecided, i.e. go to scalar_row).
    rest = np.flatnonzero((state == 0) & (dl >= 1) & (dl <= _KEY_W))
    if rest.size:
        r_fs = (fs[first[rest]] + b_lo).tolist()
        r_fe = (fe[first[rest]] + b_lo).tolist()
        msg_ids: dict[str, int] = {}
        for k, s, e in zip(rest.tolist(), r_fs, r_fe, strict=True):
            text = buf[s:e].decode(encoding)
            if '"' in text or not text.strip():  # quoted fields are unquoted by the scalar path
                continue
            verdict = classify_document(text)
            if verdict.valid:
                state[k] = 1
                if verdict.doc_type == CNPJ:
                    dcnpj[k] = True
                    dkey[k] = int(verdict.document[:12], 36)
                else:
                    dkey[k] = int(verdict.document)
            else:
                state[k] = 2
                mid = msg_ids.get(verdict.problem)
                if mid is None:
                    mid = msg_ids[verdict.problem] = blk.msg(verdict.problem)
                dmsg[k] = mid
    blk.doc_state = np.where(same, state[inv], 0).astype(np.int8)
    blk.doc_msg = dmsg[inv]
    blk.doc_inv = inv
    blk.doc_cnpj_d = dcnpj
    blk.doc_key_d = dkey


def _amounts(blk: _Block, a: Arr, fs: Arr, fe: Arr, min_group: int) -> None:
    al = fe - fs
    m, inside = _gather(a, fs, fe, AMT_W)
    # Character classes: bytes.translate (C, no index casting) beats np.take on uint8 indices.
    cls = np.frombuffer(m.tobytes().translate(_AMT_TABLE), np.uint8).reshape(m.shape)
    cls = cls * inside.view(np.uint8)
    # Shape key: 4 bits per character (position i at bits 4i): the class bytes of each 8-byte
    # word are packed into 32 bits with three shift-or steps, then the two halves are joined.
    w = cls.view("<u8")
    w = (w | (w >> np.uint64(4))) & np.uint64(0x00FF00FF00FF00FF)
    w = (w | (w >> np.uint64(8))) & np.uint64(0x0000FFFF0000FFFF)
    w = (w | (w >> np.uint64(16))) & np.uint64(0x00000000FFFFFFFF)
    all_keys = w[:, 0] | (w[:, 1] << np.uint64(32))
    # A nibble equal to 15 (_AMT_OTHER) marks a character no amount may hold.
    other = all_keys & (all_keys >> np.uint64(1)) & (all_keys >> np.uint64(2)) & (all_keys >> np.uint64(3))
    ok = (al >= 1) & (al <= AMT_W) & ((other & _NIBBLE_LOW) == 0)
    cand = np.flatnonzero(ok)
    keys = all_keys[cand]
    # Rows sorted by shape: each shape is a contiguous slice (no per-shape gathers/scatters).
    order, spans = _spans(keys, min_group)
    rows_s = cand[order]
    ms = np.take(m, rows_s, axis=0)  # take: ~4x faster than m[rows_s] on a contiguous matrix
    cents = np.zeros(rows_s.size, np.int64)
    state = np.zeros(rows_s.size, np.int8)
    msg = np.zeros(rows_s.size, np.int32)
    for key, s, e in spans:
        shape = [(key >> (4 * i)) & 15 for i in range(AMT_W)]
        text = "".join(_AMT_CHARS[c] for c in shape if c)
        if not text.strip():  # blank: missing_field, decided by the scalar path
            continue
        try:
            sign, _intd, decd = parse_parts(text)
        except MoneyError as exc:
            state[s:e] = 2
            msg[s:e] = blk.msg(str(exc))
            continue
        pos = [i for i, c in enumerate(shape) if c == 1]
        # Digit weights at the digit positions of the shape, 0 elsewhere: one dot per row.
        w = np.zeros(AMT_W, np.int64)
        w[pos] = 10 ** np.arange(len(pos) - 1, -1, -1, dtype=np.int64)
        cents[s:e] = (_dot(ms[s:e], w) - 48 * int(w.sum())) * (sign * 10 ** (2 - len(decd)))
        state[s:e] = 1
    blk.cents[rows_s] = cents
    blk.amt_state[rows_s] = state
    blk.amt_msg[rows_s] = msg


def _exact_sum(x: Arr) -> int:
    if x.size == 0:
        return 0
    if int(np.abs(x).max()) * x.size < 2**63:
        return int(x.sum())
    return sum(x.tolist())


_CP1252_UNDEFINED = np.frombuffer(CP1252_UNDEFINED_BYTES, np.uint8)


def _undecodable(buf: bytes, b_lo: int, b_hi: int, a: Arr, encoding: str) -> Arr:
    """Positions of bytes that may make their row undecodable (sorted)."""
    if encoding == "utf-8":
        try:
            buf[b_lo:b_hi].decode("utf-8")
        except UnicodeDecodeError:
            return np.flatnonzero(a >= 128)
        return np.zeros(0, np.intp)
    if buf[b_lo:b_hi].isascii():
        return np.zeros(0, np.intp)
    hi8 = np.flatnonzero(a >= 128)
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
    append, new = acc.errors.append, new_error
    n_missing = 0
    for k, n in enumerate(nfields[rows].tolist()):
        text = clip(buf[pos_l[k] : ends_l[k]].decode(enc))
        if n < ncols:
            n_missing += 1
            err = new(lines[k], header[n], MISSING_FIELD, f"row has {n} fields, the header has {ncols}", text)
        else:
            err = new(lines[k], "", EXTRA_FIELDS, f"row has {n} fields, the header has {ncols}", text)
        append((pos_l[k], err))
    acc.count_errors(MISSING_FIELD, n_missing)
    acc.count_errors(EXTRA_FIELDS, rows.size - n_missing)


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
    padded = np.zeros(a.size + 2 * max(_KEY_W, AMT_W), np.uint8)
    padded[: a.size] = a
    # One scan for the structural bytes; positions are then split by byte value.
    has_q = buf.find(b'"', b_lo, b_hi) >= 0
    mask = a == 10
    mask |= a == ctx.delim_byte
    if has_q:
        mask |= a == 34
    pos = np.flatnonzero(mask)
    del mask
    val = a.take(pos)
    is_nl = val == 10
    nl: Arr = pos[is_nl]
    if has_q:
        # Rows end at the "\n" at even quote parity (the block starts at even parity) and
        # fields split on the delimiters at even parity: drop the quotes and every position
        # at odd parity.
        is_q = val == 34
        keep = (np.cumsum(is_q) & 1) == 0
        keep &= ~is_q
        pos, is_nl = pos[keep], is_nl[keep]
    e_idx = np.flatnonzero(is_nl)
    ends = pos[e_idx]
    if ends.size == 0:
        return nl.size
    dpos = pos[~is_nl]
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    raw_len = ends - starts
    cend = ends - ((raw_len > 0) & (a[ends - 1] == 13))
    nonblank = cend > starts
    ok_row = nonblank & (raw_len <= ctx.max_row)
    bad = _undecodable(buf, b_lo, b_hi, a, ctx.encoding)
    if bad.size:
        # Non-ASCII text (accented names) is fine as long as the row decodes; rows with bytes
        # that may not decode go to the scalar path, which reports encoding_error.
        ok_row &= np.searchsorted(bad, ends) == np.searchsorted(bad, starts)
    # Delimiters of row i: those before its "\n" and after the previous row's (only "\r" lies
    # between a row's content end and its "\n").
    d1 = e_idx - np.arange(e_idx.size)
    d0 = np.empty_like(d1)
    d0[0] = 0
    d0[1:] = d1[:-1]
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
        _documents(blk, buf, b_lo, padded, dfs, dfe, min_group, ctx.encoding)
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
    # Per distinct document text here (bincount); per normalised document once per region.
    g = blk.doc_inv[v]
    nd = blk.doc_key_d.size
    cnt = np.bincount(g, minlength=nd)
    if cents.size and int(np.abs(cents).max()) * cents.size < 2**53:
        sums: Arr = np.bincount(g, weights=cents, minlength=nd).astype(np.int64)  # exact below 2**53
        used = np.flatnonzero(cnt)
        d_keys, d_cnpj, d_rows, d_sums = blk.doc_key_d[used], blk.doc_cnpj_d[used], cnt[used], sums[used]
    else:
        d_keys, d_cnpj, d_rows, d_sums = blk.doc_key_d[g], blk.doc_cnpj_d[g], np.ones(g.size, np.int64), cents
    for flag, sel in ((False, ~d_cnpj), (True, d_cnpj)):
        if sel.any():
            keys_out.append((flag, d_keys[sel], d_rows[sel], d_sums[sel]))
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
        append, new, enc = acc.errors.append, new_error, ctx.encoding
        doc_col, amt_col = ctx.doc_col, ctx.amt_col
        for k, (db, ab) in enumerate(zip(dbad.tolist(), abad.tolist(), strict=True)):
            if db:
                value = clip(buf[d_fs[k] : d_fe[k]].decode(enc))
                append((pos_l[k], new(lines[k], doc_col, INVALID_DOCUMENT, msgs[dmsg[k]], value)))
            if ab:
                value = buf[a_fs[k] : a_fe[k]].decode("ascii")
                append((pos_l[k], new(lines[k], amt_col, INVALID_AMOUNT, msgs[amsg[k]], value)))
        acc.count_errors(INVALID_DOCUMENT, int(dbad.sum()))
        acc.count_errors(INVALID_AMOUNT, int(abad.sum()))
    return nl.size


def cnpj_strings(keys: Arr) -> Arr:
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


def cpf_strings(keys: Arr) -> Arr:
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


def merge_totals(scalar: dict[str, list[Any]], fast: list[tuple[Any, Any, Any]]) -> DocumentTotals:
    """Per-document totals (sorted by document) of the scalar dict and the fast-path arrays."""
    docs_p = [d for d, _, _ in fast]
    rows_p = [r for _, r, _ in fast]
    cents_p = [c for _, _, c in fast]
    if scalar:
        items = list(scalar.items())
        docs_p.append(np.array([d for d, _ in items], dtype="U14"))
        rows_p.append(np.array([t[1] for _, t in items], dtype=np.int64))
        scalar_cents = [t[2] for _, t in items]
        try:  # int64 unless a (scalar-path) sum does not fit
            cents_p.append(np.array(scalar_cents, dtype=np.int64))
        except OverflowError:
            cents_p.append(np.array(scalar_cents, dtype=object))
    docs = np.concatenate(docs_p)
    rows = np.concatenate(rows_p)
    if any(c.dtype == object for c in cents_p):
        cents = np.concatenate([c.astype(object) for c in cents_p])
    else:
        cents = np.concatenate(cents_p)
    if docs.size == 0:
        return DocumentTotals.empty()
    order = np.argsort(docs)
    ds = docs[order]
    starts = np.concatenate(([0], np.flatnonzero(ds[1:] != ds[:-1]) + 1))
    doc_list: list[str] = ds[starts].tolist()
    n_rows: list[int] = np.add.reduceat(rows[order], starts).tolist()
    sums: list[int] = _sum_sorted(cents[order], starts).tolist()
    # A CPF has 11 characters: the 12th code point of its U14 cell is 0.
    is_cpf = ds[starts].view(np.uint32).reshape(-1, 14)[:, 11] == 0
    types: list[str] = _DOC_TYPES[is_cpf.view(np.uint8)].tolist()
    return DocumentTotals(doc_list, types, n_rows, sums)


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
            nxt = first_row_start(buf, cut, hi, bool(count_quotes(buf, pos, cut) & 1))
            end = hi if nxt < 0 else nxt
        lines += _block(acc, buf, pos, end, lines, ctx, min_group, keys_out)
        pos = end
    for cnpj, doc_type in ((False, CPF), (True, CNPJ)):
        parts = [p[1:] for p in keys_out if p[0] == cnpj]
        if parts:
            uniq, rows, cents = _reduce(*(np.concatenate(col) for col in zip(*parts, strict=True)))
            docs = cpf_strings(uniq) if doc_type == CPF else cnpj_strings(uniq)
            acc.fast_totals.append((docs, rows, cents))
    return lines

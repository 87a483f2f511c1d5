"""The CSV dialect: the quote-parity rule on raw bytes (see ``docs/processing.md``).

Everything that knows how rows and fields are delimited lives here (and, transcribed,
in the kernel's ``scan.c``): the quote state is one bit, the parity of the ``"`` bytes
seen so far, and every function takes the state where it starts and/or returns it.
"""

from __future__ import annotations

from dataclasses import dataclass

QUOTE = b'"'
NEWLINE = b"\n"


@dataclass(frozen=True)
class RangeStats:
    """What a worker publishes about its raw range: quote parity (0/1) and ``\\n`` count."""

    quote_parity: int
    newlines: int


def scan_range(data: bytes) -> RangeStats:
    """Parity of ``"`` bytes and number of ``\\n`` bytes in ``data`` (two C-speed passes)."""
    return RangeStats(quote_parity=data.count(QUOTE) & 1, newlines=data.count(NEWLINE))


def find_row_end(buf: bytes, pos: int, hi: int) -> int:
    """Index of the ``\\n`` ending the row that starts at ``pos`` (parity even at ``pos``), or ``hi``.

    A ``\\n`` ends the row when the number of ``"`` bytes in ``[pos, newline)`` is even.
    """
    odd = 0
    i = pos
    while True:
        j = buf.find(NEWLINE, i, hi)
        if j < 0:
            return hi
        odd ^= buf.count(QUOTE, i, j) & 1
        if not odd:
            return j
        i = j + 1


def row_end_from(buf: bytes, pos: int, in_quotes: bool) -> tuple[int, bool]:
    """``(index of the first \\n at even parity in buf[pos:], False)``, or ``(-1, state at the end)``.

    ``in_quotes`` is the quote state at ``pos``: a row can be followed across several reads.
    """
    odd = 1 if in_quotes else 0
    i = pos
    while True:
        j = buf.find(NEWLINE, i)
        if j < 0:
            return -1, bool(odd ^ (buf.count(QUOTE, i) & 1))
        odd ^= buf.count(QUOTE, i, j) & 1
        if not odd:
            return j, False
        i = j + 1


def last_row_end(buf: bytes, pos: int) -> int:
    """Index of the last ``\\n`` in ``buf[pos:]`` at even parity (counted from ``pos``); -1 if none."""
    j = buf.rfind(NEWLINE, pos)
    if j < 0:
        return -1
    odd = buf.count(QUOTE, pos, j) & 1
    while odd:
        k = buf.rfind(NEWLINE, pos, j)
        if k < 0:
            return -1
        odd ^= buf.count(QUOTE, k, j) & 1
        j = k
    return j


def row_starts_at(byte_before: bytes, in_quotes: bool) -> bool:
    """Whether a row starts right after ``byte_before`` (the quote state there is ``in_quotes``)."""
    return byte_before == NEWLINE and not in_quotes


def first_row_start(buf: bytes, pos: int, hi: int, in_quotes: bool) -> int:
    """First index ``> pos`` right after a ``\\n`` at even parity, scanning ``[pos, hi)``; -1 if none.

    ``in_quotes`` is the quote state at ``pos``.
    """
    odd = 1 if in_quotes else 0
    i = pos
    while True:
        j = buf.find(NEWLINE, i, hi)
        if j < 0:
            return -1
        odd ^= buf.count(QUOTE, i, j) & 1
        if not odd:
            return j + 1
        i = j + 1


def split_fields(row: str, delimiter: str) -> list[str]:
    """Split a decoded row on ``delimiter`` at even quote parity; unquote fields starting with ``"``."""
    if '"' not in row:
        return row.split(delimiter)
    fields: list[str] = []
    pending: list[str] = []
    odd = 0
    for piece in row.split(delimiter):
        pending.append(piece)
        odd ^= piece.count('"') & 1
        if not odd:
            fields.append(unquote(delimiter.join(pending)))
            pending = []
    if pending:  # unbalanced quote at the end of the row (only possible at EOF)
        fields.append(unquote(delimiter.join(pending)))
    return fields


def unquote(field: str) -> str:
    """``"a""b"`` → ``a"b``. A field not starting with ``"`` is taken literally.

    Malformed quoting is read leniently and deterministically: the opening quote is
    dropped, one closing quote at the very end is dropped, and ``""`` becomes ``"``.
    """
    if not field.startswith('"'):
        return field
    inner = field[1:-1] if len(field) >= 2 and field.endswith('"') else field[1:]
    return inner.replace('""', '"')

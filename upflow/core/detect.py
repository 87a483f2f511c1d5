"""Format detection from the head of an object: encoding, BOM, delimiter, header, column map."""

from __future__ import annotations

import codecs
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from upflow.core.dialect import SR, Cursor, line_breaks, next_record, record_end, split_record
from upflow.definition import Limits

BOM = codecs.BOM_UTF8
DELIMITERS = (",", ";", "\t", "|")
# The only bytes Windows-1252 does not define: a cp1252 row holding one cannot be decoded.
CP1252_UNDEFINED_BYTES = bytes((0x81, 0x8D, 0x8F, 0x90, 0x9D))

DOCUMENT_ALIASES = frozenset(
    {
        "documento",
        "document",
        "doc",
        "cpf",
        "cnpj",
        "cpfcnpj",
        "cnpjcpf",
        "cpfoucnpj",
        "cnpjoucpf",
        "numerodocumento",
        "nrdocumento",
        "numdocumento",
    }
)
AMOUNT_ALIASES = frozenset({"valor", "value", "amount", "valorrs", "montante", "quantia"})
NAME_ALIASES = frozenset({"nome", "name", "nomecompleto", "razaosocial"})
DATE_ALIASES = frozenset({"data", "date", "datapagamento", "datavencimento"})


class FormatError(Exception):
    """The file cannot be read as a CSV upflow understands."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.field = field

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"error": self.code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        return out


@dataclass(frozen=True)
class ColumnMap:
    document: int
    amount: int
    name: int | None
    date: int | None


@dataclass(frozen=True)
class FileFormat:
    encoding: str
    bom: bool
    delimiter: str
    header: tuple[str, ...]
    columns: ColumnMap
    data_start: int  # the first byte after the header row's terminator
    header_newlines: int  # line breaks (\n, \r\n, a lone \r) before data_start

    def to_json(self) -> dict[str, object]:
        return {
            "encoding": self.encoding,
            "bom": self.bom,
            "delimiter": self.delimiter,
            "header": list(self.header),
            "columns": {
                "document": self.columns.document,
                "amount": self.columns.amount,
                "name": self.columns.name,
                "date": self.columns.date,
            },
            "data_start": self.data_start,
            "header_newlines": self.header_newlines,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FileFormat:
        cols = data["columns"]

        def opt(v: Any) -> int | None:
            return None if v is None else int(v)

        return cls(
            encoding=str(data["encoding"]),
            bom=bool(data["bom"]),
            delimiter=str(data["delimiter"]),
            header=tuple(str(h) for h in data["header"]),
            columns=ColumnMap(
                document=int(cols["document"]),
                amount=int(cols["amount"]),
                name=opt(cols.get("name")),
                date=opt(cols.get("date")),
            ),
            data_start=int(data["data_start"]),
            header_newlines=int(data["header_newlines"]),
        )

    def column_name(self, index: int | None) -> str | None:
        return None if index is None else self.header[index]


def normalize_alias(name: str) -> str:
    """Lowercase, accents removed, only letters and digits kept: ``"CPF/CNPJ "`` → ``cpfcnpj``."""
    folded = unicodedata.normalize("NFKD", name.casefold())
    return "".join(c for c in folded if c.isalnum() and not unicodedata.combining(c))


def map_columns(header: tuple[str, ...]) -> tuple[ColumnMap | None, list[str]]:
    """The column map (first match wins per role) or the list of missing required roles."""
    found: dict[str, int] = {}
    for i, h in enumerate(header):
        key = normalize_alias(h)
        for role, aliases in (
            ("document", DOCUMENT_ALIASES),
            ("amount", AMOUNT_ALIASES),
            ("name", NAME_ALIASES),
            ("date", DATE_ALIASES),
        ):
            if key in aliases and role not in found:
                found[role] = i
    missing = [r for r in ("document", "amount") if r not in found]
    if missing:
        return None, missing
    return ColumnMap(found["document"], found["amount"], found.get("name"), found.get("date")), []


def _choose_encoding(body: bytes, at_eof: bool) -> str:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(body, final=at_eof)
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


@dataclass(frozen=True)
class _Header:
    """The header row as one delimiter reads it."""

    delimiter: str
    end: int  # its terminator (or the end of the head at EOF)
    names: tuple[str, ...]


def _read_header(
    head: bytes, start: int, delimiter: str, encoding: str, at_eof: bool, limits: Limits
) -> _Header:
    """The first record read with ``delimiter`` (a quoted field may hold one: where the header
    ends depends on it). Raises ``FormatError`` (header_too_long, encoding_error)."""
    end, _ = record_end(Cursor(head, len(head), ord(delimiter)), start, SR)
    if end < 0:
        if not at_eof:
            raise FormatError(
                "header_too_long",
                f"no end of the header row within the first {len(head)} bytes",
            )
        end = len(head)
    if end - start > limits.max_row_bytes:
        raise FormatError("header_too_long", f"the header row is longer than {limits.max_row_bytes} bytes")
    try:
        text = head[start:end].decode(encoding)
    except UnicodeDecodeError as exc:
        raise FormatError("encoding_error", f"the header row cannot be decoded as {encoding}") from exc
    return _Header(delimiter, end, tuple(f.strip() for f in split_record(text, delimiter)))


def detect_format(head: bytes, at_eof: bool, limits: Limits) -> FileFormat:
    """Detect the format from ``head`` (the first bytes of the object; all of it when ``at_eof``)."""
    if not head:
        raise FormatError("empty_file", "the file is empty")
    bom = head.startswith(BOM)
    start = len(BOM) if bom else 0
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise FormatError("encoding_error", "UTF-16 files are not supported: save as UTF-8 or Windows-1252")
    if not head[start:].strip():
        raise FormatError("empty_file", "the file has no content")
    if b"\x00" in head:
        raise FormatError("encoding_error", "the file contains NUL bytes: it is binary, not a CSV text")
    encoding = "utf-8" if bom else _choose_encoding(head, at_eof)
    headers: list[_Header] = []
    failures: list[FormatError] = []
    for delim in DELIMITERS:
        try:
            headers.append(_read_header(head, start, delim, encoding, at_eof, limits))
        except FormatError as error:
            failures.append(error)
    if not headers:  # no delimiter reads a header: too long (else undecodable) whichever it is
        raise next((f for f in failures if f.code == "header_too_long"), failures[0])
    best: tuple[_Header, list[str]] | None = None
    mapped: list[tuple[_Header, ColumnMap]] = []
    for header in headers:
        columns, missing = map_columns(header.names)
        if columns is not None:
            mapped.append((header, columns))
        elif best is None or len(header.names) > len(best[0].names):
            best = (header, missing)
    if mapped:
        # Several delimiters map the header only in odd cases: the one splitting more fields wins.
        header, columns = max(mapped, key=lambda m: len(m[0].names))
        data_start = next_record(head, header.end, len(head)) if header.end < len(head) else len(head)
        if at_eof and not head[data_start:].strip(b"\r\n"):
            raise FormatError("no_data_rows", "the file has a header but no data rows")
        return FileFormat(
            encoding=encoding,
            bom=bom,
            delimiter=header.delimiter,
            header=header.names,
            columns=columns,
            data_start=data_start,
            header_newlines=line_breaks(head, 0, data_start),
        )
    assert best is not None
    header, missing = best
    shown = ", ".join(repr(h) for h in header.names[:10])
    raise FormatError(
        "unmapped_header",
        f"no column for {' and '.join(missing)} in the header ({shown}); expected e.g. "
        "documento/cpf/cnpj and valor/amount, separated by , ; tab or |",
        field=missing[0],
    )

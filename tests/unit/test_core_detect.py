from __future__ import annotations

import pytest

from upflow.core.detect import FileFormat, FormatError, detect_format
from upflow.definition import Limits, MiB

L = Limits()


@pytest.mark.parametrize("delim", [",", ";", "\t", "|"])
def test_each_delimiter(delim: str) -> None:
    data = delim.join(["Documento", "Nome", "Valor", "Data"]).encode() + b"\n1;2\n"
    fmt = detect_format(data, True, L)
    assert fmt.delimiter == delim
    assert (fmt.columns.document, fmt.columns.name, fmt.columns.amount, fmt.columns.date) == (0, 1, 2, 3)
    assert fmt.data_start == data.index(b"\n") + 1
    assert fmt.header_newlines == 1


def test_cp1252_with_accents_and_aliases() -> None:
    data = "CPF/CNPJ;Razão Social;VALOR;Dàta\r\n52998224725;Açúcar;1,00\r\n".encode("cp1252")
    fmt = detect_format(data, True, L)
    assert fmt.encoding == "cp1252" and not fmt.bom
    assert fmt.header == ("CPF/CNPJ", "Razão Social", "VALOR", "Dàta")
    assert (fmt.columns.document, fmt.columns.name, fmt.columns.amount, fmt.columns.date) == (0, 1, 2, 3)


def test_utf8_bom_and_json_roundtrip() -> None:
    data = "\ufeffdocumento,valor,Observação\n1,2,3\n".encode()
    fmt = detect_format(data, True, L)
    assert fmt.bom and fmt.encoding == "utf-8"
    assert fmt.header[0] == "documento"
    assert fmt.data_start == data.index(b"\n") + 1
    assert FileFormat.from_json(fmt.to_json()) == fmt


@pytest.mark.parametrize("alias", ["cpf", "CNPJ", "cpf_cnpj", "cpf-cnpj", "Documento", "DOC", "document"])
def test_document_aliases(alias: str) -> None:
    assert detect_format(f"{alias};amount\n1;2\n".encode(), True, L).columns.document == 0


def test_quoted_header_with_newline() -> None:
    data = b'"docu\nmento";"valor"\n1;2\n'  # only letters and digits count in a header name
    assert detect_format(data, True, L).header_newlines == 2
    data = b'"documento";"valor ""R$"""\n1;2\n'
    with pytest.raises(FormatError) as exc:
        detect_format(data, True, L)
    assert exc.value.code == "unmapped_header" and exc.value.field == "amount"
    fmt = detect_format(b'"nome\nx";"cpf";"valor"\n1;2;3\n', True, L)
    assert fmt.header_newlines == 2 and fmt.columns.document == 1


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_file"),
        (b"\xef\xbb\xbf\r\n", "empty_file"),
        (b"documento;valor\n", "no_data_rows"),
        (b"documento;valor\r\n\r\n\n", "no_data_rows"),
        (b"documento;valor", "no_data_rows"),
        (b"52998224725;10,00\n52998224725;10,00\n", "unmapped_header"),
        (b"nome;valor\nx;1\n", "unmapped_header"),
        (b"documento:valor\n1:2\n", "unmapped_header"),
        (b"\x00\x01\x02\xff\xfe binary\n", "encoding_error"),
        (b"\xff\xfed\x00o\x00c\x00", "encoding_error"),
    ],
)
def test_format_errors(data: bytes, code: str) -> None:
    with pytest.raises(FormatError) as exc:
        detect_format(data, True, L)
    assert exc.value.code == code
    assert exc.value.message


def test_missing_names_the_role() -> None:
    with pytest.raises(FormatError) as exc:
        detect_format(b"documento;nome\n1;2\n", True, L)
    assert exc.value.field == "amount" and "amount" in exc.value.message


def test_huge_single_line_only_the_head_is_read() -> None:
    # A 50 MB single line: the planner hands detect_format only the head.
    head = b"documento;valor;" + b"x" * (L.sniff_bytes - 16)
    with pytest.raises(FormatError) as exc:
        detect_format(head, False, L)
    assert exc.value.code == "header_too_long"
    big = Limits(sniff_bytes=2 * MiB)
    with pytest.raises(FormatError) as exc:
        detect_format(b"documento;valor;" + b"x" * (2 * MiB) + b"\n", True, big)
    assert exc.value.code == "header_too_long"


def test_head_cut_mid_utf8_char_is_still_utf8() -> None:
    data = "documento;valor;nome\n1;2;Conceição\n".encode()
    cut = data.index("ç".encode()) + 1
    assert detect_format(data[:cut], False, L).encoding == "utf-8"


def test_header_read_by_csv_rules() -> None:
    # A quote opens a quoted field only at a field's start: where the header ends depends on the
    # delimiter read. Read with ";", the line break is inside the quoted name.
    data = b'documento;"no\nme";valor\r\n1;2;3\n'
    fmt = detect_format(data, True, L)
    assert fmt.delimiter == ";" and fmt.header == ("documento", "no\nme", "valor")
    assert fmt.data_start == data.index(b"1;2") and fmt.header_newlines == 2
    # A stray quote inside an unquoted name is a literal (csv.reader's reading).
    fmt = detect_format(b'cpf;nome 42";valor\n1;2;3\n', True, L)
    assert fmt.header == ("cpf", 'nome 42"', "valor")
    # A lone \r ends the header (old Mac line ends); \r\n too.
    for end in (b"\r", b"\r\n", b"\n"):
        fmt = detect_format(b"cpf,valor" + end + b"1,2" + end, True, L)
        assert fmt.data_start == 9 + len(end) and fmt.header_newlines == 1
    # "ab"c reads as abc.
    assert detect_format(b'"cp"f;"val"or\n1;2\n', True, L).header == ("cpf", "valor")

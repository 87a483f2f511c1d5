"""The compiled row kernel (scan.c) decides exactly what the scalar reference decides.

``test_csv_chunks`` already compares whole chunks on random CSV structure; here the fields the
kernel judges itself — amounts, documents, encodings — get adversarial values, its resumable
edges (exception buffer full, table growth, int64 overflow) are driven on purpose, and a
kernel that does not load leaves every row to the reference.
"""

from __future__ import annotations

import logging
import random
import re
import shutil
import subprocess
from array import array
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upflow.core import dialect, kernel
from upflow.core.chunk import process_chunk
from upflow.core.chunking import ChunkRange
from upflow.core.detect import detect_format
from upflow.core.documents import classify_document
from upflow.core.kernel_build import DEFAULT_DEST, build
from upflow.core.rules import Accumulator, Context, RegionResult, scalar_region
from upflow.definition import Limits
from upflow.testing.documents import random_cnpj, random_cpf

AMOUNT_ALPHABET = "0123456789.,-+R$ ()\t\xa0a"
DOC_ALPHABET = '0123456789.-/ aZx"\xe7'
BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _process(body: str | bytes, header: str, fast: bool) -> RegionResult:
    raw = body if isinstance(body, bytes) else body.encode("utf-8")
    data = header.encode() + b"\n" + raw
    limits = Limits(max_row_bytes=4096)
    fmt = detect_format(data[: limits.sniff_bytes], len(data) <= limits.sniff_bytes, limits)
    whole = ChunkRange(0, 0, len(data))
    return process_chunk(data, whole, len(data), fmt, lambda a, b: data[a:b], limits, fast=fast).region


def _same(body: str | bytes, header: str = "documento;nome;valor") -> RegionResult:
    """The kernel's result, asserted equal to the scalar reference's."""
    compiled = _process(body, header, fast=True)
    assert compiled == _process(body, header, fast=False)
    return compiled


def test_kernel_is_built_and_used() -> None:
    # `make` builds it; were it missing, every "kernel" test would silently test the reference.
    assert kernel.load() is not None, f"{DEFAULT_DEST} is not built: run `make`"


@pytest.mark.skipif(shutil.which("nm") is None, reason="binutils' nm is not installed")
def test_library_needs_no_libc_symbol(tmp_path) -> None:
    # Built with -nostdlib: nothing to resolve at load time, so it loads on Lambda's glibc too.
    lib = build(tmp_path / "_scan.so")
    undefined = subprocess.run(
        ["nm", "-D", "--undefined-only", str(lib)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert undefined == []
    exported = subprocess.run(
        ["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True, check=True
    ).stdout
    assert all(
        name in exported
        for name in (
            "upflow_scan",
            "upflow_rehash",
            "upflow_compact",
            "upflow_line_breaks",
            "upflow_texts",
            "upflow_partial",
            "upflow_reduce",
            "upflow_reduce_rehash",
            "upflow_reduce_sorted",
        )
    )
    assert lib.stat().st_mode & 0o044 == 0o044  # readable by Lambda's runtime user


def test_python_mirrors_match_the_c_enums() -> None:
    source = (Path(kernel.__file__).parent / "scan.c").read_text()
    mirrored = 0
    for body in re.findall(r"^enum \{(.*?)\};", source, flags=re.M):
        value = -1
        for item in body.split(","):
            name, _, explicit = (part.strip() for part in item.partition("="))
            value = int(explicit) if explicit else value + 1
            assert getattr(kernel, name) == value, name
            mirrored += 1
    assert mirrored >= 50
    defines = dict(re.findall(r"^#define (MAX_FIELDS) (\d+)", source, flags=re.M))
    assert int(defines["MAX_FIELDS"]) == kernel.MAX_FIELDS
    assert "#define EMPTY_KEY UINT64_MAX" in source and kernel.EMPTY_KEY == 2**64 - 1
    entry = re.search(r"typedef struct \{([^{}]*)\} Entry;", source)
    assert entry is not None
    assert entry.group(1).split() == ["u64", "key;", "i64", "rows;", "i64", "cents;"]
    assert kernel.ENTRY_WORDS == 3  # the Python side reads the table as 64-bit words
    assert re.search(rf"^#define SUM_TEXT {kernel.SUM_TEXT}$", source, flags=re.M)
    sums = re.search(r"typedef struct \{([^{}]*)\} Sum;", source)
    assert sums is not None
    fields = [line.split("/*")[0].split() for line in sums.group(1).strip().splitlines()]
    assert fields == [
        ["u64", "hash;"],
        ["i64", "rows;"],
        ["i64", "cents;"],
        ["u8", "doc_len;"],
        ["u8", "type_len;"],
        ["u8", "text[SUM_TEXT];"],
    ]
    assert kernel.SUM_BYTES == 64  # no padding: the Python side sizes the table in these


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=AMOUNT_ALPHABET, max_size=22), min_size=1, max_size=40))
def test_amounts_equal_reference(amounts: list[str]) -> None:
    body = "".join(f"529.982.247-25;n;{a}\n" for a in amounts)
    _same(body)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=DOC_ALPHABET, max_size=20), min_size=1, max_size=40))
def test_documents_equal_reference(documents: list[str]) -> None:
    body = "".join(f"{d.replace(chr(34), '')};n;10,00\n" for d in documents)
    _same(body)


def test_accepted_and_rejected_amount_forms() -> None:
    amounts = [
        "1234",
        "1234.56",
        "1234,56",
        "1.234,56",
        "1,234.56",
        "1.234.567,8",
        "1.234.567",
        "R$ 1.234,56",
        "R$1.234,56",
        "-1.234,56",
        "R$ -10,00",
        "-R$ 10,00",
        "(12,50)",
        "+5",
        "  7,5 ",
        "0,01",
        "0",
        "999999999999999",
        "1.234",
        "1,234",
        "1234,567",
        "1,2345",
        "1.23.456",
        "12,3,4",
        "1.234.56",
        "1,234,56.7",
        "1.234,567",
        "1,234.5,6",
        "abc",
        "R$",
        "1..2",
        "--1",
        "-(1)",
        "(1",
        "1e5",
        ".5",
        "5.",
        "1 234,56",
        "1234567890123456",
        "( 5 )",
        "R$-5",
        "- R$ 5",
        "+-5",
        "5)",
        "R$5R$",
        "12,5.6",
        "1.234,5",
        "123.456.789,12",
        "1,234,567.89",
        "0001,00",
        " R$ ( 5 ) ",
    ]
    res = _same("".join(f"52998224725;n;{a}\n" for a in amounts))
    assert res.rows_valid > 15 and res.rows_invalid > 15


def test_document_forms() -> None:
    rng = random.Random(4)
    docs = [random_cpf(rng) for _ in range(50)] + [random_cnpj(rng, alnum=k % 2 == 0) for k in range(50)]
    docs += [d.lower() for d in docs[50:]] + [
        "11111111111",
        "00000000000",
        "123",
        "1",
        "...",
        "-",
        "AAAAAAAAAAAAAA",
        "12.345.678/0001-00",
        "ABC",
        "529.982.247-2.5",
        "5299822472500",
    ]
    res = _same("".join(f"{d};n;1,00\n" for d in docs))
    assert res.rows_valid >= 150


def test_encodings_and_odd_bytes() -> None:
    rows = [
        "52998224725;Conceição;1,00\n",
        "52998224725;\xa0;1,00\n",
        "52998224725;x;\xa01,00\n",
        "52998224725;x;1,00\r\n",
        "\r\n",
        "\n",
        ";;\n",
        "52998224725;x\n",
        "52998224725;x;1;2\n",
        '"52998224725";x;1,00\n',
        '52998224725;"a;b\nc";1,00\n',
        '52998224725;"a;b\r\nc"d;"1,00"\r',
        '52998224725;TV 42" Samsung;1,00\n',
        '"52998224725"x;n;"1,"",00"\n',
        "52998224725;x;1,00\x1c\n",
    ]
    good = "".join(rows).encode("utf-8")
    bad_utf8 = [
        b"\xc0\xaf",
        b"\xed\xa0\x80",
        b"\xe0\x80\x80",
        b"\xf4\x90\x80\x80",
        b"\xff",
        b"\xc3",
        b"\xe2\x82",
    ]
    # Past the 64 KiB the format detection reads (where they would make the file cp1252).
    body = good * 500 + b"".join(b"52998224725;" + seq + b";1,00\n" for seq in bad_utf8) + good
    body += b"52998224725;\x00;1,00\r\x00;1;2\n"  # NUL: an ordinary byte past the head
    res = _same(body)
    assert res.errors_by_code.get("encoding_error") == len(bad_utf8)
    # cp1252 (no valid UTF-8): 0x81 is undefined there and makes its row an encoding error.
    latin = "documento;nome;valor\n52998224725;Jos\xe9;1,00\n52998224725;x\x81;1,00\n".encode("latin-1")
    data = latin + b"52998224725;ok;2,00\n" * 3
    fmt = detect_format(data, True, Limits())
    assert fmt.encoding == "cp1252"
    args = (data, ChunkRange(0, 0, len(data)), len(data), fmt, lambda a, b: data[a:b], Limits())
    assert process_chunk(*args) == process_chunk(*args, fast=False)


def test_many_errors_many_documents_and_columns_in_other_order() -> None:
    # > 8192 exception rows (the kernel's buffer) and > 4096 distinct documents (its first table).
    rng = random.Random(9)
    lines = []
    for k in range(30_000):
        doc = random_cpf(rng) if k % 3 else random_cnpj(rng, alnum=k % 2 == 0)
        amount = "1.234" if k % 2 else f"{k},{k % 100:02d}"
        lines.append(f"x{k};{amount};{doc}\n")
    res = _same("".join(lines), header="nome;valor;cpf_cnpj")
    assert res.errors_by_code["invalid_amount"] == 15_000
    assert len(res.totals) > 10_000


def test_sums_beyond_int64_finish_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    # 15-digit amounts: int64 cents overflow after ~90 rows; the kernel stops there (ST_OVERFLOW)
    # and the reference, with Python integers, finishes the region: still the reference's result.
    finished_from: list[int] = []

    def spy(
        acc: Accumulator, buf: bytes, lo: int, hi: int, line_base: int, ctx: Context, at_eof: bool
    ) -> tuple[int, int]:
        finished_from.append(lo)
        return scalar_region(acc, buf, lo, hi, line_base, ctx, at_eof)

    monkeypatch.setattr(kernel, "scalar_region", spy)
    big = "999.999.999.999.999,99"
    lines = [f"52998224725;n;{big}\n" if k % 2 else f"11222333000181;n;-{big}\n" for k in range(3_000)]
    lines += [f"52998224725;n;{big}\n"] * 3_000
    res = _same("".join(lines))
    assert res.rows_valid == 6_000
    header_end = len("documento;nome;valor\n")
    assert len(finished_from) == 1 and finished_from[0] > header_end  # the kernel decided the first rows
    cents = dict(zip(res.totals.documents, res.totals.cents, strict=True))
    assert cents == {
        "52998224725": 4_500 * 99_999_999_999_999_999,
        "11222333000181": -1_500 * 99_999_999_999_999_999,
    }
    assert cents["52998224725"] > 2**63


def _mixed_rows(n: int, seed: int) -> str:
    """Valid rows and every kind of kernel exception row (errors, fallbacks, field counts)."""
    rng = random.Random(seed)
    lines = []
    for k in range(n):
        doc = random_cpf(rng) if k % 2 else random_cnpj(rng, alnum=k % 4 == 1)
        amount = rng.choice(["1.234,56", "10", "(12,50)", "R$ -3,00", "1.234", "x", "", " 7 "])
        kind = k % 10
        if kind == 0:
            lines.append(f"{doc};n\n")
        elif kind == 1:
            lines.append(f"{doc};n;{amount};extra\n")
        elif kind == 2:
            lines.append(f'"{doc}";"a;""b""";{amount}\n')
        elif kind == 3:
            lines.append(f"{doc[:-1]}9;n;{amount}\n")
        else:
            lines.append(f"{doc};n;{amount}\n")
    return "".join(lines)


@pytest.mark.parametrize("how", ["library-not-loadable", "UPFLOW_KERNEL=0"])
def test_without_the_kernel_the_reference_decides_every_row(
    monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    body = _mixed_rows(5_000, seed=3)
    expected = _process(body, "documento;nome;valor", fast=False)
    if how == "UPFLOW_KERNEL=0":
        monkeypatch.setenv(kernel.DISABLE_ENV, "0")
    else:
        monkeypatch.setattr(kernel, "_load", lambda path: None)

    def no_kernel(*args: object) -> int:
        raise AssertionError("the kernel ran")

    monkeypatch.setattr(kernel, "kernel_region", no_kernel)
    assert kernel.load() is None
    res = _process(body, "documento;nome;valor", fast=True)
    assert res == expected
    assert res.rows_valid > 1_000 and res.rows_invalid > 1_000


def test_mixed_rows_equal_reference() -> None:
    res = _same(_mixed_rows(20_000, seed=5))
    assert set(res.errors_by_code) >= {"missing_field", "extra_fields", "invalid_document", "invalid_amount"}


def test_a_missing_or_foreign_library_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "missing.so"
    foreign = tmp_path / "foreign.so"
    foreign.write_bytes(b"\x7fELF" + bytes(60))  # not a library this machine can load
    with caplog.at_level(logging.WARNING, logger=kernel.log.name):
        for _ in range(3):
            assert kernel.load(missing) is None
            assert kernel.load(foreign) is None
    messages = [r.getMessage() for r in caplog.records if r.name == kernel.log.name]
    assert len(messages) == 2
    assert "is not built" in messages[0] and "does not load" in messages[1]


def _texts(cpfs: list[int], cnpjs: list[int]) -> tuple[list[str], list[str]]:
    """Documents and types of a compacted table holding these CPF and CNPJ values (each part
    sorted by value, as upflow_compact leaves it), made by scan.c's upflow_texts."""
    lib = kernel.load()
    assert lib is not None
    words = array("Q")
    for value in sorted(cpfs) + sorted(cnpjs):
        words.extend((value, 1, value % 1000))
    documents, doc_types, rows, cents = kernel.table_documents(lib, words, len(cpfs) + len(cnpjs), len(cpfs))
    # Each entry's sums travel with its text.
    assert rows == [1] * len(documents)
    assert cents == [
        (int(d) if t == "cpf" else int(d[:12], 36)) % 1000 for d, t in zip(documents, doc_types, strict=True)
    ]
    return documents, doc_types


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=BASE36, min_size=12, max_size=12))
def test_table_values_become_the_normalised_cnpj(base: str) -> None:
    # scan.c keys a valid CNPJ by its first 12 characters in base 36 and computes the check
    # digits back: the result is the document classify_document normalises to.
    (text,), types = _texts([], [int(base, 36)])
    assert text[:12] == base and types == ["cnpj"]
    verdict = classify_document(text)
    if len(set(text)) > 1:  # all 14 characters equal: rejected however it was made
        assert verdict.valid and verdict.document == text and verdict.doc_type == "cnpj"


@given(st.integers(0, 10**11 - 1))
def test_table_values_become_the_cpf_digits(value: int) -> None:
    assert _texts([value], []) == ([f"{value:011d}"], ["cpf"])


def test_document_texts_of_known_documents_in_text_order() -> None:
    rng = random.Random(2)
    cnpjs = [random_cnpj(rng, alnum=k % 2 == 0) for k in range(500)]
    cpfs = [random_cpf(rng) for _ in range(500)]
    # CPFs and CNPJs interleave in text order ("123..." of 11 digits before "124..." of 14).
    cpfs += ["00000000191", "12345678909"]
    cnpjs += ["11222333000181", "12345678000195"]
    documents, doc_types = _texts([int(d) for d in cpfs], [int(d[:12], 36) for d in cnpjs])
    assert documents == sorted(cpfs + cnpjs)
    assert doc_types == ["cpf" if len(d) == 11 else "cnpj" for d in documents]
    assert _texts([], []) == ([], [])


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80).map(lambda b: bytes(b'\r\n"a;'[x % 5] for x in b)), st.data())
def test_line_breaks_in_c_equal_the_dialect(buf: bytes, data: st.DataObject) -> None:
    lo = data.draw(st.integers(0, len(buf)))
    hi = data.draw(st.integers(lo, len(buf)))
    assert kernel.line_breaks(buf, lo, hi) == dialect.line_breaks(buf, lo, hi)

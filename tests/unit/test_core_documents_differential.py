"""Our CPF/CNPJ verdicts == validate-docbr 2.0.1 on a generated corpus (scalar reference, compiled kernel)."""

from __future__ import annotations

import random

from validate_docbr import CNPJ, CPF

from upflow.core.chunk import process_chunk
from upflow.core.chunking import ChunkRange
from upflow.core.detect import detect_format
from upflow.core.documents import classify_document
from upflow.definition import Limits
from upflow.testing.documents import ALNUM, random_cnpj, random_cpf


def _mutate(rng: random.Random, v: str) -> str:
    k = rng.randrange(10)
    i = rng.randrange(len(v)) if v else 0
    if k == 0 and v:  # off by one digit
        c = v[i]
        return v[:i] + (str((int(c) + 1) % 10) if c.isdigit() else "0") + v[i + 1 :]
    if k == 1:
        return v.lower()
    if k == 2:
        return " " + v
    if k == 3:
        return v + "\n"
    if k == 4:
        return v[:i] + rng.choice(".-/ ") + v[i:]
    if k == 5 and v:
        return v[:i] + v[i + 1 :]
    if k == 6:
        return v.replace("5", "٥")  # an Arabic-Indic digit (\d matches it)
    if k == 7:
        return v[: rng.randrange(len(v) + 1)]
    if k == 8:
        return v.upper()
    return v


def corpus(n: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < n:
        k = rng.randrange(12)
        if k == 0:
            v = random_cpf(rng)
        elif k == 1:
            c = random_cpf(rng)
            v = f"{c[:3]}.{c[3:6]}.{c[6:9]}-{c[9:]}"
        elif k in (2, 3):
            c = random_cnpj(rng, alnum=k == 3)
            v = f"{c[:2]}.{c[2:5]}.{c[5:8]}/{c[8:12]}-{c[12:]}" if rng.random() < 0.5 else c
        elif k == 4:
            v = rng.choice("0123456789") * rng.choice([11, 14])
        elif k == 5:
            v = str(rng.randrange(10 ** rng.randrange(1, 12)))
        elif k == 6:
            v = "".join(rng.choice("0123456789.-/ aZx\n") for _ in range(rng.randrange(0, 20)))
        elif k == 7:
            v = "".join(rng.choice(ALNUM + ALNUM.lower()) for _ in range(14))
        else:
            v = _mutate(rng, rng.choice([random_cpf(rng), random_cnpj(rng, True), random_cnpj(rng, False)]))
        out.append(v)
    return out


def _reference(values: list[str]) -> list[bool]:
    cpf, cnpj = CPF(), CNPJ()
    return [cpf.validate(v) or cnpj.validate(v) for v in values]


def test_scalar_verdicts_equal_validate_docbr() -> None:
    values = corpus(100_000)
    ref = _reference(values)
    ours = [classify_document(v).valid for v in values]
    mismatches = [v for v, a, b in zip(values, ref, ours, strict=True) if a != b]
    assert mismatches == []
    assert 0.2 < sum(ref) / len(ref) < 0.8  # the corpus mixes valid and invalid values


def test_normalised_documents() -> None:
    assert classify_document("529.982.247-25").document == "52998224725"
    assert classify_document("11.222.333/0001-81").document == "11222333000181"
    v = classify_document("12.abc.345/01de-35")
    assert v.valid == CNPJ().validate("12.abc.345/01de-35")
    assert classify_document("1").doc_type in ("", "cpf")


def test_kernel_verdicts_equal_validate_docbr() -> None:
    values = [v for v in corpus(30_000, seed=5) if not set(v) & set(';"\n\r')]
    body = "".join(f"{v};1,00\n" for v in values)
    data = ("documento;valor\n" + body).encode("utf-8")
    limits = Limits()
    fmt = detect_format(data, True, limits)
    res = process_chunk(
        data, ChunkRange(0, 0, len(data)), len(data), fmt, lambda a, b: data[a:b], limits
    ).region
    ref = _reference(values)
    bad_lines = {e.line_offset for e in res.errors}
    ours = [(i + 1) not in bad_lines for i in range(len(values))]
    assert [v for v, a, b in zip(values, ref, ours, strict=True) if a != b] == []
    assert res.rows_total == len(values)  # an empty document is a missing_field, not a blank line

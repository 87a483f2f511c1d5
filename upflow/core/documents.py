"""CPF / CNPJ validation, verdict-compatible with validate-docbr 2.0.1.

``validate_docbr.CPF().validate(v) or validate_docbr.CNPJ().validate(v)`` is the
reference; :func:`classify_document` agrees with it on every string (the
differential test checks this). Its quirks are kept on purpose:

* CPF: only digits, ``.`` and ``-`` (anywhere, any number); fewer than 11 digits
  are left-padded with zeros; all-equal digits are rejected.
* CNPJ: only ASCII letters, digits, ``.``, ``/`` and ``-``; letters are
  uppercased; exactly 14 letters/digits; value of a character is ``ord(c) - 48``;
  all-equal characters are rejected.
* No spaces are accepted; a single trailing ``\\n`` is (regex ``$`` semantics).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CPF = "cpf"
CNPJ = "cnpj"

# Exactly the patterns validate-docbr builds in DocumentBase._validate_input.
_CPF_CHARS = re.compile(r"^[\d\.\-]*$")
_CNPJ_CHARS = re.compile(r"^[\da-zA-Z\./\-]*$")

CNPJ_W1 = (5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)
CNPJ_W2 = (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)

MSG_CHARS = "document has characters other than digits, letters, '.', '/' and '-'"
MSG_CPF_REPEATED = "CPF with all digits equal"
MSG_CPF_CHECK = "CPF check digits do not match"
MSG_CNPJ_REPEATED = "CNPJ with all characters equal"
MSG_CNPJ_CHECK = "CNPJ check digits do not match"


def msg_length(n: int) -> str:
    return f"document has {n} digits/letters: a CPF has up to 11 digits, a CNPJ 14 characters"


@dataclass(frozen=True)
class DocumentVerdict:
    """``doc_type``/``document`` are set when valid; ``problem`` names the reason otherwise."""

    valid: bool
    doc_type: str
    document: str
    problem: str


def _cpf_dv(digits: list[str], n: int) -> str:
    total = 0
    for i in range(n):
        total += int(digits[i]) * (n + 1 - i)
    total = (total * 10) % 11
    return str(0 if total == 10 else total)


def _cnpj_dv(doc: str, weights: tuple[int, ...]) -> str:
    total = 0
    for i, w in enumerate(weights):
        total += (ord(doc[i]) - 48) * w
    r = total % 11
    return str(0 if r < 2 else 11 - r)


def classify_document(value: str) -> DocumentVerdict:
    """The verdict on one document value as it stands in the CSV field."""
    cpf_chars = _CPF_CHARS.match(value) is not None
    if cpf_chars:
        digits = [c for c in value if c.isdigit()]
        if len(digits) <= 11:
            digits = ["0"] * (11 - len(digits)) + digits
            if len(set(digits)) == 1:
                return DocumentVerdict(False, "", "", MSG_CPF_REPEATED)
            if _cpf_dv(digits, 9) == digits[9] and _cpf_dv(digits, 10) == digits[10]:
                return DocumentVerdict(True, CPF, "".join(str(int(c)) for c in digits), "")
            return DocumentVerdict(False, "", "", MSG_CPF_CHECK)
    if _CNPJ_CHARS.match(value) is None:
        return DocumentVerdict(False, "", "", MSG_CHARS)
    doc = "".join(c for c in value.strip().upper() if c.isdigit() or c.isalpha())
    if len(doc) != 14:
        return DocumentVerdict(False, "", "", msg_length(len(doc)))
    if len(set(doc)) == 1:
        return DocumentVerdict(False, "", "", MSG_CNPJ_REPEATED)
    if _cnpj_dv(doc, CNPJ_W1) == doc[12] and _cnpj_dv(doc, CNPJ_W2) == doc[13]:
        return DocumentVerdict(True, CNPJ, doc, "")
    return DocumentVerdict(False, "", "", MSG_CNPJ_CHECK)


def is_valid_document(value: str) -> bool:
    return classify_document(value).valid

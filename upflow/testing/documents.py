"""Random valid CPF/CNPJ numbers for tests and benchmarks (generators, not validators)."""

from __future__ import annotations

import random

ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_CNPJ_WEIGHTS = ((5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2), (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2))


def random_cpf(rng: random.Random) -> str:
    """11 digits with both check digits right."""
    digits = [rng.randrange(10) for _ in range(9)]
    for length in (9, 10):
        total = sum(digits[i] * (length + 1 - i) for i in range(length)) * 10 % 11
        digits.append(0 if total == 10 else total)
    return "".join(map(str, digits))


def random_cnpj(rng: random.Random, alnum: bool) -> str:
    """14 characters; with ``alnum`` the first 12 may be letters (the 2026 CNPJ)."""
    chars = [rng.choice(ALNUM if alnum else ALNUM[:10]) for _ in range(12)]
    for weights in _CNPJ_WEIGHTS:
        rest = sum((ord(ch) - 48) * weight for ch, weight in zip(chars, weights, strict=False)) % 11
        chars.append(str(0 if rest < 2 else 11 - rest))
    return "".join(chars)

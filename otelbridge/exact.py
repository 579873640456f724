"""Exact sums of float64 values, as integers. Pure logic.

Every finite float64 is an integer multiple of 2**-1074, so a sum of them held as an integer count
of 2**-1074 ("units") is exact whatever the order of the additions, and is rounded once, when it is
exported: a correctly rounded integer division. Python's int arithmetic makes this cheap enough for
the ledger's hot path (about a microsecond a value), unlike fractions.Fraction.
"""

from __future__ import annotations

_BITS = 1074  # 2**-1074 is the smallest positive float64 (a subnormal)
ONE = 1 << _BITS  # 1.0 in units


def units(value: float) -> int:
    """The exact value of a float (or int) in units of 2**-1074."""
    numerator, denominator = value.as_integer_ratio()  # denominator: a power of two <= 2**1074
    return numerator << (_BITS + 1 - denominator.bit_length())


def quotient(total: int, divisor: int = 1) -> float:
    """total / divisor as a float, rounded once (int true division is correctly rounded)."""
    return total / (divisor << _BITS)


def encode(total: int) -> str:
    """A units total as a reduced fraction "n/d" (or "n"), for state files: exact and readable."""
    shift = min(_BITS, (total & -total).bit_length() - 1) if total else _BITS  # common factors of 2
    exponent = _BITS - shift
    return f"{total >> shift}/{1 << exponent}" if exponent else str(total >> shift)


def decode(text: str) -> int:
    """The inverse of encode; refuses anything that is not a non-negative multiple of 2**-1074."""
    numerator, _, denominator = text.partition("/")
    try:
        n, d = int(numerator), int(denominator or "1")
    except ValueError:
        raise ValueError(f"not an exact non-negative float sum: {text!r}") from None
    if n < 0 or d <= 0 or d & (d - 1) or d.bit_length() > _BITS + 1:
        raise ValueError(f"not an exact non-negative float sum: {text!r}")
    return n << (_BITS + 1 - d.bit_length())

"""The row hash that the source and the sink engines compute alike, and its Python mirror.

This module holds the definition: the modulus, the coefficients and which term each one
multiplies (:class:`HashPlan`), and :func:`row_hash`, the hash computed in Python. The SQL
that computes the same numbers in each engine is rendered by
:mod:`datadrill.integrity.dialects` from a :class:`HashPlan`.

The hash uses only 64-bit integer operations that SQLite and DuckDB evaluate identically
(``&``, ``>>``, ``*``, ``+``, truncating ``%``, ``length``, ``unicode``, ``substr``), and
no intermediate value can overflow: SQLite would silently turn an overflowing integer
into a REAL and DuckDB would raise. With ``P = 3037000493``, the largest prime whose
square fits in a signed 64-bit integer:

- an integer ``x`` contributes ``(x & 0x7FFFFFFF)·a + (x >> 31)·b``, its low and high
  digits in base 2^31 (``NULL`` contributes the out-of-range digits ``2^31, 0``). Low
  digits stay below ``P``, so values that differ by a multiple of ``P`` still hash apart
  (``x mod P`` would not); only values at least ``P·2^31 ≈ 6.5·10^18`` apart can collide
  by construction;
- a string ``s`` contributes ``t(s) = (Σ (cp(s, i) + 2)·cᵢ + (len(s) + 2)·d) mod P`` over
  the first 16 and the last 8 code points, where ``cp`` is the code point or -1 past the
  end, and ``len(NULL) = -1``;
- ``L = (Σ contributions) mod P`` (truncated, as both engines compute ``%``) and the row
  hash is ``(L·L mod P) + L``: squaring keeps sums over rows from cancelling when values
  move between rows, as they would for a hash linear in the values.

Coefficients are fixed (a splitmix64 stream), distinct per column and position. A sum of
row hashes stays below ``2·P`` per row, so int64 holds it for 1.5 billion rows. Two
different rows collide with probability about ``2/P``; strings that differ only past
their first 16 and last 8 characters, at the same length, are not told apart; SQLite's
``length()`` stops at a NUL character.

Example::

    kinds = [ColumnKind.INTEGER, ColumnKind.INTEGER, ColumnKind.TEXT, ColumnKind.TEXT, ColumnKind.INTEGER]
    row_hash(kinds, 1, [7, 1250, "EUR", "paid", 1_700_000_000_000_000])   # an int below 2·P
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

MODULUS = 3037000493
"""The largest prime ``P`` with ``P * P < 2**63``: ``L * L`` never overflows for ``|L| < P``."""

PREFIX_CHARS = 16
SUFFIX_CHARS = 8
CHAR_POSITIONS: tuple[int, ...] = (*range(1, PREFIX_CHARS + 1), *range(-1, -SUFFIX_CHARS - 1, -1))
"""The code points a string contributes, as 1-based ``substr`` positions (negative from the end)."""
MAX_INTEGER_COLUMNS = 20
"""Each integer column adds at most ``1.5 * 2**58`` to the row sum; 20 of them (key included)
plus the string terms stay below ``2**63``."""

DIGIT_BITS = 31  # 2^31 < P: a low digit is never reduced away by the final mod P
LOW_MASK = (1 << DIGIT_BITS) - 1
NULL_LOW_DIGIT = 1 << DIGIT_BITS  # outside [0, 2^31): a NULL integer differs from every value
_COEFFICIENT_SEED = 0x6461746164726C6C  # "datadrll"


class ColumnKind(enum.Enum):
    """How a compared column is hashed."""

    INTEGER = "integer"
    TEXT = "text"


def _coefficients(count: int) -> list[int]:
    """``count`` fixed pseudo-random coefficients in ``[2^25, 2^26)`` (splitmix64)."""
    out = []
    state = _COEFFICIENT_SEED
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        z ^= z >> 31
        out.append((1 << 25) + (z & ((1 << 25) - 1)))
    return out


def _tmod(value: int, modulus: int) -> int:
    """``value % modulus`` as SQL engines compute it: truncated, with the dividend's sign."""
    remainder = abs(value) % modulus
    return remainder if value >= 0 else -remainder


@dataclass(frozen=True)
class HashPlan:
    """Which coefficient multiplies which term, fixed by the column kinds alone, so that
    two sides with the same kinds hash alike whatever their expressions.

    ``integer_coefficients`` holds one ``(a, b)`` pair for the key and then one per integer
    column; ``text_coefficients`` one tuple per string column: ``d`` (the length), then one
    coefficient per position of :data:`CHAR_POSITIONS`.
    """

    kinds: tuple[ColumnKind, ...]
    integer_coefficients: tuple[tuple[int, int], ...] = field(init=False)
    text_coefficients: tuple[tuple[int, ...], ...] = field(init=False)

    def __post_init__(self) -> None:
        per_text = 1 + PREFIX_CHARS + SUFFIX_CHARS
        ints = 1 + sum(kind is ColumnKind.INTEGER for kind in self.kinds)
        texts = sum(kind is ColumnKind.TEXT for kind in self.kinds)
        stream = iter(_coefficients(2 * ints + per_text * texts))
        integer = [(next(stream), next(stream)) for _ in range(ints)]
        text = [tuple(next(stream) for _ in range(per_text)) for _ in range(texts)]
        object.__setattr__(self, "integer_coefficients", tuple(integer))
        object.__setattr__(self, "text_coefficients", tuple(text))

    def text_value_py(self, index: int, value: str | None) -> int:
        """``t(s)`` of the ``index``-th string column, in Python."""
        length_coefficient, *chars = self.text_coefficients[index]
        total = ((len(value) if value is not None else -1) + 2) * length_coefficient
        for position, coefficient in zip(CHAR_POSITIONS, chars, strict=True):
            codepoint = -1
            if value is not None and position <= len(value) and -position <= len(value):
                codepoint = ord(value[position - 1 if position > 0 else position])
            total += (codepoint + 2) * coefficient
        return total % MODULUS

    def row_hash_py(self, key: int | None, values: Sequence[int | str | None]) -> int:
        if len(values) != len(self.kinds):
            raise ValueError(f"expected {len(self.kinds)} values, got {len(values)}: {values!r}")
        integers: list[int | None] = [key]
        total = 0
        text_index = 0
        for kind, value in zip(self.kinds, values, strict=True):
            if kind is ColumnKind.INTEGER:
                if value is not None and not isinstance(value, int):
                    raise TypeError(f"expected an int or None but got {value!r}")
                integers.append(value)
            elif kind is ColumnKind.TEXT:
                if value is not None and not isinstance(value, str):
                    raise TypeError(f"expected a str or None but got {value!r}")
                total += self.text_value_py(text_index, value)
                text_index += 1
            else:
                raise AssertionError(f"unhandled column kind {kind!r}")
        for value, (a, b) in zip(integers, self.integer_coefficients, strict=True):
            low, high = (NULL_LOW_DIGIT, 0) if value is None else (value & LOW_MASK, value >> DIGIT_BITS)
            total += low * a + high * b
        reduced = _tmod(total, MODULUS)
        return _tmod(reduced * reduced, MODULUS) + reduced


_PLANS: dict[tuple[ColumnKind, ...], HashPlan] = {}


def hash_plan(kinds: tuple[ColumnKind, ...]) -> HashPlan:
    """The plan for ``kinds``, made once: every query of a reconciliation renders it."""
    plan = _PLANS.get(kinds)
    if plan is None:
        plan = _PLANS[kinds] = HashPlan(kinds)
    return plan


def row_hash(kinds: Sequence[ColumnKind], key: int | None, values: Sequence[int | str | None]) -> int:
    """The row hash in Python, exactly as both engines compute it (for tests and debugging).

    Example::

        row_hash([c.kind for c in SOURCE_ORDER_COLUMNS], 1, [7, 1250, "EUR", "paid", 1_700_000_000_000_000])
    """
    return hash_plan(tuple(kinds)).row_hash_py(key, values)


__all__ = [
    "CHAR_POSITIONS",
    "DIGIT_BITS",
    "LOW_MASK",
    "MAX_INTEGER_COLUMNS",
    "MODULUS",
    "NULL_LOW_DIGIT",
    "PREFIX_CHARS",
    "SUFFIX_CHARS",
    "ColumnKind",
    "HashPlan",
    "hash_plan",
    "row_hash",
]

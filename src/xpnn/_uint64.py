"""Unsigned 64-bit modular arithmetic on ``(high, low)`` pairs of 32-bit words, for 64-bit ``randint``.

jax's ``randint`` for int64/uint64 computes in uint64: wrapping ``+`` and
``*`` and unsigned ``%``.  The standard's libraries disagree on uint64 (torch
has no uint64 add, shift, compare or remainder), so xpnn computes with each
value split into two words, each an int64 array holding ``[0, 2**32)``.
Every intermediate then stays below ``2**63``, where int64 is exact on every
library:

* ``add``: word sums with one carry;
* ``mul``: 16-bit limbs, whose products and sums of four products fit in 34 bits;
* ``mod``: for a span known in Python and below ``2**62``, long division a
  chunk of bits at a time with int64 ``%`` (two steps for spans below
  ``2**31``); otherwise a fixed number of steps (see ``mod``), so that
  compiled and lazy graphs stay shallow.

A span of ``2**64`` (the whole range) is written as ``0``, as in uint64,
and ``x % 0`` is ``x`` there, as in XLA.
"""
from __future__ import annotations

from typing import Any

from xpnn._types import Array


#: A 64-bit value as ``(high word, low word)``, each an int64 array in ``[0, 2**32)``.
Pair = tuple[Array, Array]

_WORD = 1 << 32
_MASK = _WORD - 1
_LIMB_MASK = (1 << 16) - 1


def from_int64(x: Array) -> Pair:
    """The pair of the 64 bits of an int64 array (two's complement)."""
    return (x >> 32) & _MASK, x & _MASK


def to_int64(pair: Pair) -> Array:
    """The int64 array with the pair's 64 bits (two's complement)."""
    high, low = pair
    signed_high = (high ^ (1 << 31)) - (1 << 31)
    return signed_high * _WORD + low


def words_of(value: int) -> tuple[int, int]:
    """The pair of a Python int, taken modulo ``2**64``."""
    value %= 1 << 64
    return value >> 32, value & _MASK


def add(a: Pair, b: Pair) -> Pair:
    """``(a + b) mod 2**64``."""
    low = a[1] + b[1]
    return (a[0] + b[0] + (low >> 32)) & _MASK, low & _MASK


def _limbs(pair: Pair) -> tuple[Array, Array, Array, Array]:
    high, low = pair
    return low & _LIMB_MASK, low >> 16, high & _LIMB_MASK, high >> 16


def mul(a: Pair, b: Pair) -> Pair:
    """``(a * b) mod 2**64``, by 16-bit limbs (least significant first)."""
    a0, a1, a2, a3 = _limbs(a)
    b0, b1, b2, b3 = _limbs(b)
    low = a0 * b0 + ((a1 * b0 + a0 * b1) << 16)
    high = a2 * b0 + a1 * b1 + a0 * b2 + ((a3 * b0 + a2 * b1 + a1 * b2 + a0 * b3) << 16) + (low >> 32)
    return high & _MASK, low & _MASK


def mod_known(xp: Any, x: Pair, span: int) -> Pair:
    """``x mod span`` for a Python int ``span`` in ``[1, 2**64]`` (``2**64``: ``x`` itself)."""
    if span == 1 << 64:
        return x
    if span >= 1 << 62:
        high, low = words_of(span)
        return mod(xp, x, (xp.full_like(x[0], high), xp.full_like(x[1], low)))
    chunk = min(32, 63 - span.bit_length())
    rest = xp.zeros_like(x[0])
    for word in x:
        for offset in range(32, 0, -chunk):
            width = min(chunk, offset)
            bits = (word >> (offset - width)) & ((1 << width) - 1)
            rest = ((rest << width) | bits) % span
    return xp.zeros_like(rest), rest


def _subtract_if_fits(xp: Any, rest: Pair, span: Pair) -> Pair:
    """``rest - span`` where ``rest >= span``, else ``rest``."""
    fits = (rest[0] > span[0]) | ((rest[0] == span[0]) & (rest[1] >= span[1]))
    low = rest[1] - span[1]
    borrow = xp.astype(low < 0, low.dtype)
    return xp.where(fits, rest[0] - span[0] - borrow, rest[0]), xp.where(fits, low + borrow * _WORD, rest[1])


def mod(xp: Any, x: Pair, span: Pair) -> Pair:
    """``x mod span`` for a span pair (``0`` stands for ``2**64``), in a fixed number of steps.

    A span below ``2**32``: int64 ``%`` on 32 then 16 then 16 bits of ``x``.
    A wider span: the quotient is below ``2**32``, so its float64 estimate
    ``q`` is off by at most one; ``x - (q - 1) * span`` is then in ``[0, 3 * span)``
    and exact in pairs, and two compare-and-subtracts finish it.
    """
    span_high, span_low = span
    whole = (span_high == 0) & (span_low == 0)
    narrow = span_high == 0
    divisor = xp.where(narrow & ~whole, span_low, xp.ones_like(span_low))
    rest = x[0] % divisor
    rest = ((rest << 16) | (x[1] >> 16)) % divisor
    rest = ((rest << 16) | (x[1] & _LIMB_MASK)) % divisor

    def as_float(pair: Pair) -> Array:
        return xp.astype(pair[0], xp.float64) * float(_WORD) + xp.astype(pair[1], xp.float64)

    wide_span = (xp.where(narrow, xp.ones_like(span_high), span_high), span_low)
    estimate = xp.astype(xp.floor(as_float(x) / as_float(wide_span)), x[0].dtype)
    quotient = xp.maximum(estimate - 1, xp.zeros_like(estimate))
    product = mul((xp.zeros_like(quotient), quotient), wide_span)
    low = x[1] - product[1]
    borrow = xp.astype(low < 0, low.dtype)
    remainder = (x[0] - product[0] - borrow, low + borrow * _WORD)
    remainder = _subtract_if_fits(xp, _subtract_if_fits(xp, remainder, wide_span), wide_span)
    high = xp.where(whole, x[0], xp.where(narrow, xp.zeros_like(rest), remainder[0]))
    return high, xp.where(whole, x[1], xp.where(narrow, rest, remainder[1]))

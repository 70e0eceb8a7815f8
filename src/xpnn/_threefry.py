"""The Threefry-2x32 block cipher and jax.random's two ways of turning it into bits.

Written once against the Array API standard.  Words are 32-bit unsigned
values held in the adapter's ``random_word_dtype``: ``uint32`` where the
library has unsigned 32-bit arithmetic, ``int64`` where it does not (PyTorch
has no uint32 add or shift).  In a wider dtype every sum and left shift is
masked back to 32 bits; the values always lie in ``[0, 2**32)``, so right
shifts, xor and or are exact.

References: Salmon et al., "Parallel random numbers: as easy as 1, 2, 3"
(SC 2011), and jax's ``threefry2x32`` (``jax._src.prng``), which this matches
bit for bit, including both of its counter layouts:

* partitionable (jax's default since 0.5): element ``i`` of a draw is the
  cipher of the counter pair ``(i >> 32, i & 0xFFFFFFFF)``;
* legacy (``jax_threefry_partitionable=False``): the counters ``0..n-1`` are
  cut in two halves that form the pairs, and the outputs are concatenated.
"""
from __future__ import annotations

from typing import Any

from xpnn._types import Array, Namespace


MASK32 = 0xFFFFFFFF
_KEY_PARITY = 0x1BD11BDA
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))

_partitionable = True


def set_threefry_partitionable(flag: bool) -> None:
    """Choose jax's counter layout: True (jax's default) or False (legacy, pre-0.5 jax).

    It is the same switch as ``jax.config.update('jax_threefry_partitionable', flag)``:
    ``split``, ``bits`` and everything drawn from them change; ``fold_in`` does not.
    """
    global _partitionable
    if not isinstance(flag, bool):
        raise TypeError(f"set_threefry_partitionable: flag must be a bool, got {flag!r}")
    _partitionable = flag


def threefry_partitionable() -> bool:
    """Whether the partitionable (current jax default) counter layout is in use."""
    return _partitionable


def _wrapper(xp: Namespace, words: Any):
    """``x -> x mod 2**32`` for the word dtype: a no-op for uint32."""
    if words == xp.uint32:
        return lambda x: x
    return lambda x: x & MASK32


def threefry2x32(xp: Namespace, words: Any, key: Array, x0: Array, x1: Array) -> tuple[Array, Array]:
    """Threefry-2x32 with 20 rounds of the counter pairs ``(x0, x1)`` under ``key``.

    ``key`` is a ``(2,)`` array and ``x0``, ``x1`` are arrays of one shape,
    all of dtype ``words`` (or ``key`` a ``(2, n)`` stack of keys and the counters ``(n,)``:
    one pair under each key, ``(1, n)`` outputs).  Known answer: key (0, 0), counter (0, 0) gives
    (0x6b200159, 0x99ba4efe).
    """
    wrap = _wrapper(xp, words)
    # (1,) arrays, or (1, n) for a (2, n) stack of keys: NumPy warns on overflowing scalars, not arrays
    k0, k1 = key[0:1, ...], key[1:2, ...]
    schedule = (k0, k1, k0 ^ k1 ^ _KEY_PARITY)
    x0 = wrap(x0 + schedule[0])
    x1 = wrap(x1 + schedule[1])
    for block in range(5):
        for rotation in _ROTATIONS[block % 2]:
            x0 = wrap(x0 + x1)
            x1 = (wrap(x1 << rotation) | (x1 >> (32 - rotation))) ^ x0
        x0 = wrap(x0 + schedule[(block + 1) % 3])
        x1 = wrap(x1 + wrap(schedule[(block + 2) % 3] + (block + 1)))
    return x0, x1

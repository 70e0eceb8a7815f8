"""Counter-based random numbers on every array library, equal to ``jax.random``.

A key is a ``(2,)`` uint32 array (the two words of jax's threefry2x32 key)
in the library and on the device where values are wanted; every value drawn
from it is made there by the Threefry-2x32 cipher, written once against the
Array API standard (``xpnn._threefry``).  One seed therefore gives the same
numbers on NumPy, PyTorch, JAX, CuPy, Dask and array-api-strict, and the
same numbers as ``jax.random``:

* ``bits``, ``split``, ``fold_in``, ``uniform``, ``randint``, ``bernoulli``,
  ``permutation`` and ``categorical`` bit for bit;
* ``normal`` and ``truncated_normal`` (which go through ``erf_inv``) to a
  few float32 ulp: equal to XLA's polynomial, whose ``log1p`` differs from
  other libraries' by an ulp now and then;
* ``choice``, ``rademacher`` and ``geometric`` (integers) and the floats of ``exponential``,
  ``gumbel``, ``laplace``, ``logistic``, ``cauchy``, ``lognormal``, ``pareto``,
  ``rayleigh``, ``weibull_min``, ``maxwell``, ``double_sided_maxwell``, ``wald`` and
  ``triangular``: jax's formula over those draws, step for step, so bit for bit on jax
  arrays and to the ulp of the library's ``log``/``exp``/``tan`` elsewhere;
* ``gamma`` and ``loggamma`` (jax's Marsaglia-Tsang rejection loop, each element with its own
  key, all elements' loops run at once through the adapter's ``while_loop``) and what is built
  on them (``beta``, ``dirichlet``, ``chisquare``, ``f``, ``t``, ``generalized_normal``,
  ``ball``) to the same few ulp;
* ``poisson`` and ``binomial`` by jax's two loops each (Knuth's or inversion, and transformed
  rejection), ``multinomial`` by binomials over the categories.  Not provided:
  ``multivariate_normal``, ``orthogonal``.

Both of jax's counter layouts are implemented; ``set_threefry_partitionable``
chooses (the default, True, is jax's current default).  jax keys
(``jax.random.key(0)`` or ``jax.random.PRNGKey(0)``) are accepted wherever a
key is; xpnn returns raw uint32 keys.

On JAX every function runs as a cached ``jax.jit``, and inside a user's
``jax.jit`` it traces (keys may be traced).  Dask results stay lazy (the rejection loops of the
gamma family compute their condition at each round).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import array_api_compat
import numpy as np

from xpnn import _threefry, _uint64
from xpnn._checks import device_of, dtype_argument, dtype_name, library_of, shape_argument
from xpnn._dispatch import adapter_of, compiled
from xpnn._threefry import MASK32, set_threefry_partitionable, threefry_partitionable
from xpnn._types import Array, Namespace, Shape
from xpnn.backends import Adapter, is_number

__all__ = [
    "key", "split", "fold_in", "bits", "uniform", "normal", "truncated_normal", "bernoulli",
    "randint", "permutation", "categorical", "choice", "exponential", "gumbel", "laplace", "logistic", "cauchy",
    "lognormal", "pareto", "rayleigh", "weibull_min", "maxwell", "double_sided_maxwell", "wald", "triangular",
    "rademacher", "geometric", "gamma", "loggamma", "beta", "dirichlet", "chisquare", "f", "t",
    "generalized_normal", "ball", "poisson", "binomial", "multinomial", "PRNGKey", "key_data", "clone",
    "set_threefry_partitionable",
    "threefry_partitionable",
]


_UINT_BY_WIDTH = {8: "uint8", 16: "uint16", 32: "uint32", 64: "uint64"}


def _cpu_has_float16_arithmetic() -> bool:
    """Whether this machine's CPU computes float16 natively (x86's AVX512-FP16, Intel's Sapphire
    Rapids on), as NumPy's CPU dispatch reports it; False where NumPy cannot tell."""
    core = getattr(np, "_core", None) or getattr(np, "core", None)
    features = getattr(getattr(core, "_multiarray_umath", None), "__cpu_features__", {})
    return bool(features.get("AVX512FP16", False))


#: Whether XLA's CPU code contracts float16 multiply-adds here: it fuses ``a * b + c`` into one
#: rounding in float32 and float64 everywhere, and in float16 where the CPU has float16
#: arithmetic (elsewhere each float16 operation is computed in float32 and rounded, so nothing
#: is fused); bfloat16 is never fused.  jax.random's float16 draws differ between such machines.
_XLA_FUSES_FLOAT16 = _cpu_has_float16_arithmetic()
_INT_WIDTH = {"int8": 8, "int16": 16, "int32": 32, "int64": 64,
              "uint8": 8, "uint16": 16, "uint32": 32, "uint64": 64}


# -- arguments -------------------------------------------------------------------


def _key_words(value: Any, function: str) -> tuple[Adapter, Array]:
    """A key (xpnn, raw jax or typed jax key) as its ``(2,)`` array of words, and its adapter."""
    if isinstance(value, (int, list, tuple)) or value is None:
        raise TypeError(
            f"{function}: key must be a key array from xpnn.random.key (or jax.random.key), "
            f"got {type(value).__name__} {value!r}"
        )
    adapter = adapter_of(value)
    value = adapter.key_data(value)
    xp = adapter.xp
    if tuple(value.shape) != (2,) or not xp.isdtype(value.dtype, "integral"):
        raise ValueError(
            f"{function}: key must be a (2,) uint32 array (one key), got shape "
            f"{tuple(value.shape)} and dtype {value.dtype}; use a loop or split for several keys"
        )
    return adapter, value


def _float_layout(xp: Namespace, dtype: Any) -> tuple[int, int]:
    """``(random bits drawn, mantissa bits)`` of a float dtype, as jax.random.uniform uses them.

    bfloat16 has 7 mantissa bits, so jax draws only 8 random bits for it.
    """
    info = xp.finfo(dtype)
    mantissa = round(-math.log2(float(info.eps)))
    return (8 if mantissa < 8 else info.bits), mantissa


# -- bits --------------------------------------------------------------------------


def _pair_counters(xp: Namespace, words: Any, device: Any, start: int, stop: int, layout: tuple) -> tuple[Array, Array]:
    """The counter pairs ``start..stop-1`` of a draw.

    ``layout`` is ``("partitionable",)``: pair ``i`` is ``(i >> 32, i & 0xFFFFFFFF)``;
    or ``("legacy", half, total)``: pair ``i`` is ``(i, half + i)`` over
    ``iota(total)`` padded with a 0 to even length.
    """
    first = xp.arange(start, stop, dtype=words, device=device)
    if layout[0] == "partitionable":
        return (xp.zeros_like(first) if stop <= MASK32 + 1 else first >> 32), first
    _, half, total = layout
    second = xp.arange(half + start, half + stop, dtype=words, device=device)
    if total % 2:
        second = xp.where(second == total, xp.zeros_like(second), second)
    return first, second


def _draw(adapter: Adapter, key: Array, n: int, width: int, partitionable: bool, transform: Callable[[Any], Array]) -> Array:
    """``transform(values)`` for the ``n`` random values of ``width`` bits of a draw, flat.

    Values are ``width``-bit words (``width`` 64: a ``(high, low)`` pair of
    words).  Partitionable: value ``i`` is ``y0 ^ y1`` of the cipher of pair
    ``i`` (64-bit: ``(y0, y1)``; 8/16-bit: its low bits).  Legacy: the words
    of the legacy stream ``T(iota(m))`` = cipher outputs ``y0`` of all pairs,
    then ``y1`` of all pairs; 64-bit values take their high words from the
    first half of a ``2n``-word stream and low words from the second, and
    8/16-bit values are the little-endian sub-words of the stream.

    ``transform`` must be elementwise: where the adapter asks for it
    (``random_chunk``), the draw runs in cache-sized slices of pairs, each
    transformed at once, which makes eager CPU libraries several times faster.
    """
    xp, words = adapter.xp, adapter.random_word_dtype
    device = device_of(key)
    if not partitionable and width < 32:
        stream = _legacy_words(adapter, key, -(-n * width // 32))
        shifts = xp.arange(0, 32, width, dtype=words, device=device)
        parts = (stream[:, None] >> shifts[None, :]) & ((1 << width) - 1)
        return transform(xp.reshape(parts, (-1,))[:n])
    if partitionable:
        pairs, layout = n, ("partitionable",)
    elif width == 64:
        pairs, layout = n, ("legacy", n, 2 * n)
    else:
        pairs, layout = (n + 1) // 2, ("legacy", (n + 1) // 2, n)
    chunk = adapter.random_chunk(device) or max(pairs, 1)

    def draw_slice(start: int) -> tuple[Array, Array | None]:
        x0, x1 = _pair_counters(xp, words, device, start, min(start + chunk, pairs), layout)
        y0, y1 = _threefry.threefry2x32(xp, words, key, x0, x1)
        if width == 64:
            return transform((y0, y1)), None
        if partitionable:
            value = y0 ^ y1
            return transform(value if width == 32 else value & ((1 << width) - 1)), None
        return transform(y0), transform(y1)

    if chunk < pairs:
        _fail_fast(xp, n, width, words, device)
    slices = adapter.map_slices(draw_slice, range(0, max(pairs, 1), chunk))
    firsts = [first for first, _ in slices]
    seconds = [second for _, second in slices if second is not None]
    out = firsts[0] if len(firsts) == 1 and not seconds else xp.concat(firsts + seconds)
    return out[:n] if seconds else out


def _fail_fast(xp: Namespace, n: int, width: int, words: Any, device: Any) -> None:
    """Raise MemoryError now when ``n`` values cannot be held: an eager draw in slices would
    otherwise run for minutes before its final concatenation fails (or aborts the process).
    The probe is an uninitialised array the size of the words drawn, freed at once; the
    operating system commits no page of it."""
    try:
        probe = xp.empty((n * max(width, 32) // 32,), dtype=words, device=device)
    except (MemoryError, RuntimeError):  # torch's allocator raises RuntimeError
        raise MemoryError(f"xpnn.random: a draw of {n} values does not fit in memory "
                          f"({n * max(width, 32) // 8 / 2**30:.1f} GiB of random words alone)") from None
    del probe


def _legacy_words(adapter: Adapter, key: Array, m: int) -> Array:
    """The first ``m`` words of the legacy stream."""
    return _draw(adapter, key, m, 32, False, lambda values: values)


def _int64_of_words(xp: Namespace, pair: tuple[Array, Array]) -> Array:
    """The int64 whose high and low 32 bits are the words of ``pair`` (a 64-bit draw)."""
    high, low = (xp.astype(word, xp.int64) for word in pair)
    return (high << 32) | low


@compiled(static=("shape", "dtype", "width", "partitionable"))
def _bits(ops: Adapter, key: Array, shape: tuple[int, ...], dtype: Any, width: int, *, partitionable: bool) -> Array:
    xp = ops.xp
    if width == 64:
        def transform(pair):
            return xp.astype(_int64_of_words(xp, pair), dtype)
    else:
        def transform(values):
            return xp.astype(values, dtype)
    words = xp.astype(key, ops.random_word_dtype)
    return xp.reshape(_draw(ops, words, math.prod(shape), width, partitionable, transform), shape)


def bits(key: Array, shape: Shape = (), dtype: Any = None) -> Array:
    """Uniform random bits, ``jax.random.bits``: an unsigned array of ``shape``.

    ``dtype`` is uint8, uint16, uint32 (default) or uint64.  Bit-exact with jax
    in both counter layouts.
    """
    adapter, words = _key_words(key, "bits")
    shape = shape_argument(shape, "bits")
    dtype = dtype_argument(adapter, dtype, "unsigned integer", "uint32", "bits")
    return _bits(words, shape, dtype, _INT_WIDTH[dtype_name(dtype)], partitionable=_threefry.threefry_partitionable())


# -- keys ---------------------------------------------------------------------------


def key(seed: int | Array, *, like: Any = None) -> Array:
    """A key for ``seed``: ``[seed >> 32, seed & 0xFFFFFFFF]`` as uint32, like ``jax.random.key_data(jax.random.key(seed))``.

    The key is made in the library and on the device of ``like`` (an array
    or an array namespace); NumPy by default.  ``seed`` is a Python int in
    the int64 range.  A library without 64-bit integers (jax in its default
    mode) keeps the seed's low 32 bits, ``[0, seed & 0xFFFFFFFF]``, as jax does there.
    """
    adapter, device = library_of(like)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"key: seed must be a Python int, got {type(seed).__name__} {seed!r}")
    if not -(2**63) <= seed < 2**64:
        raise ValueError(f"key: seed must fit in 64 bits, got {seed}")
    seed %= 2**64 if adapter.holds_dtype(adapter.xp.int64, device) else 2**32
    return adapter.xp.asarray([seed >> 32, seed & MASK32], dtype=adapter.xp.uint32, device=device)


def PRNGKey(seed: int, *, like: Any = None) -> Array:
    """``jax.random.PRNGKey``: jax's legacy raw ``(2,)`` uint32 key, which is the key xpnn makes:
    ``PRNGKey(seed)`` is ``key(seed)``."""
    return key(seed, like=like)


def key_data(keys: Array) -> Array:
    """The raw uint32 words of one key or of a stack of keys (``jax.random.key_data``): xpnn's
    keys are their words already; jax's typed keys (``jax.random.key``) are unwrapped."""
    if not array_api_compat.is_array_api_obj(keys):
        raise TypeError(f"xpnn.random.key_data: keys must be a key array, got {type(keys).__name__} {keys!r}")
    adapter = adapter_of(keys)
    words = adapter.key_data(keys)
    if words.ndim == 0 or words.shape[-1] != 2 or not adapter.xp.isdtype(words.dtype, "integral"):
        raise ValueError(f"xpnn.random.key_data: keys must be uint32 arrays of shape (..., 2), got shape "
                         f"{tuple(words.shape)} and dtype {words.dtype}")
    return words


def clone(key: Array) -> Array:
    """``jax.random.clone``: the same key, for reuse (jax's key-reuse checker aside, an identity)."""
    _key_words(key, "clone")
    return key


@compiled(static=("num", "partitionable"))
def _split(ops: Adapter, key: Array, num: int, *, partitionable: bool) -> Array:
    xp = ops.xp
    words = xp.astype(key, ops.random_word_dtype)
    if partitionable:
        out = _draw(ops, words, num, 64, True, lambda pair: xp.stack(pair, axis=1))
    else:
        out = xp.reshape(_legacy_words(ops, words, 2 * num), (num, 2))
    return xp.astype(out, xp.uint32)


def _split_keys(ops: Adapter, key: Array, num: int, partitionable: bool) -> list[Array]:
    """``split(key, num)`` inside a written-once draw, as a list of ``num`` keys."""
    return ops.xp.unstack(_split.written_once(ops, key, num, partitionable=partitionable))


def split(key: Array, num: int = 2) -> Array:
    """``num`` new keys from ``key``, as a ``(num, 2)`` uint32 array (``jax.random.split``).

    Partitionable layout: key ``i`` is the cipher of counter ``i`` (so
    ``split(key, n)[i] == fold_in(key, i)``); legacy: the legacy stream of
    ``2 * num`` words, in pairs.
    """
    _, words = _key_words(key, "split")
    if isinstance(num, bool) or not isinstance(num, int) or num < 0:
        raise ValueError(f"split: num must be a non-negative int, got {num!r}")
    return _split(words, num, partitionable=_threefry.threefry_partitionable())


@compiled()
def _fold_in(ops: Adapter, key: Array, data: Array) -> Array:
    xp = ops.xp
    words = xp.astype(key, ops.random_word_dtype)
    counter = xp.reshape(xp.astype(data, ops.random_word_dtype), (1,))
    y0, y1 = _threefry.threefry2x32(xp, ops.random_word_dtype, words, xp.zeros_like(counter), counter)
    return xp.astype(xp.concat([y0, y1]), xp.uint32)


def fold_in(key: Array, data: int | Array) -> Array:
    """A new key from ``key`` and the integer ``data`` (``jax.random.fold_in``).

    It is the cipher of the counter ``(0, uint32(data))``, the same in both
    counter layouts.  ``data`` is a Python int or an integer scalar array
    (e.g. a traced step counter); it is taken modulo 2**32.
    """
    adapter, words = _key_words(key, "fold_in")
    xp = adapter.xp
    if isinstance(data, int) and not isinstance(data, bool):
        data = xp.asarray(data % 2**32, dtype=adapter.random_word_dtype, device=device_of(words))
    elif isinstance(data, bool) or not hasattr(data, "dtype") or not xp.isdtype(data.dtype, "integral") or data.ndim:
        raise TypeError(f"fold_in: data must be an int or an integer scalar array, got {data!r}")
    elif data.dtype != adapter.random_word_dtype:
        if xp.isdtype(adapter.random_word_dtype, "unsigned integer"):
            data = xp.astype(data, adapter.random_word_dtype)  # wraps modulo 2**32, without int64
        else:
            data = xp.astype(data, xp.int64) & MASK32
    return _fold_in(words, data)


# -- floats -------------------------------------------------------------------------


def _floats(
    adapter: Adapter, key: Array, shape: tuple[int, ...], dtype: Any, partitionable: bool,
    minval: Any, maxval: Any, then: Callable[[Array], Array] | None = None,
) -> Array:
    """jax.random.uniform's floats in ``[minval, maxval)``, then ``then`` elementwise.

    jax sets the top random bits as the mantissa of a float in [1, 2) and
    subtracts 1; that equals ``m * 2**-nmant`` for the ``nmant`` top bits
    ``m``, computed here exactly without a bitcast.  The result is
    ``max(minval, f * (maxval - minval) + minval)`` in ``dtype``, the multiply-add rounded once
    where XLA's CPU code fuses it (``_XLA_FUSES_FLOAT16``).
    """
    xp = adapter.xp
    device = device_of(key)
    drawn, _ = _float_layout(xp, dtype)
    low, high = (_as_dtype(xp, v, dtype, device) for v in (minval, maxval))
    scalar_bounds = low.ndim == 0 and high.ndim == 0

    def finish(f: Array) -> Array:
        out = _scaled_floats(adapter, f, low, high)
        return then(out) if then is not None else out

    def transform(words: Any) -> Array:
        f = _unit_floats(xp, words, dtype)
        return finish(f) if scalar_bounds else f

    flat = _draw(adapter, xp.astype(key, adapter.random_word_dtype), math.prod(shape), drawn, partitionable, transform)
    out = xp.reshape(flat, shape)
    return out if scalar_bounds else finish(out)


def _unit_floats(xp: Namespace, words: Any, dtype: Any) -> Array:
    """The floats in [0, 1) of drawn words (a ``(high, low)`` pair for 64-bit floats): the top
    mantissa bits ``m`` of each, as ``m * 2**-nmant``."""
    drawn, mantissa = _float_layout(xp, dtype)
    if drawn == 64:
        high_word, low_word = (xp.astype(w, xp.int64) for w in words)
        m = (high_word << (mantissa - 32)) | (low_word >> (64 - mantissa))
    else:
        m = words >> (drawn - mantissa)
    return xp.astype(m, dtype) * (2.0 ** -mantissa)


def _scaled_floats(adapter: Adapter, f: Array, low: Array, high: Array) -> Array:
    """``max(low, f * (high - low) + low)``, the multiply-add rounded once where XLA's CPU code
    fuses it: float32 and float64, and float16 on CPUs with float16 arithmetic."""
    _, mantissa = _float_layout(adapter.xp, f.dtype)
    fused = mantissa >= 23 or (mantissa == 10 and _XLA_FUSES_FLOAT16)
    span = high - low
    return adapter.xp.maximum(low, adapter.fma(f, span, low) if fused else f * span + low)


@compiled(static=("shape", "dtype", "partitionable"))
def _uniform(ops: Adapter, key: Array, shape: tuple[int, ...], dtype: Any, minval: Any, maxval: Any, *, partitionable: bool) -> Array:
    return _floats(ops, key, shape, dtype, partitionable, minval, maxval)


def _check_bounds(function: str, adapter: Adapter, shape: tuple[int, ...], **bounds: Any) -> None:
    """Array bounds must be of the key's library and broadcast to ``shape`` (jax's ``_check_shape``)."""
    for name, value in bounds.items():
        _check_library(function, adapter, name, value)
        bound_shape = tuple(getattr(value, "shape", ()))
        if len(bound_shape) > len(shape) or any(
            b not in (1, s) for b, s in zip(bound_shape[::-1], shape[::-1])
        ):
            raise ValueError(
                f"{function}: {name} of shape {bound_shape} does not broadcast to shape {shape}"
            )


def _check_library(function: str, adapter: Adapter, name: str, value: Any) -> None:
    """TypeError when ``value`` is an array of another library than the key's."""
    if array_api_compat.is_array_api_obj(value) and adapter_of(value) is not adapter:
        raise TypeError(f"xpnn.random.{function}: key is a {adapter.name} array but {name} is a "
                        f"{adapter_of(value).name} array; make them in one library (xpnn.to_backend)")


def _float_call(key: Array, shape: Any, dtype: Any, function: str) -> tuple[Adapter, Array, tuple[int, ...], Any]:
    adapter, words = _key_words(key, function)
    return adapter, words, shape_argument(shape, function), dtype_argument(adapter, dtype, "real floating", "float32", function)


def uniform(key: Array, shape: Shape = (), dtype: Any = None, minval: Any = 0.0, maxval: Any = 1.0) -> Array:
    """Uniform floats in ``[minval, maxval)`` (``jax.random.uniform``), bit-exact with jax.

    ``f`` in [0, 1) takes the top mantissa bits of 32 random bits (float32),
    16 (float16), 8 (bfloat16) or 64 (float64); the result is
    ``max(minval, f * (maxval - minval) + minval)`` computed in ``dtype``
    (default float32) as jax computes it on this machine's CPU (float16's multiply-add is
    rounded once where the CPU has float16 arithmetic, as XLA fuses it there).
    """
    adapter, words, shape, dtype = _float_call(key, shape, dtype, "uniform")
    _check_bounds("uniform", adapter, shape, minval=minval, maxval=maxval)
    return _uniform(words, shape, dtype, minval, maxval, partitionable=_threefry.threefry_partitionable())


@compiled(static=("shape", "dtype", "partitionable"))
def _normal(ops: Adapter, key: Array, shape: tuple[int, ...], dtype: Any, *, partitionable: bool) -> Array:
    xp = ops.xp
    _, mantissa = _float_layout(xp, dtype)
    sqrt2 = xp.asarray(math.sqrt(2.0), dtype=dtype, device=device_of(key))
    return _floats(ops, key, shape, dtype, partitionable, -(1.0 - 2.0 ** -(mantissa + 1)), 1.0,
                   then=lambda u: sqrt2 * ops.erf_inv(u))


def normal(key: Array, shape: Shape = (), dtype: Any = None) -> Array:
    """Standard normal floats (``jax.random.normal``): ``sqrt(2) * erf_inv(u)``.

    ``u`` is uniform in ``(-1, 1)`` (``minval = nextafter(-1, 0)``), drawn as
    ``uniform``; ``erf_inv`` is XLA's float32 polynomial (see
    ``backends/_fallback.py``), so values match jax to a few float32 ulp.
    """
    adapter, words, shape, dtype = _float_call(key, shape, dtype, "normal")
    return _normal(words, shape, dtype, partitionable=_threefry.threefry_partitionable())


@compiled(static=("shape", "dtype", "partitionable"))
def _truncated_normal(ops: Adapter, key: Array, lower: Any, upper: Any, shape: tuple[int, ...], dtype: Any, *, partitionable: bool) -> Array:
    xp = ops.xp
    device = device_of(key)
    sqrt2 = xp.asarray(math.sqrt(2.0), dtype=dtype, device=device)
    lower, upper = _as_dtype(xp, lower, dtype, device), _as_dtype(xp, upper, dtype, device)
    above = xp.nextafter(lower, xp.asarray(math.inf, dtype=dtype, device=device))
    below = xp.nextafter(upper, xp.asarray(-math.inf, dtype=dtype, device=device))
    return _floats(ops, key, shape, dtype, partitionable, ops.erf_as_jax(lower / sqrt2),
                   ops.erf_as_jax(upper / sqrt2),
                   then=lambda u: xp.clip(sqrt2 * ops.erf_inv(u), above, below))


def truncated_normal(key: Array, lower: Any, upper: Any, shape: Shape | None = None, dtype: Any = None) -> Array:
    """Normal floats truncated to the open interval ``(lower, upper)`` (``jax.random.truncated_normal``).

    ``u`` is uniform between ``erf(lower/sqrt2)`` and ``erf(upper/sqrt2)``;
    the result is ``sqrt(2) * erf_inv(u)``, clipped to the open interval.
    ``shape`` defaults to the broadcast shape of ``lower`` and ``upper``.
    """
    if shape is None:
        shape = _broadcast_shapes(tuple(getattr(lower, "shape", ())), tuple(getattr(upper, "shape", ())))
    adapter, words, shape, dtype = _float_call(key, shape, dtype, "truncated_normal")
    _check_bounds("truncated_normal", adapter, shape, lower=lower, upper=upper)
    if is_number(lower) and is_number(upper) and not lower < upper:
        raise ValueError(f"truncated_normal: lower must be < upper, got lower={lower}, upper={upper}")
    return _truncated_normal(words, lower, upper, shape, dtype, partitionable=_threefry.threefry_partitionable())


def bernoulli(key: Array, p: Any = 0.5, shape: Shape | None = None) -> Array:
    """Booleans that are True with probability ``p`` (``jax.random.bernoulli``): ``uniform(key, shape) < p``.

    The uniform draw has ``p``'s dtype (float32 for a Python float), as in jax.
    ``shape`` defaults to ``p``'s shape.
    """
    adapter, _ = _key_words(key, "bernoulli")
    _check_library("bernoulli", adapter, "p", p)
    if shape is None:
        shape = tuple(getattr(p, "shape", ()))
    if is_number(p):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"bernoulli: p must be a probability in [0, 1], got {p}")
        dtype = None
    elif hasattr(p, "dtype") and adapter.xp.isdtype(p.dtype, "real floating"):
        dtype = p.dtype
    else:
        raise TypeError(f"bernoulli: p must be a float or a floating array, got {p!r}")
    return adapter.array_result(uniform(key, shape, dtype) < p)


# -- integers ----------------------------------------------------------------------


def _two_streams(adapter: Adapter, key: Array, n: int, width: int, partitionable: bool,
                 transform: Callable[[Any], Array]) -> tuple[Array, Array]:
    """randint's two draws of ``n`` values of ``width`` bits, from the two halves of ``split(key)``."""
    keys = adapter.xp.unstack(_split.written_once(adapter, key, 2, partitionable=partitionable))
    higher, lower = (_draw(adapter, adapter.xp.astype(k, adapter.random_word_dtype), n, width, partitionable, transform)
                     for k in keys)
    return higher, lower


@compiled(static=("shape", "dtype", "width", "partitionable", "above_top"))
def _randint(ops: Adapter, key: Array, shape: tuple[int, ...], minval: Any, maxval: Any, dtype: Any, width: int, *,
             partitionable: bool, above_top: bool = False) -> Array:
    """randint below 64 bits; ``above_top``: maxval was a Python int above the dtype's maximum
    (clipped by the caller), which widens the span by one as jax does."""
    xp = ops.xp
    device = device_of(key)
    info = xp.iinfo(dtype)
    wide = xp.int64
    if not ops.holds_dtype(wide, device):  # jax without x64: no int64
        return _randint_in_words(ops, key, shape, minval, maxval, dtype, partitionable, above_top)
    low, high = _as_dtype(xp, minval, wide, device), _as_dtype(xp, maxval, wide, device)
    if width < 32:
        # jax samples narrow dtypes as int32, with the bounds clipped to the narrow range.
        low = xp.clip(low, info.min, info.max)
        high = xp.clip(high, info.min, info.max + 1)
        info, width = xp.iinfo(xp.int32), 32
    # Bounds clipped to the sampling dtype's range; maxval past the top widens the span by one.
    beyond = (high > info.max) | above_top
    low = xp.clip(low, info.min, info.max)
    high = xp.clip(high, info.min, info.max)
    span = xp.where(high <= low, xp.ones_like(high), high - low)
    span = xp.where(beyond & (high > low), span + 1, span)
    span = xp.broadcast_to(span, shape) if span.ndim else span
    n = math.prod(shape)
    higher, lower = _two_streams(ops, key, n, width, partitionable, lambda values: xp.astype(values, wide))
    span = xp.reshape(xp.broadcast_to(span, shape), (n,))
    # jax: offset = ((higher % span) * (2**width % span)**2 % span + lower % span) % span,
    # in unsigned width-bit arithmetic (the product wraps for width 32).
    modulus = (1 << width) - 1
    multiplier = (1 << (width // 2)) % span
    multiplier = ((multiplier * multiplier) & modulus) % span
    offset = ((((higher % span) * multiplier) & modulus) + (lower % span)) & modulus
    offset = offset % span
    low = xp.reshape(xp.broadcast_to(low, shape), (n,))
    return xp.reshape(xp.astype(low + offset, dtype), shape)


def _randint_in_words(adapter: Adapter, key: Array, shape: tuple[int, ...], minval: Array, maxval: Array,
                      dtype: Any, partitionable: bool, above_top: bool) -> Array:
    """``_randint`` for libraries without int64 (jax in its default mode): jax's unsigned
    32-bit arithmetic done in uint32 words, where it wraps as jax's does; bounds clipped as jax
    clips them (Python ints in Python, arrays in their own dtype)."""
    xp = adapter.xp
    device = device_of(key)
    info = xp.iinfo(dtype)
    narrow = info.bits < 32
    sample = xp.int32 if narrow else dtype  # jax samples narrow dtypes as int32
    top = xp.iinfo(sample).max

    def bound(value: Array, upper: int) -> tuple[Array, Any]:
        """The bound clipped to the dtype's range (``upper`` past it), as ``sample``, and whether it
        was above the sampling dtype's maximum."""
        limits = xp.iinfo(value.dtype)
        if limits.min < info.min or limits.max > upper:  # bounds as arrays: 2**32 - 1 fits no int32
            value = xp.clip(value, xp.asarray(max(info.min, limits.min), dtype=value.dtype, device=device),
                            xp.asarray(min(upper, limits.max), dtype=value.dtype, device=device))
        if limits.max <= top:
            return xp.astype(value, sample), xp.zeros_like(value, dtype=xp.bool)
        return xp.astype(value, sample), value > xp.asarray(top, dtype=value.dtype, device=device)

    low, _ = bound(minval, info.max)
    high, beyond = bound(maxval, info.max + 1 if narrow else info.max)
    beyond = beyond | above_top
    words = adapter.random_word_dtype
    span = xp.where(high <= low, xp.ones_like(high), high - low)
    span = xp.astype(span, words)
    span = xp.where(beyond & (high > low), span + 1, span)
    span = xp.reshape(xp.broadcast_to(span, shape), (-1,))
    one = xp.ones_like(span)

    def modulo(value: Array) -> Array:  # XLA's unsigned remainder by 0 is the value itself
        return xp.where(span == 0, value, value % xp.where(span == 0, one, span))

    higher, lower = _two_streams(adapter, key, math.prod(shape), 32, partitionable, lambda values: values)
    multiplier = modulo(xp.full_like(span, 1 << 16))
    multiplier = modulo(multiplier * multiplier)
    offset = modulo(modulo(higher) * multiplier + modulo(lower))
    low = xp.reshape(xp.broadcast_to(low, shape), (-1,))
    return xp.reshape(xp.astype(low + xp.astype(offset, sample), dtype), shape)


def _randint64(ops: Adapter, key: Array, shape: tuple[int, ...], low: _uint64.Pair, modulo: Callable[[_uint64.Pair], _uint64.Pair],
               multiplier: _uint64.Pair, dtype: Any, partitionable: bool) -> Array:
    """jax's 64-bit randint: ``low + (higher % span * multiplier + lower % span) % span`` in uint64
    arithmetic, ``modulo`` being ``% span`` and ``multiplier`` ``(2**32 % span)**2 % span``."""
    xp = ops.xp
    higher, lower = (_uint64.from_int64(stream) for stream in _two_streams(
        ops, key, math.prod(shape), 64, partitionable, lambda pair: _int64_of_words(xp, pair)))
    offset = modulo(_uint64.add(_uint64.mul(modulo(higher), multiplier), modulo(lower)))
    return xp.reshape(xp.astype(_uint64.to_int64(_uint64.add(low, offset)), dtype), shape)


@compiled(static=("shape", "minval", "maxval", "dtype", "partitionable"))
def _randint64_int_bounds(ops: Adapter, key: Array, shape: tuple[int, ...], minval: int, maxval: int, dtype: Any, *, partitionable: bool) -> Array:
    """64-bit randint with Python-int bounds: jax's clipping, span and multiplier in exact Python arithmetic."""
    info = ops.xp.iinfo(dtype)
    low, high = (min(max(value, info.min), info.max) for value in (minval, maxval))
    span = 1 if high <= low else high - low + (maxval > info.max)
    multiplier = ((1 << 32) % span) ** 2 % (1 << 64) % span if span < 1 << 64 else 0
    return _randint64(ops, key, shape, _uint64.words_of(low), lambda x: _uint64.mod_known(ops.xp, x, span),
                      _uint64.words_of(multiplier), dtype, partitionable)


@compiled(static=("shape", "dtype", "partitionable"))
def _randint64_array_bounds(ops: Adapter, key: Array, shape: tuple[int, ...], minval: Any, maxval: Any, dtype: Any, *, partitionable: bool) -> Array:
    """64-bit randint with array bounds, held as int64 bit patterns (uint64 ones reinterpreted)."""
    xp = ops.xp
    device = device_of(key)
    unsigned = dtype == xp.uint64
    bounds = []
    for value in (minval, maxval):
        if not hasattr(value, "dtype"):
            value = xp.asarray(value, dtype=xp.int64, device=device)
        elif unsigned and xp.isdtype(value.dtype, "signed integer"):
            value = xp.maximum(value, xp.zeros_like(value))  # jax clips to the dtype's range
        bounds.append(xp.reshape(xp.broadcast_to(xp.astype(value, xp.int64), shape), (-1,)))
    low, high = bounds
    if unsigned:  # unsigned order: compare with the sign bit flipped
        empty = (high ^ -(1 << 63)) <= (low ^ -(1 << 63))
    else:
        empty = high <= low
    span = _uint64.from_int64(xp.where(empty, xp.ones_like(high), high - low))
    multiplier = _uint64.mod(xp, (xp.ones_like(span[0]), xp.zeros_like(span[1])), span)
    multiplier = _uint64.mod(xp, _uint64.mul(multiplier, multiplier), span)
    return _randint64(ops, key, shape, _uint64.from_int64(low), lambda x: _uint64.mod(xp, x, span), multiplier,
                      dtype, partitionable)


def randint(key: Array, shape: Shape, minval: Any, maxval: Any, dtype: Any = None) -> Array:
    """Integers uniform in ``[minval, maxval)`` (``jax.random.randint``), bit-exact with jax.

    jax's algorithm: two streams of ``width`` random bits from ``split(key)``,
    combined modulo the span so that the bias is that of ``2 * width`` bits.
    ``maxval <= minval`` gives ``minval``.  ``dtype`` defaults to int32; 8-,
    16-, 32- and 64-bit integer dtypes are supported (narrow ones are sampled
    as int32 with clipped bounds, as jax does).  64-bit dtypes compute jax's
    uint64 arithmetic on pairs of 32-bit words (``xpnn._uint64``), so they
    work where the library lacks uint64 arithmetic (torch); Python-int bounds
    are clipped to the dtype in Python, and a uint64 bound array needs dtype uint64.
    """
    adapter, words = _key_words(key, "randint")
    shape = shape_argument(shape, "randint")
    dtype = dtype_argument(adapter, dtype, "integral", "int32", "randint")
    width = _INT_WIDTH[dtype_name(dtype)]
    _check_bounds("randint", adapter, shape, minval=minval, maxval=maxval)
    for name, value in (("minval", minval), ("maxval", maxval)):
        if not (isinstance(value, int) or (hasattr(value, "dtype") and adapter.xp.isdtype(value.dtype, "integral"))):
            raise TypeError(f"randint: {name} must be an int or an integer array, got {value!r}")
    partitionable = _threefry.threefry_partitionable()
    if width < 64:
        above_top = False
        if isinstance(minval, int) and isinstance(maxval, int):
            # Python ints are clipped here, as jax clips them, and passed as arrays of the sampling
            # dtype: a compiled call could not take 2**32 - 1 as an argument without int64.
            info = adapter.xp.iinfo(dtype)
            above_top = width == 32 and maxval > info.max
            sample = dtype if width == 32 else adapter.xp.int32
            minval = min(max(minval, info.min), info.max)
            maxval = min(max(maxval, info.min), info.max if width == 32 else info.max + 1)
            minval, maxval = (adapter.xp.asarray(v, dtype=sample, device=device_of(words)) for v in (minval, maxval))
        return _randint(words, shape, minval, maxval, dtype, width, partitionable=partitionable, above_top=above_top)
    if isinstance(minval, int) and isinstance(maxval, int):
        return _randint64_int_bounds(words, shape, minval, maxval, dtype, partitionable=partitionable)
    for name, value in (("minval", minval), ("maxval", maxval)):
        if hasattr(value, "dtype") and value.dtype == adapter.xp.uint64 and dtype != adapter.xp.uint64:
            raise TypeError(f"randint: a uint64 {name} array needs dtype uint64, got dtype {dtype_name(dtype)}")
    return _randint64_array_bounds(words, shape, minval, maxval, dtype, partitionable=partitionable)


def permutation(key: Array, x: int | Array, axis: int = 0, independent: bool = False) -> Array:
    """A random permutation of ``range(x)`` or of ``x`` along ``axis`` (``jax.random.permutation``).

    jax's algorithm: sort by fresh 32-bit random keys, repeated
    ``ceil(3 ln(n) / ln(2**32 - 1))`` times with a stable sort, each round with
    the second key of ``split(key)``.  With ``independent=True`` every slice
    along ``axis`` is shuffled on its own; otherwise whole slices move.  ``range(x)`` is int32
    (int64 on jax arrays with ``jax_enable_x64``), as jax's default integers.
    """
    adapter, words = _key_words(key, "permutation")
    xp = adapter.xp
    if isinstance(x, int) and not isinstance(x, bool):
        if x < 0:
            raise ValueError(f"permutation: x must be a non-negative int or an array, got {x}")
        int_dtype = adapter.dtype_named(adapter.random_default_dtype("int32"))
        return _shuffle(words, xp.arange(x, dtype=int_dtype, device=device_of(words)), 0)
    if not hasattr(x, "shape") or x.ndim == 0:
        raise TypeError(f"permutation: x must be an int or an array of at least 1 dimension, got {x!r}")
    if adapter_of(x) is not adapter:
        raise TypeError(f"permutation: key is a {adapter.name} array but x is not")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"permutation: axis={axis} is out of bounds for an array of dimension {x.ndim}")
    axis %= x.ndim
    if independent or x.ndim == 1:
        return _shuffle(words, x, axis)
    order = _shuffle(words, xp.arange(x.shape[axis], device=device_of(words)), 0)
    return xp.take(x, order, axis=axis)


def _shuffle(key: Array, x: Array, axis: int) -> Array:
    n = math.prod(x.shape)
    rounds = math.ceil(3 * math.log(max(1, n)) / math.log(MASK32))
    return _sort_rounds(key, x, axis, rounds, partitionable=_threefry.threefry_partitionable())


@compiled(static=("axis", "rounds", "partitionable"))
def _sort_rounds(ops: Adapter, key: Array, x: Array, axis: int, rounds: int, *, partitionable: bool) -> Array:
    xp = ops.xp
    for _ in range(rounds):
        pair = _split.written_once(ops, key, 2, partitionable=partitionable)
        key, subkey = pair[0, :], pair[1, :]
        words = xp.astype(subkey, ops.random_word_dtype)
        sort_keys = xp.reshape(_draw(ops, words, math.prod(x.shape), 32, partitionable, lambda v: v), x.shape)
        order = xp.argsort(sort_keys, axis=axis, stable=True)
        x = xp.take(x, order, axis=0) if x.ndim == 1 else xp.take_along_axis(x, order, axis=axis)
    return x


def categorical(key: Array, logits: Array, axis: int = -1, shape: Shape | None = None, replace: bool = True,
                mode: str | None = None) -> Array:
    """Samples from the categorical distributions ``softmax(logits, axis)`` (``jax.random.categorical``).

    The Gumbel-max trick, as jax: ``argmax(logits + g, axis)`` with
    ``g = -log(-log(uniform(key, minval=tiny, maxval=1)))`` drawn in
    ``logits``' dtype; without replacement, the top ``prod(shape prefix)``
    of ``logits + g``.  ``shape`` defaults to ``logits.shape`` without ``axis``; ``mode`` is
    gumbel's ('low' by default, or 'high').
    """
    adapter, words = _key_words(key, "categorical")
    xp = adapter.xp
    if not hasattr(logits, "dtype") or adapter_of(logits) is not adapter:
        raise TypeError(f"categorical: logits must be an array of the key's library ({adapter.name}), got {type(logits).__name__}")
    if not xp.isdtype(logits.dtype, "real floating"):
        raise TypeError(f"categorical: logits must have a floating dtype, got {logits.dtype}")
    if not -logits.ndim <= axis < logits.ndim:
        raise ValueError(f"categorical: axis={axis} is out of bounds for logits of dimension {logits.ndim}")
    axis %= logits.ndim
    batch_shape = tuple(s for i, s in enumerate(logits.shape) if i != axis)
    shape = batch_shape if shape is None else shape_argument(shape, "categorical")
    if len(shape) < len(batch_shape) or any(
        b not in (1, s) for b, s in zip(batch_shape[::-1], shape[::-1])
    ):
        raise ValueError(f"categorical: shape {shape} is not compatible with the batch shape {batch_shape} of logits")
    prefix = shape[: len(shape) - len(batch_shape)]
    if not replace and math.prod(prefix) > logits.shape[axis]:
        raise ValueError(
            f"categorical: number of samples without replacement ({math.prod(prefix)}) cannot exceed "
            f"the number of categories ({logits.shape[axis]})"
        )
    mode = _gumbel_mode(mode, "categorical")
    return _categorical(words, logits, axis, shape, batch_shape, replace, mode,
                        partitionable=_threefry.threefry_partitionable())


@compiled(static=("axis", "shape", "batch_shape", "replace", "mode", "partitionable"))
def _categorical(
    ops: Adapter, key: Array, logits: Array, axis: int, shape: tuple[int, ...], batch_shape: tuple[int, ...], replace: bool,
    mode: str, *, partitionable: bool,
) -> Array:
    xp = ops.xp
    prefix = shape[: len(shape) - len(batch_shape)]
    dtype = logits.dtype
    if replace:
        sample_shape = list(shape[len(prefix):])
        sample_shape.insert(axis, logits.shape[axis])
        gumbel = _gumbel(ops, key, (*prefix, *sample_shape), dtype, partitionable, mode)
        expanded = xp.reshape(logits, (1,) * len(prefix) + tuple(logits.shape))
        return xp.argmax(gumbel + expanded, axis=axis + len(prefix))
    perturbed = logits + _gumbel(ops, key, tuple(logits.shape), dtype, partitionable, mode)
    k = math.prod(prefix)
    order = xp.argsort(xp.moveaxis(perturbed, axis, -1), axis=-1, descending=True, stable=True)[..., :k]
    order = xp.moveaxis(order, -1, 0)
    return xp.reshape(order, shape)


def _gumbel(adapter: Adapter, key: Array, shape: tuple[int, ...], dtype: Any, partitionable: bool,
            mode: str = "low") -> Array:
    """jax.random.gumbel's draw in ``mode`` 'low' (``-log(-log(uniform(tiny, 1)))``) or 'high'."""
    xp = adapter.xp
    tiny = float(xp.finfo(dtype).smallest_normal)
    if mode == "low":
        return _floats(adapter, key, shape, dtype, partitionable, tiny, 1.0, then=lambda u: -xp.log(-xp.log(u)))
    _, mantissa = _float_layout(xp, dtype)
    pair = _floats(adapter, key, (2, *shape), dtype, partitionable, 0.0, 1.0)
    high, low = pair[0, ...], pair[1, ...]
    x = xp.where(high >= 0.5, high, high + 2.0 ** -mantissa * low + tiny)
    return -xp.log(-xp.log1p(-x))


# -- distributions drawn from uniform and normal values ---------------------------------
#
# Each is jax.random's formula over the draws above, step for step in the sample dtype: bit for
# bit with jax on jax arrays, and to an ulp or two of ``log``/``tan``/``exp`` elsewhere.


def _parameter_shape(function: str, adapter: Adapter, shape: Any, **parameters: Any) -> tuple[int, ...]:
    """``shape`` checked (default: the broadcast shape of the parameters); each parameter a real
    number or a real array of the key's library that broadcasts to it (jax's ``_check_shape``)."""
    for name, value in parameters.items():
        _check_library(function, adapter, name, value)
        real = (is_number(value) and not isinstance(value, (bool, complex))) or (
            hasattr(value, "dtype") and adapter.xp.isdtype(value.dtype, ("real floating", "integral")))
        if not real:
            raise TypeError(f"xpnn.random.{function}: {name} must be a real number or array, got {value!r}")
    if shape is None:
        return _broadcast_shapes(*(tuple(getattr(v, "shape", ())) for v in parameters.values()))
    shape = shape_argument(shape, function)
    _check_bounds(function, adapter, shape, **parameters)
    return shape


def _float_distribution(key: Array, shape: Any, dtype: Any, function: str, **parameters: Any,
                        ) -> tuple[Array, tuple[int, ...], Any]:
    """The key's words, the checked shape and the floating dtype of a sampler with ``parameters``."""
    adapter, words = _key_words(key, function)
    dtype = dtype_argument(adapter, dtype, "real floating", "float32", function)
    return words, _parameter_shape(function, adapter, shape, **parameters), dtype


@compiled(static=("shape", "dtype", "partitionable"))
def _exponential(ops: Adapter, key: Array, shape: tuple[int, ...], dtype: Any, *, partitionable: bool) -> Array:
    xp = ops.xp
    return _floats(ops, key, shape, dtype, partitionable, 0.0, 1.0, then=lambda u: -xp.log1p(-u))


def exponential(key: Array, shape: Shape = (), dtype: Any = None) -> Array:
    """Exponential floats of rate 1 (``jax.random.exponential``): ``-log1p(-u)``, ``u = uniform(key)``."""
    words, shape, dtype = _float_distribution(key, shape, dtype, "exponential")
    return _exponential(words, shape, dtype, partitionable=_threefry.threefry_partitionable())


_GUMBEL_MODES = ("low", "high")


def _gumbel_mode(mode: Any, function: str) -> str:
    if mode is None:
        return "low"
    if mode not in _GUMBEL_MODES:
        detail = " ('highest', jax's float32 bit-level mode, is not provided)" if mode == "highest" else ""
        raise ValueError(f"xpnn.random.{function}: mode must be None, 'low' or 'high', got {mode!r}{detail}")
    return mode


@compiled(static=("shape", "dtype", "mode", "partitionable"))
def _gumbel_draw(ops: Adapter, key: Array, shape: tuple[int, ...], dtype: Any, mode: str, *,
                 partitionable: bool) -> Array:
    return _gumbel(ops, key, shape, dtype, partitionable, mode)


def gumbel(key: Array, shape: Shape = (), dtype: Any = None, mode: str | None = None) -> Array:
    """Standard Gumbel floats (``jax.random.gumbel``).

    ``mode='low'`` (the default, as jax's): ``-log(-log(u))`` with ``u`` uniform in
    ``[tiny, 1)``.  ``mode='high'`` draws two uniforms ``hi, lo`` and uses
    ``x = hi`` where ``hi >= 0.5``, else ``hi + 2**-nmant * lo + tiny``, then
    ``-log(-log1p(-x))``: twice the random bits, for probabilities far below ``2**-nmant``.
    """
    words, shape, dtype = _float_distribution(key, shape, dtype, "gumbel")
    mode = _gumbel_mode(mode, "gumbel")
    return _gumbel_draw(words, shape, dtype, mode, partitionable=_threefry.threefry_partitionable())


@compiled(static=("shape", "dtype", "partitionable"))
def _laplace(ops: Adapter, key: Array, shape: tuple[int, ...], dtype: Any, *, partitionable: bool) -> Array:
    xp = ops.xp
    _, mantissa = _float_layout(xp, dtype)
    return _floats(ops, key, shape, dtype, partitionable, -1.0 + 2.0 ** -(mantissa + 1), 1.0,
                   then=lambda u: xp.sign(u) * xp.log1p(-xp.abs(u)))


def laplace(key: Array, shape: Shape = (), dtype: Any = None) -> Array:
    """Standard Laplace floats (``jax.random.laplace``): ``sign(u) * log1p(-|u|)``, ``u`` uniform
    in ``[-1 + epsneg, 1)``."""
    words, shape, dtype = _float_distribution(key, shape, dtype, "laplace")
    return _laplace(words, shape, dtype, partitionable=_threefry.threefry_partitionable())


@compiled(static=("shape", "dtype", "partitionable"))
def _logistic(ops: Adapter, key: Array, shape: tuple[int, ...], dtype: Any, *, partitionable: bool) -> Array:
    xp = ops.xp
    return _floats(ops, key, shape, dtype, partitionable, float(xp.finfo(dtype).smallest_normal), 1.0,
                   then=lambda u: xp.log(u) - xp.log1p(-u))


def logistic(key: Array, shape: Shape = (), dtype: Any = None) -> Array:
    """Standard logistic floats (``jax.random.logistic``): ``log(u) - log1p(-u)``, ``u`` uniform in
    ``[tiny, 1)``."""
    words, shape, dtype = _float_distribution(key, shape, dtype, "logistic")
    return _logistic(words, shape, dtype, partitionable=_threefry.threefry_partitionable())


@compiled(static=("shape", "dtype", "partitionable"))
def _cauchy(ops: Adapter, key: Array, shape: tuple[int, ...], dtype: Any, *, partitionable: bool) -> Array:
    xp = ops.xp
    _, mantissa = _float_layout(xp, dtype)
    return _floats(ops, key, shape, dtype, partitionable, 2.0 ** -mantissa, 1.0,
                   then=lambda u: xp.tan(math.pi * (u - 0.5)))


def cauchy(key: Array, shape: Shape = (), dtype: Any = None) -> Array:
    """Standard Cauchy floats (``jax.random.cauchy``): ``tan(pi * (u - 0.5))``, ``u`` uniform in
    ``[eps, 1)``."""
    words, shape, dtype = _float_distribution(key, shape, dtype, "cauchy")
    return _cauchy(words, shape, dtype, partitionable=_threefry.threefry_partitionable())


@compiled(static=("shape", "dtype", "partitionable"))
def _lognormal(ops: Adapter, key: Array, sigma: Any, shape: tuple[int, ...], dtype: Any, *,
               partitionable: bool) -> Array:
    xp = ops.xp
    sigma = _as_dtype(xp, sigma, dtype, device_of(key))
    return xp.exp(_normal.written_once(ops, key, shape, dtype, partitionable=partitionable) * sigma)


def lognormal(key: Array, sigma: Any = 1.0, shape: Shape | None = None, dtype: Any = None) -> Array:
    """Log-normal floats (``jax.random.lognormal``): ``exp(sigma * normal(key))``.

    ``shape`` defaults to ``sigma``'s shape.
    """
    words, shape, dtype = _float_distribution(key, shape, dtype, "lognormal", sigma=sigma)
    return _lognormal(words, sigma, shape, dtype, partitionable=_threefry.threefry_partitionable())


@compiled(static=("shape", "dtype", "partitionable"))
def _pareto(ops: Adapter, key: Array, b: Any, shape: tuple[int, ...], dtype: Any, *, partitionable: bool) -> Array:
    xp = ops.xp
    b = _as_dtype(xp, b, dtype, device_of(key))
    return xp.exp(_exponential.written_once(ops, key, shape, dtype, partitionable=partitionable) / b)


def pareto(key: Array, b: Any, shape: Shape | None = None, dtype: Any = None) -> Array:
    """Pareto floats of shape parameter ``b`` (``jax.random.pareto``): ``exp(e / b)``, ``e =
    exponential(key)``.  ``shape`` defaults to ``b``'s shape."""
    words, shape, dtype = _float_distribution(key, shape, dtype, "pareto", b=b)
    return _pareto(words, b, shape, dtype, partitionable=_threefry.threefry_partitionable())


@compiled(static=("shape", "dtype", "partitionable"))
def _rayleigh(ops: Adapter, key: Array, scale: Any, shape: tuple[int, ...], dtype: Any, *,
              partitionable: bool) -> Array:
    xp = ops.xp
    scale = _as_dtype(xp, scale, dtype, device_of(key))
    return scale * xp.sqrt(xp.log(_floats(ops, key, shape, dtype, partitionable, 0.0, 1.0)) * -2.0)


def rayleigh(key: Array, scale: Any, shape: Shape | None = None, dtype: Any = None) -> Array:
    """Rayleigh floats (``jax.random.rayleigh``): ``scale * sqrt(-2 * log(u))``, ``u = uniform(key)``.
    ``shape`` defaults to ``scale``'s shape."""
    words, shape, dtype = _float_distribution(key, shape, dtype, "rayleigh", scale=scale)
    return _rayleigh(words, scale, shape, dtype, partitionable=_threefry.threefry_partitionable())


@compiled(static=("shape", "dtype", "partitionable"))
def _weibull_min(ops: Adapter, key: Array, scale: Any, concentration: Any, shape: tuple[int, ...], dtype: Any, *,
                 partitionable: bool) -> Array:
    xp = ops.xp
    device = device_of(key)
    exponent = 1.0 / concentration if is_number(concentration) else 1.0 / _as_dtype(xp, concentration, dtype, device)
    e = _exponential.written_once(ops, key, shape, dtype, partitionable=partitionable)
    return xp.pow(e, _as_dtype(xp, exponent, dtype, device)) * _as_dtype(xp, scale, dtype, device)


def weibull_min(key: Array, scale: Any, concentration: Any, shape: Shape = (), dtype: Any = None) -> Array:
    """Weibull floats (``jax.random.weibull_min``): ``(-log1p(-u)) ** (1 / concentration) * scale``."""
    words, shape, dtype = _float_distribution(key, shape, dtype, "weibull_min", scale=scale,
                                              concentration=concentration)
    return _weibull_min(words, scale, concentration, shape, dtype, partitionable=_threefry.threefry_partitionable())


@compiled(static=("shape", "dtype", "partitionable"))
def _maxwell(ops: Adapter, key: Array, shape: tuple[int, ...], dtype: Any, *, partitionable: bool) -> Array:
    xp = ops.xp
    z = _normal.written_once(ops, key, (*shape, 3), dtype, partitionable=partitionable)
    return xp.sqrt(xp.sum(z * z, axis=-1))


def maxwell(key: Array, shape: Shape = (), dtype: Any = None) -> Array:
    """Maxwell floats (``jax.random.maxwell``): the length of a standard normal 3-vector,
    ``sqrt(sum(normal(key, shape + (3,)) ** 2, axis=-1))``."""
    words, shape, dtype = _float_distribution(key, shape, dtype, "maxwell")
    return _maxwell(words, shape, dtype, partitionable=_threefry.threefry_partitionable())


@compiled(static=("shape", "dtype", "partitionable"))
def _double_sided_maxwell(ops: Adapter, key: Array, loc: Any, scale: Any, shape: tuple[int, ...], dtype: Any, *,
                          partitionable: bool) -> Array:
    xp = ops.xp
    device = device_of(key)
    maxwell_key, sign_key = _split_keys(ops, key, 2, partitionable)
    lengths = _maxwell.written_once(ops, maxwell_key, shape, dtype, partitionable=partitionable)
    signs = _rademacher.written_once(ops, sign_key, shape, dtype, partitionable=partitionable)
    return signs * lengths * _as_dtype(xp, scale, dtype, device) + _as_dtype(xp, loc, dtype, device)


def double_sided_maxwell(key: Array, loc: Any, scale: Any, shape: Shape = (), dtype: Any = None) -> Array:
    """Double-sided Maxwell floats (``jax.random.double_sided_maxwell``): ``sign * maxwell * scale
    + loc``, the length and the Rademacher sign from the two halves of ``split(key)``.

    The result's shape is ``shape + broadcast(loc.shape, scale.shape)``, and the broadcast
    shape alone when ``shape`` is empty, as jax's.
    """
    adapter, words = _key_words(key, "double_sided_maxwell")
    dtype = dtype_argument(adapter, dtype, "real floating", "float32", "double_sided_maxwell")
    parameter_shape = _parameter_shape("double_sided_maxwell", adapter, None, loc=loc, scale=scale)
    shape = shape_argument(shape, "double_sided_maxwell")
    shape = (shape or parameter_shape) + parameter_shape
    return _double_sided_maxwell(words, loc, scale, shape, dtype, partitionable=_threefry.threefry_partitionable())


@compiled(static=("shape", "dtype", "partitionable"))
def _wald(ops: Adapter, key: Array, mean: Any, shape: tuple[int, ...], dtype: Any, *, partitionable: bool) -> Array:
    xp = ops.xp
    normal_key, uniform_key = _split_keys(ops, key, 2, partitionable)
    mean = _as_dtype(xp, mean, dtype, device_of(key))
    v = _normal.written_once(ops, normal_key, shape, dtype, partitionable=partitionable)
    z = _floats(ops, uniform_key, shape, dtype, partitionable, 0.0, 1.0)
    y = v * v
    mean_squared = mean * mean
    root = xp.sqrt(4 * mean * y + mean_squared * (y * y))
    x = mean + mean_squared * y / 2 - mean / 2 * root
    return xp.where(z <= mean / (mean + x), x, mean_squared / x)


def wald(key: Array, mean: Any, shape: Shape | None = None, dtype: Any = None) -> Array:
    """Wald (inverse Gaussian) floats of ``mean`` and unit shape (``jax.random.wald``), by
    Michael, Schucany & Haas (1976): with ``y = normal(k1) ** 2`` and ``z = uniform(k2)``,
    ``x = mean + mean**2 * y / 2 - mean / 2 * sqrt(4 * mean * y + mean**2 * y**2)``, the result
    is ``x`` where ``z <= mean / (mean + x)``, else ``mean**2 / x``.  ``shape`` defaults to
    ``mean``'s shape."""
    words, shape, dtype = _float_distribution(key, shape, dtype, "wald", mean=mean)
    return _wald(words, mean, shape, dtype, partitionable=_threefry.threefry_partitionable())


@compiled(static=("shape", "dtype", "partitionable"))
def _triangular(ops: Adapter, key: Array, left: Any, mode: Any, right: Any, shape: tuple[int, ...], dtype: Any, *,
                partitionable: bool) -> Array:
    xp = ops.xp
    device = device_of(key)
    left, mode, right = (_as_dtype(xp, v, dtype, device) for v in (left, mode, right))
    u = _floats(ops, key, shape, dtype, partitionable, 0.0, 1.0)
    rising = left + xp.sqrt(u * (right - left) * (mode - left))
    falling = right - xp.sqrt((1 - u) * (right - left) * (right - mode))
    return xp.where(u < (mode - left) / (right - left), rising, falling)


def triangular(key: Array, left: Any, mode: Any, right: Any, shape: Shape | None = None, dtype: Any = None) -> Array:
    """Triangular floats on ``[left, right]`` peaking at ``mode`` (``jax.random.triangular``), by
    inversion: ``left + sqrt(u * (right - left) * (mode - left))`` where ``u < (mode - left) /
    (right - left)``, else ``right - sqrt((1 - u) * (right - left) * (right - mode))``.
    ``shape`` defaults to the parameters' broadcast shape."""
    words, shape, dtype = _float_distribution(key, shape, dtype, "triangular", left=left, mode=mode, right=right)
    return _triangular(words, left, mode, right, shape, dtype, partitionable=_threefry.threefry_partitionable())


@compiled(static=("shape", "dtype", "partitionable"))
def _rademacher(ops: Adapter, key: Array, shape: tuple[int, ...], dtype: Any, *, partitionable: bool) -> Array:
    xp = ops.xp
    heads = _floats(ops, key, shape, ops.dtype_named(ops.random_default_dtype("float32")), partitionable, 0.0, 1.0,
                    then=lambda u: u < 0.5)
    return xp.astype(2 * xp.astype(heads, dtype) - 1, dtype)


def rademacher(key: Array, shape: Shape = (), dtype: Any = None) -> Array:
    """-1 or 1 with equal probability (``jax.random.rademacher``): ``2 * bernoulli(key, 0.5) - 1``
    in ``dtype`` (default int32; int64 on jax arrays with ``jax_enable_x64``)."""
    adapter, words = _key_words(key, "rademacher")
    dtype = dtype_argument(adapter, dtype, "numeric", "int32", "rademacher")
    shape = shape_argument(shape, "rademacher")
    return _rademacher(words, shape, dtype, partitionable=_threefry.threefry_partitionable())


@compiled(static=("shape", "dtype", "partitionable"))
def _geometric(ops: Adapter, key: Array, p: Any, shape: tuple[int, ...], dtype: Any, *, partitionable: bool) -> Array:
    xp = ops.xp
    u = _floats(ops, key, shape, p.dtype, partitionable, 0.0, 1.0)
    u = xp.where(u == 0, xp.ones_like(u), u)
    return xp.astype(xp.floor(xp.log(u) / xp.log1p(-p)) + 1, dtype)


def geometric(key: Array, p: Any, shape: Shape | None = None, dtype: Any = None) -> Array:
    """Geometric integers, the trial of the first success of probability ``p``
    (``jax.random.geometric``): ``floor(log(u) / log1p(-p)) + 1`` with ``u = uniform(key)`` in
    ``p``'s floating dtype (a Python ``p``: float32, or float64 on jax arrays with
    ``jax_enable_x64``; 0 drawn counts as 1).  ``shape`` defaults to ``p``'s shape; ``dtype`` is
    an integer dtype (default int32; int64 on jax arrays with ``jax_enable_x64``)."""
    adapter, words = _key_words(key, "geometric")
    dtype = dtype_argument(adapter, dtype, "integral", "int32", "geometric")
    shape = _parameter_shape("geometric", adapter, shape, p=p)
    p = _inexact(adapter, p, adapter.dtype_named(adapter.random_default_dtype("float32")), device_of(words))
    return _geometric(words, p, shape, dtype, partitionable=_threefry.threefry_partitionable())


def choice(key: Array, a: int | Array, shape: Shape = (), replace: bool = True, p: Array | None = None, axis: int = 0,
           mode: str | None = None) -> Array:
    """A random sample of ``a``'s elements along ``axis``, or of ``range(a)`` (``jax.random.choice``).

    jax's algorithm: with ``p=None``, ``randint(key, shape, 0, n)`` indices (with replacement)
    or the first ``prod(shape)`` of ``permutation(key, n)`` (without); with probabilities ``p``
    (1-D, one per element), the ``searchsorted`` of ``cumsum(p)[-1] * (1 - uniform(key))`` in
    ``cumsum(p)`` (with replacement) or the top ``prod(shape)`` of ``gumbel(key, mode=mode) +
    log(p)`` (without).  The result has shape ``a.shape[:axis] + shape + a.shape[axis + 1:]``.
    """
    adapter, words = _key_words(key, "choice")
    xp = adapter.xp
    shape = shape_argument(shape, "choice")
    if isinstance(a, int) and not isinstance(a, bool):
        population, n = None, a
    elif hasattr(a, "shape") and adapter_of(a) is adapter and a.ndim > 0:
        if not -a.ndim <= axis < a.ndim:
            raise ValueError(f"xpnn.random.choice: axis={axis} is out of bounds for a of dimension {a.ndim}")
        axis %= a.ndim
        population, n = a, a.shape[axis]
    else:
        raise TypeError(f"xpnn.random.choice: a must be an int or an array of the key's library ({adapter.name}) "
                        f"with at least 1 dimension, got {a!r}")
    draws = math.prod(shape)
    int_dtype = adapter.dtype_named(adapter.random_default_dtype("int32"))
    out_shape = shape if population is None else (*population.shape[:axis], *shape, *population.shape[axis + 1:])
    if draws == 0:
        return xp.zeros(out_shape, dtype=int_dtype if population is None else population.dtype, device=device_of(words))
    if n <= 0:
        raise ValueError(f"xpnn.random.choice: a must be greater than 0 unless no samples are taken, got {n}")
    if not replace and draws > n:
        raise ValueError(f"xpnn.random.choice: cannot take a larger sample (size {draws}) than the population "
                         f"(size {n}) when replace=False")
    mode = _gumbel_mode(mode, "choice")
    if p is None and not replace:
        order = permutation(words, n if population is None else population, axis)
        index = (slice(None),) * (0 if population is None else axis) + (slice(0, draws),)
        return xp.reshape(order[index], out_shape)
    if p is None:
        indices = randint(words, shape, 0, n)
    else:
        _check_library("choice", adapter, "p", p)
        if not hasattr(p, "dtype") or tuple(p.shape) != (n,):
            raise ValueError(f"xpnn.random.choice: p must be None or a 1-D array of a.shape[axis] = {n} "
                             f"probabilities, got {getattr(p, 'shape', p)!r}")
        if not xp.isdtype(p.dtype, "real floating"):
            p = xp.astype(p, adapter.dtype_named(adapter.random_default_dtype("float32")))
        indices = _weighted_choice(words, p, shape, replace, mode, partitionable=_threefry.threefry_partitionable())
    if population is None:
        return indices
    return xp.reshape(xp.take(population, xp.reshape(indices, (-1,)), axis=axis), out_shape)


@compiled(static=("shape", "replace", "mode", "partitionable"))
def _weighted_choice(ops: Adapter, key: Array, p: Array, shape: tuple[int, ...], replace: bool, mode: str, *,
                     partitionable: bool) -> Array:
    xp = ops.xp
    int_dtype = ops.dtype_named(ops.random_default_dtype("int32"))
    if replace:
        cumulative = xp.cumulative_sum(p)
        targets = cumulative[-1] * (1 - _floats(ops, key, shape, p.dtype, partitionable, 0.0, 1.0))
        return xp.astype(xp.searchsorted(cumulative, targets), int_dtype)
    perturbed = _gumbel(ops, key, tuple(p.shape), p.dtype, partitionable, mode) + xp.log(p)
    order = xp.argsort(perturbed, descending=True, stable=True)[: math.prod(shape)]
    return xp.reshape(xp.astype(order, int_dtype), shape)


# -- samplers by rejection: gamma and the distributions built on it ----------------------
#
# jax draws each gamma value with its own key, split(key, n)[i], by Marsaglia & Tsang's rejection
# loop (a while loop per element under vmap).  Here every element's loop runs at once: the keys
# are an (n, 2) array, each round splits, draws and tests all of them, and an element whose draw
# was accepted keeps its values (the adapter's ``while_loop``: jax.lax.while_loop on jax).


def _cipher_each(ops: Adapter, keys: Array, x0: int, x1: int) -> tuple[Array, Array]:
    """The Threefry outputs of the counter pair ``(x0, x1)`` under each of the ``(n, 2)`` keys."""
    xp, words = ops.xp, ops.random_word_dtype
    counter = xp.zeros(keys.shape[0], dtype=words, device=device_of(keys))
    y0, y1 = _threefry.threefry2x32(xp, words, xp.stack((keys[:, 0], keys[:, 1])), counter + x0, counter + x1)
    return y0[0, :], y1[0, :]


def _split_each(ops: Adapter, keys: Array, num: int, partitionable: bool) -> list[Array]:
    """``split(key, num)`` of each of the ``(n, 2)`` keys, as ``num`` arrays of ``(n, 2)`` keys."""
    xp = ops.xp
    if partitionable:  # key j: the cipher of counter j
        return [xp.stack(_cipher_each(ops, keys, 0, j), axis=1) for j in range(num)]
    # legacy: the first 2 * num words of the legacy stream, in pairs
    outputs = [_cipher_each(ops, keys, j, num + j) for j in range(num)]
    stream = [y0 for y0, _ in outputs] + [y1 for _, y1 in outputs]
    return [xp.stack((stream[2 * j], stream[2 * j + 1]), axis=1) for j in range(num)]


def _uniform_each(ops: Adapter, keys: Array, dtype: Any, low: float, high: float, partitionable: bool) -> Array:
    """``uniform(key, (), dtype, low, high)`` of each of the ``(n, 2)`` keys: the first value of
    each key's draw (partitionable: counter 0's ``y0 ^ y1``; legacy: ``y0``, or for 64 bits the
    pair of counters ``(0, 1)``)."""
    xp = ops.xp
    drawn, _ = _float_layout(xp, dtype)
    if drawn == 64:
        words: Any = _cipher_each(ops, keys, 0, 0 if partitionable else 1)
    else:
        y0, y1 = _cipher_each(ops, keys, 0, 0)
        words = y0 ^ y1 if partitionable else y0
        words = words if drawn == 32 else words & ((1 << drawn) - 1)
    device = device_of(keys)
    return _scaled_floats(ops, _unit_floats(xp, words, dtype), xp.asarray(low, dtype=dtype, device=device),
                          xp.asarray(high, dtype=dtype, device=device))


def _normal_each(ops: Adapter, keys: Array, dtype: Any, partitionable: bool) -> Array:
    """``normal(key, (), dtype)`` of each of the ``(n, 2)`` keys."""
    _, mantissa = _float_layout(ops.xp, dtype)
    u = _uniform_each(ops, keys, dtype, -(1.0 - 2.0 ** -(mantissa + 1)), 1.0, partitionable)
    return math.sqrt(2.0) * ops.erf_inv(u)


def _gamma_each(ops: Adapter, keys: Array, alpha: Array, log_space: bool, partitionable: bool) -> Array:
    """jax's ``_gamma_one`` for every element at once: Marsaglia & Tsang (2000) for
    ``alpha' = alpha`` (``alpha >= 1``) or ``alpha + 1``: ``d = alpha' - 1/3``, ``c = 1/3 /
    sqrt(d)``; draw ``x`` normal until ``v = 1 + c x > 0``, ``u`` uniform; accept ``d v**3`` when
    ``u < 1 - 0.0331 x**4`` or ``log u < x**2 / 2 + d (1 - v**3 + log v**3)``; for ``alpha < 1``
    boosted by ``u' ** (1 / alpha)`` (in log space: ``+ log(u') / alpha``)."""
    xp = ops.xp
    dtype = alpha.dtype
    boosted = alpha >= 1
    alpha_prime = xp.where(boosted, alpha, alpha + 1)
    d = alpha_prime - 1.0 / 3.0
    c = (1.0 / 3.0) / xp.sqrt(d)
    keys, final_keys = _split_each(ops, keys, 2, partitionable)

    def rejected(X: Array, V: Array, U: Array) -> Array:
        return (U >= 1 - 0.0331 * (X * X)) & (xp.log(U) >= X * 0.5 + d * ((1 - V) + xp.log(V)))

    def positive_v(state: tuple) -> tuple:
        x_keys, x, v = state
        x_keys, draw_keys = _split_each(ops, x_keys, 2, partitionable)
        pending = v <= 0
        drawn = _normal_each(ops, draw_keys, dtype, partitionable)
        return (xp.where(pending[:, None], x_keys, state[0]), xp.where(pending, drawn, x),
                xp.where(pending, 1 + drawn * c, v))

    def attempt(state: tuple) -> tuple:
        keys, X, V, U = state
        pending = rejected(X, V, U)
        keys_next, x_keys, u_keys = _split_each(ops, keys, 3, partitionable)
        _, x, v = ops.while_loop(lambda s: xp.any(s[2] <= 0), positive_v,
                                 (x_keys, xp.zeros_like(alpha), xp.full_like(alpha, -1)))
        u = _uniform_each(ops, u_keys, dtype, 0.0, 1.0, partitionable)
        return (xp.where(pending[:, None], keys_next, keys), xp.where(pending, x * x, X),
                xp.where(pending, (v * v) * v, V), xp.where(pending, u, U))

    start = (keys, xp.zeros_like(alpha), xp.ones_like(alpha), xp.full_like(alpha, 2))
    _, _, V, _ = ops.while_loop(lambda s: xp.any(rejected(*s[1:])), attempt, start)
    u = _uniform_each(ops, final_keys, dtype, 0.0, 1.0, partitionable)
    if log_space:
        log_u = -(-xp.log1p(-u))  # jax's -exponential(key): -(-log1p(-u))
        boost = xp.where(boosted | (log_u == 0), xp.zeros_like(u), log_u * (1 / alpha))
        return (xp.log(d) + xp.log(V)) + boost
    boost = xp.where(boosted, xp.ones_like(u), xp.pow(1 - u, 1 / alpha))
    return (d * V) * boost


@compiled(static=("shape", "dtype", "log_space", "partitionable"))
def _gamma(ops: Adapter, key: Array, a: Any, shape: tuple[int, ...], dtype: Any, log_space: bool, *,
           partitionable: bool) -> Array:
    xp = ops.xp
    n = math.prod(shape)
    alpha = xp.reshape(xp.broadcast_to(_as_dtype(xp, a, dtype, device_of(key)), shape), (n,))
    if n == 0:
        return xp.reshape(alpha, shape)
    keys = xp.astype(_split.written_once(ops, key, n, partitionable=partitionable), ops.random_word_dtype)
    return xp.reshape(_gamma_each(ops, keys, alpha, log_space, partitionable), shape)


def gamma(key: Array, a: Any, shape: Shape | None = None, dtype: Any = None) -> Array:
    """Gamma floats of shape ``a`` and unit scale (``jax.random.gamma``).

    jax's algorithm: element ``i`` uses key ``split(key, n)[i]`` in Marsaglia & Tsang's rejection
    loop (``alpha < 1`` boosted through ``alpha + 1``); every element's loop runs at once here,
    so the draws are jax's.  ``shape`` defaults to ``a``'s shape.  Not differentiable with
    respect to ``a`` (jax's implicit gradient is not provided).
    """
    words, shape, dtype = _float_distribution(key, shape, dtype, "gamma", a=a)
    return _gamma(words, a, shape, dtype, False, partitionable=_threefry.threefry_partitionable())


def loggamma(key: Array, a: Any, shape: Shape | None = None, dtype: Any = None) -> Array:
    """The logs of gamma floats (``jax.random.loggamma``), computed in log space (``log(d) + log(v**3)
    + log(u) / a``), which keeps small ``a`` from underflowing to ``log(0)``."""
    words, shape, dtype = _float_distribution(key, shape, dtype, "loggamma", a=a)
    return _gamma(words, a, shape, dtype, True, partitionable=_threefry.threefry_partitionable())


@compiled(static=("shape", "dtype", "partitionable"))
def _beta(ops: Adapter, key: Array, a: Any, b: Any, shape: tuple[int, ...], dtype: Any, *,
          partitionable: bool) -> Array:
    xp = ops.xp
    key_a, key_b = _split_keys(ops, key, 2, partitionable)
    log_a = _gamma.written_once(ops, key_a, a, shape, dtype, True, partitionable=partitionable)
    log_b = _gamma.written_once(ops, key_b, b, shape, dtype, True, partitionable=partitionable)
    log_max = xp.maximum(log_a, log_b)
    scaled_a, scaled_b = xp.exp(log_a - log_max), xp.exp(log_b - log_max)
    return scaled_a / (scaled_a + scaled_b)


def beta(key: Array, a: Any, b: Any, shape: Shape | None = None, dtype: Any = None) -> Array:
    """Beta floats (``jax.random.beta``): ``G_a / (G_a + G_b)`` of the gamma draws of ``a`` and ``b``
    from the halves of ``split(key)``, computed from their logs scaled by the larger one.
    ``shape`` defaults to the broadcast shape of ``a`` and ``b``."""
    words, shape, dtype = _float_distribution(key, shape, dtype, "beta", a=a, b=b)
    return _beta(words, a, b, shape, dtype, partitionable=_threefry.threefry_partitionable())


@compiled(static=("shape", "dtype", "partitionable"))
def _dirichlet(ops: Adapter, key: Array, alpha: Array, shape: tuple[int, ...], dtype: Any, *,
               partitionable: bool) -> Array:
    xp = ops.xp
    logs = _gamma.written_once(ops, key, xp.astype(alpha, dtype), (*shape, alpha.shape[-1]), dtype, True,
                               partitionable=partitionable)
    unnormalized = xp.exp(logs - xp.max(logs, axis=-1, keepdims=True))
    return unnormalized / xp.sum(unnormalized, axis=-1, keepdims=True)


def dirichlet(key: Array, alpha: Array, shape: Shape | None = None, dtype: Any = None) -> Array:
    """Dirichlet vectors of concentrations ``alpha`` (its last axis; ``jax.random.dirichlet``):
    the softmax of ``loggamma(key, alpha)`` along it.  ``shape`` (the batch shape) defaults to
    ``alpha.shape[:-1]``."""
    adapter, words = _key_words(key, "dirichlet")
    dtype = dtype_argument(adapter, dtype, "real floating", "float32", "dirichlet")
    if not hasattr(alpha, "shape") or alpha.ndim < 1:
        raise ValueError(f"xpnn.random.dirichlet: alpha must be an array of at least 1 dimension, got {alpha!r}")
    _parameter_shape("dirichlet", adapter, tuple(alpha.shape), alpha=alpha)
    batch = tuple(alpha.shape[:-1])
    shape = batch if shape is None else shape_argument(shape, "dirichlet")
    _check_bounds("dirichlet", adapter, (*shape, alpha.shape[-1]), alpha=alpha)
    return _dirichlet(words, alpha, shape, dtype, partitionable=_threefry.threefry_partitionable())


@compiled(static=("shape", "dtype", "partitionable"))
def _chisquare(ops: Adapter, key: Array, df: Any, shape: tuple[int, ...], dtype: Any, *, partitionable: bool) -> Array:
    half = _as_dtype(ops.xp, df, dtype, device_of(key)) / 2
    return ops.xp.exp(_gamma.written_once(ops, key, half, shape, dtype, True, partitionable=partitionable)) * 2


def chisquare(key: Array, df: Any, shape: Shape | None = None, dtype: Any = None) -> Array:
    """Chi-square floats of ``df`` degrees of freedom (``jax.random.chisquare``): ``2 exp(loggamma(key,
    df / 2))``.  ``shape`` defaults to ``df``'s shape."""
    words, shape, dtype = _float_distribution(key, shape, dtype, "chisquare", df=df)
    return _chisquare(words, df, shape, dtype, partitionable=_threefry.threefry_partitionable())


@compiled(static=("shape", "dtype", "partitionable"))
def _f(ops: Adapter, key: Array, dfnum: Any, dfden: Any, shape: tuple[int, ...], dtype: Any, *,
       partitionable: bool) -> Array:
    xp = ops.xp
    device = device_of(key)
    dfnum, dfden = _as_dtype(xp, dfnum, dtype, device), _as_dtype(xp, dfden, dtype, device)
    key_den, key_num = _split_keys(ops, key, 2, partitionable)
    numerator = _chisquare.written_once(ops, key_num, dfnum, shape, dtype, partitionable=partitionable)
    denominator = _chisquare.written_once(ops, key_den, dfden, shape, dtype, partitionable=partitionable)
    return (numerator / dfnum) / (denominator / dfden)


def f(key: Array, dfnum: Any, dfden: Any, shape: Shape | None = None, dtype: Any = None) -> Array:
    """F floats (``jax.random.f``): ``(chisquare(k2, dfnum) / dfnum) / (chisquare(k1, dfden) / dfden)``
    with ``k1, k2 = split(key)``.  ``shape`` defaults to the broadcast shape of the degrees of freedom."""
    words, shape, dtype = _float_distribution(key, shape, dtype, "f", dfnum=dfnum, dfden=dfden)
    return _f(words, dfnum, dfden, shape, dtype, partitionable=_threefry.threefry_partitionable())


@compiled(static=("shape", "dtype", "partitionable"))
def _t(ops: Adapter, key: Array, df: Any, shape: tuple[int, ...], dtype: Any, *, partitionable: bool) -> Array:
    xp = ops.xp
    key_normal, key_gamma = _split_keys(ops, key, 2, partitionable)
    z = _normal.written_once(ops, key_normal, shape, dtype, partitionable=partitionable)
    half = _as_dtype(xp, df, dtype, device_of(key)) / 2
    g = _gamma.written_once(ops, key_gamma, half, shape, dtype, False, partitionable=partitionable)
    return z * xp.sqrt(half / g)


def t(key: Array, df: Any, shape: Shape | None = None, dtype: Any = None) -> Array:
    """Student's t floats of ``df`` degrees of freedom (``jax.random.t``): ``z * sqrt((df / 2) / g)``
    with ``z`` normal and ``g`` gamma of ``df / 2`` from the halves of ``split(key)``.  ``shape``
    defaults to ``df``'s shape."""
    words, shape, dtype = _float_distribution(key, shape, dtype, "t", df=df)
    return _t(words, df, shape, dtype, partitionable=_threefry.threefry_partitionable())


@compiled(static=("p", "shape", "dtype", "partitionable"))
def _generalized_normal(ops: Adapter, key: Array, p: float, shape: tuple[int, ...], dtype: Any, *,
                        partitionable: bool) -> Array:
    gamma_key, sign_key = _split_keys(ops, key, 2, partitionable)
    g = _gamma.written_once(ops, gamma_key, 1 / p, shape, dtype, False, partitionable=partitionable)
    signs = _rademacher.written_once(ops, sign_key, shape, dtype, partitionable=partitionable)
    return signs * g ** (1 / p)


def _power_argument(p: Any, function: str) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not p > 0:
        raise ValueError(f"xpnn.random.{function}: p must be a positive Python number, got {p!r}")
    return float(p)


def generalized_normal(key: Array, p: float, shape: Shape = (), dtype: Any = None) -> Array:
    """Generalized normal floats, density proportional to ``exp(-|x|**p)``
    (``jax.random.generalized_normal``): ``sign * g ** (1 / p)`` with ``g = gamma(1 / p)`` and a
    Rademacher sign from the halves of ``split(key)``."""
    adapter, words = _key_words(key, "generalized_normal")
    dtype = dtype_argument(adapter, dtype, "real floating", "float32", "generalized_normal")
    p = _power_argument(p, "generalized_normal")
    return _generalized_normal(words, p, shape_argument(shape, "generalized_normal"), dtype,
                               partitionable=_threefry.threefry_partitionable())


@compiled(static=("d", "p", "shape", "dtype", "partitionable"))
def _ball(ops: Adapter, key: Array, d: int, p: float, shape: tuple[int, ...], dtype: Any, *,
          partitionable: bool) -> Array:
    xp = ops.xp
    normal_key, exponential_key = _split_keys(ops, key, 2, partitionable)
    g = _generalized_normal.written_once(ops, normal_key, p, (*shape, d), dtype, partitionable=partitionable)
    e = _exponential.written_once(ops, exponential_key, shape, dtype, partitionable=partitionable)
    return g / ((xp.sum(xp.abs(g) ** p, axis=-1) + e) ** (1 / p))[..., None]


def ball(key: Array, d: int, p: float = 2, shape: Shape = (), dtype: Any = None) -> Array:
    """Points uniform in the ``d``-dimensional unit ``p``-norm ball (``jax.random.ball``), by
    Barthe et al. (2005): ``g / (sum(|g|**p) + e) ** (1 / p)`` with ``g`` generalized normal of
    shape ``shape + (d,)`` and ``e`` exponential, from the halves of ``split(key)``."""
    adapter, words = _key_words(key, "ball")
    dtype = dtype_argument(adapter, dtype, "real floating", "float32", "ball")
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"xpnn.random.ball: d must be a positive int, got {d!r}")
    p = _power_argument(p, "ball")
    return _ball(words, d, p, shape_argument(shape, "ball"), dtype, partitionable=_threefry.threefry_partitionable())


@compiled(static=("shape", "dtype", "partitionable"))
def _poisson(ops: Adapter, key: Array, lam: Array, shape: tuple[int, ...], dtype: Any, *, partitionable: bool) -> Array:
    xp = ops.xp
    knuth = (lam != lam) | (lam < 10)
    lam_knuth = xp.where(knuth, lam, xp.zeros_like(lam))
    lam_rejection = xp.where(knuth, xp.full_like(lam, 1e5), lam)

    def multiply_uniforms(state: tuple) -> tuple:  # Knuth: count uniforms until their product < exp(-lam)
        key, k, log_product = state
        key, subkey = _split_keys(ops, key, 2, partitionable)
        k = xp.where(log_product > -lam_knuth, k + 1, k)
        return key, k, log_product + xp.log(_floats(ops, subkey, shape, lam.dtype, partitionable, 0.0, 1.0))

    _, k, _ = ops.while_loop(lambda state: xp.any(state[2] > -lam_knuth), multiply_uniforms,
                             (key, xp.zeros(shape, dtype=dtype, device=device_of(key)), xp.zeros_like(lam)))
    small = k - 1

    log_lam = xp.log(lam_rejection)
    b = 0.931 + 2.53 * xp.sqrt(lam_rejection)
    a = -0.059 + 0.02483 * b
    inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
    v_r = 0.9277 - 3.6224 / (b - 2)

    def transformed_rejection(state: tuple) -> tuple:  # Hormann's PTRS; a later acceptance overwrites, as jax's
        key, k_out, accepted = state
        key, u_key, v_key = _split_keys(ops, key, 3, partitionable)
        u = _floats(ops, u_key, shape, lam.dtype, partitionable, 0.0, 1.0) - 0.5
        v = _floats(ops, v_key, shape, lam.dtype, partitionable, 0.0, 1.0)
        u_shifted = 0.5 - xp.abs(u)
        k = xp.floor((2 * a / u_shifted + b) * u + lam_rejection + 0.43)
        s = xp.log(v * inv_alpha / (a / (u_shifted * u_shifted) + b))
        t = -lam_rejection + k * log_lam - ops.lgamma(k + 1)
        accept = ((u_shifted >= 0.07) & (v <= v_r)) | (
            ~((k < 0) | ((u_shifted < 0.013) & (v > u_shifted))) & (s <= t))
        return key, xp.where(accept, k, k_out), accepted | accept

    _, large, _ = ops.while_loop(lambda state: xp.any(~state[2]), transformed_rejection,
                                 (key, xp.full_like(lam, -1), xp.zeros(shape, dtype=xp.bool, device=device_of(key))))
    out = xp.where(knuth, small, xp.astype(large, dtype))
    return xp.where(lam == 0, xp.zeros_like(out), out)


def poisson(key: Array, lam: Any, shape: Shape | None = None, dtype: Any = None) -> Array:
    """Poisson integers of rate ``lam`` (``jax.random.poisson``), by jax's two algorithms on
    float32 uniforms, every element at once: for ``lam < 10``, Knuth's (the number of uniforms
    whose product stays above ``exp(-lam)``), else Hormann's transformed rejection (PTRS, 1993),
    both driven by ``key``'s splits; 0 for ``lam == 0``.  ``shape`` defaults to ``lam``'s
    shape; ``dtype`` is an integer dtype (default int32; int64 on jax arrays with
    ``jax_enable_x64``)."""
    adapter, words = _key_words(key, "poisson")
    xp = adapter.xp
    dtype = dtype_argument(adapter, dtype, "integral", "int32", "poisson")
    shape = _parameter_shape("poisson", adapter, shape, lam=lam)
    lam = xp.broadcast_to(_as_dtype(xp, lam, xp.float32, device_of(words)), shape)
    return _poisson(words, lam, shape, dtype, partitionable=_threefry.threefry_partitionable())


#: log(k!) - (k + 1/2) log(k + 1) + (k + 1) - log(2 pi) / 2 for k = 0..9 (the Stirling series'
#: tail), as jax's binomial sampler tabulates it.
_STIRLING_TAIL = (0.0810614667953272, 0.0413406959554092, 0.0276779256849983, 0.02079067210376509,
                  0.0166446911898211, 0.0138761288230707, 0.0118967099458917, 0.0104112652619720,
                  0.00925546218271273, 0.00833056343336287)


def _stirling_tail(xp: Namespace, k: Array) -> Array:
    """jax's ``_stirling_approx_tail``: the table for ``k <= 9``, else ``(1/12 - (1/360 - 1/1260 /
    (k+1)**2) / (k+1)**2) / (k+1)`` evaluated, as jax evaluates it, at ``k`` clipped to [0, 9]."""
    clipped = xp.clip(k, 0.0, 9.0)
    square = (clipped + 1) * (clipped + 1)
    series = (1.0 / 12 - (1.0 / 360 - 1.0 / 1260 / square) / square) / (clipped + 1)
    table = xp.asarray(_STIRLING_TAIL, dtype=k.dtype, device=device_of(k))
    index = xp.where(clipped == clipped, xp.floor(clipped), xp.zeros_like(clipped))  # nan (n infinite): unused
    tabulated = xp.reshape(xp.take(table, xp.reshape(xp.astype(index, xp.int32), (-1,))), k.shape)
    return xp.where(k <= 9, tabulated, series)


@compiled(static=("shape", "dtype", "partitionable"))
def _binomial(ops: Adapter, key: Array, count: Array, prob: Array, shape: tuple[int, ...], dtype: Any, *,
              partitionable: bool) -> Array:
    xp = ops.xp
    below_half = prob < 0.5
    q = xp.where(below_half, prob, 1.0 - prob)
    count_invalid = (count != count) | (count < 0.0)
    count_infinite = xp.isinf(count)
    q_invalid = (q != q) | (q < 0.0)
    q = xp.where(q_invalid, xp.full_like(q, 0.01), q)
    inversion = count_invalid | (count * q <= 10.0)
    count = xp.floor(count)
    count_inversion = xp.where(inversion, count, xp.zeros_like(count))
    count_btrs = xp.where(inversion, xp.full_like(count, 1e4), count)
    q_btrs = xp.where(inversion, xp.full_like(q, 0.5), q)

    log_failure = xp.log1p(-q)

    def add_geometric(state: tuple) -> tuple:  # inversion: count geometric gaps until they pass n
        key, trials, total = state
        subkey, key = _split_keys(ops, key, 2, partitionable)
        trials = xp.where(total <= count_inversion, trials + 1, trials)
        u = _floats(ops, subkey, shape, prob.dtype, partitionable, 0.0, 1.0)
        return key, trials, total + xp.ceil(xp.log(u) / log_failure)

    _, trials, _ = ops.while_loop(lambda state: xp.any(state[2] <= count_inversion), add_geometric,
                                  (key, xp.zeros_like(q), xp.zeros_like(q)))
    small = trials - 1

    stddev = xp.sqrt(count_btrs * q_btrs * (1 - q_btrs))
    b = 1.15 + 2.53 * stddev
    a = -0.0873 + 0.0248 * b + 0.01 * q_btrs
    c = count_btrs * q_btrs + 0.5
    v_r = 0.92 - 4.2 / b
    r = q_btrs / (1 - q_btrs)
    alpha = (2.83 + 5.1 / b) * stddev
    m = xp.floor((count_btrs + 1) * q_btrs)
    bound_of_m = ((m + 0.5) * xp.log((m + 1) / (r * (count_btrs - m + 1))), _stirling_tail(xp, m),
                  _stirling_tail(xp, count_btrs - m))

    def transformed_rejection(state: tuple) -> tuple:  # Hormann's BTRS; a later acceptance overwrites
        key, k_out, accepted = state
        key, u_key, v_key = _split_keys(ops, key, 3, partitionable)
        u = _floats(ops, u_key, shape, prob.dtype, partitionable, 0.0, 1.0) - 0.5
        v = _floats(ops, v_key, shape, prob.dtype, partitionable, 0.0, 1.0)
        u_shifted = 0.5 - xp.abs(u)
        k = xp.floor((2 * a / u_shifted + b) * u + c)
        log_v = xp.log(v * alpha / (a / (u_shifted * u_shifted) + b))
        bound = (bound_of_m[0] + (count_btrs + 1) * xp.log((count_btrs - m + 1) / (count_btrs - k + 1))
                 + (k + 0.5) * xp.log(r * (count_btrs - k + 1) / (k + 1)) + bound_of_m[1] + bound_of_m[2]
                 - _stirling_tail(xp, k) - _stirling_tail(xp, count_btrs - k))
        accept = ((u_shifted >= 0.07) & (v <= v_r)) | (~((k < 0) | (k > count_btrs)) & (log_v <= bound))
        return key, xp.where(accept, k, k_out), accepted | accept

    _, large, _ = ops.while_loop(lambda state: xp.any(~state[2]), transformed_rejection,
                                 (key, xp.full_like(q, -1), xp.zeros(shape, dtype=xp.bool, device=device_of(key))))
    samples = xp.astype(xp.where(inversion, small, large), dtype)
    invalid = q_invalid | count_invalid
    samples = xp.where(invalid, xp.full_like(samples, math.nan), samples)
    samples = xp.where(count_infinite & ~invalid, xp.full_like(samples, math.inf), samples)
    kept = below_half | count_invalid | (prob != prob) | count_infinite
    return xp.where(kept, samples, xp.astype(count, dtype) - samples)


def _inexact(adapter: Adapter, value: Any, dtype: Any, device: Any) -> Array:
    """``value`` as a floating array: its own floating dtype, else ``dtype`` (a number, an integer array)."""
    xp = adapter.xp
    if hasattr(value, "dtype") and xp.isdtype(value.dtype, "real floating"):
        return value
    return _as_dtype(xp, value, dtype, device)


def binomial(key: Array, n: Any, p: Any, shape: Shape | None = None, dtype: Any = None) -> Array:
    """Binomial counts of ``n`` trials of probability ``p``, as floats (``jax.random.binomial``).

    jax's algorithms, every element at once: with ``q = min(p, 1 - p)``, inversion (summing
    geometric gaps) where ``n q <= 10``, else Hormann's transformed rejection (BTRS, 1993) with
    the Stirling tail; ``n - k`` where ``p > 1/2``; nan for a negative or nan ``n`` or ``p``,
    inf for infinite ``n``.  ``shape`` defaults to the broadcast shape of ``n`` and ``p``.
    """
    adapter, words = _key_words(key, "binomial")
    xp = adapter.xp
    dtype = dtype_argument(adapter, dtype, "real floating", "float32", "binomial")
    shape = _parameter_shape("binomial", adapter, shape, n=n, p=p)
    device = device_of(words)
    prob = _inexact(adapter, p, adapter.dtype_named(adapter.random_default_dtype("float32")), device)
    count = xp.broadcast_to(_as_dtype(xp, n, prob.dtype, device), shape)
    return _binomial(words, count, xp.broadcast_to(prob, shape), shape, dtype,
                     partitionable=_threefry.threefry_partitionable())


@compiled(static=("shape", "dtype", "partitionable"))
def _multinomial(ops: Adapter, key: Array, n: Array, p: Array, shape: tuple[int, ...], dtype: Any, *,
                 partitionable: bool) -> Array:
    xp = ops.xp
    remaining = xp.flip(xp.cumulative_sum(xp.flip(p, axis=-1), axis=-1), axis=-1)
    ratios = xp.clip(p / xp.where(remaining == 0, xp.ones_like(remaining), remaining), 0.0, 1.0)
    keys = _split.written_once(ops, key, p.shape[-1], partitionable=partitionable)
    remainder, counts = n, []
    for category in range(p.shape[-1]):
        count = _binomial.written_once(ops, keys[category, :], remainder, ratios[..., category], shape[:-1],
                                       n.dtype, partitionable=partitionable)
        remainder = remainder - count
        counts.append(count)
    return xp.astype(xp.stack(counts, axis=-1), dtype)


def multinomial(key: Array, n: Any, p: Array, *, shape: Shape | None = None, dtype: Any = None) -> Array:
    """Counts of ``n`` draws among the categories of ``p`` (its last axis; ``jax.random.multinomial``),
    as floats: category ``i`` takes ``binomial(key_i, remaining n, p_i / sum(p[i:]))`` with
    ``key_i = split(key, k)[i]``.  ``shape`` (ending with the number of categories) defaults to
    ``p``'s shape."""
    adapter, words = _key_words(key, "multinomial")
    xp = adapter.xp
    dtype = dtype_argument(adapter, dtype, "real floating", "float32", "multinomial")
    if not hasattr(p, "shape") or p.ndim < 1:
        raise ValueError(f"xpnn.random.multinomial: p must be an array of at least 1 dimension, got {p!r}")
    shape = tuple(p.shape) if shape is None else shape_argument(shape, "multinomial")
    if not shape:
        raise ValueError("xpnn.random.multinomial: shape must end with the number of categories, got ()")
    _parameter_shape("multinomial", adapter, shape, p=p)
    _parameter_shape("multinomial", adapter, shape[:-1], n=n)
    device = device_of(words)
    prob = _inexact(adapter, p, adapter.dtype_named(adapter.random_default_dtype("float32")), device)
    count = _inexact(adapter, n, prob.dtype, device)
    if count.dtype != prob.dtype:  # jax promotes the two together
        wide = xp.result_type(count.dtype, prob.dtype)
        count, prob = xp.astype(count, wide), xp.astype(prob, wide)
    return _multinomial(words, xp.broadcast_to(count, shape[:-1]), xp.broadcast_to(prob, shape), shape, dtype,
                        partitionable=_threefry.threefry_partitionable())


# -- helpers -----------------------------------------------------------------------


def _as_dtype(xp: Namespace, value: Any, dtype: Any, device: Any) -> Array:
    """A bound (Python number or array) as an array of ``dtype``; numbers are placed on ``device``."""
    return xp.astype(value, dtype) if hasattr(value, "dtype") else xp.asarray(value, dtype=dtype, device=device)


def _broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    ndim = max(len(s) for s in shapes)
    padded = [(1,) * (ndim - len(s)) + s for s in shapes]
    out = []
    for sizes in zip(*padded):
        others = {s for s in sizes if s != 1}
        if len(others) > 1:
            raise ValueError(f"shapes {shapes} do not broadcast")
        out.append(others.pop() if others else 1)
    return tuple(out)


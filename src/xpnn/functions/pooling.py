r"""Pooling of ``flax.linen``: ``pool``, ``max_pool``, ``avg_pool``, ``min_pool``, written once.

The input is channels-last, ``(*batch, *spatial, features)``, with one window
size per spatial dimension (``window_shape`` is a tuple: its length is the
number of spatial dimensions); an input without a batch dimension is taken,
and several batch dimensions too.  ``strides`` default to 1; ``padding`` is
``"VALID"`` (the default), ``"SAME"`` (lax's: the extra element of padding goes
last) or one ``(low, high)`` pair per spatial dimension.  The windows are
reduced by the adapter's ``reduce_window`` primitive.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from xpnn._checks import floating, numeric
from xpnn._dispatch import public
from xpnn._errors import refuse
from xpnn._types import Array
from xpnn._windows import int_tuple, is_int, lax_padding, same_pads
from xpnn.backends import Adapter

__all__ = ["pool", "max_pool", "avg_pool", "min_pool"]

_STATIC = ("window_shape", "strides", "padding")


def _window(ops: Adapter, inputs: Array, window_shape: Any, strides: Any, padding: Any):
    """The whole-array windows of a pooling: ``(x, dims, strides, pads, unbatched)``, ``x`` with
    a batch dimension added when it had none."""
    if not isinstance(window_shape, Sequence) or isinstance(window_shape, str):
        raise refuse(TypeError, f"window_shape must be a tuple of ints, one per spatial dimension, got "
                                f"{window_shape!r} (for one spatial dimension: ({window_shape!r},))")
    rank = len(window_shape)
    window = int_tuple(window_shape, rank, "window_shape")
    steps = (1,) * rank if strides is None else int_tuple(strides, rank, "strides")
    if inputs.ndim < rank + 1:
        raise refuse(ValueError, f"inputs must have at least {rank + 1} dims (spatial dims and features) for a "
                                 f"window of {rank} dims, got shape {tuple(inputs.shape)}")
    unbatched = inputs.ndim == rank + 1
    x = ops.xp.expand_dims(inputs, axis=0) if unbatched else inputs
    batch = x.ndim - rank - 1
    named = lax_padding(padding) if isinstance(padding, str) else None  # (an array of pairs has no truth value)
    if named in ("SAME", "SAME_LOWER"):
        pads = same_pads(x.shape[batch:batch + rank], window, steps, lower=named == "SAME_LOWER")
    elif named == "VALID":
        pads = ((0, 0),) * rank
    elif (isinstance(padding, Sequence) and not isinstance(padding, str) and len(padding) == rank
          and all(isinstance(p, Sequence) and len(p) == 2 and all(map(is_int, p)) for p in padding)):
        pads = tuple((low, high) for low, high in padding)
    else:
        raise refuse(ValueError, f"padding must be 'SAME', 'VALID', 'SAME_LOWER' (in any case) or {rank} (low, high) "
                                 f"pairs, got {padding!r}")
    return (x, (1,) * batch + window + (1,), (1,) * batch + steps + (1,),
            ((0, 0),) * batch + pads + ((0, 0),), unbatched)


def _pooled(ops: Adapter, inputs: Array, init: Any, reduction: str | Callable[[Array, Array], Array],
            window_shape: Any, strides: Any, padding: Any) -> Array:
    x, dims, steps, pads, unbatched = _window(ops, inputs, window_shape, strides, padding)
    y = ops.reduce_window(x, init, reduction, dims, steps, pads)
    return y[0, ...] if unbatched else y


def _lowest(ops: Adapter, dtype: Any, sign: float) -> float | int:
    """-inf (``sign`` -1) or +inf for floats; the integer dtype's minimum or maximum."""
    xp = ops.xp
    if xp.isdtype(dtype, "real floating"):
        return sign * math.inf
    info = xp.iinfo(dtype)
    return info.min if sign < 0 else info.max


@public(static=("init", "reduce_fn", *_STATIC), probes=(), reference="flax.linen.pool")
def pool(ops: Adapter, inputs: Array, init: Any, reduce_fn: Callable[[Array, Array], Array], window_shape: Sequence[int],
         strides: Sequence[int] | None = None, padding: str | Sequence[tuple[int, int]] = "VALID") -> Array:
    r"""Every window of ``inputs`` reduced by ``reduce_fn`` (a binary elementwise function, such as
    ``xp.maximum``), starting from ``init``: ``flax.linen.pool``.  Padding takes the value ``init``."""
    return _pooled(ops, inputs, init, reduce_fn, window_shape, strides, padding)


@public(static=_STATIC, probes=(), reference="flax.linen.max_pool")
def max_pool(ops: Adapter, inputs: Array, window_shape: Sequence[int], strides: Sequence[int] | None = None,
             padding: str | Sequence[tuple[int, int]] = "VALID") -> Array:
    r"""Max pooling, y = the max of x over each window: ``flax.linen.max_pool``.

    Padding is ``-inf`` (the dtype's minimum for integers, which are kept).  Booleans are
    kept too, as flax keeps them: a window's max is whether any of it is True.
    """
    return _extreme_pool(ops, inputs, -1.0, "max", window_shape, strides, padding)


@public(static=_STATIC, probes=(), reference="flax.linen.pooling.min_pool")
def min_pool(ops: Adapter, inputs: Array, window_shape: Sequence[int], strides: Sequence[int] | None = None,
             padding: str | Sequence[tuple[int, int]] = "VALID") -> Array:
    r"""Min pooling, y = the min of x over each window: ``flax.linen.pooling.min_pool``.

    Padding is ``+inf`` (the dtype's maximum for integers, which are kept).  Booleans are
    kept: a window's min is whether all of it is True.
    """
    return _extreme_pool(ops, inputs, 1.0, "min", window_shape, strides, padding)


def _extreme_pool(ops: Adapter, inputs: Array, sign: float, reduction: str, window_shape: Any, strides: Any,
                  padding: Any) -> Array:
    """max_pool (``sign`` -1, padding the lowest value) or min_pool (+1, the highest); booleans
    pooled as 0/1 bytes (reduce_window's kernels take numbers)."""
    xp = ops.xp
    boolean = getattr(inputs, "dtype", None) == xp.bool
    inputs = numeric(xp, xp.astype(inputs, xp.uint8) if boolean else inputs)
    y = _pooled(ops, inputs, _lowest(ops, inputs.dtype, sign), reduction, window_shape, strides, padding)
    return xp.astype(y, xp.bool) if boolean else y


@public(static=(*_STATIC, "count_include_pad"), probes=(), reference="flax.linen.avg_pool")
def avg_pool(ops: Adapter, inputs: Array, window_shape: Sequence[int], strides: Sequence[int] | None = None,
             padding: str | Sequence[tuple[int, int]] = "VALID", count_include_pad: bool = True) -> Array:
    r"""Average pooling, y = the sum of x over each window / n: ``flax.linen.avg_pool``.

    ``n`` is the window's size (``count_include_pad=True``, the default) or the
    number of its elements inside the input.  Integers are averaged in the
    library's default float.
    """
    inputs = floating(ops, inputs)
    total = _pooled(ops, inputs, 0.0, "sum", window_shape, strides, padding)
    if count_include_pad:
        return total / math.prod(window_shape)
    xp = ops.xp
    rank = len(window_shape)
    ones = xp.ones(tuple(inputs.shape[-rank - 1:-1]) + (1,), dtype=inputs.dtype, device=ops.device_of(inputs))
    return total / _pooled(ops, ones, 0.0, "sum", window_shape, strides, padding)

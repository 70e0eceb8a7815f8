"""Input checks shared by the written-once functions: dtypes and axes.

Every error names the function, the argument, what was expected and what was
given.
"""
from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import array_api_compat

from xpnn._dispatch import adapter_of

Array = Any
Namespace = Any


def floating(xp: Namespace, x: Array, function: str) -> Array:
    """``x`` if it is real floating; integers and booleans become the library's default float.

    This is jax.nn's promotion (``relu6(int32) -> float32``): the default float
    is float32 on torch and jax, float64 on NumPy.
    """
    if xp.isdtype(x.dtype, "real floating"):
        return x
    if xp.isdtype(x.dtype, ("integral", "bool")):
        return xp.astype(x, adapter_of(x).default_float(array_api_compat.device(x)))
    raise TypeError(f"{function}: x must have a real dtype, got {x.dtype}")


def widened(x: Array) -> Array:
    """``x`` (floating) in float64 when it is a narrower float and its library holds float64 on
    its device (not jax without x64): a formula that amplifies rounding is then computed wide
    and rounded once at the end.  ``x`` itself otherwise."""
    adapter = adapter_of(x)
    xp = adapter.xp
    if x.dtype == xp.float64 or not adapter.holds_dtype(xp.float64, adapter.device_of(x)):
        return x
    return xp.astype(x, xp.float64)


def rounded_to(xp: Namespace, y: Array, dtype: Any) -> Array:
    """``y`` (computed wide by :func:`widened`) rounded to ``dtype``; ``y`` when it has it."""
    return y if y.dtype == dtype else xp.astype(y, dtype)


def require_floating(xp: Namespace, x: Array, function: str, argument: str = "x") -> Array:
    """``x`` unchanged; ``TypeError`` unless its dtype is real floating (jax.nn's rule for sigmoid, silu, glu)."""
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(
            f"{function}: {argument} must have a floating-point dtype, got {x.dtype}"
        )
    return x


def numeric(xp: Namespace, x: Array, function: str) -> Array:
    """``x`` unchanged; ``TypeError`` for booleans and complex numbers (relu, hard_tanh keep integers)."""
    if not xp.isdtype(x.dtype, ("integral", "real floating")):
        raise TypeError(f"{function}: x must have an integer or floating dtype, got {x.dtype}")
    return x


def _as_int(value: Any) -> int | None:
    """``value`` as a Python int when it is an integer (a NumPy or 0-d array integer too, as jax
    takes them), else None (floats, bools, strings...)."""
    if isinstance(value, bool) or getattr(value, "dtype", None) == bool:
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def normalize_axis(axis: int, ndim: int, function: str, argument: str = "axis") -> int:
    """``axis`` as a non-negative int; ``ValueError`` when out of range for ``ndim``."""
    index = _as_int(axis)
    if index is None:
        raise TypeError(f"{function}: {argument} must be an int, got {type(axis).__name__} {axis!r}")
    axis = index
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"{function}: {argument}={axis} is out of bounds for an array of dimension {ndim}"
        )
    return axis % ndim


def normalize_axes(
    axis: int | Sequence[int] | None, ndim: int, function: str, argument: str = "axis"
) -> tuple[int, ...]:
    """``axis`` (int, sequence of ints or None for all) as a sorted tuple of non-negative ints."""
    if axis is None:
        return tuple(range(ndim))
    if _as_int(axis) is not None:
        axes = (axis,)
    else:
        try:
            axes = tuple(axis)
        except TypeError:
            raise TypeError(f"{function}: {argument} must be an int, a tuple of ints or None, got "
                            f"{type(axis).__name__} {axis!r}") from None
    normalized = tuple(sorted(normalize_axis(a, ndim, function, argument) for a in axes))
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"{function}: {argument}={axis!r} repeats an axis")
    return normalized

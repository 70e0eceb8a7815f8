"""Argument checks shared by the written-once code: dtypes, shapes, axes, libraries.

Every error names the argument, what was expected and what was given; the
function is named by the dispatch (inside a public function) or by ``where``
/ ``function`` (layers, initializers, xpnn.random).
"""
from __future__ import annotations

import operator
import types
from collections.abc import Sequence
from typing import Any

import array_api_compat

from xpnn._dispatch import adapter_of
from xpnn._errors import refuse
from xpnn._types import Array, Namespace
from xpnn.backends import Adapter, dtype_name


def floating(ops: Adapter, x: Array, where: str | None = None) -> Array:
    """``x`` if it is real floating; integers and booleans become the library's default float.

    This is jax.nn's promotion (``relu6(int32) -> float32``): the default float
    is float32 on torch and jax, float64 on NumPy.
    """
    xp = ops.xp
    if xp.isdtype(x.dtype, "real floating"):
        return x
    if xp.isdtype(x.dtype, ("integral", "bool")):
        return xp.astype(x, ops.default_float(ops.device_of(x)))
    raise refuse(TypeError, f"x must have a real dtype, got {x.dtype}", where)


def widened(ops: Adapter, x: Array) -> Array:
    """``x`` (floating) in float64 when it is a narrower float and its library holds float64 on
    its device (not jax without x64): a formula that amplifies rounding is then computed wide
    and rounded once at the end.  ``x`` itself otherwise."""
    xp = ops.xp
    if x.dtype == xp.float64 or not ops.holds_dtype(xp.float64, ops.device_of(x)):
        return x
    return xp.astype(x, xp.float64)


def rounded_to(xp: Namespace, y: Array, dtype: Any) -> Array:
    """``y`` (computed wide by ``widened``) rounded to ``dtype``; ``y`` when it has it."""
    return y if y.dtype == dtype else xp.astype(y, dtype)


def require_floating(xp: Namespace, x: Array, argument: str = "x", where: str | None = None) -> Array:
    """``x`` unchanged; ``TypeError`` unless its dtype is real floating (jax.nn's rule for sigmoid, silu, glu)."""
    if not xp.isdtype(x.dtype, "real floating"):
        raise refuse(TypeError, f"{argument} must have a floating-point dtype, got {x.dtype}", where)
    return x


def numeric(xp: Namespace, x: Array, where: str | None = None) -> Array:
    """``x`` unchanged; ``TypeError`` for booleans and complex numbers (relu, hard_tanh keep integers)."""
    if not xp.isdtype(x.dtype, ("integral", "real floating")):
        raise refuse(TypeError, f"x must have an integer or floating dtype, got {x.dtype}", where)
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


def normalize_axis(axis: int, ndim: int, argument: str = "axis", where: str | None = None) -> int:
    """``axis`` as a non-negative int; ``ValueError`` when out of range for ``ndim``."""
    index = _as_int(axis)
    if index is None:
        raise refuse(TypeError, f"{argument} must be an int, got {type(axis).__name__} {axis!r}", where)
    axis = index
    if not -ndim <= axis < ndim:
        raise refuse(ValueError, f"{argument}={axis} is out of bounds for an array of dimension {ndim}", where)
    return axis % ndim


def normalize_axes(
    axis: int | Sequence[int] | None, ndim: int, argument: str = "axis", where: str | None = None
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
            raise refuse(TypeError, f"{argument} must be an int, a tuple of ints or None, got "
                                    f"{type(axis).__name__} {axis!r}", where) from None
    normalized = tuple(sorted(normalize_axis(a, ndim, argument, where) for a in axes))
    if len(set(normalized)) != len(normalized):
        raise refuse(ValueError, f"{argument}={axis!r} repeats an axis", where)
    return normalized


def library_of(like: Any, function: str = "xpnn.random.key") -> tuple[Adapter, Any]:
    """The adapter and device of ``like``: an array, a namespace module, or None for NumPy."""
    if like is None:
        return adapter_of(), None
    if isinstance(like, types.ModuleType):
        if not hasattr(like, "asarray"):
            raise TypeError(f"{function}: like must be an array or an array namespace, got module {like.__name__}")
        like = like.asarray(0)
    elif not array_api_compat.is_array_api_obj(like):
        hint = f"; import {like} and pass the module" if isinstance(like, str) else ""
        raise TypeError(f"{function}: like must be an array or an array namespace module (numpy, torch, "
                        f"jax.numpy...), got {type(like).__name__} {like!r}{hint}")
    adapter = adapter_of(like)
    return adapter, adapter.device_of(like)


def shape_argument(shape: Any, function: str, argument: str = "shape") -> tuple[int, ...]:
    """``shape`` as a tuple of non-negative Python ints, or ValueError/TypeError naming it."""
    items = (shape,) if isinstance(shape, int) else shape
    try:
        items = tuple(items)
    except TypeError:
        raise TypeError(f"{function}: {argument} must be a tuple of ints, got {shape!r}") from None
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int):
            raise TypeError(f"{function}: {argument} must be a tuple of ints, got {shape!r}")
        if item < 0:
            raise ValueError(f"{function}: {argument} must be non-negative, got {shape!r}")
    return items


def dtype_argument(adapter: Adapter, dtype: Any, kind: str, default: str, function: str | None = None) -> Any:
    """``dtype`` (a dtype of any library, or its name) as a dtype of ``adapter``'s library.

    ``kind`` is an Array API dtype kind the dtype must have.  ``dtype=None`` takes ``default``
    (a 32-bit dtype's name) as the library configures it: on jax arrays with ``jax_enable_x64``
    on, its 64-bit twin, as jax.random and jax.nn.initializers do; float32, int32 or uint32 on
    every other library (NumPy's own default float is float64, but one seed must give the same
    numbers on every backend).
    """
    name = adapter.random_default_dtype(default) if dtype is None else dtype_name(dtype)
    resolved = adapter.dtype_named(name)
    if resolved is None or not _is_dtype(adapter.xp, resolved):
        raise refuse(ValueError, f"dtype must be a {kind} dtype of {adapter.name}, got {dtype!r}", function)
    if not adapter.xp.isdtype(resolved, kind):
        hint = (" (complex parameters are not made yet: complex inputs are taken, and promote against "
                "real parameters)") if "complex" in name and kind == "real floating" else ""
        raise refuse(ValueError, f"dtype must be a {kind} dtype, got {name}{hint}", function)
    return resolved


def _is_dtype(xp: Namespace, candidate: Any) -> bool:
    try:
        xp.isdtype(candidate, "numeric")
    except (TypeError, ValueError, AttributeError):
        return False
    return True


def device_of(x: Array) -> Any:
    """Where new arrays that meet ``x`` are made (its adapter's ``device_of``): ``x``'s device, or
    for a jax array sharded over a mesh, the mesh replicated."""
    return adapter_of(x).device_of(x)

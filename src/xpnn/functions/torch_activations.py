r"""The activations of ``torch.nn`` that ``jax.nn`` lacks, with torch's names and defaults.

``hard_shrink``, ``soft_shrink``, ``tanh_shrink``, ``threshold``, ``rrelu``,
``prelu`` and ``softmin`` follow ``torch.nn.functional`` (torch 2.13): the
same values, NaN propagation and boundary conventions, written once.
"""
from __future__ import annotations

import math
from typing import Any

import array_api_compat

from xpnn._checks import device_of, floating, numeric, require_floating, rounded_to, widened
from xpnn._dispatch import Argument, as_array, public
from xpnn._errors import refuse
from xpnn._types import Array
from xpnn.backends import Adapter
from xpnn.functions.reductions import Axis, _where_checked_before_dispatch, softmax

__all__ = ["hard_shrink", "soft_shrink", "tanh_shrink", "threshold", "rrelu", "prelu", "softmin"]


def _check_lambd(lambd: Any) -> None:
    if isinstance(lambd, (int, float)) and not lambd >= 0:
        raise refuse(ValueError, f"lambd must be >= 0, got {lambd}")


_LAMBD = Argument(0, "lambd", 0.5)


def _lambd_checked_before_dispatch(ops: Adapter, x: Array, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """The check of a Python-number ``lambd`` made before any fast path runs (on jax the
    compiled definition gets ``lambd`` traced, where no Python check can run)."""
    _check_lambd(_LAMBD.get(args, kwargs))
    return args, kwargs


_KEY = Argument(None, "key")


def _key_checked_before_dispatch(ops: Adapter, x: Array, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    key = _KEY.get(args, kwargs)
    if key is not None and not array_api_compat.is_array_api_obj(key):
        raise refuse(TypeError, f"key must be None or a key array from xpnn.random.key, "
                                f"got {type(key).__name__} {key!r}")
    return args, kwargs


@public(validate=_lambd_checked_before_dispatch, traits=("elementwise",), reference="torch.nn.functional.hardshrink")
def hard_shrink(ops: Adapter, x: Array, lambd: float = 0.5) -> Array:
    r"""Hard shrinkage: x if |x| > lambda else 0 (so +-lambda give 0).

    Matches ``torch.nn.functional.hardshrink``; NaN propagates.
    """
    xp = ops.xp
    x = require_floating(xp, x)
    _check_lambd(lambd)
    return xp.where((x >= -lambd) & (x <= lambd), 0.0, x)


@public(validate=_lambd_checked_before_dispatch, traits=("elementwise",), reference="torch.nn.functional.softshrink")
def soft_shrink(ops: Adapter, x: Array, lambd: float = 0.5) -> Array:
    r"""Soft shrinkage: x - lambda above lambda, x + lambda below -lambda, else 0.

    Matches ``torch.nn.functional.softshrink`` (``lambd`` must be >= 0; NaN
    propagates).  The zeros are +0.0, as torch's vectorised kernel gives them
    (its scalar loop, which takes the few elements past the last full vector,
    keeps the sign of ``x``).
    """
    xp = ops.xp
    x = require_floating(xp, x)
    _check_lambd(lambd)
    return xp.where(x > lambd, x - lambd, xp.where(x < -lambd, x + lambd, xp.where(x != x, x, 0.0)))


#: Below this |x|, tanh_shrink uses the continued fraction; above, x - tanh(x) loses at most
#: one bit (x / (x - tanh x) < 2) and is within 2 ulp in float64 (XLA's tanh is 7 ulp off at 1).
_TANH_SHRINK_FRACTION_LIMIT = 2.0
#: Levels of the continued fraction for a float64 result: 10 reach float64's precision to
#: |x| = 2.25 (9 leave 8 ulp there); 6 reach float32's (within 0.51 ulp computed in float64).
_TANH_SHRINK_FRACTION_DEPTH = {"float64": 10, "narrower": 6}


@public(traits=("elementwise",), reference="torch.nn.functional.tanhshrink")
def tanh_shrink(ops: Adapter, x: Array) -> Array:
    r"""Tanh shrinkage, x - tanh(x). Matches ``torch.nn.functional.tanhshrink``
    (integers are promoted to the default float, as torch promotes them).

    Stable form: ``x - tanh(x)`` cancels for small ``|x|`` (torch's is 1.7e7 ulp off
    near 0 in float32, and thousands of ulp below |x| = 1 in float64), so below
    ``|x| = 2`` it is x^3 / (d + x^2) with Lambert's continued fraction
    d = 3 + x^2/(5 + x^2/(7 + ...)) (10 levels for float64, 6 below) (from tanh(x) = x / (1 + x^2/d)), whose terms
    are all positive: within 2 ulp of the exact value in float64.  Narrower floats are
    computed in float64 where the library has it and rounded once.  Zeros are +0.0, as torch's.
    """
    xp = ops.xp
    x = floating(ops, x)
    wide = widened(ops, x)
    small = xp.abs(wide) < _TANH_SHRINK_FRACTION_LIMIT
    s = xp.where(small, wide, 0.0)
    s2 = s * s
    depth = _TANH_SHRINK_FRACTION_DEPTH["float64" if x.dtype == xp.float64 else "narrower"]
    d = 2.0 * depth + 3.0
    for k in range(depth, 0, -1):
        d = (2.0 * k + 1.0) + s2 / d
    out = rounded_to(xp, xp.where(small, s * s2 / (d + s2), wide - xp.tanh(wide)), x.dtype)
    return xp.where(out == 0, 0.0, out)  # +0.0 (XLA folds away an added +0.0)


_THRESHOLD, _VALUE = Argument(0, "threshold"), Argument(1, "value")


def _bounds_cut_for_integers(ops: Adapter, x: Array, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """For an integer ``x``, Python-number ``threshold`` and ``value`` as torch converts them:
    cut toward zero, and within the dtype's range, else a ValueError.  Done before any fast
    path runs (jax's compiled definition gets them traced, as floats)."""
    dtype = getattr(x, "dtype", None)
    if dtype is None or not ops.xp.isdtype(dtype, "integral"):
        return args, kwargs
    limits = ops.xp.iinfo(dtype)
    for argument in (_THRESHOLD, _VALUE):
        bound = argument.get(args, kwargs)
        if isinstance(bound, bool) or not isinstance(bound, (int, float)):
            continue  # arrays are left to the library; a missing one to the definition's TypeError
        if not (math.isfinite(bound) and limits.min <= math.trunc(bound) <= limits.max):
            raise refuse(ValueError, f"{argument.name} {bound!r} cannot be converted to {dtype} without overflow "
                                     f"(range {limits.min} to {limits.max}), as torch refuses it")
        args, kwargs = argument.replace(args, kwargs, math.trunc(bound))
    return args, kwargs


@public(probes=(((0.5, -2.0), {}),), traits=("elementwise",), validate=_bounds_cut_for_integers,
        reference="torch.nn.functional.threshold")
def threshold(ops: Adapter, x: Array, threshold: float, value: float) -> Array:
    r"""Threshold: x if x > threshold else ``value``.

    Matches ``torch.nn.functional.threshold`` (no defaults; NaN passes
    through).  Integer dtypes are kept, as torch keeps them: a float ``threshold`` and
    ``value`` are cut toward zero first (torch's conversion), and must then fit the dtype.
    """
    xp = ops.xp
    x = numeric(xp, x)
    return xp.where(x <= threshold, value, x)


@public(static=("lower", "upper"), validate=_key_checked_before_dispatch, reference="torch.nn.functional.rrelu")
def rrelu(
    ops: Adapter, x: Array, lower: float = 1.0 / 8.0, upper: float = 1.0 / 3.0, *, key: Any = None
) -> Array:
    r"""Randomized leaky ReLU: negative inputs are scaled by a slope in ``[lower, upper]``.

    Without ``key`` this is torch's evaluation formula, a leaky ReLU with slope
    (lower + upper) / 2 (``F.rrelu(training=False)``).
    Training mode (``F.rrelu(training=True)``): with a ``key`` from
    ``xpnn.random`` (in ``x``'s library), every element gets its own slope
    a ~ U(lower, upper), drawn as
    ``xpnn.random.uniform(key, x.shape, x.dtype, lower, upper)``, and the
    output is x if x > 0 else a x (so the gradient at 0 is the
    slope, as in torch).  The slopes are the same on every backend for the same key (not
    torch's generator's).
    """
    xp = ops.xp
    x = require_floating(xp, x)
    if not lower <= upper:
        raise refuse(ValueError, f"lower must be <= upper, got lower={lower}, upper={upper}")
    if key is None:
        return xp.where(x > 0, x, x * ((lower + upper) / 2.0))
    from xpnn import random

    slopes = random.uniform(key, tuple(x.shape), x.dtype, lower, upper)
    return xp.where(x > 0, x, x * slopes)


def _probe_slope(probe: Array) -> Array:
    """A slope of 0.25 in the probe's library, dtype and device: prelu's probe weight."""
    return array_api_compat.array_namespace(probe).asarray(0.25, dtype=probe.dtype, device=device_of(probe))


@public(probes=(((), {"weight": _probe_slope}),), reference="torch.nn.functional.prelu")
def prelu(ops: Adapter, x: Array, weight: Array) -> Array:
    r"""Parametric ReLU with torch's layout: x if x > 0 else w x.

    Matches ``torch.nn.functional.prelu``: ``weight`` holds one slope, or one
    per channel along axis 1 of ``x`` (an input of fewer than 2 dimensions has
    one channel).  The gradient at 0 is ``w``, as in torch.
    """
    xp = ops.xp
    x = require_floating(xp, x)
    weight = as_array(xp, weight, like=x)
    count = math.prod(weight.shape)
    if weight.ndim > 1:
        raise refuse(ValueError, f"weight must be 0-d or 1-d, got shape {tuple(weight.shape)}")
    if count != 1:
        channels = x.shape[1] if x.ndim >= 2 else 1
        if channels != count:
            raise refuse(ValueError, f"weight has {count} slopes but x has {channels} channels along axis 1 "
                                     f"(x shape {tuple(x.shape)})")
        weight = xp.reshape(weight, (count,) + (1,) * (x.ndim - 2))
    else:
        weight = xp.reshape(weight, ())
    return xp.where(x > 0, x, weight * x)


@public(static=("axis",), validate=_where_checked_before_dispatch(1), traits=("rowwise",), reference="torch.nn.functional.softmin")
def softmin(ops: Adapter, x: Array, axis: Axis = -1, where: Array | None = None) -> Array:
    r"""Softmin, softmax(-x). Matches ``torch.nn.functional.softmin`` along ``axis``."""
    x = floating(ops, x)
    return softmax.written_once(ops, -x, axis=axis, where=where)

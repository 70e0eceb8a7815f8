r"""Axis-wise functions of ``jax.nn``: softmax, log_softmax, logsumexp, logmeanexp, standardize.

``axis`` is an int, a tuple of ints or ``None`` (all axes).  ``where`` is a
boolean mask broadcasting against the input: masked elements take no part in
the reduction.  Every function subtracts the running maximum first, so nothing
overflows.  Semantics, including edge cases (all-masked rows, ``-inf`` rows,
``+inf`` entries), follow jax 0.10.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import array_api_compat

from xpnn._checks import device_of, floating, normalize_axes
from xpnn._dispatch import Argument, as_array, public
from xpnn._errors import refuse
from xpnn._types import Array
from xpnn.backends import Adapter, dtype_name

Axis = int | Sequence[int] | None

__all__ = ["softmax", "log_softmax", "logsumexp", "logmeanexp", "standardize"]


def _prepare(ops: Adapter, x: Array, where: Array | None, axis: Axis):
    """Namespace, floating ``x``, boolean ``where`` and the reduced axes."""
    xp = ops.xp
    x = floating(ops, x)
    if where is not None:
        where = as_array(xp, where, like=x)
        if not xp.isdtype(where.dtype, "bool"):
            raise refuse(TypeError, f"where must be a boolean array, got dtype {where.dtype}")
    if x.ndim == 0 and axis is not None and axis != ():
        raise refuse(ValueError, f"axis={axis!r} is out of bounds for a 0-d array")
    return xp, x, where, normalize_axes(axis, x.ndim)


def _where_checked_before_dispatch(position: int):
    """A ``validate`` hook of ``public``: ``where`` (at ``position`` after ``x``) as an array
    of ``x``'s library (lists are taken), refused unless boolean, before any fast path sees it
    (jax.nn's own errors would name jnp.max)."""
    where = Argument(position, "where")

    def validate(ops: Adapter, x: Array, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        value = where.get(args, kwargs)
        if value is None:
            return args, kwargs
        if isinstance(value, (list, bool)):
            value = ops.xp.asarray(value, device=device_of(x))
            args, kwargs = where.replace(args, kwargs, value)
        if not array_api_compat.is_array_api_obj(value):
            raise refuse(TypeError, f"where must be a boolean array, got {type(value).__name__}")
        if dtype_name(value.dtype) != "bool":
            raise refuse(TypeError, f"where must be a boolean array, got dtype {value.dtype}")
        return args, kwargs

    return validate


def _masked_max(xp, x: Array, where: Array | None, axes: tuple[int, ...]) -> Array:
    """``max(x, axes, keepdims=True)`` over unmasked elements; ``-inf`` where nothing is left."""
    if where is not None:
        x = xp.where(where, x, -math.inf)
    if math.prod(x.shape) == 0:
        shape = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
        return xp.full(shape, -math.inf, dtype=x.dtype, device=device_of(x))
    return xp.max(x, axis=axes, keepdims=True)


def _masked_sum(xp, x: Array, where: Array | None, axes: tuple[int, ...], keepdims: bool = True) -> Array:
    if where is not None:
        x = xp.where(where, x, 0.0)
    return xp.sum(x, axis=axes, keepdims=keepdims)


@public(static=("axis",), validate=_where_checked_before_dispatch(1), traits=("rowwise",))
def softmax(ops: Adapter, x: Array, axis: Axis = -1, where: Array | None = None) -> Array:
    r"""Softmax, exp(x_i - m) / sum over j exp(x_j - m) with m = max over j x_j.

    Matches ``jax.nn.softmax``: masked positions (``where`` False) are 0, a
    row with every position masked is all 0, a row of ``-inf`` or with a
    ``+inf`` is NaN.  Integers are promoted to the default float.
    """
    xp, x, where, axes = _prepare(ops, x, where, axis)
    x_max = ops.stop_gradient(_masked_max(xp, x, where, axes))
    x_safe = x if where is None else xp.where(where, x, -math.inf)
    unnormalized = xp.exp(x_safe - x_max)
    result = unnormalized / _masked_sum(xp, unnormalized, where, axes)
    if where is not None:
        result = xp.where(where, result, 0.0)
    return result


@public(static=("axis",), validate=_where_checked_before_dispatch(1), traits=("rowwise",))
def log_softmax(ops: Adapter, x: Array, axis: Axis = -1, where: Array | None = None) -> Array:
    r"""Log-softmax, x_i - m - log sum over j exp(x_j - m).

    Matches ``jax.nn.log_softmax``: masked positions are ``-inf``.
    """
    xp, x, where, axes = _prepare(ops, x, where, axis)
    x_max = _masked_max(xp, x, where, axes)
    x_safe = x if where is None else xp.where(where, x, -math.inf)
    shifted = x_safe - ops.stop_gradient(x_max)
    result = shifted - xp.log(_masked_sum(xp, xp.exp(shifted), where, axes))
    if where is not None:
        result = xp.where(where, result, -math.inf)
    return result


@public(static=("axis", "keepdims", "return_sign"), probes=(((), {}), ((), {"axis": -1})),
        validate=_where_checked_before_dispatch(4))
def logsumexp(
    ops: Adapter, a: Array,
    axis: Axis = None,
    b: Array | None = None,
    keepdims: bool = False,
    return_sign: bool = False,
    where: Array | None = None,
) -> Array | tuple[Array, Array]:
    r"""Log-sum-exp, log sum over i b_i exp(a_i), computed as m + log sum over i b_i exp(a_i - m).

    Matches ``jax.nn.logsumexp`` (``jax.scipy.special.logsumexp``): ``b``
    scales the terms (a zero ``b`` removes a term); a negative sum gives NaN,
    or with ``return_sign=True`` the pair ``(log|sum|, sign(sum))`` where the
    sign is 0 for an exactly zero sum.  An all ``-inf`` (or empty, or fully
    masked) reduction gives ``-inf``.
    """
    xp, a, where, axes = _prepare(ops, a, where, axis)
    if where is not None:
        a = xp.where(where, a, 0.0)
    if b is not None:
        b = as_array(xp, b, like=a)
        a = xp.where(b != 0, a, -math.inf)
    amax = _masked_max(xp, a, where, axes)
    amax = ops.stop_gradient(xp.where(xp.isfinite(amax), amax, 0.0))
    exp_a = xp.exp(a - amax)
    if b is not None:
        exp_a = exp_a * b
    total = _masked_sum(xp, exp_a, where, axes, keepdims=keepdims)
    if not keepdims:
        amax = xp.squeeze(amax, axis=axes) if axes else amax
    # sign by selects: array-api-compat's torch sign indexes with a boolean mask, which
    # torch.func.vmap cannot batch; NaN keeps its NaN, as jnp.sign does.
    sign = xp.where(total > 0, 1.0, xp.where(total < 0, -1.0, xp.where(total == 0, 0.0, total)))
    out = xp.log(xp.abs(total)) + amax
    if return_sign:
        return out, sign
    if b is not None:
        out = xp.where(sign < 0, math.nan, out)
    return out


@public(static=("axis", "keepdims"), validate=_where_checked_before_dispatch(1))
def logmeanexp(
    ops: Adapter, x: Array, axis: Axis = None, where: Array | None = None, keepdims: bool = False
) -> Array:
    r"""Log-mean-exp, log 1/n sum over i exp(x_i): ``logsumexp`` minus the log of the count.

    Matches ``jax.nn.logmeanexp`` (no ``b``; with ``where`` the count is the
    number of unmasked elements, and an all-masked reduction gives NaN).
    """
    xp, x, where, axes = _prepare(ops, x, where, axis)
    lse = logsumexp.written_once(ops, x, axis=axes, keepdims=keepdims, where=where)
    if where is None:
        sizes = [x.shape[i] for i in axes]
        if all(isinstance(size, int) for size in sizes):
            count = math.prod(sizes)
            return lse - (math.log(count) if count else -math.inf)
        # Dask with unknown chunk sizes: the count is only known when the graph runs.
        count = xp.sum(xp.ones_like(x), axis=axes, keepdims=keepdims)
        return lse - xp.log(count)
    mask = xp.broadcast_to(where, x.shape)
    count = xp.sum(xp.astype(mask, x.dtype), axis=axes, keepdims=keepdims)
    return lse - xp.log(count)


@public(static=("axis", "algorithm"), validate=_where_checked_before_dispatch(4), traits=("rowwise",))
def standardize(
    ops: Adapter, x: Array,
    axis: Axis = -1,
    mean: Array | None = None,
    variance: Array | None = None,
    epsilon: Array | float = 1e-5,
    where: Array | None = None,
    *,
    algorithm: str = "fast",
) -> Array:
    r"""Standardize: (x - mu) / sqrt(sigma^2 + eps) along ``axis``.

    Matches ``jax.nn.standardize``: the statistics come from the unmasked
    elements and are applied to all; ``algorithm='fast'`` (default) uses
    E[x^2] - E[x]^2 clipped at 0, ``'stable'`` uses E[(x-mu)^2].
    """
    if algorithm not in ("fast", "stable"):
        raise refuse(ValueError, f"unknown algorithm {algorithm!r}; expected 'fast' or 'stable'")
    xp, x, where, axes = _prepare(ops, x, where, axis)

    def masked_mean(values: Array) -> Array:
        if where is None:
            return xp.mean(values, axis=axes, keepdims=True)
        mask = xp.broadcast_to(where, values.shape)
        count = xp.sum(xp.astype(mask, values.dtype), axis=axes, keepdims=True)
        return _masked_sum(xp, values, mask, axes) / count

    if mean is None:
        mean = masked_mean(x)
    if variance is None:
        if algorithm == "stable":
            centred = x - mean
            variance = masked_mean(centred * centred)
        else:
            variance = xp.maximum(masked_mean(x * x) - mean * mean, 0.0)
    return (x - mean) * (1.0 / xp.sqrt(variance + epsilon))

"""Windowed primitives, standard-only: ``conv_general_dilated`` and ``reduce_window``.

Both take channels-last arrays and explicit ``(low, high)`` padding per
spatial dimension (negative values crop), as ``jax.lax`` takes them once the
library has resolved ``"SAME"``/``"VALID"``.  They gather every window offset
with strided slices (the standard's indexing), so they hold one shifted view
per offset: right for the small windows of neural networks, and slower than a
native convolution, which the adapters use where the library has one.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import array_api_compat

from xpnn._types import Array, Namespace
from xpnn._windows import padded

Padding = Sequence[tuple[int, int]]

#: reduce_window's reductions, by name: the elementwise operation that combines two windows.
REDUCTIONS = {"max": "maximum", "min": "minimum", "sum": "add"}


def _dilated(xp: Namespace, x: Array, axis: int, factor: int) -> Array:
    """``x`` with ``factor - 1`` zeros between neighbours along ``axis`` (a transposed
    convolution's input dilation), by stacking zeros after each element and cutting the tail."""
    size = x.shape[axis]
    if factor == 1 or size == 0:
        return x
    zeros = xp.zeros_like(x)
    spread = xp.stack([x, *([zeros] * (factor - 1))], axis=axis + 1)
    shape = (*x.shape[:axis], size * factor, *x.shape[axis + 1:])
    return xp.reshape(spread, shape)[(slice(None),) * axis + (slice(0, (size - 1) * factor + 1), ...)]


def _windows(x: Array, first_axis: int, window: Sequence[int], strides: Sequence[int],
             dilation: Sequence[int]) -> tuple[list[Array], tuple[int, ...]]:
    """The strided views of ``x`` for every offset of ``window`` (axes from ``first_axis``), in
    row-major order of the offsets, and the output's sizes along those axes."""
    sizes = tuple(max(0, (x.shape[first_axis + i] - (w - 1) * d - 1) // s + 1)
                  for i, (w, s, d) in enumerate(zip(window, strides, dilation)))
    views = []
    for offset in itertools.product(*(range(w) for w in window)):
        index = tuple(slice(o * d, o * d + (n - 1) * s + 1, s) if n else slice(0, 0)  # no windows: none
                      for o, d, s, n in zip(offset, dilation, strides, sizes))
        views.append(x[(slice(None),) * first_axis + index + (...,)])
    return views, sizes


def conv_general_dilated(xp: Namespace, einsum: Callable[..., Array], lhs: Array, rhs: Array,
                         window_strides: Sequence[int], padding: Padding, lhs_dilation: Sequence[int],
                         rhs_dilation: Sequence[int], feature_group_count: int) -> Array:
    """``jax.lax.conv_general_dilated`` with flax's layouts: ``lhs`` ``(N, *spatial, C)``, ``rhs``
    ``(*window, C // G, O)``, out ``(N, *out_spatial, O)``; ``G = feature_group_count``.

    .. math:: \\mathrm{out}[n, p, o] = \\sum_{k, c} \\mathrm{x}[n, p \\cdot s + k \\cdot d, g C_g + c]\\,
              \\mathrm{rhs}[k, c, o], \\quad g = \\lfloor o / (O/G) \\rfloor

    with ``x`` the input dilated by ``lhs_dilation`` and padded; computed as the windows'
    views stacked, contracted with the kernel by ``einsum`` (the adapter's).
    """
    spatial = lhs.ndim - 2
    x = lhs
    for i in range(spatial):
        x = _dilated(xp, x, 1 + i, lhs_dilation[i])
    for i, (low, high) in enumerate(padding):
        x = padded(xp, x, 1 + i, low, high, "constant", 0.0)
    window = tuple(rhs.shape[:spatial])
    views, sizes = _windows(x, 1, window, window_strides, rhs_dilation)
    channels, outputs, groups = lhs.shape[-1], rhs.shape[-1], feature_group_count
    patches = xp.reshape(xp.stack(views, axis=-2), (lhs.shape[0], *sizes, len(views), groups, channels // groups))
    kernel = xp.reshape(rhs, (math.prod(window), channels // groups, groups, outputs // groups))
    out = einsum("...kgc,kcgo->...go", patches, kernel)
    return xp.reshape(out, (lhs.shape[0], *sizes, outputs))


def reduce_window(xp: Namespace, x: Array, init: float, reduction: str | Callable[[Array, Array], Array],
                  window_dimensions: Sequence[int], window_strides: Sequence[int], padding: Padding,
                  window_dilation: Sequence[int]) -> Array:
    """``jax.lax.reduce_window`` for ``reduction`` in ``"max"``, ``"min"``, ``"sum"`` or a binary
    elementwise function: every window of ``x`` (one size per axis, ``padding`` filled with
    ``init``) reduced, ``init`` included."""
    combine = getattr(xp, REDUCTIONS[reduction]) if isinstance(reduction, str) else reduction
    for axis, (low, high) in enumerate(padding):
        x = padded(xp, x, axis, low, high, "constant", init)
    views, _ = _windows(x, 0, window_dimensions, window_strides, window_dilation)
    out = views[0]
    for view in views[1:]:
        out = combine(out, view)
    return combine(out, xp.asarray(init, dtype=x.dtype, device=array_api_compat.device(x)))

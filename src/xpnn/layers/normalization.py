r"""Normalization layers: ``BatchNorm``, ``LayerNorm``, ``RMSNorm``, ``GroupNorm``, ``InstanceNorm``,
and the weight normalizations ``SpectralNorm`` and ``WeightNorm`` that wrap another layer
(flax.linen's, ../shared/REFERENCE.md E.5 to E.7).

Every norm is ``compute_stats`` then ``normalize``, as in flax:

    y = (x - mu) (gamma)/(sqrt(sigma^2 + eps)) + beta

with the statistics over the reduction axes computed in at least float32
(``force_float32_reductions``; a bfloat16 input gives float32 statistics and,
with float32 parameters, a float32 output, as flax does), the fast variance
max(0, E[x^2] - E[x]^2) by default, and ``mask`` selecting the
elements the statistics see.  Names, fields, defaults (``epsilon`` 1e-6, 1e-5 for
BatchNorm), parameter and ``batch_stats`` names and shapes are flax's, so flax
checkpoints apply unchanged.  ``axis_name`` averages the statistics across a named jax axis
(``jax.vmap``/``shard_map``), as flax does; on other libraries it is an error naming the layer.
"""
from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from xpnn import initializers, random
from xpnn._cache import per_arguments
from xpnn._checks import dtype_argument, normalize_axes
from xpnn._dispatch import fast_paths_enabled
from xpnn._errors import _Unnamed, located
from xpnn._kernel_check import LAYER_KERNELS, as_host, layer_kernel_agrees, outputs_disagreement
from xpnn._types import Array
from xpnn.module import Module, compact
from xpnn.transforms import run_with_mapped_variables

__all__ = ["BatchNorm", "LayerNorm", "RMSNorm", "GroupNorm", "InstanceNorm", "SpectralNorm", "WeightNorm"]

Initializer = initializers.Initializer
Axes = int | Sequence[int]


def compute_stats(ops: Any, x: Array, axes: tuple[int, ...], dtype: Any, *, use_mean: bool = True,
                  use_fast_variance: bool = True, mask: Array | None = None, force_float32_reductions: bool = True,
                  axis_name: Any = None, axis_index_groups: Any = None) -> tuple[Array, Array]:
    """flax's ``_compute_stats``: the mean and (biased) variance of ``x`` over ``axes``, in
    ``dtype`` (None: ``x``'s) promoted to at least float32 when ``force_float32_reductions``.

    The fast variance is ``max(0, E[x^2] - E[x]^2)``, the other ``E[(x - E[x])^2]``;
    without ``use_mean`` the mean is 0 and the variance ``E[x^2]`` (RMSNorm).  ``mask``
    (broadcasting against ``x``) selects the elements the means see.  With ``axis_name`` the means
    are averaged across that named axis too (``ops.mean_across``, jax's ``pmean``), as flax does."""
    xp = ops.xp
    target = x.dtype if dtype is None else dtype
    if force_float32_reductions and not (xp.isdtype(target, "real floating") and xp.finfo(target).bits >= 32):
        target = xp.float32
    x = x if x.dtype == target else xp.astype(x, target)
    if mask is not None:
        mask = xp.broadcast_to(mask if mask.dtype == xp.bool else mask != 0, x.shape)
        count = xp.sum(xp.astype(mask, target), axis=axes)

    def mean(values: Array) -> Array:
        local = xp.mean(values, axis=axes) if mask is None else xp.sum(xp.where(mask, values, 0.0), axis=axes) / count
        return local if axis_name is None else ops.mean_across(local, axis_name, axis_index_groups)

    if not use_mean:
        variance = mean(x * x)
        return xp.zeros_like(variance), variance
    mu = mean(x)
    if use_fast_variance:
        return mu, xp.maximum(mean(x * x) - mu * mu, 0.0)
    centred = x - xp.reshape(mu, tuple(1 if i in axes else n for i, n in enumerate(x.shape)))
    return mu, mean(centred * centred)


def normalize(module: Module, ops: Any, x: Array, mean: Array, var: Array, reduction_axes: tuple[int, ...],
              feature_axes: tuple[int, ...], dtype: Any, param_dtype: Any, epsilon: float, use_bias: bool,
              use_scale: bool, bias_init: Initializer, scale_init: Initializer,
              force_float32_reductions: bool = True) -> Array:
    """flax's ``_normalize``: ``(x - mean) * rsqrt(var + epsilon) * scale + bias`` with ``scale`` and
    ``bias`` params of ``module`` shaped like the feature axes; the result in ``dtype``, or the
    promotion of ``x``, ``scale`` and ``bias`` (the statistics' float32 included)."""
    xp = ops.xp
    feature_shape = tuple(x.shape[a] if a in feature_axes else 1 for a in range(x.ndim))
    reduced_feature_shape = tuple(x.shape[a] for a in feature_axes)
    stats_shape = tuple(1 if a in reduction_axes else n for a, n in enumerate(x.shape))
    mean, var = xp.reshape(mean, stats_shape), xp.reshape(var, stats_shape)
    y = x - mean
    multiplier = 1.0 / xp.sqrt(var + epsilon)
    dtypes = [x.dtype]
    if use_scale:
        scale = xp.reshape(module.param("scale", scale_init, reduced_feature_shape, param_dtype), feature_shape)
        if not force_float32_reductions:
            scale = xp.astype(scale, module._param_dtype(ops, param_dtype))
        multiplier = multiplier * scale
        dtypes.append(scale.dtype)
    y = y * multiplier
    if use_bias:
        bias = xp.reshape(module.param("bias", bias_init, reduced_feature_shape, param_dtype), feature_shape)
        if not force_float32_reductions:
            bias = xp.astype(bias, module._param_dtype(ops, param_dtype))
        y = y + bias
        dtypes.append(bias.dtype)
    target = xp.result_type(*dtypes) if dtype is None else module._param_dtype(ops, dtype)
    return y if y.dtype == target else xp.astype(y, target)


def _statistics_axes(kind: str, x: Array, count: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """For a fused-norm ``kind`` (see ``fused_norm`` of the adapters): the shape ``x`` is seen in
    (groups split off the channels) and the axes of that shape the statistics are over."""
    if kind in ("layer", "rms"):
        return tuple(x.shape), tuple(range(x.ndim - count, x.ndim))
    if kind == "group":
        return (*x.shape[:-1], count, x.shape[-1] // count), (*range(1, x.ndim - 1), x.ndim)
    return tuple(x.shape), tuple(range(x.ndim - 1))


def reference_norm(ops: Any, kind: str, x: Array, count: int, scale: Array | None, bias: Array | None,
                   epsilon: float, statistics: tuple[Array, Array] | None = None, fast_variance: bool = False) -> Any:
    """What the adapters' ``fused_norm`` computes, written once (two-pass variance, or
    ``E[x^2] - E[x]^2`` with ``fast_variance``): the definition a fused kernel is checked against.
    16-bit inputs are normalized in float32 (as torch's kernels compute them); the output is in
    the promotion of the dtypes of ``x``, ``scale`` and ``bias``, a batch's statistics in float32."""
    xp = ops.xp
    target = xp.result_type(*(a.dtype for a in (x, scale, bias) if a is not None))
    wide = xp.result_type(target, xp.float32)
    shape, axes = _statistics_axes(kind, x, count)
    seen = xp.reshape(x, shape)
    if statistics is None:
        mean, var = compute_stats(ops, seen, axes, None, use_mean=kind != "rms", use_fast_variance=fast_variance)
    else:
        mean, var = statistics
    kept = tuple(1 if a in axes else n for a, n in enumerate(shape))
    centred = xp.astype(seen, wide) - xp.astype(xp.reshape(mean, kept), wide)
    y = xp.reshape(centred / xp.sqrt(xp.astype(xp.reshape(var, kept), wide) + epsilon), x.shape)
    if scale is not None:
        y = y * xp.astype(scale, wide)
    if bias is not None:
        y = y + xp.astype(bias, wide)
    y = y if y.dtype == target else xp.astype(y, target)
    return (y, mean, var) if kind == "batch" else y


def _fused_norm_disagreement(ops: Any, dtype: Any, device: Any, kind: str, fast_variance: bool = False) -> str | None:
    """Why the library's fused ``kind`` norm and ``reference_norm`` differ on a fixed probe
    (rows of other means and spreads, one constant row, random scale and bias; for the group
    norm, channels-last 3-D and 4-D inputs and groups of one element); None if they agree.

    With ``fast_variance`` the kernel may be off by as much as twice the written-once fast
    variance's own distance from the two-pass result (both lose digits to ``E[x^2] - E[x]^2``)."""
    xp = ops.xp
    rng = np.random.default_rng(0)
    host = rng.standard_normal((4, 3, 8)) * rng.uniform(0.1, 10.0, (4, 3, 1)) + rng.uniform(-5, 5, (4, 3, 1))
    host[1, 2] = 3.0

    def made(values: Any) -> Array:
        return xp.astype(ops.from_host(np.asarray(values, np.float64), device), dtype)

    scale, bias = made(rng.standard_normal(8)), (None if kind == "rms" else made(rng.standard_normal(8)))
    statistics = (made(rng.standard_normal(8)), made(rng.uniform(0.0, 3.0, 8))) if kind == "running" else None
    probes = [(host, 1)] if kind != "group" else [(host, 2), (host.reshape(4, 3, 1, 8), 2), (host[0], 8)]

    def outputs(result: Any) -> tuple[Array, ...]:  # the output (and a batch norm's statistics)
        return result if kind == "batch" else (result,)

    for values, count in probes:
        x = made(values)
        fused = ops.fused_norm(kind, x, count, scale, bias, 1e-5, statistics, False, fast_variance)
        if fused is None:
            continue
        reference = outputs(reference_norm(ops, kind, x, count, scale, bias, 1e-5, statistics))
        tolerance = 64 * float(xp.finfo(dtype).eps)
        if fast_variance:
            fast = outputs(reference_norm(ops, kind, x, count, scale, bias, 1e-5, statistics, fast_variance=True))
            tolerance += 2 * max(float(np.max(np.abs(as_host(ops, a) - as_host(ops, b)), initial=0.0))
                                 for a, b in zip(fast, reference))
        reason = outputs_disagreement(ops, outputs(fused), reference, tolerance, f"the fused {kind} norm",
                                      "the written-once statistics")
        if reason is not None:
            return reason
    return None


def fused_norm(ops: Any, kind: str, x: Array, count: int, scale: Array | None, bias: Array | None, epsilon: float,
               statistics: tuple[Array, Array] | None = None, channels_first: bool = False,
               fast_variance: bool = False) -> Any:
    """The library's fused ``kind`` norm (``ops.fused_norm``) where fast paths are on, its operands
    share ``x``'s dtype and the kernel agreed with ``reference_norm`` on this machine; else None.
    ``fast_variance``: the caller takes ``E[x^2] - E[x]^2``'s variance (a layer's ``use_fast_variance``)."""
    dtype = x.dtype
    if (not fast_paths_enabled() or (scale is not None and scale.dtype != dtype) or (bias is not None and bias.dtype != dtype)
            or (statistics is not None and any(a.dtype != dtype for a in statistics))):
        return None
    fast_variance = fast_variance and (kind, True) in _FUSED_NORM_KERNELS  # asked of the group norm only
    if not layer_kernel_agrees(_FUSED_NORM_KERNELS[kind, fast_variance], ops, x):
        return None
    return ops.fused_norm(kind, x, count, scale, bias, epsilon, statistics, channels_first, fast_variance)


#: The layer kernel check's name of each fused norm, and of the group norm that may sum squares
#: (the only kind a library has such a kernel of: torch's channels-last one).
_FUSED_NORM_KERNELS = {
    **{(kind, False): f"fused_norm({kind!r})" for kind in ("layer", "rms", "group", "batch", "running")},
    ("group", True): "fused_norm('group', fast variance)",
}
for (_kind, _fast), _name in _FUSED_NORM_KERNELS.items():
    LAYER_KERNELS[_name] = functools.partial(_fused_norm_disagreement, kind=_kind, fast_variance=_fast)


#: (array type, dtype) pairs of floating inputs, which the norms take as they are.
_FLOATING_INPUTS: set[tuple[type, Any]] = set()
_normalized_axes = per_arguments(normalize_axes)


class _Norm(Module):
    """What the norms share: the input check, the mask, the dtypes."""

    def _inputs(self, x: Any, mask: Any) -> tuple[Any, Array, Array | None]:
        x = self._check_input(x, "x")
        if mask is not None:
            mask = self._check_input(mask, "mask")
        ops = self._adapter(x=x, mask=mask)
        kind = (type(x), x.dtype)
        if kind not in _FLOATING_INPUTS:
            xp = ops.xp
            if not xp.isdtype(x.dtype, ("real floating", "complex floating")):
                # flax's promotion, jnp.promote_types(float32, x.dtype): float32 for every integer and
                # bool, whatever the library's default float (NumPy's float64, jax's with x64)
                return ops, xp.astype(x, xp.float32), mask
            _FLOATING_INPUTS.add(kind)
        return ops, x, mask

    def _axes(self, axes: Axes, ndim: int, argument: str) -> tuple[int, ...]:
        """``axes`` as sorted non-negative ints (``xpnn._checks.normalize_axes``, worked out once
        per set of arguments), errors naming the layer."""
        try:
            return _normalized_axes(axes, ndim, argument)
        except _Unnamed as error:
            raise located(error, self.path) from None

    def _param_dtype(self, ops: Any, dtype: Any) -> Any:
        return dtype_argument(ops, dtype, "real floating", "float32", self.path)

    def _stats_dtype(self, ops: Any) -> Any:
        return None if self.dtype is None else self._param_dtype(ops, self.dtype)

    def _stats(self, ops: Any, x: Array, reduction: tuple[int, ...], mask: Array | None,
               use_mean: bool = True) -> tuple[Array, Array]:
        """``compute_stats`` with this layer's settings; a bad ``axis_name`` names the layer."""
        try:
            return compute_stats(ops, x, reduction, self._stats_dtype(ops), use_mean=use_mean,
                                 use_fast_variance=self.use_fast_variance, mask=mask,
                                 force_float32_reductions=self.force_float32_reductions, axis_name=self.axis_name,
                                 axis_index_groups=self.axis_index_groups)
        except ValueError as error:
            if self.axis_name is None or "axis_name" not in str(error):
                raise
            raise self._error(str(error)) from None

    def _fused(self, ops: Any, kind: str, x: Array, count: int, mask: Array | None, feature_shape: tuple[int, ...],
               use_bias: bool, statistics: tuple[Array, Array] | None = None) -> Any:
        """The library's fused ``kind`` norm (``fused_norm``) with this layer's params, where
        nothing the kernel lacks is asked (no mask, ``axis_name`` or ``dtype``); else None.  The
        params are made as ``normalize`` makes them, which then finds them."""
        if mask is not None or self.axis_name is not None or self.dtype is not None or not fast_paths_enabled():
            return None
        scale = self.param("scale", self.scale_init, feature_shape, self.param_dtype) if self.use_scale else None
        bias = self.param("bias", self.bias_init, feature_shape, self.param_dtype) if use_bias else None
        return fused_norm(ops, kind, x, count, scale, bias, self.epsilon, statistics,
                          fast_variance=self.use_fast_variance)

    def _normalized(self, ops: Any, x: Array, mask: Array | None, reduction: tuple[int, ...],
                    features: tuple[int, ...], use_mean: bool = True, use_bias: bool = True) -> Array:
        """``compute_stats`` over ``reduction`` and ``normalize`` with this layer's settings;
        the library's fused layer or RMS norm where the axes are the trailing ones of ``x``."""
        if reduction == features and reduction == tuple(range(x.ndim - len(reduction), x.ndim)):
            fused = self._fused(ops, "layer" if use_mean else "rms", x, len(reduction), mask,
                                tuple(x.shape[a] for a in features), use_bias)
            if fused is not None:
                return fused
        mean, var = self._stats(ops, x, reduction, mask, use_mean)
        return normalize(self, ops, x, mean, var, reduction, features, self.dtype, self.param_dtype, self.epsilon,
                         use_bias, self.use_scale, getattr(self, "bias_init", initializers.zeros_init()),
                         self.scale_init, self.force_float32_reductions)


class LayerNorm(_Norm):
    r"""Layer normalization over ``reduction_axes`` (the last by default), eps = 1e-6
    (``flax.linen.LayerNorm``).  Params ``scale`` and ``bias`` shaped like ``feature_axes``."""

    epsilon: float = 1e-6
    dtype: Any = None
    param_dtype: Any = "float32"
    use_bias: bool = True
    use_scale: bool = True
    bias_init: Initializer = initializers.zeros_init()
    scale_init: Initializer = initializers.ones_init()
    reduction_axes: Axes = -1
    feature_axes: Axes = -1
    axis_name: str | None = None
    axis_index_groups: Any = None
    use_fast_variance: bool = True
    force_float32_reductions: bool = True

    @compact
    def __call__(self, x: Array, *, mask: Array | None = None) -> Array:
        ops, x, mask = self._inputs(x, mask)
        reduction = self._axes(self.reduction_axes, x.ndim, "reduction_axes")
        features = self._axes(self.feature_axes, x.ndim, "feature_axes")
        return self._normalized(ops, x, mask, reduction, features, use_bias=self.use_bias)


class RMSNorm(_Norm):
    r"""Root-mean-square normalization, y = x gamma / sqrt(E[x^2] + eps) (no mean, no
    bias; ``flax.linen.RMSNorm``).  Param ``scale`` shaped like ``feature_axes``."""

    epsilon: float = 1e-6
    dtype: Any = None
    param_dtype: Any = "float32"
    use_scale: bool = True
    scale_init: Initializer = initializers.ones_init()
    reduction_axes: Axes = -1
    feature_axes: Axes = -1
    axis_name: str | None = None
    axis_index_groups: Any = None
    use_fast_variance: bool = True
    force_float32_reductions: bool = True

    @compact
    def __call__(self, x: Array, *, mask: Array | None = None) -> Array:
        ops, x, mask = self._inputs(x, mask)
        reduction = self._axes(self.reduction_axes, x.ndim, "reduction_axes")
        features = self._axes(self.feature_axes, x.ndim, "feature_axes")
        return self._normalized(ops, x, mask, reduction, features, use_mean=False, use_bias=False)


class GroupNorm(_Norm):
    r"""Group normalization (``flax.linen.GroupNorm``): the features (last axis) split into
    ``num_groups`` contiguous groups (or groups of ``group_size``), statistics per sample over
    the other non-batch axes and the group.  Params ``scale`` and ``bias`` of shape ``(features,)``."""

    num_groups: int | None = 32
    group_size: int | None = None
    epsilon: float = 1e-6
    dtype: Any = None
    param_dtype: Any = "float32"
    use_bias: bool = True
    use_scale: bool = True
    bias_init: Initializer = initializers.zeros_init()
    scale_init: Initializer = initializers.ones_init()
    reduction_axes: Axes | None = None
    axis_name: str | None = None
    axis_index_groups: Any = None
    use_fast_variance: bool = True
    force_float32_reductions: bool = True

    @compact
    def __call__(self, x: Array, *, mask: Array | None = None) -> Array:
        ops, x, mask = self._inputs(x, mask)
        xp = ops.xp
        reduction = (self._axes(self.reduction_axes, x.ndim, "reduction_axes") if self.reduction_axes is not None
                     else tuple(range(1, x.ndim)))
        if not reduction or reduction[-1] != x.ndim - 1:
            raise self._error(f"reduction_axes {self.reduction_axes!r} must include the last (feature) axis")
        if (self.num_groups is None) == (self.group_size is None):
            raise self._error("give either num_groups or group_size, not both (to give group_size, pass "
                              f"num_groups=None: its default is 32); got num_groups={self.num_groups!r}, "
                              f"group_size={self.group_size!r}")
        channels = x.shape[-1]
        if self.group_size is not None:
            if self.group_size < 1 or channels % self.group_size:
                raise self._error(f"the {channels} features are not a multiple of group_size {self.group_size}")
            groups = channels // self.group_size
        else:
            groups = self.num_groups
        if isinstance(groups, bool) or not isinstance(groups, int) or groups <= 0 or channels % groups:
            raise self._error(f"num_groups {groups!r} does not divide the {channels} features")
        size = channels // groups
        if reduction == tuple(range(1, x.ndim)):
            fused = self._fused(ops, "group", x, groups, mask, (channels,), self.use_bias)
            if fused is not None:
                return fused
        grouped = xp.reshape(x, (*x.shape[:-1], groups, size))
        if mask is not None:
            mask = xp.reshape(xp.broadcast_to(mask, x.shape), grouped.shape)
        mean, var = self._stats(ops, grouped, (*reduction[:-1], x.ndim), mask)
        mean = xp.reshape(xp.broadcast_to(mean[..., None], (*mean.shape, size)), (*mean.shape[:-1], channels))
        var = xp.reshape(xp.broadcast_to(var[..., None], (*var.shape, size)), (*var.shape[:-1], channels))
        return normalize(self, ops, x, mean, var, reduction[:-1], (x.ndim - 1,), self.dtype, self.param_dtype,
                         self.epsilon, self.use_bias, self.use_scale, self.bias_init, self.scale_init,
                         self.force_float32_reductions)


class InstanceNorm(_Norm):
    r"""Instance normalization (``flax.linen.InstanceNorm``): statistics per sample and feature over
    every axis but the batch (0) and ``feature_axes``.  Params ``scale`` and ``bias`` shaped like
    the feature axes."""

    epsilon: float = 1e-6
    dtype: Any = None
    param_dtype: Any = "float32"
    use_bias: bool = True
    use_scale: bool = True
    bias_init: Initializer = initializers.zeros_init()
    scale_init: Initializer = initializers.ones_init()
    feature_axes: Axes = -1
    axis_name: str | None = None
    axis_index_groups: Any = None
    use_fast_variance: bool = True
    force_float32_reductions: bool = True

    @compact
    def __call__(self, x: Array, *, mask: Array | None = None) -> Array:
        ops, x, mask = self._inputs(x, mask)
        features = self._axes(self.feature_axes, x.ndim, "feature_axes")
        if 0 in features:
            raise self._error("feature_axes must not include axis 0, the batch axis")
        reduction = tuple(a for a in range(1, x.ndim) if a not in features)
        return self._normalized(ops, x, mask, reduction, features, use_bias=self.use_bias)


class BatchNorm(_Norm):
    r"""Batch normalization (``flax.linen.BatchNorm``): statistics over every axis but ``axis`` (the
    features), and running averages in the ``batch_stats`` collection.

    Training (``use_running_average=False``) normalizes with the batch's mean and biased
    variance and, unless initialising, updates ``mean <- momentum * mean + (1 - momentum) *
    batch_mean`` (and ``var`` alike): run it with ``mutable=['batch_stats']``.  Evaluation
    (``use_running_average=True``) normalizes with the running averages.  Variables:
    ``batch_stats`` ``mean`` (zeros) and ``var`` (ones), float32; ``params`` ``scale`` and ``bias``.
    """

    use_running_average: bool | None = None
    axis: int = -1
    momentum: float = 0.99
    epsilon: float = 1e-5
    dtype: Any = None
    param_dtype: Any = "float32"
    use_bias: bool = True
    use_scale: bool = True
    bias_init: Initializer = initializers.zeros_init()
    scale_init: Initializer = initializers.ones_init()
    axis_name: str | None = None
    axis_index_groups: Any = None
    use_fast_variance: bool = True
    force_float32_reductions: bool = True

    @compact
    def __call__(self, x: Array, use_running_average: bool | None = None, *, mask: Array | None = None) -> Array:
        running = self._merge("use_running_average", self.use_running_average, use_running_average)
        ops, x, mask = self._inputs(x, mask)
        xp = ops.xp
        features = self._axes(self.axis, x.ndim, "axis")
        reduction = tuple(a for a in range(x.ndim) if a not in features)
        feature_shape = tuple(x.shape[a] for a in features)
        device = ops.device_of(x)
        mean_variable = self.variable("batch_stats", "mean", lambda: xp.zeros(feature_shape, dtype=xp.float32,
                                                                              device=device))
        var_variable = self.variable("batch_stats", "var", lambda: xp.ones(feature_shape, dtype=xp.float32,
                                                                           device=device))
        if features == (x.ndim - 1,):
            fused = self._fused(ops, "running" if running else "batch", x, 1, mask, feature_shape, self.use_bias,
                                (mean_variable.value, var_variable.value) if running else None)
            if fused is not None and running:
                return fused
        else:
            fused = None
        if running:
            mean, var = mean_variable.value, var_variable.value
        else:
            y, mean, var = fused if fused is not None else (None, *self._stats(ops, x, reduction, mask))
            if not self.is_initializing():
                momentum = self.momentum
                mean_variable.value = momentum * mean_variable.value + (1 - momentum) * xp.reshape(mean, feature_shape)
                var_variable.value = momentum * var_variable.value + (1 - momentum) * xp.reshape(var, feature_shape)
            if y is not None:
                return y
        stats_shape = tuple(1 if a in reduction else n for a, n in enumerate(x.shape))
        return normalize(self, ops, x, xp.reshape(mean, stats_shape), xp.reshape(var, stats_shape), reduction,
                         features, self.dtype, self.param_dtype, self.epsilon, self.use_bias, self.use_scale,
                         self.bias_init, self.scale_init, self.force_float32_reductions)


def _l2_normalized(xp: Any, value: Array, axes: tuple[int, ...], epsilon: float) -> Array:
    """flax's ``_l2_normalize``: ``value * rsqrt(sum(value^2 over axes) + epsilon)``, the factor
    computed in at least float32 and rounded once to ``value``'s dtype, as ``rsqrt`` is."""
    squares = xp.sum(value * value, axis=axes, keepdims=True)
    wide = xp.astype(squares, xp.result_type(squares.dtype, xp.float32))
    return value * xp.astype(1 / xp.sqrt(wide + epsilon), value.dtype)


class _WeightNormalization(Module):
    """What SpectralNorm and WeightNorm share: the wrapped layer run on its normalised variables."""

    def _run_normalized(self, args: tuple, kwargs: dict, write_back: bool, leaf_fn: Any) -> Any:
        layer = self.layer_instance
        if not isinstance(layer, Module):
            raise TypeError(f"{self.path}: layer_instance must be an xpnn Module, got {type(layer).__name__}")

        def normalized(collection: str, path: tuple[str, ...], value: Array) -> Array:
            return leaf_fn("/".join((layer.name, *path)), value)

        return run_with_mapped_variables(layer, normalized, args, kwargs, write_back=write_back)

    def _result(self, ops: Any, value: Array, *dtypes: Any) -> Array:
        """``value`` in ``dtype``, or the promotion of ``dtypes`` (flax's ``canonicalize_dtype``)."""
        xp = ops.xp
        target = xp.result_type(*dtypes) if self.dtype is None else dtype_argument(
            ops, self.dtype, "real floating", "float32", self.path)
        return value if value.dtype == target else xp.astype(value, target)


class SpectralNorm(_WeightNormalization):
    """Spectral normalization of a wrapped layer's weights (``flax.linen.SpectralNorm``).

    Every weight W of ``layer_instance`` with 2 or more dims (the others, biases, as they are),
    seen as the matrix ``W.reshape(-1, W.shape[-1])``, is divided by its largest singular value
    sigma, estimated by ``n_steps`` of power iteration from the stored vector ``u``:

        v = l2n(u @ W.T),  u = l2n(v @ W),  sigma = v @ W @ u.T,  W_used = W / sigma

    with ``l2n(a) = a / sqrt(sum(a^2) + epsilon)`` and no gradient through u and v.
    ``__call__(*args, update_stats, **kwargs)`` passes its arguments to the layer;
    ``update_stats=True`` stores the new ``u`` and ``sigma`` (run with
    ``mutable=['batch_stats']``).  Variables, as flax's: the layer's own params stay under the
    layer's name in the parent, and ``collection_name`` holds ``'<layer>/<param>/u'`` (shape
    ``(1, W.shape[-1])``, standard normal from the 'params' stream) and ``'<layer>/<param>/sigma'``
    (1.0).  As in flax, ``init`` stores the kernel already divided by the first estimate of sigma.
    """

    layer_instance: Module
    n_steps: int = 1
    epsilon: float = 1e-12
    dtype: Any = None
    param_dtype: Any = "float32"
    error_on_non_matrix: bool = False
    collection_name: str = "batch_stats"

    @compact
    def __call__(self, *args: Any, update_stats: bool, **kwargs: Any) -> Any:
        def spectral_normalized(name: str, value: Array) -> Array:
            return self._spectral_normalize(name, value, update_stats)

        return self._run_normalized(args, kwargs, True, spectral_normalized)

    def _spectral_normalize(self, name: str, value: Array, update_stats: bool) -> Array:
        if value.ndim <= 1 or self.n_steps < 1:
            return value
        if value.ndim > 2 and self.error_on_non_matrix:
            raise self._error(f'"{name}" is {value.ndim}-D but error_on_non_matrix is True')
        ops = self._adapter(value=value)
        xp = ops.xp
        matrix = xp.reshape(value, (-1, value.shape[-1])) if value.ndim > 2 else value
        param_dtype = dtype_argument(ops, self.param_dtype, "real floating", "float32", self.path)
        device = ops.device_of(value)
        u_variable = self.variable(self.collection_name, f"{name}/u", lambda: random.normal(
            self.make_rng("params"), (1, matrix.shape[-1]), param_dtype))
        sigma_variable = self.variable(self.collection_name, f"{name}/sigma",
                                       lambda: xp.ones((), dtype=param_dtype, device=device))
        u = u_variable.value
        work = xp.result_type(matrix.dtype, u.dtype)  # flax's promotion (torch's matmul makes none)
        matrix, u = (a if a.dtype == work else xp.astype(a, work) for a in (matrix, u))
        for _ in range(self.n_steps):
            v = _l2_normalized(xp, u @ xp.matrix_transpose(matrix), (0, 1), self.epsilon)
            u = _l2_normalized(xp, v @ matrix, (0, 1), self.epsilon)
        u, v = ops.stop_gradient(u), ops.stop_gradient(v)
        sigma = ((v @ matrix) @ xp.matrix_transpose(u))[0, 0]
        normalized = xp.reshape(matrix / xp.where(sigma != 0, sigma, xp.ones_like(sigma)), value.shape)
        if update_stats:
            u_variable.value = u
            sigma_variable.value = sigma
        return self._result(ops, normalized, value.dtype, work)


class WeightNorm(_WeightNormalization):
    """Weight normalization of a wrapped layer's weights (``flax.linen.WeightNorm``).

    Every weight W of ``layer_instance`` whose name (``'<layer>/<param>'``) contains one of
    ``variable_filter`` (None: every weight) is used as

        W_used = W / sqrt(sum(W^2 over the axes but feature_axes) + epsilon) * scale

    with ``scale`` a param of this module named ``'<layer>/<param>/scale'``, shaped like W's
    ``feature_axes`` (None: a scalar norm over all axes, no feature axes) and made by
    ``scale_init`` (ones), when ``use_scale``.  ``__call__(*args, **kwargs)`` passes its
    arguments to the layer, whose own params stay under its name in the parent.  As in flax,
    ``init`` stores the normalised kernel.
    """

    layer_instance: Module
    epsilon: float = 1e-12
    dtype: Any = None
    param_dtype: Any = "float32"
    use_scale: bool = True
    scale_init: Initializer = initializers.ones_init()
    feature_axes: Axes | None = -1
    variable_filter: Collection[str] | None = frozenset({"kernel"})

    @compact
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._run_normalized(args, kwargs, False, self._weight_normalize)

    def _weight_normalize(self, name: str, value: Array) -> Array:
        if self.variable_filter and not any(part in name for part in self.variable_filter):
            return value
        ops = self._adapter(value=value)
        xp = ops.xp
        features = () if self.feature_axes is None else normalize_axes(
            self.feature_axes, value.ndim, "feature_axes", where=self.path)
        reduction = tuple(a for a in range(value.ndim) if a not in features)
        normalized = _l2_normalized(xp, value, reduction, self.epsilon)
        dtypes = [value.dtype]
        if self.use_scale:
            scale = self.param(f"{name}/scale", self.scale_init, tuple(value.shape[a] for a in features),
                               self.param_dtype)
            normalized = normalized * xp.reshape(scale, tuple(n if a in features else 1
                                                              for a, n in enumerate(value.shape)))
            dtypes.append(scale.dtype)
        return self._result(ops, normalized, *dtypes)

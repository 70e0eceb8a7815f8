r"""Convolutions: ``Conv``, ``ConvTranspose``, ``ConvLocal`` (flax.linen's, ../shared/REFERENCE.md E.2).

Inputs are channels-last, ``(*batch, *spatial, features)``: the number of
spatial dimensions is ``len(kernel_size)`` (an int ``kernel_size`` is one
dimension), an input without a batch dimension is taken, several batch
dimensions are flattened and restored.  The operation is cross-correlation
(no kernel flip), computed by the adapter's ``conv_general_dilated``
primitive; flax's padding modes are resolved here to explicit ``(low, high)``
pairs (``"SAME"``'s extra element goes last), ``"CIRCULAR"`` and ``"REFLECT"``
pad the input itself, ``"CAUSAL"`` (1-D) pads ``kernel_dilation * (k - 1)`` on
the left.  Names, fields, defaults, parameter names and shapes, and initial
values for a key are flax's, so flax checkpoints apply unchanged.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

from xpnn import initializers
from xpnn._cache import per_arguments
from xpnn._errors import _Unnamed, refuse
from xpnn._types import Array
from xpnn._windows import Pads, explicit_pads, int_tuple, lax_padding, same_pads
from xpnn.module import Module, compact
from xpnn.trees import to_backend

__all__ = ["Conv", "ConvTranspose", "ConvLocal"]

Initializer = initializers.Initializer
PaddingLike = str | int | Sequence[int | tuple[int, int]]
_MODES = {"CIRCULAR": "wrap", "REFLECT": "reflect"}


class _Windowed(Module):
    """The input handling, field checks and padding shared by the convolutions (no fields)."""

    def _checked(self, value: Any, rank: int, argument: str, minimum: int = 1) -> tuple[int, ...]:
        """An int-or-sequence field as ``rank`` ints (None: all 1), or an error naming the module."""
        try:
            return _int_tuple(value, rank, argument, minimum)
        except _Unnamed as error:
            raise self._error(str(error)) from None

    def _convolved(self, adapter: Any, *arguments: Any) -> Array:
        """``adapter.conv_general_dilated(*arguments)`` (the bias last, where given); an input it cannot take (a Dask array of
        unknown chunk sizes) is an error naming the module."""
        try:
            return adapter.conv_general_dilated(*arguments)
        except ValueError as error:
            raise self._error(str(error)) from None

    def _kernel_size(self) -> tuple[int, ...]:
        try:
            return _kernel_size(self.kernel_size)
        except _Unnamed as error:
            raise self._error(str(error)) from None

    def _batched(self, inputs: Array, rank: int) -> tuple[Array, tuple[int, ...] | None]:
        """``inputs`` as ``(batch, *spatial, features)``, and the batch shape to restore (None:
        one batch dimension already)."""
        inputs = self._check_input(inputs, min_rank=rank + 1)
        self._check_features()
        if inputs.ndim == rank + 2:
            return inputs, None
        batch = tuple(inputs.shape[:inputs.ndim - rank - 1])
        xp = self._adapter(inputs=inputs).xp
        return xp.reshape(inputs, (math.prod(batch), *inputs.shape[len(batch):])), batch

    def _check_features(self) -> None:
        if isinstance(self.features, bool) or not isinstance(self.features, int) or self.features < 1:
            raise self._error(f"features must be a positive int, got {self.features!r}")

    def _restored(self, y: Array, batch: tuple[int, ...] | None) -> Array:
        if batch is None:
            return y
        return self._adapter(y=y).xp.reshape(y, (*batch, *y.shape[1:]))

    def _checked_mask(self, kernel_shape: tuple[int, ...]) -> None:
        if self.mask is not None and tuple(self.mask.shape) != kernel_shape:
            raise self._error(f"mask must have the kernel's shape {kernel_shape}, got {tuple(self.mask.shape)}")

    def _masked(self, kernel: Array) -> Array:
        """The kernel times ``mask``, which may be an array of any library (NumPy for every backend)."""
        if self.mask is None:
            return kernel
        mask = self.mask if type(self.mask) is type(kernel) else to_backend(self.mask, kernel)
        return kernel * mask


@per_arguments
def _int_tuple(value: Any, rank: int, argument: str, minimum: int = 1) -> tuple[int, ...]:
    """``int_tuple`` of a field, all 1 for None (worked out once per set of arguments)."""
    return (1,) * rank if value is None else int_tuple(value, rank, argument, minimum=minimum)


@per_arguments
def _kernel_size(size: Any) -> tuple[int, ...]:
    """``kernel_size`` as a tuple of ints, its length the number of spatial dimensions."""
    rank = 1 if isinstance(size, int) else len(size) if isinstance(size, Sequence) else 0
    if not rank:
        raise refuse(TypeError, f"kernel_size must be an int or a sequence of ints, got {size!r}")
    return int_tuple(size, rank, "kernel_size")


@per_arguments
def _resolved_padding(padding: PaddingLike, kernel_size: tuple[int, ...], kernel_dilation: tuple[int, ...],
                      strides: tuple[int, ...], input_dilation: tuple[int, ...], sizes: tuple[int, ...],
                      dilation_field: Any) -> tuple[Pads, Pads | None]:
    """A convolution's ``padding`` for inputs of spatial ``sizes``: the explicit ``(low, high)``
    pads of the convolution (SAME resolved as lax resolves it), and those to pad the input with
    in the CIRCULAR or REFLECT mode first (None for the other modes).  ``dilation_field``: the
    ``input_dilation`` as the layer was given it, for the error."""
    rank = len(kernel_size)
    effective = tuple((k - 1) * d + 1 for k, d in zip(kernel_size, kernel_dilation))
    padding = lax_padding(padding)
    if isinstance(padding, str):
        if padding not in ("SAME", "SAME_LOWER", "VALID", "CIRCULAR", "REFLECT", "CAUSAL"):
            raise refuse(ValueError, f"padding must be 'SAME', 'VALID', 'SAME_LOWER' (in any case), 'CIRCULAR', "
                                     f"'REFLECT', 'CAUSAL', an int or a sequence of ints or (low, high) pairs, got "
                                     f"{padding!r}")
        if any(d != 1 for d in input_dilation):
            raise refuse(ValueError, f"padding {padding!r} is not defined with input_dilation {dilation_field}; "
                                     "give explicit (low, high) pairs (as flax requires)")
    if isinstance(padding, str) and padding in _MODES:  # (a list of pairs cannot be looked up)
        return ((0, 0),) * rank, tuple(((k - 1) // 2, k // 2) for k in effective)
    if padding == "CAUSAL":
        if rank != 1:
            raise refuse(ValueError, f"padding 'CAUSAL' is only defined for 1-D convolutions, got kernel_size "
                                     f"{kernel_size!r}")
        return ((effective[0] - 1, 0),), None
    if padding in ("SAME", "SAME_LOWER"):
        return same_pads(sizes, effective, strides, lower=padding == "SAME_LOWER"), None
    if padding == "VALID":
        return ((0, 0),) * rank, None
    return explicit_pads(padding, rank), None


class _Convolution(_Windowed):
    """The fields of Conv and ConvLocal (flax's ``_Conv``)."""

    features: int
    kernel_size: int | Sequence[int]
    strides: None | int | Sequence[int] = 1
    padding: PaddingLike = "SAME"
    input_dilation: None | int | Sequence[int] = 1
    kernel_dilation: None | int | Sequence[int] = 1
    feature_group_count: int = 1
    use_bias: bool = True
    mask: Array | None = None
    dtype: Any = None
    param_dtype: Any = "float32"
    precision: Any = None
    kernel_init: Initializer = initializers.lecun_normal()
    bias_init: Initializer = initializers.zeros_init()

    def _geometry(self, x: Array, kernel_size: tuple[int, ...], groups: int) -> tuple[Array, _Geometry]:
        """``_conv_geometry`` of this layer's fields for ``x`` (one batch dimension), and ``x``
        padded for the CIRCULAR and REFLECT modes; errors name the layer."""
        try:
            geometry = _conv_geometry(kernel_size, self.strides, self.input_dilation, self.kernel_dilation,
                                      self.padding, groups, self.features, tuple(x.shape[1:]))
            if geometry.mode_pads:
                x = self._adapter(inputs=x).pad(x, ((0, 0), *geometry.mode_pads, (0, 0)), _MODES[self.padding])
        except _Unnamed as error:
            raise self._error(str(error)) from None
        return x, geometry


class Conv(_Convolution):
    """N-d convolution (cross-correlation) of channels-last inputs (``flax.linen.Conv``).

        y[n, p, o] = b_o + sum over k, c of x[n, p * s + k * d, g C_g + c] W[k, c, o]

    Params: ``kernel`` ``(*kernel_size, in_features // feature_group_count, features)``,
    ``bias`` ``(features,)``.  ``mask`` (the kernel's shape) multiplies the kernel.
    """

    @compact
    def __call__(self, inputs: Array) -> Array:
        kernel_size = self._kernel_size()
        x, batch = self._batched(inputs, len(kernel_size))
        groups = self.feature_group_count
        x, geometry = self._geometry(x, kernel_size, groups)
        self._checked_mask(geometry.kernel_shape)
        kernel = self._masked(self.param("kernel", self.kernel_init, geometry.kernel_shape, self.param_dtype))
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) if self.use_bias else None
        adapter, x, kernel, bias = self._weighted(self.dtype, x, kernel, bias)
        y = self._convolved(adapter, x, kernel, geometry.strides, geometry.pads, geometry.input_dilation,
                            geometry.kernel_dilation, groups, bias)
        return self._restored(y, batch)


class _Geometry(NamedTuple):
    """What a ``Conv`` or ``ConvLocal`` works out from its fields and its input's shape (``_conv_geometry``)."""

    strides: tuple[int, ...]
    input_dilation: tuple[int, ...]
    kernel_dilation: tuple[int, ...]
    pads: Pads  # the convolution's explicit (low, high) pads
    mode_pads: Pads | None  # the input's own CIRCULAR or REFLECT padding
    kernel_shape: tuple[int, ...]


@per_arguments
def _conv_geometry(kernel_size: tuple[int, ...], strides: Any, input_dilation: Any, kernel_dilation: Any,
                   padding: PaddingLike, groups: Any, features: int, image: tuple[int, ...]) -> _Geometry:
    """A convolution's checked fields and window geometry for images of shape ``image`` (spatial
    dimensions, then channels), worked out once per set of them: a layer's fields and input
    shape repeat from call to call."""
    rank = len(kernel_size)
    strides = _int_tuple(strides, rank, "strides")
    dilation_field, input_dilation = input_dilation, _int_tuple(input_dilation, rank, "input_dilation")
    kernel_dilation = _int_tuple(kernel_dilation, rank, "kernel_dilation")
    channels = image[-1]
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or channels % groups:
        raise refuse(ValueError, f"feature_group_count must be a positive int dividing the {channels} input "
                                 f"features, got {groups!r}")
    if features % groups:
        raise refuse(ValueError, f"features ({features}) must be divisible by feature_group_count ({groups})")
    pads, mode_pads = _resolved_padding(padding, kernel_size, kernel_dilation, strides, input_dilation, image[:-1],
                                        dilation_field)
    return _Geometry(strides, input_dilation, kernel_dilation, pads, mode_pads,
                     (*kernel_size, channels // groups, features))


class ConvLocal(_Convolution):
    """Convolution with unshared weights, one kernel per output position (``flax.linen.ConvLocal``).

    Params: ``kernel`` ``(*out_spatial, prod(kernel_size) * in_features, features)``, ``bias``
    ``(*out_spatial, features)``.  Each output position's patch (input features major, then
    window positions, as ``lax.conv_general_dilated_patches`` orders it) is multiplied by its
    own kernel.
    """

    @compact
    def __call__(self, inputs: Array) -> Array:
        kernel_size = self._kernel_size()
        x, batch = self._batched(inputs, len(kernel_size))
        if self.feature_group_count != 1:
            raise self._error(f"feature_group_count must be 1 for unshared weights, got {self.feature_group_count!r}")
        x, geometry = self._geometry(x, kernel_size, 1)
        adapter = self._adapter(inputs=x)
        patches = _patches(adapter, x, kernel_size, geometry.strides, geometry.pads, geometry.input_dilation,
                           geometry.kernel_dilation)
        out_spatial = tuple(patches.shape[1:-1])
        kernel_shape = (*out_spatial, patches.shape[-1], self.features)
        self._checked_mask(kernel_shape)
        kernel = self._masked(self.param("kernel", self.kernel_init, kernel_shape, self.param_dtype))
        bias = (self.param("bias", self.bias_init, (*out_spatial, self.features), self.param_dtype)
                if self.use_bias else None)
        adapter, patches, kernel, bias = self._weighted(self.dtype, patches, kernel, bias)
        y = adapter.einsum("n...f,...fo->n...o", patches, kernel)
        return self._restored(y if bias is None else y + bias, batch)


def _patches(ops: Any, x: Array, kernel_size: tuple[int, ...], strides: tuple[int, ...], pads: Pads,
             input_dilation: tuple[int, ...], kernel_dilation: tuple[int, ...]) -> Array:
    """``lax.conv_general_dilated_patches``: every window of ``x`` as ``(N, *out, C * prod(kernel_size))``,
    input features major; a depthwise convolution with a one-hot kernel per window position."""
    xp = ops.xp
    positions = math.prod(kernel_size)
    channels = x.shape[-1]
    one_hot = xp.reshape(xp.eye(positions, dtype=x.dtype, device=ops.device_of(x)), (*kernel_size, 1, 1, positions))
    kernel = xp.reshape(xp.broadcast_to(one_hot, (*kernel_size, 1, channels, positions)),
                        (*kernel_size, 1, channels * positions))
    return ops.conv_general_dilated(x, kernel, strides, pads, input_dilation, kernel_dilation, channels)


class ConvTranspose(_Windowed):
    """Transposed convolution (``flax.linen.ConvTranspose``, ``lax.conv_transpose``): the input
    dilated by ``strides`` and correlated with the kernel as stored (no flip), or with
    ``transpose_kernel=True`` with the kernel flipped and its feature axes swapped (torch's
    ``ConvTranspose``, the gradient of a ``Conv``).

    Params: ``kernel`` ``(*kernel_size, in_features, features)`` (``(*kernel_size, features,
    in_features)`` with ``transpose_kernel``), ``bias`` ``(features,)``.  Output sizes for
    input ``n``: ``"SAME"`` ``n * s``, ``"VALID"`` ``(n - 1) * s + k``, explicit ``(lo, hi)``
    ``(n - 1) * s + 1 + lo + hi - (k - 1)``; ``"CIRCULAR"`` wraps the VALID output around periods
    of ``n * s``.
    """

    features: int
    kernel_size: int | Sequence[int]
    strides: Sequence[int] | None = None
    padding: PaddingLike = "SAME"
    kernel_dilation: Sequence[int] | None = None
    use_bias: bool = True
    mask: Array | None = None
    dtype: Any = None
    param_dtype: Any = "float32"
    precision: Any = None
    kernel_init: Initializer = initializers.lecun_normal()
    bias_init: Initializer = initializers.zeros_init()
    transpose_kernel: bool = False

    @compact
    def __call__(self, inputs: Array) -> Array:
        kernel_size = self._kernel_size()
        rank = len(kernel_size)
        x, batch = self._batched(inputs, rank)
        strides = self._checked(self.strides, rank, "strides")
        kernel_dilation = self._checked(self.kernel_dilation, rank, "kernel_dilation")
        channels = x.shape[-1]
        kernel_shape = (*kernel_size, *((self.features, channels) if self.transpose_kernel else (channels, self.features)))
        self._checked_mask(kernel_shape)
        kernel = self._masked(self.param("kernel", self.kernel_init, kernel_shape, self.param_dtype))
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) if self.use_bias else None
        adapter, x, kernel, bias = self._weighted(self.dtype, x, kernel, bias)
        xp = adapter.xp
        if self.transpose_kernel:
            kernel = xp.flip(kernel, axis=tuple(range(rank)))
            kernel = xp.permute_dims(kernel, (*range(rank), rank + 1, rank))
        effective = tuple((k - 1) * d + 1 for k, d in zip(kernel_size, kernel_dilation))
        padding = self.padding
        if padding in ("SAME", "VALID", "CIRCULAR"):
            pads = tuple(_transpose_pads(k, s, "VALID" if padding == "CIRCULAR" else padding)
                         for k, s in zip(effective, strides))
        elif isinstance(padding, str):
            raise self._error(f"padding must be 'SAME', 'VALID', 'CIRCULAR', an int or a sequence of ints or "
                              f"(low, high) pairs, got {padding!r}")
        else:
            try:
                pads = explicit_pads(padding, rank)
            except _Unnamed as error:
                raise self._error(str(error)) from None
        if padding != "CIRCULAR":
            return self._restored(self._convolved(adapter, x, kernel, (1,) * rank, pads, strides, kernel_dilation, 1,
                                                  bias), batch)
        y = self._convolved(adapter, x, kernel, (1,) * rank, pads, strides, kernel_dilation, 1)
        y = _wrapped_periodically(adapter, y, tuple(n * s for n, s in zip(x.shape[1:-1], strides)),
                                  self.transpose_kernel)
        return self._restored(y if bias is None else y + bias, batch)


def _transpose_pads(k: int, s: int, padding: str) -> tuple[int, int]:
    """lax's ``_conv_transpose_padding`` of an effective kernel size ``k`` and stride ``s``."""
    if padding == "SAME":
        total = k + s - 2
        low = k - 1 if s > k - 1 else -(-total // 2)
    else:
        total = k + s - 2 + max(k - s, 0)
        low = k - 1
    return low, total - low


def _wrapped_periodically(ops: Any, y: Array, periods: tuple[int, ...], transpose_kernel: bool) -> Array:
    """flax's CIRCULAR ConvTranspose: ``y`` padded to whole numbers of ``periods`` (the input size
    times the stride) and summed over them, so the output wraps around each spatial dimension."""
    xp = ops.xp
    for axis, period in enumerate(periods, start=1):
        size = y.shape[axis]
        extra = -(size - period) % (2 * period)
        low, high = (extra // 2, (extra + 1) // 2) if transpose_kernel else ((extra + 1) // 2, extra // 2)
        parts = []
        for count in (low, high):
            shape = list(y.shape)
            shape[axis] = count
            parts.append(ops.placed_like(xp.zeros(tuple(shape), dtype=y.dtype, device=ops.device_of(y)), y))
        y = xp.concat([parts[0], y, parts[1]], axis=axis)
        shape = (*y.shape[:axis], y.shape[axis] // period, period, *y.shape[axis + 1:])
        y = xp.sum(xp.reshape(y, shape), axis=axis)
    return y

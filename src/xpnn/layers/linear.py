"""Linear layers: ``Dense``, ``DenseGeneral``, ``Einsum``, ``Embed`` (flax.linen's, ../shared/REFERENCE.md E.1, E.3).

Names, arguments, defaults, parameter names and shapes are flax.linen's, so a
flax checkpoint applies unchanged.  ``kernel_init`` defaults to
``lecun_normal()`` and ``bias_init`` to ``zeros``; ``param_dtype`` is float32
and ``dtype=None`` computes in the promotion of the input's and the params'
dtypes (an int32 or bfloat16 input with float32 params gives float32).
Dtypes may be given as names (``"bfloat16"``) or as any library's dtype.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from xpnn import initializers
from xpnn._checks import device_of
from xpnn._einsum import parse_einsum
from xpnn._types import Array
from xpnn.module import Module, compact

__all__ = ["Dense", "DenseGeneral", "Einsum", "Embed"]

Initializer = initializers.Initializer

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _as_tuple(value: int | Sequence[int]) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, Sequence) else (value,)


def _check_features(module: Module, features: tuple[Any, ...], argument: str = "features") -> None:
    """Every feature size a non-negative int, or a ValueError naming the module."""
    for size in features:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            shown = features[0] if len(features) == 1 else features
            raise module._error(f"{argument} must be non-negative ints, got {shown!r}")


class Dense(Module):
    """A linear map of the last axis: ``y = inputs @ kernel + bias`` (``flax.linen.Dense``).

    Params: ``kernel`` ``(inputs.shape[-1], features)``, ``bias`` ``(features,)``.
    """

    features: int
    use_bias: bool = True
    dtype: Any = None
    param_dtype: Any = "float32"
    precision: Any = None
    kernel_init: Initializer = initializers.lecun_normal()
    bias_init: Initializer = initializers.zeros_init()

    @compact
    def __call__(self, inputs: Array) -> Array:
        inputs = self._check_input(inputs, min_rank=1)
        features = self.features
        if type(features) is not int or features < 0:
            _check_features(self, (features,))
        kernel = self.param("kernel", self.kernel_init, (inputs.shape[-1], features), self.param_dtype)
        bias = self.param("bias", self.bias_init, (features,), self.param_dtype) if self.use_bias else None
        adapter, inputs, kernel, bias = self._weighted(self.dtype, inputs, kernel, bias)
        return adapter.dense(inputs, kernel, bias)


class DenseGeneral(Module):
    """A linear map of several axes to several feature axes (``flax.linen.DenseGeneral``).

    ``axis`` are the contracted input axes, ``features`` the output feature
    shape, ``batch_dims`` leading input axes that get their own kernel.  The
    kernel is ``batch + [inputs.shape[a] for a in axis] + features``; it is
    initialised as the flattened matrix ``(prod(batch) * prod(in), prod(features))``
    and reshaped, as flax does, so fans are those of that matrix.  The output
    is ``batch + the other input axes + features``.
    """

    features: int | Sequence[int]
    axis: int | Sequence[int] = -1
    batch_dims: Sequence[int] = ()
    use_bias: bool = True
    dtype: Any = None
    param_dtype: Any = "float32"
    kernel_init: Initializer = initializers.lecun_normal()
    bias_init: Initializer = initializers.zeros_init()
    precision: Any = None

    @compact
    def __call__(self, inputs: Array) -> Array:
        inputs = self._check_input(inputs)
        features, ndim = _as_tuple(self.features), inputs.ndim
        _check_features(self, features)
        axis = self._normalize_axes(_as_tuple(self.axis), ndim, "axis")
        batch_dims = self._normalize_axes(_as_tuple(self.batch_dims), ndim, "batch_dims")
        if batch_dims and sorted(batch_dims) != list(range(len(batch_dims))):
            raise self._error(f"batch_dims {self.batch_dims} must be consecutive leading dimensions starting from 0")
        if set(axis) & set(batch_dims):
            raise self._error(f"axis {self.axis} and batch_dims {self.batch_dims} overlap")
        n_features = len(features)

        def flat_init(init: Initializer, grouped: Sequence[tuple[int, ...]]):
            def init_reshaped(key: Array, shape: tuple[int, ...], dtype: Any) -> Array:
                value = init(key, tuple(math.prod(group) for group in grouped), dtype)
                return self._adapter(value=value).xp.reshape(value, shape)

            return init_reshaped

        batch_shape = tuple(inputs.shape[a] for a in batch_dims)
        in_shape = tuple(inputs.shape[a] for a in axis)
        kernel_init = flat_init(self.kernel_init, (batch_shape + in_shape, features))
        kernel = self.param("kernel", kernel_init, batch_shape + in_shape + features, self.param_dtype)
        bias = None
        if self.use_bias:
            bias_init = flat_init(self.bias_init, (batch_shape + features,))
            bias = self.param("bias", bias_init, batch_shape + features, self.param_dtype)
        adapter, inputs, kernel, bias = self._weighted(self.dtype, inputs, kernel, bias)

        letters = _LETTERS[:ndim]
        feature_letters = _LETTERS[ndim:ndim + n_features]
        kernel_letters = "".join(letters[a] for a in batch_dims + axis) + feature_letters
        free = "".join(letters[a] for a in range(ndim) if a not in axis and a not in batch_dims)
        out_letters = "".join(letters[a] for a in batch_dims) + free + feature_letters
        out = adapter.einsum(f"{letters},{kernel_letters}->{out_letters}", inputs, kernel)
        if bias is None:
            return out
        expanded = tuple(inputs.shape[a] if a in batch_dims else 1 for a in range(ndim) if a not in axis)
        return out + adapter.xp.reshape(bias, expanded + features)

    def _normalize_axes(self, axes: tuple[int, ...], ndim: int, argument: str) -> tuple[int, ...]:
        for a in axes:
            if not -ndim <= a < ndim:
                raise self._error(f"{argument} {a} is out of range for an input of {ndim} dims")
        return tuple(sorted(a % ndim for a in axes))  # sorted, as flax lays out the kernel


class Einsum(Module):
    """``einsum(einsum_str, inputs, kernel) + bias`` with a kernel of ``shape`` (``flax.linen.Einsum``).

    ``einsum_str`` (given here or at call time) must be explicit (``->``) with
    exactly two operands.  The bias has the kernel's dims that reach the
    output, in output order, broadcast over the others.
    """

    shape: Sequence[int]
    einsum_str: str | None = None
    use_bias: bool = True
    dtype: Any = None
    param_dtype: Any = "float32"
    precision: Any = None
    kernel_init: Initializer = initializers.lecun_normal()
    bias_init: Initializer = initializers.zeros_init()

    @compact
    def __call__(self, inputs: Array, einsum_str: str | None = None) -> Array:
        inputs = self._check_input(inputs)
        einsum_str = self._merge("einsum_str", self.einsum_str, einsum_str).replace(" ", "")
        if "->" not in einsum_str:
            raise self._error('`einsum_str` equation must be explicit and include "->".')
        if einsum_str.count(",") != 1:
            raise self._error(
                "`einsum_str` equation must have exactly two operands and therefore, exactly one comma "
                f"character, instead of {einsum_str.count(',')}"
            )
        shape = tuple(self.shape)
        kernel = self.param("kernel", self.kernel_init, shape, self.param_dtype)
        (inputs_term, kernel_term), out_term = parse_einsum(einsum_str, [inputs.ndim, len(shape)])
        sizes = dict(zip(inputs_term, inputs.shape))
        for label, size in zip(kernel_term, shape):
            if sizes.setdefault(label, size) != size:
                raise self._error(f"label {label!r} of {einsum_str!r} has size {sizes[label]} in inputs of shape "
                                  f"{tuple(inputs.shape)} but {size} in the kernel of shape {shape}")
        bias = None
        if self.use_bias:
            bias_shape = tuple(shape[kernel_term.index(c)] for c in out_term if c in kernel_term)
            bias = self.param("bias", self.bias_init, bias_shape, self.param_dtype)
        adapter, inputs, kernel, bias = self._weighted(self.dtype, inputs, kernel, bias)
        y = adapter.einsum(einsum_str, inputs, kernel)
        if bias is None:
            return y
        broadcast = tuple(shape[kernel_term.index(c)] if c in kernel_term else 1 for c in out_term)
        return y + adapter.xp.reshape(bias, broadcast)


class Embed(Module):
    """A lookup table of ``num_embeddings`` vectors of size ``features`` (``flax.linen.Embed``).

    Param ``embedding`` ``(num_embeddings, features)``, initialised by default
    with ``variance_scaling(1, 'fan_in', 'normal', out_axis=0)`` (std
    ``1/sqrt(features)``).  ``__call__(ids)`` takes rows as ``jnp.take`` does:
    negative ids wrap, out-of-range ids give NaN rows.  ``attend(query)`` is
    ``query @ embedding.T``.
    """

    num_embeddings: int
    features: int
    dtype: Any = None
    param_dtype: Any = "float32"
    embedding_init: Initializer = initializers.variance_scaling(1.0, "fan_in", "normal", out_axis=0)

    def setup(self) -> None:
        self.embedding = self.param(
            "embedding", self.embedding_init, (self.num_embeddings, self.features), self.param_dtype
        )

    def __call__(self, inputs: Array) -> Array:
        inputs = self._check_input(inputs)
        adapter = self._adapter(inputs=inputs, embedding=self.embedding)
        xp = adapter.xp
        if not xp.isdtype(inputs.dtype, "integral"):
            raise self._error(f"Input type must be an integer or unsigned integer, got {inputs.dtype}")
        _, (embedding,) = self._operands(self.dtype, embedding=self.embedding)
        out_shape = tuple(inputs.shape) + (self.features,)
        if self.num_embeddings == 1:
            return xp.broadcast_to(embedding, out_shape)
        n = self.num_embeddings
        flat = xp.reshape(inputs, (-1,))
        # Validity in the ids' own dtype: a cast first would wrap uint32 2**32 - 1 to -1 (row n - 1).
        info = xp.iinfo(flat.dtype)
        valid = xp.ones_like(flat, dtype=xp.bool)
        if info.max >= n:
            valid = valid & (flat < n)
        if info.min <= -n:
            valid = valid & (flat >= -n)
        ids = xp.astype(xp.where(valid, flat, xp.zeros_like(flat)), adapter.default_int(device_of(flat)))
        rows = adapter.take_rows(embedding, ids % n)
        if xp.isdtype(rows.dtype, "real floating"):
            rows = xp.where(valid[:, None], rows, xp.full_like(rows, math.nan))
        return xp.reshape(rows, out_shape)

    def attend(self, query: Array) -> Array:
        """The similarity of ``query`` with every embedding: ``query @ embedding.T``, shape ``(..., num_embeddings)``."""
        query = self._check_input(query, "query")
        adapter, (query, embedding) = self._operands(self.dtype, query=query, embedding=self.embedding)
        return adapter.xp.matmul(query, adapter.xp.permute_dims(embedding, (1, 0)))

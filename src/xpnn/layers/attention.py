"""Attention layers: ``MultiHeadDotProductAttention``, ``MultiHeadAttention``, ``SelfAttention``,
and flax.linen's ``dot_product_attention`` (../shared/REFERENCE.md E.9).

Parameter trees, defaults and the autoregressive cache are flax.linen 0.12's,
so flax checkpoints and decode caches load unchanged.  ``xpnn.dot_product_attention``
is jax.nn's function; flax.linen's, the layers' default ``attention_fn``, is
this module's ``dot_product_attention`` (``xpnn.layers.dot_product_attention``), with
``combine_masks`` (``xpnn.layers.combine_masks``).
"""
from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable
from typing import Any

from xpnn import initializers
from xpnn._checks import device_of
from xpnn._dispatch import adapter_of
from xpnn._promotion import promote_dtype
from xpnn._types import Array
from xpnn.functions import attention as functions
from xpnn.layers.linear import DenseGeneral
from xpnn.layers.normalization import LayerNorm
from xpnn.module import Module, compact

__all__ = ["MultiHeadDotProductAttention", "MultiHeadAttention", "SelfAttention"]

Initializer = initializers.Initializer
_WHERE = "xpnn.layers.dot_product_attention"


def _flattened(xp: Any, t: Array | None, batch: tuple[int, ...], ndim: int) -> Array | None:
    """A bias or mask broadcastable to ``(batch..., N, T, S)`` as ``(prod(batch), N or 1, T or 1, S or 1)``."""
    if t is None:
        return None
    t = xp.reshape(t, (1,) * (ndim - t.ndim) + tuple(t.shape))
    lead = tuple(t.shape[:len(batch)])
    if lead != batch:
        t = xp.broadcast_to(t, batch + tuple(t.shape[len(batch):]))
    return xp.reshape(t, (math.prod(batch),) + tuple(t.shape[len(batch):]))


def dot_product_attention(query: Array, key: Array, value: Array, bias: Array | None = None,
                          mask: Array | None = None, broadcast_dropout: bool = True,
                          dropout_rng: Array | None = None, dropout_rate: float = 0.0,
                          deterministic: bool = False, dtype: Any = None, precision: Any = None,
                          module: Module | None = None, force_fp32_for_softmax: bool = False,
                          einsum_dot_general: Callable[..., Array] | None = None,
                          qk_attn_weights_einsum: Callable[..., Array] | None = None,
                          attn_weights_value_einsum: Callable[..., Array] | None = None) -> Array:
    r"""Dot-product attention, ``flax.linen.dot_product_attention``.

    query ``(batch..., T, N, H)``, key and value ``(batch..., S, N, H)``::

        out = dot_product_attention_weights(query, key, bias, mask, ...) @ value

    ``(batch..., T, N, H)``: the query scaled by ``1/sqrt(H)`` before the
    product, masked logits (mask False or 0) set to ``finfo(dtype).min``,
    softmax in ``dtype`` (float32 with ``force_fp32_for_softmax``), and
    attention dropout with ``dropout_rng`` unless ``deterministic``.  Without
    dropout or sown weights, float32 and float64 run on
    ``xpnn.dot_product_attention`` (its native kernels and its blocked path
    for long sequences): the same numbers within rounding.
    """
    if einsum_dot_general is not None or qk_attn_weights_einsum is not None or attn_weights_value_einsum is not None:
        raise ValueError(f"{_WHERE}: einsum_dot_general, qk_attn_weights_einsum and attn_weights_value_einsum "
                         "(jax.lax dot_general hooks) are not supported")
    ops = adapter_of(query, key, value)
    xp = ops.xp
    query, key, value = promote_dtype(ops, query, key, value, dtype=dtype, where=_WHERE)
    if not (query.ndim == key.ndim == value.ndim) or query.ndim < 3:
        raise ValueError(f"{_WHERE}: query, key and value must have the same rank (at least 3), got shapes "
                         f"{tuple(query.shape)}, {tuple(key.shape)} and {tuple(value.shape)}")
    if not (query.shape[:-3] == key.shape[:-3] == value.shape[:-3]) or not (
            query.shape[-2] == key.shape[-2] == value.shape[-2]) or key.shape[-3] != value.shape[-3]:
        raise ValueError(f"{_WHERE}: query (batch..., T, N, H), key and value (batch..., S, N, H) must share the "
                         f"batch dims and heads, and key and value the length: got {tuple(query.shape)}, "
                         f"{tuple(key.shape)} and {tuple(value.shape)}")
    dropout = not deterministic and dropout_rate > 0.0
    if not dropout and module is None and query.dtype in (xp.float32, xp.float64):
        batch = tuple(query.shape[:-3])
        ndim = query.ndim  # the masks: (batch..., N, T, S)
        if mask is not None and not xp.isdtype(mask.dtype, "bool"):
            mask = mask != 0
        if bias is not None:
            bias = xp.astype(bias, query.dtype)
        flat = [xp.reshape(t, (math.prod(batch),) + tuple(t.shape[-3:])) for t in (query, key, value)]
        out = functions.dot_product_attention(*flat, _flattened(xp, bias, batch, ndim),
                                              _flattened(xp, mask, batch, ndim))
        return xp.reshape(out, tuple(query.shape[:-1]) + (value.shape[-1],))
    weights = functions.dot_product_attention_weights(
        query, key, bias, mask, broadcast_dropout, dropout_rng, dropout_rate, deterministic, dtype, precision,
        module, force_fp32_for_softmax)
    heads_first = tuple(range(value.ndim - 3)) + (value.ndim - 2, value.ndim - 3, value.ndim - 1)
    out = xp.matmul(weights, xp.permute_dims(value, heads_first))
    return xp.permute_dims(out, heads_first)


def combine_masks(*masks: Array | None, dtype: Any = "float32") -> Array | None:
    r"""The logical AND of the masks that are not None, cast to ``dtype``: ``flax.linen.combine_masks``.

    None when every mask is None.  The masks must have the same rank; nonzero
    values of a numeric mask count as True.
    """
    present = [m for m in masks if m is not None]
    if not present:
        return None
    ops = adapter_of(*present)
    xp = ops.xp
    if any(m.ndim != present[0].ndim for m in present):
        raise ValueError(f"xpnn.layers.combine_masks: masks must have same rank: {tuple(m.ndim for m in present)}")
    combined = None
    for mask in present:
        keep = mask if xp.isdtype(mask.dtype, "bool") else mask != 0
        combined = keep if combined is None else combined & keep
    return xp.astype(combined, functions.mask_dtype(ops, dtype))


class MultiHeadDotProductAttention(Module):
    """Multi-head dot-product attention (``flax.linen.MultiHeadDotProductAttention``).

    ``q, k, v = DenseGeneral((num_heads, head_dim))`` of ``inputs_q``,
    ``inputs_k`` (default ``inputs_q``) and ``inputs_v`` (default ``inputs_k``);
    ``x = attention_fn(q, k, v, mask=...)``; ``out = DenseGeneral(out_features,
    axis=(-2, -1))(x)``.  Params ``query``, ``key``, ``value`` (kernel
    ``(in, num_heads, head_dim)``, bias ``(num_heads, head_dim)``) and ``out``
    (kernel ``(num_heads, head_dim, out_features)``); ``normalize_qk`` adds
    ``query_ln`` and ``key_ln`` (LayerNorm scales without bias).  ``mask``
    (True or 1 = attend) broadcasts to ``(batch..., num_heads, q_len, kv_len)``.

    ``decode=True`` keeps ``cached_key``, ``cached_value`` ``(batch..., max_len,
    num_heads, head_dim)`` and ``cache_index`` in the 'cache' collection: ``init``
    with a full-length input makes them, then each ``apply(...,
    mutable=['cache'])`` with one position writes it at ``cache_index`` and
    attends to the positions written so far.

    Attention dropout (``dropout_rate``) needs ``deterministic`` (here or at
    call time) and a 'dropout' key or ``dropout_rng``; ``sow_weights`` stores
    the weights in 'intermediates'.  The ``*_dot_general*`` and ``*_einsum_cls``
    fields, jax's hooks for quantized products, must stay None.
    """

    num_heads: int
    dtype: Any = None
    param_dtype: Any = "float32"
    qkv_features: int | None = None
    out_features: int | None = None
    broadcast_dropout: bool = True
    dropout_rate: float = 0.0
    deterministic: bool | None = None
    precision: Any = None
    kernel_init: Initializer = initializers.lecun_normal()
    out_kernel_init: Initializer | None = None
    bias_init: Initializer = initializers.zeros_init()
    out_bias_init: Initializer | None = None
    use_bias: bool = True
    attention_fn: Callable[..., Array] = dot_product_attention
    decode: bool = False
    normalize_qk: bool = False
    force_fp32_for_softmax: bool = False
    qkv_dot_general: Any = None
    out_dot_general: Any = None
    qkv_dot_general_cls: Any = None
    out_dot_general_cls: Any = None
    qk_attn_weights_einsum_cls: Any = None
    attn_weights_value_einsum_cls: Any = None

    @compact
    def __call__(self, inputs_q: Array, inputs_k: Array | None = None, inputs_v: Array | None = None, *,
                 inputs_kv: Array | None = None, mask: Array | None = None, deterministic: bool | None = None,
                 dropout_rng: Array | None = None, sow_weights: bool = False) -> Array:
        if inputs_kv is not None:
            if inputs_k is not None or inputs_v is not None:
                raise self._error("If either `inputs_k` or `inputs_v` is not None, `inputs_kv` must be None. "
                                  "Use inputs_k and inputs_v.")
            inputs_k = inputs_v = inputs_kv
            warnings.warn("The inputs_kv arg will be deprecated soon. Use inputs_k and inputs_v instead.",
                          DeprecationWarning, stacklevel=3)
        else:
            if inputs_k is None:
                if inputs_v is not None:
                    raise self._error("`inputs_k` cannot be None if `inputs_v` is not None. To have both "
                                      "`inputs_k` and `inputs_v` be the same value, pass in the value to "
                                      "`inputs_k` and leave `inputs_v` as None.")
                inputs_k = inputs_q
            if inputs_v is None:
                inputs_v = inputs_k
        return self._attend(inputs_q, inputs_k, inputs_v, mask, deterministic, dropout_rng, sow_weights)

    def _attend(self, inputs_q: Array, inputs_k: Array, inputs_v: Array, mask: Array | None,
                deterministic: bool | None, dropout_rng: Array | None, sow_weights: bool) -> Array:
        for argument, value in (("inputs_q", inputs_q), ("inputs_k", inputs_k), ("inputs_v", inputs_v)):
            self._check_input(value, argument)
            self._check_rank(value, 2, argument)
        for hook in ("qkv_dot_general", "out_dot_general", "qkv_dot_general_cls", "out_dot_general_cls",
                     "qk_attn_weights_einsum_cls", "attn_weights_value_einsum_cls"):
            if getattr(self, hook) is not None:
                raise self._error(f"{hook} (a jax.lax dot_general hook) is not supported; leave it None")
        features = self.out_features or inputs_q.shape[-1]
        qkv_features = self.qkv_features or inputs_q.shape[-1]
        if self.num_heads <= 0 or qkv_features % self.num_heads:
            raise self._error(f"Memory dimension ({qkv_features}) must be divisible by number of heads "
                              f"({self.num_heads}).")
        head_dim = qkv_features // self.num_heads

        def dense(name: str) -> DenseGeneral:
            return DenseGeneral(features=(self.num_heads, head_dim), axis=-1, dtype=self.dtype,
                                param_dtype=self.param_dtype, kernel_init=self.kernel_init,
                                bias_init=self.bias_init, use_bias=self.use_bias, precision=self.precision,
                                name=name)

        query, key, value = dense("query")(inputs_q), dense("key")(inputs_k), dense("value")(inputs_v)
        if self.normalize_qk:
            query = LayerNorm(name="query_ln", use_bias=False, dtype=self.dtype, param_dtype=self.param_dtype)(query)
            key = LayerNorm(name="key_ln", use_bias=False, dtype=self.dtype, param_dtype=self.param_dtype)(key)
        if self.decode:
            key, value, mask = self._decode_step(query, key, value, mask)
        if self.dropout_rate > 0.0:
            deterministic = self._merge("deterministic", self.deterministic, deterministic)
            if not deterministic and dropout_rng is None:
                dropout_rng = self.make_rng("dropout")
        else:
            deterministic = True
        options = dict(mask=mask, dropout_rng=dropout_rng, dropout_rate=self.dropout_rate,
                       broadcast_dropout=self.broadcast_dropout, deterministic=deterministic, dtype=self.dtype,
                       precision=self.precision, force_fp32_for_softmax=self.force_fp32_for_softmax)
        accepted = inspect.signature(self.attention_fn).parameters
        options = {name: value for name, value in options.items() if name in accepted}
        if sow_weights:
            options["module"] = self
        x = self.attention_fn(query, key, value, **options)
        return DenseGeneral(features=features, axis=(-2, -1), kernel_init=self.out_kernel_init or self.kernel_init,
                            bias_init=self.out_bias_init or self.bias_init, use_bias=self.use_bias,
                            dtype=self.dtype, param_dtype=self.param_dtype, precision=self.precision,
                            name="out")(x)

    def _decode_step(self, query: Array, key: Array, value: Array,
                     mask: Array | None) -> tuple[Array, Array, Array | None]:
        """flax's autoregressive cache: made at ``init``; afterwards the one new position is written
        at ``cache_index`` (a ``where`` over the positions, so the index stays an array under
        ``jax.jit``), the index advances, and the mask keeps the positions written so far."""
        xp = adapter_of(key).xp
        device = device_of(key)
        initialized = self.has_variable("cache", "cached_key")
        cached_key = self.variable("cache", "cached_key", xp.zeros, tuple(key.shape), dtype=key.dtype, device=device)
        cached_value = self.variable("cache", "cached_value", xp.zeros, tuple(value.shape), dtype=value.dtype,
                                     device=device)
        cache_index = self.variable("cache", "cache_index", xp.asarray, 0, dtype=xp.int32, device=device)
        if not initialized:
            return key, value, mask
        *batch, max_length, heads, depth = cached_key.value.shape
        expected = (*batch, 1, heads, depth)
        if expected != tuple(query.shape):
            raise self._error(f"Autoregressive cache shape error, expected query shape {expected} instead got "
                              f"{tuple(query.shape)}.")
        index = cache_index.value
        positions = xp.arange(max_length, dtype=index.dtype, device=device)
        at_index = xp.reshape(positions == index, (max_length, 1, 1))
        key = xp.where(at_index, xp.astype(key, cached_key.value.dtype), cached_key.value)
        value = xp.where(at_index, xp.astype(value, cached_value.value.dtype), cached_value.value)
        cached_key.value, cached_value.value = key, value
        cache_index.value = index + 1
        written = xp.broadcast_to(positions <= index, (*batch, 1, 1, max_length))
        return key, value, combine_masks(mask, written)


class MultiHeadAttention(MultiHeadDotProductAttention):
    """``MultiHeadDotProductAttention`` under flax's other name (its instances are auto-named
    ``MultiHeadAttention_<n>``, which decides their params' path and random keys)."""


class SelfAttention(MultiHeadDotProductAttention):
    """Self-attention: ``MultiHeadDotProductAttention`` of ``inputs_q`` with itself
    (``flax.linen.SelfAttention``; flax deprecates it, and so it warns)."""

    @compact
    def __call__(self, inputs_q: Array, mask: Array | None = None, deterministic: bool | None = None,
                 dropout_rng: Array | None = None, sow_weights: bool = False) -> Array:
        warnings.warn("SelfAttention will be deprecated soon. Use `MultiHeadDotProductAttention.__call__(inputs_q)` "
                      "instead.", DeprecationWarning, stacklevel=3)
        return self._attend(inputs_q, inputs_q, inputs_q, mask, deterministic, dropout_rng, sow_weights)

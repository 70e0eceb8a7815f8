r"""Attention functions: ``jax.nn.dot_product_attention`` and flax.linen's mask and weight helpers.

Layout, as in jax.nn and flax: the query is ``(batch..., T, N, H)`` (T query
positions, N heads of depth H), the key and value ``(batch..., S, K, H)``
(S key positions, K key/value heads; N a multiple of K is grouped-query
attention).  For each head, with the key/value head ``n // (N // K)``::

    logits = scale * (q @ k^T) + bias          (T, S), in float32 or wider
    logits = where(mask, logits, -0.7 * float32_max)
    out    = softmax(logits) @ v               (T, H)

A fully masked query row gets equal weights everywhere (the mean of the
values), never NaN, as in jax.nn.  When the score matrix would be large the
same result is computed block by block with a running maximum and sum (the
"flash" formulation), so memory grows with T, not T * S.

flax.linen's ``dot_product_attention`` (the default ``attention_fn`` of the
attention layers, with dropout) lives next to those layers, in
``xpnn.layers.attention``: its name is jax.nn's.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import array_api_compat

from xpnn import random
from xpnn._checks import device_of, dtype_argument
from xpnn._dispatch import public
from xpnn._errors import refuse
from xpnn._promotion import promote_dtype
from xpnn._types import Array
from xpnn.backends import Adapter, dtype_name

__all__ = ["dot_product_attention", "dot_product_attention_weights", "make_attention_mask", "make_causal_mask"]

#: Score matrices with more elements than this are computed in blocks (64 MiB in float32).
CHUNKED_ABOVE = 1 << 24
#: Elements of one block's scores in the blocked computation (16 MiB in float32).
BLOCK_ELEMENTS = 1 << 22
_IMPLEMENTATIONS = (None, "xla", "cudnn")


def _grouped_heads(ops: Adapter, t: Array, key_heads: int) -> Array:
    """A ``(b, n, T, S)`` bias or mask as ``(b, K, G, T, S)`` (n == N) or ``(b, 1, 1, T, S)`` (n == 1)."""
    b, n, rows, columns = t.shape
    if n == 1:
        return ops.xp.reshape(t, (b, 1, 1, rows, columns))
    return ops.xp.reshape(t, (b, key_heads, n // key_heads, rows, columns))


def _as_4d(ops: Adapter, t: Array | None) -> Array | None:
    if t is None or t.ndim >= 4:
        return t
    return ops.xp.reshape(t, (1,) * (4 - t.ndim) + tuple(t.shape))


def _structural_mask(ops: Adapter, like: Array, rows: tuple[int, int], columns: tuple[int, int],
                     is_causal: bool, window: tuple[int, int] | None,
                     query_lengths: Array | None, key_lengths: Array | None) -> Array | None:
    """The causal, window and length masks of query rows ``rows`` and key columns ``columns``
    (``(start, stop)``), as one boolean ``(B or 1, 1, 1, rows, columns)`` array; None if none applies."""
    xp = ops.xp
    device = device_of(like)
    if not is_causal and window is None and query_lengths is None and key_lengths is None:
        return None
    t = xp.arange(rows[0], rows[1], device=device)[:, None]
    s = xp.arange(columns[0], columns[1], device=device)[None, :]
    mask = xp.ones((rows[1] - rows[0], columns[1] - columns[0]), dtype=xp.bool, device=device)
    if is_causal:
        mask = mask & (s <= t)
    if window is not None:
        left, right = window
        mask = mask & (t <= s + left) & (t >= s - right)
    mask = mask[None, None, None, ...]
    if query_lengths is not None:
        mask = mask & (t[None, None, None, ...] < xp.reshape(query_lengths, (-1, 1, 1, 1, 1)))
    if key_lengths is not None:
        mask = mask & (s[None, None, None, ...] < xp.reshape(key_lengths, (-1, 1, 1, 1, 1)))
    return mask


def _block(t: Array | None, rows: tuple[int, int], columns: tuple[int, int]) -> Array | None:
    """Rows and columns of a grouped bias or mask, where those axes are not broadcast (size 1)."""
    if t is None:
        return None
    row_slice = slice(*rows) if t.shape[-2] != 1 else slice(None)
    column_slice = slice(*columns) if t.shape[-1] != 1 else slice(None)
    return t[..., row_slice, column_slice]


def _logits(ops: Adapter, q: Array, k_t: Array, scale: float, bias: Array | None, mask: Array | None,
            structural: Array | None) -> Array:
    """``where(mask, scale * q @ k_t + bias, -0.7 * float32_max)`` in the logits dtype."""
    xp = ops.xp
    logits = ops.matmul(q, k_t)
    logits = logits * xp.asarray(scale, dtype=logits.dtype, device=device_of(logits))
    if bias is not None:
        logits = xp.astype(logits + bias, logits.dtype)
    if mask is not None and structural is not None:
        mask = mask & structural
    elif mask is None:
        mask = structural
    if mask is not None:
        big_negative = -0.7 * float(xp.finfo(xp.float32).max)
        logits = xp.where(mask, logits, xp.asarray(big_negative, dtype=logits.dtype,
                                                   device=device_of(logits)))
    return logits


def _attention_grouped(ops: Adapter, q: Array, k: Array, v: Array, scale: float, bias: Array | None,
                       mask: Array | None, is_causal: bool, window: tuple[int, int] | None,
                       query_lengths: Array | None, key_lengths: Array | None,
                       block_rows: int, block_columns: int) -> tuple[Array, Array]:
    """Attention of the grouped query ``q`` ``(B, K, G, T, H)`` (in the logits dtype), key ``k``
    ``(B, K, 1, S, H)`` and value ``v`` ``(B, K, 1, S, H)``: the output ``(B, K, G, T, H)`` in
    ``v``'s dtype and the log-sum-exp of each row ``(B, K, G, T)``.

    With one block (``block_rows >= T`` and ``block_columns >= S``) this is jax.nn's
    computation: softmax in the logits dtype, probabilities rounded to the value dtype, then the
    product.  Otherwise each block of rows runs over the blocks of columns with a running
    maximum ``m``, sum ``l`` and output, rescaled by ``exp(m_old - m_new)`` as the maximum grows.
    """
    xp = ops.xp
    rows_total, columns_total = q.shape[-2], k.shape[-2]
    if rows_total == 0 or columns_total == 0:  # no queries, or no keys: jax.nn's empty sums, 0
        out = xp.zeros((*q.shape[:-1], v.shape[-1]), dtype=v.dtype, device=device_of(q))
        return out, xp.full(q.shape[:-1], -math.inf, dtype=q.dtype, device=device_of(q))
    k_t = xp.astype(xp.matrix_transpose(k), q.dtype)
    single = block_rows >= rows_total and block_columns >= columns_total
    outputs, sums = [], []
    for start in range(0, rows_total, block_rows):
        rows = (start, min(start + block_rows, rows_total))
        q_block = q[..., rows[0]:rows[1], :]
        m = l = acc = None
        for column_start in range(0, columns_total, block_columns):
            columns = (column_start, min(column_start + block_columns, columns_total))
            structural = _structural_mask(ops, q, rows, columns, is_causal, window, query_lengths, key_lengths)
            logits = _logits(ops, q_block, k_t[..., columns[0]:columns[1]], scale, _block(bias, rows, columns),
                             _block(mask, rows, columns), structural)
            block_max = ops.stop_gradient(xp.max(logits, axis=-1, keepdims=True))
            v_block = v[..., columns[0]:columns[1], :]
            if single:
                unnormalized = xp.exp(logits - block_max)
                total = xp.sum(unnormalized, axis=-1, keepdims=True)
                probabilities = xp.astype(unnormalized / total, v.dtype)
                outputs.append(ops.matmul(probabilities, v_block))
                sums.append(xp.log(total) + block_max)
                break
            new_m = block_max if m is None else xp.maximum(m, block_max)
            p = xp.exp(logits - new_m)
            block_sum = xp.sum(p, axis=-1, keepdims=True)
            block_out = ops.matmul(p, xp.astype(v_block, p.dtype))
            if m is None:
                l, acc = block_sum, block_out
            else:
                correction = xp.exp(m - new_m)
                l = l * correction + block_sum
                acc = acc * correction + block_out
            m = new_m
        if not single:
            outputs.append(xp.astype(acc / l, v.dtype))
            sums.append(xp.log(l) + m)
    out = outputs[0] if len(outputs) == 1 else xp.concat(outputs, axis=-2)
    lse = sums[0] if len(sums) == 1 else xp.concat(sums, axis=-2)
    return out, lse[..., 0]


def _blocks(batch: int, heads: int, rows: int, columns: int, chunked: bool | None) -> tuple[int, int]:
    """Block sizes (rows, columns): the whole matrix unless its scores exceed ``CHUNKED_ABOVE``
    elements (or ``chunked`` is True), then blocks of at most ``BLOCK_ELEMENTS`` scores."""
    scores = batch * heads * rows * columns
    if chunked is False or (chunked is None and scores <= CHUNKED_ABOVE):
        return max(rows, 1), max(columns, 1)
    per_row = max(BLOCK_ELEMENTS // max(batch * heads, 1), 1)
    block_columns = min(columns, max(1024, int(math.isqrt(per_row))), per_row) or 1
    block_rows = max(min(rows, per_row // block_columns), 1)
    return block_rows, block_columns


def _check_attention_arguments(ops: Adapter, query: Array, key: Array, value: Array, bias: Array | None,
                               mask: Array | None, query_seq_lengths: Array | None,
                               key_value_seq_lengths: Array | None, local_window_size: Any,
                               implementation: Any) -> tuple[int, int] | None:
    """jax.nn's argument checks, in its words where it has them; the window as a pair."""
    xp = ops.xp
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not array_api_compat.is_array_api_obj(t):
            raise refuse(TypeError, f"{name} must be an array, got {type(t).__name__}")
        if t.ndim not in (3, 4):
            raise refuse(ValueError, f"{name} must have shape (B, T, N, H) or (T, N, H), got {tuple(t.shape)}")
    if not xp.isdtype(query.dtype, "real floating"):
        raise refuse(TypeError, f"query must have a floating-point dtype, got {query.dtype}")
    if not key.ndim == value.ndim == query.ndim:
        raise refuse(ValueError, f"query, key and value must have the same number of dims, got shapes "
                                 f"{tuple(query.shape)}, {tuple(key.shape)} and {tuple(value.shape)}")
    if value.dtype != key.dtype:
        raise refuse(ValueError, f"value dtype should be {key.dtype}, but got {value.dtype}")
    if query.dtype != key.dtype:
        raise refuse(ValueError, f"query dtype should be {key.dtype}, but got {query.dtype}")
    if tuple(value.shape) != tuple(key.shape):
        raise refuse(ValueError, f"value shape should be {tuple(key.shape)}: but got {tuple(value.shape)}")
    if query.shape[-1] != key.shape[-1] or query.shape[:-3] != key.shape[:-3]:
        raise refuse(ValueError, f"query shape should be (B, T, N, H) with B and H of the key "
                                 f"{tuple(key.shape)}: but got {tuple(query.shape)}")
    heads, key_heads = query.shape[-2], key.shape[-2]
    if key_heads == 0 or heads % key_heads:
        raise refuse(ValueError, f"The number of query heads must be a multiple of key/value heads, "
                                 f"but got {heads} vs {key_heads}")
    batch = key.shape[0] if key.ndim == 4 else 1
    full = (batch, heads, query.shape[-3], key.shape[-3])
    for name, t in (("bias", bias), ("mask", mask)):
        if t is None:
            continue
        if not array_api_compat.is_array_api_obj(t):
            raise refuse(TypeError, f"{name} must be an array, got {type(t).__name__}")
        if name == "mask" and not xp.isdtype(t.dtype, "bool"):
            raise refuse(ValueError, f"mask dtype should be bool, but got {t.dtype}")
        if t.ndim > 4 or any(size not in (1, want) for size, want in zip(t.shape[::-1], full[::-1])):
            raise refuse(ValueError, f"{name} of shape {tuple(t.shape)} does not broadcast to (B, N, T, S) = {full}")
    for name, t in (("query_seq_lengths", query_seq_lengths), ("key_value_seq_lengths", key_value_seq_lengths)):
        if t is None:
            continue
        if not array_api_compat.is_array_api_obj(t) or not xp.isdtype(t.dtype, "integral"):
            raise refuse(TypeError, f"{name} must be an integer array of shape ({batch},), got "
                                    f"{getattr(t, 'dtype', type(t).__name__)}")
        if tuple(t.shape) != (batch,):
            raise refuse(ValueError, f"{name} shape should be ({batch},): but got {tuple(t.shape)}")
    if implementation not in _IMPLEMENTATIONS:
        raise refuse(ValueError, f"implementation must be None, 'xla' or 'cudnn', got {implementation!r}")
    if local_window_size is None:
        return None
    window = (local_window_size, local_window_size) if isinstance(local_window_size, int) else local_window_size
    if (not isinstance(window, tuple) or len(window) != 2
            or not all(isinstance(w, int) and not isinstance(w, bool) and w >= 0 for w in window)):
        raise refuse(ValueError, f"local_window_size must be a non-negative int or a pair (left, right) of them, "
                                 f"got {local_window_size!r}")
    return window


def _attention_validate(ops: Adapter, query: Array, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """``dot_product_attention``'s arguments checked before any fast path runs; ``local_window_size``
    as a pair, Python lists as arrays."""
    names = ("key", "value", "bias", "mask")
    if len(args) > len(names):
        raise refuse(TypeError, f"takes 5 positional arguments but {len(args) + 1} were given")
    given = dict(zip(names, args))
    for name in given:
        if name in kwargs:
            raise refuse(TypeError, f"got multiple values for argument {name!r}")
    given.update(kwargs)
    for name in ("key", "value"):
        if name not in given:
            raise refuse(TypeError, f"missing required argument {name!r}")
    for name in ("key", "value", "bias", "mask", "query_seq_lengths", "key_value_seq_lengths"):
        if isinstance(given.get(name), list):
            given[name] = ops.xp.asarray(given[name], device=device_of(query))
    window = _check_attention_arguments(
        ops, query, given["key"], given["value"], given.get("bias"), given.get("mask"),
        given.get("query_seq_lengths"), given.get("key_value_seq_lengths"), given.get("local_window_size"),
        given.get("implementation"))
    if window is not None:
        given["local_window_size"] = window
    positional = tuple(given.pop(name) for name in names[:len(args)])
    return positional, given


def _attention_probe(ops: Adapter, probe: Array) -> Array:
    """The kernel check's probe as a finite ``(2, 4, 2, 16)`` query: edge values squashed into
    (-4, 4), with a head size that CUDA's fused attention kernels take (a multiple of 8; torch
    sends an odd one to its math kernel, which a fused kernel's defect would then pass)."""
    xp = ops.xp
    finite = xp.where(xp.isfinite(probe), probe, xp.zeros_like(probe))
    return xp.reshape(xp.reshape(finite / (1.0 + xp.abs(finite)) * 4.0, (-1,))[:256], (2, 4, 2, 16))


def _probe_lengths(lengths: tuple[int, int]) -> Callable[[Array], Array]:
    def make(probe: Array) -> Array:
        xp = array_api_compat.array_namespace(probe)
        return xp.asarray(lengths, dtype=xp.int32, device=device_of(probe))
    return make


def _probe_mask(probe: Array) -> Array:
    """A ``(2, 1, 4, 3)`` mask with a fully masked row and a partly masked one."""
    xp = array_api_compat.array_namespace(probe)
    keep = xp.reshape(xp.arange(24, device=device_of(probe)) % 5 != 0, (2, 1, 4, 3))
    return keep & xp.reshape(xp.arange(4, device=device_of(probe)) != 1, (1, 1, 4, 1))


def _same(probe: Array) -> Array:
    return probe[:, :3]


def _one_key_head(probe: Array) -> Array:
    return probe[:, :3, :1]


_KV = {"key": _same, "value": _same}
_ATTENTION_PROBES = (
    ((), _KV),
    ((), {**_KV, "is_causal": True}),
    ((), {**_KV, "mask": _probe_mask}),
    ((), {**_KV, "bias": lambda probe: probe[:1, :2, :4, :3] * 3.0, "scale": 0.5}),
    ((), {**_KV, "local_window_size": (1, 0)}),
    ((), {**_KV, "query_seq_lengths": _probe_lengths((2, 4)), "key_value_seq_lengths": _probe_lengths((3, 1))}),
    ((), {"key": _one_key_head, "value": _one_key_head, "is_causal": True}),
)


@public(static=("scale", "is_causal", "local_window_size", "implementation", "return_residual"),
        probes=_ATTENTION_PROBES, probe_input=_attention_probe, validate=_attention_validate)
def dot_product_attention(
    ops: Adapter, query: Array,
    key: Array,
    value: Array,
    bias: Array | None = None,
    mask: Array | None = None,
    *,
    scale: float | None = None,
    is_causal: bool = False,
    query_seq_lengths: Array | None = None,
    key_value_seq_lengths: Array | None = None,
    local_window_size: int | tuple[int, int] | None = None,
    implementation: str | None = None,
    return_residual: bool = False,
) -> Array | tuple[Array, Array]:
    r"""Scaled dot-product attention, ``jax.nn.dot_product_attention`` on every backend.

    query ``(B, T, N, H)`` or ``(T, N, H)``; key and value ``(B, S, K, H)`` or
    ``(S, K, H)`` with N a multiple of K (grouped-query attention).  Per head::

        logits = scale * q @ k^T + bias              (scale default 1/sqrt(H))
        logits = where(mask, logits, -0.7 * float32_max)
        out    = softmax(logits) @ v

    in float32 for lower-precision inputs (the probabilities are rounded to the
    value dtype before the product), in float64 for float64 inputs (jax.nn
    rounds their softmax to float32; xpnn keeps the precision).  ``bias``
    and boolean ``mask`` (True = attend) broadcast to ``(B, N, T, S)``;
    ``is_causal`` allows key ``s <= t`` (top-left aligned when T != S);
    ``local_window_size=(l, r)`` allows ``t - l <= s <= t + r``;
    ``key_value_seq_lengths`` mask the padded keys and ``query_seq_lengths``
    zero the output rows of padded queries.  A fully masked row attends
    uniformly (no NaN).  ``return_residual`` also returns the log-sum-exp of
    the masked logits, ``(B, T, N)``.  ``implementation``: None picks the
    fastest exact path of the library (torch's ``scaled_dot_product_attention``,
    jax's own function), ``'xla'`` runs jax.nn's math, ``'cudnn'`` needs jax
    with cuDNN.  Large score matrices are computed in blocks with a running
    maximum and sum (O(T) memory), equal to the one-block result within
    rounding.
    """
    xp = ops.xp
    window = local_window_size
    if isinstance(window, int):
        window = (window, window)
    if implementation == "cudnn":
        raise refuse(ValueError, f"implementation='cudnn' needs jax with cuDNN on a GPU; {ops.name} arrays run "
                                 "implementation=None or 'xla'")
    unbatched = query.ndim == 3
    query, key, value = (_as_4d(ops, t) for t in (query, key, value))
    bias, mask = _as_4d(ops, bias), _as_4d(ops, mask)
    batch, rows, heads, depth = query.shape
    columns, key_heads = key.shape[1], key.shape[2]
    groups = heads // key_heads
    scale = 1.0 / math.sqrt(depth) if scale is None else float(scale)
    logits_dtype = xp.float64 if query.dtype == xp.float64 else xp.float32
    q = xp.permute_dims(xp.reshape(xp.astype(query, logits_dtype), (batch, rows, key_heads, groups, depth)),
                        (0, 2, 3, 1, 4))
    k = xp.permute_dims(key, (0, 2, 1, 3))[:, :, None, ...]
    v = xp.permute_dims(value, (0, 2, 1, 3))[:, :, None, ...]
    bias = None if bias is None else _grouped_heads(ops, bias, key_heads)
    mask = None if mask is None else _grouped_heads(ops, mask, key_heads)
    block_rows, block_columns = _blocks(batch, heads, rows, columns, None if implementation is None else False)
    out, lse = _attention_grouped(ops, q, k, v, scale, bias, mask, is_causal, window,
                                  query_seq_lengths, key_value_seq_lengths, block_rows, block_columns)
    out = xp.reshape(xp.permute_dims(out, (0, 3, 1, 2, 4)), (batch, rows, heads, depth))
    if query_seq_lengths is not None:
        valid = xp.arange(rows, device=device_of(out))[None, :] < query_seq_lengths[:, None]
        out = out * xp.astype(valid, out.dtype)[:, :, None, None]
    if unbatched:
        out = out[0, ...]
    if not return_residual:
        return out
    lse = xp.reshape(xp.permute_dims(xp.astype(lse, key.dtype), (0, 3, 1, 2)), (batch, rows, heads))
    return out, ops.stop_gradient(lse[0, ...] if unbatched else lse)


@public(static=("broadcast_dropout", "dropout_rate", "deterministic", "dtype", "precision",
                "force_fp32_for_softmax"), probes=(), reference="flax.linen.dot_product_attention_weights")
def dot_product_attention_weights(
    ops: Adapter, query: Array,
    key: Array,
    bias: Array | None = None,
    mask: Array | None = None,
    broadcast_dropout: bool = True,
    dropout_rng: Array | None = None,
    dropout_rate: float = 0.0,
    deterministic: bool = False,
    dtype: Any = None,
    precision: Any = None,
    module: Any = None,
    force_fp32_for_softmax: bool = False,
    einsum_dot_general: Callable[..., Array] | None = None,
    einsum: Callable[..., Array] | None = None,
) -> Array:
    r"""Attention weights ``(batch..., N, T, S)``, ``flax.linen.dot_product_attention_weights``.

    query ``(batch..., T, N, H)``, key ``(batch..., S, N, H)`` (any number of
    batch dims, as many heads)::

        w = softmax((q / sqrt(H)) @ k^T + bias)      (the query is scaled first)
        w = where(mask, w_logits, finfo(dtype).min)  before the softmax (mask: True or 1 = attend)

    in ``dtype`` (default: the promotion of the inputs), or the softmax in
    float32 with ``force_fp32_for_softmax``.  Unless ``deterministic`` or
    ``dropout_rate == 0``, each weight is kept with probability
    ``1 - dropout_rate`` (one mask over ``(T, S)`` shared by the batch and the
    heads when ``broadcast_dropout``) and divided by it; the key is
    ``dropout_rng``.  ``module`` sows the weights into its 'intermediates'.
    ``einsum_dot_general`` / ``einsum``, jax's hooks for quantized einsums,
    are refused.
    """
    xp = ops.xp
    if einsum_dot_general is not None or einsum is not None:
        raise refuse(ValueError, "einsum_dot_general and einsum (jax.lax dot_general hooks) are not supported: "
                                 "xpnn computes the products with the array library's matmul")
    query, key = promote_dtype(ops, query, key, dtype=dtype, where="xpnn.dot_product_attention_weights")
    dtype = query.dtype
    if query.ndim != key.ndim or query.ndim < 3:
        raise refuse(ValueError, f"query and key must have the same rank (at least 3), got shapes "
                                 f"{tuple(query.shape)} and {tuple(key.shape)}")
    if query.shape[:-3] != key.shape[:-3] or query.shape[-2:] != key.shape[-2:]:
        raise refuse(ValueError, f"query (batch..., T, N, H) and key (batch..., S, N, H) must share the batch "
                                 f"dims, the heads and the depth, got {tuple(query.shape)} and {tuple(key.shape)}")
    depth = query.shape[-1]
    query = query / xp.asarray(math.sqrt(depth), dtype=dtype, device=device_of(query))
    heads_first = tuple(range(query.ndim - 3)) + (query.ndim - 2, query.ndim - 3, query.ndim - 1)
    weights = ops.matmul(xp.permute_dims(query, heads_first), xp.matrix_transpose(xp.permute_dims(key, heads_first)))
    if bias is not None:
        weights = weights + bias
    if mask is not None:
        keep = mask if xp.isdtype(mask.dtype, "bool") else mask != 0
        weights = xp.where(keep, weights, xp.asarray(float(xp.finfo(dtype).min), dtype=weights.dtype,
                                                      device=device_of(weights)))
    if force_fp32_for_softmax and dtype != xp.float32:
        weights = xp.astype(weights, xp.float32)
    maximum = ops.stop_gradient(xp.max(weights, axis=-1, keepdims=True))
    unnormalized = xp.exp(weights - maximum)
    weights = unnormalized / xp.sum(unnormalized, axis=-1, keepdims=True)
    if not (force_fp32_for_softmax and dtype != xp.float32):
        weights = xp.astype(weights, dtype)
    if module is not None:
        module.sow("intermediates", "attention_weights", weights)
    if not deterministic and dropout_rate > 0.0:
        if dropout_rng is None:
            raise refuse(ValueError, "dropout_rng is required when dropout_rate > 0 and not deterministic")
        keep_prob = 1.0 - dropout_rate
        shape = (1,) * (key.ndim - 2) + tuple(weights.shape[-2:]) if broadcast_dropout else tuple(weights.shape)
        keep = random.bernoulli(dropout_rng, keep_prob, shape)
        weights = weights * (xp.astype(keep, dtype) / xp.asarray(keep_prob, dtype=dtype,
                                                                  device=device_of(weights)))
    return weights


def mask_dtype(ops: Adapter, dtype: Any) -> Any:
    """A mask's dtype argument (any library's dtype or its name; bool too) as ``ops``'s dtype."""
    if dtype is None:
        return ops.xp.float32
    if dtype_name(dtype) == "bool":
        return ops.xp.bool
    return dtype_argument(ops, dtype, "numeric", "float32")


@public(static=("pairwise_fn", "extra_batch_dims", "dtype"), probes=(), reference="flax.linen.make_attention_mask")
def make_attention_mask(ops: Adapter, query_input: Array, key_input: Array,
                        pairwise_fn: Callable[[Array, Array], Array] | None = None,
                        extra_batch_dims: int = 0, dtype: Any = "float32") -> Array:
    r"""A mask for attention, ``flax.linen.make_attention_mask``.

    ``mask[..., 0, q, k] = pairwise_fn(query_input[..., q], key_input[..., k])``
    (default: the product, so two boolean padding masks give True where both
    are True), with a heads axis of size 1 before the last two and
    ``extra_batch_dims`` leading axes of size 1, cast to ``dtype`` (float32).
    Shape: ``(1,) * extra_batch_dims + (batch..., 1, len_q, len_k)``.
    """
    xp = ops.xp
    if not array_api_compat.is_array_api_obj(key_input):
        key_input = xp.asarray(key_input, device=device_of(query_input))
    queries, keys = query_input[..., :, None], key_input[..., None, :]
    if pairwise_fn is not None:
        mask = pairwise_fn(queries, keys)
    elif xp.isdtype(queries.dtype, "bool") and xp.isdtype(keys.dtype, "bool"):
        mask = xp.logical_and(queries, keys)  # the product of booleans (the standard multiplies numbers only)
    else:
        mask = xp.multiply(queries, keys)
    mask = xp.expand_dims(mask, axis=-3)
    mask = xp.reshape(mask, (1,) * extra_batch_dims + tuple(mask.shape))
    return xp.astype(mask, mask_dtype(ops, dtype))


@public(static=("extra_batch_dims", "dtype"), probes=(), reference="flax.linen.make_causal_mask")
def make_causal_mask(ops: Adapter, x: Array, extra_batch_dims: int = 0, dtype: Any = "float32") -> Array:
    r"""A causal mask for self-attention, ``flax.linen.make_causal_mask``.

    ``mask[..., 0, i, j] = (i >= j)`` over positions ``arange(x.shape[-1])``,
    shape ``(1,) * extra_batch_dims + x.shape[:-1] + (1, L, L)``.  The length
    is ``x``'s last axis, as in flax: pass token ids ``(batch, L)``, not
    embeddings.
    """
    xp = ops.xp
    positions = xp.broadcast_to(xp.arange(x.shape[-1], dtype=xp.int32, device=device_of(x)),
                                tuple(x.shape))
    return make_attention_mask.written_once(ops, positions, positions, xp.greater_equal,
                                            extra_batch_dims=extra_batch_dims, dtype=dtype)

"""Conformance cases of the attention functions against jax.nn and flax.linen, and of the
block-scaled ``scaled_dot_general`` against jax's quantization.

Each case draws query, key, value (and its masks, biases, lengths) with NumPy,
runs xpnn on the backend (fast paths on, then off: both must agree with the
reference) and the reference function on jax with the same inputs.  jax.nn
rounds the float64 softmax to float32 (xpnn keeps float64), so float64 is
compared at float32's tolerance against it.  Also: the blocked (flash) path
against the one-block result and a 16-step decode against the full causal
pass of flax's MultiHeadDotProductAttention.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

import xpnn
from xpnn.conformance.backends import Backend, load
from xpnn.conformance.compare import Checked, compare, describe

Inputs = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class AttentionCase:
    """``function(**inputs, **kwargs)`` of xpnn against ``reference``'s, ``inputs`` drawn by ``draw(rng, dtype)``."""

    label: str
    function: str
    reference: str
    draw: Callable[[np.random.Generator, str], Inputs]
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    dtypes: tuple[str, ...] = ("float16", "bfloat16", "float32", "float64")
    #: Whether the inputs' first axis is a batch axis: the sharded jax column splits it over
    #: devices.  An unbatched (T, N, H) query split along T is sequence parallelism, which needs
    #: collectives that jax.nn refuses to choose under explicit mesh axes, as xpnn does.
    batched: bool = True


def _qkv(batch: int, rows: int, columns: int, heads: int, key_heads: int, depth: int,
         batch_dims: tuple[int, ...] | None = None) -> Callable[[np.random.Generator, str], Inputs]:
    lead = (batch,) if batch_dims is None else batch_dims

    def draw(rng: np.random.Generator, dtype: str) -> Inputs:
        return {"query": rng.standard_normal((*lead, rows, heads, depth)),
                "key": rng.standard_normal((*lead, columns, key_heads, depth)),
                "value": rng.standard_normal((*lead, columns, key_heads, depth))}

    return draw


def _with(draw: Callable[[np.random.Generator, str], Inputs],
          **extra: Callable[[np.random.Generator], np.ndarray]) -> Callable[[np.random.Generator, str], Inputs]:
    def drawn(rng: np.random.Generator, dtype: str) -> Inputs:
        inputs = draw(rng, dtype)
        inputs.update({name: make(rng) for name, make in extra.items()})
        return inputs

    return drawn


def _mask(shape: tuple[int, ...], fully_masked_row: bool = True) -> Callable[[np.random.Generator], np.ndarray]:
    def make(rng: np.random.Generator) -> np.ndarray:
        mask = rng.random(shape) > 0.3
        if fully_masked_row:
            mask[..., 1, :] = False
        return mask

    return make


def _lengths(values: tuple[int, ...]) -> Callable[[np.random.Generator], np.ndarray]:
    return lambda rng: np.asarray(values, dtype=np.int32)


_BASE = _qkv(2, 5, 7, 4, 4, 8)
_JAX = "jax.nn.dot_product_attention"
ATTENTION_CASES: tuple[AttentionCase, ...] = (
    AttentionCase("dot_product_attention (B,T,N,H)", "dot_product_attention", _JAX, _BASE),
    AttentionCase("dot_product_attention 3-D", "dot_product_attention", _JAX, _qkv(1, 5, 6, 2, 2, 8, ()),
                  batched=False),
    AttentionCase("dot_product_attention GQA 4:2", "dot_product_attention", _JAX, _qkv(2, 5, 7, 4, 2, 8)),
    AttentionCase("dot_product_attention MQA causal T<S", "dot_product_attention", _JAX, _qkv(2, 5, 7, 4, 1, 8),
                  {"is_causal": True}),
    AttentionCase("dot_product_attention causal T>S", "dot_product_attention", _JAX, _qkv(2, 7, 5, 2, 2, 8),
                  {"is_causal": True}),
    AttentionCase("dot_product_attention bias (1,N,T,S)", "dot_product_attention", _JAX,
                  _with(_BASE, bias=lambda rng: rng.standard_normal((1, 4, 5, 7)))),
    AttentionCase("dot_product_attention mask (B,1,T,S), fully masked row", "dot_product_attention", _JAX,
                  _with(_BASE, mask=_mask((2, 1, 5, 7)))),
    AttentionCase("dot_product_attention mask (T,S) + bias (B,N,T,S), scale", "dot_product_attention", _JAX,
                  _with(_BASE, mask=_mask((5, 7)), bias=lambda rng: rng.standard_normal((2, 4, 5, 7))),
                  {"scale": 0.3}),
    AttentionCase("dot_product_attention local window (2, 1)", "dot_product_attention", _JAX, _BASE,
                  {"local_window_size": (2, 1)}),
    AttentionCase("dot_product_attention window 1 + causal", "dot_product_attention", _JAX, _BASE,
                  {"local_window_size": 1, "is_causal": True}),
    AttentionCase("dot_product_attention seq lengths", "dot_product_attention", _JAX,
                  _with(_BASE, query_seq_lengths=_lengths((3, 5)), key_value_seq_lengths=_lengths((7, 2)))),
    AttentionCase("dot_product_attention GQA + mask + kv lengths + causal", "dot_product_attention", _JAX,
                  _with(_qkv(2, 5, 7, 4, 2, 8), mask=_mask((2, 4, 5, 7)), key_value_seq_lengths=_lengths((4, 6))),
                  {"is_causal": True}),
    AttentionCase("dot_product_attention_weights", "dot_product_attention_weights",
                  "flax.linen.dot_product_attention_weights",
                  _with(_qkv(2, 5, 7, 3, 3, 8, (2, 3)), mask=_mask((2, 3, 1, 5, 7)))),
    AttentionCase("dot_product_attention_weights bias, force_fp32_for_softmax", "dot_product_attention_weights",
                  "flax.linen.dot_product_attention_weights",
                  _with(_qkv(2, 5, 7, 3, 3, 8), bias=lambda rng: rng.standard_normal((2, 3, 5, 7))),
                  {"force_fp32_for_softmax": True}),
    AttentionCase("layers.dot_product_attention (flax) 2 batch dims, float mask", "layers.dot_product_attention",
                  "flax.linen.dot_product_attention",
                  _with(_qkv(2, 5, 7, 3, 3, 8, (2, 3)),
                        mask=lambda rng: (rng.random((2, 1, 3, 5, 7)) > 0.3).astype(np.float32))),
)


def _reference(case: AttentionCase, inputs: dict[str, Any]) -> Any:
    import flax.linen as fnn
    import jax
    import jax.numpy as jnp

    if case.reference == _JAX:
        if inputs["query"].dtype == jnp.float16:
            # jax's CPU has no float16 attention (its F16_F16_F32 products do not compile): the
            # same float16 values in float32, which is how jax computes their logits and softmax,
            # rounded to float16 at the end
            wide = {n: v.astype(jnp.float32) if v.dtype == jnp.float16 else v for n, v in inputs.items()}
            return jax.nn.dot_product_attention(**wide, **case.kwargs).astype(jnp.float16)
        return jax.nn.dot_product_attention(**inputs, **case.kwargs)
    name = case.reference.rsplit(".", 1)[1]
    return getattr(fnn, name)(**inputs, **case.kwargs)


def _function(case: AttentionCase) -> Callable[..., Any]:
    if case.function.startswith("layers."):
        return getattr(xpnn.layers, case.function.split(".", 1)[1])
    return getattr(xpnn, case.function)


def _as_dtype(name: str, value: np.ndarray, dtype: str) -> tuple[np.ndarray, str]:
    """The input in the case's dtype: floats in ``dtype`` (float32 masks stay float32), masks
    and lengths as they are."""
    if value.dtype.kind == "f" and not (name == "mask" and value.dtype == np.float32):
        return value, dtype
    return value, str(value.dtype)


def run_attention(case: AttentionCase, backend: Backend, dtype: str) -> Checked:
    """xpnn's function on ``backend`` (fast paths on and off) against the reference's."""
    load("jax")
    import jax.numpy as jnp

    inputs = case.draw(np.random.default_rng(0), dtype)
    if case.function == "dot_product_attention_weights":
        del inputs["value"]
    typed = {name: _as_dtype(name, value, dtype) for name, value in inputs.items()}
    host = {name: (value.astype(np.float32 if d == "bfloat16" else d)) for name, (value, d) in typed.items()}
    expected = np.asarray(jnp.asarray(_reference(case, {n: jnp.asarray(v, dtype=typed[n][1])
                                                         for n, v in host.items()}), dtype="float32"
                                      if dtype == "bfloat16" else None))
    arrays = {name: backend.asarray(value, d) for name, (value, d) in typed.items()}
    comparisons, out = [], None
    tolerance = {"float16": (4e-3, 4e-3), "bfloat16": (2e-2, 2e-2), "float32": (2e-6, 2e-6),
                 "float64": (2e-6, 2e-6)}[dtype]
    problem = ""
    for fast in (True, False):
        with xpnn.fast_paths(fast):
            out = _function(case)(**arrays, **case.kwargs)
        actual = backend.to_numpy(out)
        if type(out) is not type(arrays["query"]):
            problem = f"output library {type(out).__module__} differs from the input's"
        want = expected.astype(actual.dtype) if dtype == "bfloat16" else expected
        if actual.dtype != want.dtype:
            problem = f"output dtype {actual.dtype} differs from the reference's {want.dtype}"
        comparisons.append(compare(actual, want, dtype, tolerance=tolerance, zero_signs=False))
    worst = max(comparisons, key=lambda c: (not c.passed, c.max_abs))
    return Checked(worst, problem, describe(out))


def run_chunked(backend: Backend, dtype: str) -> Checked:
    """The blocked path (blocks of 3 rows and 4 columns) against the one-block result, with a
    causal mask, a fully masked row, GQA and key lengths."""
    from xpnn.functions import attention

    inputs = _with(_qkv(2, 11, 13, 4, 2, 8), mask=_mask((2, 4, 11, 13)),
                   key_value_seq_lengths=_lengths((13, 6)))(np.random.default_rng(3), dtype)
    arrays = {name: backend.asarray(value, dtype if value.dtype.kind == "f" else str(value.dtype))
              for name, value in inputs.items()}
    with xpnn.fast_paths(False):
        whole, whole_lse = xpnn.dot_product_attention(**arrays, is_causal=True, return_residual=True)
        limits = attention.CHUNKED_ABOVE, attention.BLOCK_ELEMENTS
        attention.CHUNKED_ABOVE, attention.BLOCK_ELEMENTS = 0, 2 * 4 * 3 * 4
        try:
            blocked, blocked_lse = xpnn.dot_product_attention(**arrays, is_causal=True, return_residual=True)
        finally:
            attention.CHUNKED_ABOVE, attention.BLOCK_ELEMENTS = limits
    tolerance = {"float32": (4e-6, 4e-6), "float64": (1e-13, 1e-13)}[dtype]
    outputs = compare(backend.to_numpy(blocked), backend.to_numpy(whole), dtype, tolerance=tolerance,
                      zero_signs=False)
    sums = compare(backend.to_numpy(blocked_lse), backend.to_numpy(whole_lse), dtype, tolerance=tolerance)
    return Checked(outputs if not outputs.passed else sums, "", describe(blocked))


def run_decode(backend: Backend, dtype: str) -> Checked:
    """16 one-token steps of ``MultiHeadDotProductAttention(decode=True)`` with flax's variables
    (params and cache) against flax's full pass with a causal mask."""
    load("jax")
    import flax.linen as fnn
    import jax

    steps = 16
    x = np.random.default_rng(4).standard_normal((2, steps, 8)).astype(dtype)
    flax_layer = fnn.MultiHeadDotProductAttention(num_heads=2, decode=True, param_dtype=dtype)
    variables = flax_layer.init(jax.random.key(0), x)
    full = fnn.MultiHeadDotProductAttention(num_heads=2, param_dtype=dtype)
    expected = np.asarray(full.apply({"params": variables["params"]}, x, mask=fnn.make_causal_mask(x[..., 0])))
    layer = xpnn.MultiHeadDotProductAttention(num_heads=2, decode=True, param_dtype=dtype)
    state = xpnn.to_backend(variables, backend.like())
    outputs = []
    for t in range(steps):
        out, cache = layer.apply(state, backend.asarray(x[:, t:t + 1], dtype), mutable=["cache"])
        state = {**state, **cache}
        outputs.append(backend.to_numpy(out))
    actual = np.concatenate(outputs, axis=1)
    tolerance = {"float32": (4e-6, 4e-6), "float64": (1e-12, 1e-12)}[dtype]
    return Checked(compare(actual, expected, dtype, tolerance=tolerance, zero_signs=False), "", describe(out))


def run_masks(function: str, backend: Backend, dtype: str) -> Checked:
    """``make_attention_mask`` of two padding masks (and with ``extra_batch_dims``, a comparison
    as ``pairwise_fn``) or ``make_causal_mask`` of token ids, against flax's, in ``dtype``."""
    load("jax")
    import flax.linen as fnn
    import jax.numpy as jnp

    ids = np.random.default_rng(5).integers(0, 3, size=(2, 6)).astype(np.int32)
    x = backend.asarray(ids, "int32")
    if function == "make_causal_mask":
        expected = [np.asarray(fnn.make_causal_mask(jnp.asarray(ids), extra_batch_dims=1, dtype=dtype))]
        outputs = [xpnn.make_causal_mask(x, extra_batch_dims=1, dtype=dtype)]
    else:
        keys = ids[:, :4]
        expected = [np.asarray(fnn.make_attention_mask(jnp.asarray(ids) > 0, jnp.asarray(keys) > 0, dtype=dtype)),
                    np.asarray(fnn.make_attention_mask(jnp.asarray(ids), jnp.asarray(keys), jnp.greater_equal,
                                                       extra_batch_dims=2, dtype=dtype))]
        xk = backend.asarray(keys, "int32")
        outputs = [xpnn.make_attention_mask(x > 0, xk > 0, dtype=dtype),
                   xpnn.make_attention_mask(x, xk, backend.xp.greater_equal, extra_batch_dims=2, dtype=dtype)]
    comparisons = []
    problem = ""
    for out, want in zip(outputs, expected):
        actual = backend.to_numpy(out)
        if actual.shape != want.shape or actual.dtype != want.dtype:
            problem = f"shape {actual.shape} and dtype {actual.dtype}, flax's {want.shape} and {want.dtype}"
            actual = np.zeros_like(want)
        comparisons.append(compare(actual, want, dtype, tolerance=(0.0, 0.0)))
    worst = max(comparisons, key=lambda c: (not c.passed, c.max_abs))
    return Checked(worst, problem, describe(outputs[0]))


def _quantized_reference(x: np.ndarray, mode: str, global_scale: float | None, jax_quantize: bool) -> np.ndarray:
    """jax's ``quantize`` (``jax._src.cudnn.scaled_matmul_stablehlo``) dequantized to float64:
    ``(B, M, K)`` values times their block scales.  With ``jax_quantize`` jax's own function
    (XLA's arithmetic, for xpnn on jax arrays); otherwise its steps in NumPy with ml_dtypes'
    float8/float4 casts (IEEE division, round to nearest even as the OCP formats define)."""
    import ml_dtypes

    if jax_quantize:
        import jax
        import jax.numpy as jnp
        from jax._src.cudnn import scaled_matmul_stablehlo as cudnn

        config = jax.nn.get_scaled_dot_general_config(
            mode, None if global_scale is None else jnp.asarray([global_scale], jnp.float32))
        values, scales = cudnn.quantize(jnp.asarray(x), config)
        decoded = np.repeat(np.asarray(scales.astype(jnp.float32), np.float64), config.block_size, axis=-1)
        return np.asarray(values.astype(jnp.float32), np.float64) * decoded

    block = 32 if mode == "mxfp8" else 16
    blocks = x.reshape(*x.shape[:-1], x.shape[-1] // block, block)
    if mode == "mxfp8":
        scales = np.abs(blocks).max(axis=-1, keepdims=True) / blocks.dtype.type(448.0)
        bits = scales.astype(np.float32).view(np.uint32)
        exponent, mantissa = bits >> 23, bits & 0x7FFFFF
        round_up = (mantissa > 0) & (exponent != 0xFE) & ~((exponent == 0) & (mantissa <= 0x400000))
        exponent = np.where(round_up, exponent + 1, exponent).astype(np.uint32)
        decoded = (exponent << 23).view(np.float32)
        decoded = np.where(decoded == 0, np.float32(2.0 ** -127), decoded).astype(blocks.dtype)
        values = np.clip(blocks / decoded, -448, 448).astype(ml_dtypes.float8_e4m3fn)
    else:
        blocks = blocks.astype(np.float64 if blocks.dtype == np.float64 else np.float32) / np.float32(global_scale)
        scales = np.clip(np.abs(blocks).max(axis=-1, keepdims=True) / np.float32(6.0), 0, 448)
        decoded = scales.astype(ml_dtypes.float8_e4m3fn).astype(np.float32)
        values = np.clip(blocks / decoded, -6, 6).astype(ml_dtypes.float4_e2m1fn)
    dequantized = values.astype(np.float64) * decoded.astype(np.float64)
    return dequantized.reshape(x.shape)


def run_scaled_dot_general(backend: Backend, dtype: str) -> Checked:
    """``scaled_dot_general`` in both modes (a batched and an unbatched contraction) against jax's
    quantization (see :func:`_quantized_reference`), then the block-scaled product in float64.
    jax's own function runs only on GPUs with cuDNN; its quantization runs on the CPU too, where
    XLA's fused ``x / scale`` is not always the correctly rounded quotient, which moves a few
    values that should fall on a tie of the float4 grid (5.0 between 4 and 6) to the next
    value: xpnn on jax arrays computes with XLA too and agrees with it; elsewhere the division
    is IEEE and the reference is NumPy's."""
    load("jax")
    from jax._src.cudnn import scaled_matmul_stablehlo as cudnn

    rng = np.random.default_rng(6)
    comparisons, out = [], None
    for mode, global_scale in (("mxfp8", None), ("nvfp4", 0.5)):
        configs = [xpnn.get_scaled_dot_general_config(mode, global_scale)] * 3
        for numbers, lhs_shape, rhs_shape in (((((2,), (2,)), ((0,), (0,))), (3, 16, 64), (3, 8, 64)),
                                              ((((1,), (0,)), ((), ())), (5, 64), (64, 7))):
            lhs = (rng.standard_normal(lhs_shape) * np.exp(rng.standard_normal(lhs_shape))).astype(dtype)
            rhs = rng.standard_normal(rhs_shape).astype(dtype)
            (lc, rc), (lb, rb) = numbers
            parts = [_quantized_reference(np.asarray(cudnn.shape_normalization(operand, (contract, batch))),
                                          mode, global_scale, jax_quantize=backend.name == "jax")
                     for operand, contract, batch in ((lhs, lc, lb), (rhs, rc, rb))]
            expected = parts[0] @ np.swapaxes(parts[1], -1, -2) * (global_scale or 1.0) ** 2
            expected = expected.astype(np.float32).reshape(
                cudnn.compute_dot_output_shape(lhs.shape, rhs.shape, (lc, lb), (rc, rb)))
            out = xpnn.scaled_dot_general(backend.asarray(lhs, dtype), backend.asarray(rhs, dtype), numbers,
                                          configs=configs)
            comparisons.append(compare(backend.to_numpy(out), expected, "float32",
                                       tolerance=(1e-6, 1e-6 * float(np.abs(expected).max()))))
    worst = max(comparisons, key=lambda c: (not c.passed, c.max_abs))
    return Checked(worst, "", describe(out))


def run_one_hot(backend: Backend, dtype: str) -> Checked:
    """``one_hot`` of integer ids (negative and out-of-range ones included, which give all-zero
    rows) in the backend's int32 and uint8, along the last and the first axis, in ``dtype``,
    against ``jax.nn.one_hot``; the output's dtype is the one asked."""
    load("jax")
    import jax.nn
    import jax.numpy as jnp

    ids = np.array([[0, 3, -1, 4], [2, 7, 1, -4]], np.int64)  # 4 classes: 7 and the negatives are out of range
    comparisons, out = [], None
    for ints, axis in (("int32", -1), ("uint8", 0)):
        host = np.where(ids < 0, 200, ids).astype(ints) if ints == "uint8" else ids.astype(ints)
        expected = np.asarray(jax.nn.one_hot(jnp.asarray(host), 4, axis=axis, dtype=jnp.float32))
        out = xpnn.one_hot(backend.xp.asarray(host), 4, axis=axis, dtype=getattr(backend.xp, dtype, None) or dtype)
        comparisons.append(compare(backend.to_numpy(out), expected, dtype))
    worst = max(comparisons, key=lambda c: (not c.passed, c.max_abs))
    name = xpnn.backends.dtype_name(out.dtype)
    return Checked(worst, "" if name == dtype else f"output dtype {name} differs from {dtype}", describe(out))


def run_scaled_matmul(backend: Backend, dtype: str) -> Checked:
    """``scaled_matmul`` of 3-D operands ``(B, M, K)``, ``(B, N, K)`` with block scales of two
    block sizes against ``jax.nn.scaled_matmul``'s definition evaluated in float64 (jax's kernel
    runs only on GPUs with cuDNN): ``sum_k lhs * lhs_scales[k // block] * rhs * rhs_scales[...]``,
    in float32 (its ``preferred_element_type``)."""
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((2, 3, 64)), rng.standard_normal((2, 5, 64))
    a_scales, b_scales = rng.uniform(0.5, 2.0, (2, 3, 2)), rng.uniform(0.5, 2.0, (2, 5, 4))
    operands = [v.astype(dtype) for v in (a, b, a_scales, b_scales)]
    wide = [v.astype(np.float64) for v in operands]
    expected = np.einsum("bmk,bnk->bmn", wide[0] * np.repeat(wide[2], 32, axis=-1),
                         wide[1] * np.repeat(wide[3], 16, axis=-1)).astype(np.float32)
    out = xpnn.scaled_matmul(*(backend.asarray(v, dtype) for v in operands))
    comparison = compare(backend.to_numpy(out), expected, "float32",
                         tolerance=(1e-5, 1e-5 * float(np.abs(expected).max())))
    name = xpnn.backends.dtype_name(out.dtype)
    return Checked(comparison, "" if name == "float32" else f"output dtype {name}, not float32", describe(out))

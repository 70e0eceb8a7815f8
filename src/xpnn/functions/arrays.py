r"""Array utilities of ``jax.nn``: ``one_hot``, ``identity``, the block-scaled ``scaled_matmul`` and
``scaled_dot_general`` (with ``get_scaled_dot_general_config``)."""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from xpnn._checks import _as_int, device_of, dtype_argument, normalize_axis
from xpnn._dispatch import Argument, public
from xpnn._errors import refuse
from xpnn._types import Array
from xpnn.backends import Adapter, dtype_name

__all__ = ["one_hot", "identity", "scaled_matmul", "scaled_dot_general"]


_NUM_CLASSES = Argument(0, "num_classes")
_DTYPE = Argument(None, "dtype")


def _one_hot_arguments(ops: Adapter, x: Array, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """``num_classes`` as a Python int (a NumPy or concrete 0-d integer too: jax would refuse
    it as an unhashable static argument) and ``dtype`` as a dtype of ``x``'s library (a name
    such as "int32", or another library's dtype of that name), before any fast path runs."""
    count = _NUM_CLASSES.get(args, kwargs)
    index = _as_int(count)
    if index is None:
        raise refuse(TypeError, f"num_classes must be a non-negative int, got {type(count).__name__} {count!r}")
    if index < 0:
        raise refuse(ValueError, f"num_classes must be a non-negative int, got {count!r}")
    args, kwargs = _NUM_CLASSES.replace(args, kwargs, index)
    dtype = _DTYPE.get(args, kwargs)
    if dtype is not None:
        args, kwargs = _DTYPE.replace(args, kwargs, dtype_argument(ops, dtype, "numeric", "float32"))
    return args, kwargs


@public(static=("num_classes", "dtype", "axis"), probes=(((5,), {}),), validate=_one_hot_arguments)
def one_hot(ops: Adapter, x: Array, num_classes: int, *, dtype: Any = None, axis: int = -1) -> Array:
    r"""One-hot encoding: ``out[..., c, ...] = (x == c)`` along a new ``axis`` of length ``num_classes``.

    Matches ``jax.nn.one_hot``: ``dtype`` and ``axis`` are keyword-only, the
    default dtype is the library's default float, and out-of-range or negative
    indices give all-zero rows (no wrap-around).  ``x`` must be an integer
    array (jax only warns on floats; xpnn refuses them: a float index that is
    not whole would silently give a zero row).
    """
    xp = ops.xp
    if not xp.isdtype(x.dtype, "integral"):
        raise refuse(TypeError, f"x must be an integer array of class indices, got dtype {x.dtype}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise refuse(ValueError, f"num_classes must be a non-negative int, got {num_classes!r}")
    out_axis = normalize_axis(axis, x.ndim + 1)
    device = device_of(x)
    if dtype is None:
        dtype = xp.__array_namespace_info__().default_dtypes(device=device)["real floating"]
    if num_classes and num_classes - 1 > xp.iinfo(x.dtype).max:
        # arange(num_classes) in x's dtype would wrap (uint8: 256 == 0, jax.nn's bug): compare in
        # the library's default integer dtype, which holds both.
        x = xp.astype(x, xp.__array_namespace_info__().default_dtypes(device=device)["integral"])
    classes_shape = [1] * (x.ndim + 1)
    classes_shape[out_axis] = num_classes
    classes = xp.reshape(xp.arange(num_classes, dtype=x.dtype, device=device), tuple(classes_shape))
    return xp.astype(xp.expand_dims(x, axis=out_axis) == classes, dtype)


@public(traits=("elementwise",))
def identity(ops: Adapter, x: Array) -> Array:
    r"""Identity, f(x) = x, as a new array of the same dtype. Matches ``jax.nn.identity``."""
    return ops.copy(x)


def _block_scaled(xp, operand: Array, scales: Array, preferred_element_type: Any, name: str) -> Array:
    """``operand * repeat(scales, block, axis=-1)`` in ``preferred_element_type``, via a reshape."""
    batch, rows, depth = operand.shape
    if scales.shape[:2] != (batch, rows) or scales.shape[2] == 0 or depth % scales.shape[2]:
        raise refuse(ValueError, f"{name}_scales must have shape ({batch}, {rows}, K_s) with K_s dividing "
                                 f"K={depth}, got {tuple(scales.shape)}")
    blocks = scales.shape[2]
    operand = xp.reshape(
        xp.astype(operand, preferred_element_type), (batch, rows, blocks, depth // blocks)
    )
    scales = xp.astype(scales, preferred_element_type)[..., None]
    return xp.reshape(operand * scales, (batch, rows, depth))


@public(static=("preferred_element_type",), probes=())
def scaled_matmul(
    ops: Adapter, lhs: Array,
    rhs: Array,
    lhs_scales: Array,
    rhs_scales: Array,
    preferred_element_type: Any = None,
) -> Array:
    r"""Block-scaled matrix multiplication, ``jax.nn.scaled_matmul``'s definition on every backend.

    With ``lhs`` of shape ``(B, M, K)``, ``rhs`` ``(B, N, K)`` and scales
    ``(B, M, K_a)`` and ``(B, N, K_b)`` (block sizes ``K // K_a`` and ``K // K_b``):

        out[b, m, n] = sum over k of (lhs[b, m, k] * lhs_scales[b, m, k // (K // K_a)])
                                    * (rhs[b, n, k] * rhs_scales[b, n, k // (K // K_b)])

    computed in ``preferred_element_type`` (default float32, as in jax).  jax's
    own version runs only on GPUs with cuDNN block-scaled kernels; this one
    runs anywhere, for quantized (float8) or ordinary inputs.
    """
    xp = ops.xp
    for name, value in (("lhs", lhs), ("rhs", rhs), ("lhs_scales", lhs_scales), ("rhs_scales", rhs_scales)):
        if value.ndim != 3:
            raise refuse(ValueError, f"{name} must be 3-dimensional, got shape {tuple(value.shape)}")
    if lhs.shape[0] != rhs.shape[0] or lhs.shape[2] != rhs.shape[2]:
        raise refuse(ValueError, f"lhs (B, M, K) and rhs (B, N, K) must share B and K, "
                                 f"got {tuple(lhs.shape)} and {tuple(rhs.shape)}")
    if preferred_element_type is None:
        preferred_element_type = xp.float32
    a = _block_scaled(xp, lhs, lhs_scales, preferred_element_type, "lhs")
    b = _block_scaled(xp, rhs, rhs_scales, preferred_element_type, "rhs")
    return xp.matmul(a, xp.matrix_transpose(b))


class BlockScaleConfig(NamedTuple):
    """How ``scaled_dot_general`` quantizes one operand (``jax.nn``'s ``BlockScaleConfig``).

    ``mode`` 'mxfp8' (float8_e4m3fn elements, e8m0 power-of-two scales, blocks of 32) or
    'nvfp4' (float4_e2m1fn elements, float8_e4m3fn scales, blocks of 16, and a
    ``global_scale``).  The element and scale types are given by name: xpnn rounds to their
    grids in the input's dtype wherever a library lacks them.
    """

    mode: str
    block_size: int
    data_type: str
    scale_type: str
    global_scale: Any
    infer_only: bool = False


def get_scaled_dot_general_config(mode: str, global_scale: Any = None) -> BlockScaleConfig:
    """The quantization config of ``mode`` ('mxfp8' or 'nvfp4'), ``jax.nn.get_scaled_dot_general_config``.

    nvfp4's ``global_scale`` (a float32 array of shape (1,), or a number) defaults to 1.
    """
    if mode == "mxfp8":
        return BlockScaleConfig("mxfp8", 32, "float8_e4m3fn", "float8_e8m0fnu", None)
    if mode == "nvfp4":
        return BlockScaleConfig("nvfp4", 16, "float4_e2m1fn", "float8_e4m3fn", _as_number(global_scale))
    raise ValueError(f"xpnn.get_scaled_dot_general_config: Unsupported mode: {mode!r}; expected 'mxfp8' or 'nvfp4'")


def _as_number(scale: Any) -> float:
    """A global scale (None for 1, a number, or a one-element array of any library) as a float."""
    return 1.0 if scale is None else float(np.asarray(scale, dtype=np.float64).reshape(-1)[0])


def _config(config: Any) -> BlockScaleConfig:
    """xpnn's or jax's config as xpnn's: element types by name, the global scale a number
    (configs are static arguments: jax hashes them)."""
    return BlockScaleConfig(config.mode, int(config.block_size), dtype_name(config.data_type),
                            dtype_name(config.scale_type),
                            None if config.mode == "mxfp8" else _as_number(config.global_scale),
                            bool(config.infer_only))


#: Element formats by name: (mantissa bits, smallest normal exponent, largest value).
_FORMATS = {"float8_e4m3fn": (3, -6, 448.0), "float4_e2m1fn": (1, 0, 6.0)}


def _powers_of_two(xp, exponent: Array) -> Array:
    return xp.pow(xp.full_like(exponent, 2.0), exponent)


def _floor_log2(xp, magnitude: Array) -> Array:
    """``floor(log2(magnitude))`` exactly (``log2`` may round up just below a power of two); 0 for 0."""
    exponent = xp.floor(xp.log2(xp.where(magnitude > 0, magnitude, xp.ones_like(magnitude))))
    power = _powers_of_two(xp, exponent)
    exponent = xp.where(power > magnitude, exponent - 1, exponent)
    return xp.where(2 * _powers_of_two(xp, exponent) <= magnitude, exponent + 1, exponent)


def _round_to_format(xp, x: Array, name: str) -> Array:
    """``x`` (within the format's range) rounded to the nearest value of format ``name``, ties to
    even, as a cast to that dtype rounds: ``round(x / q) * q`` with the quantum ``q`` of ``x``'s
    binade (the subnormal one below the smallest normal)."""
    mantissa, smallest_exponent, _ = _FORMATS[name]
    exponent = xp.maximum(_floor_log2(xp, xp.abs(x)), xp.asarray(float(smallest_exponent), dtype=x.dtype))
    quantum = _powers_of_two(xp, exponent - mantissa)
    return xp.round(x / quantum) * quantum


def _e8m0_scale(xp, s: Array) -> Array:
    """The e8m0 scale of block scale ``s >= 0``: the power of two at or above ``s`` (jax's rounding up),
    capped at 2**127 and floored at 2**-127 (the 'zero' scale, 2**-15 in float16, as jax decodes it)."""
    exponent = _floor_log2(xp, s)
    exponent = xp.where((_powers_of_two(xp, exponent) < s) & (exponent < 127), exponent + 1, exponent)
    near_zero = -15.0 if dtype_name(s.dtype) == "float16" else -127.0
    exponent = xp.where((s <= 2.0 ** -127) | (exponent <= -127), xp.full_like(exponent, near_zero), exponent)
    return _powers_of_two(xp, exponent)


def _quantized(ops: Adapter, x: Array, config: BlockScaleConfig, global_scale: float | None) -> tuple[Array, Array]:
    """jax's ``quantize`` of a ``(B, M, K)`` operand: the elements on the format's grid and the
    block scales ``(B, M, K / block)``, both as values of ``x``'s dtype.  The rounding passes no
    gradient of its own (straight through)."""
    xp = ops.xp
    batch, rows, depth = x.shape
    block = config.block_size
    if depth < block or depth % block:
        raise refuse(ValueError, f"the contracted size {depth} must be a multiple of the block size {block} of "
                                 f"mode {config.mode!r}")
    x = xp.reshape(x, (batch, rows, depth // block, block))
    largest = _FORMATS[config.data_type][2]
    scales = xp.max(xp.abs(x), axis=-1, keepdims=True) / largest
    if config.mode == "mxfp8":
        scales = _e8m0_scale(xp, scales)
    else:
        if x.dtype != xp.float64:  # jax divides by a float32 array: narrower inputs compute in float32
            x = xp.astype(x, xp.float32)
        x = x / global_scale
        scales = xp.max(xp.abs(x), axis=-1, keepdims=True) / largest
        scales = _round_to_format(xp, xp.clip(scales, 0.0, 448.0), "float8_e4m3fn")
    scaled = xp.clip(x / scales, -largest, largest)
    rounded = scaled + ops.stop_gradient(_round_to_format(xp, scaled, config.data_type) - scaled)
    return xp.reshape(rounded, (batch, rows, depth)), scales[..., 0]


def _as_three_d(xp, x: Array, contracting: tuple[int, ...], batch: tuple[int, ...]) -> Array:
    """jax's shape normalization: ``(batch dims, other dims, contracting dims)`` flattened to ``(B, M, K)``."""
    others = [d for d in range(x.ndim) if d not in contracting and d not in batch]
    order = sorted(batch) + others + sorted(contracting)
    sizes = [math.prod(x.shape[d] for d in group) for group in (sorted(batch), others, sorted(contracting))]
    return xp.reshape(xp.permute_dims(x, tuple(order)), tuple(sizes))


_DIMENSION_NUMBERS = Argument(1, "dimension_numbers")
_CONFIGS = Argument(3, "configs")


def _scaled_dot_general_arguments(ops: Adapter, lhs: Array, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """``dimension_numbers`` as tuples of ints, and ``configs`` as a tuple (a static argument)."""
    numbers = _DIMENSION_NUMBERS.get(args, kwargs)
    try:
        args, kwargs = _DIMENSION_NUMBERS.replace(args, kwargs, _int_tuples(numbers))
    except (TypeError, ValueError):
        raise refuse(TypeError, "dimension_numbers must be ((lhs_contract, rhs_contract), (lhs_batch, rhs_batch)) "
                                f"of ints, got {numbers!r}") from None
    configs = _CONFIGS.get(args, kwargs)
    if configs is not None:
        try:
            configs = tuple(map(_config, configs))
        except (AttributeError, TypeError, ValueError):
            raise refuse(TypeError, "configs must be BlockScaleConfigs (xpnn.get_scaled_dot_general_config or "
                                    f"jax.nn.get_scaled_dot_general_config), got {configs!r}") from None
        args, kwargs = _CONFIGS.replace(args, kwargs, configs)
    return args, kwargs


def _int_tuples(value: Any) -> Any:
    """``value`` (nested sequences of integers, NumPy's too) as nested tuples of Python ints: a
    hashable static argument.  The dispatch's ``_tuples`` only turns lists into tuples; this
    also refuses what is not an integer (``int`` raises)."""
    if isinstance(value, (list, tuple)):
        return tuple(_int_tuples(item) for item in value)
    return int(value)


@public(static=("dimension_numbers", "preferred_element_type", "configs", "implementation"), probes=(),
        validate=_scaled_dot_general_arguments)
def scaled_dot_general(ops: Adapter, lhs: Array, rhs: Array, dimension_numbers: Any,
                       preferred_element_type: Any = "float32", configs: Any = None,
                       implementation: str | None = None) -> Array:
    r"""A dot_general of block-quantized operands, ``jax.nn.scaled_dot_general`` on every backend.

    ``dimension_numbers = ((lhs_contract, rhs_contract), (lhs_batch, rhs_batch))``.  Each operand
    is laid out as ``(batch, other dims, contracted)`` and quantized as jax does::

        mxfp8: s = e8m0_round_up(max|block| / 448);        q = round_e4m3(clip(x / s, -448, 448))
        nvfp4: s = round_e4m3(clip(max|x/g| / 6, 0, 448)); q = round_e2m1(clip(x / g / s, -6, 6))

    over blocks of 32 (mxfp8) or 16 (nvfp4) contracted elements, then
    ``out = sum_k (q_a s_a)(q_b s_b)`` in float32 (times ``g_a g_b`` for nvfp4), cast to
    ``preferred_element_type``.  The output has the batch dims, then lhs's, then rhs's other
    dims.  Without ``configs`` it is a plain dot_general.  The float8/float4 values are
    rounded onto their grids in the input dtype (ties to even), so no float8 dtype is needed.
    jax runs this only on GPUs with cuDNN; the gradient here is straight-through (the
    rounding passes the gradient unchanged), where jax quantizes the backward products too.
    """
    xp = ops.xp
    (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = dimension_numbers
    if len(lhs_contract) != len(rhs_contract) or len(lhs_batch) != len(rhs_batch):
        raise refuse(ValueError, f"dimension_numbers {dimension_numbers!r} must pair lhs and rhs dims")
    for contract, batch, operand, name in ((lhs_contract, lhs_batch, lhs, "lhs"), (rhs_contract, rhs_batch, rhs, "rhs")):
        if any(not 0 <= d < operand.ndim for d in (*contract, *batch)) or len(set(contract + batch)) != len(contract + batch):
            raise refuse(ValueError, f"dimension_numbers {dimension_numbers!r} name dims {name} of shape "
                                     f"{tuple(operand.shape)} does not have, or one twice")
    if ([lhs.shape[d] for d in lhs_contract] != [rhs.shape[d] for d in rhs_contract]
            or [lhs.shape[d] for d in lhs_batch] != [rhs.shape[d] for d in rhs_batch]):
        raise refuse(ValueError, f"lhs {tuple(lhs.shape)} and rhs {tuple(rhs.shape)} differ in the contracted or "
                                 f"batch dims of {dimension_numbers!r}")
    out_dtype = dtype_argument(ops, preferred_element_type, "real floating", "float32")
    a = _as_three_d(xp, lhs, lhs_contract, lhs_batch)
    b = _as_three_d(xp, rhs, rhs_contract, rhs_batch)
    out_shape = ([lhs.shape[d] for d in sorted(lhs_batch)]
                 + [lhs.shape[d] for d in range(lhs.ndim) if d not in lhs_contract and d not in lhs_batch]
                 + [rhs.shape[d] for d in range(rhs.ndim) if d not in rhs_contract and d not in rhs_batch])
    if configs is None:
        wide = xp.float64 if xp.float64 in (a.dtype, b.dtype, out_dtype) else xp.float32
        out = xp.matmul(xp.astype(a, wide), xp.matrix_transpose(xp.astype(b, wide)))
        return xp.reshape(xp.astype(out, out_dtype), tuple(out_shape))
    if len(configs) < 2 or {c.mode for c in configs[:2]} - {"mxfp8", "nvfp4"} or configs[0].mode != configs[1].mode:
        raise refuse(ValueError, f"configs must be two or three configs of one mode ('mxfp8' or 'nvfp4', from "
                                 f"xpnn.get_scaled_dot_general_config), got {configs!r}")
    if not xp.isdtype(lhs.dtype, "real floating") or lhs.dtype != rhs.dtype:
        raise refuse(TypeError, f"lhs and rhs must share a floating dtype, got {lhs.dtype} and {rhs.dtype}")
    a_q, a_s = _quantized(ops, a, configs[0], configs[0].global_scale)
    b_q, b_s = _quantized(ops, b, configs[1], configs[1].global_scale)
    out = scaled_matmul.written_once(ops, a_q, b_q, a_s, b_s, preferred_element_type=xp.float32)
    if configs[0].mode == "nvfp4":
        out = out * (configs[0].global_scale * configs[1].global_scale)
    return xp.reshape(xp.astype(out, out_dtype), tuple(out_shape))

r"""Array utilities of ``jax.nn``: ``one_hot``, ``identity`` and the block-scaled ``scaled_matmul``."""
from __future__ import annotations

from typing import Any

import array_api_compat

from xpnn._checks import _as_int, dtype_argument, normalize_axis
from xpnn._dispatch import Argument, public
from xpnn._errors import refuse
from xpnn._types import Array
from xpnn.backends import Adapter

__all__ = ["one_hot", "identity", "scaled_matmul"]


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
    device = array_api_compat.device(x)
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
    r"""Identity, :math:`f(x) = x`, as a new array of the same dtype. Matches ``jax.nn.identity``."""
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

    .. math:: \mathrm{out}_{bmn} = \sum_k (a_{bmk}\, s^a_{bm\lfloor k/k_a \rfloor})
              (b_{bnk}\, s^b_{bn\lfloor k/k_b \rfloor})

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

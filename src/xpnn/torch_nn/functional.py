r"""``torch.nn.functional``'s names, keywords and defaults, on the arrays of any library.

``import xpnn.torch_nn.functional as F`` and torch code runs unchanged on NumPy, CuPy, JAX
and torch arrays.  Every function is a thin shell over xpnn's written-once definitions
(``xpnn.gelu``, ``xpnn.dot_product_attention``, the adapters' ``conv_channels_first``,
``conv_transpose_channels_first``, ``linear``, ``reduce_window`` and fused norms): the math lives once, and torch's defaults are kept where
they differ from jax.nn's (``gelu`` exact, ``softplus`` with ``beta``/``threshold``,
``hardtanh`` with bounds, ``dim`` where jax says ``axis``).  Layouts are torch's: channels
first (``(N, C, *spatial)``), attention ``(L, N, E)`` unless ``batch_first``.

Integer and boolean inputs are taken as torch takes them: ``relu``, ``relu6``, ``hardtanh``,
``threshold``, ``linear``, the convolutions and the max pools keep integers; ``sigmoid``,
``tanh``, ``softsign`` and ``tanhshrink`` compute them in float32; the average pools average
int64 cut toward zero; the rest refuse them with an ``UnsupportedDtypeError`` (a TypeError,
and the NotImplementedError torch raises) naming the function.

``inplace=True`` writes the result into the input where the library's arrays are mutable
(NumPy, CuPy, torch) and returns it; JAX arrays are immutable, so there it returns a new
array.  Random functions (``dropout``, ``rrelu`` in training) draw from the generator that
``xpnn.torch_nn.manual_seed`` seeds, or from ``key=``.
"""
from __future__ import annotations

import functools
import inspect
import itertools
import math
import operator
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

import xpnn
from xpnn._cache import per_arguments
from xpnn._checks import dtype_argument, normalize_axis
from xpnn._dispatch import adapter_of, adapter_of_array, fast_paths_enabled, is_array, is_plain, two_libraries
from xpnn._kernel_check import LAYER_KERNELS, layer_kernel_agrees, outputs_disagreement
from xpnn._types import Array
from xpnn.layers.normalization import fused_norm, reference_norm
from xpnn.layers.stochastic import dropped
from xpnn.torch_nn._generator import next_key
from xpnn.torch_nn.attention.bias import CausalBias

__all__ = [
    "elu", "celu", "gelu", "glu", "hardshrink", "hardsigmoid", "hardswish", "hardtanh", "leaky_relu", "logsigmoid",
    "mish", "prelu", "relu", "relu6", "rrelu", "selu", "silu", "sigmoid", "softplus", "softshrink", "softsign", "tanh",
    "tanhshrink", "threshold", "softmax", "softmin", "log_softmax", "normalize", "linear", "grouped_mm", "bilinear",
    "dropout", "embedding", "embedding_bag", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d", "lp_pool1d",
    "lp_pool2d", "lp_pool3d", "max_unpool1d", "max_unpool2d", "max_unpool3d", "fractional_max_pool2d",
    "fractional_max_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d",
    "adaptive_max_pool2d", "adaptive_max_pool3d", "layer_norm", "group_norm", "rms_norm", "batch_norm", "instance_norm",
    "pad", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "kl_div", "nll_loss", "cross_entropy", "linear_cross_entropy",
    "poisson_nll_loss", "gaussian_nll_loss", "margin_ranking_loss", "hinge_embedding_loss", "soft_margin_loss",
    "multilabel_soft_margin_loss", "cosine_embedding_loss", "triplet_margin_loss", "triplet_margin_with_distance_loss",
    "multi_margin_loss", "multilabel_margin_loss", "ctc_loss", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
    "feature_alpha_dropout", "cosine_similarity", "pairwise_distance", "pixel_shuffle", "pixel_unshuffle",
    "channel_shuffle", "interpolate", "local_response_norm", "unfold", "fold", "scaled_dot_product_attention",
    "multi_head_attention_forward", "one_hot", "upsample", "upsample_nearest", "upsample_bilinear", "affine_grid",
    "grid_sample", "gumbel_softmax", "pdist", "native_channel_shuffle", "conv_tbc", "relu_", "elu_", "celu_", "selu_",
    "hardtanh_", "leaky_relu_", "rrelu_", "threshold_", "max_pool1d_with_indices", "max_pool2d_with_indices",
    "max_pool3d_with_indices", "adaptive_max_pool1d_with_indices", "adaptive_max_pool2d_with_indices",
    "adaptive_max_pool3d_with_indices", "fractional_max_pool2d_with_indices", "fractional_max_pool3d_with_indices"]


def _error(kind: type[Exception], function: str, message: str) -> Exception:
    """``kind`` naming ``function`` by its public path: a function (lower case) in this module,
    a module class (CapWords: ``Conv2d``, whose constructor shares the argument checks) in
    ``xpnn.torch_nn``."""
    namespace = "xpnn.torch_nn." if function[:1].isupper() else "xpnn.torch_nn.functional."
    return kind(f"{namespace}{function}: {message}")


def _adapter(function: str, names: tuple[str, ...], *arrays: Array | None) -> Any:
    """The adapter of ``arrays``, the arguments ``names`` of ``function`` (plain values skipped:
    ``_dispatch.is_plain``); an argument that is no array, or arrays of two libraries, are a
    TypeError naming ``function`` and the arguments."""
    try:
        return adapter_of(*arrays)
    except TypeError as error:
        arrays = dict(zip(names, arrays))
        for argument, value in arrays.items():
            if not is_plain(value) and not is_array(value):
                raise _error(TypeError, function, f"{argument}: {error}") from None
        raise _error(TypeError, function, two_libraries(arrays) or str(error)) from None


class UnsupportedDtypeError(TypeError, NotImplementedError):
    """An input dtype that torch's function refuses (integers or booleans where it computes
    in floating point only): a TypeError, and the NotImplementedError (a RuntimeError) that
    torch raises, so code written for torch catches it as before."""


#: (array type, dtype) of inputs seen to be real floating: one set lookup per call after the
#: first (the array type keeps libraries apart: array-api-strict's dtypes hash as NumPy's).
_REAL_FLOATING: set[tuple[type, Any]] = set()


def _floating_only(function: str, input: Array, refused: str | tuple[str, ...] = ("integral", "bool")) -> bool:
    """Whether ``input`` has a real floating dtype; an ``UnsupportedDtypeError`` naming the
    function when its dtype is of a ``refused`` kind (torch implements the function for floating
    inputs only).  Other inputs (not arrays, complex) are left to xpnn's own checks."""
    dtype = getattr(input, "dtype", None)
    if dtype is None or (type(input), dtype) in _REAL_FLOATING:
        return True
    xp = adapter_of(input).xp
    if xp.isdtype(dtype, "real floating"):
        _REAL_FLOATING.add((type(input), dtype))
        return True
    if xp.isdtype(dtype, refused):
        kind = "bool" if dtype == xp.bool else "integer"
        raise UnsupportedDtypeError(f"xpnn.torch_nn.functional.{function}: input must be a floating-point array, "
                                    f"got dtype {dtype} (torch's {function} is not implemented for {kind} inputs)")
    return False


def _default_float(function: str, input: Array, refused: str | tuple[str, ...] = ()) -> Array:
    """``input`` with integers (and booleans, unless ``refused``) promoted to torch's default
    float, float32, as torch's floating functions promote them (``sigmoid(int64) -> float32``)."""
    if _floating_only(function, input, refused):
        return input
    xp = adapter_of(input).xp
    if xp.isdtype(input.dtype, ("integral", "bool")):
        return xp.astype(input, xp.float32)
    return input


def _inplace(result: Array, x: Array, inplace: bool) -> Array:
    """``result`` written into ``x`` (returned) where ``inplace`` and the library's arrays are
    mutable; ``result`` itself otherwise."""
    if not inplace:
        return result
    return adapter_of(x).write_into(x, result)


# -- activations ---------------------------------------------------------------------------

def relu(input: Array, inplace: bool = False) -> Array:
    """max(x, 0): ``torch.nn.functional.relu``."""
    _floating_only("relu", input, refused="bool")
    return _inplace(xpnn.relu(input), input, inplace)


def relu6(input: Array, inplace: bool = False) -> Array:
    """min(max(x, 0), 6): ``torch.nn.functional.relu6`` (integer dtypes kept, as torch's
    ``hardtanh(x, 0, 6)`` keeps them)."""
    if _floating_only("relu6", input, refused="bool"):
        return _inplace(xpnn.relu6(input), input, inplace)
    return hardtanh(input, 0.0, 6.0, inplace)


def elu(input: Array, alpha: float = 1.0, inplace: bool = False) -> Array:
    """x if x > 0 else alpha (e^x - 1): ``torch.nn.functional.elu``."""
    _floating_only("elu", input)
    return _inplace(xpnn.elu(input, alpha), input, inplace)


def celu(input: Array, alpha: float = 1.0, inplace: bool = False) -> Array:
    """max(0, x) + min(0, alpha (e^(x/alpha) - 1)): ``torch.nn.functional.celu``."""
    if alpha == 0:
        raise _error(ValueError, "celu", "alpha must not be 0 (as torch requires), got 0")
    _floating_only("celu", input)
    return _inplace(xpnn.celu(input, alpha), input, inplace)


def selu(input: Array, inplace: bool = False) -> Array:
    """scale (max(0, x) + min(0, alpha (e^x - 1))): ``torch.nn.functional.selu``."""
    _floating_only("selu", input)
    return _inplace(xpnn.selu(input), input, inplace)


def gelu(input: Array, approximate: str = "none") -> Array:
    """x Phi(x) (``approximate='none'``, torch's default) or its tanh approximation
    x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (``'tanh'``): ``torch.nn.functional.gelu``."""
    if approximate not in ("none", "tanh"):
        raise _error(ValueError, "gelu", f"approximate must be 'none' or 'tanh', got {approximate!r}")
    _floating_only("gelu", input)
    return xpnn.gelu(input, approximate=approximate == "tanh")


def glu(input: Array, dim: int = -1) -> Array:
    """a * sigmoid(b), ``input`` split in halves a, b along ``dim``: ``torch.nn.functional.glu``."""
    _floating_only("glu", input)
    return xpnn.glu(input, axis=dim)


def hardshrink(input: Array, lambd: float = 0.5) -> Array:
    """x if |x| > lambd else 0: ``torch.nn.functional.hardshrink``.  A negative or NaN ``lambd``
    shrinks nothing, as torch's (``xpnn.hard_shrink`` refuses it)."""
    _floating_only("hardshrink", input)
    if isinstance(lambd, (int, float)) and not lambd >= 0:
        return adapter_of(input).xp.asarray(input, copy=True)
    return xpnn.hard_shrink(input, lambd)


def hardsigmoid(input: Array, inplace: bool = False) -> Array:
    """relu6(x + 3) / 6: ``torch.nn.functional.hardsigmoid``."""
    _floating_only("hardsigmoid", input)
    return _inplace(xpnn.hard_sigmoid(input), input, inplace)


def hardswish(input: Array, inplace: bool = False) -> Array:
    """x relu6(x + 3) / 6: ``torch.nn.functional.hardswish``."""
    _floating_only("hardswish", input)
    return _inplace(xpnn.hard_swish(input), input, inplace)


def hardtanh(input: Array, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Array:
    """min(max(x, min_val), max_val), NaN kept: ``torch.nn.functional.hardtanh``."""
    if max_val < min_val:
        raise _error(ValueError, "hardtanh", f"max_val ({max_val}) must be >= min_val ({min_val})")
    xp = adapter_of(input).xp
    if not _floating_only("hardtanh", input, refused="bool"):
        if xp.isdtype(input.dtype, "unsigned integer") and (min_val < 0 or max_val < 0):
            raise _error(UnsupportedDtypeError, "hardtanh", f"cannot do hardtanh on an unsigned type ({input.dtype}) "
                                                            f"with negative limits ({min_val}, {max_val}), as torch")
        min_val, max_val = math.trunc(min_val), math.trunc(max_val)  # torch's conversion to the integer dtype
    result = xp.where(input < min_val, min_val, xp.where(input > max_val, max_val, input))
    result = xp.astype(result, input.dtype) if result.dtype != input.dtype else result
    return _inplace(result, input, inplace)


def leaky_relu(input: Array, negative_slope: float = 0.01, inplace: bool = False) -> Array:
    """x if x >= 0 else negative_slope x: ``torch.nn.functional.leaky_relu``."""
    _floating_only("leaky_relu", input)
    return _inplace(xpnn.leaky_relu(input, negative_slope), input, inplace)


def logsigmoid(input: Array) -> Array:
    """log(1 / (1 + e^-x)): ``torch.nn.functional.logsigmoid``."""
    _floating_only("logsigmoid", input)
    return xpnn.log_sigmoid(input)


def mish(input: Array, inplace: bool = False) -> Array:
    """x tanh(softplus(x)): ``torch.nn.functional.mish``."""
    _floating_only("mish", input)
    return _inplace(xpnn.mish(input), input, inplace)


def prelu(input: Array, weight: Array) -> Array:
    """x if x >= 0 else weight x, ``weight`` per channel (dim 1): ``torch.nn.functional.prelu``."""
    _floating_only("prelu", input)
    return xpnn.prelu(input, weight)


def rrelu(input: Array, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False,
          inplace: bool = False, *, key: Array | None = None) -> Array:
    """x if x >= 0 else a x, ``a`` drawn from U(lower, upper) per element in training (from
    ``key``, or the generator ``xpnn.torch_nn.manual_seed`` seeds), (lower + upper) / 2 in
    eval: ``torch.nn.functional.rrelu``."""
    _floating_only("rrelu", input)
    if lower > upper:
        raise _error(ValueError, "rrelu", f"lower ({lower}) must be at most upper ({upper}) (torch: Lower bound "
                                          "should be less than or equal to the upper bound)")
    if training:
        result = xpnn.rrelu(input, lower, upper, key=key if key is not None else next_key(input))
    else:
        result = xpnn.leaky_relu(input, (lower + upper) / 2)
    return _inplace(result, input, inplace)


def silu(input: Array, inplace: bool = False) -> Array:
    """x sigmoid(x): ``torch.nn.functional.silu``."""
    _floating_only("silu", input)
    return _inplace(xpnn.silu(input), input, inplace)


def sigmoid(input: Array) -> Array:
    """1 / (1 + e^-x): ``torch.nn.functional.sigmoid`` (integers and booleans computed in float32,
    torch's default float)."""
    return xpnn.sigmoid(_default_float("sigmoid", input))


def tanh(input: Array) -> Array:
    """tanh(x): ``torch.nn.functional.tanh`` (integers and booleans computed in float32, torch's
    default float)."""
    return xpnn.tanh(_default_float("tanh", input))


def softplus(input: Array, beta: float = 1.0, threshold: float = 20.0) -> Array:
    """log(1 + e^(beta x)) / beta, and x where beta x > threshold: ``torch.nn.functional.softplus``.

    log(1 + e^t) is xpnn.softplus's stable form (no overflow, no cancellation)."""
    if beta == 0:
        raise _error(ValueError, "softplus", "beta must not be 0, got 0")
    _floating_only("softplus", input)
    xp = adapter_of(input).xp
    if beta == 1:  # x itself at and above the threshold, which the cut-off then does not change
        if threshold >= _softplus_rounds_to_x_from(xp, input.dtype):
            return xpnn.softplus(input)
        return xp.where(input > threshold, input, xpnn.softplus(input))
    scaled = input * beta
    return xp.where(scaled > threshold, input, xpnn.softplus(scaled) / beta)


@functools.lru_cache(maxsize=64)
def _softplus_rounds_to_x_from(xp: Any, dtype: Any) -> float:
    """-log(eps): above it log(1 + e^x) = x + log1p(e^-x) rounds to x in ``dtype`` (e^-x < eps is
    below half an ulp of x > 4), so torch's linear cut-off there changes nothing (15.9 in float32)."""
    return -math.log(float(xp.finfo(dtype).eps))


def softshrink(input: Array, lambd: float = 0.5) -> Array:
    """x - lambd if x > lambd, x + lambd if x < -lambd, else 0: ``torch.nn.functional.softshrink``."""
    _floating_only("softshrink", input)
    return xpnn.soft_shrink(input, lambd)


def softsign(input: Array) -> Array:
    """x / (1 + |x|): ``torch.nn.functional.softsign`` (integers computed in float32, torch's
    default float; booleans refused, as torch refuses them)."""
    return xpnn.soft_sign(_default_float("softsign", input, refused="bool"))


def tanhshrink(input: Array) -> Array:
    """x - tanh(x): ``torch.nn.functional.tanhshrink`` (integers computed in float32, torch's
    default float; booleans refused, as torch refuses them)."""
    return xpnn.tanh_shrink(_default_float("tanhshrink", input, refused="bool"))


def threshold(input: Array, threshold: float, value: float, inplace: bool = False) -> Array:
    """x if x > threshold else value: ``torch.nn.functional.threshold``."""
    _floating_only("threshold", input, refused="bool")
    return _inplace(xpnn.threshold(input, threshold, value), input, inplace)


def _softmax_dim(function: str, ndim: int, dim: int | None) -> int | None:
    """torch's implicit dimension for ``dim=None`` (0 for 0-, 1- and 3-d input, else 1), with
    torch's deprecation warning; None (every axis) for a 0-d input, whose dims 0 and -1 torch
    takes as its one element."""
    if dim is None:
        warnings.warn(f"xpnn.torch_nn.functional.{function}: implicit dimension choice is deprecated (as in "
                      "torch); pass dim", UserWarning, stacklevel=3)
        dim = 0 if ndim in (0, 1, 3) else 1
    return None if ndim == 0 and dim in (0, -1) else dim


def _cast(input: Array, dtype: Any, function: str) -> Array:
    if dtype is None:
        return input
    ops = adapter_of(input)
    return ops.xp.astype(input, dtype_argument(ops, dtype, "real floating", "float32",
                                               f"xpnn.torch_nn.functional.{function}"))


def softmax(input: Array, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Array:
    """e^x / sum(e^x) along ``dim`` (``input`` cast to ``dtype`` first): ``torch.nn.functional.softmax``."""
    input = _cast(input, dtype, "softmax")
    _floating_only("softmax", input)
    return xpnn.softmax(input, axis=_softmax_dim("softmax", input.ndim, dim))


def softmin(input: Array, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Array:
    """softmax(-x) along ``dim``: ``torch.nn.functional.softmin``."""
    input = _cast(input, dtype, "softmin")
    _floating_only("softmin", input)
    return xpnn.softmin(input, axis=_softmax_dim("softmin", input.ndim, dim))


def log_softmax(input: Array, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None) -> Array:
    """x - log(sum(e^x)) along ``dim``: ``torch.nn.functional.log_softmax``."""
    input = _cast(input, dtype, "log_softmax")
    _floating_only("log_softmax", input)
    return xpnn.log_softmax(input, axis=_softmax_dim("log_softmax", input.ndim, dim))


def gumbel_softmax(logits: Array, tau: float = 1.0, hard: bool = False, eps: float = 1e-10, dim: int = -1, *,
                   key: Array | None = None) -> Array:
    """softmax((logits + g) / tau) along ``dim``, g Gumbel(0, 1) noise (-log(-log(u)), u uniform
    as ``jax.random.gumbel`` draws it, from ``key`` or the generator ``manual_seed`` seeds);
    with ``hard``, the one-hot of its argmax in value and the soft sample's gradient (straight
    through): ``torch.nn.functional.gumbel_softmax`` (``eps`` is unused, as torch's)."""
    function = "gumbel_softmax"
    ops = _adapter(function, ("logits",), logits)
    _floating_only(function, logits)
    if eps != 1e-10:
        warnings.warn(_error(UserWarning, function, "eps parameter is deprecated and has no effect (as torch)"),
                      stacklevel=2)
    xp = ops.xp
    axis = normalize_axis(dim, logits.ndim, f"xpnn.torch_nn.functional.{function}", "dim")
    uniform = xpnn.random.uniform(key if key is not None else next_key(logits), tuple(logits.shape), logits.dtype,
                                  float(xp.finfo(logits.dtype).smallest_normal), 1.0)
    soft = xpnn.softmax((logits - xp.log(-xp.log(uniform))) / tau, axis=axis)
    if not hard:
        return soft
    one_hot = xpnn.one_hot(xp.argmax(soft, axis=axis), logits.shape[axis], dtype=soft.dtype, axis=axis)
    return one_hot - ops.stop_gradient(soft) + soft


def _in_place_version(function: Any) -> Any:
    """torch's trailing-underscore twin of ``function``: the same call with ``inplace=True``."""
    signature = inspect.signature(function)

    def in_place(input: Array, *args: Any, **kwargs: Any) -> Array:
        return function(input, *args, inplace=True, **kwargs)

    return _named(in_place, f"{function.__name__}_", f"``{function.__name__}`` written into ``input`` and returned (a new "
                  f"array where the library's arrays are immutable, as jax's)",
                  signature.replace(parameters=[p for p in signature.parameters.values() if p.name != "inplace"]))


def _named(twin: Any, name: str, doc: str, signature: inspect.Signature) -> Any:
    """``twin`` as torch's function ``name``: its name, ``doc`` (with torch's function named) and
    ``signature`` (what ``help()`` and ``inspect`` show)."""
    twin.__name__ = twin.__qualname__ = name
    twin.__doc__ = f"{doc}: ``torch.nn.functional.{name}``."
    twin.__signature__ = signature
    return twin


relu_ = _in_place_version(relu)
elu_ = _in_place_version(elu)
celu_ = _in_place_version(celu)
selu_ = _in_place_version(selu)
hardtanh_ = _in_place_version(hardtanh)
leaky_relu_ = _in_place_version(leaky_relu)
rrelu_ = _in_place_version(rrelu)
threshold_ = _in_place_version(threshold)


# -- linear, dropout, embedding ------------------------------------------------------------

def normalize(input: Array, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out: Array | None = None) -> Array:
    """x / max(||x||_p, eps) along ``dim``: ``torch.nn.functional.normalize`` (written into ``out``
    when given, where the library's arrays are mutable); ``p=0`` counts the nonzero elements and
    ``p=-inf`` takes the smallest magnitude, as torch's norm does."""
    _floating_only("normalize", input)
    ops = adapter_of(input)
    xp = ops.xp
    dim = normalize_axis(dim, input.ndim, "dim", "xpnn.torch_nn.functional.normalize")
    with ops.quietly():  # a zero to a negative p, a square past the largest float: torch's inf, no warning
        result = input / xp.maximum(_p_norm(xp, input, p, dim, keepdims=True), eps)
    return result if out is None else adapter_of(out).write_into(out, result)


def _p_norm(xp: Any, x: Array, p: float, axis: int | None = None, keepdims: bool = False) -> Array:
    """torch's vector p-norm of ``x`` along ``axis`` (None: all elements): (sum |x|^p)^(1/p),
    the count of non-zeros for p = 0, max |x| for inf, min |x| for -inf."""
    magnitude = xp.abs(x)
    if p == 0:
        return xp.sum(xp.astype(magnitude != 0, x.dtype), axis=axis, keepdims=keepdims)
    if p == 2:
        return xp.sqrt(xp.sum(magnitude * magnitude, axis=axis, keepdims=keepdims))
    if p == math.inf:
        return xp.max(magnitude, axis=axis, keepdims=keepdims)
    if p == -math.inf:
        return xp.min(magnitude, axis=axis, keepdims=keepdims)
    if p == 1:
        return xp.sum(magnitude, axis=axis, keepdims=keepdims)
    return xp.sum(magnitude ** p, axis=axis, keepdims=keepdims) ** (1.0 / p)


def linear(input: Array, weight: Array, bias: Array | None = None) -> Array:
    """x W^T + b, ``weight`` ``(out_features, in_features)``: ``torch.nn.functional.linear``."""
    _floating_only("linear", input, refused="bool")
    return _linear(_adapter("linear", ("input", "weight", "bias"), input, weight, bias), input, weight, bias)


def _linear(ops: Any, input: Array, weight: Array, bias: Array | None, function: str = "linear") -> Array:
    """``linear`` with the library's adapter known (its operands of one library)."""
    if input.shape[-1:] != weight.shape[-1:]:
        raise _error(ValueError, function, f"input's last dimension ({input.shape[-1] if input.ndim else None}) "
                                           f"must equal weight's in_features, weight shape {tuple(weight.shape)}")
    if bias is not None and bias.shape != (weight.shape[0],) and bias.ndim and bias.shape != (1,):
        raise _misfit(function, "weight", weight, (weight.shape[0],), bias=bias)
    return ops.linear(input, weight, bias)


def _fit(expected: Any, *arrays: Array | None) -> bool:
    """Whether each of ``arrays`` (None: absent) has the shape ``expected`` (a tuple, or a
    ``torch.Size``, which equals its tuple): the per-call check, without building anything."""
    for array in arrays:
        if array is not None and array.shape != expected:
            return False
    return True


def _misfit(function: str, source: str, of: Array, expected: Any, **arrays: Array | None) -> ValueError:
    """The ValueError naming ``function`` for the first of the named ``arrays`` that lacks the
    ``expected`` shape, which the argument ``source``, ``of``, gives them."""
    name, array = next((name, array) for name, array in arrays.items() if not _fit(expected, array))
    return _error(ValueError, function, f"{name} must have shape {tuple(expected)} to match {source} "
                                        f"{tuple(of.shape)}, got {tuple(array.shape)} (as torch)")


def _check_bilinear(shape1: tuple[int, ...], shape2: tuple[int, ...], weight: tuple[int, ...],
                    bias: tuple[int, ...] | None) -> None:
    """torch's checks of ``bilinear``'s shapes, as its RuntimeErrors (broadcasting would give an
    answer where torch refuses)."""
    problem = None
    if not shape1 or not shape2:
        problem = f"inputs must have at least one dimension, got shapes {shape1} and {shape2}"
    elif len(weight) != 3:
        problem = f"weight must be three-dimensional (out, in1, in2), got shape {weight}"
    elif len(shape1) != len(shape2):
        problem = f"input dimensions do not match: got {len(shape1)} and {len(shape2)}"
    elif shape1[:-1] != shape2[:-1]:
        dim = next(i for i, (a, b) in enumerate(zip(shape1, shape2)) if a != b)
        problem = f"input batch dimensions do not match at dim {dim}: got {shape1[dim]} and {shape2[dim]}"
    elif shape1[-1:] != weight[1:2]:
        problem = f"input1 size does not match weight size: got {shape1[-1]} but expected {weight[1]}"
    elif shape2[-1:] != weight[2:]:
        problem = f"input2 size does not match weight size: got {shape2[-1]} but expected {weight[2]}"
    elif bias is not None and bias != weight[:1]:
        got = bias[0] if len(bias) == 1 else bias
        problem = f"bias size does not match weight size: got {got} but expected {weight[0]}"
    if problem is not None:
        raise _error(RuntimeError, "bilinear", f"bilinear(): {problem}")


def grouped_mm(mat_a: Array, mat_b: Array, *, offs: Array | None = None, bias: Array | None = None,
               out_dtype: Any = None) -> Array:
    """Matrix products of groups (Mixture-of-Experts layers): ``torch.nn.functional.grouped_mm``.

    Group g spans ``[offs[g-1], offs[g])`` (from 0) of the jagged dim of a 2-D operand:

    * ``mat_a`` ``(M, K)``, ``mat_b`` ``(G, K, N)``: rows of group g times ``mat_b[g]``, ``(M, N)``;
    * ``mat_a`` ``(G, M, K)``, ``mat_b`` ``(K, N)``: ``mat_a[g]`` times the columns of group g, ``(M, N)``;
    * ``mat_a`` ``(M, K)``, ``mat_b`` ``(K, N)``: the K-slices of group g multiplied, ``(G, M, N)``;
    * both 3-D, ``offs`` None: ``mat_a[g] mat_b[g]``, ``(G, M, N)``.

    Rows (columns) past ``offs[-1]`` are 0 (torch leaves them unwritten); ``offs`` of any
    integer dtype (torch: int32), non-decreasing up to the jagged dim's size, which is checked
    where the offsets can be read.  Floating operands of one dtype, float64 too (torch: float32
    and narrower); ``out_dtype`` None, the operands' dtype or float32 (accumulated in float32);
    ``bias`` is refused, as torch refuses it."""
    function = "grouped_mm"
    _floating_only(function, mat_a, refused="bool")
    ops = _adapter(function, ("mat_a", "mat_b", "offs", "bias"), mat_a, mat_b, offs, bias)
    xp = ops.xp
    if bias is not None:
        raise _error(NotImplementedError, function, "bias is not supported (as torch)")
    if mat_a.ndim not in (2, 3) or mat_b.ndim not in (2, 3):
        raise _error(ValueError, function, f"mat_a and mat_b must be 2-d or 3-d, got shapes {tuple(mat_a.shape)} "
                                           f"and {tuple(mat_b.shape)}")
    if mat_a.dtype != mat_b.dtype or not xp.isdtype(mat_b.dtype, "real floating"):
        raise _error(TypeError, function, f"mat_a and mat_b must be floating arrays of one dtype, got {mat_a.dtype} "
                                          f"and {mat_b.dtype}")
    if out_dtype is not None and out_dtype not in (mat_a.dtype, xp.float32):
        raise _error(ValueError, function, f"out_dtype must be the operands' dtype ({mat_a.dtype}) or float32, got "
                                           f"{out_dtype}")
    if mat_a.shape[-1] != mat_b.shape[-2]:
        raise _error(ValueError, function, f"contraction dimension of mat_a and mat_b must match, got shapes "
                                           f"{tuple(mat_a.shape)} and {tuple(mat_b.shape)}")
    if (offs is None) != (mat_a.ndim == mat_b.ndim == 3):
        raise _error(ValueError, function, "offs must be given if an operand is 2-d, and None if both are 3-d "
                                           "(as torch)")
    if out_dtype is not None and out_dtype != mat_a.dtype:
        mat_a, mat_b = xp.astype(mat_a, out_dtype), xp.astype(mat_b, out_dtype)
    if offs is None:
        if mat_a.shape[0] != mat_b.shape[0]:
            raise _error(ValueError, function, f"matrix batch sizes have to match, got {mat_a.shape[0]} and "
                                               f"{mat_b.shape[0]}")
        return ops.matmul(mat_a, mat_b)
    if offs.ndim != 1 or not xp.isdtype(offs.dtype, "integral"):
        raise _error(ValueError, function, f"offs must be a 1-d array of integers, got shape {tuple(offs.shape)} and "
                                           f"dtype {offs.dtype}")
    groups = offs.shape[0]
    jagged = {(2, 3): mat_a.shape[0], (3, 2): mat_b.shape[1], (2, 2): mat_a.shape[1]}[mat_a.ndim, mat_b.ndim]
    grouped = mat_b if mat_a.ndim == 2 and mat_b.ndim == 3 else mat_a if mat_b.ndim == 2 and mat_a.ndim == 3 else None
    if grouped is not None and grouped.shape[0] != groups:
        raise _error(ValueError, function, f"matrix batch sizes have to match: {groups} offsets for "
                                           f"{grouped.shape[0]} matrices")
    if ops.values_at_hand(offs):
        ends = [int(end) for end in np.asarray(ops.to_host(offs))]
        if any(end < start for start, end in zip([0, *ends], ends)) or (ends and ends[-1] > jagged):
            raise _error(ValueError, function, f"offs must not decrease, from 0 up to {jagged}, got {ends[:6]}"
                                               f"{' ...' if groups > 6 else ''}")
        return _grouped_slices(ops, mat_a, mat_b, list(zip([0, *ends], ends)), jagged)
    return _grouped_masks(ops, mat_a, mat_b, offs, jagged)


def _grouped_slices(ops: Any, a: Array, b: Array, spans: list[tuple[int, int]], jagged: int) -> Array:
    """``grouped_mm`` of offsets read to the host: one product per group's slice."""
    xp = ops.xp
    device = ops.device_of(a)
    if b.ndim == 3:  # rows of a by group, then the rows past the last offset
        parts = [ops.matmul(a[start:end, ...], b[g, ...]) for g, (start, end) in enumerate(spans)]
        parts.append(xp.zeros((jagged - (spans[-1][1] if spans else 0), b.shape[-1]), dtype=a.dtype, device=device))
        return xp.concat(parts, axis=0)
    if a.ndim == 3:  # columns of b by group, then the columns past the last offset
        parts = [ops.matmul(a[g, ...], b[:, start:end]) for g, (start, end) in enumerate(spans)]
        parts.append(xp.zeros((a.shape[1], jagged - (spans[-1][1] if spans else 0)), dtype=a.dtype, device=device))
        return xp.concat(parts, axis=1)
    if not spans:
        return xp.zeros((0, a.shape[0], b.shape[1]), dtype=a.dtype, device=device)
    return xp.stack([ops.matmul(a[:, start:end], b[start:end, :]) for start, end in spans])


def _grouped_masks(ops: Any, a: Array, b: Array, offs: Array, jagged: int) -> Array:
    """``grouped_mm`` of offsets that cannot be read now (a trace, a lazy graph): each group's
    product over the whole jagged dim, masked to its span ``[start, end)``."""
    xp = ops.xp
    starts = xp.concat([xp.zeros((1,), dtype=offs.dtype, device=ops.device_of(offs)), offs[:-1]])
    positions = xp.arange(jagged, dtype=offs.dtype, device=ops.device_of(offs))
    inside = (positions >= starts[:, None]) & (positions < offs[:, None])  # (G, jagged)
    zero = xp.zeros((), dtype=a.dtype, device=ops.device_of(a))
    if b.ndim == 3:  # (G, M, N) products, each row kept in its group
        return xp.sum(xp.where(inside[:, :, None], ops.matmul(a[None, ...], b), zero), axis=0)
    if a.ndim == 3:
        return xp.sum(xp.where(inside[:, None, :], ops.matmul(a, b[None, ...]), zero), axis=0)
    return ops.matmul(xp.where(inside[:, None, :], a[None, ...], zero), b)


def bilinear(input1: Array, input2: Array, weight: Array, bias: Array | None = None) -> Array:
    """y_o = x1^T A_o x2 + b_o, ``weight`` ``(out, in1, in2)``: ``torch.nn.functional.bilinear``."""
    _floating_only("bilinear", input1, refused="bool")
    ops = _adapter("bilinear", ("input1", "input2", "weight", "bias"), input1, input2, weight, bias)
    xp = ops.xp
    _check_bilinear(tuple(input1.shape), tuple(input2.shape), tuple(weight.shape),
                    None if bias is None else tuple(bias.shape))
    out, in1, in2 = weight.shape
    # x2 against every (o, i) row of A, then the sum over i with x1: two standard products
    rows = ops.matmul(input2, xp.reshape(xp.permute_dims(weight, (2, 0, 1)), (in2, out * in1)))
    products = xp.reshape(rows, (*rows.shape[:-1], out, in1)) * xp.expand_dims(input1, axis=-2)
    y = xp.sum(products, axis=-1)
    if y.dtype != products.dtype:  # small integers stay, as torch's (the standard's sum widens them)
        y = xp.astype(y, products.dtype)
    return y if bias is None else y + bias


def dropout(input: Array, p: float = 0.5, training: bool = True, inplace: bool = False, *,
            key: Array | None = None) -> Array:
    """Each element zeroed with probability ``p`` and the rest scaled by 1 / (1 - p), in
    training; the identity otherwise: ``torch.nn.functional.dropout``.  The mask is drawn from
    ``key`` or the generator ``xpnn.torch_nn.manual_seed`` seeds."""
    if not 0 <= p <= 1:
        raise _error(ValueError, "dropout", f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0:
        return input
    _floating_only("dropout", input)
    if p == 1:
        return _inplace(input * 0, input, inplace)
    result = dropped(adapter_of(input), input, key if key is not None else next_key(input), p)
    return _inplace(result, input, inplace)


def _channel_dropout(function: str, rank: int, input: Array, p: float, training: bool, inplace: bool,
                     key: Array | None) -> Array:
    """``dropout1d/2d/3d``: each channel of ``(N, C, *spatial)`` (or unbatched ``(C, *spatial)``)
    with ``rank`` spatial dims zeroed whole with probability ``p``, the rest scaled by 1 / (1 - p)."""
    if not 0 <= p <= 1:
        raise _error(ValueError, function, f"dropout probability has to be between 0 and 1, but got {p}")
    if input.ndim not in (rank + 1, rank + 2):
        raise _error(ValueError, function, f"expected a {rank + 1}-d (unbatched) or {rank + 2}-d input, got shape "
                                           f"{tuple(input.shape)}")
    if not training or p == 0:
        return input
    _floating_only(function, input)
    if p == 1:
        return _inplace(input * 0, input, inplace)
    channels = tuple(input.shape[:input.ndim - rank]) + (1,) * rank
    result = dropped(adapter_of(input), input, key if key is not None else next_key(input), p, channels)
    return _inplace(result, input, inplace)


def dropout1d(input: Array, p: float = 0.5, training: bool = True, inplace: bool = False, *,
              key: Array | None = None) -> Array:
    """Whole channels of ``(N, C, L)`` zeroed with probability ``p`` in training, the rest scaled by
    1 / (1 - p): ``torch.nn.functional.dropout1d``."""
    return _channel_dropout("dropout1d", 1, input, p, training, inplace, key)


def dropout2d(input: Array, p: float = 0.5, training: bool = True, inplace: bool = False, *,
              key: Array | None = None) -> Array:
    """Whole channels of ``(N, C, H, W)`` zeroed with probability ``p`` in training, the rest scaled
    by 1 / (1 - p): ``torch.nn.functional.dropout2d``.  A 3-d input is ``(N, C, L)``, as torch
    takes it (with its warning), not an unbatched ``(C, H, W)``."""
    if input.ndim == 3:
        warnings.warn("xpnn.torch_nn.functional.dropout2d: received a 3D input and assuming that channel-wise 1D "
                      "dropout behavior is desired - input is interpreted as shape (N, C, L), as torch does; use "
                      "dropout1d for that", UserWarning, stacklevel=2)
        return _channel_dropout("dropout2d", 1, input, p, training, inplace, key)
    return _channel_dropout("dropout2d", 2, input, p, training, inplace, key)


def dropout3d(input: Array, p: float = 0.5, training: bool = True, inplace: bool = False, *,
              key: Array | None = None) -> Array:
    """Whole channels of ``(N, C, D, H, W)`` zeroed with probability ``p`` in training, the rest
    scaled by 1 / (1 - p): ``torch.nn.functional.dropout3d``."""
    return _channel_dropout("dropout3d", 3, input, p, training, inplace, key)


#: SELU's value at -inf over its scale: lambda alpha, the value alpha dropout drops to.
_SELU_SATURATION = 1.7580993408473766


def _alpha_dropout(function: str, input: Array, p: float, training: bool, inplace: bool, key: Array | None,
                   per_channel: bool) -> Array:
    """``alpha_dropout`` and ``feature_alpha_dropout``: each element (or each channel of
    ``(N, C, *)``) set to SELU's saturation -s = -1.7581 with probability ``p``, then the affine
    a x + a s p with a = 1 / sqrt((s^2 p + 1)(1 - p)) that keeps a SELU network's zero mean and
    unit variance (torch's formula); the identity outside training."""
    if not 0 <= p <= 1:
        raise _error(ValueError, function, f"dropout probability has to be between 0 and 1, but got {p}")
    if per_channel and input.ndim < 2:
        raise _error(ValueError, function, f"feature dropout requires at least 2 dimensions in the input, got shape "
                                           f"{tuple(input.shape)} (as torch)")
    if not training or p == 0 or input.size == 0:
        return input
    _floating_only(function, input)
    if p == 1:
        return _inplace(input * 0, input, inplace)
    ops = adapter_of(input)
    xp = ops.xp
    shape = tuple(input.shape[:2]) + (1,) * (input.ndim - 2) if per_channel else tuple(input.shape)
    keep = xpnn.random.bernoulli(key if key is not None else next_key(input), 1.0 - p, shape)
    keep = ops.placed_like(xp.broadcast_to(keep, input.shape), input)
    a = 1.0 / math.sqrt((_SELU_SATURATION ** 2 * p + 1) * (1 - p))
    result = xp.where(keep, input * a + _SELU_SATURATION * a * p, xp.full_like(input, _SELU_SATURATION * a * (p - 1)))
    return _inplace(result, input, inplace)


def alpha_dropout(input: Array, p: float = 0.5, training: bool = False, inplace: bool = False, *,
                  key: Array | None = None) -> Array:
    """Alpha dropout for SELU networks: each element set to -1.7581 with probability ``p`` in
    training, then a x + 1.7581 a p (``_alpha_dropout``): ``torch.nn.functional.alpha_dropout``
    (whose ``training`` defaults to False)."""
    return _alpha_dropout("alpha_dropout", input, p, training, inplace, key, per_channel=False)


def feature_alpha_dropout(input: Array, p: float = 0.5, training: bool = False, inplace: bool = False, *,
                          key: Array | None = None) -> Array:
    """Alpha dropout of whole channels of ``(N, C, *)``: ``torch.nn.functional.feature_alpha_dropout``."""
    return _alpha_dropout("feature_alpha_dropout", input, p, training, inplace, key, per_channel=True)


def cosine_similarity(x1: Array, x2: Array, dim: int = 1, eps: float = 1e-8) -> Array:
    """sum(x1 / max(||x1||, eps) * x2 / max(||x2||, eps)) along ``dim`` (x1 and x2 broadcast):
    ``torch.nn.functional.cosine_similarity``."""
    ops = _adapter("cosine_similarity", ("x1", "x2"), x1, x2)
    _floating_only("cosine_similarity", x1)
    xp = ops.xp
    x1, x2 = xp.broadcast_arrays(x1, x2)
    axis = normalize_axis(dim, x1.ndim, "xpnn.torch_nn.functional.cosine_similarity", "dim")
    unit1 = x1 / xp.maximum(xp.linalg.vector_norm(x1, axis=axis, keepdims=True), eps)
    unit2 = x2 / xp.maximum(xp.linalg.vector_norm(x2, axis=axis, keepdims=True), eps)
    return xp.sum(unit1 * unit2, axis=axis)


def pairwise_distance(x1: Array, x2: Array, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> Array:
    """||x1 - x2 + eps||_p along the last dim: ``torch.nn.functional.pairwise_distance``."""
    ops = _adapter("pairwise_distance", ("x1", "x2"), x1, x2)
    _floating_only("pairwise_distance", x1)
    difference = x1 - x2 + eps
    return ops.xp.linalg.vector_norm(difference, ord=p, axis=-1, keepdims=keepdim)


def pdist(input: Array, p: float = 2.0) -> Array:
    """||x_i - x_j||_p of every pair of rows i < j of ``(N, M)``, in the order (0, 1), (0, 2),
    ..., (N - 2, N - 1): ``torch.nn.functional.pdist``."""
    ops = _adapter("pdist", ("input",), input)
    _floating_only("pdist", input)
    if input.ndim != 2:
        raise _error(ValueError, "pdist", f"pdist only supports 2D tensors (as torch), got {input.ndim}D")
    if not p >= 0:
        raise _error(ValueError, "pdist", f"pdist only supports non-negative p values (as torch), got {p!r}")
    xp, device = ops.xp, ops.device_of(input)
    first, second = (xp.asarray(rows, device=device) for rows in np.triu_indices(input.shape[0], k=1))
    return xp.linalg.vector_norm(xp.take(input, first, axis=0) - xp.take(input, second, axis=0), ord=p, axis=-1)


def _factor(function: str, argument: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _error(ValueError, function, f"{argument} must be a positive int, got {value!r}")
    return value


def pixel_shuffle(input: Array, upscale_factor: int) -> Array:
    """``(*, C r^2, H, W)`` rearranged into ``(*, C, H r, W r)``: ``torch.nn.functional.pixel_shuffle``."""
    r = _factor("pixel_shuffle", "upscale_factor", upscale_factor)
    xp = adapter_of(input).xp
    if input.ndim < 3 or input.shape[-3] % (r * r):
        raise _error(ValueError, "pixel_shuffle", f"input must be (*, C * {r * r}, H, W), got shape "
                                                  f"{tuple(input.shape)}")
    *lead, channels, height, width = input.shape
    x = xp.reshape(input, (*lead, channels // (r * r), r, r, height, width))
    n = len(lead)
    x = xp.permute_dims(x, (*range(n), n, n + 3, n + 1, n + 4, n + 2))
    # one pair of dims joined at a time (jax's explicit sharding takes no more in one reshape)
    x = xp.reshape(x, (*lead, channels // (r * r), height, r, width * r))
    return xp.reshape(x, (*lead, channels // (r * r), height * r, width * r))


def pixel_unshuffle(input: Array, downscale_factor: int) -> Array:
    """``(*, C, H r, W r)`` rearranged into ``(*, C r^2, H, W)``: ``torch.nn.functional.pixel_unshuffle``."""
    r = _factor("pixel_unshuffle", "downscale_factor", downscale_factor)
    xp = adapter_of(input).xp
    if input.ndim < 3 or input.shape[-2] % r or input.shape[-1] % r:
        raise _error(ValueError, "pixel_unshuffle", f"input must be (*, C, H, W) with H and W divisible by {r}, got "
                                                    f"shape {tuple(input.shape)}")
    *lead, channels, height, width = input.shape
    # one dim split at a time (jax's explicit sharding takes no more in one reshape)
    x = xp.reshape(input, (*lead, channels, height, width // r, r))
    x = xp.reshape(x, (*lead, channels, height // r, r, width // r, r))
    n = len(lead)
    x = xp.permute_dims(x, (*range(n), n, n + 2, n + 4, n + 1, n + 3))
    return xp.reshape(x, (*lead, channels * r * r, height // r, width // r))


def channel_shuffle(input: Array, groups: int) -> Array:
    """The channels of ``(N, C, *)`` seen as ``(groups, C / groups)`` and transposed:
    ``torch.nn.functional.channel_shuffle``."""
    groups = _factor("channel_shuffle", "groups", groups)
    xp = adapter_of(input).xp
    if input.ndim < 3 or input.shape[1] % groups:
        raise _error(ValueError, "channel_shuffle", f"input must be (N, C, *) with C divisible by groups={groups}, "
                                                    f"got shape {tuple(input.shape)}")
    batch, channels, *rest = input.shape
    x = xp.reshape(input, (batch, groups, channels // groups, *rest))
    x = xp.permute_dims(x, (0, 2, 1, *range(3, x.ndim)))
    return xp.reshape(x, tuple(input.shape))


def native_channel_shuffle(input: Array, groups: int) -> Array:
    """``channel_shuffle`` under the name of torch's kernel: ``torch.nn.functional.native_channel_shuffle``."""
    return channel_shuffle(input, groups)


def embedding(input: Array, weight: Array, padding_idx: int | None = None, max_norm: float | None = None,
              norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False) -> Array:
    """The rows of ``weight`` that the integer ``input`` names: ``torch.nn.functional.embedding``.
    An id outside ``[0, num_embeddings)`` is torch's IndexError where the ids can be read
    (``Adapter.values_at_hand``: not under ``jax.jit``, on Dask or on a GPU, where torch's CUDA
    kernel asserts itself).  (``padding_idx`` only keeps that row out of gradients in torch,
    which xpnn's modules do by initialising it to zeros.)  With ``max_norm``, each named row whose ``norm_type``-norm exceeds
    it is first scaled by max_norm / (norm + 1e-7), outside autograd, as torch's
    ``embedding_renorm_`` does: in place where the library writes rows by index (NumPy, torch);
    elsewhere (jax, array-api-strict, Dask) the renormed table serves this call and ``weight`` is
    left as it is (the ``Embedding`` module keeps the renormed table)."""
    return _embedding_and_table(input, weight, max_norm, norm_type)[0]


def _check_ids(function: str, ops: Any, flat: Array, count: int, library_refuses: bool = False) -> str:
    """Refuse ids that are not int32/int64 or, where they can be read now and the library would
    not refuse them itself (NumPy's take wraps negative ids, jax's clamps), outside
    ``[0, count)``; the out-of-range message."""
    xp = ops.xp
    if flat.dtype not in (xp.int32, xp.int64):
        raise _error(UnsupportedDtypeError, function, f"input must hold integer indices of dtype int32 or int64 "
                                                     f"(as torch requires), got dtype {flat.dtype}")
    out_of_range = f"index out of range in self (as torch): ids must lie in [0, {count})"
    if not library_refuses and flat.shape[0] and ops.values_at_hand(flat):
        lowest, highest = int(xp.min(flat)), int(xp.max(flat))
        if lowest < 0 or highest >= count:
            raise _error(IndexError, function, f"{out_of_range}, got {lowest} to {highest}")
    return out_of_range


def _embedding_and_table(input: Array, weight: Array, max_norm: float | None = None, norm_type: float = 2.0,
                         function: str = "embedding") -> tuple[Array, Array]:
    """``embedding``'s rows and the table they were read from: ``weight`` itself, renormed in
    place where the library can, or the renormed copy."""
    ops = _adapter(function, ("input", "weight"), input, weight)
    xp = ops.xp
    flat = xp.reshape(input, (-1,))
    out_of_range = _check_ids(function, ops, flat, weight.shape[0], ops.take_rows_refuses_out_of_range)

    def rows_of(table: Array) -> Array:
        try:
            return ops.take_rows(table, flat)
        except IndexError:  # the library's own refusal (torch's index_select)
            raise _error(IndexError, function, out_of_range) from None

    if max_norm is not None:
        if not norm_type > 0:
            raise _error(ValueError, function, f"norm_type must be positive (or inf), got {norm_type!r}")
        named = ops.stop_gradient(rows_of(weight))
        magnitude = xp.abs(named)
        norms = (xp.max(magnitude, axis=-1) if norm_type == math.inf
                 else xp.sum(magnitude ** norm_type, axis=-1) ** (1 / norm_type))
        scale = xp.where(norms > max_norm, max_norm / (norms + 1e-7), xp.ones_like(norms))
        weight = ops.write_rows(weight, flat, named * scale[:, None])
    return xp.reshape(rows_of(weight), (*input.shape, weight.shape[-1])), weight


_BAG_MODES = ("sum", "mean", "max")


def embedding_bag(input: Array, weight: Array, offsets: Array | None = None, max_norm: float | None = None,
                  norm_type: float = 2, scale_grad_by_freq: bool = False, mode: str = "mean", sparse: bool = False,
                  per_sample_weights: Array | None = None, include_last_offset: bool = False,
                  padding_idx: int | None = None) -> Array:
    """The sum, mean or max of each bag of embedding rows: ``torch.nn.functional.embedding_bag``.
    Bags are the rows of a 2-D ``input`` (fixed length), or the runs of a 1-D ``input`` that
    start at ``offsets`` (with ``include_last_offset``, ``offsets`` ends with the input's length,
    and the last bag runs to the end of the input whatever that entry says, as torch's kernel).  Ids
    equal to ``padding_idx`` are left out (and out of the mean's count); an empty bag gives
    zeros; ``per_sample_weights`` (sum only) scales each row.  ``max_norm`` renorms the rows
    used, as ``embedding``.  Where the bag lengths can be read now, the bags are gathered into a
    (bags, longest) block; otherwise (under ``jax.jit``, on Dask or a GPU) a segmented scan
    reduces them without a host read.  (``scale_grad_by_freq`` and ``sparse`` shape torch's gradients
    only; they are checked as torch checks them.)"""
    return _embedding_bag_and_table(input, weight, offsets, max_norm, norm_type, scale_grad_by_freq, mode, sparse,
                                    per_sample_weights, include_last_offset, padding_idx)[0]


def _bag_operands(function: str, ops: Any, input: Array, offsets: Array | None, per_sample_weights: Array | None,
                  include_last_offset: bool, read_offsets: bool = True) -> tuple[Array, Array | None]:
    """The ids and the bags' start positions (None for the fixed-length rows of a 2-D
    ``input``), checked as torch checks them (the offsets' values with ``read_offsets``:
    ``_check_offsets``)."""
    xp = ops.xp
    if per_sample_weights is not None and tuple(per_sample_weights.shape) != tuple(input.shape):
        raise _error(ValueError, function, f"per_sample_weights must have the input's shape {tuple(input.shape)}, got "
                                           f"{tuple(per_sample_weights.shape)} (as torch)")
    if input.ndim == 2:
        if offsets is not None:
            raise _error(ValueError, function, "if input is 2-d, then offsets has to be None, as input is a batch of "
                                               "fixed length bags (as torch)")
        return input, None
    if input.ndim != 1:
        raise _error(ValueError, function, f"input has to be 1-d or 2-d, got shape {tuple(input.shape)}")
    if offsets is None or offsets.ndim != 1:
        raise _error(ValueError, function, f"a 1-d input needs 1-d offsets, got "
                                           f"{None if offsets is None else tuple(offsets.shape)}")
    if not xp.isdtype(offsets.dtype, "integral"):
        raise _error(TypeError, function, f"offsets must be integers, got dtype {offsets.dtype}")
    if read_offsets:
        _check_offsets(function, ops, offsets, input.shape[0])
    # with include_last_offset the last offset is the input's length; the last bag runs to the end, as torch's
    return input, offsets[:-1] if include_last_offset else offsets


def _check_offsets(function: str, ops: Any, offsets: Array | None, length: int) -> None:
    """Refuse bags' ``offsets`` (None: a 2-D input's) that do not start at 0, decrease or pass the
    ``length`` ids, where they can be read, as torch refuses them."""
    if offsets is None or not offsets.shape[0] or not ops.values_at_hand(offsets):
        return
    host = np.asarray(ops.to_host(offsets))
    if host[0] != 0 or host[-1] > length or np.any(host[1:] < host[:-1]):
        raise _error(ValueError, function, f"offsets must start at 0 and not decrease, up to the input's length "
                                           f"{length} (as torch), got {host[:6].tolist()}"
                                           f"{' ...' if host.shape[0] > 6 else ''}")


def _runs(ops: Any, starts: Array, lengths: Array, longest: int, total: int) -> tuple[Array, Array]:
    """Runs of ``lengths`` items from ``starts`` in a 1-D array of ``total`` items as (runs,
    longest) rows: the flat positions (clipped into the array past a run's end) and the mask of
    those inside their run (embedding_bag's bags, ctc_loss's concatenated targets)."""
    xp = ops.xp
    columns = xp.arange(longest, dtype=starts.dtype, device=ops.device_of(starts))
    positions = xp.reshape(xp.clip(starts[:, None] + columns, 0, max(total - 1, 0)), (-1,))
    return positions, columns < lengths[:, None]


def _segmented_scan(xp: Any, values: Array, segment: Array, combine: Any) -> Array:
    """The inclusive scan of ``combine`` along the first axis of ``values`` within runs of equal
    ``segment`` (non-decreasing): ceil(log2 n) shifted steps (Hillis and Steele), so bags of
    any lengths reduce without a scatter or a host read."""
    rows = values.shape[0]
    shift = 1
    while shift < rows:
        same = segment[shift:] == segment[:-shift]
        later, earlier = values[shift:, ...], values[:-shift, ...]
        combined = xp.where(same[:, None], combine(later, earlier), later)
        values = xp.concat([values[:shift, ...], combined])
        shift *= 2
    return values


def _embedding_bag_and_table(input: Array, weight: Array, offsets: Array | None, max_norm: float | None,
                             norm_type: float, scale_grad_by_freq: bool, mode: str, sparse: bool,
                             per_sample_weights: Array | None, include_last_offset: bool,
                             padding_idx: int | None) -> tuple[Array, Array]:
    """``embedding_bag``'s bags and the table they were read from (renormed with ``max_norm``)."""
    function = "embedding_bag"
    ops = _adapter(function, ("input", "weight", "offsets", "per_sample_weights"), input, weight, offsets,
                   per_sample_weights)
    if weight.ndim != 2:
        raise _error(ValueError, function, f"weight has to be 2-d, got shape {tuple(weight.shape)}")
    if mode not in _BAG_MODES:
        raise _error(ValueError, function, f"mode has to be one of sum, mean or max, got {mode!r}")
    if mode == "max" and (scale_grad_by_freq or sparse):
        raise _error(ValueError, function, "max mode does not support scaling the gradient by the frequency or "
                                           "sparse weights (as torch)")
    if per_sample_weights is not None and mode != "sum":
        raise _error(NotImplementedError, function, f"per_sample_weights is only supported for mode='sum', got "
                                                    f"mode={mode!r} (as torch)")
    count = weight.shape[0]
    if padding_idx is not None:
        if not -count <= padding_idx < count:
            raise _error(ValueError, function, f"padding_idx must be within the number of embeddings, {-count} "
                                               f"through {count - 1}, but got {padding_idx}")
        padding_idx %= count
    fusable = max_norm is None and fast_paths_enabled() and layer_kernel_agrees(_FUSED_BAG_KERNEL, ops, weight)
    # the fused kernel refuses ids out of range and bad offsets itself (its first-use check holds
    # it to that), but not a last offset past the ids that include_last_offset leaves out
    read_offsets = not fusable or include_last_offset
    ids, starts = _bag_operands(function, ops, input, offsets, per_sample_weights, include_last_offset, read_offsets)
    if fusable:
        out_of_range = _check_ids(function, ops, ids, count, library_refuses=True)
        try:
            fused = ops.fused_embedding_bag(weight, ids, starts, mode, per_sample_weights, padding_idx)
        except IndexError:
            raise _error(IndexError, function, out_of_range) from None
        except ValueError:  # the offsets: read them for the error that names them
            _check_offsets(function, ops, offsets, input.shape[0])
            raise
        if fused is not None:
            return fused, weight
        if not read_offsets:  # the library has no kernel: the offsets were not checked
            _check_offsets(function, ops, offsets, input.shape[0])
    return _written_bags(ops, ids, weight, starts, mode, max_norm, norm_type, per_sample_weights, padding_idx)


#: The layer-kernel check's name of the libraries' fused embedding bag.
_FUSED_BAG_KERNEL = "fused_embedding_bag"


def _written_bags(ops: Any, ids: Array, weight: Array, starts: Array | None, mode: str, max_norm: float | None,
                  norm_type: float, samples: Array | None, padding_idx: int | None) -> tuple[Array, Array]:
    """``embedding_bag``'s written-once bags of checked operands (``_bag_operands``) and their table."""
    function = "embedding_bag"
    xp = ops.xp
    ends = None
    if starts is not None:  # each bag ends where the next starts, the last at the end of the ids
        end = xp.asarray([ids.shape[0]], dtype=starts.dtype, device=ops.device_of(starts))
        ends = xp.concat([starts[1:], end])
    bags = ids.shape[0] if starts is None else starts.shape[0]
    if not (ids.size and bags):  # no ids, or no bags: empty bags are zeros (torch refuses 2-d ones)
        empty = xp.zeros((bags, weight.shape[1]), dtype=weight.dtype, device=ops.device_of(weight))
        return empty, _embedding_and_table(ids, weight, max_norm, norm_type, function)[1]
    if starts is not None and not ops.values_at_hand(ends):
        return _scanned_bags(ops, ids, weight, starts, ends, mode, max_norm, norm_type, samples, padding_idx)
    inside = None
    if starts is not None:  # the bags gathered into a (bags, longest) block, its padding masked
        sizes = ends - starts
        where, inside = _runs(ops, starts, sizes, max(int(xp.max(sizes)), 1), ids.shape[0])
        ids = xp.reshape(xp.take(ids, where), inside.shape)
        if samples is not None:
            samples = xp.reshape(xp.take(samples, where), inside.shape)
    rows, table = _embedding_and_table(ids, weight, max_norm, norm_type, function)
    used = inside if padding_idx is None else ids != padding_idx if inside is None else inside & (ids != padding_idx)
    if mode == "max":
        reduced = xp.max(rows if used is None else xp.where(used[..., None], rows, -xp.inf), axis=1)
        counts = xp.sum(xp.astype(used, rows.dtype), axis=1) if used is not None else None
    else:
        weights = xp.ones(ids.shape, dtype=rows.dtype, device=ops.device_of(rows)) if used is None else xp.astype(
            used, rows.dtype)
        counts = xp.sum(weights, axis=1)
        if samples is not None:
            weights = weights * samples
        reduced = ops.matmul(weights[:, None, :], rows)[:, 0, :]  # the bag's (weighted) sum without a masked copy
        if mode == "mean":
            reduced = reduced / xp.where(counts > 0, counts, 1.0)[:, None]
    if counts is None:
        return reduced, table
    return xp.where((counts > 0)[:, None], reduced, 0.0), table


def _scanned_bags(ops: Any, ids: Array, weight: Array, starts: Array, ends: Array, mode: str,
                  max_norm: float | None, norm_type: float, samples: Array | None,
                  padding_idx: int | None) -> tuple[Array, Array]:
    """``embedding_bag`` of 1-D ``ids`` whose bag lengths cannot be read now (under ``jax.jit``, on
    Dask or a GPU): a segmented scan over the ids' rows, read at each bag's last id."""
    xp = ops.xp
    rows, table = _embedding_and_table(ids, weight, max_norm, norm_type, "embedding_bag")
    kept = None if padding_idx is None else ids != padding_idx
    if samples is not None:
        rows = rows * samples[:, None]
    if kept is not None:
        rows = xp.where(kept[:, None], rows, -xp.inf if mode == "max" else 0.0)
    positions = xp.arange(ids.shape[0], dtype=starts.dtype, device=ops.device_of(starts))
    segment = xp.searchsorted(starts, positions, side="right")  # 1 + the bag of each id
    last = xp.clip(ends - 1, 0, ids.shape[0] - 1)
    combine = xp.maximum if mode == "max" else operator.add
    reduced = xp.take(_segmented_scan(xp, rows, segment, combine), last, axis=0)
    if kept is None:
        counts = xp.astype(xp.maximum(ends - starts, 0), rows.dtype)
    else:
        kept_counts = _segmented_scan(xp, xp.astype(kept, rows.dtype)[:, None], segment, operator.add)
        counts = xp.where(ends > starts, xp.take(kept_counts[:, 0], last), 0.0)
    if mode == "mean":
        reduced = reduced / xp.where(counts > 0, counts, 1.0)[:, None]
    return xp.where((counts > 0)[:, None], reduced, 0.0), table


def _fused_bag_disagreement(ops: Any, dtype: Any, device: Any) -> str | None:
    """Why the library's fused embedding bag and the written-once gather differ on a fixed probe
    (a (12, 5) table of ``dtype``; 30 ids in bags of 4, 0, 7, 9 and 10 and as 6 rows of 5; every
    mode, with and without ``padding_idx`` and, for sums, per-sample weights), and ids out of
    range and bad offsets, which the fused kernel must refuse (IndexError, ValueError) where they
    are at hand; None if they agree within 16 eps (sums in another order)."""
    xp = ops.xp
    rng = np.random.default_rng(0)
    table = xp.astype(ops.from_host(rng.standard_normal((12, 5)), device), dtype)
    flat = ops.from_host(rng.integers(0, 12, 30), device)
    offsets = ops.from_host(np.array([0, 4, 4, 11, 20]), device)
    weights = xp.astype(ops.from_host(rng.standard_normal(30), device), dtype)
    tolerance = 16 * float(xp.finfo(dtype).eps)
    for ids, starts in ((flat, offsets), (xp.reshape(flat, (6, 5)), None)):
        for mode, padding_idx in itertools.product(_BAG_MODES, (None, 3)):
            samples = xp.reshape(weights, ids.shape) if mode == "sum" else None
            fused = ops.fused_embedding_bag(table, ids, starts, mode, samples, padding_idx)
            if fused is None:
                continue
            written = _written_bags(ops, ids, table, starts, mode, None, 2.0, samples, padding_idx)[0]
            reason = outputs_disagreement(ops, (fused,), (written,), tolerance,
                                          f"the fused {mode} bags (padding_idx={padding_idx}, {ids.ndim}-d ids)",
                                          "the written-once gather")
            if reason is not None:
                return reason
    taken = _unrefused(ops, device, IndexError, ([[0, -1]], [[0, 12]]),
                       lambda ids: ops.fused_embedding_bag(table, ids, None, "sum"))
    if taken is not None:
        return f"the fused bags read ids {taken} of a table of 12 rows instead of raising IndexError"
    # offsets not from 0, past the 30 ids, decreasing
    taken = _unrefused(ops, device, ValueError, ([1, 4], [0, 31], [0, 11, 4]),
                       lambda starts: ops.fused_embedding_bag(table, flat, starts, "sum"))
    if taken is not None:
        return f"the fused bags took offsets {taken} of 30 ids instead of raising ValueError"
    return None


def _unrefused(ops: Any, device: Any, error: type[Exception], probes: Sequence[list],
               fused: Any) -> list | None:
    """The first of ``probes`` (host values) that the kernel call ``fused(probe on device)``
    takes instead of raising ``error``; None if it refuses each, or where the probe's values are
    not at hand (kernels are not asked to refuse there: torch's CUDA ones assert)."""
    for probe in probes:
        given = ops.from_host(np.array(probe), device)
        if not ops.values_at_hand(given):
            return None
        try:
            answer = fused(given)
        except error:
            continue
        if answer is not None:
            return probe
    return None


LAYER_KERNELS[_FUSED_BAG_KERNEL] = _fused_bag_disagreement


def one_hot(tensor: Array, num_classes: int = -1) -> Array:
    """Integer classes as one-hot int64 (the library's default integer) rows:
    ``torch.nn.functional.one_hot`` (``num_classes=-1``: the largest class + 1).  A class below 0
    or from ``num_classes`` on is torch's RuntimeError where the classes can be read
    (``Adapter.values_at_hand``; xpnn.one_hot, as jax.nn's, gives it a row of zeros)."""
    ops = adapter_of(tensor)
    xp = ops.xp
    count = math.prod(tensor.shape)
    if num_classes < 0 and not count:
        raise _error(RuntimeError, "one_hot", "Can not infer total number of classes from empty tensor (as torch)")
    if count and (num_classes < 0 or ops.values_at_hand(tensor)):  # -1: the classes are read anyway
        if int(xp.min(tensor)) < 0:
            raise _error(RuntimeError, "one_hot", "Class values must be non-negative (as torch)")
        largest = int(xp.max(tensor))
        if num_classes < 0:
            num_classes = largest + 1
        elif largest >= num_classes:
            raise _error(RuntimeError, "one_hot", f"Class values must be smaller than num_classes ({num_classes}) "
                                                  "(as torch)")
    return xpnn.one_hot(tensor, num_classes, dtype=xp.asarray(0).dtype)


# -- convolution and pooling (channels first) --------------------------------------------------

def _tuple(value: int | Sequence[int], rank: int, function: str, argument: str) -> tuple[int, ...]:
    """A window argument as ``rank`` ints: at least 0 for the paddings, at least 1 for the rest
    (kernel sizes, strides, dilations; torch's RuntimeError below, where a 0 stride would
    divide by zero)."""
    values = (value,) * rank if isinstance(value, int) else tuple(value)
    if len(values) == 1 and rank > 1:
        values = values * rank
    if len(values) != rank or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise _error(ValueError, function, f"{argument} must be an int or {rank} ints, got {value!r}")
    least = 0 if argument in ("padding", "output_padding") else 1
    if min(values) < least:
        raise _error(RuntimeError, function, f"{argument} must be at least {least} (as torch), got {value!r}")
    return values


def _channels_last(x: Array, rank: int) -> Array:
    """``(N, C, *spatial)`` seen as ``(N, *spatial, C)`` (a view where the library has views)."""
    xp = adapter_of(x).xp
    return xp.permute_dims(x, (0, *range(2, rank + 2), 1))


def _channels_first(y: Array, rank: int) -> Array:
    xp = adapter_of(y).xp
    return xp.permute_dims(y, (0, rank + 1, *range(1, rank + 1)))


def _batched(input: Array, rank: int, function: str) -> tuple[Array, bool]:
    """``input`` with its batch dimension (torch takes ``(C, *spatial)`` unbatched)."""
    if input.ndim == rank + 1:
        return adapter_of(input).xp.expand_dims(input, axis=0), True
    if input.ndim != rank + 2:
        raise _error(ValueError, function, f"input must be {rank + 1}-d (unbatched) or {rank + 2}-d "
                                           f"(N, C, *spatial), got shape {tuple(input.shape)}")
    return input, False


def same_padding(kernel_size: Sequence[int], dilation: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """torch's ``padding='same'``: d (k - 1) split in two, the odd element at the end."""
    totals = [d * (k - 1) for k, d in zip(kernel_size, dilation)]
    return tuple((total // 2, total - total // 2) for total in totals)


def _convolution(function: str, rank: int, input: Array, weight: Array, bias: Array | None, stride: Any,
                 padding: Any, dilation: Any, groups: int) -> Array:
    ops = _adapter(function, ("input", "weight", "bias"), input, weight, bias)
    _floating_only(function, input, refused="bool")
    x, unbatched = _batched(input, rank, function)
    _check_weight_rank(function, rank, weight)
    channels = x.shape[1]
    if channels != weight.shape[1] * groups:
        raise _error(ValueError, function, f"input has {channels} channels; weight {tuple(weight.shape)} with "
                                           f"groups={groups} expects {weight.shape[1] * groups}")
    features = (weight.shape[0],)
    if not _fit(features, bias):
        raise _misfit(function, "weight", weight, features, bias=bias)
    strides, pads, dilations = _conv_geometry(function, weight.shape, stride, padding, dilation, x.shape)
    y = ops.conv_channels_first(x, weight, strides, pads, (1,) * rank, dilations, groups, bias)
    return y[0, ...] if unbatched else y


def _check_weight_rank(function: str, rank: int, weight: Array) -> None:
    """A ValueError unless ``weight`` is ``(O, I, *window)`` with ``rank`` window sizes."""
    if weight.ndim != rank + 2:
        raise _error(ValueError, function, f"weight must be {rank + 2}-d (out, in, *kernel_size), got shape "
                                           f"{tuple(weight.shape)}")


def _sizes(sizes: Sequence[int]) -> str:
    """Spatial sizes as torch writes them: ``(3 x 9)``."""
    return "(" + " x ".join(str(n) for n in sizes) + ")"


@per_arguments
def _conv_geometry(function: str, weight_shape: Sequence[int], stride: Any, padding: Any, dilation: Any,
                   shape: Sequence[int]) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...], tuple[int, ...]]:
    """A convolution's strides, (low, high) pads and dilations for a kernel of shape
    ``weight_shape`` ``(O, I, *window)`` over a batched input of ``shape`` ``(N, C, *sizes)``
    (worked out once per set of arguments: modules pass the same ones on every call).  A kernel
    wider than the padded input is torch's error (jax.lax would give an empty output)."""
    window, sizes = tuple(weight_shape[2:]), tuple(shape[2:])
    rank = len(window)
    strides = _tuple(stride, rank, function, "stride")
    dilations = _tuple(dilation, rank, function, "dilation")
    if padding == "valid":
        pads = ((0, 0),) * rank
    elif padding == "same":
        if any(s != 1 for s in strides):
            raise _error(ValueError, function, "padding='same' is not supported for strided convolutions (as in torch)")
        pads = same_padding(window, dilations)
    elif isinstance(padding, str):
        raise _error(ValueError, function, f"padding must be 'valid', 'same', an int or {rank} ints, got {padding!r}")
    else:
        pads = tuple((p, p) for p in _tuple(padding, rank, function, "padding"))
    padded = [n + low + high for n, (low, high) in zip(sizes, pads)]
    reach = [d * (k - 1) + 1 for k, d in zip(window, dilations)]
    if any(p < r for p, r in zip(padded, reach)):
        raise _error(RuntimeError, function, f"calculated padded input size per channel: {_sizes(padded)}. Kernel "
                                             f"size: {_sizes(reach)}. Kernel size can't be greater than actual input "
                                             "size (as in torch)")
    return strides, pads, dilations


def conv1d(input: Array, weight: Array, bias: Array | None = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Array:
    """1-d cross-correlation of ``(N, C, L)``, ``weight`` ``(O, C // groups, k)``:
    y[n, o, l] = b_o + sum over c, j of x[n, g C_g + c, l s + j d - p] W[o, c, j] (``torch.nn.functional.conv1d``)."""
    return _convolution("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input: Array, weight: Array, bias: Array | None = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Array:
    """2-d cross-correlation of ``(N, C, H, W)``, ``weight`` ``(O, C // groups, kh, kw)``;
    ``padding`` an int, a pair, 'valid' or 'same' (``torch.nn.functional.conv2d``)."""
    return _convolution("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input: Array, weight: Array, bias: Array | None = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Array:
    """3-d cross-correlation of ``(N, C, D, H, W)``, ``weight`` ``(O, C // groups, kd, kh, kw)``;
    ``padding`` an int, a triple, 'valid' or 'same' (``torch.nn.functional.conv3d``)."""
    return _convolution("conv3d", 3, input, weight, bias, stride, padding, dilation, groups)


def conv_tbc(input: Array, weight: Array, bias: Array, pad: int = 0) -> Array:
    """The 1-d cross-correlation of a time-first sequence ``(T, N, C)`` with ``weight`` ``(k, C,
    O)`` and ``bias`` ``(O,)``, ``pad`` steps of zeros at each end: ``(T + 2 pad - k + 1, N, O)``
    (``torch.nn.functional.conv_tbc``; ``conv1d`` of the permuted operands)."""
    xp = _adapter("conv_tbc", ("input", "weight", "bias"), input, weight, bias).xp
    if input.ndim != 3 or weight.ndim != 3 or bias.ndim != 1:
        raise _error(ValueError, "conv_tbc", f"expected input (T, N, C), weight (k, C, O) and bias (O,), got shapes "
                                             f"{tuple(input.shape)}, {tuple(weight.shape)} and {tuple(bias.shape)}")
    y = _convolution("conv_tbc", 1, xp.permute_dims(input, (1, 2, 0)), xp.permute_dims(weight, (2, 1, 0)), bias, 1,
                     pad, 1, 1)
    return xp.permute_dims(y, (2, 0, 1))


def _transposed_convolution(function: str, rank: int, input: Array, weight: Array, bias: Array | None, stride: Any,
                            padding: Any, output_padding: Any, groups: int, dilation: Any) -> Array:
    """The transposed convolution of ``weight``'s rank (``conv_transpose1d/2d/3d``).

    The adapter's ``conv_transpose_channels_first``: written once as a convolution of the input
    dilated by ``stride`` with the kernel flipped and its feature axes swapped, padded by
    d (k - 1) - p (plus ``output_padding`` at the end).  An output size below 1 is an error, as
    torch's shape check has it (some of torch's kernels return an empty output there instead)."""
    ops = _adapter(function, ("input", "weight", "bias"), input, weight, bias)
    _floating_only(function, input, refused="bool")
    x, unbatched = _batched(input, rank, function)
    _check_weight_rank(function, rank, weight)
    strides = _tuple(stride, rank, function, "stride")
    dilations = _tuple(dilation, rank, function, "dilation")
    paddings = _tuple(padding, rank, function, "padding")
    extra = _tuple(output_padding, rank, function, "output_padding")
    if any(not 0 <= o < max(s, d) for o, s, d in zip(extra, strides, dilations)):
        raise _error(ValueError, function, f"output_padding {extra} must be smaller than stride {strides} or "
                                           f"dilation {dilations}")
    channels = x.shape[1]
    if channels != weight.shape[0] or channels % groups:
        raise _error(ValueError, function, f"input has {channels} channels; weight {tuple(weight.shape)} expects "
                                           f"{weight.shape[0]} (divisible by groups={groups})")
    sizes = tuple((n - 1) * s - 2 * p + d * (k - 1) + o + 1
                  for n, s, p, d, k, o in zip(x.shape[2:], strides, paddings, dilations, weight.shape[2:], extra))
    if any(size < 1 for size in sizes):  # torch's shape check refuses an empty output (jax gives one)
        raise _error(RuntimeError, function, f"given input size per channel: {_sizes(x.shape[2:])}. Calculated "
                                             f"output size per channel: {_sizes(sizes)}. Output size is too small "
                                             "(as in torch)")
    if not _fit((weight.shape[1] * groups,), bias):
        raise _misfit(function, "weight", weight, (weight.shape[1] * groups,), bias=bias)
    y = ops.conv_transpose_channels_first(x, weight, strides, paddings, extra, groups, dilations, bias)
    return y[0, ...] if unbatched else y


def conv_transpose1d(input: Array, weight: Array, bias: Array | None = None, stride: Any = 1, padding: Any = 0,
                     output_padding: Any = 0, groups: int = 1, dilation: Any = 1) -> Array:
    """The gradient of ``conv1d`` with respect to its input, ``weight`` ``(C, O // groups, k)``:
    output length (n - 1) s - 2 p + d (k - 1) + output_padding + 1
    (``torch.nn.functional.conv_transpose1d``; see ``_transposed_convolution``)."""
    return _transposed_convolution("conv_transpose1d", 1, input, weight, bias, stride, padding, output_padding,
                                   groups, dilation)


def conv_transpose2d(input: Array, weight: Array, bias: Array | None = None, stride: Any = 1, padding: Any = 0,
                     output_padding: Any = 0, groups: int = 1, dilation: Any = 1) -> Array:
    """The gradient of ``conv2d`` with respect to its input, ``weight`` ``(C, O // groups, kh, kw)``:
    output size (n - 1) s - 2 p + d (k - 1) + output_padding + 1
    (``torch.nn.functional.conv_transpose2d``; see ``_transposed_convolution``)."""
    return _transposed_convolution("conv_transpose2d", 2, input, weight, bias, stride, padding, output_padding,
                                   groups, dilation)


def conv_transpose3d(input: Array, weight: Array, bias: Array | None = None, stride: Any = 1, padding: Any = 0,
                     output_padding: Any = 0, groups: int = 1, dilation: Any = 1) -> Array:
    """The gradient of ``conv3d`` with respect to its input, ``weight`` ``(C, O // groups, kd, kh, kw)``:
    output size (n - 1) s - 2 p + d (k - 1) + output_padding + 1
    (``torch.nn.functional.conv_transpose3d``; see ``_transposed_convolution``)."""
    return _transposed_convolution("conv_transpose3d", 3, input, weight, bias, stride, padding, output_padding,
                                   groups, dilation)


def _patch_kernel(ops: Any, channels: int, window: tuple[int, int], like: Array) -> Array:
    """The grouped convolution kernel ``(C kh kw, 1, kh, kw)`` whose output channel c kh kw + i kw + j
    reads element (i, j) of the window of channel c: ``unfold`` and ``fold`` as convolutions."""
    count = math.prod(window)
    picks = np.tile(np.eye(count).reshape(count, 1, *window), (channels, 1, 1, 1))
    return ops.xp.asarray(picks, dtype=like.dtype, device=ops.device_of(like))


def _patch_geometry(function: str, kernel_size: Any, dilation: Any, padding: Any,
                    stride: Any) -> tuple[tuple[int, ...], ...]:
    return tuple(_tuple(value, 2, function, name) for value, name in
                 ((kernel_size, "kernel_size"), (dilation, "dilation"), (padding, "padding"), (stride, "stride")))


def unfold(input: Array, kernel_size: Any, dilation: Any = 1, padding: Any = 0, stride: Any = 1) -> Array:
    """The sliding windows of ``(N, C, H, W)`` as columns ``(N, C kh kw, L)``, L windows in row
    order, each column channel-major: ``torch.nn.functional.unfold`` (im2col), a grouped
    convolution with a kernel that picks one window element per output channel."""
    function = "unfold"
    _floating_only(function, input, refused="bool")
    x, unbatched = _batched(input, 2, function)
    ops = adapter_of_array(x)
    window, dilations, paddings, strides = _patch_geometry(function, kernel_size, dilation, padding, stride)
    channels = x.shape[1]
    weight = _patch_kernel(ops, channels, window, x)
    _conv_geometry(function, weight.shape, strides, paddings, dilations, x.shape)  # windows that fit, as torch's
    columns = ops.conv_channels_first(x, weight, strides, tuple((p, p) for p in paddings), (1, 1), dilations,
                                      channels)
    columns = ops.xp.reshape(columns, (x.shape[0], columns.shape[1], -1))
    return columns[0, ...] if unbatched else columns


def fold(input: Array, output_size: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
         stride: Any = 1) -> Array:
    """Columns ``(N, C kh kw, L)`` summed back into ``(N, C, *output_size)``, overlapping window
    elements added: ``torch.nn.functional.fold`` (col2im), the transposed convolution of
    ``unfold``'s kernel."""
    function = "fold"
    _floating_only(function, input, refused="bool")
    x, unbatched = _batched(input, 1, function)
    ops = adapter_of_array(x)
    sizes = _tuple(output_size, 2, function, "output_size")
    window, dilations, paddings, strides = _patch_geometry(function, kernel_size, dilation, padding, stride)
    count = math.prod(window)
    blocks = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, p, d, k, s in zip(sizes, paddings, dilations, window,
                                                                             strides)]
    if x.shape[1] % count or min(blocks) < 1 or x.shape[2] != math.prod(blocks):
        raise _error(RuntimeError, function, f"given output_size={sizes}, kernel_size={window}, dilation="
                                             f"{dilations}, padding={paddings}, stride={strides}, expected an input "
                                             f"of (N, C * {count}, {math.prod(blocks)}), got shape "
                                             f"{tuple(input.shape)} (as torch)")
    channels = x.shape[1] // count
    grid = ops.xp.reshape(x, (x.shape[0], x.shape[1], *blocks))
    extra = tuple(n + 2 * p - ((b - 1) * s + d * (k - 1) + 1)
                  for n, p, b, s, d, k in zip(sizes, paddings, blocks, strides, dilations, window))
    y = ops.conv_transpose_channels_first(grid, _patch_kernel(ops, channels, window, x), strides, paddings, extra,
                                          channels, dilations)
    return y[0, ...] if unbatched else y


def _pool_pads(function: str, sizes: tuple[int, ...], window: tuple[int, ...], strides: tuple[int, ...],
               padding: tuple[int, ...], dilation: tuple[int, ...], ceil_mode: bool) -> tuple[tuple[int, int], ...]:
    """torch's pooling pads: ``padding`` on both sides, and with ``ceil_mode`` the extra high
    padding that makes a last window which starts inside the input (or its low padding).  The
    high side is where the last window ends, or ``padding`` itself where that makes no more
    windows (less than a stride beyond it: the trailing input that no window reads, which
    floor mode drops): a pooling's pads are then symmetric, which torch's kernels take as their
    own, instead of a cropped copy of the input (1 of 12 ms for MaxPool2d(3, 2) on (16, 64, 56, 56))."""
    pads = []
    for n, k, s, p, d in zip(sizes, window, strides, padding, dilation):
        span = n + 2 * p - d * (k - 1) - 1
        count = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (count - 1) * s >= n + p:
            count -= 1
        if count < 1:
            raise _error(ValueError, function, f"output size is too small for input size {n}, kernel {k}, "
                                               f"stride {s}, padding {p}")
        end = (count - 1) * s + d * (k - 1) + 1 - n - p  # the last window's end beyond the input
        pads.append((p, p if end <= p < end + s else end))
    return tuple(pads)


class _Pooling(NamedTuple):
    """A pooling's arguments resolved: the batched input, ``ceil_mode`` and the windows' sizes,
    strides, ``padding`` (both sides), dilations and the pads of every side (ceil_mode's extra
    included)."""

    x: Array
    unbatched: bool
    ceil_mode: bool
    window: tuple[int, ...]
    strides: tuple[int, ...]
    paddings: tuple[int, ...]
    dilations: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    #: reduce_window's window, strides, padding and dilation over (N, C, *spatial)
    windows: tuple[tuple[int, ...], tuple[int, ...], tuple[tuple[int, int], ...], tuple[int, ...]]


@per_arguments
def _pool_geometry(function: str, shape: Sequence[int], kernel_size: Any, stride: Any, padding: Any, dilation: Any,
                   ceil_mode: bool) -> tuple[tuple[int, ...], ...]:
    """A pooling's windows, strides, paddings, dilations and pads for batched inputs of
    ``shape`` ``(N, C, *sizes)`` (worked out once per set of arguments: modules pass the same
    ones on every call)."""
    sizes = tuple(shape[2:])
    rank = len(sizes)
    window = _tuple(kernel_size, rank, function, "kernel_size")
    strides = window if stride is None or stride == () or stride == [] else _tuple(stride, rank, function, "stride")
    paddings = _tuple(padding, rank, function, "padding")
    if any(2 * p > k for p, k in zip(paddings, window)):
        raise _error(ValueError, function, f"padding {paddings} should be at most half of kernel_size {window}")
    dilations = _tuple(dilation, rank, function, "dilation")
    pads = _pool_pads(function, sizes, window, strides, paddings, dilations, ceil_mode)
    windows = ((1, 1, *window), (1, 1, *strides), ((0, 0), (0, 0), *pads), (1, 1, *dilations))
    return window, strides, paddings, dilations, pads, windows


def _pooling(function: str, x: Array, unbatched: bool, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
             ceil_mode: bool) -> _Pooling:
    """The pooling of the batched input ``x`` with these arguments resolved."""
    return _Pooling(x, unbatched, ceil_mode,
                    *_pool_geometry(function, x.shape, kernel_size, stride, padding, dilation, ceil_mode))


def _max_pool(function: str, rank: int, input: Array, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
              ceil_mode: bool, return_indices: bool) -> Array | tuple[Array, Array]:
    """``max_pool1d/2d/3d``: the library's fused pool where it agreed with the
    written-once windows on this machine, else those windows."""
    floating = _floating_only(function, input, refused="bool")
    pooling = _pooling(function, *_batched(input, rank, function), kernel_size, stride, padding, dilation, ceil_mode)
    ops = adapter_of_array(pooling.x)
    kind = "max_indices" if return_indices else "max"
    pooled = _fused_pool(ops, kind, pooling) if floating else None
    if pooled is None:
        pooled = _max_pooled(ops, kind, pooling)
    if not pooling.unbatched:
        return pooled
    return (pooled[0][0, ...], pooled[1][0, ...]) if return_indices else pooled[0, ...]


def max_pool1d(input: Array, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, return_indices: bool = False) -> Array | tuple[Array, Array]:
    """The max of each window of ``(N, C, L)``, padding -inf: ``torch.nn.functional.max_pool1d``.
    With ``return_indices``, also where each max is along L (``_max_with_indices``)."""
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(input: Array, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, return_indices: bool = False) -> Array | tuple[Array, Array]:
    """The max of each window of ``(N, C, H, W)``, padding -inf: ``torch.nn.functional.max_pool2d``.
    With ``return_indices``, also where each max is: its flat index ``h * W + w`` in its input
    plane (``_max_with_indices``)."""
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool3d(input: Array, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, return_indices: bool = False) -> Array | tuple[Array, Array]:
    """The max of each window of ``(N, C, D, H, W)``, padding -inf: ``torch.nn.functional.max_pool3d``.
    With ``return_indices``, also where each max is: its flat index ``(d * H + h) * W + w`` in its
    input volume (``_max_with_indices``)."""
    return _max_pool("max_pool3d", 3, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def _max_pooled(ops: Any, kind: str, pooling: _Pooling) -> Array | tuple[Array, Array]:
    """A max pool of the batched input, written once: the windows' maxima, padded with -inf
    (the integer dtype's least value), and for ``kind`` 'max_indices' their indices."""
    lowest = _lowest(ops.xp, pooling.x.dtype)
    if kind == "max_indices":
        return _max_with_indices(ops, pooling, lowest)
    return ops.reduce_window(pooling.x, lowest, "max", *pooling.windows)


@functools.lru_cache(maxsize=64)
def _lowest(xp: Any, dtype: Any) -> float:
    """max_pool's padding value: -inf, or the integer dtype's least value."""
    return -math.inf if xp.isdtype(dtype, "real floating") else xp.iinfo(dtype).min


def _max_with_indices(ops: Any, pooling: _Pooling, lowest: float) -> tuple[Array, Array]:
    """Each window's max and its flat index in the input plane (``h * W + w`` in 2-D), as torch's
    ``max_pool2d_with_indices`` picks it: over the window's elements inside the input in row
    order, an element is taken when it is greater than the max so far or NaN (so the first of
    equal maxima, the last NaN); a window of -inf keeps its first element inside the input.
    Indices in the library's default integer dtype (int64 but on jax without x64)."""
    xp = ops.xp
    x = pooling.x
    plane = x.shape[2:]
    x = ops.pad(x, ((0, 0), (0, 0), *pooling.pads), "constant", lowest)
    sizes = [(n - d * (k - 1) - 1) // s + 1
             for n, k, s, d in zip(x.shape[2:], pooling.window, pooling.strides, pooling.dilations)]
    device = ops.device_of(x)
    starts = [xp.arange(size, dtype=xp.asarray(0).dtype, device=device) * s - low
              for size, s, (low, _) in zip(sizes, pooling.strides, pooling.pads)]
    # the first element inside the input of each window (windows start in the padding)
    firsts = [xp.where(start < 0, start + ((d - 1 - start) // d) * d, start) for start, d in zip(starts, pooling.dilations)]
    # laid out over devices as the input's batch and channels (jax's explicit mesh axes)
    best = ops.placed_like(xp.full((*x.shape[:2], *sizes), lowest, dtype=x.dtype, device=device), x)
    index = ops.placed_like(xp.broadcast_to(_flat_index(xp, firsts, plane), best.shape), x)
    floating = xp.isdtype(x.dtype, "real floating")
    for offset in itertools.product(*(range(k) for k in pooling.window)):
        view = x[(slice(None), slice(None), *(slice(o * d, o * d + (n - 1) * s + 1, s) for o, d, s, n in
                                              zip(offset, pooling.dilations, pooling.strides, sizes)))]
        taken = (view > best) | xp.isnan(view) if floating else view > best
        best = xp.where(taken, view, best)
        positions = [start + o * d for start, o, d in zip(starts, offset, pooling.dilations)]
        index = xp.where(taken, _flat_index(xp, positions, plane), index)
    return best, index


def _flat_index(xp: Any, positions: list[Array], plane: tuple[int, ...]) -> Array:
    """The flat indices ``(p0 * n1 + p1) * n2 + p2 ...`` in a plane of sizes ``plane`` of the grid
    of ``positions`` (one 1-D array per axis)."""
    index: Any = 0
    for axis, (position, size) in enumerate(zip(positions, plane)):
        index = index * size + xp.reshape(position, (position.shape[0],) + (1,) * (len(plane) - 1 - axis))
    return index


def _divisor(function: str, divisor: Any) -> int:
    """An average pool's ``divisor_override`` as a Python int: any integer torch takes (a NumPy or
    0-d array integer too), not a bool or a float (torch's TypeError), and not 0 (its RuntimeError)."""
    value = None
    if not isinstance(divisor, bool):
        try:
            value = operator.index(divisor)
        except TypeError:
            pass
    if value is None or not value:
        raise _error(TypeError if value is None else RuntimeError, function,
                     f"divisor_override must be a non-zero int (as torch), got {divisor!r}")
    return value


def _avg_pool(function: str, rank: int, input: Array, kernel_size: Any, stride: Any, padding: Any, ceil_mode: bool,
              count_include_pad: bool, divisor_override: int | None) -> Array:
    """``avg_pool1d/2d/3d``: the library's fused pool where it agreed with the
    written-once windows on this machine, else those windows."""
    x, unbatched = _batched(input, rank, function)
    if divisor_override is not None:
        divisor_override = _divisor(function, divisor_override)
    pooling = _pooling(function, x, unbatched, kernel_size, stride, padding, 1, ceil_mode)
    floating = _floating_only(function, x, refused="bool")
    ops = adapter_of_array(x)
    y = _fused_pool(ops, "avg", pooling, count_include_pad, divisor_override) if floating else None
    if y is None:
        y = _averaged(function, ops, pooling, count_include_pad, divisor_override)
    return y[0, ...] if unbatched else y


def avg_pool1d(input: Array, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Array:
    """The mean of each window of ``(N, C, L)``: ``torch.nn.functional.avg_pool1d`` (divisors as
    ``avg_pool2d``'s)."""
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


def avg_pool2d(input: Array, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Array:
    """The mean of each window of ``(N, C, H, W)``: ``torch.nn.functional.avg_pool2d``.  The divisor
    is ``divisor_override``, else the window's size clipped to the padded input
    (``count_include_pad``), else the number of input elements in the window."""
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def avg_pool3d(input: Array, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Array:
    """The mean of each window of ``(N, C, D, H, W)``: ``torch.nn.functional.avg_pool3d`` (divisors
    as ``avg_pool2d``'s)."""
    return _avg_pool("avg_pool3d", 3, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def _averaged(function: str, ops: Any, pooling: _Pooling, count_include_pad: bool,
              divisor_override: int | None) -> Array:
    """An average pool of the batched input, written once: the windows' sums over their divisors."""
    xp, x = ops.xp, pooling.x
    dims, steps, pad_pairs, _ = pooling.windows
    divide = operator.truediv if xp.isdtype(x.dtype, "real floating") else _integer_average_of(xp, x.dtype, function)
    total = ops.reduce_window(x, 0.0, "sum", dims, steps, pad_pairs)
    if divisor_override is not None:
        return divide(total, divisor_override)
    if all(low == high == p for (low, high), p in zip(pooling.pads, pooling.paddings)) and (
            count_include_pad or not any(pooling.paddings)):
        return divide(total, math.prod(pooling.window))  # every window lies in the padded input: its full size
    # torch divides by the window clipped to the input padded by ``padding`` (not by
    # ceil_mode's extra), or with count_include_pad=False to the input itself.
    if count_include_pad:
        sizes = tuple(n + 2 * p for n, p in zip(x.shape[2:], pooling.paddings))
        count_pads = tuple((low - p, high - p) for (low, high), p in zip(pooling.pads, pooling.paddings))
    else:
        sizes, count_pads = tuple(x.shape[2:]), pooling.pads
    ones = xp.ones((1, 1, *sizes), dtype=x.dtype, device=ops.device_of(x))
    return divide(total, ops.reduce_window(ones, 0.0, "sum", dims, steps, ((0, 0), (0, 0), *count_pads)))


# -- adaptive pooling: windows that split each axis into the output's number of parts ----------

def _adaptive_output(function: str, rank: int, output_size: Any, sizes: tuple[int, ...]) -> tuple[int, ...]:
    """``output_size`` as ``rank`` sizes (an int for all; None keeps the input's size), at least 0."""
    values = (output_size,) * rank if output_size is None or isinstance(output_size, int) else tuple(output_size)
    if len(values) != rank or not all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in values):
        raise _error(ValueError, function, f"output_size must be an int, None or {rank} of them, got {output_size!r}")
    out = tuple(n if v is None else v for v, n in zip(values, sizes))
    if min(out) < 0:
        raise _error(RuntimeError, function, f"elements of output_size must be greater than or equal to 0 (as torch), "
                                             f"got {output_size!r}")
    return out


def _adaptive_pool(function: str, rank: int, kind: str, input: Array, output_size: Any,
                   return_indices: bool = False) -> Array | tuple[Array, Array]:
    """``adaptive_avg_pool1d/2d/3d`` and ``adaptive_max_pool1d/2d/3d``: output ``i`` of an axis of
    size n pools the input's [floor(i n / o), ceil((i + 1) n / o)) for o outputs (torch's
    windows).  An output of one window per axis is the mean or max over the spatial axes;
    where o divides n the windows are a pool's of window and stride n / o (the library's fused
    pool or the written-once windows); else each axis is pooled in turn over its
    parts, the last first (a window's sum is the sum of its rows' sums, its max the max of
    theirs, and its index the first maximum in row order, or the last NaN, as torch picks it).
    Integers are refused, as torch refuses them."""
    _floating_only(function, input)
    x, unbatched = _batched(input, rank, function)
    sizes = tuple(x.shape[2:])
    out = _adaptive_output(function, rank, output_size, sizes)
    ops = adapter_of_array(x)
    pool_kind = "max_indices" if return_indices else kind
    if 0 not in out and all(n % o == 0 for n, o in zip(sizes, out)):
        window = tuple(n // o for n, o in zip(sizes, out))
        if not return_indices and out == (1,) * rank:  # a global pool: the standard's reductions
            pooled = (ops.xp.mean if kind == "avg" else ops.xp.max)(x, axis=tuple(range(2, x.ndim)), keepdims=True)
        else:
            pooling = _pooling(function, x, unbatched, window, window, 0, 1, False)
            pooled = _fused_pool(ops, pool_kind, pooling)
            if pooled is None:
                pooled = (_averaged(function, ops, pooling, True, None) if kind == "avg"
                          else _max_pooled(ops, pool_kind, pooling))
    else:
        pooled = _pooled_by_axis(ops, x, out, pool_kind)
    if not unbatched:
        return pooled
    return (pooled[0][0, ...], pooled[1][0, ...]) if return_indices else pooled[0, ...]


def _pooled_by_axis(ops: Any, x: Array, out: tuple[int, ...], kind: str) -> Array | tuple[Array, Array]:
    """The adaptive ``kind`` pool ('avg', 'max' or 'max_indices') of the batched ``x``, written once,
    one spatial axis after another (``_adaptive_pool``)."""
    xp = ops.xp
    plane = tuple(x.shape[2:])
    if 0 in out:
        empty = xp.empty((*x.shape[:2], *out), dtype=x.dtype, device=ops.device_of(x))
        return (empty, xp.astype(empty, xp.asarray(0).dtype)) if kind == "max_indices" else empty
    index = None
    if kind == "max_indices":
        grid = [xp.arange(n, dtype=xp.asarray(0).dtype, device=ops.device_of(x)) for n in plane]
        index = ops.placed_like(xp.broadcast_to(_flat_index(xp, grid, plane), x.shape), x)
    floating = xp.isdtype(x.dtype, "real floating")
    count: Any = 1  # the avg pool's window sizes, divided by once at the end (as torch sums, then divides)
    for axis in reversed(range(2, x.ndim)):  # the last axis first: ties then go to the first row, as torch's
        n, o = plane[axis - 2], out[axis - 2]

        def at(a: Array, start: int, end: int) -> Array:
            return a[(slice(None),) * axis + (slice(start, end), ...)]

        parts, part_indices = [], []
        for i in range(o):
            start, end = i * n // o, -(-(i + 1) * n // o)
            if kind == "avg":
                parts.append(xp.sum(at(x, start, end), axis=axis, keepdims=True))
                continue
            best, where = at(x, start, start + 1), None if index is None else at(index, start, start + 1)
            for j in range(start + 1, end):
                view = at(x, j, j + 1)
                taken = (view > best) | xp.isnan(view) if floating else view > best
                best = xp.where(taken, view, best)
                if where is not None:
                    where = xp.where(taken, at(index, j, j + 1), where)
            parts.append(best)
            part_indices.append(where)
        x = xp.concat(parts, axis=axis)
        if index is not None:
            index = xp.concat(part_indices, axis=axis)
        if kind == "avg":
            lengths = [-(-(i + 1) * n // o) - i * n // o for i in range(o)]
            count = count * np.reshape(lengths, (o,) + (1,) * (len(plane) + 1 - axis))
    if kind == "avg":
        return x / xp.asarray(count, dtype=x.dtype, device=ops.device_of(x))
    return (x, index) if kind == "max_indices" else x


def _unpooled_sizes(function: str, rank: int, sizes: tuple[int, ...], kernel_size: Any, stride: Any, padding: Any,
                    output_size: Any) -> tuple[int, ...]:
    """The unpooled plane: (L - 1) stride + kernel - 2 padding per dim, or ``output_size`` (its
    last ``rank`` entries) where within a stride of that, as torch's ``_unpool_output_size``."""
    kernel = _tuple(kernel_size, rank, function, "kernel_size")
    strides = kernel if stride is None else _tuple(stride, rank, function, "stride")
    pads = _tuple(padding, rank, function, "padding")
    default = tuple((size - 1) * s + k - 2 * p for size, k, s, p in zip(sizes, kernel, strides, pads))
    if output_size is None:
        wanted = default
    else:
        wanted = tuple(output_size)[-rank:] if len(output_size) == rank + 2 else tuple(output_size)
        if len(wanted) != rank:
            raise _error(ValueError, function, f"output_size should be a sequence of {rank} or {rank + 2} sizes, got "
                                               f"{output_size!r}")
        for d, (size, s) in enumerate(zip(default, strides)):
            if not size - s < wanted[d] < size + s:
                raise _error(ValueError, function, f"invalid output_size {output_size!r} (dim {d} must be between "
                                                   f"{size - s} and {size + s}, exclusive, as torch)")
    if min(wanted, default=0) < 0:
        raise _error(ValueError, function, f"the unpooled sizes {wanted} are negative")
    return wanted


def _max_unpool(function: str, rank: int, input: Array, indices: Array, kernel_size: Any, stride: Any, padding: Any,
                output_size: Any) -> Array:
    """``max_unpool1d/2d/3d``: a zero plane of the unpooled size per channel with each input
    value at its flat ``indices`` position (``max_pool``'s ``return_indices``).  Written once
    without a scatter: the planes' positions are looked up among the sorted indices, so the
    result is differentiable in ``input`` on every library.  A repeated index (overlapping
    windows that share a max) takes one of its values, as torch's kernel, and passes the
    gradient to that one, where torch's backward passes it to every repeat."""
    ops = _adapter(function, ("input", "indices"), input, indices)
    _floating_only(function, input)
    xp = ops.xp
    if not xp.isdtype(indices.dtype, "integral"):
        raise _error(TypeError, function, f"indices must be integers (max_pool's return_indices), got dtype "
                                          f"{indices.dtype}")
    if tuple(indices.shape) != tuple(input.shape):
        raise _error(ValueError, function, f"expected indices of the input's shape {tuple(input.shape)}, got "
                                           f"{tuple(indices.shape)} (as torch)")
    x, unbatched = _batched(input, rank, function)
    sizes = _unpooled_sizes(function, rank, tuple(x.shape[2:]), kernel_size, stride, padding, output_size)
    plane = math.prod(sizes)
    if indices.size and ops.values_at_hand(indices) and bool(xp.any((indices < 0) | (indices >= plane))):
        shown = sorted({int(i) for i in xp.reshape(indices[(indices < 0) | (indices >= plane)], (-1,))[:3]})
        raise _error(IndexError, function, f"found invalid max indices {shown} (output planes are of size "
                                           f"{'x'.join(map(str, sizes))}, as torch)")
    batch, channels = x.shape[:2]
    planes = batch * channels
    if not x.size:
        return xp.zeros((*input.shape[:input.ndim - rank], *sizes), dtype=x.dtype, device=ops.device_of(x))
    device = ops.device_of(indices)
    ids = xp.reshape(indices, (planes, -1))
    ids = xp.reshape(ids + xp.arange(planes, dtype=ids.dtype, device=device)[:, None] * plane, (-1,))
    order = xp.argsort(ids)
    ordered = xp.take(ids, order)
    positions = xp.arange(planes * plane, dtype=ids.dtype, device=device)
    found = xp.clip(xp.searchsorted(ordered, positions), 0, ordered.shape[0] - 1)
    named = xp.take(ordered, found) == positions
    values = xp.take(xp.reshape(x, (-1,)), xp.take(order, found))
    y = xp.reshape(xp.where(named, values, xp.zeros_like(values)), (batch, channels, *sizes))
    return y[0, ...] if unbatched else y


def max_unpool1d(input: Array, indices: Array, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 output_size: Any = None) -> Array:
    """The inverse of ``max_pool1d``: each value at its index of a zero ``(N, C, L_out)``:
    ``torch.nn.functional.max_unpool1d``."""
    return _max_unpool("max_unpool1d", 1, input, indices, kernel_size, stride, padding, output_size)


def max_unpool2d(input: Array, indices: Array, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 output_size: Any = None) -> Array:
    """The inverse of ``max_pool2d``: each value at its flat index of a zero ``(N, C, H_out, W_out)``:
    ``torch.nn.functional.max_unpool2d``."""
    return _max_unpool("max_unpool2d", 2, input, indices, kernel_size, stride, padding, output_size)


def max_unpool3d(input: Array, indices: Array, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 output_size: Any = None) -> Array:
    """The inverse of ``max_pool3d``: each value at its flat index of a zero ``(N, C, D, H, W)``:
    ``torch.nn.functional.max_unpool3d``."""
    return _max_unpool("max_unpool3d", 3, input, indices, kernel_size, stride, padding, output_size)


def _fractional_starts(ops: Any, samples: Array, size: int, out: int, window: int, index: Any) -> Array:
    """Torch's pseudo-random window starts along one axis, from each plane's sample u in [0, 1):
    int((i + u) a) - int(u a) with a = (size - window) / (out - 1), in the samples' dtype as
    torch's kernel, and size - window for the last window; ``(..., out)`` of dtype ``index``."""
    xp = ops.xp
    device = ops.device_of(samples)
    last = xp.full((*samples.shape, 1), size - window, dtype=index, device=device)
    if out == 1:
        return last
    alpha = xp.asarray(size - window, dtype=samples.dtype, device=device) / (out - 1)
    u = samples[..., None]
    steps = xp.astype(xp.arange(out - 1, device=device), samples.dtype)
    starts = xp.astype((steps + u) * alpha, index) - xp.astype(u * alpha, index)  # casts cut toward zero, as C's
    return xp.concat([starts, last], axis=-1)


def _fractional_max_pool(function: str, rank: int, input: Array, kernel_size: Any, output_size: Any,
                         output_ratio: Any, return_indices: bool, samples: Array | None) -> Any:
    """``fractional_max_pool2d/3d``: the max over windows of ``kernel_size`` whose starts torch's
    formula draws from one sample per plane and axis (``_random_samples`` ``(N, C, rank)``, the
    last spatial axis's first, or drawn here from the generator); with ``return_indices`` the flat
    index of each max in its plane (a NaN wins, the last one, as torch's kernel)."""
    x, unbatched = _batched(input, rank, function)
    ops = _adapter(function, ("input", "_random_samples"), x, samples)
    _floating_only(function, x)
    xp = ops.xp
    window = _tuple(kernel_size, rank, function, "kernel_size")
    sizes = tuple(x.shape[2:])
    if output_size is None and output_ratio is None:
        raise _error(ValueError, function, "requires specifying either an output_size or an output_ratio (as torch)")
    if output_size is None:
        ratios = (output_ratio,) * rank if isinstance(output_ratio, (int, float)) else tuple(output_ratio)
        if len(ratios) != rank or not all(0 < r < 1 for r in ratios):
            raise _error(ValueError, function, f"output_ratio must be {rank} numbers between 0 and 1, got "
                                               f"{output_ratio!r}")
        out = tuple(int(size * r) for size, r in zip(sizes, ratios))
    else:
        out = _tuple(output_size, rank, function, "output_size")
    for axis, (size, o, k) in enumerate(zip(sizes, out, window)):
        if o + k - 1 > size:
            raise _error(ValueError, function, f"pool size {k} too large relative to input size {size} along "
                                               f"spatial axis {axis} for {o} outputs (as torch)")
    batch, channels = x.shape[:2]
    if samples is None:
        samples = xpnn.random.uniform(next_key(x), (batch, channels, rank), x.dtype)
        samples = ops.placed_like(xp.asarray(samples, device=ops.device_of(x)), x)
    elif tuple(samples.shape) != (batch, channels, rank):
        raise _error(ValueError, function, f"_random_samples must have shape {(batch, channels, rank)} (batch, "
                                           f"channels, spatial axes), got {tuple(samples.shape)}")
    index = ops.default_int(ops.device_of(x))
    # torch's samples: the last spatial axis's first (W, then H; in 3-d T, H, W)
    order = (1, 0) if rank == 2 else tuple(range(rank))
    flat: Any = 0
    for axis in range(rank):
        starts = _fractional_starts(ops, samples[..., order[axis]], sizes[axis], out[axis], window[axis], index)
        positions = starts[..., None] + xp.arange(window[axis], dtype=index, device=ops.device_of(x))
        # (N, C, out, window) laid along this axis of (N, C, *out, *window)
        shape = (batch, channels) + tuple(out[a] if a == axis else 1 for a in range(rank)) + tuple(
            window[a] if a == axis else 1 for a in range(rank))
        flat = flat * sizes[axis] + xp.reshape(positions, shape)
    plane = math.prod(sizes)
    planes = xp.reshape(xp.arange(batch * channels, dtype=index, device=ops.device_of(x)) * plane,
                        (batch, channels) + (1,) * (2 * rank))
    values = xp.take(xp.reshape(x, (-1,)), xp.reshape(flat + planes, (-1,)))
    values = xp.reshape(values, (batch, channels, *out, math.prod(window)))
    flat = xp.reshape(xp.broadcast_to(flat, (batch, channels, *out, *window)), values.shape)
    nan = xp.isnan(values)
    largest = xp.max(xp.where(nan, -xp.inf, values), axis=-1, keepdims=True)
    last_nan = values.shape[-1] - 1 - xp.argmax(xp.astype(xp.flip(nan, axis=-1), xp.int8), axis=-1, keepdims=True)
    first_max = xp.argmax(xp.astype((values == largest) & ~nan, xp.int8), axis=-1, keepdims=True)
    has_nan = xp.any(nan, axis=-1, keepdims=True)
    picked = xp.where(has_nan, last_nan, first_max)
    pooled = xp.where(has_nan, xp.asarray(xp.nan, dtype=x.dtype), largest)[..., 0]
    if unbatched:
        pooled = pooled[0, ...]
    if not return_indices:
        return pooled
    slots = xp.arange(values.shape[-1], dtype=picked.dtype, device=ops.device_of(x))
    where = xp.sum(xp.where(slots == picked, flat, xp.zeros_like(flat)), axis=-1)
    return pooled, where[0, ...] if unbatched else where


def fractional_max_pool2d(input: Array, kernel_size: Any, output_size: Any = None, output_ratio: Any = None,
                          return_indices: bool = False, _random_samples: Array | None = None) -> Any:
    """The max over pseudo-randomly placed windows of ``(N, C, H, W)`` (Graham's fractional max
    pooling): ``torch.nn.functional.fractional_max_pool2d``; the same ``_random_samples`` give
    torch's values and indices."""
    return _fractional_max_pool("fractional_max_pool2d", 2, input, kernel_size, output_size, output_ratio,
                                return_indices, _random_samples)


def fractional_max_pool3d(input: Array, kernel_size: Any, output_size: Any = None, output_ratio: Any = None,
                          return_indices: bool = False, _random_samples: Array | None = None) -> Any:
    """The max over pseudo-randomly placed windows of ``(N, C, T, H, W)``:
    ``torch.nn.functional.fractional_max_pool3d``."""
    return _fractional_max_pool("fractional_max_pool3d", 3, input, kernel_size, output_size, output_ratio,
                                return_indices, _random_samples)


def _lp_pool(function: str, rank: int, input: Array, norm_type: float, kernel_size: Any, stride: Any,
             ceil_mode: bool) -> Array:
    """``lp_pool1d/2d/3d``: (K avg_pool(x^p))^(1/p) over windows of K elements, torch's formula
    (so a window that ``ceil_mode`` cuts short sums K times its mean); the max of |x| for p = inf,
    the min for -inf.  A window of zeros gives 0 with gradient 0, as torch's."""
    _floating_only(function, input)
    if norm_type in (math.inf, -math.inf):
        magnitude = adapter_of(input).xp.abs(input)
        sign = 1 if norm_type > 0 else -1
        return sign * _max_pool(function, rank, sign * magnitude, kernel_size, stride, 0, 1, ceil_mode, False)
    window = math.prod(_tuple(kernel_size, rank, function, "kernel_size"))
    mean = _avg_pool(function, rank, input ** norm_type, kernel_size, stride, 0, ceil_mode, True, None)
    xp = adapter_of(mean).xp
    total = mean * window
    zero = total == 0
    return xp.where(zero, 0.0, xp.where(zero, 1.0, total) ** (1.0 / norm_type))


def lp_pool1d(input: Array, norm_type: float, kernel_size: Any, stride: Any = None, ceil_mode: bool = False) -> Array:
    """(sum of x^p over each window of ``(N, C, L)``)^(1/p): ``torch.nn.functional.lp_pool1d``."""
    return _lp_pool("lp_pool1d", 1, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(input: Array, norm_type: float, kernel_size: Any, stride: Any = None, ceil_mode: bool = False) -> Array:
    """(sum of x^p over each window of ``(N, C, H, W)``)^(1/p): ``torch.nn.functional.lp_pool2d``."""
    return _lp_pool("lp_pool2d", 2, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d(input: Array, norm_type: float, kernel_size: Any, stride: Any = None, ceil_mode: bool = False) -> Array:
    """(sum of x^p over each window of ``(N, C, D, H, W)``)^(1/p):
    ``torch.nn.functional.lp_pool3d``."""
    return _lp_pool("lp_pool3d", 3, input, norm_type, kernel_size, stride, ceil_mode)


def adaptive_avg_pool1d(input: Array, output_size: Any) -> Array:
    """The mean of each of ``output_size`` windows that split L of ``(N, C, L)``:
    ``torch.nn.functional.adaptive_avg_pool1d`` (``_adaptive_pool``)."""
    return _adaptive_pool("adaptive_avg_pool1d", 1, "avg", input, output_size)


def adaptive_avg_pool2d(input: Array, output_size: Any) -> Array:
    """The mean of each window of an ``output_size`` grid over ``(N, C, H, W)`` (None keeps a
    size): ``torch.nn.functional.adaptive_avg_pool2d`` (``_adaptive_pool``)."""
    return _adaptive_pool("adaptive_avg_pool2d", 2, "avg", input, output_size)


def adaptive_avg_pool3d(input: Array, output_size: Any) -> Array:
    """The mean of each window of an ``output_size`` grid over ``(N, C, D, H, W)``:
    ``torch.nn.functional.adaptive_avg_pool3d`` (``_adaptive_pool``)."""
    return _adaptive_pool("adaptive_avg_pool3d", 3, "avg", input, output_size)


def adaptive_max_pool1d(input: Array, output_size: Any, return_indices: bool = False) -> Array | tuple[Array, Array]:
    """The max of each of ``output_size`` windows that split L of ``(N, C, L)``, and with
    ``return_indices`` its index: ``torch.nn.functional.adaptive_max_pool1d`` (``_adaptive_pool``)."""
    return _adaptive_pool("adaptive_max_pool1d", 1, "max", input, output_size, return_indices)


def adaptive_max_pool2d(input: Array, output_size: Any, return_indices: bool = False) -> Array | tuple[Array, Array]:
    """The max of each window of an ``output_size`` grid over ``(N, C, H, W)``, and with
    ``return_indices`` its flat index ``h * W + w``: ``torch.nn.functional.adaptive_max_pool2d``
    (``_adaptive_pool``)."""
    return _adaptive_pool("adaptive_max_pool2d", 2, "max", input, output_size, return_indices)


def adaptive_max_pool3d(input: Array, output_size: Any, return_indices: bool = False) -> Array | tuple[Array, Array]:
    """The max of each window of an ``output_size`` grid over ``(N, C, D, H, W)``, and with
    ``return_indices`` its flat index: ``torch.nn.functional.adaptive_max_pool3d`` (``_adaptive_pool``)."""
    return _adaptive_pool("adaptive_max_pool3d", 3, "max", input, output_size, return_indices)


def _with_indices_version(function: Any) -> Any:
    """torch's ``*_with_indices`` twin of a max pool: its values and indices, whatever
    ``return_indices`` says."""
    signature = inspect.signature(function)

    def with_indices(*args: Any, **kwargs: Any) -> tuple[Array, Array]:
        bound = signature.bind(*args, **kwargs)
        bound.arguments["return_indices"] = True
        return function(*bound.args, **bound.kwargs)

    return _named(with_indices, f"{function.__name__}_with_indices",
                  f"``{function.__name__}`` with ``return_indices=True``", signature)


max_pool1d_with_indices = _with_indices_version(max_pool1d)
max_pool2d_with_indices = _with_indices_version(max_pool2d)
max_pool3d_with_indices = _with_indices_version(max_pool3d)
adaptive_max_pool1d_with_indices = _with_indices_version(adaptive_max_pool1d)
adaptive_max_pool2d_with_indices = _with_indices_version(adaptive_max_pool2d)
adaptive_max_pool3d_with_indices = _with_indices_version(adaptive_max_pool3d)
fractional_max_pool2d_with_indices = _with_indices_version(fractional_max_pool2d)
fractional_max_pool3d_with_indices = _with_indices_version(fractional_max_pool3d)


#: The kernel check's names of the fused pools, by kind and rank (``_fused_pool_disagreement``).
_FUSED_POOL_KERNELS = {(kind, rank): f"fused_pool({kind!r}, {rank}-d)"
                       for kind in ("max", "max_indices", "avg") for rank in (1, 2, 3)}


def _fused_pool(ops: Any, kind: str, pooling: _Pooling, count_include_pad: bool = True,
                divisor_override: int | None = None) -> Any:
    """The library's fused ``kind`` pool (``ops.fused_pool``) of the batched floating input where
    fast paths are on and the kernel of this rank agreed with the written-once windows on this
    machine; else None."""
    if not fast_paths_enabled() or not layer_kernel_agrees(_FUSED_POOL_KERNELS[kind, len(pooling.window)], ops,
                                                           pooling.x):
        return None
    return ops.fused_pool(kind, pooling.x, pooling.window, pooling.strides, pooling.paddings, pooling.dilations,
                          pooling.ceil_mode, count_include_pad, divisor_override)


#: The probe's pools: (kernel_size, stride, padding, dilation, ceil_mode, count_include_pad,
#: divisor_override), pairs taken in turn over the axes; ceil mode's extra window, symmetric
#: and asymmetric windows, dilation.
_POOL_PROBES = ((3, 2, 1, 1, True, False, None), ((2, 3), (1, 2), (0, 1), (2, 1), False, True, None),
                (2, 2, 0, 1, True, True, 3))
#: The probe's sizes per rank: 63 values per plane.
_POOL_PROBE_PLANES = {1: (63,), 2: (7, 9), 3: (7, 3, 3)}


def _ranked(value: int | tuple[int, ...], rank: int) -> int | tuple[int, ...]:
    """A probe's window argument for ``rank`` axes: an int as it is, a tuple's values in turn."""
    return value if isinstance(value, int) else tuple(value[axis % len(value)] for axis in range(rank))


def _fused_pool_disagreement(ops: Any, dtype: Any, device: Any, kind: str, rank: int) -> str | None:
    """Why the library's fused ``kind`` pool of ``rank`` spatial axes and the written-once windows
    differ on a fixed probe ((2, 3) planes of 63 values of the floating ``dtype`` with ties, and
    for the max pools NaN and infinities); None if they agree.  Maxima and indices must be
    equal; means within 16 eps (sums in another order)."""
    xp = ops.xp
    host = np.round(np.random.default_rng(0).standard_normal((2, 3, 7, 9)) * 2) / 2
    if kind != "avg":
        host[0, 0, 1, 1], host[0, 1, 0, 4], host[1, 2, 3, 3:5], host[1, 0, :3, :4] = np.nan, np.inf, np.nan, -np.inf
    x = xp.astype(ops.from_host(host.reshape(2, 3, *_POOL_PROBE_PLANES[rank]), device), dtype)
    tolerance = 16 * float(xp.finfo(dtype).eps)
    function = f"{'avg' if kind == 'avg' else 'max'}_pool{rank}d"
    for probe in _POOL_PROBES:
        kernel_size, stride, padding, dilation = (_ranked(value, rank) for value in probe[:4])
        ceil_mode, count_include_pad, divisor = probe[4:]
        if kind == "avg" and dilation != 1:
            continue
        pooling = _pooling(function, x, False, kernel_size, stride, padding, dilation, ceil_mode)
        fused = ops.fused_pool(kind, x, pooling.window, pooling.strides, pooling.paddings, pooling.dilations,
                               ceil_mode, count_include_pad, divisor)
        if fused is None:
            continue
        written = (_averaged(function, ops, pooling, count_include_pad, divisor) if kind == "avg"
                   else _max_pooled(ops, kind, pooling))
        geometry = (kernel_size, stride, padding, dilation, ceil_mode)
        reason = outputs_disagreement(ops, *((a,) if kind != "max_indices" else a for a in (fused, written)),
                                      tolerance, f"the fused {kind} pool {geometry}", "the written-once windows",
                                      equal_nan=True)
        if reason is not None:
            return reason
    return None


for (_kind, _rank), _name in _FUSED_POOL_KERNELS.items():
    LAYER_KERNELS[_name] = functools.partial(_fused_pool_disagreement, kind=_kind, rank=_rank)


def _integer_average_of(xp: Any, dtype: Any, function: str) -> Any:
    """torch's average of int64 windows: the sum divided by the (positive) count, cut toward
    zero; other integer dtypes are refused, as torch refuses them."""
    if dtype != xp.int64:
        raise _error(UnsupportedDtypeError, function, f"input must be floating or int64 (as torch's "
                                                      f"{function} requires), got dtype {dtype}")

    def cut_toward_zero(total: Array, count: Array | int) -> Array:
        quotient = total // count
        return xp.where((total < 0) & (quotient * count != total), quotient + 1, quotient)

    return cut_toward_zero


# -- padding -----------------------------------------------------------------------------------

#: torch's padding modes by the ``pad`` primitive's (numpy.pad's) names.
_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad(input: Array, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> Array:
    """``input`` padded by ``pad`` = (low, high) pairs from the last dim backwards:
    ``torch.nn.functional.pad``.  ``mode`` 'constant' fills with ``value`` (0; cast to the
    input's dtype, as torch) and crops where a side is negative; 'reflect' mirrors without
    repeating the edge (each side below the dim's size), 'replicate' repeats the edge and
    'circular' wraps around (each side at most the size), these three over the last 1 to 3 dims
    of an input with one or two dims before them (a negative side crops first).  The adapter's
    ``pad``."""
    function = "pad"
    ops = _adapter(function, ("input",), input)
    sides = tuple(pad)
    if len(sides) % 2 or not all(isinstance(side, int) and not isinstance(side, bool) for side in sides):
        raise _error(ValueError, function, f"pad must be an even number of ints, got {pad!r}")
    count = len(sides) // 2
    if count > input.ndim:
        raise _error(ValueError, function, f"pad of {len(sides)} sides is more than two per dim of the "
                                           f"{input.ndim}-d input")
    if mode not in _PAD_MODES:
        raise _error(ValueError, function, f"mode must be one of {sorted(_PAD_MODES)}, got {mode!r}")
    pads = [(0, 0)] * (input.ndim - count) + [(sides[2 * k], sides[2 * k + 1]) for k in reversed(range(count))]
    if any(n + min(low, 0) + min(high, 0) < 0 for n, (low, high) in zip(input.shape, pads)):
        raise _error(RuntimeError, function, f"pad {sides} crops more than the input's shape {tuple(input.shape)}")
    xp = ops.xp
    if mode == "constant":
        fill: Any = 0 if value is None else value
        if xp.isdtype(input.dtype, "bool"):
            fill = bool(fill)
        elif xp.isdtype(input.dtype, "integral"):
            fill = int(fill)  # toward zero, as torch casts it
        return ops.pad(input, pads, "constant", fill)
    if value is not None and value != 0:
        raise _error(ValueError, function, f"padding mode {mode!r} doesn't take in value argument (as torch), "
                                           f"got value={value!r}")
    if count > 3 or input.ndim not in (count + 1, count + 2):
        raise _error(ValueError, function, f"mode {mode!r} pads the last 1 to 3 dims of an input with one or two "
                                           f"dims before them (as torch); got {len(sides)} sides for a "
                                           f"{input.ndim}-d input")
    x = ops.pad(input, [(min(low, 0), min(high, 0)) for low, high in pads], "constant")
    grown = [(max(low, 0), max(high, 0)) for low, high in pads]
    for n, (low, high) in zip(x.shape, grown):
        if (low or high) and (n == 0 or max(low, high) > (n - 1 if mode == "reflect" else n)):
            raise _error(ValueError, function, f"{mode} padding of ({low}, {high}) needs more than {n} elements "
                                               "along the dim (as torch)")
    return ops.pad(x, grown, _PAD_MODES[mode])


# -- resizing ----------------------------------------------------------------------------------

#: interpolate's modes that copy an input element (the rest weigh several, but 'area', a pool).
_NEAREST_MODES = ("nearest", "nearest-exact")
#: interpolate's modes: the number of spatial dims each takes (None: 1 to 3).
_INTERPOLATIONS = {"nearest": None, "nearest-exact": None, "area": None, "linear": 1, "bilinear": 2,
                   "trilinear": 3, "bicubic": 2, "lanczos": 2}


def _cubic(xp: Any, t: Array, a: float = -0.75) -> Array:
    """Keys' cubic convolution kernel of parameter ``a`` (torch: -0.75, -0.5 when antialiased)
    at distances ``t``, in namespace ``xp`` (NumPy for the tap tables made on the host)."""
    t = xp.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return xp.where(t <= 1, near, xp.where(t < 2, far, 0.0))


#: The antialiasing filters by mode, and the half width of each (in input steps when upsampling).
_FILTERS: dict[str, tuple[Any, float]] = {
    "bilinear": (lambda t: np.maximum(1 - np.abs(t), 0.0), 1.0),
    "bicubic": (functools.partial(_cubic, np, a=-0.5), 2.0),
    "lanczos": (lambda t: np.where(np.abs(t) < 3, np.sinc(t) * np.sinc(t / 3), 0.0), 3.0),
}


def _resampling_taps(mode: str, n: int, m: int, step: float, align_corners: bool,
                     antialias: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The ``(m, K)`` input indices and float64 weights each of ``m`` outputs of a dim of ``n``
    inputs sums, as torch's kernels pick them, and which of those taps are used (None: all; an
    antialiased window is cut at the edges)."""
    positions = np.arange(m, dtype=np.float64)[:, None]
    if align_corners:
        step = (n - 1) / (m - 1) if m > 1 else 0.0
    if antialias:  # torch's separable antialiased kernels: the filter stretched by the step when shrinking
        kernel, half_width = _FILTERS[mode]
        shrink = max(step, 1.0)
        center = step * (positions + 0.5)
        first = np.maximum(np.trunc(center - half_width * shrink + 0.5), 0)
        last = np.minimum(np.trunc(center + half_width * shrink + 0.5), n)
        width = int(np.max(last - first, initial=1))
        index = first + np.arange(width)
        used = index < last
        weight = np.where(used, kernel((index - center + 0.5) / shrink), 0.0)
        total = np.sum(weight, axis=1, keepdims=True)
        weight = weight / np.where(total != 0, total, 1.0)
        return np.minimum(index, n - 1).astype(np.int64), weight, None if used.all() else used
    source = positions * step if align_corners else (positions + 0.5) * step - 0.5
    if mode == "bicubic":
        low = np.floor(source)
        offsets = np.arange(-1, 3)
        index = np.clip(low + offsets, 0, n - 1).astype(np.int64)
        return index, _cubic(np, source - low - offsets), None
    source = np.maximum(source, 0.0)
    low = np.minimum(np.floor(source), n - 1)
    fraction = source - low
    index = np.concatenate([low, np.minimum(low + 1, n - 1)], axis=1).astype(np.int64)
    return index, np.concatenate([1 - fraction, fraction], axis=1), None


def _resized(function: str, sizes: tuple[int, ...], size: Any, scale_factor: Any, recompute_scale_factor: bool | None,
             least: int = 1) -> tuple[tuple[int, ...], tuple[float | None, ...]]:
    """The output sizes (at least ``least``), and the scale factors torch's kernels map output to
    input positions with (position i reads i / factor): ``scale_factor`` where it is given (and
    not recomputed), else None (the factor m / n)."""
    rank = len(sizes)
    if (size is None) == (scale_factor is None):
        raise _error(ValueError, function, "only one of size or scale_factor should be defined" if size is not None
                     else "either size or scale_factor should be defined")
    if size is not None:
        out = (size,) * rank if isinstance(size, int) else tuple(size)
        if len(out) != rank:
            raise _error(ValueError, function, f"size must be an int or {rank} ints for {rank} spatial dims, got "
                                               f"{size!r}")
        scales: tuple[float | None, ...] = (None,) * rank
    else:
        factors = (scale_factor,) * rank if isinstance(scale_factor, (int, float)) else tuple(scale_factor)
        if len(factors) != rank:
            raise _error(ValueError, function, f"scale_factor must be a number or {rank} numbers for {rank} spatial "
                                               f"dims, got {scale_factor!r}")
        out = tuple(math.floor(n * f) for n, f in zip(sizes, factors))
        scales = (None,) * rank if recompute_scale_factor else tuple(float(f) for f in factors)
    if min(out, default=1) < least or min(sizes, default=1) <= 0:
        raise _error(ValueError, function, f"input and output sizes should be at least 1 (0 for the output in "
                                           f"mode 'area'), got input {sizes} and output {out}")
    return out, scales


def interpolate(input: Array, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                align_corners: bool | None = None, recompute_scale_factor: bool | None = None,
                antialias: bool = False) -> Array:
    """``(N, C, *spatial)`` resized to ``size`` (or the sizes times ``scale_factor``), one spatial
    dim after another: ``torch.nn.functional.interpolate``.  Output i of a dim of n inputs and
    m outputs reads input position p = i s, s = n / m (1 / scale_factor where given):

    * 'nearest': input floor(p); 'nearest-exact': floor((i + 0.5) s);
    * 'linear', 'bilinear', 'trilinear': (1 - l) x[j] + l x[j + 1], j = floor(q), l = q - j,
      q = max((i + 0.5) s - 0.5, 0), or with ``align_corners`` s = (n - 1) / (m - 1) and q = i s;
    * 'bicubic' (4-d): sum over k = -1..2 of W(q - j - k) x[j + k] with Keys' cubic W of
      a = -0.75, q = (i + 0.5) s - 0.5 (i s with ``align_corners``), indices clamped to the edge;
    * ``antialias`` ('bilinear', 'bicubic' or 'lanczos', 4-d): sum over j of f((j - c + 0.5) / r)
      x[j] normalized by the sum of the weights, c = (i + 0.5) s, r = max(s, 1), j within
      c -+ r w of the filter f of half width w: the triangle (w 1), Keys' cubic of a = -0.5
      (w 2), Lanczos sinc(t) sinc(t / 3) (w 3; 'lanczos' needs ``antialias``);
    * 'area': ``adaptive_avg_pool`` to the output sizes.

    Where the library has fused resizes (torch's), they run, checked at first use against these taps."""
    function = "interpolate"
    if mode not in _INTERPOLATIONS:
        raise _error(ValueError, function, f"mode must be one of {', '.join(map(repr, _INTERPOLATIONS))}, "
                                           f"got {mode!r}")
    rank = input.ndim - 2
    if antialias and (mode not in _FILTERS or rank != 2):
        raise _error(ValueError, function, "Anti-alias option is restricted to bilinear, bicubic, and lanczos modes "
                                           "and requires a 4-D tensor as input (as torch)")
    if mode == "lanczos" and not antialias:
        raise _error(ValueError, function, "Lanczos mode requires antialias=True (as torch)")
    weighted = mode not in (*_NEAREST_MODES, "area")
    if align_corners is not None and not weighted:
        raise _error(ValueError, function, "align_corners option can only be set with the interpolating modes: "
                                           "linear | bilinear | bicubic | trilinear (as torch)")
    if mode == "lanczos" and align_corners:
        raise _error(ValueError, function, "Lanczos mode does not support align_corners=True (as torch)")
    wanted = _INTERPOLATIONS[mode]
    if not 1 <= rank <= 3 or (wanted is not None and rank != wanted):
        needs = f"{wanted + 2}D" if wanted is not None else "3D, 4D or 5D"
        raise _error(ValueError, function, f"got {input.ndim}D input, but {mode} mode needs {needs} input")
    if weighted or mode == "area":  # torch's nearest modes take integers too
        _floating_only(function, input, refused="bool")
    out, factors = _resized(function, tuple(input.shape[2:]), size, scale_factor, recompute_scale_factor,
                            least=0 if mode == "area" else 1)
    if mode == "area":
        return _adaptive_pool(function, rank, "avg", input, out)
    ops = adapter_of(input)
    if fast_paths_enabled() and layer_kernel_agrees(_FUSED_RESAMPLE_KERNELS[mode, antialias], ops, input):
        fused = ops.fused_resample(input, mode, out, factors, bool(align_corners), antialias)
        if fused is not None:
            return fused
    return _resampled(ops, input, mode, out, factors, bool(align_corners), antialias)


def _resampled(ops: Any, input: Array, mode: str, out: tuple[int, ...], factors: tuple[float | None, ...],
               align_corners: bool, antialias: bool) -> Array:
    """``interpolate``'s written-once resize: one spatial dim after another, a gather of each
    output's taps (``_resampling_taps``) summed with their weights."""
    xp, x, device = ops.xp, input, ops.device_of(input)
    weighted = mode not in _NEAREST_MODES
    for axis, (n, m, factor) in enumerate(zip(input.shape[2:], out, factors), start=2):
        step = n / m if factor is None else 1.0 / factor
        if not weighted:
            shift = 0.5 if mode == "nearest-exact" else 0.0
            index = np.minimum(np.floor((np.arange(m, dtype=np.float64) + shift) * step), n - 1).astype(np.int64)
            x = xp.take(x, xp.asarray(index, device=device), axis=axis)
            continue
        index, weight, used = _resampling_taps(mode, n, m, step, align_corners, antialias)
        shape = (m,) + (1,) * (x.ndim - axis - 1)
        total = None
        for tap in range(index.shape[1]):
            term = xp.take(x, xp.asarray(index[:, tap], device=device), axis=axis) * xp.asarray(
                np.reshape(weight[:, tap], shape), dtype=x.dtype, device=device)
            if used is not None and not used[:, tap].all():  # a tap beyond the edge adds nothing, not 0 * inf
                term = xp.where(xp.asarray(np.reshape(used[:, tap], shape), device=device), term, 0.0)
            total = term if total is None else total + term
        x = total
    return x


#: The kernel check's names of the fused resizes, by mode and antialias (``_fused_resample_disagreement``).
_FUSED_RESAMPLE_KERNELS = {(mode, antialias): f"fused_resample({mode!r}{', antialias' if antialias else ''})"
                           for mode in _INTERPOLATIONS if mode != "area"
                           for antialias in ((True,) if mode == "lanczos" else (False, True) if mode in _FILTERS
                                             else (False,))}
#: The probe's resizes: (output sizes or None, scale factor or None, align_corners), up and down.
_RESAMPLE_PROBES = (((7, 4, 5), None, False), (None, 1.7, False), (None, 0.45, False), ((5, 2, 9), None, True))


def _fused_resample_disagreement(ops: Any, dtype: Any, device: Any, mode: str, antialias: bool) -> str | None:
    """Why the library's fused resize in ``mode`` and the written-once taps differ on a fixed
    probe ((2, 3) planes of 63 values of the floating ``dtype``, at every rank the mode takes,
    sizes and factors up and down, corners aligned or not); None if they agree (within 64 eps:
    weights rounded in another order)."""
    xp = ops.xp
    host = np.random.default_rng(0).standard_normal((2, 3, 63))
    tolerance = 64 * float(xp.finfo(dtype).eps)
    wanted = _INTERPOLATIONS[mode]
    for rank in (1, 2, 3) if wanted is None else (wanted,):
        x = xp.astype(ops.from_host(host.reshape(2, 3, *_POOL_PROBE_PLANES[rank]), device), dtype)
        for sizes, factor, align_corners in _RESAMPLE_PROBES:
            align_corners = align_corners and mode not in (*_NEAREST_MODES, "lanczos")
            out, factors = _resized("interpolate", tuple(x.shape[2:]), sizes[:rank] if sizes else None, factor, None)
            fused = ops.fused_resample(x, mode, out, factors, align_corners, antialias)
            if fused is None:
                continue
            reason = outputs_disagreement(ops, (fused,), (_resampled(ops, x, mode, out, factors, align_corners,
                                                                     antialias),),
                                          tolerance, f"the fused {mode} resize to {out}", "the written-once taps")
            if reason is not None:
                return reason
    return None


for (_mode, _antialias), _name in _FUSED_RESAMPLE_KERNELS.items():
    LAYER_KERNELS[_name] = functools.partial(_fused_resample_disagreement, mode=_mode, antialias=_antialias)


def upsample(input: Array, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
             align_corners: bool | None = None) -> Array:
    """``interpolate``, under torch's deprecated name (with its warning): ``torch.nn.functional.upsample``."""
    warnings.warn(_error(UserWarning, "upsample", "deprecated, use interpolate instead (as torch)"), stacklevel=2)
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input: Array, size: Any = None, scale_factor: Any = None) -> Array:
    """``interpolate`` in mode 'nearest' (deprecated, as torch warns): ``torch.nn.functional.upsample_nearest``."""
    warnings.warn(_error(UserWarning, "upsample_nearest", "deprecated, use interpolate instead (as torch)"),
                  stacklevel=2)
    return interpolate(input, size, scale_factor, "nearest")


def upsample_bilinear(input: Array, size: Any = None, scale_factor: Any = None) -> Array:
    """``interpolate`` in mode 'bilinear' with ``align_corners=True`` (deprecated, as torch warns):
    ``torch.nn.functional.upsample_bilinear``."""
    warnings.warn(_error(UserWarning, "upsample_bilinear", "deprecated, use interpolate instead (as torch)"),
                  stacklevel=2)
    return interpolate(input, size, scale_factor, "bilinear", align_corners=True)


def _grid_align_corners(function: str, align_corners: bool | None) -> bool:
    """``align_corners``, None being False with torch's warning that the default changed."""
    if align_corners is None:
        warnings.warn(_error(UserWarning, function, "default grid_sample and affine_grid behavior has changed to "
                                                    "align_corners=False since torch 1.3.0 (as torch warns)"),
                      stacklevel=3)
    return bool(align_corners)


def affine_grid(theta: Array, size: Sequence[int], align_corners: bool | None = None) -> Array:
    """The sampling grid ``(N, H, W, 2)`` (``(N, D, H, W, 3)``) of the affine maps ``theta``
    ``(N, 2, 3)`` (``(N, 3, 4)``) over an output of ``size`` ``(N, C, H, W)``
    (``(N, C, D, H, W)``): each output point's (x, y[, z], 1) times theta^T, the points evenly
    spaced in [-1, 1] (their centres, (n - 1) / n of that, without ``align_corners``; 0 for a
    size of 1): ``torch.nn.functional.affine_grid``."""
    function = "affine_grid"
    ops = _adapter(function, ("theta",), theta)
    align_corners = _grid_align_corners(function, align_corners)
    if not ops.xp.isdtype(theta.dtype, "real floating"):
        raise _error(ValueError, function, f"expected theta to have floating point type, got {theta.dtype}")
    size = tuple(size)
    if len(size) not in (4, 5):
        raise _error(ValueError, function, f"affine_grid only supports 4D and 5D sizes, for 2D and 3D affine "
                                           f"transforms, respectively (as torch), got size {size}")
    rank = len(size) - 2
    if theta.ndim != 3 or tuple(theta.shape[1:]) != (rank, rank + 1) or theta.shape[0] != size[0]:
        raise _error(ValueError, function, f"expected a batch of {rank}D affine matrices of shape "
                                           f"({size[0]}, {rank}, {rank + 1}) for size {size}, got "
                                           f"{tuple(theta.shape)}")
    if min(size) <= 0:
        raise _error(ValueError, function, f"expected non-zero, positive output size, got {size}")
    xp, device = ops.xp, ops.device_of(theta)
    spans = []
    for n in reversed(size[2:]):  # x runs along the last dim
        span = np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)
        spans.append(span if align_corners else span * (n - 1) / n)
    along_dims = np.meshgrid(*spans[::-1], indexing="ij")  # (z,) y, x, each of the output's spatial shape
    points = np.stack([*along_dims[::-1], np.ones(size[2:])], axis=-1)
    base = xp.asarray(np.reshape(points, (1, -1, rank + 1)), dtype=theta.dtype, device=device)
    grid = xp.matmul(base, xp.permute_dims(theta, (0, 2, 1)))
    return xp.reshape(grid, (size[0], *size[2:], rank))


_GRID_MODES = ("bilinear", "nearest", "bicubic")
_GRID_PADDINGS = ("zeros", "border", "reflection")


def _grid_padded(xp: Any, c: Array, n: int, padding_mode: str, align_corners: bool) -> Array:
    """torch's ``compute_coordinates``: source positions of a dim of ``n`` clipped into it
    ('border') or reflected off its edges (its end points with ``align_corners``, else half a
    step beyond them) and clipped ('reflection'); a position that is not finite becomes -100,
    outside."""
    if padding_mode == "reflection":
        low, span = (0.0, n - 1.0) if align_corners else (-0.5, float(n))
        if span <= 0:
            c = xp.zeros_like(c)
        else:
            distance = xp.where(c < low, low - c, c - low)
            extra = xp.remainder(distance, span)
            flips = xp.floor(distance / span)
            c = xp.where(xp.remainder(flips, 2.0) == 0, extra + low, span - extra + low)
    if padding_mode != "zeros":  # torch's clip: gradient 0 on the edges too
        c = xp.where(c <= 0, 0.0, xp.where(c >= n - 1, n - 1.0, c))
    return xp.where(xp.isfinite(c), c, -100.0)


def grid_sample(input: Array, grid: Array, mode: str = "bilinear", padding_mode: str = "zeros",
                align_corners: bool | None = None) -> Array:
    """``input`` ``(N, C, H, W)`` (``(N, C, D, H, W)``) sampled at the points of ``grid``
    ``(N, H', W', 2)`` (``(N, D', H', W', 3)``), given as (x, y[, z]) in [-1, 1] over the input's
    width, height (and depth): ``torch.nn.functional.grid_sample``.  A coordinate g of a dim of n
    is the position ((g + 1) / 2) (n - 1) with ``align_corners`` (the corner pixels' centres at
    -1 and 1), else ((g + 1) n - 1) / 2 (the corners' edges).  'bilinear' ('trilinear' in 3-D)
    weighs the 2^d surrounding pixels by the opposite sub-volume, 'nearest' takes the nearest
    pixel (ties to even), 'bicubic' (4-D) runs Keys' cubic (a = -0.75) over the 4 x 4 around.
    ``padding_mode`` 'zeros' reads 0 outside, 'border' clips positions into the input,
    'reflection' reflects them off its edges (bicubic: each tap's position).

    A NaN coordinate samples NaN, and so does an infinite one under 'reflection' (no position
    reflects to it); under 'zeros' an infinite one reads 0, under 'border' the edge.  (torch's
    kernels disagree among themselves there: its 2-D and 3-D CPU kernels and its CUDA kernel
    clip NaN to different edges.)  Where the library has a fused sampler (torch's), it runs at the
    finite points, checked at first use against these taps."""
    function = "grid_sample"
    ops = _adapter(function, ("input", "grid"), input, grid)
    if mode not in _GRID_MODES:
        raise _error(ValueError, function, f"mode must be one of {', '.join(map(repr, _GRID_MODES))}, got {mode!r}")
    if padding_mode not in _GRID_PADDINGS:
        raise _error(ValueError, function, f"padding_mode must be one of {', '.join(map(repr, _GRID_PADDINGS))}, "
                                           f"got {padding_mode!r}")
    align_corners = _grid_align_corners(function, align_corners)
    _floating_only(function, input)
    rank = input.ndim - 2
    if rank not in (2, 3) or grid.ndim != input.ndim or grid.shape[-1] != rank or grid.shape[0] != input.shape[0]:
        raise _error(ValueError, function, f"expected a 4-D or 5-D input and a grid (N, *out, {rank}) of its rank and "
                                           f"batch, got input shape {tuple(input.shape)} and grid shape "
                                           f"{tuple(grid.shape)}")
    if grid.dtype != input.dtype:
        raise _error(ValueError, function, f"expected input and grid to have the same dtype, got {input.dtype} and "
                                           f"{grid.dtype}")
    if mode == "bicubic" and rank != 2:
        raise _error(ValueError, function, "bicubic interpolation only supports 4D input (as torch)")
    xp = ops.xp
    # a grid read here and all finite needs no care for NaN and infinite coordinates
    finite = grid.size == 0 or (ops.values_at_hand(grid) and bool(xp.all(xp.isfinite(grid))))
    sampled = None
    if fast_paths_enabled() and layer_kernel_agrees(_FUSED_GRID_KERNELS[mode], ops, input):
        # the fused kernel at finite points only: an infinite coordinate (where it is defined) reads
        # what one far outside does
        points = grid if finite else xp.where(xp.isinf(grid), xp.clip(grid, -2.0 ** 60, 2.0 ** 60), grid)
        sampled = ops.fused_grid_sample(input, points, mode, padding_mode, align_corners)
    if sampled is None:
        sampled = _grid_sampled(ops, input, grid, mode, padding_mode, align_corners)
    if finite:
        return sampled
    undefined = xp.any(xp.isnan(grid) if padding_mode != "reflection" else ~xp.isfinite(grid), axis=-1)
    return xp.where(undefined[:, None, ...], xp.nan, sampled)


#: The kernel check's names of the fused grid samplers, by mode (``_fused_grid_disagreement``).
_FUSED_GRID_KERNELS = {mode: f"fused_grid_sample({mode!r})" for mode in _GRID_MODES}


def _fused_grid_disagreement(ops: Any, dtype: Any, device: Any, mode: str) -> str | None:
    """Why the library's fused ``grid_sample`` in ``mode`` and the written-once taps differ on a
    fixed probe (a (2, 3, 5, 6) input and, but for bicubic, a (2, 3, 3, 4, 5) one, sampled at
    points inside, outside, on and between pixels, every padding mode, corners aligned or not);
    None if they agree (within 64 eps)."""
    xp = ops.xp
    rng = np.random.default_rng(0)
    tolerance = 64 * float(xp.finfo(dtype).eps)
    for shape in ((2, 3, 5, 6), (2, 3, 3, 4, 5))[:1 if mode == "bicubic" else 2]:
        rank = len(shape) - 2
        points = rng.uniform(-1.3, 1.3, (2, 4, *(3,) * (rank - 1), rank))
        points[0, 0, 0] = [(2 * k + 1) / n - 1 for k, n in zip(range(rank), shape[:1:-1])]  # on and between pixels
        points[1, 0, 0] = 1.0
        x = xp.astype(ops.from_host(rng.standard_normal(shape), device), dtype)
        grid = xp.astype(ops.from_host(points, device), dtype)
        for padding_mode, align_corners in itertools.product(_GRID_PADDINGS, (False, True)):
            fused = ops.fused_grid_sample(x, grid, mode, padding_mode, align_corners)
            if fused is None:
                continue
            written = _grid_sampled(ops, x, grid, mode, padding_mode, align_corners)
            reason = outputs_disagreement(ops, (fused,), (written,), tolerance,
                                          f"the fused {mode} grid_sample ({padding_mode}, align_corners="
                                          f"{align_corners})", "the written-once taps")
            if reason is not None:
                return reason
    return None


for _mode, _name in _FUSED_GRID_KERNELS.items():
    LAYER_KERNELS[_name] = functools.partial(_fused_grid_disagreement, mode=_mode)


def _grid_sampled(ops: Any, input: Array, grid: Array, mode: str, padding_mode: str, align_corners: bool) -> Array:
    """``grid_sample``'s values where the grid's coordinates are defined."""
    xp, device, rank = ops.xp, ops.device_of(input), input.ndim - 2
    batch, channels, sizes = input.shape[0], input.shape[1], tuple(input.shape[2:])
    out = tuple(grid.shape[1:-1])
    points = math.prod(sizes)
    # the input's pixels as rows (N * H * W, C); a tap reads rows n * H * W + (z * H + y) * W + x
    table = xp.reshape(_channels_last(input, rank), (batch * points, channels))
    first_row = xp.reshape(xp.arange(batch, dtype=xp.int64, device=device) * points, (batch,) + (1,) * rank)
    strides = [math.prod(sizes[axis + 1:]) for axis in range(rank)]

    def tap(positions: list[Array]) -> Array:
        """The pixels at the integral ``positions`` (one per spatial dim), 0 outside: ``(N, *out, C)``."""
        inside, row = None, first_row
        for position, n in zip(positions, sizes):
            within = (position >= 0) & (position <= n - 1)
            inside = within if inside is None else inside & within
        for position, stride in zip(positions, strides):
            row = row + xp.astype(xp.where(inside, position, 0.0), xp.int64) * stride
        rows = ops.take_rows(table, xp.reshape(row, (-1,)))
        return xp.where(inside[..., None], xp.reshape(rows, (batch, *out, channels)), 0.0)

    def unnormalized(axis: int) -> Array:
        g, n = grid[..., rank - 1 - axis], sizes[axis]  # the grid lists x first
        return (g + 1) / 2 * (n - 1) if align_corners else ((g + 1) * n - 1) / 2

    if mode == "bicubic":
        sampled = None
        # an infinite position taps 4 pixels beyond the edge: 0 or (clipped) the edge, with finite weights
        y, x = (xp.where(c == math.inf, n + 3.0, xp.where(c == -math.inf, -4.0, c))
                for c, n in ((unnormalized(0), sizes[0]), (unnormalized(1), sizes[1])))
        y0, x0 = xp.floor(y), xp.floor(x)
        ty, tx = y - y0, x - x0
        weights_y = [_cubic(xp, ty + 1 - k) for k in range(4)]
        weights_x = [_cubic(xp, tx + 1 - k) for k in range(4)]
        for k, weight_y in enumerate(weights_y):
            yk = _grid_padded(xp, y0 - 1 + k, sizes[0], padding_mode, align_corners)
            row = sum(tap([yk, _grid_padded(xp, x0 - 1 + j, sizes[1], padding_mode, align_corners)])
                      * weight_x[..., None] for j, weight_x in enumerate(weights_x))
            sampled = row * weight_y[..., None] if sampled is None else sampled + row * weight_y[..., None]
        return _channels_first(sampled, rank)
    positions = [_grid_padded(xp, unnormalized(axis), sizes[axis], padding_mode, align_corners)
                 for axis in range(rank)]
    if mode == "nearest":
        return _channels_first(tap([xp.round(c) for c in positions]), rank)
    lows = [xp.floor(c) for c in positions]
    sampled = None
    for corner in itertools.product((0, 1), repeat=rank):  # torch's order: north-west first, x fastest
        weight = None
        for axis in reversed(range(rank)):  # x, then y (then z), as torch multiplies them
            c, low = positions[axis], lows[axis]
            factor = c - low if corner[axis] else low + 1 - c
            weight = factor if weight is None else weight * factor
        term = tap([low + bit for low, bit in zip(lows, corner)]) * weight[..., None]
        sampled = term if sampled is None else sampled + term
    return _channels_first(sampled, rank)


# -- normalization ---------------------------------------------------------------------------

def _normalized_shape(function: str, input: Array, normalized_shape: Any) -> tuple[int, ...]:
    """``normalized_shape`` as a tuple, which must end ``input``'s shape."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if input.shape[input.ndim - len(shape):] != shape:  # a torch.Size equals the tuple
        raise _error(ValueError, function, f"input's trailing shape must be normalized_shape {shape}, got input "
                                           f"shape {tuple(input.shape)}")
    return shape


def _norm(function: str, kind: str, x: Array, shape: tuple[int, ...], scale: Array | None, bias: Array | None,
          eps: float) -> Any:
    """The library's fused norm over the trailing ``shape`` where it has one that agrees with the
    written-once statistics on this machine, else ``reference_norm`` (the layers' math)."""
    ops = _adapter(function, ("input", "weight", "bias"), x, scale, bias)
    if not _fit(shape, scale, bias):
        raise _misfit(function, "input", x, shape, weight=scale, bias=bias)
    count = len(shape)
    fused = fused_norm(ops, kind, x, count, scale, bias, eps)
    return fused if fused is not None else reference_norm(ops, kind, x, count, scale, bias, eps)


def _channel_norm(function: str, kind: str, input: Array, count: int, scale: Array | None, bias: Array | None,
                  eps: float, statistics: tuple[Array, Array] | None = None) -> Any:
    """``_norm`` of a group or batch ``kind`` on the channels-first ``(N, C, *)`` input, its
    output channels-first: the library's fused norm takes torch's layout as it is; the
    written-once statistics run on the channels-last view."""
    running_mean, running_var = statistics if statistics is not None else (None, None)
    ops = _adapter(function, ("input", "running_mean", "running_var", "weight", "bias"), input, running_mean,
                   running_var, scale, bias)
    channels = (input.shape[1],)
    if not _fit(channels, running_mean, running_var, scale, bias):
        raise _misfit(function, "input", input, channels, running_mean=running_mean, running_var=running_var,
                      weight=scale, bias=bias)
    fused = fused_norm(ops, kind, input, count, scale, bias, eps, statistics, channels_first=True)
    if fused is not None:
        return fused
    rank = input.ndim - 2
    y = reference_norm(ops, kind, _channels_last(input, rank), count, scale, bias, eps, statistics)
    return (_channels_first(y[0], rank), *y[1:]) if kind == "batch" else _channels_first(y, rank)


def local_response_norm(input: Array, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> Array:
    """x / (k + alpha / size * sum of x^2 over the ``size`` channels around, c - size // 2 to
    c + (size - 1) // 2, zeros beyond the ends)^beta, channels dim 1 of ``(N, C, *)``:
    ``torch.nn.functional.local_response_norm``."""
    function = "local_response_norm"
    ops = _adapter(function, ("input",), input)
    _floating_only(function, input)
    if input.ndim < 3:
        raise _error(ValueError, function, f"expected 3D or higher dimensionality input (as torch), got shape "
                                           f"{tuple(input.shape)}")
    size = _factor(function, "size", size)
    total = _channel_window_sums(ops, input * input, size // 2, (size - 1) // 2)
    return input / (total * (alpha / size) + k) ** beta


def _channel_window_sums(ops: Any, x: Array, before: int, after: int) -> Array:
    """The sum over channels c - ``before`` to c + ``after`` (dim 1 of ``(N, C, *)``; zeros beyond
    the ends) at each channel c."""
    rest = x.ndim - 2
    return ops.reduce_window(x, 0.0, "sum", (1, before + after + 1) + (1,) * rest, (1,) * x.ndim,
                             ((0, 0), (before, after)) + ((0, 0),) * rest)


def _cross_map_lrn2d(input: Array, size: int, alpha: float, beta: float, k: float) -> Array:
    """torch's legacy ``CrossMapLRN2d`` of ``(N, C, H, W)``: x / (k + alpha / size * S_c)^beta,
    S_c the sum of x^2 over channels c - h to c + h, h = (size - 1) // 2, plus channel 0 once
    c > h (torch's running sum never takes channel 0 out of the window)."""
    function = "CrossMapLRN2d"
    ops = _adapter(function, ("input",), input)
    _floating_only(function, input)
    if input.ndim != 4:
        raise _error(ValueError, function, f"expected input to be 4D, got {input.ndim}D instead (as torch)")
    size = _factor(function, "size", size)
    xp, half = ops.xp, (size - 1) // 2
    squares = input * input
    total = _channel_window_sums(ops, squares, half, half)
    beyond = xp.arange(input.shape[1], device=ops.device_of(input))[:, None, None] > half
    total = total + xp.where(beyond, squares[:, :1, ...], 0.0)
    return input * (total * (alpha / size) + k) ** -beta


def layer_norm(input: Array, normalized_shape: Any, weight: Array | None = None, bias: Array | None = None,
               eps: float = 1e-5) -> Array:
    """(x - E[x]) / sqrt(Var[x] + eps) * weight + bias over the trailing ``normalized_shape``
    (biased variance): ``torch.nn.functional.layer_norm``."""
    _floating_only("layer_norm", input)
    shape = _normalized_shape("layer_norm", input, normalized_shape)
    return _norm("layer_norm", "layer", input, shape, weight, bias, eps)


def rms_norm(input: Array, normalized_shape: Any, weight: Array | None = None, eps: float | None = None) -> Array:
    """x / sqrt(E[x^2] + eps) * weight over the trailing ``normalized_shape``; ``eps=None`` is the
    dtype's machine epsilon: ``torch.nn.functional.rms_norm``."""
    _floating_only("rms_norm", input)
    shape = _normalized_shape("rms_norm", input, normalized_shape)
    if eps is None:
        eps = float(adapter_of(input).xp.finfo(input.dtype).eps)
    return _norm("rms_norm", "rms", input, shape, weight, None, eps)


def group_norm(input: Array, num_groups: int, weight: Array | None = None, bias: Array | None = None,
               eps: float = 1e-5) -> Array:
    """(x - E[x]) / sqrt(Var[x] + eps) per sample and per group of ``C / num_groups`` channels
    (dim 1), then weight and bias per channel: ``torch.nn.functional.group_norm``."""
    _floating_only("group_norm", input)
    if input.ndim < 2 or input.shape[1] % num_groups:
        raise _error(ValueError, "group_norm", f"input must be (N, C, *) with C divisible by num_groups="
                                               f"{num_groups}, got shape {tuple(input.shape)}")
    return _channel_norm("group_norm", "group", input, num_groups, weight, bias, eps)


def batch_norm(input: Array, running_mean: Array | None, running_var: Array | None, weight: Array | None = None,
               bias: Array | None = None, training: bool = False, momentum: float = 0.1,
               eps: float = 1e-5) -> Array:
    """(x - mean) / sqrt(var + eps) * weight + bias per channel (dim 1): the batch's statistics
    (biased variance) in training, the running ones otherwise: ``torch.nn.functional.batch_norm``.

    torch updates ``running_mean``/``running_var`` in place in training; arrays of every library
    are not mutable, so here use ``batch_norm_with_statistics``, which returns the updated ones
    (``xpnn.torch_nn.BatchNorm2d`` keeps them)."""
    return batch_norm_with_statistics(input, running_mean, running_var, weight, bias, training, momentum, eps)[0]


def batch_norm_with_statistics(input: Array, running_mean: Array | None, running_var: Array | None,
                               weight: Array | None = None, bias: Array | None = None, training: bool = False,
                               momentum: float | None = 0.1, eps: float = 1e-5,
                               num_batches_tracked: int = 0) -> tuple[Array, Array | None, Array | None]:
    """``batch_norm`` and the running statistics after it: in training (1 - momentum) running +
    momentum batch, the variance unbiased, n / (n - 1) (``momentum=None``: the cumulative
    average over ``num_batches_tracked`` batches, as torch)."""
    _floating_only("batch_norm", input)
    if input.ndim < 2:
        raise _error(ValueError, "batch_norm", f"input must be (N, C, *), got shape {tuple(input.shape)}")
    if not training:
        if running_mean is None or running_var is None:
            raise _error(ValueError, "batch_norm", "running_mean and running_var are needed outside training")
        y = _channel_norm("batch_norm", "running", input, 1, weight, bias, eps, (running_mean, running_var))
        return y, running_mean, running_var
    count = input.shape[0] * math.prod(input.shape[2:])  # values per channel
    if count <= 1:
        raise _error(ValueError, "batch_norm", f"expected more than 1 value per channel when training, got input "
                                               f"size {tuple(input.shape)}")
    y, mean, var = _channel_norm("batch_norm", "batch", input, 1, weight, bias, eps)
    if running_mean is not None and running_var is not None:
        factor = 1.0 / (num_batches_tracked + 1) if momentum is None else momentum
        unbiased = var * (count / (count - 1))
        xp = adapter_of(running_mean).xp  # the running statistics keep their dtype (16-bit ones too), as torch's
        running_mean = xp.astype((1 - factor) * running_mean + factor * mean, running_mean.dtype)
        running_var = xp.astype((1 - factor) * running_var + factor * unbiased, running_var.dtype)
    return y, running_mean, running_var


def instance_norm(input: Array, running_mean: Array | None = None, running_var: Array | None = None,
                  weight: Array | None = None, bias: Array | None = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Array:
    """(x - E[x]) / sqrt(Var[x] + eps) * weight + bias per sample and channel (dim 1) over the
    spatial dims (biased variance), or with ``use_input_stats=False`` with the running
    statistics: ``torch.nn.functional.instance_norm``.

    torch updates ``running_mean``/``running_var`` in place; arrays of every library are not
    mutable, so here use ``instance_norm_with_statistics``, which returns the updated ones
    (``xpnn.torch_nn.InstanceNorm2d`` keeps them)."""
    return instance_norm_with_statistics(input, running_mean, running_var, weight, bias, use_input_stats, momentum,
                                         eps)[0]


def instance_norm_with_statistics(input: Array, running_mean: Array | None = None, running_var: Array | None = None,
                                  weight: Array | None = None, bias: Array | None = None,
                                  use_input_stats: bool = True, momentum: float = 0.1,
                                  eps: float = 1e-5) -> tuple[Array, Array | None, Array | None]:
    """``instance_norm`` and the running statistics after it: the group norm of one channel per
    group, and, where tracked, torch's update (1 - momentum) running + momentum s of the samples'
    mean statistics s (each sample's variance unbiased, n / (n - 1) over its n positions)."""
    function = "instance_norm"
    _floating_only(function, input)
    ops = _adapter(function, ("input", "running_mean", "running_var", "weight", "bias"), input, running_mean,
                   running_var, weight, bias)
    if input.ndim < 2:
        raise _error(ValueError, function, f"input must be (N, C, *spatial), got shape {tuple(input.shape)}")
    channels = (input.shape[1],)
    if not _fit(channels, running_mean, running_var, weight, bias):
        raise _misfit(function, "input", input, channels, running_mean=running_mean, running_var=running_var,
                      weight=weight, bias=bias)
    if not use_input_stats:
        if running_mean is None or running_var is None:
            raise _error(RuntimeError, function, "expected running_mean and running_var to be defined when "
                                                 "use_input_stats is false (as torch)")
        y = _channel_norm(function, "running", input, 1, weight, bias, eps, (running_mean, running_var))
        return y, running_mean, running_var
    positions = math.prod(input.shape[2:])
    if positions <= 1:
        raise _error(ValueError, function, f"expected more than 1 spatial element when training, got input size "
                                           f"{tuple(input.shape)}")
    y = _channel_norm(function, "group", input, input.shape[1], weight, bias, eps)
    if running_mean is not None and running_var is not None:
        xp = ops.xp
        spatial = tuple(range(2, input.ndim))
        means = xp.mean(input, axis=spatial, keepdims=True)
        # the two-pass variance, as accurate as var's; torch's var over these axes costs 8x on CPU
        variances = xp.linalg.vector_norm(input - means, axis=spatial) ** 2 / (positions - 1)
        means = xp.reshape(means, variances.shape)
        dtype = running_mean.dtype
        running_mean = xp.astype((1 - momentum) * running_mean + momentum * xp.mean(means, axis=0), dtype)
        running_var = xp.astype((1 - momentum) * running_var + momentum * xp.mean(variances, axis=0), dtype)
    return y, running_mean, running_var


# -- losses ------------------------------------------------------------------------------------

_REDUCTIONS = ("none", "mean", "sum")


def _reduction(function: str, reduction: str, size_average: bool | None = None, reduce: bool | None = None,
               allowed: tuple[str, ...] = _REDUCTIONS) -> str:
    """``reduction``, or torch's legacy ``size_average``/``reduce`` where either is given (with
    torch's warning): ``reduce=False`` is 'none', else ``size_average=False`` 'sum', else 'mean'."""
    if size_average is not None or reduce is not None:
        reduction = "none" if reduce is False else "sum" if size_average is False else "mean"
        warnings.warn(_error(UserWarning, function, f"size_average and reduce args will be deprecated, please use "
                                                    f"reduction='{reduction}' instead (as torch)"), stacklevel=3)
    if reduction not in allowed:
        raise _error(ValueError, function, f"{reduction!r} is not a valid value for reduction; expected one of "
                                           f"{', '.join(map(repr, allowed))}")
    return reduction


def _reduced(xp: Any, loss: Array, reduction: str) -> Array:
    return loss if reduction == "none" else xp.mean(loss) if reduction == "mean" else xp.sum(loss)


def _pointwise_operands(function: str, input: Array, target: Array,
                        same_size: bool = False) -> tuple[Any, Array, Array]:
    """A pointwise loss's adapter and its floating ``input`` and ``target`` broadcast together
    (torch's warning where their shapes differ; its ValueError with ``same_size``)."""
    ops = _adapter(function, ("input", "target"), input, target)
    _floating_only(function, input)
    xp = ops.xp
    if tuple(input.shape) != tuple(target.shape):
        message = (f"using a target size {tuple(target.shape)} that is different to the input size "
                   f"{tuple(input.shape)}")
        if same_size:
            raise _error(ValueError, function, f"{message} is not supported; please ensure they have the same size "
                                               "(as torch)")
        warnings.warn(f"xpnn.torch_nn.functional.{function}: {message}: this will likely lead to incorrect results "
                      "due to broadcasting (as torch warns)", UserWarning, stacklevel=3)
        input, target = xp.broadcast_arrays(input, target)
    if not xp.isdtype(target.dtype, "real floating"):
        target = xp.astype(target, input.dtype)
    return ops, input, target


def _weighted(function: str, xp: Any, loss: Array, weight: Array | None, reduction: str,
              mean_over_weight: bool = True) -> Array:
    """``loss`` times ``weight`` (of the input's size), reduced: the mean over the weights' sum
    (torch's weighted ``mse_loss`` and ``l1_loss``), or over the elements."""
    if weight is None:
        return _reduced(xp, loss, reduction)
    if tuple(weight.shape) != tuple(loss.shape):
        raise _error(ValueError, function, f"weight must have the input's size {tuple(loss.shape)}, got "
                                           f"{tuple(weight.shape)} (as torch)")
    loss = loss * weight
    if reduction == "mean" and mean_over_weight:
        return xp.sum(loss) / xp.sum(weight)
    return _reduced(xp, loss, reduction)


def mse_loss(input: Array, target: Array, size_average: bool | None = None, reduce: bool | None = None,
             reduction: str = "mean", weight: Array | None = None) -> Array:
    """(x - y)^2, reduced (with ``weight``: weight (x - y)^2, the mean over the weights' sum):
    ``torch.nn.functional.mse_loss``."""
    reduction = _reduction("mse_loss", reduction, size_average, reduce)
    ops, input, target = _pointwise_operands("mse_loss", input, target)
    difference = input - target
    return _weighted("mse_loss", ops.xp, difference * difference, weight, reduction)


def l1_loss(input: Array, target: Array, size_average: bool | None = None, reduce: bool | None = None,
            reduction: str = "mean", weight: Array | None = None) -> Array:
    """|x - y|, reduced (with ``weight``: weight |x - y|, the mean over the weights' sum):
    ``torch.nn.functional.l1_loss``."""
    reduction = _reduction("l1_loss", reduction, size_average, reduce)
    ops, input, target = _pointwise_operands("l1_loss", input, target)
    return _weighted("l1_loss", ops.xp, ops.xp.abs(input - target), weight, reduction)


def _huber(xp: Any, difference: Array, delta: float) -> Array:
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta)."""
    magnitude = xp.abs(difference)
    return xp.where(magnitude < delta, 0.5 * difference * difference, delta * (magnitude - 0.5 * delta))


def smooth_l1_loss(input: Array, target: Array, size_average: bool | None = None, reduce: bool | None = None,
                   reduction: str = "mean", beta: float = 1.0) -> Array:
    """0.5 (x - y)^2 / beta where |x - y| < beta, else |x - y| - 0.5 beta (beta 0: |x - y|),
    reduced: ``torch.nn.functional.smooth_l1_loss``."""
    reduction = _reduction("smooth_l1_loss", reduction, size_average, reduce)
    if not beta >= 0:
        raise _error(ValueError, "smooth_l1_loss", f"beta must be non-negative (as torch), got {beta!r}")
    ops, input, target = _pointwise_operands("smooth_l1_loss", input, target)
    difference = input - target
    loss = ops.xp.abs(difference) if beta == 0 else _huber(ops.xp, difference, beta) / beta
    return _reduced(ops.xp, loss, reduction)


def huber_loss(input: Array, target: Array, reduction: str = "mean", delta: float = 1.0,
               weight: Array | None = None) -> Array:
    """0.5 (x - y)^2 where |x - y| < delta, else delta (|x - y| - 0.5 delta), reduced (with
    ``weight``: weight times it, the mean over the elements): ``torch.nn.functional.huber_loss``."""
    reduction = _reduction("huber_loss", reduction)
    if not delta > 0:
        raise _error(ValueError, "huber_loss", f"delta must be positive (as torch), got {delta!r}")
    ops, input, target = _pointwise_operands("huber_loss", input, target)
    return _weighted("huber_loss", ops.xp, _huber(ops.xp, input - target, delta), weight, reduction,
                     mean_over_weight=False)


def binary_cross_entropy(input: Array, target: Array, weight: Array | None = None, size_average: bool | None = None,
                         reduce: bool | None = None, reduction: str = "mean") -> Array:
    """-weight (y log x + (1 - y) log(1 - x)) of probabilities x, each log at least -100 (so a
    certain wrong answer costs 100, not inf), reduced: ``torch.nn.functional.binary_cross_entropy``."""
    function = "binary_cross_entropy"
    reduction = _reduction(function, reduction, size_average, reduce)
    ops, input, target = _pointwise_operands(function, input, target, same_size=True)
    xp = ops.xp
    if input.size and ops.values_at_hand(input) and not bool(xp.all((input >= 0) & (input <= 1))):
        raise _error(ValueError, function, "all elements of input should be between 0 and 1 (as torch)")
    log_x = xp.maximum(xp.log(input), -100.0)
    log_not_x = xp.maximum(xp.log1p(-input), -100.0)
    loss = -(target * log_x + (1 - target) * log_not_x)
    if weight is not None:
        loss = loss * weight
    return _reduced(xp, loss, reduction)


def binary_cross_entropy_with_logits(input: Array, target: Array, weight: Array | None = None,
                                     size_average: bool | None = None, reduce: bool | None = None,
                                     reduction: str = "mean", pos_weight: Array | None = None) -> Array:
    """-weight (p y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))) of logits x, ``pos_weight`` p
    (1 without), computed stably as weight ((1 - y) x + (1 + (p - 1) y) (log1p(e^-|x|) + max(-x, 0))),
    reduced: ``torch.nn.functional.binary_cross_entropy_with_logits``."""
    function = "binary_cross_entropy_with_logits"
    reduction = _reduction(function, reduction, size_average, reduce)
    ops, input, target = _pointwise_operands(function, input, target, same_size=True)
    xp = ops.xp
    softplus_of_minus_x = xp.log1p(xp.exp(-xp.abs(input))) + xp.maximum(-input, 0.0)
    scale = 1.0 if pos_weight is None else (pos_weight - 1) * target + 1
    loss = (1 - target) * input + scale * softplus_of_minus_x
    if weight is not None:
        loss = loss * weight
    return _reduced(xp, loss, reduction)


def kl_div(input: Array, target: Array, size_average: bool | None = None, reduce: bool | None = None,
           reduction: str = "mean", log_target: bool = False) -> Array:
    """y (log y - x) of log-probabilities x (0 where y is 0), or with ``log_target`` e^y (y - x),
    reduced ('batchmean': the sum over the batch size): ``torch.nn.functional.kl_div``; 'mean'
    divides by every element, which torch warns is not the KL divergence."""
    function = "kl_div"
    reduction = _reduction(function, reduction, size_average, reduce, ("none", "mean", "sum", "batchmean"))
    if reduction == "mean":
        warnings.warn("xpnn.torch_nn.functional.kl_div: reduction: 'mean' divides the total loss by both the batch "
                      "size and the support size. 'batchmean' divides only by the batch size, and aligns with the KL "
                      "div math definition (as torch warns)", UserWarning, stacklevel=2)
    ops, input, target = _pointwise_operands(function, input, target)
    xp = ops.xp
    if log_target:
        loss = xp.exp(target) * (target - input)
    else:
        positive = target > 0
        loss = xp.where(positive, target * (xp.log(xp.where(positive, target, 1.0)) - input), 0.0 * input)
    if reduction == "batchmean":
        return xp.sum(loss) / (input.shape[0] if input.ndim else 1)
    return _reduced(xp, loss, reduction)


def _class_axis(input: Array) -> int:
    """torch's class dim: 0 of ``(C,)``, else 1 of ``(N, C, *)``."""
    return 0 if input.ndim == 1 else 1


class _ClassTargets(NamedTuple):
    """Integer class targets prepared for a gather over the classes (last axis)."""
    #: the targets as indices: ignored ones at 0, and unread out-of-range ones clipped
    index: Array
    #: where a target counts (it is not ``ignore_index``)
    valid: Array
    #: where a target is in range, for targets whose values could not be read (None: all read and checked)
    in_range: Array | None


def _check_class_target_shape(function: str, input: Array, target: Array) -> None:
    """Class targets of ``input``'s shape without its class dim, as torch requires."""
    axis = _class_axis(input)
    expected = tuple(input.shape[:axis]) + tuple(input.shape[axis + 1:])
    if tuple(target.shape) != expected:
        raise _error(ValueError, function, f"expected target of shape {expected} for input of shape "
                                           f"{tuple(input.shape)}, got {tuple(target.shape)}")


def _class_targets(function: str, ops: Any, input: Array, target: Array, ignore_index: int | None) -> _ClassTargets:
    """Integer class ``target`` of shape ``input``'s without its class dim, as gather indices;
    out-of-range targets are torch's IndexError where their values can be read, and give a NaN
    loss where they cannot (under ``jax.jit``, on Dask)."""
    xp = ops.xp
    _check_class_target_shape(function, input, target)
    classes = input.shape[_class_axis(input)]
    valid = (target != ignore_index if ignore_index is not None
             else xp.ones(target.shape, dtype=xp.bool, device=ops.device_of(target)))
    in_range = None
    if target.size and ops.values_at_hand(target):
        outside = ((target < 0) | (target >= classes)) & valid
        if bool(xp.any(outside)):
            shown = sorted({int(t) for t in xp.reshape(target[outside], (-1,))[:3]})
            ignored = "" if ignore_index is None else f" or ignore_index={ignore_index}"
            raise _error(IndexError, function, f"targets must be class indices in [0, {classes}){ignored}, got "
                                               f"{shown} (as torch: out of bounds)")
    else:
        in_range = (target >= 0) & (target < classes)
    index = xp.clip(xp.where(valid, target, xp.zeros_like(target)), 0, classes - 1)
    return _ClassTargets(index, valid, in_range)


def _classes_last(xp: Any, x: Array) -> Array:
    """``x`` with its class dim moved last."""
    return x if x.ndim <= 2 else xp.permute_dims(x, (0, *range(2, x.ndim), 1))


def _picked(ops: Any, per_class: Array, index: Array) -> Array:
    """``per_class[..., t]`` (classes last) at each in-range integer t of ``index`` (its shape
    ``per_class``'s without the classes)."""
    return ops.take_along_axis(per_class, index[..., None], axis=-1)[..., 0]


def _target_weights(ops: Any, per_class: Array, targets: _ClassTargets, weight: Array | None) -> Array:
    """Each target's class weight w_t (1 without ``weight``), 0 where it is ignored."""
    xp = ops.xp
    if weight is None:
        return xp.astype(targets.valid, per_class.dtype)
    chosen = _picked(ops, xp.broadcast_to(weight, per_class.shape), targets.index)
    return xp.where(targets.valid, chosen, xp.zeros_like(chosen))


def _nll(ops: Any, per_class: Array, targets: _ClassTargets, weights: Array, reduction: str) -> Array:
    """The negative log-likelihood -w_t log_p[t] per target (0 where ignored, NaN where an unread
    target is out of range) of the log-probabilities ``per_class`` (classes last), reduced:
    'mean' over the targets' weights."""
    xp = ops.xp
    chosen = _picked(ops, per_class, targets.index)
    if targets.in_range is not None:
        chosen = xp.where(targets.in_range | ~targets.valid, chosen, xp.nan)
    loss = xp.where(targets.valid, -chosen * weights, 0.0)
    return xp.sum(loss) / xp.sum(weights) if reduction == "mean" else _reduced(xp, loss, reduction)


#: The layer-kernel check's name of the libraries' fused negative log-likelihood.
_FUSED_NLL_KERNEL = "fused_nll"


def _fused_nll(function: str, ops: Any, log_p: Array, target: Array, weight: Array | None, ignore_index: int,
               reduction: str) -> Array | None:
    """The library's fused loss (``ops.fused_nll``) of the checked log-probabilities ``log_p``
    (class dim 1) and integer ``target`` of its shape, where fast paths are on and the kernel
    agreed with the written-once gather on this machine; else None.  The kernel answers for the
    targets' range (xpnn does not read them first then): its refusal is ``_class_targets``'s
    error, naming the targets."""
    if log_p.ndim < 2 or not fast_paths_enabled() or not layer_kernel_agrees(_FUSED_NLL_KERNEL, ops, log_p):
        return None
    try:
        return ops.fused_nll(log_p, target, weight, ignore_index, reduction)
    except IndexError:
        _class_targets(function, ops, log_p, target, ignore_index)  # raises the error with the targets shown
        raise


def _fused_nll_disagreement(ops: Any, dtype: Any, device: Any) -> str | None:
    """Why the library's fused loss and the written-once gather differ on a fixed probe
    (log-probabilities (6, 5) and (3, 5, 2) of ``dtype``, a target ignored, with and without
    class weights, every reduction), or how it fails to refuse targets out of range where they
    are at hand; None if they agree within 16 eps (sums in another order)."""
    xp = ops.xp
    rng = np.random.default_rng(0)
    tolerance = 16 * float(xp.finfo(dtype).eps)
    weight = xp.astype(ops.from_host(rng.uniform(0.5, 2.0, 5), device), dtype)
    for shape in ((6, 5), (3, 5, 2)):
        scores = rng.standard_normal(shape)
        log_p = xp.astype(ops.from_host(scores - np.log(np.exp(scores).sum(axis=1, keepdims=True)), device), dtype)
        labels = rng.integers(0, 5, (shape[0], *shape[2:]))
        labels.reshape(-1)[1] = -100
        target = ops.from_host(labels, device)
        for weights, reduction in itertools.product((None, weight), ("none", "sum", "mean")):
            fused = ops.fused_nll(log_p, target, weights, -100, reduction)
            if fused is None:
                continue
            targets = _class_targets("nll_loss", ops, log_p, target, -100)
            per_class = _classes_last(xp, log_p)
            written = _nll(ops, per_class, targets, _target_weights(ops, per_class, targets, weights), reduction)
            reason = outputs_disagreement(ops, (fused,), (written,), tolerance,
                                          f"the fused loss ({reduction}, weights: {weights is not None}, "
                                          f"{len(shape)}-d)", "the written-once gather")
            if reason is not None:
                return reason
    log_p = xp.zeros((2, 5), dtype=dtype, device=device)
    taken = _unrefused(ops, device, IndexError, ([0, -1], [0, 5]),
                       lambda target: ops.fused_nll(log_p, target, None, -100, "sum"))
    if taken is not None:
        return f"the fused loss read targets {taken} of 5 classes instead of raising IndexError"
    return None


LAYER_KERNELS[_FUSED_NLL_KERNEL] = _fused_nll_disagreement


def _class_weight(function: str, input: Array, weight: Array | None) -> None:
    classes = input.shape[_class_axis(input)]
    if weight is not None and tuple(weight.shape) != (classes,):
        raise _error(ValueError, function, f"weight must have shape ({classes},) for {classes} classes, got "
                                           f"{tuple(weight.shape)}")


def nll_loss(input: Array, target: Array, weight: Array | None = None, size_average: bool | None = None,
             ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean") -> Array:
    """-weight[t] input[t] of log-probabilities ``input`` ``(N, C, *)`` (or ``(C,)``) at integer
    targets t, 0 where t is ``ignore_index``; 'mean' divides by the targets' weights:
    ``torch.nn.functional.nll_loss``."""
    function = "nll_loss"
    reduction = _reduction(function, reduction, size_average, reduce)
    ops = _adapter(function, ("input", "target", "weight"), input, target, weight)
    _floating_only(function, input)
    _integer_targets(function, ops, target)
    _class_weight(function, input, weight)
    _check_class_target_shape(function, input, target)
    fused = _fused_nll(function, ops, input, target, weight, ignore_index, reduction)
    if fused is not None:
        return fused
    targets = _class_targets(function, ops, input, target, ignore_index)
    per_class = _classes_last(ops.xp, input)
    return _nll(ops, per_class, targets, _target_weights(ops, per_class, targets, weight), reduction)


def _integer_targets(function: str, ops: Any, target: Array) -> None:
    if not ops.xp.isdtype(target.dtype, "integral"):
        raise _error(TypeError, function, f"target must hold integer class indices, got dtype {target.dtype}")


def cross_entropy(input: Array, target: Array, weight: Array | None = None, size_average: bool | None = None,
                  ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Array:
    """The negative log-likelihood of ``log_softmax(input)`` over the class dim (1 of
    ``(N, C, *)``, 0 of ``(C,)``): ``torch.nn.functional.cross_entropy``.  Integer targets are
    class indices (``nll_loss``'s ``weight``, ``ignore_index`` and mean over the targets' weights);
    floating targets of the input's shape are class probabilities, -sum_c w_c y_c log p_c (the
    mean over the N * d1 ... positions).  ``label_smoothing`` e mixes in the uniform
    distribution: (1 - e) times that loss plus e / C times -sum_c w_c log p_c (torch's formula)."""
    reduction = _reduction("cross_entropy", reduction, size_average, reduce)
    return _cross_entropy("cross_entropy", input, target, weight, ignore_index, reduction, label_smoothing)


def _cross_entropy(function: str, input: Array, target: Array, weight: Array | None, ignore_index: int,
                   reduction: str, label_smoothing: float) -> Array:
    """``cross_entropy``'s loss, its errors naming ``function``."""
    ops = _adapter(function, ("input", "target", "weight"), input, target, weight)
    _floating_only(function, input)
    _class_weight(function, input, weight)
    if not 0.0 <= label_smoothing <= 1.0:
        raise _error(ValueError, function, f"label_smoothing must be between 0.0 and 1.0, got {label_smoothing!r}")
    xp = ops.xp
    axis = _class_axis(input)
    classes = input.shape[axis]
    log_p = xpnn.log_softmax(input, axis=axis)
    per_class = _classes_last(xp, log_p)
    if xp.isdtype(target.dtype, "real floating") or label_smoothing:
        weighted = per_class if weight is None else per_class * weight
    if xp.isdtype(target.dtype, "real floating"):
        if tuple(target.shape) != tuple(input.shape):
            raise _error(ValueError, function, f"class probabilities must have the input's shape "
                                               f"{tuple(input.shape)}, got {tuple(target.shape)}")
        probabilities = _classes_last(xp, target)
        if label_smoothing:
            probabilities = probabilities * (1 - label_smoothing) + label_smoothing / classes
        loss = -xp.sum(weighted * probabilities, axis=-1)
        return _reduced(xp, loss, reduction)
    _integer_targets(function, ops, target)
    if not label_smoothing:
        _check_class_target_shape(function, input, target)
        fused = _fused_nll(function, ops, log_p, target, weight, ignore_index, reduction)
        if fused is not None:
            return fused
    targets = _class_targets(function, ops, log_p, target, ignore_index)
    weights = _target_weights(ops, per_class, targets, weight)
    reduced = _nll(ops, per_class, targets, weights, reduction)
    if not label_smoothing:
        return reduced
    smooth = xp.where(targets.valid, -xp.sum(weighted, axis=-1), 0.0)
    if reduction == "mean":
        smooth = xp.sum(smooth) / xp.sum(weights)
    else:
        smooth = _reduced(xp, smooth, reduction)
    return (1 - label_smoothing) * reduced + smooth * (label_smoothing / classes)


def linear_cross_entropy(input: Array, linear_weight: Array, target: Array, *, linear_bias: Array | None = None,
                         weight: Array | None = None, reduction: str = "mean", ignore_index: int | None = None,
                         label_smoothing: float = 0.0, options: Any = None) -> Array:
    """``cross_entropy`` of the logits x W^T + b, ``input`` ``(N, in)`` or ``(in,)`` and
    ``linear_weight`` ``(C, *d, in)`` (logits ``(N, C, *d)``; ``linear_bias`` ``(C, *d)``):
    ``torch.nn.functional.linear_cross_entropy``.  ``ignore_index`` None is -100 for class
    indices (and refused with class probabilities).  torch's ``options`` pick a chunked kernel
    that saves memory on torch; the loss is the same, and here the logits are formed whole."""
    function = "linear_cross_entropy"
    ops = _adapter(function, ("input", "linear_weight", "target", "linear_bias", "weight"), input, linear_weight,
                   target, linear_bias, weight)
    if not 1 <= input.ndim <= 2 or linear_weight.ndim < 2:
        raise _error(ValueError, function, f"expected input of 1 or 2 dims and linear_weight of at least 2 (as "
                                           f"torch), got shapes {tuple(input.shape)} and {tuple(linear_weight.shape)}")
    classes, features, in_features = linear_weight.shape[0], tuple(linear_weight.shape[1:-1]), linear_weight.shape[-1]
    if input.shape[-1] != in_features:
        raise _error(ValueError, function, f"input's last dim ({input.shape[-1]}) must equal linear_weight's "
                                           f"in_features ({in_features})")
    if linear_bias is not None and tuple(linear_bias.shape) != (classes, *features):
        raise _error(ValueError, function, f"expected linear_bias of shape {(classes, *features)}, got "
                                           f"{tuple(linear_bias.shape)}")
    if features and input.ndim == 1:
        raise _error(ValueError, function, f"K-dimensional loss defined by linear_weight shape "
                                           f"{tuple(linear_weight.shape)} requires batched input (N, {in_features}), "
                                           f"got {tuple(input.shape)}")
    reduction = _reduction(function, reduction, None, None)
    xp = ops.xp
    logits_shape = (*input.shape[:-1], classes, *features)
    if tuple(target.shape) == logits_shape and ignore_index is not None:
        raise _error(ValueError, function, "ignore_index cannot be specified when target contains probabilities")
    width = math.prod(features, start=classes)
    flat_bias = None if linear_bias is None else xp.reshape(linear_bias, (width,))
    logits = ops.linear(input, xp.reshape(linear_weight, (width, in_features)), flat_bias)
    logits = xp.reshape(logits, logits_shape)
    return _cross_entropy(function, logits, target, weight, -100 if ignore_index is None else ignore_index,
                          reduction, label_smoothing)


def _clamped_at_zero(xp: Any, z: Array) -> Array:
    """max(z, 0) as torch's ``clamp_min(z, 0)``: gradient 1 at z = 0 (``maximum``'s splits it),
    NaN kept."""
    return xp.where(z < 0, xp.zeros_like(z), z)


def _positive_part(xp: Any, z: Array) -> Array:
    """z where z > 0, else 0 (gradient 0 at z = 0, NaN dropped): torch's margin kernels' ``if (z > 0)``."""
    return xp.where(z > 0, z, xp.zeros_like(z))


def _margin_targets(xp: Any, target: Array, dtype: Any) -> Array:
    """``target`` (labels 1 and -1) in the input's floating dtype."""
    return target if xp.isdtype(target.dtype, "real floating") else xp.astype(target, dtype)


def _same_ranks(function: str, message: str, **arrays: Array) -> None:
    if len({array.ndim for array in arrays.values()}) > 1:
        sizes = ", ".join(f"{name} {tuple(array.shape)}" for name, array in arrays.items())
        raise _error(ValueError, function, f"{message}, got {sizes} (as torch)")


def poisson_nll_loss(input: Array, target: Array, log_input: bool = True, full: bool = False,
                     size_average: bool | None = None, eps: float = 1e-8, reduce: bool | None = None,
                     reduction: str = "mean") -> Array:
    """The Poisson negative log-likelihood of the rate: e^x - y x with ``log_input`` (x is the
    log-rate), else x - y log(x + eps); ``full`` adds Stirling's y log y - y + 0.5 log(2 pi y)
    where y > 1; reduced: ``torch.nn.functional.poisson_nll_loss``."""
    function = "poisson_nll_loss"
    reduction = _reduction(function, reduction, size_average, reduce)
    ops, input, target = _pointwise_operands(function, input, target)
    xp = ops.xp
    loss = xp.exp(input) - target * input if log_input else input - target * xp.log(input + eps)
    if full:
        above_one = target > 1
        count = xp.where(above_one, target, 1.0)
        stirling = count * xp.log(count) - count + 0.5 * xp.log(2 * math.pi * count)
        loss = loss + xp.where(above_one, stirling, 0.0)
    return _reduced(xp, loss, reduction)


def _gaussian_variance(function: str, input: Array, var: Array) -> Array:
    """``var`` of the input's shape, or homoscedastic: one dim short of it (a trailing 1 is
    added), or of its rank with exactly one dim of size 1 where the input's is larger (torch)."""
    shape, var_shape = tuple(input.shape), tuple(var.shape)
    if var_shape == shape:
        return var
    if var_shape == shape[:-1]:
        return var[..., None]
    if len(var_shape) == len(shape) and sum(v for s, v in zip(shape, var_shape) if s != v) == 1:
        return var
    raise _error(ValueError, function, f"var is of incorrect size: expected the input's shape {shape}, that shape "
                                       f"without its last dim, or one of its dims as 1, got {var_shape} (as torch)")


def gaussian_nll_loss(input: Array, target: Array, var: Array | float, full: bool = False, eps: float = 1e-6,
                      reduction: str = "mean") -> Array:
    """The Gaussian negative log-likelihood 0.5 (log v + (x - y)^2 / v) of the mean x and the
    variance v = max(var, eps) (the clamp passes gradients through, as torch's no-grad clamp);
    ``full`` adds 0.5 log(2 pi); reduced: ``torch.nn.functional.gaussian_nll_loss``."""
    function = "gaussian_nll_loss"
    reduction = _reduction(function, reduction)
    ops, input, target = _pointwise_operands(function, input, target)
    xp = ops.xp
    if not is_array(var):
        if not var >= 0:
            raise _error(ValueError, function, f"var has negative entry/entries: {var!r} (as torch)")
        var = xp.full(input.shape, float(var), dtype=input.dtype, device=ops.device_of(input))
    else:
        _adapter(function, ("input", "var"), input, var)
        var = _gaussian_variance(function, input, var)
        if var.size and ops.values_at_hand(var) and bool(xp.any(var < 0)):
            raise _error(ValueError, function, "var has negative entry/entries (as torch)")
    var = var + ops.stop_gradient(xp.maximum(var, eps) - var)
    difference = input - target
    loss = 0.5 * (xp.log(var) + difference * difference / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduced(xp, loss, reduction)


def margin_ranking_loss(input1: Array, input2: Array, target: Array, margin: float = 0,
                        size_average: bool | None = None, reduce: bool | None = None,
                        reduction: str = "mean") -> Array:
    """max(0, -y (x1 - x2) + margin) of labels y in {1, -1} (1: x1 should rank higher), the
    three broadcast: ``torch.nn.functional.margin_ranking_loss``."""
    function = "margin_ranking_loss"
    reduction = _reduction(function, reduction, size_average, reduce)
    ops = _adapter(function, ("input1", "input2", "target"), input1, input2, target)
    _floating_only(function, input1)
    _same_ranks(function, "all input arrays should have the same number of dims", input1=input1, input2=input2,
                target=target)
    xp = ops.xp
    target = _margin_targets(xp, target, input1.dtype)
    return _reduced(xp, _clamped_at_zero(xp, margin - target * (input1 - input2)), reduction)


def hinge_embedding_loss(input: Array, target: Array, margin: float = 1.0, size_average: bool | None = None,
                         reduce: bool | None = None, reduction: str = "mean") -> Array:
    """x where y is 1, max(0, margin - x) where y is -1 (of distances x; a label that is neither
    adds both terms, as torch), reduced: ``torch.nn.functional.hinge_embedding_loss``."""
    function = "hinge_embedding_loss"
    reduction = _reduction(function, reduction, size_average, reduce)
    ops = _adapter(function, ("input", "target"), input, target)
    _floating_only(function, input)
    xp = ops.xp
    below_margin = xp.where(target != 1, _clamped_at_zero(xp, margin - input), 0.0)
    return _reduced(xp, below_margin + xp.where(target != -1, input, 0.0), reduction)


def soft_margin_loss(input: Array, target: Array, size_average: bool | None = None, reduce: bool | None = None,
                     reduction: str = "mean") -> Array:
    """log(1 + e^(-y x)) of labels y in {1, -1}, computed stably (torch's overflows to inf for
    -y x beyond about 89 in float32), reduced: ``torch.nn.functional.soft_margin_loss``."""
    function = "soft_margin_loss"
    reduction = _reduction(function, reduction, size_average, reduce)
    ops, input, target = _pointwise_operands(function, input, target)
    xp = ops.xp
    margin = -target * input
    return _reduced(xp, xp.maximum(margin, 0.0) + xp.log1p(xp.exp(-xp.abs(margin))), reduction)


def multilabel_soft_margin_loss(input: Array, target: Array, weight: Array | None = None,
                                size_average: bool | None = None, reduce: bool | None = None,
                                reduction: str = "mean") -> Array:
    """-weight (y log sigmoid(x) + (1 - y) log sigmoid(-x)) averaged over the classes (the last
    dim), then reduced over the rest: ``torch.nn.functional.multilabel_soft_margin_loss``."""
    function = "multilabel_soft_margin_loss"
    reduction = _reduction(function, reduction, size_average, reduce)
    ops, input, target = _pointwise_operands(function, input, target)
    xp = ops.xp
    loss = -(target * xpnn.log_sigmoid(input) + (1 - target) * xpnn.log_sigmoid(-input))
    if weight is not None:
        loss = loss * weight
    return _reduced(xp, xp.sum(loss, axis=-1) / input.shape[-1], reduction)


def cosine_embedding_loss(input1: Array, input2: Array, target: Array, margin: float = 0,
                          size_average: bool | None = None, reduce: bool | None = None,
                          reduction: str = "mean") -> Array:
    """1 - cos(x1, x2) where y is 1, max(0, cos(x1, x2) - margin) where y is -1 (0 otherwise),
    the cosine along the last dim as x1.x2 / sqrt((|x1|^2 + 1e-12)(|x2|^2 + 1e-12)), reduced:
    ``torch.nn.functional.cosine_embedding_loss``."""
    function = "cosine_embedding_loss"
    reduction = _reduction(function, reduction, size_average, reduce)
    ops = _adapter(function, ("input1", "input2", "target"), input1, input2, target)
    _floating_only(function, input1)
    if not (input1.ndim == input2.ndim == target.ndim + 1 and input1.ndim in (1, 2)):
        raise _error(ValueError, function, f"expected inputs (N, D) with target (N,), or (D,) with a 0-d target, got "
                                           f"input1 {tuple(input1.shape)}, input2 {tuple(input2.shape)} and target "
                                           f"{tuple(target.shape)} (as torch)")
    xp = ops.xp
    squares1 = xp.sum(input1 * input1, axis=-1) + 1e-12
    squares2 = xp.sum(input2 * input2, axis=-1) + 1e-12
    cosine = xp.sum(input1 * input2, axis=-1) / xp.sqrt(squares1 * squares2)
    loss = xp.where(target == 1, 1 - cosine, 0.0) + xp.where(target == -1, _clamped_at_zero(xp, cosine - margin), 0.0)
    return _reduced(xp, loss, reduction)


def _triplet(function: str, distance: Any, anchor: Array, positive: Array, negative: Array, margin: float,
             swap: bool, reduction: str) -> Array:
    """max(0, margin + d(a, p) - d(a, n)), with ``swap`` d(a, n) replaced by min(d(a, n), d(p, n))."""
    ops = _adapter(function, ("anchor", "positive", "negative"), anchor, positive, negative)
    if not margin > 0:
        raise _error(ValueError, function, f"margin must be greater than 0, got {margin!r} (as torch)")
    _same_ranks(function, "the anchor, positive and negative arrays are expected to have the same number of dims",
                anchor=anchor, positive=positive, negative=negative)
    xp = ops.xp
    to_negative = distance(anchor, negative)
    if swap:
        to_negative = xp.minimum(to_negative, distance(positive, negative))
    return _reduced(xp, _clamped_at_zero(xp, margin + distance(anchor, positive) - to_negative), reduction)


def triplet_margin_loss(anchor: Array, positive: Array, negative: Array, margin: float = 1.0, p: float = 2,
                        eps: float = 1e-6, swap: bool = False, size_average: bool | None = None,
                        reduce: bool | None = None, reduction: str = "mean") -> Array:
    """max(0, margin + d(a, p) - d(a, n)) of the ``pairwise_distance`` d (``p``, ``eps``), with
    ``swap`` min(d(a, n), d(p, n)) for d(a, n): ``torch.nn.functional.triplet_margin_loss``."""
    function = "triplet_margin_loss"
    reduction = _reduction(function, reduction, size_average, reduce)
    _floating_only(function, anchor)
    return _triplet(function, functools.partial(pairwise_distance, p=p, eps=eps), anchor, positive, negative, margin,
                    swap, reduction)


def triplet_margin_with_distance_loss(anchor: Array, positive: Array, negative: Array, *,
                                      distance_function: Any = None, margin: float = 1.0, swap: bool = False,
                                      reduction: str = "mean") -> Array:
    """max(0, margin + d(a, p) - d(a, n)) of ``distance_function`` d (``pairwise_distance`` when
    None), with ``swap`` min(d(a, n), d(p, n)) for d(a, n):
    ``torch.nn.functional.triplet_margin_with_distance_loss``."""
    function = "triplet_margin_with_distance_loss"
    reduction = _reduction(function, reduction)
    return _triplet(function, distance_function or pairwise_distance, anchor, positive, negative, margin, swap,
                    reduction)


def _margin_classes(function: str, input: Array) -> None:
    if input.ndim not in (1, 2) or not input.shape[-1]:
        raise _error(ValueError, function, f"expected a non-empty (C,) or (N, C) input, got shape "
                                           f"{tuple(input.shape)} (as torch)")


def multi_margin_loss(input: Array, target: Array, p: int = 1, margin: float = 1.0, weight: Array | None = None,
                      size_average: bool | None = None, reduce: bool | None = None,
                      reduction: str = "mean") -> Array:
    """The multi-class hinge loss sum_{i != t} w_t max(0, margin - x[t] + x[i])^p / C of scores
    ``input`` (N, C) or (C,) at class indices t, reduced:
    ``torch.nn.functional.multi_margin_loss``."""
    function = "multi_margin_loss"
    reduction = _reduction(function, reduction, size_average, reduce)
    if p not in (1, 2):
        raise _error(ValueError, function, f"only p == 1 and p == 2 supported, got {p!r} (as torch)")
    ops = _adapter(function, ("input", "target", "weight"), input, target, weight)
    _floating_only(function, input)
    _margin_classes(function, input)
    _integer_targets(function, ops, target)
    if weight is not None and weight.ndim != 1:
        raise _error(ValueError, function, f"weight must be one-dimensional, got shape {tuple(weight.shape)}")
    _class_weight(function, input, weight)
    targets = _class_targets(function, ops, input, target, None)
    xp = ops.xp
    at_target = _picked(ops, input, targets.index)[..., None]
    hinge = _positive_part(xp, margin - at_target + input)
    if p == 2:
        hinge = hinge * hinge
    if weight is not None:
        hinge = hinge * _target_weights(ops, input, targets, weight)[..., None]
    hit = xp.arange(input.shape[-1], dtype=target.dtype, device=ops.device_of(target)) == targets.index[..., None]
    loss = xp.sum(xp.where(hit, 0.0, hinge), axis=-1) / input.shape[-1]
    if targets.in_range is not None:  # an unread target out of range: NaN, not a silent value
        loss = xp.where(targets.in_range, loss, xp.nan)
    return _reduced(xp, loss, reduction)


def multilabel_margin_loss(input: Array, target: Array, size_average: bool | None = None,
                           reduce: bool | None = None, reduction: str = "mean") -> Array:
    """The multi-label hinge loss sum_j sum_{i not a target} max(0, 1 - (x[t_j] - x[i])) / C of
    scores ``input`` (N, C) or (C,) and ``target`` of its shape listing the class indices t_j up
    to the first -1, reduced: ``torch.nn.functional.multilabel_margin_loss``."""
    function = "multilabel_margin_loss"
    reduction = _reduction(function, reduction, size_average, reduce)
    ops = _adapter(function, ("input", "target"), input, target)
    _floating_only(function, input)
    _margin_classes(function, input)
    _integer_targets(function, ops, target)
    xp = ops.xp
    classes = input.shape[-1]
    if tuple(target.shape) != tuple(input.shape):
        raise _error(ValueError, function, f"target must have the input's shape {tuple(input.shape)}, got "
                                           f"{tuple(target.shape)}")
    if target.size and ops.values_at_hand(target) and bool(xp.any((target < -1) | (target >= classes))):
        raise _error(IndexError, function, f"targets must be class indices in [0, {classes}) or -1 (as torch: out "
                                           "of range)")
    positions = xp.arange(classes, dtype=target.dtype, device=ops.device_of(target))
    listed_count = xp.min(xp.where(target == -1, positions, classes), axis=-1, keepdims=True)
    listed = positions < listed_count
    hit = (target[..., None] == positions) & listed[..., None]
    is_target = xp.any(hit, axis=-2)
    picked = xp.sum(xp.where(hit, input[..., None, :], 0.0), axis=-1)
    hinge = _positive_part(xp, 1 - picked[..., None] + input[..., None, :])
    counted = listed[..., None] & ~is_target[..., None, :]
    return _reduced(xp, xp.sum(xp.where(counted, hinge, 0.0), axis=(-2, -1)) / classes, reduction)


def _lengths(function: str, ops: Any, lengths: Any, batch: int, argument: str, like: Array) -> Array:
    """``input_lengths`` or ``target_lengths`` (an array or ints) as a 1-D integer array of one
    length per sample."""
    xp = ops.xp
    if not is_array(lengths):
        device = ops.device_of(like)
        lengths = xp.asarray(list(lengths) if isinstance(lengths, (list, tuple)) else [lengths],
                             dtype=ops.default_int(device), device=device)
    lengths = xp.reshape(lengths, (-1,))
    if lengths.shape[0] != batch:
        raise _error(ValueError, function, f"{argument} must be of size batch_size {batch}, got "
                                           f"{lengths.shape[0]} (as torch)")
    if not xp.isdtype(lengths.dtype, "integral"):
        raise _error(TypeError, function, f"{argument} must be integers, got dtype {lengths.dtype}")
    return lengths


def _padded_targets(function: str, ops: Any, targets: Array, target_lengths: Array, batch: int) -> Array:
    """``targets`` as ``(N, S)``: as given, or the concatenated 1-D targets cut by their lengths
    (S the longest, or the total where lengths cannot be read now), the rest of each row 0."""
    xp = ops.xp
    if targets.ndim == 2:
        return targets
    total = targets.shape[0]
    if ops.values_at_hand(target_lengths):
        longest = int(xp.max(target_lengths)) if batch else 0
        if int(xp.sum(target_lengths)) > total:
            raise _error(ValueError, function, f"the target lengths sum to {int(xp.sum(target_lengths))}, more than "
                                               f"the {total} concatenated targets")
    else:
        longest = total
    positions, inside = _runs(ops, xp.cumulative_sum(target_lengths) - target_lengths, target_lengths, longest,
                              total)
    picked = xp.reshape(xp.take(targets, positions), (batch, longest)) if total else xp.zeros((batch, longest),
                                                                                            dtype=targets.dtype)
    return xp.where(inside, picked, xp.zeros_like(picked))


def _log_sum_exp3(xp: Any, a: Array, b: Array, c: Array) -> Array:
    """log(e^a + e^b + e^c) stably, -inf where all three are -inf (with finite gradients)."""
    top = xp.maximum(xp.maximum(a, b), c)
    finite = xp.isfinite(top)
    shift = xp.where(finite, top, 0.0)
    total = xp.exp(a - shift) + xp.exp(b - shift) + xp.exp(c - shift)
    return xp.where(finite, shift + xp.log(xp.where(finite, total, 1.0)), top)


def ctc_loss(log_probs: Array, targets: Array, input_lengths: Any, target_lengths: Any, blank: int = 0,
             reduction: str = "mean", zero_infinity: bool = False) -> Array:
    """The Connectionist Temporal Classification loss -log sum over the alignments of each
    target: ``torch.nn.functional.ctc_loss``.  ``log_probs`` ``(T, N, C)`` (or ``(T, C)``) are
    log-probabilities over classes with ``blank``; ``targets`` ``(N, S)`` padded or 1-D
    concatenated; lengths per sample.  The forward variables alpha over the extended target
    (blanks between and around the labels) run in log space, a step per time (the adapter's
    ``scan``): alpha_t(k) = logsumexp(alpha_{t-1}(k), alpha_{t-1}(k-1), alpha_{t-1}(k-2) where
    label k is not blank nor label k-2) + log_probs[t, label k].  'mean' divides each loss by
    its target length (at least 1) before the batch mean; ``zero_infinity`` makes impossible
    alignments 0.  The gradient is autodiff's: with respect to normalized log-probabilities it
    differs from torch's by e^log_probs, which the log_softmax before them cancels, so the
    gradient with respect to the logits is torch's."""
    function = "ctc_loss"
    reduction = _reduction(function, reduction)
    ops = _adapter(function, ("log_probs", "targets"), log_probs, targets)
    _floating_only(function, log_probs)
    xp = ops.xp
    unbatched = log_probs.ndim == 2
    if log_probs.ndim not in (2, 3):
        raise _error(ValueError, function, f"log_probs must be (T, N, C) or unbatched (T, C), got shape "
                                           f"{tuple(log_probs.shape)}")
    if unbatched:
        log_probs, targets = log_probs[:, None, :], targets[None, ...]
    steps, batch, classes = log_probs.shape
    if not 0 <= blank < classes:
        raise _error(ValueError, function, f"blank must be in label range [0, {classes}), got {blank} (as torch)")
    if targets.ndim not in (1, 2):
        raise _error(ValueError, function, f"targets must be (N, S) or concatenated 1-d, got shape "
                                           f"{tuple(targets.shape)}")
    if not xp.isdtype(targets.dtype, "integral"):
        targets = xp.astype(targets, ops.default_int(ops.device_of(targets)))
    input_lengths = _lengths(function, ops, input_lengths, batch, "input_lengths", log_probs)
    target_lengths = _lengths(function, ops, target_lengths, batch, "target_lengths", log_probs)
    if ops.values_at_hand(input_lengths) and ops.values_at_hand(target_lengths) and batch:
        widest = targets.shape[1] if targets.ndim == 2 else None
        for name, lengths, low, high in [("input_lengths", input_lengths, 0, steps),
                                         ("target_lengths", target_lengths, 0, widest)]:
            values = [int(v) for v in lengths]
            if min(values) < low or (high is not None and max(values) > high):
                raise _error(ValueError, function, f"{name} must lie in [{low}, {high if high is not None else ''}], "
                                                   f"got {values[:6]} (as torch)")
    if targets.ndim == 2 and targets.shape[0] != batch:
        raise _error(ValueError, function, f"targets must have {batch} rows, got shape {tuple(targets.shape)}")
    labels = _padded_targets(function, ops, targets, target_lengths, batch)
    longest = labels.shape[1]
    width = 2 * longest + 1
    device = ops.device_of(log_probs)
    position = xp.arange(width, device=device)
    # the extended target: blank, label 1, blank, label 2, ..., blank
    label_of = xp.astype(xp.clip((position - 1) // 2, 0, max(longest - 1, 0)), labels.dtype)
    from_labels = xp.take(labels, label_of, axis=1) if longest else xp.zeros((batch, width), dtype=labels.dtype,
                                                                              device=device)
    extended = xp.where(position % 2 == 1, from_labels, xp.full_like(from_labels, blank))
    rows = xp.arange(batch, dtype=labels.dtype, device=device)[:, None] * classes
    emissions = xp.reshape(xp.take(xp.reshape(log_probs, (steps, batch * classes)),
                                   xp.reshape(rows + extended, (-1,)), axis=1), (steps, batch, width))
    earlier = xp.concat([extended[:, :1], extended[:, :1], extended], axis=1)[:, :width]
    skips = (position >= 2) & (extended != blank) & (extended != earlier)
    nothing = xp.full((batch, 2), -xp.inf, dtype=log_probs.dtype, device=device)
    impossible = xp.full((batch, width), -xp.inf, dtype=log_probs.dtype, device=device)

    def step(alpha: Array, inputs: tuple[Array, Array]) -> tuple[Array, None]:
        emission, active = inputs
        shifted = xp.concat([nothing, alpha], axis=1)
        two_back = xp.where(skips, shifted[:, :width], impossible)
        new = _log_sum_exp3(xp, alpha, shifted[:, 1:width + 1], two_back) + emission
        return xp.where(active[:, None], new, alpha), None

    empty = xp.where(position == 0, xp.zeros_like(impossible), impossible)  # no time steps: only blank-0 is reached
    if steps:
        start = xp.where(position < 2, emissions[0, ...], impossible)
        times = xp.arange(1, steps, dtype=input_lengths.dtype, device=device)
        active = times[:, None] < input_lengths
        alpha, _ = ops.scan(step, start, (emissions[1:, ...], active))
        alpha = xp.where((input_lengths > 0)[:, None], alpha, empty)
    else:
        alpha = empty
    ends = 2 * xp.astype(target_lengths, position.dtype)[:, None]
    final = (position == ends) | ((position == ends - 1) & (ends > 0))
    top = xp.max(xp.where(final, alpha, impossible), axis=1, keepdims=True)
    shift = xp.where(xp.isfinite(top), top, 0.0)
    total = xp.sum(xp.where(final, xp.exp(alpha - shift), 0.0), axis=1)
    loss = -xp.where(xp.isfinite(top[:, 0]), shift[:, 0] + xp.log(xp.where(total > 0, total, 1.0)), top[:, 0])
    if zero_infinity:
        loss = xp.where(xp.isinf(loss), 0.0, loss)
    if reduction == "mean":
        divisor = xp.astype(xp.clip(target_lengths, 1, None), loss.dtype)
        return xp.mean(loss / divisor)
    if unbatched and reduction == "none":
        return loss[0]
    return _reduced(xp, loss, reduction)


# -- attention -------------------------------------------------------------------------------

def scaled_dot_product_attention(query: Array, key: Array, value: Array, attn_mask: Array | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False, *, dropout_key: Array | None = None) -> Array:
    """softmax(q k^T scale + mask) v over ``(..., L, E)`` queries and ``(..., S, E)`` keys:
    ``torch.nn.functional.scaled_dot_product_attention``.  A boolean ``attn_mask`` is True where
    attention *takes part*; a float one is added to the logits; a query that sees no key gives 0
    (torch's safe softmax).  ``scale`` defaults to 1/sqrt(E);
    ``enable_gqa`` lets 4-d ``(N, H, L, E)`` queries have a multiple of the keys' heads.  A
    ``torch_nn.attention.bias.CausalBias`` mask is its boolean triangle (not with ``is_causal``)."""
    if isinstance(attn_mask, CausalBias):
        if is_causal:
            raise _error(ValueError, "scaled_dot_product_attention", "CausalBias should not be used with causal=True")
        if attn_mask.shape != (query.shape[-2], key.shape[-2]):
            raise _error(ValueError, "scaled_dot_product_attention", f"the CausalBias is of {attn_mask.shape[0]} "
                         f"queries and {attn_mask.shape[1]} keys, got {query.shape[-2]} and {key.shape[-2]}")
        attn_mask = attn_mask.materialized(query)
    ops = _adapter("scaled_dot_product_attention", ("query", "key", "value", "attn_mask"), query, key, value,
                   attn_mask)
    xp = ops.xp
    if query.ndim < 2:
        raise _error(ValueError, "scaled_dot_product_attention", f"query must be (..., L, E), got {tuple(query.shape)}")
    if query.ndim == 4:
        heads_q, heads_k = query.shape[1], key.shape[1]
        if heads_q != heads_k and not enable_gqa:
            raise _error(ValueError, "scaled_dot_product_attention", f"query has {heads_q} heads and key {heads_k}; "
                                                                     "pass enable_gqa=True for grouped heads")

    def as_bthd(t: Array) -> Array:  # (..., L, E) -> (B, L, H, E)
        if t.ndim == 4:
            return xp.permute_dims(t, (0, 2, 1, 3))
        return xp.reshape(t, (-1, t.shape[-2], 1, t.shape[-1]))

    q, k, v = as_bthd(query), as_bthd(key), as_bthd(value)
    mask = bias = None
    if attn_mask is not None:
        shape = (*query.shape[:-2], query.shape[-2], key.shape[-2])
        full = xp.broadcast_to(attn_mask, shape)
        full = xp.reshape(full, (q.shape[0], -1, *shape[-2:]))
        if attn_mask.dtype == xp.bool:
            mask = full
        else:
            bias = xp.astype(full, query.dtype) if full.dtype != query.dtype else full
        # torch's safe softmax: a query that sees no key (every key masked, or a -inf bias on
        # each) gets 0, where jax.nn's masking gives the mean of the values and -inf NaN
        seen = xp.any(_causal_and(xp, mask, is_causal, q, k) if bias is None else bias > -math.inf, axis=-1)
        if bias is not None:  # finite there, so no NaN reaches the gradients
            bias = xp.where(seen[..., None], bias, xp.zeros_like(bias))
    if dropout_p > 0 or value.shape[-1] != query.shape[-1]:  # jax.nn's attention needs v's width to be q's
        weights = xpnn.dot_product_attention_weights(q * (1.0 if scale is None else scale * math.sqrt(q.shape[-1])),
                                                     k, bias=bias, mask=_causal_and(xp, mask, is_causal, q, k))
        if dropout_p > 0:
            weights = dropout(weights, dropout_p, True, key=dropout_key)
        heads_first = xp.permute_dims(_repeated_heads(xp, v, q.shape[2]), (0, 2, 1, 3))
        out = xp.permute_dims(ops.matmul(weights, heads_first), (0, 2, 1, 3))  # (b, q, h, d)
    else:
        out = xpnn.dot_product_attention(q, k, v, bias=bias, mask=mask, scale=scale, is_causal=is_causal)
    if attn_mask is not None:
        out = xp.where(xp.permute_dims(seen, (0, 2, 1))[..., None], out, xp.zeros_like(out))
    if query.ndim == 4:
        return xp.permute_dims(out, (0, 2, 1, 3))
    return xp.reshape(out, (*query.shape[:-1], value.shape[-1]))


def _causal_and(xp: Any, mask: Array | None, is_causal: bool, q: Array, k: Array) -> Array | None:
    if not is_causal:
        return mask
    causal = xp.tril(xp.ones((q.shape[1], k.shape[1]), dtype=xp.bool, device=adapter_of(q).device_of(q)))
    return causal if mask is None else mask & causal


def _repeated_heads(xp: Any, v: Array, heads: int) -> Array:
    if v.shape[2] == heads:
        return v
    return xp.repeat(v, heads // v.shape[2], axis=2)


#: The array arguments of ``multi_head_attention_forward``, in the order its library is found.
_ATTENTION_ARRAYS = ("query", "key", "value", "in_proj_weight", "in_proj_bias", "out_proj_weight", "out_proj_bias",
                     "bias_k", "bias_v", "q_proj_weight", "k_proj_weight", "v_proj_weight", "static_k", "static_v",
                     "key_padding_mask", "attn_mask")


def _check_attention_shapes(name: str, key: Array, value: Array, static_k: Array | None,
                            key_padding_mask: Array | None, attn_mask: Array | None, separate: bool,
                            sizes: tuple[int, int, int], sequence_axis: int) -> None:
    """torch's checks of ``multi_head_attention_forward``'s key, value and mask shapes (batched
    inputs; ``sizes`` are the batch, heads and target length), as its errors: a mask of another
    shape was reshaped or broadcast into a NumPy error, or into a wrong answer."""
    batch, num_heads, target = sizes
    key_shape, value_shape = tuple(key.shape), tuple(value.shape)
    if separate and (key_shape[:2] != value_shape[:2]):
        raise _error(ValueError, name, f"key's sequence and batch dims {key_shape[:2]} do not match value's "
                                       f"{value_shape[:2]}")
    if not separate and key_shape != value_shape:
        raise _error(ValueError, name, f"key shape {key_shape} does not match value shape {value_shape}")
    source = static_k.shape[1] if static_k is not None else key_shape[sequence_axis]
    if key_padding_mask is not None and tuple(key_padding_mask.shape) != (batch, source):
        raise _error(ValueError, name, f"expecting key_padding_mask shape of {(batch, source)}, but got "
                                       f"{tuple(key_padding_mask.shape)}")
    if attn_mask is None:
        return
    expected = {2: (target, source), 3: (batch * num_heads, target, source)}.get(attn_mask.ndim)
    if expected is None:
        raise _error(RuntimeError, name, f"attn_mask's dimension {attn_mask.ndim} is not supported")
    if tuple(attn_mask.shape) != expected:
        raise _error(RuntimeError, name, f"The shape of the {attn_mask.ndim}D attn_mask is {tuple(attn_mask.shape)}, "
                                         f"but should be {expected}.")


def multi_head_attention_forward(
        query: Array, key: Array, value: Array, embed_dim_to_check: int, num_heads: int,
        in_proj_weight: Array | None, in_proj_bias: Array | None, bias_k: Array | None, bias_v: Array | None,
        add_zero_attn: bool, dropout_p: float, out_proj_weight: Array, out_proj_bias: Array | None,
        training: bool = True, key_padding_mask: Array | None = None, need_weights: bool = True,
        attn_mask: Array | None = None, use_separate_proj_weight: bool = False, q_proj_weight: Array | None = None,
        k_proj_weight: Array | None = None, v_proj_weight: Array | None = None, static_k: Array | None = None,
        static_v: Array | None = None, average_attn_weights: bool = True, is_causal: bool = False,
        *, dropout_key: Array | None = None, batch_first: bool = False) -> tuple[Array, Array | None]:
    """``torch.nn.functional.multi_head_attention_forward`` on ``(L, N, E)`` (or unbatched
    ``(L, E)``) inputs, or ``(N, L, E)`` ones and output with ``batch_first`` (an xpnn keyword:
    ``MultiheadAttention(batch_first=True)``'s layout, taken without moving axes):
    in-projection (``in_proj_weight`` ``(3E, E)`` stacked q, k, v, or the
    separate ``q/k/v_proj_weight``), ``bias_k``/``bias_v`` appended to the keys,
    ``add_zero_attn``'s zero key, the masks (boolean True = *masked*, float added; a
    ``key_padding_mask`` ``(N, S)``), softmax(q k^T / sqrt(E/H) + mask) v per head, and the
    out-projection.  Returns ``(output, weights)``, the weights averaged over heads when
    ``average_attn_weights`` (None unless ``need_weights``).  ``is_causal`` is a hint that
    ``attn_mask`` is the causal mask (as in torch, the mask must be given)."""
    name = "multi_head_attention_forward"
    ops = _adapter(name, _ATTENTION_ARRAYS, query, key, value, in_proj_weight, in_proj_bias, out_proj_weight,
                   out_proj_bias, bias_k, bias_v, q_proj_weight, k_proj_weight, v_proj_weight, static_k, static_v,
                   key_padding_mask, attn_mask)
    xp = ops.xp
    packed = (query is key and key is value and not use_separate_proj_weight and static_k is None
              and static_v is None)  # self-attention: one product with the stacked weights, as torch does
    batched = query.ndim == 3
    batch_first = batch_first and batched
    if not batched:
        query, key, value = (xp.expand_dims(t, axis=1) for t in (query, key, value))
        if key_padding_mask is not None:
            key_padding_mask = xp.expand_dims(key_padding_mask, axis=0)
    sequence_axis = 1 if batch_first else 0
    target, batch, embed = (query.shape[1], query.shape[0], query.shape[2]) if batch_first else query.shape
    if embed != embed_dim_to_check:
        raise _error(ValueError, name, f"was expecting embedding dimension of {embed_dim_to_check}, but got {embed}")
    if embed % num_heads:
        raise _error(ValueError, name, f"embed_dim {embed} not divisible by num_heads {num_heads}")
    head = embed // num_heads
    if is_causal and attn_mask is None:
        raise _error(RuntimeError, name, "need attn_mask if specifying the is_causal hint (as torch)")
    _check_attention_shapes(name, key, value, static_k, key_padding_mask, attn_mask, use_separate_proj_weight,
                            (batch, num_heads, target), sequence_axis)
    if packed:
        projected = _linear(ops, query, in_proj_weight, in_proj_bias, name)
        q, k, v = (projected[..., i * embed:(i + 1) * embed] for i in range(3))
    else:
        if use_separate_proj_weight:
            weights = (q_proj_weight, k_proj_weight, v_proj_weight)
        else:
            weights = tuple(in_proj_weight[i * embed:(i + 1) * embed, :] for i in range(3))
        biases = (None, None, None) if in_proj_bias is None else tuple(in_proj_bias[i * embed:(i + 1) * embed]
                                                                     for i in range(3))
        q = _linear(ops, query, weights[0], biases[0], name)
        k = _linear(ops, key, weights[1], biases[1], name) if static_k is None else None
        v = _linear(ops, value, weights[2], biases[2], name) if static_v is None else None
    float_mask = _float_mask(xp, attn_mask, query.dtype, name)
    padding = _float_mask(xp, key_padding_mask, query.dtype, name)
    if bias_k is not None and bias_v is not None:
        # each appended key laid out over devices as the keys (jax's explicit mesh axes)
        appended = (batch, 1, embed) if batch_first else (1, batch, embed)
        k, v = (xp.concat([t, ops.placed_like(xp.broadcast_to(xp.reshape(b, (1, 1, embed)), appended), t)],
                          axis=sequence_axis) for t, b in ((k, bias_k), (v, bias_v)))
        float_mask = _padded_column(ops, float_mask)
        padding = _padded_column(ops, padding)
    dropping = training and dropout_p > 0
    explicit = need_weights or dropping  # the weights computed here, heads first: (N, H, S, head)
    positions = 2 if explicit else 1  # else jax.nn's attention, on (N, S, H, head)

    def heads(t: Array) -> Array:  # (S, N, E) or (N, S, E) -> (N, H, S, head) or (N, S, H, head)
        if batch_first:
            t = xp.reshape(t, (batch, t.shape[1], num_heads, head))
            return xp.permute_dims(t, (0, 2, 1, 3)) if explicit else t
        return xp.permute_dims(xp.reshape(t, (t.shape[0], batch, num_heads, head)),
                               (1, 2, 0, 3) if explicit else (1, 0, 2, 3))

    def given(t: Array) -> Array:  # torch's static_k/static_v (N * H, S, head) -> the layout above
        t = xp.reshape(t, (batch, num_heads, t.shape[1], head))
        return t if explicit else xp.permute_dims(t, (0, 2, 1, 3))

    q = heads(q)
    k = heads(k) if static_k is None else given(static_k)
    v = heads(v) if static_v is None else given(static_v)
    if add_zero_attn:
        shape = (batch, num_heads, 1, head) if explicit else (batch, 1, num_heads, head)
        zeros = ops.placed_like(xp.zeros(shape, dtype=k.dtype, device=ops.device_of(k)), k)
        k, v = xp.concat([k, zeros], axis=positions), xp.concat([v, zeros], axis=positions)
        float_mask = _padded_column(ops, float_mask)
        padding = _padded_column(ops, padding)
    source = k.shape[positions]
    mask = None  # added to the (N, H, L, S) logits
    if float_mask is not None:
        mask = (xp.reshape(float_mask, (batch, num_heads, target, source)) if float_mask.ndim == 3
                else xp.reshape(float_mask, (1, 1, target, source)))
    if padding is not None:
        pad = xp.reshape(padding, (batch, 1, 1, source))
        mask = pad if mask is None else mask + pad
    if explicit:
        # batched matmuls (torch's bmm): einsum's planning costs 7 to 14 us at batch 1
        logits = ops.matmul(q / math.sqrt(head), xp.matrix_transpose(k))
        if mask is not None:
            logits = logits + mask
        weights = xpnn.softmax(logits, axis=-1)
        used = dropout(weights, dropout_p, True, key=dropout_key) if dropping else weights
        out = xp.permute_dims(ops.matmul(used, v), (0, 2, 1, 3) if batch_first else (2, 0, 1, 3))
    else:
        weights = None
        bias = None if mask is None else xp.broadcast_to(mask, (batch, num_heads, target, source))
        out = xpnn.dot_product_attention.trusted(ops, q, k, v, bias=bias)  # (N, L, H, head)
        out = out if batch_first else xp.permute_dims(out, (1, 0, 2, 3))
    out = xp.reshape(out, (batch, target, embed) if batch_first else (target, batch, embed))
    out = _linear(ops, out, out_proj_weight, out_proj_bias, name)
    if weights is not None:
        if average_attn_weights:
            weights = xp.mean(weights, axis=1)
        if not batched:
            weights = weights[0, ...]
    if not batched:
        out = out[:, 0, :]
    return out, weights


def _float_mask(xp: Any, mask: Array | None, dtype: Any, function: str) -> Array | None:
    """A boolean mask (True: masked) as 0 / -inf; a float mask as it is."""
    if mask is None:
        return None
    if mask.dtype == xp.bool:
        return xp.where(mask, -math.inf, xp.zeros_like(mask, dtype=dtype))
    if not xp.isdtype(mask.dtype, "real floating"):
        raise _error(TypeError, function, f"masks must be boolean or floating, got dtype {mask.dtype}")
    return mask


def _padded_column(ops: Any, mask: Array | None) -> Array | None:
    """A mask with one more (unmasked) key column, for an appended key."""
    if mask is None:
        return None
    zeros = ops.xp.zeros((*mask.shape[:-1], 1), dtype=mask.dtype, device=ops.device_of(mask))
    return ops.xp.concat([mask, ops.placed_like(zeros, mask)], axis=-1)


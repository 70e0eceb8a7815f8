"""NumPy adapter: scipy's erf when SciPy is installed, and NumPy-native fast paths.

The fast paths use ufuncs with ``out=`` on fresh temporaries, the best plain
NumPy formulation of each function (no ``x**3``, no needless temporaries).
They only take real floating arrays; anything else goes to the written-once
definition.
"""
from __future__ import annotations

import concurrent.futures
import functools
import math
import os
from typing import Any

import numpy as np

from . import _fallback
from ._base import Adapter, FastPath, valid_axis

try:
    from scipy import special as _special
except ImportError:  # SciPy is optional: the standard-only erf takes over.
    _special = None

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_SQRT_HALF = math.sqrt(0.5)


def _floating(x: Any) -> bool:
    return isinstance(x, np.ndarray) and x.dtype.kind == "f"


def _special_float(x: Any) -> bool:
    """SciPy's ufuncs have float32 and float64 loops only."""
    return _special is not None and isinstance(x, np.ndarray) and x.dtype in (np.float32, np.float64)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _relu(x):
    return np.maximum(x, 0) if _floating(x) else NotImplemented


def _relu6(x):
    return np.clip(x, 0, 6) if _floating(x) else NotImplemented


def _hard_tanh(x):
    return np.clip(x, -1, 1) if _floating(x) else NotImplemented


def _leaky_relu(x, negative_slope=0.01):
    if not (_floating(x) and _number(negative_slope)):
        return NotImplemented
    out = np.multiply(x, negative_slope)
    return np.where(x >= 0, x, out)


def _softplus(x):
    return np.logaddexp(x, 0) if _floating(x) else NotImplemented


def _log_sigmoid(x):
    if not _floating(x):
        return NotImplemented
    out = np.logaddexp(np.negative(x), 0)
    return np.negative(out, out=out)


def _gelu(x, approximate=True):
    if not _floating(x):
        return NotImplemented
    if not approximate:
        if not _special_float(x):
            return NotImplemented
        out = np.multiply(x, -_SQRT_HALF)
        out = _special.erfc(out, out=out)
        out *= x
        out *= 0.5
        return out
    inner = np.multiply(x, x)
    inner *= x
    inner *= 0.044715
    inner += x
    inner *= _SQRT_2_OVER_PI
    np.tanh(inner, out=inner)
    inner += 1.0
    inner *= 0.5
    inner *= x
    return inner


def _sigmoid(x):
    return _special.expit(x) if _special_float(x) else NotImplemented


def _silu(x):
    if not _special_float(x):
        return NotImplemented
    out = _special.expit(x)
    out *= x
    return out


def _softmax(x, axis=-1, where=None):
    if not (_floating(x) and where is None and isinstance(axis, int) and valid_axis(axis, x.ndim) and x.size):
        return NotImplemented
    out = np.subtract(x, np.max(x, axis=axis, keepdims=True))
    np.exp(out, out=out)
    out /= np.sum(out, axis=axis, keepdims=True)
    return out


def _log_softmax(x, axis=-1, where=None):
    if not (_floating(x) and where is None and isinstance(axis, int) and valid_axis(axis, x.ndim) and x.size):
        return NotImplemented
    shifted = np.subtract(x, np.max(x, axis=axis, keepdims=True))
    total = np.exp(shifted)
    total = np.log(np.sum(total, axis=axis, keepdims=True))
    shifted -= total
    return shifted


@functools.cache
def _slice_pool() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))


def _polynomial(coefficients: tuple[float, ...], w: np.ndarray) -> np.ndarray:
    """Horner in float64 with ``_fallback.erf_inv_float32``'s roundings: to float32 before the last step."""
    p = np.full_like(w, coefficients[0])
    last = len(coefficients) - 2
    for step, c in enumerate(coefficients[1:]):
        if step == last:
            p = p.astype(np.float32).astype(np.float64)
        np.multiply(p, w, out=p)
        np.add(p, c, out=p)
    return p


def erf_inv_float32(x: np.ndarray) -> np.ndarray:
    """``_fallback.erf_inv_float32`` for NumPy arrays (the same operations, so the same bits)."""
    x = x.astype(np.float32, copy=False)
    edge = np.abs(x) == 1.0
    safe = np.where(edge, np.float32(0), x)
    w = np.negative(np.log1p(np.negative(safe * safe)))
    tail = w >= 5.0
    central_w = (w - np.float32(2.5)).astype(np.float64)
    p = _polynomial(_fallback._ERF_INV_CENTRAL, central_w)
    if tail.any():
        p[tail] = _polynomial(_fallback._ERF_INV_TAIL, (np.sqrt(w[tail]) - np.float32(3.0)).astype(np.float64))
    out = p.astype(np.float32) * x
    if edge.any():
        out[edge] = np.copysign(np.float32(np.inf), x[edge])
    return out


class NumpyAdapter(Adapter):
    name = "numpy"
    random_chunk = 1 << 16

    def map_slices(self, function, starts):
        """Slices of a random draw on all cores: NumPy's ufuncs release the GIL."""
        starts = list(starts)
        if len(starts) < 2:
            return [function(start) for start in starts]
        return list(_slice_pool().map(function, starts))

    def _fast_paths(self) -> dict[str, FastPath]:
        return {
            "relu": _relu,
            "relu6": _relu6,
            "hard_tanh": _hard_tanh,
            "leaky_relu": _leaky_relu,
            "softplus": _softplus,
            "log_sigmoid": _log_sigmoid,
            "gelu": _gelu,
            "sigmoid": _sigmoid,
            "silu": _silu,
            "swish": _silu,
            "tanh": lambda x: np.tanh(x) if _floating(x) else NotImplemented,
            "softmax": _softmax,
            "log_softmax": _log_softmax,
        }

    def erf_inv(self, x):
        """XLA's float32 ``ErfInv32`` as the standard-only version computes it, bit for bit,
        but with in-place ufuncs and the rare tail (``|x| > 0.9966``) done on its own elements
        instead of a select per coefficient: about twice as fast."""
        if x.dtype == np.float64:
            return super().erf_inv(x)
        return erf_inv_float32(x).astype(x.dtype, copy=False)

    def einsum(self, subscripts, *operands):
        """``np.einsum`` with contraction-order optimisation, so products go to BLAS."""
        return np.einsum(subscripts, *operands, optimize=True)

    def to_host(self, x):
        return x

    if _special is not None:

        def erf(self, x):
            return _special.erf(x).astype(x.dtype, copy=False)

        def erfc(self, x):
            return _special.erfc(x).astype(x.dtype, copy=False)


ADAPTER = NumpyAdapter

"""NumPy adapter: scipy's erf when SciPy is installed, NumPy-native fast paths
(``backends/_ufuncs.py``), a float32 ``erf_inv`` with in-place ufuncs, and
random draws sliced over a thread pool."""
from __future__ import annotations

import concurrent.futures
import functools
import os

import numpy as np

from . import _fallback
from ._base import Adapter, FastPath
from ._ufuncs import ufunc_fast_paths

try:
    from scipy import special as _special
except ImportError:  # SciPy is optional: the standard-only erf takes over.
    _special = None

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

    def random_chunk(self, device):
        return 1 << 16

    def map_slices(self, function, starts):
        """Slices of a random draw on all cores: NumPy's ufuncs release the GIL."""
        starts = list(starts)
        if len(starts) < 2:
            return [function(start) for start in starts]
        return list(_slice_pool().map(function, starts))

    def _fast_paths(self) -> dict[str, FastPath]:
        return ufunc_fast_paths(np, _special, masked_ufuncs=True)

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

"""CuPy adapter: ``cupyx.scipy.special`` for erf/erfc, NumPy-style ufunc fast paths
(``backends/_ufuncs.py``); arrays stay on their GPU."""
from __future__ import annotations

import cupy
from cupyx.scipy import special

from ._base import Adapter, FastPath
from ._ufuncs import ufunc_fast_paths


class CupyAdapter(Adapter):
    name = "cupy"

    def _fast_paths(self) -> dict[str, FastPath]:
        return ufunc_fast_paths(cupy, special, masked_ufuncs=False)

    def to_host(self, x):
        return x.get()

    def values_at_hand(self, x):
        """No: reading a CuPy array synchronises with the device."""
        return False

    def devices_known(self):
        return [cupy.cuda.Device(index) for index in range(cupy.cuda.runtime.getDeviceCount())]

    def device_kind(self, device):
        """A CuPy device is CUDA device ``id``."""
        if isinstance(device, cupy.cuda.Device):
            return "cuda", device.id
        return super().device_kind(device)

    def erf(self, x):
        """cupyx's erf, in ``x``'s dtype (its float16 loop returns float64)."""
        return special.erf(x).astype(x.dtype, copy=False)

    def erfc(self, x):
        return special.erfc(x).astype(x.dtype, copy=False)

    def lgamma(self, x):
        """cupyx's ``gammaln``, with C's +inf at -inf (as the NumPy adapter's)."""
        return cupy.where(cupy.isneginf(x), cupy.inf, special.gammaln(x)).astype(x.dtype, copy=False)


ADAPTER = CupyAdapter

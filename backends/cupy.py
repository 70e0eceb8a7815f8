"""CuPy adapter: ``cupyx.scipy.special`` for erf/erfc; arrays stay on their GPU."""
from __future__ import annotations

from ._base import Adapter


class CupyAdapter(Adapter):
    name = "cupy"

    def to_host(self, x):
        return x.get()

    def erf(self, x):
        from cupyx.scipy import special

        return special.erf(x)

    def erfc(self, x):
        from cupyx.scipy import special

        return special.erfc(x)


ADAPTER = CupyAdapter

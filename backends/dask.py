"""Dask adapter: primitives run blockwise with NumPy's, so graphs stay lazy."""
from __future__ import annotations

import array_api_compat.numpy as numpy_namespace

from . import numpy as numpy_backend
from ._base import Adapter

_NUMPY = numpy_backend.ADAPTER(numpy_namespace)


class DaskAdapter(Adapter):
    name = "dask"

    def dtype_named(self, name):
        """Dask arrays take NumPy's dtypes; its namespace lacks some (float16)."""
        return getattr(self.xp, name, None) or getattr(numpy_namespace, name, None)

    def to_host(self, x):
        """Leaving dask computes the graph: the one place xpnn does."""
        import numpy

        return numpy.asarray(x.compute())

    def erf(self, x):
        return x.map_blocks(_NUMPY.erf, dtype=x.dtype)

    def erfc(self, x):
        return x.map_blocks(_NUMPY.erfc, dtype=x.dtype)


ADAPTER = DaskAdapter

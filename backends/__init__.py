"""Backend adapters for xpnn.

An adapter says what one array library adds to the Array API standard: the
named primitives the standard lacks (``erf``, ``erfc``, ``stop_gradient``) and
optional native fast paths for whole public functions.  The base class
:class:`Adapter` holds the standard-only fallbacks, so any conforming library
works; a library with its own module here gets its native kernels.

Adding a backend is one file: subclass :class:`Adapter`, override what the
library has natively, and add a line to ``_ADAPTER_MODULES``.
"""
from __future__ import annotations

import importlib
from typing import Any

import array_api_compat

from ._base import Adapter, FastPath, dtype_name, is_number

__all__ = ["Adapter", "FastPath", "adapter_for_namespace", "dtype_name", "is_number"]

# array-api-compat's namespace test -> module defining ``ADAPTER`` for that library.
_ADAPTER_MODULES = (
    (array_api_compat.is_numpy_namespace, "numpy"),
    (array_api_compat.is_torch_namespace, "torch"),
    (array_api_compat.is_jax_namespace, "jax"),
    (array_api_compat.is_dask_namespace, "dask"),
    (array_api_compat.is_cupy_namespace, "cupy"),
    (array_api_compat.is_array_api_strict_namespace, "array_api_strict"),
)

_ADAPTERS: dict[int, Adapter] = {}


def adapter_for_namespace(xp: Any) -> Adapter:
    """The (cached) adapter for the array namespace ``xp``."""
    adapter = _ADAPTERS.get(id(xp))
    if adapter is None:
        adapter_class = Adapter
        for is_namespace, module in _ADAPTER_MODULES:
            if is_namespace(xp):
                adapter_class = importlib.import_module(f"{__name__}.{module}").ADAPTER
                break
        adapter = _ADAPTERS[id(xp)] = adapter_class(xp)
    return adapter

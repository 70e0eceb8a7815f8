"""Type names shared by the library's signatures."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: An array of any Array API library (numpy, cupy, jax, torch, dask, array-api-strict...).
Array = Any
#: An Array API namespace (``array_api_compat.array_namespace(x)``).
Namespace = Any
#: A dtype of any library, or its name (``"float32"``).
DType = Any
Shape = Sequence[int]

"""dtype promotion shared by layers: flax's ``promote_dtype``, written once."""
from __future__ import annotations

from typing import Any

from xpnn._checks import dtype_argument
from xpnn._types import Array, DType


def promote_dtype(adapter: Any, *arrays: Array | None, dtype: DType = None, where: str = "promote_dtype") -> list[Array | None]:
    """The arrays cast to the computation dtype: ``dtype``, or flax's promotion of their dtypes.

    Promotion follows jax (``flax.linen.dtypes.promote_dtype``): floats
    (complex ones included) promote among themselves, integers and bools give
    way to any float, so an int32 input with float32 params computes in
    float32, and a complex64 input with float32 params in complex64 (its
    imaginary part is never dropped).  ``None`` entries stay None; ``where``
    names the module in errors about ``dtype``.
    """
    present = [a for a in arrays if a is not None]
    if dtype is None:
        first = present[0].dtype
        for a in present:
            if a.dtype is not first and a.dtype != first:  # ``is`` first: NumPy's == costs 0.1 us
                break
        else:
            return list(arrays)
    xp = adapter.xp
    if dtype is not None:
        target = dtype_argument(adapter, dtype, "numeric", "float32", where)
    else:
        floats = [a.dtype for a in present if xp.isdtype(a.dtype, ("real floating", "complex floating"))]
        target = xp.result_type(*(floats or [a.dtype for a in present]))
    return [None if a is None else (a if a.dtype == target else xp.astype(a, target)) for a in arrays]

"""Standard-only implementations of the primitives the Array API standard lacks, by family.

Every function here takes the namespace ``xp`` first and uses nothing but the
standard, so any conforming array library (array-api-strict included) can run
them.  The adapters (``backends/_base.py``) call them where a library has no
native kernel.

* ``special``: ``erf``, ``erfc``, ``erf_inv``, XLA's float32 ``erf``, ``fma``, ``lgamma``;
* ``linalg``: reduced ``qr``, ``solve``;
* ``einsum``: ``einsum`` of one or two operands;
* ``windows``: ``conv_general_dilated``, ``reduce_window``;
* ``control``: ``scan``;
* ``indexing``: ``take_along_axis`` (for namespaces of standards before 2024.12).
"""
from .control import scan
from .einsum import einsum
from .indexing import take_along_axis
from .linalg import qr, solve
from .special import (
    _ERF_INV_CENTRAL, _ERF_INV_TAIL, erf, erf_float32_as_xla, erf_inv_float32, erf_inv_float64, erfc, erfc_by_erfcx,
    erfc_square_corrected, fma, lgamma,
)
from .windows import conv_general_dilated, reduce_window

__all__ = ["scan", "einsum", "qr", "solve", "erf", "erfc", "erfc_by_erfcx", "erfc_square_corrected",
           "erf_float32_as_xla", "erf_inv_float32", "erf_inv_float64", "fma", "lgamma", "conv_general_dilated",
           "reduce_window", "take_along_axis", "_ERF_INV_CENTRAL", "_ERF_INV_TAIL"]

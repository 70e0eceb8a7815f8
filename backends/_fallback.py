r"""Standard-only implementations of the primitives the Array API standard lacks.

Every function here takes the namespace ``xp`` first and uses nothing but the
standard, so any conforming array library (array-api-strict included) can run
them.  The backend adapters replace them with native kernels where the library
has one.

``erf`` and ``erfc`` are within 10 ulp in float64 and correctly rounded in
float32 on the test grid (checked against mpmath in ``tests/test_backends.py``):

* ``|x| < 2``: the everywhere-positive series
  :math:`\operatorname{erf}(x) = \frac{2}{\sqrt\pi} x e^{-x^2}
  \sum_{n\ge 0} \frac{(2x^2)^n}{(2n+1)!!}`, which has no cancellation;
* ``x >= 0.75`` for erfc and ``|x| >= 2`` for erf: the Laplace continued fraction
  :math:`\operatorname{erfc}(x) = \frac{e^{-x^2}}{\sqrt\pi}\,
  \cfrac{1}{x + \cfrac{1/2}{x + \cfrac{1}{x + \cfrac{3/2}{x + \dotsb}}}}`,
  evaluated backwards with a fixed number of terms;
* :math:`e^{-x^2}` is computed as :math:`e^{-h^2} e^{-(x-h)(x+h)}` with ``h``
  ``x`` rounded to a few bits, so that ``h*h`` is exact and the large argument
  carries no rounding error.

The work is done in float64 where the library offers it (one rounding at the
end for float32 and half-precision inputs), in float32 otherwise.
"""
from __future__ import annotations

import math
from typing import Any

Array = Any
Namespace = Any

# (series terms, continued-fraction terms, bits kept in h) per working precision.
_TERMS = {"float32": (30, 150, 6), "float64": (50, 300, 20)}
_SERIES_LIMIT = 2.0  # |x| below this: series for erf
_ERFC_CF_START = 0.75  # x at or above this: continued fraction for erfc
_ERFC_CF_LIMIT = 30.0  # erfc(30) underflows float64: larger x need no more work
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_ONE_OVER_SQRT_PI = 1.0 / math.sqrt(math.pi)


def _working_dtype(xp: Namespace):
    if "float64" in xp.__array_namespace_info__().dtypes(kind="real floating"):
        return xp.float64, "float64"
    return xp.float32, "float32"


def _exp_minus_square(xp: Namespace, x: Array, bits: int) -> Array:
    """``exp(-x*x)`` without the rounding error of ``x*x``."""
    scale = float(2**bits)
    h = xp.round(x * scale) / scale
    return xp.exp(-(h * h)) * xp.exp(-((x - h) * (x + h)))


def _erf_series(xp: Namespace, a: Array, terms: int, bits: int) -> Array:
    """erf(a) for |a| < 3 (a already clipped); odd in a, so erf(-0.0) is -0.0."""
    two_a2 = 2.0 * a * a
    term = xp.ones_like(a)
    total = xp.ones_like(a)
    for n in range(1, terms + 1):
        term = term * two_a2 / (2 * n + 1)
        total = total + term
    return _TWO_OVER_SQRT_PI * a * _exp_minus_square(xp, a, bits) * total


def _erfc_fraction(xp: Namespace, a: Array, terms: int, bits: int) -> Array:
    """erfc(a) for 1 <= a <= 30 (a already clipped: erfc(30) underflows float64)."""
    k = a
    for n in range(terms, 0, -1):
        k = a + (n / 2.0) / k
    return _ONE_OVER_SQRT_PI * _exp_minus_square(xp, a, bits) / k


def _parts(xp: Namespace, x: Array):
    dtype, name = _working_dtype(xp)
    series_terms, fraction_terms, bits = _TERMS[name]
    w = xp.astype(x, dtype)
    a = xp.abs(w)
    small = a < _SERIES_LIMIT
    series = _erf_series(xp, xp.where(small, w, 0.0), series_terms, bits)
    fraction = _erfc_fraction(
        xp, xp.clip(a, _ERFC_CF_START, _ERFC_CF_LIMIT), fraction_terms, bits
    )
    return w, a, small, series, fraction


def erf(xp: Namespace, x: Array) -> Array:
    """Error function :math:`\\frac{2}{\\sqrt\\pi}\\int_0^x e^{-t^2} dt`, standard-only."""
    w, a, small, series, fraction = _parts(xp, x)
    tail = xp.where(w < 0, fraction - 1.0, 1.0 - fraction)
    out = xp.where(small, series, tail)
    return xp.astype(xp.where(xp.isnan(w), w, out), x.dtype)


def erfc(xp: Namespace, x: Array) -> Array:
    """Complementary error function ``1 - erf(x)``, standard-only and accurate in the tail."""
    w, a, small, series, fraction = _parts(xp, x)
    upper = xp.where(a >= _ERFC_CF_START, fraction, 1.0 - xp.abs(series))
    out = xp.where(w < 0, 2.0 - upper, upper)
    return xp.astype(xp.where(xp.isnan(w), w, out), x.dtype)

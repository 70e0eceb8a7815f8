r"""Special functions, standard-only: ``erf``, ``erfc``, ``erf_inv`` and XLA's float32 forms, ``fma``.

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
import struct
from collections.abc import Callable

import array_api_compat

from xpnn._types import Array, Namespace

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


def _coarse(xp: Namespace, x: Array, bits: int) -> Array:
    """``x`` rounded to ``bits`` bits after the point, so that its square is exact: x^2 is then
    h*h + (x - h)(x + h) with the second term small."""
    scale = float(2**bits)
    return xp.round(x * scale) / scale


def _exp_minus_square(xp: Namespace, x: Array, bits: int) -> Array:
    """``exp(-x*x)`` without the rounding error of ``x*x``."""
    h = _coarse(xp, x, bits)
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


def _tail(xp: Namespace, x: Array) -> tuple[Array, int]:
    """erfc's tail argument: ``x`` clipped to [1, 40] (erfc underflows long before, and no
    inf - inf reaches ``_coarse``), and the bits ``_coarse`` keeps for ``x``'s dtype."""
    bits = _TERMS["float64" if x.dtype.itemsize >= 8 else "float32"][2]
    return xp.clip(x, 1.0, _ERFC_CF_LIMIT + 10.0), bits


def erfc_by_erfcx(xp: Namespace, x: Array, erfc: Callable[[Array], Array],
                  erfcx: Callable[[Array], Array]) -> Array:
    """``erfc(x)`` accurate in the tail from a library's ``erfc`` and scaled ``erfcx``
    (``exp(x^2) erfc(x)``): from x = 1 on, ``erfcx(x) e^(-x^2)`` with the square carrying no
    rounding error.  SciPy's ``erfc`` (Cephes') computes ``e^(-x*x)`` from the rounded square,
    which is 500 ulp off near x = 25 in float64; its ``erfcx`` is not."""
    a, bits = _tail(xp, x)
    return xp.where(x >= 1.0, erfcx(a) * _exp_minus_square(xp, a, bits), erfc(x))


def erfc_square_corrected(xp: Namespace, x: Array, erfc: Callable[[Array], Array]) -> Array:
    """``erfc(x)`` of a kernel that forms ``e^(-x*x)`` from the rounded square (XLA's, as Cephes
    does, from x = 1 on: 500 ulp off near x = 25 in float64), times ``e^(-d) ~ 1 - d`` for the
    square's rounding error ``d = x^2 - fl(x*x)``, computed exactly as in ``_exp_minus_square``."""
    a, bits = _tail(xp, x)
    h = _coarse(xp, a, bits)
    square_error = (h * h - a * a) + (a - h) * (a + h)
    kernel = erfc(x)
    return xp.where(x >= 1.0, kernel * (1.0 - square_error), kernel)


def _as_float32(value: float) -> float:
    """``value`` rounded to the nearest float32 (the constants of a float32 kernel)."""
    return struct.unpack("f", struct.pack("f", value))[0]


# XLA's float32 erf on the CPU (Eigen's rational interpolant): x * P(x^2) / Q(x^2), with
# P and Q evaluated by fused multiply-adds, and +-1 from |x| >= _ERF_XLA_ONE on.
_ERF_XLA_NUMERATOR = tuple(map(_as_float32, (
    0.00022905065861350646, 0.0034082910107109506, 0.050955695062380861, 0.18520832239976145,
    1.128379143519084)))
_ERF_XLA_DENOMINATOR = tuple(map(_as_float32, (
    -1.1791602954361697e-7, 0.000023547966471313185, 0.0010179625278914885, 0.014070470171167667,
    0.11098505178285362, 0.49746925110067538, 1.0)))
_ERF_XLA_ONE = _as_float32(3.832506856900711)


def erf_float32_as_xla(xp: Namespace, x: Array, fma: Callable[[Array, Array, Array], Array]) -> Array:
    """``erf(x)`` in float32 rounded exactly as XLA's CPU kernel (jax.lax.erf) rounds it, given a
    fused multiply-add ``fma``: the samplers that must give jax.random's numbers
    (truncated_normal's bounds) need its bits, not a better erf.  Bit for bit equal to
    jax.lax.erf on every float32 tested (400,000 over [-5, 5])."""
    x = xp.astype(x, xp.float32)
    x2 = x * x

    def horner(coefficients: tuple[float, ...]) -> Array:
        value = xp.full_like(x2, coefficients[0])
        for coefficient in coefficients[1:]:
            value = fma(x2, value, xp.full_like(x2, coefficient))
        return value

    ratio = (x * horner(_ERF_XLA_NUMERATOR)) / horner(_ERF_XLA_DENOMINATOR)
    return xp.where(xp.abs(x) >= _ERF_XLA_ONE, xp.copysign(xp.ones_like(x), x), ratio)


# Giles, "Approximating the erfinv function" (GPU Computing Gems, 2011),
# single precision: the polynomials of XLA's ErfInv32, highest degree first.
_ERF_INV_CENTRAL = tuple(map(_as_float32, (
    2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 2.1858087e-04,
    -1.25372503e-03, -4.17768164e-03, 0.246640727, 1.50140941,
)))
_ERF_INV_TAIL = tuple(map(_as_float32, (
    -2.00214257e-04, 1.00950558e-04, 1.34934322e-03, -3.67342844e-03, 5.73950773e-03,
    -7.6224613e-03, 9.43887047e-03, 1.00167406, 2.83297682,
)))


def erf_inv_float32(xp: Namespace, x: Array) -> Array:
    """Inverse error function in float32, equal to XLA's ``ErfInv32`` (jax.lax.erf_inv).

    ``w = -log1p(-x*x)``; for ``w < 5`` a degree-8 polynomial in ``w - 2.5``,
    otherwise one in ``sqrt(w) - 3``; the result is ``p(w) * x`` and
    ``erf_inv(+-1) = +-inf``.  XLA evaluates the polynomial in float32 with
    fused multiply-adds.  Here it runs in float64 (where the library has it)
    and is rounded to float32 before the last step and at the end: on a
    million uniform inputs 98.9% of the results equal XLA's bit for bit and
    none is more than 2 ulp away (the rest comes from ``log1p``, which
    differs between libraries by an ulp).  ``x`` is float32 or a narrower
    float; the result is float32.
    """
    x = xp.astype(x, xp.float32)
    wide, _ = _working_dtype(xp)
    edge = xp.abs(x) == 1.0
    safe = xp.where(edge, xp.zeros_like(x), x)
    w = -xp.log1p(-(safe * safe))
    central = w < 5.0
    w = xp.astype(xp.where(central, w - 2.5, xp.sqrt(w) - 3.0), wide)
    device = array_api_compat.device(x)
    p = xp.where(central, xp.asarray(_ERF_INV_CENTRAL[0], dtype=wide, device=device), _ERF_INV_TAIL[0])
    last = len(_ERF_INV_CENTRAL) - 2
    for step, (central_c, tail_c) in enumerate(zip(_ERF_INV_CENTRAL[1:], _ERF_INV_TAIL[1:])):
        if step == last:
            p = xp.astype(xp.astype(p, xp.float32), wide)
        p = p * w + xp.where(central, xp.asarray(central_c, dtype=wide, device=device), tail_c)
    p = xp.astype(p, xp.float32)
    return xp.where(edge, xp.copysign(xp.full_like(x, math.inf), x), p * x)


def erf_inv_float64(xp: Namespace, x: Array, erf, erfc) -> Array:
    """Inverse error function in float64: the float32 estimate polished by Newton steps.

    For ``|x| <= 0.5``, Newton on ``erf(y) = |x|``; above, Newton on
    ``log(erfc(y)) = log(1 - |x|)`` (``1 - |x|`` is exact there, and the
    logarithm is nearly quadratic in the tail).  The start is the float32
    estimate, or the tail asymptote where ``1 - |x| < 1e-4``; three steps
    reach float64's rounding level, with the library's ``erf``/``erfc``
    (within 2 ulp of mpmath in ``tests/test_backends.py``).
    """
    a = xp.abs(x)
    finite = a < 1.0
    central = a <= 0.5
    # Near 1, float32 cannot hold 1 - |x|: start from the tail asymptote
    # erfc(y) ~ exp(-y*y) / (y sqrt(pi)), i.e. y*y ~ t - log(pi t)/2, t = -log(1 - |x|).
    far = finite & (1.0 - a < 1e-4)
    t = -xp.log(xp.where(far, 1.0 - a, 0.5))
    asymptote = xp.sqrt(t - 0.5 * xp.log(math.pi * t))
    estimate = xp.astype(erf_inv_float32(xp, xp.astype(xp.where(far | ~finite, 0.0, a), xp.float32)), xp.float64)
    estimate = xp.where(far, asymptote, estimate)
    y = xp.where(finite, estimate, 0.0)
    log_complement = xp.log(xp.where(central | ~finite, 0.5, 1.0 - a))
    for _ in range(3):
        slope = _TWO_OVER_SQRT_PI * xp.exp(-(y * y))
        tail = erfc(y)
        step = xp.where(
            central,
            (erf(y) - a) / slope,
            (log_complement - xp.log(tail)) * tail / slope,
        )
        y = y - step
    y = xp.where(finite, y, xp.where(a == 1.0, xp.full_like(a, math.inf), math.nan))
    return xp.copysign(y, x)


def _two_product(xp: Namespace, a: Array, b: Array) -> tuple[Array, Array]:
    """``(p, e)`` with ``p = fl(a*b)`` and ``p + e == a*b`` exactly (Dekker/Veltkamp splitting)."""
    split = 134217729.0  # 2**27 + 1
    p = a * b
    a_big = split * a
    a_hi = a_big - (a_big - a)
    a_lo = a - a_hi
    b_big = split * b
    b_hi = b_big - (b_big - b)
    b_lo = b - b_hi
    e = ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo
    return p, e


def fma(xp: Namespace, a: Array, b: Array, c: Array) -> Array:
    """``a * b + c`` with one rounding (a fused multiply-add), standard-only.

    Below float64 the float64 product is exact, so it is one float64 sum
    rounded to the dtype (where the library has float64).  In float64 the
    product is split exactly (Dekker) and the sum compensated (Knuth's
    TwoSum), which rounds as a fused operation except in rare double-rounding
    ties.
    """
    wide, _ = _working_dtype(xp)
    if a.dtype != xp.float64 and wide == xp.float64:
        return xp.astype(xp.astype(a, wide) * xp.astype(b, wide) + xp.astype(c, wide), a.dtype)
    if a.dtype != xp.float64:
        return a * b + c
    p, e = _two_product(xp, a, b)
    s = p + c
    v = s - p
    s_error = (p - (s - v)) + (c - v)
    return s + (s_error + e)


#: Lanczos' approximation with g = 7 and 9 terms (Godfrey's coefficients), about 1e-15 relative.
_LANCZOS_G = 7.0
_LANCZOS = (0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
            -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
            1.5056327351493116e-7)


def lgamma(xp: Namespace, x: Array) -> Array:
    """``log|Gamma(x)|``, computed in float64 where the library has it and rounded once.

    For ``x >= 1/2``, with ``z = x - 1`` and ``t = z + g + 1/2``: ``log(2 pi) / 2 + (z + 1/2)
    log(t) - t + log(c0 + sum_i c_i / (z + i))`` (Lanczos, g = 7, 9 terms); below, the
    reflection ``log(pi) - log|sin(pi x)| - lgamma(1 - x)``, the sine taken of the fractional
    part folded into [0, 1/2] (exactly 0 at the poles, the non-positive integers: +inf there).
    """
    wide, _ = _working_dtype(xp)
    w = xp.astype(x, wide)
    reflect = w < 0.5
    z = xp.where(reflect, -w, w - 1)
    series = xp.full_like(z, _LANCZOS[0])
    for i, coefficient in enumerate(_LANCZOS[1:], start=1):
        series = series + coefficient / (z + i)
    t = z + (_LANCZOS_G + 0.5)
    log_gamma = 0.5 * math.log(2 * math.pi) + (z + 0.5) * xp.log(t) - t + xp.log(series)
    fraction = xp.abs(w) - xp.floor(xp.abs(w))
    log_sine = xp.log(xp.sin(math.pi * xp.where(fraction > 0.5, 1 - fraction, fraction)))
    reflected = xp.where(xp.isfinite(log_sine), math.log(math.pi) - log_sine - log_gamma, -log_sine)
    out = xp.where(xp.isinf(w), xp.full_like(w, math.inf), xp.where(reflect, reflected, log_gamma))
    return xp.astype(out, x.dtype)

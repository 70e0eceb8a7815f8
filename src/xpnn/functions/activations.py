r"""Elementwise activations of ``jax.nn`` (and ``flax.linen``), written once.

Each function takes an array of any Array API library and returns an array of
the same library, device and floating dtype.  Names, signatures, defaults,
values at edge points and gradients at kinks follow ``jax.nn`` (jax 0.10):
integer inputs are promoted to the library's default float except where jax
keeps them (``relu``, ``hard_tanh``) or refuses them (``sigmoid``, ``silu``).
Branches use ``where`` with safe operands so that the unselected branch never
puts a NaN into a gradient.
"""
from __future__ import annotations

import functools
import math
from decimal import Decimal, localcontext
from typing import Any

from xpnn._checks import device_of, floating, normalize_axis, numeric, require_floating, rounded_to, widened
from xpnn._dispatch import Argument, public
from xpnn._errors import refuse
from xpnn._types import Array
from xpnn.backends import Adapter

__all__ = [
    "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "swish",
    "mish", "hard_silu", "hard_swish", "squareplus", "sigmoid", "hard_sigmoid",
    "log_sigmoid", "soft_sign", "tanh", "hard_tanh", "softplus", "sparse_plus",
    "sparse_sigmoid", "log1mexp", "glu",
]

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_SELU_SCALE_ALPHA = _SELU_SCALE * _SELU_ALPHA
_GELU_SCALE = 2.0 * math.sqrt(2.0 / math.pi)
_SQRT_HALF = math.sqrt(0.5)
#: 1/sqrt(2) to 40 digits: gelu's exact form scales by it, and its rounding to float64 alone moves
#: erfc by 200 ulp near x = -20.
_SQRT_HALF_DIGITS = Decimal("0.7071067811865475244008443621048490392848")
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
#: Beyond this |x| no floating type's gelu needs a corrected erfc argument (erfc(45) underflows),
#: and splitting x stays far from overflow.
_SPLIT_LIMIT = 64.0
_LOG_2 = math.log(2.0)


@public(traits=("elementwise",))
def relu(ops: Adapter, x: Array) -> Array:
    r"""Rectified linear unit, max(x, 0).

    Matches ``jax.nn.relu``: integer dtypes are kept, ``relu(-0.0)`` is
    ``+0.0``, NaN propagates, and the gradient at 0 is 0.
    """
    xp = ops.xp
    x = numeric(xp, x)
    return xp.where(x <= 0, 0, x)


@public(traits=("elementwise",))
def relu6(ops: Adapter, x: Array) -> Array:
    r"""ReLU capped at 6, min(max(x, 0), 6).

    Matches ``jax.nn.relu6``; the gradient is 0 at both kinks (0 and 6).
    """
    xp = ops.xp
    x = floating(ops, x)
    return xp.where(x <= 0, 0.0, xp.where(x >= 6, 6.0, x))


@public(traits=("elementwise",))
def leaky_relu(ops: Adapter, x: Array, negative_slope: Array | float = 1e-2) -> Array:
    r"""Leaky ReLU, x if x >= 0 else alpha x.

    Matches ``jax.nn.leaky_relu``; ``negative_slope`` may be an array that
    broadcasts against ``x``; the gradient at 0 is 1.
    """
    xp = ops.xp
    x = floating(ops, x)
    return xp.where(x >= 0, x, negative_slope * x)


@public(traits=("elementwise",))
def elu(ops: Adapter, x: Array, alpha: Array | float = 1.0) -> Array:
    r"""Exponential linear unit, x if x > 0 else alpha(e^x - 1).

    Matches ``jax.nn.elu`` (uses ``expm1``; the gradient at 0 is ``alpha``).
    """
    xp = ops.xp
    x = floating(ops, x)
    positive = x > 0
    return xp.where(positive, x, alpha * xp.expm1(xp.where(positive, 0.0, x)))


@public(traits=("elementwise",))
def selu(ops: Adapter, x: Array) -> Array:
    r"""Scaled ELU, lambda elu(x, alpha) with the self-normalizing constants.

    Matches ``jax.nn.selu`` and ``torch.nn.SELU``
    (alpha ~ 1.6733, lambda ~ 1.0507).
    """
    xp = ops.xp
    x = floating(ops, x)
    # scale * alpha as one constant: one rounding fewer on the negative side than jax.nn's
    # scale * (alpha * expm1(x)) (2.5 ulp there in float32, against 1.5).
    positive = x > 0
    return xp.where(positive, _SELU_SCALE * x, _SELU_SCALE_ALPHA * xp.expm1(xp.where(positive, 0.0, x)))


@public(traits=("elementwise",))
def celu(ops: Adapter, x: Array, alpha: Array | float = 1.0) -> Array:
    r"""Continuously differentiable ELU, max(x,0) + alpha expm1(min(x,0)/alpha).

    Matches ``jax.nn.celu`` (``celu(-0.0)`` is ``+0.0``; ``alpha=0`` gives NaN
    for positive and 0 for negative inputs, as jax does).
    """
    xp = ops.xp
    x = floating(ops, x)
    # The standard leaves the sign of maximum(-0.0, +0.0) to the library (NumPy's float16
    # loop gives -0.0); adding +0.0 makes the positive part +0.0 there, so celu(-0.0) = +0.0.
    return (xp.maximum(x, 0.0) + 0.0) + alpha * xp.expm1(xp.minimum(x, 0.0) / alpha)


_APPROXIMATE = Argument(1, "approximate", True)


def _approximate_checked_before_dispatch(ops: Adapter, x: Array, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """``approximate`` must be a bool: a string such as torch's ``'none'`` is truthy and would
    silently select the tanh approximation."""
    approximate = _APPROXIMATE.get(args, kwargs)
    if isinstance(approximate, str) or approximate is None:
        raise refuse(ValueError, f"approximate must be True or False, got {approximate!r} (torch's 'none'/'tanh' "
                                 "strings belong to xpnn.torch_nn.functional.gelu)")
    return args, kwargs


@public(static=("approximate",), probes=(((), {}), ((), {"approximate": False})), traits=("elementwise",),
        validate=_approximate_checked_before_dispatch)
def gelu(ops: Adapter, x: Array, approximate: bool = True) -> Array:
    r"""Gaussian error linear unit.

    ``approximate=True`` (the default, as in ``jax.nn.gelu``):
    x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))),
    computed in the stable form x sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3))
    (``1 + tanh(u)`` is ``2 sigmoid(2u)``): jax.nn's ``1 + tanh`` cancels for negative x
    (1.7e7 ulp off in float32 below -4), this form does not.  The argument's rounding,
    which sigmoid amplifies |2u| times, stays: 105 ulp near x = -10 in float32, 1300 near
    -17 in float64 (carrying it exactly would cost NumPy 16x in float64, and computing
    float32 in float64 4x).
    ``approximate=False``: x/2 erfc(-x/sqrt(2)), exact and
    accurate in the negative tail: narrower floats are computed in float64, and
    float64 keeps the rounding error of -x/sqrt(2), which erfc would amplify 400
    times near x = -20 (``_erfc_of_minus_x_over_sqrt2``).  (``torch.nn.GELU``
    defaults to the exact form: pass ``approximate=False`` for torch's default.)
    """
    xp = ops.xp
    x = floating(ops, x)
    if approximate:
        return x * _stable_sigmoid(xp, _GELU_SCALE * (x + 0.044715 * (x * x * x)))
    wide = widened(ops, x)  # erfc of the tail is subnormal in float32 near x = -13: compute wide
    if wide.dtype != x.dtype:  # float64's rounding of -x/sqrt(2) is invisible in the result
        return rounded_to(xp, 0.5 * wide * ops.erfc(-wide * _SQRT_HALF), x.dtype)
    return 0.5 * x * _erfc_of_minus_x_over_sqrt2(ops, x)


# Dekker's exact products, for the exact gelu's argument: a float of p bits is split into two
# halves of at most p - ceil(p/2) bits each (``_split``), whose products with a constant's high
# half are exact.  Constants are held in two parts: a high half and the rest, from 40 digits.

def _splitter(dtype: Any, xp: Any) -> float:
    """Veltkamp's splitting factor 2^ceil(p/2) + 1 for ``dtype``'s p-bit significand."""
    precision = 1 - round(math.log2(xp.finfo(dtype).eps))
    return 2.0 ** ((precision + 1) // 2) + 1.0


@functools.lru_cache(maxsize=None)
def _constant_parts(value: Decimal, splitter: float) -> tuple[float, float]:
    """A positive ``value`` as (high, low): ``high`` cut to the splitter's ceil(p/2) significant
    bits (its products with a split half are exact), ``low`` the rest from 40 digits, rounded (its
    own rounding is below the result's precision)."""
    bits = round(math.log2(splitter - 1.0))
    mantissa, exponent = math.frexp(float(value))
    high = math.ldexp(math.floor(math.ldexp(mantissa, bits)), exponent - bits)
    with localcontext() as context:
        context.prec = 40
        return high, float(value - Decimal(high))


def _split(a: Array, splitter: float) -> tuple[Array, Array]:
    """``a`` as high + low halves, exactly (Veltkamp's split)."""
    scaled = splitter * a
    high = scaled - (scaled - a)
    return high, a - high


def _times_constant(a: Array, value: Decimal, splitter: float) -> tuple[Array, Array]:
    """``a`` times the exact ``value`` as (exact, rest): the product of the high halves, which
    has no rounding, and the other three partial products, summed (their rounding is below the
    result's precision)."""
    high, low = _constant_parts(value, splitter)
    a_high, a_low = _split(a, splitter)
    return a_high * high, a_high * low + a_low * high + a_low * low


def _two_sum(a: Array, b: Array) -> tuple[Array, Array]:
    """``a + b`` as (rounded, error), the error exact (Knuth's two-sum)."""
    total = a + b
    b_part = total - a
    return total, (a - (total - b_part)) + (b - b_part)


def _erfc_of_minus_x_over_sqrt2(ops: Adapter, x: Array) -> Array:
    """erfc(-x / sqrt(2)) in ``x``'s dtype with the argument's rounding taken back.

    erfc's relative slope at z is 2z e^(-z^2) / (sqrt(pi) erfc(z)), about 2z^2 in the
    tail, so z's half-ulp rounding costs 400 ulp of erfc near x = -20 in float64.  z is
    therefore kept as a rounded part and its error (Dekker's exact product of x with
    1/sqrt(2) held in two parts), and erfc(z - e) = erfc(z) + e 2/sqrt(pi) e^(-z^2).
    """
    xp = ops.xp
    clipped = xp.minimum(xp.maximum(x, -_SPLIT_LIMIT), _SPLIT_LIMIT)  # erfc is 0 or 2 beyond: the same
    scaled, error = _two_sum(*_times_constant(clipped, _SQRT_HALF_DIGITS, _splitter(x.dtype, xp)))
    z = -scaled  # -x/sqrt(2) is z - error
    return ops.erfc(z) + error * _TWO_OVER_SQRT_PI * xp.exp(-(z * z))


def _stable_sigmoid(xp: Any, t: Array) -> Array:
    """``sigmoid(t)`` as ``exp(min(t, 0)) / (exp(min(t, 0)) + exp(min(-t, 0)))``: no exponential
    overflows (so no inf reaches a gradient), nothing cancels, and no select is needed."""
    low = xp.exp(xp.minimum(t, 0.0))
    return low / (low + xp.exp(xp.minimum(-t, 0.0)))


@public(traits=("elementwise",))
def sigmoid(ops: Adapter, x: Array) -> Array:
    r"""Logistic sigmoid, 1 / (1 + exp(-x)).

    Matches ``jax.nn.sigmoid``; integer input raises ``TypeError`` as in jax.
    The form never overflows: ``exp(-x)`` may become ``inf`` and ``1/inf`` is 0.
    Narrower floats are computed in float64 where the library has it and rounded
    once (its three roundings come to 2.3 ulp in float32).
    """
    xp = ops.xp
    x = require_floating(xp, x)
    wide = widened(ops, x)
    return rounded_to(xp, 1.0 / (1.0 + xp.exp(-wide)), x.dtype)


@public(traits=("elementwise",))
def silu(ops: Adapter, x: Array) -> Array:
    r"""Sigmoid linear unit (swish), x sigmoid(x). Matches ``jax.nn.silu``.

    Computed as ``sigmoid``, in float64 for narrower floats where the library has it.
    """
    xp = ops.xp
    x = require_floating(xp, x)
    wide = widened(ops, x)
    return rounded_to(xp, wide / (1.0 + xp.exp(-wide)), x.dtype)


swish = silu


@public(traits=("elementwise",))
def mish(ops: Adapter, x: Array) -> Array:
    r"""Mish, x tanh(softplus(x)). Matches ``jax.nn.mish``.

    Narrower floats are computed in float64 where the library has it and rounded once
    (its four roundings come to 2.2 ulp in float32).
    """
    xp = ops.xp
    x = floating(ops, x)
    wide = widened(ops, x)
    return rounded_to(xp, wide * xp.tanh(softplus.written_once(ops, wide)), x.dtype)


@public(traits=("elementwise",))
def hard_sigmoid(ops: Adapter, x: Array) -> Array:
    r"""Hard sigmoid, relu6(x + 3) / 6. Matches ``jax.nn.hard_sigmoid``."""
    x = floating(ops, x)
    return relu6.written_once(ops, x + 3.0) / 6.0


@public(traits=("elementwise",))
def hard_silu(ops: Adapter, x: Array) -> Array:
    r"""Hard SiLU (hard swish), x relu6(x + 3) / 6. Matches ``jax.nn.hard_silu``."""
    x = floating(ops, x)
    return x * hard_sigmoid.written_once(ops, x)


hard_swish = hard_silu


@public(traits=("elementwise",))
def squareplus(ops: Adapter, x: Array, b: Array | float = 4) -> Array:
    r"""Squareplus, (x + sqrt(x^2 + b)) / 2. Matches ``jax.nn.squareplus``.

    Stable form: sqrt(x^2 + b) as ``hypot(x, sqrt(b))`` (no overflow of
    x^2), and for negative x the equal b / (2(sqrt(x^2 + b) - x)), which
    does not cancel (jax.nn's form is 850 ulp off at x = -55, b = 2.5 in float32).
    With a number ``b``, narrower floats are computed in float64 where the library has
    it and rounded once (near x = 0 the quotient's roundings come to 2.6 ulp in float32).
    ``squareplus(-inf)`` is NaN, as in jax.nn.
    """
    xp = ops.xp
    x = floating(ops, x)
    if isinstance(b, (int, float)):
        wide = widened(ops, x)
        root_b = xp.asarray(math.sqrt(b) if b >= 0 else math.nan, dtype=wide.dtype, device=device_of(x))
    else:
        wide, root_b = x, xp.sqrt(b)
    positive = wide >= 0
    x_positive = xp.where(positive, wide, 0.0)  # safe operands: neither branch divides by 0
    x_negative = xp.where(positive, -1.0, wide)
    above = (x_positive + xp.hypot(x_positive, root_b)) / 2
    root = xp.hypot(x_negative, root_b)
    below = b / (2 * (root - x_negative))
    # b = inf: inf / inf in the stable form, where jax's (x + sqrt(x^2 + b)) / 2 is inf.
    below = xp.where(root == math.inf, (x_negative + root) / 2, below)
    out = xp.where(positive, above, xp.where(wide == -math.inf, math.nan, below))
    return rounded_to(xp, out, x.dtype) if wide is not x else out


@public(traits=("elementwise",))
def log_sigmoid(ops: Adapter, x: Array) -> Array:
    r"""Log-sigmoid, -softplus(-x), stable for large ``|x|``. Matches ``jax.nn.log_sigmoid``."""
    xp = ops.xp
    if xp.isdtype(x.dtype, "bool"):
        raise refuse(TypeError, f"x must have a numeric dtype, got {x.dtype}")
    x = floating(ops, x)
    return -softplus.written_once(ops, -x)


@public(traits=("elementwise",))
def soft_sign(ops: Adapter, x: Array) -> Array:
    r"""Soft-sign, x / (|x| + 1). Matches ``jax.nn.soft_sign``."""
    xp = ops.xp
    x = floating(ops, x)
    return x / (xp.abs(x) + 1.0)


@public(traits=("elementwise",))
def tanh(ops: Adapter, x: Array, /) -> Array:
    r"""Hyperbolic tangent. Matches ``jax.nn.tanh`` (which is ``jax.numpy.tanh``)."""
    xp = ops.xp
    return xp.tanh(floating(ops, x))


@public(traits=("elementwise",))
def hard_tanh(ops: Adapter, x: Array) -> Array:
    r"""Hard tanh, clip(x, -1, 1).

    Matches ``jax.nn.hard_tanh``: integer dtypes are kept and the gradient at
    +-1 is 1 (torch's ``Hardtanh`` gives 0 there).  Unsigned integers are
    clipped to ``[0, 1]`` (jax.nn's ``-1`` wraps to 255 for uint8 and sends 0 there).
    """
    xp = ops.xp
    x = numeric(xp, x)
    if xp.isdtype(x.dtype, "unsigned integer"):  # -1 would wrap to the dtype's max (jax.nn's bug)
        return xp.where(x > 1, 1, x)
    return xp.where(x > 1, 1, xp.where(x < -1, -1, x))


@public(traits=("elementwise",))
def softplus(ops: Adapter, x: Array) -> Array:
    r"""Softplus, log(1 + e^x), as ``logaddexp(x, 0)``: exact, no overflow.

    Matches ``jax.nn.softplus`` (no threshold: torch's ``Softplus`` turns
    linear above 20).
    """
    xp = ops.xp
    x = floating(ops, x)
    return xp.logaddexp(x, 0.0)


@public(traits=("elementwise",))
def sparse_plus(ops: Adapter, x: Array) -> Array:
    r"""Sparse plus: 0 for x <= -1, x for x >= 1, (x+1)^2/4 between.

    Matches ``jax.nn.sparse_plus`` (one argument).
    """
    xp = ops.xp
    x = floating(ops, x)
    return xp.where(x <= -1.0, 0.0, xp.where(x >= 1.0, x, (x + 1.0) * (x + 1.0) / 4))


@public(traits=("elementwise",))
def sparse_sigmoid(ops: Adapter, x: Array) -> Array:
    r"""Sparse sigmoid, 1/2 clip(x + 1, 0, 2), the derivative of ``sparse_plus``.

    Matches ``jax.nn.sparse_sigmoid``, including its gradient of 0.25 at
    +-1 (the clip's tie is split between its branches).
    """
    xp = ops.xp
    x = floating(ops, x)
    return 0.5 * xp.minimum(xp.maximum(x + 1.0, 0.0), 2.0)


@public(traits=("elementwise",))
def log1mexp(ops: Adapter, x: Array) -> Array:
    r"""Stable log(1 - exp(-x)) for x >= 0.

    Matches ``jax.nn.log1mexp``: ``log(-expm1(-x))`` below log 2,
    ``log1p(-exp(-x))`` above; ``log1mexp(0)`` is ``-inf`` and negative ``x``
    gives NaN.  The gradient is 1/expm1(x).
    """
    xp = ops.xp
    if xp.isdtype(x.dtype, "bool"):
        raise refuse(TypeError, f"x must have a numeric dtype, got {x.dtype}")
    x = floating(ops, x)
    wide = widened(ops, x)  # computed wide where the library can, and rounded once
    small = wide < _LOG_2
    near_zero = xp.log(-xp.expm1(-xp.where(small, wide, 1.0)))
    far = xp.log1p(-xp.exp(-xp.where(small, 1.0, wide)))
    return rounded_to(xp, xp.where(small, near_zero, far), x.dtype)


@public(static=("axis",))
def glu(ops: Adapter, x: Array, axis: int = -1) -> Array:
    r"""Gated linear unit: a sigmoid(b) where ``a, b`` are the halves of ``x`` along ``axis``.

    Matches ``jax.nn.glu`` and ``torch.nn.GLU`` (the first half is gated by the
    sigmoid of the second).  An odd length along ``axis`` raises ``ValueError``.
    """
    xp = ops.xp
    x = require_floating(xp, x)
    axis = normalize_axis(axis, x.ndim)
    size = x.shape[axis]
    if size % 2:
        raise refuse(ValueError, f"the length of axis {axis} must be even to split it in two halves, got {size}"
        )
    head = (slice(None),) * axis
    first = x[head + (slice(0, size // 2), ...)]
    second = x[head + (slice(size // 2, size), ...)]
    # in the input's dtype, as jax.nn and torch compute it (sigmoid's float64 tail would turn
    # their inf * 0 = nan into inf * subnormal at second < -88 in float32)
    return first * (1.0 / (1.0 + xp.exp(-second)))

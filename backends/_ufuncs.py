"""Fast paths from NumPy-style ufuncs, shared by the NumPy and CuPy adapters.

Each is the best plain formulation of a public function in a library with
NumPy's ufuncs (``out=`` on fresh temporaries, no ``x**3``, no needless
temporaries, reductions as array methods, which skip the functions'
dispatch) and, where there is one, SciPy's special-function module
(``scipy.special`` or ``cupyx.scipy.special``).  They only take real floating
arrays of that library, and the SciPy-style ufuncs only float32 and float64
(their loops); anything else goes to the written-once definition.

The memory-bound ones (relu6, hard_tanh, hard_sigmoid, hard_silu, leaky_relu,
soft_shrink) also take ``into``, an array of ``x``'s shape and
dtype to write the result to (the NumPy adapter gives each thread a slice of
one output); they return the result, which is ``into`` where they could
write there.
"""
from __future__ import annotations

import math
from types import ModuleType
from typing import Any, Callable

from ._base import FastPath, is_number

_SQRT_HALF = math.sqrt(0.5)
_GELU_CUBIC = 0.044715
#: 2 * sqrt(2/pi): gelu's tanh form is x * sigmoid(_GELU_SCALE * (x + _GELU_CUBIC * x**3)).
_GELU_SCALE = 2.0 * math.sqrt(2.0 / math.pi)
_FLOAT16_TINY = 2.0**-14  # the smallest normal float16
_FLOAT16_MAX = 65504.0


def one_ufunc(ufunc: Callable[[Any], Any] | None, accepted: frozenset) -> FastPath:
    """The fast path ``ufunc(x)`` for arrays of the ``accepted`` dtypes (none: it always declines).

    Its ``ufunc`` and ``accepted`` stay readable: the NumPy adapter builds from them a path that
    also slices large arrays in the same Python call (a wrapper costs 0.1 us a call, 3% of tanh
    at (1000,))."""
    def path(x):
        return ufunc(x) if x.ndim and x.dtype in accepted else NotImplemented

    path.ufunc, path.accepted = ufunc, accepted
    return path


def tanh_gelu(m: ModuleType, x: Any, cubic: Any, scale: Any, zero: Any) -> Any:
    """jax.nn.gelu's tanh form in xpnn's stable form, ``x * sigmoid(t)`` with
    ``t = scale * (x + cubic * x**3)`` (``(1 + tanh(t/2)) / 2`` is ``sigmoid(t)``, which does not
    cancel for negative x), ``sigmoid(t) = exp(min(t, 0)) / (exp(min(t, 0)) + exp(min(-t, 0)))``:
    no exponential overflows and no select is needed (a select on random signs costs ten times
    a pass).  Computed with the ufuncs of module ``m`` in place; the constants (``_GELU_CUBIC``,
    ``_GELU_SCALE`` and 0) are numbers, or arrays of them shaped like ``x`` (NumPy's loops run
    faster on two arrays than on an array and a number)."""
    t = m.multiply(x, x)
    t *= x
    t *= cubic
    t += x
    t *= scale
    low = m.minimum(t, zero)
    m.negative(t, out=t)
    m.minimum(t, zero, out=t)
    m.exp(low, out=low)
    m.exp(t, out=t)
    t += low
    m.divide(low, t, out=low)
    low *= x
    return low


def ufunc_fast_paths(m: ModuleType, special: ModuleType | None, *, masked_ufuncs: bool) -> dict[str, FastPath]:
    """The fast paths for arrays of module ``m``, built from its ufuncs and ``special``
    (None: the ones that need it are left out).  ``masked_ufuncs``: the ufuncs take
    NumPy's ``where=`` mask (CuPy's do not)."""

    # The checks run on every call, so they are set lookups inlined in each fast path.  0-d arrays
    # go to the written-once definition: NumPy's ufuncs give scalars for them, and refuse them as out=.
    floating = frozenset(m.dtype(name) for name in ("float16", "float32", "float64", "longdouble"))
    single_or_double = frozenset((m.dtype("float32"), m.dtype("float64")))
    special_floating = frozenset() if special is None else single_or_double

    # maximum(-0.0, 0) is +0.0 in the float32 and float64 loops but -0.0 in NumPy's float16
    # one (the standard leaves it open); relu(-0.0) is +0.0, so float16 takes the written-once path.
    def relu(x):
        return m.maximum(x, 0) if x.ndim and x.dtype in single_or_double else NotImplemented

    def relu6(x, *, into=None):
        if not x.ndim or x.dtype not in floating:
            return NotImplemented
        out = m.clip(x, 0, 6, out=into)  # keeps -0.0, but relu6(-0.0) is +0.0 in jax:
        return m.add(out, 0.0, out=out)  # -0.0 + 0.0 is +0.0

    def hard_tanh(x, *, into=None):
        return m.clip(x, -1, 1, out=into) if x.ndim and x.dtype in floating else NotImplemented

    def hard_sigmoid(x, *, into=None):
        if not x.ndim or x.dtype not in floating:
            return NotImplemented
        out = m.add(x, 3.0, out=into)
        m.clip(out, 0, 6, out=out)
        out /= 6.0
        return out

    def hard_silu(x, *, into=None):
        out = hard_sigmoid(x, into=into)
        if out is not NotImplemented:
            out *= x
        return out

    def leaky_relu(x, negative_slope=0.01, *, into=None):
        if not (x.ndim and x.dtype in floating and is_number(negative_slope)):
            return NotImplemented
        # Without a select per element (about ten times faster on random signs): for a slope in
        # (0, 1], slope * x is at most x where x >= 0 and at least x where x < 0 (rounding keeps
        # it so); above 1, the other way.  Ties are zeros of one sign, nan stays nan.  The
        # bounds keep the slope nonzero and finite in float16 too, so slope * inf is inf and
        # slope * 0 is 0, as where(x >= 0, x, slope * x) gives.
        out = m.multiply(x, negative_slope, out=into)
        if _FLOAT16_TINY <= negative_slope <= 1:
            return m.maximum(out, x, out=out)
        if 1 < negative_slope <= _FLOAT16_MAX:
            return m.minimum(out, x, out=out)
        return m.where(x >= 0, x, out)

    def sparse_plus(x):
        if not x.ndim or x.dtype not in floating:
            return NotImplemented
        inner = m.add(x, 1.0)
        inner *= inner
        inner /= 4
        out = m.where(x >= 1.0, x, inner)
        out[x <= -1.0] = 0.0
        return out

    def soft_shrink(x, lambd=0.5, *, into=None):
        if not (x.ndim and x.dtype in floating and is_number(lambd)) or lambd < 0:
            return NotImplemented
        if _FLOAT16_TINY <= lambd <= _FLOAT16_MAX:
            # x - clip(x, -lambd, lambd): x - lambd above, x + lambd below, x - x = +0.0 between
            # (-0.0 too), nan stays nan; the bounds keep lambd nonzero and finite in every dtype.
            out = m.clip(x, -lambd, lambd, out=into)
            return m.subtract(x, out, out=out)
        return m.where(x > lambd, x - lambd, m.where(x < -lambd, x + lambd, m.where(m.isnan(x), x, 0.0)))

    def elu(x, alpha=1.0):
        if not (x.ndim and x.dtype in floating and is_number(alpha)):
            return NotImplemented
        if masked_ufuncs:  # expm1 only where x <= 0, into a copy of x: nan stays nan, -0.0 stays -0.0
            negative = x <= 0
            out = m.expm1(x, out=x.copy(), where=negative)
            if alpha != 1.0:  # times 1 is exact: skip the pass
                m.multiply(out, alpha, out=out, where=negative)
            return out
        positive = x > 0
        out = m.where(positive, 0.0, x)
        m.expm1(out, out=out)
        if alpha != 1.0:
            out *= alpha
        return m.where(positive, x, out)

    def soft_sign(x):
        if not x.ndim or x.dtype not in floating:
            return NotImplemented
        out = m.abs(x)
        out += 1.0
        return m.divide(x, out, out=out)

    def softplus(x):
        return m.logaddexp(x, 0) if x.ndim and x.dtype in floating else NotImplemented

    def log_sigmoid(x):
        if not x.ndim or x.dtype not in floating:
            return NotImplemented
        out = m.logaddexp(m.negative(x), 0)
        return m.negative(out, out=out)

    def gelu(x, approximate=True):
        if not x.ndim or x.dtype not in floating:
            return NotImplemented
        if not approximate:
            if x.dtype not in special_floating or x.dtype == m.float64:
                return NotImplemented  # float64: the written-once form corrects erfc's argument
            wide = x.astype(m.float64)  # as the written-once definition: erfc's tail is subnormal in float32
            out = m.multiply(wide, -_SQRT_HALF)
            out = special.erfc(out, out=out)
            out *= 0.5  # before x, so that gelu(max) is max, as 0.5 * x * erfc(...) gives it
            out *= wide
            return out.astype(x.dtype, copy=False)
        return tanh_gelu(m, x, _GELU_CUBIC, _GELU_SCALE, 0.0)

    sigmoid = one_ufunc(special.expit if special is not None else None, special_floating)

    def silu(x):
        if not x.ndim or x.dtype not in special_floating:
            return NotImplemented
        out = special.expit(x)
        out *= x
        return out

    tanh = one_ufunc(m.tanh, floating)

    # Checked on every call, so inline (a NumPy scalar's ``max`` takes any axis: 0-d is checked);
    # an axis out of range or an empty reduction makes ``x.max`` raise ValueError (AxisError is
    # one), and the written-once definition takes over, with its own message.
    def softmax(x, axis=-1, where=None):
        if type(axis) is not int or where is not None or not x.ndim or x.dtype not in floating:
            return NotImplemented
        try:
            out = m.subtract(x, x.max(axis=axis, keepdims=True))
        except ValueError:
            return NotImplemented
        m.exp(out, out=out)
        out /= out.sum(axis=axis, keepdims=True)
        return out

    def log_softmax(x, axis=-1, where=None):
        if type(axis) is not int or where is not None or not x.ndim or x.dtype not in floating:
            return NotImplemented
        try:
            shifted = m.subtract(x, x.max(axis=axis, keepdims=True))
        except ValueError:
            return NotImplemented
        total = m.exp(shifted).sum(axis=axis, keepdims=True)
        shifted -= m.log(total, out=total)
        return shifted

    return {
        "relu": relu, "relu6": relu6, "hard_tanh": hard_tanh, "leaky_relu": leaky_relu, "elu": elu,
        "soft_sign": soft_sign, "hard_sigmoid": hard_sigmoid, "hard_silu": hard_silu,
        "sparse_plus": sparse_plus, "soft_shrink": soft_shrink, "softplus": softplus,
        "log_sigmoid": log_sigmoid, "gelu": gelu, "sigmoid": sigmoid, "silu": silu,
        "tanh": tanh, "softmax": softmax, "log_softmax": log_softmax,
    }

"""Accuracy in ulps against a high-precision evaluation: xpnn beside the reference framework.

The accuracy rule of xpnn: per element, xpnn's error is at most the reference
framework's (jax.nn, or torch for the torch-only functions), or 2 ulp,
whichever is larger (one ulp more in float16 and bfloat16).  Errors are
measured here against mpmath at 50 digits (``true_values``), on a dense grid
over each function's interesting range plus edge magnitudes (``grid``).

An error is ``|got - true| / ulp(true)``, the ulp being the dtype's spacing at
the true value rounded to the dtype.  Results whose true value is below the
dtype's smallest normal number count in units of that number instead (XLA
flushes such results to zero, and every library may), and a result that
overflows must be the same infinity.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np

from xpnn.conformance.backends import Backend

mpmath.mp.dps = 50
_SQRT_HALF = mpmath.sqrt(mpmath.mpf(0.5))


def _relu6(v: Any) -> Any:
    return min(max(v, 0), 6)


def _tanh_shrink(v: Any) -> Any:
    """``v - tanh(v)`` with the digits its cancellation takes (v**3 / 3 of v, down to 1e-30)."""
    with mpmath.workdps(200):
        return +(v - mpmath.tanh(v))


@dataclasses.dataclass(frozen=True)
class AccuracyCase:
    """A public function, its exact definition in mpmath, and the reference framework's call."""

    label: str
    function: str
    exact: Callable[[Any], Any]
    kwargs: dict = dataclasses.field(default_factory=dict)
    #: "jax" (jax.nn, same name) or the name of a torch.nn.functional function.
    reference: str = "jax"
    #: The grid's range of x (the function's interesting range); edge magnitudes are added.
    domain: tuple[float, float] = (-20.0, 20.0)


_SELU_SCALE = mpmath.mpf("1.0507009873554804934193349852946")
_SELU_ALPHA = mpmath.mpf("1.6732632423543772848170429916717")
_GELU_CUBIC = mpmath.mpf(0.044715)

CASES = (
    AccuracyCase("relu", "relu", lambda v: max(v, 0)),
    AccuracyCase("relu6", "relu6", _relu6),
    AccuracyCase("leaky_relu", "leaky_relu", lambda v: v if v >= 0 else mpmath.mpf(0.01) * v),
    AccuracyCase("elu", "elu", lambda v: v if v > 0 else mpmath.expm1(v)),
    AccuracyCase("selu", "selu", lambda v: _SELU_SCALE * (v if v > 0 else _SELU_ALPHA * mpmath.expm1(v))),
    AccuracyCase("celu", "celu", lambda v: max(v, 0) + min(0, mpmath.expm1(v))),
    # 1 + tanh(u) = 2 / (1 + exp(-2u)): the form that keeps its digits far in the negative tail.
    AccuracyCase("gelu", "gelu", lambda v: v / (1 + mpmath.exp(-2 * mpmath.sqrt(2 / mpmath.pi) * (v + _GELU_CUBIC * v**3)))),
    AccuracyCase("gelu(approximate=False)", "gelu", lambda v: v / 2 * mpmath.erfc(-v * _SQRT_HALF),
                 {"approximate": False}),
    AccuracyCase("silu", "silu", lambda v: v / (1 + mpmath.exp(-v))),
    AccuracyCase("mish", "mish", lambda v: v * mpmath.tanh(mpmath.log1p(mpmath.exp(v)))),
    AccuracyCase("hard_silu", "hard_silu", lambda v: v * _relu6(v + 3) / 6),
    AccuracyCase("squareplus", "squareplus", lambda v: (v + mpmath.sqrt(v * v + 4)) / 2, domain=(-200.0, 200.0)),
    AccuracyCase("sigmoid", "sigmoid", lambda v: 1 / (1 + mpmath.exp(-v)), domain=(-100.0, 100.0)),
    AccuracyCase("hard_sigmoid", "hard_sigmoid", lambda v: _relu6(v + 3) / 6),
    AccuracyCase("log_sigmoid", "log_sigmoid", lambda v: -mpmath.log1p(mpmath.exp(-v)), domain=(-100.0, 100.0)),
    AccuracyCase("soft_sign", "soft_sign", lambda v: v / (abs(v) + 1)),
    AccuracyCase("tanh", "tanh", mpmath.tanh),
    AccuracyCase("hard_tanh", "hard_tanh", lambda v: min(max(v, -1), 1)),
    AccuracyCase("softplus", "softplus", lambda v: mpmath.log1p(mpmath.exp(v)), domain=(-100.0, 100.0)),
    AccuracyCase("sparse_plus", "sparse_plus", lambda v: 0 if v <= -1 else (v if v >= 1 else (v + 1) ** 2 / 4)),
    AccuracyCase("sparse_sigmoid", "sparse_sigmoid", lambda v: min(max(v + 1, 0), 2) / 2),
    AccuracyCase("log1mexp", "log1mexp", lambda v: mpmath.log1p(-mpmath.exp(-v)), domain=(1e-6, 100.0)),
    AccuracyCase("tanh_shrink", "tanh_shrink", lambda v: _tanh_shrink(v), reference="tanhshrink"),
    AccuracyCase("soft_shrink", "soft_shrink", lambda v: v - 0.5 if v > 0.5 else (v + 0.5 if v < -0.5 else 0),
                 reference="softshrink"),
    AccuracyCase("hard_shrink", "hard_shrink", lambda v: v if abs(v) > 0.5 else 0, reference="hardshrink"),
    AccuracyCase("swish", "swish", lambda v: v / (1 + mpmath.exp(-v))),
    AccuracyCase("hard_swish", "hard_swish", lambda v: v * _relu6(v + 3) / 6),
    AccuracyCase("identity", "identity", lambda v: v),
    AccuracyCase("threshold(threshold=0.5, value=-9.0)", "threshold", lambda v: v if v > 0.5 else -9,
                 {"threshold": 0.5, "value": -9.0}, reference="threshold"),
    AccuracyCase("rrelu", "rrelu", lambda v: v if v > 0 else v * (mpmath.mpf(1) / 8 + mpmath.mpf(1) / 3) / 2,
                 {"training": False}, reference="rrelu"),
)


def grid(case: AccuracyCase, dtype: str, points: int = 2001) -> np.ndarray:
    """The inputs, exact in ``dtype``: ``points`` evenly over the case's domain, ``points // 4``
    over [-1, 1] (clipped to the domain), and magnitudes 1e-30 .. 1e4 of both signs."""
    low, high = case.domain
    magnitudes = np.logspace(-30, 4, points // 8)
    parts = [np.linspace(low, high, points), np.linspace(max(low, -1.0), min(high, 1.0), points // 4),
             magnitudes, -magnitudes]
    x = np.concatenate(parts)
    x = x[(x >= low) & (x <= high)]
    with np.errstate(over="ignore", under="ignore"):
        exact = _as_dtype(x, dtype).astype(np.float64)
    return np.unique(exact[np.isfinite(exact)])


def _as_dtype(x: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        import ml_dtypes

        return x.astype(ml_dtypes.bfloat16)
    return x.astype(dtype)


@functools.lru_cache(maxsize=None)
def _true_values(label: str, inputs: bytes) -> np.ndarray:
    case = next(c for c in CASES if c.label == label)
    return np.array([float(case.exact(mpmath.mpf(float(v)))) for v in np.frombuffer(inputs)])


def true_values(case: AccuracyCase, x: np.ndarray) -> np.ndarray:
    """The exact values at ``x`` (float64 inputs), rounded once to float64 (cached)."""
    return _true_values(case.label, np.ascontiguousarray(x, dtype=np.float64).tobytes())


def ulp_error(got: np.ndarray, true: np.ndarray, dtype: str) -> np.ndarray:
    """Per element, ``|got - true|`` in ulps of ``dtype`` at the true value (see the module)."""
    got = np.asarray(got, dtype=np.float64)
    info = np.finfo(np.float32 if dtype == "bfloat16" else dtype)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        rounded = _as_dtype(true, dtype).astype(np.float64)
        mantissa = {"bfloat16": 7}.get(dtype, info.nmant)
        tiny = float(info.tiny) if dtype != "bfloat16" else 2.0 ** -126
        magnitude = np.maximum(np.abs(rounded), tiny)
        ulp = 2.0 ** (np.floor(np.log2(np.where(np.isfinite(magnitude), magnitude, 1.0))) - mantissa)
        ulp = np.where(np.abs(rounded) < tiny, tiny, ulp)  # below the smallest normal: in its units
        error = np.abs(got - true) / ulp
    overflow = ~np.isfinite(rounded)
    error = np.where(overflow, np.where(got == rounded, 0.0, np.inf), error)
    return np.where(np.isnan(got), np.inf, error)


def call_reference(case: AccuracyCase, x: np.ndarray, dtype: str) -> np.ndarray:
    """The reference framework's result on ``x`` (held in ``dtype``), as float64."""
    if case.reference == "jax":
        import jax.nn
        import jax.numpy as jnp

        out = getattr(jax.nn, case.function)(jnp.asarray(_as_dtype(x, dtype)), **case.kwargs)
        return np.asarray(out).astype(np.float64)
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(np.asarray(x, dtype=np.float64)).to(getattr(torch, dtype))
    return getattr(F, case.reference)(tensor, **case.kwargs).to(torch.float64).numpy()


def call_xpnn(case: AccuracyCase, backend: Backend, x: np.ndarray, dtype: str) -> np.ndarray:
    import xpnn

    kwargs = {k: v for k, v in case.kwargs.items() if k != "training"}  # torch's flag, xpnn's default
    out = getattr(xpnn, case.function)(backend.asarray(x, dtype), **kwargs)
    return backend.to_numpy(out).astype(np.float64)


@dataclasses.dataclass(frozen=True)
class Accuracy:
    """xpnn's and the reference's errors in ulps on one grid."""

    x: np.ndarray
    xpnn: np.ndarray
    reference: np.ndarray
    dtype: str

    @property
    def allowed(self) -> np.ndarray:
        """The rule's bound per element: the reference's error, or 2 ulp (3 below float32)."""
        floor = 2.0 if self.dtype in ("float32", "float64") else 3.0
        return np.maximum(self.reference, floor)

    @property
    def violations(self) -> np.ndarray:
        return self.xpnn > self.allowed

    def worst(self) -> tuple[float, float]:
        """(xpnn's worst error, the reference's worst error) in ulps."""
        return float(self.xpnn.max()), float(self.reference.max())


def measure(case: AccuracyCase, backend: Backend, dtype: str, points: int = 2001) -> Accuracy:
    """xpnn on ``backend`` (as a user calls it, fast paths on) and the reference, in ulps."""
    x = grid(case, dtype, points)
    true = true_values(case, x)
    with np.errstate(all="ignore"):
        ours = ulp_error(call_xpnn(case, backend, x, dtype), true, dtype)
        reference = ulp_error(call_reference(case, x, dtype), true, dtype)
    return Accuracy(x, ours, reference, dtype)

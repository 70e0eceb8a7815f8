"""Numerical comparison against a reference: errors in absolute, relative and ulp terms, and tolerances."""
from __future__ import annotations

import dataclasses

import numpy as np

#: (rtol, atol) per dtype.  atol covers values near zero and XLA's flush of
#: subnormals; the half-precision tolerances reflect that the references and
#: the libraries compute half precision differently (jax rounds every
#: intermediate, torch often computes in float32).
TOLERANCES = {
    "float64": (1e-12, 1e-300),
    "float32": (4e-6, 1e-30),
    "float16": (8e-3, 2e-3),
    "bfloat16": (4e-2, 1.6e-2),
}
#: Gradients of O(1) size in float64: different but equally valid orders of
#: operations (XLA's fusion, torch's kernels) leave absolute noise near 1e-14.
GRADIENT_TOLERANCE = (1e-9, 1e-12)
_EPS = {"float64": 2.0**-52, "float32": 2.0**-23, "float16": 2.0**-10, "bfloat16": 2.0**-7}


@dataclasses.dataclass
class Comparison:
    """How ``actual`` differs from ``expected`` (both NumPy, in float64)."""

    max_abs: float
    max_rel: float
    max_ulp: float
    special_mismatch: int  # positions where nan/inf/sign of inf/sign of an exact zero differ
    passed: bool

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def compare(
    actual: np.ndarray,
    expected: np.ndarray,
    dtype: str,
    magnitude: np.ndarray | None = None,
    tolerance: tuple[float, float] | None = None,
    zero_signs: bool = True,
) -> Comparison:
    """Compare elementwise with the dtype's tolerance.

    NaNs, infinities and (unless ``zero_signs`` is false) the signs of exact
    zeros must be the reference's.

    ``magnitude`` (for elementwise functions: ``|x|``) adds ``2 eps |x|`` to the
    allowed error: formulas like ``x * (1 + tanh(...))`` cancel in their tail,
    and there the rounding of the input's scale is the honest bound.
    ``tolerance`` overrides the dtype's ``(rtol, atol)``.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        return Comparison(np.inf, np.inf, np.inf, actual.size, False)
    rtol, atol = tolerance or TOLERANCES[dtype]
    nan_a, nan_e = np.isnan(actual), np.isnan(expected)
    inf_a, inf_e = np.isinf(actual), np.isinf(expected)
    # Exact zeros of opposite sign count too: the references give relu(-0.0) = +0.0 but
    # elu(-0.0) = -0.0 (REFERENCE.md A.2), and 1/x or copysign tell them apart.
    zero_sign = zero_signs & (actual == 0) & (expected == 0) & (np.signbit(actual) != np.signbit(expected))
    special = (nan_a != nan_e) | (inf_e & (actual != expected)) | (inf_a & ~inf_e) | zero_sign
    finite = ~(nan_a | nan_e | inf_a | inf_e)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(actual - expected)[finite]
    ref = np.abs(expected)[finite]
    max_abs = float(diff.max(initial=0.0))
    max_rel = float((diff / np.maximum(ref, np.finfo(np.float64).tiny)).max(initial=0.0))
    allowed = atol + rtol * ref
    scale = ref
    if magnitude is not None:
        input_scale = np.abs(np.broadcast_to(magnitude, actual.shape))[finite]
        allowed = allowed + 2.0 * _EPS[dtype] * input_scale
        scale = np.maximum(ref, input_scale)
    # ulps of the larger of |reference| and |input|: near a zero of the function
    # the ulp of the tiny result says nothing about the computation's accuracy.
    ulp = _EPS[dtype] * np.maximum(scale, np.finfo(np.float32 if dtype != "float64" else np.float64).tiny)
    # differences within atol (subnormals flushed to zero by XLA) are not counted in ulps
    max_ulp = float((np.where(diff <= atol, 0.0, diff) / ulp).max(initial=0.0))
    within = bool(np.all(diff <= allowed))
    return Comparison(max_abs, max_rel, max_ulp, int(special.sum()), within and not special.any())


@dataclasses.dataclass
class Checked:
    """One check's outcome: the comparison, what is wrong with the output ('' when nothing),
    and the output's library, device, dtype and shape."""

    comparison: Comparison
    problem: str
    output: dict

    @property
    def passed(self) -> bool:
        return self.comparison.passed and not self.problem


def describe(out: object) -> dict:
    """``{'library', 'device', 'dtype', 'shape'}`` of an array, as text and a list."""
    import array_api_compat

    try:
        device = str(array_api_compat.device(out))
    except Exception:  # noqa: BLE001 - a library without device support
        device = "?"
    return {"library": type(out).__module__.split(".")[0], "device": device,
            "dtype": str(getattr(out, "dtype", "?")), "shape": list(getattr(out, "shape", ()))}

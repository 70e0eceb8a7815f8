"""Every public function on every backend against the reference framework (jax.nn / torch.nn.functional)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import xpnn
from xpnn.conformance import runner
from xpnn.conformance.cases import CASES

CASE_IDS = [case.label for case in CASES]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
#: jax's float16 and bfloat16 cases run with --full (each compiles jax's ops anew; the conformance
#: report, the main job, runs every case on jax in every dtype and both modes).
@pytest.mark.parametrize("dtype", ["float32", "float64", pytest.param("float16", marks=pytest.mark.slow_on("jax")),
                                   pytest.param("bfloat16", marks=pytest.mark.slow_on("jax"))])
def test_matches_reference(case, backend, dtype, rng):
    if dtype not in backend.dtypes:
        pytest.skip(f"{backend.name} has no {dtype}")
    outcome = runner.run(case, backend, dtype, rng)
    assert outcome.output_ok, outcome.output_problem
    assert outcome.comparison.passed, outcome.comparison


ELEMENTWISE = [case for case in CASES if case.min_ndim == 0 and case.extra is None]


@pytest.mark.parametrize("case", ELEMENTWISE, ids=[case.label for case in ELEMENTWISE])
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "written_once"])
def test_zero_dimensional_input(case, backend, fast, rng):
    """A 0-d array gives a 0-d array of its library with the reference's value (NumPy's ufuncs
    return scalars for 0-d operands, and refuse them as ``out=``)."""
    values = (-math.inf, -3.0, -0.0, 0.5, 6.0, math.nan)
    if case.function == "soft_shrink":
        # torch.nn.functional.softshrink gives -0.0 for the negatives it zeroes in its scalar
        # loop (all a 0-d tensor gets) and +0.0 in its vectorised one; xpnn gives +0.0 always,
        # checked at (4, 16) where torch's elements all take the vectorised loop.
        values = tuple(value for value in values if value != 0)
    for value in values:
        value = abs(value) if case.domain[0] >= 0 else value
        with xpnn.fast_paths(fast):
            outcome = runner.run(case, backend, "float32", rng, values=np.asarray(value))
        assert outcome.output_ok, (value, outcome.output_problem)
        assert outcome.comparison.passed, (value, outcome.comparison)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_fast_path_agrees_with_written_once(case, backend, rng):
    """Rule 3: the native fast path and the written-once definition give the same values."""
    for dtype in ("float32", "float64"):
        comparison = runner.fast_path_check(case, backend, dtype, rng)
        assert comparison.passed, (dtype, comparison)


def test_fast_path_switch():
    assert xpnn.fast_paths_enabled()
    with xpnn.fast_paths(False):
        assert not xpnn.fast_paths_enabled()
    assert xpnn.fast_paths_enabled()
    xpnn.set_fast_paths(False)
    try:
        assert not xpnn.fast_paths_enabled()
    finally:
        xpnn.set_fast_paths(True)


def test_fast_path_switch_reaches_cached_calls():
    """A call type already routed to its fast path runs the written-once definition once fast
    paths are off.  torch.relu(-0.0) is -0.0 and jax.nn.relu(-0.0) is +0.0, so the sign of
    the zero tells which ran."""
    torch = pytest.importorskip("torch")
    import jax.nn

    x = torch.tensor([-0.0])
    fast_zero = xpnn.relu(x)  # fills the per-type cache
    assert math.copysign(1.0, fast_zero.item()) == math.copysign(1.0, torch.relu(x).item()) == -1.0
    with xpnn.fast_paths(False):
        written_once_zero = xpnn.relu(x)
    assert math.copysign(1.0, written_once_zero.item()) == math.copysign(1.0, float(jax.nn.relu(-0.0))) == 1.0
    assert math.copysign(1.0, xpnn.relu(x).item()) == -1.0  # and back on


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_exact_gelu_tail_is_accurate_beside_a_nan(backend, dtype):
    """A NaN elsewhere in the array changes nothing: exact gelu's far tail (x below -5, where
    torch's float64 fast path takes erfc instead of the cancelling 1 + erf) is within 1 ulp of
    the exact value, as without the NaN (torch's fast path looked for the tail with the array's
    min, which a NaN makes NaN: gelu(-9) was -0.0 instead of -1.0e-18)."""
    import mpmath

    if dtype not in backend.dtypes:
        pytest.skip(f"{backend.name} has no {dtype}")
    values = np.array([np.nan, -6.0, -7.0, -8.0, -9.0, -10.0, -20.0, 0.5, -0.0])
    got = backend.to_numpy(xpnn.gelu(backend.asarray(values, dtype), approximate=False))[1:]
    alone = backend.to_numpy(xpnn.gelu(backend.asarray(values[1:], dtype), approximate=False))
    np.testing.assert_array_equal(got, alone)
    with mpmath.workdps(50):
        exact = np.array([float(mpmath.mpf(v) / 2 * mpmath.erfc(-mpmath.mpf(v) / mpmath.sqrt(2)))
                          for v in backend.to_numpy(backend.asarray(values[1:], dtype)).astype(np.float64)])
    spacing = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    if dtype == "bfloat16":
        spacing = spacing * 2.0 ** 16  # bfloat16 keeps 8 of float32's 24 bits
    assert np.all(np.abs(got.astype(np.float64) - exact) <= spacing), (got, exact)
    assert np.signbit(got[-1])

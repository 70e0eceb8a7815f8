"""The benchmark's plain NumPy twins compute what xpnn computes: jax.nn's values, zero signs included.

Otherwise a ratio against them would compare two different functions.
"""
from __future__ import annotations

import numpy as np
import pytest

from xpnn.conformance.compare import compare
from xpnn.conformance.cases import EDGE_VALUES


@pytest.mark.parametrize("masked_ufuncs", [True, False], ids=["numpy", "cupy_style"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numpy_twins_match_jax(dtype, masked_ufuncs):
    jax = pytest.importorskip("jax")
    expit = pytest.importorskip("scipy.special").expit
    from xpnn.benchmarks.activations import _array_twins

    x = np.concatenate([np.asarray(EDGE_VALUES), np.linspace(-9, 9, 181)]).astype(dtype)
    for name, twin in _array_twins(np, expit, masked_ufuncs=masked_ufuncs).items():
        with np.errstate(all="ignore"):
            ours = np.asarray(twin(x), dtype=np.float64)
        reference = np.asarray(getattr(jax.nn, name)(jax.numpy.asarray(x)), dtype=np.float64)
        comparison = compare(ours, reference, dtype, magnitude=np.abs(x))
        assert comparison.passed, (name, comparison)


@pytest.mark.parametrize("label", ["max_pool 3x3/2 (8,56,56,64)", "7x7/2 3->64 stem (1,224,224)"])
def test_conv_benchmark_times_the_standard_only_primitives_on_what_numpy_computes(label):
    """``python -m benchmarks conv --libraries array_api_strict`` compares the fallback with NumPy's
    kernels on the same input and variables: both variants give the same numbers."""
    from xpnn.benchmarks import conv

    variants = conv._variants("array_api_strict", "cpu", label)
    strict, numpy_result = variants["xpnn"](), variants["native"]()
    assert type(strict).__module__.startswith("array_api_strict")
    np.testing.assert_allclose(np.asarray(strict), numpy_result, rtol=1e-4, atol=1e-4)

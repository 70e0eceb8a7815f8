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

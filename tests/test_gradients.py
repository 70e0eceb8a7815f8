"""Gradients through xpnn on torch (autograd) and jax (jax.grad) against the reference's, at kinks too."""
from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.conformance.gradients import GRAD_CASES, gradient_check


#: jax's fast paths are jax.nn's own functions, the reference itself: with --full.
@pytest.mark.parametrize("fast", [pytest.param(True, id="fast_paths", marks=pytest.mark.slow_on("jax")),
                                  pytest.param(False, id="written_once")])
@pytest.mark.parametrize("case", GRAD_CASES, ids=[case.label for case in GRAD_CASES])
def test_gradient_matches_reference(case, autodiff_backend, fast, rng):
    comparison = gradient_check(case, autodiff_backend, rng, fast)
    assert comparison.passed, comparison


@pytest.mark.parametrize(
    "function, point, expected",
    [  # REFERENCE.md A.5: jax's conventions at kinks
        ("relu", 0.0, 0.0), ("relu6", 6.0, 0.0), ("hard_tanh", 1.0, 1.0), ("hard_tanh", -1.0, 1.0),
        ("leaky_relu", 0.0, 1.0), ("sparse_sigmoid", 1.0, 0.25), ("celu", 0.0, 1.0),
        ("hard_silu", 0.0, 0.5), ("log1mexp", 0.0, np.inf),
    ],
)
def test_kink_conventions_on_torch_autograd(function, point, expected):
    """torch's own kernels differ here (hardtanh'(1) = 0, leaky_relu'(0) = 0.01); xpnn keeps jax's value."""
    torch = pytest.importorskip("torch")
    x = torch.tensor(point, dtype=torch.float64, requires_grad=True)
    getattr(xpnn, function)(x).backward()
    assert x.grad.item() == expected

"""Gradients through xpnn on torch (autograd) and jax (jax.grad) against the reference's, at kinks too."""
from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.conformance import runner
from xpnn.conformance.cases import CASES
from xpnn.conformance.compare import GRADIENT_TOLERANCE, compare

GRAD_CASES = [case for case in CASES if case.grad]


def _points(case, rng):
    """Random points in the case's domain (away from kinks), then the kinks themselves."""
    x = rng.uniform(*case.domain, size=(3, 8))
    kinks = np.asarray(case.kinks, dtype=np.float64)
    x.flat[: kinks.size] = kinks
    return x


def _weights(shape):
    return np.linspace(0.5, 1.5, int(np.prod(shape))).reshape(shape)


def _reference_grad(case, x, extra):
    """Gradient of ``sum(w * f(x))`` (finite outputs only) with the reference framework, float64."""
    weights = _weights(runner.call_reference(case, x, extra, "float64").shape)
    function = case.reference_callable()
    if case.framework == "jax":
        import jax
        import jax.numpy as jnp

        extra_j = {k: jnp.asarray(v) for k, v in extra.items()}

        def loss(v):
            y = function(v, **extra_j, **case.kwargs)
            return jnp.sum(jnp.where(jnp.isfinite(y), y * weights, 0.0))

        return np.asarray(jax.grad(loss)(jnp.asarray(x)))
    import torch

    xt = torch.tensor(x, requires_grad=True)
    y = function(xt, **{k: torch.from_numpy(v) for k, v in extra.items()}, **case.kwargs)
    torch.sum(torch.where(torch.isfinite(y), y * torch.from_numpy(weights), 0.0)).backward()
    return xt.grad.numpy()


def _xpnn_grad(case, backend, x, extra):
    weights = _weights(runner.call_reference(case, x, extra, "float64").shape)
    if backend.name == "jax":
        import jax
        import jax.numpy as jnp

        def loss(v):
            y = runner.call_xpnn(case, backend, v, extra, "float64")
            return jnp.sum(jnp.where(jnp.isfinite(y), y * weights, 0.0))

        return np.asarray(jax.grad(loss)(jnp.asarray(x)))
    import torch

    xt = torch.tensor(x, requires_grad=True)
    y = runner.call_xpnn(case, backend, xt, extra, "float64")
    torch.sum(torch.where(torch.isfinite(y), y * torch.from_numpy(weights), 0.0)).backward()
    return xt.grad.numpy()


@pytest.mark.parametrize("fast", [True, False], ids=["fast_paths", "written_once"])
@pytest.mark.parametrize("case", GRAD_CASES, ids=[case.label for case in GRAD_CASES])
def test_gradient_matches_reference(case, autodiff_backend, fast, rng):
    x = _points(case, rng)
    extra = runner.extra_inputs(case, rng, x.shape)
    expected = _reference_grad(case, x, extra)
    with xpnn.fast_paths(fast):
        actual = _xpnn_grad(case, autodiff_backend, x, extra)
    comparison = compare(actual, expected, "float64", tolerance=GRADIENT_TOLERANCE)
    assert comparison.passed, (comparison, x.flat[: len(case.kinks)], actual.flat[: len(case.kinks)],
                               expected.flat[: len(case.kinks)])


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

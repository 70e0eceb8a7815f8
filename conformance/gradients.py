"""Gradient checks: xpnn on torch (autograd) and jax (jax.grad) against the reference's gradient, at kinks too.

The loss is ``sum(w * f(x))`` over the finite outputs, with fixed weights
``w``, in float64; the points are random ones in the case's domain followed
by the case's kinks, where the reference's convention (jax's) must hold.
"""
from __future__ import annotations

import numpy as np

import xpnn
from xpnn.conformance import runner
from xpnn.conformance.backends import Backend
from xpnn.conformance.cases import CASES, Case
from xpnn.conformance.compare import GRADIENT_TOLERANCE, Comparison, compare

#: The backends with autodiff.
AUTODIFF = ("torch", "jax")

GRAD_CASES = [case for case in CASES if case.grad]


def points(case: Case, rng: np.random.Generator) -> np.ndarray:
    """Random points in the case's domain (away from kinks), then the kinks themselves."""
    x = rng.uniform(*case.domain, size=(3, 8))
    kinks = np.asarray(case.kinks, dtype=np.float64)
    x.flat[: kinks.size] = kinks
    return x


def weights(shape: tuple[int, ...]) -> np.ndarray:
    return np.linspace(0.5, 1.5, int(np.prod(shape))).reshape(shape)


def reference_grad(case: Case, x: np.ndarray, extra: dict) -> np.ndarray:
    """Gradient of ``sum(w * f(x))`` (finite outputs only) with the reference framework, float64."""
    w = weights(runner.call_reference(case, x, extra, "float64").shape)
    function = case.reference_callable()
    if case.framework == "jax":
        import jax
        import jax.numpy as jnp

        extra_j = {k: jnp.asarray(v) for k, v in extra.items()}

        def loss(v):
            y = function(v, **extra_j, **case.kwargs)
            return jnp.sum(jnp.where(jnp.isfinite(y), y * w, 0.0))

        return np.asarray(jax.grad(loss)(jnp.asarray(x)))
    import torch

    xt = torch.tensor(x, requires_grad=True)
    y = function(xt, **{k: torch.from_numpy(v) for k, v in extra.items()}, **case.kwargs)
    torch.sum(torch.where(torch.isfinite(y), y * torch.from_numpy(w), 0.0)).backward()
    return xt.grad.numpy()


def xpnn_grad(case: Case, backend: Backend, x: np.ndarray, extra: dict) -> np.ndarray:
    """Gradient of the same loss through xpnn, with ``x`` and ``w`` on the backend's device."""
    w = backend.asarray(weights(runner.call_reference(case, x, extra, "float64").shape), "float64")
    xb = backend.asarray(x, "float64")
    if backend.name == "jax":
        import jax
        import jax.numpy as jnp

        def loss(v):
            y = runner.call_xpnn(case, backend, v, extra, "float64")
            return jnp.sum(jnp.where(jnp.isfinite(y), y * w, 0.0))

        return backend.to_numpy(jax.grad(loss)(xb))
    import torch

    xb.requires_grad_(True)
    y = runner.call_xpnn(case, backend, xb, extra, "float64")
    torch.sum(torch.where(torch.isfinite(y), y * w, 0.0)).backward()
    return backend.to_numpy(xb.grad)


def gradient_check(case: Case, backend: Backend, rng: np.random.Generator, fast: bool = True) -> Comparison:
    """xpnn's gradient on ``backend`` (fast paths on or off) against the reference's, in float64."""
    x = points(case, rng)
    extra = runner.extra_inputs(case, rng, x.shape)
    expected = reference_grad(case, x, extra)
    with xpnn.fast_paths(fast):
        actual = xpnn_grad(case, backend, x, extra)
    return compare(actual, expected, "float64", tolerance=GRADIENT_TOLERANCE)

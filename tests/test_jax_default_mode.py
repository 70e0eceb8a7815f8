"""jax in its default mode (``jax_enable_x64`` off), which the rest of the suite (x64 on) does not
run: every function case against jax.nn, and every sampler against jax.random, in that mode."""
from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn.conformance import runner
from xpnn.conformance.cases import CASES

jax = pytest.importorskip("jax")
jnp = jax.numpy


@pytest.fixture
def jax_backend():
    from conftest import BACKENDS

    with jax.enable_x64(False):
        yield BACKENDS["jax"]


@pytest.mark.parametrize("case", CASES, ids=[case.label for case in CASES])
def test_functions_match_jax_nn(case, jax_backend, rng):
    for dtype in ("float32", "bfloat16"):
        outcome = runner.run(case, jax_backend, dtype, rng)
        assert outcome.output_ok, (dtype, outcome.output_problem)
        assert outcome.comparison.passed, (dtype, outcome.comparison)


def test_samplers_match_jax_random(jax_backend):
    key, reference = xpnn.random.key(5, like=jnp), jax.random.key(5)
    low, high = jnp.asarray([0, -3, 7], jnp.int32), jnp.asarray([10, 3, 2**31 - 1], jnp.int32)
    draws = {
        "bits": (xpnn.random.bits(key, (64,)), jax.random.bits(reference, (64,))),
        "uniform": (xpnn.random.uniform(key, (64,)), jax.random.uniform(reference, (64,))),
        "normal": (xpnn.random.normal(key, (64,)), jax.random.normal(reference, (64,))),
        "truncated_normal": (xpnn.random.truncated_normal(key, -1.0, 2.0, (64,)),
                             jax.random.truncated_normal(reference, -1.0, 2.0, (64,))),
        "bernoulli": (xpnn.random.bernoulli(key, 0.3, (64,)), jax.random.bernoulli(reference, 0.3, (64,))),
        "randint": (xpnn.random.randint(key, (64,), -5, 100), jax.random.randint(reference, (64,), -5, 100)),
        "randint arrays": (xpnn.random.randint(key, (3,), low, high), jax.random.randint(reference, (3,), low, high)),
        "permutation": (xpnn.random.permutation(key, 20), jax.random.permutation(reference, 20)),
        "categorical": (xpnn.random.categorical(key, jnp.log(jnp.arange(1.0, 6.0)), shape=(16,)),
                        jax.random.categorical(reference, jnp.log(jnp.arange(1.0, 6.0)), shape=(16,))),
    }
    for seed in (2**32 + 5, -3, 7):  # jax keeps the seed's low 32 bits in this mode
        draws[f"key({seed})"] = (xpnn.random.key(seed, like=jnp), jax.random.key_data(jax.random.key(seed)))
    draws["randint int64"] = (xpnn.random.randint(key, (8,), 0, 2**31 - 1, "int64"),
                              jax.random.randint(reference, (8,), 0, 2**31 - 1, jnp.int64))
    for name, (got, want) in draws.items():
        assert got.dtype == want.dtype, name
        np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64), rtol=3e-7, err_msg=name)
    jitted = jax.jit(lambda k: xpnn.random.randint(xpnn.random.fold_in(k, jnp.int32(3)), (4,), 0, 9))(key)
    np.testing.assert_array_equal(np.asarray(jitted),
                                  np.asarray(jax.random.randint(jax.random.fold_in(reference, 3), (4,), 0, 9)))


def test_layers_and_dropout_match_flax(jax_backend):
    import flax.linen as fnn

    x = jnp.ones((4, 16), jnp.float32)
    for build in (lambda L: L.Dense(3), lambda L: L.Dropout(0.4, deterministic=False)):
        rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
        variables = build(fnn).init(rngs, x)
        want = build(fnn).apply(variables, x, rngs={"dropout": jax.random.key(1)})
        got = build(xpnn).apply(variables, x, rngs={"dropout": xpnn.random.key(1, like=jnp)})
        assert got.dtype == want.dtype
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6)

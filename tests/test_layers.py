"""The core layers against flax.linen, on every backend.

The layer table is the conformance suite's (``conformance/models.py``): each
case builds the same layer in flax.linen and in xpnn and checks that xpnn's
``init`` with ``key(0)`` gives flax's variables, and that flax's variables,
converted to the backend, applied by xpnn give flax's output.
"""
from __future__ import annotations

import dataclasses
import inspect

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import xpnn as nn
from conftest import jax_default_mode
from xpnn.backends import dtype_name
from xpnn.conformance import models

jax.config.update("jax_enable_x64", True)


#: The convolution, attention, recurrent and weight-normalization cases that run by default, one or a few per family
#: (the standard-only convolution builds many strided slices, slow in Dask's graphs; eager jax
#: compiles every new layer's ops; the attention layers share one code path, and so do the dense
#: cells); --full runs them all, and the conformance report runs every case.
_STANDARD_ONLY_CASES = ("Conv(4, (3, 3))", "ConvTranspose(4, (3, 3), strides 2)", "ConvLocal(4, (3, 3))",
                        "Conv(6, (3, 3), feature_group_count=3)", "Conv(4, 3, CAUSAL, dilation 2)",
                        "MultiHeadDotProductAttention(num_heads=3)", "RNN(LSTMCell(4))")
#: The cases run in float64 by default, one per family (the float64 code paths are the float32
#: ones; the conformance report runs every case in both); --full runs every case in float64.
_FLOAT64_CASES = ("Dense(3)", "DenseGeneral(5, axis=(-2, -1))", "Conv(4, (3, 3))", "LayerNorm()",
                  "BatchNorm(use_running_average=True)", "RNN(LSTMCell(4))", "Embed(7, 3)", "Dropout(0.5)")


def _marks(case, dtype: str) -> list:
    heavy = ("Conv" in case.label or "Attention" in case.layer or case.layer in ("RNN", "Bidirectional")
             or (case.layer in ("SpectralNorm", "WeightNorm") and case.label != "SpectralNorm(Dense(3))"))
    if dtype == "float64" and case.label not in _FLOAT64_CASES:
        return [pytest.mark.slow]
    if dtype == "float64":
        return [pytest.mark.slow_on("dask", "array_api_strict")]
    if heavy and case.label not in _STANDARD_ONLY_CASES:  # eager jax compiles each new layer's ops
        return [pytest.mark.slow]
    return []


#: float64 on Dask and array-api-strict runs with --full too (the standard-only paths are the
#: same code in both dtypes).
_LAYER_PARAMS = [pytest.param(case, dtype, id=f"{case.label}-{dtype}", marks=_marks(case, dtype))
                 for case in models.LAYER_CASES for dtype in ("float32", "float64")]


@pytest.mark.parametrize(("case", "dtype"), _LAYER_PARAMS)
def test_layer_matches_flax(backend, case, dtype):
    """init equals flax's init; flax's variables applied by xpnn give flax's output (conformance.models)."""
    if dtype not in backend.dtypes:
        pytest.skip(f"{backend.name} has no {dtype}")
    for part, check in models.LAYER_PARTS.items():
        checked = check(case, backend, dtype)
        assert not checked.problem, f"{part}: {checked.problem}"
        assert checked.comparison.passed, f"{part}: {checked.comparison}"


def _seed_mlp(L):
    class MLP(L.Module):
        @L.compact
        def __call__(self, x, train):
            x = L.Dense(4)(x)
            x = L.Dropout(0.5, deterministic=not train)(x)
            return x

    return MLP()


#: The numbers printed by the Dropout example of seed 004 (flax.linen.Dropout's docstring).
SEED_EVAL = [[-0.88686204, -0.5928178, -0.5184689, -0.4345976]]
SEED_TRAIN = [[0.0, -1.1856356, -1.0369378, 0.0]]


@pytest.fixture
def legacy_threefry():
    nn.random.set_threefry_partitionable(False)
    jax.config.update("jax_threefry_partitionable", False)
    yield
    nn.random.set_threefry_partitionable(True)
    jax.config.update("jax_threefry_partitionable", True)


def test_seed_dropout_example(backend, legacy_threefry):
    x = backend.asarray(np.ones((1, 3)), "float32")
    model = _seed_mlp(nn)
    variables = model.init(nn.random.key(0), x, train=False)
    evaluated = backend.to_numpy(model.apply(variables, x, train=False))
    with jax_default_mode(backend):
        trained = backend.to_numpy(model.apply(variables, x, train=True, rngs={"dropout": nn.random.key(1)}))
    np.testing.assert_allclose(evaluated, SEED_EVAL, rtol=1e-7)
    np.testing.assert_allclose(trained, SEED_TRAIN, rtol=1e-7)
    assert (trained == 0).tolist() == (np.asarray(SEED_TRAIN) == 0).tolist()
    # and the same as flax run now, in the same mode (jax's default 32-bit mode, as in the seed)
    flax_model = _seed_mlp(fnn)
    with jax.enable_x64(False):
        flax_variables = flax_model.init(jax.random.key(0), jnp.ones((1, 3)), train=False)
        flax_trained = flax_model.apply(flax_variables, jnp.ones((1, 3)), train=True, rngs={"dropout": jax.random.key(1)})
    np.testing.assert_allclose(trained, np.asarray(flax_trained), rtol=2e-7)


#: flax's hooks for jax's own functions, which xpnn's adapters and dtype promotion replace (README).
_JAX_HOOKS = {"dot_general", "dot_general_cls", "conv_general_dilated", "conv_general_dilated_cls", "promote_dtype",
              "preferred_element_type"}


def test_layers_have_every_flax_field_but_jax_hooks():
    """Each layer that flax.linen has too takes every field of flax's, in flax's order, but
    flax's hooks for jax's functions; a field flax adds (a new release) fails this test."""
    layers = [name for name in sorted(set(dir(nn)) & set(dir(fnn)))
              if isinstance(getattr(fnn, name), type) and dataclasses.is_dataclass(getattr(fnn, name))
              and isinstance(getattr(nn, name), type) and issubclass(getattr(nn, name), nn.Module)]
    assert {"Dense", "Conv", "LayerNorm", "MultiHeadDotProductAttention", "LSTMCell", "RNN"} <= set(layers)
    for name in layers:  # the constructors' parameters, positional ones in flax's order, then parent and name
        theirs = [p for p in inspect.signature(getattr(fnn, name)).parameters if p not in _JAX_HOOKS]
        ours = list(inspect.signature(getattr(nn, name)).parameters)
        assert [p for p in ours if p in theirs] == theirs, (name, sorted(set(theirs) - set(ours)), ours)


def test_documented_shapes():
    """The Dense / DenseGeneral / Einsum shapes of ../shared/REFERENCE.md E.1."""
    table = [
        (nn.Dense(3), (2, 4), {"kernel": (4, 3), "bias": (3,)}, (2, 3)),
        (nn.Dense(3, use_bias=False), (2, 4), {"kernel": (4, 3)}, (2, 3)),
        (nn.Dense(3), (2, 5, 4), {"kernel": (4, 3), "bias": (3,)}, (2, 5, 3)),
        (nn.DenseGeneral((2, 3)), (2, 4), {"kernel": (4, 2, 3), "bias": (2, 3)}, (2, 2, 3)),
        (nn.DenseGeneral(5, axis=(-2, -1)), (2, 3, 4), {"kernel": (3, 4, 5), "bias": (5,)}, (2, 5)),
        (nn.DenseGeneral(5, axis=-1, batch_dims=(0,)), (2, 3, 4), {"kernel": (2, 4, 5), "bias": (2, 5)}, (2, 3, 5)),
        (nn.DenseGeneral((2, 3), axis=1), (2, 4, 6), {"kernel": (4, 2, 3), "bias": (2, 3)}, (2, 6, 2, 3)),
        (nn.Einsum((5, 3, 4), "abc,cde->abde"), (2, 6, 5), {"kernel": (5, 3, 4), "bias": (3, 4)}, (2, 6, 3, 4)),
        (nn.Einsum((5, 3), "ab,bc->ac", use_bias=False), (6, 5), {"kernel": (5, 3)}, (6, 3)),
    ]
    for layer, shape, params, out_shape in table:
        x = np.ones(shape, np.float32)
        out, variables = layer.init_with_output(nn.random.key(0), x)
        assert {k: v.shape for k, v in variables["params"].items()} == params
        assert out.shape == out_shape


def test_densegeneral_kernel_fans():
    """DenseGeneral initialises the flattened matrix: an attention-style (512, 4, 64) kernel has std 1/sqrt(512)."""
    x = np.ones((1, 512), np.float32)
    kernel = nn.DenseGeneral((4, 64), kernel_init=nn.initializers.variance_scaling(1.0, "fan_in", "normal")).init(
        nn.random.key(0), x)["params"]["kernel"]
    assert abs(kernel.std() * np.sqrt(512) - 1) < 0.02
    out_kernel = nn.DenseGeneral(512, axis=(-2, -1), kernel_init=nn.initializers.variance_scaling(1.0, "fan_in", "normal")).init(
        nn.random.key(0), np.ones((1, 4, 64), np.float32))["params"]["kernel"]
    assert abs(out_kernel.std() * np.sqrt(256) - 1) < 0.02


def test_embed_lookup_rules(backend):
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    variables = {"params": {"embedding": backend.asarray(table, "float32")}}
    ids = backend.asarray(np.array([[0, -1, 3], [4, -5, 2]]), "int32")
    out = backend.to_numpy(nn.Embed(4, 3).apply(variables, ids))
    expected = np.asarray(jnp.take(jnp.asarray(table), jnp.asarray([[0, -1, 3], [4, -5, 2]]), axis=0))
    np.testing.assert_array_equal(out, expected)  # -1 wraps, 4 and -5 are NaN rows
    assert np.isnan(out[1, 0]).all() and np.isnan(out[1, 1]).all()


@pytest.mark.parametrize("dtype, param_dtype, expected", [
    ("bfloat16", None, "float32"),  # bf16 input, float32 params: float32 out
    ("int32", None, "float32"),
    ("float32", "bfloat16", "float32"),
    ("float64", None, "float64"),
])
def test_dtype_promotion_matches_flax(dtype, param_dtype, expected):
    import torch

    x = np.arange(8).reshape(2, 4)
    kwargs = {"param_dtype": param_dtype} if param_dtype else {}
    flax_out = fnn.Dense(3, **kwargs).init_with_output(jax.random.key(0), jnp.asarray(x, dtype))[0]
    assert str(flax_out.dtype) == expected
    for like in (torch, jnp):
        xx = nn.to_backend(jnp.asarray(x, dtype), like)
        out = nn.Dense(3, **kwargs).init_with_output(nn.random.key(0), xx)[0]
        assert dtype_name(out.dtype) == expected


def test_computation_dtype(backend):
    if "bfloat16" not in backend.dtypes:
        pytest.skip(f"{backend.name} has no bfloat16")
    x = backend.asarray(np.ones((2, 4)), "float32")
    out, variables = nn.Dense(3, dtype="bfloat16").init_with_output(nn.random.key(0), x)
    assert dtype_name(out.dtype) == "bfloat16"
    assert dtype_name(variables["params"]["kernel"].dtype) == "float32"


def test_dropout_statistics_and_determinism(backend):
    x = backend.asarray(np.ones((200, 500)), "float32")
    layer = nn.Dropout(0.3, deterministic=False)
    first = backend.to_numpy(layer.apply({}, x, rngs={"dropout": nn.random.key(1)}))
    again = backend.to_numpy(layer.apply({}, x, rngs={"dropout": nn.random.key(1)}))
    other = backend.to_numpy(layer.apply({}, x, rngs={"dropout": nn.random.key(2)}))
    kept = first != 0
    n = kept.size
    assert abs(kept.mean() - 0.7) < 5 * np.sqrt(0.21 / n)
    np.testing.assert_allclose(first[kept], 1 / 0.7, rtol=1e-6)
    assert abs(first.mean() - 1) < 5 * np.sqrt(0.21 / n) / 0.7
    np.testing.assert_array_equal(first, again)
    assert (first != other).mean() > 0.3
    with jax_default_mode(backend):
        explicit = backend.to_numpy(nn.Dropout(0.3).apply({}, x, deterministic=False, rng=nn.random.key(9)))
    with jax.enable_x64(False):
        expected = np.where(np.asarray(jax.random.bernoulli(jax.random.key(9), 0.7, (200, 500))), 1 / 0.7, 0)
    np.testing.assert_allclose(explicit, expected, rtol=1e-6)  # an explicit rng is used as it is


def test_batch_apply_matches_flax(backend):
    a = np.random.default_rng(0).standard_normal((2, 3, 4))
    b = np.random.default_rng(1).standard_normal((4,))

    def f(x, y, scale=None):
        assert x.ndim == 2 and y.ndim == 1
        return {"out": x * y * scale["s"], "same": (x,)}

    expected = fnn.BatchApply(f)(jnp.asarray(a), jnp.asarray(b), scale={"s": jnp.asarray(a)})
    out = nn.BatchApply(f)(backend.asarray(a, "float64"), backend.asarray(b, "float64"),
                           scale={"s": backend.asarray(a, "float64")})
    assert out["out"].shape == (2, 3, 4) and out["same"][0].shape == (2, 3, 4)
    np.testing.assert_allclose(backend.to_numpy(out["out"]), np.asarray(expected["out"]), rtol=1e-15)
    with pytest.raises(ValueError, match="at least one input with ndim >= 2"):
        nn.BatchApply(f)(backend.asarray(b, "float64"))

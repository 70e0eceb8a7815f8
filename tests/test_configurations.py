"""The configurations users run, beyond the defaults: every axis argument at other values on every
backend (array-api-strict included), small and unsigned integer dtypes, parameter edge values,
Dask with unknown chunk sizes, and shapes, axes and parameters drawn by hypothesis."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import xpnn

jax = pytest.importorskip("jax")
jnp = jax.numpy
jnn = jax.nn

X = np.random.default_rng(0).standard_normal((3, 4, 6))
AXES = [0, 1, -1, -2, (0, 1), (0, 2), (-1, 0)]
AXIS_FUNCTIONS = {
    "softmax": lambda f, x, a: f(x, axis=a), "log_softmax": lambda f, x, a: f(x, axis=a),
    "logsumexp": lambda f, x, a: f(x, axis=a), "logsumexp(keepdims)": lambda f, x, a: f(x, axis=a, keepdims=True),
    "logmeanexp": lambda f, x, a: f(x, axis=a), "standardize": lambda f, x, a: f(x, axis=a),
}


def _reference(name: str):
    return getattr(jnn, name.split("(")[0])


@pytest.mark.slow_on("dask")
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", sorted(AXIS_FUNCTIONS))
def test_every_axis_on_every_backend(backend, name, axis):
    call = AXIS_FUNCTIONS[name]
    want = np.asarray(call(_reference(name), jnp.asarray(X), axis))
    got = backend.to_numpy(call(getattr(xpnn, name.split("(")[0]), backend.asarray(X, "float64"), axis))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("axis", [0, 1, -1, -3])
def test_glu_softmin_and_one_hot_axes(backend, axis):
    x = backend.asarray(X, "float64")
    if X.shape[axis] % 2 == 0:
        np.testing.assert_allclose(backend.to_numpy(xpnn.glu(x, axis=axis)), np.asarray(jnn.glu(jnp.asarray(X), axis=axis)),
                                   rtol=1e-12)
    torch = pytest.importorskip("torch")
    want = torch.nn.functional.softmin(torch.from_numpy(X), dim=axis).numpy()
    np.testing.assert_allclose(backend.to_numpy(xpnn.softmin(x, axis=axis)), want, rtol=1e-12)
    if backend.name != "dask":
        ids = np.array([[0, 2], [1, 5]])
        got = backend.to_numpy(xpnn.one_hot(backend.xp.asarray(ids), 3, axis=axis % 3 - 3 if axis < 0 else min(axis, 2)))
        want = np.asarray(jnn.one_hot(jnp.asarray(ids), 3, axis=axis % 3 - 3 if axis < 0 else min(axis, 2)))
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "uint16", "int32", "uint32"])
@pytest.mark.parametrize("name", ["relu", "hard_tanh", "threshold"])
def test_small_and_unsigned_integers_keep_their_dtype(name, dtype):
    """relu, hard_tanh and threshold keep integer dtypes (jax.nn, torch); the values are the exact
    integer answers (jax.nn's hard_tanh wraps -1 to the unsigned maximum)."""
    info = np.iinfo(dtype)
    values = np.array(sorted({0, 1, 2, 5, int(info.max), int(info.min), min(int(info.max), 200)}), dtype=dtype)
    exact = {"relu": lambda v: np.maximum(v, 0), "hard_tanh": lambda v: np.clip(v, -1, 1),
             "threshold": lambda v: np.where(v <= 1, 3, v)}[name](values.astype(np.int64))
    arguments = (1, 3) if name == "threshold" else ()
    for like in (np.asarray, jnp.asarray):
        got = getattr(xpnn, name)(like(values), *arguments)
        assert np.asarray(got).dtype == values.dtype, (name, like)
        np.testing.assert_array_equal(np.asarray(got).astype(np.int64), exact)


@pytest.mark.parametrize("name,parameter,values", [
    ("leaky_relu", "negative_slope", (0.0, -0.5, 2.0, math.inf, math.nan)),
    ("elu", "alpha", (0.0, -1.0, 1e-30, math.inf, math.nan)),
    ("celu", "alpha", (-1.0, 1e-30, 3.0, math.inf, math.nan)),
    ("squareplus", "b", (0.0, 4.0, 1e30, math.inf)),
])
def test_parameter_edge_values_match_jax(backend, name, parameter, values):
    x = np.array([-math.inf, -3.0, -1e-30, -0.0, 0.0, 1e-30, 2.0, math.inf, math.nan])
    for value in values:
        with np.errstate(all="ignore"):
            want = np.asarray(getattr(jnn, name)(jnp.asarray(x), **{parameter: value}))
            got = backend.to_numpy(getattr(xpnn, name)(backend.asarray(x, "float64"), **{parameter: value}))
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, equal_nan=True, err_msg=f"{parameter}={value}")


def test_squareplus_with_a_tiny_b_keeps_its_digits(backend):
    """jax.nn gives 0 for squareplus(-3, b=1e-30) (it cancels); the exact value is b / 12."""
    got = backend.to_numpy(xpnn.squareplus(backend.asarray(np.array([-3.0, -1e10]), "float64"), b=1e-30))
    np.testing.assert_allclose(got, [1e-30 / 12, 1e-30 / 4e10], rtol=1e-14)


def test_dask_unknown_chunks_across_functions():
    da = pytest.importorskip("dask.array")
    d = da.from_array(X.reshape(12, 6), chunks=(4, 3))
    masked = d[d[:, 0] > -10]
    assert math.isnan(masked.shape[0])
    for name in ("softmax", "log_softmax", "logsumexp", "logmeanexp", "standardize"):
        got = np.asarray(getattr(xpnn, name)(masked, axis=0).compute())
        want = np.asarray(getattr(jnn, name)(jnp.asarray(X.reshape(12, 6)), axis=0))
        np.testing.assert_allclose(got, want, rtol=1e-10, err_msg=name)
    np.testing.assert_allclose(np.asarray(xpnn.gelu(masked).compute()), np.asarray(jnn.gelu(jnp.asarray(X.reshape(12, 6)))),
                               rtol=1e-12)


_ELEMENTWISE = ["relu", "relu6", "elu", "selu", "celu", "gelu", "silu", "mish", "hard_silu", "squareplus", "sigmoid",
                "hard_sigmoid", "log_sigmoid", "soft_sign", "tanh", "hard_tanh", "softplus", "sparse_plus",
                "sparse_sigmoid"]


def _gelu_tanh_exact(x: float) -> float:
    """jax's tanh-approximated gelu, 0.5 x (1 + tanh(u)) with u = sqrt(2/pi) (x + 0.044715 x^3), at
    40 digits as x / (1 + exp(-2u)), the same value without the cancellation of 1 + tanh(u) (at
    x = -10 that sum is 1e-38: 40 digits keep two of it).  jax's float64 evaluation cancels for
    negative x (4e-6 relative at -6, where xpnn is exact)."""
    import mpmath

    with mpmath.workdps(40):
        v = mpmath.mpf(x)
        u = mpmath.sqrt(2 / mpmath.pi) * (v + mpmath.mpf("0.044715") * v**3)
        return float(v / (1 + mpmath.exp(-2 * u)))


_CANCELLING_IN_JAX = {"gelu": _gelu_tanh_exact}


@settings(max_examples=15, deadline=None)
@given(x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3, max_side=5),
                    elements=st.floats(-60, 60, allow_subnormal=False)),
       name=st.sampled_from(_ELEMENTWISE))
def test_elementwise_functions_on_any_shape(x, name):
    want = np.asarray(getattr(jnn, name)(jnp.asarray(x)))
    if name in _CANCELLING_IN_JAX:  # jax.nn's form loses digits there: the exact value instead
        want = np.vectorize(_CANCELLING_IN_JAX[name], otypes=[np.float64])(x)
    for like in (np.asarray, jnp.asarray):
        got = np.asarray(getattr(xpnn, name)(like(x)))
        assert got.shape == x.shape
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-300)


@settings(max_examples=15, deadline=None)
@given(data=st.data(), name=st.sampled_from(sorted(AXIS_FUNCTIONS)))
def test_axis_functions_on_any_shape_and_axes(data, name):
    x = data.draw(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4),
                             elements=st.floats(-30, 30)))
    axis = data.draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1),
                               st.lists(st.integers(0, x.ndim - 1), min_size=1, max_size=x.ndim, unique=True).map(tuple)))
    if axis is None and not name.startswith(("logsumexp", "logmeanexp")):
        axis = -1
    call = AXIS_FUNCTIONS[name]
    want = np.asarray(call(_reference(name), jnp.asarray(x), axis))
    # standardize divides by sqrt(var + 1e-5): a constant row's mean, off by an ulp of x, comes out
    # as x * 1e-16 / 3e-3 instead of 0 (jax's reduction happens to be exact there)
    atol = 1e-10 if name.startswith("standardize") else 1e-12
    for like in (np.asarray, jnp.asarray):
        np.testing.assert_allclose(np.asarray(call(getattr(xpnn, name.split("(")[0]), like(x), axis)), want,
                                   rtol=1e-9, atol=atol)


_FINITE = st.floats(-50, 50, allow_subnormal=False)


def _array(data, min_dims: int = 0):
    return data.draw(hnp.arrays(np.float64, hnp.array_shapes(min_dims=min_dims, max_dims=3, max_side=5), elements=_FINITE))


@settings(max_examples=12, deadline=None)
@given(data=st.data(), name=st.sampled_from(["leaky_relu", "elu", "celu", "squareplus"]))
def test_parametrized_activations_on_any_shape_and_parameter(data, name):
    x = _array(data)
    parameter = data.draw(st.floats(0.01, 10.0) if name != "leaky_relu" else st.floats(-2.0, 2.0))
    want = np.asarray(getattr(jnn, name)(jnp.asarray(x), parameter))
    for like in (np.asarray, jnp.asarray):
        np.testing.assert_allclose(np.asarray(getattr(xpnn, name)(like(x), parameter)), want, rtol=1e-9, atol=1e-300)


@settings(max_examples=12, deadline=None)
@given(data=st.data(), name=st.sampled_from(["hard_shrink", "soft_shrink", "tanh_shrink", "threshold", "rrelu",
                                            "softmin", "prelu"]))
def test_torch_functions_on_any_shape_and_parameter(data, name):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = _array(data, min_dims=1)
    t = torch.from_numpy(x)
    if name in ("hard_shrink", "soft_shrink"):
        lambd = data.draw(st.floats(0.0, 5.0))
        arguments, want = (lambd,), getattr(F, name.replace("_", ""))(t, lambd)
    elif name == "threshold":
        threshold, value = data.draw(_FINITE), data.draw(_FINITE)
        arguments, want = (threshold, value), F.threshold(t, threshold, value)
    elif name == "rrelu":
        lower = data.draw(st.floats(0.0, 0.5))
        arguments, want = (lower, lower + 0.25), F.rrelu(t, lower, lower + 0.25, training=False)
    elif name == "softmin":
        axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
        arguments, want = (axis,), F.softmin(t, dim=axis)
    elif name == "prelu":
        channels = x.shape[1] if x.ndim >= 2 else 1
        weight = np.asarray(data.draw(st.lists(st.floats(-2, 2), min_size=channels, max_size=channels)))
        arguments, want = (weight,), F.prelu(t, torch.from_numpy(weight))
    else:
        arguments, want = (), F.tanhshrink(t)
    for like in (np.asarray, torch.from_numpy, jnp.asarray):
        converted = tuple(like(a) if isinstance(a, np.ndarray) else a for a in arguments)
        got = np.asarray(getattr(xpnn, name)(like(x), *converted))
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-9, atol=1e-12, err_msg=str(like))


@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_one_hot_on_any_shape_axis_and_classes(data):
    ids = data.draw(hnp.arrays(np.int32, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
                               elements=st.integers(-3, 12)))
    classes = data.draw(st.integers(0, 10))
    axis = data.draw(st.integers(-ids.ndim - 1, ids.ndim))
    want = np.asarray(jnn.one_hot(jnp.asarray(ids), classes, axis=axis))
    for like in (np.asarray, jnp.asarray):
        np.testing.assert_array_equal(np.asarray(xpnn.one_hot(like(ids), classes, axis=axis)), want)


@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_glu_and_standardize_on_any_shape_and_axis(data):
    x = data.draw(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4).map(
        lambda s: tuple(2 * (n // 2) for n in s)), elements=_FINITE))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    for like in (np.asarray, jnp.asarray):
        np.testing.assert_allclose(np.asarray(xpnn.glu(like(x), axis=axis)),
                                   np.asarray(jnn.glu(jnp.asarray(x), axis=axis)), rtol=1e-9, atol=1e-300)
        np.testing.assert_allclose(np.asarray(xpnn.standardize(like(x), axis=axis)),
                                   np.asarray(jnn.standardize(jnp.asarray(x), axis=axis)), rtol=1e-7, atol=1e-7)


@settings(max_examples=10, deadline=None)
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=6), seed=st.integers(0, 2**32 - 1),
       sampler=st.sampled_from(["uniform", "normal", "bits", "bernoulli"]))
def test_samplers_on_any_shape_and_seed(shape, seed, sampler):
    with jax.enable_x64(False):
        want = np.asarray(getattr(jax.random, sampler)(jax.random.key(seed), shape=shape))
        for like in (np, jnp):
            got = np.asarray(getattr(xpnn.random, sampler)(xpnn.random.key(seed, like=like), shape=shape))
            assert got.shape == want.shape and got.dtype == want.dtype
            np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=3e-7)

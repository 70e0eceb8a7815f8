"""one_hot, scaled_matmul, identity, dtype rules, errors and property-based checks."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xpnn


# -- one_hot ---------------------------------------------------------------
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_one_hot_matches_jax(backend, axis):
    jax = pytest.importorskip("jax")
    indices = np.array([[0, 2, 5], [-1, 1, 3]])
    expected = np.asarray(jax.nn.one_hot(indices, 4, axis=axis))
    x = backend.xp.asarray(backend.asarray(indices, "int64"))
    out = xpnn.one_hot(x, 4, axis=axis)
    np.testing.assert_array_equal(backend.to_numpy(out), expected)
    assert out.shape == expected.shape


def test_one_hot_dtype_and_errors():
    out = xpnn.one_hot(np.array([1, 0]), 2, dtype=np.int32)
    assert out.dtype == np.int32
    assert xpnn.one_hot(np.array([1, 0]), 0).shape == (2, 0)
    with pytest.raises(TypeError, match="one_hot: x must be an integer array"):
        xpnn.one_hot(np.array([0.0, 1.5]), 3)
    with pytest.raises(ValueError, match="num_classes"):
        xpnn.one_hot(np.array([0]), -1)
    with pytest.raises(ValueError, match="axis=3 is out of bounds"):
        xpnn.one_hot(np.array([0, 1]), 3, axis=3)
    with pytest.raises(TypeError):
        xpnn.one_hot(np.array([0]), 3, np.int32)  # dtype is keyword-only, as in jax


# -- scaled_matmul -----------------------------------------------------------
def _scaled_matmul_reference(a, b, a_scales, b_scales):
    """jax.nn.scaled_matmul's documented definition, in jax.numpy (jax's kernel needs a GPU)."""
    import jax.numpy as jnp

    a_block = a.shape[-1] // a_scales.shape[-1]
    b_block = b.shape[-1] // b_scales.shape[-1]
    a_scaled = jnp.asarray(a) * jnp.repeat(jnp.asarray(a_scales), a_block, axis=-1)
    b_scaled = jnp.asarray(b) * jnp.repeat(jnp.asarray(b_scales), b_block, axis=-1)
    return np.asarray(jnp.einsum("BMK,BNK->BMN", a_scaled, b_scaled))


def test_scaled_matmul_matches_jax_definition(backend, rng):
    pytest.importorskip("jax")
    a, b = rng.normal(size=(2, 3, 64)), rng.normal(size=(2, 5, 64))
    a_scales, b_scales = rng.uniform(0.5, 2, (2, 3, 2)), rng.uniform(0.5, 2, (2, 5, 4))
    args = [backend.asarray(v, "float32") for v in (a, b, a_scales, b_scales)]
    out = xpnn.scaled_matmul(*args)
    assert out.dtype == backend.xp.float32 and out.shape == (2, 3, 5)
    expected = _scaled_matmul_reference(*(v.astype(np.float32) for v in (a, b, a_scales, b_scales)))
    np.testing.assert_allclose(backend.to_numpy(out), expected, rtol=1e-5, atol=1e-5)


def test_scaled_matmul_float8_inputs():
    """Quantized operands (float8 values, float8 scales) as jax's kernel takes them."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("jax")
    rng = np.random.default_rng(1)
    a = torch.from_numpy(rng.normal(size=(1, 4, 32)).astype(np.float32)).to(torch.float8_e4m3fn)
    b = torch.from_numpy(rng.normal(size=(1, 2, 32)).astype(np.float32)).to(torch.float8_e4m3fn)
    scales = torch.full((1, 4, 1), 2.0).to(torch.float8_e4m3fn), torch.full((1, 2, 1), 0.5).to(torch.float8_e4m3fn)
    out = xpnn.scaled_matmul(a, b, *scales)
    assert out.dtype == torch.float32
    expected = _scaled_matmul_reference(a.float().numpy(), b.float().numpy(),
                                         scales[0].float().numpy(), scales[1].float().numpy())
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)


def test_scaled_matmul_errors():
    a, b = np.ones((1, 2, 8)), np.ones((1, 3, 8))
    with pytest.raises(ValueError, match="lhs_scales must have shape"):
        xpnn.scaled_matmul(a, b, np.ones((1, 2, 3)), np.ones((1, 3, 1)))
    with pytest.raises(ValueError, match="must share B and K"):
        xpnn.scaled_matmul(a, np.ones((1, 3, 4)), np.ones((1, 2, 1)), np.ones((1, 3, 1)))
    with pytest.raises(ValueError, match="rhs must be 3-dimensional"):
        xpnn.scaled_matmul(a, np.ones((3, 8)), np.ones((1, 2, 1)), np.ones((1, 3, 1)))


# -- identity, dtype rules -----------------------------------------------------
def test_identity_returns_a_new_array(backend):
    x = backend.asarray(np.arange(3.0), "float32")
    out = xpnn.identity(x)
    assert out is not x
    np.testing.assert_array_equal(backend.to_numpy(out), np.arange(3.0))


@pytest.mark.parametrize("fast", [True, False])
def test_identity_keeps_the_autograd_graph(fast):
    """The copy is differentiable with and without fast paths, and torch gives no warning
    (``torch.asarray(x, copy=True)`` detaches before torch 2.13 and warns in 2.13)."""
    torch = pytest.importorskip("torch")
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with xpnn.fast_paths(fast):
            out = xpnn.identity(x)
    (out * torch.tensor([3.0, 5.0])).sum().backward()
    assert x.grad.tolist() == [3.0, 5.0]


@pytest.mark.parametrize("function", ["relu", "hard_tanh"])
def test_integer_dtype_kept(backend, function):
    """jax.nn keeps integers for relu and hard_tanh (REFERENCE.md A.4)."""
    import jax.nn

    values = np.array([-2, 0, 3])
    x = backend.xp.asarray(backend.asarray(values, "int32"))
    out = getattr(xpnn, function)(x)
    assert out.dtype == x.dtype
    np.testing.assert_array_equal(backend.to_numpy(out), np.asarray(getattr(jax.nn, function)(values)))


@pytest.mark.parametrize("function", ["relu6", "elu", "hard_sigmoid", "softplus", "gelu", "tanh", "softmax"])
def test_integers_promote_to_the_default_float(backend, function):
    import jax.nn

    values = np.array([-2, 0, 3])
    x = backend.xp.asarray(backend.asarray(values, "int32"))
    out = getattr(xpnn, function)(x)
    default = backend.xp.__array_namespace_info__().default_dtypes()["real floating"]
    assert out.dtype == default
    np.testing.assert_allclose(backend.to_numpy(out), np.asarray(getattr(jax.nn, function)(values)), rtol=1e-6)


@pytest.mark.parametrize("function", ["sigmoid", "silu", "glu", "hard_shrink"])
def test_integer_input_refused_where_jax_refuses(function):
    with pytest.raises(TypeError, match=f"{function}: x must have a floating-point dtype, got int"):
        getattr(xpnn, function)(np.array([1, 2]))
    assert xpnn.swish is xpnn.silu and xpnn.hard_swish is xpnn.hard_silu  # the same objects, as in jax


# -- errors --------------------------------------------------------------------
def test_glu_odd_axis():
    with pytest.raises(ValueError, match="glu: the length of axis 1 must be even .* got 3"):
        xpnn.glu(np.ones((2, 3)))


def test_axis_out_of_range():
    with pytest.raises(ValueError, match="softmax: axis=2 is out of bounds for an array of dimension 2"):
        xpnn.softmax(np.ones((2, 3)), axis=2)
    with pytest.raises(ValueError, match="log_softmax: axis=-1 is out of bounds for a 0-d array"):
        xpnn.log_softmax(np.float32(1.0))
    with pytest.raises(ValueError, match="repeats an axis"):
        xpnn.logsumexp(np.ones((2, 3)), axis=(1, -1))


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown algorithm 'bogus'"):
        xpnn.standardize(np.ones(3), algorithm="bogus")
    with pytest.raises(TypeError, match="where must be a boolean array"):
        xpnn.softmax(np.ones(3), where=np.ones(3))
    with pytest.raises(ValueError, match="soft_shrink: lambd must be >= 0, got -1"):
        xpnn.soft_shrink(np.ones(3), -1)
    with pytest.raises(ValueError, match="prelu: weight has 3 slopes but x has 4 channels"):
        xpnn.prelu(np.ones((2, 4)), np.ones(3))
    with pytest.raises(ValueError, match="rrelu: lower must be <= upper"):
        xpnn.rrelu(np.ones(3), 0.5, 0.1)
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="two libraries"):
        xpnn.rrelu(torch.ones(3), key=xpnn.random.key(0))
    with pytest.raises(TypeError, match="x must have a real dtype"):
        xpnn.elu(np.ones(3, dtype=complex))


@pytest.mark.parametrize("function", ["soft_shrink", "leaky_relu", "softmax", "elu"])
def test_extra_arguments_refused_on_every_backend(backend, function):
    """A keyword the public function lacks, or a positional argument too many, is refused
    everywhere with Python's message naming the function, even where a fast path has more
    parameters (NumPy's and CuPy's memory-bound ones take ``into``) or another name."""
    x = backend.asarray(np.ones((2, 3)), "float32")
    with pytest.raises(TypeError, match=f"{function}\\(\\) got an unexpected keyword argument 'into'"):
        getattr(xpnn, function)(x, into=backend.asarray(np.empty((2, 3)), "float32"))
    with pytest.raises(TypeError, match=f"{function}\\(\\) got multiple values for argument 'x'"):
        getattr(xpnn, function)(x, x=x)
    too_many = (1.0, 2.0) if function != "softmax" else (-1, None, 2.0)
    with pytest.raises(TypeError, match=f"{function}\\(\\) takes from 1 to {len(too_many)} positional arguments"):
        getattr(xpnn, function)(x, *too_many)


# -- edge semantics from REFERENCE.md ---------------------------------------------
def test_softmax_edges_match_jax():
    import jax.numpy as jnp
    import jax.nn

    cases = [
        (np.array([1.0, 2.0, 3.0]), np.array([False, False, False])),  # all masked -> zeros
        (np.array([-np.inf, -np.inf]), None),  # all -inf -> nan
        (np.array([np.inf, 0.0, 1.0]), None),  # +inf -> nan row
        (np.array([1000.0, 0.0]), None),  # no overflow
        (np.zeros((0,)), None),  # empty
        (np.zeros((3, 0), np.float32), None),  # empty rows: NumPy's max refuses them
        (np.zeros((0, 3), np.float32), None),  # no rows
    ]
    for x, where in cases:
        for name in ("softmax", "log_softmax"):
            kwargs = {} if where is None else {"where": where}
            expected = np.asarray(getattr(jax.nn, name)(jnp.asarray(x), **{k: jnp.asarray(v) for k, v in kwargs.items()}))
            out = getattr(xpnn, name)(x, **kwargs)
            assert out.dtype == expected.dtype and out.shape == expected.shape
            np.testing.assert_array_equal(out, expected)


def test_logsumexp_signs_match_jax():
    import jax.nn

    for x, b in [([1.0, 2.0, 3.0], [1.0, -1.0, 1.0]), ([1.0, 1.0], [1.0, -1.0]),
                 ([1.0, 2.0, 3.0], [-1.0, -1.0, -1.0]), ([-np.inf, -np.inf], None)]:
        x = np.asarray(x)
        b = None if b is None else np.asarray(b)
        expected = jax.nn.logsumexp(x, b=b, return_sign=True)
        out = xpnn.logsumexp(x, b=b, return_sign=True)
        np.testing.assert_allclose(out[0], np.asarray(expected[0]), rtol=1e-12)
        np.testing.assert_array_equal(out[1], np.asarray(expected[1]))
        np.testing.assert_allclose(xpnn.logsumexp(x, b=b), np.asarray(jax.nn.logsumexp(x, b=b)), rtol=1e-12)


def test_logmeanexp_all_masked_is_nan():
    assert np.isnan(xpnn.logmeanexp(np.array([1.0, 2.0]), where=np.array([False, False])))


# -- properties ------------------------------------------------------------------------
shapes = st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple)


@settings(max_examples=8, deadline=None)  # each new shape compiles jax's reference
@given(shape=shapes, data=st.data())
def test_softmax_properties(shape, data):
    """Along the axes, unmasked probabilities sum to 1, masked ones are 0, and jax agrees."""
    import jax.nn

    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.normal(scale=data.draw(st.sampled_from([1.0, 30.0])), size=shape)
    ndim = len(shape)
    axis = data.draw(st.one_of(st.none(), st.integers(-ndim, ndim - 1),
                               st.lists(st.integers(0, ndim - 1), min_size=1, unique=True).map(tuple)))
    where = rng.random(shape) < 0.8 if data.draw(st.booleans()) else None
    out = xpnn.softmax(x, axis=axis, where=where)
    reduced = tuple(range(ndim)) if axis is None else ((axis,) if isinstance(axis, int) else axis)
    mask = np.ones(shape, bool) if where is None else where
    any_unmasked = np.any(mask, axis=reduced, keepdims=True)
    totals = np.sum(out, axis=reduced, keepdims=True)
    np.testing.assert_allclose(np.where(any_unmasked, totals, 1.0), 1.0, rtol=1e-12)
    assert np.all(out[~mask] == 0)
    np.testing.assert_allclose(out, np.asarray(jax.nn.softmax(x, axis=axis, where=where)), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(
        xpnn.logsumexp(x, axis=axis, where=where),
        np.asarray(jax.nn.logsumexp(x, axis=axis, where=where)), rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(shape=shapes, data=st.data())
def test_standardize_properties(shape, data):
    import jax.nn

    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.normal(loc=3.0, size=shape)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    algorithm = data.draw(st.sampled_from(["fast", "stable"]))
    out = xpnn.standardize(x, axis=axis, algorithm=algorithm)
    expected = np.asarray(jax.nn.standardize(x, axis=axis, algorithm=algorithm))
    np.testing.assert_allclose(out, expected, rtol=1e-9, atol=1e-9)


def test_rrelu_training_mode(backend):
    """Each negative element gets its own slope, the key's uniform draw in [lower, upper)."""
    x_np = -np.abs(np.random.default_rng(0).standard_normal((64, 32))) - 0.1
    x_np[0] = np.abs(x_np[0])
    x = backend.asarray(x_np, "float32")
    key = xpnn.random.key(3, like=backend.xp)
    out = backend.to_numpy(xpnn.rrelu(x, 0.1, 0.3, key=key))
    slopes = backend.to_numpy(xpnn.random.uniform(key, (64, 32), x.dtype, minval=0.1, maxval=0.3))
    np.testing.assert_array_equal(out[0], x_np[0].astype(np.float32))
    np.testing.assert_allclose(out[1:], (x_np[1:] * slopes[1:]).astype(np.float32), rtol=1e-6)
    ratio = out[1:] / x_np[1:].astype(np.float32)
    assert ratio.min() >= 0.1 - 1e-6 and ratio.max() < 0.3 + 1e-6 and abs(ratio.mean() - 0.2) < 0.01
    np.testing.assert_array_equal(backend.to_numpy(xpnn.rrelu(x, 0.1, 0.3, key=key)), out)
    assert not np.array_equal(backend.to_numpy(xpnn.rrelu(x, 0.1, 0.3, key=xpnn.random.split(key)[0, :])), out)


def test_rrelu_training_gradient_is_the_slope():
    torch = pytest.importorskip("torch")
    x = -torch.rand(10, dtype=torch.float64) - 0.1
    x.requires_grad_(True)
    key = xpnn.random.key(1, like=torch)
    xpnn.rrelu(x, key=key).sum().backward()
    slopes = xpnn.random.uniform(key, (10,), torch.float64, 1 / 8, 1 / 3)
    torch.testing.assert_close(x.grad, slopes)

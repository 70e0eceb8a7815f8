"""xpnn.initializers against jax.nn.initializers, on every backend."""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import xpnn as nn
import xpnn.initializers as xi
import xpnn.random as xr
from backends import _fallback

jax.config.update("jax_enable_x64", True)
jinit = jax.nn.initializers

#: (name, builder arguments, shapes): every builder, with conv and axis variants.
CASES = [
    ("uniform", {}, [(3, 5)]),
    ("uniform", {"scale": 2.5}, [(4,)]),
    ("normal", {"stddev": 0.3}, [(3, 5)]),
    ("truncated_normal", {}, [(3, 5)]),
    ("truncated_normal", {"stddev": 1.0, "lower": -1.0, "upper": 3.0}, [(4,)]),
    ("glorot_uniform", {}, [(3, 5), (3, 3, 4, 8)]),
    ("glorot_normal", {}, [(3, 5), (5, 4, 8)]),
    ("xavier_uniform", {}, [(2, 3)]),
    ("lecun_uniform", {}, [(3, 5), (2, 3, 3, 4, 8)]),
    ("lecun_normal", {}, [(3, 5), (3, 3, 4, 8)]),
    ("he_uniform", {}, [(3, 5)]),
    ("he_normal", {}, [(3, 5)]),
    ("kaiming_normal", {"in_axis": 1, "out_axis": 0}, [(4, 8, 3, 3)]),
    ("variance_scaling", {"scale": 2.0, "mode": "fan_out", "distribution": "normal"}, [(6, 4, 8)]),
    ("variance_scaling", {"scale": 1.0, "mode": "fan_geo_avg", "distribution": "uniform", "batch_axis": 0}, [(6, 4, 8)]),
    ("variance_scaling", {"scale": 0.5, "mode": "fan_in", "distribution": "truncated_normal", "in_axis": (0, 1)}, [(2, 3, 4)]),
    ("variance_scaling", {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform", "in_axis": 0, "out_axis": 0}, [(5,)]),
    ("orthogonal", {}, [(2, 3), (3, 2), (3, 3), (4, 3, 5)]),
    ("orthogonal", {"scale": 2.0, "column_axis": 0}, [(3, 4)]),
    ("delta_orthogonal", {}, [(3, 2, 2), (3, 3, 4, 6), (2, 3, 2, 3, 3)]),
]

UNIFORM_BASED = {"uniform", "glorot_uniform", "xavier_uniform", "lecun_uniform", "he_uniform"}


def _exact(name: str, kwargs: dict) -> bool:
    return name in UNIFORM_BASED or kwargs.get("distribution") == "uniform"


@functools.lru_cache(maxsize=None)
def _jax_initializer(name: str, kwargs: tuple, seed: int, shape: tuple, dtype: str) -> np.ndarray:
    """jax.nn.initializers' values, computed once for every backend (each call compiles)."""
    return np.asarray(getattr(jinit, name)(**dict(kwargs))(jax.random.key(seed), shape, jnp.dtype(dtype)))


@pytest.mark.slow_on("dask")
@pytest.mark.parametrize("dtype", ["float32", pytest.param("float64", marks=pytest.mark.slow),
                                   pytest.param("float16", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name, kwargs, shapes", [  # the QR-based ones on jax: --full (numpy's run the same code)
    pytest.param(*c, id=f"{c[0]}-{i}", marks=[pytest.mark.slow_on("jax")] if "orthogonal" in c[0] else [])
    for i, c in enumerate(CASES)])
def test_matches_jax(backend, name, kwargs, shapes, dtype):
    """Every builder's values against jax.nn.initializers' (float32 by default; float64 and
    float16, whose reference draws jax compiles anew, with --full)."""
    if dtype not in backend.dtypes or (name in ("orthogonal", "delta_orthogonal") and dtype == "float16"):
        pytest.skip(f"{backend.name} has no {dtype}" if dtype not in backend.dtypes
                    else "jax's CPU QR refuses float16: test_orthogonal_of_16_bit_floats_decomposes_in_float32")
    key = xr.key(7, like=backend.xp)
    for shape in shapes:
        actual = backend.to_numpy(getattr(xi, name)(**kwargs)(key, shape, dtype))
        expected = _jax_initializer(name, tuple(kwargs.items()), 7, shape, dtype)
        assert actual.shape == expected.shape and actual.dtype == expected.dtype
        if _exact(name, kwargs):
            np.testing.assert_array_equal(actual, expected)
        else:
            tolerance = {"float16": 2e-3, "float32": 2e-5, "float64": 1e-11}[dtype]
            np.testing.assert_allclose(actual, expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_orthogonal_of_16_bit_floats_decomposes_in_float32(backend, dtype):
    """No library's QR takes 16-bit floats (jax's initializer raises): xpnn draws jax's normals in
    that dtype, decomposes them in float32 and rounds the result, equal to jax's algorithm run
    that way; delta_orthogonal's centre is that matrix too."""
    if dtype not in backend.dtypes:
        pytest.skip(f"{backend.name} has no {dtype}")
    key = xr.key(7, like=backend.xp)
    for shape in [(4, 6), (6, 4), (3, 2, 5)]:
        rows, columns = math.prod(shape) // shape[-1], shape[-1]
        z = jax.random.normal(jax.random.key(7), (max(rows, columns), min(rows, columns)), jnp.dtype(dtype))
        q, r = jnp.linalg.qr(z.astype(jnp.float32))
        q = q * jnp.sign(jnp.diag(r))[None, :]
        expected = np.asarray((q.T if rows < columns else q).reshape(shape).astype(jnp.dtype(dtype)), np.float32)
        actual = xi.orthogonal()(key, shape, dtype)
        assert str(actual.dtype).endswith(dtype)
        np.testing.assert_array_equal(np.asarray(backend.to_numpy(actual), np.float32), expected)
    centre = backend.to_numpy(xi.delta_orthogonal()(key, (3, 3, 4, 6), dtype))[1, 1]
    np.testing.assert_array_equal(np.asarray(centre, np.float32),
                                  np.asarray(backend.to_numpy(xi.orthogonal()(key, (4, 6), dtype)), np.float32))


def test_reference_vectors():
    """Values from ../shared/REFERENCE.md section C, key(0), shape (2, 3)."""
    key = xr.key(0)
    np.testing.assert_allclose(xi.lecun_normal()(key, (2, 3)),
                               [[1.170405387878418, 1.3784390687942505, -0.33173829317092896],
                                [-0.060317300260066986, 0.13505136966705322, -0.7336251735687256]], rtol=1e-6)
    np.testing.assert_array_equal(xi.he_uniform()(key, (2, 3)),
                                  np.array([[1.5507639646530151, 1.6578493118286133, -0.5809593200683594],
                                            [-0.10853563249111176, 0.24210159480571747, -1.158731460571289]], np.float32))


@pytest.mark.usefixtures("in_jax_default_mode")
def test_values_in_the_keys_library(backend):
    key = xr.key(1, like=backend.xp)
    for init in (xi.zeros, xi.ones, xi.constant(-7.0), xi.lecun_normal(), xi.orthogonal()):
        out = init(key, (3, 3))
        assert type(out) is type(key) and out.dtype == backend.xp.float32
    assert backend.to_numpy(xi.constant(3, dtype="int32")(key, (2,))).tolist() == [3, 3]


@pytest.mark.usefixtures("in_jax_default_mode")
def test_shape_of_no_axes_gives_a_0d_array(backend):
    """Initializers that take any shape give a 0-d array of the key's library for ``()``, with
    jax's value (NumPy's own operations give scalars for 0-d results)."""
    key = xr.key(1, like=backend.xp)
    for name, kwargs in (("uniform", {}), ("normal", {"stddev": 0.3}), ("truncated_normal", {}),
                         ("constant", {"value": -7.0})):
        out = getattr(xi, name)(**kwargs)(key, ())
        expected = getattr(jinit, name)(**kwargs)(jax.random.key(1), (), jnp.float32)
        assert type(out) is type(key) and out.shape == (), (name, type(out))
        np.testing.assert_allclose(backend.to_numpy(out), np.asarray(expected), rtol=2e-7, err_msg=name)
    for init in (xi.zeros, xi.ones):
        out = init(key, ())
        assert type(out) is type(key) and out.shape == ()


def test_zeros_and_ones_take_no_key():
    np.testing.assert_array_equal(xi.zeros(None, (2,)), np.zeros(2, np.float32))
    np.testing.assert_array_equal(xi.ones_init()(None, (2, 2), "float64"), np.ones((2, 2)))


def test_device_follows_the_key():
    import array_api_strict as xs

    device = xs.Device("device1")
    key = xr.key(0, like=xs.asarray(0.0, device=device))
    for init in (xi.zeros, xi.glorot_uniform(), xi.orthogonal(), xi.delta_orthogonal()):
        assert init(key, (3, 3, 3)).device == device


def test_aliases_and_fans():
    import flax.linen as fnn

    assert xi.xavier_uniform is xi.glorot_uniform and xi.kaiming_normal is xi.he_normal
    for name in ("zeros", "ones", "zeros_init", "ones_init"):  # flax.linen's names at the top level
        assert getattr(nn, name) is getattr(xi, name) and hasattr(fnn, name)
    np.testing.assert_array_equal(nn.zeros_init()(None, (2, 3)), np.asarray(fnn.zeros_init()(None, (2, 3))))
    assert xi.compute_fans((3, 3, 4, 8)) == (36, 72)
    assert xi.compute_fans((4, 8, 3, 3), in_axis=1, out_axis=0) == (72, 36)
    assert xi.compute_fans((6, 4, 8), batch_axis=0) == (4, 8)
    assert xi.compute_fans((2, 3, 4), in_axis=(0, 1)) == (6, 4)


def test_variance_scaling_statistics():
    w = np.asarray(xi.lecun_normal()(xr.key(3), (1000, 1000)), np.float64)
    assert abs(w.std() - 1 / np.sqrt(1000)) < 5e-4
    q = np.asarray(xi.orthogonal()(xr.key(3), (64, 32)), np.float64)
    np.testing.assert_allclose(q.T @ q, np.eye(32), atol=1e-5)


def test_standard_only_qr_gives_the_same_orthogonal_matrix():
    import array_api_strict as xs

    z = np.random.default_rng(0).standard_normal((9, 5))
    q, r = (np.from_dlpack(m) for m in _fallback.qr(xs, xs.asarray(z)))
    np.testing.assert_allclose(q @ r, z, atol=1e-12)
    np.testing.assert_allclose(q.T @ q, np.eye(5), atol=1e-12)
    assert np.allclose(np.tril(r, -1), 0)
    reference_q, reference_r = np.linalg.qr(z)
    signs = np.sign(np.diag(reference_r))
    np.testing.assert_allclose(q * np.sign(np.diag(r)), reference_q * signs, atol=1e-12)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda k: xi.variance_scaling(1.0, "fan_sum", "normal"), "invalid mode 'fan_sum'"),
        (lambda k: xi.variance_scaling(1.0, "fan_in", "laplace"), "invalid distribution 'laplace'"),
        # jax's returns NaN everywhere for these; xpnn's raised 'math domain error' for -1
        (lambda k: xi.variance_scaling(-1.0, "fan_in", "normal"), r"variance_scaling: scale must be >= 0 .*got -1.0"),
        (lambda k: xi.variance_scaling(float("nan"), "fan_in", "normal"), r"scale must be >= 0 .*got nan"),
        (lambda k: xi.lecun_normal()(k, (5,)), "at least 2 dimensions"),
        (lambda k: xi.lecun_normal()(k, (0, 3)), "fan of 0"),
        (lambda k: xi.glorot_uniform()(k, (3, -2)), "non-negative"),
        (lambda k: xi.lecun_normal()(k, (3, 3), "int32"), "real floating dtype"),
        (lambda k: xi.orthogonal()(k, (4,)), "at least 2 dimensions"),
        (lambda k: xi.delta_orthogonal()(k, (3, 3)), "3-, 4- or 5-D"),
        (lambda k: xi.delta_orthogonal()(k, (3, 3, 5, 4)), "must be <= fan_out"),
        (lambda k: xi.lecun_normal(in_axis=4)(k, (3, 3)), "in_axis=4 is out of range"),
    ],
)
def test_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call(xr.key(0))


_BUILT = [("lecun_normal()", lambda I: I.lecun_normal()), ("glorot_uniform(in_axis=0)", lambda I: I.glorot_uniform(in_axis=0)),
          ("normal(stddev=0.5)", lambda I: I.normal(0.5)), ("zeros_init()", lambda I: I.zeros_init()),
          ("constant(value=3)", lambda I: I.constant(3)), ("orthogonal(scale=2.0)", lambda I: I.orthogonal(2.0)),
          ("variance_scaling(scale=1.0, mode='fan_in', distribution='uniform')",
           lambda I: I.variance_scaling(1.0, "fan_in", "uniform")),
          ("truncated_normal(lower=-1.0)", lambda I: I.truncated_normal(lower=-1.0))]


@pytest.mark.parametrize(("text", "build"), _BUILT, ids=[text for text, _ in _BUILT])
def test_built_initializers_print_as_their_call_and_pickle(text, build):
    import pickle

    made = build(nn.initializers)
    assert repr(made) == text
    again = pickle.loads(pickle.dumps(made))
    assert again == made and hash(again) == hash(made)
    np.testing.assert_array_equal(again(nn.random.key(3), (4, 5)), made(nn.random.key(3), (4, 5)))


def test_modules_pickle_and_print_their_initializers():
    import pickle

    model = nn.Sequential([nn.Dense(4, kernel_init=nn.initializers.he_normal()), nn.relu, nn.LayerNorm()])
    again = pickle.loads(pickle.dumps(model))
    assert again == model
    x = np.ones((2, 3), np.float32)
    for a, b in zip(nn.tree_leaves(again.init(nn.random.key(0), x)), nn.tree_leaves(model.init(nn.random.key(0), x))):
        np.testing.assert_array_equal(a, b)
    assert "kernel_init=he_normal()" in repr(nn.Dense(4, kernel_init=nn.initializers.he_normal()))
    assert "kernel_init: 'Initializer' = lecun_normal()" in str(__import__("inspect").signature(nn.Dense))

"""Inputs that broke xpnn once: each test names the defect it pins down.

Silent wrong answers, crashes and unclear errors found by trying to break xpnn
(dtypes, layouts, threads, transforms, bad inputs, mixed libraries) and by
flax's own linen tests; every case is compared with the reference framework
or with the exact answer.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import xpnn

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = jax.numpy
jnn = jax.nn


# -- silent wrong answers --------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 2), (0, 3), (3,)])
@pytest.mark.parametrize("keepdims", [True, False])
def test_logsumexp_over_no_axis_is_the_input(shape, keepdims):
    """torch read ``axis=()`` as every axis; jax reduces nothing."""
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    want = np.asarray(jnn.logsumexp(jnp.asarray(x), axis=(), keepdims=keepdims))
    for like in (np.asarray, torch.from_numpy, jnp.asarray):
        got = np.asarray(xpnn.logsumexp(like(x), axis=(), keepdims=keepdims))
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "uint16"])
def test_one_hot_never_wraps_narrow_indices(dtype):
    """arange(257, dtype=uint8) wraps 256 to 0, which made row 0 hot at 0 and 256 (jax.nn too)."""
    info = np.iinfo(dtype)
    classes = int(info.max) + 2
    indices = np.array([0, 5, info.max], dtype=dtype)
    want = torch.nn.functional.one_hot(torch.from_numpy(indices.astype(np.int64)), classes).numpy()
    for like in (np.asarray, jnp.asarray):
        np.testing.assert_array_equal(np.asarray(xpnn.one_hot(like(indices), classes)), want)
    if dtype in ("uint8", "int8", "int16"):
        got = xpnn.one_hot(torch.from_numpy(indices), classes)
        np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "uint64", "int8"])
def test_hard_tanh_of_unsigned_integers_clips_to_0_1(dtype):
    values = np.array([0, 1, 2, 200 if dtype != "int8" else 100], dtype=dtype)
    want = np.clip(values.astype(np.int64), -1, 1).astype(dtype)
    for like in (np.asarray, jnp.asarray):
        got = np.asarray(xpnn.hard_tanh(like(values)))
        assert got.dtype == values.dtype
        np.testing.assert_array_equal(got, want)
    if dtype in ("uint8", "int8"):
        np.testing.assert_array_equal(xpnn.hard_tanh(torch.from_numpy(values)).numpy(), want)


def test_dask_with_unknown_chunk_sizes():
    da = pytest.importorskip("dask.array")
    d = da.from_array(np.ones((6, 8), "f4"), chunks=2)
    masked = d[d[:, 0] > 0]
    assert math.isnan(masked.shape[0])
    assert float(xpnn.logmeanexp(masked).compute()) == pytest.approx(1.0)
    np.testing.assert_allclose(xpnn.logmeanexp(masked, axis=0).compute(), np.ones(8), rtol=1e-6)
    np.testing.assert_allclose(xpnn.softmax(masked).compute(), np.full((6, 8), 0.125), rtol=1e-6)


@pytest.mark.parametrize("call, where, argument", [
    (lambda x, v: xpnn.LayerNorm().apply(v["norm"], x), "LayerNorm.apply", "x"),
    (lambda x, v: xpnn.RNN(xpnn.LSTMCell(3)).apply(v["rnn"], x[:, 0]), "RNN.apply", "inputs"),
    (lambda x, v: xpnn.Sequential([xpnn.Dense(3), xpnn.GroupNorm(1)]).apply(v["sequential"], x), "Sequential.apply",
     r"args\[0\]"),
    (lambda x, v: xpnn.max_pool(x, (2, 2), padding="SAME"), "xpnn.max_pool", "inputs"),
], ids=["LayerNorm", "RNN", "Sequential", "max_pool"])
def test_layers_of_dask_arrays_of_unknown_chunk_sizes_say_how_to_learn_them(call, where, argument):
    """Layers reshape and pad, which Dask cannot do to blocks of unknown sizes (a bare 'cannot
    convert float NaN to integer' ValueError, or a shape TypeError, deep inside): the error names
    the layer or function and the argument, and says to call compute_chunk_sizes(); after it, the
    call gives the NumPy result."""
    da = pytest.importorskip("dask.array")
    host = np.random.default_rng(1).standard_normal((6, 4, 4, 8)).astype("f4")
    variables = {"norm": xpnn.LayerNorm().init(xpnn.random.key(0), host),
                 "rnn": xpnn.RNN(xpnn.LSTMCell(3)).init(xpnn.random.key(0), host[:, 0]),
                 "sequential": xpnn.Sequential([xpnn.Dense(3), xpnn.GroupNorm(1)]).init(xpnn.random.key(0), host)}
    d = da.from_array(host, chunks=(2, 4, 4, 8))
    masked = d[d[:, 0, 0, 0] > -100]
    assert math.isnan(masked.shape[0])
    with pytest.raises(ValueError, match=rf"^{where}: {argument} has unknown sizes, shape \(nan, .*\), which "
                                         rf"this computation cannot reshape or pad; call "
                                         rf"{argument}\.compute_chunk_sizes\(\) first \(Dask cannot reshape or pad "
                                         r"blocks of unknown sizes\)$"):
        call(masked, variables)
    np.testing.assert_allclose(call(masked.compute_chunk_sizes(), variables).compute(), call(host, variables),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError, match=r"threshold\(\) missing 2 required positional arguments"):
        xpnn.threshold(masked)  # a call that does not fit the signature says that, not the unknown sizes


def test_torch_fast_paths_float64_backward_equals_the_definition():
    """torch's float64 celu backward used a float32 1/alpha (1.0000000170 for 1): every torch fast
    path's float64 gradient equals the written-once definition's (jax's conventions at kinks)."""
    adapter = xpnn._dispatch.adapter_of(torch.zeros(1))
    grid = np.concatenate([np.linspace(-7, 7, 57), [0.0, 1.0, -1.0, 3.0, -3.0, 6.0, 0.5, -0.5, 2.0]])
    arguments = {"threshold": (0.5, -2.0), "prelu": (torch.tensor([0.25], dtype=torch.float64),),
                 "celu": (0.7,), "elu": (0.7,), "leaky_relu": (0.2,), "rrelu": (0.1, 0.3),
                 "hard_shrink": (0.3,), "soft_shrink": (0.3,)}
    for name in sorted(name for name, fast in adapter.fast_paths.items() if fast is not None):
        grads = []
        for fast in (True, False):
            x = torch.tensor(grid, dtype=torch.float64, requires_grad=True)
            with xpnn.fast_paths(fast):
                if name == "dot_product_attention":  # the grid as (B, T, N, H) query, key and value
                    heads = x.reshape(1, 11, 2, 3)
                    out = xpnn.dot_product_attention(heads, heads * 0.5, heads, is_causal=True)
                else:
                    out = getattr(xpnn, name)(x, *arguments.get(name, ()))
            weights = torch.linspace(0.5, 1.5, out.numel(), dtype=torch.float64).reshape(out.shape)
            (out * weights).sum().backward()
            grads.append(x.grad.numpy())
        # attention's gradients are sums of products, summed in another order by torch's kernel
        rtol, atol = (1e-11, 1e-14) if name == "dot_product_attention" else (1e-13, 0)
        np.testing.assert_allclose(grads[0], grads[1], rtol=rtol, atol=atol, err_msg=name)


@pytest.mark.parametrize("function", ["hard_shrink", "soft_shrink"])
@pytest.mark.parametrize("lambd", [-1.0, -0.5, math.nan])
@pytest.mark.parametrize("like", ["numpy", "torch", "jax"])
def test_shrink_lambd_is_checked_before_any_fast_path(function, lambd, like):
    x = {"numpy": np.ones(3, "f4"), "torch": torch.ones(3), "jax": jnp.ones(3)}[like]
    with pytest.raises(ValueError, match=f"xpnn.{function}: lambd must be >= 0, got {lambd}"):
        getattr(xpnn, function)(x, lambd)
    with pytest.raises(ValueError, match="lambd must be >= 0"):
        getattr(xpnn, function)(x, lambd=lambd)


def test_torch_parameters_outside_the_kernel_conventions():
    """torch's kernels give nan at leaky_relu(0, nan), 1 at celu(1, nan) and -0.0 at
    leaky_relu(0, -0.5); jax gives 0, nan and +0.0."""
    cases = [("leaky_relu", [0.0, -1.0, 2.0], math.nan), ("celu", [1.0, -1.0, 0.0], math.nan),
             ("leaky_relu", [0.0, -1.0, 2.0], -0.5), ("leaky_relu", [0.0, -1.0, 2.0], math.inf)]
    for name, values, parameter in cases:
        want = np.asarray(getattr(jnn, name)(jnp.asarray(values, jnp.float32), parameter))
        got = getattr(xpnn, name)(torch.tensor(values), parameter).numpy()
        np.testing.assert_array_equal(got, want, err_msg=name)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want), err_msg=name)


def test_torch_rrelu_gradient_at_zero_is_the_slope():
    x = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64, requires_grad=True)
    torch.nn.functional.rrelu(x, 0.125, 1 / 3, training=False).sum().backward()
    want = x.grad.clone()
    for fast in (True, False):
        x.grad = None
        with xpnn.fast_paths(fast):
            xpnn.rrelu(x).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), want.numpy(), rtol=1e-15)


def test_random_defaults_follow_jax_x64():
    """With jax_enable_x64 on, jax.random draws float64/int64/uint64 by default (and flax's
    Dropout masks come from float64 uniforms): so do xpnn's draws on jax arrays."""
    key = xpnn.random.key(0, like=jnp)
    with jax.enable_x64(True):
        for name, args in (("uniform", ()), ("normal", ()), ("bits", ()), ("randint", (0, 7))):
            got = getattr(xpnn.random, name)(key, (4,), *args)
            want = getattr(jax.random, name)(jax.random.key(0), (4,), *args)
            assert got.dtype == want.dtype, name
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=4e-7, err_msg=name)
    with jax.enable_x64(False):
        assert xpnn.random.uniform(key, (2,)).dtype == jnp.float32
    assert xpnn.random.uniform(xpnn.random.key(0), (2,)).dtype == np.float32


# -- crashes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("partitionable", [True, pytest.param(False, marks=pytest.mark.slow)])
@pytest.mark.parametrize("bounds", [(0, 10, "int32"), (-5, 1000, "int32"), (-2**31, 2**31 - 1, "int32"),
                                    (-3, 300, "int8"), (0, 200, "uint8"), (0, 7, "int16"), (5, 2, "int32"),
                                    (7, 2**31 - 1, "uint32")])
def test_randint_in_jax_default_mode(bounds, partitionable):
    """Every randint on jax arrays failed with x64 off (``& 0xFFFFFFFF`` on int32), under jit too."""
    low, high, dtype = bounds
    previous = xpnn.random._threefry.threefry_partitionable()
    xpnn.random.set_threefry_partitionable(partitionable)
    try:
        with jax.enable_x64(False), jax.threefry_partitionable(partitionable):
            want = np.asarray(jax.random.randint(jax.random.key(3), (64,), low, high, dtype))
            key = xpnn.random.key(3, like=jnp)
            got = np.asarray(xpnn.random.randint(key, (64,), low, high, dtype))
            jitted = np.asarray(jax.jit(lambda k: xpnn.random.randint(k, (64,), low, high, dtype))(key))
            arrays = np.asarray(xpnn.random.randint(key, (64,), jnp.asarray(low, dtype), jnp.asarray(high, dtype)
                                                    if high <= np.iinfo(dtype).max else high, dtype))
    finally:
        xpnn.random.set_threefry_partitionable(previous)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(jitted, want)
    if high <= np.iinfo(dtype).max:
        np.testing.assert_array_equal(arrays, want)


def test_logmeanexp_of_a_numpy_scalar():
    assert float(xpnn.logmeanexp(np.float32(1.0))) == float(jnn.logmeanexp(jnp.float32(1.0))) == 1.0
    assert xpnn.logsumexp(np.float32(2.0), axis=()).shape == ()


@pytest.mark.parametrize("axis", [0, 1, -2])
def test_glu_on_array_api_strict_at_every_axis(axis):
    xps = pytest.importorskip("array_api_strict")
    x = np.random.default_rng(1).standard_normal((4, 6, 2))
    got = np.asarray(xpnn.glu(xps.asarray(x), axis=axis))
    np.testing.assert_allclose(got, np.asarray(jnn.glu(jnp.asarray(x), axis=axis)), rtol=1e-6)


# -- unclear errors --------------------------------------------------------------------------

@pytest.mark.parametrize("like", ["numpy", "torch", "jax"])
def test_numpy_integer_axes_are_taken_and_float_axes_refused(like):
    x = {"numpy": np.ones((2, 3), "f4"), "torch": torch.ones(2, 3), "jax": jnp.ones((2, 3))}[like]
    want = np.asarray(jnn.softmax(jnp.ones((2, 3)), axis=0))
    np.testing.assert_allclose(np.asarray(xpnn.softmax(x, axis=np.int64(0))), want)
    np.testing.assert_allclose(np.asarray(xpnn.logsumexp(x, axis=(np.int32(0), 1))),
                               np.asarray(jnn.logsumexp(jnp.ones((2, 3)))), rtol=1e-6)
    with pytest.raises(TypeError, match="softmax: axis must be an int, a tuple of ints or None, got float 1.0"):
        xpnn.softmax(x, axis=1.0)
    with pytest.raises(TypeError, match="glu: axis must be an int, got bool True"):
        xpnn.glu(x, axis=True)


def test_torch_errors_name_the_public_function():
    t = torch.tensor([-2.0, 0.0, 2.0])
    np.testing.assert_array_equal(xpnn.soft_shrink(t, math.inf).numpy(), [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="rrelu: lower must be <= upper, got lower=0.3, upper=0.1"):
        xpnn.rrelu(t, 0.3, 0.1)
    with pytest.raises(TypeError, match=r"^threshold\(\) missing 2 required positional arguments"):
        xpnn.threshold(t)
    with pytest.raises(TypeError, match=r"^prelu\(\) missing 1 required positional argument"):
        xpnn.prelu(t)


@pytest.mark.parametrize("bounds", [(5.0, 6.0), (3.0, 4.0), (4.0, 5.0), (-6.0, -5.0), (-2.0, 2.0)])
def test_truncated_normal_tails_match_jax(bounds):
    """The bounds' erf near 1 must be XLA's float32 erf to the bit: one ulp of u there moved
    samples in (5, 6) by up to 0.58."""
    xps = pytest.importorskip("array_api_strict")
    lower, upper = bounds
    with jax.enable_x64(False):
        want = np.asarray(jax.random.truncated_normal(jax.random.key(0), lower, upper, (2000,)))
        for like in (np, torch, xps, jnp):
            got = np.asarray(xpnn.random.truncated_normal(xpnn.random.key(0, like=like), lower, upper, (2000,),
                                                          "float32"))
            np.testing.assert_array_less(np.abs(got - want), 4 * np.spacing(np.abs(want)) + 1e-30)
            assert got.min() > lower and got.max() < upper


def test_embed_never_wraps_unsigned_ids():
    model = xpnn.Embed(5, 3)
    variables = model.init(xpnn.random.key(0), jnp.array([0]))
    import flax.linen as fnn

    ids = jnp.array([2**32 - 1, 4, 2**31], jnp.uint32)
    want = np.asarray(fnn.Embed(5, 3).apply(variables, ids))
    assert np.isnan(want[0]).all() and np.isnan(want[2]).all()
    np.testing.assert_array_equal(np.asarray(model.apply(variables, ids)), want)
    numpy_variables = xpnn.to_backend(variables, np)
    got = model.apply(numpy_variables, np.array([2**64 - 1, 4, 255], np.uint64))
    assert np.isnan(got[0]).all() and np.isnan(got[2]).all()
    np.testing.assert_array_equal(got[1], want[1])


def test_huge_numpy_draw_fails_at_once():
    import time

    start = time.perf_counter()
    with pytest.raises(MemoryError, match="xpnn.random: a draw of 68719476736 values does not fit in memory"):
        xpnn.random.normal(xpnn.random.key(0), (2**36,))
    assert time.perf_counter() - start < 30  # it ran slice by slice for over a minute


def test_numpy_scalar_leaves_move_to_every_library():
    tree = {"a": np.float32(1.5), "b": np.int64(3)}
    moved = xpnn.to_backend(tree, torch)
    assert isinstance(moved["a"], torch.Tensor) and moved["a"].shape == () and float(moved["a"]) == 1.5
    assert moved["a"].dtype == torch.float32 and moved["b"].dtype == torch.int64
    assert xpnn.to_backend(tree, jnp)["a"].dtype == jnp.float32


def test_ml_dtypes_bfloat16_numpy_arrays_are_refused_clearly():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = np.array([1.0, -2.0], dtype=ml_dtypes.bfloat16)
    with pytest.raises(TypeError, match=r"xpnn.relu: the NumPy array has dtype bfloat16, an extension dtype"):
        xpnn.relu(x)
    with pytest.raises(TypeError, match=r"Dense: inputs: the NumPy array has dtype bfloat16.*x.astype\(numpy.float32\)"):
        xpnn.Dense(2).init(xpnn.random.key(0), x)


@pytest.mark.parametrize("like", ["numpy", "torch", "jax"])
def test_arguments_checked_before_any_fast_path(like):
    """jax's fast paths raised jax's own errors (jnp.max, unhashable static arguments)."""
    make = {"numpy": np.asarray, "torch": torch.tensor, "jax": jnp.asarray}[like]
    x = make([1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="xpnn.softmax: where must be a boolean array, got dtype"):
        xpnn.softmax(x, where=make([1, 0, 1]))
    for function in (xpnn.softmax, xpnn.log_softmax, xpnn.softmin, xpnn.logmeanexp):
        np.testing.assert_allclose(np.asarray(function(x, where=[True, False, True])),
                                   np.asarray(function(x, where=make([True, False, True]))))
    ids = make([1, 0]) if like != "torch" else torch.tensor([1, 0])
    np.testing.assert_array_equal(np.asarray(xpnn.one_hot(ids, np.int64(3))), np.eye(3)[[1, 0]])
    if like == "jax":
        np.testing.assert_array_equal(np.asarray(xpnn.one_hot(ids, jnp.asarray(3))), np.eye(3)[[1, 0]])
    with pytest.raises(TypeError, match="xpnn.one_hot: num_classes must be a non-negative int, got float 3.0"):
        xpnn.one_hot(ids, 3.0)
    out = xpnn.one_hot(ids, 3, dtype="int32")
    assert "int32" in str(out.dtype)
    with pytest.raises(TypeError, match="xpnn.rrelu: key must be None or a key array from xpnn.random.key, got int 3"):
        xpnn.rrelu(x, key=3)
    np.testing.assert_allclose(np.asarray(xpnn.tanh_shrink(make([1, 2]))), np.asarray([1, 2]) - np.tanh([1, 2]),
                               rtol=1e-6)


def test_mixed_libraries_are_named_up_front():
    key = xpnn.random.key(0)
    with pytest.raises(TypeError, match="xpnn.random.uniform: key is a numpy array but minval is a torch array"):
        xpnn.random.uniform(key, (3,), minval=torch.tensor(0.0))
    with pytest.raises(TypeError, match="xpnn.random.bernoulli: key is a numpy array but p is a torch array"):
        xpnn.random.bernoulli(key, torch.tensor(0.5))
    with pytest.raises(TypeError, match="xpnn.random.key: like must be an array or an array namespace module.*import torch"):
        xpnn.random.key(0, like="torch")
    with pytest.raises(TypeError, match="xpnn.to_backend: like must be .*got str 'numpy'"):
        xpnn.to_backend({}, "numpy")
    np.testing.assert_array_equal(xpnn.one_hot(np.array([1]), 3, dtype=torch.int32), [[0, 1, 0]])


def test_layer_errors_name_the_module_and_the_fix():
    x = np.ones((2, 3), np.float32)
    key = xpnn.random.key(0)
    with pytest.raises(xpnn.ModuleError, match="Dense: features must be non-negative ints, got -1"):
        xpnn.Dense(-1).init(key, x)
    with pytest.raises(xpnn.ModuleError, match=r"DenseGeneral: features must be non-negative ints, got \(2, -1\)"):
        xpnn.DenseGeneral((2, -1)).init(key, x)
    with pytest.raises(TypeError, match=r"Dense.init: rngs must be a key, got int 0; make one with xpnn.random.key"):
        xpnn.Dense(4).init(0, x)
    with pytest.raises(TypeError, match=r"^Dense.init: rngs must be a key, a \(2,\) uint32 array from "
                                        r"xpnn.random.key\(seed\), got an array of shape \(2, 3\) and dtype float32; "
                                        r"the key comes first: init\(key, \*inputs\)"):
        xpnn.Dense(4).init(x)  # the input taken for the key
    with pytest.raises(TypeError, match=r"^LSTMCell.init: missing a required argument: 'inputs' for "
                                        r"LSTMCell.__call__\(carry, inputs\)$"):
        xpnn.LSTMCell(4).init(key, x)  # Python's own words named _DenseCell, where the method is defined
    with pytest.raises(TypeError, match=r"^Dense.apply: too many positional arguments for Dense.__call__\(inputs\)$"):
        xpnn.Dense(4).apply(xpnn.Dense(4).init(key, x), x, x)
    with pytest.raises(xpnn.ModuleError, match=r"Dropout: broadcast_dims=\(5,\) is out of range for inputs of 2"):
        xpnn.Dropout(0.5, broadcast_dims=(5,)).apply({}, x, deterministic=False, rngs={"dropout": key})
    with pytest.raises(xpnn.ModuleError, match="Einsum: label 'b' of 'ab,bc->ac' has size 3 in inputs"):
        xpnn.Einsum((5, 4), "ab,bc->ac").init(key, x)


def test_dropout_masks_follow_jax_x64_as_flax():
    """With x64 on, flax draws its masks from float64 uniforms; so does xpnn on jax arrays."""
    import flax.linen as fnn

    x = np.ones((4, 64), np.float32)
    with jax.enable_x64(True):
        want = np.asarray(fnn.Dropout(0.5, deterministic=False).apply({}, jnp.asarray(x), rngs={"dropout": jax.random.key(2)}))
        got = np.asarray(xpnn.Dropout(0.5, deterministic=False).apply({}, jnp.asarray(x), rngs={"dropout": xpnn.random.key(2)}))
    np.testing.assert_array_equal(got, want)


# -- from flax's own linen tests ---------------------------------------------------------------

def test_dense_general_sorts_its_axes_as_flax():
    import flax.linen as fnn

    x = np.random.default_rng(0).standard_normal((16, 8, 9, 10)).astype(np.float32)
    flax_variables = fnn.DenseGeneral((11, 12), axis=(3, -2)).init(jax.random.key(0), jnp.asarray(x))
    assert flax_variables["params"]["kernel"].shape == (9, 10, 11, 12)
    variables = xpnn.DenseGeneral((11, 12), axis=(3, -2)).init(xpnn.random.key(0), x)
    assert variables["params"]["kernel"].shape == (9, 10, 11, 12)
    want = np.asarray(fnn.DenseGeneral((11, 12), axis=(3, -2)).apply(flax_variables, jnp.asarray(x)))
    got = xpnn.DenseGeneral((11, 12), axis=(3, -2)).apply(xpnn.to_backend(flax_variables, np), x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_apply_takes_a_bound_method():
    model = xpnn.Embed(4, 3)
    variables = model.init(xpnn.random.key(0), np.array([1]))
    query = np.ones((1, 3), np.float32)
    np.testing.assert_array_equal(model.apply(variables, query, method=model.attend),
                                  model.apply(variables, query, method="attend"))


def test_modules_hash_and_compare_by_their_fields():
    assert xpnn.Embed(2, 3) == xpnn.Embed(2, 3) and hash(xpnn.Embed(2, 3)) == hash(xpnn.Embed(2, 3))
    assert xpnn.Embed(2, 3) != xpnn.Embed(2, 4) and xpnn.Dense(3) != xpnn.Embed(2, 3)
    assert len({xpnn.Dense(3), xpnn.Dense(3), xpnn.Dense(4)}) == 2
    static = jax.jit(lambda m, x: m.apply({}, x, deterministic=True), static_argnums=0)
    np.testing.assert_array_equal(np.asarray(static(xpnn.Dropout(0.5), jnp.ones(3))), np.ones(3))


def test_torch_vmap_of_the_reductions():
    x = torch.randn(3, 4, dtype=torch.float64)
    want = torch.logsumexp(x, 1) - math.log(4)
    np.testing.assert_allclose(torch.func.vmap(xpnn.logmeanexp)(x).numpy(), want.numpy(), rtol=1e-12)
    with xpnn.fast_paths(False):
        np.testing.assert_allclose(torch.func.vmap(xpnn.logsumexp)(x).numpy(), torch.logsumexp(x, 1).numpy(), rtol=1e-12)
    weighted = torch.func.vmap(lambda v: xpnn.logsumexp(v, b=torch.ones(4, dtype=torch.float64)))(x)
    np.testing.assert_allclose(weighted.numpy(), torch.logsumexp(x, 1).numpy(), rtol=1e-12)


@pytest.mark.parametrize("setting", ["\u00b2", "\u0663", "0", "-1", "abc"])
def test_bad_thread_settings_fail_at_import(setting):
    import os
    import subprocess
    import sys

    env = {**os.environ, "XPNN_NUM_THREADS": setting}
    result = subprocess.run([sys.executable, "-c", "import xpnn"], env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "XPNN_NUM_THREADS must be a positive integer (ASCII digits)" in result.stderr


def test_thread_setting_is_capped_at_the_cores():
    import os
    import subprocess
    import sys

    env = {**os.environ, "XPNN_NUM_THREADS": "999999"}
    code = "import xpnn; from xpnn.backends import _numpy_slices as s; print(s.WORKERS)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert int(out.stdout) == (os.cpu_count() or 1)


@pytest.mark.parametrize("like", ["numpy", "torch", "jax"])
def test_complex_inputs_keep_their_imaginary_part(like):
    import flax.linen as fnn

    x = np.array([[1 + 2j, 3 - 1j]], np.complex64)
    want = np.asarray(fnn.Dense(2, kernel_init=jax.nn.initializers.ones).init_with_output(
        jax.random.key(0), jnp.asarray(x))[0])
    make = {"numpy": np.asarray, "torch": torch.from_numpy, "jax": jnp.asarray}[like]
    got, _ = xpnn.Dense(2, kernel_init=xpnn.initializers.ones).init_with_output(xpnn.random.key(0), make(x))
    assert "complex64" in str(got.dtype)
    np.testing.assert_allclose(np.asarray(got), want)


def test_sequential_callables_may_create_submodules_as_in_flax():
    import flax.linen as fnn

    x = np.ones((2, 3), np.float32)
    ours = xpnn.Sequential([lambda v: xpnn.Dense(v.shape[-1])(v), xpnn.relu, xpnn.Dense(2)]).init(xpnn.random.key(0), x)
    theirs = fnn.Sequential([lambda v: fnn.Dense(v.shape[-1])(v), fnn.relu, fnn.Dense(2)]).init(
        jax.random.key(0), jnp.asarray(x))
    assert jax.tree_util.tree_structure(ours) == jax.tree_util.tree_structure(theirs)
    np.testing.assert_allclose(ours["params"]["Dense_0"]["kernel"], np.asarray(theirs["params"]["Dense_0"]["kernel"]),
                               rtol=1e-6)


@pytest.mark.parametrize("like", ["torch", "jax"])
def test_an_initializer_returning_numpy_arrays_is_converted(like):
    make = {"torch": torch.tensor, "jax": jnp.asarray}[like]
    model = xpnn.Embed(4, 3, embedding_init=lambda *_: np.ones((4, 3), np.float32))
    ids = make([1, 3])
    variables = model.init(xpnn.random.key(0), ids)
    assert type(variables["params"]["embedding"]) is type(ids)
    np.testing.assert_array_equal(np.asarray(model.apply(variables, ids)), np.ones((2, 3)))


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "written_once"])
@pytest.mark.parametrize("like", ["numpy", "array_api_strict"])
def test_no_floating_point_warnings_on_edge_values(like, fast):
    """NumPy printed RuntimeWarnings (overflow, invalid) where jax.nn is silent: every function, on
    the edge values, small and large (sliced) arrays, every float dtype, prints nothing."""
    import warnings

    from xpnn.conformance.cases import EDGE_VALUES

    xp = pytest.importorskip(like)
    with np.errstate(over="ignore"):
        base = np.asarray(list(EDGE_VALUES) + [3e38, -3e38, 1e30, -1e30, 88.8, -88.8, 2.0], np.float32)
    base = base[: len(base) // 2 * 2]  # an even length, for glu
    for dtype in ("float16", "float32", "float64"):
        if like == "array_api_strict" and dtype == "float16":
            continue
        with np.errstate(over="ignore"):
            for values in (base.astype(dtype), np.tile(base.astype(dtype), 40_000 if like == "numpy" else 1)):
                x = xp.asarray(values)
                signal = xp.reshape(x, (1, -1, 1))  # (batch, length, features) for the poolings
                wide = xp.concat([x, x, x])[:64]
                head = xp.reshape(wide, (1, 16, 2, 2))  # (B, T, N, H) for the attention functions
                calls = {"threshold": lambda f: f(x, 0.5, 1.0),
                         "dot_product_attention": lambda f: f(head, head, head, is_causal=True),
                         "dot_product_attention_weights": lambda f: f(head, head),
                         "make_attention_mask": lambda f: f(x[:8], x[:8]),
                         "make_causal_mask": lambda f: f(x[:8]),
                         "scaled_dot_general": lambda f: f(xp.reshape(wide, (2, 32)), xp.reshape(wide, (32, 2)),
                                                           (((1,), (0,)), ((), ())),
                                                           configs=[xpnn.get_scaled_dot_general_config("mxfp8")] * 2),
                         "prelu": lambda f: f(x, xp.asarray(np.asarray([0.25], dtype))),
                         "pool": lambda f: f(signal, 0.0, xp.add, (2,), padding="SAME"),
                         "avg_pool": lambda f: f(signal, (3,), padding="SAME", count_include_pad=False),
                         "max_pool": lambda f: f(signal, (2,), padding="SAME"),
                         "min_pool": lambda f: f(signal, (2,), padding="SAME")}
                with warnings.catch_warnings(), xpnn.fast_paths(fast):
                    warnings.simplefilter("error", RuntimeWarning)
                    for name in xpnn.FUNCTIONS:
                        if name in ("one_hot", "scaled_matmul"):
                            continue
                        calls.get(name, lambda f: f(x))(getattr(xpnn, name))


def test_complex_parameters_are_refused_naming_the_module():
    with pytest.raises(ValueError, match=r'Dense: parameter "kernel": variance_scaling: dtype must be a real floating '
                                         r"dtype, got complex64 \(complex parameters are not made yet"):
        xpnn.Dense(2, param_dtype="complex64").init(xpnn.random.key(0), np.ones((1, 2), np.float32))

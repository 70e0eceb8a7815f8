"""Convolutions and pooling: flax's documented examples, bad input, gradients, the fallback.

The conformance suite compares every layer case with flax.linen on every
backend and dtype (``conformance/models.py``: ``LAYER_CASES``, ``POOL_CASES``);
here are the examples of ../shared/REFERENCE.md E.2 and E.4 reproduced
exactly, the errors that flax gives bare or not at all, gradients against
flax's, and the standard-only primitives against the native ones under autograd.
"""
from __future__ import annotations

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import xpnn as nn
from conftest import BACKENDS
from xpnn._dispatch import adapter_of
from xpnn.backends import Adapter
from xpnn.conformance import models

ONES_KERNEL_4 = {"params": {"kernel": np.ones((4, 1, 1), np.float32), "bias": np.zeros(1, np.float32)}}
SIGNAL = np.arange(1, 6, dtype=np.float32).reshape(1, 5, 1)


def _ones_conv(backend, kernel: int, **kwargs):
    variables = {"params": {"kernel": np.ones((kernel, 1, 1), np.float32), "bias": np.zeros(1, np.float32)}}
    x = backend.asarray(SIGNAL, "float32")
    out = nn.Conv(1, (kernel,), **kwargs).apply(nn.to_backend(variables, x), x)
    return backend.to_numpy(out)[0, :, 0].tolist()


@pytest.mark.parametrize(("padding", "expected"), [
    ("SAME", [6, 10, 14, 12, 9]), ("CIRCULAR", [11, 10, 14, 13, 12]), ("CAUSAL", [1, 3, 6, 10, 14]),
    ("REFLECT", [8, 10, 14, 16, 16]), ("VALID", [10, 14]),
])
def test_flax_1d_padding_examples(backend, padding, expected):
    assert _ones_conv(backend, 4, padding=padding) == expected


def test_flax_1d_dilation_and_stride_examples(backend):
    assert _ones_conv(backend, 3, padding="CAUSAL", kernel_dilation=2) == [1, 2, 4, 6, 9]
    assert _ones_conv(backend, 3, padding="CIRCULAR", strides=2) == [8, 9, 10]
    assert _ones_conv(backend, 3, padding="SAME", strides=2) == [3, 9, 9]


def test_flax_conv_transpose_examples(backend):
    impulse = backend.asarray(np.array([1, 0, 0, 0, 0], np.float32).reshape(1, 5, 1), "float32")
    kernel = {"params": {"kernel": np.array([1, 2, 3], np.float32).reshape(3, 1, 1)}}
    for transpose, expected in ((False, [3, 2, 1, 0, 0, 0, 0]), (True, [1, 2, 3, 0, 0, 0, 0])):
        layer = nn.ConvTranspose(1, (3,), padding="VALID", use_bias=False, transpose_kernel=transpose)
        assert backend.to_numpy(layer.apply(nn.to_backend(kernel, impulse), impulse))[0, :, 0].tolist() == expected
    ones = {"params": {"kernel": np.ones((3, 1, 1), np.float32)}}
    x = backend.asarray(SIGNAL, "float32")
    layer = nn.ConvTranspose(1, (3,), strides=(2,), padding="VALID", use_bias=False)
    out = backend.to_numpy(layer.apply(nn.to_backend(ones, x), x))[0, :, 0].tolist()
    assert out == [1, 1, 3, 2, 5, 3, 7, 4, 9, 5, 5]


@pytest.mark.parametrize(("padding", "strides", "size"), [
    ("SAME", 1, 7), ("SAME", 2, 14), ("VALID", 1, 9), ("VALID", 2, 15), ("CIRCULAR", 1, 7), ("CIRCULAR", 2, 14),
    (1, 1, 7), (1, 2, 13), (((1, 2), (1, 2)), 1, 8), (((1, 2), (1, 2)), 2, 14),
])
def test_conv_transpose_output_sizes(padding, strides, size):
    layer = nn.ConvTranspose(2, (3, 3), strides=(strides, strides), padding=padding)
    variables = layer.init(nn.random.key(0), np.ones((1, 7, 7, 1), np.float32))
    assert layer.apply(variables, np.ones((1, 7, 7, 1), np.float32)).shape == (1, size, size, 2)


def test_flax_pooling_examples(backend):
    x = backend.asarray(np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1), "float32")

    def grid(out):
        return backend.to_numpy(out)[0, :, :, 0].tolist()

    assert grid(nn.max_pool(x, (2, 2))) == [[5, 6], [8, 9]]
    assert grid(nn.max_pool(x, (2, 2), (2, 2), "SAME")) == [[5, 6], [8, 9]]
    assert grid(nn.avg_pool(x, (2, 2), (2, 2), "SAME")) == [[3, 2.25], [3.75, 2.25]]
    assert grid(nn.avg_pool(x, (2, 2), (2, 2), "SAME", count_include_pad=False)) == [[3, 4.5], [7.5, 9]]
    np.testing.assert_allclose(grid(nn.avg_pool(x, (3, 3), padding=((1, 1), (1, 1)))),
                               [[12 / 9, 21 / 9, 16 / 9], [27 / 9, 45 / 9, 33 / 9], [24 / 9, 39 / 9, 28 / 9]], rtol=1e-6)
    assert grid(nn.avg_pool(x, (3, 3), padding=((1, 1), (1, 1)), count_include_pad=False)) == [
        [3, 3.5, 4], [4.5, 5, 5.5], [6, 6.5, 7]]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", models.POOL_CASES, ids=[case.label for case in models.POOL_CASES])
def test_pooling_matches_flax(backend, case, dtype):
    if dtype not in backend.dtypes:
        pytest.skip(f"{backend.name} has no {dtype}")
    checked = models.run_pool(case, backend, dtype)
    assert not checked.problem and checked.comparison.passed, (checked.problem, checked.comparison)


def test_pooling_dtypes_follow_flax(backend):
    ints = backend.xp.asarray(np.arange(12, dtype=np.int32).reshape(1, 3, 4, 1))
    assert nn.backends.dtype_name(nn.max_pool(ints, (2, 2)).dtype) == "int32"
    assert nn.backends.dtype_name(nn.min_pool(ints, (2, 2), padding="SAME").dtype) == "int32"
    average = nn.avg_pool(ints, (2, 2))
    assert backend.xp.isdtype(average.dtype, "real floating")


def test_max_pool_of_booleans_equals_flaxs(backend):
    """flax's max_pool takes booleans (a window's max: any of it True), padded with False; min_pool
    (not in flax) is all of it True, padded with True."""
    values = np.random.default_rng(0).random((2, 5, 6, 3)) > 0.7
    x = backend.asarray(values, "bool")
    for padding in ("VALID", "SAME", ((1, 2), (0, 1))):
        want = fnn.max_pool(jnp.asarray(values), (2, 3), strides=(2, 1), padding=padding)
        got = nn.max_pool(x, (2, 3), strides=(2, 1), padding=padding)
        assert got.dtype == x.dtype
        np.testing.assert_array_equal(backend.to_numpy(got), np.asarray(want))
        inverted = fnn.max_pool(jnp.asarray(~values), (2, 3), strides=(2, 1), padding=padding)
        np.testing.assert_array_equal(backend.to_numpy(nn.min_pool(x, (2, 3), strides=(2, 1), padding=padding)),
                                      ~np.asarray(inverted))


def test_conv_shapes_and_variables_follow_flax():
    cases = [(nn.Conv(6, (3, 3), feature_group_count=3), (1, 5, 5, 3), {"kernel": (3, 3, 1, 6), "bias": (6,)}),
             (nn.ConvLocal(4, (3, 3)), (1, 7, 7, 3), {"kernel": (7, 7, 27, 4), "bias": (7, 7, 4)}),
             (nn.ConvLocal(4, (3, 3), padding="VALID"), (1, 7, 7, 3), {"kernel": (5, 5, 27, 4), "bias": (5, 5, 4)}),
             (nn.ConvTranspose(4, (3, 3), transpose_kernel=True), (1, 5, 5, 3), {"kernel": (3, 3, 4, 3), "bias": (4,)})]
    for layer, shape, expected in cases:
        variables = layer.init(nn.random.key(0), np.ones(shape, np.float32))
        assert {k: v.shape for k, v in variables["params"].items()} == expected, layer


@pytest.mark.parametrize(("layer", "shape", "message"), [
    (nn.Conv(4, (3, 3), feature_group_count=2), (1, 5, 5, 3),
     "Conv: feature_group_count must be a positive int dividing the 3 input features, got 2"),
    (nn.Conv(3, (3, 3), feature_group_count=2), (1, 5, 5, 4),
     r"Conv: features \(3\) must be divisible by feature_group_count \(2\)"),
    (nn.Conv(4, (3, 3), padding="CAUSAL"), (1, 5, 5, 3), "Conv: padding 'CAUSAL' is only defined for 1-D"),
    (nn.Conv(4, (3,), padding="SAME", input_dilation=2), (1, 5, 3),
     "Conv: padding 'SAME' is not defined with input_dilation 2"),
    (nn.Conv(4, (3, 3), padding="FULL"), (1, 5, 5, 3), "Conv: padding must be 'SAME', 'VALID'"),
    (nn.Conv(4, (3, 3), padding=(1, 2, 3)), (1, 5, 5, 3), "Conv: padding must be 'SAME', 'VALID'.*got \\(1, 2, 3\\)"),
    (nn.Conv(4, (3, 3), strides=0), (1, 5, 5, 3), "Conv: strides must be an int or a sequence of 2 ints >= 1, got 0"),
    (nn.Conv(4, (3, 3)), (5, 5), r"Conv: inputs must have at least 3 dims, got shape \(5, 5\)"),
    (nn.Conv(0, (3, 3)), (1, 5, 5, 3), "Conv: features must be a positive int, got 0"),
    (nn.Conv(4, (2, 2), mask=np.ones((2, 2, 3, 5))), (1, 5, 5, 3), r"Conv: mask must have the kernel's shape"),
    (nn.ConvLocal(4, (3, 3), feature_group_count=3), (1, 5, 5, 3), "ConvLocal: feature_group_count must be 1"),
    (nn.Conv(4, (3, 3), padding="REFLECT"), (1, 1, 5, 3), r"Conv: REFLECT padding of \(1, 1\) needs more than 1"),
])
def test_bad_arguments_name_the_module_and_argument(layer, shape, message):
    with pytest.raises((TypeError, ValueError), match=message):
        layer.init(nn.random.key(0), np.ones(shape, np.float32))


def test_pooling_bad_arguments_name_the_function():
    x = np.ones((1, 4, 4, 1), np.float32)
    with pytest.raises(TypeError, match=r"xpnn.max_pool: window_shape must be a tuple of ints.*got 2 \(for one "):
        nn.max_pool(x, 2)
    with pytest.raises(ValueError, match=r"xpnn.avg_pool: padding must be 'SAME', 'VALID', 'SAME_LOWER' \(in any "
                                         r"case\) or 2 \(low, high\) pairs, got 1"):
        nn.avg_pool(x, (2, 2), padding=1)
    with pytest.raises(ValueError, match=r"xpnn.max_pool: inputs must have at least 4 dims.*got shape \(4, 4\)"):
        nn.max_pool(np.ones((4, 4)), (2, 2, 2))
    with pytest.raises(ValueError, match=r"xpnn.max_pool: padding must be 'SAME', 'VALID', 'SAME_LOWER' \(in any "
                                         r"case\) or 2 \(low, high\) pairs, got array"):
        nn.max_pool(x, (2, 2), padding=np.array([[1, 1], [0, 1]]))  # an array of pairs has no truth value
    with pytest.raises(ValueError, match="xpnn.min_pool: strides must be an int or a sequence of 2 ints >= 1"):
        nn.min_pool(x, (2, 2), strides=(1,))


_GRADIENT_LAYERS = [
    ("Conv", lambda L: L.Conv(3, (3, 3), strides=(2, 1), padding="CIRCULAR"), (2, 6, 5, 2)),
    ("Conv groups dilation", lambda L: L.Conv(4, (2, 2), feature_group_count=2, kernel_dilation=2), (2, 6, 6, 2)),
    ("ConvTranspose", lambda L: L.ConvTranspose(3, (3, 3), strides=(2, 2), transpose_kernel=True), (2, 4, 4, 2)),
    ("ConvLocal", lambda L: L.ConvLocal(3, (2, 2), padding="VALID"), (2, 4, 4, 2)),
]


@pytest.mark.parametrize(("label", "build", "shape"), _GRADIENT_LAYERS, ids=[case[0] for case in _GRADIENT_LAYERS])
@pytest.mark.parametrize("library", ["torch", "jax"])
def test_gradients_equal_flax(library, label, build, shape):
    """d(sum(layer(x) ** 2)) / d(params, x) by torch autograd and jax.grad through xpnn, against
    jax.grad through flax, in float64."""
    x = np.random.default_rng(0).standard_normal(shape)
    layer = build(fnn)
    variables = layer.init(jax.random.key(0), jnp.asarray(x))

    def flax_loss(params, inputs):
        return jnp.sum(layer.apply({"params": params}, inputs) ** 2)

    with jax.enable_x64(True):
        want_params, want_x = jax.grad(flax_loss, argnums=(0, 1))(
            jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), variables["params"]), jnp.asarray(x))
    ours = build(nn)
    if library == "jax":
        with jax.enable_x64(True):
            params = nn.tree_map(lambda a: jnp.asarray(a, jnp.float64), variables["params"])
            got_params, got_x = jax.grad(lambda p, i: jnp.sum(ours.apply({"params": p}, i) ** 2), argnums=(0, 1))(
                params, jnp.asarray(x))
            got_params, got_x = nn.tree_map(np.asarray, got_params), np.asarray(got_x)
    else:
        import torch

        params = nn.tree_map(lambda a: torch.tensor(np.asarray(a, np.float64), requires_grad=True), variables["params"])
        inputs = torch.tensor(x, requires_grad=True)
        (ours.apply({"params": params}, inputs) ** 2).sum().backward()
        got_params, got_x = nn.tree_map(lambda a: a.grad.numpy(), params), inputs.grad.numpy()
    np.testing.assert_allclose(got_x, np.asarray(want_x), rtol=1e-10, atol=1e-10)
    for name in want_params:
        np.testing.assert_allclose(got_params[name], np.asarray(want_params[name]), rtol=1e-10, atol=1e-10)


def test_torch_autograd_through_the_fallback_equals_the_native_path():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    lhs, rhs = rng.standard_normal((2, 6, 5, 4)), rng.standard_normal((3, 2, 2, 6))
    native = adapter_of(torch.zeros(1))
    fallback = Adapter(native.xp)
    grads = []
    for adapter in (native, fallback):
        a, b = torch.tensor(lhs, requires_grad=True), torch.tensor(rhs, requires_grad=True)
        y = adapter.conv_general_dilated(a, b, (2, 1), ((1, 1), (0, 1)), (1, 1), (1, 2), 2)
        pooled = adapter.reduce_window(y, -np.inf, "max", (1, 2, 2, 1), (1, 1, 1, 1), ((0, 0), (1, 0), (0, 1), (0, 0)))
        (pooled ** 2).sum().backward()
        grads.append((a.grad.numpy(), b.grad.numpy()))
    for native_grad, fallback_grad in zip(*grads):
        np.testing.assert_allclose(fallback_grad, native_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif("torch" not in BACKENDS, reason="torch is not installed")
def test_torch_native_pools_equal_the_fallback():
    import torch

    x = np.random.default_rng(2).standard_normal((2, 3, 7, 6, 4))
    native = adapter_of(torch.zeros(1))
    fallback = Adapter(native.xp)
    for reduction, init in (("max", -np.inf), ("min", np.inf), ("sum", 0.0)):
        for dims, strides, pads in (((1, 1, 3, 2, 1), (1, 1, 2, 1, 1), ((0, 0), (0, 0), (1, 1), (0, 1), (0, 0))),
                                    ((1, 2, 2, 2, 1), (1, 1, 2, 2, 1), ((0, 0), (1, 0), (0, 0), (1, 1), (0, 0)))):
            want = fallback.reduce_window(torch.from_numpy(x), init, reduction, dims, strides, pads)
            got = native.reduce_window(torch.from_numpy(x), init, reduction, dims, strides, pads)
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)


@pytest.mark.parametrize("library", ["torch", "jax"])
@pytest.mark.parametrize("case", [case for case in models.POOL_CASES if case.function != "pool"],
                         ids=[case.label for case in models.POOL_CASES if case.function != "pool"])
def test_pooling_gradients_equal_flax(library, case):
    """d(sum(pool(x) ** 2)) / dx by torch autograd and jax.grad through xpnn, against jax.grad
    through flax, in float64 (ties of max/min pools broken alike: the input has none)."""
    import flax.linen.pooling as flax_pooling

    x = np.random.default_rng(3).standard_normal(case.shape)
    reference = getattr(fnn, case.function, None) or getattr(flax_pooling, case.function)
    with jax.enable_x64(True):
        want = np.asarray(jax.grad(lambda a: jnp.sum(reference(a, **case.kwargs) ** 2))(jnp.asarray(x)))
        if library == "jax":
            got = np.asarray(jax.grad(lambda a: jnp.sum(getattr(nn, case.function)(a, **case.kwargs) ** 2))(
                jnp.asarray(x)))
    if library == "torch":
        import torch

        inputs = torch.tensor(x, requires_grad=True)
        (getattr(nn, case.function)(inputs, **case.kwargs) ** 2).sum().backward()
        got = inputs.grad.numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_pooling_takes_lists_where_flax_takes_tuples(backend):
    """Window, strides and padding as (nested) lists, as a user writes them: on jax they are the
    compiled function's static arguments, which must be hashable."""
    x = backend.asarray(np.random.default_rng(4).standard_normal((2, 5, 4, 3)), "float32")
    want = backend.to_numpy(nn.max_pool(x, (2, 2), (1, 2), ((1, 1), (0, 1))))
    got = backend.to_numpy(nn.max_pool(x, [2, 2], strides=[1, 2], padding=[[1, 1], [0, 1]]))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("layer", ["Conv", "ConvTranspose", "ConvLocal"])
@pytest.mark.parametrize("padding", [[(2, 2), (1, 1)], [[2, 1], [0, 3]], [1, 2]], ids=["pairs", "lists", "ints"])
def test_convolutions_take_paddings_as_lists_as_flax(backend, layer, padding):
    """Explicit paddings written as lists (of pairs, lists or ints), as flax takes them: flax's
    outputs with flax's variables."""
    x = np.random.default_rng(5).standard_normal((2, 7, 6, 3)).astype(np.float32)
    theirs = getattr(fnn, layer)(4, (3, 2), padding=padding)
    variables = theirs.init(jax.random.key(0), jnp.asarray(x))
    inputs = backend.asarray(x, "float32")
    got = getattr(nn, layer)(4, (3, 2), padding=padding).apply(nn.to_backend(variables, inputs), inputs)
    np.testing.assert_allclose(backend.to_numpy(got), theirs.apply(variables, jnp.asarray(x)), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("padding", ["same", "Valid", "SAME_LOWER", "same_lower"])
def test_lax_padding_names_in_any_case_as_flax(padding):
    """flax hands Conv's, ConvLocal's and the pools' string paddings to lax, which reads 'SAME',
    'VALID' and 'SAME_LOWER' (the extra element first) in any case: flax's outputs, at strides 1
    and 2 on an even kernel where SAME and SAME_LOWER differ (xpnn refused all but 'SAME' and
    'VALID').  The modes flax reads itself stay upper case in both ('circular' is an error)."""
    x = np.random.default_rng(9).standard_normal((2, 7, 6, 3)).astype(np.float32)
    for strides in (1, 2):
        for layer in ("Conv", "ConvLocal"):
            theirs = getattr(fnn, layer)(4, (4, 3), strides=strides, padding=padding)
            variables = theirs.init(jax.random.key(0), jnp.asarray(x))
            got = getattr(nn, layer)(4, (4, 3), strides=strides, padding=padding).apply(
                nn.to_backend(variables, torch), torch.from_numpy(x))
            np.testing.assert_allclose(got.numpy(), theirs.apply(variables, jnp.asarray(x)), rtol=2e-5, atol=2e-5)
        for function in ("max_pool", "avg_pool"):
            want = getattr(fnn, function)(jnp.asarray(x), (2, 3), strides=(strides, strides), padding=padding)
            got = getattr(nn, function)(x, (2, 3), strides=(strides, strides), padding=padding)
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    with pytest.raises(Exception):  # noqa: B017 - flax's own error
        fnn.max_pool(jnp.asarray(x), (2, 2), padding="circular")
    with pytest.raises(ValueError, match=r"xpnn.max_pool: padding must be 'SAME', 'VALID', 'SAME_LOWER' \(in any "
                                         r"case\) or 2 \(low, high\) pairs, got 'circular'"):
        nn.max_pool(x, (2, 2), padding="circular")


@pytest.mark.parametrize("function", ["Conv", "ConvTranspose", "max_pool", "avg_pool"])
def test_windows_wider_than_the_input_give_flaxs_empty_output(backend, function):
    """A window that reaches past the (padded) input: flax's empty output (torch's kernels refuse
    it, so xpnn takes the standard-only version there), on every backend."""
    x = np.random.default_rng(8).standard_normal((2, 2, 5, 3))
    if function in ("max_pool", "avg_pool"):
        want = getattr(fnn, function)(jnp.asarray(x, jnp.float32), (3, 2), padding="VALID")
        got = getattr(nn, function)(backend.asarray(x, "float32"), (3, 2), padding="VALID")
    else:
        kwargs = {"padding": "VALID"} if function == "Conv" else {"padding": ((-1, -1), (0, 0))}
        reference = getattr(fnn, function)(4, (3, 2), **kwargs)
        variables = reference.init(jax.random.key(0), jnp.asarray(x, jnp.float32))
        want = reference.apply(variables, jnp.asarray(x, jnp.float32))
        xb = backend.asarray(x, "float32")
        got = getattr(nn, function)(4, (3, 2), **kwargs).apply(nn.to_backend(variables, xb), xb)
    assert 0 in want.shape
    assert tuple(got.shape) == tuple(want.shape)

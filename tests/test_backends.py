"""Dispatch, laziness, tracing and the standard-only primitives."""
from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest

import xpnn
from xpnn._dispatch import adapter_of
from xpnn.backends import _fallback
from xpnn.conformance import runner
from xpnn.conformance.cases import CASES
from xpnn.conformance.compare import compare

CASE_IDS = [case.label for case in CASES]


def _case_arrays(case, backend_name, dtype, rng):
    """The backend, the case's float64 inputs, its extra arrays, and the inputs on the backend."""
    from xpnn.conformance.backends import load

    backend = load(backend_name)
    x64 = runner.case_inputs(case, rng)
    extra = runner.extra_inputs(case, rng, x64.shape)
    return backend, x64, extra, backend.asarray(x64, dtype)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_traces_under_jax_jit(case, rng):
    """No Python branching on array values: every function traces, with and without fast paths."""
    jax = pytest.importorskip("jax")
    backend, x64, extra, x = _case_arrays(case, "jax", "float32", rng)
    eager = backend.to_numpy(runner.call_xpnn(case, backend, x, extra, "float32"))
    for fast in (True, False):
        with xpnn.fast_paths(fast):
            jitted = jax.jit(lambda v: runner.call_xpnn(case, backend, v, extra, "float32"))
            traced = backend.to_numpy(jitted(x))
        assert compare(traced, eager, "float32", runner.magnitude(case, x64)).passed


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_dask_stays_lazy(case, rng):
    """No function computes the graph: a scheduler that refuses to run proves it."""
    dask = pytest.importorskip("dask")
    backend, x64, extra, x = _case_arrays(case, "dask", "float64", rng)

    def refuse(*args, **kwargs):
        raise AssertionError("the dask graph was computed inside an xpnn call")

    with dask.config.set(scheduler=refuse):
        out = runner.call_xpnn(case, backend, x, extra, "float64")
    assert type(out).__module__.startswith("dask")
    expected = runner.call_reference(case, backend.to_numpy(x), extra, "float64")
    assert compare(backend.to_numpy(out), expected, "float64", runner.magnitude(case, x64)).passed


def test_python_input_goes_to_numpy():
    out = xpnn.relu([-1.0, 2.0])
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, [0.0, 2.0])
    assert isinstance(xpnn.sigmoid(0.0), (np.ndarray, np.generic))


def test_python_input_follows_the_other_arrays():
    torch = pytest.importorskip("torch")
    out = xpnn.softmax([1.0, 2.0, 3.0], where=torch.tensor([True, False, True]))
    assert isinstance(out, torch.Tensor)


def test_mixed_libraries_raise_naming_both():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="numpy and torch|torch and numpy"):
        xpnn.softmax(torch.ones(3), where=np.ones(3, dtype=bool))
    with pytest.raises(TypeError, match="two libraries"):
        xpnn.leaky_relu(np.ones(3), torch.tensor(0.1))


def test_non_array_input_is_a_clear_type_error():
    with pytest.raises(TypeError, match="expected an array"):
        xpnn.relu("not an array")
    with pytest.raises(TypeError, match="expected an array"):
        xpnn.relu(object())


def test_numpy_matrix_is_refused():
    """np.matrix's ``*`` is a matrix product: written-once code would compute something else."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        matrix = np.asmatrix(np.ones((3, 3), np.float32))
    for function in (xpnn.relu, xpnn.gelu, xpnn.softmax):
        for _ in range(2):  # refused every time, not only before a cache is filled
            with pytest.raises(TypeError, match="numpy.matrix, whose \\* is a matrix product"):
                function(matrix)


def test_numpy_masked_array_is_refused():
    """A masked array's float32 arithmetic with Python numbers gives float64: written-once code
    would change the dtype (gelu) or round otherwise, and its mask is no part of the Array API."""
    masked = np.ma.masked_array(np.ones(3, np.float32), mask=[False, True, False])
    for function in (xpnn.relu, xpnn.gelu, xpnn.selu, xpnn.softmax):
        for _ in range(2):
            with pytest.raises(TypeError, match="numpy.ma.MaskedArray, whose arithmetic .* promotes float32 to float64"):
                function(masked)
    with pytest.raises(TypeError, match="numpy.ma.MaskedArray"):
        xpnn.softmax(np.ones(3, np.float32), where=np.ma.masked_array([True, False, True]))


def test_result_on_the_input_device(backend):
    import array_api_compat

    x = backend.asarray(np.linspace(-2, 2, 8), "float32")
    for function in (xpnn.relu, xpnn.gelu, xpnn.softmax, xpnn.logsumexp):
        out = function(x)
        assert array_api_compat.device(out) == array_api_compat.device(x)


def test_list_axes_and_shapes_as_jax_takes_them(backend):
    """``axis=[0]`` and ``shape=[2, 3]`` work as in jax.nn.softmax and jax.random on every
    backend: a compiled fast path must not choke on an unhashable static argument."""
    jax = pytest.importorskip("jax")
    data = np.linspace(-2, 2, 6).reshape(2, 3)
    x = backend.asarray(data, "float64")
    expected = [jax.nn.softmax(data, axis=[0]), jax.nn.log_softmax(data, (1,)), jax.nn.logsumexp(data, [0, 1])]
    expected_normal = jax.random.normal(jax.random.key(3), [2, 3], dtype="float64")
    outs = [xpnn.softmax(x, axis=[0]), xpnn.log_softmax(x, [1]), xpnn.logsumexp(x, [0, 1])]
    for out, reference in zip(outs, expected):
        np.testing.assert_allclose(backend.to_numpy(out), reference, rtol=1e-13, atol=0)
    normal = xpnn.random.normal(xpnn.random.key(3, like=x), [2, 3], dtype=backend.xp.float64)
    np.testing.assert_allclose(backend.to_numpy(normal), expected_normal, rtol=1e-14, atol=0)


def test_arrays_converted_to_jax_keep_the_values_they_had_when_converted():
    """``to_backend`` of torch tensors to jax while jax is busy (its copy queued behind other
    work), the tensors changed in place right after: jax's arrays hold the values at the
    conversion (jax read the tensors' memory later, when it had been given it as it was)."""
    import jax.numpy as jnp
    import torch

    busy = jnp.ones((1000, 1000), jnp.float32)
    for _ in range(10):
        pending = busy @ busy  # work queued ahead of the copy
        tensor = torch.randn(1000, dtype=torch.float64)
        converted = xpnn.to_backend(tensor, jnp.zeros(1))
        want = tensor.numpy().copy()
        tensor.mul_(2)  # as torch's optimizers and power-method steps write
        np.testing.assert_array_equal(np.asarray(converted), want.astype(np.asarray(converted).dtype))
        del pending


def test_array_api_strict_second_device():
    """Constants must be made on the input's device, not the default one."""
    strict = pytest.importorskip("array_api_strict")
    device = strict.Device("device1")
    x = strict.asarray([[-1.0, 0.5, 2.0]], device=device)
    for out in (xpnn.relu(x), xpnn.one_hot(strict.asarray([0, 2], device=device), 3),
                xpnn.softmax(x, where=strict.asarray([[True, False, True]], device=device)),
                xpnn.gelu(x, approximate=False), xpnn.logsumexp(x, axis=-1, b=x)):
        assert out.device == device


@pytest.mark.parametrize("function", ["erf", "erfc"])
@pytest.mark.parametrize("dtype, max_ulp", [("float64", 10), ("float32", 1)])
def test_fallback_erf_accuracy(function, dtype, max_ulp):
    """The standard-only erf/erfc against 40-digit mpmath over the whole range."""
    mpmath = pytest.importorskip("mpmath")
    strict = pytest.importorskip("array_api_strict")
    mpmath.mp.dps = 40
    x = np.concatenate([np.linspace(-7, 7, 1401), np.geomspace(1e-30, 1, 100), np.linspace(1, 26, 300)])
    x = x.astype(dtype)
    got = np.from_dlpack(getattr(_fallback, function)(strict, strict.asarray(x))).astype(np.float64)
    exact = getattr(mpmath, function)
    expected = np.array([float(exact(mpmath.mpf(float(v)))) for v in x]).astype(dtype).astype(np.float64)
    ulp = np.spacing(np.abs(expected).astype(dtype)).astype(np.float64)
    nonzero = expected != 0
    assert np.all(got[~nonzero] == 0)
    errors = np.abs(got - expected)[nonzero] / ulp[nonzero]
    assert errors.max() <= max_ulp
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype=dtype)
    out = np.from_dlpack(getattr(_fallback, function)(strict, strict.asarray(specials)))
    reference = {"erf": [np.nan, 1.0, -1.0, 0.0, -0.0], "erfc": [np.nan, 0.0, 2.0, 1.0, 1.0]}[function]
    np.testing.assert_array_equal(out, np.array(reference, dtype=dtype))
    if function == "erf":
        assert math.copysign(1.0, out[4]) == -1.0  # erf(-0.0) = -0.0


@pytest.mark.parametrize("dtype, max_ulp", [("float64", 10), ("float32", 8)])
def test_every_erfc_primitive_is_accurate_in_the_tail(backend, dtype, max_ulp):
    """Each adapter's erfc against 40-digit mpmath, through the tail where SciPy's and XLA's
    kernels round the square in e^(-x*x) (500 ulp off near x = 25 in float64 before the
    adapters correct it), with erfc(+-inf) = 0, 2 and erfc(nan) = nan."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    x = np.unique(np.concatenate([np.linspace(-6, 27, 3301), [0.9999, 1.0, 1.0001]]).astype(dtype))
    array = backend.asarray(x, dtype)
    got = backend.to_numpy(adapter_of(array).erfc(array)).astype(np.float64)
    expected = np.array([float(mpmath.erfc(mpmath.mpf(float(v)))) for v in x])
    tiny = float(np.finfo(dtype).tiny)
    # below the smallest normal number, in units of it (XLA flushes such results to zero)
    ulp = np.where(np.abs(expected) < tiny, tiny, np.spacing(np.abs(expected).astype(dtype)).astype(np.float64))
    errors = np.abs(got - expected) / ulp
    assert errors.max() <= max_ulp, (x[np.argmax(errors)], errors.max())
    specials = backend.asarray(np.array([np.inf, -np.inf, np.nan]), dtype)
    out = backend.to_numpy(adapter_of(specials).erfc(specials)).astype(np.float64)
    np.testing.assert_array_equal(out, [0.0, 2.0, np.nan])


def test_fallback_erf_inv_float32_is_xlas():
    """The standard-only float32 erf_inv against jax.lax.erf_inv on the same inputs."""
    jax = pytest.importorskip("jax")
    strict = pytest.importorskip("array_api_strict")
    x = np.concatenate([np.linspace(-1, 1, 20001), 1 - np.geomspace(1e-7, 1e-2, 200)]).astype(np.float32)
    got = np.from_dlpack(_fallback.erf_inv_float32(strict, strict.asarray(x)))
    expected = np.asarray(jax.lax.erf_inv(jax.numpy.asarray(x)))
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(got[~finite], expected[~finite])
    ulps = np.abs(got[finite].view(np.int32).astype(np.int64) - expected[finite].view(np.int32).astype(np.int64))
    assert ulps.max() <= 3 and np.mean(ulps == 0) > 0.95


def test_numpy_erf_inv_is_the_standard_only_one_bit_for_bit():
    """The NumPy adapter's in-place erf_inv gives the fallback's bits, tail and edges included."""
    import array_api_compat.numpy as xp

    from xpnn.backends import numpy as numpy_backend

    rng = np.random.default_rng(0)
    x = np.concatenate([
        rng.uniform(-1, 1, 50_000), rng.uniform(0.996, 1, 20_000) * rng.choice([-1, 1], 20_000),
        [1.0, -1.0, 0.0, -0.0, np.nan, 2.0, -3.0, np.nextafter(np.float32(1), np.float32(0))],
    ]).astype(np.float32)
    with np.errstate(invalid="ignore"):
        for dtype in (np.float32, np.float16):
            expected = np.asarray(_fallback.erf_inv_float32(xp, x.astype(dtype))).astype(dtype)
            got = numpy_backend.ADAPTER(xp).erf_inv(x.astype(dtype))
            assert got.dtype == dtype
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("function", ["relu", "relu6", "hard_tanh", "hard_sigmoid", "hard_silu", "leaky_relu",
                                      "soft_sign", "gelu"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numpy_constant_operand_paths_on_every_layout(function, dtype):
    """The NumPy fast paths with cached constant operands give the written-once bits, zero
    signs included, for each way they take an array: a shape seen before and a new one, rows
    of the block and a tail (more than 65536 elements), C and Fortran order, strided views."""
    rng = np.random.default_rng(0)
    base = (rng.standard_normal((3, 70_001)) * 5).astype(dtype)
    base.flat[:7] = [-0.0, 0.0, np.nan, -np.inf, np.inf, -3.0, -1.0]
    layouts = [base[0, :1000], base[:, :5], base[:, :5].T, base[0, ::3], base, base.T,
               np.asfortranarray(base), base[:, ::2], base[:, :65_536].copy()]
    with np.errstate(invalid="ignore"):
        for x in layouts:
            for _ in range(2):  # the first call of a shape and a later one
                fast = getattr(xpnn, function)(x)
                with xpnn.fast_paths(False):
                    written_once = getattr(xpnn, function)(x)
                assert type(fast) is np.ndarray and fast.dtype == x.dtype and fast.shape == x.shape
                np.testing.assert_array_equal(fast, written_once)
                numbers = ~np.isnan(written_once)  # a NaN's sign bit means nothing
                np.testing.assert_array_equal(np.signbit(fast[numbers]), np.signbit(written_once[numbers]))


@pytest.mark.parametrize("function, parameter, values", [
    ("leaky_relu", "negative_slope", (0.0, 1e-8, 2.0**-14, 0.01, 1.0, 3.0, 65504.0, 1e30, math.inf, -0.5, math.nan)),
    ("soft_shrink", "lambd", (0.0, 1e-8, 2.0**-14, 0.5, 65504.0, 1e30, math.inf)),
])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_numpy_fast_paths_across_their_parameters(function, parameter, values, dtype):
    """leaky_relu and soft_shrink take a select-free form for some parameters only (a slope or
    lambd nonzero and finite in every dtype): the written-once bits, zero signs included, for
    parameters on both sides of those bounds, on the edge values."""
    from xpnn.conformance.cases import EDGE_VALUES

    rng = np.random.default_rng(0)
    x = np.concatenate([EDGE_VALUES, rng.standard_normal(200) * 3, rng.standard_normal(50) * 1e-40]).astype(dtype)
    with np.errstate(all="ignore"):
        for value in values:
            fast = getattr(xpnn, function)(x, **{parameter: value})
            with xpnn.fast_paths(False):
                written_once = getattr(xpnn, function)(x, **{parameter: value})
            assert fast.dtype == x.dtype, value
            np.testing.assert_array_equal(fast, written_once, err_msg=f"{parameter}={value}")
            np.testing.assert_array_equal(np.signbit(fast), np.signbit(written_once), err_msg=f"{parameter}={value}")


def test_numpy_constant_operands_keep_a_bounded_number_of_shapes():
    from xpnn.backends import numpy as numpy_backend

    constant = numpy_backend._Constant(0.0)
    for length in range(1, 2 * numpy_backend._SHAPES_KEPT):
        x = np.ones(length, np.float32)
        np.testing.assert_array_equal(numpy_backend._with_constant(np.maximum, x, constant), x)
    assert 0 < len(constant.views[np.dtype(np.float32)]) <= numpy_backend._SHAPES_KEPT


def test_numpy_leaky_relu_keeps_a_bounded_number_of_slopes():
    """Each slope in [2**-14, 1] becomes a kept constant operand; after more slopes than it
    keeps, every slope still gives the written-once bits, and fewer blocks are held."""
    import gc

    from xpnn.backends import numpy as numpy_backend

    x = np.linspace(-3, 3, 101, dtype=np.float32)
    slopes = [0.01 * k for k in range(1, 3 * numpy_backend._SLOPES_KEPT)]
    for _ in range(2):
        for slope in slopes:
            with xpnn.fast_paths(False):
                written_once = xpnn.leaky_relu(x, slope)
            np.testing.assert_array_equal(xpnn.leaky_relu(x, slope), written_once, err_msg=f"slope={slope}")
    gc.collect()
    kept = [value for value in gc.get_objects() if type(value) is numpy_backend._Constant and value.value in slopes]
    assert 0 < len(kept) <= numpy_backend._SLOPES_KEPT


SLICED_CALLS = [
    ("relu", {}), ("relu6", {}), ("hard_tanh", {}), ("hard_sigmoid", {}), ("hard_silu", {}),
    ("leaky_relu", {}), ("leaky_relu", {"negative_slope": 3.0}), ("leaky_relu", {"negative_slope": 0.0}),
    ("soft_shrink", {}), ("soft_shrink", {"lambd": 0.0}), ("elu", {}), ("elu", {"alpha": 2.0}),
    ("soft_sign", {}), ("sparse_plus", {}), ("softplus", {}), ("log_sigmoid", {}), ("gelu", {}),
    ("gelu", {"approximate": False}), ("sigmoid", {}), ("silu", {}), ("tanh", {}),
    ("softmax", {}), ("log_softmax", {"axis": 1}),
    # written-once on NumPy, sliced by the adapter's compile
    ("selu", {}), ("celu", {"alpha": 2.0}), ("mish", {}), ("squareplus", {"b": 3.0}), ("sparse_sigmoid", {}),
    ("log1mexp", {}), ("hard_shrink", {"lambd": 1.0}), ("tanh_shrink", {}), ("threshold", {"threshold": 0.5, "value": -1.0}),
    ("softmin", {}), ("standardize", {}), ("standardize", {"axis": 1, "epsilon": 1e-3, "algorithm": "stable"}),
]


@pytest.fixture
def small_slices(monkeypatch):
    """The NumPy adapter's slicing from 4096 elements, in three slices and pieces of 1000
    elements (whatever the cores), with every call of ``in_slices`` counted."""
    from xpnn.backends import _numpy_slices as slices

    calls = []
    in_slices = slices.in_slices
    monkeypatch.setattr(slices, "SLICED_FROM", {"compute": 1 << 12, "memory": 1 << 12})
    monkeypatch.setattr(slices, "WORKERS", 3)
    monkeypatch.setattr(slices, "PIECE", 1000)
    monkeypatch.setattr(slices, "in_slices", lambda *args, **kwargs: calls.append(args[0]) or in_slices(*args, **kwargs))
    return slices, calls


@pytest.mark.parametrize("function, kwargs", SLICED_CALLS, ids=[f"{f}-{k}" for f, k in SLICED_CALLS])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numpy_large_arrays_computed_in_slices_give_the_same_bits(small_slices, function, kwargs, dtype, monkeypatch):
    """A large C-contiguous array is computed in slices on several threads: the values (zero signs
    included), dtype and shape of the call without slices, edge values in every slice."""
    slices, calls = small_slices
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((67, 1031)) * 5).astype(dtype)  # slices of 24576 elements (24 rows)
    for start in (0, 24_572, 24_741, 49_150, x.size - 7):
        x.flat[start:start + 7] = [-0.0, 0.0, np.nan, -np.inf, np.inf, -3.0, 1e30]
    with np.errstate(all="ignore"):
        sliced = getattr(xpnn, function)(x, **kwargs)
        assert calls, "the call was not computed in slices"
        monkeypatch.setattr(slices, "SLICED_FROM", {"compute": 1 << 60, "memory": 1 << 60})
        whole = getattr(xpnn, function)(x, **kwargs)
    assert type(sliced) is np.ndarray and sliced.dtype == x.dtype and sliced.shape == x.shape
    np.testing.assert_array_equal(sliced, whole)
    numbers = ~np.isnan(whole)  # a nan's sign bit means nothing, and a row alone may flip it
    np.testing.assert_array_equal(np.signbit(sliced[numbers]), np.signbit(whole[numbers]))


@pytest.mark.parametrize("function", ["standardize", "softmin", "softmax", "log_softmax"])
def test_numpy_row_slices_of_a_3d_array_reduce_their_last_axis(small_slices, function, monkeypatch):
    """axis=2 of a 3-D array is the last axis of the row slices too."""
    slices, calls = small_slices
    x = np.random.default_rng(0).standard_normal((5, 13, 1031)).astype(np.float32)
    sliced = getattr(xpnn, function)(x, axis=2)
    assert calls
    monkeypatch.setattr(slices, "SLICED_FROM", {"compute": 1 << 60, "memory": 1 << 60})
    np.testing.assert_array_equal(sliced, getattr(xpnn, function)(x, axis=2))


def test_numpy_slices_only_what_they_can_compute_alone(small_slices):
    """softmax, softmin or standardize over another axis than the last, or with a where mask or a
    mean (they cross the slices), a Fortran-ordered or strided array, an array parameter or an
    integer input is not sliced; the results are the unsliced ones."""
    _, calls = small_slices
    x = np.random.default_rng(0).standard_normal((64, 300)).astype(np.float32)
    mask = x > -1
    for out, expected in [
        (xpnn.softmax(x, axis=0), np.exp(x) / np.exp(x).sum(0)),
        (xpnn.softmax(x, where=mask), np.where(mask, np.exp(x), 0) / np.where(mask, np.exp(x), 0).sum(-1, keepdims=True)),
        (xpnn.softmax(np.asfortranarray(x)), np.exp(x) / np.exp(x).sum(-1, keepdims=True)),
        (xpnn.tanh(x[:, ::2]), np.tanh(x[:, ::2])),
        (xpnn.softmin(x, axis=0), np.exp(-x) / np.exp(-x).sum(0)),
        (xpnn.standardize(x, axis=0), (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)),
        (xpnn.standardize(x, mean=np.zeros((64, 1), np.float32)), x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5)),
        (xpnn.celu(x, np.asarray(2.0)), np.where(x > 0, x, 2.0 * np.expm1(x / 2.0))),  # an array may broadcast
        (xpnn.mish(np.round(x).astype(np.int32)), np.round(x) * np.tanh(np.logaddexp(np.round(x), 0))),  # to float64
    ]:
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-7)
    assert not calls


def test_numpy_slices_follow_the_callers_floating_point_error_state(small_slices):
    """np.errstate holds on the threads that compute the slices: an overflow in the last slice
    raises under over="raise" and warns under nothing when ignored.  The functions whose formulas
    overflow by design (gelu's x**3) are silent whatever the caller's state, as jax.nn is."""
    _, calls = small_slices
    x = np.zeros(100_000, np.float32)  # above the 2^16 elements of NumPy's constant-operand paths
    x[-1] = -3e38  # leaky_relu's 2 * x overflows in float32
    with np.errstate(over="raise"), pytest.raises(FloatingPointError):
        xpnn.leaky_relu(x, 2.0)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("error")
        assert xpnn.leaky_relu(x, 2.0)[-1] == -np.inf
    x[-1] = 1e30  # gelu's x * x * x overflows in float32, by design
    with np.errstate(over="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        assert xpnn.gelu(x)[-1] == np.float32(1e30)
    assert len(calls) == 3


def _draw_and_slice_in_child(queue) -> None:
    x = np.ones(1 << 13, np.float32)
    queue.put((float(xpnn.tanh(x)[-1]), xpnn.random.normal(xpnn.random.key(0), (1 << 17,)).shape))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_numpy_threads_work_in_a_forked_child(small_slices):
    """A child forked after the pool's threads started (slices, random draws) makes its own
    pool instead of waiting on threads it does not have."""
    import multiprocessing

    _, calls = small_slices
    x = np.ones(1 << 13, np.float32)
    xpnn.tanh(x)
    xpnn.random.normal(xpnn.random.key(0), (1 << 17,))
    assert calls
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_draw_and_slice_in_child, args=(queue,))
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0, "the forked child hung or failed"
    assert queue.get(timeout=5) == (float(np.tanh(np.float32(1))), (1 << 17,))


@pytest.mark.parametrize("setting, expected", [("1", "1"), ("3", "3"), ("", None), ("two", "ValueError"), ("0", "ValueError")])
def test_xpnn_num_threads_sets_the_numpy_threads(setting, expected):
    """XPNN_NUM_THREADS (read when the NumPy adapter is imported) sets its threads; anything but
    a positive integer is refused, naming the variable."""
    import subprocess
    import sys

    code = "import os, xpnn.backends._numpy_slices as s; print(s.WORKERS, min(8, os.cpu_count() or 1))"
    environment = {**os.environ, "XPNN_NUM_THREADS": setting}
    out = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True)
    if expected == "ValueError":
        assert "XPNN_NUM_THREADS must be a positive integer" in out.stderr and repr(setting) in out.stderr
    else:
        workers, cores = out.stdout.split()
        # a setting above the machine's cores is capped at them
        assert int(workers) == (int(cores) if expected is None else min(int(expected), os.cpu_count() or 1))


def test_fallback_erf_inv_float64_accuracy():
    """The standard-only float64 erf_inv (with the standard-only erf/erfc) against 40-digit mpmath."""
    mpmath = pytest.importorskip("mpmath")
    strict = pytest.importorskip("array_api_strict")
    mpmath.mp.dps = 40
    x = np.concatenate([np.linspace(-0.999, 0.999, 301), 1 - np.geomspace(1e-16, 1e-3, 60), [0.5, 1e-300]])
    got = np.from_dlpack(_fallback.erf_inv_float64(
        strict, strict.asarray(x), lambda v: _fallback.erf(strict, v), lambda v: _fallback.erfc(strict, v)))
    expected = np.array([float(mpmath.erfinv(mpmath.mpf(float(v)))) for v in x])
    nonzero = expected != 0
    assert np.all(np.abs(got - expected)[nonzero] / np.spacing(np.abs(expected[nonzero])) <= 6)
    specials = np.from_dlpack(_fallback.erf_inv_float64(
        strict, strict.asarray(np.array([1.0, -1.0, 0.0, -0.0, np.nan])),
        lambda v: _fallback.erf(strict, v), lambda v: _fallback.erfc(strict, v)))
    np.testing.assert_array_equal(specials, [np.inf, -np.inf, 0.0, -0.0, np.nan])
    assert math.copysign(1.0, specials[3]) == -1.0


def test_adapter_registry():
    import array_api_compat.numpy as np_namespace

    from xpnn.backends import adapter_for_namespace

    adapter = adapter_for_namespace(np_namespace)
    assert adapter.name == "numpy"
    assert adapter_for_namespace(np_namespace) is adapter
    assert "relu" in adapter.fast_paths


EINSUMS = [
    ("abc,cde->abde", (2, 6, 5), (5, 3, 4)),
    ("ab,bc->ac", (3, 5), (5, 3)),
    ("...qhd,...khd->...hqk", (2, 5, 3, 4), (2, 7, 3, 4)),
    ("...ij,...jk->...ik", (1, 3, 4), (5, 4, 2)),  # a size-1 batch dim broadcasts
    ("ij,j", (3, 4), (4,)),  # implicit output
    ("ijk,jl->il", (2, 3, 4), (3, 5)),  # k is summed out before the product
    ("ij,kl->ijkl", (2, 3), (4, 5)),  # outer product
    ("ab,ab->a", (3, 4), (3, 4)),
    ("abc,ab->cb", (2, 3, 4), (2, 3)),
    ("ij->ji", (2, 3), None),
    ("ij->", (2, 3), None),
]


@pytest.mark.parametrize("subscripts, a_shape, b_shape", EINSUMS, ids=[e[0] for e in EINSUMS])
def test_einsum_matches_numpy(backend, subscripts, a_shape, b_shape, rng):
    """The adapter's einsum (the standard-only one on array-api-strict) against np.einsum."""
    operands = [rng.standard_normal(a_shape)] + ([] if b_shape is None else [rng.standard_normal(b_shape)])
    expected = np.einsum(subscripts, *operands)
    adapter = xpnn._dispatch.adapter_of(backend.asarray(operands[0], "float64"))
    out = backend.to_numpy(adapter.einsum(subscripts, *(backend.asarray(o, "float64") for o in operands)))
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-13, atol=1e-13)
    standard_only = _fallback.einsum(backend.xp, subscripts, *(backend.asarray(o, "float64") for o in operands))
    np.testing.assert_allclose(backend.to_numpy(standard_only), expected, rtol=1e-13, atol=1e-13)


def test_einsum_fallback_limits():
    import array_api_strict as xp

    with pytest.raises(NotImplementedError, match="repeated index"):
        _fallback.einsum(xp, "ii->i", xp.ones((2, 2)))
    with pytest.raises(NotImplementedError, match="one or two operands"):
        _fallback.einsum(xp, "a,a,a->a", xp.ones(2), xp.ones(2), xp.ones(2))
    with pytest.raises(ValueError, match="names 2 operands, got 1"):
        _fallback.einsum(xp, "a,a->a", xp.ones(2))


def _cupy_configured_paths() -> dict:
    """The fast paths CuPy's adapter builds (``masked_ufuncs=False``: no ``where=`` masks), with
    NumPy's ufuncs and ``scipy.special`` in place of CuPy's and ``cupyx.scipy.special``."""
    from scipy import special

    from xpnn.backends._ufuncs import ufunc_fast_paths

    return ufunc_fast_paths(np, special, masked_ufuncs=False)


CUPY_CONFIGURED = [case for case in CASES if case.function in _cupy_configured_paths() and case.extra is None]


@pytest.mark.parametrize("case", CUPY_CONFIGURED, ids=[case.label for case in CUPY_CONFIGURED])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cupy_configured_ufunc_paths_agree_with_written_once(case, dtype, rng):
    """The formulas and branches CuPy's fast paths take, run on a machine without a GPU: the
    written-once values, zero signs included, on the edge values.  CuPy's own kernels are
    checked by the conformance suite where a GPU answers."""
    x64 = runner.case_inputs(case, rng)
    x = x64.astype(dtype)
    with np.errstate(all="ignore"):
        fast = _cupy_configured_paths()[case.function](x, **case.kwargs)
        written_once = getattr(xpnn, case.function).written_once(adapter_of(x), x, **case.kwargs)
    if fast is NotImplemented:  # reductions over no single axis, and float64's exact gelu (whose
        # written-once form corrects erfc's argument), go to the written-once definition
        declined = type(case.kwargs.get("axis", -1)) is not int or (case.label, dtype) == (
            "gelu(approximate=False)", "float64")
        assert declined, f"{case.label} declined a {dtype} array"
        return
    assert fast.dtype == x.dtype and fast.shape == x.shape
    assert compare(fast, written_once, dtype, runner.magnitude(case, x64), zero_signs=True).passed

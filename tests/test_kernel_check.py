"""Native fast paths are checked on this machine at first use, and switched off when they disagree."""
from __future__ import annotations

import math
import threading
import warnings

import numpy as np
import pytest

import xpnn
from xpnn import _dispatch, _kernel_check


@pytest.fixture
def injected():
    """Replace an adapter's fast path for one function, and forget every check, for one test."""
    saved = []

    def inject(adapter, name, fast):
        saved.append((adapter, name, adapter.fast_paths.get(name, _dispatch._MISSING)))
        adapter.fast_paths[name] = fast
        _forget(name)

    yield inject
    for adapter, name, fast in reversed(saved):  # a name injected twice gets its first fast path back
        if fast is _dispatch._MISSING:
            adapter.fast_paths.pop(name, None)
        else:
            adapter.fast_paths[name] = fast
        _forget(name)


def _forget(name: str) -> None:
    with _kernel_check._LOCK:
        for key in [key for key in _kernel_check._OUTCOMES if key[0] == name]:
            del _kernel_check._OUTCOMES[key]
    _dispatch._forget_checked_fast_paths()


def _entries(name: str, backend: str) -> list[xpnn.SwitchedOff]:
    return [entry for entry in xpnn.fast_path_report() if (entry.function, entry.backend) == (name, backend)]


def test_torch_exact_gelu_of_inf_is_inf():
    """torch 2.13's vectorised exact gelu gives NaN for +inf on AVX512 CPUs; xpnn gives jax's inf."""
    torch = pytest.importorskip("torch")
    jnn = pytest.importorskip("jax.nn")
    values = [math.inf] * 20 + [-math.inf, 0.0, 1.0, -1.0, 3.0]
    for dtype in (torch.float32, torch.float64):
        got = xpnn.gelu(torch.tensor(values, dtype=dtype), approximate=False).numpy()
        want = np.asarray(jnn.gelu(np.asarray(values, dtype=str(dtype).split(".")[1]), approximate=False))
        np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)


def test_wrong_fast_path_is_switched_off_and_reported_once(injected):
    """A kernel that gives NaN for inf (as torch's gelu did) is caught at its first call: the
    right answer comes back, the report says why, and nothing is printed, however often it runs."""
    numpy_adapter = _dispatch.adapter_of(np.empty(0))
    calls = []

    def wrong_tanh(x):
        calls.append(x.dtype)
        out = np.tanh(x)
        out[np.isposinf(x)] = np.nan
        return out

    injected(numpy_adapter, "tanh", wrong_tanh)
    x = np.asarray([math.inf, 0.5, -math.inf, 2.0] * 8, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(50):
            out = xpnn.tanh(x)
    np.testing.assert_array_equal(out, np.tanh(x))
    assert len(calls) == 1  # the probe only: every call of the user's went to the written-once definition
    (entry,) = _entries("tanh", "numpy")
    assert (entry.dtype, entry.device) == ("float32", "cpu")
    assert "nan" in entry.reason and "inf" in entry.reason
    assert entry in xpnn.fast_path_report() and "tanh on numpy float32" in str(entry)


def _counted_numpy_tanh(injected) -> list:
    """NumPy's tanh fast path replaced by a right one that counts its calls (the list returned)."""
    calls = []

    def counted(x):
        calls.append(1)
        return np.tanh(x)

    injected(_dispatch.adapter_of(np.empty(0)), "tanh", counted)
    return calls


def test_right_fast_path_is_kept(injected):
    calls = _counted_numpy_tanh(injected)
    x = np.linspace(-3, 3, 9, dtype=np.float32)
    for _ in range(3):
        np.testing.assert_array_equal(xpnn.tanh(x), np.tanh(x))
    assert len(calls) == 4  # the probe, then every call
    assert not _entries("tanh", "numpy")


def test_trusted_call_takes_only_a_checked_fast_path(injected):
    """A layer's internal ``trusted`` call skips the argument checks, not the kernel check or
    the fast-path switch: a wrong kernel is switched off for it as for the public call."""
    numpy_adapter = _dispatch.adapter_of(np.empty(0))
    x = np.asarray([math.inf, 0.5, -math.inf, 2.0] * 8, dtype=np.float32)
    calls = _counted_numpy_tanh(injected)
    assert_equal = np.testing.assert_array_equal
    assert_equal(xpnn.tanh.trusted(numpy_adapter, x), np.tanh(x))
    with xpnn.fast_paths(False):
        assert_equal(xpnn.tanh.trusted(numpy_adapter, x), np.tanh(x))
    assert len(calls) == 2  # the probe and the first call; none with fast paths off

    def wrong_tanh(x):
        out = np.tanh(x)
        out[np.isposinf(x)] = np.nan
        return out

    injected(numpy_adapter, "tanh", wrong_tanh)
    assert_equal(xpnn.tanh.trusted(numpy_adapter, x), np.tanh(x))
    assert _entries("tanh", "numpy")


def test_check_is_per_dtype(injected):
    """A kernel wrong in float64 only keeps its float32 fast path."""
    numpy_adapter = _dispatch.adapter_of(np.empty(0))

    def wrong_in_float64(x):
        return np.tanh(x) + 1.0 if x.dtype == np.float64 else np.tanh(x)

    injected(numpy_adapter, "tanh", wrong_in_float64)
    assert float(xpnn.tanh(np.zeros(3, np.float64))[0]) == 0.0
    assert float(xpnn.tanh(np.zeros(3, np.float32))[0]) == 0.0
    assert [entry.dtype for entry in _entries("tanh", "numpy")] == ["float64"]


def test_kernel_raising_is_switched_off(injected):
    numpy_adapter = _dispatch.adapter_of(np.empty(0))

    def raising(x):
        raise FloatingPointError("broken loop")

    injected(numpy_adapter, "tanh", raising)
    np.testing.assert_array_equal(xpnn.tanh(np.ones(4)), np.tanh(np.ones(4)))
    (entry,) = _entries("tanh", "numpy")
    assert "FloatingPointError: broken loop" in entry.reason


def test_check_runs_eagerly_inside_jax_jit(injected):
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    jax_adapter = _dispatch.adapter_of(jnp.zeros(1))
    wrong = jax.jit(lambda x: jnp.where(jnp.isinf(x), jnp.nan, jnp.tanh(x)))
    injected(jax_adapter, "tanh", wrong)
    x = jnp.asarray([math.inf, 1.0, -2.0], dtype=jnp.float32)
    out = jax.jit(lambda v: xpnn.tanh(v))(x)
    np.testing.assert_allclose(np.asarray(out), np.tanh(np.asarray(x)), rtol=1e-6)
    (entry,) = _entries("tanh", "jax")
    assert entry.dtype == "float32"


def test_check_runs_in_full_float32_precision(injected):
    """The check compares a kernel's arithmetic, not the precision the user chose: it runs with
    torch's TF32 switches off (cuDNN's is on by default; its convolutions and fused LSTM loops
    on a GPU differ from float32 by TF32's rounding), and they are as the user left them after."""
    torch = pytest.importorskip("torch")
    adapter = _dispatch.adapter_of(torch.zeros(1))
    switches = (torch.backends.cudnn, torch.backends.cuda.matmul)
    before = [switch.allow_tf32 for switch in switches]
    seen = []

    def recording(x):
        seen.append([switch.allow_tf32 for switch in switches])
        return torch.tanh(x)

    injected(adapter, "tanh", recording)
    try:
        for switch in switches:
            switch.allow_tf32 = True
        xpnn.tanh(torch.ones(3))
        checked, called = seen[:-1], seen[-1]  # the check's probes, then the user's call
        assert checked and all(flags == [False, False] for flags in checked)
        assert called == [True, True] and [switch.allow_tf32 for switch in switches] == [True, True]
    finally:
        for switch, flag in zip(switches, before):
            switch.allow_tf32 = flag


def test_jax_full_precision_is_highest_matmul_precision():
    jax = pytest.importorskip("jax")
    with _dispatch.adapter_of(jax.numpy.zeros(1)).full_precision():
        assert jax.config.jax_default_matmul_precision == "highest"


def test_torch_declines_only_the_failing_device_kind():
    torch = pytest.importorskip("torch")
    adapter = _dispatch.adapter_of(torch.zeros(1))
    declining = adapter.decline_on(torch.tanh, frozenset({"cuda"}))
    x = torch.ones(3)
    assert torch.equal(declining(x), torch.tanh(x))
    assert adapter.decline_on(torch.tanh, frozenset({"cpu"}))(x) is NotImplemented


@pytest.mark.parametrize("library", ["numpy", "torch", "jax.numpy"])
def test_switched_off_kernels_are_real_defects(library):
    """Every fast path the check switches off on this machine is farther from the true value
    than the written-once definition that replaces it, so the check never switches off a right
    kernel (on a machine without a defective kernel the report is empty).  The true value is
    the reference framework's (jax.nn, or torch for its own functions) in float64, with the
    dtype's rounding and overflow."""
    lib = pytest.importorskip(library)
    jax = pytest.importorskip("jax")
    adapter = _dispatch.adapter_of(lib.asarray(0))
    name = adapter.name
    entries = [entry for entry in xpnn.check_fast_paths(lib, dtypes=("float32", "float64"))
               if entry.backend == name]
    native = {function for function, entry in _dispatch.REGISTRY.items()
              if adapter.fast_paths.get(function, entry.compiled.get(adapter)) is not None
              and function not in adapter.compiled_definitions}
    checked = {key[0] for key in _kernel_check._OUTCOMES if key[1] == name and key[2] == "float32"}
    assert native and native <= checked, native - checked  # every native kernel was really checked
    for entry in entries:
        assert entry.x is not None, entry
        args, kwargs = entry.arguments
        with jax.enable_x64(True):
            true = float(np.asarray(_reference(entry.function)(np.float64(entry.x), *args, **kwargs))
                         .astype(entry.dtype))
        assert _distance(entry.written_once, true) < _distance(entry.native, true), entry


def _reference(function: str):
    import jax.nn as jnn
    torch_f = pytest.importorskip("torch.nn.functional")
    torch = pytest.importorskip("torch")
    torch_names = {"hard_shrink": "hardshrink", "soft_shrink": "softshrink", "tanh_shrink": "tanhshrink",
                   "threshold": "threshold", "softmin": "softmin", "rrelu": "rrelu"}
    if function in torch_names:
        native = getattr(torch_f, torch_names[function])
        return lambda x, *a, **k: native(torch.tensor([x], dtype=torch.float64), *a, **k).numpy()[0]
    return getattr(jnn, function)


def _distance(value: float, true: float) -> float:
    if math.isnan(true) or math.isnan(value):
        return 0.0 if math.isnan(true) and math.isnan(value) else math.inf
    if math.isinf(true) or math.isinf(value):
        return 0.0 if value == true else math.inf
    return abs(value - true)


def test_fast_path_switch_is_per_thread():
    """Two threads' ``with fast_paths(False)`` blocks, overlapping, leave fast paths on after."""
    inside = threading.Barrier(2)
    seen = []

    def worker():
        with xpnn.fast_paths(False):
            inside.wait()
            seen.append(xpnn.fast_paths_enabled())
            inside.wait()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [False, False]
    assert xpnn.fast_paths_enabled() and _dispatch._switches == 0


def test_fast_path_block_in_one_thread_leaves_others_on():
    ready, done = threading.Event(), threading.Event()
    seen = []

    def other():
        ready.wait()
        seen.append(xpnn.fast_paths_enabled())
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    with xpnn.fast_paths(False):
        ready.set()
        done.wait()
        assert not xpnn.fast_paths_enabled()
    thread.join()
    assert seen == [True]


def test_set_fast_paths_off_wins_over_a_first_call_in_flight(injected):
    """A first call that fills the cache while another thread turns fast paths off does not
    leave the fast path running: every call reads the switch, not the cache's emptiness."""
    calls = _counted_numpy_tanh(injected)
    x = np.ones(5, np.float32)
    xpnn.tanh(x)  # the first call fills the cache
    xpnn.set_fast_paths(False)
    try:
        before = len(calls)
        xpnn.tanh(x)
        assert len(calls) == before
    finally:
        xpnn.set_fast_paths(True)
    xpnn.tanh(x)
    assert len(calls) == before + 1


@pytest.mark.parametrize("bad", ["False", 0, None])
def test_fast_path_switches_take_only_bools(bad):
    with pytest.raises(TypeError, match="xpnn.set_fast_paths: enabled must be True or False"):
        xpnn.set_fast_paths(bad)
    with pytest.raises(TypeError, match="xpnn.fast_paths: enabled must be True or False"):
        with xpnn.fast_paths(bad):
            pass
    assert xpnn.fast_paths_enabled()

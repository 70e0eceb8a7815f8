"""Test matrix: every installed backend (CuPy where a GPU answers), by name."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest

from xpnn.conformance import backends as conformance_backends
from xpnn.conformance.gradients import AUTODIFF

BACKENDS = {backend.name: backend for backend in conformance_backends.available()}


def _jax_on_the_cpu() -> None:
    """The test matrix runs jax on the CPU, its references (jax.nn, jax.random, flax) too, also
    where a GPU would be jax's default device: CuPy's tests compare with jax's CPU results
    (``python -m conformance --devices cuda`` checks jax on the GPU)."""
    if conformance_backends.installed("jax"):
        import jax

        jax.config.update("jax_default_device", jax.devices("cpu")[0])


_jax_on_the_cpu()

BACKEND_NAMES = [name for name in conformance_backends.BACKEND_NAMES if name != "cupy" or name in BACKENDS]


@pytest.fixture(params=BACKEND_NAMES)
def backend(request) -> conformance_backends.Backend:
    """A usable backend; skipped (with the reason) where the library is not installed."""
    if request.param not in BACKENDS:
        pytest.skip(f"{request.param} is not installed")
    return BACKENDS[request.param]


@pytest.fixture(params=[name for name in BACKEND_NAMES if name in AUTODIFF])
def autodiff_backend(request) -> conformance_backends.Backend:
    if request.param not in BACKENDS:
        pytest.skip(f"{request.param} is not installed")
    return BACKENDS[request.param]


def pytest_addoption(parser):
    parser.addoption("--full", action="store_true",
                     help="run the full matrix: the cases marked slow too")


def _slow(item) -> bool:
    """Marked ``slow``, or ``slow_on(*backends)`` and run on one of those backends."""
    if item.get_closest_marker("slow") is not None:
        return True
    callspec = getattr(item, "callspec", None)
    backend = (callspec.params.get("backend", callspec.params.get("autodiff_backend"))
               if callspec is not None else None)
    # every slow_on marker (a parameter's and the function's may both be there)
    return any(backend in marker.args for marker in item.iter_markers("slow_on"))


def pytest_collection_modifyitems(config, items):
    """Without --full, the slow cases are left out (deselected: the default run takes under 10
    minutes on 2 cores, each family still run on every backend); --full runs everything."""
    if config.getoption("--full"):
        return
    slow = [item for item in items if _slow(item)]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not _slow(item)]


def jax_default_mode(backend: conformance_backends.Backend) -> contextlib.AbstractContextManager:
    """jax's default mode (x64 off) for a run on jax arrays, else nothing: xpnn.random's draws on
    jax arrays follow jax's configured default dtype, so a comparison with flax's dropout masks
    made in jax's default mode runs xpnn in that mode too."""
    if backend.name == "jax":
        import jax

        return jax.enable_x64(False)
    return contextlib.nullcontext()


@pytest.fixture
def in_jax_default_mode(request):
    """Run a test in jax's default mode (x64 off) when it runs on jax (its ``backend`` is jax, or
    it has no backend): for the tests of default dtypes, which follow jax's mode on jax arrays."""
    backend = request.getfixturevalue("backend") if "backend" in request.fixturenames else BACKENDS.get("jax")
    with jax_default_mode(backend) if backend is not None else contextlib.nullcontext():
        yield


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)

"""The backends the conformance suite and the tests run on, and conversions to and from NumPy."""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

from xpnn.backends import adapter_for_namespace

#: Floating dtypes by name, in report order.
DTYPES = ("float16", "bfloat16", "float32", "float64")


@dataclasses.dataclass(frozen=True)
class Backend:
    """An array library under test: how to make its arrays from NumPy and read them back."""

    name: str
    xp: Any
    asarray: Callable[[np.ndarray, str], Any]
    to_numpy: Callable[[Any], np.ndarray]
    dtypes: tuple[str, ...]
    #: "cpu" or "cuda": where ``asarray`` puts arrays.
    device: str = "cpu"
    #: The context a check runs in: for JAX on a GPU, jax's default device is that
    #: GPU, so jax's and flax's reference values are computed where xpnn's are.
    scope: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    #: A configuration of the library the column runs in ("x64 off": jax's default mode).
    mode: str = ""
    #: How to make an array that the column does not lay out over devices (a function's
    #: weights); ``asarray`` when None.
    whole: Callable[[np.ndarray, str], Any] | None = None

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        """The report's column name: the library, with its mode, and the device when it is not the CPU."""
        name = f"{self.name} ({self.mode})" if self.mode else self.name
        return name if self.device == "cpu" else f"{name}:{self.device}"

    def like(self) -> Any:
        """A small array on this backend's device, for ``like=`` arguments."""
        return self.asarray(np.zeros(1), "float32")

    def as_whole(self, a: np.ndarray, dtype: str) -> Any:
        """``a`` as an array of this backend that is not laid out over devices."""
        return (self.whole or self.asarray)(a, dtype)


def _adapted(name: str, xp: Any, dtypes: tuple[str, ...], arrange: Callable[[Any], Any] | None = None) -> Backend:
    """The backend of namespace ``xp``, converting with its xpnn adapter (``from_host`` and
    ``to_host``: a new backend needs nothing here but its adapter).  bfloat16 arrays are made
    from float32 and read back as float32; ``arrange`` lays a new array out (Dask's chunks)."""
    adapter = adapter_for_namespace(xp)
    bfloat16 = adapter.dtype_named("bfloat16")

    def asarray(a: np.ndarray, dtype: str) -> Any:
        # a copy: a case's in-place function (F.relu_) must not write into the case's own array
        x = adapter.from_host(np.array(a, dtype=np.float32 if dtype == "bfloat16" else dtype), None)
        x = xp.astype(x, bfloat16) if dtype == "bfloat16" else x
        return x if arrange is None else arrange(x)

    def to_numpy(x: Any) -> np.ndarray:
        if bfloat16 is not None and x.dtype == bfloat16:
            x = xp.astype(x, xp.float32)
        return np.asarray(adapter.to_host(x))

    return Backend(name, xp, asarray, to_numpy, dtypes)


def _numpy() -> Backend:
    import array_api_compat.numpy as xp

    return _adapted("numpy", xp, ("float16", "float32", "float64"))


def _array_api_strict() -> Backend:
    import array_api_strict as xp

    return _adapted("array_api_strict", xp, ("float32", "float64"))


def _torch() -> Backend:
    import array_api_compat.torch as xp

    return _adapted("torch", xp, DTYPES)


def _jax() -> Backend:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    return _adapted("jax", jnp, DTYPES)


def _jax_default_mode() -> Backend:
    """jax in its default mode, ``jax_enable_x64`` off (the suite turns it on for the "jax"
    column): every check of this column runs inside ``jax.enable_x64(False)``, the
    references included, so jax's default dtypes (float32, int32) hold on both sides."""
    import jax

    base = _jax()

    def scope() -> contextlib.AbstractContextManager:
        return jax.enable_x64(False)

    return dataclasses.replace(base, dtypes=("float16", "bfloat16", "float32"), scope=scope, mode="x64 off")


def _jax_sharded(axis_type: str) -> Backend:
    """jax (default mode, x64 off) with every array laid over a ("batch": 2, "model": n / 2) mesh
    of all of jax's devices: an array of 2 or more dims split along its first axis over "batch"
    where it divides evenly (data parallel), other arrays replicated, and every check run inside
    ``jax.set_mesh`` of that mesh with ``axis_type`` axes ("explicit", jax's default for
    ``make_mesh``, or "auto").  It needs several devices: on one machine, start Python
    with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``."""
    import jax

    devices = jax.devices()
    if len(devices) < 2:
        raise RuntimeError("the sharded jax column needs several jax devices: set "
                           "XLA_FLAGS=--xla_force_host_platform_device_count=8 before jax is imported")
    kind = {"explicit": jax.sharding.AxisType.Explicit, "auto": jax.sharding.AxisType.Auto}[axis_type]
    mesh = jax.make_mesh((2, len(devices) // 2), ("batch", "model"), axis_types=(kind, kind))
    base = _jax_default_mode()

    def asarray(a: np.ndarray, dtype: str, split: bool = True) -> Any:
        with jax.enable_x64(False):
            x = base.asarray(a, dtype)
            split = split and x.ndim >= 2 and x.shape[0] % 2 == 0  # inputs batch-split; vectors (params) replicated
            spec = jax.sharding.PartitionSpec("batch") if split else jax.sharding.PartitionSpec()
            return jax.device_put(x, jax.sharding.NamedSharding(mesh, spec))

    @contextlib.contextmanager
    def scope() -> Any:
        with jax.enable_x64(False), jax.set_mesh(mesh):
            yield

    return dataclasses.replace(base, asarray=asarray, scope=scope, mode=f"x64 off, sharded, {axis_type} axes",
                               whole=functools.partial(asarray, split=False))


def _dask() -> Backend:
    import array_api_compat.dask.array as xp

    def in_blocks(x: Any) -> Any:
        return x.rechunk(tuple(max(1, (n + 1) // 2) for n in x.shape))  # several blocks where possible

    return _adapted("dask", xp, ("float16", "float32", "float64"), arrange=in_blocks)


def _cupy() -> Backend:
    import cupy
    import array_api_compat.cupy as xp

    cupy.cuda.runtime.getDeviceCount()  # raises without a GPU
    return dataclasses.replace(_adapted("cupy", xp, ("float16", "float32", "float64")), device="cuda",
                               scope=references_on_the_cpu)


_FACTORIES = {
    "numpy": (None, _numpy),
    "array_api_strict": ("array_api_strict", _array_api_strict),
    "torch": ("torch", _torch),
    "jax": ("jax", _jax),
    "dask": ("dask", _dask),
    "cupy": ("cupy", _cupy),
    "jax_x64_off": ("jax", _jax_default_mode),
    "jax_sharded": ("jax", lambda: _jax_sharded("explicit")),
    "jax_sharded_auto": ("jax", lambda: _jax_sharded("auto")),
}

#: The backends of the test matrix.
BACKEND_NAMES = ("numpy", "array_api_strict", "torch", "jax", "dask", "cupy")
#: The conformance suite's columns: the test matrix's, and jax in its default mode.
CONFORMANCE_NAMES = (*BACKEND_NAMES, "jax_x64_off")


def installed(name: str) -> bool:
    module = _FACTORIES[name][0]
    return module is None or importlib.util.find_spec(module) is not None


def load(name: str) -> Backend:
    """The backend ``name``; ``ImportError``/``RuntimeError`` if it is not usable here."""
    return _FACTORIES[name][1]()


def available(names: tuple[str, ...] = BACKEND_NAMES) -> list[Backend]:
    """The usable backends among ``names`` (CuPy only where a GPU answers)."""
    found = []
    for name in names:
        if not installed(name):
            continue
        try:
            found.append(load(name))
        except Exception:  # noqa: BLE001 - e.g. CuPy without a CUDA device
            continue
    return found


def from_namespace(module_name: str) -> Backend:
    """Any Array API library, by module name: the module is the namespace, or it makes
    arrays whose ``__array_namespace__()`` is.  xpnn runs on it with the
    standard-only adapter; its floating dtypes are those it defines."""
    module = importlib.import_module(module_name)
    if not hasattr(module, "asarray"):
        raise ValueError(f"--namespace {module_name}: the module has no asarray; it is not an Array API namespace")
    probe = module.asarray(0.0)
    xp = probe.__array_namespace__() if hasattr(probe, "__array_namespace__") else module
    return _adapted(module_name, xp, tuple(d for d in DTYPES if getattr(xp, d, None) is not None))


def cuda_available() -> bool:
    """Whether a CUDA device answers (through torch, jax or CuPy)."""
    for name, probe in (("torch", lambda: __import__("torch").cuda.is_available()),
                        ("jax", lambda: bool(__import__("jax").devices("gpu"))),
                        ("cupy", lambda: __import__("cupy").cuda.runtime.getDeviceCount() > 0)):
        if installed(name):
            try:
                if probe():
                    return True
            except Exception:  # noqa: BLE001 - no GPU backend in this library
                continue
    return False


def on_devices(found: list[Backend], devices: tuple[str, ...]) -> list[Backend]:
    """Each backend on each of ``devices`` it can use: torch and jax on "cpu" and "cuda",
    CuPy on "cuda" only, the others on "cpu" only."""
    placed = []
    for backend in found:
        for device in devices:
            if device == backend.device:
                placed.append(backend)
            elif device == "cuda" and backend.name in ("torch", "jax") and cuda_available():
                placed.append(_on_cuda(backend))
    return placed


def references_on_the_cpu() -> contextlib.AbstractContextManager:
    """The references (jax.nn, jax.random, flax) computed by jax on the CPU, where a GPU would
    be jax's default device: the columns of other libraries on a GPU are checked against jax's
    CPU results (XLA's GPU code rounds otherwise, and computes float32 products in TF32)."""
    if not installed("jax"):
        return contextlib.nullcontext()
    import jax

    return jax.default_device(jax.devices("cpu")[0])


def _on_cuda(backend: Backend) -> Backend:
    """``backend`` on the GPU, its checks in the library's full float32 precision (TF32 off:
    ``Adapter.full_precision``): for torch, the references (jax's, flax's, torch.nn's) on the
    CPU; for jax, jax's and flax's on the same GPU, in the column's own x64 mode."""
    full_precision = adapter_for_namespace(backend.xp).full_precision
    if backend.name == "torch":
        def place(a: np.ndarray, dtype: str) -> Any:
            return backend.asarray(a, dtype).to("cuda")

        device_scope = references_on_the_cpu
    else:
        import jax

        gpu = jax.devices("gpu")[0]

        def place(a: np.ndarray, dtype: str) -> Any:
            return jax.device_put(backend.asarray(a, dtype), gpu)

        def device_scope() -> contextlib.AbstractContextManager:
            return jax.default_device(gpu)

    @contextlib.contextmanager
    def scope() -> Any:
        with backend.scope(), device_scope(), full_precision():
            yield

    return dataclasses.replace(backend, asarray=place, device="cuda", scope=scope)

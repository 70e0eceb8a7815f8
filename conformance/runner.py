"""Running one case: inputs, the xpnn call on a backend, the reference call, and the comparison."""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import array_api_compat
import numpy as np

import xpnn
from xpnn._dispatch import adapter_of
from xpnn.conformance.backends import Backend
from xpnn.conformance.cases import EDGE_VALUES, Case
from xpnn.conformance.compare import Comparison, compare, describe

SHAPE = (4, 16)


def case_inputs(case: Case, rng: np.random.Generator, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    """float64 inputs: the edge values first (where the case takes them), then random values in its domain."""
    values = rng.uniform(*case.domain, size=shape)
    if case.edges:
        edges = np.asarray(EDGE_VALUES)
        if case.domain[0] >= 0:
            edges = np.abs(edges)
        values.flat[: edges.size] = edges
    return values


def extra_inputs(case: Case, rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    return case.extra(rng, shape) if case.extra else {}


def _as_backend(backend: Backend, value: np.ndarray, dtype: str) -> Any:
    return backend.asarray(value, "bool" if value.dtype == bool else dtype)


def call_xpnn(case: Case, backend: Backend, x: Any, extra: dict[str, np.ndarray], dtype: str) -> Any:
    """``xpnn.<function>(x, **extra, **kwargs)`` with ``extra`` converted to ``backend``."""
    arrays = {k: _as_backend(backend, v, dtype) for k, v in extra.items()}
    return getattr(xpnn, case.function)(x, **arrays, **case.kwargs)


def magnitude(case: Case, x64: np.ndarray) -> np.ndarray | None:
    """The input scale that bounds rounding in elementwise cases (see :func:`compare`)."""
    return np.abs(x64) if case.min_ndim == 0 else None


def reference_dtype(dtype: str) -> str:
    """Half precision is checked against the float32 reference of the same (rounded) inputs."""
    return "float32" if dtype in ("float16", "bfloat16") else dtype


def call_reference(case: Case, x: np.ndarray, extra: dict[str, np.ndarray], dtype: str) -> np.ndarray:
    """The reference framework's value, as float64 NumPy."""
    ref_dtype = reference_dtype(dtype)
    function = case.reference_callable()
    if case.framework == "jax":
        import jax.numpy as jnp

        from xpnn.conformance.backends import load

        load("jax")  # enables float64 in jax
        import jax

        # float64 in jax's 64-bit mode even while a test runs jax in its default mode
        with jax.enable_x64(True) if ref_dtype == "float64" else contextlib.nullcontext():
            convert = lambda v: jnp.asarray(v, dtype=bool if v.dtype == bool else ref_dtype)  # noqa: E731
            out = function(convert(x), **{k: convert(v) for k, v in extra.items()}, **case.kwargs)
            return np.asarray(out, dtype=np.float64)
    import torch

    convert = lambda v: torch.from_numpy(np.array(v, dtype=bool if v.dtype == bool else ref_dtype))  # noqa: E731
    out = function(convert(x), **{k: convert(v) for k, v in extra.items()}, **case.kwargs)
    return out.detach().double().numpy()


def _closer_of(actual: np.ndarray, expected: np.ndarray, expected_exact: np.ndarray) -> np.ndarray:
    """Per element, whichever reference is closer to ``actual``: the same-precision one or float64's.

    XLA on CPU treats float32 subnormal inputs as zero (``log1mexp(1e-40)`` is
    ``-inf`` there, ``-92.1`` in exact arithmetic), and near a cancellation the
    same-precision reference carries its own rounding; a result as close to
    the float64 value as the tolerance asks is right too.
    """
    actual = np.asarray(actual, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        exact_better = np.abs(actual - expected_exact) < np.abs(actual - expected)
    exact_better |= actual == expected_exact
    return np.where(exact_better, expected_exact, expected)


@dataclasses.dataclass
class Outcome:
    """The result of one (case, backend, dtype) check."""

    comparison: Comparison
    output_ok: bool
    output_problem: str
    output: dict = dataclasses.field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.comparison.passed and self.output_ok


def same_placement(first: Any, second: Any) -> bool:
    """Whether two devices are the same, or two jax shardings span the same devices (an output's
    layout may differ from the input's: a reduction to a scalar is replicated)."""
    if first == second:
        return True
    devices = getattr(first, "device_set", None)
    return devices is not None and devices == getattr(second, "device_set", None)


def check_output(backend: Backend, x: Any, out: Any, dtype_expected: Any) -> str:
    """'' when ``out`` is an array of ``x``'s type (not a NumPy scalar for a 0-d ``x``), library and
    device, with the expected dtype; else what is wrong."""
    if not isinstance(out, type(x)):
        return f"output type {type(out).__module__}.{type(out).__qualname__} is not the input's {type(x).__qualname__}"
    if array_api_compat.array_namespace(out) is not array_api_compat.array_namespace(x):
        return f"output library {type(out).__module__} differs from the input's"
    if not same_placement(array_api_compat.device(out), array_api_compat.device(x)):
        return f"output device {array_api_compat.device(out)} differs from {array_api_compat.device(x)}"
    if out.dtype != dtype_expected:
        return f"output dtype {out.dtype} differs from {dtype_expected}"
    return ""


def run(case: Case, backend: Backend, dtype: str, rng: np.random.Generator, shape=SHAPE,
        values: np.ndarray | None = None) -> Outcome:
    """Run ``case`` on ``backend`` in ``dtype`` and compare with the reference; ``values``, where
    given, are the inputs instead of :func:`case_inputs`."""
    x64 = case_inputs(case, rng, shape) if values is None else np.asarray(values, dtype=np.float64)
    extra = extra_inputs(case, rng, x64.shape)
    x = backend.asarray(x64, dtype)
    x64 = backend.to_numpy(x).astype(np.float64)  # the values the backend really holds
    out = call_xpnn(case, backend, x, extra, dtype)
    problem = check_output(backend, x, out, x.dtype)
    expected = call_reference(case, x64, extra, dtype)
    actual = backend.to_numpy(out)
    if dtype != "float64":
        expected = _closer_of(actual, expected, call_reference(case, x64, extra, "float64"))
    if actual.shape != expected.shape:
        problem = problem or f"output shape {actual.shape} differs from the reference's {expected.shape}"
    zero_signs = not (xpnn.fast_paths_enabled() and _zero_signs_differ(case, x))
    return Outcome(compare(actual, expected, dtype, magnitude(case, x64), zero_signs=zero_signs),
                   not problem, problem, describe(out))


def _zero_signs_differ(case: Case, x: Any) -> bool:
    """Whether ``x``'s adapter documents that its fast path for ``case`` may give zeros of the
    other sign (:attr:`xpnn.backends.Adapter.fast_path_zero_signs`)."""
    return case.function in adapter_of(x).fast_path_zero_signs


def fast_path_check(case: Case, backend: Backend, dtype: str, rng: np.random.Generator) -> Comparison:
    """Rule 3: the native fast path and the written-once definition give the same values."""
    x64 = case_inputs(case, rng)
    extra = extra_inputs(case, rng, x64.shape)
    x = backend.asarray(x64, dtype)
    fast = backend.to_numpy(call_xpnn(case, backend, x, extra, dtype))
    with xpnn.fast_paths(False):
        written_once = backend.to_numpy(call_xpnn(case, backend, x, extra, dtype))
    return compare(fast, written_once, dtype, magnitude(case, x64), zero_signs=not _zero_signs_differ(case, x))

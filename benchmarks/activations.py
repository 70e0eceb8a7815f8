"""Activation timings: xpnn against its native twin on numpy, torch and jax, in one process.

For every function with a native twin and each shape, the variants are timed
in interleaved rounds (so machine noise hits them alike) and the medians are
compared as ratios:

* torch: xpnn on torch tensors / ``torch.nn.functional``;
* jax: xpnn on jax arrays / jitted ``jax.nn`` (and eager ``jax.nn`` for scale);
* numpy (cupy on a GPU): xpnn on its arrays / the best plain NumPy (CuPy) formulation;
* every library: the function / one copy pass of the same array (the memory floor).

xpnn's NumPy fast paths compute arrays of 2^19 elements or more (2^22 for the
memory-bound ones) on all cores (at most 8); the NumPy twins and the copy pass run on one, as NumPy does, so at
(4096, 1024) those ratios show what the slices gain.
"""
from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import xpnn

SHAPES = ((1000,), (4096, 1024))


def _array_twins(m: Any, expit: Callable[[Any], Any], *, masked_ufuncs: bool) -> dict[str, Callable[[Any], Any]]:
    """The best plain formulations in NumPy, or CuPy (``m``: the module, ``expit``: its logistic
    function, ``masked_ufuncs``: whether its ufuncs take ``where=``), each giving jax.nn's values,
    the signs of zeros included.

    Each is a function of ``x`` alone: in-place ufuncs on its own temporaries, nothing kept
    between calls.  xpnn's NumPy relu, relu6, hard_tanh, soft_sign and gelu keep their constant
    operands between calls (NumPy's loops run about twice as fast on two arrays as on an array
    and a scalar), which is how they beat these twins."""
    c = math.sqrt(2 / math.pi)

    def gelu(x):
        inner = x * x
        inner *= x
        inner *= 0.044715
        inner += x
        inner *= c
        m.tanh(inner, out=inner)
        inner += 1.0
        inner *= 0.5
        inner *= x
        return inner

    def relu6(x):  # clip alone gives relu6(-0.0) = -0.0; jax gives +0.0
        out = m.clip(x, 0, 6)
        out += 0.0
        return out

    def leaky_relu(x):  # 0.01 * x is below x exactly where x >= 0: no select per element
        out = m.multiply(x, 0.01)
        return m.maximum(out, x, out=out)

    def elu(x):
        if masked_ufuncs:  # expm1 only where x <= 0: -0.0 and nan pass through
            return m.expm1(x, out=x.copy(), where=x <= 0)
        return m.where(x > 0, x, m.expm1(m.where(x > 0, 0.0, x)))  # minimum(x, 0) drops -0.0

    def silu(x):
        out = expit(x)
        out *= x
        return out

    def log_sigmoid(x):
        out = m.logaddexp(m.negative(x), 0)
        return m.negative(out, out=out)

    def soft_sign(x):
        out = m.abs(x)
        out += 1
        return m.divide(x, out, out=out)

    def softmax(x):
        e = m.subtract(x, x.max(-1, keepdims=True))
        m.exp(e, out=e)
        e /= e.sum(-1, keepdims=True)
        return e

    return {
        "relu": lambda x: m.maximum(x, 0),
        "relu6": relu6,
        "hard_tanh": lambda x: m.clip(x, -1, 1),
        "leaky_relu": leaky_relu,
        "elu": elu,
        "sigmoid": expit,
        "silu": silu,
        "softplus": lambda x: m.logaddexp(x, 0),
        "log_sigmoid": log_sigmoid,
        "tanh": m.tanh,
        "soft_sign": soft_sign,
        "gelu": gelu,
        "softmax": softmax,
    }


def _torch_twins() -> dict[str, Callable[[Any], Any]]:
    import torch
    import torch.nn.functional as F

    return {
        "relu": F.relu, "relu6": F.relu6, "hard_tanh": F.hardtanh, "leaky_relu": F.leaky_relu,
        "elu": F.elu, "selu": F.selu, "celu": F.celu, "sigmoid": torch.sigmoid, "silu": F.silu,
        "mish": F.mish, "softplus": F.softplus, "log_sigmoid": F.logsigmoid, "tanh": torch.tanh,
        "soft_sign": F.softsign, "hard_sigmoid": F.hardsigmoid, "hard_silu": F.hardswish,
        "gelu": lambda x: F.gelu(x, approximate="tanh"),
        "softmax": lambda x: torch.softmax(x, -1), "log_softmax": lambda x: torch.log_softmax(x, -1),
    }


def _jax_twins() -> dict[str, Callable[[Any], Any]]:
    import jax.nn as jnn

    names = ["relu", "relu6", "hard_tanh", "leaky_relu", "elu", "selu", "celu", "sigmoid", "silu",
             "mish", "softplus", "log_sigmoid", "tanh", "soft_sign", "hard_sigmoid", "hard_silu",
             "gelu", "softmax", "log_softmax"]
    return {name: getattr(jnn, name) for name in names}


def _library(library: str) -> tuple[dict[str, Callable[[Any], Any]], str, Callable[[Any], Any], Any]:
    """``(twins, native label, copy pass, jit)`` of a library (``jit`` None where the twins run eagerly)."""
    if library == "numpy":
        from scipy.special import expit

        return _array_twins(np, expit, masked_ufuncs=True), "best numpy", np.copy, None
    if library == "cupy":
        import cupy
        from cupyx.scipy.special import expit

        return _array_twins(cupy, expit, masked_ufuncs=False), "best cupy", cupy.copy, None
    if library == "torch":
        import torch

        return _torch_twins(), "torch.nn.functional", torch.clone, None
    import jax

    return _jax_twins(), "jitted jax.nn", jax.jit(lambda v: v + 0), jax.jit


def _no_sync(out: Any) -> Any:
    return out


#: The libraries timed on each device by default.
LIBRARIES = {"cpu": ("numpy", "torch", "jax"), "cuda": ("cupy", "torch", "jax")}
#: Libraries a suite may be asked to time besides (``--libraries``): array-api-strict runs the
#: standard-only primitives, which ``python -m benchmarks conv`` times against NumPy's.
OPTIONAL_LIBRARIES = {"cpu": ("array_api_strict",), "cuda": ()}


def placement(library: str, device: str) -> tuple[Callable[[np.ndarray], Any], Callable[[Any], Any]]:
    """``(put, sync)``: how a NumPy array goes into ``library`` on ``device`` ("cpu" or "cuda"),
    and how to wait for a result computed there (GPU calls return before they finish)."""
    if library not in LIBRARIES[device] + OPTIONAL_LIBRARIES[device]:
        raise ValueError(f"library {library!r} does not run on {device!r}; expected one of {LIBRARIES[device]}")
    if library == "numpy":
        return np.asarray, _no_sync
    if library == "array_api_strict":
        import array_api_strict

        return array_api_strict.asarray, _no_sync
    if library == "cupy":
        import cupy

        return cupy.asarray, lambda out: cupy.cuda.Device().synchronize()
    if library == "torch":
        import torch

        sync = (lambda out: torch.cuda.synchronize()) if device == "cuda" else _no_sync
        return (lambda a: torch.from_numpy(a).to(device)), sync
    import jax

    target = jax.devices("gpu" if device == "cuda" else "cpu")[0]
    return (lambda a: jax.device_put(a, target)), jax.block_until_ready


def _time(function: Callable[[], Any], sync: Callable[[Any], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        out = function()
    sync(out)
    return (time.perf_counter() - start) / calls


def _interleaved(variants: dict[str, Callable[[], Any]], sync, budget: float = 0.25, rounds: int = 7) -> dict[str, float]:
    """Median seconds per call of each variant, timed round-robin (every other round in
    reverse order, so no variant always runs right after the same one)."""
    for function in variants.values():  # warm up (and compile)
        sync(function())
    calls = {}
    for name, function in variants.items():
        single = _time(function, sync, 1)
        calls[name] = max(1, min(2000, int(budget / rounds / max(single, 1e-7))))
    samples: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants.items())
    for round_index in range(rounds):
        for name, function in (order if round_index % 2 == 0 else order[::-1]):
            samples[name].append(_time(function, sync, calls[name]))
    return {name: statistics.median(values) for name, values in samples.items()}


_SECONDS_PER = {"ms": 1e3, "us": 1e6}


def ratio_fields(medians: dict[str, float], unit: str) -> dict[str, float]:
    """``xpnn_<unit>``, ``native_<unit>`` and their ratio, from the medians of an ``xpnn``/``native`` pair."""
    scale = _SECONDS_PER[unit]
    return {f"xpnn_{unit}": medians["xpnn"] * scale, f"native_{unit}": medians["native"] * scale,
            "ratio": medians["xpnn"] / medians["native"]}


def paired_rows(libraries: tuple[str, ...], device: str, labels: Any, variants: Callable[[str, str, str], dict],
                versus: Callable[[str], str]) -> list[dict]:
    """One row per (library, label): the medians of ``variants(library, device, label)`` (an
    ``xpnn``/``native`` pair, and optionally a ``copy`` pass) timed round-robin, in ms."""
    rows = []
    for library in libraries:
        _, sync = placement(library, device)
        for label in labels:
            medians = _interleaved(variants(library, device, label), sync, budget=1.0, rounds=3)
            row = {"library": library, "device": device, "layer": label, "versus": versus(library),
                   **ratio_fields(medians, "ms")}
            if "copy" in medians:
                row["copy_passes"] = medians["xpnn"] / medians["copy"]
            rows.append(row)
    return rows


def ratio_table(rows: list[dict], columns: tuple[tuple[str, str], ...], unit: str) -> str:
    """The rows as text: the ``(key, format spec)`` columns, then the two timings and the ratio."""
    head = " ".join(f"{key:{spec}}" for key, spec in columns)
    lines = [f"{head} {'xpnn ' + unit:>9} {'native ' + unit:>10} {'ratio':>7}"]
    for row in rows:
        lead = " ".join(f"{row[key]!s:{spec}}" for key, spec in columns)
        lines.append(f"{lead} {row['xpnn_' + unit]:9.1f} {row['native_' + unit]:10.1f} {row['ratio']:7.2f}")
    return "\n".join(lines)


def _row(library: str, name: str, shape, medians: dict[str, float], native: str) -> dict:
    xp_time, native_time, copy_time = medians["xpnn"], medians[native], medians["copy"]
    return {
        "library": library, "function": name, "shape": shape,
        "xpnn_us": xp_time * 1e6, "native_us": native_time * 1e6, "copy_us": copy_time * 1e6,
        "ratio": xp_time / native_time, "vs_copy": xp_time / copy_time,
        **({"eager_jax_nn_us": medians["eager"] * 1e6} if "eager" in medians else {}),
    }


def _library_rows(library: str, x: Any, twins: dict, native: str, copy, sync, shape, jit=None) -> list[dict]:
    """Rows for one library: xpnn, its native twin (jitted when ``jit`` is given), a copy pass."""
    rows = []
    for name, twin in twins.items():
        fn = getattr(xpnn, name)
        compiled = jit(twin) if jit else twin
        variants = {"xpnn": lambda: fn(x), native: lambda: compiled(x), "copy": lambda: copy(x)}
        medians = _interleaved(variants, sync=sync)
        if jit:  # eager jax.nn, for scale, timed apart: its op-by-op work (up to ~30 ms a call
            # on many threads) slows whatever runs next
            medians["eager"] = _interleaved({"eager": lambda: twin(x)}, sync=sync)["eager"]
        rows.append(_row(library, name, shape, medians, native))
    return rows


def run(libraries: tuple[str, ...] = LIBRARIES["cpu"], device: str = "cpu") -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for shape in SHAPES:
        data = rng.normal(scale=3.0, size=shape).astype(np.float32)
        for library in libraries:
            put, sync = placement(library, device)
            twins, native, copy, jit = _library(library)
            rows += _library_rows(library, put(data), twins, native, copy, sync, shape, jit)
    return rows


def dispatch_overhead(libraries: tuple[str, ...] = LIBRARIES["cpu"], device: str = "cpu") -> dict[str, dict[str, float]]:
    """Microseconds that xpnn's routing adds to a call: xpnn.relu vs the fast path it calls, tiny arrays
    (for the libraries with a relu fast path).  ``floor`` is what a Python function that only
    forwards the call adds: no dispatch written in Python costs less."""
    from xpnn._dispatch import adapter_of

    overhead = {}
    for library in libraries:
        put, sync = placement(library, device)
        data = put(np.ones(8, np.float32))
        xpnn.relu(data)
        fast = adapter_of(data).fast_paths.get("relu")
        if fast is None:
            continue

        def forward(value):
            return fast(value)

        medians = _interleaved({"xpnn": lambda: xpnn.relu(data), "fast": lambda: fast(data),
                                "forward": lambda: forward(data)}, sync=sync, budget=0.5)
        overhead[library] = {"dispatch": (medians["xpnn"] - medians["fast"]) * 1e6,
                             "floor": (medians["forward"] - medians["fast"]) * 1e6}
    return overhead


def kernel_check_cost(libraries: tuple[str, ...] = LIBRARIES["cpu"], device: str = "cpu") -> dict[str, dict[str, float]]:
    """What the first-use kernel check costs: per library, the milliseconds that checking each
    public function's fast path takes in float32 (the probe through the fast path and the
    written-once definition, compared on the host; the median over the functions, and the
    worst) and, after it, the microseconds a later call of relu at (8,) adds to its checked fast
    path (the dispatch alone: the check adds nothing per call)."""
    from xpnn import _dispatch, _kernel_check
    from xpnn._dispatch import adapter_of

    cost = {}
    for library in libraries:
        put, sync = placement(library, device)
        data = put(np.linspace(-3, 3, 8).astype(np.float32))
        adapter_of(data)
        with _kernel_check._LOCK:
            _kernel_check._OUTCOMES.clear()
        _dispatch._forget_checked_fast_paths()
        firsts = []
        for entry in _dispatch.REGISTRY.values():
            checked = len(_kernel_check._OUTCOMES)
            start = time.perf_counter()
            entry.public.checked_fast_path(data)
            if len(_kernel_check._OUTCOMES) > checked:  # a native kernel was checked
                firsts.append(time.perf_counter() - start)
        xpnn.relu(data)
        fast = xpnn.relu.checked_fast_path(data)
        medians = _interleaved({"xpnn": lambda: xpnn.relu(data), "fast": lambda: fast(data)}, sync=sync, budget=0.5)
        cost[library] = {"check_ms_median": statistics.median(firsts) * 1e3, "check_ms_worst": max(firsts) * 1e3,
                         "functions": len(firsts), "later_call_us_over_fast_path": (medians["xpnn"] - medians["fast"]) * 1e6}
    return cost


def kernel_check_report(cost: dict[str, dict[str, float]]) -> str:
    return "\n".join(f"{library}: checking a fast path takes {c['check_ms_median']:.2f} ms (median over "
                     f"{c['functions']} functions, worst {c['check_ms_worst']:.1f} ms), once; a later relu "
                     f"call adds {c['later_call_us_over_fast_path']:.2f} us to its fast path" for library, c in cost.items())


def report(rows: list[dict], overhead: dict[str, float]) -> str:
    lines = ["dispatch overhead per call (us; in brackets a bare forwarding function's): " + ", ".join(
        f"{k} {v['dispatch']:.2f} ({v['floor']:.2f})" for k, v in overhead.items()), ""]
    header = f"{'library':7} {'function':13} {'shape':12} {'xpnn us':>10} {'native us':>10} {'ratio':>7} {'vs copy':>8}"
    lines.append(header + "   (native: best numpy / torch.nn.functional / jitted jax.nn)")
    for r in rows:
        extra = f"   eager jax.nn {r['eager_jax_nn_us']:.1f} us" if "eager_jax_nn_us" in r else ""
        lines.append(f"{r['library']:7} {r['function']:13} {str(r['shape']):12} {r['xpnn_us']:10.2f} "
                     f"{r['native_us']:10.2f} {r['ratio']:7.2f} {r['vs_copy']:8.2f}{extra}")
    for library in sorted({r["library"] for r in rows}):
        for shape in SHAPES:
            ratios = [r["ratio"] for r in rows if r["library"] == library and r["shape"] == shape]
            if ratios:
                lines.append(f"{library} {shape}: median ratio {statistics.median(ratios):.2f}, "
                             f"worst {max(ratios):.2f}")
    return "\n".join(lines)

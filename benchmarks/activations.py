"""Activation timings: xpnn against its native twin on numpy, torch and jax, in one process.

For every function with a native twin and each shape, the variants are timed
in interleaved rounds (so machine noise hits them alike) and the medians are
compared as ratios:

* torch: xpnn on torch tensors / ``torch.nn.functional``;
* jax: xpnn on jax arrays / jitted ``jax.nn`` (and eager ``jax.nn`` for scale);
* numpy: xpnn on numpy arrays / the best plain NumPy formulation;
* every library: the function / one copy pass of the same array (the memory floor).
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


def _numpy_twins() -> dict[str, Callable[[np.ndarray], Any]]:
    from scipy.special import expit

    c = math.sqrt(2 / math.pi)

    def gelu(x):
        inner = x * x
        inner *= x
        inner *= 0.044715
        inner += x
        inner *= c
        np.tanh(inner, out=inner)
        inner += 1.0
        inner *= 0.5
        inner *= x
        return inner

    def softmax(x):
        e = np.exp(x - x.max(-1, keepdims=True))
        e /= e.sum(-1, keepdims=True)
        return e

    return {
        "relu": lambda x: np.maximum(x, 0),
        "relu6": lambda x: np.clip(x, 0, 6),
        "hard_tanh": lambda x: np.clip(x, -1, 1),
        "leaky_relu": lambda x: np.where(x >= 0, x, x * 0.01),
        "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
        "sigmoid": expit,
        "silu": lambda x: x * expit(x),
        "softplus": lambda x: np.logaddexp(x, 0),
        "log_sigmoid": lambda x: -np.logaddexp(-x, 0),
        "tanh": np.tanh,
        "soft_sign": lambda x: x / (np.abs(x) + 1),
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


def _time(function: Callable[[], Any], sync: Callable[[Any], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        out = function()
    sync(out)
    return (time.perf_counter() - start) / calls


def _interleaved(variants: dict[str, Callable[[], Any]], sync, budget: float = 0.25, rounds: int = 7) -> dict[str, float]:
    """Median seconds per call of each variant, timed round-robin."""
    for function in variants.values():  # warm up (and compile)
        sync(function())
    calls = {}
    for name, function in variants.items():
        single = _time(function, sync, 1)
        calls[name] = max(1, min(2000, int(budget / rounds / max(single, 1e-7))))
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, function in variants.items():
            samples[name].append(_time(function, sync, calls[name]))
    return {name: statistics.median(values) for name, values in samples.items()}


def _row(library: str, name: str, shape, medians: dict[str, float], native: str) -> dict:
    xp_time, native_time, copy_time = medians["xpnn"], medians[native], medians["copy"]
    return {
        "library": library, "function": name, "shape": shape,
        "xpnn_us": xp_time * 1e6, "native_us": native_time * 1e6, "copy_us": copy_time * 1e6,
        "ratio": xp_time / native_time, "vs_copy": xp_time / copy_time,
        **({"eager_jax_nn_us": medians["eager"] * 1e6} if "eager" in medians else {}),
    }


def run(libraries: tuple[str, ...] = ("numpy", "torch", "jax")) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for shape in SHAPES:
        data = rng.normal(scale=3.0, size=shape).astype(np.float32)
        if "numpy" in libraries:
            for name, twin in _numpy_twins().items():
                fn = getattr(xpnn, name)
                medians = _interleaved(
                    {"xpnn": lambda: fn(data), "best numpy": lambda: twin(data), "copy": lambda: data.copy()},
                    sync=lambda out: None)
                rows.append(_row("numpy", name, shape, medians, "best numpy"))
        if "torch" in libraries:
            import torch

            torch.set_num_threads(max(1, torch.get_num_threads()))
            x = torch.from_numpy(data)
            for name, twin in _torch_twins().items():
                fn = getattr(xpnn, name)
                medians = _interleaved(
                    {"xpnn": lambda: fn(x), "torch.nn.functional": lambda: twin(x), "copy": lambda: x.clone()},
                    sync=lambda out: None)
                rows.append(_row("torch", name, shape, medians, "torch.nn.functional"))
        if "jax" in libraries:
            import jax
            import jax.numpy as jnp

            x = jnp.asarray(data)
            block = lambda out: jax.block_until_ready(out)  # noqa: E731
            copy = jax.jit(lambda v: v + 0)
            for name, twin in _jax_twins().items():
                fn, jitted = getattr(xpnn, name), jax.jit(twin)
                medians = _interleaved(
                    {"xpnn": lambda: fn(x), "jitted jax.nn": lambda: jitted(x),
                     "eager": lambda: twin(x), "copy": lambda: copy(x)},
                    sync=block)
                rows.append(_row("jax", name, shape, medians, "jitted jax.nn"))
    return rows


def dispatch_overhead() -> dict[str, float]:
    """Microseconds that xpnn's routing adds to a call: xpnn.relu vs the fast path it calls, tiny arrays."""
    out = {}
    data = np.ones(8, np.float32)
    from xpnn._dispatch import adapter_of

    fast = adapter_of(data).fast_paths["relu"]
    medians = _interleaved({"xpnn": lambda: xpnn.relu(data), "fast": lambda: fast(data)}, sync=lambda o: None,
                           budget=0.5)
    out["numpy"] = (medians["xpnn"] - medians["fast"]) * 1e6
    try:
        import torch

        t = torch.ones(8)
        fast = adapter_of(t).fast_paths["relu"]
        medians = _interleaved({"xpnn": lambda: xpnn.relu(t), "fast": lambda: fast(t)}, sync=lambda o: None,
                               budget=0.5)
        out["torch"] = (medians["xpnn"] - medians["fast"]) * 1e6
    except ImportError:
        pass
    return out


def report(rows: list[dict], overhead: dict[str, float]) -> str:
    lines = ["dispatch overhead per call (us): " + ", ".join(f"{k} {v:.2f}" for k, v in overhead.items()), ""]
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

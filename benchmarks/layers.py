"""Layer timings: an MLP (784-512-512-10, ReLU) applied by xpnn against each framework's own model.

* numpy (cupy on a GPU): ``MLP.apply`` / the same matmuls written by hand in that library;
* torch: ``MLP.apply`` on torch / ``torch.nn.Sequential`` of ``Linear`` and ``ReLU``
  holding the same weights (forward, and forward + backward);
* jax: jitted ``MLP.apply`` / jitted ``flax.linen`` apply of the same model.

Batch 256 shows the arithmetic; batch 1 shows the per-call cost of the module
system (binding, naming, parameter lookup), which eager libraries pay on
every call and jitted JAX pays only while tracing.
"""
from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

import xpnn as nn
from benchmarks.activations import LIBRARIES, _interleaved, placement, ratio_fields, ratio_table

SIZES = (784, 512, 512, 10)
BATCHES = (1, 256)


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        for features in SIZES[1:-1]:
            x = nn.relu(nn.Dense(features)(x))
        return nn.Dense(SIZES[-1])(x)


def _inputs(batch: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((batch, SIZES[0])).astype(np.float32)


def _by_hand(library: str, device: str, batch: int) -> dict[str, dict[str, Callable[[], Any]]]:
    """NumPy or CuPy: the MLP's matmuls written by hand in the same library."""
    put, _ = placement(library, device)
    m = importlib.import_module(library)
    x = put(_inputs(batch))
    variables = MLP().init(nn.random.key(0), x)
    layers = [variables["params"][f"Dense_{i}"] for i in range(len(SIZES) - 1)]

    def by_hand():
        h = x
        for i, layer in enumerate(layers):
            h = h @ layer["kernel"] + layer["bias"]
            h = m.maximum(h, 0) if i < len(layers) - 1 else h
        return h

    return {"forward": {"xpnn": lambda: MLP().apply(variables, x), "native": by_hand}}


def _torch(device: str, batch: int):
    import torch

    put, _ = placement("torch", device)
    x = put(_inputs(batch))
    params = nn.tree_map(lambda p: p.requires_grad_(), MLP().init(nn.random.key(0), x)["params"])
    modules = []
    for i in range(len(SIZES) - 1):
        linear = torch.nn.Linear(SIZES[i], SIZES[i + 1], device=device)
        with torch.no_grad():
            linear.weight.copy_(params[f"Dense_{i}"]["kernel"].T)
            linear.bias.copy_(params[f"Dense_{i}"]["bias"])
        modules += [linear, torch.nn.ReLU()]
    native = torch.nn.Sequential(*modules[:-1])

    def xpnn_step():
        MLP().apply({"params": params}, x).sum().backward()

    def native_step():
        native(x).sum().backward()

    with torch.no_grad():
        torch.testing.assert_close(MLP().apply({"params": params}, x), native(x), rtol=1e-5, atol=1e-5)
    return {
        "forward": {"xpnn": lambda: MLP().apply({"params": params}, x), "native": lambda: native(x)},
        "forward+backward": {"xpnn": xpnn_step, "native": native_step},
    }


def _jax(device: str, batch: int):
    import flax.linen as fnn
    import jax

    class FlaxMLP(fnn.Module):
        @fnn.compact
        def __call__(self, x):
            for features in SIZES[1:-1]:
                x = fnn.relu(fnn.Dense(features)(x))
            return fnn.Dense(SIZES[-1])(x)

    put, _ = placement("jax", device)
    x = put(_inputs(batch))
    variables = MLP().init(nn.random.key(0), x)
    ours, theirs = jax.jit(MLP().apply), jax.jit(FlaxMLP().apply)
    np.testing.assert_allclose(ours(variables, x), theirs(variables, x), rtol=1e-5, atol=1e-5)
    return {"forward (jit)": {"xpnn": lambda: ours(variables, x), "native": lambda: theirs(variables, x)}}


_LIBRARIES = {"numpy": functools.partial(_by_hand, "numpy"), "cupy": functools.partial(_by_hand, "cupy"),
              "torch": _torch, "jax": _jax}


def run(libraries: tuple[str, ...] = LIBRARIES["cpu"], device: str = "cpu") -> list[dict]:
    rows = []
    for library in libraries:
        _, sync = placement(library, device)
        for batch in BATCHES:
            for task, variants in _LIBRARIES[library](device, batch).items():
                medians = _interleaved(variants, sync, budget=1.0, rounds=3)
                rows.append({"library": library, "device": device, "task": task, "batch": batch,
                             **ratio_fields(medians, "us")})
    return rows


def report(rows: list[dict]) -> str:
    return ratio_table(rows, (("library", "8"), ("device", "6"), ("task", "18"), ("batch", ">5")), "us")

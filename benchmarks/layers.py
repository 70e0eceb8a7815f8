"""Layer timings: an MLP (784-512-512-10, ReLU) applied by xpnn against each framework's own model.

* numpy: ``MLP.apply`` on NumPy / the same matmuls written by hand in NumPy;
* torch: ``MLP.apply`` on torch / ``torch.nn.Sequential`` of ``Linear`` and ``ReLU``
  holding the same weights (forward, and forward + backward);
* jax: jitted ``MLP.apply`` / jitted ``flax.linen`` apply of the same model.

Batch 256 shows the arithmetic; batch 1 shows the per-call cost of the module
system (binding, naming, parameter lookup), which eager libraries pay on
every call and jitted JAX pays only while tracing.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import xpnn as nn
from benchmarks.activations import _interleaved, ratio_fields, ratio_table

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


def _numpy(batch: int) -> tuple[dict[str, Callable[[], Any]], Callable[[Any], Any]]:
    x = _inputs(batch)
    variables = MLP().init(nn.random.key(0), x)
    layers = [variables["params"][f"Dense_{i}"] for i in range(len(SIZES) - 1)]

    def by_hand():
        h = x
        for i, layer in enumerate(layers):
            h = h @ layer["kernel"] + layer["bias"]
            h = np.maximum(h, 0) if i < len(layers) - 1 else h
        return h

    return {"forward": {"xpnn": lambda: MLP().apply(variables, x), "native": by_hand}}, lambda out: out


def _torch(batch: int):
    import torch

    x = torch.from_numpy(_inputs(batch))
    params = nn.tree_map(lambda p: p.requires_grad_(), MLP().init(nn.random.key(0), x)["params"])
    modules = []
    for i in range(len(SIZES) - 1):
        linear = torch.nn.Linear(SIZES[i], SIZES[i + 1])
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
    }, lambda out: out


def _jax(batch: int):
    import flax.linen as fnn
    import jax
    import jax.numpy as jnp

    class FlaxMLP(fnn.Module):
        @fnn.compact
        def __call__(self, x):
            for features in SIZES[1:-1]:
                x = fnn.relu(fnn.Dense(features)(x))
            return fnn.Dense(SIZES[-1])(x)

    x = jnp.asarray(_inputs(batch))
    variables = MLP().init(nn.random.key(0), x)
    ours, theirs = jax.jit(MLP().apply), jax.jit(FlaxMLP().apply)
    np.testing.assert_allclose(ours(variables, x), theirs(variables, x), rtol=1e-5, atol=1e-5)
    return {"forward (jit)": {"xpnn": lambda: ours(variables, x), "native": lambda: theirs(variables, x)}}, \
        lambda out: out.block_until_ready()


_LIBRARIES = {"numpy": _numpy, "torch": _torch, "jax": _jax}


def run(libraries: tuple[str, ...] = ("numpy", "torch", "jax")) -> list[dict]:
    rows = []
    for library in libraries:
        for batch in BATCHES:
            variants_by_task, sync = _LIBRARIES[library](batch)
            for task, variants in variants_by_task.items():
                medians = _interleaved(variants, sync, budget=1.0, rounds=3)
                rows.append({"library": library, "task": task, "batch": batch, **ratio_fields(medians, "us")})
    return rows


def report(rows: list[dict]) -> str:
    return ratio_table(rows, (("library", "8"), ("task", "18"), ("batch", ">5")), "us")

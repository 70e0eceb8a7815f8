"""Layer timings: an MLP (784-512-512-10, ReLU) applied by xpnn against each framework's own model.

* numpy (cupy on a GPU): ``MLP.apply`` / the same matmuls written by hand in that library;
* torch: ``MLP.apply`` on torch / ``torch.nn.Sequential`` of ``Linear`` and ``ReLU``
  holding the same weights (forward, and forward + backward);
* jax: jitted ``MLP.apply`` / jitted ``flax.linen`` apply of the same model.

Batch 256 shows the arithmetic; batch 1 shows the per-call cost of the module
system (binding, naming, parameter lookup), which eager libraries pay on
every call and jitted JAX pays only while tracing.

The ``stack`` rows apply 20 ``Dense(16)`` + relu layers to a (1, 16) input, where the
arithmetic is negligible: ``us_per_layer`` is (xpnn - native) / 20, the module system's
cost per layer (targets: at most 5 us on numpy and torch, and the stack at most 1.5x
``torch.nn.Sequential`` on torch).
"""
from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

import xpnn as nn
from xpnn.benchmarks.activations import LIBRARIES, _interleaved, placement, ratio_fields, ratio_table

SIZES = (784, 512, 512, 10)
BATCHES = (1, 256)
#: The stack: this many Dense(STACK_WIDTH) + relu layers on a (1, STACK_WIDTH) input.
STACK_DEPTH, STACK_WIDTH = 20, 16


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        for features in SIZES[1:-1]:
            x = nn.relu(nn.Dense(features)(x))
        return nn.Dense(SIZES[-1])(x)


class Stack(nn.Module):
    @nn.compact
    def __call__(self, x):
        for _ in range(STACK_DEPTH):
            x = nn.relu(nn.Dense(STACK_WIDTH)(x))
        return x


def _inputs(batch: int, features: int = SIZES[0]) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((batch, features)).astype(np.float32)


def _stack(library: str, device: str) -> dict[str, Callable[[], Any]]:
    """The stack with xpnn, and natively: torch.nn.Sequential of Linear and ReLU with the same
    weights on torch, the same matmuls by hand on numpy and cupy, jitted flax.linen on jax."""
    put, _ = placement(library, device)
    x = put(_inputs(1, STACK_WIDTH))
    variables = Stack().init(nn.random.key(0), x)
    layers = [variables["params"][f"Dense_{i}"] for i in range(STACK_DEPTH)]
    if library == "torch":
        import torch

        modules = []
        for layer in layers:
            linear = torch.nn.Linear(STACK_WIDTH, STACK_WIDTH, device=device)
            with torch.no_grad():
                linear.weight.copy_(layer["kernel"].T)
                linear.bias.copy_(layer["bias"])
            modules += [linear, torch.nn.ReLU()]
        native = torch.nn.Sequential(*modules)
        with torch.no_grad():
            torch.testing.assert_close(Stack().apply(variables, x), native(x))
        return {"xpnn": torch.no_grad()(lambda: Stack().apply(variables, x)), "native": torch.no_grad()(lambda: native(x))}
    if library == "jax":
        import flax.linen as fnn
        import jax

        class FlaxStack(fnn.Module):
            @fnn.compact
            def __call__(self, x):
                for _ in range(STACK_DEPTH):
                    x = fnn.relu(fnn.Dense(STACK_WIDTH)(x))
                return x

        ours, theirs = jax.jit(Stack().apply), jax.jit(FlaxStack().apply)
        np.testing.assert_allclose(ours(variables, x), theirs(variables, x), rtol=1e-5, atol=1e-5)
        return {"xpnn": lambda: ours(variables, x), "native": lambda: theirs(variables, x)}
    m = importlib.import_module(library)

    def by_hand():
        h = x
        for layer in layers:
            h = m.maximum(h @ layer["kernel"] + layer["bias"], 0)
        return h

    return {"xpnn": lambda: Stack().apply(variables, x), "native": by_hand}


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
        medians = _interleaved(_stack(library, device), sync, budget=1.0, rounds=3)
        rows.append({"library": library, "device": device, "task": f"stack {STACK_DEPTH}x{STACK_WIDTH}",
                     "batch": 1, **ratio_fields(medians, "us"),
                     "us_per_layer": (medians["xpnn"] - medians["native"]) * 1e6 / STACK_DEPTH})
    return rows


def report(rows: list[dict]) -> str:
    table = ratio_table(rows, (("library", "8"), ("device", "6"), ("task", "18"), ("batch", ">5")), "us")
    per_layer = [f"{row['library']}: {row['us_per_layer']:.2f} us" for row in rows if "us_per_layer" in row]
    return table + f"\nmodule system per layer (stack): {', '.join(per_layer)}"

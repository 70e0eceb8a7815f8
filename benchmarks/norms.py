"""Normalization timings: xpnn's layers against torch.nn's twins (same parameters) and jitted flax.

* torch: ``xpnn.LayerNorm``/``GroupNorm``/``RMSNorm``/``BatchNorm`` against ``torch.nn.LayerNorm``,
  ``GroupNorm``, ``RMSNorm``, ``BatchNorm2d`` (on NCHW: xpnn's channels-last input pays no
  conversion, torch's twin takes its own layout);
* jax: jitted xpnn against jitted ``flax.linen``;
* numpy (and CuPy on a GPU): xpnn against the best plain NumPy (CuPy) formulation, and against
  one copy pass (the memory-bound norms should take at most 3).

float32 throughout; BatchNorm in training mode (``mutable=['batch_stats']``) and in evaluation.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

import xpnn as nn
from xpnn.benchmarks.activations import LIBRARIES, paired_rows, placement, ratio_table

#: label -> (input shape, xpnn/flax layer builder in namespace L, keyword arguments of apply)
CASES: dict[str, tuple[tuple[int, ...], Callable[[Any], Any], dict[str, Any]]] = {
    "LayerNorm (64,512,768)": ((64, 512, 768), lambda L: L.LayerNorm(), {}),
    "LayerNorm (4096,1024)": ((4096, 1024), lambda L: L.LayerNorm(), {}),
    "BatchNorm train (32,56,56,64)": ((32, 56, 56, 64), lambda L: L.BatchNorm(use_running_average=False),
                                      {"mutable": ["batch_stats"]}),
    "BatchNorm eval (32,56,56,64)": ((32, 56, 56, 64), lambda L: L.BatchNorm(use_running_average=True), {}),
    "GroupNorm(32) (16,64,64,128)": ((16, 64, 64, 128), lambda L: L.GroupNorm(num_groups=32), {}),
    "RMSNorm (4096,4096)": ((4096, 4096), lambda L: L.RMSNorm(), {}),
}


def _torch_twin(label: str, shape: tuple[int, ...], torch: Any) -> tuple[Callable[[Any], Any], bool]:
    """torch.nn's module for ``label`` and whether it takes channels-first input."""
    if label.startswith("LayerNorm"):
        return torch.nn.LayerNorm(shape[-1], eps=1e-6), False
    if label.startswith("RMSNorm"):
        return torch.nn.RMSNorm(shape[-1], eps=1e-6), False
    if label.startswith("GroupNorm"):
        return torch.nn.GroupNorm(32, shape[-1], eps=1e-6), True
    module = torch.nn.BatchNorm2d(shape[-1], eps=1e-5, momentum=0.01)
    module.train("train" in label)
    return module, True


def _plain_twin(label: str, xp: Any) -> Callable[[Any], Any]:
    """The plain formulation in NumPy or CuPy (``xp``): two reductions (mean, mean of squares)
    and one fused pass."""
    if label.startswith("RMSNorm"):
        return lambda x: x / xp.sqrt(xp.mean(xp.square(x), axis=-1, keepdims=True) + 1e-6)
    if label.startswith("GroupNorm"):
        def group_norm(x):
            g = x.reshape(*x.shape[:-1], 32, -1)
            mean = g.mean(axis=(1, 2, 4), keepdims=True)
            var = xp.maximum(xp.square(g).mean(axis=(1, 2, 4), keepdims=True) - mean * mean, 0)
            return ((g - mean) / xp.sqrt(var + 1e-6)).reshape(x.shape)
        return group_norm
    axes = (0, 1, 2) if label.startswith("BatchNorm") else -1

    def standardize(x):
        mean = x.mean(axis=axes, keepdims=True)
        var = xp.maximum(xp.square(x).mean(axis=axes, keepdims=True) - mean * mean, 0)
        return (x - mean) / xp.sqrt(var + (1e-5 if label.startswith("BatchNorm") else 1e-6))

    return standardize


def _variants(library: str, device: str, label: str) -> dict[str, Callable[[], Any]]:
    shape, build, kwargs = CASES[label]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    layer = build(nn)
    if library == "jax":
        import flax.linen as fnn
        import jax

        xj = placement("jax", device)[0](x)
        flax_layer = build(fnn)
        variables = flax_layer.init(jax.random.key(0), xj)
        mine = jax.jit(lambda v, a: layer.apply(v, a, **kwargs))
        theirs = jax.jit(lambda v, a: flax_layer.apply(v, a, **kwargs))
        return {"xpnn": lambda: mine(variables, xj), "native": lambda: theirs(variables, xj)}
    put, _ = placement(library, device)
    xb = put(x)
    variables = layer.init(nn.random.key(0), xb)
    if library == "torch":
        import torch

        twin, channels_first = _torch_twin(label, shape, torch)
        twin = twin.to(device)
        native_input = torch.movedim(xb, -1, 1).contiguous() if channels_first else xb.clone()
        with torch.no_grad():
            return {"xpnn": torch.no_grad()(lambda: layer.apply(variables, xb, **kwargs)),
                    "native": torch.no_grad()(lambda: twin(native_input))}
    twin = _plain_twin(label, importlib.import_module(library))  # numpy, or cupy on the GPU
    return {"xpnn": lambda: layer.apply(variables, xb, **kwargs), "native": lambda: twin(xb), "copy": xb.copy}


def run(libraries: tuple[str, ...] = LIBRARIES["cpu"], device: str = "cpu") -> list[dict]:
    versus = {"jax": "flax.linen (jit)", "torch": "torch.nn"}
    return paired_rows(libraries, device, CASES, _variants, lambda library: versus.get(library, f"plain {library}"))


def report(rows: list[dict]) -> str:
    table = ratio_table(rows, (("library", "8"), ("device", "6"), ("layer", "30"), ("versus", "16")), "ms")
    passes = [f"{row['library']} {row['layer']}: {row['copy_passes']:.1f}" for row in rows if "copy_passes" in row]
    return table + ("\nxpnn in copy passes: " + "; ".join(passes) if passes else "")

"""Random-number timings: 16M float32 normals (and uniforms) from xpnn.random against each library's own generator.

* numpy: xpnn.random on NumPy / ``np.random.default_rng().standard_normal``;
* cupy (on a GPU): xpnn.random on CuPy / ``cupy.random.default_rng().standard_normal``;
* torch: xpnn.random on torch / ``torch.randn`` (on the same device);
* jax: xpnn.random on JAX / jitted ``jax.random.normal`` (the same numbers).

Variants are timed in interleaved rounds (``benchmarks.activations._interleaved``)
and compared as ratios of medians.  The native generators of NumPy, CuPy and
torch are different algorithms (PCG64/Ziggurat, XORWOW, Philox/Mersenne), so those ratios
are the price of portable, jax-equal numbers.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import xpnn.random as xr
from xpnn.benchmarks.activations import LIBRARIES, _interleaved, placement, ratio_fields, ratio_table

SHAPE = (4096, 4096)  # 16M values


def _variants(library: str, device: str) -> dict[str, dict[str, Callable[[], Any]]]:
    """``{draw: {"xpnn": ..., "native": ...}}`` for ``library`` on ``device``."""
    put, _ = placement(library, device)
    key = xr.key(0, like=put(np.zeros(1, np.float32)))
    if library == "numpy":
        rng = np.random.default_rng(0)
        native = {"normal": lambda: rng.standard_normal(SHAPE, dtype=np.float32),
                  "uniform": lambda: rng.random(SHAPE, dtype=np.float32)}
    elif library == "cupy":
        import cupy

        rng = cupy.random.default_rng(0)
        native = {"normal": lambda: rng.standard_normal(SHAPE, dtype=cupy.float32),
                  "uniform": lambda: rng.random(SHAPE, dtype=cupy.float32)}
    elif library == "torch":
        import torch

        native = {"normal": lambda: torch.randn(SHAPE, device=device),
                  "uniform": lambda: torch.rand(SHAPE, device=device)}
    else:
        import jax

        native_key = jax.device_put(jax.random.key(0), key.device)
        normal = jax.jit(lambda k: jax.random.normal(k, SHAPE))
        uniform = jax.jit(lambda k: jax.random.uniform(k, SHAPE))
        native = {"normal": lambda: normal(native_key), "uniform": lambda: uniform(native_key)}
    ours = {"normal": lambda: xr.normal(key, SHAPE), "uniform": lambda: xr.uniform(key, SHAPE)}
    return {draw: {"xpnn": ours[draw], "native": native[draw]} for draw in ours}


def run(libraries: tuple[str, ...] = LIBRARIES["cpu"], device: str = "cpu") -> list[dict]:
    rows, unit = [], "us" if device == "cuda" else "ms"
    for library in libraries:
        _, sync = placement(library, device)
        for draw, variants in _variants(library, device).items():
            medians = _interleaved(variants, sync, budget=2.0, rounds=3)
            rows.append({"library": library, "device": device, "draw": draw, "shape": SHAPE,
                         **ratio_fields(medians, unit)})
    return rows


def report(rows: list[dict]) -> str:
    unit = "us" if rows and "xpnn_us" in rows[0] else "ms"
    return ratio_table(rows, (("library", "8"), ("device", "6"), ("draw", "8")), unit)

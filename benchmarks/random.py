"""Random-number timings: 16M float32 normals (and uniforms) from xpnn.random against each library's own generator.

* numpy: xpnn.random on NumPy / ``np.random.default_rng().standard_normal``;
* torch: xpnn.random on torch / ``torch.randn``;
* jax: xpnn.random on JAX / jitted ``jax.random.normal`` (the same numbers).

Variants are timed in interleaved rounds (``benchmarks.activations._interleaved``)
and compared as ratios of medians.  The native generators of NumPy and torch
are different algorithms (PCG64/Ziggurat, Philox/Mersenne), so those ratios
are the price of portable, jax-equal numbers.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import xpnn.random as xr
from benchmarks.activations import _interleaved, ratio_fields, ratio_table

SHAPE = (4096, 4096)  # 16M values


def _numpy() -> tuple[dict[str, Callable[[], Any]], Callable[[Any], Any]]:
    key, rng = xr.key(0), np.random.default_rng(0)
    return {
        "normal": {"xpnn": lambda: xr.normal(key, SHAPE),
                   "native": lambda: rng.standard_normal(SHAPE, dtype=np.float32)},
        "uniform": {"xpnn": lambda: xr.uniform(key, SHAPE), "native": lambda: rng.random(SHAPE, dtype=np.float32)},
    }, lambda out: out


def _torch():
    import torch

    key = xr.key(0, like=torch)
    return {
        "normal": {"xpnn": lambda: xr.normal(key, SHAPE), "native": lambda: torch.randn(SHAPE)},
        "uniform": {"xpnn": lambda: xr.uniform(key, SHAPE), "native": lambda: torch.rand(SHAPE)},
    }, lambda out: out


def _jax():
    import jax
    import jax.numpy as jnp

    key, native_key = xr.key(0, like=jnp), jax.random.key(0)
    normal = jax.jit(lambda k: jax.random.normal(k, SHAPE))
    uniform = jax.jit(lambda k: jax.random.uniform(k, SHAPE))
    return {
        "normal": {"xpnn": lambda: xr.normal(key, SHAPE), "native": lambda: normal(native_key)},
        "uniform": {"xpnn": lambda: xr.uniform(key, SHAPE), "native": lambda: uniform(native_key)},
    }, lambda out: out.block_until_ready()


_LIBRARIES = {"numpy": _numpy, "torch": _torch, "jax": _jax}


def run(libraries: tuple[str, ...] = ("numpy", "torch", "jax")) -> list[dict]:
    rows = []
    for library in libraries:
        variants_by_draw, sync = _LIBRARIES[library]()
        for draw, variants in variants_by_draw.items():
            medians = _interleaved(variants, sync, budget=2.0, rounds=3)
            rows.append({"library": library, "draw": draw, "shape": SHAPE, **ratio_fields(medians, "ms")})
    return rows


def report(rows: list[dict]) -> str:
    return ratio_table(rows, (("library", "8"), ("draw", "8")), "ms")

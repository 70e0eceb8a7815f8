"""Convolution and pooling timings: xpnn's layers against each framework's own, same weights.

* torch: ``xpnn.Conv``/``ConvTranspose``/``max_pool``/``avg_pool`` on NHWC tensors against
  ``torch.nn.Conv2d``/``ConvTranspose2d``/``F.max_pool2d``/``F.avg_pool2d`` on NCHW ones
  (torch's own layout: xpnn pays the layout conversion, the native call does not);
* jax: jitted xpnn against jitted ``flax.linen``;
* numpy: xpnn against torch's CPU convolution of the same shapes (the target is 2x);
* array_api_strict (``--libraries array_api_strict``): the standard-only primitives, timed
  against xpnn on NumPy (its own kernels) with the same variables.

Shapes are float32 and follow the layers of a ResNet, a depthwise block, a 1-D audio
front end, a decoder's transposed convolution and the pools.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import xpnn as nn
from xpnn.benchmarks.activations import LIBRARIES, paired_rows, placement, ratio_table

#: label -> (input shape NHWC, layer builder in a namespace L (xpnn or flax.linen), torch builder)
CASES: dict[str, tuple[tuple[int, ...], Callable[[Any], Any], Callable[[Any], Any]]] = {
    "3x3 64->64 (8,56,56)": ((8, 56, 56, 64), lambda L: L.Conv(64, (3, 3), padding=1),
                             lambda t: t.nn.Conv2d(64, 64, 3, padding=1)),
    "5x5 32->32 (4,64,64)": ((4, 64, 64, 32), lambda L: L.Conv(32, (5, 5), padding=2),
                             lambda t: t.nn.Conv2d(32, 32, 5, padding=2)),
    "7x7/2 3->64 stem (1,224,224)": ((1, 224, 224, 3), lambda L: L.Conv(64, (7, 7), strides=2, padding=3),
                                     lambda t: t.nn.Conv2d(3, 64, 7, stride=2, padding=3)),
    "depthwise 3x3 64 (8,56,56)": ((8, 56, 56, 64), lambda L: L.Conv(64, (3, 3), padding=1, feature_group_count=64),
                                   lambda t: t.nn.Conv2d(64, 64, 3, padding=1, groups=64)),
    "1-D k80/4 1->32 (8,16000)": ((8, 16000, 1), lambda L: L.Conv(32, (80,), strides=4, padding="VALID"),
                                  lambda t: t.nn.Conv1d(1, 32, 80, stride=4)),
    "transpose 4x4/2 64->32 (8,32,32)": ((8, 32, 32, 64),
                                         lambda L: L.ConvTranspose(32, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)),
                                                                   transpose_kernel=True),
                                         lambda t: t.nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1)),
    "max_pool 3x3/2 (8,56,56,64)": ((8, 56, 56, 64), None, None),
    "avg_pool 2x2 (8,56,56,64)": ((8, 56, 56, 64), None, None),
}


def _pool(label: str, namespace: Any) -> Callable[[Any], Any]:
    if label.startswith("max_pool"):
        return lambda x: namespace.max_pool(x, (3, 3), (2, 2), ((1, 1), (1, 1)))
    return lambda x: namespace.avg_pool(x, (2, 2), (2, 2))


def _torch_pool(label: str, torch: Any) -> Callable[[Any], Any]:
    functional = torch.nn.functional
    if label.startswith("max_pool"):
        return lambda x: functional.max_pool2d(x, 3, 2, 1)
    return lambda x: functional.avg_pool2d(x, 2, 2)


def _variants(library: str, device: str, label: str) -> dict[str, Callable[[], Any]]:
    shape, build, build_torch = CASES[label]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    if library == "array_api_strict":  # the standard-only primitives against NumPy's kernels
        strict = placement(library, device)[0](x)
        if build is None:
            pool = _pool(label, nn)
            return {"xpnn": lambda: pool(strict), "native": lambda: pool(x)}
        layer = build(nn)
        variables = layer.init(nn.random.key(0), x)
        strict_variables = nn.to_backend(variables, like=strict)
        return {"xpnn": lambda: layer.apply(strict_variables, strict), "native": lambda: layer.apply(variables, x)}
    import torch

    channels_first = torch.movedim(torch.from_numpy(x), -1, 1).contiguous().to(device)  # torch where xpnn runs
    if build is None:
        native = _torch_pool(label, torch)
        ours = _pool(label, nn)
        if library == "jax":
            import flax.linen as fnn
            import jax

            xj = placement("jax", device)[0](x)
            theirs = jax.jit(_pool(label, fnn))
            mine = jax.jit(ours)
            return {"xpnn": lambda: mine(xj), "native": lambda: theirs(xj)}
        put, _ = placement(library, device)
        xb = put(x)
        return {"xpnn": lambda: ours(xb), "native": lambda: native(channels_first)}
    layer = build(nn)
    if library == "jax":
        import flax.linen as fnn
        import jax

        xj = placement("jax", device)[0](x)
        flax_layer = build(fnn)
        variables = flax_layer.init(jax.random.key(0), xj)
        mine, theirs = jax.jit(layer.apply), jax.jit(flax_layer.apply)
        return {"xpnn": lambda: mine(variables, xj), "native": lambda: theirs(variables, xj)}
    put, _ = placement(library, device)
    xb = put(x)
    variables = layer.init(nn.random.key(0), xb)
    native = build_torch(torch).to(device)
    with torch.no_grad():
        return {"xpnn": torch.no_grad()(lambda: layer.apply(variables, xb)),
                "native": torch.no_grad()(lambda: native(channels_first))}


def run(libraries: tuple[str, ...] = LIBRARIES["cpu"], device: str = "cpu") -> list[dict]:
    return paired_rows(libraries, device, CASES, _variants,
                       lambda library: {"jax": "flax.linen (jit)", "array_api_strict": "xpnn numpy"}.get(library, "torch"))


def report(rows: list[dict]) -> str:
    return ratio_table(rows, (("library", "16"), ("device", "6"), ("layer", "34"), ("versus", "16")), "ms")

"""Recurrent timings: ``xpnn.RNN(LSTMCell)`` and ``RNN(GRUCell)`` against torch.nn.LSTM/GRU and jitted flax.

LSTM and GRU, hidden 256, input 128, batch 32, sequence 128, float32, forward:

* torch: xpnn with the torch module's weights converted (``xpnn.layers.torch_rnn``) against
  ``torch.nn.LSTM``/``GRU(batch_first=True)`` (torch's fused C++ loop);
* jax: ``jax.jit`` of xpnn's apply against ``jax.jit`` of ``flax.linen.RNN`` with the same variables;
* numpy: xpnn against torch's CPU LSTM/GRU (numpy has none).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import xpnn as nn
from xpnn.benchmarks.activations import LIBRARIES, paired_rows, placement, ratio_table
from xpnn.layers import torch_rnn

BATCH, STEPS, FEATURES, HIDDEN = 32, 128, 128, 256
CASES = {"LSTM 32x128x128 -> 256": "LSTM", "GRU 32x128x128 -> 256": "GRU"}


def _torch_module(kind: str, device: str) -> Any:
    import torch

    torch.manual_seed(0)
    module = getattr(torch.nn, kind)(FEATURES, HIDDEN, batch_first=True).to(device).eval()
    return module


def _variants(library: str, device: str, label: str) -> dict[str, Callable[[], Any]]:
    import torch

    kind = CASES[label]
    x = np.random.default_rng(0).standard_normal((BATCH, STEPS, FEATURES)).astype(np.float32)
    module = _torch_module(kind, device)  # torch on the device xpnn runs on
    state = {name: value.detach().cpu().numpy() for name, value in module.state_dict().items()}
    params = torch_rnn.from_torch(state, kind)["params"]["layers_0"]
    layer = nn.RNN(nn.LSTMCell(HIDDEN) if kind == "LSTM" else nn.GRUCell(HIDDEN))
    xt = torch.from_numpy(x).to(device)
    native = torch.no_grad()(lambda: module(xt))
    if library == "jax":
        import flax.linen as fnn
        import jax

        put = placement("jax", device)[0]
        xj = put(x)
        variables = {"params": jax.tree_util.tree_map(put, params)}
        flax_layer = fnn.RNN(fnn.LSTMCell(HIDDEN) if kind == "LSTM" else fnn.GRUCell(HIDDEN))
        mine = jax.jit(lambda v, a: layer.apply(v, a))
        theirs = jax.jit(lambda v, a: flax_layer.apply(v, a))
        return {"xpnn": lambda: mine(variables, xj), "native": lambda: theirs(variables, xj)}
    put, _ = placement(library, device)
    variables = {"params": nn.tree_map(put, params)}
    xb = put(x)
    if library == "torch":
        return {"xpnn": torch.no_grad()(lambda: layer.apply(variables, xb)), "native": native}
    return {"xpnn": lambda: layer.apply(variables, xb), "native": native}


def run(libraries: tuple[str, ...] = LIBRARIES["cpu"], device: str = "cpu") -> list[dict]:
    return paired_rows(libraries, device, CASES, _variants,
                       lambda library: {"jax": "flax.linen RNN (jit)", "torch": "torch.nn"}.get(library,
                                                                                            "torch.nn (cpu)"))


def report(rows: list[dict]) -> str:
    return ratio_table(rows, (("library", "8"), ("device", "6"), ("layer", "24"), ("versus", "22")), "ms")

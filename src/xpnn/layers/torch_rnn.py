"""torch.nn.LSTM / GRU / RNN state_dicts to and from xpnn's (flax's) recurrent layers.

torch keeps every layer's gates stacked in one matrix, ``weight_ih_l{k}`` ``(G*H, in)`` and
``weight_hh_l{k}`` ``(G*H, H)`` with biases ``bias_ih_l{k}`` and ``bias_hh_l{k}`` (suffix
``_reverse`` for the backward direction), gate order i, f, g, o (LSTM) and r, z, n (GRU).
flax has one Dense per gate, ``kernel`` ``(in, H)``, and one bias where torch has two:

* LSTM: ``ii, if, ig, io`` = the input kernels (no bias), ``hi, hf, hg, ho`` = the hidden
  kernels with bias ``b_ih + b_hh``;
* GRU: ``ir, iz`` with bias ``b_i + b_h`` (the hidden products are summed), ``in`` with
  ``b_in``, ``hr, hz`` kernels only, ``hn`` with ``b_hn`` (it stays inside the reset product);
* RNN (tanh): ``SimpleCell``, ``i`` with ``b_ih + b_hh``, ``h`` kernel only.

``model`` builds the stack as ``Sequential`` of ``RNN`` (or ``Bidirectional``) layers,
``layers_0``, ``layers_1``..., and ``from_torch`` / ``to_torch`` convert its
variables.  Arrays keep their library (torch tensors stay tensors: ``xpnn.to_backend`` moves
them).  The torch-style namespace reuses these.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from xpnn._checks import device_of
from xpnn._dispatch import adapter_of
from xpnn._types import Array
from xpnn.layers.combinators import Sequential
from xpnn.layers.recurrent import RNN, Bidirectional, GRUCell, LSTMCell, SimpleCell

__all__ = ["model", "from_torch", "to_torch"]

_GATES = {"LSTM": ("i", "f", "g", "o"), "GRU": ("r", "z", "n"), "RNN": ("",)}
_CELLS = {"LSTM": LSTMCell, "GRU": GRUCell, "RNN": SimpleCell}
_KEY = re.compile(r"(weight|bias)_(ih|hh)_l(\d+)(_reverse)?$")


def _kind(kind: str) -> str:
    if kind not in _GATES:
        raise ValueError(f"xpnn.layers.torch_rnn: kind must be 'LSTM', 'GRU' or 'RNN', got {kind!r}")
    return kind


def model(kind: str, hidden_size: int, num_layers: int = 1, bidirectional: bool = False,
          batch_first: bool = True) -> Sequential:
    """The xpnn layers of ``torch.nn.<kind>(input_size, hidden_size, num_layers, bidirectional=...,
    batch_first=...)``: ``num_layers`` RNNs (``Bidirectional`` pairs whose outputs are
    concatenated, as torch's) in a ``Sequential``; ``batch_first=False`` takes torch's
    ``(time, batch, features)`` input (``time_major``).  Its output is torch's first output."""
    cell = _CELLS[_kind(kind)]
    time_major = not batch_first

    def rnn() -> RNN:
        return RNN(cell(hidden_size), time_major=time_major)

    layers = [Bidirectional(rnn(), rnn(), time_major=time_major) if bidirectional else rnn()
              for _ in range(num_layers)]
    return Sequential(layers)


def _layers(state_dict: Mapping[str, Any]) -> tuple[int, bool]:
    layers, reverse = 0, False
    for key in state_dict:
        match = _KEY.match(key)
        if match is None:
            raise ValueError(f"xpnn.layers.torch_rnn.from_torch: unexpected key {key!r} (expected torch.nn.LSTM/GRU/RNN "
                             "keys weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, ..._reverse)")
        layers = max(layers, int(match.group(3)) + 1)
        reverse = reverse or match.group(4) is not None
    return layers, reverse


def _rows(matrix: Array, count: int) -> list[Array]:
    size = matrix.shape[0] // count
    return [matrix[index * size:(index + 1) * size, ...] for index in range(count)]


def _cell_from_torch(kind: str, state_dict: Mapping[str, Any], suffix: str) -> dict[str, Any]:
    weight_ih, weight_hh = state_dict[f"weight_ih{suffix}"], state_dict[f"weight_hh{suffix}"]
    xp = adapter_of(weight_ih).xp
    gates = _GATES[kind]
    hidden = weight_hh.shape[1]
    zeros = xp.zeros((len(gates) * hidden,), dtype=weight_ih.dtype, device=device_of(weight_ih))
    bias_ih = state_dict.get(f"bias_ih{suffix}", zeros)
    bias_hh = state_dict.get(f"bias_hh{suffix}", zeros)
    w_i, w_h = _rows(weight_ih, len(gates)), _rows(weight_hh, len(gates))
    b_i, b_h = _rows(bias_ih, len(gates)), _rows(bias_hh, len(gates))
    kernel = {gate: (xp.permute_dims(wi, (1, 0)), xp.permute_dims(wh, (1, 0))) for gate, wi, wh in zip(gates, w_i, w_h)}
    if kind == "LSTM":
        params = {f"i{g}": {"kernel": kernel[g][0]} for g in gates}
        params.update({f"h{g}": {"kernel": kernel[g][1], "bias": bi + bh} for g, bi, bh in zip(gates, b_i, b_h)})
        return params
    if kind == "GRU":
        return {"ir": {"kernel": kernel["r"][0], "bias": b_i[0] + b_h[0]},
                "iz": {"kernel": kernel["z"][0], "bias": b_i[1] + b_h[1]},
                "in": {"kernel": kernel["n"][0], "bias": b_i[2]},
                "hr": {"kernel": kernel["r"][1]}, "hz": {"kernel": kernel["z"][1]},
                "hn": {"kernel": kernel["n"][1], "bias": b_h[2]}}
    return {"i": {"kernel": kernel[""][0], "bias": b_i[0] + b_h[0]}, "h": {"kernel": kernel[""][1]}}


def from_torch(state_dict: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """The variables of ``model`` for the state_dict of a ``torch.nn.<kind>`` (``'LSTM'``,
    ``'GRU'`` or ``'RNN'`` with tanh): ``{'params': {'layers_0': ..., ...}}``, the layer count
    and direction read from the keys."""
    kind = _kind(kind)
    layers, bidirectional = _layers(state_dict)
    params = {}
    for layer in range(layers):
        forward = {"cell": _cell_from_torch(kind, state_dict, f"_l{layer}")}
        if bidirectional:
            backward = {"cell": _cell_from_torch(kind, state_dict, f"_l{layer}_reverse")}
            params[f"layers_{layer}"] = {"forward_rnn": forward, "backward_rnn": backward}
        else:
            params[f"layers_{layer}"] = forward
    return {"params": params}


def _cell_to_torch(kind: str, cell: Mapping[str, Any], suffix: str) -> dict[str, Array]:
    gates = _GATES[kind]
    first = next(iter(cell.values()))["kernel"]
    xp = adapter_of(first).xp

    def stacked(names: list[str]) -> Array:
        return xp.concat([xp.permute_dims(cell[name]["kernel"], (1, 0)) for name in names], axis=0)

    if kind == "LSTM":
        weight_ih, weight_hh = stacked([f"i{g}" for g in gates]), stacked([f"h{g}" for g in gates])
        bias_ih = xp.concat([cell[f"h{g}"]["bias"] for g in gates])
        bias_hh = xp.zeros_like(bias_ih)
    elif kind == "GRU":
        weight_ih, weight_hh = stacked(["ir", "iz", "in"]), stacked(["hr", "hz", "hn"])
        bias_ih = xp.concat([cell["ir"]["bias"], cell["iz"]["bias"], cell["in"]["bias"]])
        bias_hh = xp.concat([xp.zeros_like(cell["hn"]["bias"]), xp.zeros_like(cell["hn"]["bias"]), cell["hn"]["bias"]])
    else:
        weight_ih, weight_hh = stacked(["i"]), stacked(["h"])
        bias_ih, bias_hh = cell["i"]["bias"], xp.zeros_like(cell["i"]["bias"])
    return {f"weight_ih{suffix}": weight_ih, f"weight_hh{suffix}": weight_hh,
            f"bias_ih{suffix}": bias_ih, f"bias_hh{suffix}": bias_hh}


def to_torch(variables: Mapping[str, Any], kind: str) -> dict[str, Array]:
    """The ``torch.nn.<kind>`` state_dict of ``model``'s variables (``load_state_dict`` takes
    it once the arrays are torch tensors): the summed biases go to ``bias_ih``, ``bias_hh``
    keeps what only torch's hidden side has (GRU's ``b_hn``) and zeros."""
    kind = _kind(kind)
    params = variables.get("params", variables)
    state: dict[str, Array] = {}
    for layer in range(len(params)):
        entry = params[f"layers_{layer}"]
        if "cell" in entry:
            state.update(_cell_to_torch(kind, entry["cell"], f"_l{layer}"))
        else:
            state.update(_cell_to_torch(kind, entry["forward_rnn"]["cell"], f"_l{layer}"))
            state.update(_cell_to_torch(kind, entry["backward_rnn"]["cell"], f"_l{layer}_reverse"))
    return state

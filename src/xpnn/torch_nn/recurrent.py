"""torch.nn's ``LSTM`` and ``GRU`` with torch's parameters (``weight_ih_l{k}``, ``weight_hh_l{k}``,
``bias_ih_l{k}``, ``bias_hh_l{k}``, ``_reverse`` for the backward direction), run by the
flax-style ``RNN``/``Bidirectional`` layers and cells (``xpnn.layers.torch_rnn`` maps the
stacked gates onto the cells' variables: no second implementation of the recurrences).
"""
from __future__ import annotations

import math
from typing import Any

from xpnn._dispatch import adapter_of
from xpnn._types import Array
from xpnn.layers.recurrent import RNN, Bidirectional
from xpnn.layers.torch_rnn import _CELLS, _GATES, _cell_from_torch
from xpnn.torch_nn import functional as F
from xpnn.torch_nn.module import Factory, Module, Parameter

__all__ = ["LSTM", "GRU"]


class _RNNBase(Module):
    _kind = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 *, like: Any = None, dtype: Any = None, key: Array | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        if proj_size:
            raise NotImplementedError(f"xpnn.torch_nn.{name}: proj_size is not supported")
        if not 0 <= dropout <= 1:
            raise ValueError(f"xpnn.torch_nn.{name}: dropout should be a number in range [0, 1], got {dropout}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout, self.bidirectional = bias, batch_first, dropout, bidirectional
        gates = len(_GATES[self._kind]) * hidden_size
        make = Factory(like, dtype, key)
        bound = 1.0 / math.sqrt(hidden_size)
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            width = input_size if layer == 0 else hidden_size * directions
            for suffix in ("", "_reverse")[:directions]:
                setattr(self, f"weight_ih_l{layer}{suffix}", Parameter(make.uniform((gates, width), bound)))
                setattr(self, f"weight_hh_l{layer}{suffix}", Parameter(make.uniform((gates, hidden_size), bound)))
                if bias:
                    setattr(self, f"bias_ih_l{layer}{suffix}", Parameter(make.uniform((gates,), bound)))
                    setattr(self, f"bias_hh_l{layer}{suffix}", Parameter(make.uniform((gates,), bound)))

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if not self.bias:
            text += ", bias=False"
        if self.batch_first:
            text += ", batch_first=True"
        if self.dropout:
            text += f", dropout={self.dropout}"
        if self.bidirectional:
            text += ", bidirectional=True"
        return text

    def _run(self, input: Array, hx: Any) -> tuple[Array, list[Any]]:
        """The stacked layers over ``input`` (time-major unless ``batch_first``), from the initial
        carries ``hx`` (a flax carry per layer and direction, or None: zeros); the output and
        every layer's final carries."""
        cell = _CELLS[self._kind](self.hidden_size)
        time_major = not self.batch_first
        state = self._parameters
        finals: list[Any] = []
        x = input
        for layer in range(self.num_layers):
            rnn = RNN(cell, time_major=time_major, return_carry=True)
            forward = {"cell": _cell_from_torch(self._kind, state, f"_l{layer}")}
            starts = None if hx is None else hx[layer]
            if self.bidirectional:
                model = Bidirectional(rnn, RNN(cell, time_major=time_major, return_carry=True),
                                      time_major=time_major, return_carry=True)
                params = {"forward_rnn": forward,
                          "backward_rnn": {"cell": _cell_from_torch(self._kind, state, f"_l{layer}_reverse")}}
                carries, x = model.apply({"params": params}, x, initial_carry=starts)
                finals.extend(carries)
            else:
                carry, x = rnn.apply({"params": forward}, x, initial_carry=None if starts is None else starts[0])
                finals.append(carry)
            if self.training and self.dropout and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        return x, finals

    def _batched(self, input: Array) -> tuple[Array, bool]:
        if input.ndim == 2:
            return adapter_of(input).xp.expand_dims(input, axis=0 if self.batch_first else 1), True
        if input.ndim != 3:
            raise ValueError(f"xpnn.torch_nn.{type(self).__name__}: input must be 2-d (unbatched) or 3-d, got shape "
                             f"{tuple(input.shape)}")
        return input, False

    def _carries(self, states: list[Array] | None) -> list[Any] | None:
        """torch's initial states, each ``(num_layers * directions, N, H)``, as flax carries per layer."""
        if states is None:
            return None
        directions = 2 if self.bidirectional else 1
        per_layer = []
        for layer in range(self.num_layers):
            carries = []
            for direction in range(directions):
                index = layer * directions + direction
                parts = [state[index, ...] for state in states]
                carries.append(tuple(reversed(parts)) if len(parts) == 2 else parts[0])  # flax LSTM carry: (c, h)
            per_layer.append(tuple(carries))
        return per_layer


def _stacked(xp: Any, finals: list[Any], unbatched: bool) -> Array:
    stacked = xp.stack(finals, axis=0)
    return stacked[:, 0, :] if unbatched else stacked


class LSTM(_RNNBase):
    """Multi-layer LSTM, gates i, f, g, o: c' = f c + i g, h' = o tanh(c').  ``forward(input,
    (h_0, c_0))`` returns ``output, (h_n, c_n)``; every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
    _kind = "LSTM"

    def forward(self, input: Array, hx: tuple[Array, Array] | None = None) -> tuple[Array, tuple[Array, Array]]:
        x, unbatched = self._batched(input)
        if hx is not None and unbatched:
            xp = adapter_of(input).xp
            hx = (xp.expand_dims(hx[0], axis=1), xp.expand_dims(hx[1], axis=1))
        output, finals = self._run(x, self._carries(None if hx is None else list(hx)))
        xp = adapter_of(output).xp
        h_n = _stacked(xp, [c[1] for c in finals], unbatched)
        c_n = _stacked(xp, [c[0] for c in finals], unbatched)
        return (output[0, ...] if unbatched and self.batch_first else output[:, 0, ...] if unbatched else output), (h_n, c_n)


class GRU(_RNNBase):
    """Multi-layer GRU, gates r, z, n: n = tanh(W_in x + b_in + r (W_hn h + b_hn)),
    h' = (1 - z) n + z h.  ``forward(input, h_0)`` returns ``output, h_n``."""
    _kind = "GRU"

    def forward(self, input: Array, hx: Array | None = None) -> tuple[Array, Array]:
        x, unbatched = self._batched(input)
        if hx is not None and unbatched:
            hx = adapter_of(input).xp.expand_dims(hx, axis=1)
        output, finals = self._run(x, self._carries(None if hx is None else [hx]))
        xp = adapter_of(output).xp
        return (output[0, ...] if unbatched and self.batch_first else output[:, 0, ...] if unbatched else output), \
            _stacked(xp, finals, unbatched)

"""torch.nn's ``LSTM``, ``GRU`` and ``RNN`` with torch's parameters (``weight_ih_l{k}``,
``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``, ``_reverse`` for the backward direction),
and the one-step ``LSTMCell``, ``GRUCell`` and ``RNNCell`` (``weight_ih``, ``weight_hh``,
``bias_ih``, ``bias_hh``), run by the flax-style cells' written-once steps
(``xpnn.layers.recurrent.scan_dense_cell``): torch's stacked gates (i, f, g, o and r, z, n) are
the cells' side-by-side kernels already, so the weights go in as they are (transposed views),
and on torch the fused loop behind ``torch.nn.LSTM`` runs them.
"""
from __future__ import annotations

import functools
import math
from typing import Any

from xpnn._dispatch import adapter_of, fast_paths_enabled
from xpnn._kernel_check import layer_kernel_agrees, outputs_disagreement
from xpnn._types import Array
from xpnn.functions.activations import relu, tanh
from xpnn.layers import recurrent
from xpnn.torch_nn import functional as F
from xpnn.torch_nn import init
from xpnn.torch_nn.init import Factory
from xpnn.torch_nn.module import Module, Parameter
from xpnn.torch_nn.utils import rnn
from xpnn.trees import tree_leaves, tree_map

__all__ = ["RNNBase", "LSTM", "GRU", "RNN", "RNNCellBase", "LSTMCell", "GRUCell", "RNNCell"]

#: Gates per mode of torch's ``RNNBase``: the rows of its stacked weights are this many times hidden_size.
_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}
#: The Elman layers' modes by nonlinearity.
_ELMAN_MODES = {"tanh": "RNN_TANH", "relu": "RNN_RELU"}


def _elman_mode(name: str, nonlinearity: str) -> str:
    if nonlinearity not in _ELMAN_MODES:
        raise ValueError(f"xpnn.torch_nn.{name}: unknown nonlinearity {nonlinearity!r}; select from 'tanh' or "
                         f"'relu' (as torch)")
    return _ELMAN_MODES[nonlinearity]


def _cell(mode: str, hidden_size: int) -> Any:
    """The flax-style cell whose written-once step computes torch's ``mode`` of layer."""
    if mode == "LSTM":
        return recurrent.LSTMCell(hidden_size)
    if mode == "GRU":
        return recurrent.GRUCell(hidden_size)
    return recurrent.SimpleCell(hidden_size, activation_fn=relu if mode == "RNN_RELU" else tanh)


def _cell_weights(parameters: dict[str, Any], suffix: str,
                  like: Array) -> tuple[Array, Array | None, Array, Array | None]:
    """The weights ``weight_ih{suffix}``... of ``parameters`` in the cells' layout: the kernels
    side by side (torch's stacked matrices transposed) and the biases as torch adds them, each on
    its side's product (the GRU's n hidden bias so inside the reset product)."""
    w_input, w_hidden = parameters[f"weight_ih{suffix}"], parameters[f"weight_hh{suffix}"]
    ops = adapter_of(like, w_input, w_hidden)  # the weights of another library: a TypeError, as torch's
    xp = ops.xp
    w_input, w_hidden = w_input.T, w_hidden.T
    b_input, b_hidden = parameters.get(f"bias_ih{suffix}"), parameters.get(f"bias_hh{suffix}")
    if b_input is None:
        b_input = b_hidden = xp.zeros((w_hidden.shape[1],), dtype=w_hidden.dtype, device=ops.device_of(like))
    return w_input, b_input, w_hidden, b_hidden  # the step adds each gate's hidden bias to its hidden product


def _direction(ops: Any, cell: Any, weights: tuple[Array, Array | None, Array, Array | None],
               projection: Array | None, carry: Any, x: Array, lengths: Array | None,
               backward: bool) -> tuple[Any, Array]:
    """One direction of a layer over the time-major ``x`` from ``carry``, by the cell's
    written-once step (or the library's fused loop): the final carry and the outputs.  With the
    sequences' ``lengths`` (a packed input), the backward direction runs over each sequence's own
    steps reversed and the final carry is the one at each sequence's last step."""
    xp = ops.xp
    per_step = lengths is not None and isinstance(cell, recurrent.LSTMCell)  # its c is no output: every step's
    xs = recurrent.flip_sequences(xp, x, lengths) if backward else x
    carry, ys = recurrent.scan_dense_cell(ops, cell, weights, carry, xs, slice_carry=per_step, projection=projection)
    if per_step:
        carries, ys = ys
        carry = tree_map(lambda history: recurrent.last_steps(xp, history, lengths), carries)
    elif lengths is not None:  # the carry is the output h: each sequence's at its last step
        carry = recurrent.last_steps(xp, ys, lengths)
    return carry, recurrent.flip_sequences(xp, ys, lengths) if backward else ys


@functools.lru_cache(maxsize=None)
def _packed_loop_name(mode: str, projected: bool = False) -> str:
    return f"RNN({mode}) fused packed loop{', projected' if projected else ''}"


def _packed_disagreement(ops: Any, dtype: Any, device: Any, kind: str, projected: bool = False) -> str | None:
    """Why the library's fused loop of a packed layer of mode ``kind`` (``projected``: an LSTM's h
    projected to 2 units) and the padded written-once layer differ on a fixed probe (lengths 5,
    3, 3, 1; 5 inputs, 4 units, gates driven into saturation too; forward only and both
    directions); None if they agree."""
    xp = ops.xp
    made = recurrent.probe_maker(ops, dtype, device)
    gates, width = _GATES[kind], 2 if projected else 4  # width: of h
    sequence = rnn.pack_padded_sequence(made(5, 4, 5, scale=3.0), [5, 3, 3, 1])
    x, lengths = rnn.pad_packed_sequence(sequence)
    cell = _cell(kind, 4)
    weights = [(made(5, 4 * gates), made(4 * gates), made(width, 4 * gates), made(4 * gates)) for _ in range(2)]
    projections = [made(4, width) for _ in range(2)] if projected else None
    carries = [(made(4, 4), made(4, width)) if kind == "LSTM" else made(4, 4) for _ in range(2)]
    tolerance = 16 * float(xp.finfo(dtype).eps)  # as the fused loop's check
    for directions in (1, 2):
        fused = ops.fused_packed_recurrence(kind, sequence.data, sequence.batch_sizes, carries[:directions],
                                            weights[:directions], projections and projections[:directions])
        if fused is None:
            continue
        finals, outputs = [], []
        for index in range(directions):
            carry, ys = _direction(ops, cell, weights[index], projections and projections[index], carries[index], x,
                                   lengths, backward=index == 1)
            finals.append(carry)
            outputs.append(ys)
        reference = (finals, rnn.packed_like(xp.concat(outputs, axis=-1), sequence).data)
        reason = outputs_disagreement(ops, tree_leaves(fused), tree_leaves(reference), tolerance,
                                      f"the fused packed {kind} loop of {directions} direction(s)",
                                      "the padded written-once layer")
        if reason is not None:
            return reason
    return None


recurrent.register_loop_checks(_packed_loop_name, _packed_disagreement)


def _reset_uniform(module: Module) -> None:
    """torch's reset of the recurrent layers and cells: each parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(module.hidden_size) if module.hidden_size > 0 else 0.0
    for parameter in module.parameters():
        init.uniform_(parameter, -bound, bound)


class RNNBase(Module):
    """torch.nn.RNNBase: the parameters of ``num_layers`` stacked layers of ``mode`` ('LSTM',
    'GRU', 'RNN_TANH' or 'RNN_RELU'), ``weight_ih_l{k}`` ``(G H, input)``, ``weight_hh_l{k}``
    ``(G H, H)``, ``bias_ih_l{k}`` and ``bias_hh_l{k}`` ``(G H,)`` for G gates (4, 3, 1, 1), the
    backward direction's with ``_reverse``, each ~ U(-1/sqrt(H), 1/sqrt(H)).  The base of
    ``LSTM``, ``GRU`` and ``RNN``, which run it; as torch's, it has no ``forward`` of its own."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 *, like: Any = None, dtype: Any = None, key: Array | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        if mode not in _GATES:
            raise ValueError(f"xpnn.torch_nn.{name}: Unrecognized RNN mode: {mode!r}; select from "
                             f"{', '.join(map(repr, _GATES))} (as torch)")
        if not 0 <= dropout <= 1:
            raise ValueError(f"xpnn.torch_nn.{name}: dropout should be a number in range [0, 1], got {dropout}")
        if proj_size < 0:
            raise ValueError(f"xpnn.torch_nn.{name}: proj_size should be a positive integer or zero to disable "
                             f"projections, got {proj_size}")
        if proj_size and mode != "LSTM":
            raise ValueError(f"xpnn.torch_nn.{name}: proj_size argument is only supported for LSTM, not RNN or GRU")
        if proj_size >= hidden_size:
            raise ValueError(f"xpnn.torch_nn.{name}: proj_size has to be smaller than hidden_size, got {proj_size} "
                             f"and {hidden_size}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout, self.bidirectional = bias, batch_first, dropout, bidirectional
        self.mode, self.proj_size = mode, proj_size
        gates = _GATES[mode] * hidden_size
        output = proj_size or hidden_size  # the width of h
        make = Factory(like, dtype, key)
        bound = 1.0 / math.sqrt(hidden_size)
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            width = input_size if layer == 0 else output * directions
            for suffix in ("", "_reverse")[:directions]:
                setattr(self, f"weight_ih_l{layer}{suffix}", Parameter(make.uniform((gates, width), bound)))
                setattr(self, f"weight_hh_l{layer}{suffix}", Parameter(make.uniform((gates, output), bound)))
                if bias:
                    setattr(self, f"bias_ih_l{layer}{suffix}", Parameter(make.uniform((gates,), bound)))
                    setattr(self, f"bias_hh_l{layer}{suffix}", Parameter(make.uniform((gates,), bound)))
                if proj_size:
                    setattr(self, f"weight_hr_l{layer}{suffix}", Parameter(make.uniform((proj_size, hidden_size),
                                                                                        bound)))

    def reset_parameters(self) -> None:
        """Every parameter drawn again, in place, from U(-1/sqrt(H), 1/sqrt(H)) (torch's)."""
        _reset_uniform(self)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            text += f", proj_size={self.proj_size}"
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

    def _run(self, x: Array, starts: list[Any] | None, lengths: Array | None = None) -> tuple[Array, list[Any]]:
        """The stacked layers over the time-major ``x`` from the initial carries ``starts`` (a
        cell carry per layer and direction; None: zeros): the output and the final carries.
        With the sequences' ``lengths`` (a packed input), the backward direction runs over each
        sequence's own steps reversed and each final carry is the one at its last step (the
        outputs past a sequence's end are not used)."""
        ops = adapter_of(x)
        xp = ops.xp
        cell = _cell(self.mode, self.hidden_size)
        directions = ("", "_reverse") if self.bidirectional else ("",)
        finals: list[Any] = []
        for layer in range(self.num_layers):
            outputs = []
            for index, suffix in enumerate(directions):
                carry = None if starts is None else starts[layer * len(directions) + index]
                if carry is None:
                    carry = self._zero_carry(ops, x.shape[1], x)
                # the carry laid out over devices as a step's batch (jax's explicit mesh axes)
                carry = tree_map(lambda leaf: ops.placed_like(leaf, x, skip=1), carry)
                projection = self._parameters.get(f"weight_hr_l{layer}{suffix}")
                carry, ys = _direction(ops, cell, _cell_weights(self._parameters, f"_l{layer}{suffix}", x),
                                       None if projection is None else xp.permute_dims(projection, (1, 0)), carry, x,
                                       lengths, backward=bool(suffix))
                finals.append(carry)
                outputs.append(ys)
            x = outputs[0] if len(outputs) == 1 else xp.concat(outputs, axis=-1)
            if self.training and self.dropout and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        return x, finals

    def _zero_carry(self, ops: Any, batch: int, like: Array) -> Any:
        """A layer direction's zero carry for ``batch`` sequences (the LSTM's ``(c, h)``, h of
        ``proj_size`` features when it has one)."""
        zeros = ops.xp.zeros((batch, self.hidden_size), dtype=like.dtype, device=ops.device_of(like))
        h = zeros[:, :self.proj_size] if self.proj_size else zeros
        return (zeros, h) if self.mode == "LSTM" else zeros

    def _run_packed(self, sequence: rnn.PackedSequence, starts: list[Any] | None) -> tuple[Array, list[Any]] | None:
        """The stacked layers over ``sequence``'s packed data by the library's fused loop of a
        packed layer (``fused_packed_recurrence``, torch's loop on a ``PackedSequence``), from the
        initial carries ``starts`` (in the batch's order): the packed output and the final
        carries; None where fast paths are off, the library has no such loop, a dropout would be
        drawn between layers (the padded layers draw it), the parameters and carries are not all
        the data's dtype, or the loop disagreed with the padded layers on this machine."""
        data, batch_sizes = sequence.data, sequence.batch_sizes
        if not fast_paths_enabled() or data.ndim != 2 or data.shape[0] == 0 or (
                self.training and self.dropout and self.num_layers > 1):
            return None
        if any(leaf.dtype != data.dtype for leaf in (*self._parameters.values(), *tree_leaves(starts or []))):
            return None
        ops = adapter_of(data)
        if not layer_kernel_agrees(_packed_loop_name(self.mode, bool(self.proj_size)), ops, data):
            return None
        xp = ops.xp
        directions = ("", "_reverse") if self.bidirectional else ("",)
        if starts is None:
            starts = [self._zero_carry(ops, int(batch_sizes[0]), data)] * (self.num_layers * len(directions))
        elif sequence.sorted_indices is not None:  # the carries in the packed data's order
            starts = tree_map(lambda leaf: rnn._taken(leaf, sequence.sorted_indices), starts)
        finals: list[Any] = []
        for layer in range(self.num_layers):
            names = [f"_l{layer}{suffix}" for suffix in directions]
            projections = [xp.permute_dims(self._parameters[f"weight_hr{name}"], (1, 0)) for name in names
                           ] if self.proj_size else None
            fused = ops.fused_packed_recurrence(self.mode, data, batch_sizes,
                                                starts[layer * len(directions):(layer + 1) * len(directions)],
                                                [_cell_weights(self._parameters, name, data) for name in names],
                                                projections)
            if fused is None:
                return None
            carries, data = fused
            finals += carries
        if sequence.unsorted_indices is not None:  # back in the batch's order
            finals = tree_map(lambda leaf: rnn._taken(leaf, sequence.unsorted_indices), finals)
        return data, finals

    def _batched(self, input: Array) -> tuple[Array, bool]:
        if input.ndim == 2:
            return adapter_of(input).xp.expand_dims(input, axis=0 if self.batch_first else 1), True
        if input.ndim != 3:
            raise ValueError(f"xpnn.torch_nn.{type(self).__name__}: input must be 2-d (unbatched) or 3-d, got shape "
                             f"{tuple(input.shape)}")
        return input, False

    def _carries(self, states: list[Array] | None) -> list[Any] | None:
        """torch's initial states, each ``(num_layers * directions, N, H)``, as cell carries per
        layer and direction (the LSTM's ``(c, h)``)."""
        if states is None:
            return None
        count = self.num_layers * (2 if self.bidirectional else 1)
        if len(states) == 2:
            return [(states[1][index, ...], states[0][index, ...]) for index in range(count)]
        return [states[0][index, ...] for index in range(count)]

    def _checked(self, x: Array, states: list[Array] | None, batch: int) -> None:
        """torch's checks of the input ``x`` of ``batch`` sequences (padded or packed data) and the
        initial states: a floating input of ``input_size`` features, each state
        ``(layers * directions, N, H)`` (the LSTM's ``h_0`` of ``proj_size`` features when it has one)."""
        where = f"xpnn.torch_nn.{type(self).__name__}"
        weight = self._parameters["weight_ih_l0"]
        if not adapter_of(x).xp.isdtype(x.dtype, "real floating"):
            raise F.UnsupportedDtypeError(f"{where}: input dtype ({x.dtype}) does not match weight dtype "
                                          f"({weight.dtype}); convert the input to a floating dtype (as torch)")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{where}: input.size(-1) must be equal to input_size. Expected {self.input_size}, got "
                             f"{x.shape[-1]}")
        layers = self.num_layers * (2 if self.bidirectional else 1)
        sizes = [self.proj_size or self.hidden_size, self.hidden_size][:len(states or ())]
        for index, (state, size) in enumerate(zip(states or (), sizes)):
            expected = (layers, batch, size)
            if tuple(state.shape) != expected:
                name = f"hidden[{index}]" if self.mode == "LSTM" else "hidden"
                raise ValueError(f"{where}: expected {name} size {expected}, got {tuple(state.shape)}")

    def _forward(self, input: Array | rnn.PackedSequence, states: list[Array] | None) -> tuple[Any, list[Any], bool]:
        """The output (in the input's layout: a packed input gives a packed output) and the final carries."""
        if isinstance(input, rnn.PackedSequence):  # time-major whatever batch_first says, as torch's
            self._checked(input.data, states, int(input.batch_sizes[0]) if len(input.batch_sizes) else 0)
            starts = self._carries(states)
            fused = self._run_packed(input, starts)
            if fused is not None:
                return input._replace(data=fused[0]), fused[1], False
            x, lengths = rnn.pad_packed_sequence(input)
            output, finals = self._run(x, starts, lengths)
            return rnn.packed_like(output, input), finals, False
        x, unbatched = self._batched(input)
        xp = adapter_of(x).xp
        if states is not None and unbatched:
            if any(state.ndim != 2 for state in states):
                raise ValueError(f"xpnn.torch_nn.{type(self).__name__}: for an unbatched 2-D input, the initial "
                                 f"states must be 2-D too, got shapes {[tuple(state.shape) for state in states]}")
            states = [xp.expand_dims(state, axis=1) for state in states]
        self._checked(x, states, x.shape[0] if self.batch_first else x.shape[1])
        if self.batch_first:
            x = xp.permute_dims(x, (1, 0, 2))
        output, finals = self._run(x, self._carries(states))
        if self.batch_first:
            output = xp.permute_dims(output, (1, 0, 2))
        if unbatched:
            output = output[0, ...] if self.batch_first else output[:, 0, ...]
        return output, finals, unbatched


def _stacked(finals: list[Any], unbatched: bool) -> Array:
    stacked = adapter_of(finals[0]).xp.stack(finals, axis=0)
    return stacked[:, 0, :] if unbatched else stacked


class LSTM(RNNBase):
    """Multi-layer LSTM, gates i, f, g, o: c' = f c + i g, h' = o tanh(c') (with ``proj_size``,
    h' = (o tanh(c')) W_hr^T).  ``forward(input, (h_0, c_0))`` returns ``output, (h_n, c_n)``;
    every parameter ~ U(-1/sqrt(H), 1/sqrt(H)).  Takes ``RNNBase``'s arguments after ``mode``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("LSTM", *args, **kwargs)

    def forward(self, input: Array, hx: tuple[Array, Array] | None = None) -> tuple[Array, tuple[Array, Array]]:
        output, finals, unbatched = self._forward(input, None if hx is None else list(hx))
        return output, (_stacked([h for _, h in finals], unbatched), _stacked([c for c, _ in finals], unbatched))


class GRU(RNNBase):
    """Multi-layer GRU, gates r, z, n: n = tanh(W_in x + b_in + r (W_hn h + b_hn)),
    h' = (1 - z) n + z h.  ``forward(input, h_0)`` returns ``output, h_n``.  Takes ``RNNBase``'s
    arguments after ``mode`` (no ``proj_size``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("GRU", *args, **kwargs)

    def forward(self, input: Array, hx: Array | None = None) -> tuple[Array, Array]:
        output, finals, unbatched = self._forward(input, None if hx is None else [hx])
        return output, _stacked(finals, unbatched)


class RNN(RNNBase):
    """Multi-layer Elman RNN: h' = nonlinearity(x W_ih^T + b_ih + h W_hh^T + b_hh), ``nonlinearity``
    'tanh' or 'relu' (mode 'RNN_TANH' or 'RNN_RELU').  ``forward(input, h_0)`` returns
    ``output, h_n``; every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, *,
                 like: Any = None, dtype: Any = None, key: Array | None = None) -> None:
        super().__init__(_elman_mode("RNN", nonlinearity), input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, like=like, dtype=dtype, key=key)
        self.nonlinearity = nonlinearity

    def forward(self, input: Array, hx: Array | None = None) -> tuple[Array, Array]:
        output, finals, unbatched = self._forward(input, None if hx is None else [hx])
        return output, _stacked(finals, unbatched)


class RNNCellBase(Module):
    """torch.nn.RNNCellBase: the parameters of one step of ``num_chunks`` gates, ``weight_ih``
    ``(num_chunks H, input_size)``, ``weight_hh`` ``(num_chunks H, H)``, ``bias_ih`` and
    ``bias_hh`` ``(num_chunks H,)``, each ~ U(-1/sqrt(H), 1/sqrt(H)).  The base of ``LSTMCell``,
    ``GRUCell`` and ``RNNCell``, which step it on inputs ``(N, input_size)`` or unbatched
    ``(input_size,)``; as torch's, it has no ``forward`` of its own."""

    #: The subclasses' mode of torch's ``RNNBase`` (the LSTM's carry is two states).
    _mode = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int, *, like: Any = None,
                 dtype: Any = None, key: Array | None = None) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        gates = num_chunks * hidden_size
        make = Factory(like, dtype, key)
        bound = 1.0 / math.sqrt(hidden_size)
        self.weight_ih = Parameter(make.uniform((gates, input_size), bound))
        self.weight_hh = Parameter(make.uniform((gates, hidden_size), bound))
        for name in ("bias_ih", "bias_hh"):
            if bias:
                setattr(self, name, Parameter(make.uniform((gates,), bound)))
            else:
                self.register_parameter(name, None)

    def reset_parameters(self) -> None:
        """Every parameter drawn again, in place, from U(-1/sqrt(H), 1/sqrt(H)) (torch's)."""
        _reset_uniform(self)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            text += ", bias=False"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            text += f", nonlinearity={self.nonlinearity}"
        return text

    def _step(self, input: Array, states: tuple[Array, ...] | None) -> tuple[Any, bool]:
        """One step from ``states`` (torch's ``hx``: h, or the LSTM's (h, c); None: zeros): the
        cell's carry after it (the LSTM's ``(c, h)``) and whether the input was unbatched."""
        where = f"xpnn.torch_nn.{type(self).__name__}"
        if input.ndim not in (1, 2):
            raise ValueError(f"{where}: expected input to be 1D or 2D, got {input.ndim}D instead")
        ops = adapter_of(input)
        xp = ops.xp
        if not xp.isdtype(input.dtype, "real floating"):
            raise F.UnsupportedDtypeError(f"{where}: input dtype ({input.dtype}) does not match weight dtype "
                                          f"({self.weight_ih.dtype}); convert the input to a floating dtype (as torch)")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{where}: input has inconsistent input_size: got {input.shape[-1]} expected "
                             f"{self.input_size}")
        unbatched = input.ndim == 1
        x = xp.expand_dims(input, axis=0) if unbatched else input
        count = 2 if self._mode == "LSTM" else 1
        if states is None:
            zeros = xp.zeros((x.shape[0], self.hidden_size), dtype=x.dtype, device=ops.device_of(x))
            states = (zeros,) * count
        else:
            if len(states) != count:
                raise ValueError(f"{where}: expected {count} hidden state{'s' if count > 1 else ''}, got {len(states)}")
            states = tuple(xp.expand_dims(state, axis=0) if unbatched else state for state in states)
            for state in states:
                if tuple(state.shape) != (x.shape[0], self.hidden_size):
                    raise ValueError(f"{where}: expected hidden state of shape {(x.shape[0], self.hidden_size)} "
                                     f"(input batch size {x.shape[0]}, hidden_size), got {tuple(state.shape)}")
        carry = (states[1], states[0]) if self._mode == "LSTM" else states[0]
        weights = _cell_weights(self._parameters, "", x)
        # the library's fused step where it agreed with the written-once one on this machine
        # (torch: its cell kernels), else that step
        fused = recurrent._fused(ops, self._flax_cell, weights, carry, x)
        if fused is not None:
            return fused[0], unbatched
        project, step = self._flax_cell._bind(weights, x)
        carry, _ = step(carry, project(x))
        return carry, unbatched


def _unbatched(state: Array, unbatched: bool) -> Array:
    return state[0, ...] if unbatched else state


class _GatedCell(RNNCellBase):
    """The LSTM and GRU steps: ``RNNCellBase`` of their gates, stepped by the flax-style cell."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, like: Any = None, dtype: Any = None,
                 key: Array | None = None) -> None:
        super().__init__(input_size, hidden_size, bias, _GATES[self._mode], like=like, dtype=dtype, key=key)
        self._flax_cell = _cell(self._mode, hidden_size)


class LSTMCell(_GatedCell):
    """One LSTM step, gates i, f, g, o: c' = f c + i g, h' = o tanh(c').  ``forward(input, (h, c))``
    returns ``(h', c')``."""
    _mode = "LSTM"

    def forward(self, input: Array, hx: tuple[Array, Array] | None = None) -> tuple[Array, Array]:
        (c, h), unbatched = self._step(input, None if hx is None else tuple(hx))
        return _unbatched(h, unbatched), _unbatched(c, unbatched)


class GRUCell(_GatedCell):
    """One GRU step, gates r, z, n: n = tanh(W_in x + b_in + r (W_hn h + b_hn)), h' = (1 - z) n + z h.
    ``forward(input, h)`` returns h'."""
    _mode = "GRU"

    def forward(self, input: Array, hx: Array | None = None) -> Array:
        h, unbatched = self._step(input, None if hx is None else (hx,))
        return _unbatched(h, unbatched)


class RNNCell(RNNCellBase):
    """One Elman step: h' = nonlinearity(x W_ih^T + b_ih + h W_hh^T + b_hh), ``nonlinearity`` 'tanh'
    or 'relu'.  ``forward(input, h)`` returns h'."""
    _mode = "RNN_TANH"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh", *,
                 like: Any = None, dtype: Any = None, key: Array | None = None) -> None:
        mode = _elman_mode("RNNCell", nonlinearity)
        super().__init__(input_size, hidden_size, bias, 1, like=like, dtype=dtype, key=key)
        self.nonlinearity = nonlinearity
        self._flax_cell = _cell(mode, hidden_size)

    def forward(self, input: Array, hx: Array | None = None) -> Array:
        h, unbatched = self._step(input, None if hx is None else (hx,))
        return _unbatched(h, unbatched)

"""Recurrent layers: the cells, ``RNN`` and ``Bidirectional`` (flax.linen's, ../shared/REFERENCE.md E.10, E.11).

A cell is called ``cell(carry, x) -> (new_carry, y)`` with flax's parameter
names, initializers and gate orders, and makes its first carry with
``initialize_carry(key, input_shape)``.  ``RNN(cell)`` runs a cell over the
time axis on the adapter's ``scan`` primitive (``jax.lax.scan`` on jax, one
loop elsewhere).  The dense cells bind their parameters once per sequence:
the input-side products of every step are one matrix product before the loop
(the kernels of the gates side by side), and each step makes one product with
the hidden state, so a step pays no module machinery.
"""
from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from xpnn import initializers, random
from xpnn._checks import device_of
from xpnn._dispatch import adapter_of, fast_paths_enabled
from xpnn._kernel_check import LAYER_KERNELS, layer_kernel_agrees, outputs_disagreement
from xpnn._promotion import promote_dtype
from xpnn._types import Array
from xpnn.functions.activations import relu, sigmoid, tanh
from xpnn.layers.conv import Conv
from xpnn.module import Module, compact, nowrap
from xpnn.trees import tree_leaves, tree_map

__all__ = ["RNNCellBase", "LSTMCell", "OptimizedLSTMCell", "GRUCell", "MGUCell", "SimpleCell", "ConvLSTMCell",
           "RNN", "Bidirectional"]

Initializer = initializers.Initializer
Carry = Any
#: A dense cell's kernels and biases, the gates side by side: (w_input, b_input, w_hidden, b_hidden).
Weights = tuple[Array, Array | None, Array, Array | None]
#: A cell's parameters bound to a sequence: (project(xs) -> projected xs, step(carry, x_t) -> (carry, y)).
Bound = tuple[Callable[[Array], Array], Callable[[Carry, Array], tuple[Carry, Array]]]


class _DenseParams(Module):
    """The kernel ``(in_features, features)`` and bias of a Dense, made but not applied (flax's
    ``DenseParams``): its path and keys are a Dense's of the same name."""

    features: int
    use_bias: bool = True
    param_dtype: Any = "float32"
    kernel_init: Initializer = initializers.lecun_normal()
    bias_init: Initializer = initializers.zeros_init()

    @compact
    def __call__(self, in_features: int) -> tuple[Array, Array | None]:
        kernel = self.param("kernel", self.kernel_init, (in_features, self.features), self.param_dtype)
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) if self.use_bias else None
        return kernel, bias


class RNNCellBase(Module):
    """The base of the recurrent cells: ``__call__(carry, inputs) -> (carry, outputs)``,
    ``initialize_carry(rng, input_shape)`` and ``num_feature_axes`` (flax.linen's ``RNNCellBase``)."""

    @nowrap
    def initialize_carry(self, rng: Array, input_shape: tuple[int, ...]) -> Carry:
        raise NotImplementedError(f"{type(self).__name__} must define initialize_carry(rng, input_shape)")

    @property
    def num_feature_axes(self) -> int:
        """How many trailing axes of an input are features (1; a ConvLSTMCell's spatial axes too)."""
        return 1


def _zeros_like_carry(cell: Any, rng: Array, shape: tuple[int, ...], count: int) -> Carry:
    """``count`` carries of ``shape`` made by ``cell.carry_init`` (flax splits the key for two)."""
    if count == 1:
        return cell.carry_init(rng, shape, cell.param_dtype)
    keys = random.split(rng)
    return cell.carry_init(keys[0, ...], shape, cell.param_dtype), cell.carry_init(keys[1, ...], shape, cell.param_dtype)


class _DenseCell(RNNCellBase):
    """A cell whose gates are Dense products of the input and of the hidden state: the
    parameters are made by name (``parameters``) and applied by ``_bind``, once per call of
    the cell or once per sequence in ``RNN``."""

    #: The carry: 1 (h) or 2 ((c, h)).
    _carries = 1

    #: The fused kernel of a library's ``fused_recurrence`` that computes this cell ('LSTM', 'GRU').
    _fused = None

    def __call__(self, carry: Carry, inputs: Array) -> tuple[Carry, Array]:
        inputs = self._check_input(inputs)
        project, step = self._bind(self._weights(self.parameters(inputs.shape[-1]), inputs), inputs)
        return step(carry, project(inputs))

    def _bind(self, weights: Weights, like: Array) -> Bound:
        """The weights (``_weights``) bound for a sequence of ``like``'s library: ``project(xs)``, the
        input side of every step (``x W_input + b_input``), and ``step(carry, projected x)``.  Where
        the library compiles ``scan``'s loop (jax), the input side stays in the step and each
        gate has products of its own, as flax computes them: XLA's CPU runs an LSTM's eight gate
        products 1.2x faster than two of the joined kernels (34 against 42 ms for the benchmark's
        LSTM), and fuses the input side with the hidden one.  Elsewhere the input side is one
        product before the loop, and each step one product of the joined hidden kernels."""
        w_input, b_input, w_hidden, b_hidden = weights
        if not adapter_of(like).compiles_loops:
            return (lambda xs: _affine(xs, w_input, b_input)), self._recurrence(w_hidden, b_hidden)
        width = self.features
        w_input, b_input = _per_gate(w_input, width), _per_gate(b_input, width)
        recur = self._recurrence(_per_gate(w_hidden, width), _per_gate(b_hidden, width))

        def step(carry: Carry, x: Array) -> tuple[Carry, Array]:
            return recur(carry, _affine(x, w_input, b_input))

        return (lambda xs: xs), step

    def _weights(self, params: dict, like: Array) -> Weights:
        """The gates' input kernels and biases side by side, then the hidden ones (None: no bias)."""
        raise NotImplementedError

    def _recurrence(self, w_hidden: Gated, b_hidden: Gated | None) -> Callable[[Carry, Array], tuple[Carry, Array]]:
        """``step(carry, x W_input + b_input) -> (carry, output)``."""
        raise NotImplementedError

    def _fused_kind(self) -> str | None:
        """The library kernel this cell equals ('LSTM', 'GRU', 'RNN_TANH', 'RNN_RELU'), with the
        default gate and activation functions; None otherwise."""
        if self._fused is None or getattr(self, "gate_fn", sigmoid) is not sigmoid or (
                getattr(self, "activation_fn", tanh) is not tanh):
            return None
        return self._fused

    def parameters(self, in_features: int) -> dict[str, tuple[Array, Array | None]]:
        """The cell's ``{name: (kernel, bias)}``, made on first use as flax's Denses of those names
        (each subclass's is ``@compact``)."""
        raise NotImplementedError

    def _dense(self, name: str, in_features: int, use_bias: bool, kernel_init: Initializer,
               bias_init: Initializer = initializers.zeros_init()) -> tuple[Array, Array | None]:
        return _DenseParams(self.features, use_bias, self.param_dtype, kernel_init, bias_init, name=name)(in_features)

    @nowrap
    def initialize_carry(self, rng: Array, input_shape: tuple[int, ...]) -> Carry:
        """Zeros (``carry_init``) of shape ``batch + (features,)``: ``(c, h)`` for the LSTMs."""
        return _zeros_like_carry(self, rng, tuple(input_shape[:-1]) + (self.features,), self._carries)

    def _promoted(self, inputs: Array, *arrays: Array | None) -> tuple[Any, list[Array | None]]:
        adapter = adapter_of(inputs)
        promoted = promote_dtype(adapter, inputs, *arrays, dtype=self.dtype, where=self.path)
        return adapter, promoted[1:]

    def _joined(self, xp: Any, params: dict, names: Sequence[str], inputs: Array,
                with_bias: bool) -> tuple[Array, Array | None]:
        """The kernels of ``names`` side by side (and their biases, None where a Dense has none:
        zeros then), in the computation dtype."""
        kernels = [params[name][0] for name in names]
        biases = [params[name][1] for name in names]
        kernel = xp.concat(kernels, axis=-1) if len(kernels) > 1 else kernels[0]
        bias = None
        if with_bias:
            bias = xp.concat([b if b is not None else xp.zeros_like(k[0, ...]) for b, k in zip(biases, kernels)],
                             axis=-1)
        _, (kernel, bias) = self._promoted(inputs, kernel, bias)
        return kernel, bias


#: A gates' product or parameter: the gates' columns side by side (``width`` each), or a tuple
#: of each gate's own (``_bind``'s per-gate products).
Gated = Any


def _columns(z: Gated, index: int, width: int) -> Array:
    """Gate ``index``'s columns of ``z``."""
    return z[index] if type(z) is tuple else z[..., index * width:(index + 1) * width]


def _per_gate(a: Array | None, width: int) -> tuple[Array, ...] | None:
    """The joined kernel or bias ``a`` as a tuple of each gate's columns."""
    return None if a is None else tuple(_columns(a, index, width) for index in range(a.shape[-1] // width))


def _times(h: Array, kernel: Array) -> Array:
    """``h @ kernel`` in the kernel's (computation) dtype: a float32 carry with bfloat16 weights
    (``dtype='bfloat16'``), or bfloat16 inputs with float32 params, are rounded for the product,
    as flax's Dense promotes its input."""
    if h.dtype != kernel.dtype:
        h = adapter_of(h).xp.astype(h, kernel.dtype)
    return h @ kernel


def _affine(h: Array, kernel: Gated, bias: Gated | None) -> Gated:
    """``h kernel + bias`` (no bias: None), one product of joined gates or one per gate."""
    if type(kernel) is tuple:
        return tuple(_affine(h, part, None if bias is None else bias[index]) for index, part in enumerate(kernel))
    y = _times(h, kernel)
    return y if bias is None else y + bias


def _added(a: Gated, b: Gated) -> Gated:
    """``a + b``, gate by gate."""
    return tuple(map(operator.add, a, b)) if type(a) is tuple else a + b


class _GatedCell(_DenseCell):
    """The fields of flax's LSTMCell and GRUCell, in flax's order."""

    features: int
    gate_fn: Callable[[Array], Array] = sigmoid
    activation_fn: Callable[[Array], Array] = tanh
    kernel_init: Initializer = initializers.lecun_normal()
    recurrent_kernel_init: Initializer = initializers.orthogonal()
    bias_init: Initializer = initializers.zeros_init()
    dtype: Any = None
    param_dtype: Any = "float32"
    carry_init: Initializer = initializers.zeros_init()


class LSTMCell(_GatedCell):
    """Long short-term memory (``flax.linen.LSTMCell``), carry ``(c, h)``::

        i = gate_fn(x W_ii + h W_hi + b_hi)    f, o likewise;  g = activation_fn(x W_ig + h W_hg + b_hg)
        c' = f * c + i * g,   h' = o * activation_fn(c'),   output h'

    Params ``ii, if, ig, io`` (kernel only) and ``hi, hf, hg, ho`` (kernel and bias);
    ``kernel_init`` lecun_normal for the input side, ``recurrent_kernel_init`` orthogonal.
    """

    _carries = 2
    _fused = "LSTM"
    _GATES = ("i", "f", "g", "o")

    @compact
    def parameters(self, in_features: int) -> dict[str, tuple[Array, Array | None]]:
        params = {}
        for gate in self._GATES:
            params[f"i{gate}"] = self._dense(f"i{gate}", in_features, False, self.kernel_init)
            params[f"h{gate}"] = self._dense(f"h{gate}", self.features, True, self.recurrent_kernel_init,
                                             self.bias_init)
        return params

    def _weights(self, params: dict, like: Array) -> Weights:
        xp = adapter_of(like).xp
        w_input, _ = self._joined(xp, params, [f"i{g}" for g in self._GATES], like, False)
        w_hidden, b_hidden = self._joined(xp, params, [f"h{g}" for g in self._GATES], like, True)
        return w_input, None, w_hidden, b_hidden

    def _recurrence(self, w_hidden: Gated, b_hidden: Gated | None) -> Callable[[Carry, Array], tuple[Carry, Array]]:
        width, gate, activation = self.features, self.gate_fn, self.activation_fn

        def step(carry: Carry, x: Array) -> tuple[Carry, Array]:
            c, h = carry
            z = _added(x, _affine(h, w_hidden, b_hidden))
            i, f = gate(_columns(z, 0, width)), gate(_columns(z, 1, width))
            g, o = activation(_columns(z, 2, width)), gate(_columns(z, 3, width))
            c = f * c + i * g
            h = o * activation(c)
            return (c, h), h

        return step


class OptimizedLSTMCell(LSTMCell):
    """``LSTMCell`` with its gates' kernels joined into one product for the input and one for the
    hidden state (``flax.linen.OptimizedLSTMCell``): the same parameters, the same numbers.
    In xpnn every LSTMCell computes that way."""


class GRUCell(_GatedCell):
    """Gated recurrent unit (``flax.linen.GRUCell``), carry ``h``::

        r = gate_fn(x W_ir + b_ir + h W_hr)      z likewise
        n = activation_fn(x W_in + b_in + r * (h W_hn + b_hn))
        h' = (1 - z) * n + z * h,   output h'

    Params ``ir, iz, in`` (kernel, bias), ``hr, hz`` (kernel), ``hn`` (kernel, bias).
    """

    _fused = "GRU"

    @compact
    def parameters(self, in_features: int) -> dict[str, tuple[Array, Array | None]]:
        params = {name: self._dense(name, in_features, True, self.kernel_init, self.bias_init)
                  for name in ("ir", "iz", "in")}
        for name in ("hr", "hz", "hn"):
            params[name] = self._dense(name, self.features, name == "hn", self.recurrent_kernel_init, self.bias_init)
        return params

    def _weights(self, params: dict, like: Array) -> Weights:
        xp = adapter_of(like).xp
        return (*self._joined(xp, params, ("ir", "iz", "in"), like, True),
                *self._joined(xp, params, ("hr", "hz", "hn"), like, True))

    def _recurrence(self, w_hidden: Gated, b_hidden: Gated | None) -> Callable[[Carry, Array], tuple[Carry, Array]]:
        width, gate, activation = self.features, self.gate_fn, self.activation_fn

        def step(h: Carry, x: Array) -> tuple[Carry, Array]:
            hidden = _affine(h, w_hidden, b_hidden)  # hr and hz have no bias: their zeros here
            r = gate(_columns(x, 0, width) + _columns(hidden, 0, width))
            z = gate(_columns(x, 1, width) + _columns(hidden, 1, width))
            n = activation(_columns(x, 2, width) + r * _columns(hidden, 2, width))
            h = (1.0 - z) * n + z * h
            return h, h

        return step


class MGUCell(_DenseCell):
    """Minimal gated unit (``flax.linen.MGUCell``), carry ``h``::

        f = gate_fn(x W_if + b_if + h W_hf)
        n = activation_fn(x W_in + b_in + f * (h W_hn + b_hn))     (without reset_gate: + h W_hn)
        h' = (1 - f) * n + f * h

    ``b_if`` starts at ones (``forget_bias_init``), ``b_in`` and ``b_hn`` at zeros.
    """

    features: int
    gate_fn: Callable[[Array], Array] = sigmoid
    activation_fn: Callable[[Array], Array] = tanh
    kernel_init: Initializer = initializers.lecun_normal()
    recurrent_kernel_init: Initializer = initializers.orthogonal()
    forget_bias_init: Initializer = initializers.ones_init()
    activation_bias_init: Initializer = initializers.zeros_init()
    dtype: Any = None
    param_dtype: Any = "float32"
    carry_init: Initializer = initializers.zeros_init()
    reset_gate: bool = True

    @compact
    def parameters(self, in_features: int) -> dict[str, tuple[Array, Array | None]]:
        return {
            "if": self._dense("if", in_features, True, self.kernel_init, self.forget_bias_init),
            "hf": self._dense("hf", self.features, False, self.recurrent_kernel_init),
            "hn": self._dense("hn", self.features, self.reset_gate, self.recurrent_kernel_init,
                              self.activation_bias_init),
            "in": self._dense("in", in_features, True, self.kernel_init, self.activation_bias_init),
        }

    def _weights(self, params: dict, like: Array) -> Weights:
        xp = adapter_of(like).xp
        return (*self._joined(xp, params, ("if", "in"), like, True),
                *self._joined(xp, params, ("hf", "hn"), like, True))

    def _recurrence(self, w_hidden: Gated, b_hidden: Gated | None) -> Callable[[Carry, Array], tuple[Carry, Array]]:
        width, gate, activation, reset = self.features, self.gate_fn, self.activation_fn, self.reset_gate

        def step(h: Carry, x: Array) -> tuple[Carry, Array]:
            hidden = _affine(h, w_hidden, b_hidden)
            f = gate(_columns(x, 0, width) + _columns(hidden, 0, width))
            candidate = _columns(hidden, 1, width)
            n = activation(_columns(x, 1, width) + (f * candidate if reset else candidate))
            h = (1.0 - f) * n + f * h
            return h, h

        return step


class SimpleCell(_DenseCell):
    """Elman cell (``flax.linen.SimpleCell``): ``h' = activation_fn(x W_i + b_i + h W_h)`` (plus ``h``
    before the activation with ``residual``); params ``i`` (kernel, bias), ``h`` (kernel)."""

    features: int
    activation_fn: Callable[[Array], Array] = tanh
    kernel_init: Initializer = initializers.lecun_normal()
    recurrent_kernel_init: Initializer = initializers.orthogonal()
    bias_init: Initializer = initializers.zeros_init()
    dtype: Any = None
    param_dtype: Any = "float32"
    carry_init: Initializer = initializers.zeros_init()
    residual: bool = False

    @compact
    def parameters(self, in_features: int) -> dict[str, tuple[Array, Array | None]]:
        return {"i": self._dense("i", in_features, True, self.kernel_init, self.bias_init),
                "h": self._dense("h", self.features, False, self.recurrent_kernel_init)}

    def _weights(self, params: dict, like: Array) -> Weights:
        xp = adapter_of(like).xp
        return (*self._joined(xp, params, ("i",), like, True), self._joined(xp, params, ("h",), like, False)[0], None)

    def _recurrence(self, w_hidden: Gated, b_hidden: Gated | None) -> Callable[[Carry, Array], tuple[Carry, Array]]:
        activation, residual, width = self.activation_fn, self.residual, self.features

        def step(h: Carry, x: Array) -> tuple[Carry, Array]:
            new = _columns(_added(x, _affine(h, w_hidden, b_hidden)), 0, width)
            if residual:
                new = new + h
            new = activation(new)
            return new, new

        return step

    def _fused_kind(self) -> str | None:
        """torch's Elman loops ('RNN_TANH', 'RNN_RELU'): tanh or relu, without ``residual``."""
        return None if self.residual else _ELMAN_KINDS.get(self.activation_fn)


#: The Elman cell's library kernels by its activation.
_ELMAN_KINDS = {tanh: "RNN_TANH", relu: "RNN_RELU"}


class ConvLSTMCell(RNNCellBase):
    """Convolutional LSTM (``flax.linen.ConvLSTMCell``), carry ``(c, h)`` of shape
    ``(*batch, *spatial, features)``::

        i, g, f, o = split(Conv_ih(x) + Conv_hh(h), 4)      (in that order)
        c' = sigmoid(f + 1) * c + sigmoid(i) * tanh(g),   h' = sigmoid(o) * tanh(c')

    Params ``ih`` and ``hh``: Convs of ``4 * features`` with ``kernel_size``, ``strides``,
    ``padding`` and ``use_bias``.
    """

    features: int
    kernel_size: Sequence[int]
    strides: Sequence[int] | None = None
    padding: str | Sequence[tuple[int, int]] = "SAME"
    use_bias: bool = True
    dtype: Any = None
    param_dtype: Any = "float32"
    carry_init: Initializer = initializers.zeros_init()

    @compact
    def __call__(self, carry: Carry, inputs: Array) -> tuple[Carry, Array]:
        c, h = carry

        def conv(name: str) -> Conv:
            return Conv(features=4 * self.features, kernel_size=self.kernel_size, strides=self.strides,
                        padding=self.padding, use_bias=self.use_bias, dtype=self.dtype,
                        param_dtype=self.param_dtype, name=name)

        gates = conv("ih")(inputs) + conv("hh")(h)
        width = self.features
        i, g, f, o = (_columns(gates, index, width) for index in range(4))
        f = sigmoid(f + 1.0)
        c = f * c + sigmoid(i) * tanh(g)
        h = sigmoid(o) * tanh(c)
        return (c, h), h

    @nowrap
    def initialize_carry(self, rng: Array, input_shape: tuple[int, ...]) -> Carry:
        """Zeros ``(c, h)`` of shape ``batch + spatial + (features,)``."""
        shape = tuple(input_shape[:-1]) + (self.features,)
        return _zeros_like_carry(self, rng, shape, 2)

    @property
    def num_feature_axes(self) -> int:
        return len(self.kernel_size) + 1


def _time_major_indices(xp: Any, steps: int, lengths: Array, device: Any) -> Array:
    """flax's ``flip_sequences`` order: position ``t`` of sequence ``b`` takes step
    ``(steps - 1 - t + lengths[b]) % steps``, which reverses the valid prefix ``[0, len)`` and
    keeps the padding at the end; shape ``(steps, *batch)``."""
    reverse = xp.arange(steps - 1, -1, -1, device=device)
    reverse = xp.reshape(reverse, (steps,) + (1,) * lengths.ndim)
    return (reverse + xp.astype(lengths, reverse.dtype)) % steps


def _gather_steps(xp: Any, xs: Array, indices: Array) -> Array:
    """``out[s, b...] = xs[indices[s, b...], b...]`` for a time-major ``xs`` ``(T, *batch, *features)``
    and integer ``indices`` ``(S, *batch)``: shape ``(S, *batch, *features)``."""
    steps, picks = xs.shape[0], indices.shape[0]
    batch_shape = tuple(indices.shape[1:])
    batch = 1
    for size in batch_shape:
        batch *= size
    features = tuple(xs.shape[1 + len(batch_shape):])
    flat = xp.reshape(xs, (steps * batch,) + features)
    column = xp.reshape(xp.arange(batch, device=device_of(xs)), (1, batch))
    rows = xp.reshape(xp.astype(indices, column.dtype), (picks, batch)) * batch + column
    return xp.reshape(xp.take(flat, xp.reshape(rows, (-1,)), axis=0), (picks,) + batch_shape + features)


def flip_sequences(xp: Any, xs: Array, lengths: Array | None) -> Array:
    """A time-major sequence reversed in time: all of it, or the valid prefix of each one
    (flax's ``flip_sequences``; the torch-style layers' backward direction on packed input)."""
    if lengths is None:
        return xp.flip(xs, axis=0)
    return _gather_steps(xp, xs, _time_major_indices(xp, xs.shape[0], lengths, device_of(xs)))


def last_steps(xp: Any, history: Array, lengths: Array) -> Array:
    """The time-major ``history`` ``(T, *batch, *features)`` at each sequence's last valid step
    ``lengths - 1``: ``(*batch, *features)`` (the carry a sequence of ``lengths`` ends with)."""
    last = xp.reshape(lengths - 1, (1,) + tuple(lengths.shape))
    return _gather_steps(xp, history, last)[0, ...]


class RNN(Module):
    """Runs ``cell`` over the time axis (``flax.linen.RNN``).

    Inputs ``(*batch, time, *features)``, or ``(time, *batch, *features)`` with
    ``time_major``.  The carry starts at ``initial_carry`` or the cell's
    ``initialize_carry`` (with ``init_key``, default ``key(0)``); the cell's
    parameters (``{'cell': ...}``) are shared by every step.  ``return_carry``
    returns ``(carry, outputs)``.  ``reverse`` processes the sequence backwards and
    returns the outputs in processing order unless ``keep_order``.  With
    ``seq_lengths`` (``(*batch,)``) only each sequence's valid prefix is reversed,
    the returned carry is the one after step ``len - 1``, and the padded steps'
    outputs are computed, not zeroed.  The loop is the adapter's ``scan``
    (``jax.lax.scan`` on jax, with ``unroll``).  ``variable_axes``,
    ``variable_broadcast``, ``variable_carry`` and ``split_rngs`` are flax's lifted
    scan's; xpnn shares the params across steps (flax's default) and refuses others.
    """

    cell: RNNCellBase
    time_major: bool = False
    return_carry: bool = False
    reverse: bool = False
    keep_order: bool = False
    unroll: int = 1
    variable_axes: Any = None
    variable_broadcast: Any = "params"
    variable_carry: Any = False
    split_rngs: Any = None

    @compact
    def __call__(self, inputs: Array, *, initial_carry: Carry | None = None, init_key: Array | None = None,
                 seq_lengths: Array | None = None, return_carry: bool | None = None, time_major: bool | None = None,
                 reverse: bool | None = None, keep_order: bool | None = None) -> Any:
        if self.variable_axes or self.variable_carry or self.variable_broadcast not in ("params", ("params",)) or (
                self.split_rngs not in (None, {"params": False})):
            raise self._error("variable_axes, variable_carry, variable_broadcast and split_rngs other than flax's "
                              "defaults (the params shared by every step) are not supported")
        inputs = self._check_input(inputs)
        return_carry = self.return_carry if return_carry is None else return_carry
        time_major = self.time_major if time_major is None else time_major
        reverse = self.reverse if reverse is None else reverse
        keep_order = self.keep_order if keep_order is None else keep_order
        cell = self.cell
        feature_axes = cell.num_feature_axes
        self._check_rank(inputs, feature_axes + 1)
        time_axis = 0 if time_major else inputs.ndim - (feature_axes + 1)
        ops = adapter_of(inputs)
        xp = ops.xp
        xs = inputs if time_axis == 0 else xp.moveaxis(inputs, time_axis, 0)
        if seq_lengths is not None:
            seq_lengths = self._check_input(seq_lengths, "seq_lengths")
            if tuple(seq_lengths.shape) != tuple(xs.shape[1:xs.ndim - feature_axes]):
                raise self._error(f"seq_lengths must have the batch shape {tuple(xs.shape[1:xs.ndim - feature_axes])},"
                                  f" got {tuple(seq_lengths.shape)}")
        if reverse:
            xs = flip_sequences(xp, xs, seq_lengths)
        if initial_carry is None:
            key = random.key(0, like=inputs) if init_key is None else init_key
            initial_carry = cell.initialize_carry(key, tuple(xs.shape[1:]))
        # The carry laid out over devices as a step's batch (jax's explicit mesh axes).
        initial_carry = tree_map(lambda leaf: ops.placed_like(leaf, xs, skip=1), initial_carry)
        slice_carry = seq_lengths is not None and return_carry
        carry, outputs = self._scan(ops, cell, initial_carry, xs, slice_carry)
        if slice_carry:
            carries, outputs = outputs
            carry = tree_map(lambda history: last_steps(xp, history, seq_lengths), carries)
        if reverse and keep_order:
            outputs = flip_sequences(xp, outputs, seq_lengths)
        if time_axis != 0:
            outputs = xp.moveaxis(outputs, 0, time_axis)
        return (carry, outputs) if return_carry else outputs

    def _scan(self, ops: Any, cell: RNNCellBase, carry: Carry, xs: Array, slice_carry: bool) -> tuple[Carry, Any]:
        """The cell over the steps of the time-major ``xs``: bound once (a dense cell's ``_bind``)
        or, for any other cell, called through the module system each step (its parameters made
        by the first step before the loop, so no parameter is created inside a traced loop)."""
        if isinstance(cell, _DenseCell):
            weights = cell._weights(cell.parameters(xs.shape[-1]), xs)
            return scan_dense_cell(ops, cell, weights, carry, xs, slice_carry, self.unroll)
        if self.is_initializing() and xs.shape[0]:
            cell(carry, xs[0, ...])

        def step(carry: Carry, x: Array) -> tuple[Carry, Array]:
            return cell(carry, x)

        return ops.scan(_with_carries(step) if slice_carry else step, carry, xs, unroll=self.unroll)


def _with_carries(step: Callable[[Carry, Array], tuple[Carry, Array]]) -> Callable[[Carry, Array], tuple[Carry, Any]]:
    """A step that also outputs its carry (to take each sequence's carry at its length)."""
    def body(carry: Carry, x: Array) -> tuple[Carry, Any]:
        carry, y = step(carry, x)
        return carry, (carry, y)
    return body


def scan_dense_cell(ops: Any, cell: Any, weights: Weights, carry: Carry, xs: Array, slice_carry: bool = False,
                    unroll: int = 1, projection: Array | None = None) -> tuple[Carry, Any]:
    """A dense cell (LSTM, GRU, MGU, simple) over the time-major ``xs`` with its ``weights`` (the
    gates' kernels side by side, ``cell._weights``' layout): the library's fused loop where it
    has one that agreed with the written-once step on this machine, else the step bound once and
    scanned.  ``(last carry, outputs)``; with ``slice_carry`` the outputs are ``(carries, outputs)``.
    The torch-style LSTM and GRU pass torch's stacked weights here directly; ``projection``
    ``(features, proj)`` is torch's LSTM ``proj_size``: each step's h = (o tanh c) projection,
    fed back as the carry's h."""
    # The carry keeps its dtype unless the computation's is wider (float64 inputs with float32
    # params): flax's promotion of each step's elementwise math.
    carry = tree_map(lambda leaf: _promoted(ops.xp, leaf, weights[2].dtype), carry)
    fused = None if slice_carry else _fused(ops, cell, weights, carry, xs, projection)
    if fused is not None:
        return fused
    project, step = cell._bind(weights, xs)
    if projection is not None:
        step = _projected(ops, step, projection)
    return ops.scan(_with_carries(step) if slice_carry else step, carry, project(xs), unroll=unroll)


def _projected(ops: Any, step: Callable[[Carry, Array], tuple[Carry, Array]],
               projection: Array) -> Callable[[Carry, Array], tuple[Carry, Array]]:
    """An LSTM step whose output h is projected, ``h projection``, and fed back so."""
    def projected(carry: Carry, x: Array) -> tuple[Carry, Array]:
        (c, h), _ = step(carry, x)
        h = ops.dense(h, projection)
        return (c, h), h

    return projected


def _fused(ops: Any, cell: _DenseCell, weights: Weights, carry: Carry, xs: Array,
           projection: Array | None = None) -> tuple[Carry, Array] | None:
    """The library's fused loop for the whole sequence ``xs`` (``fused_recurrence``: torch's LSTM,
    GRU and Elman kernels; a 2-D ``xs`` is one step) where the cell is one it computes, fast paths
    are on, the sequence, carry, weights (and ``projection``) share a dtype, and the kernel agreed
    with the written-once step on this machine."""
    kind = cell._fused_kind()
    if kind is None or xs.ndim not in (2, 3) or (xs.ndim == 3 and xs.shape[0] == 0) or not fast_paths_enabled():
        return None  # torch's kernels refuse an empty sequence: the written-once loop makes no step
    dtype = xs.dtype
    for a in (*weights, projection, *(carry if isinstance(carry, (tuple, list)) else (carry,))):
        if a is not None and a.dtype != dtype:
            return None
    if not layer_kernel_agrees(_fused_loop_name(kind, projection is not None), ops, xs):
        return None
    return ops.fused_recurrence(kind, xs, carry, *weights, projection)


@functools.lru_cache(maxsize=None)
def _fused_loop_name(kind: str, projected: bool = False) -> str:
    return f"RNN({kind}) fused loop{', projected' if projected else ''}"


#: Per fused kind: the cell whose written-once step it is checked against, and its gates.
_PROBE_CELLS: dict[str, tuple[Callable[..., _DenseCell], int]] = {
    "LSTM": (LSTMCell, 4), "GRU": (GRUCell, 3), "RNN_TANH": (SimpleCell, 1),
    "RNN_RELU": (functools.partial(SimpleCell, activation_fn=relu), 1)}


def _fused_disagreement(ops: Any, dtype: Any, device: Any, kind: str, projected: bool = False) -> str | None:
    """Why the library's fused loop of ``kind`` (``projected``: an LSTM's h projected to 2 units)
    and the written-once step differ on a fixed probe (6 steps, a sequence of 1 step and that
    step alone; batch 3, 5 inputs, 4 units, gates driven into saturation too); None if they agree."""
    xp = ops.xp
    made = probe_maker(ops, dtype, device)
    cell_type, gates = _PROBE_CELLS[kind]
    width = 2 if projected else 4  # of h
    xs, w_input, w_hidden = made(6, 3, 5, scale=3.0), made(5, 4 * gates), made(width, 4 * gates)
    b_input = None if kind == "LSTM" else made(4 * gates)  # the flax LSTM's input side has no bias
    b_hidden = made(4 * gates)
    carry = (made(3, 4), made(3, width)) if kind == "LSTM" else made(3, 4)
    projection = made(4, width) if projected else None
    step = cell_type(features=4)._recurrence(w_hidden, b_hidden)
    # 16 eps, as close as the layers' conformance checks (float32: 4e-6 relative, 34 eps): torch's
    # CPU loop is within 2.5 eps in float32 and float64; cuDNN's float32 one was 25 to 45 off.
    tolerance = 16 * float(xp.finfo(dtype).eps)
    # a sequence, one step of it, and that step alone (a library may run its cell kernel then)
    for steps in (xs, xs[:1, ...], xs[0, ...]):
        if steps.ndim == 2 and projection is not None:
            continue
        fused = ops.fused_recurrence(kind, steps, carry, w_input, b_input, w_hidden, b_hidden, projection)
        if fused is None:
            continue
        sequence = steps if steps.ndim == 3 else steps[None, ...]
        projected_xs = sequence @ w_input if b_input is None else sequence @ w_input + b_input
        reference = ops.scan(step if projection is None else _projected(ops, step, projection), carry, projected_xs)
        if steps.ndim == 2:
            reference = (reference[0], reference[1][0, ...])
        name = f"the fused {kind} loop of {steps.shape[0]} steps" if steps.ndim == 3 else f"the fused {kind} step"
        reason = outputs_disagreement(ops, tree_leaves(fused), tree_leaves(reference), tolerance, name,
                                      "the written-once step")
        if reason is not None:
            return reason
    return None


def probe_maker(ops: Any, dtype: Any, device: Any) -> Callable[..., Array]:
    """``made(*shape, scale=1.0)``: arrays of a fixed random probe (standard normal times
    ``scale``, seed 0, drawn in turn) of ``ops``'s library, ``dtype`` and ``device``."""
    rng = np.random.default_rng(0)

    def made(*shape: int, scale: float = 1.0) -> Array:
        return ops.xp.astype(ops.from_host(rng.standard_normal(shape) * scale, device), dtype)

    return made


def register_loop_checks(name_of: Callable[..., str], disagreement: Callable[..., str | None]) -> None:
    """The checks ``disagreement(ops, dtype, device, kind, projected)`` of a library's fused loops
    in ``LAYER_KERNELS`` under ``name_of(kind, projected)``: one per kind, and the LSTM's projected one."""
    for kind in _PROBE_CELLS:
        LAYER_KERNELS[name_of(kind)] = functools.partial(disagreement, kind=kind)
    LAYER_KERNELS[name_of("LSTM", True)] = functools.partial(disagreement, kind="LSTM", projected=True)


register_loop_checks(_fused_loop_name, _fused_disagreement)


def _promoted(xp: Any, leaf: Array, dtype: Any) -> Array:
    wider = xp.result_type(leaf.dtype, dtype)
    return leaf if wider == leaf.dtype else xp.astype(leaf, wider)


def _concatenate(a: Array, b: Array) -> Array:
    return adapter_of(a).xp.concat([a, b], axis=-1)


class Bidirectional(Module):
    """Two RNNs over one sequence, the second backwards (``flax.linen.Bidirectional``).

    ``outputs = merge_fn(forward, backward)`` (default: concatenated features), the
    backward RNN run with ``reverse=True, keep_order=True``; with ``return_carry``,
    ``((forward_carry, backward_carry), outputs)``.  Params ``forward_rnn`` and
    ``backward_rnn``; ``init_key`` is split between the two.
    """

    forward_rnn: RNN
    backward_rnn: RNN
    merge_fn: Callable[[Array, Array], Array] = _concatenate
    time_major: bool = False
    return_carry: bool = False

    @compact
    def __call__(self, inputs: Array, *, initial_carry: Carry | None = None, init_key: Array | None = None,
                 seq_lengths: Array | None = None, return_carry: bool | None = None, time_major: bool | None = None,
                 reverse: bool | None = None, keep_order: bool | None = None) -> Any:
        time_major = self.time_major if time_major is None else time_major
        return_carry = self.return_carry if return_carry is None else return_carry
        split = None if init_key is None else random.split(init_key)
        keys = (None, None) if split is None else (split[0, ...], split[1, ...])
        carries = (None, None) if initial_carry is None else initial_carry
        forward_carry, forward = self.forward_rnn(inputs, initial_carry=carries[0], init_key=keys[0],
                                                  seq_lengths=seq_lengths, return_carry=True,
                                                  time_major=time_major, reverse=False)
        backward_carry, backward = self.backward_rnn(inputs, initial_carry=carries[1], init_key=keys[1],
                                                     seq_lengths=seq_lengths, return_carry=True,
                                                     time_major=time_major, reverse=True, keep_order=True)
        outputs = tree_map(self.merge_fn, forward, backward)
        return ((forward_carry, backward_carry), outputs) if return_carry else outputs


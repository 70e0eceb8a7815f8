"""Conformance checks of the recurrent layers beyond init and apply (``LAYER_CASES``): one step
of every cell from flax's variables and carry, RNN's options that take arrays (``seq_lengths``
with ``reverse`` and ``return_carry``, ``initial_carry``), a user's own cell (an
``RNNCellBase`` subclass, run step by step through the module system), the lifted
``xpnn.scan`` against ``flax.linen.scan``, and torch.nn.LSTM/GRU weights converted by
``xpnn.layers.torch_rnn`` against torch's own output.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import xpnn
from xpnn.conformance.backends import Backend, load
from xpnn.conformance.compare import Checked, Comparison, compare, describe

CELLS = {
    "LSTMCell": lambda L, d: L.LSTMCell(4, param_dtype=d),
    "OptimizedLSTMCell": lambda L, d: L.OptimizedLSTMCell(4, param_dtype=d),
    "GRUCell": lambda L, d: L.GRUCell(4, param_dtype=d),
    "MGUCell": lambda L, d: L.MGUCell(4, param_dtype=d),
    "SimpleCell": lambda L, d: L.SimpleCell(4, param_dtype=d),
    "ConvLSTMCell": lambda L, d: L.ConvLSTMCell(4, (3, 3), param_dtype=d),
}


def _tolerance(dtype: str) -> tuple[float, float]:
    return {"float32": (2e-6, 2e-6), "float64": (1e-12, 1e-12)}[dtype]


def _worst(comparisons: list[Comparison]) -> Comparison:
    return max(comparisons, key=lambda c: (not c.passed, c.max_abs))


def _leaves(tree: Any) -> list[Any]:
    import jax

    return jax.tree_util.tree_leaves(tree)


def _compared(backend: Backend, got: Any, want: Any, dtype: str) -> Checked:
    got_leaves, want_leaves = _leaves(got), _leaves(want)
    if len(got_leaves) != len(want_leaves):
        return Checked(compare(np.zeros(1), np.ones(1), dtype), f"{len(got_leaves)} outputs, flax gives "
                                                                   f"{len(want_leaves)}", {})
    comparisons = [compare(backend.to_numpy(g), np.asarray(w), dtype, tolerance=_tolerance(dtype))
                   for g, w in zip(got_leaves, want_leaves)]
    return Checked(_worst(comparisons), "", describe(got_leaves[0]))


def run_cell(name: str, backend: Backend, dtype: str) -> Checked:
    """One step of the cell from flax's variables and a random carry, against flax's step."""
    load("jax")
    import flax.linen as fnn
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(7)
    shape = (2, 5, 5, 3) if name == "ConvLSTMCell" else (2, 3)
    x = rng.standard_normal(shape).astype(dtype)
    flax_cell = CELLS[name](fnn, jnp.dtype(dtype))
    carry = jax.tree_util.tree_map(lambda a: jnp.asarray(rng.standard_normal(a.shape).astype(dtype)),
                                   flax_cell.initialize_carry(jax.random.key(0), shape))
    variables = flax_cell.init(jax.random.key(0), carry, jnp.asarray(x))
    want = flax_cell.apply(variables, carry, jnp.asarray(x))
    ours = CELLS[name](xpnn, dtype)
    got = ours.apply(xpnn.to_backend(variables, backend.like()),
                     jax.tree_util.tree_map(lambda a: backend.asarray(np.asarray(a), dtype), carry),
                     backend.asarray(x, dtype))
    return _compared(backend, got, want, dtype)


def run_rnn_options(backend: Backend, dtype: str) -> Checked:
    """``RNN(LSTMCell)`` with ``seq_lengths`` (reversed valid prefixes, the carry at ``len - 1``),
    ``return_carry`` and an ``initial_carry``, against flax's."""
    load("jax")
    import flax.linen as fnn
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 6, 2)).astype(dtype)
    lengths = np.asarray([6, 2, 4], np.int32)
    carry = (rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal((3, 4)).astype(dtype))
    flax_layer = fnn.RNN(fnn.LSTMCell(4, param_dtype=jnp.dtype(dtype)), return_carry=True)
    variables = flax_layer.init(jax.random.key(0), jnp.asarray(x))
    checked = []
    for options in ({"reverse": True}, {"reverse": True, "keep_order": True}, {}):
        want = flax_layer.apply(variables, jnp.asarray(x), seq_lengths=jnp.asarray(lengths),
                                initial_carry=tuple(map(jnp.asarray, carry)), **options)
        layer = xpnn.RNN(xpnn.LSTMCell(4, param_dtype=dtype), return_carry=True)
        got = layer.apply(xpnn.to_backend(variables, backend.like()), backend.asarray(x, dtype),
                          seq_lengths=backend.asarray(lengths, "int32"),
                          initial_carry=tuple(backend.asarray(c, dtype) for c in carry), **options)
        checked.append(_compared(backend, got, want, dtype))
    return max(checked, key=lambda c: (not c.comparison.passed, c.comparison.max_abs))


def _user_cell(namespace: Any) -> Any:
    """A cell written by a user against ``namespace`` (flax.linen or xpnn): h' = tanh(Dense(x) + h)."""

    class Accumulate(namespace.RNNCellBase):
        features: int

        @namespace.compact
        def __call__(self, carry, x):
            h = namespace.tanh(namespace.Dense(self.features)(x) + carry)
            return h, h

        @namespace.nowrap
        def initialize_carry(self, rng, input_shape):
            return namespace.initializers.zeros_init()(rng, input_shape[:-1] + (self.features,), "float32")

        @property
        def num_feature_axes(self):
            return 1

    return Accumulate


def run_user_cell(backend: Backend, dtype: str) -> Checked:
    """An ``RNNCellBase`` subclass of the user's, run by ``RNN`` step by step through the module
    system (init parity and apply), against the same cell in flax."""
    load("jax")
    import flax.linen as fnn
    import jax
    import jax.numpy as jnp

    x = np.random.default_rng(9).standard_normal((2, 5, 3)).astype("float32")
    flax_layer = fnn.RNN(_user_cell(fnn)(4))
    variables = flax_layer.init(jax.random.key(0), jnp.asarray(x))
    want = flax_layer.apply(variables, jnp.asarray(x))
    layer = xpnn.RNN(_user_cell(xpnn)(4))
    xb = backend.asarray(x, "float32")
    ours = layer.init(xpnn.random.key(0), xb)
    init = _compared(backend, ours, variables, "float32")
    carry = np.zeros((2, 4), np.float32)
    got = layer.apply(xpnn.to_backend(variables, backend.like()), xb, initial_carry=backend.asarray(carry, "float32"))
    applied = _compared(backend, got, want, "float32")
    return max((init, applied), key=lambda c: (not c.comparison.passed, c.comparison.max_abs))


def run_torch_converted(kind: str, backend: Backend, dtype: str) -> Checked:
    """A 2-layer bidirectional ``torch.nn.<kind>`` (sequence first, torch's default) converted by
    ``xpnn.layers.torch_rnn.from_torch`` and run by xpnn, against torch's own output; and back
    with ``to_torch`` into a fresh torch module."""
    load("torch")
    import torch

    from xpnn.layers import torch_rnn

    torch.manual_seed(0)
    torch_dtype = getattr(torch, dtype)
    module = getattr(torch.nn, kind)(3, 5, num_layers=2, bidirectional=True).to(torch_dtype)
    x = np.random.default_rng(10).standard_normal((6, 2, 3)).astype(dtype)
    with torch.no_grad():
        want = module(torch.from_numpy(x))[0].numpy()
    state = {name: value.detach().numpy() for name, value in module.state_dict().items()}
    variables = torch_rnn.from_torch(state, kind)
    model = torch_rnn.model(kind, 5, num_layers=2, bidirectional=True, batch_first=False)
    got = model.apply(xpnn.to_backend(variables, backend.like()), backend.asarray(x, dtype))
    forward = _compared(backend, got, want, dtype)
    rebuilt = getattr(torch.nn, kind)(3, 5, num_layers=2, bidirectional=True).to(torch_dtype)
    rebuilt.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in torch_rnn.to_torch(variables, kind).items()})
    with torch.no_grad():
        again = rebuilt(torch.from_numpy(x))[0].numpy()
    back = Checked(compare(again, want, dtype, tolerance=_tolerance(dtype)), "", {})
    return max((forward, back), key=lambda c: (not c.comparison.passed, c.comparison.max_abs))


def _scanned_model(namespace: Any) -> Any:
    """A model that scans a cell with flax's lifted ``scan`` (``xpnn.scan`` in xpnn) over axis 1."""
    import jax

    scanned = namespace.scan(namespace.LSTMCell, variable_broadcast="params", split_rngs={"params": False},
                             in_axes=1, out_axes=1)

    class Scanned(namespace.Module):
        @namespace.compact
        def __call__(self, x):
            cell = scanned(4)
            key = namespace.random.key(0, like=x) if namespace is xpnn else jax.random.key(0)
            return cell(cell.initialize_carry(key, (x.shape[0], x.shape[2])), x)

    return Scanned()


def run_lifted_scan(backend: Backend, dtype: str) -> Checked:
    """``xpnn.scan(LSTMCell, variable_broadcast='params', ...)`` in a model: init (the params under
    ``ScanLSTMCell_0``) and apply with flax's variables, against ``flax.linen.scan``."""
    load("jax")
    import flax.linen as fnn
    import jax
    import jax.numpy as jnp

    x = np.random.default_rng(11).standard_normal((2, 6, 3)).astype("float32")
    flax_model = _scanned_model(fnn)
    variables = flax_model.init(jax.random.key(0), jnp.asarray(x))
    want = flax_model.apply(variables, jnp.asarray(x))
    ours = _scanned_model(xpnn)
    xb = backend.asarray(x, "float32")
    init = _compared(backend, ours.init(xpnn.random.key(0), xb), variables, "float32")
    applied = _compared(backend, ours.apply(xpnn.to_backend(variables, backend.like()), xb), want, "float32")
    return max((init, applied), key=lambda c: (not c.comparison.passed, c.comparison.max_abs))

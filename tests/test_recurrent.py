"""Recurrent layers against flax.linen and torch.nn: gradients through time, training on torch
and jax then serving on NumPy, torch's fused loop and its check, one scan under jax.jit, errors.

The conformance suite compares init and apply of every cell and RNN option on every backend
and dtype (``conformance/recurrent.py``, ``LAYER_CASES``); here are what its checks cannot say.
"""
from __future__ import annotations

import copy

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import xpnn as nn

jax.config.update("jax_enable_x64", True)


@pytest.mark.parametrize(("cell", "fast"), [("LSTMCell", True), ("LSTMCell", False), ("GRUCell", True),
                                            pytest.param("MGUCell", False, marks=pytest.mark.slow)])
def test_gradients_through_time_equal_flax(cell, fast):
    """d(sum(outputs * w)) by every param, with seq_lengths and the final carry in the loss: torch
    autograd (torch's fused loop or the written-once step) and jax.grad of xpnn's apply, against
    jax.grad of flax's."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 7, 4))
    weights = rng.standard_normal((3, 7, 5))
    flax_layer = fnn.RNN(getattr(fnn, cell)(5, param_dtype=jnp.float64), return_carry=True)
    variables = flax_layer.init(jax.random.key(0), jnp.asarray(x))

    def loss(apply, params, inputs, w, xp):
        carry, outputs = apply({"params": params}, inputs)
        return xp.sum(outputs * w) + sum(xp.sum(leaf) for leaf in jax.tree_util.tree_leaves(carry))

    want = jax.grad(lambda p: loss(flax_layer.apply, p, jnp.asarray(x), jnp.asarray(weights), jnp))(
        variables["params"])
    ours = nn.RNN(getattr(nn, cell)(5, param_dtype="float64"), return_carry=True)
    with nn.fast_paths(fast):
        got_jax = jax.grad(lambda p: loss(ours.apply, p, jnp.asarray(x), jnp.asarray(weights), jnp))(
            variables["params"])
        params = nn.tree_map(lambda a: torch.tensor(np.asarray(a), requires_grad=True), variables["params"])
        loss(ours.apply, params, torch.from_numpy(x), torch.from_numpy(weights), torch).backward()
    for w, gj, p in zip(jax.tree_util.tree_leaves(want), jax.tree_util.tree_leaves(got_jax),
                        jax.tree_util.tree_leaves(params)):
        np.testing.assert_allclose(np.asarray(gj), np.asarray(w), rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(p.grad.numpy(), np.asarray(w), rtol=1e-9, atol=1e-11)


class CharModel(nn.Module):
    vocab: int = 12

    @nn.compact
    def __call__(self, ids):
        x = nn.Embed(self.vocab, 16)(ids)
        x = nn.RNN(nn.LSTMCell(32))(x)
        return nn.Dense(self.vocab)(x)


def _cross_entropy(logits, targets, xp):
    return -xp.mean(xp.sum(nn.log_softmax(logits) * nn.one_hot(targets, logits.shape[-1]), axis=-1))


def test_character_model_trains_on_torch_and_jax_and_runs_on_numpy():
    """Next-character prediction on a repeating text: the loss falls on torch (Adam, the fused
    LSTM loop) and on jax (SGD under jax.jit, one scan), and the torch-trained weights give
    torch's logits on NumPy."""
    text = "abcdefghijk " * 8
    alphabet = sorted(set(text))
    ids = np.asarray([alphabet.index(c) for c in text], np.int64).reshape(4, -1)
    inputs, targets = ids[:, :-1], ids[:, 1:]
    model = CharModel(vocab=len(alphabet))

    params = nn.tree_map(lambda p: p.requires_grad_(), model.init(nn.random.key(0), torch.from_numpy(inputs))["params"])
    optimizer = torch.optim.Adam(nn.tree_leaves(params), lr=0.02)
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        loss = _cross_entropy(model.apply({"params": params}, torch.from_numpy(inputs)), torch.from_numpy(targets), torch)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.3 * losses[0]

    jparams = model.init(nn.random.key(0), jnp.asarray(inputs))["params"]

    @jax.jit
    def step(p):
        value, grads = jax.value_and_grad(
            lambda q: _cross_entropy(model.apply({"params": q}, jnp.asarray(inputs)), jnp.asarray(targets), jnp))(p)
        return jax.tree_util.tree_map(lambda w, g: w - 2.0 * g, p, grads), value

    jax_losses = []
    for _ in range(40):
        jparams, value = step(jparams)
        jax_losses.append(float(value))
    assert jax_losses[-1] < 0.5 * jax_losses[0]

    with torch.no_grad():
        torch_logits = model.apply({"params": params}, torch.from_numpy(inputs)).numpy()
    numpy_logits = model.apply(nn.to_backend({"params": params}, np), inputs)
    np.testing.assert_allclose(numpy_logits, torch_logits, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind, cell", [("LSTM", nn.LSTMCell(6)), ("GRU", nn.GRUCell(6)),
                                        ("RNN_TANH", nn.SimpleCell(6)),
                                        ("RNN_RELU", nn.SimpleCell(6, activation_fn=nn.relu))])
def test_torch_fused_loop_is_used_and_equals_the_written_once_step(monkeypatch, kind, cell):
    from xpnn.backends import torch as torch_backend

    calls = []
    loop, step = torch_backend._RECURRENCES[kind]
    monkeypatch.setitem(torch_backend._RECURRENCES, kind, (lambda *a: calls.append(1) or loop(*a), step))
    layer = nn.RNN(cell, return_carry=True)
    x = torch.randn(3, 9, 4)
    variables = layer.init(nn.random.key(0), x)
    fused = layer.apply(variables, x)
    assert calls
    with nn.fast_paths(False):
        written_once = layer.apply(variables, x)
    for a, b in zip(nn.tree_leaves(fused), nn.tree_leaves(written_once)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not [r for r in nn.fast_path_report() if "fused" in r.function]


@pytest.mark.parametrize("off_by_eps", [0, 30])
def test_fused_loop_check_rejects_a_loop_as_far_off_as_cudnns(off_by_eps):
    """The check of a fused loop (and of the LSTM's projected one, torch's ``proj_size``) holds it
    to 16 eps of the written-once step: torch's CPU loop passes, one 30 eps off (cuDNN's float32
    loop was 25 to 45 eps off) is switched off."""
    from xpnn._dispatch import adapter_of
    from xpnn.layers import recurrent

    ops = adapter_of(torch.zeros(1))
    wrong = copy.copy(ops)
    fused = ops.fused_recurrence

    def perturbed(*args):
        carry, ys = fused(*args)
        return carry, ys + off_by_eps * torch.finfo(ys.dtype).eps  # cuDNN's were 3e-6 on outputs of 0.02 to 1

    wrong.fused_recurrence = perturbed
    for kind, projected in (("LSTM", False), ("GRU", False), ("RNN_TANH", False), ("RNN_RELU", False),
                            ("LSTM", True)):
        reason = recurrent._fused_disagreement(wrong, torch.float32, torch.device("cpu"), kind, projected)
        assert (reason is None) == (off_by_eps == 0), (reason, projected)


def test_one_scan_under_jax_jit():
    """jax.jit of a model traces one loop body, not one per step."""
    layer = nn.Bidirectional(nn.RNN(nn.GRUCell(4)), nn.RNN(nn.GRUCell(4)))
    x = jnp.ones((2, 50, 3))
    variables = layer.init(nn.random.key(0), x)
    jaxpr = str(jax.make_jaxpr(lambda v, a: layer.apply(v, a))(variables, x))
    assert jaxpr.count("scan[") == 2  # one per direction
    assert jaxpr.count("dot_general") <= 12  # one step per direction: a GRU cell's 6 gate products (50 steps: 600)


def test_errors_name_the_layer():
    x = np.ones((2, 5, 3), np.float32)
    layer = nn.RNN(nn.LSTMCell(4))
    variables = layer.init(nn.random.key(0), x)
    with pytest.raises(nn.ModuleError, match=r"RNN: seq_lengths must have the batch shape \(2,\), got \(3,\)"):
        layer.apply(variables, x, seq_lengths=np.ones(3, np.int64))
    with pytest.raises(nn.ModuleError, match="variable_axes, variable_carry, variable_broadcast and split_rngs"):
        nn.RNN(nn.LSTMCell(4), variable_axes={"params": 0}).init(nn.random.key(0), x)
    with pytest.raises(ValueError, match="kind must be 'LSTM', 'GRU' or 'RNN', got 'LSTMX'"):
        nn.layers.torch_rnn.from_torch({}, "LSTMX")
    with pytest.raises(ValueError, match="unexpected key 'weight'"):
        nn.layers.torch_rnn.from_torch({"weight": np.ones(2)}, "LSTM")


def _user_step(namespace):
    class Step(namespace.Module):
        """h' = tanh(Dense(x) + Dense(context) + h): a context given whole to every step."""

        @namespace.compact
        def __call__(self, carry, x, context):
            h = namespace.tanh(namespace.Dense(4)(x) + namespace.Dense(4, use_bias=False)(context) + carry)
            return h, h * 2.0

    return Step


def test_lifted_scan_of_a_user_module_equals_flax():
    """xpnn.scan over a user's module with two submodules and an argument given whole (in_axes
    None, flax's nn.broadcast), reverse, on NumPy, torch and under jax.jit: flax.linen.scan's params and outputs."""
    x = np.random.default_rng(3).standard_normal((2, 6, 3)).astype(np.float32)
    context = np.random.default_rng(4).standard_normal((2, 5)).astype(np.float32)
    carry = np.zeros((2, 4), np.float32)
    settings = dict(variable_broadcast="params", split_rngs={"params": False}, in_axes=(1, None), out_axes=1,
                    reverse=True)
    flax_scanned = fnn.scan(_user_step(fnn), **{**settings, "in_axes": (1, fnn.broadcast)})()
    variables = flax_scanned.init(jax.random.key(0), jnp.asarray(carry), jnp.asarray(x), jnp.asarray(context))
    want = flax_scanned.apply(variables, jnp.asarray(carry), jnp.asarray(x), jnp.asarray(context))
    ours = nn.scan(_user_step(nn), **settings)()
    assert type(ours).__name__ == "ScanStep"
    mine = ours.init(nn.random.key(0), carry, x, context)
    for a, b in zip(jax.tree_util.tree_leaves(mine), jax.tree_util.tree_leaves(variables)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    for convert in (np.asarray, torch.from_numpy):
        got = ours.apply(nn.to_backend(variables, convert(x)), convert(carry), convert(x), convert(context))
        for a, b in zip(nn.tree_leaves(got), jax.tree_util.tree_leaves(want)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    jitted = jax.jit(lambda v, c, a, k: ours.apply(v, c, a, k))(variables, jnp.asarray(carry), jnp.asarray(x),
                                                              jnp.asarray(context))
    np.testing.assert_allclose(np.asarray(jitted[1]), np.asarray(want[1]), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="variable_axes and variable_carry .* are not supported"):
        nn.scan(nn.LSTMCell, variable_axes={"params": 0})
    with pytest.raises(ValueError, match="variable_broadcast must be 'params'"):
        nn.scan(nn.LSTMCell)


def test_low_precision_rnn_promotes_like_flax():
    """bfloat16 inputs with float32 params compute in float32 (flax's promotion), and
    dtype='bfloat16' computes and returns bfloat16, on torch and jax, as flax does."""
    x = np.random.default_rng(5).standard_normal((2, 6, 3)).astype(np.float32)
    for settings in (dict(), dict(dtype=jnp.bfloat16)):
        flax_layer = fnn.RNN(fnn.LSTMCell(4, **settings))
        variables = flax_layer.init(jax.random.key(0), jnp.asarray(x))
        want = flax_layer.apply(variables, jnp.asarray(x, jnp.bfloat16))
        ours = nn.RNN(nn.LSTMCell(4, **({"dtype": "bfloat16"} if settings else {})))
        for like, convert in ((torch.zeros(1), lambda a: torch.from_numpy(a).to(torch.bfloat16)),
                              (jnp.zeros(1), lambda a: jnp.asarray(a, jnp.bfloat16))):
            got = ours.apply(nn.to_backend(variables, like), convert(x))
            assert str(got.dtype).rsplit(".", 1)[-1] == str(want.dtype)
            got = got.float().numpy() if isinstance(got, torch.Tensor) else np.asarray(got, np.float32)
            np.testing.assert_allclose(got, np.asarray(want, np.float32), rtol=0.05, atol=0.05)

"""xpnn.torch_nn.utils against torch.nn.utils: padding and packing sequences, and the recurrent
layers on packed sequences (torch's outputs, final states and gradients)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch.nn.utils import rnn as torch_rnn

import xpnn
import xpnn.torch_nn as nn
from xpnn.torch_nn.utils import rnn

_BATCH = np.random.default_rng(0).standard_normal((6, 4, 3))  # (T, B, features)


@pytest.mark.parametrize(("lengths", "enforce_sorted", "batch_first"), [
    ([6, 4, 4, 1], True, False), ([3, 6, 1, 4], False, False), ([2, 2, 5, 2], False, True), ([6, 5, 3, 2], False, True),
])
def test_pack_and_pad_as_torch(backend, lengths, enforce_sorted, batch_first):
    x = np.swapaxes(_BATCH, 0, 1) if batch_first else _BATCH
    packed = rnn.pack_padded_sequence(backend.asarray(x, "float64"), lengths, batch_first, enforce_sorted)
    want = torch_rnn.pack_padded_sequence(torch.tensor(x), lengths, batch_first, enforce_sorted)
    np.testing.assert_array_equal(backend.to_numpy(packed.data), want.data.numpy())
    for got, expected in zip(packed[1:], want[1:]):
        assert (got is None) == (expected is None)
        if got is not None:
            assert isinstance(got, np.ndarray) and got.dtype == np.int64
            np.testing.assert_array_equal(got, expected.numpy())
    for padding_value, total_length in ((0.0, None), (-2.5, 8)):
        padded, got_lengths = rnn.pad_packed_sequence(packed, batch_first, padding_value, total_length)
        expected, expected_lengths = torch_rnn.pad_packed_sequence(want, batch_first, padding_value, total_length)
        np.testing.assert_array_equal(backend.to_numpy(padded), expected.numpy())
        np.testing.assert_array_equal(backend.to_numpy(got_lengths), expected_lengths.numpy())
    for got, expected in zip(rnn.unpack_sequence(packed), torch_rnn.unpack_sequence(want)):
        np.testing.assert_array_equal(backend.to_numpy(got), expected.numpy())


def test_lengths_may_be_an_array_of_the_library(backend):
    lengths = backend.asarray(np.array([3, 6, 1, 4]), "int64")
    packed = rnn.pack_padded_sequence(backend.asarray(_BATCH, "float32"), lengths, enforce_sorted=False)
    np.testing.assert_array_equal(packed.batch_sizes, [4, 3, 3, 2, 1, 1])


@pytest.mark.parametrize(("batch_first", "padding_side", "padding_value"), [
    (False, "right", 0.0), (True, "right", -1.0), (True, "left", 3.0), (False, "left", 0.0)])
def test_pad_sequence_unpad_and_pack_as_torch(backend, batch_first, padding_side, padding_value):
    rng = np.random.default_rng(1)
    sequences = [rng.standard_normal((n, 2, 3)) for n in (3, 5, 1)]
    got = rnn.pad_sequence([backend.asarray(s, "float64") for s in sequences], batch_first, padding_value,
                           padding_side)
    want = torch_rnn.pad_sequence([torch.tensor(s) for s in sequences], batch_first, padding_value, padding_side)
    np.testing.assert_array_equal(backend.to_numpy(got), want.numpy())
    if padding_side == "right":
        for a, b in zip(rnn.unpad_sequence(got, [3, 5, 1], batch_first),
                        torch_rnn.unpad_sequence(want, torch.tensor([3, 5, 1]), batch_first)):
            np.testing.assert_array_equal(backend.to_numpy(a), b.numpy())
    packed = rnn.pack_sequence([backend.asarray(s, "float64") for s in sequences], enforce_sorted=False)
    expected = torch_rnn.pack_sequence([torch.tensor(s) for s in sequences], enforce_sorted=False)
    np.testing.assert_array_equal(backend.to_numpy(packed.data), expected.data.numpy())
    np.testing.assert_array_equal(rnn.invert_permutation(packed.sorted_indices),
                                  torch_rnn.invert_permutation(expected.sorted_indices).numpy())


_RECURRENT = [("LSTM", {"num_layers": 2, "bidirectional": True, "proj_size": 2}), ("LSTM", {"batch_first": True}),
              ("GRU", {"bidirectional": True}), ("GRU", {"num_layers": 3, "bias": False}),
              ("RNN", {"num_layers": 2, "nonlinearity": "relu", "bidirectional": True})]


@pytest.mark.slow_on("dask", "jax")  # jax: test_packed_sequences_under_jax_jit
@pytest.mark.parametrize(("kind", "kwargs"), _RECURRENT, ids=[f"{k}-{i}" for i, (k, _) in enumerate(_RECURRENT)])
@pytest.mark.parametrize("with_state", [False, True])
def test_recurrent_layers_take_packed_sequences_as_torchs(backend, kind, kwargs, with_state):
    """A packed batch (lengths unsorted, one of a single step): torch's packed output and final
    states (at each sequence's own last step, the backward direction over its own steps)."""
    torch.manual_seed(0)
    reference = getattr(torch.nn, kind)(3, 5, **kwargs).double()
    module = getattr(nn, kind)(3, 5, **kwargs, like=backend.like(), dtype="float64")
    module.load_state_dict(reference.state_dict())
    lengths = [3, 6, 1, 4]
    directions = (2 if kwargs.get("bidirectional") else 1) * kwargs.get("num_layers", 1)
    rng = np.random.default_rng(2)
    h0 = rng.standard_normal((directions, 4, kwargs.get("proj_size") or 5))
    c0 = rng.standard_normal((directions, 4, 5))
    start = None
    if with_state:
        start = (h0, c0) if kind == "LSTM" else h0
    want_out, want_state = reference(torch_rnn.pack_padded_sequence(torch.tensor(_BATCH), lengths,
                                                                    enforce_sorted=False),
                                     None if start is None else _mapped(start, torch.tensor))
    out, state = module(rnn.pack_padded_sequence(backend.asarray(_BATCH, "float64"), lengths, enforce_sorted=False),
                        None if start is None else _mapped(start, lambda a: backend.asarray(a, "float64")))
    assert isinstance(out, rnn.PackedSequence)
    np.testing.assert_array_equal(out.batch_sizes, want_out.batch_sizes.numpy())
    np.testing.assert_allclose(backend.to_numpy(out.data), want_out.data.detach().numpy(), rtol=1e-10, atol=1e-12)
    for got, want in zip(_leaves(state), _leaves(want_state)):
        np.testing.assert_allclose(backend.to_numpy(got), want.detach().numpy(), rtol=1e-10, atol=1e-12)


def _mapped(state, convert):
    return tuple(convert(s) for s in state) if isinstance(state, tuple) else convert(state)


def _leaves(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("fast", [True, False])
def test_gradients_through_a_packed_lstm_are_torchs(fast):
    """Through torch's fused packed loop and through the padded written-once layers."""
    torch.manual_seed(0)
    reference = torch.nn.LSTM(3, 4, bidirectional=True).double()
    module = nn.LSTM(3, 4, bidirectional=True, like=torch, dtype=torch.float64)
    module.load_state_dict(reference.state_dict())
    lengths = [2, 6, 5, 1]
    results = []
    for layer, pack in ((reference, torch_rnn.pack_padded_sequence), (module, rnn.pack_padded_sequence)):
        x = torch.tensor(_BATCH, requires_grad=True)
        with xpnn.fast_paths(fast):
            out, (h, c) = layer(pack(x, lengths, enforce_sorted=False))
        (out.data.sin().sum() + h.sum() + (c ** 2).sum()).backward()
        results.append([x.grad] + [p.grad for p in layer.parameters()])
    for got, want in zip(*results[::-1]):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("kind", "kwargs"), _RECURRENT, ids=[f"{k}-{i}" for i, (k, _) in enumerate(_RECURRENT)])
def test_packed_layers_run_the_librarys_packed_loop(kind, kwargs, monkeypatch):
    """On torch a packed input runs torch's fused packed loop, layer by layer (the same outputs,
    float32, as the padded written-once layers with fast paths off), except in training with a
    dropout between layers, whose mask the padded layers draw."""
    from xpnn._dispatch import adapter_of

    ops = type(adapter_of(torch.zeros(1)))
    calls = []
    loop = ops.fused_packed_recurrence

    def counted(self, *args, **kw):
        calls.append(args[0])
        return loop(self, *args, **kw)

    module = getattr(nn, kind)(3, 5, **kwargs, like=torch, dropout=0.5 if kwargs.get("num_layers", 1) > 1 else 0.0)
    module.eval()
    rng = np.random.default_rng(3)
    h0 = torch.tensor(rng.standard_normal((8, 4, 5)), dtype=torch.float32)
    start = h0[:module.num_layers * (2 if module.bidirectional else 1), :, :module.proj_size or 5]
    if kind == "LSTM":
        start = (start, h0[:start.shape[0]] + 1)
    sequence = rnn.pack_padded_sequence(torch.tensor(_BATCH, dtype=torch.float32), [3, 6, 1, 4],
                                        enforce_sorted=False)
    module(sequence, start)  # the first use checks the loop on a probe of its own
    monkeypatch.setattr(ops, "fused_packed_recurrence", counted)
    fused = module(sequence, start)
    assert len(calls) == module.num_layers
    with xpnn.fast_paths(False):
        written_once = module(sequence, start)
    assert len(calls) == module.num_layers
    for got, want in zip(xpnn.tree_leaves(fused), xpnn.tree_leaves(written_once)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    module.train()
    module(sequence, start)
    assert len(calls) == module.num_layers * (1 if module.dropout else 2)


@pytest.mark.parametrize("off_by_eps", [0, 30])
def test_the_packed_loops_check_holds_them_to_16_eps(off_by_eps):
    """torch's packed loops (forward only and both directions, and the LSTM's projected one) pass
    the check against the padded written-once layers; one 30 eps off is switched off."""
    import copy

    from xpnn._dispatch import adapter_of
    from xpnn.torch_nn import recurrent

    ops = adapter_of(torch.zeros(1))
    wrong = copy.copy(ops)
    loop = ops.fused_packed_recurrence

    def perturbed(*args):
        carries, out = loop(*args)
        return carries, out + off_by_eps * torch.finfo(out.dtype).eps

    wrong.fused_packed_recurrence = perturbed
    for mode, projected in (("LSTM", False), ("GRU", False), ("RNN_TANH", False), ("RNN_RELU", False),
                            ("LSTM", True)):
        for dtype in (torch.float32, torch.float64):
            reason = recurrent._packed_disagreement(wrong, dtype, torch.device("cpu"), mode, projected)
            assert (reason is None) == (off_by_eps == 0), (reason, mode, projected)


def test_packed_sequences_under_jax_jit():
    """The lengths as Python ints: the packed layout is host data, so the layer jits."""
    import jax
    import jax.numpy as jnp

    torch.manual_seed(0)
    reference = torch.nn.GRU(3, 4)
    module = nn.GRU(3, 4, like=jnp)
    module.load_state_dict(reference.state_dict())

    @jax.jit
    def padded(x):
        out, _ = module(rnn.pack_padded_sequence(x, [1, 6, 3, 2], enforce_sorted=False))
        return rnn.pad_packed_sequence(out, batch_first=True)[0]

    want = torch_rnn.pad_packed_sequence(reference(torch_rnn.pack_padded_sequence(
        torch.tensor(_BATCH, dtype=torch.float32), [1, 6, 3, 2], enforce_sorted=False))[0], batch_first=True)[0]
    np.testing.assert_allclose(np.asarray(padded(jnp.asarray(_BATCH, jnp.float32))), want.detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match=r"pack_padded_sequence: the lengths' values size the packed data, so they "
                                        r"must be known"):
        jax.jit(lambda x, n: rnn.pack_padded_sequence(x, n).data)(jnp.ones((3, 2, 1)), jnp.array([3, 1]))


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda: rnn.pack_padded_sequence(np.zeros((4, 3, 1)), [2, 4, 3]), RuntimeError,
     r"pack_padded_sequence: `lengths` array must be sorted in decreasing order when `enforce_sorted` is True"),
    (lambda: rnn.pack_padded_sequence(np.zeros((4, 3, 1)), [4, 3, 0]), RuntimeError,
     r"Length of all samples has to be greater than 0, but found an element in 'lengths' that is <= 0"),
    (lambda: rnn.pack_padded_sequence(np.zeros((4, 3, 1)), [5, 4, 3]), ValueError,
     r"pack_padded_sequence: a length \(5\) exceeds the input's 4 steps"),
    (lambda: rnn.pack_padded_sequence(np.zeros((4, 3, 1)), [4, 3]), ValueError,
     r"pack_padded_sequence: expected 3 lengths \(one per sequence of the batch\), got 2"),
    (lambda: rnn.pack_padded_sequence(np.zeros((4, 3, 1)), [4.0, 3.0, 1.0]), TypeError,
     r"pack_padded_sequence: lengths must be integers"),
    (lambda: rnn.pack_padded_sequence(np.zeros(4), [4]), ValueError,
     r"pack_padded_sequence: input must be an array of at least 2 dims"),
    (lambda: rnn.pad_packed_sequence(rnn.pack_sequence([np.zeros(4), np.zeros(2)]), total_length=3), ValueError,
     r"Expected total_length to be at least the length of the longest sequence in input, but got total_length=3"),
    (lambda: rnn.pad_packed_sequence(np.zeros((4, 2))), TypeError,
     r"pad_packed_sequence: sequence must be a PackedSequence, got ndarray"),
    (lambda: rnn.pad_sequence([]), ValueError, r"pad_sequence: received an empty list of sequences"),
    (lambda: rnn.pad_sequence([np.zeros((2, 3)), np.zeros((2, 4))]), ValueError,
     r"pad_sequence: every sequence must have the trailing shape \(3,\)"),
    (lambda: rnn.pad_sequence([np.zeros(2)], padding_side="top"), ValueError,
     r"pad_sequence: padding_side must be 'right' or 'left', got 'top'"),
])
def test_bad_arguments_are_named_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_a_packed_input_of_the_wrong_width_is_refused_as_torch():
    packed = rnn.pack_sequence([np.zeros((3, 2), np.float32)])
    with pytest.raises(ValueError, match=r"LSTM: input.size\(-1\) must be equal to input_size. Expected 3, got 2"):
        nn.LSTM(3, 4)(packed)


# -- gradient clipping, parameter vectors, fusion ---------------------------------------------

@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.5, "inf", float("-inf"), 0])
def test_total_norm_as_torchs(backend, norm_type):
    rng = np.random.default_rng(3)
    infinite = float(norm_type) in (float("inf"), float("-inf"))
    arrays = [rng.standard_normal((3, 4)), rng.standard_normal(5) * 3] + ([] if infinite else [np.zeros((0, 2))])
    got = nn.utils.get_total_norm([backend.asarray(a, "float64") for a in arrays], norm_type)
    want = torch.nn.utils.get_total_norm([torch.tensor(a) for a in arrays], norm_type)
    np.testing.assert_allclose(backend.to_numpy(got), want.numpy(), rtol=1e-12)
    if infinite:  # torch refuses an empty tensor there; its norm is the max (min) of no magnitudes
        empty = backend.to_numpy(nn.utils.get_total_norm(backend.asarray(np.zeros((0, 2)), "float64"), norm_type))
        assert empty == (0.0 if float(norm_type) > 0 else float("inf"))


def _trained_twins(seed: int = 0):
    """A torch model and its xpnn.torch_nn twin on torch after one backward pass each."""
    torch.manual_seed(seed)
    reference = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2, bias=False))
    model = nn.Sequential(nn.Linear(4, 8, like=torch), nn.Tanh(), nn.Linear(8, 2, bias=False, like=torch))
    model.load_state_dict(reference.state_dict())
    x = torch.randn(16, 4) * 10
    for layer in (reference, model):
        (layer(x) ** 2).sum().backward()
    return reference, model


@pytest.mark.parametrize("norm_type", [2.0, "inf", 1.0])
def test_clip_grad_norm_as_torchs(norm_type):
    reference, model = _trained_twins()
    want = torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.5, norm_type)
    got = nn.utils.clip_grad_norm_(model.parameters(), 0.5, norm_type)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
    for mine, theirs in zip(model.parameters(), reference.parameters()):
        np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-6)
    weight = next(iter(model.parameters()))
    assert weight.is_leaf and weight.requires_grad


def test_clip_grad_value_and_the_deprecated_name_as_torchs():
    reference, model = _trained_twins()
    torch.nn.utils.clip_grad_value_(reference.parameters(), 0.3)
    nn.utils.clip_grad_value_(model.parameters(), 0.3)
    for mine, theirs in zip(model.parameters(), reference.parameters()):
        np.testing.assert_array_equal(mine.grad.numpy(), theirs.grad.numpy())
    with pytest.warns(FutureWarning, match=r"`torch.nn.utils.clip_grad_norm` is now deprecated in favor of"):
        nn.utils.clip_grad_norm(model.parameters(), 1.0)


def test_clipping_edge_cases():
    assert float(nn.utils.clip_grad_norm_(nn.Linear(2, 2, like=torch).parameters(), 1.0)) == 0.0  # no gradients
    _, model = _trained_twins()
    first = next(iter(model.parameters()))
    first.grad[0, 0] = float("nan")
    with pytest.raises(RuntimeError, match=r"get_total_norm: The total norm of order 2.0 for gradients from "
                                           r"`parameters` is non-finite"):
        nn.utils.clip_grad_norm_(model.parameters(), 1.0, error_if_nonfinite=True)
    with pytest.raises(TypeError, match=r"clip_grad_norm_: the parameters must carry their gradients in .grad \(torch "
                                        r"tensors do\); numpy.ndarray arrays do not"):
        nn.utils.clip_grad_norm_(nn.Linear(2, 2).parameters(), 1.0)


def test_parameters_to_vector_and_back_as_torchs(backend):
    torch.manual_seed(0)
    reference = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Conv1d(2, 3, 2))
    model = nn.Sequential(nn.Linear(3, 4, like=backend.like()), nn.Conv1d(2, 3, 2, like=backend.like()))
    model.load_state_dict(reference.state_dict())
    vector = nn.utils.parameters_to_vector(model.parameters())
    np.testing.assert_array_equal(backend.to_numpy(vector),
                                  torch.nn.utils.parameters_to_vector(reference.parameters()).detach().numpy())
    held = list(model.parameters())
    new = np.arange(vector.shape[0], dtype=np.float32)
    nn.utils.vector_to_parameters(backend.asarray(new, "float32"), model.parameters())
    torch.nn.utils.vector_to_parameters(torch.tensor(new), reference.parameters())
    for (name, got), want in zip(model.named_parameters(), reference.parameters()):
        np.testing.assert_array_equal(backend.to_numpy(got), want.detach().numpy(), err_msg=name)
    if backend.name != "jax":
        assert all(a is b for a, b in zip(held, model.parameters()))
    with pytest.raises(ValueError, match=r"vector_to_parameters: vec has 3 elements, the parameters 31"):
        nn.utils.vector_to_parameters(backend.asarray(np.zeros(3), "float32"), model.parameters())


@pytest.mark.slow_on("dask")
@pytest.mark.parametrize(("kind", "transpose"), [("Conv2d", False), ("ConvTranspose2d", True), ("Linear", False),
                                                ("Conv1d", False)])
def test_batch_norm_fusion_as_torchs(backend, kind, transpose):
    torch.manual_seed(0)
    args = (4, 6) if kind == "Linear" else (4, 6, 3)
    norm = "BatchNorm1d" if kind in ("Linear", "Conv1d") else "BatchNorm2d"
    layer, bn = getattr(torch.nn, kind)(*args).double(), getattr(torch.nn, norm)(6).double()
    bn.load_state_dict({**bn.state_dict(), "running_mean": torch.randn(6), "running_var": torch.rand(6) + 0.5,
                        "weight": torch.randn(6), "bias": torch.randn(6)})
    layer.eval(), bn.eval()
    twins = [getattr(nn, kind)(*args, like=backend.like(), dtype="float64"),
             getattr(nn, norm)(6, like=backend.like(), dtype="float64")]
    for twin, module in zip(twins, (layer, bn)):
        twin.load_state_dict(module.state_dict())
        twin.eval()
    if kind == "Linear":
        want, got = torch.nn.utils.fuse_linear_bn_eval(layer, bn), nn.utils.fuse_linear_bn_eval(*twins)
    else:
        want = torch.nn.utils.fuse_conv_bn_eval(layer, bn, transpose)
        got = nn.utils.fuse_conv_bn_eval(*twins, transpose)
    assert type(got) is type(twins[0]) and got is not twins[0]
    for name in ("weight", "bias"):
        np.testing.assert_allclose(backend.to_numpy(getattr(got, name)), getattr(want, name).detach().numpy(),
                                   rtol=1e-12, err_msg=name)
    shape = (5, 4) if kind == "Linear" else (2, 4, 7) if kind == "Conv1d" else (2, 4, 7, 7)
    x = np.random.default_rng(0).standard_normal(shape)
    np.testing.assert_allclose(backend.to_numpy(got(backend.asarray(x, "float64"))),
                               bn(layer(torch.tensor(x))).detach().numpy(), rtol=1e-9, atol=1e-12)


def test_fusion_needs_eval_mode_and_matching_features():
    with pytest.raises(ValueError, match=r"fuse_conv_bn_eval: Fusion only for eval!"):
        nn.utils.fuse_conv_bn_eval(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3))
    with pytest.raises(ValueError, match=r"fuse_linear_bn_eval: To fuse, linear.out_features must equal "
                                         r"bn.num_features or bn.num_features must be 1, got 3 and 2"):
        nn.utils.fuse_linear_bn_eval(nn.Linear(2, 3).eval(), nn.BatchNorm1d(2).eval())
    fused = nn.utils.fuse_linear_bn_eval(nn.Linear(2, 3).eval(), nn.BatchNorm1d(1).eval())
    assert fused.weight.shape == (3, 2)


def test_skip_init_makes_the_module():
    module = nn.utils.skip_init(nn.Linear, 3, 5, bias=False)
    assert isinstance(module, nn.Linear) and module.weight.shape == (5, 3) and module.bias is None


# -- hooks, parametrizations, weight and spectral norm ----------------------------------------

def test_forward_hooks_as_torchs():
    """Pre-hooks may replace the inputs, hooks the output, in registration order (``prepend``
    first); handles remove them (as context managers too)."""
    torch.manual_seed(0)
    reference = torch.nn.Linear(3, 2)
    twin = nn.Linear(3, 2, like=torch)
    twin.load_state_dict(reference.state_dict())
    results = []
    for layer in (reference, twin):
        calls = []
        layer.register_forward_pre_hook(lambda m, args: calls.append("pre") or (args[0] * 2,))
        layer.register_forward_pre_hook(lambda m, args, kwargs: calls.append("first") or None, prepend=True,
                                        with_kwargs=True)
        handle = layer.register_forward_hook(lambda m, args, out: calls.append("post") or out + 1)
        first = layer(torch.ones(4, 3))
        handle.remove()
        handle.remove()
        with layer.register_forward_hook(lambda m, args, kwargs, out: out * 0, with_kwargs=True):
            zeroed = layer(torch.ones(4, 3))
        last = layer(torch.ones(1, 3))
        results.append((calls, *(a.detach().numpy() for a in (first, zeroed, last))))
    (want_calls, *want), (calls, *got) = results
    assert calls == want_calls == ["first", "pre", "post", "first", "pre", "first", "pre"]
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_always_called_forward_hooks_as_torchs():
    """A hook registered with ``always_call`` runs when ``forward`` raises (output None), or when
    an earlier hook raised (the output so far), then the error goes on; one that raises itself is
    warned of; the others are not called."""
    def outcome(library):
        class Failing(library.Module):
            def forward(self, x):
                if x.sum() < 0:
                    raise ValueError("negative")
                return x * 2

        layer, calls = Failing(), []
        layer.register_forward_hook(lambda m, args, out: calls.append(("plain", out)))
        layer.register_forward_hook(lambda m, args, out: calls.append(("always", out)), always_call=True)
        layer.register_forward_hook(lambda m, args, out: 1 / 0, always_call=True)
        outcomes = []
        for x in (-torch.ones(1), torch.ones(1)):
            calls.clear()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    layer(x)
                except (ValueError, ZeroDivisionError) as error:
                    outcomes.append((type(error).__name__, [(kind, None if out is None else out.tolist())
                                                            for kind, out in calls],
                                     [str(w.message) for w in caught]))
        return outcomes

    assert outcome(nn) == outcome(torch.nn)


def test_a_model_made_on_the_meta_device_takes_arrays_by_to_empty():
    """torch's idiom for big models: made on ``meta`` (no memory), ``to_empty`` on a device, then
    a checkpoint loaded: torch's outputs; ``recurse=False`` empties the module's own arrays only."""
    torch.manual_seed(0)
    reference = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)).eval()
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).to(like=torch.empty(0, device="meta")).eval()
    assert {a.device.type for a in (*model.parameters(), *model.buffers())} == {"meta"}
    model.to_empty(device="cpu")
    assert {a.device.type for a in (*model.parameters(), *model.buffers())} == {"cpu"}
    assert all(p.is_leaf and p.requires_grad for p in model.parameters())
    model.load_state_dict(reference.state_dict())
    x = torch.randn(5, 3)
    np.testing.assert_array_equal(model(x).detach().numpy(), reference(x).detach().numpy())
    outer = nn.Linear(2, 2, like=torch.empty(0, device="meta"))
    outer.inner = nn.Linear(2, 2, like=torch.empty(0, device="meta"))
    outer.to_empty(device="cpu", recurse=False)
    assert outer.weight.device.type == "cpu" and outer.inner.weight.device.type == "meta"


def _hooked_cnn(library, log):
    """A small CNN of ``library`` (torch.nn or xpnn.torch_nn) whose convolution logs its output
    and input gradients (Grad-CAM's hooks), the output gradients doubled by a pre-hook, and whose
    last layer's input gradients are replaced by a full hook."""
    model = library.Sequential(library.Conv2d(3, 4, 3), library.ReLU(), library.Flatten(), library.Linear(64, 2))
    model[0].register_full_backward_pre_hook(lambda m, grad_output: log.append(("pre", grad_output)) or
                                             (grad_output[0] * 2,))
    model[0].register_full_backward_hook(lambda m, grad_input, grad_output: log.append(("full", grad_input,
                                                                                          grad_output)))
    model[3].register_full_backward_hook(lambda m, grad_input, grad_output: (grad_input[0].clamp(min=0),))
    return model


@pytest.mark.parametrize("input_grad", [True, False])
def test_backward_hooks_as_torchs(input_grad):
    """Pre-hooks see (and may replace) the output gradients, full hooks the input gradients
    (None for an input that needs none, with torch's warning) and the output gradients as
    replaced, in torch's order; the parameters' gradients follow the replacements."""
    torch.manual_seed(0)
    logs, models = ([], []), []
    reference = _hooked_cnn(torch.nn, logs[0]).double()
    twin = _hooked_cnn(nn, logs[1]).to(like=torch, dtype=torch.float64)
    twin.load_state_dict(reference.state_dict())
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6))
    inputs = []
    for model in (reference, twin):
        inputs.append(torch.tensor(x, requires_grad=input_grad))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model(inputs[-1]).square().sum().backward()
        assert any("no inputs require gradients" in str(w.message) for w in caught) == (not input_grad)
        models.append(model)
    assert [entry[0] for entry in logs[1]] == [entry[0] for entry in logs[0]] == ["pre", "full"]
    for got, want in zip(logs[1], logs[0]):
        for got_grads, want_grads in zip(got[1:], want[1:]):
            assert [g is None for g in got_grads] == [g is None for g in want_grads]
            for a, b in zip(got_grads, want_grads):
                if b is not None:
                    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)
    if input_grad:
        np.testing.assert_allclose(inputs[1].grad.numpy(), inputs[0].grad.numpy(), rtol=1e-12)
    for (name, got), want in zip(models[1].named_parameters(), models[0].parameters()):
        np.testing.assert_allclose(got.grad.numpy(), want.grad.numpy(), rtol=1e-12, err_msg=name)


def test_backward_hooks_off_torch():
    """Removed, a hook is not called; on NumPy nothing is differentiated (no call, the output
    unchanged); on jax, whose gradients are functional, a clear error."""
    import jax.numpy as jnp

    calls = []
    layer = nn.Linear(3, 2, like=torch)
    handle = layer.register_full_backward_hook(lambda *args: calls.append(args))
    handle.remove()
    layer(torch.ones(1, 3, requires_grad=True)).sum().backward()
    assert calls == []
    plain = nn.Linear(3, 2)
    want = plain(np.ones((1, 3)))
    plain.register_full_backward_pre_hook(lambda *args: calls.append(args))
    np.testing.assert_array_equal(plain(np.ones((1, 3))), want)
    assert calls == []
    on_jax = nn.Linear(3, 2, like=jnp)
    on_jax.register_full_backward_hook(lambda *args: None)
    with pytest.raises(NotImplementedError, match=r"xpnn\.torch_nn\.Linear: backward hooks run in an autograd that "
                                                  r"calls Python hooks \(torch's\); jax arrays take gradients "
                                                  r"functionally"):
        on_jax(jnp.ones((1, 3)))


def _normed(library, style: str, kind: str, **kwargs):
    """A layer of ``library`` (torch.nn or xpnn.torch_nn) under a weight or spectral norm."""
    args = {"Linear": (5, 4), "Conv1d": (3, 4, 3), "ConvTranspose2d": (3, 4, 2)}[kind]
    layer = getattr(library, kind)(*args, **kwargs)
    utils = library.utils
    wrap = {"weight_norm": utils.parametrizations.weight_norm, "spectral_norm": utils.parametrizations.spectral_norm,
            "old_weight_norm": utils.weight_norm, "old_spectral_norm": utils.spectral_norm}[style]
    with pytest.warns(FutureWarning) if style == "old_weight_norm" else _no_warning():
        return wrap(layer)


def _no_warning():
    import contextlib
    return contextlib.nullcontext()


_NORM_INPUTS = {"Linear": (2, 5), "Conv1d": (2, 3, 9), "ConvTranspose2d": (2, 3, 4, 4)}


@pytest.mark.slow_on("dask")
@pytest.mark.parametrize("style", ["weight_norm", "spectral_norm", "old_weight_norm", "old_spectral_norm"])
@pytest.mark.parametrize("kind", ["Linear", "Conv1d", "ConvTranspose2d"])
def test_normed_layers_load_and_run_torchs_checkpoints(backend, style, kind):
    """torch's state_dict names and values; the outputs in training (the power method's vectors
    moving with torch's) and in eval; the class and repr torch gives."""
    torch.manual_seed(0)
    reference = _normed(torch.nn, style, kind).double()
    module = _normed(nn, style, kind, like=backend.like(), dtype="float64")
    assert list(module.state_dict()) == list(reference.state_dict())
    assert type(module).__name__ == type(reference).__name__
    module.load_state_dict(reference.state_dict())
    x = np.random.default_rng(0).standard_normal(_NORM_INPUTS[kind])
    for mode in ("train", "train", "eval"):
        getattr(reference, mode)(), getattr(module, mode)()
        want = reference(torch.tensor(x)).detach().numpy()
        np.testing.assert_allclose(backend.to_numpy(module(backend.asarray(x, "float64"))), want, rtol=1e-10,
                                   atol=1e-12)
    for name, value in reference.state_dict().items():
        np.testing.assert_allclose(backend.to_numpy(module.state_dict()[name]), value.numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=name)
    if not style.startswith("old"):
        assert repr(module) == repr(reference)


@pytest.mark.parametrize("style", ["weight_norm", "spectral_norm", "old_weight_norm", "old_spectral_norm"])
def test_normed_layers_gradients_and_removal_as_torchs(style):
    torch.manual_seed(0)
    reference = _normed(torch.nn, style, "Conv1d").double()
    module = _normed(nn, style, "Conv1d", like=torch, dtype=torch.float64)
    module.load_state_dict(reference.state_dict())
    x = torch.tensor(np.random.default_rng(0).standard_normal(_NORM_INPUTS["Conv1d"]))
    for layer in (reference, module):
        (layer(x) ** 2).sum().backward()
    for (name, got), want in zip(module.named_parameters(), reference.parameters()):
        np.testing.assert_allclose(got.grad.numpy(), want.grad.numpy(), rtol=1e-9, err_msg=name)
    for library, layer in ((torch.nn, reference), (nn, module)):
        if style.startswith("old"):
            getattr(library.utils, f"remove_{style[4:]}")(layer)
        else:
            library.utils.parametrize.remove_parametrizations(layer, "weight")
    assert type(module) is nn.Conv1d and list(module.state_dict()) == list(reference.state_dict())
    np.testing.assert_allclose(module.weight.detach().numpy(), reference.weight.detach().numpy(), rtol=1e-12)
    assert module.weight.is_leaf and module.weight.requires_grad


def _batched_module(library, **kwargs):
    """A module of a batch of (3, 4) matrices, in namespace ``library``."""
    module = library.Module()
    values = torch.randn(2, 3, 4, dtype=torch.float64)
    module.weight = library.Parameter(values if library is torch.nn else np.asarray(values))
    return module.to(**kwargs) if kwargs else module


#: (the weight's shape: a Linear's (out, in), or "batch"; orthogonal_map; use_trivialization)
_ORTHOGONAL = [((5, 5), None, True), ((6, 4), None, True), ((4, 6), "matrix_exp", True), ((5, 5), "cayley", True),
               ((4, 6), "cayley", True), ((6, 4), "householder", False), ((4, 6), "householder", False),
               ((5, 5), "householder", True), ("batch", "householder", False), ("batch", "cayley", True)]


def _orthogonal_layer(library, shape, orthogonal_map, use_trivialization, state=None, **kwargs):
    torch.manual_seed(1)
    layer = _batched_module(library, **kwargs) if shape == "batch" else library.Linear(shape[1], shape[0], **kwargs)
    if library is torch.nn:
        layer = layer.double()
    if state is not None:
        layer.load_state_dict(state)
    return library.utils.parametrizations.orthogonal(layer, orthogonal_map=orthogonal_map,
                                                     use_trivialization=use_trivialization)


def _host(a):
    return a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


@pytest.mark.slow_on("dask")
@pytest.mark.parametrize(("shape", "orthogonal_map", "use_trivialization"), _ORTHOGONAL)
def test_orthogonal_weights_as_torchs(backend, shape, orthogonal_map, use_trivialization):
    """Registered on the same weight, torch's orthogonal weight and state (the QR-orthogonalized
    ``base``, or LAPACK's reflectors without the trivialization; a non-square base completes the
    weight with random columns, so the deterministic part is compared there); a trained torch
    model's state_dict gives torch's weight, which is orthogonal."""
    reference = _orthogonal_layer(torch.nn, shape, orthogonal_map, use_trivialization)
    torch.manual_seed(1)
    plain = (_batched_module(torch.nn) if shape == "batch" else torch.nn.Linear(shape[1], shape[0])).double()
    module = _orthogonal_layer(nn, shape, orthogonal_map, use_trivialization,
                               {k: v.numpy() for k, v in plain.state_dict().items()}, like=backend.like(),
                               dtype="float64")
    assert list(module.state_dict()) == list(reference.state_dict())
    square = shape == "batch" or shape[0] == shape[1] or not use_trivialization
    if square:
        np.testing.assert_allclose(backend.to_numpy(module.weight), _host(reference.weight), atol=1e-13)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.2)
    (reference.weight.sum(axis=-1) ** 3).sum().backward()
    optimizer.step()
    module.load_state_dict(reference.state_dict())
    weight = backend.to_numpy(module.weight)
    np.testing.assert_allclose(weight, _host(reference.weight), atol=1e-13)
    tall = weight if weight.shape[-2] >= weight.shape[-1] else np.swapaxes(weight, -1, -2)
    np.testing.assert_allclose(np.swapaxes(tall, -1, -2) @ tall, np.broadcast_to(np.eye(tall.shape[-1]),
                                                                                  (*tall.shape[:-2], tall.shape[-1],
                                                                                   tall.shape[-1])), atol=1e-13)


@pytest.mark.parametrize(("shape", "orthogonal_map", "use_trivialization"), _ORTHOGONAL[:8])
@pytest.mark.parametrize("fast", [True, False])
def test_orthogonal_gradients_and_assignment_as_torchs(shape, orthogonal_map, use_trivialization, fast):
    """On torch, the gradients through the map (torch's matrix exponential, and the written-once
    series with fast paths off) are torch's; assigning an orthogonal matrix gives it back."""
    reference = _orthogonal_layer(torch.nn, shape, orthogonal_map, use_trivialization)
    module = _orthogonal_layer(nn, shape, orthogonal_map, use_trivialization, like=torch, dtype=torch.float64)
    module.load_state_dict(reference.state_dict())
    x = torch.tensor(np.random.default_rng(0).standard_normal((3, shape[1])))
    with xpnn.fast_paths(fast):
        for layer in (reference, module):
            (layer(x) ** 3).sum().backward()
    for (name, got), want in zip(module.named_parameters(), reference.parameters()):
        np.testing.assert_allclose(got.grad.numpy(), want.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)
    q = torch.linalg.qr(torch.randn(max(shape), min(shape), dtype=torch.float64))[0]
    q = q if shape[0] >= shape[1] else q.T
    with torch.no_grad():
        reference.weight = q
    module.weight = q
    np.testing.assert_allclose(_host(module.weight), _host(reference.weight), atol=1e-13)
    np.testing.assert_allclose(_host(module.weight), q.numpy(), atol=1e-13)


@pytest.mark.parametrize("orthogonal_map", ["matrix_exp", "cayley", "householder"])
def test_orthogonal_under_jax_jit(orthogonal_map):
    """The maps trace (jax's own expm, where the written-once series would read its norm), and
    jax.grad differentiates the original through them as torch's autograd does."""
    import jax
    import jax.numpy as jnp

    reference = _orthogonal_layer(torch.nn, (4, 4), orthogonal_map, True)
    module = _orthogonal_layer(nn, (4, 4), orthogonal_map, True, like=jnp)
    module.load_state_dict(reference.state_dict())
    state = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    x = np.random.default_rng(0).standard_normal((3, 4))
    gradient = jax.jit(jax.grad(lambda p: (nn.functional_call(module, p, (jnp.asarray(x, jnp.float32),)) ** 3).sum()))
    (reference(torch.tensor(x)) ** 3).sum().backward()
    np.testing.assert_allclose(np.asarray(gradient(state)["parametrizations.weight.original"]),
                               reference.parametrizations.weight.original.grad.numpy(), rtol=2e-4, atol=2e-5)


def test_matrix_exponential_against_scipy_and_the_librarys():
    """The written-once series (scaling and squaring) is within a few eps of SciPy's expm, norms
    from 0 to about 40 included; the libraries' own pass its check, one 300 eps off does not."""
    import copy

    from scipy.linalg import expm

    from xpnn._dispatch import adapter_of
    from xpnn.torch_nn.utils import parametrizations

    rng = np.random.default_rng(5)
    for scale in (0.0, 0.1, 1.0, 10.0):
        for a in (rng.standard_normal((5, 5)) * scale, rng.standard_normal((3, 4, 4)) * scale):
            got = parametrizations._matrix_exp_series(adapter_of(a), a)
            np.testing.assert_allclose(got, expm(a), rtol=1e-12, atol=1e-13 * max(1.0, np.abs(expm(a)).max()))
    ops = adapter_of(torch.zeros(1))
    assert parametrizations._matrix_exp_disagreement(ops, torch.float32, torch.device("cpu")) is None
    assert parametrizations._matrix_exp_disagreement(ops, torch.float64, torch.device("cpu")) is None
    wrong = copy.copy(ops)
    wrong.fused_matrix_exp = lambda a: torch.linalg.matrix_exp(a) + 300 * torch.finfo(a.dtype).eps
    assert "matrix exponential" in parametrizations._matrix_exp_disagreement(wrong, torch.float64, torch.device("cpu"))


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda: nn.utils.parametrizations.orthogonal(nn.Linear(3, 3), "bias"), ValueError,
     r"orthogonal: Expected a matrix or batch of matrices\. Got a tensor of 1 dimensions\."),
    (lambda: nn.utils.parametrizations.orthogonal(nn.Linear(3, 3), "nothing"), ValueError,
     r"orthogonal: Module 'Linear\(in_features=3, out_features=3, bias=True\)' has no parameter or buffer with name "
     r"'nothing'"),
    (lambda: nn.utils.parametrizations.orthogonal(nn.Linear(3, 3), orthogonal_map="qr"), ValueError,
     r'orthogonal_map has to be one of "matrix_exp", "cayley", "householder"\. Got: qr'),
    (lambda: setattr(nn.utils.parametrizations.orthogonal(nn.Linear(3, 3), use_trivialization=False), "weight",
                     np.eye(3, dtype=np.float32)), NotImplementedError,
     r"It is not possible to assign to the matrix exponential or the Cayley parametrizations"),
])
def test_orthogonal_errors_as_torchs(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_a_custom_parametrization_and_assignment_as_torchs():
    """torch's documented example: a symmetric weight, assigned through ``right_inverse``."""
    class Symmetric(nn.Module):
        def forward(self, x):
            return np.triu(x) + np.triu(x, 1).T

        def right_inverse(self, a):
            return np.triu(a)

    layer = nn.Linear(3, 3)
    nn.utils.parametrize.register_parametrization(layer, "weight", Symmetric())
    assert nn.utils.parametrize.is_parametrized(layer) and nn.utils.parametrize.is_parametrized(layer, "weight")
    assert nn.utils.parametrize.type_before_parametrizations(layer) is nn.Linear
    np.testing.assert_array_equal(layer.weight, layer.weight.T)
    target = np.arange(9, dtype=np.float32).reshape(3, 3)
    layer.weight = target + target.T
    np.testing.assert_array_equal(layer.weight, target + target.T)
    np.testing.assert_array_equal(layer.parametrizations.weight.original, np.triu(target + target.T))
    with nn.utils.parametrize.cached():
        np.testing.assert_allclose(layer(np.eye(3, dtype=np.float32)) - layer.bias, (target + target.T).T, rtol=1e-6)
    nn.utils.parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
    assert type(layer) is nn.Linear and not nn.utils.parametrize.is_parametrized(layer)
    np.testing.assert_array_equal(layer.weight, np.triu(target + target.T))


@pytest.mark.parametrize("style", ["weight_norm", "orthogonal"])
def test_transferred_parametrizations_share_the_originals_as_torchs(style):
    """``transfer_parametrizations_and_params``: to a layer of its own tensor, and to a bare
    module that lacks it; the originals are the same arrays; the outputs torch's."""
    torch.manual_seed(0)
    outcomes, states = [], []
    for library, kwargs in ((torch.nn, {}), (nn, {"like": torch})):
        source = getattr(library.utils.parametrizations, style)(library.Linear(3, 3, **kwargs).double())
        target, bare = library.Linear(3, 3, **kwargs).double(), library.Module()
        if library is nn:  # torch's values before the transfer (orthogonal's shared base takes the target's)
            for module, state in zip((source, target), states):
                module.load_state_dict(state)
        else:
            states = [{k: v.clone() for k, v in module.state_dict().items()} for module in (source, target)]
        library.utils.parametrize.transfer_parametrizations_and_params(source, target)
        library.utils.parametrize.transfer_parametrizations_and_params(source, bare, "weight")
        for module in (target, bare):
            assert all(getattr(module.parametrizations.weight, name) is getattr(source.parametrizations.weight, name)
                       for name, _ in source.parametrizations.weight.named_parameters())
        outcomes.append((source, target, bare))
    for (want_source, want_target, want_bare), (source, target, bare) in zip(outcomes[:1], outcomes[1:]):
        x = torch.randn(2, 3, dtype=torch.float64)
        for got, want in ((source(x), want_source(x)), (target.weight, want_target.weight),
                          (bare.weight, want_bare.weight)):
            np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-12, atol=1e-14)
        assert [n for n, _ in bare.named_parameters()] == [n for n, _ in want_bare.named_parameters()]


def test_normalization_errors_are_named():
    layer = nn.utils.parametrizations.weight_norm(nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"parametrize.remove_parametrizations: Module ParametrizedLinear does not "
                                         r"have a parametrization on bias"):
        nn.utils.parametrize.remove_parametrizations(layer, "bias")
    with pytest.raises(ValueError, match=r"register_parametrization: Module 'Linear' does not have a parameter, a "
                                         r"buffer, or a parametrized element with name 'kernel'"):
        nn.utils.parametrize.register_parametrization(nn.Linear(2, 2), "kernel", nn.Identity())
    with pytest.raises(ValueError, match=r"remove_weight_norm: weight_norm of 'weight' not found in"):
        nn.utils.remove_weight_norm(nn.Linear(2, 2))
    with pytest.warns(FutureWarning), pytest.raises(RuntimeError, match=r"weight_norm: Cannot register two "
                                                                        r"weight_norm hooks on the same parameter"):
        nn.utils.weight_norm(nn.utils.weight_norm(nn.Linear(2, 2)))
    with pytest.raises(ValueError, match=r"spectral_norm: Expected n_power_iterations to be positive, but got "
                                         r"n_power_iterations=0"):
        nn.utils.spectral_norm(nn.Linear(2, 2), n_power_iterations=0)
    with pytest.raises(ValueError, match=r"remove_spectral_norm: spectral_norm of 'weight' not found in"):
        nn.utils.remove_spectral_norm(nn.Linear(2, 2))


# -- the Module API of training loops -----------------------------------------------------------

def test_zero_grad_and_requires_grad_as_torchs():
    reference, model = _trained_twins()
    for layer in (reference, model):
        layer.zero_grad(set_to_none=False)
    assert all(float(p.grad.abs().sum()) == 0 for p in model.parameters())
    for layer in (reference, model):
        layer.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    weights = list(model.parameters())
    assert model.requires_grad_(False) is model
    assert [p.requires_grad for p in model.parameters()] == [False] * 3 and list(model.parameters()) == weights
    model.requires_grad_()
    assert all(p.requires_grad and p.is_leaf for p in model.parameters())
    numpy_model = nn.Linear(2, 2)
    numpy_model.zero_grad(), numpy_model.requires_grad_(False)  # no gradients to clear, none to track
    np.testing.assert_array_equal(numpy_model(np.ones((1, 2), np.float32)).shape, (1, 2))


def test_buffer_and_set_submodule_as_torchs():
    class Counter(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.count = nn.Buffer(np.zeros(1))
            self.scratch = nn.Buffer(np.ones(2), persistent=False)
            self.inner = nn.Sequential(nn.Linear(2, 2), nn.ReLU())

    module = Counter()
    assert [name for name, _ in module.named_buffers()] == ["count", "scratch"]
    assert list(module.state_dict()) == ["count", "inner.0.weight", "inner.0.bias"]
    module.set_submodule("inner.1", nn.Tanh())
    assert isinstance(module.inner[1], nn.Tanh)
    module.set_submodule("inner.2", nn.Identity())
    with pytest.raises(AttributeError, match=r"Sequential has no attribute `3`"):
        module.set_submodule("inner.3", nn.Identity(), strict=True)
    with pytest.raises(AttributeError, match=r"Counter has no attribute `missing`"):
        module.set_submodule("missing.0", nn.Identity())

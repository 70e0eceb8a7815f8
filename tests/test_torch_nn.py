"""xpnn.torch_nn against torch.nn itself: each module built in torch, its ``state_dict`` loaded into
the xpnn twin on every backend, and torch's outputs (and updated buffers) back, in float32 and
float64; on torch, gradients with respect to inputs and parameters equal torch's."""
from __future__ import annotations

import math
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch

import xpnn
import xpnn.torch_nn as nn
import xpnn.torch_nn.functional as F

TOLERANCE = {"float32": dict(rtol=3e-5, atol=3e-6), "float64": dict(rtol=1e-11, atol=1e-12)}
#: Backends the state_dict proof runs on (Dask and array-api-strict take the functional tests).
MODULE_BACKENDS = ("numpy", "torch", "jax")


def floats(*shape: int, seed: int = 0, scale: float = 2.0) -> np.ndarray:
    values = np.random.default_rng(seed).standard_normal(shape) * scale
    flat = values.reshape(-1)
    flat[:4] = [0.0, -0.0, 1.0, -1.0][:flat.size]  # kinks and zeros of the activations
    return values


def indices(*shape: int, high: int = 10) -> np.ndarray:
    return np.random.default_rng(1).integers(0, high, shape)


#: name, constructor args, kwargs, inputs (numpy; float inputs take the test's dtype), forward kwargs, train mode.
CASES = [
    ("ELU", (), {}, [floats(2, 3, 5)], {}, False),
    ("ELU", (0.5,), {}, [floats(2, 3, 5)], {}, False),
    ("CELU", (), {"alpha": 1.5}, [floats(2, 3, 5)], {}, False),
    ("GELU", (), {}, [floats(2, 3, 5)], {}, False),
    ("GELU", (), {"approximate": "tanh"}, [floats(2, 3, 5)], {}, False),
    ("GLU", (), {"dim": 1}, [floats(2, 4, 5)], {}, False),
    ("Hardshrink", (0.3,), {}, [floats(2, 3, 5)], {}, False),
    ("Hardsigmoid", (), {}, [floats(2, 3, 5, scale=4.0)], {}, False),
    ("Hardswish", (), {}, [floats(2, 3, 5, scale=4.0)], {}, False),
    ("Hardtanh", (-2.0, 0.5), {}, [floats(2, 3, 5)], {}, False),
    ("LeakyReLU", (0.2,), {}, [floats(2, 3, 5)], {}, False),
    ("LogSigmoid", (), {}, [floats(2, 3, 5, scale=10.0)], {}, False),
    ("Mish", (), {}, [floats(2, 3, 5)], {}, False),
    ("PReLU", (), {}, [floats(2, 3, 5)], {}, False),
    ("PReLU", (3,), {"init": 0.1}, [floats(2, 3, 5)], {}, False),
    ("ReLU", (), {}, [floats(2, 3, 5)], {}, False),
    ("ReLU6", (), {}, [floats(2, 3, 5, scale=5.0)], {}, False),
    ("RReLU", (0.1, 0.3), {}, [floats(2, 3, 5)], {}, False),
    ("SELU", (), {}, [floats(2, 3, 5)], {}, False),
    ("SiLU", (), {}, [floats(2, 3, 5)], {}, False),
    ("Sigmoid", (), {}, [floats(2, 3, 5)], {}, False),
    ("Softplus", (), {"beta": 2.0, "threshold": 5.0}, [floats(2, 3, 5, scale=4.0)], {}, False),
    ("Softplus", (), {}, [floats(2, 3, 5, scale=30.0)], {}, False),
    ("Softshrink", (0.3,), {}, [floats(2, 3, 5)], {}, False),
    ("Softsign", (), {}, [floats(2, 3, 5)], {}, False),
    ("Tanh", (), {}, [floats(2, 3, 5)], {}, False),
    ("Tanhshrink", (), {}, [floats(2, 3, 5)], {}, False),
    ("Threshold", (0.1, 20.0), {}, [floats(2, 3, 5)], {}, False),
    ("Softmax", (), {"dim": 1}, [floats(2, 3, 5)], {}, False),
    ("Softmin", (), {"dim": 0}, [floats(2, 3, 5)], {}, False),
    ("LogSoftmax", (), {"dim": -1}, [floats(2, 3, 5)], {}, False),
    ("Identity", (), {}, [floats(2, 3)], {}, False),
    ("Linear", (5, 4), {}, [floats(2, 3, 5)], {}, False),
    ("Linear", (5, 4), {"bias": False}, [floats(5)], {}, False),
    ("Bilinear", (5, 3, 4), {}, [floats(2, 5), floats(2, 3, seed=1)], {}, False),
    ("Embedding", (10, 4), {"padding_idx": 2}, [indices(2, 3)], {}, False),
    ("Dropout", (0.3,), {}, [floats(2, 3)], {}, False),
    ("Flatten", (), {}, [floats(2, 3, 4, 5)], {}, False),
    ("Flatten", (0, 1), {}, [floats(2, 3, 4)], {}, False),
    ("LayerNorm", (5,), {}, [floats(2, 3, 5)], {}, False),
    ("LayerNorm", ((3, 5),), {"eps": 1e-3, "bias": False}, [floats(2, 3, 5)], {}, False),
    ("RMSNorm", (5,), {}, [floats(2, 3, 5)], {}, False),
    ("RMSNorm", ((3, 5),), {"eps": 1e-3}, [floats(2, 3, 5)], {}, False),
    ("GroupNorm", (2, 4), {}, [floats(2, 4, 3, 3)], {}, False),
    ("GroupNorm", (4, 4), {"affine": False}, [floats(2, 4, 5)], {}, False),
    ("BatchNorm1d", (3,), {}, [floats(4, 3)], {}, True),
    ("BatchNorm1d", (3,), {"momentum": None}, [floats(4, 3, 5)], {}, True),
    ("BatchNorm2d", (4,), {}, [floats(2, 4, 3, 3)], {}, True),
    ("BatchNorm2d", (4,), {}, [floats(2, 4, 3, 3)], {}, False),
    ("BatchNorm2d", (4,), {"affine": False, "track_running_stats": False}, [floats(2, 4, 3, 3)], {}, False),
    ("Conv1d", (3, 4, 3), {"padding": 1}, [floats(2, 3, 7)], {}, False),
    ("Conv1d", (4, 4, 3), {"groups": 2, "padding": "same", "dilation": 2}, [floats(2, 4, 9)], {}, False),
    ("Conv2d", (4, 6, 3), {"stride": 2, "padding": 1}, [floats(2, 4, 7, 6)], {}, False),
    ("Conv2d", (4, 4, (3, 2)), {"groups": 2, "dilation": (2, 1), "bias": False}, [floats(2, 4, 7, 6)], {}, False),
    ("Conv2d", (3, 2, 3), {"padding": 1, "padding_mode": "reflect"}, [floats(3, 5, 5)], {}, False),
    ("Conv2d", (3, 2, 3), {"padding": (1, 2), "padding_mode": "circular"}, [floats(1, 3, 5, 5)], {}, False),
    ("Conv2d", (3, 2, 5), {"padding": "valid"}, [floats(1, 3, 6, 5)], {}, False),
    ("ConvTranspose2d", (4, 6, 3), {"stride": 2, "padding": 1, "output_padding": 1}, [floats(2, 4, 5, 4)], {},
     False),
    ("ConvTranspose2d", (4, 6, (3, 2)), {"groups": 2, "dilation": 2}, [floats(2, 4, 3, 4)], {}, False),
    ("MaxPool2d", (3, 2), {"padding": 1}, [floats(2, 3, 7, 6)], {}, False),
    ("MaxPool2d", (2,), {"ceil_mode": True, "dilation": (1, 2)}, [floats(2, 3, 7, 9)], {}, False),
    ("AvgPool2d", (3, 2), {"padding": 1}, [floats(2, 3, 7, 6)], {}, False),
    ("AvgPool2d", (3, 2), {"padding": 1, "count_include_pad": False, "ceil_mode": True}, [floats(2, 3, 8, 6)], {},
     False),
    ("AvgPool2d", ((2, 3),), {"ceil_mode": True}, [floats(3, 7, 8)], {}, False),
    ("AvgPool2d", (2,), {"divisor_override": 3}, [floats(2, 3, 6, 6)], {}, False),
    ("LSTM", (5, 6), {"num_layers": 2, "bidirectional": True}, [floats(4, 2, 5)], {}, False),
    ("LSTM", (5, 6), {"batch_first": True, "bias": False}, [floats(2, 4, 5)], {}, False),
    ("GRU", (5, 6), {"batch_first": True, "num_layers": 2}, [floats(2, 4, 5)], {}, False),
    ("GRU", (5, 6), {"bidirectional": True}, [floats(4, 5)], {}, False),
    ("MultiheadAttention", (8, 2), {}, [floats(4, 2, 8), floats(5, 2, 8, seed=1), floats(5, 2, 8, seed=2)], {},
     False),
    ("MultiheadAttention", (8, 2), {"batch_first": True, "add_bias_kv": True, "add_zero_attn": True},
     [floats(2, 4, 8), floats(2, 5, 8, seed=1), floats(2, 5, 8, seed=2)],
     {"key_padding_mask": np.array([[False] * 4 + [True], [False] * 5]), "average_attn_weights": False}, False),
    ("MultiheadAttention", (8, 4), {"kdim": 3, "vdim": 5, "bias": False},
     [floats(4, 8), floats(6, 3, seed=1), floats(6, 5, seed=2)],
     {"attn_mask": np.triu(np.ones((4, 6), bool), 1)}, False),
    ("MultiheadAttention", (8, 2), {}, [floats(4, 2, 8), floats(5, 2, 8, seed=1), floats(5, 2, 8, seed=2)],
     {"attn_mask": floats(4, 5, seed=3), "need_weights": False}, False),
    ("TransformerEncoderLayer", (8, 2, 16), {"dropout": 0.0}, [floats(5, 2, 8)], {}, True),
    ("TransformerEncoderLayer", (8, 2, 16), {"norm_first": True, "activation": "gelu", "batch_first": True},
     [floats(2, 5, 8)], {"src_key_padding_mask": np.array([[False] * 4 + [True], [False] * 5])}, False),
]


def _label(case: tuple) -> str:
    name, args, kwargs = case[:3]
    shown = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
    return f"{name}({shown}){'-train' if case[5] else ''}"


def _torch_module(name: str, args: tuple, kwargs: dict, dtype: str, train: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    module = getattr(torch.nn, name)(*args, **kwargs).to(getattr(torch, dtype))
    return module.train(train)


def _inputs(arrays: list, forward_kwargs: dict, dtype: str, convert) -> tuple[list, dict]:
    def made(a: np.ndarray):
        return convert(a, dtype if a.dtype.kind == "f" else a.dtype.name)
    return [made(a) for a in arrays], {k: made(v) if isinstance(v, np.ndarray) else v
                                       for k, v in forward_kwargs.items()}


def _flat(tree) -> list:
    if isinstance(tree, (tuple, list)):
        return [leaf for item in tree for leaf in _flat(item)]
    return [tree]


def _torch_numpy(t) -> np.ndarray | None:
    return None if t is None else t.detach().numpy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=_label)
def test_state_dict_gives_torchs_outputs(backend, case, dtype):
    if backend.name not in MODULE_BACKENDS:
        pytest.skip("the state_dict proof runs on numpy, torch and jax (cupy on a GPU)")
    name, args, kwargs, arrays, forward_kwargs, train = case
    reference = _torch_module(name, args, kwargs, dtype, train)
    twin = getattr(nn, name)(*args, **kwargs).to(like=backend.like(), dtype=dtype).train(train)
    twin.load_state_dict(reference.state_dict())
    t_args, t_kwargs = _inputs(arrays, forward_kwargs, dtype, lambda a, d: torch.from_numpy(np.asarray(a, d)))
    x_args, x_kwargs = _inputs(arrays, forward_kwargs, dtype, backend.asarray)
    want = _flat(reference(*t_args, **t_kwargs))
    got = _flat(twin(*x_args, **x_kwargs))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if w is None:
            assert g is None
            continue
        assert type(g) is type(x_args[0]) or backend.name == "jax"
        np.testing.assert_allclose(backend.to_numpy(g), _torch_numpy(w), **TOLERANCE[dtype])
    # running statistics (BatchNorm in training) and every parameter after the call
    for key, value in reference.state_dict().items():
        np.testing.assert_allclose(backend.to_numpy(twin.state_dict()[key]), value.numpy(), **TOLERANCE[dtype],
                                   err_msg=key)


GRADIENT_CASES = [case for case in CASES if case[0] in {
    "PReLU", "Linear", "Bilinear", "LayerNorm", "RMSNorm", "GroupNorm", "BatchNorm2d", "Conv1d", "Conv2d",
    "ConvTranspose2d", "LSTM", "GRU", "MultiheadAttention", "TransformerEncoderLayer", "Softplus", "GELU"}]


@pytest.mark.parametrize("case", GRADIENT_CASES, ids=_label)
def test_gradients_equal_torchs(case):
    name, args, kwargs, arrays, forward_kwargs, train = case
    reference = _torch_module(name, args, kwargs, "float64", train)
    twin = getattr(nn, name)(*args, **kwargs).to(like=torch, dtype="float64").train(train)
    twin.load_state_dict(reference.state_dict())
    grads = []
    for module in (reference, twin):
        inputs, extra = _inputs(arrays, forward_kwargs, "float64",
                                lambda a, d: torch.tensor(a, dtype=getattr(torch, d),
                                                          requires_grad=d.startswith("float")))
        outputs = [o for o in _flat(module(*inputs, **extra)) if o is not None]
        loss = sum((o * torch.linspace(-1, 2, o.numel(), dtype=o.dtype).reshape(o.shape)).sum() for o in outputs)
        loss.backward()
        named = dict(module.named_parameters())
        grads.append(([i.grad for i in inputs if i.requires_grad], {k: named[k].grad for k in sorted(named)}))
    (want_inputs, want_params), (got_inputs, got_params) = grads
    for g, w in zip(got_inputs, want_inputs):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-9, atol=1e-11)
    assert sorted(got_params) == sorted(want_params)
    for key in want_params:
        np.testing.assert_allclose(got_params[key].numpy(), want_params[key].numpy(), rtol=1e-9, atol=1e-11,
                                   err_msg=key)

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
    ("Conv2d", (3, 2, (2, 3)), {"padding": "same", "padding_mode": "replicate"}, [floats(1, 3, 6, 5)], {}, False),
    ("Conv1d", (3, 2, 4), {"padding": "same", "padding_mode": "reflect", "dilation": 2}, [floats(2, 3, 9)], {},
     False),
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


@pytest.mark.parametrize("case", CASES, ids=_label)
def test_modules_print_and_name_their_state_as_torch(case):
    """The repr, the parameter names, and the state_dict's keys, order, shapes and dtypes."""
    name, args, kwargs = case[:3]
    reference = _torch_module(name, args, kwargs, "float32", False)
    twin = getattr(nn, name)(*args, **kwargs)
    assert repr(twin) == repr(reference)
    assert [n for n, _ in twin.named_parameters()] == [n for n, _ in reference.named_parameters()]
    assert [n for n, _ in twin.named_buffers()] == [n for n, _ in reference.named_buffers()]
    mine, theirs = twin.state_dict(), reference.state_dict()
    assert list(mine) == list(theirs)
    for key in theirs:
        assert tuple(mine[key].shape) == tuple(theirs[key].shape), key
        assert str(mine[key].dtype) == str(theirs[key].dtype).removeprefix("torch."), key
    assert [type(m).__name__ for m in twin.modules()] == [type(m).__name__ for m in reference.modules()]


def _weights(*shape: int, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape) * 0.5


#: name, positional arrays (numpy), other positional args, kwargs.
FUNCTIONAL_CASES = [
    *[(name, [floats(3, 4, 5)], (), {}) for name in (
        "elu", "celu", "gelu", "hardshrink", "hardsigmoid", "hardswish", "hardtanh", "leaky_relu", "logsigmoid",
        "mish", "relu", "relu6", "selu", "silu", "sigmoid", "softplus", "softshrink", "softsign", "tanh",
        "tanhshrink", "normalize")],
    ("gelu", [floats(3, 4, 5)], (), {"approximate": "tanh"}),
    ("elu", [floats(3, 4, 5)], (0.3,), {}),
    ("glu", [floats(4, 3)], (), {"dim": 0}),
    ("hardtanh", [floats(3, 4, 5)], (-0.5, 2.0), {}),
    ("softplus", [floats(3, 4, 5, scale=8.0)], (), {"beta": 0.5, "threshold": 3.0}),
    ("threshold", [floats(3, 4, 5)], (0.5, -1.0), {}),
    ("rrelu", [floats(3, 4, 5)], (0.2, 0.4), {}),
    ("prelu", [floats(3, 4, 5), _weights(4)], (), {}),
    ("softmax", [floats(3, 4, 5)], (), {"dim": 1}),
    ("softmin", [floats(3, 4, 5)], (), {"dim": 0}),
    ("log_softmax", [floats(3, 4, 5)], (), {"dim": -1}),
    ("normalize", [floats(3, 4, 5)], (), {"p": 1.0, "dim": 0}),
    ("normalize", [floats(3, 4, 5)], (), {"p": math.inf, "dim": -1}),
    ("normalize", [floats(3, 4, 5)], (), {"p": 3.0}),
    ("linear", [floats(3, 5), _weights(4, 5), _weights(4, seed=6)], (), {}),
    ("bilinear", [floats(3, 5), floats(3, 2, seed=1), _weights(4, 5, 2), _weights(4, seed=6)], (), {}),
    ("conv1d", [floats(2, 4, 9), _weights(6, 2, 3)], (), {"groups": 2, "stride": 2, "padding": 2}),
    ("conv2d", [floats(2, 3, 7, 6), _weights(4, 3, 3, 3), _weights(4, seed=6)], (), {"padding": "same",
                                                                                       "dilation": 2}),
    ("conv_transpose2d", [floats(2, 4, 4, 5), _weights(4, 3, 3, 2)], (), {"stride": (2, 1), "groups": 2,
                                                                          "padding": 1, "output_padding": (1, 0)}),
    ("max_pool2d", [floats(2, 3, 7, 6)], (3,), {"stride": 2, "padding": 1, "ceil_mode": True}),
    ("avg_pool2d", [floats(2, 3, 7, 6)], ((3, 2),), {"padding": (1, 0), "count_include_pad": False}),
    ("layer_norm", [floats(3, 4, 5)], ((4, 5),), {"weight": _weights(4, 5), "bias": _weights(4, 5, seed=6)}),
    ("rms_norm", [floats(3, 4, 5)], ((5,),), {"weight": _weights(5)}),
    ("batch_norm", [floats(3, 4, 5), _weights(4), np.abs(_weights(4, seed=6))], (), {"weight": _weights(4, seed=7)}),
    ("batch_norm", [floats(3, 4, 5, 2)], (None, None), {"training": True, "bias": _weights(4, seed=7)}),
    ("embedding", [indices(3, 4), _weights(10, 3)], (), {}),
    ("group_norm", [floats(3, 4, 5)], (2,), {"eps": 1e-3}),
    ("scaled_dot_product_attention", [floats(2, 3, 4, 8), floats(2, 3, 5, 8, seed=1), floats(2, 3, 5, 8, seed=2)],
     (), {"is_causal": True}),
    ("scaled_dot_product_attention", [floats(2, 4, 8), floats(2, 5, 8, seed=1), floats(2, 5, 6, seed=2),
                                      np.random.default_rng(3).random((4, 5)) > 0.3], (), {"scale": 0.2}),
    ("scaled_dot_product_attention", [floats(2, 4, 3, 8), floats(2, 2, 5, 8, seed=1), floats(2, 2, 5, 8, seed=2),
                                      floats(3, 5, seed=4)], (), {"enable_gqa": True}),
]


@pytest.mark.parametrize("case", FUNCTIONAL_CASES, ids=lambda c: f"{c[0]}{c[2]}{c[3]}")
def test_functional_equals_torchs(backend, case):
    """Every function of ``xpnn.torch_nn.functional`` against ``torch.nn.functional`` (float32,
    torch's defaults), on every backend."""
    name, arrays, args, kwargs = case

    def made(convert):
        def one(a):
            return convert(a, "float32" if a.dtype.kind == "f" else a.dtype.name) if isinstance(a, np.ndarray) else a
        return [one(a) for a in arrays], {k: one(v) for k, v in kwargs.items()}

    t_arrays, t_kwargs = made(lambda a, d: torch.from_numpy(np.asarray(a, d)))
    want = getattr(torch.nn.functional, name)(*t_arrays, *args, **t_kwargs)
    inputs, x_kwargs = made(backend.asarray)
    got = getattr(F, name)(*inputs, *args, **x_kwargs)
    assert type(got) is type(inputs[0])
    np.testing.assert_allclose(backend.to_numpy(got), want.numpy(), rtol=3e-5, atol=3e-6)


def test_functional_names_and_defaults_are_torchs():
    """Every name exists in torch.nn.functional with the same keywords and defaults (xpnn adds keyword-only ones)."""
    import inspect

    checked = 0
    for name in F.__all__:
        try:
            theirs = inspect.signature(getattr(torch.nn.functional, name)).parameters
        except ValueError:  # a C builtin without a signature: its defaults are checked by value above
            continue
        checked += 1
        mine = inspect.signature(getattr(F, name)).parameters
        for parameter in theirs.values():
            if parameter.kind in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL):
                continue
            assert parameter.name in mine, (name, parameter.name)
            assert mine[parameter.name].default == parameter.default, (name, parameter.name)
    assert checked >= 30


def test_gelu_refuses_strings_in_both_namespaces():
    x = np.ones(3, np.float32)
    with pytest.raises(ValueError, match=r"xpnn\.torch_nn\.functional\.gelu: approximate must be 'none' or 'tanh'"):
        F.gelu(x, approximate="exact")
    with pytest.raises(ValueError, match=r"xpnn\.gelu: approximate must be True or False.*'none'"):
        xpnn.gelu(x, approximate="none")
    np.testing.assert_allclose(F.gelu(x), torch.nn.functional.gelu(torch.ones(3)).numpy(), rtol=1e-6)


def test_softmax_without_dim_warns_and_takes_torchs_implicit_dim():
    x = floats(2, 3, 4)
    with pytest.warns(UserWarning, match="implicit dimension"):
        got = F.softmax(x)
    with pytest.warns(UserWarning):
        want = torch.nn.functional.softmax(torch.from_numpy(x))
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-12)


@pytest.mark.parametrize("library", ["numpy", "torch", "jax"])
def test_inplace_writes_where_arrays_are_mutable(library):
    """``inplace=True`` returns the input itself, changed, on NumPy and torch; a new array on jax."""
    from xpnn.conformance.backends import available

    backend = {b.name: b for b in available()}[library]
    x = backend.asarray(floats(3, 4), "float32")
    before = backend.to_numpy(x).copy()
    y = nn.ReLU(inplace=True)(x)
    np.testing.assert_array_equal(backend.to_numpy(y), np.maximum(before, 0))
    if library == "jax":
        np.testing.assert_array_equal(backend.to_numpy(x), before)
    else:
        assert y is x


def test_errors_name_the_function_and_argument():
    x = floats(2, 3, 5, 5).astype(np.float32)
    with pytest.raises(ValueError, match=r"xpnn\.torch_nn\.functional\.conv2d: input has 3 channels"):
        F.conv2d(x, np.ones((4, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"xpnn\.torch_nn\.functional\.dropout: dropout probability"):
        F.dropout(x, 1.5)
    with pytest.raises(ValueError, match=r"xpnn\.torch_nn\.functional\.max_pool2d: padding"):
        F.max_pool2d(x, 2, padding=2)
    with pytest.raises(TypeError, match=r"xpnn\.torch_nn\.functional\.embedding: input must hold integer"):
        F.embedding(x, np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"xpnn\.torch_nn\.GroupNorm: num_channels \(5\) must be divisible"):
        nn.GroupNorm(2, 5)
    with pytest.raises(ValueError, match=r"xpnn\.torch_nn\.BatchNorm2d: expected 4D input \(got 3D input\)"):
        nn.BatchNorm2d(3)(x[0])


class TorchCNN(torch.nn.Module):
    """A small torchvision-free CNN, as a torch user writes it."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
            torch.nn.MaxPool2d(2), torch.nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=2), torch.nn.GELU(),
            torch.nn.AvgPool2d(2), torch.nn.Flatten())
        self.head = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(16 * 2 * 2, 10))

    def forward(self, x):
        return self.head(self.features(x))


def xpnn_cnn(**factory) -> nn.Module:
    """The same model in xpnn.torch_nn: the definition with only the import changed."""
    model = nn.Module()
    model.features = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, **factory), nn.BatchNorm2d(8, **factory), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=2, **factory), nn.GELU(), nn.AvgPool2d(2), nn.Flatten())
    model.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(16 * 2 * 2, 10, **factory))
    model.forward = lambda x: model.head(model.features(x))
    return model


def _trained_torch_cnn() -> TorchCNN:
    torch.manual_seed(0)
    model = TorchCNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    images = torch.randn(8, 3, 16, 16)
    for _ in range(2):  # the running statistics move away from their initial values
        optimizer.zero_grad()
        model(images).square().mean().backward()
        optimizer.step()
    return model.eval()


@pytest.mark.parametrize("library", ["numpy", "jax"])
def test_torch_cnn_checkpoint_from_disk_runs_on_numpy_and_jax(tmp_path, library):
    reference = _trained_torch_cnn()
    torch.save(reference.state_dict(), tmp_path / "cnn.pt")
    state = torch.load(tmp_path / "cnn.pt")
    from xpnn.conformance.backends import available

    backend = {b.name: b for b in available()}[library]
    twin = xpnn_cnn(like=backend.like()).eval()
    twin.load_state_dict(state)
    images = np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32)
    got = twin(backend.asarray(images, "float32"))
    want = reference(torch.from_numpy(images)).detach().numpy()
    np.testing.assert_allclose(backend.to_numpy(got), want, rtol=1e-4, atol=1e-5)
    # and back: the twin's state_dict loads into a fresh torch model, which then answers the same
    fresh = TorchCNN().eval()
    fresh.load_state_dict({k: torch.from_numpy(np.array(backend.to_numpy(v))) for k, v in twin.state_dict().items()})
    np.testing.assert_allclose(fresh(torch.from_numpy(images)).detach().numpy(), want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("library", ["numpy", "jax"])
def test_torch_transformer_encoder_runs_on_numpy_and_jax(tmp_path, library):
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.1, batch_first=True)
    reference = torch.nn.TransformerEncoder(layer, 2, norm=torch.nn.LayerNorm(16), enable_nested_tensor=False).eval()
    torch.save(reference.state_dict(), tmp_path / "encoder.pt")
    from xpnn.conformance.backends import available

    backend = {b.name: b for b in available()}[library]
    twin = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 4, 32, dropout=0.1, batch_first=True), 2,
                                 norm=nn.LayerNorm(16)).to(like=backend.like()).eval()
    twin.load_state_dict(torch.load(tmp_path / "encoder.pt"))
    tokens = np.random.default_rng(0).standard_normal((3, 7, 16)).astype(np.float32)
    causal = np.triu(np.full((7, 7), -np.inf, np.float32), 1)
    want = reference(torch.from_numpy(tokens), mask=torch.from_numpy(causal)).detach().numpy()
    got = twin(backend.asarray(tokens, "float32"), mask=backend.asarray(causal, "float32"))
    np.testing.assert_allclose(backend.to_numpy(got), want, rtol=1e-4, atol=1e-5)


def test_torch_optimizer_trains_an_xpnn_model_as_torchs():
    """On torch, parameters are leaf tensors: torch.optim.SGD steps an xpnn.torch_nn model exactly as
    the torch.nn model with the same weights."""
    torch.manual_seed(0)
    reference = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    twin = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)).to(like=torch, dtype="float64")
    twin.load_state_dict(reference.state_dict())
    assert all(p.is_leaf and p.requires_grad for p in twin.parameters())
    x, y = torch.randn(16, 4, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)
    for model in (reference, twin):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for _ in range(5):
            optimizer.zero_grad()
            (model(x) - y).square().mean().backward()
            optimizer.step()
    for key, value in reference.state_dict().items():
        np.testing.assert_allclose(twin.state_dict()[key].numpy(), value.numpy(), rtol=1e-12, err_msg=key)


def test_jax_grad_through_functional_call_equals_torchs():
    import jax
    import jax.numpy as jnp

    torch.manual_seed(0)
    reference = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.LayerNorm(8),
                                    torch.nn.Linear(8, 1)).double()
    twin = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.LayerNorm(8), nn.Linear(8, 1)).to(like=jnp, dtype="float64")
    twin.load_state_dict(reference.state_dict())
    x = np.random.default_rng(0).standard_normal((5, 4))

    def loss(params):
        return jnp.sum(nn.functional_call(twin, params, (jnp.asarray(x),)) ** 2)

    grads = jax.jit(jax.grad(loss))(dict(twin.named_parameters()))
    reference(torch.from_numpy(x)).square().sum().backward()
    for name, parameter in reference.named_parameters():
        np.testing.assert_allclose(np.asarray(grads[name]), parameter.grad.numpy(), rtol=1e-10, err_msg=name)
    assert set(grads) == {name for name, _ in reference.named_parameters()}


def test_same_seed_gives_the_same_parameters_on_every_backend(backend):
    nn.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 4), nn.Conv2d(2, 3, 3), nn.MultiheadAttention(8, 2), nn.Embedding(4, 3))
    on_numpy = {k: np.asarray(v) for k, v in model.state_dict().items()}
    nn.manual_seed(3)
    here = nn.Sequential(nn.Linear(5, 4, like=backend.like()), nn.Conv2d(2, 3, 3, like=backend.like()),
                         nn.MultiheadAttention(8, 2, like=backend.like()), nn.Embedding(4, 3, like=backend.like()))
    for key, value in here.state_dict().items():
        assert type(value) is type(backend.like()) or backend.name == "jax"
        if key.startswith("3."):  # the normal draws: erf_inv is each library's own, a few ulp apart
            np.testing.assert_allclose(backend.to_numpy(value), on_numpy[key], rtol=5e-7, err_msg=key)
        else:  # uniform draws: bit for bit
            np.testing.assert_array_equal(backend.to_numpy(value), on_numpy[key], err_msg=key)


def test_initial_distributions_are_torchs():
    """kaiming_uniform(a=sqrt(5)) weights and fan-in biases: the bounds torch uses, filled."""
    nn.manual_seed(0)
    linear, conv = nn.Linear(400, 300), nn.Conv2d(8, 16, 3)
    for array, bound in ((linear.weight, 1 / math.sqrt(400)), (linear.bias, 1 / math.sqrt(400)),
                         (conv.weight, 1 / math.sqrt(72)), (conv.bias, 1 / math.sqrt(72))):
        assert np.abs(array).max() <= bound and np.abs(array).max() > 0.95 * bound
    mha = nn.MultiheadAttention(16, 4)
    assert np.abs(mha.in_proj_weight).max() <= math.sqrt(6 / (48 + 16))
    np.testing.assert_array_equal(mha.in_proj_bias, 0)
    np.testing.assert_array_equal(nn.PReLU(3).weight, np.full(3, 0.25, np.float32))
    embedding = nn.Embedding(5000, 4, padding_idx=1)
    np.testing.assert_array_equal(embedding.weight[1], 0)
    assert abs(float(np.std(embedding.weight)) - 1) < 0.03


def test_dropout_and_rrelu_sample_in_training_and_follow_the_seed(backend):
    x = backend.asarray(np.full((200, 50), -1.0), "float32")
    nn.manual_seed(1)
    dropped = backend.to_numpy(nn.Dropout(0.25)(x))
    assert set(np.unique(dropped)) <= {0.0, np.float32(-1 / 0.75)} and abs((dropped == 0).mean() - 0.25) < 0.02
    nn.manual_seed(1)
    np.testing.assert_array_equal(backend.to_numpy(nn.Dropout(0.25)(x)), dropped)
    np.testing.assert_array_equal(backend.to_numpy(nn.Dropout(0.25).eval()(x)), backend.to_numpy(x))
    slopes = -backend.to_numpy(nn.RReLU(0.1, 0.3)(x))
    assert slopes.min() >= 0.1 and slopes.max() <= 0.3 and abs(slopes.mean() - 0.2) < 0.005
    np.testing.assert_allclose(backend.to_numpy(nn.RReLU(0.1, 0.3).eval()(x)), -0.2, rtol=1e-6)


def test_module_api_as_torchs():
    model = nn.Sequential(OrderedDict(fc=nn.Linear(3, 4), act=nn.ReLU(), out=nn.Linear(4, 2)))
    assert [name for name, _ in model.named_children()] == ["fc", "act", "out"]
    assert model.fc is model[0] and len(model) == 3
    assert not model.eval().training and not model.fc.training and model.train().out.training
    seen = []
    assert model.apply(lambda m: seen.append(type(m).__name__)) is model
    assert seen == ["Linear", "ReLU", "Linear", "Sequential"]
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "out.bias"'):
        model.load_state_dict({k: v for k, v in model.state_dict().items() if k != "out.bias"})
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\) in state_dict: "extra"'):
        model.load_state_dict({**model.state_dict(), "extra": np.ones(1)})
    with pytest.raises(RuntimeError, match=r"size mismatch for fc.weight"):
        model.load_state_dict({**model.state_dict(), "fc.weight": np.ones((2, 2))})
    result = model.load_state_dict({"fc.weight": np.ones((4, 3))}, strict=False)
    assert "fc.bias" in result.missing_keys and result.unexpected_keys == []
    np.testing.assert_array_equal(model.fc.weight, 1)
    layers = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
    heads = nn.ModuleDict({"a": nn.Linear(2, 1)})
    holder = nn.Module()
    holder.layers, holder.heads = layers, heads
    holder.scale = nn.Parameter(np.ones(2, np.float32))
    holder.register_buffer("steps", np.zeros(()), persistent=False)
    assert list(holder.state_dict()) == ["scale", "layers.0.weight", "layers.0.bias", "layers.1.weight",
                                         "layers.1.bias", "heads.a.weight", "heads.a.bias"]
    assert [name for name, _ in holder.named_buffers()] == ["steps"]
    assert pickle.loads(pickle.dumps(model)).state_dict().keys() == model.state_dict().keys()

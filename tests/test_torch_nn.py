"""xpnn.torch_nn against torch.nn itself: each module built in torch, its ``state_dict`` loaded into
the xpnn twin on every backend, and torch's outputs (and updated buffers) back, in float32 and
float64; on torch, gradients with respect to inputs and parameters equal torch's."""
from __future__ import annotations

import contextlib
import itertools
import math
import pickle
import re
import subprocess
import sys
from collections import OrderedDict
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import xpnn
import xpnn.torch_nn as nn
import xpnn.torch_nn.functional as F
from xpnn._dispatch import adapter_of
from xpnn.torch_nn import activation

from xpnn.conformance.backends import available
from xpnn.conformance.torch_nn import (
    FUNCTIONAL_CASES, MODEL_CASES, MODULE_CASES as CASES, flat as _flat, floats, functional_label, indices,
    label as _label, made, torch_module as _torch_module, trained,
)

BACKENDS = {backend.name: backend for backend in available()}


#: Where the state_dict proof runs by default (every backend and dtype with --full; the main
#: job's conformance suite runs them all): jax compiles each function anew, so there only the
#: modules that are more than one of xpnn's activations (those run on jax in test_activations).
_DEFAULT_RUNS = {("numpy", "float32"), ("torch", "float32"), ("jax", "float32"), ("numpy", "float64"),
                 ("torch", "float64")}
_ACTIVATIONS = set(activation.__all__) - {"PReLU"}
#: ... and the whole transformers (their layers' attention runs on jax by default).
_SLOW_ON_JAX = _ACTIVATIONS | {"TransformerDecoderLayer", "Transformer"}


def _later_case(cases: list, index: int) -> bool:
    """Whether ``cases[index]`` is not the first case of its name: on jax (a compile per case)
    only the first of each runs by default, the others with --full (and in the main job)."""
    return any(case[0] == cases[index][0] for case in cases[:index])


def _runs() -> list:
    params = []
    for index, case in enumerate(CASES):
        slow_on_jax = case[0] in _SLOW_ON_JAX or _later_case(CASES, index)
        for name in ("numpy", "torch", "jax", "dask", "array_api_strict"):
            for dtype in ("float32", "float64"):
                if name not in BACKENDS:
                    continue
                default = (name, dtype) in _DEFAULT_RUNS and not (name == "jax" and slow_on_jax)
                params.append(pytest.param(case, name, dtype, id=f"{_label(case)}-{name}-{dtype}",
                                           marks=() if default else pytest.mark.slow))
    return params


#: The functions that only rename an xpnn activation's arguments (run on jax in test_activations),
#: or call another function of the namespace with an argument set (the in-place and
#: ``*_with_indices`` twins, the deprecated ``upsample`` names).
_SHELLS = {"elu", "celu", "gelu", "glu", "hardshrink", "hardsigmoid", "hardswish", "leaky_relu", "logsigmoid",
           "mish", "relu", "relu6", "selu", "silu", "sigmoid", "softshrink", "softsign", "tanh", "tanhshrink",
           "threshold", "rrelu", "prelu", "softmax", "softmin", "log_softmax", "upsample", "upsample_nearest",
           "upsample_bilinear", "native_channel_shuffle", *(name for name in F.__all__
                                                            if name.endswith(("_", "_with_indices")))}


def _passed(checked) -> str:
    """The failure in words for an assertion message."""
    return f"{checked.problem or ''} {checked.comparison}"


@pytest.mark.parametrize("case, backend_name, dtype", _runs())
def test_state_dict_gives_torchs_outputs(case, backend_name, dtype):
    """torch.nn's module, its state_dict loaded into the twin on the backend: torch's outputs and,
    after the call, torch's state (BatchNorm's running statistics), in the backend's library."""
    from xpnn.conformance.torch_nn import run_module

    backend = BACKENDS[backend_name]
    checked = run_module(case, backend, dtype)
    assert checked.passed, _passed(checked)
    assert checked.output.get("library", type(backend.like()).__module__.split(".")[0]) == \
        type(backend.like()).__module__.split(".")[0]


GRADIENT_CASES = [case for case in CASES if case[0] in {
    "PReLU", "Linear", "Bilinear", "LayerNorm", "RMSNorm", "GroupNorm", "BatchNorm2d", "Conv1d", "Conv2d",
    "ConvTranspose2d", "BatchNorm3d", "InstanceNorm2d", "Conv3d", "ConvTranspose1d", "ConvTranspose3d", "MaxPool1d",
    "AvgPool3d", "RNN", "LSTMCell", "GRUCell", "RNNCell", "CrossEntropyLoss", "BCEWithLogitsLoss", "SmoothL1Loss",
    "KLDivLoss", "TransformerDecoderLayer", "Transformer", "LSTM", "GRU", "MultiheadAttention",
    "TransformerEncoderLayer", "Softplus", "GELU", "PoissonNLLLoss", "GaussianNLLLoss", "MarginRankingLoss",
    "HingeEmbeddingLoss", "MultiLabelSoftMarginLoss", "CosineEmbeddingLoss", "TripletMarginLoss",
    "MultiMarginLoss", "MultiLabelMarginLoss", "LPPool1d", "LPPool2d", "LPPool3d", "MaxUnpool2d", "EmbeddingBag",
    "SyncBatchNorm", "AdaptiveLogSoftmaxWithLoss", "LinearCrossEntropyLoss"}]


@pytest.mark.parametrize("case", GRADIENT_CASES, ids=_label)
def test_gradients_equal_torchs(case):
    name, args, kwargs, arrays, forward_kwargs, train = case
    reference = _torch_module(name, args, kwargs, "float64", train)
    twin = getattr(nn, name)(*args, **kwargs).to(like=torch, dtype="float64").train(train)
    twin.load_state_dict(reference.state_dict())
    grads = []
    for module in (reference, twin):
        inputs, extra = made(arrays, forward_kwargs, "float64",
                             lambda a, d: torch.tensor(a, dtype=getattr(torch, d), requires_grad=d.startswith("float")))
        outputs = [o for o in _flat(module(*inputs, **extra)) if o is not None]
        loss = sum((o * torch.linspace(-1, 2, o.numel(), dtype=o.dtype).reshape(o.shape)).sum() for o in outputs)
        loss.backward()
        named = dict(module.named_parameters())
        leaves = _flat(inputs)  # the LSTM cell's (h, c) among them
        grads.append(([i.grad for i in leaves if i.requires_grad], {k: named[k].grad for k in sorted(named)}))
    (want_inputs, want_params), (got_inputs, got_params) = grads
    for g, w in zip(got_inputs, want_inputs):
        assert (g is None) == (w is None)  # a loss's labels: no gradient in either
        if w is not None:
            np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-9, atol=1e-11)
    assert sorted(got_params) == sorted(want_params)
    for key in want_params:
        np.testing.assert_allclose(got_params[key].numpy(), want_params[key].numpy(), rtol=1e-9, atol=1e-11,
                                   err_msg=key)


@pytest.mark.parametrize("case", CASES, ids=_label)
def test_modules_print_and_name_their_state_as_torch(case):
    """The repr, the parameter names, and the state_dict's keys, order, shapes and dtypes (of a
    lazy module, its repr before and all of these after a first call)."""
    name, args, kwargs, arrays = case[:4]
    reference = _torch_module(name, args, kwargs, "float32", False)
    twin = getattr(nn, name)(*args, **kwargs)
    assert repr(twin) == repr(reference)
    if name.startswith("Lazy"):
        reference(*made(arrays, {}, "float32", lambda a, d: torch.tensor(a, dtype=getattr(torch, d)))[0])
        twin(*made(arrays, {}, "float32", lambda a, d: np.asarray(a, d))[0])
        assert repr(twin) == repr(reference) and type(twin).__name__ == name.removeprefix("Lazy")
    assert [n for n, _ in twin.named_parameters()] == [n for n, _ in reference.named_parameters()]
    assert [n for n, _ in twin.named_buffers()] == [n for n, _ in reference.named_buffers()]
    mine, theirs = twin.state_dict(), reference.state_dict()
    assert list(mine) == list(theirs)
    for key in theirs:
        assert tuple(mine[key].shape) == tuple(theirs[key].shape), key
        assert str(mine[key].dtype) == str(theirs[key].dtype).removeprefix("torch."), key
    assert [type(m).__name__ for m in twin.modules()] == [type(m).__name__ for m in reference.modules()]


@pytest.mark.slow_on("dask")
@pytest.mark.parametrize("case", [pytest.param(case, marks=pytest.mark.slow_on("jax")
                                               if case[0] in _SHELLS or _later_case(FUNCTIONAL_CASES, index) else ())
                                  for index, case in enumerate(FUNCTIONAL_CASES)], ids=functional_label)
def test_functional_equals_torchs(backend, case):
    """Every function of ``xpnn.torch_nn.functional`` against ``torch.nn.functional`` (float32,
    torch's defaults), on every backend, the result in the input's library."""
    from xpnn.conformance.torch_nn import run_functional

    checked = run_functional(case, backend, "float32")
    assert checked.passed, _passed(checked)
    assert checked.output["library"] == type(backend.like()).__module__.split(".")[0]


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


#: (function, its arguments after the input): the activations and softmaxes, for integer inputs.
_INTEGER_CALLS = [(name, ()) for name in (
    "elu", "celu", "gelu", "glu", "hardshrink", "hardsigmoid", "hardswish", "hardtanh", "leaky_relu", "logsigmoid",
    "mish", "relu", "relu6", "selu", "silu", "sigmoid", "softplus", "softshrink", "softsign", "tanh", "tanhshrink",
    "normalize", "rrelu")] + [("softmax", (-1,)), ("softmin", (-1,)), ("log_softmax", (-1,)),
                             ("threshold", (-1.5, 7.9)), ("threshold", (1.5, -300.0)), ("hardtanh", (-2.7, 2.7)),
                             ("hardtanh", (0.0, 6.0))]

#: (function, its arguments after the input as NumPy arrays and numbers, keywords) on an integer
#: (N, C, H, W) input: the layers' functions.
_INTEGER_LAYER_CALLS = [
    ("linear", (np.ones((4, 5), int),), {}), ("conv2d", (np.ones((2, 3, 2, 2), int),), {}),
    ("max_pool2d", (2,), {}), ("avg_pool2d", (3,), {}), ("avg_pool2d", (3,), {"padding": 1}),
    ("avg_pool2d", (3,), {"padding": 1, "count_include_pad": False}), ("avg_pool2d", (2,), {"divisor_override": 3}),
    ("avg_pool2d", (3,), {"stride": 2, "ceil_mode": True}), ("layer_norm", ((5,),), {}), ("rms_norm", ((5,),), {}),
    ("group_norm", (3,), {}), ("batch_norm", (None, None), {"training": True}), ("dropout", (0.5,), {}),
    ("dropout", (0.5,), {"training": False}), ("prelu", (np.ones(3, int),), {}),
    ("embedding", (np.ones((40, 2), int),), {}), ("max_pool2d", (2,), {"return_indices": True}),
    ("conv1d", (np.ones((2, 3, 2), int),), {}), ("bilinear", (np.ones((2, 5), int), np.ones((2, 5, 5), int)), {}),
    ("conv_transpose2d", (np.ones((3, 2, 2, 2), int),), {}),  # torch: int64 only (xpnn: every integer)
    ("instance_norm", (), {}), ("max_pool3d", (2,), {"return_indices": True}), ("avg_pool3d", (2,), {}),
    ("adaptive_avg_pool2d", (2,), {}), ("adaptive_max_pool2d", (3,), {"return_indices": True}),
]


def _same_outcome_as_torch(backend, label: str, theirs, mine, x, tensor) -> None:
    """``mine()`` (xpnn on ``backend``'s ``x``) does what ``theirs()`` (torch on ``tensor``) does:
    the same values in the input's dtype or float32 as torch's, or torch's refusal (a subclass of
    its class, naming the function)."""
    try:
        want = theirs()
    except RuntimeError as refusal:  # torch's NotImplementedError is one
        # a bound out of the dtype's range: xpnn's ValueError (torch's RuntimeError)
        kind = ValueError if "overflow" in str(refusal) else type(refusal)
        with pytest.raises(kind, match=rf"xpnn\.(torch_nn\.functional\.)?{label.split('(')[0]}: "):
            mine()
        return
    got = mine()
    if isinstance(want, tuple):  # max_pool2d's values and indices
        np.testing.assert_array_equal(backend.to_numpy(got[1]), want[1].numpy(), err_msg=label)
        got, want = got[0], want[0]
    expected_dtype = x.dtype if want.dtype == tensor.dtype else backend.asarray(np.zeros(1), "float32").dtype
    assert got.dtype == expected_dtype, (label, got.dtype, want.dtype)
    np.testing.assert_allclose(backend.to_numpy(got), want.numpy(), rtol=1e-6, err_msg=label)


def _integers(dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    values = np.random.default_rng(0).integers(-9, 10, shape)
    return values > 1 if dtype == "bool" else values % 200 if dtype == "uint8" else values


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int32", "int64", "bool"])
def test_integer_and_bool_inputs_as_torch_takes_them(backend, dtype):
    """torch keeps integers in relu, relu6, hardtanh and threshold (its bounds cut toward zero),
    computes sigmoid, tanh, softsign and tanhshrink of integers in float32, and refuses the
    rest (and booleans mostly): the same outcome on every backend, a refusal an
    ``UnsupportedDtypeError`` (a TypeError, and torch's NotImplementedError) naming the function."""
    import torch.nn.functional as TF

    values = _integers(dtype, (2, 4))
    x, tensor = backend.asarray(values, dtype), torch.from_numpy(values.astype(dtype))
    for name, arguments in _INTEGER_CALLS:
        _same_outcome_as_torch(backend, f"{name}{arguments}", lambda: getattr(TF, name)(tensor, *arguments),
                               lambda: getattr(F, name)(x, *arguments), x, tensor)
    assert isinstance(F.UnsupportedDtypeError("x"), TypeError)


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int32", "int64", "bool"])
def test_integer_inputs_of_the_layers_functions_as_torch_takes_them(backend, dtype):
    """Linear maps, convolutions, max pools and embeddings keep integers; avg_pool2d averages
    int64 windows cut toward zero and refuses other integers; norms, training dropout and prelu
    refuse them; embedding takes int32 and int64 indices only: as torch, on every backend."""
    import torch.nn.functional as TF

    values = _integers(dtype, (2, 3, 7, 5))
    x, tensor = backend.asarray(values, dtype), torch.from_numpy(values.astype(dtype))
    for name, arguments, keywords in _INTEGER_LAYER_CALLS:
        if name == "conv_transpose2d" and dtype not in ("int64", "bool"):
            continue
        ours = tuple(backend.asarray(a, dtype) if isinstance(a, np.ndarray) else a for a in arguments)
        theirs = tuple(torch.from_numpy(a.astype(dtype)) if isinstance(a, np.ndarray) else a for a in arguments)
        indices, table = x, tensor
        if name in ("conv1d", "bilinear"):  # (N, C, L) and (N, in1) inputs: the first of each row
            indices, table = (a[:, :, 0, ...] if name == "conv1d" else a[:, 0, 0, ...] for a in (x, tensor))
        if name == "embedding":  # the integer array is the indices (in range)
            indices, table = backend.asarray(abs(values), dtype), torch.from_numpy(abs(values).astype(dtype))
            ours, theirs = (backend.asarray(arguments[0], "float32"),), (torch.ones(40, 2),)
        _same_outcome_as_torch(backend, f"{name}{arguments}{keywords}",
                               lambda: getattr(TF, name)(table, *theirs, **keywords),
                               lambda: getattr(F, name)(indices, *ours, **keywords), indices, table)


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
    with pytest.raises(ValueError, match=r"xpnn\.torch_nn\.functional\.embedding: norm_type must be positive"):
        F.embedding(np.array([1]), np.ones((4, 2)), max_norm=1.0, norm_type=0.0)
    with pytest.raises(ValueError, match=r"xpnn\.torch_nn\.LSTM: proj_size has to be smaller than hidden_size"):
        nn.LSTM(3, 5, proj_size=5)
    with pytest.raises(ValueError, match=r"xpnn\.torch_nn\.LSTM: proj_size should be a positive integer"):
        nn.LSTM(3, 5, proj_size=-1)
    with pytest.raises(ValueError, match=r"xpnn\.torch_nn\.GRU: proj_size argument is only supported for LSTM"):
        nn.GRU(3, 5, proj_size=2)


@pytest.mark.parametrize("call, function, first, second", [
    (lambda x, w: F.linear(x, w[0, 0]), "linear", "input", "weight"),
    (lambda x, w: F.conv2d(x, w), "conv2d", "input", "weight"),
    (lambda x, w: F.conv_transpose2d(x, w), "conv_transpose2d", "input", "weight"),
    (lambda x, w: F.layer_norm(x, (5,), w[0, 0, 0]), "layer_norm", "input", "weight"),
    (lambda x, w: F.group_norm(x, 1, None, w[:, 0, 0, 0]), "group_norm", "input", "bias"),
    (lambda x, w: F.batch_norm(x, w[:, 0, 0, 0], w[:, 0, 0, 0]), "batch_norm", "input", "running_mean"),
    (lambda x, w: F.scaled_dot_product_attention(x, x, x, w[0, 0] > 0), "scaled_dot_product_attention",
     "query", "attn_mask"),
], ids=["linear", "conv2d", "conv_transpose2d", "layer_norm", "group_norm", "batch_norm", "attention"])
def test_functions_name_the_arguments_of_two_libraries(call, function, first, second):
    x, w = torch.ones(2, 3, 5, 5), np.ones((3, 3, 5, 5), np.float32)
    with pytest.raises(TypeError, match=rf"^xpnn\.torch_nn\.functional\.{function}: {first} and {second} are arrays of "
                                        rf"two libraries \(torch and numpy\); convert {second} with "
                                        rf"xpnn\.to_backend\({second}, like={first}\)$"):
        call(x, w)


@pytest.mark.parametrize("library", ["torch", "jax"])
def test_a_model_called_with_another_librarys_input_says_to_move_it(library):
    """The innermost module holding arrays names itself and the two libraries, whatever the
    library's own error was (a buffer-only BatchNorm2d included); after ``to(like=input)`` the
    call runs."""
    x = BACKENDS[library].asarray(np.ones((2, 3, 6, 6)), "float32")
    for model, culprit in [(nn.Sequential(nn.ReLU(), nn.Conv2d(3, 4, 3)), "Conv2d"),
                           (nn.Sequential(nn.BatchNorm2d(3, affine=False).eval()), "BatchNorm2d"),
                           (nn.LSTM(6, 2), "LSTM")]:
        inputs = x[0, 0] if culprit == "LSTM" else x
        with pytest.raises(TypeError, match=rf"^xpnn\.torch_nn\.{culprit}: the input is a {library} array but the "
                                            r"module's parameters and buffers are numpy arrays; move the model to "
                                            r"the input's library with model\.to\(like=input\)$"):
            model(inputs)
        output = model.to(like=inputs)(inputs)
        assert type(output[0] if culprit == "LSTM" else output) is type(inputs)


def test_to_takes_torchs_calling_forms_on_every_library(backend):
    """``to(device)``, ``to(dtype)``, ``to(device, dtype)``, ``device=``, ``cpu()``, ``type()``
    as torch's on a torch model, the library kept; ``to(like)`` moves library; a device the
    library lacks and an argument given twice are errors naming the method."""
    import jax

    def model(namespace):
        torch.manual_seed(0)
        return namespace.Sequential(namespace.Linear(3, 4), namespace.BatchNorm1d(4))

    reference = model(torch.nn)
    twin = model(nn).to(like=backend.like())
    twin.load_state_dict(reference.state_dict())
    library = type(twin[0].weight)

    def as_backend(dtype):  # the backend's dtype for a torch dtype (jax with x64 off: the 32-bit one)
        return backend.asarray(np.zeros(1), str(dtype).rsplit(".", 1)[-1]).dtype

    for args, kwargs in [((torch.float64,), {}), (("cpu",), {}), ((torch.device("cpu"), torch.float32), {}),
                         (("cpu:0", "float64"), {}), ((jax.devices("cpu")[0],), {"dtype": np.float32}),
                         ((), {"device": "cpu"})]:
        moved = twin.to(*args, **kwargs)
        assert moved is twin and type(twin[0].weight) is library, (args, kwargs)
        reference.to(*[getattr(torch, a) if a == "float64" else a for a in args if not isinstance(a, jax.Device)],
                     **{k: torch.float32 if k == "dtype" else v for k, v in kwargs.items()})
        for key, value in twin.state_dict().items():
            assert value.dtype == as_backend(reference.state_dict()[key].dtype), (args, kwargs, key)
    assert type(twin.cpu()[0].weight) is library
    twin.type(torch.float64)  # every array, integer buffers too, as torch's
    assert twin[1].num_batches_tracked.dtype == as_backend(torch.float64)
    with pytest.raises(ValueError, match=r"^xpnn\.torch_nn\.Sequential\.to: device must be a device of .*got 'cuda:7'; "
                                         r"arrays move to another library with like="):
        twin.to("cuda:7")
    with pytest.raises(ValueError, match=r"^xpnn\.torch_nn\.Linear\.to: device must be a device of .* got 'cuda:7'"):
        twin[0].cuda(7)
    with pytest.raises(TypeError, match=r"^xpnn\.torch_nn\.Sequential\.to: dtype given twice, torch\.float64 and "
                                        r"'float32'$"):
        twin.to("float32", dtype=torch.float64)
    lazy = nn.LazyLinear(2).to("cpu", like=backend.like())
    assert type(lazy(backend.asarray(np.ones((3, 5)), "float32"))) is type(backend.asarray(np.ones(1), "float32"))


def test_old_norm_checkpoints_load_as_in_torch(backend):
    """torch's state_dict versions: a BatchNorm state of no version (a plain dict, as before torch
    0.4.1) loads without ``num_batches_tracked``, one of version 2 (torch's ``_metadata``) misses
    it; an untracking InstanceNorm refuses a plain dict's running statistics; ``state_dict()``
    carries torch's ``_metadata``."""
    reference = torch.nn.Sequential(torch.nn.BatchNorm2d(3), torch.nn.InstanceNorm1d(3))
    twin = nn.Sequential(nn.BatchNorm2d(3), nn.InstanceNorm1d(3)).to(like=backend.like())
    assert twin.state_dict()._metadata == reference.state_dict()._metadata
    versioned = reference.state_dict()
    del versioned["0.num_batches_tracked"]
    plain = dict(versioned)
    for state in (plain, versioned):
        for model in (reference, twin):
            try:
                outcome = repr(model.load_state_dict(state))
            except RuntimeError as error:
                outcome = str(error)
            if model is reference:
                want = outcome
        assert outcome == want
    assert "Missing key(s) in state_dict: \"0.num_batches_tracked\"" in want  # the versioned one
    stats = {**plain, "1.running_mean": torch.zeros(3), "1.running_var": torch.ones(3)}
    messages = []
    for model in (reference, twin):
        with pytest.raises(RuntimeError) as raised:
            model.load_state_dict(stats)
        messages.append(str(raised.value))
    assert messages[0] == messages[1] and "Unexpected running stats buffer(s)" in messages[0]


def _hooked_model(L):
    """A model in namespace ``L`` that uses torch's state_dict override points and hooks: a
    ``_load_from_state_dict`` that renames an old key, extra state, and each kind of hook."""

    class Scaled(L.Module):
        def __init__(self):
            super().__init__()
            self.fc = L.Linear(3, 2)
            self.steps = 0

        def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
            if prefix + "old_fc.weight" in state_dict:  # an older layout of this module
                for name in ("weight", "bias"):
                    state_dict[f"{prefix}fc.{name}"] = state_dict.pop(f"{prefix}old_fc.{name}")
            super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)

        def get_extra_state(self):
            return {"steps": self.steps}

        def set_extra_state(self, state):
            self.steps = state["steps"]

        def forward(self, x):
            return self.fc(x)

    model = L.Sequential(Scaled(), L.Linear(2, 2))
    model[1].register_load_state_dict_pre_hook(
        lambda module, state, prefix, *rest: state.update({prefix + "bias": state.pop(prefix + "b")})
        if prefix + "b" in state else None)
    model.register_load_state_dict_post_hook(
        lambda module, keys: keys.missing_keys.remove("1.weight") if "1.weight" in keys.missing_keys else None)
    seen = []
    model[1].register_state_dict_pre_hook(lambda module, prefix, keep_vars: seen.append(prefix))
    model[1].register_state_dict_post_hook(lambda module, state, prefix, metadata: state.update(
        {prefix + "note": state[prefix + "bias"] * 0}))
    return model, seen


def test_state_dict_override_points_and_hooks_as_torchs(backend):
    """The same model definition in torch.nn and xpnn.torch_nn: ``_load_from_state_dict``
    overrides, ``get_extra_state``/``set_extra_state`` and the state_dict and load hooks give
    torch's keys, loaded values and outcomes."""
    torch.manual_seed(0)
    reference, seen_torch = _hooked_model(torch.nn)
    twin, seen = _hooked_model(nn)
    twin.to(like=backend.like())
    reference[0].steps = 7
    state = reference.state_dict()
    assert list(twin.state_dict()) == list(state) and seen == seen_torch == ["1."]
    assert list(twin.state_dict(destination={})) == list(reference.state_dict(destination={}))  # no _metadata
    assert state["0._extra_state"] == {"steps": 7}
    old = {"0.old_fc.weight": state["0.fc.weight"], "0.old_fc.bias": state["0.fc.bias"], "0._extra_state": {"steps": 7},
           "1.b": state["1.bias"]}  # 1.weight missing: the post-hook forgives it
    fresh, _ = _hooked_model(torch.nn)
    outcomes = [repr(fresh.load_state_dict(old)), repr(twin.load_state_dict(old))]
    assert outcomes[0] == outcomes[1] == "<All keys matched successfully>"
    assert twin[0].steps == 7
    for key in ("0.fc.weight", "0.fc.bias", "1.bias"):
        np.testing.assert_array_equal(backend.to_numpy(twin.state_dict()[key]), state[key].numpy())
    with pytest.raises(RuntimeError) as raised:
        fresh.load_state_dict({**old, "0.fc.extra": state["1.bias"], "2.weight": state["1.bias"]})
    with pytest.raises(RuntimeError, match=re.escape(str(raised.value))):
        twin.load_state_dict({**old, "0.fc.extra": state["1.bias"], "2.weight": state["1.bias"]})


@pytest.mark.parametrize("variant", ["causal_upper_left", "causal_lower_right"])
@pytest.mark.parametrize("sizes", [(4, 6), (5, 5), (6, 4)])
def test_causal_biases_as_torchs(backend, variant, sizes):
    """``torch.nn.attention.bias``'s causal biases as ``scaled_dot_product_attention``'s mask give
    torch's outputs (a lower-right bias of more queries than keys: torch's NaN rows and its
    warning), inside ``sdpa_kernel`` too; a bias with ``is_causal`` or of other sizes is refused."""
    from torch.nn.attention import bias as torch_bias

    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 3, n, 8)) for n in (sizes[0], sizes[1], sizes[1]))
    warns = variant == "causal_lower_right" and sizes[0] > sizes[1]
    with pytest.warns(UserWarning, match="NaNs") if warns else contextlib.nullcontext():
        want = torch.nn.functional.scaled_dot_product_attention(*map(torch.tensor, (q, k, v)),
                                                                getattr(torch_bias, variant)(*sizes))
    with pytest.warns(UserWarning, match="NaNs") if warns else contextlib.nullcontext():
        made = getattr(nn.attention.bias, variant)(*sizes)
    with nn.attention.sdpa_kernel([nn.attention.SDPBackend.FLASH_ATTENTION, nn.attention.SDPBackend.MATH]):
        got = F.scaled_dot_product_attention(*(backend.asarray(a, "float64") for a in (q, k, v)), made)
    np.testing.assert_allclose(backend.to_numpy(got), want.numpy(), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="scaled_dot_product_attention: CausalBias should not be used with "
                                         "causal=True"):
        F.scaled_dot_product_attention(*(backend.asarray(a, "float64") for a in (q, k, v)), made, is_causal=True)
    with pytest.raises(ValueError, match=rf"scaled_dot_product_attention: the CausalBias is of {sizes[0]} queries and "
                                         rf"{sizes[1]} keys, got {sizes[0] - 1} and {sizes[1]}"):
        F.scaled_dot_product_attention(*(backend.asarray(a, "float64") for a in (q[..., 1:, :], k, v)), made)
    with pytest.raises(TypeError, match="sdpa_kernel: backends must be SDPBackend members, got 'math'"):
        with nn.attention.sdpa_kernel(["math"]):
            pass


def test_transformer_encoder_computes_padded_positions_as_torchs_layer_by_layer_path():
    """torch's eval-mode fast paths change what padded positions hold (zeros through nested
    tensors; NaN everywhere in the fused layer for a float src_mask with a boolean padding
    mask): xpnn equals torch's layer-by-layer path (taken in training mode, dropout 0) at every
    position, and torch's eval output at the positions that are not padding."""
    torch.manual_seed(0)
    src = torch.randn(2, 5, 8)
    padding = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
    layer = torch.nn.TransformerEncoderLayer(8, 2, 16, 0.0, batch_first=True)
    for twin, kwargs in [(torch.nn.TransformerEncoder(layer, 2, norm=torch.nn.LayerNorm(8)),
                          {"src_key_padding_mask": padding}),
                         (layer, {"src_mask": torch.randn(5, 5), "src_key_padding_mask": padding})]:
        model = (nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, 0.0, batch_first=True), 2,
                                       norm=nn.LayerNorm(8)) if twin is not layer else
                 nn.TransformerEncoderLayer(8, 2, 16, 0.0, batch_first=True))
        model.load_state_dict(twin.state_dict())
        got = model.eval()(src.numpy(), **{k: v.numpy() for k, v in kwargs.items()})
        with torch.no_grad():
            layer_by_layer = twin.train()(src, **kwargs).numpy()
            fast = twin.eval()(src, **kwargs).numpy()
        np.testing.assert_allclose(got, layer_by_layer, rtol=1e-5, atol=1e-5)
        if twin is not layer:
            kept = ~padding.numpy()
            np.testing.assert_allclose(got[kept], fast[kept], rtol=1e-5, atol=1e-5)
            assert not np.allclose(got[~kept], fast[~kept], atol=1e-3)  # torch's path differs there


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("library", ["torch", "numpy"])
def test_norms_of_16_bit_inputs_keep_their_dtype_as_torch(library, dtype):
    """LayerNorm, RMSNorm, GroupNorm and BatchNorm2d of 16-bit inputs, parameters and buffers: the
    output and the running statistics in that dtype, as torch's; the values computed in float32
    and rounded once, within half an ulp of a float64 evaluation (torch's bfloat16 RMSNorm is 6
    ulp off there)."""
    if library == "numpy" and dtype == "bfloat16":
        pytest.skip("NumPy has no bfloat16")
    torch.manual_seed(0)
    x = torch.randn(2, 4, 6, 6).to(getattr(torch, dtype))
    wide = x.double()
    for name, twin in [("LayerNorm", torch.nn.LayerNorm(6)), ("RMSNorm", torch.nn.RMSNorm(6, eps=1e-5)),
                       ("GroupNorm", torch.nn.GroupNorm(2, 4)), ("BatchNorm2d", torch.nn.BatchNorm2d(4))]:
        with torch.no_grad():
            for parameter in twin.parameters():
                parameter.normal_()
        twin = twin.to(getattr(torch, dtype))
        model = getattr(nn, name)(*{"LayerNorm": (6,), "RMSNorm": (6,), "GroupNorm": (2, 4),
                                    "BatchNorm2d": (4,)}[name], eps=1e-5)
        model.load_state_dict(twin.state_dict())
        model = model.to(like=torch.zeros(1) if library == "torch" else np.zeros(1), dtype=dtype)
        raw = model(x if library == "torch" else x.numpy())
        assert str(raw.dtype).endswith(dtype), name
        state = {k: v.double() for k, v in twin.state_dict().items()}
        axes = {"LayerNorm": (-1,), "RMSNorm": (-1,), "GroupNorm": None, "BatchNorm2d": (0, 2, 3)}[name]
        if name == "GroupNorm":
            grouped = wide.reshape(2, 2, -1)
            expected = ((grouped - grouped.mean(-1, keepdim=True))
                        / torch.sqrt(grouped.var(-1, unbiased=False, keepdim=True) + 1e-5)).reshape(wide.shape)
            expected = expected * state["weight"][:, None, None] + state["bias"][:, None, None]
        elif name == "RMSNorm":
            expected = wide / torch.sqrt((wide ** 2).mean(axes, keepdim=True) + 1e-5) * state["weight"]
        else:
            expected = ((wide - wide.mean(axes, keepdim=True))
                        / torch.sqrt(wide.var(axes, unbiased=False, keepdim=True) + 1e-5))
            shape = (-1, 1, 1) if name == "BatchNorm2d" else (-1,)
            expected = expected * state["weight"].reshape(shape) + state["bias"].reshape(shape)
        got = torch.as_tensor(np.asarray(raw, np.float32)) if library == "numpy" else raw
        ulp = 2.0 ** (torch.floor(torch.log2(expected.abs().clamp_min(1e-3))) - (10 if dtype == "float16" else 7))
        assert ((got.double() - expected).abs() / ulp).max() <= 0.5 + 1e-6, name
        if name == "BatchNorm2d":
            assert all(str(getattr(model, buffer).dtype).endswith(dtype) for buffer in ("running_mean", "running_var"))


_MISFITS = [
    ("LSTM input size", lambda nn, a: nn.LSTM(4, 3)(a((5, 2, 6))),
     ValueError, r"LSTM: input.size\(-1\) must be equal to input_size. Expected 4, got 6"),
    ("LSTM h_0", lambda nn, a: nn.LSTM(4, 3)(a((5, 2, 4)), (a((1, 2, 5)), a((1, 2, 3)))),
     ValueError, r"LSTM: expected hidden\[0\] size \(1, 2, 3\), got \(1, 2, 5\)"),
    ("LSTM c_0", lambda nn, a: nn.LSTM(4, 3)(a((5, 2, 4)), (a((1, 2, 3)), a((1, 2, 5)))),
     ValueError, r"LSTM: expected hidden\[1\] size \(1, 2, 3\), got \(1, 2, 5\)"),
    ("GRU h_0 layers", lambda nn, a: nn.GRU(4, 3)(a((5, 2, 4)), a((2, 2, 3))),
     ValueError, r"GRU: expected hidden size \(1, 2, 3\), got \(2, 2, 3\)"),
    ("GRU unbatched 3-D h_0", lambda nn, a: nn.GRU(4, 3)(a((5, 4)), a((1, 1, 3))),
     ValueError, r"GRU: for an unbatched 2-D input, the initial states must be 2-D too"),
    ("GRU integer input", lambda nn, a: nn.GRU(4, 3)(a((5, 4), "int64")),
     TypeError, r"GRU: input dtype \(int64\) does not match weight dtype \(float32\)"),
    ("BatchNorm2d channels", lambda nn, a: nn.BatchNorm2d(3).eval()(a((2, 4, 5, 5))),
     ValueError, r"functional.batch_norm: running_mean must have shape \(4,\) to match input \(2, 4, 5, 5\), "
                 r"got \(3,\)"),
    ("layer_norm weight", lambda nn, a: nn.functional.layer_norm(a((2, 4, 5)), (5,), a((4,))),
     ValueError, r"functional.layer_norm: weight must have shape \(5,\) to match input \(2, 4, 5\), got \(4,\)"),
    ("rms_norm weight", lambda nn, a: nn.functional.rms_norm(a((2, 4, 5)), (5,), a((4,))),
     ValueError, r"functional.rms_norm: weight must have shape \(5,\)"),
    ("group_norm weight", lambda nn, a: nn.functional.group_norm(a((2, 4, 5)), 2, a((3,))),
     ValueError, r"functional.group_norm: weight must have shape \(4,\)"),
    ("conv1d bias", lambda nn, a: nn.functional.conv1d(a((2, 4, 5)), a((3, 4, 2)), a((2,))),
     ValueError, r"functional.conv1d: bias must have shape \(3,\) to match weight \(3, 4, 2\), got \(2,\)"),
    ("conv_transpose2d bias", lambda nn, a: nn.functional.conv_transpose2d(a((1, 4, 3, 3)), a((4, 2, 2, 2)), a((3,)),
                                                                           groups=2),
     ValueError, r"functional.conv_transpose2d: bias must have shape \(4,\)"),
    ("linear bias", lambda nn, a: nn.functional.linear(a((2, 5)), a((3, 5)), a((2,))),
     ValueError, r"functional.linear: bias must have shape \(3,\) to match weight \(3, 5\), got \(2,\)"),
]


@pytest.mark.parametrize("call, kind, message", [case[1:] for case in _MISFITS], ids=[case[0] for case in _MISFITS])
def test_misfitting_shapes_and_dtypes_are_errors_as_in_torch(call, kind, message):
    """Inputs, states and parameters that do not fit: torch refuses each; xpnn names the module or
    function and what was expected, where it gave NumPy's broadcast or matmul errors, or an
    output (a GRU of integers)."""
    with pytest.raises((RuntimeError, ValueError, IndexError)):
        call(torch.nn, lambda shape, dtype="float32": torch.ones(shape, dtype=getattr(torch, dtype)))
    with pytest.raises(kind, match=rf"^xpnn\.torch_nn\.{message}"):
        call(nn, lambda shape, dtype="float32": np.ones(shape, dtype))


def test_linear_takes_a_bias_that_broadcasts_as_torch():
    x, weight = floats(2, 5).astype(np.float32), floats(3, 5).astype(np.float32)
    for bias in (np.full((), 0.5, np.float32), np.full((1,), 0.5, np.float32)):
        expected = torch.nn.functional.linear(torch.from_numpy(x), torch.from_numpy(weight), torch.from_numpy(bias))
        np.testing.assert_allclose(F.linear(x, weight, bias), expected.numpy(), rtol=1e-6)


def test_conv_transpose_output_size_picks_the_output_padding_as_torch():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 9, 11)
    for stride, padding, dilation, output_size in [(2, 1, 1, (18, 22)), (2, 1, 1, (17, 21)), (3, 0, 2, (2, 4, 31, 37)),
                                                    (3, 0, 2, [4, 30, 35])]:
        twin = torch.nn.ConvTranspose2d(4, 4, 3, stride, padding, dilation=dilation)
        model = nn.ConvTranspose2d(4, 4, 3, stride, padding, dilation=dilation)
        model.load_state_dict(twin.state_dict())
        expected = twin(x if len(output_size) != 3 else x[0], output_size=output_size).detach().numpy()
        got = model(x.numpy() if len(output_size) != 3 else x[0].numpy(), output_size=output_size)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"^xpnn\.torch_nn\.ConvTranspose2d: requested an output size of \[19, 22\], "
                                         r"but valid sizes range from \[17, 21\] to \[18, 22\] \(for an input of "
                                         r"\[9, 11\]\)$"):
        nn.ConvTranspose2d(4, 4, 3, 2, 1)(x.numpy(), output_size=(19, 22))
    with pytest.raises(ValueError, match=r"output_size must have 2 or 4 elements, got \(1, 2, 3\)"):
        nn.ConvTranspose2d(4, 4, 3, 2, 1)(x.numpy(), output_size=(1, 2, 3))


@pytest.mark.parametrize("name, shape, output_size", [("ConvTranspose1d", (2, 4, 9), (18,)),
                                                      ("ConvTranspose1d", (4, 9), [4, 17]),
                                                      ("ConvTranspose3d", (1, 4, 3, 4, 2), (1, 4, 6, 8, 4))])
def test_conv_transpose_output_size_of_every_rank_as_torch(name, shape, output_size):
    torch.manual_seed(0)
    x = torch.randn(shape)
    twin = getattr(torch.nn, name)(4, 2, 3, 2, 1)
    model = getattr(nn, name)(4, 2, 3, 2, 1)
    model.load_state_dict(twin.state_dict())
    expected = twin(x, output_size=output_size).detach().numpy()
    np.testing.assert_allclose(model(x.numpy(), output_size=output_size), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=rf"^xpnn\.torch_nn\.{name}: for a {len(shape)}-d input, output_size "
                                         "must have"):
        model(x.numpy(), output_size=(1,) * (len(shape) + 1))


def test_recurrent_cells_check_their_inputs_as_torch():
    """The cells' input rank, input size, number of hidden states and their batch, and an unknown
    nonlinearity: torch refuses each, and so does xpnn, naming the module."""
    torch.manual_seed(0)
    calls = [
        (r"expected input to be 1D or 2D, got 3D instead", lambda L, a: L.LSTMCell(3, 4)(a(1, 2, 3))),
        (r"input has inconsistent input_size: got 5 expected 3", lambda L, a: L.GRUCell(3, 4)(a(2, 5))),
        (r"expected 2 hidden states, got 1", lambda L, a: L.LSTMCell(3, 4)(a(2, 3), (a(2, 4),))),
        (r"expected hidden state of shape \(2, 4\)", lambda L, a: L.RNNCell(3, 4)(a(2, 3), a(3, 4))),
        (r"unknown nonlinearity 'gelu'", lambda L, a: L.RNN(3, 4, nonlinearity="gelu")),
        (r"unknown nonlinearity 'gelu'", lambda L, a: L.RNNCell(3, 4, nonlinearity="gelu")(a(2, 3))),
    ]
    for message, call in calls:
        with pytest.raises((RuntimeError, ValueError)):
            call(torch.nn, lambda *shape: torch.ones(shape))
        with pytest.raises(ValueError, match=r"xpnn\.torch_nn\.(LSTMCell|GRUCell|RNNCell|RNN): " + message):
            call(nn, lambda *shape: np.ones(shape, np.float32))


@pytest.mark.parametrize("dtype", ["float32", "int32", "bool"])
def test_pad_gives_torchs_values_or_refuses_where_torch_does(dtype):
    """F.pad over modes, negative sides, ranks and values (cast to the input's dtype): torch's
    values, or where torch refuses (non-constant modes on other ranks, a value with them,
    reflections as wide as the dim, crops beyond the input), a refusal naming the function."""
    x = (np.arange(2 * 3 * 4 * 5) % 7 - 3).reshape(2, 3, 4, 5).astype(dtype)
    cases = [((1, 2), "constant", None), ((-1, 2, 0, 1), "constant", -2.7), ((1, 1, 2, 0), "reflect", None),
             ((3, 0, 1, 1), "replicate", None), ((5, 0, 0, 4), "circular", None), ((1, 1, 1, 1, 1, 1), "reflect", None),
             ((-1, 1, 2, -1), "circular", None), ((1, -1), "reflect", None), ((1, 2), "reflect", 0),
             ((1, 2), "reflect", 1.0), ((0, 0, 4, 0), "reflect", None), ((0, 0, 5, 0), "circular", None),
             ((-6, 1), "constant", None), ((1, 2, 3), "constant", None), ((1,) * 10, "constant", None)]
    for pad, mode, value in cases:
        for array in (x, x[0], x[0, 0]):
            if dtype != "float32" and mode != "constant":
                continue
            try:
                want = torch.nn.functional.pad(torch.from_numpy(array), pad, mode=mode, value=value).numpy()
            except RuntimeError:  # NotImplementedError too
                with pytest.raises((ValueError, RuntimeError), match=r"xpnn\.torch_nn\.functional\.pad: "):
                    F.pad(array, pad, mode, value)
                continue
            got = F.pad(array, pad, mode, value)
            assert got.dtype == array.dtype
            np.testing.assert_array_equal(got, want, err_msg=f"{pad} {mode} {value} {array.ndim}-d")


def test_weighted_losses_load_their_weights_and_refuse_what_torch_refuses():
    """CrossEntropyLoss and BCEWithLogitsLoss keep ``weight`` and ``pos_weight`` as buffers that a
    torch state_dict loads; the legacy size_average/reduce pick torch's reduction with its
    warning; bad targets and arguments are refused where torch refuses them."""
    import torch.nn.functional as TF

    torch.manual_seed(0)
    weight, positive = torch.rand(5) + 0.1, torch.rand(3) + 0.5
    x, target = torch.randn(4, 5, 3), torch.randint(0, 5, (4, 3))
    for reference, twin, inputs in [
        (torch.nn.CrossEntropyLoss(weight=weight, reduction="sum"),
         nn.CrossEntropyLoss(weight=np.zeros(5, np.float32), reduction="sum"), (x, target)),
        (torch.nn.BCEWithLogitsLoss(weight=weight[:3], pos_weight=positive),
         nn.BCEWithLogitsLoss(weight=np.zeros(3, np.float32), pos_weight=np.ones(3, np.float32)),
         (x[:, 0], torch.rand(4, 3)))]:
        twin.load_state_dict(reference.state_dict())
        np.testing.assert_allclose(twin(*(t.numpy() for t in inputs)), reference(*inputs).numpy(), rtol=1e-5)
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        legacy = nn.NLLLoss(size_average=False)
    assert legacy.reduction == "sum"
    calls = [
        (IndexError, r"cross_entropy: targets must be class indices in \[0, 5\)",
         lambda F, a, t: F.cross_entropy(a, t + 5)),
        (ValueError, r"cross_entropy: expected target of shape \(4, 3\)", lambda F, a, t: F.cross_entropy(a, t[:, :2])),
        (ValueError, r"cross_entropy: label_smoothing must be between", lambda F, a, t: F.cross_entropy(a, t,
                                                                                                  label_smoothing=2.0)),
        (ValueError, r"mse_loss: 'avg' is not a valid value for reduction", lambda F, a, t: F.mse_loss(a, a,
                                                                                                 reduction="avg")),
        (ValueError, r"binary_cross_entropy: all elements of input should be between 0 and 1",
         lambda F, a, t: F.binary_cross_entropy(a, a)),
        (ValueError, r"binary_cross_entropy_with_logits: using a target size \(1, 5, 3\)",
         lambda F, a, t: F.binary_cross_entropy_with_logits(a, a[:1])),
    ]
    for kind, message, call in calls:
        with pytest.raises((RuntimeError, ValueError, IndexError)):
            call(TF, x, target)
        with pytest.raises(kind, match=r"xpnn\.torch_nn\.functional\." + message):
            call(F, x.numpy(), target.numpy())
    with pytest.warns(UserWarning, match="different to the input size"):
        got = F.mse_loss(x.numpy(), x[:1].numpy())
    with pytest.warns(UserWarning):
        want = TF.mse_loss(x, x[:1])
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-6)


def test_margin_and_likelihood_losses_refuse_what_torch_refuses():
    """The margin, ranking and likelihood losses refuse the shapes, targets and arguments torch
    refuses, with errors naming the function; MultiMarginLoss and MultiLabelSoftMarginLoss load
    their weight buffers from torch's state_dict."""
    import torch.nn.functional as TF

    torch.manual_seed(0)
    x, classes = torch.randn(3, 4), torch.tensor([0, 3, 1])
    listed, signs = torch.tensor([[0, 1, -1, 3]] * 3), torch.tensor([1.0, -1.0, 1.0])
    calls = [
        (IndexError, r"multi_margin_loss: targets must be class indices in \[0, 4\), got \[5\]",
         lambda F, a: F.multi_margin_loss(a, _as(F, classes * 0 + 5))),
        (ValueError, r"multi_margin_loss: only p == 1 and p == 2 supported, got 3",
         lambda F, a: F.multi_margin_loss(a, _as(F, classes), p=3)),
        (ValueError, r"multi_margin_loss: weight must be one-dimensional",
         lambda F, a: F.multi_margin_loss(a, _as(F, classes), weight=a[:1])),
        (ValueError, r"multi_margin_loss: expected a non-empty \(C,\) or \(N, C\) input, got shape \(3, 2, 2\)",
         lambda F, a: F.multi_margin_loss(a.reshape(3, 2, 2), _as(F, classes))),
        (IndexError, r"multilabel_margin_loss: targets must be class indices in \[0, 4\) or -1",
         lambda F, a: F.multilabel_margin_loss(a, _as(F, listed) * 2)),
        (ValueError, r"multilabel_margin_loss: target must have the input's shape \(3, 4\), got \(3, 2\)",
         lambda F, a: F.multilabel_margin_loss(a, _as(F, listed)[:, :2])),
        (ValueError, r"margin_ranking_loss: all input arrays should have the same number of dims",
         lambda F, a: F.margin_ranking_loss(a, a[0], _as(F, signs))),
        (ValueError, r"cosine_embedding_loss: expected inputs \(N, D\) with target \(N,\)",
         lambda F, a: F.cosine_embedding_loss(a, a, _as(F, signs)[:1, None])),
        (ValueError, r"triplet_margin_loss: margin must be greater than 0, got 0",
         lambda F, a: F.triplet_margin_loss(a, a, a, margin=0.0)),
        (ValueError, r"triplet_margin_with_distance_loss: the anchor, positive and negative arrays",
         lambda F, a: F.triplet_margin_with_distance_loss(a, a, a[0])),
        (ValueError, r"gaussian_nll_loss: var is of incorrect size",
         lambda F, a: F.gaussian_nll_loss(a, a, a[:1, :1])),
        (ValueError, r"gaussian_nll_loss: var has negative entry/entries", lambda F, a: F.gaussian_nll_loss(a, a, -a * a)),
        (ValueError, r"gaussian_nll_loss: var has negative entry/entries: -1.0",
         lambda F, a: F.gaussian_nll_loss(a, a, -1.0)),
        (ValueError, r"poisson_nll_loss: 'batchmean' is not a valid value for reduction",
         lambda F, a: F.poisson_nll_loss(a, a, reduction="batchmean")),
    ]
    for kind, message, call in calls:
        with pytest.raises((RuntimeError, ValueError, IndexError)):
            call(TF, x)
        with pytest.raises(kind, match=r"xpnn\.torch_nn\.functional\." + message):
            call(F, x.numpy())
    weight = torch.rand(4) + 0.5
    for reference, twin, target in [
        (torch.nn.MultiMarginLoss(weight=weight), nn.MultiMarginLoss(weight=np.zeros(4, np.float32)), classes),
        (torch.nn.MultiLabelSoftMarginLoss(weight=weight), nn.MultiLabelSoftMarginLoss(weight=np.zeros(4, np.float32)),
         torch.rand(3, 4).round())]:
        twin.load_state_dict(reference.state_dict())
        np.testing.assert_allclose(twin(x.numpy(), target.numpy()), reference(x, target).numpy(), rtol=1e-6)


def _as(F: Any, t: Any) -> Any:
    """``t`` as the library of the functional namespace ``F`` takes it."""
    return t if F.__name__.startswith("torch") else t.numpy()


def test_soft_margin_loss_is_stable_where_torchs_overflows():
    """log(1 + e^(-y x)) is within 2 ulps of the float64 value (as jax.nn.softplus) for margins up
    to 1e4, where torch's float32 kernel returns inf beyond about 89."""
    margins = np.array([-1e4, -500.0, -90.0, -30.0, -1.0, 0.0, 1.0, 30.0, 90.0], np.float32)
    ones = np.ones_like(margins)
    got = F.soft_margin_loss(-margins, ones, reduction="none")
    exact = np.logaddexp(0.0, margins.astype(np.float64))
    assert got.dtype == np.float32
    np.testing.assert_array_max_ulp(got, exact.astype(np.float32), maxulp=2)
    assert np.isinf(torch.nn.functional.soft_margin_loss(torch.tensor([-500.0]), torch.tensor([1.0])).item())


def test_gaussian_nll_loss_gradient_passes_through_the_variance_clamp_as_torchs():
    """Variances under ``eps`` are clamped in the value, yet the gradient with respect to them is
    the unclamped formula's at the clamped value, as torch's no-grad clamp gives."""
    torch.manual_seed(0)
    mean, target = torch.randn(6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    var = torch.tensor([1e-9, 5e-7, 1e-6, 0.3, 2.0, 0.0], dtype=torch.float64)
    grads = []
    for functional in (torch.nn.functional, F):
        leaf = var.clone().requires_grad_()
        functional.gaussian_nll_loss(mean, target, leaf, full=True, reduction="sum").backward()
        grads.append(leaf.grad.numpy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-12)


def test_transformer_mask_and_shape_checks_as_torchs():
    """Transformer.generate_square_subsequent_mask is torch's; src and tgt of other batch or
    feature sizes are refused, as torch refuses them; a ModuleList of alike layers prints as
    torch's, one entry for the run."""
    np.testing.assert_array_equal(nn.Transformer.generate_square_subsequent_mask(4),
                                  torch.nn.Transformer.generate_square_subsequent_mask(4).numpy())
    assert repr(nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, 16), 3)) == repr(
        torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(8, 2, 16), 3))
    for src, tgt, message in [((4, 2, 8), (3, 1, 8), "the batch number of src and tgt must be equal"),
                              ((4, 2, 8), (3, 2, 6), "the feature number of src and tgt must be equal to d_model")]:
        with pytest.raises(RuntimeError):
            torch.nn.Transformer(8, 2, 1, 1, 16)(torch.ones(src), torch.ones(tgt))
        with pytest.raises(ValueError, match=rf"xpnn\.torch_nn\.Transformer: {message}"):
            nn.Transformer(8, 2, 1, 1, 16)(np.ones(src, np.float32), np.ones(tgt, np.float32))


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_channel_dropout_zeroes_whole_channels(backend, rank):
    """dropout1d/2d/3d in training: every channel all zeros or all scaled by 1 / (1 - p), about
    p of them dropped, batched and unbatched; dropout2d takes a 3-d input as (N, C, L), as torch."""
    nn.manual_seed(0)
    function = getattr(F, f"dropout{rank}d")
    for shape in [(40, 50, *(3,) * rank), (200, *(3,) * rank)]:
        x = backend.asarray(np.random.default_rng(0).random(shape) + 0.5, "float32")
        if rank == 2 and len(shape) == 3:
            with pytest.warns(UserWarning, match="interpreted as shape \\(N, C, L\\)"):
                y = function(x, 0.3)
            channels = 200 * 3
        else:
            y = function(x, 0.3)
            channels = math.prod(shape[:len(shape) - rank])
        ratio = (backend.to_numpy(y) / backend.to_numpy(x)).reshape(channels, -1)
        kept = ratio[:, 0] > 0
        np.testing.assert_allclose(ratio[kept], 1 / 0.7, rtol=1e-6)
        np.testing.assert_array_equal(ratio[~kept], 0.0)
        assert abs((~kept).mean() - 0.3) < 0.06
    with pytest.raises(ValueError, match=rf"xpnn\.torch_nn\.functional\.dropout{rank}d: expected a"):
        function(backend.asarray(np.ones((2,) * (rank + 3)), "float32"), 0.3)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_gives_torchs_bags_of_any_lengths(backend, mode):
    """embedding_bag over 1-d ids cut by offsets into bags of random lengths (empty ones
    included), with and without padding_idx, per_sample_weights in sum mode and the last offset
    included: torch's bags in float64, and on torch its gradients."""
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((12, 5))
    for trial in range(4):
        ids = rng.integers(0, 12, int(rng.integers(1, 40)))
        cuts = np.sort(rng.integers(0, ids.size + 1, int(rng.integers(1, 8))))
        offsets = np.concatenate([[0], cuts])
        keywords = {"mode": mode, "padding_idx": [None, 3, -1, 0][trial], "include_last_offset": trial == 2}
        if trial == 2:
            offsets = np.concatenate([offsets, [ids.size]])
        samples = rng.standard_normal(ids.size) if mode == "sum" and trial % 2 else None
        want = torch.nn.functional.embedding_bag(
            torch.from_numpy(ids), torch.from_numpy(weight), torch.from_numpy(offsets),
            per_sample_weights=None if samples is None else torch.from_numpy(samples), **keywords)
        got = F.embedding_bag(backend.asarray(ids, "int64"), backend.asarray(weight, "float64"),
                              backend.asarray(offsets, "int64"),
                              per_sample_weights=None if samples is None else backend.asarray(samples, "float64"),
                              **keywords)
        np.testing.assert_allclose(backend.to_numpy(got), want.numpy(), rtol=1e-12, atol=1e-12)
    grads = []
    for functional in (torch.nn.functional, F):
        leaf = torch.from_numpy(weight).requires_grad_()
        bags = functional.embedding_bag(torch.from_numpy(ids), leaf, torch.from_numpy(offsets), mode=mode,
                                        include_last_offset=True)
        (bags * torch.linspace(-1, 1, bags.numel(), dtype=torch.float64).reshape(bags.shape)).sum().backward()
        grads.append(leaf.grad.numpy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-12, atol=1e-12)


def test_embedding_bag_refuses_what_torch_refuses():
    """Bad offsets, shapes, modes and argument mixes are refused where torch refuses them, naming
    embedding_bag."""
    weight, ids = torch.randn(10, 3), torch.tensor([1, 2, 4, 5, 4, 3])
    calls = [
        (ValueError, r"offsets must start at 0 and not decrease",
         lambda F, a, w: F.embedding_bag(a, w, _as(F, torch.tensor([1, 3])))),
        (ValueError, r"offsets must start at 0 and not decrease, up to the input's length 6",
         lambda F, a, w: F.embedding_bag(a, w, _as(F, torch.tensor([0, 7])))),
        (ValueError, r"if input is 2-d, then offsets has to be None",
         lambda F, a, w: F.embedding_bag(a.reshape(2, 3), w, _as(F, torch.tensor([0, 1])))),
        (ValueError, r"a 1-d input needs 1-d offsets, got None", lambda F, a, w: F.embedding_bag(a, w)),
        (ValueError, r"mode has to be one of sum, mean or max, got 'min'",
         lambda F, a, w: F.embedding_bag(a.reshape(2, 3), w, mode="min")),
        (ValueError, r"max mode does not support scaling the gradient",
         lambda F, a, w: F.embedding_bag(a.reshape(2, 3), w, mode="max", scale_grad_by_freq=True)),
        (NotImplementedError, r"per_sample_weights is only supported for mode='sum'",
         lambda F, a, w: F.embedding_bag(a.reshape(2, 3), w, per_sample_weights=w[:2, :])),
        (ValueError, r"per_sample_weights must have the input's shape \(2, 3\), got \(3, 3\)",
         lambda F, a, w: F.embedding_bag(a.reshape(2, 3), w, mode="sum", per_sample_weights=w[:3, :])),
        (ValueError, r"padding_idx must be within the number of embeddings, -10 through 9, but got 12",
         lambda F, a, w: F.embedding_bag(a.reshape(2, 3), w, padding_idx=12)),
        (ValueError, r"weight has to be 2-d", lambda F, a, w: F.embedding_bag(a.reshape(2, 3), w[0])),
        (IndexError, r"index out of range in self \(as torch\): ids must lie in \[0, 10\)",
         lambda F, a, w: F.embedding_bag(a.reshape(2, 3) + 5, w)),
    ]
    for kind, message, call in calls:
        with pytest.raises((RuntimeError, ValueError, NotImplementedError)):
            call(torch.nn.functional, ids, weight)
        with pytest.raises(kind, match=r"xpnn\.torch_nn\.functional\.embedding_bag: " + message):
            call(F, ids.numpy(), weight.numpy())
    assert repr(nn.EmbeddingBag(10, 3, max_norm=1.0, mode="sum", padding_idx=2)) == repr(
        torch.nn.EmbeddingBag(10, 3, max_norm=1.0, mode="sum", padding_idx=2))
    for mode in ("sum", "mean", "max"):  # bags of no ids are zeros (torch refuses a 2-d input of none)
        np.testing.assert_array_equal(F.embedding_bag(np.zeros((2, 0), np.int64), weight.numpy(), mode=mode),
                                      np.zeros((2, 3), np.float32))


@pytest.mark.slow_on("jax", "dask")  # a compile (jax) or graph (dask) per problem; the cases run on both by default
def test_ctc_loss_gives_torchs_losses_for_random_alignment_problems(backend):
    """ctc_loss on random problems (1 to 8 steps, blanks anywhere, repeated labels, lengths down
    to 0 and alignments too long to fit) with padded and concatenated targets, each reduction,
    zero_infinity on and off: torch's losses in float64."""
    rng = np.random.default_rng(0)
    for trial in range(10):
        steps, batch, classes, longest = (int(rng.integers(1, 9)), int(rng.integers(1, 4)), int(rng.integers(2, 6)),
                                          int(rng.integers(0, 5)))
        logits = rng.standard_normal((steps, batch, classes)) * 2
        log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        blank = int(rng.integers(0, classes))
        padded = rng.integers(0, classes - 1, (batch, longest))
        padded = padded + (padded >= blank)  # labels are never the blank
        if trial % 3 == 0 and longest > 1:
            padded[:, 1] = padded[:, 0]
        input_lengths, target_lengths = rng.integers(0, steps + 1, batch), rng.integers(0, longest + 1, batch)
        targets = (np.concatenate([padded[n, :target_lengths[n]] for n in range(batch)]) if trial % 2
                   else padded)
        for reduction, zero_infinity in [("none", False), ("mean", True), ("sum", False)]:
            want = torch.nn.functional.ctc_loss(
                torch.from_numpy(log_p), torch.from_numpy(targets), torch.from_numpy(input_lengths),
                torch.from_numpy(target_lengths), blank=blank, reduction=reduction, zero_infinity=zero_infinity)
            got = F.ctc_loss(backend.asarray(log_p, "float64"), backend.asarray(targets, "int64"),
                             backend.asarray(input_lengths, "int64"), backend.asarray(target_lengths, "int64"),
                             blank=blank, reduction=reduction, zero_infinity=zero_infinity)
            np.testing.assert_allclose(backend.to_numpy(got), want.numpy(), rtol=1e-10, atol=1e-12)


def test_ctc_loss_gradient_through_log_softmax_is_torchs_and_bad_lengths_are_refused():
    """The gradient with respect to the logits before log_softmax equals torch's (with respect to
    log_probs themselves torch's analytic backward adds e^log_probs, which log_softmax's backward
    cancels); zero_infinity gives impossible alignments gradient 0; lengths, targets and blank
    that torch refuses are refused."""
    torch.manual_seed(0)
    logits = torch.randn(7, 3, 5, dtype=torch.float64)
    targets, input_lengths, target_lengths = torch.randint(1, 5, (3, 3)), torch.tensor([7, 6, 2]), torch.tensor(
        [3, 2, 2])
    grads = []
    for functional in (torch.nn.functional, F):
        leaf = logits.clone().requires_grad_()
        functional.ctc_loss(leaf.log_softmax(2), targets, input_lengths, target_lengths,
                            zero_infinity=True).backward()
        grads.append(leaf.grad.numpy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-10, atol=1e-13)
    assert np.all(grads[1][:, 2] == 0)  # sample 2's two steps cannot hold its two labels
    log_p = logits.log_softmax(2)
    calls = [
        (ValueError, r"input_lengths must lie in \[0, 7\], got \[8, 7, 3\]",
         lambda F, lp, t: F.ctc_loss(lp, t, _as(F, input_lengths + 1), _as(F, target_lengths))),
        (ValueError, r"target_lengths must lie in \[0, 3\], got \[4, 3, 3\]",
         lambda F, lp, t: F.ctc_loss(lp, t, _as(F, input_lengths), _as(F, target_lengths + 1))),
        (ValueError, r"blank must be in label range \[0, 5\), got 5",
         lambda F, lp, t: F.ctc_loss(lp, t, _as(F, input_lengths), _as(F, target_lengths), blank=5)),
        (ValueError, r"input_lengths must be of size batch_size 3, got 2",
         lambda F, lp, t: F.ctc_loss(lp, t, _as(F, input_lengths)[:2], _as(F, target_lengths))),
    ]
    for kind, message, call in calls:
        with pytest.raises((RuntimeError, ValueError)):
            call(torch.nn.functional, log_p, targets)
        with pytest.raises(kind, match=r"xpnn\.torch_nn\.functional\.ctc_loss: " + message):
            call(F, log_p.numpy(), targets.numpy())
    np.testing.assert_allclose(F.ctc_loss(log_p.numpy(), targets.numpy(), (7, 6, 2), (3, 2, 2), reduction="none"),
                               torch.nn.functional.ctc_loss(log_p, targets, (7, 6, 2), (3, 2, 2),
                                                            reduction="none").numpy(), rtol=1e-12)


def test_max_unpool_inverts_max_pool_and_refuses_what_torch_refuses():
    """max_unpool2d of max_pool2d's indices puts each max back (overlapping windows too, where
    windows share a max), with torch's gradient where the indices do not repeat (torch gives a
    repeated index's gradient to each repeat, xpnn to one, as the function computed is);
    bad indices, shapes and output sizes are refused where torch refuses them."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64)
    pooled, indices = torch.nn.functional.max_pool2d(x, 3, stride=1, padding=1, return_indices=True)
    np.testing.assert_array_equal(F.max_unpool2d(pooled.numpy(), indices.numpy(), 3, 1, 1),
                                  torch.nn.functional.max_unpool2d(pooled, indices, 3, 1, 1).numpy())
    grads = []
    for functional in (torch.nn.functional, F):
        halves, where = torch.nn.functional.max_pool2d(x, 2, return_indices=True)
        leaf = halves.detach().requires_grad_()
        y = functional.max_unpool2d(leaf, where, 2, output_size=(6, 7))
        (y * torch.linspace(-1, 1, y.numel(), dtype=torch.float64).reshape(y.shape)).sum().backward()
        grads.append(leaf.grad.numpy())
    np.testing.assert_array_equal(grads[1], grads[0])
    calls = [
        (IndexError, r"max_unpool2d: found invalid max indices \[42\] \(output planes are of size 6x7",
         lambda F, p, i: F.max_unpool2d(p, i * 0 + 42, 3, 1, 1)),
        (IndexError, r"max_unpool2d: found invalid max indices \[-1\]", lambda F, p, i: F.max_unpool2d(p, i * 0 - 1, 3, 1,
                                                                                                      1)),
        (ValueError, r"max_unpool2d: expected indices of the input's shape \(2, 3, 6, 7\), got \(2, 3, 6, 2\)",
         lambda F, p, i: F.max_unpool2d(p, i[..., :2], 3, 1, 1)),
        (ValueError, r"max_unpool2d: invalid output_size \(8, 7\) \(dim 0 must be between 5 and 7",
         lambda F, p, i: F.max_unpool2d(p, i, 3, 1, 1, output_size=(8, 7))),
        (ValueError, r"max_unpool2d: output_size should be a sequence of 2 or 4 sizes, got \(7,\)",
         lambda F, p, i: F.max_unpool2d(p, i, 3, 1, 1, output_size=(7,))),
        (TypeError, r"max_unpool2d: indices must be integers", lambda F, p, i: F.max_unpool2d(p, i * 1.0, 3, 1, 1)),
    ]
    for kind, message, call in calls:
        with pytest.raises((RuntimeError, ValueError)):
            call(torch.nn.functional, pooled, indices)
        with pytest.raises(kind, match=r"xpnn\.torch_nn\.functional\." + message):
            call(F, pooled.numpy(), indices.numpy())


@pytest.mark.parametrize("per_channel", [False, True])
def test_alpha_dropout_takes_torchs_two_values_and_keeps_selu_statistics(backend, per_channel):
    """alpha_dropout / feature_alpha_dropout in training: where both torch and xpnn keep an
    element, the same value, and the dropped value is torch's; about p dropped (whole channels
    for the feature form); a standard normal input keeps mean 0 and variance 1; eval, p=0 and
    p=1 as torch; the feature form refuses a 1-d input, as torch."""
    nn.manual_seed(0)
    torch.manual_seed(0)
    name = "feature_alpha_dropout" if per_channel else "alpha_dropout"
    shape = (200, 300, 4) if per_channel else (400, 600)
    host = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    got = backend.to_numpy(getattr(F, name)(backend.asarray(host, "float32"), 0.3, True))
    want = getattr(torch.nn.functional, name)(torch.from_numpy(host), 0.3, True).numpy()
    values, counts = np.unique(want, return_counts=True)
    dropped_value = float(values[np.argmax(counts)])  # torch's one value for every dropped element
    kept_want, kept_got = want != dropped_value, ~np.isclose(got, dropped_value, rtol=1e-6, atol=0)
    both = kept_want & kept_got
    assert both.mean() > 0.4
    np.testing.assert_allclose(got[both], want[both], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got[~kept_got], dropped_value, rtol=1e-6)
    assert abs((~kept_got).mean() - 0.3) < 0.02
    if per_channel:
        assert np.all(kept_got == kept_got[:, :, :1])
    assert abs(got.mean()) < 0.02 and abs(got.var() - 1.0) < 0.03
    x = backend.asarray(host[:3], "float32")
    assert getattr(F, name)(x, 0.3) is x and getattr(F, name)(x, 0.0, True) is x
    np.testing.assert_array_equal(backend.to_numpy(getattr(F, name)(x, 1.0, True)), 0.0)
    if per_channel:
        with pytest.raises(ValueError, match=r"xpnn\.torch_nn\.functional\.feature_alpha_dropout: feature dropout"):
            F.feature_alpha_dropout(backend.asarray(host[0, 0], "float32"), 0.3, True)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_interpolate_gives_torchs_values_or_refuses_where_torch_does(rank):
    """F.interpolate in every mode over sizes and scale factors (up and down, recomputed or not,
    align_corners): torch's values in float64, or where torch refuses, a refusal naming the function."""
    x = np.random.default_rng(0).standard_normal((2, 3, *(5, 4, 3)[:rank]))
    linear = {1: "linear", 2: "bilinear", 3: "trilinear"}[rank]
    keywords = [{"size": 7}, {"size": 2}, {"scale_factor": 1.7}, {"scale_factor": 0.6}, {"size": 0},
                {"scale_factor": 2.5, "recompute_scale_factor": True}, {"size": tuple(range(3, 3 + rank))},
                {"size": 3, "scale_factor": 2.0}, {}, {"size": 9, "align_corners": True},
                {"scale_factor": 1.3, "align_corners": True}, {"size": 1, "align_corners": True}]
    for mode in ("nearest", "nearest-exact", "area", linear, "bilinear" if rank != 2 else "linear"):
        for kw in keywords:
            try:
                want = torch.nn.functional.interpolate(torch.from_numpy(x), mode=mode, **kw).numpy()
            except (ValueError, RuntimeError):
                with pytest.raises(ValueError, match=r"xpnn\.torch_nn\.functional\.interpolate: "):
                    F.interpolate(x, mode=mode, **kw)
                continue
            np.testing.assert_allclose(F.interpolate(x, mode=mode, **kw), want, rtol=1e-12, atol=1e-12,
                                       err_msg=f"{mode} {kw}")


@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "lanczos"])
def test_interpolate_bicubic_and_antialias_give_torchs_values(mode):
    """F.interpolate's 4-d filter modes, plain and antialiased, up and down, align_corners or not:
    torch's values in float64 on numpy, in float32 on torch (and jax, in every 4th call: each
    compiles anew); torch's refusals refused.
    torch's antialiased kernel is wrong where the output is one column wide (every row comes
    out equal), so there the reference is torch's own two passes, rows then columns."""
    x = np.random.default_rng(1).standard_normal((2, 3, 9, 13))
    keywords = [{"size": 7}, {"size": 2}, {"size": (3, 20)}, {"scale_factor": 1.7}, {"scale_factor": 0.3},
                {"scale_factor": 0.45, "recompute_scale_factor": True}, {"size": (17, 9), "align_corners": True},
                {"size": (2, 3), "align_corners": True}, {"scale_factor": 2.3, "align_corners": True},
                {"size": 1}, {"size": (4, 1)}]
    for count, (antialias, kw) in enumerate(itertools.product((False, True), keywords)):
        def theirs(a, **k):
            return torch.nn.functional.interpolate(a, mode=mode, antialias=antialias, **k)
        try:
            want = theirs(torch.from_numpy(x), **kw).numpy()
        except (ValueError, RuntimeError):
            with pytest.raises(ValueError, match=r"xpnn\.torch_nn\.functional\.interpolate: "):
                F.interpolate(x, mode=mode, antialias=antialias, **kw)
            continue
        if antialias and want.shape[-1] == 1 and want.shape[-2] > 1:
            rows = {**kw, "size": (want.shape[-2], x.shape[-1])}
            want = theirs(theirs(torch.from_numpy(x), **rows), size=want.shape[-2:]).numpy()
        np.testing.assert_allclose(F.interpolate(x, mode=mode, antialias=antialias, **kw), want, rtol=1e-10,
                                   atol=1e-12, err_msg=f"antialias={antialias} {kw}")
        for library in (torch, pytest.importorskip("jax.numpy")) if count % 4 == 0 else (torch,):  # jax: some
            got = F.interpolate(library.asarray(x, dtype=library.float32), mode=mode, antialias=antialias, **kw)
            np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5, err_msg=f"{library.__name__}")


def test_interpolate_antialias_adds_nothing_beyond_the_edge():
    """An infinite input element reaches only the outputs whose filter window holds it: the
    unused taps of a window cut at the edge add nothing (not 0 * inf = nan)."""
    x = np.zeros((1, 1, 4, 12))
    x[..., 0, 0] = np.inf
    want = torch.nn.functional.interpolate(torch.from_numpy(x), size=(2, 5), mode="bicubic", antialias=True).numpy()
    got = F.interpolate(x, size=(2, 5), mode="bicubic", antialias=True)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[~np.isnan(got)], want[~np.isnan(want)])


def test_parameter_containers_list_and_print_as_torchs():
    """ParameterList and ParameterDict: torch's names, order, indexing and printing (a one-entry
    listing inline, as torch prints it); on torch their arrays are leaves that require grad."""
    values = [torch.ones(3), torch.ones(2, 2, dtype=torch.float64)]
    mine, theirs = nn.ParameterList(values), torch.nn.ParameterList([torch.nn.Parameter(v) for v in values])
    assert repr(mine) == repr(theirs) and repr(nn.ParameterList(values[:1])) == repr(theirs[:1])
    assert [n for n, _ in mine.named_parameters()] == ["0", "1"] and all(p.requires_grad for p in mine)
    mine.append(torch.zeros(4))
    mine[0] = torch.full((3,), 2.0)
    assert len(mine) == 3 and float(mine[0][0]) == 2.0 and len(mine[1:]) == 2
    table = nn.ParameterDict({"b": np.ones(2, np.float32), "a": nn.Parameter(np.zeros(3, np.float32))})
    table["c"] = np.ones(1, np.float32)
    del table["b"]
    assert list(table) == ["a", "c"] and "a" in table and list(table.state_dict()) == ["a", "c"]
    assert repr(nn.ParameterDict()) == repr(torch.nn.ParameterDict())


def _container_edits(L):
    """What a torch user does to containers and registrations, in namespace ``L``: each edit's
    outcome (the names and layer types left, or the error's type)."""
    from collections import OrderedDict

    def names(module):
        return [(name, type(child).__name__) for name, child in module.named_children()]

    def kinds(modules):
        return [type(module).__name__ for module in modules]

    def make():
        return L.Sequential(L.Linear(3, 4), L.ReLU(), L.Linear(4, 2)), L.ModuleList([L.ReLU(), L.Tanh(), L.GELU()])

    edits = {
        "seq[1] = Tanh": lambda s, m: (s.__setitem__(1, L.Tanh()), names(s)),
        "seq[-1] = Tanh": lambda s, m: (s.__setitem__(-1, L.Tanh()), names(s)),
        "seq.fc replaced keeps its place": lambda s, m: (setattr(s, "0", L.Tanh()), names(s)),
        "del seq[0]": lambda s, m: (s.__delitem__(0), names(s)),
        "del seq[::2]": lambda s, m: (s.__delitem__(slice(None, None, 2)), names(s)),
        "seq.pop(1)": lambda s, m: (type(s.pop(1)).__name__, names(s)),
        "seq + seq": lambda s, m: names(s + s),
        "seq += seq": lambda s, m: names(s.__iadd__(L.Sequential(L.Tanh(), L.GELU()))),
        "seq * 2": lambda s, m: (names(s * 2), len(list((s * 2).parameters()))),
        "2 * seq": lambda s, m: names(2 * s),
        "seq *= 2": lambda s, m: names(s.__imul__(2)),
        "seq * 0": lambda s, m: s * 0,
        "seq * 1.5": lambda s, m: s * 1.5,
        "seq + list": lambda s, m: s + [L.ReLU()],
        "seq[5]": lambda s, m: s[5],
        "seq[-4] = x": lambda s, m: s.__setitem__(-4, L.ReLU()),
        "seq.insert(1, Tanh)": lambda s, m: names(s.insert(1, L.Tanh())),
        "named seq slice": lambda s, m: names(L.Sequential(OrderedDict([("a", L.ReLU()), ("b", L.Tanh())]))[1:]),
        "named seq del renumbers": lambda s, m: names((lambda q: (q.__delitem__(0), q)[1])(
            L.Sequential(OrderedDict([("a", L.ReLU()), ("b", L.Tanh())])))),
        "dir(seq)": lambda s, m: [name for name in dir(s) if name in ("0", "1", "forward", "training")],
        "dir(linear)": lambda s, m: [name for name in dir(s[0]) if name in ("weight", "bias", "in_features")],
        "list[1] = Linear": lambda s, m: (m.__setitem__(1, L.Linear(2, 2)), kinds(m)),
        "del list[-1]": lambda s, m: (m.__delitem__(-1), names(m)),
        "del list[:2]": lambda s, m: (m.__delitem__(slice(0, 2)), names(m)),
        "list.pop(0)": lambda s, m: (type(m.pop(0)).__name__, names(m)),
        "list + list": lambda s, m: names(m + m),
        "list += [x]": lambda s, m: names(m.__iadd__([L.Identity()])),
        "list[3]": lambda s, m: m[3],
        "dict edits": lambda s, m: (lambda d: (d.update([("c", L.Tanh())]), d.update({"a": L.GELU()}),
                                               type(d.pop("b")).__name__, names(d), d.__delitem__("c"), names(d),
                                               d.clear(), len(d)))(L.ModuleDict({"a": L.ReLU(), "b": L.ReLU()})),
        "dict update bad pair": lambda s, m: L.ModuleDict().update([("a", L.ReLU(), 1)]),
        "dict update not iterable": lambda s, m: L.ModuleDict().update(3),
        "add_module dotted": lambda s, m: s.add_module("a.b", L.ReLU()),
        "add_module empty": lambda s, m: s.add_module("", L.ReLU()),
        "add_module not a module": lambda s, m: s.add_module("x", 3),
        "add_module over an attribute": lambda s, m: s.add_module("training", L.ReLU()),
        "register_buffer over a parameter": lambda s, m: s[0].register_buffer("weight", None),
        "register_parameter over a module": lambda s, m: s.register_parameter("0", None),
        "register_buffer not an array": lambda s, m: s[0].register_buffer("b2", 3),
        "an array assigned to a module's name": lambda s, m: setattr(s, "1", s[0].weight * 2),
        "parameter replaced by a module": lambda s, m: (setattr(s[0], "bias", L.ReLU()),
                                                        [n for n, _ in s[0].named_parameters()], names(s[0])),
        "named_parameters with duplicates": lambda s, m: (
            [n for n, _ in L.Sequential(s[0], s[0]).named_parameters(remove_duplicate=False)],
            [n for n, _ in L.Sequential(s[0], s[0]).named_parameters()]),
    }
    outcomes = {}
    for name, edit in edits.items():
        try:
            outcomes[name] = edit(*make())
        except Exception as error:  # noqa: BLE001 (the type is the outcome compared)
            outcomes[name] = type(error).__name__
    return outcomes


def test_containers_and_registrations_edit_as_torchs():
    """Sequential, ModuleList and ModuleDict edited as torch users do (replacing a layer to
    fine-tune, deleting, popping, joining, repeating) and torch's checks of registered names:
    the same layers in the same order, or the same kind of error."""
    got, want = _container_edits(nn), _container_edits(torch.nn)
    assert got.keys() == want.keys()
    for name in want:
        assert got[name] == want[name], name


def test_parameter_dicts_as_torchs():
    """ParameterDict's dict methods and torch's order (a plain dict's keys sorted), and
    ParameterList's ``+=``."""
    def edits(L):
        table = L.ParameterDict({"b": L.Parameter(torch.ones(2)), "a": L.Parameter(torch.zeros(3))})
        other = L.ParameterDict([("z", L.Parameter(torch.ones(1)))])
        values = L.ParameterList([L.Parameter(torch.ones(1))])
        values += [L.Parameter(torch.ones(2))]
        return [list(table), list(reversed(table)), table.get("q", 5), tuple(table.get("a").shape),
                list(table | other), list(other | table), list(table.copy()), list(table.fromkeys(["x", "y"])),
                tuple(table.setdefault("c", L.Parameter(torch.ones(4))).shape), table.popitem()[0],
                tuple(table.pop("a").shape), list(table), (table.__ior__(other), list(table))[1],
                (table.clear(), len(table))[1], len(values), [n for n, _ in values.named_parameters()]]

    assert edits(nn) == edits(torch.nn)


def test_local_response_norm_refuses_what_torch_refuses():
    for call in (lambda F, x: F.local_response_norm(x[0], 2), lambda F, x: F.local_response_norm(x, 0)):
        with pytest.raises((ValueError, RuntimeError)):
            call(torch.nn.functional, torch.ones(2, 3, 4))
        with pytest.raises(ValueError, match=r"xpnn\.torch_nn\.functional\.local_response_norm: "):
            call(F, np.ones((2, 3, 4), np.float32))


def test_fold_and_unfold_refuse_what_torch_refuses():
    x = torch.randn(2, 3, 4, 5)
    columns = torch.nn.functional.unfold(x, 2)
    calls = [lambda F, a, c: F.fold(c, (4, 6), 2), lambda F, a, c: F.fold(c[:, :5], (4, 5), 2),
             lambda F, a, c: F.unfold(a, 6), lambda F, a, c: F.unfold(a[0, 0], 2)]
    for call in calls:
        with pytest.raises((RuntimeError, IndexError)):
            call(torch.nn.functional, x, columns)
        with pytest.raises((RuntimeError, ValueError), match=r"xpnn\.torch_nn\.functional\.(un)?fold: "):
            call(F, x.numpy(), columns.numpy())


def test_instance_norm_checks_its_input_as_torch():
    """InstanceNorm's rank check, num_features checked only with affine (torch warns without),
    and F.instance_norm's refusals: one spatial element in training, no running statistics
    outside it, statistics of the wrong length: each raised by torch too."""
    import torch.nn.functional as TF

    x = floats(2, 3, 5).astype(np.float32)
    tensor = torch.from_numpy(x)
    with pytest.raises(ValueError, match=r"xpnn\.torch_nn\.InstanceNorm1d: expected 2D or 3D input \(got 4D input\)"):
        nn.InstanceNorm1d(3)(x[..., None])
    with pytest.raises(ValueError, match=r"xpnn\.torch_nn\.InstanceNorm1d: expected input's size at dim=1 to match "
                                         r"num_features \(4\), but got: 3\."):
        nn.InstanceNorm1d(4, affine=True)(x)
    with pytest.raises(ValueError, match=r"xpnn\.torch_nn\.InstanceNorm2d: expected input's size at dim=0"):
        nn.InstanceNorm2d(4, affine=True)(x)  # unbatched (C, H, W): the channels come first
    with pytest.warns(UserWarning, match="num_features is not used because affine=False"):
        got = nn.InstanceNorm1d(4)(x)
    np.testing.assert_allclose(got, TF.instance_norm(tensor).numpy(), rtol=1e-5, atol=1e-6)
    calls = [
        (ValueError, r"expected more than 1 spatial element", lambda F, a: F.instance_norm(a[:, :, :1])),
        (RuntimeError, r"expected running_mean and running_var",
         lambda F, a: F.instance_norm(a, use_input_stats=False)),
        (ValueError, r"running_mean must have shape \(3,\)",
         lambda F, a: F.instance_norm(a, a[0, 0, :4] * 0, a[0, 0, :4] * 0 + 1)),
    ]
    for kind, message, call in calls:
        with pytest.raises((ValueError, RuntimeError)):
            call(TF, tensor)
        with pytest.raises(kind, match=r"xpnn\.torch_nn\.functional\.instance_norm: " + message):
            call(F, x)


def test_pools_and_convolutions_of_every_rank_check_the_input_and_weight_ranks():
    """A function of one rank refuses inputs and kernels of another (which its written-once
    body would take as their own rank), as torch's do."""
    x = floats(2, 3, 6, 6).astype(np.float32)
    for call, message in [(lambda: F.max_pool1d(x, 2), r"max_pool1d: input must be 2-d \(unbatched\) or 3-d"),
                          (lambda: F.avg_pool3d(x[0, 0], 2), r"avg_pool3d: input must be 4-d \(unbatched\) or 5-d"),
                          (lambda: F.conv3d(x, np.ones((2, 3, 1, 1), np.float32)), r"conv3d: weight must be 5-d"),
                          (lambda: F.conv1d(x[0], np.ones((2, 3, 1, 1), np.float32)), r"conv1d: weight must be 3-d"),
                          (lambda: F.conv_transpose2d(x, np.ones((3, 2, 1), np.float32)), r"conv_transpose2d: weight "
                                                                                          r"must be 4-d"),
                          (lambda: F.conv_transpose1d(x, np.ones((3, 2, 1), np.float32)), r"conv_transpose1d: input "
                                                                                          r"must be 2-d")]:
        with pytest.raises(ValueError, match=r"xpnn\.torch_nn\.functional\." + message):
            call()


@pytest.mark.parametrize("output_size, kind", [(-1, RuntimeError), ((2, -3), RuntimeError), ((1, 2, 3), ValueError),
                                               ((2.0, 2), ValueError)])
def test_adaptive_pools_refuse_bad_output_sizes_as_torch(output_size, kind):
    x = floats(2, 3, 6, 6).astype(np.float32)
    for name in ("adaptive_avg_pool2d", "adaptive_max_pool2d"):
        with pytest.raises((RuntimeError, TypeError)):
            getattr(torch.nn.functional, name)(torch.from_numpy(x), output_size)
        with pytest.raises(kind, match=rf"xpnn\.torch_nn\.functional\.{name}: .*output_size"):
            getattr(F, name)(x, output_size)


@pytest.mark.parametrize("call", [
    lambda F, x, w: F.max_pool2d(x, 0), lambda F, x, w: F.max_pool2d(x, 2, stride=0),
    lambda F, x, w: F.avg_pool2d(x, -1), lambda F, x, w: F.max_pool2d(x, 2, dilation=0),
    lambda F, x, w: F.conv2d(x, w, stride=0), lambda F, x, w: F.conv2d(x, w, padding=-1),
    lambda F, x, w: F.conv2d(x, w, dilation=0), lambda F, x, w: F.conv_transpose2d(x, w, stride=0),
    lambda F, x, w: F.rrelu(x, 0.5, 0.1), lambda F, x, w: F.normalize(x, dim=4),
    lambda F, x, w: F.max_pool1d(x[0], 2, stride=0), lambda F, x, w: F.avg_pool3d(x[None], (2, 2, 0)),
    lambda F, x, w: F.conv_transpose1d(x[0], w[0], dilation=0),
], ids=["kernel 0", "stride 0", "kernel -1", "pool dilation 0", "conv stride 0", "conv padding -1",
        "conv dilation 0", "transposed stride 0", "rrelu bounds", "normalize dim", "1-d pool stride 0",
        "3-d pool kernel 0", "1-d transposed dilation 0"])
def test_bad_window_and_bound_arguments_are_errors_as_in_torch(call):
    """Kernel sizes, strides and dilations below 1, paddings below 0, rrelu's lower bound above
    its upper one, a dim out of range: torch refuses each, and so does xpnn, naming the function
    and the argument (a 0 stride divided by zero, a negative padding cropped, the bounds were
    taken as they came)."""
    import torch.nn.functional as TF

    x, w = floats(1, 2, 6, 6).astype(np.float32), floats(2, 2, 2, 2).astype(np.float32)
    with pytest.raises((RuntimeError, IndexError)):
        call(TF, torch.from_numpy(x), torch.from_numpy(w))
    with pytest.raises((RuntimeError, ValueError), match=r"xpnn\.torch_nn\.functional\.[a-z_0-9]+: "
                                                         r"(kernel_size|stride|padding|dilation|lower|dim)"):
        call(F, x, w)
    with pytest.raises(RuntimeError, match=r"xpnn\.torch_nn\.Conv2d: stride must be at least 1"):
        nn.Conv2d(2, 2, 2, stride=0)


def test_normalize_with_p_0_counts_the_nonzero_elements_as_torch():
    x = np.array([[0.0, 2.0, 3.0], [1.0, 0.0, 0.0]], np.float32)
    np.testing.assert_array_equal(F.normalize(x, p=0.0), torch.nn.functional.normalize(torch.from_numpy(x), p=0.0))


@pytest.mark.parametrize("lambd", [-1.0, -0.5, math.nan])
@pytest.mark.parametrize("library", ["numpy", "torch", "jax"])
def test_hardshrink_of_a_negative_or_nan_lambd_shrinks_nothing_as_torch(library, lambd):
    """torch takes them (only softshrink refuses); xpnn.hard_shrink refuses them (jax-style API)."""
    x = np.array([-2.0, -0.5, -0.0, 0.0, 0.3, 2.0, np.inf, np.nan], np.float32)
    expected = torch.nn.functional.hardshrink(torch.from_numpy(x), lambd).numpy()
    got = np.asarray(F.hardshrink(BACKENDS[library].asarray(x, "float32"), lambd))
    np.testing.assert_array_equal(got, expected)
    assert np.array_equal(np.signbit(got), np.signbit(expected))


@pytest.mark.parametrize("p", [-math.inf, -2.0, -0.5, 0.5, 3.0, math.inf])
def test_normalize_with_any_p_as_torch(p):
    """p = -inf is the smallest magnitude (the power formula gave 1 there: inf ** -0); negative
    and fractional p by the power formula, a zero making the norm 0 for p < 0, as torch."""
    for x in (np.array([[-3.0, -1.0, -0.0, 0.0, 0.5, 1.0, 3.0]], np.float32), floats(3, 6).astype(np.float32)):
        expected = torch.nn.functional.normalize(torch.from_numpy(x), p=p, dim=1).numpy()
        np.testing.assert_allclose(F.normalize(x, p=p, dim=1), expected, rtol=1e-5)


@pytest.mark.parametrize("library", ["numpy", "jax"])
@pytest.mark.parametrize("model", list(MODEL_CASES))
def test_trained_torch_models_run_on_numpy_and_jax(model, library):
    """A trained torch.nn model's state_dict in the same definition under xpnn.torch_nn: torch's
    outputs, and the twin's state_dict back in torch gives them too."""
    from xpnn.conformance.torch_nn import run_model

    checked = run_model(model, BACKENDS[library], "float32")
    assert checked.passed, _passed(checked)


@pytest.mark.parametrize("model", list(MODEL_CASES))
def test_checkpoint_saved_by_torch_loads_from_disk(tmp_path, model):
    """torch.save of a trained model's state_dict, torch.load, and the xpnn twin (NumPy) answers as
    torch; the twin's state_dict through xpnn.save/xpnn.load (safetensors) gives it back exactly."""
    import torch

    build, arrays, kwargs, _ = MODEL_CASES[model]
    torch.manual_seed(0)
    reference = trained(build(torch.nn), arrays, kwargs)
    torch.save(reference.state_dict(), tmp_path / "model.pt")
    twin = build(nn).eval()
    twin.load_state_dict(torch.load(tmp_path / "model.pt"))
    t_args, t_kwargs = made(arrays, kwargs, "float32", lambda a, d: torch.from_numpy(np.asarray(a, d)))
    x_args, x_kwargs = made(arrays, kwargs, "float32", lambda a, d: np.asarray(a, d))
    with torch.no_grad():
        want = _flat(reference(*t_args, **t_kwargs))
    got = _flat(twin(*x_args, **x_kwargs))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-5, atol=1e-6)
    xpnn.save(tmp_path / "twin.safetensors", dict(twin.state_dict()))  # and xpnn's own checkpoint format
    again = build(nn).eval()
    again.load_state_dict(xpnn.load(tmp_path / "twin.safetensors", like=np.empty(0)))
    for g, w in zip(_flat(again(*x_args, **x_kwargs)), got, strict=True):
        np.testing.assert_array_equal(g, w)


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


def _tied(L):
    """Two Linear layers sharing one weight (tied weights), in namespace ``L``."""

    class Tied(L.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = L.Linear(3, 3), L.Linear(3, 3)
            self.b.weight = self.a.weight

        def forward(self, x):
            return self.b(L.functional.tanh(self.a(x)))

    return Tied()


def test_a_parameter_assigned_to_a_second_module_is_tied_as_torchs(backend):
    """``b.weight = a.weight`` on the module's own library: one array in both modules, counted
    once, and on torch one leaf whose gradient sums both uses."""
    torch.manual_seed(0)
    reference = _tied(torch.nn).double()
    twin = nn.Sequential()  # built on the backend directly, not moved there after tying
    twin.a, twin.b = (nn.Linear(3, 3, like=backend.like(), dtype="float64") for _ in range(2))
    twin.b.weight = twin.a.weight
    assert twin.b.weight is twin.a.weight and len(list(twin.parameters())) == len(list(reference.parameters())) == 3
    if backend.name == "torch":
        tied = _tied(nn).to(like=torch, dtype=torch.float64)
        tied.load_state_dict(reference.state_dict())
        x = torch.ones(2, 3, dtype=torch.float64)
        for model in (reference, tied):
            model(x).sum().backward()
        np.testing.assert_allclose(tied.a.weight.grad.numpy(), reference.a.weight.grad.numpy(), rtol=1e-12)


def _outcome(call):
    try:
        return call()
    except (ValueError, RuntimeError) as error:
        return f"{type(error).__name__}: {error}"


def test_functional_call_as_torch_funcs(backend):
    """``torch.func.functional_call``'s forms: one dict or several, tied weights replaced together
    (or not, ``tie_weights=False``), ``strict``'s missing keys, and its errors; a name the module
    lacks is an error (torch ignores it)."""
    from torch.func import functional_call

    torch.manual_seed(0)
    reference, twin = _tied(torch.nn), _tied(nn)
    twin.to(like=backend.like(), dtype="float64")
    twin.load_state_dict(reference.double().state_dict())
    x = np.random.default_rng(0).standard_normal((2, 3))
    rng = np.random.default_rng(1)
    w, bias = rng.standard_normal((3, 3)), rng.standard_normal(3)
    cases = [({"a.weight": w}, {}), (({"a.weight": w}, {"b.bias": bias}), {}), ({"b.weight": w}, {}),
             ({"a.weight": w}, {"tie_weights": False}), ({"a.weight": w, "b.weight": 2 * w}, {}),
             ({"a.weight": w, "b.weight": 2 * w}, {"tie_weights": False}), (({"a.bias": bias}, {"a.bias": bias}), {}),
             ({"a.weight": w}, {"strict": True}), ({"a.weight": w, "a.bias": bias, "b.bias": bias}, {"strict": True})]

    def converted(arrays, convert):
        return convert(arrays) if isinstance(arrays, np.ndarray) else (
            tuple(converted(a, convert) for a in arrays) if isinstance(arrays, tuple)
            else {k: convert(v) for k, v in arrays.items()})

    for arrays, kwargs in cases:
        want = _outcome(lambda: functional_call(reference, converted(arrays, torch.tensor), (torch.tensor(x),),
                                                **kwargs))
        got = _outcome(lambda: nn.functional_call(twin, converted(arrays, lambda a: backend.asarray(a, "float64")),
                                                  (backend.asarray(x, "float64"),), **kwargs))
        if isinstance(want, str):  # torch's message, after the name of xpnn's function
            assert isinstance(got, str), (arrays, kwargs)
            assert got.replace("xpnn.torch_nn.functional_call: ", "").replace("xpnn.torch_nn.", "") == want
        else:
            np.testing.assert_allclose(backend.to_numpy(got), want.detach().numpy(), rtol=1e-12, err_msg=str(arrays))
    with pytest.raises(KeyError, match=r"functional_call: Tied has no parameter or buffer 'a\.scale'"):
        nn.functional_call(twin, {"a.scale": backend.asarray(bias, "float64")}, (backend.asarray(x, "float64"),))
    with pytest.warns(FutureWarning, match="stateless.functional_call` is deprecated"):
        got = nn.utils.stateless.functional_call(twin, {"b.bias": backend.asarray(bias, "float64")},
                                                 backend.asarray(x, "float64"))
    want = functional_call(reference, {"b.bias": torch.tensor(bias)}, torch.tensor(x))
    np.testing.assert_allclose(backend.to_numpy(got), want.detach().numpy(), rtol=1e-12)


def test_loading_keeps_tied_weights_and_the_optimizers_parameters(backend):
    """As torch's ``load_state_dict`` copies into the arrays held: a torch optimizer made before
    the load still trains the model, and tied weights stay one array after a load and ``to()``."""
    torch.manual_seed(0)
    reference = _tied(torch.nn)
    twin = _tied(nn).to(like=backend.like())
    twin.load_state_dict(reference.state_dict())
    assert twin.b.weight is twin.a.weight and len(list(twin.parameters())) == 3
    twin.to(dtype="float64")
    assert twin.b.weight is twin.a.weight and str(twin.a.weight.dtype).endswith(
        str(backend.asarray(np.zeros(1), "float64").dtype).rsplit(".", 1)[-1])
    if backend.name == "torch":
        model = _tied(nn).to(like=torch)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        model.load_state_dict(reference.state_dict())
        model(torch.ones(2, 3)).sum().backward()
        optimizer.step()
        assert not torch.equal(model.a.weight, reference.a.weight) and model.b.weight is model.a.weight


def test_convolutions_refuse_an_empty_output_as_torch_does(backend):
    """A kernel wider than the padded input, or a transposed convolution's output size below 1:
    torch's errors (jax.lax would give an empty output), naming the function, on every backend."""
    import torch.nn.functional as TF

    def made(*shape: int):
        return backend.asarray(np.ones(shape), "float32")

    expected = r"conv2d: calculated padded input size per channel: \(3 x 9\)\. Kernel size: \(7 x 1\)"
    with pytest.raises(RuntimeError, match="Kernel size: \\(7 x 1\\). Kernel size can't be greater"):
        TF.conv2d(torch.ones(1, 1, 3, 9), torch.ones(1, 1, 4, 1), dilation=2)
    with pytest.raises(RuntimeError, match="xpnn.torch_nn.functional." + expected):
        F.conv2d(made(1, 1, 3, 9), made(1, 1, 4, 1), dilation=2)
    with pytest.raises(RuntimeError, match=expected):
        nn.Conv2d(1, 1, (4, 1), dilation=2, like=backend.like())(made(1, 1, 3, 9))
    expected = r"given input size per channel: \(2 x 2\)\. Calculated output size per channel: \(-2 x -2\)"
    with pytest.raises(RuntimeError, match="(?i)" + expected):  # torch's message starts "Given"
        TF.conv_transpose2d(torch.ones(1, 2, 2, 2), torch.ones(2, 1, 1, 1), padding=2)
    with pytest.raises(RuntimeError, match="xpnn.torch_nn.functional.conv_transpose2d: " + expected):
        F.conv_transpose2d(made(1, 2, 2, 2), made(2, 1, 1, 1), padding=2)


@pytest.mark.parametrize("ids", [[1, -1], [0, 5], [[7, 2]]], ids=["negative", "one past", "above"])
def test_embedding_refuses_ids_out_of_range_as_torch(backend, ids):
    """An id outside [0, num_embeddings) is torch's IndexError naming the function, where the ids
    can be read (NumPy's take would wrap a negative id, jax's clamp it); on Dask, whose ids are a
    lazy graph, the lookup runs as the library's take has it."""
    import torch.nn.functional as TF

    table = np.arange(15.0).reshape(5, 3)
    with pytest.raises(IndexError, match="index out of range in self"):
        TF.embedding(torch.tensor(ids), torch.from_numpy(table))
    given = backend.asarray(np.asarray(ids), "int64")
    if not adapter_of(given).values_at_hand(given):
        F.embedding(given, backend.asarray(table, "float32"))  # a graph, computed later
        return
    with pytest.raises(IndexError, match=r"xpnn\.torch_nn\.functional\.embedding: index out of range in self"):
        F.embedding(given, backend.asarray(table, "float32"))
    with pytest.raises(IndexError, match="index out of range in self"):
        nn.Embedding(5, 3, like=backend.like())(backend.asarray(np.asarray(ids), "int64"))
    bags = np.asarray(ids).reshape(1, -1)  # one bag (torch's fused kernel checks the range on torch)
    with pytest.raises(RuntimeError, match="idx < num_embeddings"):
        TF.embedding_bag(torch.from_numpy(bags), torch.from_numpy(table))
    with pytest.raises(IndexError, match=r"xpnn\.torch_nn\.functional\.embedding_bag: index out of range in self"):
        F.embedding_bag(backend.asarray(bags, "int64"), backend.asarray(table, "float32"))


@pytest.mark.parametrize("classes, num_classes, message", [
    ([0, 3], 3, "Class values must be smaller than num_classes"), ([0, -1], 3, "Class values must be non-negative"),
    ([0, -1], -1, "Class values must be non-negative"), ([], -1, "Can not infer total number of classes"),
])
def test_one_hot_refuses_classes_out_of_range_as_torch(backend, classes, num_classes, message):
    """A class below 0 or from num_classes on, and classes to count from an empty tensor: torch's
    RuntimeError naming the function, where the classes can be read (xpnn.one_hot, as jax.nn's,
    gives such a class a row of zeros); in range, torch's rows."""
    with pytest.raises(RuntimeError, match=message):
        torch.nn.functional.one_hot(torch.tensor(classes, dtype=torch.int64), num_classes)
    given = backend.asarray(np.asarray(classes, dtype=np.int64), "int64")
    if num_classes >= 0 and not adapter_of(given).values_at_hand(given):
        return  # a graph: the classes are not read
    with pytest.raises(RuntimeError, match=rf"xpnn\.torch_nn\.functional\.one_hot: {message}"):
        F.one_hot(given, num_classes)
    np.testing.assert_array_equal(backend.to_numpy(F.one_hot(backend.asarray(np.array([[2, 0]]), "int64"), -1)),
                                  torch.nn.functional.one_hot(torch.tensor([[2, 0]]), -1).numpy())


@pytest.mark.slow_on("dask", "jax")
@pytest.mark.parametrize("keywords", [
    {"stride": 2}, {"stride": 2, "padding": 1}, {"stride": 3, "padding": 1}, {"stride": 2, "dilation": 2},
    {"stride": 2, "ceil_mode": True}, {"stride": 3, "padding": 1, "ceil_mode": True},
], ids=str)
def test_pools_whose_windows_leave_the_input_unread_at_the_end(backend, keywords):
    """Windows of 3 at a stride of 2 or 3 over 9 and 10 positions: floor mode leaves the last
    position or two unread (xpnn pads them with the symmetric padding, which torch's kernels take
    as their own) and ceil mode adds a window; max pools with indices and the averages (with
    and without the padding counted) equal torch's on every backend."""
    import torch.nn.functional as TF

    values = np.random.default_rng(4).standard_normal((2, 3, 9, 10)).astype(np.float32)
    x, tensor = backend.asarray(values, "float32"), torch.from_numpy(values)
    dilation = keywords.get("dilation", 1)
    got = F.max_pool2d(x, 3, return_indices=True, **keywords)
    want = TF.max_pool2d(tensor, 3, return_indices=True, **keywords)
    np.testing.assert_array_equal(backend.to_numpy(got[0]), want[0].numpy())
    np.testing.assert_array_equal(backend.to_numpy(got[1]), want[1].numpy())
    if dilation == 1:
        average = {key: value for key, value in keywords.items() if key != "dilation"}
        for count_include_pad in (True, False):
            np.testing.assert_allclose(
                backend.to_numpy(F.avg_pool2d(x, 3, count_include_pad=count_include_pad, **average)),
                TF.avg_pool2d(tensor, 3, count_include_pad=count_include_pad, **average).numpy(), rtol=1e-6,
                atol=1e-6, err_msg=str(count_include_pad))  # sums of 9 in another order (jax's)


def _same_outcome(theirs, ours):
    """``ours()`` gives ``theirs()``'s values, or raises its error class with torch's message
    (after xpnn's ``xpnn.torch_nn...: `` prefix)."""
    try:
        want = theirs()
    except (RuntimeError, IndexError) as error:
        with pytest.raises(type(error)) as raised:
            ours()
        assert str(raised.value).startswith("xpnn.torch_nn.") and str(raised.value).endswith(str(error)), raised.value
    else:
        np.testing.assert_allclose(np.asarray(ours()), want.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shapes", [((2, 3), (2, 4), None), ((3,), (4,), (5,)), ((2, 4), (2, 4), None),
                                    ((2, 3), (2, 5), None), ((2, 3), (3, 4), None), ((2, 1, 3), (2, 4), None),
                                    ((3,), (2, 4), None), ((2, 3), (4,), None), ((2, 3), (2, 4), (4,))], ids=str)
def test_bilinear_shapes_as_torch_checks_them(shapes):
    """torch's shape errors (xpnn broadcast (2, 1, 3) against (2, 4) into a (2, 2, 5) answer)."""
    first, second, bias_shape = shapes
    rng = np.random.default_rng(6)
    x1, x2, weight = (rng.standard_normal(shape).astype(np.float32) for shape in (first, second, (5, 3, 4)))
    bias = None if bias_shape is None else rng.standard_normal(bias_shape).astype(np.float32)
    tensors = [None if a is None else torch.from_numpy(a) for a in (x1, x2, weight, bias)]
    _same_outcome(lambda: torch.nn.functional.bilinear(*tensors), lambda: F.bilinear(x1, x2, weight, bias))


@pytest.mark.parametrize("dims", [(3, 1), (0, -2), (-5, 1), (1, 1), (1, -1), (0, -1)], ids=str)
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), ()], ids=str)
def test_flatten_dims_as_torch_takes_them(shape, dims):
    """torch's errors for dims out of range or in the wrong order (a NumPy reshape error, or an
    answer for a 0-d input, here before); a 0-d input flattens to one element."""
    x = np.asarray(np.random.default_rng(7).standard_normal(shape), np.float32)
    _same_outcome(lambda: torch.nn.Flatten(*dims)(torch.from_numpy(x)), lambda: nn.Flatten(*dims)(x))


@pytest.mark.parametrize("dim", [0, -1, 1])
@pytest.mark.parametrize("function", ["softmax", "log_softmax", "softmin"])
def test_softmax_of_a_0d_input_as_torchs(function, dim):
    """torch takes dims 0 and -1 of a 0-d input as its one element (xpnn refused them)."""
    x = np.asarray(1.5, np.float32)
    try:
        want = getattr(torch.nn.functional, function)(torch.from_numpy(x), dim=dim)
    except IndexError:
        with pytest.raises(ValueError, match=rf"xpnn.{function}: axis={dim} is out of bounds for a 0-d array"):
            getattr(F, function)(x, dim=dim)
    else:
        np.testing.assert_allclose(getattr(F, function)(x, dim=dim), want.numpy())


@pytest.mark.parametrize(("masks", "value_length", "message"), [
    ({"attn_mask": (5, 6)}, 7, r"The shape of the 2D attn_mask is \(5, 6\), but should be \(5, 7\)\."),
    ({"attn_mask": (2, 5, 7)}, 7, r"The shape of the 3D attn_mask is \(2, 5, 7\), but should be \(4, 5, 7\)\."),
    ({"attn_mask": (1, 1, 5, 7)}, 7, r"attn_mask's dimension 4 is not supported"),
    ({"key_padding_mask": (2, 6)}, 7, r"expecting key_padding_mask shape of \(2, 7\), but got \(2, 6\)"),
    ({"key_padding_mask": (7, 2)}, 7, r"expecting key_padding_mask shape of \(2, 7\), but got \(7, 2\)"),
    ({}, 6, r"key shape \(7, 2, 8\) does not match value shape \(6, 2, 8\)"),
], ids=["2d mask", "3d mask", "4d mask", "padding length", "padding transposed", "key and value"])
def test_attention_masks_and_values_of_other_shapes_are_torchs_errors(masks, value_length, message):
    """torch refuses these; xpnn reshaped the masks into a NumPy error, or multiplied by a value
    of another length into one."""
    rng = np.random.default_rng(8)
    query, key = rng.standard_normal((5, 2, 8)).astype(np.float32), rng.standard_normal((7, 2, 8)).astype(np.float32)
    value = key[:value_length]
    masks = {name: rng.random(shape) > 0.5 for name, shape in masks.items()}
    reference = torch.nn.MultiheadAttention(8, 2).eval()
    with pytest.raises((AssertionError, RuntimeError)):
        reference(*map(torch.from_numpy, (query, key, value)), **{k: torch.from_numpy(v) for k, v in masks.items()})
    model = nn.MultiheadAttention(8, 2)
    model.load_state_dict(reference.state_dict())
    with pytest.raises((ValueError, RuntimeError), match=r"xpnn\.torch_nn\.functional\.multi_head_attention_forward: "
                                                         + message):
        model(query, key, value, **masks)


@pytest.mark.parametrize("divisor", [0, 2.5, True, -2, np.int64(3), np.int64(0)], ids=repr)
def test_avg_pool_divisor_override_as_torch_takes_it(divisor):
    """torch refuses a zero divisor (RuntimeError) and one that is no int (TypeError), and divides
    by a negative one or a NumPy integer; xpnn returned inf for 0 with NumPy's warning."""
    x = np.random.default_rng(5).standard_normal((1, 2, 4, 4)).astype(np.float32)
    try:
        want = torch.nn.functional.avg_pool2d(torch.from_numpy(x), 2, divisor_override=divisor)
    except (RuntimeError, TypeError) as error:
        with pytest.raises(type(error), match=r"xpnn\.torch_nn\.functional\.avg_pool2d: divisor_override must be a "
                                              r"non-zero int \(as torch\)"):
            F.avg_pool2d(x, 2, divisor_override=divisor)
    else:
        np.testing.assert_allclose(F.avg_pool2d(x, 2, divisor_override=divisor), want.numpy(), rtol=1e-6)


@pytest.mark.parametrize("threshold", [20.0, 10.0, 16.0, 40.0, 4.0])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softplus_of_beta_one_cuts_off_at_any_threshold_as_torch(backend, dtype, threshold):
    """``softplus(x, 1, threshold)`` is x above the threshold and log(1 + e^x) below it, as torch's:
    where the threshold is above -log(eps) (15.9 in float32, 36 in float64) the cut-off changes
    nothing and xpnn takes log(1 + e^x) alone, which then equals x itself above it."""
    values = np.concatenate([np.linspace(-50.0, 50.0, 4001), threshold + np.linspace(-1e-3, 1e-3, 21),
                             [-math.inf, math.inf, math.nan]])
    got = backend.to_numpy(F.softplus(backend.asarray(values, dtype), 1, threshold))
    want = torch.nn.functional.softplus(torch.from_numpy(values.astype(dtype)), 1, threshold).numpy()
    np.testing.assert_allclose(got, want, rtol=2 * np.finfo(dtype).eps, atol=0)
    above = values.astype(dtype) > threshold
    np.testing.assert_array_equal(got[above], values.astype(dtype)[above])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("call", [
    lambda F, x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True),
    lambda F, x: F.max_pool2d(x, (2, 3), (1, 2), (1, 1), (2, 1), return_indices=True),
    lambda F, x: F.max_pool2d(x, 3, 2, ceil_mode=True),
    lambda F, x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
    lambda F, x: F.avg_pool2d(x, (3, 2), 2, (1, 0), ceil_mode=True),
    lambda F, x: F.avg_pool2d(x, 2, divisor_override=3),
], ids=["max-indices-ceil", "max-indices-dilated", "max-ceil", "avg-ceil-no-pad", "avg-ceil", "avg-divisor"])
def test_torch_fused_pools_equal_the_written_once_windows(monkeypatch, call, dtype):
    """On torch the pools run torch's own kernels (``fused_pool``), which give the written-once
    windows' maxima, indices (ties, NaN, infinities) and means: the same call with fast paths
    off, on (2, 3, 9, 10) and unbatched images."""
    values = np.round(np.random.default_rng(5).standard_normal((2, 3, 9, 10)) * 2) / 2
    values[0, 0, 2, 2], values[1, 1, 0, :3], values[1, 2, 4, 4] = np.nan, np.inf, -np.inf
    adapter = adapter_of(torch.zeros(1))
    kinds = []
    fused = adapter.fused_pool
    monkeypatch.setattr(adapter, "fused_pool", lambda kind, *a: kinds.append(kind) or fused(kind, *a))
    for x in (torch.from_numpy(values).to(dtype), torch.from_numpy(values[0]).to(dtype)):
        got = call(F, x)
        with xpnn.fast_paths(False):
            want = call(F, x)
        for a, b in zip(*((got, want) if isinstance(got, tuple) else ((got,), (want,)))):
            assert a.dtype == b.dtype and a.shape == b.shape
            torch.testing.assert_close(a, b, rtol=4 * torch.finfo(dtype).eps, atol=0, equal_nan=True)
    assert kinds and not [entry for entry in xpnn.fast_path_report() if "fused_pool" in entry.function]


def test_integer_pools_take_the_written_once_windows_and_report_nothing(backend):
    """Integer images (torch's integer pools are partly unimplemented) are pooled written once, on
    every backend, and no fused pool is checked or reported for them."""
    values = np.arange(2 * 3 * 8 * 9).reshape(2, 3, 8, 9) % 17 - 8
    x, tensor = backend.asarray(values, "int64"), torch.from_numpy(values)
    np.testing.assert_array_equal(backend.to_numpy(F.max_pool2d(x, 3, 2, 1, ceil_mode=True)),
                                  torch.nn.functional.max_pool2d(tensor.double(), 3, 2, 1, ceil_mode=True).numpy())
    np.testing.assert_array_equal(backend.to_numpy(F.avg_pool2d(x, 2)),
                                  torch.nn.functional.avg_pool2d(tensor, 2).numpy())
    assert not [entry for entry in xpnn.fast_path_report() if "fused_pool" in entry.function]


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_pools_of_any_geometry_equal_torchs_kernels_written_once(data):
    """Any window, stride, padding (at most half the window), dilation and ceil_mode over small
    images: the written-once windows (fast paths off) give torch's own kernels' maxima, indices
    and means, count_include_pad either way."""
    height, width = data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9))
    window = (data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4)))
    stride = (data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4)))
    padding = (data.draw(st.integers(0, window[0] // 2)), data.draw(st.integers(0, window[1] // 2)))
    dilation = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    ceil_mode, count_include_pad = data.draw(st.booleans()), data.draw(st.booleans())
    values = np.round(np.random.default_rng(data.draw(st.integers(0, 9))).standard_normal((2, 2, height, width)) * 2)
    x = torch.from_numpy(values / 2)
    try:
        want = torch.nn.functional.max_pool2d(x, window, stride, padding, dilation, ceil_mode, return_indices=True)
    except RuntimeError:  # an empty output, which xpnn refuses too
        with pytest.raises((ValueError, RuntimeError)), xpnn.fast_paths(False):
            F.max_pool2d(x, window, stride, padding, dilation, ceil_mode, return_indices=True)
        return
    with xpnn.fast_paths(False):
        got = F.max_pool2d(x, window, stride, padding, dilation, ceil_mode, return_indices=True)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
        try:
            mean = torch.nn.functional.avg_pool2d(x, window, stride, padding, ceil_mode, count_include_pad)
        except RuntimeError:
            return
        torch.testing.assert_close(F.avg_pool2d(x, window, stride, padding, ceil_mode, count_include_pad), mean,
                                   rtol=1e-12, atol=1e-12)


def test_check_fast_paths_checks_the_fused_pools():
    """``xpnn.check_fast_paths(torch)`` in a fresh interpreter, before anything imports the
    torch-style functions (where the fused pools' and resizes' checks are entered), runs those
    checks too, and torch's kernels pass them."""
    script = ("import torch, xpnn\n"
              "from xpnn import _kernel_check\n"
              "xpnn.check_fast_paths(torch, dtypes=('float32',))\n"
              "for kind in ('max', 'max_indices', 'avg'):\n"
              "    for rank in (1, 2, 3):\n"
              "        key = (f'fused_pool({kind!r}, {rank}-d)', 'torch', 'float32', 'cpu')\n"
              "        assert key in _kernel_check._OUTCOMES and _kernel_check._OUTCOMES[key] is None, key\n"
              "for name in ('nearest', 'nearest-exact', 'linear', 'bilinear', 'bicubic', 'trilinear'):\n"
              "    for key in ((f'fused_resample({name!r})', 'torch', 'float32', 'cpu'),\n"
              "                (f'fused_grid_sample({name!r})', 'torch', 'float32', 'cpu')):\n"
              "        if 'grid' not in key[0] or name in ('nearest', 'bilinear', 'bicubic'):\n"
              "            assert key in _kernel_check._OUTCOMES and _kernel_check._OUTCOMES[key] is None, key\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_a_wrong_fused_pool_is_switched_off(monkeypatch, rank):
    """A fused pool that disagrees with the written-once windows on the kernel check's probe is
    not used on this machine: the pool of each rank gives torch's result and the report says why."""
    from xpnn import _kernel_check

    adapter = adapter_of(torch.zeros(1))
    fused = adapter.fused_pool

    def shifted(kind, *arguments):
        out = fused(kind, *arguments)
        return (out[0], out[1] + 1) if kind == "max_indices" else out

    monkeypatch.setattr(adapter, "fused_pool", shifted)
    monkeypatch.setattr(_kernel_check, "_OUTCOMES", {})
    monkeypatch.setattr(_kernel_check, "LAYER_KERNEL_ANSWERS", {})
    x = torch.randn(2, 3, *(6,) * rank)
    got = getattr(F, f"max_pool{rank}d")(x, 2, return_indices=True)
    want = getattr(torch.nn.functional, f"max_pool{rank}d")(x, 2, return_indices=True)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    entries = [entry for entry in xpnn.fast_path_report() if entry.function == f"fused_pool('max_indices', {rank}-d)"]
    assert len(entries) == 1 and entries[0].backend == "torch" and "the fused max_indices pool" in entries[0].reason


def test_a_wrong_fused_resize_is_switched_off_and_torchs_one_column_defect_avoided(monkeypatch):
    """A fused resize that disagrees with the written-once taps on the check's probe is not used
    (interpolate gives the written-once values, the report says why); an antialiased resize to
    one column of several rows never reaches torch's kernel, which gives every row one value."""
    from xpnn import _kernel_check

    x = torch.randn(1, 2, 9, 8, dtype=torch.float64)
    written = xpnn.fast_paths(False)(F.interpolate)(x, size=(4, 1), mode="bilinear", antialias=True)
    assert not torch.allclose(written[0, 0, 0], written[0, 0, 1])
    torch.testing.assert_close(F.interpolate(x, size=(4, 1), mode="bilinear", antialias=True), written)
    adapter = adapter_of(torch.zeros(1))
    fused = adapter.fused_resample
    monkeypatch.setattr(adapter, "fused_resample", lambda *arguments: fused(*arguments) + 1e-3)
    monkeypatch.setattr(_kernel_check, "_OUTCOMES", {})
    monkeypatch.setattr(_kernel_check, "LAYER_KERNEL_ANSWERS", {})
    want = torch.nn.functional.interpolate(x, scale_factor=1.5, mode="bicubic")
    torch.testing.assert_close(F.interpolate(x, scale_factor=1.5, mode="bicubic"), want)
    entries = [entry for entry in xpnn.fast_path_report() if entry.function == "fused_resample('bicubic')"]
    assert len(entries) == 1 and "the fused bicubic resize" in entries[0].reason


def test_lazy_modules_take_their_sizes_from_the_first_call_or_a_state_dict(backend):
    """A lazy model becomes torch's eager model at its first call (its parameters of the input's
    library, or of ``.to(like=...)``'s, made then), or when a torch state_dict is loaded into it
    (sized from its arrays), and then gives torch's outputs; a load that cannot size it is
    missing torch's keys; the training flag set before is kept."""
    torch.manual_seed(0)
    reference = torch.nn.Sequential(torch.nn.LazyConv2d(4, 3), torch.nn.LazyBatchNorm2d(), torch.nn.ReLU(),
                                    torch.nn.Flatten(), torch.nn.LazyLinear(2)).eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    want = reference(torch.from_numpy(x)).detach().numpy()
    loaded = nn.Sequential(nn.LazyConv2d(4, 3), nn.LazyBatchNorm2d(), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    loaded.to(like=backend.like()).eval()
    assert list(loaded.parameters()) == [] and loaded.state_dict() == {}
    loaded.load_state_dict(reference.state_dict())
    assert repr(loaded) == repr(reference) and not loaded[1].training
    np.testing.assert_allclose(backend.to_numpy(loaded(backend.asarray(x, "float32"))), want, rtol=1e-5, atol=1e-6)
    called = nn.Sequential(nn.LazyConv2d(4, 3), nn.LazyBatchNorm2d(), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    called.eval()(backend.asarray(x, "float32"))
    assert repr(called) == repr(reference) and not called[4].training
    assert adapter_of(called[0].weight) is adapter_of(backend.asarray(x, "float32"))
    called.load_state_dict(reference.state_dict())
    np.testing.assert_allclose(backend.to_numpy(called(backend.asarray(x, "float32"))), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeError) as theirs:
        torch.nn.LazyLinear(3).load_state_dict({})
    with pytest.raises(RuntimeError) as mine:
        nn.LazyLinear(3).load_state_dict({})
    assert str(mine.value) == str(theirs.value)
    early = nn.LazyLinear(2)  # made without a call, as torch's initialize_parameters
    assert early.has_uninitialized_params() and torch.nn.LazyLinear(2).has_uninitialized_params()
    early.initialize_parameters(backend.asarray(x.reshape(2, -1), "float32"))
    assert type(early) is nn.Linear and early.in_features == 108 and adapter_of(early.weight) is adapter_of(
        backend.asarray(x, "float32"))


def test_fractional_max_pool_draws_its_windows_and_refuses_what_torch_refuses(backend):
    """Without ``_random_samples`` the windows are drawn from the generator (the same seed, the
    same windows; each output the input's value at its returned index); sizes, ratios and
    samples torch refuses are refused."""
    x = backend.asarray(np.random.default_rng(0).standard_normal((3, 2, 9, 8)), "float32")
    nn.manual_seed(3)
    first, where = F.fractional_max_pool2d(x, 2, output_size=(5, 4), return_indices=True)
    nn.manual_seed(3)
    again = F.fractional_max_pool2d(x, 2, output_size=(5, 4))
    np.testing.assert_array_equal(backend.to_numpy(first), backend.to_numpy(again))
    host = torch.from_numpy(backend.to_numpy(x))
    taken = torch.gather(host.reshape(3, 2, -1), 2, torch.from_numpy(backend.to_numpy(where)).reshape(3, 2, -1))
    np.testing.assert_array_equal(taken.reshape(3, 2, 5, 4).numpy(), backend.to_numpy(first))
    calls = [
        (ValueError, r"fractional_max_pool2d: pool size 3 too large relative to input size 9",
         lambda F, a: F.fractional_max_pool2d(a, 3, output_size=8)),
        (ValueError, r"fractional_max_pool2d: requires specifying either an output_size or an output_ratio",
         lambda F, a: F.fractional_max_pool2d(a, 2)),
        (ValueError, r"fractional_max_pool2d: _random_samples must have shape \(3, 2, 2\)",
         lambda F, a: F.fractional_max_pool2d(a, 2, output_size=4, _random_samples=a[:, :1, 0, :2])),
    ]
    for kind, message, call in calls:
        with pytest.raises((RuntimeError, ValueError)):
            call(torch.nn.functional, host)
        with pytest.raises(kind, match=r"xpnn\.torch_nn\.functional\." + message):
            call(F, x)
    with pytest.raises(ValueError, match=r"xpnn\.torch_nn\.FractionalMaxPool2d: output_ratio must be between 0 and 1"):
        nn.FractionalMaxPool2d(2, output_ratio=1.5)


def test_a_wrong_fused_embedding_bag_is_switched_off(monkeypatch):
    """torch's embedding_bag kernel runs where it agreed with the written-once gather on the
    kernel check's probe; one that disagrees is not used on this machine: the bags are still
    torch's and the report says why."""
    from xpnn import _kernel_check

    adapter = adapter_of(torch.zeros(1))
    fused = adapter.fused_embedding_bag
    calls = []
    monkeypatch.setattr(adapter, "fused_embedding_bag", lambda *a: calls.append(a[3]) or fused(*a))
    weight, ids, offsets = torch.randn(10, 4), torch.tensor([1, 2, 4, 5, 4, 3]), torch.tensor([0, 2, 2])
    want = torch.nn.functional.embedding_bag(ids, weight, offsets, mode="max")
    assert torch.equal(F.embedding_bag(ids, weight, offsets, mode="max"), want) and calls
    monkeypatch.setattr(adapter, "fused_embedding_bag", lambda *a: fused(*a) + 1)
    monkeypatch.setattr(_kernel_check, "_OUTCOMES", {})
    monkeypatch.setattr(_kernel_check, "LAYER_KERNEL_ANSWERS", {})
    assert torch.equal(F.embedding_bag(ids, weight, offsets, mode="max"), want)
    entries = [entry for entry in xpnn.fast_path_report() if entry.function == "fused_embedding_bag"]
    assert len(entries) == 1 and "the fused sum bags" in entries[0].reason


def test_a_fused_embedding_bag_that_reads_ids_out_of_range_is_switched_off(monkeypatch):
    """The fused kernel answers for the ids' range (xpnn does not read the ids first then): one
    that reads an id outside the table instead of raising IndexError is not used on this machine,
    and the written-once gather's check refuses the ids."""
    from xpnn import _kernel_check

    adapter = adapter_of(torch.zeros(1))
    fused = adapter.fused_embedding_bag
    monkeypatch.setattr(adapter, "fused_embedding_bag", lambda table, ids, *rest: fused(table, ids % table.shape[0],
                                                                                          *rest))
    monkeypatch.setattr(_kernel_check, "_OUTCOMES", {})
    monkeypatch.setattr(_kernel_check, "LAYER_KERNEL_ANSWERS", {})
    with pytest.raises(IndexError, match=r"xpnn\.torch_nn\.functional\.embedding_bag: index out of range in self"):
        F.embedding_bag(torch.tensor([[1, 10]]), torch.randn(10, 4))
    entries = [entry for entry in xpnn.fast_path_report() if entry.function == "fused_embedding_bag"]
    assert len(entries) == 1 and "instead of raising IndexError" in entries[0].reason, entries


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("offsets", [[1, 3], [0, 7], [0, 4, 2]], ids=["not from 0", "past the ids", "decreasing"])
def test_embedding_bag_refuses_bad_offsets_through_the_fused_kernel(monkeypatch, offsets, dtype):
    """On torch the fused kernel checks the offsets (xpnn does not read them first then; the
    adapter checks their order for float64 tables, which torch's kernel leaves out): bad ones are
    xpnn's ValueError naming them; a kernel that takes them instead is not used on this machine,
    and the offsets are read and refused."""
    from xpnn import _kernel_check

    ids, weight = torch.arange(6), torch.randn(10, 3, dtype=dtype)
    assert not [entry for entry in xpnn.check_fast_paths(weight) if entry.function == "fused_embedding_bag"]
    if not (offsets == [0, 4, 2] and dtype == torch.float64):  # which torch's float64 kernel takes, silently
        with pytest.raises(RuntimeError):
            torch.nn.functional.embedding_bag(ids, weight, torch.tensor(offsets))
    message = r"xpnn\.torch_nn\.functional\.embedding_bag: offsets must start at 0 and not decrease"
    with pytest.raises(ValueError, match=message):
        F.embedding_bag(ids, weight, torch.tensor(offsets))
    adapter = adapter_of(weight)
    fused = adapter.fused_embedding_bag

    def lenient(table, ids, starts, *rest):  # takes any offsets, made valid
        if starts is not None:
            starts = torch.cummax(starts.clamp(0, ids.shape[0]), 0).values
            starts[0] = 0
        return fused(table, ids, starts, *rest)

    monkeypatch.setattr(adapter, "fused_embedding_bag", lenient)
    monkeypatch.setattr(_kernel_check, "_OUTCOMES", {})
    monkeypatch.setattr(_kernel_check, "LAYER_KERNEL_ANSWERS", {})
    with pytest.raises(ValueError, match=message):
        F.embedding_bag(ids, weight, torch.tensor(offsets))
    entries = [entry for entry in xpnn.fast_path_report() if entry.function == "fused_embedding_bag"]
    assert len(entries) == 1 and "instead of raising ValueError" in entries[0].reason, entries


@pytest.mark.parametrize("wrong", ["off by one", "reads targets out of range"])
def test_a_wrong_fused_nll_is_switched_off(monkeypatch, wrong):
    """torch's nll_loss kernel serves cross_entropy and nll_loss where it agreed with the
    written-once gather on the kernel check's probe, refusals of targets out of range included;
    one that disagrees is not used on this machine: the loss is still torch's, a target out of
    range still xpnn's IndexError, and the report says why."""
    from xpnn import _kernel_check

    adapter = adapter_of(torch.zeros(1))
    fused = adapter.fused_nll
    calls = []
    monkeypatch.setattr(adapter, "fused_nll", lambda *a: calls.append(a[-1]) or fused(*a))
    x, y = torch.randn(6, 5, dtype=torch.float64), torch.tensor([0, 4, 2, -100, 1, 1])
    want = torch.nn.functional.cross_entropy(x, y)
    torch.testing.assert_close(F.cross_entropy(x, y), want, rtol=0, atol=1e-15)
    assert calls
    if wrong == "off by one":
        monkeypatch.setattr(adapter, "fused_nll", lambda *a: fused(*a) + 1)
    else:
        monkeypatch.setattr(adapter, "fused_nll", lambda log_p, target, *rest: fused(
            log_p, target.clamp(-100, log_p.shape[1] - 1), *rest))
    monkeypatch.setattr(_kernel_check, "_OUTCOMES", {})
    monkeypatch.setattr(_kernel_check, "LAYER_KERNEL_ANSWERS", {})
    torch.testing.assert_close(F.cross_entropy(x, y), want, rtol=0, atol=1e-15)
    with pytest.raises(IndexError, match=r"xpnn\.torch_nn\.functional\.nll_loss: targets must be class indices"):
        F.nll_loss(x, torch.tensor([0, 4, 2, 5, 1, 1]))
    entries = [entry for entry in xpnn.fast_path_report() if entry.function == "fused_nll"]
    assert len(entries) == 1, entries
    assert ("the fused loss" in entries[0].reason and "instead of raising" in entries[0].reason) == (
        wrong != "off by one"), entries


_GROUPED_LAYOUTS = {"rows of experts": ((13, 8), (3, 8, 4)), "columns of experts": ((3, 6, 8), (8, 16)),
                    "weight gradient": ((8, 16), (16, 4)), "batched": ((3, 6, 8), (3, 8, 4))}


@pytest.mark.parametrize("layout", _GROUPED_LAYOUTS)
def test_grouped_mm_is_torchs_on_every_backend(backend, layout):
    """``grouped_mm`` in each of torch's four layouts equals torch's float32 kernel (its rows or
    columns past the last offset, which torch leaves unwritten, are zeros), with the offsets read
    (slices) and, on jax under jit and on Dask, unread (masked products); an empty group gives
    zeros."""
    import torch.nn.functional as TF

    shape_a, shape_b = _GROUPED_LAYOUTS[layout]
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(shape_a).astype(np.float32), rng.standard_normal(shape_b).astype(np.float32)
    offs = None if layout == "batched" else np.array([4, 4, 12], np.int32)
    want = TF.grouped_mm(torch.from_numpy(a), torch.from_numpy(b),
                         offs=None if offs is None else torch.from_numpy(offs))
    if layout == "rows of experts":
        want[12:] = 0.0
    elif layout == "columns of experts":
        want[:, 12:] = 0.0
    operands = [backend.asarray(a, "float32"), backend.asarray(b, "float32")]
    given = None if offs is None else backend.asarray(offs, "int32")
    got = F.grouped_mm(*operands, offs=given)
    np.testing.assert_allclose(backend.to_numpy(got), want.numpy(), rtol=1e-5, atol=1e-5)
    if backend.name.startswith("jax"):
        import jax

        traced = jax.jit(lambda x, y, z: F.grouped_mm(x, y, offs=z))(*operands, given)
        np.testing.assert_allclose(backend.to_numpy(traced), want.numpy(), rtol=1e-5, atol=1e-5)


def test_grouped_mm_gradients_and_errors():
    """``grouped_mm``'s gradients on torch equal those of the groups' own products (torch's CPU
    kernel has no backward), in float64 too (torch's kernel refuses it); bad operands are errors
    naming the function, as torch's (which leaves bad offsets unchecked)."""
    rng = np.random.default_rng(2)
    a = torch.from_numpy(rng.standard_normal((13, 8))).requires_grad_()
    b = torch.from_numpy(rng.standard_normal((3, 8, 4))).requires_grad_()
    offs = torch.tensor([4, 4, 12], dtype=torch.int32)
    cotangent = torch.from_numpy(rng.standard_normal((13, 4)))
    got = torch.autograd.grad((F.grouped_mm(a, b, offs=offs) * cotangent).sum(), [a, b])
    want = torch.autograd.grad((torch.cat([a[:4] @ b[0], a[4:4] @ b[1], a[4:12] @ b[2]]) * cotangent[:12]).sum(),
                               [a, b])
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)
    a, b = a.detach().numpy(), b.detach().numpy()
    ends = np.array([4, 4, 12], np.int32)
    calls = [
        (NotImplementedError, "bias is not supported", lambda: F.grouped_mm(a, b, offs=ends, bias=np.ones(4))),
        (ValueError, "offs must be given if an operand is 2-d", lambda: F.grouped_mm(a, b)),
        (ValueError, "offs must not decrease, from 0 up to 13, got \\[8, 4, 12\\]",
         lambda: F.grouped_mm(a, b, offs=np.array([8, 4, 12]))),
        (ValueError, "offs must not decrease, from 0 up to 13, got \\[4, 8, 20\\]",
         lambda: F.grouped_mm(a, b, offs=np.array([4, 8, 20]))),
        (ValueError, "matrix batch sizes have to match: 2 offsets for 3 matrices",
         lambda: F.grouped_mm(a, b, offs=ends[:2])),
        (ValueError, "contraction dimension of mat_a and mat_b must match",
         lambda: F.grouped_mm(a, b[:, :5], offs=ends)),
        (TypeError, "mat_a and mat_b must be floating arrays of one dtype",
         lambda: F.grouped_mm(a, b.astype(np.float32), offs=ends)),
        (ValueError, "out_dtype must be the operands' dtype",
         lambda: F.grouped_mm(a, b, offs=ends, out_dtype=np.float16)),
        (ValueError, "offs must be a 1-d array of integers", lambda: F.grouped_mm(a, b, offs=ends.astype(np.float32))),
    ]
    for kind, message, call in calls:
        with pytest.raises(kind, match=r"xpnn\.torch_nn\.functional\.grouped_mm: " + message):
            call()
    assert F.grouped_mm(a, b, offs=ends, out_dtype=np.float32).dtype == np.float32


def test_the_recurrent_bases_and_container_are_torchs():
    """``RNNBase`` and ``RNNCellBase`` make torch's parameters for every mode (names and shapes;
    torch's state_dict loads), are the bases of the layers and cells (isinstance checks in a
    user's init code hold), and have no forward; the deprecated ``Container`` warns and holds
    its keyword modules: each as torch's."""
    x = np.ones((3, 2, 4), np.float32)
    for mode in ("LSTM", "GRU", "RNN_TANH", "RNN_RELU"):
        twin, module = (namespace.RNNBase(mode, 4, 5, num_layers=2, bidirectional=True) for namespace in (torch.nn, nn))
        assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == {
            k: tuple(v.shape) for k, v in twin.state_dict().items()}
        module.load_state_dict(twin.state_dict())
        assert repr(module) == repr(twin) and module.mode == twin.mode
        with pytest.raises(NotImplementedError, match='missing the required "forward"'):
            twin(torch.from_numpy(x))
        with pytest.raises(NotImplementedError, match='missing the required "forward"'):
            module(x)
    assert nn.RNN(4, 5, nonlinearity="relu").mode == torch.nn.RNN(4, 5, nonlinearity="relu").mode == "RNN_RELU"
    for namespace in (torch.nn, nn):
        with pytest.raises(ValueError, match="Unrecognized RNN mode"):
            namespace.RNNBase("LSTMX", 4, 5)
        with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM"):
            namespace.GRU(4, 5, proj_size=2)  # xpnn's RNNBase("GRU", ...) refuses it too, torch's builds it
    twin, module = torch.nn.RNNCellBase(4, 5, True, 3), nn.RNNCellBase(4, 5, True, 3)
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == {
        k: tuple(v.shape) for k, v in twin.state_dict().items()}
    module.load_state_dict(twin.state_dict())
    assert repr(module) == repr(twin)
    for layer, cell in ((nn.LSTM, nn.LSTMCell), (nn.GRU, nn.GRUCell), (nn.RNN, nn.RNNCell)):
        assert issubclass(layer, nn.RNNBase) and issubclass(cell, nn.RNNCellBase)
        assert not issubclass(cell, nn.RNNBase)
    with pytest.warns(FutureWarning, match="nn.Container` is deprecated"):
        twin = torch.nn.Container(head=torch.nn.Linear(2, 3), act=torch.nn.ReLU())
    with pytest.warns(FutureWarning, match="nn.Container` is deprecated"):
        module = nn.Container(head=nn.Linear(2, 3), act=nn.ReLU())
    assert repr(module) == repr(twin) and isinstance(module, nn.Module)
    module.load_state_dict(twin.state_dict())
    np.testing.assert_array_equal(module.head.weight, twin.head.weight.detach().numpy())


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_an_empty_sequence_gives_no_steps_and_the_initial_state(backend, kind):
    """A sequence of no steps: no outputs and the initial state, on every backend alike (torch's
    own kernels refuse it, so its fused loop is not taken then)."""
    nn.manual_seed(0)
    module = getattr(nn, kind)(4, 3, num_layers=2, like=backend.like())
    states = backend.asarray(np.random.default_rng(0).standard_normal((2, 5, 3)), "float32")
    start = (states, states) if kind == "LSTM" else states
    out, final = module(backend.asarray(np.zeros((0, 5, 4)), "float32"), start)
    assert tuple(out.shape) == (0, 5, 3)
    for got in (final if kind == "LSTM" else (final,)):
        np.testing.assert_array_equal(backend.to_numpy(got), backend.to_numpy(states))


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
    reference = torch.nn.Linear(3, 4)
    assert repr(model.fc.load_state_dict(reference.state_dict())) == repr(reference.load_state_dict(
        reference.state_dict())) == "<All keys matched successfully>"
    for value in ([[1.0] * 3] * 4, None):  # torch's error, not an AttributeError on .shape
        with pytest.raises(RuntimeError, match=r'While copying the parameter named "weight", expected') as raised:
            reference.load_state_dict({"weight": value, "bias": reference.bias})
        message = str(raised.value).replace("torch.Tensor or Tensor-like object", "an array (of any library)")
        with pytest.raises(RuntimeError, match=re.escape(message)):
            model.fc.load_state_dict({"weight": value, "bias": model.fc.bias})
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


def test_lookup_by_path_and_list_editing_as_torchs():
    """get_submodule / get_parameter / get_buffer with torch's answers and errors; Sequential
    and ModuleList insert, extend and slices renumbered (or not) as torch's; half() casts."""
    def build(m):
        return m.Sequential(m.Conv2d(3, 4, 3), m.BatchNorm2d(4), m.Sequential(m.Flatten(), m.Linear(4, 5)))

    theirs, ours = build(torch.nn), build(nn)

    def answer(call, model):
        try:
            found = call(model)
        except (AttributeError, IndexError) as error:
            return type(error).__name__, str(error)
        return type(found).__name__ if isinstance(found, (torch.nn.Module, nn.Module)) else tuple(found.shape)

    for call in [lambda m: m.get_submodule(""), lambda m: m.get_submodule("2.1"), lambda m: m.get_submodule("5"),
                 lambda m: m.get_submodule("0.weight"), lambda m: m.get_parameter("2.1.weight"),
                 lambda m: m.get_parameter("1.running_mean"), lambda m: m.get_parameter("2.1.nope"),
                 lambda m: m.get_buffer("1.running_var"), lambda m: m.get_buffer("0.weight")]:
        assert answer(call, ours) == answer(call, theirs)
    for m in (torch.nn, nn):
        sequence = m.Sequential(m.ReLU(), m.Tanh())
        sequence.insert(1, m.Sigmoid())
        sequence.insert(-1, m.ELU())
        sequence.extend([m.GELU()])
        listed = m.ModuleList([m.ReLU(), m.Tanh(), m.ELU()])
        listed.insert(0, m.GELU())
        edited = ([type(c).__name__ for c in sequence], list(sequence[1:3]._modules),
                  [type(c).__name__ for c in listed], type(listed[1:]).__name__, list(listed[1:]._modules))
        if m is torch.nn:
            expected = edited
    assert edited == expected
    assert ours.half().get_parameter("0.weight").dtype == np.float16


def test_cross_map_lrn2d_gradient_is_that_of_its_values():
    """CrossMapLRN2d's values are torch's (conformance); its gradient is the true one of those
    values, checked against central differences (torch's hand-written backward is not)."""
    x = torch.from_numpy(np.random.default_rng(2).standard_normal((1, 6, 2, 2))).requires_grad_()
    module = nn.CrossMapLRN2d(3, alpha=0.3, k=1.5).to(like=torch, dtype="float64")
    module(x).sum().backward()
    step, flat_x = 1e-6, x.detach().reshape(-1)
    with torch.no_grad():
        differences = [float(module((flat_x + step * e).reshape(x.shape)).sum()
                             - module((flat_x - step * e).reshape(x.shape)).sum()) / (2 * step)
                       for e in torch.eye(flat_x.numel(), dtype=torch.float64)]
    np.testing.assert_allclose(x.grad.reshape(-1).numpy(), differences, rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match=r"xpnn\.torch_nn\.CrossMapLRN2d: expected input to be 4D, got 3D"):
        module(x.detach()[0])


def test_adaptive_log_softmax_predicts_and_refuses_as_torchs():
    """log_prob, predict (ties, shortlist and cluster winners) and the loss equal torch's for
    batched and single rows; out-of-range targets and mismatched shapes are refused."""
    torch.manual_seed(3)
    theirs = torch.nn.AdaptiveLogSoftmaxWithLoss(6, 9, [2, 5], div_value=1.5).double()
    mine = nn.AdaptiveLogSoftmaxWithLoss(6, 9, [2, 5], div_value=1.5, dtype="float64")
    assert repr(mine) == repr(theirs)
    mine.load_state_dict(theirs.state_dict())
    x = np.random.default_rng(4).standard_normal((40, 6)) * 3
    x[0] = 0.0  # every head logit equal: argmax ties
    with torch.no_grad():
        np.testing.assert_allclose(mine.log_prob(x), theirs.log_prob(torch.from_numpy(x)).numpy(), rtol=1e-12)
        want = theirs.predict(torch.from_numpy(x)).numpy()
    assert len(set(want.tolist())) > 3
    np.testing.assert_array_equal(mine.predict(x), want)
    with pytest.raises(RuntimeError, match=r"AdaptiveLogSoftmaxWithLoss: target values should be in \[0, 8\]"):
        mine(x[:3], np.array([0, 9, 2]))
    with pytest.raises(ValueError, match=r"AdaptiveLogSoftmaxWithLoss: expected a 1D target with 2D input"):
        mine(x[:3], np.array([0, 1]))
    with pytest.raises(ValueError, match=r"cutoffs should be a sequence of unique, positive integers"):
        nn.AdaptiveLogSoftmaxWithLoss(6, 9, [5, 2])


def test_sync_batch_norm_converts_models_and_data_parallel_wraps_them_as_torchs():
    """convert_sync_batchnorm swaps BatchNorm*d (not InstanceNorm) keeping parameters, buffers
    and mode, as torch's; DataParallel's state_dict keys begin with ``module.``; device_ids are
    refused with the reason."""
    def model(L):
        return L.Sequential(L.Conv1d(3, 4, 1), L.BatchNorm1d(4), L.Sequential(L.BatchNorm1d(4)), L.InstanceNorm1d(4))
    torch.manual_seed(0)
    theirs = trained(model(torch.nn).double(), [floats(3, 3, 5)], {})
    mine = model(nn).to(dtype="float64")
    mine.load_state_dict(theirs.state_dict())
    for m in (mine, theirs):
        m.train()
        m[1].eval()
    theirs, mine = (L.SyncBatchNorm.convert_sync_batchnorm(m) for L, m in ((torch.nn, theirs), (nn, mine)))
    assert repr(mine) == repr(theirs) and not mine[1].training and mine[0].training
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(mine.state_dict()[key], value.numpy(), err_msg=key)
    x = floats(3, 3, 5)
    with torch.no_grad():
        np.testing.assert_allclose(mine[:2](x), theirs[:2](torch.from_numpy(x)).numpy(), rtol=1e-12)
    wrapped = nn.DataParallel(nn.Linear(2, 3))
    assert list(wrapped.state_dict()) == list(torch.nn.DataParallel(torch.nn.Linear(2, 3)).state_dict())
    with pytest.raises(ValueError, match=r"xpnn\.torch_nn\.DataParallel: device_ids must be None or empty"):
        nn.DataParallel(nn.Linear(2, 3), device_ids=[0])


def test_linear_cross_entropy_refuses_what_torch_refuses():
    """linear_cross_entropy's shape and keyword errors name the function where torch raises."""
    x, w, t = floats(3, 6), floats(5, 6), indices(3, high=5)
    for kwargs, args in [({}, (floats(3, 4), w, t)), ({"linear_bias": floats(4)}, (x, w, t)),
                         ({}, (floats(6), floats(5, 2, 6), np.array(1))), ({}, (floats(2, 3, 6), w, t)),
                         ({"ignore_index": 1}, (x, w, floats(3, 5)))]:
        with pytest.raises((ValueError, RuntimeError)):
            torch.nn.functional.linear_cross_entropy(*map(torch.from_numpy, args), **{
                k: torch.from_numpy(v) for k, v in kwargs.items()} if "linear_bias" in kwargs else kwargs)
        with pytest.raises(ValueError, match=r"xpnn\.torch_nn\.functional\.linear_cross_entropy: "):
            F.linear_cross_entropy(*args, **kwargs)


@pytest.mark.parametrize("rank", [2, 3])
def test_grid_sample_and_affine_grid_give_torchs_values_and_gradients(rank):
    """affine_grid and grid_sample over every mode, padding mode and align_corners, points
    inside, outside and exactly between pixels: torch's values in float64, and on torch its
    gradients with respect to the input and the grid (nearest: none, as torch's zeros)."""
    rng = np.random.default_rng(rank)
    x = rng.standard_normal((2, 3, *(4, 5, 6)[3 - rank:]))
    grid = rng.uniform(-1.4, 1.4, (2, 3, *(4, 2)[:rank - 1], rank))
    grid[0, 0, 0] = [2 * k / n for k, n in zip(range(1, rank + 1), x.shape[:1:-1])]  # halfway between pixels
    for align_corners in (False, True):
        theta = rng.standard_normal((2, rank, rank + 1))
        size = (2, 3, *(3, 1, 4)[:rank])
        np.testing.assert_allclose(F.affine_grid(theta, size, align_corners),
                                   torch.nn.functional.affine_grid(torch.from_numpy(theta), size,
                                                                   align_corners).numpy(), rtol=1e-12, atol=1e-15)
        for mode, padding in itertools.product(("bilinear", "nearest", "bicubic"), ("zeros", "border", "reflection")):
            if mode == "bicubic" and rank == 3:
                with pytest.raises(ValueError, match=r"grid_sample: bicubic interpolation only supports 4D input"):
                    F.grid_sample(x, grid, mode, padding, align_corners)
                continue
            grads = []
            for sample in (torch.nn.functional.grid_sample, F.grid_sample):
                leaves = [torch.from_numpy(a).requires_grad_() for a in (x, grid)]
                y = sample(*leaves, mode, padding, align_corners)
                (y * torch.linspace(-1, 2, y.numel(), dtype=y.dtype).reshape(y.shape)).sum().backward()
                grads.append([y.detach().numpy()] + [np.zeros(a.shape) if a.grad is None else a.grad.numpy()
                                                     for a in leaves])
            for got, want, what in zip(grads[1], grads[0], ("values", "input gradient", "grid gradient")):
                np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-11,
                                           err_msg=f"{what}: {mode} {padding} align_corners={align_corners}")


def test_grid_sample_samples_nan_where_no_position_is_defined():
    """A NaN coordinate samples NaN in every mode; an infinite one reads 0 under 'zeros', the
    edge under 'border' (as far off finite coordinates do, which torch's kernels agree on) and NaN
    under 'reflection'; with torch's fused kernel as with the written-once taps."""
    x = np.arange(1.0, 25.0).reshape(1, 1, 4, 6)
    grid = np.array([[[[np.nan, 0.0], [np.inf, 0.0], [-np.inf, 0.0], [1e12, 0.0], [-1e12, 0.0]]]])
    far = grid[..., 3:, :]
    for mode, padding, library in itertools.product(("bilinear", "nearest", "bicubic"),
                                                    ("zeros", "border", "reflection"), (np, torch)):
        got = np.asarray(F.grid_sample(library.asarray(x), library.asarray(grid), mode, padding,
                                       align_corners=False))[0, 0, 0]  # torch: its fused kernel at the finite points
        assert np.isnan(got[0]) and np.array_equal(np.isnan(got[1:3]), [padding == "reflection"] * 2)
        np.testing.assert_allclose(got[3:], torch.nn.functional.grid_sample(
            torch.from_numpy(x), torch.from_numpy(far), mode, padding, align_corners=False).numpy()[0, 0, 0])
        if padding != "reflection":
            np.testing.assert_allclose(got[1:3], got[3:])
    with pytest.warns(UserWarning, match=r"xpnn\.torch_nn\.functional\.grid_sample: default grid_sample"):
        F.grid_sample(x, grid[..., 3:, :])
    with pytest.raises(ValueError, match=r"grid_sample: expected input and grid to have the same dtype"):
        F.grid_sample(x, grid.astype(np.float32), align_corners=False)


def test_gumbel_softmax_samples_the_categorical_distribution():
    """Hard samples fall on each class as often as softmax(logits) says, soft samples sum to 1,
    the hard sample passes the soft one's gradient (straight through), and a key's noise is
    jax.random.gumbel's."""
    logits = np.log(np.array([0.1, 0.2, 0.7]))
    many = np.broadcast_to(logits, (20000, 3)).copy()
    hard = F.gumbel_softmax(many, hard=True, key=xpnn.random.key(0))
    assert set(np.unique(hard)) == {0.0, 1.0} and np.all(hard.sum(axis=1) == 1)
    np.testing.assert_allclose(hard.mean(axis=0), [0.1, 0.2, 0.7], atol=0.01)
    soft = F.gumbel_softmax(many[:50], tau=0.5, key=xpnn.random.key(1), dim=1)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-12)
    leaf = torch.tensor(many[:4], requires_grad=True)
    y = F.gumbel_softmax(leaf, hard=True, key=xpnn.random.key(2, like=torch))
    (y * torch.arange(3.0, dtype=torch.float64)).sum().backward()
    soft_leaf = leaf.detach().clone().requires_grad_()
    soft = F.gumbel_softmax(soft_leaf, key=xpnn.random.key(2, like=torch))
    (soft * torch.arange(3.0, dtype=torch.float64)).sum().backward()
    np.testing.assert_allclose(leaf.grad.numpy(), soft_leaf.grad.numpy(), rtol=1e-12)
    jax = pytest.importorskip("jax")
    logits = jax.numpy.asarray(many[:4], dtype=jax.numpy.float32)
    want = jax.nn.softmax((logits + jax.random.gumbel(jax.random.PRNGKey(3), logits.shape, logits.dtype)) / 0.7)
    np.testing.assert_array_equal(F.gumbel_softmax(logits, 0.7, key=xpnn.random.key(3, like=jax.numpy)), want)


def test_in_place_and_with_indices_twins_behave_as_torchs():
    """relu_ and the other in-place twins write into NumPy and torch inputs and return them;
    the ``*_with_indices`` pools return values and indices even when told not to, positionally."""
    x = floats(3, 4)
    assert F.relu_(x) is x and x.min() == 0.0
    t = torch.from_numpy(floats(3, 4))
    assert F.hardtanh_(t, -0.5, 0.5) is t and float(t.abs().max()) == 0.5
    with pytest.raises(TypeError):
        F.relu_(x, True)
    values = floats(2, 3, 6, 5)
    got = F.max_pool2d_with_indices(values, 2, 2, 0, 1, False, False)
    want = torch.nn.functional.max_pool2d_with_indices(torch.from_numpy(values), 2, 2, 0, 1, False, False)
    assert len(got) == 2 and all(np.array_equal(g, w.numpy()) for g, w in zip(got, want))


def test_class_targets_out_of_range_give_nan_where_they_cannot_be_read():
    """Under jax.jit the targets cannot be read, so an out-of-range one cannot be refused: its
    loss is NaN (never a silent 0); the other rows keep their values, and an ignored target
    still counts nothing."""
    jax = pytest.importorskip("jax")
    x, outside, ignored = floats(4, 5), np.array([1, 7, 2, 0]), np.array([1, -100, 2, 0])
    for loss in (lambda a, t: F.cross_entropy(a, t, reduction="none"),
                 lambda a, t: F.multi_margin_loss(a, t, reduction="none")):
        got = np.asarray(jax.jit(loss)(x, outside))
        assert np.isnan(got[1]) and not np.isnan(np.delete(got, 1)).any()
        np.testing.assert_allclose(np.delete(got, 1), np.delete(loss(x, np.array([1, 0, 2, 0])), 1), rtol=1e-6)
    assert np.isnan(jax.jit(F.nll_loss)(x, outside))
    got = np.asarray(jax.jit(lambda a, t: F.cross_entropy(a, t, reduction="none"))(x, ignored))
    assert got[1] == 0.0 and not np.isnan(got).any()
    with pytest.raises(IndexError, match=r"cross_entropy: targets must be class indices in \[0, 5\)"):
        F.cross_entropy(x, outside)

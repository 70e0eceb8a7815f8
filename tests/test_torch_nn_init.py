"""xpnn.torch_nn.init against torch.nn.init: the deterministic fills equal torch's, the random
ones draw torch's distributions (two-sample Kolmogorov-Smirnov against torch's own draws), and
each fills its tensor in place as torch's do (jax: in the modules that hold it)."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.stats
import torch

import xpnn
import xpnn.torch_nn as nn
from xpnn.torch_nn import init


def _filled_by_both(name: str, shape: tuple[int, ...], backend, *args, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    tensor = backend.asarray(np.full(shape, 7.0), "float32")
    got = getattr(init, name)(tensor, *args, **kwargs)
    want = getattr(torch.nn.init, name)(torch.full(shape, 7.0), *args, **kwargs)
    return backend.to_numpy(got), want.numpy()


@pytest.mark.parametrize(("name", "shape", "args"), [
    ("zeros_", (3, 4), ()), ("ones_", (2, 3, 2), ()), ("constant_", (5,), (-0.3,)), ("eye_", (3, 5), ()),
    ("eye_", (4, 2), ()), ("dirac_", (5, 3, 3), ()), ("dirac_", (2, 4, 3, 3), ()), ("dirac_", (6, 2, 3, 4, 5), (2,)),
    ("dirac_", (4, 3, 2, 2), (4,)), ("dirac_", (6, 2, 5), (3,)),
])
def test_deterministic_fills_equal_torchs(backend, name, shape, args):
    got, want = _filled_by_both(name, shape, backend, *args)
    np.testing.assert_array_equal(got, want)


def test_constant_casts_as_torchs_fill():
    for dtype, value in ((np.int64, 2.7), (np.int32, -2.7), (np.bool_, 0.5), (np.bool_, 0.0), (np.uint8, 3.9)):
        got = init.constant_(np.zeros(3, dtype), value)
        want = torch.nn.init.constant_(torch.zeros(3, dtype=getattr(torch, np.dtype(dtype).name)), value)
        np.testing.assert_array_equal(got, want.numpy(), err_msg=f"{dtype} {value}")


def test_gains_and_fans_equal_torchs():
    for nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                         "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"):
        assert init.calculate_gain(nonlinearity) == torch.nn.init.calculate_gain(nonlinearity)
    for slope in (0, 0.2, 3, math.sqrt(5)):
        assert init.calculate_gain("leaky_relu", slope) == torch.nn.init.calculate_gain("leaky_relu", slope)
    for shape in ((3, 4), (8, 3, 5), (16, 8, 3, 3), (2, 4, 1, 2, 3), (0, 5)):
        assert init._calculate_fan_in_and_fan_out(np.zeros(shape)) == \
            torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(shape))
        for mode in ("fan_in", "fan_out", "FAN_IN"):
            assert init._calculate_correct_fan(np.zeros(shape), mode) == \
                torch.nn.init._calculate_correct_fan(torch.zeros(shape), mode)


_SAMPLE = (300, 200)  # fan_in 200, fan_out 300


@pytest.mark.parametrize(("name", "kwargs"), [
    ("uniform_", {}), ("uniform_", {"a": -3.0, "b": 0.5}), ("normal_", {}), ("normal_", {"mean": 2.0, "std": 0.1}),
    ("trunc_normal_", {}), ("trunc_normal_", {"mean": 1.0, "std": 2.0, "a": 0.0, "b": 3.0}),
    ("trunc_normal_", {"mean": 0.0, "std": 1.0, "a": 1.5, "b": 4.0}),
    ("xavier_uniform_", {}), ("xavier_uniform_", {"gain": 2.0}), ("xavier_normal_", {"gain": 0.5}),
    ("kaiming_uniform_", {}), ("kaiming_uniform_", {"a": math.sqrt(5)}),
    ("kaiming_uniform_", {"mode": "fan_out", "nonlinearity": "relu"}), ("kaiming_normal_", {}),
    ("kaiming_normal_", {"a": 0.2, "mode": "fan_out"}), ("kaiming_normal_", {"nonlinearity": "tanh"}),
])
def test_random_fills_draw_torchs_distribution(name, kwargs):
    """60000 draws of each against 60000 of torch's: the two-sample KS test (fixed seeds, so the
    outcome is fixed) and the same support."""
    nn.manual_seed(11)
    torch.manual_seed(11)
    got = getattr(init, name)(np.empty(_SAMPLE, np.float32), **kwargs).ravel()
    want = getattr(torch.nn.init, name)(torch.empty(_SAMPLE), **kwargs).numpy().ravel()
    assert scipy.stats.ks_2samp(got, want).pvalue > 1e-3, (got.mean(), want.mean(), got.std(), want.std())
    np.testing.assert_allclose(got.std(), want.std(), rtol=0.02)  # the standard errors are 0.3%
    np.testing.assert_allclose(got.mean(), want.mean(), atol=0.02 * want.std())
    if name.endswith("uniform_") or name == "trunc_normal_":
        margin = 0.01 * (want.max() - want.min())  # 60000 draws come within 1e-4 of the ends
        assert want.min() - margin <= got.min() and got.max() <= want.max() + margin


def test_sparse_zeroes_a_fixed_count_per_column():
    nn.manual_seed(2)
    got = init.sparse_(np.empty((40, 500), np.float32), 0.3, std=0.5)
    want = torch.nn.init.sparse_(torch.empty(40, 500), 0.3, std=0.5).numpy()
    np.testing.assert_array_equal((got == 0).sum(axis=0), (want == 0).sum(axis=0))  # ceil(0.3 * 40) each
    assert scipy.stats.ks_2samp(got[got != 0], want[want != 0]).pvalue > 1e-3
    assert len({tuple(np.flatnonzero(column == 0)) for column in got.T}) > 400  # rows chosen per column


@pytest.mark.parametrize("shape", [(3, 7), (7, 3), (8, 4, 3, 3), (5, 5)])
def test_orthogonal_rows_or_columns_are_orthonormal_times_gain(backend, shape):
    nn.manual_seed(5)
    got = backend.to_numpy(init.orthogonal_(backend.asarray(np.zeros(shape), "float32"), gain=1.5)).reshape(
        shape[0], -1).astype(np.float64)
    gram = got @ got.T if got.shape[0] <= got.shape[1] else got.T @ got
    np.testing.assert_allclose(gram, 2.25 * np.eye(len(gram)), atol=2e-5)


def test_same_seed_same_values_on_every_backend(backend):
    shape = (6, 4, 3)
    nn.manual_seed(9)
    on_numpy = [init.xavier_uniform_(np.zeros(shape, np.float32)), init.kaiming_normal_(np.zeros(shape, np.float32))]
    nn.manual_seed(9)
    here = [init.xavier_uniform_(backend.asarray(np.zeros(shape), "float32")),
            init.kaiming_normal_(backend.asarray(np.zeros(shape), "float32"))]
    np.testing.assert_array_equal(backend.to_numpy(here[0]), on_numpy[0])
    np.testing.assert_allclose(backend.to_numpy(here[1]), on_numpy[1], rtol=5e-7)  # erf_inv: a few ulp apart
    key = xpnn.random.key(4)
    np.testing.assert_array_equal(backend.to_numpy(init.uniform_(backend.asarray(np.zeros(5), "float32"), key=key)),
                                  init.uniform_(np.zeros(5, np.float32), key=key))


def test_fills_in_place_outside_autograd_on_torch():
    """A parameter that requires grad is filled in place (the tensor an optimizer holds), stays
    a leaf that requires grad, and trains afterwards."""
    linear = nn.Linear(4, 3, like=torch)
    weight, bias = linear.weight, linear.bias
    optimizer = torch.optim.SGD(linear.parameters(), lr=0.1)
    assert init.zeros_(bias) is bias and init.eye_(weight) is weight
    assert linear.weight is weight and weight.is_leaf and weight.requires_grad and weight.grad_fn is None
    np.testing.assert_array_equal(weight.detach().numpy(), np.eye(3, 4))
    linear(torch.ones(2, 4)).sum().backward()
    optimizer.step()
    np.testing.assert_allclose(bias.detach().numpy(), -0.2)


def test_fills_numpy_in_place():
    array = np.full((3, 4), 7.0, np.float32)
    assert init.xavier_normal_(array) is array and not np.any(array == 7.0)


def test_fills_a_parameter_before_it_is_assigned(backend):
    """``nn.Parameter(empty)`` filled, then assigned, as torch code does it."""
    parameter = nn.Parameter(backend.asarray(np.zeros((3, 4)), "float32"))
    assert init.ones_(parameter) is parameter
    module = nn.Module()
    module.weight = init.eye_(parameter)
    np.testing.assert_array_equal(backend.to_numpy(module.weight), np.eye(3, 4))
    with pytest.raises(TypeError, match=r"init\.zeros_: tensor must be an array \(or a Parameter\), got list"):
        init.zeros_([1.0, 2.0])


def test_immutable_arrays_are_replaced_in_the_modules_holding_them():
    """jax arrays cannot be written: the new array takes the old one's place in every module
    holding it (a weight shared by two modules too), so a torch model's reset code works."""
    import jax.numpy as jnp

    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.Linear(4, 4, like=jnp)
            self.decoder = nn.Linear(4, 4, like=jnp)
            self.decoder.weight = self.encoder.weight
            self.register_buffer("scale", jnp.zeros(4))
            init.eye_(self.encoder.weight)
            init.constant_(self.decoder.bias, 0.5)
            init.ones_(self.scale)

    model = Tied()
    np.testing.assert_array_equal(model.decoder.weight, np.eye(4))
    assert model.decoder.weight is model.encoder.weight
    np.testing.assert_array_equal(model.decoder.bias, 0.5)
    np.testing.assert_array_equal(model.scale, 1.0)
    loose = jnp.zeros(3)
    np.testing.assert_array_equal(init.ones_(loose), 1.0)  # held by no module: the new array is the answer


def test_empty_tensors():
    with pytest.warns(UserWarning, match="zero-element tensors is a no-op"):
        assert init.kaiming_uniform_(np.zeros((0, 3), np.float32)).shape == (0, 3)
    for name in ("xavier_uniform_", "xavier_normal_", "orthogonal_", "uniform_", "zeros_"):
        assert getattr(init, name)(np.zeros((0, 0), np.float32)).shape == (0, 0)


def test_warnings_as_torchs():
    for alias in ("uniform", "normal", "constant", "eye", "dirac", "xavier_uniform", "xavier_normal",
                  "kaiming_uniform", "kaiming_normal", "orthogonal", "sparse"):
        args = {"constant": (1.0,), "sparse": (0.1,)}.get(alias, ())
        shape = (2, 3, 3) if alias == "dirac" else (3, 4)
        with pytest.warns(FutureWarning, match=rf"`nn.init.{alias}` is now deprecated in favor of `nn.init.{alias}_`"):
            getattr(init, alias)(np.zeros(shape, np.float32), *args)
    with pytest.warns(UserWarning, match="mean is more than 2 std from"):
        init.trunc_normal_(np.zeros(5, np.float32), mean=10.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        init.trunc_normal_(np.zeros(5, np.float32), mean=1.0)


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda: init.uniform_(torch.zeros(3), generator=torch.Generator()), TypeError,
     r"init\.uniform_: generator must be None .* key=xpnn\.random\.key\(seed\).*got Generator"),
    (lambda: init.normal_(np.zeros(3, np.int64)), TypeError,
     r"init\.normal_: random values need a real floating tensor, got dtype int64"),
    (lambda: init.uniform_(np.zeros(3), 1.0, 0.0), ValueError,
     r"init\.uniform_: a must not exceed b, got a=1.0, b=0.0"),
    (lambda: init.normal_(np.zeros(3), std=-1.0), ValueError, r"init\.normal_: std must be at least 0, got -1.0"),
    (lambda: init.trunc_normal_(np.zeros(3), std=0.0), ValueError, r"init\.trunc_normal_: std must be positive"),
    (lambda: init.trunc_normal_(np.zeros(3), a=2.0, b=1.0), ValueError, r"init\.trunc_normal_: a must be below b"),
    (lambda: init.eye_(np.zeros(3)), ValueError, r"init\.eye_: tensor must have 2 dimensions, got shape \(3,\)"),
    (lambda: init.dirac_(np.zeros((3, 3))), ValueError, r"init\.dirac_: tensor must have 3, 4 or 5 dimensions"),
    (lambda: init.dirac_(np.zeros((3, 3, 3)), 2), ValueError,
     r"init\.dirac_: groups must be a positive divisor of dim 0 \(3\), got 2"),
    (lambda: init.kaiming_uniform_(np.zeros((3, 3)), mode="fan_avg"), ValueError,
     r"init\.kaiming_uniform_: mode must be 'fan_in' or 'fan_out', got 'fan_avg'"),
    (lambda: init.kaiming_normal_(np.zeros((3, 3)), nonlinearity="gelu"), ValueError,
     r"init\.kaiming_normal_: nonlinearity must be one of .*got 'gelu'"),
    (lambda: init.calculate_gain("leaky_relu", "0.1"), ValueError,
     r"init\.calculate_gain: the negative slope of leaky_relu must be a number, got '0.1'"),
    (lambda: init.xavier_uniform_(np.zeros(3)), ValueError,
     r"init\.xavier_uniform_: fan in and fan out need a tensor of at least 2 dimensions, got shape \(3,\)"),
    (lambda: init.orthogonal_(np.zeros(3)), ValueError, r"init\.orthogonal_: tensor must have at least 2 dimensions"),
    (lambda: init.sparse_(np.zeros((2, 2, 2)), 0.1), ValueError, r"init\.sparse_: tensor must have 2 dimensions"),
    (lambda: init.sparse_(np.zeros((2, 2)), 1.5), ValueError, r"init\.sparse_: sparsity must be between 0 and 1"),
])
def test_bad_arguments_are_named_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
def test_keeps_the_tensors_dtype_on_torch(dtype):
    tensor = torch.zeros(50, 40, dtype=getattr(torch, dtype))
    for name in ("uniform_", "normal_", "trunc_normal_", "xavier_uniform_", "kaiming_normal_", "sparse_"):
        args = (0.2,) if name == "sparse_" else ()
        assert getattr(init, name)(tensor, *args) is tensor and tensor.dtype == getattr(torch, dtype)
        assert torch.isfinite(tensor).all() and tensor.std() > 0, name


# -- reset_parameters --------------------------------------------------------------------------

#: Modules with torch's reset methods, and their arguments.
_RESETS = [
    ("Linear", (300, 200), {}), ("Bilinear", (20, 30, 40), {}), ("Conv2d", (16, 32, 3), {}),
    ("ConvTranspose1d", (16, 8, 5), {"groups": 2}), ("Embedding", (400, 32), {"padding_idx": 3}),
    ("EmbeddingBag", (400, 32), {}), ("LayerNorm", (64,), {}), ("RMSNorm", (64,), {}), ("GroupNorm", (4, 64), {}),
    ("BatchNorm2d", (64,), {}), ("InstanceNorm1d", (8,), {"affine": True, "track_running_stats": True}),
    ("PReLU", (8, 0.1), {}), ("LSTM", (32, 64), {"num_layers": 2, "proj_size": 16, "bidirectional": True}),
    ("GRUCell", (32, 64), {}), ("MultiheadAttention", (64, 4), {"add_bias_kv": True, "kdim": 32, "vdim": 48}),
    ("Transformer", (32, 4, 1, 1, 64), {}), ("AdaptiveLogSoftmaxWithLoss", (64, 100, [20, 50]), {}),
]


def _reset(module) -> None:
    for method in ("reset_parameters", "_reset_parameters"):
        if hasattr(module, method):
            getattr(module, method)()
            return


def test_the_reset_methods_are_torchs():
    """Each module class has torch's reset methods, and no others (``hasattr(m,
    'reset_parameters')`` init loops see the same modules)."""
    for name in nn.MODULES:
        theirs = getattr(torch.nn, name)
        for method in ("reset_parameters", "reset_running_stats", "_reset_parameters"):
            assert hasattr(getattr(nn, name), method) == hasattr(theirs, method), (name, method)


@pytest.mark.slow_on("dask")
@pytest.mark.parametrize(("name", "args", "kwargs"), _RESETS, ids=[case[0] for case in _RESETS])
def test_reset_draws_torchs_distributions_in_place(backend, name, args, kwargs):
    """From a state that is no initial one, the reset gives torch's: the entries torch sets
    (equal after two of its resets) equal, the ones it draws from its distribution (the
    two-sample KS test against torch's draws, on numpy), the arrays the module holds kept (a
    torch parameter still a leaf that requires grad)."""
    torch.manual_seed(0)
    reference = getattr(torch.nn, name)(*args, **kwargs)
    rng = np.random.default_rng(0)
    state = {key: torch.as_tensor(rng.uniform(2, 3, tuple(value.shape))).to(value.dtype)
             for key, value in reference.state_dict().items()}
    reference.load_state_dict(state)
    module = getattr(nn, name)(*args, **kwargs, like=backend.like())
    module.load_state_dict(state)
    held = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    before = {key: backend.to_numpy(value).astype(np.float64) for key, value in held.items()}
    draws = []
    for seed in (1, 2, 3, 4):
        torch.manual_seed(seed)
        _reset(reference)
        draws.append({key: value.detach().double().numpy() for key, value in reference.state_dict().items()})
    nn.manual_seed(5)
    _reset(module)
    for key, value in {**dict(module.named_parameters()), **dict(module.named_buffers())}.items():
        if backend.name != "jax":
            assert value is held[key], key
        got = backend.to_numpy(value).astype(np.float64)
        fixed = np.all([draw[key] == draws[0][key] for draw in draws], axis=0)
        np.testing.assert_array_equal(got[fixed], draws[0][key][fixed], err_msg=key)
        assert not np.any(got[~fixed] == before[key][~fixed]), key
        if backend.name == "numpy" and (~fixed).sum() >= 100:
            pooled = np.concatenate([draw[key][~fixed] for draw in draws])
            assert scipy.stats.ks_2samp(got[~fixed], pooled).pvalue > 1e-3, key
    if backend.name == "torch":
        assert all(p.is_leaf and p.requires_grad for p in module.parameters())


def test_lazy_modules_reset_nothing_before_their_first_call():
    for module in (nn.LazyLinear(3), nn.LazyBatchNorm1d()):
        module.reset_parameters()
        assert list(module.parameters()) == []
    nn.LazyInstanceNorm2d().reset_running_stats()


def test_one_key_gives_each_projection_of_the_adaptive_softmax_its_own_draws():
    module = nn.AdaptiveLogSoftmaxWithLoss(8, 20, [5, 10], div_value=1.0, key=xpnn.random.key(0))
    first, second = module.tail[0][0].weight, module.tail[1][0].weight  # both (8, 8)
    assert first.shape == second.shape and not np.array_equal(first, second)

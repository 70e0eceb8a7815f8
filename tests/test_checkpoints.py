"""xpnn.save / xpnn.load: safetensors round trips on every backend (bfloat16 included), files
shared with the safetensors package both ways, flax msgpack checkpoints, and the errors."""
from __future__ import annotations

import flax.linen as fnn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch

import xpnn as nn
from xpnn.backends import dtype_name


class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.SpectralNorm(nn.Dense(6))(x, update_stats=False)   # batch_stats names hold '/'
        return nn.BatchNorm(use_running_average=True)(x)


def _host(leaf, backend):
    return np.asarray(backend.to_numpy(leaf), np.float64)


def test_round_trip_on_every_backend(backend, tmp_path):
    x = backend.asarray(np.random.default_rng(0).standard_normal((2, 4)), "float32")
    variables = Net().init(nn.random.key(0, like=x), x)
    variables["steps"] = {"count": backend.xp.asarray([3, 4], dtype=backend.xp.int32),
                          "total": backend.xp.asarray(7, dtype=backend.xp.int32)}  # 0-d, a counter
    if "bfloat16" in backend.dtypes:
        variables["params"]["Dense_0"]["bias"] = backend.asarray(np.linspace(-2, 2, 6), "bfloat16")
    nn.save(tmp_path / "net.safetensors", variables)
    loaded = nn.load(tmp_path / "net.safetensors", like=backend.like())
    assert nn.tree_map(lambda a: None, loaded) == nn.tree_map(lambda a: None, variables)  # the same tree
    for got, want in zip(nn.tree_leaves(loaded), nn.tree_leaves(variables)):
        assert type(got) is type(want) and dtype_name(got.dtype) == dtype_name(want.dtype)
        assert tuple(got.shape) == tuple(want.shape)
        np.testing.assert_array_equal(_host(got, backend), _host(want, backend))
    out = Net().apply(loaded, x)
    np.testing.assert_array_equal(backend.to_numpy(out), backend.to_numpy(Net().apply(variables, x)))


def test_files_shared_with_the_safetensors_package(tmp_path):
    """safetensors reads xpnn's files under '/'-joined names, and xpnn reads its files, bfloat16 too."""
    kernel = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    nn.save(tmp_path / "ours.safetensors", {"params": {"Dense_0": {"kernel": torch.from_numpy(kernel),
                                                                   "bias": torch.ones(4, dtype=torch.bfloat16)}}})
    theirs = safetensors.torch.load_file(tmp_path / "ours.safetensors")
    assert theirs["params/Dense_0/bias"].dtype == torch.bfloat16
    np.testing.assert_array_equal(theirs["params/Dense_0/kernel"].numpy(), kernel)
    np.testing.assert_array_equal(safetensors.numpy.load_file(tmp_path / "ours.safetensors")["params/Dense_0/kernel"],
                                  kernel)
    values = torch.randn(2, 3).to(torch.bfloat16)
    safetensors.torch.save_file({"a/b": values, "c": torch.arange(4)}, tmp_path / "theirs.safetensors")
    loaded = nn.load(tmp_path / "theirs.safetensors", like=torch)
    assert torch.equal(loaded["a"]["b"], values) and torch.equal(loaded["c"], torch.arange(4))
    on_jax = nn.load(tmp_path / "theirs.safetensors", like=jnp)
    assert on_jax["a"]["b"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(on_jax["a"]["b"], np.float32), values.float().numpy())


def test_flax_msgpack_checkpoint_applies_in_xpnn(tmp_path):
    x = np.random.default_rng(2).standard_normal((2, 4)).astype(np.float32)
    model = fnn.Sequential([fnn.Dense(5), fnn.relu, fnn.Dense(3)])
    variables = model.init(jax.random.key(0), jnp.asarray(x))
    (tmp_path / "flax.msgpack").write_bytes(flax.serialization.to_bytes(variables))
    loaded = nn.load(tmp_path / "flax.msgpack", like=torch)
    ours = nn.Sequential([nn.Dense(5), nn.relu, nn.Dense(3)])
    np.testing.assert_allclose(ours.apply(loaded, torch.from_numpy(x)).numpy(), np.asarray(model.apply(variables, x)),
                               rtol=1e-6, atol=1e-6)


def test_errors_name_the_function(tmp_path):
    with pytest.raises(TypeError, match="xpnn.save: variables must be nested dicts of arrays; params/scale is a list"):
        nn.save(tmp_path / "a.safetensors", {"params": {"scale": [1.0]}})
    with pytest.raises(ValueError, match="xpnn.save: two variables are named 'a/b'"):
        nn.save(tmp_path / "a.safetensors", {"a": {"b": np.zeros(1)}, "a/b": np.ones(1)})
    (tmp_path / "junk.bin").write_bytes(b"\x00not a checkpoint")
    with pytest.raises(ValueError, match="xpnn.load: .*junk.bin is neither a safetensors file nor a flax msgpack"):
        nn.load(tmp_path / "junk.bin")
    nn.save(tmp_path / "b.safetensors", {"w": torch.ones(2, dtype=torch.bfloat16)})
    with pytest.raises(TypeError, match="xpnn.load: w is bfloat16, which array_api_strict arrays do not hold"):
        import array_api_strict

        nn.load(tmp_path / "b.safetensors", like=array_api_strict)

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


def _file_with_header(path, header: bytes, data: bytes = b"\0" * 8):
    path.write_bytes(len(header).to_bytes(8, "little") + header + data)
    return path


@pytest.mark.parametrize("header, message", [
    (b'{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,8]}}', r"tensor 'a' \(F32, shape \(2, 3\)\) needs 24 bytes"),
    (b'{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}', r"tensor 'a' \(F32, shape \(-2,\)\)"),
    (b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}',
     r"tensor .a. .* data_offsets are \[4, 12\] in 8 bytes of data"),
    (b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":7}', "the header entry of tensor 'b' is not"),
    (b'{"a":{"dtype":["F32"],"shape":[2],"data_offsets":[0,8]}}', r"tensor 'a' has dtype \['F32'\]"),
    (b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]', "the safetensors header is not a JSON object"),
    (b'{"__metadata__":{"xpnn.paths":3}}', "the safetensors header is not a JSON object"),
])
def test_damaged_files_are_errors_naming_the_tensor(tmp_path, header, message):
    """A header that does not describe its data is an error naming the file and the tensor, as the
    safetensors package refuses such files too (it was NumPy's reshape or buffer error here)."""
    path = _file_with_header(tmp_path / "damaged.safetensors", header)
    with pytest.raises(Exception):  # noqa: B017 - the reference refuses it, whatever its error class
        safetensors.numpy.load_file(path)
    with pytest.raises(ValueError, match=f"xpnn.load: .*damaged.safetensors: {message}"):
        nn.load(path)


def test_truncated_file_is_an_error(tmp_path):
    nn.save(tmp_path / "whole.safetensors", {"w": np.arange(6, dtype=np.float32), "b": np.ones(4, np.float32)})
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes((tmp_path / "whole.safetensors").read_bytes()[:-3])
    with pytest.raises(Exception):  # noqa: B017 - the reference refuses it, whatever its error class
        safetensors.numpy.load_file(truncated)
    with pytest.raises(ValueError, match="tensor '.' .* the file is damaged or truncated"):
        nn.load(truncated)


def test_saved_trees_of_any_mapping_and_typed_keys(tmp_path):
    """A flax FrozenDict saves as the dict it maps; a jax typed key as its raw words (jax.random.key_data),
    which xpnn.random takes as a key; anything but a mapping at the top, or a dtype safetensors cannot
    store, is an error naming the variable."""
    from flax.core import FrozenDict

    kernel = np.arange(6, dtype=np.float32).reshape(2, 3)
    nn.save(tmp_path / "frozen.safetensors", FrozenDict({"params": {"kernel": kernel}}))
    np.testing.assert_array_equal(nn.load(tmp_path / "frozen.safetensors")["params"]["kernel"], kernel)
    nn.save(tmp_path / "key.safetensors", {"rng": jax.random.key(7)})
    loaded = nn.load(tmp_path / "key.safetensors", like=jnp)["rng"]
    np.testing.assert_array_equal(loaded, jax.random.key_data(jax.random.key(7)))
    np.testing.assert_array_equal(nn.random.normal(loaded, (3,)), jax.random.normal(jax.random.key(7), (3,)))
    with pytest.raises(TypeError, match="xpnn.save: variables must be nested dicts of arrays, got ndarray"):
        nn.save(tmp_path / "a.safetensors", kernel)
    with pytest.raises(TypeError, match="xpnn.save: params/z has dtype complex64, which safetensors does not store"):
        nn.save(tmp_path / "a.safetensors", {"params": {"z": np.ones(2, np.complex64)}})

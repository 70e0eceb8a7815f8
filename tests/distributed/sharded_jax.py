"""xpnn on sharded jax arrays: run as a script in its own process (it sets
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` before jax starts), by
``tests/test_distributed.py``.  Every result is compared with the same model run
unsharded; an AssertionError or any exception fails the test.

Covered, each with explicit mesh axes (``jax.make_mesh``'s default) and auto axes:
data-parallel MLP (batch-sharded input, params made by ``init`` replicated over
the mesh) eagerly and under ``jax.jit`` with input/output shardings; params made
for an unsharded input applied to a sharded one; a tensor-parallel MLP (kernels
split over features), and one laid out by its initializers' partitioning metadata (a jitted
init with the shardings of ``get_partition_spec`` and logical axis rules); a transformer block
(LayerNorm, attention, MLP, dropout) and an LSTM over a batch-sharded sequence; xpnn.torch_nn's LSTM, GRU and MultiheadAttention
(appended keys, padding mask) on one; a jitted data-parallel training step;
``xpnn.random`` draws under ``out_shardings`` in both threefry modes, equal to the
unsharded draws and to jax.random's; every one-array function jitted with sharded input and
output.  The conformance suite's sharded columns (``--backends jax_sharded,jax_sharded_auto``)
check every function, sampler, initializer and layer eagerly.
"""
from __future__ import annotations

import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import AxisType, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import xpnn as nn  # noqa: E402


class MLP(nn.Module):
    features: tuple[int, ...] = (64, 10)

    @nn.compact
    def __call__(self, x):
        for features in self.features[:-1]:
            x = nn.relu(nn.Dense(features)(x))
        return nn.Dense(self.features[-1])(x)


class Block(nn.Module):
    """A pre-norm transformer block."""

    @nn.compact
    def __call__(self, x, deterministic: bool = True):
        y = nn.MultiHeadDotProductAttention(num_heads=4)(nn.LayerNorm()(x), deterministic=deterministic)
        x = x + nn.Dropout(0.1, deterministic=deterministic)(y)
        y = nn.Dense(x.shape[-1])(nn.gelu(nn.Dense(64)(nn.RMSNorm()(x))))
        return x + y


class PartitionedMLP(nn.Module):
    """Tensor-parallel by its initializers' metadata: the hidden kernel and bias named over the mesh
    axis "model", the output kernel over the logical axes ("mlp", "embed")."""

    @nn.compact
    def __call__(self, x):
        h = nn.Dense(64, kernel_init=nn.with_partitioning(nn.initializers.lecun_normal(), (None, "model")),
                     bias_init=nn.with_partitioning(nn.initializers.normal(0.1), ("model",)))(x)
        kernel_init = nn.with_logical_partitioning(nn.initializers.lecun_normal(), ("mlp", "embed"))
        return nn.Dense(10, kernel_init=kernel_init)(nn.relu(h))


def close(got, want, tolerance=2e-5):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=tolerance, atol=tolerance)


def spans_mesh(tree, mesh, replicated=True):
    """Every array of ``tree`` lies on all of the mesh's devices (replicated unless told)."""
    for leaf in jax.tree_util.tree_leaves(tree):
        assert leaf.sharding.device_set == set(mesh.devices.flat), leaf.sharding
        if replicated:
            assert all(entry is None for entry in leaf.sharding.spec), leaf.sharding


def unsharded(tree):
    return jax.tree_util.tree_map(np.asarray, tree)


def data_parallel(mesh, batch):
    rng = np.random.default_rng(0)
    x_host = rng.standard_normal((16, 32)).astype(np.float32)
    x = jax.device_put(x_host, batch)
    model = MLP()
    variables = model.init(nn.random.key(0, like=x), x)
    spans_mesh(variables, mesh)
    reference_variables = model.init(nn.random.key(0), jnp.asarray(x_host))  # on one device
    for a, b in zip(jax.tree_util.tree_leaves(variables), jax.tree_util.tree_leaves(reference_variables)):
        close(a, b, 0)  # the same keys: the same params, sharded or not
    want = model.apply(reference_variables, jnp.asarray(x_host))
    out = model.apply(variables, x)
    close(out, want)
    assert out.sharding.spec[0] == "batch", out.sharding
    replicated = NamedSharding(mesh, P())
    jitted = jax.jit(model.apply, in_shardings=(replicated, batch), out_shardings=batch)
    out = jitted(variables, x)
    close(out, want)
    assert out.sharding == batch
    # jitted init on a sharded input, and params of an unsharded input on a sharded one
    jitted_variables = jax.jit(model.init)(jnp.asarray(nn.random.key(0)), x)
    spans_mesh(jitted_variables, mesh, replicated=False)
    close(model.apply(jitted_variables, x), want)
    close(model.apply(reference_variables, x), want)  # params of an uncommitted input meet a sharded one
    return variables, x_host, want


def tensor_parallel(mesh, batch, variables, x_host, want):
    """The hidden layer's kernel split over its output features, the next one over its inputs."""
    split = {"Dense_0": {"kernel": P(None, "model"), "bias": P("model")}, "Dense_1": {"kernel": P("model", None),
                                                                                  "bias": P()}}
    params = {name: {k: jax.device_put(np.asarray(v), NamedSharding(mesh, split[name][k])) for k, v in layer.items()}
              for name, layer in variables["params"].items()}
    x = jax.device_put(x_host, batch)
    close(MLP().apply({"params": params}, x), want)
    close(jax.jit(MLP().apply)({"params": params}, x), want)


def partitioned_init(mesh, batch):
    """``jax.jit(init, out_shardings=...)`` with the shardings that ``get_partition_spec`` of
    ``jax.eval_shape``'s abstract variables and the logical rules give: each parameter made where
    its metadata says, equal to the unsharded init; applied (reading each parameter with its layout
    as its layout) eagerly and jitted, equal to the unsharded model."""
    x_host = np.random.default_rng(2).standard_normal((16, 32)).astype(np.float32)
    x = jax.device_put(x_host, batch)
    model = PartitionedMLP()
    key = jnp.asarray(nn.random.key(0))
    # the rules map every name of the specs, the mesh axis "model" (to itself) as the logical ones
    with nn.logical_axis_rules((("mlp", "model"), ("embed", None), ("model", "model"))):
        abstract = jax.eval_shape(model.init, key, x)
        shardings = nn.logical_to_mesh_sharding(nn.get_partition_spec(abstract), mesh)
        variables = jax.jit(model.init, out_shardings=shardings)(key, x)
        params = variables["params"]
        assert params["Dense_0"]["kernel"].value.sharding.spec == P(None, "model")
        assert params["Dense_0"]["bias"].value.sharding.spec == P("model")
        assert params["Dense_1"]["kernel"].value.sharding.spec == P("model", None)
        assert params["Dense_1"]["bias"].sharding.spec == P()
        reference = nn.unbox(model.init(nn.random.key(0), jnp.asarray(x_host)))
        for a, b in zip(jax.tree_util.tree_leaves(nn.unbox(variables)), jax.tree_util.tree_leaves(reference)):
            close(a, b, 1e-6)  # jitted, the normal draws' polynomial fuses differently: an ulp at most
        want = model.apply(reference, jnp.asarray(x_host))
        close(model.apply(variables, x), want)
        close(jax.jit(model.apply)(variables, x), want)


def transformer_block(mesh, batch3):
    rng = np.random.default_rng(1)
    x_host = rng.standard_normal((8, 6, 32)).astype(np.float32)
    x = jax.device_put(x_host, batch3)
    block = Block()
    variables = block.init(nn.random.key(0, like=x), x)
    spans_mesh(variables, mesh)
    reference = unsharded(variables)  # the same params, applied on NumPy
    # Under jit (the conformance suite's sharded columns apply every layer eagerly).
    want = block.apply(reference, x_host)
    close(jax.jit(block.apply)(variables, x), want, 1e-4)
    key = nn.random.key(3)
    dropped = block.apply(reference, x_host, deterministic=False, rngs={"dropout": key})
    training = jax.jit(lambda v, a, k: block.apply(v, a, deterministic=False, rngs={"dropout": k}))
    close(training(variables, x, nn.to_backend(key, x)), dropped, 1e-4)
    lstm = nn.RNN(nn.LSTMCell(16))
    lstm_variables = lstm.init(nn.random.key(0, like=x), x)
    close(jax.jit(lstm.apply)(lstm_variables, x), lstm.apply(unsharded(lstm_variables), x_host), 1e-5)


def torch_style_modules(mesh, batch3):
    """xpnn.torch_nn modules on a batch-sharded (N, L, E) input, eagerly and jitted, equal to the
    same modules on NumPy: an LSTM's zero carry and attention's appended keys and padding-mask
    columns are laid out as the batch."""
    import xpnn.torch_nn as tnn

    rng = np.random.default_rng(4)
    x_host = rng.standard_normal((8, 6, 16)).astype(np.float32)
    mask_host = rng.random((8, 6)) < 0.3
    x = jax.device_put(x_host, batch3)
    mask = jax.device_put(mask_host, NamedSharding(mesh, P("batch", None)))
    tnn.manual_seed(0)
    for build, call in (
            (lambda: tnn.LSTM(16, 8, num_layers=2, batch_first=True), lambda m, a, k: m(a)[0]),
            (lambda: tnn.GRU(16, 8, batch_first=True, bidirectional=True), lambda m, a, k: m(a)[0]),
            (lambda: tnn.MultiheadAttention(16, 4, batch_first=True, add_bias_kv=True, add_zero_attn=True),
             lambda m, a, k: m(a, a, a, key_padding_mask=k)[0])):
        on_numpy = build()
        on_jax = build().to(like=x)
        on_jax.load_state_dict(on_numpy.state_dict())
        want = call(on_numpy, x_host, mask_host)
        close(call(on_jax, x, mask), want)
        close(jax.jit(lambda a, k: call(on_jax, a, k))(x, mask), want)


def training_step(mesh, batch):
    """One jitted SGD step on batch-sharded data equals the step on the whole batch on one device."""
    rng = np.random.default_rng(2)
    x_host = rng.standard_normal((32, 8)).astype(np.float32)
    y_host = rng.standard_normal((32, 1)).astype(np.float32)
    model = MLP((16, 1))
    params = model.init(nn.random.key(0), x_host)["params"]

    def step(params, x, y):
        def loss(p):
            return jnp.mean((model.apply({"params": p}, x) - y) ** 2)

        value, grads = jax.value_and_grad(loss)(params)
        return jax.tree_util.tree_map(lambda p, g: p - 0.1 * g, params, grads), value

    replicated = NamedSharding(mesh, P())
    sharded_params = jax.device_put(unsharded(params), replicated)
    new, value = jax.jit(step, in_shardings=(replicated, batch, batch), out_shardings=(replicated, replicated))(
        sharded_params, jax.device_put(x_host, batch), jax.device_put(y_host, batch))
    want_new, want_value = jax.jit(step)(jax.tree_util.tree_map(jnp.asarray, unsharded(params)), x_host, y_host)
    close(value, want_value)
    for a, b in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(want_new)):
        close(a, b)
    spans_mesh(new, mesh)


def random_draws(mesh, batch):
    """Draws computed sharded (out_shardings) equal the unsharded ones and jax.random's, in
    jax's partitionable threefry and in its legacy layout."""
    for partitionable in (True, False):
        nn.random.set_threefry_partitionable(partitionable)
        jax.config.update("jax_threefry_partitionable", partitionable)
        try:
            for name, draw in (("normal", lambda r, k: r.normal(k, (16, 24))),
                               ("uniform", lambda r, k: r.uniform(k, (16, 24))),
                               ("bernoulli", lambda r, k: r.bernoulli(k, 0.3, (16, 24))),
                               ("bits", lambda r, k: r.bits(k, (16, 24)))):
                key = nn.random.key(7, like=jnp)
                want = np.asarray(draw(jax.random, jax.random.key(7)))
                close(draw(nn.random, key), want, 0)
                sharded = jax.jit(lambda k: draw(nn.random, k), out_shardings=batch)(key)
                assert sharded.sharding == batch
                close(sharded, want, 0)
                split_key = nn.random.fold_in(nn.random.key(7, like=jax.device_put(np.zeros((16, 1)), batch)), 1)
                close(draw(nn.random, split_key), draw(jax.random, jax.random.fold_in(jax.random.key(7), 1)), 0)
        finally:
            nn.random.set_threefry_partitionable(True)
            jax.config.update("jax_threefry_partitionable", True)


def one_array_functions():
    """xpnn's public functions called with one array and their defaults (the activations,
    softmax and the other row-wise ones)."""
    import inspect

    for name in nn.FUNCTIONS:
        parameters = list(inspect.signature(getattr(nn, name)).parameters.values())[1:]
        if all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters):
            yield name, getattr(nn, name)


def functions_under_jit(batch):
    """Each one-array function jitted with a batch-sharded input and output (replicated for a
    reduction to a scalar) equals its unsharded value."""
    x_host = np.random.default_rng(4).standard_normal((16, 8)).astype(np.float32) * 3
    x = jax.device_put(x_host, batch)
    count = 0
    for name, function in one_array_functions():
        want = np.asarray(function(jnp.asarray(x_host)))
        laid_out = batch if want.shape == x_host.shape else NamedSharding(batch.mesh, P())  # reductions: replicated
        got = jax.jit(function, in_shardings=batch, out_shardings=laid_out)(x)
        assert got.sharding == laid_out, name
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-6, err_msg=name)
        close(function(x), want, 1e-6)
        count += 1
    assert count > 30, count


def main(axis_types: list[str]) -> None:
    """The checks with each of ``axis_types`` ("explicit", "auto") mesh axes."""
    assert len(jax.devices()) == 8, jax.devices()
    for axis_type in (getattr(AxisType, name.capitalize()) for name in axis_types):
        mesh = jax.make_mesh((2, 4), ("batch", "model"), axis_types=(axis_type, axis_type))
        batch, batch3 = NamedSharding(mesh, P("batch", None)), NamedSharding(mesh, P("batch", None, None))
        with jax.set_mesh(mesh):
            variables, x_host, want = data_parallel(mesh, batch)
            tensor_parallel(mesh, batch, variables, x_host, want)
            partitioned_init(mesh, batch)
            transformer_block(mesh, batch3)
            torch_style_modules(mesh, batch3)
            training_step(mesh, batch)
            random_draws(mesh, batch)
            functions_under_jit(batch)
        print(f"{axis_type}: ok")


if __name__ == "__main__":
    main(sys.argv[1:] or ["explicit", "auto"])

"""Partitioning metadata (``xpnn.with_partitioning``, ``Partitioned``, logical axis rules) against
flax.linen's, on every backend; the layouts over a mesh of 8 devices are checked by
tests/distributed/sharded_jax.py."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import flax.linen as fnn
import numpy as np
import pytest

import xpnn


def mlp(nn):
    """The same model in flax.linen or xpnn: boxed kernels, a boxed bias, a logically partitioned
    kernel, a boxed variable of another collection, and a plain bias."""

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.Dense(8, kernel_init=nn.with_partitioning(nn.initializers.lecun_normal(), (None, "model")),
                         bias_init=nn.with_partitioning(nn.initializers.normal(0.5), ("model",)))(x)
            counter = self.variable("stats", "calls", nn.with_partitioning(lambda: 0 * h[0, :], ("model",)))
            counter.value = counter.value + 1
            h = nn.relu(h) + counter.value
            kernel_init = nn.with_logical_partitioning(nn.initializers.lecun_normal(), ("mlp", "embed"))
            return nn.Dense(3, kernel_init=kernel_init)(h)

    return MLP()


X = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
BOXES = {"Partitioned": (xpnn.Partitioned, fnn.Partitioned),
         "LogicallyPartitioned": (xpnn.LogicallyPartitioned, fnn.LogicallyPartitioned)}


def flax_run():
    model = mlp(fnn)
    variables = model.init(jax.random.key(0), jnp.asarray(X))
    out, updated = model.apply(variables, jnp.asarray(X), mutable=["stats"])
    return variables, out, updated


def assert_same_boxes(ours, theirs, backend=None):
    """The same tree, with boxes of the same class and names where flax has them, and the same values."""
    if isinstance(theirs, dict):
        assert set(ours) == set(theirs)
        for key in theirs:
            assert_same_boxes(ours[key], theirs[key], backend)
        return
    if isinstance(theirs, fnn.Partitioned):
        assert type(theirs) is BOXES[type(ours).__name__][1], (type(ours), type(theirs))
        assert ours.names == theirs.names and ours.mesh is None
        ours, theirs = ours.value, theirs.value
    actual = backend.to_numpy(ours) if backend is not None else np.asarray(ours)
    np.testing.assert_allclose(actual, np.asarray(theirs), rtol=2e-6, atol=1e-6)


def test_init_and_apply_equal_flax(backend):
    """init keeps the boxes (the same classes, names and values as flax's); apply reads the
    parameters unboxed, and writing a boxed variable keeps its box."""
    flax_variables, flax_out, flax_updated = flax_run()
    x = backend.asarray(X, "float32")
    model = mlp(xpnn)
    variables = model.init(xpnn.random.key(0, like=x), x)
    assert_same_boxes(variables, flax_variables, backend)
    out, updated = model.apply(variables, x, mutable=["stats"])
    np.testing.assert_allclose(backend.to_numpy(out), np.asarray(flax_out), rtol=2e-5, atol=2e-6)
    assert_same_boxes(updated, flax_updated, backend)
    unboxed = xpnn.unbox(variables)
    np.testing.assert_allclose(backend.to_numpy(model.apply(unboxed, x, mutable=["stats"])[0]), np.asarray(flax_out),
                               rtol=2e-5, atol=2e-6)
    assert all(type(leaf) is type(x) for leaf in xpnn.tree_leaves(variables))


def test_dask_inputs_take_boxed_numpy_variables():
    """A Dask input takes NumPy variables, boxed ones too (each adopted as a Dask array in its box):
    the NumPy model's outputs, lazily."""
    da = pytest.importorskip("dask.array")
    variables = mlp(xpnn).init(xpnn.random.key(0), X)
    out, _ = mlp(xpnn).apply(variables, da.from_array(X, chunks=(2, 4)), mutable=["stats"])
    assert isinstance(out, da.Array)
    np.testing.assert_allclose(out.compute(), mlp(xpnn).apply(variables, X, mutable=["stats"])[0], rtol=1e-6)
    frame = xpnn.module.Frame("MLP", variables, {}, False, False, da.from_array(X))
    kernel = frame.adopted(variables["params"]["Dense_0"]["kernel"])
    assert isinstance(kernel, xpnn.Partitioned) and isinstance(kernel.value, da.Array)
    assert kernel.names == (None, "model")


def test_partition_specs_equal_flax():
    flax_variables = flax_run()[0]
    variables = mlp(xpnn).init(xpnn.random.key(0), X)
    assert xpnn.get_partition_spec(variables) == fnn.get_partition_spec(flax_variables)
    mesh = jax.make_mesh((1, 1, 1), ("model", "mlp", "embed"))
    assert xpnn.get_sharding(variables, mesh) == fnn.get_sharding(flax_variables, mesh)
    # jax.eval_shape sees through the boxes: the specs of a model not yet made
    abstract = jax.eval_shape(mlp(xpnn).init, jnp.asarray(xpnn.random.key(0)), jnp.asarray(X))
    assert xpnn.get_partition_spec(abstract) == fnn.get_partition_spec(flax_variables)
    rules = [("mlp", "model"), ("embed", None)]
    assert (xpnn.logical_to_mesh_sharding(xpnn.get_partition_spec(variables), mesh, rules)
            == fnn.logical_to_mesh_sharding(fnn.get_partition_spec(flax_variables), mesh, rules))


@pytest.mark.parametrize("names", [
    ("batch", "embed", "mlp"), ("embed", None, "heads"), ("kv", "heads", "mlp"), (), ("unknown", "embed"),
])
@pytest.mark.parametrize("rules", [
    (("batch", "data"), ("embed", None), ("mlp", "model"), ("heads", "model"), ("kv", ("data", "model"))),
    [["batch", ["data", "replica"]], ["mlp", "data"], ["heads", "model"], ["embed", "model"]],
    (("heads", "model"), ("heads", "data"), ("mlp", "model"), ("mlp", "data")),
])
def test_logical_rules_equal_flax(names, rules):
    """flax's matching: the first rule for a name whose mesh axes no other axis took yet."""
    assert xpnn.logical_to_mesh_axes(names, rules) == fnn.logical_to_mesh_axes(names, rules)
    with xpnn.logical_axis_rules(rules), fnn.logical_axis_rules(rules):
        assert xpnn.logical_to_mesh_axes(names) == fnn.logical_to_mesh_axes(names)
        assert xpnn.get_logical_axis_rules() == tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in rules)
    assert xpnn.get_logical_axis_rules() == ()
    tree = {"a": jax.sharding.PartitionSpec(*names), "b": [None, jax.sharding.PartitionSpec()]}
    assert xpnn.logical_to_mesh(tree, rules) == fnn.logical_to_mesh(tree, rules)


def test_grads_through_boxes_equal_flax():
    """jax.grad of boxed variables: boxes with the same names around flax's gradients."""
    flax_variables = flax_run()[0]
    variables = xpnn.to_backend(mlp(xpnn).init(xpnn.random.key(0), X), jnp)

    def loss(namespace, variables):
        model = mlp(namespace)
        return jnp.sum(model.apply(variables, jnp.asarray(X), mutable=["stats"])[0] ** 2)

    grads = jax.grad(lambda p: loss(xpnn, {**variables, "params": p}))(variables["params"])
    flax_grads = jax.grad(lambda p: loss(fnn, {**flax_variables, "params": p}))(flax_variables["params"])
    assert_same_boxes(grads, flax_grads)


def test_torch_trains_boxed_parameters():
    """tree_leaves goes into the boxes: torch's optimizer takes the parameters."""
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(X)
    model = mlp(xpnn)
    variables = model.init(xpnn.random.key(0, like=x), x)
    params = xpnn.tree_map(lambda p: p.requires_grad_(), variables["params"])
    optimizer = torch.optim.SGD(xpnn.tree_leaves(params), lr=0.05)
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = (model.apply({**variables, "params": params}, x, mutable=["stats"])[0] ** 2).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert isinstance(params["Dense_0"]["kernel"], xpnn.Partitioned)


def test_logical_constraint_is_a_no_op_without_a_mesh(backend):
    x = backend.asarray(X, "float32")
    assert xpnn.with_logical_constraint(x, ("batch", "embed"), rules=[("batch", "data")]) is x
    tree = {"a": x, "b": [x]}
    assert xpnn.with_logical_constraint(tree, {"a": ("batch", None), "b": [None]}, rules=[("batch", "data")]) == tree
    box = xpnn.Partitioned(x, ("data", None))
    assert box.unbox() is x and box.replace_boxed(2 * x).names == ("data", None)


def test_save_and_load_keep_the_values(tmp_path):
    variables = mlp(xpnn).init(xpnn.random.key(0), X)
    xpnn.save(tmp_path / "boxed.safetensors", xpnn.unbox(variables))
    loaded = xpnn.load(tmp_path / "boxed.safetensors")
    out = mlp(xpnn).apply(loaded, X, mutable=["stats"])[0]
    np.testing.assert_array_equal(out, mlp(xpnn).apply(variables, X, mutable=["stats"])[0])


@pytest.mark.parametrize("call, error, message", [
    (lambda: xpnn.with_partitioning(xpnn.initializers.zeros, "model"), TypeError,
     "xpnn.with_partitioning: names must be a tuple of axis names"),
    (lambda: xpnn.with_partitioning(xpnn.initializers.zeros, (None, 3)), TypeError,
     "each of names must be an axis name, a tuple of names or None, got 3"),
    (lambda: xpnn.Partitioned(np.zeros(2), ["a", ["b"]]), TypeError, "xpnn.Partitioned: each of names"),
    (lambda: xpnn.logical_to_mesh_axes(("embed", "embed"), [("embed", "model")]), ValueError,
     "axis names ['embed'] occur more than once"),
    (lambda: xpnn.set_logical_axis_rules(["embed"]), TypeError,
     "xpnn.set_logical_axis_rules: rules must be (logical axis, mesh axes) pairs"),
])
def test_errors(call, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        call()


def test_tabulate_shows_the_partitioning_as_flax():
    """flax's table, character for character: each boxed variable with its spec under it."""
    import re

    def model(nn):
        return nn.Dense(3, kernel_init=nn.with_partitioning(nn.initializers.lecun_normal(), (None, "model")),
                        bias_init=nn.with_partitioning(nn.initializers.zeros_init(), (("data", "model"),)))

    want = model(fnn).tabulate(jax.random.key(0), jnp.asarray(X), console_kwargs={"width": 300})
    assert model(xpnn).tabulate(xpnn.random.key(0), X) == re.sub(r"\x1b\[[0-9;]*m", "", want)

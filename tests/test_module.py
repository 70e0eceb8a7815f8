"""The module system against flax.linen: naming, keys, collections, jit/grad, training, errors."""
from __future__ import annotations

import functools
import inspect

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import xpnn as nn
from conftest import jax_default_mode

jax.config.update("jax_enable_x64", True)


def _shapes(tree):
    return jax.tree_util.tree_map(lambda a: tuple(a.shape), tree)


def _assert_trees_close(ours, theirs, rtol=2e-6, atol=2e-6):
    assert jax.tree_util.tree_structure(ours) == jax.tree_util.tree_structure(theirs)
    for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(theirs)):
        np.testing.assert_allclose(np.asarray(nn.to_backend(a, np)), np.asarray(b), rtol=rtol, atol=atol)


def _nested_model(L):
    """Three levels, mixing @compact, setup(), lists, dicts, explicit names and field submodules."""

    class Leaf(L.Module):
        features: int

        @L.compact
        def __call__(self, x):
            return L.PReLU()(L.Dense(self.features)(x))

    class Middle(L.Module):
        def setup(self):
            self.first = Leaf(5)
            self.layers = [L.Dense(6), Leaf(4)]
            self.branches = {"a": L.Dense(4), "b": L.Dense(4, use_bias=False)}
            self.head = L.Dense(3, use_bias=False)

        def __call__(self, x):
            x = self.first(x)
            for layer in self.layers:
                x = layer(x)
            x = self.branches["a"](x) + self.branches["b"](x)
            return self.head(x)

    class Wrapper(L.Module):
        inner: L.Module

        @L.compact
        def __call__(self, x):
            return self.inner(x) * 2

    class Top(L.Module):
        @L.compact
        def __call__(self, x, train=False):
            y = Middle()(x)
            z = Middle(name="other")(x)
            w = Wrapper(L.Dense(3, name="wrapped"))(x)
            s = L.Sequential([L.Dense(4), L.relu, L.Dense(3)])(y + z + w)
            return L.Dropout(0.3, deterministic=not train)(s)

    return Top()


X = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)


@pytest.mark.slow_on("dask")
def test_nested_tree_and_init_equal_flax(backend):
    flax_variables = _nested_model(fnn).init(jax.random.key(0), jnp.asarray(X))
    variables = _nested_model(nn).init(nn.random.key(0), backend.asarray(X, "float32"))
    assert _shapes(variables) == _shapes(flax_variables)
    _assert_trees_close(variables, flax_variables)
    assert "Middle_0" in variables["params"] and "other" in variables["params"]
    assert set(variables["params"]["Middle_0"]) == {"first", "layers_0", "layers_1", "branches_a", "branches_b", "head"}


def test_nested_apply_equals_flax(backend):
    flax_variables = _nested_model(fnn).init(jax.random.key(0), jnp.asarray(X))
    with jax.enable_x64(False):
        expected = _nested_model(fnn).apply(
            flax_variables, jnp.asarray(X), train=True, rngs={"dropout": jax.random.key(3)})
    with jax_default_mode(backend):  # on jax arrays the masks follow jax's mode, as flax's do
        out = _nested_model(nn).apply(nn.to_backend(flax_variables, backend.xp), backend.asarray(X, "float32"),
                                      train=True, rngs={"dropout": nn.random.key(3)})
    np.testing.assert_allclose(backend.to_numpy(out), np.asarray(expected), rtol=1e-5, atol=1e-6)


def test_init_keys_are_flaxs_bit_for_bit(backend):
    """Uniform inits are bit-exact, so equal kernels prove every module path and counter gives flax's key."""
    def model(L):
        class Block(L.Module):
            @L.compact
            def __call__(self, x):
                dense = L.Dense(3, kernel_init=L.initializers.he_uniform(), bias_init=L.initializers.uniform(1.0))
                return dense(x) + dense(x) + L.Dense(3, kernel_init=L.initializers.lecun_uniform())(x)

        class Net(L.Module):
            def setup(self):
                self.blocks = [Block(), Block()]

            def __call__(self, x):
                return self.blocks[1](self.blocks[0](x))

        return Net()

    flax_variables = model(fnn).init(jax.random.key(4), jnp.ones((1, 3)))
    variables = model(nn).init(nn.random.key(4), backend.asarray(np.ones((1, 3)), "float32"))
    assert _shapes(variables) == _shapes(flax_variables)
    for ours, theirs in zip(jax.tree_util.tree_leaves(variables), jax.tree_util.tree_leaves(flax_variables)):
        np.testing.assert_array_equal(backend.to_numpy(ours), np.asarray(theirs))


def test_autonames_in_construction_order():
    def model(L):
        class Inner(L.Module):
            @L.compact
            def __call__(self, x):
                return L.Dense(2)(x)

        class Outer(L.Module):
            @L.compact
            def __call__(self, x):
                a = L.Dense(3)
                b = L.PReLU()
                c = L.Dense(3, name="head")
                d = L.Dense(3)
                x = d(b(a(x))) + c(x)
                return Inner()(Inner()(x))

        return Outer()

    flax_variables = model(fnn).init(jax.random.key(1), jnp.ones((1, 2)))
    variables = model(nn).init(nn.random.key(1), np.ones((1, 2), np.float32))
    assert _shapes(variables) == _shapes(flax_variables)
    _assert_trees_close(variables, flax_variables)
    assert sorted(variables["params"]) == ["Dense_0", "Dense_1", "Inner_0", "Inner_1", "PReLU_0", "head"]


def test_sequential_names_count_plain_functions():
    layers = nn.Sequential([nn.Dense(4), nn.relu, nn.Dense(2)])
    variables = layers.init(nn.random.key(0), np.ones((1, 3), np.float32))
    flax_variables = fnn.Sequential([fnn.Dense(4), fnn.relu, fnn.Dense(2)]).init(jax.random.key(0), jnp.ones((1, 3)))
    assert sorted(variables["params"]) == sorted(flax_variables["params"]) == ["layers_0", "layers_2"]
    _assert_trees_close(variables, flax_variables)


def test_sequential_expands_tuples_and_dicts():
    def split(x):
        return x[:, :2], x[:, 2:]

    def as_kwargs(a, b):
        return {"a": a, "b": b}

    def combine(a, b):
        return a * 10 + b[:, :2]

    x = np.arange(8.0).reshape(2, 4)
    expected = fnn.Sequential([split, as_kwargs, combine]).apply({}, jnp.asarray(x))
    np.testing.assert_array_equal(nn.Sequential([split, as_kwargs, combine]).apply({}, x), np.asarray(expected))


def _dropout_twice(L):
    class Twice(L.Module):
        @L.compact
        def __call__(self, x):
            drop = L.Dropout(0.5, deterministic=False)
            return drop(x), drop(x), L.Dropout(0.5, deterministic=False)(x)

    return Twice()


def test_rng_counters_and_fallback_match_flax(backend):
    x = np.ones((4, 8), np.float32)
    with jax.enable_x64(False):
        expected = _dropout_twice(fnn).apply({}, jnp.asarray(x), rngs={"dropout": jax.random.key(5)})
        via_params = _dropout_twice(fnn).apply({}, jnp.asarray(x), rngs={"params": jax.random.key(5)})
    with jax_default_mode(backend):
        out = _dropout_twice(nn).apply({}, backend.asarray(x, "float32"), rngs={"dropout": nn.random.key(5)})
        out_params = _dropout_twice(nn).apply({}, backend.asarray(x, "float32"), rngs={"params": nn.random.key(5)})
    for ours, theirs in zip((*out, *out_params), (*expected, *via_params)):
        np.testing.assert_array_equal(backend.to_numpy(ours), np.asarray(theirs))
    assert not np.array_equal(backend.to_numpy(out[0]), backend.to_numpy(out[1]))  # same module, next key


def _counter_model(L):
    class Counter(L.Module):
        @L.compact
        def __call__(self, x):
            count = self.variable("counter", "count", lambda: jnp.zeros((), jnp.int32) if L is fnn else np.zeros((), np.int32))
            if not self.is_initializing():
                count.value = count.value + 1
            self.sow("intermediates", "doubled", x * 2)
            return L.Dense(2)(x)

    return Counter()


def test_collections_mutable_and_sow():
    x = np.ones((1, 3), np.float32)
    model = _counter_model(nn)
    variables = model.init(nn.random.key(0), x)
    flax_variables = _counter_model(fnn).init(jax.random.key(0), jnp.asarray(x))
    assert _shapes(variables) == _shapes(flax_variables)
    assert set(variables) == {"params", "counter"}  # intermediates are not kept by init
    out, updated = model.apply(variables, x, mutable=["counter", "intermediates"])
    assert int(updated["counter"]["count"]) == 1 and int(variables["counter"]["count"]) == 0
    np.testing.assert_array_equal(updated["intermediates"]["doubled"][0], x * 2)
    _, flax_updated = _counter_model(fnn).apply(flax_variables, jnp.asarray(x), mutable=["counter", "intermediates"])
    assert set(updated) == set(flax_updated)
    with pytest.raises(nn.ModuleError, match='Counter: cannot update variable "count" because collection "counter" is immutable'):
        model.apply(variables, x)


def _table(L):
    class Table(L.Module):
        @L.compact
        def __call__(self):
            return self.param("w", L.initializers.lecun_normal(), (3, 2), jnp.float32)

    return Table()


def test_init_without_array_arguments_uses_the_keys_library(backend):
    key = nn.random.key(0, like=backend.like())
    w = _table(nn).init(key)["params"]["w"]
    assert type(w) is type(key)
    flax_w = _table(fnn).init(jax.random.key(0))["params"]["w"]
    np.testing.assert_allclose(backend.to_numpy(w), np.asarray(flax_w), rtol=2e-6, atol=2e-6)


def test_init_with_output_bind_and_methods():
    ids = np.array([[1, 2, 3]])
    embed = nn.Embed(5, 4)
    out, variables = embed.init_with_output(nn.random.key(0), ids)
    assert out.shape == (1, 3, 4)
    bound = embed.bind(variables)
    np.testing.assert_array_equal(bound(ids), out)
    query = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(embed.apply(variables, query, method="attend"), query @ variables["params"]["embedding"].T, rtol=1e-6)
    np.testing.assert_allclose(embed.apply(variables, query, method=nn.Embed.attend), bound.attend(query), rtol=1e-6)


def test_modules_are_frozen_dataclasses():
    layer = nn.Dense(3)
    assert layer.features == 3 and layer.use_bias and layer.name is None
    assert "features=3" in repr(layer)
    assert layer.clone(features=5).features == 5

    class Bad(nn.Module):
        @nn.compact
        def __call__(self, x):
            self.features = 3
            return x

    with pytest.raises(nn.ModuleError, match="Bad: module attributes are frozen outside setup"):
        Bad().init(nn.random.key(0), np.ones(2))


def test_every_layer_is_constructed_by_the_generated_init():
    """A compact method constructs its submodules on every call: each layer class gets the cheap
    generated ``__init__`` (see ``xpnn.module._fast_init``), with the dataclass's signature, and a
    module whose values are all plain is marked as set up at construction."""
    layers = [value for value in vars(nn).values() if isinstance(value, type) and issubclass(value, nn.Module)]
    assert len(layers) >= 30
    for layer in layers:
        assert getattr(layer.__init__, "_xpnn_generated", False), layer
        assert list(inspect.signature(layer).parameters)[-2:] == ["parent", "name"], layer
    assert nn.Dense(3)._state.setup_done
    assert not nn.Sequential([nn.Dense(3)])._state.setup_done  # a list of modules to adopt at setup

    class WithPostInit(nn.Module):
        features: int = 2

        def __post_init__(self):
            super().__post_init__()
            object.__setattr__(self, "doubled", 2 * self.features)

        @nn.compact
        def __call__(self, x):
            return nn.Dense(self.doubled)(x)

    class Parent(nn.Module):
        @nn.compact
        def __call__(self, x):
            return WithPostInit(3)(x)

    variables = Parent().init(nn.random.key(0), np.ones((1, 2), np.float32))
    assert variables["params"]["WithPostInit_0"]["Dense_0"]["kernel"].shape == (2, 6)


def test_wrapped_methods_take_their_arguments_as_the_methods_do():
    """Module methods are wrapped by a wrapper generated with the method's own parameters
    (``xpnn.module._forwarding``): every kind of parameter, its defaults (the same objects), the
    signature and the errors for bad calls are the method's own."""
    shared_default = []

    def with_flag(method):  # a decorator that adds a keyword, its wrapper reporting the method's signature
        @functools.wraps(method)
        def flagged(self, *args, flag=False, **kwargs):
            return method(self, *args, **kwargs), flag

        return flagged

    class Kinds(nn.Module):
        @nn.compact
        def __call__(self, x, /, y=2, *rest, z, w=shared_default, **options):
            return x, y, rest, z, w, options

        def plain(module, q, r=None):  # noqa: N805 - a first parameter not named self
            return q, r

        def clashing(self, _xpnn_method):  # a name the wrapper uses: the generic wrapper
            return _xpnn_method

        @with_flag
        def decorated(self, q):
            return q

    variables = Kinds().init(nn.random.key(0), 1, z=5)
    assert Kinds().apply(variables, 1, z=5) == (1, 2, (), 5, shared_default, {})
    assert Kinds().apply(variables, 1, z=5)[4] is shared_default
    assert Kinds().apply(variables, 1, 7, 8, 9, z=5, w=6, extra=1) == (1, 7, (8, 9), 5, 6, {"extra": 1})
    assert Kinds().apply(variables, 1, method="plain") == (1, None)
    assert Kinds().apply(variables, q=1, r=2, method="plain") == (1, 2)
    assert Kinds().apply(variables, 3, method="clashing") == 3
    assert Kinds().apply(variables, 3, flag=True, method="decorated") == (3, True)
    assert str(inspect.signature(Kinds.__call__)) == "(self, x, /, y=2, *rest, z, w=[], **options)"
    bound = Kinds().bind(variables)
    with pytest.raises(TypeError, match="z"):
        bound(1)
    with pytest.raises(TypeError, match="x"):
        bound(x=1, z=5)
    with pytest.raises(nn.ModuleError, match="Kinds.__call__: the module is not bound to variables"):
        Kinds()(1, z=5)

def _regression_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    return x, (x @ np.array([[1.0], [-2.0], [0.5]], np.float32)).astype(np.float32)


def _mlp_class(L):
    class MLP(L.Module):
        hidden: int = 16

        @L.compact
        def __call__(self, x, train=False):
            x = L.relu(L.Dense(self.hidden)(x))
            x = L.Dropout(0.1, deterministic=not train)(x)
            return L.Dense(1)(x)

    return MLP


_MLP, _FlaxMLP = _mlp_class(nn), _mlp_class(fnn)


def _perturbed_class(L):
    class Perturbed(L.Module):
        @L.compact
        def __call__(self, x):
            hidden = self.perturb("hidden", L.Dense(3)(x))
            return L.Dense(2)(L.tanh(hidden))

    return Perturbed


def test_perturb_gives_flaxs_gradients_of_intermediates():
    """``perturb`` makes zeros at init; the gradient with respect to them is the gradient with
    respect to the intermediate, flax's on jax (jax.grad) and on torch (autograd); applied
    without the collection it changes nothing, and a collection without the name is an error."""
    x = np.random.default_rng(3).standard_normal((4, 5)).astype(np.float32)
    theirs = _perturbed_class(fnn)().init(jax.random.key(0), jnp.asarray(x))
    ours = _perturbed_class(nn)().init(nn.random.key(0, like=jnp), jnp.asarray(x))
    assert jax.tree_util.tree_structure(ours) == jax.tree_util.tree_structure(theirs)
    np.testing.assert_array_equal(ours["perturbations"]["hidden"], np.zeros((4, 3), np.float32))

    def loss(model, perturbations, inputs):
        return jnp.sum(model.apply({"params": theirs["params"], "perturbations": perturbations}, inputs) ** 2)

    want = jax.grad(functools.partial(loss, _perturbed_class(fnn)()))(theirs["perturbations"], jnp.asarray(x))
    got = jax.grad(functools.partial(loss, _perturbed_class(nn)()))(ours["perturbations"], jnp.asarray(x))
    np.testing.assert_allclose(got["hidden"], want["hidden"], rtol=1e-5, atol=1e-6)
    on_torch = nn.to_backend({"params": theirs["params"], "perturbations": theirs["perturbations"]}, torch)
    on_torch["perturbations"]["hidden"].requires_grad_(True)
    torch.sum(_perturbed_class(nn)().apply(on_torch, torch.from_numpy(x)) ** 2).backward()
    np.testing.assert_allclose(on_torch["perturbations"]["hidden"].grad.numpy(), want["hidden"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_perturbed_class(nn)().apply({"params": nn.to_backend(theirs["params"], np)}, x),
                               _perturbed_class(fnn)().apply({"params": theirs["params"]}, x), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match='Perturbed: the "perturbations" collection is given, but has no perturbation '
                                         '"hidden"'):
        _perturbed_class(nn)().apply({"params": theirs["params"], "perturbations": {}}, jnp.asarray(x))


def test_unbind_gives_the_module_and_its_variables_as_flaxs():
    x = np.ones((2, 3), np.float32)
    variables = nn.Dense(4).init(nn.random.key(0), x)
    module, unbound_variables = nn.Dense(4).bind(variables).unbind()
    flax_module, _ = fnn.Dense(4).bind(fnn.Dense(4).init(jax.random.key(0), jnp.asarray(x))).unbind()
    assert module == nn.Dense(4) and flax_module == fnn.Dense(4) and unbound_variables == variables
    np.testing.assert_array_equal(module.apply(unbound_variables, x), nn.Dense(4).apply(variables, x))
    with pytest.raises(nn.ModuleError, match="Dense.unbind: the module is not bound"):
        nn.Dense(4).unbind()


def test_jax_jit_and_grad_match_flax():
    x, y = map(jnp.asarray, _regression_data())
    params = _FlaxMLP().init(jax.random.key(0), x)["params"]

    def loss(model):
        return lambda p: jnp.mean((model.apply({"params": p}, x) - y) ** 2)

    expected = jax.grad(loss(_FlaxMLP()))(params)
    grads = jax.jit(jax.grad(loss(_MLP())))(params)
    _assert_trees_close(grads, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jax.jit(_MLP().apply)({"params": params}, x), _MLP().apply({"params": params}, x), rtol=1e-6)
    jitted_init = jax.jit(_MLP().init)(jax.random.key(0), x)
    _assert_trees_close(jitted_init, {"params": params})


def test_jax_training_reduces_loss():
    x, y = map(jnp.asarray, _regression_data())
    model = _MLP()
    params = model.init(nn.random.key(0), x)["params"]

    @jax.jit
    def step(params, key):
        def loss(p):
            return jnp.mean((model.apply({"params": p}, x, train=True, rngs={"dropout": key}) - y) ** 2)

        value, grads = jax.value_and_grad(loss)(params)
        return jax.tree_util.tree_map(lambda p, g: p - 0.05 * g, params, grads), value

    losses = []
    for i in range(30):
        params, value = step(params, jax.random.key(i))
        losses.append(float(value))
    assert losses[-1] < 0.3 * losses[0]


def test_torch_training_and_grads_match_flax():
    x, y = _regression_data()
    flax_params = _FlaxMLP().init(jax.random.key(0), jnp.asarray(x))["params"]
    expected = jax.grad(lambda p: jnp.mean((_FlaxMLP().apply({"params": p}, jnp.asarray(x)) - jnp.asarray(y)) ** 2))(flax_params)
    params = nn.tree_map(lambda p: p.requires_grad_(), nn.to_backend(flax_params, torch))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    torch.mean((_MLP().apply({"params": params}, xt) - yt) ** 2).backward()
    _assert_trees_close(nn.tree_map(lambda p: p.grad, params), expected, rtol=1e-5, atol=1e-6)

    model = _MLP()
    params = nn.tree_map(lambda p: p.requires_grad_(), model.init(nn.random.key(0), xt)["params"])
    optimizer = torch.optim.SGD(nn.tree_leaves(params), lr=0.05)
    losses = []
    for i in range(30):
        optimizer.zero_grad()
        loss = torch.mean((model.apply({"params": params}, xt, train=True, rngs={"dropout": nn.random.key(i)}) - yt) ** 2)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
    # the trained model runs for inference on NumPy
    out = model.apply(nn.to_backend({"params": params}, np), x)
    assert isinstance(out, np.ndarray) and np.mean((out - y) ** 2) < 0.3 * losses[0]


@pytest.mark.slow_on("dask")
def test_to_backend_round_trip(backend):
    flax_variables = _nested_model(fnn).init(jax.random.key(0), jnp.asarray(X))
    moved = nn.to_backend(flax_variables, backend.xp)
    assert all(type(leaf) is type(backend.asarray(np.zeros(1), "float32")) for leaf in nn.tree_leaves(moved))
    back = nn.to_backend(moved, jnp)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), back, flax_variables)
    # and xpnn variables are flax variables once in jax
    ours = nn.to_backend(_nested_model(nn).init(nn.random.key(0), backend.asarray(X, "float32")), jnp)
    _nested_model(fnn).apply(ours, jnp.asarray(X))


def test_to_backend_moves_typed_keys_and_refuses_dtypes_the_target_lacks():
    """A jax typed key moves as its raw words (jax.random.key_data), which xpnn.random takes as a key
    (it was 'torch has no key<fry>'); float16 into array_api_strict, which has none, is an error
    naming xpnn.to_backend (it was array_api_strict's own error)."""
    import array_api_strict

    moved = nn.to_backend({"rng": jax.random.key(3)}, torch)["rng"]
    np.testing.assert_array_equal(moved.numpy(), np.asarray(jax.random.key_data(jax.random.key(3))))
    np.testing.assert_array_equal(nn.random.uniform(moved, (4,), "float32").numpy(),
                                  jax.random.uniform(jax.random.key(3), (4,), "float32"))
    with pytest.raises(TypeError, match=r"xpnn.to_backend: array_api_strict has no float16, the dtype of an array of "
                                        r"shape \(2,\)"):
        nn.to_backend({"w": np.ones(2, np.float16)}, array_api_strict)


# -- errors ----------------------------------------------------------------------------


class _Net(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        x = nn.Dense(4)(x)
        return nn.Dropout(0.5, deterministic=not train)(x)


def _net_variables():
    return _Net().init(nn.random.key(0), np.ones((2, 3), np.float32))


def test_error_feature_size_mismatch():
    with pytest.raises(nn.ModuleError, match=r"_Net/Dense_0: parameter \"kernel\" has shape \(3, 4\) in the variables, but this call needs \(5, 4\)"):
        _Net().apply(_net_variables(), np.ones((2, 5), np.float32))


def test_error_missing_or_misspelled_param():
    variables = _net_variables()
    dense = variables["params"]["Dense_0"]
    misspelled = {"params": {"Dense_0": {"kernal": dense["kernel"], "bias": dense["bias"]}}}
    with pytest.raises(nn.ModuleError, match=r'_Net/Dense_0: "params" has no variable "kernel" .*did you mean "kernal"'):
        _Net().apply(misspelled, np.ones((2, 3), np.float32))
    with pytest.raises(nn.ModuleError, match=r'_Net/Dense_0: the "params" collection has no entry "Dense_0".*did you mean "Dense_1"'):
        _Net().apply({"params": {"Dense_1": dense}}, np.ones((2, 3), np.float32))


def test_error_missing_dropout_rng():
    with pytest.raises(nn.ModuleError, match=r'_Net/Dropout_0 needs a random key for "dropout"'):
        _Net().apply(_net_variables(), np.ones((2, 3), np.float32), train=True)


def test_error_uninitialized_variables():
    with pytest.raises(nn.ModuleError, match=r'_Net/Dense_0: no "params" collection in the variables .*init\(key'):
        _Net().apply({}, np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match="variables must be a dict of collections"):
        _Net().apply(None, np.ones((2, 3), np.float32))
    with pytest.raises(nn.ModuleError, match="Dense.__call__: the module is not bound to variables"):
        nn.Dense(3)(np.ones((2, 3)))


def test_error_non_array_input():
    with pytest.raises(TypeError, match=r"_Net/Dense_0: inputs must be an array .*got builtins.list"):
        _Net().apply(_net_variables(), [[1.0, 2.0, 3.0]])


def test_error_mixed_libraries():
    message = (r"_Net/Dense_0: inputs and kernel are arrays of two libraries \(torch and numpy\); "
               r"convert kernel with xpnn.to_backend\(kernel, like=inputs\)")
    with pytest.raises(TypeError, match=message):
        _Net().apply(_net_variables(), torch.ones(2, 3))
    norm, x = nn.LayerNorm(), torch.ones(2, 3)  # an input of another library is named as it is, not as a variable
    with pytest.raises(TypeError, match=r"LayerNorm: x and mask .*convert mask with xpnn.to_backend\(mask, like=x\)"):
        norm.apply(norm.init(nn.random.key(0), x), x, mask=np.ones((2, 3), bool))


def test_error_deterministic_and_embed_ids():
    with pytest.raises(nn.ModuleError, match='Dropout: Parameter "deterministic" must be passed to the constructor or at call time'):
        nn.Dropout(0.5).apply({}, np.ones(3))
    with pytest.raises(nn.ModuleError, match="was passed to the constructor and at call time"):
        nn.Dropout(0.5, deterministic=True).apply({}, np.ones(3), deterministic=False)
    variables = nn.Embed(4, 2).init(nn.random.key(0), np.arange(3))
    with pytest.raises(nn.ModuleError, match="Embed: Input type must be an integer"):
        nn.Embed(4, 2).apply(variables, np.ones(3))


def test_error_einsum_and_sequential():
    with pytest.raises(nn.ModuleError, match='must be explicit and include "->"'):
        nn.Einsum((3, 4), "ab,bc").init(nn.random.key(0), np.ones((2, 3)))
    with pytest.raises(nn.ModuleError, match="exactly two operands"):
        nn.Einsum((3, 4), "ab,bc,cd->ad").init(nn.random.key(0), np.ones((2, 3)))
    with pytest.raises(nn.ModuleError, match="Empty Sequential"):
        nn.Sequential([]).init(nn.random.key(0), np.ones(2))


def test_error_duplicate_names():
    class Twice(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(2, name="a")(x) + nn.Dense(2, name="a")(x)

    with pytest.raises(nn.ModuleError, match="Twice: two submodules are named 'a'"):
        Twice().init(nn.random.key(0), np.ones((1, 2)))


def test_error_submodule_outside_compact():
    class Loose(nn.Module):
        def __call__(self, x):
            return nn.Dense(2)(x)

    with pytest.raises(nn.ModuleError, match=r"Loose: submodule Dense must be defined in setup\(\) or in a method decorated with @xpnn.compact"):
        Loose().init(nn.random.key(0), np.ones((1, 2)))


def _summarized(L):
    """A model in namespace ``L`` (flax.linen or xpnn) with a module called twice, one with a
    keyword option, a method other than ``__call__``, nested modules and a tuple-and-dict output."""

    class Block(L.Module):
        @L.compact
        def __call__(self, x, train: bool = False):
            return L.Dense(3)(x)

    class Head(L.Module):
        def setup(self):
            self.dense = L.Dense(2, use_bias=False)

        def __call__(self, x):
            return self.dense(x)

        def logits(self, x):
            return self.dense(x) * 2

    class Model(L.Module):
        @L.compact
        def __call__(self, x):
            block = Block()
            x = block(block(x, train=True))
            head = Head()
            return head(x), {"scaled": head.logits(x), "input": x}

    return Model()


@pytest.mark.parametrize("options", [{}, {"depth": 1}, {"depth": 0}, {"show_repeated": True}],
                         ids=["all", "depth 1", "depth 0", "repeated"])
def test_tabulate_draws_flaxs_table(backend, options):
    """flax's table, character for character (flax's drawn by rich, ANSI codes stripped): rows,
    inputs with the keyword given, outputs, variables with counts and bytes, depth's sums and
    repeated calls, the totals."""
    import re

    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    want = _summarized(fnn).tabulate(jax.random.key(0), jnp.asarray(x), console_kwargs={"width": 300}, **options)
    got = _summarized(nn).tabulate(nn.random.key(0), backend.asarray(x, "float32"), **options)
    assert got == re.sub(r"\x1b\[[0-9;]*m", "", want)
    paths = _summarized(nn).module_paths(nn.random.key(0), backend.asarray(x, "float32"))
    assert list(paths) == ["", "Block_0", "Block_0/Dense_0", "Head_0", "Head_0/dense"]
    assert type(paths["Head_0/dense"]) is nn.Dense and paths["Head_0/dense"].features == 2


def test_tabulate_of_several_collections_and_its_refusals():
    """BatchNorm's batch_stats get a column of their own and count in the total (flax orders the
    columns as a set of names, xpnn as the variables came: the cells are compared); XLA's flop
    counts are refused."""
    import re

    def model(L):
        return L.Sequential([L.Dense(4), L.BatchNorm(use_running_average=False), L.Dense(2)])

    x = np.ones((3, 5), np.float32)
    want = re.sub(r"\x1b\[[0-9;]*m", "", model(fnn).tabulate(jax.random.key(0), jnp.asarray(x),
                                                              console_kwargs={"width": 300}))
    got = model(nn).tabulate(nn.random.key(0), x)

    def cells(table):
        return [sorted(line.split("│")) for line in table.split("\n") if line.startswith("│")]

    assert cells(got) == cells(want) and "Total Parameters: 50 (200 B)" in got
    assert got.split("\n")[-3].strip() == want.split("\n")[-3].strip()
    with pytest.raises(NotImplementedError, match=r"Sequential\.tabulate: compute_flops"):
        model(nn).tabulate(nn.random.key(0), x, compute_flops=True)
    assert model(nn).copy(name="renamed").name == "renamed"


def _rematerialized(L):
    """A model in namespace ``L`` (flax.linen or xpnn) with a checkpointed module class (a
    static ``train`` argument, BatchNorm's statistics written inside) and a checkpointed method."""

    class Block(L.Module):
        @L.compact
        def __call__(self, x, train):
            return L.BatchNorm(use_running_average=not train)(L.Dense(3)(x))

    class Decorated(L.Module):
        @L.checkpoint
        @L.compact
        def __call__(self, x):
            return L.Dense(3)(x) * 2

    class Model(L.Module):
        @L.compact
        def __call__(self, x):
            return Decorated()(L.remat(Block, static_argnums=(2,))()(x, True))

    return Model()


def test_checkpoint_equals_flaxs_on_every_backend(backend):
    """flax's variable names (``CheckpointBlock_0``) and initial values, outputs and batch
    statistics, on every library."""
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    want = _rematerialized(fnn).init(jax.random.key(0), jnp.asarray(x))
    variables = _rematerialized(nn).init(nn.random.key(0), backend.asarray(x, "float32"))
    assert jax.tree_util.tree_structure(want) == jax.tree_util.tree_structure(dict(variables))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_array_equal(backend.to_numpy(b), np.asarray(a)), want,
                           dict(variables))
    want_out, want_state = _rematerialized(fnn).apply(want, jnp.asarray(x), mutable=["batch_stats"])
    out, state = _rematerialized(nn).apply(variables, backend.asarray(x, "float32"), mutable=["batch_stats"])
    np.testing.assert_allclose(backend.to_numpy(out), np.asarray(want_out), rtol=1e-5, atol=1e-6)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(backend.to_numpy(b), np.asarray(a), rtol=1e-5,
                                                                   atol=1e-6), want_state, dict(state))


def test_checkpoint_recomputes_under_jax_grad_as_flaxs():
    """The gradient's program holds jax's rematerialization (as flax's, unlike the plain model's),
    and the gradients and statistics are flax's."""
    import re

    x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 3)), jnp.float32)
    variables = _rematerialized(fnn).init(jax.random.key(0), x)

    def gradient(model):
        def loss(params):
            out, state = model.apply({**variables, "params": params}, x, mutable=["batch_stats"])
            return (out ** 2).sum(), state
        return jax.grad(loss, has_aux=True)

    (want, want_state), (got, got_state) = (gradient(_rematerialized(L))(variables["params"]) for L in (fnn, nn))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5,
                                                                   atol=1e-6), (want, want_state), (got, got_state))
    for L in (fnn, nn):
        program = str(jax.make_jaxpr(gradient(_rematerialized(L)))(variables["params"]))
        assert re.search(r"\bremat", program), L.__name__

    class Plain(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(3)(x)

    plain = Plain().init(nn.random.key(0), x)
    program = str(jax.make_jaxpr(jax.grad(lambda p: Plain().apply({"params": p}, x).sum()))(plain["params"]))
    assert not re.search(r"\bremat", program)


def test_checkpoint_refuses_what_it_does_not_lift():
    class Block(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(3)(x)

    with pytest.raises(ValueError, match=r"xpnn\.checkpoint: variables and rngs must be True"):
        nn.checkpoint(Block, variables="params")
    with pytest.raises(ValueError, match=r"xpnn\.checkpoint: concrete=True"):
        nn.remat(Block, concrete=True)
    with pytest.raises(ValueError, match=r"xpnn\.checkpoint: Block has no method 'encode' to lift"):
        nn.checkpoint(Block, methods=["encode"])
    with pytest.raises(TypeError, match=r"xpnn\.checkpoint: target must be an xpnn\.Module subclass or a method"):
        nn.checkpoint(3)
    assert nn.remat is nn.checkpoint and nn.checkpoint(Block).__name__ == "CheckpointBlock"

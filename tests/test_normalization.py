"""Normalization layers against flax.linen: BatchNorm's training step and running statistics,
masks, low-precision inputs, gradients, and the errors flax gives (better worded).

The conformance suite compares init and apply of every norm on every backend and dtype
(``conformance/models.py``, ``LAYER_CASES``); here are what its generic check cannot say.
"""
from __future__ import annotations

import functools

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import xpnn as nn
from xpnn._dispatch import adapter_of
from xpnn.layers.normalization import reference_norm

jax.config.update("jax_enable_x64", True)


def _flax_variables_on(backend, variables):
    return nn.to_backend(nn.tree_map(np.asarray, variables), backend.like())


@pytest.mark.parametrize(("axis", "shape", "masked"), [(-1, (4, 3, 6), False), (1, (4, 3, 6), False),
                                                       (-1, (5, 4), True)])
def test_batchnorm_training_step_equals_flax(backend, axis, shape, masked):
    """Output and updated running statistics (momentum 0.9) of a training step, from flax's variables."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    mask = rng.random(shape) > 0.3 if masked else None
    layer = dict(axis=axis, momentum=0.9, scale_init=fnn.initializers.normal(1.0), bias_init=fnn.initializers.normal(1.0))
    flax_layer = fnn.BatchNorm(**layer)
    variables = flax_layer.init(jax.random.key(0), jnp.asarray(x), use_running_average=False)
    variables = {**variables, "batch_stats": jax.tree_util.tree_map(lambda a: a + 0.5, variables["batch_stats"])}
    with jax.enable_x64(False):
        want, want_stats = flax_layer.apply(variables, jnp.asarray(x), use_running_average=False,
                                            mask=None if mask is None else jnp.asarray(mask), mutable=["batch_stats"])
    ours = nn.BatchNorm(axis=axis, momentum=0.9, scale_init=nn.initializers.normal(1.0),
                        bias_init=nn.initializers.normal(1.0))
    xb = backend.asarray(x, "float32")
    got, got_stats = ours.apply(_flax_variables_on(backend, variables), xb, use_running_average=False,
                                mask=None if mask is None else backend.xp.asarray(mask), mutable=["batch_stats"])
    np.testing.assert_allclose(backend.to_numpy(got), np.asarray(want), rtol=2e-5, atol=2e-5)
    for name in ("mean", "var"):
        stat = got_stats["batch_stats"][name]
        assert nn.backends.dtype_name(stat.dtype) == "float32"
        np.testing.assert_allclose(backend.to_numpy(stat), np.asarray(want_stats["batch_stats"][name]), rtol=2e-6)


def test_batchnorm_init_keeps_the_running_statistics_and_needs_a_mode():
    x = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    variables = nn.BatchNorm().init(nn.random.key(0), x, use_running_average=False)
    np.testing.assert_array_equal(variables["batch_stats"]["mean"], np.zeros(3, np.float32))
    np.testing.assert_array_equal(variables["batch_stats"]["var"], np.ones(3, np.float32))
    with pytest.raises(nn.ModuleError, match='BatchNorm: Parameter "use_running_average" must be passed to the '
                                             "constructor or at call time"):
        nn.BatchNorm().init(nn.random.key(0), x)
    with pytest.raises(nn.ModuleError, match='cannot update variable "mean" because collection "batch_stats" is '
                                             "immutable; pass mutable=\\['batch_stats'\\]"):
        nn.BatchNorm().apply(variables, x, use_running_average=False)


def test_bfloat16_inputs_get_float32_statistics_and_outputs(backend):
    """flax: a bfloat16 input with float32 params gives float32 (the statistics are float32)."""
    if "bfloat16" not in backend.dtypes:
        pytest.skip(f"{backend.name} has no bfloat16")
    x = np.random.default_rng(2).standard_normal((4, 8)).astype(np.float32)
    xb = backend.asarray(x, "bfloat16")
    for layer in (nn.LayerNorm(), nn.RMSNorm(), nn.GroupNorm(num_groups=2), nn.BatchNorm(use_running_average=False)):
        out = layer.init_with_output(nn.random.key(0), xb)[0]
        assert nn.backends.dtype_name(out.dtype) == "float32", layer
        flax_layer = getattr(fnn, type(layer).__name__)(**({"num_groups": 2} if isinstance(layer, nn.GroupNorm) else {}),
                                                        **({"use_running_average": False}
                                                           if isinstance(layer, nn.BatchNorm) else {}))
        want = flax_layer.init_with_output(jax.random.key(0), jnp.asarray(x, jnp.bfloat16))[0]
        np.testing.assert_allclose(backend.to_numpy(out), np.asarray(want, np.float32), rtol=1e-5, atol=1e-5)


_INTEGER_NORMS = [("LayerNorm", {}), ("RMSNorm", {}), ("GroupNorm", {"num_groups": 3}), ("InstanceNorm", {}),
                  ("BatchNorm", {"use_running_average": True}), ("LayerNorm", {"param_dtype": "float64"}),
                  ("RMSNorm", {"use_scale": False})]


@pytest.mark.parametrize("dtype", ["int32", "uint8", "bool"])
def test_integer_inputs_are_normalized_in_flaxs_dtype(backend, dtype):
    """Integers and booleans are normalized as flax does, in float32 (promoted with the params'
    dtype), not in the library's default float (NumPy's float64), on every backend."""
    values = np.arange(2 * 4 * 6).reshape(2, 4, 6) % 11 - 3
    x = values > 2 if dtype == "bool" else values.astype(dtype)
    for name, kwargs in _INTEGER_NORMS:
        if "float64" in kwargs.values() and "float64" not in backend.dtypes:
            continue
        flax_layer = getattr(fnn, name)(**kwargs)
        variables = flax_layer.init(jax.random.key(0), jnp.asarray(x))
        want = flax_layer.apply(variables, jnp.asarray(x))
        got = getattr(nn, name)(**kwargs).apply(_flax_variables_on(backend, variables), backend.asarray(x, dtype))
        assert backend.to_numpy(got).dtype == want.dtype, (name, kwargs, got.dtype, want.dtype)
        np.testing.assert_allclose(backend.to_numpy(got), np.asarray(want), rtol=1e-5, atol=1e-6, err_msg=name)


def test_layernorm_mask_equals_flax(backend):
    rng = np.random.default_rng(3)
    x, mask = rng.standard_normal((3, 7)).astype(np.float32), rng.random((3, 7)) > 0.4
    want = fnn.LayerNorm().apply({"params": {"scale": jnp.ones(7), "bias": jnp.zeros(7)}}, jnp.asarray(x),
                                 mask=jnp.asarray(mask))
    variables = nn.to_backend({"params": {"scale": np.ones(7, np.float32), "bias": np.zeros(7, np.float32)}},
                              backend.like())
    got = nn.LayerNorm().apply(variables, backend.asarray(x, "float32"), mask=backend.xp.asarray(mask))
    np.testing.assert_allclose(backend.to_numpy(got), np.asarray(want), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize(("layer", "shape", "message"), [
    (nn.GroupNorm(), (2, 8), "GroupNorm: num_groups 32 does not divide the 8 features"),
    (nn.GroupNorm(num_groups=4, group_size=2), (2, 8), "GroupNorm: give either num_groups or group_size, not both"),
    (nn.GroupNorm(num_groups=None, group_size=3), (2, 8), "GroupNorm: the 8 features are not a multiple of group_size 3"),
    (nn.GroupNorm(num_groups=2, reduction_axes=(1,)), (2, 3, 8), "GroupNorm: reduction_axes \\(1,\\) must include"),
    (nn.InstanceNorm(feature_axes=0), (2, 3), "InstanceNorm: feature_axes must not include axis 0"),
    (nn.LayerNorm(reduction_axes=3), (2, 3), "LayerNorm: reduction_axes=3 is out of bounds for an array of dimension 2"),
    (nn.LayerNorm(axis_name="batch"), (2, 3), "LayerNorm: axis_name='batch': statistics across devices need jax "
                                              "arrays under a named axis.*numpy arrays have none"),
])
def test_bad_arguments_name_the_layer(layer, shape, message):
    with pytest.raises((ValueError, TypeError), match=message):
        layer.init(nn.random.key(0), np.ones(shape, np.float32))


_GRADIENT_NORMS = [
    ("LayerNorm", lambda L: L.LayerNorm(scale_init=L.initializers.normal(1.0)), {}),
    ("GroupNorm", lambda L: L.GroupNorm(num_groups=2, bias_init=L.initializers.normal(1.0)), {}),
    ("RMSNorm", lambda L: L.RMSNorm(), {}),
    ("InstanceNorm", lambda L: L.InstanceNorm(use_fast_variance=False), {}),
    ("BatchNorm eval", lambda L: L.BatchNorm(use_running_average=True), {}),
    ("BatchNorm train", lambda L: L.BatchNorm(use_running_average=False), {"mutable": ["batch_stats"]}),
]


def _output(out, kwargs):
    return out[0] if "mutable" in kwargs else out


@pytest.mark.parametrize(("label", "build", "kwargs"), _GRADIENT_NORMS, ids=[case[0] for case in _GRADIENT_NORMS])
@pytest.mark.parametrize("library", ["torch", "jax"])
def test_gradients_equal_flax(library, label, build, kwargs):
    x = np.random.default_rng(4).standard_normal((2, 3, 4))
    layer = build(fnn)
    variables = layer.init(jax.random.key(0), jnp.asarray(x))
    # every variable in float64 (BatchNorm's float32 statistics too): flax's rsqrt of a float32
    # variance rounds as the CPU's XLA kernel does (1 ulp apart on AMD and Intel machines)
    variables = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), variables)
    params = variables["params"]
    rest = {k: v for k, v in variables.items() if k != "params"}

    def flax_loss(p, inputs):
        return jnp.sum(jnp.sin(_output(layer.apply({"params": p, **rest}, inputs, **kwargs), kwargs)))

    want_params, want_x = jax.grad(flax_loss, argnums=(0, 1))(params, jnp.asarray(x))
    ours = build(nn)
    if library == "jax":
        got_params, got_x = jax.grad(lambda p, i: jnp.sum(jnp.sin(_output(ours.apply({"params": p, **rest}, i,
                                                                                      **kwargs), kwargs))),
                                     argnums=(0, 1))(params, jnp.asarray(x))
        got_params, got_x = nn.tree_map(np.asarray, got_params), np.asarray(got_x)
    else:
        import torch

        tparams = nn.tree_map(lambda a: torch.tensor(np.asarray(a, np.float64), requires_grad=True), params)
        trest = nn.to_backend(nn.tree_map(np.asarray, rest), torch.zeros(1))
        inputs = torch.tensor(x, requires_grad=True)
        torch.sin(_output(ours.apply({"params": tparams, **trest}, inputs, **kwargs), kwargs)).sum().backward()
        got_params, got_x = nn.tree_map(lambda a: a.grad.numpy(), tparams), inputs.grad.numpy()
    np.testing.assert_allclose(got_x, np.asarray(want_x), rtol=1e-9, atol=1e-9)
    for name in want_params:
        np.testing.assert_allclose(got_params[name], np.asarray(want_params[name]), rtol=1e-9, atol=1e-9)


class _BatchNormNet(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(8)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        return nn.Dense(1)(nn.relu(x))


def test_batchnorm_model_trained_on_torch_and_jax_runs_on_numpy():
    """A few training steps on torch and on jax (the loss falls, the running statistics move),
    then evaluation on NumPy with the trained variables gives the training library's outputs."""
    import torch

    rng = np.random.default_rng(5)
    x = (rng.standard_normal((64, 4)) * 2 + 3).astype(np.float32)
    y = (x @ np.array([[1.0], [-1.0], [0.5], [2.0]], np.float32)).astype(np.float32)
    model = _BatchNormNet()

    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    variables = model.init(nn.random.key(0), xt, train=False)
    params = nn.tree_map(lambda p: p.requires_grad_(), variables["params"])
    stats = variables["batch_stats"]
    opt = torch.optim.Adam(nn.tree_leaves(params), lr=0.05)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        out, mutated = model.apply({"params": params, "batch_stats": stats}, xt, train=True, mutable=["batch_stats"])
        loss = torch.mean((out - yt) ** 2)
        loss.backward()
        opt.step()
        stats = nn.tree_map(lambda a: a.detach(), mutated["batch_stats"])
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    assert not np.allclose(stats["BatchNorm_0"]["mean"].numpy(), 0.0)
    trained = {"params": params, "batch_stats": stats}
    with torch.no_grad():
        torch_eval = model.apply(trained, xt, train=False).numpy()
    numpy_eval = model.apply(nn.to_backend(nn.tree_map(lambda a: a.detach(), trained), np), x, train=False)
    np.testing.assert_allclose(numpy_eval, torch_eval, rtol=1e-5, atol=1e-5)

    xj, yj = jnp.asarray(x), jnp.asarray(y)
    jvariables = model.init(nn.random.key(0), xj, train=False)

    @jax.jit
    def step(variables):
        def loss(params):
            out, mutated = model.apply({"params": params, "batch_stats": variables["batch_stats"]}, xj, train=True,
                                       mutable=["batch_stats"])
            return jnp.mean((out - yj) ** 2), mutated

        (value, mutated), grads = jax.value_and_grad(loss, has_aux=True)(variables["params"])
        params = jax.tree_util.tree_map(lambda w, g: w - 0.02 * g, variables["params"], grads)
        return {"params": params, "batch_stats": mutated["batch_stats"]}, value

    values = []
    with jax.enable_x64(False):
        for _ in range(30):
            jvariables, value = step(jvariables)
            values.append(float(value))
        jax_eval = np.asarray(model.apply(jvariables, xj, train=False))
    assert values[-1] < 0.5 * values[0]
    numpy_eval = model.apply(nn.to_backend(nn.tree_map(np.asarray, jvariables), np), x, train=False)
    np.testing.assert_allclose(numpy_eval, jax_eval, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("use_fast_variance", [True, False])
def test_batchnorm_statistics_across_a_named_axis_equal_flax(use_fast_variance):
    """``axis_name``: under ``jax.vmap(..., axis_name="devices")`` the batch statistics are averaged
    across the mapped instances (``lax.pmean``), as flax's are; the running averages too."""
    x = jnp.asarray(np.random.default_rng(6).standard_normal((3, 4, 5)), jnp.float32)  # 3 "devices"

    def run(namespace):
        layer = namespace.BatchNorm(use_running_average=False, axis_name="devices", momentum=0.8,
                                    use_fast_variance=use_fast_variance)
        key = jax.random.key(0) if namespace is fnn else nn.random.key(0)
        variables = jax.vmap(lambda part: layer.init(key, part), axis_name="devices")(x)
        return jax.vmap(lambda v, part: layer.apply(v, part, mutable=["batch_stats"]), axis_name="devices")(
            variables, x)

    (want, want_stats), (got, got_stats) = run(fnn), run(nn)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)
    for name in ("mean", "var"):
        np.testing.assert_allclose(np.asarray(got_stats["batch_stats"][name]),
                                   np.asarray(want_stats["batch_stats"][name]), rtol=1e-6, atol=1e-7)


def _flax_tree_equal(got, want, rtol: float, atol: float = 0.0) -> None:
    """Two variable trees with the same paths and values (flax's leaves, sorted by path)."""
    from flax.traverse_util import flatten_dict

    got = flatten_dict(nn.to_backend(got, np.zeros(0)))  # from any library and device (CuPy's too)
    want = flatten_dict(jax.tree_util.tree_map(np.asarray, want))
    assert sorted(got) == sorted(want)
    for path, value in want.items():
        np.testing.assert_allclose(got[path], value, rtol=rtol, atol=atol, err_msg=str(path))


def _wrapped_net(L, wrapper: str, **settings):
    """flax's or xpnn's model with the wrapped layers defined in the parent (so their params stay
    under it): a Conv, then a Dense, both normalized by ``wrapper``."""
    spectral = wrapper == "SpectralNorm"

    class Net(L.Module):
        @L.compact
        def __call__(self, x, update_stats=False):
            conv = L.Conv(3, (2, 2))
            wrap = getattr(L, wrapper)
            x = wrap(conv, **settings)(x, update_stats=update_stats) if spectral else wrap(conv, **settings)(x)
            x = L.relu(x)
            dense = L.Dense(2)
            return wrap(dense, **settings)(x, update_stats=update_stats) if spectral else wrap(dense, **settings)(x)

    return Net()


_WRAPPED = [("SpectralNorm", {"n_steps": 2}), ("WeightNorm", {}), ("WeightNorm", {"variable_filter": None})]


@functools.lru_cache(maxsize=None)
def _flax_wrapped_run(index: int) -> tuple[np.ndarray, dict, list[tuple[np.ndarray, dict]]]:
    """flax's side of the wrapped-model test (computed once for every backend): the input, the
    variables of init, and each step's output and variables (SpectralNorm: three training steps)."""
    wrapper, settings = _WRAPPED[index]
    x = np.random.default_rng(6).standard_normal((2, 4, 4, 2)).astype(np.float32)
    with jax.enable_x64(False):
        flax_net = _wrapped_net(fnn, wrapper, **settings)
        variables = flax_net.init(jax.random.key(0), jnp.asarray(x))
        initial, steps = variables, []
        for _ in range(3 if wrapper == "SpectralNorm" else 1):
            if wrapper == "SpectralNorm":
                out, stats = flax_net.apply(variables, jnp.asarray(x), True, mutable=["batch_stats"])
                variables = {**variables, **stats}
            else:
                out = flax_net.apply(variables, jnp.asarray(x))
            steps.append((np.asarray(out), variables))
    return x, initial, steps


@pytest.mark.parametrize("index", [pytest.param(i, id=f"{w}-{s}", marks=[pytest.mark.slow_on("dask")] if i == 0 else [])
                                   for i, (w, s) in enumerate(_WRAPPED)])  # SpectralNorm's 3 steps on dask: --full
def test_weight_normalizations_in_a_model_equal_flax(backend, index):
    """init (the wrapped layers' params under the parent, the wrappers' own variables under
    theirs), then three training steps of SpectralNorm updating u and sigma, equal to flax."""
    wrapper, settings = _WRAPPED[index]
    x, want_variables, steps = _flax_wrapped_run(index)
    ours = _wrapped_net(nn, wrapper, **settings)
    xb = backend.asarray(x, "float32")
    _flax_tree_equal(ours.init(nn.random.key(0, like=xb), xb), want_variables, rtol=2e-6, atol=1e-7)
    variables = _flax_variables_on(backend, want_variables)
    for want, want_variables in steps:
        if wrapper == "SpectralNorm":
            got, got_stats = ours.apply(variables, xb, True, mutable=["batch_stats"])
            variables = {**variables, **got_stats}
        else:
            got = ours.apply(variables, xb)
        np.testing.assert_allclose(backend.to_numpy(got), np.asarray(want), rtol=2e-5, atol=2e-6)
    _flax_tree_equal(variables, want_variables, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize(("library", "wrapper"), [  # SpectralNorm on torch with --full (jax's runs by default)
    pytest.param("torch", "SpectralNorm", marks=pytest.mark.slow), ("torch", "WeightNorm"),
    ("jax", "SpectralNorm"), ("jax", "WeightNorm")])
def test_weight_normalization_gradients_equal_flax(library, wrapper):
    """Gradients through the normalised weights (power iteration without gradient) equal flax's."""
    x = np.random.default_rng(7).standard_normal((2, 4, 4, 2))
    flax_net, ours = _wrapped_net(fnn, wrapper), _wrapped_net(nn, wrapper)
    variables = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64),
                                       flax_net.init(jax.random.key(0), jnp.asarray(x)))
    rest = {k: v for k, v in variables.items() if k != "params"}

    def loss(net, p, inputs):
        return jnp.sum(jnp.sin(net.apply({"params": p, **rest}, inputs)))

    want = jax.grad(lambda p, i: loss(flax_net, p, i), argnums=(0, 1))(variables["params"], jnp.asarray(x))
    if library == "jax":
        got = jax.grad(lambda p, i: loss(ours, p, i), argnums=(0, 1))(variables["params"], jnp.asarray(x))
    else:
        import torch

        tparams = nn.tree_map(lambda a: torch.tensor(np.asarray(a), requires_grad=True), variables["params"])
        trest = nn.to_backend(nn.tree_map(np.asarray, rest), torch.zeros(1))
        inputs = torch.tensor(x, requires_grad=True)
        torch.sin(ours.apply({"params": tparams, **trest}, inputs)).sum().backward()
        got = (nn.tree_map(lambda a: a.grad, tparams), inputs.grad)
    _flax_tree_equal({"params": got[0], "x": got[1]}, {"params": want[0], "x": want[1]}, rtol=1e-9, atol=1e-12)


def test_weight_normalization_errors_name_the_layer():
    x = np.ones((2, 4, 4, 2), np.float32)
    variables = nn.SpectralNorm(nn.Dense(3)).init(nn.random.key(0), x[:, 0, 0], update_stats=False)
    with pytest.raises(nn.ModuleError, match='SpectralNorm: cannot update variable "layer_instance/kernel/u" because '
                                             "collection \"batch_stats\" is immutable; pass mutable=\\['batch_stats'\\]"):
        nn.SpectralNorm(nn.Dense(3)).apply(variables, x[:, 0, 0], update_stats=True)
    with pytest.raises(TypeError, match="update_stats"):
        nn.SpectralNorm(nn.Dense(3)).apply(variables, x[:, 0, 0])
    with pytest.raises(nn.ModuleError, match='SpectralNorm: "layer_instance/kernel" is 4-D but error_on_non_matrix '
                                             "is True"):
        nn.SpectralNorm(nn.Conv(3, (2, 2)), error_on_non_matrix=True).init(nn.random.key(0), x, update_stats=False)
    with pytest.raises(TypeError, match="WeightNorm: layer_instance must be an xpnn Module, got function"):
        nn.WeightNorm(nn.relu).init(nn.random.key(0), x)


_FUSED_LAYERS = [
    ("LayerNorm", lambda: nn.LayerNorm(scale_init=nn.initializers.normal(1.0), bias_init=nn.initializers.normal(1.0)),
     {}),
    ("LayerNorm over 2 axes", lambda: nn.LayerNorm(reduction_axes=(-2, -1), feature_axes=(-2, -1)), {}),
    ("RMSNorm", lambda: nn.RMSNorm(scale_init=nn.initializers.normal(1.0)), {}),
    ("GroupNorm", lambda: nn.GroupNorm(num_groups=3, bias_init=nn.initializers.normal(1.0)), {}),
    ("BatchNorm train", lambda: nn.BatchNorm(use_running_average=False, momentum=0.9), {"mutable": ["batch_stats"]}),
    ("BatchNorm eval", lambda: nn.BatchNorm(use_running_average=True), {}),
]


@pytest.mark.parametrize(("label", "build", "kwargs"), _FUSED_LAYERS, ids=[case[0] for case in _FUSED_LAYERS])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_fused_norms_equal_the_written_once_statistics(monkeypatch, library, dtype, label, build, kwargs):
    """The libraries' fused kernels (torch's F.layer_norm/rms_norm/group_norm/batch_norm, NumPy's
    in-place passes) are used and give the written-once result, running statistics included, on
    rows of other means and spreads (a constant one too)."""
    backend = {"numpy": np, "torch": pytest.importorskip("torch")}[library]
    rng = np.random.default_rng(8)
    host = rng.standard_normal((4, 5, 6)) * rng.uniform(0.5, 4.0, (4, 5, 1)) + rng.uniform(-3.0, 3.0, (4, 5, 1))
    host[2, 1] = 1.5
    x = nn.to_backend(host.astype(dtype), backend.zeros(1))
    adapter = adapter_of(x)
    calls = []
    fused = adapter.fused_norm
    monkeypatch.setattr(adapter, "fused_norm", lambda kind, *a: calls.append(kind) or fused(kind, *a))
    layer = build()
    variables = nn.tree_map(lambda a: nn.to_backend(np.asarray(adapter_of(a).to_host(a), dtype), x),
                            layer.init(nn.random.key(0), x))
    got = layer.apply(variables, x, **kwargs)
    assert calls, "the fused kernel was not used"
    with nn.fast_paths(False):
        want = layer.apply(variables, x, **kwargs)
    tolerance = 1e-5 if dtype == "float32" else 1e-12
    for a, b in zip(nn.tree_leaves(got), nn.tree_leaves(want)):
        np.testing.assert_allclose(adapter_of(a).to_host(a), adapter_of(b).to_host(b), rtol=tolerance, atol=tolerance)
    assert not [entry for entry in nn.fast_path_report() if "fused_norm" in entry.function]


@pytest.mark.parametrize("kind", ["group", "batch", "running"])
@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_fused_norms_take_torchs_layout_as_the_channels_last_one(library, kind):
    """``fused_norm(..., channels_first=True)`` (the torch-style functions' call, on ``(N, C, *)``)
    gives the written-once channels-last result with the channels moved back, and the same statistics."""
    backend = {"numpy": np, "torch": pytest.importorskip("torch")}[library]
    rng = np.random.default_rng(4)
    host = rng.standard_normal((3, 4, 5, 6)) * 2.0 + 1.0
    first = nn.to_backend(host, backend.zeros(1))
    last = nn.to_backend(np.ascontiguousarray(np.moveaxis(host, 1, -1)), backend.zeros(1))
    ops = adapter_of(first)
    count = 2 if kind == "group" else 1
    scale, bias = (nn.to_backend(rng.standard_normal(4), backend.zeros(1)) for _ in range(2))
    statistics = tuple(nn.to_backend(v, backend.zeros(1)) for v in (rng.standard_normal(4), rng.uniform(0.5, 2, 4)))
    statistics = statistics if kind == "running" else None
    got = ops.fused_norm(kind, first, count, scale, bias, 1e-5, statistics, channels_first=True)
    want = reference_norm(ops, kind, last, count, scale, bias, 1e-5, statistics)
    got, want = (got, want) if kind == "batch" else ((got,), (want,))
    np.testing.assert_allclose(np.moveaxis(ops.to_host(got[0]), 1, -1), ops.to_host(want[0]), rtol=1e-12, atol=1e-12)
    for a, b in zip(got[1:], want[1:]):
        np.testing.assert_allclose(ops.to_host(a), ops.to_host(b), rtol=1e-12, atol=1e-12)


def test_a_wrong_fused_norm_is_switched_off(monkeypatch):
    """A fused kernel that disagrees with the written-once statistics on the probe is not used
    on this machine: the layer gives the written-once result and the report says why."""
    from xpnn import _kernel_check

    adapter = adapter_of(np.zeros(1))
    monkeypatch.setattr(adapter, "fused_norm", lambda kind, x, *a: x * 2.0 if kind == "rms" else None)
    monkeypatch.setattr(_kernel_check, "_OUTCOMES", {})
    monkeypatch.setattr(_kernel_check, "LAYER_KERNEL_ANSWERS", {})
    x = np.random.default_rng(9).standard_normal((3, 8)).astype(np.float32)
    variables = nn.RMSNorm().init(nn.random.key(0), x)
    got = nn.RMSNorm().apply(variables, x)
    np.testing.assert_allclose(got, x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-6), rtol=1e-6)
    entries = [entry for entry in nn.fast_path_report() if entry.function == "fused_norm('rms')"]
    assert len(entries) == 1 and entries[0].backend == "numpy" and "the fused rms norm gave" in entries[0].reason


@pytest.mark.parametrize("layer", [nn.LayerNorm(), nn.RMSNorm(), nn.BatchNorm(use_running_average=False)],
                         ids=["LayerNorm", "RMSNorm", "BatchNorm"])
def test_numpy_fused_norms_in_blocks_and_threads_equal_the_written_once(layer):
    """NumPy's fused norms cut large arrays into blocks of rows computed on several threads: the
    result is the written-once one (float64 statistics as reference), whatever the split."""
    rows = 2 * nn.backends._numpy_slices.SLICED_FROM["memory"] // 1000 + 7  # several blocks on each thread
    x = np.random.default_rng(10).standard_normal((rows, 1000)).astype(np.float32) * 2 + 1
    variables = layer.init(nn.random.key(0), x[:2])
    got = layer.apply(variables, x, mutable=["batch_stats"])[0] if isinstance(layer, nn.BatchNorm) else (
        layer.apply(variables, x))
    exact = x.astype(np.float64)
    axis = 0 if isinstance(layer, nn.BatchNorm) else 1
    mean = 0 if isinstance(layer, nn.RMSNorm) else exact.mean(axis=axis, keepdims=True)
    epsilon = 1e-5 if isinstance(layer, nn.BatchNorm) else 1e-6
    want = (exact - mean) / np.sqrt(np.mean((exact - mean) ** 2, axis=axis, keepdims=True) + epsilon)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("contiguous", [True, False], ids=["contiguous", "strided"])
@pytest.mark.parametrize("width", [6, 1000])
@pytest.mark.parametrize("kind", ["layer", "rms", "batch", "running", "group"])
def test_numpy_fused_norms_apply_row_vectors_in_tiles(kind, width, contiguous):
    """NumPy's fused norms apply scale, bias and the batch and group statistics to rows of whole
    tiles of the vector repeated (and the rows left over to the vector alone): the written-once
    result, for contiguous and strided inputs (a group norm's: one sample of them all)."""
    from xpnn.backends import numpy as numpy_backend

    ops = adapter_of(np.zeros(1))
    rng = np.random.default_rng(13)
    rows = 3 * max(1, numpy_backend._TILE // width) + 5  # three whole tiles and five rows more
    host = rng.standard_normal((rows, 2 * width)) * 3.0 + 1.0
    x = host[:, ::2] if not contiguous else np.ascontiguousarray(host[:, :width])
    scale, bias = rng.standard_normal(width), rng.standard_normal(width)
    bias = None if kind == "rms" else bias
    statistics = (rng.standard_normal(width), rng.uniform(0.5, 2.0, width)) if kind == "running" else None
    x, count = (x[None], 2) if kind == "group" else (x, 1)
    got = ops.fused_norm(kind, x, count, scale, bias, 1e-5, statistics)
    want = reference_norm(ops, kind, x, count, scale, bias, 1e-5, statistics)
    got, want = (got, want) if kind == "batch" else ((got,), (want,))
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_numpy_fused_group_norm_on_threads_equals_the_written_once():
    """NumPy's fused GroupNorm goes sample by sample, on several threads for large arrays."""
    samples, positions = 6, 2 * nn.backends._numpy_slices.SLICED_FROM["memory"] // 6000 + 5
    x = np.random.default_rng(12).standard_normal((samples, positions, 1000)).astype(np.float32) * 3 - 2
    layer = nn.GroupNorm(num_groups=8)
    got = layer.apply(layer.init(nn.random.key(0), x[:, :2]), x)
    exact = x.astype(np.float64).reshape(samples, positions, 8, 125)
    mean = exact.mean(axis=(1, 3), keepdims=True)
    want = (exact - mean) / np.sqrt(np.mean((exact - mean) ** 2, axis=(1, 3), keepdims=True) + 1e-6)
    np.testing.assert_allclose(got, want.reshape(x.shape), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("wrapper", ["SpectralNorm", "WeightNorm"])
def test_weight_normalizations_of_bfloat16_layers_equal_flax(backend, wrapper):
    """A bfloat16 Dense wrapped: flax's float32 u and scale promote the normalised kernel to float32."""
    if "bfloat16" not in backend.dtypes:
        pytest.skip(f"{backend.name} has no bfloat16")
    x = np.random.default_rng(11).standard_normal((2, 4)).astype(np.float32)
    kwargs = {"update_stats": False} if wrapper == "SpectralNorm" else {}
    want, want_variables = getattr(fnn, wrapper)(fnn.Dense(3, param_dtype=jnp.bfloat16)).init_with_output(
        jax.random.key(0), jnp.asarray(x, jnp.bfloat16), **kwargs)
    xb = backend.asarray(x, "bfloat16")
    got, variables = getattr(nn, wrapper)(nn.Dense(3, param_dtype="bfloat16")).init_with_output(
        nn.random.key(0, like=xb), xb, **kwargs)
    assert nn.backends.dtype_name(got.dtype) == "float32"
    np.testing.assert_allclose(backend.to_numpy(got), np.asarray(want, np.float32), rtol=1e-6, atol=1e-6)
    _flax_tree_equal(nn.tree_map(lambda a: np.asarray(backend.to_numpy(a), np.float32), variables),
                     jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), want_variables), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("shape", [(4, 6, 6, 16), (2, 3, 4, 4, 16), (4, 1, 1, 16), (4, 36, 16)])
@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_group_norm_of_data_far_from_zero_is_as_accurate_as_flaxs(library, shape):
    """GroupNorm of float32 data of mean 300 and spread 1, on every layout (torch's channels-last
    4-D and 5-D kernel sums squares: E[x^2] - E[x]^2, 500 times flax's two-pass error here): with
    ``use_fast_variance=False`` within 4 times flax's two-pass error, by default within 4 times
    flax's fast-variance error (float32 sums in another order: 2.2 times on (4, 1, 1, 16))."""
    backend = {"numpy": np, "torch": pytest.importorskip("torch")}[library]
    host = (300.0 + np.random.default_rng(5).standard_normal(shape)).astype(np.float32)
    grouped = host.astype(np.float64).reshape(shape[0], -1, 4, 4)
    axes = (1, 3)
    exact = ((grouped - grouped.mean(axis=axes, keepdims=True))
             / np.sqrt(grouped.var(axis=axes, keepdims=True) + 1e-6)).reshape(shape)
    x = nn.to_backend(host, backend.zeros(1))
    for fast in (False, True):
        theirs = fnn.GroupNorm(num_groups=4, use_fast_variance=fast)
        variables = theirs.init(jax.random.key(0), jnp.asarray(host))
        flax_error = np.abs(np.asarray(theirs.apply(variables, jnp.asarray(host)), np.float64) - exact).max()
        ours = nn.GroupNorm(num_groups=4, use_fast_variance=fast).apply(nn.to_backend(variables, x), x)
        error = np.abs(np.asarray(adapter_of(ours).to_host(ours), np.float64) - exact).max()
        assert error <= 4 * flax_error, (fast, error, flax_error)


@pytest.mark.parametrize("library", ["numpy", "torch", "jax", "array_api_strict"])
def test_layer_norm_with_flaxs_fast_variance_of_data_far_from_zero(library):
    """LayerNorm with flax's default ``use_fast_variance=True`` on float32 data of mean 1e4 and
    spread 3 (README): NumPy's and torch's fused kernels take the two-pass variance, within 0.01
    of the float64 result; jax and array-api-strict run the written-once ``E[x^2] - E[x]^2``,
    which cancels, and give flax's numbers."""
    import importlib
    backend = importlib.import_module({"jax": "jax.numpy"}.get(library, library))
    host = (1e4 + 3 * np.random.default_rng(9).standard_normal((3, 5, 6, 4))).astype(np.float32)
    exact = host.astype(np.float64)
    exact = (exact - exact.mean(-1, keepdims=True)) / np.sqrt(exact.var(-1, keepdims=True) + 1e-6)
    theirs = fnn.LayerNorm()
    variables = theirs.init(jax.random.key(0), jnp.asarray(host))
    flax_result = np.asarray(theirs.apply(variables, jnp.asarray(host)), np.float64)
    assert np.abs(flax_result - exact).max() > 100  # what the fast variance costs here
    x = nn.to_backend(host, backend.zeros(1))
    ours = nn.LayerNorm().apply(nn.to_backend(variables, x), x)
    got = np.asarray(adapter_of(ours).to_host(ours), np.float64)
    if library in ("numpy", "torch"):
        np.testing.assert_allclose(got, exact, atol=0.01)
    else:
        np.testing.assert_allclose(got, flax_result, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_group_norm_of_one_element_groups_gives_the_bias_as_flax(library):
    """Groups of one element have no spread: the output is the bias exactly, as flax's
    ``(x - mean) * ...`` gives (torch's kernel, ``x * scale + shift``, cancels: not used)."""
    backend = {"numpy": np, "torch": pytest.importorskip("torch")}[library]
    host = np.random.default_rng(6).standard_normal((3, 4)).astype(np.float32)
    layer = fnn.GroupNorm(num_groups=4, bias_init=fnn.initializers.normal(1.0))
    variables = layer.init(jax.random.key(0), jnp.asarray(host))
    want = np.asarray(layer.apply(variables, jnp.asarray(host)))
    x = nn.to_backend(host, backend.zeros(1))
    got = nn.GroupNorm(num_groups=4).apply(nn.to_backend(variables, x), x)
    np.testing.assert_array_equal(adapter_of(got).to_host(got), want)
    np.testing.assert_array_equal(want, np.broadcast_to(np.asarray(variables["params"]["bias"]), want.shape))

"""Conformance cases for ``xpnn.random``, ``xpnn.initializers`` and the layers.

The references are ``jax.random``, ``jax.nn.initializers`` and ``flax.linen``:

* a random case calls the same sampler with the same key in xpnn (on the
  backend, key made there) and in jax;
* an initializer case builds the same initializer in both and calls it with
  the same key, shape and dtype;
* a layer case builds the same layer in flax.linen and in xpnn (the two share
  the API, so one factory takes either namespace), then checks two things:
  xpnn's ``init`` with ``key(0)`` against flax's (tree, shapes, values), and
  xpnn's ``apply`` of *flax's* variables, converted to the backend, against
  flax's output.

jax runs with float64 enabled here, so a Python ``p`` would make
``jax.random.bernoulli`` (and xpnn's on jax arrays) draw float64 uniforms; the
bernoulli case passes a float32 ``p`` array to both, and Dropout's reference
masks are drawn in jax's default 32-bit mode for the other libraries and in
the 64-bit mode for jax arrays, as xpnn draws them.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import numpy as np

import xpnn
from xpnn._checks import device_of
from xpnn.backends import dtype_name
from xpnn.conformance.backends import Backend, load
from xpnn.conformance.compare import Checked, Comparison, compare, describe

#: Exact agreement: bit for bit.
EXACT = (0.0, 0.0)


@dataclasses.dataclass(frozen=True)
class RandomCase:
    """``xpnn.random.<function>`` against ``jax.random.<function>``; ``call(random, key, dtype)`` runs either."""

    function: str
    call: Callable[[Any, Any, str], Any]
    exact: bool = True
    #: Whether the sampler takes a floating dtype (else it runs once, under "float32").
    floating: bool = True
    #: Run in jax's legacy (non-partitionable) threefry layout.
    legacy: bool = False
    #: Told apart in the label, e.g. " int64" (a second case of the same function).
    variant: str = ""
    #: Needs 64-bit integers: not run where the library has none (jax in its default mode,
    #: whose own randint refuses int64 bounds there).
    wide: bool = False
    #: Draws in jax's default dtypes (a Python probability, default integers): jax's reference
    #: runs in its default mode (x64 off), except for jax arrays in the 64-bit mode, as xpnn follows it.
    default_dtypes: bool = False
    #: The float32 (rtol, atol) of an inexact case whose formula cancels (jax's own, step for
    #: step), where an ulp of a library's ``sqrt`` or ``log`` moves the result by more.
    float32_tolerance: tuple[float, float] = (2e-6, 1e-7)

    @property
    def label(self) -> str:
        return f"random.{self.function}{self.variant}" + (" (legacy threefry)" if self.legacy else "")


RANDOM_CASES: tuple[RandomCase, ...] = (
    RandomCase("key", lambda r, k, d: _key_data(r, r.key(2**32 + 5)) if _is_jax(r) else r.key(2**32 + 5, like=k),
               floating=False),
    RandomCase("split", lambda r, k, d: _key_data(r, r.split(k, 3)), floating=False),
    RandomCase("split", lambda r, k, d: _key_data(r, r.split(k, 3)), floating=False, legacy=True),
    RandomCase("fold_in", lambda r, k, d: _key_data(r, r.fold_in(k, 2**31 + 7)), floating=False),
    RandomCase("bits", lambda r, k, d: r.bits(k, (8, 16), "uint32"), floating=False),
    RandomCase("bits", lambda r, k, d: r.bits(k, (8, 16), "uint32"), floating=False, legacy=True),
    RandomCase("uniform", lambda r, k, d: r.uniform(k, (8, 16), d, -2.0, 3.0)),
    RandomCase("uniform", lambda r, k, d: r.uniform(k, (8, 16), d), legacy=True),
    RandomCase("normal", lambda r, k, d: r.normal(k, (8, 16), d), exact=False),
    RandomCase("truncated_normal", lambda r, k, d: r.truncated_normal(k, -1.5, 2.0, (8, 16), d), exact=False),
    RandomCase("bernoulli", lambda r, k, d: r.bernoulli(k, _p(r, k, 0.3), (8, 16)), floating=False),
    RandomCase("randint", lambda r, k, d: r.randint(k, (8, 16), -5, 17, "int32"), floating=False),
    RandomCase("randint", lambda r, k, d: r.randint(k, (8, 16), -7, 3 * 2**61, "int64"), floating=False,
               variant=" int64", wide=True),
    RandomCase("permutation", lambda r, k, d: r.permutation(k, 50), floating=False, default_dtypes=True),
    RandomCase("categorical", lambda r, k, d: r.categorical(k, _logits(r, k), shape=(64, 5)), floating=False),
    RandomCase("categorical", lambda r, k, d: r.categorical(k, _logits(r, k), shape=(64, 5), mode="high"),
               floating=False, variant=" mode='high'"),
    RandomCase("choice", lambda r, k, d: r.choice(k, 20, (8, 16)), floating=False, default_dtypes=True),
    RandomCase("choice", lambda r, k, d: r.choice(k, _logits(r, k), (3,), replace=False), floating=False,
               variant=" of an array, replace=False"),
    RandomCase("choice", lambda r, k, d: r.choice(k, 5, (8, 16), p=_probabilities(r, k)), floating=False,
               variant=" p", default_dtypes=True),
    RandomCase("choice", lambda r, k, d: r.choice(k, 5, (4,), replace=False, p=_probabilities(r, k)),
               floating=False, variant=" p, replace=False", default_dtypes=True),
    RandomCase("rademacher", lambda r, k, d: r.rademacher(k, (8, 16), "int8"), floating=False, default_dtypes=True),
    RandomCase("geometric", lambda r, k, d: r.geometric(k, _p(r, k, 0.2), (8, 16)), floating=False,
               default_dtypes=True),
    RandomCase("exponential", lambda r, k, d: r.exponential(k, (8, 16), d), exact=False),
    RandomCase("gumbel", lambda r, k, d: r.gumbel(k, (8, 16), d), exact=False),
    RandomCase("gumbel", lambda r, k, d: r.gumbel(k, (8, 16), d, mode="high"), exact=False, variant=" mode='high'"),
    RandomCase("laplace", lambda r, k, d: r.laplace(k, (8, 16), d), exact=False),
    RandomCase("logistic", lambda r, k, d: r.logistic(k, (8, 16), d), exact=False),
    RandomCase("cauchy", lambda r, k, d: r.cauchy(k, (8, 16), d), exact=False),
    RandomCase("lognormal", lambda r, k, d: r.lognormal(k, 0.5, (8, 16), d), exact=False),
    RandomCase("pareto", lambda r, k, d: r.pareto(k, 3.0, (8, 16), d), exact=False),
    RandomCase("rayleigh", lambda r, k, d: r.rayleigh(k, 2.0, (8, 16), d), exact=False),
    RandomCase("weibull_min", lambda r, k, d: r.weibull_min(k, 2.0, 1.5, (8, 16), d), exact=False),
    RandomCase("maxwell", lambda r, k, d: r.maxwell(k, (8, 16), d), exact=False),
    # float32 only: its Rademacher signs come from bernoulli(0.5), whose uniforms are float64 in
    # jax's 64-bit mode (the only one with float64 samples) and float32 in xpnn off jax arrays.
    RandomCase("double_sided_maxwell", lambda r, k, d: r.double_sided_maxwell(k, 1.0, 2.0, (8, 16), d),
               exact=False, floating=False, default_dtypes=True, float32_tolerance=(1e-4, 1e-6)),
    RandomCase("wald", lambda r, k, d: r.wald(k, 1.5, (8, 16), d), exact=False, float32_tolerance=(1e-4, 1e-6)),
    RandomCase("triangular", lambda r, k, d: r.triangular(k, -1.0, 0.5, 2.0, (8, 16), d), exact=False,
               float32_tolerance=(1e-4, 1e-6)),
    RandomCase("gamma", lambda r, k, d: r.gamma(k, _parameters(r, k, d, [0.3, 1.0, 2.5, 9.0]), (32, 4), d),
               exact=False),
    RandomCase("loggamma", lambda r, k, d: r.loggamma(k, 0.02, (8, 16), d), exact=False),
    RandomCase("beta", lambda r, k, d: r.beta(k, 0.5, 2.0, (8, 16), d), exact=False),
    RandomCase("dirichlet", lambda r, k, d: r.dirichlet(k, _parameters(r, k, d, [0.5, 1.0, 4.0]), (8, 16), d),
               exact=False),
    RandomCase("chisquare", lambda r, k, d: r.chisquare(k, 3.0, (8, 16), d), exact=False),
    RandomCase("f", lambda r, k, d: r.f(k, 3.0, 7.0, (8, 16), d), exact=False),
    RandomCase("t", lambda r, k, d: r.t(k, 4.0, (8, 16), d), exact=False),
    # float32 only, as double_sided_maxwell: Rademacher signs
    RandomCase("generalized_normal", lambda r, k, d: r.generalized_normal(k, 1.5, (8, 16), d), exact=False,
               floating=False, default_dtypes=True),
    RandomCase("ball", lambda r, k, d: r.ball(k, 3, 2, (8, 16), d), exact=False, floating=False,
               default_dtypes=True),
    RandomCase("poisson", lambda r, k, d: r.poisson(k, _parameters(r, k, "float32", [0.5, 3.0, 12.0, 40.0]), (32, 4)),
               floating=False, default_dtypes=True),
    RandomCase("binomial", lambda r, k, d: r.binomial(k, _parameters(r, k, d, [3.0, 20.0, 100.0, 1000.0]),
                                                       _parameters(r, k, d, [0.3, 0.9, 0.05, 0.7]), (32, 4), d)),
    RandomCase("multinomial", lambda r, k, d: r.multinomial(k, 40.0, _parameters(r, k, d, [0.2, 0.5, 0.0, 0.3]),
                                                             shape=(16, 4), dtype=d)),
    RandomCase("PRNGKey", lambda r, k, d: r.PRNGKey(2**32 + 5, **({} if _is_jax(r) else {"like": k})),
               floating=False),
    RandomCase("key_data", lambda r, k, d: r.key_data(r.split(k, 3)), floating=False),
    RandomCase("clone", lambda r, k, d: r.key_data(r.clone(k)), floating=False),
)


def _is_jax(random_module: Any) -> bool:
    return random_module.__name__.startswith("jax")


def _key_data(random_module: Any, keys: Any) -> Any:
    return random_module.key_data(keys) if _is_jax(random_module) else keys


def _p(random_module: Any, key: Any, p: float) -> Any:
    """``p`` as a float32 array in the key's library: the uniforms are float32 on every backend
    and in jax, whatever jax's x64 mode (a Python ``p`` follows jax's mode on jax arrays)."""
    values = np.asarray(p, dtype=np.float32)
    if _is_jax(random_module):
        import jax.numpy as jnp

        return jnp.asarray(values)
    return xpnn.to_backend(values, key)


def _parameters(random_module: Any, key: Any, dtype: str, values: list[float]) -> Any:
    """A distribution's parameters as an array of ``dtype`` in the key's library."""
    array = np.asarray(values, dtype=dtype)
    if _is_jax(random_module):
        import jax.numpy as jnp

        return jnp.asarray(array)
    return xpnn.to_backend(array, key)


def _probabilities(random_module: Any, key: Any) -> Any:
    """Five float32 probabilities, in the key's library."""
    values = np.array([0.1, 0.3, 0.05, 0.25, 0.3], dtype=np.float32)
    if _is_jax(random_module):
        import jax.numpy as jnp

        return jnp.asarray(values)
    return xpnn.to_backend(values, key)


def _logits(random_module: Any, key: Any) -> Any:
    """Logits of 5 classes, in the key's library."""
    values = np.log(np.arange(1, 6, dtype=np.float32))
    if _is_jax(random_module):
        import jax.numpy as jnp

        return jnp.asarray(values)
    return xpnn.to_backend(values, key)


@dataclasses.dataclass(frozen=True)
class InitializerCase:
    """``xpnn.initializers.<builder>(**kwargs)(key, shape, dtype)`` against jax's."""

    builder: str
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: The first layer of the README's MLP: large enough that the report's ulp column shows the
    #: few values (about 1%) where NumPy's and torch's normal draws round otherwise than XLA's.
    shape: tuple[int, ...] = (784, 256)
    exact: bool = False

    @property
    def label(self) -> str:
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"initializers.{self.builder}({arguments})"


INITIALIZER_CASES: tuple[InitializerCase, ...] = (
    InitializerCase("zeros", exact=True),
    InitializerCase("ones", exact=True),
    InitializerCase("zeros_init", exact=True),
    InitializerCase("ones_init", exact=True),
    InitializerCase("constant", {"value": -0.5}, exact=True),
    InitializerCase("uniform", {"scale": 2.0}, exact=True),
    InitializerCase("normal", {"stddev": 0.3}),
    InitializerCase("truncated_normal", {"stddev": 0.5}),
    InitializerCase("variance_scaling", {"scale": 2.0, "mode": "fan_out", "distribution": "uniform"}, (3, 3, 4, 8), exact=True),
    InitializerCase("variance_scaling", {"scale": 1.0, "mode": "fan_avg", "distribution": "normal", "batch_axis": 0}, (6, 4, 8)),
    InitializerCase("glorot_uniform", exact=True),
    InitializerCase("glorot_normal"),
    InitializerCase("xavier_uniform", exact=True),
    InitializerCase("xavier_normal"),
    InitializerCase("lecun_uniform", exact=True),
    InitializerCase("lecun_normal", shape=(3, 3, 4, 8)),
    InitializerCase("he_uniform", exact=True),
    InitializerCase("he_normal"),
    InitializerCase("kaiming_uniform", exact=True),
    InitializerCase("kaiming_normal"),
    InitializerCase("orthogonal", shape=(16, 8)),
    InitializerCase("orthogonal", {"scale": 2.0, "column_axis": 0}, (8, 16)),
    InitializerCase("delta_orthogonal", shape=(3, 3, 4, 6)),
)


@dataclasses.dataclass(frozen=True)
class LayerCase:
    """A layer built by ``build(namespace, param_dtype)`` in flax.linen and in xpnn."""

    label: str
    build: Callable[[Any, Any], Any]
    shape: tuple[int, ...]
    #: "float" inputs, or integer "ids" (some negative or out of range).
    inputs: str = "float"
    #: Keyword arguments of the apply call.
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: Whether the apply call takes a 'dropout' key.
    dropout: bool = False
    #: A method other than ``__call__``; it is initialised through ``__call__`` on ids.
    method: str | None = None
    #: Some params are made by a QR decomposition (``orthogonal``): the library's own QR rounds
    #: differently, so init is compared at the tolerance of the orthogonal initializer's check.
    qr_init: bool = False
    #: The layer normalizes with float32 statistics whatever its dtype (flax's BatchNorm keeps
    #: ``batch_stats`` in float32): a float64 output is as accurate as float32 math on them, and
    #: flax's float32 ``rsqrt`` rounds as the CPU's XLA kernel does (an ulp apart between machines).
    float32_statistics: bool = False

    @property
    def layer(self) -> str:
        return type(self.build(xpnn, "float32")).__name__


LAYER_CASES: tuple[LayerCase, ...] = (
    LayerCase("Dense(3)", lambda L, d: L.Dense(3, param_dtype=d), (2, 4)),
    LayerCase("Dense(3, use_bias=False)", lambda L, d: L.Dense(3, use_bias=False, param_dtype=d), (2, 4)),
    LayerCase("Dense(3) on 3-D", lambda L, d: L.Dense(3, param_dtype=d), (2, 5, 4)),
    LayerCase("Dense(2) on 1-D", lambda L, d: L.Dense(2, param_dtype=d), (4,)),
    LayerCase("Dense(3, glorot_uniform, normal bias)",
              lambda L, d: L.Dense(3, param_dtype=d, kernel_init=L.initializers.glorot_uniform(),
                                   bias_init=L.initializers.normal(0.5)), (2, 4)),
    LayerCase("DenseGeneral((2, 3))", lambda L, d: L.DenseGeneral((2, 3), param_dtype=d), (2, 4)),
    LayerCase("DenseGeneral(5, axis=(-2, -1))", lambda L, d: L.DenseGeneral(5, axis=(-2, -1), param_dtype=d), (2, 3, 4)),
    LayerCase("DenseGeneral(5, batch_dims=(0,))", lambda L, d: L.DenseGeneral(5, axis=-1, batch_dims=(0,), param_dtype=d), (2, 3, 4)),
    LayerCase("DenseGeneral((2, 3), axis=1)", lambda L, d: L.DenseGeneral((2, 3), axis=1, param_dtype=d), (2, 4, 6)),
    LayerCase("Einsum('abc,cde->abde')", lambda L, d: L.Einsum((5, 3, 4), "abc,cde->abde", param_dtype=d), (2, 6, 5)),
    LayerCase("Einsum('ab,bc->ac', use_bias=False)", lambda L, d: L.Einsum((5, 3), "ab,bc->ac", use_bias=False, param_dtype=d), (6, 5)),
    LayerCase("Einsum('...c,chd->...hd')", lambda L, d: L.Einsum((4, 2, 3), "...c,chd->...hd", param_dtype=d), (2, 5, 4)),
    LayerCase("Embed(7, 3)", lambda L, d: L.Embed(7, 3, param_dtype=d), (2, 5), inputs="ids"),
    LayerCase("Embed(7, 3).attend", lambda L, d: L.Embed(7, 3, param_dtype=d), (2, 3), method="attend"),
    LayerCase("Embed(1, 3)", lambda L, d: L.Embed(1, 3, param_dtype=d), (4,), inputs="ids"),
    LayerCase("PReLU()", lambda L, d: L.PReLU(param_dtype=d), (3, 4)),
    LayerCase("PReLU(negative_slope_init=0.25)", lambda L, d: L.PReLU(param_dtype=d, negative_slope_init=0.25), (3, 4)),
    LayerCase("Dropout(0.5)", lambda L, d: L.Dropout(0.5), (2, 8), kwargs={"deterministic": False}, dropout=True),
    LayerCase("Dropout(0.3, broadcast_dims=(0,))", lambda L, d: L.Dropout(0.3, broadcast_dims=(0,)), (3, 8),
              kwargs={"deterministic": False}, dropout=True),
    LayerCase("Dropout(0.5, deterministic=True)", lambda L, d: L.Dropout(0.5, deterministic=True), (2, 8)),
    LayerCase("Dropout(1.0)", lambda L, d: L.Dropout(1.0), (2, 8), kwargs={"deterministic": False}),
    LayerCase("Sequential([Dense, relu, Dense])",
              lambda L, d: L.Sequential([L.Dense(4, param_dtype=d), L.relu, L.Dense(2, param_dtype=d)]), (3, 5)),
    LayerCase("Conv(4, (3, 3))", lambda L, d: L.Conv(4, (3, 3), param_dtype=d), (2, 7, 7, 3)),
    LayerCase("Conv(4, 3) 1-D, stride 2", lambda L, d: L.Conv(4, 3, strides=2, param_dtype=d), (2, 9, 3)),
    LayerCase("Conv(4, (3, 3, 3)) 3-D", lambda L, d: L.Conv(4, (3, 3, 3), param_dtype=d), (1, 5, 5, 5, 2)),
    LayerCase("Conv(4, (3, 3)) unbatched", lambda L, d: L.Conv(4, (3, 3), param_dtype=d), (7, 7, 3)),
    LayerCase("Conv(4, (3, 3)) two batch dims", lambda L, d: L.Conv(4, (3, 3), param_dtype=d), (2, 3, 6, 6, 3)),
    LayerCase("Conv(4, (4, 3), strides 2, VALID)", lambda L, d: L.Conv(4, (4, 3), strides=2, padding="VALID",
                                                                      param_dtype=d), (2, 9, 8, 3)),
    LayerCase("Conv(4, (3, 3), CIRCULAR, stride 2)", lambda L, d: L.Conv(4, (3, 3), strides=(2, 1), padding="CIRCULAR",
                                                                        param_dtype=d), (2, 7, 6, 3)),
    LayerCase("Conv(4, (3, 2), REFLECT)", lambda L, d: L.Conv(4, (3, 2), padding="REFLECT", param_dtype=d), (2, 6, 5, 3)),
    LayerCase("Conv(4, 3, CAUSAL, dilation 2)", lambda L, d: L.Conv(4, (3,), padding="CAUSAL", kernel_dilation=2,
                                                                   param_dtype=d), (2, 9, 3)),
    LayerCase("Conv(4, (3, 3), padding ((0, 1), (2, 0)))",
              lambda L, d: L.Conv(4, (3, 3), padding=((0, 1), (2, 0)), param_dtype=d), (2, 7, 6, 3)),
    LayerCase("Conv(4, (3, 3), padding (1, 2), dilation 2)",
              lambda L, d: L.Conv(4, (3, 3), padding=(1, 2), kernel_dilation=2, param_dtype=d), (2, 8, 8, 3)),
    LayerCase("Conv(4, (3, 3), input_dilation 2, padding 1)",
              lambda L, d: L.Conv(4, (3, 3), padding=1, input_dilation=2, param_dtype=d), (2, 5, 5, 3)),
    LayerCase("Conv(6, (3, 3), feature_group_count=3)",
              lambda L, d: L.Conv(6, (3, 3), feature_group_count=3, param_dtype=d), (2, 6, 6, 3)),
    LayerCase("Conv(4, (3, 3)) depthwise", lambda L, d: L.Conv(4, (3, 3), feature_group_count=4, use_bias=False,
                                                              param_dtype=d), (2, 6, 6, 4)),
    LayerCase("Conv(4, (2, 2), mask)", lambda L, d: L.Conv(4, (2, 2), mask=_conv_mask(L), param_dtype=d), (2, 5, 5, 3)),
    LayerCase("ConvTranspose(4, (3, 3))", lambda L, d: L.ConvTranspose(4, (3, 3), param_dtype=d), (2, 5, 5, 3)),
    LayerCase("ConvTranspose(4, (3, 3), strides 2)", lambda L, d: L.ConvTranspose(4, (3, 3), strides=(2, 2),
                                                                                  param_dtype=d), (2, 5, 4, 3)),
    LayerCase("ConvTranspose(4, 3, strides 2, VALID)", lambda L, d: L.ConvTranspose(4, (3,), strides=(2,),
                                                                                   padding="VALID", param_dtype=d),
              (2, 5, 3)),
    LayerCase("ConvTranspose(4, (4, 4), strides 2, transpose_kernel)",
              lambda L, d: L.ConvTranspose(4, (4, 4), strides=(2, 2), transpose_kernel=True, param_dtype=d),
              (2, 4, 4, 3)),
    LayerCase("ConvTranspose(4, (3, 3), strides 2, CIRCULAR)",
              lambda L, d: L.ConvTranspose(4, (3, 3), strides=(2, 2), padding="CIRCULAR", param_dtype=d), (2, 4, 5, 3)),
    LayerCase("ConvTranspose(4, (3, 3), strides 2, CIRCULAR, transpose_kernel)",
              lambda L, d: L.ConvTranspose(4, (3, 3), strides=(2, 2), padding="CIRCULAR", transpose_kernel=True,
                                           param_dtype=d), (2, 4, 5, 3)),
    LayerCase("ConvTranspose(4, (3, 3), padding ((1, 2), (0, 1)), dilation 2)",
              lambda L, d: L.ConvTranspose(4, (3, 3), padding=((1, 2), (0, 1)), kernel_dilation=(2, 2),
                                           param_dtype=d), (2, 5, 5, 3)),
    LayerCase("ConvLocal(4, (3, 3))", lambda L, d: L.ConvLocal(4, (3, 3), param_dtype=d), (2, 6, 6, 3)),
    LayerCase("LayerNorm()", lambda L, d: L.LayerNorm(param_dtype=d, scale_init=L.initializers.normal(1.0),
                                                      bias_init=L.initializers.normal(1.0)), (4, 3, 6)),
    LayerCase("LayerNorm(reduction_axes=(1, 2), feature_axes=(1, 2))",
              lambda L, d: L.LayerNorm(reduction_axes=(1, 2), feature_axes=(1, 2), param_dtype=d,
                                       scale_init=L.initializers.normal(1.0)), (4, 3, 6)),
    LayerCase("LayerNorm(use_fast_variance=False, no scale or bias)",
              lambda L, d: L.LayerNorm(use_fast_variance=False, use_scale=False, use_bias=False), (4, 5)),
    LayerCase("RMSNorm()", lambda L, d: L.RMSNorm(param_dtype=d, scale_init=L.initializers.normal(1.0)), (4, 3, 6)),
    LayerCase("GroupNorm(num_groups=4)", lambda L, d: L.GroupNorm(num_groups=4, param_dtype=d,
                                                                 scale_init=L.initializers.normal(1.0),
                                                                 bias_init=L.initializers.normal(1.0)), (2, 5, 5, 8)),
    LayerCase("GroupNorm(num_groups=None, group_size=2) on 2-D",
              lambda L, d: L.GroupNorm(num_groups=None, group_size=2, param_dtype=d), (3, 8)),
    LayerCase("InstanceNorm()", lambda L, d: L.InstanceNorm(param_dtype=d, scale_init=L.initializers.normal(1.0)),
              (2, 5, 4, 3)),
    LayerCase("BatchNorm(use_running_average=True)",
              lambda L, d: L.BatchNorm(use_running_average=True, param_dtype=d,
                                       scale_init=L.initializers.normal(1.0)), (4, 3, 6), float32_statistics=True),
    LayerCase("SpectralNorm(Dense(3))", lambda L, d: L.SpectralNorm(L.Dense(3, param_dtype=d)), (2, 4),
              kwargs={"update_stats": False}),
    LayerCase("SpectralNorm(Conv(4, (3, 3)), n_steps=3)",
              lambda L, d: L.SpectralNorm(L.Conv(4, (3, 3), param_dtype=d), n_steps=3), (2, 6, 6, 3),
              kwargs={"update_stats": False}),
    LayerCase("WeightNorm(Dense(3))", lambda L, d: L.WeightNorm(L.Dense(3, param_dtype=d, bias_init=L.initializers.normal(1.0)),
                                                               scale_init=L.initializers.normal(1.0)), (2, 4)),
    LayerCase("WeightNorm(Conv(4, (3, 3)), variable_filter=None)",
              lambda L, d: L.WeightNorm(L.Conv(4, (3, 3), param_dtype=d), variable_filter=None), (2, 6, 6, 3)),
    LayerCase("WeightNorm(Dense(3), feature_axes=None)",
              lambda L, d: L.WeightNorm(L.Dense(3, param_dtype=d), feature_axes=None), (2, 4)),
    LayerCase("MultiHeadDotProductAttention(num_heads=3)",
              lambda L, d: L.MultiHeadDotProductAttention(num_heads=3, param_dtype=d), (2, 5, 12)),
    LayerCase("MultiHeadDotProductAttention(2, qkv_features=8, out_features=6, normalize_qk)",
              lambda L, d: L.MultiHeadDotProductAttention(num_heads=2, qkv_features=8, out_features=6,
                                                          normalize_qk=True, param_dtype=d), (2, 5, 12)),
    LayerCase("MultiHeadAttention(num_heads=2) on 4-D", lambda L, d: L.MultiHeadAttention(num_heads=2, param_dtype=d),
              (2, 3, 4, 8)),
    LayerCase("SelfAttention(num_heads=2)", lambda L, d: L.SelfAttention(num_heads=2, param_dtype=d), (2, 4, 8)),
    LayerCase("RNN(LSTMCell(4))", lambda L, d: L.RNN(L.LSTMCell(4, param_dtype=d)), (2, 5, 3), qr_init=True),
    LayerCase("RNN(OptimizedLSTMCell(4), reverse, keep_order)",
              lambda L, d: L.RNN(L.OptimizedLSTMCell(4, param_dtype=d), reverse=True, keep_order=True), (2, 5, 3), qr_init=True),
    LayerCase("RNN(GRUCell(4)) time_major", lambda L, d: L.RNN(L.GRUCell(4, param_dtype=d), time_major=True),
              (5, 2, 3), qr_init=True),
    LayerCase("RNN(MGUCell(4, reset_gate=False)), reverse",
              lambda L, d: L.RNN(L.MGUCell(4, reset_gate=False, param_dtype=d), reverse=True), (2, 5, 3), qr_init=True),
    LayerCase("RNN(SimpleCell(3, residual)) on 2 batch dims",
              lambda L, d: L.RNN(L.SimpleCell(3, residual=True, param_dtype=d)), (2, 2, 4, 3), qr_init=True),
    LayerCase("RNN(ConvLSTMCell(4, (3, 3)))", lambda L, d: L.RNN(L.ConvLSTMCell(4, (3, 3), param_dtype=d)),
              (2, 3, 5, 5, 2)),
    LayerCase("Bidirectional(RNN(LSTMCell(4)), RNN(GRUCell(3)))",
              lambda L, d: L.Bidirectional(L.RNN(L.LSTMCell(4, param_dtype=d)), L.RNN(L.GRUCell(3, param_dtype=d))),
              (2, 5, 3), qr_init=True),
    LayerCase("ConvLocal(4, (2, 3), VALID, strides 2)",
              lambda L, d: L.ConvLocal(4, (2, 3), strides=2, padding="VALID", param_dtype=d), (2, 7, 7, 2)),
)


def _conv_mask(namespace: Any) -> Any:
    """A (2, 2, 3, 4) mask of zeros and ones, in flax's library or in NumPy for xpnn's layer."""
    mask = (np.arange(48).reshape(2, 2, 3, 4) % 3 != 0).astype(np.float32)
    if namespace is xpnn:
        return mask
    import jax.numpy as jnp

    return jnp.asarray(mask)


@dataclasses.dataclass(frozen=True)
class PoolCase:
    """``<function>(x, **kwargs)`` of xpnn against flax.linen's (``min_pool`` from ``flax.linen.pooling``)."""

    function: str
    kwargs: dict[str, Any]
    shape: tuple[int, ...] = (2, 6, 7, 3)

    @property
    def label(self) -> str:
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.function}({arguments}) on {self.shape}"


POOL_CASES: tuple[PoolCase, ...] = (
    PoolCase("max_pool", {"window_shape": (2, 2)}),
    PoolCase("max_pool", {"window_shape": (3, 3), "strides": (2, 2), "padding": "SAME"}),
    PoolCase("max_pool", {"window_shape": (3,), "strides": (2,), "padding": ((1, 1),)}, (2, 9, 3)),
    PoolCase("max_pool", {"window_shape": (2, 2, 2)}, (1, 4, 5, 4, 2)),
    PoolCase("max_pool", {"window_shape": (2, 2)}, (6, 7, 3)),
    PoolCase("min_pool", {"window_shape": (2, 3), "strides": (1, 2), "padding": "SAME"}),
    PoolCase("avg_pool", {"window_shape": (2, 2), "strides": (2, 2), "padding": "SAME"}),
    PoolCase("avg_pool", {"window_shape": (2, 2), "strides": (2, 2), "padding": "SAME", "count_include_pad": False}),
    PoolCase("avg_pool", {"window_shape": (3, 3), "padding": ((1, 1), (1, 1)), "count_include_pad": False}),
    PoolCase("avg_pool", {"window_shape": (3,)}, (2, 9, 3)),
    PoolCase("pool", {"init": 0.0, "window_shape": (2, 2), "strides": (1, 2), "padding": "SAME"}),
)


def run_pool(case: PoolCase, backend: Backend, dtype: str) -> Checked:
    """The pooling of a random input by xpnn on ``backend`` against flax.linen's."""
    load("jax")
    import flax.linen as fnn
    import flax.linen.pooling as flax_pooling
    import jax
    import jax.numpy as jnp

    x = layer_inputs(case.shape, "float", dtype)
    kwargs = dict(case.kwargs)
    if case.function == "pool":  # a sum pool, the reduction given as a function of each library
        init, window = kwargs.pop("init"), kwargs.pop("window_shape")
        expected = np.asarray(fnn.pool(jnp.asarray(x), init, jax.lax.add, window, **kwargs))
        xb = backend.asarray(x, dtype)
        out = xpnn.pool(xb, init, backend.xp.add, window, **kwargs)
    else:
        reference = getattr(fnn, case.function, None) or getattr(flax_pooling, case.function)
        # flax's avg_pool(count_include_pad=False) divides by a pool of jnp.ones, which is float64
        # when jax's x64 is on: xpnn keeps the input's dtype, as flax does in jax's default mode.
        expected = np.asarray(reference(jnp.asarray(x), **kwargs)).astype(x.dtype)
        xb = backend.asarray(x, dtype)
        out = getattr(xpnn, case.function)(xb, **kwargs)
    actual = backend.to_numpy(out)
    return Checked(compare(actual, expected, dtype, tolerance=_scaled_tolerance(dtype, expected)),
                   _output_problem(backend, xb, out, actual, expected), describe(out))

#: Public names the layer cases exercise on every run (the module system they are built on).
MODULE_SYSTEM = ("Module", "compact", "to_backend", "tree_map", "tree_leaves")


def layer_inputs(shape: tuple[int, ...], kind: str, dtype: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "ids":
        return rng.integers(-8, 10, size=shape).astype("int32")  # negative and out-of-range ids too
    return rng.standard_normal(shape).astype(dtype)


def init_kwargs(case: LayerCase) -> dict[str, Any]:
    """The call-time settings the apply call takes and ``init`` needs too."""
    return {name: case.kwargs[name] for name in ("update_stats",) if name in case.kwargs} | (
        {"deterministic": True} if "deterministic" in case.kwargs else {})


def jax_x64() -> bool:
    """Whether jax runs with ``jax_enable_x64`` on now."""
    import jax

    return bool(jax.config.jax_enable_x64)


def flax_layer(label: str, dtype: str, x64: bool = False) -> tuple[np.ndarray, np.ndarray, dict, np.ndarray]:
    """flax's ``(inputs, init inputs, variables, output)`` for the layer case ``label`` in ``dtype``,
    computed on jax's default device (a backend's ``scope`` sets it).  A dropout layer's masks
    are drawn in jax's default mode (float32 uniforms, those of every library but jax), or
    with ``x64`` in its 64-bit mode (float64 uniforms, those of xpnn on jax arrays there)."""
    load("jax")
    import jax

    return _flax_layer(label, dtype, str(jax.config.jax_default_device), x64)


@functools.lru_cache(maxsize=None)
def _flax_layer(label: str, dtype: str, device: str, x64: bool) -> tuple[np.ndarray, np.ndarray, dict, np.ndarray]:
    """:func:`flax_layer`, cached per default ``device`` and mode."""
    import flax.linen as fnn
    import jax
    import jax.numpy as jnp

    case = next(c for c in LAYER_CASES if c.label == label)
    x = layer_inputs(case.shape, case.inputs, dtype)
    init_x = layer_inputs((2, 5), "ids", dtype) if case.method else x
    layer = case.build(fnn, jnp.dtype(dtype))
    variables = layer.init(jax.random.key(0), jnp.asarray(init_x), **init_kwargs(case))
    if not case.dropout:
        out = np.asarray(layer.apply(variables, jnp.asarray(x), method=case.method, **case.kwargs))
        return x, init_x, variables, out
    with jax.enable_x64(x64):
        out = np.asarray(layer.apply(variables, jnp.asarray(x, "float32"), rngs={"dropout": jax.random.key(1)}, **case.kwargs))
    return x, init_x, variables, np.where(out != 0, x / (1 - layer.rate), 0).astype(dtype)


def _leaves(tree: Any) -> list[Any]:
    import jax

    return jax.tree_util.tree_leaves(tree)


def _scaled_tolerance(dtype: str, expected: np.ndarray) -> tuple[float, float]:
    """A matrix product's error scales with its terms, not its result: atol grows with the output's scale."""
    rtol = {"float64": 1e-13, "float32": 2e-6}[dtype]
    finite = np.abs(expected[np.isfinite(expected)])
    return rtol, rtol * float(finite.max(initial=1.0))


def _merge(comparisons: list[Comparison]) -> Comparison:
    return Comparison(
        max(c.max_abs for c in comparisons), max(c.max_rel for c in comparisons),
        max(c.max_ulp for c in comparisons), sum(c.special_mismatch for c in comparisons),
        all(c.passed for c in comparisons),
    )


def _as_backend_input(backend: Backend, x: np.ndarray, dtype: str) -> Any:
    return backend.asarray(x, "int32" if x.dtype.kind == "i" else dtype)


def layer_apply(case: LayerCase, backend: Backend, dtype: str) -> Checked:
    """flax's variables, moved to ``backend``, applied by xpnn, against flax's output."""
    x, _, flax_variables, expected = flax_layer(case.label, dtype)
    rngs = {"dropout": xpnn.random.key(1, like=backend.like())} if case.dropout else None
    xb = _as_backend_input(backend, x, dtype)
    if case.dropout and backend.name == "jax":  # the masks follow jax's mode there, as flax's do
        expected = flax_layer(case.label, dtype, x64=jax_x64())[3]
    out = case.build(xpnn, dtype).apply(xpnn.to_backend(flax_variables, backend.like()), xb, rngs=rngs,
                                        method=case.method, **case.kwargs)
    actual = backend.to_numpy(out)
    tolerance = _scaled_tolerance("float32" if case.float32_statistics else dtype, expected)
    return Checked(compare(actual, expected, dtype, tolerance=tolerance),
                   _output_problem(backend, xb, out, actual, expected), describe(out))


def layer_init(case: LayerCase, backend: Backend, dtype: str) -> Checked:
    """xpnn's ``init`` with ``key(0)`` against flax's: tree, dtypes, library and device, values."""
    import jax

    _, init_x, flax_variables, _ = flax_layer(case.label, dtype)
    init_in = _as_backend_input(backend, init_x, dtype)
    variables = case.build(xpnn, dtype).init(xpnn.random.key(0), init_in, **init_kwargs(case))
    structure = jax.tree_util.tree_structure(variables)
    if structure != jax.tree_util.tree_structure(flax_variables):
        return Checked(Comparison(np.inf, np.inf, np.inf, 0, False), f"variable tree {structure} differs from flax's", {})
    tolerance = {"float32": (4e-6, 1e-7), "float64": (1e-12, 1e-14)}[dtype]
    if case.qr_init:
        tolerance = {"float32": (2e-5, 2e-6), "float64": (1e-11, 1e-12)}[dtype]
    leaves = _leaves(variables)
    comparisons, problem = [], ""
    for ours, theirs in zip(leaves, _leaves(flax_variables)):
        theirs = np.asarray(theirs)
        if dtype_name(ours.dtype) != str(theirs.dtype):
            problem = f"param dtype {ours.dtype} differs from flax's {theirs.dtype}"
        if type(ours) is not type(init_in) or device_of(ours) != device_of(init_in):
            problem = f"param {type(ours).__name__} on {device_of(ours)} is not in the input's library and device"
        comparisons.append(compare(backend.to_numpy(ours), theirs, dtype, tolerance=tolerance))
    merged = _merge(comparisons) if comparisons else compare(np.zeros(0), np.zeros(0), dtype)
    return Checked(merged, problem, describe(leaves[0]) if leaves else {})


#: The two checks of every layer case, by name.
LAYER_PARTS = {"init": layer_init, "apply": layer_apply}


def run_batch_apply(backend: Backend, dtype: str) -> Checked:
    """``BatchApply(f)`` on a (2, 3, 4, 5) input, f a matrix product that needs 2-D input, against flax's."""
    load("jax")
    import flax.linen as fnn
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 4, 5)).astype(dtype), rng.standard_normal((5, 6)).astype(dtype)

    def product(xp_w):
        def f(a):
            if a.ndim != 3:
                raise ValueError(f"f expects the merged (6, 4, 5) input, got {a.shape}")
            return a @ xp_w

        return f

    expected = np.asarray(fnn.BatchApply(product(jnp.asarray(w)))(jnp.asarray(x)))
    xb = backend.asarray(x, dtype)
    out = xpnn.BatchApply(product(backend.asarray(w, dtype)))(xb)
    actual = backend.to_numpy(out)
    return Checked(compare(actual, expected, dtype, tolerance=_scaled_tolerance(dtype, expected)),
                   _output_problem(backend, xb, out, actual, expected), describe(out))


def _output_problem(backend: Backend, x: Any, out: Any, actual: np.ndarray, expected: np.ndarray) -> str:
    if type(out) is not type(x):
        return f"output library {type(out).__module__} differs from the input's"
    if actual.dtype != expected.dtype:
        return f"output dtype {actual.dtype} differs from flax's {expected.dtype}"
    return ""


def run_random(case: RandomCase, backend: Backend, dtype: str) -> Checked:
    load("jax")
    import jax

    previous = jax.config.jax_threefry_partitionable
    try:
        if case.legacy:
            xpnn.random.set_threefry_partitionable(False)
            jax.config.update("jax_threefry_partitionable", False)
        key = xpnn.random.key(42, like=backend.like())
        out = case.call(xpnn.random, key, dtype)
        x64 = jax_x64() and (backend.name == "jax" or not case.default_dtypes)
        with jax.enable_x64(x64):
            expected = np.asarray(case.call(jax.random, jax.random.key(42), dtype))
    finally:
        xpnn.random.set_threefry_partitionable(True)
        jax.config.update("jax_threefry_partitionable", previous)
    actual = backend.to_numpy(out)
    problem = "" if type(out) is type(key) else f"output library {type(out).__module__} differs from the key's"
    if not problem and actual.dtype != expected.dtype:
        problem = f"output dtype {actual.dtype} differs from jax's {expected.dtype}"
    if not problem and actual.dtype.kind in "iu" and not np.array_equal(actual, expected):
        problem = "integers differ from jax's"  # int64 values beyond 2**53 can tie as floats
    tolerance = EXACT if case.exact else {"float64": (1e-12, 1e-300), "float32": case.float32_tolerance}[dtype]
    comparison = compare(actual.astype(np.float64), expected.astype(np.float64), dtype, tolerance=tolerance)
    return Checked(comparison, problem, describe(out))


def _sqrt_not_rounded(backend: Backend) -> bool:
    """Whether the backend's reference, jax on that device, rounds a float32 square root
    differently from jax on the CPU: on a GPU (in either x64 mode), jax's ``sqrt(3 * variance)``
    can be 1 ulp off, while xpnn's scale factors are correctly rounded on every library and
    device (they equal jax's on the CPU).  Uniform-based initializers there are checked to 2.5
    ulp instead of bit for bit."""
    return backend.name == "jax" and backend.device == "cuda"


def run_initializer(case: InitializerCase, backend: Backend, dtype: str) -> Checked:
    load("jax")
    import jax
    import jax.numpy as jnp

    key = xpnn.random.key(7, like=backend.like())
    out = getattr(xpnn.initializers, case.builder)
    out = out(**case.kwargs) if case.builder not in ("zeros", "ones") else out
    out = out(key, case.shape, dtype)
    import flax.linen as fnn

    # jax.nn.initializers, and flax.linen.initializers for flax's own zeros_init / ones_init
    reference = getattr(jax.nn.initializers, case.builder, None) or getattr(fnn.initializers, case.builder)
    reference = reference(**case.kwargs) if case.builder not in ("zeros", "ones") else reference
    expected = np.asarray(reference(jax.random.key(7), case.shape, jnp.dtype(dtype)))
    actual = backend.to_numpy(out)
    problem = "" if type(out) is type(key) else f"output library {type(out).__module__} differs from the key's"
    if not problem and actual.dtype != expected.dtype:
        problem = f"output dtype {actual.dtype} differs from jax's {expected.dtype}"
    if case.exact and _sqrt_not_rounded(backend):
        tolerance = {"float64": (5e-16, 0.0), "float32": (3e-7, 0.0)}[dtype]
    elif case.exact:
        tolerance = EXACT
    elif case.builder in ("orthogonal", "delta_orthogonal"):  # each library's own QR: equal to rounding of the matrix
        tolerance = {"float64": (1e-11, 1e-12), "float32": (2e-5, 2e-6)}[dtype]
    else:  # relative only, so that every ulp of difference shows in the report
        tolerance = {"float64": (1e-11, 1e-300), "float32": (1e-6, 1e-30)}[dtype]
    return Checked(compare(actual, expected, dtype, tolerance=tolerance), problem, describe(out))

"""JAX adapter: ``jax.lax`` primitives and jitted fast paths.

Eager JAX pays a dispatch per operation, so every public function runs as a
cached ``jax.jit`` on JAX arrays: ``jax.nn``'s own definition where its
semantics are xpnn's, otherwise the written-once definition compiled by
:meth:`JaxAdapter.compile`.  Inside a user's ``jax.jit`` the jitted call is
inlined, so the traced program is the same as calling ``jax.nn`` directly.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.nn as jnn
import jax.numpy as jnp

from ._base import Adapter, FastPath, valid_axis

# xpnn name -> (jax.nn function, its static (non-array) arguments).
_JAX_NN = {
    "relu": (jnn.relu, ()),
    "relu6": (jnn.relu6, ()),
    "leaky_relu": (jnn.leaky_relu, ()),
    "elu": (jnn.elu, ()),
    "selu": (jnn.selu, ()),
    "celu": (jnn.celu, ()),
    "gelu": (jnn.gelu, ("approximate",)),
    "silu": (jnn.silu, ()),
    "swish": (jnn.silu, ()),
    "mish": (jnn.mish, ()),
    "hard_silu": (jnn.hard_silu, ()),
    "hard_swish": (jnn.hard_silu, ()),
    "squareplus": (jnn.squareplus, ()),
    "sigmoid": (jnn.sigmoid, ()),
    "hard_sigmoid": (jnn.hard_sigmoid, ()),
    "log_sigmoid": (jnn.log_sigmoid, ()),
    "soft_sign": (jnn.soft_sign, ()),
    "tanh": (jnn.tanh, ()),
    "hard_tanh": (jnn.hard_tanh, ()),
    "softplus": (jnn.softplus, ()),
    "sparse_plus": (jnn.sparse_plus, ()),
    "sparse_sigmoid": (jnn.sparse_sigmoid, ()),
    "log1mexp": (jnn.log1mexp, ()),
    "softmax": (jnn.softmax, ("axis",)),
    "log_softmax": (jnn.log_softmax, ("axis",)),
    "logsumexp": (jnn.logsumexp, ("axis", "keepdims", "return_sign")),
}


_FLOATING = frozenset(jnp.dtype(d) for d in ("float16", "bfloat16", "float32", "float64"))


def _native(function: Callable[..., Any], static: tuple[str, ...]) -> FastPath:
    """``jax.nn``'s ``function`` jitted, for floating inputs with in-range axes.

    Integer inputs and bad axes go to the written-once definition, so dtype
    promotion (to the default float) and error messages are xpnn's.
    """
    jitted = jax.jit(function, static_argnames=static)
    takes_axis = "axis" in static

    def fast(x, *args, **kwargs):
        if getattr(x, "dtype", None) not in _FLOATING:
            return NotImplemented
        if takes_axis:
            axis = args[0] if args else kwargs.get("axis", -1 if function is not jnn.logsumexp else None)
            if not valid_axis(axis if not isinstance(axis, list) else tuple(axis), x.ndim):
                return NotImplemented
        return jitted(x, *args, **kwargs)

    return fast


class JaxAdapter(Adapter):
    name = "jax"

    def _fast_paths(self) -> dict[str, FastPath]:
        return {name: _native(function, static) for name, (function, static) in _JAX_NN.items()}

    def compile(self, function: Callable[..., Any], static_argnames: tuple[str, ...]) -> FastPath:
        """The written-once ``function`` as a cached ``jax.jit``."""
        return jax.jit(function, static_argnames=static_argnames)

    def erf(self, x):
        return jax.lax.erf(x)

    def erfc(self, x):
        return jax.lax.erfc(x)

    def key_data(self, key):
        """``jax.random.key(...)`` typed keys become their uint32 words."""
        if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
            return jax.random.key_data(key)
        return key

    def fma(self, a, b, c):
        """XLA contracts the multiply-add itself."""
        return a * b + c

    def erf_inv(self, x):
        return jax.lax.erf_inv(x)

    def stop_gradient(self, x):
        return jax.lax.stop_gradient(x)

    def to_host(self, x):
        import numpy

        return numpy.asarray(x)

    def to_device(self, x, device):
        """Traced values are placed by XLA; concrete ones move with ``device_put``."""
        if device is None or isinstance(x, jax.core.Tracer) or x.devices() == {device}:
            return x
        return jax.device_put(x, device)


ADAPTER = JaxAdapter

"""JAX adapter: ``jax.lax`` primitives and jitted fast paths.

Eager JAX pays a dispatch per operation, so every public function runs as a
cached ``jax.jit`` on JAX arrays: ``jax.nn``'s own definition where its
semantics are xpnn's, otherwise the written-once definition compiled by
:meth:`JaxAdapter.compile`.  Inside a user's ``jax.jit`` the jitted call is
inlined, so the traced program is the same as calling ``jax.nn`` directly.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import jax
import jax.nn as jnn
import jax.numpy as jnp
import numpy as np

from ._base import Adapter, FastPath, valid_axis

# xpnn name -> the jax.nn function with xpnn's semantics for floating inputs.  gelu and
# squareplus are not here: jax.nn's forms cancel for negative x, xpnn's stable ones do not.
_JAX_NN = {
    "relu": jnn.relu,
    "relu6": jnn.relu6,
    "leaky_relu": jnn.leaky_relu,
    "elu": jnn.elu,
    "selu": jnn.selu,
    "celu": jnn.celu,
    "silu": jnn.silu,
    "mish": jnn.mish,
    "hard_silu": jnn.hard_silu,
    "sigmoid": jnn.sigmoid,
    "hard_sigmoid": jnn.hard_sigmoid,
    "log_sigmoid": jnn.log_sigmoid,
    "soft_sign": jnn.soft_sign,
    "tanh": jnn.tanh,
    "hard_tanh": jnn.hard_tanh,
    "softplus": jnn.softplus,
    "sparse_plus": jnn.sparse_plus,
    "sparse_sigmoid": jnn.sparse_sigmoid,
    "log1mexp": jnn.log1mexp,
    "softmax": jnn.softmax,
    "log_softmax": jnn.log_softmax,
    "logsumexp": jnn.logsumexp,
    "dot_product_attention": jnn.dot_product_attention,
}


_FLOATING = frozenset(jnp.dtype(d) for d in ("float16", "bfloat16", "float32", "float64"))
#: Natives with xpnn's semantics in fewer dtypes: jax.nn's attention rounds a float64 softmax to
#: float32 (xpnn keeps float64), and its float16 products do not compile on CPU.
_NATIVE_DTYPES = {"dot_product_attention": frozenset(jnp.dtype(d) for d in ("bfloat16", "float32"))}


def _native_or_written_once(native: Callable[..., Any], written_once: Callable[..., Any],
                            dtypes: frozenset = _FLOATING) -> Callable[..., Any]:
    """A function with ``written_once``'s signature that calls ``jax.nn``'s ``native`` for
    floating inputs with in-range axes and ``written_once`` otherwise.

    It is meant to be traced: the choice reads only the input's dtype and the
    static arguments, so a jitted call decides it once per compiled signature
    and no Python check runs per call.  Integer inputs and bad axes take the
    written-once definition, so dtype promotion (to the default float) and
    error messages are xpnn's.
    """
    signature = inspect.signature(written_once)
    takes_axis = "axis" in signature.parameters

    @functools.wraps(written_once)
    def choose(x, *args, **kwargs):
        if x.dtype in dtypes:
            if not takes_axis:
                return native(x, *args, **kwargs)
            axis = signature.bind(x, *args, **kwargs).arguments.get("axis", signature.parameters["axis"].default)
            if valid_axis(axis, x.ndim):
                return native(x, *args, **kwargs)
        return written_once(x, *args, **kwargs)

    return choose


class JaxAdapter(Adapter):
    name = "jax"
    #: An attention output's zero is a sum of products: its sign follows the summation order.
    fast_path_zero_signs = frozenset({"dot_product_attention"})
    compiles_loops = True

    def compile(self, definition) -> FastPath:
        """The definition as a cached ``jax.jit``: of ``jax.nn``'s twin where it has one (see
        :func:`_native_or_written_once`), else of the written-once definition."""
        written_once = definition.bound(self)
        native = _JAX_NN.get(definition.name)
        if native is None:
            self.compiled_definitions.add(definition.name)
        traced = written_once if native is None else _native_or_written_once(
            native, written_once, _NATIVE_DTYPES.get(definition.name, _FLOATING))
        return jax.jit(traced, static_argnames=definition.static)

    def kernel_devices(self, x):
        """The platforms of ``x``'s devices (a tracer: none) and of jax's default device."""
        default = jax.devices()[0]
        devices = {default.platform: default}
        if not isinstance(x, jax.core.Tracer):
            for device in x.devices():
                devices.setdefault(device.platform, device)
        return devices

    def eagerly(self):
        return jax.ensure_compile_time_eval()

    def erf(self, x):
        return jax.lax.erf(x)

    def erfc(self, x):
        return jax.lax.erfc(x)

    def dtype_named(self, name):
        """jax's dtype of that name as jax's mode has it: ``int64`` is int32 with x64 off, as
        ``jax.random.randint(..., dtype=jnp.int64)`` draws it there."""
        dtype = getattr(self.xp, name, None)
        return None if dtype is None else jax.dtypes.canonicalize_dtype(dtype)

    def holds_dtype(self, dtype, device):
        """64-bit dtypes only with ``jax_enable_x64`` on (traced values included)."""
        return jax.dtypes.canonicalize_dtype(dtype) == jnp.dtype(dtype)

    def random_default_dtype(self, name):
        """jax's configured default: the 64-bit twin of ``name`` with ``jax_enable_x64`` on."""
        return str(jax.dtypes.canonicalize_dtype(name.replace("32", "64")))

    def key_data(self, key):
        """``jax.random.key(...)`` typed keys become their uint32 words."""
        if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
            return jax.random.key_data(key)
        return key

    def fma(self, a, b, c):
        """XLA contracts the multiply-add itself."""
        return a * b + c

    def erf_as_jax(self, x):
        return jax.lax.erf(x)

    def erf_inv(self, x):
        return jax.lax.erf_inv(x)

    def stop_gradient(self, x):
        return jax.lax.stop_gradient(x)

    def conv_general_dilated(self, lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                             feature_group_count=1):
        """``jax.lax.conv_general_dilated`` with flax's channels-last dimension numbers."""
        spatial = tuple(range(1, lhs.ndim - 1))
        numbers = jax.lax.ConvDimensionNumbers(lhs_spec=(0, lhs.ndim - 1, *spatial),
                                               rhs_spec=(rhs.ndim - 1, rhs.ndim - 2, *range(rhs.ndim - 2)),
                                               out_spec=(0, lhs.ndim - 1, *spatial))
        return jax.lax.conv_general_dilated(lhs, rhs, tuple(window_strides), tuple(map(tuple, padding)),
                                            tuple(lhs_dilation), tuple(rhs_dilation), numbers,
                                            feature_group_count=feature_group_count)

    def reduce_window(self, x, init, reduction, window_dimensions, window_strides, padding, window_dilation=None):
        combine = {"max": jax.lax.max, "min": jax.lax.min, "sum": jax.lax.add}.get(reduction, reduction)
        # init as a NumPy scalar: lax recognises max/min/add windows (and differentiates them) only
        # with a concrete identity, which jnp.asarray inside a trace is not.
        init = jnp.asarray(init, dtype=x.dtype) if isinstance(init, jax.core.Tracer) else np.asarray(init, dtype=x.dtype)
        return jax.lax.reduce_window(x, init, combine, tuple(window_dimensions),
                                     tuple(window_strides), tuple(map(tuple, padding)),
                                     window_dilation=None if window_dilation is None else tuple(window_dilation))

    def mean_across(self, x, axis_name, axis_index_groups=None):
        return jax.lax.pmean(x, axis_name, axis_index_groups=axis_index_groups)

    def scan(self, f, init, xs, length=None, reverse=False, unroll=1):
        return jax.lax.scan(f, init, xs, length=length, reverse=reverse, unroll=unroll)

    def to_host(self, x):
        import numpy

        return numpy.asarray(x)

    def to_device(self, x, device):
        """Traced values are placed by XLA; concrete ones move with ``device_put``."""
        if device is None or isinstance(x, jax.core.Tracer) or x.devices() == {device}:
            return x
        return jax.device_put(x, device)


ADAPTER = JaxAdapter

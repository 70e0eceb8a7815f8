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

from xpnn.partitioning import LogicallyPartitioned, Partitioned

from . import _fallback
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


def _explicit_spec(x) -> tuple | None:
    """``x``'s partition spec, one entry per axis, when it is laid out over a mesh with explicit
    axes (``jax.make_mesh``'s default); None otherwise (one device, auto axes)."""
    try:
        sharding = jax.typeof(x).sharding
    except (AttributeError, TypeError):
        return None
    mesh = getattr(sharding, "mesh", None)
    if mesh is None or mesh.empty or jax.sharding.AxisType.Explicit not in tuple(mesh.axis_types):
        return None
    spec = tuple(sharding.spec)
    return spec + (None,) * (x.ndim - len(spec))


def _whole_where_windowed(x, window, strides, padding, dilation=None):
    """``x`` with the axes a window slides along gathered whole when it is split over devices
    under explicit mesh axes (XLA splits a windowed axis only where the output divides evenly,
    and an unbatched image's first axis is a spatial one); ``x`` itself otherwise."""
    spec = _explicit_spec(x)
    if spec is None:
        return x
    dilation = dilation or (1,) * x.ndim
    windowed = [w != 1 or s != 1 or tuple(p) != (0, 0) or d != 1
                for w, s, p, d in zip(window, strides, padding, dilation)]
    wanted = tuple(None if slide else entry for entry, slide in zip(spec, windowed))
    return x if wanted == spec else jax.sharding.reshard(x, jax.sharding.PartitionSpec(*wanted))


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
        """The platforms of ``x``'s devices (a tracer: none) and of jax's default device, probed
        with jax's default placement (None), which works inside a mesh context too (a probe
        pinned to one device does not mix with a ``jax.set_mesh`` of several)."""
        devices = {jax.devices()[0].platform: None}
        if not isinstance(x, jax.core.Tracer):
            for device in x.devices():
                devices.setdefault(device.platform, device)
        return devices

    def eagerly(self):
        return jax.ensure_compile_time_eval()

    def full_precision(self):
        """``jax.default_matmul_precision('highest')``: float32 products in float32 on GPUs and TPUs."""
        return jax.default_matmul_precision("highest")

    def erf(self, x):
        return jax.lax.erf(x)

    def lgamma(self, x):
        return jax.lax.lgamma(x)

    def erfc(self, x):
        """``jax.lax.erfc`` with its tail's rounded square corrected (``_fallback.erfc_square_corrected``)."""
        return _fallback.erfc_square_corrected(jnp, x, jax.lax.erfc)

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

    def write_into(self, target, value):
        """jax arrays are immutable: ``value`` is returned (``inplace=True`` cannot write)."""
        return value

    def write_rows(self, table, ids, rows):
        """A new table: ``table.at[ids].set(rows)`` (jax arrays are immutable), laid out as
        ``table`` under explicit mesh axes (where jax asks where a scatter's result goes)."""
        spec = _explicit_spec(table)
        if spec is None:
            return table.at[ids].set(rows)
        return table.at[ids].set(rows, out_sharding=jax.sharding.PartitionSpec(*spec))

    def matmul(self, a, b):
        """``a @ b``; under explicit mesh axes, where jax refuses to choose a layout, the operands
        are laid out first: a batch axis split in one operand and whole in the other is split
        alike in both (a local slice), and ``b``'s columns are gathered where they are split
        over the mesh axis of ``a``'s rows (the product keeps its rows split)."""
        a_spec, b_spec = _explicit_spec(a), _explicit_spec(b)
        if a_spec is None or b_spec is None or a.ndim != b.ndim or a.ndim < 2:
            return a @ b
        batch = tuple(x if y is None else y for x, y in zip(a_spec[:-2], b_spec[:-2]))
        columns = None if b_spec[-1] is not None and b_spec[-1] == a_spec[-2] else b_spec[-1]
        wanted = ((*batch, *a_spec[-2:]), (*batch, b_spec[-2], columns))
        a, b = (t if spec == want else jax.sharding.reshard(t, jax.sharding.PartitionSpec(*want))
                for t, spec, want in ((a, a_spec, wanted[0]), (b, b_spec, wanted[1])))
        return a @ b

    def checkpointed(self, function, args, prevent_cse=True, policy=None):
        """``jax.checkpoint``: the intermediates recomputed in the backward pass."""
        return jax.checkpoint(function, prevent_cse=prevent_cse, policy=policy)(*args)

    #: jax differentiates functions (``jax.vjp`` of a functional call), not recorded calls: no module
    #: backward hook could run.
    with_backward_hooks = None

    def stop_gradient(self, x):
        return jax.lax.stop_gradient(x)

    def conv_general_dilated(self, lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                             feature_group_count=1, bias=None):
        """``jax.lax.conv_general_dilated`` with flax's channels-last dimension numbers (the bias
        added after it, which XLA fuses under ``jit``)."""
        spatial = tuple(range(1, lhs.ndim - 1))
        lhs = _whole_where_windowed(lhs, (1, *rhs.shape[:-2], 1), (1, *window_strides, 1),
                                    ((0, 0), *padding, (0, 0)), (1, *lhs_dilation, 1))
        numbers = jax.lax.ConvDimensionNumbers(lhs_spec=(0, lhs.ndim - 1, *spatial),
                                               rhs_spec=(rhs.ndim - 1, rhs.ndim - 2, *range(rhs.ndim - 2)),
                                               out_spec=(0, lhs.ndim - 1, *spatial))
        y = jax.lax.conv_general_dilated(lhs, rhs, tuple(window_strides), tuple(map(tuple, padding)),
                                         tuple(lhs_dilation), tuple(rhs_dilation), numbers,
                                         feature_group_count=feature_group_count)
        return y if bias is None else y + bias

    def reduce_window(self, x, init, reduction, window_dimensions, window_strides, padding, window_dilation=None):
        x = _whole_where_windowed(x, window_dimensions, window_strides, padding)
        combine = {"max": jax.lax.max, "min": jax.lax.min, "sum": jax.lax.add}.get(reduction, reduction)
        # init as a NumPy scalar: lax recognises max/min/add windows (and differentiates them) only
        # with a concrete identity, which jnp.asarray inside a trace is not.
        init = jnp.asarray(init, dtype=x.dtype) if isinstance(init, jax.core.Tracer) else np.asarray(init, dtype=x.dtype)
        return jax.lax.reduce_window(x, init, combine, tuple(window_dimensions),
                                     tuple(window_strides), tuple(map(tuple, padding)),
                                     window_dilation=None if window_dilation is None else tuple(window_dilation))

    def mean_across(self, x, axis_name, axis_index_groups=None):
        return jax.lax.pmean(x, axis_name, axis_index_groups=axis_index_groups)

    def while_loop(self, cond, body, state):
        return jax.lax.while_loop(cond, body, state)

    def scan(self, f, init, xs, length=None, reverse=False, unroll=1):
        """``jax.lax.scan``; under explicit mesh axes, a sequence split over devices along the
        scanned axis is gathered along it first (scan takes one whole axis per step)."""
        def whole_steps(a):
            spec = _explicit_spec(a)
            if spec is None or not spec or spec[0] is None:
                return a
            return jax.sharding.reshard(a, jax.sharding.PartitionSpec(None, *spec[1:]))

        xs = jax.tree_util.tree_map(whole_steps, xs)
        return jax.lax.scan(f, init, xs, length=length, reverse=reverse, unroll=unroll)

    def placed_like(self, a, like, skip=0):
        """Under explicit mesh axes, ``a`` resharded (``jax.sharding.reshard``) so that each axis
        as long as its ``like`` axis is split as that one; ``a`` itself otherwise."""
        spec = _explicit_spec(like)
        if spec is None:
            return a
        wanted = tuple(spec[i + skip] if i + skip < like.ndim and a.shape[i] == like.shape[i + skip] else None
                       for i in range(a.ndim))
        if (_explicit_spec(a) or (None,) * a.ndim) == wanted:
            return a
        return jax.sharding.reshard(a, jax.sharding.PartitionSpec(*wanted))

    def dense(self, x, kernel, bias=None):
        """``x @ kernel + bias``; under explicit mesh axes with the contracted axis split, jax asks
        where the sum goes: it is laid out as ``x``'s leading axes and ``kernel``'s features."""
        x_spec, kernel_spec = _explicit_spec(x), _explicit_spec(kernel)
        if x_spec is None or kernel_spec is None or (x_spec[-1] is None and kernel_spec[0] is None):
            y = x @ kernel
        else:
            lead = tuple(entry for entry in x_spec[:-1])
            features = kernel_spec[1] if kernel_spec[1] not in lead else None
            y = jnp.matmul(x, kernel, out_sharding=jax.sharding.PartitionSpec(*lead, features))
        return y if bias is None else y + bias

    def take_rows(self, table, ids):
        """``jnp.take``; under explicit mesh axes, a gather laid out as the ids (jax cannot
        choose between the ids' layout and the table's on its own)."""
        spec = _explicit_spec(ids)
        if spec is None:
            return jnp.take(table, ids, axis=0)
        return table.at[ids].get(out_sharding=jax.sharding.PartitionSpec(spec[0], None))

    def to_host(self, x):
        import numpy

        return numpy.asarray(x)

    def from_host(self, host, device):
        """A copy of ``host`` made on the host first: jax's CPU client may take a NumPy buffer as
        it is and run the copy later (asynchronous dispatch), and ``host`` may be another
        library's memory that changes in place meanwhile (a torch module's power-method step
        right after its state_dict was loaded here was seen, about once in 300 loads)."""
        return super().from_host(np.array(host, copy=True), device)

    def to_device(self, x, device):
        """Traced values are placed by XLA; concrete ones move with ``device_put`` (to a device
        or a sharding)."""
        if device is None or isinstance(x, jax.core.Tracer) or x.devices() == {device} or (
                getattr(x, "sharding", None) == device):
            return x
        return jax.device_put(x, device)

    def fused_matrix_exp(self, a):
        """``jax.scipy.linalg.expm`` (Padé approximants with scaling and squaring; under
        ``jax.jit`` too, where the written-once series cannot read the norm that sets its squarings),
        for float32 and float64 (it refuses float16 and bfloat16: the written-once series runs)."""
        import jax.scipy.linalg

        return jax.scipy.linalg.expm(a) if a.dtype in (jnp.float32, jnp.float64) else None

    def devices_known(self):
        """The devices of every platform jax runs here (its namespace lists the default one's)."""
        devices = []
        for platform in ("cpu", "gpu", "tpu"):
            try:
                devices += jax.devices(platform)
            except RuntimeError:  # no such platform here
                continue
        return devices

    def device_kind(self, device):
        """A jax device by its platform ('gpu': 'cuda') and id; other devices by their text."""
        if isinstance(device, jax.Device):
            return "cuda" if device.platform == "gpu" else device.platform, device.id
        return super().device_kind(device)

    def values_at_hand(self, x):
        """A concrete array on the CPU (not a tracer, nor on an accelerator: reading waits for it)."""
        return not isinstance(x, jax.core.Tracer) and all(device.platform == "cpu" for device in x.devices())

    def device_of(self, x):
        """Where new arrays that meet ``x`` are made: ``x``'s device when it is committed to one;
        for an array sharded over a mesh, that mesh replicated (``NamedSharding(mesh, P())``:
        parameters and keys made for a sharded input are replicated, never pinned to one device
        nor given a sharding their shape cannot take); None (jax's default placement, which
        follows ``x``) for an uncommitted array or a traced value, which XLA places."""
        if isinstance(x, jax.core.Tracer) or not getattr(x, "committed", True):
            return None
        sharding = x.sharding
        if len(sharding.device_set) == 1:
            return next(iter(sharding.device_set))
        if isinstance(sharding, jax.sharding.NamedSharding):
            return jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
        return None

    def constrain_sharding(self, x, names, mesh):
        """``x`` laid out as ``PartitionSpec(*names)`` over ``mesh`` or the mesh of ``jax.set_mesh``
        (flax's ``Partitioned.unbox``): ``jax.lax.with_sharding_constraint``, or where every mesh
        axis is explicit (jax's default, where that constraint only asserts the layout, and flax's
        unbox fails) ``jax.sharding.reshard``; ``x`` itself outside any mesh."""
        in_effect = mesh if mesh is not None else jax.sharding.get_abstract_mesh()
        if in_effect.empty:
            return x
        spec = jax.sharding.PartitionSpec(*names)
        target = jax.sharding.NamedSharding(mesh, spec) if mesh is not None else spec
        if all(t == jax.sharding.AxisType.Explicit for t in in_effect.axis_types):
            return jax.sharding.reshard(x, target)
        return jax.lax.with_sharding_constraint(x, target)


ADAPTER = JaxAdapter


# -- the sharding vocabulary of xpnn.partitioning ----------------------------------------------


def partition_spec(entries: tuple) -> jax.sharding.PartitionSpec:
    return jax.sharding.PartitionSpec(*entries)


def named_sharding(mesh, spec: jax.sharding.PartitionSpec) -> jax.sharding.NamedSharding:
    return jax.sharding.NamedSharding(mesh, spec)


def is_partition_spec(x) -> bool:
    return isinstance(x, jax.sharding.PartitionSpec)


# The boxes are jax pytrees (their value the one child), as flax's: jax.grad, jax.jit and
# jax.eval_shape see through them and keep them.
jax.tree_util.register_dataclass(Partitioned, data_fields=["value"], meta_fields=["names", "mesh"])
jax.tree_util.register_dataclass(LogicallyPartitioned, data_fields=["value"], meta_fields=["names", "mesh", "rules"])

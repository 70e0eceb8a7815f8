"""Parameter initializers, ``jax.nn.initializers`` (and ``flax.linen.initializers``) on every backend.

A builder returns an initializer ``init(key, shape, dtype=<builder dtype>)``;
the values are made by ``xpnn.random`` in the key's library and on its
device, so with the same key they equal jax's: bit for bit for the
uniform-based initializers, to a few float32 ulp for the normal-based ones
(see ``xpnn.random.normal``).  ``dtype`` None means float32.

Fans follow jax's ``_compute_fans``: ``in_axis`` and ``out_axis`` (ints or
sequences) pick the input and output sizes, ``batch_axis`` the batch, and
every other axis is receptive field, so a conv kernel HWIO ``(3, 3, 4, 8)``
has fans (36, 72).
"""
from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

from xpnn import random
from xpnn._checks import device_of, dtype_argument, dtype_name, shape_argument
from xpnn._dispatch import adapter_of
from xpnn._types import Array

__all__ = [
    "Initializer", "zeros", "ones", "zeros_init", "ones_init", "constant", "uniform", "normal",
    "truncated_normal", "variance_scaling", "glorot_uniform", "glorot_normal", "xavier_uniform",
    "xavier_normal", "lecun_uniform", "lecun_normal", "he_uniform", "he_normal", "kaiming_uniform",
    "kaiming_normal", "orthogonal", "delta_orthogonal",
]

Initializer = Callable[..., Array]
Axes = int | Sequence[int]

_MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
_DISTRIBUTIONS = ("truncated_normal", "normal", "uniform")
#: Standard deviation of N(0, 1) truncated to (-2, 2).
_TRUNCATED_STDDEV = 0.87962566103423978


class BuiltInitializer:
    """An initializer a builder made: called as ``init(key, shape, dtype=<builder dtype>)``,
    printed as the builder call that made it (``lecun_normal()``, ``normal(stddev=0.5)``), equal
    to another made by the same call, and pickled as that call (the arguments, not the code)."""

    def __init__(self, function: Callable[..., Array], builder: str, arguments: dict[str, Any],
                 defaults: dict[str, Any]) -> None:
        self._function, self._builder, self._arguments, self._defaults = function, builder, arguments, defaults
        self.__name__ = builder

    def __call__(self, key: Any, shape: Sequence[int], *args: Any, **kwargs: Any) -> Array:
        return self._function(key, shape, *args, **kwargs)

    def __repr__(self) -> str:
        given = ", ".join(f"{name}={value!r}" for name, value in self._arguments.items()
                          if name not in self._defaults or self._defaults[name] != value)
        return f"{self._builder}({given})"

    def _key(self) -> tuple:
        return self._builder, tuple(sorted((k, repr(v)) for k, v in self._arguments.items()))

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, BuiltInitializer) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self) -> tuple:
        return _rebuilt, (self._builder, self._arguments)


def _rebuilt(builder: str, arguments: dict[str, Any]) -> BuiltInitializer:
    return globals()[builder](**arguments)


def _builder(function: Callable[..., Callable[..., Array]]) -> Callable[..., BuiltInitializer]:
    """``function``, a builder, returning its initializer as a ``BuiltInitializer``."""
    signature = inspect.signature(function)
    defaults = {name: p.default for name, p in signature.parameters.items() if p.default is not p.empty}

    @functools.wraps(function)
    def build(*args: Any, **kwargs: Any) -> BuiltInitializer:
        arguments = dict(signature.bind(*args, **kwargs).arguments)
        return BuiltInitializer(function(*args, **kwargs), function.__name__, arguments, defaults)

    return build


def _library(key: Any, function: str):
    """The adapter and device of ``key`` (NumPy's when ``key`` is None: zeros and ones ignore it)."""
    if key is None:
        return adapter_of(), None
    adapter, words = random._key_words(key, function)
    return adapter, device_of(words)


def _float_dtype(adapter: Any, dtype: Any, function: str) -> Any:
    return dtype_argument(adapter, dtype, "real floating", "float32", function)


def _call(key: Any, shape: Sequence[int], dtype: Any, function: str) -> tuple[Any, Any, tuple[int, ...], Any]:
    """An initializer call's checked arguments: ``(adapter, device, shape, float dtype)``."""
    adapter, device = _library(key, function)
    return adapter, device, shape_argument(shape, function), _float_dtype(adapter, dtype, function)


#: Significand bits (with the implicit one) of the floating dtypes.
_SIGNIFICAND_BITS = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}


def _round_significand(value: float, bits: int) -> float:
    """``value`` rounded to ``bits`` significant bits, ties to even (normal numbers)."""
    mantissa, exponent = math.frexp(value)
    return math.ldexp(round(math.ldexp(mantissa, bits)), exponent - bits)


def _filled(value: Any, builder_dtype: Any, name: str) -> Initializer:
    def init(key: Any, shape: Sequence[int], dtype: Any = builder_dtype) -> Array:
        adapter, device = _library(key, name)
        shape = shape_argument(shape, name)
        kind = "numeric" if isinstance(value, (int, float)) and dtype is not None else "real floating"
        resolved = dtype_argument(adapter, dtype, kind, "float32", name)
        return adapter.xp.full(shape, value, dtype=resolved, device=device)

    init.__name__ = name
    return init


def zeros(key: Any, shape: Sequence[int], dtype: Any = None) -> Array:
    """All zeros, ``jax.nn.initializers.zeros``; the key only chooses the library and device."""
    return _filled(0, None, "zeros")(key, shape, dtype)


def ones(key: Any, shape: Sequence[int], dtype: Any = None) -> Array:
    """All ones, ``jax.nn.initializers.ones``; the key only chooses the library and device."""
    return _filled(1, None, "ones")(key, shape, dtype)


@_builder
def zeros_init() -> Initializer:
    """flax.linen's builder form of ``zeros``."""
    return zeros


@_builder
def ones_init() -> Initializer:
    """flax.linen's builder form of ``ones``."""
    return ones


@_builder
def constant(value: float, dtype: Any = None) -> Initializer:
    """``full(shape, value, dtype)``; an integer dtype keeps integer values (``constant(3, int32)``)."""
    return _filled(value, dtype, "constant")


def _scaled_draw(draw: Callable[..., Array], factor: float, builder_dtype: Any, name: str) -> Initializer:
    """``draw(key, shape, dtype) * array(factor, dtype)``: the form of jax's uniform/normal/truncated_normal."""
    def init(key: Any, shape: Sequence[int], dtype: Any = builder_dtype) -> Array:
        adapter, device = _library(key, name)
        dtype = _float_dtype(adapter, dtype, name)
        return adapter.array_result(draw(key, shape, dtype) * adapter.xp.asarray(factor, dtype=dtype, device=device))

    init.__name__ = name
    return init


@_builder
def uniform(scale: float = 1e-2, dtype: Any = None) -> Initializer:
    """``uniform(key, shape) * scale``: values in ``[0, scale)`` (not symmetric), as jax."""
    return _scaled_draw(lambda key, shape, dtype: random.uniform(key, shape, dtype), scale, dtype, "uniform")


@_builder
def normal(stddev: float = 1e-2, dtype: Any = None) -> Initializer:
    """``normal(key, shape) * stddev``."""
    return _scaled_draw(lambda key, shape, dtype: random.normal(key, shape, dtype), stddev, dtype, "normal")


@_builder
def truncated_normal(stddev: float = 1e-2, dtype: Any = None, lower: float = -2.0, upper: float = 2.0) -> Initializer:
    """``truncated_normal(key, lower, upper, shape) * stddev``; the actual std is below ``stddev``
    (0.88 * stddev for the default bounds): jax applies no correction here."""
    return _scaled_draw(
        lambda key, shape, dtype: random.truncated_normal(key, lower, upper, shape, dtype),
        stddev, dtype, "truncated_normal",
    )


def compute_fans(
    shape: Sequence[int], in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = ()
) -> tuple[float, float]:
    """``(fan_in, fan_out)`` of a weight ``shape``, jax's ``_compute_fans``.

    ``fan_in = in_size * receptive``, ``fan_out = out_size * receptive`` with
    ``receptive = prod(shape) / in_size / out_size / batch_size``.
    """
    shape = tuple(shape)
    if isinstance(in_axis, int) and in_axis == -2 and len(shape) <= 1:
        raise ValueError(
            f"variance_scaling: can't compute input and output sizes of a {len(shape)}-dimensional "
            "weights tensor with the default in_axis=-2; give a shape of at least 2 dimensions or in_axis"
        )

    def size(axes: Axes, argument: str) -> int:
        axes = (axes,) if isinstance(axes, int) else tuple(axes)
        for axis in axes:
            if not -len(shape) <= axis < len(shape):
                raise ValueError(f"variance_scaling: {argument}={axis} is out of range for shape {shape}")
        return math.prod(shape[axis] for axis in axes)

    in_size, out_size, batch_size = size(in_axis, "in_axis"), size(out_axis, "out_axis"), size(batch_axis, "batch_axis")
    if 0 in (in_size, out_size, batch_size):
        raise ValueError(
            f"variance_scaling: shape {shape} has a fan of 0 (in_size={in_size}, out_size={out_size}, "
            f"batch_size={batch_size}); the variance would be infinite"
        )
    receptive = math.prod(shape) / in_size / out_size / batch_size
    return in_size * receptive, out_size * receptive


@_builder
def variance_scaling(
    scale: float, mode: str, distribution: str, in_axis: Axes = -2, out_axis: Axes = -1,
    batch_axis: Axes = (), dtype: Any = None,
) -> Initializer:
    """Samples with variance ``scale / n`` (``jax.nn.initializers.variance_scaling``).

    ``n`` is ``fan_in``, ``fan_out``, their mean (``fan_avg``) or geometric
    mean (``fan_geo_avg``).  ``variance = array(scale / n, dtype)``; then

    * ``truncated_normal``: ``truncated_normal(key, -2, 2) * (sqrt(variance) / 0.8796...)``,
      0.8796 being the std of N(0, 1) truncated to (-2, 2), so the std is ``sqrt(variance)``;
    * ``normal``: ``normal(key) * sqrt(variance)``;
    * ``uniform``: ``uniform(key, minval=-1) * sqrt(3 * variance)``.
    """
    if mode not in _MODES:
        raise ValueError(f"variance_scaling: invalid mode {mode!r}; expected one of {', '.join(_MODES)}")
    if not scale >= 0:  # NaN too: jax's initializer returns NaN everywhere
        raise ValueError(f"variance_scaling: scale must be >= 0 (a variance), got {scale!r}")
    if distribution not in _DISTRIBUTIONS:
        raise ValueError(
            f"variance_scaling: invalid distribution {distribution!r}; expected one of {', '.join(_DISTRIBUTIONS)}"
        )
    builder_dtype = dtype

    def init(key: Any, shape: Sequence[int], dtype: Any = builder_dtype) -> Array:
        adapter, device, shape, dtype = _call(key, shape, dtype, "variance_scaling")
        xp = adapter.xp
        fan_in, fan_out = compute_fans(shape, in_axis, out_axis, batch_axis)
        denominator = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2,
                       "fan_geo_avg": (fan_in * fan_out) ** 0.5}[mode]
        bits = _SIGNIFICAND_BITS[dtype_name(dtype)]

        def rounded(value: float) -> float:
            return _round_significand(value, bits)

        # The scale factors are jax's dtype-rounded scalar steps, done in Python (so also while
        # tracing): a float64 sqrt or quotient rounded once to a narrower float is correctly
        # rounded, while some libraries' own float32 sqrt is not (torch's CPU sqrt can be 1 ulp off).
        variance = rounded(scale / denominator)
        if distribution == "truncated_normal":
            factor, draw = rounded(rounded(math.sqrt(variance)) / rounded(_TRUNCATED_STDDEV)), random.truncated_normal(key, -2.0, 2.0, shape, dtype)
        elif distribution == "normal":
            factor, draw = rounded(math.sqrt(variance)), random.normal(key, shape, dtype)
        else:
            factor, draw = rounded(math.sqrt(rounded(3 * variance))), random.uniform(key, shape, dtype, -1.0)
        return draw * xp.asarray(factor, dtype=dtype, device=device)

    init.__name__ = f"variance_scaling_{mode}_{distribution}"
    return init


def _variance_scaling_family(scale: float, mode: str, distribution: str, name: str, reference: str):
    def builder(in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = (), dtype: Any = None) -> Initializer:
        return variance_scaling(scale, mode, distribution, in_axis, out_axis, batch_axis, dtype)._function

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"``variance_scaling({scale}, {mode!r}, {distribution!r})``: {reference}."
    return _builder(builder)


glorot_uniform = xavier_uniform = _variance_scaling_family(1.0, "fan_avg", "uniform", "glorot_uniform", "Glorot & Bengio (2010)")
glorot_normal = xavier_normal = _variance_scaling_family(1.0, "fan_avg", "truncated_normal", "glorot_normal", "Glorot & Bengio (2010)")
lecun_uniform = _variance_scaling_family(1.0, "fan_in", "uniform", "lecun_uniform", "LeCun et al. (1998)")
lecun_normal = _variance_scaling_family(
    1.0, "fan_in", "truncated_normal", "lecun_normal", "LeCun et al. (1998); flax's default kernel_init")
he_uniform = kaiming_uniform = _variance_scaling_family(2.0, "fan_in", "uniform", "he_uniform", "He et al. (2015)")
he_normal = kaiming_normal = _variance_scaling_family(2.0, "fan_in", "truncated_normal", "he_normal", "He et al. (2015)")


def _orthonormal(adapter: Any, key: Any, n: int, m: int, dtype: Any) -> Array:
    """jax.random.orthogonal: an ``(n, m)`` matrix with orthonormal rows or columns.

    ``z = normal(key, (max(n, m), min(n, m)))``, ``q, r = qr(z)`` (reduced),
    ``q * sign(diag(r))`` per column (which makes the result unique), and the
    transpose when ``n < m``.  No library's QR takes 16-bit floats (jax's raises): for them
    ``z`` is drawn in that dtype, as jax would draw it, and decomposed in float32, the result
    rounded to the dtype.
    """
    xp = adapter.xp
    z = random.normal(key, (max(n, m), min(n, m)), dtype)
    half = xp.finfo(z.dtype).bits < 32
    q = orthonormal_columns(adapter, xp.astype(z, xp.float32) if half else z)
    q = xp.astype(q, z.dtype) if half else q
    return q.T if n < m else q


def orthonormal_columns(adapter: Any, a: Array) -> Array:
    """Q of the reduced QR decomposition of the tall matrix ``a`` (the ``qr`` primitive), each
    column's sign chosen so that R's diagonal is positive, which makes Q unique."""
    xp = adapter.xp
    q, r = adapter.qr(a)
    diagonal = xp.sum(r * xp.eye(r.shape[0], dtype=r.dtype, device=device_of(r)), axis=0)
    return q * xp.sign(diagonal)[None, :]


@_builder
def orthogonal(scale: float = 1.0, column_axis: int = -1, dtype: Any = None) -> Initializer:
    """A (scaled) matrix with orthonormal rows or columns (``jax.nn.initializers.orthogonal``, Saxe et al. 2014).

    The shape is read as ``prod(other axes)`` rows by ``shape[column_axis]``
    columns.  The QR decomposition is the library's (``linalg.qr``) or
    xpnn's standard-only one, so the values equal jax's to rounding, not bit
    for bit.
    """
    builder_dtype = dtype

    def init(key: Any, shape: Sequence[int], dtype: Any = builder_dtype) -> Array:
        adapter, device, shape, dtype = _call(key, shape, dtype, "orthogonal")
        xp = adapter.xp
        if len(shape) < 2:
            raise ValueError(f"orthogonal: the shape must have at least 2 dimensions, got {shape}")
        if not -len(shape) <= column_axis < len(shape):
            raise ValueError(f"orthogonal: column_axis={column_axis} is out of range for shape {shape}")
        if 0 in shape:
            return xp.zeros(shape, dtype=dtype, device=device)
        columns = shape[column_axis]
        rows = math.prod(shape) // columns
        q = _orthonormal(adapter, key, rows, columns, dtype)
        other = tuple(s for i, s in enumerate(shape) if i != column_axis % len(shape))
        q = xp.moveaxis(xp.reshape(q, (*other, columns)), -1, column_axis)
        return xp.asarray(scale, dtype=dtype, device=device) * q

    init.__name__ = "orthogonal"
    return init


@_builder
def delta_orthogonal(scale: float = 1.0, column_axis: int = -1, dtype: Any = None) -> Initializer:
    """A conv kernel that is zero except its centre tap, an orthogonal matrix
    (``jax.nn.initializers.delta_orthogonal``, Xiao et al. 2018).

    The shape is 3-, 4- or 5-D with ``shape[-1] >= shape[-2]``; the centre of
    an even size ``k`` is ``(k - 1) // 2``.  The same key gives the centre
    ``orthogonal(scale, column_axis)(key, shape[-2:])``.
    """
    builder_dtype = dtype

    def init(key: Any, shape: Sequence[int], dtype: Any = builder_dtype) -> Array:
        adapter, device, shape, dtype = _call(key, shape, dtype, "delta_orthogonal")
        xp = adapter.xp
        if len(shape) not in (3, 4, 5):
            raise ValueError(f"delta_orthogonal: the shape must be 3-, 4- or 5-D, got {shape}")
        if shape[-1] < shape[-2]:
            raise ValueError(
                f"delta_orthogonal: fan_in (shape[-2]={shape[-2]}) must be <= fan_out (shape[-1]={shape[-1]})"
            )
        centre = orthogonal(scale, column_axis, dtype)(key, shape[-2:])
        taps = shape[:-2]
        # A one-hot mask over the taps, broadcast against the centre matrix: standard-only, no item assignment.
        index = 0
        for size in taps:
            index = index * size + (size - 1) // 2
        mask = xp.reshape(xp.arange(math.prod(taps), device=device) == index, (*taps, 1, 1))
        return xp.where(mask, centre, xp.zeros_like(centre))

    init.__name__ = "delta_orthogonal"
    return init

"""``torch.nn.init`` for the arrays of any library: the initialisers a torch model's
``reset_parameters`` calls (``init.kaiming_uniform_(self.weight, a=math.sqrt(5))``,
``init.zeros_(self.bias)``, ...), with torch's names, arguments, defaults, fans and gains.

Each fills its ``tensor`` in place and returns it, outside autograd (a torch parameter that
requires grad is filled as under ``torch.no_grad()``).  jax arrays cannot be written: there the
new array is returned and put in the tensor's place in every ``xpnn.torch_nn`` module that holds
it, so ``init.zeros_(self.bias)`` in a module's ``__init__`` works on jax too.

The draws come from ``xpnn.random`` (threefry), with the keys of ``xpnn.torch_nn.manual_seed``'s
generator or a ``key=`` of the call: the distributions are torch's, the numbers are not torch's
Mersenne twister's, and the same seed gives the same numbers on every backend.  A
``torch.Generator`` cannot drive them: ``generator`` must be None.  ``Factory`` draws the arrays
the modules are built with from the same distributions.
"""
from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import Any

from xpnn import initializers, random
from xpnn._checks import dtype_argument, library_of
from xpnn._dispatch import adapter_of, is_array
from xpnn._types import Array
from xpnn.torch_nn._generator import next_key
from xpnn.torch_nn.module import Buffer, Parameter, fill_in_place
from xpnn.trees import to_backend

__all__ = ["calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
           "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_",
           "uniform", "normal", "constant", "eye", "dirac", "xavier_uniform", "xavier_normal", "kaiming_uniform",
           "kaiming_normal", "orthogonal", "sparse"]

_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
           "sigmoid")


def _where(name: str) -> str:
    return f"xpnn.torch_nn.init.{name}"


def _fills(initialiser: Callable[..., Array]) -> Callable[..., Any]:
    """``initialiser`` also taking a ``Parameter`` or ``Buffer`` not yet assigned to a module
    (``p = nn.Parameter(np.empty(3)); init.normal_(p)``): its array is filled and it is returned."""
    @functools.wraps(initialiser)
    def fill(tensor: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(tensor, (Parameter, Buffer)):
            tensor.data = initialiser(tensor.data, *args, **kwargs)
            return tensor
        if not is_array(tensor):
            raise TypeError(f"{_where(initialiser.__name__)}: tensor must be an array (or a Parameter), got "
                            f"{type(tensor).__name__}")
        return initialiser(tensor, *args, **kwargs)

    return fill


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (``torch.nn.init.calculate_gain``): 1 for linear,
    conv and sigmoid, 5/3 for tanh, sqrt(2) for relu, sqrt(2 / (1 + negative_slope^2)) for
    leaky_relu (``param``, 0.01 by default), 3/4 for selu."""
    return _gain(nonlinearity, param, "calculate_gain")


def _gain(nonlinearity: str, param: float | None, name: str) -> float:
    if nonlinearity in _LINEAR:
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"{_where(name)}: the negative slope of leaky_relu must be a number, got {param!r}")
        return math.sqrt(2.0 / (1.0 + slope * slope))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"{_where(name)}: nonlinearity must be one of {', '.join(_LINEAR)}, tanh, relu, leaky_relu, "
                     f"selu; got {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor: Array, name: str = "_calculate_fan_in_and_fan_out") -> tuple[int, int]:
    """torch's fans of a weight ``(out, in, *kernel)``: ``in * prod(kernel)`` and ``out * prod(kernel)``."""
    if tensor.ndim < 2:
        raise ValueError(f"{_where(name)}: fan in and fan out need a tensor of at least 2 dimensions, got shape "
                         f"{tuple(tensor.shape)}")
    receptive_field = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


def _calculate_correct_fan(tensor: Array, mode: str, name: str = "_calculate_correct_fan") -> int:
    mode = mode.lower() if isinstance(mode, str) else mode
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{_where(name)}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    return _calculate_fan_in_and_fan_out(tensor, name)[0 if mode == "fan_in" else 1]


def _kaiming_bound(gain: float, fan: int) -> float:
    """gain * sqrt(3 / fan): the bound of He uniform draws (0 for no fan)."""
    return gain * math.sqrt(3.0 / fan) if fan else 0.0


def fan_in_bound(fan_in: int) -> float:
    """1 / sqrt(fan_in): the bound of the Linear and convolution biases (0 for no fan)."""
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0


def _xavier_bound(fan_in: int, fan_out: int, gain: float = 1.0) -> float:
    """gain * sqrt(6 / (fan_in + fan_out)): the bound of Glorot uniform draws."""
    return gain * math.sqrt(6.0 / (fan_in + fan_out))


def _key(tensor: Array, key: Array | None, generator: Any, name: str) -> Array:
    if generator is not None:
        raise TypeError(f"{_where(name)}: generator must be None (a torch.Generator cannot drive xpnn.random's "
                        f"draws): pass key=xpnn.random.key(seed), or seed xpnn.torch_nn.manual_seed(seed); got "
                        f"{type(generator).__name__}")
    return next_key(tensor) if key is None else to_backend(key, tensor)


def _floating(tensor: Array, name: str) -> Any:
    xp = adapter_of(tensor).xp
    if not xp.isdtype(tensor.dtype, "real floating"):
        raise TypeError(f"{_where(name)}: random values need a real floating tensor, got dtype {tensor.dtype}")
    return tensor.dtype


def _uniform(tensor: Array, low: float, high: float, key: Array | None, generator: Any, name: str) -> Array:
    dtype = _floating(tensor, name)
    draws = random.uniform(_key(tensor, key, generator, name), tuple(tensor.shape), dtype, low, high)
    return fill_in_place(tensor, draws)


def _normal(tensor: Array, mean: float, std: float, key: Array | None, generator: Any, name: str) -> Array:
    if std < 0:
        raise ValueError(f"{_where(name)}: std must be at least 0, got {std}")
    dtype = _floating(tensor, name)
    draws = random.normal(_key(tensor, key, generator, name), tuple(tensor.shape), dtype)
    return fill_in_place(tensor, draws * std + mean)


@_fills
def uniform_(tensor: Array, a: float = 0.0, b: float = 1.0, generator: Any = None, *,
             key: Array | None = None) -> Array:
    """Fill ``tensor`` from U(a, b) (``torch.nn.init.uniform_``)."""
    if a > b:
        raise ValueError(f"{_where('uniform_')}: a must not exceed b, got a={a}, b={b}")
    return _uniform(tensor, a, b, key, generator, "uniform_")


@_fills
def normal_(tensor: Array, mean: float = 0.0, std: float = 1.0, generator: Any = None, *,
            key: Array | None = None) -> Array:
    """Fill ``tensor`` from N(mean, std^2) (``torch.nn.init.normal_``)."""
    return _normal(tensor, mean, std, key, generator, "normal_")


@_fills
def trunc_normal_(tensor: Array, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                  generator: Any = None, *, key: Array | None = None) -> Array:
    """Fill ``tensor`` from N(mean, std^2) truncated to [a, b] (``torch.nn.init.trunc_normal_``;
    ``a`` and ``b`` are values, not multiples of ``std``): mean + std * z, z a standard normal
    truncated to [(a - mean) / std, (b - mean) / std] by the inverse CDF (``xpnn.random.
    truncated_normal``), so every draw is in bounds without torch's rejection loop."""
    name = "trunc_normal_"
    if not std > 0:
        raise ValueError(f"{_where(name)}: std must be positive, got {std}")
    if not a < b:
        raise ValueError(f"{_where(name)}: a must be below b, got a={a}, b={b}")
    if mean < a - 2 * std or mean > b + 2 * std:
        warnings.warn("mean is more than 2 std from [a, b] in nn.init.trunc_normal_. The distribution of values may "
                      "be incorrect.", stacklevel=3)
    dtype = _floating(tensor, name)
    xp = adapter_of(tensor).xp
    z = random.truncated_normal(_key(tensor, key, generator, name), (a - mean) / std, (b - mean) / std,
                                tuple(tensor.shape), dtype)
    return fill_in_place(tensor, xp.clip(z * std + mean, a, b))


@_fills
def constant_(tensor: Array, val: float) -> Array:
    """Fill ``tensor`` with ``val`` (``torch.nn.init.constant_``; cast as torch's ``fill_``: an
    integer tensor takes ``val`` truncated toward 0, a boolean one ``val != 0``)."""
    ops = adapter_of(tensor)
    if tensor.dtype == ops.xp.bool:
        val = bool(val)
    elif ops.xp.isdtype(tensor.dtype, "integral"):
        val = int(val)
    filled = ops.xp.full(tuple(tensor.shape), val, dtype=tensor.dtype, device=ops.device_of(tensor))
    return fill_in_place(tensor, filled)


@_fills
def ones_(tensor: Array) -> Array:
    """Fill ``tensor`` with 1 (``torch.nn.init.ones_``)."""
    return constant_(tensor, 1.0)


@_fills
def zeros_(tensor: Array) -> Array:
    """Fill ``tensor`` with 0 (``torch.nn.init.zeros_``)."""
    return constant_(tensor, 0.0)


def _indices(tensor: Array, axis: int) -> Array:
    """0, 1, ... along ``axis`` of ``tensor``, shaped to broadcast against it."""
    ops = adapter_of(tensor)
    index = ops.xp.arange(tensor.shape[axis], device=ops.device_of(tensor))
    return ops.xp.reshape(index, tuple(-1 if i == axis else 1 for i in range(tensor.ndim)))


@_fills
def eye_(tensor: Array) -> Array:
    """Fill the 2-D ``tensor`` with the identity: ones on the main diagonal (``torch.nn.init.eye_``)."""
    if tensor.ndim != 2:
        raise ValueError(f"{_where('eye_')}: tensor must have 2 dimensions, got shape {tuple(tensor.shape)}")
    rows, columns = _indices(tensor, 0), _indices(tensor, 1)  # not xp.eye: dask's is wrong for n != m
    return fill_in_place(tensor, adapter_of(tensor).xp.astype(rows == columns, tensor.dtype))


@_fills
def dirac_(tensor: Array, groups: int = 1) -> Array:
    """Fill the 3-, 4- or 5-D conv weight ``(out, in, *kernel)`` with the Dirac delta
    (``torch.nn.init.dirac_``): 1 at ``[g * out/groups + d, d, k // 2 ...]`` for each group ``g``
    and ``d < min(out/groups, in)``, 0 elsewhere, so the convolution passes its input through."""
    shape = tuple(tensor.shape)
    if len(shape) not in (3, 4, 5):
        raise ValueError(f"{_where('dirac_')}: tensor must have 3, 4 or 5 dimensions, got shape {shape}")
    if not isinstance(groups, int) or groups < 1 or shape[0] % groups:
        raise ValueError(f"{_where('dirac_')}: groups must be a positive divisor of dim 0 ({shape[0]}), got {groups!r}")
    per_group = shape[0] // groups
    member = _indices(tensor, 0) % per_group
    delta = (member == _indices(tensor, 1)) & (member < min(per_group, shape[1]))
    for axis in range(2, len(shape)):
        delta = delta & (_indices(tensor, axis) == shape[axis] // 2)
    return fill_in_place(tensor, adapter_of(tensor).xp.astype(delta, tensor.dtype))


@_fills
def xavier_uniform_(tensor: Array, gain: float = 1.0, generator: Any = None, *, key: Array | None = None) -> Array:
    """Glorot uniform (``torch.nn.init.xavier_uniform_``): U(-a, a),
    a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor, "xavier_uniform_")
    if fan_in + fan_out == 0:  # no elements
        return tensor
    bound = _xavier_bound(fan_in, fan_out, gain)
    return _uniform(tensor, -bound, bound, key, generator, "xavier_uniform_")


@_fills
def xavier_normal_(tensor: Array, gain: float = 1.0, generator: Any = None, *, key: Array | None = None) -> Array:
    """Glorot normal (``torch.nn.init.xavier_normal_``): N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor, "xavier_normal_")
    if fan_in + fan_out == 0:  # no elements
        return tensor
    return _normal(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), key, generator, "xavier_normal_")


def _kaiming_gain_and_fan(tensor: Array, a: float, mode: str, nonlinearity: str,
                          name: str) -> tuple[float, int] | None:
    """The gain and fan of a Kaiming draw; None (with torch's warning) for an empty tensor."""
    if 0 in tuple(tensor.shape):
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=4)
        return None
    return _gain(nonlinearity, a, name), _calculate_correct_fan(tensor, mode, name)


@_fills
def kaiming_uniform_(tensor: Array, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     generator: Any = None, *, key: Array | None = None) -> Array:
    """He uniform (``torch.nn.init.kaiming_uniform_``): U(-bound, bound),
    bound = gain * sqrt(3 / fan), gain = calculate_gain(nonlinearity, a), fan by ``mode``
    (a Linear's default: a = sqrt(5), bound = 1 / sqrt(fan_in))."""
    gain_and_fan = _kaiming_gain_and_fan(tensor, a, mode, nonlinearity, "kaiming_uniform_")
    if gain_and_fan is None:
        return tensor
    bound = _kaiming_bound(*gain_and_fan)
    return _uniform(tensor, -bound, bound, key, generator, "kaiming_uniform_")


@_fills
def kaiming_normal_(tensor: Array, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    generator: Any = None, *, key: Array | None = None) -> Array:
    """He normal (``torch.nn.init.kaiming_normal_``): N(0, std^2), std = gain / sqrt(fan)."""
    gain_and_fan = _kaiming_gain_and_fan(tensor, a, mode, nonlinearity, "kaiming_normal_")
    if gain_and_fan is None:
        return tensor
    gain, fan = gain_and_fan
    return _normal(tensor, 0.0, gain / math.sqrt(fan), key, generator, "kaiming_normal_")


@_fills
def orthogonal_(tensor: Array, gain: float = 1, generator: Any = None, *, key: Array | None = None) -> Array:
    """A (semi-)orthogonal matrix times ``gain`` (``torch.nn.init.orthogonal_``, Saxe et al.
    2013): the tensor read as ``shape[0]`` rows of its other dims flattened has orthonormal
    rows (or columns, when it has more rows), from the QR of a normal draw with R's diagonal
    made positive (``xpnn.initializers.orthogonal`` with column_axis 0)."""
    name = "orthogonal_"
    if tensor.ndim < 2:
        raise ValueError(f"{_where(name)}: tensor must have at least 2 dimensions, got shape {tuple(tensor.shape)}")
    if 0 in tuple(tensor.shape):
        return tensor
    dtype = _floating(tensor, name)
    draw = initializers.orthogonal(scale=gain, column_axis=0)
    return fill_in_place(tensor, draw(_key(tensor, key, generator, name), tuple(tensor.shape), dtype))


@_fills
def sparse_(tensor: Array, sparsity: float, std: float = 0.01, generator: Any = None, *,
            key: Array | None = None) -> Array:
    """A sparse 2-D matrix (``torch.nn.init.sparse_``, Martens 2010): N(0, std^2) draws with
    ceil(sparsity * rows) of each column's entries, at random rows, set to 0."""
    name = "sparse_"
    if tensor.ndim != 2:
        raise ValueError(f"{_where(name)}: tensor must have 2 dimensions, got shape {tuple(tensor.shape)}")
    if not 0 <= sparsity <= 1:
        raise ValueError(f"{_where(name)}: sparsity must be between 0 and 1, got {sparsity}")
    dtype = _floating(tensor, name)
    xp = adapter_of(tensor).xp
    keys = random.split(_key(tensor, key, generator, name))
    values_key, rows_key = keys[0, ...], keys[1, ...]
    shape = tuple(tensor.shape)
    ranks = xp.argsort(xp.argsort(random.uniform(rows_key, shape), axis=0), axis=0)  # a random order per column
    values = random.normal(values_key, shape, dtype) * std
    return fill_in_place(tensor, xp.where(ranks < math.ceil(sparsity * shape[0]), xp.zeros_like(values), values))


# -- the arrays a module is built with ------------------------------------------------------------

class Factory:
    """Where a module's new arrays are made, from the distributions above: ``like``'s library and
    device, ``dtype`` (float32 by default) and the keys (``key``, split per draw, or the global
    generator)."""

    def __init__(self, like: Any = None, dtype: Any = None, key: Array | None = None) -> None:
        self.adapter, self.device = library_of(like)
        self.like = like
        # float32 unless given (torch's default), also on jax with x64 on
        self.dtype = dtype_argument(self.adapter, "float32" if dtype is None else dtype, "real floating", "float32",
                                    "xpnn.torch_nn")
        self._key = None if key is None else to_backend(key, self._namespace_like())

    def _namespace_like(self) -> Any:
        return self.like if self.like is not None else self.adapter.xp

    def key(self) -> Array:
        if self._key is None:
            return next_key(self._namespace_like())
        keys = random.split(self._key)
        self._key = keys[0, ...]
        return keys[1, ...]

    def uniform(self, shape: tuple[int, ...], bound: float) -> Array:
        """U(-bound, bound), as ``torch.nn.init.uniform_(t, -bound, bound)``."""
        return random.uniform(self.key(), shape, self.dtype, -bound, bound)

    def kaiming_uniform(self, shape: tuple[int, ...], fan_in: int, a: float = math.sqrt(5.0)) -> Array:
        """``torch.nn.init.kaiming_uniform_(t, a)``: U(-b, b), b = sqrt(2 / (1 + a^2)) sqrt(3 / fan_in)
        (with torch's default a = sqrt(5): 1 / sqrt(fan_in))."""
        return self.uniform(shape, _kaiming_bound(_gain("leaky_relu", a, "kaiming_uniform_"), fan_in))

    def fan_in_bias(self, shape: tuple[int, ...], fan_in: int) -> Array:
        """The bias of Linear and Conv layers: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        return self.uniform(shape, fan_in_bound(fan_in))

    def xavier_uniform(self, shape: tuple[int, int]) -> Array:
        """``torch.nn.init.xavier_uniform_``: U(-b, b), b = sqrt(6 / (fan_in + fan_out))."""
        return self.uniform(shape, _xavier_bound(shape[1], shape[0]))

    def normal(self, shape: tuple[int, ...]) -> Array:
        """N(0, 1), as ``torch.nn.init.normal_``."""
        return random.normal(self.key(), shape, self.dtype)

    def full(self, shape: tuple[int, ...], value: float) -> Array:
        return self.adapter.xp.full(shape, value, dtype=self.dtype, device=self.device)

    def integers(self, value: int) -> Array:
        """A 0-d int64 counter (``num_batches_tracked``); the library's default integer where it
        has no int64 in its current mode (jax without x64)."""
        xp = self.adapter.xp
        return xp.asarray(value, device=self.device)


def _deprecated(initialiser: Callable[..., Array]) -> Callable[..., Array]:
    """torch's deprecated alias without the trailing underscore, with its FutureWarning."""
    new_name = initialiser.__name__
    old_name = new_name[:-1]

    def deprecated(*args: Any, **kwargs: Any) -> Array:
        warnings.warn(f"`nn.init.{old_name}` is now deprecated in favor of `nn.init.{new_name}`.", FutureWarning,
                      stacklevel=2)
        return initialiser(*args, **kwargs)

    deprecated.__name__ = deprecated.__qualname__ = old_name
    deprecated.__doc__ = f"{old_name}(...): deprecated, as in torch; use ``{new_name}``."
    return deprecated


uniform = _deprecated(uniform_)
normal = _deprecated(normal_)
constant = _deprecated(constant_)
eye = _deprecated(eye_)
dirac = _deprecated(dirac_)
xavier_uniform = _deprecated(xavier_uniform_)
xavier_normal = _deprecated(xavier_normal_)
kaiming_uniform = _deprecated(kaiming_uniform_)
kaiming_normal = _deprecated(kaiming_normal_)
orthogonal = _deprecated(orthogonal_)
sparse = _deprecated(sparse_)

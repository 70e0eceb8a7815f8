"""The adapter base class: the contract between the written-once code and an array library."""
from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from typing import Any, Callable, ContextManager

import array_api_compat

from xpnn._types import Array, Namespace

from ._primitives import Primitives


#: A native implementation of a whole public function.  It takes the public
#: function's arguments, the first always an array of the adapter's library
#: (the dispatch routes nothing else to it), and returns its result, or
#: ``NotImplemented`` to hand the call to the written-once definition (e.g.
#: for a dtype or an argument it lacks).
FastPath = Callable[..., Any]

#: A device as torch names one: a kind and an optional index ('cpu', 'cuda:1').
_DEVICE_NAME = re.compile(r"([a-z_]+)(?::(\d+))?")


def valid_axis(axis: Any, ndim: int) -> bool:
    """Whether ``axis`` (int, tuple of ints or None) is in range for ``ndim``.

    Fast paths hand anything else to the written-once definition, which
    raises xpnn's error naming the function and the argument.
    """
    if type(axis) is int:  # the common call, decided without building a tuple
        return -ndim <= axis < ndim
    if axis is None:
        return ndim > 0
    axes = axis if isinstance(axis, tuple) else (axis,)
    return all(isinstance(a, int) and not isinstance(a, bool) and -ndim <= a < ndim for a in axes) and len(
        {a % ndim for a in axes}
    ) == len(axes)


def dtype_name(dtype: Any) -> str:
    """The standard name of a dtype of any library (``torch.float32``, ``np.float32``, ``jnp.bfloat16``...)."""
    if isinstance(dtype, str):
        return dtype
    name = getattr(dtype, "__name__", None) if isinstance(dtype, type) else getattr(dtype, "name", None)
    return name if isinstance(name, str) else str(dtype).rsplit(".", 1)[-1]


_INT_OR_FLOAT = frozenset((int, float))
_NO_CONTEXT = contextlib.nullcontext()


def is_number(value: Any) -> bool:
    """Whether ``value`` is a Python int or float (not a bool): a hyper-parameter a fast path can pass on.
    Fast paths ask on every call, so plain ints and floats are answered by one set lookup."""
    return type(value) in _INT_OR_FLOAT or (isinstance(value, (int, float)) and not isinstance(value, bool))


class Adapter(Primitives):
    """What one array library adds to the Array API standard, for xpnn.

    The contract, in sections (each method documents its part):

    * the primitives the written-once code may call (:class:`Primitives`,
      ``backends/_primitives.py``), standard-only until overridden;
    * native fast paths for whole public functions (:meth:`_fast_paths`,
      :meth:`compile`) and the hooks that check them where they run;
    * dtypes and array types the library takes;
    * moving arrays between host, devices and libraries;
    * random-number tuning for ``xpnn.random``.

    A library's adapter overrides what it has natively.  Adapters are created
    once per namespace and cached, so construction may import the library.
    """

    #: Short library name, as used by the test matrix and the reports.
    name = "generic"
    #: Public functions whose fast path calls a native kernel that may return a zero of the
    #: other sign than jax.nn (e.g. torch's ``relu(-0.0)`` is ``-0.0``, jax's ``+0.0``); equal
    #: values otherwise.  The conformance checks compare zero signs everywhere else.
    fast_path_zero_signs: frozenset[str] = frozenset()
    #: Whether ``take_rows`` raises IndexError for an id outside ``[0, rows)`` itself (torch's
    #: ``index_select``); elsewhere a caller that must refuse them checks the ids first.
    take_rows_refuses_out_of_range = False

    def __init__(self, xp: Namespace) -> None:
        self.xp = xp
        self.fast_paths: dict[str, FastPath] = self._fast_paths()
        #: Public functions whose fast path :meth:`compile` made from the written-once definition
        #: itself (the same operations): they need no kernel check.
        self.compiled_definitions: set[str] = set()

    def __repr__(self) -> str:
        return f"<xpnn adapter {self.name!r} for {getattr(self.xp, '__name__', self.xp)}>"

    def _fast_paths(self) -> dict[str, FastPath]:
        return {}

    def compile(self, definition: Any) -> FastPath | None:
        """A compiled version of a written-once definition (``xpnn._dispatch.Definition``), or None.

        Called once per definition without a native fast path; a library
        whose eager calls are slow (JAX) returns a cached compiled version of
        ``definition.bound(self)``, static in ``definition.static``.  An
        adapter that compiles the definition itself (the same operations)
        adds its name to :attr:`compiled_definitions`: it needs no kernel check.
        """
        return None

    # -- checking fast paths where they run (xpnn._kernel_check) -------------
    def kernel_devices(self, x: Array) -> dict[str, Any]:
        """The kinds of device whose kernels may run for arrays of ``x``'s type and dtype now,
        each with a device to probe: the dispatch caches a checked fast path by array type and
        dtype, so a library whose arrays of one type live on several kinds (torch's CPU and
        CUDA tensors) names every kind in use.  By default, ``x``'s device alone."""
        device = array_api_compat.device(x)
        return {str(device): device}

    def decline_on(self, fast: FastPath, kinds: frozenset[str]) -> FastPath | None:
        """``fast`` declining arrays on the device ``kinds`` where it disagreed with the
        written-once definition, or None to switch it off for the whole dtype (the default:
        every array of a type runs on one kind)."""
        return None

    def eagerly(self) -> ContextManager[Any]:
        """A context in which calls compute now, even inside a compiled trace (jax's
        ``ensure_compile_time_eval``): the kernel check runs there."""
        return _NO_CONTEXT

    def full_precision(self) -> ContextManager[Any]:
        """A context in which a float32 product is computed in float32, where the library's default
        on GPUs is TF32 (10-bit mantissas: torch's cuDNN convolutions and fused LSTM/GRU loops,
        jax's default matmul precision).  Outside it xpnn follows the library's settings, as
        its own layers do; the kernel check runs in it (it checks a kernel's arithmetic, not the
        precision the user chose), and so do the conformance suite's GPU columns.  Nothing by
        default."""
        return _NO_CONTEXT

    def quietly(self) -> ContextManager[Any]:
        """A context in which the library prints no floating-point warnings: the written-once
        definitions run in it (their formulas overflow on edge values by design, where jax.nn is
        silent).  Nothing by default."""
        return _NO_CONTEXT

    def on_new_device_kind(self, callback: Callable[[], None]) -> None:
        """Have ``callback`` called when the library starts a kind of device that was not in
        use (torch initialising CUDA), so fast paths are checked there too.  Nothing by default."""

    # -- dtypes and array types ----------------------------------------------------
    def check_array_type(self, array_type: type) -> None:
        """Raise ``TypeError`` for an array type of the library that xpnn cannot take (its
        operators mean something else); every type is taken by default."""

    def check_dtype(self, dtype: Any, where: str) -> None:
        """Raise ``TypeError`` for an array dtype the library's Array API functions cannot take
        (NumPy arrays of ml_dtypes' bfloat16); ``where`` names the public function or module.
        Called once per array type and dtype.  Every dtype is taken by default."""

    #: What to do with an array ``{argument}`` whose shape holds unknown sizes (None, or Dask's
    #: nan), which reshapes and pads cannot take: the end of the error a layer or function gives.
    unknown_sizes_hint = "give {argument} known sizes first"

    def dtype_named(self, name: str) -> Any:
        """The library's dtype called ``name`` ("float32", "bfloat16"...), or None."""
        return getattr(self.xp, name, None)

    def holds_dtype(self, dtype: Any, device: Any) -> bool:
        """Whether the library can hold ``dtype`` on ``device`` (jax without x64 has no float64)."""
        try:
            dtypes = self.xp.__array_namespace_info__().dtypes(device=device)
        except Exception:  # a library whose info lacks dtypes(): assume it holds every standard dtype
            return True
        return any(d == dtype for d in dtypes.values())

    def default_int(self, device: Any = None) -> Any:
        """The library's default integer dtype (int64; int32 for jax without x64)."""
        return self.xp.__array_namespace_info__().default_dtypes(device=device)["integral"]

    def default_float(self, device: Any = None) -> Any:
        """The library's default real floating dtype (float32 for torch and jax, float64 for numpy)."""
        return self.xp.__array_namespace_info__().default_dtypes(device=device)["real floating"]

    # -- moving arrays: host, device, library ---------------------------------------
    def array_result(self, out: Any) -> Any:
        """A written-once function's result ``out`` (an array or a tuple of them) as arrays of the
        library, for libraries whose functions give scalars for 0-d results."""
        return out

    def to_host(self, x: Array) -> Any:
        """``x`` as a NumPy array in host memory (the way arrays leave this library)."""
        import numpy

        return numpy.from_dlpack(x) if hasattr(x, "__dlpack__") else numpy.asarray(x)

    def from_host(self, host: Any, device: Any) -> Array:
        """A NumPy array copied into an array of this library on ``device`` (None: the default).

        It is a copy, so the source and the new array never share memory.
        """
        if device is None:
            return self.xp.asarray(host, copy=True)
        return self.xp.asarray(host, device=device, copy=True)

    def to_device(self, x: Array, device: Any) -> Array:
        """``x`` (an array of this library) on ``device``; ``x`` itself when it is there already."""
        if device is None:
            return x
        return x if array_api_compat.device(x) == device else self.xp.asarray(x, device=device)

    def devices_known(self) -> list[Any]:
        """This library's devices (its namespace's ``__array_namespace_info__().devices()``)."""
        info = getattr(self.xp, "__array_namespace_info__", None)
        return [] if info is None else [device for device in info().devices() if device is not None]

    def device_kind(self, device: Any) -> tuple[str, int | None] | None:
        """``(kind, index)`` of a device as torch names one, read from its text: 'cpu', 'cuda:1'
        (a string, a ``torch.device``, a jax device, NumPy's 'cpu'; jax's 'gpu' is 'cuda');
        None for a device whose text is no such name."""
        match = _DEVICE_NAME.fullmatch(str(device).strip().lower())
        if match is None:
            return None
        return "cuda" if match[1] == "gpu" else match[1], None if match[2] is None else int(match[2])

    def device_named(self, device: Any, function: str) -> Any:
        """This library's device for ``device``: one of its own, or one named as a torch user
        names devices (``'cpu'``, ``'cuda'``, ``'cuda:1'``, a ``torch.device``, another library's
        device) of the same kind and index (no index: the first of the kind); a ValueError
        naming ``function`` where the library has none such."""
        known = self.devices_known()
        for candidate in known:
            if type(candidate) is type(device) and candidate == device:
                return candidate
        wanted = self.device_kind(device)
        for candidate in known:
            kind = self.device_kind(candidate)
            if wanted is not None and kind is not None and kind[0] == wanted[0] and (
                    wanted[1] in (None, kind[1]) or (kind[1] is None and wanted[1] == 0)):
                return candidate
        raise ValueError(f"{function}: device must be a device of {self.name} (its devices: "
                         f"{', '.join(map(str, known))}), got {device!r}; arrays move to another library with "
                         f"like= (an array or a namespace of it)")

    def values_at_hand(self, x: Array) -> bool:
        """Whether ``x``'s values can be read now for a check of the input, at no more cost than
        a pass over them: not while tracing, not from a lazy graph, not across a device
        synchronisation (a data-dependent check runs only then; the default: yes)."""
        return True

    def device_of(self, x: Array) -> Any:
        """``x``'s device (array-api-compat's ``device``); None where it has none (a jax tracer)."""
        try:
            return array_api_compat.device(x)
        except Exception:  # noqa: BLE001 - a traced value has no device
            return None

    def constrain_sharding(self, x: Array, names: tuple, mesh: Any) -> Array:
        """``x`` laid out with axis ``i`` split over mesh axis ``names[i]`` (None: replicated), over
        ``mesh`` or the mesh in effect: ``xpnn.Partitioned``'s unbox.  ``x`` itself by default, for
        a library without meshes, where the names are metadata only."""
        return x

    # -- random-number tuning (xpnn.random) -------------------------------------------
    def random_chunk(self, device: Any) -> int | None:
        """Counters per slice when xpnn.random runs the cipher eagerly on ``device``: slices
        that fit in cache make the ~150 elementwise passes of Threefry several times faster
        on a CPU.  None (the default, and right for GPUs) runs one whole-array pass per step."""
        return None

    def map_slices(self, function: Callable[[int], Any], starts: Iterable[int]) -> list[Any]:
        """``[function(start) for start in starts]``: the slices of an eager random draw.

        The slices are independent; an adapter may run them concurrently.
        """
        return [function(start) for start in starts]

    def random_default_dtype(self, name: str) -> str:
        """The dtype that xpnn.random and the initializers use when none is given, for the
        32-bit default ``name`` ("float32", "int32", "uint32"): ``name`` itself by default."""
        return name

    def key_data(self, key: Array) -> Array:
        """A random key as its raw ``(2,)`` integer array (unwraps a library's typed keys)."""
        return key

    @property
    def random_word_dtype(self) -> Any:
        """The integer dtype that holds xpnn.random's 32-bit words: uint32 where
        the library has unsigned 32-bit arithmetic (see ``xpnn._threefry``)."""
        return self.xp.uint32


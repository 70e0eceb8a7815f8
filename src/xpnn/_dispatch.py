"""Namespace resolution and fast-path dispatch for the written-once code.

Rule 1 of the design: a public function finds its namespace from its array
arguments, computes only with it and returns arrays of the same library on
the same device.  Resolution is cached by array type, so after the first call
with a given type it costs one dict lookup.

Rule 3: an adapter may register a native fast path for a whole public
function.  ``public`` routes a call to it when fast paths are on and the
call's other arguments are plain values or arrays of the same type; the fast
path may still return ``NotImplemented`` to hand the call to the written-once
definition.  The first call for an array type and dtype checks the fast path on
this machine against the written-once definition (``xpnn._kernel_check``) and
caches the outcome.  ``set_fast_paths`` and ``fast_paths`` switch fast
paths off, so the written-once definition can always be run and compared.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import threading
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Concatenate, ParamSpec, TypeVar

import array_api_compat
import numpy as np

from xpnn import _kernel_check
from xpnn._errors import _Unnamed, named
from xpnn._types import Array, Namespace
from xpnn.backends import Adapter, FastPath, adapter_for_namespace
F = TypeVar("F", bound=Callable[..., Any])
#: A public function's parameters and result: its definition's, without ``ops``.
P = ParamSpec("P")
R = TypeVar("R")

_ADAPTER_BY_TYPE: dict[type, Adapter] = {}
#: Values that are never arrays: they never decide the namespace.
_PLAIN_TYPES = (int, float, bool, complex, str, tuple, type(None), slice)
_MISSING = object()
_NO_KEYWORDS: Mapping[str, Any] = types.MappingProxyType({})
#: Every public function's cache of checked fast paths by (array type, dtype), and the layer
#: kernels' answers, emptied when a new kind of device comes into use (torch's CUDA), so the next
#: call checks its kernels too.
_FAST_PATH_CACHES: list[dict[Any, Any]] = [_kernel_check.LAYER_KERNEL_ANSWERS]

# The fast-path switch: a process-wide setting (set_fast_paths) that a context
# (``with fast_paths(...)``, per thread and per asyncio task) may override.  ``_switches`` counts
# the overrides in force anywhere plus one while the global setting is off; while it is 0, a
# call reads no context variable.
_global_fast_paths = True
_context_fast_paths: contextvars.ContextVar[bool | None] = contextvars.ContextVar("xpnn_fast_paths", default=None)
_switches = 0
_switch_lock = threading.Lock()


def adapter_of_array(value: Any) -> Adapter:
    """The adapter for an array ``value``, cached by its type."""
    adapter = _ADAPTER_BY_TYPE.get(type(value))
    if adapter is None:
        try:
            xp = array_api_compat.array_namespace(value)
        except TypeError:
            raise TypeError(
                f"expected an array (numpy, cupy, jax, torch, dask or any Array API "
                f"library), got {type(value).__module__}.{type(value).__qualname__}"
            ) from None
        adapter = adapter_for_namespace(xp)
        adapter.check_array_type(type(value))
        if adapter not in _ADAPTER_BY_TYPE.values():  # once per adapter, not per array type
            adapter.on_new_device_kind(_forget_checked_fast_paths)
        _ADAPTER_BY_TYPE[type(value)] = adapter
    return adapter


def is_array(value: Any) -> bool:
    """Whether ``value`` is an array of an Array API library; a type seen before is known
    without asking array-api-compat."""
    return type(value) in _ADAPTER_BY_TYPE or array_api_compat.is_array_api_obj(value)


def _is_array_like_python(value: Any) -> bool:
    return isinstance(value, (list, int, float, bool))


def is_plain(value: Any) -> bool:
    """Whether ``value`` is an argument that names no library: None, a Python scalar, string,
    tuple, slice or list (the arguments ``adapter_of`` and ``two_libraries`` skip)."""
    return isinstance(value, _PLAIN_TYPES) or isinstance(value, list)


def adapter_of(*values: Any) -> Adapter:
    """The adapter of the arrays among ``values``; NumPy's when there are none.

    ``None``, Python scalars and lists are skipped.  Arrays of two libraries
    raise ``TypeError`` naming both.
    """
    found = None
    for value in values:
        adapter = _ADAPTER_BY_TYPE.get(type(value))  # an array type seen before: one lookup
        if adapter is None:
            if is_plain(value):
                continue
            adapter = adapter_of_array(value)
        if found is None:
            found = adapter
        elif adapter is not found:
            raise TypeError(
                f"arrays from two libraries in one call: {found.name} and {adapter.name}; "
                "convert them to one library first (e.g. xp.asarray)"
            )
    return found if found is not None else _numpy_adapter()


def two_libraries(arrays: Mapping[str, Any]) -> str | None:
    """What is wrong when the named arrays (None, Python scalars and lists skipped) belong to two
    libraries: the first two arguments of different libraries and how to convert the second, e.g.
    ``input and weight are arrays of two libraries (torch and numpy); convert weight with
    xpnn.to_backend(weight, like=input)``; None when they are of one library."""
    found: dict[Adapter, str] = {}
    for argument, value in arrays.items():
        if not is_plain(value):
            found.setdefault(adapter_of_array(value), argument)
    if len(found) < 2:
        return None
    (first, a), (second, b) = list(found.items())[:2]
    return (f"{a} and {b} are arrays of two libraries ({first.name} and {second.name}); convert "
            f"{b} with xpnn.to_backend({b}, like={a})")


def unknown_sizes(arrays: Mapping[str, Any]) -> str | None:
    """What is wrong when one of the named arrays has unknown sizes in its shape (None, or
    Dask's nan after a boolean selection): its name, shape and what to do
    (``Adapter.unknown_sizes_hint``); None when every size is known."""
    for argument, value in arrays.items():
        shape = getattr(value, "shape", ()) if is_array(value) else ()
        if any(size is None or size != size for size in shape):
            return (f"{argument} has unknown sizes, shape {tuple(shape)}, which this computation cannot "
                    f"reshape or pad; {adapter_of_array(value).unknown_sizes_hint.format(argument=argument)}")
    return None


@functools.cache
def _numpy_adapter() -> Adapter:
    return adapter_for_namespace(array_api_compat.array_namespace(np.empty(0)))


def as_array(xp: Namespace, value: Any, like: Array) -> Array:
    """``value`` (an array of ``xp``, a list or a scalar) as an array on ``like``'s device."""
    if isinstance(value, (list, int, float, bool)):
        return xp.asarray(value, device=adapter_of(like).device_of(like))
    return value


def _change_switches(step: int) -> None:
    global _switches
    with _switch_lock:
        _switches += step


def set_fast_paths(enabled: bool) -> None:
    """Turn native fast paths on or off for the whole process (on by default).

    With fast paths off, every public function runs its written-once
    definition on every backend.  A ``with xpnn.fast_paths(...)`` block
    overrides this setting in its own thread.
    """
    global _global_fast_paths, _switches
    if not isinstance(enabled, bool):
        raise TypeError(f"xpnn.set_fast_paths: enabled must be True or False, got {enabled!r}")
    with _switch_lock:
        if enabled != _global_fast_paths:
            _switches += -1 if enabled else 1
            _global_fast_paths = enabled


def fast_paths_enabled() -> bool:
    """Whether native fast paths are on in this thread (its ``fast_paths`` block, else the global setting)."""
    enabled = _context_fast_paths.get()
    return _global_fast_paths if enabled is None else enabled


@contextlib.contextmanager
def fast_paths(enabled: bool) -> Iterator[None]:
    """Context manager: ``with xpnn.fast_paths(False): ...`` runs the written-once definitions.

    The switch is per thread (and per asyncio task): a ``contextvars.ContextVar``,
    so blocks in two threads never undo each other, and other threads keep
    the process-wide setting of ``set_fast_paths``.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"xpnn.fast_paths: enabled must be True or False, got {enabled!r}")
    token = _context_fast_paths.set(enabled)
    _change_switches(1)
    try:
        yield
    finally:
        _change_switches(-1)
        _context_fast_paths.reset(token)


def _forget_checked_fast_paths() -> None:
    """Empty the dispatch caches, so each function's next call checks its fast path on every
    kind of device in use (called when a library starts a new one, such as torch's CUDA)."""
    for cache in _FAST_PATH_CACHES:
        cache.clear()


def check_fast_paths(like: Any, dtypes: tuple[str, ...] = ("float16", "bfloat16", "float32", "float64"),
                     ) -> list[_kernel_check.SwitchedOff]:
    """Check every public function's native fast path, and the layers' fused kernels (the
    torch-style functions' pools included), for ``like``'s library and device now.

    ``like`` is an array or an array namespace (``numpy``, ``torch``...).
    Each fast path is run on the probe of ``xpnn._kernel_check`` in each of
    ``dtypes`` the library has and compared with the written-once definition,
    as a first call would; returns ``fast_path_report``'s entries.
    """
    import xpnn.torch_nn.functional  # noqa: F401 - enters the torch-style pools' fused kernels in LAYER_KERNELS

    if isinstance(like, types.ModuleType):
        like = like.asarray(0)
    adapter = adapter_of(like)
    for name in dtypes:
        dtype = adapter.dtype_named(name)
        if dtype is None or not adapter.holds_dtype(dtype, adapter.device_of(like)):
            continue
        x = adapter.xp.astype(adapter.xp.asarray(like), dtype)
        for entry in REGISTRY.values():
            entry.public.checked_fast_path(x)
        for kernel in _kernel_check.LAYER_KERNELS:
            _kernel_check.layer_kernel_agrees(kernel, adapter, x)
    return _kernel_check.fast_path_report()


def _same_library(first: Array, args: tuple, kwargs: dict) -> bool:
    """Whether the other arguments are plain values (numbers, shapes, dtypes) or arrays of ``first``'s type."""
    array_type = type(first)
    for value in (*args, *kwargs.values()):
        if type(value) is array_type or isinstance(value, _PLAIN_TYPES) or isinstance(value, type):
            continue
        if array_api_compat.is_array_api_obj(value):
            return False
    return True


def _static_lists_as_tuples(args: tuple, kwargs: dict, static: tuple[str, ...],
                            positions: frozenset[int]) -> tuple[tuple, dict]:
    """``args`` and ``kwargs`` with the static arguments given as lists (``axis=[0, 1]``,
    ``padding=[[1, 1], [0, 1]]``) as tuples, nested ones too, which a compiled fast path can key
    its cache on.  ``positions`` are the static arguments' indices in ``args``."""
    args = tuple(_tuples(value) if index in positions else value for index, value in enumerate(args))
    kwargs = {key: _tuples(value) if key in static else value for key, value in kwargs.items()}
    return args, kwargs


def _tuples(value: Any) -> Any:
    """``value`` with its lists, and the lists and tuples inside them, as tuples."""
    if type(value) in (list, tuple) and any(type(item) in (list, tuple) for item in value):
        return tuple(map(_tuples, value))
    return tuple(value) if type(value) is list else value


class Argument:
    """One parameter of a public function, found in a call's ``(args, kwargs)`` (after ``x``):
    what a ``validate`` hook of ``public`` reads and replaces, without binding a signature."""

    def __init__(self, position: int | None, name: str, default: Any = None) -> None:
        self.position, self.name, self.default = position, name, default

    def get(self, args: tuple, kwargs: dict) -> Any:
        if self.position is not None and self.position < len(args):
            return args[self.position]
        return kwargs.get(self.name, self.default)

    def replace(self, args: tuple, kwargs: dict, value: Any) -> tuple[tuple, dict]:
        if self.position is not None and self.position < len(args):
            return (*args[:self.position], value, *args[self.position + 1:]), kwargs
        if self.name in kwargs:
            return args, {**kwargs, self.name: value}
        return args, kwargs


def _plain(value: Any) -> bool:
    """Whether ``value`` is a plain value a probe call can repeat: a number, flag, string, None
    or a tuple of them (an axis), never an array."""
    if type(value) is tuple:
        return all(map(_plain, value))
    return isinstance(value, (int, float, bool, str, type(None)))


class Definition:
    """A written-once definition as the dispatch and the adapters see it.

    ``function(ops, x, *args, **kwargs)`` is the definition: ``ops`` is the
    adapter of the call's arrays, found once by the dispatch, whose ``xp`` is
    the Array API namespace and whose methods are the named primitives.
    ``static`` names the arguments that are never arrays (axes, flags, sizes):
    a backend that compiles (JAX) treats them as compile-time constants.
    ``traits`` say what the adapters may rely on: ``"elementwise"`` (each
    element of ``x`` alone when the other arguments are numbers),
    ``"rowwise"`` (each row of ``axis`` alone).
    """

    def __init__(self, function: Callable[..., Any], static: tuple[str, ...], traits: frozenset[str]) -> None:
        self.name = function.__name__
        self.function = function
        self.static = static
        self.traits = traits
        #: (array type, dtype) -> the checked fast path (None: none), filled by the first call.
        self.fast_by_key: dict[tuple[type, Any], FastPath | None] = {}
        _FAST_PATH_CACHES.append(self.fast_by_key)
        #: adapter -> what its ``Adapter.compile`` made of the definition (None: nothing).
        self.compiled: dict[Adapter, FastPath | None] = {}

    def bound(self, adapter: Adapter) -> Callable[..., Any]:
        """The definition for ``adapter``'s arrays: ``function`` with ``ops`` given."""
        bound = functools.partial(self.function, adapter)
        functools.update_wrapper(bound, self.function)
        del bound.__wrapped__  # its signature is the public one, without ``ops``
        return bound


class PublicFunction(Definition):
    """The registry's entry of one public function (``REGISTRY``).

    ``probes`` are the calls (``(args, kwargs)`` after ``x``) with which a
    native fast path is checked at first use (``xpnn._kernel_check``), on
    the kernel check's probe array or on what ``probe_input(ops, probe)`` makes
    of it (attention takes a finite ``(B, T, N, H)`` query);
    ``reference`` is the function of the reference framework that it matches
    (``jax.nn.relu``, ``torch.nn.functional.hardshrink``) and that its
    conformance cases compare with; ``public`` is the callable users call.
    """

    def __init__(self, function: Callable[..., Any], static: tuple[str, ...], traits: frozenset[str],
                 probes: tuple[_kernel_check.ProbeCall, ...], reference: str,
                 probe_input: Callable[[Adapter, Array], Array] | None = None) -> None:
        super().__init__(function, static, traits)
        self.probes = probes
        self.probe_input = probe_input
        self.reference = reference
        self.public: Callable[..., Any] | None = None

    def __repr__(self) -> str:
        return f"<xpnn public function {self.name} (matches {self.reference})>"


#: Every public function of xpnn, by name, in the order they are defined: what the dispatch,
#: the adapters, the kernel check and the conformance suite know about each.
REGISTRY: dict[str, PublicFunction] = {}


def _arguments_checker(name: str, parameters: list[inspect.Parameter]) -> Callable[..., None]:
    """A function named ``name`` with the public parameters and an empty body: called with a
    call's arguments, it raises Python's own TypeError for a malformed call (``relu() got an
    unexpected keyword argument``), which the definition, taking ``ops`` first, would word
    with one positional argument too many."""
    namespace: dict[str, Any] = {}
    listed = []
    for index, parameter in enumerate(parameters):
        plain = parameter.replace(annotation=inspect.Parameter.empty)
        if parameter.default is not parameter.empty:
            namespace[f"_default_{index}"] = parameter.default
            plain = plain.replace(default=_Source(f"_default_{index}"))
        listed.append(plain)
    source = f"def {name}{inspect.Signature(listed)}:\n    pass\n"
    exec(source, namespace)  # noqa: S102 - built from the definition's own parameter names
    return namespace[name]


class _Source(str):
    """A default value shown as the name that holds it, in ``_arguments_checker``'s source."""

    def __repr__(self) -> str:
        return str(self)


def _dispatched(entry: Definition, validate: Callable[..., tuple[tuple, dict]] | None,
                probes: tuple[_kernel_check.ProbeCall, ...] | None) -> Callable[..., Any]:
    """The public callable of ``entry``: fast-path routing, input coercion, errors named."""
    name, function, static, fast_by_key = entry.name, entry.function, entry.static, entry.fast_by_key
    parameters = list(inspect.signature(function).parameters.values())[1:]  # without ``ops``
    # A keyword the public function lacks, or one positional argument too many, goes to the
    # written-once definition, which refuses it with its own name, even where a fast path has
    # more parameters (the NumPy ones take ``into``) or another name.
    keywords = frozenset(p.name for p in parameters[1:])  # x is positional-only in the public call
    positional = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters)
    # The parameters after ``x`` without a default: a call that lacks one goes to the
    # written-once definition, whose TypeError names the public function.
    required = tuple(p.name for p in parameters[1:]
                     if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
    # Indices in ``args`` (the arguments after ``x``) of the static arguments.
    static_positions = frozenset(index - 1 for index, p in enumerate(parameters) if p.name in static)

    check_arguments = _arguments_checker(name, parameters)

    def checked_fast_path(x, args: tuple = (), kwargs: Mapping[str, Any] = _NO_KEYWORDS) -> FastPath | None:
        """The fast path for ``x``'s type and dtype, checked on this machine at its first use."""
        key = (type(x), x.dtype)
        fast = fast_by_key.get(key, _MISSING)
        if fast is _MISSING:
            adapter = adapter_of_array(x)
            adapter.check_dtype(x.dtype, f"xpnn.{name}")
            fast = adapter.fast_paths.get(name, _MISSING)
            if fast is _MISSING:
                fast = entry.compiled.get(adapter, _MISSING)
                if fast is _MISSING:
                    fast = entry.compiled[adapter] = adapter.compile(entry)
            if probes is not None and name not in adapter.compiled_definitions:
                calls = probes
                if (args or kwargs) and _plain(args) and all(map(_plain, kwargs.values())):
                    calls = (*probes, (args, kwargs))
                fast = _kernel_check.checked(name, entry.bound(adapter), fast, adapter, x, calls,
                                             getattr(entry, "probe_input", None))
            fast_by_key[key] = fast
        return fast

    def route(x, args: tuple, kwargs: dict):
        adapter = _ADAPTER_BY_TYPE.get(type(x))
        if adapter is None:
            if _is_array_like_python(x):
                adapter = adapter_of(*args, *kwargs.values())
                x = adapter.xp.asarray(x)
            else:
                adapter = adapter_of_array(x)
        try:
            if validate is not None and (args or kwargs):
                args, kwargs = validate(adapter, x, args, kwargs)
            if not _switches or fast_paths_enabled():
                fast = checked_fast_path(x, args, kwargs)
                if fast is not None and (not (args or kwargs or required) or len(args) < positional
                                         and kwargs.keys() <= keywords and _same_library(x, args, kwargs)
                                         and all(name in kwargs for name in required[len(args):])):
                    if static:
                        args, kwargs = _static_lists_as_tuples(args, kwargs, static, static_positions)
                    out = fast(x, *args, **kwargs)
                    if out is not NotImplemented:
                        return out
            if len(args) >= positional or not kwargs.keys() <= keywords:
                check_arguments(x, *args, **kwargs)
            if (args or kwargs) and not _same_library(x, args, kwargs):
                # Array arguments of another library: a TypeError (static ones, axes, are numbers).
                adapter_of(x, *(v for i, v in enumerate(args) if i not in static_positions),
                           *(v for k, v in kwargs.items() if k not in static))
            with adapter.quietly():
                try:
                    return adapter.array_result(function(adapter, x, *args, **kwargs))
                except (TypeError, ValueError) as error:  # from deep inside: an input of unknown sizes?
                    message = None if isinstance(error, _Unnamed) else unknown_sizes({parameters[0].name: x})
                    if message is None:
                        raise
                    check_arguments(x, *args, **kwargs)  # a call that does not fit: Python's own TypeError
                    raise ValueError(f"xpnn.{name}: {message}") from error
        except _Unnamed as error:  # a refused argument; a shape check may have failed on unknown sizes
            unknown = unknown_sizes({parameters[0].name: x}) if isinstance(error, ValueError) else None
            raise named(error if unknown is None else type(error)(f"{error} ({unknown})"), name) from None

    def written_once_result(x):
        """``function(ops, x)`` for a call of ``x`` alone that its cached fast path declined."""
        adapter = adapter_of_array(x)
        try:
            with adapter.quietly():
                return adapter.array_result(function(adapter, x))
        except _Unnamed as error:
            raise named(error, name) from None

    def trusted(ops: Adapter, x, /, *args, **kwargs):
        """The call on arguments that xpnn built itself, of ``ops``'s library and already valid
        (a layer's internal call): the checked fast path, else the written-once definition,
        without the public call's argument checks and coercions."""
        try:
            if not _switches or fast_paths_enabled():
                fast = checked_fast_path(x)
                if fast is not None:
                    out = fast(x, *args, **kwargs)
                    if out is not NotImplemented:
                        return out
            with ops.quietly():
                return ops.array_result(function(ops, x, *args, **kwargs))
        except _Unnamed as error:
            raise named(error, name) from None

    # The common call, one array and nothing else, costs one dict lookup before its fast path.
    # A function of ``x`` alone gets a ``call`` without ``*args, **kwargs``: packing them costs
    # 0.15 us a call next to jax's dispatch (relu: 7.52 against 7.37 us).
    if len(parameters) == 1:
        def call(x, /):
            try:
                fast = fast_by_key.get((type(x), x.dtype))
            except AttributeError:  # a Python scalar or list
                fast = None
            if fast is None or _switches:
                return route(x, (), {})
            try:
                out = fast(x)
            except _Unnamed as error:  # a compiled definition refusing x while it is traced
                raise named(error, name) from None
            return out if out is not NotImplemented else written_once_result(x)
    else:
        first = parameters[0]
        first_by_keyword = first.kind is first.POSITIONAL_OR_KEYWORD

        def call(x=_MISSING, /, *args, **kwargs):
            if x is _MISSING:  # the first argument given by name (``query=q``), where it may be
                if not first_by_keyword or first.name not in kwargs:
                    raise TypeError(f"xpnn.{name}() missing 1 required positional argument: {first.name!r}")
                x = kwargs.pop(first.name)
            if args or kwargs or _switches or required:
                return route(x, args, kwargs)
            try:
                fast = fast_by_key.get((type(x), x.dtype))
            except AttributeError:  # a Python scalar or list
                fast = None
            if fast is None:
                return route(x, args, kwargs)
            try:
                out = fast(x)
            except _Unnamed as error:  # a compiled definition refusing x while it is traced
                raise named(error, name) from None
            return out if out is not NotImplemented else written_once_result(x)

    call = functools.update_wrapper(call, function)
    del call.__wrapped__
    call.__signature__ = inspect.Signature(parameters, return_annotation=inspect.signature(function).return_annotation)
    call.written_once = function  # type: ignore[attr-defined]  # takes ``ops`` first
    call.checked_fast_path = checked_fast_path  # type: ignore[attr-defined]
    call.trusted = trusted  # type: ignore[attr-defined]
    call.entry = entry  # type: ignore[attr-defined]
    return call


def public(*, static: tuple[str, ...] = (), probes: tuple[_kernel_check.ProbeCall, ...] = (((), {}),),
           validate: Callable[[Adapter, Array, tuple, dict], tuple[tuple, dict]] | None = None,
           traits: frozenset[str] | tuple[str, ...] = (), reference: str | None = None,
           probe_input: Callable[[Adapter, Array], Array] | None = None,
           ) -> Callable[[Callable[Concatenate[Adapter, P], R]], Callable[P, R]]:
    """Make a written-once definition ``f(ops, x, ...)`` the public function ``f(x, ...)``,
    entered in ``REGISTRY``.

    The dispatch finds the adapter of the call's arrays once and hands it to
    the definition as ``ops`` (see ``Definition`` for ``static`` and
    ``traits``).  A check in the definition raises its error without the
    function's name (``xpnn._checks.refuse``); the dispatch names it:
    ``xpnn.relu: x must ...``.

    ``probes``: the calls with which a native fast path is checked at first
    use (``xpnn._kernel_check``); the first call's own arguments are added
    when they are plain values; ``probe_input(ops, probe)``, when given, turns
    the probe array into the ``x`` of those calls.  ``reference``: the reference framework's
    function it matches (default ``jax.nn.<name>``).

    ``validate(ops, x, args, kwargs)`` checks the arguments after ``x`` before
    any fast path runs (a fast path may skip a check, and jax traces the
    arguments) and returns them, normalized (see ``Argument``).

    The first positional argument may be a Python scalar or list: it becomes
    an array of the namespace of the other array arguments, NumPy when there
    are none.
    """

    def decorate(function: Callable[Concatenate[Adapter, P], R]) -> Callable[P, R]:
        entry = PublicFunction(function, static, frozenset(traits), probes, reference or f"jax.nn.{function.__name__}",
                               probe_input)
        entry.public = _dispatched(entry, validate, probes)
        REGISTRY[entry.name] = entry
        return entry.public

    return decorate


def compiled(*, static: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Make a written-once internal ``f(ops, key, ...)`` callable as ``f(key, ...)``, compiled by
    adapters that compile (``jax.jit`` on JAX): xpnn.random's draws.  It has no native fast
    path to check and is no public function (not in ``REGISTRY``)."""

    def decorate(function: F) -> F:
        return _dispatched(Definition(function, static, frozenset({"compiled"})), None, None)  # type: ignore[return-value]

    return decorate

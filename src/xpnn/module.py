"""The module system: flax.linen's ``Module`` model, written once for every array library.

A module is a dataclass of hyper-parameters (every subclass becomes one).  It
holds no arrays: ``init(rngs, *args)`` runs it once and returns its variables,
a nested plain dict ``{'params': {...}, 'batch_stats': {...}}`` with the same
names and shapes as flax.linen; ``apply(variables, *args)`` runs it with them.

Inside a method, ``self.param``, ``self.variable``, ``self.make_rng``,
``self.sow`` reach the variables of the running ``init``/``apply``.
Submodules are defined either inline in a ``@compact`` method, where they are
named ``ClassName_k`` in construction order, or as attributes in ``setup()``,
where they are named after the attribute (``attr_k`` for the k-th item of a
list, ``attr_key`` for a dict).  Modules given as dataclass fields are adopted
the same way.

Random keys follow flax exactly: the ``j``-th ``make_rng(stream)`` of the
module at path ``(n1, ..., nk)`` is ``fold_in(root, h)`` with ``h`` the first
four bytes (big-endian) of ``sha1(n1 + ... + nk + j)`` (``j`` as its shortest
big-endian bytes).  Initialisers therefore see the same keys as in flax, and
``Dense(3).init(key(0), x)`` gives flax's numbers on every backend.  A stream
that is not given falls back to ``'params'``, as in flax.

New parameters and keys are made in the library and on the device of the
first array argument of ``init`` (the key's library when there is none).
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import operator
import threading
import types
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import array_api_compat

from xpnn import random
from xpnn._dispatch import adapter_of, adapter_of_array, two_libraries, unknown_sizes
from xpnn._promotion import promote_dtype
from xpnn._scope import (
    INIT_MUTABLE, DenyList, Frame, ModuleError, Path, Variables, check_param_shape, first_array, rng_dict, rng_hash,
)
from xpnn._types import Array
from xpnn.partitioning import Partitioned
from xpnn.trees import to_backend, tree_map

__all__ = ["Module", "compact", "nowrap", "Variable", "merge_param", "DenyList", "ModuleError"]


class _ModuleState:
    """Per-instance bookkeeping of a bound module.  One is made for every module a compact
    method defines, on every call, so it has no ``__init__``: the class attributes are the
    initial values, and an instance holds only what changed (0.05 against 0.3 us to make)."""

    setup_done = in_setup = in_compact = False
    #: Submodules named in the running compact call or setup: made by the first child (most
    #: modules, the layers, have none).
    autoname: dict[str, int] | None = None
    names_in_call: set[str] | None = None
    #: The module's dict in the "params" collection, once a ``param`` call found it.
    params: Mapping[str, Any] | None = None


class _Unspecified:
    def __repr__(self) -> str:
        return "<parent: the module being run, or None>"


_UNSPECIFIED_PARENT = _Unspecified()


class _Context(threading.local):
    """The modules whose methods are running in this thread, innermost last: a module made
    there gets the innermost as its parent."""

    def __init__(self) -> None:
        self.stack: list[Module] = []


_context = _Context()
#: Attribute values that may hold submodules to adopt (lists, tuples, dicts of modules).
_CONTAINERS = frozenset((list, tuple, dict))
#: Types of hyper-parameter values that hold no submodules (neither modules nor containers),
#: learnt as they are seen: a module whose values all have them adopts nothing.
_PLAIN_FIELD_TYPES: set[type] = {int, float, bool, str, type(None), types.FunctionType, functools.partial}


def _may_hold_modules(value: Any) -> bool:
    """Whether a hyper-parameter value holds submodules to adopt (not ``_holds_no_module``: a
    tuple of ints, such as a kernel size, holds none); the type of a value that is neither a
    module nor a container is learnt as plain."""
    if not _holds_no_module(value):
        return True
    if type(value) not in _CONTAINERS:
        _PLAIN_FIELD_TYPES.add(type(value))
    return False


#: (array type, dtype) pairs that module inputs were checked to be: later inputs skip the check.
_CHECKED_INPUTS: set[tuple[type, Any]] = set()


_Method = TypeVar("_Method", bound=Callable[..., Any])

try:
    from typing import dataclass_transform
except ImportError:  # Python 3.10: type checkers take typing_extensions' twin; at run time it marks nothing
    def dataclass_transform(**_: Any) -> Callable[[type], type]:
        return lambda cls: cls


def compact(method: _Method) -> _Method:
    """Mark a method (usually ``__call__``) as compact: submodules and params are defined inline."""
    method._xpnn_compact = True
    return method


def nowrap(method: _Method) -> _Method:
    """Leave a module method unwrapped: it runs no ``setup`` and may not define submodules (flax's ``nowrap``)."""
    method._xpnn_nowrap = True
    return method


def merge_param(name: str, attribute: Any, argument: Any) -> Any:
    """A setting given either to the constructor or at call time (flax's ``merge_param``)."""
    if attribute is None and argument is None:
        raise ValueError(f'Parameter "{name}" must be passed to the constructor or at call time.')
    if attribute is not None and argument is not None:
        raise ValueError(f'Parameter "{name}" was passed to the constructor and at call time. Should be passed just once.')
    return attribute if argument is None else argument


class Variable:
    """A handle on one variable: read and write it through ``.value`` (flax's ``Variable``)."""

    def __init__(self, module: Module, collection: str, name: str, unbox: bool = True) -> None:
        self._module, self.collection, self.name, self.unbox = module, collection, name, unbox

    @property
    def value(self) -> Any:
        """The variable; a ``Partitioned`` one unboxed (unless made with ``unbox=False``)."""
        value = self._module.get_variable(self.collection, self.name)
        return value.unbox() if self.unbox and isinstance(value, Partitioned) else value

    @value.setter
    def value(self, value: Any) -> None:
        current = self._module.get_variable(self.collection, self.name)
        if isinstance(current, Partitioned) and not isinstance(value, Partitioned):
            value = current.replace_boxed(value)
        self._module.put_variable(self.collection, self.name, value)

    def __repr__(self) -> str:
        return f"Variable({self.collection}/{self.name})"


class _Append:
    """``sow``'s default ``reduce_fn``: the value appended to the tuple sown so far."""

    def __call__(self, values: tuple, value: Any) -> tuple:
        return (*values, value)

    def __repr__(self) -> str:
        return "append (xs, x) -> (*xs, x)"


_append = _Append()

# Names of the Module API: not wrapped as user methods.
_API = frozenset({
    "init", "init_with_output", "apply", "bind", "setup", "param", "variable", "make_rng", "sow",
    "is_initializing", "is_mutable_collection", "has_variable", "get_variable", "put_variable",
    "has_rng", "clone", "perturb", "unbind", "tabulate", "module_paths", "copy",
})


def _wrap_method(method: Callable) -> Callable:
    """A module method that runs ``setup`` first, and during which new modules become its children.

    The wrapper is generated with the method's own parameters (``_forwarding``), so a call
    passes its arguments on as they came instead of packing them into ``*args, **kwargs`` and
    unpacking them again (0.35 us of a layer's call)."""
    is_compact = getattr(method, "_xpnn_compact", False)
    forwarding = _forwarding(method)
    if forwarding is None:
        parameters, arguments = "*_xpnn_args, **_xpnn_kwargs", "*_xpnn_args, **_xpnn_kwargs"
    else:
        parameters, arguments = forwarding
    call = f"return _xpnn_method(self, {arguments})"
    # While ``Module.tabulate`` runs, the stack records each call's inputs and output.
    recorded = f"return _xpnn_stack.record(self, _xpnn_method, _xpnn_pack({arguments}))"

    def calling(indent: str) -> str:
        return f"{indent}if _xpnn_stack.__class__ is not _xpnn_list:\n{indent}    {recorded}\n{indent}{call}\n"

    if is_compact:  # the outermost call of a compact method names the submodules it defines
        body = ("    if _xpnn_state.in_compact:\n"
                "        try:\n"
                f"{calling(' ' * 12)}"
                "        finally:\n"
                "            _xpnn_stack.pop()\n"
                "    _xpnn_state.in_compact = True\n"
                "    try:\n"
                f"{calling(' ' * 8)}"
                "    finally:\n"
                "        _xpnn_stack.pop()\n"
                "        _xpnn_state.in_compact = False\n"
                "        if _xpnn_state.autoname is not None:\n"
                "            _xpnn_state.autoname = _xpnn_state.names_in_call = None\n")
    else:
        body = f"    try:\n{calling(' ' * 8)}    finally:\n        _xpnn_stack.pop()\n"
    namespace = {"_xpnn_method": method, "_xpnn_context": _context, "_xpnn_unbound": _unbound_call,
                 "_xpnn_list": list, "_xpnn_pack": _packed}
    source = (f"def wrapped(self, {parameters}):\n"
              "    if self._scope is None:\n"
              "        raise _xpnn_unbound(self, _xpnn_method)\n"
              "    _xpnn_state = self._state\n"
              "    if not _xpnn_state.setup_done:\n"
              "        self._ensure_setup()\n"
              "    _xpnn_stack = _xpnn_context.stack\n"
              "    _xpnn_stack.append(self)\n" + body)
    exec(source, namespace)  # noqa: S102 - the source is built from the method's own parameter names
    wrapped = functools.wraps(method)(namespace["wrapped"])
    if forwarding is not None:  # the method's defaults, the same objects
        wrapped.__defaults__, wrapped.__kwdefaults__ = method.__defaults__, method.__kwdefaults__
    wrapped._xpnn_wrapped = True
    return wrapped


def _packed(*args: Any, **kwargs: Any) -> tuple[tuple, dict]:
    """A call's arguments as ``(args, kwargs)``."""
    return args, kwargs


def _forwarding(method: Callable) -> tuple[str, str] | None:
    """``(parameters, arguments)``: the source of ``method``'s parameters after ``self``, and of
    a call passing each on as it came (positional as positional, keyword-only by name); None
    when a name could clash with the wrapper's own (``_xpnn_...``) or there is no ``self``.  A
    decorated method's own parameters are read, not those its ``__wrapped__`` reports."""
    try:
        signature = inspect.signature(method, follow_wrapped=False)
    except (TypeError, ValueError):
        return None
    listed = list(signature.parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if not listed or listed[0].kind not in positional or any(
            p.name.startswith("_xpnn_") or p.name == "self" for p in listed[1:]):
        return None
    parameters, arguments = [], []
    seen_keyword_only = False
    for index, parameter in enumerate(listed[1:], start=1):
        kind, name = parameter.kind, parameter.name
        if kind is parameter.KEYWORD_ONLY and not seen_keyword_only:
            parameters.append("*")
            seen_keyword_only = True
        if kind is parameter.VAR_POSITIONAL:
            parameters.append(f"*{name}")
            arguments.append(f"*{name}")
            seen_keyword_only = True
        elif kind is parameter.VAR_KEYWORD:
            parameters.append(f"**{name}")
            arguments.append(f"**{name}")
        else:
            parameters.append(name if parameter.default is parameter.empty else f"{name}=None")
            arguments.append(f"{name}={name}" if kind is parameter.KEYWORD_ONLY else name)
        if kind is parameter.POSITIONAL_ONLY and (index == len(listed) - 1 or listed[index + 1].kind is not kind):
            parameters.append("/")
    if listed[0].kind is inspect.Parameter.POSITIONAL_ONLY and "/" not in parameters:
        parameters.insert(0, "/")
    return ", ".join(parameters), ", ".join(arguments)


def _named_arguments(function: Callable, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The arguments of a call of ``function`` by parameter name, the items of a ``*args`` (or
    of a tuple or list argument) as ``name[i]``: for an error that names the argument.  A call
    that does not fit the signature is a TypeError saying what is wrong with it."""
    named = {}
    for name, value in inspect.signature(function).bind(*args, **kwargs).arguments.items():
        if isinstance(value, (tuple, list)):
            named.update({f"{name}[{i}]": item for i, item in enumerate(value)})
        else:
            named[name] = value
    return named


def _signature_text(owner: str, function: Callable) -> str:
    """``Owner.method(a, b=1)``: how a module method is called, without annotations."""
    signature = inspect.signature(function)
    plain = signature.replace(parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
                              return_annotation=signature.empty)
    name = getattr(function, "__name__", None) or getattr(getattr(function, "func", None), "__name__", "method")
    return f"{owner}.{name}{plain}"


def _unbound_call(module: Module, method: Callable) -> ModuleError:
    return ModuleError(
        f"{type(module).__name__}.{method.__name__}: the module is not bound to variables; run it with "
        f"init(key, ...) or apply(variables, ...), or define it inside another module"
    )


@dataclass_transform(field_specifiers=(dataclasses.field,))
class Module:
    """Base class of every layer and model (flax.linen's ``Module``).

    Subclasses are dataclasses: annotated class attributes are the
    hyper-parameters, and two keyword-only fields come last, ``parent`` (set
    automatically) and ``name`` (auto-named when None).  Attributes are
    frozen outside ``setup``.
    """

    #: The dataclass fields a subclass declares (set by ``__init_subclass__``).
    _hyperparameters = ()

    parent: Any = dataclasses.field(default=_UNSPECIFIED_PARENT, kw_only=True, repr=False)
    name: str | None = dataclasses.field(default=None, kw_only=True)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields = vars(cls).get("__annotations__", {})
        for attribute, value in list(vars(cls).items()):
            if (
                isinstance(value, types.FunctionType) and (attribute == "__call__" or not attribute.startswith("_"))
                and attribute not in _API and attribute not in fields and not getattr(value, "_xpnn_nowrap", False)
                and not getattr(value, "_xpnn_wrapped", False)
            ):
                setattr(cls, attribute, _wrap_method(value))
        _as_dataclass(cls)

    def __eq__(self, other: Any) -> bool:
        """Modules of one class with equal hyper-parameters are equal, as flax's are (whatever their names)."""
        if type(other) is not type(self):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        """The hash of the class and hyper-parameters (jax's static arguments and caches rely
        on it); a hyper-parameter that cannot be hashed (a list) makes it a TypeError, as in flax."""
        return hash((type(self), self._fields()))

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, field) for field in self._hyperparameters)

    # -- construction and binding -------------------------------------------

    #: ``(frame, *path)`` while bound to the variables of a run; None when unbound.
    _scope = None

    def __post_init__(self) -> None:
        # Called by the dataclass ``__init__`` of a class that defines its own ``__post_init__``
        # (the generated ``__init__`` of the others does this inline, see ``_fast_init``).
        values = self.__dict__
        values["_state"] = _ModuleState()
        parent = values["parent"]
        if parent is _UNSPECIFIED_PARENT:
            stack = _context.stack
            parent = values["parent"] = stack[-1] if stack else None
        if parent is not None:
            _attach(self, values, parent)

    def _claim_name(self, name: str) -> None:
        state = self._state
        if state.names_in_call is None:
            state.autoname, state.names_in_call = {}, set()
        if name in state.names_in_call:
            raise ModuleError(f"{self.path}: two submodules are named {name!r}; names must be unique in a module")
        state.names_in_call.add(name)

    def _bound_copy(self, parent: Module | None, scope: tuple, name: str | None) -> Module:
        """A copy of this (unbound) module bound at ``scope``: fresh state, same hyper-parameters."""
        bound = object.__new__(type(self))
        values = bound.__dict__
        values.update(self.__dict__)
        values["_state"], values["_scope"], values["parent"], values["name"] = _ModuleState(), scope, parent, name
        return bound

    def _fresh_copy(self) -> Module:
        """A copy bound where this (bound) module is, with fresh state: ``setup`` and the adoption
        of module fields run again, so nothing an earlier run cached (the params dict, children
        bound by ``setup``) is reused.  For running a module on substituted variables."""
        cls = type(self)
        values = self.__dict__
        fresh = object.__new__(cls)
        fresh.__dict__.update({field: values[field] for field in cls._hyperparameters}, **values.get("_unadopted", {}))
        fresh.__dict__.update(_state=_ModuleState(), _scope=values["_scope"], parent=values["parent"],
                              name=values["name"])
        return fresh

    def _adopt(self, name: str, value: Any) -> Any:
        """Unbound modules in an attribute value, bound as children named after the attribute."""
        def adopt(child: Any, child_name: str) -> Any:
            if not isinstance(child, Module) or child._scope is not None:
                return child
            if child.parent not in (None, self):
                return child
            self._claim_name(child_name)
            return child._bound_copy(self, self._scope + (child_name,), child_name)

        if isinstance(value, Module):
            return adopt(value, name)
        if isinstance(value, (list, tuple)) and any(isinstance(v, Module) for v in value):
            items = [adopt(v, f"{name}_{i}") for i, v in enumerate(value)]
            return items if isinstance(value, list) else tuple(items)
        if isinstance(value, dict) and any(isinstance(v, Module) for v in value.values()):
            return {k: adopt(v, f"{name}_{k}") for k, v in value.items()}
        return value

    def _ensure_setup(self) -> None:
        state = self._state
        if state.setup_done or self._scope is None:
            return
        state.setup_done = True
        cls = type(self)
        values = self.__dict__
        field_values = cls._field_values(self)
        if _PLAIN_FIELD_TYPES.issuperset(map(type, field_values)):
            adopted = []
        else:  # the values of other types looked into (a tuple of ints holds no module)
            adopted = [field for field, value in zip(cls._hyperparameters, field_values)
                       if type(value) not in _PLAIN_FIELD_TYPES and _may_hold_modules(value)]
        if not adopted and cls.setup is Module.setup:
            return
        state.in_setup = True
        stack = _context.stack
        stack.append(self)
        if adopted:
            values["_unadopted"] = {field: values[field] for field in adopted}
        try:
            for field in adopted:
                object.__setattr__(self, field, self._adopt(field, values[field]))
            if cls.setup is not Module.setup:
                self.setup()
        finally:
            stack.pop()
            state.in_setup = False

    def setup(self) -> None:
        """Define submodules and variables as attributes (runs once, before the first method call)."""

    def _set_attribute(self, name: str, value: Any) -> None:
        """``self.name = value``: only in ``setup``, where modules in ``value`` are adopted as children."""
        state = self.__dict__.get("_state")
        if state is None or name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        if not state.in_setup:
            raise ModuleError(
                f"{self.path}: module attributes are frozen outside setup(); cannot set {name!r} "
                f"(use clone({name}=...) for a changed copy)"
            )
        object.__setattr__(self, name, self._adopt(name, value))

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: attributes made by setup() appear once it has run.
        if not name.startswith("_"):
            state = self.__dict__.get("_state")
            if state is not None and not state.setup_done and self.__dict__.get("_scope") is not None:
                self._ensure_setup()
                return object.__getattribute__(self, name)
        raise AttributeError(f"{type(self).__name__!r} module has no attribute {name!r}")

    def clone(self, **updates: Any) -> Module:
        """An unbound copy with some hyper-parameters changed."""
        updates.setdefault("parent", None)
        return dataclasses.replace(self, **updates)

    # -- running --------------------------------------------------------------

    @property
    def path(self) -> str:
        """The module's path in the running model, e.g. ``MLP/Dense_0`` (its class name when unbound)."""
        scope = self.__dict__.get("_scope")
        if scope is None:
            return type(self).__name__
        return scope[0].path_text(scope[1:])

    def _run(self, variables: Mapping, rngs: Any, mutable: Any, initializing: bool, method: Any, args: tuple, kwargs: dict) -> tuple[Any, Variables]:
        rngs = rng_dict(rngs, f"{type(self).__name__}.{'init' if initializing else 'apply'}")
        like = first_array(args) if args else None
        if like is None and kwargs:
            like = first_array(kwargs)
        if like is None:
            like = next(iter(rngs.values()), None)
        frame = Frame(type(self).__name__, variables, rngs, mutable, initializing, like)
        root = self._bound_copy(None, (frame,), self.name)
        if method is None:
            function = root.__call__
        elif isinstance(method, str):
            function = getattr(root, method)
        elif inspect.ismethod(method) and isinstance(method.__self__, Module):
            function = functools.partial(method.__func__, root)  # m.attend, as flax takes it
        elif callable(method):
            function = functools.partial(method, root)
        else:
            raise TypeError(f"{type(self).__name__}: method must be None, a method name or a function, got {method!r}")
        try:
            out = function(*args, **kwargs)
        except (TypeError, ValueError) as error:  # arguments that do not fit, or inputs of unknown sizes?
            if isinstance(error, ModuleError):
                raise
            where = f"{type(self).__name__}.{'init' if initializing else 'apply'}"
            try:
                arguments = _named_arguments(function, args, kwargs)
            except TypeError as misfit:  # Python's own words would name the class defining the method
                raise TypeError(f"{where}: {misfit} for {_signature_text(type(self).__name__, function)}") from None
            message = unknown_sizes(arguments)
            if message is None:
                raise
            raise ModuleError(f"{where}: {message}") from error
        return out, frame.mutated()

    def init_with_output(self, rngs: Any, *args: Any, method: Any = None, mutable: Any = INIT_MUTABLE, **kwargs: Any) -> tuple[Any, Variables]:
        """``(output, variables)`` of running the module once to create its variables."""
        if rngs is None:
            raise TypeError(f"{type(self).__name__}.init: rngs must be a key or a dict of keys, got None")
        return self._run({}, rngs, mutable, True, method, args, kwargs)

    def init(self, rngs: Any, *args: Any, method: Any = None, mutable: Any = INIT_MUTABLE, **kwargs: Any) -> Variables:
        """The module's variables, ``{'params': {...}, ...}``, made by running it once.

        ``rngs`` is a key (the ``'params'`` stream) or a dict of keys by stream
        name.  ``args`` and ``kwargs`` go to ``method`` (``__call__`` by default).
        """
        return self.init_with_output(rngs, *args, method=method, mutable=mutable, **kwargs)[1]

    def tabulate(self, rngs: Any, *args: Any, depth: int | None = None, show_repeated: bool = False,
                 mutable: Any = DenyList("intermediates"), console_kwargs: Mapping[str, Any] | None = None,
                 table_kwargs: Mapping[str, Any] | None = None, column_kwargs: Mapping[str, Any] | None = None,
                 compute_flops: bool = False, compute_vjp_flops: bool = False, **kwargs: Any) -> str:
        """A summary table of the model, ``flax.linen.Module.tabulate``'s: ``init(rngs, *args,
        **kwargs)`` run once on any library, one row per module call (path, class, inputs and
        outputs as ``dtype[shape]``, the module's variables per collection with their count and
        bytes), totals per collection and over all.  ``depth``: rows down to that many levels,
        each module at the last one counting its submodules' variables; ``show_repeated``: a
        module called again gets a row each time.  The table is plain text, drawn without rich:
        ``console_kwargs``, ``table_kwargs`` and ``column_kwargs`` (rich's options) change
        nothing; ``compute_flops`` and ``compute_vjp_flops`` (XLA's cost analysis, jax only)
        are not provided."""
        from xpnn.summary import tabulate

        if compute_flops or compute_vjp_flops:
            raise NotImplementedError(f"{type(self).__name__}.tabulate: compute_flops and compute_vjp_flops (XLA's "
                                      "cost analysis) are not provided")
        return tabulate(self, rngs, *args, depth=depth, show_repeated=show_repeated, mutable=mutable, **kwargs)

    def module_paths(self, rngs: Any, *args: Any, show_repeated: bool = False, mutable: Any = DenyList("intermediates"),
                     **kwargs: Any) -> dict[str, Module]:
        """Each module of the model by path, ``''`` the model itself (``flax.linen.Module.module_paths``):
        ``init(rngs, *args, **kwargs)`` run once, the modules as their calls saw them (bound).
        ``show_repeated`` is taken for flax's signature: a path names one module."""
        from xpnn.summary import module_paths

        return module_paths(self, rngs, *args, mutable=mutable, **kwargs)

    def copy(self, *, parent: Any = None, name: str | None = None, **updates: Any) -> Module:
        """An unbound copy with some hyper-parameters changed (``flax.linen.Module.copy``;
        ``clone`` with ``parent`` and ``name``)."""
        return self.clone(parent=parent, name=name, **updates)

    def apply(self, variables: Mapping, *args: Any, rngs: Any = None, method: Any = None, mutable: Any = False, **kwargs: Any) -> Any:
        """Run ``method`` (``__call__`` by default) with ``variables``.

        Returns the output, or ``(output, mutated)`` when ``mutable`` names
        collections that may change (``'batch_stats'``, ``'intermediates'``...,
        or True for all); ``mutated`` holds those collections.
        """
        if type(variables) is not dict and not isinstance(variables, Mapping):
            raise TypeError(
                f"{type(self).__name__}.apply: variables must be a dict of collections "
                f"(the result of init), got {type(variables).__name__}"
            )
        out, mutated = self._run(variables, rngs, mutable, False, method, args, kwargs)
        return out if mutable is False else (out, mutated)

    def bind(self, variables: Mapping, *, rngs: Any = None, mutable: Any = False) -> Module:
        """A copy of the module bound to ``variables``: its methods can be called directly."""
        frame = Frame(type(self).__name__, variables, rng_dict(rngs, f"{type(self).__name__}.bind"), mutable,
                      False, first_array(variables))
        return self._bound_copy(None, (frame,), self.name)

    def unbind(self) -> tuple[Module, Variables]:
        """``(module, variables)``: an unbound copy of this bound module and its variables, which
        ``bind`` or ``apply`` take again (``flax.linen.Module.unbind``)."""
        if self.__dict__.get("_scope") is None:
            raise ModuleError(f"{type(self).__name__}.unbind: the module is not bound "
                              "(bind it with module.bind(variables))")
        return self.clone(), self.variables

    @property
    def variables(self) -> Variables:
        """The variables of this (bound) module's scope, by collection."""
        frame, path = self._require_scope("variables")
        found = {c: frame.store(c, path) for c in frame.variables}
        return {c: tree for c, tree in found.items() if tree is not None}

    # -- inside a method --------------------------------------------------------

    def _require_scope(self, what: str) -> tuple[Frame, Path]:
        scope = self.__dict__.get("_scope")
        if scope is None:
            raise ModuleError(
                f"{type(self).__name__}: {what} needs a bound module; call it from a method run by init/apply"
            )
        return scope[0], scope[1:]

    def is_initializing(self) -> bool:
        """Whether the module runs under ``init``."""
        return self._require_scope("is_initializing")[0].initializing

    def is_mutable_collection(self, collection: str) -> bool:
        """Whether ``collection`` may be written in this run."""
        return self._require_scope("is_mutable_collection")[0].is_mutable(collection)

    def has_rng(self, stream: str) -> bool:
        """Whether a key for ``stream`` was given (``'params'`` serves any stream)."""
        rngs = self._require_scope("has_rng")[0].rngs
        return stream in rngs or "params" in rngs

    def has_variable(self, collection: str, name: str) -> bool:
        frame, path = self._require_scope("has_variable")
        store = frame.store(collection, path)
        return store is not None and name in store

    def get_variable(self, collection: str, name: str, default: Any = None) -> Any:
        frame, path = self._require_scope("get_variable")
        store = frame.store(collection, path)
        return default if store is None else frame.adopted(store.get(name, default))

    def put_variable(self, collection: str, name: str, value: Any) -> None:
        frame, path = self._require_scope("put_variable")
        if not frame.is_mutable(collection):
            raise ModuleError(
                f'{self.path}: cannot update variable "{name}" because collection "{collection}" is immutable; '
                f"pass mutable=[{collection!r}] to apply"
            )
        frame.store(collection, path, create=True)[name] = value

    def make_rng(self, name: str = "params") -> Array:
        """A new key of stream ``name``, derived from the path and a per-stream counter as flax does."""
        frame, path = self._require_scope("make_rng")
        if name not in frame.rngs:
            if "params" not in frame.rngs:
                raise ModuleError(
                    f'{self.path} needs a random key for "{name}": pass rngs={{"{name}": key}} to '
                    f"{'init' if frame.initializing else 'apply'}"
                )
            name = "params"
        count = frame.rng_counters[(path, name)] = frame.rng_counters.get((path, name), 0) + 1
        return frame.in_library(random.fold_in(frame.rngs[name], rng_hash(path, count)))

    def param(self, name: str, init_fn: Callable[..., Any], *init_args: Any, unbox: bool = True,
              **init_kwargs: Any) -> Any:
        """The parameter ``name``: read from the variables, or made with
        ``init_fn(self.make_rng('params'), *init_args)`` while initialising.

        When the first init argument is a shape, an existing parameter must
        have it: a mismatch (an input of another feature size than at init)
        is an error naming the module.  A parameter in a ``Partitioned`` box
        (``with_partitioning``) stays boxed in the variables and is returned
        unboxed (with its layout as a sharding constraint on jax under a mesh),
        unless ``unbox=False``.
        """
        state = self._state
        store = state.params
        if store is None:
            scope = self._scope
            if scope is None:
                self._require_scope("param")
            frame = scope[0]
            store = state.params = frame.store("params", scope[1:])
            if frame.adopter is not None and store is not None and not frame.is_mutable("params"):
                store = state.params = {key: frame.adopted(value) for key, value in store.items()}
        if store is not None and name in store:
            value = store[name]
            if isinstance(value, Partitioned):
                if init_args and init_args[0] != getattr(value.value, "shape", None):
                    check_param_shape(self.path, name, value.value, init_args)
                return value.unbox() if unbox else value
            if init_args and init_args[0] != getattr(value, "shape", None):
                check_param_shape(self.path, name, value, init_args)
            return value
        frame, path = self._require_scope("param")
        if not frame.is_mutable("params"):
            raise ModuleError(frame.missing_message(self.path, "params", name, store))
        try:
            value = init_fn(self.make_rng("params"), *init_args, **init_kwargs)
        except (TypeError, ValueError) as error:
            if type(error) not in (TypeError, ValueError):  # a library's own error class: as it is
                raise
            raise type(error)(f'{self.path}: parameter "{name}": {error}') from error
        made = value.value if isinstance(value, Partitioned) else value
        if frame.like is not None and array_api_compat.is_array_api_obj(made) and (
                adapter_of(made) is not adapter_of(frame.like)):
            value = to_backend(value, frame.like)  # an initializer that returns NumPy arrays, as flax takes it
        frame.store("params", path, create=True)[name] = value
        return value.unbox() if unbox and isinstance(value, Partitioned) else value

    def variable(self, collection: str, name: str, init_fn: Callable[..., Any] | None = None, *init_args: Any,
                 unbox: bool = True, **init_kwargs: Any) -> Variable:
        """A handle on variable ``collection/name``, made with ``init_fn(*init_args)`` when missing.
        Its ``.value`` of a ``Partitioned`` box is the value unboxed unless ``unbox=False``, and
        writing ``.value`` keeps the box."""
        frame, path = self._require_scope("variable")
        store = frame.store(collection, path)
        if store is None or name not in store:
            if not frame.is_mutable(collection):
                raise ModuleError(frame.missing_message(self.path, collection, name, store))
            value = init_fn(*init_args, **init_kwargs) if init_fn is not None else None
            frame.store(collection, path, create=True)[name] = value
        return Variable(self, collection, name, unbox)

    def perturb(self, name: str, value: Any, collection: str = "perturbations") -> Any:
        """``value`` plus the variable ``collection/name`` (``flax.linen.Module.perturb``).

        While ``collection`` is mutable (``init``) the variable is made as zeros of ``value``'s
        shapes and dtypes; applied with it, the gradient with respect to it is the gradient with
        respect to the intermediate ``value``.  Applied without the collection, ``value`` as it is.
        """
        frame, path = self._require_scope("perturb")
        if frame.is_mutable(collection) and not self.has_variable(collection, name):
            self.put_variable(collection, name, tree_map(lambda leaf: adapter_of(leaf).xp.zeros_like(leaf), value))
        if collection not in frame.variables:
            return value
        if not self.has_variable(collection, name):
            raise self._error(f'the "{collection}" collection is given, but has no perturbation "{name}"')
        return tree_map(operator.add, value, self.get_variable(collection, name))

    def sow(self, collection: str, name: str, value: Any, reduce_fn: Callable[[Any, Any], Any] = _append,
            init_fn: Callable[[], Any] = tuple) -> bool:
        """Store an intermediate value: appended to a tuple by default. Returns
        whether it was stored (False when ``collection`` is not mutable)."""
        frame, path = self._require_scope("sow")
        if not frame.is_mutable(collection):
            return False
        store = frame.store(collection, path, create=True)
        store[name] = reduce_fn(store[name] if name in store else init_fn(), value)
        return True

    # -- helpers for layers ------------------------------------------------------

    def _error(self, message: str) -> ModuleError:
        """A ModuleError whose message starts with this module's path."""
        return ModuleError(f"{self.path}: {message}")

    def _merge(self, name: str, attribute: Any, argument: Any) -> Any:
        """``merge_param``, with the module's path in the error."""
        try:
            return merge_param(name, attribute, argument)
        except ValueError as error:
            raise self._error(str(error)) from None

    def _check_rank(self, inputs: Array, minimum: int, argument: str = "inputs") -> None:
        if inputs.ndim < minimum:
            raise self._error(f"{argument} must have at least {minimum} dims, got shape {tuple(inputs.shape)}")

    def _check_input(self, value: Any, argument: str = "inputs", min_rank: int = 0) -> Array:
        """``value`` if it is an array of a dtype its library's functions take, with at least
        ``min_rank`` dims; otherwise a TypeError (ValueError for the rank) naming the module and
        the argument.  The dtype is checked once per array type and dtype."""
        try:
            if (type(value), value.dtype) in _CHECKED_INPUTS and value.ndim >= min_rank:
                return value
        except (AttributeError, TypeError):  # no dtype, or one that cannot be hashed
            pass
        if array_api_compat.is_array_api_obj(value):
            adapter_of(value).check_dtype(value.dtype, f"{self.path}: {argument}")
            try:
                _CHECKED_INPUTS.add((type(value), value.dtype))
            except TypeError:
                pass
            self._check_rank(value, min_rank, argument)
            return value
        raise TypeError(
            f"{self.path}: {argument} must be an array (numpy, torch, jax, cupy, dask or any Array API "
            f"library), got {type(value).__module__}.{type(value).__qualname__}"
        )

    def _adapter(self, **arrays: Array | None):
        """The adapter of the named arrays; arrays of two libraries are a TypeError naming both
        arguments, unless one library takes the other's arrays as its own (``Adapter.adopts``: a
        Dask input with NumPy variables)."""
        first = None
        for value in arrays.values():
            if value is not None:
                if first is None:
                    first = value
                elif type(value) is not type(first):
                    break
        else:
            if first is not None:
                return adapter_of_array(first)
        found = {}
        for argument, value in arrays.items():
            if value is not None:
                found.setdefault(adapter_of(value), argument)
        if len(found) > 1:
            for adapter in found:  # a library whose chunks are the others' arrays (Dask's are NumPy's)
                if all(other is adapter or adapter.adopts(other) for other in found):
                    return adapter
            raise TypeError(f"{self.path}: {two_libraries(arrays)} (a variable tree: "
                            "xpnn.to_backend(variables, like=inputs))")
        return next(iter(found)) if found else adapter_of()

    def _operands(self, dtype: Any, **arrays: Array | None) -> tuple[Any, list[Array | None]]:
        """The adapter of the named arrays (see ``_adapter``) and the arrays in the computation
        dtype (``xpnn._promotion.promote_dtype``: ``dtype``, or the promotion of theirs), the
        arrays of an adopted library made the adapter's (``Adapter.adopted``).

        The common call, arrays of one type and dtype and no ``dtype``, is decided in one loop.
        """
        if dtype is None:
            first = None
            for value in arrays.values():
                if value is None:
                    continue
                if first is None:
                    first = value
                elif type(value) is not type(first) or (value.dtype is not first.dtype and value.dtype != first.dtype):
                    break
            else:
                if first is not None:
                    return adapter_of_array(first), list(arrays.values())
        adapter = self._adapter(**arrays)
        values = [value if value is None or adapter_of(value) is adapter else adapter.adopted(value)
                  for value in arrays.values()]
        return adapter, promote_dtype(adapter, *values, dtype=dtype, where=self.path)

    def _weighted(self, dtype: Any, inputs: Array, kernel: Array, bias: Array | None) -> tuple[Any, Array, Array, Array | None]:
        """``(adapter, inputs, kernel, bias)`` in the computation dtype: ``_operands(dtype,
        inputs=, kernel=, bias=)`` for a layer's input and weights, the common case (one array type
        and dtype, ``dtype`` None) decided without building the named arrays."""
        if dtype is None:
            kind, common = type(inputs), inputs.dtype
            if type(kernel) is kind and (kernel.dtype is common or kernel.dtype == common) and (bias is None or (
                    type(bias) is kind and (bias.dtype is common or bias.dtype == common))):
                return adapter_of_array(inputs), inputs, kernel, bias
        adapter, (inputs, kernel, bias) = self._operands(dtype, inputs=inputs, kernel=kernel, bias=bias)
        return adapter, inputs, kernel, bias


def _attach(module: Module, values: dict[str, Any], parent: Any) -> None:
    """Bind a new module to its parent's scope: named ``ClassName_k`` in a compact method (or
    after the attribute it is assigned to in ``setup``), at ``(*parent scope, name)``."""
    if not isinstance(parent, Module):
        raise TypeError(f"{type(module).__name__}: parent must be a Module or None, got {type(parent).__name__}")
    parent_scope = parent._scope
    if parent_scope is None:
        return
    parent_state = parent._state
    name = values["name"]
    if parent_state.in_setup:
        if name is None:
            return  # named after the attribute it is assigned to
    elif not parent_state.in_compact:
        raise ModuleError(
            f"{parent.path}: submodule {type(module).__name__} must be defined in setup() or in a method "
            f"decorated with @xpnn.compact"
        )
    if parent_state.autoname is None:
        parent_state.autoname, parent_state.names_in_call = {}, set()
    if name is None:
        prefix = type(module).__name__
        autoname = parent_state.autoname
        count = autoname.get(prefix, 0)
        autoname[prefix] = count + 1
        name = values["name"] = f"{prefix}_{count}"
    names = parent_state.names_in_call
    if name in names:
        parent._claim_name(name)  # raises
    names.add(name)
    values["_scope"] = (*parent_scope, name)


def _as_dataclass(cls: type) -> None:
    """Make ``cls`` (Module or a subclass) a dataclass of its hyper-parameters.

    A compact method builds its submodules on every call, so their
    construction is kept cheap: the dataclass is made frozen, whose
    ``__init__`` sets fields with ``object.__setattr__`` instead of going
    through ``Module._set_attribute``, and then that ``__init__`` is
    replaced by one with the same signature that writes the instance's
    ``__dict__`` at once (see ``_fast_init``).  The frozen ``__setattr__``
    and ``__delattr__`` give way to Module's.
    """
    own_init = "__init__" in vars(cls)
    dataclasses.dataclass(cls, eq=False, frozen=True, repr="__repr__" not in vars(cls))
    if cls is Module:
        cls.__setattr__ = Module._set_attribute
        cls.__delattr__ = object.__delattr__
    else:
        del cls.__setattr__, cls.__delattr__
    if not own_init:
        cls.__init__ = _fast_init(cls)
    cls._hyperparameters = tuple(f.name for f in dataclasses.fields(cls) if f.name not in ("parent", "name"))
    cls._field_values = operator.attrgetter(*cls._hyperparameters) if len(cls._hyperparameters) > 1 else (
        lambda module: tuple(getattr(module, field) for field in cls._hyperparameters))


def _holds_no_module(value: Any) -> bool:
    """Whether a default value is known to hold no submodule to adopt (a module, or one in a
    list, tuple or dict: what ``Module._adopt`` looks at)."""
    if isinstance(value, Module):
        return False
    if type(value) in _CONTAINERS:
        return not any(isinstance(item, Module) for item in (value.values() if type(value) is dict else value))
    return True


def _fast_init(cls: type) -> Callable[..., None]:
    """The dataclass ``__init__`` of ``cls`` (its signature, defaults and default factories),
    generated to be cheap, since a compact method constructs its submodules on every call: the
    fields are stored straight into the instance's ``__dict__``, the module is bound to its parent
    (``_attach``: the ``__post_init__`` of ``Module``, inline), and when no value can hold a
    submodule (a default, or a value of a type learnt as plain) and the class has no ``setup``,
    the module is marked as set up, so its first call skips ``_ensure_setup``.  A class with its
    own ``__post_init__`` gets the stores and a call to it; the dataclass's own ``__init__`` is
    kept when a field is not an init argument."""
    fields = cls.__dataclass_fields__
    signature = inspect.signature(cls.__init__)
    parameters = list(signature.parameters.values())[1:]
    if any(not field.init for field in fields.values()) or {p.name for p in parameters} != {
            name for name, field in fields.items() if field._field_type is dataclasses._FIELD}:
        return cls.__init__
    namespace: dict[str, Any] = {
        "_FACTORY": dataclasses._HAS_DEFAULT_FACTORY, "_PLAIN": _PLAIN_FIELD_TYPES, "_State": _ModuleState,
        "_context": _context, "_UNSPECIFIED": _UNSPECIFIED_PARENT, "_attach": _attach,
    }
    arguments, body, plain = [], [], []
    keyword_only = False
    for parameter in parameters:
        name = parameter.name
        if parameter.kind is parameter.KEYWORD_ONLY and not keyword_only:
            arguments.append("*")
            keyword_only = True
        default = parameter.default
        if default is parameter.empty:
            arguments.append(name)
        else:
            namespace[f"_default_{name}"] = default
            arguments.append(f"{name}=_default_{name}")
            if default is dataclasses._HAS_DEFAULT_FACTORY:
                namespace[f"_factory_{name}"] = fields[name].default_factory
                body.append(f"    if {name} is _FACTORY:\n        {name} = _factory_{name}()\n")
        if name in ("parent", "name"):
            continue
        body.append(f"    values[{name!r}] = {name}\n")
        if default is not parameter.empty and default is not dataclasses._HAS_DEFAULT_FACTORY and (
                _holds_no_module(default)):
            plain.append(f"({name} is _default_{name} or type({name}) in _PLAIN)")
        else:
            plain.append(f"type({name}) in _PLAIN")
    source = [f"def __init__(self, {', '.join(arguments)}):\n    values = self.__dict__\n", *body,
              "    values['name'] = name\n"]
    if cls.__post_init__ is not Module.__post_init__:
        source.append("    values['parent'] = parent\n    self.__post_init__()\n")
    else:
        source.append("    state = values['_state'] = _State()\n")
        if cls.setup is Module.setup:
            source.append(f"    if {' and '.join(plain) or 'True'}:\n        state.setup_done = True\n")
        source.append("    if parent is _UNSPECIFIED:\n        stack = _context.stack\n"
                      "        parent = stack[-1] if stack else None\n"
                      "    values['parent'] = parent\n    if parent is not None:\n        _attach(self, values, parent)\n")
    exec("".join(source), namespace)  # noqa: S102 - the source is built from the dataclass's own field names
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__signature__ = signature
    init._xpnn_generated = True
    return init


_as_dataclass(Module)

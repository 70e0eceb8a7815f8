"""``torch.nn.Module``'s model for the arrays of any library: stateful modules whose parameters,
buffers and submodules are registered by attribute assignment, with torch's ``state_dict`` names.

A module's parameters are arrays of the library (and on the device) it was built for
(``like=``: an array or a namespace, NumPy by default; ``to(like=...)`` moves it).  On torch
they are leaf tensors that require grad, so ``torch.optim`` trains an ``xpnn.torch_nn`` model
and ``loss.backward()`` fills their ``.grad``.  On jax, gradients are taken functionally:
``functional_call(module, params, args)`` runs the module with a dict of arrays in place of its
own (as ``torch.func.functional_call``), so ``jax.grad`` differentiates with respect to that dict.
"""
from __future__ import annotations

import contextvars
import operator
import types
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from xpnn._checks import dtype_argument, dtype_name
from xpnn._dispatch import adapter_of, adapter_of_array, is_array
from xpnn._scope import first_array
from xpnn._types import Array
from xpnn.trees import to_backend

__all__ = ["Module", "Parameter", "Buffer", "RemovableHandle", "Container", "Sequential", "ModuleList", "ModuleDict",
           "ParameterList", "ParameterDict", "functional_call"]


class Buffer:
    """Marks an array as a module buffer when assigned to a module attribute
    (``self.running = Buffer(x)``, torch's ``nn.Buffer``); ``persistent=False`` keeps it out of
    the state_dict."""

    __slots__ = ("data", "persistent")

    def __init__(self, data: Array, *, persistent: bool = True) -> None:
        self.data = data
        self.persistent = persistent


class Parameter:
    """Marks an array as a module parameter when assigned to a module attribute
    (``self.w = Parameter(x)``, torch's ``nn.Parameter``); the module stores the array itself."""

    __slots__ = ("data", "requires_grad")

    def __init__(self, data: Array, requires_grad: bool = True) -> None:
        self.data = data
        self.requires_grad = requires_grad


class RemovableHandle:
    """What ``register_forward_hook`` and ``register_forward_pre_hook`` return: ``remove()`` takes
    the hook off (again: nothing); also a context manager that removes it on exit (torch's)."""

    next_id = 0

    def __init__(self, hooks: dict[int, Any]) -> None:
        self._hooks = weakref.ref(hooks)
        self.id = RemovableHandle.next_id
        RemovableHandle.next_id += 1

    def remove(self) -> None:
        hooks = self._hooks()
        if hooks is not None:
            hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class _Hooks(OrderedDict):
    """A module's hooks by handle id, each ``(hook, with_kwargs)`` (weak-referenceable for the handles)."""


class LibraryMismatchError(TypeError):
    """A module called with arrays of another library than its own (raised once, by the
    innermost module that holds arrays, and passed on unchanged by the modules around it)."""


class _IncompatibleKeys(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]

    def __repr__(self) -> str:
        """torch's: ``<All keys matched successfully>`` when nothing is missing or unexpected."""
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return f"_IncompatibleKeys(missing_keys={self.missing_keys}, unexpected_keys={self.unexpected_keys})"


def _shape(array: Array) -> tuple[int, ...]:
    return tuple(array.shape)


class Module:
    """Base class of the torch-style modules: ``forward`` holds the computation, ``__call__`` runs it.

    Subclasses call ``super().__init__()`` first, then assign parameters (``Parameter``),
    buffers (``register_buffer``) and submodules as attributes, as in torch.
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        _LIVE_MODULES.add(self)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A copy (``copy.deepcopy``, as torch's layer clones) or an unpickled module: alive too."""
        self.__dict__.update(state)
        _LIVE_MODULES.add(self)

    # -- registration -----------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, Parameter):
            self._forget(name, keep="_parameters")
            self.register_parameter(name, value.data, value.requires_grad)
        elif isinstance(value, Buffer):
            self._forget(name, keep="_buffers")
            self.register_buffer(name, value.data, value.persistent)
        elif name in self._parameters:  # an array or None (anything else refused)
            self.register_parameter(name, value)
        elif isinstance(value, Module):  # a submodule replaced keeps its place (a Sequential's order)
            self._forget(name, keep="_modules")
            self._modules[name] = value
        elif name in self._modules:
            if value is not None:
                raise TypeError(f"xpnn.torch_nn.{type(self).__name__}: cannot assign '{type(value).__name__}' as "
                                f"child module '{name}' (a Module or None is required)")
            self._modules[name] = None
        elif name in self._buffers:
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        stores = self.__dict__
        if "_modules" in stores:  # registered (the last of the three): the stores, parameters first
            if name in (values := stores["_parameters"]) or name in (values := stores["_buffers"]) or name in (
                    values := stores["_modules"]):
                return values[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        if not self._drop(name):
            object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        """torch's: the attributes with the parameters, buffers and submodules, less the names
        that begin with a digit (a Sequential's ``0``)."""
        names = [*dir(type(self)), *self.__dict__, *self._parameters, *self._modules, *self._buffers]
        return sorted(name for name in set(names) if not name[:1].isdigit())

    def _drop(self, name: str) -> bool:
        found = False
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                found = True
        self._non_persistent.discard(name)
        return found

    def _forget(self, name: str, keep: str) -> None:
        """``name`` taken out of the instance's attributes and the stores other than ``keep``,
        which an assignment to it is about to set (torch's ``remove_from``)."""
        self.__dict__.pop(name, None)
        for store in ("_parameters", "_buffers", "_modules"):
            if store != keep:
                getattr(self, store).pop(name, None)
        if keep != "_buffers":
            self._non_persistent.discard(name)

    def _check_name(self, kind: str, name: Any, store: str, method: str) -> None:
        """torch's checks of a name being registered in ``store``: a string, without ".", not
        empty, not another attribute of the module."""
        where = f"xpnn.torch_nn.{type(self).__name__}.{method}"
        if not isinstance(name, str):
            raise TypeError(f"{where}: {kind} name should be a string. Got {type(name).__name__}")
        if "." in name:
            raise KeyError(f'{where}: {kind} name can\'t contain ".", got: {name}')
        if name == "":
            raise KeyError(f'{where}: {kind} name can\'t be empty string ""')
        if name not in getattr(self, store) and hasattr(self, name):
            raise KeyError(f"{where}: attribute '{name}' already exists")

    def register_parameter(self, name: str, param: Array | None, requires_grad: bool = True) -> None:
        """Add a parameter (None: declared but absent, as a Linear's bias=False)."""
        self._check_name("parameter", name, "_parameters", "register_parameter")
        if param is not None and not hasattr(param, "shape"):
            raise TypeError(f"xpnn.torch_nn.{type(self).__name__}: cannot assign {type(param).__name__} as parameter "
                            f"'{name}' (an array or None is required)")
        self._parameters[name] = param if param is None or not requires_grad else adapter_of(param).trainable(param)

    def register_buffer(self, name: str, tensor: Array | None, persistent: bool = True) -> None:
        """Add a buffer: state that is not a parameter (running statistics), in ``state_dict``
        unless ``persistent=False``."""
        self._check_name("buffer", name, "_buffers", "register_buffer")
        if tensor is not None and not hasattr(tensor, "shape"):
            raise TypeError(f"xpnn.torch_nn.{type(self).__name__}.register_buffer: cannot assign "
                            f"'{type(tensor).__name__}' object to buffer '{name}' (an array or None is required)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Add the submodule ``module`` (None: declared but absent) as ``name``."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"xpnn.torch_nn.{type(self).__name__}.add_module: {type(module).__name__} is not a "
                            f"Module subclass")
        self._check_name("module", name, "_modules", "add_module")
        self._modules[name] = module

    register_module = add_module

    # -- running ----------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if "_forward_hooks" in self.__dict__:  # some hook was registered once
            return self._call_with_hooks(args, kwargs)
        return self._forwarded(args, kwargs)

    def _forwarded(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            return self.forward(*args, **kwargs)
        except TypeError as error:  # the inputs of another library than the module's arrays: say so
            message = None if isinstance(error, LibraryMismatchError) else self._library_mismatch((args, kwargs))
            if message is None:
                raise
            raise LibraryMismatchError(message) from error

    def _call_with_hooks(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """torch's call: the forward pre-hooks (which may replace the inputs), ``forward``, then
        the forward hooks (which may replace the output); with backward hooks, all of it under
        the library's ``with_backward_hooks``."""
        for hook, with_kwargs in list(self._forward_pre_hooks.values()):
            if with_kwargs:
                result = hook(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise RuntimeError(f"xpnn.torch_nn.{type(self).__name__}: a forward pre-hook with_kwargs must "
                                           f"return None or a tuple of (new_args, new_kwargs), got {result!r}")
                    args, kwargs = result
            else:
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        backward = [hook for hook, _ in self._hooks_now("_backward_hooks")]
        backward_pre = [hook for hook, _ in self._hooks_now("_backward_pre_hooks")]
        if not (backward or backward_pre):
            return self._forward_and_hooks(args, kwargs)
        arrays = [a for a in args if is_array(a)] or list(self.parameters())
        if not arrays:  # nothing that autodiff could reach
            return self._forward_and_hooks(args, kwargs)
        ops = adapter_of(arrays[0])
        if ops.with_backward_hooks is None:
            raise NotImplementedError(
                f"xpnn.torch_nn.{type(self).__name__}: backward hooks run in an autograd that calls Python "
                f"hooks (torch's); {ops.name} arrays take gradients functionally: the vjp of "
                f"xpnn.torch_nn.functional_call gives a module's input and output gradients")
        return ops.with_backward_hooks(self, backward, backward_pre, args,
                                       lambda args: self._forward_and_hooks(args, kwargs))

    def _forward_and_hooks(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``forward``, then the forward hooks; when either raises, the hooks registered with
        ``always_call`` not yet called are called (their own errors warned of), then the error
        raised again, as torch's."""
        def hooked(hook: Callable[..., Any], with_kwargs: bool, output: Any) -> Any:
            result = hook(self, args, kwargs, output) if with_kwargs else hook(self, args, output)
            return output if result is None else result

        output, called = None, set()
        try:
            output = self._forwarded(args, kwargs)
            for key, (hook, with_kwargs) in list(self._forward_hooks.items()):
                called.add(key)
                output = hooked(hook, with_kwargs, output)
            return output
        except Exception:
            always = self.__dict__.get("_always_called", set())
            for key, (hook, with_kwargs) in list(self._forward_hooks.items()):
                if key in always and key not in called:
                    try:
                        output = hooked(hook, with_kwargs, output)
                    except Exception as error:  # noqa: BLE001 (torch's: silenced for the forward's error)
                        warnings.warn("module forward hook with ``always_call=True`` raised an exception that was "
                                      f"silenced as another error was raised in forward: {error}", stacklevel=3)
            raise

    def _hooks(self, kind: str) -> _Hooks:
        """The module's hooks of ``kind``, each ``(hook, flag)``, made at the first registration
        (the forward ones in pairs: a call checks ``_forward_hooks`` alone)."""
        hooks = self.__dict__.get(kind)
        if hooks is None:
            for name in _HOOK_PAIRS.get(kind, (kind,)):
                if name not in self.__dict__:
                    object.__setattr__(self, name, _Hooks())
            hooks = self.__dict__[kind]
        return hooks

    def _hooks_now(self, kind: str) -> list[tuple[Callable[..., Any], bool]]:
        """The hooks of ``kind`` registered now (none made where none was)."""
        hooks = self.__dict__.get(kind)
        return [] if hooks is None else list(hooks.values())

    def _register_hook(self, kind: str, hook: Callable[..., Any], prepend: bool, with_kwargs: bool) -> RemovableHandle:
        hooks = self._hooks(kind)
        handle = RemovableHandle(hooks)
        hooks[handle.id] = (hook, with_kwargs)
        if prepend:
            hooks.move_to_end(handle.id, last=False)
        return handle

    def register_forward_pre_hook(self, hook: Callable[..., Any], *, prepend: bool = False,
                                  with_kwargs: bool = False) -> RemovableHandle:
        """Call ``hook(module, args)`` before each ``forward`` (``hook(module, args, kwargs)`` with
        ``with_kwargs``); a value it returns replaces the inputs (torch's)."""
        return self._register_hook("_forward_pre_hooks", hook, prepend, with_kwargs)

    def register_forward_hook(self, hook: Callable[..., Any], *, prepend: bool = False, with_kwargs: bool = False,
                              always_call: bool = False) -> RemovableHandle:
        """Call ``hook(module, args, output)`` after each ``forward`` (``hook(module, args, kwargs,
        output)`` with ``with_kwargs``); a value it returns replaces the output (torch's).
        ``always_call``: called also when ``forward`` or an earlier hook raised (output None
        when ``forward`` did), before the error goes on."""
        handle = self._register_hook("_forward_hooks", hook, prepend, with_kwargs)
        if always_call:
            if "_always_called" not in self.__dict__:
                object.__setattr__(self, "_always_called", set())
            self._always_called.add(handle.id)
        return handle

    def register_full_backward_hook(self, hook: Callable[..., Any], prepend: bool = False) -> RemovableHandle:
        """Call ``hook(module, grad_input, grad_output)`` once the gradients of the module's
        positional inputs are computed (tuples, None for an input that is not an array or needs
        no gradient); a tuple it returns replaces ``grad_input`` (torch's).  The module's arrays
        must be torch's (an autograd that calls hooks); on libraries without autodiff nothing is
        differentiated and the hook is never called; jax's raise NotImplementedError."""
        return self._register_hook("_backward_hooks", hook, prepend, False)

    def register_full_backward_pre_hook(self, hook: Callable[..., Any], prepend: bool = False) -> RemovableHandle:
        """Call ``hook(module, grad_output)`` when the gradients of the module's outputs are
        computed, before those of its inputs; a tuple it returns replaces ``grad_output``
        (torch's; the libraries as ``register_full_backward_hook``'s)."""
        return self._register_hook("_backward_pre_hooks", hook, prepend, False)

    def _library_mismatch(self, inputs: Any) -> str | None:
        """What is wrong when ``inputs`` hold arrays of another library than this module's own
        parameters and buffers (which that library does not take as its own); None otherwise."""
        own = next((value for value in (*self._parameters.values(), *self._buffers.values())
                    if value is not None and is_array(value)), None)
        given = first_array(inputs) if own is not None else None
        if given is None:
            return None
        mine, theirs = adapter_of_array(own), adapter_of_array(given)
        if mine is theirs or theirs.adopts(mine):
            return None
        return (f"xpnn.torch_nn.{type(self).__name__}: the input is a {theirs.name} array but the module's "
                f"parameters and buffers are {mine.name} arrays; move the model to the input's library with "
                f"model.to(like=input)")

    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout active, batch statistics) for this module and its children."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """``fn`` on every submodule, then on this one (torch's order); returns the module."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # -- traversal --------------------------------------------------------------------------
    def named_modules(self, memo: set[int] | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Module]]:
        memo = set() if memo is None else memo
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen: set[int] = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self) -> Iterator[Module]:
        for _, child in self.named_children():
            yield child

    def _named(self, store: str, prefix: str, recurse: bool, remove_duplicate: bool) -> Iterator[tuple[str, Array]]:
        """The arrays of ``store`` in this module (and its submodules with ``recurse``), each once
        unless ``remove_duplicate`` is False (a tied array under each of its names)."""
        seen: set[int] = set()
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else iter(
            [(prefix, self)])
        for module_prefix, module in modules:
            for name, value in getattr(module, store).items():
                if value is None or id(value) in seen:
                    continue
                if remove_duplicate:
                    seen.add(id(value))
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Array]]:
        return self._named("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Array]:
        for _, value in self.named_parameters(recurse=recurse):
            yield value

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Array]]:
        return self._named("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Array]:
        for _, value in self.named_buffers(recurse=recurse):
            yield value

    # -- state_dict -------------------------------------------------------------------------
    #: The version of the module's state_dict format, in the state_dict's ``_metadata`` (torch's:
    #: a loader reads it to take checkpoints of older formats).
    _version: int = 1

    def state_dict(self, destination: dict[str, Array] | None = None, prefix: str = "",
                   keep_vars: bool = False) -> dict[str, Array]:
        """Parameters and persistent buffers by dotted name, in torch's order (each module's
        parameters, its buffers, its ``_extra_state`` where it has ``get_extra_state``, then its
        children's); detached unless ``keep_vars``.  As torch's, the dict's ``_metadata`` holds
        each module's ``version``, and the state_dict hooks run (pre: ``hook(module, prefix,
        keep_vars)``; post: ``hook(module, state_dict, prefix, local_metadata)``)."""
        if destination is None:
            destination = OrderedDict()
            destination._metadata = OrderedDict()  # type: ignore[attr-defined]
        local_metadata = {"version": self._version}
        if hasattr(destination, "_metadata"):  # a dict of the caller's may have none (torch's)
            destination._metadata[prefix[:-1]] = local_metadata
        for hook, _ in self._hooks_now("_state_dict_pre_hooks"):
            hook(self, prefix, keep_vars)
        self._save_to_state_dict(destination, prefix, keep_vars)
        for name, child in self._modules.items():
            if child is not None:
                child.state_dict(destination, f"{prefix}{name}.", keep_vars)
        for hook, replaces in self._hooks_now("_state_dict_hooks"):
            result = hook(self, destination, prefix, local_metadata)
            if result is not None:
                if not replaces:
                    raise RuntimeError(f"xpnn.torch_nn.{type(self).__name__}: a state_dict post-hook must return None "
                                       f"(it changes the state_dict in place), got {type(result).__name__}")
                destination = result
        return destination

    def _save_to_state_dict(self, destination: dict[str, Any], prefix: str, keep_vars: bool) -> None:
        """This module's own part of the state_dict (torch's override point): its parameters,
        persistent buffers and extra state, ``prefix`` before each name."""
        for store, name, value in self._local_state():
            detach = store == "_parameters" and not keep_vars
            destination[prefix + name] = adapter_of(value).stop_gradient(value) if detach else value
        if type(self).get_extra_state is not Module.get_extra_state:
            destination[prefix + _EXTRA_STATE] = self.get_extra_state()

    def get_extra_state(self) -> Any:
        """State beyond the parameters and buffers, saved as ``_extra_state`` by a module that
        overrides this (and ``set_extra_state``), as torch's."""
        raise RuntimeError("Reached a code path in Module.get_extra_state() that should never be called. Please file "
                           "an issue if you see this.")

    def set_extra_state(self, state: Any) -> None:
        """Take the ``_extra_state`` that ``get_extra_state`` saved (override both, as torch's)."""
        raise RuntimeError("Reached a code path in Module.set_extra_state() that should never be called. Please file "
                           "an issue if you see this.")

    def _local_state(self) -> Iterator[tuple[str, str, Array]]:
        """``(store, name, array)`` of this module's parameters, then its persistent buffers:
        what its part of ``state_dict`` holds, in torch's order."""
        for name, value in self._parameters.items():
            if value is not None:
                yield "_parameters", name, value
        for name, value in self._buffers.items():
            if value is not None and name not in self._non_persistent:
                yield "_buffers", name, value

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True,
                        assign: bool = False) -> _IncompatibleKeys:
        """Copy ``state_dict``'s arrays (of any library: a torch state_dict loads onto NumPy or
        jax) into the parameters and buffers of the same names, converted to each one's library,
        device and dtype (``assign=True`` keeps the state_dict's dtype).  With ``strict``, missing
        and unexpected keys are torch's ``RuntimeError``; a shape mismatch always is, and then
        nothing is loaded.  Each module loads its part by ``_load_from_state_dict`` (torch's
        override point, given the module's ``version`` from the state_dict's ``_metadata``),
        after its load pre-hooks; the post-hooks ``hook(module, incompatible_keys)`` run after."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        metadata = getattr(state_dict, "_metadata", None)
        state_dict = OrderedDict(state_dict)  # a copy, which the loaders may change (torch's)
        missing: list[str] = []
        unexpected: list[str] = []
        errors: list[str] = []
        updates: list[tuple[Module, str, str, Array, bool]] = []
        token = _PENDING_LOADS.set(updates)
        try:
            for prefix, module in self.named_modules(remove_duplicate=False):
                local_metadata = {} if metadata is None else dict(metadata.get(prefix, {}))
                if assign:
                    local_metadata["assign_to_params_buffers"] = True
                module._load_from_state_dict(state_dict, f"{prefix}." if prefix else "", local_metadata, True, missing,
                                             unexpected, errors)
        finally:
            _PENDING_LOADS.reset(token)
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors))
        _taken_in(self, updates)
        incompatible = _IncompatibleKeys(missing, unexpected)
        for module in self.modules():
            for hook, _ in module._hooks_now("_load_state_dict_post_hooks"):
                if hook(module, incompatible) is not None:
                    raise RuntimeError(f"xpnn.torch_nn.{type(module).__name__}: a load_state_dict post-hook must "
                                       f"return None (it may change incompatible_keys in place)")
        if strict and (missing or unexpected):
            messages = []
            if missing:
                messages.append("Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ". ")
            if unexpected:
                messages.append("Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ". ")
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(messages))
        return incompatible

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, local_metadata: dict[str, Any],
                              strict: bool, missing_keys: list[str], unexpected_keys: list[str],
                              error_msgs: list[str]) -> None:
        """Load this module's own part of ``state_dict`` (the keys after ``prefix``), as torch's
        override point: its load pre-hooks run, each parameter and persistent buffer is taken
        (converted to its array's library, device and dtype; a wrong shape or a value that is no
        array goes to ``error_msgs``), its extra state too; with ``strict``, its names absent are
        ``missing_keys`` and the keys under ``prefix`` that name none of its arrays or children
        ``unexpected_keys``."""
        for hook, with_module in self._hooks_now("_load_state_dict_pre_hooks"):
            arguments = (state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
            hook(self, *arguments) if with_module else hook(*arguments)
        assign = local_metadata.get("assign_to_params_buffers", False)
        local = set()
        for store, name, current in self._local_state():
            key = prefix + name
            local.add(name)
            if key not in state_dict:
                if strict:
                    missing_keys.append(key)
                continue
            value = state_dict[key]
            if not is_array(value):
                error_msgs.append(f'While copying the parameter named "{key}", expected an array (of any library) '
                                  f"from checkpoint but received {type(value)}")
            elif tuple(value.shape) != _shape(current):
                error_msgs.append(f"size mismatch for {key}: copying a param with shape {tuple(value.shape)} from "
                                  f"checkpoint, the shape in current model is {_shape(current)}.")
            else:
                _stage(self, store, name, _converted(value, current, assign), assign)
        extra = prefix + _EXTRA_STATE
        if type(self).set_extra_state is not Module.set_extra_state:
            if extra in state_dict:
                self.set_extra_state(state_dict[extra])
            elif strict:
                missing_keys.append(extra)
        if strict:
            unexpected_keys += [key for key in foreign_keys(state_dict, prefix, {*self._modules, *local})
                                if key != extra]

    def register_state_dict_pre_hook(self, hook: Callable[..., None]) -> RemovableHandle:
        """Call ``hook(module, prefix, keep_vars)`` before this module's ``state_dict`` (torch's)."""
        return self._register_hook("_state_dict_pre_hooks", hook, False, False)

    def register_state_dict_post_hook(self, hook: Callable[..., None]) -> RemovableHandle:
        """Call ``hook(module, state_dict, prefix, local_metadata)`` after this module's part of
        the ``state_dict`` (children included); it changes the state_dict in place (torch's)."""
        return self._register_hook("_state_dict_hooks", hook, False, False)

    def _register_state_dict_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """torch's older post-hook: as ``register_state_dict_post_hook``'s, but a value it returns
        replaces the state_dict."""
        return self._register_hook("_state_dict_hooks", hook, False, True)

    def register_load_state_dict_pre_hook(self, hook: Callable[..., None]) -> RemovableHandle:
        """Call ``hook(module, state_dict, prefix, local_metadata, strict, missing_keys,
        unexpected_keys, error_msgs)`` before this module loads its part (torch's: it may rename
        or add keys of the state_dict, a copy of the one given)."""
        return self._register_hook("_load_state_dict_pre_hooks", hook, False, True)

    def _register_load_state_dict_pre_hook(self, hook: Callable[..., None], with_module: bool = False
                                           ) -> RemovableHandle:
        """torch's older pre-hook: as ``register_load_state_dict_pre_hook``'s, without the module
        unless ``with_module``."""
        return self._register_hook("_load_state_dict_pre_hooks", hook, False, with_module)

    def register_load_state_dict_post_hook(self, hook: Callable[..., None]) -> RemovableHandle:
        """Call ``hook(module, incompatible_keys)`` after ``load_state_dict`` loaded the arrays and
        before it raises for missing or unexpected keys: it may clear them from the lists (torch's)."""
        return self._register_hook("_load_state_dict_post_hooks", hook, False, False)

    # -- placement --------------------------------------------------------------------------
    def to(self, *args: Any, like: Any = None, dtype: Any = None, device: Any = None, non_blocking: bool = False,
           memory_format: Any = None) -> Module:
        """Move every parameter and buffer to ``like``'s library and device (an array or a
        namespace: ``numpy``, ``torch``, ``jax.numpy``, ``torch.empty(0, device='cuda')``...),
        to ``device`` within its library (``'cpu'``, ``'cuda:1'``, a ``torch.device``, a jax
        device), and cast the floating ones to ``dtype`` (a name such as ``"float64"`` or any
        library's dtype).  torch's calling forms are taken: ``to(device)``, ``to(dtype)``,
        ``to(device, dtype)``, and ``to(like)``, ``to(like, dtype)`` (positional arguments are
        told apart by kind); ``non_blocking`` and ``memory_format`` change nothing."""
        where = f"xpnn.torch_nn.{type(self).__name__}.to"
        like, dtype, device = _to_arguments(where, args, like, dtype, device)
        for module in self.modules():
            if hasattr(module, "_place_later"):  # a lazy module: its parameters are made there later
                module._place_later(like, dtype, device, where)

        def moved(value: Array) -> Array:
            value = to_backend(value, like) if like is not None else value
            ops = adapter_of(value)
            if device is not None:
                value = ops.to_device(value, ops.device_named(device, where))
            if dtype is not None and ops.xp.isdtype(value.dtype, "real floating"):
                value = ops.xp.astype(value, dtype_argument(ops, dtype, "real floating", "float32", where))
            return value

        return self._map_arrays(moved)

    def to_empty(self, *, device: Any, recurse: bool = True) -> Module:
        """Every parameter and buffer replaced by an uninitialized array of its shape and dtype on
        ``device`` (None: where it is), in its library: a model made on torch's ``meta`` device
        (``like=torch.empty(0, device='meta')``, no memory) takes real arrays this way, then its
        ``load_state_dict`` (torch's ``Module.to_empty``).  ``recurse=False``: this module's own."""
        where = f"xpnn.torch_nn.{type(self).__name__}.to_empty"

        def emptied(value: Array) -> Array:
            ops = adapter_of(value)
            return ops.xp.empty_like(value, device=None if device is None else ops.device_named(device, where))

        return self._map_arrays(emptied, recurse)

    def _map_arrays(self, transform: Callable[[Array], Array], recurse: bool = True) -> Module:
        """Every parameter and buffer (of this module alone unless ``recurse``) replaced by
        ``transform`` of it, computed once per array: an array held under several names (tied
        weights) stays one array, as torch keeps one Parameter; parameters stay trainable."""
        done: dict[int, tuple[Array, Array]] = {}
        for module in self.modules() if recurse else (self,):
            for store in (module._parameters, module._buffers):
                for name, value in store.items():
                    if value is None:
                        continue
                    if id(value) not in done:
                        new = transform(value)
                        done[id(value)] = (value, adapter_of(new).trainable(new) if store is module._parameters
                                           else new)
                    store[name] = done[id(value)][1]
        return self

    def cpu(self) -> Module:
        """Every parameter and buffer on the CPU, in its library (``to(device='cpu')``)."""
        return self.to(device="cpu")

    def cuda(self, device: int | Any = None) -> Module:
        """Every parameter and buffer on CUDA device ``device`` (an index or a device; None:
        the first), in its library (torch's, CuPy's, jax's GPUs)."""
        return self.to(device=f"cuda:{device}" if isinstance(device, int) else device or "cuda")

    def type(self, dst_type: Any) -> Module:
        """Every parameter and buffer cast to ``dst_type`` (torch's ``Module.type``: all of them,
        integer buffers too)."""
        where = f"xpnn.torch_nn.{type(self).__name__}.type"

        def cast(value: Array) -> Array:
            ops = adapter_of(value)
            return ops.xp.astype(value, dtype_argument(ops, dtype_name(dst_type), "numeric", "float32", where))

        return self._map_arrays(cast)

    def double(self) -> Module:
        return self.to(dtype="float64")

    def float(self) -> Module:
        return self.to(dtype="float32")

    def half(self) -> Module:
        return self.to(dtype="float16")

    def bfloat16(self) -> Module:
        return self.to(dtype="bfloat16")

    # -- training loops ---------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients the parameters carry in ``.grad`` (torch tensors): None, or zeros
        without ``set_to_none``; parameters of libraries without ``.grad`` have none to clear."""
        for parameter in self.parameters():
            if getattr(parameter, "grad", None) is not None:
                if set_to_none:
                    parameter.grad = None
                else:
                    adapter_of(parameter).write_untracked(parameter.grad, parameter.grad * 0)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Mark every parameter as trained (or frozen) in place, as torch's ``requires_grad_``; on
        libraries whose gradients are taken functionally (jax) it changes nothing: differentiate
        with respect to the parameters wanted (``functional_call``)."""
        for parameter in self.parameters():
            adapter_of(parameter).set_trainable(parameter, requires_grad)
        return self

    # -- lookup by dotted path --------------------------------------------------------------
    def set_submodule(self, target: str, module: Module, strict: bool = False) -> None:
        """Put ``module`` at the dotted path ``target``, as torch's: its parent must exist; with
        ``strict``, so must the submodule replaced."""
        parent_path, _, name = target.rpartition(".")
        parent = self.get_submodule(parent_path)
        if strict and not isinstance(parent._modules.get(name), Module):
            raise AttributeError(f"{type(parent).__name__} has no attribute `{name}`")
        if not isinstance(module, Module):
            raise ValueError(f"`module` is not an nn.Module, found {type(module).__name__}")
        setattr(parent, name, module)

    def get_submodule(self, target: str) -> Module:
        """The submodule at the dotted path ``target`` (``""``: this module), as torch's; an
        AttributeError naming the missing step."""
        module = self
        for item in target.split(".") if target else ():
            if not hasattr(module, item):
                raise AttributeError(f"{type(module).__name__} has no attribute `{item}`")
            module = getattr(module, item)
            if not isinstance(module, Module):
                raise AttributeError(f"`{item}` is not an nn.Module")
        return module

    def _registered(self, target: str, store: str, kind: str) -> Array:
        path, _, name = target.rpartition(".")
        module = self.get_submodule(path)
        if not hasattr(module, name):
            raise AttributeError(f"{type(module).__name__} has no attribute `{name}`")
        if name not in getattr(module, store):
            raise AttributeError(f"`{name}` is not {kind}")
        return getattr(module, store)[name]

    def get_parameter(self, target: str) -> Array:
        """The parameter at the dotted path ``target`` (``"0.weight"``), as torch's."""
        return self._registered(target, "_parameters", "an nn.Parameter")

    def get_buffer(self, target: str) -> Array:
        """The buffer at the dotted path ``target`` (``"1.running_mean"``), as torch's."""
        return self._registered(target, "_buffers", "a buffer")

    # -- printing ---------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = []
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"({name}): {body}")
        extra = self.extra_repr()
        if not lines and "\n" not in extra:
            return f"{type(self).__name__}({extra})"
        inner = "\n  ".join((extra.split("\n") if extra else []) + lines)
        return f"{type(self).__name__}(\n  {inner}\n)"


#: Every module alive, so that an array that cannot be written in place (jax's) can be replaced
#: where modules hold it (``replace_held``).
_LIVE_MODULES: weakref.WeakSet[Module] = weakref.WeakSet()


def replace_held(old: Array, new: Array) -> None:
    """``new`` in place of ``old`` wherever a live module holds ``old`` as a parameter or buffer:
    what an in-place fill of ``old`` (``torch_nn.init``) means for immutable arrays."""
    _replaced_in(list(_LIVE_MODULES), {id(old): (old, new)})


def _replaced_in(modules: Iterable[Module], replacements: Mapping[int, tuple[Array, Array]]) -> None:
    """Each ``new`` of ``replacements`` (``id(old) -> (old, new)``) in place of its ``old`` as a
    parameter or buffer of ``modules``, under every name that holds it."""
    for module in modules:
        for store in (module._parameters, module._buffers):
            for name, value in store.items():
                if value is not None and id(value) in replacements:
                    store[name] = replacements[id(value)][1]


def fill_in_place(tensor: Array, values: Array) -> Array:
    """``values`` written into ``tensor`` outside autograd, ``tensor`` returned (torch.nn.init's
    fills, ``reset_parameters``); for immutable arrays, ``values`` returned and put in the
    tensor's place in the modules that hold it."""
    written = adapter_of(tensor).write_untracked(tensor, values)
    if written is not tensor:
        replace_held(tensor, written)
    return written


#: The hooks made together: a call checks for ``_forward_hooks`` alone, so every hook of a call makes it.
_HOOK_PAIRS = {kind: ("_forward_hooks", "_forward_pre_hooks", kind)
               for kind in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")}
#: A module's ``get_extra_state`` in its state_dict (torch's name).
_EXTRA_STATE = "_extra_state"
#: The arrays a ``load_state_dict`` has taken so far, put in their modules once every key checked out.
_PENDING_LOADS: contextvars.ContextVar[list[tuple[Module, str, str, Array, bool]] | None] = contextvars.ContextVar(
    "_PENDING_LOADS", default=None)


def _stage(module: Module, store: str, name: str, value: Array, assign: bool) -> None:
    """A loaded array taken by ``module`` when the ``load_state_dict`` under way succeeds (now,
    outside one)."""
    pending = _PENDING_LOADS.get()
    if pending is None:
        _taken_in(module, [(module, store, name, value, assign)])
    else:
        pending.append((module, store, name, value, assign))


def _taken_in(root: Module, updates: list[tuple[Module, str, str, Array, bool]]) -> None:
    """The loaded arrays put in their modules as torch's ``load_state_dict`` does: copied into the
    arrays held (outside autograd), so a torch optimizer made before still updates them and an
    array held under several names (tied weights) stays one; where arrays cannot be written
    (jax's) or writing keeps the old graph (Dask's), the new one takes the old one's place under
    every name in ``root``'s modules.
    With ``assign``, the loaded array itself is put in place."""
    replaced: dict[int, tuple[Array, Array]] = {}
    for module, store, name, value, assign in updates:
        held = getattr(module, store)[name]
        if assign:
            if store == "_parameters":
                module.register_parameter(name, value)
            else:
                module._buffers[name] = value
            continue
        ops = adapter_of(held)
        try:
            written = value if ops.writes_keep_graphs else ops.write_untracked(held, value)
        except (ValueError, TypeError):  # a read-only array (NumPy's views of other memory): replaced
            written = value
        if written is not held:
            replaced[id(held)] = (held, written)
    if replaced:
        _replaced_in(root.modules(), replaced)


#: The standard's dtype names (and bfloat16): what a positional argument of ``Module.to`` names as a dtype.
_DTYPE_NAMES = frozenset(("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16",
                          "bfloat16", "float32", "float64", "complex64", "complex128"))


def _to_arguments(where: str, args: tuple[Any, ...], like: Any, dtype: Any, device: Any) -> tuple[Any, Any, Any]:
    """``Module.to``'s positional arguments told apart, as torch's: an array or a namespace
    module is ``like``, a dtype (of any library, or its name) ``dtype``, a bool ``non_blocking``
    (changes nothing), anything else a ``device``; each given once."""
    given = {"like": like, "dtype": dtype, "device": device}
    for argument in args:
        if isinstance(argument, bool):
            continue
        if dtype_name(argument) in _DTYPE_NAMES:
            slot = "dtype"
        elif isinstance(argument, types.ModuleType) or is_array(argument):
            slot = "like"
        else:
            slot = "device"
        if given[slot] is not None:
            raise TypeError(f"{where}: {slot} given twice, {given[slot]!r} and {argument!r}")
        given[slot] = argument
    return given["like"], given["dtype"], given["device"]


def foreign_keys(state_dict: Mapping[str, Any], prefix: str, names: Collection[str]) -> list[str]:
    """The keys of ``state_dict`` under ``prefix`` whose first part after it is none of ``names``
    (a module's arrays and children): torch's unexpected keys of a module's own load."""
    return [key for key in state_dict if key.startswith(prefix) and key[len(prefix):].split(".", 1)[0] not in names]


def _converted(value: Any, current: Array, assign: bool) -> Array:
    """A state_dict value as a new array of ``current``'s library, device (and dtype, unless
    ``assign``): never the state_dict's own array, which its model may still update in place."""
    moved = to_backend(value, current)
    ops = adapter_of(moved)
    if moved is value:
        moved = ops.copy(ops.stop_gradient(moved))
    if not assign and moved.dtype != current.dtype:
        moved = ops.xp.astype(moved, current.dtype)
    return moved


def functional_call(module: Module, parameter_and_buffer_dicts: Mapping[str, Array] | Sequence[Mapping[str, Array]],
                    args: Any = None, kwargs: Mapping[str, Any] | None = None, *, tie_weights: bool = True,
                    strict: bool = False) -> Any:
    """``module(*args, **kwargs)`` with the named arrays (one dict, or several without a key in
    common) in place of its parameters and buffers (``torch.func.functional_call``): with jax,
    ``jax.grad(lambda p: loss(functional_call(m, p, (x,))))(dict(m.named_parameters()))``
    differentiates with respect to the dict.  With ``tie_weights``, an array that the module
    holds under several names (tied weights) is replaced under all of them; with ``strict``,
    every parameter and buffer must be given.  A name the module lacks is an error.  The
    module's own arrays are restored afterwards (buffer updates made during the call are dropped)."""
    where = "xpnn.torch_nn.functional_call"
    dicts = [parameter_and_buffer_dicts] if isinstance(parameter_and_buffer_dicts, Mapping) else list(
        parameter_and_buffer_dicts)
    given: dict[str, Any] = {}
    for mapping in dicts:
        repeated = sorted(set(given) & set(mapping))
        if repeated:
            raise ValueError(f"{where}: {repeated} appeared in multiple dictionaries; behavior of functional call is "
                             f"ambiguous")
        given.update(mapping)
    slots: dict[str, tuple[dict[str, Any], str]] = {}  # every name, tied ones included
    for prefix, owner in module.named_modules(remove_duplicate=False):
        for store in (owner._parameters, owner._buffers):
            for name, value in store.items():
                if value is not None:
                    slots[f"{prefix}.{name}" if prefix else name] = (store, name)
    unknown = [key for key in given if key not in slots]
    if unknown and not strict:
        raise KeyError(f"{where}: {type(module).__name__} has no parameter or buffer {', '.join(map(repr, unknown))}")
    values = {key: value for key, value in given.items() if key in slots}
    if tie_weights:  # each given array under every name of the array it replaces
        names_of: dict[int, list[str]] = {}
        for key, (store, name) in slots.items():
            names_of.setdefault(id(store[name]), []).append(key)
        for key in list(values):
            store, name = slots[key]
            tied = names_of[id(store[name])]
            others = [other for other in tied if other in given and given[other] is not given[key]]
            if others:
                raise ValueError(f"{where} got multiple values for keys {sorted(tied)}, which are tied. Consider "
                                 f"using tie_weights=False")
            values.update(dict.fromkeys(tied, given[key]))
    if strict:
        messages = []
        if unknown:
            messages.append(f"Unexpected key(s): {', '.join(map(repr, unknown))}.")
        missing = [key for key in slots if key not in values]
        if missing:
            messages.append(f"Missing key(s): {', '.join(map(repr, missing))}.")
        if messages:
            raise RuntimeError(f"{where}: Error(s) in reparametrizing for {type(module).__name__}:\n\t"
                               + "\n\t".join(messages))
    args = () if args is None else args if isinstance(args, tuple) else (args,)
    saved: list[tuple[dict, str, Any]] = []
    try:
        for key, value in values.items():
            store, name = slots[key]
            saved.append((store, name, store[name]))
            store[name] = value
        return module(*args, **(kwargs or {}))
    finally:
        for store, name, value in reversed(saved):
            store[name] = value


class Container(Module):
    """torch.nn.Container, deprecated there: a Module holding the submodules given by keyword,
    ``Container(encoder=..., head=...)``.  Subclass ``Module`` instead."""

    def __init__(self, **kwargs: Module) -> None:
        warnings.warn("`nn.Container` is deprecated. All of its functionality is now implemented in `nn.Module`. "
                      "Subclass that instead.", FutureWarning, stacklevel=2)
        super().__init__()
        for name, module in kwargs.items():
            self.add_module(name, module)


# -- containers ---------------------------------------------------------------------------------

class _Numbered(Module):
    """Modules named ``0``, ``1``, ... in order: what ``Sequential`` and ``ModuleList`` share."""

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def _key(self, index: int, method: str) -> str:
        """The name of the module at position ``index`` (negative: from the end)."""
        index = operator.index(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"xpnn.torch_nn.{type(self).__name__}.{method}: index {index} is out of range for "
                             f"{len(self)} modules")
        return list(self._modules)[index]

    def __setitem__(self, index: int, module: Module) -> None:
        """The module at position ``index`` replaced, in its place."""
        setattr(self, self._key(index, "__setitem__"), module)

    def __delitem__(self, index: int | slice) -> None:
        """The module(s) at ``index`` removed, the rest renumbered from 0, as torch's."""
        keys = list(self._modules)[index] if isinstance(index, slice) else [self._key(index, "__delitem__")]
        for key in keys:
            del self._modules[key]
        object.__setattr__(self, "_modules", OrderedDict(
            (str(position), module) for position, module in enumerate(self._modules.values())))

    def pop(self, index: int | slice) -> Any:
        """The module(s) at ``index``, removed."""
        taken = self[index]
        del self[index]
        return taken

    def append(self, module: Module) -> Any:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> Any:
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> Any:
        """``module`` placed before position ``index`` (negative: from the end), the modules
        from there renumbered one up, as torch's."""
        if not isinstance(module, Module):
            raise TypeError(f"xpnn.torch_nn.{type(self).__name__}.insert: {type(module).__name__} is not a Module "
                            f"subclass")
        count = len(self)
        if not -count <= index <= count:
            raise IndexError(f"xpnn.torch_nn.{type(self).__name__}.insert: index {index} is out of range for "
                             f"{count} modules")
        index = index + count if index < 0 else index
        for position in range(count, index, -1):
            self._modules[str(position)] = self._modules[str(position - 1)]
        self._modules[str(index)] = module
        return self


class Sequential(_Numbered):
    """Modules run in order, named ``0``, ``1``, ... (or by an ``OrderedDict``'s keys): ``torch.nn.Sequential``.
    ``+`` joins two, ``* n`` repeats the same modules ``n`` times (not copies), as torch's."""

    def __init__(self, *modules: Module | Mapping[str, Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for index, module in enumerate(modules):
                self.add_module(str(index), module)

    def forward(self, input: Any) -> Any:
        for module in self._modules.values():
            input = module(input)
        return input

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):  # the modules keep their names, as torch's
            return type(self)(OrderedDict(list(self._modules.items())[index]))
        return self._modules[self._key(index, "__getitem__")]

    def _joinable(self, other: Any, operation: str) -> None:
        if not isinstance(other, Sequential):
            raise ValueError(f"xpnn.torch_nn.Sequential.{operation}: add operator supports only objects of Sequential "
                             f"class, but {type(other).__name__} is given.")

    def __add__(self, other: Sequential) -> Sequential:
        self._joinable(other, "__add__")
        return Sequential(*self, *other)

    def __iadd__(self, other: Sequential) -> Sequential:
        self._joinable(other, "__iadd__")
        return self.extend(list(other))

    def _times(self, factor: Any, operation: str) -> list[Module]:
        if not isinstance(factor, int) or isinstance(factor, bool):
            raise TypeError(f"xpnn.torch_nn.Sequential.{operation}: unsupported operand type(s) for *: Sequential and "
                            f"{type(factor).__name__}")
        if factor <= 0:
            raise ValueError(f"xpnn.torch_nn.Sequential.{operation}: Non-positive multiplication factor {factor}")
        return list(self) * factor

    def __mul__(self, factor: int) -> Sequential:
        return Sequential(*self._times(factor, "__mul__"))

    __rmul__ = __mul__

    def __imul__(self, factor: int) -> Sequential:
        return self.extend(self._times(factor, "__imul__")[len(self):])


class ModuleList(_Numbered):
    """A list of modules, named ``0``, ``1``, ...: ``torch.nn.ModuleList``."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        self.extend(modules or ())

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):  # renumbered from 0, as torch's
            return type(self)(list(self._modules.values())[index])
        return self._modules[self._key(index, "__getitem__")]

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)

    def __add__(self, other: Iterable[Module]) -> ModuleList:
        return ModuleList([*self, *other])

    def __repr__(self) -> str:
        """torch's: a run of modules that print alike is one entry, ``(0-5): 6 x Layer(...)``."""
        runs: list[list[Any]] = []  # [first index, last index, repr]
        for index, module in enumerate(self._modules.values()):
            text = repr(module)
            if runs and runs[-1][2] == text:
                runs[-1][1] = index
            else:
                runs.append([index, index, text])
        if not runs:
            return f"{type(self).__name__}()"
        lines = [(f"({first}): " if first == last else f"({first}-{last}): {last - first + 1} x ")
                 + text.replace("\n", "\n  ") for first, last, text in runs]
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"


def _pairs(where: str, kind: str, values: Any, sort_plain: bool) -> Iterable[tuple[Any, Any]]:
    """The (key, value) pairs of a mapping, or of an iterable of pairs, for a dict container's
    ``update``; a plain mapping's in sorted key order with ``sort_plain`` (torch's ParameterDict)."""
    if not isinstance(values, Iterable):
        raise TypeError(f"{where}: {kind}.update should be called with an iterable of key/value pairs, but got "
                        f"{type(values).__name__}")
    if isinstance(values, (OrderedDict, ModuleDict, ParameterDict)):
        return list(values.items())
    if isinstance(values, Mapping):
        return sorted(values.items()) if sort_plain else list(values.items())
    pairs = []
    for position, pair in enumerate(values):
        if not isinstance(pair, Iterable) or len(pair := tuple(pair)) != 2:
            raise ValueError(f"{where}: {kind} update sequence element #{position} should be a (key, value) pair, "
                             f"got {pair!r}")
        pairs.append(pair)
    return pairs


class ModuleDict(Module):
    """A dict of modules named by their keys: ``torch.nn.ModuleDict``."""

    def __init__(self, modules: Mapping[str, Module] | None = None) -> None:
        super().__init__()
        for name, module in (modules or {}).items():
            self.add_module(name, module)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def pop(self, key: str) -> Module:
        """The module named ``key``, removed."""
        return self._modules.pop(key)

    def clear(self) -> None:
        self._modules.clear()

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        """The modules of a mapping, or of (name, module) pairs, added or replacing those named alike."""
        for key, module in _pairs("xpnn.torch_nn.ModuleDict.update", "ModuleDict", modules, sort_plain=False):
            self[key] = module

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self) -> Iterable[str]:
        return self._modules.keys()

    def values(self) -> Iterable[Module]:
        return self._modules.values()

    def items(self) -> Iterable[tuple[str, Module]]:
        return self._modules.items()


def _parameter_lines(items: Iterable[tuple[str, Array]]) -> str:
    """torch's listing of a ParameterList or ParameterDict: ``  (name): Parameter containing:
    [float32 of size 2x3]`` (the library's dtype name: ``torch.float32`` on torch)."""
    return "\n".join(f"  ({name}): Parameter containing: [{value.dtype} of size "
                     f"{'x'.join(str(n) for n in value.shape)}]" for name, value in items)


class _ParameterStore(Module):
    def _store(self, name: str, value: Array | Parameter) -> None:
        if isinstance(value, Parameter):
            self.register_parameter(name, value.data, value.requires_grad)
        else:
            self.register_parameter(name, value)

    def __len__(self) -> int:
        return len(self._parameters)

    def extra_repr(self) -> str:
        return _parameter_lines(self._parameters.items())


class ParameterList(_ParameterStore):
    """A list of parameters named ``0``, ``1``, ...: ``torch.nn.ParameterList``."""

    def __init__(self, values: Iterable[Array | Parameter] | None = None) -> None:
        super().__init__()
        self.extend(values or ())

    def __getitem__(self, index: int | slice) -> Any:
        values = list(self._parameters.values())
        return ParameterList(values[index]) if isinstance(index, slice) else values[index]

    def __setitem__(self, index: int, value: Array | Parameter) -> None:
        self._store(str(range(len(self))[index]), value)

    def __iter__(self) -> Iterator[Array]:
        return iter(self._parameters.values())

    def append(self, value: Array | Parameter) -> ParameterList:
        self._store(str(len(self)), value)
        return self

    def extend(self, values: Iterable[Array | Parameter]) -> ParameterList:
        for value in values:
            self.append(value)
        return self

    __iadd__ = extend


class ParameterDict(_ParameterStore):
    """A dict of parameters named by their keys: ``torch.nn.ParameterDict``."""

    def __init__(self, parameters: Mapping[str, Array | Parameter] | None = None) -> None:
        super().__init__()
        self.update(parameters or {})

    def __getitem__(self, key: str) -> Array:
        return self._parameters[key]

    def __setitem__(self, key: str, value: Array | Parameter) -> None:
        self._store(key, value)

    def __delitem__(self, key: str) -> None:
        del self._parameters[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._parameters)

    def __contains__(self, key: object) -> bool:
        return key in self._parameters

    def keys(self) -> Iterable[str]:
        return self._parameters.keys()

    def values(self) -> Iterable[Array]:
        return self._parameters.values()

    def items(self) -> Iterable[tuple[str, Array]]:
        return self._parameters.items()

    def update(self, parameters: Mapping[str, Array | Parameter] | Iterable[tuple[str, Array | Parameter]]) -> None:
        """The parameters of a mapping (a plain dict's in sorted key order, as torch's), or of
        (name, parameter) pairs, added or replacing those named alike."""
        for key, value in _pairs("xpnn.torch_nn.ParameterDict.update", "ParameterDict", parameters, sort_plain=True):
            self._store(key, value)

    def __reversed__(self) -> Iterator[str]:
        return reversed(list(self._parameters))

    def get(self, key: str, default: Any = None) -> Any:
        return self._parameters.get(key, default)

    def pop(self, key: str) -> Array:
        """The parameter named ``key``, removed."""
        return self._parameters.pop(key)

    def popitem(self) -> tuple[str, Array]:
        """The last parameter added, removed, with its name."""
        return self._parameters.popitem()

    def clear(self) -> None:
        self._parameters.clear()

    def setdefault(self, key: str, default: Array | Parameter | None = None) -> Array:
        if key not in self:
            self[key] = default
        return self[key]

    def copy(self) -> ParameterDict:
        """A new ParameterDict of the same parameters (not copies)."""
        return ParameterDict(OrderedDict(self._parameters))

    def fromkeys(self, keys: Iterable[str], default: Array | Parameter | None = None) -> ParameterDict:
        return ParameterDict([(key, default) for key in keys])

    def __or__(self, other: ParameterDict) -> ParameterDict:
        joined = self.copy()
        joined.update(other)
        return joined

    def __ror__(self, other: ParameterDict) -> ParameterDict:
        joined = other.copy()
        joined.update(self)
        return joined

    def __ior__(self, other: ParameterDict) -> ParameterDict:
        self.update(other)
        return self

"""``torch.nn.utils.parametrize`` for the arrays of any library: a module's parameter computed
from others by a module of its own, ``module.weight = parametrization(original)``, re-computed on
each access.  As in torch, the module's class becomes ``Parametrized<Class>`` with a property for
the name, the originals live in ``module.parametrizations[name]`` (``original``, or
``original0``, ``original1``... where ``right_inverse`` gives several arrays), and the state_dict
names are torch's (``parametrizations.weight.original0``), so a parametrized torch model's
checkpoint (weight norm, spectral norm) loads.  ``cached()`` is accepted and computes as without
it."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from xpnn._dispatch import adapter_of, is_array
from xpnn._types import Array
from xpnn.torch_nn.module import Module, ModuleDict, ModuleList, Parameter

__all__ = ["ParametrizationList", "register_parametrization", "remove_parametrizations", "is_parametrized",
           "type_before_parametrizations", "transfer_parametrizations_and_params", "cached"]


def _where(name: str) -> str:
    return f"xpnn.torch_nn.utils.parametrize.{name}"


class ParametrizationList(ModuleList):
    """The parametrizations of one tensor, applied in order, and its originals (torch's): the
    first one's ``right_inverse`` (identity where it has none) gives the original(s) from the
    tensor's value when registered."""

    def __init__(self, modules: Sequence[Module], original: Array, unsafe: bool = False) -> None:
        super().__init__(modules)
        self.unsafe = unsafe
        new: Any = original
        for module in reversed(list(self)):
            if hasattr(module, "right_inverse"):
                new = module.right_inverse(new)
        self.is_tensor = is_array(new)
        values = [new] if self.is_tensor else list(new)
        for index, value in enumerate(values):
            self.register_parameter(self._original_name(index), value)
        self.ntensors = len(values)
        if not unsafe:
            value = self()
            if tuple(value.shape) != tuple(original.shape) or value.dtype != original.dtype:
                raise ValueError(f"{_where('register_parametrization')}: a parametrization may not change the shape or "
                                 f"dtype of the tensor, unless unsafe=True: {tuple(original.shape)} {original.dtype} "
                                 f"became {tuple(value.shape)} {value.dtype}")

    def _original_name(self, index: int) -> str:
        """torch's name of the ``index``-th original: ``original``, or ``original0``, ``original1``..."""
        return "original" if self.is_tensor else f"original{index}"

    def _originals(self) -> list[Array]:
        return [getattr(self, self._original_name(i)) for i in range(self.ntensors)]

    def forward(self) -> Array:
        """The parametrized tensor: the first parametrization of the originals, then the rest in turn."""
        modules = list(self)
        value = modules[0](*self._originals())
        for module in modules[1:]:
            value = module(value)
        return value

    def right_inverse(self, value: Array) -> None:
        """Set the originals so that the tensor becomes ``value`` (an assignment
        ``module.weight = value``): each parametrization's ``right_inverse``, last first."""
        for module in reversed(list(self)):
            if not hasattr(module, "right_inverse"):
                raise RuntimeError(f"{_where('ParametrizationList')}: parametrization {type(module).__name__} does not "
                                   "implement right_inverse.")
            value = module.right_inverse(value)
        values = [value] if self.is_tensor else list(value)
        for index, (old, new) in enumerate(zip(self._originals(), values)):
            self.register_parameter(self._original_name(index), adapter_of(old).xp.astype(new, old.dtype))


def is_parametrized(module: Module, tensor_name: str | None = None) -> bool:
    """Whether ``module`` has a parametrization (of ``tensor_name``, where given)."""
    parametrizations = module._modules.get("parametrizations")
    if not isinstance(parametrizations, ModuleDict):
        return False
    return len(parametrizations) > 0 if tensor_name is None else tensor_name in parametrizations


def type_before_parametrizations(module: Module) -> type:
    """The module's class before ``register_parametrization`` made it ``Parametrized<Class>``."""
    return type(module).__bases__[0] if is_parametrized(module) else type(module)


def register_parametrization(module: Module, tensor_name: str, parametrization: Module, *,
                             unsafe: bool = False) -> Module:
    """Make ``module.<tensor_name>`` the output of ``parametrization`` (a Module: ``forward``
    maps the original(s) to the tensor, an optional ``right_inverse`` maps a tensor to them);
    a second registration on the same name applies after the first
    (``torch.nn.utils.parametrize.register_parametrization``)."""
    if is_parametrized(module, tensor_name):
        module.parametrizations[tensor_name].append(parametrization)
        return module
    if tensor_name in module._parameters and module._parameters[tensor_name] is not None:
        original = module._parameters[tensor_name]
    elif tensor_name in module._buffers and module._buffers[tensor_name] is not None:
        original = module._buffers[tensor_name]
    else:
        raise ValueError(f"{_where('register_parametrization')}: Module '{type(module).__name__}' does not have a "
                         f"parameter, a buffer, or a parametrized element with name '{tensor_name}'")
    parametrizations = ParametrizationList([parametrization], original, unsafe=unsafe)
    module._drop(tensor_name)
    if not is_parametrized(module):
        module.parametrizations = ModuleDict()
        plain = type(module)
        module.__class__ = type(f"Parametrized{plain.__name__}", (plain,), {})
    module.parametrizations[tensor_name] = parametrizations

    def get(self: Module) -> Array:
        return self.parametrizations[tensor_name]()

    def set(self: Module, value: Array) -> None:
        self.parametrizations[tensor_name].right_inverse(value)

    setattr(type(module), tensor_name, property(get, set))
    return module


def remove_parametrizations(module: Module, tensor_name: str, leave_parametrized: bool = True) -> Module:
    """Undo the parametrizations of ``tensor_name``: the tensor becomes a plain parameter again,
    of its parametrized value (``leave_parametrized``) or of its single original
    (``torch.nn.utils.parametrize.remove_parametrizations``)."""
    if not is_parametrized(module, tensor_name):
        raise ValueError(f"{_where('remove_parametrizations')}: Module {type(module).__name__} does not have a "
                         f"parametrization on {tensor_name}")
    parametrizations = module.parametrizations[tensor_name]
    if leave_parametrized:
        value = getattr(module, tensor_name)
        value = adapter_of(value).stop_gradient(value)
    elif parametrizations.is_tensor:
        value = parametrizations.original
    else:
        raise ValueError(f"{_where('remove_parametrizations')}: Cannot leave unparametrized "
                         "(`leave_parametrized=False`) a tensor that is parametrized in terms of a sequence of "
                         "tensors.")
    delattr(type(module), tensor_name)
    del module.parametrizations._modules[tensor_name]
    module.register_parameter(tensor_name, value)
    if not is_parametrized(module):
        del module.parametrizations
        module.__class__ = type(module).__bases__[0]
    return module


def transfer_parametrizations_and_params(from_module: Module, to_module: Module,
                                         tensor_name: str | None = None) -> Module:
    """``from_module``'s parametrizations (of ``tensor_name``, or all) registered on ``to_module``
    too, its originals the same arrays (shared, so training one trains both); where
    ``to_module`` lacks the tensor, first a parameter of its parametrized value
    (``torch.nn.utils.parametrize.transfer_parametrizations_and_params``)."""
    if not is_parametrized(from_module):
        return to_module
    for name in list(from_module.parametrizations) if tensor_name is None else [tensor_name]:
        if not hasattr(to_module, name):
            setattr(to_module, name, Parameter(getattr(from_module, name)))
        source = from_module.parametrizations[name]
        for parametrization in source:
            register_parametrization(to_module, name, parametrization)
        target = to_module.parametrizations[name]
        for index, original in enumerate(source._originals()):
            target.register_parameter(source._original_name(index), original)
    return to_module


@contextlib.contextmanager
def cached() -> Iterator[None]:
    """torch's cache of parametrized tensors within the block, a speed-up only: accepted, and the
    tensors are computed at each access as without it."""
    yield

"""torch's older, hook-based ``torch.nn.utils.weight_norm`` (deprecated there in favour of
``parametrizations.weight_norm``; still what many checkpoints hold): the parameters
``<name>_g`` and ``<name>_v``, and ``module.<name>`` = g v / ||v|| computed before each call."""
from __future__ import annotations

import warnings
from typing import TypeVar

from xpnn._types import Array
from xpnn.torch_nn.module import Module, Parameter
from xpnn.torch_nn.utils.parametrizations import norm_except_dim, weight_normed

__all__ = ["WeightNorm", "weight_norm", "remove_weight_norm"]

Normed = TypeVar("Normed", bound=Module)


class WeightNorm:
    """The forward pre-hook that recomputes ``module.<name>`` from ``<name>_g`` and ``<name>_v``."""

    def __init__(self, name: str, dim: int) -> None:
        self.name, self.dim = name, dim

    def compute_weight(self, module: Module) -> Array:
        return weight_normed(getattr(module, self.name + "_g"), getattr(module, self.name + "_v"), self.dim)

    current = compute_weight

    def __call__(self, module: Module, inputs: object) -> None:
        object.__setattr__(module, self.name, self.compute_weight(module))


def _hooks_of(module: Module, kind: type) -> list[tuple[int, object]]:
    """The module's forward pre-hooks of type ``kind``, by handle id."""
    hooks = module.__dict__.get("_forward_pre_hooks", {})
    return [(key, hook) for key, (hook, _) in hooks.items() if isinstance(hook, kind)]


def weight_norm(module: Normed, name: str = "weight", dim: int | None = 0) -> Normed:
    """Reparametrize ``module.<name>`` as g v / ||v||, the norm over every dim but ``dim`` (all
    for None), g and v the parameters ``<name>_g`` and ``<name>_v`` (``torch.nn.utils.weight_norm``,
    with torch's deprecation warning)."""
    warnings.warn("`torch.nn.utils.weight_norm` is deprecated in favor of `torch.nn.utils.parametrizations."
                  "weight_norm`.", FutureWarning, stacklevel=2)
    if any(hook.name == name for _, hook in _hooks_of(module, WeightNorm)):
        raise RuntimeError(f"xpnn.torch_nn.utils.weight_norm: Cannot register two weight_norm hooks on the same "
                           f"parameter {name}")
    weight = module._parameters.get(name)
    if weight is None:
        raise ValueError(f"xpnn.torch_nn.utils.weight_norm: {type(module).__name__} has no parameter '{name}'")
    hook = WeightNorm(name, -1 if dim is None else dim)
    module._drop(name)
    setattr(module, name + "_g", Parameter(norm_except_dim(weight, hook.dim)))
    setattr(module, name + "_v", Parameter(weight))
    hook(module, ())
    module.register_forward_pre_hook(hook)
    return module


def remove_weight_norm(module: Normed, name: str = "weight") -> Normed:
    """Make ``module.<name>`` a plain parameter again, of its current value
    (``torch.nn.utils.remove_weight_norm``)."""
    return removed_hook(module, name, WeightNorm, ("_g", "_v"), "weight_norm")


def removed_hook(module: Normed, name: str, kind: type, suffixes: tuple[str, ...], norm: str) -> Normed:
    """``module`` without the hook of type ``kind`` on ``name`` and its parameters and buffers
    ``name + suffix``, ``name`` a plain parameter of the hook's current value."""
    for key, hook in _hooks_of(module, kind):
        if hook.name == name:
            weight = hook.current(module)
            del module.__dict__[name]
            for suffix in suffixes:
                module._drop(name + suffix)
            setattr(module, name, Parameter(weight))
            del module._forward_pre_hooks[key]
            return module
    raise ValueError(f"xpnn.torch_nn.utils.remove_{norm}: {norm} of '{name}' not found in {module}")

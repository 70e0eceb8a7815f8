"""torch's older, hook-based ``torch.nn.utils.spectral_norm`` (the checkpoints of many GAN
discriminators hold it): the parameter ``<name>_orig``, the buffers ``<name>_u`` and ``<name>_v``,
and ``module.<name>`` = W / sigma computed before each call, after one power-method step per
call in training (v first, then u, as torch's hook)."""
from __future__ import annotations

from typing import TypeVar

from xpnn._dispatch import adapter_of
from xpnn._types import Array
from xpnn.torch_nn.module import Module, Parameter
from xpnn.torch_nn.utils.parametrizations import (
    _spectral_dim, as_matrix, power_iterations, random_unit, sigma_divided,
)
from xpnn.torch_nn.utils.weight_norm import _hooks_of, removed_hook

__all__ = ["SpectralNorm", "spectral_norm", "remove_spectral_norm"]

Normed = TypeVar("Normed", bound=Module)


class SpectralNorm:
    """The forward pre-hook that recomputes ``module.<name>`` from ``<name>_orig``, ``_u`` and ``_v``."""

    def __init__(self, name: str, n_power_iterations: int, dim: int, eps: float) -> None:
        self.name, self.n_power_iterations, self.dim, self.eps = name, n_power_iterations, dim, eps

    def compute_weight(self, module: Module, do_power_iteration: bool) -> Array:
        weight = getattr(module, self.name + "_orig")
        matrix = as_matrix(weight, self.dim)
        u, v = getattr(module, self.name + "_u"), getattr(module, self.name + "_v")
        if do_power_iteration:
            u, v = power_iterations(matrix, u, v, self.n_power_iterations, self.eps, u_first=False)
            setattr(module, self.name + "_u", u)
            setattr(module, self.name + "_v", v)
        return sigma_divided(weight, matrix, u, v)

    def current(self, module: Module) -> Array:
        """The weight now, without a power-method step."""
        return self.compute_weight(module, do_power_iteration=False)

    def __call__(self, module: Module, inputs: object) -> None:
        object.__setattr__(module, self.name, self.compute_weight(module, do_power_iteration=module.training))


def spectral_norm(module: Normed, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12,
                  dim: int | None = None) -> Normed:
    """Reparametrize ``module.<name>`` as W / sigma(W), sigma from the power method's vectors
    ``<name>_u`` and ``<name>_v`` (random unit vectors at first), one step per call in training
    (``torch.nn.utils.spectral_norm``; ``dim``: 1 for the transposed convolutions, else 0)."""
    where = "xpnn.torch_nn.utils.spectral_norm"
    if any(hook.name == name for _, hook in _hooks_of(module, SpectralNorm)):
        raise RuntimeError(f"{where}: Cannot register two spectral_norm hooks on the same parameter {name}")
    if n_power_iterations <= 0:
        raise ValueError(f"{where}: Expected n_power_iterations to be positive, but got "
                         f"n_power_iterations={n_power_iterations}")
    weight = module._parameters.get(name)
    if weight is None:
        raise ValueError(f"{where}: {type(module).__name__} has no parameter '{name}'")
    hook = SpectralNorm(name, n_power_iterations, _spectral_dim(module, dim), eps)
    matrix = as_matrix(weight, hook.dim)
    module._drop(name)
    setattr(module, name + "_orig", Parameter(weight))
    object.__setattr__(module, name, adapter_of(weight).stop_gradient(weight))
    module.register_buffer(name + "_u", random_unit(weight, matrix.shape[0], eps))
    module.register_buffer(name + "_v", random_unit(weight, matrix.shape[1], eps))
    module.register_forward_pre_hook(hook)
    return module


def remove_spectral_norm(module: Normed, name: str = "weight") -> Normed:
    """Make ``module.<name>`` a plain parameter again, of its current value
    (``torch.nn.utils.remove_spectral_norm``)."""
    return removed_hook(module, name, SpectralNorm, ("_orig", "_u", "_v"), "spectral_norm")

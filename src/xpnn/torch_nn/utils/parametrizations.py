"""``torch.nn.utils.parametrizations``: weight normalization and spectral normalization as
parametrizations (``parametrize.register_parametrization``), with torch's state_dict names
(``parametrizations.weight.original0``/``original1``; ``parametrizations.weight.original`` and
``parametrizations.weight.0._u``/``_v``), so the checkpoints of torch models that use them load.
The helpers here also serve the older hook-based ``weight_norm`` and ``spectral_norm``."""
from __future__ import annotations

from typing import Any

from xpnn._dispatch import adapter_of
from xpnn._types import Array
from xpnn.random import normal
from xpnn.torch_nn import functional as F
from xpnn.torch_nn._generator import next_key
from xpnn.torch_nn.layers import ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from xpnn.torch_nn.module import Module
from xpnn.torch_nn.utils.parametrize import register_parametrization

__all__ = ["weight_norm", "spectral_norm"]


def norm_except_dim(v: Array, dim: int) -> Array:
    """||v||_2 over every dim but ``dim``, kept as size-1 dims (torch's ``norm_except_dim``); over
    all of ``v`` (a 0-d array) for ``dim`` -1."""
    xp = adapter_of(v).xp
    if dim == -1:
        return xp.sqrt(xp.sum(v * v))
    others = tuple(axis for axis in range(v.ndim) if axis != dim % v.ndim)
    return xp.sqrt(xp.sum(v * v, axis=others, keepdims=True))


def weight_normed(g: Array, v: Array, dim: int) -> Array:
    """w = g v / ||v|| (``torch._weight_norm``), the norm over every dim but ``dim``."""
    return v * (g / norm_except_dim(v, dim))


class _WeightNorm(Module):
    """The weight-norm parametrization: ``forward(g, v)`` = g v / ||v||, ``right_inverse(w)`` = (||w||, w)."""

    def __init__(self, dim: int | None = 0) -> None:
        super().__init__()
        self.dim = -1 if dim is None else dim

    def forward(self, weight_g: Array, weight_v: Array) -> Array:
        return weight_normed(weight_g, weight_v, self.dim)

    def right_inverse(self, weight: Array) -> tuple[Array, Array]:
        return norm_except_dim(weight, self.dim), weight


def weight_norm(module: Module, name: str = "weight", dim: int | None = 0) -> Module:
    """Reparametrize ``module.<name>`` as g v / ||v|| (Salimans & Kingma 2016), the norm over
    every dim but ``dim`` (all of them for None): ``parametrizations.<name>.original0`` is g,
    ``original1`` is v (``torch.nn.utils.parametrizations.weight_norm``)."""
    return register_parametrization(module, name, _WeightNorm(dim), unsafe=True)


def as_matrix(weight: Array, dim: int) -> Array:
    """``weight`` with ``dim`` first and the other dims flattened: ``(shape[dim], -1)``."""
    xp = adapter_of(weight).xp
    if dim != 0:
        weight = xp.permute_dims(weight, (dim, *(axis for axis in range(weight.ndim) if axis != dim)))
    return xp.reshape(weight, (weight.shape[0], -1))


def power_iterations(matrix: Array, u: Array, v: Array, count: int, eps: float, u_first: bool) -> tuple[Array, Array]:
    """``count`` steps of the power method for the top singular vectors of ``matrix`` (outside
    autodiff): u = normalize(W v), v = normalize(W^T u), in that order (``u_first``, the
    parametrization's) or v first (the older hook's)."""
    ops = adapter_of(matrix)
    matrix = ops.stop_gradient(matrix)
    for _ in range(count):
        if u_first:
            u = F.normalize(matrix @ v, dim=0, eps=eps)
        v = F.normalize(ops.xp.permute_dims(matrix, (1, 0)) @ u, dim=0, eps=eps)
        if not u_first:
            u = F.normalize(matrix @ v, dim=0, eps=eps)
    return u, v


def sigma_divided(weight: Array, matrix: Array, u: Array, v: Array) -> Array:
    """``weight`` / sigma, sigma = u^T W v the estimated largest singular value."""
    xp = adapter_of(weight).xp
    return weight / xp.sum(u * (matrix @ v))


def random_unit(like: Array, size: int, eps: float) -> Array:
    """A random unit vector of ``size`` in ``like``'s library, device and dtype (the global generator)."""
    return F.normalize(normal(next_key(like), (size,), like.dtype), dim=0, eps=eps)


class _SpectralNorm(Module):
    """The spectral-norm parametrization: ``forward(w)`` = w / sigma(w), sigma from the power
    method's ``_u`` and ``_v`` (one more step per call in training); a 1-D w is normalized."""

    def __init__(self, weight: Array, n_power_iterations: int = 1, dim: int = 0, eps: float = 1e-12) -> None:
        super().__init__()
        where = "xpnn.torch_nn.utils.parametrizations.spectral_norm"
        if not -weight.ndim <= dim < max(weight.ndim, 1):
            raise IndexError(f"{where}: Dimension out of range (expected to be in range of [-{weight.ndim}, "
                             f"{weight.ndim - 1}] but got {dim})")
        if n_power_iterations <= 0:
            raise ValueError(f"{where}: Expected n_power_iterations to be positive, but got "
                             f"n_power_iterations={n_power_iterations}")
        self.dim, self.eps = dim % max(weight.ndim, 1), eps
        if weight.ndim > 1:
            self.n_power_iterations = n_power_iterations
            matrix = as_matrix(weight, self.dim)
            u, v = random_unit(weight, matrix.shape[0], eps), random_unit(weight, matrix.shape[1], eps)
            u, v = power_iterations(matrix, u, v, 15, eps, u_first=True)
            self.register_buffer("_u", u)
            self.register_buffer("_v", v)

    def forward(self, weight: Array) -> Array:
        if weight.ndim == 1:
            return F.normalize(weight, dim=0, eps=self.eps)
        matrix = as_matrix(weight, self.dim)
        if self.training:
            self._u, self._v = power_iterations(matrix, self._u, self._v, self.n_power_iterations, self.eps, True)
        return sigma_divided(weight, matrix, self._u, self._v)

    def right_inverse(self, value: Array) -> Array:
        return value


def spectral_norm(module: Module, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12,
                  dim: int | None = None) -> Module:
    """Reparametrize ``module.<name>`` as W / sigma(W) (Miyato et al. 2018), sigma the largest
    singular value of W read as ``(shape[dim], -1)`` (``dim``: 1 for the transposed
    convolutions, else 0), estimated by the power method: 15 steps now, then one more per
    access in training (``torch.nn.utils.parametrizations.spectral_norm``)."""
    weight = getattr(module, name, None)
    if weight is None or not hasattr(weight, "shape"):
        raise ValueError(f"xpnn.torch_nn.utils.parametrizations.spectral_norm: Module '{module}' has no parameter or "
                         f"buffer with name '{name}'")
    return register_parametrization(module, name, _SpectralNorm(weight, n_power_iterations, _spectral_dim(module, dim),
                                                                eps))


def _spectral_dim(module: Any, dim: int | None) -> int:
    """The spectral norm's default dim: 1 for the transposed convolutions (their weight is
    ``(in, out, *k)``), else 0."""
    if dim is not None:
        return dim
    return 1 if isinstance(module, (ConvTranspose1d, ConvTranspose2d, ConvTranspose3d)) else 0

"""``torch.nn.utils.parametrizations``: weight normalization, spectral normalization and
orthogonal matrices as parametrizations (``parametrize.register_parametrization``), with torch's
state_dict names (``parametrizations.weight.original0``/``original1``;
``parametrizations.weight.original`` and ``parametrizations.weight.0._u``/``_v`` or ``.0.base``),
so the checkpoints of torch models that use them load.
The helpers here also serve the older hook-based ``weight_norm`` and ``spectral_norm``."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from xpnn._dispatch import adapter_of, fast_paths_enabled, is_array
from xpnn._kernel_check import LAYER_KERNELS, layer_kernel_agrees, outputs_disagreement
from xpnn._types import Array
from xpnn.initializers import orthonormal_columns
from xpnn.random import normal
from xpnn.torch_nn import functional as F
from xpnn.torch_nn._generator import next_key
from xpnn.torch_nn.layers import ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from xpnn.torch_nn.module import Module
from xpnn.torch_nn.utils.parametrize import register_parametrization

__all__ = ["weight_norm", "spectral_norm", "orthogonal"]


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


#: The degree of the written-once matrix exponential's Taylor series, summed for a matrix scaled
#: to a 1-norm of at most 1: the terms left out are below 1/19! (8e-18), under float64's eps.
_TAYLOR_DEGREE = 18
_MATRIX_EXP = "matrix_exp"


def matrix_exp(a: Array) -> Array:
    """exp(a) = sum_k a^k / k! of the square matrices ``a`` ``(..., n, n)`` (``torch.matrix_exp``):
    the library's own (``fused_matrix_exp``) where it agreed with the written-once one on this
    machine, else the written-once: a / 2^s of 1-norm at most 1, its Taylor series to degree 18
    by Horner's rule, squared s times (s read from the norm: eager arrays only)."""
    ops = adapter_of(a)
    if fast_paths_enabled() and layer_kernel_agrees(_MATRIX_EXP, ops, a):
        fused = ops.fused_matrix_exp(a)
        if fused is not None:
            return fused
    return _matrix_exp_series(ops, a)


def _matrix_exp_series(ops: Any, a: Array) -> Array:
    xp = ops.xp
    norm = float(ops.to_host(ops.stop_gradient(xp.max(xp.sum(xp.abs(a), axis=-2))))) if math.prod(a.shape) else 0.0
    squarings = max(0, math.ceil(math.log2(norm))) if norm > 1 else 0
    scaled = a / 2.0 ** squarings
    identity = xp.eye(a.shape[-1], dtype=a.dtype, device=ops.device_of(a))
    result = identity
    for k in range(_TAYLOR_DEGREE, 0, -1):
        result = identity + (scaled @ result) / k
    for _ in range(squarings):
        result = result @ result
    return result


def _matrix_exp_disagreement(ops: Any, dtype: Any, device: Any) -> str | None:
    """Why the library's matrix exponential and the written-once series differ on a fixed probe
    (a skew-symmetric 6 x 6 matrix of norm about 10, as the orthogonal map's, and a general one
    of norm about 3); None if they agree."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 6)) * 2.0
    tolerance = 32 * float(ops.xp.finfo(dtype).eps)  # torch's was 7 to 9 eps off the series on this probe
    for matrix in (x - x.T, x / 4):
        probe = ops.xp.astype(ops.from_host(matrix, device), dtype)
        fused = ops.fused_matrix_exp(probe)
        if fused is None:
            return None
        reason = outputs_disagreement(ops, [fused], [_matrix_exp_series(ops, probe)], tolerance,
                                      "the library's matrix exponential", "the written-once series")
        if reason is not None:
            return reason
    return None


LAYER_KERNELS[_MATRIX_EXP] = _matrix_exp_disagreement


def _per_matrix(function: Callable[..., Any], *arrays: Array) -> Any:
    """``function`` of 2-D matrices applied to each matrix of the batches ``arrays`` ``(..., n, k)``,
    its results (one array or a tuple) stacked back into the batch shape."""
    xp = adapter_of(arrays[0]).xp
    batch = arrays[0].shape[:-2]
    if not batch:
        return function(*arrays)
    flat = [xp.reshape(a, (-1, *a.shape[-2:])) for a in arrays]
    results = [function(*(a[index, ...] for a in flat)) for index in range(flat[0].shape[0])]
    if isinstance(results[0], tuple):
        return tuple(xp.reshape(xp.stack(parts), (*batch, *parts[0].shape)) for parts in zip(*results))
    return xp.reshape(xp.stack(results), (*batch, *results[0].shape))


def _eye(like: Array, n: int, k: int) -> Array:
    """The ``(n, k)`` identity in ``like``'s library, device and dtype, cut from a square one
    (Dask's non-square ``eye`` misses blocks of its graph)."""
    ops = adapter_of(like)
    return ops.xp.eye(max(n, k), dtype=like.dtype, device=ops.device_of(like))[:n, :k]


def _transposed(x: Array) -> Array:
    return adapter_of(x).xp.matrix_transpose(x)


def _diagonal(x: Array) -> Array:
    """The main diagonal of the tall matrices ``x`` ``(..., n, k)``, ``(..., k)``."""
    k = x.shape[-1]
    return adapter_of(x).xp.sum(x[..., :k, :] * _eye(x, k, k), axis=-2)


def householder_product(a: Array, tau: Array) -> Array:
    """The first k columns of H_1 ... H_k, H_i = I - tau_i v_i v_i^T, v_i column i of the tall
    ``a`` ``(..., n, k)`` below its diagonal with a 1 on it (``torch.linalg.householder_product``)."""
    ops = adapter_of(a)
    xp = ops.xp
    n, k = a.shape[-2:]
    device = ops.device_of(a)
    rows = xp.arange(n, device=device)[:, None]
    q = _eye(a, n, k)
    for i in range(k - 1, -1, -1):
        v = xp.where(rows < i, xp.zeros_like(a[..., i:i + 1]), xp.where(rows == i, xp.ones_like(a[..., i:i + 1]),
                                                                          a[..., i:i + 1]))
        q = q - tau[..., i:i + 1, None] * v * (_transposed(v) @ q)
    return q


def _householder_qr(a: Array) -> tuple[Array, Array]:
    """LAPACK's ``geqrf`` of the tall matrix ``a`` ``(n, k)`` (``torch.geqrf``): R on and above the
    diagonal, the reflectors' vectors below it (their leading 1 implied), and their ``tau``; a
    column with nothing to reflect gets tau 0."""
    ops = adapter_of(a)
    xp = ops.xp
    n, k = a.shape
    rows = xp.arange(n, device=ops.device_of(a))
    work, columns, taus = a, [], []
    for j in range(k):
        column = work[:, j]
        below = rows > j
        alpha = column[j]
        rest = xp.sqrt(xp.sum(xp.where(below, column, xp.zeros_like(column)) ** 2))
        nothing = rest == 0
        norm = xp.sqrt(alpha * alpha + rest * rest)
        beta = xp.where(alpha >= 0, -norm, norm)  # LAPACK's -sign(alpha) |x|, the sign of 0 taken as +
        tau = xp.where(nothing, xp.zeros_like(alpha), (beta - alpha) / xp.where(nothing, xp.ones_like(beta), beta))
        scale = xp.where(nothing, xp.ones_like(alpha), 1 / xp.where(nothing, xp.ones_like(beta), alpha - beta))
        v = xp.where(rows == j, xp.ones_like(column), xp.where(below, column * scale, xp.zeros_like(column)))
        columns.append(xp.where(rows == j, xp.where(nothing, alpha, beta), xp.where(below, column * scale, column)))
        taus.append(tau)
        work = work - tau * v[:, None] * (v[None, :] @ work)
    return xp.stack(columns, axis=1), xp.stack(taus)


def _made_orthogonal(a: Array) -> Array:
    """Q of the QR decomposition of the tall ``a`` with R's diagonal positive (torch's ``_make_orthogonal``)."""
    return _per_matrix(lambda matrix: orthonormal_columns(adapter_of(matrix), matrix), a)


def _is_orthogonal(q: Array) -> bool:
    """Whether Q^T Q is the identity within 10 n eps (torch's ``_is_orthogonal``)."""
    ops = adapter_of(q)
    n, k = q.shape[-2:]
    gram = ops.to_host(ops.stop_gradient(_transposed(q) @ q))
    return bool(np.allclose(gram, np.eye(k), atol=10 * n * float(ops.xp.finfo(q.dtype).eps)))


_ORTHOGONAL_MAPS = ("matrix_exp", "cayley", "householder")


class _Orthogonal(Module):
    """The orthogonal parametrization: ``forward(X)`` is orthogonal (orthonormal columns of a tall
    matrix, rows of a wide one), from X's lower triangle by ``orthogonal_map``: exp(A) or the
    Cayley map (I - A/2)^-1 (I + A/2), A = L - L^T the skew-symmetric matrix of X's lower
    triangle L (a wide square made of a tall X, its first k columns kept), or the product of
    the Householder reflectors below X's diagonal, each column times the sign on it; with the
    trivialization, ``base`` times that."""

    def __init__(self, weight: Array, orthogonal_map: str, *, use_trivialization: bool = True) -> None:
        super().__init__()
        self.shape = tuple(weight.shape)
        self.orthogonal_map = orthogonal_map
        if use_trivialization:
            self.register_buffer("base", None)

    def forward(self, X: Array) -> Array:
        ops = adapter_of(X)
        xp = ops.xp
        n, k = X.shape[-2:]
        transposed = n < k
        if transposed:
            X, (n, k) = _transposed(X), (k, n)
        if self.orthogonal_map in ("matrix_exp", "cayley"):
            X = xp.tril(X)
            if n != k:  # embedded in a square matrix
                X = xp.concat([X, xp.zeros((*X.shape[:-2], n, n - k), dtype=X.dtype, device=ops.device_of(X))],
                              axis=-1)
            A = X - _transposed(X)
            if self.orthogonal_map == "matrix_exp":
                Q = matrix_exp(A)
            else:
                identity = xp.eye(n, dtype=A.dtype, device=ops.device_of(A))
                Q = _per_matrix(ops.solve, identity - 0.5 * A, identity + 0.5 * A)
            if n != k:
                Q = Q[..., :k]
        else:
            A = xp.tril(X, k=-1)
            Q = householder_product(A, 2.0 / (1.0 + xp.sum(A * A, axis=-2)))
            Q = Q * ops.stop_gradient(xp.trunc(_diagonal(X)))[..., None, :]
        if "base" in self._buffers:
            Q = self.base @ Q
        return _transposed(Q) if transposed else Q

    def right_inverse(self, Q: Array) -> Array:
        ops = adapter_of(Q)
        xp = ops.xp
        if tuple(Q.shape) != self.shape:
            raise ValueError(f"Expected a matrix or batch of matrices of shape {self.shape}. Got a tensor of shape "
                             f"{tuple(Q.shape)}.")
        Q = ops.stop_gradient(Q)
        initial = Q
        n, k = Q.shape[-2:]
        transpose = n < k
        if transpose:
            Q, (n, k) = _transposed(Q), (k, n)
        if "base" not in self._buffers:
            if self.orthogonal_map in ("matrix_exp", "cayley"):
                raise NotImplementedError("It is not possible to assign to the matrix exponential or the Cayley "
                                          "parametrizations when use_trivialization=False.")
            A, tau = _per_matrix(_householder_qr, Q)
            diagonal = xp.sign(_diagonal(A))
            diagonal = xp.where(tau == 0, -diagonal, diagonal)  # LAPACK's unreflected columns
            eye = _eye(A, n, k)
            A = A * (1 - eye) + diagonal[..., None, :] * eye
            return _transposed(A) if transpose else A
        if n == k:
            Q = Q if _is_orthogonal(Q) else _made_orthogonal(Q)
        else:  # completed into a square orthogonal matrix
            Q = _made_orthogonal(xp.concat([Q, normal(next_key(Q), (*Q.shape[:-2], n, n - k), Q.dtype)], axis=-1))
        self.base = Q
        m, l = initial.shape[-2:]
        return -_eye(initial, m, l) + xp.zeros_like(initial)


def orthogonal(module: Module, name: str = "weight", orthogonal_map: str | None = None, *,
               use_trivialization: bool = True) -> Module:
    """Reparametrize the matrix (or batch of matrices) ``module.<name>`` as an orthogonal one
    (``torch.nn.utils.parametrizations.orthogonal``): Q^T Q = I for a tall Q, Q Q^T = I for a
    wide one, by ``orthogonal_map`` ('matrix_exp', 'cayley', 'householder'; default:
    'matrix_exp' for a square matrix, else 'householder') of the unconstrained
    ``parametrizations.<name>.original``; with ``use_trivialization`` (the default), times the
    buffer ``parametrizations.<name>.0.base``, the weight's orthogonalization (QR) at the start."""
    where = "xpnn.torch_nn.utils.parametrizations.orthogonal"
    weight = getattr(module, name, None)
    if not is_array(weight):
        raise ValueError(f"{where}: Module '{module}' has no parameter or buffer with name '{name}'")
    if weight.ndim < 2:
        raise ValueError(f"{where}: Expected a matrix or batch of matrices. Got a tensor of {weight.ndim} dimensions.")
    if orthogonal_map is None:
        orthogonal_map = "matrix_exp" if weight.shape[-2] == weight.shape[-1] else "householder"
    if orthogonal_map not in _ORTHOGONAL_MAPS:
        raise ValueError(f'{where}: orthogonal_map has to be one of "matrix_exp", "cayley", "householder". Got: '
                         f"{orthogonal_map}")
    return register_parametrization(module, name, _Orthogonal(weight, orthogonal_map,
                                                              use_trivialization=use_trivialization), unsafe=True)

"""``torch.nn.utils``' gradient clipping for parameters that carry their gradients in ``.grad``
(torch tensors: an ``xpnn.torch_nn`` model on torch trains with ``torch.optim``), and the total
norm of any library's arrays (a jax user clips the gradients ``jax.grad`` returned with it).
The gradients are scaled in place, outside autograd, as torch's are."""
from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from xpnn._dispatch import adapter_of, is_array
from xpnn._types import Array
from xpnn.torch_nn import functional as F

__all__ = ["get_total_norm", "clip_grads_with_norm_", "clip_grad_norm_", "clip_grad_norm", "clip_grad_value_"]


def _where(name: str) -> str:
    return f"xpnn.torch_nn.utils.{name}"


def _arrays(tensors: Array | Iterable[Array]) -> list[Array]:
    return [tensors] if is_array(tensors) else list(tensors)


def _grads(name: str, parameters: Array | Iterable[Array]) -> tuple[list[Array], list[Array]]:
    """The parameters, and the gradients of those that have one (``.grad`` not None)."""
    parameters = _arrays(parameters)
    bare = [p for p in parameters if not hasattr(p, "grad")]
    if bare:
        raise TypeError(f"{_where(name)}: the parameters must carry their gradients in .grad (torch tensors do); "
                        f"{type(bare[0]).__module__}.{type(bare[0]).__name__} arrays do not: clip the gradients your "
                        "library returned (xpnn.torch_nn.utils.get_total_norm of them, then scale them)")
    return parameters, [p.grad for p in parameters if p.grad is not None]


def _vector_norm(xp: Any, x: Array, order: float) -> Array:
    """The ``order``-norm of all of ``x``'s elements (``functional._p_norm``); for no elements 0
    for inf, where torch refuses, and inf for -inf."""
    if order in (math.inf, -math.inf) and math.prod(x.shape) == 0:
        return xp.asarray(0.0 if order > 0 else math.inf, dtype=x.dtype)
    return F._p_norm(xp, x, order)


def get_total_norm(tensors: Array | Iterable[Array], norm_type: float | str = 2.0, error_if_nonfinite: bool = False,
                   foreach: bool | None = None) -> Array:
    """The ``norm_type``-norm of all the ``tensors``' elements together: the norm of their norms
    (``torch.nn.utils.get_total_norm``); 0 for no tensors.  ``error_if_nonfinite``: a
    RuntimeError when it is nan or inf.  ``foreach`` is accepted and changes nothing."""
    order = float(norm_type)
    tensors = _arrays(tensors)
    if not tensors:
        return np.asarray(0.0, np.float32)
    xp = adapter_of(tensors[0]).xp
    dtype = xp.result_type(*tensors)
    norms = xp.stack([xp.astype(_vector_norm(xp, t, order), dtype) for t in tensors])
    total = _vector_norm(xp, norms, order)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(f"{_where('get_total_norm')}: The total norm of order {order} for gradients from "
                           "`parameters` is non-finite, so it cannot be clipped. To disable this error and scale the "
                           "gradients by the non-finite norm anyway, set `error_if_nonfinite=False`")
    return total


def clip_grads_with_norm_(parameters: Array | Iterable[Array], max_norm: float, total_norm: Array,
                          foreach: bool | None = None) -> None:
    """Scale the parameters' gradients in place by min(1, max_norm / (total_norm + 1e-6))
    (``torch.nn.utils.clip_grads_with_norm_``)."""
    _, grads = _grads("clip_grads_with_norm_", parameters)
    for grad in grads:
        ops = adapter_of(grad)
        coefficient = ops.xp.clip(max_norm / (total_norm + 1e-6), max=1.0)
        ops.write_untracked(grad, grad * ops.xp.astype(coefficient, grad.dtype))


def clip_grad_norm_(parameters: Array | Iterable[Array], max_norm: float, norm_type: float | str = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None) -> Array:
    """Clip the parameters' gradients, together, to a ``norm_type``-norm of at most ``max_norm``,
    in place; returns their total norm before clipping (``torch.nn.utils.clip_grad_norm_``; 0
    where no parameter has a gradient)."""
    parameters, grads = _grads("clip_grad_norm_", parameters)
    if not grads:
        return adapter_of(parameters[0]).xp.asarray(0.0) if parameters else np.asarray(0.0, np.float32)
    total = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(parameters, max_norm, total, foreach)
    return total


def clip_grad_norm(parameters: Array | Iterable[Array], max_norm: float, norm_type: float | str = 2.0,
                   error_if_nonfinite: bool = False, foreach: bool | None = None) -> Array:
    """Deprecated, as in torch: ``clip_grad_norm_``."""
    warnings.warn("`torch.nn.utils.clip_grad_norm` is now deprecated in favor of `torch.nn.utils.clip_grad_norm_`.",
                  FutureWarning, stacklevel=2)
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


def clip_grad_value_(parameters: Array | Iterable[Array], clip_value: float, foreach: bool | None = None) -> None:
    """Clip each gradient element to [-clip_value, clip_value], in place (``torch.nn.utils.clip_grad_value_``)."""
    _, grads = _grads("clip_grad_value_", parameters)
    for grad in grads:
        ops = adapter_of(grad)
        ops.write_untracked(grad, ops.xp.clip(grad, -clip_value, clip_value))

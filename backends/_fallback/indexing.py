"""Indexing, standard-only: ``take_along_axis`` for namespaces of standards before 2024.12."""
from __future__ import annotations

import array_api_compat

from xpnn._types import Array, Namespace


def take_along_axis(xp: Namespace, x: Array, indices: Array, axis: int) -> Array:
    """``x``'s elements at ``indices`` along ``axis`` (the 2024.12 standard's ``take_along_axis``;
    ``indices`` of ``x``'s shape but any size along ``axis``, in range): each output element is
    the sum over that axis of ``x`` where the position equals its index (exact: one term)."""
    axis = axis % x.ndim
    order = (*range(axis), *range(axis + 1, x.ndim), axis)
    back = (*range(axis), x.ndim - 1, *range(axis, x.ndim - 1))
    values, wanted = xp.permute_dims(x, order), xp.permute_dims(indices, order)
    positions = xp.arange(x.shape[axis], dtype=indices.dtype, device=array_api_compat.device(x))
    hit = wanted[..., None] == positions
    picked = xp.sum(xp.where(hit, values[..., None, :], xp.zeros_like(values[..., None, :])), axis=-1)
    return xp.permute_dims(picked, back)

"""``einsum`` of one or two operands, standard-only (a batched ``matmul``)."""
from __future__ import annotations

import math

from xpnn._einsum import parse_einsum
from xpnn._types import Array, Namespace


def _sum_unused(xp: Namespace, x: Array, term: str, keep: set[str]) -> tuple[Array, str]:
    """Sum over the indices of ``term`` that no other operand nor the output has."""
    if len(set(term)) != len(term):
        raise NotImplementedError(f"einsum: repeated index in one operand ({term!r}, a diagonal) needs a native einsum")
    drop = tuple(i for i, c in enumerate(term) if c not in keep)
    if drop:
        x = xp.sum(x, axis=drop)
        term = "".join(c for c in term if c in keep)
    return x, term


def einsum(xp: Namespace, subscripts: str, *operands: Array) -> Array:
    """``einsum`` of one or two operands with the standard only.

    Two operands become one batched ``matmul``: each is transposed to
    ``(batch, free, contracted)`` and reshaped to three dims; size-1 batch dims
    broadcast.  More operands and diagonals (a repeated index in one operand)
    need the library's own einsum.
    """
    terms, output = parse_einsum(subscripts, [x.ndim for x in operands])
    if len(operands) == 1:
        x, term = _sum_unused(xp, operands[0], terms[0], set(output))
        return xp.permute_dims(x, tuple(term.index(c) for c in output))
    if len(operands) != 2:
        raise NotImplementedError("einsum: the standard-only einsum takes one or two operands")
    (a, b), (ta, tb) = operands, terms
    a, ta = _sum_unused(xp, a, ta, set(tb) | set(output))
    b, tb = _sum_unused(xp, b, tb, set(ta) | set(output))
    batch = [c for c in output if c in ta and c in tb]
    contracted = [c for c in ta if c in tb and c not in output]
    left = [c for c in ta if c not in tb]
    right = [c for c in tb if c not in ta]
    size = {}
    for term, x in ((ta, a), (tb, b)):
        for c, n in zip(term, x.shape):
            if c in contracted and size.get(c, n) != n:
                raise ValueError(f"einsum: index {c!r} has sizes {size[c]} and {n}")
            size[c] = n if size.get(c, 1) == 1 else size[c]
    batch_shape = tuple(size[c] for c in batch)
    a = xp.permute_dims(a, tuple(ta.index(c) for c in batch + left + contracted))
    b = xp.permute_dims(b, tuple(tb.index(c) for c in batch + contracted + right))
    a = xp.broadcast_to(a, batch_shape + tuple(a.shape[len(batch):]))
    b = xp.broadcast_to(b, batch_shape + tuple(b.shape[len(batch):]))
    n_left, n_contracted, n_right = (math.prod(size[c] for c in group) for group in (left, contracted, right))
    n_batch = math.prod(batch_shape)
    product = xp.matmul(xp.reshape(a, (n_batch, n_left, n_contracted)), xp.reshape(b, (n_batch, n_contracted, n_right)))
    product = xp.reshape(product, batch_shape + tuple(size[c] for c in left + right))
    order = batch + left + right
    return xp.permute_dims(product, tuple(order.index(c) for c in output))

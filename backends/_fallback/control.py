"""Control flow, standard-only: ``scan``, a Python loop over the leading axis."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xpnn._types import Namespace


def scan(xp: Namespace, f: Callable[[Any, Any], tuple[Any, Any]], init: Any, xs: Any, length: int | None,
         reverse: bool) -> tuple[Any, Any]:
    """``jax.lax.scan``'s meaning: ``carry, y = f(carry, x)`` for each ``x`` of ``xs`` along its
    leading axis (backwards when ``reverse``), returning the last carry and the ``y``'s stacked
    in ``xs``'s order.  ``xs`` and the ``y``'s are trees of arrays (dicts, lists, tuples; None
    for ``xs`` needs ``length``)."""
    from xpnn.trees import tree_leaves, tree_map  # the trees import the dispatch, which imports the backends

    leaves = tree_leaves(xs)
    steps = length if length is not None else (leaves[0].shape[0] if leaves else None)
    if steps is None:
        raise ValueError("scan: length must be given when xs has no arrays")
    for leaf in leaves:
        if leaf.shape[0] != steps:
            raise ValueError(f"scan: every array of xs must have {steps} rows along its leading axis, "
                             f"got shape {tuple(leaf.shape)}")
    carry, ys = init, []
    for step in (reversed(range(steps)) if reverse else range(steps)):
        carry, y = f(carry, tree_map(lambda a, i=step: a[i, ...], xs))
        ys.append(y)
    if reverse:
        ys.reverse()
    if not ys:
        _, y = f(carry, tree_map(lambda a: xp.zeros(tuple(a.shape[1:]), dtype=a.dtype), xs))
        return carry, tree_map(lambda a: xp.zeros((0, *a.shape), dtype=a.dtype), y)
    return carry, tree_map(lambda *rows: xp.stack(rows), *ys)

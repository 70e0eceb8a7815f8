"""Nested containers of arrays (variables, batches), and moving them between libraries.

A tree is a value made of dicts (any mapping), lists and tuples, with arrays
or plain values as leaves; ``None`` is an empty subtree, as in JAX.  xpnn's
variables are such trees of plain dicts, so they are JAX pytrees as they are
and need no registration.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import array_api_compat

from xpnn._checks import library_of
from xpnn.backends import dtype_name
from xpnn._dispatch import adapter_of

__all__ = ["tree_map", "tree_leaves", "to_backend"]

Tree = Any


class Box:
    """A tree node holding one subtree, ``value``, with metadata that tree functions keep
    (``xpnn.Partitioned``): ``tree_map`` maps the value and rebuilds the box around it."""

    value: Any

    def replace_boxed(self, value: Any) -> Box:
        raise NotImplementedError


def tree_map(function: Callable[..., Any], tree: Tree, *rest: Tree,
             is_leaf: Callable[[Any], bool] | None = None) -> Tree:
    """``function`` applied to every leaf of ``tree`` (and the matching leaves of
    ``rest``, which have ``tree``'s structure), in a tree of the same structure.

    Mappings come back as plain dicts, lists as lists, tuples as tuples
    (named tuples keep their type), boxes (``xpnn.Partitioned``) as boxes.  A
    subtree for which ``is_leaf`` is true is a leaf (``jax.tree_util.tree_map``'s
    ``is_leaf``), as is what it matches in ``rest``.
    """
    if is_leaf is not None and is_leaf(tree):
        return function(tree, *rest)
    if tree is None:
        return None
    if isinstance(tree, Mapping):
        return {k: tree_map(function, v, *(r[k] for r in rest), is_leaf=is_leaf) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        items = [tree_map(function, v, *(r[i] for r in rest), is_leaf=is_leaf) for i, v in enumerate(tree)]
        if isinstance(tree, list):
            return items
        return type(tree)(*items) if hasattr(tree, "_fields") else tuple(items)
    if isinstance(tree, Box):
        return tree.replace_boxed(tree_map(function, tree.value, *(r.value if isinstance(r, Box) else r for r in rest),
                                           is_leaf=is_leaf))
    return function(tree, *rest)


def tree_leaves(tree: Tree) -> list[Any]:
    """The leaves of ``tree`` in the order ``tree_map`` visits them (dicts in insertion order)."""
    leaves: list[Any] = []
    tree_map(leaves.append, tree)
    return leaves


def to_backend(tree: Tree, like: Any) -> Tree:
    """Every array of ``tree`` as an array of ``like``'s library, on ``like``'s device.

    ``like`` is an array or an array namespace (``torch``, ``jax.numpy``,
    ``numpy``, ``array_api_strict``...; a namespace means its default device).
    Arrays already in that library only move device; others go through host
    memory (a dask graph is computed there).  bfloat16 travels as float32 and
    is cast back where the target library has bfloat16.  Values, shapes and
    dtypes are kept, so a flax checkpoint converted to torch applies unchanged,
    and xpnn variables converted to ``jax.numpy`` are flax variables.
    """
    target, device = library_of(like, "xpnn.to_backend")

    def convert(leaf: Any) -> Any:
        if not array_api_compat.is_array_api_obj(leaf):
            return leaf
        source = adapter_of(leaf)
        if source is target:
            return target.to_device(leaf, device)
        leaf = source.key_data(leaf)
        name = dtype_name(leaf.dtype)
        if name == "bfloat16":
            leaf = source.xp.astype(leaf, source.xp.float32)
        elif target.dtype_named(name) is None:
            raise TypeError(f"xpnn.to_backend: {target.name} has no {name}, the dtype of an array of shape "
                            f"{tuple(leaf.shape)} in the tree; cast it first")
        out = target.from_host(source.to_host(leaf), device)
        bfloat16 = target.dtype_named("bfloat16") if name == "bfloat16" else None
        return target.xp.astype(out, bfloat16) if bfloat16 is not None else out

    return tree_map(convert, tree)

"""Lifted transforms of modules: ``scan`` (flax.linen's ``nn.scan``, for a module with shared params),
``checkpoint``/``remat`` (flax.linen's, recomputing a module's intermediates in the backward pass),
and ``run_with_mapped_variables``, the variable mapping ``SpectralNorm`` and ``WeightNorm`` wrap
a layer with (flax.linen's ``nn.map_variables``).

``xpnn.scan(Cell, variable_broadcast='params', split_rngs={'params': False}, in_axes=1,
out_axes=1)`` makes a module class that runs ``Cell``'s ``__call__(carry, *xs)`` over an axis
of ``xs`` with one set of parameters, on the adapters' ``scan`` primitive (``jax.lax.scan`` on
jax, so ``jax.jit`` traces one step).  The parameters are the cell's, under the new module's
own name (``ScanLSTMCell_0``), as in flax.

flax's other lifting options need variables per step or collections carried across steps;
xpnn refuses them with an error that says so: ``variable_axes`` (per-step variables stacked
along an axis), ``variable_carry``, ``split_rngs={'params': True}`` (per-step parameter keys),
and collections other than 'params' written inside the loop.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import array_api_compat

from xpnn._dispatch import adapter_of
from xpnn.module import Module, ModuleError, compact
from xpnn.trees import tree_leaves, tree_map

__all__ = ["scan", "checkpoint", "remat"]

#: ``leaf_fn(collection, path, value)``: a variable of a wrapped layer as the layer is to see it.
LeafMap = Callable[[str, tuple[str, ...], Any], Any]


def _map_leaves(leaf_fn: LeafMap, collection: str, tree: Mapping, path: tuple[str, ...] = ()) -> dict:
    """``tree`` with ``leaf_fn`` applied to its array leaves, in sorted key order (jax's for a
    dict, so keys drawn by ``leaf_fn`` come in flax's order)."""
    mapped = {}
    for name in sorted(tree):
        value = tree[name]
        if isinstance(value, Mapping):
            mapped[name] = _map_leaves(leaf_fn, collection, value, (*path, name))
        elif array_api_compat.is_array_api_obj(value):
            mapped[name] = leaf_fn(collection, (*path, name), value)
        else:
            mapped[name] = value
    return mapped


def _with_subtree(tree: Mapping, path: tuple[str, ...], subtree: dict) -> dict:
    """A copy of ``tree`` with the node at ``path`` replaced by ``subtree`` (only the dicts on the path copied)."""
    copied = dict(tree)
    copied[path[0]] = subtree if len(path) == 1 else _with_subtree(tree[path[0]], path[1:], subtree)
    return copied


def run_with_mapped_variables(layer: Module, leaf_fn: LeafMap, args: tuple, kwargs: Mapping, *,
                              write_back: bool) -> Any:
    """Run the bound module ``layer`` on its variables as ``leaf_fn`` maps them (flax.linen's
    ``nn.map_variables`` with ``trans_in_fn``, as its ``SpectralNorm``/``WeightNorm`` use it).

    While initialising, ``layer`` first runs once to make its variables, which are then mapped and
    the layer run again on them.  The mapped values replace the stored ones in the collections
    the run may write when ``write_back`` or while initialising (flax's quirk, kept: ``init``
    stores a wrapped layer's normalised kernel); otherwise the stored variables are left as they were.
    """
    scope = layer._scope
    frame, path = scope[0], scope[1:]
    if frame.initializing:
        layer._fresh_copy()(*args, **kwargs)
    stores = {c: frame.store(c, path) for c in sorted(frame.variables)}
    mapped = {c: _map_leaves(leaf_fn, c, store) for c, store in stores.items() if store is not None}
    saved = {c: frame.variables[c] for c in mapped}
    for collection, subtree in mapped.items():
        frame.variables[collection] = _with_subtree(saved[collection], path, subtree)
    keep = write_back or frame.initializing
    try:
        return layer._fresh_copy()(*args, **kwargs)
    finally:
        for collection, tree in saved.items():
            if not (keep and frame.is_mutable(collection)):
                frame.variables[collection] = tree


def _axis_list(axes: Any, count: int, argument: str) -> list[int | None]:
    """``in_axes`` / ``out_axes`` as one entry per argument (an int for all, or a sequence)."""
    if axes is None or isinstance(axes, int):
        return [axes] * count
    if isinstance(axes, Sequence) and len(axes) == count:
        return list(axes)
    raise ValueError(f"xpnn.scan: {argument} must be an int, None or one entry per argument ({count}), got {axes!r}")


def _broadcasts_params(variable_broadcast: Any) -> bool:
    if variable_broadcast in (True, "params"):
        return True
    return isinstance(variable_broadcast, (list, tuple, set, frozenset)) and set(variable_broadcast) == {"params"}


def scan(target: type[Module], variable_axes: Mapping[str, int] | None = None, variable_broadcast: Any = False,
         variable_carry: Any = False, split_rngs: Mapping[str, bool] | None = None, in_axes: Any = 0,
         out_axes: Any = 0, length: int | None = None, reverse: bool = False, unroll: int = 1) -> type[Module]:
    """A module class that scans ``target``'s ``__call__(carry, *xs) -> (carry, ys)`` over axis
    ``in_axes`` of ``xs`` (None: an argument given whole to every step), stacking ``ys`` along
    ``out_axes`` (flax.linen's ``nn.scan``).  ``variable_broadcast='params'`` shares the params
    across steps (they are made by the first step at ``init``); ``reverse`` runs the steps
    backwards, ``unroll`` is jax's.  Returns ``(carry, ys)``.
    """
    if not (isinstance(target, type) and issubclass(target, Module)):
        raise TypeError(f"xpnn.scan: target must be an xpnn.Module subclass, got {target!r}")
    if variable_axes or variable_carry:
        raise ValueError("xpnn.scan: variable_axes and variable_carry (variables per step, or carried across steps) "
                         "are not supported; share the params with variable_broadcast='params'")
    if not _broadcasts_params(variable_broadcast):
        raise ValueError(f"xpnn.scan: variable_broadcast must be 'params' (one set of params for every step), got "
                         f"{variable_broadcast!r}")
    if (split_rngs or {}).get("params", False):
        raise ValueError("xpnn.scan: split_rngs={'params': True} (params made per step) is not supported")
    if not isinstance(out_axes, int) or isinstance(out_axes, bool):
        raise ValueError(f"xpnn.scan: out_axes must be an int, got {out_axes!r}")
    step_method = getattr(target.__call__, "__wrapped__", target.__call__)

    def __call__(self: Module, carry: Any, *xs: Any) -> tuple[Any, Any]:
        arrays = tree_leaves(xs)
        if not arrays:
            raise ModuleError(f"{self.path}: a scanned module needs array inputs to scan over")
        ops = adapter_of(arrays[0])
        xp = ops.xp
        axes = _axis_list(in_axes, len(xs), "in_axes")
        scanned = tuple(tree_map(lambda a, axis=axis: xp.moveaxis(a, axis, 0), x)
                        for x, axis in zip(xs, axes) if axis is not None)
        state = self._state

        def step(carry: Any, sliced: tuple) -> tuple[Any, Any]:
            state.autoname = state.names_in_call = None  # each step names its submodules as the first did
            pieces = iter(sliced)
            return step_method(self, carry, *(x if axis is None else next(pieces) for x, axis in zip(xs, axes)))

        steps = length if length is not None else tree_leaves(scanned)[0].shape[0]
        if scanned:  # the carry laid out over devices as a step's batch (jax's explicit mesh axes)
            carry = tree_map(lambda leaf: ops.placed_like(leaf, tree_leaves(scanned)[0], skip=1), carry)
        if self.is_initializing() and steps:
            step(carry, tree_map(lambda a: a[0, ...], scanned))
        carry, ys = ops.scan(step, carry, scanned, length=length, reverse=reverse, unroll=unroll)
        if out_axes:
            ys = tree_map(lambda a: xp.moveaxis(a, 0, out_axes), ys)
        return carry, ys

    __call__.__doc__ = f"{target.__name__}.__call__ scanned over axis {in_axes!r} of xs (xpnn.scan)."
    name = f"Scan{target.__name__}"
    return type(name, (target,), {"__call__": compact(__call__), "__module__": target.__module__,
                                  "__qualname__": name})


def checkpoint(target: Any, variables: Any = True, rngs: Any = True, concrete: bool = False, prevent_cse: bool = True,
               static_argnums: int | tuple[int, ...] = (), policy: Callable[..., bool] | None = None,
               methods: Sequence[str] | None = None) -> Any:
    """``target`` (a module class, or a method: ``@xpnn.checkpoint`` above ``@xpnn.compact``)
    with its intermediates recomputed when gradients are taken instead of kept
    (flax.linen's ``nn.checkpoint``, alias ``nn.remat``): the class ``Checkpoint<Target>``,
    whose variables are named as flax's; ``methods`` (default ``__call__``) are the methods
    lifted.  On jax, ``jax.checkpoint`` with ``prevent_cse`` and ``policy``; ``static_argnums``
    (``self`` is 0, as in flax) are the arguments passed as Python values (a ``train`` flag).
    Libraries without autodiff keep nothing to recompute; torch's autograd keeps the
    intermediates here (the results are the same).  Every collection and rng stream is lifted
    (``variables`` and ``rngs`` True); ``concrete`` is not supported."""
    where = "xpnn.checkpoint"
    if variables is not True or rngs is not True:
        raise ValueError(f"{where}: variables and rngs must be True (every collection and rng stream lifted), got "
                         f"variables={variables!r}, rngs={rngs!r}")
    if concrete:
        raise ValueError(f"{where}: concrete=True (value-dependent Python control flow) is not supported")
    static = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    if isinstance(target, type) and issubclass(target, Module):
        body = {}
        for name in ["__call__"] if methods is None else list(methods):
            method = getattr(target, name, None)
            if not callable(method):
                raise ValueError(f"{where}: {target.__name__} has no method {name!r} to lift")
            body[name] = _recomputed(getattr(method, "__wrapped__", method), static, prevent_cse, policy)
        name = f"Checkpoint{target.__name__}"
        return type(name, (target,), {**body, "__module__": target.__module__, "__qualname__": name})
    if callable(target):
        return _recomputed(target, static, prevent_cse, policy)
    raise TypeError(f"{where}: target must be an xpnn.Module subclass or a method, got {target!r}")


remat = checkpoint


def _recomputed(function: Callable[..., Any], static: tuple[int, ...], prevent_cse: bool,
                policy: Callable[..., bool] | None) -> Callable[..., Any]:
    """The method ``function`` run as a pure function of its array arguments and the module's
    mutable collections, under the library's ``checkpointed`` (a compact method stays compact).
    ``init`` runs it plainly: the variables are made then."""

    @functools.wraps(function)
    def lifted(self: Module, *args: Any, **kwargs: Any) -> Any:
        arrays = tree_leaves((args, kwargs))
        if not arrays or self.is_initializing():
            return function(self, *args, **kwargs)
        frame = self._scope[0]
        dynamic = [index for index in range(len(args)) if index + 1 not in static]

        def mutable_state() -> dict[str, Any]:
            return {c: frame.variables[c] for c in sorted(frame.variables) if frame.is_mutable(c)}

        def pure(state: dict[str, Any], *values: Any) -> tuple[Any, dict[str, Any]]:
            given = list(args)
            for index, value in zip(dynamic, values):
                given[index] = value
            frame.variables.update(state)
            return function(self, *given, **kwargs), mutable_state()

        out, state = adapter_of(arrays[0]).checkpointed(pure, (mutable_state(), *(args[i] for i in dynamic)),
                                                        prevent_cse, policy)
        frame.variables.update(state)
        return out

    return lifted

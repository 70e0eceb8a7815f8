"""Layers that combine other callables: ``Sequential`` and ``BatchApply`` (flax.linen's)."""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import array_api_compat

from xpnn.module import Module, compact
from xpnn.trees import tree_leaves, tree_map

__all__ = ["Sequential", "BatchApply"]


class Sequential(Module):
    """Apply ``layers`` in order (``flax.linen.Sequential``).

    A tuple output is passed on as positional arguments, a dict output as
    keyword arguments, anything else as the single argument.  Module layers
    are named ``layers_i``, with ``i`` their index in ``layers`` (plain
    functions such as ``xpnn.relu`` count too).  The call is compact, as
    flax's is: a plain function among the layers may create submodules
    (``lambda x: Dense(x.shape[-1])(x)`` makes ``Dense_0``).
    """

    layers: Sequence[Callable[..., Any]]

    @compact
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.layers:
            raise self._error(f"Empty Sequential module {self.name}.")
        outputs = self.layers[0](*args, **kwargs)
        for layer in self.layers[1:]:
            if isinstance(outputs, tuple):
                outputs = layer(*outputs)
            elif isinstance(outputs, Mapping):
                outputs = layer(**outputs)
            else:
                outputs = layer(outputs)
        return outputs


class BatchApply:
    """Merge the first ``num_dims`` dims of every array argument, call ``f``, split them again (``flax.linen.BatchApply``).

    Arrays with fewer than ``num_dims`` dims pass unchanged.  A plain class,
    not a Module, as in flax.
    """

    def __init__(self, f: Callable[..., Any], num_dims: int = 2) -> None:
        self._f = f
        self.num_dims = num_dims

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        num_dims = self.num_dims

        def mergeable(x: Any) -> bool:
            return array_api_compat.is_array_api_obj(x) and x.ndim >= num_dims

        example = next((leaf for leaf in tree_leaves((args, kwargs)) if mergeable(leaf)), None)
        if example is None:
            raise ValueError(f"BatchApply requires at least one input with ndim >= {num_dims}.")
        batch_shape = tuple(example.shape[:num_dims])

        def merge(x: Any) -> Any:
            if not mergeable(x):
                return x
            xp = array_api_compat.array_namespace(x)
            return xp.reshape(x, (math.prod(x.shape[:num_dims]), *x.shape[num_dims:]))

        def split(x: Any) -> Any:
            if not array_api_compat.is_array_api_obj(x):
                return x
            xp = array_api_compat.array_namespace(x)
            return xp.reshape(x, (*batch_shape, *x.shape[1:]))

        outputs = self._f(*tree_map(merge, args), **tree_map(merge, kwargs))
        return tree_map(split, outputs)

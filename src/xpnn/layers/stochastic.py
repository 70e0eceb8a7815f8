"""``Dropout`` (``flax.linen.Dropout``, ../shared/REFERENCE.md E.8)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xpnn import random
from xpnn._types import Array
from xpnn.module import Module, compact
from xpnn.trees import to_backend

__all__ = ["Dropout"]


class Dropout(Module):
    """Zero each element with probability ``rate`` and scale the rest by ``1 / (1 - rate)``.

    ``keep = bernoulli(key, 1 - rate, shape)`` with the dims in
    ``broadcast_dims`` of size 1 (one mask shared along them), then
    ``where(keep, inputs / (1 - rate), 0)``, as flax does, so with the same
    key the masks are jax's.  The key is ``make_rng(rng_collection)`` (so
    ``apply(..., rngs={'dropout': key})``), or ``rng`` as it is.  With
    ``deterministic`` (given here or at call time) or ``rate == 0`` the input
    is returned unchanged; ``rate == 1`` gives zeros.
    """

    rate: float
    broadcast_dims: Sequence[int] = ()
    deterministic: bool | None = None
    rng_collection: str = "dropout"

    @compact
    def __call__(self, inputs: Array, deterministic: bool | None = None, rng: Array | None = None) -> Array:
        deterministic = self._merge("deterministic", self.deterministic, deterministic)
        inputs = self._check_input(inputs)
        if not 0.0 <= self.rate <= 1.0:
            raise self._error(f"rate must be in [0, 1], got {self.rate}")
        if self.rate == 0.0 or deterministic:
            return inputs
        ops = self._adapter(inputs=inputs)
        xp = ops.xp
        if self.rate == 1.0:
            return xp.zeros_like(inputs)
        rng = self.make_rng(self.rng_collection) if rng is None else to_backend(rng, inputs)
        shape = list(inputs.shape)
        for dim in self.broadcast_dims:
            if not -len(shape) <= dim < len(shape):
                raise self._error(f"broadcast_dims={tuple(self.broadcast_dims)} is out of range for inputs of "
                                  f"{len(shape)} dimensions (shape {tuple(inputs.shape)})")
            shape[dim] = 1
        return dropped(ops, inputs, rng, self.rate, tuple(shape))


def dropped(ops: Any, inputs: Array, key: Array, rate: float, mask_shape: tuple[int, ...] | None = None) -> Array:
    """``inputs`` with each element zeroed with probability ``rate`` (0 < rate < 1) and the rest
    scaled by 1 / (1 - rate): ``keep = bernoulli(key, 1 - rate, mask_shape)`` broadcast over the
    input (``mask_shape`` None: the input's shape), ``where(keep, inputs / (1 - rate), 0)``, as
    flax does.  Dropout's math, for flax's layer and torch's ``dropout`` alike."""
    xp = ops.xp
    keep_prob = 1.0 - rate
    mask = random.bernoulli(key, keep_prob, tuple(inputs.shape) if mask_shape is None else mask_shape)
    keep = ops.placed_like(xp.broadcast_to(mask, inputs.shape), inputs)
    return xp.where(keep, inputs / keep_prob, xp.zeros_like(inputs))

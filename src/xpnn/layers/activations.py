"""Activations with parameters, as layers: ``PReLU`` (``flax.linen.PReLU``)."""
from __future__ import annotations

from typing import Any

from xpnn import initializers
from xpnn._types import Array
from xpnn.module import Module, compact

__all__ = ["PReLU"]


class PReLU(Module):
    """``where(x >= 0, x, negative_slope * x)`` with a learned scalar ``negative_slope``.

    Param ``negative_slope``, shape ``()``, initialised to
    ``negative_slope_init`` (0.01) in ``param_dtype``; it is cast to the
    input's dtype, as in flax.
    """

    param_dtype: Any = "float32"
    negative_slope_init: float = 0.01

    @compact
    def __call__(self, inputs: Array) -> Array:
        inputs = self._check_input(inputs)
        slope = self.param("negative_slope", initializers.constant(self.negative_slope_init), (), self.param_dtype)
        xp = self._adapter(inputs=inputs, negative_slope=slope).xp
        return xp.where(inputs >= 0, inputs, xp.astype(slope, inputs.dtype) * inputs)

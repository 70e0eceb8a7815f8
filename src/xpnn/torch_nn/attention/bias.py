"""``torch.nn.attention.bias``: causal biases, given to ``scaled_dot_product_attention`` as its
``attn_mask``, that say which keys each query sees without an array of their own."""
from __future__ import annotations

import enum
import warnings
from typing import Any

from xpnn._dispatch import adapter_of
from xpnn._types import Array

__all__ = ["CausalVariant", "CausalBias", "causal_upper_left", "causal_lower_right"]


class CausalVariant(enum.IntEnum):
    """UPPER_LEFT: query i sees keys 0..i (the triangle from the top left corner);
    LOWER_RIGHT: query i sees keys 0..i + (S - L) (the triangle ending at the bottom right)."""

    UPPER_LEFT = 1
    LOWER_RIGHT = 2


class CausalBias:
    """A causal pattern of ``seq_len_q`` queries over ``seq_len_kv`` keys
    (``torch.nn.attention.bias.CausalBias``): ``materialized(like)`` is its boolean mask, True
    where a query sees a key."""

    def __init__(self, variant: CausalVariant, seq_len_q: int, seq_len_kv: int) -> None:
        if not isinstance(variant, CausalVariant):
            raise TypeError(f"xpnn.torch_nn.attention.bias.CausalBias: variant must be a CausalVariant, got "
                            f"{type(variant).__name__}")
        self.variant, self.seq_len_q, self.seq_len_kv = variant, seq_len_q, seq_len_kv
        if seq_len_q > seq_len_kv and variant == CausalVariant.LOWER_RIGHT:
            warnings.warn("Lower right causal bias will produce NaNs in the output when seq_len_q > seq_len_kv!",
                          stacklevel=2)

    @property
    def shape(self) -> tuple[int, int]:
        return self.seq_len_q, self.seq_len_kv

    def materialized(self, like: Array) -> Array:
        """The ``(seq_len_q, seq_len_kv)`` boolean mask in ``like``'s library and device."""
        ops = adapter_of(like)
        offset = self.seq_len_kv - self.seq_len_q if self.variant == CausalVariant.LOWER_RIGHT else 0
        ones = ops.xp.ones((self.seq_len_q, self.seq_len_kv), dtype=ops.xp.bool, device=ops.device_of(like))
        return ops.xp.tril(ones, k=offset)

    def __repr__(self) -> str:
        return f"CausalBias(variant={self.variant.name}, seq_len_q={self.seq_len_q}, seq_len_kv={self.seq_len_kv})"


def causal_upper_left(*size: Any) -> CausalBias:
    """The upper-left causal bias of ``(seq_len_q, seq_len_kv)``: query i sees keys 0..i."""
    if len(size) != 2:
        raise ValueError(f"xpnn.torch_nn.attention.bias.causal_upper_left: causal_upper_left only supports 2D "
                         f"tensors, got a size of {len(size)} dims")
    return CausalBias(CausalVariant.UPPER_LEFT, *size)


def causal_lower_right(*size: Any) -> CausalBias:
    """The lower-right causal bias of ``(seq_len_q, seq_len_kv)``: query i sees keys 0..i + S - L."""
    if len(size) != 2:
        raise ValueError(f"xpnn.torch_nn.attention.bias.causal_lower_right: causal_lower_right only supports 2D "
                         f"tensors, got a size of {len(size)} dims")
    return CausalBias(CausalVariant.LOWER_RIGHT, *size)

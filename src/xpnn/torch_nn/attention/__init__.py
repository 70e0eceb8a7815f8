"""``torch.nn.attention``: the kernel choice of ``scaled_dot_product_attention`` and, in
``bias``, the causal biases it takes as ``attn_mask``.

xpnn chooses its attention kernels itself (the written-once math, or a library's fused kernel
checked against it at first use), so ``sdpa_kernel`` takes torch's backends, so that torch code
runs unchanged, and changes nothing.
"""
from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterable, Iterator

from xpnn.torch_nn.attention import bias

__all__ = ["SDPBackend", "sdpa_kernel", "bias"]


class SDPBackend(enum.IntEnum):
    """torch's kernels of ``scaled_dot_product_attention``, with torch's values."""

    ERROR = -1
    MATH = 0
    FLASH_ATTENTION = 1
    EFFICIENT_ATTENTION = 2
    CUDNN_ATTENTION = 3
    OVERRIDEABLE = 4


@contextlib.contextmanager
def sdpa_kernel(backends: SDPBackend | Iterable[SDPBackend], set_priority: bool = False) -> Iterator[None]:
    """torch's context manager that restricts ``scaled_dot_product_attention`` to ``backends``:
    they are checked to be ``SDPBackend``s; the kernel is xpnn's choice whatever they are."""
    chosen = [backends] if isinstance(backends, SDPBackend) else list(backends)
    for backend in chosen:
        if not isinstance(backend, SDPBackend):
            raise TypeError(f"xpnn.torch_nn.attention.sdpa_kernel: backends must be SDPBackend members, got "
                            f"{backend!r}")
    yield

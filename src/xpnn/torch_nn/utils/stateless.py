"""``torch.nn.utils.stateless``: the deprecated home of ``functional_call``."""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from xpnn._types import Array
from xpnn.torch_nn import module as _module

__all__ = ["functional_call"]


def functional_call(module: _module.Module, parameters_and_buffers: Mapping[str, Array], args: Any = None,
                    kwargs: Mapping[str, Any] | None = None, *, tie_weights: bool = True, strict: bool = False) -> Any:
    """``xpnn.torch_nn.functional_call`` (``torch.func.functional_call``), with torch's FutureWarning."""
    warnings.warn("`torch.nn.utils.stateless.functional_call` is deprecated as of PyTorch 2.0 and will be removed in a "
                  "future version of PyTorch. Please use `torch.func.functional_call` instead which is a drop-in "
                  "replacement.", FutureWarning, stacklevel=2)
    return _module.functional_call(module, parameters_and_buffers, args, kwargs, tie_weights=tie_weights,
                                   strict=strict)

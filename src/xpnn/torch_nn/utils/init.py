"""``torch.nn.utils.skip_init``."""
from __future__ import annotations

from typing import Any, TypeVar

from xpnn.torch_nn.module import Module

__all__ = ["skip_init"]

Made = TypeVar("Made", bound=Module)


def skip_init(module_cls: type[Made], *args: Any, **kwargs: Any) -> Made:
    """``module_cls(*args, **kwargs)`` for parameters that are to be overwritten anyway
    (``torch.nn.utils.skip_init``, whose parameters hold whatever memory had): here they are
    drawn as usual, which serves the same purpose."""
    return module_cls(*args, **kwargs)

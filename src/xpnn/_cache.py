"""A cache for what a layer works out from its arguments on every call (window geometry, how a
call maps to a library's kernel)."""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

_Result = TypeVar("_Result")


def per_arguments(function: Callable[..., _Result]) -> Callable[..., _Result]:
    """``function`` with its results kept for the last 256 sets of arguments (a module passes the
    same ones on every call); arguments that cannot be hashed (lists, arrays) are worked out on
    every call."""
    cached = functools.lru_cache(maxsize=256)(function)

    @functools.wraps(function)
    def call(*arguments: object) -> _Result:
        try:
            return cached(*arguments)
        except TypeError:  # an argument that cannot be hashed
            return function(*arguments)

    return call

"""The global generator of ``xpnn.torch_nn`` (``torch.manual_seed``'s twin): keys for parameter
initialisation, dropout and RReLU, split from one NumPy key so one seed gives the same numbers
on every backend."""
from __future__ import annotations

import threading
from typing import Any

from xpnn import random
from xpnn._types import Array
from xpnn.trees import to_backend

__all__ = ["manual_seed", "initial_seed", "next_key"]


class _Generator(threading.local):
    def __init__(self) -> None:
        self.seed = 0
        self.key = random.key(0)


_generator = _Generator()


def manual_seed(seed: int) -> None:
    """Seed the generator that ``xpnn.torch_nn`` modules (initialisation) and functions (dropout,
    rrelu in training) draw from when no ``key=`` is given, as ``torch.manual_seed`` does; the
    same seed gives the same parameters on every backend.  Seeded with 0 at import."""
    _generator.seed = seed
    _generator.key = random.key(seed)


def initial_seed() -> int:
    """The seed last given to ``manual_seed`` (0 at import)."""
    return _generator.seed


def next_key(like: Any = None) -> Array:
    """A fresh key from the generator, in the library and on the device of ``like`` (an array
    or a namespace; NumPy when None)."""
    keys = random.split(_generator.key)
    _generator.key, key = keys[0], keys[1]
    return key if like is None else to_backend(key, like)

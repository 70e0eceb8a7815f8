"""``torch.nn.utils``' flattening of parameters into one vector and back."""
from __future__ import annotations

import math
from collections.abc import Iterable

from xpnn._dispatch import adapter_of, is_array
from xpnn._types import Array
from xpnn.torch_nn.module import fill_in_place

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def parameters_to_vector(parameters: Iterable[Array]) -> Array:
    """The parameters flattened and concatenated into one 1-D array
    (``torch.nn.utils.parameters_to_vector``)."""
    parameters = list(parameters)
    if not parameters:
        raise ValueError("xpnn.torch_nn.utils.parameters_to_vector: no parameters given")
    xp = adapter_of(parameters[0]).xp
    return xp.concat([xp.reshape(p, (-1,)) for p in parameters])


def vector_to_parameters(vec: Array, parameters: Iterable[Array]) -> None:
    """Write consecutive slices of the 1-D ``vec`` into the parameters, in place and outside
    autograd, each in its own shape and dtype (``torch.nn.utils.vector_to_parameters``; jax's
    immutable arrays are replaced in the modules that hold them)."""
    where = "xpnn.torch_nn.utils.vector_to_parameters"
    if not is_array(vec) or vec.ndim != 1:
        raise TypeError(f"{where}: vec must be a 1-D array, got {getattr(vec, 'shape', type(vec).__name__)}")
    parameters = list(parameters)
    total = sum(math.prod(p.shape) for p in parameters)
    if vec.shape[0] != total:
        raise ValueError(f"{where}: vec has {vec.shape[0]} elements, the parameters {total}")
    xp = adapter_of(vec).xp
    start = 0
    for parameter in parameters:
        size = math.prod(parameter.shape)
        piece = xp.reshape(vec[start:start + size], tuple(parameter.shape))
        fill_in_place(parameter, xp.astype(piece, parameter.dtype))
        start += size

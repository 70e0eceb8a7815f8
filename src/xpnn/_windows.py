"""Windows and padding shared by convolutions and pooling: flax's padding modes resolved to
explicit ``(low, high)`` pairs, and the non-zero padding modes written with the standard.

``"SAME"`` is lax's: the output size is ``ceil(n / stride)``, the total padding
``max((out - 1) * stride + window - n, 0)``, of which ``low = total // 2`` goes first (the
extra element goes last; ``"SAME_LOWER"`` puts it first).  ``"VALID"`` is no padding.  lax
reads these three names in any case (``"same"``), and so does xpnn where flax hands them to lax.
An int pads every spatial dimension by it on both sides, a sequence gives one int (both sides)
or one ``(low, high)`` pair per dimension.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import array_api_compat

from xpnn._errors import refuse
from xpnn._types import Array, Namespace

Pads = tuple[tuple[int, int], ...]


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def int_tuple(value: Any, rank: int, argument: str, where: str | None = None, minimum: int = 1) -> tuple[int, ...]:
    """``value`` (an int for every dimension, or one per dimension) as ``rank`` ints >= ``minimum``."""
    items = (value,) * rank if is_int(value) else value
    try:
        items = tuple(items)
    except TypeError:
        raise refuse(TypeError, f"{argument} must be an int or a sequence of {rank} ints, got {value!r}", where) from None
    if len(items) != rank or not all(is_int(i) and i >= minimum for i in items):
        raise refuse(ValueError, f"{argument} must be an int or a sequence of {rank} ints >= {minimum}, got {value!r}",
                     where)
    return items


_LAX_PADDINGS = ("SAME", "SAME_LOWER", "VALID")


def lax_padding(padding: Any) -> Any:
    """``padding`` with lax's names in upper case (``"same"`` is ``"SAME"``, as
    ``lax.padtype_to_pads`` reads it); any other value as it is."""
    if isinstance(padding, str) and padding.upper() in _LAX_PADDINGS:
        return padding.upper()
    return padding


def same_pads(sizes: Sequence[int], windows: Sequence[int], strides: Sequence[int], lower: bool = False) -> Pads:
    """lax's ``"SAME"`` padding of each dimension, ``"SAME_LOWER"``'s with ``lower`` (see the
    module docstring)."""
    pads = []
    for size, window, stride in zip(sizes, windows, strides):
        out = -(-size // stride)
        total = max((out - 1) * stride + window - size, 0)
        pads.append((total - total // 2, total // 2) if lower else (total // 2, total - total // 2))
    return tuple(pads)


def explicit_pads(padding: Any, rank: int, where: str | None = None) -> Pads:
    """flax's ``canonicalize_padding`` of an int or a sequence: one ``(low, high)`` pair per dimension."""
    if is_int(padding):
        return ((padding, padding),) * rank
    if isinstance(padding, Sequence) and not isinstance(padding, str) and len(padding) == rank:
        pads = []
        for item in padding:
            if is_int(item):
                pads.append((item, item))
            elif isinstance(item, Sequence) and len(item) == 2 and all(map(is_int, item)):
                pads.append((item[0], item[1]))
            else:
                break
        if len(pads) == rank:
            return tuple(pads)
    raise refuse(ValueError, f"padding must be 'SAME', 'VALID', 'SAME_LOWER', 'CIRCULAR', 'REFLECT', 'CAUSAL', an "
                             f"int, or a sequence of {rank} ints or (low, high) pairs, got {padding!r}", where)


def padded(xp: Namespace, x: Array, axis: int, low: int, high: int, mode: str, value: Any = 0) -> Array:
    """``x`` padded along ``axis`` as ``numpy.pad`` does with ``mode`` ``"wrap"`` (periodic),
    ``"reflect"`` (mirrored, the edge element not repeated), ``"edge"`` (the edge element
    repeated) or ``"constant"`` (``value``), with the standard's slices."""
    size = x.shape[axis]
    lead = (slice(None),) * axis

    def part(start: int, stop: int) -> Array:
        return x[lead + (slice(start, stop), ...)]

    if mode == "constant":  # a negative side crops
        if low < 0 or high < 0:
            x = part(max(0, -low), max(max(0, -low), size - max(0, -high)))

        def filled(count: int) -> list[Array]:
            shape = (*x.shape[:axis], count, *x.shape[axis + 1:])
            return [xp.full(shape, value, dtype=x.dtype, device=array_api_compat.device(x))] if count > 0 else []

        return xp.concat([*filled(low), x, *filled(high)], axis=axis) if low > 0 or high > 0 else x
    if mode == "wrap":
        parts = []
        for count, from_end in ((low, True), (high, False)):
            pieces = []
            while count > 0:  # a pad wider than the array wraps around it several times
                take = min(count, size)
                pieces.append(part(size - take, size) if from_end else part(0, take))
                count -= take
            parts.append(pieces[::-1] if from_end else pieces)
        return xp.concat([*parts[0], x, *parts[1]], axis=axis)
    if mode == "edge":
        before = [part(0, 1)] * low
        after = [part(size - 1, size)] * high
        return xp.concat([*before, x, *after], axis=axis)
    if max(low, high) > size - 1:
        raise refuse(ValueError, f"REFLECT padding of ({low}, {high}) needs more than {size} elements along the axis")
    before = [xp.flip(part(1, low + 1), axis=axis)] if low else []
    after = [xp.flip(part(size - 1 - high, size - 1), axis=axis)] if high else []
    return xp.concat([*before, x, *after], axis=axis)

"""Large NumPy arrays computed in slices on all cores, for the NumPy adapter's fast paths.

NumPy's ufuncs release the GIL, so a C-contiguous array of ``SLICED_FROM``
elements or more is cut into one slice per thread: the calling thread
computes one, a pool the others, each into its part of one output.  Every
element (every row, for the row-wise functions) goes through the same loops as
without slices, so the results are the same numbers, zero signs included (a
row computed alone may give a nan of the other sign, which means nothing).
``XPNN_NUM_THREADS`` sets the threads (1: no slices).
"""
from __future__ import annotations

import concurrent.futures
import functools
import inspect
import os
from typing import Any, Callable

import numpy as np

from ._base import FastPath, is_number


def worker_count() -> int:
    """``XPNN_NUM_THREADS`` when it is set (1: no threads), else the cores, at most 8.

    The setting is ASCII digits ("²" or "٣" are refused), and at most the machine's cores are
    used: a thread more than the cores only waits."""
    setting = os.environ.get("XPNN_NUM_THREADS", "")
    cores = os.cpu_count() or 1
    if not setting:
        return min(8, cores)
    if not (setting.isascii() and setting.isdigit()) or int(setting) < 1:
        raise ValueError(f"XPNN_NUM_THREADS must be a positive integer (ASCII digits), got {setting!r}")
    return min(int(setting), cores)


#: Threads that compute large arrays' slices and random draws (the calling one takes a slice too).
WORKERS = worker_count()
#: Fast paths compute C-contiguous arrays of at least this many elements in ``WORKERS`` slices,
#: by what bounds them: waking a thread costs about 0.1 ms on a 2-core machine, which slices of
#: tanh or elu earn back from 2^18 elements, and of relu or relu6 only from 2^21 to 2^22 (both
#: thresholds are one power of two above where the gain starts: the timings move a lot).
SLICED_FROM = {"compute": 1 << 19, "memory": 1 << 22}
#: Slices start at multiples of this many elements, so each keeps the array's alignment (and
#: NumPy's SIMD loops split it into the same vectors as the whole).
SLICE_ALIGN = 1 << 12
#: A slice whose fast path cannot write into the output is computed in pieces of about this many
#: elements, each copied into the output while it is still in cache.
PIECE = 1 << 17


@functools.cache
def pool() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS)


# A forked child has none of the pool's threads, but the pool would count on them and hang:
# the child makes its own.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=pool.cache_clear)


def in_slices(function: FastPath, x: np.ndarray, args: tuple, kwargs: dict, *, fills: bool, rows: bool) -> Any:
    """``function(x, *args, **kwargs)`` for a C-contiguous ndarray, computed in ``WORKERS`` slices at
    once: this thread takes the first, the pool the others (NumPy's ufuncs release the GIL).

    Each element (each row of the last axis, when ``rows``) is computed by the same loop as
    without slices, so the results are the same numbers.  ``fills``: ``function`` takes ``into=``,
    the slice of the output to write to (the memory-bound ones: no copy); otherwise a slice is
    computed in pieces of about ``PIECE`` elements, each copied into the output from the cache.
    The floating-point error handling of this thread (``np.errstate``) holds on every thread.
    The pool's own threads never get here (what they compute, random draws, is smaller than
    ``SLICED_FROM``): they would wait on themselves.
    """
    flat = x.reshape(-1, x.shape[-1]) if rows else x.reshape(-1)
    out = np.empty_like(flat)
    row_size = x.shape[-1] if rows else 1
    step = -(-len(flat) // WORKERS)
    align = max(1, SLICE_ALIGN // row_size)
    step = -(-step // align) * align
    piece = step if fills else max(1, PIECE // row_size)
    errors, error_call = np.geterr(), np.geterrcall()

    def compute(start: int) -> bool:
        """Rows ``start`` to ``start + step`` of ``out``; False where ``function`` declines them."""
        stop = min(start + step, len(flat))
        with np.errstate(call=error_call, **errors):
            for begin in range(start, stop, piece):
                end = min(begin + piece, stop)
                target, part = out[begin:end], flat[begin:end]
                result = function(part, *args, into=target, **kwargs) if fills else function(part, *args, **kwargs)
                if result is NotImplemented or result.dtype != out.dtype:
                    return False
                if result is not target:
                    target[...] = result
        return True

    others = [pool().submit(compute, start) for start in range(step, len(flat), step)]
    done = compute(0)
    done = all([other.result() for other in others]) and done
    return out.reshape(x.shape) if done else function(x, *args, **kwargs)


def sliceable(x: Any) -> bool:
    """Whether a large ``x`` is computed in slices: a C-contiguous ndarray (not a subclass, which
    keeps its own reshape and output type), with more than one core to compute it."""
    return WORKERS > 1 and type(x) is np.ndarray and x.flags.c_contiguous


def sliced_when_large(function: FastPath, *, fills: bool = False, rows: bool = False,
                      bound: str = "compute") -> FastPath:
    """``function``, computed by :func:`in_slices` on C-contiguous ndarrays of ``SLICED_FROM[bound]``
    elements or more.  ``rows``: a softmax-like ``function(x, axis=-1, where=None)``, sliced
    along rows only when it reduces the last axis and takes no ``where``.

    Smaller arrays pay one more Python call: 0.07 us for a function of ``x`` alone, 0.17 us
    for others (soft_sign costs 2.5 us at (1000,)), so each shape of call gets its own wrapper,
    and a ``_ufuncs.one_ufunc`` path (tanh, sigmoid) gets one call with its checks and none more."""
    if rows:
        def sliced_rows(x: Any, axis: Any = -1, where: Any = None) -> Any:
            if (x.size < SLICED_FROM[bound] or where is not None or type(axis) is not int
                    or axis not in (-1, x.ndim - 1) or x.ndim < 2 or not sliceable(x)):
                return function(x, axis, where)
            return in_slices(function, x, (-1,), {}, fills=False, rows=True)

        return sliced_rows

    ufunc = getattr(function, "ufunc", None)
    if ufunc is not None:  # _ufuncs.one_ufunc: its checks and the slicing in one call
        accepted = function.accepted

        def sliced_ufunc(x: Any) -> Any:
            if not x.ndim or x.dtype not in accepted:
                return NotImplemented
            if x.size < SLICED_FROM[bound] or not sliceable(x):
                return ufunc(x)
            return in_slices(ufunc, x, (), {}, fills=False, rows=False)

        return sliced_ufunc

    if len(inspect.signature(function).parameters) - fills == 1:
        def sliced_alone(x: Any) -> Any:
            if x.size < SLICED_FROM[bound] or not sliceable(x):
                return function(x)
            return in_slices(function, x, (), {}, fills=fills, rows=False)

        return sliced_alone

    def sliced(x: Any, *args: Any, **kwargs: Any) -> Any:
        if x.size < SLICED_FROM[bound] or not sliceable(x):
            return function(x, *args, **kwargs) if args or kwargs else function(x)
        return in_slices(function, x, args, kwargs, fills=fills, rows=False)

    return sliced


#: The fast paths computed in slices on large arrays, and how (``sliced_when_large``'s options).
SLICED = (
    (("relu6", "hard_tanh", "hard_sigmoid", "hard_silu", "leaky_relu", "soft_shrink"), {"fills": True, "bound": "memory"}),
    (("soft_sign",), {"bound": "memory"}),
    (("elu", "sparse_plus", "softplus", "log_sigmoid", "gelu", "sigmoid", "silu", "tanh"), {}),
    (("softmax", "log_softmax"), {"rows": True}),
)


def sliced_fast_paths(ufunc_paths: dict[str, FastPath]) -> dict[str, FastPath]:
    """``ufunc_paths``, with those in ``SLICED`` computed in slices on large arrays."""
    paths = dict(ufunc_paths)
    for names, how in SLICED:
        for name in names:
            paths[name] = sliced_when_large(ufunc_paths[name], **how)
    return paths


FLOATING = frozenset(np.dtype(name) for name in ("float16", "float32", "float64"))


def large_floating(x: Any) -> bool:
    """Whether a written-once ``x`` is computed in slices: a sliceable floating array of
    ``SLICED_FROM["compute"]`` elements or more."""
    return x.size >= SLICED_FROM["compute"] and x.dtype in FLOATING and sliceable(x)


def written_once_in_slices(function: Callable[..., Any]) -> FastPath:
    """The written-once elementwise ``function``, run by :func:`in_slices` on large floating
    arrays whose other arguments are numbers (an array argument may broadcast against ``x``);
    ``NotImplemented``, so the usual written-once call, for everything else."""
    def sliced(x: Any, *args: Any, **kwargs: Any) -> Any:
        if not large_floating(x) or not all(map(is_number, (*args, *kwargs.values()))):
            return NotImplemented
        return in_slices(function, x, args, kwargs, fills=False, rows=False)

    return sliced


def written_once_by_rows(function: Callable[..., Any]) -> FastPath:
    """The written-once row-wise ``function`` (softmin, standardize), run by :func:`in_slices` on
    slices of rows of large floating arrays when its ``axis`` is the last one and its other
    arguments are None, numbers or strings (a mean, variance or ``where`` array spans rows);
    ``NotImplemented``, so the usual written-once call, for everything else."""
    signature = inspect.signature(function)

    def sliced(x: Any, *args: Any, **kwargs: Any) -> Any:
        if x.ndim < 2 or not large_floating(x):
            return NotImplemented
        try:
            arguments = signature.bind(x, *args, **kwargs).arguments
        except TypeError:  # the written-once call raises it, naming the function
            return NotImplemented
        del arguments[next(iter(signature.parameters))]
        axis = arguments.pop("axis", signature.parameters["axis"].default)
        if (type(axis) is not int or axis not in (-1, x.ndim - 1)
                or not all(value is None or type(value) is str or is_number(value) for value in arguments.values())):
            return NotImplemented
        return in_slices(function, x, (), {**arguments, "axis": -1}, fills=False, rows=True)

    return sliced


def in_row_blocks(compute: Callable[[int, int], Any], rows: int, block: int, elements: int) -> list[Any]:
    """``compute(begin, end)`` for consecutive blocks of ``block`` rows (of an array of
    ``elements`` elements in all), the results in block order.  The blocks are split among this
    thread and the pool's, in contiguous runs, when the array is at least ``SLICED_FROM['memory']``
    elements; every block is computed alike whatever the split, so the results are the same numbers."""
    starts = range(0, rows, block)
    if elements < SLICED_FROM["memory"] or WORKERS == 1 or len(starts) == 1:  # this thread alone: its own errstate
        return [compute(begin, min(begin + block, rows)) for begin in starts]
    results: list[Any] = [None] * len(starts)
    errors, error_call = np.geterr(), np.geterrcall()

    def run(first: int, last: int) -> None:
        with np.errstate(call=error_call, **errors):
            for index in range(first, last):
                begin = starts[index]
                results[index] = compute(begin, min(begin + block, rows))

    step = -(-len(starts) // WORKERS)
    others = [pool().submit(run, first, min(first + step, len(starts))) for first in range(step, len(starts), step)]
    run(0, min(step, len(starts)))
    for other in others:
        other.result()
    return results

"""Dask adapter: primitives run blockwise with NumPy's, so graphs stay lazy."""
from __future__ import annotations

import collections
import functools
import math
import warnings
from typing import Any

import array_api_compat.numpy as numpy_namespace

from . import _fallback
from . import numpy as numpy_backend
from ._base import Adapter

_NUMPY = numpy_backend.ADAPTER(numpy_namespace)


#: NumPy variables adopted as Dask arrays, by (client, content token), the most recent last: a
#: weight used by every call of a model is scattered to the workers once.
_ADOPTED: collections.OrderedDict[tuple[int, str], Any] = collections.OrderedDict()
#: How many adopted arrays are kept (each keeps its scattered copy alive on the workers).
_ADOPTED_KEPT = 64


def _running_client() -> Any:
    """The dask.distributed client in use, or None (no cluster, or distributed not installed)."""
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        client = default_client()
    except ValueError:
        return None
    return client if client.status == "running" else None


# The functions a graph's tasks run are module-level (pickled by name for dask.distributed's
# workers, which import this module); the NumPy adapter itself does not pickle.
def _erf_block(x: Any) -> Any:
    return _NUMPY.erf(x)


def _erfc_block(x: Any) -> Any:
    return _NUMPY.erfc(x)


def _convolve_block(block: Any, kernel: Any, *where: Any, counts: tuple[int, ...],
                    padding: tuple[tuple[int, int], ...], dilation: tuple[int, ...], groups: int) -> Any:
    """One block of an overlapped convolution (stride 1): VALID, with the convolution's zero
    padding added where the block is the first (low) or last (high) along a spatial axis;
    ``where`` holds the block's index along each spatial axis."""
    pads = [(low if at[0] == 0 else 0, high if at[0] == count - 1 else 0)
            for at, count, (low, high) in zip(where, counts, padding)]
    units = (1,) * len(counts)
    return _NUMPY.conv_general_dilated(block, kernel, units, pads, units, dilation, groups)


def _at_least(chunks: tuple[int, ...], size: int, last: int) -> tuple[int, ...]:
    """``chunks`` merged from the start until every one is at least ``size`` long and the last
    at least ``last`` (a short last one joins the one before; a single chunk stays as it is)."""
    merged: list[int] = []
    for chunk in chunks:
        if merged and merged[-1] < size:
            merged[-1] += chunk
        else:
            merged.append(chunk)
    if len(merged) > 1 and merged[-1] < max(size, last):
        short = merged.pop()
        merged[-1] += short
    return tuple(merged)


def _in_operands_type(product: Any, a: Any, b: Any) -> Any:
    """``product`` of ``a`` and ``b`` in their promoted dtype (NumPy's for the product)."""
    import numpy

    dtype = numpy.result_type(a.dtype, b.dtype)
    return product if product.dtype == dtype else product.astype(dtype)


class DaskAdapter(Adapter):
    name = "dask"
    writes_keep_graphs = True
    unknown_sizes_hint = ("call {argument}.compute_chunk_sizes() first (Dask cannot reshape or pad blocks of "
                          "unknown sizes)")

    def adopts(self, other):
        """NumPy arrays are Dask's chunks: a Dask input runs with NumPy variables."""
        return other.name == "numpy"

    def values_at_hand(self, x):
        """No: reading a Dask array computes its graph."""
        return False

    def adopted(self, array):
        """A NumPy array as a one-chunk Dask array.  With a dask.distributed client running, the
        array is scattered to every worker once (``broadcast=True``) and the graph holds a
        reference to it, not a copy per task; the same contents (``dask.base.tokenize``) are
        scattered once for every call.  Without a client, ``from_array`` (one copy in the graph)."""
        import dask.array
        from dask.base import tokenize

        client = _running_client()
        if client is None:
            return dask.array.from_array(array, chunks=array.shape)
        key = (id(client), tokenize(array))
        found = _ADOPTED.get(key)
        if found is None:
            future = client.scatter(array, broadcast=True)
            found = _ADOPTED[key] = dask.array.from_delayed(future, array.shape, dtype=array.dtype)
            while len(_ADOPTED) > _ADOPTED_KEPT:
                _ADOPTED.popitem(last=False)
        else:
            _ADOPTED.move_to_end(key)
        return found

    def dtype_named(self, name):
        """Dask arrays take NumPy's dtypes; its namespace lacks some (float16)."""
        return getattr(self.xp, name, None) or getattr(numpy_namespace, name, None)

    def matmul(self, a, b):
        """Dask sums the partial products of a split contracted axis with NumPy's ``sum``, which
        widens small integers (int8 @ int8 gives int64, where NumPy keeps int8): the product is
        cast back to the operands' type."""
        return _in_operands_type(a @ b, a, b)

    def dense(self, x, kernel, bias=None):
        """``x @ kernel + bias``, the product in the operands' type (see ``matmul``)."""
        y = _in_operands_type(x @ kernel, x, kernel)
        return y if bias is None else y + bias

    def solve(self, a, b):
        """``linalg.solve`` on one chunk of each (dask's LU needs square chunks); the standard-only
        elimination where the sizes are not known."""
        if any(math.isnan(n) for n in (*a.shape, *b.shape)):
            return _fallback.solve(self.xp, a, b)
        return self.xp.linalg.solve(a.rechunk(-1), b.rechunk(-1))

    def qr(self, a):
        """``linalg.qr`` on one column of chunks (dask's tall-and-skinny QR needs it); the
        standard-only Gram-Schmidt where the sizes are not known."""
        if any(math.isnan(n) for n in a.shape):
            return _fallback.qr(self.xp, a)
        return self.xp.linalg.qr(a.rechunk({1: -1}))

    def to_host(self, x):
        """Leaving dask computes the graph: the one place xpnn does."""
        import numpy

        return numpy.asarray(x.compute())

    def conv_general_dilated(self, lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                             feature_group_count=1, bias=None):
        """Overlapping blocks: for stride 1 without input dilation (the layers of a CNN), each
        block along a spatial axis is extended by the kernel's reach into the next block
        (``dask.array.overlap``, the halo ``(k - 1) * dilation``), the first and last blocks
        padded with the convolution's zeros, and convolved by NumPy's kernel (VALID): one task
        per block, whose output is exactly the slice of the whole convolution it covers.  Other
        convolutions (strides, transposed ones) take the standard-only version.  Unknown chunk
        sizes are an error that says how to learn them (dask cannot pad or overlap such blocks)."""
        import dask.array

        spatial = range(1, lhs.ndim - 1)
        if any(math.isnan(size) for sizes in lhs.chunks for size in sizes):
            raise ValueError(f"a convolution of a Dask array needs its chunk sizes, which are unknown here "
                             f"({lhs.chunks}); call x.compute_chunk_sizes() on the input first")
        if any(s != 1 for s in window_strides) or any(d != 1 for d in lhs_dilation) or any(
                low < 0 or high < 0 for low, high in padding):
            return super().conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                                feature_group_count, bias)
        halos = [(k - 1) * d for k, d in zip(rhs.shape[:-2], rhs_dilation)]
        if any(lhs.shape[a] <= halo for a, halo in zip(spatial, halos)):  # a halo beyond the array: no overlap
            return super().conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                                feature_group_count, bias)
        # Every block but the last at least a halo long (each takes its halo from the next one),
        # the last one long enough to have an output, the channels whole.
        chunks = {a: _at_least(lhs.chunks[a], halo + 1, halo - high + 1)
                  for a, halo, (_, high) in zip(spatial, halos, padding)}
        lhs = lhs.rechunk({**chunks, lhs.ndim - 1: lhs.shape[-1]})
        overlapped = dask.array.overlap.overlap(lhs, depth={a: (0, halo) for a, halo in zip(spatial, halos)},
                                                boundary="none")
        kernel = rhs.rechunk(rhs.shape) if isinstance(rhs, dask.array.Array) else dask.array.from_array(rhs, rhs.shape)
        count = {a: len(chunks[a]) for a in spatial}

        def out_sizes(a: int, halo: int, low: int, high: int) -> tuple[int, ...]:
            sizes = list(chunks[a])
            sizes[0] += low
            sizes[-1] += high - halo
            return tuple(sizes)

        out_chunks = {a: out_sizes(a, halo, *pair) for a, halo, pair in zip(spatial, halos, padding)}

        convolve = functools.partial(_convolve_block, counts=tuple(count[a] for a in spatial),
                                     padding=tuple(map(tuple, padding)), dilation=tuple(rhs_dilation),
                                     groups=feature_group_count)
        names = "".join(chr(ord("a") + i) for i in range(lhs.ndim))
        kernel_names = "".join(chr(ord("A") + i) for i in range(rhs.ndim))
        blocks = [item for a in spatial for item in (dask.array.arange(count[a], chunks=1), names[a])]
        dtype = numpy_backend.np.result_type(lhs.dtype, rhs.dtype)
        y = dask.array.blockwise(convolve, names, overlapped, names, kernel, kernel_names, *blocks, dtype=dtype,
                                 concatenate=True, align_arrays=False,
                                 adjust_chunks={names[a]: out_chunks[a] for a in spatial} | {names[-1]: rhs.shape[-1]})
        return y if bias is None else y + bias

    def while_loop(self, cond, body, state):
        """Each round's state persisted (computed, still Dask arrays): reading the condition then
        computes one round, not every round again from the start.  The rounds' tasks run in the
        scheduler's threads, outside the NumPy error state of the call: their floating-point
        warnings (a log of 0 in a lane that a select then drops, as in xpnn.random's rejection
        loops) are ignored, as the NumPy adapter's are."""
        import dask

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            state = dask.persist(*state)
            while bool(cond(state)):
                state = dask.persist(*body(state))
        return state

    def erf(self, x):
        return x.map_blocks(_erf_block, dtype=x.dtype)

    def erfc(self, x):
        return x.map_blocks(_erfc_block, dtype=x.dtype)


ADAPTER = DaskAdapter

"""NumPy adapter: scipy's erf when SciPy is installed, NumPy-native fast paths
(``backends/_ufuncs.py``, with constant operands held in cached blocks for the
piecewise-linear ones, and large arrays computed in slices on all cores), a
float32 ``erf_inv`` with in-place ufuncs, and random draws sliced over a
thread pool."""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

try:
    from numpy._core import _ufunc_config  # NumPy 2
except ImportError:  # NumPy 1.26
    from numpy.core import _ufunc_config

from . import _fallback
from . import _numpy_slices as slices
from ._base import Adapter, FastPath
from ._ufuncs import _FLOAT16_TINY, _GELU_CUBIC, _GELU_SCALE, tanh_gelu, ufunc_fast_paths

try:
    from scipy import special as _special
except ImportError:  # SciPy is optional: the standard-only erf takes over.
    _special = None

#: Length of a cached constant operand: 256 KiB of float32, small enough to stay in cache.
_BLOCK = 1 << 16
#: How many shapes a constant keeps views for, per dtype, before it starts again.
_SHAPES_KEPT = 256
#: Above this many elements ``np.clip`` (then ``+ 0.0`` for relu6) beats maximum then minimum
#: against constant operands; below, its Python wrapper (about 2.5 us) costs more than a pass.
_CLIP_FROM = 1 << 14
_SINGLE_OR_DOUBLE = frozenset((np.dtype("float32"), np.dtype("float64")))
#: Ungrouped convolutions multiply the patch matrix (positions, window * channels) by the
#: kernel in blocks of positions of at most this many bytes of patches, so the copy stays
#: bounded (9x the input for a 3x3).  Blocks are large: small ones would fit in cache, but each
#: product runs on BLAS's threads, which keep a core busy between products, so copies between
#: many small products run slow.  Measured on the 2-core machine, 3x3 64->64 on (8, 56, 56):
#: one product per kernel position (9 copies and accumulations of the output) 38 ms; the whole
#: patch matrix 22.4 ms; 32 MiB blocks 21.3 ms; 2 MiB blocks 28.3 ms (22 ms on one BLAS thread).
_PATCH_BLOCK_BYTES = 1 << 25
#: A 1-D convolution takes its phases' products (``_phase_products``) where each phase has at
#: least ``_PHASE_ROWS`` outputs per image and there are at most ``_PHASE_FEATURES`` features, or
#: at least ``_PHASE_ROWS_MANY_FEATURES`` outputs per phase: its products are one per image and
#: phase, where the patch matrix's copy feeds one product over every image, which wins where the
#: products cost far more than the copy (many features) and the phases' are short.  Measured on
#: the 2-core machine, float32, phases against the patch matrix: 16 features or 32, 12 to 1024
#: outputs per phase, 0.56 to 0.95 (k400/160 on (8, 4000, 32), 8 per phase: 2.3); 64 features
#: 1.10 to 1.23 up to 170 per phase, 0.83 at 682; 128 features 1.17 to 1.9 up to 85, 0.79 to 0.94
#: from 170.
_PHASE_ROWS, _PHASE_FEATURES, _PHASE_ROWS_MANY_FEATURES = 16, 32, 512
#: How many leaky_relu slopes are kept as constant operands before starting again: at most
#: 12 MiB of blocks, if every one is used in float32 and float64.
_SLOPES_KEPT = 16


class _Constant:
    """Read-only float32 and float64 arrays of one constant, to be a ufunc's second operand:
    a block of ``_BLOCK`` elements per dtype (made on first use), and ``views`` of it shaped
    like the arrays of up to ``_BLOCK`` elements seen so far (dtype -> shape -> view)."""

    def __init__(self, value: float) -> None:
        self.value = value
        self.blocks: dict[np.dtype, np.ndarray] = {}
        self.views: dict[np.dtype, dict[tuple[int, ...], np.ndarray]] = {dtype: {} for dtype in _SINGLE_OR_DOUBLE}

    def block(self, dtype: np.dtype) -> np.ndarray:
        block = self.blocks.get(dtype)
        if block is None:
            block = self.blocks[dtype] = np.full(_BLOCK, self.value, dtype)
            block.flags.writeable = False
        return block

    def shaped_like(self, x: np.ndarray) -> np.ndarray:
        """The constant in ``x``'s dtype and shape (``x.size <= _BLOCK``), kept for the next call."""
        views = self.views[x.dtype]
        if len(views) >= _SHAPES_KEPT:
            views.clear()
        view = views[x.shape] = self.block(x.dtype)[:x.size].reshape(x.shape)
        return view

    def like(self, x: np.ndarray) -> np.ndarray:
        """The constant in ``x``'s dtype and shape (``x.size <= _BLOCK``): the kept view, or a new one."""
        view = self.views[x.dtype].get(x.shape)
        return view if view is not None else self.shaped_like(x)


def _with_constant(ufunc: np.ufunc, x: np.ndarray, constant: _Constant, *, out: np.ndarray | None = None) -> np.ndarray:
    """``ufunc(x, constant.value)`` for a float32 or float64 ``x``, into ``out`` (``x`` itself, a
    slice of a larger output) when given.

    NumPy's SIMD loops take two contiguous operands; a scalar operand takes a strided loop
    about twice as slow, and is converted on every call.  Measured on a 2-core AVX2 machine:
    ``maximum(x, 0)`` costs 1.6 us at (1000,) and 2.1 ms at (4096, 1024), against 0.75 us and
    1.05 ms with a constant operand, when one copy pass costs 0.4 us and 1.0 ms.  Arrays of up
    to ``_BLOCK`` elements take a view shaped like them; larger C-contiguous ndarrays go
    through as rows of ``_BLOCK`` elements against the block (one operand the size of ``x`` would
    double the memory traffic)."""
    size = x.size
    if size <= _BLOCK:
        view = constant.views[x.dtype].get(x.shape)
        if view is None:
            view = constant.shaped_like(x)
        return ufunc(x, view) if out is None else ufunc(x, view, out=out)
    if type(x) is not np.ndarray or not x.flags.c_contiguous:  # subclasses keep their own reshape
        return ufunc(x, constant.value, out=out)
    if out is None:
        out = np.empty_like(x)
    block = constant.block(x.dtype)
    whole = size - size % _BLOCK
    flat, flat_out = x.reshape(-1), out.reshape(-1)
    ufunc(flat[:whole].reshape(-1, _BLOCK), block, out=flat_out[:whole].reshape(-1, _BLOCK))
    ufunc(flat[whole:], block[:size - whole], out=flat_out[whole:])
    return out


def _constant_operand_fast_paths(paths: dict[str, FastPath]) -> dict[str, FastPath]:
    """relu, relu6, hard_tanh, hard_sigmoid, hard_silu, leaky_relu, soft_sign and gelu for float32
    and float64 arrays as ufuncs against constant operands (``_with_constant``).  Other dtypes, 0-d arrays
    and the sizes where ``np.clip`` or slices on all cores are faster go to ``paths``.
    maximum(-0.0, 0) is +0.0 in these loops, as jax.nn's relu, relu6 and hard_sigmoid give."""
    zeros, ones, minus_ones, threes, sixes = (_Constant(value) for value in (0, 1, -1, 3, 6))
    gelu_cubics, gelu_scales = _Constant(_GELU_CUBIC), _Constant(_GELU_SCALE)
    zero_views, one_views = zeros.views, ones.views
    slopes: dict[float, _Constant] = {}

    def relu_against_zeros(x: Any, *, into: Any = None) -> Any:
        return _with_constant(np.maximum, x, zeros, out=into)

    large_relu = slices.sliced_when_large(relu_against_zeros, fills=True, bound="memory")

    def relu(x: Any) -> Any:
        # The common call (a shape seen before) inline: its cost is a call of maximum.
        views = zero_views.get(x.dtype)
        if views is None or not x.ndim:
            return NotImplemented
        view = views.get(x.shape)
        return np.maximum(x, view) if view is not None else large_relu(x)

    def relu6(x: Any) -> Any:
        if not x.ndim or x.dtype not in _SINGLE_OR_DOUBLE or x.size > _CLIP_FROM:
            return paths["relu6"](x)
        out = _with_constant(np.maximum, x, zeros)
        return _with_constant(np.minimum, out, sixes, out=out)

    def hard_tanh(x: Any) -> Any:
        if not x.ndim or x.dtype not in _SINGLE_OR_DOUBLE or x.size > _CLIP_FROM:
            return paths["hard_tanh"](x)
        out = _with_constant(np.maximum, x, minus_ones)
        return _with_constant(np.minimum, out, ones, out=out)

    def hard_sigmoid(x: Any) -> Any:
        """relu6(x + 3) / 6."""
        if not x.ndim or x.dtype not in _SINGLE_OR_DOUBLE or x.size > _CLIP_FROM:
            return paths["hard_sigmoid"](x)
        out = _with_constant(np.add, x, threes)
        _with_constant(np.maximum, out, zeros, out=out)
        _with_constant(np.minimum, out, sixes, out=out)
        return _with_constant(np.divide, out, sixes, out=out)

    def hard_silu(x: Any) -> Any:
        if not x.ndim or x.dtype not in _SINGLE_OR_DOUBLE or x.size > _CLIP_FROM:
            return paths["hard_silu"](x)
        out = hard_sigmoid(x)
        out *= x
        return out

    def soft_sign(x: Any) -> Any:
        """x / (1 + |x|), with 1 a constant operand (at (1000,), 1.9 us against 2.4 with a number).
        The common call (a shape seen before) is inline: through ``_with_constant`` it cost 0.3 us more."""
        views = one_views.get(x.dtype)
        if views is None or not x.ndim:
            return paths["soft_sign"](x)
        view = views.get(x.shape)
        if view is None:
            if x.size > _BLOCK:
                return paths["soft_sign"](x)
            view = ones.shaped_like(x)
        out = np.abs(x)
        out += view
        return np.divide(x, out, out=out)

    def gelu(x: Any, approximate: bool = True) -> Any:
        """The tanh form with its three constants as constant operands (at (1000,), 9.0 us a call
        against 9.5 with numbers); the erf form and larger arrays take ``paths``."""
        if approximate is not True or not x.ndim or x.dtype not in _SINGLE_OR_DOUBLE or x.size > _BLOCK:
            return paths["gelu"](x, approximate)
        return tanh_gelu(np, x, gelu_cubics.like(x), gelu_scales.like(x), zeros.like(x))

    def kept_slope(value: Any) -> _Constant | None:
        """The constant operand of a leaky_relu slope, kept from now on; None for a slope outside
        [2**-14, 1], where maximum(slope * x, x) is not leaky_relu in every dtype (see _ufuncs)."""
        if type(value) is not float or not _FLOAT16_TINY <= value <= 1:
            return None
        if len(slopes) >= _SLOPES_KEPT:
            slopes.clear()
        slope = slopes[value] = _Constant(value)
        return slope

    def leaky_relu(x: Any, negative_slope: float = 0.01) -> Any:
        """maximum(slope * x, x) with the slope a constant operand, for arrays of up to ``_BLOCK``
        elements (at (1000,), 1.75 us against 2.1 with a scalar slope); larger ones are memory-bound
        and take ``paths``.  The common call (a slope and shape seen before) is inline."""
        slope = slopes.get(negative_slope) if type(negative_slope) is float else None
        if slope is None:
            slope = kept_slope(negative_slope)
        views = None if slope is None else slope.views.get(x.dtype)
        if views is None or not x.ndim:
            return paths["leaky_relu"](x, negative_slope)
        view = views.get(x.shape)
        if view is None:
            if x.size > _BLOCK:
                return paths["leaky_relu"](x, negative_slope)
            view = slope.shaped_like(x)
        out = np.multiply(x, view)
        return np.maximum(out, x, out=out)

    return {"relu": relu, "relu6": relu6, "hard_tanh": hard_tanh, "hard_sigmoid": hard_sigmoid,
            "hard_silu": hard_silu, "leaky_relu": leaky_relu, "soft_sign": soft_sign,
            "gelu": gelu}


def _added(y: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """``y + bias``, in place where ``y`` (a fresh product) holds the sum's dtype; a bias along
    the last axis of a C-contiguous ``y`` of a tile or more, over tiles of it (``_RowOperand``):
    a broadcast ``+=`` runs its inner loop over one row of ``bias.size`` elements, 2.2 to 3.6
    times slower (32 features on (8, 3981): 460 against 185 us; 64 on (8, 56, 56): 600 against
    275; 512 on 256 rows: 79 against 25)."""
    if bias is None:
        return y
    if bias.dtype == y.dtype and y.ndim:
        if y.size >= _TILE and bias.shape == y.shape[-1:] and y.flags.c_contiguous:
            _RowOperand(bias).apply(np.add, y.reshape(-1, bias.shape[0]))
        else:
            y += bias
        return y
    return y + bias


def _polynomial(coefficients: tuple[float, ...], w: np.ndarray) -> np.ndarray:
    """Horner in float64 with ``_fallback.erf_inv_float32``'s roundings: to float32 before the last step."""
    p = np.full_like(w, coefficients[0])
    last = len(coefficients) - 2
    for step, c in enumerate(coefficients[1:]):
        if step == last:
            p = p.astype(np.float32).astype(np.float64)
        np.multiply(p, w, out=p)
        np.add(p, c, out=p)
    return p


def erf_inv_float32(x: np.ndarray) -> np.ndarray:
    """``_fallback.erf_inv_float32`` for NumPy arrays (the same operations, so the same bits)."""
    x = x.astype(np.float32, copy=False)
    edge = np.abs(x) == 1.0
    safe = np.where(edge, np.float32(0), x)
    w = np.negative(np.log1p(np.negative(safe * safe)))
    tail = w >= 5.0
    central_w = (w - np.float32(2.5)).astype(np.float64)
    p = _polynomial(_fallback._ERF_INV_CENTRAL, central_w)
    if tail.any():
        p[tail] = _polynomial(_fallback._ERF_INV_TAIL, (np.sqrt(w[tail]) - np.float32(3.0)).astype(np.float64))
    out = p.astype(np.float32) * x
    if edge.any():
        out[edge] = np.copysign(np.float32(np.inf), x[edge])
    return out


#: NumPy 2 keeps ``np.errstate`` in this context variable: setting it costs 0.1 us, entering
#: ``np.errstate`` 0.8 us (NumPy 1.26 has none: np.errstate then).
_ERRSTATE = getattr(_ufunc_config, "_extobj_contextvar", None)
with np.errstate(all="ignore"):
    _IGNORE_ALL = _ERRSTATE.get() if _ERRSTATE is not None else None
#: The fast paths whose formulas overflow or divide by zero on edge values (inf, huge) by design,
#: giving the right result; they run without NumPy's RuntimeWarnings, as jax.nn's do.
_WARN_ON_EDGES = frozenset(("gelu", "hard_silu", "log_sigmoid", "silu", "soft_sign",
                            "softplus", "sparse_plus", "softmax", "log_softmax", "elu"))


class _Silence:
    """A context without NumPy floating-point warnings (``np.errstate(all="ignore")``, cheaply)."""

    __slots__ = ("token", "fallback")

    def __enter__(self) -> None:
        if _ERRSTATE is not None:
            self.token = _ERRSTATE.set(_IGNORE_ALL)
        else:
            self.fallback = np.errstate(all="ignore")
            self.fallback.__enter__()

    def __exit__(self, *exception: Any) -> None:
        if _ERRSTATE is not None:
            _ERRSTATE.reset(self.token)
        else:
            self.fallback.__exit__(*exception)


def _silent(path: FastPath) -> FastPath:
    """``path`` without NumPy's floating-point warnings (the context variable set inline: the fast
    paths are hot, and ``_Silence`` costs two more calls)."""
    if _ERRSTATE is None:
        def silent(*args: Any, **kwargs: Any) -> Any:
            with _Silence():
                return path(*args, **kwargs)
        return silent

    def silent(*args: Any, **kwargs: Any) -> Any:
        token = _ERRSTATE.set(_IGNORE_ALL)
        try:
            return path(*args, **kwargs)
        finally:
            _ERRSTATE.reset(token)

    return silent


#: NumPy numbers the dtypes that other packages register (ml_dtypes' bfloat16...) from here on.
_USER_DEFINED_DTYPES = 256


def _row_squares(rows: np.ndarray) -> np.ndarray:
    """The sum of squares of each row of a 2-D array, without a temporary (``vecdot``: BLAS-like
    blocked sums, within 2 ulp; ``einsum`` on NumPy 1)."""
    vecdot = getattr(np, "vecdot", None)
    return vecdot(rows, rows) if vecdot is not None else np.einsum("ij,ij->i", rows, rows)


#: A vector applied to every row of a block is repeated to at least this many elements (two of
#: NumPy's buffers), so the ufunc runs long inner loops: over rows of 64 to 1024 elements, its
#: loop per row costs about as much as the arithmetic (float32 ``block *= vector`` on the 2-core
#: machine, ns per element: 0.19 against 0.09 for rows of 64, 0.14 against 0.09 for 1024).
_TILE = 1 << 14


def _tile_repeats(width: int) -> int:
    """How many rows of ``width`` elements a tile holds."""
    return max(1, _TILE // width)


def _block_rows(width: int) -> int:
    """Rows of ``width`` elements per block of about ``PIECE`` elements, in whole tiles."""
    repeats = _tile_repeats(width)
    return max(repeats, slices.PIECE // width // repeats * repeats)


class _RowOperand:
    """``vector`` as the second operand of a ufunc applied to every row of C-contiguous blocks:
    the vector repeated ``repeats`` times, and the block seen as rows of ``repeats`` of its own
    (the rows left over take the vector alone).  Same operations, same numbers.  The tile is
    written by ``np.copyto``, which releases the GIL (``np.tile`` holds it, and made the blocks
    on two threads 7 to 17% slower than without tiles)."""

    def __init__(self, vector: np.ndarray) -> None:
        self.width = vector.shape[-1]
        self.repeats = _tile_repeats(self.width)
        tile = np.empty((self.repeats, self.width), vector.dtype)
        np.copyto(tile, vector)
        self.tile = tile.reshape(-1)

    def apply(self, ufunc: np.ufunc, block: np.ndarray, source: np.ndarray | None = None) -> None:
        """``block = ufunc(source, vector)`` (``source``: ``block`` itself when None)."""
        source = block if source is None else source
        tile = self.tile
        whole = block.shape[0] // self.repeats * self.repeats if source.flags.c_contiguous else 0
        if whole:
            ufunc(source[:whole].reshape(-1, tile.size), tile, out=block[:whole].reshape(-1, tile.size))
        if whole < block.shape[0]:
            ufunc(source[whole:], tile[:self.width], out=block[whole:])


def _group_norm(x: np.ndarray, groups: int, scale: Any, bias: Any, epsilon: float) -> np.ndarray:
    """GroupNorm of the channels-last ``x`` ``(N, ..., C)``, one sample at a time (on every core
    for large arrays), so each sample's block is read from memory once: per channel, the sum
    over the positions, then over each group's channels; the centred block, its squares summed
    per channel (``einsum``, without a temporary), then scaled and shifted in place."""
    rows = x.reshape(x.shape[0], -1, x.shape[-1])
    size = x.shape[-1] // groups
    per_group = rows.shape[1] * size
    out = np.empty(rows.shape, rows.dtype)
    shift = None if bias is None else _RowOperand(bias)

    def grouped(per_channel: np.ndarray) -> np.ndarray:  # (C,) -> (C,), each group's sum
        return np.repeat(per_channel.reshape(groups, size).sum(axis=-1), size)

    def normalize(begin: int, end: int) -> None:
        for sample in range(begin, end):
            part, into = rows[sample], out[sample]
            _RowOperand(grouped(part.sum(axis=0)) / per_group).apply(np.subtract, into, part)
            multiplier = 1 / np.sqrt(grouped(np.einsum("pc,pc->c", into, into)) / per_group + epsilon)
            _RowOperand(multiplier if scale is None else multiplier * scale).apply(np.multiply, into)
            if shift is not None:
                shift.apply(np.add, into)

    slices.in_row_blocks(normalize, rows.shape[0], 1, rows.size)
    return out.reshape(x.shape)


def _tap_product(view: np.ndarray, tap: np.ndarray, groups: int, buffer: np.ndarray | None = None) -> np.ndarray:
    """``view`` ``(..., channels)`` times one kernel position ``tap`` ``(channels // groups,
    features)``, feature group by feature group: ``(..., features)``.  One BLAS product without
    groups, a broadcast product for depthwise kernels (into ``buffer``, of the product's shape,
    when given), an einsum for other groups."""
    channels, features = view.shape[-1], tap.shape[-1]
    if groups == 1:
        return np.dot(view.reshape(-1, channels), tap).reshape(*view.shape[:-1], features)
    if channels == groups == features:  # depthwise: each feature from its channel
        return np.multiply(view, tap.reshape(-1), out=buffer)
    if channels == groups:  # depthwise with several features per channel
        return (view[..., None] * tap.reshape(groups, features // groups)).reshape(*view.shape[:-1], features)
    product = np.einsum("...gc,cgo->...go", view.reshape(*view.shape[:-1], groups, channels // groups),
                        tap.reshape(channels // groups, groups, features // groups), optimize=True)
    return product.reshape(*view.shape[:-1], features)


def _depthwise_in_rows(out: np.ndarray, x: np.ndarray, pads: tuple[tuple[int, int], ...], rhs: np.ndarray,
                       window_strides: Any, rhs_dilation: Any, bias: np.ndarray | None) -> None:
    """A depthwise convolution (each feature from its channel) with a unit stride along the last
    spatial axis, of ``x`` padded by ``pads`` (zeros), plus ``bias``, as one ``einsum`` over
    windows per image: that axis and the channels are seen as one row, so each output element
    of a row sums its window's products in one pass, the inner loop running along the whole row
    with the weights tiled along it (a tap loop makes two passes over the output per kernel
    position, 2 to 3 times slower; windows with a channels axis of their own give the einsum
    short inner loops).  Each core takes a run of images, padding each into a buffer of its own
    that stays in cache and adding the bias to its output while that is in cache too (a padded
    copy of the whole input and a pass for the bias cost 1.1 of 3.2 ms for 3x3 on (8, 56, 56,
    64)).  The products are summed in the tap loop's order."""
    spatial = x.ndim - 2
    window, sizes, channels = rhs.shape[:spatial], out.shape[1:-1], x.shape[-1]
    padded = tuple(n + low + high for n, (low, high) in zip(x.shape[1:-1], pads))
    interior = tuple(slice(low, low + n) for n, (low, _) in zip(x.shape[1:-1], pads))
    width = sizes[-1] * channels
    spans = (*((w - 1) * d + 1 for w, d in zip(window[:-1], rhs_dilation[:-1])),
             (window[-1] - 1) * rhs_dilation[-1] * channels + 1)
    weights = np.tile(rhs.reshape(*window, channels), sizes[-1])
    row_bias = None if bias is None else np.tile(bias, sizes[-1])
    leading, taps = "abc"[:spatial - 1], "ijkl"[:spatial]
    subscripts = f"{leading}m{taps},{taps}m->{leading}m"
    target = out.reshape(*out.shape[:-2], width)

    def images(begin: int, end: int) -> None:
        image = np.zeros((*padded, channels), x.dtype)  # its border stays zero: only the interior is written
        windows = _window_view(image.reshape(*padded[:-1], -1), spans, axis=tuple(range(spatial)))
        windows = windows[(*(slice(None, (n - 1) * s + 1, s) for n, s in zip(sizes[:-1], window_strides)),
                           slice(None, width), *(slice(None, None, d) for d in rhs_dilation[:-1]),
                           slice(None, None, rhs_dilation[-1] * channels))]
        for n in range(begin, end):
            image[interior] = x[n]
            np.einsum(subscripts, windows, weights, out=target[n])
            if row_bias is not None:
                target[n] += row_bias

    threads = slices.WORKERS if out.size * math.prod(window) >= slices.SLICED_FROM["memory"] else 1
    slices.in_row_blocks(images, out.shape[0], -(-out.shape[0] // threads), out.size * math.prod(window))


def _in_image_blocks(compute: Callable[[int, int], None], out: np.ndarray, groups: int, taps: int) -> None:
    """``compute(begin, end)`` over blocks of images of ``out``: on every core for grouped
    kernels where the ``taps`` products over the output are many elements (BLAS threads the
    ungrouped products itself), in one call otherwise."""
    if groups == 1 or out.size * taps < slices.SLICED_FROM["memory"] or out.shape[0] < 2:
        compute(0, out.shape[0])
        return
    slices.in_row_blocks(compute, out.shape[0], 1, out.size * taps)


def _patches(x: np.ndarray, window: tuple[int, ...], sizes: tuple[int, ...], strides: tuple[int, ...],
             dilation: tuple[int, ...]) -> np.ndarray:
    """The view ``(N, *sizes, ...)`` of each output position's window of the padded channels-last
    ``x``, in the kernel's ``(*window, channels)`` order.  Without dilation along the last spatial
    axis, that axis and the channels are seen as one row, so a window's last axis is one
    contiguous run of ``kw * channels`` numbers (4x faster to copy than gathering channel-major)."""
    spatial, channels = x.ndim - 2, x.shape[-1]
    effective = tuple((w - 1) * d + 1 for w, d in zip(window, dilation))
    if dilation[-1] == 1:
        step = strides[-1] * channels
        rows = x.reshape(*x.shape[:-2], x.shape[-2] * channels)
        view = _window_view(rows, (*effective[:-1], effective[-1] * channels), axis=tuple(range(1, spatial + 1)))
        return view[(slice(None), *(slice(None, (n - 1) * s + 1, s) for n, s in zip(sizes[:-1], strides[:-1])),
                     slice(None, (sizes[-1] - 1) * step + 1, step), *(slice(None, None, d) for d in dilation[:-1]),
                     slice(None))]
    view = _window_view(x, effective, axis=tuple(range(1, spatial + 1)))  # (N, *sizes, C, *window)
    view = view[(slice(None), *(slice(None, (n - 1) * s + 1, s) for n, s in zip(sizes, strides)), slice(None),
                 *(slice(None, None, d) for d in dilation))]
    return np.moveaxis(view, spatial + 1, -1)


def _blocks(images: int, height: int, row_bytes: int, reach: int = 0) -> list[tuple[slice, int, int]]:
    """``(images, first, last)``: blocks of about ``_PATCH_BLOCK_BYTES`` of a convolution's
    copied operand, ``row_bytes`` per output row along the first spatial axis, each block
    reading ``reach`` input rows more than it has output rows: several whole images, or output
    rows ``first:last`` of one image."""
    image_bytes = (height + reach) * row_bytes
    if image_bytes <= _PATCH_BLOCK_BYTES:
        count = max(1, _PATCH_BLOCK_BYTES // max(image_bytes, 1))
        return [(slice(n, n + count), 0, height) for n in range(0, images, count)]
    rows = max(1, _PATCH_BLOCK_BYTES // row_bytes - reach)
    return [(slice(n, n + 1), y, min(height, y + rows)) for n in range(images) for y in range(0, height, rows)]


def _window_view(x: np.ndarray, window: int | tuple[int, ...], axis: int | tuple[int, ...]) -> np.ndarray:
    """``np.lib.stride_tricks.sliding_window_view(x, window, axis=axis)`` (read-only, each window
    at most its axis' length) for a third of its cost (2.3 against 7.7 us): the windows' axes
    after ``x``'s, each of ``axis`` shortened to its number of windows."""
    windows, axes = (window, axis) if isinstance(window, tuple) else ((window,), (axis,))
    axes = tuple(a % x.ndim for a in axes)
    shape = list(x.shape)
    for a, size in zip(axes, windows):
        if not 0 < size <= shape[a]:
            raise ValueError(f"a window of {size} over an axis of {shape[a]}")
        shape[a] -= size - 1
    return as_strided(x, (*shape, *windows), (*x.strides, *(x.strides[a] for a in axes)), writeable=False)


def _zero_padded(x: np.ndarray, pads: tuple[tuple[int, int], ...]) -> np.ndarray:
    """``x`` ``(N, *spatial, C)`` with ``pads`` (low, high) zeros around each spatial axis, or ``x``
    itself without any: ``np.pad``'s result, for a tenth of its cost on small images (3 against 25 us)."""
    if not any(low or high for low, high in pads):
        return x
    out = np.zeros((x.shape[0], *(n + low + high for n, (low, high) in zip(x.shape[1:-1], pads)), x.shape[-1]),
                   x.dtype)
    out[(slice(None), *(slice(low, low + n) for n, (low, _) in zip(x.shape[1:-1], pads)))] = x
    return out


def _copied_into(buffer: np.ndarray | None, patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(buffer, copy)``: ``patches`` copied into the start of the flat ``buffer``, made for the
    first (largest) block and kept for the others (a fresh array per block would fault its
    pages in each time)."""
    if buffer is None:
        buffer = np.empty(patches.size, patches.dtype)
    copy = buffer[:patches.size].reshape(patches.shape)
    np.copyto(copy, patches)
    return buffer, copy


def _patch_products(view: np.ndarray, rhs: np.ndarray, out: np.ndarray) -> None:
    """``out`` ``(N, *sizes, features)`` = the patch matrix of ``view`` times the kernel, in
    blocks (``_blocks``) of patches; each block's patches copied once and its product written
    in place."""
    features = rhs.shape[-1]
    kernel = rhs.reshape(-1, features)
    buffer = None
    for images, first, last in _blocks(out.shape[0], out.shape[1],
                                       math.prod(out.shape[2:-1]) * kernel.shape[0] * view.itemsize):
        patches, target = view[images, first:last], out[images, first:last]
        if not patches.flags.c_contiguous:  # a 1x1 kernel's patches are the input itself
            buffer, patches = _copied_into(buffer, patches)
        np.matmul(patches.reshape(-1, kernel.shape[0]), kernel, out=target.reshape(-1, features))


def _phase_products(x: np.ndarray, rhs: np.ndarray, out: np.ndarray, stride: int,
                    bias: np.ndarray | None) -> np.ndarray:
    """A 1-D convolution without kernel dilation, ``out`` ``(N, T, features)`` = the padded
    channels-last ``x`` ``(N, L, C)`` convolved with ``rhs`` ``(k, C, features)`` at ``stride``,
    plus ``bias``, with no copy of the input.  Each image is one row of ``L * C`` numbers, in
    which output ``t``'s window is the contiguous run of ``k * C`` numbers from ``t * stride * C``.
    The outputs of one phase, ``t = q, q + P, q + 2P...`` for ``P = ceil(k / stride)``, have
    windows that do not overlap, so the phase's patch matrix is a view of ``x`` that BLAS reads
    as it is: one product per phase, written into ``out[:, q::P]``.  On every core (BLAS runs
    products this small on one): a block of images each, whose outputs take the bias while they
    are in cache, or, for fewer images than cores, the phases split among them.  Measured on the
    2-core machine, float32, against the patch matrix: k80/4 1->32 on (8, 16000) 0.9-1.0 against
    1.7-1.9 ms (the phases split, then the bias: 1.1); k5 16->16 on (1, 100000) 3.5 against 6.8;
    k3 256->32 on (8, 1000) 2.7 against 4.4 (where it runs: ``_PHASE_ROWS``)."""
    window, channels, features = rhs.shape
    images, size = out.shape[:2]
    period, step = -(-window // stride), stride * channels
    runs = _window_view(x.reshape(images, -1), window * channels, axis=-1)
    kernel = rhs.reshape(window * channels, features)

    def phases(first: int, last: int, begin: int, end: int) -> None:  # images first:last, phases begin:end
        for phase in range(begin, end):
            outputs = len(range(phase, size, period))
            np.matmul(runs[first:last, phase * step::period * step][:, :outputs], kernel,
                      out=out[first:last, phase::period])

    work = out.size * window * channels // 4  # the multiply-adds, about four to an element of a memory pass
    if images < slices.WORKERS or (bias is not None and bias.dtype != out.dtype):
        slices.in_row_blocks(lambda begin, end: phases(0, images, begin, end), period, 1, work)
        return _added(out, bias)

    def image_block(first: int, last: int) -> None:
        phases(first, last, 0, period)
        _added(out[first:last], bias)

    slices.in_row_blocks(image_block, images, -(-images // slices.WORKERS), work)
    return out


def _row_window_products(x: np.ndarray, rhs: np.ndarray, out: np.ndarray, strides: tuple[int, ...],
                         dilation: tuple[int, ...]) -> None:
    """A 2-D convolution with a unit stride along its first spatial axis, ``out`` ``(N, H, W,
    features)`` = the padded channels-last ``x`` convolved with ``rhs`` ``(kh, kw, C, features)``,
    by rows of windows: the windows along the second axis only (``kw * C`` numbers per position,
    copied once: the patch matrix copies ``kh`` times more), then, image by image, products with
    the kernel rows ``dy`` whose results, shifted by ``dy * dilation`` rows, are summed into
    ``out`` in the order of ``dy``; in blocks (``_blocks``) of windows.  For tall kernels of few
    features (``kh >= 4``, ``features <= 32``) whose rows together are not much wider than a
    window (``kh * features <= 2 * kw * C``), one wide BLAS product of the image's rows of windows
    with all the kernel rows, ``(kw * C, kh * features)``, serves every ``dy``: BLAS runs narrow
    products (few features) slowly.  Otherwise one product per ``dy``, whose operand is a
    contiguous run of the rows: the wide product's strided sums cost more than they save, and its
    result would be many times the input for few channels.  Measured on the 2-core machine,
    float32, wide against per row: 5x5 32->32 on (4, 64, 64) 4.9-5.1 against 5.4-5.6 ms (the
    patch matrix: 7.5), 5x5 32->8 2.1 against 3.2; but 3x3 64->64 on (8, 56, 56) 10.0-10.3
    against 9.7, 3x3 32->32 3.8 against 3.5, 7x7 64->64 7.7 against 7.4, 7x7 3->64 on (1, 224,
    224) 26 against 11 (a product over several images at once ran 1.5x slower in some processes)."""
    kh, kw, channels, features = rhs.shape
    height, width = out.shape[1:3]
    view = _patches(x, (1, kw), (x.shape[1], width), (1, strides[1]), (1, dilation[1]))
    wide = kh >= 4 and features <= 32 and kh * features <= 2 * kw * channels
    kernel = rhs.reshape(kh, kw * channels, features)
    if wide:
        kernel = np.ascontiguousarray(np.moveaxis(kernel, 0, 1)).reshape(kw * channels, kh * features)
    reach = (kh - 1) * dilation[0]
    buffer = products = None
    for images, first, last in _blocks(x.shape[0], height, width * kw * channels * x.itemsize, reach):
        buffer, copy = _copied_into(buffer, view[images, first:last + reach])
        rows_of_windows = copy.reshape(copy.shape[0], -1, kw * channels)
        if products is None:
            products = np.empty(((rows_of_windows.shape[1], kh * features) if wide else
                                 ((last - first) * width, features)), x.dtype)
        for image, target in zip(rows_of_windows, out[images, first:last]):
            if wide:
                product = np.matmul(image, kernel, out=products[:len(image)]).reshape(-1, width, kh, features)
                np.copyto(target, product[:last - first, :, 0])
                for dy in range(1, kh):
                    target += product[dy * dilation[0]:dy * dilation[0] + last - first, :, dy]
                continue
            target = target.reshape(-1, features)
            product = products[:len(target)]
            for dy in range(kh):
                operand = image[dy * dilation[0] * width:(dy * dilation[0] + last - first) * width]
                if dy == 0:
                    np.matmul(operand, kernel[0], out=target)
                else:
                    np.matmul(operand, kernel[dy], out=product)
                    target += product


def _input_dilated_conv(x: np.ndarray, rhs: np.ndarray, padding: Any, lhs_dilation: Any, rhs_dilation: Any,
                        groups: int) -> np.ndarray:
    """``conv_general_dilated`` with unit window strides of ``x`` dilated by ``lhs_dilation``
    (a transposed convolution), without the inserted zeros.  Output ``o`` meets the dilated
    input at ``o + t * rhs_dilation - low`` through kernel position ``t``: an input element where
    that is a multiple ``D * i`` of the dilation.  So position ``t`` reaches the outputs
    ``first + D * j`` (``first = (low - t * rhs_dilation) mod D``) from the plain slice of inputs
    ``start + j``: ``D`` times fewer products per position than over the zero-filled input.
    The outputs of one ``first`` (a class: every ``D``-th output) are summed in a contiguous
    array, each position's product of the whole input added to its slice there, then copied
    to their places at once (strided sums into the output cost 1.6x: 11.1 against 6.8 ms for
    4x4/2 64->32 on (8, 32, 32))."""
    spatial = x.ndim - 2
    window = rhs.shape[:spatial]
    sizes = tuple(max(0, (n - 1) * d + 1 + low + high - (w - 1) * r)
                  for n, d, (low, high), w, r in zip(x.shape[1:-1], lhs_dilation, padding, window, rhs_dilation))
    out = np.empty((x.shape[0], *sizes, rhs.shape[-1]), x.dtype)
    if out.size == 0:
        return out
    classes: dict[tuple[int, ...], list] = {first: [] for first in np.ndindex(*lhs_dilation)}
    for offset in np.ndindex(*window):  # each position's class, the outputs of that class it reaches, its inputs
        firsts, outputs, inputs = [], [], []
        for t, n, d, (low, _), r, size in zip(offset, x.shape[1:-1], lhs_dilation, padding, rhs_dilation, sizes):
            first = (low - t * r) % d
            start = (first + t * r - low) // d
            begin, end = max(0, -start), min(-(-(size - first) // d), n - start)
            firsts.append(first)
            outputs.append(slice(begin, max(begin, end)))
            inputs.append(slice(start + begin, start + max(begin, end)))
        if all(o.stop > o.start for o in outputs):
            classes[tuple(firsts)].append((offset, tuple(outputs), tuple(inputs)))

    def images(begin: int, end: int) -> None:
        block = x[begin:end]
        for firsts, reaching in classes.items():
            target = out[(slice(begin, end), *(slice(f, None, d) for f, d in zip(firsts, lhs_dilation)))]
            sums = np.zeros(target.shape, x.dtype)
            for offset, outputs, inputs in reaching:
                sums[(slice(None), *outputs)] += _tap_product(block, rhs[offset], groups)[(slice(None), *inputs)]
            np.copyto(target, sums)

    _in_image_blocks(images, out, groups, sum(map(len, classes.values())))
    return out


class NumpyAdapter(Adapter):
    name = "numpy"

    def random_chunk(self, device):
        return 1 << 16

    def map_slices(self, function, starts):
        """Slices of a random draw on all cores: NumPy's ufuncs release the GIL."""
        starts = list(starts)
        if len(starts) < 2:
            return [function(start) for start in starts]
        return list(slices.pool().map(function, starts))

    def _fast_paths(self) -> dict[str, FastPath]:
        paths = slices.sliced_fast_paths(ufunc_fast_paths(np, _special, masked_ufuncs=True))
        paths = {**paths, **_constant_operand_fast_paths(paths)}
        return {name: _silent(path) if name in _WARN_ON_EDGES else path for name, path in paths.items()}

    def quietly(self):
        """NumPy's floating-point warnings off: the written-once definitions overflow and divide
        by zero on edge values by design (``softplus(inf)``), where jax.nn is silent."""
        return _Silence()

    def compile(self, definition):
        """Definitions with the ``elementwise`` or ``rowwise`` trait, computed in slices on all
        cores for large arrays; None for the others."""
        if "elementwise" in definition.traits:
            self.compiled_definitions.add(definition.name)
            return _silent(slices.written_once_in_slices(definition.bound(self)))
        if "rowwise" in definition.traits:
            self.compiled_definitions.add(definition.name)
            return _silent(slices.written_once_by_rows(definition.bound(self)))
        return None

    def erf_inv(self, x):
        """XLA's float32 ``ErfInv32`` as the standard-only version computes it, bit for bit,
        but with in-place ufuncs and the rare tail (``|x| > 0.9966``) done on its own elements
        instead of a select per coefficient: about twice as fast."""
        if x.dtype == np.float64:
            return super().erf_inv(x)
        return erf_inv_float32(x).astype(x.dtype, copy=False)

    def fused_norm(self, kind, x, count, scale, bias, epsilon, statistics=None, channels_first=False,
                   fast_variance=False):
        """Layer, RMS, group and batch norms (training and running) of float32/float64 arrays in
        as few passes over memory as NumPy allows.  The layer and RMS norms go through blocks of
        rows that stay in cache (the mean, the centred block, its squares summed by ``vecdot``
        without a temporary, then scaled and shifted in place), on all cores for large arrays;
        the batch norms read the data once for the statistics (each block's sums and squares
        about its own mean, joined in order) and once more to write the output, in blocks too;
        the group norm goes sample by sample (``_group_norm``).  Every variance is the accurate
        one (``fast_variance`` asks nothing more)."""
        if x.dtype not in (np.float32, np.float64) or x.size == 0:
            return None
        if channels_first:  # computed channels-last (the rows of each channel's values are copied)
            fused = self.fused_norm(kind, np.moveaxis(x, 1, -1), count, scale, bias, epsilon, statistics)
            if fused is None or kind != "batch":
                return None if fused is None else np.moveaxis(fused, -1, 1)
            return (np.moveaxis(fused[0], -1, 1), *fused[1:])
        if kind == "group":
            return None if x.ndim < 2 else _group_norm(x, count, scale, bias, epsilon)
        if kind in ("layer", "rms"):
            rows = x.reshape(-1, math.prod(x.shape[x.ndim - count:]))
            scale = None if scale is None else _RowOperand(scale.reshape(-1))
            bias = None if bias is None else _RowOperand(bias.reshape(-1))
            out = np.empty(rows.shape, rows.dtype)

            def normalize(begin: int, end: int) -> None:
                part, into = rows[begin:end], out[begin:end]
                if kind == "layer":
                    np.subtract(part, np.add.reduce(part, axis=1, keepdims=True) / rows.shape[1], out=into)  # its mean
                    part = into
                multiplier = 1 / np.sqrt(_row_squares(part) / rows.shape[1] + epsilon)
                np.multiply(part, multiplier[:, None], out=into)
                if scale is not None:
                    scale.apply(np.multiply, into)
                if bias is not None:
                    bias.apply(np.add, into)

            slices.in_row_blocks(normalize, rows.shape[0], _block_rows(rows.shape[1]), rows.size)
            return out.reshape(x.shape)
        rows = x.reshape(-1, x.shape[-1])
        block = _block_rows(rows.shape[1])
        out = np.empty(rows.shape, rows.dtype)
        if statistics is None:
            ones = np.ones(min(block, rows.shape[0]), rows.dtype)

            def moments(begin: int, end: int) -> tuple[int, np.ndarray, np.ndarray]:
                """A block's row count, sums, and sums of squares about its own mean: one read from
                memory.  The sums are BLAS's ``ones @ part`` (5x faster than ``part.sum(axis=0)``, which
                adds the rows one after another, and no less accurate); the centred block is held in
                the output's rows, which the normalization then scales and shifts in place (a fresh
                temporary per block costs its pages' faults: 2 of the 4 ms for (32, 56, 56, 64))."""
                part, centred = rows[begin:end], out[begin:end]
                sums = np.dot(ones[:end - begin], part)
                _RowOperand(sums / (end - begin)).apply(np.subtract, centred, part)
                return end - begin, sums, np.einsum("ij,ij->j", centred, centred)

            # The blocks' moments joined in order (Chan, Golub and LeVeque's pairwise update): the
            # squares about the mean are each block's own plus its count times the square of its
            # mean's distance to the whole's.
            parts = slices.in_row_blocks(moments, rows.shape[0], block, rows.size)
            mean = functools.reduce(np.add, [sums for _, sums, _ in parts]) / rows.shape[0]
            var = functools.reduce(np.add, [squares + count * np.square(sums / count - mean)
                                            for count, sums, squares in parts]) / rows.shape[0]
        else:
            mean, var = statistics
        multiplier = 1 / np.sqrt(var + epsilon)
        multiplier = multiplier if scale is None else multiplier * scale
        if statistics is None:
            # The output's rows hold each block centred about its own mean m_b: (x - m) a + b is
            # (x - m_b) a + ((m_b - m) a + b), a multiply and an add over the output alone, without
            # reading x again (the shift is small beside the spread, so nothing cancels).
            shifts = [(sums / count - mean) * multiplier + (0 if bias is None else bias) for count, sums, _ in parts]
            multiplier = _RowOperand(multiplier)

            def normalize_rows(begin: int, end: int) -> None:
                into = out[begin:end]
                multiplier.apply(np.multiply, into)
                _RowOperand(shifts[begin // block]).apply(np.add, into)
        else:
            mean, multiplier = _RowOperand(mean), _RowOperand(multiplier)
            bias = None if bias is None else _RowOperand(bias)

            def normalize_rows(begin: int, end: int) -> None:
                into = out[begin:end]
                mean.apply(np.subtract, into, rows[begin:end])
                multiplier.apply(np.multiply, into)
                if bias is not None:
                    bias.apply(np.add, into)

        slices.in_row_blocks(normalize_rows, rows.shape[0], block, rows.size)
        return out.reshape(x.shape) if statistics is not None else (out.reshape(x.shape), mean, var)

    def conv_general_dilated(self, lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                             feature_group_count=1, bias=None):
        """The patch matrix (each output position's window of the padded input) times the kernel,
        in blocks of bounded size (``_patch_products``), or without copying the windows: 1-D ones
        by phases (``_phase_products``), 2-D ones of a unit stride along the first axis by rows of
        windows (``_row_window_products``).  Grouped kernels group by group, as dense ones;
        depthwise kernels of a unit stride along the last axis by one einsum over each image's rows
        of windows (``_depthwise_in_rows``), other depthwise ones by the tap loop: for each kernel
        position, the strided view of the padded input that it meets, times that position's slice
        of the kernel (``_tap_product``), accumulated in place; both in blocks of images on every
        core (BLAS does not thread their products).  An input dilation (a transposed convolution)
        inserts no zeros: each position meets a plain slice of the input and reaches every
        ``lhs_dilation``-th output (``_input_dilated_conv``).  Other dtypes take the
        standard-only version.  The bias is added in place."""
        if lhs.dtype not in _SINGLE_OR_DOUBLE or rhs.dtype != lhs.dtype or type(lhs) is not np.ndarray:
            return super().conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                                feature_group_count, bias)
        if any(d != 1 for d in lhs_dilation) and all(s == 1 for s in window_strides) and 0 not in lhs.shape[1:]:
            return _added(_input_dilated_conv(lhs, rhs, padding, lhs_dilation, rhs_dilation, feature_group_count), bias)
        return self._convolved(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, feature_group_count, bias)

    @staticmethod
    def _convolved(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, feature_group_count, bias):
        """``conv_general_dilated``, strided input dilation (zeros inserted) included."""
        if any(d != 1 for d in lhs_dilation):
            spaced = tuple(max(0, (n - 1) * d + 1) for n, d in zip(lhs.shape[1:-1], lhs_dilation))
            dilated = np.zeros((lhs.shape[0], *spaced, lhs.shape[-1]), lhs.dtype)
            dilated[(slice(None), *(slice(None, None, d) for d in lhs_dilation))] = lhs
            lhs, lhs_dilation = dilated, (1,) * len(lhs_dilation)
        per_group = lhs.shape[-1] // feature_group_count
        if feature_group_count > 1 and per_group > 1:
            # each group's own dense convolution (BLAS products): 1.4x torch where the tap loop's
            # batched einsum was 5x, for 2 groups of 32 channels on (8, 56, 56, 64); as fast as
            # the einsum for small groups (32 of 4 channels on (8, 56, 56, 128): 49 ms both)
            features = rhs.shape[-1] // feature_group_count
            return _added(np.concatenate([NumpyAdapter._convolved(
                lhs[..., g * per_group:(g + 1) * per_group], rhs[..., g * features:(g + 1) * features],
                window_strides, padding, lhs_dilation, rhs_dilation, 1, None) for g in range(feature_group_count)],
                axis=-1), bias)
        spatial = lhs.ndim - 2
        crop = tuple(slice(max(0, -low), n - max(0, -high)) for (low, high), n in zip(padding, lhs.shape[1:-1]))
        cropped = lhs[(slice(None), *crop)]
        pads = tuple((max(0, low), max(0, high)) for low, high in padding)
        window = rhs.shape[:spatial]
        sizes = tuple(max(0, (n + low + high - (w - 1) * d - 1) // s + 1) for n, (low, high), w, d, s
                      in zip(cropped.shape[1:-1], pads, window, rhs_dilation, window_strides))
        groups, channels, features = feature_group_count, lhs.shape[-1], rhs.shape[-1]
        in_rows = channels == groups == features and window_strides[-1] == 1  # every output written once
        out = (np.empty if (groups == 1 or in_rows) and channels else np.zeros)((lhs.shape[0], *sizes, features),
                                                                               lhs.dtype)
        if out.size == 0 or channels == 0:  # no channels: every sum is empty
            return _added(out, bias)
        if in_rows:
            _depthwise_in_rows(out, cropped, pads, rhs, window_strides, rhs_dilation, bias)
            return out
        x = _zero_padded(cropped, pads)
        if groups == 1 and spatial == 1 and rhs_dilation[0] == 1:
            rows_per_phase = sizes[0] // -(-window[0] // window_strides[0])
            if rows_per_phase >= (_PHASE_ROWS if features <= _PHASE_FEATURES else _PHASE_ROWS_MANY_FEATURES):
                return _phase_products(x, rhs, out, window_strides[0], bias)
        if groups == 1 and spatial == 2 and window[0] > 1 and window_strides[0] == 1:
            _row_window_products(x, rhs, out, window_strides, rhs_dilation)
            return _added(out, bias)
        if groups == 1:
            _patch_products(_patches(x, window, sizes, window_strides, rhs_dilation), rhs, out)
            return _added(out, bias)

        def images(begin: int, end: int) -> None:
            target = out[begin:end]
            buffer = np.empty_like(target) if channels == groups == features else None
            for offset in np.ndindex(*window):
                view = x[(slice(begin, end), *(slice(o * d, o * d + (n - 1) * s + 1, s)
                                               for o, d, s, n in zip(offset, rhs_dilation, window_strides, sizes)))]
                target += _tap_product(view, rhs[offset], groups, buffer)

        _in_image_blocks(images, out, groups, math.prod(window))
        return _added(out, bias)

    def dense(self, x, kernel, bias=None):
        """``x @ kernel`` as ``np.dot`` of ``x``'s rows, the bias added in place: NumPy's ``matmul``
        costs more per call (at batch 1, 1.4 against 0.6 us for a 16 x 16 kernel; 26 against 22
        us for 784 x 512), and with more than two axes runs one product per leading index
        instead of one BLAS call (313 against 141 us for (8, 32, 784) rows); ``np.dot`` itself
        with more than two axes does not call BLAS, so those rows are seen as a matrix first."""
        if x.ndim <= 2:
            y = np.dot(x, kernel)
            if bias is not None and bias.dtype == y.dtype and y.ndim and y.size < _TILE:  # a small call: _added, inline
                y += bias
                return y
        else:
            y = np.dot(x.reshape(-1, x.shape[-1]), kernel)
            y = y.reshape(*x.shape[:-1], *y.shape[1:])
        return _added(y, bias)

    def write_rows(self, table, ids, rows):
        """``table[ids] = rows``, in place."""
        table[ids] = rows
        return table

    def einsum(self, subscripts, *operands):
        """``np.einsum`` with contraction-order optimisation, so products go to BLAS."""
        return np.einsum(subscripts, *operands, optimize=True)

    def to_host(self, x):
        return np.asarray(x)  # a NumPy scalar (np.float32) becomes a 0-d array

    def check_array_type(self, array_type):
        """``np.matrix`` and ``np.ma.MaskedArray`` are refused, so written-once code never silently
        computes something else: a matrix's ``*`` is a matrix product, and a masked array's
        arithmetic with Python numbers runs in float64 (float32 ``x * 0.5`` is float64, ``x *= 0.5``
        rounds twice) while its mask is no part of the Array API."""
        if issubclass(array_type, np.matrix):
            raise TypeError("expected a numpy.ndarray, got numpy.matrix, whose * is a matrix product; "
                            "pass numpy.asarray(x)")
        if issubclass(array_type, np.ma.MaskedArray):
            raise TypeError("expected a numpy.ndarray, got numpy.ma.MaskedArray, whose arithmetic with "
                            "Python numbers promotes float32 to float64; pass x.filled(value), and the "
                            "mask as where= to the functions that take one")

    def check_dtype(self, dtype, where):
        """ml_dtypes' extension dtypes (bfloat16, float8..., what jax hands to NumPy) are no dtypes
        of NumPy's Array API namespace, which refuses them in every function."""
        if dtype.num < _USER_DEFINED_DTYPES:
            return
        raise TypeError(f"{where}: the NumPy array has dtype {dtype}, an extension dtype (ml_dtypes) that "
                        "NumPy's Array API functions do not take; pass x.astype(numpy.float32), or a jax "
                        "or torch array to compute in bfloat16")

    def array_result(self, out):
        """NumPy's functions give scalars (``np.float32``) for 0-d results; xpnn gives 0-d arrays,
        as jax.nn does."""
        if isinstance(out, tuple):
            return tuple(self.array_result(part) for part in out)
        return np.asarray(out) if isinstance(out, np.generic) else out

    if _special is not None:

        def erf(self, x):
            return _special.erf(x).astype(x.dtype, copy=False)

        def lgamma(self, x):
            """SciPy's ``gammaln``, with C's (and torch's, XLA's) +inf at -inf where SciPy gives -inf."""
            out = _special.gammaln(x).astype(x.dtype, copy=False)
            return np.where(np.isneginf(x), np.inf, out).astype(x.dtype, copy=False)

        def erfc(self, x):
            """SciPy's ``erfc``, its tail from ``erfcx`` (``_fallback.erfc_by_erfcx``), in float64
            (SciPy's float32 loops compute in float64 too) and rounded once."""
            wide = x.astype(np.float64, copy=False)
            return _fallback.erfc_by_erfcx(np, wide, _special.erfc, _special.erfcx).astype(x.dtype, copy=False)


ADAPTER = NumpyAdapter

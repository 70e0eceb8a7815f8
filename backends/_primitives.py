"""The primitives the written-once code may call: the adapter contract's first part.

The Array API standard lacks special functions, einsum, convolution,
windowed reductions, loops and autodiff control; the written-once code asks
the adapter (``ops``) for them by these names, and nothing else.  Each has a
standard-only fallback (``backends/_fallback/``, by family), so any conforming
library works; an adapter overrides a primitive where its library has a
native kernel (``jax.lax.conv_general_dilated``, ``torch.special.erf``...).
The tests compare every native version with the fallback.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from xpnn._types import Array, Namespace
from xpnn._windows import padded

from . import _fallback

Padding = Sequence[tuple[int, int]]


class Primitives:
    """The named primitives, standard-only; ``xp`` is the library's Array API namespace."""

    xp: Namespace

    # -- special functions (_fallback.special) ---------------------------------------
    def erf(self, x: Array) -> Array:
        """Error function, elementwise."""
        return _fallback.erf(self.xp, x)

    def erfc(self, x: Array) -> Array:
        """Complementary error function ``1 - erf(x)``, accurate in the tail."""
        return _fallback.erfc(self.xp, x)

    def erf_inv(self, x: Array) -> Array:
        """Inverse error function, equal to XLA's (jax.lax.erf_inv) in float32 and below.

        Narrow floats go through float32, as XLA does; float64 is polished
        to full precision with this adapter's ``erf``/``erfc``.
        """
        xp = self.xp
        if x.dtype == xp.float64:
            return _fallback.erf_inv_float64(xp, x, self.erf, self.erfc)
        return xp.astype(_fallback.erf_inv_float32(xp, x), x.dtype)

    def lgamma(self, x: Array) -> Array:
        """``log|Gamma(x)|``, elementwise (+inf at the poles, the non-positive integers)."""
        return _fallback.lgamma(self.xp, x)

    def erf_as_jax(self, x: Array) -> Array:
        """``erf`` rounded as ``jax.lax.erf`` on the CPU rounds it, for samplers that must give
        jax.random's numbers bit for bit: XLA's float32 approximation for float32 and narrower
        (its bits, not correct rounding: near 1 a different ulp moves a truncated normal's
        samples by up to 0.6), the library's erf in float64."""
        xp = self.xp
        if x.dtype == xp.float64:
            return self.erf(x)
        return xp.astype(_fallback.erf_float32_as_xla(xp, x, self.fma), x.dtype)

    def fma(self, a: Array, b: Array, c: Array) -> Array:
        """``a * b + c`` rounded once, as XLA computes it on CPU (it contracts multiply-adds)."""
        return _fallback.fma(self.xp, a, b, c)

    # -- linear algebra (_fallback.linalg, _fallback.einsum) ---------------------------
    def einsum(self, subscripts: str, *operands: Array) -> Array:
        """Einstein summation (``numpy.einsum`` semantics): the library's own
        einsum where it has one, else the standard-only one (one or two operands)."""
        native = getattr(self.xp, "einsum", None)
        if native is not None:
            return native(subscripts, *operands)
        return _fallback.einsum(self.xp, subscripts, *operands)

    def qr(self, a: Array) -> tuple[Array, Array]:
        """Reduced QR decomposition of a tall matrix: ``linalg.qr`` where the
        library has the linalg extension, else the standard-only one."""
        linalg = getattr(self.xp, "linalg", None)
        if linalg is not None and hasattr(linalg, "qr"):
            return linalg.qr(a)
        return _fallback.qr(self.xp, a)

    def solve(self, a: Array, b: Array) -> Array:
        """``x`` with ``a @ x == b`` for a square matrix ``a`` and a matrix ``b``: ``linalg.solve``
        where the library has the linalg extension, else the standard-only elimination."""
        linalg = getattr(self.xp, "linalg", None)
        if linalg is not None and hasattr(linalg, "solve"):
            return linalg.solve(a, b)
        return _fallback.solve(self.xp, a, b)

    def fused_matrix_exp(self, a: Array) -> Array | None:
        """A library's own matrix exponential of the square matrix ``a`` (``torch.linalg.matrix_exp``,
        ``jax.scipy.linalg.expm``), or None where it has none: the written-once one (Taylor
        series with scaling and squaring) runs then; the first use is checked against it."""
        return None

    # -- windows (_fallback.windows) ---------------------------------------------------
    def conv_general_dilated(self, lhs: Array, rhs: Array, window_strides: Sequence[int], padding: Padding,
                             lhs_dilation: Sequence[int], rhs_dilation: Sequence[int],
                             feature_group_count: int = 1, bias: Array | None = None) -> Array:
        """``jax.lax.conv_general_dilated`` with flax's channels-last layouts: ``lhs``
        ``(N, *spatial, C)``, ``rhs`` ``(*window, C // groups, O)``, out ``(N, *out_spatial, O)``;
        ``padding`` is one explicit ``(low, high)`` pair per spatial dimension (the library
        resolves ``"SAME"``), ``lhs_dilation`` > 1 makes a transposed convolution; plus ``bias``
        ``(O,)`` when given (a library may add it in the convolution's kernel, as torch's)."""
        y = _fallback.conv_general_dilated(self.xp, self.einsum, lhs, rhs, window_strides, padding,
                                           lhs_dilation, rhs_dilation, feature_group_count)
        return y if bias is None else y + bias

    def conv_channels_first(self, lhs: Array, rhs: Array, window_strides: Sequence[int], padding: Padding,
                            lhs_dilation: Sequence[int], rhs_dilation: Sequence[int],
                            feature_group_count: int = 1, bias: Array | None = None) -> Array:
        """``conv_general_dilated`` in torch's layouts: ``lhs`` ``(N, C, *spatial)``, ``rhs``
        ``(O, C // groups, *window)``, out ``(N, O, *out_spatial)``, plus ``bias`` ``(O,)`` per
        output channel when given (the torch-style modules' convolutions).  By default the
        channels-last primitive on permuted views; a library whose kernels take this layout
        (torch) runs them on it directly, the bias added by the kernel."""
        xp, rank = self.xp, lhs.ndim - 2
        y = self.conv_general_dilated(xp.permute_dims(lhs, (0, *range(2, rank + 2), 1)),
                                      xp.permute_dims(rhs, (*range(2, rank + 2), 1, 0)), window_strides, padding,
                                      lhs_dilation, rhs_dilation, feature_group_count, bias)
        return xp.permute_dims(y, (0, rank + 1, *range(1, rank + 1)))

    def conv_transpose_channels_first(self, lhs: Array, rhs: Array, strides: Sequence[int], padding: Sequence[int],
                                      output_padding: Sequence[int], feature_group_count: int,
                                      rhs_dilation: Sequence[int], bias: Array | None = None) -> Array:
        """torch's transposed convolution (``F.conv_transpose1d/2d/3d``, the gradient of
        ``conv_channels_first`` with respect to its input): ``lhs`` ``(N, C, *spatial)``, ``rhs``
        ``(C, O // groups, *window)``, ``padding`` p and ``output_padding`` o per spatial axis,
        out ``(N, O, *out)`` of sizes (n - 1) s - 2 p + d (k - 1) + o + 1, plus ``bias``.  By
        default ``conv_channels_first`` of the input dilated by ``strides`` with each group's
        kernel flipped and its feature axes swapped, padded by d (k - 1) - p (plus o at the end);
        a library whose kernels take this form (torch) runs them on it directly."""
        xp, rank, groups = self.xp, lhs.ndim - 2, feature_group_count
        channels, per_group, window = rhs.shape[0], rhs.shape[1], tuple(rhs.shape[2:])
        # (C, O/g, *k) -> per group (O/g, C/g, *k) flipped
        grouped = xp.permute_dims(xp.reshape(rhs, (groups, channels // groups, per_group, *window)),
                                  (0, 2, 1, *range(3, rank + 3)))
        kernel = xp.flip(xp.reshape(grouped, (groups * per_group, channels // groups, *window)),
                         axis=tuple(range(2, rank + 2)))
        pads = tuple((d * (k - 1) - p, d * (k - 1) - p + o)
                     for k, d, p, o in zip(window, rhs_dilation, padding, output_padding))
        return self.conv_channels_first(lhs, kernel, (1,) * rank, pads, strides, rhs_dilation, groups, bias)

    def pad(self, x: Array, pads: Sequence[tuple[int, int]], mode: str = "constant", value: float = 0) -> Array:
        """``x`` padded by ``pads`` (one ``(low, high)`` per axis) as ``numpy.pad`` pads it with
        ``mode`` ``"constant"`` (``value``; a negative side crops), ``"reflect"`` (the edge element
        not repeated; a side wider than the axis less one is an error), ``"edge"`` or ``"wrap"``:
        by default axis by axis with the standard's slices (``xpnn._windows.padded``)."""
        for axis, (low, high) in enumerate(pads):
            if low or high:
                x = padded(self.xp, x, axis, low, high, mode, value)
        return x

    def reduce_window(self, x: Array, init: float, reduction: str | Callable[[Array, Array], Array],
                      window_dimensions: Sequence[int], window_strides: Sequence[int], padding: Padding,
                      window_dilation: Sequence[int] | None = None) -> Array:
        """``jax.lax.reduce_window`` for ``reduction`` in ``"max"``, ``"min"``, ``"sum"`` (or a binary
        elementwise function, which native versions may leave to this one): one window size,
        stride and ``(low, high)`` padding (filled with ``init``) per axis of ``x``."""
        dilation = window_dilation if window_dilation is not None else (1,) * x.ndim
        return _fallback.reduce_window(self.xp, x, init, reduction, window_dimensions, window_strides,
                                       padding, dilation)

    def fused_pool(self, kind: str, x: Array, window: tuple[int, ...], strides: tuple[int, ...],
                   padding: tuple[int, ...], dilation: tuple[int, ...], ceil_mode: bool,
                   count_include_pad: bool = True, divisor_override: int | None = None) -> Any:
        """A library's fused pooling of ``x`` ``(N, C, *spatial)`` (1 to 3 spatial axes) with
        torch's arguments (``F.max_pool1d/2d/3d``, ``F.avg_pool1d/2d/3d``), or None where it has
        none (the torch-style function then runs its written-once windows; the first use of a
        fused kernel of each rank is checked against them).  ``kind`` 'max' gives the maxima,
        'max_indices' the maxima and the flat index of each in its plane (``h * W + w`` in 2-D),
        'avg' the means (``count_include_pad``, ``divisor_override``; ``dilation`` is 1)."""
        return None

    def fused_resample(self, x: Array, mode: str, sizes: tuple[int, ...], factors: tuple[float | None, ...],
                       align_corners: bool, antialias: bool) -> Any:
        """A library's fused resize of ``x`` ``(N, C, *spatial)`` to the spatial ``sizes`` in
        torch's ``mode`` ('nearest', 'nearest-exact', 'linear', 'bilinear', 'bicubic',
        'trilinear', 'lanczos'; ``F.interpolate``'s kernels), ``factors`` the scale factors its
        kernels map output positions with (None: input / output size), or None where it has none
        (the written-once tap tables run; the first use of each mode is checked against them)."""
        return None

    def fused_grid_sample(self, x: Array, grid: Array, mode: str, padding_mode: str, align_corners: bool) -> Any:
        """A library's fused ``F.grid_sample`` of ``x`` ``(N, C, *spatial)`` at the finite points of
        ``grid`` ``(N, *out, 2 or 3)``, or None where it has none (the written-once taps run; the
        first use of each mode is checked against them)."""
        return None

    def fused_nll(self, log_p: Array, target: Array, weight: Array | None, ignore_index: int,
                  reduction: str) -> Any:
        """A library's fused negative log-likelihood (``F.nll_loss``'s kernel) of the
        log-probabilities ``log_p`` ``(N, C, *d)`` at the integer class ``target`` ``(N, *d)``:
        -w_t log_p[t] (w: ``weight`` ``(C,)``, or 1), 0 where the target is ``ignore_index``,
        reduced by ``reduction`` ('none', 'sum', or 'mean': the sum over the targets' weights);
        where the targets' values are at hand (``values_at_hand``), one outside ``[0, C)`` that
        is not ``ignore_index`` raises IndexError.  None where the library has none (the
        written-once gather runs; the first use is checked against it, refusals included)."""
        return None

    def fused_embedding_bag(self, table: Array, ids: Array, offsets: Array | None, mode: str,
                            per_sample_weights: Array | None = None, padding_idx: int | None = None) -> Any:
        """A library's fused embedding bag (``F.embedding_bag``'s kernel): the 'sum', 'mean' or
        'max' of the ``table`` rows of each bag, the bags the rows of a 2-D ``ids`` (``offsets``
        None) or the runs of a 1-D ``ids`` starting at ``offsets`` (the last one to the end);
        ids equal to ``padding_idx`` left out, ``per_sample_weights`` (sum) scaling each row; an
        empty bag zeros; where the values are at hand (``values_at_hand``), an id outside
        ``[0, rows)`` raises IndexError, and offsets that do not start at 0, decrease or pass the
        ids' length raise ValueError (the caller then does not read them to check them).
        None where the library has none (the written-once gather runs; the first use is checked
        against it, refusals of ids out of range included)."""
        return None

    # -- control flow and autodiff (_fallback.control) ---------------------------------
    def scan(self, f: Callable[[Any, Any], tuple[Any, Any]], init: Any, xs: Any, length: int | None = None,
             reverse: bool = False, unroll: int = 1) -> tuple[Any, Any]:
        """``jax.lax.scan``: ``carry, y = f(carry, x)`` over the leading axis of the tree ``xs``;
        returns the last carry and the stacked ``y``'s.  ``unroll`` is a hint for compilers."""
        return _fallback.scan(self.xp, f, init, xs, length, reverse)

    def while_loop(self, cond: Callable[[Any], Any], body: Callable[[Any], Any], state: Any) -> Any:
        """``jax.lax.while_loop``: ``state = body(state)`` while ``cond(state)`` (a 0-d boolean
        array) holds; returns the last state.  Eagerly, a Python loop that reads the condition
        (on Dask, each reading computes it)."""
        while bool(cond(state)):
            state = body(state)
        return state

    #: Whether ``scan``'s loop body is compiled (jax: XLA fuses each step's products): a recurrent
    #: layer then computes a step's input side in the step; eager libraries compute every step's
    #: at once, before the loop.
    compiles_loops = False

    def fused_recurrence(self, kind: str, xs: Array, carry: Any, w_input: Array, b_input: Array | None,
                         w_hidden: Array, b_hidden: Array, projection: Array | None = None) -> tuple[Any, Array] | None:
        """A library's fused loop of a whole LSTM (``kind`` 'LSTM': carry ``(c, h)``, gates i, f, g,
        o), GRU ('GRU': carry ``h``, gates r, z, n, n's hidden bias inside the reset product) or
        Elman cell ('RNN_TANH', 'RNN_RELU': carry ``h``, h' = activation(x W_input + b_input + h W_hidden
        + b_hidden)) over the time-major ``xs`` ``(T, B, F)`` (or one step, ``(B, F)``, whose
        output is ``(B, H)``), the gates' kernels side by side, ``(F, G*H)`` and ``(H, G*H)``, a
        bias None zeros: ``(carry, ys)``, or None where the library has none (the layer then runs
        its written-once step on ``scan``; the first use of a fused kernel is checked against it).
        ``projection`` ``(H, P)`` (LSTM only, torch's ``proj_size``): each step's h is
        ``(o tanh c) projection``, fed back so (``w_hidden`` is then ``(P, G*H)``)."""
        return None

    def fused_packed_recurrence(self, kind: str, data: Array, batch_sizes: Any, carries: list[Any],
                                weights: list[tuple[Array, Array, Array, Array]],
                                projections: list[Array] | None = None) -> tuple[list[Any], Array] | None:
        """A library's fused loop of one recurrent layer of ``kind`` (as ``fused_recurrence``'s)
        over packed sequences (torch's ``PackedSequence``): ``data`` ``(S, F)`` holds step t of
        every sequence longer than t, step by step, the sequences by decreasing length;
        ``batch_sizes`` (host int64 ``(T,)``) how many sequences have a step t.  One carry and
        one ``(w_input, b_input, w_hidden, b_hidden)`` per direction: the forward one, and with
        two the backward one, run over each sequence's own steps reversed; ``projections`` (LSTM)
        the per-direction ``(H, P)``.  Returns the final carries, per direction (forward: at each
        sequence's last step; backward: after its first), and the packed outputs ``(S, D*H)``,
        the directions side by side; or None where the library has none (the layer then pads
        and runs ``fused_recurrence`` or its written-once step; the first use is checked)."""
        return None

    def fused_norm(self, kind: str, x: Array, count: int, scale: Array | None, bias: Array | None,
                   epsilon: float, statistics: tuple[Array, Array] | None = None,
                   channels_first: bool = False, fast_variance: bool = False) -> Any:
        """A library's fused normalization of the channels-last ``x``, or None where it has none
        (the layer then runs its written-once statistics; the first use of a fused kernel is
        checked against them).  ``scale`` and ``bias`` (None: absent) are shaped like the axes
        they scale; the variance is the biased one; ``kind`` is one of

        * ``'layer'``: ``(x - mean) / sqrt(var + epsilon) * scale + bias`` with the statistics over
          the trailing ``count`` axes (LayerNorm);
        * ``'rms'``: ``x / sqrt(mean(x^2) + epsilon) * scale`` over the trailing ``count`` axes;
        * ``'group'``: ``x`` is ``(N, ..., C)``, the statistics per sample and per group of the
          ``count`` contiguous channel groups, over the other axes (GroupNorm);
        * ``'batch'``: the statistics per channel (last axis) over every other axis; returns
          ``(y, mean, var)``, the statistics of shape ``(C,)``;
        * ``'running'``: as ``'batch'`` with the given ``statistics`` ``(mean, var)``, returns ``y``.

        ``channels_first`` (group, batch and running kinds): ``x`` and ``y`` are ``(N, C, ...)``,
        torch's layout, instead (the torch-style functions' input, taken without moving axes).

        The variance must be as accurate as the two-pass ``E[(x - E[x])^2]``, unless
        ``fast_variance`` (GroupNorm's ``use_fast_variance``, given with the group kind only)
        allows ``E[x^2] - E[x]^2``.
        """
        return None

    # -- collectives -------------------------------------------------------------------
    def mean_across(self, x: Array, axis_name: Any, axis_index_groups: Any = None) -> Array:
        """``jax.lax.pmean``: the mean of ``x`` over the devices (or vmapped instances) of the named
        axis ``axis_name``, for statistics across devices (BatchNorm's ``axis_name``).  Only jax
        has named axes; elsewhere a ValueError that says so."""
        raise ValueError(f"axis_name={axis_name!r}: statistics across devices need jax arrays under a named "
                         f"axis (jax.vmap(..., axis_name=...), shard_map, pmap); {type(x).__module__} arrays have "
                         "none: leave axis_name=None")

    def stop_gradient(self, x: Array) -> Array:
        """``x`` as a constant for autodiff (identity where there is no autodiff)."""
        return x

    def copy(self, x: Array) -> Array:
        """A new array equal to ``x``, differentiable where the library has autodiff."""
        return self.xp.asarray(x, copy=True)

    # -- mutation and trainable state (the torch-style modules) -----------------------------
    def write_into(self, target: Array, value: Array) -> Array:
        """``value`` written into ``target`` (torch's ``inplace=True``), which is returned; a
        library whose arrays are immutable (jax) returns ``value`` instead."""
        target[...] = value
        return target

    #: Whether writing into an array builds on the graph of its old value (Dask's lazy arrays):
    #: a loaded state then replaces a model's arrays rather than writing into them (each
    #: later compute would run the old values' graphs too).
    writes_keep_graphs = False

    def write_untracked(self, target: Array, value: Array) -> Array:
        """``value`` written into ``target`` where autodiff does not record it (torch.nn.init's
        fills under ``no_grad``, into a parameter that requires grad), ``target`` returned; a
        library whose arrays are immutable (jax) returns ``value`` instead."""
        return self.write_into(target, value)

    def trainable(self, x: Array) -> Array:
        """``x`` as a parameter an optimizer of the library can update (torch: a leaf tensor that
        requires grad); ``x`` itself where gradients are taken functionally (jax) or not at all."""
        return x

    def set_trainable(self, x: Array, trainable: bool) -> Array:
        """``x``, a parameter, marked in place as one autodiff tracks or not (torch's
        ``requires_grad_``); ``x`` unchanged where gradients are taken functionally (jax) or not at all."""
        return x

    def checkpointed(self, function: Callable[..., Any], args: tuple[Any, ...], prevent_cse: bool = True,
                     policy: Callable[..., bool] | None = None) -> Any:
        """``function(*args)``, its intermediates recomputed when autodiff differentiates it
        instead of kept (``jax.checkpoint``, with ``prevent_cse`` and ``policy``); ``function``
        is pure in ``args`` (tree of arrays).  Where the library keeps no intermediates for
        autodiff (no autodiff), or offers no such recomputation here: ``function(*args)``."""
        return function(*args)

    def with_backward_hooks(self, module: Any, hooks: list[Callable[..., Any]], pre_hooks: list[Callable[..., Any]],
                            args: tuple[Any, ...], run: Callable[[tuple[Any, ...]], Any]) -> Any:
        """``run(args)`` (a torch-style module's forward and forward hooks) under torch's module
        backward hooks: when autodiff reaches the outputs, each ``pre_hook(module, grad_output)``
        (a tuple it returns replaces the output gradients), then, once the gradients of the
        positional inputs are computed, each ``hook(module, grad_input, grad_output)`` (a tuple
        it returns replaces them); None for entries that are not arrays.  Where the library has
        no autodiff nothing is ever differentiated: ``run(args)``.  None (the attribute) where
        the library differentiates functions, not recorded calls, so that no hook could run (jax)."""
        return run(args)

    # -- arrays of other libraries ------------------------------------------------------
    def adopts(self, other: Any) -> bool:
        """Whether this library takes arrays of ``other``'s (an adapter) as operands of its own:
        a layer then runs a Dask input with NumPy variables.  None by default."""
        return False

    def adopted(self, array: Array) -> Array:
        """An array of an adopted library (see :meth:`adopts`) as one of this library's."""
        raise TypeError(f"{self.name} arrays do not adopt {type(array).__module__} arrays")

    # -- layout over devices -----------------------------------------------------------
    def placed_like(self, a: Array, like: Array, skip: int = 0) -> Array:
        """``a`` laid out over devices as ``like`` is, axis by axis from the first (after
        ``like``'s first ``skip`` axes, which ``a`` lacks): an axis of ``a`` as long as its
        ``like`` axis split as that one, the others whole.  For libraries whose
        arrays carry a layout that operations must agree on (jax's explicit mesh axes: a mask,
        carry or padding made for a batch-sharded input is split the same way); ``a`` itself
        elsewhere."""
        return a

    def dense(self, x: Array, kernel: Array, bias: Array | None = None) -> Array:
        """``x @ kernel + bias`` for a 2-D ``kernel`` and a ``(features,)`` bias or None (a Dense
        layer's product; a library may add the bias in the product's kernel, as torch's
        ``addmm``); where arrays carry a layout (jax's explicit mesh axes) and the contracted
        features are split over devices (a tensor-parallel kernel), the result is summed over
        them and laid out as ``x``'s leading axes and ``kernel``'s features."""
        y = x @ kernel
        return y if bias is None else y + bias

    def matmul(self, a: Array, b: Array) -> Array:
        """The standard's ``matmul`` (batched over leading axes) of operands of one dtype; a
        library whose standard wrapper costs more than its product at small sizes (torch's,
        which promotes dtypes first) calls its own."""
        return self.xp.matmul(a, b)

    def linear(self, x: Array, weight: Array, bias: Array | None = None) -> Array:
        """``x W^T + b`` with torch's ``(out_features, in_features)`` weight, or an
        ``(in_features,)`` one (one output, the last axis contracted) (the torch-style modules'
        product): ``dense`` of the transposed view, then the bias; a library with a fused kernel
        for this layout (torch's ``F.linear``) uses it."""
        return self.dense(x, self.xp.permute_dims(weight, (1, 0)) if weight.ndim == 2 else weight, bias)

    def write_rows(self, table: Array, ids: Array, rows: Array) -> Array:
        """``table[ids] = rows`` for 1-D in-range integer ``ids`` (a repeated id with equal rows):
        written into ``table``, which is returned, where the library writes arrays by integer
        index (NumPy, torch: not recorded by autograd, as torch's ``embedding_renorm_``);
        otherwise a new table (jax's ``.at[].set``; by default, as the standard has no
        scatter, each table row looked up among the sorted ``ids``)."""
        xp = self.xp
        if ids.shape[0] == 0:
            return table
        order = xp.argsort(ids)
        ordered = xp.take(ids, order)
        positions = xp.arange(table.shape[0], dtype=ids.dtype, device=self.device_of(ids))
        found = xp.clip(xp.searchsorted(ordered, positions), 0, ordered.shape[0] - 1)
        named = xp.take(ordered, found) == positions
        return xp.where(named[:, None], xp.take(rows, xp.take(order, found), axis=0), table)

    def take_along_axis(self, x: Array, indices: Array, axis: int = -1) -> Array:
        """``x``'s elements at the in-range integer ``indices`` along ``axis`` (a gather per row):
        the 2024.12 standard's ``take_along_axis`` where the namespace has it, else a one-hot
        sum (``_fallback.take_along_axis``)."""
        if hasattr(self.xp, "take_along_axis"):
            return self.xp.take_along_axis(x, indices, axis=axis)
        return _fallback.take_along_axis(self.xp, x, indices, axis)

    def take_rows(self, table: Array, ids: Array) -> Array:
        """``table[ids]`` for 1-D in-range integer ``ids``, laid out as ``ids`` (an embedding
        lookup): ``take`` along the first axis."""
        return self.xp.take(table, ids, axis=0)

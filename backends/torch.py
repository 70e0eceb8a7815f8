"""PyTorch adapter: ``torch.special`` primitives, autograd, and ``torch.nn.functional`` fast paths.

Each fast path is the fused torch kernel of a public function.  It takes the
call only when it gives the written-once (jax.nn) semantics; otherwise it
returns ``NotImplemented`` and the written-once definition runs:

* floating tensors only (jax.nn promotes integers, torch often refuses them);
* scalar hyper-parameters only (a tensor ``negative_slope`` broadcasts in jax);
* ``hard_tanh`` and ``leaky_relu`` only without autograd: torch's gradients at
  their kinks (0 at +-1, 0.01 at 0) differ from jax's (1 and 1); likewise
  ``hard_sigmoid``, whose float64 backward uses a float32 ``1/6`` (3e-8 off);
* ``hard_sigmoid`` and ``hard_silu`` not in float64 on CUDA, whose forward
  kernels use the same float32 ``1/6``;
* ``softplus`` keeps torch's linear cut-off but moves it where it is exact
  for the dtype (20 below float64, 40 in float64), so it equals ``logaddexp(x, 0)``;
* ``celu`` with ``alpha == 0`` (torch raises, jax returns nan/0).

``tanh_shrink`` is no torch kernel: ``F.tanhshrink`` is ``x - tanh(x)``, which cancels for small
``|x|`` (1.7e7 ulp off near 0 in float32), where xpnn's definition does not; for narrow floats
it is ``x - tanh(x)`` in float64, whose cancellation leaves enough bits, with a series near 0.
Nor is the exact ``gelu`` of narrow floats (``F.gelu`` cancels in ``1 + erf``): it is the
written-once float64 evaluation, with float64's faster ``erf`` where that cannot cancel.

The known remaining differences are torch keeping float32 subnormals that XLA
flushes to zero, and the signs of some zeros (:attr:`TorchAdapter.fast_path_zero_signs`):
torch's ``relu``, ``relu6`` and ``celu`` keep ``-0.0`` (jax: ``+0.0``), its
``log_sigmoid`` underflows to ``+0.0``, and its ``softshrink`` gives ``-0.0``
for negative inputs in the scalar loop past the last full vector; an attention output's
zero is a sum of products whose sign follows the summation order.  Fixing them
costs an extra pass (``+ 0.0`` alone is 1 to 4 us): with fast paths off, the
written-once definitions give jax's zeros.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch.utils.hooks import BackwardHook

from xpnn._cache import per_arguments

from ._base import Adapter, FastPath, is_number, valid_axis

#: The kernels behind ``torch.nn.functional``'s Python wrappers: calling them
#: directly skips the wrapper's ``inplace`` branch (they still honour
#: ``__torch_function__``, as every generated binding does).
_nn = torch._C._nn


def _unary(function):
    """A fast path for a function of a floating ``x`` alone.

    Fast paths run on every call, so each is one flat check; ``x`` is a
    tensor, since the dispatch routes only tensors here.
    """

    def fast(x):
        return function(x) if x.is_floating_point() else NotImplemented

    return fast


def _unary_guarded(function, *, kink_grads: bool, float32_constants: bool):
    """:func:`_unary` with guards: ``kink_grads``, not under autograd (torch's gradients at
    the kinks differ from jax's, or its float64 backward uses float32 constants);
    ``float32_constants``, not float64 on CUDA, where the kernel's constants are float32."""

    def fast(x):
        if not x.is_floating_point() or (kink_grads and x.requires_grad and torch.is_grad_enabled()) or (
                float32_constants and x.is_cuda and x.dtype == torch.float64):
            return NotImplemented
        return function(x)

    return fast


def _times_hard_sigmoid(x):
    """``x * hardsigmoid(x)``, jax's hard_silu: torch's one-kernel ``hardswish`` computes
    ``x * 6`` first and overflows above ``max / 6`` (``hardswish(3e38)`` is inf in float32).
    The product is written into the fresh ``hardsigmoid(x)`` (not under autograd, which takes the
    written-once definition): a new tensor's page faults cost as much as the product (1M float32:
    0.30 against 0.38 to 0.43 ms)."""
    return _nn.hardsigmoid(x).mul_(x)


#: hard_silu with hard_sigmoid's guards (its float64 backward and CUDA forward use float32 1/6).
_hard_silu = _unary_guarded(_times_hard_sigmoid, kink_grads=True, float32_constants=True)


def _leaky_relu(x, negative_slope=0.01):
    # ``type(...) is float`` first: the default and most calls skip is_number's frame.
    # A negative slope gives leaky_relu(0) = -0.0 in torch (jax: +0.0), a NaN or infinite one NaN at 0.
    if not (x.is_floating_point() and (type(negative_slope) is float or is_number(negative_slope))
            and 0 <= negative_slope < math.inf) or (x.requires_grad and torch.is_grad_enabled()):
        return NotImplemented
    return _nn.leaky_relu(x, negative_slope)


def _elu(x, alpha=1.0):
    # An infinite alpha: jax's elu(0) is inf * expm1(0) = NaN, torch's kernel gives 0.
    if not (x.is_floating_point() and is_number(alpha) and abs(alpha) < math.inf):
        return NotImplemented
    return _nn.elu(x, alpha)


def _hard_shrink(x, lambd=0.5):
    if not (x.is_floating_point() and is_number(lambd) and 0 <= lambd < math.inf):
        return NotImplemented
    return torch.hardshrink(x, lambd)


def _celu(x, alpha=1.0):
    # alpha == 0: torch raises, jax gives nan/0; a NaN alpha: torch gives x for x > 0, jax NaN; an
    # infinite one: torch 0 at 0, jax NaN; float64 under autograd: torch's backward uses a float32
    # 1/alpha (5.7e-7 off).
    if not (x.is_floating_point() and is_number(alpha)) or alpha == 0 or not abs(alpha) < math.inf or (
            x.dtype == torch.float64 and x.requires_grad and torch.is_grad_enabled()):
        return NotImplemented
    return F.celu(x, alpha)


def _gelu(x, approximate=True):
    # Below float64 only.  torch's exact kernel computes 1 + erf(x / sqrt 2), 0 below about -8 in
    # float64 (9e15 ulp off at -20), and gives NaN for +inf on AVX512 CPUs (torch 2.13); its float64
    # tanh form cancels likewise.  xpnn's definitions (erfc, sigmoid) do not.
    if x.dtype not in _BELOW_FLOAT64:
        return NotImplemented
    if approximate is True:
        return F.gelu(x, approximate="tanh")
    if approximate is not False:
        return NotImplemented
    return _exact_gelu_in_float64(x)


#: Above this x, 1 + erf(x / sqrt 2) is at least 5.7e-7, so its float64 value (erf's error about
#: 1e-16) is within 2e-10 of it relatively, far below the narrow float's precision.
_ERF_FROM = -5.0
_SQRT_HALF = math.sqrt(0.5)


def _exact_gelu_in_float64(x):
    """The written-once exact gelu of a narrow float, x/2 erfc(-x/sqrt 2) computed in float64 and
    rounded once, with float64's ``erf`` (2 to 3x faster than its ``erfc`` on CPU) where 1 + erf
    does not cancel below the narrow float's precision, x >= -5: half the time of the erfc form
    at 1M float32 (4 to 5 against 9 to 11 ms on the 2-core machine)."""
    wide = x.double()
    if x.requires_grad and torch.is_grad_enabled():
        y = 0.5 * wide * (1.0 + torch.erf(wide * _SQRT_HALF))
    else:  # in place: each float64 temporary costs a fresh allocation's page faults
        y = torch.erf(wide * _SQRT_HALF).add_(1.0).mul_(wide).mul_(0.5)
    # on the CPU only where the tail holds an element (a NaN's min is NaN: then it is looked for)
    if _everywhere(x) or (x.numel() and not bool(x.amin() >= _ERF_FROM)):
        y = _replaced(y, x < _ERF_FROM, wide, _erfc_form_of_gelu)
    return y.to(x.dtype)


def _erfc_form_of_gelu(wide):
    return 0.5 * wide * torch.special.erfc(-wide * _SQRT_HALF)


def _everywhere(x):
    """Whether ``_replaced`` computes its values everywhere for ``x``: on a GPU (a boolean index
    waits for the device) and for a scalar, so that a test costs no host sync."""
    return x.device.type != "cpu" or not x.ndim


def _replaced(y, where, wide, value):
    """``y`` with ``value(wide)`` at ``where``: where ``_everywhere``, ``torch.where`` of ``value``
    computed on all of ``wide``; else ``value`` of the selected elements alone, written in place."""
    if _everywhere(wide):
        return torch.where(where, value(wide), y)
    return y.index_put_((where,), value(wide[where]))


_BELOW_FLOAT64 = frozenset((torch.float16, torch.bfloat16, torch.float32))

#: Below this |x| the narrow floats' tanh_shrink is the series x^3/3 - 2x^5/15 + 17x^7/315 (the
#: next term, 62x^9/2835, is 7e-14 of the sum at 0.01); from it float64's x - tanh(x) cancels
#: log2(3 / x^2) = 15 of its 53 bits at most, and keeps 38, far beyond float32's 24.
_TANH_SHRINK_SERIES_BELOW = 0.01


def _tanh_shrink(x):
    """tanh_shrink of a narrow float, x - tanh(x), computed in float64 and rounded once (the
    series near 0): within half an ulp plus 1e-11 of it, as the written-once continued fraction
    is, in a sixth to a tenth of its time at 1M float32 (3.2 to 3.4 against 19 to 36 ms on the
    2-core machine; torch's cancelling kernel takes 0.4 to 0.5).  Zeros are +0.0, as the
    definition's.  Not under autograd."""
    if x.dtype not in _BELOW_FLOAT64 or (x.requires_grad and torch.is_grad_enabled()):
        return NotImplemented
    wide = x.double()
    y = torch.tanh(wide)
    y = torch.sub(wide, y, out=y)
    y = _replaced(y, torch.abs(x) < _TANH_SHRINK_SERIES_BELOW, wide, _tanh_shrink_series)  # 1% of a normal's
    return y.to(x.dtype).add_(0.0)  # +0.0 for what rounds to -0.0


def _tanh_shrink_series(w):
    """x^3/3 - 2x^5/15 + 17x^7/315."""
    square = w * w
    return w * square * (1 / 3 - square * (2 / 15 - square * (17 / 315)))


def _softplus(x):
    if not x.is_floating_point():
        return NotImplemented
    # Below float64 torch's own default threshold (20) is used: passing Python scalars
    # costs about 0.4 us a call, a tenth of the kernel's time at 1000 elements.
    return _nn.softplus(x, 1, 40) if x.dtype == torch.float64 else _nn.softplus(x)


def _axis_softmax(function):
    def fast(x, axis=-1, where=None):
        # valid_axis(axis, x.ndim) for an int axis, inlined: this runs on every call.
        if where is None and type(axis) is int and x.is_floating_point() and -x.ndim <= axis < x.ndim:
            return function(x, axis)
        return NotImplemented

    return fast


def _logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False, where=None):
    # axis=() reduces nothing in jax; torch reads dim=() as every axis.
    if not (a.is_floating_point() and b is None and where is None and not return_sign and axis != ()
            and valid_axis(axis, a.ndim)):
        return NotImplemented
    dims = tuple(range(a.ndim)) if axis is None else axis
    return torch.logsumexp(a, dim=dims, keepdim=keepdims)


def _glu(x, axis=-1):
    if not (x.is_floating_point() and isinstance(axis, int) and valid_axis(axis, x.ndim)):
        return NotImplemented
    if x.shape[axis] % 2:
        return NotImplemented
    return _nn.glu(x, axis)


def _soft_shrink(x, lambd=0.5):
    # torch refuses an infinite lambd (jax-style: every element shrinks to 0).
    if not (x.is_floating_point() and is_number(lambd) and 0 <= lambd < math.inf):
        return NotImplemented
    return F.softshrink(x, lambd)


def _threshold(x, threshold=None, value=None):
    # Missing arguments go to the written-once definition, whose TypeError names ``threshold``.
    if not (x.is_floating_point() and is_number(threshold) and is_number(value)):
        return NotImplemented
    return F.threshold(x, threshold, value)


def _rrelu(x, lower=0.125, upper=1.0 / 3.0, *, key=None):
    if key is not None or not (x.is_floating_point() and is_number(lower) and is_number(upper)
                               and lower <= upper):
        return NotImplemented
    return F.rrelu(x, lower, upper, training=False)


def _prelu(x, weight):
    if not (x.is_floating_point() and isinstance(weight, torch.Tensor) and weight.dtype == x.dtype):
        return NotImplemented
    if weight.ndim > 1 or (weight.numel() != 1 and (x.ndim < 2 or x.shape[1] != weight.numel())):
        return NotImplemented
    return F.prelu(x, weight.reshape(-1))


#: The dtypes of the fused attention and recurrent kernels that xpnn takes.
_ATTENTION_DTYPES = frozenset((torch.float32, torch.float64))
#: The channels-last memory format of each rank that has one.
_CHANNELS_LAST = {4: torch.channels_last, 5: torch.channels_last_3d}


#: From this many keys, the CPU's SDPA gets each head's rows copied together first: its kernel
#: reads the (B, N, T, H) views of (B, T, N, H) tensors slower (torch 2.13, 2-core machine: 389
#: against 309 ms for (1, 4096, 16, 64), copied 329; up to 2048 keys the copies cost more).
_HEADS_COPIED_FROM = 4096


def _dot_product_attention(query, key, value, bias=None, mask=None, *, scale=None, is_causal=False,
                           query_seq_lengths=None, key_value_seq_lengths=None, local_window_size=None,
                           implementation=None, return_residual=False):
    """``F.scaled_dot_product_attention`` on the ``(B, N, T, H)`` views, float32 and float64.

    jax's masks (the boolean ``mask``, the window, the key lengths, and ``is_causal`` when
    another mask is given) become one additive mask ``where(mask, bias, -0.7 * float32_max)``,
    so a fully masked row attends uniformly as in jax.nn (a boolean SDPA mask gives NaN or 0
    there); a lone ``is_causal`` uses torch's causal kernel (same top-left alignment).  Rows of
    padded queries are zeroed afterwards.  Half precision, the log-sum-exp residual and
    ``implementation='xla'`` (jax's math) take the written-once definition.
    """
    if (query.dtype not in _ATTENTION_DTYPES or return_residual or implementation is not None
            or not (isinstance(key, torch.Tensor) and isinstance(value, torch.Tensor))
            or 0 in query.shape or 0 in key.shape):
        return NotImplemented
    unbatched = query.ndim == 3
    if unbatched:
        query, key, value = query[None], key[None], value[None]
    rows, columns = query.shape[1], key.shape[1]
    device = query.device
    keep = mask
    if local_window_size is not None:
        left, right = local_window_size
        t = torch.arange(rows, device=device)[:, None]
        s = torch.arange(columns, device=device)[None, :]
        window = (t <= s + left) & (t >= s - right)
        keep = window if keep is None else keep & window
    if key_value_seq_lengths is not None:
        padded = torch.arange(columns, device=device)[None, :] < key_value_seq_lengths[:, None]
        padded = padded[:, None, None, :]
        keep = padded if keep is None else keep & padded
    causal = is_causal
    if is_causal and (keep is not None or bias is not None):
        lower = torch.ones((rows, columns), dtype=torch.bool, device=device).tril()
        keep = lower if keep is None else keep & lower
        causal = False
    additive = bias
    query = query.transpose(1, 2)
    if keep is not None:
        zero = torch.zeros((), dtype=query.dtype, device=device)
        fill = torch.tensor(-0.7 * torch.finfo(torch.float32).max, dtype=query.dtype, device=device)
        additive = torch.where(keep, zero if bias is None else bias, fill)
        if query.is_cuda or (torch.is_grad_enabled() and (query.requires_grad or key.requires_grad)):
            # A fully masked row attends with a zero query and a zero mask: equal logits, so
            # equal weights, as jax.nn gives it.  The -0.7 * max fill in every column gives 0
            # rows from CUDA's fused kernels (the CPU's attend uniformly: there this costs a
            # sixth of a (16, 64, 8, 32) call for nothing), and jax's where() gives such a row
            # no gradient, which the additive mask would pass to its query and keys.
            attends = keep.any(dim=-1, keepdim=True)
            additive = torch.where(attends, additive, zero)
            query = torch.where(attends, query, zero)
    key, value = key.transpose(1, 2), value.transpose(1, 2)
    if columns >= _HEADS_COPIED_FROM and not query.is_cuda:
        query, key, value = query.contiguous(), key.contiguous(), value.contiguous()
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=additive, is_causal=causal, scale=scale,
                                         enable_gqa=query.shape[1] != key.shape[1]).transpose(1, 2)
    if query_seq_lengths is not None:
        valid = torch.arange(rows, device=device)[None, :] < query_seq_lengths[:, None]
        out = out * valid[:, :, None, None].to(out.dtype)
    return out[0] if unbatched else out


class _PoolPlan(NamedTuple):
    """How ``TorchAdapter.reduce_window`` runs one set of window arguments on torch's pools."""

    batch: int  # leading axes, not pooled: torch's channels (with the batch)
    channels_last: bool  # a last features axis, moved to the channels
    negated: bool  # min as the max of -x
    pad: list[int] | None  # F.pad's sides, when the pool's own padding is not what is asked
    pad_value: float
    pool: Any
    arguments: tuple  # window, strides, padding
    keywords: dict
    floor: float | None  # max/min with an init above -inf (after negation)
    offset: float | None  # sum with a nonzero init
    direct: bool = False  # none of the above: the pool on x itself


def _conv_transpose(x, weight, window_strides, padding, lhs_dilation, rhs_dilation, feature_group_count, bias):
    """The correlation of ``x`` ``(N, I, *spatial)`` dilated by ``lhs_dilation`` with ``weight``
    ``(O, I // groups, *window)`` as ``F.conv_transpose1d/2d/3d`` with each group's kernel flipped
    and its feature axes swapped: torch's ``padding`` ``p = k_eff - 1 - low`` on both sides and
    ``output_padding`` ``high - low``, the groups and the bias added by the kernel.  A high side
    narrower than the low one (lax's ``"SAME"`` of an odd kernel and an even stride, flax
    ``ConvTranspose``'s default: (2, 1) for 3 and 2) is computed as wide and cropped.  None for
    strides, and paddings torch cannot say so."""
    spatial = x.ndim - 2
    effective = [(k - 1) * d + 1 for k, d in zip(weight.shape[2:], rhs_dilation)]
    torch_padding = [k - 1 - low for k, (low, _) in zip(effective, padding)]
    output_padding = [max(0, high - low) for low, high in padding]
    if (any(s != 1 for s in window_strides) or min(torch_padding) < 0
            or any(o >= max(s, d) for o, s, d in zip(output_padding, lhs_dilation, rhs_dilation))):
        return None
    # (O, I/g, *window) -> (I, O/g, *window), contiguous: torch's transposed kernels run 10% slower on a view
    groups, window = feature_group_count, weight.shape[2:]
    grouped = weight.reshape(groups, weight.shape[0] // groups, weight.shape[1], *window)
    flipped = torch.flip(grouped, tuple(range(3, spatial + 3))).transpose(1, 2).reshape(
        groups * weight.shape[1], weight.shape[0] // groups, *window)
    out = _TRANSPOSED_CONVOLUTIONS[spatial - 1](x, flipped, bias, tuple(lhs_dilation), tuple(torch_padding),
                                                tuple(output_padding), groups, tuple(rhs_dilation))
    if all(high >= low for low, high in padding):
        return out
    return out[(slice(None), slice(None), *(slice(0, n - max(0, low - high)) for n, (low, high)
                                              in zip(out.shape[2:], padding)))]


def _sum_pool1d(y: torch.Tensor, window: tuple, strides: tuple, padding: tuple, divisor_override: int) -> torch.Tensor:
    """A 1-d sum pool: the 2-d average pool over (length, 1), torch having no 1-d ``divisor_override``."""
    return _nn.avg_pool2d(y[..., None], (*window, 1), (*strides, 1), (*padding, 0),
                          divisor_override=divisor_override)[..., 0]


@per_arguments
def _pool_plan(ndim: int, init: Any, reduction: str, window_dimensions: tuple, window_strides: tuple,
               padding: tuple, dilation: tuple) -> _PoolPlan | None:
    """The pools ``reduce_window`` calls for these arguments, or None when torch has none (the
    standard-only version runs).  Sequences may be lists (worked out on every call, then)."""
    window_dimensions, window_strides, dilation = tuple(window_dimensions), tuple(window_strides), tuple(dilation)
    padding = tuple(tuple(pair) for pair in padding)

    def trivial(axis: int) -> bool:
        return (window_dimensions[axis] == 1 and window_strides[axis] == 1 and padding[axis] == (0, 0)
                and dilation[axis] == 1)

    batch = 0
    while batch < ndim - 1 and trivial(batch):
        batch += 1
    channels_last = trivial(ndim - 1)
    spatial = ndim - batch - (1 if channels_last else 0)
    if (reduction not in ("max", "min", "sum") or not batch or not 1 <= spatial <= 3
            or (reduction == "sum" and any(d != 1 for d in dilation))):
        return None
    sign = -1.0 if reduction == "min" else 1.0
    axes = slice(batch, batch + spatial)
    window, strides, pool_dilation, pads = window_dimensions[axes], window_strides[axes], dilation[axes], padding[axes]
    # The pools' own padding where it is what F.pad would add: symmetric, at most half the
    # window, and -inf for max/min or 0 for sums (torch's implicit values); else F.pad with init.
    own = reduction == "sum" and init == 0 or reduction != "sum" and sign * init == -math.inf
    native = own and all(low == high and 2 * low <= (k - 1) * d + 1 for (low, high), k, d in zip(pads, window,
                                                                                                  pool_dilation))
    pad = None
    if not native and any(side for pair in pads for side in pair):
        pad = [side for pair in reversed(pads) for side in pair]
    pool_padding = tuple(low for low, _ in pads) if native else (0,) * spatial
    # The kernels behind F.avg_pool2d/3d and F.max_pool1d/2d/3d, without their Python wrappers.
    if reduction == "sum":
        plan = _PoolPlan(batch, channels_last, False, pad, sign * init,
                         (_sum_pool1d, _nn.avg_pool2d, _nn.avg_pool3d)[spatial - 1], (window, strides, pool_padding),
                         {"divisor_override": 1}, None, init if init != 0 else None)
    else:
        plan = _PoolPlan(batch, channels_last, sign < 0, pad, sign * init,
                         (torch.max_pool1d, torch.max_pool2d, torch.max_pool3d)[spatial - 1],
                         (window, strides, pool_padding, pool_dilation), {},
                         sign * init if sign * init != -math.inf else None, None)
    return plan._replace(direct=batch <= 2 and not (channels_last or plan.negated) and pad is None
                         and plan.floor is None and plan.offset is None)


def _pooled(plan: _PoolPlan, x: torch.Tensor) -> torch.Tensor:
    """``x`` pooled by torch's kernels as ``plan`` (``_pool_plan``) says: (N, C, *spatial) as it
    is, or with more leading axes as one, channels last moved first, negated for a min, padded
    with ``F.pad``, floored and offset by a non-default init."""
    if plan.direct:  # (N, C, *spatial) pooled as torch pools it: nothing around the kernel
        return plan.pool(x, *plan.arguments, **plan.keywords)
    # torch pools (N, C, *spatial) and (C, *spatial): more leading axes become one
    merged = plan.batch > (1 if plan.channels_last else 2)
    y = x.reshape((-1, *x.shape[plan.batch:])) if merged else x
    if plan.channels_last:
        y = torch.movedim(y, -1, 1)
    if plan.negated:
        y = -y
    if plan.pad is not None:
        y = F.pad(y, plan.pad, value=plan.pad_value)
    y = plan.pool(y, *plan.arguments, **plan.keywords)
    if plan.floor is not None:  # an init above -inf is a floor (lax's reduce_window semantics)
        y = torch.clamp_min(y, plan.floor)
    if plan.offset is not None:
        y = y + plan.offset
    if plan.negated:
        y = -y
    if plan.channels_last:
        y = torch.movedim(y, 1, -1)
    return y.reshape((*x.shape[:plan.batch], *y.shape[1:])) if merged else y


@per_arguments
def _conv_padding(padding: Any, lhs_dilation: Any) -> tuple[bool, Any, list[int] | None]:
    """``(transposed, padding, pad_sides)`` for torch's convolutions, worked out once per set of
    arguments (modules pass the same ones on every call; 1.5 us of a small convolution): whether
    the input is dilated, the convolution's own padding (the low sides where every dimension is
    padded symmetrically, else 0), and otherwise the sides for ``F.pad`` (negative: cropped)."""
    if all(low == high >= 0 for low, high in padding):
        return any(d != 1 for d in lhs_dilation), tuple(low for low, _ in padding), None
    return any(d != 1 for d in lhs_dilation), 0, [side for low_high in reversed(list(padding)) for side in low_high]


_CONVOLUTIONS = (torch.conv1d, torch.conv2d, torch.conv3d)
_TRANSPOSED_CONVOLUTIONS = (torch.conv_transpose1d, torch.conv_transpose2d, torch.conv_transpose3d)
_MAX_POOLS = (torch.max_pool1d, torch.max_pool2d, torch.max_pool3d)
#: torch.embedding_bag's mode numbers.
_BAG_MODES = {"sum": 0, "mean": 1, "max": 2}
#: The words of torch.embedding_bag's CPU errors for ids out of range (two wordings) and for
#: offsets not from 0, past the ids or decreasing (the first-use check proves them on this torch).
_BAG_ID_ERRORS = ("not in the valid range", "idx < num_embeddings")
_BAG_OFFSET_ERRORS = ("offsets[0] has to be 0", "offsets[-1] can not be greater", "i < index_size")
#: torch's reduction numbers (``torch.nn._reduction``).
_REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}
#: ``fused_recurrence``'s kinds: torch's loop over a sequence and its one-step cell kernel (the
#: functions behind ``torch._VF``, whose lookup costs 1.5 us).
_RECURRENCES = {kind: (getattr(torch._C._VariableFunctions, name), getattr(torch._C._VariableFunctions, f"{name}_cell"))
                for kind, name in (("LSTM", "lstm"), ("GRU", "gru"), ("RNN_TANH", "rnn_tanh"),
                                   ("RNN_RELU", "rnn_relu"))}
_MAX_POOLS_WITH_INDICES = (torch.max_pool1d_with_indices, _nn.max_pool2d_with_indices, _nn.max_pool3d_with_indices)
#: numpy.pad's modes (the ``pad`` primitive's) by torch's names.
_TORCH_PAD_MODES = {"reflect": "reflect", "edge": "replicate", "wrap": "circular"}
#: ``torch.backends.cudnn.enabled``, which the norms' kernels take, read without the module
#: property (0.26 against 0.02 us: a tenth of a small layer norm's time).
_cudnn_enabled = torch._C._get_cudnn_enabled


def _as_tuple(values: Any) -> tuple:
    return values if type(values) is tuple else tuple(values)


def _channels_first_kernel(rhs: torch.Tensor) -> torch.Tensor:
    """A channels-last kernel ``(*window, I, O)`` seen as torch's ``(O, I, *window)``: one permuted view."""
    spatial = rhs.ndim - 2
    return rhs.permute(spatial + 1, spatial, *range(spatial))


def _empty_output(sizes: Any, window: Any, padding: Any, lhs_dilation: Any, rhs_dilation: Any) -> bool:
    """Whether a convolution's or pool's output is empty along some axis: its (dilated) window
    reaches past the padded (dilated) input, which jax answers with an empty array and torch's
    kernels refuse."""
    return any(max(0, (n - 1) * a + 1) + low + high < (w - 1) * r + 1
               for n, w, (low, high), a, r in zip(sizes, window, padding, lhs_dilation, rhs_dilation))


@contextlib.contextmanager
def _float32_products() -> Any:
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.allow_tf32, matmul.allow_tf32
    cudnn.allow_tf32 = matmul.allow_tf32 = False
    try:
        yield
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = saved


def _loop_weights(w_input, b_input, w_hidden, b_hidden, projection):
    """One direction's weights in the order of torch's fused loops: ``weight_ih``, ``weight_hh``
    (torch's rows, the side-by-side kernels transposed), the biases, and ``weight_hr`` after
    them where there is a projection."""
    weights = [w_input.T.contiguous(), w_hidden.T.contiguous(), b_input, b_hidden]
    return weights if projection is None else [*weights, projection.T.contiguous()]


class TorchAdapter(Adapter):
    name = "torch"
    take_rows_refuses_out_of_range = True
    fast_path_zero_signs = frozenset({"relu", "relu6", "celu", "log_sigmoid", "soft_shrink",
                                      "dot_product_attention"})
    #: torch has no uint32 add or shift: xpnn.random's 32-bit words live in
    #: int64 and every sum and left shift is masked back to 32 bits.
    random_word_dtype = torch.int64

    def random_chunk(self, device):
        """Cache-sized slices on the CPU; one pass per step on a GPU (a slice costs ~150 launches)."""
        return 1 << 18 if torch.device(device).type == "cpu" else None

    def _fast_paths(self) -> dict[str, FastPath]:
        return {
            "relu": _unary(torch.relu),
            "relu6": _unary(_nn.relu6),
            "leaky_relu": _leaky_relu,
            "elu": _elu,
            "selu": _unary(torch.selu),
            "celu": _celu,
            "gelu": _gelu,
            "silu": _unary(_nn.silu),
            "mish": _unary(_nn.mish),
            "sigmoid": _unary(torch.sigmoid),
            "tanh": _unary(torch.tanh),
            "hard_tanh": _unary_guarded(_nn.hardtanh, kink_grads=True, float32_constants=False),
            "hard_sigmoid": _unary_guarded(_nn.hardsigmoid, kink_grads=True, float32_constants=True),
            "hard_silu": _hard_silu,
            "log_sigmoid": _unary(_nn.log_sigmoid),
            "soft_sign": _unary(F.softsign),
            "softplus": _softplus,
            "softmax": _axis_softmax(torch.softmax),
            "log_softmax": _axis_softmax(torch.log_softmax),
            "softmin": _axis_softmax(F.softmin),
            "logsumexp": _logsumexp,
            "glu": _glu,
            "hard_shrink": _hard_shrink,
            "soft_shrink": _soft_shrink,
            "threshold": _threshold,
            "tanh_shrink": _tanh_shrink,
            "rrelu": _rrelu,
            "prelu": _prelu,
            "dot_product_attention": _dot_product_attention,
        }

    def kernel_devices(self, x):
        """CPU and CUDA tensors are one type: the CPU's kernels, CUDA's once it is initialised,
        and ``x``'s own device kind (mps, xpu...)."""
        devices = {"cpu": torch.device("cpu")}
        if torch.cuda.is_initialized():
            devices["cuda"] = torch.device("cuda", torch.cuda.current_device())
        devices.setdefault(x.device.type, x.device)
        return devices

    def decline_on(self, fast, kinds):
        def declining(x, *args, **kwargs):
            return NotImplemented if x.device.type in kinds else fast(x, *args, **kwargs)

        return declining

    def full_precision(self):
        """TF32 off, for cuDNN (convolutions, fused LSTM/GRU loops: on by default in torch) and
        for CUDA matmuls, and back as it was after."""
        return _float32_products()

    def on_new_device_kind(self, callback):
        """CUDA's kernels are checked once CUDA starts (``torch.cuda._lazy_call`` runs
        ``callback`` at its initialisation)."""
        lazy_call = getattr(torch.cuda, "_lazy_call", None)
        if lazy_call is not None and not torch.cuda.is_initialized():
            lazy_call(callback)

    def erf(self, x):
        return torch.special.erf(x)

    def erfc(self, x):
        return torch.special.erfc(x)

    def lgamma(self, x):
        return torch.lgamma(x)

    def copy(self, x):
        """``clone``: ``torch.asarray(x, copy=True)`` drops autograd before torch 2.13."""
        return x.clone()

    def stop_gradient(self, x):
        return x.detach()

    def values_at_hand(self, x):
        """On the CPU (reading a CUDA tensor synchronises with the device)."""
        return x.device.type == "cpu"

    def take_rows(self, table, ids):
        """``torch.index_select``, which refuses ids out of range (IndexError) as
        ``torch.nn.Embedding`` does: array-api-compat's ``take`` first maps negative ids, two
        kernels more than an embedding lookup needs (0.36 against 0.31 ms for 8192 rows of 256)."""
        return torch.index_select(table, 0, ids)

    def matmul(self, a, b):
        """``torch.matmul``: array-api-compat's wrapper promotes dtypes first (7.9 against 3.9 us
        for a batch-1 attention's product)."""
        return torch.matmul(a, b) if a.dtype == b.dtype else super().matmul(a, b)

    def linear(self, x, weight, bias=None):
        """``F.linear``: the product and the bias in one GEMM (``addmm``)."""
        return _nn.linear(x, weight, bias)

    def dense(self, x, kernel, bias=None):
        """The product and the bias in one GEMM, as ``torch.nn.Linear`` computes them: for rows
        (2-D ``x``), ``torch.addmm(bias, x, kernel)``, the very call ``F.linear`` makes with the
        transposed weight, without making the transposed view (1.6 against 2.9 us for a 16 x 16
        kernel at batch 1); otherwise ``F.linear`` of the kernel's transposed view."""
        if bias is None or bias.dtype != x.dtype or kernel.dtype != x.dtype or not x.is_floating_point():
            return super().dense(x, kernel, bias)
        return torch.addmm(bias, x, kernel) if x.ndim == 2 else _nn.linear(x, kernel.T, bias)

    def write_into(self, target, value):
        """``copy_`` (autograd records it as torch's own in-place activations do)."""
        return target.copy_(value)

    def write_untracked(self, target, value):
        """``copy_`` under ``torch.no_grad()`` (as ``torch.nn.init`` fills a leaf that requires grad)."""
        with torch.no_grad():
            return target.copy_(value)

    def write_rows(self, table, ids, rows):
        """``table[ids] = rows`` in place, outside autograd (a parameter's rows, as torch's
        ``embedding_renorm_`` writes them)."""
        with torch.no_grad():
            table[ids] = rows
        return table

    def trainable(self, x):
        """A leaf tensor that requires grad (floating only), as ``torch.nn.Parameter`` holds: ``x``
        itself when it is one (a parameter assigned to a second module stays one tensor, tied)."""
        if x.is_leaf and x.requires_grad:
            return x
        leaf = x.detach()
        return leaf.requires_grad_(True) if leaf.is_floating_point() else leaf

    def set_trainable(self, x, trainable):
        """``requires_grad_`` (floating leaves only: torch refuses it for integer tensors)."""
        return x.requires_grad_(trainable) if x.is_floating_point() or not trainable else x

    def with_backward_hooks(self, module, hooks, pre_hooks, args, run):
        """torch's own ``torch.utils.hooks.BackwardHook``, as ``torch.nn.Module`` calls it: the
        inputs and outputs through identity nodes whose gradients call the hooks."""
        backward = BackwardHook(module, hooks, pre_hooks)
        result = run(backward.setup_input_hook(args))
        if not isinstance(result, (torch.Tensor, tuple)):
            warnings.warn("For backward hooks to be called, module output should be a Tensor or a tuple of Tensors "
                          f"but received {type(result)}", stacklevel=4)
        return backward.setup_output_hook(result)

    def conv_general_dilated(self, lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                             feature_group_count=1, bias=None):
        """``torch.nn.functional.conv1d/2d/3d`` on the channels-first views (``conv_channels_first``),
        the bias added by the kernel; a transposed convolution (``lhs_dilation`` above 1) is
        ``_transposed``, and more than three spatial dimensions take the standard-only version."""
        spatial = lhs.ndim - 2
        if not 1 <= spatial <= 3 or 0 in lhs.shape[1:]:  # torch's kernels refuse or misshape empty images
            return super().conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                                feature_group_count, bias)
        try:
            if any(d != 1 for d in lhs_dilation):
                return self._transposed(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                        feature_group_count, bias)
            weight = _channels_first_kernel(rhs)
            out = self.conv_channels_first(torch.movedim(lhs, -1, 1), weight, window_strides, padding, lhs_dilation,
                                           rhs_dilation, feature_group_count, bias)
        except RuntimeError:
            if not _empty_output(lhs.shape[1:-1], rhs.shape[:-2], padding, lhs_dilation, rhs_dilation):
                raise
            return super().conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                                feature_group_count, bias)
        return torch.movedim(out, 1, -1)

    def conv_channels_first(self, lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                            feature_group_count=1, bias=None):
        """``F.conv1d/2d/3d`` itself, with the bias; symmetric padding is the convolution's own,
        other padding applied with ``F.pad`` (negative: cropped).  A transposed convolution
        (``lhs_dilation`` above 1) is ``F.conv_transpose1d/2d/3d`` with the bias where torch can
        say it (``_conv_transpose``); the rest, and more than three spatial dimensions, take the
        channels-last route."""
        spatial = lhs.ndim - 2
        transposed, own_padding, pad_sides = _conv_padding(padding, lhs_dilation)
        if 0 in lhs.shape[1:]:  # torch's kernels give no features for no channels, refuse empty images
            return super().conv_channels_first(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                               feature_group_count, bias)
        if 1 <= spatial <= 3 and transposed:
            out = _conv_transpose(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, feature_group_count,
                                  bias)
            if out is not None:
                return out
        if not 1 <= spatial <= 3 or transposed:
            return super().conv_channels_first(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                               feature_group_count, bias)
        x = lhs if pad_sides is None else F.pad(lhs, pad_sides)
        return _CONVOLUTIONS[spatial - 1](x, rhs, bias, _as_tuple(window_strides), own_padding, _as_tuple(rhs_dilation),
                                          feature_group_count)

    def pad(self, x, pads, mode="constant", value=0):
        """``F.pad`` over the axes from the first padded one to the last (torch's reflect,
        replicate and circular modes pad the last one to three axes of a 2-D to 5-D tensor, by at
        most the axis' length); what its kernels refuse (a reflection as wide as the axis, more
        axes) takes the standard-only version, which pads it or names the problem."""
        first = next((axis for axis, (low, high) in enumerate(pads) if low or high), None)
        if first is None:
            return x
        sides = [side for low_high in reversed(list(pads)[first:]) for side in low_high]
        try:
            if mode == "constant":
                return F.pad(x, sides, value=value)
            return F.pad(x, sides, mode=_TORCH_PAD_MODES[mode])
        except (RuntimeError, NotImplementedError):
            return super().pad(x, pads, mode, value)

    def conv_transpose_channels_first(self, lhs, rhs, strides, padding, output_padding, feature_group_count,
                                      rhs_dilation, bias=None):
        """``F.conv_transpose1d/2d/3d`` itself, with the bias; more than three spatial dimensions
        and empty images take the standard-only version."""
        if not 1 <= lhs.ndim - 2 <= 3 or 0 in lhs.shape[1:]:
            return super().conv_transpose_channels_first(lhs, rhs, strides, padding, output_padding,
                                                         feature_group_count, rhs_dilation, bias)
        return _TRANSPOSED_CONVOLUTIONS[lhs.ndim - 3](lhs, rhs, bias, _as_tuple(strides), _as_tuple(padding),
                                                     _as_tuple(output_padding), feature_group_count,
                                                     _as_tuple(rhs_dilation))

    def _transposed(self, lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, feature_group_count,
                    bias=None):
        """A convolution of the input dilated by ``lhs_dilation``, channels last: ``_conv_transpose``
        on the channels-first views.  Strides other than 1 and paddings that torch cannot say take
        the standard-only version."""
        weight = _channels_first_kernel(rhs)
        out = _conv_transpose(torch.movedim(lhs, -1, 1), weight, window_strides, padding, lhs_dilation, rhs_dilation,
                              feature_group_count, bias)
        if out is None:
            return super().conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                                feature_group_count, bias)
        return torch.movedim(out, 1, -1)

    def reduce_window(self, x, init, reduction, window_dimensions, window_strides, padding, window_dilation=None):
        """``F.max_pool1d/2d/3d`` (min as the max of ``-x``) and ``F.avg_pool1d/2d/3d`` with
        ``divisor_override=1`` (sum), for floating pools of 1 to 3 spatial dimensions after
        leading axes with a window of 1 (batch, and channels-first features), with either a
        window of 1 over a last features axis (channels-last: pooled on the channels-first
        view) or none (channels-first: the leading axes seen as torch's channels, no copy).  The
        padding is the pools' own where it is theirs (symmetric, -inf or 0), else applied with
        ``F.pad`` (``init``).  Anything else takes the standard-only version.  How a call maps
        to torch's pools is worked out once per set of window arguments (``_pool_plan``)."""
        dilation = window_dilation if window_dilation is not None else (1,) * x.ndim
        plan = _pool_plan(x.ndim, init, reduction, window_dimensions, window_strides, padding, dilation)
        if plan is not None and x.is_floating_point():
            try:
                return _pooled(plan, x)
            except RuntimeError:
                if not _empty_output(x.shape, window_dimensions, padding, (1,) * x.ndim, dilation):
                    raise
        return super().reduce_window(x, init, reduction, window_dimensions, window_strides, padding, window_dilation)

    def fused_pool(self, kind, x, window, strides, padding, dilation, ceil_mode, count_include_pad=True,
                   divisor_override=None):
        """``F.max_pool1d/2d/3d`` (with their indices for 'max_indices') and ``F.avg_pool1d/2d/3d``
        themselves, on floating inputs (torch's integer pools are partly unimplemented, and its
        empty ones refused); ``avg_pool1d`` has no ``divisor_override``."""
        rank = x.ndim - 2
        if not x.is_floating_point() or 0 in x.shape or (rank == 1 and divisor_override is not None):
            return None
        if kind == "avg":
            if rank == 1:
                return torch.avg_pool1d(x, window, strides, padding, ceil_mode, count_include_pad)
            pool = _nn.avg_pool2d if rank == 2 else _nn.avg_pool3d
            return pool(x, window, strides, padding, ceil_mode, count_include_pad, divisor_override)
        pools = _MAX_POOLS_WITH_INDICES if kind == "max_indices" else _MAX_POOLS
        return pools[rank - 1](x, window, strides, padding, dilation, ceil_mode)

    def fused_resample(self, x, mode, sizes, factors, align_corners, antialias):
        """``F.interpolate``'s kernels (``aten.upsample_*``) with the output sizes and scale
        factors given, on floating inputs; not antialiased to one column of several rows, where
        torch's kernel gives every row the same value (torch 2.13)."""
        rank = x.ndim - 2
        if not x.is_floating_point() or 0 in x.shape or (antialias and sizes[-1] == 1 and sizes[0] > 1):
            return None
        if mode in ("nearest", "nearest-exact"):
            kernel = getattr(torch.ops.aten, f"{'_upsample_nearest_exact' if mode != 'nearest' else 'upsample_nearest'}"
                                             f"{rank}d")
            return kernel(x, list(sizes), *factors)
        name = {"linear": "linear1d", "bilinear": "bilinear2d", "trilinear": "trilinear3d", "bicubic": "bicubic2d",
                "lanczos": "lanczos2d"}[mode]
        kernel = getattr(torch.ops.aten, f"_upsample_{name}_aa" if antialias else f"upsample_{name}")
        return kernel(x, list(sizes), align_corners, *factors)

    def fused_grid_sample(self, x, grid, mode, padding_mode, align_corners):
        """``torch.grid_sampler``, the kernel behind ``F.grid_sample``, for float32 and float64."""
        if x.dtype not in _ATTENTION_DTYPES or grid.dtype != x.dtype or 0 in x.shape or 0 in grid.shape:
            return None
        return torch.grid_sampler(x, grid, ("bilinear", "nearest", "bicubic").index(mode),
                                  ("zeros", "border", "reflection").index(padding_mode), align_corners)

    def fused_nll(self, log_p, target, weight, ignore_index, reduction):
        """``nll_loss_nd``, the kernel behind ``F.nll_loss``, for float32 and float64 (targets made
        int64, which it requires).  Its CPU check of the targets' range raises IndexError; on
        CUDA a target out of range asserts on the device, as torch.nn's loss does."""
        if log_p.dtype not in _ATTENTION_DTYPES or (weight is not None and weight.dtype != log_p.dtype):
            return None
        return _nn.nll_loss_nd(log_p, target.long(), weight, _REDUCTIONS[reduction], ignore_index)

    def fused_embedding_bag(self, table, ids, offsets, mode, per_sample_weights=None, padding_idx=None):
        """``torch.embedding_bag``, the kernel behind ``F.embedding_bag`` (no copy of the rows),
        for floating tables; a 2-D ``ids`` as torch's function takes it, with offsets every row.
        The CPU kernel checks the ids' range and the offsets itself (RuntimeErrors, raised as
        IndexError and ValueError), but for float64 tables not that the offsets do not decrease,
        which is checked here; the CUDA one asserts on the device, as torch.nn's does (its ids
        are not at hand to check)."""
        if not table.is_floating_point() or (ids.ndim == 2 and ids.shape[1] == 0):
            return None
        if ids.ndim == 2:
            offsets = torch.arange(0, ids.numel(), ids.shape[1], dtype=ids.dtype, device=ids.device)
            ids = ids.reshape(-1)
            per_sample_weights = None if per_sample_weights is None else per_sample_weights.reshape(-1)
        elif table.dtype == torch.float64 and offsets.device.type == "cpu" and offsets.shape[0] > 1 and bool(
                (offsets[1:] < offsets[:-1]).any()):  # the one check the float64 CPU kernel leaves out
            raise ValueError("offsets must not decrease")
        try:
            return torch.embedding_bag(table, ids, offsets.to(ids.dtype), False, _BAG_MODES[mode], False,
                                       per_sample_weights, False, padding_idx)[0]
        except RuntimeError as error:  # the CPU kernel's checks, as the contract's errors
            message = str(error)
            if any(words in message for words in _BAG_ID_ERRORS):
                raise IndexError(message) from None
            if any(words in message for words in _BAG_OFFSET_ERRORS):
                raise ValueError(message) from None
            raise

    def fused_recurrence(self, kind, xs, carry, w_input, b_input, w_hidden, b_hidden, projection=None):
        """``torch._VF.lstm`` / ``gru`` / ``rnn_tanh`` / ``rnn_relu``, the fused loops behind
        ``torch.nn.LSTM``, ``GRU`` and ``RNN`` (same gate orders), for float32 and float64; not
        float32 on CUDA, where cuDNN's loop is 25 to 45 float32 eps off the written-once step and
        flax even with TF32 off (measured on an H200 with torch 2.11: 3e-6 to 5e-6 on outputs of
        0.02 to 1, where the CPU's loop is within 2.5 eps).  A projection is the LSTM's
        ``weight_hr``, as torch.nn.LSTM's ``proj_size`` passes it.  One step (a 2-D ``xs``) runs
        ``torch.nn.LSTMCell``'s, ``GRUCell``'s and ``RNNCell``'s kernels; so does a one-step
        sequence, whose loop's set-up would cost 5x a step."""
        if xs.dtype not in _ATTENTION_DTYPES or xs.ndim not in (2, 3) or (xs.is_cuda and xs.dtype == torch.float32) or (
                projection is not None and (kind != "LSTM" or xs.ndim == 2)) or kind not in _RECURRENCES:
            return None
        if b_input is None:
            b_input = torch.zeros_like(b_hidden)
        if b_hidden is None:
            b_hidden = torch.zeros_like(b_input)
        loop, cell = _RECURRENCES[kind]
        if xs.ndim == 2 or (xs.shape[0] == 1 and projection is None):
            x = xs if xs.ndim == 2 else xs[0]
            if kind == "LSTM":
                c, h = carry
                h, c = cell(x, (h, c), w_input.T, w_hidden.T, b_input, b_hidden)
                carry = (c, h)
            else:
                h = carry = cell(x, carry, w_input.T, w_hidden.T, b_input, b_hidden)
            return carry, h if xs.ndim == 2 else h[None]
        weights = _loop_weights(w_input, b_input, w_hidden, b_hidden, projection)
        if kind == "LSTM":
            c, h = carry
            ys, h, c = loop(xs, (h[None], c[None]), weights, True, 1, 0.0, False, False, False)
            return (c[0], h[0]), ys
        ys, h = loop(xs, carry[None], weights, True, 1, 0.0, False, False, False)
        return h[0], ys

    def fused_matrix_exp(self, a):
        """``torch.linalg.matrix_exp`` (Bader, Blanes and Casas' Taylor polynomials), for the floating dtypes."""
        return torch.linalg.matrix_exp(a) if a.dtype.is_floating_point else None

    def fused_packed_recurrence(self, kind, data, batch_sizes, carries, weights, projections=None):
        """The packed-input loops of ``torch._VF.lstm`` / ``gru`` / ``rnn_tanh`` / ``rnn_relu``
        (torch.nn.LSTM's on a ``PackedSequence``), one layer of one or two directions, on the
        dtypes and devices of ``fused_recurrence``."""
        if data.dtype not in _ATTENTION_DTYPES or data.ndim != 2 or data.shape[0] == 0 or kind not in _RECURRENCES or (
                data.is_cuda and data.dtype == torch.float32) or (projections is not None and kind != "LSTM"):
            return None
        flat = []
        for index, direction in enumerate(weights):
            flat += _loop_weights(*direction, None if projections is None else projections[index])
        sizes = torch.as_tensor(batch_sizes, dtype=torch.int64)  # torch's packed loops take them on the CPU
        loop = _RECURRENCES[kind][0]
        bidirectional = len(carries) == 2
        if kind == "LSTM":
            hx = (torch.stack([h for _, h in carries]), torch.stack([c for c, _ in carries]))
            out, h, c = loop(data, sizes, hx, flat, True, 1, 0.0, False, bidirectional)
            return [(c[index], h[index]) for index in range(len(carries))], out
        out, h = loop(data, sizes, torch.stack(carries), flat, True, 1, 0.0, False, bidirectional)
        return [h[index] for index in range(len(carries))], out

    def fused_norm(self, kind, x, count, scale, bias, epsilon, statistics=None, channels_first=False,
                   fast_variance=False):
        """``F.layer_norm``, ``F.rms_norm``, ``F.group_norm`` (on the channels-first view of
        ``x``, no copy) and ``F.batch_norm`` on ``x`` seen as ``(M, C)`` (on ``x`` as it is, with
        ``channels_first``), for float32 and float64; their variance is Welford's, as accurate as
        the two-pass one, except that of the group norm's channels-last kernel (the one a 4-D or
        5-D channels-last ``x`` meets), ``E[x^2] - E[x]^2`` in the data's dtype: 0.05 off at mean
        300, where the two-pass one is 1e-4 off; that kernel only with ``fast_variance``, else
        the channels-first one on ``x`` seen as ``(N, C, positions)`` (which torch copies: 27
        against 9 ms for (16, 64, 64, 128), the written-once statistics 72).  No group norm of
        one-element groups: the kernel's ``x * scale + shift`` then cancels (6e-5 off where the
        answer is the bias)."""
        if x.dtype not in _ATTENTION_DTYPES or x.ndim < 1:
            return None
        if kind == "layer":  # the kernels behind F.layer_norm... without their Python wrappers
            return torch.layer_norm(x, x.shape[x.ndim - count:], scale, bias, epsilon, _cudnn_enabled())
        if kind == "rms":
            return torch.rms_norm(x, x.shape[x.ndim - count:], scale, epsilon)
        if kind == "group":
            if x.ndim < 2 or x.numel() == x.shape[0] * count:
                return None
            first = x if channels_first else torch.movedim(x, -1, 1)
            operand = first
            if not fast_variance and first.ndim in _CHANNELS_LAST and first.is_contiguous(
                    memory_format=_CHANNELS_LAST[first.ndim]):
                operand = first.reshape(*first.shape[:2], -1)  # 3-D: the channels-first kernel (torch copies it)
            y = torch.group_norm(operand, count, scale, bias, epsilon, _cudnn_enabled())
            y = y.reshape(first.shape)
            return y if channels_first else y.movedim(1, -1)
        if channels_first:  # torch's own layout: its kernel as it is
            operand, count = x, x.numel() // max(x.shape[1], 1)

            def restored(y):
                return y
        else:
            # (M, C) rows of a contiguous channels-last x; the channels-first view where that one
            # is contiguous (a torch-layout input seen channels-last): no copy either way.
            first = torch.movedim(x, -1, 1) if x.ndim > 2 else x
            rows = x.reshape(-1, x.shape[-1]) if x.is_contiguous() or not first.is_contiguous() else None
            operand = rows if rows is not None else first
            count = x.numel() // max(x.shape[-1], 1)

            def restored(y):
                return y.reshape(x.shape) if rows is not None else torch.movedim(y, 1, -1)

        cudnn = _cudnn_enabled()
        if kind == "running":
            mean, var = statistics
            return restored(torch.batch_norm(operand, scale, bias, mean, var, False, 0.0, epsilon, cudnn))
        if kind == "batch" and count > 1:
            # The batch's mean and unbiased variance, as running statistics updated with momentum 1.
            mean = torch.zeros(operand.shape[1], dtype=x.dtype, device=x.device)
            var = torch.ones_like(mean)
            y = torch.batch_norm(operand, scale, bias, mean, var, True, 1.0, epsilon, cudnn)
            return restored(y), mean, var * ((count - 1) / count)
        return None

    def device_of(self, x):
        return x.device  # array-api-compat's ``device`` costs 1.1 us, the attribute 0.1

    def to_host(self, x):
        return x.detach().cpu().numpy()

    def from_host(self, host, device):
        tensor = torch.from_numpy(host.copy())
        return tensor if device is None else tensor.to(device)

    def to_device(self, x, device):
        return x if device is None else x.to(device)

    def devices_known(self):
        """The CPU, each CUDA device and Apple's MPS where torch has them (the namespace's own
        list probes every device type torch knows, with warnings)."""
        devices = [torch.device("cpu")] + [torch.device("cuda", index) for index in range(torch.cuda.device_count())]
        return devices + ([torch.device("mps")] if torch.backends.mps.is_available() else [])


ADAPTER = TorchAdapter

"""torch.nn's loss modules: thin shells over ``xpnn.torch_nn.functional``'s losses, with torch's
constructor arguments (``reduction``, and the legacy ``size_average``/``reduce``), and the class
or element ``weight`` (and ``pos_weight``) kept as buffers, as torch keeps them.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from xpnn._dispatch import adapter_of
from xpnn._types import Array
from xpnn.torch_nn import functional as F
from xpnn.torch_nn.init import Factory
from xpnn.torch_nn.layers import Linear, PairwiseDistance
from xpnn.torch_nn.module import Module, ModuleList, Sequential

__all__ = ["L1Loss", "MSELoss", "SmoothL1Loss", "HuberLoss", "BCELoss", "BCEWithLogitsLoss", "KLDivLoss", "NLLLoss",
           "CrossEntropyLoss", "PoissonNLLLoss", "GaussianNLLLoss", "MarginRankingLoss", "HingeEmbeddingLoss",
           "SoftMarginLoss", "MultiLabelSoftMarginLoss", "CosineEmbeddingLoss", "TripletMarginLoss",
           "TripletMarginWithDistanceLoss", "MultiMarginLoss", "MultiLabelMarginLoss", "CTCLoss", "NLLLoss2d",
           "LinearCrossEntropyLoss", "AdaptiveLogSoftmaxWithLoss"]


class _Loss(Module):
    """A loss with its ``reduction`` ('none', 'mean' or 'sum'; from the legacy ``size_average``
    and ``reduce`` where either is given, with torch's warning)."""

    def __init__(self, size_average: bool | None = None, reduce: bool | None = None, reduction: str = "mean") -> None:
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = F._reduction(type(self).__name__, reduction, size_average, reduce,
                                     ("none", "mean", "sum", "batchmean"))
        self.reduction = reduction


class _WeightedLoss(_Loss):
    """A loss with a ``weight`` buffer (None: unweighted)."""

    def __init__(self, weight: Array | None = None, size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)


class L1Loss(_Loss):
    """|x - y|, reduced (``F.l1_loss``)."""

    def forward(self, input: Array, target: Array) -> Array:
        return F.l1_loss(input, target, reduction=self.reduction)


class MSELoss(_Loss):
    """(x - y)^2, reduced (``F.mse_loss``)."""

    def forward(self, input: Array, target: Array) -> Array:
        return F.mse_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """0.5 (x - y)^2 / beta where |x - y| < beta, else |x - y| - 0.5 beta (``F.smooth_l1_loss``)."""

    def __init__(self, size_average: bool | None = None, reduce: bool | None = None, reduction: str = "mean",
                 beta: float = 1.0) -> None:
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input: Array, target: Array) -> Array:
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """0.5 (x - y)^2 where |x - y| < delta, else delta (|x - y| - 0.5 delta) (``F.huber_loss``)."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input: Array, target: Array) -> Array:
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class BCELoss(_WeightedLoss):
    """-weight (y log x + (1 - y) log(1 - x)) of probabilities x (``F.binary_cross_entropy``)."""

    def forward(self, input: Array, target: Array) -> Array:
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """The binary cross-entropy of logits, with ``weight`` and ``pos_weight`` buffers
    (``F.binary_cross_entropy_with_logits``)."""

    def __init__(self, weight: Array | None = None, size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean", pos_weight: Array | None = None) -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: Array, target: Array) -> Array:
        return F.binary_cross_entropy_with_logits(input, target, self.weight, reduction=self.reduction,
                                                  pos_weight=self.pos_weight)


class KLDivLoss(_Loss):
    """y (log y - x) of log-probabilities x, or with ``log_target`` e^y (y - x) (``F.kl_div``)."""

    def __init__(self, size_average: bool | None = None, reduce: bool | None = None, reduction: str = "mean",
                 log_target: bool = False) -> None:
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input: Array, target: Array) -> Array:
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class NLLLoss(_WeightedLoss):
    """-weight[t] x[t] of log-probabilities at class targets t (``F.nll_loss``)."""

    def __init__(self, weight: Array | None = None, size_average: bool | None = None, ignore_index: int = -100,
                 reduce: bool | None = None, reduction: str = "mean") -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input: Array, target: Array) -> Array:
        return F.nll_loss(input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class NLLLoss2d(NLLLoss):
    """``NLLLoss`` under torch's deprecated name (with torch's warning)."""

    def __init__(self, weight: Array | None = None, size_average: bool | None = None, ignore_index: int = -100,
                 reduce: bool | None = None, reduction: str = "mean") -> None:
        warnings.warn("xpnn.torch_nn.NLLLoss2d has been deprecated; use NLLLoss instead as a drop-in replacement "
                      "(as torch warns)", FutureWarning, stacklevel=2)
        super().__init__(weight, size_average, ignore_index, reduce, reduction)


class CrossEntropyLoss(_WeightedLoss):
    """The cross-entropy of logits against class indices or probabilities, with
    ``label_smoothing`` (``F.cross_entropy``)."""

    def __init__(self, weight: Array | None = None, size_average: bool | None = None, ignore_index: int = -100,
                 reduce: bool | None = None, reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input: Array, target: Array) -> Array:
        return F.cross_entropy(input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction,
                               label_smoothing=self.label_smoothing)


class PoissonNLLLoss(_Loss):
    """The Poisson negative log-likelihood of a (log-)rate (``F.poisson_nll_loss``)."""

    def __init__(self, log_input: bool = True, full: bool = False, size_average: bool | None = None,
                 eps: float = 1e-8, reduce: bool | None = None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.log_input, self.full, self.eps = log_input, full, eps

    def forward(self, log_input: Array, target: Array) -> Array:
        return F.poisson_nll_loss(log_input, target, log_input=self.log_input, full=self.full, eps=self.eps,
                                  reduction=self.reduction)


class GaussianNLLLoss(_Loss):
    """The Gaussian negative log-likelihood 0.5 (log v + (x - y)^2 / v) (``F.gaussian_nll_loss``)."""

    def __init__(self, *, full: bool = False, eps: float = 1e-6, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)
        self.full, self.eps = full, eps

    def forward(self, input: Array, target: Array, var: Array | float) -> Array:
        return F.gaussian_nll_loss(input, target, var, full=self.full, eps=self.eps, reduction=self.reduction)


class _MarginLoss(_Loss):
    """A loss with a ``margin``."""

    def __init__(self, margin: float, size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = margin


class MarginRankingLoss(_MarginLoss):
    """max(0, -y (x1 - x2) + margin) (``F.margin_ranking_loss``)."""

    def __init__(self, margin: float = 0.0, size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean") -> None:
        super().__init__(margin, size_average, reduce, reduction)

    def forward(self, input1: Array, input2: Array, target: Array) -> Array:
        return F.margin_ranking_loss(input1, input2, target, margin=self.margin, reduction=self.reduction)


class HingeEmbeddingLoss(_MarginLoss):
    """x where y is 1, max(0, margin - x) where y is -1 (``F.hinge_embedding_loss``)."""

    def __init__(self, margin: float = 1.0, size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean") -> None:
        super().__init__(margin, size_average, reduce, reduction)

    def forward(self, input: Array, target: Array) -> Array:
        return F.hinge_embedding_loss(input, target, margin=self.margin, reduction=self.reduction)


class SoftMarginLoss(_Loss):
    """log(1 + e^(-y x)) (``F.soft_margin_loss``)."""

    def forward(self, input: Array, target: Array) -> Array:
        return F.soft_margin_loss(input, target, reduction=self.reduction)


class MultiLabelSoftMarginLoss(_WeightedLoss):
    """The per-class binary cross-entropy of logits, averaged over the classes
    (``F.multilabel_soft_margin_loss``)."""

    def forward(self, input: Array, target: Array) -> Array:
        return F.multilabel_soft_margin_loss(input, target, weight=self.weight, reduction=self.reduction)


class CosineEmbeddingLoss(_MarginLoss):
    """1 - cos(x1, x2) where y is 1, max(0, cos(x1, x2) - margin) where y is -1
    (``F.cosine_embedding_loss``)."""

    def __init__(self, margin: float = 0.0, size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean") -> None:
        super().__init__(margin, size_average, reduce, reduction)

    def forward(self, input1: Array, input2: Array, target: Array) -> Array:
        return F.cosine_embedding_loss(input1, input2, target, margin=self.margin, reduction=self.reduction)


class TripletMarginLoss(_MarginLoss):
    """max(0, margin + d(a, p) - d(a, n)) of the p-norm distance (``F.triplet_margin_loss``)."""

    def __init__(self, margin: float = 1.0, p: float = 2.0, eps: float = 1e-6, swap: bool = False,
                 size_average: bool | None = None, reduce: bool | None = None, reduction: str = "mean") -> None:
        super().__init__(margin, size_average, reduce, reduction)
        self.p, self.eps, self.swap = p, eps, swap

    def forward(self, anchor: Array, positive: Array, negative: Array) -> Array:
        return F.triplet_margin_loss(anchor, positive, negative, margin=self.margin, p=self.p, eps=self.eps,
                                     swap=self.swap, reduction=self.reduction)


class TripletMarginWithDistanceLoss(_MarginLoss):
    """max(0, margin + d(a, p) - d(a, n)) of any ``distance_function`` (a ``PairwiseDistance``
    submodule when None, as torch) (``F.triplet_margin_with_distance_loss``)."""

    def __init__(self, *, distance_function: Any = None, margin: float = 1.0, swap: bool = False,
                 reduction: str = "mean") -> None:
        super().__init__(margin, reduction=reduction)
        self.distance_function = PairwiseDistance() if distance_function is None else distance_function
        self.swap = swap

    def forward(self, anchor: Array, positive: Array, negative: Array) -> Array:
        return F.triplet_margin_with_distance_loss(anchor, positive, negative, distance_function=self.distance_function,
                                                   margin=self.margin, swap=self.swap, reduction=self.reduction)


class MultiMarginLoss(_WeightedLoss):
    """The multi-class hinge loss of scores at class indices (``F.multi_margin_loss``)."""

    def __init__(self, p: int = 1, margin: float = 1.0, weight: Array | None = None,
                 size_average: bool | None = None, reduce: bool | None = None, reduction: str = "mean") -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.p, self.margin = p, margin

    def forward(self, input: Array, target: Array) -> Array:
        return F.multi_margin_loss(input, target, p=self.p, margin=self.margin, weight=self.weight,
                                   reduction=self.reduction)


class MultiLabelMarginLoss(_Loss):
    """The multi-label hinge loss of scores at listed class indices (``F.multilabel_margin_loss``)."""

    def forward(self, input: Array, target: Array) -> Array:
        return F.multilabel_margin_loss(input, target, reduction=self.reduction)


class CTCLoss(_Loss):
    """The Connectionist Temporal Classification loss of log-probabilities ``(T, N, C)`` against
    unaligned targets (``F.ctc_loss``)."""

    def __init__(self, blank: int = 0, reduction: str = "mean", zero_infinity: bool = False) -> None:
        super().__init__(reduction=reduction)
        self.blank, self.zero_infinity = blank, zero_infinity

    def forward(self, log_probs: Array, targets: Array, input_lengths: Any, target_lengths: Any) -> Array:
        return F.ctc_loss(log_probs, targets, input_lengths, target_lengths, self.blank, self.reduction,
                          self.zero_infinity)


class LinearCrossEntropyLoss(_WeightedLoss):
    """The cross-entropy of the logits of a ``linear`` layer it holds, ``(C * prod(out_features),
    in_features)`` stored flat as torch stores it (``F.linear_cross_entropy``)."""

    def __init__(self, in_features: int, num_classes: int, *, out_features: tuple[int, ...] = (), bias: bool = False,
                 reduction: str = "mean", weight: Array | None = None, ignore_index: int | None = None,
                 label_smoothing: float = 0.0, options: Any = None, like: Any = None, dtype: Any = None,
                 key: Array | None = None) -> None:
        if weight is not None and tuple(weight.shape) != (num_classes,):
            raise ValueError(f"xpnn.torch_nn.LinearCrossEntropyLoss: expected weight shape to be {(num_classes,)}, "
                             f"got {tuple(weight.shape)}")
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"xpnn.torch_nn.LinearCrossEntropyLoss: expected label_smoothing to be in range [0, 1], "
                             f"got {label_smoothing}")
        super().__init__(weight, reduction=reduction)
        self.num_classes, self.out_features = num_classes, tuple(out_features)
        self.ignore_index, self.label_smoothing, self.options = ignore_index, label_smoothing, options
        self.linear = Linear(in_features, math.prod(out_features, start=num_classes), bias, like=like, dtype=dtype,
                             key=key)

    def forward(self, input: Array, target: Array) -> Array:
        xp = adapter_of(self.linear.weight).xp
        shape = (self.num_classes, *self.out_features)
        bias = None if self.linear.bias is None else xp.reshape(self.linear.bias, shape)
        return F.linear_cross_entropy(input, xp.reshape(self.linear.weight, (*shape, self.linear.in_features)), target,
                                      linear_bias=bias, weight=self.weight, reduction=self.reduction,
                                      ignore_index=self.ignore_index, label_smoothing=self.label_smoothing,
                                      options=self.options)

    def extra_repr(self) -> str:
        return (f"in_features={self.linear.in_features}, num_classes={self.num_classes}, "
                f"out_features={self.out_features}, bias={self.linear.bias is not None}, reduction={self.reduction}, "
                f"ignore_index={self.ignore_index}, label_smoothing={self.label_smoothing}, options={self.options}")


class _ASMoutput(NamedTuple):
    """``AdaptiveLogSoftmaxWithLoss``'s result: each target's log-probability and the loss."""
    output: Array
    loss: Array


class AdaptiveLogSoftmaxWithLoss(Module):
    """Grave et al.'s adaptive softmax, as torch's: a ``head`` over the first ``cutoffs[0]``
    classes and one entry per cluster, and per cluster a ``tail`` projection (``in_features //
    div_value^(i+1)`` wide) over its classes; log p(c) = head's log p of c, or of c's cluster plus
    the cluster's log p of c.  As torch, each cluster runs on the rows whose targets fall in it
    where the targets can be read; under ``jax.jit`` and on Dask every cluster runs on every row
    (the same values)."""

    def __init__(self, in_features: int, n_classes: int, cutoffs: Sequence[int], div_value: float = 4.0,
                 head_bias: bool = False, *, like: Any = None, dtype: Any = None, key: Array | None = None) -> None:
        super().__init__()
        cutoffs = list(cutoffs)
        if not cutoffs:
            raise ValueError("xpnn.torch_nn.AdaptiveLogSoftmaxWithLoss: cutoffs should be a sequence of length larger "
                             "than 0")
        if (cutoffs != sorted(cutoffs) or min(cutoffs) <= 0 or max(cutoffs) > n_classes - 1
                or len(set(cutoffs)) != len(cutoffs) or any(int(c) != c for c in cutoffs)):
            raise ValueError(f"xpnn.torch_nn.AdaptiveLogSoftmaxWithLoss: cutoffs should be a sequence of unique, "
                             f"positive integers sorted in an increasing order, where each value is between 1 and "
                             f"n_classes-1, got {cutoffs}")
        self.in_features, self.n_classes, self.cutoffs = in_features, n_classes, cutoffs + [n_classes]
        self.div_value, self.head_bias = div_value, head_bias
        self.shortlist_size, self.n_clusters = self.cutoffs[0], len(cutoffs)
        self.head_size = self.shortlist_size + self.n_clusters
        keys = Factory(like, dtype, key)  # a key of its own for each projection
        made = {"like": like, "dtype": dtype}
        self.head = Linear(in_features, self.head_size, bias=head_bias, key=keys.key(), **made)
        widths = [int(in_features // div_value ** (i + 1)) for i in range(self.n_clusters)]
        self.tail = ModuleList([
            Sequential(Linear(in_features, width, bias=False, key=keys.key(), **made),
                       Linear(width, high - low, bias=False, key=keys.key(), **made))
            for width, low, high in zip(widths, self.cutoffs, self.cutoffs[1:])])

    def reset_parameters(self) -> None:
        """The head's and the clusters' projections drawn again, in place (torch's)."""
        for module in self.modules():
            if isinstance(module, Linear):
                module.reset_parameters()

    def forward(self, input: Array, target: Array) -> _ASMoutput:
        """Each row's log p(target) (``output``) and the mean of -output (``loss``); a 0-d
        ``target`` takes a 1-d ``input``."""
        ops = adapter_of(input)
        xp = ops.xp
        if target.ndim > 1 or input.ndim != target.ndim + 1 or (target.ndim and input.shape[0] != target.shape[0]):
            raise ValueError(f"xpnn.torch_nn.AdaptiveLogSoftmaxWithLoss: expected a 1D target with 2D input of the "
                             f"same batch size, or a 0D target with 1D input (as torch), got input shape "
                             f"{tuple(input.shape)} and target shape {tuple(target.shape)}")
        batched = target.ndim == 1
        x, t = (input, target) if batched else (input[None, ...], target[None, ...])
        host = np.asarray(ops.to_host(t)) if t.shape[0] > 0 and ops.values_at_hand(t) else None
        if host is not None and (host.min() < 0 or host.max() >= self.n_classes):
            raise RuntimeError(f"xpnn.torch_nn.AdaptiveLogSoftmaxWithLoss: target values should be in "
                               f"[0, {self.n_classes - 1}], but values in range [{host.min()}, {host.max()}] "
                               f"were found (as torch)")
        entry = t
        for i, (low, high) in enumerate(zip(self.cutoffs, self.cutoffs[1:])):
            entry = xp.where((t >= low) & (t < high), self.shortlist_size + i, entry)
        output = F._picked(ops, F.log_softmax(self.head(x), dim=1), entry)
        output = output + (self._tails_by_group(ops, x, host) if host is not None
                           else self._tails_of_every_row(ops, x, t))
        loss = xp.mean(-output)
        return _ASMoutput(output if batched else output[0], loss)

    def _tails_by_group(self, ops: Any, x: Array, targets: np.ndarray) -> Array:
        """Each row's log p of its target within its cluster (0 in the shortlist), as torch runs
        it: each cluster's projection on its own rows only, the groups gathered back in order."""
        xp, device = ops.xp, ops.device_of(x)
        groups = [np.flatnonzero(targets < self.shortlist_size)]
        pieces = [xp.zeros((groups[0].size,), dtype=x.dtype, device=device)]
        for projection, low, high in zip(self.tail, self.cutoffs, self.cutoffs[1:]):
            rows = np.flatnonzero((targets >= low) & (targets < high))
            groups.append(rows)
            if rows.size:
                log_p = F.log_softmax(projection(xp.take(x, xp.asarray(rows, device=device), axis=0)), dim=1)
                pieces.append(F._picked(ops, log_p, xp.asarray(targets[rows] - low, device=device)))
        order = np.argsort(np.concatenate(groups), kind="stable")
        return xp.take(xp.concat(pieces), xp.asarray(order, device=device))

    def _tails_of_every_row(self, ops: Any, x: Array, t: Array) -> Array:
        """``_tails_by_group`` where the targets cannot be read (under ``jax.jit``, on Dask):
        every cluster's projection on every row, each row keeping its own cluster's value."""
        xp = ops.xp
        total = xp.zeros(t.shape, dtype=x.dtype, device=ops.device_of(x))
        for projection, low, high in zip(self.tail, self.cutoffs, self.cutoffs[1:]):
            inside = (t >= low) & (t < high)
            local = F._picked(ops, F.log_softmax(projection(x), dim=1), xp.clip(t - low, 0, high - low - 1))
            total = total + xp.where(inside, local, 0.0)
        return total

    def log_prob(self, input: Array) -> Array:
        """log p of every class, ``(N, n_classes)``."""
        head = F.log_softmax(self.head(input), dim=1)
        xp = adapter_of(input).xp
        return xp.concat([head[:, :self.shortlist_size],
                          *(head[:, self.shortlist_size + i:self.shortlist_size + i + 1]
                            + F.log_softmax(projection(input), dim=1) for i, projection in enumerate(self.tail))],
                         axis=1)

    def predict(self, input: Array) -> Array:
        """The most probable class of each row: the head's where that is a shortlist class (no
        cluster's class can be more probable then), else the argmax of ``log_prob``."""
        xp = adapter_of(input).xp
        guess = xp.argmax(self.head(input), axis=1)
        return xp.where(guess < self.shortlist_size, guess, xp.argmax(self.log_prob(input), axis=1))

"""torch.nn's loss modules: thin shells over ``xpnn.torch_nn.functional``'s losses, with torch's
constructor arguments (``reduction``, and the legacy ``size_average``/``reduce``), and the class
or element ``weight`` (and ``pos_weight``) kept as buffers, as torch keeps them.
"""
from __future__ import annotations

from xpnn._types import Array
from xpnn.torch_nn import functional as F
from xpnn.torch_nn.module import Module

__all__ = ["L1Loss", "MSELoss", "SmoothL1Loss", "HuberLoss", "BCELoss", "BCEWithLogitsLoss", "KLDivLoss", "NLLLoss",
           "CrossEntropyLoss"]


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

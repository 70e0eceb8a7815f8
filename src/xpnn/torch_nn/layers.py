"""torch.nn's linear, convolution, pooling, normalization, embedding and dropout modules, thin
shells over ``xpnn.torch_nn.functional`` (and through it the written-once math of the flax-style
families).  Constructor arguments, defaults, parameter names, shapes and initial distributions
are torch.nn 2.13's, with ``like=`` (library and device), ``dtype=`` and ``key=`` added.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

from xpnn._dispatch import adapter_of
from xpnn._types import Array
from xpnn.torch_nn import functional as F
from xpnn.torch_nn import init
from xpnn.torch_nn.init import Factory
from xpnn.torch_nn.module import Module, Parameter, fill_in_place

__all__ = [
    "Identity", "Linear", "Bilinear", "Embedding", "EmbeddingBag", "Dropout", "Flatten", "LayerNorm", "GroupNorm",
    "RMSNorm", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
    "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "MaxPool1d", "MaxPool2d",
    "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d", "ZeroPad1d", "ZeroPad2d", "ZeroPad3d",
    "ConstantPad1d", "ConstantPad2d", "ConstantPad3d", "ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d",
    "ReplicationPad1d", "ReplicationPad2d", "ReplicationPad3d", "CircularPad1d", "CircularPad2d", "CircularPad3d",
    "Dropout1d", "Dropout2d", "Dropout3d", "Unflatten", "PixelShuffle", "PixelUnshuffle", "ChannelShuffle",
    "CosineSimilarity", "PairwiseDistance", "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d",
    "LocalResponseNorm", "Unfold", "Fold", "LPPool1d", "LPPool2d", "LPPool3d", "AlphaDropout", "FeatureAlphaDropout",
    "MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d", "FractionalMaxPool2d", "FractionalMaxPool3d",
    "CrossMapLRN2d", "SyncBatchNorm", "DataParallel",
]


class Identity(Module):
    """Returns its input (any constructor arguments are ignored, as torch's)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Any) -> Any:
        return input


def _reset_fan_in(module: Module) -> None:
    """torch's reset of Linear and the convolutions: ``weight`` ~ kaiming_uniform(a=sqrt(5)), so
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and ``bias`` (where there is one) ~ the same."""
    init.kaiming_uniform_(module.weight, a=math.sqrt(5))
    if module.bias is not None:
        bound = init.fan_in_bound(init._calculate_fan_in_and_fan_out(module.weight)[0])
        init.uniform_(module.bias, -bound, bound)


class Linear(Module):
    """y = x W^T + b; ``weight`` ``(out_features, in_features)`` ~ kaiming_uniform(a=sqrt(5)),
    ``bias`` ``(out_features,)`` ~ U(-1/sqrt(in_features), 1/sqrt(in_features))."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, like: Any = None,
                 dtype: Any = None, key: Array | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        make = Factory(like, dtype, key)
        self.weight = Parameter(make.kaiming_uniform((out_features, in_features), in_features))
        if bias:
            self.bias = Parameter(make.fan_in_bias((out_features,), in_features))
        else:
            self.register_parameter("bias", None)

    reset_parameters = _reset_fan_in

    def forward(self, input: Array) -> Array:
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Bilinear(Module):
    """y = x1^T A x2 + b; ``weight`` ``(out, in1, in2)`` and ``bias`` ~ U(-1/sqrt(in1), 1/sqrt(in1))."""

    def __init__(self, in1_features: int, in2_features: int, out_features: int, bias: bool = True, *,
                 like: Any = None, dtype: Any = None, key: Array | None = None) -> None:
        super().__init__()
        self.in1_features, self.in2_features, self.out_features = in1_features, in2_features, out_features
        make = Factory(like, dtype, key)
        bound = 1.0 / math.sqrt(in1_features)
        self.weight = Parameter(make.uniform((out_features, in1_features, in2_features), bound))
        if bias:
            self.bias = Parameter(make.uniform((out_features,), bound))
        else:
            self.register_parameter("bias", None)

    def reset_parameters(self) -> None:
        """Draw ``weight`` and ``bias`` again, in place, from the generator (torch's)."""
        bound = 1.0 / math.sqrt(self.weight.shape[1])
        for parameter in (self.weight, self.bias):
            if parameter is not None:
                init.uniform_(parameter, -bound, bound)

    def forward(self, input1: Array, input2: Array) -> Array:
        return F.bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")


def _embedding_table(owner: str, num_embeddings: int, embedding_dim: int, padding_idx: int | None,
                     weight: Array | None, like: Any, dtype: Any, key: Array | None) -> tuple[Array, int | None]:
    """An embedding module's ``weight`` (given, or ~ N(0, 1) with the ``padding_idx`` row zero)
    and its ``padding_idx`` made non-negative."""
    if padding_idx is not None:
        if not -num_embeddings <= padding_idx < num_embeddings:
            raise ValueError(f"xpnn.torch_nn.{owner}: padding_idx must be within num_embeddings ({num_embeddings}), "
                             f"got {padding_idx}")
        padding_idx %= num_embeddings
    if weight is None:
        weight = _padding_row_zeroed(Factory(like, dtype, key).normal((num_embeddings, embedding_dim)), padding_idx)
    return weight, padding_idx


def _padding_row_zeroed(weight: Array, padding_idx: int | None) -> Array:
    """``weight`` with its ``padding_idx`` row zero (unchanged without one)."""
    if padding_idx is None:
        return weight
    ops = adapter_of(weight)
    rows = ops.xp.arange(weight.shape[0], device=ops.device_of(weight))[:, None]
    return ops.xp.where(rows == padding_idx, ops.xp.zeros_like(weight), weight)


class _Table(Module):
    """What Embedding and EmbeddingBag share: torch's ``reset_parameters``."""

    def reset_parameters(self) -> None:
        """Draw ``weight`` again, in place, from N(0, 1) with the ``padding_idx`` row zero (torch's)."""
        drawn = init.normal_(self.weight)
        fill_in_place(drawn, _padding_row_zeroed(drawn, self.padding_idx))


class Embedding(_Table):
    """A lookup table ``weight`` ``(num_embeddings, embedding_dim)`` ~ N(0, 1), the
    ``padding_idx`` row zero; with ``max_norm``, the rows looked up are renormed first and
    kept so (``functional.embedding``)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 sparse: bool = False, _weight: Array | None = None, _freeze: bool = False, *, like: Any = None,
                 dtype: Any = None, key: Array | None = None) -> None:
        super().__init__()
        weight, padding_idx = _embedding_table("Embedding", num_embeddings, embedding_dim, padding_idx, _weight, like,
                                               dtype, key)
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.max_norm, self.norm_type = max_norm, norm_type
        self.register_parameter("weight", weight, requires_grad=not _freeze)

    def forward(self, input: Array) -> Array:
        rows, table = F._embedding_and_table(input, self.weight, self.max_norm, self.norm_type)
        if table is not self.weight:  # renormed rows of a library that cannot write them in place
            self.weight = table
        return rows

    def extra_repr(self) -> str:
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        text += f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        text += f", max_norm={self.max_norm}" if self.max_norm is not None else ""
        return text + (f", norm_type={self.norm_type}" if self.norm_type != 2.0 else "")


class EmbeddingBag(_Table):
    """The sum, mean or max of bags of rows of a lookup table ``weight`` ~ N(0, 1), the
    ``padding_idx`` row zero (``functional.embedding_bag``)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, max_norm: float | None = None,
                 norm_type: float = 2.0, scale_grad_by_freq: bool = False, mode: str = "mean", sparse: bool = False,
                 _weight: Array | None = None, include_last_offset: bool = False, padding_idx: int | None = None, *,
                 like: Any = None, dtype: Any = None, key: Array | None = None) -> None:
        super().__init__()
        weight, padding_idx = _embedding_table("EmbeddingBag", num_embeddings, embedding_dim, padding_idx, _weight,
                                               like, dtype, key)
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.max_norm, self.norm_type, self.scale_grad_by_freq = max_norm, norm_type, scale_grad_by_freq
        self.mode, self.sparse, self.include_last_offset = mode, sparse, include_last_offset
        self.register_parameter("weight", weight)

    def forward(self, input: Array, offsets: Array | None = None, per_sample_weights: Array | None = None) -> Array:
        bags, table = F._embedding_bag_and_table(input, self.weight, offsets, self.max_norm, self.norm_type,
                                                 self.scale_grad_by_freq, self.mode, self.sparse, per_sample_weights,
                                                 self.include_last_offset, self.padding_idx)
        if table is not self.weight:  # renormed rows of a library that cannot write them in place
            self.weight = table
        return bags

    def extra_repr(self) -> str:
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        text += f", max_norm={self.max_norm!r}" if self.max_norm is not None else ""
        text += f", norm_type={self.norm_type!r}" if self.norm_type != 2 else ""
        text += f", scale_grad_by_freq={self.scale_grad_by_freq!r}" if self.scale_grad_by_freq else ""
        text += f", mode={self.mode!r}"
        return text + (f", padding_idx={self.padding_idx!r}" if self.padding_idx is not None else "")


class Dropout(Module):
    """Zeroes each element with probability ``p`` in training, scaling the rest by 1 / (1 - p)."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"xpnn.torch_nn.{type(self).__name__}: dropout probability has to be between 0 and 1, "
                             f"but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input: Array) -> Array:
        return F.dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class _ChannelDropout(Dropout):
    """Zeroes whole channels with probability ``p`` in training (``F.dropout1d/2d/3d``)."""

    _dropout: Any = None

    def forward(self, input: Array) -> Array:
        return type(self)._dropout(input, self.p, self.training, self.inplace)


class Dropout1d(_ChannelDropout):
    """Zeroes whole channels of ``(N, C, L)`` with probability ``p`` in training."""
    _dropout = F.dropout1d


class Dropout2d(_ChannelDropout):
    """Zeroes whole channels of ``(N, C, H, W)`` with probability ``p`` in training."""
    _dropout = F.dropout2d


class Dropout3d(_ChannelDropout):
    """Zeroes whole channels of ``(N, C, D, H, W)`` with probability ``p`` in training."""
    _dropout = F.dropout3d


class AlphaDropout(_ChannelDropout):
    """Alpha dropout for SELU networks: elements set to SELU's saturation with probability ``p``
    in training, then an affine map that keeps zero mean and unit variance."""
    _dropout = F.alpha_dropout


class FeatureAlphaDropout(_ChannelDropout):
    """Alpha dropout of whole channels of ``(N, C, *)``."""
    _dropout = F.feature_alpha_dropout


class Flatten(Module):
    """The dimensions ``start_dim`` to ``end_dim`` merged into one."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input: Array) -> Array:
        xp = adapter_of(input).xp
        rank = max(input.ndim, 1)  # a 0-d input flattens as one element, as torch's
        for dim in (self.start_dim, self.end_dim):
            if not -rank <= dim < rank:
                raise IndexError(f"xpnn.torch_nn.Flatten: Dimension out of range (expected to be in range of "
                                 f"[{-rank}, {rank - 1}], but got {dim})")
        start, end = self.start_dim % rank, self.end_dim % rank
        if start > end:
            raise RuntimeError("xpnn.torch_nn.Flatten: flatten() has invalid args: start_dim cannot come after end_dim")
        shape = tuple(input.shape)
        return xp.reshape(input, (*shape[:start], math.prod(shape[start:end + 1]), *shape[end + 1:]))

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


# -- normalization ---------------------------------------------------------------------------

def _shape_tuple(shape: int | Sequence[int]) -> tuple[int, ...]:
    return (shape,) if isinstance(shape, int) else tuple(shape)


def _reset_affine(module: Module) -> None:
    """A norm's ``weight`` ones and ``bias`` zeros again, in place, where it has them (torch's
    ``reset_parameters``)."""
    if module.weight is not None:
        init.ones_(module.weight)
    if getattr(module, "bias", None) is not None:
        init.zeros_(module.bias)


def _affine(module: Module, shape: tuple[int, ...], affine: bool, bias: bool | None, like: Any, dtype: Any) -> None:
    """A norm's ``weight`` (ones) and ``bias`` (zeros) of ``shape``, or None where absent
    (``bias=None``: the norm has no bias at all, as RMSNorm)."""
    make = Factory(like, dtype)
    module.register_parameter("weight", make.full(shape, 1.0) if affine else None)
    if bias is not None:
        module.register_parameter("bias", make.full(shape, 0.0) if affine and bias else None)


class LayerNorm(Module):
    """(x - E[x]) / sqrt(Var[x] + eps) * weight + bias over the trailing ``normalized_shape``;
    ``weight`` ones, ``bias`` zeros."""

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, *, like: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.normalized_shape, self.eps = _shape_tuple(normalized_shape), eps
        self.elementwise_affine = elementwise_affine
        _affine(self, self.normalized_shape, elementwise_affine, bias, like, dtype)

    reset_parameters = _reset_affine

    def forward(self, input: Array) -> Array:
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class RMSNorm(Module):
    """x / sqrt(E[x^2] + eps) * weight over the trailing ``normalized_shape`` (``eps=None``: the
    dtype's machine epsilon); ``weight`` ones."""

    def __init__(self, normalized_shape: int | Sequence[int], eps: float | None = None,
                 elementwise_affine: bool = True, *, like: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.normalized_shape, self.eps = _shape_tuple(normalized_shape), eps
        self.elementwise_affine = elementwise_affine
        _affine(self, self.normalized_shape, elementwise_affine, None, like, dtype)

    reset_parameters = _reset_affine

    def forward(self, input: Array) -> Array:
        return F.rms_norm(input, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(Module):
    """Normalization per sample over groups of ``num_channels / num_groups`` channels (dim 1),
    then ``weight`` (ones) and ``bias`` (zeros) per channel."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True, *,
                 bias: bool = True, like: Any = None, dtype: Any = None) -> None:
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"xpnn.torch_nn.GroupNorm: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        _affine(self, (num_channels,), affine, bias, like, dtype)

    reset_parameters = _reset_affine

    def forward(self, input: Array) -> Array:
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class LocalResponseNorm(Module):
    """Each channel over the sum of squares of its ``size`` neighbours (``F.local_response_norm``)."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, input: Array) -> Array:
        return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class CrossMapLRN2d(LocalResponseNorm):
    """torch's legacy cross-channel LRN of ``(N, C, H, W)``: as ``LocalResponseNorm`` but with
    torch's running-sum window, which keeps channel 0 in every window past the first
    (size - 1) // 2 + 1 channels.  The gradient is the true one of these values (torch's own
    backward is not: it disagrees with finite differences of its forward)."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1) -> None:
        super().__init__(size, alpha, beta, k)  # k's default 1, not 1.0, as torch prints it

    def forward(self, input: Array) -> Array:
        return F._cross_map_lrn2d(input, self.size, self.alpha, self.beta, self.k)


class _BatchNorm(Module):
    """torch's ``_BatchNorm``: batch statistics in training (and the running ones updated with
    ``momentum``, or the cumulative average when it is None), running statistics in eval."""

    _ranks: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, *, bias: bool = True, like: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        _affine(self, (num_features,), affine, bias, like, dtype)
        make = Factory(like, dtype)
        if track_running_stats:
            self.register_buffer("running_mean", make.full((num_features,), 0.0))
            self.register_buffer("running_var", make.full((num_features,), 1.0))
            self.register_buffer("num_batches_tracked", make.integers(0))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    #: torch's state_dict format 2: with ``num_batches_tracked``.
    _version = 2

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, local_metadata: dict[str, Any],
                              strict: bool, missing_keys: list[str], unexpected_keys: list[str],
                              error_msgs: list[str]) -> None:
        """torch's: a state_dict of format 1 (or of no version: a plain dict) may lack
        ``num_batches_tracked``, which then keeps its value."""
        version = local_metadata.get("version")
        key = prefix + "num_batches_tracked"
        if (version is None or version < 2) and self.track_running_stats and key not in state_dict:
            state_dict[key] = self.num_batches_tracked
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def reset_running_stats(self) -> None:
        """Running mean 0, variance 1 and no batches tracked, in place (torch's)."""
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            init.zeros_(self.num_batches_tracked)

    def reset_parameters(self) -> None:
        """``reset_running_stats``, and ``weight`` ones and ``bias`` zeros (torch's)."""
        self.reset_running_stats()
        _reset_affine(self)

    def _check_rank(self, input: Array) -> None:
        """torch's ``_check_input_dim``: a ValueError unless ``input`` has one of ``_ranks``."""
        if input.ndim not in self._ranks:
            raise ValueError(f"xpnn.torch_nn.{type(self).__name__}: expected "
                             f"{' or '.join(f'{rank}D' for rank in self._ranks)} input (got {input.ndim}D input)")

    def forward(self, input: Array) -> Array:
        self._check_rank(input)
        tracking = self.training and self.track_running_stats
        tracked = 0
        if tracking:
            tracked = int(self.num_batches_tracked) if self.momentum is None else 0
            self.num_batches_tracked = self.num_batches_tracked + 1
        use_batch = self.training or self.running_mean is None
        running = (self.running_mean, self.running_var) if not self.training or self.track_running_stats else (None, None)
        y, mean, var = F.batch_norm_with_statistics(input, *running, self.weight, self.bias, use_batch,
                                                    self.momentum, self.eps, tracked)
        if tracking:
            self.running_mean, self.running_var = mean, var
        return y

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalization of ``(N, C)`` or ``(N, C, L)`` inputs."""
    _ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization of ``(N, C, H, W)`` inputs."""
    _ranks = (4,)


class BatchNorm3d(_BatchNorm):
    """Batch normalization of ``(N, C, D, H, W)`` inputs."""
    _ranks = (5,)


class SyncBatchNorm(_BatchNorm):
    """Batch normalization of ``(N, C, *)`` inputs over the whole batch.  torch's version gathers
    the statistics of a batch split over processes; an xpnn array split over devices (a sharded
    JAX array, a Dask array) is one array, so its statistics are already the whole batch's.
    ``process_group`` is kept for torch's signature; ``convert_sync_batchnorm`` swaps a model's
    ``BatchNorm*d`` for it, as torch's does."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, process_group: Any = None, *, bias: bool = True, like: Any = None,
                 dtype: Any = None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, bias=bias, like=like, dtype=dtype)
        self.process_group = process_group

    def _check_rank(self, input: Array) -> None:
        if input.ndim < 2:
            raise ValueError(f"xpnn.torch_nn.SyncBatchNorm: expected at least 2D input (got {input.ndim}D input)")
        if input.shape[1] == 0:
            raise ValueError("xpnn.torch_nn.SyncBatchNorm: number of input channels should be non-zero")

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group: Any = None) -> Module:
        """``module`` with every ``BatchNorm1d/2d/3d`` in it replaced by a ``SyncBatchNorm`` that
        holds its parameters, buffers and mode (a new module where ``module`` is itself one)."""
        converted = module
        if isinstance(module, _BatchNorm) and not isinstance(module, _InstanceNorm):
            converted = cls(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, process_group, bias=module.bias is not None)
            for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                setattr(converted, name, getattr(module, name))
            converted.training = module.training
        for name, child in module.named_children():
            converted.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return converted


class _InstanceNorm(_BatchNorm):
    """torch's ``_InstanceNorm``: each sample's statistics per channel over its spatial dims (the
    running statistics, where tracked, in eval); ``affine`` and ``track_running_stats`` off by
    default.  Unbatched inputs are one sample; ``num_features`` must match the channels only
    with ``affine`` (torch warns otherwise)."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = False,
                 track_running_stats: bool = False, *, bias: bool = True, like: Any = None, dtype: Any = None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, bias=bias, like=like, dtype=dtype)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, local_metadata: dict[str, Any],
                              strict: bool, missing_keys: list[str], unexpected_keys: list[str],
                              error_msgs: list[str]) -> None:
        """torch's: running statistics in a state_dict of no version (saved before torch 0.4),
        for a module that does not track them, are an error (and dropped)."""
        if local_metadata.get("version") is None and not self.track_running_stats:
            found = [prefix + name for name in ("running_mean", "running_var") if prefix + name in state_dict]
            if found:
                klass, names = type(self).__name__, " and ".join(f'"{key}"' for key in found)
                error_msgs.append(f"Unexpected running stats buffer(s) {names} for "
                                  f"{klass} with track_running_stats=False. If state_dict is a checkpoint saved "
                                  f"before 0.4.0, this may be expected because {klass} does not track running stats "
                                  f"by default since 0.4.0. Please remove these keys from state_dict. If the running "
                                  f"stats are actually needed, instead set track_running_stats=True in {klass} to "
                                  f"enable them. See the documentation of {klass} for details.")
                for key in found:
                    state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def forward(self, input: Array) -> Array:
        self._check_rank(input)
        name = type(self).__name__
        unbatched = input.ndim == self._ranks[0]
        channel_dim = 0 if unbatched else 1
        if input.shape[channel_dim] != self.num_features:
            message = (f"expected input's size at dim={channel_dim} to match num_features ({self.num_features}), "
                       f"but got: {input.shape[channel_dim]}.")
            if self.affine:
                raise ValueError(f"xpnn.torch_nn.{name}: {message}")
            warnings.warn(f"xpnn.torch_nn.{name}: {message} num_features is not used because affine=False",
                          stacklevel=2)
        xp = adapter_of(input).xp
        x = xp.expand_dims(input, axis=0) if unbatched else input
        y, mean, var = F.instance_norm_with_statistics(
            x, self.running_mean, self.running_var, self.weight, self.bias,
            self.training or not self.track_running_stats, self.momentum if self.momentum is not None else 0.0,
            self.eps)
        if self.training and self.track_running_stats:
            self.running_mean, self.running_var = mean, var
        return y[0, ...] if unbatched else y


class InstanceNorm1d(_InstanceNorm):
    """Instance normalization of ``(N, C, L)`` or unbatched ``(C, L)`` inputs."""
    _ranks = (2, 3)


class InstanceNorm2d(_InstanceNorm):
    """Instance normalization of ``(N, C, H, W)`` or unbatched ``(C, H, W)`` inputs."""
    _ranks = (3, 4)


class InstanceNorm3d(_InstanceNorm):
    """Instance normalization of ``(N, C, D, H, W)`` or unbatched ``(C, D, H, W)`` inputs."""
    _ranks = (4, 5)


# -- convolution and pooling --------------------------------------------------------------------

#: Conv's padding modes by the ``pad`` primitive's names (None: the convolution's own zeros).
_PADDING_MODES = {"zeros": None, **{mode: name for mode, name in F._PAD_MODES.items() if mode != "constant"}}


class _Conv(Module):
    _rank = 2
    _transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: int | Sequence[int] | str = 0,
                 dilation: int | Sequence[int] = 1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 *, like: Any = None, dtype: Any = None, key: Array | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"xpnn.torch_nn.{name}: in_channels ({in_channels}) and out_channels ({out_channels}) "
                             f"must be divisible by groups ({groups})")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"xpnn.torch_nn.{name}: padding_mode must be one of {sorted(_PADDING_MODES)}, "
                             f"got {padding_mode!r}")
        rank = self._rank
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = F._tuple(kernel_size, rank, name, "kernel_size")
        self.stride = F._tuple(stride, rank, name, "stride")
        self.padding = padding if isinstance(padding, str) else F._tuple(padding, rank, name, "padding")
        self.dilation = F._tuple(dilation, rank, name, "dilation")
        self.padding_mode = padding_mode
        shape = ((in_channels, out_channels // groups) if self._transposed else
                 (out_channels, in_channels // groups)) + self.kernel_size
        fan_in = shape[1] * math.prod(self.kernel_size)
        make = Factory(like, dtype, key)
        self.weight = Parameter(make.kaiming_uniform(shape, fan_in))
        if bias:
            self.bias = Parameter(make.fan_in_bias((out_channels,), fan_in))
        else:
            self.register_parameter("bias", None)

    reset_parameters = _reset_fan_in

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != (0,) * self._rank:
            text += f", padding={self.padding}"
        if getattr(self, "output_padding", (0,) * self._rank) != (0,) * self._rank:
            text += f", output_padding={self.output_padding}"
        if self.dilation != (1,) * self._rank:
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode}"
        return text

    def _conv_forward(self, input: Array) -> Array:
        mode = _PADDING_MODES[self.padding_mode]
        padding: Any = self.padding
        if mode is not None:  # the input padded in that mode, then convolved without padding
            leading = ((0, 0),) * (input.ndim - self._rank)
            input = adapter_of(input).pad(input, (*leading, *self._pads()), mode)
            padding = 0
        return _CONVOLUTIONS[self._rank](input, self.weight, self.bias, self.stride, padding, self.dilation,
                                         self.groups)

    def _pads(self) -> list[tuple[int, int]]:
        """The (low, high) padding per spatial dimension ('same': torch's, the odd one at the end)."""
        if self.padding == "valid":
            return [(0, 0)] * self._rank
        if self.padding == "same":
            return list(F.same_padding(self.kernel_size, self.dilation))
        return [(p, p) for p in self.padding]


_CONVOLUTIONS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_TRANSPOSED_CONVOLUTIONS = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


class Conv1d(_Conv):
    """1-d convolution of ``(N, C, L)``: ``weight`` ``(out, in // groups, k)`` ~ kaiming_uniform(a=sqrt(5)),
    ``bias`` ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    _rank = 1

    def forward(self, input: Array) -> Array:
        return self._conv_forward(input)


class Conv2d(_Conv):
    """2-d convolution of ``(N, C, H, W)``: ``weight`` ``(out, in // groups, kh, kw)`` ~
    kaiming_uniform(a=sqrt(5)), ``bias`` ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""

    def forward(self, input: Array) -> Array:
        return self._conv_forward(input)


class Conv3d(_Conv):
    """3-d convolution of ``(N, C, D, H, W)``: ``weight`` ``(out, in // groups, kd, kh, kw)`` ~
    kaiming_uniform(a=sqrt(5)), ``bias`` ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    _rank = 3

    def forward(self, input: Array) -> Array:
        return self._conv_forward(input)


class _ConvTranspose(_Conv):
    """A transposed convolution: ``weight`` ``(in, out // groups, *kernel_size)``."""
    _transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
                 output_padding: int | Sequence[int] = 0, groups: int = 1, bias: bool = True,
                 dilation: int | Sequence[int] = 1, padding_mode: str = "zeros", *, like: Any = None,
                 dtype: Any = None, key: Array | None = None) -> None:
        name = type(self).__name__
        if padding_mode != "zeros":
            raise ValueError(f"xpnn.torch_nn.{name}: only padding_mode='zeros' is supported (as torch), "
                             f"got {padding_mode!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, like=like, dtype=dtype, key=key)
        self.output_padding = F._tuple(output_padding, self._rank, name, "output_padding")

    def forward(self, input: Array, output_size: Sequence[int] | None = None) -> Array:
        """The transposed convolution; ``output_size`` (the spatial sizes, or with the batch and
        channel sizes in front) picks the ``output_padding`` that gives it, as torch's does."""
        output_padding = self.output_padding if output_size is None else self._output_padding(input, output_size)
        return _TRANSPOSED_CONVOLUTIONS[self._rank](input, self.weight, self.bias, self.stride, self.padding,
                                                    output_padding, self.groups, self.dilation)

    def _output_padding(self, input: Array, output_size: Sequence[int]) -> tuple[int, ...]:
        """The output padding that makes the output's spatial sizes ``output_size``: each between
        the size without padding, (n - 1) s - 2 p + d (k - 1) + 1, and that plus s - 1."""
        rank, name = self._rank, type(self).__name__
        sizes, spatial = tuple(output_size), tuple(input.shape[input.ndim - rank:])
        if len(sizes) == input.ndim:  # (N, C, *spatial) or (C, *spatial): the spatial sizes at the end
            sizes = sizes[len(sizes) - rank:]
        if len(sizes) != rank:
            raise ValueError(f"xpnn.torch_nn.{name}: for a {input.ndim}-d input, output_size must have {rank} "
                             f"or {input.ndim} elements, got {output_size!r}")
        smallest = [(n - 1) * s - 2 * p + d * (k - 1) + 1 for n, s, p, d, k in
                    zip(spatial, self.stride, self.padding, self.dilation, self.kernel_size)]
        largest = [size + s - 1 for size, s in zip(smallest, self.stride)]
        if any(not low <= size <= high for size, low, high in zip(sizes, smallest, largest)):
            raise ValueError(f"xpnn.torch_nn.{name}: requested an output size of {list(sizes)}, but valid "
                             f"sizes range from {smallest} to {largest} (for an input of {list(spatial)})")
        return tuple(size - low for size, low in zip(sizes, smallest))


class ConvTranspose1d(_ConvTranspose):
    """1-d transposed convolution: ``weight`` ``(in, out // groups, k)``."""
    _rank = 1


class ConvTranspose2d(_ConvTranspose):
    """2-d transposed convolution: ``weight`` ``(in, out // groups, kh, kw)``."""


class ConvTranspose3d(_ConvTranspose):
    """3-d transposed convolution: ``weight`` ``(in, out // groups, kd, kh, kw)``."""
    _rank = 3


class _MaxPool(Module):
    """The max over windows of ``(N, C, *spatial)`` (``max_pool1d/2d/3d``)."""

    _pool: Any = None

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.dilation, self.return_indices, self.ceil_mode = padding, dilation, return_indices, ceil_mode

    def forward(self, input: Array) -> Array | tuple[Array, Array]:
        return type(self)._pool(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                                self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPool):
    """The max over windows of ``(N, C, L)``."""
    _pool = F.max_pool1d


class MaxPool2d(_MaxPool):
    """The max over windows of ``(N, C, H, W)``."""
    _pool = F.max_pool2d


class MaxPool3d(_MaxPool):
    """The max over windows of ``(N, C, D, H, W)``."""
    _pool = F.max_pool3d


class AvgPool1d(Module):
    """The mean over windows of ``(N, C, L)`` (its window arguments kept as 1-tuples, as torch's)."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True) -> None:
        super().__init__()
        self.kernel_size = F._tuple(kernel_size, 1, "AvgPool1d", "kernel_size")
        self.stride = F._tuple(stride if stride is not None else kernel_size, 1, "AvgPool1d", "stride")
        self.padding = F._tuple(padding, 1, "AvgPool1d", "padding")
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, input: Array) -> Array:
        return F.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class _AvgPool(Module):
    """The mean over windows of ``(N, C, *spatial)`` (``avg_pool2d/3d``)."""

    _pool: Any = None

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, input: Array) -> Array:
        return type(self)._pool(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(_AvgPool):
    """The mean over windows of ``(N, C, H, W)``."""
    _pool = F.avg_pool2d


class AvgPool3d(_AvgPool):
    """The mean over windows of ``(N, C, D, H, W)``."""
    _pool = F.avg_pool3d


class _MaxUnpool(Module):
    """The inverse of a max pool: values at their indices of zero planes (``max_unpool1d/2d/3d``);
    the window arguments kept as tuples, as torch's."""

    _pool: Any = None
    _rank = 0

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0) -> None:
        super().__init__()
        name, rank = type(self).__name__, type(self)._rank
        self.kernel_size = F._tuple(kernel_size, rank, name, "kernel_size")
        self.stride = F._tuple(stride if stride is not None else kernel_size, rank, name, "stride")
        self.padding = F._tuple(padding, rank, name, "padding")

    def forward(self, input: Array, indices: Array, output_size: Any = None) -> Array:
        return type(self)._pool(input, indices, self.kernel_size, self.stride, self.padding, output_size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(_MaxUnpool):
    """The inverse of ``MaxPool1d``."""
    _pool, _rank = F.max_unpool1d, 1


class MaxUnpool2d(_MaxUnpool):
    """The inverse of ``MaxPool2d``."""
    _pool, _rank = F.max_unpool2d, 2


class MaxUnpool3d(_MaxUnpool):
    """The inverse of ``MaxPool3d``."""
    _pool, _rank = F.max_unpool3d, 3


class _FractionalMaxPool(Module):
    """The max over pseudo-randomly placed windows (``fractional_max_pool2d/3d``); a given
    ``_random_samples`` is a buffer, as torch keeps it (then the windows are fixed)."""

    _pool: Any = None
    _rank = 2

    def __init__(self, kernel_size: Any, output_size: Any = None, output_ratio: Any = None,
                 return_indices: bool = False, _random_samples: Array | None = None) -> None:
        super().__init__()
        name, rank = type(self).__name__, type(self)._rank
        if output_size is None and output_ratio is None:
            raise ValueError(f"xpnn.torch_nn.{name} requires specifying either an output size, or a pooling ratio")
        if output_size is not None and output_ratio is not None:
            raise ValueError(f"xpnn.torch_nn.{name}: only one of output_size and output_ratio may be specified")
        ratios = None if output_ratio is None else (
            (output_ratio,) * rank if isinstance(output_ratio, (int, float)) else tuple(output_ratio))
        if ratios is not None and not all(0 < r < 1 for r in ratios):
            raise ValueError(f"xpnn.torch_nn.{name}: output_ratio must be between 0 and 1 (got {output_ratio})")
        self.kernel_size = F._tuple(kernel_size, rank, name, "kernel_size")
        self.output_size = None if output_size is None else F._tuple(output_size, rank, name, "output_size")
        self.output_ratio, self.return_indices = ratios, return_indices
        self.register_buffer("_random_samples", _random_samples)

    def forward(self, input: Array) -> Any:
        return type(self)._pool(input, self.kernel_size, self.output_size, self.output_ratio, self.return_indices,
                                _random_samples=self._random_samples)


class FractionalMaxPool2d(_FractionalMaxPool):
    """The max over pseudo-randomly placed windows of ``(N, C, H, W)``."""
    _pool, _rank = F.fractional_max_pool2d, 2


class FractionalMaxPool3d(_FractionalMaxPool):
    """The max over pseudo-randomly placed windows of ``(N, C, T, H, W)``."""
    _pool, _rank = F.fractional_max_pool3d, 3


class _LPPool(Module):
    """The p-norm over windows of ``(N, C, *spatial)`` (``lp_pool1d/2d/3d``)."""

    _pool: Any = None

    def __init__(self, norm_type: float, kernel_size: Any, stride: Any = None, ceil_mode: bool = False) -> None:
        super().__init__()
        self.norm_type, self.kernel_size, self.stride, self.ceil_mode = norm_type, kernel_size, stride, ceil_mode

    def forward(self, input: Array) -> Array:
        return type(self)._pool(input, float(self.norm_type), self.kernel_size, self.stride, self.ceil_mode)

    def extra_repr(self) -> str:
        return (f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"ceil_mode={self.ceil_mode}")


class LPPool1d(_LPPool):
    """(sum of x^p over each window of ``(N, C, L)``)^(1/p)."""
    _pool = F.lp_pool1d


class LPPool2d(_LPPool):
    """(sum of x^p over each window of ``(N, C, H, W)``)^(1/p)."""
    _pool = F.lp_pool2d


class LPPool3d(_LPPool):
    """(sum of x^p over each window of ``(N, C, D, H, W)``)^(1/p)."""
    _pool = F.lp_pool3d

class _AdaptiveAvgPool(Module):
    """The mean over the windows of an ``output_size`` grid (``adaptive_avg_pool1d/2d/3d``)."""

    _pool: Any = None

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, input: Array) -> Array:
        return type(self)._pool(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPool):
    """The mean over ``output_size`` windows that split L of ``(N, C, L)``."""
    _pool = F.adaptive_avg_pool1d


class AdaptiveAvgPool2d(_AdaptiveAvgPool):
    """The mean over the windows of an ``output_size`` grid over ``(N, C, H, W)`` (None keeps a size)."""
    _pool = F.adaptive_avg_pool2d


class AdaptiveAvgPool3d(_AdaptiveAvgPool):
    """The mean over the windows of an ``output_size`` grid over ``(N, C, D, H, W)``."""
    _pool = F.adaptive_avg_pool3d


class _AdaptiveMaxPool(_AdaptiveAvgPool):
    """The max over the windows of an ``output_size`` grid, and with ``return_indices`` where
    each is (``adaptive_max_pool1d/2d/3d``)."""

    def __init__(self, output_size: Any, return_indices: bool = False) -> None:
        super().__init__(output_size)
        self.return_indices = return_indices

    def forward(self, input: Array) -> Array | tuple[Array, Array]:
        return type(self)._pool(input, self.output_size, self.return_indices)


class AdaptiveMaxPool1d(_AdaptiveMaxPool):
    """The max over ``output_size`` windows that split L of ``(N, C, L)``."""
    _pool = F.adaptive_max_pool1d


class AdaptiveMaxPool2d(_AdaptiveMaxPool):
    """The max over the windows of an ``output_size`` grid over ``(N, C, H, W)`` (None keeps a size)."""
    _pool = F.adaptive_max_pool2d


class AdaptiveMaxPool3d(_AdaptiveMaxPool):
    """The max over the windows of an ``output_size`` grid over ``(N, C, D, H, W)``."""
    _pool = F.adaptive_max_pool3d


# -- padding ------------------------------------------------------------------------------------

class _PadNd(Module):
    """``F.pad`` of the last ``_rank`` dims in ``_mode``: ``padding`` an int for every side, or
    (left, right, top, bottom, front, back)'s first 2 ``_rank``."""

    _rank = 1
    _mode = "reflect"

    def __init__(self, padding: int | Sequence[int]) -> None:
        super().__init__()
        sides = 2 * self._rank
        self.padding = (padding,) * sides if isinstance(padding, int) else tuple(padding)
        if len(self.padding) != sides:
            raise ValueError(f"xpnn.torch_nn.{type(self).__name__}: padding must be an int or {sides} ints, got "
                             f"{padding!r}")

    def forward(self, input: Array) -> Array:
        return F.pad(input, self.padding, self._mode)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class _ConstantPadNd(_PadNd):
    _mode = "constant"

    def __init__(self, padding: int | Sequence[int], value: float) -> None:
        super().__init__(padding)
        self.value = value

    def forward(self, input: Array) -> Array:
        return F.pad(input, self.padding, "constant", self.value)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class ConstantPad1d(_ConstantPadNd):
    """Pads the last dim with ``value``."""


class ConstantPad2d(_ConstantPadNd):
    """Pads the last 2 dims with ``value``."""
    _rank = 2


class ConstantPad3d(_ConstantPadNd):
    """Pads the last 3 dims with ``value``."""
    _rank = 3


class _ZeroPadNd(_ConstantPadNd):
    def __init__(self, padding: int | Sequence[int]) -> None:
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ZeroPad1d(_ZeroPadNd):
    """Pads the last dim with zeros."""


class ZeroPad2d(_ZeroPadNd):
    """Pads the last 2 dims with zeros."""
    _rank = 2


class ZeroPad3d(_ZeroPadNd):
    """Pads the last 3 dims with zeros."""
    _rank = 3


class ReflectionPad1d(_PadNd):
    """Pads the last dim with its reflection (the edge not repeated)."""


class ReflectionPad2d(_PadNd):
    """Pads the last 2 dims with their reflection (the edge not repeated)."""
    _rank = 2


class ReflectionPad3d(_PadNd):
    """Pads the last 3 dims with their reflection (the edge not repeated)."""
    _rank = 3


class ReplicationPad1d(_PadNd):
    """Pads the last dim with its edge values."""
    _mode = "replicate"


class ReplicationPad2d(_PadNd):
    """Pads the last 2 dims with their edge values."""
    _rank, _mode = 2, "replicate"


class ReplicationPad3d(_PadNd):
    """Pads the last 3 dims with their edge values."""
    _rank, _mode = 3, "replicate"


class CircularPad1d(_PadNd):
    """Pads the last dim by wrapping it around."""
    _mode = "circular"


class CircularPad2d(_PadNd):
    """Pads the last 2 dims by wrapping them around."""
    _rank, _mode = 2, "circular"


class CircularPad3d(_PadNd):
    """Pads the last 3 dims by wrapping them around."""
    _rank, _mode = 3, "circular"


# -- rearrangements and distances ---------------------------------------------------------------

class Unflatten(Module):
    """Dim ``dim`` of the input split into ``unflattened_size``."""

    def __init__(self, dim: int, unflattened_size: Sequence[int]) -> None:
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, input: Array) -> Array:
        axis = self.dim + input.ndim if self.dim < 0 else self.dim
        if not 0 <= axis < input.ndim or input.shape[axis] != math.prod(self.unflattened_size):
            raise ValueError(f"xpnn.torch_nn.Unflatten: unflattened_size {self.unflattened_size} must multiply to "
                             f"the size of dim {self.dim} of the input, of shape {tuple(input.shape)}")
        shape = (*input.shape[:axis], *self.unflattened_size, *input.shape[axis + 1:])
        return adapter_of(input).xp.reshape(input, shape)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class PixelShuffle(Module):
    """``(*, C r^2, H, W)`` into ``(*, C, H r, W r)`` (``F.pixel_shuffle``)."""

    def __init__(self, upscale_factor: int) -> None:
        super().__init__()
        self.upscale_factor = upscale_factor

    def forward(self, input: Array) -> Array:
        return F.pixel_shuffle(input, self.upscale_factor)

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    """``(*, C, H r, W r)`` into ``(*, C r^2, H, W)`` (``F.pixel_unshuffle``)."""

    def __init__(self, downscale_factor: int) -> None:
        super().__init__()
        self.downscale_factor = downscale_factor

    def forward(self, input: Array) -> Array:
        return F.pixel_unshuffle(input, self.downscale_factor)

    def extra_repr(self) -> str:
        return f"downscale_factor={self.downscale_factor}"


class ChannelShuffle(Module):
    """The channels regrouped across ``groups`` (``F.channel_shuffle``)."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, input: Array) -> Array:
        return F.channel_shuffle(input, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class CosineSimilarity(Module):
    """The cosine of the angle between x1 and x2 along ``dim`` (``F.cosine_similarity``)."""

    def __init__(self, dim: int = 1, eps: float = 1e-8) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x1: Array, x2: Array) -> Array:
        return F.cosine_similarity(x1, x2, self.dim, self.eps)


class PairwiseDistance(Module):
    """||x1 - x2 + eps||_p along the last dim (``F.pairwise_distance``)."""

    def __init__(self, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> None:
        super().__init__()
        self.norm, self.eps, self.keepdim = p, eps, keepdim

    def forward(self, x1: Array, x2: Array) -> Array:
        return F.pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)


class Upsample(Module):
    """``F.interpolate`` to ``size`` or by ``scale_factor`` in ``mode``."""

    def __init__(self, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                 align_corners: bool | None = None, recompute_scale_factor: bool | None = None) -> None:
        super().__init__()
        self.size = size
        self.scale_factor = (None if scale_factor is None else tuple(float(f) for f in scale_factor)
                             if isinstance(scale_factor, (tuple, list)) else float(scale_factor))
        self.mode, self.align_corners, self.recompute_scale_factor = mode, align_corners, recompute_scale_factor

    def forward(self, input: Array) -> Array:
        return F.interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                             recompute_scale_factor=self.recompute_scale_factor)

    def extra_repr(self) -> str:
        shown = f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None else f"size={self.size!r}"
        return f"{shown}, mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """``Upsample`` in mode 'nearest' of ``(N, C, H, W)``."""

    def __init__(self, size: Any = None, scale_factor: Any = None) -> None:
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """``Upsample`` in mode 'bilinear' with ``align_corners=True`` of ``(N, C, H, W)``."""

    def __init__(self, size: Any = None, scale_factor: Any = None) -> None:
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


class DataParallel(Module):
    """``module`` as ``torch.nn.DataParallel`` holds it where torch finds no accelerator:
    ``forward`` calls it, and the state_dict's keys begin with ``module.``.  xpnn spreads a batch
    over devices through its arrays (a sharded JAX array or a Dask array runs through any
    module as it is), not by copying the module per device, so ``device_ids`` are refused."""

    def __init__(self, module: Module, device_ids: Sequence[Any] | None = None, output_device: Any = None,
                 dim: int = 0) -> None:
        super().__init__()
        if device_ids:
            raise ValueError(f"xpnn.torch_nn.DataParallel: device_ids must be None or empty (xpnn splits a batch over "
                             f"devices through sharded JAX or Dask arrays), got {device_ids!r}")
        self.module, self.device_ids, self.dim = module, [], dim

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        return self.module(*inputs, **kwargs)


class Unfold(Module):
    """The sliding windows of ``(N, C, H, W)`` as columns ``(N, C kh kw, L)`` (``F.unfold``)."""

    def __init__(self, kernel_size: Any, dilation: Any = 1, padding: Any = 0, stride: Any = 1) -> None:
        super().__init__()
        self.kernel_size, self.dilation, self.padding, self.stride = kernel_size, dilation, padding, stride

    def forward(self, input: Array) -> Array:
        return F.unfold(input, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, dilation={self.dilation}, padding={self.padding}, stride={self.stride}"


class Fold(Unfold):
    """Columns ``(N, C kh kw, L)`` summed back into ``(N, C, *output_size)`` (``F.fold``)."""

    def __init__(self, output_size: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
                 stride: Any = 1) -> None:
        super().__init__(kernel_size, dilation, padding, stride)
        self.output_size = output_size

    def forward(self, input: Array) -> Array:
        return F.fold(input, self.output_size, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, {super().extra_repr()}"

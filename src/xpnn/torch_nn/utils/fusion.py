"""``torch.nn.utils``' folding of an eval-mode batch norm into the convolution or linear layer
before it: y = bn(conv(x)) = conv'(x) with

    w' = w * gamma / sqrt(var + eps)   (per output channel)
    b' = (b - mean) * gamma / sqrt(var + eps) + beta
"""
from __future__ import annotations

import copy
from typing import Any, TypeVar

from xpnn._dispatch import adapter_of
from xpnn._types import Array
from xpnn.torch_nn.module import Module, Parameter

__all__ = ["fuse_conv_bn_eval", "fuse_conv_bn_weights", "fuse_linear_bn_eval", "fuse_linear_bn_weights"]

Fused = TypeVar("Fused", bound=Module)


def _bn_scale_and_shift(bn_rm: Array, bn_rv: Array, bn_eps: float, bn_w: Array | None,
                        bn_b: Array | None) -> tuple[Array, Array]:
    """gamma / sqrt(var + eps) and beta (ones and zeros where the norm has no affine part)."""
    xp = adapter_of(bn_rm).xp
    scale = 1.0 / xp.sqrt(bn_rv + bn_eps)
    return (scale if bn_w is None else bn_w * scale), (xp.zeros_like(bn_rm) if bn_b is None else bn_b)


def _fused_bias(bias: Array | None, bn_rm: Array, scale: Array, shift: Array) -> Array:
    return ((adapter_of(bn_rm).xp.zeros_like(bn_rm) if bias is None else bias) - bn_rm) * scale + shift


def fuse_conv_bn_weights(conv_w: Array, conv_b: Array | None, bn_rm: Array, bn_rv: Array, bn_eps: float,
                         bn_w: Array | None, bn_b: Array | None, transpose: bool = False) -> tuple[Array, Array]:
    """The fused convolution's weight and bias (``torch.nn.utils.fuse_conv_bn_weights``), in
    ``conv_w``'s dtype; ``transpose``: a transposed convolution's weight ``(in, out, *k)``."""
    ops = adapter_of(conv_w)
    xp = ops.xp
    scale, shift = _bn_scale_and_shift(bn_rm, bn_rv, bn_eps, bn_w, bn_b)
    shape = ((1, -1) if transpose else (-1, 1)) + (1,) * (conv_w.ndim - 2)
    weight = xp.astype(conv_w * xp.reshape(scale, shape), conv_w.dtype)
    bias = xp.astype(_fused_bias(conv_b, bn_rm, scale, shift), (conv_w if conv_b is None else conv_b).dtype)
    return ops.trainable(weight), ops.trainable(bias)


def fuse_linear_bn_weights(linear_w: Array, linear_b: Array | None, bn_rm: Array, bn_rv: Array, bn_eps: float,
                           bn_w: Array | None, bn_b: Array | None) -> tuple[Array, Array]:
    """The fused linear layer's weight and bias (``torch.nn.utils.fuse_linear_bn_weights``): the
    convolution's formula, a linear weight ``(out, in)`` being a kernel of no spatial dims."""
    return fuse_conv_bn_weights(linear_w, linear_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b)


def _checked_eval(name: str, layer: Module, bn: Module) -> None:
    if layer.training or bn.training:
        raise ValueError(f"xpnn.torch_nn.utils.{name}: Fusion only for eval! (call .eval() on both modules)")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"xpnn.torch_nn.utils.{name}: the batch norm must track running statistics")


def _with(layer: Fused, weight: Array, bias: Array) -> Fused:
    fused = copy.deepcopy(layer)
    fused.weight, fused.bias = Parameter(weight), Parameter(bias)
    return fused


def fuse_conv_bn_eval(conv: Fused, bn: Any, transpose: bool = False) -> Fused:
    """A copy of the eval-mode ``conv`` that computes ``bn(conv(x))`` (``torch.nn.utils.fuse_conv_bn_eval``)."""
    _checked_eval("fuse_conv_bn_eval", conv, bn)
    return _with(conv, *fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps,
                                             bn.weight, bn.bias, transpose))


def fuse_linear_bn_eval(linear: Fused, bn: Any) -> Fused:
    """A copy of the eval-mode ``linear`` that computes ``bn(linear(x))``
    (``torch.nn.utils.fuse_linear_bn_eval``); the norm has ``out_features`` features, or one."""
    _checked_eval("fuse_linear_bn_eval", linear, bn)
    if linear.out_features != bn.num_features and bn.num_features != 1:
        raise ValueError("xpnn.torch_nn.utils.fuse_linear_bn_eval: To fuse, linear.out_features must equal "
                         f"bn.num_features or bn.num_features must be 1, got {linear.out_features} and "
                         f"{bn.num_features}")
    return _with(linear, *fuse_linear_bn_weights(linear.weight, linear.bias, bn.running_mean, bn.running_var, bn.eps,
                                                 bn.weight, bn.bias))

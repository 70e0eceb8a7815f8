"""Conformance of ``xpnn.torch_nn`` with torch.nn itself: every module built in torch, its
``state_dict`` loaded into the xpnn twin on the backend, and torch's outputs and updated state
(BatchNorm's running statistics) back; every ``xpnn.torch_nn.functional`` function against
``torch.nn.functional``; a small CNN and a 2-layer TransformerEncoder from torch.nn, and a model
of ModuleList/ModuleDict containers.  The cases are the tests' too (tests/test_torch_nn.py).
"""
from __future__ import annotations

import importlib

import math
from typing import Any

import numpy as np

import xpnn.torch_nn as nn
import xpnn.torch_nn.functional as F
from xpnn.conformance.backends import Backend, load
from xpnn.conformance.compare import Checked, Comparison, compare, describe

TOLERANCE = {"float32": (3e-5, 3e-6), "float64": (1e-11, 1e-12)}


def floats(*shape: int, seed: int = 0, scale: float = 2.0) -> np.ndarray:
    values = np.random.default_rng(seed).standard_normal(shape) * scale
    flat = values.reshape(-1)
    flat[:4] = [0.0, -0.0, 1.0, -1.0][:flat.size]  # kinks and zeros of the activations
    return values


def indices(*shape: int, high: int = 10) -> np.ndarray:
    return np.random.default_rng(1).integers(0, high, shape)


#: name, constructor args, kwargs, inputs (numpy; float inputs take the check's dtype), forward kwargs, train mode.
#: Pooled with indices: equal maxima in a window (torch takes the first), a NaN, infinities.
_TIES = np.round(floats(2, 3, 7, 6, seed=5))
_TIES[0, 0, 0, :3] = [np.nan, np.inf, -np.inf]

def probabilities(*shape: int, seed: int = 2, axis: int | None = None) -> np.ndarray:
    """Values in (0, 1), or with ``axis`` distributions along it."""
    values = np.random.default_rng(seed).random(shape) * 0.98 + 0.01
    return values if axis is None else values / values.sum(axis=axis, keepdims=True)


def labels(*shape: int, seed: int = 3) -> np.ndarray:
    """Binary targets 0.0 and 1.0."""
    return (np.random.default_rng(seed).random(shape) > 0.5).astype(np.float64)


#: Log-probabilities over dim 1, as a classifier's log_softmax gives them.
_LOG_P = np.log(probabilities(4, 5, 3, axis=1))

#: Labels 1 and -1.
_SIGNS = np.where(labels(4, 5, seed=6) > 0, 1.0, -1.0)

#: Multi-label targets: each row's class indices up to its first -1 (a repeat, a row of none,
#: a row of all, indices after the -1 that do not count).
_LISTED = np.array([[3, 0, 3, -1, 1], [-1, 2, 0, 0, 0], [4, 2, 0, 1, 3], [1, -1, 4, -1, 2]])

def window_indices(pooled: tuple[int, ...], kernel: tuple[int, ...], seed: int = 7) -> np.ndarray:
    """Flat indices of ``(N, C, *pooled)`` into the unpooled plane of non-overlapping windows of
    ``kernel`` (stride = kernel), one random position in each window (as max_pool returns them)."""
    rng = np.random.default_rng(seed)
    plane = tuple(p * k for p, k in zip(pooled, kernel))
    flat = np.zeros(pooled, np.int64)
    for axis, (p, k) in enumerate(zip(pooled, kernel)):
        start = np.arange(p).reshape((p,) + (1,) * (len(pooled) - 1 - axis)) * k
        flat = flat * plane[axis] + start + rng.integers(0, k, pooled)
    return np.broadcast_to(flat, (3, 2, *pooled)).copy()


#: CTC: log-probabilities (T=7, N=3, C=5), padded targets with a repeat, their lengths (a sample
#: too short for its target, so infinite), and the same targets concatenated.
_CTC_LOG_P = np.log(probabilities(7, 3, 5, seed=8, axis=2))
_CTC_TARGETS = np.array([[1, 1, 3], [4, 2, 0], [2, 3, 3]])
_CTC_LENGTHS = (np.array([7, 5, 2]), np.array([3, 2, 3]))
_CTC_CONCATENATED = np.array([1, 1, 3, 4, 2, 2, 3, 3])

#: Fractional max pooling's samples (N=3, C=2, one per spatial axis), float32 as torch.nn keeps them.
_SAMPLES = probabilities(3, 2, 3, seed=4).astype(np.float32)

#: grid_sample's sampling points (N=3, 2 by 4 of them, (x, y)), some beyond [-1, 1], and (x, y, z) ones.
_GRID = np.random.default_rng(9).uniform(-1.3, 1.3, (3, 2, 4, 2))
_GRID_3D = np.random.default_rng(9).uniform(-1.3, 1.3, (3, 2, 2, 3, 3))

#: Logits with one class ahead by 100 in each row, beyond any Gumbel noise's reach, so that a hard
#: Gumbel-softmax sample is that class whatever the noise.
_DECIDED = floats(5, 4) + 100.0 * (np.arange(4) == np.arange(5)[:, None] % 4)

#: Self-attention's one array, given as query, key and value (torch's packed in-projection).
_SELF = floats(5, 2, 8, seed=4)

MODULE_CASES = [
    ("ELU", (), {}, [floats(2, 3, 5)], {}, False),
    ("ELU", (0.5,), {}, [floats(2, 3, 5)], {}, False),
    ("CELU", (), {"alpha": 1.5}, [floats(2, 3, 5)], {}, False),
    ("GELU", (), {}, [floats(2, 3, 5)], {}, False),
    ("GELU", (), {"approximate": "tanh"}, [floats(2, 3, 5)], {}, False),
    ("GLU", (), {"dim": 1}, [floats(2, 4, 5)], {}, False),
    ("Hardshrink", (0.3,), {}, [floats(2, 3, 5)], {}, False),
    ("Hardsigmoid", (), {}, [floats(2, 3, 5, scale=4.0)], {}, False),
    ("Hardswish", (), {}, [floats(2, 3, 5, scale=4.0)], {}, False),
    ("Hardtanh", (-2.0, 0.5), {}, [floats(2, 3, 5)], {}, False),
    ("LeakyReLU", (0.2,), {}, [floats(2, 3, 5)], {}, False),
    ("LogSigmoid", (), {}, [floats(2, 3, 5, scale=10.0)], {}, False),
    ("Mish", (), {}, [floats(2, 3, 5)], {}, False),
    ("PReLU", (), {}, [floats(2, 3, 5)], {}, False),
    ("PReLU", (3,), {"init": 0.1}, [floats(2, 3, 5)], {}, False),
    ("ReLU", (), {}, [floats(2, 3, 5)], {}, False),
    ("ReLU6", (), {}, [floats(2, 3, 5, scale=5.0)], {}, False),
    ("RReLU", (0.1, 0.3), {}, [floats(2, 3, 5)], {}, False),
    ("SELU", (), {}, [floats(2, 3, 5)], {}, False),
    ("SiLU", (), {}, [floats(2, 3, 5)], {}, False),
    ("Sigmoid", (), {}, [floats(2, 3, 5)], {}, False),
    ("Softplus", (), {"beta": 2.0, "threshold": 5.0}, [floats(2, 3, 5, scale=4.0)], {}, False),
    ("Softplus", (), {}, [floats(2, 3, 5, scale=30.0)], {}, False),
    ("Softshrink", (0.3,), {}, [floats(2, 3, 5)], {}, False),
    ("Softsign", (), {}, [floats(2, 3, 5)], {}, False),
    ("Tanh", (), {}, [floats(2, 3, 5)], {}, False),
    ("Tanhshrink", (), {}, [floats(2, 3, 5)], {}, False),
    ("Threshold", (0.1, 20.0), {}, [floats(2, 3, 5)], {}, False),
    ("Softmax", (), {"dim": 1}, [floats(2, 3, 5)], {}, False),
    ("Softmin", (), {"dim": 0}, [floats(2, 3, 5)], {}, False),
    ("LogSoftmax", (), {"dim": -1}, [floats(2, 3, 5)], {}, False),
    ("Identity", (), {}, [floats(2, 3)], {}, False),
    ("Linear", (5, 4), {}, [floats(2, 3, 5)], {}, False),
    ("Linear", (5, 4), {"bias": False}, [floats(5)], {}, False),
    ("Bilinear", (5, 3, 4), {}, [floats(2, 5), floats(2, 3, seed=1)], {}, False),
    ("Embedding", (10, 4), {"padding_idx": 2}, [indices(2, 3)], {}, False),
    ("Embedding", (10, 4), {"max_norm": 1.2, "norm_type": 3.0}, [indices(2, 3)], {}, False),
    ("EmbeddingBag", (10, 4), {"padding_idx": 2}, [indices(3, 5)], {}, False),
    ("EmbeddingBag", (10, 4), {"mode": "max", "include_last_offset": True}, [indices(9), np.array([0, 4, 4, 9])], {},
     False),
    ("EmbeddingBag", (10, 4), {"mode": "sum", "max_norm": 1.5}, [indices(9), np.array([0, 2, 3])],
     {"per_sample_weights": floats(9, seed=3)}, False),
    ("Dropout", (0.3,), {}, [floats(2, 3)], {}, False),
    ("Flatten", (), {}, [floats(2, 3, 4, 5)], {}, False),
    ("Flatten", (0, 1), {}, [floats(2, 3, 4)], {}, False),
    ("LayerNorm", (5,), {}, [floats(2, 3, 5)], {}, False),
    ("LayerNorm", ((3, 5),), {"eps": 1e-3, "bias": False}, [floats(2, 3, 5)], {}, False),
    ("RMSNorm", (5,), {}, [floats(2, 3, 5)], {}, False),
    ("RMSNorm", ((3, 5),), {"eps": 1e-3}, [floats(2, 3, 5)], {}, False),
    ("GroupNorm", (2, 4), {}, [floats(2, 4, 3, 3)], {}, False),
    ("GroupNorm", (4, 4), {"affine": False}, [floats(2, 4, 5)], {}, False),
    ("BatchNorm1d", (3,), {}, [floats(4, 3)], {}, True),
    ("BatchNorm1d", (3,), {"momentum": None}, [floats(4, 3, 5)], {}, True),
    ("BatchNorm2d", (4,), {}, [floats(2, 4, 3, 3)], {}, True),
    ("BatchNorm2d", (4,), {}, [floats(2, 4, 3, 3)], {}, False),
    ("BatchNorm2d", (4,), {"affine": False, "track_running_stats": False}, [floats(2, 4, 3, 3)], {}, False),
    ("BatchNorm3d", (3,), {}, [floats(2, 3, 3, 4, 3)], {}, True),
    ("InstanceNorm1d", (3,), {}, [floats(2, 3, 7)], {}, False),
    ("InstanceNorm2d", (4,), {"affine": True, "track_running_stats": True}, [floats(2, 4, 3, 5)], {}, True),
    ("InstanceNorm2d", (4,), {"affine": True, "track_running_stats": True}, [floats(4, 3, 5)], {}, False),
    ("InstanceNorm3d", (2,), {"momentum": None, "track_running_stats": True}, [floats(2, 2, 3, 3, 4)], {}, True),
    ("Conv1d", (3, 4, 3), {"padding": 1}, [floats(2, 3, 7)], {}, False),
    ("Conv1d", (4, 4, 3), {"groups": 2, "padding": "same", "dilation": 2}, [floats(2, 4, 9)], {}, False),
    ("Conv2d", (4, 6, 3), {"stride": 2, "padding": 1}, [floats(2, 4, 7, 6)], {}, False),
    ("Conv2d", (4, 4, (3, 2)), {"groups": 2, "dilation": (2, 1), "bias": False}, [floats(2, 4, 7, 6)], {}, False),
    ("Conv2d", (3, 2, 3), {"padding": 1, "padding_mode": "reflect"}, [floats(3, 5, 5)], {}, False),
    ("Conv2d", (3, 2, 3), {"padding": (1, 2), "padding_mode": "circular"}, [floats(1, 3, 5, 5)], {}, False),
    ("Conv2d", (3, 2, 5), {"padding": "valid"}, [floats(1, 3, 6, 5)], {}, False),
    ("Conv2d", (3, 2, (2, 3)), {"padding": "same", "padding_mode": "replicate"}, [floats(1, 3, 6, 5)], {}, False),
    ("Conv1d", (3, 2, 4), {"padding": "same", "padding_mode": "reflect", "dilation": 2}, [floats(2, 3, 9)], {},
     False),
    ("ConvTranspose2d", (4, 6, 3), {"stride": 2, "padding": 1, "output_padding": 1}, [floats(2, 4, 5, 4)], {},
     False),
    ("ConvTranspose2d", (4, 6, (3, 2)), {"groups": 2, "dilation": 2}, [floats(2, 4, 3, 4)], {}, False),
    ("Conv3d", (2, 4, 3), {"padding": 1, "stride": (1, 2, 1)}, [floats(2, 2, 5, 6, 4)], {}, False),
    ("Conv3d", (3, 3, (2, 3, 1)), {"groups": 3, "padding": "same", "padding_mode": "circular", "bias": False},
     [floats(3, 4, 5, 3)], {}, False),
    ("ConvTranspose1d", (4, 6, 3), {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2}, [floats(2, 4, 5)],
     {}, False),
    ("ConvTranspose3d", (3, 2, (2, 3, 2)), {"stride": (2, 1, 2), "dilation": (1, 2, 1)}, [floats(2, 3, 3, 4, 3)], {},
     False),
    ("MaxPool1d", (3, 2), {"padding": 1, "ceil_mode": True}, [floats(2, 3, 8)], {}, False),
    ("MaxPool1d", (2,), {"return_indices": True, "dilation": 2}, [_TIES[:, :, 0]], {}, False),
    ("MaxPool2d", (3, 2), {"padding": 1}, [floats(2, 3, 7, 6)], {}, False),
    ("MaxPool2d", (2,), {"ceil_mode": True, "dilation": (1, 2)}, [floats(2, 3, 7, 9)], {}, False),
    ("MaxPool2d", (3, 2), {"padding": 1, "return_indices": True, "ceil_mode": True}, [_TIES], {}, False),
    ("MaxPool3d", (3, 2), {"ceil_mode": True}, [floats(2, 2, 5, 6, 7)], {}, False),
    ("MaxPool3d", (2,), {"stride": 1, "padding": 1, "return_indices": True}, [_TIES.reshape(2, 3, 7, 3, 2)], {},
     False),
    ("AvgPool1d", (3, 2), {"padding": 1, "count_include_pad": False, "ceil_mode": True}, [floats(2, 3, 8)], {},
     False),
    ("AvgPool2d", (3, 2), {"padding": 1}, [floats(2, 3, 7, 6)], {}, False),
    ("AvgPool2d", (3, 2), {"padding": 1, "count_include_pad": False, "ceil_mode": True}, [floats(2, 3, 8, 6)], {},
     False),
    ("AvgPool2d", ((2, 3),), {"ceil_mode": True}, [floats(3, 7, 8)], {}, False),
    ("AvgPool2d", (2,), {"divisor_override": 3}, [floats(2, 3, 6, 6)], {}, False),
    ("AvgPool3d", (2,), {"ceil_mode": True, "divisor_override": 3}, [floats(2, 2, 5, 4, 3)], {}, False),
    ("AvgPool3d", ((3, 2, 2), 2, 1), {}, [floats(2, 4, 5, 3)], {}, False),
    ("AdaptiveAvgPool1d", (3,), {}, [floats(2, 3, 8)], {}, False),
    ("AdaptiveAvgPool2d", ((3, None),), {}, [floats(2, 3, 7, 5)], {}, False),
    ("AdaptiveAvgPool2d", (1,), {}, [floats(3, 6, 4)], {}, False),
    ("AdaptiveAvgPool3d", ((2, 3, 4),), {}, [floats(2, 2, 5, 6, 7)], {}, False),
    ("AdaptiveMaxPool1d", (5,), {"return_indices": True}, [_TIES[:, :, 2]], {}, False),
    ("AdaptiveMaxPool2d", ((3, 4),), {"return_indices": True}, [_TIES], {}, False),
    ("AdaptiveMaxPool2d", (2,), {}, [floats(2, 3, 6, 8)], {}, False),
    ("AdaptiveMaxPool3d", ((4, 2, 3),), {"return_indices": True}, [_TIES.reshape(2, 3, 7, 2, 3)], {}, False),
    ("ZeroPad1d", (2,), {}, [floats(2, 3, 4)], {}, False),
    ("ZeroPad2d", ((1, 0, 2, 1),), {}, [floats(2, 3, 4, 5)], {}, False),
    ("ZeroPad3d", ((1, 0, 2, 1, 0, -1),), {}, [floats(2, 3, 4, 5)], {}, False),
    ("ConstantPad1d", ((2, -1), 3.5), {}, [floats(2, 3, 4)], {}, False),
    ("ConstantPad2d", ((0, 1, 3, 2), -2.0), {}, [floats(3, 4, 5)], {}, False),
    ("ConstantPad3d", (1, -0.5), {}, [floats(2, 3, 2, 4)], {}, False),
    ("ReflectionPad1d", (2,), {}, [floats(3, 5)], {}, False),
    ("ReflectionPad2d", ((1, 2, 3, 0),), {}, [floats(2, 3, 4, 5)], {}, False),
    ("ReflectionPad3d", ((1, 0, 2, 1, 0, 2),), {}, [floats(2, 3, 3, 4, 5)], {}, False),
    ("ReplicationPad1d", ((3, 0),), {}, [floats(2, 3, 4)], {}, False),
    ("ReplicationPad2d", (2,), {}, [floats(3, 4, 5)], {}, False),
    ("ReplicationPad3d", ((1, 0, 2, 1, 0, 3),), {}, [floats(2, 2, 3, 4, 5)], {}, False),
    ("CircularPad1d", ((4, 1),), {}, [floats(2, 3, 4)], {}, False),
    ("CircularPad2d", ((2, 1, -1, 3),), {}, [floats(3, 4, 5)], {}, False),
    ("CircularPad3d", (1,), {}, [floats(2, 3, 3, 4, 5)], {}, False),
    ("L1Loss", (), {}, [floats(3, 4), floats(3, 4, seed=1)], {}, False),
    ("MSELoss", (), {"reduction": "sum"}, [floats(3, 4), floats(3, 4, seed=1)], {}, False),
    ("SmoothL1Loss", (), {"beta": 0.5, "reduction": "none"}, [floats(3, 4), floats(3, 4, seed=1)], {}, False),
    ("HuberLoss", (), {"delta": 0.7}, [floats(3, 4), floats(3, 4, seed=1)], {}, False),
    ("BCELoss", (), {}, [probabilities(3, 4), labels(3, 4)], {}, False),
    ("BCEWithLogitsLoss", (), {"reduction": "none"}, [floats(3, 4, scale=10.0), labels(3, 4)], {}, False),
    ("KLDivLoss", (), {"reduction": "batchmean"}, [_LOG_P, probabilities(4, 5, 3, seed=4, axis=1)], {}, False),
    ("NLLLoss", (), {"ignore_index": 1}, [_LOG_P, indices(4, 3, high=5)], {}, False),
    ("CrossEntropyLoss", (), {"label_smoothing": 0.1}, [floats(4, 5, 3), indices(4, 3, high=5)], {}, False),
    ("CrossEntropyLoss", (), {"reduction": "none"}, [floats(4, 5), probabilities(4, 5, axis=1)], {}, False),
    ("MaxUnpool1d", (3,), {}, [floats(3, 2, 4), window_indices((4,), (3,))], {}, False),
    ("MaxUnpool2d", (2,), {}, [floats(3, 2, 3, 4), window_indices((3, 4), (2, 2))], {"output_size": (7, 9)}, False),
    ("MaxUnpool3d", ((1, 2, 2),), {}, [floats(3, 2, 2, 3, 2), window_indices((2, 3, 2), (1, 2, 2))], {}, False),
    ("LazyLinear", (4,), {}, [floats(2, 3, 5)], {}, False),
    ("LazyConv2d", (4, 3), {"padding": 1, "groups": 2}, [floats(2, 4, 5, 5)], {}, False),
    ("LazyConvTranspose1d", (3, 2), {"stride": 2}, [floats(2, 4, 5)], {}, False),
    ("LazyBatchNorm2d", (), {}, [floats(2, 3, 4, 4)], {}, True),
    ("LazyInstanceNorm1d", (), {}, [floats(2, 3, 7)], {}, True),
    ("LazyConv1d", (2, 3), {}, [floats(2, 3, 6)], {}, False),
    ("LazyConv3d", (2, 2), {"bias": False}, [floats(2, 3, 3, 4, 3)], {}, False),
    ("LazyConvTranspose2d", (2, 3), {"padding": 1}, [floats(2, 3, 4, 4)], {}, False),
    ("LazyConvTranspose3d", (2, 2), {}, [floats(2, 3, 2, 3, 2)], {}, False),
    ("LazyBatchNorm1d", (), {"momentum": None}, [floats(4, 3)], {}, True),
    ("LazyBatchNorm3d", (), {"affine": False}, [floats(2, 3, 2, 3, 2)], {}, False),
    ("LazyInstanceNorm2d", (), {"affine": False}, [floats(2, 3, 4, 4)], {}, True),
    ("LazyInstanceNorm3d", (), {"track_running_stats": False}, [floats(2, 3, 2, 3, 2)], {}, False),
    ("FractionalMaxPool2d", ((3, 2),), {"output_size": (4, 5), "_random_samples": _SAMPLES[:, :, :2]},
     [floats(3, 2, 7, 8)], {}, False),
    ("FractionalMaxPool3d", (2,), {"output_ratio": 0.6, "return_indices": True, "_random_samples": _SAMPLES},
     [np.round(floats(3, 2, 6, 6, 5))], {}, False),
    ("LPPool1d", (2, 2), {}, [floats(2, 3, 9)], {}, False),
    ("LPPool2d", (3.0, (2, 3)), {"stride": (1, 2), "ceil_mode": True}, [np.abs(floats(2, 3, 7, 6))], {}, False),
    ("LPPool3d", (1.5, 2), {}, [np.abs(floats(2, 3, 4, 5, 4))], {}, False),
    ("AlphaDropout", (0.3,), {}, [floats(2, 3, 5)], {}, False),
    ("FeatureAlphaDropout", (0.0,), {}, [floats(2, 3, 5)], {}, True),
    ("CTCLoss", (), {"zero_infinity": True}, [_CTC_LOG_P, _CTC_TARGETS, *_CTC_LENGTHS], {}, False),
    ("CTCLoss", (2,), {"reduction": "none"}, [_CTC_LOG_P, _CTC_TARGETS + (_CTC_TARGETS >= 2), *_CTC_LENGTHS], {},
     False),
    ("NLLLoss2d", (), {"reduction": "sum"}, [np.log(probabilities(2, 5, 3, 4, axis=1)), indices(2, 3, 4, high=5)], {},
     False),
    ("PoissonNLLLoss", (), {}, [floats(4, 5), probabilities(4, 5) * 6], {}, False),
    ("GaussianNLLLoss", (), {"full": True}, [floats(4, 5), floats(4, 5, seed=1), probabilities(4)], {}, False),
    ("MarginRankingLoss", (0.5,), {}, [floats(5), floats(5, seed=1), _SIGNS[0]], {}, False),
    ("HingeEmbeddingLoss", (), {"reduction": "sum"}, [np.abs(floats(4, 5)), _SIGNS], {}, False),
    ("SoftMarginLoss", (), {}, [floats(4, 5), _SIGNS], {}, False),
    ("MultiLabelSoftMarginLoss", (), {}, [floats(4, 5), labels(4, 5)], {}, False),
    ("CosineEmbeddingLoss", (), {"margin": 0.3}, [floats(4, 5), floats(4, 5, seed=1), _SIGNS[:, 0]], {}, False),
    ("TripletMarginLoss", (), {"swap": True}, [floats(4, 5), floats(4, 5, seed=1), floats(4, 5, seed=2)], {}, False),
    ("TripletMarginWithDistanceLoss", (), {"margin": 2.0}, [floats(4, 5), floats(4, 5, seed=1),
                                                            floats(4, 5, seed=2)], {}, False),
    ("MultiMarginLoss", (2,), {"margin": 0.7}, [floats(4, 5), indices(4, high=5)], {}, False),
    ("MultiLabelMarginLoss", (), {}, [floats(4, 5), _LISTED], {}, False),
    ("Softmax2d", (), {}, [floats(2, 3, 4, 5)], {}, False),
    ("Dropout1d", (0.4,), {}, [floats(2, 3, 4)], {}, False),
    ("Dropout2d", (0.4,), {}, [floats(2, 3, 4, 5)], {}, False),
    ("Dropout3d", (0.4,), {}, [floats(3, 2, 4, 5)], {}, False),
    ("Unflatten", (1, (2, 3)), {}, [floats(2, 6, 4)], {}, False),
    ("Unflatten", (-1, (2, 1, 2)), {}, [floats(2, 3, 4)], {}, False),
    ("PixelShuffle", (2,), {}, [floats(2, 8, 3, 4)], {}, False),
    ("PixelUnshuffle", (2,), {}, [floats(3, 4, 6)], {}, False),
    ("ChannelShuffle", (3,), {}, [floats(2, 6, 4, 3)], {}, False),
    ("CosineSimilarity", (), {"dim": 2}, [floats(3, 4, 5), floats(3, 4, 5, seed=1)], {}, False),
    ("PairwiseDistance", (), {"p": 1.0, "keepdim": True}, [floats(3, 5), floats(3, 5, seed=1)], {}, False),
    ("Upsample", (), {"scale_factor": 2}, [floats(2, 3, 4, 5)], {}, False),
    ("Upsample", ((7, 3),), {"mode": "bilinear"}, [floats(2, 3, 4, 5)], {}, False),
    ("Upsample", (), {"scale_factor": 1.5, "mode": "linear", "align_corners": True}, [floats(2, 3, 5)], {}, False),
    ("Upsample", (), {"scale_factor": (1.5, 0.5, 2), "mode": "trilinear"}, [floats(1, 2, 3, 4, 5)], {}, False),
    ("Upsample", ((7, 3),), {"mode": "bicubic", "align_corners": True}, [floats(2, 3, 4, 5)], {}, False),
    ("UpsamplingNearest2d", (), {"scale_factor": 3}, [floats(2, 3, 2, 3)], {}, False),
    ("UpsamplingBilinear2d", (5,), {}, [floats(2, 3, 2, 3)], {}, False),
    ("LocalResponseNorm", (3,), {}, [floats(2, 5, 4, 3)], {}, False),
    ("CrossMapLRN2d", (3,), {"alpha": 0.3, "k": 1.5}, [floats(2, 6, 4, 3)], {}, False),
    ("CrossMapLRN2d", (4,), {}, [floats(3, 7, 2, 3, scale=3.0)], {}, False),
    ("SyncBatchNorm", (3,), {}, [floats(4, 3, 5)], {}, True),
    ("SyncBatchNorm", (3,), {"momentum": None, "affine": False}, [floats(5, 3, 2, 2)], {}, True),
    ("AdaptiveLogSoftmaxWithLoss", (8, 10, [3, 6]), {"div_value": 2.0, "head_bias": True},
     [floats(5, 8), indices(5, high=10)], {}, False),
    ("AdaptiveLogSoftmaxWithLoss", (8, 12, [4]), {}, [floats(8), np.array(9)], {}, False),
    ("LinearCrossEntropyLoss", (6, 5), {}, [floats(3, 6), indices(3, high=5)], {}, False),
    ("LinearCrossEntropyLoss", (6, 5), {"bias": True, "out_features": (4,), "label_smoothing": 0.1,
                                        "ignore_index": 2}, [floats(3, 6), indices(3, 4, high=5)], {}, False),
    ("LocalResponseNorm", (2,), {"alpha": 0.1, "beta": 0.5, "k": 2.0}, [floats(2, 5, 7)], {}, False),
    ("Unfold", ((3, 2),), {"dilation": (1, 2), "padding": 1, "stride": (2, 1)}, [floats(2, 3, 7, 6)], {}, False),
    ("Unfold", (2,), {}, [floats(3, 4, 5)], {}, False),
    ("Fold", ((5, 4), 2), {"stride": (1, 2)}, [floats(2, 12, 8)], {}, False),
    ("Fold", ((7, 6), 3), {"padding": 1, "stride": 2, "dilation": (2, 1)}, [floats(27, 9)], {}, False),
    ("LSTM", (5, 6), {"num_layers": 2, "bidirectional": True}, [floats(4, 2, 5)], {}, False),
    ("LSTM", (5, 6), {"batch_first": True, "bias": False}, [floats(2, 4, 5)], {}, False),
    ("LSTM", (5, 6), {"proj_size": 3, "num_layers": 2, "bidirectional": True}, [floats(4, 2, 5)], {}, False),
    ("GRU", (5, 6), {"batch_first": True, "num_layers": 2}, [floats(2, 4, 5)], {}, False),
    ("GRU", (5, 6), {"bidirectional": True}, [floats(4, 5)], {}, False),
    ("RNN", (5, 6), {"num_layers": 2, "bidirectional": True}, [floats(4, 2, 5)], {}, False),
    ("RNN", (5, 6, 1, "relu"), {"batch_first": True, "bias": False}, [floats(2, 4, 5), floats(1, 2, 6, seed=1)], {},
     False),
    ("LSTMCell", (5, 6), {}, [floats(3, 5), (floats(3, 6, seed=1), floats(3, 6, seed=2))], {}, False),
    ("LSTMCell", (5, 6), {"bias": False}, [floats(5)], {}, False),
    ("GRUCell", (5, 6), {}, [floats(3, 5), floats(3, 6, seed=1)], {}, False),
    ("GRUCell", (5, 6), {}, [floats(5), floats(6, seed=1)], {}, False),
    ("RNNCell", (5, 6), {"nonlinearity": "relu"}, [floats(3, 5), floats(3, 6, seed=1)], {}, False),
    ("RNNCell", (5, 6), {"bias": False}, [floats(3, 5)], {}, False),
    ("MultiheadAttention", (8, 2), {}, [floats(4, 2, 8), floats(5, 2, 8, seed=1), floats(5, 2, 8, seed=2)], {},
     False),
    ("MultiheadAttention", (8, 2), {"batch_first": True, "add_bias_kv": True, "add_zero_attn": True},
     [floats(2, 4, 8), floats(2, 5, 8, seed=1), floats(2, 5, 8, seed=2)],
     {"key_padding_mask": np.array([[False] * 4 + [True], [False] * 5]), "average_attn_weights": False}, False),
    ("MultiheadAttention", (8, 2), {"batch_first": True, "add_bias_kv": True},  # 3 queries: the mask is not batch-split
     [floats(2, 3, 8), floats(2, 5, 8, seed=1), floats(2, 5, 8, seed=2)],
     {"attn_mask": floats(3, 5, seed=3), "need_weights": False}, False),
    ("MultiheadAttention", (8, 2), {"batch_first": True}, [floats(4, 8), floats(5, 8, seed=1), floats(5, 8, seed=2)],
     {}, False),
    ("MultiheadAttention", (8, 4), {"kdim": 3, "vdim": 5, "bias": False},
     [floats(4, 8), floats(6, 3, seed=1), floats(6, 5, seed=2)],
     {"attn_mask": np.triu(np.ones((4, 6), bool), 1)}, False),
    ("MultiheadAttention", (8, 2), {}, [floats(4, 2, 8), floats(5, 2, 8, seed=1), floats(5, 2, 8, seed=2)],
     {"attn_mask": floats(4, 5, seed=3), "need_weights": False}, False),
    ("MultiheadAttention", (8, 2), {"add_bias_kv": True}, [_SELF] * 3,
     {"key_padding_mask": np.array([[False] * 4 + [True], [False] * 5])}, False),
    ("TransformerDecoderLayer", (8, 2, 16), {"dropout": 0.0}, [floats(5, 2, 8), floats(3, 2, 8, seed=1)],
     {"tgt_mask": np.triu(np.full((5, 5), -np.inf), 1)}, True),
    ("TransformerDecoderLayer", (8, 2, 16), {"norm_first": True, "activation": "gelu", "batch_first": True},
     [floats(2, 5, 8), floats(2, 4, 8, seed=1)],
     {"memory_key_padding_mask": np.array([[False] * 3 + [True], [False] * 4]), "tgt_is_causal": True,
      "tgt_mask": np.triu(np.ones((5, 5), bool), 1)}, False),
    ("Transformer", (8, 2, 1, 2, 16), {"dropout": 0.0}, [floats(5, 2, 8), floats(3, 2, 8, seed=1)],
     {"tgt_mask": np.triu(np.full((3, 3), -np.inf), 1), "src_key_padding_mask": np.array([[False] * 4 + [True],
                                                                                           [False] * 5])}, False),
    ("TransformerEncoderLayer", (8, 2, 16), {"dropout": 0.0}, [floats(5, 2, 8)], {}, True),
    ("TransformerEncoderLayer", (8, 2, 16), {"norm_first": True, "activation": "gelu", "batch_first": True},
     [floats(2, 5, 8)], {"src_key_padding_mask": np.array([[False] * 4 + [True], [False] * 5])}, False),
]


def _weights(*shape: int, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape) * 0.5


#: grouped_mm's group ends: an empty group among them (the rows' ends 13, an odd count, which the
#: sharded columns do not split: a slice of a split axis would need collectives).
_GROUP_ENDS = np.array([4, 4, 12], np.int32)


#: name, positional arrays (numpy), other positional args, kwargs.
FUNCTIONAL_CASES = [
    *[(name, [floats(3, 4, 5)], (), {}) for name in (
        "elu", "celu", "gelu", "hardshrink", "hardsigmoid", "hardswish", "hardtanh", "leaky_relu", "logsigmoid",
        "mish", "relu", "relu6", "selu", "silu", "sigmoid", "softplus", "softshrink", "softsign", "tanh",
        "tanhshrink", "normalize")],
    ("gelu", [floats(3, 4, 5)], (), {"approximate": "tanh"}),
    ("elu", [floats(3, 4, 5)], (0.3,), {}),
    ("glu", [floats(4, 3)], (), {"dim": 0}),
    ("hardtanh", [floats(3, 4, 5)], (-0.5, 2.0), {}),
    ("softplus", [floats(3, 4, 5, scale=8.0)], (), {"beta": 0.5, "threshold": 3.0}),
    ("threshold", [floats(3, 4, 5)], (0.5, -1.0), {}),
    ("rrelu", [floats(3, 4, 5)], (0.2, 0.4), {}),
    ("prelu", [floats(3, 4, 5), _weights(4)], (), {}),
    ("softmax", [floats(3, 4, 5)], (), {"dim": 1}),
    ("softmin", [floats(3, 4, 5)], (), {"dim": 0}),
    ("log_softmax", [floats(3, 4, 5)], (), {"dim": -1}),
    ("normalize", [floats(3, 4, 5)], (), {"p": 1.0, "dim": 0}),
    ("normalize", [floats(3, 4, 5)], (), {"p": math.inf, "dim": -1}),
    ("normalize", [floats(3, 4, 5)], (), {"p": 3.0}),
    ("linear", [floats(3, 5), _weights(4, 5), _weights(4, seed=6)], (), {}),
    ("bilinear", [floats(3, 5), floats(3, 2, seed=1), _weights(4, 5, 2), _weights(4, seed=6)], (), {}),
    ("conv1d", [floats(2, 4, 9), _weights(6, 2, 3)], (), {"groups": 2, "stride": 2, "padding": 2}),
    ("conv2d", [floats(2, 3, 7, 6), _weights(4, 3, 3, 3), _weights(4, seed=6)], (), {"padding": "same",
                                                                                       "dilation": 2}),
    ("conv_transpose2d", [floats(2, 4, 4, 5), _weights(4, 3, 3, 2)], (), {"stride": (2, 1), "groups": 2,
                                                                          "padding": 1, "output_padding": (1, 0)}),
    ("conv3d", [floats(2, 4, 4, 5, 3), _weights(2, 2, 2, 3, 2), _weights(2, seed=6)], (), {"groups": 2,
                                                                                         "padding": (1, 0, 1)}),
    ("conv_transpose1d", [floats(2, 3, 6), _weights(3, 2, 4)], (), {"stride": 3, "dilation": 2, "padding": 2}),
    ("conv_transpose3d", [floats(3, 3, 2, 4), _weights(3, 2, 2, 2, 2), _weights(2, seed=6)], (), {"stride": 2,
                                                                                                 "output_padding": 1}),
    ("max_pool1d", [floats(2, 3, 9)], (3,), {"stride": 2, "padding": 1, "ceil_mode": True}),
    ("max_pool1d", [_TIES[:, :, 1]], (2,), {"stride": 1, "return_indices": True}),
    ("max_pool2d", [floats(2, 3, 7, 6)], (3,), {"stride": 2, "padding": 1, "ceil_mode": True}),
    ("max_pool3d", [_TIES.reshape(2, 3, 7, 2, 3)], ((2, 1, 3),), {"stride": 1, "dilation": (2, 1, 1),
                                                                 "return_indices": True}),
    ("avg_pool1d", [floats(2, 3, 9)], (4,), {"stride": 3, "padding": 2, "ceil_mode": True}),
    ("avg_pool3d", [floats(2, 3, 5, 4, 6)], (3,), {"stride": 2, "padding": 1, "count_include_pad": False}),
    ("max_pool2d", [_TIES], ((2, 3),), {"stride": 1, "dilation": (2, 1), "return_indices": True}),
    ("avg_pool2d", [floats(2, 3, 7, 6)], ((3, 2),), {"padding": (1, 0), "count_include_pad": False}),
    ("adaptive_avg_pool1d", [floats(2, 3, 9)], (4,), {}),
    ("adaptive_avg_pool2d", [floats(2, 3, 7, 6)], ((5, 2),), {}),
    ("adaptive_avg_pool3d", [floats(2, 3, 5, 4, 6)], ((None, 3, 4),), {}),
    ("adaptive_max_pool1d", [_TIES[:, :, 3]], (4,), {"return_indices": True}),
    ("adaptive_max_pool2d", [_TIES], ((4, 4),), {"return_indices": True}),
    ("adaptive_max_pool2d", [floats(2, 3, 6, 6)], (3,), {}),
    ("adaptive_max_pool3d", [floats(2, 3, 5, 4, 6)], (2,), {}),
    ("adaptive_max_pool2d", [_TIES], (1,), {}),
    ("pad", [floats(2, 3, 4, 5)], ((1, -2, 0, 3),), {"value": 1.5}),
    ("pad", [floats(2, 3, 4, 5)], ((2, 1, 3, 0),), {"mode": "reflect"}),
    ("pad", [floats(3, 4, 5)], ((0, 4),), {"mode": "replicate"}),
    ("pad", [floats(2, 2, 3, 4, 5)], ((1, 2, 0, 3, 2, 2),), {"mode": "circular"}),
    ("mse_loss", [floats(3, 4), floats(3, 4, seed=1)], (), {"weight": probabilities(3, 4)}),
    ("l1_loss", [floats(3, 4), floats(3, 4, seed=1)], (), {"reduction": "none"}),
    ("smooth_l1_loss", [floats(3, 4), floats(3, 4, seed=1)], (), {"beta": 0.0}),
    ("huber_loss", [floats(3, 4), floats(3, 4, seed=1)], (), {"delta": 2.0, "weight": probabilities(3, 4)}),
    ("binary_cross_entropy", [probabilities(3, 4), labels(3, 4)], (), {"weight": probabilities(3, 4, seed=5),
                                                                       "reduction": "sum"}),
    ("binary_cross_entropy_with_logits", [floats(3, 4, scale=20.0), probabilities(3, 4)], (),
     {"weight": probabilities(3, 4, seed=5), "pos_weight": probabilities(4, seed=6) * 3}),
    ("kl_div", [_LOG_P, np.log(probabilities(4, 5, 3, seed=4, axis=1))], (), {"reduction": "sum", "log_target": True}),
    ("nll_loss", [_LOG_P, indices(4, 3, high=5)], (), {"weight": probabilities(5), "ignore_index": 2}),
    ("cross_entropy", [floats(4, 5, 3), indices(4, 3, high=5)], (), {"weight": probabilities(5),
                                                                     "label_smoothing": 0.2}),
    ("cross_entropy", [floats(5), np.asarray(indices(high=5))], (), {}),
    ("cross_entropy", [floats(4, 5, 3), probabilities(4, 5, 3, axis=1)], (), {"weight": probabilities(5),
                                                                              "label_smoothing": 0.3}),
    ("embedding_bag", [indices(11), _weights(10, 3), np.array([0, 3, 3, 8])], (), {"padding_idx": 1}),
    ("embedding_bag", [indices(3, 4), _weights(10, 3)], (), {"mode": "max", "padding_idx": 4}),
    ("max_unpool2d", [floats(3, 2, 3, 4), window_indices((3, 4), (2, 2))], (2,), {}),
    ("max_unpool2d", [floats(1, 3, 4), window_indices((3, 4), (2, 2))[0, :1]], ((2, 2),), {"output_size": (7, 8)}),
    ("fractional_max_pool2d", [_TIES[:1]], (2,), {"output_ratio": (0.5, 0.7), "return_indices": True,
                                                  "_random_samples": probabilities(1, 3, 2, seed=5)}),
    ("fractional_max_pool3d", [floats(3, 2, 5, 6, 7)], ((2, 3, 2),), {"output_size": (3, 3, 4),
                                                                      "_random_samples": probabilities(3, 2, 3)}),
    ("max_unpool1d", [floats(3, 2, 4), window_indices((4,), (2,))], (2,), {"output_size": (9,)}),
    ("max_unpool3d", [floats(3, 2, 2, 3, 2), window_indices((2, 3, 2), (2, 1, 2))], ((2, 1, 2),), {}),
    ("lp_pool1d", [floats(2, 3, 9)], (float("inf"), 3), {"stride": 2, "ceil_mode": True}),
    ("lp_pool2d", [floats(2, 3, 7, 6)], (-float("inf"), (2, 3)), {}),
    ("lp_pool2d", [floats(2, 3, 7, 6)], (4, 3), {"stride": 1}),
    ("alpha_dropout", [floats(2, 3, 5)], (0.4,), {}),
    ("ctc_loss", [_CTC_LOG_P, _CTC_CONCATENATED, *_CTC_LENGTHS], (), {"reduction": "sum"}),
    ("ctc_loss", [_CTC_LOG_P[:, 0], _CTC_TARGETS[0], np.asarray(6), np.asarray(3)], (), {}),
    ("feature_alpha_dropout", [floats(2, 3, 5)], (0.4,), {}),
    ("lp_pool3d", [np.abs(floats(2, 3, 4, 5, 4))], (2.0, (2, 1, 2)), {"stride": 1}),
    ("triplet_margin_with_distance_loss", [floats(4, 5), floats(4, 5, seed=1), floats(4, 5, seed=2)], (),
     {"swap": True, "reduction": "none"}),
    ("poisson_nll_loss", [probabilities(4, 5) * 3, probabilities(4, 5, seed=3) * 6], (), {"log_input": False,
                                                                                        "full": True}),
    ("gaussian_nll_loss", [floats(4, 5), floats(4, 5, seed=1), probabilities(4, 1) * 2e-6], (), {"reduction": "none"}),
    ("gaussian_nll_loss", [floats(4, 5), floats(4, 5, seed=1)], (0.3,), {"reduction": "sum"}),
    ("margin_ranking_loss", [floats(4, 5), floats(1, 5, seed=1), _SIGNS], (), {"margin": -0.2, "reduction": "none"}),
    ("hinge_embedding_loss", [floats(4, 5), np.round(floats(4, 5, seed=1))], (), {"margin": 0.5}),
    ("soft_margin_loss", [floats(4, 5, scale=20.0), _SIGNS], (), {"reduction": "none"}),
    ("multilabel_soft_margin_loss", [floats(4, 3, 5), labels(4, 3, 5)], (), {"weight": probabilities(5),
                                                                             "reduction": "none"}),
    ("cosine_embedding_loss", [floats(5), floats(5, seed=1), np.asarray(-1.0)], (), {"margin": -0.5}),
    ("triplet_margin_loss", [floats(4, 5), floats(4, 5, seed=1), floats(1, 5, seed=2)], (), {"p": 1.0, "eps": 0.1,
                                                                                           "reduction": "none"}),
    ("multi_margin_loss", [floats(4, 5), indices(4, high=5)], (), {"weight": probabilities(5), "reduction": "sum"}),
    ("multi_margin_loss", [floats(5), np.asarray(indices(high=5))], (), {"margin": 2.0}),
    ("multilabel_margin_loss", [floats(4, 5), _LISTED], (), {"reduction": "none"}),
    ("multilabel_margin_loss", [floats(5), _LISTED[0]], (), {}),
    ("cosine_similarity", [floats(3, 4, 5), floats(1, 4, 5, seed=1)], (), {"dim": -1, "eps": 0.5}),
    ("pairwise_distance", [floats(3, 5), floats(3, 5, seed=1)], (), {"p": 3.0, "eps": 0.1}),
    ("pixel_shuffle", [floats(2, 9, 2, 3)], (3,), {}),
    ("pixel_unshuffle", [floats(2, 2, 4, 6)], (2,), {}),
    ("channel_shuffle", [floats(2, 6, 5)], (2,), {}),
    ("native_channel_shuffle", [floats(3, 4, 2, 3)], (2,), {}),
    ("pdist", [floats(5, 3)], (), {"p": 1.5}),
    ("conv_tbc", [floats(7, 3, 2), _weights(3, 2, 4), _weights(4, seed=6)], (1,), {}),
    ("grouped_mm", [floats(13, 8), _weights(3, 8, 4)], (), {"offs": _GROUP_ENDS + np.int32([0, 0, 1])}),
    ("grouped_mm", [floats(3, 6, 8), _weights(8, 12)], (), {"offs": _GROUP_ENDS}),
    ("grouped_mm", [floats(8, 12), _weights(12, 4)], (), {"offs": _GROUP_ENDS}),
    ("grouped_mm", [floats(3, 6, 8), _weights(3, 8, 4)], (), {}),
    ("affine_grid", [floats(3, 2, 3)], ((3, 2, 4, 5),), {"align_corners": False}),
    ("affine_grid", [floats(3, 3, 4)], ((3, 1, 2, 4, 3),), {"align_corners": True}),
    ("grid_sample", [floats(3, 2, 4, 5), _GRID], (), {"align_corners": False}),
    ("grid_sample", [floats(3, 2, 4, 5), _GRID], (), {"mode": "bicubic", "padding_mode": "reflection",
                                                       "align_corners": True}),
    ("grid_sample", [floats(3, 2, 4, 5), _GRID], (), {"mode": "nearest", "padding_mode": "border",
                                                       "align_corners": False}),
    ("grid_sample", [floats(3, 2, 3, 4, 5), _GRID_3D], (), {"padding_mode": "reflection", "align_corners": False}),
    ("gumbel_softmax", [_DECIDED], (), {"hard": True, "dim": 1}),
    ("upsample", [floats(2, 3, 4, 5)], (), {"scale_factor": 1.5, "mode": "bilinear"}),
    ("upsample_nearest", [floats(2, 3, 4, 5)], ((3, 7),), {}),
    ("upsample_bilinear", [floats(2, 3, 4, 5)], (), {"scale_factor": 2}),
    *((f"{name}_", [floats(3, 4, 5)], arguments, {})
      for name, arguments in [("relu", ()), ("elu", (0.5,)), ("celu", (1.5,)), ("selu", ()), ("hardtanh", (-0.5, 2.0)),
                              ("leaky_relu", (0.2,)), ("rrelu", (0.2, 0.4)), ("threshold", (0.3, -2.0))]),
    *((f"{name}_with_indices", [floats(3, 2, 6, 5, 4)[(0,) * (3 - rank)]], (2,), {})
      for name, rank in [("max_pool1d", 1), ("max_pool2d", 2), ("max_pool3d", 3), ("adaptive_max_pool1d", 1),
                         ("adaptive_max_pool2d", 2), ("adaptive_max_pool3d", 3)]),
    ("fractional_max_pool2d_with_indices", [floats(3, 2, 6, 5)], (2,), {"output_size": (3, 3),
                                                                        "_random_samples": _SAMPLES[:, :, :2]}),
    ("fractional_max_pool3d_with_indices", [floats(3, 2, 6, 5, 4)], (2,), {"output_size": (3, 2, 2),
                                                                           "_random_samples": _SAMPLES}),
    ("dropout1d", [floats(2, 3, 4)], (0.3,), {"training": False}),
    ("dropout2d", [floats(2, 3, 4, 5)], (0.3,), {"training": False}),
    ("dropout3d", [floats(2, 3, 4, 5)], (0.0,), {}),
    ("interpolate", [floats(2, 3, 4, 5)], (), {"scale_factor": 1.7, "mode": "nearest-exact"}),
    ("interpolate", [floats(2, 3, 7, 5)], ((3, 2),), {"mode": "area"}),
    ("interpolate", [floats(2, 3, 4, 5)], (), {"size": (6, 9), "mode": "bilinear", "align_corners": True}),
    ("interpolate", [floats(2, 3, 4, 5)], (), {"scale_factor": 1.6, "mode": "bicubic"}),
    ("linear_cross_entropy", [floats(3, 6), _weights(5, 6), indices(3, high=5)], (), {"reduction": "sum"}),
    ("linear_cross_entropy", [floats(3, 6), _weights(5, 2, 6), probabilities(3, 5, 2, axis=1)], (),
     {"linear_bias": _weights(5, 2, seed=6), "label_smoothing": 0.2}),
    ("interpolate", [floats(2, 3, 9, 8)], (), {"size": (4, 3), "mode": "bicubic", "antialias": True}),
    ("interpolate", [floats(2, 3, 9, 8)], (), {"size": (5, 3), "mode": "lanczos", "antialias": True}),
    ("local_response_norm", [floats(2, 6, 3, 2, 2)], (4,), {"alpha": 0.05, "k": 0.5}),
    ("unfold", [floats(2, 3, 6, 5)], ((2, 3),), {"stride": 2, "padding": (1, 0)}),
    ("fold", [floats(2, 8, 12)], ((4, 5), 2), {}),
    ("layer_norm", [floats(3, 4, 5)], ((4, 5),), {"weight": _weights(4, 5), "bias": _weights(4, 5, seed=6)}),
    ("rms_norm", [floats(3, 4, 5)], ((5,),), {"weight": _weights(5)}),
    ("batch_norm", [floats(3, 4, 5), _weights(4), np.abs(_weights(4, seed=6))], (), {"weight": _weights(4, seed=7)}),
    ("batch_norm", [floats(3, 4, 5, 2)], (None, None), {"training": True, "bias": _weights(4, seed=7)}),
    ("embedding", [indices(3, 4), _weights(10, 3)], (), {}),
    ("embedding", [indices(3, 4), _weights(10, 3)], (), {"max_norm": 0.8}),
    ("group_norm", [floats(3, 4, 5)], (2,), {"eps": 1e-3}),
    ("instance_norm", [floats(3, 4, 5, 2), _weights(4), np.abs(_weights(4, seed=6))], (),
     {"bias": _weights(4, seed=7)}),
    ("instance_norm", [floats(3, 4, 5), _weights(4), np.abs(_weights(4, seed=6))], (), {"use_input_stats": False,
                                                                                       "eps": 1e-3}),
    ("dropout", [floats(3, 4)], (0.3,), {"training": False}),
    ("dropout", [floats(3, 4)], (0.0,), {}),
    ("one_hot", [indices(3, 4, high=6)], (), {}),
    ("one_hot", [indices(5, high=3)], (), {"num_classes": 4}),
    ("multi_head_attention_forward", [floats(4, 2, 8), floats(5, 2, 8, seed=1), floats(5, 2, 8, seed=2)],
     (8, 2), {"in_proj_weight": _weights(24, 8), "in_proj_bias": _weights(24, seed=6), "bias_k": _weights(1, 1, 8),
              "bias_v": _weights(1, 1, 8, seed=7), "add_zero_attn": True, "dropout_p": 0.0,
              "out_proj_weight": _weights(8, 8, seed=8), "out_proj_bias": _weights(8, seed=9),
              "key_padding_mask": np.array([[False, True, False, False, False], [False] * 5]),
              "average_attn_weights": False}),
    ("multi_head_attention_forward", [floats(4, 2, 8), floats(5, 2, 8, seed=1), floats(5, 2, 8, seed=2)],
     (8, 2), {"in_proj_weight": _weights(24, 8), "in_proj_bias": _weights(24, seed=6), "bias_k": None,
              "bias_v": None, "add_zero_attn": True, "dropout_p": 0.0, "out_proj_weight": _weights(8, 8, seed=8),
              "out_proj_bias": _weights(8, seed=9), "static_k": _weights(4, 5, 4, seed=10),
              "static_v": _weights(4, 5, 4, seed=11), "attn_mask": floats(4, 5, seed=3), "need_weights": False}),
    ("scaled_dot_product_attention", [floats(2, 3, 4, 8), floats(2, 3, 5, 8, seed=1), floats(2, 3, 5, 8, seed=2)],
     (), {"is_causal": True}),
    ("scaled_dot_product_attention", [floats(2, 4, 8), floats(2, 5, 8, seed=1), floats(2, 5, 6, seed=2),
                                      np.random.default_rng(3).random((4, 5)) > 0.3], (), {"scale": 0.2}),
    ("scaled_dot_product_attention", [floats(2, 4, 3, 8), floats(2, 2, 5, 8, seed=1), floats(2, 2, 5, 8, seed=2),
                                      floats(3, 5, seed=4)], (), {"enable_gqa": True}),
    # queries that see no key (every key masked; a -inf bias on each): torch's safe softmax gives 0
    ("scaled_dot_product_attention", [floats(2, 4, 8), floats(2, 5, 8, seed=1), floats(2, 5, 8, seed=2),
                                      np.arange(5) < np.array([[0], [2], [0], [5]])], (), {}),
    ("scaled_dot_product_attention", [floats(2, 4, 8), floats(2, 5, 8, seed=1), floats(2, 5, 6, seed=2),
                                      np.where(np.arange(5) < np.array([[3], [0], [1], [0]]), 0.5, -np.inf)], (),
     {"dropout_p": 0.0}),
]


def cnn(L: Any) -> Any:
    """A small torchvision-free CNN in namespace ``L`` (``torch.nn`` or ``xpnn.torch_nn``)."""
    return L.Sequential(L.Conv2d(3, 8, 3, padding=1), L.BatchNorm2d(8), L.ReLU(), L.MaxPool2d(2),
                        L.Conv2d(8, 16, 3, stride=2, padding=1, groups=2), L.GELU(), L.AvgPool2d(2), L.Flatten(),
                        L.Dropout(0.2), L.Linear(16 * 2 * 2, 10))


def encoder(L: Any) -> Any:
    """A 2-layer TransformerEncoder (batch first) with a final LayerNorm in namespace ``L``."""
    layer = L.TransformerEncoderLayer(16, 4, 32, dropout=0.1, batch_first=True)
    return L.TransformerEncoder(layer, 2, norm=L.LayerNorm(16), enable_nested_tensor=False)


def decoder(L: Any) -> Any:
    """A 2-layer TransformerDecoder (batch first) with a final LayerNorm in namespace ``L``."""
    layer = L.TransformerDecoderLayer(16, 4, 32, dropout=0.1, batch_first=True)
    return L.TransformerDecoder(layer, 2, norm=L.LayerNorm(16))


def data_parallel(L: Any) -> Any:
    """A small MLP in ``L.DataParallel`` (its state_dict keys begin with ``module.``)."""
    return L.DataParallel(L.Sequential(L.Linear(6, 4), L.ReLU(), L.Linear(4, 3)))


def containers(L: Any) -> Any:
    """A user's module with a ModuleList of blocks and a ModuleDict of heads, in namespace ``L``."""

    class Net(L.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = L.ModuleList([L.Linear(6, 6), L.Linear(6, 6)])
            self.heads = L.ModuleDict({"a": L.Linear(6, 2), "b": L.Linear(6, 3)})

        def forward(self, x: Any) -> Any:
            for block in self.blocks:
                x = L.functional.relu(block(x))
            return self.heads["a"](x), self.heads["b"](x)

    return Net()


def parameter_containers(L: Any) -> Any:
    """A user's module whose weights live in a ParameterList and a ParameterDict, in namespace ``L``."""

    class Net(L.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = L.ParameterList([L.Linear(6, 6).weight, L.Linear(6, 4).weight])
            self.extra = L.ParameterDict({"bias": L.Linear(6, 4).bias, "scale": L.Linear(1, 4).weight[:, 0]})

        def forward(self, x: Any) -> Any:
            for weight in self.layers:
                x = L.functional.tanh(L.functional.linear(x, weight))
            return x * self.extra["scale"] + self.extra["bias"]

    return Net()


def packed_recurrent(L: Any) -> Any:
    """A 2-layer bidirectional LSTM and a GRU over packed sequences of unsorted lengths, in namespace ``L``."""

    class Net(L.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = L.LSTM(5, 6, num_layers=2, bidirectional=True)
            self.gru = L.GRU(12, 4, batch_first=True)

        def forward(self, x: Any) -> Any:
            packed = L.utils.rnn.pack_padded_sequence(x, [4, 7, 1], batch_first=True, enforce_sorted=False)
            out, (h, c) = self.lstm(packed)
            out, last = self.gru(out)
            return L.utils.rnn.pad_packed_sequence(out, batch_first=True)[0], h, c, last

    return Net()


def pruned(L: Any) -> Any:
    """A small MLP in namespace ``L`` pruned by ``L.utils.prune`` (magnitudes, channel norms and
    one global ranking): its state_dict holds each ``weight_orig`` and ``weight_mask``."""
    net = L.Sequential(L.Linear(6, 8), L.ReLU(), L.Linear(8, 8), L.Tanh(), L.Linear(8, 3))
    prune = importlib.import_module(f"{L.__name__}.utils.prune")  # torch.nn.utils imports it on demand only
    prune.l1_unstructured(net[0], "weight", amount=0.3)
    prune.ln_structured(net[2], "weight", amount=2, n=2, dim=0)
    prune.global_unstructured([(net[0], "weight"), (net[4], "weight"), (net[4], "bias")], prune.L1Unstructured,
                              amount=0.25)
    return net


#: name -> (builder of namespace L, inputs, forward kwargs, the modules it covers)
MODEL_CASES: dict[str, tuple[Any, list, dict, tuple[str, ...]]] = {
    "small CNN (Conv2d, BatchNorm2d, pools, Linear)": (cnn, [floats(4, 3, 16, 16)], {}, ("Sequential",)),
    "TransformerEncoder 2 layers, causal mask": (encoder, [floats(3, 7, 16)],
                                                 {"mask": np.triu(np.full((7, 7), -np.inf), 1)},
                                                 ("TransformerEncoder",)),
    "TransformerDecoder 2 layers, causal mask": (decoder, [floats(3, 7, 16), floats(3, 5, 16, seed=1)],
                                                 {"tgt_mask": np.triu(np.full((7, 7), -np.inf), 1)},
                                                 ("TransformerDecoder",)),
    "ModuleList and ModuleDict": (containers, [floats(5, 6)], {}, ("ModuleList", "ModuleDict")),
    "DataParallel around a small MLP": (data_parallel, [floats(5, 6)], {}, ("DataParallel",)),
    "ParameterList and ParameterDict": (parameter_containers, [floats(5, 6)], {}, ("ParameterList", "ParameterDict")),
    "LSTM and GRU on packed sequences": (packed_recurrent, [floats(3, 7, 5)], {}, ("LSTM", "GRU")),
    "pruned MLP (utils.prune)": (pruned, [floats(5, 6)], {}, ("Linear",)),
}


def trained(model: Any, arrays: list, kwargs: dict) -> Any:
    """Two SGD steps of a torch model in training mode, so that running statistics and weights
    move away from their initial values; returned in eval mode."""
    import torch

    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    t_args, t_kwargs = made(arrays, kwargs, "float64" if next(model.parameters()).dtype == torch.float64
                            else "float32", to_torch)
    model.train()
    for _ in range(2):
        optimizer.zero_grad()
        sum(o.square().mean() for o in flat(model(*t_args, **t_kwargs))).backward()
        optimizer.step()
    return model.eval()


def run_model(case: str, backend: Backend, dtype: str) -> Checked:
    """A torch.nn model, trained two steps, its state_dict loaded into the same definition in
    xpnn.torch_nn on the backend: torch's outputs (eval mode); and the twin's state_dict back
    into a fresh torch model gives them too."""
    load("torch")
    import torch

    build, arrays, kwargs, _ = MODEL_CASES[case]
    torch.manual_seed(0)
    reference = trained(build(torch.nn).to(getattr(torch, dtype)), arrays, kwargs)
    twin = build(nn).to(like=backend.like(), dtype=dtype).eval()
    twin.load_state_dict(reference.state_dict())
    t_args, t_kwargs = made(arrays, kwargs, dtype, to_torch)
    x_args, x_kwargs = made(arrays, kwargs, dtype, backend.asarray)
    with torch.no_grad():
        want = flat(reference(*t_args, **t_kwargs))
    forward = _compared(backend.to_numpy, flat(twin(*x_args, **x_kwargs)), want, dtype)
    fresh = build(torch.nn).to(getattr(torch, dtype)).eval()
    fresh.load_state_dict({k: torch.from_numpy(np.array(backend.to_numpy(v))) for k, v in twin.state_dict().items()})
    with torch.no_grad():
        back = _compared(lambda t: t.numpy(), flat(fresh(*t_args, **t_kwargs)), want, dtype, "round trip")
    return Checked(_worst([forward, back]).comparison, "", forward.output)


def label(case: tuple) -> str:
    """A module case as text: ``Conv2d(3, 2, 3, padding=1)-train``."""
    name, args, kwargs = case[:3]
    shown = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
    return f"{name}({shown}){'-train' if case[5] else ''}"


def functional_label(case: tuple) -> str:
    name, _, args, kwargs = case
    shown = ", ".join([*map(repr, args), *(f"{k}={'array' if isinstance(v, np.ndarray) else repr(v)}"
                                           for k, v in kwargs.items())])
    return f"F.{name}({shown})"


def torch_module(name: str, args: tuple, kwargs: dict, dtype: str, train: bool) -> Any:
    """torch.nn's module, seeded, in ``dtype`` and mode."""
    import torch

    torch.manual_seed(0)
    kwargs = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    return getattr(torch.nn, name)(*args, **kwargs).to(getattr(torch, dtype)).train(train)


def made(arrays: list, kwargs: dict, dtype: str, convert: Any) -> tuple[list, dict]:
    """The case's numpy arrays (positional and keyword, and in tuples) converted, float ones to
    ``dtype``; one array given twice is one converted array (self-attention's query, key and value)."""
    converted: dict[int, Any] = {}

    def one(a: Any) -> Any:
        if isinstance(a, tuple):  # the LSTM cell's (h, c)
            return tuple(one(b) for b in a)
        if not isinstance(a, np.ndarray):
            return a
        if id(a) not in converted:
            converted[id(a)] = convert(a, dtype if a.dtype.kind == "f" else a.dtype.name)
        return converted[id(a)]
    return [one(a) for a in arrays], {k: one(v) for k, v in kwargs.items()}


def to_torch(a: np.ndarray, dtype: str) -> Any:
    import torch

    return torch.from_numpy(np.array(a, dtype))  # a copy, which an in-place function may write into


def flat(tree: Any) -> list:
    if isinstance(tree, (tuple, list)):
        return [leaf for item in tree for leaf in flat(item)]
    return [tree]


def _worst(checks: list[Checked]) -> Checked:
    return max(checks, key=lambda c: (not c.passed, c.comparison.max_abs))


def _compared(to_numpy: Any, got: list, want: list, dtype: str, what: str = "output") -> Checked:
    """The worst of the outputs ``got`` (read with ``to_numpy``) against torch's ``want``; zero
    signs are not compared (xpnn's definitions give jax's +0.0 where torch's kernels keep -0.0,
    as relu(-0.0))."""
    if len(got) != len(want):
        return Checked(compare(np.zeros(1), np.ones(1), dtype), f"{len(got)} outputs, torch gives {len(want)}", {})
    checks = []
    for g, w in zip(got, want):
        if (g is None) != (w is None):
            return Checked(compare(np.zeros(1), np.ones(1), dtype), f"{what}: None where torch gives an array", {})
        if w is None:
            continue
        comparison: Comparison = compare(np.asarray(to_numpy(g), np.float64), w.detach().numpy().astype(np.float64),
                                         dtype, tolerance=TOLERANCE[dtype], zero_signs=False)
        checks.append(Checked(comparison, "", describe(g)))
    return _worst(checks) if checks else Checked(compare(np.zeros(1), np.zeros(1), dtype), "", {})


def twin_of(reference: Any, name: str, args: tuple, kwargs: dict, backend: Backend, dtype: str, train: bool) -> Any:
    """The xpnn.torch_nn twin on ``backend`` with the reference's state_dict loaded."""
    twin = getattr(nn, name)(*args, **kwargs).to(like=backend.like(), dtype=dtype).train(train)
    twin.load_state_dict(reference.state_dict())
    return twin


def run_module(case: tuple, backend: Backend, dtype: str) -> Checked:
    """The module's outputs, and its state_dict after the call, against torch.nn's."""
    load("torch")
    name, args, kwargs, arrays, forward_kwargs, train = case
    reference = torch_module(name, args, kwargs, dtype, train)
    t_args, t_kwargs = made(arrays, forward_kwargs, dtype, to_torch)
    if name.startswith("Lazy"):  # torch's lazy module takes its shapes from a first call
        reference(*t_args, **t_kwargs)
    twin = twin_of(reference, name, args, kwargs, backend, dtype, train)
    x_args, x_kwargs = made(arrays, forward_kwargs, dtype, backend.asarray)
    outputs = _compared(backend.to_numpy, flat(twin(*x_args, **x_kwargs)), flat(reference(*t_args, **t_kwargs)), dtype)
    state = twin.state_dict()
    theirs = reference.state_dict()
    if list(state) != list(theirs):
        return Checked(outputs.comparison, f"state_dict keys {list(state)}, torch's {list(theirs)}", outputs.output)
    after = _compared(backend.to_numpy, list(state.values()), list(theirs.values()), dtype, "state_dict")
    return Checked(_worst([outputs, after]).comparison, "", outputs.output)


def _torch_grouped_mm(a: Any, b: Any, offs: Any = None) -> Any:
    """torch's ``F.grouped_mm``, whose CPU kernel takes float32 (and narrower) only; for float64,
    the groups' products by ``torch.matmul``, as its documentation defines them."""
    import torch

    if a.dtype != torch.float64:
        return torch.nn.functional.grouped_mm(a, b, offs=offs)
    if offs is None:
        return torch.matmul(a, b)
    spans = list(zip([0, *offs.tolist()], offs.tolist()))
    if b.ndim == 3:
        return torch.cat([a[start:end] @ b[g] for g, (start, end) in enumerate(spans)])
    if a.ndim == 3:
        return torch.cat([a[g] @ b[:, start:end] for g, (start, end) in enumerate(spans)], dim=1)
    return torch.stack([a[:, start:end] @ b[start:end] for start, end in spans])


#: The torch functions a case is compared with, where it is not torch.nn.functional's own.
_REFERENCES = {"grouped_mm": _torch_grouped_mm}


def run_functional(case: tuple, backend: Backend, dtype: str) -> Checked:
    """``xpnn.torch_nn.functional.<name>`` against ``torch.nn.functional.<name>``."""
    load("torch")
    import torch

    name, arrays, args, kwargs = case
    t_arrays, t_kwargs = made(arrays, kwargs, dtype, to_torch)
    want = _REFERENCES.get(name, getattr(torch.nn.functional, name))(*t_arrays, *args, **t_kwargs)
    # the input as the column lays inputs out (split over devices in the sharded ones), the
    # other arrays (weights, keys, masks) whole
    inputs, _ = made(arrays[:1], {}, dtype, backend.asarray)
    others, x_kwargs = made(arrays[1:], kwargs, dtype, backend.as_whole)
    got = getattr(F, name)(*inputs, *others, *args, **x_kwargs)
    return _compared(backend.to_numpy, flat(got), flat(want), dtype)

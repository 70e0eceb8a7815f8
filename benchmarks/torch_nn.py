"""xpnn.torch_nn's modules against their torch.nn twins, on torch tensors, with the same weights.

Each xpnn module loads its twin's ``state_dict`` and both run on the same input under
``torch.no_grad()`` (inference; float32, eval mode unless the label says train).  The rows at
realistic sizes measure the module's kernels and layout handling; the "batch 1" rows measure
what a module call costs on top of torch.nn's own per-module overhead.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

import xpnn.torch_nn as nn
from xpnn.benchmarks.activations import paired_rows, placement, ratio_table
from xpnn.torch_nn.utils import rnn

#: label -> (module name, constructor args, kwargs, input shapes ("ids" or "ids:N" first for integer inputs below 1000
#: or N, "packed" for a packed batch), forward kwargs, train)
CASES: dict[str, tuple[str, tuple, dict, tuple, dict, bool]] = {
    "Linear 1024->1024 (256,1024)": ("Linear", (1024, 1024), {}, ((256, 1024),), {}, False),
    "Conv2d 64->64 3x3 (8,64,32,32)": ("Conv2d", (64, 64, 3), {"padding": 1}, ((8, 64, 32, 32),), {}, False),
    "Conv2d 3->64 7x7/2 (8,3,64,64)": ("Conv2d", (3, 64, 7), {"stride": 2, "padding": 3}, ((8, 3, 64, 64),), {},
                                       False),
    "ConvTranspose2d 64->32 4x4/2 (8,64,16,16)": ("ConvTranspose2d", (64, 32, 4), {"stride": 2, "padding": 1},
                                                  ((8, 64, 16, 16),), {}, False),
    "MaxPool2d 3/2 (16,64,56,56)": ("MaxPool2d", (3, 2), {"padding": 1}, ((16, 64, 56, 56),), {}, False),
    "MaxPool2d 3/2 indices (16,64,56,56)": ("MaxPool2d", (3, 2), {"padding": 1, "return_indices": True},
                                            ((16, 64, 56, 56),), {}, False),
    "AvgPool2d 2 (16,64,56,56)": ("AvgPool2d", (2,), {}, ((16, 64, 56, 56),), {}, False),
    "AvgPool2d 3/2 ceil (16,64,56,56)": ("AvgPool2d", (3, 2), {"ceil_mode": True}, ((16, 64, 56, 56),), {}, False),
    "Conv3d 16->32 3x3x3 (4,16,16,32,32)": ("Conv3d", (16, 32, 3), {"padding": 1}, ((4, 16, 16, 32, 32),), {},
                                            False),
    "ConvTranspose1d 32->16 4/2 (8,32,1000)": ("ConvTranspose1d", (32, 16, 4), {"stride": 2, "padding": 1},
                                               ((8, 32, 1000),), {}, False),
    "MaxPool1d 3/2 indices (8,64,4000)": ("MaxPool1d", (3, 2, 1), {"return_indices": True}, ((8, 64, 4000),), {},
                                          False),
    "AvgPool1d 4 (8,64,4000)": ("AvgPool1d", (4,), {}, ((8, 64, 4000),), {}, False),
    "MaxPool3d 3/2 (4,16,16,32,32)": ("MaxPool3d", (3, 2, 1), {}, ((4, 16, 16, 32, 32),), {}, False),
    "AdaptiveAvgPool2d 1 (16,512,7,7)": ("AdaptiveAvgPool2d", (1,), {}, ((16, 512, 7, 7),), {}, False),
    "AdaptiveAvgPool2d 7 (8,64,56,56)": ("AdaptiveAvgPool2d", (7,), {}, ((8, 64, 56, 56),), {}, False),
    "InstanceNorm2d train (8,64,56,56)": ("InstanceNorm2d", (64,), {"affine": True}, ((8, 64, 56, 56),), {}, True),
    "InstanceNorm2d tracked train (8,64,56,56)": ("InstanceNorm2d", (64,), {"affine": True, "track_running_stats": True},
                                                  ((8, 64, 56, 56),), {}, True),
    "EmbeddingBag mean (512 bags of 20)": ("EmbeddingBag", (10000, 128), {}, (("ids", 512, 20),), {}, False),
    "EmbeddingBag mean (10240 ids, offsets)": ("EmbeddingBag", (10000, 128), {}, (("ids", 10240), ("range", 10240, 20)),
                                               {}, False),
    "BatchNorm2d train (16,64,32,32)": ("BatchNorm2d", (64,), {}, ((16, 64, 32, 32),), {}, True),
    "BatchNorm2d eval (16,64,32,32)": ("BatchNorm2d", (64,), {}, ((16, 64, 32, 32),), {}, False),
    "LayerNorm 768 (32,128,768)": ("LayerNorm", (768,), {}, ((32, 128, 768),), {}, False),
    "GroupNorm 32 (8,128,32,32)": ("GroupNorm", (32, 128), {}, ((8, 128, 32, 32),), {}, False),
    "RMSNorm 1024 (256,1024)": ("RMSNorm", (1024,), {}, ((256, 1024),), {}, False),
    "GELU (256,4096)": ("GELU", (), {}, ((256, 4096),), {}, False),
    "Softplus (256,4096)": ("Softplus", (), {}, ((256, 4096),), {}, False),
    "Hardswish (256,4096)": ("Hardswish", (), {}, ((256, 4096),), {}, False),
    "Tanhshrink (256,4096)": ("Tanhshrink", (), {}, ((256, 4096),), {}, False),
    "Softmax (16,8,128,128)": ("Softmax", (), {"dim": -1}, ((16, 8, 128, 128),), {}, False),
    "Embedding 30000x256 (64,128)": ("Embedding", (30000, 256), {}, (("ids", 64, 128),), {}, False),
    "MultiheadAttention 256/8 (64,16,256)": ("MultiheadAttention", (256, 8), {}, ((64, 16, 256),) * 3,
                                             {"need_weights": False}, False),
    "MultiheadAttention weights (64,16,256)": ("MultiheadAttention", (256, 8), {}, ((64, 16, 256),) * 3, {}, False),
    "TransformerEncoderLayer 256/8 (16,64,256)": ("TransformerEncoderLayer", (256, 8, 1024),
                                                  {"batch_first": True, "dropout": 0.0}, ((16, 64, 256),), {}, False),
    "LSTM 256 (50,16,256)": ("LSTM", (256, 256), {}, ((50, 16, 256),), {}, False),
    "LSTM 256 proj 128 (50,16,256)": ("LSTM", (256, 256), {"proj_size": 128}, ((50, 16, 256),), {}, False),
    "GRU 256 (50,16,256)": ("GRU", (256, 256), {}, ((50, 16, 256),), {}, False),
    "RNN 256 tanh (50,16,256)": ("RNN", (256, 256), {}, ((50, 16, 256),), {}, False),
    "LSTM 256 packed (50,16,256)": ("LSTM", (256, 256), {}, (("packed", 50, 16, 256),), {}, False),
    "LSTM 256 2 layers bidir. packed (50,16,256)": ("LSTM", (256, 256), {"num_layers": 2, "bidirectional": True},
                                                    (("packed", 50, 16, 256),), {}, False),
    "GRU 256 bidir. packed (50,16,256)": ("GRU", (256, 256), {"bidirectional": True}, (("packed", 50, 16, 256),), {},
                                          False),
    "LSTMCell 256 (16,256)": ("LSTMCell", (256, 256), {}, ((16, 256),), {}, False),
    "GRUCell 256 (16,256)": ("GRUCell", (256, 256), {}, ((16, 256),), {}, False),
    "RNNCell 256 (16,256)": ("RNNCell", (256, 256), {}, ((16, 256),), {}, False),
    "Upsample bilinear x2 (8,64,56,56)": ("Upsample", (), {"scale_factor": 2, "mode": "bilinear"},
                                          ((8, 64, 56, 56),), {}, False),
    "Upsample bicubic x2 (8,64,56,56)": ("Upsample", (), {"scale_factor": 2, "mode": "bicubic"}, ((8, 64, 56, 56),),
                                         {}, False),
    "Upsample nearest x2 (8,64,56,56)": ("Upsample", (), {"scale_factor": 2}, ((8, 64, 56, 56),), {}, False),
    "CrossMapLRN2d 5 (8,64,32,32)": ("CrossMapLRN2d", (5,), {}, ((8, 64, 32, 32),), {}, False),
    "CrossEntropyLoss 10000 classes (256,)": ("CrossEntropyLoss", (), {}, ((256, 10000), ("ids:10000", 256)), {},
                                              False),
    "AdaptiveLogSoftmaxWithLoss 20000 (512,512)": ("AdaptiveLogSoftmaxWithLoss", (512, 20000, [2000, 10000]), {},
                                                   ((512, 512), ("ids:20000", 512)), {}, False),
    "batch 1: Linear 16->16": ("Linear", (16, 16), {}, ((1, 16),), {}, False),
    "batch 1: ReLU": ("ReLU", (), {}, ((1, 16),), {}, False),
    "batch 1: LayerNorm 16": ("LayerNorm", (16,), {}, ((1, 16),), {}, False),
    "batch 1: Conv2d 3->8 3x3": ("Conv2d", (3, 8, 3), {"padding": 1}, ((1, 3, 8, 8),), {}, False),
    "batch 1: MaxPool2d 2": ("MaxPool2d", (2,), {}, ((1, 8, 8, 8),), {}, False),
    "batch 1: MultiheadAttention 16/2": ("MultiheadAttention", (16, 2), {}, ((4, 1, 16),) * 3,
                                         {"need_weights": False}, False),
    "batch 1: LSTMCell 16": ("LSTMCell", (16, 16), {}, ((1, 16),), {}, False),
    "batch 1: GRUCell 16": ("GRUCell", (16, 16), {}, ((1, 16),), {}, False),
    "batch 1: RNNCell 16": ("RNNCell", (16, 16), {}, ((1, 16),), {}, False),
}


def _inputs(shapes: tuple, put: Callable[[np.ndarray], Any], pack: Callable[[Any, list[int]], Any]) -> list[Any]:
    rng = np.random.default_rng(0)
    made = []
    for shape in shapes:
        if str(shape[0]).startswith("ids"):  # "ids" below 1000, "ids:N" below N
            made.append(put(rng.integers(0, int(shape[0][4:] or 1000), shape[1:])))
        elif shape[0] == "range":  # ("range", stop, step): bags' offsets
            made.append(put(np.arange(0, *shape[1:])))
        elif shape[0] == "packed":  # ("packed", T, B, F): B sequences of T/4 to T steps, unsorted, packed
            lengths = rng.integers(shape[1] // 4, shape[1] + 1, shape[2])
            lengths[0] = shape[1]
            made.append(pack(put(rng.standard_normal(shape[1:]).astype(np.float32)), lengths.tolist()))
        else:
            made.append(put(rng.standard_normal(shape).astype(np.float32)))
    return made


def _variants(library: str, device: str, label: str) -> dict[str, Callable[[], Any]]:
    import torch

    name, args, kwargs, shapes, forward_kwargs, train = CASES[label]
    put, _ = placement(library, device)
    torch.manual_seed(0)
    twin = getattr(torch.nn, name)(*args, **kwargs).to(device).train(train)
    module = getattr(nn, name)(*args, **kwargs).to(like=torch.empty(0, device=device)).train(train)
    module.load_state_dict(twin.state_dict())
    inputs = _inputs(shapes, put, functools.partial(rnn.pack_padded_sequence, enforce_sorted=False))
    twin_inputs = _inputs(shapes, put, functools.partial(torch.nn.utils.rnn.pack_padded_sequence, enforce_sorted=False))
    with torch.no_grad():
        return {"xpnn": torch.no_grad()(lambda: module(*inputs, **forward_kwargs)),
                "native": torch.no_grad()(lambda: twin(*twin_inputs, **forward_kwargs))}


def run(libraries: tuple[str, ...] = ("torch",), device: str = "cpu") -> list[dict]:
    """The rows on torch (the only library torch.nn runs on); other libraries are ignored."""
    return paired_rows(tuple(library for library in libraries if library == "torch"), device, CASES, _variants,
                       lambda library: "torch.nn")


def report(rows: list[dict]) -> str:
    batch_one = [f"{row['layer'].removeprefix('batch 1: ')} {1000 * row['xpnn_ms']:.1f} us vs "
                 f"{1000 * row['native_ms']:.1f} us" for row in rows if row["layer"].startswith("batch 1")]
    return (ratio_table(rows, (("device", "6"), ("layer", "44")), "ms")
            + ("\nbatch 1, per call: " + "; ".join(batch_one) if batch_one else ""))

"""Attention timings and memory: xpnn against torch's SDPA and MultiheadAttention and jitted jax.nn.

* torch: ``xpnn.dot_product_attention`` on ``(B, T, N, H)`` tensors against
  ``F.scaled_dot_product_attention`` on its own ``(B, N, T, H)`` layout (the boolean mask its
  True-attends form, GQA with ``enable_gqa``); ``xpnn.MultiHeadDotProductAttention`` against
  ``torch.nn.MultiheadAttention(batch_first=True)`` with the same weights, ``need_weights=False``;
* jax: jitted xpnn against jitted ``jax.nn.dot_product_attention``;
* numpy: xpnn (the blocked path where the scores exceed 64 MiB) against torch's CPU SDPA.

float32.  The memory table runs xpnn on NumPy at T = 4096 in one block and blocked, and at
T = 16384 blocked (the one-block scores would take 8 GiB), measuring the peak of NumPy's
allocations with ``tracemalloc``.
"""
from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

import xpnn as nn
from xpnn.benchmarks.activations import LIBRARIES, paired_rows, placement, ratio_table
from xpnn.functions import attention

#: label -> ((B, T, N, H), key/value heads, causal, masked)
CASES: dict[str, tuple[tuple[int, int, int, int], int, bool, bool]] = {
    "(4,512,8,64)": ((4, 512, 8, 64), 8, False, False),
    "(4,512,8,64) causal": ((4, 512, 8, 64), 8, True, False),
    "(4,512,8,64) masked": ((4, 512, 8, 64), 8, False, True),
    "(4,512,8,64) GQA 8:2": ((4, 512, 8, 64), 2, False, False),
    "(1,4096,16,64) causal": ((1, 4096, 16, 64), 16, True, False),
    "MHA module (4,512,512) 8 heads": ((4, 512, 8, 64), 8, False, False),
}


def _inputs(label: str) -> dict[str, np.ndarray]:
    (batch, rows, heads, depth), key_heads, _, masked = CASES[label]
    rng = np.random.default_rng(0)
    arrays = {"query": rng.standard_normal((batch, rows, heads, depth), dtype=np.float32),
              "key": rng.standard_normal((batch, rows, key_heads, depth), dtype=np.float32),
              "value": rng.standard_normal((batch, rows, key_heads, depth), dtype=np.float32)}
    if masked:
        arrays["mask"] = rng.random((batch, 1, rows, rows)) > 0.2
    return arrays


def _torch_sdpa(label: str, device: str) -> Callable[[], Any]:
    """torch's SDPA on its own layout: the call a torch user makes."""
    import torch
    import torch.nn.functional as F

    _, key_heads, causal, _ = CASES[label]
    inputs = {name: torch.from_numpy(a).to(device) for name, a in _inputs(label).items()}
    q, k, v = (inputs[name].transpose(1, 2).contiguous() for name in ("query", "key", "value"))
    mask = inputs.get("mask")
    gqa = key_heads != q.shape[1]
    return torch.no_grad()(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                                                   enable_gqa=gqa))


def _mha_variants(library: str, device: str) -> dict[str, Callable[[], Any]]:
    """xpnn's MultiHeadDotProductAttention on torch against torch.nn.MultiheadAttention, same weights."""
    import torch

    (batch, rows, heads, depth) = CASES["MHA module (4,512,512) 8 heads"][0]
    features = heads * depth
    x = np.random.default_rng(1).standard_normal((batch, rows, features), dtype=np.float32)
    twin = torch.nn.MultiheadAttention(features, heads, batch_first=True).to(device).eval()
    w_q, w_k, w_v = twin.in_proj_weight.detach().chunk(3)
    b_q, b_k, b_v = twin.in_proj_bias.detach().chunk(3)

    def dense(w, b):
        return {"kernel": w.T.reshape(features, heads, depth).contiguous(), "bias": b.reshape(heads, depth)}

    params = {"query": dense(w_q, b_q), "key": dense(w_k, b_k), "value": dense(w_v, b_v),
              "out": {"kernel": twin.out_proj.weight.detach().T.reshape(heads, depth, features).contiguous(),
                      "bias": twin.out_proj.bias.detach()}}
    layer = nn.MultiHeadDotProductAttention(num_heads=heads)
    xt = torch.from_numpy(x).to(device)
    with torch.no_grad():
        ours = layer.apply({"params": params}, xt)
        theirs = twin(xt, xt, xt, need_weights=False)[0]
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    return {"xpnn": torch.no_grad()(lambda: layer.apply({"params": params}, xt)),
            "native": torch.no_grad()(lambda: twin(xt, xt, xt, need_weights=False))}


def _variants(library: str, device: str, label: str) -> dict[str, Callable[[], Any]]:
    if label.startswith("MHA"):
        if library != "torch":
            raise _Skip
        return _mha_variants(library, device)
    _, _, causal, _ = CASES[label]
    host = _inputs(label)
    if library == "jax":
        import jax

        put = placement("jax", device)[0]
        arrays = {name: put(a) for name, a in host.items()}
        mine = jax.jit(lambda **a: nn.dot_product_attention(**a, is_causal=causal))
        theirs = jax.jit(lambda **a: jax.nn.dot_product_attention(**a, is_causal=causal))
        return {"xpnn": lambda: mine(**arrays), "native": lambda: theirs(**arrays)}
    put, _ = placement(library, device)
    arrays = {name: put(a) for name, a in host.items()}
    if library == "torch":
        import torch

        mine = torch.no_grad()(lambda: nn.dot_product_attention(**arrays, is_causal=causal))
        return {"xpnn": mine, "native": _torch_sdpa(label, "cpu" if device == "cpu" else device)}
    return {"xpnn": lambda: nn.dot_product_attention(**arrays, is_causal=causal),
            "native": _torch_sdpa(label, "cpu")}


class _Skip(Exception):
    """A case that does not apply to a library (the MHA module row runs on torch only)."""


def run(libraries: tuple[str, ...] = LIBRARIES["cpu"], device: str = "cpu") -> list[dict]:
    rows = []
    for library in libraries:
        for label in CASES:
            try:
                rows += paired_rows((library,), device, (label,), _variants, _versus(label))
            except _Skip:
                continue
    if "numpy" in libraries and device == "cpu":
        rows += memory_rows()
    return rows


def _versus(label: str) -> Callable[[str], str]:
    def versus(library: str) -> str:
        if label.startswith("MHA"):
            return "torch.nn.MultiheadAttention"
        return {"jax": "jax.nn (jit)", "torch": "torch SDPA"}.get(library, "torch SDPA (cpu)")

    return versus


def _peak_mib(function: Callable[[], Any]) -> tuple[float, float]:
    """Peak of the allocations made by ``function()`` in MiB (tracemalloc), and its time in s."""
    tracemalloc.start()
    started = time.perf_counter()
    function()
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20, elapsed


def memory_rows() -> list[dict]:
    """Peak extra memory of xpnn's attention on NumPy, (1, T, 8, 64) float32, causal, inputs excluded."""
    rows = []
    for rows_count, blocked in ((4096, False), (4096, True), (16384, True)):
        rng = np.random.default_rng(2)
        q, k, v = (rng.standard_normal((1, rows_count, 8, 64), dtype=np.float32) for _ in range(3))
        limit = attention.CHUNKED_ABOVE
        attention.CHUNKED_ABOVE = 0 if blocked else 1 << 62
        try:
            peak, seconds = _peak_mib(lambda: nn.dot_product_attention(q, k, v, is_causal=True))
        finally:
            attention.CHUNKED_ABOVE = limit
        rows.append({"library": "numpy", "memory": f"T={rows_count} {'blocked' if blocked else 'one block'}",
                     "peak_mib": peak, "one_block_scores_mib": 8 * rows_count * rows_count * 4 / 2**20,
                     "seconds": seconds})
    return rows


def report(rows: list[dict]) -> str:
    timed = [row for row in rows if "ratio" in row]
    table = ratio_table(timed, (("library", "8"), ("device", "6"), ("layer", "32"), ("versus", "28")), "ms")
    memory = [row for row in rows if "peak_mib" in row]
    if memory:
        table += "\n\nnumpy attention memory, (1, T, 8, 64) float32 causal (the one-block scores alone in brackets):"
        for row in memory:
            table += (f"\n  {row['memory']:22} peak {row['peak_mib']:8.0f} MiB  "
                      f"[{row['one_block_scores_mib']:6.0f} MiB]  {row['seconds']:6.1f} s")
    return table

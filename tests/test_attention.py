"""Attention against jax.nn and flax.linen: gradients, dropout, sown weights, the decode cache
under jax.jit, the blocked path, the torch fast path's choices, and the errors.

The conformance suite compares every function case and layer on every backend and dtype
(``conformance/attention.py``, ``LAYER_CASES``); here are what its generic checks cannot say.
"""
from __future__ import annotations

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import xpnn as nn
from xpnn.backends import dtype_name
from xpnn.functions import attention

jax.config.update("jax_enable_x64", True)


def _qkv(rng, batch=2, rows=5, columns=7, heads=4, key_heads=2, depth=8, dtype=np.float64):
    return (rng.standard_normal((batch, rows, heads, depth)).astype(dtype),
            rng.standard_normal((batch, columns, key_heads, depth)).astype(dtype),
            rng.standard_normal((batch, columns, key_heads, depth)).astype(dtype))


@pytest.mark.parametrize("fast", [True, False])
def test_gradients_equal_jax_on_torch_and_jax(fast):
    """d(sum(out * w)) by query, key, value and bias: torch autograd (SDPA or the written-once
    definition) and jax.grad of xpnn's, against jax.grad of jax.nn's, with a mask and causal."""
    rng = np.random.default_rng(0)
    q, k, v = _qkv(rng)
    bias = rng.standard_normal((1, 4, 5, 7))
    mask = rng.random((2, 1, 5, 7)) > 0.3
    weights = rng.standard_normal((2, 5, 4, 8))

    def loss(function, w):
        return lambda q, k, v, b: (function(q, k, v, b, mask_of(q), is_causal=True) * w).sum()

    def mask_of(q):
        return torch.from_numpy(mask) if isinstance(q, torch.Tensor) else jnp.asarray(mask)

    want = jax.grad(loss(jax.nn.dot_product_attention, jnp.asarray(weights)), argnums=(0, 1, 2, 3))(
        *map(jnp.asarray, (q, k, v, bias)))
    with nn.fast_paths(fast):
        got_jax = jax.grad(loss(nn.dot_product_attention, jnp.asarray(weights)), argnums=(0, 1, 2, 3))(
            *map(jnp.asarray, (q, k, v, bias)))
        tensors = [torch.tensor(a, requires_grad=True) for a in (q, k, v, bias)]
        loss(nn.dot_product_attention, torch.from_numpy(weights))(*tensors).backward()
    for name, w, gj, t in zip("qkvb", want, got_jax, tensors):
        # jax.nn's float64 softmax is rounded to float32; xpnn's is not
        np.testing.assert_allclose(np.asarray(gj), np.asarray(w), rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(t.grad.numpy(), np.asarray(w), rtol=1e-5, atol=1e-6, err_msg=name)


def test_torch_fast_path_runs_sdpa_and_agrees_on_fully_masked_rows(monkeypatch):
    """The torch path calls F.scaled_dot_product_attention, and a fully masked row gives the mean
    of the values (jax.nn's answer; a boolean SDPA mask would give NaN or 0 there)."""
    import backends.torch as torch_backend

    calls = []
    sdpa = torch_backend.F.scaled_dot_product_attention
    monkeypatch.setattr(torch_backend.F, "scaled_dot_product_attention",
                        lambda *a, **k: calls.append(k) or sdpa(*a, **k))
    q, k, v = (torch.from_numpy(a) for a in _qkv(np.random.default_rng(1), dtype=np.float32))
    mask = torch.ones((2, 1, 5, 7), dtype=torch.bool)
    mask[:, :, 2] = False
    out = nn.dot_product_attention(q, k, v, mask=mask)
    assert calls and calls[-1]["enable_gqa"]
    repeated = v.repeat_interleave(2, dim=2)
    torch.testing.assert_close(out[:, 2], repeated.mean(dim=1))
    want = jax.nn.dot_product_attention(*(jnp.asarray(t.numpy()) for t in (q, k, v)), mask=jnp.asarray(mask.numpy()))
    np.testing.assert_allclose(out.numpy(), np.asarray(want), rtol=1e-5, atol=1e-6)


def test_blocked_path_runs_in_blocks_and_equals_one_block(monkeypatch):
    """With a low threshold the scores are made in blocks of at most BLOCK_ELEMENTS (counted
    through matmul's output sizes), and the result equals the one-block one (NumPy, float64)."""
    rng = np.random.default_rng(2)
    q, k, v = _qkv(rng, batch=1, rows=40, columns=50, heads=2, key_heads=1)
    mask = rng.random((1, 2, 40, 50)) > 0.2
    with nn.fast_paths(False):
        whole = nn.dot_product_attention(q, k, v, mask=mask, local_window_size=(30, 3))
    monkeypatch.setattr(attention, "CHUNKED_ABOVE", 0)
    monkeypatch.setattr(attention, "BLOCK_ELEMENTS", 2 * 8 * 16)
    sizes = []
    matmul = np.matmul

    def counting(a, b):
        out = matmul(a, b)
        sizes.append(out.size)
        return out

    monkeypatch.setattr(np, "matmul", counting)
    with nn.fast_paths(False):
        blocked = nn.dot_product_attention(q, k, v, mask=mask, local_window_size=(30, 3))
    monkeypatch.undo()
    assert len(sizes) > 10 and max(sizes) <= 2 * 8 * 16
    np.testing.assert_allclose(blocked, whole, rtol=1e-13, atol=1e-14)


@settings(max_examples=5, deadline=None)
@given(batch=st.integers(1, 2), rows=st.integers(1, 6), columns=st.integers(1, 6), key_heads=st.integers(1, 2),
       groups=st.integers(1, 3), causal=st.booleans(), window=st.one_of(st.none(), st.integers(0, 3)))
def test_any_shape_matches_jax(batch, rows, columns, key_heads, groups, causal, window):
    q, k, v = _qkv(np.random.default_rng(3), batch, rows, columns, key_heads * groups, key_heads, 4, np.float32)
    lengths = np.asarray([columns] + [max(columns - 1, 1)] * (batch - 1), np.int32)
    kwargs = dict(is_causal=causal, local_window_size=window)
    want = jax.nn.dot_product_attention(q, k, v, key_value_seq_lengths=jnp.asarray(lengths), **kwargs)
    for convert in (np.asarray, torch.from_numpy):
        got = nn.dot_product_attention(convert(q), convert(k), convert(v), key_value_seq_lengths=convert(lengths),
                                       **kwargs)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=2e-5, atol=2e-6)


def test_errors_name_the_function_and_the_argument():
    q, k, v = _qkv(np.random.default_rng(4), heads=3, key_heads=2)
    with pytest.raises(ValueError, match="xpnn.dot_product_attention: The number of query heads must be a "
                                         "multiple of key/value heads, but got 3 vs 2"):
        nn.dot_product_attention(q, k, v)
    q, k, v = _qkv(np.random.default_rng(4))
    with pytest.raises(ValueError, match="xpnn.dot_product_attention: mask dtype should be bool, but got float"):
        nn.dot_product_attention(q, k, v, mask=np.ones((5, 7)))
    with pytest.raises(ValueError, match=r"mask of shape \(3, 7\) does not broadcast to \(B, N, T, S\)"):
        nn.dot_product_attention(q, k, v, mask=np.ones((3, 7), bool))
    with pytest.raises(ValueError, match="value dtype should be float64, but got float32"):
        nn.dot_product_attention(q, k, v.astype(np.float32))
    with pytest.raises(ValueError, match="implementation='cudnn' needs jax with cuDNN"):
        nn.dot_product_attention(q, k, v, implementation="cudnn")
    with pytest.raises(ValueError, match="implementation must be None, 'xla' or 'cudnn', got 'flash'"):
        nn.dot_product_attention(q, k, v, implementation="flash")
    with pytest.raises(ValueError, match=r"key_value_seq_lengths shape should be \(2,\)"):
        nn.dot_product_attention(q, k, v, key_value_seq_lengths=np.ones(3, np.int32))
    with pytest.raises(nn.ModuleError, match=r"MultiHeadDotProductAttention: Memory dimension \(12\) must be "
                                             r"divisible by number of heads \(5\)"):
        nn.MultiHeadDotProductAttention(num_heads=5).init(nn.random.key(0), np.ones((2, 3, 12), np.float32))


def test_attention_dropout_and_sown_weights_equal_flax():
    """MultiHeadDotProductAttention with dropout 0.3 (one broadcast mask, the 'dropout' key's) and
    sow_weights: output and intermediates equal flax's (xpnn.random draws jax.random's bits)."""
    x = np.random.default_rng(5).standard_normal((2, 4, 8)).astype(np.float32)
    settings_ = dict(num_heads=2, dropout_rate=0.3, deterministic=False)
    flax_layer = fnn.MultiHeadDotProductAttention(**settings_)
    variables = flax_layer.init(jax.random.key(0), x)
    with jax.enable_x64(False):
        want, want_state = flax_layer.apply(variables, x, rngs={"dropout": jax.random.key(7)}, sow_weights=True,
                                            mutable=["intermediates"])
    ours = nn.MultiHeadDotProductAttention(**settings_)
    got, state = ours.apply(nn.tree_map(np.asarray, variables), x, rngs={"dropout": nn.random.key(7)},
                            sow_weights=True, mutable=["intermediates"])
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state["intermediates"]["attention_weights"][0],
                               np.asarray(want_state["intermediates"]["attention_weights"][0]), rtol=1e-5, atol=1e-7)
    with pytest.raises(nn.ModuleError, match='Parameter "deterministic" must be passed'):
        nn.MultiHeadDotProductAttention(num_heads=2, dropout_rate=0.3).apply(nn.tree_map(np.asarray, variables), x)


def test_decode_cache_steps_under_jax_jit_equal_the_full_causal_pass():
    """One jitted step function (the cache index stays an array): 8 steps equal flax's causal pass."""
    x = np.random.default_rng(6).standard_normal((2, 8, 8)).astype(np.float32)
    layer = nn.MultiHeadDotProductAttention(num_heads=2, decode=True)
    variables = nn.to_backend(layer.init(nn.random.key(0), jnp.asarray(x)), jnp.zeros(1))
    step = jax.jit(lambda variables, token: layer.apply(variables, token, mutable=["cache"]))
    outputs = []
    for t in range(8):
        out, cache = step(variables, jnp.asarray(x[:, t:t + 1]))
        variables = {**variables, **cache}
        outputs.append(np.asarray(out))
    assert int(variables["cache"]["cache_index"]) == 8
    full = fnn.MultiHeadDotProductAttention(num_heads=2).apply(
        {"params": nn.tree_map(np.asarray, variables["params"])}, x, mask=fnn.make_causal_mask(x[..., 0]))
    np.testing.assert_allclose(np.concatenate(outputs, 1), np.asarray(full), rtol=1e-5, atol=1e-6)
    with pytest.raises(nn.ModuleError, match="Autoregressive cache shape error"):
        layer.apply(variables, jnp.asarray(x[:, :2]), mutable=["cache"])


def test_low_precision_module_promotes_like_flax():
    """bfloat16 inputs with float32 params compute in float32 (flax's promotion), and dtype='bfloat16'
    keeps bfloat16 with flax's softmax in bfloat16."""
    x = np.random.default_rng(7).standard_normal((2, 4, 8)).astype(np.float32)
    for settings_ in (dict(num_heads=2), dict(num_heads=2, dtype=jnp.bfloat16)):
        flax_layer = fnn.MultiHeadDotProductAttention(**settings_)
        variables = flax_layer.init(jax.random.key(0), x)
        want = flax_layer.apply(variables, jnp.asarray(x, jnp.bfloat16))
        ours = nn.MultiHeadDotProductAttention(**{**settings_, "dtype": settings_.get("dtype") and "bfloat16"})
        got = ours.apply(nn.to_backend(variables, torch.zeros(1)), torch.from_numpy(x).to(torch.bfloat16))
        assert str(got.dtype).rsplit(".", 1)[-1] == str(want.dtype)
        np.testing.assert_allclose(got.float().numpy(), np.asarray(want, np.float32), rtol=0.05, atol=0.05)


def test_scaled_dot_general_configs_errors_and_gradient():
    """jax's configs are taken as xpnn's; without configs it is jax.lax.dot_general; a contracted
    size that is no multiple of the block is refused; torch's gradient passes straight through
    the rounding, close to the unquantized product's."""
    rng = np.random.default_rng(8)
    lhs, rhs = rng.standard_normal((4, 64)).astype(np.float32), rng.standard_normal((64, 3)).astype(np.float32)
    numbers = (((1,), (0,)), ((), ()))
    ours = nn.scaled_dot_general(lhs, rhs, numbers, configs=[nn.get_scaled_dot_general_config("mxfp8")] * 3)
    theirs = nn.scaled_dot_general(lhs, rhs, [[[1], [0]], [[], []]],
                                   configs=[jax.nn.get_scaled_dot_general_config("mxfp8")] * 3)
    np.testing.assert_array_equal(ours, theirs)
    assert 0 < np.abs(ours - lhs @ rhs).max() < 0.2 * np.abs(lhs @ rhs).max()
    np.testing.assert_allclose(nn.scaled_dot_general(lhs, rhs, numbers),
                               np.asarray(jax.lax.dot_general(lhs, rhs, numbers)), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="xpnn.scaled_dot_general: the contracted size 48 must be a multiple of "
                                         "the block size 32 of mode 'mxfp8'"):
        nn.scaled_dot_general(lhs[:, :48], rhs[:48], numbers, configs=[nn.get_scaled_dot_general_config("mxfp8")] * 3)
    with pytest.raises(ValueError, match="Unsupported mode: 'fp8'"):
        nn.get_scaled_dot_general_config("fp8")
    a = torch.tensor(lhs, requires_grad=True)
    b = torch.from_numpy(rhs)
    configs = [nn.get_scaled_dot_general_config("nvfp4", 0.5)] * 3
    nn.scaled_dot_general(a, b, numbers, configs=configs).sum().backward()
    assert torch.isfinite(a.grad).all()
    want = b.sum(dim=1)  # the gradient of the unquantized product, which the rounding passes through
    assert float((a.grad - want).abs().mean()) < 0.25 * float(want.abs().mean())  # float4: one mantissa bit


@pytest.mark.parametrize("rows, columns", [(3, 0), (0, 0), (0, 3)], ids=["no keys", "nothing", "no queries"])
def test_attention_of_empty_sequences_equals_jax(backend, rows, columns):
    """No keys: jax.nn's empty sums, zeros; no queries: an empty output (as the module too)."""
    rng = np.random.default_rng(5)
    q, k = rng.standard_normal((2, rows, 2, 4)), rng.standard_normal((2, columns, 2, 4))
    want = np.asarray(jax.nn.dot_product_attention(jnp.asarray(q, jnp.float32), jnp.asarray(k, jnp.float32),
                                                   jnp.asarray(k, jnp.float32)))
    got = nn.dot_product_attention(backend.asarray(q, "float32"), backend.asarray(k, "float32"),
                                   backend.asarray(k, "float32"))
    np.testing.assert_array_equal(backend.to_numpy(got), want)
    layer = nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=4)
    variables = layer.init(nn.random.key(0), np.ones((2, 1, 4), np.float32))
    x = backend.asarray(q, "float32")[..., 0, :]  # (2, rows, 4)
    out = layer.apply(nn.to_backend(variables, x), x)
    assert tuple(out.shape) == (2, rows, 4)


def test_combine_masks_equals_flaxs(backend):
    """xpnn.layers.combine_masks: the AND of the masks given (None skipped), in ``dtype``; None
    when all are None; masks of two ranks are an error naming the function."""
    rng = np.random.default_rng(11)
    first, second = rng.random((2, 1, 3, 4)) > 0.3, rng.random((2, 1, 3, 4)) > 0.6
    for masks, dtype in (((first, None, second), "float32"), ((None, first), "bool"), ((first, second), "int32")):
        want = fnn.combine_masks(*(None if m is None else jnp.asarray(m) for m in masks), dtype=jnp.dtype(dtype))
        got = nn.layers.combine_masks(*(None if m is None else backend.asarray(m, "bool") for m in masks), dtype=dtype)
        assert dtype_name(got.dtype) == dtype
        np.testing.assert_array_equal(backend.to_numpy(got), np.asarray(want))
    assert nn.layers.combine_masks(None, None) is None and fnn.combine_masks(None, None) is None
    with pytest.raises(ValueError, match=r"xpnn.layers.combine_masks: masks must have same rank: \(4, 3\)"):
        nn.layers.combine_masks(backend.asarray(first, "bool"), backend.asarray(first[0], "bool"))

"""The adapter primitives the layer families build on: ``conv_general_dilated``,
``reduce_window`` and ``scan``, native and standard-only, against ``jax.lax``.

Every backend's adapter (its native version where it has one) and the
standard-only fallback are compared with ``jax.lax`` in float64 over random
shapes, strides, paddings (negative ones crop), dilations and groups.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xpnn._dispatch import adapter_of
from xpnn.backends import Adapter
from xpnn.backends._primitives import Primitives

jax.config.update("jax_enable_x64", True)
JAX = adapter_of(jnp.zeros(1))


def _both(backend):
    """The backend's adapter, and one that has only the standard-only primitives."""
    adapter = adapter_of(backend.asarray(np.zeros(1), "float64"))
    return {"native": adapter, "standard-only": Adapter(adapter.xp)}


@st.composite
def convolutions(draw):
    spatial = draw(st.integers(1, 3))
    groups = draw(st.sampled_from((1, 2)))
    window = tuple(draw(st.integers(1, 3)) for _ in range(spatial))
    rhs_dilation = tuple(draw(st.integers(1, 2)) for _ in range(spatial))
    lhs_dilation = tuple(draw(st.sampled_from((1, 1, 2))) for _ in range(spatial))
    padding = tuple((draw(st.integers(-1, 2)), draw(st.integers(-1, 2))) for _ in range(spatial))
    strides = tuple(draw(st.integers(1, 2)) for _ in range(spatial))
    # big enough that every output size is at least 1 (jax refuses empty ones)
    sizes = tuple(draw(st.integers((w - 1) * d + 3, (w - 1) * d + 5)) for w, d in zip(window, rhs_dilation))
    channels = groups * draw(st.integers(1, 2))
    outputs = groups * draw(st.integers(1, 2))
    return {"lhs": (draw(st.integers(1, 2)), *sizes, channels), "rhs": (*window, channels // groups, outputs),
            "window_strides": strides, "padding": padding, "lhs_dilation": lhs_dilation,
            "rhs_dilation": rhs_dilation, "feature_group_count": groups}


# Dask builds graphs of many strided slices (the layer cases run it by default); jax's native
# version is jax.lax itself, and its standard-only one is run eagerly op by op: --full runs them.
@pytest.mark.slow_on("dask", "jax")
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=convolutions(), seed=st.integers(0, 2**16), with_bias=st.booleans())
def test_conv_general_dilated_matches_jax_lax(backend, case, seed, with_bias):
    """jax.lax's convolution, plus an optional bias per output feature (which torch adds in its kernel)."""
    rng = np.random.default_rng(seed)
    lhs, rhs = rng.standard_normal(case.pop("lhs")), rng.standard_normal(case.pop("rhs"))
    spatial = "DHW"[5 - lhs.ndim:]
    want = np.asarray(jax.lax.conv_general_dilated(jnp.asarray(lhs), jnp.asarray(rhs),
                                                   dimension_numbers=(f"N{spatial}C", f"{spatial}IO", f"N{spatial}C"),
                                                   **case))
    bias = rng.standard_normal(rhs.shape[-1]) if with_bias else None
    if bias is not None:
        want = want + bias
    for kind, adapter in _both(backend).items():
        got = adapter.conv_general_dilated(backend.asarray(lhs, "float64"), backend.asarray(rhs, "float64"), **case,
                                           bias=None if bias is None else backend.asarray(bias, "float64"))
        got = backend.to_numpy(got)
        assert got.shape == want.shape, (kind, got.shape, want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=kind)


@pytest.mark.parametrize("image", [(5, 4, 0), (0, 4, 2)], ids=["no channels", "no rows"])
@pytest.mark.parametrize("lhs_dilation", [1, 2], ids=["plain", "transposed"])
@pytest.mark.parametrize("with_bias", [False, True])
def test_conv_of_empty_images_is_zeros_or_the_bias(backend, image, lhs_dilation, with_bias):
    """An input without channels, or without rows (padded to some): every sum is empty, so the
    output has the kernel's features, 0 (plus the bias) everywhere, as jax.lax gives it (torch's
    kernels give no features for no channels and refuse no rows)."""
    lhs, rhs = np.ones((2, *image)), np.ones((3, 2, image[-1], 3))
    bias = np.arange(3.0) + 1 if with_bias else None
    case = {"window_strides": (1, 1), "padding": ((2, 2), (0, 1)), "lhs_dilation": (lhs_dilation, 1),
            "rhs_dilation": (1, 1)}
    want = np.asarray(jax.lax.conv_general_dilated(lhs, rhs, dimension_numbers=("NHWC", "HWIO", "NHWC"), **case))
    want = want if bias is None else want + bias
    for kind, adapter in _both(backend).items():
        b = None if bias is None else backend.asarray(bias, "float64")
        got = adapter.conv_general_dilated(backend.asarray(lhs, "float64"), backend.asarray(rhs, "float64"), **case,
                                           bias=b)
        np.testing.assert_array_equal(backend.to_numpy(got), want, err_msg=kind)
        first = adapter.conv_channels_first(backend.asarray(np.moveaxis(lhs, -1, 1), "float64"),
                                            backend.asarray(np.transpose(rhs, (3, 2, 0, 1)), "float64"),
                                            case["window_strides"], case["padding"], case["lhs_dilation"],
                                            case["rhs_dilation"], 1, b)
        np.testing.assert_array_equal(backend.to_numpy(first), np.moveaxis(want, -1, 1), err_msg=kind)


@pytest.mark.parametrize("kernel", [(3, 2, 3, 4), (4, 2, 8, 4)], ids=["kernel rows", "kernel rows at once"])
@pytest.mark.parametrize("block_bytes", [1, 5000, 20000, 1 << 25], ids=["row", "rows", "images", "default"])
@pytest.mark.parametrize("dilation", [(1, 1), (2, 3)])
@pytest.mark.parametrize("strides", [(2, 1), (1, 1), (1, 2)], ids=["patch matrix", "rows of windows", "rows, strided"])
def test_numpy_patch_blocks_match_jax_lax(monkeypatch, block_bytes, dilation, strides, kernel):
    """NumPy's ungrouped 2-D convolution in blocks: of its patch matrix (a stride along the first
    axis), or of its rows of windows (a unit stride there), by kernel row or with all kernel rows
    in one product (a tall kernel of few features): one row, several rows of an image, several
    images per block (a small block size makes the small case take each branch)."""
    from xpnn.backends import numpy as numpy_backend
    monkeypatch.setattr(numpy_backend, "_PATCH_BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(7)
    lhs, rhs = rng.standard_normal((5, 9, 11, kernel[2])), rng.standard_normal(kernel)
    case = {"window_strides": strides, "padding": ((1, 2), (0, 1)), "lhs_dilation": (1, 1), "rhs_dilation": dilation}
    want = jax.lax.conv_general_dilated(jnp.asarray(lhs), jnp.asarray(rhs), dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        **case)
    got = adapter_of(lhs).conv_general_dilated(lhs, rhs, **case)
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("images, length, window, stride, channels, features", [
    (3, 64, 3, 1, 2, 5),  # 3 phases of 22 and 21 outputs
    (3, 303, 16, 4, 3, 5),  # 4 phases: 19 outputs, then 18
    (3, 300, 7, 9, 1, 5),  # a stride past the window: one phase, gaps between windows
    (3, 1500, 80, 4, 1, 5),  # 20 phases
    (1, 1500, 80, 4, 1, 5),  # one image: the phases split among the threads, then the bias
    (2, 1600, 3, 1, 2, 40),  # many features, 533 outputs per phase
    (3, 45, 5, 1, 2, 5),  # 41 outputs, 8 per phase: the patch matrix instead
    (2, 300, 3, 1, 2, 40),  # many features, 100 outputs per phase: the patch matrix instead
])
@pytest.mark.parametrize("split", [False, True], ids=["one thread", "phases split among threads"])
def test_numpy_1d_phase_products_match_jax_lax(monkeypatch, images, length, window, stride, channels, features,
                                               split):
    """NumPy's 1-D convolution by phases (each phase's windows a view of the input, ``_phase_products``),
    padded asymmetrically, with a bias, against jax.lax: in blocks of images that take the bias
    each, or for one image the phases split among the threads; two cases whose phases are too short."""
    from xpnn.backends import _numpy_slices
    if split:
        monkeypatch.setitem(_numpy_slices.SLICED_FROM, "memory", 0)
    rng = np.random.default_rng(11)
    lhs, rhs = rng.standard_normal((images, length, channels)), rng.standard_normal((window, channels, features))
    bias = rng.standard_normal(features)
    case = {"window_strides": (stride,), "padding": ((2, 1),), "lhs_dilation": (1,), "rhs_dilation": (1,)}
    want = jax.lax.conv_general_dilated(jnp.asarray(lhs), jnp.asarray(rhs), dimension_numbers=("NWC", "WIO", "NWC"),
                                        **case)
    got = adapter_of(lhs).conv_general_dilated(lhs, rhs, **case, bias=bias)
    np.testing.assert_allclose(got, np.asarray(want) + bias, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("features", [70, 4096, 20000])
def test_numpy_bias_is_added_over_tiles(features):
    """NumPy adds a bias to large products over tiles of it (whole tiles of rows, then the rows
    left over; a row wider than a tile is one): the same numbers as ``x @ kernel + bias``, in the
    dense and convolution primitives."""
    from xpnn.backends import numpy as numpy_backend
    rng = np.random.default_rng(5)
    rows = 3 * max(1, numpy_backend._TILE // features) + 5
    x, kernel, bias = rng.standard_normal((rows, 6)), rng.standard_normal((6, features)), rng.standard_normal(features)
    ops = adapter_of(x)
    np.testing.assert_array_equal(ops.dense(x, kernel, bias), np.dot(x, kernel) + bias)
    one = (1,)
    got = ops.conv_general_dilated(x[None], kernel[None], one, ((0, 0),), one, one, 1, bias)
    np.testing.assert_array_equal(got[0], np.dot(x, kernel) + bias)


@pytest.mark.parametrize("lhs_dilation, rhs_dilation, padding, groups", [
    ((2, 3), (1, 1), ((2, 2), (3, 1)), 1),
    ((2, 2), (1, 2), ((3, 0), (-1, 2)), 2),
    ((3, 1), (2, 3), ((0, 4), (1, 1)), 1),
    ((4, 2), (1, 1), ((1, -1), (0, 0)), 1),  # a 3-position window over dilation 4: some outputs stay 0
])
def test_numpy_input_dilated_conv_matches_jax_lax(lhs_dilation, rhs_dilation, padding, groups):
    """NumPy's input-dilated (transposed) convolution, which skips the inserted zeros, against
    jax.lax: asymmetric and negative padding, kernel dilation, groups."""
    rng = np.random.default_rng(3)
    lhs, rhs = rng.standard_normal((2, 5, 6, 4)), rng.standard_normal((3, 4, 4 // groups, 6))
    case = {"window_strides": (1, 1), "padding": padding, "lhs_dilation": lhs_dilation,
            "rhs_dilation": rhs_dilation, "feature_group_count": groups}
    want = jax.lax.conv_general_dilated(jnp.asarray(lhs), jnp.asarray(rhs), dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        **case)
    got = adapter_of(lhs).conv_general_dilated(lhs, rhs, **case)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("strides, lhs_dilation, rhs_dilation, padding", [
    ((1, 1), (1, 1), (1, 1), ((1, 1), (1, 1))),
    ((2, 1), (1, 1), (2, 1), ((0, 2), (-1, 1))),
    ((2, 2), (2, 1), (1, 1), ((1, 0), (2, 2))),  # a strided input dilation: zeros inserted first
])
@pytest.mark.parametrize("groups, channels, features", [(2, 16, 12), (3, 24, 6), (4, 8, 4)])
def test_numpy_grouped_conv_by_group_matches_jax_lax(strides, lhs_dilation, rhs_dilation, padding, groups, channels,
                                                      features):
    """NumPy's grouped convolution with several channels per group, computed group by group as
    dense ones, against jax.lax, with a bias."""
    rng = np.random.default_rng(6)
    lhs, rhs = rng.standard_normal((2, 9, 8, channels)), rng.standard_normal((3, 2, channels // groups, features))
    bias = rng.standard_normal(features)
    case = {"window_strides": strides, "padding": padding, "lhs_dilation": lhs_dilation,
            "rhs_dilation": rhs_dilation, "feature_group_count": groups}
    want = jax.lax.conv_general_dilated(jnp.asarray(lhs), jnp.asarray(rhs), dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        **case)
    got = adapter_of(lhs).conv_general_dilated(lhs, rhs, **case, bias=bias)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, np.asarray(want) + bias, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("window, rhs_dilation, lhs_dilation, groups", [
    (3, 1, 2, 1), (4, 1, 2, 1), (3, 2, 2, 1), (2, 1, 3, 1), (3, 1, 2, 2), (4, 2, 3, 4)])
def test_torch_transposed_conv_takes_every_pad_pair(window, rhs_dilation, lhs_dilation, groups):
    """torch's transposed-convolution kernel takes (low, high) paddings of an input-dilated
    correlation whose low side the kernel reaches, across each side's range, the high side
    narrower than the low one included (lax's "SAME" for a 3-wide kernel and stride 2, flax ConvTranspose's default, is
    (2, 1): it went to the standard-only tap loop, 20x slower), and grouped kernels (which went
    there too: 37 against 2.3 ms for torch_nn's ConvTranspose2d(64, 32, 4, 2, 1, groups=2)), and
    gives jax.lax's result."""
    import torch

    from backends.torch import _conv_transpose

    rng = np.random.default_rng(4)
    lhs, bias = rng.standard_normal((2, 5, 6, 4)), rng.standard_normal(8)
    rhs = rng.standard_normal((window, 2, 4 // groups, 8))
    reach = (window - 1) * rhs_dilation
    for low in sorted({0, reach // 2, reach}):  # the edges of each side's range, and where torch's cases change
        for high in sorted({-1, 0, low - 1, low, low + 1, low + lhs_dilation - 1, low + lhs_dilation} - {-2}):
            padding = ((low, high), (1, 1))
            case = {"window_strides": (1, 1), "padding": padding, "lhs_dilation": (lhs_dilation, 1),
                    "rhs_dilation": (rhs_dilation, 1), "feature_group_count": groups}
            want = np.asarray(jax.lax.conv_general_dilated(jnp.asarray(lhs), jnp.asarray(rhs),
                                                           dimension_numbers=("NHWC", "HWIO", "NHWC"), **case)) + bias
            weight = torch.movedim(torch.movedim(torch.from_numpy(rhs), -1, 0), -1, 1)
            got = _conv_transpose(torch.movedim(torch.from_numpy(lhs), -1, 1), weight, (1, 1), padding,
                                  (lhs_dilation, 1), (rhs_dilation, 1), groups, torch.from_numpy(bias))
            if high - low >= lhs_dilation:  # torch's output_padding must be below the stride
                assert got is None
                continue
            assert got is not None, padding
            got = torch.movedim(got, 1, -1).numpy()
            assert got.shape == want.shape, (padding, got.shape, want.shape)
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=str(padding))


@pytest.mark.parametrize("lhs_shape, window, strides, rhs_dilation, padding", [
    ((2, 9, 5), (3,), (1,), (1,), ((1, 1),)),
    ((3, 7, 6, 8), (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),
    ((2, 9, 8, 5), (2, 3), (2, 1), (2, 2), ((0, 1), (2, -1))),  # strides and dilation on the leading axis
    ((2, 6, 7, 5, 3), (2, 3, 2), (1, 2, 1), (1, 1, 2), ((1, 0), (0, 1), (1, 1))),
])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("with_bias", [False, True])
def test_numpy_depthwise_conv_matches_jax_lax(lhs_shape, window, strides, rhs_dilation, padding, dtype, with_bias):
    """NumPy's depthwise convolution (one einsum over each row's windows of each image padded in
    a buffer of its own, the weights tiled along the row, the bias added per image) against
    jax.lax, in 1 to 3 dimensions."""
    rng = np.random.default_rng(5)
    channels = lhs_shape[-1]
    lhs = rng.standard_normal(lhs_shape).astype(dtype)
    rhs = rng.standard_normal((*window, 1, channels)).astype(dtype)
    bias = rng.standard_normal(channels).astype(dtype) if with_bias else None
    spatial = "DHW"[3 - len(window):]
    case = {"window_strides": strides, "padding": padding, "lhs_dilation": (1,) * len(window),
            "rhs_dilation": rhs_dilation, "feature_group_count": channels}
    want = jax.lax.conv_general_dilated(jnp.asarray(lhs), jnp.asarray(rhs),
                                        dimension_numbers=(f"N{spatial}C", f"{spatial}IO", f"N{spatial}C"),
                                        precision="highest", **case)
    want = np.asarray(want) if bias is None else np.asarray(want) + bias
    got = adapter_of(lhs).conv_general_dilated(lhs, rhs, **case, bias=bias)
    assert got.shape == want.shape and got.dtype == lhs.dtype
    tolerance = 1e-12 if dtype == "float64" else 2e-6
    np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance)


@pytest.mark.slow_on("dask", "jax")
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=convolutions(), seed=st.integers(0, 2**16), with_bias=st.booleans())
def test_conv_channels_first_matches_jax_lax(backend, case, seed, with_bias):
    """The torch-layout twin: ``(N, C, *spatial)`` input, ``(O, C // groups, *window)`` kernel,
    ``(N, O, *out)`` output and an optional bias per output channel."""
    rng = np.random.default_rng(seed)
    lhs, rhs = rng.standard_normal(case.pop("lhs")), rng.standard_normal(case.pop("rhs"))
    rank = lhs.ndim - 2
    lhs, rhs = np.moveaxis(lhs, -1, 1), np.transpose(rhs, (rank + 1, rank, *range(rank)))
    bias = rng.standard_normal(rhs.shape[0]) if with_bias else None
    layout = ("NC" + "DHW"[3 - rank:], "OI" + "DHW"[3 - rank:], "NC" + "DHW"[3 - rank:])
    want = np.asarray(jax.lax.conv_general_dilated(jnp.asarray(lhs), jnp.asarray(rhs), dimension_numbers=layout, **case))
    if bias is not None:
        want = want + bias.reshape(-1, *(1,) * rank)
    for kind, adapter in _both(backend).items():
        got = adapter.conv_channels_first(backend.asarray(lhs, "float64"), backend.asarray(rhs, "float64"),
                                          case["window_strides"], case["padding"], case["lhs_dilation"],
                                          case["rhs_dilation"], case["feature_group_count"],
                                          None if bias is None else backend.asarray(bias, "float64"))
        got = backend.to_numpy(got)
        assert got.shape == want.shape, (kind, got.shape, want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=kind)


@pytest.mark.parametrize("rank, strides, padding, output_padding, groups, dilation", [
    (2, (2, 2), (1, 1), (0, 0), 1, (1, 1)),
    (2, (2, 3), (0, 2), (1, 2), 2, (1, 2)),
    (1, (3,), (1,), (2,), 4, (2,)),
    (3, (1, 2, 2), (0, 1, 0), (0, 1, 0), 1, (1, 1, 1)),
])
@pytest.mark.slow_on("dask", "jax")
def test_conv_transpose_channels_first_matches_torch(backend, rank, strides, padding, output_padding, groups, dilation):
    """torch's transposed convolution in its layouts (``(C, O // groups, *window)`` kernel, torch's
    ``padding`` and ``output_padding``), natively and standard-only, against torch's own
    ``F.conv_transpose1d/2d/3d`` with a bias."""
    import torch

    rng = np.random.default_rng(7)
    lhs, rhs = rng.standard_normal((2, 4, *(5, 4, 3)[:rank])), rng.standard_normal((4, 2, *(3, 2, 2)[:rank]))
    bias = rng.standard_normal(2 * groups)
    transpose = (torch.nn.functional.conv_transpose1d, torch.nn.functional.conv_transpose2d,
                 torch.nn.functional.conv_transpose3d)[rank - 1]
    want = transpose(*(torch.from_numpy(a) for a in (lhs, rhs, bias)), strides, padding, output_padding, groups,
                     dilation).numpy()
    for kind, adapter in _both(backend).items():
        got = adapter.conv_transpose_channels_first(*(backend.asarray(a, "float64") for a in (lhs, rhs)), strides,
                                                    padding, output_padding, groups, dilation,
                                                    backend.asarray(bias, "float64"))
        got = backend.to_numpy(got)
        assert got.shape == want.shape, (kind, got.shape, want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=kind)


@pytest.mark.parametrize("mode, pads", [
    ("constant", ((0, 0), (0, 0), (2, 1), (0, 3))),
    ("constant", ((0, 0), (1, 0), (-1, 2), (2, -2))),  # negative sides crop
    ("reflect", ((0, 0), (0, 0), (2, 1), (3, 0))),
    ("reflect", ((0, 0), (0, 0), (0, 0), (1, 2))),
    ("reflect", ((1, 0), (0, 2), (2, 1), (1, 1))),  # more axes than torch's kernels pad
    ("edge", ((0, 0), (0, 0), (3, 1), (0, 2))),
    ("wrap", ((0, 0), (0, 0), (2, 2), (1, 3))),
    ("wrap", ((0, 0), (0, 0), (7, 0), (0, 9))),  # wider than the axes: wrapped around several times
])
def test_pad_matches_numpy_pad(backend, mode, pads):
    """The ``pad`` primitive, natively (torch's ``F.pad``) and standard-only, against
    ``numpy.pad`` (negative constant sides crop), in float64 and int32 with a fill value."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 4, 5))
    cropped = x[tuple(slice(max(0, -low), n - max(0, -high)) for (low, high), n in zip(pads, x.shape))]
    positive = [(max(0, low), max(0, high)) for low, high in pads]
    for dtype, value in (("float64", -np.inf), ("int32", -7)):
        values = cropped.astype(dtype)
        want = (np.pad(values, positive, mode="constant", constant_values=value) if mode == "constant"
                else np.pad(values, positive, mode=mode))
        for kind, adapter in _both(backend).items():
            got = backend.to_numpy(adapter.pad(backend.asarray(x.astype(dtype), dtype), pads, mode, value))
            np.testing.assert_array_equal(got, want, err_msg=f"{kind} {dtype}")


def test_a_reflection_wider_than_its_axis_is_an_error(backend):
    """torch's kernel refuses it (the standard-only version then names the problem, as on every
    backend), where numpy.pad would reflect again."""
    for kind, adapter in _both(backend).items():
        with pytest.raises(ValueError, match="REFLECT padding of \\(3, 0\\) needs more than 3 elements"):
            backend.to_numpy(adapter.pad(backend.asarray(np.zeros((1, 1, 2, 3)), "float64"),
                                         ((0, 0), (0, 0), (0, 0), (3, 0)), "reflect"))


@st.composite
def windows(draw):
    ndim = draw(st.integers(1, 3))
    window = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(ndim))
    return {"shape": tuple(draw(st.integers((w - 1) * d + 2, (w - 1) * d + 5)) for w, d in zip(window, dilation)),
            "window_dimensions": window, "window_strides": tuple(draw(st.integers(1, 2)) for _ in range(ndim)),
            "padding": tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(ndim)),
            "window_dilation": dilation, "reduction": draw(st.sampled_from(("max", "min", "sum")))}


@pytest.mark.slow_on("dask", "jax")
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=windows(), seed=st.integers(0, 2**16))
def test_reduce_window_matches_jax_lax(backend, case, seed):
    x = np.random.default_rng(seed).standard_normal(case.pop("shape"))
    init = {"max": -np.inf, "min": np.inf, "sum": 0.0}[case["reduction"]]
    want = np.asarray(JAX.reduce_window(jnp.asarray(x), init, **case))
    for kind, adapter in _both(backend).items():
        got = backend.to_numpy(adapter.reduce_window(backend.asarray(x, "float64"), init, **case))
        assert got.shape == want.shape, (kind, got.shape, want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=kind)


@pytest.mark.parametrize("reverse", [False, True])
def test_scan_matches_jax_lax_on_trees(backend, reverse):
    """A carry and outputs that are trees (a dict holding a tuple), forwards and backwards."""
    xs = np.random.default_rng(1).standard_normal((5, 3))

    def step(carry, x):
        return carry * 0.5 + x["a"], {"y": carry * x["a"], "z": (x["a"] - carry,)}

    want_carry, want_ys = JAX.scan(step, jnp.ones(3), {"a": jnp.asarray(xs)}, reverse=reverse)
    for kind, adapter in _both(backend).items():
        carry, ys = adapter.scan(step, backend.asarray(np.ones(3), "float64"), {"a": backend.asarray(xs, "float64")},
                                 reverse=reverse)
        np.testing.assert_allclose(backend.to_numpy(carry), np.asarray(want_carry), rtol=1e-14, err_msg=kind)
        np.testing.assert_allclose(backend.to_numpy(ys["y"]), np.asarray(want_ys["y"]), rtol=1e-14, err_msg=kind)
        np.testing.assert_allclose(backend.to_numpy(ys["z"][0]), np.asarray(want_ys["z"][0]), rtol=1e-14,
                                   err_msg=kind)


def test_lgamma_matches_scipy(backend):
    """Native and standard-only (Lanczos) ``lgamma`` against SciPy's, over the reflection, the poles
    (+inf), near the zeros at 1 and 2, large arguments, infinities and nan."""
    import scipy.special

    x = np.concatenate([np.linspace(-20.5, 30, 401), np.logspace(-8, 30, 60), -np.logspace(-8, 1.2, 40) - 1e-3,
                        [0.0, -1.0, -2.0, 1.0, 2.0, 1 + 1e-9, np.inf, -np.inf, np.nan]])
    name = "float64" if "float64" in backend.dtypes else "float32"
    want = scipy.special.gammaln(x.astype(name).astype(np.float64))
    want[x == -np.inf] = np.inf  # C's lgamma(-inf), as torch's and XLA's (SciPy's gives -inf)
    for kind, adapter in _both(backend).items():
        got = backend.to_numpy(adapter.lgamma(backend.asarray(x, name))).astype(np.float64)
        finite = np.isfinite(want)
        assert np.array_equal(np.isposinf(got), np.isposinf(want)) and np.array_equal(np.isnan(got), np.isnan(want))
        tolerance = {"float64": 1e-13, "float32": 1e-6}[name]
        np.testing.assert_allclose(got[finite], want[finite], rtol=tolerance, atol=tolerance, err_msg=kind)


def test_while_loop_matches_jax_lax(backend):
    """A state of several arrays, each element stepped until its own bound (Collatz steps) and the
    others frozen by ``where``, as xpnn.random's rejection loops use it; no round at all when
    the condition is false at once."""
    starts = np.array([1, 6, 7, 27], np.int64 if "int64" in backend.dtypes else np.int32)

    def run(adapter, xp, values):
        def step(state):
            n, count = state
            moving = n != 1
            odd = (n % 2) == 1
            following = xp.where(odd, 3 * n + 1, n // 2)
            return xp.where(moving, following, n), xp.where(moving, count + 1, count)

        return adapter.while_loop(lambda state: xp.any(state[0] != 1), step, (values, xp.zeros_like(values)))

    want = run(JAX, jnp, jnp.asarray(starts))
    for kind, adapter in _both(backend).items():
        values = backend.asarray(starts, str(starts.dtype))
        got = run(adapter, adapter.xp, values)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(backend.to_numpy(a), np.asarray(b), err_msg=kind)
        untouched = adapter.while_loop(lambda state: adapter.xp.any(state[0] > 100), lambda state: (state[0] * 0,),
                                       (values,))
        np.testing.assert_array_equal(backend.to_numpy(untouched[0]), starts, err_msg=kind)


def test_scan_with_a_length_and_no_inputs_and_with_no_steps():
    adapter = Adapter(adapter_of(np.zeros(1)).xp)
    carry, ys = adapter.scan(lambda c, _: (c + 1, c * 2), np.zeros(2), None, length=3)
    want_carry, want_ys = jax.lax.scan(lambda c, _: (c + 1, c * 2), jnp.zeros(2), None, length=3)
    np.testing.assert_array_equal(carry, want_carry)
    np.testing.assert_array_equal(ys, want_ys)
    carry, ys = adapter.scan(lambda c, x: (c + x, x * 2), np.zeros(2), np.zeros((0, 2)))
    assert ys.shape == (0, 2) and np.all(carry == 0)
    with pytest.raises(ValueError, match="scan: length must be given"):
        adapter.scan(lambda c, x: (c, x), np.zeros(2), None)


def test_the_contract_lists_the_design_primitives():
    """The primitives the written-once code may call (../shared/DESIGN.md rule 2) are the
    contract's: each is a method of ``Primitives`` with a standard-only body."""
    for name in ("erf", "erfc", "erf_inv", "einsum", "qr", "stop_gradient", "conv_general_dilated", "reduce_window",
                 "scan", "fused_recurrence", "fused_packed_recurrence", "fused_norm", "fused_pool", "fused_embedding_bag",
                 "fused_nll", "fused_resample", "fused_grid_sample", "mean_across", "dense", "take_rows", "take_along_axis",
                 "write_rows", "conv_channels_first", "conv_transpose_channels_first", "pad", "linear", "matmul",
                 "write_into", "write_untracked", "trainable", "set_trainable", "placed_like", "adopts", "adopted",
                 "solve", "fused_matrix_exp"):
        assert callable(getattr(Primitives, name, None)), name


def test_solve_natively_and_standard_only(backend):
    """``solve`` as numpy.linalg's, by the adapter (the namespace's linalg; dask's on one chunk)
    and by the standard-only elimination (a matrix whose first pivot is 0 included)."""
    from xpnn.backends import _fallback

    rng = np.random.default_rng(6)
    for a in (rng.standard_normal((5, 5)), np.array([[0.0, 2.0, 1.0], [1.0, 1.0, 0.0], [3.0, 0.0, 1.0]])):
        b = rng.standard_normal((a.shape[0], 2))
        want = np.linalg.solve(a, b)
        ab, bb = backend.asarray(a, "float64"), backend.asarray(b, "float64")
        adapter = adapter_of(ab)
        np.testing.assert_allclose(backend.to_numpy(adapter.solve(ab, bb)), want, rtol=1e-12)
        np.testing.assert_allclose(backend.to_numpy(_fallback.solve(adapter.xp, ab, bb)), want, rtol=1e-12)


def test_take_along_axis_natively_and_standard_only(backend):
    """``take_along_axis`` gathers per row along any axis as numpy's does, by the namespace's own
    function and by the one-hot fallback (the namespaces of standards before 2024.12: dask's)."""
    from xpnn.backends import _fallback

    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 5, 4))
    for axis, count in ((0, 2), (1, 3), (2, 1), (-1, 4)):
        shape = list(x.shape)
        shape[axis] = count
        indices = rng.integers(0, x.shape[axis], shape)
        want = np.take_along_axis(x, indices, axis=axis)
        for label, adapter in _both(backend).items():
            xb, ib = backend.asarray(x, "float64"), adapter.xp.asarray(indices)
            np.testing.assert_array_equal(backend.to_numpy(adapter.take_along_axis(xb, ib, axis)), want, err_msg=label)
            np.testing.assert_array_equal(backend.to_numpy(_fallback.take_along_axis(adapter.xp, xb, ib, axis)), want,
                                          err_msg=f"{label} fallback")


def test_dense_take_rows_and_placed_like_on_every_backend(backend):
    """``dense`` is ``x @ kernel``, ``linear`` ``x W^T + b`` with torch's weights, ``matmul`` the standard's
    batched product, ``take_rows`` a gather of rows, ``write_rows`` their scatter,
    and ``placed_like`` leaves
    arrays off a jax mesh as they are, natively and standard-only (their layouts under explicit
    mesh axes: tests/distributed/sharded_jax.py)."""
    rng = np.random.default_rng(3)
    x, kernel, table = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)), rng.standard_normal((6, 3))
    ids = np.array([5, 0, 2, 2])
    for label, adapter in _both(backend).items():
        xb, kb, tb = (backend.asarray(a, "float64") for a in (x, kernel, table))
        bias = rng.standard_normal(5)
        for rows, expected in ((xb, x), (xb[:, ::2, ...], x[:, ::2]), (xb[0, 0, ...], x[0, 0]), (xb[0, ...], x[0])):
            np.testing.assert_allclose(backend.to_numpy(adapter.dense(rows, kb)), expected @ kernel, rtol=1e-12,
                                       err_msg=label)
            with_bias = adapter.dense(rows, kb, backend.asarray(bias, "float64"))
            np.testing.assert_allclose(backend.to_numpy(with_bias), expected @ kernel + bias, rtol=1e-12, atol=1e-12,
                                       err_msg=label)
        # torch's (out, in) weight with an (out,) bias, and an (in,) one with a 0-d bias
        for weight, offset in ((rng.standard_normal((5, 4)), bias), (rng.standard_normal(4), bias[0])):
            got = adapter.linear(xb, backend.asarray(weight, "float64"), backend.asarray(offset, "float64"))
            np.testing.assert_allclose(backend.to_numpy(got), x @ weight.T + offset, rtol=1e-12, err_msg=label)
        batched = rng.standard_normal((2, 1, 4, 3))  # matmul broadcasts leading axes, as the standard's
        got = adapter.matmul(xb, backend.asarray(batched, "float64"))
        np.testing.assert_allclose(backend.to_numpy(got), x @ batched, rtol=1e-12, err_msg=label)
        rows = adapter.take_rows(tb, adapter.xp.asarray(ids))
        np.testing.assert_array_equal(backend.to_numpy(rows), table[ids], err_msg=label)
        assert adapter.placed_like(tb, xb) is tb
        assert adapter.placed_like(tb, xb, skip=1) is tb
        for written in (ids, ids[:0]):  # a repeated id (with equal rows), and none
            new_rows = table[written] * 10.0
            want = table.copy()
            want[written] = new_rows
            got = adapter.write_rows(backend.asarray(table, "float64"), adapter.xp.asarray(written),
                                     backend.asarray(new_rows, "float64"))
            np.testing.assert_array_equal(backend.to_numpy(got), want, err_msg=label)

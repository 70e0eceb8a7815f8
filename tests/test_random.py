"""xpnn.random against jax.random, on every backend, in both threefry layouts."""
from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import xpnn.random as xr

jax.config.update("jax_enable_x64", True)

SEEDS = (0, 42, 123456, 2**31 - 1, 2**32 + 5)
SHAPES = ((), (5,), (7, 5))
#: Both threefry layouts; the legacy one on jax (each draw compiled anew) runs with --full.
LAYOUTS = (True, pytest.param(False, marks=pytest.mark.slow_on("jax", "dask")))


@contextlib.contextmanager
def layout(partitionable: bool):
    """The same threefry layout in xpnn and in jax."""
    previous = jax.config.jax_threefry_partitionable
    jax.config.update("jax_threefry_partitionable", partitionable)
    xr.set_threefry_partitionable(partitionable)
    try:
        yield
    finally:
        jax.config.update("jax_threefry_partitionable", previous)
        xr.set_threefry_partitionable(True)


def some(backend, values, dask: int = 2):
    """All of ``values``, or the first ``dask`` on Dask, whose graphs of the ~150-step cipher are slow to build."""
    values = tuple(values)
    return values[:dask] if backend.name == "dask" else values


def jax_key(seed: int):
    return jax.random.key(seed)


def read(backend, x) -> np.ndarray:
    return backend.to_numpy(x)


def dtype_of(backend, name: str):
    """The library's dtype object where its namespace has it, else the name (xpnn takes both)."""
    return getattr(backend.xp, name, name)


def assert_equal_bits(actual: np.ndarray, expected, *, dtype=None) -> None:
    expected = np.asarray(expected.astype(jnp.float32) if expected.dtype == jnp.bfloat16 else expected)
    assert actual.shape == expected.shape
    if dtype is not None:
        assert actual.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(actual, expected)


# -- the cipher and the key operations ------------------------------------------------


def test_threefry_known_answers(backend):
    """Random123's known-answer tests for Threefry-2x32-20."""
    from xpnn import _threefry
    from xpnn._dispatch import adapter_of

    adapter = adapter_of(xr.key(0, like=backend.xp))
    xp, words = adapter.xp, adapter.random_word_dtype
    for key, counter, expected in (
        ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
        ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
        ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ):
        k = xp.asarray(key, dtype=words)
        y0, y1 = _threefry.threefry2x32(xp, words, k, xp.asarray([counter[0]], dtype=words),
                                        xp.asarray([counter[1]], dtype=words))
        assert (int(read(backend, y0)[0]), int(read(backend, y1)[0])) == expected


@pytest.mark.parametrize("seed", (*SEEDS, -1, -(2**40)))
def test_key_matches_jax_key_data(backend, seed):
    key = xr.key(seed, like=backend.xp)
    assert_equal_bits(read(backend, key), jax.random.key_data(jax_key(seed)), dtype=np.uint32)


@pytest.mark.parametrize("partitionable", LAYOUTS)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.slow_on("dask")
def test_split_and_fold_in(backend, seed, partitionable):
    with layout(partitionable):
        key = xr.key(seed, like=backend.xp)
        for num in (1, 2, 3, 7):
            assert_equal_bits(read(backend, xr.split(key, num)),
                              jax.random.key_data(jax.random.split(jax_key(seed), num)), dtype=np.uint32)
        for data in (0, 1, 7, 2**31 + 3, 2**32 - 1):
            assert_equal_bits(read(backend, xr.fold_in(key, data)),
                              jax.random.key_data(jax.random.fold_in(jax_key(seed), data)))


def test_split_is_fold_in_in_partitionable_layout(backend):
    key = xr.key(9, like=backend.xp)
    keys = read(backend, xr.split(key, 5))
    for i in range(5):
        np.testing.assert_array_equal(keys[i], read(backend, xr.fold_in(key, i)))


@pytest.mark.parametrize("partitionable", LAYOUTS)
@pytest.mark.parametrize("width", ("uint8", "uint16", "uint32", "uint64"))
def test_bits(backend, width, partitionable):
    with layout(partitionable):
        for seed in some(backend, SEEDS[:2], dask=1):
            key = xr.key(seed, like=backend.xp)
            for shape in some(backend, SHAPES):
                actual = read(backend, xr.bits(key, shape, dtype_of(backend, width)))
                assert_equal_bits(actual, jax.random.bits(jax_key(seed), shape, jnp.dtype(width)), dtype=width)


@pytest.mark.usefixtures("in_jax_default_mode")
def test_bits_default_and_prefix_property(backend):
    key = xr.key(0, like=backend.xp)
    long, short = read(backend, xr.bits(key, (9,))), read(backend, xr.bits(key, (4,)))
    assert long.dtype == np.uint32
    np.testing.assert_array_equal(long[:4], short)


# -- floats -------------------------------------------------------------------------


def float_dtypes(backend):
    return [name for name in ("float16", "bfloat16", "float32", "float64") if name in backend.dtypes]


@pytest.mark.parametrize("partitionable", LAYOUTS)
def test_uniform_bit_exact(backend, partitionable):
    with layout(partitionable):
        for name in float_dtypes(backend):
            for seed in some(backend, SEEDS[:2], dask=1):
                key = xr.key(seed, like=backend.xp)
                for shape in some(backend, SHAPES):
                    for low, high in some(backend, ((-3.7, 11.25), (0.0, 1.0), (-1.0, 1.0))):
                        actual = read(backend, xr.uniform(key, shape, dtype_of(backend, name), low, high))
                        expected = jax.random.uniform(jax_key(seed), shape, jnp.dtype(name), low, high)
                        assert_equal_bits(actual, expected)


def test_float16_multiply_add_is_fused_where_this_machines_xla_fuses_it(monkeypatch):
    """jax's float16 uniforms round ``f * span + low`` once on CPUs with float16 arithmetic
    (AVX512-FP16) and twice elsewhere: xpnn's detection of this machine gives jax's draws, the
    other choice does not."""
    expected = np.asarray(jax.random.uniform(jax_key(3), (2000,), jnp.float16, -3.7, 11.25))
    draws = {}
    for fused in (True, False):
        monkeypatch.setattr(xr, "_XLA_FUSES_FLOAT16", fused)
        draws[fused] = np.asarray(xr.uniform(xr.key(3, like=np), (2000,), np.float16, -3.7, 11.25))
    monkeypatch.undo()
    assert_equal_bits(draws[xr._XLA_FUSES_FLOAT16], expected)
    assert not np.array_equal(draws[not xr._XLA_FUSES_FLOAT16], expected)


@pytest.mark.usefixtures("in_jax_default_mode")
def test_uniform_array_bounds(backend):
    lows = np.array([0.0, -2.0, 5.0], dtype=np.float32)
    key = xr.key(4, like=backend.xp)
    actual = read(backend, xr.uniform(key, (2, 3), minval=backend.asarray(lows, "float32"), maxval=7.0))
    assert_equal_bits(actual, jax.random.uniform(jax_key(4), (2, 3), jnp.float32, minval=lows, maxval=7.0))


def normal_tolerance(name: str) -> dict:
    """normal goes through erf_inv: XLA's log1p differs from other libraries' by an ulp now and then."""
    return {"float16": dict(rtol=1e-3, atol=0), "bfloat16": dict(rtol=8e-3, atol=0),
            "float32": dict(rtol=1e-6, atol=1e-7), "float64": dict(rtol=1e-13, atol=1e-15)}[name]


@pytest.mark.parametrize("partitionable", LAYOUTS)
def test_normal(backend, partitionable):
    with layout(partitionable):
        for name in float_dtypes(backend):
            for seed in some(backend, SEEDS[:2], dask=1):
                key = xr.key(seed, like=backend.xp)
                actual = read(backend, xr.normal(key, (64, 3), dtype_of(backend, name)))
                expected = jax.random.normal(jax_key(seed), (64, 3), jnp.dtype(name))
                np.testing.assert_allclose(actual, np.asarray(expected, dtype=np.float64), **normal_tolerance(name))


@pytest.mark.usefixtures("in_jax_default_mode")
def test_normal_float32_is_mostly_bit_exact(backend):
    """The erf_inv polynomial is XLA's: at most a few values differ, by an ulp or two."""
    key = xr.key(11, like=backend.xp)
    actual = read(backend, xr.normal(key, (4000,)))
    expected = np.asarray(jax.random.normal(jax_key(11), (4000,), jnp.float32))
    ulps = np.abs(actual.view(np.int32).astype(np.int64) - expected.view(np.int32).astype(np.int64))
    assert ulps.max() <= 3
    assert np.mean(ulps == 0) > 0.9


EPS = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float32": 2.0**-23, "float64": 2.0**-52}


@pytest.mark.parametrize("bounds", ((-2.0, 2.0), (-1.0, 3.0), (0.5, 0.75), (-3.5, -1.0), (-10.0, -4.0)))
@pytest.mark.slow_on("dask")
def test_truncated_normal(backend, bounds):
    """u is uniform between erf(lower/sqrt2) and erf(upper/sqrt2), and those
    two roundings differ between libraries by an ulp.  An ulp of u moves the
    result by ulp(u) * dx/du = ulp(u) * sqrt(pi/2) * exp(x**2 / 2), which is
    large in the tails: that is the tolerance, plus the normal one."""
    for name in float_dtypes(backend):
        key = xr.key(5, like=backend.xp)
        actual = read(backend, xr.truncated_normal(key, *bounds, (50, 4), dtype_of(backend, name)))
        expected = np.asarray(jax.random.truncated_normal(jax_key(5), *bounds, (50, 4), jnp.dtype(name)), np.float64)
        tolerance = normal_tolerance(name)
        conditioning = 2 * EPS[name] * np.sqrt(np.pi / 2) * np.exp(expected**2 / 2)
        assert np.all(np.abs(actual - expected) <= conditioning + tolerance["rtol"] * 4 * np.abs(expected) + tolerance["atol"])
        assert np.all(actual > bounds[0]) and np.all(actual < bounds[1])


@pytest.mark.usefixtures("in_jax_default_mode")
def test_truncated_normal_default_shape_from_bounds(backend):
    lower = backend.asarray(np.array([-1.0, 0.0, 1.0]), "float32")
    out = xr.truncated_normal(xr.key(2, like=backend.xp), lower, 2.0)
    assert tuple(out.shape) == (3,)
    expected = jax.random.truncated_normal(jax_key(2), np.array([-1.0, 0.0, 1.0], np.float32), 2.0, dtype=jnp.float32)
    np.testing.assert_allclose(read(backend, out), np.asarray(expected), rtol=4e-6)


# -- discrete -----------------------------------------------------------------------


@pytest.mark.parametrize("partitionable", LAYOUTS)
@pytest.mark.usefixtures("in_jax_default_mode")
def test_bernoulli(backend, partitionable):
    with layout(partitionable):
        for seed in some(backend, SEEDS[:2], dask=1):
            key = xr.key(seed, like=backend.xp)
            for p in (0.0, 0.1, 0.5, 0.97, 1.0):
                actual = read(backend, xr.bernoulli(key, p, (33,)))
                assert actual.dtype == np.bool_
                np.testing.assert_array_equal(actual, np.asarray(jax.random.bernoulli(jax_key(seed), np.float32(p), (33,))))
    probabilities = np.linspace(0, 1, 6).astype(np.float32)
    actual = read(backend, xr.bernoulli(xr.key(3, like=backend.xp), backend.asarray(probabilities, "float32")))
    np.testing.assert_array_equal(actual, np.asarray(jax.random.bernoulli(jax_key(3), probabilities)))


@pytest.mark.parametrize("partitionable", LAYOUTS)
@pytest.mark.parametrize("dtype", ("int8", "uint8", "int16", "int32", "uint32"))
@pytest.mark.slow_on("dask")
def test_randint(backend, dtype, partitionable):
    info = np.iinfo(dtype)
    ranges = [(0, 10), (-5, 5), (3, 3), (7, 2), (int(info.min), int(info.max)), (0, int(info.max) + 1), (0, 1000)]
    with layout(partitionable):
        for seed in some(backend, SEEDS[:2], dask=1):
            key = xr.key(seed, like=backend.xp)
            for low, high in some(backend, ranges):
                if high > info.max + 1 or low < info.min:
                    continue
                actual = read(backend, xr.randint(key, (4, 6), low, high, dtype_of(backend, dtype)))
                expected = jax.random.randint(jax_key(seed), (4, 6), low, high, jnp.dtype(dtype))
                assert_equal_bits(actual, expected, dtype=dtype)


#: Bounds for 64-bit randint: small, 32-bit, > 2**62 (pair long division), the full int64 range.
RANGES_64 = [(0, 10), (-5, 5), (3, 3), (7, 2), (2**31, 2**33), (0, 2**40), (0, 2**62 + 3),
             (-7, 3 * 2**61), (-2**63, 2**63 - 1)]


@pytest.mark.parametrize("partitionable", [True, pytest.param(False, marks=pytest.mark.slow_on("jax"))])
@pytest.mark.parametrize("dtype", ("int64", pytest.param("uint64", marks=pytest.mark.slow_on("jax"))))
@pytest.mark.slow_on("dask")
def test_randint_64_bit(backend, dtype, partitionable):
    """jax's uint64 arithmetic, on pairs of 32-bit words (torch has no uint64 add or remainder)."""
    with layout(partitionable):
        for seed in some(backend, SEEDS[:2], dask=1):
            key = xr.key(seed, like=backend.xp)
            for low, high in some(backend, RANGES_64, dask=4):
                actual = read(backend, xr.randint(key, (4, 6), low, high, dtype_of(backend, dtype)))
                expected = jax.random.randint(jax_key(seed), (4, 6), low, high, jnp.dtype(dtype))
                assert_equal_bits(actual, expected, dtype=dtype)


def test_randint_64_bit_array_bounds(backend):
    """Bounds per element, spans up to the whole range; uint64 bounds above 2**63."""
    low = np.array([0, -5, 3, 7, -2**63, -7, 2**31, 0], np.int64)
    high = np.array([10, 5, 3, 2, 2**63 - 1, 3 * 2**61, 2**33, 2**62 + 3], np.int64)
    key = xr.key(4, like=backend.xp)
    actual = read(backend, xr.randint(key, (3, 8), backend.asarray(low, "int64"), backend.asarray(high, "int64"),
                                      dtype_of(backend, "int64")))
    assert_equal_bits(actual, jax.random.randint(jax_key(4), (3, 8), low, high, jnp.int64), dtype="int64")
    ulow = np.array([2**63 + 5, 0, 2**64 - 9, 12], np.uint64)
    uhigh = np.array([2**64 - 1, 2**63 + 2**40, 2**64 - 1, 3], np.uint64)
    if "uint64" not in dir(backend.xp) or backend.name == "dask":
        return
    actual = read(backend, xr.randint(key, (2, 4), backend.asarray(ulow, "uint64"), backend.asarray(uhigh, "uint64"),
                                      dtype_of(backend, "uint64")))
    assert_equal_bits(actual, jax.random.randint(jax_key(4), (2, 4), ulow, uhigh, jnp.uint64), dtype="uint64")


def test_uint64_pair_arithmetic(backend):
    """``xpnn._uint64`` against Python's exact integers, on values spread over the 64 bits."""
    from xpnn import _uint64

    rng = np.random.default_rng(5)
    values = [int(v) for v in rng.integers(0, 2**64, 40, dtype=np.uint64)] + [0, 1, 2**32, 2**63, 2**64 - 1]
    others = [int(v) >> int(s) for v, s in zip(rng.integers(0, 2**64, len(values), dtype=np.uint64),
                                               rng.integers(0, 64, len(values)))]
    others = [v or 1 for v in others]
    # next to multiples of the span, where a quotient estimate is off by one
    edges = [(2**64 - 1, 2**63 + 1), (3 * (2**40 + 7) - 1, 2**40 + 7), (3 * (2**40 + 7), 2**40 + 7),
             (2**64 - 2, 2**64 - 1), (5 * 2**32 - 1, 2**32), (2**64 - 1, 2**32 - 1), (2**63, 3)]
    values += [x for x, _ in edges]
    others += [span for _, span in edges]
    xp = backend.xp

    def pair(numbers):
        return tuple(backend.asarray(np.array([_uint64.words_of(v)[i] for v in numbers], np.int64), "int64")
                     for i in (0, 1))

    def numbers(result):
        high, low = (read(backend, word).astype(object) for word in result)
        return [int(h) * 2**32 + int(lo) for h, lo in zip(high, low)]

    a, b = pair(values), pair(others)
    assert numbers(_uint64.add(a, b)) == [(x + y) % 2**64 for x, y in zip(values, others)]
    assert numbers(_uint64.mul(a, b)) == [(x * y) % 2**64 for x, y in zip(values, others)]
    assert numbers(_uint64.mod(xp, a, b)) == [x % y for x, y in zip(values, others)]
    for span in (1, 7, 2**31 - 1, 2**40 + 3, 2**62 + 1, 2**64 - 1, 2**64):
        assert numbers(_uint64.mod_known(xp, a, span)) == [x % span for x in values]
    assert numbers(_uint64.from_int64(_uint64.to_int64(a))) == values


@pytest.mark.parametrize("partitionable", LAYOUTS)
def test_permutation(backend, partitionable):
    with layout(partitionable):
        for seed in some(backend, SEEDS[:2], dask=1):
            key = xr.key(seed, like=backend.xp)
            for n in some(backend, (2000, 5, 0, 1, 100)):  # 2000 takes two sorting rounds
                assert_equal_bits(read(backend, xr.permutation(key, n)),
                                  jax.random.permutation(jax_key(seed), n))
    values = np.arange(12.0).reshape(4, 3)
    key = xr.key(8, like=backend.xp)
    x = backend.asarray(values, "float64" if "float64" in backend.dtypes else "float32")
    np.testing.assert_array_equal(read(backend, xr.permutation(key, x, axis=1)),
                                  np.asarray(jax.random.permutation(jax_key(8), values, axis=1)))
    if backend.name != "dask":  # dask has no take_along_axis
        np.testing.assert_array_equal(
            read(backend, xr.permutation(key, x, axis=0, independent=True)),
            np.asarray(jax.random.permutation(jax_key(8), values, axis=0, independent=True)))


def test_categorical(backend):
    logits = np.log(np.array([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]], dtype=np.float32))
    x = backend.asarray(logits, "float32")
    for seed in some(backend, SEEDS[:2], dask=1):
        key = xr.key(seed, like=backend.xp)
        for axis, shape in ((-1, None), (-1, (5, 2)), (0, None), (0, (4, 3))):
            expected = jax.random.categorical(jax_key(seed), logits, axis=axis, shape=shape)
            assert_equal_bits(read(backend, xr.categorical(key, x, axis=axis, shape=shape)).astype(expected.dtype),
                              expected)
        expected = jax.random.categorical(jax_key(seed), logits, axis=-1, shape=(3, 2), replace=False)
        assert_equal_bits(read(backend, xr.categorical(key, x, shape=(3, 2), replace=False)).astype(expected.dtype),
                          expected)


# -- distributions drawn from uniform and normal values ---------------------------------

#: (name, call(random module, key, dtype, parameter maker)): every float sampler, with Python and
#: array parameters; ``param(values)`` makes an array of the sampler's library (or a number).
FLOAT_SAMPLERS = (
    ("exponential", lambda r, k, d, a: r.exponential(k, (40, 5), d)),
    ("gumbel", lambda r, k, d, a: r.gumbel(k, (40, 5), d)),
    ("gumbel high", lambda r, k, d, a: r.gumbel(k, (40, 5), d, mode="high")),
    ("laplace", lambda r, k, d, a: r.laplace(k, (40, 5), d)),
    ("logistic", lambda r, k, d, a: r.logistic(k, (40, 5), d)),
    ("cauchy", lambda r, k, d, a: r.cauchy(k, (40, 5), d)),
    ("maxwell", lambda r, k, d, a: r.maxwell(k, (40, 5), d)),
    ("lognormal", lambda r, k, d, a: r.lognormal(k, a([0.25, 0.5, 1.0, 2.0, 0.1]), None, d)),
    ("pareto", lambda r, k, d, a: r.pareto(k, 3.0, (40, 5), d)),
    ("pareto array b", lambda r, k, d, a: r.pareto(k, a([0.5, 1.0, 2.0, 3.0, 8.0]), (40, 5), d)),
    ("rayleigh", lambda r, k, d, a: r.rayleigh(k, a([0.5, 1.0, 2.0, 3.0, 8.0]), (40, 5), d)),
    ("weibull_min", lambda r, k, d, a: r.weibull_min(k, 2.0, 1.5, (40, 5), d)),
    ("weibull_min arrays", lambda r, k, d, a: r.weibull_min(k, a([1.0, 2.0, 0.5, 1.0, 3.0]),
                                                            a([0.5, 1.0, 1.5, 4.0, 9.0]), (40, 5), d)),
    ("wald", lambda r, k, d, a: r.wald(k, a([0.5, 1.0, 1.5, 3.0, 0.25]), (40, 5), d)),
    ("triangular", lambda r, k, d, a: r.triangular(k, -1.0, a([-1.0, 0.0, 0.5, 1.5, 2.0]), 2.0, (40, 5), d)),
    ("gamma", lambda r, k, d, a: r.gamma(k, a([0.05, 0.5, 1.0, 3.0, 40.0]), (40, 5), d)),
    ("loggamma", lambda r, k, d, a: r.loggamma(k, a([0.001, 0.2, 1.0, 2.0, 7.5]), None, d)),
    ("beta", lambda r, k, d, a: r.beta(k, a([0.2, 1.0, 2.0, 5.0, 0.5]), 1.5, (40, 5), d)),
    ("dirichlet", lambda r, k, d, a: r.dirichlet(k, a([0.3, 1.0, 2.0, 6.0, 0.8]), (40,), d)),
    ("chisquare", lambda r, k, d, a: r.chisquare(k, a([1.0, 2.0, 3.0, 10.0, 0.5]), (40, 5), d)),
    ("f", lambda r, k, d, a: r.f(k, a([1.0, 4.0, 4.0, 12.0, 2.0]), a([2.0, 5.0, 9.0, 30.0, 3.0]), None, d)),
    ("t", lambda r, k, d, a: r.t(k, a([1.0, 2.5, 4.0, 10.0, 30.0]), (40, 5), d)),
)


#: The samplers with a rejection loop (gamma's), whose accepted draw a rounding can change.
REJECTION_SAMPLERS = ("gamma", "loggamma", "beta", "dirichlet", "chisquare", "f", "t")


def sampler_tolerance(name: str) -> dict:
    """jax's formulas, step for step: an ulp of the library's log/exp/tan/sqrt (XLA's polynomials
    differ), more where the formula cancels near 0 (gumbel, logistic) or by design (wald's
    ``mean + ... - mean / 2 * sqrt(...)``, torch's float32 sqrt not correctly rounded).  jax's own
    float16 uniforms in ``[tiny, 1)`` differ between a draw alone and one fused into a sampler
    (2**-10 inside logistic where ``uniform`` alone gives 2**-10 + tiny): float16 is checked to 1%."""
    return {"float16": dict(rtol=3e-2, atol=2e-3), "bfloat16": dict(rtol=6e-2, atol=2e-2),
            "float32": dict(rtol=1e-4, atol=1e-6), "float64": dict(rtol=1e-12, atol=1e-14)}[name]


def parameters_in(backend, name: str):
    """A maker of parameter arrays of ``backend`` in dtype ``name`` (float32 on jax for 16-bit ones)."""
    return lambda values: backend.asarray(np.asarray(values), name)


def _sampler_params() -> list:
    """FLOAT_SAMPLERS as parameters; the rejection samplers built on gamma (each compiles a loop of
    its own on jax, and Dask builds each of its rounds) run on those two with --full."""
    return [pytest.param(sampler, id=sampler[0], marks=pytest.mark.slow_on("jax", "dask"))
            if sampler[0] in REJECTION_SAMPLERS[1:] else pytest.param(sampler, id=sampler[0])
            for sampler in FLOAT_SAMPLERS]


@pytest.mark.parametrize("sampler", _sampler_params())
def test_float_samplers_are_jaxs(backend, sampler, request):
    _, call = sampler
    dtypes = float_dtypes(backend)
    if not request.config.getoption("--full"):  # one dtype per backend; the conformance suite runs float64 too
        dtypes = ["float64"] if backend.name == "numpy" else ["float32"]
    for name in some(backend, dtypes, dask=1):
        dtype = dtype_of(backend, name)
        actual = read(backend, call(xr, xr.key(5, like=backend.xp), dtype, parameters_in(backend, name)))
        expected = call(jax.random, jax_key(5), jnp.dtype(name), lambda values: jnp.asarray(values, name))
        assert actual.shape == expected.shape and actual.dtype == np.dtype(jnp.dtype(name) if name != "bfloat16"
                                                                             else np.float32)
        if sampler[0] in REJECTION_SAMPLERS and name in ("float16", "bfloat16"):
            # rounded at each step (XLA rounds a fused computation once), a 16-bit draw near the
            # rejection loop's bound can be accepted by one and not the other: most agree
            close = np.isclose(actual.astype(np.float64), np.asarray(expected, np.float64), **sampler_tolerance(name))
            assert close.mean() > 0.95, (name, close.mean())
            continue
        np.testing.assert_allclose(actual.astype(np.float64), np.asarray(expected, np.float64),
                                   **sampler_tolerance(name), err_msg=name)


def test_float_samplers_on_jax_are_bit_for_bit():
    """On jax arrays the same formula compiles to the same XLA program: jax's very bits."""
    for name, call in FLOAT_SAMPLERS:
        if name in REJECTION_SAMPLERS[1:]:
            continue  # gamma's loop stands for them (their agreement is checked above)
        actual = np.asarray(call(xr, xr.key(5, like=jnp), jnp.float32, lambda v: jnp.asarray(v, jnp.float32)))
        expected = np.asarray(call(jax.random, jax_key(5), jnp.float32, lambda v: jnp.asarray(v, jnp.float32)))
        ulps = np.abs(actual.view(np.int32).astype(np.int64) - expected.view(np.int32).astype(np.int64))
        assert ulps.max() <= (1 if name == "maxwell" else 0), name  # jnp.linalg.norm's sum vs xpnn's


@pytest.mark.usefixtures("in_jax_default_mode")
def test_integer_samplers_are_jaxs(backend):
    """Exact, in jax's default mode (the uniforms of a Python probability and the default
    integers are 32-bit there, as xpnn's off jax arrays)."""
    key = xr.key(9, like=backend.xp)
    population = np.arange(24.0, dtype=np.float32).reshape(4, 6)
    p = np.array([0.1, 0.3, 0.05, 0.25, 0.3], np.float32)
    draws = (
        ("rademacher", lambda r, k, a: r.rademacher(k, (6, 7))),
        ("rademacher uint8", lambda r, k, a: r.rademacher(k, (6, 7), "uint8")),
        ("rademacher float32", lambda r, k, a: r.rademacher(k, (6, 7), "float32")),
        ("geometric", lambda r, k, a: r.geometric(k, 0.3, (6, 7))),
        ("geometric array p", lambda r, k, a: r.geometric(k, a(p), None, "int16")),
        ("choice", lambda r, k, a: r.choice(k, 7, (6, 7))),
        ("choice no replacement", lambda r, k, a: r.choice(k, 30, (2, 5), replace=False)),
        ("choice axis 1", lambda r, k, a: r.choice(k, a(population), (2, 3), axis=1)),
        ("choice axis 1 no replacement", lambda r, k, a: r.choice(k, a(population), (4,), replace=False, axis=-1)),
        ("choice p", lambda r, k, a: r.choice(k, 5, (6, 7), p=a(p))),
        ("choice p no replacement", lambda r, k, a: r.choice(k, 5, (3,), replace=False, p=a(p))),
        ("choice p no replacement high", lambda r, k, a: r.choice(k, a(population), (2,), False, a(p[:4] / p[:4].sum()),
                                                                    0, "high")),
        ("permutation of an int", lambda r, k, a: r.permutation(k, 9)),
    )
    for name, call in some(backend, draws, dask=4):
        actual = read(backend, call(xr, key, lambda v: backend.asarray(v, str(v.dtype))))
        with jax.enable_x64(False):
            expected = np.asarray(call(jax.random, jax_key(9), jnp.asarray))
        assert actual.dtype == expected.dtype and actual.shape == expected.shape, name
        np.testing.assert_array_equal(actual, expected, err_msg=name)
    # No draws: jax returns zeros of ``shape`` whatever ``a``'s other axes; xpnn keeps the
    # documented shape ``a.shape[:axis] + shape + a.shape[axis + 1:]``.
    empty = xr.choice(key, backend.asarray(population, "float32"), (0,), axis=1)
    assert tuple(empty.shape) == (4, 0) and empty.dtype == backend.xp.float32


@pytest.mark.slow_on("dask")
@pytest.mark.parametrize("partitionable", LAYOUTS)
def test_gamma_in_both_layouts(backend, partitionable):
    """Each element's key is split(key, n)[i], its rounds split it again: both counter layouts."""
    with layout(partitionable):
        a = np.array([0.1, 0.9, 1.0, 4.0], np.float32)
        actual = read(backend, xr.gamma(xr.key(8, like=backend.xp), backend.asarray(a, "float32"), (16, 4),
                                        dtype_of(backend, "float32")))
        expected = np.asarray(jax.random.gamma(jax_key(8), jnp.asarray(a), (16, 4), jnp.float32))
        np.testing.assert_allclose(actual, expected, **sampler_tolerance("float32"))


@pytest.mark.slow_on("dask", "jax")  # conformance runs both on every backend
@pytest.mark.usefixtures("in_jax_default_mode")
def test_samplers_with_rademacher_signs(backend):
    """generalized_normal and ball take signs from rademacher (bernoulli's 32-bit uniforms off
    jax's 64-bit mode): jax's draws in its default mode."""
    key = xr.key(6, like=backend.xp)
    with jax.enable_x64(False):
        expected = [np.asarray(jax.random.generalized_normal(jax_key(6), 1.5, (30, 2))),
                    np.asarray(jax.random.ball(jax_key(6), 3, 1.0, (20,)))]
    actual = [read(backend, xr.generalized_normal(key, 1.5, (30, 2))), read(backend, xr.ball(key, 3, 1.0, (20,)))]
    for got, want in zip(actual, expected):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, **sampler_tolerance("float32"))


@pytest.mark.slow_on("dask", "jax")  # conformance runs it on every backend
@pytest.mark.usefixtures("in_jax_default_mode")
def test_poisson(backend):
    """Knuth's loop below 10, the transformed rejection above, 0 at 0: jax's draws.  At large
    rates the rejection test compares ``log(v ...)`` with ``k log(lam) - lgamma(k + 1)`` near
    1e5, where XLA's float32 lgamma and the library's differ by an ulp: a few draws in a
    thousand then take another round's value; below, every draw is jax's."""
    lam = np.array([0.0, 0.5, 3.0, 9.9, 10.0, 25.0, 300.0], np.float32)
    key = xr.key(4, like=backend.xp)
    actual = read(backend, xr.poisson(key, backend.asarray(lam, "float32"), (60, 7)))
    with jax.enable_x64(False):
        expected = np.asarray(jax.random.poisson(jax_key(4), jnp.asarray(lam), (60, 7)))
        large = np.asarray(jax.random.poisson(jax_key(4), 1e4, (400,), jnp.int16))
    assert actual.dtype == expected.dtype
    np.testing.assert_array_equal(actual, expected)
    drawn = read(backend, xr.poisson(key, 1e4, (400,), "int16"))
    assert drawn.dtype == np.int16 and np.mean(drawn == large) > 0.98


@pytest.mark.slow_on("dask", "jax")  # conformance runs both on every backend
def test_binomial_and_multinomial(backend, request):
    """Inversion below n q = 10, transformed rejection above, p > 1/2 through n - k, nan for a
    negative count or probability, inf for an infinite count: jax's draws, exactly; multinomial's
    binomials over the categories sum to n."""
    names = [name for name in ("float32", "float64") if name in backend.dtypes]
    names = names if request.config.getoption("--full") else names[-1:]  # float32 too with --full
    n = np.array([0.0, 5.0, 20.0, 100.0, 1000.0, 3.0, np.inf, -1.0, 7.0])
    p = np.array([0.3, 0.9, 0.5, 0.05, 0.7, 0.0, 0.5, 0.5, -0.2])
    probabilities = np.array([[0.2, 0.5, 0.3], [0.0, 0.1, 0.9]])
    for name in some(backend, names, dask=1):
        key = xr.key(4, like=backend.xp)
        actual = read(backend, xr.binomial(key, backend.asarray(n, name), backend.asarray(p, name), (40, 9), name))
        expected = np.asarray(jax.random.binomial(jax_key(4), jnp.asarray(n, name), jnp.asarray(p, name), (40, 9),
                                                  jnp.dtype(name)))
        assert actual.dtype == expected.dtype
        np.testing.assert_array_equal(actual, expected)
        counts = read(backend, xr.multinomial(key, 50.0, backend.asarray(probabilities, name), shape=(4, 2, 3),
                                              dtype=name))
        expected = np.asarray(jax.random.multinomial(jax_key(4), 50.0, jnp.asarray(probabilities, name),
                                                     shape=(4, 2, 3), dtype=jnp.dtype(name)))
        np.testing.assert_array_equal(counts, expected)
        assert np.all(counts.sum(-1) == 50) and np.all(counts[..., 1, 0] == 0)


@pytest.mark.usefixtures("in_jax_default_mode")
def test_double_sided_maxwell(backend):
    """Lengths from ``maxwell``, signs from ``rademacher`` on the halves of ``split(key)``, shape
    ``shape + broadcast(loc, scale)``.  In float64 jax's signs come from 64-bit uniforms (its only
    mode with float64), xpnn's from 32-bit ones off jax arrays: the reference there is composed."""
    key = xr.key(2, like=backend.xp)
    locs = np.array([0.0, 1.0, -2.0], np.float32)
    actual = read(backend, xr.double_sided_maxwell(key, backend.asarray(locs, "float32"), 2.0, (4,)))
    with jax.enable_x64(False):
        expected = np.asarray(jax.random.double_sided_maxwell(jax_key(2), jnp.asarray(locs), 2.0, (4,)))
        scalar = np.asarray(jax.random.double_sided_maxwell(jax_key(2), 1.0, 2.0, (), jnp.float32))
        length_key, sign_key = jax.random.split(jax_key(2))
        signs = np.asarray(jax.random.rademacher(sign_key, (5, 3)))
    assert actual.shape == (4, 3)
    np.testing.assert_allclose(actual, expected, **sampler_tolerance("float32"))
    np.testing.assert_allclose(read(backend, xr.double_sided_maxwell(key, 1.0, 2.0)), scalar,
                               **sampler_tolerance("float32"))
    if backend.name == "jax":  # jax arrays follow jax's mode: in the 64-bit one, jax's own float64 draws
        with jax.enable_x64(True):
            actual = read(backend, xr.double_sided_maxwell(xr.key(2, like=jnp), 0.5, 3.0, (5, 3), "float64"))
            expected = np.asarray(jax.random.double_sided_maxwell(jax_key(2), 0.5, 3.0, (5, 3), jnp.float64))
        np.testing.assert_allclose(actual, expected, **sampler_tolerance("float64"))
    elif "float64" in backend.dtypes:
        lengths = np.asarray(jax.random.maxwell(length_key, (5, 3), jnp.float64))
        actual = read(backend, xr.double_sided_maxwell(key, 0.5, 3.0, (5, 3), "float64"))
        np.testing.assert_allclose(actual, signs * lengths * 3.0 + 0.5, **sampler_tolerance("float64"))


def test_samplers_trace_under_jit():
    @jax.jit
    def draw(key, b):
        return (xr.pareto(key, b, (3,)), xr.gumbel(key, (2,), mode="high"), xr.choice(key, 10, (4,)),
                xr.triangular(key, 0.0, b, 4.0), xr.gamma(key, b, (5,)))

    key = jnp.asarray(xr.key(1, like=jnp))
    got = draw(key, jnp.float32(2.0))
    reference = jax.random.key(1)
    np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(jax.random.pareto(reference, jnp.float32(2.0), (3,))))
    np.testing.assert_array_equal(np.asarray(got[1]), np.asarray(jax.random.gumbel(reference, (2,), mode="high")))
    np.testing.assert_array_equal(np.asarray(got[2]), np.asarray(jax.random.choice(reference, 10, (4,))))
    np.testing.assert_array_equal(np.asarray(got[3]),
                                  np.asarray(jax.random.triangular(reference, 0.0, jnp.float32(2.0), 4.0)))
    np.testing.assert_allclose(np.asarray(got[4]), np.asarray(jax.random.gamma(reference, jnp.float32(2.0), (5,))),
                               rtol=1e-6)  # a rejection loop traced as lax.while_loop


@pytest.mark.usefixtures("in_jax_default_mode")
def test_key_helpers(backend):
    key = xr.key(2**32 + 5, like=backend.xp)
    np.testing.assert_array_equal(read(backend, xr.PRNGKey(2**32 + 5, like=backend.xp)),
                                  np.asarray(jax.random.PRNGKey(2**32 + 5)))
    assert xr.clone(key) is key
    keys = xr.split(key, 3)
    np.testing.assert_array_equal(read(backend, xr.key_data(keys)),
                                  np.asarray(jax.random.key_data(jax.random.split(jax_key(2**32 + 5), 3))))
    typed = jax.random.split(jax.random.key(4), 2)
    np.testing.assert_array_equal(np.asarray(xr.key_data(typed)), np.asarray(jax.random.key_data(typed)))


# -- across backends, jax keys, tracing ------------------------------------------------


@pytest.mark.usefixtures("in_jax_default_mode")
def test_same_seed_same_numbers_on_every_backend(backend):
    from tests.conftest import BACKENDS

    reference = np.asarray(xr.uniform(xr.key(77), (3, 4)))
    np.testing.assert_array_equal(read(backend, xr.uniform(xr.key(77, like=backend.xp), (3, 4))), reference)
    assert len(BACKENDS) >= 2


@pytest.mark.usefixtures("in_jax_default_mode")
def test_jax_keys_are_accepted():
    typed, raw = jax.random.key(3), jax.random.PRNGKey(3)
    for key in (typed, raw):
        np.testing.assert_array_equal(np.asarray(xr.uniform(key, (5,))), np.asarray(jax.random.uniform(typed, (5,), jnp.float32)))
        np.testing.assert_array_equal(np.asarray(xr.split(key)), np.asarray(jax.random.key_data(jax.random.split(typed))))


@pytest.mark.usefixtures("in_jax_default_mode")
def test_traces_under_jit_with_traced_keys():
    @jax.jit
    def draw(key, step):
        key = xr.fold_in(key, step)
        a, b = xr.split(key)
        return xr.normal(a, (3,)), xr.uniform(b, (2,), minval=-1.0), xr.randint(b, (2,), 0, 7), xr.bits(a, (2,))

    key = jnp.asarray(xr.key(1, like=jnp))
    got = draw(key, jnp.int32(5))
    reference = jax.random.fold_in(jax.random.key(1), 5)
    a, b = jax.random.split(reference)
    np.testing.assert_allclose(np.asarray(got[0]), np.asarray(jax.random.normal(a, (3,), jnp.float32)), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(got[1]), np.asarray(jax.random.uniform(b, (2,), jnp.float32, minval=-1.0)))
    np.testing.assert_array_equal(np.asarray(got[2]), np.asarray(jax.random.randint(b, (2,), 0, 7, jnp.int32)))
    np.testing.assert_array_equal(np.asarray(got[3]), np.asarray(jax.random.bits(a, (2,), jnp.uint32)))


def test_dask_stays_lazy():
    da = pytest.importorskip("dask.array")
    import array_api_compat.dask.array as dxp
    import dask

    key = xr.key(0, like=dxp)

    def refuse(*args, **kwargs):
        raise AssertionError("the graph was computed")

    with dask.config.set(scheduler=refuse):
        draws = [xr.uniform(key, (4, 4)), xr.normal(key, (3,)), xr.split(key), xr.bits(key, (2,)),
                 xr.truncated_normal(key, -1.0, 1.0, (3,)), xr.bernoulli(key, 0.3, (5,)),
                 xr.gumbel(key, (3,)), xr.wald(key, 1.0, (3,)), xr.choice(key, 7, (3,)), xr.rademacher(key, (2,))]
    # the gamma family's rejection rounds are computed one by one (each persisted); the draw is a Dask array
    assert isinstance(xr.beta(key, 0.5, 2.0, (4,)), da.Array)
    assert all(isinstance(d, da.Array) for d in draws)


def test_device_follows_the_key():
    import array_api_strict as xs

    device = xs.Device("device1")
    key = xr.key(0, like=xs.asarray(0.0, device=device))
    assert key.device == device
    for draw in (xr.uniform(key, (3,)), xr.normal(key, (3,)), xr.split(key), xr.randint(key, (2,), 0, 4)):
        assert draw.device == device


@pytest.mark.usefixtures("in_jax_default_mode")
def test_shape_of_no_axes_gives_a_0d_array(backend):
    """``shape=()`` gives a 0-d array of the key's library with jax.random's value (NumPy's
    own operations give scalars for 0-d results)."""
    key = xr.key(7, like=backend.xp)
    draws = {
        "uniform": (xr.uniform(key, ()), jax.random.uniform(jax_key(7), (), jnp.float32)),
        "normal": (xr.normal(key, ()), jax.random.normal(jax_key(7), (), jnp.float32)),
        "truncated_normal": (xr.truncated_normal(key, -1.0, 1.0, ()),
                             jax.random.truncated_normal(jax_key(7), -1.0, 1.0, (), jnp.float32)),
        "bernoulli": (xr.bernoulli(key, 0.5, ()), jax.random.bernoulli(jax_key(7), np.float32(0.5), ())),
        "randint": (xr.randint(key, (), 0, 10), jax.random.randint(jax_key(7), (), 0, 10, jnp.int32)),
        "bits": (xr.bits(key, ()), jax.random.bits(jax_key(7), (), jnp.uint32)),
    }
    for name, (actual, expected) in draws.items():
        assert type(actual) is type(key) and actual.shape == (), (name, type(actual))
        np.testing.assert_array_equal(read(backend, actual), np.asarray(expected), err_msg=name)


def test_float_results_keep_the_dtype(backend):
    key = xr.key(0, like=backend.xp)
    for name in float_dtypes(backend):
        for draw in (xr.uniform(key, (3,), dtype_of(backend, name)), xr.normal(key, (3,), dtype_of(backend, name))):
            assert draw.dtype == dtype_of(backend, name)
    # The default: float32, except on jax arrays with jax_enable_x64 on (as jax.random's).
    assert xr.uniform(key, (2,)).dtype == (backend.xp.float64 if backend.name == "jax" else backend.xp.float32)


# -- statistics ---------------------------------------------------------------------


def test_statistics():
    key = xr.key(2024)
    n = 200_000
    u = np.asarray(xr.uniform(key, (n,)), np.float64)
    assert scipy.stats.kstest(u, "uniform").pvalue > 1e-3
    z = np.asarray(xr.normal(key, (n,)), np.float64)
    assert abs(z.mean()) < 0.01 and abs(z.var() - 1) < 0.02
    assert scipy.stats.kstest(z, "norm").pvalue > 1e-3
    t = np.asarray(xr.truncated_normal(key, -1.0, 2.0, (n,)), np.float64)
    assert scipy.stats.kstest(t, scipy.stats.truncnorm(-1.0, 2.0).cdf).pvalue > 1e-3
    b = np.asarray(xr.bernoulli(key, 0.3, (n,)))
    assert abs(b.mean() - 0.3) < 0.005
    r = np.asarray(xr.randint(key, (n,), 0, 10))
    assert scipy.stats.chisquare(np.bincount(r, minlength=10)).pvalue > 1e-3


#: Each float sampler against its scipy.stats distribution: (name, draw(key, n), distribution).
SAMPLER_DISTRIBUTIONS = (
    ("exponential", lambda k, n: xr.exponential(k, (n,)), scipy.stats.expon()),
    ("gumbel", lambda k, n: xr.gumbel(k, (n,)), scipy.stats.gumbel_r()),
    ("gumbel high", lambda k, n: xr.gumbel(k, (n,), mode="high"), scipy.stats.gumbel_r()),
    ("laplace", lambda k, n: xr.laplace(k, (n,)), scipy.stats.laplace()),
    ("logistic", lambda k, n: xr.logistic(k, (n,)), scipy.stats.logistic()),
    ("cauchy", lambda k, n: xr.cauchy(k, (n,)), scipy.stats.cauchy()),
    ("lognormal", lambda k, n: xr.lognormal(k, 0.5, (n,)), scipy.stats.lognorm(0.5)),
    ("pareto", lambda k, n: xr.pareto(k, 3.0, (n,)), scipy.stats.pareto(3.0)),
    ("rayleigh", lambda k, n: xr.rayleigh(k, 2.0, (n,)), scipy.stats.rayleigh(scale=2.0)),
    ("weibull_min", lambda k, n: xr.weibull_min(k, 2.0, 1.5, (n,)), scipy.stats.weibull_min(1.5, scale=2.0)),
    ("maxwell", lambda k, n: xr.maxwell(k, (n,)), scipy.stats.maxwell()),
    ("double_sided_maxwell", lambda k, n: np.abs(np.asarray(xr.double_sided_maxwell(k, 1.0, 2.0, (n,))) - 1.0) / 2.0,
     scipy.stats.maxwell()),  # |x - loc| / scale
    ("wald", lambda k, n: xr.wald(k, 1.5, (n,)), scipy.stats.invgauss(1.5)),
    ("triangular", lambda k, n: xr.triangular(k, -1.0, 0.5, 2.0, (n,)), scipy.stats.triang(0.5, loc=-1.0, scale=3.0)),
    ("gamma small a", lambda k, n: xr.gamma(k, 0.3, (n,)), scipy.stats.gamma(0.3)),
    ("gamma", lambda k, n: xr.gamma(k, 5.0, (n,)), scipy.stats.gamma(5.0)),
    ("loggamma", lambda k, n: np.exp(np.asarray(xr.loggamma(k, 0.7, (n,)), np.float64)), scipy.stats.gamma(0.7)),
    ("beta", lambda k, n: xr.beta(k, 0.5, 2.0, (n,)), scipy.stats.beta(0.5, 2.0)),
    ("dirichlet", lambda k, n: xr.dirichlet(k, np.array([2.0, 3.0, 0.5], np.float32), (n,))[:, 1],
     scipy.stats.beta(3.0, 2.5)),  # a Dirichlet coordinate is Beta(alpha_i, sum - alpha_i)
    ("chisquare", lambda k, n: xr.chisquare(k, 3.0, (n,)), scipy.stats.chi2(3.0)),
    ("f", lambda k, n: xr.f(k, 4.0, 9.0, (n,)), scipy.stats.f(4.0, 9.0)),
    ("t", lambda k, n: xr.t(k, 2.5, (n,)), scipy.stats.t(2.5)),
    ("generalized_normal", lambda k, n: xr.generalized_normal(k, 1.5, (n,)), scipy.stats.gennorm(1.5)),
    ("ball radius", lambda k, n: np.linalg.norm(np.asarray(xr.ball(k, 3, 2, (n,)), np.float64), axis=-1) ** 3,
     scipy.stats.uniform()),  # uniform in the 3-ball: the cube of the radius is uniform
)


@pytest.mark.parametrize("name, draw, distribution", SAMPLER_DISTRIBUTIONS, ids=[c[0] for c in SAMPLER_DISTRIBUTIONS])
def test_sampler_statistics(name, draw, distribution):
    values = np.asarray(draw(xr.key(2024), 100_000), np.float64)
    assert scipy.stats.kstest(values, distribution.cdf).pvalue > 1e-3, name


def test_discrete_sampler_statistics():
    key = xr.key(2025)
    n = 100_000
    for rate in (0.7, 6.0, 40.0, 2000.0):
        counts = np.asarray(xr.poisson(key, rate, (n,)))
        assert abs(counts.mean() - rate) < 4 * (rate / n) ** 0.5 and abs(counts.var() / rate - 1) < 0.03, rate
    for trials, probability in ((8, 0.3), (40, 0.6), (5000, 0.02), (300, 0.5)):
        successes = np.asarray(xr.binomial(key, trials, probability, (n,)), np.float64)
        mean, variance = trials * probability, trials * probability * (1 - probability)
        assert abs(successes.mean() - mean) < 4 * (variance / n) ** 0.5, (trials, probability)
        assert abs(successes.var() / variance - 1) < 0.03, (trials, probability)
    low = np.bincount(np.asarray(xr.poisson(key, 3.0, (n,))), minlength=12)[:10]
    expected = scipy.stats.poisson(3.0).pmf(np.arange(10)) * n
    assert scipy.stats.chisquare(low, expected * low.sum() / expected.sum()).pvalue > 1e-3
    signs = np.asarray(xr.rademacher(key, (n,)))
    assert set(np.unique(signs)) == {-1, 1} and abs(signs.mean()) < 0.01
    trials = np.asarray(xr.geometric(key, 0.3, (n,)))
    counts = np.bincount(trials, minlength=40)[1:40]
    expected = scipy.stats.geom(0.3).pmf(np.arange(1, 40)) * n
    assert trials.min() >= 1 and scipy.stats.chisquare(counts[:15], expected[:15] * counts[:15].sum()
                                                       / expected[:15].sum()).pvalue > 1e-3
    p = np.array([0.1, 0.3, 0.05, 0.25, 0.3], np.float32)
    picks = np.asarray(xr.choice(key, 5, (n,), p=p))
    assert scipy.stats.chisquare(np.bincount(picks, minlength=5), p / p.sum(dtype=np.float64) * n).pvalue > 1e-3
    signs = np.sign(np.asarray(xr.double_sided_maxwell(key, 0.0, 1.0, (n,))))
    assert abs(signs.mean()) < 0.01
    assert len(set(np.asarray(xr.choice(key, 1000, (1000,), replace=False)).tolist())) == 1000


# -- errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda k: xr.uniform(k, (-1, 2)), ValueError, "shape must be non-negative"),
        (lambda k: xr.uniform(k, (2.5,)), TypeError, "shape must be a tuple of ints"),
        (lambda k: xr.normal(k, "ab"), TypeError, "shape must be a tuple of ints"),
        (lambda k: xr.bits(k, (2,), np.float32), ValueError, "unsigned integer dtype"),
        (lambda k: xr.uniform(k, (2,), np.int32), ValueError, "real floating dtype"),
        (lambda k: xr.randint(k, (2,), 0, 5, np.float32), ValueError, "integral dtype"),
        (lambda k: xr.randint(k, (2,), np.zeros(2, np.uint64), 5, np.int64), TypeError, "needs dtype uint64"),
        (lambda k: xr.truncated_normal(k, 1.0, 1.0, (2,)), ValueError, "lower must be < upper"),
        (lambda k: xr.truncated_normal(k, 2.0, -2.0, (2,)), ValueError, "lower must be < upper"),
        (lambda k: xr.bernoulli(k, 1.5), ValueError, "p must be a probability"),
        (lambda k: xr.split(k, -1), ValueError, "num must be a non-negative int"),
        (lambda k: xr.uniform(k, (2,), minval=np.zeros(3, np.float32)), ValueError, "does not broadcast"),
        (lambda k: xr.permutation(k, -3), ValueError, "non-negative"),
        (lambda k: xr.categorical(k, np.zeros((2, 3), np.float32), shape=(4,)), ValueError, "not compatible"),
        (lambda k: xr.uniform(np.zeros(3, np.uint32), (2,)), ValueError, "must be a (2,) uint32 array"),
        (lambda k: xr.uniform(0, (2,)), TypeError, "key must be a key array"),
        (lambda k: xr.key(1.5), TypeError, "seed must be a Python int"),
        (lambda k: xr.gumbel(k, (2,), mode="highest"), ValueError, "'highest', jax's float32 bit-level mode, is not"),
        (lambda k: xr.categorical(k, np.zeros(3, np.float32), mode="middle"), ValueError, "mode must be None, 'low'"),
        (lambda k: xr.exponential(k, (2,), np.int32), ValueError, "real floating dtype"),
        (lambda k: xr.pareto(k, "3"), TypeError, "xpnn.random.pareto: b must be a real number or array"),
        (lambda k: xr.rayleigh(k, np.ones(3, np.float32), (2,)), ValueError, "scale of shape (3,) does not broadcast"),
        (lambda k: xr.triangular(k, 0.0, np.ones(3), np.ones(2)), ValueError, "do not broadcast"),
        (lambda k: xr.geometric(k, 0.5, (2,), np.float32), ValueError, "integral dtype"),
        (lambda k: xr.choice(k, 0, (2,)), ValueError, "a must be greater than 0 unless no samples are taken"),
        (lambda k: xr.choice(k, 3, (4,), replace=False), ValueError, "cannot take a larger sample (size 4)"),
        (lambda k: xr.choice(k, 3, (2,), p=np.ones(4, np.float32)), ValueError, "p must be None or a 1-D array of"),
        (lambda k: xr.choice(k, np.zeros((2, 3)), (2,), axis=2), ValueError, "axis=2 is out of bounds"),
        (lambda k: xr.choice(k, 2.5, (2,)), TypeError, "a must be an int or an array"),
        (lambda k: xr.key_data(3), TypeError, "keys must be a key array"),
        (lambda k: xr.key_data(np.zeros((2, 3), np.uint32)), ValueError, "shape (..., 2)"),
        (lambda k: xr.clone(np.zeros(3, np.uint32)), ValueError, "must be a (2,) uint32 array"),
        (lambda k: xr.dirichlet(k, np.float32(1.0)), ValueError, "alpha must be an array of at least 1 dimension"),
        (lambda k: xr.dirichlet(k, np.ones((2, 3), np.float32), (4,)), ValueError, "does not broadcast"),
        (lambda k: xr.ball(k, 0), ValueError, "xpnn.random.ball: d must be a positive int, got 0"),
        (lambda k: xr.poisson(k, 3.0, (2,), np.float32), ValueError, "integral dtype"),
        (lambda k: xr.binomial(k, 3.0, 0.5, (2,), np.int32), ValueError, "real floating dtype"),
        (lambda k: xr.multinomial(k, 3.0, np.float32(0.5)), ValueError, "p must be an array of at least 1"),
        (lambda k: xr.multinomial(k, np.ones(3, np.float32), np.ones((2, 4), np.float32) / 4), ValueError,
         "n of shape (3,) does not broadcast to shape (2,)"),
        (lambda k: xr.poisson(k, np.ones(3, np.float32), (2,)), ValueError, "lam of shape (3,) does not broadcast"),
        (lambda k: xr.generalized_normal(k, -1.0), ValueError, "p must be a positive Python number"),
        (lambda k: xr.gamma(k, np.ones(3, np.float32), (2,)), ValueError, "a of shape (3,) does not broadcast"),
    ],
)
def test_errors(call, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(xr.key(0))


def test_set_threefry_partitionable_takes_a_bool():
    with pytest.raises(TypeError, match="flag must be a bool"):
        xr.set_threefry_partitionable(1)
    assert xr.threefry_partitionable() is True

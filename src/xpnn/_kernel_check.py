"""Native fast paths checked on the machine where they run, before they are trusted.

A fast path is a native kernel (``torch.nn.functional.gelu``, a NumPy ufunc
loop, ``jax.nn.softmax``...), and a kernel that is right on one CPU can be
wrong on the next: torch 2.13's vectorised exact ``gelu`` returns NaN for
``+inf`` on AVX512 machines and ``inf`` elsewhere.  So the first time a fast
path would run for a (function, library, dtype, device kind), it is run once
on a fixed probe and compared with the written-once definition on the same
probe.  A fast path that disagrees is switched off for that key, the
written-once definition answers from then on, and ``fast_path_report``
says what was switched off and why.  No warning is printed.

The probe, in the dtype of the call and on its device, is a ``(4, 68)``
array (68 elements a row: a 16-lane SIMD loop, unrolled twice, and its tail):
a finite grid over [-8, 8], one over [-100, 100], and two rows of edge values
(+-0, +-inf, nan, +-max, +-smallest normal, +-subnormal, +-eps and the kinks
of the activations: +-0.5, +-1, +-3, +-6, +-20, +-40...), one shifted against
the other so that every edge value meets both the vector body and the tail.
Integer dtypes get their own probe (0, +-1, small values, the dtype's limits).
The probe is called with each function's probe arguments (the defaults, and
the other forms such as ``gelu(approximate=False)``) and with the arguments of
the first call when they are plain values (numbers, flags, axes).

Agreement: the same dtype and shape; NaN where the definition has NaN;
infinities equal; finite values within ``sqrt(eps)`` relative (with that
floor in absolute terms), which catches a broken kernel and lets a correct
one round differently; zeros of the same sign, except for the functions the
adapter lists in ``fast_path_zero_signs``.  Integers and booleans: equal.

The check costs one probe per key (measured in the benchmarks' ``kernels``
run), then nothing: the dispatch caches the outcome by array type and dtype.
It runs eagerly even inside a ``jax.jit`` trace (``Adapter.eagerly``).
"""
from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import array_api_compat
import numpy as np

from xpnn._types import Array
from xpnn.backends import dtype_name


#: One probe call: positional arguments after ``x``, and keywords.  A keyword value that is
#: callable is called with the probe array (for array arguments, such as prelu's weight).
ProbeCall = tuple[tuple[Any, ...], Mapping[str, Any]]

_COLUMNS = 68
_KINKS = (0.5, 1.0, 2.0, 3.0, 6.0, 7.0, 10.0, 20.0, 40.0, 88.0, 100.0, 1e4)
_SMALL_INTEGERS = (0, 1, -1, 2, -2, 3, -3, 5, 6, 7, -7, 100, -100, 127, -128, 200, 255)


class SwitchedOff(NamedTuple):
    """A fast path switched off on this machine: the written-once definition answers instead.

    ``reason`` says why in words; ``x``, ``native`` and ``written_once`` are the first probe
    value where they disagreed and the two answers there (None when the kernel raised or gave
    another dtype or shape), and ``arguments`` the probe call's other arguments.
    """

    function: str
    backend: str
    dtype: str
    device: str
    reason: str
    x: float | None = None
    native: float | None = None
    written_once: float | None = None
    arguments: tuple[tuple[Any, ...], dict[str, Any]] = ((), {})

    def __str__(self) -> str:
        return f"{self.function} on {self.backend} {self.dtype} ({self.device}): {self.reason}"


class _Disagreement(NamedTuple):
    reason: str
    x: float | None = None
    native: float | None = None
    written_once: float | None = None


_LOCK = threading.Lock()
#: (function, backend, dtype, device kind) -> None when the fast path agreed, else why not.
_OUTCOMES: dict[tuple[str, str, str, str], SwitchedOff | None] = {}
#: (layer kernel, array type, dtype, device) -> whether ``layer_kernel_agrees``: the answer for
#: arrays seen before, without walking the device kinds or taking the lock.  The dispatch empties
#: it with its own caches when a library starts a new kind of device.
LAYER_KERNEL_ANSWERS: dict[tuple[str, type, Any, Any], bool] = {}


def fast_path_report() -> list[SwitchedOff]:
    """The native fast paths switched off so far in this process, and why.

    Each entry names the public function, the library, the dtype, the device
    kind and the first probe value where the native kernel and the
    written-once definition disagreed.  An empty list means every fast path
    checked so far agreed.  ``xpnn.check_fast_paths`` checks them all now.
    """
    with _LOCK:
        return [outcome for outcome in _OUTCOMES.values() if outcome is not None]


def _floating_probe(finfo: Any) -> np.ndarray:
    """The ``(4, 68)`` float64 probe of a floating dtype with limits ``finfo``."""
    largest, tiny, eps = float(finfo.max), float(finfo.smallest_normal), float(finfo.eps)
    edges = [0.0, -0.0, math.inf, -math.inf, math.nan, largest, -largest, tiny, -tiny,
             tiny * 0.25, -tiny * 0.25, eps, -eps, 1.0 + eps, largest * 0.5, -largest * 0.5]
    edges += [sign * kink for kink in _KINKS if kink < largest for sign in (1.0, -1.0)]
    edge_row = np.resize(np.asarray(edges), _COLUMNS)
    return np.stack([np.linspace(-8.0, 8.0, _COLUMNS), np.linspace(-100.0, 100.0, _COLUMNS),
                     edge_row, np.roll(edge_row[::-1], 17)])


def _integer_probe(iinfo: Any) -> np.ndarray:
    """The ``(2, 68)`` int64 probe of an integer dtype with limits ``iinfo``."""
    values = [v for v in _SMALL_INTEGERS if iinfo.min <= v <= iinfo.max] + [int(iinfo.min), int(iinfo.max)]
    if iinfo.max > 2**62:  # int64/uint64 limits do not fit the int64 host array's other end
        values = [v for v in values if -2**62 <= v <= 2**62]
    row = np.resize(np.asarray(values, dtype=np.int64), _COLUMNS)
    return np.stack([row, np.roll(row[::-1], 17)])


def probe_array(adapter: Any, dtype: Any, device: Any, ndim: int) -> Array | None:
    """The probe in ``dtype`` on ``device`` with at least ``ndim`` dimensions; None for a dtype
    without one (complex)."""
    xp = adapter.xp
    if xp.isdtype(dtype, "real floating"):
        host = _floating_probe(xp.finfo(dtype))
    elif xp.isdtype(dtype, "integral"):
        host = _integer_probe(xp.iinfo(dtype))
    elif xp.isdtype(dtype, "bool"):
        host = np.resize(np.asarray([False, True, True]), (2, _COLUMNS))
    else:
        return None
    host = host.reshape((1,) * max(ndim - 2, 0) + host.shape)
    wide = xp.float64 if host.dtype == np.float64 else xp.int64 if host.dtype == np.int64 else xp.bool
    if wide is None or not adapter.holds_dtype(wide, device):
        wide = xp.float32 if host.dtype == np.float64 else xp.int32
        host = host.astype(np.float32 if host.dtype == np.float64 else np.int32)
    return xp.astype(adapter.from_host(host, device), dtype)


def _resolved(call: ProbeCall, probe: Array) -> tuple[tuple[Any, ...], dict[str, Any]]:
    args, kwargs = call
    return args, {name: value(probe) if callable(value) else value for name, value in kwargs.items()}


def as_host(adapter: Any, out: Array) -> np.ndarray:
    """``out`` on the host as float64 (floating), int64 (integers) or bool, for comparison."""
    xp = adapter.xp
    if xp.isdtype(out.dtype, "real floating"):
        wide = xp.float64 if out.dtype == xp.float64 else xp.float32
        return np.asarray(adapter.to_host(xp.astype(out, wide)), dtype=np.float64)
    return np.asarray(adapter.to_host(out))


def outputs_disagreement(adapter: Any, fused: Sequence[Array], written_once: Sequence[Array], tolerance: float,
                         fused_name: str, written_name: str, equal_nan: bool = False) -> str | None:
    """Why a layer kernel's outputs ``fused`` and the written-once code's, pair by pair, differ: a
    shape, or values beyond ``tolerance`` (relative and absolute, ``numpy.allclose``; NaN equal to
    NaN with ``equal_nan``), said as ``fused_name`` gave ..., ``written_name`` ...; None if they agree."""
    for got, want in zip(fused, written_once):
        got, want = as_host(adapter, got), as_host(adapter, want)
        if got.shape != want.shape or not np.allclose(got, want, rtol=tolerance, atol=tolerance, equal_nan=equal_nan):
            return (f"{fused_name} gave {got.ravel()[:3]}..., {written_name} {want.ravel()[:3]}... "
                    f"(shapes {got.shape} and {want.shape})")
    return None


def _disagreement(adapter: Any, name: str, probe: Array, fast: Array, reference: Array) -> _Disagreement | None:
    """Why ``fast`` (the native kernel's output) and ``reference`` (the written-once
    definition's) disagree on ``probe``; None when they agree."""
    if not (array_api_compat.is_array_api_obj(fast) and array_api_compat.is_array_api_obj(reference)):
        if type(fast) is type(reference):
            return None
        return _Disagreement(f"the native kernel gave a {type(fast).__name__}, not a {type(reference).__name__}")
    if fast.dtype != reference.dtype or tuple(fast.shape) != tuple(reference.shape):
        return _Disagreement(f"the native kernel gave dtype {fast.dtype} and shape {tuple(fast.shape)}, the "
                             f"written-once definition {reference.dtype} and {tuple(reference.shape)}")
    got, want = as_host(adapter, fast), as_host(adapter, reference)
    inputs = as_host(adapter, probe) if tuple(probe.shape) == tuple(reference.shape) else None
    if got.dtype.kind != "f":
        bad = got != want
    else:
        tolerance = math.sqrt(float(adapter.xp.finfo(fast.dtype).eps))
        with np.errstate(invalid="ignore", over="ignore"):
            nan = np.isnan(want) != np.isnan(got)
            inf = (np.isinf(want) | np.isinf(got)) & (want != got) & ~np.isnan(want)
            finite = np.isfinite(want) & np.isfinite(got)
            far = finite & (np.abs(got - want) > tolerance * np.maximum(1.0, np.maximum(np.abs(got), np.abs(want))))
            signs = np.zeros_like(nan)
            if name not in adapter.fast_path_zero_signs:
                signs = (got == 0) & (want == 0) & (np.signbit(got) != np.signbit(want))
        bad = nan | inf | far | signs
    if not bad.any():
        return None
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    native, written_once = got[index].item(), want[index].item()
    x = inputs[index].item() if inputs is not None else None
    at = f" at x={x!r}" if x is not None else f" at index {index}"
    return _Disagreement(f"the native kernel gave {native!r}{at}, the written-once definition {written_once!r}",
                         x, native, written_once)


def _outcome(adapter: Any, name: str, written_once: Callable[..., Any], fast: Callable[..., Any],
             probe: Array, calls: Sequence[ProbeCall], dtype: str, kind: str) -> SwitchedOff | None:
    """How ``fast`` disagrees with ``written_once`` on ``probe`` under ``calls``; None if it agrees."""
    for call in calls:
        args, kwargs = _resolved(call, probe)
        try:
            reference = written_once(probe, *args, **kwargs)
        except Exception:  # the definition refuses these arguments: the real call will say why
            continue
        try:
            out = fast(probe, *args, **kwargs)
        except Exception as error:
            problem = _Disagreement(f"the native kernel raised {type(error).__name__}: {error}")
        else:
            if out is NotImplemented:
                continue
            problem = _disagreement(adapter, name, probe, out, reference)
        if problem is not None:
            shown = ", ".join([*map(repr, call[0]), *(f"{k}={v!r}" for k, v in call[1].items() if not callable(v))])
            reason = problem.reason + (f" (with {shown})" if shown else "")
            return SwitchedOff(name, adapter.name, dtype, kind, reason, problem.x, problem.native,
                               problem.written_once, (call[0], dict(call[1])))
    return None


def checked(name: str, written_once: Callable[..., Any], fast: Callable[..., Any] | None, adapter: Any,
            x: Array, calls: Sequence[ProbeCall],
            probe_input: Callable[[Any, Array], Array] | None = None) -> Callable[..., Any] | None:
    """``fast`` when it agrees with ``written_once`` on the probe in ``x``'s dtype on every device
    kind where arrays of ``x``'s type run now (on the probe, or ``probe_input(adapter, probe)``); otherwise ``fast`` declining the device kinds
    where it disagrees (``Adapter.decline_on``), or None."""
    if fast is None or not calls:
        return fast
    dtype = x.dtype
    failed = []
    for kind, device in adapter.kernel_devices(x).items():
        key = (name, adapter.name, dtype_name(dtype), kind)
        with _LOCK:
            known = key in _OUTCOMES
            outcome = _OUTCOMES.get(key)
        if not known:
            with adapter.eagerly(), adapter.full_precision(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # edge values overflow by design: no warning is printed
                probe = probe_array(adapter, dtype, device, x.ndim)
                if probe is not None and probe_input is not None:
                    probe = probe_input(adapter, probe)
                outcome = None if probe is None else _outcome(adapter, name, written_once, fast, probe, calls,
                                                              dtype_name(dtype), kind)
            with _LOCK:
                _OUTCOMES.setdefault(key, outcome)
        if outcome is not None:
            failed.append(kind)
    if not failed:
        return fast
    return adapter.decline_on(fast, frozenset(failed))


#: The checks of native kernels that are no public function's fast path (a layer's fused
#: kernel), by name: ``disagreement(adapter, dtype, device)``, None when the kernel agrees or the
#: library has none.  ``xpnn.check_fast_paths`` runs them with the functions' fast paths.
LAYER_KERNELS: dict[str, Callable[[Any, Any, Any], str | None]] = {}


def layer_kernel_agrees(name: str, adapter: Any, x: Array) -> bool:
    """Whether the layer kernel ``name`` of ``LAYER_KERNELS`` (a library's fused LSTM loop or
    norm) agrees with the written-once code on this machine, for arrays like ``x``: its check
    runs both on a probe of its own, once per (name, library, dtype, device kind) on every kind
    of device where such arrays run now (``Adapter.kernel_devices``); a disagreement is listed
    by ``fast_path_report``."""
    try:
        answer_key = (name, type(x), x.dtype, x.device)
        answer = LAYER_KERNEL_ANSWERS.get(answer_key)
    except (AttributeError, TypeError):  # no ``device`` attribute, or one that cannot be hashed
        answer_key = answer = None
    if answer is not None:
        return answer
    agrees = True
    for kind, device in adapter.kernel_devices(x).items():
        key = (name, adapter.name, dtype_name(x.dtype), kind)
        with _LOCK:
            known = key in _OUTCOMES
            outcome = _OUTCOMES.get(key)
        if not known:
            with adapter.eagerly(), adapter.full_precision(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    reason = LAYER_KERNELS[name](adapter, x.dtype, device)
                except Exception as error:  # noqa: BLE001 - a kernel that raises is switched off, with the reason
                    reason = f"the native kernel raised {type(error).__name__}: {error}"
            outcome = None if reason is None else SwitchedOff(name, adapter.name, dtype_name(x.dtype), kind, reason)
            with _LOCK:
                _OUTCOMES.setdefault(key, outcome)
        agrees = agrees and outcome is None
    if answer_key is not None:
        LAYER_KERNEL_ANSWERS[answer_key] = agrees
    return agrees

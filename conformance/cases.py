"""The conformance cases: one row per public function (and per notable argument set).

A :class:`Case` names the xpnn function, its keyword arguments, how to build
extra array arguments (masks, weights, scales), the reference callable, the
input range and the points where gradients have kinks.  Tests and the
``python -m conformance`` report both iterate over :data:`CASES`.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

Extra = Callable[[np.random.Generator, tuple[int, ...]], dict[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Case:
    """One conformance row."""

    function: str
    #: The reference callable: ``reference(x, **extra, **kwargs)`` on the
    #: reference framework's arrays.  ``"jax"`` means ``jax.nn.<function>``.
    reference: str | Callable[..., Any] = "jax"
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: Builds extra array arguments (numpy, converted to each backend).
    extra: Extra | None = None
    #: Random inputs are drawn from this range.
    domain: tuple[float, float] = (-8.0, 8.0)
    #: Gradient points that sit on kinks (checked against jax.grad of the reference).
    kinks: tuple[float, ...] = ()
    #: Whether gradients are compared (the function is differentiable almost everywhere).
    grad: bool = True
    #: Whether the fixed edge values (+-0, +-inf, nan, huge, subnormal) are fed in.
    edges: bool = True
    #: The reference framework's name, for reports.
    framework: str = "jax"
    #: The smallest rank the function accepts (axis-wise functions need 1).
    min_ndim: int = 0

    @property
    def label(self) -> str:
        arguments = [f"{k}={v!r}" for k, v in self.kwargs.items()]
        if self.extra is not None:
            arguments.append(self.extra.__doc__ or "...")
        return f"{self.function}({', '.join(arguments)})" if arguments else self.function

    def reference_callable(self) -> Callable[..., Any]:
        if self.reference == "jax":
            import jax.nn

            return getattr(jax.nn, self.function)
        return self.reference  # type: ignore[return-value]


def _torch(name: str, **renames: str) -> Callable[..., Any]:
    """``torch.nn.functional.<name>`` with xpnn's argument names mapped to torch's."""

    def call(x, **kwargs):
        import torch.nn.functional as F

        return getattr(F, name)(x, **{renames.get(k, k): v for k, v in kwargs.items()})

    call.__name__ = f"torch.nn.functional.{name}"
    return call


def _torch_rrelu_eval(x, lower=1.0 / 8.0, upper=1.0 / 3.0):
    import torch.nn.functional as F

    return F.rrelu(x, lower, upper, training=False)


def _mask(rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """where=mask"""
    return {"where": rng.random(shape) < 0.7}


def _scales(rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """b=scales"""
    return {"b": rng.uniform(-1.0, 2.0, shape)}


def _channel_weight(rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """weight=per-channel"""
    channels = shape[1] if len(shape) >= 2 else 1
    return {"weight": rng.uniform(0.05, 0.5, (channels,))}


_AXIS = dict(min_ndim=1)

CASES: tuple[Case, ...] = (
    Case("relu", kinks=(0.0,)),
    Case("relu6", kinks=(0.0, 6.0)),
    Case("leaky_relu", kinks=(0.0,)),
    Case("leaky_relu", kwargs={"negative_slope": 0.2}, kinks=(0.0,)),
    Case("leaky_relu", kwargs={"negative_slope": 3.0}, kinks=(0.0,)),
    Case("leaky_relu", kwargs={"negative_slope": 0.0}, kinks=(0.0,)),
    Case("elu", kinks=(0.0,)),
    Case("elu", kwargs={"alpha": 2.0}, kinks=(0.0,)),
    Case("selu", kinks=(0.0,)),
    Case("celu", kinks=(0.0,)),
    Case("celu", kwargs={"alpha": 2.0}, kinks=(0.0,)),
    Case("gelu", kinks=(0.0,)),
    Case("gelu", kwargs={"approximate": False}, kinks=(0.0,)),
    Case("silu", kinks=(0.0,)),
    Case("swish"),
    Case("mish", kinks=(0.0,)),
    Case("hard_silu", kinks=(-3.0, 0.0, 3.0)),
    Case("hard_swish", kinks=(-3.0, 3.0)),
    Case("squareplus", kinks=(0.0,)),
    Case("squareplus", kwargs={"b": 1.0}),
    Case("sigmoid", kinks=(0.0,)),
    Case("hard_sigmoid", kinks=(-3.0, 3.0)),
    Case("log_sigmoid", kinks=(0.0,)),
    Case("soft_sign", kinks=(0.0,)),
    Case("tanh"),
    Case("hard_tanh", kinks=(-1.0, 1.0)),
    Case("softplus", kinks=(0.0,)),
    Case("sparse_plus", kinks=(-1.0, 1.0)),
    Case("sparse_sigmoid", kinks=(-1.0, 1.0)),
    Case("log1mexp", domain=(0.0, 8.0), kinks=(1.0,)),
    Case("identity"),
    Case("softmax", **_AXIS),
    Case("softmax", kwargs={"axis": 0}, **_AXIS),
    Case("softmax", kwargs={"axis": None}, **_AXIS),
    Case("softmax", extra=_mask, **_AXIS),
    Case("log_softmax", **_AXIS),
    Case("log_softmax", extra=_mask, **_AXIS),
    Case("logsumexp", **_AXIS),
    Case("logsumexp", kwargs={"axis": -1, "keepdims": True}, **_AXIS),
    Case("logsumexp", kwargs={"axis": -1}, extra=_scales, grad=False, **_AXIS),
    Case("logsumexp", kwargs={"axis": -1}, extra=_mask, **_AXIS),
    Case("logmeanexp", kwargs={"axis": -1}, **_AXIS),
    Case("logmeanexp", kwargs={"axis": -1}, extra=_mask, **_AXIS),
    Case("standardize", edges=False, **_AXIS),
    Case("standardize", kwargs={"algorithm": "stable"}, edges=False, **_AXIS),
    Case("standardize", extra=_mask, edges=False, **_AXIS),
    Case("glu", edges=False, **_AXIS),
    # torch.nn-only activations: reference torch.nn.functional.
    Case("hard_shrink", _torch("hardshrink"), framework="torch", kinks=(0.5, -0.5)),
    Case("hard_shrink", _torch("hardshrink"), {"lambd": 1.5}, framework="torch"),
    Case("soft_shrink", _torch("softshrink"), framework="torch", kinks=(0.5, -0.5)),
    Case("soft_shrink", _torch("softshrink"), {"lambd": 0.0}, framework="torch"),
    Case("tanh_shrink", _torch("tanhshrink"), framework="torch"),
    Case("threshold", _torch("threshold"), {"threshold": 0.5, "value": -9.0}, framework="torch", kinks=(0.5,)),
    Case("rrelu", _torch_rrelu_eval, framework="torch"),
    Case("prelu", _torch("prelu"), extra=_channel_weight, framework="torch"),
    Case("softmin", _torch("softmin", axis="dim"), {"axis": -1}, framework="torch", **_AXIS),
)


#: Edge values fed to every elementwise case (cast to each dtype; out-of-range become +-inf).
EDGE_VALUES = (
    -math.inf, -1e30, -100.0, -10.0, -6.0, -3.0, -1.0, -0.5, -1e-30, -0.0,
    0.0, 1e-30, 1e-40, 0.5, 1.0, 3.0, 6.0, 10.0, 100.0, 1e30, math.inf, math.nan,
)

"""torch.nn's activation modules (seed 003), thin shells over ``xpnn.torch_nn.functional``.

Same constructor arguments, defaults and ``extra_repr`` as torch.nn 2.13; ``inplace=True``
writes into the input where the library's arrays are mutable (see the functional module).
``PReLU`` holds its ``weight`` parameter; ``RReLU`` samples its slopes in training mode from the
generator (``xpnn.torch_nn.manual_seed``) and uses the mean slope in eval.
"""
from __future__ import annotations

from typing import Any

from xpnn._types import Array
from xpnn.torch_nn import functional as F
from xpnn.torch_nn import init as initialisers
from xpnn.torch_nn.init import Factory
from xpnn.torch_nn.module import Module, Parameter

__all__ = [
    "ELU", "CELU", "GELU", "GLU", "Hardshrink", "Hardsigmoid", "Hardswish", "Hardtanh", "LeakyReLU",
    "LogSigmoid", "Mish", "PReLU", "ReLU", "ReLU6", "RReLU", "SELU", "SiLU", "Sigmoid", "Softplus",
    "Softshrink", "Softsign", "Tanh", "Tanhshrink", "Threshold", "Softmax", "Softmin", "LogSoftmax",
    "Softmax2d",
]


class _Inplace(Module):
    """An activation with only torch's ``inplace`` flag."""

    _function: Any = None

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Array) -> Array:
        return type(self)._function(input, inplace=self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class _Plain(Module):
    """An activation without arguments."""

    _function: Any = None

    def forward(self, input: Array) -> Array:
        return type(self)._function(input)


class ReLU(_Inplace):
    """max(x, 0)."""
    _function = staticmethod(F.relu)


class ReLU6(_Inplace):
    """min(max(x, 0), 6)."""
    _function = staticmethod(F.relu6)


class SELU(_Inplace):
    """scale (max(0, x) + min(0, alpha (e^x - 1)))."""
    _function = staticmethod(F.selu)


class SiLU(_Inplace):
    """x sigmoid(x)."""
    _function = staticmethod(F.silu)


class Mish(_Inplace):
    """x tanh(softplus(x))."""
    _function = staticmethod(F.mish)


class Hardsigmoid(_Inplace):
    """relu6(x + 3) / 6."""
    _function = staticmethod(F.hardsigmoid)


class Hardswish(_Inplace):
    """x relu6(x + 3) / 6."""
    _function = staticmethod(F.hardswish)


class LogSigmoid(_Plain):
    """log(sigmoid(x))."""
    _function = staticmethod(F.logsigmoid)


class Sigmoid(_Plain):
    """1 / (1 + e^-x)."""
    _function = staticmethod(F.sigmoid)


class Tanh(_Plain):
    """tanh(x)."""
    _function = staticmethod(F.tanh)


class Tanhshrink(_Plain):
    """x - tanh(x)."""
    _function = staticmethod(F.tanhshrink)


class Softsign(_Plain):
    """x / (1 + |x|)."""
    _function = staticmethod(F.softsign)


class ELU(Module):
    """x if x > 0 else alpha (e^x - 1)."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, input: Array) -> Array:
        return F.elu(input, self.alpha, self.inplace)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class CELU(ELU):
    """max(0, x) + min(0, alpha (e^(x/alpha) - 1))."""

    def forward(self, input: Array) -> Array:
        return F.celu(input, self.alpha, self.inplace)


class GELU(Module):
    """x Phi(x), or its tanh approximation with ``approximate='tanh'``."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"xpnn.torch_nn.GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input: Array) -> Array:
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class GLU(Module):
    """a sigmoid(b), the input halved along ``dim``."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Array) -> Array:
        return F.glu(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Hardshrink(Module):
    """x if |x| > lambd else 0."""

    _function: Any = staticmethod(F.hardshrink)

    def __init__(self, lambd: float = 0.5) -> None:
        super().__init__()
        self.lambd = lambd

    def forward(self, input: Array) -> Array:
        return type(self)._function(input, self.lambd)

    def extra_repr(self) -> str:
        return f"{self.lambd}"


class Softshrink(Hardshrink):
    """x - lambd if x > lambd, x + lambd if x < -lambd, else 0."""
    _function = staticmethod(F.softshrink)


class Hardtanh(Module):
    """min(max(x, min_val), max_val)."""

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        if max_val < min_val:
            raise ValueError(f"xpnn.torch_nn.Hardtanh: max_val ({max_val}) must be >= min_val ({min_val})")
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    def forward(self, input: Array) -> Array:
        return F.hardtanh(input, self.min_val, self.max_val, self.inplace)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}" + (", inplace=True" if self.inplace else "")


class LeakyReLU(Module):
    """x if x >= 0 else negative_slope x."""

    def __init__(self, negative_slope: float = 1e-2, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, input: Array) -> Array:
        return F.leaky_relu(input, self.negative_slope, self.inplace)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class PReLU(Module):
    """x if x >= 0 else a x, ``weight`` a: ``num_parameters`` slopes (1, or one per channel, dim 1)
    initialised to ``init``."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25, *, like: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.num_parameters, self.init = num_parameters, init
        self.weight = Parameter(Factory(like, dtype).full((num_parameters,), init))

    def reset_parameters(self) -> None:
        """``weight`` back to ``init``, in place (torch's)."""
        initialisers.constant_(self.weight, self.init)

    def forward(self, input: Array) -> Array:
        return F.prelu(input, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class RReLU(Module):
    """x if x >= 0 else a x, ``a`` ~ U(lower, upper) per element in training, (lower + upper) / 2 in eval."""

    def __init__(self, lower: float = 1.0 / 8, upper: float = 1.0 / 3, inplace: bool = False) -> None:
        super().__init__()
        self.lower, self.upper, self.inplace = lower, upper, inplace

    def forward(self, input: Array) -> Array:
        return F.rrelu(input, self.lower, self.upper, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"lower={self.lower}, upper={self.upper}" + (", inplace=True" if self.inplace else "")


class Softplus(Module):
    """log(1 + e^(beta x)) / beta, x where beta x > threshold."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, input: Array) -> Array:
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Threshold(Module):
    """x if x > threshold else value."""

    def __init__(self, threshold: float, value: float, inplace: bool = False) -> None:
        super().__init__()
        self.threshold, self.value, self.inplace = threshold, value, inplace

    def forward(self, input: Array) -> Array:
        return F.threshold(input, self.threshold, self.value, self.inplace)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, value={self.value}" + (", inplace=True" if self.inplace else "")


class Softmax(Module):
    """e^x / sum(e^x) along ``dim``."""

    _function: Any = staticmethod(F.softmax)

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Array) -> Array:
        return type(self)._function(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Softmin(Softmax):
    """softmax(-x) along ``dim``."""
    _function = staticmethod(F.softmin)


class LogSoftmax(Softmax):
    """x - log(sum(e^x)) along ``dim``."""
    _function = staticmethod(F.log_softmax)


class Softmax2d(Module):
    """e^x / sum(e^x) over the channels of ``(N, C, H, W)`` or ``(C, H, W)`` (dim -3)."""

    def forward(self, input: Array) -> Array:
        if input.ndim not in (3, 4):
            raise ValueError(f"xpnn.torch_nn.Softmax2d: expected input to be 3D or 4D, got {input.ndim}D instead")
        return F.softmax(input, -3)

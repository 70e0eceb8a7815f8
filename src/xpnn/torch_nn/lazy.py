"""torch.nn's lazy modules: ``LazyLinear``, ``LazyConv1d/2d/3d``, ``LazyConvTranspose1d/2d/3d``,
``LazyBatchNorm1d/2d/3d`` and ``LazyInstanceNorm1d/2d/3d`` take every argument of their module
but the input size (``in_features``, ``in_channels``, ``num_features``), which the first input
gives, or the first ``load_state_dict`` (from its arrays' shapes).  Then the module becomes the
module it stands for (``LazyLinear`` a ``Linear``, as torch's ``cls_to_become``), with its
parameters initialised then, from the generator, as torch's are at the first call.

Before that a lazy module has no parameters (torch's are ``UninitializedParameter``): make
an optimizer after a first call, as torch asks.  The arrays are of the library and device of
``like=`` or ``.to(like=...)`` where given, else of the first input; float32 unless ``dtype``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xpnn import random
from xpnn._checks import library_of
from xpnn._types import Array
from xpnn.torch_nn.layers import (
    BatchNorm1d, BatchNorm2d, BatchNorm3d, Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d,
    ConvTranspose3d, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d, Linear,
)
from xpnn.torch_nn.module import Module, foreign_keys

__all__ = ["LazyLinear", "LazyConv1d", "LazyConv2d", "LazyConv3d", "LazyConvTranspose1d", "LazyConvTranspose2d",
           "LazyConvTranspose3d", "LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d", "LazyInstanceNorm1d",
           "LazyInstanceNorm2d", "LazyInstanceNorm3d"]


class _LazyModule(Module):
    """A module of ``_becomes`` whose input size is found later: by ``_size_of_input`` at the
    first call, or by ``_size_of_state`` from a state_dict (the first argument of
    ``_becomes``)."""

    _becomes: type[Module]
    #: The spatial rank: an input of ``_rank + 1`` dims is unbatched (its size at dim 0, else 1).
    _rank = 1

    def __init__(self, *args: Any, like: Any = None, dtype: Any = None, **kwargs: Any) -> None:
        super().__init__()
        object.__setattr__(self, "_deferred", (args, kwargs, like, dtype))
        # a shell of input size 0 (arrays of no element, no generator draw) for the repr and
        # the state_dict's names, as torch's lazy modules print and load
        extra = {"key": random.key(0)} if self._draws else {}
        object.__setattr__(self, "_shell", self._becomes(0, *args, **kwargs, **extra))

    #: Whether the module draws its parameters (and takes ``key=``).
    _draws = True

    def extra_repr(self) -> str:
        return self._shell.extra_repr()

    def reset_parameters(self) -> None:
        """Nothing before the parameters are made (torch's lazy modules); then the module's own."""

    def _place_later(self, like: Any, dtype: Any, device: Any, where: str) -> None:
        """Where (the library of ``like``, on ``device``) and in which floating dtype the
        parameters will be made (``Module.to``)."""
        args, kwargs, old_like, old_dtype = self._deferred
        like = old_like if like is None else like
        if device is not None:  # an empty array of the library there
            ops, _ = library_of(like, where)
            like = ops.to_device(ops.xp.zeros(0), ops.device_named(device, where))
        object.__setattr__(self, "_deferred", (args, kwargs, like, old_dtype if dtype is None else dtype))

    def forward(self, input: Array, *args: Any, **kwargs: Any) -> Any:
        self.initialize_parameters(input)
        return self.forward(input, *args, **kwargs)

    def has_uninitialized_params(self) -> bool:
        """Whether the parameters are still to be made: always, for a module still lazy (it
        becomes its module when they are made), as torch's ``LazyModuleMixin``."""
        return True

    def initialize_parameters(self, input: Array, *args: Any, **kwargs: Any) -> None:
        """Make the parameters for ``input``'s size (and library) without running the module:
        it becomes its module (torch's ``LazyModuleMixin.initialize_parameters``)."""
        self._materialize(self._size_of_input(input), input)

    def _size_of_input(self, input: Array) -> int:
        """The channels (dim 1, or dim 0 of an unbatched input)."""
        return input.shape[0 if input.ndim == self._rank + 1 else 1]

    def _size_of_state(self, state: Mapping[str, Any], prefix: str) -> int | None:
        """The input size from the state's ``weight`` (or None where it has none)."""
        weight = state.get(prefix + "weight")
        return None if weight is None else weight.shape[1]

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, local_metadata: dict[str, Any],
                              strict: bool, missing_keys: list[str], unexpected_keys: list[str],
                              error_msgs: list[str]) -> None:
        """Become the module from a state_dict that holds the arrays to size it, and load them as
        it does; without them, the names the module will have are all missing (torch's lazy load)."""
        size = self._size_of_state(state_dict, prefix)
        if size is not None:
            self._materialize(size, None)
            self._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                       error_msgs)
            return
        names = list(self._shell.state_dict())
        missing_keys.extend(prefix + name for name in names)
        if strict:
            unexpected_keys.extend(foreign_keys(state_dict, prefix, names))

    def _materialize(self, size: int, input: Array | None) -> None:
        args, kwargs, like, dtype = self._deferred
        training = self.training
        module = self._becomes(size, *args, **kwargs, like=input if like is None and input is not None else like,
                               dtype=dtype)
        self.__dict__.clear()
        self.__dict__.update(module.__dict__)
        self.__class__ = self._becomes
        self.train(training)


class LazyLinear(_LazyModule):
    """A ``Linear`` whose ``in_features`` is the first input's last dim."""

    _becomes = Linear

    def _size_of_input(self, input: Array) -> int:
        return input.shape[-1]


class _LazyConvolution(_LazyModule):
    """A convolution (or a transposed one) whose ``in_channels`` is the first input's channels
    (from a state, its weight's dim 1 times the groups; a transposed one's dim 0)."""

    _transposed = False

    def _size_of_state(self, state: Mapping[str, Any], prefix: str) -> int | None:
        weight = state.get(prefix + "weight")
        if weight is None:
            return None
        return weight.shape[0] if self._transposed else weight.shape[1] * self._shell.groups


class LazyConv1d(_LazyConvolution):
    """A ``Conv1d`` whose ``in_channels`` is the first input's."""
    _becomes, _rank = Conv1d, 1


class LazyConv2d(_LazyConvolution):
    """A ``Conv2d`` whose ``in_channels`` is the first input's."""
    _becomes, _rank = Conv2d, 2


class LazyConv3d(_LazyConvolution):
    """A ``Conv3d`` whose ``in_channels`` is the first input's."""
    _becomes, _rank = Conv3d, 3


class LazyConvTranspose1d(_LazyConvolution):
    """A ``ConvTranspose1d`` whose ``in_channels`` is the first input's."""
    _becomes, _rank, _transposed = ConvTranspose1d, 1, True


class LazyConvTranspose2d(_LazyConvolution):
    """A ``ConvTranspose2d`` whose ``in_channels`` is the first input's."""
    _becomes, _rank, _transposed = ConvTranspose2d, 2, True


class LazyConvTranspose3d(_LazyConvolution):
    """A ``ConvTranspose3d`` whose ``in_channels`` is the first input's."""
    _becomes, _rank, _transposed = ConvTranspose3d, 3, True


class _LazyNorm(_LazyModule):
    """A batch or instance norm whose ``num_features`` is the first input's channels (from a
    state, its weight's or running mean's length)."""

    _draws = False

    def reset_running_stats(self) -> None:
        """Nothing before the statistics are made (torch's lazy norms); then the module's own."""

    def _size_of_state(self, state: Mapping[str, Any], prefix: str) -> int | None:
        for name in ("weight", "running_mean"):
            if prefix + name in state:
                return state[prefix + name].shape[0]
        return None


class _LazyBatchNorm(_LazyNorm):
    """A batch norm whose ``num_features`` is the first input's dim 1 (it has no unbatched form)."""

    def _size_of_input(self, input: Array) -> int:
        return input.shape[1] if input.ndim > 1 else input.shape[0]


class LazyBatchNorm1d(_LazyBatchNorm):
    """A ``BatchNorm1d`` whose ``num_features`` is the first input's (N, C) or (N, C, L) channels."""
    _becomes = BatchNorm1d


class LazyBatchNorm2d(_LazyBatchNorm):
    """A ``BatchNorm2d`` whose ``num_features`` is the first input's channels."""
    _becomes = BatchNorm2d


class LazyBatchNorm3d(_LazyBatchNorm):
    """A ``BatchNorm3d`` whose ``num_features`` is the first input's channels."""
    _becomes = BatchNorm3d


class _LazyInstanceNorm(_LazyNorm):
    """An instance norm whose ``num_features`` is the first input's channels; affine and with
    running statistics by default, as torch's lazy instance norms (the eager ones are neither)."""

    def __init__(self, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, *, bias: bool = True, like: Any = None, dtype: Any = None) -> None:
        super().__init__(eps, momentum, affine, track_running_stats, bias=bias, like=like, dtype=dtype)


class LazyInstanceNorm1d(_LazyInstanceNorm):
    """An ``InstanceNorm1d`` whose ``num_features`` is the first input's channels."""
    _becomes, _rank = InstanceNorm1d, 1


class LazyInstanceNorm2d(_LazyInstanceNorm):
    """An ``InstanceNorm2d`` whose ``num_features`` is the first input's channels."""
    _becomes, _rank = InstanceNorm2d, 2


class LazyInstanceNorm3d(_LazyInstanceNorm):
    """An ``InstanceNorm3d`` whose ``num_features`` is the first input's channels."""
    _becomes, _rank = InstanceNorm3d, 3

"""``torch.nn.utils.prune`` for the modules of any library: a pruned ``<name>`` becomes the
parameter ``<name>_orig`` and the buffer ``<name>_mask``, and ``module.<name>`` = mask * orig is
computed before each call, so a pruned torch checkpoint (its ``weight_orig`` and ``weight_mask``
keys) loads into a module pruned the same way (``identity`` prunes nothing).

The masks are those of torch's methods: the ``amount`` smallest entries by magnitude
(``l1_unstructured``), the channels along ``dim`` of the smallest L``n`` norms
(``ln_structured``), random entries or channels (drawn from ``xpnn.torch_nn.manual_seed``'s
generator, not torch's), a given mask, or the smallest magnitudes over several parameters at
once (``global_unstructured``).  A second pruning of the same parameter acts on what the first
left, as torch's ``PruningContainer``: the entries whose mask is 1 (unstructured) or the channels
not all pruned (structured).  Where entries tie, the first in row-major order is pruned first.
"""
from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

from xpnn import random
from xpnn._dispatch import adapter_of, is_array
from xpnn._types import Array
from xpnn.torch_nn._generator import next_key
from xpnn.torch_nn.module import Module, fill_in_place
from xpnn.torch_nn.utils.convert_parameters import parameters_to_vector
from xpnn.torch_nn.utils.weight_norm import _hooks_of
from xpnn.trees import to_backend

__all__ = ["BasePruningMethod", "PruningContainer", "Identity", "RandomUnstructured", "L1Unstructured",
           "RandomStructured", "LnStructured", "CustomFromMask", "identity", "random_unstructured",
           "l1_unstructured", "random_structured", "ln_structured", "global_unstructured", "custom_from_mask",
           "remove", "is_pruned"]

_WHERE = "xpnn.torch_nn.utils.prune"
Pruned = TypeVar("Pruned", bound=Module)


class BasePruningMethod(ABC):
    """A way to prune a parameter: ``compute_mask(t, default_mask)`` gives the new mask, and the
    method, registered as a forward pre-hook, sets ``module.<name>`` = mask * orig before each
    call (``torch.nn.utils.prune.BasePruningMethod``)."""

    PRUNING_TYPE: str
    _tensor_name: str | None = None

    def __call__(self, module: Module, inputs: object) -> None:
        setattr(module, self._tensor_name, self.apply_mask(module))

    @abstractmethod
    def compute_mask(self, t: Array, default_mask: Array) -> Array:
        """The mask of ``t`` (its importance scores), the entries ``default_mask`` prunes pruned too."""

    def apply_mask(self, module: Module) -> Array:
        """``<name>_mask * <name>_orig``, the mask cast to the parameter's dtype."""
        if self._tensor_name is None:
            raise RuntimeError(f"{_WHERE}.{type(self).__name__}.apply_mask: Module {module} has to be pruned")
        mask, orig = getattr(module, self._tensor_name + "_mask"), getattr(module, self._tensor_name + "_orig")
        return adapter_of(orig).xp.astype(mask, orig.dtype) * orig

    @classmethod
    def apply(cls, module: Module, name: str, *args: Any, importance_scores: Array | None = None,
              **kwargs: Any) -> BasePruningMethod:
        """Prune ``module.<name>`` with ``cls(*args, **kwargs)``: the first pruning moves the
        parameter to ``<name>_orig``; the masks of later ones are combined in a
        ``PruningContainer``.  ``importance_scores`` (``<name>``'s shape) rank the entries in
        place of ``<name>``'s values."""
        where = f"{_WHERE}.{cls.__name__}.apply"
        method = cls(*args, **kwargs)
        method._tensor_name = name
        old = [(key, hook) for key, hook in _hooks_of(module, BasePruningMethod) if hook._tensor_name == name]
        if len(old) > 1:
            raise RuntimeError(f"{where}: Avoid adding multiple pruning hooks to the same tensor {name} of module "
                               f"{type(module).__name__}. Use a PruningContainer.")
        orig = getattr(module, name, None)
        if not is_array(orig) or not old and name not in module._parameters:
            raise AttributeError(f"{where}: {type(module).__name__} has no parameter '{name}' to prune")
        if importance_scores is None:
            importance_scores = orig
        elif tuple(importance_scores.shape) != tuple(orig.shape):
            raise ValueError(f"{where}: importance_scores should have the same shape as parameter {name} of "
                             f"{type(module).__name__}, got {tuple(importance_scores.shape)} vs {tuple(orig.shape)}")
        scores = to_backend(importance_scores, orig)
        if not old:
            mask = method.compute_mask(scores, adapter_of(orig).xp.ones_like(orig))
            module.register_parameter(name + "_orig", orig)
            del module._parameters[name]
        else:  # the masks combined; the container (torch's, if it was one) holds the new method once it worked
            key, before = old[0]
            earlier = tuple(before) if isinstance(before, PruningContainer) else (before,)
            mask = PruningContainer(*earlier, method).compute_mask(scores, getattr(module, name + "_mask"))
            if isinstance(before, PruningContainer):
                before.add_pruning_method(method)
                method = before
            else:
                method = PruningContainer(before, method)
            del module._forward_pre_hooks[key]
        module.register_buffer(name + "_mask", mask)
        setattr(module, name, method.apply_mask(module))
        module.register_forward_pre_hook(method)
        return method

    def prune(self, t: Array, default_mask: Array | None = None, importance_scores: Array | None = None) -> Array:
        """``t`` times its mask, without a module."""
        if importance_scores is None:
            importance_scores = t
        elif tuple(importance_scores.shape) != tuple(t.shape):
            raise ValueError(f"{_WHERE}.{type(self).__name__}.prune: importance_scores should have the same shape "
                             f"as tensor t, got {tuple(importance_scores.shape)} vs {tuple(t.shape)}")
        if default_mask is None:
            default_mask = adapter_of(t).xp.ones_like(t)
        return t * self.compute_mask(importance_scores, default_mask)

    def remove(self, module: Module) -> None:
        """Make ``<name>`` a plain parameter again, of its pruned value, written into the array
        ``<name>_orig`` held (so an optimizer holding it keeps training it)."""
        if self._tensor_name is None:
            raise RuntimeError(f"{_WHERE}.{type(self).__name__}.remove: Module {module} has to be pruned before "
                               f"pruning can be removed")
        name = self._tensor_name
        weight = self.apply_mask(module)
        module.__dict__.pop(name, None)
        orig = fill_in_place(module._parameters[name + "_orig"], weight)
        module._drop(name + "_orig")
        module._drop(name + "_mask")
        module.register_parameter(name, orig)


class PruningContainer(BasePruningMethod):
    """Pruning methods applied one after another to one parameter, each acting on what the ones
    before left (``torch.nn.utils.prune.PruningContainer``)."""

    def __init__(self, *methods: BasePruningMethod) -> None:
        self._pruning_methods: tuple[BasePruningMethod, ...] = ()
        if methods:
            self._tensor_name = methods[0]._tensor_name
        for method in methods:
            self.add_pruning_method(method)

    def add_pruning_method(self, method: BasePruningMethod) -> None:
        if not isinstance(method, BasePruningMethod):
            raise TypeError(f"{_WHERE}.PruningContainer.add_pruning_method: {type(method).__name__} is not a "
                            f"BasePruningMethod subclass")
        if self._tensor_name != method._tensor_name:
            raise ValueError(f"{_WHERE}.PruningContainer.add_pruning_method: Can only add pruning methods acting on "
                             f"the parameter named '{self._tensor_name}' to PruningContainer {self}. Found "
                             f"'{method._tensor_name}'")
        self._pruning_methods += (method,)

    def __len__(self) -> int:
        return len(self._pruning_methods)

    def __iter__(self) -> Iterator[BasePruningMethod]:
        return iter(self._pruning_methods)

    def __getitem__(self, index: int) -> BasePruningMethod:
        return self._pruning_methods[index]

    def compute_mask(self, t: Array, default_mask: Array) -> Array:
        """The last method's mask of the part of ``t`` still unpruned: the entries whose mask is
        1 (unstructured methods), the channels along the method's ``dim`` whose mask is not all
        0 (structured), all of ``t`` (global); the rest of ``default_mask`` kept."""
        method = self._pruning_methods[-1]
        xp = adapter_of(t).xp
        mask = xp.astype(default_mask, t.dtype)
        kind = getattr(method, "PRUNING_TYPE", None)
        if kind == "global":
            return method.compute_mask(t, mask)
        if kind == "unstructured":
            flat = _part_computed(method, xp.reshape(t, (-1,)), xp.reshape(mask, (-1,)),
                                  xp.reshape(mask == 1, (-1,)), 0)
            return xp.reshape(flat, tuple(t.shape))
        if kind == "structured":
            if not hasattr(method, "dim"):
                raise AttributeError(f"{_WHERE}.PruningContainer.compute_mask: Pruning methods of PRUNING_TYPE "
                                     f'"structured" need to have the attribute `dim` defined.')
            dim = _axis(t, method.dim, "PruningContainer.compute_mask")
            kept = xp.sum(mask, axis=tuple(axis for axis in range(t.ndim) if axis != dim)) != 0
            return _part_computed(method, t, mask, kept, dim)
        raise ValueError(f"{_WHERE}.PruningContainer.compute_mask: Unrecognized PRUNING_TYPE {kind}")


def _part_computed(method: BasePruningMethod, t: Array, mask: Array, kept: Array, axis: int) -> Array:
    """``mask`` with its slices along ``axis`` where the 1-D ``kept`` is True replaced by
    ``method``'s mask of those slices of ``t`` (torch's ``mask[slc] = method.compute_mask(t[slc],
    mask[slc])``, gathered and spread back by index so no library needs boolean assignment)."""
    xp = adapter_of(t).xp
    count = int(xp.sum(xp.astype(kept, xp.int32)))
    if count == 0:
        return mask
    chosen = xp.argsort(xp.astype(xp.logical_not(kept), xp.int32), stable=True)[:count]  # the kept, in order
    part = method.compute_mask(xp.take(t, chosen, axis=axis), xp.take(mask, chosen, axis=axis))
    position = xp.clip(xp.cumulative_sum(xp.astype(kept, xp.int64)) - 1, min=0)
    spread = xp.take(xp.astype(part, mask.dtype), position, axis=axis)
    return xp.where(_along(kept, axis, t.ndim), spread, mask)


def _along(vector: Array, axis: int, ndim: int) -> Array:
    """The 1-D ``vector`` shaped to broadcast along ``axis`` of an ``ndim``-D array."""
    return adapter_of(vector).xp.reshape(vector, tuple(-1 if i == axis else 1 for i in range(ndim)))


def _ranks(values: Array) -> Array:
    """Each entry's place in the stable ascending sort of the 1-D ``values``."""
    xp = adapter_of(values).xp
    return xp.argsort(xp.argsort(values, stable=True))


def _check_amount_type(where: str, amount: Any) -> None:
    if not isinstance(amount, numbers.Real):
        raise TypeError(f"{where}: Invalid type for amount: {amount!r}. Must be int or float.")
    if (amount < 0) if isinstance(amount, numbers.Integral) else not 0.0 <= float(amount) <= 1.0:
        raise ValueError(f"{where}: amount={amount} should either be a float in the range [0, 1] or a non-negative "
                         f"integer")


def _count_to_prune(where: str, amount: float, size: int) -> int:
    """``amount`` entries (an int) or that fraction of ``size`` (rounded half to even), at most ``size``."""
    if isinstance(amount, numbers.Integral):
        if amount > size:
            raise ValueError(f"{where}: amount={amount} should be smaller than the number of parameters to "
                             f"prune={size}")
        return int(amount)
    return round(amount * size)


def _axis(t: Array, dim: int, caller: str) -> int:
    """``dim`` of ``t`` as a non-negative axis, for a structured method (2 or more dims)."""
    if t.ndim <= 1:
        raise ValueError(f"{_WHERE}.{caller}: Structured pruning can only be applied to multidimensional tensors. "
                         f"Found tensor of shape {tuple(t.shape)} with {t.ndim} dims")
    if not -t.ndim <= dim < t.ndim:
        raise IndexError(f"{_WHERE}.{caller}: Invalid index {dim} for tensor of size {tuple(t.shape)}")
    return dim % t.ndim


class _ByAmount(BasePruningMethod):
    """A method that prunes ``amount`` entries or channels (an int) or that fraction of them."""

    def __init__(self, amount: float) -> None:
        _check_amount_type(f"{_WHERE}.{type(self).__name__}", amount)
        self.amount = amount

    def _unstructured(self, t: Array, default_mask: Array, scores: Array) -> Array:
        """``default_mask`` with 0 at the entries of the ``amount`` smallest ``scores``."""
        xp = adapter_of(t).xp
        size = math.prod(t.shape)
        count = _count_to_prune(f"{_WHERE}.{type(self).__name__}", self.amount, size)
        if count == 0:
            return default_mask
        pruned = xp.reshape(_ranks(xp.reshape(scores, (-1,))) < count, tuple(t.shape))
        return xp.where(pruned, xp.zeros_like(default_mask), default_mask)

    def _structured(self, t: Array, default_mask: Array, channel_scores: Any) -> Array:
        """``default_mask`` times 1 on the channels along ``dim`` of the largest scores (from
        ``channel_scores(t, dim, count)``), 0 on the ``amount`` others."""
        caller = type(self).__name__
        dim = _axis(t, self.dim, caller)
        count = _count_to_prune(f"{_WHERE}.{caller}", self.amount, t.shape[dim])
        if count == 0:
            return default_mask
        xp = adapter_of(t).xp
        kept = _along(_ranks(channel_scores(t, dim)) >= count, dim, t.ndim)
        mask = xp.where(kept, xp.ones_like(t), xp.zeros_like(t))
        return mask * xp.astype(default_mask, mask.dtype)


class Identity(BasePruningMethod):
    """Prunes nothing: the mask all ones (``torch.nn.utils.prune.Identity``)."""

    PRUNING_TYPE = "unstructured"

    def compute_mask(self, t: Array, default_mask: Array) -> Array:
        return default_mask

    @classmethod
    def apply(cls, module: Module, name: str) -> BasePruningMethod:
        return super().apply(module, name)


class RandomUnstructured(_ByAmount):
    """Prunes ``amount`` random entries (``torch.nn.utils.prune.RandomUnstructured``; drawn from
    ``xpnn.torch_nn``'s generator, in float32: one seed, one mask on every backend)."""

    PRUNING_TYPE = "unstructured"

    def compute_mask(self, t: Array, default_mask: Array) -> Array:
        return self._unstructured(t, default_mask, random.uniform(next_key(t), tuple(t.shape), "float32"))

    @classmethod
    def apply(cls, module: Module, name: str, amount: float) -> BasePruningMethod:
        return super().apply(module, name, amount=amount)


class L1Unstructured(_ByAmount):
    """Prunes the ``amount`` entries of smallest magnitude (``torch.nn.utils.prune.L1Unstructured``)."""

    PRUNING_TYPE = "unstructured"

    def compute_mask(self, t: Array, default_mask: Array) -> Array:
        return self._unstructured(t, default_mask, adapter_of(t).xp.abs(t))

    @classmethod
    def apply(cls, module: Module, name: str, amount: float,
              importance_scores: Array | None = None) -> BasePruningMethod:
        return super().apply(module, name, amount=amount, importance_scores=importance_scores)


class RandomStructured(_ByAmount):
    """Prunes ``amount`` random channels along ``dim`` (``torch.nn.utils.prune.RandomStructured``;
    drawn from ``xpnn.torch_nn``'s generator, in float32)."""

    PRUNING_TYPE = "structured"

    def __init__(self, amount: float, dim: int = -1) -> None:
        super().__init__(amount)
        self.dim = dim

    def compute_mask(self, t: Array, default_mask: Array) -> Array:
        def draws(t: Array, dim: int) -> Array:
            return random.uniform(next_key(t), (t.shape[dim],), "float32")

        return self._structured(t, default_mask, draws)

    @classmethod
    def apply(cls, module: Module, name: str, amount: float, dim: int = -1) -> BasePruningMethod:
        return super().apply(module, name, amount=amount, dim=dim)


class LnStructured(_ByAmount):
    """Prunes the ``amount`` channels along ``dim`` of smallest L``n`` norm (over the other
    dims; ``n`` a number, ``inf``, ``-inf`` or ``'fro'``, the 2-norm, over any number of other
    dims where torch's takes at most two) (``torch.nn.utils.prune.LnStructured``)."""

    PRUNING_TYPE = "structured"

    def __init__(self, amount: float, n: float | str, dim: int = -1) -> None:
        super().__init__(amount)
        if n == "fro":
            n = 2
        if isinstance(n, str) or not isinstance(n, numbers.Real):
            raise ValueError(f"{_WHERE}.LnStructured: n must be a number, inf, -inf or 'fro', got {n!r}")
        self.n, self.dim = n, dim

    def compute_mask(self, t: Array, default_mask: Array) -> Array:
        def norms(t: Array, dim: int) -> Array:
            others = tuple(axis for axis in range(t.ndim) if axis != dim)
            return adapter_of(t).xp.linalg.vector_norm(t, axis=others, ord=self.n)

        return self._structured(t, default_mask, norms)

    @classmethod
    def apply(cls, module: Module, name: str, amount: float, n: float | str, dim: int,
              importance_scores: Array | None = None) -> BasePruningMethod:
        return super().apply(module, name, amount=amount, n=n, dim=dim, importance_scores=importance_scores)


class CustomFromMask(BasePruningMethod):
    """Prunes where ``mask`` is 0 (``torch.nn.utils.prune.CustomFromMask``; the mask an array of
    any library, or nested lists)."""

    PRUNING_TYPE = "global"

    def __init__(self, mask: Array) -> None:
        self.mask = mask

    def compute_mask(self, t: Array, default_mask: Array) -> Array:
        xp = adapter_of(default_mask).xp
        mask = to_backend(self.mask, default_mask) if is_array(self.mask) else xp.asarray(self.mask)
        if tuple(mask.shape) != tuple(default_mask.shape):
            raise ValueError(f"{_WHERE}.CustomFromMask: mask of shape {tuple(mask.shape)} for a parameter of shape "
                             f"{tuple(default_mask.shape)}")
        return default_mask * xp.astype(mask, default_mask.dtype)

    @classmethod
    def apply(cls, module: Module, name: str, mask: Array) -> BasePruningMethod:
        return super().apply(module, name, mask=mask)


def identity(module: Pruned, name: str) -> Pruned:
    """``module.<name>`` as ``<name>_orig`` times a mask of ones: what a pruned checkpoint loads
    into (``torch.nn.utils.prune.identity``)."""
    Identity.apply(module, name)
    return module


def random_unstructured(module: Pruned, name: str, amount: float) -> Pruned:
    """Prune ``amount`` random entries of ``module.<name>`` (an int, or a fraction in [0, 1])."""
    RandomUnstructured.apply(module, name, amount)
    return module


def l1_unstructured(module: Pruned, name: str, amount: float, importance_scores: Array | None = None) -> Pruned:
    """Prune the ``amount`` entries of ``module.<name>`` of smallest magnitude (of
    ``importance_scores`` where given)."""
    L1Unstructured.apply(module, name, amount=amount, importance_scores=importance_scores)
    return module


def random_structured(module: Pruned, name: str, amount: float, dim: int) -> Pruned:
    """Prune ``amount`` random channels along ``dim`` of ``module.<name>``."""
    RandomStructured.apply(module, name, amount, dim)
    return module


def ln_structured(module: Pruned, name: str, amount: float, n: float | str, dim: int,
                  importance_scores: Array | None = None) -> Pruned:
    """Prune the ``amount`` channels along ``dim`` of ``module.<name>`` of smallest L``n`` norm."""
    LnStructured.apply(module, name, amount, n, dim, importance_scores=importance_scores)
    return module


def custom_from_mask(module: Pruned, name: str, mask: Array) -> Pruned:
    """Prune ``module.<name>`` where ``mask`` is 0."""
    CustomFromMask.apply(module, name, mask)
    return module


def global_unstructured(parameters: Iterable[tuple[Module, str]], pruning_method: type[BasePruningMethod],
                        importance_scores: Mapping[tuple[Module, str], Array] | None = None, **kwargs: Any) -> None:
    """Prune the ``(module, name)`` parameters together: ``pruning_method(**kwargs)`` (an
    unstructured method, e.g. ``L1Unstructured`` with ``amount``) ranks all their unpruned
    entries at once (``torch.nn.utils.prune.global_unstructured``)."""
    where = f"{_WHERE}.global_unstructured"
    if not isinstance(parameters, Iterable):
        raise TypeError(f"{where}: parameters is not an Iterable")
    parameters = list(parameters)
    importance_scores = {} if importance_scores is None else importance_scores
    if not isinstance(importance_scores, Mapping):
        raise TypeError(f"{where}: importance_scores must be of type dict")
    method = pruning_method(**kwargs)
    method._tensor_name = "temp"
    if method.PRUNING_TYPE != "unstructured":
        raise TypeError(f'{where}: Only "unstructured" PRUNING_TYPE supported for the `pruning_method`. Found method '
                        f"{pruning_method.__name__} of type {method.PRUNING_TYPE}")
    values = [getattr(module, name) for module, name in parameters]
    scores = parameters_to_vector([importance_scores.get((module, name), value)
                                   for (module, name), value in zip(parameters, values)])
    masks = []
    for (module, name), value in zip(parameters, values):
        mask = getattr(module, name + "_mask", None)
        masks.append(adapter_of(value).xp.ones_like(value) if mask is None else mask)
    masks = parameters_to_vector(masks)
    final_mask = PruningContainer(method).compute_mask(scores, masks)
    xp = adapter_of(final_mask).xp
    start = 0
    for (module, name), value in zip(parameters, values):
        size = math.prod(value.shape)
        custom_from_mask(module, name, xp.reshape(final_mask[start:start + size], tuple(value.shape)))
        start += size


def remove(module: Pruned, name: str) -> Pruned:
    """Make ``module.<name>`` a plain parameter again, of its pruned value: the pruning made
    permanent (``torch.nn.utils.prune.remove``)."""
    for key, hook in _hooks_of(module, BasePruningMethod):
        if hook._tensor_name == name:
            hook.remove(module)
            del module._forward_pre_hooks[key]
            return module
    raise ValueError(f"{_WHERE}.remove: Parameter '{name}' of module {type(module).__name__} has to be pruned "
                     f"before pruning can be removed")


def is_pruned(module: Module) -> bool:
    """Whether ``module`` or any of its submodules has a pruning hook."""
    return any(_hooks_of(submodule, BasePruningMethod) for _, submodule in module.named_modules())

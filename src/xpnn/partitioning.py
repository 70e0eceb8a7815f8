"""Partitioning metadata on variables: flax.linen's ``Partitioned`` boxes and logical axis rules.

An initializer wrapped by ``with_partitioning(init, names)`` returns its value in a
``Partitioned`` box that names, per axis, the mesh axis the variable is split over (or
None: replicated).  ``init`` keeps the boxes in the variables it returns; a module reading a
parameter (``param``, ``variable(...).value``) gets the value unboxed, and on jax, under a
mesh (``jax.set_mesh``, or a box's own ``mesh``), with that layout as a sharding
constraint.  ``get_partition_spec`` and ``get_sharding`` turn a tree of boxes (the
variables, or ``jax.eval_shape(model.init, ...)``'s abstract ones) into the
``PartitionSpec``/``NamedSharding`` tree that ``jax.jit(..., out_shardings=...)`` takes,
so a model is initialized already laid out over the devices.  ``LogicallyPartitioned``
(``with_logical_partitioning``) names logical axes ("embed", "mlp") that the rules of
``logical_axis_rules`` map to mesh axes.

The boxes are written once: off jax they carry their names as metadata and unbox to the
value unchanged, so one model definition with partitioned initializers runs on every
backend.  The specs and shardings themselves are jax's types (``backends/jax.py`` makes
them).  Matches flax.linen 0.12 (``flax.core.meta``, ``flax.linen.spmd``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import array_api_compat

from xpnn._dispatch import adapter_of
from xpnn.trees import Box, tree_map

__all__ = [
    "Partitioned", "LogicallyPartitioned", "with_partitioning", "with_logical_partitioning", "unbox",
    "get_partition_spec", "get_sharding", "logical_axis_rules", "set_logical_axis_rules",
    "get_logical_axis_rules", "logical_to_mesh_axes", "logical_to_mesh", "logical_to_mesh_sharding",
    "with_logical_constraint",
]

#: Per array axis, a mesh (or logical) axis name, a tuple of them, or None.
Names = tuple[Any, ...]
#: ``(logical name, mesh axes)`` pairs, the first matching rule winning.
Rules = tuple[tuple[str, Any], ...]


def _jax_sharding(where: str) -> Any:
    """``backends/jax.py``, which makes jax's specs and shardings; a clear error without jax."""
    try:
        return importlib.import_module("xpnn.backends.jax")
    except ImportError as error:
        raise ImportError(f"{where}: partition specs and shardings are jax's (jax.sharding); "
                          f"install jax to make them ({error})") from None


@dataclasses.dataclass(frozen=True, eq=False)
class Partitioned(Box):
    """A variable's ``value`` with the mesh axis of each of its axes (``flax.linen.Partitioned``).

    ``names[i]`` is the mesh axis (or tuple of axes) axis ``i`` is split over, None for a
    replicated axis; ``mesh`` (a ``jax.sharding.Mesh``, optional) is the mesh to constrain to,
    else the one of ``jax.set_mesh``.  A tree node whose one child is ``value``: ``tree_map``
    (xpnn's and, once jax arrays were seen, jax's) maps the value and keeps the box.
    """

    value: Any
    names: Names
    mesh: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", _names(self.names, type(self).__name__))

    def unbox(self, apply_constraint: bool = True) -> Any:
        """The value; on jax under a mesh, constrained to the layout of ``names``."""
        if not apply_constraint or not array_api_compat.is_array_api_obj(self.value):
            return self.value
        return adapter_of(self.value).constrain_sharding(self.value, self.names, self.mesh)

    def replace_boxed(self, value: Any) -> Partitioned:
        """The same box around ``value``."""
        return dataclasses.replace(self, value=value)

    def get_partition_spec(self) -> Any:
        """``jax.sharding.PartitionSpec(*names)``."""
        return _jax_sharding("Partitioned.get_partition_spec").partition_spec(self.names)

    def get_sharding(self, mesh: Any) -> Any:
        """``jax.sharding.NamedSharding(mesh, PartitionSpec(*names))``."""
        return _jax_sharding("Partitioned.get_sharding").named_sharding(mesh, self.get_partition_spec())


@dataclasses.dataclass(frozen=True, eq=False)
class LogicallyPartitioned(Partitioned):
    """A ``Partitioned`` box whose ``names`` are logical axes ("embed", "mlp"), mapped to mesh axes
    by ``rules`` or, without them, by those of ``logical_axis_rules`` (``flax.linen.LogicallyPartitioned``).
    ``get_partition_spec`` gives the logical spec; ``logical_to_mesh`` maps it."""

    rules: Rules | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rules is not None:
            object.__setattr__(self, "rules", _rules(self.rules, "LogicallyPartitioned"))

    def unbox(self, apply_constraint: bool = True) -> Any:
        """The value; on jax under a mesh and with rules, constrained to the mesh axes they give."""
        if not apply_constraint:
            return self.value
        return with_logical_constraint(self.value, self.names, rules=self.rules, mesh=self.mesh)


def _names(names: Any, where: str) -> Names:
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise TypeError(f"xpnn.{where}: names must be a tuple of axis names (str, tuple of str or None), one "
                        f"per axis of the value, got {names!r}")
    for name in names:
        if not (name is None or isinstance(name, str) or (isinstance(name, tuple) and all(
                isinstance(n, str) for n in name))):
            raise TypeError(f"xpnn.{where}: each of names must be an axis name, a tuple of names or None, got "
                            f"{name!r} in {names!r}")
    return tuple(names)


def with_partitioning(fn: Callable[..., Any], names: Names, mesh: Any = None) -> Callable[..., Partitioned]:
    """``fn`` (an initializer) whose value comes in a ``Partitioned(value, names, mesh)`` box
    (``flax.linen.with_partitioning``): ``Dense(8, kernel_init=with_partitioning(lecun_normal(),
    (None, "model")))`` splits the kernel's output features over the mesh axis "model"."""
    names = _names(names, "with_partitioning")

    @functools.wraps(fn)
    def partitioned(*args: Any, **kwargs: Any) -> Partitioned:
        return Partitioned(fn(*args, **kwargs), names, mesh)

    return partitioned


def with_logical_partitioning(fn: Callable[..., Any], names: Names, mesh: Any = None,
                              rules: Any = None) -> Callable[..., LogicallyPartitioned]:
    """``fn`` whose value comes in a ``LogicallyPartitioned(value, names, mesh, rules)`` box
    (``flax.linen.with_logical_partitioning``)."""
    names = _names(names, "with_logical_partitioning")
    rules = None if rules is None else _rules(rules, "with_logical_partitioning")

    @functools.wraps(fn)
    def partitioned(*args: Any, **kwargs: Any) -> LogicallyPartitioned:
        return LogicallyPartitioned(fn(*args, **kwargs), names, mesh, rules)

    return partitioned


def _is_box(x: Any) -> bool:
    return isinstance(x, Partitioned)


def unbox(tree: Any) -> Any:
    """``tree`` with every box replaced by its value, unconstrained (``flax.linen.unbox``)."""
    return tree_map(lambda x: x.value if _is_box(x) else x, tree, is_leaf=_is_box)


def get_partition_spec(tree: Any) -> Any:
    """The ``PartitionSpec`` of every variable of ``tree`` (``flax.linen.get_partition_spec``): a
    box's names, ``PartitionSpec()`` (replicated) for an unboxed array, None for other leaves."""
    sharding = _jax_sharding("xpnn.get_partition_spec")

    def spec(x: Any) -> Any:
        if _is_box(x):
            return x.get_partition_spec()
        return sharding.partition_spec(()) if hasattr(x, "shape") else None

    return tree_map(spec, tree, is_leaf=_is_box)


def get_sharding(tree: Any, mesh: Any) -> Any:
    """The ``NamedSharding`` over ``mesh`` of every variable of ``tree`` (``flax.linen.get_sharding``),
    for ``jax.jit(model.init, out_shardings=...)``."""
    sharding = _jax_sharding("xpnn.get_sharding")
    return tree_map(lambda spec: None if spec is None else sharding.named_sharding(mesh, spec),
                    get_partition_spec(tree), is_leaf=sharding.is_partition_spec)


# -- logical axis rules ------------------------------------------------------------------------

_RULES: list[Rules] = [()]


def _rules(rules: Any, where: str) -> Rules:
    try:
        pairs = tuple((logical, tuple(mesh) if isinstance(mesh, list) else mesh) for logical, mesh in rules)
    except (TypeError, ValueError):
        raise TypeError(f"xpnn.{where}: rules must be (logical axis, mesh axes) pairs, got {rules!r}") from None
    return pairs


def set_logical_axis_rules(rules: Any) -> None:
    """Make ``rules`` (``(logical axis, mesh axes)`` pairs) the rules in effect
    (``flax.linen.set_logical_axis_rules``)."""
    _RULES[-1] = _rules(rules, "set_logical_axis_rules")


def get_logical_axis_rules() -> Rules:
    """The logical axis rules in effect (``flax.linen.get_logical_axis_rules``)."""
    return _RULES[-1]


@contextlib.contextmanager
def logical_axis_rules(rules: Any) -> Iterator[None]:
    """The rules in effect inside the ``with`` block (``flax.linen.logical_axis_rules``)."""
    _RULES.append(_rules(rules, "logical_axis_rules"))
    try:
        yield
    finally:
        _RULES.pop()


_UNASSIGNED = object()


def _mesh_entries(names: Sequence[Any], rules: Rules | None) -> list[Any]:
    """flax's rule matching: each named axis takes the mesh axes of the first rule that names it
    whose mesh axes no other axis has taken yet; ``_UNASSIGNED`` where none does."""
    rules = get_logical_axis_rules() if rules is None else _rules(rules, "logical_to_mesh_axes")
    repeated = sorted({n for n in names if isinstance(n, str) and list(names).count(n) > 1})
    if repeated:
        raise ValueError(f"xpnn.logical_to_mesh_axes: axis names {repeated} occur more than once in {tuple(names)}")
    entries = [_UNASSIGNED if isinstance(name, str) else name for name in names]

    def taken() -> set:
        used: set = set()
        for entry in entries:
            if entry is not _UNASSIGNED and entry is not None:
                used.update(entry if isinstance(entry, tuple) else (entry,))
        return used

    for logical, mesh_axes in rules:
        if logical in names:
            position = list(names).index(logical)
            wanted = set(mesh_axes if isinstance(mesh_axes, tuple) else (mesh_axes,)) - {None}
            if entries[position] is _UNASSIGNED and not wanted & taken():
                entries[position] = mesh_axes
    return entries


def logical_to_mesh_axes(array_dim_names: Sequence[Any] | None, rules: Any = None) -> Any:
    """The ``PartitionSpec`` of mesh axes for logical axis names, by ``rules`` or the rules in
    effect (``flax.linen.logical_to_mesh_axes``); a name no rule assigns is replicated."""
    if array_dim_names is None:
        return None
    entries = _mesh_entries(array_dim_names, rules)
    return _jax_sharding("xpnn.logical_to_mesh_axes").partition_spec(
        tuple(None if e is _UNASSIGNED else e for e in entries))


def logical_to_mesh(tree: Any, rules: Any = None) -> Any:
    """Every logical ``PartitionSpec`` of ``tree`` mapped to mesh axes (``flax.linen.logical_to_mesh``)."""
    sharding = _jax_sharding("xpnn.logical_to_mesh")
    return tree_map(lambda spec: logical_to_mesh_axes(spec, rules), tree, is_leaf=sharding.is_partition_spec)


def logical_to_mesh_sharding(tree: Any, mesh: Any, rules: Any = None) -> Any:
    """Every logical ``PartitionSpec`` of ``tree`` as a ``NamedSharding`` over ``mesh``
    (``flax.linen.logical_to_mesh_sharding``)."""
    sharding = _jax_sharding("xpnn.logical_to_mesh_sharding")
    return tree_map(lambda spec: None if spec is None else sharding.named_sharding(mesh, spec),
                    logical_to_mesh(tree, rules), is_leaf=sharding.is_partition_spec)


def with_logical_constraint(x: Any, logical_axis_resources: Any, rules: Any = None, mesh: Any = None) -> Any:
    """``x`` (an array or a tree) constrained, on jax under a mesh, to the mesh axes that the rules
    give its logical axis names (``flax.linen.with_logical_constraint``, its default fallback: an
    unassigned axis is replicated); unchanged without rules or names, and off jax."""
    rules = get_logical_axis_rules() if rules is None else _rules(rules, "with_logical_constraint")
    if not rules or logical_axis_resources is None:
        return x

    def constrain(names: Any, leaf: Any) -> Any:
        if names is None or not array_api_compat.is_array_api_obj(leaf):
            return leaf
        entries = tuple(None if e is _UNASSIGNED else e for e in _mesh_entries(names, rules))
        return adapter_of(leaf).constrain_sharding(leaf, entries, mesh)

    if isinstance(logical_axis_resources, tuple) and all(
            n is None or isinstance(n, (str, tuple)) for n in logical_axis_resources) and hasattr(x, "shape"):
        return constrain(logical_axis_resources, x)
    return tree_map(constrain, logical_axis_resources, x, is_leaf=lambda n: n is None or isinstance(n, tuple))

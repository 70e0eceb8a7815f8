"""The state one ``init``/``apply`` shares across its modules: variables, collections, keys.

A ``Frame`` holds the variables of one run by collection (copied where
the run may write them), the random streams and the counters from which each
module's keys are derived as flax derives them (REFERENCE E.0), and the array
whose library and device new parameters and keys take.  A bound module's
``_scope`` is ``(frame, *path)``.
"""
from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import array_api_compat

from xpnn._dispatch import adapter_of, adapter_of_array, is_array
from xpnn._types import Array
from xpnn.backends import Adapter
from xpnn.trees import Box, to_backend, tree_leaves

Variables = dict[str, Any]
Path = tuple[str, ...]


class ModuleError(ValueError):
    """A module was used wrongly; the message starts with the module's path (``MLP/Dense_0``)."""


class DenyList:
    """Every collection except ``deny`` (a name or names), for ``mutable=``: flax's ``DenyList``."""

    def __init__(self, deny: str | Iterable[str]) -> None:
        self.deny = frozenset((deny,) if isinstance(deny, str) else deny)

    def __repr__(self) -> str:
        return f"DenyList({sorted(self.deny)!r})"


#: ``init`` makes every collection but the sown intermediates, as in flax.
INIT_MUTABLE = DenyList("intermediates")


def _immutable(collection: str) -> bool:
    return False


def _all_mutable(collection: str) -> bool:
    return True


def mutability(mutable: Any) -> Callable[[str], bool]:
    """``mutable`` (bool, a collection name, names, or a DenyList) as a predicate on collection names."""
    if mutable is False:  # apply's default
        return _immutable
    if isinstance(mutable, bool):
        return _all_mutable if mutable else _immutable
    if isinstance(mutable, DenyList):
        return lambda collection: collection not in mutable.deny
    if isinstance(mutable, str):
        mutable = (mutable,)
    try:
        names = frozenset(mutable)
    except TypeError:
        raise TypeError(f"mutable must be a bool, a collection name, a list of names or a DenyList, got {mutable!r}") from None
    return names.__contains__


def _copy_dicts(tree: Any) -> Any:
    """``tree`` with every mapping copied into a new dict (the arrays are shared)."""
    if isinstance(tree, Mapping):
        return {k: _copy_dicts(v) for k, v in tree.items()}
    return tree


def rng_hash(path: Path, count: int) -> int:
    """flax's fold-in data for the ``count``-th key of a stream at ``path`` (REFERENCE E.0)."""
    data = b"".join(name.encode() for name in path) + count.to_bytes((count.bit_length() + 7) // 8, "big")
    return int.from_bytes(hashlib.sha1(data).digest()[:4], "big")


def first_array(tree: Any) -> Array | None:
    """The first array leaf of ``tree`` (a tuple or list of arguments, a dict...), or None; the
    common call, an array among the top-level arguments, decided without walking the tree."""
    if type(tree) in (tuple, list):
        for item in tree:
            if type(item) in (tuple, list, dict):
                break
            if item is not None and is_array(item):
                return item
    for leaf in tree_leaves(tree):
        if array_api_compat.is_array_api_obj(leaf):
            return leaf
    return None


def rng_dict(rngs: Any, where: str) -> dict[str, Any]:
    """``rngs`` (None, a key or a dict of keys) as a dict by stream name; a TypeError naming
    ``where`` (``Dense.init``...) for anything else."""
    if rngs is None:
        return {}
    streams = dict(rngs) if isinstance(rngs, Mapping) else {"params": rngs}
    for name, key in streams.items():
        stream = "rngs" if not isinstance(rngs, Mapping) else f"rngs[{name!r}]"
        if not array_api_compat.is_array_api_obj(key):
            raise TypeError(f"{where}: {stream} must be a key, got {type(key).__name__} {key!r}; make one with "
                            "xpnn.random.key(seed), in the inputs' library: xpnn.random.key(0, like=inputs)")
        adapter = adapter_of_array(key)
        words = adapter.key_data(key)
        if tuple(words.shape) != (2,) or not adapter.xp.isdtype(words.dtype, "integral"):
            raise TypeError(f"{where}: {stream} must be a key, a (2,) uint32 array from xpnn.random.key(seed), got "
                            f"an array of shape {tuple(key.shape)} and dtype {key.dtype}; the key comes first: "
                            "init(key, *inputs), apply(variables, *inputs, rngs={'dropout': key})")
    return streams


class Frame:
    """The state one ``init``/``apply`` shares across its modules."""

    def __init__(self, root_name: str, variables: Mapping, rngs: Mapping, mutable: Any, initializing: bool,
                 like: Array | None):
        self.root_name = root_name
        self.is_mutable = is_mutable = mutability(mutable)
        self.variables: dict[str, Any] = dict(variables) if is_mutable is _immutable else {
            collection: _copy_dicts(tree) if is_mutable(collection) else tree
            for collection, tree in variables.items()
        }
        self.rngs = dict(rngs)
        self.initializing = initializing
        self.like = like
        self.rng_counters: dict[tuple[Path, str], int] = {}
        #: The inputs' adapter when it takes other libraries' arrays as its own (a Dask input's
        #: NumPy variables); None otherwise, as for most runs.
        self.adopter: Adapter | None = None
        if like is not None:
            adapter = adapter_of_array(like)
            if type(adapter).adopts is not Adapter.adopts:
                self.adopter = adapter

    def adopted(self, value: Any) -> Any:
        """A variable as the inputs' library takes it (``adopter``: a NumPy variable of a
        Dask run as a Dask array); ``value`` itself otherwise."""
        adopter = self.adopter
        if adopter is None or type(value) is type(self.like):
            return value
        if isinstance(value, Box):  # a Partitioned variable: its value adopted, the box kept
            return value.replace_boxed(self.adopted(value.value))
        if not array_api_compat.is_array_api_obj(value):
            return value
        other = adapter_of(value)
        return adopter.adopted(value) if other is not adopter and adopter.adopts(other) else value

    def path_text(self, path: Path) -> str:
        return "/".join((self.root_name, *path))

    def store(self, collection: str, path: Path, create: bool = False) -> Mapping | None:
        """The dict of ``collection`` at ``path``; created (with its parents) when ``create``."""
        node = self.variables.get(collection)
        if not create and len(path) == 1 and type(node) is dict:  # a layer of the model: most calls
            node = node.get(path[0])
            return node if node is None or type(node) is dict or isinstance(node, Mapping) else None
        if node is None:
            if not create:
                return None
            node = self.variables[collection] = {}
        for name in path:
            child = node.get(name) if type(node) is dict or isinstance(node, Mapping) else None
            if child is None:
                if not create:
                    return None
                child = node[name] = {}
            node = child
        return node

    def in_library(self, key: Array) -> Array:
        """``key`` in the library and on the device of the first input."""
        return key if self.like is None else to_backend(key, self.like)

    def mutated(self) -> Variables:
        if self.is_mutable is _immutable:
            return {}
        return {c: tree for c, tree in self.variables.items() if self.is_mutable(c) and tree != {}}

    def missing_message(self, path: str, collection: str, name: str, store: Mapping | None) -> str:
        """Why variable ``collection/name`` of the module at ``path`` is not there, with the closest name."""
        if not self.variables.get(collection):
            return (
                f'{path}: no "{collection}" collection in the variables (looking for "{name}"); '
                f"are they uninitialised? create them with init(key, ...) first"
            )
        if store is None:
            module = path.rsplit("/", 1)[-1]
            parent = self.store(collection, tuple(path.split("/")[1:-1])) or {}
            close = difflib.get_close_matches(module, [str(k) for k in parent], n=1)
            hint = f'; did you mean "{close[0]}"?' if close else ""
            return f'{path}: the "{collection}" collection has no entry "{module}" (looking for "{name}"){hint}'
        close = difflib.get_close_matches(name, [str(k) for k in store], n=1)
        hint = f'; did you mean "{close[0]}"?' if close else ""
        return f'{path}: "{collection}" has no variable "{name}" (it has {sorted(map(str, store))}){hint}'


def check_param_shape(path: str, name: str, value: Any, init_args: tuple) -> None:
    """A ModuleError when parameter ``name`` of the variables lacks the shape its init arguments ask."""
    if not init_args or not isinstance(init_args[0], (tuple, list)):
        return
    expected = tuple(init_args[0])
    actual = tuple(getattr(value, "shape", ()))
    if actual != expected and all(isinstance(n, int) for n in expected):
        raise ModuleError(
            f'{path}: parameter "{name}" has shape {actual} in the variables, but this call needs '
            f"{tuple(expected)}; does the input have the shape the model was initialised with?"
        )

"""``Module.tabulate`` and ``Module.module_paths`` (flax.linen's): a model run once with its
calls recorded, each module's inputs, outputs and variables shown in a table of plain text.

The table has flax's rows and columns: one row per module call in call order (a module called
again shown once unless ``show_repeated``), its path and class (and the method when it is not
``__call__``), its inputs and outputs as ``dtype[shape]`` (one array alone, else a YAML-style
list or mapping), and one column per variable collection: the module's own variables, then
their count and bytes (at ``depth``, a module's count takes in its submodules', whose rows are
left out); a footer with each collection's total, and the total of all.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from xpnn._dispatch import is_array
from xpnn.backends import dtype_name
from xpnn.partitioning import Partitioned

if TYPE_CHECKING:
    from xpnn.module import Module

__all__ = ["tabulate", "module_paths"]


@dataclasses.dataclass
class _Call:
    path: tuple[str, ...]
    module: Any
    method: Callable[..., Any]
    args: tuple
    kwargs: dict
    output: Any = None

    def inputs(self) -> Any:
        """flax's inputs cell: the arguments given (a parameter at its default left out; one
        with a default shown by name, as calls pass options), one positional argument alone."""
        signature = inspect.signature(self.method)
        arguments = signature.bind(self.module, *self.args, **self.kwargs).arguments
        positional, keywords = [], {}
        for name, value in list(arguments.items())[1:]:
            parameter = signature.parameters[name]
            if parameter.kind is parameter.VAR_POSITIONAL:
                positional += value
            elif parameter.kind is parameter.VAR_KEYWORD:
                keywords.update(value)
            elif parameter.default is parameter.empty:
                positional.append(value)
            elif value is not parameter.default:
                keywords[name] = value
        if positional and keywords:
            return (*positional, keywords)
        if positional:
            return positional[0] if len(positional) == 1 else tuple(positional)
        return keywords


class Recording(list):
    """The stack of running modules while a model's calls are recorded: each call's path,
    module, inputs and output, in call order (the method wrappers hand calls to ``record``)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[_Call] = []

    def record(self, module: Module, method: Callable[..., Any], packed: tuple[tuple, dict]) -> Any:
        args, kwargs = packed
        call = _Call(tuple(module._scope[1:]), module, method, args, kwargs)
        self.calls.append(call)
        call.output = method(module, *args, **kwargs)
        return call.output


def _recorded(module: Module, rngs: Any, args: tuple, kwargs: dict, mutable: Any) -> tuple[list[_Call], Mapping]:
    """The calls of ``module.init`` and the variables it made."""
    from xpnn.module import _context

    recording, running = Recording(), _context.stack
    _context.stack = recording
    try:
        _, variables = module.init_with_output(rngs, *args, mutable=mutable, **kwargs)
    finally:
        _context.stack = running
    return recording.calls, variables


def module_paths(module: Module, rngs: Any, *args: Any, mutable: Any, **kwargs: Any) -> dict[str, Module]:
    """Each module of the model by path (``''`` the model, ``'Dense_0'``, ``'Block_0/Dense_0'``),
    as its first call saw it (bound), in call order."""
    calls, _ = _recorded(module, rngs, args, kwargs, mutable)
    paths: dict[str, Module] = {}
    for call in calls:
        paths.setdefault("/".join(call.path), call.module)
    return paths


def tabulate(module: Module, rngs: Any, *args: Any, depth: int | None, show_repeated: bool, mutable: Any,
             **kwargs: Any) -> str:
    """The summary table of ``module`` run by ``init(rngs, *args, **kwargs)`` (see the module's
    docstring)."""
    calls, variables = _recorded(module, rngs, args, kwargs, mutable)
    called = {call.path for call in calls}
    collections = list(variables)
    seen: set[tuple[str, ...]] = set()
    rows, totals = [], {collection: [0, 0] for collection in collections}
    for call in calls:
        if depth is not None and len(call.path) > depth:
            continue
        first = call.path not in seen
        seen.add(call.path)
        if not (first or show_repeated):
            continue
        cells = ["/".join(call.path), type(call.module).__name__ + (
            f" ({call.method.__name__})" if call.method.__name__ not in ("__call__", "<lambda>") else ""),
                 _yaml(_shown(call.inputs())), _yaml(_shown(call.output))]
        for collection in collections:
            own, below = _variables_at(variables[collection], call.path, called)
            counted = (own, below) if depth is not None and len(call.path) == depth else (own,)
            size, nbytes = (_size_and_bytes(counted) if first else (0, 0))
            totals[collection][0] += size
            totals[collection][1] += nbytes
            listing = _yaml(_shown(own)) if first and own else ""
            count = _count(size, nbytes)
            cells.append("\n\n".join(part for part in (listing, count) if part))
        rows.append(cells)
    header = ["path", "module", "inputs", "outputs", *collections]
    footer = ["", "", "", "Total", *(_count(*totals[collection]) for collection in collections)]
    everything = _count(sum(size for size, _ in totals.values()), sum(nbytes for _, nbytes in totals.values()))
    return _table(f"{type(module).__name__} Summary", header, rows, footer, f"Total Parameters: {everything}")


def _shown(value: Any) -> Any:
    """``value`` with each array as ``dtype[shape]``, each other leaf as its repr, mappings
    in key order."""
    if is_array(value):
        return f"{dtype_name(value.dtype)}[{','.join(str(n) for n in value.shape)}]"
    if isinstance(value, Partitioned):  # flax's "float32[4,3] P(None, model)": the names' tuple unquoted
        return f"{_shown(value.value)} P{repr(value.names).replace(chr(39), '')}"
    if isinstance(value, (tuple, list)):
        return tuple(_shown(item) for item in value)
    if isinstance(value, Mapping):  # in key order, as flax's tree maps give them
        return {str(key): _shown(value[key]) for key in sorted(value, key=str)}
    return repr(value)


def _yaml(value: Any) -> str:
    """``value`` (strings, tuples and mappings) as YAML's block style writes it (as flax shows
    it): mappings ``key: value``, sequences ``- item``; empty: ''."""
    if not value and not isinstance(value, str):
        return ""
    return "\n".join(_yaml_lines(value))


def _yaml_lines(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, tuple):
        if not value:
            return ["[]"]
        lines = []
        for item in value:
            item_lines = _yaml_lines(item)
            lines += ["- " + item_lines[0], *("  " + line for line in item_lines[1:])]
        return lines
    if not value:
        return ["{}"]
    lines = []
    for key, item in value.items():
        if isinstance(item, str) or not item:
            lines.append(f"{key}: {_yaml_lines(item)[0]}")
        else:  # a nested mapping indented, a sequence not (YAML's default)
            indent = "  " if isinstance(item, Mapping) else ""
            lines += [f"{key}:", *(indent + line for line in _yaml_lines(item))]
    return lines


def _variables_at(tree: Mapping, path: tuple[str, ...], called: set[tuple[str, ...]]) -> tuple[dict, dict]:
    """The variables of one collection at ``path``: the module's own, and those of its
    submodules (the entries named after a called module below it)."""
    for name in path:
        if not isinstance(tree, Mapping) or name not in tree:
            return {}, {}
        tree = tree[name]
    own, below = {}, {}
    for name in sorted(tree):
        (below if (*path, name) in called else own)[name] = tree[name]
    return own, below


def _size_and_bytes(tree: Any) -> tuple[int, int]:
    if is_array(tree):
        size = math.prod(tree.shape)
        return size, size * _itemsize(tree.dtype)
    if isinstance(tree, Partitioned):
        return _size_and_bytes(tree.value)
    parts = [_size_and_bytes(item) for item in (tree.values() if isinstance(tree, Mapping) else tree)]
    return sum(size for size, _ in parts), sum(nbytes for _, nbytes in parts)


def _itemsize(dtype: Any) -> int:
    name = dtype_name(dtype)
    digits = "".join(character for character in name if character.isdigit())
    return 1 if name == "bool" else int(digits) // 8


def _count(size: int, nbytes: int) -> str:
    """flax's ``12 (48 B)``, bytes in B, KB, MB or GB (powers of 1000); '' for nothing."""
    if not size:
        return ""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if nbytes > scale:
            return f"{size:,} ({nbytes / scale:,.1f} {unit})"
    return f"{size:,} ({nbytes:,} B)"


def _table(title: str, header: list[str], rows: list[list[str]], footer: list[str], caption: str) -> str:
    """A boxed table with a line between rows, as rich draws flax's; the footer's 'Total'
    right-aligned."""
    columns = [[header[i], footer[i], *(row[i] for row in rows)] for i in range(len(header))]
    widths = [max(len(line) for cell in column for line in cell.split("\n")) for column in columns]

    def line(left: str, fill: str, middle: str, right: str) -> str:
        return left + middle.join(fill * (width + 2) for width in widths) + right

    def cells(values: list[str], wall: str, right_aligned: tuple[int, ...] = ()) -> list[str]:
        split = [value.split("\n") for value in values]
        height = max(len(lines) for lines in split)
        out = []
        for index in range(height):
            parts = []
            for column, (lines, width) in enumerate(zip(split, widths)):
                text = lines[index] if index < len(lines) else ""
                parts.append(f" {text.rjust(width) if column in right_aligned else text.ljust(width)} ")
            out.append(wall + wall.join(parts) + wall)
        return out

    body = [line("┏", "━", "┳", "┓"), *cells(header, "┃"), line("┡", "━", "╇", "┩")]
    for row in rows:
        body += cells(row, "│")
        body.append(line("├", "─", "┼", "┤"))
    body += cells(footer, "│", right_aligned=(3,))
    body.append(line("└", "─", "┴", "┘"))
    width = len(body[0])
    return "\n".join(["", title.center(width), *body, " " * width, caption.center(width), "", ""])

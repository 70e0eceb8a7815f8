"""Variables on disk: ``xpnn.save`` and ``xpnn.load`` in the safetensors format, and flax's msgpack.

safetensors is the format torch, jax/flax and NumPy users already share: an 8-byte
little-endian header size, a JSON header naming each tensor's dtype, shape and byte range,
then the raw little-endian bytes.  xpnn writes and reads it itself (no dependency), from and
to arrays of any library: a nested variable tree is stored under names joined with ``/``
(``params/Dense_0/kernel``), so ``safetensors.torch.load_file`` or ``safetensors.numpy``
read xpnn's files, and xpnn reads theirs.  A name part that itself holds ``/`` (SpectralNorm's
``Dense_0/kernel/u``) is kept in the header's metadata, so the tree comes back as it was.
"""
from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Mapping
from typing import Any

import array_api_compat
import numpy as np

from xpnn._checks import library_of
from xpnn._dispatch import adapter_of
from xpnn.backends import dtype_name
from xpnn.trees import Tree

__all__ = ["save", "load"]

#: safetensors dtype names, by NumPy's (bfloat16 is stored by its bits, travelling as float32).
_CODES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64", "int32": "I32",
          "int16": "I16", "int8": "I8", "uint64": "U64", "uint32": "U32", "uint16": "U16", "uint8": "U8",
          "bool": "BOOL"}
_NAMES = {code: name for name, code in _CODES.items()}
#: The header's metadata key holding the tree paths of names that ``/`` alone cannot split back.
_PATHS = "xpnn.paths"


def _flattened(tree: Any, leaf: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """``(path, leaf(path, value))`` for every value of the nested mappings ``tree`` that is not a mapping."""
    if isinstance(tree, Mapping):
        return [item for key, value in tree.items() for item in _flattened(value, leaf, (*path, str(key)))]
    return [(path, leaf(path, tree))]


def _array_to_save(path: tuple[str, ...], value: Any) -> Any:
    if not array_api_compat.is_array_api_obj(value):
        raise TypeError(f"xpnn.save: variables must be nested dicts of arrays; {'/'.join(path) or 'the tree'} is "
                        f"a {type(value).__name__}")
    return value


def _host(name: str, leaf: Any) -> tuple[str, np.ndarray]:
    """The safetensors dtype code and bytes of ``leaf``, the variable ``name``, as a C-ordered
    little-endian NumPy array (a library's typed random key as its raw integer words)."""
    adapter = adapter_of(leaf)
    leaf = adapter.key_data(leaf)
    dtype = dtype_name(leaf.dtype)
    if dtype not in _CODES:
        raise TypeError(f"xpnn.save: {name} has dtype {dtype}, which safetensors does not store "
                        f"(expected one of {', '.join(_CODES)})")
    if dtype == "bfloat16":  # exact in float32; its bits are float32's upper half
        wide = np.asarray(adapter.to_host(adapter.xp.astype(leaf, adapter.xp.float32)), dtype="<f4")
        return "BF16", (np.ascontiguousarray(wide).view("<u4") >> 16).astype("<u2")
    host = np.asarray(adapter.to_host(leaf))
    # np.asarray(order="C"), not ascontiguousarray, which makes a 0-d array (a counter) 1-d
    return _CODES[dtype], np.asarray(host.astype(host.dtype.newbyteorder("<"), copy=False), order="C")


def save(path: str | os.PathLike, variables: Tree, metadata: dict[str, str] | None = None) -> None:
    """Write ``variables`` (nested dicts of arrays of any library, bfloat16 included) to ``path``
    as safetensors, each array under its path joined with ``/``; ``metadata`` (str to str)
    goes into the header."""
    if not isinstance(variables, Mapping):
        raise TypeError(f"xpnn.save: variables must be nested dicts of arrays, got {type(variables).__name__}")
    flat = _flattened(variables, _array_to_save)
    names = ["/".join(parts) for parts, _ in flat]
    if len(set(names)) != len(names):
        repeated = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f"xpnn.save: two variables are named {repeated[0]!r} once their path is joined with '/'")
    header: dict[str, Any] = {}
    blobs, offset = [], 0
    for name, (parts, leaf) in zip(names, flat):
        code, host = _host(name, leaf)
        data = host.tobytes()
        header[name] = {"dtype": code, "shape": list(host.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    extra = dict(metadata or {})
    ambiguous = {name: list(parts) for name, (parts, _) in zip(names, flat) if any("/" in part for part in parts)}
    if ambiguous:
        extra[_PATHS] = json.dumps(ambiguous)
    if extra:
        header["__metadata__"] = {str(k): str(v) for k, v in extra.items()}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)))
        handle.write(encoded)
        for data in blobs:
            handle.write(data)


def _tensor_bytes(entry: Any, name: str, body_size: int, where: str) -> tuple[str, list[int], int, int]:
    """``(dtype code, shape, start, stop)`` of the header entry of tensor ``name``; a ValueError
    naming the file and the tensor when the entry is malformed or its bytes are not in the file's
    ``body_size`` bytes of data (a damaged or truncated file)."""
    try:
        code, shape, (start, stop) = entry["dtype"], entry["shape"], entry["data_offsets"]
        shape = [int(size) for size in shape]
        start, stop = int(start), int(stop)
    except (TypeError, ValueError, KeyError):
        raise ValueError(f"xpnn.load: {where}: the header entry of tensor {name!r} is not "
                         f"{{dtype, shape, data_offsets}}: {entry!r}") from None
    if not isinstance(code, str) or code not in _NAMES:
        raise ValueError(f"xpnn.load: {where}: tensor {name!r} has dtype {code}, which xpnn does not read")
    size = math.prod(shape) * (1 if code == "BOOL" else int(code.lstrip("BFIU")) // 8)  # BF16: 2 bytes
    if min(shape, default=0) < 0 or not 0 <= start <= stop <= body_size or stop - start != size:
        raise ValueError(f"xpnn.load: {where}: tensor {name!r} ({code}, shape {tuple(shape)}) needs {size} bytes "
                         f"and its data_offsets are [{start}, {stop}] in {body_size} bytes of data; the file is "
                         "damaged or truncated")
    return code, shape, start, stop


def _read_safetensors(raw: bytes, where: str) -> dict[tuple[str, ...], tuple[str, np.ndarray]]:
    """The arrays of a safetensors file by tree path: ``(dtype name, NumPy array)``, bfloat16 as float32."""
    (size,) = struct.unpack("<Q", raw[:8])
    try:
        header = json.loads(raw[8:8 + size])
        metadata = header.pop("__metadata__", None) or {}
        paths = json.loads(metadata.get(_PATHS, "{}"))
        if not isinstance(paths, dict):
            raise TypeError(paths)
    except (ValueError, TypeError, AttributeError):  # not JSON, or not the objects safetensors writes
        raise ValueError(f"xpnn.load: {where}: the safetensors header is not a JSON object of tensors (with an "
                         "object of strings as __metadata__); the file is damaged") from None
    body = memoryview(raw)[8 + size:]
    arrays = {}
    for name, entry in header.items():
        code, shape, start, stop = _tensor_bytes(entry, name, len(body), where)
        dtype_name_ = _NAMES[code]
        stored = "<u2" if code == "BF16" else ("bool" if code == "BOOL" else np.dtype(dtype_name_).newbyteorder("<"))
        array = np.frombuffer(body[start:stop], dtype=stored).reshape(shape)
        if code == "BF16":
            array = (array.astype("<u4") << 16).view("<f4")
        arrays[tuple(paths.get(name, name.split("/")))] = (dtype_name_, array.astype(array.dtype.newbyteorder("=")))
    return arrays


def _read_msgpack(raw: bytes, where: str) -> dict[tuple[str, ...], tuple[str, np.ndarray]]:
    """The arrays of a flax checkpoint (``flax.serialization.to_bytes``), by tree path."""
    try:
        from flax.serialization import msgpack_restore
    except ImportError:
        raise ValueError(f"xpnn.load: {where} is not a safetensors file; reading a flax msgpack checkpoint needs "
                         "flax installed") from None
    try:
        tree = msgpack_restore(raw)
    except Exception as error:  # noqa: BLE001 - not msgpack either: say what the file is not
        raise ValueError(f"xpnn.load: {where} is neither a safetensors file nor a flax msgpack checkpoint "
                         f"({type(error).__name__}: {error})") from None
    arrays = {}
    for parts, leaf in _flattened(tree, lambda path, value: np.asarray(value)):
        name = "bfloat16" if str(leaf.dtype) == "bfloat16" else str(leaf.dtype)
        arrays[parts] = (name, np.asarray(leaf, np.float32) if name == "bfloat16" else np.asarray(leaf))
    return arrays


def _numpy_bfloat16(leaf: Any, parts: tuple[str, ...], target: Any) -> Any:
    """A float32 NumPy array as bfloat16 (ml_dtypes' dtype, jax's); an error for other libraries
    without bfloat16."""
    try:
        import ml_dtypes
    except ImportError:
        ml_dtypes = None
    if ml_dtypes is None or not isinstance(leaf, np.ndarray):
        raise TypeError(f"xpnn.load: {'/'.join(parts)} is bfloat16, which {target.name} arrays do not hold here; "
                        "load it with like=torch or like=jax.numpy, or install ml_dtypes for NumPy")
    return leaf.astype(ml_dtypes.bfloat16)


def load(path: str | os.PathLike, like: Any = None) -> Tree:
    """The variables stored at ``path`` (safetensors, or a flax msgpack checkpoint when flax is
    installed), as nested dicts of arrays of ``like``'s library and device (an array or a
    namespace module; None: NumPy).  bfloat16 comes back as bfloat16 where the library has it
    (NumPy through ml_dtypes)."""
    where = os.fspath(path)
    with open(path, "rb") as handle:
        raw = handle.read()
    is_safetensors = len(raw) >= 9 and struct.unpack("<Q", raw[:8])[0] <= len(raw) - 8 and raw[8:9] == b"{"
    arrays = _read_safetensors(raw, where) if is_safetensors else _read_msgpack(raw, where)
    target, device = library_of(like, "xpnn.load")
    tree: dict[str, Any] = {}
    for parts, (name, host) in arrays.items():
        leaf = target.from_host(host, device)
        if name == "bfloat16":
            bfloat16 = target.dtype_named("bfloat16")
            leaf = target.xp.astype(leaf, bfloat16) if bfloat16 is not None else _numpy_bfloat16(leaf, parts, target)
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = leaf
    return tree

"""``torch.nn.utils.rnn`` for the arrays of any library: padding and packing sequences of
different lengths, and the ``PackedSequence`` that ``LSTM``, ``GRU`` and ``RNN`` take.

A packed sequence keeps only the valid steps, time-major: step t of every sequence longer than
t, the sequences ordered by decreasing length (``sorted_indices``, None where the batch came
sorted).  Packing needs the lengths' values (the packed size is their sum): they are read to the
host, so under ``jax.jit`` they must be Python ints or a constant, not a traced array.  The
packed layout is host data too: ``batch_sizes``, ``sorted_indices`` and ``unsorted_indices``
are NumPy int64 arrays (torch keeps ``batch_sizes`` on the CPU for the same reason), so a
recurrent layer takes a packed sequence under ``jax.jit``; ``data`` and the lengths that
``pad_packed_sequence`` returns are arrays of the data's library and device.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

from xpnn._dispatch import adapter_of, is_array
from xpnn._types import Array

__all__ = ["PackedSequence", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence", "unpad_sequence",
           "pack_sequence", "unpack_sequence", "invert_permutation"]


def _where(name: str) -> str:
    return f"xpnn.torch_nn.utils.rnn.{name}"


class PackedSequence(NamedTuple):
    """The valid steps of a batch of sequences (``torch.nn.utils.rnn.PackedSequence``): ``data``
    ``(sum(lengths), *)``, step by step, each step's sequences in decreasing length order;
    ``batch_sizes[t]`` the number of sequences longer than t; ``sorted_indices`` the batch
    positions in that order (None: the batch was sorted) and ``unsorted_indices`` its inverse
    (these three: NumPy int64 arrays)."""

    data: Array
    batch_sizes: np.ndarray
    sorted_indices: np.ndarray | None = None
    unsorted_indices: np.ndarray | None = None


def invert_permutation(permutation: Array | None) -> Array | None:
    """The inverse of ``permutation`` (``torch.nn.utils.rnn.invert_permutation``): ``p[inv[i]] = i``;
    None for None."""
    if permutation is None:
        return None
    return adapter_of(permutation).xp.argsort(permutation)


def _host_lengths(name: str, lengths: Any, batch: int) -> np.ndarray:
    """``lengths`` (ints or an integer array) read to the host as int64, one per sequence, each
    at least 1."""
    if is_array(lengths):
        ops = adapter_of(lengths)
        if not ops.xp.isdtype(lengths.dtype, "integral"):
            raise TypeError(f"{_where(name)}: lengths must be integers, got dtype {lengths.dtype}")
        try:
            host = np.asarray(ops.to_host(lengths))
        except Exception as error:  # noqa: BLE001 - a traced array (jax.jit) has no values to read
            raise TypeError(f"{_where(name)}: the lengths' values size the packed data, so they must be known: pass "
                            f"Python ints or a constant array, not a traced one ({type(error).__name__})") from None
    else:
        host = np.asarray(list(lengths) if isinstance(lengths, Iterable) else [lengths])
        if host.size and not np.issubdtype(host.dtype, np.integer):
            raise TypeError(f"{_where(name)}: lengths must be integers, got {list(lengths)!r}")
    host = host.astype(np.int64).reshape(-1)
    if host.shape[0] != batch:
        raise ValueError(f"{_where(name)}: expected {batch} lengths (one per sequence of the batch), got "
                         f"{host.shape[0]}")
    if batch and host.min() <= 0:
        raise RuntimeError(f"{_where(name)}: Length of all samples has to be greater than 0, but found an element in "
                           f"'lengths' that is <= 0 (got {host.tolist()})")
    return host


def _integers(like: Array, values: np.ndarray) -> Array:
    """Host ints as an integer array of ``like``'s library and device (int64 where it has it)."""
    ops = adapter_of(like)
    return ops.from_host(values, ops.device_of(like))


def _taken(x: Array, rows: np.ndarray) -> Array:
    """``x``'s rows (axis 0) at the host indices ``rows``."""
    return adapter_of(x).xp.take(x, _integers(x, rows), axis=0)


def pack_padded_sequence(input: Array, lengths: Any, batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack the padded ``input`` ``(T, B, *)`` (``(B, T, *)`` with ``batch_first``) of sequences of
    ``lengths`` (``torch.nn.utils.rnn.pack_padded_sequence``).  With ``enforce_sorted`` the
    lengths must decrease; otherwise the batch is ordered by decreasing length (a stable
    order) and ``sorted_indices`` records it."""
    name = "pack_padded_sequence"
    if not is_array(input) or input.ndim < 2:
        raise ValueError(f"{_where(name)}: input must be an array of at least 2 dims (T, B, *), got "
                         f"{getattr(input, 'shape', type(input).__name__)}")
    time_axis, batch_axis = (1, 0) if batch_first else (0, 1)
    steps, batch = input.shape[time_axis], input.shape[batch_axis]
    host = _host_lengths(name, lengths, batch)
    if batch and host.max() > steps:
        raise ValueError(f"{_where(name)}: a length ({host.max()}) exceeds the input's {steps} steps")
    if enforce_sorted:
        if np.any(host[1:] > host[:-1]):
            raise RuntimeError(f"{_where(name)}: `lengths` array must be sorted in decreasing order when "
                               "`enforce_sorted` is True. You can pass `enforce_sorted=False` to pack_padded_sequence "
                               "and/or pack_sequence to sidestep this requirement if you do not need ONNX "
                               "exportability.")
        order = None
    else:
        order = np.argsort(-host, kind="stable")
    return _packed(input, host, order, batch_first)


def _packed(input: Array, lengths: np.ndarray, order: np.ndarray | None, batch_first: bool) -> PackedSequence:
    """``input``'s valid steps packed in the batch ``order`` (None: as it comes, sorted)."""
    longest = int(lengths.max()) if lengths.shape[0] else 0
    batch_sizes = (lengths[None, :] > np.arange(longest)[:, None]).sum(axis=1)
    return PackedSequence(_packed_data(input, lengths, order, batch_first), batch_sizes.astype(np.int64), order,
                          invert_permutation(order))


def _packed_data(input: Array, lengths: np.ndarray, order: np.ndarray | None, batch_first: bool) -> Array:
    """A packed sequence's data: ``input``'s valid steps, step by step, the sequences in ``order``."""
    xp = adapter_of(input).xp
    steps, batch = (input.shape[1], input.shape[0]) if batch_first else input.shape[:2]
    ranked = np.arange(batch) if order is None else order
    longest = int(lengths.max()) if batch else 0
    # the flat index of each valid step, step by step, sequences in order
    time, rank = np.nonzero(np.arange(longest)[:, None] < lengths[ranked][None, :])
    sequence = ranked[rank]
    flat = sequence * steps + time if batch_first else time * batch + sequence
    return _taken(xp.reshape(input, (steps * batch, *input.shape[2:])), flat)


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0,
                        total_length: int | None = None) -> tuple[Array, Array]:
    """The padded batch of a packed ``sequence`` and each sequence's length, in the original batch
    order (``torch.nn.utils.rnn.pad_packed_sequence``): ``(T, B, *)`` (``(B, T, *)`` with
    ``batch_first``), T the longest length or ``total_length``, ``padding_value`` past each end."""
    name = "pad_packed_sequence"
    data, batch_sizes, order = _unpacked_fields(name, sequence)
    longest = batch_sizes.shape[0]
    steps = longest if total_length is None else total_length
    if steps < longest:
        raise ValueError(f"{_where(name)}: Expected total_length to be at least the length of the longest sequence in "
                         f"input, but got total_length={total_length} and max sequence length being {longest}")
    lengths, ranked = _lengths_and_order(batch_sizes, order)
    batch = lengths.shape[0]
    # each padded position's row of the packed data (step t of the sequence of rank r: the step's
    # first row plus r), or the padding row appended after the data
    starts = np.zeros(steps, np.int64)
    starts[1:longest] = np.cumsum(batch_sizes)[:-1]
    time = np.arange(steps)[:, None]
    row_of = np.empty((steps, batch), np.int64)
    row_of[:, ranked] = np.where(time < lengths[ranked][None, :], starts[:, None] + np.arange(batch)[None, :],
                                 data.shape[0])
    ops = adapter_of(data)
    xp = ops.xp
    pad = xp.full((1, *data.shape[1:]), padding_value, dtype=data.dtype, device=ops.device_of(data))
    padded = _taken(xp.concat([data, pad], axis=0), (row_of.T if batch_first else row_of).reshape(-1))
    shape = (batch, steps) if batch_first else (steps, batch)
    return xp.reshape(padded, (*shape, *data.shape[1:])), _integers(data, lengths)


def _unpacked_fields(name: str, sequence: Any) -> tuple[Array, np.ndarray, np.ndarray | None]:
    """A packed sequence's data, and its batch sizes and order on the host."""
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"{_where(name)}: sequence must be a PackedSequence, got {type(sequence).__name__}")
    data, batch_sizes, sorted_indices, _ = sequence
    return data, _host(batch_sizes), None if sorted_indices is None else _host(sorted_indices)


def _host(indices: Any) -> np.ndarray:
    """A packed layout's ints (NumPy, or given as another library's array: torch's) on the host."""
    return np.asarray(adapter_of(indices).to_host(indices), np.int64)


def _lengths_and_order(batch_sizes: np.ndarray, order: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Each sequence's length in the original batch order, and the batch positions by rank."""
    batch = int(batch_sizes[0]) if batch_sizes.shape[0] else 0
    by_rank = (batch_sizes[None, :] > np.arange(batch)[:, None]).sum(axis=1)
    ranked = np.arange(batch) if order is None else order
    lengths = np.empty(batch, np.int64)
    lengths[ranked] = by_rank
    return lengths, ranked


def pad_sequence(sequences: Sequence[Array], batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Array:
    """Stack ``sequences`` (each ``(L_i, *)``) padded to the longest with ``padding_value`` after
    each (``padding_side='left'``: before) into ``(T, B, *)`` (``(B, T, *)`` with ``batch_first``)
    (``torch.nn.utils.rnn.pad_sequence``)."""
    name = "pad_sequence"
    if padding_side not in ("right", "left"):
        raise ValueError(f"{_where(name)}: padding_side must be 'right' or 'left', got {padding_side!r}")
    sequences = list(sequences)
    if not sequences:
        raise ValueError(f"{_where(name)}: received an empty list of sequences")
    first = sequences[0]
    ops = adapter_of(first)
    xp = ops.xp
    if any(tuple(s.shape[1:]) != tuple(first.shape[1:]) for s in sequences):
        raise ValueError(f"{_where(name)}: every sequence must have the trailing shape {tuple(first.shape[1:])}, got "
                         f"{[tuple(s.shape) for s in sequences]}")
    longest = max(s.shape[0] for s in sequences)
    padded = []
    for s in sequences:
        pad = xp.full((longest - s.shape[0], *s.shape[1:]), padding_value, dtype=s.dtype, device=ops.device_of(s))
        padded.append(xp.concat([s, pad] if padding_side == "right" else [pad, s], axis=0))
    return xp.stack(padded, axis=0 if batch_first else 1)


def unpad_sequence(padded_sequences: Array, lengths: Any, batch_first: bool = False) -> list[Array]:
    """The list of each sequence's first ``lengths[i]`` steps of a padded batch
    (``torch.nn.utils.rnn.unpad_sequence``)."""
    batch = padded_sequences.shape[0 if batch_first else 1]
    host = _host_lengths("unpad_sequence", lengths, batch)
    return [padded_sequences[i, :n, ...] if batch_first else padded_sequences[:n, i, ...] for i, n in enumerate(host)]


def pack_sequence(sequences: Sequence[Array], enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of sequences (each ``(L_i, *)``) (``torch.nn.utils.rnn.pack_sequence``)."""
    sequences = list(sequences)
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences: PackedSequence) -> list[Array]:
    """The list of the sequences of a packed batch (``torch.nn.utils.rnn.unpack_sequence``)."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)


def packed_like(padded: Array, like: PackedSequence) -> PackedSequence:
    """A time-major padded batch (original order) packed as ``like`` is: its batch sizes and order."""
    _, batch_sizes, order = _unpacked_fields("packed_like", like)
    data = _packed_data(padded, _lengths_and_order(batch_sizes, order)[0], order, False)
    return PackedSequence(data, *like[1:])

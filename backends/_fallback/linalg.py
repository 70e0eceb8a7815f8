"""Linear algebra, standard-only: reduced QR and linear solves."""
from __future__ import annotations

import array_api_compat

from xpnn._types import Array, Namespace


def qr(xp: Namespace, a: Array) -> tuple[Array, Array]:
    """Reduced QR of a tall ``(n, k)`` matrix, standard-only: Gram-Schmidt, each column twice.

    Re-orthogonalising once more ("twice is enough", Giraud et al. 2005)
    keeps ``Q`` orthonormal to rounding even for ill-conditioned columns.
    ``R`` is upper triangular with ``Q @ R == a`` to rounding.
    """
    n, k = a.shape
    columns: list[Array] = []
    coefficients: list[Array] = []
    for j in range(k):
        v = a[:, j]
        r_column = xp.zeros((k,), dtype=a.dtype, device=array_api_compat.device(a))
        if columns:
            basis = xp.stack(columns, axis=1)
            for _ in range(2):
                h = basis.T @ v
                v = v - basis @ h
                r_column = r_column + xp.concat([h, xp.zeros((k - j,), dtype=a.dtype, device=array_api_compat.device(a))])
        norm = xp.sqrt(xp.sum(v * v))
        columns.append(v / norm)
        unit = xp.astype(xp.arange(k, device=array_api_compat.device(a)) == j, a.dtype)
        coefficients.append(r_column + norm * unit)
    return xp.stack(columns, axis=1), xp.stack(coefficients, axis=1)


def solve(xp: Namespace, a: Array, b: Array) -> Array:
    """``x`` with ``a @ x == b`` for a square ``(n, n)`` ``a`` and ``b`` ``(n, m)``, standard-only:
    Gauss-Jordan elimination with partial pivoting (the largest remaining entry of each column
    as its pivot row)."""
    n = a.shape[0]
    device = array_api_compat.device(a)
    rows = xp.concat([a, b], axis=1)
    positions = xp.arange(n, device=device)
    for j in range(n):
        below = xp.where(positions >= j, xp.abs(rows[:, j]), -xp.ones_like(rows[:, j]))
        pivot = xp.argmax(below)
        order = xp.where(positions == j, pivot, xp.where(positions == pivot, j, positions))
        rows = xp.take(rows, order, axis=0)
        pivot_row = rows[j, :] / rows[j, j]
        factors = xp.where(positions == j, xp.zeros_like(rows[:, j]), rows[:, j])
        rows = rows - factors[:, None] * pivot_row[None, :]
        rows = xp.where((positions == j)[:, None], pivot_row[None, :], rows)
    return rows[:, n:]

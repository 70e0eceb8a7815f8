"""Linear algebra, standard-only: reduced QR."""
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

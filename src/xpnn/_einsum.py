"""Einstein-summation subscripts, parsed once for the library and the standard-only einsum."""
from __future__ import annotations


def parse_einsum(subscripts: str, ndims: list[int]) -> tuple[list[str], str]:
    """``subscripts`` as one index string per operand and the output's, with
    ``...`` replaced by fresh letters (right-aligned, as NumPy broadcasts them).

    Implicit mode (no ``->``) gives NumPy's output: the broadcast dims, then
    the indices that appear once, in alphabetical order.
    """
    subscripts = subscripts.replace(" ", "")
    inputs_text, arrow, output = subscripts.partition("->")
    inputs = inputs_text.split(",")
    if len(inputs) != len(ndims):
        raise ValueError(f"einsum: {subscripts!r} names {len(inputs)} operands, got {len(ndims)}")
    used = set(subscripts) - set(".,->")
    fresh = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in used]
    n_ellipsis = max((ndim - len(term.replace("...", "")) for term, ndim in zip(inputs, ndims) if "..." in term), default=0)
    broadcast = "".join(fresh[:n_ellipsis])
    expanded = []
    for term, ndim in zip(inputs, ndims):
        if "..." in term:
            count = ndim - len(term.replace("...", ""))
            term = term.replace("...", broadcast[n_ellipsis - count:] if count else "")
        if len(term) != ndim or not all(c.isalpha() for c in term):
            raise ValueError(f"einsum: operand subscripts {term!r} do not match an operand of {ndim} dims")
        expanded.append(term)
    if arrow:
        output = output.replace("...", broadcast)
    else:
        letters = "".join(expanded)
        output = broadcast + "".join(sorted(c for c in set(letters) - set(broadcast) if letters.count(c) == 1))
    if len(set(output)) != len(output) or not set(output) <= set("".join(expanded)):
        raise ValueError(f"einsum: bad output subscripts in {subscripts!r}")
    return expanded, output

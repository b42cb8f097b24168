"""einsum as the ops `workloads.lower` costs (torch-free: `workloads.ops` and
`workloads.onnx_import` share it).

A two-operand einsum is a batched GEMM: the letters both operands and the output keep are the
batch, those only the first operand and the output have are the rows (M), those only the second
has are the columns (N), and the letters both operands share but the output drops are the
contracted depth (K): MACs = numel(out) * K, what torch computes with bmm (its flop counter
agrees). One operand is a permutation (a view) or a reduction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["einsum_gemm", "einsum_kind", "einsum_parts"]

Shape = tuple[int, ...]


def einsum_parts(equation: str, shapes: Sequence[Shape]) -> tuple[list[str], str]:
    """(operand subscripts, output subscripts) of an einsum on operands of ``shapes``, an
    ellipsis expanded to one new symbol per dimension (right-aligned, as it broadcasts)
    and an implicit output made explicit (ellipsis, then the letters used once, sorted)."""
    lhs, arrow, rhs = equation.replace(" ", "").partition("->")
    ins = lhs.split(",")
    dots = max((len(sh) - len(sub.replace("...", "")) for sub, sh in zip(ins, shapes, strict=False)
                if "..." in sub), default=0)
    ell = "".join(chr(0x2460 + i) for i in range(dots))    # not a letter an equation can use

    def expand(sub: str, rank: int) -> str:
        return sub.replace("...", ell[len(ell) - (rank - len(sub) + 3):]) if "..." in sub else sub
    ins = [expand(sub, len(sh)) for sub, sh in zip(ins, shapes, strict=False)]
    if arrow:
        out = rhs.replace("...", ell)
    else:
        letters = "".join(ins)
        out = ell + "".join(sorted(c for c in set(letters) if letters.count(c) == 1
                                   and c not in ell))
    return ins, out


def einsum_kind(equation: str, shapes: Sequence[Shape]) -> str:
    """How an einsum is lowered: a product of two tensors is a ``matmul``; one operand is a
    ``view`` (a permutation of its letters) or a reduction (``pool``); more is ``other``."""
    try:
        ins, out = einsum_parts(equation, shapes)
    except (IndexError, TypeError, ValueError):
        return "other"
    if len(ins) == 2:
        return "matmul"
    if len(ins) == 1:
        return "view" if sorted(ins[0]) == sorted(out) else "pool"
    return "other"


def einsum_gemm(equation: str, shapes: Sequence[Shape]) -> tuple[int, int, int]:
    """(K, N, vector ops) of a two-operand einsum as a batched GEMM: K = the letters both
    operands share and the output drops (contracted), N = the output letters only the second
    operand has; MACs = numel(out) * K. A letter only one operand has and the output drops is
    summed out of that operand first: its elements count as vector ops, not MACs."""
    (a, b), out = einsum_parts(equation, shapes)
    size: dict[str, int] = {}
    for sub, sh in zip((a, b), shapes, strict=True):
        for c, d in zip(sub, sh, strict=True):
            size[c] = max(size.get(c, 1), int(d))
    kdim = math.prod(size[c] for c in set(a) & set(b) if c not in out)
    ncol = math.prod(size[c] for c in set(b) - set(a) if c in out)
    pre_summed = sum(math.prod(sh) for sub, other, sh in ((a, b, shapes[0]), (b, a, shapes[1]))
                     if any(c not in other and c not in out for c in sub))
    return kdim, ncol, pre_summed

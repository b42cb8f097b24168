"""What extraction does with ops whose arithmetic qdse does not model (issue 11).

An ``other`` op (``torch.fft.fft``, ``cumsum``, ``nn.Bilinear``, an ONNX ``TopK``) would leave its
MACs out of the workload without a word. So both front ends (`workloads.extract`,
`workloads.from_onnx`) collect every such op and raise one `ExtractError` naming them all, the
modules qdse lowers and the two ways out, unless the caller asked to ignore them
(``ignore_unsupported``): then each is kept as a memory-only ``other`` node that
`Workload.ignored` and `Workload.summary` list.
"""

from __future__ import annotations

from collections.abc import Collection

from torch import nn

from workloads.ops import MODELLED_FUNCTIONS, MODELLED_MODULES, Op
from workloads.trace import ExtractError

__all__ = ["IgnoreSpec", "check_ignore", "ignored", "unsupported_error", "unsupported_reason"]

_SHOWN = 4   # node names listed per unsupported module / function

IgnoreSpec = bool | Collection[str]
"""``ignore_unsupported``: False (raise on ops qdse does not model), True (keep every one as a
memory-only ``other`` op), or the names of the ones to keep (op targets such as ``"fft_fft"`` or
layer names)."""


def unsupported_reason(op: Op, mod: nn.Module | None, user_leaves: Collection[str]) -> str:
    """Why an ``other`` op is a problem ('' if it is not): it has arithmetic qdse cannot cost."""
    if mod is None:
        return (f"op {op.name!r} ({op.target}) has arithmetic that qdse does not model (its "
                f"cost would be missing; lowered functions: {MODELLED_FUNCTIONS})")
    kind = type(mod).__name__
    has_params = any(True for _ in mod.parameters())
    if op.module in user_leaves:
        if not has_params:
            return ""   # the user made it a leaf and it has no weights: a memory-only op
        return (f"module {op.module!r} ({kind}) has parameters but workloads.lower cannot model "
                f"its MACs; it is a leaf because leaf_modules names it: remove it from "
                "leaf_modules so the tracer looks inside")
    what = "has parameters but" if has_params else "is a torch.nn leaf that"
    return (f"module {op.module!r} ({kind}) {what} qdse does not model (lowered modules: "
            f"{MODELLED_MODULES})")


def ignored(op: Op, ignore: IgnoreSpec) -> bool:
    """Whether the caller asked to keep ``op`` (by its layer name, target or module)."""
    if isinstance(ignore, bool):
        return ignore
    return bool({op.name, op.target, op.module} & set(ignore))


def check_ignore(ignore: object) -> IgnoreSpec:
    """Validate ``ignore_unsupported``: a bool or a collection of op/layer names."""
    if isinstance(ignore, bool):
        return ignore
    if isinstance(ignore, str) or not isinstance(ignore, Collection) or not all(
            isinstance(x, str) for x in ignore):
        raise ValueError(f"ignore_unsupported={ignore!r} is invalid; expected True, False or a "
                         "list of op names (e.g. ['fft_fft'])")
    return ignore


def unsupported_error(found: list[tuple[Op, str]], entry: str) -> ExtractError:
    """One error listing every op that cannot be lowered, and the two ways out. The calls of one
    module (an LSTMCell stepped in a loop) or of one function are named once, with the other
    nodes they occur at."""
    names = sorted({op.target or op.name for op, _ in found})
    groups: dict[tuple[str, str], list[tuple[Op, str]]] = {}
    for op, reason in found:
        groups.setdefault((op.module if op.mod is not None else "", op.target), []).append(
            (op, reason))
    reasons = []
    for calls in groups.values():
        more = [op.name for op, _ in calls[1:]]
        shown = ", ".join(repr(n) for n in more[:_SHOWN]) + (", ..." if len(more) > _SHOWN else "")
        reasons.append(calls[0][1] + (f" (also at {len(more)} more node(s): {shown})"
                                      if more else ""))
    return ExtractError(
        "cannot lower the model: " + "; ".join(reasons)
        + f". Fix: pass ignore_unsupported=True (or ignore_unsupported={names!r}) to {entry}() "
        "to keep them as memory-only 'other' ops, listed under 'ignored' in Workload.summary(), "
        "or build that part with Workload.from_layers")

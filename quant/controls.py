"""Negative controls: known-wrong formulas that the quantizers swap in when asked to.

Each control names one formula of one paper and a wrong variant of it that reimplementations
are known to ship (issue 13's table). The quantizer modules consult :func:`active` at the single
place the formula lives, so a control is a flag, never a second copy of the quantizer. With no
control active every quantizer computes exactly what it computes without this module (tested
bit-identical in tests/quant/test_controls.py).

The accuracy benchmark (:mod:`quant.benchmark`, ``benchmarks/accuracy_controls.py``) trains each
control against the correct formula on the same seeds and reports whether the damage is
detected; a benchmark that cannot tell them apart cannot vouch for the formulas either.

Usage::

    from quant import controls
    with controls.swapped_in("lsq_grad_scale_one"):
        result = quant.train.train(...)      # LSQ's step gradient is no longer scaled

Activation is per process (a module-level set): parallel workers each enter the context
themselves.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "CONTROLS",
    "CRELU_BACKWARD_DETACHED",
    "LLSQ_SG_SIGN_FLIPPED",
    "LSQ_GRAD_SCALE_ONE",
    "LSQ_INIT_FACTOR_ONE",
    "LSQ_N_WHOLE_BATCH",
    "PACT_SCALE_IN_GRAPH",
    "SAWB_ALPHA_FIXED",
    "SAWB_MAX_ABS",
    "Control",
    "active",
    "active_controls",
    "swapped_in",
]

LSQ_GRAD_SCALE_ONE = "lsq_grad_scale_one"
LSQ_N_WHOLE_BATCH = "lsq_n_whole_batch"
LSQ_INIT_FACTOR_ONE = "lsq_init_factor_one"
SAWB_ALPHA_FIXED = "sawb_alpha_fixed"
SAWB_MAX_ABS = "sawb_max_abs"
PACT_SCALE_IN_GRAPH = "pact_scale_in_graph"
LLSQ_SG_SIGN_FLIPPED = "llsq_sg_sign_flipped"
CRELU_BACKWARD_DETACHED = "crelu_backward_detached"


@dataclass(frozen=True, slots=True)
class Control:
    """One known-wrong formula.

    Attributes:
        name: the flag (``swapped_in(name)``).
        recipe: the recipe whose quantizers it changes (the benchmark's paired baseline).
        label: short human name (the issue's wording).
        breaks: the equation or section it breaks and how, with the paper.
    """

    name: str
    recipe: str
    label: str
    breaks: str


CONTROLS: dict[str, Control] = {c.name: c for c in (
    Control(LSQ_GRAD_SCALE_ONE, "lsq", "LSQ step gradient without its scale (g = 1)",
            "LSQ Sec. 2.2: the step gradient is not multiplied by g = 1/sqrt(N Q_P)"),
    Control(LSQ_N_WHOLE_BATCH, "lsq", "LSQ N counted over the whole batch",
            "LSQ Sec. 2.2 / App. B: N of an activation is the numel of the whole batch, not "
            "the features of one example (g shrinks by a further sqrt(batch))"),
    Control(LSQ_INIT_FACTOR_ONE, "lsq", "LSQ init factor 1 instead of 2",
            "LSQ Sec. 2.1: s0 = <|v|>/sqrt(Q_P) instead of 2 <|v|>/sqrt(Q_P)"),
    Control(SAWB_ALPHA_FIXED, "pact_sawb", "SAWB alpha fixed at build, not per step",
            "SAWB Sec. 4, Eq. 7: alpha_w is computed once (at calibration, right after "
            "the build) and kept, instead of from the current weights at every step"),
    Control(SAWB_MAX_ABS, "pact_sawb", "SAWB Eq. 7 replaced by max|w|",
            "SAWB Eq. 7: alpha_w = max|w| instead of c1 sqrt(E[w^2]) - c2 E|w|"),
    Control(PACT_SCALE_IN_GRAPH, "pact_sawb", "PACT scale left in the graph",
            "PACT Eq. 2-3: the scale alpha/(2^k - 1) is not detached, so autograd adds a "
            "quantization-error term to d y_q / d alpha that Eq. 3 does not have"),
    Control(LLSQ_SG_SIGN_FLIPPED, "llsq", "LLSQ simulated-gradient sign flipped",
            "LLSQ Sec. 3.3: the search direction d of the simulated gradient is negated "
            "(alpha grows where the error says shrink, for weights and activations)"),
    Control(CRELU_BACKWARD_DETACHED, "crelu_binary", "CReLU backward detached (XNOR-style)",
            "CReLU Eq. 10: alpha_i of the multi-level binarization is detached, dropping "
            "the s(w_i)/n sum term of the weight gradient"),
)}

_ACTIVE: set[str] = set()


def active(name: str) -> bool:
    """True while the control ``name`` is swapped in (the quantizers call this)."""
    return name in _ACTIVE


def active_controls() -> tuple[str, ...]:
    """The controls swapped in now, sorted."""
    return tuple(sorted(_ACTIVE))


def _check(name: object) -> str:
    if not isinstance(name, str) or name not in CONTROLS:
        raise ValueError(f"control={name!r} is not a negative control; allowed: "
                         f"{', '.join(CONTROLS)}")
    return name


@contextlib.contextmanager
def swapped_in(*names: str) -> Iterator[None]:
    """Swap the wrong formulas ``names`` in for the duration of the block (nested blocks
    add to the active set; each restores what was active before it)."""
    checked = [_check(n) for n in names]
    before = set(_ACTIVE)
    _ACTIVE.update(checked)
    try:
        yield
    finally:
        _ACTIVE.clear()
        _ACTIVE.update(before)

"""What ``python -m quant.table`` trains and how it judges the results: the table's rows
(:class:`Row`, :func:`plan`), the bits a trained model really applies to its body
(:func:`body_bits`), the qualitative claims of TARGETS.md section 6 (:data:`CHECKS`) and the
verdicts on the issue-4 targets and on those claims."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = ["CHECKS", "FPSC_W2A2_TOLERANCE_PTS", "FP_BITS", "W4A4_TOLERANCE_PTS", "Row",
           "body_bits", "checks", "plan"]

FP_BITS = 32
_COMPUTE_TYPES = {"Conv1d", "Conv2d", "Linear", "QuantConv1d", "QuantConv2d", "QuantLinear"}
_SHORTCUT_KEYS = ("shortcut", "downsample")  # = quant.recipes.SHORTCUT_KEYS (no torch import)
W4A4_TOLERANCE_PTS = 3.0
FPSC_W2A2_TOLERANCE_PTS = 5.0


@dataclass(frozen=True, slots=True)
class Row:
    """One table row: a recipe at ``w_bits``/``a_bits``, run once per seed.

    ``options`` are extra keyword arguments of :func:`quant.train.trained_digits_result`
    (``fixed_act_clip``, ``from_scratch``, ``overrides``...); ``label`` names the variant.
    """

    recipe: str
    w_bits: int
    a_bits: int
    label: str = ""
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def name(self) -> str:
        return self.label or self.recipe


def plan(recipes: Sequence[str], bits: Sequence[int]) -> list[Row]:
    """The main rows: FP once, then every non-FP recipe at W{b}A{b} for each b in ``bits``.

    ``b`` is what each recipe is ASKED for; :func:`body_bits` reports what it applied."""
    rows = [Row("fp32", 32, 32)]
    rows += [Row(r, b, b) for b in bits for r in recipes if r != "fp32"]
    return rows


def body_bits(layers: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """``(weight bits, activation bits)`` really applied to the body of a quantized model.

    ``layers`` is ``metrics["layers"]`` of a ``quant.train`` run: one row per conv/linear and
    activation quantizer in module order, with the bits the model's modules report (the bits
    protocol ``workloads.extract`` reads; None = full precision). The body is every conv/linear
    except the first, the last and shortcut convs (the layers each paper keeps at another
    precision by design). A layer's input bits are those of its own input quantizer (LSQ), else
    those of the last ``QuantAct`` met after the previous conv/linear (PACT, WRPN, ...), else 32
    (a real-valued input). Returns the WIDEST precision over the body, so 32 means that some
    body weights (or inputs) stay in full precision: ``pact`` asked for W4A4 gives (32, 4).
    """
    rows: list[tuple[str, int, int]] = []  # (name, weight bits, input bits) per conv/linear
    act = FP_BITS
    for r in layers:
        if r["type"] in _COMPUTE_TYPES:
            in_bits = r["act_bits"] if r["act_bits"] is not None else act
            rows.append((r["name"], r["weight_bits"] or FP_BITS, in_bits))
            act = FP_BITS  # the accumulated (BN-ed) output is real until the next quantizer
        elif r["act_bits"] is not None:
            act = r["act_bits"]
    body = [t for t in rows[1:-1] if not any(k in t[0] for k in _SHORTCUT_KEYS)] or rows
    if not body:
        raise ValueError("body_bits: no conv/linear rows in layers; pass metrics['layers'] of "
                         "a quant.train run")
    return max(t[1] for t in body), max(t[2] for t in body)


# Qualitative claims of TARGETS.md section 6, each a group of rows compared by accuracy. A claim
# whose name starts with "best:" holds when its last row is at least as accurate as every other
# row; otherwise ("rises:") when accuracy does not fall along the rows.
# PACT Fig. 1: under 2-bit activations (weights full precision, trained from scratch), ReLU
# quantized over its dynamic range and a clip fixed at 1.0 both lose to PACT's learned clip.
_A2 = (("from_scratch", True),)
CHECKS: dict[str, list[Row]] = {
    "best: PACT clipping beats ReLU under 2-bit activations (W32A2, from scratch; PACT Fig. 1)": [
        Row("pact", 32, 2, "relu (fixed at max act)", (*_A2, ("fixed_act_clip", "max"))),
        Row("pact", 32, 2, "clip 1.0 (fixed)", (*_A2, ("fixed_act_clip", 1.0))),
        Row("pact", 32, 2, "pact (learned clip)", _A2),
    ],
    "rises: multi-level binarization improves with m (crelu_binary, m = w_bits, A4; crelu "
    "Table 1)": [
        Row("crelu_binary", 1, 4, "crelu_binary m=1"),
        Row("crelu_binary", 2, 4, "crelu_binary m=2"),
        Row("crelu_binary", 3, 4, "crelu_binary m=3"),
    ],
}


def checks() -> list[Row]:
    """Every row of :data:`CHECKS`, in order."""
    return [r for rows in CHECKS.values() for r in rows]


def _pct(x: float) -> str:
    return "nan" if math.isnan(x) else f"{100 * x:.2f}"


def _wa(w: Any, a: Any) -> str:
    return f"W{int(w)}A{int(a)}"


def _judge(r: pd.Series, bits: int, tol: float) -> str:
    """A target line, judged on the bits the body really has (not on the bits asked for)."""
    asked, body = _wa(r["w_bits"], r["a_bits"]), _wa(r["body_w_bits"], r["body_a_bits"])
    if body != _wa(bits, bits):
        return (f"- {r['recipe']} asked for {asked}: not judged, its body is really {body} "
                f"({r['delta_pts']:+.2f} points at {body})")
    ok = r["delta_pts"] >= -tol
    return (f"- {r['recipe']} {body} within {tol:g} points of FP: {'met' if ok else 'NOT met'} "
            f"({r['delta_pts']:+.2f})")


def _targets(df: pd.DataFrame) -> list[str]:
    lines = [_judge(r, 4, W4A4_TOLERANCE_PTS)
             for _, r in df[(df["w_bits"] == 4) & (df["a_bits"] == 4)].iterrows()]
    fpsc = df[(df["recipe"] == "pact_sawb_fpsc") & (df["w_bits"] == 2) & (df["a_bits"] == 2)]
    lines += [_judge(r, 2, FPSC_W2A2_TOLERANCE_PTS) for _, r in fpsc.iterrows()]
    return lines


def _verdicts(main: pd.DataFrame, check: pd.DataFrame) -> list[str]:
    """One line per claim, decided from the mean accuracies (see CHECKS); each accuracy is
    given with its seed std, so a verdict decided by less than the noise can be read as such."""
    acc = {r["recipe"]: (r["accuracy"], r["accuracy_std"]) for _, r in check.iterrows()}
    lines = []
    for claim, rows in CHECKS.items():
        vals = [acc.get(r.name, (math.nan, math.nan)) for r in rows]
        if any(math.isnan(v) for v, _ in vals):
            continue
        means = [v for v, _ in vals]
        mode, _, text = claim.partition(": ")
        if mode == "best":
            holds = all(means[-1] >= v for v in means[:-1])
        else:
            holds = all(b >= a for a, b in itertools.pairwise(means))
        detail = ", ".join(f"{r.name} {_pct(v)} +- {_pct(sd)} %" for r, (v, sd) in zip(rows, vals))
        lines.append(f"- {text}: {'holds' if holds else 'does not hold'} ({detail})")
    m = {(r["recipe"], r["w_bits"], r["a_bits"]): r["accuracy"] for _, r in main.iterrows()}

    def cmp(claim: str, hi: tuple[str, int, int], lo: tuple[str, int, int]) -> None:
        if hi in m and lo in m:
            lines.append(f"- {claim}: {'holds' if m[hi] >= m[lo] else 'does not hold'} "
                         f"({hi[0]} {_pct(m[hi])} % vs {lo[0]} {_pct(m[lo])} %)")

    cmp("LSQ >= PACT-SAWB at W2A2", ("lsq", 2, 2), ("pact_sawb", 2, 2))
    cmp("fpsc helps ResNets: not testable on digits_cnn (no shortcut layers), so pact_sawb_fpsc "
        "and pact_sawb are the same network; >= is expected with equality",
        ("pact_sawb_fpsc", 2, 2), ("pact_sawb", 2, 2))
    return lines

"""The report of the negative-control benchmark (:mod:`quant.benchmark`): tables, statistics,
learned-parameter trajectory plots and the markdown page.

:func:`summarize` turns the per-(arm, seed) results into one row per control (paired one-sided
t-test of correct minus control across seeds, Holm-adjusted too) and one row per recipe for the
W2A2-vs-FP gap; :func:`plot_trajectories` draws every learned 0-dim quantizer parameter of the
correct recipes per epoch next to its decay-only value; :func:`write_report` writes
``controls.md``, ``controls_runs.csv`` and the plots (PNG + SVG).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quant import controls
from quant.benchmark import FP_ARM, PairedTest, Protocol, holm, paired_t_test

__all__ = ["ALPHA", "MEASURES", "Comparison", "plot_trajectories", "summarize", "write_report"]

ALPHA = 0.05
"""Significance level of a detection (one-sided)."""
MEASURES = ("loss", "accuracy")
"""What a control is judged on: the test cross-entropy (the primary measure, chosen on the
validation split, docs/quant_accuracy/controls_protocol.md) or the test accuracy."""

Results = Mapping[tuple[str, int], Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Comparison:
    """One paired comparison: ``reference`` (correct recipe, or FP) against ``treated``.

    Attributes:
        treated, reference: arm names.
        label: human description.
        reference_mean, treated_mean: mean accuracy (0..1) over the seeds.
        test: the paired one-sided test of reference > treated.
        p_holm: Holm-adjusted p-value of the ``measure`` test within its family (the
            controls, or the gaps).
        loss_test: the same paired test on the test cross-entropy (treated > reference).
        measure: which of the two decides ``detected`` (:data:`MEASURES`).
    """

    treated: str
    reference: str
    label: str
    reference_mean: float
    treated_mean: float
    test: PairedTest
    p_holm: float
    loss_test: PairedTest
    measure: str = "accuracy"

    @property
    def primary(self) -> PairedTest:
        return self.loss_test if self.measure == "loss" else self.test

    @property
    def detected(self) -> bool:
        return self.primary.p_value < ALPHA


def _compare(results: Results, pairs: Sequence[tuple[str, str, str]],
             seeds: Sequence[int], measure: str) -> list[Comparison]:
    if measure not in MEASURES:
        raise ValueError(f"measure={measure!r} (allowed: {', '.join(MEASURES)})")
    rows = []
    for treated, reference, label in pairs:
        ref = [float(results[(reference, s)]["accuracy"]) for s in seeds]
        trt = [float(results[(treated, s)]["accuracy"]) for s in seeds]
        loss = paired_t_test([float(results[(treated, s)]["loss"]) for s in seeds],
                             [float(results[(reference, s)]["loss"]) for s in seeds])
        rows.append(Comparison(treated, reference, label, sum(ref) / len(ref),
                               sum(trt) / len(trt), paired_t_test(ref, trt), math.nan, loss,
                               measure))
    adjusted = holm([c.primary.p_value for c in rows]) if rows else []
    return [dataclasses.replace(c, p_holm=p) for c, p in zip(rows, adjusted)]


def summarize(results: Results, arms: Sequence[str], seeds: Sequence[int],
              measure: str = "loss") -> tuple[list[Comparison], list[Comparison]]:
    """``(controls, gaps)``: each control against its correct recipe (judged on ``measure``),
    and FP against each correct recipe (the W2A2 loss, judged on accuracy), over ``seeds``."""
    ctrl = [a for a in arms if a in controls.CONTROLS]
    recipes = [a for a in arms if a != FP_ARM and a not in controls.CONTROLS]
    control_pairs = [(c, controls.CONTROLS[c].recipe, controls.CONTROLS[c].label) for c in ctrl]
    gap_pairs = [(r, FP_ARM, f"{r} W2A2 vs full precision") for r in recipes]
    return (_compare(results, control_pairs, seeds, measure),
            _compare(results, gap_pairs, seeds, "accuracy"))


def plot_trajectories(results: Results, recipes: Sequence[str], seed: int,
                      out_stem: Path) -> list[Path]:
    """One panel per recipe: each learned 0-dim quantizer parameter per epoch (solid, the
    start at epoch 0) and its decay-only value (dashed, same colour). Writes PNG and SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(r, results[(r, seed)]["curves"]) for r in recipes
              if (r, seed) in results and results[(r, seed)]["curves"]]
    if not panels:
        return []
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (recipe, curves) in zip(axes[0], panels):
        for k, (name, c) in enumerate(sorted(curves.items())):
            color = plt.get_cmap("tab20")(k % 20)
            xs = list(range(len(c["values"]) + 1))
            ax.plot(xs, [c["start"], *c["values"]], color=color, lw=1.4,
                    label=f"{name} ({c['group']})")
            ax.plot(xs, [c["start"], *c["decay_only"]], color=color, lw=1.0, ls="--")
        ax.set_yscale("log")
        ax.set_title(f"{recipe} (seed {seed})", fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(True, which="both", lw=0.3, alpha=0.5)
        ax.legend(fontsize=5, loc="best")
    axes[0][0].set_ylabel("value (solid: learned, dashed: decay only)")
    fig.tight_layout()
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [out_stem.with_suffix(".png"), out_stem.with_suffix(".svg")]
    try:
        for p in paths:
            _save_figure(fig, p)
    finally:
        plt.close(fig)
    return paths


def _save_figure(fig: Any, path: Path) -> None:
    """``fig.savefig(path, dpi=150)``, byte-reproducible: an SVG without a Date and with ids
    salted by a fixed ``svg.hashsalt`` (only for this call) instead of random ones; a PNG has
    neither. (`dse.study.plots.save_figure` does the same downstream; quant may not import it.)"""
    import matplotlib

    svg = path.suffix == ".svg"
    with matplotlib.rc_context({"svg.hashsalt": "qdse"}):
        fig.savefig(path, dpi=150, metadata={"Date": None} if svg else None)


def _trajectory_rows(results: Results, recipes: Sequence[str],
                     seeds: Sequence[int]) -> list[str]:
    """Markdown rows: per recipe and parameter, mean over seeds of start, end, decay-only end,
    and how far the end is from decay-only relative to the start."""
    rows = []
    for r in recipes:
        names = sorted(results[(r, seeds[0])]["curves"]) if (r, seeds[0]) in results else []
        for name in names:
            cs = [results[(r, s)]["curves"][name] for s in seeds
                  if (r, s) in results and name in results[(r, s)]["curves"]]
            start = sum(c["start"] for c in cs) / len(cs)
            end = sum(c["values"][-1] for c in cs) / len(cs)
            do = sum(c["decay_only"][-1] for c in cs) / len(cs)
            moved = sum(abs(c["values"][-1] - c["decay_only"][-1]) / abs(c["start"])
                        for c in cs) / len(cs)
            rows.append(f"| {r} | {name} | {cs[0]['group']} | {start:.4g} | {end:.4g} | "
                        f"{do:.4g} | {100 * moved:.1f} |")
    return rows


def _invocation_lines(invocations: Sequence[Mapping[str, Any]]) -> list[str]:
    """The invocations that trained this report's runs (a resumed benchmark has several)."""
    trained = [i for i in invocations if i.get("trained", 0) > 0]
    if not trained:
        return []
    wall = sum(float(i["wall_s"]) for i in trained)
    cpu = sum(float(i["cpu_s"]) for i in trained)
    lines = ["", f"Invocations that trained runs for this protocol: {len(trained)}, "
             f"{wall:.0f} s wall and {cpu:.0f} s CPU in all "
             f"({cpu / 2 / 60:.1f} min on 2 cores):", ""]
    lines += [f"- {i.get('finished', '?')}: {int(i['trained'])} runs, {float(i['wall_s']):.0f} s "
              f"wall, {float(i['cpu_s']):.0f} s CPU" for i in trained]
    return lines


def _init_text(protocol: Protocol) -> str:
    if protocol.init == "scratch":
        return "every arm trained from random weights"
    tuned = sorted({controls.CONTROLS[c].recipe for c in controls.CONTROLS
                    if protocol.fine_tunes(c)})
    return (f"each arm started where its paper starts ({', '.join(tuned)} fine-tuned from the "
            "same seed's trained `fp32` weights at the procedure's fine-tune learning rate, "
            "the others trained from random weights)")


_MEASURE_NAME = {"loss": "cross-entropy", "accuracy": "accuracy"}
_MEASURE_TEXT = {
    "loss": "The primary measure is the cross-entropy (CE, nats; H1: the control's is "
            "higher), chosen on the validation split (controls_protocol.md, second round); the "
            "accuracy test (H1: the control's accuracy is lower) is reported beside it.",
    "accuracy": "The primary measure is the accuracy (H1: the control's is lower); the "
                "cross-entropy test (H1: the control's is higher) is reported beside it.",
}


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def write_report(results: Results, protocol: Protocol, arms: Sequence[str],
                 seeds: Sequence[int], out: str | Path, *, command: str, wall_s: float,
                 cpu_s: float, train_cpu_s: float, jobs: int,
                 invocations: Sequence[Mapping[str, Any]] = (), measure: str = "loss") -> Path:
    """Write ``OUT/controls.md``, ``OUT/controls_runs.csv`` and
    ``OUT/controls_trajectories.{png,svg}``; returns the markdown path. ``measure`` decides
    a detection (:data:`MEASURES`); both readings are reported."""
    ctrl, gaps = summarize(results, arms, seeds, measure)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    recipes = [g.treated for g in gaps]
    with (out / "controls_runs.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arm", "recipe", "control", "seed", "accuracy", "loss", "wall_s", "cpu_s"])
        for (arm, seed), r in sorted(results.items(), key=lambda kv: (arms.index(kv[0][0]),
                                                                       kv[0][1])):
            w.writerow([arm, r["recipe"], r["control"] or "", seed, f"{r['accuracy']:.6f}",
                        f"{r['loss']:.6f}", f"{r['wall_s']:.2f}", f"{r['cpu_s']:.2f}"])
    plots = plot_trajectories(results, recipes, seeds[0], out / "controls_trajectories")
    found = sum(c.detected for c in ctrl)
    pr = protocol
    md = [
        "# Negative controls: can the accuracy benchmark tell a right formula from a wrong one?",
        "",
        f"Protocol: `{pr.model}` at width {pr.width:g} on {pr.data} ({pr.eval_split} split "
        "scored; the protocol was chosen on the validation split, see "
        "docs/quant_accuracy/controls_protocol.md), EVERY layer "
        f"quantized at W{pr.w_bits}A{pr.a_bits} (first and last layers {pr.first_last_bits} "
        f"bits), {_init_text(pr)} for {pr.epochs} epochs (batch {pr.batch_size}) "
        "under each recipe's own procedure (quant/procedure.py); seeds "
        f"{', '.join(map(str, seeds))}. A control is the correct recipe with one known-wrong "
        "formula swapped in (quant/controls.py), trained on the same seeds: same initial "
        "weights, data order and calibration batch. Accuracy is the last epoch's.",
        "",
        f"Test: one-sided paired t-test across the {len(seeds)} seeds, H1: the control is "
        f"worse; detected at p < {ALPHA}. {_MEASURE_TEXT[measure]} p (Holm) adjusts the "
        "primary p for the eight tests; the Wilcoxon signed-rank p (primary measure) is a "
        "rank-based cross-check.",
        "",
        f"Command: `{command}`",
        "",
        f"**Detected: {found} of {len(ctrl)} controls at p < {ALPHA} on the "
        f"{pr.eval_split} {_MEASURE_NAME[measure]}** "
        f"({sum(c.p_holm < ALPHA for c in ctrl)} after Holm; "
        f"{sum(c.test.p_value < ALPHA for c in ctrl)} on the accuracy, "
        f"{sum(c.loss_test.p_value < ALPHA for c in ctrl)} on the cross-entropy).",
        "",
        "| control | breaks | recipe | correct % | control % | delta (pts) | p (accuracy) | "
        "delta CE (nats) | sd CE | t CE | p (CE) | p (Holm) | p (Wilcoxon) | detected |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in ctrl:
        info = controls.CONTROLS[c.treated]
        md.append(f"| `{c.treated}`: {c.label} | {info.breaks} | {c.reference} | "
                  f"{100 * c.reference_mean:.2f} | {100 * c.treated_mean:.2f} | "
                  f"{100 * c.test.mean_delta:+.2f} | {_p(c.test.p_value)} | "
                  f"{c.loss_test.mean_delta:+.4f} | {c.loss_test.sd_delta:.4f} | "
                  f"{c.loss_test.t:.2f} | {_p(c.loss_test.p_value)} | {_p(c.p_holm)} | "
                  f"{_p(c.primary.p_wilcoxon)} | {'yes' if c.detected else '**no**'} |")
    diverged = sorted({f"{arm} seed {seed}" for (arm, seed), r in results.items()
                       if r.get("diverged") and seed in seeds})
    md += ["", "Runs whose loss became non-finite (scored as a guess: accuracy 10 %, loss "
           f"ln 10): {', '.join(diverged) if diverged else 'none'}."]
    fp_mean = sum(results[(FP_ARM, s)]["accuracy"] for s in seeds) / len(seeds)
    md += ["", "## W2A2 against full precision", "",
           f"Full precision (`fp32`, same seeds and epochs): {100 * fp_mean:.2f} %.", "",
           "| recipe | FP % | W2A2 % | loss (pts) | sd (pts) | p | p (Holm) |",
           "|---|---|---|---|---|---|---|"]
    for g in gaps:
        md.append(f"| {g.treated} | {100 * g.reference_mean:.2f} | {100 * g.treated_mean:.2f} "
                  f"| {100 * g.test.mean_delta:+.2f} | {100 * g.test.sd_delta:.2f} | "
                  f"{_p(g.test.p_value)} | {_p(g.p_holm)} |")
    n_runs = len(arms) * len(seeds)
    md += ["", "## Runtime", "",
           f"{n_runs} runs ({len(arms)} arms x {len(seeds)} seeds), {jobs} worker processes "
           "of one torch thread each. Training CPU time summed over the runs: "
           f"{train_cpu_s:.0f} s, i.e. {train_cpu_s / 2 / 60:.1f} min on 2 otherwise idle "
           "cores (the issue's budget: 30). The machine was shared with other jobs, so wall "
           "time exceeds CPU time / 2.",
           *_invocation_lines(invocations), "",
           f"The invocation that wrote this report: {wall_s:.0f} s wall, {cpu_s:.0f} s CPU "
           "(this process and its workers; cached runs are only read).",
           "", "## Learned parameters against their decay-only values", "",
           "Every 0-dim learned quantizer parameter of the correct recipes. *Decay only* is "
           "the value the parameter would reach with no task gradient: the run's optimizer, "
           "cosine schedule and decay acting alone from the same start "
           "(`quant.train.decay_only_curve`) for clipping levels (group `clip`); steps in "
           "group `scale` (LSQ s, LLSQ activation alpha) take no decay, so their decay-only "
           "value is the start. *moved* = mean over seeds of |end - decay only| / start: "
           "a level near 0 % was set by its decay (or never moved), not learned.", "",
           "| recipe | parameter | group | start | end | decay only | moved % |",
           "|---|---|---|---|---|---|---|", *_trajectory_rows(results, recipes, seeds), ""]
    if plots:
        md += [f"![trajectories, seed {seeds[0]}]({plots[0].name}) "
               f"(also [{plots[1].name}]({plots[1].name})): solid = learned, dashed = "
               "decay only, log scale.", ""]
    path = out / "controls.md"
    path.write_text("\n".join(md) + "\n")
    return path

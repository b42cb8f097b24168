"""The summary tables and notes of `studies.wrpn_vs_pact_search` (not a study itself).

The best designs' speedup, their simulator-fidelity tables (`fidelity_tables`), how much of its
space each search covered, best designs on the edge of their space and the schedules table. They
read the study's results; none simulates or searches, so editing them keeps the study's cache.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from studies import pipeline
from studies.wrpn_vs_pact import LEGEND

__all__ = ["FORMULATION_LEGEND", "FORMULATION_WORDS", "ROW_COLUMNS", "coverage_note",
           "edge_lines", "fidelity_lines", "fidelity_tables", "infeasible_lines", "schedule_table",
           "speedup_table", "with_row_columns"]

ROW_COLUMNS = ("kind", "scheme", "design", "formulation", "dram_gbps", "sampler", "trials",
               "complete", "pruned", "feasible", "distinct_designs", "space_designs",
               "images_per_s", "energy_j", "latency_s", "utilization", "dram_bytes", "area",
               "area_budget", "cores", "rows", "cols", "mac_bits", "sram_kib", "schedule",
               "groups", "micro_batch", "accuracy_proxy", "accuracy_model", "min_accuracy",
               "trial", "runner_up", "margin_pct", "sram_total_kib", "edges", "layer_bits")
"""Every column a best-design row (`studies._search_points.best_design_row`) may hold. A search
that found no feasible design gives a row with none of the design's columns, and a best design
with no other MAC precision feasible has no ``runner_up``: a results table made of such rows only
lacks those columns."""


def with_row_columns(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` with every `ROW_COLUMNS` column (missing ones empty), so a summary reads the
    same columns whatever the searches found."""
    missing = [c for c in ROW_COLUMNS if c not in results.columns]
    return results.assign(**{c: math.nan for c in missing}) if missing else results


def infeasible_lines(results: pd.DataFrame) -> list[str]:
    """One line per search that found no feasible design (no ``images_per_s``)."""
    out = []
    for _, r in results[results["images_per_s"].isna()].iterrows():
        bw = pipeline.bandwidth_label(r["dram_gbps"])
        out.append(f"- **No feasible design**: {LEGEND.get(r['scheme'], r['scheme'])}, "
                   f"{r['design']}, `{r['formulation']}`, {bw}: none of its {int(r['trials'])} "
                   "trials gave one (a larger trial budget or a wider space may)")
    return out


def speedup_table(iso: pd.DataFrame) -> pd.DataFrame:
    """Per (formulation, dram_gbps): best PACT-SAWB images/s / best WRPN images/s (empty where a
    search found no feasible design)."""
    wide = (iso.groupby(["formulation", "dram_gbps", "scheme"], sort=True)["images_per_s"]
            .first().unstack("scheme").reindex(columns=["pact_sawb", "wrpn"]))
    return pd.DataFrame({"formulation": wide.index.get_level_values(0),
                         "dram_gbps": wide.index.get_level_values(1),
                         "speedup": (wide["pact_sawb"] / wide["wrpn"]).to_numpy(),
                         "pact_sawb_images_per_s": wide["pact_sawb"].to_numpy(),
                         "wrpn_images_per_s": wide["wrpn"].to_numpy()})


def fidelity_tables(iso: pd.DataFrame, formulation: str) -> tuple[Any, Any]:
    """``(speedup_by_fidelity, images_per_s_by_fidelity)`` of the ``formulation``'s best designs,
    or ``(None, None)`` without two ``images_per_s@MODE`` columns (the study's ``_mode_rates``).

    Speedup: per bandwidth, the best PACT-SAWB design's images/s / the best WRPN design's, each
    design re-simulated in each mode (the designs the headline-mode searches chose). A search
    that found no feasible design has no design to re-simulate: its bandwidth is left out, not
    the whole table."""
    sel = iso[iso["formulation"] == formulation]
    if "cores" in sel:
        sel = sel[sel["cores"].notna()]
    modes = [m for m in pipeline.SIM_MODES if f"images_per_s@{m}" in sel
             and sel[f"images_per_s@{m}"].notna().all()]
    if len(sel) == 0 or len(modes) < 2 or pipeline.HEADLINE_MODE not in modes:
        return None, None
    rates = sel[["scheme", "dram_gbps", "mac_bits", "cores"]].copy()
    rates["design"] = [f"{r.mac_bits} x {int(r.cores)} cores" for r in rates.itertuples()]
    for m in modes:
        rates[m] = sel[f"images_per_s@{m}"].to_numpy()
    rates = rates.drop(columns=["mac_bits", "cores"]).sort_values(["scheme", "dram_gbps"])
    by = {k: g.set_index("dram_gbps") for k, g in rates.groupby("scheme")}
    pact, wrpn = by["pact_sawb"], by["wrpn"]
    bws = [b for b in pact.index if b in wrpn.index]
    speed = pd.DataFrame({"dram_gbps": bws,
                          "pact_sawb_design": pact.loc[bws, "design"].to_numpy(),
                          "wrpn_design": wrpn.loc[bws, "design"].to_numpy()})
    for m in modes:
        speed[m] = (pact.loc[bws, m] / wrpn.loc[bws, m]).to_numpy()
    return speed, rates.reset_index(drop=True)


def fidelity_lines(speed: pd.DataFrame, rates: pd.DataFrame, formulation: str) -> list[str]:
    """The caption of the fidelity tables, `pipeline.fidelity_note`, and per scheme how much
    images/s its best designs lose in each mode (which scheme moved the speedup)."""
    head = pipeline.HEADLINE_MODE
    moves = []
    for scheme, g in rates.groupby("scheme", sort=False):
        parts = [f"`{m}` {100 * (g[m] / g[head] - 1).min():+.1f}% to "
                 f"{100 * (g[m] / g[head] - 1).max():+.1f}%"
                 for m in pipeline.SIM_MODES if m in g and m != head]
        moves.append(f"{LEGEND.get(scheme, scheme)} " + ", ".join(parts))
    return ["`speedup_by_fidelity` / `images_per_s_by_fidelity`: each bandwidth's best PACT-SAWB "
            f"and best WRPN design under `{formulation}`, re-simulated in each simulator mode. "
            f"The searches ran at `{head}` and were not re-run per mode, so the designs are the "
            "headline mode's choices; another mode's own optimum may differ (in a near-tie of "
            "MAC precisions, likely).",
            "", pipeline.fidelity_note(speed, "the best-design speedup",
                                       name="speedup_by_fidelity"),
            "", "Per scheme, images/s of its best designs against the headline mode: "
            + "; ".join(moves) + "."]


def coverage_note(iso: pd.DataFrame) -> str:
    """How much of its space each search covered, per formulation, in one sentence."""
    parts = []
    for form, g in iso.groupby("formulation", sort=False):
        seen, size = g["distinct_designs"].astype(int), g["space_designs"].astype(int)
        if (seen >= size).all():
            parts.append(f"`{form}`: every search enumerated all {int(size.max())} designs of "
                         "its space")
        else:
            parts.append(f"`{form}`: the searches evaluated {int(seen.min())}-{int(seen.max())} "
                         f"of the {int(size.max())} designs of their space; a search that misses "
                         "the optimum understates its scheme")
    return "; ".join(parts) + "."


def edge_lines(results: pd.DataFrame) -> list[str]:
    """One warning line per best design on the edge of its space."""
    if "edges" not in results:
        return []
    out = []
    for _, r in results[results["kind"] != "schedule"].iterrows():
        if isinstance(r.get("edges"), str) and r["edges"]:
            bw = pipeline.bandwidth_label(r["dram_gbps"])
            out.append(f"- **Edge of the space**: {LEGEND.get(r['scheme'], r['scheme'])}, "
                       f"{r['design']}, `{r['formulation']}`, {bw}: {r['edges']}.")
    return out


FORMULATION_WORDS = {
    "fixed_total_sram": "16 MiB of SRAM on the chip at every precision, the rest of the area "
                        "budget buys cores (the study `wrpn_vs_pact`'s rule and the paper's "
                        "template)",
    "per_core_sram": "every core carries its own searched SRAM, so SRAM and cores share the "
                     "budget and SRAM dominates a core's area",
}

def schedule_table(sched: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The best design of each schedule per scheme, its rate relative to layer-by-layer, and a
    sentence per scheme on what the schedules change."""
    tab = sched[["scheme", "design", "schedule", "mac_bits", "groups", "micro_batch", "cores",
                 "images_per_s", "dram_bytes",
                 "latency_s", "dram_gbps", "batch", "distinct_designs",
                 "space_designs"]].copy()
    base = tab[tab["schedule"] == "layer_by_layer"].set_index("scheme")["images_per_s"]
    tab["vs_layer_by_layer"] = tab["images_per_s"] / tab["scheme"].map(base)
    lines = []
    for scheme, g in tab.groupby("scheme", sort=False):
        found = g[g["images_per_s"].notna()]
        parts = [f"{r['design'].removeprefix('best ')} {r['images_per_s']:.4g} images/s "
                 f"({r['mac_bits']} x "
                 f"{int(r['cores'])} cores in {int(r['groups'])} group(s), micro-batch "
                 f"{int(r['micro_batch'])})" for _, r in found.iterrows()]
        parts += [f"{r['design'].removeprefix('best ')}: no feasible design"
                  for _, r in g[g["images_per_s"].isna()].iterrows()]
        best = (f"best {found.loc[found['images_per_s'].idxmax(), 'schedule']}" if len(found)
                else "no feasible design")
        seen, size = int(g["distinct_designs"].max()), int(g["space_designs"].max())
        covered = (f"all {size} designs enumerated" if seen >= size
                   else f"{seen} of its {size} designs evaluated")
        bw = pipeline.bandwidth_label(g["dram_gbps"].iloc[0])
        lines.append(f"- Schedules, {LEGEND.get(scheme, scheme)} ({int(g['batch'].iloc[0])}-image "
                     f"stream, {bw}, {covered}): {best}; " + "; ".join(parts) + ".")
    return tab, ["What the schedules change (each schedule's best design, MAC precision and "
                 "core groups searched with it):", "", *lines]


FORMULATION_LEGEND = {"fixed_total_sram": "16 MiB total SRAM (the study's)",
                      "per_core_sram": "SRAM per core, searched"}

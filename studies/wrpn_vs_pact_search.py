"""Searched, not fixed: the best iso-area design for PACT-SAWB and for WRPN, and mixed precision.

Two questions the PACT-SAWB paper (Choi et al., SysML 2019, Section 7.3, Fig. 8) answers with one
fixed template each, answered here with `dse.search` (Optuna):

1. ``iso_area`` points: for each scheme (PACT-SAWB W2A2 on AlexNet; WRPN W2A4 on 2x-wide AlexNet;
   first/last layers 16-bit in both, iso-accuracy per the paper's Table 5), each DRAM bandwidth
   and each SRAM formulation (`dse.search.space.FORMULATIONS`), search the MAC precision (1x1 to
   16x16, so that neither end of the study's question is cut off) for maximum images/s, the core
   count filling the sysml19 area budget:

   * ``fixed_total_sram`` (the headline): 16 MiB of SRAM on the chip at every precision, the rest
     of the budget buys cores - the rule of `studies.wrpn_vs_pact` and of the paper's template
     (its ``peak_scaling="density"`` rows: the area model sizes the cores);
   * ``per_core_sram``: every core carries 256..2048 KiB (searched too), so SRAM and cores share
     the budget; SRAM then dominates a core's area and wide MACs look cheap.

   Both spaces are small (7 and 28 designs), so each search enumerates all of its designs
   (Optuna's grid sampler, each design once). The speedup is best-PACT images/s / best-WRPN
   images/s at the same bandwidth and formulation; the paper's 2.7x-3.1x belongs to its fixed
   template, and the searched designs may legitimately differ.
2. ``mixed`` point: PACT-SAWB AlexNet with per-layer weight/activation bits searched (first/last
   fixed at 16) together with the MAC precision, under the headline formulation, maximizing
   images/s subject to the *proxy* accuracy (`dse.search.accuracy.ProxyAccuracy`, data-free output
   SQNR, noise-gain sensitivity) being at least that of uniform 2-bit (TPE: the space is far too
   large to enumerate); compared with the best uniform-2-bit design of the same hardware space
   (enumerated). Reported as found, including when mixed precision does not win.

Every summary names the formulation of each row and warns when a best design sits on the edge of
its space (`dse.search.coverage.edge_notes`).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import pandas as pd

from dse.sim.simulate import SCHEDULES
from dse.study.report import Plot, Summary, Target
from dse.study.runner import DEFAULT_CODE, Context, expand_grid
from dse.study.runner import run as _run
from studies import pipeline
from studies._params import (
    check_bandwidths,
    check_batch,
    check_choice,
    check_positive,
    check_tuple_of,
    describe_params,
)
from studies._search_points import (
    accuracy_proxy,
    best_design_row,
    hardware_space,
    mode_rates,
    uniform_baseline,
)
from studies._search_tables import (
    FORMULATION_LEGEND,
    FORMULATION_WORDS,
    coverage_note,
    edge_lines,
    fidelity_lines,
    fidelity_tables,
    infeasible_lines,
    schedule_table,
    speedup_table,
    with_row_columns,
)
from studies.wrpn_vs_pact import LEGEND, SCHEMES
from studies.wrpn_vs_pact import scheme_workload as _workload  # same schemes, same graphs

NAME = "wrpn_vs_pact_search"
TITLE = ("Searched best iso-area designs for PACT-SAWB vs. WRPN over bandwidth, and per-layer "
         "mixed precision vs. uniform 2-bit (proxy accuracy)")


CODE = (*DEFAULT_CODE, "dse/search",
        "studies/wrpn_vs_pact.py", "studies/wrpn_vs_pact_search.py", "studies/_search_points.py")
"""The points run searches (the dse.search package, hashed whole, its space and accuracy proxy,
which the default leaves out as non-model code) on the schemes of `studies.wrpn_vs_pact`, with
the helpers of `studies._search_points`: a change there recomputes."""

PARAMS: dict[str, Any] = {
    "model": "alexnet",
    "bandwidth": (8.0, 32.0, 128.0, math.inf),
    "formulations": ("fixed_total_sram", "per_core_sram"),
    "total_sram_kib": 16384.0,
    "trials": 40,
    "mixed_trials": 150,
    "mixed_bandwidth": 32.0,
    "mac_bits": ("1x1", "1x2", "2x2", "2x4", "4x4", "8x8", "16x16"),
    "mixed_mac_bits": ("1x1", "1x2", "2x2", "2x4", "4x4", "8x8", "16x16"),
    "sram_kib": (256.0, 512.0, 1024.0, 2048.0),
    "mixed_bits": (1, 2, 3, 4),
    "schedules": ("layer_by_layer", "pipeline", "data_parallel"),
    "schedule_groups": (1, 2, 4, 8),
    "schedule_batch": 16,
    "schedule_micro_batches": (1, 4, 8, 16),
    "schedule_bandwidth": 32.0,
    "schedule_trials": 400,
    "first_last_bits": 16,
    "seed": 0,
    "modes": pipeline.SIM_MODES,
}
"""Defaults. ``formulations``: SRAM formulations searched (`dse.search.space.FORMULATIONS`); the
first is the headline (speedup target, mixed point). ``total_sram_kib``: the chip SRAM of
``fixed_total_sram`` (the sysml19 template's); ``sram_kib``: the per-core choices of
``per_core_sram``. ``trials``: trial budget per (scheme, bandwidth, formulation) search (a space
no larger is enumerated, each design once); ``mixed_trials``: TPE trials of the mixed-precision
search; ``*mac_bits``: MAC precisions the hardware search may pick. ``schedules`` (empty: none)
x ``schedule_groups`` (equal core groups) x ``schedule_micro_batches`` (images moving through
the groups together; each divides ``schedule_batch``) x ``mac_bits``: the ``schedule`` points,
one search per scheme at ``schedule_bandwidth`` on a stream of ``schedule_batch`` images under the
headline formulation (336 designs, enumerated within ``schedule_trials``), reported as the best
design of each schedule. ``modes`` (empty: none): the simulator modes (`studies.pipeline.SIM_MODES`)
each bandwidth's best design under the headline formulation is re-simulated in, for the
``speedup_by_fidelity`` table; every search itself runs at `pipeline.HEADLINE_MODE`, which is
always among them."""

SPEEDUP_BAND = (2.5, 3.4)
SOURCE = "PACT-SAWB (SysML'19) Sec. 7.3, Fig. 8a (fixed template, not searched)"


def _pairs(field: str, value: Any) -> tuple[tuple[int, int], ...]:
    from dse.search.space import decode_pair

    vals = check_tuple_of(field, value, ())
    try:
        return tuple(decode_pair(v) for v in vals)
    except ValueError as e:
        raise ValueError(f"{field}={value!r} is not allowed; expected 'WxA' strings") from e


def _positive_int(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{field}={value!r} is not allowed; expected an integer >= 1")
    return value


def _formulations(params: dict[str, Any]) -> tuple[str, ...]:
    from dse.search.space import FORMULATIONS

    forms = check_tuple_of("formulations", params["formulations"], FORMULATIONS)
    if not forms:
        raise ValueError(f"formulations={params['formulations']!r} is not allowed; expected a "
                         f"non-empty tuple from {', '.join(FORMULATIONS)}")
    return tuple(forms)


def _modes(params: dict[str, Any]) -> tuple[str, ...]:
    """``params["modes"]`` in `pipeline.SIM_MODES` order, with the headline mode (empty: none)."""
    if not params["modes"]:
        return ()
    chosen = check_tuple_of("modes", params["modes"], pipeline.SIM_MODES)
    return tuple(m for m in pipeline.SIM_MODES if m in chosen or m == pipeline.HEADLINE_MODE)


def grid(params: dict[str, Any]) -> list[dict[str, Any]]:
    pipeline.check_model(params["model"])
    bws = check_bandwidths(params["bandwidth"])
    mixed_bw = check_bandwidths((params["mixed_bandwidth"],), "mixed_bandwidth")[0]
    for f in ("trials", "mixed_trials"):
        _positive_int(f, params[f])
    _pairs("mac_bits", params["mac_bits"])  # 'WxA' strings, kept as given in the point
    _pairs("mixed_mac_bits", params["mixed_mac_bits"])
    mac_bits = check_tuple_of("mac_bits", params["mac_bits"], ())
    mixed_mac_bits = check_tuple_of("mixed_mac_bits", params["mixed_mac_bits"], ())
    mixed_bits = check_tuple_of("mixed_bits", params["mixed_bits"], tuple(range(1, 33)))
    sram_kib = check_positive(params["sram_kib"], "sram_kib")
    check_choice("first_last_bits", params["first_last_bits"], (2, 4, 8, 16, 32))
    seed = params["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r} is not allowed; expected an integer >= 0")
    forms = _formulations(params)
    total = params["total_sram_kib"]
    if isinstance(total, bool) or not isinstance(total, int | float) \
            or not 0 < total < math.inf:
        raise ValueError(f"total_sram_kib={total!r} is not allowed; expected a finite number of "
                         "KiB > 0")
    fixed = {k: params[k] for k in ("model", "trials", "mac_bits", "sram_kib",
                                    "first_last_bits", "seed")}
    fixed["mac_bits"] = tuple(mac_bits)
    fixed["sram_kib"] = tuple(float(s) for s in sram_kib)
    fixed["total_sram_kib"] = float(total)
    points = expand_grid({"formulation": forms, "dram_gbps": bws, "scheme": tuple(SCHEMES)},
                         kind="iso_area", **fixed)
    modes = _modes(params)
    for p in points:  # the headline formulation's best designs, re-simulated in every mode
        p["modes"] = modes if p["formulation"] == forms[0] else ()
    scheds = check_tuple_of("schedules", params["schedules"], SCHEDULES) \
        if params["schedules"] else ()
    if scheds:
        groups = check_tuple_of("schedule_groups", params["schedule_groups"], tuple(range(1, 65)))
        sched_bw = check_bandwidths((params["schedule_bandwidth"],), "schedule_bandwidth")[0]
        batch = check_batch(params["schedule_batch"], "schedule_batch")
        micro = check_tuple_of("schedule_micro_batches", params["schedule_micro_batches"],
                               tuple(m for m in range(1, batch + 1) if batch % m == 0))
        for scheme in SCHEMES:
            points.append({**fixed, "kind": "schedule", "scheme": scheme, "dram_gbps": sched_bw,
                           "formulation": forms[0], "schedules": tuple(scheds),
                           "groups": tuple(groups), "micro_batches": tuple(micro),
                           "batch": batch,
                           "trials": _positive_int("schedule_trials",
                                                   params["schedule_trials"])})
    points.append({**fixed, "kind": "mixed", "scheme": "pact_sawb", "dram_gbps": mixed_bw,
                   "formulation": forms[0], "trials": params["mixed_trials"],
                   "mac_bits": tuple(mixed_mac_bits), "mixed_bits": tuple(mixed_bits)})
    return points


def evaluate(point: dict[str, Any], ctx: Context) -> list[dict[str, Any]]:
    from dse.search import run as search

    wl = _workload(point, ctx)
    mac = _pairs("mac_bits", point["mac_bits"])
    common = dict(workload=wl, seed=int(point["seed"]), dram_gbps=float(point["dram_gbps"]),
                  simulate_options=pipeline.sim_options(pipeline.HEADLINE_MODE))
    if point["kind"] == "iso_area":
        space = hardware_space(point, mac, layer_bits="recipe")
        study = search(space, ["images_per_s"], n_trials=int(point["trials"]), sampler="auto",
                       **common)
        row = best_design_row(study, point, "searched", space, wl)
        return [{**row, **mode_rates(study, row, space, wl, point)}]
    if point["kind"] == "schedule":  # the best design of each schedule, one search over all
        space = hardware_space(point, mac, layer_bits="recipe",
                               schedules=tuple(point["schedules"]),
                               groups=tuple(point["groups"]),
                               micro_batches=tuple(point["micro_batches"]))
        study = search(space, ["images_per_s"], n_trials=int(point["trials"]), sampler="auto",
                       batch=int(point["batch"]), **common)
        rows = []
        for sched in point["schedules"]:  # and, split ones, their best on 2+ core groups
            splits = (1, 2) if sched != "layer_by_layer" and max(point["groups"]) > 1 else (1,)
            rows += [{**best_design_row(study, point,
                                        f"best {sched}" + (" on 2+ groups" if g > 1 else ""),
                                        space, wl, sched, g), "batch": point["batch"]}
                     for g in splits]
        return rows
    # mixed precision vs. uniform 2-bit at the same proxy accuracy
    proxy = accuracy_proxy(point, wl, ctx)
    uniform = {la.name: (la.w_bits, la.a_bits) for la in wl.compute_layers()}  # W2A2 body
    floor = proxy(uniform)
    bits = tuple(int(b) for b in point["mixed_bits"])
    space = hardware_space(point, mac, layer_bits="search", layer_w_bits=bits, layer_a_bits=bits)
    mixed = search(space, ["images_per_s"], n_trials=int(point["trials"]), sampler="tpe",
                   accuracy=proxy, min_accuracy=floor, **common)
    base = uniform_baseline(point, wl, mac, proxy)
    base.update(design="uniform 2-bit (best hardware, enumerated)", min_accuracy=floor)
    return [best_design_row(mixed, point, "mixed (searched per-layer bits)", space, wl), base]


def _template_why(iso: pd.DataFrame, speedup: pd.DataFrame, end: str) -> str:
    """Why the ``end`` ("min" or "max") speedup of one formulation's best designs may leave the
    paper's band: the band is the paper's fixed 2x2 / 2x4 templates', the searched chips differ."""
    i = speedup["speedup"].idxmin() if end == "min" else speedup["speedup"].idxmax()
    bw = float(speedup.at[i, "dram_gbps"])
    at = iso[iso["dram_gbps"] == bw].set_index("scheme")
    if not {"pact_sawb", "wrpn"} <= set(at.index):
        return ""
    p, w = at.loc["pact_sawb"], at.loc["wrpn"]
    where = pipeline.bandwidth_label(bw, "unlimited bandwidth")
    chips = (f"both searches pick the same chip ({p['mac_bits']} x {int(p['cores'])} cores)"
             if (p["mac_bits"], p["cores"]) == (w["mac_bits"], w["cores"]) else
             f"the searches pick {p['mac_bits']} x {int(p['cores'])} cores for PACT-SAWB and "
             f"{w['mac_bits']} x {int(w['cores'])} for WRPN")
    return (f"at {where} {chips}, not the paper's 2x2 and 2x4 templates the band belongs to")


def summarize(results: pd.DataFrame, params: dict[str, Any]) -> Summary:
    forms = _formulations(params)
    head = forms[0]
    results = with_row_columns(results)  # a search without a feasible design has no design
    iso = results[results["kind"] == "iso_area"]
    speedup = speedup_table(iso)
    head_sp = speedup[speedup["formulation"] == head]
    designs = iso[["formulation", "scheme", "dram_gbps", "mac_bits", "cores", "sram_kib",
                   "area", "area_budget", "images_per_s", "runner_up", "margin_pct", "sampler",
                   "distinct_designs", "space_designs", "edges"]].sort_values(
        ["formulation", "scheme", "dram_gbps"])
    mixed = results[results["kind"] == "mixed"]
    mixed_tab = mixed[["design", "formulation", "images_per_s", "accuracy_proxy",
                       "min_accuracy", "mac_bits", "cores", "sram_kib", "layer_bits", "trials",
                       "feasible"]]
    lo, hi = float(head_sp["speedup"].min()), float(head_sp["speedup"].max())
    targets = () if head_sp["speedup"].isna().all() else (  # no pair of feasible designs
        Target(f"min speedup of the searched best designs ({head})", lo, *SPEEDUP_BAND,
               paper="2.7x-3.1x", source=SOURCE, unit="x",
               why=_template_why(iso[iso["formulation"] == head], head_sp, "min")),
        Target(f"max speedup of the searched best designs ({head})", hi, *SPEEDUP_BAND,
               paper="2.7x-3.1x", source=SOURCE, unit="x",
               why=_template_why(iso[iso["formulation"] == head], head_sp, "max")),
    )
    notes = ["## What the search found", ""]
    notes.append("Formulations (every row of every table names its own): "
                 + "; ".join(f"`{f}`: {FORMULATION_WORDS[f]}" for f in forms)
                 + f". The headline and the targets use `{head}`.")
    for form in forms:
        sp = speedup[speedup["formulation"] == form]["speedup"].dropna()
        notes += ["", f"Best-design speedup PACT-SAWB / WRPN under `{form}`: "
                  + (f"{float(sp.min()):.2f}x to {float(sp.max()):.2f}x over the bandwidth sweep "
                     "(the paper's fixed template: 2.7x-3.1x)." if len(sp) else
                     "none: at no bandwidth did both searches find a feasible design.")]
    notes += ["", coverage_note(iso)]
    infeasible = infeasible_lines(results[results["kind"] != "schedule"])
    if infeasible:
        notes += ["", "Searches without a result (their rows are empty in the tables, and the "
                  "speedups and targets leave them out):", "", *infeasible]
    ties = iso[iso["margin_pct"] < 1.0]
    if len(ties):
        notes += ["", f"{len(ties)} of the {len(iso)} best designs beat the fastest design of "
                  "any other MAC precision by less than 1 % (`margin_pct`, `runner_up`): there "
                  "the MAC choice is close to a tie, whatever the table's best says."]
    edges = edge_lines(results)
    if edges:
        notes += ["", "A best design on the edge of its space may have a better neighbour "
                  "outside it:", "", *edges]
    else:
        notes += ["", "No best design sits on the edge of its space."]
    sched = results[results["kind"] == "schedule"]
    tables = {"speedup": speedup, "best_designs": designs, "mixed_precision": mixed_tab}
    speed_modes, rate_modes = fidelity_tables(iso, head)
    if speed_modes is not None:
        tables["speedup_by_fidelity"] = speed_modes
        tables["images_per_s_by_fidelity"] = rate_modes
        notes += ["", *fidelity_lines(speed_modes, rate_modes, head)]
    if len(sched):
        tables["schedules"], lines = schedule_table(sched)
        notes += ["", *lines]
    if len(mixed) == 2:
        m = mixed.iloc[0]
        u = mixed.iloc[1]
        gain = m["images_per_s"] / u["images_per_s"] if u.get("images_per_s") else math.nan
        verdict = ("beats" if gain > 1.0 + 1e-9 else "does not beat")
        if math.isnan(gain):  # one of the two searches found no feasible design
            none = " and ".join(w for w, r in (("the mixed-precision search", m),
                                                 ("the uniform baseline", u))
                                if pd.isna(r["images_per_s"]))
            comparison = (f"cannot be compared with uniform 2-bit: {none} found no feasible "
                          "design" + "".join(f" ({r['design']}: {r['images_per_s']:.1f} images/s)"
                                             for r in (m, u) if pd.notna(r["images_per_s"])))
        else:
            comparison = (f"{verdict} uniform 2-bit at the same proxy accuracy: "
                          f"{m['images_per_s']:.1f} vs. {u['images_per_s']:.1f} images/s "
                          f"({gain:.2f}x)")
        notes += ["", f"Mixed precision (per-layer bits in {params['mixed_bits']}, first/last "
                  f"16-bit, `{m['formulation']}`) {comparison} at "
                  + pipeline.bandwidth_label(params["mixed_bandwidth"], "unlimited bandwidth")
                  + f", after {int(m['trials'])} TPE trials.",
                  "", "**The accuracy here is a data-free PROXY** (output SQNR in dB from "
                  "per-layer quantization noise weighted by a noise-gain sensitivity measured on "
                  "random inputs of the randomly initialised zoo model), not a measured "
                  "accuracy; it ranks bit allocations, it does not predict top-1."]
    context = (f"{params['model']}, batch 1 (the search's), formulation {head}, "
               f"{params['trials']}-trial budget each")
    return Summary(
        title="Searched iso-area designs: PACT-SAWB vs. WRPN, and mixed precision (proxy)",
        intro=(f"{params['model']}, `dse.search` (a space no larger than the trial budget is "
               f"enumerated, each design once; else TPE); formulations "
               f"{', '.join(f'`{f}`' for f in forms)} (headline `{head}`), a {params['trials']}-"
               f"trial budget per (scheme, bandwidth, formulation), {params['mixed_trials']} "
               "TPE trials for the mixed-precision search. " + describe_params(params)),
        targets=targets,
        tables=tables,
        plots=(
            Plot("best_images_per_s.png", f"Best searched design per scheme ({head})",
                 iso[iso["formulation"] == head], x="dram_gbps", y="images_per_s",
                 hue="scheme", xlabel="DRAM bandwidth (GB/s)",
                 ylabel="images/s of the fastest design", logx=True, logy=True, legend=LEGEND,
                 context=context),
            Plot("speedup.png", "PACT-SAWB / WRPN, best designs", speedup, x="dram_gbps",
                 y="speedup", hue="formulation", xlabel="DRAM bandwidth (GB/s)",
                 ylabel="images/s of PACT-SAWB / images/s of WRPN (x)", logx=True,
                 legend=FORMULATION_LEGEND, legend_title="SRAM formulation", context=context),
        ),
        notes="\n".join(notes),
    )


def run(**kw: Any) -> pd.DataFrame:
    """`python -m dse.study wrpn_vs_pact_search` from Python (see dse.study.runner.run)."""
    return _run(sys.modules[__name__], **kw)

"""The architect's sweep: any zoo model and recipe over DRAM bandwidth x area x SRAM per core.

For each design (area budget, SRAM per core, or an explicit core count) and each bandwidth the
pipeline (zoo -> quant recipe -> workload -> simulate) gives the throughput surface; the summary
finds the bandwidth at which each design turns compute-bound:

* ``compute_bound_gbps``: the smallest swept bandwidth whose images/s is within ``knee_tolerance``
  (default 5%) of the design's best images/s over the sweep (its unlimited-bandwidth value when
  ``inf`` is swept);
* ``demand_gbps``: DRAM bytes / latency of the fastest run - the bandwidth the design consumes when
  it is not starved (a roofline ridge estimate independent of the sweep's resolution).

Every point runs at `pipeline.HEADLINE_MODE` and, for the ``throughput_by_fidelity`` table, in the
other simulator ``modes`` too (`by_fidelity`: per design the images/s at the smallest and the
largest swept bandwidth and the knee, in each mode).

Cores are sized by `arch.Accelerator.iso_area` for the area budget (the ``preset``'s array shape,
clock and node, the given SRAM per core), unless ``cores`` is given. Also ``python -m dse.sweep``.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import pandas as pd

from dse.study.report import Plot, Summary
from dse.study.runner import Context, expand_grid
from dse.study.runner import run as _run
from studies import pipeline
from studies._params import (
    check_bandwidths,
    check_batch,
    check_choice,
    check_int,
    check_positive,
    check_tuple_of,
    describe_params,
)

NAME = "bandwidth_area_sweep"
TITLE = "Throughput surface over DRAM bandwidth x area (x SRAM, cores) for any model and recipe"

PARAMS: dict[str, Any] = {
    "model": "alexnet",
    "recipe": "pact_sawb",
    "w_bits": 2,
    "a_bits": 2,
    "first_last_bits": None,
    "width": 1,
    "mac_bits": None,
    "bandwidth": (8.0, 16.0, 32.0, 64.0, 128.0, 256.0, math.inf),
    "area": ("0.5x", "1x", "2x"),
    "sram_kib": (256.0, 1024.0),
    "cores": None,
    "batch": pipeline.DEFAULT_BATCH,
    "high_precision": "configurable",
    "peak_scaling": "density",
    "preset": "sysml19",
    "knee_tolerance": 0.05,
    "modes": pipeline.SIM_MODES,
}
"""``area``: mm^2, or ``"<f>x"`` = f times the preset's iso-area budget (sysml19: the 8-core 16-bit
system). ``mac_bits=None``: (w_bits, a_bits). ``cores``: explicit core counts instead of area.
``modes``: the simulator modes (`studies.pipeline.SIM_MODES`) every point is also run in beside
the headline's `pipeline.HEADLINE_MODE`, for the ``throughput_by_fidelity`` table; only the
headline mode: no table, one simulation per point."""

DESIGN = ["area_budget_mm2", "sram_kib", "cores"]
"""The columns that name a design (one curve of the sweep)."""


def parse_area(value: Any, budget: float) -> float:
    """An area budget in mm^2 from a number or ``"<f>x"`` (a multiple of ``budget``)."""
    if isinstance(value, str) and value.strip().lower().endswith("x"):
        try:
            f = float(value.strip()[:-1])
        except ValueError:
            f = math.nan
        if not math.isfinite(f) or f <= 0:
            raise ValueError(f"area={value!r} is not allowed; expected mm^2 > 0 or '<f>x' with "
                             "f > 0 (a multiple of the preset's area budget)")
        return f * budget
    return float(check_positive(value, "area")[0])


def _mac_pair(value: Any, default: tuple[int, int]) -> tuple[int, int]:
    """``mac_bits``: None (``default``, the workload's w/a bits), bits, or (w_bits, a_bits)."""
    def bits(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 32

    if value is None:
        return default
    if bits(value):
        return (value, value)
    if isinstance(value, tuple | list) and len(value) == 2 and all(bits(v) for v in value):
        return (value[0], value[1])
    raise ValueError(f"mac_bits={value!r} is not allowed; expected None (w_bits x a_bits), bits "
                     "or (w_bits, a_bits), each an integer in 1..32")


def _budget(preset: str) -> float:
    """The area ``1x`` means: the preset's iso-area budget, or a design file's own area."""
    from arch import presets

    if pipeline.is_design_file(preset):
        from arch import io

        return float(io.load(preset).area)

    fn = getattr(presets, f"{preset}_area_budget", None)
    if fn is None:
        raise ValueError(f"preset={preset!r} has no area budget "
                         f"(arch.presets.{preset}_area_budget)")
    return float(fn())


def grid(params: dict[str, Any]) -> list[dict[str, Any]]:
    pipeline.check_model(params["model"])
    pipeline.check_recipe(params["recipe"])
    pipeline.check_preset(params["preset"])
    w, a = params["w_bits"], params["a_bits"]
    for f, v in (("w_bits", w), ("a_bits", a), ("width", params["width"])):
        check_int(f, v, 1, 32)
    mac = _mac_pair(params["mac_bits"], (w, a))
    check_int("first_last_bits", params["first_last_bits"], 1, 32, none="the recipe's bits")
    check_choice("high_precision", params["high_precision"], ("configurable", "bit_serial"))
    check_choice("peak_scaling", params["peak_scaling"], ("density", "doubling"))
    tol = params["knee_tolerance"]
    if not isinstance(tol, int | float) or not 0 < tol < 1:
        raise ValueError(f"knee_tolerance={tol!r} is not allowed; expected a number in (0, 1)")
    modes = check_tuple_of("modes", params["modes"], pipeline.SIM_MODES)
    fixed = {"model": params["model"], "recipe": params["recipe"], "w_bits": w, "a_bits": a,
             "first_last_bits": params["first_last_bits"], "width": params["width"],
             "mac_w_bits": int(mac[0]), "mac_a_bits": int(mac[1]),
             "batch": check_batch(params["batch"]), "high_precision": params["high_precision"],
             "peak_scaling": params["peak_scaling"], "preset": params["preset"],
             "modes": ",".join(m for m in pipeline.SIM_MODES if m in modes)}
    bws = check_bandwidths(params["bandwidth"])
    srams = check_positive(params["sram_kib"], "sram_kib")
    if params["cores"] is not None:
        cores = check_tuple_of("cores", params["cores"], ())
        for c in cores:
            if isinstance(c, bool) or not isinstance(c, int) or c < 1:
                raise ValueError(f"cores={params['cores']!r} is not allowed; "
                                 "expected integers >= 1")
        return expand_grid({"cores": cores, "sram_kib": srams, "dram_gbps": bws}, **fixed,
                           area_budget_mm2=None)
    budget = _budget(params["preset"])
    areas = tuple(parse_area(v, budget) for v in check_tuple_of("area", params["area"], ()))
    return expand_grid({"area_budget_mm2": areas, "sram_kib": srams, "dram_gbps": bws}, **fixed,
                       cores=None)


def evaluate(point: dict[str, Any], ctx: Context) -> list[dict[str, Any]]:
    import dataclasses

    from arch import Accelerator
    from dse import simulate

    wl = pipeline.workload_for(point["model"], point["recipe"], w_bits=point["w_bits"],
                               a_bits=point["a_bits"], first_last_bits=point["first_last_bits"],
                               width=point["width"], cache_dir=ctx.cache_dir)
    mac = (point["mac_w_bits"], point["mac_a_bits"])
    template = pipeline.accelerator(mac, point["dram_gbps"], preset=point["preset"],
                                    high_precision=point["high_precision"])
    fields = {f: getattr(template, f) for f in ("rows", "cols", "freq_ghz", "dataflow",
                                                "acc_bits", "dram_latency_ns", "node_nm",
                                                "high_precision", "dram_gbps")
              if hasattr(template, f)}
    if point["cores"] is not None:
        acc = dataclasses.replace(template, cores=point["cores"], sram_kib=point["sram_kib"])
    else:
        acc = Accelerator.iso_area(point["area_budget_mm2"], mac,
                                   peak_scaling=point["peak_scaling"],
                                   sram_kib=point["sram_kib"], **fields)
    acc = dataclasses.replace(acc, name=f"{acc.cores}c-{point['sram_kib']:g}KiB")
    row, head = pipeline.simulate_point(wl, acc, batch=point["batch"],
                                        **pipeline.sim_options(pipeline.HEADLINE_MODE))
    # the headline's layers: how many weight bytes prefetch stages on chip ahead of their layer
    staged = head.layers[head.layers["weights_prefetched"].astype(bool)]
    row["weights_staged_bytes"] = int(staged["dram_read_bytes_filter"].sum())
    modes = [m for m in point["modes"].split(",") if m != pipeline.HEADLINE_MODE]
    if modes:  # latency_s@MODE as `simulate_row(other_modes=True)` writes them, for these modes
        row[f"latency_s@{pipeline.HEADLINE_MODE}"] = row["latency_s"]
        for mode in modes:
            res = simulate(wl, acc, batch=point["batch"], **pipeline.sim_options(mode))
            row[f"latency_s@{mode}"] = res.latency_s
    return [row]


def knee_gbps(gbps: pd.Series, images_per_s: pd.Series, tolerance: float = 0.05,
              demand_gbps: float | None = None) -> float:
    """The smallest bandwidth of ``gbps`` whose ``images_per_s`` is within ``tolerance`` of the
    best of ``images_per_s`` (the two aligned by position).

    NaN when the sweep does not show one: the knee is the largest swept bandwidth, a finite one,
    and the run there uses all of it (``demand_gbps``, its DRAM bytes / latency, within
    ``tolerance`` of it) - the design is still DRAM-bound at the top of the sweep, so where it
    turns compute-bound lies above it (a single finite bandwidth would otherwise be its own
    knee)."""
    bw = gbps.to_numpy(dtype=float)
    ips = images_per_s.to_numpy()
    ok = ips >= (1 - tolerance) * ips.max()
    knee = float(bw[ok].min())
    top = float(bw.max())
    if knee == top and math.isfinite(top) and demand_gbps is not None \
            and demand_gbps >= (1 - tolerance) * top:
        return math.nan
    return knee


def knees(results: pd.DataFrame, tolerance: float = 0.05) -> pd.DataFrame:
    """Per design: best images/s, the bandwidth where it turns compute-bound, its demand."""
    rows = []
    for key, g in results.groupby(DESIGN, dropna=False, sort=True):
        g = g.sort_values("dram_gbps")
        best = g.loc[g["images_per_s"].idxmax()]
        fastest = g.iloc[-1]
        demand = float(fastest["dram_bytes"]) / float(fastest["latency_s"]) / 1e9
        knee = knee_gbps(g["dram_gbps"], g["images_per_s"], tolerance, demand)
        rows.append({"area_budget_mm2": key[0], "sram_kib": key[1], "cores": int(key[2]),
                     "area_mm2": float(best["area_mm2"]), "peak_tops": float(best["peak_tops"]),
                     "best_images_per_s": float(best["images_per_s"]),
                     "compute_bound_gbps": knee, "demand_gbps": demand,
                     "utilization_at_best": float(best["utilization"])})
    return pd.DataFrame(rows)


def design_labels(results: pd.DataFrame) -> pd.Series:
    """'<area> mm², <cores> cores, <sram> KiB/core' per row (no area when cores are given)."""
    label = results["cores"].astype(int).astype(str) + " cores, " + results["sram_kib"].map(
        lambda v: f"{v:g}") + " KiB/core"
    if results["area_budget_mm2"].notna().any():
        label = results["area_budget_mm2"].map(lambda v: f"{v:.3g} mm², ") + label
    return label


def _gbps(v: float) -> str:
    """A swept bandwidth, or a knee (NaN: above the sweep, `knee_gbps`)."""
    if math.isnan(v):
        return "above the sweep"
    return pipeline.bandwidth_label(v)


def mode_images_per_s(results: pd.DataFrame) -> pd.DataFrame | None:
    """images/s of every point in each simulator mode (batch / ``latency_s@MODE``, the
    `SimResult` definition), one column per mode in `pipeline.SIM_MODES` order; None when the
    points were run in one mode only."""
    return pipeline.mode_columns(results, "dram_gbps", lambda r, col: r["batch"] / r[col])


def by_fidelity(results: pd.DataFrame, tolerance: float = 0.05) -> pd.DataFrame | None:
    """The sweep's answer per design in each simulator mode: images/s at the smallest and at the
    largest swept bandwidth, and ``compute_bound_gbps`` (`knee_gbps` of that mode's own images/s
    over the sweep). One row per design and quantity, one column per mode; None without
    ``latency_s@MODE`` columns."""
    if mode_images_per_s(results) is None:
        return None
    rows = []
    for _, g in results.groupby(DESIGN, dropna=False, sort=True):
        g = g.sort_values("dram_gbps")
        ips = mode_images_per_s(g)
        modes = [c for c in ips.columns if c != "dram_gbps"]
        design = design_labels(g).iloc[0]
        for i in dict.fromkeys((0, len(g) - 1)):  # one row when one bandwidth is swept
            at = _gbps(g["dram_gbps"].iloc[i])
            rows.append({"design": design, "quantity": f"images/s at {at}",
                         **{m: float(ips[m].iloc[i]) for m in modes}})
        top = g.iloc[-1]  # each mode's demand at the top of the sweep: its own latency there
        rows.append({"design": design, "quantity": "compute_bound_gbps",
                     **{m: knee_gbps(g["dram_gbps"], ips[m], tolerance,
                                     float(top["dram_bytes"]) * float(ips[m].iloc[-1])
                                     / float(top["batch"]) / 1e9) for m in modes}})
    return pd.DataFrame(rows)


def _fidelity_notes(results: pd.DataFrame, table: pd.DataFrame | None) -> str:
    """Markdown under the ``throughput_by_fidelity`` table: how far each mode moves the images/s
    of the whole surface (`pipeline.fidelity_note`), where the move is largest, which knees move,
    and per design the weights prefetch stages against what dropping it costs."""
    surface = mode_images_per_s(results)
    if table is None or surface is None:
        return ""
    head = pipeline.HEADLINE_MODE
    others = [m for m in surface.columns if m not in ("dram_gbps", head)]
    move = pd.DataFrame({m: surface[m] / surface[head] - 1 for m in others})
    i, mode = move.abs().stack().idxmax()
    labels = design_labels(results)
    text = (pipeline.fidelity_note(surface, "the images/s of the whole surface",
                                   name="throughput_by_fidelity")
            + f" The largest move is `{mode}` for {labels.iloc[i]} at "
            f"{_gbps(results['dram_gbps'].iloc[i])}: {move.at[i, mode]:+.1%}.")
    unlimited = results["dram_gbps"].to_numpy() == math.inf
    if unlimited.any():
        text += (" At unlimited bandwidth the modes agree within "
                 f"{move[unlimited].abs().to_numpy().max():.1%}: neither prefetch nor per-tile "
                 "DRAM contention matters when loads never wait.")
    knee = table[table["quantity"] == "compute_bound_gbps"].set_index("design")
    moved = [f"{d}: {', '.join(f'`{m}` {_gbps(knee.at[d, m])}' for m in others)} vs. "
             f"{_gbps(knee.at[d, head])}" for d in knee.index
             if not all(_gbps(knee.at[d, m]) == _gbps(knee.at[d, head]) for m in others)]
    text += (" The knee (`compute_bound_gbps`, each mode against its own best images/s) "
             + ("moves for " + "; ".join(moved) + "." if moved else "is the same in every mode."))
    pairs = [(t, f) for t, f in (("tile+prefetch", head), ("tile", "layer"))
             if t in surface and f in surface]
    if pairs:
        tile = max(float((surface[t] / surface[f] - 1).abs().max()) for t, f in pairs)
        text += (f" Tile fidelity moves no point by more than {tile:.1%} against layer fidelity "
                 "with the same prefetch: with double buffering a layer's tiles pipeline "
                 "cleanly, and layer fidelity's lock-step pipeline is exact for that "
                 "(docs/simulator.md).")
    if "layer" not in move or "weights_staged_bytes" not in results:
        return text
    per_design = []
    rows = results.assign(label=labels.to_numpy(), drop=move["layer"].to_numpy())
    for _, g in rows.groupby(DESIGN, dropna=False, sort=True):
        worst = g.loc[g["drop"].abs().idxmax()]
        per_design.append(f"{worst['label']}: {worst['weights_staged_bytes'] / 2**20:.1f} MiB "
                          f"staged, `layer` {worst['drop']:+.1%} at {_gbps(worst['dram_gbps'])}")
    total = float(results["workload_weight_bytes"].iloc[0]) / 2**20
    return text + (
        "\n\n**Why it moved here.** Prefetch stages a layer's weights on chip ahead of it when "
        "they fit beside the resident activations and every earlier step's tile reserve in every "
        "core (docs/simulator.md, \"Prefetch across layers\"), so how much it is worth depends on "
        f"how much of the {total:.1f} MiB of weights a design can stage, and on how long the "
        "weights would otherwise hold up their layer. Per design, the weights the headline "
        "stages and the largest change without prefetch: " + "; ".join(per_design) + ".")


def summarize(results: pd.DataFrame, params: dict[str, Any]) -> Summary:
    table = knees(results, params["knee_tolerance"])
    modes = by_fidelity(results, params["knee_tolerance"])
    data = results.assign(design=design_labels(results))
    bits = f"W{params['w_bits']}A{params['a_bits']}"
    wide = f" {params['width']}x" if params["width"] > 1 else ""
    recipe = params["recipe"].upper().replace("_", "-")  # pact_sawb -> PACT-SAWB
    context = f"{params['model']}{wide}, {recipe} {bits}, batch {params['batch']}"
    return Summary(
        title=f"Bandwidth x area sweep: {params['model']} with {params['recipe']}",
        intro=("Throughput surface of iso-area designs over DRAM bandwidth. "
               + describe_params(params)),
        tables={"compute_bound": table,
                **({"throughput_by_fidelity": modes} if modes is not None else {})},
        plots=(Plot("images_per_s.png", "Throughput vs. DRAM bandwidth", data, x="dram_gbps",
                    y="images_per_s", hue="design", xlabel="DRAM bandwidth (GB/s)",
                    ylabel="images/s", logx=True, logy=True, legend_title="design",
                    context=context),
               Plot("utilization.png", "MAC utilization vs. DRAM bandwidth", data,
                    x="dram_gbps", y="utilization", hue="design",
                    xlabel="DRAM bandwidth (GB/s)",
                    ylabel="MAC utilization (useful MACs / peak MAC slots)", logx=True,
                    legend_title="design", context=context)),
        notes=(f"`compute_bound_gbps`: smallest swept bandwidth within "
               f"{params['knee_tolerance']:.0%} of the design's best images/s; `demand_gbps`: "
               "DRAM bytes / latency of the fastest run (the bandwidth it consumes unstarved)."
               + (f" Empty for {int(table['compute_bound_gbps'].isna().sum())} design(s) still "
                  "DRAM-bound at the largest swept bandwidth (demand within "
                  f"{params['knee_tolerance']:.0%} of it): the knee lies above the sweep; "
                  "sweep higher bandwidths or `inf`." if table["compute_bound_gbps"].isna().any()
                  else "")
               + ("\n\n`throughput_by_fidelity`: the headline (images/s at the smallest and the "
                  "largest swept bandwidth, and `compute_bound_gbps`) per design in each "
                  "simulator mode; every point of the sweep runs in all of them.\n\n"
                  + _fidelity_notes(results, modes) if modes is not None else "")),
    )


def run(**kw: Any) -> pd.DataFrame:
    """`python -m dse.study bandwidth_area_sweep` from Python (see dse.study.runner.run)."""
    return _run(sys.modules[__name__], **kw)

"""Quantization Networks on a Xilinx VU9P: time and space relative to binary (TARGETS 5).

Paper: Yang et al., "Quantization Networks" (CVPR 2019), Table 7: inference time / space on a
VU9P FPGA relative to the binary network (W1A1): ternary (W2A2) 1.4x / 2x, full precision
45x / 32x. The paper does not name the network of Table 7; its ablations next to it (Table 6,
Fig. 3) use ResNet-18, the headline here. AlexNet, the paper's other network (Table 1), runs
beside it: how far the ratios depend on the network is part of the answer.

Here: the network quantized by the `qn` recipe at W1A1 and W2A2 (every layer, first and last
included, so the space ratios are the bit ratios), and the unquantized network at FP32, each run
by the simulator on `arch.presets.vu9p(bits)`: as many PE arrays of that precision's MACs as the
VU9P's LUTs or DSPs allow (`arch.fpga`), its block RAM and UltraRAM as the buffers, four DDR4
channels. Time = simulated latency of a batch; space = weight bits (the model's size).

Besides the headline (every layer at the scheme's bits, as Table 7's exact space ratios imply),
`first_last_fp32` estimates the paper's training setup (Sec. 4.1: first conv and last FC
unquantized): those two layers at their simulated FP32 time, the rest at its low-bit time, on
separate datapaths or sharing the device's LUTs (`arch.fpga.FpgaDesign.sharing`).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import pandas as pd

from dse.study.report import Summary, Target
from dse.study.runner import Context
from dse.study.runner import run as _run
from studies import pipeline
from studies._params import check_batch, check_tuple_of, describe_params

NAME = "qn_fpga"
TITLE = "Quantization Networks Table 7: W1A1 / W2A2 / FP32 time and space on a VU9P FPGA"

PAPER = {"ternary": (1.4, 2.0), "full-precision": (45.0, 32.0)}
"""Table 7: scheme -> (time, space) relative to binary."""
SCHEMES = {(1, 1): "binary", (2, 2): "ternary", (32, 32): "full-precision"}
SOURCE = "Quantization Networks (CVPR'19) Table 7"
TABLE7 = tuple(SCHEMES.values())
"""Table 7's schemes in its order: binary, ternary, full-precision."""

PARAMS: dict[str, Any] = {
    "model": ("resnet18", "alexnet"),
    "recipe": "qn",
    "bits": ((1, 1), (2, 2), (32, 32)),
    "batch": pipeline.DEFAULT_BATCH,
}


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, int) and not isinstance(v, bool):
        return (v, v)
    if isinstance(v, tuple | list) and len(v) == 2 and all(isinstance(b, int) for b in v):
        return (int(v[0]), int(v[1]))
    raise ValueError(f"bits entry {v!r} is not allowed; expected bits or (w_bits, a_bits)")


def grid(params: dict[str, Any]) -> list[dict[str, Any]]:
    from arch import presets

    models = [pipeline.check_model(m) for m in check_tuple_of("model", params["model"], ())]
    pipeline.check_recipe(params["recipe"])
    design = presets.vu9p_design()
    # 1 and (1, 1) are one precision: one design point each
    bits = list(dict.fromkeys(_pair(v) for v in check_tuple_of("bits", params["bits"], ())))
    for b in bits:
        design.mac_count(b)  # ValueError: a precision the device has no cost for, or no MAC
    if (1, 1) not in bits:
        raise ValueError(f"bits={params['bits']!r} is not allowed; Table 7 is relative to the "
                         "binary network, so (1, 1) must be among them")
    batch = check_batch(params["batch"])
    return [{"model": m, "recipe": params["recipe"] if b != (32, 32) else "fp32",
             "w_bits": b[0], "a_bits": b[1], "scheme": SCHEMES.get(b, f"W{b[0]}A{b[1]}"),
             "batch": batch} for m in models for b in bits]


FP32 = (32, 32)


def _first_last_s(workload: Any, res: Any, acc: Any) -> float:
    """Simulated time of the network's first and last compute layers in ``res`` (the run of
    ``workload`` on ``acc``), seconds (each layer's own cycles: they run alone in the
    layer-serial schedule)."""
    names = [lay.name for lay in workload.compute_layers()]
    ends = res.layers[res.layers["name"].isin({names[0], names[-1]})]
    return float(ends["total_cycles"].sum()) / (acc.freq_ghz * 1e9)


def evaluate(point: dict[str, Any], ctx: Context) -> list[dict[str, Any]]:
    from arch import presets

    w, a = point["w_bits"], point["a_bits"]
    wl = pipeline.workload_for(point["model"], point["recipe"], w_bits=w, a_bits=a,
                               first_last_bits=w if w == a else None, cache_dir=ctx.cache_dir)
    acc = presets.vu9p((w, a))
    row, sim = pipeline.simulate_point(wl, acc, batch=point["batch"], other_modes=True)
    row["area_mm2"] = math.nan  # an FPGA spends LUTs and DSPs (the fpga_* columns), not mm^2
    design = presets.vu9p_design()
    res = design.resources((w, a))
    row.update({f"fpga_{k}": v for k, v in res.items() if k not in ("mac_w_bits", "mac_a_bits")})
    row["weight_bits"] = int(sum(lay.weight_elems * lay.w_bits for lay in wl.compute_layers()))
    row["peak_gmacs"] = acc.peak_macs_per_s / 1e9
    row["first_last_s"] = _first_last_s(wl, sim, acc)
    beside = design.sharing(FP32) if (w, a) != FP32 and FP32 in design.precisions else None
    row["fpga_macs_beside_fp32"] = beside.resources((w, a))["macs"] if beside else math.nan
    return [row]


def derive(results: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """Time and space over the binary network of the same model; and the paper's training setup
    (Sec. 4.1: first conv and last FC unquantized) as an estimate: those two layers take their
    FP32 time (from the FP32 run), the rest its low-bit time, on separate datapaths
    (``time_fl32_vs_binary``) or on one device whose LUTs the FP32 datapath shares
    (``time_fl32_shared_vs_binary``: the low-bit part slowed by its lost MACs)."""
    binary = results[(results["w_bits"] == 1) & (results["a_bits"] == 1)].set_index("model")
    base_t = binary.loc[results["model"], "latency_s"].to_numpy()
    base_s = binary.loc[results["model"], "weight_bits"].to_numpy()
    base_p = binary.loc[results["model"], "peak_gmacs"].to_numpy()
    out = results.assign(time_vs_binary=results["latency_s"] / base_t,
                         space_vs_binary=results["weight_bits"] / base_s,
                         peak_ratio_vs_binary=base_p / results["peak_gmacs"])
    fp = results[(results["w_bits"] == 32) & (results["a_bits"] == 32)].set_index("model")
    if fp.empty:
        return out
    is_fp = (out["w_bits"] == 32) & (out["a_bits"] == 32)
    fl32 = fp.reindex(out["model"])["first_last_s"].to_numpy()
    rest = out["latency_s"] - out["first_last_s"]
    slow = out["fpga_macs"] / out["fpga_macs_beside_fp32"]
    out["latency_fl32_s"] = (rest + fl32).where(~is_fp, out["latency_s"])
    out["latency_fl32_shared_s"] = (rest * slow + fl32).where(~is_fp, out["latency_s"])
    for col, name in (("latency_fl32_s", "time_fl32_vs_binary"),
                      ("latency_fl32_shared_s", "time_fl32_shared_vs_binary")):
        base = out[(out["w_bits"] == 1) & (out["a_bits"] == 1)].set_index("model")[col]
        out[name] = out[col] / base.reindex(out["model"]).to_numpy()
    return out


FINN_R_AWS_F1_TOPS = 50.0
"""FINN-R (Blott et al., TRETS 2018, abstract): 50 TOp/s measured on AWS F1 (a VU9P) for a
reduced-precision network; two ops per MAC."""


def _x(ratio: float) -> str:
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:.0f}x"


def _bracket(sel: pd.DataFrame) -> str:
    """Whether the paper's time ratios lie between the all-quantized run and the first/last-FP32
    estimates (``sel``: one model, by scheme)."""
    said = []
    for scheme in ("ternary", "full-precision"):
        r = sel.loc[scheme]
        ends = [float(r["time_vs_binary"]), float(r["time_fl32_vs_binary"]),
                float(r["time_fl32_shared_vs_binary"])]
        inside = min(ends) <= PAPER[scheme][0] <= max(ends)
        said.append(f"the paper's {scheme} {PAPER[scheme][0]:g}x lies "
                    f"{'between' if inside else 'outside'} the two setups' "
                    f"{_x(min(ends))}-{_x(max(ends))}")
    return "So " + " and ".join(said) + "."


def shared_share(ratio: float, paper: float) -> float:
    """The share x of the binary network's time that would have to be precision-independent
    (the same in both networks) for a modelled time ratio ``ratio`` to read as ``paper``:
    T / B = x + (1 - x) * ratio = paper, so x = (ratio - paper) / (ratio - 1). An analysis of
    Table 7, never applied to the model."""
    return (ratio - paper) / (ratio - 1.0)


def _consistency(sel: pd.DataFrame) -> str:
    """Whether Table 7's two time ratios ask for the same precision-independent share of the
    binary time (``sel``: one model, by scheme): each ratio's share, and what it predicts for
    the other ratio."""
    r_t = float(sel.at["ternary", "time_vs_binary"])
    r_f = float(sel.at["full-precision", "time_vs_binary"])
    p_t, p_f = PAPER["ternary"][0], PAPER["full-precision"][0]
    x_t, x_f = shared_share(r_t, p_t), shared_share(r_f, p_f)
    return ("\n\n**Table 7's two time ratios ask for one shared part.** If a share x of the "
            "binary network's time were the same at every precision (work outside the MAC "
            "arrays), the modelled ratio r would read x + (1 - x) r. The paper's ternary "
            f"{p_t:g}x asks for x = {x_t:.2f}, which puts full precision at "
            f"{x_t + (1 - x_t) * r_f:.1f}x (paper {p_f:g}x); its full-precision {p_f:g}x asks "
            f"for x = {x_f:.2f}, which puts ternary at {x_f + (1 - x_f) * r_t:.2f}x (paper "
            f"{p_t:g}x). So the MAC costs of the model agree with both columns of Table 7 once "
            f"{min(x_t, x_f):.0%}-{max(x_t, x_f):.0%} of the binary time is precision-"
            "independent; the paper does not describe its design, so no such part is modelled "
            "(it would be a constant chosen to meet the bands).")


def _explain(sel: pd.DataFrame) -> str:
    """The notes' explanation, with the numbers of this run (``sel``: one model, by scheme)."""
    def cost(scheme: str) -> str:
        r = sel.loc[scheme]
        parts = [f"{r['fpga_luts_per_mac']:.3g} LUTs"] if r["fpga_binding"] == "luts" else []
        if r["fpga_dsps_per_mac"]:
            parts.append(f"{r['fpga_dsps_per_mac']:g} DSPs")
        return " + ".join(parts)

    text = ("The VU9P design instantiates as many MACs of each precision as 70% of the LUTs or "
            "DSPs allow (`arch.presets.vu9p`; every cost with its source in docs/arch.md): "
            + ", ".join(f"{s} {cost(s)}" for s in sel.index)
            + " per MAC (the LUT-built MACs by FINN-R's cost model, the FP32 MAC as in Zhang et "
            "al., FPGA 2015). The utilization and the clock are the same at every precision and "
            "cancel out of the ratios; the time ratio follows the peak ratio, moved by how busy "
            "each design's arrays are (many 64x64 arrays map the small late layers worse).")
    if "binary" in sel.index:
        b = sel.loc["binary"]
        text += (f" Scale check: the binary design's peak, {b['peak_gmacs'] / 1e3:.1f} TMAC/s, "
                 f"is {2 * b['peak_gmacs'] / 1e3 / FINN_R_AWS_F1_TOPS:.2f}x the "
                 f"{FINN_R_AWS_F1_TOPS:g} TOp/s FINN-R measured on a VU9P (AWS F1).")
    if "ternary" in sel.index:
        t = sel.loc["ternary"]
        text += (f"\n\n**Ternary** ({t['time_vs_binary']:.2f}x, paper 1.4x): in FINN-R's model "
                 "both the multiplier and the adder tree of a LUT-built MAC grow with w + a, so a "
                 f"W2A2 MAC costs {t['peak_ratio_vs_binary']:.2f}x the LUTs of a W1A1 one and "
                 "the all-quantized network's time follows. 1.4x would need a W2A2 MAC at 1.4x "
                 "the binary cost, which no cited design gives, or a part of the time that both "
                 "share (the first/last-layer estimate below). Both designs leave the DSPs "
                 "idle; packing four <= 4-bit MACs into each (FINN's RTL unit) would bring the "
                 "peak ratio to 1.77-1.91x (docs/arch.md), still above 1.4x.")
    if "full-precision" in sel.index and "binary" in sel.index:
        f, b = sel.loc["full-precision"], sel.loc["binary"]
        dram_share = float(f["dram_busy_s"] / f["latency_s"])
        text += (f"\n\n**Full precision** ({f['time_vs_binary']:.1f}x, paper 45x): the DSPs "
                 f"hold {int(f['fpga_macs']):,} FP32 MACs against {int(b['fpga_macs']):,} binary "
                 f"MACs in LUTs (peak ratio {f['peak_ratio_vs_binary']:.0f}x). The FP32 run is "
                 f"compute-bound, not DRAM-bound: it moves {f['dram_bytes'] / 1e6:.0f} MB and the "
                 f"DRAM is busy {dram_share:.1%} of its {f['latency_s'] * 1e3:.1f} ms, so the 32x "
                 "larger weights do not set its time.")
    if "time_fl32_vs_binary" in sel.columns and "ternary" in sel.index:
        t, f = sel.loc["ternary"], sel.loc["full-precision"]
        text += ("\n\n**The paper's training setup** (Sec. 4.1: the first conv and the last FC "
                 "stay full precision) gives both low-bit networks an FP32 part that the binary "
                 "design cannot speed up. Estimated from the simulated layer times (table "
                 "`first_last_fp32`): those two layers on the FP32 datapath, the rest on the "
                 f"low-bit arrays, ternary {t['time_fl32_vs_binary']:.2f}x and full precision "
                 f"{f['time_fl32_vs_binary']:.1f}x with separate datapaths; "
                 f"{t['time_fl32_shared_vs_binary']:.2f}x and "
                 f"{f['time_fl32_shared_vs_binary']:.1f}x with both on one device (the FP32 "
                 "datapath's LUTs taken from the low-bit arrays). "
                 + _bracket(sel) + " Not the headline: Table 7's space ratios are exactly 2x and "
                 "32x, which holds only with every layer at the scheme's bits, and the paper does "
                 "not say which network it timed.")
    if {"ternary", "full-precision"} <= set(sel.index):
        text += _consistency(sel)
    return text + ("\n\nSpace is the weight bits: exactly the bit ratio when every layer is "
                   "quantized, as Table 7's 2x and 32x are.")


def _time_why(sel: pd.DataFrame, scheme: str) -> str:
    """Why ``scheme``'s time ratio misses Table 7's (``sel``: one model's results by scheme):
    the MACs each design holds set the peak ratio the time follows (the notes' long form)."""
    if "binary" not in sel.index:
        return ""
    r, b = sel.loc[scheme], sel.loc["binary"]
    held = (f"the VU9P holds {int(r['fpga_macs']):,} {scheme} MACs in "
            f"{'DSPs' if r['fpga_binding'] == 'dsps' else 'LUTs'} against "
            f"{int(b['fpga_macs']):,} binary ones, a {_x(r['peak_ratio_vs_binary'])} peak ratio "
            "the time follows")
    if scheme == "ternary":
        return held + " (FINN-R's LUT cost grows with w + a)"
    return held + (" (5 DSPs per FP32 MAC as in Zhang et al. and AutoSA's UltraScale+ design; "
                   f"the DRAM is busy {float(r['dram_busy_s'] / r['latency_s']):.1%} of the run)")


def _other_networks(results: pd.DataFrame, head: str) -> str:
    """The time ratios of the networks beside the headline one, and how busy each design's
    arrays are on them (the ratios are a network's, not the device's alone)."""
    said = []
    for model, rows in results[results["model"] != head].groupby("model", sort=False):
        by = rows.set_index("scheme")
        if not set(TABLE7) <= set(by.index):
            continue
        said.append(f"{model}: ternary {by.at['ternary', 'time_vs_binary']:.2f}x and full "
                    f"precision {_x(by.at['full-precision', 'time_vs_binary'])}, the arrays "
                    + ", ".join(f"{by.at[s, 'utilization']:.0%}" for s in TABLE7)
                    + " busy (binary, ternary, FP32)")
    if not said:
        return ""
    h = results[results["model"] == head].set_index("scheme")
    return ("\n\n**Other networks** (same designs, not the headline): " + "; ".join(said)
            + f". On {head} the arrays are " + ", ".join(
                f"{h.at[s, 'utilization']:.0%}" for s in TABLE7 if s in h.index)
            + " busy. The binary design has twice the ternary design's arrays and maps a "
            "network's small layers (few output pixels at the batch, fully connected layers) "
            "worse, so a network with more such work shows a smaller ratio than the peak ratio; "
            "Table 7 does not say which network it timed.")


def _intro(results: pd.DataFrame) -> str:
    """What ran: each scheme with its bits (the quantized ones by the `qn` recipe, every layer
    quantized), each on the VU9P sized for its MACs."""
    runs = results.drop_duplicates("scheme")
    said = [f"{r.scheme} (W{r.w_bits}A{r.a_bits}"
            + (", unquantized)" if r.recipe == "fp32" else f", `{r.recipe}` recipe)")
            for r in runs.itertuples()]
    return ("Networks " + ", ".join(said) + ", every layer at the scheme's bits, each on the "
            "VU9P sized for its MACs (`arch.presets.vu9p`).")


def summarize(results: pd.DataFrame, params: dict[str, Any]) -> Summary:
    cols = ["model", "scheme", "w_bits", "a_bits", "fpga_macs", "fpga_binding",
            "fpga_lut_fraction", "fpga_dsp_fraction", "peak_gmacs", "latency_s", "utilization",
            "dram_bytes", "time_vs_binary", "space_vs_binary", "peak_ratio_vs_binary",
            "fpga_luts_per_mac"]
    table = results[cols].reset_index(drop=True)
    head = check_tuple_of("model", params["model"], ())[0]
    sel = table[table["model"] == head].set_index("scheme")
    full = results[results["model"] == head].set_index("scheme")
    bands = {"ternary": ((1.2, 1.8), (2.0, 2.0)), "full-precision": ((30.0, 60.0), (32.0, 32.0))}
    targets: list[Target] = []
    for scheme, ((tlo, thi), (slo, shi)) in bands.items():
        if scheme not in sel.index:
            continue
        t, s = PAPER[scheme]
        targets.append(Target(f"{scheme} time vs. binary ({head})",
                              float(sel.at[scheme, "time_vs_binary"]), tlo, thi,
                              paper=f"{t:g}x", source=SOURCE, unit="x",
                              why=_time_why(full, scheme)))
        targets.append(Target(f"{scheme} space vs. binary ({head})",
                              float(sel.at[scheme, "space_vs_binary"]), slo, shi,
                              paper=f"{s:g}x", source=SOURCE, unit="x"))
    lines = [f"{r.scheme}: {r.fpga_macs:,} MACs ({r.fpga_binding} bind), peak ratio to binary "
             f"{r.peak_ratio_vs_binary:.1f}x, time {r.time_vs_binary:.2f}x"
             for r in sel.reset_index().itertuples()]
    rows = results[results["model"] == head]
    binary = rows[(rows["w_bits"] == 1) & (rows["a_bits"] == 1)].iloc[0]
    modes = pipeline.mode_columns(rows, "scheme", lambda r, col: r[col] / binary[col])
    notes = ("## What sets the time ratios\n\n" + "; ".join(lines) + ".\n\n" + _explain(full)
             + _other_networks(results, head))
    fl_cols = ["model", "scheme", "first_last_s", "latency_s", "latency_fl32_s",
               "latency_fl32_shared_s", "fpga_macs", "fpga_macs_beside_fp32", "time_vs_binary",
               "time_fl32_vs_binary", "time_fl32_shared_vs_binary"]
    first_last = (results[fl_cols].reset_index(drop=True)
                  if "time_fl32_vs_binary" in results.columns else None)
    return Summary(
        title="Quantization Networks on the VU9P FPGA, Table 7 (TARGETS 5)",
        intro=(_intro(results) + " " + describe_params(params)),
        targets=tuple(targets),
        tables={"table7": table,
                **({"first_last_fp32": first_last} if first_last is not None else {}),
                **({"time_by_fidelity": modes} if modes is not None else {})},
        notes=notes + ("\n\n" + pipeline.fidelity_note(modes, "the time relative to binary",
                                                        name="time_by_fidelity")
                       if modes is not None else ""),
        headline=("table7",),
    )


def run(**kw: Any) -> pd.DataFrame:
    """`python -m dse.study qn_fpga` from Python (see dse.study.runner.run)."""
    return _run(sys.modules[__name__], **kw)

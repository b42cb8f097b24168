"""The area model beside the papers' numbers (TARGETS 2 Fig. 7b and TARGETS 3). No simulation.

* MAC density vs. precision: PACT-SAWB (SysML'19) Sec. 7.1, Fig. 7b, "~14x improvement in density
  when the bit-precision of both activations and weights are uniformly reduced from 16 to 2-bits".
* Iso-area systems of the paper's template: peak 8 TOPS (16-bit) ... 64 TOPS (2-bit), Sec. 7.1.
* LLSQ (ICLR 2020) Sec. 4.3, Table 5: 32x7-PE integer accelerators at 40 nm, area 4.71 / 2.80 /
  1.84 mm^2 at 8 / 4 / 2 bits, i.e. 1 : 0.59 : 0.39.
"""

from __future__ import annotations

import sys
from typing import Any

import pandas as pd

from dse.study.report import Plot, Summary, Target
from dse.study.runner import Context
from dse.study.runner import run as _run
from studies._params import check_tuple_of, describe_params

NAME = "mac_area"
TITLE = "MAC density vs. precision (Fig. 7b), iso-area peak, LLSQ 8/4/2-bit area ratios (Table 5)"

PARAMS: dict[str, Any] = {
    "mac_bits": ((16, 16), (8, 8), (4, 4), (2, 2), (2, 4), (2, 8), (4, 8), (1, 1), (1, 2),
                 (16, 2), (8, 2)),
    "llsq_bits": (8, 4, 2),
    "system_bits": (16, 8, 4, 2),
    "peak_scaling": ("doubling", "density"),
}

CODE = ("arch", "studies/mac_area.py")
"""The code its points depend on (the runner's cache fingerprint): the area model only."""

LLSQ_AREA_MM2 = {8: 4.71, 4: 2.80, 2: 1.84}
"""LLSQ Table 5 (40 nm, 800 MHz, 224 PEs with 16-bit accumulators)."""
LLSQ_SOURCE = "LLSQ (ICLR'20) Sec. 4.3, Table 5"
SYSML_SOURCE = "PACT-SAWB (SysML'19) Sec. 7.1, Fig. 7b"


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, int) and not isinstance(v, bool):
        return (v, v)
    if (isinstance(v, tuple | list) and len(v) == 2
            and all(isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= 32 for b in v)):
        return (int(v[0]), int(v[1]))
    raise ValueError(f"mac_bits entry {v!r} is not allowed; expected bits or (w_bits, a_bits) "
                     "in 1..32")


def grid(params: dict[str, Any]) -> list[dict[str, Any]]:
    pairs = dict.fromkeys(_pair(v) for v in check_tuple_of("mac_bits", params["mac_bits"], ()))
    llsq = check_tuple_of("llsq_bits", params["llsq_bits"], tuple(LLSQ_AREA_MM2))
    sysb = check_tuple_of("system_bits", params["system_bits"], (1, 2, 4, 8, 16))
    scalings = check_tuple_of("peak_scaling", params["peak_scaling"], ("doubling", "density"))
    points: list[dict[str, Any]] = [{"kind": "mac", "w_bits": w, "a_bits": a} for w, a in pairs]
    points += [{"kind": "llsq", "w_bits": b, "a_bits": b} for b in llsq]
    points += [{"kind": "system", "w_bits": b, "a_bits": b, "peak_scaling": s}
               for s in scalings for b in sysb]
    return points


def evaluate(point: dict[str, Any], ctx: Context) -> list[dict[str, Any]]:
    from arch import presets
    from arch.area import mac_area

    w, a = point["w_bits"], point["a_bits"]
    if point["kind"] == "mac":
        rel = mac_area(w, a)
        return [{"mac_area_rel": rel, "density_vs_16bit": 1.0 / rel}]
    if point["kind"] == "llsq":
        acc = presets.llsq40nm(w)
        return [{"area_mm2": acc.area, "paper_area_mm2": LLSQ_AREA_MM2[w], "cores": acc.cores,
                 "rows": acc.rows, "cols": acc.cols, "peak_tops": acc.peak_ops_per_s / 1e12}]
    acc = presets.sysml19(mac_bits=(w, a), peak_scaling=point["peak_scaling"])
    return [{"cores": acc.cores, "area_mm2": acc.area, "peak_tops": acc.peak_ops_per_s / 1e12,
             "sram_total_mib": acc.sram_bytes_total / 2**20}]


def summarize(results: pd.DataFrame, params: dict[str, Any]) -> Summary:
    mac = results[results["kind"] == "mac"][["w_bits", "a_bits", "mac_area_rel",
                                             "density_vs_16bit"]].reset_index(drop=True)
    targets: list[Target] = []
    d22 = mac[(mac["w_bits"] == 2) & (mac["a_bits"] == 2)]["density_vs_16bit"]
    if len(d22):
        targets.append(Target("MAC density 16->2 bit", float(d22.iloc[0]), 12.6, 15.4,
                              paper="~14x", source=SYSML_SOURCE, unit="x"))
    llsq = results[results["kind"] == "llsq"][["w_bits", "area_mm2", "paper_area_mm2", "cores",
                                               "rows", "cols", "peak_tops"]]
    llsq = llsq.rename(columns={"w_bits": "bits"}).reset_index(drop=True)
    if 8 in set(llsq["bits"]):
        ref = float(llsq.loc[llsq["bits"] == 8, "area_mm2"].iloc[0])
        llsq = llsq.assign(ratio=llsq["area_mm2"] / ref, paper_ratio=llsq["paper_area_mm2"]
                           / LLSQ_AREA_MM2[8])
        for _, r in llsq[llsq["bits"] != 8].iterrows():
            p = float(r["paper_ratio"])
            targets.append(Target(f"LLSQ area ratio {int(r['bits'])}-bit / 8-bit",
                                  float(r["ratio"]), 0.85 * p, 1.15 * p, paper=f"{p:.2f}",
                                  source=LLSQ_SOURCE))
    systems = results[results["kind"] == "system"][["peak_scaling", "w_bits", "cores",
                                                    "peak_tops", "area_mm2", "sram_total_mib"]]
    systems = systems.rename(columns={"w_bits": "mac_bits"}).reset_index(drop=True)
    for bits, paper_tops in ((16, 8.0), (2, 64.0)):  # Sec. 7.1: "from 8 to 64 TOPs"
        sel = systems[(systems["peak_scaling"] == "doubling") & (systems["mac_bits"] == bits)]
        if len(sel):
            targets.append(Target(f"iso-area peak at {bits}-bit (doubling)",
                                  float(sel["peak_tops"].iloc[0]), 0.95 * paper_tops,
                                  1.05 * paper_tops, paper=f"{paper_tops:g} TOPS",
                                  source="PACT-SAWB (SysML'19) Sec. 7.1", unit=" TOPS"))
    uniform = mac[mac["w_bits"] == mac["a_bits"]]
    return Summary(
        title="Area model vs. the papers (TARGETS 2 Fig. 7b, TARGETS 3 Table 5)",
        intro=("MAC area a(w, a) = w*a + 1.146*(w + a) + 13.27, normalised to a(16, 16) "
               "(arch.area; fitted to PACT-SAWB Fig. 7b's 14x and Bit Fusion's 3.2x at 8-bit). "
               + describe_params(params)),
        targets=tuple(targets),
        tables={"mac_density": mac, "llsq_area": llsq, "iso_area_systems": systems},
        plots=(Plot("mac_density.png", "MAC density vs. precision (Fig. 7b)", uniform,
                    x="w_bits", y="density_vs_16bit", xlabel="weight = activation bits",
                    ylabel="density vs. 16-bit MAC (x)", logx=True),
               Plot("iso_area_peak.png", "Iso-area peak TOPS", systems, x="mac_bits",
                    y="peak_tops", hue="peak_scaling", xlabel="MAC precision (bits)",
                    ylabel="peak TOPS (2 ops per MAC per cycle)", logx=True, logy=True,
                    legend={"doubling": "2x per halving of precision (paper)",
                            "density": "area model (MAC + SRAM)"},
                    legend_title="core count sized by")),
        headline=("llsq_area", "mac_density.png"),
        notes=("System-level gains are far below MAC-level density: per-core SRAM and control "
               "do not shrink with precision (LLSQ's whole-chip area is nearly linear in bits)."),
    )


def run(**kw: Any) -> pd.DataFrame:
    """`python -m dse.study mac_area` from Python (see dse.study.runner.run)."""
    return _run(sys.modules[__name__], **kw)

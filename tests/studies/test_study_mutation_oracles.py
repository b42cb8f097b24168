"""Oracles for the studies' own arithmetic that a mutation audit found unchecked: each test
feeds a study's pure functions (derive, summarize, their helpers) a small results table whose
answer is worked out by hand here, and kills a wrong variant named in its docstring."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from studies import llsq_accelerator as llsq
from studies import qn_fpga


# -- LLSQ Table 5 ---------------------------------------------------------------------------------
def _llsq_rows(power_mw: dict[int, float]) -> pd.DataFrame:
    """Table 5 rows with made-up powers (parts split 50/30/20 %) and the paper's areas."""
    rows = []
    for b in (8, 4, 2):
        p = power_mw[b]
        rows.append({"bits": b, "mac_units": 224, "peak_gops": 179.2, "achieved_gops": 150.0,
                     "utilization": 0.8, "area_mm2": llsq.PAPER[b][0],
                     "paper_area_mm2": llsq.PAPER[b][0], "power_mw": p,
                     "paper_power_mw": llsq.PAPER[b][1], "power_mac_mw": 0.5 * p,
                     "power_sram_mw": 0.3 * p, "power_leakage_mw": 0.2 * p, "dram_mw": 1.0})
    return pd.DataFrame(rows)


POWERS = {8: 140.0, 4: 80.0, 2: 60.0}
"""8-bit below its 30 % band [159.6, 296.4], 4-bit inside [65.1, 120.9], 2-bit above
[28.7, 53.3] mW (LLSQ Table 5: 228 / 93 / 41 mW)."""


def test_llsq_power_ratios_in_table5_are_over_the_8_bit_power() -> None:
    """Kills a power ratio over the 8-bit area and a paper ratio over the 8-bit paper area:
    by hand, 80 / 140 and 60 / 140 against Table 5's 93 / 228 and 41 / 228."""
    table = llsq.summarize(_llsq_rows(POWERS), dict(llsq.PARAMS)).tables["table5"]
    t = table.set_index("bits")
    assert list(t.index) == [8, 4, 2]
    assert t["power_ratio"].tolist() == pytest.approx([1.0, 80 / 140, 60 / 140])
    assert t["paper_power_ratio"].tolist() == pytest.approx([1.0, 93 / 228, 41 / 228])
    assert t["area_ratio"].tolist() == pytest.approx([1.0, 2.80 / 4.71, 1.84 / 4.71])


def test_llsq_only_a_power_below_its_band_is_explained_as_low() -> None:
    """Kills the low-power explanation hung on a power ABOVE its band: the why is shown after
    a miss, and Horowitz's bare energies explain a power too low, never one too high."""
    targets = {t.name: t for t in llsq.summarize(_llsq_rows(POWERS), dict(llsq.PARAMS)).targets}
    low, inside, high = (targets[f"power at {b}-bit"] for b in (8, 4, 2))
    assert (low.low, low.high) == pytest.approx((0.7 * 228, 1.3 * 228))
    assert not low.passed
    assert low.why == llsq.LOW_POWER_WHY
    assert inside.passed
    assert inside.why == ""
    assert not high.passed
    assert high.value > high.high
    assert high.why == ""


def test_llsq_register_note_weighs_each_total_against_the_30_percent_band() -> None:
    """Kills the register verdict judged against the 15 % ratio band: by hand the 8-bit PE
    registers add 0.009 pJ x (2 x 8 + 16) bits x 224 PEs x 800 MHz = 51.6 mW, so 140 mW
    becomes 191.6 mW, 0.84x Table 5's 228 mW: inside the 30 % band (not the 15 % one)."""
    reg8 = 0.009e-12 * (2 * 8 + 16) * 224 * 800e6 * 1e3
    assert llsq.register_power_mw(8, 224, 800e6) == pytest.approx(reg8)
    by = llsq.summarize(_llsq_rows(POWERS), dict(llsq.PARAMS)).tables["table5"].set_index("bits")
    note = llsq._register_note(by)
    total = POWERS[8] + reg8
    assert 0.7 * 228 <= total < 0.85 * 228
    assert f"8-bit +{reg8:.0f} mW = {total:.0f} mW (paper 228, inside the 30% band)" in note


# -- Quantization Networks Table 7 ----------------------------------------------------------------
def _qn_rows() -> pd.DataFrame:
    """Two networks, three schemes each, with round made-up numbers."""
    rows = []
    for model, scale in (("net_a", 1.0), ("net_b", 2.0)):
        for scheme, w, lat, wbits, peak, fl, macs, beside in (
                ("binary", 1, 1.0, 100, 4000.0, 0.1, 16000, 12000),
                ("ternary", 2, 1.5, 200, 2000.0, 0.15, 8000, 6000),
                ("full-precision", 32, 40.0, 3200, 50.0, 4.0, 200, math.nan)):
            rows.append({"model": model, "scheme": scheme, "w_bits": w, "a_bits": w,
                         "latency_s": lat * scale, "weight_bits": wbits * scale,
                         "peak_gmacs": peak, "first_last_s": fl * scale, "fpga_macs": macs,
                         "fpga_macs_beside_fp32": beside})
    return pd.DataFrame(rows)


def test_qn_ratios_are_over_the_same_models_binary_run() -> None:
    """Kills an inverted peak ratio (this scheme's peak over binary's): Table 7's ratios are
    this network's time and space over its binary network's, and the peak ratio is the binary
    design's peak over this one's (how much faster the binary arrays are), by hand."""
    out = qn_fpga.derive(_qn_rows(), dict(qn_fpga.PARAMS)).set_index(["model", "scheme"])
    for model in ("net_a", "net_b"):  # each against its own binary run
        r = out.loc[model]
        assert r["time_vs_binary"].tolist() == pytest.approx([1.0, 1.5, 40.0])
        assert r["space_vs_binary"].tolist() == pytest.approx([1.0, 2.0, 32.0])
        assert r["peak_ratio_vs_binary"].tolist() == pytest.approx([1.0, 2.0, 80.0])


def test_qn_first_last_fp32_estimate_by_hand() -> None:
    """Kills the shared-device slowdown applied to the FP32 layers instead of the low-bit rest:
    sharing the LUTs with the FP32 datapath leaves the low-bit arrays fpga_macs_beside_fp32 of
    their fpga_macs, so only the rest (latency - first/last) slows, by 16000 / 12000. By hand
    for net_a: binary rest 0.9 s -> 1.2 s + the FP32 run's 4.0 s of first/last = 5.2 s
    (separate datapaths: 4.9 s); ternary 1.35 s -> 1.8 s + 4.0 s = 5.8 s (5.35 s)."""
    out = qn_fpga.derive(_qn_rows(), dict(qn_fpga.PARAMS)).set_index(["model", "scheme"])
    a = out.loc["net_a"]
    assert a["latency_fl32_s"].tolist() == pytest.approx([4.9, 5.35, 40.0])
    assert a["latency_fl32_shared_s"].tolist() == pytest.approx([5.2, 5.8, 40.0])
    assert a["time_fl32_vs_binary"].tolist() == pytest.approx([1.0, 5.35 / 4.9, 40.0 / 4.9])
    assert a["time_fl32_shared_vs_binary"].tolist() == pytest.approx([1.0, 5.8 / 5.2, 40 / 5.2])
    b = out.loc["net_b"]  # every time doubled: the same ratios, each against its own run
    assert b["latency_fl32_shared_s"].tolist() == pytest.approx([10.4, 11.6, 80.0])
    assert b["time_fl32_shared_vs_binary"].tolist() == pytest.approx(
        a["time_fl32_shared_vs_binary"].tolist())


def test_qn_first_last_time_is_the_first_and_last_compute_layers() -> None:
    """Kills the second compute layer taken for the last: the FP32 estimate swaps the network's
    first and last compute layers (first conv, last FC: the paper's Sec. 4.1), whose cycles here
    are 100 and 7 at 0.5 GHz: 214 ns."""
    from types import SimpleNamespace

    names = ["conv1", "conv2", "conv3", "fc"]
    wl = SimpleNamespace(compute_layers=lambda: [SimpleNamespace(name=n) for n in names])
    res = SimpleNamespace(layers=pd.DataFrame({"name": ["input", *names, "pool"],
                                               "total_cycles": [0, 100, 20, 30, 7, 5]}))
    acc = SimpleNamespace(freq_ghz=0.5)
    assert qn_fpga._first_last_s(wl, res, acc) == pytest.approx(107 / 0.5e9)


def _qn_sel(ternary: tuple[float, float, float], fp: tuple[float, float, float]) -> pd.DataFrame:
    cols = ["time_vs_binary", "time_fl32_vs_binary", "time_fl32_shared_vs_binary"]
    return pd.DataFrame([dict(zip(cols, ternary)), dict(zip(cols, fp))],
                        index=["ternary", "full-precision"])


def test_qn_bracket_says_between_exactly_when_the_papers_ratio_is_inside() -> None:
    """Kills a bracket that never holds the paper's ratio: Table 7's 1.4x lies between the
    all-quantized 1.9x and the first/last-FP32 1.2x; its 45x lies outside 50x-100x."""
    text = qn_fpga._bracket(_qn_sel((1.9, 1.2, 1.3), (100.0, 50.0, 60.0)))
    assert "the paper's ternary 1.4x lies between the two setups' 1.20x-1.90x" in text
    assert "the paper's full-precision 45x lies outside the two setups' 50x-100x" in text
    text = qn_fpga._bracket(_qn_sel((1.5, 1.45, 1.6), (40.0, 45.0, 44.0)))
    assert "ternary 1.4x lies outside" in text
    assert "full-precision 45x lies between" in text  # an end equal to the paper's counts


def test_qn_bands_hold_table7s_numbers_inside() -> None:
    """Kills a band whose edge sits on the paper's number (full precision [30, 45]): each time
    band is the paper's ratio with room on both sides, each space band the exact bit ratio."""
    rows = []
    for model in ("resnet18",):
        for scheme, t, s in (("binary", 1.0, 1.0), *((k, *v) for k, v in qn_fpga.PAPER.items())):
            rows.append({"model": model, "scheme": scheme, "time_vs_binary": t,
                         "space_vs_binary": s})
    table = pd.DataFrame(rows)
    for c in ("fpga_macs", "peak_gmacs", "latency_s", "utilization", "dram_bytes",
              "peak_ratio_vs_binary", "fpga_luts_per_mac", "fpga_lut_fraction",
              "fpga_dsp_fraction", "fpga_dsps_per_mac", "dram_busy_s", "w_bits", "a_bits"):
        table[c] = 1.0
    table["fpga_binding"] = "luts"
    table["recipe"] = "qn"
    targets = qn_fpga.summarize(table, dict(qn_fpga.PARAMS)).targets
    assert len(targets) == 4
    for t in targets:
        scheme = "ternary" if t.name.startswith("ternary") else "full-precision"
        time, space = qn_fpga.PAPER[scheme]
        if " time " in t.name:
            assert t.low < time < t.high, t
        else:
            assert t.low == t.high == space, t


def test_qn_scale_check_counts_two_ops_per_mac() -> None:
    """Kills the FINN-R scale check without its two ops per MAC: a binary design of
    25,000 GMAC/s does 50 TOp/s, 1.00x the 50 TOp/s FINN-R measured on AWS F1."""
    sel = pd.DataFrame([{"fpga_luts_per_mac": 2.5, "fpga_binding": "luts",
                         "fpga_dsps_per_mac": 0.0, "peak_gmacs": 25_000.0}], index=["binary"])
    text = qn_fpga._explain(sel)
    assert "the binary design's peak, 25.0 TMAC/s, is 1.00x the 50 TOp/s FINN-R measured" in text


# -- bandwidth x area sweep ----------------------------------------------------------------------
def test_sweep_knee_counts_a_point_exactly_at_the_tolerance() -> None:
    """Kills ``>`` for "within the tolerance": 75 images/s is within 25 % of the best 100, so
    the smallest swept bandwidth already counts (numbers exact in binary floating point)."""
    from studies.bandwidth_area_sweep import knee_gbps

    gbps = pd.Series([8.0, 16.0, 32.0])
    assert knee_gbps(gbps, pd.Series([75.0, 90.0, 100.0]), 0.25) == 8.0
    assert knee_gbps(gbps, pd.Series([74.0, 90.0, 100.0]), 0.25) == 16.0


def test_sweep_knee_is_empty_only_when_the_top_run_uses_the_bandwidth() -> None:
    """Kills "uses all of it" read as demand >= the top bandwidth: a run at 16 GB/s whose
    demand is 15.5 GB/s (within 5 %) is still DRAM-bound there - the knee lies above the
    sweep (NaN); one that uses 8 GB/s of it is compute-bound at 16 GB/s."""
    from studies.bandwidth_area_sweep import knee_gbps

    gbps, ips = pd.Series([8.0, 16.0]), pd.Series([10.0, 20.0])
    assert math.isnan(knee_gbps(gbps, ips, 0.05, demand_gbps=15.5))
    assert knee_gbps(gbps, ips, 0.05, demand_gbps=8.0) == 16.0


def test_sweep_area_factor_multiplies_the_template_budget() -> None:
    """Kills ``"<f>x"`` read as f mm^2: 2x of a 7.5 mm^2 template is 15 mm^2."""
    from studies.bandwidth_area_sweep import parse_area

    assert parse_area("2x", 7.5) == 15.0
    assert parse_area("0.5X", 7.5) == 3.75
    assert parse_area(3.0, 7.5) == 3.0


def test_sweep_by_fidelity_by_hand() -> None:
    """Kills a per-mode demand without its batch (DRAM bytes x images/s / batch = bytes /
    latency) and images/s without the batch: one design, batch 4, 0.8 GB per batch. With
    prefetch the latency is 0.25 s at 8 GB/s and 0.1 s at 16: 16 and 40 images/s, knee at
    16 GB/s, where it uses 8 GB/s (not DRAM-bound); without, 0.2 s at both: 20 images/s, knee
    at 8 GB/s."""
    from studies.bandwidth_area_sweep import by_fidelity

    results = pd.DataFrame({
        "area_budget_mm2": [10.0, 10.0], "sram_kib": [256.0, 256.0], "cores": [4, 4],
        "dram_gbps": [8.0, 16.0], "batch": [4, 4], "dram_bytes": [0.8e9, 0.8e9],
        "latency_s@layer+prefetch": [0.25, 0.1], "latency_s@layer": [0.2, 0.2]})
    table = by_fidelity(results).set_index("quantity")
    assert table.loc["images/s at 8 GB/s", "layer+prefetch"] == pytest.approx(16.0)
    assert table.loc["images/s at 16 GB/s", "layer+prefetch"] == pytest.approx(40.0)
    assert table.loc["images/s at 16 GB/s", "layer"] == pytest.approx(20.0)
    assert table.loc["compute_bound_gbps", "layer+prefetch"] == 16.0
    assert table.loc["compute_bound_gbps", "layer"] == 8.0


def test_sweep_best_is_the_fastest_run_wherever_it_is() -> None:
    """Kills the top bandwidth's run taken as the best: the best images/s is the largest over
    the sweep (30 at 16 GB/s here), and utilization_at_best is that run's."""
    from studies.bandwidth_area_sweep import knees

    results = pd.DataFrame({
        "area_budget_mm2": 10.0, "sram_kib": 256.0, "cores": 4, "dram_gbps": [8.0, 16.0, 32.0],
        "images_per_s": [10.0, 30.0, 25.0], "utilization": [0.2, 0.6, 0.5],
        "area_mm2": 9.5, "peak_tops": 2.0, "dram_bytes": 1e9, "latency_s": [0.4, 0.2, 0.25]})
    row = knees(results).iloc[0]
    assert row["best_images_per_s"] == 30.0
    assert row["utilization_at_best"] == 0.6
    assert row["compute_bound_gbps"] == 16.0
    assert row["demand_gbps"] == pytest.approx(1e9 / 0.25 / 1e9)  # the top run's bytes / latency


# -- precision sweep (Fig. 7c) --------------------------------------------------------------------
def test_precision_sweep_ratios_by_hand() -> None:
    """Kills an inverted DRAM ratio: speedup and peak ratio are this point over the 16-bit
    baseline at the same bandwidth (and batch, SRAM, mode), dram_ratio the baseline's bytes
    over this point's (> 1: less traffic)."""
    from studies.precision_sweep import with_speedup

    rows = []
    for bw, base_ips in ((32.0, 100.0), (math.inf, 200.0)):
        for variant, bits, ips, tops, dram in (("baseline", 16, base_ips, 8.0, 400.0),
                                               ("first/last 8-bit", 4, 4.5 * base_ips, 32.0,
                                                100.0)):
            rows.append({"mode": "layer+prefetch", "batch": 8, "total_sram_kib": None,
                         "dram_gbps": bw, "variant": variant, "mac_bits": bits,
                         "images_per_s": ips, "peak_tops": tops, "dram_bytes": dram})
    out = with_speedup(pd.DataFrame(rows))
    four = out[out["mac_bits"] == 4]
    assert four["speedup"].tolist() == pytest.approx([4.5, 4.5])
    assert four["peak_ratio"].tolist() == pytest.approx([4.0, 4.0])
    assert four["dram_ratio"].tolist() == pytest.approx([4.0, 4.0])
    assert out[out["mac_bits"] == 16]["speedup"].tolist() == [1.0, 1.0]


def test_precision_sweep_runs_a_precision_at_the_first_last_bits_uniformly() -> None:
    """Kills ``b > first_last_bits``: at 8 bits with first/last layers at 8 bits the whole
    network runs at 8 bits - one uniform point, no first/last variants - while 4 bits gets
    both the 8-bit-first/last point and the quantized one (the paper's Fig. 7c)."""
    from studies import precision_sweep

    params = {**precision_sweep.PARAMS, "model": "resnet20", "precisions": (16, 8, 4),
              "bandwidth": (32.0,), "batch_sensitivity": (), "sram_sensitivity_kib": (),
              "modes": ("layer+prefetch",)}
    got = sorted((p["mac_bits"], p["first_last_bits"], p["variant"])
                 for p in precision_sweep.grid(params))
    assert got == [(4, 4, "first/last quantized"), (4, 8, "first/last 8-bit"),
                   (8, 8, "uniform"), (16, 16, "baseline")]


def _fig7c_rows(batch: int = 8, scale: float = 1.0) -> list[dict[str, object]]:
    """A made-up Fig. 7c run: 16-bit baseline 100 images/s at every bandwidth; 8 bits 2x;
    4 bits (first/last 8-bit) 3.8x / 4.3x / 4.6x at unlimited / 64 / 32 GB/s, 1.25x more with
    first/last quantized; 2 bits 7x, 1.2x more quantized. 10 % of the MACs at 8x8 bits."""
    gains = {(8, "uniform"): (2.0, 2.0, 2.0), (4, "first/last 8-bit"): (3.8, 4.3, 4.6),
             (4, "first/last quantized"): (4.75, 5.375, 5.75),
             (2, "first/last 8-bit"): (7.0, 7.0, 7.0),
             (2, "first/last quantized"): (8.4, 8.4, 8.4), (16, "baseline"): (1.0, 1.0, 1.0)}
    rows = []
    for (bits, variant), per_bw in gains.items():
        fl = 16 if bits == 16 else (bits if variant != "first/last 8-bit" else 8)
        for bw, g in zip((math.inf, 64.0, 32.0), per_bw):
            rows.append({"mode": "layer+prefetch", "batch": batch, "total_sram_kib": None,
                         "sram_total_mib": 16.0, "dram_gbps": bw, "variant": variant,
                         "mac_bits": bits, "first_last_bits": fl, "cores": 8,
                         "images_per_s": 100.0 * g * scale, "peak_tops": 8.0 * 16 / bits,
                         "dram_bytes": 1e8 / g, "utilization": 0.8, "memory_bound_layers": 0,
                         "macs_by_bits": f'{{"{bits}x{bits}": 0.9, "8x8": 0.1}}'
                         if fl == 8 and bits < 8 else f'{{"{bits}x{bits}": 1.0}}'})
    return rows


def test_precision_sweep_targets_by_hand_against_targets_md() -> None:
    """Kills an inverted first/last gain, a compute-side ceiling of 1 + f * slots (not
    1 + f * (slots - 1)), the share read at the array's bits instead of the first/last bits,
    and a widened band: the bands are TARGETS.md's (16->8 [1.8, 2.1], 16->4 [3.5, 4.1],
    16->4 at 32 GB/s [4.2, 5.0], 2-bit below 8x, first/last gain [1.1, 1.4]); the gains are
    5.75 / 4.6 = 1.25 and 8.4 / 7 = 1.2; an 8x8 MAC holds 2 slots of a 4x4 array (doubling,
    configurable), 4 of a 2x2 one, so 10 % of the MACs cap the gain at 1.1x and 1.3x."""
    from studies import precision_sweep

    summary = precision_sweep.summarize(pd.DataFrame(_fig7c_rows()),
                                        dict(precision_sweep.PARAMS))
    t = {x.name: x for x in summary.targets}
    bands = {"16->8 bit, unlimited BW": (2.0, 1.8, 2.1),
             "16->4 bit, unlimited BW": (3.8, 3.5, 4.1),
             "16->2 bit, unlimited BW (below 8x)": (7.0, 0.0, 7.99),
             "16->4 bit, 32 GB/s": (4.6, 4.2, 5.0),
             "16->4 bit, 64 GB/s (super-linear, > 4x)": (4.3, 4.0, math.inf),
             "first/last quantized gain, 4-bit, 32 GB/s": (1.25, 1.1, 1.4),
             "first/last quantized gain, 2-bit, 32 GB/s": (1.2, 1.1, 1.4)}
    assert set(t) == set(bands)
    for name, (value, low, high) in bands.items():
        assert (t[name].value, t[name].low, t[name].high) == pytest.approx((value, low, high))
    assert t["first/last quantized gain, 4-bit, 32 GB/s"].why == (
        "the first/last layers are 10.0% of the MACs at 2.00 slots each: at most 1.100x on the "
        "compute side")
    two = t["first/last quantized gain, 2-bit, 32 GB/s"]
    assert "at 4.00 slots each: at most 1.300x" in two.why


def test_precision_sweep_baseline_is_the_same_batchs() -> None:
    """Kills a baseline looked up without the batch: each batch size's points are over the
    16-bit run at that batch (here batch 1 runs at half the images/s of batch 8)."""
    from studies.precision_sweep import with_speedup

    out = with_speedup(pd.DataFrame(_fig7c_rows(8) + _fig7c_rows(1, scale=0.5)))
    sel = out[(out["mac_bits"] == 4) & (out["variant"] == "first/last 8-bit")]
    assert sorted(sel["speedup"].round(9).tolist()) == [3.8, 3.8, 4.3, 4.3, 4.6, 4.6]


# -- binary speedup (Eq. 11) and the area model ---------------------------------------------------
def _binary_rows() -> pd.DataFrame:
    eq = [{"kind": "eq11", "m": 1, "fp_roles": r, "flops_fp": 1.8e9, "flops_binary": 1.7e8,
           "speedup": 1.8e9 / 1.7e8} for r in ("first,last,shortcut", "first,last")]
    sim = [{"kind": "sim", "scheme": s, "dram_gbps": bw, "images_per_s": ips,
            "high_precision": "bit_serial" if s == "binary" else "configurable", "cores": c,
            "peak_tops": 1.0, "utilization": 0.5}
           for s, c, per_bw in (("binary", 73, ((math.inf, 900.0), (32.0, 400.0))),
                                ("16-bit", 8, ((math.inf, 300.0), (32.0, 200.0))))
           for bw, ips in per_bw]
    return pd.DataFrame(eq + sim)


def test_binary_simulated_speedup_is_binary_over_16_bit_at_the_same_bandwidth() -> None:
    """Kills an inverted simulated speedup: 900 / 300 = 3x unlimited, 400 / 200 = 2x at
    32 GB/s; and the Eq. 11 bands stay within 5 % of the paper's numbers (a closed form of the
    graph, nothing to tune)."""
    from studies import binary_speedup

    summary = binary_speedup.summarize(_binary_rows(), dict(binary_speedup.PARAMS))
    sim = summary.tables["simulated"].set_index("dram_gbps")
    assert sim.loc[math.inf, "speedup"] == pytest.approx(3.0)
    assert sim.loc[32.0, "speedup"] == pytest.approx(2.0)
    assert sim.loc[32.0, "baseline_images_per_s"] == 200.0
    paper = (binary_speedup.PAPER_FLOPS_FP, binary_speedup.PAPER_FLOPS_BIN,
             binary_speedup.PAPER_SPEEDUP)
    assert len(summary.targets) == 3
    for t, p in zip(summary.targets, paper):
        assert 0.95 * p <= t.low < p < t.high <= 1.05 * p, t


def test_mac_density_is_the_area_models_closed_form() -> None:
    """Kills density read as the relative area: a(w, a) = w*a + 1.146*(w + a) + 13.27 (the
    area model the study states), so 16->2 bits is a(16, 16) / a(2, 2) = 305.9 / 21.85 = 14.0x
    (Fig. 7b's ~14x)."""
    from studies import mac_area

    def a(w: int, x: int) -> float:
        return w * x + 1.146 * (w + x) + 13.27

    for w, x in ((2, 2), (4, 8), (1, 1), (16, 16)):
        row = mac_area.evaluate({"kind": "mac", "w_bits": w, "a_bits": x}, None)[0]
        assert row["density_vs_16bit"] == pytest.approx(a(16, 16) / a(w, x), rel=1e-3)
        assert row["mac_area_rel"] == pytest.approx(a(w, x) / a(16, 16), rel=1e-3)
    two = mac_area.evaluate({"kind": "mac", "w_bits": 2, "a_bits": 2}, None)[0]
    assert two["density_vs_16bit"] == pytest.approx(14.0, abs=0.01)


def test_mac_area_llsq_ratios_and_bands_are_table5s() -> None:
    """Kills a ratio over the 2-bit area and bands wider than TARGETS.md's: the 4- and 2-bit
    areas over the 8-bit one, each within 15 % of Table 5's 2.80 / 4.71 and 1.84 / 4.71; the
    MAC density band holds Fig. 7b's ~14x within 10 %."""
    from arch import presets
    from studies import mac_area

    params = {**mac_area.PARAMS, "mac_bits": ((16, 16), (2, 2)), "system_bits": (16,)}
    df = mac_area.run(**params)
    summary = mac_area.summarize(df, params)
    llsq_area = summary.tables["llsq_area"].set_index("bits")
    for b in (8, 4, 2):
        want = presets.llsq40nm(b).area / presets.llsq40nm(8).area
        assert llsq_area.at[b, "ratio"] == pytest.approx(want)
    t = {x.name: x for x in summary.targets}
    for b, paper in ((4, 2.80 / 4.71), (2, 1.84 / 4.71)):
        target = t[f"LLSQ area ratio {b}-bit / 8-bit"]
        assert (target.low, target.high) == pytest.approx((0.85 * paper, 1.15 * paper))
    density = t["MAC density 16->2 bit"]
    assert 0.9 * 14 <= density.low < 14 < density.high <= 1.1 * 14


# -- PACT-SAWB vs. WRPN (Fig. 8) ------------------------------------------------------------------
def test_wrpn_speedup_in_results_is_pact_over_wrpn_on_both_rows() -> None:
    """Kills an inverted ``speedup`` column: each configuration's PACT-SAWB images/s over WRPN's
    (300 / 100 at 8 GB/s, 330 / 110 at unlimited: 3x), on both rows of the pair, with the
    preset's SRAM (None) kept as it was."""
    from studies.wrpn_vs_pact import derive

    rows = [{"sweep": "cost_model", "mode": "layer+prefetch", "high_precision": "configurable",
             "peak_scaling": "doubling", "batch": 2, "total_sram_kib": None, "dram_gbps": bw,
             "scheme": s, "images_per_s": ips}
            for bw, pact, wrpn in ((8.0, 300.0, 100.0), (math.inf, 330.0, 110.0))
            for s, ips in (("pact_sawb", pact), ("wrpn", wrpn))]
    out = derive(pd.DataFrame(rows), {})
    assert out["speedup"].tolist() == pytest.approx([3.0, 3.0, 3.0, 3.0])
    assert out["total_sram_kib"].isna().all()
    assert out["images_per_s"].tolist() == [300.0, 100.0, 330.0, 110.0]


def _fig8_rows() -> pd.DataFrame:
    """PACT-SAWB 2.8x / 3.0x / 3.2x WRPN's images/s at 8 / 64 GB/s / unlimited; at unlimited
    WRPN's arrays are busier (array utilization 0.6 x 1 s vs. 0.5 x 0.3125 s)."""
    rows = []
    for bw, sp, wrpn_ips in ((8.0, 2.8, 10.0), (64.0, 3.0, 20.0), (math.inf, 3.2, 25.0)):
        for scheme, ips, occ in (("pact_sawb", sp * wrpn_ips, 0.5), ("wrpn", wrpn_ips, 0.6)):
            rows.append({
                "sweep": "cost_model", "mode": "layer+prefetch", "model": "alexnet",
                "high_precision": "configurable", "peak_scaling": "doubling", "batch": 8,
                "total_sram_kib": None, "sram_total_mib": 16.0, "dram_gbps": bw,
                "scheme": scheme, "images_per_s": ips, "latency_s": 8 / ips,
                "array_utilization": occ, "utilization": 0.4, "dram_busy_s": 0.5 * 8 / ips,
                "dram_bytes": 1e8 if scheme == "pact_sawb" else 2.6e8,
                "workload_macs": 1e9 if scheme == "pact_sawb" else 2.4e9,
                "workload_weight_bytes": 1e7, "macs_by_bits": '{"2x2": 1.0}', "cores": 32,
                "peak_tops": 64.0 if scheme == "pact_sawb" else 45.0, "area_mm2": 50.0,
                "mac_w_bits": 2, "mac_a_bits": 2 if scheme == "pact_sawb" else 4,
                "first_last_bits": 16})
    return pd.DataFrame(rows)


def test_wrpn_summary_by_hand() -> None:
    """Kills a spread of max - min (not max / min - 1), the low-bandwidth speedup inverted in
    the occupancy argument, the occupancy from useful-MAC utilization instead of array
    occupancy, and Fig. 8a normalized to WRPN at the highest bandwidth: spread 3.2 / 2.8 - 1;
    the memory-side speedup 2.80x against an occupancy-time ratio of (0.6 x 8/25 s) /
    (0.5 x 8/80 s) = 3.84x; WRPN at 8 GB/s (10 images/s) is 1 on the normalized plot."""
    from studies import wrpn_vs_pact

    params = {**wrpn_vs_pact.PARAMS, "high_precision": ("configurable",),
              "peak_scaling": ("doubling",), "batch": 8}
    summary = wrpn_vs_pact.summarize(_fig8_rows(), params)
    t = {x.name.split(" (")[0]: x for x in summary.targets}
    assert t["min speedup over the sweep"].value == pytest.approx(2.8)
    assert t["max speedup over the sweep"].value == pytest.approx(3.2)
    assert t["spread max/min - 1"].value == pytest.approx(3.2 / 2.8 - 1)
    cross = t["array-utilization curves cross"]
    assert "memory-side speedup (2.80x) exceeds the two systems' occupancy-time ratio " \
        "(3.84x)" in cross.why
    norm = next(p for p in summary.plots if p.filename == "images_per_s.png").data
    wrpn = norm[norm["scheme"] == "wrpn"].sort_values("dram_gbps")
    assert wrpn["normalized_images_per_s"].tolist() == pytest.approx([1.0, 2.0, 2.5])

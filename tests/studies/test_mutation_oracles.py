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

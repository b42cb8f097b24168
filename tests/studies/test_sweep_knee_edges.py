"""bandwidth_area_sweep's knee (`compute_bound_gbps`) on sweeps that cannot show it: a single
finite bandwidth, or finite bandwidths all below what the design needs. A synthetic roofline
(images/s = min(peak, bw / bytes)) gives the closed form."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from studies import bandwidth_area_sweep as sweep


def _roofline(bws, peak=1000.0, mb=40.0, batch=1):
    """A design needing peak * bytes = 40 GB/s to turn compute-bound."""
    rows = []
    for bw in bws:
        ips = min(peak, bw * 1e9 / (mb * 1e6))
        rows.append({"area_budget_mm2": 10.0, "sram_kib": 256.0, "cores": 8, "area_mm2": 9.0,
                     "peak_tops": 8.0, "dram_gbps": bw, "images_per_s": ips,
                     "latency_s": batch / ips, "batch": batch, "dram_bytes": batch * mb * 1e6,
                     "utilization": ips / peak})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("bws", "knee"), [
    ((16.0,), math.nan),              # one bandwidth, all of it used: DRAM-bound there
    ((8.0, 16.0), math.nan),          # still DRAM-bound at the top of the sweep
    ((8.0, 16.0, 32.0), math.nan),
    ((64.0,), 64.0),                  # needs 40 of 64 GB/s: compute-bound at the one bandwidth
    ((16.0, 64.0, 128.0), 64.0),
    ((16.0, math.inf), math.inf),     # unlimited swept: the knee is defined as before
    ((8.0, 16.0, 32.0, 64.0, math.inf), 64.0),
])
def test_knee_is_empty_when_the_sweep_ends_dram_bound(bws, knee):
    table = sweep.knees(_roofline(bws))
    got = float(table["compute_bound_gbps"].iloc[0])
    assert (math.isnan(got) and math.isnan(knee)) or got == knee
    assert table["demand_gbps"].iloc[0] == pytest.approx(min(40.0, max(bws)))


def test_summary_says_why_a_knee_is_empty():
    results = _roofline((8.0, 16.0))
    notes = sweep.summarize(results, {**sweep.PARAMS, "bandwidth": (8.0, 16.0),
                                      "modes": ("layer+prefetch",)}).notes
    assert "Empty for 1 design(s) still DRAM-bound at the largest swept bandwidth" in notes
    full = sweep.summarize(_roofline((8.0, math.inf)), {**sweep.PARAMS,
                                                        "modes": ("layer+prefetch",)}).notes
    assert "Empty for" not in full


def test_knee_per_mode_is_empty_where_that_mode_ends_dram_bound():
    """By fidelity: a mode whose run at the top bandwidth uses all of it gets no knee, one that
    reaches its peak there keeps the top bandwidth."""
    results = _roofline((16.0, 64.0))
    results[f"latency_s@{sweep.pipeline.HEADLINE_MODE}"] = results["latency_s"]
    results["latency_s@layer"] = [40e6 / 16e9, 40e6 / 40e9 * 1.0]  # peak reached at 64 GB/s
    results["latency_s@tile"] = [40e6 / 16e9, 40e6 / 64e9]         # DRAM-bound at 64 GB/s
    table = sweep.by_fidelity(results).set_index("quantity")
    knee = table.loc["compute_bound_gbps"]
    assert knee[sweep.pipeline.HEADLINE_MODE] == 64.0
    assert knee["layer"] == 64.0
    assert math.isnan(knee["tile"])


def test_one_bandwidth_gives_one_images_per_s_row_per_design():
    results = _roofline((16.0,))
    results[f"latency_s@{sweep.pipeline.HEADLINE_MODE}"] = results["latency_s"]
    results["latency_s@layer"] = results["latency_s"] * 1.1
    quantities = sweep.by_fidelity(results)["quantity"].tolist()
    assert quantities == ["images/s at 16 GB/s", "compute_bound_gbps"]


@pytest.mark.parametrize(("area", "item"), [("0x", "'0x'"), ("x", "'x'"), ("0.5x,,1x", "''"),
                                            ("2x,abc", "'abc'")])
def test_sweep_cli_names_the_bad_area_item_as_typed(area, item, capsys, tmp_path):
    """--area x said "--area='' is malformed: '' is not a number" (the factor it was cut to)."""
    from dse.sweep import main

    out = tmp_path / "o"
    assert main(["--model", "alexnet", "--recipe", "pact_sawb", "--area", area, "--out",
                 str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --area={area!r} is malformed: {item} is neither mm^2 > 0 nor <f>x "
                   "with a finite f > 0 (a multiple of the template's area)"]
    assert not out.exists()

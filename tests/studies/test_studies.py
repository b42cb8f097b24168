"""Study helpers against closed forms: bandwidth lists, curve crossings, Eq. 11, the pipeline."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import studies
from dse.study import parse_bandwidths
from dse.study.report import crossing
from studies import binary_speedup, pipeline


# -- --bandwidth lists ----------------------------------------------------------------------------
def test_bandwidth_examples():
    assert parse_bandwidths("8:256:x2,inf") == (8, 16, 32, 64, 128, 256, math.inf)
    assert parse_bandwidths("16:64:+16, 100") == (16, 32, 48, 64, 100)
    assert parse_bandwidths("32,8,32") == (32, 8)  # de-duplicated, order kept


@given(st.integers(1, 64), st.integers(0, 8), st.sampled_from([2, 3, 4]))
def test_geometric_range_is_closed_form(start, n, f):
    stop = start * f ** n
    vals = parse_bandwidths(f"{start}:{stop}:x{f}")
    assert vals == tuple(float(start * f ** i) for i in range(n + 1))


@pytest.mark.parametrize("bad", ["", "8,,16", "x", "8:4:x2", "8:16:x1", "8:16:*2", "0", "nan",
                                 "8:16", "-1", "inf:8:x2"])
def test_malformed_bandwidth_raises_naming_the_field(bad):
    with pytest.raises(ValueError, match="--bandwidth="):
        parse_bandwidths(bad)


# -- crossing -------------------------------------------------------------------------------------
@given(st.floats(1.0, 8.0), st.floats(0.1, 5.0))
def test_crossing_recovers_a_log_linear_root(log_root, slope):
    xs = [2.0 ** i for i in range(10)]
    diff = [slope * (log_root - math.log2(x)) + (1e-9 if math.log2(x) == log_root else 0)
            for x in xs]
    assert crossing(xs, diff) == pytest.approx(2 ** log_root, rel=1e-6)


def test_crossing_none_when_no_sign_change_and_inf_handled():
    assert crossing([8, 16, 32], [-1, -2, -3]) is None
    assert crossing([8, 16, 32], [1, 2, -0.5]) is not None
    assert crossing([8, 16, math.inf], [1.0, 1.0, -1.0]) == pytest.approx(16 * math.sqrt(2))


# -- Eq. 11 (CReLU paper) -------------------------------------------------------------------------
def test_eq11_single_layer_is_the_paper_formula():
    c_out, c_in, k, ho = 64, 64, 3, 56
    n = c_out * c_in * k * k * ho * ho
    for m in (1, 2, 3):
        got = binary_speedup.eq11([{"macs": n, "ho": ho, "wo": ho, "role": ""}], m=m)
        assert got["speedup"] == pytest.approx(n / (m * n / 64 + m * ho * ho))
    fp = binary_speedup.eq11([{"macs": n, "ho": ho, "wo": ho, "role": "first"}])
    assert fp["speedup"] == 1.0


@given(st.lists(st.tuples(st.integers(1, 10**9), st.integers(1, 64),
                          st.sampled_from(["", "first", "last"])), min_size=1, max_size=8))
def test_eq11_bounded_by_word_parallelism(layers):
    recs = [{"macs": n, "ho": h, "wo": h, "role": r} for n, h, r in layers]
    s = binary_speedup.eq11(recs)["speedup"]
    assert 0.0 < s < 64.0  # below 1 only when the m*w_out*h_out scaling ops dominate
    if all(n >= 128 * h * h for n, h, _ in layers):  # N/64 >= 2*w_out*h_out: binary wins
        assert s >= 1.0
        if any(r == "" for _, _, r in layers):
            assert s > 1.0
    assert binary_speedup.eq11(recs, m=2)["speedup"] <= s  # more binary bases, less speedup


def test_eq11_on_the_resnet18_graph_matches_the_paper(tmp_path):
    pipeline._MEMO.clear()  # another test in this process may hold the workload in memory
    wl = pipeline.workload_for("resnet18", "fp32", w_bits=16, a_bits=16, cache_dir=tmp_path)
    recs = [{"macs": lay.macs / lay.n, "ho": lay.ho, "wo": lay.wo, "role": lay.role}
            for lay in wl.compute_layers()]
    got = binary_speedup.eq11(recs)
    assert got["flops_fp"] == pytest.approx(1.81e9, rel=0.01)    # paper: 1.81e9
    assert got["flops_binary"] == pytest.approx(1.67e8, rel=0.03)  # paper: 1.67e8
    assert got["speedup"] == pytest.approx(10.86, rel=0.03)        # paper: 10.86x
    assert list(tmp_path.rglob("*.json")), "workload cached as JSON"


# -- the pipeline ---------------------------------------------------------------------------------
def test_meta_device_trace_equals_cpu_trace():
    spec = {"model": "resnet20", "recipe": "wrpn", "w_bits": 2, "a_bits": 4,
            "first_last_bits": 16, "shortcut_bits": None, "width": 2, "batch": 1}
    assert pipeline._trace(**spec) == pipeline._trace(**spec, device="cpu")


def test_recipe_bits_reach_the_graph(tmp_path):
    # pact_sawb's SAWB cannot run on meta tensors: workload_for falls back to the CPU
    wl = pipeline.workload_for("resnet20", "pact_sawb", w_bits=2, a_bits=2, first_last_bits=16,
                               shortcut_bits=8, cache_dir=tmp_path)
    by_role: dict[str, set] = {}
    for lay in wl.compute_layers():
        by_role.setdefault(lay.role, set()).add((lay.w_bits, lay.a_bits))
    assert by_role == {"first": {(16, 16)}, "last": {(16, 16)}, "shortcut": {(8, 8)},
                       "": {(2, 2)}}
    pipeline._MEMO.clear()  # the second call reads the JSON cache
    again = pipeline.workload_for("resnet20", "pact_sawb", w_bits=2, a_bits=2,
                                  first_last_bits=16, shortcut_bits=8, cache_dir=tmp_path)
    assert again == wl


def test_studies_follow_the_protocol():
    for name in studies.names():
        mod = studies.get(name)
        assert name == mod.NAME
        assert mod.grid(dict(mod.PARAMS)), f"{name} has an empty default grid"
    with pytest.raises(ValueError, match="unknown study 'x'; available: "):
        studies.get("x")


def test_bad_study_parameters_name_the_field():
    from studies import bandwidth_area_sweep, precision_sweep, wrpn_vs_pact

    with pytest.raises(ValueError, match="peak_scaling='linear'"):
        wrpn_vs_pact.grid({**wrpn_vs_pact.PARAMS, "peak_scaling": "linear"})
    with pytest.raises(ValueError, match="bandwidth="):
        precision_sweep.grid({**precision_sweep.PARAMS, "bandwidth": (0,)})
    with pytest.raises(ValueError, match="area='-1x'"):
        bandwidth_area_sweep.grid({**bandwidth_area_sweep.PARAMS, "area": ("-1x",)})


def test_knee_of_a_synthetic_roofline():
    """images/s = min(peak, bw / bytes): compute-bound from bw = peak * bytes (closed form)."""
    from studies.bandwidth_area_sweep import knees

    bws = [8.0, 16.0, 32.0, 64.0, 128.0, math.inf]
    rows = []
    for cores, peak, mb in ((8, 1000.0, 40.0), (64, 4000.0, 40.0)):
        for bw in bws:
            ips = min(peak, bw * 1e9 / (mb * 1e6))
            rows.append({"area_budget_mm2": 10.0 * cores, "sram_kib": 256.0, "cores": cores,
                         "area_mm2": 1.0, "peak_tops": float(cores), "dram_gbps": bw,
                         "images_per_s": ips, "latency_s": 1 / ips,
                         "dram_bytes": mb * 1e6, "utilization": ips / peak})
    table = knees(pd.DataFrame(rows)).set_index("cores")
    assert table.loc[8, "compute_bound_gbps"] == 64.0    # 1000 img/s * 40 MB = 40 GB/s -> 64
    assert table.loc[64, "compute_bound_gbps"] == math.inf  # needs 160 GB/s: only unlimited
    assert table.loc[8, "demand_gbps"] == pytest.approx(40.0)
    assert table.loc[64, "demand_gbps"] == pytest.approx(160.0)


def test_store_bits_caps_every_stored_tensor_and_keeps_the_work():
    spec = {"model": "resnet20", "recipe": "wrpn", "w_bits": 2, "a_bits": 2,
            "first_last_bits": 8, "shortcut_bits": None, "width": 1, "batch": 1}
    raw = pipeline._trace(**spec)
    capped = pipeline._trace(**spec, store_bits=2)
    assert any(lay.o_bits == 16 for lay in raw)  # residual stream stays 16-bit by default
    assert capped.total_macs == raw.total_macs
    for lay in capped:
        if lay.op not in ("input", "output") and "output" not in {
                capped[s].op for s in capped.successors(lay.name)}:
            assert lay.o_bits <= 2, lay.name
        if lay.is_compute:  # the arithmetic is unchanged, only storage
            assert (lay.w_bits, lay.a_bits) == (raw[lay.name].w_bits, raw[lay.name].a_bits)
    assert capped.activation_bytes < raw.activation_bytes


def test_precision_sweep_small_model_obeys_the_causal_condition(tmp_path):
    """A gain above the peak ratio needs less DRAM traffic (MODELING.md oracle)."""
    from studies import precision_sweep

    df = precision_sweep.run(out=tmp_path, model="resnet20", precisions=(16, 4, 2),
                             bandwidth=(4.0, math.inf), batch=2, batch_sensitivity=(),
                             sram_sensitivity_kib=(), modes=("layer+prefetch",))
    assert {"mac_bits", "dram_gbps", "first_last_bits", "images_per_s", "speedup"} <= set(
        df.columns)
    base = df[df["variant"] == "baseline"].set_index("dram_gbps")["images_per_s"]
    for r in df.itertuples():
        assert r.speedup == pytest.approx(r.images_per_s / base[r.dram_gbps])
        if r.speedup > r.peak_ratio * (1 + 1e-9):
            assert r.dram_ratio > 1.0, r
    quantized = df[df["variant"] == "first/last quantized"].set_index(["mac_bits", "dram_gbps"])
    eight = df[df["variant"] == "first/last 8-bit"].set_index(["mac_bits", "dram_gbps"])
    assert (quantized["images_per_s"] >= eight.loc[quantized.index, "images_per_s"]).all()
    assert (tmp_path / "speedup.png").exists()


def test_sweep_with_explicit_cores_is_monotone_in_cores():
    from studies import bandwidth_area_sweep

    df = bandwidth_area_sweep.run(model="resnet20", cores=(2, 4, 8), bandwidth=(16.0, math.inf),
                                  sram_kib=(128.0,), batch=2)
    assert sorted(df["cores"].unique().tolist()) == [2, 4, 8]
    for _, g in df.groupby("dram_gbps"):  # same per-core resources, more cores: never slower
        ips = g.sort_values("cores")["images_per_s"].to_numpy()
        assert (ips[1:] >= ips[:-1] * (1 - 1e-9)).all()
    assert df["area_budget_mm2"].isna().all()

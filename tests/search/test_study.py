"""studies.wrpn_vs_pact_search: grid validation, the summary's arithmetic, and evaluate() /
uniform_baseline() on a tiny workload (each space enumerated, the real simulator), checked
against closed-form core counts and a brute-force simulation of every design."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest
from searchkit import tiny_proxy, tiny_resnet

import studies
from arch.area import core_area_mm2, sram_area_mm2
from arch.presets import sysml19_area_budget
from dse.search.space import SearchSpace, apply_layer_bits, decode_pair
from dse.sim import simulate
from dse.study.runner import Context
from studies import wrpn_vs_pact_search as s
from studies.pipeline import HEADLINE_MODE, SIM_MODES


def test_follows_the_protocol_and_grid():
    assert studies.get("wrpn_vs_pact_search") is s
    points = s.grid(dict(s.PARAMS))
    iso = [p for p in points if p["kind"] == "iso_area"]
    assert len(iso) == 2 * 2 * len(s.PARAMS["bandwidth"])
    assert {p["scheme"] for p in iso} == {"pact_sawb", "wrpn"}
    assert {p["formulation"] for p in iso} == {"fixed_total_sram", "per_core_sram"}
    sched = [p for p in points if p["kind"] == "schedule"]
    assert [p["scheme"] for p in sched] == ["pact_sawb", "wrpn"]
    assert sched[0]["schedules"] == ("layer_by_layer", "pipeline", "data_parallel")
    assert sched[0]["formulation"] == "fixed_total_sram"
    assert not [p for p in s.grid({**s.PARAMS, "schedules": ()}) if p["kind"] == "schedule"]
    mixed = [p for p in points if p["kind"] == "mixed"]
    assert len(mixed) == 1
    assert mixed[0]["trials"] == s.PARAMS["mixed_trials"]
    assert mixed[0]["formulation"] == s.PARAMS["formulations"][0] == "fixed_total_sram"
    # the study's space reaches past both ends of the precisions it compares (2x2, 2x4)
    assert {"1x1", "16x16"} <= set(s.PARAMS["mac_bits"])
    # only the headline formulation's best designs are re-simulated in every mode
    for p in iso:
        assert p["modes"] == (SIM_MODES if p["formulation"] == "fixed_total_sram" else ())
    assert all(p["modes"] == () for p in s.grid({**s.PARAMS, "modes": ()})
               if p["kind"] == "iso_area")
    # the headline mode (the searches') is always among them
    assert s.grid({**s.PARAMS, "modes": ("tile",)})[0]["modes"] == (HEADLINE_MODE, "tile")


@pytest.mark.parametrize(("field", "value"), [
    ("trials", 0), ("mixed_trials", -1), ("mac_bits", ("2by2",)), ("bandwidth", (0,)),
    ("formulations", ("per_core",)), ("formulations", ()), ("total_sram_kib", 0.0),
    ("schedules", ("stream",)), ("schedule_groups", (0,)), ("schedule_batch", 0),
    ("schedule_trials", 0), ("schedule_micro_batches", (3,)), ("modes", ("tile+fast",)),
])
def test_bad_parameters_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        s.grid({**s.PARAMS, field: value})


def _iso_rows(edges: str = "") -> list[dict]:
    rows = []
    for form, scale in (("fixed_total_sram", 1.0), ("per_core_sram", 2.0)):
        for bw, p, w in ((8.0, 300.0, 100.0), (math.inf, 900.0, 450.0)):
            for scheme, ips in (("pact_sawb", p), ("wrpn", w * scale)):
                rows.append({"kind": "iso_area", "scheme": scheme, "dram_gbps": bw,
                             "formulation": form, "design": "searched", "images_per_s": ips,
                             "mac_bits": "2x2", "cores": 8, "sram_kib": 256.0, "area": 13.0,
                             "area_budget": 14.0, "sampler": "grid", "trials": 7,
                             "distinct_designs": 7, "space_designs": 7, "edges": edges,
                             "runner_up": "4x4 x 45", "margin_pct": 5.0})
    return rows


MIXED_ROWS = [{"kind": "mixed", "design": "mixed", "formulation": "fixed_total_sram",
               "images_per_s": 120.0, "accuracy_proxy": 11.0, "min_accuracy": 10.0,
               "mac_bits": "2x2", "cores": 8, "sram_kib": 256.0, "layer_bits": "{}",
               "trials": 150, "feasible": 90},
              {"kind": "mixed", "design": "uniform", "formulation": "fixed_total_sram",
               "images_per_s": 100.0, "accuracy_proxy": 10.0, "min_accuracy": 10.0,
               "mac_bits": "2x2", "cores": 8, "sram_kib": 256.0, "layer_bits": "uniform",
               "trials": 7, "feasible": 7}]


def test_summary_speedup_is_the_ratio_of_best_designs():
    summary = s.summarize(pd.DataFrame(_iso_rows() + MIXED_ROWS), dict(s.PARAMS))
    sp = summary.tables["speedup"].set_index(["formulation", "dram_gbps"])["speedup"]
    assert sp["fixed_total_sram", 8.0] == pytest.approx(3.0)
    assert sp["fixed_total_sram", math.inf] == pytest.approx(2.0)
    assert sp["per_core_sram", 8.0] == pytest.approx(1.5)
    # the targets are the headline formulation's, and say so
    assert [t.value for t in summary.targets] == pytest.approx([2.0, 3.0])
    assert all("fixed_total_sram" in t.name for t in summary.targets)
    assert "beats uniform 2-bit" in summary.notes
    assert "1.20x" in summary.notes
    assert "PROXY" in summary.notes
    # rows without re-simulated modes: no fidelity table, and no note about one
    assert "speedup_by_fidelity" not in summary.tables
    assert "speedup_by_fidelity" not in summary.notes


def test_summary_names_the_formulations_coverage_and_edges():
    quiet = s.summarize(pd.DataFrame(_iso_rows() + MIXED_ROWS), dict(s.PARAMS))
    assert "fixed_total_sram" in quiet.notes
    assert "per_core_sram" in quiet.notes
    assert "every search enumerated all 7 designs" in quiet.notes
    assert "No best design sits on the edge" in quiet.notes
    assert "Edge of the space" not in quiet.notes
    assert set(quiet.tables["best_designs"]["formulation"]) == {"fixed_total_sram",
                                                               "per_core_sram"}
    note = "mac_bits=16x16 is the widest MAC offered (1x1 .. 16x16)"
    edgy = s.summarize(pd.DataFrame(_iso_rows(note) + MIXED_ROWS), dict(s.PARAMS))
    assert edgy.notes.count(note) == 8  # one warning per best design on the edge
    assert "Edge of the space" in edgy.notes
    # near-ties with another MAC precision are called out, and only they
    assert "close to a tie" not in quiet.notes
    tied = [{**r, "margin_pct": 0.5} if r["dram_gbps"] == 8.0 else r for r in _iso_rows()]
    notes = s.summarize(pd.DataFrame(tied + MIXED_ROWS), dict(s.PARAMS)).notes
    assert "4 of the 8 best designs beat the fastest design of any other MAC precision by " \
        "less than 1 %" in notes


# -- evaluate() and uniform_baseline() on a tiny configuration ---------------------------------
TINY = {"trials": 6, "mixed_trials": 10, "bandwidth": (8.0,), "mixed_bandwidth": 32.0,
        "mac_bits": ("2x2", "8x8"), "mixed_mac_bits": ("2x2", "4x4"),
        "sram_kib": (256.0, 1024.0), "mixed_bits": (1, 2, 4), "schedule_groups": (1, 2),
        "schedule_batch": 4, "schedule_micro_batches": (1, 4)}


def _tiny_workload(point, _ctx):
    """tiny_resnet in place of AlexNet: W2A2 body for PACT-SAWB, W2A4 for WRPN."""
    wl = tiny_resnet()
    bits = s.SCHEMES[point["scheme"]]
    body = {la.name: (bits["w_bits"], bits["a_bits"]) for la in wl.compute_layers()
            if not la.role}
    return apply_layer_bits(wl, body)


@pytest.fixture(scope="module")
def tiny_rows():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(s, "_workload", _tiny_workload)
        mp.setattr(s, "accuracy_proxy", lambda _p, wl, _c: tiny_proxy(wl))
        points = s.grid({**s.PARAMS, **TINY})
        rows = [r for p in points for r in s.evaluate(p, Context())]
    return pd.DataFrame(rows)


def _closed_form_cores(mac_bits: str, formulation: str, sram_kib: float) -> int:
    """Cores of 8x64 arrays that fill the sysml19 budget, from arch.area's closed forms: per core
    SRAM -> budget / core area; fixed total -> (budget - total SRAM area) / SRAM-less core area."""
    budget = sysml19_area_budget()
    mac = decode_pair(mac_bits)
    if formulation == "fixed_total_sram":
        left, per_core = budget - sram_area_mm2(s.PARAMS["total_sram_kib"]), core_area_mm2(8, 64,
                                                                                           mac)
    else:
        left, per_core = budget, core_area_mm2(8, 64, mac, sram_kib)
    return math.floor(left / per_core * (1 + 1e-9))


def _simulate_design(wl, mac_bits, sram_kib, cores, dram_gbps=32.0):
    """Independent re-simulation of a reported design (recipe bits, 8x64, sysml19 template)."""
    acc = dataclasses.replace(SearchSpace.template(decode_pair(mac_bits), 8, 64, sram_kib,
                                                   dram_gbps),
                              cores=int(cores))
    return acc, simulate(wl, acc)


def _every_design(wl, mac_choices, formulation, dram_gbps=32.0):
    """images/s of every design of a study space (closed-form cores), by brute force."""
    total = s.PARAMS["total_sram_kib"]
    srams = (None,) if formulation == "fixed_total_sram" else TINY["sram_kib"]
    speeds = {}
    for mac in mac_choices:
        for kib in srams:
            n = _closed_form_cores(mac, formulation, kib)
            per_core = total / n if kib is None else kib
            speeds[mac, per_core] = _simulate_design(wl, mac, per_core, n,
                                                     dram_gbps)[1].images_per_s
    return speeds


def test_evaluate_best_designs_fit_the_budget_and_are_what_they_claim(tiny_rows):
    df = tiny_rows
    budget = sysml19_area_budget()
    iso = df[df["kind"] == "iso_area"]
    assert sorted(iso["scheme"]) == ["pact_sawb"] * 2 + ["wrpn"] * 2
    for _, row in iso.iterrows():
        fixed = row["formulation"] == "fixed_total_sram"
        size = len(TINY["mac_bits"]) * (1 if fixed else len(TINY["sram_kib"]))
        # a space within the trial budget is enumerated: each design exactly once
        assert row["space_designs"] == size < TINY["trials"]
        assert row["trials"] == row["distinct_designs"] == size
        assert row["sampler"] == "grid"
        assert row["feasible"] >= 1
        assert row["area"] <= row["area_budget"] == pytest.approx(budget)
        # the reported design re-simulates to the reported images/s, and fills the budget
        wl = _tiny_workload({"scheme": row["scheme"]}, None)
        acc, res = _simulate_design(wl, row["mac_bits"], row["sram_kib"], row["cores"],
                                    row["dram_gbps"])
        assert acc.area == pytest.approx(row["area"])
        assert res.images_per_s == pytest.approx(row["images_per_s"])
        assert row["cores"] == _closed_form_cores(row["mac_bits"], row["formulation"],
                                                  row["sram_kib"])
        if fixed:  # the study's rule: the chip's SRAM is the same whatever the precision
            assert row["sram_total_kib"] == pytest.approx(s.PARAMS["total_sram_kib"])
        # ... and it is the fastest design of the space (brute force)
        speeds = _every_design(wl, TINY["mac_bits"], row["formulation"], row["dram_gbps"])
        assert row["images_per_s"] == pytest.approx(max(speeds.values()))
        runner_up = max(v for (mac, _), v in speeds.items() if mac != row["mac_bits"])
        assert row["margin_pct"] == pytest.approx(100 * (row["images_per_s"] / runner_up - 1))


def test_summary_speedup_of_evaluated_rows_is_the_ratio_of_best_images_per_s(tiny_rows):
    df = tiny_rows
    summary = s.summarize(df, {**s.PARAMS, **TINY})
    sp = summary.tables["speedup"].set_index(["formulation", "dram_gbps"])
    iso = df[df["kind"] == "iso_area"].set_index(["formulation", "scheme"])
    bw = TINY["bandwidth"][0]
    for form in s.PARAMS["formulations"]:
        expect = (iso.loc[(form, "pact_sawb"), "images_per_s"]
                  / iso.loc[(form, "wrpn"), "images_per_s"])
        assert sp.loc[(form, bw), "speedup"] == pytest.approx(expect)
        assert sp.loc[(form, bw), "pact_sawb_images_per_s"] == \
            iso.loc[(form, "pact_sawb"), "images_per_s"]


def test_mixed_point_respects_its_floor_and_the_baseline_is_exhaustive(tiny_rows):
    df = tiny_rows
    mixed, base = df[df["kind"] == "mixed"].iloc[0], df[df["kind"] == "mixed"].iloc[1]
    wl = _tiny_workload({"scheme": "pact_sawb"}, None)
    proxy = tiny_proxy(wl)
    floor = proxy({la.name: (la.w_bits, la.a_bits) for la in wl.compute_layers()})
    assert mixed["min_accuracy"] == pytest.approx(floor)
    assert mixed["accuracy_proxy"] >= floor
    assert mixed["accuracy_model"].startswith("proxy:")
    assert mixed["trials"] == TINY["mixed_trials"]
    # the uniform baseline: every design of the headline (fixed-total-SRAM) space, the fastest
    assert base["formulation"] == mixed["formulation"] == "fixed_total_sram"
    assert base["trials"] == base["distinct_designs"] == len(TINY["mixed_mac_bits"])
    speeds = _every_design(wl, TINY["mixed_mac_bits"], "fixed_total_sram")
    assert base["feasible"] == len(speeds)
    assert base["images_per_s"] == pytest.approx(max(speeds.values()))
    assert base["area"] <= sysml19_area_budget()
    assert base["accuracy_proxy"] == pytest.approx(floor)  # uniform = the recipe's bits
    assert base["design"].startswith("uniform 2-bit")


def test_schedule_points_report_each_schedules_best_design(tiny_rows):
    sched = tiny_rows[tiny_rows["kind"] == "schedule"]
    assert len(sched) == 2 * 5  # layer_by_layer; pipeline, data_parallel: any / 2+ groups
    for scheme, g in sched.groupby("scheme"):
        assert list(g["schedule"]) == ["layer_by_layer", "pipeline", "pipeline",
                                       "data_parallel", "data_parallel"]
        split = g[g["design"].str.endswith("on 2+ groups")]
        assert (split["groups"] >= 2).all()
        assert len(split) == 2
        for sch in ("pipeline", "data_parallel"):  # the best of a schedule beats its split best
            both = g[g["schedule"] == sch]["images_per_s"]
            assert both.iloc[0] >= both.iloc[1]
        # one search over MACs x schedules x groups, every design enumerated
        assert (g["space_designs"] == len(TINY["mac_bits"]) * 3 * 2 * 2).all()
        assert (g["distinct_designs"] == g["space_designs"]).all()
        wl = _tiny_workload({"scheme": scheme}, None)
        for _, row in g.iterrows():  # each row is what the simulator gives that design
            acc = dataclasses.replace(
                SearchSpace.template(decode_pair(row["mac_bits"]), 8, 64, row["sram_kib"],
                                     32.0), cores=int(row["cores"]))
            one_pool = row["schedule"] == "layer_by_layer" and row["groups"] == 1
            res = simulate(wl, acc, batch=4, schedule=row["schedule"],
                           groups=None if one_pool else int(row["groups"]),
                           micro_batch=int(row["micro_batch"]))
            assert res.images_per_s == pytest.approx(row["images_per_s"])
    summary = s.summarize(tiny_rows, {**s.PARAMS, **TINY})
    tab = summary.tables["schedules"]
    lbl = tab[tab["schedule"] == "layer_by_layer"]
    assert (lbl["vs_layer_by_layer"] == 1.0).all()
    assert "What the schedules change" in summary.notes


MODE_OPTIONS = {"layer+prefetch": {"fidelity": "layer", "prefetch": True},
                "layer": {"fidelity": "layer", "prefetch": False},
                "tile+prefetch": {"fidelity": "tile", "prefetch": True},
                "tile": {"fidelity": "tile", "prefetch": False}}
"""The modes spelled out here, not taken from `studies.pipeline.sim_options`."""


def test_speedup_by_fidelity_cells_are_direct_simulations_of_the_best_designs(tiny_rows):
    summary = s.summarize(tiny_rows, {**s.PARAMS, **TINY})
    speed = summary.tables["speedup_by_fidelity"].set_index("dram_gbps")
    rates = summary.tables["images_per_s_by_fidelity"].set_index(["scheme", "dram_gbps"])
    assert list(speed.columns) == ["pact_sawb_design", "wrpn_design", *SIM_MODES]
    iso = tiny_rows[(tiny_rows["kind"] == "iso_area")
                    & (tiny_rows["formulation"] == "fixed_total_sram")].set_index("scheme")
    direct, bw = {}, TINY["bandwidth"][0]
    for scheme in ("pact_sawb", "wrpn"):
        row = iso.loc[scheme]
        design = f"{row['mac_bits']} x {int(row['cores'])} cores"
        assert rates.loc[(scheme, bw), "design"] == design
        wl = _tiny_workload({"scheme": scheme}, None)
        acc = dataclasses.replace(SearchSpace.template(decode_pair(row["mac_bits"]), 8, 64,
                                                       row["sram_kib"], bw),
                                  cores=int(row["cores"]))
        direct[scheme] = {m: simulate(wl, acc, batch=1, **o).images_per_s
                          for m, o in MODE_OPTIONS.items()}
        # the headline column is the search's own number
        assert rates.loc[(scheme, bw), HEADLINE_MODE] == pytest.approx(row["images_per_s"])
        for m in SIM_MODES:
            assert rates.loc[(scheme, bw), m] == pytest.approx(direct[scheme][m], rel=1e-12)
    for m in SIM_MODES:
        assert speed.loc[bw, m] == pytest.approx(
            direct["pact_sawb"][m] / direct["wrpn"][m], rel=1e-12)
    # the four modes give four different images/s here (memory-bound at 8 GB/s: prefetch and
    # tile events both matter), so a swapped mode mapping fails above
    for scheme in direct:
        assert len({round(v, 6) for v in direct[scheme].values()}) == 4, direct
    assert "**Simulator fidelity** (`speedup_by_fidelity`" in summary.notes
    assert "were not re-run per mode" in summary.notes
    # per_core_sram designs are not re-simulated (the table is the headline formulation's)
    per_core = tiny_rows[tiny_rows["formulation"] == "per_core_sram"]
    assert per_core[f"images_per_s@{HEADLINE_MODE}"].isna().all()

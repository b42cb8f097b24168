"""studies.wrpn_vs_pact_search: grid validation, the summary's arithmetic, and evaluate() /
_uniform_baseline() on a tiny workload (a few trials, the real simulator)."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest
from searchkit import tiny_proxy, tiny_resnet

import studies
from arch.presets import sysml19_area_budget
from dse.search.space import SearchSpace, apply_layer_bits, decode_pair, max_cores_within
from dse.sim import simulate
from dse.study.runner import Context
from studies import wrpn_vs_pact_search as s


def test_follows_the_protocol_and_grid():
    assert studies.get("wrpn_vs_pact_search") is s
    points = s.grid(dict(s.PARAMS))
    iso = [p for p in points if p["kind"] == "iso_area"]
    assert len(iso) == 2 * len(s.PARAMS["bandwidth"])
    assert {p["scheme"] for p in iso} == {"pact_sawb", "wrpn"}
    mixed = [p for p in points if p["kind"] == "mixed"]
    assert len(mixed) == 1
    assert mixed[0]["trials"] == s.PARAMS["mixed_trials"]


@pytest.mark.parametrize(("field", "value"), [
    ("trials", 0), ("mixed_trials", -1), ("mac_bits", ("2by2",)), ("bandwidth", (0,)),
])
def test_bad_parameters_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        s.grid({**s.PARAMS, field: value})


def test_summary_speedup_is_the_ratio_of_best_designs():
    rows = []
    for bw, p, w in ((8.0, 300.0, 100.0), (math.inf, 900.0, 450.0)):
        for scheme, ips in (("pact_sawb", p), ("wrpn", w)):
            rows.append({"kind": "iso_area", "scheme": scheme, "dram_gbps": bw,
                         "images_per_s": ips, "mac_bits": "2x2", "cores": 8, "sram_kib": 256.0,
                         "area": 13.0, "area_budget": 14.0, "trials": 40,
                         "distinct_designs": 16})
    rows += [{"kind": "mixed", "design": "mixed", "images_per_s": 120.0, "accuracy_proxy": 11.0,
              "min_accuracy": 10.0, "mac_bits": "2x2", "cores": 8, "sram_kib": 256.0,
              "layer_bits": "{}", "trials": 150, "feasible": 90},
             {"kind": "mixed", "design": "uniform", "images_per_s": 100.0,
              "accuracy_proxy": 10.0, "min_accuracy": 10.0, "mac_bits": "2x2", "cores": 8,
              "sram_kib": 256.0, "layer_bits": "uniform", "trials": 20, "feasible": 20}]
    summary = s.summarize(pd.DataFrame(rows), dict(s.PARAMS))
    sp = summary.tables["speedup"].set_index("dram_gbps")["speedup"]
    assert sp[8.0] == pytest.approx(3.0)
    assert sp[math.inf] == pytest.approx(2.0)
    assert "beats uniform 2-bit" in summary.notes
    assert "1.20x" in summary.notes
    assert "PROXY" in summary.notes


# -- evaluate() and _uniform_baseline() on a tiny configuration --------------------------------
TINY = {"trials": 6, "mixed_trials": 10, "bandwidth": (32.0,), "mixed_bandwidth": 32.0,
        "mac_bits": ("2x2", "8x8"), "mixed_mac_bits": ("2x2", "4x4"),
        "sram_kib": (256.0, 1024.0), "mixed_bits": (1, 2, 4)}


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
        mp.setattr(s, "_proxy", lambda _p, wl, _c: tiny_proxy(wl))
        points = s.grid({**s.PARAMS, **TINY})
        rows = [r for p in points for r in s.evaluate(p, Context())]
    return pd.DataFrame(rows)


def _simulate_design(wl, mac_bits, sram_kib, cores):
    """Independent re-simulation of a reported design (recipe bits, 8x64, sysml19 template)."""
    acc = dataclasses.replace(SearchSpace.template(decode_pair(mac_bits), 8, 64, sram_kib, 32.0),
                              cores=int(cores))
    return acc, simulate(wl, acc)


def test_evaluate_best_designs_fit_the_budget_and_are_what_they_claim(tiny_rows):
    df = tiny_rows
    budget = sysml19_area_budget()
    iso = df[df["kind"] == "iso_area"]
    assert sorted(iso["scheme"]) == ["pact_sawb", "wrpn"]
    for _, row in iso.iterrows():
        assert row["trials"] == TINY["trials"]
        assert row["feasible"] >= 1
        assert row["area"] <= row["area_budget"] == pytest.approx(budget)
        # the reported design re-simulates to the reported images/s, and fills the budget
        wl = _tiny_workload({"scheme": row["scheme"]}, None)
        acc, res = _simulate_design(wl, row["mac_bits"], row["sram_kib"], row["cores"])
        assert acc.area == pytest.approx(row["area"])
        assert res.images_per_s == pytest.approx(row["images_per_s"])
        template = SearchSpace.template(decode_pair(row["mac_bits"]), 8, 64, row["sram_kib"],
                                        32.0)
        assert row["cores"] == max_cores_within(template, budget)


def test_summary_speedup_of_evaluated_rows_is_the_ratio_of_best_images_per_s(tiny_rows):
    df = tiny_rows
    summary = s.summarize(df, {**s.PARAMS, **TINY})
    sp = summary.tables["speedup"].set_index("dram_gbps")
    iso = df[df["kind"] == "iso_area"].set_index("scheme")
    expect = iso.loc["pact_sawb", "images_per_s"] / iso.loc["wrpn", "images_per_s"]
    assert sp.loc[32.0, "speedup"] == pytest.approx(expect)
    assert sp.loc[32.0, "pact_sawb_images_per_s"] == iso.loc["pact_sawb", "images_per_s"]


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
    # _uniform_baseline: every (MAC bits, SRAM) design, the fastest one
    budget = sysml19_area_budget()
    best = s._uniform_baseline(wl, tuple(decode_pair(m) for m in TINY["mixed_mac_bits"]),
                               TINY["sram_kib"], 32.0, proxy)
    assert best["trials"] == len(TINY["mixed_mac_bits"]) * len(TINY["sram_kib"])
    assert best["area"] <= budget
    speeds = []
    for mac in TINY["mixed_mac_bits"]:
        for kib in TINY["sram_kib"]:
            n = max_cores_within(SearchSpace.template(decode_pair(mac), 8, 64, kib, 32.0), budget)
            if n:
                speeds.append(_simulate_design(wl, mac, kib, n)[1].images_per_s)
    assert best["feasible"] == len(speeds)
    assert best["images_per_s"] == pytest.approx(max(speeds))
    assert best["accuracy_proxy"] == pytest.approx(floor)  # uniform = the recipe's bits
    assert base["images_per_s"] == pytest.approx(best["images_per_s"])
    assert base["design"].startswith("uniform 2-bit")

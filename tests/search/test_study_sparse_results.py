"""studies.wrpn_vs_pact_search's summary when searches come back thin: a search with a tiny
trial budget that found no feasible design (its row has none of the design's columns), a best
design with no other MAC precision to be its runner-up, a schedule without a result. The summary
must be written, leave those searches out of the speedups and targets, and say so - not crash,
and not compare a missing design as if it were a number."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from studies import wrpn_vs_pact_search as s


def _searched(scheme: str, bw: float, ips: float | None, form: str = "fixed_total_sram") -> dict:
    """A best-design row as `best_design_row` writes it: one MAC precision offered (no
    runner-up), or with ``ips=None`` a search whose trials found no feasible design."""
    row = {"kind": "iso_area", "scheme": scheme, "design": "searched", "formulation": form,
           "dram_gbps": bw, "sampler": "grid", "trials": 1, "complete": 1, "pruned": 0,
           "feasible": 0 if ips is None else 1, "distinct_designs": 1, "space_designs": 1}
    if ips is not None:
        row.update(images_per_s=ips, mac_bits="2x2", cores=64, sram_kib=256.0, area=14.0,
                   area_budget=14.1, trial=0, sram_total_kib=16384.0, edges="", layer_bits="{}")
    return row


def _mixed(mixed_ips: float | None, uniform_ips: float | None) -> list[dict]:
    rows = []
    for design, ips in (("mixed (searched per-layer bits)", mixed_ips),
                        ("uniform 2-bit (best hardware, enumerated)", uniform_ips)):
        r = {"kind": "mixed", "scheme": "pact_sawb", "design": design,
             "formulation": "fixed_total_sram", "dram_gbps": 32.0, "sampler": "tpe",
             "trials": 1, "complete": 1, "pruned": 0, "feasible": 0, "distinct_designs": 1,
             "space_designs": 1, "min_accuracy": 10.0}
        if ips is not None:
            r.update(images_per_s=ips, mac_bits="2x2", cores=64, accuracy_proxy=11.0,
                     layer_bits="{}", feasible=1)
        rows.append(r)
    return rows


def _summary(rows: list[dict], **params):
    return s.summarize(pd.DataFrame(rows), {**s.PARAMS, "formulations": ("fixed_total_sram",),
                                            **params})


def test_best_designs_without_a_runner_up():
    """One MAC precision offered: no design of another precision, so no runner_up column."""
    rows = [_searched("pact_sawb", math.inf, 900.0), _searched("wrpn", math.inf, 300.0)]
    summary = _summary(rows + _mixed(120.0, 100.0))
    assert [t.value for t in summary.targets] == pytest.approx([3.0, 3.0])
    assert summary.tables["best_designs"]["runner_up"].isna().all()
    assert "beats uniform 2-bit" in summary.notes
    assert "No feasible design" not in summary.notes


def test_no_feasible_design_anywhere_gives_no_target_and_says_so():
    rows = [_searched("pact_sawb", math.inf, None), _searched("wrpn", math.inf, None)]
    summary = _summary(rows + _mixed(None, 100.0))
    assert summary.targets == ()
    assert summary.tables["speedup"]["speedup"].isna().all()
    assert summary.notes.count("**No feasible design**") == 3  # two searches and the mixed one
    assert "at no bandwidth did both searches find a feasible design" in summary.notes
    assert "cannot be compared with uniform 2-bit: the mixed-precision search found no " \
           "feasible design" in summary.notes
    assert "does not beat" not in summary.notes
    assert "nan" not in summary.notes


def test_one_infeasible_bandwidth_is_left_out_of_the_speedup():
    rows = [_searched("pact_sawb", 8.0, None), _searched("wrpn", 8.0, 100.0),
            _searched("pact_sawb", math.inf, 600.0), _searched("wrpn", math.inf, 200.0)]
    summary = _summary(rows + _mixed(120.0, None), bandwidth=(8.0, math.inf))
    sp = summary.tables["speedup"].set_index("dram_gbps")["speedup"]
    assert math.isnan(sp[8.0])
    assert sp[math.inf] == pytest.approx(3.0)
    assert [t.value for t in summary.targets] == pytest.approx([3.0, 3.0])
    assert "PACT-SAWB" in summary.notes
    assert "8 GB/s: none of its 1 trials" in summary.notes
    assert "the uniform baseline found no feasible design" in summary.notes


def test_a_schedule_without_a_result_and_a_partial_schedule_search():
    rows = [_searched("pact_sawb", math.inf, 900.0), _searched("wrpn", math.inf, 300.0)]
    sched = []
    for scheme, ips in (("pact_sawb", 500.0), ("wrpn", None)):
        r = {**_searched(scheme, 32.0, ips), "kind": "schedule", "design": "best pipeline",
             "batch": 16, "space_designs": 336}
        if ips is not None:
            r.update(schedule="pipeline", groups=2, micro_batch=1, latency_s=0.03, dram_bytes=1e8)
        sched.append(r)
    summary = _summary(rows + sched + _mixed(120.0, 100.0))
    assert "pipeline: no feasible design" in summary.notes
    assert "1 of its 336 designs evaluated" in summary.notes  # not "all 336 enumerated"
    assert "best pipeline" in summary.notes


# -- grid: one value where a tuple is expected, and values checked before any search runs -----
def test_one_value_where_a_tuple_is_expected():
    points = s.grid({**s.PARAMS, "mac_bits": "2x2", "mixed_mac_bits": "4x4", "mixed_bits": 2,
                     "sram_kib": 512, "schedules": ()})
    assert {p["mac_bits"] for p in points if p["kind"] == "iso_area"} == {("2x2",)}
    mixed = next(p for p in points if p["kind"] == "mixed")
    assert mixed["mac_bits"] == ("4x4",)
    assert mixed["mixed_bits"] == (2,)
    assert {p["sram_kib"] for p in points} == {(512.0,)}


@pytest.mark.parametrize(("field", "value"), [
    ("sram_kib", ()), ("sram_kib", (0,)), ("sram_kib", None), ("sram_kib", "x"),
    ("mixed_bits", 0), ("first_last_bits", "x"), ("first_last_bits", 0), ("seed", 2.5),
    ("seed", "x"), ("seed", -1),
])
def test_bad_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"{field}="):
        s.grid({**s.PARAMS, field: value})


def test_schedules_at_unlimited_bandwidth_say_unlimited():
    """schedule_bandwidth=inf printed '16-image stream, inf GB/s'."""
    rows = [_searched("pact_sawb", math.inf, 900.0), _searched("wrpn", math.inf, 300.0)]
    sched = [{**_searched(scheme, math.inf, ips), "kind": "schedule", "design": "best pipeline",
              "batch": 16, "schedule": "pipeline", "groups": 2, "micro_batch": 1}
             for scheme, ips in (("pact_sawb", 500.0), ("wrpn", 200.0))]
    notes = _summary(rows + sched + _mixed(120.0, 100.0)).notes
    assert "16-image stream, unlimited, all 1 designs enumerated" in notes
    assert "inf GB/s" not in notes


def test_mixed_precision_at_unlimited_bandwidth_says_unlimited():
    rows = [_searched("pact_sawb", math.inf, 900.0), _searched("wrpn", math.inf, 300.0)]
    notes = _summary(rows + _mixed(120.0, 100.0), mixed_bandwidth=math.inf).notes
    assert "(1.20x) at unlimited bandwidth, after 1 TPE trials" in notes
    default = _summary(rows + _mixed(120.0, 100.0)).notes
    assert "(1.20x) at 32 GB/s, after 1 TPE trials" in default


def test_one_search_without_a_design_leaves_out_its_bandwidth_not_the_fidelity_table() -> None:
    from studies import _search_tables
    from studies.pipeline import HEADLINE_MODE, SIM_MODES

    rows = []
    for bw, pact, wrpn in ((16.0, 300.0, 100.0), (32.0, None, 120.0)):
        for scheme, ips in (("pact_sawb", pact), ("wrpn", wrpn)):
            r = _searched(scheme, bw, ips)
            for m in SIM_MODES:  # each found design re-simulated in every mode
                r[f"images_per_s@{m}"] = math.nan if ips is None else ips
            rows.append(r)
    speed, rates = _search_tables.fidelity_tables(pd.DataFrame(rows), "fixed_total_sram")
    assert speed is not None  # it was None: one missing design dropped the whole table
    assert list(speed["dram_gbps"]) == [16.0]
    assert speed[HEADLINE_MODE].tolist() == pytest.approx([3.0])
    assert len(rates) == 3  # the three designs that exist

"""studies.wrpn_vs_pact_search: grid validation and the summary's arithmetic (no simulation)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

import studies
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

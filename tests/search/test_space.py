"""SearchSpace validation, sampling, iso-area core fill and per-layer bit rewriting."""

from __future__ import annotations

import dataclasses
import math

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from searchkit import tiny_resnet

from arch.presets import sysml19_area_budget
from dse.search.space import (
    SearchSpace,
    apply_layer_bits,
    decode_pair,
    encode_pair,
    max_cores_within,
)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"mac_bits": ()}, "mac_bits"),
    ({"mac_bits": ((2, 40),)}, "mac_bits"),
    ({"mac_bits": ((2, 2), (2, 2))}, "mac_bits"),
    ({"array_shapes": ((0, 64),)}, "array_shapes"),
    ({"sram_kib": (512.0, -1.0)}, "sram_kib"),
    ({"sram_kib": (float("inf"),)}, "sram_kib"),
    ({"cores": (8, 4)}, "cores"),
    ({"cores": (0, 4)}, "cores"),
    ({"layer_bits": "mixed"}, "layer_bits"),
    ({"layer_w_bits": (0, 2)}, "layer_w_bits"),
    ({"layer_a_bits": ()}, "layer_a_bits"),
    ({"first_last_bits": 33}, "first_last_bits"),
    ({"shortcut_bits": True}, "shortcut_bits"),
])
def test_bad_bounds_name_field_value_and_rule(kwargs, field):
    with pytest.raises(ValueError, match=field) as e:
        SearchSpace(**kwargs)
    msg = str(e.value)
    assert repr(next(iter(kwargs.values()))) in msg
    assert "expected" in msg


def test_every_problem_listed_at_once():
    with pytest.raises(ValueError) as e:
        SearchSpace(mac_bits=(), cores=(3, 1), layer_bits="x")
    assert all(f in str(e.value) for f in ("mac_bits", "cores", "layer_bits"))


@given(st.integers(1, 32), st.integers(1, 32))
def test_pair_codec_round_trip(a, b):
    assert decode_pair(encode_pair((a, b))) == (a, b)


@pytest.mark.parametrize("text", ["2by2", "2x", "x4", "2x4x8", "-1x2"])
def test_bad_pair_text(text):
    with pytest.raises(ValueError, match="pair"):
        decode_pair(text)


def test_dict_round_trip():
    s = SearchSpace(cores=(2, 16), layer_bits="search", first_last_bits=8, sram_kib=(256.0,))
    assert SearchSpace.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match="unknown SearchSpace fields"):
        SearchSpace.from_dict({**s.to_dict(), "bogus": 1})


def test_fixed_and_searched_layers(tiny_workload):
    s = SearchSpace(layer_bits="search", first_last_bits=16, shortcut_bits=8)
    assert s.fixed_bits(tiny_workload) == {"c1": (16, 16), "fc": (16, 16), "sc": (8, 8)}
    assert s.searched_layers(tiny_workload) == ["c2", "c3"]
    # no bits given: fixed layers keep the recipe's bits as extracted (fc reads 2-bit inputs)
    wl = apply_layer_bits(tiny_workload, {"fc": (16, 2)})
    keep = SearchSpace(layer_bits="search")
    assert keep.fixed_bits(wl) == {"c1": (16, 16), "fc": (16, 2), "sc": (16, 16)}
    # shortcuts not fixed -> searched like the others
    s2 = dataclasses.replace(s, fixed_roles=("first", "last"))
    assert set(s2.searched_layers(tiny_workload)) == {"c2", "c3", "sc"}
    # "mac": every non-fixed layer follows the array precision
    s3 = dataclasses.replace(s, layer_bits="mac")
    bits = s3.layer_bits_for(tiny_workload, (2, 4))
    assert bits == {"c1": (16, 16), "c2": (2, 4), "c3": (2, 4), "sc": (8, 8), "fc": (16, 16)}
    # "recipe": as extracted
    s4 = SearchSpace(layer_bits="recipe")
    assert s4.layer_bits_for(tiny_workload, (8, 8))["sc"] == (16, 16)
    with pytest.raises(ValueError, match="fixed_roles"):
        SearchSpace(fixed_roles=("middle",))


def test_max_cores_within_matches_linear_scan():
    template = SearchSpace.template((2, 2), 8, 64, 512.0, 32.0)
    budget = sysml19_area_budget()
    n = max_cores_within(template, budget)
    scan = 0
    for c in range(1, 400):
        if dataclasses.replace(template, cores=c).area <= budget:
            scan = c
    assert n == scan > 8
    assert max_cores_within(template, template.area * 0.5) == 0
    with pytest.raises(ValueError, match="area_budget"):
        max_cores_within(template, -1.0)


def test_fill_trades_sram_for_cores():
    """Iso-area fill: more SRAM per core -> fewer cores, never over budget."""
    budget = sysml19_area_budget()
    counts = [max_cores_within(SearchSpace.template((2, 2), 8, 64, s, 32.0), budget)
              for s in (128.0, 512.0, 2048.0)]
    assert counts[0] > counts[1] > counts[2] >= 1


def test_suggest_fixed_trial(tiny_workload):
    s = SearchSpace(layer_bits="search", first_last_bits=16, shortcut_bits=16, cores=(4, 4))
    params = {"mac_bits": "2x4", "array": "8x64", "sram_kib": 512.0, "cores": 4,
              "w:c2": 2, "a:c2": 8, "w:c3": 4, "a:c3": 2}
    d = s.suggest(optuna.trial.FixedTrial(params), tiny_workload, area_budget=100.0,
                  dram_gbps=16.0)
    assert d is not None
    acc = d.accelerator
    assert (acc.cores, acc.rows, acc.cols, acc.mac_bits, acc.sram_kib, acc.dram_gbps) == \
        (4, 8, 64, (2, 4), 512.0, 16.0)
    assert d.layer_bits["c2"] == (2, 8)
    assert d.layer_bits["c3"] == (4, 2)
    assert d.layer_bits["c1"] == d.layer_bits["fc"] == d.layer_bits["sc"] == (16, 16)


def test_apply_layer_bits_rewrites_records_and_edges(tiny_workload):
    wl = tiny_workload
    new = apply_layer_bits(wl, {"c2": (4, 8), "c3": (1, 3)})
    # the original is untouched (frozen records, copied graph)
    assert (wl["c2"].w_bits, wl["c2"].a_bits) == (2, 2)
    c2 = new["c2"]
    assert (c2.w_bits, c2.a_bits) == (4, 8)
    # bytes follow the bits: ceil(elements * bits / 8), the conservation the simulator relies on
    assert c2.weight_bytes == math.ceil(c2.weight_elems * 4 / 8)
    assert c2.input_bytes == math.ceil(c2.input_elems * 8 / 8)
    e = new.graph.edges["act1", "c2"]
    assert e["bits"] == 8
    assert e["bytes"] == math.ceil(math.prod(e["shape"]) * 8 / 8)
    # the activation that writes c2's input stores it at c2's a_bits; act1 also feeds sc (16b)
    assert new["act1"].o_bits == 16
    assert new["act2"].o_bits == 3
    assert new.total_macs == wl.total_macs
    with pytest.raises(ValueError, match="unknown compute layers"):
        apply_layer_bits(wl, {"act1": (2, 2)})


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 16), min_size=4, max_size=4))
def test_apply_layer_bits_weight_bytes_property(bits):
    names = ["c2", "c3", "sc", "fc"]
    new = apply_layer_bits(tiny_resnet(), {n: (b, b) for n, b in zip(names, bits)})
    for n, b in zip(names, bits):
        la = new[n]
        assert la.weight_bytes == math.ceil(la.weight_elems * b / 8)
    # every activation op stores its tensor at the widest bits any compute reader needs
    for act in ("act1", "act2", "act3", "pool"):
        readers = [new[s] for s in new.successors(act) if new[s].is_compute]
        if readers and any(n in names for n in (r.name for r in readers)):
            assert new[act].o_bits == max(r.a_bits for r in readers)

"""The network latency breakdown (`SimResult.latency_breakdown`): hand-checked on a chain and a
branching graph, exact sums on ResNet-50, and its columns in `to_dict` (random chains: in
test_sim_properties.py)."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

import pytest
from test_sim_helpers import conv_layer, memory_op, resnet50_graph

from arch.spec import Accelerator
from dse import SimResult, simulate
from dse.sim.results import LATENCY_PARTS
from workloads.graph import Layer, Workload

NS = 1e-9


def _ns(res: SimResult) -> dict[str, float]:
    return {k: round(v / NS, 6) for k, v in res.latency_breakdown.items()}


def _parts(**nonzero: float) -> dict[str, float]:
    return {k: nonzero.get(k, 0.0) for k in LATENCY_PARTS}


def _inp(c: int = 4) -> Layer:
    return Layer(name="input", op="input", c=c, h=2, w=2, k=c, ho=2, wo=2, a_bits=8, o_bits=8,
                 input_elems=4 * c, output_elems=4 * c)


def _union_s(spans: list[tuple[float, float]], at_least: int) -> float:
    """Time covered by at least ``at_least`` of ``spans`` (brute force over the boundaries)."""
    cuts = sorted({t for s in spans for t in s})
    return sum(b - a for a, b in pairwise(cuts)
               if sum(s <= a and b <= e for s, e in spans) >= at_least)


def test_chain_by_hand(tiny_acc: Accelerator) -> None:
    # input -> a -> b -> output on 1 core, 4x4 OS, 1 GHz, 1 byte/ns (the trace test's chain):
    # a: on-load 32 ns, compute 9 ns = 64 MACs / 16 MAC units (4 ns) + 5 ns fold fill/drain;
    # b: on-load 16 ns (input resident), compute 9 ns (4 + 5), off-load 16 ns. Total 82 ns.
    la = conv_layer("a", c=4, h=2, w=2, k=4, r=1, bits=(8, 8))
    lb = conv_layer("b", c=4, h=2, w=2, k=4, r=1, bits=(8, 8))
    out = Layer(name="output", op="output", c=4, k=4, input_elems=16)
    res = simulate(Workload.from_layers([_inp(), la, lb, out]), replace(tiny_acc, cores=1),
                   prefetch=False)
    assert _ns(res) == _parts(ideal_compute=8.0, spatial=10.0, onload=48.0, offload=16.0)
    assert sum(res.latency_breakdown.values()) == pytest.approx(res.latency_s, rel=1e-12)
    d = res.to_dict()
    assert d["latency_onload_s"] == res.latency_breakdown["onload"]
    assert {f"latency_{k}_s" for k in LATENCY_PARTS} <= set(d)


def test_branching_graph_by_hand(tiny_acc: Accelerator) -> None:
    # input -> a -> b -> add, input -> c -> add -> output on 2 cores at 1 byte/ns: a and c start
    # together on one core each and split the bandwidth for their 32 B on-loads (64 ns), compute
    # 9 ns -> 73 ns of overlap. b runs alone: on-load its weights 16 ns, compute 9 ns (ideal
    # 64 MACs / 32 MAC units = 2 ns, spatial 7 ns). add runs alone: 16 elements on 2 cores x 4
    # lanes = 2 ns vector, then stores its 16 B output (16 ns). Total 73 + 25 + 18 = 116 ns.
    la, lb, lc = (conv_layer(n, c=4, h=2, w=2, k=4, r=1, bits=(8, 8)) for n in "abc")
    add = memory_op("add", "add", c=4, h=2, w=2, ho=2, wo=2, bits=8, inputs=2, vector_ops=16)
    out = Layer(name="output", op="output", c=4, k=4, input_elems=16)
    wl = Workload.from_layers([_inp(), la, lb, lc, add, out], edges=[
        ("input", "a"), ("a", "b"), ("input", "c"), ("b", "add"), ("c", "add"),
        ("add", "output")])
    res = simulate(wl, tiny_acc, prefetch=False)
    assert res.latency_s == pytest.approx(116 * NS)
    assert _ns(res) == _parts(ideal_compute=2.0, spatial=7.0, vector=2.0, onload=16.0,
                              offload=16.0, overlap=73.0)
    assert sum(res.latency_breakdown.values()) == pytest.approx(res.latency_s, rel=1e-12)


def test_resnet50_branches_sum_exactly_and_overlap_matches_the_layer_spans() -> None:
    # 256 cores leave room for a projection shortcut to run beside its block's main path
    acc = Accelerator(cores=256, rows=8, cols=64, mac_bits=(2, 2), freq_ghz=1.0, sram_kib=64.0,
                      dram_gbps=32.0)
    wl = resnet50_graph(bits=(2, 2), first_last=(8, 8))
    res = simulate(wl, acc, prefetch=False)
    b = res.latency_breakdown
    assert set(b) == set(LATENCY_PARTS)
    assert all(v >= 0 for v in b.values())
    assert sum(b.values()) == pytest.approx(res.latency_s, rel=1e-12)
    assert b["overlap"] > 0
    # independent: time covered by two or more nodes' [start, end), and by none
    assert res.memory_ops is not None
    spans = [(r.start_s, r.end_s) for df in (res.layers, res.memory_ops)
             for r in df.itertuples(index=False) if r.end_s > r.start_s]
    assert b["overlap"] == pytest.approx(_union_s(spans, 2), rel=1e-9)
    assert b["idle"] == pytest.approx(res.latency_s - _union_s(spans, 1), abs=1e-15)
    # a layer above the MAC precision (conv1, fc1000 at 8 bits on a 2-bit array) costs precision
    assert b["precision"] > 0


"""Multi-core schedules (`dse.sim.schedule`) against hand-derived pipeline algebra.

The oracles are closed forms of a pipeline of stage times t_i, each t_i measured by the same
simulator on one layer alone (the engine that plays a layer is shared; what is tested here is
how the schedule composes them): a balanced S-stage chain finishes B images in (B + S - 1) t and
runs at 1/t, S times the rate of the same layers played one image at a time; an unbalanced one
runs at 1/max t_i; stages that only move DRAM bytes share the bandwidth; a network link that
carries every image's tensor sets the rate at its bandwidth / bytes.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
from test_sim_helpers import conv_layer

from arch.groups import noc_route
from arch.spec import Accelerator
from dse.sim import simulate
from workloads.graph import Layer, Workload

B = 8  # images in the stream


def chain(ks: list[int], *, c: int = 16, hw: int = 10, bits: tuple[int, int] = (8, 8),
          name: str = "chain") -> Workload:
    """input -> L0 -> L1 -> ... -> output, 3x3 convs keeping the size (pre-padded inputs), layer
    i with ``ks[i]`` filters."""
    layers = [Layer(name="input", op="input", n=1, c=c, h=hw, w=hw, k=c, ho=hw, wo=hw,
                    a_bits=bits[1], o_bits=bits[1], input_elems=c * hw * hw,
                    output_elems=c * hw * hw)]
    c_in = c
    for i, k in enumerate(ks):
        layers.append(conv_layer(f"L{i}", c=c_in, h=hw + 2, w=hw + 2, k=k, r=3, bits=bits))
        c_in = k
    layers.append(Layer(name="output", op="output", n=1, c=c_in, k=c_in,
                        input_elems=c_in * hw * hw))
    return Workload.from_layers(layers, name=name, batch=1, input_shape=(c, hw, hw))


def ideal(cores: int, **kw: object) -> Accelerator:
    """Unlimited DRAM and no latency: a layer's time is its array time."""
    base = dict(cores=cores, rows=4, cols=4, mac_bits=(8, 8), freq_ghz=1.0, sram_kib=64.0,
                dram_gbps=math.inf, dram_latency_ns=0.0, dram_burst_bytes=1, name="ideal")
    base.update(kw)
    return Accelerator(**base)  # type: ignore[arg-type]


def alone(wl: Workload, layer: str, acc: Accelerator) -> float:
    """Layer ``layer``'s time on ``acc`` alone (one image)."""
    la = wl.graph.nodes[layer]["layer"]
    one = Workload.from_layers([la], name=layer, batch=1)
    return simulate(one, acc, batch=1).latency_s


def test_balanced_chain_fills_runs_at_one_stage_time_and_drains() -> None:
    wl = chain([16, 16, 16, 16])
    acc = ideal(4)
    t = alone(wl, "L1", ideal(1))
    r = simulate(wl, acc, batch=B, schedule="pipeline", groups=4)
    assert list(r.stages["layers"]) == [1, 1, 1, 1]
    assert r.makespan_s == pytest.approx((B + 3) * t, rel=1e-9)
    assert r.latency_s == pytest.approx(4 * t, rel=1e-9)
    assert r.images_per_s == pytest.approx(1 / t, rel=1e-9)
    # the same stages one image at a time: 4 x slower in steady state
    lbl = simulate(wl, acc, batch=B, schedule="layer_by_layer", groups=4,
                   stages={"L0": 0, "L1": 1, "L2": 2, "L3": 3})
    assert lbl.images_per_s == pytest.approx(1 / (4 * t), rel=1e-9)
    assert r.images_per_s / lbl.images_per_s == pytest.approx(4.0, rel=1e-9)
    # every MAC once: per layer, over the stream, and on the cores' timelines
    macs = sum(wl.graph.nodes[n]["layer"].macs for n in wl.graph.nodes)
    assert r.macs == B * macs
    assert r.timeline()["macs"].sum() == pytest.approx(B * macs, rel=1e-12)
    assert r.layers["macs"].tolist() == [B * wl.graph.nodes[n]["layer"].macs
                                         for n in ("L0", "L1", "L2", "L3")]


def test_micro_batches_stream_as_one_tensor_each() -> None:
    wl = chain([16, 16, 16, 16])
    one = Workload.from_layers([wl.graph.nodes["L1"]["layer"]], name="L1", batch=1)
    t2 = simulate(one, ideal(1), batch=2).latency_s  # a stage's time for two images at once
    r = simulate(wl, ideal(4), batch=B, schedule="pipeline", groups=4, micro_batch=2)
    assert r.makespan_s == pytest.approx((B // 2 + 3) * t2, rel=1e-9)
    assert r.images_per_s == pytest.approx(2 / t2, rel=1e-9)
    assert r.stages["images"].tolist() == [B] * 4
    # weights that do not stay on chip stream once per micro-batch, not once per image
    acc = ideal(2, sram_kib=8.0, dram_gbps=8.0)  # weights fit a tile loop, not the stream
    big = chain([64, 64], c=64, hw=6)
    w = {m: simulate(big, acc, batch=B, schedule="pipeline", groups=2, micro_batch=m)
         .dram_bytes_by_operand["weights"] for m in (1, 4)}
    weights = sum(big.graph.nodes[n]["layer"].weight_bytes for n in ("L0", "L1"))
    assert w[1] == pytest.approx(B * weights, rel=0.01)
    assert w[4] == pytest.approx(B / 4 * weights, rel=0.01)
    roomy = ideal(2, sram_kib=64.0, dram_gbps=8.0)  # they stay on chip after the first
    assert simulate(big, roomy, batch=B, schedule="pipeline", groups=2).dram_bytes_by_operand[
        "weights"] == pytest.approx(weights, rel=0.01)
    with pytest.raises(ValueError, match=r"micro_batch=3 is not allowed; .* divides batch=8"):
        simulate(wl, ideal(4), batch=B, schedule="pipeline", groups=4, micro_batch=3)


def test_unbalanced_pipeline_runs_at_its_slowest_stage() -> None:
    wl = chain([16, 48, 16])
    acc = ideal(3)
    ts = [alone(wl, f"L{i}", ideal(1)) for i in range(3)]
    r = simulate(wl, acc, batch=B, schedule="pipeline", stages={"L0": 0, "L1": 1, "L2": 2},
                 buffer_images=B)
    assert r.images_per_s == pytest.approx(1 / max(ts), rel=1e-9)
    assert r.makespan_s == pytest.approx(sum(ts) + (B - 1) * max(ts), rel=1e-9)
    slow = r.stages.set_index("group")
    assert slow.loc[1, "busy_s"] == pytest.approx(B * ts[1], rel=1e-9)
    assert slow.loc[2, "starved_s"] > 0  # waits for the slow stage
    assert slow.loc[1, "starved_s"] == pytest.approx(ts[0], rel=1e-9)  # only for the first image


def test_back_pressure_blocks_a_fast_stage_before_a_slow_one() -> None:
    wl = chain([16, 48])
    acc = ideal(2)
    t0, t1 = (alone(wl, f"L{i}", ideal(1)) for i in range(2))
    # one input slot: stage 0 may start image k only once stage 1 has finished image k-1 (it
    # writes into that slot), so the two stages alternate: one image per t0 + t1
    r = simulate(wl, acc, batch=B, schedule="pipeline", stages={"L0": 0, "L1": 1},
                 buffer_images=1)
    st = r.stages.set_index("group")
    assert st.loc[0, "blocked_s"] == pytest.approx((B - 1) * t1, rel=1e-9)
    assert r.images_per_s == pytest.approx(1 / (t0 + t1), rel=1e-9)
    # two slots (double buffering): the slow stage sets the pace
    roomy = simulate(wl, acc, batch=B, schedule="pipeline", stages={"L0": 0, "L1": 1},
                     buffer_images=2)
    assert roomy.images_per_s == pytest.approx(1 / t1, rel=1e-9)
    assert roomy.stages.set_index("group").loc[0, "blocked_s"] > 0  # 2 ahead, then waits


def test_dram_bound_stages_share_the_bandwidth() -> None:
    # tiny SRAM: weights stream every image; no network: activations go through DRAM
    wl = chain([64, 64], c=64, hw=6)
    acc = ideal(2, dram_gbps=0.05, sram_kib=8.0)
    r = simulate(wl, acc, batch=B, schedule="pipeline", groups=2)
    per_image = r.dram_bytes / B
    compute_s = r.stages["compute_s"].max() / B
    assert per_image / acc.dram_bytes_per_s > 3 * compute_s  # DRAM-bound by construction
    # both stages pull from one DRAM: the stream moves at BW / (bytes per image)
    assert r.images_per_s == pytest.approx(acc.dram_bytes_per_s / per_image, rel=0.03)


def test_a_network_link_that_carries_every_tensor_sets_the_rate() -> None:
    wl = chain([32, 32], hw=12)
    acc = ideal(2, noc="bus", noc_bytes_per_cycle=0.02, noc_hop_cycles=0.0)
    r = simulate(wl, acc, batch=B, schedule="pipeline", groups=2)
    crossing = wl.graph.nodes["L0"]["layer"].output_bytes
    assert r.noc_bytes == B * crossing  # every byte that crosses is counted once
    link = acc.noc_bytes_per_cycle * acc.freq_hz
    assert crossing / link > 2 * max(alone(wl, f"L{i}", ideal(1)) for i in range(2))
    assert r.images_per_s == pytest.approx(link / crossing, rel=1e-9)
    assert r.stages["noc_out_bytes"].tolist() == [B * crossing, 0]
    assert r.energy_by_component["noc"] > 0
    assert any(e.get("cat") == "noc" for e in r.trace_events())


def test_multicast_sends_a_tensor_two_groups_read_once() -> None:
    la = chain([16, 16, 16])
    g = la.graph.copy()
    g.add_edge("L0", "L2")  # L2 reads L0 too
    layers = [g.nodes[n]["layer"] for n in g.nodes]
    wl = Workload.from_layers(layers, list(g.edges), name="fan", batch=1, input_shape=(16, 10, 10))
    stages = {"L0": 0, "L1": 1, "L2": 2}
    sent = {}
    for mc in (True, False):
        acc = ideal(3, noc="bus", noc_multicast=mc)
        sent[mc] = simulate(wl, acc, batch=2, schedule="pipeline", stages=stages).noc_bytes
    l0, l1 = (wl.graph.nodes[n]["layer"].output_bytes for n in ("L0", "L1"))
    assert sent[True] == 2 * (l0 + l1)
    assert sent[False] == 2 * (2 * l0 + l1)


def test_mesh_routes_are_xy_and_pay_their_hops() -> None:
    assert noc_route(0, 3, 4) == [(0, 1), (1, 3)]  # 2x2 grid: right, then down
    assert noc_route(3, 0, 4) == [(3, 2), (2, 0)]
    assert noc_route(1, 1, 4) == []
    wl = chain([16, 16, 16, 16])
    hop = 500.0  # cycles: dominates the layers
    # bus: one hop per edge; 2x2 mesh: 0->1 one hop, 1->2 two (left, then down), 2->3 one
    for topo, hops in (("bus", 3), ("mesh", 4)):
        acc = ideal(4, noc=topo, noc_hop_cycles=hop)
        r = simulate(wl, acc, batch=1, schedule="pipeline", groups=4)
        t = sum(alone(wl, f"L{i}", ideal(1)) for i in range(4))
        assert r.latency_s == pytest.approx(t + hops * hop / acc.freq_hz, rel=1e-9)
    # groups 0 -> 3 on a 2x2 mesh are two hops apart
    acc = ideal(4, noc="mesh", noc_hop_cycles=hop)
    r = simulate(chain([16, 16]), acc, batch=1, schedule="pipeline", stages={"L0": 0, "L1": 3})
    t = sum(alone(chain([16, 16]), f"L{i}", ideal(1)) for i in range(2))
    assert r.latency_s == pytest.approx(t + 2 * hop / acc.freq_hz, rel=1e-9)


def test_data_parallel_groups_run_whole_images() -> None:
    wl = chain([16, 16])
    acc = ideal(4)
    one = simulate(wl, ideal(2), batch=1).latency_s  # one image on a group of 2 cores
    r = simulate(wl, acc, batch=B, schedule="data_parallel", groups=2)
    assert r.makespan_s == pytest.approx(B / 2 * one, rel=1e-9)
    assert r.images_per_s == pytest.approx(2 / one, rel=1e-9)
    assert r.stages["images"].tolist() == [B // 2, B // 2]
    assert r.noc_bytes == 0


def test_heterogeneous_groups_run_first_and_last_layers_at_their_precision() -> None:
    wl = chain([16, 16, 16], bits=(2, 2))
    first_last = {"L0": (16, 16), "L2": (16, 16)}
    layers = [dataclasses.replace(wl.graph.nodes[n]["layer"], w_bits=first_last[n][0],
                                  a_bits=first_last[n][1])
              if n in first_last else wl.graph.nodes[n]["layer"] for n in wl.graph.nodes]
    wl = Workload.from_layers(layers, name="fl", batch=1, input_shape=(16, 10, 10))
    acc = ideal(4, mac_bits=(2, 2), core_groups=({"cores": 1, "mac_bits": 16}, {"cores": 3}))
    assert acc.area == pytest.approx(sum(g.area for g in acc.groups()))
    assert acc.mac_count == 4 * 16
    stages = {"L0": 0, "L1": 1, "L2": 1}
    r = simulate(wl, acc, batch=2, schedule="layer_by_layer", stages=stages)
    pf = r.layers.set_index("name")["precision_factor"]
    assert pf["L0"] == 1.0
    assert pf["L2"] > 1.0  # L2 runs on the 2-bit group, above its precision
    assert r.layers.set_index("name")["core_group"].tolist() == [0, 1, 1]
    # one image at a time the last layer may go back to the 16-bit group (not in a pipeline)
    back = simulate(wl, acc, batch=2, schedule="layer_by_layer",
                    stages={"L0": 0, "L1": 1, "L2": 0})
    assert back.layers.set_index("name")["precision_factor"]["L2"] == 1.0
    t = [alone(wl, f"L{i}", g) for i, g in ((0, acc.groups()[0]), (1, acc.groups()[1]),
                                              (2, acc.groups()[0]))]
    assert back.images_per_s == pytest.approx(1 / sum(t), rel=1e-9)
    with pytest.raises(ValueError, match=r"a pipeline only flows forward"):
        simulate(wl, acc, batch=2, schedule="pipeline", stages={"L0": 0, "L1": 1, "L2": 0})


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"stages": {"nosuch": 0, "L0": 0, "L1": 1}}, r"stages: layer 'nosuch' is not allowed"),
    ({"stages": {"L0": 0}}, r"layer\(s\) 'L1' are unmapped"),
    ({"stages": {"L0": 1, "L1": 0}}, r"stages\['L1'\]=0 is not allowed; it reads 'L0' on group 1"),
    ({"stages": {"L0": 0, "L1": 5}, "groups": 2}, r"stages\['L1'\]=5 .* 0\.\.1"),
    ({"groups": (0, 4)}, r"groups\[0\]=0 is not allowed; expected an integer >= 1"),
    ({"groups": (1, 2)}, r"must sum to the accelerator's 4 cores"),
    ({"groups": 9}, r"groups=9 is not allowed; expected an integer in 1\.\.4"),
    ({"schedule": "ring"}, r"schedule='ring' is not allowed; expected one of"),
    ({"schedule": "data_parallel", "groups": 2, "stages": {"L0": 0, "L1": 1}},
     r"not allowed with schedule='data_parallel'"),
    ({"buffer_images": 0}, r"buffer_images=0 is not allowed"),
])
def test_bad_schedules_name_the_field_value_and_what_is_allowed(kwargs: dict[str, object],
                                                                 match: str) -> None:
    opts: dict[str, object] = {"schedule": "pipeline", "groups": 2}
    opts.update(kwargs)
    if "stages" in kwargs and "groups" not in kwargs:
        opts.pop("groups")
    with pytest.raises(ValueError, match=match):
        simulate(chain([16, 16]), ideal(4), batch=2, **opts)  # type: ignore[arg-type]


def test_a_network_without_bandwidth_is_refused() -> None:
    with pytest.raises(ValueError, match=r"noc_bytes_per_cycle=0 is not allowed; expected"):
        ideal(2, noc="bus", noc_bytes_per_cycle=0)

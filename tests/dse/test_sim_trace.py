"""Hand-checkable event traces (SimPy's own testing habit), the trace JSON, bad input, no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest
from test_sim_helpers import conv_layer, resnet50_graph

from arch.spec import Accelerator
from dse import SimResult, simulate
from workloads.graph import Layer, Workload

NS = 1e-9


def _two_layers(bits: int = 8) -> Workload:
    """input -> a -> b -> output; a and b are 1x1 convs, 4 channels in/out on a 2x2 image:
    GEMM M=4, N=4, K=4; at 8 bits every tensor and weight set is 16 bytes."""
    la = conv_layer("a", c=4, h=2, w=2, k=4, r=1, bits=(bits, bits))
    lb = conv_layer("b", c=4, h=2, w=2, k=4, r=1, bits=(bits, bits))
    inp = Layer(name="input", op="input", c=4, h=2, w=2, k=4, ho=2, wo=2, a_bits=bits,
                o_bits=bits, input_elems=16, output_elems=16)
    out = Layer(name="output", op="output", c=4, k=4, input_elems=16)
    return Workload.from_layers([inp, la, lb, out], name="two")


def _log(res: SimResult) -> list[tuple[str, str, float, float]]:
    tl = res.timeline()
    return [(r.layer, r.kind, round(r.start_s / NS, 6), round(r.end_s / NS, 6))
            for r in tl.itertuples(index=False)]


def test_event_trace_by_hand(tiny_acc: Accelerator) -> None:
    # 1 core, 4x4 OS array at 1 GHz, 1 GB/s = 1 byte/ns, no latency.
    # Each layer: 1 fold of K + R + C - 2 = 4 + 4 + 4 - 2 = 10 cycles, minus 1 -> 9 ns.
    # a: on-load input 16 B + weights 16 B = 32 ns; compute 9 ns; output stays on chip.
    # b: on-load weights only (16 ns, input resident); compute 9 ns; store output 16 ns.
    acc = replace(tiny_acc, cores=1)
    res = simulate(_two_layers(), acc, prefetch=False)
    assert _log(res) == [
        ("a", "dma", 0.0, 32.0),
        ("a", "compute", 32.0, 41.0),
        ("b", "dma", 41.0, 57.0),
        ("b", "compute", 57.0, 66.0),
        ("b", "dma", 66.0, 82.0),
    ]
    assert res.latency_s == pytest.approx(82 * NS)
    assert res.dram_bytes == 16 + 16 + 16 + 16
    assert res.dram_bytes_by_operand == {"weights": 32, "inputs": 16, "outputs": 16}
    lay = res.layers.set_index("name")
    assert lay.loc["a", "output_resident"]
    assert lay.loc["b", "input_resident"]
    assert lay.loc["a", "compute_cycles"] == 9
    assert lay.loc["b", "total_cycles"] == pytest.approx(41)
    assert lay.loc["b", "onload_cycles"] == pytest.approx(16)
    assert lay.loc["b", "offload_cycles"] == pytest.approx(16)


def test_event_trace_without_onchip_reuse(tiny_acc: Accelerator) -> None:
    # the ablation: a stores its 16 B output (16 ns), b loads input + weights (32 ns)
    res = simulate(_two_layers(), replace(tiny_acc, cores=1), onchip_reuse=False,
                   prefetch=False)
    assert _log(res) == [
        ("a", "dma", 0.0, 32.0),
        ("a", "compute", 32.0, 41.0),
        ("a", "dma", 41.0, 57.0),
        ("b", "dma", 57.0, 89.0),
        ("b", "compute", 89.0, 98.0),
        ("b", "dma", 98.0, 114.0),
    ]
    assert res.dram_bytes == 6 * 16


def test_dram_latency_is_paid_per_transfer(tiny_acc: Accelerator) -> None:
    res = simulate(_two_layers(), replace(tiny_acc, cores=1, dram_latency_ns=100.0),
                   prefetch=False)
    # three transfers (a on-load, b on-load, b off-load), each 100 ns later than without latency
    assert res.latency_s == pytest.approx((82 + 300) * NS)


def test_trace_json_has_every_core(tmp_path) -> None:
    acc = Accelerator(cores=8, rows=8, cols=64, mac_bits=(4, 4), sram_kib=1024.0, dram_gbps=16.0)
    res = simulate(resnet50_graph(bits=(4, 4)), acc)
    path = res.save_trace(tmp_path / "trace.json")
    data = json.loads(path.read_text())
    evs = [e for e in data["traceEvents"] if e["ph"] == "X" and e["cat"] != "dram"]
    assert {e["args"]["core"] for e in evs} == set(range(8))
    assert {e["cat"] for e in evs} == {"compute", "dma"}
    busy = [e for e in data["traceEvents"] if e.get("cat") == "dram"]
    assert busy
    assert sum(e["dur"] for e in busy) == pytest.approx(res.dram_busy_s * 1e6)
    # the fluid DRAM runs at full bandwidth whenever busy: busy time = bytes / bandwidth
    assert res.dram_busy_s == pytest.approx(res.dram_bytes_moved / acc.dram_bytes_per_s, rel=1e-6)
    assert res.dram_bytes <= res.dram_bytes_moved <= res.dram_bytes * 1.01  # 64 B bursts
    assert all(e["dur"] >= 0 and e["ts"] >= 0 for e in evs)
    assert max(e["ts"] + e["dur"] for e in evs) == pytest.approx(res.latency_s * 1e6)
    tl = res.timeline()
    assert list(tl.columns) == ["core", "kind", "layer", "start_s", "end_s", "macs"]
    assert tl.macs.sum() == pytest.approx(res.macs)
    assert sum(e["args"].get("macs", 0) for e in evs) == pytest.approx(res.macs)
    # a core never computes two things at once
    for _, g in tl[tl.kind == "compute"].groupby("core"):
        g = g.sort_values("start_s")
        assert (g.start_s.values[1:] >= g.end_s.values[:-1] - 1e-15).all()
    d = res.to_dict()
    assert all(isinstance(v, str | int | float | bool) for v in d.values())
    assert d["latency_s"] == res.latency_s
    assert d["dram_weights_bytes"] > 0


def test_bad_input_raises_value_error_naming_the_field(tiny_acc: Accelerator) -> None:
    wl = _two_layers()
    with pytest.raises(ValueError, match="sram_kib"):
        simulate(wl, replace(tiny_acc, sram_kib=0.01))  # 10 bytes < smallest tile
    with pytest.raises(ValueError, match="batch=0"):
        simulate(wl, tiny_acc, batch=0)
    with pytest.raises(ValueError, match="high_precision='fast'"):
        simulate(wl, tiny_acc, high_precision="fast")
    with pytest.raises(ValueError, match="segments=0"):
        simulate(wl, tiny_acc, segments=0)
    with pytest.raises(ValueError, match="workload=str"):
        simulate("resnet50", tiny_acc)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="accelerator=dict"):
        simulate(wl, {"cores": 2})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"GEMM dims M=4, N=0"):
        simulate(Workload.from_layers([conv_layer("x", c=4, h=2, w=2, k=0, r=1)]), tiny_acc)
    with pytest.raises(ValueError, match="w_bits=33"):
        simulate(Workload.from_layers([conv_layer("x", c=4, h=2, w=2, k=4, r=1,
                                                  bits=(33, 8))]), tiny_acc)
    with pytest.raises(ValueError, match="a_bits=0"):
        simulate(Workload.from_layers([conv_layer("x", c=4, h=2, w=2, k=4, r=1,
                                                  bits=(8, 0))]), tiny_acc)
    for field, value in (("cores", 0), ("cores", -2), ("dram_gbps", 0.0), ("dram_gbps", -1.0),
                         ("sram_kib", 0.0), ("sram_kib", -4.0), ("mac_bits", (0, 8)),
                         ("mac_bits", (8, 33))):
        with pytest.raises(ValueError, match=field):
            replace(tiny_acc, **{field: value})


def test_sram_error_states_the_minimum(tiny_acc: Accelerator) -> None:
    with pytest.raises(ValueError, match=r"sram_kib=0\.03 .*layer 'a'.*at least 0\.070"):
        # 4 inputs + 4 weights at 8 bits + a 4x4 tile at 32 bits = 72 B = 0.0703 KiB
        simulate(_two_layers(), replace(tiny_acc, sram_kib=0.03))


def test_importing_the_simulator_does_not_import_torch() -> None:
    code = ("import sys, dse, dse.sim.simulate, dse.sim.mapping, dse.sim.dram, dse.sim.cores, "
            "dse.sim.results, dse.sim.systolic; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "assert 'optuna' not in sys.modules, 'optuna imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_dram_is_a_fair_share_server() -> None:
    """Processor sharing, closed form: at 1 byte/ns, transfers of 100 B and 300 B started together
    share the bandwidth until the first ends at 200 ns; the second then runs alone to 400 ns. A
    weight-3 transfer gets 3/4 of the bandwidth; latency delays the start."""
    from dse.sim.dram import CountingEnvironment, Dram

    env = CountingEnvironment()
    dram = Dram(env, bytes_per_s=1e9, latency_s=0.0)
    log: list[tuple[str, float]] = []

    def go(name: str, nbytes: int, weight: float = 1.0, delay: float = 0.0):
        if delay:
            yield env.timeout(delay)
        yield dram.transfer(nbytes, weight)
        log.append((name, round(env.now / NS, 6)))

    env.process(go("a", 100))
    env.process(go("b", 300))
    env.run()
    assert log == [("a", 200.0), ("b", 400.0)]
    assert dram.busy_s == pytest.approx(400 * NS)

    env = CountingEnvironment()
    dram = Dram(env, bytes_per_s=1e9, latency_s=50 * NS)
    log.clear()
    env.process(go("heavy", 300, weight=3.0))  # 300 B at 3/4 B/ns -> done at 50 + 400
    env.process(go("light", 200))  # 100 B at 1/4 B/ns by 450, then 100 B alone -> 550
    env.run()
    assert log == [("heavy", 450.0), ("light", 550.0)]
    assert env.events_processed > 0


def test_segments_do_not_change_a_lone_layer() -> None:
    # with no contention, playing the overlapped phase in pieces is exact: the pieces continue one
    # DMA stream, so they pay neither a fresh DRAM latency nor fresh burst rounding (the issue's
    # bug: at 100 ns a piece, ResNet-50 on 256 cores went from 283.8 to 597.6 us at segments=64)
    from test_sim_helpers import resnet50_graph

    acc = Accelerator(cores=4, rows=8, cols=64, mac_bits=(8, 8), sram_kib=512.0, dram_gbps=8.0,
                      dram_latency_ns=100.0, dram_burst_bytes=1)
    wl = resnet50_graph(bits=(8, 8))
    one, four = simulate(wl, acc), simulate(wl, acc, segments=4)
    assert four.latency_s == pytest.approx(one.latency_s, rel=1e-9)
    assert four.events > one.events


def test_independent_branches_run_concurrently_and_share_dram(tiny_acc: Accelerator) -> None:
    # input -> a -> output, input -> b -> output on 2 cores at 1 byte/ns: a and b each take one
    # core (a second core cannot shorten a 1-fold GEMM), start together, split the bandwidth for
    # their 32 B on-loads (64 ns), compute 9 ns, and split it again for their 16 B stores (32 ns).
    la = conv_layer("a", c=4, h=2, w=2, k=4, r=1, bits=(8, 8))
    lb = conv_layer("b", c=4, h=2, w=2, k=4, r=1, bits=(8, 8))
    inp = Layer(name="input", op="input", c=4, h=2, w=2, k=4, ho=2, wo=2, a_bits=8, o_bits=8,
                input_elems=16, output_elems=16)
    out = Layer(name="output", op="output", c=8, k=8, input_elems=32)
    wl = Workload.from_layers([inp, la, lb, out], edges=[("input", "a"), ("input", "b"),
                                                         ("a", "output"), ("b", "output")])
    res = simulate(wl, tiny_acc)
    assert sorted(_log(res)) == [
        ("a", "compute", 64.0, 73.0),
        ("a", "dma", 0.0, 64.0),
        ("a", "dma", 73.0, 105.0),
        ("b", "compute", 64.0, 73.0),
        ("b", "dma", 0.0, 64.0),
        ("b", "dma", 73.0, 105.0),
    ]
    assert sorted(res.timeline().core.unique()) == [0, 1]
    assert res.layers.cores_used.tolist() == [1, 1]

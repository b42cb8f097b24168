"""Tile fidelity, buffers and cross-layer prefetch: hand-derived traces and properties.

The two-layer chain of test_sim_trace.py (1 core, 4x4 OS array, 1 GHz, 1 byte/ns, no latency):
a and b are 1x1 convs with 16 B of input, weights and output each, 9 compute cycles, one tile.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from test_sim_helpers import conv_layer, resnet50_graph
from test_sim_trace import NS, _log, _two_layers

from arch.presets import scalesim, sysml19
from arch.spec import Accelerator
from dse import simulate
from workloads.graph import Layer, Workload


def test_tile_fidelity_plays_one_tile_layers_like_the_lockstep_pipeline(
        tiny_acc: Accelerator) -> None:
    # one tile per layer: the loaders fetch a's input and weights (fair share, 32 ns), the
    # array computes 9 ns, b fetches its weights (16 ns), computes, drains its output (16 ns)
    acc = replace(tiny_acc, cores=1)
    tile = simulate(_two_layers(), acc, fidelity="tile", prefetch=False)
    layer = simulate(_two_layers(), acc, prefetch=False)
    assert tile.latency_s == pytest.approx(82 * NS)
    assert tile.latency_s == pytest.approx(layer.latency_s)
    assert tile.dram_bytes_by_operand == layer.dram_bytes_by_operand
    assert tile.macs == layer.macs
    assert ("b", "compute", 57.0, 66.0) in _log(tile)


def test_prefetch_loads_the_next_weights_while_the_previous_layer_runs(
        tiny_acc: Accelerator) -> None:
    # b's 16 B of weights fit beside a's buffers, so they are staged from a's start, at low
    # priority: a's input and weights take the interface (to ~32 ns), then b's weights use the
    # idle DRAM while a computes (to ~48 ns). b starts when a ends (41 ns, its input on chip),
    # waits for its weights until 48 ns, computes 9 ns, stores 16 ns: 73 ns instead of 82.
    acc = replace(tiny_acc, cores=1)
    res = simulate(_two_layers(), acc)
    assert res.latency_s == pytest.approx(73 * NS, abs=0.05 * NS)
    lay = res.layers.set_index("name")
    assert lay.loc["b", "weights_prefetched"]
    assert not lay.loc["a", "weights_prefetched"]  # nothing runs before the first layer
    assert lay.loc["b", "start_s"] == pytest.approx(41 * NS, abs=0.05 * NS)
    assert lay.loc["b", "onload_cycles"] == pytest.approx(7, abs=0.05)
    # the same bytes cross DRAM, just earlier
    assert res.dram_bytes_by_operand == simulate(_two_layers(), acc, prefetch=False) \
        .dram_bytes_by_operand


def test_prefetch_never_slows_resnet50_and_approaches_the_roofline() -> None:
    # issue 9: without prefetch ResNet-50 ran at 1.33-1.35x max(compute, bytes / bandwidth)
    wl = resnet50_graph(bits=(2, 2), first_last=(8, 8))
    acc = sysml19(2, 32.0)
    off, on = simulate(wl, acc, prefetch=False), simulate(wl, acc)
    bound = max(on.dram_bytes / acc.dram_bytes_per_s, on.macs / acc.peak_macs_per_s)
    assert on.dram_bytes == pytest.approx(off.dram_bytes, rel=1e-5)  # byte rounding of slices
    assert bound <= on.latency_s < off.latency_s
    assert on.latency_s / bound < 1.1 < off.latency_s / bound


@pytest.mark.parametrize("fidelity", ["layer", "tile"])
def test_single_buffering_is_never_faster_than_double(fidelity: str) -> None:
    wl = resnet50_graph(bits=(8, 8))
    acc = Accelerator(cores=4, rows=8, cols=64, mac_bits=(8, 8), sram_kib=512.0, dram_gbps=16.0)
    double = simulate(wl, acc, fidelity=fidelity, prefetch=False)
    single = simulate(wl, replace(acc, double_buffered=False), fidelity=fidelity,
                      prefetch=False)
    assert single.latency_s > double.latency_s


def test_tile_fidelity_conserves_macs_and_bytes_and_is_close_to_layer_fidelity() -> None:
    wl = resnet50_graph(bits=(2, 2), first_last=(8, 8))
    acc = sysml19(2, 32.0)
    layer, tile = simulate(wl, acc), simulate(wl, acc, fidelity="tile")
    macs = sum(la.macs for la in wl if la.is_compute)
    assert tile.macs == layer.macs == macs
    assert tile.timeline().macs.sum() == pytest.approx(macs, rel=1e-9)
    assert tile.dram_bytes == layer.dram_bytes
    assert tile.events > layer.events
    assert tile.latency_s == pytest.approx(layer.latency_s, rel=0.1)


def test_trace_has_dram_bandwidth_and_buffer_occupancy_counters(tmp_path) -> None:
    import json

    acc = Accelerator(cores=2, rows=8, cols=8, mac_bits=(8, 8), sram_kib=64.0, dram_gbps=4.0)
    res = simulate(resnet50_graph(bits=(8, 8)), acc, fidelity="tile")
    events = json.loads(res.save_trace(tmp_path / "t.json").read_text())["traceEvents"]
    counters = [e for e in events if e["ph"] == "C"]
    names = {e["name"] for e in counters}
    assert "DRAM GB/s in use" in names
    assert any(n.startswith("buffer bytes/core") for n in names)
    bw = [e["args"]["value"] for e in counters if e["name"] == "DRAM GB/s in use"]
    assert max(bw) == pytest.approx(acc.dram_gbps)
    assert min(bw) == 0
    occupancy = [e["args"]["value"] for e in counters if e["name"].startswith("buffer")]
    assert min(occupancy) >= -1e-6
    assert max(occupancy) <= acc.sram_bytes_per_core * 1.5  # buffer halves, and multicast


def test_split_buffers_tile_each_operand_into_its_own_buffer() -> None:
    la = conv_layer("c", c=64, h=16, w=16, k=64, r=3, bits=(8, 8))
    inp = Layer(name="input", op="input", c=64, h=16, w=16, output_elems=la.input_elems)
    wl = Workload.from_layers([inp, la])
    acc = Accelerator(cores=1, rows=8, cols=8, mac_bits=(8, 8), buffers="split",
                      ifmap_kib=4.0, filter_kib=4.0, ofmap_kib=2.0, dram_gbps=8.0)
    assert acc.sram_kib == 10.0
    roomy = replace(acc, ifmap_kib=64.0, filter_kib=64.0, ofmap_kib=64.0)
    tight, loose = simulate(wl, acc), simulate(wl, roomy)
    # a small filter buffer re-reads the input once per filter block; a roomy one does not
    assert tight.dram_bytes > loose.dram_bytes
    assert loose.dram_bytes_by_operand["inputs"] == la.input_bytes


def test_scalesim_preset_matches_the_issue_signature() -> None:
    acc = scalesim(8, 64, "ws", 32.0, 32.0, 16.0, 10.0, word_bytes=1, freq_ghz=1.0)
    assert (acc.rows, acc.cols, acc.dataflow, acc.cores) == (8, 64, "ws", 1)
    assert (acc.ifmap_kib, acc.filter_kib, acc.ofmap_kib) == (32.0, 32.0, 16.0)
    assert acc.dram_channels == 3
    assert acc.dram_channel_map == "by_operand"
    assert acc.dram_gbps == pytest.approx(30.0)  # three ports of 10 bytes per cycle at 1 GHz
    assert acc.tile_policy == "scalesim"
    assert "ifmap 32 / filter 32 / ofmap 16 KiB" in acc.hierarchy


@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("buffers", "banked", "unified, split"),
    ("dram_burst_bytes", 0, "integer >= 1"),
    ("dram_channels", 0, "integer >= 1"),
    ("dram_gbps", 0.0, "GB/s > 0"),
    ("dram_gbps", -1.0, "GB/s > 0"),
    ("global_buffer_kib", -1.0, ">= 0"),
    ("tile_policy", "scalesim", "buffers=\"split\""),
    ("ifmap_kib", 8.0, "buffers=\"split\""),
])
def test_bad_memory_fields_name_field_value_and_rule(field: str, value: object,
                                                     allowed: str) -> None:
    with pytest.raises(ValueError, match=field) as err:
        Accelerator(cores=1, **{field: value})  # type: ignore[arg-type]
    assert allowed in str(err.value)
    assert repr(value) in str(err.value)


def test_unknown_fidelity_and_a_buffer_below_the_smallest_tile_are_named(
        tiny_acc: Accelerator) -> None:
    with pytest.raises(ValueError, match=r"fidelity='cycle' is not allowed; expected one of "
                                         r"layer, tile"):
        simulate(_two_layers(), tiny_acc, fidelity="cycle")
    split = replace(tiny_acc, buffers="split", ifmap_kib=0.001, filter_kib=0.001,
                    ofmap_kib=0.001)
    with pytest.raises(ValueError, match="sram_kib"):
        simulate(_two_layers(), split, fidelity="tile")


def test_global_buffer_link_limits_the_transfer_rate(tiny_acc: Accelerator) -> None:
    acc = replace(tiny_acc, cores=1)
    slow = replace(acc, global_buffer_kib=64.0, global_buffer_bytes_per_cycle=0.5)
    a, b = (simulate(_two_layers(), x, prefetch=False) for x in (acc, slow))
    # every byte crosses the 0.5 B/cycle link: 64 B of DRAM traffic take 128 ns, not 64
    assert b.latency_s - a.latency_s == pytest.approx(64 * NS)
    assert not math.isinf(b.latency_s)

"""End to end on graphs extracted from the model zoo (real topology: residual adds, depthwise
convolutions, pooling): conservation, roofline bounds, and per-layer accounting."""

from __future__ import annotations

import pytest

from arch.spec import Accelerator
from dse import simulate

workloads = pytest.importorskip("workloads")


@pytest.mark.parametrize(("name", "bits"), [("resnet20", 4), ("mobilenet_v2", 8)])
def test_extracted_networks(name: str, bits: int) -> None:
    from workloads import zoo

    wl = workloads.extract(zoo.get(name), zoo.input_shape(name), default_bits=bits)
    acc = Accelerator(cores=16, rows=8, cols=64, mac_bits=(4, 4), sram_kib=256.0,
                      dram_gbps=16.0)
    res = simulate(wl, acc)
    comp = [la for la in wl if la.is_compute]
    # the MACs the cores played (timeline) are the network's, layer by layer
    played = res.timeline().groupby("layer")["macs"].sum()
    for la in comp:
        assert played[la.name] == pytest.approx(la.macs, rel=1e-9)
    assert res.macs == wl.total_macs == sum(la.macs for la in comp)
    # the network latency split (incl. overlap of concurrent branches) sums to the latency
    assert sum(res.latency_breakdown.values()) == pytest.approx(res.latency_s, rel=1e-12)
    assert min(res.latency_breakdown.values()) >= 0
    assert list(res.layers.name) == [la.name for la in comp]
    t_compute = sum(la.macs * acc.precision_slowdown(la.w_bits, la.a_bits) for la in comp)
    t_compute /= acc.peak_macs_per_s
    assert res.latency_s >= t_compute
    assert res.latency_s >= wl.weight_bytes / acc.dram_bytes_per_s
    assert res.dram_bytes_by_operand["weights"] >= wl.weight_bytes
    lay = res.layers
    parts = lay.compute_cycles + lay.stall_cycles + lay.onload_cycles + lay.offload_cycles
    assert ((parts - lay.total_cycles).abs() <= 1e-6 * lay.total_cycles + 1e-6).all()
    assert (lay.total_cycles >= lay.compute_cycles - 1e-6).all()
    assert (lay.end_s <= res.latency_s * (1 + 1e-12)).all()
    # every layer starts after all of its predecessors have finished
    end = dict(zip(lay.name, lay.end_s, strict=True))
    if res.memory_ops is not None:
        end.update(zip(res.memory_ops.name, res.memory_ops.end_s, strict=True))
    for row in lay.itertuples(index=False):
        for p in wl.predecessors(row.name):
            assert row.start_s >= end.get(p, 0.0) - 1e-15

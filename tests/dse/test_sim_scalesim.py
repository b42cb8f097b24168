"""Compute cycles against SCALE-Sim v3 (an independent cycle-accurate simulator).

Single core, unlimited bandwidth: every layer's stall-free compute cycles must match SCALE-Sim's
``compute_cycles`` for the same layer, 8x64 array and dataflow within 1% (they are equal).
"""

from __future__ import annotations

import pytest
from test_sim_helpers import scalesim_layers, scalesim_table

from arch.spec import Accelerator
from dse import simulate
from dse.sim.systolic import compute_cycles, mapping_efficiency, sram_reads
from workloads.graph import Workload

CASES = [(net, df) for net in ("alexnet", "resnet50") for df in ("os", "ws")]


@pytest.mark.parametrize(("net", "dataflow"), CASES)
def test_simulated_compute_cycles_match_scalesim(net: str, dataflow: str) -> None:
    ref = scalesim_table(net, dataflow).set_index("layer")
    wl = Workload.from_layers(scalesim_layers(net, dataflow), name=net)
    acc = Accelerator(cores=1, rows=8, cols=64, mac_bits=(16, 16), sram_kib=4096.0,
                      dram_gbps=float("inf"), dram_latency_ns=0.0, dataflow=dataflow)
    res = simulate(wl, acc)
    got = res.layers.set_index("name")["compute_cycles"]
    assert list(got.index) == list(ref.index)
    rel = (got - ref["compute_cycles"]).abs() / ref["compute_cycles"]
    assert rel.max() <= 0.01, rel.sort_values().tail()
    # unlimited bandwidth, no latency: nothing but the array's cycles (fill of the first tile is
    # free, so the layer takes exactly its compute cycles, within float round-off)
    total = res.layers.set_index("name")["total_cycles"]
    assert ((total - got).abs() <= 1e-6 * got + 1).all()


@pytest.mark.parametrize(("net", "dataflow"), CASES)
def test_closed_forms_and_sram_reads_match_scalesim(net: str, dataflow: str) -> None:
    for row in scalesim_table(net, dataflow).itertuples(index=False):
        m, n, k = int(row.gemm_M), int(row.gemm_N), int(row.gemm_K)
        assert compute_cycles(m, n, k, 8, 64, dataflow) == row.compute_cycles
        eff = mapping_efficiency(m, n, k, 8, 64, dataflow)
        assert eff * 100 == pytest.approx(row.mapping_eff_pct, rel=1e-6)
        reads_in, reads_w, _ = sram_reads(m, n, k, 8, 64, dataflow)
        assert reads_in == row.sram_ifmap_reads
        assert reads_w == row.sram_filter_reads


def test_dataflow_table_on_a_hand_example() -> None:
    # M=10, N=70, K=20 on 8x64: OS 2*2 folds of 20+8+64-2; WS 3*2 folds of 10+16+64-2;
    # IS 3*1 folds of 70+16+64-2 (each minus 1)
    assert compute_cycles(10, 70, 20, 8, 64, "os") == 4 * 90 - 1
    assert compute_cycles(10, 70, 20, 8, 64, "ws") == 6 * 88 - 1
    assert compute_cycles(10, 70, 20, 8, 64, "is") == 3 * 148 - 1
    with pytest.raises(ValueError, match="dataflow='xs'"):
        compute_cycles(1, 1, 1, 8, 64, "xs")
    with pytest.raises(ValueError, match="m=0"):
        compute_cycles(0, 1, 1, 8, 64, "os")

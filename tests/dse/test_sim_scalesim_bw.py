"""`dse.simulate` at tile fidelity on the `scalesim` preset against SCALE-Sim v3 under limited
bandwidth (tests/golden/scalesim_bw/, recorded by benchmarks/scalesim_reference.py).

Each golden row is one layer SCALE-Sim ran alone; here the same layer runs alone through the whole
simulator (plan -> tiles -> SimPy events: three DRAM ports, buffers, drains), with no cross-layer
prefetch (SCALE-Sim has none), and its total cycles are compared with SCALE-Sim's "Total Cycles
(incl. prefetch)" - a layer run alone pays its first fill. Issue 9's targets: every layer within
15 %, the total of a set within 5 %, on layers the tile generator was not tuned on.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from test_sim_helpers import conv_layer

from arch.presets import scalesim
from dse import simulate
from workloads.graph import Layer, Workload

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "scalesim_bw"
HELD_OUT = ("heldout.csv", "heldout2.csv", "heldout3.csv", "mobilenet_v1.csv")
TUNED = ("tuned.csv", "ragged.csv")


def _rows(name: str) -> list[dict[str, str]]:
    path = GOLDEN / name
    if not path.exists() or path.stat().st_size == 0:
        return []
    with path.open() as fh:
        return list(csv.DictReader(fh))


def _layer(row: dict[str, str]) -> Layer:
    if row["kind"] == "gemm":  # M x K by K x N as a 1 x M "image" of K channels and N filters
        m, n, k = int(row["gemm_m"]), int(row["gemm_n"]), int(row["gemm_k"])
        return conv_layer(row["layer"], c=k, h=1, w=m, k=n, r=1, bits=(8, 8))
    fh, fw = int(row["filt_h"]), int(row["filt_w"])
    assert fh == fw, row
    h, w, st = int(row["ifmap_h"]), int(row["ifmap_w"]), int(row["stride"])
    # SCALE-Sim's output size rounds up: ceil((H - R + stride) / stride); where the stride does
    # not divide H - R, the last output row/column reads off the input (its entries: padding)
    return conv_layer(row["layer"], c=int(row["channels"]), h=h, w=w, k=int(row["num_filt"]),
                      r=fh, stride=st, ho=-(-(h - fh + st) // st), wo=-(-(w - fw + st) // st),
                      bits=(8, 8))


def _simulate(row: dict[str, str]) -> tuple[float, dict[str, float]]:
    la = _layer(row)
    assert (la.gemm_m, la.gemm_n, la.gemm_k) == (int(row["gemm_m"]), int(row["gemm_n"]),
                                                 int(row["gemm_k"])), row
    inp = Layer(name="input", op="input", n=1, c=la.c, h=la.h, w=la.w, output_elems=la.input_elems)
    out = Layer(name="output", op="output", input_elems=la.output_elems)
    acc = scalesim(int(row["rows"]), int(row["cols"]), row["dataflow"],
                   float(row["ifmap_kib"]), float(row["filter_kib"]), float(row["ofmap_kib"]),
                   float(row["words_per_cycle"]))
    res = simulate(Workload.from_layers([inp, la, out]), acc, fidelity="tile", prefetch=False)
    lay = res.layers.iloc[0]
    return float(lay.total_cycles), {"ifmap": float(lay.dram_read_bytes_ifmap),
                                     "filter": float(lay.dram_read_bytes_filter),
                                     "ofmap": float(lay.dram_write_bytes_ofmap)}


@pytest.mark.parametrize("name", HELD_OUT)
def test_held_out_layers_within_15_percent_and_sets_within_5(name: str) -> None:
    rows = _rows(name)
    if not rows:
        pytest.skip(f"tests/golden/scalesim_bw/{name} is not recorded yet "
                    "(benchmarks/scalesim_reference.py writes it)")
    ours = theirs = 0.0
    misses = []
    for row in rows:
        total, _ = _simulate(row)
        ref = float(row["total_cycles_incl_prefetch"])
        ours += total
        theirs += ref
        if abs(total / ref - 1) > 0.15:
            misses.append(f"{row['layer']}: {total:.0f} vs {ref:.0f} ({total / ref - 1:+.1%})")
    assert not misses, "layers off by more than 15 %: " + "; ".join(misses)
    assert ours == pytest.approx(theirs, rel=0.05)


@pytest.mark.parametrize("name", [*TUNED, *HELD_OUT])
def test_dram_traffic_per_operand(name: str) -> None:
    """Reads per operand are SCALE-Sim's words exactly (8-bit words = bytes), im2col padding
    and repeated addresses of convolutions included; writes within SCALE-Sim's rounding of
    partial drain rows."""
    rows = _rows(name)
    if not rows:
        pytest.skip(f"tests/golden/scalesim_bw/{name} is not recorded yet")
    for row in rows:
        _, by_op = _simulate(row)
        where = (row["layer"], row["dataflow"])
        assert by_op["ifmap"] == int(row["dram_ifmap_reads"]), where
        assert by_op["filter"] == int(row["dram_filter_reads"]), where
        assert by_op["ofmap"] == pytest.approx(float(row["dram_ofmap_writes"]), rel=0.02,
                                               abs=40), where


def test_unlimited_bandwidth_keeps_compute_cycles_exact() -> None:
    row = _rows("tuned.csv")[0] if _rows("tuned.csv") else None
    if row is None:
        pytest.skip("no golden rows")
    la = _layer(row)
    inp = Layer(name="input", op="input", n=1, c=la.c, h=la.h, w=la.w, output_elems=la.input_elems)
    acc = scalesim(int(row["rows"]), int(row["cols"]), row["dataflow"], 64.0, 64.0, 64.0, 1.0,
                   dram_gbps=math.inf, dram_latency_ns=0.0)
    res = simulate(Workload.from_layers([inp, la]), acc, fidelity="tile", prefetch=False)
    assert int(res.layers.iloc[0].compute_cycles) == int(row["compute_cycles"])
    assert res.layers.iloc[0].total_cycles == pytest.approx(int(row["compute_cycles"]), abs=2)

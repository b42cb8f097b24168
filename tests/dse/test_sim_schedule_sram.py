"""The input buffers of a pipeline (`dse.sim.group_plan._inboxes`) take SRAM in the receiving core
group's ledger; when they do not fit, the model says so - fewer buffered images, or the tensors
go through DRAM - instead of holding more on chip than the group has.

Oracles: a receiver that cannot hold one image's inbound tensor plays exactly as the same design
without a network (every inter-group tensor through DRAM); one that holds one image plays exactly
as ``buffer_images=1`` (two balanced stages then alternate: half the rate); one that holds
everything is bit for bit the run whose ledger is not charged; and every byte L0 produces
crosses to L1 once, over the network or through DRAM (conservation).
"""

from __future__ import annotations

from typing import Any

import pytest
from test_sim_schedule import B, chain, ideal

import dse.sim.group_plan as group_plan_mod
from arch.groups import CoreGroup
from arch.spec import Accelerator
from dse.sim import SimResult, simulate

WL = chain([16, 16], hw=10)
CROSSING = WL.graph.nodes["L0"]["layer"].output_bytes  # 16 x 10 x 10 bytes per image
STAGES = {"L0": 0, "L1": 1}


def design(receiver_kib: float, noc: str = "bus") -> Accelerator:
    """Two one-core groups; the receiver (group 1) has ``receiver_kib`` of SRAM."""
    return ideal(2, noc=noc, core_groups=(CoreGroup(1), CoreGroup(1, sram_kib=receiver_kib)))


def run(acc: Accelerator, **kw: Any) -> SimResult:
    return simulate(WL, acc, batch=B, schedule="pipeline", stages=STAGES, **kw)


def same(a: SimResult, b: SimResult) -> None:
    """Bit for bit: timing, traffic, energy and every per-layer number."""
    assert a.makespan_s == b.makespan_s
    assert a.latency_s == b.latency_s
    assert a.images_per_s == b.images_per_s
    assert a.dram_bytes == b.dram_bytes
    assert a.dram_bytes_by_operand == b.dram_bytes_by_operand
    assert a.energy_j == b.energy_j
    assert a.layers.equals(b.layers)


def conserved(r: SimResult) -> None:
    """Every byte of L0's output reaches group 1 exactly once, by the network or by DRAM."""
    rows = r.layers.set_index("name")
    assert r.noc_bytes + rows.loc["L0", "dram_write_bytes_ofmap"] == B * CROSSING
    if r.noc_bytes == 0:
        assert rows.loc["L1", "dram_read_bytes_ifmap"] >= B * CROSSING


def test_an_input_buffer_that_does_not_fit_spills_through_dram() -> None:
    """2 KiB beside L1's tiles cannot hold one 1600-byte image: the tensor is stored and loaded,
    exactly as with no network at all."""
    acc = design(2.0)
    r = run(acc)
    assert r.stages["buffer_images"].tolist() == [0, 0]
    assert r.stages["inbox_bytes"].tolist() == [0, 0]
    assert r.noc_bytes == 0
    rows = r.layers.set_index("name")
    assert rows.loc["L0", "dram_write_bytes_ofmap"] == B * CROSSING  # the spill's traffic
    conserved(r)
    same(r, run(design(2.0, noc="none")))


def test_a_buffer_for_one_image_back_pressures_like_buffer_images_1() -> None:
    """3 KiB holds one image beside L1's tiles, not two: the sender waits for the receiver, two
    equal stages alternate, and the stream runs at half the rate of a receiver with room."""
    r = run(design(3.0))
    assert r.stages["buffer_images"].tolist() == [0, 1]
    assert r.stages["inbox_bytes"].tolist() == [0, CROSSING]
    assert r.noc_bytes == B * CROSSING
    conserved(r)
    same(r, run(design(3.0), buffer_images=1))
    roomy = run(design(64.0))
    assert roomy.stages["buffer_images"].tolist() == [0, 2]
    assert r.images_per_s == pytest.approx(roomy.images_per_s / 2, rel=1e-3)
    assert r.stages.set_index("group").loc[0, "blocked_s"] > 0


def test_a_pipeline_whose_buffers_fit_is_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    """64 KiB holds two images (3200 bytes) with room to spare: charging them changes nothing,
    bit for bit, against the same run with the charge left out of the ledger."""
    acc = ideal(2, noc="bus")
    r = simulate(WL, acc, batch=B, schedule="pipeline", groups=2)
    assert r.stages["buffer_images"].tolist() == [0, 2]
    assert r.stages["inbox_bytes"].tolist() == [0, 2 * CROSSING]
    conserved(r)
    plan_graph = group_plan_mod.plan_graph

    def uncharged(*args: Any, held_bytes: int = 0, **kw: Any) -> Any:
        return plan_graph(*args, **kw)

    monkeypatch.setattr(group_plan_mod, "plan_graph", uncharged)
    same(r, simulate(WL, acc, batch=B, schedule="pipeline", groups=2))


def test_a_sent_tensor_its_own_group_also_reads_needs_room_there() -> None:
    """L0's output goes to L1 on its own group and to L2 on the other. The network writes it
    into group 1's input buffer; group 0 keeps it for L1 only if its ledger has room - with
    2 KiB it has not, so L0 stores it and L1 loads it (with 6 KiB it stays on chip)."""
    g = chain([16, 16, 16]).graph.copy()
    g.add_edge("L0", "L2")  # L2 reads L0 too
    wl = type(WL).from_layers([g.nodes[n]["layer"] for n in g.nodes], list(g.edges),
                              name="fan", batch=1, input_shape=(16, 10, 10))
    stages = {"L0": 0, "L1": 0, "L2": 1}
    for kib, stored in ((2.0, B * CROSSING), (6.0, 0)):
        acc = ideal(2, noc="bus", core_groups=(CoreGroup(1, sram_kib=kib), CoreGroup(1)))
        r = simulate(wl, acc, batch=B, schedule="pipeline", stages=stages)
        rows = r.layers.set_index("name")
        assert r.noc_bytes == 2 * B * CROSSING  # L0's and L1's outputs cross to group 1
        assert rows.loc["L0", "dram_write_bytes_ofmap"] == stored
        assert rows.loc["L1", "dram_read_bytes_ifmap"] >= stored
        assert r.stages["buffer_images"].tolist() == [0, 2]

"""``persistent_weights`` and a recurrent layer (``meta["steps"]`` = T): the weights the layer keeps
on chip between its T steps are part of its SRAM reserve (`dse.sim.recurrent`); pinned for the
whole run, they *are* those weights, so the pinning ledger (`dse.sim.simulate._pin_weights`)
counts them once at the layer's own step, not on top of its reserve.

Oracle: the ledger's arithmetic by hand, from the reserves the planner reports (asserted first):
a layer's weights are pinned iff, at every step, the resident tensors, that step's reserve and
the weights pinned so far plus these fit the SRAM - at the layer's own step with its kept
weights taken out of its reserve.
"""

from __future__ import annotations

import pytest
from test_sim_recurrent import GATES, HIDDEN, N, graph, hh_layer, one_core, skip_graph

from dse.sim import simulate
from dse.sim.simulate import _prepare, plan_graph

WEIGHTS = HIDDEN * GATES * 2  # hh's 16-bit weights: 2048 bytes
TILES = 768  # hh's step tiles when its weights are not pinned (its reserve less its kept weights)
FC0_RESERVE = 1536  # skip_graph's fc0: its tiles, nothing kept
FC0_WEIGHTS = HIDDEN * HIDDEN * 2  # 512 bytes
OPTIONS = {"high_precision": "configurable", "onchip_reuse": True, "multicast": True,
           "persistent_weights": True, "prefetch": False, "fidelity": "layer"}


def test_weights_that_fit_once_but_not_twice_are_pinned() -> None:
    """3 KiB on one core: hh's reserve is its step tiles and its kept weights (2816 B), which fit;
    pinned, the same 2048 bytes stay for the whole run and nothing else is on chip. Counted a
    second time on top of the reserve they would need 4864 B, and hh would not be pinned."""
    acc = one_core(sram_kib=3.0)
    nodes, order = _prepare(graph(hh_layer()), N)
    pl = plan_graph(nodes, order, acc, OPTIONS)
    assert pl.reserves["hh"] == TILES + WEIGHTS <= acc.sram_bytes_per_core
    assert pl.reserves["hh"] + WEIGHTS > acc.sram_bytes_per_core  # twice: no room
    assert pl.pinned == {"hh"}
    hh = pl.plans["hh"]
    assert hh.held_bytes == 0  # nothing kept between steps: the pinned weights are on chip
    assert WEIGHTS + hh.buffer_bytes <= acc.sram_bytes_per_core
    warm = simulate(graph(hh_layer()), acc, batch=N, persistent_weights=True)
    row = warm.layers.set_index("name").loc["hh"]
    assert row["weights_pinned"]
    assert row["dram_read_bytes_filter"] == 0
    assert warm.dram_bytes_by_operand["weights"] == 0
    cold = simulate(graph(hh_layer()), acc, batch=N).layers.set_index("name").loc["hh"]
    assert not cold["weights_pinned"]
    assert cold["dram_read_bytes_filter"] == WEIGHTS  # once (kept between steps), not T times


def test_weights_that_do_not_fit_beside_the_step_tiles_are_not_pinned() -> None:
    """2.5 KiB: hh's weights do not fit beside its step tiles (they stream every step, nothing is
    kept: reserve 768 B); pinning them would take 768 + 2048 = 2816 B > 2560 B."""
    acc = one_core(sram_kib=2.5)
    nodes, order = _prepare(graph(hh_layer()), N)
    pl = plan_graph(nodes, order, acc, OPTIONS)
    assert pl.reserves["hh"] == TILES
    assert pl.plans["hh"].held_bytes == 0
    assert pl.pinned == frozenset()


@pytest.mark.parametrize(("sram_kib", "pinned"), [
    # fc0's step: 1536 (its tiles) + 2048 (hh's weights) = 3584 > 3072; and fc0's 512 bytes
    # do not fit at hh's step (2816 + 512 = 3328 > 3072)
    (3.0, set()),
    # hh's weights: fc0's step 1536 + 2048 = 3584 <= 3584, hh's own step 768 + 2048 = 2816;
    # fc0's after them: 3584 + 512 > 3584 (counted twice, hh's would need 4864 at its step and
    # fc0's 512 bytes would be pinned instead)
    (3.5, {"hh"}),
    # fc0's output (1280 B) now stays on chip across fc0 and hh: fc0's step 1280 + 1536 + 2048 =
    # 4864 > 4096; and fc0's 512 bytes do not fit at hh's step: 1280 + 2816 + 512 > 4096
    (4.0, set()),
    # both: fc0's step 1280 + 1536 + 2048 + 512 = 5376 <= 6144, hh's 1280 + 768 + 2560 = 4608
    (6.0, {"fc0", "hh"}),
])
def test_the_pinning_ledger_beside_a_resident_tensor(sram_kib: float, pinned: set[str]) -> None:
    """skip_graph (input -> fc0 -> hh -> cat, fc0's output also read by cat): what is pinned,
    worked out by hand from the reserves, the resident tensor and the weights."""
    acc = one_core(sram_kib=sram_kib)
    nodes, order = _prepare(skip_graph(), N)
    pl = plan_graph(nodes, order, acc, OPTIONS)
    assert pl.reserves == {"fc0": FC0_RESERVE, "hh": TILES + WEIGHTS}
    resident = 1280 if sram_kib >= 4.0 else 0  # fc0's output, N*T*HIDDEN 16-bit values
    assert pl.resident_at[order.index("hh")] == resident
    assert FC0_WEIGHTS == 512
    assert pl.pinned == pinned

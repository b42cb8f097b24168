"""A recurrent layer (``meta["steps"]`` = T, an LSTM's hidden-to-hidden GEMM) runs as T dependent
GEMMs of N rows each (`dse.sim.recurrent`), not as one GEMM of N*T rows.

Oracles: SCALE-Sim's closed form of one step's GEMM on an output-stationary array
(folds x (K + R + C - 2) - 1 cycles), which T dependent steps must each pay, and MAC conservation
(the plan's per-core MACs sum to the layer's).
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from arch.spec import Accelerator
from dse.sim import simulate
from dse.sim.mapping import plan_compute
from workloads.graph import Layer, Workload

N, HIDDEN, T = 4, 16, 10
GATES = 4 * HIDDEN


def hh_layer(n: int = N, steps: int | None = T, hidden: int = HIDDEN, t: int = T) -> Layer:
    """An LSTM's recurrent GEMM as `workloads.composite` records it: N*T rows of hidden inputs
    times (hidden x 4*hidden) weights, the T steps one after another."""
    gates = 4 * hidden
    return Layer(name="hh", op="linear", n=n, c=hidden, h=t, w=1, k=gates, ho=t, wo=1,
                 macs=n * t * hidden * gates, weight_elems=hidden * gates,
                 input_elems=n * t * hidden, output_elems=n * t * gates,
                 meta={} if steps is None else {"steps": steps})


def graph(layer: Layer) -> Workload:
    src = Layer(name="input", op="input", n=layer.n, c=layer.c, h=layer.h, k=layer.c,
                ho=layer.h, input_elems=layer.input_elems, output_elems=layer.input_elems)
    out = Layer(name="output", op="output", n=layer.n, c=layer.k, k=layer.k,
                input_elems=layer.output_elems)
    return Workload.from_layers([src, layer, out], name="lstm_hh", batch=layer.n)


def one_core(**kw: object) -> Accelerator:
    fields: dict[str, object] = dict(cores=1, rows=8, cols=8, mac_bits=(16, 16), freq_ghz=1.0,
                                     sram_kib=64.0, dram_gbps=1000.0, dram_latency_ns=0.0,
                                     dram_burst_bytes=1)
    fields.update(kw)
    return Accelerator(**fields)  # type: ignore[arg-type]


def os_cycles(m: int, n: int, k: int, rows: int, cols: int) -> int:
    """SCALE-Sim's output-stationary cycles of one GEMM: ceil(M/R) x ceil(N/C) folds of
    K + R + C - 2 cycles, minus one."""
    return math.ceil(m / rows) * math.ceil(n / cols) * (k + rows + cols - 2) - 1


def test_each_step_pays_its_own_folds_on_one_core() -> None:
    acc = one_core()
    row = simulate(graph(hh_layer()), acc, batch=N).layers.set_index("name").loc["hh"]
    per_step = os_cycles(N, GATES, HIDDEN, acc.rows, acc.cols)  # 1 x 8 folds of 30 cycles
    assert per_step == 239
    assert row["compute_cycles"] == T * per_step
    assert row["end_s"] - row["start_s"] >= T * per_step / acc.freq_hz
    assert row["macs"] == N * T * HIDDEN * GATES  # conserved
    # played as one GEMM of N*T rows, the steps would share folds: far fewer cycles
    flat = simulate(graph(hh_layer(steps=None)), acc, batch=N).layers.set_index("name")
    assert flat.loc["hh", "compute_cycles"] == os_cycles(N * T, GATES, HIDDEN, 8, 8) < T * per_step
    assert flat.loc["hh", "macs"] == row["macs"]
    # the weights stay on chip between steps; inputs and outputs cross DRAM once, as before
    assert row["dram_read_bytes_filter"] == HIDDEN * GATES * 2
    assert row["dram_bytes"] == flat.loc["hh", "dram_bytes"]


@pytest.mark.parametrize("fidelity", ["layer", "tile"])
def test_steps_on_many_cores_cannot_split_time(fidelity: str) -> None:
    """64 cores could split N*T rows by time step; a recurrence cannot: every step still pays
    at least one fold, K + R + C - 2 cycles, on whichever cores run it."""
    acc = one_core(cores=64)
    res = simulate(graph(hh_layer()), acc, batch=N, fidelity=fidelity)
    row = res.layers.set_index("name").loc["hh"]
    fold = HIDDEN + acc.rows + acc.cols - 2
    assert row["compute_cycles"] >= T * (fold - 1)
    assert row["end_s"] - row["start_s"] >= T * (fold - 1) / acc.freq_hz
    assert row["macs"] == N * T * HIDDEN * GATES
    flat = simulate(graph(hh_layer(steps=None)), acc, batch=N, fidelity=fidelity)
    assert flat.layers.set_index("name").loc["hh", "compute_cycles"] < T * (fold - 1)


def test_plan_conserves_macs_and_repeats_one_step() -> None:
    acc = one_core(cores=8)
    layer = hh_layer()
    kw = dict(free_bytes=acc.sram_bytes_per_core, cores=acc.cores,
              a_dram_bytes=layer.input_bytes, c_to_dram=True, high_precision="configurable")
    plan = plan_compute(layer, acc, **kw)  # type: ignore[arg-type]
    step = dataclasses.replace(layer, ho=1, h=1, macs=layer.macs // T,
                               input_elems=layer.input_elems // T,
                               output_elems=layer.output_elems // T, meta={})
    one = plan_compute(step, acc, **kw)  # type: ignore[arg-type]
    assert plan.macs == plan.core_macs == layer.macs == T * one.core_macs
    assert plan.cores_used == one.cores_used
    assert plan.compute_cycles == T * one.compute_cycles
    assert sum(t.tiles for t in plan.tasks) == T * sum(t.tiles for t in one.tasks)


def test_weights_that_do_not_fit_stream_every_step() -> None:
    """2 KiB of SRAM cannot keep 2 KiB of weights beside the step's tiles: each step reads them
    again."""
    acc = one_core(sram_kib=2.0)
    row = simulate(graph(hh_layer()), acc, batch=N).layers.set_index("name").loc["hh"]
    weights = HIDDEN * GATES * 2
    assert row["dram_read_bytes_filter"] == T * weights
    assert row["macs"] == N * T * HIDDEN * GATES


@pytest.mark.parametrize(("steps", "why"), [(3, "a divisor of the GEMM's rows"),
                                            (0, "an integer >= 1"), (2.5, "an integer >= 1")])
def test_bad_steps_are_one_error_naming_the_layer(steps: object, why: str) -> None:
    layer = dataclasses.replace(hh_layer(), meta={"steps": steps})
    with pytest.raises(ValueError, match=rf"layer 'hh': meta\['steps'\]={steps!r} is not "
                                         rf"allowed; expected {why}"):
        simulate(graph(layer), one_core(), batch=N)


def test_an_extracted_lstm_runs_its_steps() -> None:
    """The layer `workloads.composite` writes for nn.LSTM is the one these tests build by hand,
    and it runs step by step."""
    import torch
    from torch import nn

    from workloads import extract

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(8, HIDDEN, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lstm(x)[0]

    wl = extract(Net(), (T, 8), batch=N)
    hh = wl["lstm.l0.hh"]
    want = hh_layer()
    assert (hh.n, hh.c, hh.ho * hh.wo, hh.k, hh.macs, hh.meta["steps"]) == (
        want.n, want.c, want.ho, want.k, want.macs, T)
    acc = one_core()
    row = simulate(wl, acc, batch=N).layers.set_index("name").loc["lstm.l0.hh"]
    assert row["compute_cycles"] == T * os_cycles(N, GATES, HIDDEN, acc.rows, acc.cols)


def test_a_time_major_lstm_rebatched_changes_its_step_count() -> None:
    """A seq-first LSTM (batch_first=False) fed straight from the input reads the batch axis as
    time: simulated at another batch, it runs that many steps (each one fold on one core)."""
    import torch
    from torch import nn

    from workloads import extract

    class Net(nn.Module):
        def __init__(self, batch_first: bool) -> None:
            super().__init__()
            self.lstm = nn.LSTM(8, HIDDEN, batch_first=batch_first)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lstm(x)[0]

    acc = one_core()
    per_step = os_cycles(6, GATES, HIDDEN, acc.rows, acc.cols)  # 6 sequences per step
    wl = extract(Net(False), (6, 8), batch=T)  # T steps of 6 sequences
    assert wl["lstm.l0.hh"].meta["steps_axis"] == "n"
    for batch in (T, 3, 1):
        row = simulate(wl, acc, batch=batch).layers.set_index("name").loc["lstm.l0.hh"]
        assert row["compute_cycles"] == batch * per_step
    # batch_first: the batch axis counts sequences, the steps stay T
    wl = extract(Net(True), (T, 8), batch=6)
    assert "steps_axis" not in wl["lstm.l0.hh"].meta
    for batch in (6, 3):
        row = simulate(wl, acc, batch=batch).layers.set_index("name").loc["lstm.l0.hh"]
        assert row["compute_cycles"] == T * os_cycles(batch, GATES, HIDDEN, 8, 8)


def skip_graph() -> Workload:
    """input -> fc0 -> hh -> cat, with fc0's output also read by cat: a tensor live across the
    recurrent layer, competing with its kept weights for the SRAM."""
    src = Layer(name="input", op="input", n=N, c=HIDDEN, h=T, k=HIDDEN, ho=T,
                input_elems=N * T * HIDDEN, output_elems=N * T * HIDDEN)
    fc0 = Layer(name="fc0", op="linear", n=N, c=HIDDEN, h=T, w=1, k=HIDDEN, ho=T, wo=1,
                macs=N * T * HIDDEN * HIDDEN, weight_elems=HIDDEN * HIDDEN,
                input_elems=N * T * HIDDEN, output_elems=N * T * HIDDEN)
    width = HIDDEN + GATES
    cat = Layer(name="cat", op="concat", n=N, c=width, h=T, k=width, ho=T,
                input_elems=N * T * width, output_elems=N * T * width)
    out = Layer(name="output", op="output", n=N, c=width, k=width, input_elems=N * T * width)
    return Workload.from_layers(
        [src, fc0, hh_layer(), cat, out], name="skip", batch=N,
        edges=[("input", "fc0"), ("fc0", "hh"), ("hh", "cat"), ("fc0", "cat"),
               ("cat", "output")])


def _plan_skip_graph(acc, prefetch: bool):
    """`skip_graph`'s nodes, order and SRAM plan on ``acc`` (layer fidelity, weights not
    persistent), as `simulate` makes them."""
    from dse.sim.simulate import _prepare, plan_graph

    nodes, order = _prepare(skip_graph(), N)
    opts = {"high_precision": "configurable", "onchip_reuse": True, "multicast": True,
            "persistent_weights": False, "prefetch": prefetch, "fidelity": "layer"}
    return nodes, order, plan_graph(nodes, order, acc, opts)


@pytest.mark.parametrize("prefetch", [False, True])
def test_weights_kept_between_steps_are_reserved_in_the_ledger(prefetch: bool) -> None:
    """3 KiB of SRAM: fc0's 1280-byte output could stay on chip beside hh's step tiles, or hh
    could keep its 2048 bytes of weights for its 10 steps - not both. The kept weights are part
    of hh's reserve, so the ledger stores fc0's output instead, and at every step what is on chip
    (resident tensors, tile buffers, kept weights) fits the SRAM."""
    acc = one_core(sram_kib=3.0)
    weights = HIDDEN * GATES * 2
    nodes, order, pl = _plan_skip_graph(acc, prefetch)
    hh = pl.plans["hh"]
    assert hh.held_bytes == weights
    assert hh.reserve_bytes == hh.buffer_bytes + weights
    assert pl.reserves["hh"] >= weights
    for j, name in enumerate(order):
        if name in pl.plans:
            used = pl.resident_at[j] + pl.plans[name].buffer_bytes + pl.plans[name].held_bytes
            assert used <= acc.sram_bytes_per_core, (name, used)
    assert not nodes["fc0"].resident  # stored: the space is the weights'
    res = simulate(skip_graph(), acc, batch=N, prefetch=prefetch).layers.set_index("name")
    assert res.loc["hh", "dram_read_bytes_filter"] == weights  # once, not once per step
    fc0_out = N * T * HIDDEN * 2
    assert res.loc["fc0", "dram_write_bytes_ofmap"] == fc0_out  # the consequence: it spills


def test_staged_weights_of_a_recurrent_layer_are_its_kept_weights_counted_once() -> None:
    """5 KiB with prefetch: hh's weights can be staged beside fc0's resident output (1280 B) and
    hh's step tiles - the weights it would keep between steps are those very weights, so the
    staging ledger counts them once, not on top of its reserve (which would need 6 KiB)."""
    acc = one_core(sram_kib=5.0)
    weights = HIDDEN * GATES * 2
    nodes, order, pl = _plan_skip_graph(acc, prefetch=True)
    assert "hh" in pl.staged
    assert nodes["fc0"].resident
    j = order.index("hh")
    hh = pl.plans["hh"]
    assert hh.held_bytes == 0  # nothing to load between steps: the staged weights are on chip
    assert pl.resident_at[j] + weights + hh.buffer_bytes <= acc.sram_bytes_per_core
    res = simulate(skip_graph(), acc, batch=N).layers.set_index("name")
    assert res.loc["hh", "dram_read_bytes_filter"] == weights

"""Simulator formulas the other tests could not tell from a wrong variant (a mutation audit).

Each test checks a formula against an oracle built another way: the input-stationary dataflow as
the weight-stationary one of the transposed GEMM (C^T = B^T A^T; WS is pinned to SCALE-Sim's
runs), the GEMM traffic lower bound of a capacity-limited memory (Smith et al. 2017, in
../shared/MODELING.md), and closed forms of bytes at sub-byte precision.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import pytest
import simpy
from test_sim_helpers import conv_layer

from arch.energy import default_energy_model
from arch.spec import Accelerator
from dse import simulate
from dse.sim.dram import MemorySystem
from dse.sim.mapping import CoreTask, LayerPlan, min_tile_bytes, plan_compute, tile_gemm
from dse.sim.systolic import compute_cycles, mapping_efficiency, sram_reads
from workloads.graph import Layer, Workload

SHAPES = [(1, 1, 1), (10, 70, 20), (3025, 96, 363), (49, 2048, 512), (200, 9, 17), (64, 64, 64)]
ARRAYS = [(8, 64), (4, 4), (32, 7), (3, 5)]


@pytest.mark.parametrize(("rows", "cols"), ARRAYS)
@pytest.mark.parametrize(("m", "n", "k"), SHAPES)
def test_input_stationary_is_weight_stationary_of_the_transposed_gemm(
        m: int, n: int, k: int, rows: int, cols: int) -> None:
    # IS holds the inputs (K x M) on the array and streams the N filters; WS holds the weights
    # (K x N) and streams the M pixels. Transposing the GEMM swaps the two: IS(M, N, K) is
    # WS(N, M, K) with the roles of inputs and weights exchanged - reads of one are reads of the
    # other, and the partial sums are written once per row fold of K either way.
    ws_in, ws_w, ws_out = sram_reads(n, m, k, rows, cols, "ws")
    assert sram_reads(m, n, k, rows, cols, "is") == (ws_w, ws_in, ws_out)
    assert compute_cycles(m, n, k, rows, cols, "is") == compute_cycles(n, m, k, rows, cols, "ws")
    assert mapping_efficiency(m, n, k, rows, cols, "is") == mapping_efficiency(
        n, m, k, rows, cols, "ws")


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
@pytest.mark.parametrize("sram_bytes", [2048, 4096, 16384, 65536])
def test_gemm_traffic_respects_the_capacity_lower_bound(dataflow: str, sram_bytes: int) -> None:
    # Smith et al. (2017): a GEMM computed with S words of fast memory moves at least
    # 2MNK / sqrt(S) - 2S words. At 8 bits a word is a byte, and counting S in bytes only
    # loosens the bound (partial sums take 4 bytes). A 256^3 GEMM in 2-64 KiB cannot stay at its
    # compulsory 3 x 64 KiB: some operand must be re-read once per block of the other.
    m = n = k = 256
    t = tile_gemm(m=m, n=n, k=k, a_bytes=m * k, a_in_dram=True, c_to_dram=True, w_bits=8,
                  a_bits=8, o_bits=8, acc_bits=32, rows=8, cols=8, dataflow=dataflow,
                  free_bytes=sram_bytes)
    moved = t.a_dram_bytes + t.b_dram_bytes + t.c_dram_bytes
    assert t.buffer_bytes <= sram_bytes
    assert moved >= 2 * m * n * k / math.sqrt(sram_bytes) - 2 * sram_bytes
    assert moved >= 3 * m * n  # and never below compulsory


def _one_layer(la: Layer) -> Workload:
    """input -> ``la`` -> output (the input is read from DRAM, the output stored to it)."""
    n, c, h = la.n, la.c, la.h
    inp = Layer(name="input", op="input", n=n, c=c, h=h, w=la.w, k=c, ho=h, wo=la.w,
                a_bits=la.a_bits, o_bits=la.a_bits, input_elems=la.input_elems,
                output_elems=la.input_elems)
    out = Layer(name="output", op="output", n=n, c=la.k, k=la.k, input_elems=la.output_elems)
    return Workload.from_layers([inp, la, out], name="one", batch=n)


def test_each_operand_moves_its_own_bits_rounded_up_once_per_tensor() -> None:
    # W2A8 with 2-bit outputs, element counts that are not multiples of 4: 135 weights x 2 bits
    # = 33.75 -> 34 bytes (not 135: an element is not rounded to a byte), 243 inputs x 8 bits,
    # 245 outputs at their own 2 bits (not the inputs' 8) = 61.25 -> 62 bytes.
    la = conv_layer("c0", c=3, h=9, w=9, k=5, r=3, bits=(2, 8), o_bits=2)
    assert (la.weight_elems, la.input_elems, la.output_elems) == (135, 243, 245)
    acc = Accelerator(cores=1, rows=4, cols=4, mac_bits=(8, 8), sram_kib=64.0, dram_gbps=1.0,
                      dram_latency_ns=0.0)
    res = simulate(_one_layer(la), acc)
    assert res.dram_bytes_by_operand == {"weights": 34, "inputs": 243, "outputs": 62}


@pytest.mark.parametrize("sram_bytes", [2048, 4096])
def test_an_os_k_split_pays_one_fill_and_drain_per_chunk_and_fold(sram_bytes: int) -> None:
    # Too little SRAM for a full-K block: the reduction is cut into chunks of tk. In OS each
    # chunk is a GEMM of depth tk on every fold (the outputs stay, the array fills and drains
    # again): kch x folds x (tk + R + C - 2) cycles - the closed form summed over the chunks.
    # WS and IS already hold K on the array's rows, so their cycles do not change.
    m = n = k = 256
    kw = dict(m=m, n=n, k=k, a_bytes=m * k, a_in_dram=True, c_to_dram=True, w_bits=8, a_bits=8,
              o_bits=8, acc_bits=32, rows=8, cols=8, free_bytes=sram_bytes)
    t = tile_gemm(dataflow="os", **kw)  # type: ignore[arg-type]
    assert t.k_chunks > 1
    assert k % t.k_chunks == 0
    tk = k // t.k_chunks
    assert t.compute_cycles == t.k_chunks * compute_cycles(m, n, tk, 8, 8, "os",
                                                           scalesim_offset=False)
    assert t.compute_cycles == t.k_chunks * (m // 8) * (n // 8) * (tk + 8 + 8 - 2)
    for df in ("ws", "is"):
        t = tile_gemm(dataflow=df, **kw)  # type: ignore[arg-type]
        assert t.k_chunks > 1
        assert t.compute_cycles == compute_cycles(m, n, k, 8, 8, df, scalesim_offset=False)


def test_a_double_buffered_partial_block_takes_two_halves_of_every_buffer() -> None:
    # 256 x 256 x 16 GEMM, 8-bit, 8x8 array, 4 KiB per core, 1 byte per cycle (memory-bound, so
    # double buffering wins). Neither operand fits whole (4 KiB each, 32 fold units of 128 B), so
    # the stationary block is replaced while the array works: the block (xb units of 128 B), the
    # streamed unit (128 B) and the output tile (xb x 64 B) each need two halves,
    # 2 (128 xb) + 2 (128) + 2 (64 xb) = 384 xb + 256 <= 4096 -> xb = 10, 32 units in 4 blocks
    # of 8 (3328 B). The other operand is read once per block: 4096 + 4 x 4096 + 65536 bytes.
    t = tile_gemm(m=256, n=256, k=16, a_bytes=256 * 16, a_in_dram=True, c_to_dram=True,
                  w_bits=8, a_bits=8, o_bits=8, acc_bits=32, rows=8, cols=8, dataflow="os",
                  free_bytes=4096, bw_share_bytes_per_s=1e9, s_per_cycle=1e-9)
    assert t.double_buffered
    assert (t.x_units, t.x_units_per_block) == (32, 8)
    assert t.buffer_bytes == 2 * 8 * 128 + 2 * 128 + 2 * 8 * 64
    assert t.a_dram_bytes + t.b_dram_bytes == 4096 + 4 * 4096
    assert t.c_dram_bytes == 256 * 256


def test_every_core_rounds_its_own_requests_to_whole_bursts() -> None:
    # Three identical cores, each loading 100 B before compute (40 of inputs, 60 of weights),
    # streaming 500 B (260 of inputs, 240 of weights) and storing 30 B. With 64-byte bursts each
    # core's request of each operand rounds up on its own: on-load 3 x (64 + 64) (not
    # ceil(300 / 64) x 64 = 320), stream 3 x (320 + 256), off-load 3 x 64 (not 128).
    task = CoreTask(count=3, tiles=4, macs=10, compute_cycles=100, vector_cycles=0,
                    onload_bytes=100, stream_bytes=500, offload_bytes=30, double_buffered=True,
                    sram_accesses=0, sram_bits=0, dram_weights=300, dram_inputs=300,
                    dram_outputs=30, onload_input_bytes=40)
    plan = LayerPlan(name="x", op="linear", split="n", cores_used=3, tasks=(task,), macs=30,
                     ideal_cycles=1.0, w_bits=8, a_bits=8, o_bits=8)
    assert plan.phases(1)[:3] == (300, 1500, 90)
    assert plan.phases(64)[:3] == (3 * 128, 3 * (320 + 256), 3 * 64)
    # the DRAM model rounds a transfer of three streams the same way
    mem = MemorySystem(simpy.Environment(), bytes_per_s=1e9, latency_s=0.0, burst_bytes=64)
    assert mem.bursts(300, 3) == 3 * 128
    assert mem.bursts(90, 3) == 3 * 64


@pytest.mark.parametrize(("dataflow", "m_unit"), [("os", 8), ("ws", 8), ("is", 64)])
def test_the_first_fold_step_is_one_fold_unit_an_array_depth_deep(dataflow: str,
                                                                   m_unit: int) -> None:
    # 100 x 100 x 200 GEMM, 8-bit, on an 8 x 64 array. The pipeline's first step loads one fold
    # unit of each operand `rows` = 8 deep in K (not `cols` = 64 deep): M units of m_unit pixels
    # (8 on the rows for OS/WS, 64 on the columns for IS) and N units of the other side, so
    # (8 + 64) x 8 = 576 bytes; steps = M units x N units x ceil(200 / 8) K slices = 650.
    n_unit = 8 * 64 // m_unit
    t = tile_gemm(m=100, n=100, k=200, a_bytes=100 * 200, a_in_dram=True, c_to_dram=True,
                  w_bits=8, a_bits=8, o_bits=8, acc_bits=32, rows=8, cols=64,
                  dataflow=dataflow, free_bytes=1 << 20)
    assert t.onload_input_bytes == m_unit * 8
    assert t.onload_bytes == (m_unit + n_unit) * 8
    assert t.steps == math.ceil(100 / m_unit) * math.ceil(100 / n_unit) * math.ceil(200 / 8)
    assert t.offload_bytes == m_unit * n_unit


@pytest.mark.parametrize("bits", [(2, 2), (1, 3), (4, 2), (8, 8)])
@pytest.mark.parametrize(("rows", "cols"), [(2, 2), (3, 5), (4, 4)])
@pytest.mark.parametrize("dataflow", ["os", "is"])
def test_the_quoted_minimum_tile_is_the_smallest_sram_that_works(
        bits: tuple[int, int], rows: int, cols: int, dataflow: str) -> None:
    # The error's "increase sram_kib to at least X" must be enough, and one byte less must not
    # be: one fold unit of inputs and of weights at depth 1 and an acc_bits output tile, each in
    # whole bytes (2 inputs + 2 weights at 2 bits + a 2x2 tile at 32 bits: 1 + 1 + 16 = 18 B,
    # not ceil(136 / 8) = 17).
    w, a = bits
    m, n, k = 5 * rows * cols, 5 * rows * cols, 40
    need = min_tile_bytes(a, w, 32, rows, cols, dataflow)
    kw = dict(m=m, n=n, k=k, a_bytes=math.ceil(m * k * a / 8), a_in_dram=True, c_to_dram=True,
              w_bits=w, a_bits=a, o_bits=a, acc_bits=32, rows=rows, cols=cols,
              dataflow=dataflow)
    t = tile_gemm(free_bytes=need, **kw)  # type: ignore[arg-type]
    assert t.buffer_bytes == need
    with pytest.raises(ValueError, match="sram_kib"):
        tile_gemm(free_bytes=need - 1, **kw)  # type: ignore[arg-type]
    if (w, a, rows, cols) == (2, 2, 2, 2):
        assert need == 18


def _chain(widths: list[int], n: int = 1, bits: int = 8) -> Workload:
    """input -> fully connected layers widths[0] -> widths[1] -> ... -> output."""
    layers = [Layer(name="input", op="input", n=n, c=widths[0], h=1, w=1, k=widths[0], ho=1,
                    wo=1, a_bits=bits, o_bits=bits, input_elems=n * widths[0],
                    output_elems=n * widths[0])]
    for i, (ci, co) in enumerate(itertools.pairwise(widths)):
        layers.append(conv_layer(f"fc{i}", c=ci, h=1, w=1, k=co, r=1, n=n, bits=(bits, bits),
                                 op="linear"))
    layers.append(Layer(name="output", op="output", n=n, c=widths[-1], k=widths[-1],
                        input_elems=n * widths[-1]))
    return Workload.from_layers(layers, name="chain", batch=n)


@pytest.mark.parametrize(("widths", "cores", "kib"), [
    ([16, 16, 128, 128, 128, 16], 1, kib) for kib in (20, 24, 28)] + [
    ([128, 128, 384, 64, 384, 128], 4, kib) for kib in (24, 32)])
def test_staged_weights_fit_at_every_step_of_their_window(widths: list[int], cores: int,
                                                          kib: int) -> None:
    # The prefetch ledger (docs/simulator.md, "Prefetch across layers"): a staged layer's weights
    # occupy SRAM from the start of the layer its load begins with to its own step, inclusive.
    # Recount the ledger from the plan: at every step, resident tensors + every staged weight
    # set whose window covers the step + that step's tile reserve must fit the chip's SRAM.
    from dse.sim.simulate import _prepare, plan_graph

    acc = Accelerator(cores=cores, rows=4, cols=8, mac_bits=(8, 8), sram_kib=float(kib),
                      dram_gbps=4.0)
    nodes, order = _prepare(_chain(widths, n=4), 4)
    opts = {"high_precision": "configurable", "onchip_reuse": True, "multicast": True,
            "persistent_weights": False, "prefetch": True, "fidelity": "layer"}
    pl = plan_graph(nodes, order, acc, opts)
    assert len(pl.staged) >= 2  # the ledger has something to check
    pos = {name: t for t, name in enumerate(order)}
    for t, name in enumerate(order):
        staged = sum(nodes[la].layer.weight_bytes for la, start in pl.staged.items()
                     if pos[start] <= t <= pos[la])
        on_chip = pl.resident_at[t] + staged + pl.reserves.get(name, 0) * acc.cores
        assert on_chip <= acc.sram_bytes_total, (name, on_chip, pl.staged)


def test_leakage_is_watts_per_mm2_times_area_times_latency() -> None:
    em = default_energy_model(40.0, static_w_per_mm2=12.3e-3)
    acc = Accelerator(cores=2, rows=4, cols=8, mac_bits=(8, 8), sram_kib=64.0, dram_gbps=4.0,
                      node_nm=40.0)
    res = simulate(_chain([64, 128, 64]), acc, energy_model=em)
    assert res.energy_by_component["static"] == pytest.approx(12.3e-3 * acc.area * res.latency_s)
    assert res.energy_j == pytest.approx(sum(res.energy_by_component.values()))


def test_pipeline_stages_minimise_the_slowest_stage() -> None:
    # Five compute-bound layers on two 1-core groups, the last with 4x the filters: times
    # 1, 1, 1, 1, 4 (x 624 cycles per image). Contiguous cuts give slowest stages 7, 6, 5, 4;
    # the balanced pipeline must take the last one (every cut has the same total time, so only
    # the max tells them apart).
    acc = Accelerator(cores=2, rows=8, cols=8, mac_bits=(8, 8), sram_kib=256.0,
                      dram_gbps=math.inf, dram_latency_ns=0.0)
    res = simulate(_chain([64, 64, 64, 64, 64, 256]), acc, batch=4, schedule="pipeline",
                   groups=2)
    cyc = dict(zip(res.layers["name"], res.layers["compute_cycles"], strict=True))
    # per image: folds x (K + R + C - 2) - 1, with 64 / 8 and 256 / 8 column folds
    assert (cyc["fc0"], cyc["fc4"]) == (4 * (8 * 78 - 1), 4 * (32 * 78 - 1))
    assert dict(zip(res.layers["name"], res.layers["core_group"], strict=True)) == {
        "fc0": 0, "fc1": 0, "fc2": 0, "fc3": 0, "fc4": 1}


@pytest.mark.parametrize(("h", "stride", "cores", "in_rows"), [
    (18, 1, 2, 10), (18, 1, 4, 6), (17, 2, 2, 9)])
def test_an_m_split_core_reads_the_input_rows_under_its_output_rows(
        h: int, stride: int, cores: int, in_rows: int) -> None:
    # A 3x3 convolution split by output rows (8 filters: one column fold, so no N split), at
    # unlimited bandwidth so every core is used. A core with o output rows reads
    # (o - 1) x stride + 3 input rows (the halo included): 16 output rows on 2 cores -> 10 rows
    # each, on 4 cores -> 6; stride 2, 8 output rows on 2 cores -> 3 x 2 + 3 = 9.
    la = conv_layer("c0", c=8, h=h, w=h, k=8, r=3, stride=stride, bits=(8, 8))
    acc = Accelerator(cores=cores, rows=8, cols=8, mac_bits=(8, 8), sram_kib=64.0,
                      dram_gbps=math.inf, dram_latency_ns=0.0, dram_burst_bytes=1)
    res = simulate(_one_layer(la), acc)
    assert (res.layers["split"].iloc[0], res.layers["cores_used"].iloc[0]) == ("m", cores)
    assert res.dram_bytes_by_operand["inputs"] == cores * in_rows * h * 8


def test_each_core_ranks_its_tilings_with_its_share_of_the_bandwidth() -> None:
    # A 5x5 stride-2 conv split by filters over 2 cores sharing 8 GB/s: each core streams at
    # 4 GB/s. At that share the best tiling is the double-buffered one that hides its stream
    # behind compute (6863 cycles incl. K-split fills, 4.615 us), not the single-buffered one
    # with fewer cycles (4707) that waits for its loads (4.776 us) - which it would look like if
    # a core believed it had all 8 GB/s. Single-buffered hardware can only take the latter.
    la = conv_layer("c0", c=8, h=30, w=30, k=16, r=5, stride=2, bits=(8, 8))
    acc = Accelerator(cores=2, rows=8, cols=8, mac_bits=(8, 8), sram_kib=2.0, dram_gbps=8.0,
                      dram_latency_ns=0.0, dram_burst_bytes=1)
    double = simulate(_one_layer(la), acc, prefetch=False)
    single = simulate(_one_layer(la), replace(acc, double_buffered=False), prefetch=False)
    assert double.layers["double_buffered"].iloc[0]
    assert double.layers["cores_used"].iloc[0] == 2
    assert double.latency_s == pytest.approx(4.6153e-6, rel=1e-4)
    assert single.latency_s == pytest.approx(4.776e-6, rel=1e-4)


@pytest.mark.parametrize(("kib", "loads_early"), [(24, False), (32, True)])
def test_a_first_tile_prefetches_only_beside_half_the_predecessors_buffers(
        kib: int, loads_early: bool) -> None:
    # fc0 (256 -> 512, 16-bit, one 32 x 256 core) tiles into 20480 B; its last tile leaves half
    # of them busy, so 24576 - 10240 = 14336 B are free at 24 KiB and 22528 B at 32 KiB. fc1's
    # first tile is one fold unit of weights, 32 deep x 256 wide at 2 bytes = 16384 B: it loads
    # ahead (a shorter on-load than without prefetch) at 32 KiB, and not at 24 KiB, where it fits
    # the SRAM (24576 B) only if fc0's buffers were ignored.
    from dse.sim.simulate import _prepare, plan_graph

    acc = Accelerator(cores=1, rows=32, cols=256, mac_bits=(16, 16), sram_kib=float(kib),
                      dram_gbps=2.0, dram_latency_ns=100.0)
    wl = _chain([256, 512, 256], bits=16)
    nodes, order = _prepare(wl, 1)
    opts = {"high_precision": "configurable", "onchip_reuse": True, "multicast": True,
            "persistent_weights": False, "prefetch": True, "fidelity": "layer"}
    pl = plan_graph(nodes, order, acc, opts)
    assert pl.reserves["fc0"] == 20480
    assert pl.plans["fc1"].phases()[0] == 32 * 256 * 2
    assert not pl.staged
    onload = {pf: simulate(wl, acc, prefetch=pf).layers.set_index("name")["onload_cycles"]["fc1"]
              for pf in (True, False)}
    assert (onload[True] < onload[False] - 100) == loads_early
    if not loads_early:
        assert onload[True] == pytest.approx(onload[False])


@pytest.mark.parametrize(("gbps", "bound"), [(1.0, "memory"), (100.0, "compute")])
def test_a_layer_is_memory_bound_when_its_bytes_outlast_its_compute(gbps: float,
                                                                   bound: str) -> None:
    # fc 512 -> 512 at 8 bits on one 8x8 core at 1 GHz: 64 column folds of 512 + 14 cycles,
    # 33.7 us of compute; 256 KiB of weights (+ 1 KiB in and out) take 263 us at 1 GB/s and
    # 2.6 us at 100 GB/s.
    acc = Accelerator(cores=1, rows=8, cols=8, mac_bits=(8, 8), freq_ghz=1.0, sram_kib=512.0,
                      dram_gbps=gbps, dram_latency_ns=0.0)
    row = simulate(_chain([512, 512]), acc).layers.iloc[0]
    assert row["compute_cycles"] == 64 * (512 + 8 + 8 - 2) - 1
    assert row["dram_bytes"] == 512 * 512 + 512 + 512
    assert row["bound"] == bound


def test_weights_can_stage_from_the_first_step_of_a_graph() -> None:
    # The staging ledger may start a load at any earlier step, the first included; only an
    # `input` node (a tensor in DRAM, no compute to hide behind) stops it. Without one, fc0 is
    # step 0 and fc1's 4 KiB of weights load while it runs.
    ls = [conv_layer(f"fc{i}", c=64, h=1, w=1, k=64, r=1, op="linear", bits=(8, 8))
          for i in range(2)]
    ls.append(Layer(name="output", op="output", n=1, c=64, k=64, input_elems=64))
    acc = Accelerator(cores=1, rows=8, cols=8, mac_bits=(8, 8), sram_kib=64.0, dram_gbps=1.0,
                      dram_latency_ns=0.0)
    res = simulate(Workload.from_layers(ls, name="no_input", batch=1), acc)
    staged = dict(zip(res.layers["name"], res.layers["weights_prefetched"], strict=True))
    assert staged == {"fc0": False, "fc1": True}


def test_a_streamed_input_unit_holds_the_window_its_pixels_read() -> None:
    # A 3x3 conv (16 -> 4 channels, 56 x 56 input) split by output rows over 4 cores of 8 x 16
    # MACs, weights stationary (all 576 B fit) and full K (its cycles are the closed form of the
    # largest core's 736 pixels, no K-split fills). To compute one fold unit of 8 neighbouring
    # output pixels the array needs their input window, 3 rows x (8 - 1 + 3) columns x 16
    # channels = 480 B, in each half of the double-buffered input tile, beside the weights and
    # two 8 x 4 output tiles: at least 576 + 2 x 480 + 2 x 32 bytes of SRAM. A streamed unit cut
    # as a pixel share of the core's input rows without the halo rows needs far less.
    la = conv_layer("c0", c=16, h=56, w=56, k=4, r=3, bits=(8, 8))
    acc = Accelerator(cores=4, rows=8, cols=16, mac_bits=(8, 8), sram_kib=8.0, dram_gbps=64.0,
                      dram_latency_ns=0.0, dram_burst_bytes=1)
    plan = plan_compute(la, acc, free_bytes=acc.sram_bytes_per_core, cores=4,
                        a_dram_bytes=la.input_bytes, c_to_dram=True,
                        high_precision="configurable")
    assert (plan.split, plan.cores_used, plan.stationary) == ("m", 4, "weights")
    assert plan.double_buffered
    assert plan.compute_cycles == compute_cycles(736, 4, 144, 8, 16, "os")
    assert plan.buffer_bytes >= 576 + 2 * 3 * 10 * 16 + 2 * 8 * 4

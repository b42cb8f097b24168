"""Mapping: split a layer across cores, tile it into the per-core SRAM, and count its traffic.

Everything here is closed-form and static (no SimPy): `plan_compute` turns one compute layer into
a `LayerPlan` - which cores do what, how many stall-free cycles each needs, which bytes must move
to/from DRAM and which of them can overlap compute. `dse.sim.simulate` plays the plans out in time.

Model (docs/simulator.md has the long form):

* **GEMM view.** A compute layer is ``groups`` independent GEMMs of M x K (inputs, "A") by K x N
  (weights, "B") giving M x N (outputs, "C"), with SCALE-Sim's M/N/K (`dse.sim.systolic`).
* **Core split.** A grid of pm M blocks x pn N blocks: by output channels (``"n"``: a slice of N,
  or of the groups of a grouped conv, per core; every core reads the whole input), by output
  pixels (``"m"``: a chunk of whole fold units of output pixels per core, reading the input rows
  under its output rows, and all weights), both (``"mn"``), or by images (``"batch"``). Work is
  dealt out in ``q = ceil(U/p)`` units per dimension, so cores come in at most four classes of
  identical work (`CoreTask.count`). Every candidate (split, pm * pn <= cores) is timed with
  `estimate_s` - the exact time `dse.sim.simulate` gives the layer when it runs alone - and the
  fastest wins (ties: fewer cores, then fewer bytes), with an exact branch-and-bound.
  With ``multicast`` the cores of one M block share its input bytes and the cores of one N block
  its weight bytes (each crosses the DRAM interface once).
* **Tiling (per core, one SRAM pool).** One operand X (inputs A along M, or weights B along N) is
  held in SRAM in blocks of ``xb`` fold units while the other, Y, streams through one fold unit
  at a time; outputs leave per fold. Traffic: X once, Y once per X block, C once; if all of X
  fits, traffic is compulsory. With room for two of every streamed buffer the tiles are
  **double-buffered** (loads of step i+1 overlap compute of step i); otherwise
  **single-buffered** (loads and compute serialize). A K-split family (unit blocks, ``tk`` deep,
  an ``acc_bits`` partial-sum tile; in OS each extra K chunk pays the fold fill/drain again)
  covers SRAMs too small for full-K blocks. Below one 1-deep tile: ValueError on ``sram_kib``.
* **Resident operands.** An input already on chip (`dse.sim.simulate`'s SRAM ledger) costs no DRAM
  bytes and no tile buffer; an output kept on chip is written to its resident space.
* **Bits.** Bytes are elements x bits / 8 with the layer's ``w_bits`` / ``a_bits`` / ``o_bits``.
  A layer whose bits exceed the MAC's is slowed by the design's own rule,
  `Accelerator.precision_slowdown` (named ``high_precision`` model x the ``peak_scaling`` that
  sized the design; `arch.area.precision_slowdown`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from arch.spec import Accelerator
from dse.sim.dram import whole_bursts
from dse.sim.recurrent import layer_steps, repeat_steps, step_layer
from dse.sim.systolic import fold_shape, sram_reads

if TYPE_CHECKING:  # `workloads` imports torch at package level; the simulator must not
    from dse.sim.scalesim_tiles import Tile
    from workloads.graph import Layer

__all__ = [
    "SPLITS",
    "CoreTask",
    "LayerPlan",
    "Tiling",
    "estimate_s",
    "min_tile_bytes",
    "plan_compute",
    "plan_memory_op",
    "plan_scalesim",
    "tile_gemm",
]

SPLITS = ("n", "m", "mn", "batch")


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True, slots=True)
class Tiling:
    """The tiling of ``groups`` identical (M, N, K) GEMMs on one core (bytes are per core).

    ``stationary``: "inputs" or "weights" (the operand held in blocks of ``x_units_per_block`` of
    its ``x_units`` fold units); ``k_chunks`` > 1 when the reduction was split.
    ``buffer_bytes``: SRAM the tiles use. ``*_dram_bytes``: DRAM traffic per operand.
    ``onload_bytes``: the first fold step's operands (nothing to overlap them with);
    ``offload_bytes``: the last fold step's outputs; ``steps``: pipeline stages (fold units x
    K slices of array depth: loads and compute overlap at this granularity);
    ``compute_cycles``: stall-free array cycles incl. K-split overheads (before precision factor).
    """

    stationary: str
    x_units: int
    x_units_per_block: int
    k_chunks: int
    double_buffered: bool
    buffer_bytes: int
    a_dram_bytes: int
    b_dram_bytes: int
    c_dram_bytes: int
    onload_bytes: int
    offload_bytes: int
    steps: int
    compute_cycles: int
    onload_input_bytes: int = 0

    @property
    def dram_bytes(self) -> int:
        return self.a_dram_bytes + self.b_dram_bytes + self.c_dram_bytes


def _units(dataflow: str, rows: int, cols: int) -> tuple[int, int]:
    """Fold granularity along (M, N): how many of each one fold step covers.

    OS holds an R x C block of outputs (M on rows, N on cols); WS holds weights with N on the cols
    and streams M (tiled here in R-sized steps); IS holds inputs with M on the cols, N streams
    (tiled in R-sized steps)."""
    if dataflow == "os":
        return rows, cols
    if dataflow == "ws":
        return rows, cols
    return cols, rows  # "is"


def min_tile_bytes(a_bits: int, w_bits: int, acc_bits: int, rows: int, cols: int,
                   dataflow: str) -> int:
    """Smallest legal tile, single-buffered: one fold unit of inputs and of weights at reduction
    depth 1, plus its accumulator-precision output tile. Each buffer holds whole bytes (as
    `tile_gemm` sizes them), so sub-byte operands round up per buffer, not once in total."""
    um, un = _units(dataflow, rows, cols)
    return (math.ceil(um * a_bits / 8) + math.ceil(un * w_bits / 8)
            + math.ceil(um * un * acc_bits / 8))


def pipeline_s(*, onload_bytes: float, stream_bytes: float, offload_bytes: float,
               compute_s: float, steps: int, double_buffered: bool, bytes_per_s: float,
               latency_s: float) -> float:
    """Time of one core's tile pipeline with ``bytes_per_s`` to itself (what `dse.sim` plays):
    latency + on-load; then the compute of all fold steps but the last, overlapped with (double
    buffering) or followed by (single) the streamed loads/stores; the last step; latency +
    off-load."""
    def xfer(nbytes: float) -> float:
        return latency_s + nbytes / bytes_per_s if nbytes > 0 else 0.0

    tail = compute_s / max(1, steps)
    body = compute_s - tail
    stream = xfer(stream_bytes)
    mid = max(body, stream) if double_buffered else body + stream
    return xfer(onload_bytes) + mid + tail + xfer(offload_bytes)


def tile_gemm(*, m: int, n: int, k: int, a_bytes: int, a_in_dram: bool, c_to_dram: bool,
              w_bits: int, a_bits: int, o_bits: int, acc_bits: int, rows: int, cols: int,
              dataflow: str, free_bytes: int | tuple[int, int, int], halo_bytes: int = 0,
              groups: int = 1,
              bw_share_bytes_per_s: float = math.inf, s_per_cycle: float = 0.0,
              latency_s: float = 0.0, b_in_dram: bool = True, input_sharers: int = 1,
              weight_sharers: int = 1, double_buffering: bool = True) -> Tiling:
    """Choose the tiling of ``groups`` identical (M, N, K) GEMMs into ``free_bytes`` of SRAM: one
    unified pool (an int), or split ``(ifmap, filter, ofmap)`` buffers, each holding its operand.

    ``a_bytes``: input bytes one GEMM reads (raw tensor; im2col happens on chip);
    ``halo_bytes``: extra input bytes an M block needs beyond its share (convolution overlap);
    ``b_in_dram=False``: the weights are pinned on chip (no buffer, no traffic);
    ``input_sharers`` / ``weight_sharers``: cores that share each byte by multicast (the
    candidates are ranked by the bytes this core adds to the interface).
    Candidates (module docstring): inputs or weights stationary, double or single buffered, full
    K with the largest X block that fits (it dominates smaller ones: less traffic, same
    pipeline), and K split with the deepest chunk that fits. The winner has the smallest
    `pipeline_s` with this core's bandwidth share (``s_per_cycle``: seconds per array cycle,
    including any precision slow-down), then the least traffic, then the smallest buffer.
    ``double_buffering=False``: the buffers are single (the hardware has no second half).
    Raises ValueError (field ``sram_kib``) if not even the smallest tile fits. Memoised.
    """
    return _tile_gemm(m, n, k, a_bytes, a_in_dram, c_to_dram, w_bits, a_bits, o_bits, acc_bits,
                      rows, cols, dataflow, free_bytes, halo_bytes, groups,
                      bw_share_bytes_per_s, s_per_cycle, latency_s, b_in_dram, input_sharers,
                      weight_sharers, double_buffering)


@functools.lru_cache(maxsize=1 << 16)
def _tile_gemm(m: int, n: int, k: int, a_bytes: int, a_in_dram: bool, c_to_dram: bool,
               w_bits: int, a_bits: int, o_bits: int, acc_bits: int, rows: int, cols: int,
               dataflow: str, free_bytes: int | tuple[int, int, int], halo_bytes: int,
               groups: int, bw_share: float,
               s_per_cycle: float, latency_s: float, b_in_dram: bool, in_sh: int,
               w_sh: int, double_buffering: bool = True) -> Tiling:
    um, un = _units(dataflow, rows, cols)
    nm, nn = _ceil_div(m, um), _ceil_div(n, un)
    b_bytes = math.ceil(k * n * w_bits / 8) if b_in_dram else 0  # pinned weights: none
    a_need = a_bytes if a_in_dram else 0  # resident inputs need no tile buffer
    halo = halo_bytes if a_in_dram else 0
    c_dram = math.ceil(m * n * o_bits / 8) if c_to_dram else 0
    fs = fold_shape(m, n, k, rows, cols, dataflow)
    base_cycles = fs.folds * fs.cycles_per_fold
    # The pipeline's first and last fold steps (independent of the tiling): the first step needs
    # one fold unit of each operand, `rows` deep in K (the array starts on the first K slice);
    # the last step stores one fold's outputs.
    kd = min(k, rows)
    steps = groups * nm * nn * _ceil_div(k, kd)  # pipeline stages: fold units x K slices
    first_a = math.ceil(min(m, um) * kd * a_bits / 8) if a_in_dram else 0
    first = first_a + (math.ceil(kd * min(n, un) * w_bits / 8) if b_in_dram else 0)
    last = min(c_dram, math.ceil(min(m, um) * min(n, un) * o_bits / 8))

    def a_blk(units: int) -> int:
        return a_need if units >= nm else min(a_need, math.ceil(a_need * units / nm) + halo)

    def b_blk(units: int) -> int:
        return b_bytes if units >= nn else math.ceil(b_bytes * units / nn)

    def c_blk(m_units: int, n_units: int, bits: int) -> int:
        return math.ceil(min(m, m_units * um) * min(n, n_units * un) * bits / 8)

    def parts(nx: int, xb: int, x: int, y: int, c: int, db: bool) -> tuple[int, int, int]:
        """Buffer bytes of (the stationary block, the streamed tile, the output tile): every
        streamed buffer is doubled when double-buffered; the stationary block too, unless all of
        it fits at once (then it is loaded once and never replaced)."""
        mult = 2 if db else 1
        return (x if xb >= nx else mult * x), mult * y, mult * c

    def buf(nx: int, xb: int, x: int, y: int, c: int, db: bool) -> int:
        return sum(parts(nx, xb, x, y, c, db))

    free_total = sum(free_bytes) if isinstance(free_bytes, tuple) else free_bytes

    def fits(stat: str, p: tuple[int, int, int]) -> bool:
        """Whether (stationary, streamed, output) bytes fit: the pool, or each operand's buffer
        (inputs in ifmap, weights in filter, outputs - or partial sums - in ofmap)."""
        if not isinstance(free_bytes, tuple):
            return sum(p) <= free_bytes
        a, b = (p[0], p[1]) if stat == "inputs" else (p[1], p[0])
        return a <= free_bytes[0] and b <= free_bytes[1] and p[2] <= free_bytes[2]

    # (stationary, xb, nx, buffer, double_buffered, k_chunks, a_traffic, b_traffic, cycles)
    cands: list[tuple[str, int, int, int, bool, int, int, int, int]] = []
    for db in (True, False) if double_buffering else (False,):
        for stat in ("inputs", "weights"):
            if stat == "inputs":
                nx, xf, yb = nm, a_blk, b_blk(1)

                def cf(xb: int) -> int:
                    return c_blk(xb, 1, o_bits)
            else:
                nx, xf, yb = nn, b_blk, a_blk(1)

                def cf(xb: int) -> int:
                    return c_blk(1, xb, o_bits)
            if not fits(stat, parts(nx, 1, xf(1), yb, cf(1), db)):
                continue
            if fits(stat, parts(nx, nx, xf(nx), yb, cf(nx), db)):
                xb = nx
            else:  # largest xb in [1, nx) that fits: bisect (the buffer grows with xb)
                lo, hi = 1, nx - 1
                while lo < hi:
                    mid = (lo + hi + 1) // 2
                    if fits(stat, parts(nx, mid, xf(mid), yb, cf(mid), db)):
                        lo = mid
                    else:
                        hi = mid - 1
                xb = _ceil_div(nx, _ceil_div(nx, lo))  # same block count, smallest block
            nblk = _ceil_div(nx, xb)
            if stat == "inputs":
                a_tr, b_tr = a_need, b_bytes * (1 if nn == 1 else nblk)
            else:
                a_tr, b_tr = a_need * (1 if nm == 1 else nblk), b_bytes
            cands.append((stat, xb, nx, buf(nx, xb, xf(xb), yb, cf(xb), db), db, 1, a_tr, b_tr,
                          base_cycles))
        # K split: (um x tk) input and (tk x un) weight blocks, an acc_bits output tile; inputs
        # are re-read for every N unit and weights for every M unit. In OS every extra K chunk
        # fills and drains the array again (K + R + C - 2 per fold becomes one fill per chunk).
        cb = c_blk(1, 1, acc_bits)
        tk = k
        while tk >= 1:
            xa = math.ceil(um * tk * a_bits / 8) if a_in_dram else 0
            xw = math.ceil(tk * un * w_bits / 8) if b_in_dram else 0
            b = buf(2, 1, xw, xa, cb, db)
            if fits("weights", parts(2, 1, xw, xa, cb, db)):
                kch = _ceil_div(k, tk)
                extra = fs.folds * (kch - 1) * fs.overhead_cycles if dataflow == "os" else 0
                # kept even at kch == 1: its buffer (an im2col slice) can fit where a full-K
                # block of the raw input does not, and the family must only improve with SRAM
                cands.append(("weights", 1, nn, b, db, kch, a_need * (nn if nm > 1 else 1),
                              b_bytes * (nm if nn > 1 else 1), base_cycles + extra))
                break
            tk //= 2
    if not cands:
        need = min_tile_bytes(a_bits, w_bits, acc_bits, rows, cols, dataflow)
        raise ValueError(
            f"sram_kib: {free_total / 1024:.3f} KiB free per core cannot hold the smallest legal "
            f"tile of this layer ({need / 1024:.3f} KiB: {um} inputs + {un} weights at depth 1 and "
            f"a {um}x{un} accumulator tile); increase sram_kib to at least {need / 1024:.3f} "
            "(plus whatever is held on chip)")

    first_eff = first_a / in_sh + (first - first_a) / w_sh

    def key(c: tuple[str, int, int, int, bool, int, int, int, int]) -> tuple[float, float, int]:
        traffic = groups * (c[6] / in_sh + c[7] / w_sh + c_dram)
        t = pipeline_s(onload_bytes=first_eff, stream_bytes=max(0.0, traffic - first_eff - last),
                       offload_bytes=last, compute_s=groups * c[8] * s_per_cycle,
                       steps=steps, double_buffered=c[4],
                       bytes_per_s=bw_share, latency_s=latency_s)
        return (t, traffic, c[3])

    stat, xb, nx, bufb, db, kch, a_tr, b_tr, cyc = min(cands, key=key)
    return Tiling(stationary=stat, x_units=nx, x_units_per_block=xb, k_chunks=kch,
                  double_buffered=db, buffer_bytes=bufb, a_dram_bytes=groups * a_tr,
                  b_dram_bytes=groups * b_tr, c_dram_bytes=groups * c_dram,
                  onload_bytes=min(first, groups * (a_tr + b_tr)), offload_bytes=last,
                  onload_input_bytes=min(first_a, groups * a_tr),
                  steps=steps, compute_cycles=groups * cyc)


@dataclass(frozen=True, slots=True)
class CoreTask:
    """Work of ``count`` identical cores for one layer (all quantities per core).

    ``tiles``: pipeline steps (fold units x K slices); ``compute_cycles``: stall-free array cycles
    incl. the high-precision factor and K-split overheads; ``vector_cycles``: element-wise work on
    the core's vector lanes. DRAM bytes: ``onload_bytes`` (first step, before any compute; of which
    ``onload_input_bytes`` are inputs), ``stream_bytes`` (overlap compute when
    ``double_buffered``), ``offload_bytes`` (after the last compute). ``sram_accesses``: operand
    element reads/writes between SRAM and the array (plus DRAM fills), ``sram_bits`` the same in
    bits.
    """

    count: int
    tiles: int
    macs: int
    compute_cycles: int
    vector_cycles: int
    onload_bytes: int
    stream_bytes: int
    offload_bytes: int
    double_buffered: bool
    sram_accesses: int
    sram_bits: int
    dram_weights: int
    dram_inputs: int
    dram_outputs: int
    input_sharers: int = 1
    weight_sharers: int = 1
    onload_input_bytes: int = 0

    @property
    def dram_bytes(self) -> int:
        """Bytes one core of this class reads and writes (before multicast sharing)."""
        return self.onload_bytes + self.stream_bytes + self.offload_bytes

    def class_bytes(self) -> dict[str, int]:
        """DRAM bytes the whole class moves, by operand. With multicast, an input byte is read
        from DRAM once for the ``input_sharers`` cores that need it (the cores of one M block in
        an N split) and broadcast; likewise weights for ``weight_sharers`` (one N block's cores
        in an M or batch split)."""
        return {"weights": math.ceil(self.count * self.dram_weights / self.weight_sharers),
                "inputs": math.ceil(self.count * self.dram_inputs / self.input_sharers),
                "outputs": self.count * self.dram_outputs}


@dataclass(frozen=True, slots=True)
class LayerPlan:
    """A layer mapped onto the machine: its split, its core tasks and its byte counts (totals)."""

    name: str
    op: str
    split: str
    cores_used: int
    tasks: tuple[CoreTask, ...]
    macs: int
    ideal_cycles: float
    w_bits: int
    a_bits: int
    o_bits: int
    stationary: str = ""
    double_buffered: bool = True
    buffer_bytes: int = 0
    precision_factor: float = 1.0
    held_bytes: int = 0
    """SRAM per core held beside the tile buffers for the whole layer (unified pool): a
    recurrent layer's weights kept on chip from step to step (`dse.sim.recurrent`)."""

    @property
    def reserve_bytes(self) -> int:
        """SRAM per core the layer occupies while it runs: its tile buffers and what it holds."""
        return self.buffer_bytes + self.held_bytes

    @property
    def dram_bytes(self) -> int:
        return sum(self.dram_by_operand().values())

    def dram_by_operand(self) -> dict[str, int]:
        out = {"weights": 0, "inputs": 0, "outputs": 0}
        for t in self.tasks:
            for k, v in t.class_bytes().items():
                out[k] += v
        return out

    @property
    def compute_cycles(self) -> int:
        return max((t.compute_cycles + t.vector_cycles for t in self.tasks), default=0)

    @property
    def core_macs(self) -> int:
        return sum(t.count * t.macs for t in self.tasks)

    def phases(self, burst_bytes: int = 1) -> tuple[float, float, float, int, int, bool]:
        """The layer's lock-step pipeline: (on-load bytes, streamed bytes, off-load bytes, compute
        cycles of the slowest core, its pipeline steps, all double-buffered), bytes summed over
        every core as they cross the DRAM interface (multicast operands once). With
        ``burst_bytes`` > 1, each phase's request of each operand is rounded up to whole bursts
        per core (`operand_phases`; what `dse.sim.dram.MemorySystem` moves for them)."""
        if burst_bytes <= 1:
            return (*self._phase_totals(), *self.lockstep())

        def moved(nbytes: float) -> float:
            return whole_bursts(nbytes, self.cores_used, burst_bytes)

        on_ops, stream_ops, off = self.operand_phases()
        return (sum(map(moved, on_ops.values())), sum(map(moved, stream_ops.values())),
                moved(off), *self.lockstep())

    def lockstep(self) -> tuple[int, int, bool]:
        """(compute cycles of the slowest core, its pipeline steps, all double-buffered)."""
        crit = max(self.tasks, key=lambda t: t.compute_cycles + t.vector_cycles)
        return (crit.compute_cycles + crit.vector_cycles, crit.tiles,
                all(t.double_buffered for t in self.tasks))

    def _phase_totals(self) -> tuple[float, float, float]:
        on = st = off = 0.0
        for t in self.tasks:
            # the first step's inputs and weights are shared like the rest of each operand
            t_on = t.count * (t.onload_input_bytes / t.input_sharers
                              + (t.onload_bytes - t.onload_input_bytes) / t.weight_sharers)
            t_off = t.count * t.offload_bytes  # outputs are never shared
            on += t_on
            off += t_off
            st += max(0.0, sum(t.class_bytes().values()) - t_on - t_off)
        return on, st, off

    def operand_phases(self) -> tuple[dict[str, float], dict[str, float], float]:
        """(on-load bytes by operand, streamed bytes by operand, off-load bytes) of the lock-step
        pipeline, summed over the cores (multicast operands once); operands are ``ifmap``,
        ``filter``, ``ofmap`` as the DRAM model names them. Each is one DRAM request per phase
        that the simulator plays over the layer's `cores_used` streams."""
        on, stream, off = self._phase_totals()
        on_in = sum(t.count * t.onload_input_bytes / t.input_sharers for t in self.tasks)
        on_ops = {"ifmap": on_in, "filter": max(0.0, on - on_in)}
        by_op = self.dram_by_operand()
        rest = {"ifmap": max(0.0, by_op["inputs"] - on_ops["ifmap"]),
                "filter": max(0.0, by_op["weights"] - on_ops["filter"]),
                "ofmap": max(0.0, by_op["outputs"] - off)}
        total = sum(rest.values())
        scale = stream / total if total > 0 else 0.0
        return on_ops, {k: v * scale for k, v in rest.items()}, off


def estimate_s(plan: LayerPlan, acc: Accelerator) -> float:
    """The layer's time if it ran alone: `pipeline_s` of its lock-step phases (`LayerPlan.phases`,
    bursts included) with the whole DRAM bandwidth - exactly what `dse.sim.simulate` plays for a
    layer alone at layer fidelity without prefetch (tested: test_sim_estimate.py)."""
    on, st, off, cycles, steps, db = plan.phases(acc.dram_burst_bytes)
    return pipeline_s(onload_bytes=on, stream_bytes=st, offload_bytes=off,
                      compute_s=cycles / acc.freq_hz, steps=steps, double_buffered=db,
                      bytes_per_s=acc.dram_bytes_per_s, latency_s=acc.dram_latency_ns * 1e-9)


def _candidates(units: int, cores: int, fold: int = 0) -> list[int]:
    """Per-core unit counts ``q = ceil(units/p)`` worth trying for core counts p <= ``cores``.

    ``fold`` > 0 when the split dimension lies on the array (one fold holds ``fold`` units): all
    q with the same fold count ``ceil(q/fold)`` give the same cycles, and the largest of them uses
    the fewest cores, so only it is kept. The set only grows with ``cores`` (more cores never
    remove an option), which keeps "more cores is never slower" true of the search.
    """
    best: dict[float, int] = {}
    for p in range(1, min(cores, units) + 1):
        q = _ceil_div(units, p)
        key = _ceil_div(q, fold) if fold > 0 else q
        if q > best.get(key, 0):
            best[key] = q
    return sorted(best.values())


def plan_compute(layer: Layer, acc: Accelerator, *, free_bytes: int | tuple[int, int, int],
                 cores: int,
                 a_dram_bytes: int, c_to_dram: bool, high_precision: str,
                 multicast: bool = True, b_in_dram: bool = True) -> LayerPlan:
    """Map one compute layer: try every split and core count, tile each core, keep the fastest.

    ``free_bytes``: SRAM per core left after resident tensors; ``a_dram_bytes``: input bytes that
    must come from DRAM (0 if the input is resident); ``c_to_dram``: whether the output is stored;
    ``b_in_dram=False``: the weights are pinned in SRAM. Memoised on the layer's shape (not its
    name): repeated blocks and search loops plan once. A recurrent layer (``meta["steps"]`` = T)
    is one step's plan played T times (`dse.sim.recurrent`).
    """
    steps = layer_steps(layer)
    if steps > 1:
        one = plan_compute(step_layer(layer, steps), acc, free_bytes=free_bytes, cores=cores,
                           a_dram_bytes=_ceil_div(a_dram_bytes, steps), c_to_dram=c_to_dram,
                           high_precision=high_precision, multicast=multicast,
                           b_in_dram=b_in_dram)
        return repeat_steps(one, layer, steps, free_bytes)
    anon = dataclasses.replace(layer, name="", module="", role="", meta={})
    plan = _plan_compute(anon, acc, free_bytes, cores, a_dram_bytes, c_to_dram, high_precision,
                         multicast, b_in_dram)
    return dataclasses.replace(plan, name=layer.name)


@functools.lru_cache(maxsize=1 << 14)
def _plan_compute(layer: Layer, acc: Accelerator, free_bytes: int | tuple[int, int, int],
                  cores: int,
                  a_dram_bytes: int, c_to_dram: bool, high_precision: str,
                  multicast: bool, b_in_dram: bool) -> LayerPlan:
    g = max(1, layer.groups)
    m, n, k = layer.gemm_m, layer.gemm_n, layer.gemm_k
    if min(m, n, k) < 1:
        raise ValueError(f"layer {layer.name!r}: GEMM dims M={m}, N={n}, K={k} must all be >= 1 "
                         "for a compute op")
    for f in ("w_bits", "a_bits", "o_bits"):
        b = getattr(layer, f)
        if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= 32:
            raise ValueError(f"layer {layer.name!r}: {f}={b!r} is not allowed; expected an "
                             "integer in 1..32")
    pf = acc.precision_slowdown(layer.w_bits, layer.a_bits, high_precision)
    a_in_dram = a_dram_bytes > 0
    a_total = a_dram_bytes if a_in_dram else layer.input_bytes
    images = max(1, layer.n)
    rows_total = images * max(1, layer.ho)
    halo_rows = max(0, layer.r - layer.stride[0])
    halo = math.ceil(halo_rows * layer.w * (layer.c // g) * layer.a_bits / 8) if layer.ho > 1 else 0
    best: tuple[float, int, int] | None = None
    best_plan: LayerPlan | None = None
    bw = acc.dram_bytes_per_s
    um, un = _units(acc.dataflow, acc.rows, acc.cols)
    n_spatial = acc.dataflow in ("os", "ws")  # N on the columns (IS streams N)
    m_spatial = acc.dataflow in ("os", "is")  # M on rows (OS) / columns (IS); WS streams M
    n_units = g if g > 1 else n  # grouped convs split whole groups
    n_fold = un if (g == 1 and n_spatial) else 0
    # M splits in chunks of whole fold units (um output pixels): every chunk count is a distinct
    # fold count, so no collapsing is needed
    m_units = _ceil_div(m, um)
    hw = layer.ho * layer.wo
    b_fold = um // hw if (m_spatial and hw <= um and um % hw == 0) else 0

    def classes(units: int, q: int) -> list[tuple[int, int]]:
        out = [(units // q, q)]
        return [*out, (1, units % q)] if units % q else out

    def in_bytes(px: int) -> int:
        """Input bytes a block of ``px`` consecutive output pixels reads: the input rows under
        the output rows it touches ((rows - 1) * stride + R_f), as a share of all input rows, and
        never less than its pixel share (the blocks together read the whole input once)."""
        rows_out = min(rows_total, _ceil_div(px, layer.wo) + (1 if px % layer.wo else 0))
        in_rows = (rows_out - 1) * layer.stride[0] + layer.r
        band = math.ceil(a_total * in_rows / (max(1, layer.h) * images))
        return min(a_total, max(band, math.ceil(a_total * px / m)))

    # (split, [(count, pixels or images)], [(count, n_units)], pm, pn): M x N grid of blocks
    cands: list[tuple[str, list[tuple[int, int]], list[tuple[int, int]], int, int]] = []
    for qn in _candidates(n_units, cores, n_fold):
        pn = _ceil_div(n_units, qn)
        for qm in _candidates(m_units, cores // pn, 0):
            px = min(m, qm * um)  # output pixels per core
            pm = _ceil_div(m, px)
            split = "mn" if pm > 1 and pn > 1 else ("n" if pn > 1 else "m")
            cands.append((split, classes(m, px), classes(n_units, qn), pm, pn))
    if images >= 2:
        for qb in _candidates(images, cores, b_fold):
            pb = _ceil_div(images, qb)
            if pb > 1:
                cands.append(("batch", classes(images, qb), [(1, n_units)], pb, 1))
    # Branch and bound: a candidate's time is at least its slowest core's stall-free compute and
    # at least the compulsory bytes at full bandwidth plus one latency (`pipeline_s` >= both), so
    # candidates are tried in order of that bound and the search stops once it exceeds the best.
    lat = acc.dram_latency_ns * 1e-9
    w_once = math.ceil(g * k * n * layer.w_bits / 8) if b_in_dram else 0
    c_once = math.ceil(g * m * n * layer.o_bits / 8) if c_to_dram else 0
    floor_bytes = (a_dram_bytes if a_in_dram else 0) + w_once + c_once
    mem_lb = floor_bytes / bw + lat if floor_bytes > 0 else 0.0

    def bound(c: tuple[str, list[tuple[int, int]], list[tuple[int, int]], int, int]) -> float:
        split, mcl, ncl, _, _ = c
        qm, qn = mcl[0][1], ncl[0][1]
        cm = qm * hw if split == "batch" else qm
        cg, cn = (qn, n) if g > 1 else (1, qn)
        fs = fold_shape(cm, cn, k, acc.rows, acc.cols, acc.dataflow)
        return max((cg * fs.folds * fs.cycles_per_fold * pf - 1) / acc.freq_hz, mem_lb)

    bounds = [bound(c) for c in cands]
    order = sorted(range(len(cands)), key=lambda i: (bounds[i], cands[i][3] * cands[i][4]))
    for idx in order:
        if best is not None and bounds[idx] > best[0]:
            break
        split, m_classes, n_classes, pm, pn = cands[idx]
        p = pm * pn
        tasks = []
        tilings = []
        for cnt_m, qm in m_classes:
            for cnt_n, qn in n_classes:
                if split == "batch":
                    cm = qm * hw
                    ca = math.ceil(a_total * qm / images)
                else:
                    cm = qm
                    ca = a_total if pm == 1 else in_bytes(qm)
                if g > 1:  # qn whole groups: their own input channels, nothing shared
                    cg, cn = qn, n
                    ca = math.ceil(ca * qn / g)
                    in_share = 1
                else:
                    cg, cn = 1, qn
                    in_share = pn  # the cores of one M block all read its inputs
                w_share = pm  # the cores of one N block all read its weights
                if not multicast:
                    in_share = w_share = 1
                task, til = _core_task(layer, acc, cnt_m * cnt_n, cg, cm, cn, k, ca, a_in_dram,
                                       c_to_dram, halo if pm > 1 or split == "batch" else 0,
                                       free_bytes, bw / p, pf, in_share, w_share, b_in_dram)
                tasks.append(task)
                tilings.append(til)
        plan = LayerPlan(
            name=layer.name, op=layer.op, split=split, cores_used=p, tasks=tuple(tasks),
            macs=layer.macs, ideal_cycles=layer.macs / acc.mac_count,
            w_bits=layer.w_bits, a_bits=layer.a_bits, o_bits=layer.o_bits,
            stationary=tilings[0].stationary,
            double_buffered=all(t.double_buffered for t in tilings),
            buffer_bytes=max(t.buffer_bytes for t in tilings), precision_factor=pf)
        key = (estimate_s(plan, acc), p, plan.dram_bytes)
        if best is None or key < best:
            best, best_plan = key, plan
    assert best_plan is not None
    return best_plan


def _core_task(layer: Layer, acc: Accelerator, count: int, g: int, m: int, n: int, k: int,
               a_bytes: int, a_in_dram: bool, c_to_dram: bool, halo: int,
               free_bytes: int | tuple[int, int, int],
               bw_share: float, pf: float, input_sharers: int = 1, weight_sharers: int = 1,
               b_in_dram: bool = True) -> tuple[CoreTask, Tiling]:
    """Tile ``g`` independent (m, n, k) GEMMs on one core; groups run one after another."""
    til = tile_gemm(m=m, n=n, k=k, a_bytes=math.ceil(a_bytes / g), a_in_dram=a_in_dram,
                    c_to_dram=c_to_dram, w_bits=layer.w_bits, a_bits=layer.a_bits,
                    o_bits=layer.o_bits, acc_bits=acc.acc_bits, rows=acc.rows, cols=acc.cols,
                    dataflow=acc.dataflow, free_bytes=free_bytes, halo_bytes=math.ceil(halo / g),
                    groups=g, bw_share_bytes_per_s=bw_share, s_per_cycle=pf / acc.freq_hz,
                    latency_s=acc.dram_latency_ns * 1e-9, b_in_dram=b_in_dram,
                    input_sharers=input_sharers, weight_sharers=weight_sharers,
                    double_buffering=acc.double_buffered)
    cycles = max(0, math.ceil(til.compute_cycles * pf) - 1)  # SCALE-Sim: folds*cpf - 1
    ra, rb, wc = sram_reads(m, n, k, acc.rows, acc.cols, acc.dataflow)
    dram = til.dram_bytes
    sram_bits = g * (ra * layer.a_bits + rb * layer.w_bits + wc * layer.o_bits) + 8 * dram
    task = CoreTask(
        count=count, tiles=til.steps, macs=g * m * n * k, compute_cycles=cycles,
        vector_cycles=0, onload_bytes=til.onload_bytes,
        stream_bytes=dram - til.onload_bytes - til.offload_bytes,
        offload_bytes=til.offload_bytes, double_buffered=til.double_buffered,
        sram_accesses=g * (ra + rb + wc), sram_bits=sram_bits, dram_weights=til.b_dram_bytes,
        dram_inputs=til.a_dram_bytes, dram_outputs=til.c_dram_bytes,
        input_sharers=input_sharers, weight_sharers=weight_sharers,
        onload_input_bytes=til.onload_input_bytes)
    return task, til


def plan_memory_op(layer: Layer, acc: Accelerator, *, cores: int, read_dram_bytes: int,
                   read_sram_bytes: int, write_dram_bytes: int) -> LayerPlan:
    """Map a memory-only op (pool, add, concat, ...): its element-wise work runs on each core's
    ``cols``-lane vector unit, split evenly over all cores; its DRAM reads/writes stream in
    double-buffered chunks (one ``cols``-element chunk per lane step is always small enough).
    An op with weights gathers from a table (an embedding lookup): it reads the rows it gathers
    (``meta["gathered_elems"]`` at the table's ``w_bits``; without it, as many elements as it
    writes) from the table in DRAM, at most the whole table."""
    work = layer.vector_ops if layer.vector_ops > 0 else layer.output_elems
    p = max(1, min(cores, _ceil_div(max(work, 1), acc.cols)))
    vec = _ceil_div(max(work, 0), p * acc.cols)
    gathered = int(layer.meta.get("gathered_elems", layer.output_elems))
    rows = _ceil_div(min(layer.weight_bytes, _ceil_div(gathered * layer.w_bits, 8)), p)
    rd = _ceil_div(read_dram_bytes, p) + rows
    wr = _ceil_div(write_dram_bytes, p)
    chunk = acc.cols * 4
    on = min(rd, chunk)
    off = min(wr, chunk)
    sram_bits = 8 * (read_dram_bytes + read_sram_bytes + layer.output_bytes) // p
    task = CoreTask(count=p, tiles=max(1, _ceil_div(rd + wr, chunk)), macs=0, compute_cycles=0,
                    vector_cycles=vec, onload_bytes=on, stream_bytes=rd + wr - on - off,
                    offload_bytes=off, double_buffered=True,
                    sram_accesses=layer.input_elems // p + layer.output_elems // p,
                    sram_bits=sram_bits, dram_weights=rows, dram_inputs=rd - rows,
                    dram_outputs=wr, onload_input_bytes=min(on, rd - rows))
    return LayerPlan(name=layer.name, op=layer.op, split="m", cores_used=p, tasks=(task,),
                     macs=0, ideal_cycles=0.0, w_bits=layer.w_bits, a_bits=layer.a_bits,
                     o_bits=layer.o_bits)


def plan_scalesim(layer: Layer, acc: Accelerator) -> tuple[LayerPlan, tuple[Tile, ...]]:
    """Map one compute layer as SCALE-Sim v3 runs it (``tile_policy="scalesim"``): one array,
    its fold order and split buffers' sliding windows (`dse.sim.scalesim_tiles`). Returns the plan
    (byte counts are SCALE-Sim's DRAM reads and writes: im2col inputs, re-fetches and partial
    sums included) and the tile loop the tile fidelity plays. SCALE-Sim counts words; the buffers
    hold ``bytes * 8 / bits`` words of each operand, and each word moves ``bits / 8`` bytes."""
    from dse.sim.scalesim_tiles import ConvWindows, scalesim_tiles

    m, n, k = layer.gemm_m, layer.gemm_n, layer.gemm_k
    g = max(1, layer.groups)
    if g > 1:  # SCALE-Sim has no groups: the groups run one after another as separate GEMMs
        n //= g
    if min(m, n, k) < 1:
        raise ValueError(f"layer {layer.name!r}: GEMM dims M={m}, N={n}, K={k} must all be >= 1 "
                         "for a compute op")
    buf = acc.buffer_bytes()
    port = acc.dram_bytes_per_s / acc.dram_channels / acc.freq_hz  # bytes per cycle per port

    def words(nbytes: int, bits: int) -> int:
        return max(2, nbytes * 8 // bits)

    # SCALE-Sim's im2col of the padded input: where windows run off it (an output size rounded
    # up, as SCALE-Sim's own ceil((H - R + S) / S)), their ifmap entries are padding, not data;
    # where they overlap, input addresses repeat. SCALE-Sim has no dilation: a dilated layer
    # runs as a GEMM with unique addresses
    dims = (layer.h + 2 * layer.padding[0], layer.w + 2 * layer.padding[1], layer.r, layer.s,
            *layer.stride, layer.ho, layer.wo)
    conv = None
    if (min(dims) >= 1 and k % (layer.r * layer.s) == 0 and m % (layer.ho * layer.wo) == 0
            and tuple(layer.meta.get("dilation", (1, 1))) == (1, 1)):
        conv = ConvWindows(*dims, channels=k // (layer.r * layer.s))

    tiles = scalesim_tiles(m, n, k, rows=acc.rows, cols=acc.cols, dataflow=acc.dataflow,
                           ifmap_bytes=words(buf["ifmap"], layer.a_bits),
                           filter_bytes=words(buf["filter"], layer.w_bits),
                           ofmap_bytes=words(buf["ofmap"], layer.o_bits),
                           dram_words_per_cycle=(max(1, round(port * 8 / layer.a_bits))
                                                 if math.isfinite(port) else 1 << 20),
                           overlapping_windows=layer.r > layer.stride[0], conv=conv)
    if g > 1:
        tiles = tiles * g
    bits = {"ifmap": layer.a_bits, "filter": layer.w_bits, "ofmap": layer.o_bits}
    scaled = tuple(dataclasses.replace(
        t, ifmap_bytes=math.ceil(t.ifmap_bytes * bits["ifmap"] / 8),
        filter_bytes=math.ceil(t.filter_bytes * bits["filter"] / 8),
        ofmap_bytes=math.ceil(t.ofmap_bytes * bits["ofmap"] / 8)) for t in tiles)
    tot = {op: sum(getattr(t, f"{op}_bytes") * t.repeat for t in scaled)
           for op in ("ifmap", "filter", "ofmap")}
    first, last = scaled[0], scaled[-1]
    on, off = first.ifmap_bytes + first.filter_bytes, last.ofmap_bytes
    pf = acc.precision_slowdown(layer.w_bits, layer.a_bits)
    cycles = math.ceil(sum(t.compute_cycles * t.repeat for t in scaled) * pf)
    ra, rb, wc = sram_reads(m, n, k, acc.rows, acc.cols, acc.dataflow)
    task = CoreTask(
        count=1, tiles=sum(t.repeat for t in scaled), macs=layer.macs, compute_cycles=cycles,
        vector_cycles=0, onload_bytes=on, stream_bytes=sum(tot.values()) - on - off,
        offload_bytes=off, double_buffered=acc.double_buffered,
        sram_accesses=g * (ra + rb + wc),
        sram_bits=g * (ra * layer.a_bits + rb * layer.w_bits + wc * layer.o_bits)
        + 8 * sum(tot.values()),
        dram_weights=tot["filter"], dram_inputs=tot["ifmap"], dram_outputs=tot["ofmap"],
        onload_input_bytes=first.ifmap_bytes)
    plan = LayerPlan(name=layer.name, op=layer.op, split="m", cores_used=1, tasks=(task,),
                     macs=layer.macs, ideal_cycles=layer.macs / acc.mac_count,
                     w_bits=layer.w_bits, a_bits=layer.a_bits, o_bits=layer.o_bits,
                     stationary={"os": "outputs", "ws": "weights", "is": "inputs"}[acc.dataflow],
                     double_buffered=acc.double_buffered, buffer_bytes=acc.sram_bytes_per_core,
                     precision_factor=pf)
    return plan, scaled

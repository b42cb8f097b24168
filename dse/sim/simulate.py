"""`simulate`: play a workload graph on a multi-core systolic-array accelerator with SimPy.

The pipeline, one line per step (ZigZag's habit of writing the whole flow in one place):

1. ``_prepare``      rebatch the graph, fuse alias/element-wise ops into their producer.
2. ``_reserves``     plan every compute layer with the whole SRAM and all operands in DRAM: the
                     per-core buffer it needs for its best tiling (its *reserve*).
3. ``_residency``    SRAM capacity ledger over the topological order: a tensor stays on chip (spread
                     over all cores' SRAM) iff, at every step of its live range, the tensors already
                     resident + it + that step's reserve fit in every core. Network input and output
                     always go through DRAM; split buffers keep nothing between layers.
3b. ``_pin_weights`` (``persistent_weights``) weights kept on chip across inferences.
3c. ``_stage_weights`` (``prefetch``) the same ledger for weights loaded ahead of their layer:
                     each layer -> the earliest layer whose start begins its prefetch.
4. ``_plan``         map each layer (`dse.sim.mapping`, or `mapping.plan_scalesim` for SCALE-Sim's
                     tile policy) in the SRAM the ledgers leave, reading resident inputs from SRAM
                     and not storing resident outputs; 4b. ``_units``: the tile loops (tile
                     fidelity).
5. ``_run``          SimPy: each node is one process (`dse.sim.layer.run_layer`) that prefetches
                     (`_prefetch_rule`), waits for its graph predecessors, takes cores from the
                     `CorePool` and plays the layer - one lock-step pipeline for all its cores
                     (layer fidelity) or each core class's loaders, array and drainer (tile
                     fidelity) - against the `MemorySystem` (fair-share DRAM channels, weighted by
                     the core count); then it hands the cores back.
6. ``_collect``      per-layer table, network latency breakdown (`_latency_split`: ideal compute,
                     precision, spatial under-use, vector, stall, on-/off-load, overlap, idle),
                     energy, `SimResult`.

The model's assumptions and limits are listed in docs/simulator.md.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import networkx as nx
import pandas as pd
import simpy

from arch.spec import HIGH_PRECISION_MODELS, Accelerator
from dse.sim.cores import CorePool
from dse.sim.dram import CountingEnvironment, MemorySystem
from dse.sim.layer import FIDELITIES, PrefetchRule, Record, Unit, run_layer, units_of_task
from dse.sim.mapping import LayerPlan, plan_compute, plan_memory_op, plan_scalesim
from dse.sim.results import LATENCY_PARTS, LAYER_COLUMNS, Interval, SimResult

if TYPE_CHECKING:  # importing `workloads` pulls in torch; a Workload is used by duck typing
    from workloads.graph import Layer, Workload

__all__ = ["ALIAS_OPS", "BOUNDARY_OPS", "FUSED_OPS", "SCHEDULES", "schedulable_layers",
           "simulate"]

log = logging.getLogger(__name__)

SCHEDULES = ("layer_by_layer", "pipeline", "data_parallel")
"""How images and layers share the cores (`dse.sim.schedule`): ``layer_by_layer`` - each layer
takes the cores it maps to, the batch as one tensor (on core groups: each layer on its group, one
image at a time); ``pipeline`` - contiguous stages of layers on disjoint core groups, a stream of
images through them; ``data_parallel`` - each core group runs whole images."""

BOUNDARY_OPS = frozenset({"input", "output"})
ALIAS_OPS = frozenset({"view", "flatten", "reshape", "identity", "dropout", "contiguous",
                       "squeeze", "unsqueeze", "permute", "transpose"})
"""Ops that only re-label a tensor: free, and the tensor keeps its location."""
FUSED_OPS = frozenset({"act", "relu", "bn", "quant", "clamp", "hardtanh", "sigmoid", "tanh",
                       "gelu", "silu", "relu6"})
"""Single-input element-wise ops applied in the producer's output stage when the producer has no
other consumer (the usual accelerator post-processing unit): free, and the stored tensor is the
fused op's output (its ``o_bits``)."""


@dataclass(slots=True)
class _Node:
    """One schedulable node after fusion: its layer and the tensor it produces."""

    layer: Layer
    preds: list[str]
    succs: list[str]
    out_bytes: int
    to_dram: bool = False  # network output: must be stored
    from_dram: bool = False  # network input: lives in DRAM
    resident: bool = False
    fused: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------------
def simulate(workload: Workload, accelerator: Accelerator, batch: int | None = None, *,
             high_precision: str | None = None, energy_model: Any = None,
             onchip_reuse: bool = True, multicast: bool = True,
             persistent_weights: bool = False, segments: int = 1, fidelity: str = "layer",
             prefetch: bool = True, schedule: str = "layer_by_layer",
             stages: dict[str, int] | None = None, groups: int | tuple[int, ...] | None = None,
             buffer_images: int = 2, micro_batch: int = 1) -> SimResult:
    """Simulate inference of ``batch`` images of ``workload`` on ``accelerator``.

    ``batch`` defaults to the batch the workload was extracted with (``workload.batch``); another
    value re-scales every layer's per-image quantities to that many images.

    Options: ``high_precision`` ("bit_serial" | "configurable", default the accelerator's) - how a
    layer above the MAC precision runs (`dse.sim.mapping.precision_factor`); ``energy_model``
    (an `arch.energy.EnergyModel`, default `arch.energy.default_energy_model` at the accelerator's
    node); ``onchip_reuse`` (False: every tensor goes through DRAM - the ablation of the SRAM
    ledger); ``segments`` (>= 1: how many pieces each layer's overlapped phase is played in; more
    pieces follow bandwidth changes from concurrent layers more closely, at more events);
    ``multicast`` (True: an operand every core of a layer reads in full - the weights of an M split,
    the input of an N split - crosses the DRAM interface once and is broadcast on chip; False: each
    core fetches its own copy); ``persistent_weights`` (True: steady-state serving - after the
    activations are placed, the weights of as many layers as still fit (largest first) stay pinned
    in SRAM across inferences and cost no DRAM traffic; False: every inference loads all weights);
    ``fidelity`` ("layer" | "tile", `dse.sim.layer`): one lock-step pipeline per layer, or each
    core class's tile loop as events with its buffers; ``prefetch`` (True: a layer loads its first
    weights, and inputs already in DRAM, into the buffer space its predecessor's last tile leaves
    free, as soon as the predecessor has issued its last load; False: nothing moves before a
    layer has its cores - SCALE-Sim's behaviour).

    Multi-core schedules (`dse.sim.schedule`): ``schedule`` (`SCHEDULES`) - ``layer_by_layer``
    (default: today's model above, or on core groups each layer on its group, one image at a
    time), ``pipeline`` (``batch`` images stream through contiguous stages of layers on disjoint
    core groups) or ``data_parallel`` (each group runs whole images); ``groups`` - how a
    homogeneous accelerator's cores split into groups (a count of equal groups or a tuple of core
    counts; an accelerator with ``core_groups`` brings its own); ``stages`` - ``{layer name:
    group index}`` (default: balanced by estimated stage time); ``buffer_images`` - micro-batches
    a group's input buffer holds (back-pressure); ``micro_batch`` - images that move through the
    groups together as one tensor (divides ``batch``). There ``latency_s`` is the first
    micro-batch's latency, ``images_per_s`` the steady-state rate, ``makespan_s`` the whole
    stream and ``stages`` the per-group table.
    """
    problems: list[str] = []
    if not isinstance(getattr(workload, "graph", None), nx.DiGraph):
        problems.append(f"workload={type(workload).__name__} is not allowed; expected a "
                        "workloads.Workload (with a networkx DiGraph in .graph)")
    if not isinstance(accelerator, Accelerator):
        problems.append(f"accelerator={type(accelerator).__name__} is not allowed; expected an "
                        "arch.Accelerator")
    if batch is None:
        batch = int(getattr(workload, "batch", 1) or 1)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        problems.append(f"batch={batch!r} is not allowed; expected an integer >= 1")
    hp = high_precision
    if hp is None and isinstance(accelerator, Accelerator):
        hp = accelerator.high_precision
    if hp not in HIGH_PRECISION_MODELS:
        problems.append(f"high_precision={hp!r} is not allowed; expected one of "
                        f"{', '.join(HIGH_PRECISION_MODELS)}")
    if isinstance(segments, bool) or not isinstance(segments, int) or segments < 1:
        problems.append(f"segments={segments!r} is not allowed; expected an integer >= 1")
    if fidelity not in FIDELITIES:
        problems.append(f"fidelity={fidelity!r} is not allowed; expected one of "
                        f"{', '.join(FIDELITIES)}")
    if schedule not in SCHEDULES:
        problems.append(f"schedule={schedule!r} is not allowed; expected one of "
                        f"{', '.join(SCHEDULES)}")
    if isinstance(buffer_images, bool) or not isinstance(buffer_images, int) \
            or buffer_images < 1:
        problems.append(f"buffer_images={buffer_images!r} is not allowed; expected an integer "
                        ">= 1")
    if problems:
        raise ValueError("invalid simulate() arguments: " + "; ".join(problems))
    acc = accelerator
    em = energy_model if energy_model is not None else _default_energy(acc)

    options = {"high_precision": hp, "onchip_reuse": onchip_reuse, "multicast": multicast,
               "persistent_weights": persistent_weights, "segments": segments,
               "fidelity": fidelity, "prefetch": prefetch}
    if schedule != "layer_by_layer" or acc.core_groups or groups is not None \
            or stages is not None or micro_batch != 1:
        from dse.sim.schedule import run_schedule

        return run_schedule(workload, acc, batch, em, options, schedule=schedule, stages=stages,
                            groups=groups, buffer_images=buffer_images,
                            micro_batch=micro_batch)
    nodes, order = _prepare(workload, batch)  # 1. rebatch + fuse
    pl = plan_graph(nodes, order, acc, options)  # 2-4b
    env = CountingEnvironment()
    mem = memory_system(env, acc)
    records = {name: Record() for name in pl.plans}
    spawn(env, nodes, order, pl, acc, CorePool(env, acc.cores), mem, records,  # 5. SimPy
          options)
    env.run()
    return _collect(workload, acc, batch, nodes, order, pl.plans, records, mem, env, em,
                    options, pl.pinned, pl.staged)


@dataclass(frozen=True, slots=True)
class Planned:
    """Steps 2-4b for one graph on one (group of) core(s)."""

    reserves: dict[str, int]
    resident_at: list[int]
    pinned: frozenset[str]
    staged: dict[str, str]
    plans: dict[str, LayerPlan]
    units: dict[str, list[list[Unit]]]


def plan_graph(nodes: dict[str, _Node], order: list[str], acc: Accelerator,
               options: dict[str, Any], held_bytes: int = 0) -> Planned:
    """Steps 2-4b of the pipeline (module docstring) for ``nodes`` on ``acc``. ``held_bytes``
    (all cores): SRAM taken at every step by something outside the graph - a core group's
    input buffer for tensors from other groups (`dse.sim.schedule`)."""
    hp, multicast = options["high_precision"], options["multicast"]
    held: dict[str, int] = {}
    reserves = _reserves(nodes, order, acc, hp, multicast, held)  # 2. per-layer SRAM needs
    resident_at = _residency(nodes, order, acc, reserves, options["onchip_reuse"],
                             held_bytes)  # 3. ledger
    pinned = _pin_weights(nodes, order, acc, reserves, resident_at, held) \
        if options["persistent_weights"] else frozenset()  # 3b. weights kept across inferences
    staged = _stage_weights(nodes, order, acc, reserves, resident_at, pinned, held) \
        if options["prefetch"] else {}  # 3c. layers whose weights all load ahead of them
    plans = _plan(nodes, order, acc, hp, resident_at, multicast, pinned, staged)  # 4. tile
    units = _units(plans, acc, nodes) if options["fidelity"] == "tile" else {}  # 4b. tile loops
    return Planned(reserves, resident_at, pinned, staged, plans, units)


# -- 1. graph preparation --------------------------------------------------------------------------
def _rebatch(layer: Layer, batch: int) -> Layer:
    if layer.n == batch or (layer.op in BOUNDARY_OPS and layer.n == 0):
        return layer
    n0 = max(1, layer.n)
    if any(v % n0 for v in (layer.macs, layer.vector_ops, layer.input_elems,
                            layer.output_elems)):
        raise ValueError(f"layer {layer.name!r}: cannot rebatch from n={layer.n} to {batch}: "
                         "its element counts are not multiples of n")

    def f(v: int) -> int:
        return v // n0 * batch

    meta = layer.meta
    if meta.get("steps_axis") == "n" and meta.get("steps") == n0:  # time-major: n counts steps
        meta = {**meta, "steps": batch}
    return dataclasses.replace(layer, n=batch, macs=f(layer.macs), vector_ops=f(layer.vector_ops),
                               input_elems=f(layer.input_elems),
                               output_elems=f(layer.output_elems), meta=meta)


def schedulable_layers(workload: Workload) -> list[tuple[Layer, tuple[str, ...]]]:
    """The layers the simulator schedules, in its topological order, each with its producers
    among them: boundary nodes dropped, aliases and single-consumer element-wise ops fused into
    their producer (step 1). A search that maps layers to core groups keys its maps by these."""
    nodes, order = _prepare(workload, 1)
    return [(nodes[n].layer, tuple(p for p in nodes[n].preds
                                   if nodes[p].layer.op not in BOUNDARY_OPS))
            for n in order if nodes[n].layer.op not in BOUNDARY_OPS]


def _prepare(workload: Workload, batch: int) -> tuple[dict[str, _Node], list[str]]:
    g = workload.graph
    order = list(nx.lexicographical_topological_sort(g))
    nodes: dict[str, _Node] = {}
    alias_of: dict[str, str] = {}  # fused/alias node -> node holding its tensor
    for name in order:
        layer = _rebatch(g.nodes[name]["layer"], batch)
        raw_preds = sorted(g.predecessors(name))
        preds = sorted({alias_of.get(p, p) for p in raw_preds})
        host = nodes.get(preds[0]) if len(preds) == 1 else None
        fuse = host is not None and (
            layer.op in ALIAS_OPS
            or (layer.op in FUSED_OPS and host.layer.op != "input"
                and g.out_degree(raw_preds[0]) == 1))
        if fuse and host is not None:
            alias_of[name] = preds[0]
            host.fused = (*host.fused, name)
            if layer.op in FUSED_OPS:
                host.out_bytes = layer.output_bytes
            continue
        out_bytes = layer.output_bytes if layer.op != "output" else 0
        if layer.op == "input":
            out_bytes = layer.output_bytes or layer.input_bytes
        nodes[name] = _Node(layer=layer, preds=preds, succs=[], out_bytes=out_bytes,
                            from_dram=layer.op == "input")
        for p in preds:
            nodes[p].succs.append(name)
    kept = [n for n in order if n in nodes]
    for name in kept:
        nd = nodes[name]
        if nd.layer.op == "output":
            for p in nd.preds:
                nodes[p].to_dram = True
        elif not nd.succs and nd.layer.op != "input":
            nd.to_dram = True  # a sink without an explicit output node is a network output
    return nodes, kept


# -- 2-4. planning ---------------------------------------------------------------------------------
def _input_dram_bytes(nd: _Node, nodes: dict[str, _Node]) -> tuple[int, int]:
    """(bytes of this node's inputs that are in DRAM, bytes that are resident) - producer view."""
    dram = sum(nodes[p].out_bytes for p in nd.preds if not nodes[p].resident)
    res = sum(nodes[p].out_bytes for p in nd.preds if nodes[p].resident)
    return dram, res


def _free(acc: Accelerator, held_per_core: int) -> int | tuple[int, int, int]:
    """Buffer space a layer may tile into: the unified pool less what is held on chip, or the
    split ifmap / filter / ofmap buffers (which hold nothing across layers)."""
    if acc.buffers == "split":
        b = acc.buffer_bytes()
        return (b["ifmap"], b["filter"], b["ofmap"])
    return acc.sram_bytes_per_core - held_per_core


def _plan_one(nd: _Node, nodes: dict[str, _Node], acc: Accelerator, hp: str,
              free_bytes: int | tuple[int, int, int], multicast: bool,
              pinned: bool = False) -> LayerPlan | None:
    layer = nd.layer
    if layer.op in BOUNDARY_OPS:
        return None
    in_dram, in_res = _input_dram_bytes(nd, nodes)
    if layer.is_compute and acc.tile_policy == "scalesim":
        return plan_scalesim(layer, acc)[0]
    if layer.is_compute:
        total_in = in_dram + in_res
        frac = in_dram / total_in if total_in else 1.0
        a_dram = math.ceil(layer.input_bytes * frac)
        return plan_compute(layer, acc, free_bytes=free_bytes, cores=acc.cores,
                            a_dram_bytes=a_dram, c_to_dram=not nd.resident, high_precision=hp,
                            multicast=multicast, b_in_dram=not pinned)
    return plan_memory_op(layer, acc, cores=acc.cores, read_dram_bytes=in_dram,
                          read_sram_bytes=in_res,
                          write_dram_bytes=0 if nd.resident else nd.out_bytes)


def _reserves(nodes: dict[str, _Node], order: list[str], acc: Accelerator,
              hp: str, multicast: bool, held: dict[str, int] | None = None) -> dict[str, int]:
    """SRAM per core each compute layer's preferred tiling uses when nothing else is on chip,
    with what it holds for the whole layer (`LayerPlan.reserve_bytes`: a recurrent layer's
    weights kept between its steps; that part per layer goes into ``held`` when given)."""
    out: dict[str, int] = {}
    for name in order:
        nd = nodes[name]
        if nd.layer.is_compute:
            try:
                plan = _plan_one(nd, nodes, acc, hp, _free(acc, 0), multicast)
            except ValueError as exc:
                if str(exc).startswith("sram_kib"):
                    raise ValueError(f"sram_kib={acc.sram_kib!r} is too small for layer "
                                     f"{name!r}: {exc}") from None
                raise
            out[name] = plan.reserve_bytes if plan is not None else 0
            if held is not None and plan is not None and plan.held_bytes:
                held[name] = plan.held_bytes
    return out


def _residency(nodes: dict[str, _Node], order: list[str], acc: Accelerator,
               reserves: dict[str, int], enabled: bool, held_bytes: int = 0) -> list[int]:
    """Greedy SRAM ledger in topological order; returns resident bytes (all cores) at each step.

    A tensor occupies ``out_bytes / cores`` of every core from its producer's step to its last
    consumer's step. It is kept iff ``(resident + out_bytes) / cores + reserve(step) <= sram`` at
    every step of that range; else it is stored to DRAM and consumers read it from there.
    Split ifmap/filter/ofmap buffers hold a layer's tiles only (SCALE-Sim's organisation): every
    tensor then goes through DRAM. ``held_bytes``: on chip at every step before any tensor
    (`plan_graph`), so every later ledger and plan sees it.
    """
    pos = {n: i for i, n in enumerate(order)}
    resident = [held_bytes] * len(order)
    if not enabled or acc.buffers == "split":
        return resident
    cap = acc.sram_bytes_per_core
    for name in order:
        nd = nodes[name]
        if nd.from_dram or nd.to_dram or nd.out_bytes <= 0 or not nd.succs \
                or nd.layer.op in BOUNDARY_OPS:
            continue
        lo, hi = pos[name], max(pos[s] for s in nd.succs)
        ok = all((resident[j] + nd.out_bytes) / acc.cores + reserves.get(order[j], 0) <= cap
                 for j in range(lo, hi + 1))
        if ok:
            nd.resident = True
            for j in range(lo, hi + 1):
                resident[j] += nd.out_bytes
    return resident


def _pin_weights(nodes: dict[str, _Node], order: list[str], acc: Accelerator,
                 reserves: dict[str, int], resident_at: list[int],
                 kept: dict[str, int] | None = None) -> frozenset[str]:
    """Weights pinned in SRAM for the whole run (``persistent_weights``): the ledger's load at
    every step (resident tensors and that step's reserve) raised by the pinned weights, filled
    greedily with the largest weight sets first while the fullest step fits the SRAM. With split
    buffers (the filter buffer holds a layer's tiles only) nothing is pinned. ``kept``: the part
    of a recurrent layer's reserve that is its own weights kept between steps (`_reserves`) -
    pinned, they are those weights, so its own step counts them once, not on top of its reserve.
    """
    if acc.buffers == "split":
        return frozenset()
    cap = acc.sram_bytes_per_core * acc.cores
    load = [resident_at[t] + reserves.get(name, 0) * acc.cores for t, name in enumerate(order)]
    pos = {name: t for t, name in enumerate(order)}
    kept = kept or {}
    pinned = []
    layers = sorted((nodes[n].layer for n in order if nodes[n].layer.is_compute),
                    key=lambda la: (-la.weight_bytes, la.name))
    for la in layers:
        w, j = la.weight_bytes, pos[la.name]
        own = kept.get(la.name, 0) * acc.cores
        after = [x + w - (own if t == j else 0) for t, x in enumerate(load)]
        if w > 0 and max(after) <= cap:
            pinned.append(la.name)
            load = after
    return frozenset(pinned)


def _stage_weights(nodes: dict[str, _Node], order: list[str], acc: Accelerator,
                   reserves: dict[str, int], resident_at: list[int],
                   pinned: frozenset[str], kept: dict[str, int] | None = None) -> dict[str, str]:
    """Layers whose weights all prefetch (``prefetch``, unified buffers), each mapped to the layer
    whose start begins its prefetch - as many steps ahead as capacity allows.

    A ledger like the activations' (`_residency`): a layer's weights, spread over every core,
    occupy SRAM from the step their prefetch starts to the layer's own step. They are staged from
    the earliest step s < j such that, at every step in [s, j], the resident tensors, the pinned
    and already staged weights, these weights and that step's reserve fit in every core. The layer
    then tiles with its weights on chip and streams none. ``kept``: the part of a recurrent
    layer's reserve that is its own weights kept between steps (`_reserves`) - staged, they are
    those weights, so its own step counts them once.
    """
    if acc.buffers == "split":
        return {}
    cap = acc.sram_bytes_per_core * acc.cores
    held = sum(nodes[n].layer.weight_bytes for n in pinned)
    load = [resident_at[t] + held + reserves.get(order[t], 0) * acc.cores
            for t in range(len(order))]
    kept = kept or {}
    staged: dict[str, str] = {}
    for j, name in enumerate(order):
        nd = nodes[name]
        w = nd.layer.weight_bytes
        own = kept.get(name, 0) * acc.cores
        if not nd.layer.is_compute or name in pinned or w <= 0 or load[j] - own + w > cap \
                or j == 0:
            continue
        s = j
        while s > 0 and load[s - 1] + w <= cap and nodes[order[s - 1]].layer.op != "input":
            s -= 1
        if s == j:
            continue
        staged[name] = order[s]
        load[j] -= own
        for t in range(s, j + 1):
            load[t] += w
    return staged


def _plan(nodes: dict[str, _Node], order: list[str], acc: Accelerator, hp: str,
          resident_at: list[int], multicast: bool, pinned: frozenset[str] = frozenset(),
          staged: dict[str, str] | None = None) -> dict[str, LayerPlan]:
    plans: dict[str, LayerPlan] = {}
    staged = staged or {}
    held = sum(nodes[n].layer.weight_bytes for n in pinned)
    for j, name in enumerate(order):
        own = nodes[name].layer.weight_bytes if name in staged else 0
        free = _free(acc, math.ceil((resident_at[j] + held + own) / acc.cores))
        plan = _plan_one(nodes[name], nodes, acc, hp, free, multicast,
                         name in pinned or name in staged)
        if plan is not None:
            plans[name] = plan
    return plans


# -- 4b/5. SimPy ----------------------------------------------------------------------------------
def _units(plans: dict[str, LayerPlan], acc: Accelerator,
           nodes: dict[str, _Node]) -> dict[str, list[list[Unit]]]:
    """Each layer's tile loop per core class: SCALE-Sim's (`dse.sim.mapping.plan_scalesim`) or
    the plan's own (`dse.sim.layer.units_of_task`)."""
    out: dict[str, list[list[Unit]]] = {}
    f = acc.freq_hz
    for name, plan in plans.items():
        if acc.tile_policy == "scalesim" and plan.macs:
            pf = plan.precision_factor
            tiles = plan_scalesim(nodes[name].layer, acc)[1]
            # SCALE-Sim's write buffer drains half its size at a time while the array runs: a
            # tile with more output than that leaves it in pieces of at most half the buffer
            half = acc.buffer_bytes()["ofmap"] / 2
            units: list[Unit] = []
            for t in tiles:
                pieces = 1 if t.repeat > 1 else min(16, max(1, math.ceil(t.ofmap_bytes / half)))
                c_s, o_b = t.compute_cycles * pf / f / pieces, t.ofmap_bytes / pieces
                units.append(Unit(t.repeat, c_s, t.ifmap_bytes, t.filter_bytes, o_b))
                units += [Unit(1, c_s, 0.0, 0.0, o_b)] * (pieces - 1)
            out[name] = [units]
        else:
            out[name] = [units_of_task(t, f) for t in plan.tasks]
    return out


def _prefetch_rule(name: str, nodes: dict[str, _Node], plans: dict[str, LayerPlan],
                   units: dict[str, list[list[Unit]]], acc: Accelerator,
                   reserves: dict[str, int], loads_done: dict[str, simpy.Event],
                   store_done: dict[str, simpy.Event], started: dict[str, simpy.Event],
                   staged: dict[str, str] | None = None) -> PrefetchRule | None:
    """What layer ``name`` may load before it has its cores (`simulate`'s ``prefetch``).

    Its first tile's weights, and its first inputs if every tensor it reads is already in DRAM
    (the network input, or stored by producers that finish first), start once each predecessor
    has issued its last load - into the buffer space that the predecessor's last tile leaves:
    half of its double-buffered reserve is free, and the first tile must fit beside the other
    half (unified pool), or in the filter/ifmap buffer's free half (split buffers)."""
    plan = plans.get(name)
    nd = nodes[name]
    if plan is None or not plan.macs:
        return None
    staged = staged or {}
    if name in staged:  # all of its weights, broadcast to its cores, loading from the start of
        # the layer the ledger chose (`_stage_weights`)
        after = [started[staged[name]]]
        la = nd.layer
        # its first tile's weights: one fold unit of columns, one array depth of K
        # (`dse.sim.mapping.tile_gemm`'s first step)
        head = math.ceil(min(la.gemm_k, acc.rows) * min(la.gemm_n, acc.cols) * la.w_bits / 8)
        return PrefetchRule(bytes_by_operand={"filter": float(la.weight_bytes)},
                            after=tuple(after), staged=True, head_bytes=float(head))
    after = [loads_done[p] for p in nd.preds if p in loads_done]
    if name in units:
        first = units[name][0][0]
        f_in, f_w = first.ifmap_bytes, first.filter_bytes
    else:
        on, _st, _off, *_ = plan.phases()
        f_in = sum(t.count * t.onload_input_bytes / t.input_sharers for t in plan.tasks)
        f_w = max(0.0, on - f_in)
    per_core = (f_in + f_w) / max(1, plan.cores_used)
    # a predecessor's last tile frees half its tile buffers; what it holds for the whole layer
    # (a recurrent layer's weights, `LayerPlan.held_bytes`) stays until it ends
    pred_busy = max(((reserves.get(p, 0) + (plans[p].held_bytes if p in plans else 0)) / 2
                     for p in nd.preds), default=0.0)
    if acc.buffers == "split":
        room = min(acc.buffer_bytes()["filter"], acc.buffer_bytes()["ifmap"]) / 2
    else:
        room = acc.sram_bytes_per_core - pred_busy
    if per_core > room:
        return None
    inputs_ready = all(nodes[p].from_dram or not nodes[p].resident for p in nd.preds)
    if inputs_ready and f_in > 0:
        # inputs stored by a predecessor are in DRAM once that predecessor has finished
        after += [store_done[p] for p in nd.preds if not nodes[p].from_dram]
    amounts = {"filter": f_w, "ifmap": f_in if inputs_ready else 0.0}
    if not any(amounts.values()):
        return None
    return PrefetchRule(bytes_by_operand=amounts, after=tuple(after))


def memory_system(env: simpy.Environment, acc: Accelerator) -> MemorySystem:
    """The DRAM channels (and global-buffer link) of ``acc``."""
    return MemorySystem(env, bytes_per_s=acc.dram_bytes_per_s,
                        latency_s=acc.dram_latency_ns * 1e-9, channels=acc.dram_channels,
                        channel_map=acc.dram_channel_map, burst_bytes=acc.dram_burst_bytes,
                        gb_bytes_per_s=(acc.global_buffer_bytes_per_cycle * acc.freq_hz
                                        if acc.global_buffer_kib > 0 else math.inf))


def spawn(env: simpy.Environment, nodes: dict[str, _Node], order: list[str], pl: Planned,
          acc: Accelerator, pool: CorePool, mem: MemorySystem, records: dict[str, Record],
          options: dict[str, Any], extra_deps: dict[str, list[simpy.Event]] | None = None,
          ) -> dict[str, simpy.Event]:
    """Start one process per node of the graph (`dse.sim.layer.run_layer`) on ``pool``; returns
    each node's done event. ``extra_deps``: events a node waits for besides its predecessors
    (a schedule's gates and the arrival of tensors from other core groups)."""
    done = {name: env.event() for name in order}
    loads_done = {name: env.event() for name in order}
    started = {name: env.event() for name in order}
    # buffer halves a loader may fill ahead of its array; SCALE-Sim's ports never wait for room
    slots = (1 << 30 if acc.tile_policy == "scalesim" else 2) if acc.double_buffered else 1
    extra_deps = extra_deps or {}
    for name in order:
        deps = [done[p] for p in nodes[name].preds] + extra_deps.get(name, [])
        rule = _prefetch_rule(name, nodes, pl.plans, pl.units, acc, pl.reserves, loads_done,
                              done, started, pl.staged) if options["prefetch"] else None
        env.process(run_layer(env, name, pl.plans.get(name), pl.units.get(name, []), deps,
                              done[name], loads_done[name], pool, mem, records.get(name),
                              freq_hz=acc.freq_hz, fidelity=options["fidelity"],
                              segments=options["segments"], prefetch=rule, slots=slots,
                              started=started[name]))
    return done


# -- 6. results ------------------------------------------------------------------------------------
def _default_energy(acc: Accelerator) -> Any:
    from arch.energy import default_energy_model

    node = getattr(acc, "node_nm", None)
    return default_energy_model(node) if node is not None else default_energy_model()


def _mac_pj(em: Any, plan: LayerPlan, acc: Accelerator, high_precision: str) -> float:
    """Energy of one of this layer's MACs on this array: one array MAC at or below its precision;
    above it a configurable MAC does one wide MAC and bit-serial composition pays every pass's
    accumulation (`arch.energy.EnergyModel.mac_pj_on`)."""
    return float(em.mac_pj_on((plan.w_bits, plan.a_bits), acc.mac_bits,
                              high_precision=high_precision, acc_bits=acc.acc_bits))


def _phases(plan: LayerPlan, rec: Record, f: float) -> list[tuple[float, float, dict[str, float]]]:
    """One node's time in three consecutive pieces, (start, end, {part: seconds}), the seconds of
    each piece summing to its length: on-load; the middle (array time split into ideal compute
    at full array use, the precision slow-down above it and spatial under-use, or vector time of
    a memory-only op, plus stall - the rest of the middle); off-load."""
    mid = rec.storing_s - rec.loaded_s
    comp = plan.compute_cycles / f
    if plan.macs > 0:
        ideal = min(plan.ideal_cycles / f, comp)
        prec = min(plan.ideal_cycles * (plan.precision_factor - 1.0) / f, comp - ideal)
        parts = {"ideal_compute": ideal, "precision": prec, "spatial": comp - ideal - prec}
    else:
        parts = {"vector": comp}
    scale = min(1.0, mid / comp) if comp > 0 else 0.0  # float round-off only: mid >= comp
    middle = {k: v * scale for k, v in parts.items()}
    middle["stall"] = max(0.0, mid - sum(middle.values()))
    return [(rec.start_s, rec.loaded_s, {"onload": rec.loaded_s - rec.start_s}),
            (rec.loaded_s, rec.storing_s, middle),
            (rec.storing_s, rec.end_s, {"offload": rec.end_s - rec.storing_s})]


def _latency_split(pieces: list[tuple[float, float, dict[str, float]]],
                   latency: float) -> dict[str, float]:
    """Network latency split into `LATENCY_PARTS` (seconds, summing to ``latency``).

    A sweep over time: where exactly one node is active, the time goes to the part of that
    node's current piece (pro rata within the piece); where two or more are active, to
    ``overlap``; where none is, to ``idle``. Each node's pieces are consecutive, so the number
    of active pieces is the number of active nodes.
    """
    events: list[tuple[float, int, int]] = []
    for i, (start, end, _) in enumerate(pieces):
        if end > start:
            events += [(start, 1, i), (end, 0, i)]  # at equal times, ends come first
    events.sort()
    out = dict.fromkeys(LATENCY_PARTS, 0.0)
    active: set[int] = set()
    now = 0.0
    for t, starts, i in events:
        dt = t - now
        if dt > 0:
            if len(active) == 1:
                (j,) = active
                start, end, shares = pieces[j]
                for part, sec in shares.items():
                    out[part] += dt * sec / (end - start)
            else:
                out["overlap" if active else "idle"] += dt
            now = t
        if starts:
            active.add(i)
        else:
            active.discard(i)
    out["idle"] += max(0.0, latency - now)
    return out


@dataclass(slots=True)
class LayerTally:
    """One node's per-layer row plus the totals `_collect` sums: DRAM bytes by operand, SRAM
    bits and accesses, MAC energy (J)."""

    row: dict[str, Any]
    by_op: dict[str, int]
    sram_bits: float
    sram_accesses: int
    mac_j: float


def layer_tally(name: str, nodes: dict[str, _Node], plan: LayerPlan, rec: Record,
                acc: Accelerator, em: Any, options: dict[str, Any],
                pinned: frozenset[str], staged: dict[str, str]) -> LayerTally:
    """The per-layer row (`LAYER_COLUMNS`) of node ``name`` and its energy/traffic totals."""
    f = acc.freq_hz
    by_op = plan.dram_by_operand()
    if name in staged:  # its weights crossed DRAM in the prefetch, not in the plan
        by_op["weights"] += nodes[name].layer.weight_bytes
    layer_dram = sum(by_op.values())
    layer_sram_bits = sum(t.count * t.sram_bits for t in plan.tasks)
    mac_pj = _mac_pj(em, plan, acc, options["high_precision"]) if plan.macs else 0.0
    mac_e = plan.macs * mac_pj * 1e-12
    total_cyc = (rec.end_s - rec.start_s) * f
    comp = plan.compute_cycles
    on_c, off_c = rec.onload_s * f, rec.offload_s * f
    stall = max(0.0, total_cyc - comp - on_c - off_c)
    mem_s = layer_dram / acc.dram_bytes_per_s
    row = {
        "name": name, "op": plan.op, "macs": plan.macs, "w_bits": plan.w_bits,
        "a_bits": plan.a_bits, "split": plan.split, "cores_used": plan.cores_used,
        "compute_cycles": comp, "ideal_cycles": plan.ideal_cycles, "stall_cycles": stall,
        "onload_cycles": on_c, "offload_cycles": off_c, "total_cycles": total_cyc,
        "dram_bytes": layer_dram, "dram_read_bytes_ifmap": by_op["inputs"],
        "dram_read_bytes_filter": by_op["weights"], "dram_write_bytes_ofmap": by_op["outputs"],
        "bound": "memory" if mem_s > comp / f else "compute",
        "start_s": rec.start_s, "end_s": rec.end_s, "stationary": plan.stationary,
        "double_buffered": plan.double_buffered,
        "input_resident": any(nodes[p].resident for p in nodes[name].preds),
        "output_resident": nodes[name].resident,
        "weights_pinned": name in pinned, "weights_prefetched": name in staged,
        "precision_factor": plan.precision_factor,
        "energy_j": mac_e + (layer_sram_bits * em.sram_pj_per_bit
                             + layer_dram * 8 * em.dram_pj_per_bit) * 1e-12,
    }
    return LayerTally(row, by_op, layer_sram_bits,
                      sum(t.count * t.sram_accesses for t in plan.tasks), mac_e)


@dataclass(slots=True)
class Totals:
    """What a run's per-layer tallies add up to: the layer tables, DRAM bytes by operand, SRAM
    bits and accesses, MAC energy, busy intervals and the latency-split pieces."""

    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    mem_rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    dram_op: dict[str, int] = dataclasses.field(
        default_factory=lambda: {"weights": 0, "inputs": 0, "outputs": 0})
    mac_j: float = 0.0
    sram_bits: float = 0.0
    sram_accesses: int = 0
    intervals: list[Interval] = dataclasses.field(default_factory=list)
    pieces: list[tuple[float, float, dict[str, float]]] = dataclasses.field(
        default_factory=list)

    def add(self, t: LayerTally, plan: LayerPlan, rec: Record, freq_hz: float, *,
            pieces: bool = True) -> None:
        """One node's tally; ``pieces``: its phases count toward the latency split."""
        self.intervals.extend(rec.intervals)
        if pieces:
            self.pieces += _phases(plan, rec, freq_hz)
        for k, v in t.by_op.items():
            self.dram_op[k] += v
        self.sram_bits += t.sram_bits
        self.sram_accesses += t.sram_accesses
        self.mac_j += t.mac_j
        (self.rows if plan.op in ("conv", "linear", "matmul") else self.mem_rows).append(t.row)

    def energy(self, em: Any, acc: Accelerator, time_s: float) -> dict[str, float]:
        """Joules by component: MACs, SRAM traffic, DRAM traffic, and leakage over ``time_s``
        where the energy model has it."""
        out = {"mac": self.mac_j, "sram": self.sram_bits * em.sram_pj_per_bit * 1e-12,
               "dram": sum(self.dram_op.values()) * 8 * em.dram_pj_per_bit * 1e-12}
        if getattr(em, "static_w_per_mm2", 0.0):
            out["static"] = em.static_w(acc.area) * time_s
        return out


def _collect(workload: Workload, acc: Accelerator, batch: int, nodes: dict[str, _Node],
             order: list[str], plans: dict[str, LayerPlan], records: dict[str, Record],
             dram: MemorySystem, env: CountingEnvironment, em: Any, options: dict[str, Any],
             pinned: frozenset[str] = frozenset(),
             staged: dict[str, str] | None = None) -> SimResult:
    f = acc.freq_hz
    latency = env.now
    tot = Totals()
    staged = staged or {}
    for name in order:
        plan = plans.get(name)
        if plan is not None:
            tot.add(layer_tally(name, nodes, plan, records[name], acc, em, options, pinned,
                                staged), plan, records[name], f)
    dram_op, rows, mem_rows = tot.dram_op, tot.rows, tot.mem_rows
    dram_total = sum(dram_op.values())
    energy = tot.energy(em, acc, latency)
    macs = int(sum(p.macs for p in plans.values()))
    util = macs / (acc.mac_count * latency * f) if latency > 0 else 0.0
    return SimResult(
        workload=workload.name, accelerator=acc.name, batch=batch, latency_s=latency,
        images_per_s=batch / latency if latency > 0 else math.inf, utilization=util,
        dram_bytes=int(dram_total), dram_bytes_by_operand=dram_op,
        sram_accesses=int(tot.sram_accesses), energy_j=sum(energy.values()),
        energy_by_component=energy, macs=macs,
        latency_breakdown=_latency_split(tot.pieces, latency),
        events=env.events_processed,
        layers=pd.DataFrame(rows, columns=list(LAYER_COLUMNS)),
        peak_macs_per_s=acc.peak_macs_per_s, dram_busy_s=dram.busy_s,
        dram_intervals=tuple(dram.busy_intervals),
        intervals=tuple(tot.intervals),
        memory_ops=pd.DataFrame(mem_rows, columns=list(LAYER_COLUMNS)), options=options,
        dram_bytes_moved=round(sum(dram.bytes_by_operand.values())),
        counters={"DRAM GB/s in use": tuple(dram.bandwidth_track()),
                  **{k: tuple(v) for k, v in dram.counters.items()}},
        design=dataclasses.asdict(acc))

"""Multi-core schedules: a stream of images through core groups (`simulate`'s ``schedule``).

`dse.sim.simulate` plays the whole batch as one tensor on all cores, layer by layer. Here the
cores are split into groups (``groups=`` equal or explicit core counts, or the accelerator's own
heterogeneous ``core_groups``, `arch.groups`) and ``batch`` images flow through them in
micro-batches of ``micro_batch`` images (default 1; "image k" below is micro-batch k, and the
whole micro-batch is one tensor, as the batch is layer by layer):

* ``pipeline``: contiguous stages of layers, stage g on group g (`balance` by estimated stage
  time, or the user's ``stages={layer: group}``). Each group is one SimPy process that takes image
  k once it has finished image k-1 and every group it feeds has a free input slot (at most
  ``buffer_images`` images wait in a group's input buffer: back-pressure), then plays its layers
  (`dse.sim.layer.run_layer`, the same engine as layer-by-layer, on the group's `CorePool`).
  Fill, drain, bubbles and blocking come out of these events.
* ``data_parallel``: every group runs whole images; a free group takes the next image.
* ``layer_by_layer`` on core groups: each layer on its group, image k starting once image k-1 has
  finished (a pipeline with one image in flight).

All groups share the DRAM (`dse.sim.dram.MemorySystem`). A tensor that another group reads
crosses the on-chip network (`dse.sim.network.Network`, ``noc`` = bus | mesh) from the
producer into the consumer's input buffer (each group sends its tensors one after
another, in order, as one DMA engine would), or, with ``noc="none"``, is stored to DRAM and
loaded back. The input buffer takes the receiver's SRAM for the whole stream (`_inboxes`): as
many images as fit, at most ``buffer_images``; when not one fits, its inbound tensors go through
DRAM as with ``noc="none"``. Weights that fit beside a group's working set are loaded for the
first image and stay on chip for the rest of the stream (`dse.sim.simulate`'s
``persistent_weights`` from the second image on): a stage owns its layers. Each micro-batch is
planned as a batch of its own.

Results: ``latency_s`` is the first image's latency, ``images_per_s`` the steady-state rate
(completions after the first wave over the time they took), ``makespan_s`` the whole stream;
``stages`` has one row per group (cores, busy, stalled, starved, blocked) beside the per-layer
table, which sums each layer over the images.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pandas as pd
import simpy

from arch.spec import Accelerator
from dse.sim.cores import CorePool
from dse.sim.dram import CountingEnvironment
from dse.sim.layer import Record
from dse.sim.network import Network
from dse.sim.results import LAYER_COLUMNS, SimResult
from dse.sim.simulate import (
    BOUNDARY_OPS,
    Planned,
    Totals,
    _free,
    _latency_split,
    _Node,
    _plan_one,
    _prepare,
    _reserves,
    layer_tally,
    memory_system,
    plan_graph,
    spawn,
)

if TYPE_CHECKING:
    from workloads.graph import Workload

__all__ = ["STAGE_COLUMNS", "balance", "run_schedule"]

STAGE_COLUMNS = ("group", "cores", "mac_bits", "array", "layers", "first_layer", "last_layer",
                 "images", "busy_s", "compute_s", "stalled_s", "starved_s", "blocked_s",
                 "busy_fraction", "noc_in_bytes", "noc_out_bytes", "buffer_images",
                 "inbox_bytes")
"""The per-group table: ``busy_s`` from a group's first layer start to its last layer's end,
summed over its images; ``compute_s`` its array time; ``stalled_s`` = busy - compute (DRAM and
network waits, on-/off-load); ``starved_s`` waiting for an input tensor; ``blocked_s`` waiting for
a free slot in a downstream group's input buffer (or, layer by layer, for the previous image);
``busy_fraction`` = busy / makespan; ``buffer_images`` the images the group's input buffer holds
on chip (`_inboxes`: 0 when its inbound tensors come through DRAM, or it reads none from other
groups) and ``inbox_bytes`` the SRAM they take (all its cores), charged to its ledger."""


# -- groups and stages -----------------------------------------------------------------------------
def group_accelerators(acc: Accelerator, groups: int | tuple[int, ...] | None,
                       stages: dict[str, int] | None, schedule: str) -> tuple[Accelerator, ...]:
    """The core groups as homogeneous accelerators: the design's ``core_groups``, or its cores
    split into ``groups`` (a count of equal groups, or each group's core count)."""
    if acc.core_groups:
        if groups is not None:
            raise ValueError(f"groups={groups!r} is not allowed for an accelerator with "
                             f"core_groups ({len(acc.core_groups)} groups); leave it out")
        return acc.groups()
    if groups is None and stages is None and schedule == "layer_by_layer":
        groups = 1  # micro-batches one after another on all the cores
    if groups is None and stages:
        groups = max(stages.values()) + 1 if all(
            isinstance(v, int) and not isinstance(v, bool) for v in stages.values()) else None
    if groups is None:
        raise ValueError(f"groups=None is not allowed with schedule={schedule!r} on a homogeneous "
                         "accelerator; expected a number of equal core groups or a tuple of "
                         "core counts (or an accelerator with core_groups)")
    if isinstance(groups, int) and not isinstance(groups, bool):
        if not 1 <= groups <= acc.cores:
            raise ValueError(f"groups={groups!r} is not allowed; expected an integer in "
                             f"1..{acc.cores} (the accelerator's cores)")
        counts = tuple(acc.cores // groups + (1 if i < acc.cores % groups else 0)
                       for i in range(groups))
    elif isinstance(groups, tuple | list) and groups:
        counts = tuple(groups)
        for i, c in enumerate(counts):
            if isinstance(c, bool) or not isinstance(c, int) or c < 1:
                raise ValueError(f"groups[{i}]={c!r} is not allowed; expected an integer >= 1 "
                                 "(a core group needs at least one core)")
        if sum(counts) != acc.cores:
            raise ValueError(f"groups={counts!r} is not allowed; the core counts must sum to the "
                             f"accelerator's {acc.cores} cores (they sum to {sum(counts)})")
    else:
        raise ValueError(f"groups={groups!r} is not allowed; expected an integer >= 1 or a "
                         "non-empty tuple of core counts")
    # equal groups stay equal values, so the mapper's cache serves them all
    return tuple(dataclasses.replace(acc, cores=c) for c in counts)


def _hosts(workload: Workload, nodes: dict[str, _Node]) -> dict[str, str]:
    """Every layer name of the workload -> the schedulable node that holds it (fusion)."""
    host = {n: n for n in nodes}
    for n, nd in nodes.items():
        for f in nd.fused:
            host[f] = n
    for name in workload.graph.nodes:
        host.setdefault(name, name)
    return host


def user_stages(stages: Any, workload: Workload, nodes: dict[str, _Node], order: list[str],
                n_groups: int, *, forward: bool = True) -> dict[str, int]:
    """Validate ``stages={layer name: group}`` and return it per schedulable node. ``forward``
    (a pipeline): a layer's group may not precede its inputs' groups. One image at a time
    (``layer_by_layer``) a tensor may go back to an earlier group - e.g. the last layer on the
    group that ran the first."""
    if not isinstance(stages, dict) or not stages:
        raise ValueError(f"stages={stages!r} is not allowed; expected a non-empty mapping "
                         "{layer name: core-group index}")
    layers = [n for n in order if nodes[n].layer.op not in BOUNDARY_OPS]
    host = _hosts(workload, nodes)
    out: dict[str, int] = {}
    for name, g in stages.items():
        if name not in workload.graph.nodes or host.get(name) not in layers:
            known = ", ".join(layers[:6]) + (", ..." if len(layers) > 6 else "")
            raise ValueError(f"stages: layer {name!r} is not allowed; it is not a layer of "
                             f"{workload.name!r} (layers: {known})")
        if isinstance(g, bool) or not isinstance(g, int) or not 0 <= g < n_groups:
            raise ValueError(f"stages[{name!r}]={g!r} is not allowed; expected a core-group "
                             f"index in 0..{n_groups - 1}")
        h = host[name]
        if out.setdefault(h, g) != g:
            raise ValueError(f"stages[{name!r}]={g!r} is not allowed; it is fused into {h!r}, "
                             f"which is on group {out[h]}")
    missing = [n for n in layers if n not in out]
    if missing:
        raise ValueError(f"stages: layer(s) {', '.join(map(repr, missing[:5]))}"
                         f"{' ...' if len(missing) > 5 else ''} are unmapped; expected every "
                         f"layer of {workload.name!r} mapped to a core group")
    for n in layers if forward else ():
        for p in nodes[n].preds:
            if p in out and out[p] > out[n]:
                raise ValueError(f"stages[{n!r}]={out[n]} is not allowed; it reads {p!r} on "
                                 f"group {out[p]}, and a pipeline only flows forward (expected "
                                 f">= {out[p]}: stages in topological order)")
    return out


def _estimate_s(nd: _Node, nodes: dict[str, _Node], gacc: Accelerator, options: dict[str, Any],
                dram_share: float) -> float:
    """A layer's time on a group, alone: max(array time, its DRAM bytes at the group's share)."""
    plan = _plan_one(nd, nodes, gacc, options["high_precision"], _free(gacc, 0),
                     options["multicast"])
    if plan is None:
        return 0.0
    return max(plan.compute_cycles / gacc.freq_hz,
               sum(plan.dram_by_operand().values()) / (gacc.dram_bytes_per_s * dram_share))


def balance(nodes: dict[str, _Node], order: list[str], gaccs: tuple[Accelerator, ...],
            options: dict[str, Any]) -> dict[str, int]:
    """Contiguous stages of the topological order, stage g on group g, minimising the largest
    estimated stage time (`_estimate_s`, DRAM shared equally) - the linear-partition dynamic
    programme, exact for these estimates."""
    layers = [n for n in order if nodes[n].layer.op not in BOUNDARY_OPS]
    n_g = len(gaccs)
    if len(layers) < n_g:
        raise ValueError(f"groups={n_g} is not allowed for a pipeline of {len(layers)} layers; "
                         f"expected at most {len(layers)} groups")
    distinct = {g: [_estimate_s(nodes[n], nodes, g, options, 1 / n_g) for n in layers]
                for g in set(gaccs)}
    est = [distinct[g] for g in gaccs]
    prefix = [[0.0] for _ in gaccs]
    for g in range(n_g):
        for v in est[g]:
            prefix[g].append(prefix[g][-1] + v)
    big = math.inf
    # best[g][j]: the least max stage time putting layers[:j] on groups 0..g
    best = [[big] * (len(layers) + 1) for _ in range(n_g)]
    cut = [[0] * (len(layers) + 1) for _ in range(n_g)]
    for j in range(1, len(layers) + 1):
        best[0][j] = prefix[0][j]
    for g in range(1, n_g):
        for j in range(g + 1, len(layers) + 1):
            for i in range(g, j):
                v = max(best[g - 1][i], prefix[g][j] - prefix[g][i])
                if v < best[g][j]:
                    best[g][j], cut[g][j] = v, i
    out: dict[str, int] = {}
    j = len(layers)
    for g in range(n_g - 1, -1, -1):
        i = cut[g][j] if g > 0 else 0
        for n in layers[i:j]:
            out[n] = g
        j = i
    return out


def _subgraph(nodes: dict[str, _Node], order: list[str], assign: dict[str, int] | None, g: int,
              via_noc: bool, spill: frozenset[int] = frozenset(),
              ) -> tuple[dict[str, _Node], list[str], list[str], dict[str, list[int]]]:
    """Group ``g``'s nodes (fresh copies): its layers, the network input they read, and one
    placeholder input per tensor from another group - resident (it arrives over the network
    into the input buffer) or in DRAM (``noc="none"``, or a receiving group in ``spill`` whose
    input buffer does not fit its SRAM, `_inboxes`). Returns them, their order, the placeholders
    (which wait for their tensor's arrival) and, per layer, the groups that read its output.

    A tensor sent over the network is written into the receiver's input buffer as it is
    produced; the sender keeps it on chip only for its own consumers, if its ledger has room
    (else it stores it to DRAM for them)."""
    sub: dict[str, _Node] = {}
    heads: list[str] = []  # graph inputs and placeholders: no predecessors in the group
    fed: list[str] = []
    sends: dict[str, list[int]] = {}
    mine = [n for n in order if nodes[n].layer.op not in BOUNDARY_OPS
            and (assign is None or assign[n] == g)]
    for n in mine:
        for p in nodes[n].preds:
            if p in sub:
                continue
            pn = nodes[p]
            if pn.layer.op == "input":
                sub[p] = dataclasses.replace(pn, preds=[], succs=[])
                heads.append(p)
            elif assign is not None and assign[p] != g:
                noc_in = via_noc and g not in spill
                sub[p] = dataclasses.replace(
                    pn, layer=dataclasses.replace(pn.layer, op="input"), preds=[], succs=[],
                    from_dram=not noc_in, resident=noc_in, to_dram=False, fused=())
                heads.append(p)
                fed.append(p)
    for n in mine:
        nd = nodes[n]
        inside = [s for s in nd.succs if assign is None or assign.get(s, g) == g]
        outside = sorted({assign[s] for s in nd.succs if assign is not None
                          and s in assign and assign[s] != g})
        if outside:
            sends[n] = outside
        by_dram = [h for h in outside if not via_noc or h in spill]
        to_dram = nd.to_dram or bool(by_dram)
        sub[n] = dataclasses.replace(nd, preds=list(nd.preds), succs=inside, to_dram=to_dram,
                                     resident=len(by_dram) < len(outside) and not inside
                                     and not to_dram)
        for p in nd.preds:
            if p in heads:
                sub[p].succs.append(n)
    return sub, heads + mine, fed, sends


# -- the stream ------------------------------------------------------------------------------------
@dataclasses.dataclass(slots=True)
class _Group:
    """One core group in flight: its graph and plans for the first and later images, its pool,
    its tallies and the records of every image it played."""

    index: int
    acc: Accelerator
    first: tuple[dict[str, _Node], Planned]
    steady: tuple[dict[str, _Node], Planned]
    order: list[str]
    fed: list[str]  # placeholders: tensors from other groups
    sends: dict[str, list[int]]
    pool: CorePool
    stats: dict[str, float]
    runs: list[tuple[int, dict[str, Record], dict[str, _Node], Planned]]


def _inboxes(nodes: dict[str, _Node], order: list[str], assign: dict[str, int],
             gaccs: tuple[Accelerator, ...], options: dict[str, Any],
             want: int) -> tuple[int, ...]:
    """Images each group's input buffer holds on chip: ``want`` (``buffer_images``; 1 for one
    image at a time), or fewer - as many as fit its SRAM beside its largest layer reserve; 0 when
    not even one image's inbound tensors fit, or its buffers keep nothing between layers
    (``split`` buffers, ``onchip_reuse=False``): then they come through DRAM. 0 also for a group
    that reads nothing from other groups.

    The receiving group holds the buffer, as a core's memory receives a transferred tensor in
    Stream (KULeuven-MICAS/stream, ``Accelerator.transfer_tensor_to_core``: the receiver must
    have room, else tensors are evicted off chip). It is allocated for the whole stream, so
    `plan_graph` charges it at every step of the group's ledger (``held_bytes``)."""
    out = []
    for g, gacc in enumerate(gaccs):
        sub, gorder, fed, _ = _subgraph(nodes, order, assign, g, via_noc=True)
        in_bytes = sum(sub[p].out_bytes for p in fed)
        if in_bytes <= 0 or gacc.buffers == "split" or not options["onchip_reuse"]:
            out.append(0)
            continue
        reserves = _reserves(sub, gorder, gacc, options["high_precision"], options["multicast"])
        room = (gacc.sram_bytes_per_core - max(reserves.values(), default=0)) * gacc.cores
        out.append(max(0, min(want, room // in_bytes)))
    return tuple(out)


def _group(g: int, gacc: Accelerator, nodes: dict[str, _Node], order: list[str],
           assign: dict[str, int] | None, via_noc: bool, options: dict[str, Any],
           pool: CorePool, spill: frozenset[int], inbox_bytes: int) -> _Group:
    plans = []
    for opts in (options, {**options, "persistent_weights": True}):
        # fresh nodes for each plan: planning marks the tensors it keeps resident
        sub, gorder, fed, sends = _subgraph(nodes, order, assign, g, via_noc, spill)
        plans.append((sub, plan_graph(sub, gorder, gacc, opts, held_bytes=inbox_bytes)))
    stats = dict.fromkeys(("images", "busy_s", "compute_s", "starved_s", "blocked_s",
                           "noc_in_bytes", "noc_out_bytes", "buffer_images"), 0.0)
    stats["inbox_bytes"] = float(inbox_bytes)
    return _Group(g, gacc, plans[0], plans[1], gorder, fed, sends, pool, stats, [])


def run_schedule(workload: Workload, acc: Accelerator, batch: int, em: Any,
                 options: dict[str, Any], *, schedule: str, stages: dict[str, int] | None,
                 groups: int | tuple[int, ...] | None, buffer_images: int,
                 micro_batch: int = 1) -> SimResult:
    """Simulate ``batch`` images streaming through core groups in micro-batches of
    ``micro_batch`` images (module docstring)."""
    if isinstance(micro_batch, bool) or not isinstance(micro_batch, int) or micro_batch < 1 \
            or batch % micro_batch:
        raise ValueError(f"micro_batch={micro_batch!r} is not allowed; expected an integer >= 1 "
                         f"that divides batch={batch}")
    steps = batch // micro_batch
    nodes, order = _prepare(workload, micro_batch)
    gaccs = group_accelerators(acc, groups, stages, schedule)
    if schedule == "data_parallel":
        if stages is not None:
            raise ValueError(f"stages={stages!r} is not allowed with schedule='data_parallel'; "
                             "every core group runs whole images")
        assign = None
    elif stages is not None:
        assign = user_stages(stages, workload, nodes, order, len(gaccs),
                             forward=schedule == "pipeline")
    else:
        assign = balance(nodes, order, gaccs, options)
    via_noc = acc.noc != "none" and assign is not None and len(gaccs) > 1
    # images each group's input buffer holds on chip (0: its inbound tensors spill to DRAM)
    want = 1 if schedule == "layer_by_layer" else buffer_images
    slots = _inboxes(nodes, order, assign, gaccs, options, want) \
        if via_noc and assign is not None else (0,) * len(gaccs)
    spill = frozenset(g for g in range(len(gaccs)) if via_noc and not slots[g])
    env = CountingEnvironment()
    mem = memory_system(env, acc)
    noc = Network(env, topology=acc.noc, groups=len(gaccs),
                  bytes_per_s=acc.noc_bytes_per_cycle * acc.freq_hz,
                  hop_s=acc.noc_hop_cycles / acc.freq_hz,
                  multicast=acc.noc_multicast) if via_noc else None
    grps: list[_Group] = []
    first_id = 0
    planned: dict[Accelerator, _Group] = {}  # data-parallel groups of one kind plan once
    for g, gacc in enumerate(gaccs):
        pool = CorePool(env, gacc.cores, first_id)
        twin = planned.get(gacc) if assign is None else None
        if twin is None:
            inbox = 0
            if slots[g]:
                fed = _subgraph(nodes, order, assign, g, via_noc)[2]
                inbox = slots[g] * sum(nodes[p].out_bytes for p in fed)
            grp = _group(g, gacc, nodes, order, assign, via_noc, options, pool, spill, inbox)
            planned.setdefault(gacc, grp)
        else:  # the same graph on the same kind of group: share its (read-only) plans
            grp = dataclasses.replace(twin, index=g, pool=pool, runs=[],
                                      stats=dict.fromkeys(twin.stats, 0.0))
        grps.append(grp)
        first_id += gacc.cores
    stage_done = [[env.event() for _ in range(steps)] for _ in grps]
    image_done = [env.event() for _ in range(steps)]
    finished = [0.0] * steps
    arrive = {(k, n, h): env.event() for k in range(steps) for grp in grps
              for n, dsts in grp.sends.items() for h in dsts}
    outbox = [simpy.Resource(env, capacity=1) for _ in grps]
    downstream = [sorted({h for dsts in grp.sends.values() for h in dsts}) for grp in grps]

    def send(k: int, grp: _Group, n: str, dsts: list[int],
             ready: simpy.Event) -> Generator[simpy.Event, Any, None]:
        yield ready  # a spilled receiver's copy is in DRAM once its producer has finished
        on_noc = [h for h in dsts if h not in spill]
        if noc is not None and on_noc:
            nbytes = nodes[n].out_bytes
            with outbox[grp.index].request() as turn:  # one sending engine per group, FIFO
                yield turn
                yield noc.send(grp.index, on_noc, nbytes)
            grp.stats["noc_out_bytes"] += nbytes
            for h in on_noc:
                grps[h].stats["noc_in_bytes"] += nbytes
        for h in dsts:
            arrive[(k, n, h)].succeed()

    def play(grp: _Group, k: int, t0: float) -> Generator[simpy.Event, Any, None]:
        t1 = env.now
        sub, pl = grp.first if k == 0 else grp.steady
        recs = {n: Record() for n in pl.plans}
        extra = {p: [arrive[(k, p, grp.index)]] for p in grp.fed}
        done = spawn(env, sub, grp.order, pl, grp.acc, grp.pool, mem, recs, options, extra)
        for n, dsts in grp.sends.items():
            env.process(send(k, grp, n, dsts, done[n]))
        if done:
            yield simpy.AllOf(env, list(done.values()))
        start = min((r.start_s for r in recs.values()), default=env.now)
        st = grp.stats
        st["images"] += micro_batch
        st["blocked_s"] += t1 - t0
        st["starved_s"] += max(0.0, start - t1)
        st["busy_s"] += env.now - start if recs else 0.0
        st["compute_s"] += sum(p.compute_cycles for p in pl.plans.values()) / grp.acc.freq_hz
        grp.runs.append((k, recs, sub, pl))

    def stage(grp: _Group) -> Generator[simpy.Event, Any, None]:
        for k in range(steps):
            t0 = env.now
            # a free slot in each receiver's input buffer: the images it holds on chip, or
            # buffer_images in DRAM when it spills
            waits = [stage_done[h][k - (slots[h] or buffer_images)]
                     for h in downstream[grp.index] if k >= (slots[h] or buffer_images)]
            if schedule == "layer_by_layer" and k > 0:
                waits.append(image_done[k - 1])
            if waits:
                yield simpy.AllOf(env, waits)
            yield from play(grp, k, t0)
            stage_done[grp.index][k].succeed()

    def image(k: int) -> Generator[simpy.Event, Any, None]:
        yield simpy.AllOf(env, [stage_done[g][k] for g in range(len(grps))])
        finished[k] = env.now
        image_done[k].succeed()

    queue = iter(range(steps))

    def worker(grp: _Group) -> Generator[simpy.Event, Any, None]:
        for k in queue:  # a free group takes the next image
            t0 = env.now
            yield from play(grp, k, t0)
            finished[k] = env.now
            image_done[k].succeed()

    for grp in grps:
        env.process(worker(grp) if assign is None else stage(grp))
    if assign is not None:
        for k in range(steps):
            env.process(image(k))
    env.run()
    for grp in grps:
        grp.stats["buffer_images"] = slots[grp.index]
    return _collect_stream(workload, acc, batch, grps, finished, env, mem, noc, em,
                           {**options, "schedule": schedule, "groups": len(grps),
                            "buffer_images": buffer_images, "micro_batch": micro_batch},
                           lanes=len(grps) if assign is None else 1)


_SUMMED = ("macs", "compute_cycles", "ideal_cycles", "stall_cycles", "onload_cycles",
           "offload_cycles", "total_cycles", "dram_bytes", "dram_read_bytes_ifmap",
           "dram_read_bytes_filter", "dram_write_bytes_ofmap", "energy_j")


def _per_layer(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Each layer's rows over the images as one row: counts summed, first start, last end, the
    last image's pinning (steady state)."""
    cols = [*LAYER_COLUMNS, "core_group"]
    merged: dict[str, dict[str, Any]] = {}
    for row in rows:
        m = merged.get(row["name"])
        if m is None:
            merged[row["name"]] = dict(row)
            continue
        for c in _SUMMED:
            m[c] += row[c]
        m["start_s"] = min(m["start_s"], row["start_s"])
        m["end_s"] = max(m["end_s"], row["end_s"])
        m["weights_pinned"] = row["weights_pinned"]
    return pd.DataFrame(list(merged.values()), columns=cols)


def _collect_stream(workload: Workload, acc: Accelerator, batch: int, grps: list[_Group],
                    finished: list[float], env: CountingEnvironment, mem: Any,
                    noc: Network | None, em: Any, options: dict[str, Any],
                    lanes: int) -> SimResult:
    makespan = env.now
    f = acc.freq_hz
    tot = Totals()
    for grp in grps:
        for k, recs, sub, pl in grp.runs:
            for name, plan in pl.plans.items():
                t = layer_tally(name, sub, plan, recs[name], grp.acc, em, options, pl.pinned,
                                pl.staged)
                t.row["core_group"] = grp.index
                # the latency split is the first micro-batch's
                tot.add(t, plan, recs[name], grp.acc.freq_hz, pieces=k == 0)
    first = finished[0] if finished else makespan
    done = sorted(finished)  # micro-batch completions, micro_batch images each
    steps = len(done)
    micro = batch // max(1, steps)
    if steps > lanes and done[-1] > done[lanes - 1]:
        rate = (steps - lanes) * micro / (done[-1] - done[lanes - 1])
    else:
        rate = batch / makespan if makespan > 0 else math.inf
    energy = tot.energy(em, acc, makespan)
    if noc is not None:
        hop_mm = math.sqrt(acc.area / (len(grps) if acc.noc == "mesh" else 1))
        energy["noc"] = noc.byte_hops * 8 * hop_mm * em.noc_pj_per_bit_mm * 1e-12
    rows, mem_rows, dram_op = tot.rows, tot.mem_rows, tot.dram_op
    macs = int(sum(r["macs"] for r in rows + mem_rows))
    layers = _per_layer(rows)
    stage_rows = []
    for grp in grps:
        st = grp.stats
        names = [n for n in grp.order if n in grp.first[1].plans]
        stage_rows.append({
            "group": grp.index, "cores": grp.acc.cores,
            "mac_bits": "x".join(map(str, grp.acc.mac_bits)),
            "array": f"{grp.acc.rows}x{grp.acc.cols}", "layers": len(names),
            "first_layer": names[0] if names else "", "last_layer": names[-1] if names else "",
            "images": int(st["images"]), "busy_s": st["busy_s"], "compute_s": st["compute_s"],
            "stalled_s": max(0.0, st["busy_s"] - st["compute_s"]),
            "starved_s": st["starved_s"], "blocked_s": st["blocked_s"],
            "busy_fraction": st["busy_s"] / makespan if makespan > 0 else 0.0,
            "noc_in_bytes": int(st["noc_in_bytes"]), "noc_out_bytes": int(st["noc_out_bytes"]),
            "buffer_images": int(st["buffer_images"]), "inbox_bytes": int(st["inbox_bytes"]),
        })
    return SimResult(
        workload=workload.name, accelerator=acc.name, batch=batch, latency_s=first,
        images_per_s=rate,
        utilization=macs / (acc.mac_count * makespan * f) if makespan > 0 else 0.0,
        dram_bytes=int(sum(dram_op.values())), dram_bytes_by_operand=dram_op,
        sram_accesses=int(tot.sram_accesses), energy_j=sum(energy.values()),
        energy_by_component=energy, macs=macs,
        latency_breakdown=_latency_split(tot.pieces, first), events=env.events_processed,
        layers=layers, peak_macs_per_s=acc.peak_macs_per_s, dram_busy_s=mem.busy_s,
        dram_intervals=tuple(mem.busy_intervals), intervals=tuple(tot.intervals),
        memory_ops=_per_layer(mem_rows), options=options,
        dram_bytes_moved=round(sum(mem.bytes_by_operand.values())),
        counters={"DRAM GB/s in use": tuple(mem.bandwidth_track()),
                  **{k: tuple(v) for k, v in mem.counters.items()}},
        design=dataclasses.asdict(acc), makespan_s=makespan,
        stages=pd.DataFrame(stage_rows, columns=list(STAGE_COLUMNS)),
        noc_bytes=round(noc.bytes_sent) if noc is not None else 0,
        noc_intervals=tuple(noc.busy_intervals) if noc is not None else ())

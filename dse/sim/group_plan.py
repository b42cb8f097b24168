"""Each core group's share of a multi-core schedule, planned before the stream starts
(`dse.sim.schedule`).

A group plays a graph of its own (`subgraph`): its layers, plus one placeholder input per tensor
another group sends it. That tensor crosses the on-chip network into the group's input buffer,
or goes through DRAM (``noc="none"``, or when the buffer does not fit). The input buffer takes
the receiver's SRAM for the whole stream (`input_buffers`): as many images as fit beside its
largest layer reserve, at most ``buffer_images``; 0 images means its inbound tensors spill to
DRAM. Each group is then planned twice (`plan_group`): for the first image, and for the later
ones with ``persistent_weights`` (weights that fit stay on chip: a stage owns its layers).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import simpy

from arch.spec import Accelerator
from dse.sim.cores import CorePool
from dse.sim.layer import Record
from dse.sim.simulate import BOUNDARY_OPS, Planned, _Node, _reserves, plan_graph

__all__ = ["Group", "input_buffers", "plan_group", "plan_groups", "subgraph"]


def subgraph(nodes: dict[str, _Node], order: list[str], assign: dict[str, int] | None, g: int,
             via_noc: bool, spill: frozenset[int] = frozenset(),
             ) -> tuple[dict[str, _Node], list[str], list[str], dict[str, list[int]]]:
    """Group ``g``'s nodes (fresh copies): its layers, the network input they read, and one
    placeholder input per tensor from another group - resident (it arrives over the network
    into the input buffer) or in DRAM (``noc="none"``, or a receiving group in ``spill`` whose
    input buffer does not fit its SRAM, `input_buffers`). Returns them, their order, the
    placeholders (which wait for their tensor's arrival) and, per layer, the groups that read its
    output.

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
        sub, gorder, fed, _ = subgraph(nodes, order, assign, g, via_noc=True)
        in_bytes = sum(sub[p].out_bytes for p in fed)
        if in_bytes <= 0 or gacc.buffers == "split" or not options["onchip_reuse"]:
            out.append(0)
            continue
        reserves = _reserves(sub, gorder, gacc, options["high_precision"], options["multicast"])
        room = (gacc.sram_bytes_per_core - max(reserves.values(), default=0)) * gacc.cores
        out.append(max(0, min(want, room // in_bytes)))
    return tuple(out)


def input_buffers(nodes: dict[str, _Node], order: list[str], assign: dict[str, int] | None,
                  gaccs: tuple[Accelerator, ...], options: dict[str, Any], want: int,
                  via_noc: bool) -> tuple[tuple[int, ...], frozenset[int]]:
    """Per group, the images its input buffer holds on chip (`_inboxes`; all 0 without a
    network between the groups), and the groups whose inbound tensors spill to DRAM (0 images
    although a network carries tensors between the groups)."""
    slots = _inboxes(nodes, order, assign, gaccs, options, want) \
        if via_noc and assign is not None else (0,) * len(gaccs)
    spill = frozenset(g for g in range(len(gaccs)) if via_noc and not slots[g])
    return slots, spill


@dataclasses.dataclass(slots=True)
class Group:
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


def plan_group(g: int, gacc: Accelerator, nodes: dict[str, _Node], order: list[str],
               assign: dict[str, int] | None, via_noc: bool, options: dict[str, Any],
               pool: CorePool, spill: frozenset[int], inbox_bytes: int) -> Group:
    """Group ``g`` planned for its first image and for the later ones (weights persistent),
    with its input buffer of ``inbox_bytes`` (all its cores) held in its SRAM throughout."""
    plans = []
    for opts in (options, {**options, "persistent_weights": True}):
        # fresh nodes for each plan: planning marks the tensors it keeps resident
        sub, gorder, fed, sends = subgraph(nodes, order, assign, g, via_noc, spill)
        plans.append((sub, plan_graph(sub, gorder, gacc, opts, held_bytes=inbox_bytes)))
    stats = dict.fromkeys(("images", "busy_s", "compute_s", "starved_s", "blocked_s",
                           "noc_in_bytes", "noc_out_bytes", "buffer_images"), 0.0)
    stats["inbox_bytes"] = float(inbox_bytes)
    return Group(g, gacc, plans[0], plans[1], gorder, fed, sends, pool, stats, [])


def plan_groups(env: simpy.Environment, nodes: dict[str, _Node], order: list[str],
                assign: dict[str, int] | None, gaccs: tuple[Accelerator, ...],
                options: dict[str, Any], via_noc: bool, slots: tuple[int, ...],
                spill: frozenset[int]) -> list[Group]:
    """Every group planned (`plan_group`), each with a pool of its cores (numbered on from the
    previous group's). Data-parallel groups of one kind share one plan (read-only)."""
    grps: list[Group] = []
    first_id = 0
    planned: dict[Accelerator, Group] = {}  # data-parallel groups of one kind plan once
    for g, gacc in enumerate(gaccs):
        pool = CorePool(env, gacc.cores, first_id)
        twin = planned.get(gacc) if assign is None else None
        if twin is None:
            inbox = 0
            if slots[g]:
                fed = subgraph(nodes, order, assign, g, via_noc)[2]
                inbox = slots[g] * sum(nodes[p].out_bytes for p in fed)
            grp = plan_group(g, gacc, nodes, order, assign, via_noc, options, pool, spill,
                             inbox)
            planned.setdefault(gacc, grp)
        else:  # the same graph on the same kind of group: share its (read-only) plans
            grp = dataclasses.replace(twin, index=g, pool=pool, runs=[],
                                      stats=dict.fromkeys(twin.stats, 0.0))
        grps.append(grp)
        first_id += gacc.cores
    return grps

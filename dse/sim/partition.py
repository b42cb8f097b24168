"""Which cores and layers each core group of a multi-core schedule gets (`dse.sim.schedule`).

Two decisions, both made before anything is simulated:

* the core groups (`group_accelerators`): the accelerator's own heterogeneous ``core_groups``
  (`arch.groups`), or its cores split into ``groups`` - a count of equal groups or each group's
  core count - each group described as a homogeneous `Accelerator` of its cores;
* the layer -> group assignment (`assign_layers`): none for ``data_parallel`` (every group runs
  whole images); the user's ``stages={layer: group}`` (`user_stages`); or contiguous stages of the
  topological order balanced by estimated stage time (`balance`, the linear-partition dynamic
  programme).
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from arch.spec import Accelerator
from dse.sim.simulate import BOUNDARY_OPS, _free, _Node, _plan_one

if TYPE_CHECKING:
    from workloads.graph import Workload

__all__ = ["assign_layers", "balance", "group_accelerators", "user_stages"]


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


def assign_layers(workload: Workload, nodes: dict[str, _Node], order: list[str],
                  gaccs: tuple[Accelerator, ...], options: dict[str, Any], *, schedule: str,
                  stages: dict[str, int] | None) -> dict[str, int] | None:
    """Each schedulable node's core group: None for ``data_parallel`` (every group runs whole
    images), else the user's ``stages`` (`user_stages`; only a pipeline must flow forward) or
    balanced stages (`balance`)."""
    if schedule == "data_parallel":
        if stages is not None:
            raise ValueError(f"stages={stages!r} is not allowed with schedule='data_parallel'; "
                             "every core group runs whole images")
        return None
    if stages is not None:
        return user_stages(stages, workload, nodes, order, len(gaccs),
                           forward=schedule == "pipeline")
    return balance(nodes, order, gaccs, options)


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

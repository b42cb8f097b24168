"""Which core group runs which layer of a searched design (`dse.simulate`'s ``stages=``).

Two maps, both keyed by the simulator's schedulable layers
(`dse.sim.simulate.schedulable_layers`: an activation or alias fused into its producer is not a
layer of its own and is left out):

* `edge_stages`: the high-precision "edge" group (group 0) runs the network's first and last
  compute layers, the body group (group 1) everything else - the PACT-SAWB paper's question
  (Sections 5 and 7.3: 16-bit first and last layers) asked of hardware: is a small 16-bit group
  better than running those layers slowly on the low-bit arrays? Played ``layer_by_layer`` one
  tensor at a time, a tensor may go back to the edge group for the last layer.
* `mac_stages`: contiguous stages of the compute layers in topological order with balanced MACs
  (the linear partition minimising the largest stage's MACs, exact), the pipeline split a
  designer draws from the network alone - against the simulator's default, balanced by
  estimated stage time on the actual groups (`dse.sim.schedule.balance`).

A memory-only layer that stands alone (pooling, an add) goes with the group of its latest
producer (edge map: the body group), so a pipeline still flows forward.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workloads.graph import Workload

__all__ = ["STAGE_SPLITS", "edge_stages", "mac_stages"]

STAGE_SPLITS = ("balanced", "macs")
"""How a multi-group schedule's layers split into stages: ``balanced`` - the simulator's default,
by estimated stage time on the design's groups; ``macs`` - contiguous stages of equal MACs
(`mac_stages`)."""


_Row = tuple[str, bool, int, str, tuple[str, ...]]
_CACHE: dict[int, tuple[Workload, tuple[_Row, ...]]] = {}


def _layers(workload: Workload) -> tuple[_Row, ...]:
    """The schedulable layers in the simulator's topological order: (name, is compute, MACs,
    role, producers among them); cached per workload object (a search asks every trial)."""
    hit = _CACHE.get(id(workload))
    if hit is not None and hit[0] is workload:
        return hit[1]
    from dse.sim.simulate import schedulable_layers

    out = [(la.name, bool(la.is_compute), int(la.macs), str(la.role or ""), preds)
           for la, preds in schedulable_layers(workload)]
    if len(_CACHE) >= 8:
        _CACHE.clear()
    _CACHE[id(workload)] = (workload, tuple(out))
    return tuple(out)


def edge_stages(workload: Workload) -> dict[str, int]:
    """Layer -> group: the first and last compute layers on group 0 (the edge group), every
    other layer on group 1. "First"/"last" are the layers with those roles (`Layer.role`), else
    the first and last compute layers in topological order."""
    layers = _layers(workload)
    compute = [n for n, is_c, _, _, _ in layers if is_c]
    if len(compute) < 2:
        raise ValueError(f"edge_cores needs a workload with at least 2 compute layers; "
                         f"{workload.name!r} has {len(compute)}")
    edge = {n for n, is_c, _, role, _ in layers if is_c and role in ("first", "last")}
    if not edge:
        edge = {compute[0], compute[-1]}
    return {n: 0 if n in edge else 1 for n, *_ in layers}


def mac_stages(workload: Workload, groups: int) -> dict[str, int]:
    """Layer -> group: ``groups`` contiguous stages of the compute layers (topological order),
    cut where the largest stage's MACs is least (the linear-partition dynamic programme, exact);
    every group gets at least one compute layer."""
    layers = _layers(workload)
    compute = [(n, m) for n, is_c, m, _, _ in layers if is_c]
    if not 1 <= groups <= len(compute):
        raise ValueError(f"groups={groups!r} is not allowed for a MAC split of "
                         f"{workload.name!r}; expected 1..{len(compute)} (its compute layers)")
    prefix = [0]
    for _, m in compute:
        prefix.append(prefix[-1] + m)
    n = len(compute)
    inf = float("inf")
    # best[g][j]: least largest-stage MACs putting compute[:j] on groups 0..g (each non-empty)
    best = [[inf] * (n + 1) for _ in range(groups)]
    cut = [[0] * (n + 1) for _ in range(groups)]
    for j in range(1, n + 1):
        best[0][j] = prefix[j]
    for g in range(1, groups):
        for j in range(g + 1, n + 1):
            for i in range(g, j):  # groups 0..g-1 hold compute[:i], group g compute[i:j]
                v = max(best[g - 1][i], prefix[j] - prefix[i])
                if v < best[g][j]:
                    best[g][j], cut[g][j] = v, i
    group_of: dict[str, int] = {}
    j = n
    for g in range(groups - 1, -1, -1):
        i = cut[g][j] if g else 0
        for name, _ in compute[i:j]:
            group_of[name] = g
        j = i
    out: dict[str, int] = {}
    for name, is_c, _, _, preds in layers:
        out[name] = group_of[name] if is_c else max((out[p] for p in preds), default=0)
    return out

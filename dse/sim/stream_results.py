"""A multi-core stream's `SimResult` (`dse.sim.schedule`): the per-layer table summed over the
images, the ``stages`` table (one row per core group, `STAGE_COLUMNS`), the first image's
latency, the steady-state rate and the energy, the on-chip network's included.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from arch.spec import Accelerator
from dse.sim.dram import CountingEnvironment
from dse.sim.network import Network
from dse.sim.results import LAYER_COLUMNS, SimResult
from dse.sim.simulate import Totals, _latency_split, layer_tally

if TYPE_CHECKING:
    from dse.sim.group_plan import Group
    from workloads.graph import Workload

__all__ = ["STAGE_COLUMNS", "collect_stream"]

STAGE_COLUMNS = ("group", "cores", "mac_bits", "array", "layers", "first_layer", "last_layer",
                 "images", "busy_s", "compute_s", "stalled_s", "starved_s", "blocked_s",
                 "busy_fraction", "noc_in_bytes", "noc_out_bytes", "buffer_images",
                 "inbox_bytes")
"""The per-group table: ``busy_s`` from a group's first layer start to its last layer's end,
summed over its images; ``compute_s`` its array time; ``stalled_s`` = busy - compute (DRAM and
network waits, on-/off-load); ``starved_s`` waiting for an input tensor; ``blocked_s`` waiting for
a free slot in a downstream group's input buffer (or, layer by layer, for the previous image);
``busy_fraction`` = busy / makespan; ``buffer_images`` the images the group's input buffer holds
on chip (`dse.sim.group_plan._inboxes`: 0 when its inbound tensors come through DRAM, or it reads
none from other groups) and ``inbox_bytes`` the SRAM they take (all its cores), charged to its
ledger."""

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


def _stage_rows(grps: list[Group], makespan: float) -> pd.DataFrame:
    """The ``stages`` table: one row per group from its tallies (`STAGE_COLUMNS`)."""
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
    return pd.DataFrame(stage_rows, columns=list(STAGE_COLUMNS))


def collect_stream(workload: Workload, acc: Accelerator, batch: int, grps: list[Group],
                   finished: list[float], env: CountingEnvironment, mem: Any,
                   noc: Network | None, em: Any, options: dict[str, Any],
                   lanes: int) -> SimResult:
    """The stream's result from every group's records. ``finished``: each micro-batch's
    completion time; ``lanes``: micro-batches in flight at once in steady state (the groups of
    ``data_parallel``, else 1) - ``images_per_s`` counts the completions after the first
    ``lanes`` over the time they took (the whole batch over the makespan when there are none)."""
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
        stages=_stage_rows(grps, makespan),
        noc_bytes=round(noc.bytes_sent) if noc is not None else 0,
        noc_intervals=tuple(noc.busy_intervals) if noc is not None else ())

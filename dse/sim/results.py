"""`SimResult`: the immutable outcome of one `dse.sim.simulate` run, plus its views.

Scalars for search loops and report rows (`to_dict`), the network latency split
(`latency_breakdown`, ZigZag-style), the per-layer table (`layers`), the per-core busy intervals
(`timeline`) and a Chrome/Perfetto trace (`save_trace`, open it in https://ui.perfetto.dev or
chrome://tracing).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["LATENCY_PARTS", "LAYER_COLUMNS", "TIMELINE_COLUMNS", "Interval", "SimResult"]

LAYER_COLUMNS = (
    "name", "op", "macs", "w_bits", "a_bits", "split", "cores_used", "compute_cycles",
    "ideal_cycles", "stall_cycles", "onload_cycles", "offload_cycles", "total_cycles",
    "dram_bytes", "dram_read_bytes_ifmap", "dram_read_bytes_filter", "dram_write_bytes_ofmap",
    "bound",
    "start_s", "end_s", "stationary", "double_buffered", "input_resident", "output_resident",
    "weights_pinned", "weights_prefetched", "precision_factor", "energy_j",
)
TIMELINE_COLUMNS = ("core", "kind", "layer", "start_s", "end_s", "macs")
LATENCY_PARTS = ("ideal_compute", "precision", "spatial", "vector", "stall", "onload", "offload",
                 "overlap", "idle")
"""The parts of `SimResult.latency_breakdown`, which sum to ``latency_s``. Time when exactly one
node runs goes to that node's current phase: ``onload`` (its first fold step's loads, before any
compute), ``offload`` (its last outputs, after all compute), and in between ``ideal_compute``
(its MACs at one per MAC unit of the whole system per cycle: ``macs / peak_macs_per_s``),
``precision`` (the extra array time of a layer above the MAC precision: ideal x (factor - 1)),
``spatial`` (the rest of its slowest core's stall-free array cycles: fold fill/drain, partly
filled folds, idle or unused cores - the mapping losses), ``vector`` (element-wise work of a
memory-only op) and ``stall`` (waiting for streamed DRAM traffic beyond compute). Time when two or
more nodes run concurrently is ``overlap``; time when none runs is ``idle``."""


@dataclass(frozen=True, slots=True)
class Interval:
    """Cores ``cores`` were busy with ``kind`` ("compute" | "dma") for ``layer`` in [start, end);
    ``macs``: the MACs each of these cores executed in it (0 for DMA)."""

    cores: tuple[int, ...]
    kind: str
    layer: str
    start_s: float
    end_s: float
    macs: float = 0.0


@dataclass(frozen=True, slots=True, eq=False)
class SimResult:
    """Outcome of simulating one workload on one accelerator.

    ``latency_s``: time from the first load to the last store for the whole batch;
    ``images_per_s`` = batch / latency_s; ``utilization`` = useful MACs / (peak MACs per cycle x
    cycles); ``dram_bytes`` (int) split in ``dram_bytes_by_operand`` (weights / inputs / outputs);
    ``sram_accesses``: operand element accesses between SRAM and the arrays plus DRAM fills;
    ``energy_j`` split in ``energy_by_component`` (mac / sram / dram); ``macs`` of the workload;
    ``events``: SimPy events processed. ``layers``: one row per compute node (`LAYER_COLUMNS`).
    ``latency_breakdown``: ``latency_s`` split into `LATENCY_PARTS` (seconds, summing to it).
    """

    workload: str
    accelerator: str
    batch: int
    latency_s: float
    images_per_s: float
    utilization: float
    dram_bytes: int
    dram_bytes_by_operand: dict[str, int]
    sram_accesses: int
    energy_j: float
    energy_by_component: dict[str, float]
    macs: int
    events: int
    layers: pd.DataFrame
    peak_macs_per_s: float = 0.0
    dram_busy_s: float = 0.0
    intervals: tuple[Interval, ...] = field(default=(), repr=False)
    memory_ops: pd.DataFrame | None = field(default=None, repr=False)
    dram_intervals: tuple[tuple[float, float], ...] = field(default=(), repr=False)
    """Intervals in which the DRAM interface was busy (at full bandwidth, fluid model)."""
    options: dict[str, Any] = field(default_factory=dict)
    design: dict[str, Any] = field(default_factory=dict)
    """The accelerator's fields (``dataclasses.asdict``), for report rows."""
    latency_breakdown: dict[str, float] = field(default_factory=dict)
    """``latency_s`` split into `LATENCY_PARTS`, seconds (they sum to ``latency_s``)."""
    dram_bytes_moved: int = 0
    """Bytes that crossed the DRAM interface: ``dram_bytes`` plus burst round-up."""
    counters: dict[str, tuple[tuple[float, float], ...]] = field(default_factory=dict,
                                                                 repr=False)
    """Counter tracks, ``name -> ((time_s, value), ...)`` steps: "DRAM GB/s in use" and, at tile
    fidelity, "buffer bytes/core, cores A-B" (occupancy of one core class's buffers)."""
    makespan_s: float = 0.0
    """Time for the whole batch; equals ``latency_s`` layer by layer. With a multi-core schedule
    (`dse.sim.schedule`) ``latency_s`` is the first image's latency and ``images_per_s`` the
    steady-state rate, and ``makespan_s`` the whole stream."""
    stages: pd.DataFrame | None = field(default=None, repr=False)
    """One row per core group (`dse.sim.schedule.STAGE_COLUMNS`) for a multi-core schedule."""
    noc_bytes: int = 0
    """Bytes injected into the on-chip network between core groups, each counted once."""
    noc_intervals: tuple[tuple[float, float], ...] = field(default=(), repr=False)
    """Intervals in which some on-chip network link was busy."""

    def __post_init__(self) -> None:
        if not self.makespan_s:
            object.__setattr__(self, "makespan_s", self.latency_s)

    # -- views ------------------------------------------------------------------------------------
    def timeline(self) -> pd.DataFrame:
        """Per-core busy intervals: columns core, kind (compute | dma), layer, start_s, end_s and
        macs (MACs that core executed in the interval; their sum is the workload's MACs)."""
        rows = [(c, iv.kind, iv.layer, iv.start_s, iv.end_s, iv.macs)
                for iv in self.intervals for c in iv.cores if iv.end_s > iv.start_s]
        df = pd.DataFrame(rows, columns=list(TIMELINE_COLUMNS))
        return df.sort_values(["core", "start_s", "kind"], kind="stable").reset_index(drop=True)

    def trace_events(self) -> list[dict[str, Any]]:
        """Chrome trace-event records (``ph: "X"`` complete events, microseconds): one process for
        the accelerator, one thread per core, DMA and compute as separate rows (tid 2c / 2c+1),
        and a "DRAM interface" row (tid -1) showing when the shared DRAM was busy; counter
        tracks (``ph: "C"``) for DRAM bandwidth in use and buffer occupancy (`counters`)."""
        ev: list[dict[str, Any]] = [{"name": "process_name", "ph": "M", "pid": 0, "tid": 0,
                                     "args": {"name": self.accelerator or "accelerator"}}]
        cores = sorted({c for iv in self.intervals for c in iv.cores})
        for c in cores:
            for kind, off in (("compute", 1), ("dma", 0)):
                ev.append({"name": "thread_name", "ph": "M", "pid": 0, "tid": 2 * c + off,
                           "args": {"name": f"core {c} {kind}"}})
        for tid, label, cat, spans in ((-1, "DRAM interface", "dram", self.dram_intervals),
                                       (-2, "on-chip network", "noc", self.noc_intervals)):
            if spans:
                ev.append({"name": "thread_name", "ph": "M", "pid": 0, "tid": tid,
                           "args": {"name": label}})
            for start, end in spans:
                ev.append({"name": "busy", "cat": cat, "ph": "X", "pid": 0, "tid": tid,
                           "ts": start * 1e6, "dur": (end - start) * 1e6, "args": {}})
        for track, steps in self.counters.items():
            for t, v in steps:
                ev.append({"name": track, "ph": "C", "pid": 0, "ts": t * 1e6,
                           "args": {"value": v}})
        for row in self.timeline().itertuples(index=False):
            ev.append({"name": row.layer, "cat": row.kind, "ph": "X", "pid": 0,
                       "tid": 2 * int(row.core) + (1 if row.kind == "compute" else 0),
                       "ts": row.start_s * 1e6, "dur": (row.end_s - row.start_s) * 1e6,
                       "args": {"core": int(row.core), **({"macs": float(row.macs)}
                                                          if row.kind == "compute" else {})}})
        return ev

    def save_trace(self, path: str | Path) -> Path:
        """Write the timeline as Chrome/Perfetto trace-event JSON; returns the path."""
        path = Path(path)
        path.write_text(json.dumps({"traceEvents": self.trace_events(),
                                    "displayTimeUnit": "ns"}))
        return path

    def to_dict(self) -> dict[str, Any]:
        """Flat scalar metrics (one report row)."""
        d: dict[str, Any] = {
            "workload": self.workload, "accelerator": self.accelerator, "batch": self.batch,
            "latency_s": self.latency_s, "images_per_s": self.images_per_s,
            "utilization": self.utilization, "dram_bytes": self.dram_bytes,
            "sram_accesses": self.sram_accesses, "energy_j": self.energy_j, "macs": self.macs,
            "events": self.events, "dram_busy_s": self.dram_busy_s,
            "dram_bytes_moved": self.dram_bytes_moved, "makespan_s": self.makespan_s,
            "noc_bytes": self.noc_bytes,
        }
        for k, n_bytes in self.dram_bytes_by_operand.items():
            d[f"dram_{k}_bytes"] = n_bytes
        for k, joules in self.energy_by_component.items():
            d[f"energy_{k}_j"] = joules
        for k, sec in self.latency_breakdown.items():
            d[f"latency_{k}_s"] = sec
        if len(self.layers):
            d["memory_bound_layers"] = int((self.layers["bound"] == "memory").sum())
        for k, v in self.options.items():
            if isinstance(v, str | int | float | bool):
                d[f"opt_{k}"] = v
        for k, v in self.design.items():
            if isinstance(v, str | int | float | bool):
                d[f"acc_{k}"] = v
            elif k == "core_groups":
                d["acc_core_groups"] = len(v)
            elif isinstance(v, tuple):
                d[f"acc_{k}"] = "x".join(str(x) for x in v)
        return d

    @property
    def ops_per_s(self) -> float:
        """Achieved ops/s (2 per MAC)."""
        return 2.0 * self.macs / self.latency_s if self.latency_s > 0 else math.inf

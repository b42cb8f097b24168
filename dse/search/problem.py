"""What a search solves: `Problem` (workload, space, objectives, constraints, settings) and the
names shared by every step (objective directions, samplers, study attribute keys, table columns).

A `Problem` round-trips through JSON: it is stored in the study (user attribute ``qdse.problem``),
so a worker needs nothing but the storage URL and the study name.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna

from dse.search.accuracy import AccuracyModel
from dse.search.accuracy import from_dict as accuracy_from_dict
from dse.search.coverage import AUTO, GRID_MAX_DESIGNS, design_count
from dse.search.space import SearchSpace
from workloads.graph import Workload

__all__ = [
    "METRICS_ATTR",
    "METRIC_COLUMNS",
    "OBJECTIVES",
    "PROBLEM_ATTR",
    "SAMPLERS",
    "WORKER_ATTR",
    "Problem",
    "problem_errors",
    "trial_metrics",
]

OBJECTIVES: dict[str, str] = {
    "images_per_s": "maximize",
    "energy_j": "minimize",
    "area": "minimize",
    "latency_s": "minimize",
}
"""Objective name (a SimResult metric or the design's area in mm^2) -> direction."""

SAMPLERS = ("tpe", "nsga2", "random", "grid")
"""Optuna samplers a study may use; ``"grid"`` enumerates the space (each design once, Optuna's
`GridSampler`). `run` and the CLI also take ``"auto"`` (`dse.search.coverage.resolve_sampler`):
grid for a space no larger than the trial budget, else NSGA-II / TPE."""
PROBLEM_ATTR = "qdse.problem"
METRICS_ATTR = "qdse.metrics"
"""Where studies written before each metric had its own user attribute keep them (one dict)."""
WORKER_ATTR = "qdse.worker"
METRIC_COLUMNS = ("images_per_s", "energy_j", "area", "area_budget", "accuracy_proxy",
                  "accuracy_model", "min_accuracy", "feasible", "latency_s", "utilization",
                  "dram_bytes", "cores", "rows", "cols", "mac_bits", "sram_kib", "dram_gbps",
                  "formulation", "schedule", "groups", "micro_batch", "stage_split",
                  "edge_cores", "edge_mac_bits", "reason")
"""The trials.csv metric columns; each is a trial user attribute of its own (dashboards such as
optuna-dashboard list them by name)."""


def trial_metrics(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The metrics a trial recorded: its user attributes named in `METRIC_COLUMNS` (over the
    one-dict ``qdse.metrics`` attribute of studies written by older qdse versions)."""
    attrs = trial.user_attrs
    return {**attrs.get(METRICS_ATTR, {}), **{k: attrs[k] for k in METRIC_COLUMNS if k in attrs}}


@dataclass(frozen=True)
class Problem:
    """What to search: the workload, the space, objectives, constraint and fixed system values."""

    workload: Workload
    space: SearchSpace
    objectives: tuple[str, ...]
    area_budget: float
    dram_gbps: float = 32.0
    accuracy: AccuracyModel | None = None
    min_accuracy: float | None = None
    sampler: str = "tpe"
    seed: int = 0
    batch: int = 1
    simulate_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = problem_errors(self.space, self.objectives, self.area_budget,
                                  dram_gbps=self.dram_gbps, sampler=self.sampler,
                                  batch=self.batch, min_accuracy=self.min_accuracy,
                                  has_accuracy=self.accuracy is not None)
        clash = sorted(set(self.simulate_options) & {"schedule", "groups", "stages",
                                                     "micro_batch"})
        if clash:
            problems.append(f"simulate_options={dict(self.simulate_options)!r} is not allowed "
                            f"with {', '.join(clash)}; the space sets them (SearchSpace.schedules, "
                            "SearchSpace.groups, SearchSpace.micro_batches)")
        if self.sampler == AUTO:
            problems.append(f"sampler={self.sampler!r} is not allowed in a Problem; resolve it "
                            "first (dse.search.coverage.resolve_sampler), as run does")
        elif self.sampler == "grid" and not problems:
            n = design_count(self.space, self.workload)
            if n > GRID_MAX_DESIGNS:
                problems.append(f"sampler='grid' is not allowed for a space of {n:.4g} designs; "
                                f"expected at most {GRID_MAX_DESIGNS} (sample larger spaces "
                                "with tpe, nsga2 or random)")
        if problems:
            raise ValueError("invalid search problem: " + "; ".join(problems))

    @property
    def accuracy_label(self) -> str:
        """What the ``accuracy_proxy`` column holds: the model's label, or "none"."""
        return self.accuracy.label if self.accuracy is not None else "none"

    @property
    def directions(self) -> list[optuna.study.StudyDirection]:
        return [optuna.study.StudyDirection.MAXIMIZE if OBJECTIVES[o] == "maximize"
                else optuna.study.StudyDirection.MINIMIZE for o in self.objectives]

    def to_json(self) -> str:
        return json.dumps({
            "format": "qdse.search.problem", "version": 1,
            "workload": self.workload.to_json(), "space": self.space.to_dict(),
            "objectives": list(self.objectives), "area_budget": self.area_budget,
            "dram_gbps": _encode_float(self.dram_gbps),
            "accuracy": self.accuracy.to_dict() if self.accuracy is not None else None,
            "min_accuracy": self.min_accuracy, "sampler": self.sampler, "seed": self.seed,
            "batch": self.batch, "simulate_options": dict(self.simulate_options)})

    @classmethod
    def from_json(cls, text: str) -> Problem:
        d = json.loads(text)
        if d.get("format") != "qdse.search.problem":
            raise ValueError(f"not a qdse search problem: format={d.get('format')!r}")
        wl = Workload.from_json(d["workload"])
        acc = accuracy_from_dict(d["accuracy"], wl) if d.get("accuracy") else None
        return cls(wl, SearchSpace.from_dict(d["space"]),
                   tuple(d["objectives"]), float(d["area_budget"]), float(d["dram_gbps"]),
                   acc, d.get("min_accuracy"), d.get("sampler", "tpe"), int(d.get("seed", 0)),
                   int(d.get("batch", 1)), dict(d.get("simulate_options") or {}))


def problem_errors(space: SearchSpace, objectives: Sequence[str], area_budget: float, *,
                   dram_gbps: float = 32.0, sampler: str = "tpe", batch: int = 1,
                   min_accuracy: float | None = None, has_accuracy: bool = True) -> list[str]:
    """Every problem with a search problem's settings, each naming the field, value and rule.

    Needs no workload, so the CLI checks its input before the (slow, torch) extraction. Beyond
    each field's own rule, the space must hold at least one design within the area budget:
    otherwise every trial would be pruned.
    """
    problems: list[str] = []
    objs = tuple(objectives)
    if not objs or not all(o in OBJECTIVES for o in objs) or len(set(objs)) != len(objs):
        problems.append(f"objectives={objs!r} is not allowed; expected distinct names from "
                        f"{', '.join(OBJECTIVES)}")
    budget_ok = (isinstance(area_budget, int | float) and not isinstance(area_budget, bool)
                 and math.isfinite(area_budget) and area_budget > 0)
    if not budget_ok:
        problems.append(f"area_budget={area_budget!r} is not allowed; expected mm^2 > 0")
    bw_ok = (isinstance(dram_gbps, int | float) and not isinstance(dram_gbps, bool)
             and dram_gbps > 0)
    if not bw_ok:
        problems.append(f"dram_gbps={dram_gbps!r} is not allowed; expected GB/s > 0 "
                        "(inf for unlimited)")
    if sampler not in (*SAMPLERS, AUTO):
        problems.append(f"sampler={sampler!r} is not allowed; expected one of "
                        f"{', '.join((*SAMPLERS, AUTO))}")
    if min_accuracy is not None:
        if not has_accuracy:
            problems.append(f"min_accuracy={min_accuracy!r} needs an accuracy model; pass "
                            "accuracy=")
        elif isinstance(min_accuracy, bool) or not isinstance(min_accuracy, int | float) \
                or math.isnan(min_accuracy):
            problems.append(f"min_accuracy={min_accuracy!r} is not allowed; expected a number "
                            "(proxy: SQNR dB; measured: top-1 in 0..1) or None")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        problems.append(f"batch={batch!r} is not allowed; expected an integer >= 1")
    if budget_ok and bw_ok:
        area, what = space.smallest_design(float(dram_gbps))
        if area > area_budget:
            edge = ", edge cores, edge MAC bits" if min(space.edge_cores) > 0 else ""
            smaller = (f"lower total_sram_kib or add smaller choices (MAC bits, array, cores{edge})"
                       if space.total_sram is not None
                       else f"add smaller choices (MAC bits, array, SRAM, cores{edge})")
            problems.append(f"area_budget={area_budget!r} is not allowed for this space: its "
                            f"smallest design ({what}) needs {area:.4g} mm^2; raise the budget "
                            f"or {smaller}")
    return problems


def _encode_float(x: float) -> float | str:
    return "inf" if math.isinf(x) else float(x)


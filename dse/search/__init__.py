"""Optuna design-space search over accelerators and per-layer bit widths, local or distributed.

The pipeline of one trial, one line per step:

    design  = space.suggest(trial, workload)          # cores, array, MAC bits, SRAM, layer bits
    area    = design.accelerator.area                 # over the budget -> pruned (infeasible)
    score   = accuracy(design.layer_bits)             # proxy or measured; constraint >= min
    result  = dse.simulate(apply_layer_bits(workload, bits), design.accelerator)
    return    [images_per_s, energy_j, area][objectives]

Everything a worker needs (workload JSON, space, objectives, accuracy table, budget) is stored in
the study itself (user attribute ``qdse.problem``), so ``python -m dse.search worker --storage URL
--study NAME --trials N`` runs on any machine that reaches the storage, without torch and without
the model: extraction happens once, in the process that creates the study.

Storage: ``storage=None`` with ``out`` = an Optuna journal file ``out/study.journal`` (file lock,
safe for several processes on one machine); any Optuna URL (``sqlite:///...``,
``postgresql://...``) = Optuna's RDB storage (with heartbeats, so a killed worker's trial is
failed and not left RUNNING).

Outputs in ``out`` (rewritten atomically after every finished trial): ``trials.csv`` (one row per
trial), ``pareto.csv`` (the non-dominated feasible designs), and at the end ``pareto.png``,
``summary.txt`` (the SRAM formulation, how much of the space was evaluated, the best design and
its edge-of-space warnings), ``best.json``, ``best_layers.csv`` (the best design's full
SimResult) and ``best_trace.json`` (its schedule as a Chrome/Perfetto trace).

A space no larger than the trial budget is enumerated (``sampler="auto"``: Optuna's GridSampler,
each design once) rather than sampled; see `dse.search.coverage`.

The modules, in pipeline order:

    workload.py   prepare_workload (the one torch step) and the torch-free Workload import
    problem.py    Problem, problem_errors, OBJECTIVES, SAMPLERS, METRIC_COLUMNS
    coverage.py   design_count, grid, resolve_sampler ("auto"), edge_notes, summary lines
    storage.py    storage URLs, journal/SQLite/PostgreSQL, opening and resuming studies
    objective.py  one trial (make_objective) and the constrained samplers
    reports.py    trials.csv, pareto.csv, pareto.png, best.json/best_layers.csv/best_trace.json
    driver.py     run (local jobs) and worker (join a stored study)
    cli.py        python -m dse.search [worker] (run through __main__.py)
"""

from __future__ import annotations

import importlib
from typing import Any

# Lazy re-exports: `dse.search.space` and `dse.search.accuracy` are used by studies without optuna,
# so importing the package must not import the driver (optuna) until a name from it is used.
_EXPORTS = {
    "main": "dse.search.cli", "run": "dse.search.driver", "worker": "dse.search.driver",
    "make_objective": "dse.search.objective", "METRIC_COLUMNS": "dse.search.problem",
    "OBJECTIVES": "dse.search.problem", "SAMPLERS": "dse.search.problem",
    "Problem": "dse.search.problem", "problem_errors": "dse.search.problem",
    "best_trial": "dse.search.reports", "pareto_front": "dse.search.reports",
    "plot_pareto": "dse.search.reports", "trials_frame": "dse.search.reports",
    "write_reports": "dse.search.reports", "write_tables": "dse.search.reports",
    "make_storage": "dse.search.storage", "prepare_workload": "dse.search.workload",
    "design_count": "dse.search.coverage", "edge_notes": "dse.search.coverage",
    "resolve_sampler": "dse.search.coverage", "write_summary": "dse.search.reports",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dse.search' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

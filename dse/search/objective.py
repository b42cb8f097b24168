"""One trial: sample a design, prune it when over the area budget, score its accuracy, simulate
it, and record every metric on the trial (see the steps in `dse.search`); plus the sampler
that proposes the designs, with the area and accuracy constraints.
"""

from __future__ import annotations

import math
import os
import socket
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna

from dse.search.problem import WORKER_ATTR, Problem, _encode_float, trial_metrics
from dse.search.space import apply_layer_bits

__all__ = ["make_objective"]

_HAS_SET_CONSTRAINT = hasattr(optuna.Trial, "set_constraint")  # optuna >= 5


def _constraints(trial: optuna.trial.FrozenTrial) -> Sequence[float]:
    """Optuna constraint values (feasible when all <= 0): area over budget, accuracy shortfall."""
    m = trial_metrics(trial)
    return (m.get("area", 0.0) - m.get("area_budget", 0.0) if "area" in m else 1.0,
            m.get("min_accuracy", -math.inf) - m.get("accuracy_proxy", math.inf)
            if "min_accuracy" in m else 0.0)


def _set_constraints(trial: optuna.Trial, area_excess_mm2: float, shortfall: float) -> None:
    if _HAS_SET_CONSTRAINT:  # older optuna reads them through constraints_func instead
        trial.set_constraint("area_excess_mm2", area_excess_mm2)
        trial.set_constraint("accuracy_shortfall", shortfall)


def make_objective(problem: Problem) -> Callable[[optuna.Trial], Sequence[float]]:
    """The Optuna objective of ``problem`` (see the module docstring for the steps)."""
    from dse.sim import simulate

    def objective(trial: optuna.Trial) -> Sequence[float]:
        trial.set_user_attr(WORKER_ATTR, {"host": socket.gethostname(), "pid": os.getpid()})
        budget = problem.area_budget
        design = problem.space.suggest(trial, problem.workload, area_budget=budget,
                                       dram_gbps=problem.dram_gbps, batch=problem.batch)
        # the design as sampled, recorded before any pruning: every row says what was tried
        attrs: dict[str, Any] = {"area_budget": budget, "dram_gbps": _encode_float(
            problem.dram_gbps), "formulation": problem.space.formulation,
            **_design_attrs(trial.params)}
        if problem.accuracy is not None:  # which model fills accuracy_proxy, on every row
            attrs["accuracy_model"] = problem.accuracy.label
            if problem.min_accuracy is not None:
                attrs["min_accuracy"] = problem.min_accuracy
        if design is None:  # not even one core of this kind fits: infeasible
            edge = int(trial.params.get("edge_cores", problem.space.edge_cores[0]))
            attrs.update(cores=0, feasible=False, reason="no core fits budget" if not edge
                         else f"no body core fits beside the {edge}-core edge group")
            _set_attrs(trial, attrs)
            _set_constraints(trial, 1.0, 0.0)
            raise optuna.TrialPruned("no core of this design fits the area budget")
        acc_hw = design.accelerator
        area = float(acc_hw.area)
        attrs.update(area=area, cores=acc_hw.cores, rows=acc_hw.rows, cols=acc_hw.cols,
                     mac_bits=f"{acc_hw.mac_bits[0]}x{acc_hw.mac_bits[1]}",
                     sram_kib=acc_hw.sram_kib, schedule=design.schedule,
                     groups=design.groups or 1, micro_batch=design.micro_batch,
                     stage_split=design.stage_split, edge_cores=design.edge_cores,
                     edge_mac_bits=_pair_text(design.edge_mac_bits))
        if design.reason:  # a combination of choices that cannot run (SearchSpace.edge_cores)
            attrs.update(feasible=False, reason=design.reason[:300])
            _set_attrs(trial, attrs)
            _set_constraints(trial, 1.0, 0.0)
            raise optuna.TrialPruned(design.reason)
        if area > budget:  # checked first: no accuracy evaluation (maybe costly) is wasted
            attrs.update(feasible=False, reason="over area budget")
            _set_attrs(trial, attrs)
            _set_constraints(trial, area - budget, 0.0)
            raise optuna.TrialPruned(f"area {area:.2f} mm^2 > budget {budget:.2f} mm^2")
        shortfall = 0.0
        if problem.accuracy is not None:
            score = float(problem.accuracy(design.layer_bits))
            attrs["accuracy_proxy"] = score
            if problem.min_accuracy is not None:
                shortfall = problem.min_accuracy - score if math.isfinite(score) else -1.0
        _set_constraints(trial, area - budget, shortfall)
        attrs["feasible"] = shortfall <= 0
        wl = apply_layer_bits(problem.workload, design.layer_bits)
        try:
            res = simulate(wl, acc_hw, batch=problem.batch, **design.simulate_kwargs(),
                           **dict(problem.simulate_options))
        except ValueError as e:  # e.g. SRAM too small for the smallest tile: the trial FAILs
            attrs.update(feasible=False, reason=f"simulate: {e}"[:300])
            _set_attrs(trial, attrs)
            raise
        attrs.update(images_per_s=float(res.images_per_s), energy_j=float(res.energy_j),
                     latency_s=float(res.latency_s), utilization=float(res.utilization),
                     dram_bytes=int(res.dram_bytes))
        _set_attrs(trial, attrs)
        return [float(attrs[o]) for o in problem.objectives]

    return objective


def _design_attrs(params: Mapping[str, Any]) -> dict[str, Any]:
    """The hardware columns of trials.csv from a trial's parameters (`SearchSpace.suggest`'s
    names): ``mac_bits``, ``rows``/``cols`` (from ``array``), ``sram_kib``, ``cores`` (when
    sampled). Only what the trial has sampled so far."""
    from dse.search.space import decode_pair

    out: dict[str, Any] = {}
    for name, kind in _COLUMNS:
        if name not in params:
            continue
        if name == "array":
            out["rows"], out["cols"] = decode_pair(params["array"])
        else:
            out[name] = kind(params[name])
    if "edge_mac_bits" in params and int(params.get("edge_cores", 1)) > 0:
        out["edge_mac_bits"] = str(params["edge_mac_bits"])
    return out


_COLUMNS: tuple[tuple[str, type], ...] = (
    ("mac_bits", str), ("array", tuple), ("sram_kib", float), ("cores", int), ("schedule", str),
    ("groups", int), ("micro_batch", int), ("stage_split", str), ("edge_cores", int))
"""Sampled parameters in trials.csv's column order, each with its type (``array`` is split
into ``rows`` and ``cols``)."""


def _pair_text(pair: tuple[int, int] | None) -> str:
    """``(16, 16) -> "16x16"``; None (no edge group) -> ""."""
    return "" if pair is None else f"{pair[0]}x{pair[1]}"


def _set_attrs(trial: optuna.Trial, attrs: Mapping[str, Any]) -> None:
    # each metric its own attribute, named as its trials.csv column (dashboards show them by
    # name); journal appends skip the fsync by default, so ~15 small writes cost ~ms per trial
    for k, v in attrs.items():
        trial.set_user_attr(k, v)


def _sampler(problem: Problem, worker_index: int) -> optuna.samplers.BaseSampler:
    # distinct, reproducible streams per worker (numpy seeds must stay below 2**32)
    seed = (problem.seed + 1000 * worker_index) % 2**31
    cf = None if _HAS_SET_CONSTRAINT else _constraints
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if problem.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, constraints_func=cf,
                                                 population_size=20)
        if problem.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if problem.sampler == "grid":  # one shuffled order in every worker: trial n runs design
            from dse.search.coverage import grid  # n (Optuna's GridSampler), so no repeats

            return optuna.samplers.GridSampler(grid(problem.space, problem.workload),
                                               seed=problem.seed % 2**31)
        return optuna.samplers.TPESampler(seed=seed, constraints_func=cf,
                                          multivariate=True, n_startup_trials=10)


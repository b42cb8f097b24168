"""The outputs of a search in ``out``: trials.csv and pareto.csv (rewritten atomically after every
finished trial, by `_TableWriter`), and at the end pareto.png, best.json, best_layers.csv (the
best design's full SimResult) and best_trace.json (its schedule as a Chrome/Perfetto trace).
Reads the study; simulates only the best design again, to write its full result.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from dse.search.objective import _design_attrs
from dse.search.problem import METRIC_COLUMNS, METRICS_ATTR, OBJECTIVES, Problem
from dse.search.space import apply_layer_bits

__all__ = ["best_trial", "pareto_front", "plot_pareto", "trials_frame", "write_reports",
           "write_tables"]

# one logger for the package: records read "dse.search: ..." whichever module logs them
log = logging.getLogger("dse.search")


_PARAM_SKIP = ("mac_bits", "cores", "sram_kib", "array")  # in the design columns instead
_FINISHED = ("COMPLETE", "PRUNED", "FAIL")


def _trial_row(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """One trials.csv row: number, state, metrics (METRIC_COLUMNS), per-layer bits, duration."""
    row: dict[str, Any] = {"number": t.number, "state": t.state.name}
    # a trial that died before recording its metrics still shows its sampled design
    m = {**_design_attrs(t.params), **t.user_attrs.get(METRICS_ATTR, {})}
    for k in METRIC_COLUMNS:
        v = m.get(k, np.nan)
        row[k] = float(v) if k == "dram_gbps" and isinstance(v, str) else v
    for k, v in t.params.items():
        if k not in _PARAM_SKIP:
            row[k] = v
    row["duration_s"] = t.duration.total_seconds() if t.duration is not None else np.nan
    return row


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    cols = ["number", "state", *METRIC_COLUMNS]
    seen = set(cols)
    for r in rows:
        for k in r:
            if k not in seen and k != "duration_s":
                seen.add(k)
                cols.append(k)
    return [*cols, "duration_s"]


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, metrics (see METRIC_COLUMNS), per-layer bits."""
    rows = sorted((_trial_row(t) for t in study.get_trials(deepcopy=False)),
                  key=lambda r: r["number"])
    return pd.DataFrame(rows, columns=_columns(rows))


class _TableWriter:
    """Optuna callback: rewrite trials.csv and pareto.csv after every finished trial.

    Incremental, so a long search does not slow down: rows of finished trials never change and
    are built once; the Pareto front is updated with each newly finished feasible trial (a new
    point drops the members it dominates and joins unless a member dominates it - the same set
    `pareto_front` computes, which the tests check). Files are written with the csv module and
    renamed into place (atomic).
    """

    def __init__(self, out: Path, objectives: Sequence[str]) -> None:
        self.out = out
        self.sign = np.array([-1.0 if OBJECTIVES[o] == "maximize" else 1.0 for o in objectives])
        self.objectives = list(objectives)
        self.rows: dict[int, dict[str, Any]] = {}
        self.front: dict[int, np.ndarray] = {}  # trial number -> cost vector (minimisation)
        self.cols: list[str] = []
        self.rendered: dict[int, list[Any]] = {}  # finished rows as CSV cells, for self.cols

    def __call__(self, study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        for t in study.get_trials(deepcopy=False):
            if t.number in self.rows and self.rows[t.number]["state"] in _FINISHED:
                continue
            row = _trial_row(t)
            self.rows[t.number] = row
            if row["state"] == "COMPLETE" and row.get("feasible") is True:
                self._add_to_front(t.number, row)
        rows = [self.rows[n] for n in sorted(self.rows)]
        cols = _columns(rows)
        if cols != self.cols:  # a new column (first trial of a new layer param): re-render all
            self.cols, self.rendered = cols, {}
        lines = [self._render(r) for r in rows]
        self._write(self.out / "trials.csv", cols, lines)
        self._write(self.out / "pareto.csv", cols,
                    [self._render(self.rows[n]) for n in sorted(self.front)])

    def _render(self, row: Mapping[str, Any]) -> list[Any]:
        n = row["number"]
        if n in self.rendered:
            return self.rendered[n]
        line = ["" if (v := row.get(c)) is None or (isinstance(v, float) and math.isnan(v))
                else v for c in self.cols]
        if row["state"] in _FINISHED:
            self.rendered[n] = line
        return line

    def _add_to_front(self, number: int, row: Mapping[str, Any]) -> None:
        try:
            cost = self.sign * np.array([float(row[o]) for o in self.objectives])
        except (KeyError, TypeError, ValueError):
            return
        if np.isnan(cost).any():
            return
        for c in self.front.values():
            if (c <= cost).all() and (c < cost).any():
                return  # dominated by a member
        for n in [n for n, c in self.front.items() if (cost <= c).all() and (cost < c).any()]:
            del self.front[n]
        self.front[number] = cost

    @staticmethod
    def _write(path: Path, cols: list[str], lines: Sequence[list[Any]]) -> None:
        import csv

        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with tmp.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            w.writerows(lines)
        os.replace(tmp, path)


def pareto_front(df: pd.DataFrame, objectives: Mapping[str, str] | Sequence[str]) -> pd.DataFrame:
    """Feasible COMPLETE rows that no other such row dominates (ties: both kept).

    ``objectives``: names (directions from OBJECTIVES) or a name -> "maximize"/"minimize" map.
    Row a dominates b when a is no worse in every objective and strictly better in one.
    """
    dirs = dict(objectives) if isinstance(objectives, Mapping) else {
        o: OBJECTIVES[o] for o in objectives}
    bad = {k: v for k, v in dirs.items() if v not in ("maximize", "minimize") or k not in df}
    if bad:
        raise ValueError(f"objectives {bad} are not allowed; expected columns of the frame with "
                         "direction 'maximize' or 'minimize'")
    ok = df[(df["state"] == "COMPLETE") & (df["feasible"].astype("boolean").fillna(False))]
    ok = ok.dropna(subset=list(dirs))
    if ok.empty:
        return ok.copy()
    # minimisation form: (n, m) array of costs
    cost = np.column_stack([(-1.0 if d == "maximize" else 1.0) * ok[k].to_numpy(dtype=float)
                            for k, d in dirs.items()])
    le = (cost[:, None, :] <= cost[None, :, :]).all(axis=2)  # le[i, j]: i no worse than j
    lt = (cost[:, None, :] < cost[None, :, :]).any(axis=2)
    dominated = (le & lt).any(axis=0)
    return ok[~dominated].copy()


def _atomic_csv(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)


def write_tables(study: optuna.Study, out: Path, objectives: Sequence[str]) -> pd.DataFrame:
    """Rewrite out/trials.csv and out/pareto.csv atomically; returns the trials frame."""
    df = trials_frame(study)
    _atomic_csv(df, out / "trials.csv")
    _atomic_csv(pareto_front(df, objectives), out / "pareto.csv")
    return df


def plot_pareto(df: pd.DataFrame, objectives: Sequence[str], path: Path, title: str = "") -> None:
    """Scatter of every finished design (x: first objective, y: second objective or area)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = objectives[0]
    y = objectives[1] if len(objectives) > 1 else ("area" if x != "area" else "images_per_s")
    front = pareto_front(df, {x: OBJECTIVES[x], y: OBJECTIVES[y]})
    done = df[df["state"] == "COMPLETE"]
    feas = done["feasible"].astype("boolean").fillna(False)
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    ax.scatter(done.loc[~feas, x], done.loc[~feas, y], s=10, c="0.75",
               label="infeasible (below the accuracy floor)")
    ax.scatter(done.loc[feas, x], done.loc[feas, y], s=12, c="tab:blue", label="feasible")
    f = front.sort_values(x)
    ax.plot(f[x], f[y], "o-", c="tab:red", ms=5, label="Pareto front")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if (done[y] > 0).all() and done[y].max() > 20 * max(done[y].min(), 1e-30):
        ax.set_yscale("log")
    sub = _accuracy_caption(df)
    ax.set_title(f"{title}\n{sub}" if title else sub, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def _accuracy_caption(df: pd.DataFrame) -> str:
    """Which model filled the ``accuracy_proxy`` column, and the floor, for plot titles."""
    acc = df["accuracy_model"].dropna() if "accuracy_model" in df else pd.Series(dtype=object)
    if not len(acc):
        return "no accuracy model"
    floor = df["min_accuracy"].dropna() if "min_accuracy" in df else pd.Series(dtype=float)
    text = f"accuracy_proxy column = {acc.iloc[0]}"
    return text + (f"\nconstraint: accuracy_proxy >= {float(floor.iloc[0]):.4g}" if len(floor)
                   else "\nno accuracy constraint")


def best_trial(study: optuna.Study, problem: Problem) -> optuna.trial.FrozenTrial | None:
    """Best feasible trial by the first objective (ties: lower trial number)."""
    df = trials_frame(study)
    front = pareto_front(df, problem.objectives)
    if front.empty:
        return None
    o = problem.objectives[0]
    front = front.sort_values([o, "number"], ascending=[OBJECTIVES[o] == "minimize", True])
    return study.trials[int(front["number"].iloc[0])]


def write_reports(study: optuna.Study, problem: Problem, out: str | Path) -> pd.DataFrame:
    """Final outputs: tables, pareto.png, best.json and best_layers.csv (full SimResult)."""
    from dse.sim import simulate

    out = Path(out)
    df = write_tables(study, out, problem.objectives)
    if (df["state"] == "COMPLETE").any():
        plot_pareto(df, problem.objectives, out / "pareto.png", title=problem.workload.name)
    best = best_trial(study, problem)
    if best is None:
        log.warning("no feasible design among %d trials; no best.json", len(df))
        return df
    # re-create the design from the stored parameters and simulate it again (deterministic)
    fixed = optuna.trial.FixedTrial(best.params)
    design = problem.space.suggest(fixed, problem.workload, area_budget=problem.area_budget,
                                   dram_gbps=problem.dram_gbps)
    assert design is not None  # it completed, so it fitted
    res = simulate(apply_layer_bits(problem.workload, design.layer_bits), design.accelerator,
                   batch=problem.batch, **dict(problem.simulate_options))
    acc = {k: (list(v) if isinstance(v, tuple) else v)
           for k, v in dataclasses.asdict(design.accelerator).items()}
    doc = {"trial": best.number, "objectives": list(problem.objectives),
           "values": best.values, "area": design.accelerator.area,
           "area_budget": problem.area_budget, "accelerator": acc,
           "layer_bits": {k: list(v) for k, v in design.layer_bits.items()},
           "accuracy_proxy": best.user_attrs.get(METRICS_ATTR, {}).get("accuracy_proxy"),
           "accuracy_model": best.user_attrs.get(METRICS_ATTR, {}).get("accuracy_model"),
           "metrics": {k: _jsonable(v) for k, v in res.to_dict().items()}}
    tmp = out / f".best.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(doc, indent=1, default=str))
    os.replace(tmp, out / "best.json")
    _atomic_csv(res.layers, out / "best_layers.csv")
    res.save_trace(out / "best_trace.json")  # Chrome/Perfetto trace of the best schedule
    return df


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, np.generic):
        return v.item()
    return v


"""The outputs of a search in ``out``: trials.csv and pareto.csv (kept current after every finished
trial by `_TableWriter`: a row appended, the front rewritten when it changes), and at the end
pareto.png, summary.txt (the formulation, how much of the space was evaluated, the best design and
a warning per parameter of it on the edge of the space), best.json (the same facts with the best
design), best_layers.csv (the best design's full SimResult) and best_trace.json (its schedule as a
Chrome/Perfetto trace).
Reads the study; simulates only the best design again, to write its full result.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
import os
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from dse.search.coverage import design_count, distinct_evaluated, edge_notes, summary_lines
from dse.search.objective import _design_attrs
from dse.search.problem import (
    METRIC_COLUMNS,
    OBJECTIVES,
    WORKER_ATTR,
    Problem,
    trial_metrics,
)
from dse.search.space import apply_layer_bits
from dse.study.atomic import atomic_create, atomic_write, atomic_write_text, remove_stale_temps

__all__ = ["best_trial", "pareto_front", "plot_pareto", "table_columns", "trials_frame",
           "write_reports", "write_summary", "write_tables"]

# one logger for the package: records read "dse.search: ..." whichever module logs them
log = logging.getLogger("dse.search")


# in the design columns instead
_PARAM_SKIP = ("mac_bits", "cores", "sram_kib", "array", "schedule", "groups", "micro_batch",
               "stage_split", "edge_cores", "edge_mac_bits")
_FINISHED = ("COMPLETE", "PRUNED", "FAIL")


def _trial_row(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """One trials.csv row: number, state, metrics (METRIC_COLUMNS), per-layer bits, duration."""
    row: dict[str, Any] = {"number": t.number, "state": t.state.name}
    # a trial that died before recording its metrics still shows its sampled design
    m = {**_design_attrs(t.params), **trial_metrics(t)}
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


def table_columns(problem: Problem) -> list[str]:
    """The trials.csv header of ``problem``: number, state, METRIC_COLUMNS, the per-layer bits
    (``w:<layer>``, ``a:<layer>`` of every searched layer), duration_s - as `trials_frame`."""
    layers = problem.space.searched_layers(problem.workload)
    return _columns([{f"{k}:{name}": None for name in layers for k in ("w", "a")}])


_STALE_TEMP_S = 60.0
"""Least age of a dead process's temporary file before a search removes it: workers on other
machines may share the folder, and their pids mean nothing here, but no write lasts a minute."""

_FRONT_EVERY_S = 0.5
"""Least time between two rewrites of pareto.csv during a search (`_TableWriter`)."""


class _TableWriter:
    """Optuna callback keeping trials.csv and pareto.csv current while a search runs, at a cost
    per trial that does not grow with the study (rewriting both files in full after every trial
    made a 2000-trial search twice as slow by its end; benchmarks/bench_search_long.py):

    * trials.csv: each finished trial of this process (or one recording no process) is appended
      as one row, in one ``O_APPEND`` write, so several processes on one folder each append their
      own trials and every row appears once. The header is fixed by `start` (``columns``, from
      `table_columns`); rows come in finishing order until `write_tables` sorts them at the end.
    * pareto.csv: the front takes every newly finished feasible trial of any process (a new point
      drops the members it dominates and joins unless a member dominates it - the set
      `pareto_front` computes, which the tests check) and is rewritten atomically when it has
      changed, at most every `_FRONT_EVERY_S` seconds (a front of hundreds of designs changes
      with many trials), and by `flush` when the optimisation ends.

    Trials still running are remembered and looked at again; finished ones never.
    """

    def __init__(self, out: Path, objectives: Sequence[str],
                 columns: Sequence[str] | None = None) -> None:
        self.out = out
        self.sign = np.array([-1.0 if OBJECTIVES[o] == "maximize" else 1.0 for o in objectives])
        self.objectives = list(objectives)
        self.cols: list[str] | None = list(columns) if columns is not None else None
        self.seen = 0  # trials[:seen] have been looked at
        self.pending: set[int] = set()  # ... and these of them were not finished then
        self.front: dict[int, np.ndarray] = {}  # trial number -> cost vector (minimisation)
        self.front_rows: dict[int, dict[str, Any]] = {}
        self.front_lines: dict[int, list[Any]] = {}  # members as CSV cells
        self.front_dirty, self.front_written_s = False, -math.inf
        self.me = {"host": socket.gethostname(), "pid": os.getpid()}

    def start(self, study: optuna.Study, *, rewrite: bool) -> None:
        """Remove the temporary files that processes killed mid-write left in the folder (only
        ``.<name>.<pid>.<random>.tmp`` of pids no longer running, as the study runner does, and
        older than `_STALE_TEMP_S`: `remove_stale_temps`), then write trials.csv afresh (header
        and every finished trial so far) when ``rewrite`` (the process that opened the study,
        before its workers start) or when the file is missing or has another header (another
        study in this folder, a torn or edited file)."""
        remove_stale_temps(self.out, older_than_s=_STALE_TEMP_S)
        path = self.out / "trials.csv"
        if self.cols is None:
            self.cols = _columns([_trial_row(t) for t in study.get_trials(deepcopy=False)])
        if not rewrite and _header(path) == self.cols:
            return
        rows = sorted((_trial_row(t) for t in study.get_trials(deepcopy=False)
                       if t.state.name in _FINISHED), key=lambda r: r["number"])
        self._replace(path, [self._render(r) for r in rows])

    def __call__(self, study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        trials = study.get_trials(deepcopy=False)  # Optuna numbers them 0..n-1, in order
        recheck = [trials[n] for n in sorted(self.pending) if n < len(trials)]
        fresh, self.seen = trials[self.seen:], len(trials)
        mine: list[dict[str, Any]] = []
        changed = False
        for t in (*recheck, *fresh):
            if t.state.name not in _FINISHED:
                self.pending.add(t.number)
                continue
            self.pending.discard(t.number)
            row = _trial_row(t)
            who = t.user_attrs.get(WORKER_ATTR)
            if not who or who == self.me:
                mine.append(row)
            if row["state"] == "COMPLETE" and row.get("feasible") is True:
                changed |= self._add_to_front(t.number, row)
        if self.cols is None:  # no `start` (a caller of its own): header from the first rows
            self.cols = _columns(mine or [{}])
        self._append(self.out / "trials.csv", mine)
        self.front_dirty |= changed
        if self.front_dirty and (time.monotonic() - self.front_written_s >= _FRONT_EVERY_S
                                 or not (self.out / "pareto.csv").exists()):
            self.flush()

    def flush(self) -> None:
        """Rewrite pareto.csv now if the front changed since it was last written."""
        if not self.front_dirty and (self.out / "pareto.csv").exists():
            return
        lines = self.front_lines
        for n in self.front:
            if n not in lines:  # each member rendered once: finished rows never change
                lines[n] = self._render(self.front_rows[n])
        self._replace(self.out / "pareto.csv", [lines[n] for n in sorted(self.front)])
        self.front_dirty, self.front_written_s = False, time.monotonic()

    def _render(self, row: Mapping[str, Any]) -> list[Any]:
        assert self.cols is not None
        return ["" if (v := row.get(c)) is None or (isinstance(v, float) and math.isnan(v))
                else v for c in self.cols]

    def _add_to_front(self, number: int, row: Mapping[str, Any]) -> bool:
        """Add trial ``number`` to the front; True when the front changed."""
        try:
            cost = self.sign * np.array([float(row[o]) for o in self.objectives])
        except (KeyError, TypeError, ValueError):
            return False
        if np.isnan(cost).any():
            return False
        numbers = list(self.front)
        if numbers:  # one vectorised test against every member (the front holds hundreds)
            costs = np.array([self.front[n] for n in numbers])
            if ((costs <= cost).all(axis=1) & (costs < cost).any(axis=1)).any():
                return False  # dominated by a member
            beaten = (cost <= costs).all(axis=1) & (cost < costs).any(axis=1)
            for n in np.asarray(numbers)[beaten].tolist():
                del self.front[n]
                del self.front_rows[n]
                self.front_lines.pop(n, None)
        self.front[number] = cost
        self.front_rows[number] = dict(row)
        return True

    def _csv(self, lines: Sequence[list[Any]], header: bool) -> bytes:
        buf = io.StringIO()
        w = csv.writer(buf)
        if header:
            w.writerow(self.cols or [])
        w.writerows(lines)
        return buf.getvalue().encode("utf-8")

    def _append(self, path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append ``rows`` in one write (creating the file with its header if it is missing)."""
        if not path.exists():  # created whole by a hard link: no reader sees it headless
            head = self._csv([], header=True)
            atomic_create(path, lambda p: p.write_bytes(head))
        if not rows:
            return
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, self._csv([self._render(r) for r in rows], header=False))
        finally:
            os.close(fd)

    def _replace(self, path: Path, lines: Sequence[list[Any]]) -> None:
        data = self._csv(lines, header=True)
        atomic_write(path, lambda p: p.write_bytes(data))


def _header(path: Path) -> list[str] | None:
    """The first row of the CSV file at ``path``; None when it is missing or unreadable."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            return next(csv.reader(f), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


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
    atomic_write(path, lambda p: df.to_csv(p, index=False))


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

    from dse.study.plots import save_figure

    x = objectives[0]
    y = objectives[1] if len(objectives) > 1 else ("area" if x != "area" else "images_per_s")
    front = pareto_front(df, {x: OBJECTIVES[x], y: OBJECTIVES[y]})
    done = df[df["state"] == "COMPLETE"]
    feas = done["feasible"].astype("boolean").fillna(False)
    fig, ax = plt.subplots(figsize=(8.2, 4.6))
    ax.scatter(done.loc[~feas, x], done.loc[~feas, y], s=10, c="0.75",
               label="infeasible (below the accuracy floor)")
    ax.scatter(done.loc[feas, x], done.loc[feas, y], s=12, c="tab:blue", label="feasible")
    f = front.sort_values(x)
    ax.plot(f[x], f[y], "o-", c="tab:red", ms=5, label="Pareto front")
    ax.set_xlabel(AXIS_LABELS.get(x, x))
    ax.set_ylabel(AXIS_LABELS.get(y, y))
    if (done[y] > 0).all() and done[y].max() > 20 * max(done[y].min(), 1e-30):
        ax.set_yscale("log")
    sub = _accuracy_caption(df)
    forms = df["formulation"].dropna().unique() if "formulation" in df else ()
    if len(forms):
        sub += f"; formulation {', '.join(map(str, forms))}"
    ax.set_title(f"{title}\n{sub}" if title else sub, fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    try:  # atomic and byte-reproducible
        for fmt, target in (("svg", path.with_suffix(".svg")), ("png", path)):
            save_figure(fig, target, fmt, dpi=150)
    finally:
        plt.close(fig)


AXIS_LABELS = {"images_per_s": "throughput (images/s)", "energy_j": "energy per batch (J)",
               "area": "area (mm²)", "latency_s": "latency per batch (s)"}
"""Pareto-plot axis labels of the objectives, in words with units."""


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
    write_summary(study, problem, out, best)  # the CLI prints it; edge warnings included
    if best is None:
        log.warning("no feasible design among %d trials; no best.json", len(df))
        return df
    # re-create the design from the stored parameters and simulate it again (deterministic)
    fixed = optuna.trial.FixedTrial(best.params)
    design = problem.space.suggest(fixed, problem.workload, area_budget=problem.area_budget,
                                   dram_gbps=problem.dram_gbps, batch=problem.batch)
    assert design is not None  # it completed, so it fitted
    res = simulate(apply_layer_bits(problem.workload, design.layer_bits), design.accelerator,
                   batch=problem.batch, **design.simulate_kwargs(),
                   **dict(problem.simulate_options))
    acc = {k: (list(v) if isinstance(v, tuple) else v)
           for k, v in dataclasses.asdict(design.accelerator).items()}
    doc = {"trial": best.number, "objectives": list(problem.objectives),
           "values": best.values, "area": design.accelerator.area,
           "area_budget": problem.area_budget, "formulation": problem.space.formulation,
           "total_sram_kib": problem.space.total_sram, "sampler": problem.sampler,
           "space_designs": design_count(problem.space, problem.workload),
           "designs_evaluated": distinct_evaluated(study),
           "edges": edge_notes(problem.space, best.params), "schedule": design.schedule,
           "groups": design.groups or 1, "micro_batch": design.micro_batch,
           "stage_split": design.stage_split, "edge_cores": design.edge_cores,
           "edge_mac_bits": (list(design.edge_mac_bits) if design.edge_mac_bits else None),
           "batch": problem.batch, "accelerator": acc,
           "layer_bits": {k: list(v) for k, v in design.layer_bits.items()},
           "accuracy_proxy": trial_metrics(best).get("accuracy_proxy"),
           "accuracy_model": trial_metrics(best).get("accuracy_model"),
           "metrics": {k: _jsonable(v) for k, v in res.to_dict().items()}}
    atomic_write_text(out / "best.json", json.dumps(doc, indent=1, default=str))
    from dse.study.tidy import tidy

    _atomic_csv(tidy(res.layers), out / "best_layers.csv")  # integer cycles, exact zeros
    res.save_trace(out / "best_trace.json")  # Chrome/Perfetto trace of the best schedule
    return df


def write_summary(study: optuna.Study, problem: Problem, out: Path,
                  best: optuna.trial.FrozenTrial | None) -> list[str]:
    """Write out/summary.txt (`dse.search.coverage.summary_lines`: formulation, coverage of the
    space, best design, edge warnings) and return its lines."""
    metrics = trial_metrics(best) if best is not None else None
    lines = summary_lines(study, problem.space, problem.workload, problem.sampler, best, metrics)
    atomic_write_text(out / "summary.txt", "\n".join(lines) + "\n")
    return lines


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, np.generic):
        return v.item()
    return v


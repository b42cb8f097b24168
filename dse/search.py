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
``best.json``, ``best_layers.csv`` (the best design's full SimResult) and ``best_trace.json``
(its schedule as a Chrome/Perfetto trace).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import re
import socket
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
import pandas as pd

from dse.accuracy import AccuracyModel
from dse.accuracy import from_dict as accuracy_from_dict
from dse.space import SearchSpace, apply_layer_bits


def _import_workload_graph() -> Any:
    """``workloads.graph`` without running ``workloads/__init__`` (which imports torch for the
    zoo and the extractor). A worker needs only the `Workload` record; keeping torch out makes
    it start in well under a second. Once ``workloads`` is imported normally, that copy is used.
    """
    import importlib
    import importlib.util

    if "workloads" in sys.modules or "workloads.graph" in sys.modules:
        return importlib.import_module("workloads.graph")
    pkg = importlib.util.find_spec("workloads")  # locates the package without executing it
    if pkg is None or not pkg.submodule_search_locations:
        return importlib.import_module("workloads.graph")
    path = Path(next(iter(pkg.submodule_search_locations))) / "graph.py"
    spec = importlib.util.spec_from_file_location("workloads.graph", path)
    if spec is None or spec.loader is None:
        return importlib.import_module("workloads.graph")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["workloads.graph"] = mod
    spec.loader.exec_module(mod)
    return mod


_Workload = _import_workload_graph().Workload  # the runtime class (see above)
if TYPE_CHECKING:
    from workloads.graph import Workload

__all__ = ["METRIC_COLUMNS", "OBJECTIVES", "SAMPLERS", "Problem", "best_trial", "main",
           "make_objective", "make_storage", "pareto_front", "plot_pareto", "prepare_workload",
           "problem_errors", "run", "trials_frame", "worker", "write_reports", "write_tables"]

log = logging.getLogger(__name__)

OBJECTIVES: dict[str, str] = {
    "images_per_s": "maximize",
    "energy_j": "minimize",
    "area": "minimize",
    "latency_s": "minimize",
}
"""Objective name (a SimResult metric or the design's area in mm^2) -> direction."""

SAMPLERS = ("tpe", "nsga2", "random")
PROBLEM_ATTR = "qdse.problem"
METRICS_ATTR = "qdse.metrics"
WORKER_ATTR = "qdse.worker"
METRIC_COLUMNS = ("images_per_s", "energy_j", "area", "area_budget", "accuracy_proxy",
                  "accuracy_model", "min_accuracy", "feasible", "latency_s", "utilization",
                  "dram_bytes", "cores", "rows", "cols", "mac_bits", "sram_kib", "dram_gbps",
                  "reason")


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
        wl = _Workload.from_json(d["workload"])
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
    if sampler not in SAMPLERS:
        problems.append(f"sampler={sampler!r} is not allowed; expected one of "
                        f"{', '.join(SAMPLERS)}")
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
            problems.append(f"area_budget={area_budget!r} is not allowed for this space: its "
                            f"smallest design ({what}) needs {area:.4g} mm^2; raise the budget "
                            "or add smaller choices (MAC bits, array, SRAM, cores)")
    return problems


def _encode_float(x: float) -> float | str:
    return "inf" if math.isinf(x) else float(x)


# -- storage ---------------------------------------------------------------------------------------
def make_storage(storage: str | None, out: str | Path | None, *,
                 fsync: bool = False) -> optuna.storages.BaseStorage:
    """Resolve ``storage``: None -> journal file in ``out``; ``journal:PATH`` -> that journal
    file; any other URL -> Optuna RDB with heartbeat. ``fsync``: see `_journal`.

    A storage that cannot be opened (server down, folder missing, driver not installed) raises
    one ValueError naming the URL (password masked) and the reason.
    """
    if storage is None:
        if out is None:
            return optuna.storages.InMemoryStorage()
        path = Path(out) / "study.journal"
        with _storage_errors(str(path)):
            path.parent.mkdir(parents=True, exist_ok=True)
            return _journal(path, fsync)
    if not isinstance(storage, str) or (not storage.startswith("journal:")
                                        and "://" not in storage):
        raise ValueError(f"storage={_mask_url(str(storage))!r} is not allowed; expected an Optuna "
                         "URL (sqlite:///file.db, postgresql://user@host:port/db) or journal:PATH")
    with _storage_errors(storage):
        if storage.startswith("journal:"):
            return _journal(Path(storage.removeprefix("journal:").removeprefix("//")), fsync)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                _postgres_driver(storage), heartbeat_interval=10, grace_period=30,
                engine_kwargs={"pool_pre_ping": True})


def _mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (``postgresql://me:pw@h/db`` ->
    ``postgresql://me:***@h/db``), for messages and logs."""
    return re.sub(r"^([A-Za-z][\w+.-]*://[^:/@]*):[^@]*@", r"\1:***@", url)


def _is_storage_error(e: BaseException) -> bool:
    """OSError, a missing database driver, or any SQLAlchemy error (checked without importing
    SQLAlchemy: a journal-only worker never loads it, so it cannot have raised)."""
    if isinstance(e, OSError | ModuleNotFoundError):
        return True
    exc = sys.modules.get("sqlalchemy.exc")
    return exc is not None and isinstance(e, exc.SQLAlchemyError)


@contextlib.contextmanager
def _storage_errors(storage: str) -> Iterator[None]:
    """Turn a storage failure into ``ValueError("storage='URL' cannot be opened: REASON")``."""
    try:
        yield
    except Exception as e:
        if not _is_storage_error(e):
            raise
        raise ValueError(f"storage={_mask_url(storage)!r} cannot be opened: "
                         f"{_storage_reason(e, storage)}") from e


def _storage_reason(e: BaseException, storage: str) -> str:
    """One line saying why, from the driver's own message (SQLAlchemy keeps it in ``orig``)."""
    if isinstance(e, ModuleNotFoundError):
        return f"its database driver is not installed ({e}); install it or use another URL"
    if isinstance(e, OSError) and e.strerror:
        where = f" ({e.filename})" if e.filename else ""
        text = f"{e.strerror}{where}"
    else:
        orig = getattr(e, "orig", None) or e
        lines = [ln.strip() for ln in str(orig).splitlines() if ln.strip()]
        text = lines[0] if lines else type(orig).__name__
    secret = re.match(r"^[A-Za-z][\w+.-]*://[^:/@]*:([^@]*)@", storage)
    if secret and secret.group(1):
        text = text.replace(secret.group(1), "***")
    if storage.startswith("sqlite:///"):
        folder = Path(storage.removeprefix("sqlite:///")).parent
        if str(folder) not in ("", ".") and not folder.is_dir():
            text += f" (folder {str(folder)!r} does not exist)"
    elif "://" in storage and not storage.startswith("sqlite"):
        text += "; is the database server running and the URL right?"
    return text


def _postgres_driver(url: str) -> str:
    """``postgresql://`` with the installed driver: SQLAlchemy 2.1 defaults to psycopg (3); when
    only psycopg2 is installed (the project's ``postgres`` extra), name it explicitly."""
    import importlib.util

    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme) and importlib.util.find_spec("psycopg") is None \
                and importlib.util.find_spec("psycopg2") is not None:
            return "postgresql+psycopg2://" + url.removeprefix(scheme)
    return url


def _journal(path: Path, fsync: bool = False) -> optuna.storages.BaseStorage:
    """Optuna journal file with a cross-process file lock.

    ``fsync=False`` (default) skips the fsync after each append: a trial writes ~20 journal
    records (one per parameter, attribute and state change) and on a busy disk the fsyncs cost
    more than the simulation. Without fsync the records still reach the kernel before the call
    returns, so a killed process (SIGKILL, crash) loses nothing - only a power loss or kernel
    crash can drop the last records. ``fsync=True`` (``--fsync``) buys that durability back.

    Skipping the fsync needs Optuna's private lock helper
    (``optuna.storages.journal._file.get_lock_file``). If a future Optuna drops or moves it, the
    journal falls back to Optuna's own append (with fsync): slower, never wrong.
    """
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    # A process killed while holding the lock leaves the lock file behind; others break it
    # after the grace period. Appends take milliseconds (one O_APPEND write), so 10 s is long
    # enough not to break a live holder and short enough for a quick --resume.
    lock = JournalFileOpenLock(str(path), grace_period=10)
    backend = JournalFileBackend(str(path), lock_obj=lock)
    if not fsync:
        if _lock_helper() is not None and hasattr(backend, "_lock") \
                and hasattr(backend, "_file_path"):
            backend.append_logs = _append_without_fsync.__get__(backend)  # type: ignore
        else:
            log.debug("optuna %s lacks the journal lock helper; appends keep Optuna's fsync",
                      optuna.__version__)
    return optuna.storages.JournalStorage(backend)


def _lock_helper() -> Callable[[Any], Any] | None:
    """Optuna's private ``get_lock_file`` context manager, or None when this Optuna lacks it."""
    try:
        from optuna.storages.journal._file import get_lock_file
    except ImportError:
        return None
    return get_lock_file


def _append_without_fsync(self: Any, logs: list[dict[str, Any]]) -> None:
    """`JournalFileBackend.append_logs` minus the fsync: one locked O_APPEND write per batch.

    Installed only when `_lock_helper` found Optuna's lock helper (see `_journal`)."""
    get_lock_file = _lock_helper()
    assert get_lock_file is not None  # _journal installs this method only then
    with get_lock_file(self._lock):
        text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
        with open(self._file_path, "ab") as f:
            f.write(text.encode("utf-8"))
            f.flush()


def _storage_url(storage: str | None, out: str | Path | None) -> str:
    """The string a child worker is given to reach the same storage."""
    if storage is not None:
        return storage
    if out is None:
        raise ValueError("jobs > 1 needs out= (the journal file lives there) or storage=")
    return f"journal:{Path(out).resolve() / 'study.journal'}"


def _fail_dead_local_trials(study: optuna.Study) -> int:
    """Mark RUNNING trials of dead processes on this host FAIL (journal files have no heartbeat)."""
    host, n = socket.gethostname(), 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        who = t.user_attrs.get(WORKER_ATTR, {})
        pid = who.get("pid")
        if who.get("host") != host or not isinstance(pid, int) or _alive(pid):
            continue
        study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        n += 1
    if n:
        log.info("marked %d trials of killed processes as FAIL", n)
    return n


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- one trial -------------------------------------------------------------------------------------
_HAS_SET_CONSTRAINT = hasattr(optuna.Trial, "set_constraint")  # optuna >= 5


def _constraints(trial: optuna.trial.FrozenTrial) -> Sequence[float]:
    """Optuna constraint values (feasible when all <= 0): area over budget, accuracy shortfall."""
    m = trial.user_attrs.get(METRICS_ATTR, {})
    return (m.get("area", 0.0) - m.get("area_budget", 0.0) if "area" in m else 1.0,
            m.get("min_accuracy", -math.inf) - m.get("accuracy_proxy", math.inf)
            if "min_accuracy" in m else 0.0)


def _set_constraints(trial: optuna.Trial, area_excess_mm2: float, shortfall: float) -> None:
    if _HAS_SET_CONSTRAINT:  # older optuna reads them through constraints_func instead
        trial.set_constraint("area_excess_mm2", area_excess_mm2)
        trial.set_constraint("accuracy_shortfall", shortfall)


def make_objective(problem: Problem) -> Callable[[optuna.Trial], Sequence[float]]:
    """The Optuna objective of ``problem`` (see the module docstring for the steps)."""
    from dse.simulate import simulate

    def objective(trial: optuna.Trial) -> Sequence[float]:
        trial.set_user_attr(WORKER_ATTR, {"host": socket.gethostname(), "pid": os.getpid()})
        budget = problem.area_budget
        design = problem.space.suggest(trial, problem.workload, area_budget=budget,
                                       dram_gbps=problem.dram_gbps)
        # the design as sampled, recorded before any pruning: every row says what was tried
        attrs: dict[str, Any] = {"area_budget": budget, "dram_gbps": _encode_float(
            problem.dram_gbps), **_design_attrs(trial.params)}
        if problem.accuracy is not None:  # which model fills accuracy_proxy, on every row
            attrs["accuracy_model"] = problem.accuracy.label
            if problem.min_accuracy is not None:
                attrs["min_accuracy"] = problem.min_accuracy
        if design is None:  # not even one core of this kind fits: infeasible
            attrs.update(cores=0, feasible=False, reason="no core fits budget")
            _set_attrs(trial, attrs)
            _set_constraints(trial, 1.0, 0.0)
            raise optuna.TrialPruned("no core of this design fits the area budget")
        acc_hw = design.accelerator
        area = float(acc_hw.area)
        attrs.update(area=area, cores=acc_hw.cores, rows=acc_hw.rows, cols=acc_hw.cols,
                     mac_bits=f"{acc_hw.mac_bits[0]}x{acc_hw.mac_bits[1]}",
                     sram_kib=acc_hw.sram_kib)
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
            res = simulate(wl, acc_hw, batch=problem.batch, **dict(problem.simulate_options))
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
    from dse.space import decode_pair

    out: dict[str, Any] = {}
    if "mac_bits" in params:
        out["mac_bits"] = str(params["mac_bits"])
    if "array" in params:
        out["rows"], out["cols"] = decode_pair(params["array"])
    if "sram_kib" in params:
        out["sram_kib"] = float(params["sram_kib"])
    if "cores" in params:
        out["cores"] = int(params["cores"])
    return out


def _set_attrs(trial: optuna.Trial, attrs: Mapping[str, Any]) -> None:
    # one storage write per trial (a journal write is an fsync): all metrics in one attribute
    trial.set_user_attr(METRICS_ATTR, dict(attrs))


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
        return optuna.samplers.TPESampler(seed=seed, constraints_func=cf,
                                          multivariate=True, n_startup_trials=10)


# -- tables and plots ------------------------------------------------------------------------------
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
    from dse.simulate import simulate

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


# -- running ---------------------------------------------------------------------------------------
def _shares(n_trials: int, jobs: int) -> list[int]:
    return [n_trials // jobs + (1 if i < n_trials % jobs else 0) for i in range(jobs)]


SETTINGS_ATTRS = ("sampler", "seed", "accuracy")
"""Settings recorded as study user attributes ``qdse.<name>`` on creation and checked on resume
(``accuracy``: the accuracy model's label, "none" without one)."""


def _settings(problem: Problem) -> dict[str, Any]:
    return {"sampler": problem.sampler, "seed": problem.seed,
            "accuracy": problem.accuracy_label}


def _open_study(problem: Problem, storage: Any, study_name: str, resume: bool,
                url: str = "") -> optuna.Study:
    with _storage_errors(url or "in-memory"):
        names = [s.study_name
                 for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
        if study_name not in names:
            study = optuna.create_study(study_name=study_name, storage=storage,
                                        directions=problem.directions)
            study.set_user_attr(PROBLEM_ATTR, problem.to_json())
            for k, v in _settings(problem).items():
                study.set_user_attr(f"qdse.{k}", v)
            return study
        if not resume:
            raise ValueError(f"study {study_name!r} already exists in this storage; pass "
                             "resume=True (--resume) to continue it, or choose another study "
                             "name / --out")
        study = optuna.load_study(study_name=study_name, storage=storage)
    _check_resume(study, problem)
    return study


def _check_resume(study: optuna.Study, problem: Problem) -> None:
    """Raise one ValueError listing every setting that differs from the stored study's."""
    stored = Problem.from_json(study.user_attrs[PROBLEM_ATTR])
    was = _settings(stored)  # studies from before the qdse.<setting> attributes
    was.update({k: study.user_attrs[f"qdse.{k}"] for k in SETTINGS_ATTRS
                if f"qdse.{k}" in study.user_attrs})
    now = _settings(problem)
    diffs = [f"{k}={now[k]!r} differs from the stored study's {was[k]!r}"
             for k in SETTINGS_ATTRS if now[k] != was[k]]
    if not diffs and stored.accuracy is not None and problem.accuracy is not None \
            and stored.accuracy.to_dict() != problem.accuracy.to_dict():
        diffs.append(f"accuracy={now['accuracy']!r} has other parameters (table, cache, "
                     "training run) than the stored study's")
    for what in ("objectives", "area_budget", "dram_gbps", "min_accuracy", "batch",
                 "simulate_options"):
        if getattr(stored, what) != getattr(problem, what):
            diffs.append(f"{what}={getattr(problem, what)!r} differs from the stored study's "
                         f"{getattr(stored, what)!r}")
    if stored.space != problem.space:
        diffs.append("the search space differs from the stored study's")
    if stored.workload != problem.workload:
        diffs.append("the workload differs from the stored study's")
    if diffs:
        raise ValueError(f"cannot resume study {study.study_name!r}: " + "; ".join(diffs)
                         + "; resume with the stored settings or start a new study")


def _optimize(study: optuna.Study, problem: Problem, n_trials: int, out: Path | None,
              worker_index: int) -> None:
    study.sampler = _sampler(problem, worker_index)
    callbacks = [] if out is None else [_TableWriter(out, problem.objectives)]
    study.optimize(make_objective(problem), n_trials=n_trials, callbacks=callbacks,
                   catch=(ValueError,), gc_after_trial=False)


def run(space: SearchSpace, objectives: Sequence[str], *, workload: Workload, n_trials: int,
        study_name: str = "qdse-search", storage: str | None = None, sampler: str = "tpe",
        jobs: int = 1, out: str | Path | None = None, accuracy: AccuracyModel | None = None,
        min_accuracy: float | None = None, area_budget: float | None = None,
        dram_gbps: float = 32.0, batch: int = 1, seed: int = 0, resume: bool = False,
        simulate_options: Mapping[str, Any] | None = None, fsync: bool = False) -> optuna.Study:
    """Search ``space`` for designs running ``workload``; returns the Optuna study.

    ``objectives``: names from OBJECTIVES (one -> single-objective, e.g. TPE; several ->
    multi-objective, e.g. NSGA-II). ``accuracy`` + ``min_accuracy``: the accuracy constraint
    (Optuna ``constraints_func`` for both samplers). ``area_budget`` (mm^2, default the sysml19
    iso-area budget): designs over it are pruned. ``jobs`` > 1: that many processes share the
    storage (journal file in ``out`` by default). ``n_trials`` more trials run (on top of stored
    ones with ``resume=True``); the count is exact across jobs.
    """
    if not isinstance(n_trials, int) or n_trials < 0:
        raise ValueError(f"n_trials={n_trials!r} is not allowed; expected an integer >= 0")
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs={jobs!r} is not allowed; expected an integer >= 1")
    _quiet_optuna()
    if area_budget is None:
        from arch.presets import sysml19_area_budget

        area_budget = float(sysml19_area_budget())
    problem = Problem(workload, space, tuple(objectives), float(area_budget), float(dram_gbps),
                      accuracy, min_accuracy, sampler, seed, batch, dict(simulate_options or {}))
    out_path = Path(out) if out is not None else None
    if out_path is not None:
        out_path.mkdir(parents=True, exist_ok=True)
    st = make_storage(storage, out_path, fsync=fsync)
    study = _open_study(problem, st, study_name, resume,
                        storage or (str(out_path / "study.journal") if out_path else ""))
    if resume and not isinstance(st, optuna.storages.RDBStorage):
        _fail_dead_local_trials(study)
    shares = _shares(n_trials, jobs)
    children = []
    if jobs > 1:
        url = _storage_url(storage, out_path)
        for i, n in enumerate(shares[1:], start=1):
            if n == 0:
                continue
            cmd = [sys.executable, "-m", "dse.search", "worker", "--storage", url, "--study",
                   study_name, "--trials", str(n), "--worker-index", str(i)]
            if out_path is not None:
                cmd += ["--out", str(out_path)]
            if fsync:
                cmd.append("--fsync")
            children.append(subprocess.Popen(cmd, preexec_fn=_die_with_parent))
    try:
        _optimize(study, problem, shares[0], out_path, 0)
    finally:
        codes = [c.wait() for c in children]
    if any(codes):
        raise RuntimeError(f"search workers exited with codes {codes}; see their stderr")
    if out_path is not None:
        write_reports(study, problem, out_path)
    return study


def _quiet_optuna() -> None:
    """Optuna logs an INFO line per study and per trial; keep only its warnings. Called before
    any study is created or loaded (the "A new study created" line is logged on creation)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _die_with_parent() -> None:
    """Child workers get SIGKILL when the parent dies (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: children finish their share
        pass


def worker(storage: str, study_name: str, n_trials: int, *, out: str | Path | None = None,
           worker_index: int = 0, fsync: bool = False) -> optuna.Study:
    """Run ``n_trials`` trials of an existing study (its problem is read from the storage)."""
    _quiet_optuna()
    st = make_storage(storage, None, fsync=fsync)
    with _storage_errors(storage):
        names = [s.study_name for s in optuna.get_all_study_summaries(st, False)]
        if study_name not in names:
            raise ValueError(f"unknown study {study_name!r}; available: "
                             f"{', '.join(names) or 'none'}")
        study = optuna.load_study(study_name=study_name, storage=st)
    problem = Problem.from_json(study.user_attrs[PROBLEM_ATTR])
    out_path = Path(out) if out is not None else None
    if out_path is not None:
        out_path.mkdir(parents=True, exist_ok=True)
    _optimize(study, problem, n_trials, out_path, worker_index)
    return study


# -- command line ----------------------------------------------------------------------------------
_RECIPE_BITS = {"wrpn": (2, 4)}  # WRPN: W2A4 on a 2x-wide network (PACT-SAWB paper Section 7.3)


def _int_list(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t)
    except ValueError as e:
        raise ValueError(f"{flag}={text!r} is not allowed; expected comma-separated integers"
                         ) from e


def _float_list(text: str, flag: str) -> tuple[float, ...]:
    try:
        return tuple(float(t) for t in text.split(",") if t)
    except ValueError as e:
        raise ValueError(f"{flag}={text!r} is not allowed; expected comma-separated numbers"
                         ) from e


def _pair_list(text: str, flag: str) -> tuple[tuple[int, int], ...]:
    from dse.space import decode_pair

    try:
        return tuple(decode_pair(t) for t in text.split(",") if t)
    except ValueError as e:
        raise ValueError(f"{flag}={text!r} is not allowed; expected comma-separated AxB pairs "
                         "such as 2x2,2x4") from e


def prepare_workload(model: str, recipe: str, out: Path, *, w_bits: int, a_bits: int,
                     batch: int = 1, sensitivity: str = "noise_gain", seed: int = 0
                     ) -> tuple[Workload, AccuracyModel]:
    """Extract ``model`` quantized by ``recipe`` once and cache it (and the proxy) as JSON in out.

    This is the only step that imports torch; workers load ``workload.json`` and the proxy table.
    """
    from dse.accuracy import ProxyAccuracy

    source = {"model": model, "recipe": recipe, "w_bits": w_bits, "a_bits": a_bits,
              "batch": batch, "sensitivity": sensitivity, "seed": seed}
    wl_path, acc_path, src_path = out / "workload.json", out / "accuracy.json", out / "source.json"
    if src_path.exists() and wl_path.exists() and acc_path.exists() \
            and json.loads(src_path.read_text()) == source:
        log.info("reusing the cached workload in %s", wl_path)
        return _Workload.load(wl_path), ProxyAccuracy.from_dict(json.loads(acc_path.read_text()))
    import torch

    import quant
    from workloads import extract, zoo

    if model not in zoo.names():
        raise ValueError(f"model={model!r} is not allowed; expected one of "
                         f"{', '.join(zoo.names())}")
    if recipe not in quant.recipes():
        raise ValueError(f"recipe={recipe!r} is not allowed; expected one of "
                         f"{', '.join(quant.recipes())}")
    torch.manual_seed(seed)  # the proxy reads the (initial) weights: make them reproducible
    float_model = zoo.get(model, width=2 if recipe == "wrpn" else 1)
    shape = tuple(zoo.input_shape(model))
    qmodel = float_model if recipe == "fp32" else quant.quantize(
        float_model, recipe, w_bits=w_bits, a_bits=a_bits)
    wl = extract(qmodel, input_shape=shape, batch=batch, default_bits=16, name=model)
    modules = {la.name: la.module for la in wl.compute_layers()}
    proxy = ProxyAccuracy.from_model(float_model, modules, shape, sensitivity=sensitivity,
                                     seed=seed)
    wl.save(wl_path)
    tmp = acc_path.with_name(acc_path.name + ".tmp")
    tmp.write_text(json.dumps(proxy.to_dict()))
    tmp.replace(acc_path)
    src_path.write_text(json.dumps(source))
    return wl, proxy


def _build_parser() -> Any:
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m dse.search",
        description="Optuna design-space search (cores, array, MAC bits, SRAM, per-layer bits). "
                    "Subcommand 'worker' joins an existing study: python -m dse.search worker "
                    "--storage URL --study NAME --trials N")
    p.add_argument("--model", required=True)
    p.add_argument("--recipe", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--trials", required=True, type=int, help="number of (more) trials to run")
    p.add_argument("--area-budget", type=float, default=None,
                   help="mm^2 (default: arch.presets.sysml19_area_budget())")
    p.add_argument("--dram-gbps", type=float, default=32.0, help="GB/s; 'inf' for unlimited")
    p.add_argument("--jobs", type=int, default=1, help="worker processes on this machine")
    p.add_argument("--storage", default=None,
                   help="Optuna storage URL (default: journal file in --out)")
    p.add_argument("--study", default=None, help="study name (default: MODEL-RECIPE)")
    p.add_argument("--resume", action="store_true", help="continue the stored study")
    p.add_argument("--fsync", action="store_true",
                   help="fsync every journal append (survives power loss, slower; default: "
                        "survives killed processes)")
    p.add_argument("--objectives", default="images_per_s,energy_j",
                   help=f"comma list from {', '.join(OBJECTIVES)}")
    p.add_argument("--sampler", choices=SAMPLERS, default=None,
                   help="default: nsga2 for several objectives, tpe for one")
    p.add_argument("--layer-bits", choices=("recipe", "mac", "search"), default="search")
    p.add_argument("--bits", default="1,2,4,8",
                   help="per-layer bit choices (w and a); the default reaches below the 2-bit "
                        "recipes so that --min-accuracy recipe can reject designs")
    p.add_argument("--mac-bits", default="2x2,2x4,4x4,8x8,16x16")
    p.add_argument("--arrays", default="8x64", help="array shapes ROWSxCOLS")
    p.add_argument("--sram-kib", default="512,1024,2048", help="SRAM per core choices, KiB")
    p.add_argument("--cores", default=None, help="LO:HI to sample cores (default: fill budget)")
    p.add_argument("--first-last-bits", type=int, default=None,
                   help="bits of the (fixed) first/last layers (default: the recipe's)")
    p.add_argument("--shortcut-bits", type=int, default=None,
                   help="bits of the (fixed) shortcut convs (default: the recipe's)")
    p.add_argument("--search-first-last", action="store_true",
                   help="search the first/last layers' bits too (default: fixed)")
    p.add_argument("--search-shortcuts", action="store_true",
                   help="search the shortcut convs' bits too (default: fixed)")
    p.add_argument("--w-bits", type=int, default=None, help="recipe weight bits (default 2)")
    p.add_argument("--a-bits", type=int, default=None,
                   help="recipe activation bits (default 2; 4 for wrpn)")
    p.add_argument("--min-accuracy", default="recipe",
                   help="floor on the accuracy_proxy column (proxy model: output SQNR dB; "
                        "measured model: top-1 in 0..1); 'recipe' (default) = the score of the "
                        "recipe's own bits; 'none'")
    p.add_argument("--accuracy", choices=("proxy", "measured", "none"), default="proxy",
                   help="accuracy model: data-free proxy (any zoo model), measured (digits_cnn "
                        "trained on digits, post-training bits), or none")
    p.add_argument("--train-cache", type=Path, default=None,
                   help="where measured accuracy keeps trained digits runs (default OUT/train)")
    p.add_argument("--sensitivity", choices=("noise_gain", "uniform"), default="noise_gain")
    p.add_argument("--high-precision", choices=("configurable", "bit_serial"), default=None)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    return p


def _worker_main(argv: Sequence[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m dse.search worker",
                                description="Run trials of an existing search study.")
    p.add_argument("--storage", required=True)
    p.add_argument("--study", required=True)
    p.add_argument("--trials", required=True, type=int)
    p.add_argument("--out", type=Path, default=None, help="also maintain trials.csv here")
    p.add_argument("--worker-index", type=int, default=None,
                   help="sampler seed offset (default: from the pid)")
    p.add_argument("--fsync", action="store_true", help="fsync journal appends")
    a = p.parse_args(argv)
    index = a.worker_index if a.worker_index is not None else os.getpid()
    study = worker(a.storage, a.study, a.trials, out=a.out, worker_index=index, fsync=a.fsync)
    print(f"worker {index}: study {a.study!r} now has {len(study.trials)} trials")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; bad input -> one-line error and exit status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if argv[:1] == ["worker"]:
            return _worker_main(argv[1:])
        return _main(argv)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _main(argv: Sequence[str]) -> int:
    import time

    a = _build_parser().parse_args(argv)
    if a.trials < 0:
        raise ValueError(f"--trials={a.trials} is not allowed; expected an integer >= 0")
    out: Path = a.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--out={str(out)!r} is not writable: {e.strerror}") from e
    # 1. every check that needs no workload, before the (torch, ~20 s) extraction
    objectives = tuple(o for o in a.objectives.split(",") if o)
    sampler = a.sampler or ("nsga2" if len(objectives) > 1 else "tpe")
    w_bits, a_bits = _RECIPE_BITS.get(a.recipe, (2, 2))
    w_bits = a.w_bits if a.w_bits is not None else w_bits
    a_bits = a.a_bits if a.a_bits is not None else a_bits
    space = _space_from_args(a)
    min_acc_arg = _min_accuracy_arg(a.min_accuracy)
    if a.accuracy == "measured" and a.model != "digits_cnn":
        raise ValueError(f"--accuracy measured needs --model digits_cnn (got {a.model!r}); "
                         "zoo models have no trained weights here: use --accuracy proxy")
    if a.area_budget is None:
        from arch.presets import sysml19_area_budget

        a.area_budget = float(sysml19_area_budget())
    problems = problem_errors(space, objectives, a.area_budget, dram_gbps=a.dram_gbps,
                              sampler=sampler, batch=a.batch,
                              min_accuracy=min_acc_arg if isinstance(min_acc_arg, float)
                              else None, has_accuracy=a.accuracy != "none")
    if problems:
        raise ValueError("invalid search problem: " + "; ".join(problems))
    if a.storage is not None:
        _check_storage(a.storage)
    # 2. the workload (extracted once, cached in --out) and the accuracy model
    wl, proxy = prepare_workload(a.model, a.recipe, out, w_bits=w_bits, a_bits=a_bits,
                                 batch=a.batch, sensitivity=a.sensitivity, seed=a.seed)
    accuracy: AccuracyModel | None = proxy
    if a.accuracy == "measured":
        from dse.accuracy import digits_measured_accuracy

        accuracy = digits_measured_accuracy(
            a.recipe, w_bits, a_bits, str(a.train_cache or out / "train"), wl, seed=a.seed,
            cache_path=str(out / "measured_accuracy.json"))
    elif a.accuracy == "none":
        accuracy = None
    if min_acc_arg is None or accuracy is None:
        min_acc = None
    elif min_acc_arg == "recipe":
        min_acc = accuracy({la.name: (la.w_bits, la.a_bits) for la in wl.compute_layers()})
    else:
        min_acc = float(min_acc_arg)
    # 3. the search
    options = {"high_precision": a.high_precision} if a.high_precision else {}
    t0 = time.perf_counter()
    study = run(space, objectives, workload=wl, n_trials=a.trials,
                study_name=a.study or f"{a.model}-{a.recipe}", storage=a.storage,
                sampler=sampler, jobs=a.jobs, out=out, accuracy=accuracy, min_accuracy=min_acc,
                area_budget=a.area_budget, dram_gbps=a.dram_gbps, batch=a.batch, seed=a.seed,
                resume=a.resume, simulate_options=options, fsync=a.fsync)
    dt = time.perf_counter() - t0
    df = pd.read_csv(out / "trials.csv")
    front = pd.read_csv(out / "pareto.csv")
    print(f"{a.trials} trials in {dt:.1f} s ({a.trials / dt if dt else 0:.2f} trials/s, "
          f"jobs={a.jobs}); study {study.study_name!r} holds {len(df)} trials: "
          f"{_state_counts(df)}; {len(front)} on the Pareto front")
    label = accuracy.label if accuracy is not None else "none"
    print(f"accuracy_proxy column = {label}"
          + (f"; constraint accuracy_proxy >= {min_acc:.4g}" if min_acc is not None
             else "; no accuracy constraint"))
    print(f"wrote {out / 'trials.csv'}, {out / 'pareto.csv'}"
          + (f", {out / 'pareto.png'}, {out / 'best.json'}" if (out / "best.json").exists()
             else ""))
    return 0


def _state_counts(df: pd.DataFrame) -> str:
    """E.g. "12 complete (9 feasible, 3 below the accuracy floor), 4 pruned (area), 0 failed"."""
    state = df["state"] if len(df) else pd.Series(dtype=object)
    done = df[state == "COMPLETE"]
    feasible = int(done["feasible"].astype("boolean").fillna(False).sum()) if len(done) else 0
    return (f"{len(done)} complete ({feasible} feasible, {len(done) - feasible} below the "
            f"accuracy floor), {int((state == 'PRUNED').sum())} pruned (area), "
            f"{int((state == 'FAIL').sum())} failed")


def _space_from_args(a: Any) -> SearchSpace:
    """The SearchSpace of the CLI flags (raises the space's one ValueError on bad bounds)."""
    cores = None
    if a.cores:
        lo, _, hi = a.cores.partition(":")
        try:
            cores = (int(lo), int(hi or lo))
        except ValueError as e:
            raise ValueError(f"--cores={a.cores!r} is not allowed; expected LO:HI") from e
    return SearchSpace(
        mac_bits=_pair_list(a.mac_bits, "--mac-bits"),
        array_shapes=_pair_list(a.arrays, "--arrays"),
        sram_kib=_float_list(a.sram_kib, "--sram-kib"), cores=cores,
        layer_bits=a.layer_bits, layer_w_bits=_int_list(a.bits, "--bits"),
        layer_a_bits=_int_list(a.bits, "--bits"),
        first_last_bits=a.first_last_bits, shortcut_bits=a.shortcut_bits,
        fixed_roles=tuple(r for r, searched in (("first", a.search_first_last),
                                                ("last", a.search_first_last),
                                                ("shortcut", a.search_shortcuts)) if not searched))


def _min_accuracy_arg(text: str) -> float | str | None:
    """--min-accuracy: a number, "recipe" (resolved once the model is known) or None."""
    if text == "none":
        return None
    if text == "recipe":
        return text
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isnan(value):
        raise ValueError(f"--min-accuracy={text!r} is not allowed; expected a number (proxy: "
                         "SQNR dB; measured: top-1 in 0..1), 'recipe' or 'none'")
    return value


def _check_storage(storage: str) -> None:
    """Open ``storage`` once, so an unreachable one fails before the extraction."""
    st = make_storage(storage, None)
    engine = getattr(st, "engine", None)
    if engine is not None:  # RDBStorage: release the connection pool now
        engine.dispose()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

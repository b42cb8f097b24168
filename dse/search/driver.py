"""Running a search: `run` (create or resume the study, start ``jobs - 1`` worker processes on
this machine, run a share of the trials itself, write the reports) and `worker` (join a stored
study: ``python -m dse.search worker``, on any machine that reaches the storage).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from dse.search.accuracy import AccuracyModel
from dse.search.coverage import AUTO, design_count, distinct_evaluated, resolve_sampler
from dse.search.objective import _sampler, make_objective
from dse.search.problem import PROBLEM_ATTR, Problem
from dse.search.reports import _TableWriter, table_columns, write_reports
from dse.search.space import SearchSpace
from dse.search.storage import (
    _fail_dead_local_trials,
    _open_study,
    _storage_errors,
    _storage_url,
    make_storage,
)

if TYPE_CHECKING:
    from workloads.graph import Workload

__all__ = ["run", "worker"]

log = logging.getLogger("dse.search")


def _shares(n_trials: int, jobs: int) -> list[int]:
    return [n_trials // jobs + (1 if i < n_trials % jobs else 0) for i in range(jobs)]


def _optimize(study: optuna.Study, problem: Problem, n_trials: int,
              writer: _TableWriter | None, worker_index: int,
              tracker: _Progress | None = None) -> None:
    study.sampler = _sampler(problem, worker_index)
    callbacks: list[Any] = [c for c in (writer, tracker) if c is not None]
    try:
        study.optimize(make_objective(problem), n_trials=n_trials, callbacks=callbacks,
                       catch=(ValueError,), gc_after_trial=False)
    finally:
        if writer is not None:
            writer.flush()  # the last front change may still be unwritten (throttled)


class _Progress:
    """Optuna callback: a progress display (`dse.cli.progress`) of this run's ``n_trials``,
    counting the finished trials of every worker sharing the study."""

    _DONE = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
             optuna.trial.TrialState.FAIL)

    def __init__(self, study: optuna.Study, n_trials: int) -> None:
        from dse.cli import progress

        self.before = self._finished(study)
        self.shown = 0
        self.total = n_trials
        self.bar = progress(n_trials, desc=study.study_name, unit="trial")

    def _finished(self, study: optuna.Study) -> int:
        return len(study.get_trials(deepcopy=False, states=self._DONE))

    def __call__(self, study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        done = min(self._finished(study) - self.before, self.total)
        if done > self.shown:
            self.bar.update(done - self.shown)
            self.shown = done

    def close(self, study: optuna.Study) -> None:
        self(study, None)  # type: ignore[arg-type]  # the workers' last trials
        self.bar.close()


def _table_writer(study: optuna.Study, problem: Problem, out: Path | None, *,
                  rewrite: bool) -> _TableWriter | None:
    """The per-trial trials.csv/pareto.csv writer of ``out`` (None without one), started: the
    process that opened the study rewrites the tables before any worker appends to them."""
    if out is None:
        return None
    writer = _TableWriter(out, problem.objectives, table_columns(problem))
    writer.start(study, rewrite=rewrite)
    return writer


def run(space: SearchSpace, objectives: Sequence[str], *, workload: Workload, n_trials: int,
        study_name: str = "qdse-search", storage: str | None = None, sampler: str = "auto",
        jobs: int = 1, out: str | Path | None = None, accuracy: AccuracyModel | None = None,
        min_accuracy: float | None = None, area_budget: float | None = None,
        dram_gbps: float = 32.0, batch: int = 1, seed: int = 0, resume: bool = False,
        simulate_options: Mapping[str, Any] | None = None, fsync: bool = False,
        progress: bool = False) -> optuna.Study:
    """Search ``space`` for designs running ``workload``; returns the Optuna study.

    ``objectives``: names from OBJECTIVES (one -> single-objective, e.g. TPE; several ->
    multi-objective, e.g. NSGA-II). ``sampler``: from SAMPLERS, or ``"auto"`` (default): ``"grid"``
    when the space holds no more designs than ``n_trials`` - every design then runs once and the
    search stops when all have run - else NSGA-II for several objectives, TPE for one; resuming
    with ``"auto"`` keeps the stored study's sampler. ``accuracy`` + ``min_accuracy``: the
    accuracy constraint (Optuna ``constraints_func`` for both samplers). ``area_budget`` (mm^2,
    default the sysml19 iso-area budget): designs over it are pruned. ``jobs`` > 1: that many
    processes share the storage (journal file in ``out`` by default). ``n_trials`` more trials
    run (on top of stored ones with ``resume=True``; with ``"grid"`` no more than the designs not
    yet run); the count is exact across jobs. ``progress``: a progress display
    on stderr (a bar on a terminal, a line per 10 % in a log).
    """
    if not isinstance(n_trials, int) or n_trials < 0:
        raise ValueError(f"n_trials={n_trials!r} is not allowed; expected an integer >= 0")
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs={jobs!r} is not allowed; expected an integer >= 1")
    _quiet_optuna()
    if area_budget is None:
        from arch.presets import sysml19_area_budget

        area_budget = float(sysml19_area_budget())
    out_path = Path(out) if out is not None else None
    if out_path is not None:
        out_path.mkdir(parents=True, exist_ok=True)
    st = make_storage(storage, out_path, fsync=fsync)
    if sampler == AUTO:
        stored = _stored_sampler(st, study_name) if resume else None
        sampler = stored or resolve_sampler(sampler, space, workload, len(tuple(objectives)),
                                            n_trials)
    problem = Problem(workload, space, tuple(objectives), float(area_budget), float(dram_gbps),
                      accuracy, min_accuracy, sampler, seed, batch, dict(simulate_options or {}))
    study = _open_study(problem, st, study_name, resume,
                        storage or (str(out_path / "study.journal") if out_path else ""))
    if resume and not isinstance(st, optuna.storages.RDBStorage):
        _fail_dead_local_trials(study, st)
    if problem.sampler == "grid":  # each design once: no more trials than designs left
        retries = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))
        left = design_count(space, workload) - distinct_evaluated(study) + retries
        if left < n_trials:
            log.info("enumerating the space: %d designs not yet run, so %d trials instead of %d",
                     left, max(left, 0), n_trials)
        n_trials = min(n_trials, max(left, 0))
    shares = _shares(n_trials, jobs)
    writer = _table_writer(study, problem, out_path, rewrite=True)  # before the workers start
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
    tracker = _Progress(study, n_trials) if progress else None
    try:
        _optimize(study, problem, shares[0], writer, 0, tracker)
    except BaseException:  # Ctrl-C or an error: the workers stop too (they ignore SIGINT)
        for c in children:
            c.terminate()
        raise
    finally:
        codes = [c.wait() for c in children]
        if tracker is not None:
            tracker.close(study)
    if any(codes):
        raise RuntimeError(f"search workers exited with codes {codes}; see their stderr")
    if out_path is not None:
        write_reports(study, problem, out_path)
    return study


def _stored_sampler(storage: optuna.storages.BaseStorage, study_name: str) -> str | None:
    """The sampler recorded in the stored study ``study_name`` (None: no such study)."""
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if summary.study_name == study_name:
            attrs = summary.user_attrs
            value = attrs.get("qdse.sampler") or json.loads(attrs.get(PROBLEM_ATTR, "{}")).get(
                "sampler", "tpe")
            return str(value)
    return None


def _quiet_optuna() -> None:
    """Optuna logs an INFO line per study and per trial; keep only its warnings. Called before
    any study is created or loaded (the "A new study created" line is logged on creation)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trial_log = logging.getLogger("optuna.study._optimize")  # where Optuna logs failed trials
    if not any(isinstance(f, _NoInterruptTraceback) for f in trial_log.filters):
        trial_log.addFilter(_NoInterruptTraceback())


class _NoInterruptTraceback(logging.Filter):
    """Drops Optuna's two warnings (one with a traceback) about a trial stopped by Ctrl-C: the
    CLI reports the interruption in one line (`dse.cli.run_cli`)."""

    def __init__(self) -> None:
        super().__init__()
        self.interrupted: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[0] if record.exc_info else None
        if exc is not None and issubclass(exc, KeyboardInterrupt):
            self.interrupted = record.getMessage().split(" failed", 1)[0]  # "Trial 7"
            return False
        if self.interrupted and record.getMessage().startswith(self.interrupted + " failed"):
            self.interrupted = None
            return False
        return True


def _die_with_parent() -> None:
    """Child workers get SIGKILL when the parent dies (Linux prctl PR_SET_PDEATHSIG) and ignore
    SIGINT: a Ctrl-C reaches the whole process group, and the parent alone reports it (one line)
    and stops them."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes

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
    _optimize(study, problem, n_trials, _table_writer(study, problem, out_path, rewrite=False),
              worker_index)
    return study


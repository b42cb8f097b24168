"""Where a study lives and how it is opened: storage URLs (journal file, SQLite, PostgreSQL),
storage failures as one-line errors, creating or resuming a study (with the resume checks), and
failing the trials of killed local workers.

``storage=None`` with ``out`` = an Optuna journal file ``out/study.journal`` (file lock, safe for
several processes on one machine); any Optuna URL (``sqlite:///...``, ``postgresql://...``) =
Optuna's RDB storage (with heartbeats, so a killed worker's trial is failed and not left RUNNING).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

from dse.search.journal_check import repair_journal
from dse.search.problem import PROBLEM_ATTR, WORKER_ATTR, Problem

__all__ = ["SETTINGS_ATTRS", "check_storage", "make_storage"]

# one logger for the package: records read "dse.search: ..." whichever module logs them
log = logging.getLogger("dse.search")


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
            repair_journal(path)  # a torn last record is dropped before anything is appended
            return _journal(path, fsync)
    if not isinstance(storage, str) or (not storage.startswith("journal:")
                                        and "://" not in storage):
        raise ValueError(f"storage={_mask_url(str(storage))!r} is not allowed; expected an Optuna "
                         "URL (sqlite:///file.db, postgresql://user@host:port/db) or journal:PATH")
    with _storage_errors(storage):
        if storage.startswith("journal:"):
            path = Path(storage.removeprefix("journal:").removeprefix("//"))
            repair_journal(path)
            return _journal(path, fsync)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(  # a killed worker's design runs again
                _postgres_driver(storage), heartbeat_interval=10, grace_period=30,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=MAX_RETRIES),
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
    if type(e).__name__ == "NoSuchModuleError":  # SQLAlchemy knows no such dialect
        scheme = storage.split("://", 1)[0]
        return (f"{scheme}:// is not a database SQLAlchemy knows; expected sqlite:///FILE, "
                "postgresql://USER@HOST:PORT/DB, mysql://... or journal:PATH")
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

    Skipping the fsync is `_JournalFileNoFsync`, a subclass of Optuna's public
    ``JournalFileBackend`` that overrides ``append_logs`` with the public lock API only.
    """
    # A process killed while holding the lock leaves the lock file behind; others break it
    # after the grace period. Appends take milliseconds (one O_APPEND write), so 10 s is long
    # enough not to break a live holder and short enough for a quick --resume.
    lock = JournalFileOpenLock(str(path), grace_period=10)
    if fsync:
        return optuna.storages.JournalStorage(_JournalFile(str(path), lock_obj=lock))
    return optuna.storages.JournalStorage(_JournalFileNoFsync(str(path), lock))


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while the journal lock is held; a signal that arrives
    meanwhile is re-raised (Ctrl-C: KeyboardInterrupt) as soon as the append is done.

    Optuna's ``JournalFileOpenLock.release`` renames the lock file, then unlinks the renamed
    file, and on any BaseException between the two unlinks it again: a Ctrl-C landing in that
    window turned into FileNotFoundError, so an interrupted search ended with exit status 2 and
    a "No such file" error instead of 130 and its one-line message. The signals are recorded by
    a Python handler (Python runs every handler in the main thread, whichever thread the OS
    delivered to - a per-thread signal mask would miss the progress display's threads), so this
    works in the main thread only; elsewhere it changes nothing. An append takes milliseconds;
    only when a killed process left the lock behind does the wait for it (the 10 s grace
    period) hold Ctrl-C back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not None:  # None: installed outside Python, left alone
            previous[sig] = signal.signal(sig, lambda signum, _frame: pending.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in dict.fromkeys(pending):
            signal.raise_signal(signum)


class _JournalFile(JournalFileBackend):
    """Optuna's journal file (fsync after each append) whose locked appends a Ctrl-C cannot
    break (:func:`_interrupts_deferred`)."""

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        with _interrupts_deferred():
            super().append_logs(logs)


class _JournalFileNoFsync(JournalFileBackend):
    """Optuna's journal file whose appends skip the fsync: one locked ``O_APPEND`` write per
    batch of records, through the lock object's public ``acquire``/``release``, with
    interrupts deferred while the lock is held (:func:`_interrupts_deferred`)."""

    def __init__(self, file_path: str, lock: JournalFileOpenLock) -> None:
        super().__init__(file_path, lock_obj=lock)
        self._qdse_path, self._qdse_lock = file_path, lock

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        text = "\n".join(json.dumps(r, separators=(",", ":")) for r in logs) + "\n"
        with _interrupts_deferred():
            self._qdse_lock.acquire()
            try:
                with open(self._qdse_path, "ab") as f:
                    f.write(text.encode("utf-8"))
                    f.flush()
            finally:
                self._qdse_lock.release()


# -- workers and studies ---------------------------------------------------------------------------
def _storage_url(storage: str | None, out: str | Path | None) -> str:
    """The string a child worker is given to reach the same storage."""
    if storage is not None:
        return storage
    if out is None:
        raise ValueError("jobs > 1 needs out= (the journal file lives there) or storage=")
    return f"journal:{Path(out).resolve() / 'study.journal'}"


_OWNERLESS_GRACE_S = 2.0
"""A RUNNING trial without `WORKER_ATTR` this old was created by a process killed before the
objective's first line (Optuna's journal records no owner): a live one names itself as soon as
its sampler has chosen the design (milliseconds; TPE on thousands of trials, a fraction of a
second)."""
MAX_RETRIES = 3
"""How often the design of a killed trial is run again (`_fail_dead_local_trials`); a design that
kills its process every time is then given up."""


def _fail_dead_local_trials(study: optuna.Study, storage: optuna.storages.BaseStorage) -> int:
    """Mark RUNNING trials of dead processes on this host FAIL (journal files have no heartbeat;
    an ownerless trial older than `_OWNERLESS_GRACE_S` is dead too) and queue each one's design
    again, at most `MAX_RETRIES` times (Optuna's `RetryHeartbeatStaleTrialCallback`, as the RDB
    storage's heartbeat does: the retry keeps the params and a grid sampler's grid point, which
    would otherwise count as visited and never run); ``storage`` is
    the study's (Optuna's public storage API: study and trial ids by name and number)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)
    host, n = socket.gethostname(), 0
    study_id = storage.get_study_id_from_name(study.study_name)
    retried = {s.system_attrs["retry_history"][-1] for s in study.get_trials(deepcopy=False)
               if s.system_attrs.get("retry_history")}  # trials whose retry is queued already
    for t in _settled_running(study):
        who = t.user_attrs.get(WORKER_ATTR)  # None: still unnamed after the grace, so killed
        if who is not None and (who.get("host") != host or not isinstance(who.get("pid"), int)
                                or _alive(who["pid"])):
            continue
        # a design was chosen: queue it again *before* the trial is FAIL. Killed between the
        # two writes, the trial stays RUNNING and is found again (its retry, queued, is not
        # queued twice); in the other order a FAIL trial without its retry would count as a
        # design evaluated, and a grid search would never run it.
        if (t.params or "grid_id" in t.system_attrs) and t.number not in retried:
            retry(study, t)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
        n += 1
    if n:
        log.info("marked %d trials of killed processes as FAIL (their designs run again)", n)
    return n


def _settled_running(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's RUNNING trials, once every ownerless one is `_OWNERLESS_GRACE_S` old: a run
    resumed within that time of a kill waits out the rest (at most the grace) instead of passing
    over the killed process's unnamed trial, which would then stay RUNNING for good. A live
    process names its trial within milliseconds, so the wait never takes one that is alive."""
    def running() -> list[optuna.trial.FrozenTrial]:
        return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))

    now = datetime.datetime.now()
    ages = [(now - t.datetime_start).total_seconds() if t.datetime_start else 0.0
            for t in running() if t.user_attrs.get(WORKER_ATTR) is None]
    young = [a for a in ages if a < _OWNERLESS_GRACE_S]
    if young:
        time.sleep(_OWNERLESS_GRACE_S - min(young))
    return running()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        if study_name not in names and resume:
            raise ValueError(f"cannot resume study {study_name!r}: it does not exist in "
                             f"{_mask_url(url) or 'this storage'} (studies there: "
                             f"{', '.join(map(repr, names)) or 'none'}); drop --resume to "
                             "create it, or check --study / --out / --storage")
        if study_name not in names:
            study = optuna.create_study(study_name=study_name, storage=storage,
                                        directions=problem.directions)
            with warnings.catch_warnings():  # public since Optuna 3.2, still "experimental"
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(list(problem.objectives))  # dashboards: not "Objective 0"
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


def check_storage(storage: str) -> None:
    """Open ``storage`` once, so an unreachable one fails before the extraction."""
    st = make_storage(storage, None)
    engine = getattr(st, "engine", None)
    if engine is not None:  # RDBStorage: release the connection pool now
        engine.dispose()


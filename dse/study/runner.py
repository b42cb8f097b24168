"""Execute a study: expand its grid, run each design point once, cache it, write the report.

The runner knows nothing about any particular study (see the protocol in `studies` and
``docs/studies.md``). For each design point it

1. looks up ``<out>/.cache/<study>/<key>.json``; the key hashes the study name, the point and a
   fingerprint of the model code (arch/, dse/ simulator, workloads/, quant/, studies/), so a rerun
   reuses finished points - also after an interruption - and a code change recomputes them
   (opening the cache removes the temporary files of runs killed mid-write,
   `dse.study.atomic.remove_stale_temps`);
2. otherwise calls ``study.evaluate(point, ctx)`` (in a worker process with ``jobs > 1``) and stores
   its rows atomically as soon as the point finishes;
3. concatenates all rows (one or more per point) into the results table, in grid order.

A progress display (`dse.cli.progress`: a tqdm bar on a terminal, a line per 10 % in a log)
advances once per design point and shows the point being run.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import importlib
import itertools
import json
import logging
import math
import multiprocessing
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd

from dse.study.atomic import atomic_write_text, remove_stale_temps
from dse.study.report import FORMATS, RunInfo, Summary, write_report

__all__ = ["DEFAULT_CODE", "Context", "StudyRun", "code_fingerprint", "expand_grid", "point_key",
           "resolve_params", "run", "run_study"]

log = logging.getLogger(__name__)

DEFAULT_CODE = ("arch", "dse", "workloads", "quant", "studies/__init__.py",
                  "studies/_params.py", "studies/pipeline.py")
"""What a study's points depend on by default (plus the study's own module): the model code and the
shared study helpers, not the other studies."""
_PRESENTATION = frozenset({
    # reporting, CLIs, search and training code: a change there cannot change a design point
    "dse/study/report.py", "dse/study/atomic.py", "dse/study/tables.py", "dse/study/plots.py",
    "dse/study/docs.py", "dse/cli.py", "dse/study/cli.py", "dse/study/sweep.py",
    "dse/study/runner.py", "dse/study/__init__.py", "dse/study/__main__.py", "dse/sweep.py",
    "dse/study/registry.py", "dse/study/tidy.py", "dse/inputs.py", "dse/simulate.py",
    "dse/compare.py", "dse/__main__.py",
    "dse/search/space.py", "dse/search/accuracy.py", "quant/train.py", "quant/table.py",
    "quant/table_checks.py", "quant/table_runs.py", "quant/table_report.py", "quant/data.py",
    "workloads/show.py",
    # the search package (a study that runs searches names "dse/search" in its CODE)
    "dse/search/__init__.py", "dse/search/__main__.py", "dse/search/cli.py",
    "dse/search/driver.py", "dse/search/objective.py", "dse/search/problem.py",
    "dse/search/reports.py", "dse/search/storage.py", "dse/search/workload.py",
    "dse/search/journal_check.py", "dse/search/coverage.py", "dse/search/stages.py",
})
_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Context:
    """What `evaluate` may use besides its point: where to keep reusable artefacts."""

    cache_dir: Path | None = None
    """Folder for artefacts shared by points (extracted workloads as JSON); None = no disk cache."""


@dataclass(frozen=True, slots=True)
class StudyRun:
    """The outcome of `run_study`: the results table, run statistics and the files written."""

    results: pd.DataFrame
    info: RunInfo
    files: tuple[Path, ...]
    summary: Summary | None = None
    """What the report shows (None when no report was written)."""


def expand_grid(axes: Mapping[str, Iterable[Any]], **fixed: Any) -> list[dict[str, Any]]:
    """Cartesian product of ``axes`` (first axis slowest) with ``fixed`` added to every point."""
    keys = list(axes)
    values = [list(axes[k]) for k in keys]
    for k, v in zip(keys, values):
        if not v:
            raise ValueError(f"grid axis {k}=[] is empty; give at least one value")
    return [{**fixed, **dict(zip(keys, combo))} for combo in itertools.product(*values)]


def code_fingerprint(packages: Sequence[str] = DEFAULT_CODE) -> str:
    """Short hash of the model code a point's result depends on (not the report/CLI code).

    ``packages``: top-level packages, sub-packages (``"dse/search"``) or single files
    (``"studies/mac_area.py"``) to hash; a study narrows or widens it with an optional
    ``CODE = (...)`` attribute. A top-level package is hashed without its presentation modules
    (`_PRESENTATION`); a sub-package or file is hashed whole, presentation or not: that is how a
    study whose points run such code (e.g. the search) puts it in its cache key."""
    packages = tuple(dict.fromkeys(packages))
    h = hashlib.sha256()
    for pkg in packages:
        if pkg.endswith(".py"):
            h.update(pkg.encode())
            h.update((_ROOT / pkg).read_bytes())
            continue
        whole = "/" in pkg.strip("/")  # a sub-package named on its own
        for path in sorted((_ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(_ROOT).as_posix()
            if rel in _PRESENTATION and not whole:
                continue
            h.update(rel.encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _study_code(study: ModuleType) -> tuple[str, ...]:
    """The code a study's points depend on: its ``CODE`` attribute, else the default packages plus
    its own module file."""
    if hasattr(study, "CODE"):
        return tuple(study.CODE)
    own: tuple[str, ...] = ()
    path = Path(getattr(study, "__file__", "") or "").resolve()
    if path.is_file() and _ROOT in path.parents:
        own = (path.relative_to(_ROOT).as_posix(),)
    return DEFAULT_CODE + own


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def point_key(study: str, point: Mapping[str, Any], fingerprint: str) -> str:
    """Cache key of one design point."""
    return hashlib.sha256(_canonical([study, dict(point), fingerprint]).encode()).hexdigest()[:24]


def _files_digest(point: Mapping[str, Any]) -> str:
    """Hash of the design files a point names (a study's ``preset`` may be a TOML/YAML file):
    editing the file recomputes the point, as editing the model code does."""
    h = ""
    for v in point.values():
        if isinstance(v, str) and v.lower().endswith((".toml", ".yaml", ".yml")):
            try:
                h += hashlib.sha256(Path(v).read_bytes()).hexdigest()[:16]
            except OSError:
                h += "unreadable"
    return h


def _label(point: Mapping[str, Any]) -> str:
    def short(v: Any) -> str:
        return f"{v:g}" if isinstance(v, float) else str(v)

    text = " ".join(f"{k}={short(v)}" for k, v in point.items())
    return text if len(text) <= 70 else text[:70].rsplit(" ", 1)[0] + " ..."  # whole words


def resolve_params(study: ModuleType, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The study's default PARAMS updated by ``overrides``; unknown names raise ValueError."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(study.PARAMS))
    if unknown:
        raise ValueError(f"study {study.NAME!r} has no parameter {', '.join(map(repr, unknown))}; "
                         f"its parameters: {', '.join(study.PARAMS) or '(none)'}")
    return {**study.PARAMS, **overrides}


def _evaluate(module_name: str, point: dict[str, Any], ctx: Context
              ) -> tuple[list[dict[str, Any]], float]:
    """Worker entry point (module-level so it pickles): rows of one point and its wall time."""
    study = importlib.import_module(module_name)
    t0 = time.perf_counter()
    rows = study.evaluate(dict(point), ctx)
    if isinstance(rows, Mapping):
        rows = [rows]
    rows = [{**point, **dict(r)} for r in rows]
    return rows, time.perf_counter() - t0


def _rows_digest(rows: Any) -> str:
    """Checksum of a cache entry's rows (sha256 of their canonical JSON)."""
    return hashlib.sha256(_canonical(rows).encode()).hexdigest()


def _load_cached(path: Path) -> list[dict[str, Any]] | None:
    """The rows cached at ``path``; None when missing, and None with a warning when unreadable
    (torn by a crash, edited) or when the rows do not match their checksum: recompute."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows, digest = list(data["rows"]), data.get("rows_sha256")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        log.warning("%s is unreadable (%s); recomputing its design point", path, type(e).__name__)
        return None
    if digest != _rows_digest(rows):
        log.warning("%s: its rows do not match their checksum (%s); recomputing its design point",
                    path, "none stored" if digest is None else "edited or corrupt")
        return None
    return rows


def _worker_init(parent_pid: int) -> None:
    """Pool worker set-up: die with the parent, even by SIGKILL (Linux PR_SET_PDEATHSIG; checked
    once more after the call in case the parent died first), and on Ctrl-C exit at once without
    a traceback - the parent reports the interruption in one line."""
    import ctypes
    import os
    import signal

    signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: workers finish their point
        return
    if os.getppid() != parent_pid:
        os._exit(1)


def run_study(study: ModuleType, *, params: Mapping[str, Any] | None = None,
              out: str | Path | None = None, jobs: int = 1, formats: Sequence[str] = FORMATS,
              progress: bool = False, use_cache: bool = True, report: bool = True,
              command: str = "") -> StudyRun:
    """Run every design point of ``study`` and (when ``out`` is given) write its report.

    ``params`` override the study's PARAMS. Points are cached under ``out/.cache/`` (nothing on
    disk when ``out`` is None). ``jobs > 1`` evaluates points in that many worker processes.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs={jobs!r} is not allowed; expected an integer >= 1")
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"format={','.join(formats)!r} is not allowed; "
                         f"expected a non-empty comma list of {', '.join(FORMATS)}")
    resolved = resolve_params(study, params)
    points = study.grid(resolved)
    if not points:
        raise ValueError(f"study {study.NAME!r} produced no design points for {resolved}")
    t_start = time.perf_counter()
    fingerprint = code_fingerprint(_study_code(study))
    out_dir = Path(out) if out is not None else None
    cache_dir = out_dir / ".cache" if out_dir is not None else None
    ctx = Context(cache_dir=cache_dir / "artefacts" if cache_dir is not None else None)
    point_dir = cache_dir / study.NAME if cache_dir is not None else None
    if out_dir is not None:  # the temporary files of runs killed mid-write (their pid is gone)
        remove_stale_temps(out_dir)
        remove_stale_temps(out_dir / ".cache", recursive=True, legacy=True)

    results: list[list[dict[str, Any]] | None] = [None] * len(points)
    keys = [point_key(study.NAME, p, fingerprint + _files_digest(p)) for p in points]
    if use_cache and point_dir is not None:
        for i, key in enumerate(keys):
            results[i] = _load_cached(point_dir / f"{key}.json")
    todo = [i for i, r in enumerate(results) if r is None]
    n_cached = len(points) - len(todo)

    from dse.cli import progress as progress_display

    bar = progress_display(len(points), initial=n_cached, desc=study.NAME, unit="point",
                           enabled=progress)

    def finish(i: int, rows: list[dict[str, Any]], seconds: float) -> None:
        # round-trip through JSON so a fresh run and a cached rerun give identical tables
        rows = json.loads(json.dumps(rows, default=_json_default))
        results[i] = rows
        if point_dir is not None:
            atomic_write_text(point_dir / f"{keys[i]}.json",
                              json.dumps({"study": study.NAME, "point": points[i],
                                          "fingerprint": fingerprint, "elapsed_s": seconds,
                                          "rows": rows, "rows_sha256": _rows_digest(rows)},
                                         default=_json_default))
        bar.set_postfix_str(_label(points[i]), refresh=False)
        bar.update(1)

    if todo and hasattr(study, "prepare"):  # shared artefacts once, before any worker starts
        study.prepare([points[i] for i in todo], ctx)
    try:
        if jobs == 1 or len(todo) <= 1:
            for i in todo:
                bar.set_postfix_str(_label(points[i]))
                finish(i, *_evaluate(study.__name__, points[i], ctx))
        else:
            mp = multiprocessing.get_context("spawn")  # torch is not fork-safe after threads start
            with cf.ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=mp,
                                        initializer=_worker_init,
                                        initargs=(os.getpid(),)) as pool:
                futures = {pool.submit(_evaluate, study.__name__, points[i], ctx): i for i in todo}
                for fut in cf.as_completed(futures):
                    finish(futures[fut], *fut.result())
    finally:
        bar.close()

    rows = [r for chunk in results for r in (chunk or [])]
    df = pd.DataFrame(rows)
    if hasattr(study, "derive"):  # columns computed across points (e.g. speedup over a baseline)
        df = study.derive(df, resolved)
    info = RunInfo(study=study.NAME, points=len(points), cached=n_cached, computed=len(todo),
                   elapsed_s=time.perf_counter() - t_start, params=_jsonable(resolved),
                   fingerprint=fingerprint, command=command)
    files: tuple[Path, ...] = ()
    summary: Summary | None = None
    if out_dir is not None and report:
        summary = study.summarize(df, resolved)
        files = tuple(write_report(df, summary, info, out_dir, formats))
    log.info("%s: %d points (%d cached, %d computed) in %.1f s", study.NAME, info.points,
             info.cached, info.computed, info.elapsed_s)
    return StudyRun(results=df, info=info, files=files, summary=summary)


def _json_default(v: Any) -> Any:
    if hasattr(v, "item"):  # numpy scalars
        return v.item()
    if isinstance(v, tuple | set):
        return list(v)
    return str(v)


def _jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    def conv(v: Any) -> Any:
        if isinstance(v, float) and math.isinf(v):
            return "inf"
        if isinstance(v, list | tuple):
            return [conv(x) for x in v]
        return v

    return {k: conv(v) for k, v in params.items()}


def run(study: ModuleType, *, out: str | Path | None = None, jobs: int = 1,
        progress: bool = False, use_cache: bool = True, **params: Any) -> pd.DataFrame:
    """The Python entry point behind every ``studies.<name>.run(...)``: the results DataFrame."""
    return run_study(study, params=params, out=out, jobs=jobs, progress=progress,
                     use_cache=use_cache).results

"""The runs of ``python -m quant.table``: train (or reload) every row at every seed, FP and
from-scratch runs first, in worker processes with ``jobs > 1`` (:func:`build_table`)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd

from quant.table_checks import Row, body_bits

__all__ = ["build_table"]


def _untrained_layers(row: Row) -> list[dict[str, Any]]:
    """``metrics["layers"]`` of the row's model as ``quant.train`` would build it, untrained
    (for a run that diverged before writing its metrics)."""
    import workloads.zoo as zoo
    from quant.recipes import quantize
    from quant.train_config import procedure_of
    from quant.train_loop import _layer_bits

    opts = dict(row.options)
    model = zoo.get("digits_cnn", width=procedure_of(row.recipe).width)
    q = quantize(model, row.recipe, row.w_bits, row.a_bits,
                 first_last_bits=opts.get("first_last_bits"),
                 shortcut_bits=opts.get("shortcut_bits"), overrides=opts.get("overrides"))
    return _layer_bits(q)


def _run_one(row: Row, seed: int, runs_dir: str, fp_epochs: int, ft_epochs: int,
             threads: int, run_prefix: str = "runs") -> dict[str, Any]:
    """Train (or reload) one row for one seed; runs in a worker process with ``jobs > 1``."""
    import torch

    from quant import train as qtrain

    torch.set_num_threads(threads)
    opts = dict(row.options)
    t0 = time.perf_counter()
    res: dict[str, Any] = {"recipe": row.name, "w_bits": row.w_bits, "a_bits": row.a_bits,
                           "seed": seed, "error": ""}
    try:
        m = qtrain.trained_digits_result(row.recipe, row.w_bits, row.a_bits, runs_dir,
                                         seed=seed, fp_epochs=fp_epochs, ft_epochs=ft_epochs,
                                         **opts).metrics
        layers = m["layers"]
        res |= {"accuracy": float(m["test_accuracy"]),
                "init": "fp" if m["init_from"] else "scratch", "epochs": m["epochs"],
                "width": m["width"], "time_s": float(m["time_s"]),
                "cpu_s": float(m["cpu_s"])}
    except FloatingPointError as exc:  # a diverged recipe is a result, not a crash of the table
        layers = _untrained_layers(row)
        res |= {"accuracy": math.nan, "init": "", "epochs": 0, "width": 0, "time_s": math.nan,
                "cpu_s": math.nan, "error": str(exc)}
    res["body_w_bits"], res["body_a_bits"] = body_bits(layers)
    name = qtrain.run_name(row.recipe, row.w_bits, row.a_bits, seed=seed, **opts)
    res["run"] = f"{run_prefix}/{name}"
    res["wall_s"] = time.perf_counter() - t0
    return res


def build_table(out: str | Path, rows: Sequence[Row], *, seeds: Sequence[int] = (0,),
                fp_epochs: int, ft_epochs: int, jobs: int = 1, threads: int = 1,
                cache: str | Path | None = None,
                on_run: Callable[[dict[str, Any]], None] | None = None) -> pd.DataFrame:
    """Run every row for every seed; return one row per (row, seed), in ``rows`` order.

    Run folders live in ``cache`` (default ``out/runs``); the ``run`` column names them relative
    to ``out``. Runs that need no FP checkpoint go first (everything else fine-tunes from
    one): the FP row, rows trained from scratch (``wrpn``) and, per seed, one run of a widened
    recipe that fine-tunes, which trains its widened FP network on the way.
    """
    from quant import train as qtrain
    from quant.digits_runs import _from_scratch

    if jobs < 1:
        raise ValueError(f"jobs: {jobs} is not allowed; must be >= 1")
    if not seeds:
        raise ValueError("seeds: empty is not allowed; give at least one seed")
    runs_dir = Path(out) / "runs" if cache is None else Path(cache)
    prefix = Path(os.path.relpath(runs_dir.resolve(), Path(out).resolve())).as_posix()
    tasks = [(i, (r, s)) for i, (r, s) in enumerate((r, s) for r in rows for s in seeds)]

    def scratch(r: Row) -> bool:
        return _from_scratch(r.recipe, dict(r.options).get("from_scratch"))

    first = [(i, t) for i, t in tasks if t[0].recipe == "fp32" or scratch(t[0])]
    wide: set[tuple[int, int]] = set()
    for i, t in tasks:
        width = qtrain.procedure_of(t[0].recipe).width
        if width != 1 and not scratch(t[0]) and (width, t[1]) not in wide:
            wide.add((width, t[1]))
            first.append((i, t))
    done = {i for i, _ in first}
    rest = [(i, t) for i, t in tasks if i not in done]
    results: dict[int, dict[str, Any]] = {}

    def collect(i: int, res: dict[str, Any]) -> None:
        results[i] = res
        if on_run is not None:
            on_run(res)

    extra = (str(runs_dir), fp_epochs, ft_epochs, threads, prefix)
    if jobs == 1:
        for i, t in [*first, *rest]:
            collect(i, _run_one(*t, *extra))
    else:
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"),
                                   initializer=_ignore_sigint)
        try:
            for stage in (first, rest):
                futures = [(i, pool.submit(_run_one, *t, *extra)) for i, t in stage]
                for i, fut in futures:
                    collect(i, fut.result())
        except BaseException:
            # Ctrl-C or a failed run: stop the workers now (they ignore SIGINT, so that one
            # keypress gives one line from the parent, not a traceback per worker)
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    return pd.DataFrame([results[i] for i in range(len(tasks))])


def _ignore_sigint() -> None:
    """Pool initializer: workers leave Ctrl-C to the parent, which terminates them."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)

"""``python -m dse.search``: create (or resume) a search study and run it; ``python -m dse.search
worker --storage URL --study NAME --trials N``: add trials to a stored study.

Every check that needs no workload runs before the (torch, ~20 s) extraction; bad input is one
``error:`` line and exit status 2 (`dse.cli`).
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from dse.cli import (
    CliParser,
    check_jobs,
    check_writable,
    float_list,
    folder,
    int_list,
    pair_list,
    run_cli,
)
from dse.search.accuracy import AccuracyModel
from dse.search.coverage import AUTO
from dse.search.driver import run, worker
from dse.search.problem import OBJECTIVES, SAMPLERS, problem_errors
from dse.search.space import FORMULATIONS, SearchSpace, base_fields
from dse.search.storage import check_storage
from dse.search.workload import prepare_workload

__all__ = ["main"]

_INTERRUPTED = ("interrupted: finished trials are stored in the study; rerun the same command "
                "with --resume to continue")
_RECIPE_BITS = {"wrpn": (2, 4)}  # WRPN: W2A4 on a 2x-wide network (PACT-SAWB paper Section 7.3)


def _build_parser() -> CliParser:
    p = CliParser(
        prog="python -m dse.search",
        description="Optuna design-space search (cores, array, MAC bits, SRAM, per-layer bits). "
                    "Subcommand 'worker' joins an existing study: python -m dse.search worker "
                    "--storage URL --study NAME --trials N")
    p.add_argument("--model", required=True)
    p.add_argument("--recipe", required=True)
    p.add_argument("--out", required=True, type=folder)
    p.add_argument("--trials", required=True, type=int, help="number of (more) trials to run")
    p.add_argument("--arch", default=None, metavar="PRESET|FILE",
                   help="design (preset or TOML/YAML file) whose clock, dataflow, node, latencies "
                        "and buffers every searched design keeps, and whose area is the default "
                        "--area-budget (default: the sysml19 preset's 16-bit system)")
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
    p.add_argument("--sampler", choices=(*SAMPLERS, AUTO), default=AUTO,
                   help="auto (default): grid (every design once) when the space holds no more "
                        "designs than --trials, else nsga2 for several objectives, tpe for one; "
                        "on --resume, the stored study's")
    p.add_argument("--formulation", choices=FORMULATIONS, default="per_core_sram",
                   help="per_core_sram (default): every core carries a sampled --sram-kib, so SRAM "
                        "and cores share the area budget; fixed_total_sram: --total-sram-kib on "
                        "the chip whatever the core count, the rest of the budget buys cores "
                        "(the wrpn_vs_pact study's iso-area rule)")
    p.add_argument("--total-sram-kib", type=float, default=None,
                   help="chip SRAM of --formulation fixed_total_sram, KiB (default: the --arch "
                        "design's total, else the sysml19 16384)")
    p.add_argument("--layer-bits", choices=("recipe", "mac", "search"), default="search")
    p.add_argument("--bits", default="1,2,4,8",
                   help="per-layer bit choices (w and a); the default reaches below the 2-bit "
                        "recipes so that --min-accuracy recipe can reject designs")
    p.add_argument("--mac-bits", default="2x2,2x4,4x4,8x8,16x16")
    p.add_argument("--arrays", default="8x64", help="array shapes ROWSxCOLS")
    p.add_argument("--sram-kib", default=None,
                   help="SRAM per core choices of --formulation per_core_sram, KiB (default "
                        "512,1024,2048)")
    p.add_argument("--cores", default=None, help="LO:HI to sample cores (default: fill budget)")
    p.add_argument("--schedules", default="layer_by_layer",
                   help="multi-core schedules to choose from: layer_by_layer, pipeline, "
                        "data_parallel (comma list; pipeline stages balanced by estimated time)")
    p.add_argument("--groups", default="1",
                   help="numbers of equal core groups to choose from (comma list; 1 with "
                        "layer_by_layer is one pool of cores, today's model)")
    p.add_argument("--micro-batches", default="1",
                   help="images per micro-batch to choose from (comma list; each divides "
                        "--batch): images that move through the core groups together")
    p.add_argument("--stage-splits", default="balanced",
                   help="how multi-group schedules cut their stages, to choose from: balanced "
                        "(by estimated stage time), macs (contiguous stages of equal MACs)")
    p.add_argument("--edge-cores", default="0",
                   help="cores of a high-precision edge group for the first and last layers, "
                        "to choose from (comma list; 0: none); the body gets the rest of the "
                        "area budget, and edge designs run layer_by_layer on groups=1")
    p.add_argument("--edge-mac-bits", default="16x16",
                   help="MAC precisions of the edge group to choose from (comma list of WxA)")
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
    p.add_argument("--quiet", action="store_true",
                   help="no progress display and no note before the model extraction")
    return p


def _worker_main(argv: Sequence[str]) -> int:
    p = CliParser(prog="python -m dse.search worker",
                  description="Run trials of an existing search study.")
    p.add_argument("--storage", required=True)
    p.add_argument("--study", required=True)
    p.add_argument("--trials", required=True, type=int)
    p.add_argument("--out", type=folder, default=None, help="also maintain trials.csv here")
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

    def body() -> int:
        return _worker_main(argv[1:]) if argv[:1] == ["worker"] else _main(argv)

    return run_cli(body, argv, interrupted=_INTERRUPTED, debug_flag=None)


def _main(argv: Sequence[str]) -> int:
    import time

    a = _build_parser().parse_args(argv)
    if a.trials < 0:
        raise ValueError(f"--trials={a.trials} is not allowed; expected an integer >= 0")
    check_jobs(a.jobs)  # before the extraction, as every other check
    out: Path = a.out
    check_writable(out)
    # 1. every check that needs no workload, before the (torch, ~20 s) extraction
    objectives = tuple(o for o in a.objectives.split(",") if o)
    sampler = a.sampler
    w_bits, a_bits = _RECIPE_BITS.get(a.recipe, (2, 2))
    w_bits = a.w_bits if a.w_bits is not None else w_bits
    a_bits = a.a_bits if a.a_bits is not None else a_bits
    base_design = None
    if a.arch is not None:
        from dse.inputs import load_design

        base_design = load_design(a.arch, field="--arch")
        if a.area_budget is None:
            a.area_budget = float(base_design.area)
    try:
        space = _space_from_args(a, base_design)
    except ValueError as e:  # the space names its fields; the user typed flags
        raise ValueError(_as_flags(str(e))) from None
    min_acc_arg = _min_accuracy_arg(a.min_accuracy)
    if a.accuracy == "measured" and a.model != "digits_cnn":
        raise ValueError(f"--accuracy measured needs --model digits_cnn (got {a.model!r}); "
                         "zoo models have no trained weights here: use --accuracy proxy")
    if a.area_budget is None:
        from arch.presets import sysml19_area_budget

        a.area_budget = float(sysml19_area_budget())
    _check_bounds(a)
    problems = problem_errors(space, objectives, a.area_budget, dram_gbps=a.dram_gbps,
                              sampler=sampler, batch=a.batch,
                              min_accuracy=min_acc_arg if isinstance(min_acc_arg, float)
                              else None, has_accuracy=a.accuracy != "none")
    if problems:
        raise ValueError("invalid search problem: " + "; ".join(problems))
    undivided = [m for m in space.micro_batches if a.batch % m]
    if undivided:  # every trial choosing one would fail in the simulator: say so up front
        raise ValueError(f"--micro-batches={a.micro_batches!r} is not allowed with "
                         f"--batch={a.batch}: {', '.join(map(str, undivided))} does not divide "
                         "it; expected micro-batch sizes that divide --batch")
    if a.storage is not None:
        check_storage(a.storage)
    # 2. the workload (extracted once, cached in --out) and the accuracy model
    if not out.exists():  # (an existing --out may hold a cached workload of any model)
        _check_model_and_recipe(a.model, a.recipe)
        out.mkdir(parents=True)  # the input is valid: now the folder may exist
    if not a.quiet and not (out / "source.json").exists():  # a cache hit takes no time
        print(f"preparing {a.model} with {a.recipe} W{w_bits}A{a_bits} (traced once, then "
              f"cached in {out}) ...", file=sys.stderr, flush=True)
    wl, proxy = prepare_workload(a.model, a.recipe, out, w_bits=w_bits, a_bits=a_bits,
                                 batch=a.batch, sensitivity=a.sensitivity, seed=a.seed)
    accuracy: AccuracyModel | None = proxy
    if a.accuracy == "measured":
        from dse.search.accuracy import digits_measured_accuracy

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
    started = datetime.datetime.now()  # Optuna stamps trials with the local naive time
    t0 = time.perf_counter()
    study = run(space, objectives, workload=wl, n_trials=a.trials,
                study_name=a.study or f"{a.model}-{a.recipe}", storage=a.storage,
                sampler=sampler, jobs=a.jobs, out=out, accuracy=accuracy, min_accuracy=min_acc,
                area_budget=a.area_budget, dram_gbps=a.dram_gbps, batch=a.batch, seed=a.seed,
                resume=a.resume, simulate_options=options, fsync=a.fsync,
                progress=not a.quiet)
    dt = time.perf_counter() - t0
    df = pd.read_csv(out / "trials.csv")
    front = pd.read_csv(out / "pareto.csv")
    ran = sum(1 for t in study.get_trials(deepcopy=False)
              if t.datetime_start is not None and t.datetime_start >= started)
    print(f"{ran} trials in {dt:.1f} s ({ran / dt if dt else 0:.2f} trials/s, "
          f"jobs={a.jobs}); study {study.study_name!r} holds {len(df)} trials: "
          f"{_state_counts(df)}; {len(front)} on the Pareto front")
    summary = out / "summary.txt"
    if summary.exists():  # formulation, coverage, best design, edge warnings
        print(summary.read_text(encoding="utf-8"), end="")
    label = accuracy.label if accuracy is not None else "none"
    print(f"accuracy_proxy column = {label}"
          + (f"; constraint accuracy_proxy >= {min_acc:.4g}" if min_acc is not None
             else "; no accuracy constraint"))
    print(f"wrote {out / 'trials.csv'}, {out / 'pareto.csv'}"
          + (f", {out / 'pareto.png'} (and .svg), {out / 'best.json'}"
             if (out / "best.json").exists() else "") + f", {out / 'summary.txt'}")
    return _no_feasible_design(df, min_acc)


def _no_feasible_design(df: pd.DataFrame, min_acc: float | None) -> int:
    """0, or 1 after one ``error:`` line when trials finished and none found a feasible design:
    a search that cannot succeed (an accuracy floor no design reaches, a budget no core fits,
    a design every trial of which raises) must not look like one."""
    done = df[df["state"] == "COMPLETE"] if len(df) else df
    if len(done) and done["feasible"].astype("boolean").fillna(False).any():
        return 0
    ended = df[df["state"].isin(("PRUNED", "FAIL"))] if len(df) else df
    if not len(done) and not len(ended):
        return 0  # --trials 0, or only trials still running: nothing to judge
    if not len(done):
        reasons = (ended["reason"].dropna().astype(str).value_counts()
                   if "reason" in ended else pd.Series(dtype=int))
        why = (f"; most often: {reasons.index[0]} ({reasons.iloc[0]} of them)"
               if len(reasons) else "")
        counts = ", ".join(f"{n} {state.lower()}" for state, n in
                           ended["state"].value_counts().sort_index().items())
        print(f"error: none of the {len(ended)} finished trials evaluated a design ({counts})"
              f"{why}; see the reason column of trials.csv", file=sys.stderr)
        return 1
    floor = (f"the accuracy floor accuracy_proxy >= {min_acc:.4g}" if min_acc is not None
             else "the constraints")
    print(f"error: none of the {len(done)} completed trials is feasible: every design misses "
          f"{floor} (or the area budget); lower --min-accuracy, widen the space or raise "
          "--area-budget", file=sys.stderr)
    return 1


def _check_model_and_recipe(model: str, recipe: str) -> None:
    from workloads import zoo

    if model not in zoo.names():
        raise ValueError(f"--model={model!r} is not allowed; expected one of "
                         f"{', '.join(zoo.names())}")
    import quant

    if recipe not in quant.recipes():
        raise ValueError(f"--recipe={recipe!r} is not allowed; expected one of "
                         f"{', '.join(quant.recipes())}")


def _state_counts(df: pd.DataFrame) -> str:
    """E.g. "12 complete (9 feasible, 3 below the accuracy floor), 4 pruned (area), 0 failed"."""
    state = df["state"] if len(df) else pd.Series(dtype=object)
    done = df[state == "COMPLETE"]
    feasible = int(done["feasible"].astype("boolean").fillna(False).sum()) if len(done) else 0
    running = int((state == "RUNNING").sum())  # e.g. another machine's worker, mid-trial
    return (f"{len(done)} complete ({feasible} feasible, {len(done) - feasible} below the "
            f"accuracy floor), {int((state == 'PRUNED').sum())} pruned (area), "
            f"{int((state == 'FAIL').sum())} failed"
            + (f", {running} still running" if running else ""))


def _space_from_args(a: Any, base_design: Any = None) -> SearchSpace:
    """The SearchSpace of the CLI flags (raises the space's one ValueError on bad bounds)."""
    cores = None
    if a.cores:
        lo, _, hi = a.cores.partition(":")
        try:
            cores = (int(lo), int(hi or lo))
        except ValueError as e:
            raise ValueError(f"--cores={a.cores!r} is not allowed; expected LO:HI") from e
        if not 1 <= cores[0] <= cores[1]:
            raise ValueError(f"--cores={a.cores!r} is not allowed; expected LO:HI with "
                             "1 <= LO <= HI")
    fixed_total = a.formulation == "fixed_total_sram"
    if fixed_total and a.sram_kib is not None:
        raise ValueError(f"--sram-kib={a.sram_kib!r} is not allowed with --formulation "
                         "fixed_total_sram (each core gets --total-sram-kib / cores); pass "
                         "--total-sram-kib, or --formulation per_core_sram")
    if not fixed_total and a.total_sram_kib is not None:
        raise ValueError(f"--total-sram-kib={a.total_sram_kib!r} is not allowed with "
                         "--formulation per_core_sram (each core carries a --sram-kib choice); "
                         "pass --formulation fixed_total_sram")
    total = a.total_sram_kib
    if fixed_total and total is None and base_design is not None:
        total = base_design.sram_bytes_total / 1024.0
    return SearchSpace(
        mac_bits=pair_list(a.mac_bits, "--mac-bits"),
        array_shapes=pair_list(a.arrays, "--arrays"),
        sram_kib=float_list(a.sram_kib or "512,1024,2048", "--sram-kib"), cores=cores,
        formulation=a.formulation, total_sram_kib=total,
        schedules=tuple(x.strip() for x in a.schedules.split(",") if x.strip()),
        groups=int_list(a.groups, "--groups"),
        micro_batches=int_list(a.micro_batches, "--micro-batches"),
        stage_splits=tuple(x.strip() for x in a.stage_splits.split(",") if x.strip()),
        edge_cores=int_list(a.edge_cores, "--edge-cores"),
        edge_mac_bits=pair_list(a.edge_mac_bits, "--edge-mac-bits"),
        layer_bits=a.layer_bits, layer_w_bits=int_list(a.bits, "--bits"),
        layer_a_bits=int_list(a.bits, "--bits"),
        first_last_bits=a.first_last_bits, shortcut_bits=a.shortcut_bits,
        fixed_roles=tuple(r for r, searched in (("first", a.search_first_last),
                                                ("last", a.search_first_last),
                                                ("shortcut", a.search_shortcuts)) if not searched),
        base=base_fields(base_design) if base_design is not None else ())


_FLAGS = {"mac_bits": "--mac-bits", "array_shapes": "--arrays", "sram_kib": "--sram-kib",
          "total_sram_kib": "--total-sram-kib", "formulation": "--formulation",
          "schedules": "--schedules", "groups": "--groups",
          "micro_batches": "--micro-batches", "stage_splits": "--stage-splits",
          "edge_cores": "--edge-cores", "edge_mac_bits": "--edge-mac-bits",
          "layer_w_bits": "--bits", "layer_a_bits": "--bits", "cores": "--cores",
          "first_last_bits": "--first-last-bits", "shortcut_bits": "--shortcut-bits"}


def _as_flags(message: str) -> str:
    """A SearchSpace message with its field names (``array_shapes=...``) as the CLI's flags."""
    for field, flag in _FLAGS.items():
        message = re.sub(rf"(?<![\w-]){field}=", f"{flag}=", message)
    # two fields of one flag (--bits sets layer_w_bits and layer_a_bits): one complaint
    return "; ".join(dict.fromkeys(message.replace("invalid SearchSpace: ", "").split("; ")))


def _check_bounds(a: Any) -> None:
    """Bounds the physical world sets, checked before the extraction (``arch.area``)."""
    from arch.area import MAX_AREA_MM2

    if not 0 < a.area_budget <= MAX_AREA_MM2:  # also rejects nan
        raise ValueError(f"--area-budget={a.area_budget!r} is not allowed; expected mm^2 in "
                         f"(0, {MAX_AREA_MM2:g}] (see arch.area.MAX_AREA_MM2)")
    if not 1 <= a.batch <= MAX_BATCH:
        raise ValueError(f"--batch={a.batch} is not allowed; expected an integer in "
                         f"1..{MAX_BATCH}")


MAX_BATCH = 1 << 20
"""Largest --batch: a million images per inference batch is beyond any accelerator's memory."""


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
    if not math.isfinite(value):  # nan, or an infinite floor that no design can meet
        raise ValueError(f"--min-accuracy={text!r} is not allowed; expected a finite number "
                         "(proxy: SQNR dB; measured: top-1 in 0..1), 'recipe' or 'none'")
    return value


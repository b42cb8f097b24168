"""Benchmark: 500 trials of AlexNet design search with --jobs 2 (issue 6 target: < 5 minutes).

    python benchmarks/bench_search.py [--trials 500] [--jobs 2] [--out DIR]

Steps: (1) extract AlexNet under PACT-SAWB once and cache workload + proxy as JSON in DIR (the
only torch step, timed separately); (2) run ``python -m dse.search`` with ``--jobs`` processes on
the journal file in DIR and time it end to end (process start-up, sampling, storage, simulation,
CSV rewrites, final reports); (3) time the simulator alone on designs the search visited, and
compare: with J processes the search can at best reach J / t_sim trials/s. It also counts the
trials the accuracy constraint rejected (``--min-accuracy recipe``, the CLI default: the proxy of
the recipe's W2A2 bits; per-layer choices 1, 2, 4, 8) and those the area budget pruned.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=500)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--model", default="alexnet")
    p.add_argument("--recipe", default="pact_sawb")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    out = a.out or Path(tempfile.mkdtemp(prefix="bench_search-"))
    if (out / "study.journal").exists():
        print(f"error: {out} already holds a study; pass an empty --out", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)

    from dse.search import prepare_workload

    t0 = time.perf_counter()
    wl, _ = prepare_workload(a.model, a.recipe, out, w_bits=2, a_bits=2)
    t_extract = time.perf_counter() - t0
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} "
          "(shared with other users: timings are indicative)")
    print(f"extract {wl.name} ({len(wl.compute_layers())} compute layers, "
          f"{wl.total_macs / 1e9:.2f} GMACs) + proxy, once: {t_extract:.1f} s")

    cmd = [sys.executable, "-m", "dse.search", "--model", a.model, "--recipe", a.recipe,
           "--trials", str(a.trials), "--jobs", str(a.jobs), "--out", str(out)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        print(r.stderr[-3000:], file=sys.stderr)
        return 1
    print(r.stdout.strip())
    df = pd.read_csv(out / "trials.csv")
    done = df[df["state"] == "COMPLETE"]
    feasible = int(done["feasible"].astype("boolean").fillna(False).sum())
    pruned = int((df["state"] == "PRUNED").sum())
    rate = a.trials / wall
    print(f"search: {a.trials} trials, jobs={a.jobs}: {wall:.1f} s wall "
          f"({rate:.2f} trials/s); target < 300 s: {'met' if wall < 300 else 'MISSED'}")
    print(f"trials: {len(done)} complete = {feasible} feasible + {len(done) - feasible} "
          f"infeasible (accuracy_proxy below the floor {done['min_accuracy'].max():.4g}, "
          f"{done['accuracy_model'].dropna().iloc[0] if len(done) else 'n/a'}); "
          f"{pruned} pruned (area); {len(df) - len(done) - pruned} other")
    print(f"per-trial duration recorded by Optuna: median {df['duration_s'].median():.3f} s")

    # the simulator alone, on a sample of the designs the search visited
    import optuna

    from dse.search import Problem, make_storage
    from dse.search.space import apply_layer_bits
    from dse.sim import simulate

    study = optuna.load_study(study_name=f"{a.model}-{a.recipe}",
                              storage=make_storage(None, out))
    problem = Problem.from_json(study.user_attrs["qdse.problem"])
    sample = done.sample(n=min(20, len(done)), random_state=0)
    times = []
    for n in sample["number"]:
        t = study.trials[int(n)]
        d = problem.space.suggest(optuna.trial.FixedTrial(t.params), problem.workload,
                                  area_budget=problem.area_budget, dram_gbps=problem.dram_gbps)
        w = apply_layer_bits(problem.workload, d.layer_bits)
        t1 = time.perf_counter()
        simulate(w, dataclasses.replace(d.accelerator))
        times.append(time.perf_counter() - t1)
    t_sim = statistics.median(times)
    ideal = a.jobs / t_sim
    print(f"simulator alone: median {t_sim:.3f} s per design (n={len(times)}) -> "
          f"{1 / t_sim:.2f} designs/s per process, {ideal:.2f}/s ideal with {a.jobs} processes")
    print(f"search throughput = {rate / ideal:.0%} of the simulator-only bound "
          "(the rest: process start-up, sampler, one journal record per parameter, CSV "
          "rewrites, final reports)")
    print(json.dumps({"trials": a.trials, "jobs": a.jobs, "wall_s": round(wall, 2),
                      "trials_per_s": round(rate, 3), "sim_median_s": round(t_sim, 4),
                      "extract_s": round(t_extract, 2), "complete": len(done),
                      "feasible": feasible, "infeasible": len(done) - feasible,
                      "pruned": pruned, "out": str(out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

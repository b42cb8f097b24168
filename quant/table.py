"""The accuracy table on scikit-learn digits: ``python -m quant.table --out DIR``.

Trains ``digits_cnn`` in full precision once per seed, fine-tunes every recipe from that shared
checkpoint at each requested bit width (default W4A4 and W2A2; ``wrpn`` trains its 2x-wide
network from scratch, as the WRPN paper does), runs the qualitative checks of TARGETS.md
section 6 that digits can answer, and writes

- ``DIR/accuracy.csv``: ``recipe, w_bits, a_bits, accuracy, fp_accuracy`` (means over the seeds;
  ``w_bits``/``a_bits`` are the bits REQUESTED from the recipe) + ``body_w_bits, body_a_bits``
  (what the recipe really applied to the body of the trained model, see :func:`body_bits`:
  ``pact`` requested at W4A4 is W32A4, ``sawb`` is W4A32) + ``delta_pts, accuracy_std, seeds,
  init, epochs, width, time_s, cpu_s``;
- ``DIR/checks.csv``: the check rows (same columns, ``recipe`` holds the variant's label);
- ``DIR/runs.csv``: every single run (one row per seed) with its run folder;
- ``DIR/accuracy.md``: both tables, the issue-4 targets (each recipe at W4A4 within 3 points of
  FP, ``pact_sawb_fpsc`` at W2A2 within 5; judged only where the body really is W4A4 / W2A2)
  and the verdict of each check;
- ``CACHE/<run>/``: one ``quant.train`` run folder per run (checkpoint + metrics.json);
  ``--cache`` defaults to ``DIR/runs``. Keep it out of version control (checkpoints, and
  metrics.json holds absolute ``init_from`` paths); the CSVs name runs relative to ``DIR``.

Resumable: finished runs are reloaded, unfinished ones resume from their last epoch.
``--jobs 2`` trains two runs at a time in separate processes. Each run uses one torch thread
(fastest for this small model; runs are bit-identical for a fixed thread count).
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# The table is split by responsibility; every name it had is still importable from here.
from quant.table_checks import CHECKS, Row, _pct, _wa, body_bits, checks, plan
from quant.table_checks import FP_BITS as FP_BITS
from quant.table_checks import FPSC_W2A2_TOLERANCE_PTS as FPSC_W2A2_TOLERANCE_PTS
from quant.table_checks import W4A4_TOLERANCE_PTS as W4A4_TOLERANCE_PTS
from quant.table_report import COLUMNS, write_table
from quant.table_report import summarize as summarize
from quant.table_runs import build_table

__all__ = ["CHECKS", "COLUMNS", "Row", "body_bits", "build_table", "checks", "main", "plan",
           "write_table"]

log = logging.getLogger(__name__)


_MB_PER_JOB = 500
"""Resident memory of one training process (torch, a model and its data), MB."""


def _max_jobs() -> int:
    """The most training processes this machine's memory holds at `_MB_PER_JOB` (at least 1)."""
    try:
        total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    except (ValueError, OSError, AttributeError):  # not POSIX: no memory bound
        return 4096
    return max(1, total_mb // _MB_PER_JOB)


def _int_list(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints, got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    from quant import train as qtrain
    from quant.checkpoints import check_folder
    from quant.recipes import recipes as all_recipes
    from quant.train_cli import max_threads

    p = qtrain.OneLineErrorParser(prog="python -m quant.table",
                                description="Accuracy table of every recipe on digits.")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--cache", default=None,
                   help="folder of the run folders (checkpoints; default OUT/runs). Keep it out "
                        "of version control, e.g. runs/quant_table (git-ignored)")
    p.add_argument("--recipes", default=None,
                   help="comma-separated recipes (default: all of quant.recipes())")
    p.add_argument("--bits", type=_int_list, default=[4, 2], help="bit widths (W=A), default 4,2")
    p.add_argument("--seeds", type=_int_list, default=[0, 1, 2],
                   help="comma-separated seeds (default 0,1,2: accuracy is their mean)")
    p.add_argument("--fp-epochs", type=int, default=qtrain.DIGITS_FP_EPOCHS)
    p.add_argument("--ft-epochs", type=int, default=qtrain.DIGITS_FT_EPOCHS)
    p.add_argument("--no-checks", action="store_true", help="skip the qualitative-check runs")
    p.add_argument("--jobs", type=int, default=2,
                   help="parallel training processes (default 2; results do not depend on it)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    known = all_recipes()
    recipes = known if args.recipes is None else [r for r in args.recipes.split(",") if r]
    bad = [r for r in recipes if r not in known]
    if bad or not recipes:
        p.error(f"--recipes: {', '.join(bad) or repr(args.recipes)} not allowed; use some of "
                f"{', '.join(known)}")
    if not args.bits or any(not 1 <= b <= 16 for b in args.bits):
        p.error(f"--bits: {args.bits} not allowed; give bit widths in 1..16")
    seed_lo, seed_hi = qtrain.LIMITS["seed"]
    if not args.seeds or any(not seed_lo <= s <= seed_hi for s in args.seeds):
        p.error(f"--seeds: {args.seeds} not allowed; give seeds in {seed_lo}..{seed_hi}")
    for name, high in (("fp_epochs", qtrain.LIMITS["epochs"][1]),
                       ("ft_epochs", qtrain.LIMITS["epochs"][1]), ("jobs", _max_jobs()),
                       ("threads", max_threads())):
        if not 1 <= getattr(args, name) <= high:
            p.error(f"--{name.replace('_', '-')}: {getattr(args, name)} not allowed; expected "
                    f"1..{high}" + (" (the CPUs of this machine)" if name == "threads" else
                                     f" (~{_MB_PER_JOB} MB per job)" if name == "jobs" else ""))
    for flag, path in (("--out", args.out), ("--cache", args.cache)):
        if path is not None:
            try:
                check_folder(path, flag)
            except ValueError as err:
                p.error(str(err))
    created = [d for d in [Path(args.out), *Path(args.out).parents] if not d.exists()][::-1]
    try:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        probe = Path(args.out) / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        if created:
            shutil.rmtree(created[0], ignore_errors=True)
        p.error(f"--out: cannot write the folder {args.out!r} ({err.strerror or err}; allowed: a "
                "folder you can write)")
    main_rows = plan(recipes, args.bits)
    rows = main_rows + ([] if args.no_checks else
                        [r for r in checks() if r.recipe in recipes])
    t0 = time.perf_counter()

    def on_run(r: dict[str, Any]) -> None:
        print(f"{r['recipe']:>28} W{r['w_bits']}A{r['a_bits']} (body "
              f"{_wa(r['body_w_bits'], r['body_a_bits'])}) seed {r['seed']}: "
              f"{_pct(r['accuracy']):>6} % ({r['wall_s']:.1f} s)", flush=True)

    try:
        runs = build_table(args.out, rows, seeds=args.seeds, fp_epochs=args.fp_epochs,
                           ft_epochs=args.ft_epochs, jobs=args.jobs, threads=args.threads,
                           cache=args.cache, on_run=on_run)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; finished runs are kept in the cache (rerun the same "
                         "command to resume)\n")
        return 130
    except (ValueError, OSError) as exc:
        if created:
            shutil.rmtree(created[0], ignore_errors=True)
        p.fail(exc)
    wall = time.perf_counter() - t0
    command = shlex.join(["python", "-m", "quant.table",
                          *(sys.argv[1:] if argv is None else argv)])
    write_table(args.out, runs, main_rows=main_rows, wall_s=wall, command=command)
    print(f"{len(runs)} runs in {wall:.0f} s -> {Path(args.out) / 'accuracy.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

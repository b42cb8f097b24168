"""Accuracy benchmark with negative controls (issue 13 item 2): regenerates
docs/quant_accuracy/controls.md.

    python benchmarks/accuracy_controls.py --out docs/quant_accuracy \
        --cache runs/accuracy_controls --seeds 30 --first-seed 16 --jobs 2

Trains digits_cnn with every layer at W2A2 (from random weights, or with ``--init paper`` where
each recipe's paper starts): full precision, each recipe that a negative control breaks, and
each control (quant/controls.py: the recipe with one known-wrong formula swapped in), on the
same seeds; reports each control's effect on the cross-entropy (the primary measure, chosen on
validation; ``--measure accuracy`` makes accuracy decide) and on accuracy with one-sided paired
t-tests across seeds, the W2A2-vs-FP gap, wall and CPU time, and plots every learned quantizer
parameter against its decay-only value. Results are cached per (arm, seed) under ``--cache``
(atomic writes): rerunning resumes. ``--quick`` trains one epoch
per run (plumbing only, detects nothing); ``--split val`` scores on the validation fifth of
the training images, the split on which the protocol was chosen. Bad arguments: one
``error:`` line on stderr, exit status 2, nothing created.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    from quant import controls

    p = _Parser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--out", default="docs/quant_accuracy", help="report folder")
    p.add_argument("--cache", default="runs/accuracy_controls", help="per-run result cache")
    p.add_argument("--seeds", type=int, default=10,
                   help="number of seeds FIRST..FIRST+N-1 (>= 2)")
    p.add_argument("--first-seed", type=int, default=0, help="the first seed (>= 0)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes")
    p.add_argument("--controls", default=",".join(controls.CONTROLS),
                   help="comma-separated subset of the negative controls")
    p.add_argument("--split", default="test", help="test (the report) or val")
    p.add_argument("--epochs", type=int, default=None, help="override the protocol's epochs")
    p.add_argument("--width", type=float, default=None,
                   help="override the protocol's network width (0.25)")
    p.add_argument("--init", default=None,
                   help="override where quantized arms start: scratch (random weights) or "
                        "paper (each recipe's paper: LSQ/LLSQ/CReLU fine-tune from fp32)")
    p.add_argument("--measure", default="loss",
                   help="what decides a detection: loss (the test cross-entropy, the primary "
                        "measure chosen on validation) or accuracy")
    p.add_argument("--quick", action="store_true", help="one epoch per run (plumbing test)")
    args = p.parse_args(argv)
    if args.seeds < 2:
        p.error(f"--seeds={args.seeds} (allowed: >= 2, a paired test needs two seeds)")
    if args.first_seed < 0:
        p.error(f"--first-seed={args.first_seed} (allowed: >= 0)")
    if args.jobs < 1:
        p.error(f"--jobs={args.jobs} (allowed: >= 1)")
    if args.measure not in ("loss", "accuracy"):
        p.error(f"--measure={args.measure!r} (allowed: loss, accuracy)")
    if args.split not in ("test", "val"):
        p.error(f"--split={args.split!r} (allowed: test, val)")
    names = [c for c in args.controls.split(",") if c]
    bad = [c for c in names if c not in controls.CONTROLS]
    if bad or not names:
        p.error(f"--controls={args.controls!r} (allowed: a comma-separated subset of "
                f"{', '.join(controls.CONTROLS)})")
    args.control_names = names
    from quant import benchmark as bench

    protocol = dataclasses.replace(bench.QUICK if args.quick else bench.STANDARD,
                                   eval_split=args.split)
    for flag, field in (("--epochs", "epochs"), ("--width", "width"), ("--init", "init")):
        value = getattr(args, field)
        if value is not None:
            try:
                protocol = dataclasses.replace(protocol, **{field: value})
            except ValueError as err:
                p.error(f"{flag}: {err}")
    args.protocol = protocol
    for flag, value in (("--out", args.out), ("--cache", args.cache)):
        path = Path(value)
        if path.exists() and not path.is_dir():
            p.error(f"{flag}={value!r} is a file (allowed: a folder, created if missing)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    from quant import benchmark as bench
    from quant.benchmark_report import write_report

    protocol = args.protocol
    arms = bench.arms_for(args.control_names)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    t0, c0 = time.perf_counter(), time.process_time()
    cached = len(bench.load_results(args.cache, protocol, arms, seeds))
    try:
        results = bench.run_benchmark(protocol, arms, seeds, args.cache, jobs=args.jobs,
                                      progress=lambda m: print(m, file=sys.stderr, flush=True))
    except KeyboardInterrupt:
        print("error: interrupted; finished runs stay cached, rerun the same command to resume",
              file=sys.stderr)
        return 130
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - c0 + children.ru_utime + children.ru_stime
    command = "python benchmarks/accuracy_controls.py " + shlex.join(
        sys.argv[1:] if argv is None else argv)
    wall = time.perf_counter() - t0
    history = bench.record_invocation(args.cache, protocol, wall_s=wall, cpu_s=cpu,
                                      trained=len(results) - cached, note=command.strip())
    path = write_report(results, protocol, arms, seeds, args.out, command=command.strip(),
                        wall_s=wall, cpu_s=cpu,
                        train_cpu_s=sum(r["cpu_s"] for r in results.values()), jobs=args.jobs,
                        invocations=history, measure=args.measure)
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
import itertools
import logging
import math
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["CHECKS", "COLUMNS", "Row", "body_bits", "build_table", "checks", "main", "plan",
           "write_table"]

log = logging.getLogger(__name__)

COLUMNS = ["recipe", "w_bits", "a_bits", "accuracy", "fp_accuracy", "body_w_bits", "body_a_bits",
           "delta_pts", "accuracy_std", "seeds", "init", "epochs", "width", "time_s", "cpu_s"]
FP_BITS = 32
_COMPUTE_TYPES = {"Conv2d", "Linear", "QuantConv2d", "QuantLinear"}
_SHORTCUT_KEYS = ("shortcut", "downsample")  # = quant.recipes.SHORTCUT_KEYS (no torch import)
W4A4_TOLERANCE_PTS = 3.0
FPSC_W2A2_TOLERANCE_PTS = 5.0


@dataclass(frozen=True, slots=True)
class Row:
    """One table row: a recipe at ``w_bits``/``a_bits``, run once per seed.

    ``options`` are extra keyword arguments of :func:`quant.train.trained_digits_result`
    (``fixed_act_clip``, ``from_scratch``, ``overrides``...); ``label`` names the variant.
    """

    recipe: str
    w_bits: int
    a_bits: int
    label: str = ""
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def name(self) -> str:
        return self.label or self.recipe


def plan(recipes: Sequence[str], bits: Sequence[int]) -> list[Row]:
    """The main rows: FP once, then every non-FP recipe at W{b}A{b} for each b in ``bits``.

    ``b`` is what each recipe is ASKED for; :func:`body_bits` reports what it applied."""
    rows = [Row("fp32", 32, 32)]
    rows += [Row(r, b, b) for b in bits for r in recipes if r != "fp32"]
    return rows


def body_bits(layers: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """``(weight bits, activation bits)`` really applied to the body of a quantized model.

    ``layers`` is ``metrics["layers"]`` of a ``quant.train`` run: one row per conv/linear and
    activation quantizer in module order, with the bits the model's modules report (the bits
    protocol ``workloads.extract`` reads; None = full precision). The body is every conv/linear
    except the first, the last and shortcut convs (the layers each paper keeps at another
    precision by design). A layer's input bits are those of its own input quantizer (LSQ), else
    those of the last ``QuantAct`` met after the previous conv/linear (PACT, WRPN, ...), else 32
    (a real-valued input). Returns the WIDEST precision over the body, so 32 means that some
    body weights (or inputs) stay in full precision: ``pact`` asked for W4A4 gives (32, 4).
    """
    rows: list[tuple[str, int, int]] = []  # (name, weight bits, input bits) per conv/linear
    act = FP_BITS
    for r in layers:
        if r["type"] in _COMPUTE_TYPES:
            in_bits = r["act_bits"] if r["act_bits"] is not None else act
            rows.append((r["name"], r["weight_bits"] or FP_BITS, in_bits))
            act = FP_BITS  # the accumulated (BN-ed) output is real until the next quantizer
        elif r["act_bits"] is not None:
            act = r["act_bits"]
    body = [t for t in rows[1:-1] if not any(k in t[0] for k in _SHORTCUT_KEYS)] or rows
    if not body:
        raise ValueError("body_bits: no conv/linear rows in layers; pass metrics['layers'] of "
                         "a quant.train run")
    return max(t[1] for t in body), max(t[2] for t in body)


# Qualitative claims of TARGETS.md section 6, each a group of rows compared by accuracy. A claim
# whose name starts with "best:" holds when its last row is at least as accurate as every other
# row; otherwise ("rises:") when accuracy does not fall along the rows.
# PACT Fig. 1: under 2-bit activations (weights full precision, trained from scratch), ReLU
# quantized over its dynamic range and a clip fixed at 1.0 both lose to PACT's learned clip.
_A2 = (("from_scratch", True),)
CHECKS: dict[str, list[Row]] = {
    "best: PACT clipping beats ReLU under 2-bit activations (W32A2, from scratch; PACT Fig. 1)": [
        Row("pact", 32, 2, "relu (fixed at max act)", (*_A2, ("fixed_act_clip", "max"))),
        Row("pact", 32, 2, "clip 1.0 (fixed)", (*_A2, ("fixed_act_clip", 1.0))),
        Row("pact", 32, 2, "pact (learned clip)", _A2),
    ],
    "rises: multi-level binarization improves with m (crelu_binary, m = w_bits, A4; crelu "
    "Table 1)": [
        Row("crelu_binary", 1, 4, "crelu_binary m=1"),
        Row("crelu_binary", 2, 4, "crelu_binary m=2"),
        Row("crelu_binary", 3, 4, "crelu_binary m=3"),
    ],
}


def checks() -> list[Row]:
    """Every row of :data:`CHECKS`, in order."""
    return [r for rows in CHECKS.values() for r in rows]


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


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per (recipe, w_bits, a_bits); ``fp_accuracy`` is the FP row's mean.

    ``body_w_bits``/``body_a_bits`` are the widest over the seeds (they agree for one recipe)."""
    keys = ["recipe", "w_bits", "a_bits"]
    g = runs.groupby(keys, sort=False)
    df = g.agg(accuracy=("accuracy", "mean"), accuracy_std=("accuracy", "std"),
               body_w_bits=("body_w_bits", "max"), body_a_bits=("body_a_bits", "max"),
               seeds=("seed", "count"), init=("init", "first"), epochs=("epochs", "first"),
               width=("width", "first"), time_s=("time_s", "mean"),
               cpu_s=("cpu_s", "mean")).reset_index()
    fp = runs.loc[runs["recipe"] == "fp32", "accuracy"]
    fp_acc = float(fp.mean()) if len(fp) else math.nan
    df.insert(4, "fp_accuracy", fp_acc)
    df["delta_pts"] = 100.0 * (df["accuracy"] - fp_acc)
    df["accuracy_std"] = df["accuracy_std"].fillna(0.0)
    return df[COLUMNS]


def _pct(x: float) -> str:
    return "nan" if math.isnan(x) else f"{100 * x:.2f}"


def _wa(w: Any, a: Any) -> str:
    return f"W{int(w)}A{int(a)}"


def _md_table(df: pd.DataFrame) -> list[str]:
    lines = ["| recipe | asked | body (really quantized) | accuracy % | +- std | FP % | "
             "delta (pts) | seeds | init | epochs | wall s/run | CPU s/run |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in df.iterrows():
        asked, body = _wa(r["w_bits"], r["a_bits"]), _wa(r["body_w_bits"], r["body_a_bits"])
        if body != asked:
            body = f"**{body}**"
        lines.append(f"| {r['recipe']} | {asked} | {body} | {_pct(r['accuracy'])} | "
                     f"{_pct(r['accuracy_std'])} | {_pct(r['fp_accuracy'])} | "
                     f"{r['delta_pts']:+.2f} | {r['seeds']} | {r['init']} | {r['epochs']} | "
                     f"{r['time_s']:.1f} | {r['cpu_s']:.1f} |")
    return lines


def _judge(r: pd.Series, bits: int, tol: float) -> str:
    """A target line, judged on the bits the body really has (not on the bits asked for)."""
    asked, body = _wa(r["w_bits"], r["a_bits"]), _wa(r["body_w_bits"], r["body_a_bits"])
    if body != _wa(bits, bits):
        return (f"- {r['recipe']} asked for {asked}: not judged, its body is really {body} "
                f"({r['delta_pts']:+.2f} points at {body})")
    ok = r["delta_pts"] >= -tol
    return (f"- {r['recipe']} {body} within {tol:g} points of FP: {'met' if ok else 'NOT met'} "
            f"({r['delta_pts']:+.2f})")


def _targets(df: pd.DataFrame) -> list[str]:
    lines = [_judge(r, 4, W4A4_TOLERANCE_PTS)
             for _, r in df[(df["w_bits"] == 4) & (df["a_bits"] == 4)].iterrows()]
    fpsc = df[(df["recipe"] == "pact_sawb_fpsc") & (df["w_bits"] == 2) & (df["a_bits"] == 2)]
    lines += [_judge(r, 2, FPSC_W2A2_TOLERANCE_PTS) for _, r in fpsc.iterrows()]
    return lines


def _verdicts(main: pd.DataFrame, check: pd.DataFrame) -> list[str]:
    """One line per claim, decided from the mean accuracies (see CHECKS); each accuracy is
    given with its seed std, so a verdict decided by less than the noise can be read as such."""
    acc = {r["recipe"]: (r["accuracy"], r["accuracy_std"]) for _, r in check.iterrows()}
    lines = []
    for claim, rows in CHECKS.items():
        vals = [acc.get(r.name, (math.nan, math.nan)) for r in rows]
        if any(math.isnan(v) for v, _ in vals):
            continue
        means = [v for v, _ in vals]
        mode, _, text = claim.partition(": ")
        if mode == "best":
            holds = all(means[-1] >= v for v in means[:-1])
        else:
            holds = all(b >= a for a, b in itertools.pairwise(means))
        detail = ", ".join(f"{r.name} {_pct(v)} +- {_pct(sd)} %" for r, (v, sd) in zip(rows, vals))
        lines.append(f"- {text}: {'holds' if holds else 'does not hold'} ({detail})")
    m = {(r["recipe"], r["w_bits"], r["a_bits"]): r["accuracy"] for _, r in main.iterrows()}

    def cmp(claim: str, hi: tuple[str, int, int], lo: tuple[str, int, int]) -> None:
        if hi in m and lo in m:
            lines.append(f"- {claim}: {'holds' if m[hi] >= m[lo] else 'does not hold'} "
                         f"({hi[0]} {_pct(m[hi])} % vs {lo[0]} {_pct(m[lo])} %)")

    cmp("LSQ >= PACT-SAWB at W2A2", ("lsq", 2, 2), ("pact_sawb", 2, 2))
    cmp("fpsc helps ResNets: not testable on digits_cnn (no shortcut layers), so pact_sawb_fpsc "
        "and pact_sawb are the same network; >= is expected with equality",
        ("pact_sawb_fpsc", 2, 2), ("pact_sawb", 2, 2))
    return lines


def write_table(out: str | Path, runs: pd.DataFrame, *, main_rows: Sequence[Row],
                wall_s: float | None = None, command: str | None = None) -> pd.DataFrame:
    """Write runs.csv, accuracy.csv, checks.csv and accuracy.md; return the main table.

    ``command`` (the command line that made ``runs``) and ``wall_s`` go into accuracy.md."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs.to_csv(out / "runs.csv", index=False, float_format="%.6g")
    summary = summarize(runs)
    main_names = {(r.name, r.w_bits, r.a_bits) for r in main_rows}
    is_main = [(r["recipe"], r["w_bits"], r["a_bits"]) in main_names
               for _, r in summary.iterrows()]
    main = summary[is_main].reset_index(drop=True)
    check = summary[[not v for v in is_main]].reset_index(drop=True)
    main.to_csv(out / "accuracy.csv", index=False, float_format="%.6g")
    check.to_csv(out / "checks.csv", index=False, float_format="%.6g")
    fp_acc = float(main["fp_accuracy"].iloc[0]) if len(main) else math.nan
    md = ["# Accuracy on scikit-learn digits", "",
          "digits_cnn, 1437 train / 360 test images (one test image = 0.28 points). Quantized "
          "rows fine-tune from the full-precision run of the same seed (init = fp); rows with "
          "init = scratch train the quantized network from random weights (wrpn: its 2x-wide "
          "network, as the WRPN paper does). Accuracy is the last-epoch test accuracy, "
          "averaged over the seeds.", "",
          "*asked* is the W/A bits the recipe was asked for; *body* is what the trained model "
          "really quantizes in its body (every conv/linear except the first, the last and "
          "shortcuts; the widest precision found, 32 = full precision), read from its modules "
          "(`quant.table.body_bits`). Bold where they differ: `pact` keeps full-precision "
          "weights and `sawb` full-precision activations.", "",
          f"Full precision: {_pct(fp_acc)} %."
          + (f" Wall time of this invocation: {wall_s:.0f} s." if wall_s is not None else ""),
          *(["", f"Command: `{command}`"] if command else []),
          "", *_md_table(main)]
    errors = runs[runs["error"].fillna("").astype(str) != ""]
    if len(errors):
        md += ["", "## Diverged runs", ""]
        md += [f"- {r['recipe']} W{r['w_bits']}A{r['a_bits']} seed {r['seed']}: {r['error']}"
               for _, r in errors.iterrows()]
    md += ["", "## Targets (issue 4)", "",
           "Judged on the body's real precision: a row whose body is not W4A4 (W2A2) is not "
           "evidence for a W4A4 (W2A2) network and is listed as not judged.", "",
           *(_targets(main) or ["- (no W4A4 rows)"])]
    if len(check):
        md += ["", "## Check runs", "", *_md_table(check)]
    md += ["", "## Qualitative checks (TARGETS.md section 6)", "",
           *(_verdicts(main, check) or ["- (no check rows)"]), ""]
    (out / "accuracy.md").write_text("\n".join(md))
    return main


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

"""``python -m dse.sweep``: DRAM bandwidth x area (x SRAM, cores) sweep of any model and recipe.

    python -m dse.sweep --model resnet50 --recipe pact_sawb --bandwidth 8:256:x2,inf \\
        --area 0.5x,1x,2x [--arch PRESET|FILE.toml] [--sram-kib 256,1024] [--cores 16,32]
        [--w-bits 2 --a-bits 2]
        [--first-last-bits 16] [--width 1] [--batch 1] [--out DIR] [--jobs N]

A front end to the ``bandwidth_area_sweep`` study (found through `dse.study.registry`): the same
runner, cache and report. ``--area`` takes mm^2 or multiples of the template's area (``1x`` = the
sysml19 8-core 16-bit system, or the ``--arch`` design file's own area). Writes
``reports/sweep-MODEL-RECIPE/`` by default: results.csv/parquet (the throughput surface),
compute_bound.csv (the bandwidth at which each design turns compute-bound),
throughput_by_fidelity.csv (that answer in each simulator mode), PNG and SVG plots and summary.md.
Bad input: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from arch.area import MAX_AREA_MM2, MAX_COUNT
from dse.cli import CliParser, float_list, folder, int_list, parse_bandwidths, run_cli
from dse.study import run_study_cli

__all__ = ["main"]


def _areas(text: str) -> tuple[Any, ...]:
    """``--area``: mm^2 or ``<f>x`` items; a bad item is named as typed (``'0x'``, not the
    factor ``'0'`` it is cut to) beside the whole list."""
    out: list[Any] = []
    for tok in text.split(","):
        tok = tok.strip()
        factor = tok.lower().endswith("x")  # a multiple of the template's area
        try:
            value = float_list(tok[:-1] if factor else tok, "--area", positive=True)[0]
        except ValueError:
            raise ValueError(f"--area={text!r} is malformed: {tok!r} is neither mm^2 > 0 nor "
                             "<f>x with a finite f > 0 (a multiple of the template's area)"
                             ) from None
        if factor:
            out.append(tok.lower())
        else:
            out.append(value)
            if out[-1] > MAX_AREA_MM2:
                raise ValueError(f"--area={text!r} is not allowed: {tok!r} mm^2 exceeds "
                                 f"{MAX_AREA_MM2:g} mm^2 (see arch.area.MAX_AREA_MM2)")
    return tuple(out)


def _build_parser() -> argparse.ArgumentParser:
    p = CliParser(prog="python -m dse.sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="zoo model (workloads.zoo.names())")
    p.add_argument("--recipe", required=True, help="quant recipe (quant.recipes())")
    p.add_argument("--bandwidth", default="8:256:x2,inf", help="DRAM GB/s list or ranges")
    p.add_argument("--arch", default="sysml19", metavar="PRESET|FILE",
                   help="the template design: a preset (sysml19) or a TOML/YAML design file, "
                        "whose array, clock, node and latencies every swept design keeps; "
                        "--area 1x is its area")
    p.add_argument("--area", default="0.5x,1x,2x", help="area budgets: mm^2 or <f>x")
    p.add_argument("--sram-kib", default="256,1024", help="SRAM per core, KiB (list)")
    p.add_argument("--cores", help="explicit core counts instead of --area (list)")
    p.add_argument("--w-bits", type=int, default=2)
    p.add_argument("--a-bits", type=int, default=2)
    p.add_argument("--mac-bits", help="MAC precision W or WxA (default w-bits x a-bits)")
    p.add_argument("--first-last-bits", type=int, help="bits of first/last layers")
    p.add_argument("--width", type=int, default=1, help="channel multiplier (WRPN: 2)")
    p.add_argument("--batch", type=int, help="images per batch (default: the studies' batch)")
    p.add_argument("--high-precision", default="configurable",
                   choices=("configurable", "bit_serial"))
    p.add_argument("--peak-scaling", default="density", choices=("density", "doubling"))
    p.add_argument("--out", type=folder, help="output folder (default reports/sweep-MODEL-RECIPE)")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--format", default="csv,parquet")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--debug", action="store_true")
    return p


def _mac_bits(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    parts = text.lower().split("x")
    try:
        bits = tuple(int(p) for p in parts)
    except ValueError:
        bits = ()
    if len(bits) == 1:
        bits = bits * 2
    if len(bits) != 2 or not all(1 <= b <= 32 for b in bits):
        raise ValueError(f"--mac-bits={text!r} is malformed; expected W or WxA with bits in 1..32")
    return (bits[0], bits[1])


def _check_flags(args: argparse.Namespace) -> None:
    """The integer flags, named as the user typed them (the study would name its parameters)."""
    for flag, value, lo, hi in (("--w-bits", args.w_bits, 1, 32), ("--a-bits", args.a_bits, 1, 32),
                                ("--first-last-bits", args.first_last_bits, 1, 32),
                                ("--width", args.width, 1, 64),
                                ("--batch", args.batch, 1, 1 << 20)):
        if value is not None and not lo <= value <= hi:
            raise ValueError(f"{flag}={value} is not allowed; expected an integer in {lo}..{hi}")


def _cores(text: str | None) -> tuple[int, ...] | None:
    """``--cores``: core counts in 1..`arch.area.MAX_COUNT` (None: sized by ``--area``)."""
    if text is None:
        return None
    cores = int_list(text, "--cores", positive=True)
    if max(cores) > MAX_COUNT:
        raise ValueError(f"--cores={text!r} is not allowed; expected core counts in "
                         f"1..{MAX_COUNT} (more than any chip holds; see arch.spec.MAX_COUNT)")
    return cores


def design_param(spec: str, field: str = "--arch") -> str:
    """A study's ``preset`` parameter for ``--arch``: the preset name, or the design file's
    absolute path (worker processes and the cache key read the file; `dse.inputs.load_design`
    checks it first, naming the file and the field at fault)."""
    from dse.inputs import DESIGN_SUFFIXES, load_design

    load_design(spec, field=field)
    path = Path(spec)
    return str(path.resolve()) if path.suffix.lower() in DESIGN_SUFFIXES else spec


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    return run_cli(lambda: _main(argv), argv)


def _main(argv: Sequence[str] | None) -> int:
    args = _build_parser().parse_args(argv)
    _check_flags(args)
    from dse.study import registry

    study = registry.get("bandwidth_area_sweep")  # a study of `studies`: found by name (layers)

    params: dict[str, Any] = {
        "model": args.model, "recipe": args.recipe, "w_bits": args.w_bits,
        "a_bits": args.a_bits, "mac_bits": _mac_bits(args.mac_bits),
        "first_last_bits": args.first_last_bits, "width": args.width,
        "bandwidth": parse_bandwidths(args.bandwidth), "area": _areas(args.area),
        "sram_kib": float_list(args.sram_kib, "--sram-kib", positive=True),
        "cores": _cores(args.cores),
        "high_precision": args.high_precision, "peak_scaling": args.peak_scaling,
    }
    if args.batch is not None:
        params["batch"] = args.batch
    params["preset"] = design_param(args.arch)
    out = args.out or Path("reports") / f"sweep-{args.model}-{args.recipe}"
    run = run_study_cli(study, params, args, out=out, prog="python -m dse.sweep", argv=argv)
    info = run.info
    print(f"sweep {args.model}/{args.recipe}: {info.points} design points ({info.cached} reused "
          f"from cache, {info.computed} computed) in {info.elapsed_s:.1f} s")
    knee = out / "compute_bound.csv"
    if knee.exists():
        import pandas as pd

        table = pd.read_csv(knee)
        for r in table.itertuples(index=False):
            area = "" if pd.isna(r.area_budget_mm2) else f"{r.area_budget_mm2:6.3g} mm²: "
            if pd.isna(r.compute_bound_gbps):
                bound = "still DRAM-bound at the largest swept bandwidth"
            elif r.compute_bound_gbps == float("inf"):
                bound = "compute-bound from unlimited bandwidth"
            else:
                bound = f"compute-bound from {r.compute_bound_gbps:g} GB/s"
            print(f"  {area}{r.cores:4d} cores, {r.sram_kib:g} KiB/core, {r.peak_tops:.3g} TOPS: "
                  f"{r.best_images_per_s:.4g} images/s, {bound} (demand {r.demand_gbps:.3g} "
                  "GB/s)")
    print(f"wrote {', '.join(sorted({p.name for p in run.files}))} to {out}/")
    return 0


"""``python -m dse.compare``: one model on several designs, side by side.

    python -m dse.compare --model alexnet --recipe pact_sawb --arch sysml19 --arch my_chip.toml
    python -m dse.compare --model resnet20 --arch a.toml --arch b.yaml --dram-gbps 16 --out runs/ab

Every ``--arch`` (a preset or a TOML/YAML design file, as in `dse.simulate`) runs the same
workload. Prints the table and writes ``compare.csv`` (one row per design: throughput, latency,
energy per image by component, area, peak TOPS, DRAM traffic, memory- and compute-bound layers),
``compare.png`` / ``compare.svg`` (throughput, energy by component, area) and ``summary.md`` to
``--out`` (default ``reports/compare-MODEL``). Bad input: one ``error:`` line, exit status 2, no
folder created.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dse.cli import CliParser, check_writable, folder, run_as_program, run_cli

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["compare_table", "main", "plot_comparison"]

_EXAMPLES = """examples:
  python -m dse.compare --model resnet20 --w-bits 4 --a-bits 4 --arch sysml19 --arch llsq40nm
  python -m dse.compare --model resnet20 --arch my_chip.toml --arch sysml19 --mac-bits 4
"""


def _build_parser() -> argparse.ArgumentParser:
    from dse.simulate import add_model_arguments

    p = CliParser(prog="python -m dse.compare", description=__doc__.split("\n\n")[0],
                  epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p)
    p.add_argument("--arch", action="append", required=True, metavar="ARCH",
                   help="a preset or FILE.toml / FILE.yaml (repeat: two or more)")
    p.add_argument("--out", type=folder, help="output folder (default reports/compare-MODEL)")
    return p


def compare_table(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per design (`dse.simulate.metrics`), plus throughput and energy relative to the
    first design."""
    import pandas as pd

    df = pd.DataFrame(list(rows))
    base = df.iloc[0]
    df["speedup_vs_first"] = df["images_per_s"] / base["images_per_s"]
    df["energy_vs_first"] = df["energy_per_image_mj"] / base["energy_per_image_mj"]
    return df


def plot_comparison(df: pd.DataFrame, title: str, out: Path) -> list[Path]:
    """Three panels, one bar per design: images/s, energy per image stacked by component, area.
    Written as PNG and SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dse.study.plots import save_figure

    names = list(df["design"])
    x = range(len(names))
    fig, axes = plt.subplots(1, 3, figsize=(3.2 * 3 + 1.5, 4.2), dpi=150)
    axes[0].bar(x, df["images_per_s"], color="C0")
    axes[0].set_ylabel("throughput (images/s)")
    bottom = [0.0] * len(df)
    parts = [c for c in df.columns if c.startswith("energy_") and c.endswith("_mj")
             and c != "energy_per_image_mj"]
    for i, c in enumerate(parts):
        axes[1].bar(x, df[c], bottom=bottom, color=f"C{i + 1}",
                    label=c.removeprefix("energy_").removesuffix("_mj").upper())
        bottom = [b + v for b, v in zip(bottom, df[c])]
    axes[1].set_ylabel("energy per image (mJ)")
    axes[1].legend(title="component", loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    axes[2].bar(x, df["area_mm2"], color="C5")
    axes[2].set_ylabel("area (mm²)")
    for ax in axes:
        ax.set_xticks(list(x))
        ax.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    def save(fmt: str) -> Path:
        return save_figure(fig, out / f"compare.{fmt}", fmt)  # byte-reproducible

    try:
        return [save("png"), save("svg")]
    finally:
        plt.close(fig)


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} ({seen[n]})")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    return run_cli(lambda: _main(argv), argv, interrupted="interrupted")


def _main(argv: Sequence[str] | None) -> int:
    import dataclasses

    args = _build_parser().parse_args(argv)
    from dse.inputs import load_design, load_workload
    from dse.simulate import check_groups, design_options, metrics, model_spec, sim_options

    if len(args.arch) < 2:
        raise ValueError(f"--arch was given {len(args.arch)} time(s); expected two or more "
                         "designs to compare (use python -m dse.simulate for one)")
    spec = model_spec(args)
    sim_kw = sim_options(args)  # checked before anything is loaded or created
    options = design_options(args)
    designs = [load_design(a, field="--arch", **options) for a in args.arch]
    for d in designs:
        check_groups(sim_kw, d)
    designs = [dataclasses.replace(d, name=n)
               for d, n in zip(designs, _unique([d.name for d in designs]))]
    stem = Path(args.model.rsplit(":", 1)[-1]).stem
    out: Path = args.out or Path("reports") / f"compare-{stem}"
    check_writable(out)
    wl = load_workload(spec)
    from dse.sim import simulate
    from dse.study.report import atomic_write_text, markdown_table, write_results

    results = [simulate(wl, acc, batch=args.batch, **sim_kw) for acc in designs]
    df = compare_table([metrics(r, acc) for r, acc in zip(results, designs)])
    title = f"{wl.name}, batch {results[0].batch}: {len(designs)} designs"
    files = write_results(df, out, ("csv",), stem="compare")
    files += plot_comparison(df, title, out)
    command = " ".join(["python -m dse.compare", *(sys.argv[1:] if argv is None else argv)])
    shown = ["design", "images_per_s", "speedup_vs_first", "latency_ms", "energy_per_image_mj",
             *[c for c in df.columns if c.startswith("energy_") and c.endswith("_mj")
               and c != "energy_per_image_mj"], "area_mm2", "peak_tops", "utilization",
             "memory_bound_layers", "compute_bound_layers"]
    text = (f"# {title}\n\n{markdown_table(df[shown])}\n\n![comparison](compare.png)\n\n"
            f"All columns in compare.csv. Command: `{command}`\n")
    files.append(atomic_write_text(out / "summary.md", text))
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(title)
        print(df[shown].set_index("design").T.to_string(float_format=lambda v: f"{v:.4g}"))
    print(f"wrote {', '.join(sorted(p.name for p in files))} to {out}/")
    return 0


if __name__ == "__main__":
    run_as_program(main)

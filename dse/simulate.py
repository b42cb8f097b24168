"""``python -m dse.simulate``: simulate one model on one design and write its report.

    python -m dse.simulate --model alexnet --arch sysml19 --recipe pact_sawb --w-bits 2 --a-bits 2
    python -m dse.simulate --model my_design_test.onnx --arch my_chip.toml --out runs/mine
    python -m dse.simulate --model mypkg.nets:build --input-shape 3,32,32 --arch my_chip.yaml

``--model``: a zoo name, FILE.onnx, a SCALE-Sim topology FILE.csv, a saved workload FILE.json, or
package.module:factory / path/file.py:factory (see `dse.inputs`). ``--arch``: a preset
(``sysml19``, ``llsq40nm``; at ``--mac-bits``, default the model's bits) or a TOML/YAML design
file. Prints a summary and writes ``layers.csv``, ``layers.parquet``, ``summary.md`` and
``trace.json`` (open it in https://ui.perfetto.dev) to ``--out`` (default
``reports/simulate-MODEL-ARCH``). Bad input: one ``error:`` line on stderr, exit status 2, and no
folder is created.

This module is also the name ``dse.simulate`` once imported: the module object is callable and
forwards to the simulator, so ``from dse import simulate; simulate(workload, accelerator)`` keeps
working whichever of the two the name is bound to (importing this module rebinds it).
"""

from __future__ import annotations

import argparse
import math
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dse.cli import CliParser, check_writable, folder, run_as_program, run_cli

if TYPE_CHECKING:
    from arch import Accelerator
    from dse.inputs import ModelSpec
    from dse.sim import SimResult

__all__ = ["add_model_arguments", "check_groups", "main", "metrics", "model_spec",
           "summary_markdown"]

_EXAMPLES = """examples:
  python -m dse.simulate --model alexnet --arch sysml19 --recipe pact_sawb --w-bits 2 --a-bits 2
  python -m dse.simulate --model resnet20 --arch llsq40nm --w-bits 4 --a-bits 4 --batch 8
  python -m dse.simulate --model my_nets.py:small_cnn --arch my_chip.toml   (docs/usage.md)
"""


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """The model, quantization and system flags `dse.simulate` and `dse.compare` share."""
    p.add_argument("--model", required=True,
                   help="zoo name, FILE.onnx, FILE.csv (SCALE-Sim topology), FILE.json (saved "
                        "workload), or package.module:factory / path/file.py:factory")
    p.add_argument("--recipe", help="quantization recipe (quant.recipes()); nn.Module models only")
    p.add_argument("--w-bits", type=int, help="weight bits (with --recipe: default 2; without: "
                                              "set on every compute layer)")
    p.add_argument("--a-bits", type=int, help="activation bits (as --w-bits)")
    p.add_argument("--first-last-bits", type=int,
                   help="bits of the first and last compute layers (default: 16 with a "
                        "recipe)")
    p.add_argument("--width", type=int, default=1, help="channel multiplier of a zoo model "
                                                        "(WRPN: 2)")
    p.add_argument("--input-shape", help="C,H,W of a module:factory model (default: its "
                                         "input_shape attribute)")
    p.add_argument("--batch", type=int, help="images per inference batch (default: an ONNX "
                                             "file's own, else 1)")
    p.add_argument("--ignore-unsupported", nargs="?", const="all", metavar="OPS",
                   help="drop ops whose arithmetic qdse does not model (all, or a comma list "
                        "such as fft_rfft2,cumsum) instead of refusing the model; the summary "
                        "lists them")
    p.add_argument("--mac-bits", help="MAC precision W or WxA of a preset (default: the model's "
                                      "--w-bits x --a-bits, else the preset's)")
    p.add_argument("--dram-gbps", help="DRAM bandwidth in GB/s, or inf (default: the design's)")
    p.add_argument("--high-precision", choices=("configurable", "bit_serial"),
                   help="how layers above the MAC precision run (default: the design's)")
    p.add_argument("--fidelity", choices=("layer", "tile"), default="layer",
                   help="layer: one lock-step pipeline per layer (fast); tile: each core class's "
                        "tile loop as events, with its buffers (docs/simulator.md)")
    p.add_argument("--no-prefetch", action="store_true",
                   help="load nothing before a layer has its cores (SCALE-Sim's behaviour)")
    p.add_argument("--schedule", choices=("layer_by_layer", "pipeline", "data_parallel"),
                   default="layer_by_layer",
                   help="how images and layers share the cores (docs/simulator.md, Multi-core "
                        "schedules): layer_by_layer (default), pipeline (stages of layers on "
                        "core groups, --batch images streaming through), data_parallel (each "
                        "group runs whole images)")
    p.add_argument("--groups", help="core groups of a homogeneous design: a count of equal "
                                    "groups (4) or their core counts (16,16,32)")
    p.add_argument("--stages", help="layer -> core group: conv1=0,conv2=1,... or FILE.json "
                                    "holding that mapping (default: balanced by estimated "
                                    "stage time)")
    p.add_argument("--buffer-images", type=int, default=2,
                   help="images (micro-batches) a core group's input buffer holds (default 2)")
    p.add_argument("--micro-batch", type=int, default=1,
                   help="images that move through the core groups together as one tensor "
                        "(default 1; divides --batch)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def sim_options(args: argparse.Namespace) -> dict[str, Any]:
    """`dse.sim.simulate` options from the shared flags (--high-precision, --fidelity,
    --no-prefetch)."""
    options: dict[str, Any] = {"fidelity": args.fidelity, "prefetch": not args.no_prefetch}
    if args.high_precision:
        options["high_precision"] = args.high_precision
    schedule = getattr(args, "schedule", "layer_by_layer")
    for flag, v in (("--buffer-images", getattr(args, "buffer_images", 1)),
                    ("--micro-batch", getattr(args, "micro_batch", 1))):
        if v < 1:  # checked whatever the schedule (a typo is not silently ignored)
            raise ValueError(f"{flag}={v} is not allowed; expected an integer >= 1")
    if schedule != "layer_by_layer" or getattr(args, "groups", None) is not None \
            or getattr(args, "stages", None) is not None or getattr(args, "micro_batch", 1) != 1:
        options.update(schedule=schedule, groups=_groups(args.groups),
                       stages=_stages(args.stages), buffer_images=args.buffer_images,
                       micro_batch=args.micro_batch)
    return options


def check_groups(options: dict[str, Any], acc: Accelerator) -> None:
    """``--groups`` against the design, before the model is traced (stage maps need the model
    and are checked by the simulator)."""
    if "schedule" not in options:
        return
    from dse.sim.schedule import group_accelerators

    try:
        group_accelerators(acc, options["groups"], options["stages"], options["schedule"])
    except ValueError as exc:
        raise ValueError(f"--groups: {exc}") from None


def _groups(text: str | None) -> int | tuple[int, ...] | None:
    from dse.cli import int_list

    if text is None:
        return None
    counts = int_list(text, "--groups", positive=True)
    return counts[0] if len(counts) == 1 else counts


def _stages(text: str | None) -> dict[str, int] | None:
    """``--stages``: ``name=g,...`` or a JSON file of that mapping."""
    import json

    if text is None:
        return None
    if text.endswith(".json"):
        try:
            data = json.loads(Path(text).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"--stages={text!r} is not allowed: cannot read it as JSON "
                             f"({' '.join(str(exc).split())})") from None
        if not isinstance(data, dict):
            raise ValueError(f"--stages={text!r} is not allowed; expected a JSON object "
                             "{layer name: core-group index}")
        return data
    out: dict[str, int] = {}
    for item in text.split(","):
        name, sep, group = item.strip().rpartition("=")
        if not sep or not name or not group.strip().isdigit():
            raise ValueError(f"--stages item {item.strip()!r} is not allowed; expected "
                             "LAYER=GROUP with GROUP an integer >= 0 (or a FILE.json)")
        out[name] = int(group)
    return out


def _build_parser() -> argparse.ArgumentParser:
    p = CliParser(prog="python -m dse.simulate", description=__doc__.split("\n\n")[0],
                  epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(p)
    p.add_argument("--arch", required=True, help="preset name or FILE.toml / FILE.yaml")
    p.add_argument("--out", type=folder, help="output folder (default reports/simulate-MODEL-ARCH)")
    return p


def model_spec(args: argparse.Namespace) -> ModelSpec:
    """The `dse.inputs.ModelSpec` of the shared flags (checked; nothing traced yet)."""
    from dse.cli import int_list
    from dse.inputs import ModelSpec, check_model

    shape = int_list(args.input_shape, "--input-shape", positive=True) \
        if args.input_shape is not None else None
    ignore: bool | tuple[str, ...] = False
    if args.ignore_unsupported == "all":
        ignore = True
    elif args.ignore_unsupported is not None:
        ignore = tuple(op.strip() for op in args.ignore_unsupported.split(",") if op.strip())
        if not ignore:
            raise ValueError(f"--ignore-unsupported={args.ignore_unsupported!r} names no op; "
                             "expected all or a comma list such as fft_rfft2,cumsum")
    spec = ModelSpec(args.model, args.recipe, args.w_bits, args.a_bits, args.first_last_bits,
                     args.width, args.batch, shape, ignore)
    check_model(spec)
    return spec


def design_options(args: argparse.Namespace) -> dict[str, Any]:
    """``mac_bits`` and ``dram_gbps`` for `dse.inputs.load_design` from the shared flags."""
    from dse.inputs import finite_or_inf

    mac: tuple[int, int] | None = None
    if args.mac_bits is not None:
        parts = args.mac_bits.lower().split("x")
        try:
            bits = [int(b) for b in parts]
        except ValueError:
            bits = []
        if len(bits) == 1:
            bits *= 2
        if len(bits) != 2 or not all(1 <= b <= 32 for b in bits):
            raise ValueError(f"--mac-bits={args.mac_bits!r} is not allowed; expected W or WxA "
                             "with bits in 1..32")
        mac = (bits[0], bits[1])
    elif args.w_bits is not None or args.a_bits is not None:
        w = args.w_bits or args.a_bits
        mac = (w, args.a_bits or w)
    elif args.recipe is not None:
        mac = (2, 2)  # a recipe's default bits
    bw = finite_or_inf(args.dram_gbps, "--dram-gbps") if args.dram_gbps is not None else None
    return {"mac_bits": mac, "dram_gbps": bw}


def metrics(res: SimResult, acc: Accelerator) -> dict[str, Any]:
    """The headline numbers of one run (a row of `dse.compare`'s table), units in the names."""
    layers = res.layers
    bound = layers["bound"].value_counts() if len(layers) else {}
    e = res.energy_by_component
    return {
        "design": acc.name, "cores": acc.cores, "array": f"{acc.rows}x{acc.cols}",
        "mac_bits": f"W{acc.mac_bits[0]}A{acc.mac_bits[1]}", "sram_kib_per_core": acc.sram_kib,
        "dram_gbps": acc.dram_gbps, "area_mm2": float(acc.area),
        "peak_tops": acc.peak_ops_per_s / 1e12, "images_per_s": res.images_per_s,
        "latency_ms": res.latency_s * 1e3, "utilization": res.utilization,
        "energy_per_image_mj": res.energy_j / res.batch * 1e3,
        **{f"energy_{k}_mj": v / res.batch * 1e3 for k, v in e.items()},
        "dram_mb_per_image": res.dram_bytes / res.batch / 1e6,
        "memory_bound_layers": int(bound.get("memory", 0)),
        "compute_bound_layers": int(bound.get("compute", 0)),
        "layers": len(layers),
    }


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isinf(v):
            return "unlimited"
        return f"{v:.4g}"
    return str(v)


def summary_markdown(res: SimResult, acc: Accelerator, command: str = "",
                     ignored: dict[str, str] | None = None) -> str:
    """``summary.md``: the design, the headline numbers, the latency split, the slowest layers;
    ``ignored``: ops left out of the workload (`workloads.Workload.ignored`), listed."""
    from arch import io
    from dse.study.report import markdown_table

    m = metrics(res, acc)
    lines = [f"# {res.workload} on {acc.name}, batch {res.batch}", ""]
    lines += [f"{m['images_per_s']:.4g} images/s, latency {m['latency_ms']:.4g} ms, "
              f"MAC utilization {res.utilization:.1%}, {m['energy_per_image_mj']:.4g} mJ per "
              f"image, {m['memory_bound_layers']} of {m['layers']} layers memory-bound.", ""]
    lines += ["## Design", "", "| field | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in io.to_dict(acc).items()]
    lines += [f"| area_mm2 | {m['area_mm2']:.4g} |", f"| peak_tops | {m['peak_tops']:.4g} |", ""]
    lines += ["## Metrics", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in m.items() if k not in ("design",)]
    lines += ["", "## Where the time goes (latency split, ms)", "", "| part | ms | share |",
              "|---|---|---|"]
    for k, v in res.latency_breakdown.items():
        share = v / res.latency_s if res.latency_s > 0 else 0.0
        lines.append(f"| {k} | {v * 1e3:.4g} | {share:.1%} |")
    if res.stages is not None:
        lines += ["", f"## Core groups ({res.options.get('schedule')}: steady state "
                  f"{res.images_per_s:.4g} images/s, first image {res.latency_s * 1e3:.4g} ms, "
                  f"{res.batch} images in {res.makespan_s * 1e3:.4g} ms)", "",
                  markdown_table(res.stages)]
    if len(res.layers):
        top = res.layers.sort_values("total_cycles", ascending=False).head(10)
        cols = [c for c in ("name", "op", "macs", "w_bits", "a_bits", "split", "total_cycles",
                            "stall_cycles", "dram_bytes", "bound") if c in top.columns]
        lines += ["", "## Slowest layers (all in layers.csv)", "", markdown_table(top[cols])]
    if ignored:
        lines += ["", "## Ignored (not modelled, no arithmetic counted)", "",
                  *[f"- `{n}` ({target})" for n, target in ignored.items()]]
    if command:
        lines += ["", f"Command: `{command}`"]
    return "\n".join(lines) + "\n"


def write_outputs(res: SimResult, acc: Accelerator, out: Path, command: str,
                  ignored: dict[str, str] | None = None) -> list[Path]:
    """layers.csv, layers.parquet, summary.md and trace.json in ``out`` (atomic writes)."""
    import json

    from dse.study.report import atomic_write, atomic_write_text, write_results

    paths = write_results(res.layers, out, ("csv", "parquet"), stem="layers")
    if res.stages is not None:
        paths += write_results(res.stages, out, ("csv",), stem="stages")
    paths.append(atomic_write_text(out / "summary.md",
                                   summary_markdown(res, acc, command, ignored)))
    trace = json.dumps({"traceEvents": res.trace_events(), "displayTimeUnit": "ns"})
    paths.append(atomic_write(out / "trace.json",
                              lambda p: p.write_text(trace, encoding="utf-8")))
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    return run_cli(lambda: _main(argv), argv, interrupted="interrupted")


def _main(argv: Sequence[str] | None) -> int:
    args = _build_parser().parse_args(argv)
    from dse.inputs import load_design, load_workload

    spec = model_spec(args)
    options = sim_options(args)  # checked before anything is loaded or created
    acc = load_design(args.arch, field="--arch", **design_options(args))
    check_groups(options, acc)
    stem = Path(args.model.rsplit(":", 1)[-1]).stem
    out: Path = args.out or Path("reports") / f"simulate-{stem}-{Path(args.arch).stem}"
    check_writable(out)
    wl = load_workload(spec)
    from dse.sim import simulate

    res = simulate(wl, acc, batch=args.batch, **options)
    command = " ".join(["python -m dse.simulate", *(sys.argv[1:] if argv is None else argv)])
    ignored = wl.ignored()
    files = write_outputs(res, acc, out, command, ignored)
    m = metrics(res, acc)
    if res.stages is not None:
        print(f"{res.options['schedule']} on {len(res.stages)} core groups: steady state "
              f"{res.images_per_s:.4g} images/s, first image {res.latency_s * 1e3:.4g} ms, "
              f"{res.batch} images in {res.makespan_s * 1e3:.4g} ms")
    print(f"{res.workload} on {acc.name} ({acc.cores} cores of {acc.rows}x{acc.cols} "
          f"W{acc.mac_bits[0]}A{acc.mac_bits[1]} MACs, {m['area_mm2']:.3g} mm², DRAM "
          f"{_fmt(acc.dram_gbps)} GB/s), batch {res.batch}:")
    print(f"  {m['images_per_s']:.4g} images/s, latency {m['latency_ms']:.4g} ms, MAC "
          f"utilization {res.utilization:.1%}")
    energy = ", ".join(f"{k} {v / res.batch * 1e3:.3g}" for k, v in
                       res.energy_by_component.items())
    print(f"  energy {m['energy_per_image_mj']:.4g} mJ/image ({energy}), DRAM "
          f"{m['dram_mb_per_image']:.4g} MB/image")
    print(f"  {m['memory_bound_layers']} of {m['layers']} layers memory-bound, "
          f"{m['compute_bound_layers']} compute-bound")
    if ignored:
        print(f"  ignored (not modelled): {', '.join(f'{n} ({t})' for n, t in ignored.items())}")
    print(f"wrote {', '.join(sorted(p.name for p in files))} to {out}/")
    return 0


class _CallableModule(types.ModuleType):
    """This module, callable as the simulator (see the module docstring)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from dse.sim import simulate

        return simulate(*args, **kwargs)


if __name__ == "__main__":
    run_as_program(main)
else:
    sys.modules[__name__].__class__ = _CallableModule

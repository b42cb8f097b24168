"""CLI: print the layer table of a zoo model's workload.

    python -m workloads.show resnet50 --bits 2 --first-last 8
    python -m workloads.show alexnet --width 2 --bits 2 --first-last 16 --json alexnet_w2.json

Bits come from ``--bits`` (default for every layer) and ``--first-last`` (override for the first
and last layer); quantizer modules are not involved (use ``quant.quantize`` + ``extract`` for that).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from torch import nn

from workloads import zoo
from workloads.extraction import extract


def first_last_names(model: nn.Module) -> list[str]:
    """Names of the first and last Conv/Linear in ``model.modules()`` order (contract rule)."""
    layers = [n for n, m in model.named_modules()
              if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Linear)]
    return sorted({layers[0], layers[-1]}) if layers else []


def _options(items: Sequence[str]) -> dict[str, bool | str]:
    """Parse ``KEY=VALUE`` builder options; true/false become bools."""
    out: dict[str, bool | str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--option {item!r} is invalid; expected KEY=VALUE")
        low = value.lower()
        out[key] = low == "true" if low in ("true", "false") else value
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m workloads.show",
                                description="Print the layer table of a zoo model.")
    p.add_argument("model", help="zoo model: " + ", ".join(zoo.names()))
    p.add_argument("--bits", type=int, default=16, help="default bits of weights/activations")
    p.add_argument("--first-last", type=int, default=None, metavar="BITS",
                   help="bits of the first and last layer (default: same as --bits)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--width", type=float, default=1, help="WRPN channel multiplier")
    p.add_argument("--num-classes", type=int, default=None)
    p.add_argument("--input-shape", type=int, nargs=3, metavar=("C", "H", "W"), default=None)
    p.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="model builder option, e.g. -o variant=tensorpack -o grouped=false "
                        "(alexnet), -o stride_in_1x1=true (resnet50)")
    p.add_argument("--compute-only", action="store_true", help="list compute layers only")
    p.add_argument("--json", metavar="PATH", help="also save the workload as JSON")
    args = p.parse_args(argv)
    try:
        if args.model not in zoo.names():
            raise ValueError(f"unknown model {args.model!r}; available: {', '.join(zoo.names())}")
        for flag, value in (("--bits", args.bits), ("--first-last", args.first_last)):
            if value is not None and not 1 <= value <= 64:
                raise ValueError(f"{flag}={value} is invalid; expected an int in [1, 64]")
        if args.batch < 1:
            raise ValueError(f"--batch={args.batch} is invalid; expected an int >= 1")
        width = int(args.width) if float(args.width).is_integer() else args.width
        model = zoo.get(args.model, num_classes=args.num_classes, width=width,
                        **_options(args.option))
        shape = tuple(args.input_shape) if args.input_shape else zoo.input_shape(args.model)
        name = args.model + (f"_w{args.width:g}" if args.width != 1 else "")
        overrides = ({n: args.first_last for n in first_last_names(model)}
                     if args.first_last is not None else None)
        wl = extract(model, shape, batch=args.batch, default_bits=args.bits,
                     overrides=overrides, name=name)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        wl.save(args.json)
    try:
        print(wl.summary(compute_only=args.compute_only))
        if args.json:
            print(f"saved {args.json}")
    except BrokenPipeError:          # `... | head`: not an error
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

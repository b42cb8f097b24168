"""CLI: print the layer table of a zoo model's workload.

    python -m workloads.show resnet50 --bits 2 --first-last 8
    python -m workloads.show alexnet --width 2 --bits 2 --first-last 16 --json alexnet_w2.json

Bits come from ``--bits`` (default for every layer) and ``--first-last`` (override for the first
and last layer); quantizer modules are not involved (use ``quant.quantize`` + ``extract`` for that).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from torch import nn

from workloads import zoo
from workloads.extraction import extract

if TYPE_CHECKING:
    from workloads.graph import Workload

_MAX_BATCH = 1 << 20
_MAX_WIDTH = 64.0  # WRPN widens by 2-3x; 64x an ImageNet model does not fit in memory
_MAX_CLASSES = 1 << 20
_MAX_SIDE = 1 << 14  # pixels or channels of the input image


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


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one ``error:`` line, exit status 2 (the CLI contract)."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None
                         ) -> tuple[argparse.Namespace, list[str]]:
        # argparse turns ``--flag=--`` into an empty list (it drops the "--"), not an error
        for tok in sys.argv[1:] if args is None else args:
            if isinstance(tok, str) and tok.startswith("-") and tok.endswith("=--"):
                self.error(f"argument {tok[:-3]}: expected one value, got '--'")
        return super().parse_known_args(args, namespace)


class _UsageError(Exception):
    pass


def _check_json_path(text: str) -> Path:
    """``--json PATH`` checked before the extraction: not a folder, in a writable folder."""
    path = Path(text)
    if text.endswith(("/", os.sep)) or path.is_dir():
        raise ValueError(f"--json={text!r} is a folder; expected a file path such as "
                         f"{str(path / 'workload.json')!r}")
    folder = path.parent
    if not folder.is_dir():
        raise ValueError(f"--json={text!r} cannot be written: folder {str(folder)!r} does not "
                         "exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"--json={text!r} cannot be written: folder {str(folder)!r} is not "
                         "writable")
    return path


def _save_json(wl: Workload, path: Path) -> None:
    """Write ``wl`` as JSON atomically (`Workload.save`: a temporary ``.<name>.<pid>.<random>.tmp``
    in the same folder, renamed into place); on failure the old file is intact, no temporary is
    left behind and the error names ``--json``."""
    try:
        wl.save(path)
    except OSError as e:
        raise ValueError(f"--json={str(path)!r} cannot be written: {e.strerror or e}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: bad input prints one ``error:`` line on stderr and returns 2; Ctrl-C
    prints one line and returns 130."""
    try:
        return _main(argv)
    except (ValueError, _UsageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _main(argv: Sequence[str] | None) -> int:
    p = _Parser(prog="python -m workloads.show",
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
    if args.model not in zoo.names():
        raise ValueError(f"unknown model {args.model!r}; available: {', '.join(zoo.names())}")
    for flag, value in (("--bits", args.bits), ("--first-last", args.first_last)):
        if value is not None and not 1 <= value <= 64:
            raise ValueError(f"{flag}={value} is invalid; expected an int in [1, 64]")
    if not 1 <= args.batch <= _MAX_BATCH:
        raise ValueError(f"--batch={args.batch} is invalid; expected an int in [1, {_MAX_BATCH}]")
    if not 0 < args.width <= _MAX_WIDTH:  # also rejects nan
        raise ValueError(f"--width={args.width:g} is invalid; expected a channel multiplier in "
                         f"(0, {_MAX_WIDTH}]")
    if args.num_classes is not None and not 1 <= args.num_classes <= _MAX_CLASSES:
        raise ValueError(f"--num-classes={args.num_classes} is invalid; expected an int in "
                         f"[1, {_MAX_CLASSES}]")
    if args.input_shape is not None and not all(1 <= v <= _MAX_SIDE for v in args.input_shape):
        raise ValueError(f"--input-shape={' '.join(map(str, args.input_shape))} is invalid; "
                         f"expected three ints C H W in [1, {_MAX_SIDE}]")
    if args.json is not None and not args.json.strip():
        raise ValueError("--json='' is not allowed; expected a file path such as workload.json")
    json_path = _check_json_path(args.json) if args.json else None
    width = int(args.width) if float(args.width).is_integer() else args.width
    model = zoo.get(args.model, num_classes=args.num_classes, width=width,
                    **_options(args.option))
    shape = tuple(args.input_shape) if args.input_shape else zoo.input_shape(args.model)
    name = args.model + (f"_w{args.width:g}" if args.width != 1 else "")
    overrides = ({n: args.first_last for n in first_last_names(model)}
                 if args.first_last is not None else None)
    try:
        wl = extract(model, shape, batch=args.batch, default_bits=args.bits,
                     overrides=overrides, name=name)
    except RuntimeError as e:  # e.g. an --input-shape too small for the model's strides
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{args.model} cannot run on input shape {shape}: {first}") from None
    if json_path is not None:
        _save_json(wl, json_path)
    try:
        print(wl.summary(compute_only=args.compute_only))
        if args.json:
            print(f"saved {args.json}")
    except BrokenPipeError:          # `... | head`: not an error
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

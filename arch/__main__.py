"""``python -m arch``: inspect accelerator designs from presets or files.

    python -m arch show sysml19 --bits 2 --dram-gbps 32       # a preset
    python -m arch show design.toml                            # a file (.toml/.yaml/.yml)
    python -m arch show sysml19 --bits 2,4 --save wrpn.yaml    # ... and write it to a file
    python -m arch iso-area --bits 16 8 4 2 2,4                # sysml19 core counts, both rules
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from arch import io, presets
from arch.area import accelerator_area_breakdown_mm2
from arch.energy import default_energy_model
from arch.spec import PEAK_SCALINGS, Accelerator


def _bits(text: str) -> int | tuple[int, int]:
    """``"4"`` -> 4, ``"2,4"`` -> (2, 4)."""
    try:
        parts = [int(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bits={text!r}: expected B or W,A (integers)") from None
    if not 1 <= len(parts) <= 2 or not all(1 <= b <= 32 for b in parts):
        raise argparse.ArgumentTypeError(f"bits={text!r}: expected B or W,A with bits in 1..32")
    return parts[0] if len(parts) == 1 else (parts[0], parts[1])


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one ``error:`` line and exit status 2 (no usage block),
    the contract every qdse CLI keeps; `main` catches `_UsageError`."""

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


def _design(text: str) -> Accelerator:
    """A preset name or a design file; anything else names the presets and the suffixes."""
    path = Path(text)
    if path.suffix.lower() not in io.SUFFIXES:
        raise ValueError(f"design={text!r} is neither a preset ({', '.join(presets.names())}) nor "
                         f"a design file ({', '.join(io.SUFFIXES)})")
    return io.load(path)


def _describe(acc: Accelerator) -> str:
    area = accelerator_area_breakdown_mm2(acc)
    em = default_energy_model(acc.node_nm)
    w, a = acc.mac_bits
    lines = [f"{k:16s} {v!r}" for k, v in io.to_dict(acc).items()]
    lines += [
        "",
        f"{'peak':16s} {acc.peak_tops:.3f} TOPS ({acc.peak_macs_per_s / 1e9:.1f} GMAC/s)",
        f"{'sram total':16s} {acc.sram_bytes_total / 2**20:.3f} MiB",
        f"{'area':16s} {acc.area:.4f} mm^2 = "
        + " + ".join(f"{k} {v:.4f}" for k, v in area.items()),
        f"{'energy':16s} MAC {em.mac_pj(w, a, acc.acc_bits):.4f} pJ, SRAM "
        f"{em.sram_pj_per_bit:.4f} pJ/bit, DRAM {em.dram_pj_per_bit:.1f} pJ/bit "
        f"({acc.node_nm:g} nm)",
    ]
    return "\n".join(lines)


def _iso_table(bits: Sequence[int | tuple[int, int]], dram_gbps: float,
               total_sram_kib: float) -> str:
    budget = presets.sysml19_area_budget(total_sram_kib=total_sram_kib)
    head = f"sysml19 budget {budget:.3f} mm^2, total SRAM {total_sram_kib:g} KiB\n"
    cols = "".join(f"{s + ' cores':>16s}{'TOPS':>8s}{'KiB/core':>10s}" for s in PEAK_SCALINGS)
    rows = [f"{'mac_bits':>10s}{cols}"]
    for b in bits:
        cells = ""
        for scaling in PEAK_SCALINGS:
            acc = presets.sysml19(b, dram_gbps, peak_scaling=scaling,
                                  total_sram_kib=total_sram_kib)
            cells += f"{acc.cores:16d}{acc.peak_tops:8.1f}{acc.sram_kib:10.1f}"
        w, a = acc.mac_bits
        rows.append(f"{f'W{w}A{a}':>10s}{cells}")
    return head + "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; bad input prints one ``error:`` line on stderr and returns 2."""
    parser = _Parser(prog="python -m arch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("show", help="describe a preset or a design file")
    show.add_argument("design", help=f"a preset ({', '.join(presets.names())}) or a file path")
    show.add_argument("--bits", type=_bits, default=None, help="MAC bits: B or W,A")
    show.add_argument("--dram-gbps", type=float, default=None, help="DRAM GB/s (inf allowed)")
    show.add_argument("--peak-scaling", choices=PEAK_SCALINGS, default=None)
    show.add_argument("--save", type=Path, default=None, help="write the design to this file")
    iso = sub.add_parser("iso-area", help="sysml19 core counts under both peak-scaling rules")
    iso.add_argument("--bits", type=_bits, nargs="+", default=[16, 8, 4, 2, (2, 4)])
    iso.add_argument("--dram-gbps", type=float, default=32.0)
    iso.add_argument("--total-sram-kib", type=float, default=presets.SYSML19_TOTAL_SRAM_KIB)
    try:
        args = parser.parse_args(argv)
        if args.command == "iso-area":
            print(_iso_table(args.bits, args.dram_gbps, args.total_sram_kib))
            return 0
        if args.design in presets.names():
            kw = {k: v for k, v in (("mac_bits", args.bits), ("dram_gbps", args.dram_gbps),
                                    ("peak_scaling", args.peak_scaling)) if v is not None}
            acc = presets.get(args.design, **kw)
        else:
            if args.bits is not None or args.dram_gbps is not None or args.peak_scaling:
                raise ValueError("--bits/--dram-gbps/--peak-scaling apply to presets, not files")
            acc = _design(args.design)
        text = _describe(acc)
        if args.save is not None:
            try:
                io.save(acc, args.save)
            except OSError as exc:
                raise ValueError(f"--save={str(args.save)!r} cannot be written: "
                                 f"{exc.strerror or exc}") from None
        print(text)
        if args.save is not None:
            print(f"saved {args.save}")
    except (ValueError, _UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # unreadable design file, unwritable --save
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Refit the SAWB coefficient table: ``python -m quant.sawb_table [--bits 2 3 4] [--write]``.

Prints (c1, c2), the worst relative error of Eq. 7 over the six densities and each density's
MSE-optimal alpha; ``--write`` stores the table in quant/sawb_table.json, which
:func:`quant.sawb_coefficients` reads (see quant.methods.sawb for the method).
"""

from __future__ import annotations

import json
import sys
from importlib import resources

from quant.methods.sawb import GRIDS, TABLE_BITS, TABLE_FILE, fit_sawb

MIN_BITS, MAX_BITS = 2, 16  # every grid's range (with_zero needs 2 bits: a zero and +-1 levels)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status (bad input: one ``error:`` line, status 2)."""
    from quant.train_cli import OneLineErrorParser

    ap = OneLineErrorParser(prog="python -m quant.sawb_table",
                            description="Refit the SAWB (c1, c2) table (SysML 2019 Sec. 4)")
    ap.add_argument("--bits", type=int, nargs="+", default=list(TABLE_BITS),
                    help=f"bit widths in {MIN_BITS}..{MAX_BITS} (default {TABLE_BITS})")
    ap.add_argument("--write", action="store_true", help=f"write quant/{TABLE_FILE}")
    args = ap.parse_args(argv)
    bad = [b for b in args.bits if not MIN_BITS <= b <= MAX_BITS]
    if bad:  # before any fit: a fit takes seconds per bit width
        ap.error(f"--bits: {bad} not allowed; give bit widths in {MIN_BITS}..{MAX_BITS}")
    table: dict[str, dict[str, list[float]]] = {}
    errors: dict[str, dict[str, float]] = {}
    for b in args.bits:
        for g in GRIDS:
            fit = fit_sawb(b, g)
            table.setdefault(str(b), {})[g] = [round(fit.c1, 4), round(fit.c2, 4)]
            errors.setdefault(str(b), {})[g] = round(fit.max_rel_error, 4)
            print(f"bits={b} grid={g:9s} c1={fit.c1:8.4f} c2={fit.c2:8.4f} "
                  f"max fit error {100 * fit.max_rel_error:5.2f} %  alpha*="
                  + ", ".join(f"{k}:{v:.4f}" for k, v in fit.alpha_opt.items()))
    if args.write:
        doc = {
            "source": "quant.methods.sawb.fit_sawb: six unit-variance densities (von Mises "
                      "kappa=2), trapezoid integration on 6e5 points, bounded 1-D minimisation, "
                      "least squares without intercept",
            "coefficients": table,
            "max_relative_fit_error": errors,
        }
        path = str(resources.files("quant").joinpath(TABLE_FILE))
        with open(path, "w") as fh:
            json.dump(doc, fh, indent=2)
            fh.write("\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

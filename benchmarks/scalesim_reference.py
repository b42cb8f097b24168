"""Regenerate tests/golden/scalesim_bw/*.csv by running SCALE-Sim v3 itself, one layer per run.

    python benchmarks/scalesim_reference.py --set tuned          # the layers scalesim_tiles was
    python benchmarks/scalesim_reference.py --set heldout        #   built on, and layers it was not
    python benchmarks/scalesim_reference.py --set mobilenet_v1 [--only pw12,pw13]

Needs the test extra (``pip install -c constraints.txt scalesim==3.0.0``) and NumPy < 2.4:
SCALE-Sim 3.0.0 converts 1-element arrays with int(), which NumPy 2.4 refuses. Each layer is run
alone in USER bandwidth mode (every operand its own DRAM port at ``words_per_cycle``; see
tests/dse/scalesim_peer.py) and appended to the set's CSV as soon as it finishes, so a long set can
be stopped and resumed (layers already in the CSV are skipped). Prints one line per layer with
SCALE-Sim's wall time.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "dse"))

from scalesim_peer import (  # noqa: E402
    SCALESIM_VERSION,
    ConvLayer,
    GemmLayer,
    run_scalesim,
    scalesim_unusable_reason,
)

GOLDEN = ROOT / "tests" / "golden" / "scalesim_bw"

# (layer, rows, cols, dataflow, ifmap KiB, filter KiB, ofmap KiB, words/cycle)
Case = tuple[ConvLayer | GemmLayer, int, int, str, int, int, int, int]


def _tuned() -> list[Case]:
    """The layers scalesim_tiles was developed against (each dataflow)."""
    base: list[tuple[ConvLayer | GemmLayer, int, int, int, int, int, int]] = [
        (GemmLayer("g1", 100, 130, 90), 8, 16, 1, 1, 1, 4),
        (GemmLayer("g2", 64, 64, 64), 8, 8, 1, 1, 1, 2),
        (GemmLayer("g3", 37, 77, 53), 8, 8, 1, 2, 1, 3),
        (GemmLayer("g4", 300, 20, 20), 16, 4, 1, 1, 1, 4),
        (GemmLayer("g5", 196, 64, 64), 8, 16, 4, 4, 2, 10),
        (GemmLayer("g6", 100, 96, 128), 8, 32, 8, 8, 4, 10),
        (ConvLayer("c3x3", 10, 10, 3, 3, 8, 16, 1), 8, 8, 1, 1, 1, 4),
        (ConvLayer("c3x3s2", 11, 11, 3, 3, 4, 24, 2), 8, 8, 1, 1, 1, 4),
        (ConvLayer("c1x1", 8, 8, 1, 1, 32, 40, 1), 8, 8, 1, 1, 1, 4),
        (ConvLayer("c3x3n8", 9, 9, 3, 3, 16, 8, 1), 8, 8, 1, 1, 1, 4),
    ]
    return [(la, r, c, df, i, f, o, bw) for df in ("os", "ws", "is")
            for la, r, c, i, f, o, bw in base]


def _heldout() -> list[Case]:
    """Layers, arrays and bandwidths scalesim_tiles was never run against while it was built."""
    base: list[tuple[ConvLayer | GemmLayer, int, int, int, int, int, int]] = [
        (GemmLayer("h1", 150, 70, 110), 16, 16, 2, 1, 1, 6),
        (GemmLayer("h2", 90, 200, 40), 4, 32, 1, 2, 2, 5),
        (GemmLayer("h3", 256, 48, 96), 32, 8, 4, 2, 1, 8),
        (ConvLayer("h5x5", 12, 12, 5, 5, 6, 20, 1), 8, 16, 2, 1, 1, 7),
        (ConvLayer("h3x3s2", 15, 15, 3, 3, 12, 16, 2), 16, 8, 1, 1, 1, 3),
        (ConvLayer("h1x1", 14, 14, 1, 1, 48, 24, 1), 8, 32, 2, 2, 1, 12),
    ]
    return [(la, r, c, df, i, f, o, bw) for df in ("os", "ws", "is")
            for la, r, c, i, f, o, bw in base]


def _heldout2() -> list[Case]:
    """A second held-out set, recorded after the last change to scalesim_tiles (the `heldout`
    set's 1x1 WS layer prompted the spreading of ofmap words over each fold's output window)."""
    base: list[tuple[ConvLayer | GemmLayer, int, int, int, int, int, int]] = [
        (GemmLayer("k1", 120, 88, 72), 8, 24, 2, 2, 1, 9),
        (GemmLayer("k2", 64, 300, 30), 16, 32, 1, 4, 2, 16),
        (ConvLayer("k3x3", 13, 13, 3, 3, 10, 32, 1), 12, 12, 2, 1, 2, 5),
        (ConvLayer("k1x1s2", 16, 16, 1, 1, 40, 36, 2), 8, 8, 1, 2, 1, 6),
    ]
    return [(la, r, c, df, i, f, o, bw) for df in ("os", "ws", "is")
            for la, r, c, i, f, o, bw in base]


def _ragged() -> list[Case]:
    """Convolutions whose stride does not divide H - R (or W - S): SCALE-Sim computes
    ceil((H - R + S) / S) outputs per side, the last ones reading off the input (padding entries
    in the ifmap operand matrix). The layers the padding model of scalesim_tiles was built on;
    heldout2's k1x1s2 stays held out."""
    base: list[tuple[ConvLayer | GemmLayer, int, int, int, int, int, int]] = [
        (ConvLayer("r1x1s2", 20, 20, 1, 1, 32, 24, 2), 8, 8, 1, 1, 1, 4),
        (ConvLayer("r3x3s2", 14, 14, 3, 3, 8, 16, 2), 8, 8, 1, 1, 1, 4),
        (ConvLayer("r1x1s3", 17, 14, 1, 1, 48, 40, 3), 8, 16, 1, 2, 1, 5),
    ]
    return [(la, r, c, df, i, f, o, bw) for df in ("os", "ws", "is")
            for la, r, c, i, f, o, bw in base]


def _heldout3() -> list[Case]:
    """A third held-out set, recorded after scalesim_tiles learned SCALE-Sim's im2col padding and
    repeated addresses (from the `ragged` and `tuned` sets): convolutions with overlapping
    windows, ragged strides or both, on other arrays, buffers and bandwidths."""
    base: list[tuple[ConvLayer | GemmLayer, int, int, int, int, int, int]] = [
        (ConvLayer("q3x3r", 16, 15, 3, 3, 12, 20, 2), 8, 16, 2, 1, 1, 3),
        (ConvLayer("q5x5s3r", 18, 18, 5, 5, 4, 24, 3), 16, 8, 1, 2, 1, 8),
        (ConvLayer("q3x3", 12, 12, 3, 3, 16, 24, 1), 12, 12, 4, 2, 2, 6),
        (ConvLayer("q2x2s2r", 11, 11, 2, 2, 20, 16, 2), 4, 16, 1, 1, 1, 4),
        (ConvLayer("q7x7s2", 21, 21, 7, 7, 3, 16, 2), 8, 8, 2, 1, 1, 5),
    ]
    return [(la, r, c, df, i, f, o, bw) for df in ("os", "ws", "is")
            for la, r, c, i, f, o, bw in base]


def _mobilenet_v1() -> list[Case]:
    """MobileNet-v1 (224x224, pre-padded inputs) on one 8x64 output-stationary array with
    512/512/256 KiB buffers and 10 words/cycle - the run issue 9 quotes. Depthwise layers are left
    out (SCALE-Sim runs them as one layer per channel: thousands of runs)."""
    dims = [("conv1", 225, 3, 3, 32, 2), ("pw1", 112, 1, 32, 64, 1), ("pw2", 56, 1, 64, 128, 1),
            ("pw3", 56, 1, 128, 128, 1), ("pw4", 28, 1, 128, 256, 1),
            ("pw5", 28, 1, 256, 256, 1), ("pw6", 14, 1, 256, 512, 1)]
    dims += [(f"pw{7 + i}", 14, 1, 512, 512, 1) for i in range(5)]
    dims += [("pw12", 7, 1, 512, 1024, 1), ("pw13", 7, 1, 1024, 1024, 1),
             ("fc", 1, 1, 1024, 1000, 1)]
    return [(ConvLayer(name, h, h, r, r, c, n, s), 8, 64, "os", 512, 512, 256, 10)
            for name, h, r, c, n, s in dims]


SETS = {"tuned": _tuned, "heldout": _heldout, "heldout2": _heldout2, "ragged": _ragged,
        "heldout3": _heldout3, "mobilenet_v1": _mobilenet_v1}
FIELDS = ["layer", "kind", "ifmap_h", "ifmap_w", "filt_h", "filt_w", "channels", "num_filt",
          "stride", "gemm_m", "gemm_n", "gemm_k", "rows", "cols", "dataflow", "ifmap_kib",
          "filter_kib", "ofmap_kib", "words_per_cycle", "total_cycles",
          "total_cycles_incl_prefetch", "stall_cycles", "compute_cycles", "dram_ifmap_reads",
          "dram_filter_reads", "dram_ofmap_writes", "wall_s"]


def _key(la: ConvLayer | GemmLayer, df: str) -> str:
    return f"{la.name}/{df}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", choices=sorted(SETS), required=True)
    ap.add_argument("--only", default="", help="comma-separated layer names (default: all)")
    args = ap.parse_args(argv)
    reason = scalesim_unusable_reason()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    cases = SETS[args.set]()
    only = {s for s in args.only.split(",") if s}
    unknown = only - {la.name for la, *_ in cases}
    if unknown:
        print(f"error: --only {','.join(sorted(unknown))!r} not in set {args.set!r}; known: "
              f"{', '.join(sorted({la.name for la, *_ in cases}))}", file=sys.stderr)
        return 2
    GOLDEN.mkdir(parents=True, exist_ok=True)
    path = GOLDEN / f"{args.set}.csv"
    done: set[str] = set()
    recorded: dict[tuple[object, ...], dict[str, str]] = {}  # a layer's config -> its results
    if path.exists():
        with path.open() as f:
            for r in csv.DictReader(f):
                done.add(f"{r['layer']}/{r['dataflow']}")
                recorded[tuple(r[c] for c in FIELDS[1:19])] = r
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, lineterminator="\n")
        if new:
            w.writeheader()
        for la, rows, cols, df, ik, fk, ok, bw in cases:
            if (only and la.name not in only) or _key(la, df) in done:
                continue
            geo: dict[str, object] = (
                {"kind": "conv", "ifmap_h": la.ifmap_h, "ifmap_w": la.ifmap_w,
                 "filt_h": la.filt_h, "filt_w": la.filt_w, "channels": la.channels,
                 "num_filt": la.num_filt, "stride": la.stride}
                if isinstance(la, ConvLayer) else {"kind": "gemm"})
            m, n, k = la.gemm_mnk
            row: dict[str, object] = {
                "layer": la.name, **geo, "gemm_m": m, "gemm_n": n, "gemm_k": k, "rows": rows,
                "cols": cols, "dataflow": df, "ifmap_kib": ik, "filter_kib": fk,
                "ofmap_kib": ok, "words_per_cycle": bw}
            same = recorded.get(tuple(str(row.get(c, "")) for c in FIELDS[1:19]))
            if same is not None:  # the same layer and config again: SCALE-Sim is deterministic
                row.update({c: same[c] for c in FIELDS[19:]})
                res = {c: int(same[c]) for c in FIELDS[19:26]}
            else:
                res = run_scalesim([la], rows=rows, cols=cols, dataflow=df, ifmap_kib=ik,  # type: ignore[arg-type]
                                   filter_kib=fk, ofmap_kib=ok, words_per_cycle=bw)[0]
                row.update({c: res[c] for c in FIELDS[19:26]})
                row["wall_s"] = round(float(res["wall_s"]), 2)
                recorded[tuple(str(row.get(c, "")) for c in FIELDS[1:19])] = {
                    c: str(v) for c, v in row.items()}
            w.writerow(row)
            f.flush()
            print(f"{args.set} {_key(la, df)}: total {res['total_cycles']} incl. prefetch "
                  f"{res['total_cycles_incl_prefetch']} stall {res['stall_cycles']} "
                  f"({row['wall_s']} s, scalesim {SCALESIM_VERSION})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

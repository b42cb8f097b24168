"""The files of ``python -m quant.table``: runs.csv, accuracy.csv, checks.csv and accuracy.md
(:func:`write_table`), from the per-seed runs averaged by :func:`summarize`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from quant.table_checks import Row, _pct, _targets, _verdicts, _wa

__all__ = ["COLUMNS", "summarize", "write_table"]

COLUMNS = ["recipe", "w_bits", "a_bits", "accuracy", "fp_accuracy", "body_w_bits", "body_a_bits",
           "delta_pts", "accuracy_std", "seeds", "init", "epochs", "width", "time_s", "cpu_s"]


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

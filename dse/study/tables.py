"""Result tables: markdown rendering of a DataFrame and the results files (CSV / Parquet)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from dse.study.atomic import atomic_write

__all__ = ["FORMATS", "format_value", "markdown_table", "write_results"]

FORMATS = ("csv", "parquet")
"""Result table formats `write_results` knows."""


def format_value(v: object) -> str:
    """A table cell: a float to 4 significant digits below 1e3, whole from 1e3 to 1e7 (12197,
    not 1.22e+04), in e-notation above; +-inf as ``inf``, NaN empty; text with ``|`` escaped."""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if math.isnan(v):
            return ""
        if 1e3 <= abs(v) < 1e7:  # 12197, not 1.22e+04
            return f"{v:.0f}"
        return f"{v:.4g}" if abs(v) < 1e3 else f"{v:.3e}"
    return str(v).replace("|", "\\|")


def markdown_table(df: pd.DataFrame, max_rows: int = 60) -> str:
    """A GitHub-flavoured markdown table of ``df`` (numbers to 4 significant digits)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.head(max_rows).itertuples(index=False):
        lines.append("| " + " | ".join(format_value(v) for v in row) + " |")
    if len(df) > max_rows:
        lines.append(f"\n({len(df) - max_rows} more rows in the CSV)")
    return "\n".join(lines)


def write_results(df: pd.DataFrame, out_dir: str | Path, formats: Sequence[str] = FORMATS,
                  stem: str = "results") -> list[Path]:
    """Write ``df`` as ``stem.csv`` / ``stem.parquet`` (per ``formats``) atomically, tidied by
    `dse.study.tidy.tidy` (no repeated columns, whole cycles, exact zeros; JSON-object columns
    as Parquet maps)."""
    from dse.study.tidy import parquet_table, tidy

    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"format={','.join(formats)!r} is not allowed; "
                         f"expected a non-empty comma list of {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    df = tidy(df)
    paths = []
    if "csv" in formats:
        paths.append(atomic_write(out_dir / f"{stem}.csv", lambda p: df.to_csv(p, index=False)))
    if "parquet" in formats:
        import pyarrow.parquet as pq

        paths.append(atomic_write(out_dir / f"{stem}.parquet",
                                  lambda p: pq.write_table(parquet_table(df), p)))
    return paths

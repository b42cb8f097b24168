"""Line plots of a study's `dse.study.report.Plot` specs, as PNG and SVG (matplotlib Agg)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from dse.study.atomic import atomic_write
from dse.study.tables import format_value

if TYPE_CHECKING:
    from dse.study.report import Plot

__all__ = ["SVG_HASHSALT", "plot", "save_figure"]

SVG_HASHSALT = "qdse"
"""matplotlib's ``svg.hashsalt`` while a figure is written: the SVG's clip-path and glyph ids
are hashes of their content and this salt, instead of random (matplotlib's default)."""


def save_figure(fig: Any, path: str | Path, fmt: str, **savefig_kwargs: Any) -> Path:
    """Write ``fig`` to ``path`` in format ``fmt`` atomically (`atomic_write`) and
    byte-reproducibly: the same figure gives the same bytes in every run. An SVG gets no Date in
    its metadata and ids salted with `SVG_HASHSALT` (set only for this call: the user's
    rcParams are left as they were); a PNG (Agg) holds no date or random part to begin with."""
    import matplotlib

    metadata = {"Date": None} if fmt == "svg" else None
    with matplotlib.rc_context({"svg.hashsalt": SVG_HASHSALT}):
        return atomic_write(path, lambda p: fig.savefig(p, format=fmt, metadata=metadata,
                                                        **savefig_kwargs))


def plot(spec: Plot, path: str | Path) -> Path:
    """Render ``spec`` as a PNG at ``path`` and an SVG beside it (matplotlib Agg backend, no
    display needed); returns the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = spec.data
    for col in (spec.x, spec.y, spec.hue):
        if col is not None and col not in data.columns:
            raise ValueError(f"plot {spec.filename!r}: column {col!r} not in the data "
                             f"(columns: {', '.join(map(str, data.columns))})")
    x = pd.to_numeric(data[spec.x], errors="coerce")
    finite = x[x.map(math.isfinite)]
    inf_x = None
    if (x == math.inf).any():  # place "unlimited" one step right of the largest finite value
        top = float(finite.max()) if len(finite) else 1.0
        inf_x = top * 2.0 if spec.logx else top + (top - float(finite.min() if len(finite) else 0)
                                                  ) / max(len(finite.unique()) - 1, 1)
        x = x.where(x != math.inf, inf_x)
    data = data.assign(_x=x)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=150)
    groups = [(None, data)] if spec.hue is None else sorted(
        data.groupby(spec.hue, sort=False), key=lambda kg: _natural(kg[0]))
    for key, g in groups:
        g = g.sort_values("_x")
        label = None if key is None else spec.legend.get(key, str(key))
        ax.plot(g["_x"], g[spec.y], marker="o", label=label)
    if spec.logx:
        ax.set_xscale("log", base=2)
    if spec.logy:  # base 2 with plain numbers: ratios of 1.5x-16x stay readable
        from matplotlib.ticker import FuncFormatter, LogLocator

        ax.set_yscale("log", base=2)
        y = pd.to_numeric(data[spec.y], errors="coerce")
        y = y[(y > 0) & y.map(math.isfinite)]
        narrow = len(y) and float(y.max()) < 4 * float(y.min())  # < 2 doublings: more ticks
        ax.yaxis.set_major_locator(LogLocator(base=2, subs=(1.0, 1.25, 1.5, 1.75) if narrow
                                              else (1.0,)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: format_value(float(v))))
    ticks = sorted(data["_x"].unique())
    if len(ticks) <= 12:
        ax.set_xticks(ticks)
        ax.set_xticklabels([spec.inf_label if t == inf_x else format_value(float(t))
                            for t in ticks])
        ax.minorticks_off()
    ax.set_xlabel(spec.xlabel or spec.x)
    ax.set_ylabel(spec.ylabel or spec.y)
    ax.set_title(spec.title + (f"\n{spec.context}" if spec.context else ""),
                 fontsize=11 if spec.context else None)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()  # before the legend: the axes keep their size, the canvas grows
    if spec.hue is not None:  # beside the axes, never over the data
        ax.legend(title=spec.legend_title or None, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  borderaxespad=0.0, frameon=False, fontsize=9)
    path = Path(path)
    # "tight": the canvas grows to hold the legend beside the axes instead of shrinking them
    try:
        save_figure(fig, path.with_suffix(".svg"), "svg", bbox_inches="tight")
        return save_figure(fig, path, "png", bbox_inches="tight")
    finally:
        plt.close(fig)


def _natural(value: Any) -> tuple[Any, ...]:
    """Sort key: numbers by value; text with numbers in it ("7.04 mm²" before "14.1 mm²") by
    its pieces, the numeric ones as numbers."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value))
    pieces = re.split(r"(\d+(?:\.\d+)?)", str(value))
    return (1, *((0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(pieces)))

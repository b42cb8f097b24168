"""Reports of a study: what a study asks to show, ``summary.md`` and the docs' digest.

This module reads results and renders them; it never simulates. A study's ``summarize`` returns a
`Summary` (what to show: derived tables, `Plot` specs, `Target` checks against the paper's numbers,
notes); `write_report` writes it next to ``results.csv`` / ``results.parquet``. Every file is
written atomically (temporary file in the same folder, then ``os.replace``), so a reader or an
interrupted run never sees a half-written report.

The parts, one module each, re-exported here: `dse.study.atomic` (atomic writes and the clean-up
of killed writers' temporary files), `dse.study.tables` (markdown tables, results files),
`dse.study.plots` (PNG/SVG plots) and `dse.study.docs` (results blocks in markdown documents).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dse.study.atomic import atomic_write, atomic_write_text, remove_stale_temps
from dse.study.docs import DOC_FLAGS, check_doc, doc_block, sync_doc
from dse.study.plots import plot
from dse.study.tables import FORMATS, format_value, markdown_table, write_results

__all__ = [
    "DOC_FLAGS",
    "FORMATS",
    "Plot",
    "RunInfo",
    "Summary",
    "Target",
    "atomic_write",
    "atomic_write_text",
    "check_doc",
    "crossing",
    "digest",
    "doc_block",
    "markdown_table",
    "plot",
    "remove_stale_temps",
    "sync_doc",
    "write_report",
    "write_results",
]

log = logging.getLogger(__name__)


# -- what a study asks the report to show ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Target:
    """One reproduced number beside the paper's: passes when ``low <= value <= high``."""

    name: str
    value: float
    low: float
    high: float
    paper: str
    """The paper's number as the paper states it, e.g. ``"2.7x-3.1x"``."""
    source: str
    """Where the paper states it, e.g. ``"PACT-SAWB Sec. 7.3, Fig. 8a"``."""
    unit: str = ""
    why: str = ""
    """Why the value misses its band, in one short factual clause (the model choice, unverified
    constant or unstated paper detail that moves it; the study's notes hold the long form).
    Shown after the verdict of a miss only; '' for a target expected to pass."""

    def __post_init__(self) -> None:
        if not isinstance(self.why, str) or "\n" in self.why:
            raise ValueError(f"Target {self.name!r}: why={self.why!r} is not allowed; expected "
                             "one line of text (it is shown in a table cell)")

    @property
    def passed(self) -> bool:
        return bool(self.low <= self.value <= self.high)

    def verdict(self) -> str:
        """'in band', or how far outside the band the value is and, when given, `why`."""
        if self.passed:
            return "in band"
        miss = self._miss()
        return f"{miss} - {self.why.strip()}" if self.why.strip() else miss

    def _miss(self) -> str:
        if not math.isfinite(self.value):
            return f"MISSED (value {self.value})"
        if self.low == self.high:
            return f"MISSED: expected {self.low:g}, got {self.value:g}"
        edge = self.low if self.value < self.low else self.high
        rel = (self.value - edge) / abs(edge) if edge else float("inf")
        side = "below" if self.value < self.low else "above"
        return f"MISSED: {abs(self.value - edge):.3g}{self.unit} ({abs(rel):.1%}) {side} the band"

    def row(self) -> dict[str, str]:
        """The target as the summary's and the docs' tables show it (and the CLI prints it)."""
        return {"quantity": self.name, "paper": self.paper,
                "band": f"[{self.low:.3g}, {self.high:.3g}]",
                "qdse": format_value(float(self.value)) + self.unit, "verdict": self.verdict(),
                "source": self.source}


@dataclass(frozen=True, slots=True)
class Plot:
    """A line plot of ``y`` over ``x``, one line per value of ``hue`` (or a single line)."""

    filename: str
    title: str
    data: pd.DataFrame
    x: str
    y: str
    hue: str | None = None
    xlabel: str = ""
    ylabel: str = ""
    logx: bool = False
    logy: bool = False
    inf_label: str = "unlimited"
    """Infinite x values (unlimited bandwidth) are drawn one log-step right of the largest finite x
    and labelled with this text."""
    caption: str = ""
    legend: Mapping[Any, str] = field(default_factory=dict)
    """Legend text per ``hue`` value, in words (``{"pact_sawb": "PACT-SAWB W2A2"}``); a value
    without an entry shows as itself. Lines are ordered by value, numbers numerically."""
    legend_title: str = ""
    """Heading of the legend (default: no heading)."""
    context: str = ""
    """What the figure is of - model, batch, system - shown under the title in the figure
    (e.g. ``"AlexNet, batch 8, iso-area sysml19"``)."""


@dataclass(frozen=True, slots=True)
class Summary:
    """What ``summary.md`` and the derived files of a study contain."""

    title: str
    intro: str = ""
    targets: tuple[Target, ...] = ()
    tables: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    """name -> table; each written as ``name.csv`` and shown in the summary."""
    plots: tuple[Plot, ...] = ()
    notes: str = ""
    """Markdown after the tables: model choices that drive the result, missed bands explained."""
    headline: tuple[str, ...] = ()
    """Names of ``tables`` and plot filenames that `digest` shows in the docs beside the targets
    (the README's reproduced table and plot)."""


@dataclass(frozen=True, slots=True)
class RunInfo:
    """How a study run went (for the summary and the CLI's last line)."""

    study: str
    points: int
    cached: int
    computed: int
    elapsed_s: float
    params: Mapping[str, Any]
    fingerprint: str = ""
    command: str = ""
    """The command line that produced the run ('' from Python)."""


# -- analysis helpers for summaries ---------------------------------------------------------------
def crossing(x: Sequence[float], diff: Sequence[float]) -> float | None:
    """Where ``diff`` (sorted by ``x``) changes sign from > 0 to < 0, by linear interpolation in
    log2(x) (an infinite x counts as one doubling past the largest finite x); None if it never
    does. Used for "curve A is above curve B at low x and below it at high x"."""
    pts = sorted(zip(map(float, x), map(float, diff)))
    finite = [p for p, _ in pts if math.isfinite(p)]
    top = max(finite) if finite else 1.0

    def lx(v: float) -> float:
        return math.log2(v if math.isfinite(v) else 2 * top)

    if not pts or pts[0][1] <= 0 or pts[-1][1] >= 0:
        return None
    for (x0, d0), (x1, d1) in itertools.pairwise(pts):
        if d0 > 0 >= d1:
            t = d0 / (d0 - d1)
            return float(2 ** (lx(x0) + t * (lx(x1) - lx(x0))))
    return None



# -- the whole report -----------------------------------------------------------------------------
def _target_table(targets: Sequence[Target]) -> str:
    return markdown_table(pd.DataFrame([t.row() for t in targets]))


def render_summary(summary: Summary, info: RunInfo) -> str:
    """The markdown text of ``summary.md``."""
    parts = [f"# {summary.title}", ""]
    if summary.intro:
        parts += [summary.intro.strip(), ""]
    if summary.targets:
        n_ok = sum(t.passed for t in summary.targets)
        parts += ["## Reproduced numbers beside the paper's", "",
                  f"{n_ok} of {len(summary.targets)} targets inside their band.", "",
                  _target_table(summary.targets), ""]
    for name, table in summary.tables.items():
        parts += [f"## {name}", "", f"(`{name}.csv`)", "", markdown_table(table), ""]
    for p in summary.plots:
        parts += [f"![{p.title}]({p.filename})", ""]
        if p.caption:
            parts += [f"*{p.caption.strip()}*", ""]
    if summary.notes:
        parts += [summary.notes.strip(), ""]
    params = json.dumps(dict(info.params), default=str, sort_keys=True)
    parts += ["## Run", ""]
    if info.command:
        parts.append(f"- command: `{info.command}`")
    parts += [f"- study `{info.study}`, parameters `{params}`",
              f"- {info.points} design points: {info.computed} computed, {info.cached} reused "
              f"from the cache, {info.elapsed_s:.1f} s",
              f"- code fingerprint `{info.fingerprint}` (cached points are reused only while the "
              "model code is unchanged)", ""]
    return "\n".join(parts)


def digest(summary: Summary, study: str, image_links: Mapping[str, str] | None = None,
           notes: bool = False) -> str:
    """The block a document shows for a study: its targets beside the paper's bands, the
    ``headline`` tables, for headline plots links from ``image_links`` (filename -> link) and,
    with ``notes``, the study's notes (what drives the result, missed bands explained).

    Only what the study computes goes in (no timings, no paths), so the same code gives the same
    block: `sync_doc` writes it and a test compares a fresh run with what the docs say.
    """
    parts = [f"Reproduced by `python -m dse.study {study}`: {summary.title}.", ""]
    if summary.targets:
        n_ok = sum(t.passed for t in summary.targets)
        parts += [f"{n_ok} of {len(summary.targets)} targets inside their band.", "",
                  _target_table(summary.targets), ""]
    for name in summary.headline:
        if name in summary.tables:
            parts += [f"`{name}.csv`:", "", markdown_table(summary.tables[name]), ""]
    for p in summary.plots:
        if p.filename in summary.headline and image_links and p.filename in image_links:
            parts += [f"![{p.title}]({image_links[p.filename]})", ""]
    if notes and summary.notes:
        parts += [re.sub(r"(?m)^## ", "#### ", summary.notes.strip()), ""]
    return "\n".join(parts).strip() + "\n"


def _csv_writer(table: pd.DataFrame) -> Callable[[Path], object]:
    def write(path: Path) -> object:
        return table.to_csv(path, index=False)

    return write


def write_report(results: pd.DataFrame, summary: Summary, info: RunInfo, out_dir: str | Path,
                 formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write results, derived tables (CSV), plots (PNG) and ``summary.md`` into ``out_dir``."""
    out_dir = Path(out_dir)
    paths = write_results(results, out_dir, formats)
    for name, table in summary.tables.items():
        paths.append(atomic_write(out_dir / f"{name}.csv", _csv_writer(table)))
    for p in summary.plots:
        png = plot(p, out_dir / p.filename)
        paths += [png, png.with_suffix(".svg")]
    paths.append(atomic_write_text(out_dir / "summary.md", render_summary(summary, info)))
    _forget_stale(out_dir, paths)
    log.info("wrote %d files to %s", len(paths), out_dir)
    return paths


MANIFEST = ".report-files.json"
"""The files the last report wrote into its folder (names only), so the next can drop the ones it
no longer writes."""


def _forget_stale(out_dir: Path, paths: Sequence[Path]) -> None:
    """Remove the files an earlier report wrote into ``out_dir`` that this one did not (a table
    or plot another parameter set made, which would sit beside this run's summary as if it were
    this run's); then record this report's files. Only names in the manifest are touched, never
    a file the report did not write."""
    names = sorted({p.name for p in paths})
    manifest = out_dir / MANIFEST
    try:
        before = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        before = []
    for name in before if isinstance(before, list) else []:
        stale = out_dir / str(name)
        if str(name) not in names and stale.parent == out_dir and stale.is_file():
            stale.unlink()
            log.info("removed %s: the last report wrote it, this one does not", stale)
    atomic_write_text(manifest, json.dumps(names, indent=0) + "\n")

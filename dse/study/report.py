"""Reports of a study: results tables, derived tables, PNG and SVG plots and ``summary.md``.

This module reads results and renders them; it never simulates. A study's ``summarize`` returns a
`Summary` (what to show: derived tables, `Plot` specs, `Target` checks against the paper's numbers,
notes); `write_report` writes it next to ``results.csv`` / ``results.parquet``. Every file is
written atomically (temporary file in the same folder, then ``os.replace``), so a reader or an
interrupted run never sees a half-written report.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

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

FORMATS = ("csv", "parquet")
"""Result table formats `write_results` knows."""


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
                "qdse": _fmt(float(self.value)) + self.unit, "verdict": self.verdict(),
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


# -- atomic file writes ---------------------------------------------------------------------------
def atomic_write(path: str | Path, writer: Callable[[Path], object]) -> Path:
    """Call ``writer(tmp)`` on a temporary path beside ``path``, then rename it over ``path``.

    The temporary file is ``.<name>.<pid>.<random>.tmp``: the writing process's id lets
    `remove_stale_temps` tell the litter of a killed run from a file a live run is writing.
    The file gets the mode a plain ``open(path, "w")`` would give it (0666 less the umask), not
    the 0600 of `tempfile.mkstemp`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                                    dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


_TEMP_NAME = re.compile(r"\.(?P<target>.+?)\.(?:(?P<pid>\d+)\.)?[a-z0-9_]{8}\.tmp")
"""`atomic_write`'s temporary names: ``.<name>.<pid>.<8 random characters>.tmp`` (the random
part is `tempfile.mkstemp`'s); before the pid was added, ``.<name>.<random>.tmp``."""


def remove_stale_temps(folder: str | Path, *, recursive: bool = False,
                       legacy: bool = False) -> list[Path]:
    """Remove the temporary files `atomic_write` left in ``folder`` when its process died
    mid-write (SIGKILL, power loss): names ``.<name>.<pid>.<random>.tmp`` whose pid is no running
    process; with ``legacy`` also the pid-less ``.<name>.<random>.tmp`` of earlier versions (only
    for folders no one else writes, as a study's cache). ``recursive``: the sub-folders too.
    Files of a live process and every other name are left alone; returns the removed paths."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted(folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp")):
        m = _TEMP_NAME.fullmatch(path.name)
        if m is None or not path.is_file() or path.is_symlink():
            continue
        pid = m.group("pid")
        if (pid is None and not legacy) or (pid is not None and _running(int(pid))):
            continue
        try:
            path.unlink()
        except FileNotFoundError:  # its writer finished (renamed it) or another run removed it
            continue
        removed.append(path)
    if removed:
        log.info("removed %d temporary files left by killed runs in %s", len(removed), folder)
    return removed


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists (True when that cannot be told: the file is kept)."""
    if pid == os.getpid():
        return True
    if os.name != "posix":  # os.kill(pid, 0) is no probe on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it: set, then restore at once
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


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


# -- tables ---------------------------------------------------------------------------------------
def _fmt(v: object) -> str:
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
        lines.append("| " + " | ".join(_fmt(v) for v in row) + " |")
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


# -- plots ----------------------------------------------------------------------------------------
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
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _fmt(float(v))))
    ticks = sorted(data["_x"].unique())
    if len(ticks) <= 12:
        ax.set_xticks(ticks)
        ax.set_xticklabels([spec.inf_label if t == inf_x else _fmt(float(t)) for t in ticks])
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
        atomic_write(path.with_suffix(".svg"),
                     lambda p: fig.savefig(p, format="svg", bbox_inches="tight"))
        return atomic_write(path, lambda p: fig.savefig(p, format="png", bbox_inches="tight"))
    finally:
        plt.close(fig)


def _natural(value: Any) -> tuple[Any, ...]:
    """Sort key: numbers by value; text with numbers in it ("7.04 mm²" before "14.1 mm²") by
    its pieces, the numeric ones as numbers."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value))
    pieces = re.split(r"(\d+(?:\.\d+)?)", str(value))
    return (1, *((0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(pieces)))


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


DOC_FLAGS = ("+notes",)
"""Options a results marker may carry: ``<!-- qdse:results NAME +notes -->``."""


def doc_block(text: str, study: str) -> tuple[str, tuple[str, ...]] | None:
    """The text between study ``study``'s result markers in a document and the flags of its
    opening marker; None when the document has no block for it."""
    span = _block_span(text, study)
    if span is None:
        return None
    i, j, flags = span
    return text[i:j].strip("\n") + "\n", flags


def _block_span(text: str, study: str) -> tuple[int, int, tuple[str, ...]] | None:
    m = re.search(rf"<!-- qdse:results {re.escape(study)}((?: \+\w+)*) -->", text)
    end = text.find(f"<!-- /qdse:results {study} -->", m.end()) if m else -1
    if m is None or end < 0:
        return None
    flags = tuple(m.group(1).split())
    bad = [f for f in flags if f not in DOC_FLAGS]
    if bad:
        raise ValueError(f"results marker of {study!r} has flags {bad}; allowed: "
                         f"{', '.join(DOC_FLAGS)}")
    return m.end(), end, flags


def check_doc(path: str | Path, study: str) -> tuple[str, int, int, tuple[str, ...]]:
    """The text of markdown file ``path`` and the span and flags of study ``study``'s results
    block; ValueError if the file cannot be read or has no such block (a document opts in by
    holding the markers)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"--update-doc={str(path)!r} cannot be read ({e.strerror or e})"
                         ) from None
    span = _block_span(text, study)
    if span is None:
        raise ValueError(f"--update-doc={str(path)!r} has no block for study {study!r}; add the "
                         f"lines '<!-- qdse:results {study} -->' and "
                         f"'<!-- /qdse:results {study} -->' where its results belong")
    return (text, *span)


def sync_doc(path: str | Path, study: str, render: Callable[[tuple[str, ...]], str]) -> Path:
    """Replace the text between ``<!-- qdse:results STUDY [+flags] -->`` and ``<!-- /qdse:results
    STUDY -->`` in the markdown file ``path`` with ``render(flags)`` (atomically); errors as
    `check_doc`."""
    text, i, j, flags = check_doc(path, study)
    block = render(flags)
    return atomic_write_text(path, text[:i] + "\n" + block.rstrip("\n") + "\n" + text[j:])


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
    log.info("wrote %d files to %s", len(paths), out_dir)
    return paths

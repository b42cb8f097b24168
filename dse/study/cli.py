"""``python -m dse.study NAME``: run a study of `studies/` and write its report.

    python -m dse.study --list
    python -m dse.study wrpn_vs_pact [--out DIR] [--bandwidth LIST] [--batch N] [--arch FILE]
                        [--format csv,parquet] [--jobs N] [--set NAME=VALUE ...] [--no-cache]

Writes ``reports/NAME/`` (or ``--out``): results.csv / results.parquet, the study's derived tables,
PNG plots and summary.md. A rerun reuses finished design points from ``<out>/.cache``.
Bad input (unknown study, model or recipe, malformed list, unwritable folder) prints one line on
stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import ast
import logging
import math
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dse.cli import (
    EXIT_BAD_INPUT,
    CliParser,
    check_jobs,
    check_writable,
    folder,
    parse_bandwidths,
    run_cli,
)

if TYPE_CHECKING:
    from types import ModuleType

    from dse.study.report import Summary
    from dse.study.runner import StudyRun

__all__ = [
    "EXIT_BAD_INPUT",
    "CliParser",
    "check_writable",
    "doc_digest",
    "main",
    "parse_bandwidths",
    "parse_value",
    "run_cli",
    "run_study_cli",
    "update_docs",
]  # EXIT_BAD_INPUT, CliParser, check_writable, parse_bandwidths, run_cli: from dse.cli


def run_study_cli(study: ModuleType, params: dict[str, Any], args: argparse.Namespace, *,
                  out: Path, prog: str, argv: Sequence[str] | None) -> StudyRun:
    """Check ``--jobs``, ``--out`` and ``--format``, then run ``study`` through the runner with a
    progress bar (unless ``--quiet``) and the command line recorded in the report."""
    from dse.study.runner import run_study

    check_jobs(args.jobs)
    check_writable(out)
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    fresh = not out.exists()
    try:
        return run_study(study, params=params, out=out, jobs=args.jobs, formats=formats,
                         progress=not args.quiet, use_cache=not args.no_cache,
                         command=" ".join([prog, *(sys.argv[1:] if argv is None else argv)]))
    except ValueError:  # bad input found by a design point: leave nothing behind
        if fresh:
            shutil.rmtree(out, ignore_errors=True)
        raise


def parse_value(text: str) -> Any:
    """A ``--set`` value: a Python literal (number, list, tuple, 'inf') or else the plain string."""
    if text.strip().lower() in ("inf", "+inf"):
        return math.inf
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _build_parser() -> argparse.ArgumentParser:
    p = CliParser(prog="python -m dse.study", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", help="study name (see --list)")
    p.add_argument("--list", action="store_true", help="list the studies and exit")
    p.add_argument("--out", type=folder, help="output folder (default reports/NAME)")
    p.add_argument("--bandwidth", help="DRAM GB/s list, e.g. 8,16,32,inf or 8:256:x2,inf")
    p.add_argument("--batch", type=int, help="images per inference batch")
    p.add_argument("--arch", metavar="PRESET|FILE",
                   help="the design template of a study that takes a preset (its 'preset' "
                        "parameter): a preset name or a TOML/YAML design file")
    p.add_argument("--format", default="csv,parquet", help="result formats (csv,parquet)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override any study parameter (repeatable; the summary lists them), "
                        "e.g. --set first_last_bits=8")
    p.add_argument("--no-cache", action="store_true", help="recompute every design point")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--update-doc", action="append", default=[], type=Path, metavar="MD",
                   help="rewrite this study's results block in a markdown file (repeatable; "
                        "the file holds <!-- qdse:results NAME --> ... <!-- /qdse:results NAME "
                        "--> markers), copying its headline plots to --doc-images")
    p.add_argument("--doc-images", type=Path, default=Path("docs") / "studies",
                   help="folder for the plots --update-doc links (default docs/studies)")
    return p


def doc_digest(name: str, summary: Summary, doc: Path, images: Path,
               flags: Sequence[str] = ()) -> str:
    """Study ``name``'s `dse.study.report.digest` as ``doc`` shows it: headline plots linked
    at ``images / NAME_<file>`` relative to the document's folder; ``+notes`` in ``flags`` adds
    the study's notes."""
    from dse.study.report import digest

    links = {p.filename: Path(os.path.relpath(images / f"{name}_{p.filename}", doc.parent))
             .as_posix() for p in summary.plots if p.filename in summary.headline}
    return digest(summary, name, links, notes="+notes" in flags)


def _check_docs(name: str, docs: Sequence[Path]) -> None:
    from dse.study.report import check_doc

    for doc in docs:
        check_doc(doc, name)


def update_docs(name: str, summary: Summary, out: Path, docs: Sequence[Path],
                images: Path) -> list[Path]:
    """Write study ``name``'s results block (`doc_digest`) into each markdown file of ``docs``;
    its headline plots are copied from the report folder ``out`` to ``images``."""
    from dse.study.report import sync_doc

    plots = [p.filename for p in summary.plots if p.filename in summary.headline]
    if plots and docs:
        images.mkdir(parents=True, exist_ok=True)
        for f in plots:
            shutil.copyfile(out / f, images / f"{name}_{f}")
    def render(doc: Path) -> Callable[[tuple[str, ...]], str]:
        return lambda flags: doc_digest(name, summary, doc, images, flags)

    return [sync_doc(doc, name, render(doc)) for doc in docs]


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in args.set:
        if "=" not in item:
            raise ValueError(f"--set {item!r} is malformed; expected NAME=VALUE")
        k, v = item.split("=", 1)
        params[k.strip()] = parse_value(v)
    if args.bandwidth is not None:
        params["bandwidth"] = parse_bandwidths(args.bandwidth)
    if args.batch is not None:
        if not 1 <= args.batch <= 1 << 20:  # a million images per batch fits no memory
            raise ValueError(f"--batch={args.batch} is not allowed; expected an integer in "
                             f"1..{1 << 20}")
        params["batch"] = args.batch
    return params


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    return run_cli(lambda: _main(argv), argv)


def _main(argv: Sequence[str] | None) -> int:
    args = _build_parser().parse_args(argv)
    from dse.study import registry

    if args.list:
        for name in registry.names():
            print(f"{name:24s} {registry.get(name).TITLE}")
        return 0
    if not args.name:
        raise ValueError("missing study NAME; run with --list to see the studies")
    study = registry.get(args.name)
    out = args.out if args.out is not None else Path("reports") / args.name
    _check_docs(study.NAME, args.update_doc)  # before the run, not after it
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    params = _params(args)
    if args.arch is not None:
        if "preset" not in study.PARAMS:
            raise ValueError(f"--arch={args.arch!r} is not allowed for study {study.NAME!r}: it "
                             "takes no design template (no 'preset' parameter); studies that do: "
                             + ", ".join(n for n in registry.names()
                                         if "preset" in registry.get(n).PARAMS))
        from dse.study.sweep import design_param

        params["preset"] = design_param(args.arch)
    run = run_study_cli(study, params, args, out=out, prog="python -m dse.study", argv=argv)
    info = run.info
    reuse = (f"{info.cached} reused from cache, {info.computed} computed" if info.cached
             else f"all {info.computed} computed, none cached")
    print(f"{info.study}: {info.points} design points ({reuse}) in {info.elapsed_s:.1f} s")
    for target in run.summary.targets if run.summary is not None else ():
        t = target.row()  # a miss says why when the study explains it
        print(f"  {t['quantity']}: {t['qdse']} (paper {t['paper']}, band {t['band']}) "
              f"{t['verdict']}")
    print(f"wrote {', '.join(sorted({p.name for p in run.files}))} to {out}/")
    if args.update_doc and run.summary is not None:
        for doc in update_docs(study.NAME, run.summary, out, args.update_doc, args.doc_images):
            print(f"updated the {study.NAME} results in {doc}")
    return 0


"""Every figure the project writes is byte-reproducible: the same figure written twice - at
another time (``SOURCE_DATE_EPOCH``), in a fresh figure - gives identical SVG and PNG files (no
Date in the SVG metadata, clip-path and glyph ids from a fixed `svg.hashsalt` instead of random
ones or the user's), and the user's matplotlib settings are left as they were."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

from dse.compare import plot_comparison
from dse.search.reports import plot_pareto
from dse.study.plots import plot
from dse.study.report import Plot


def _study_plot(out: Path) -> list[Path]:
    data = pd.DataFrame({"bw": [1.0, 2.0, math.inf] * 2, "ips": [1.0, 2.0, 3.0, 1.5, 2.5, 3.5],
                         "design": ["a"] * 3 + ["b"] * 3})
    png = plot(Plot("f.png", "title", data, "bw", "ips", hue="design", logx=True, logy=True,
                    context="ctx"), out / "f.png")
    return [png, png.with_suffix(".svg")]


def _pareto(out: Path) -> list[Path]:
    df = pd.DataFrame({"number": range(6), "state": ["COMPLETE"] * 5 + ["PRUNED"],
                       "feasible": [True, True, False, True, True, None],
                       "images_per_s": [1.0, 2.0, 3.0, 4.0, 2.5, None],
                       "energy_j": [1.0, 3.0, 0.5, 5.0, 1.0, None],
                       "accuracy_model": ["proxy"] * 6, "min_accuracy": [20.0] * 6})
    plot_pareto(df, ["images_per_s", "energy_j"], out / "pareto.png", title="t")
    return [out / "pareto.png", out / "pareto.svg"]


def _compare(out: Path) -> list[Path]:
    df = pd.DataFrame({"design": ["x", "y"], "images_per_s": [10.0, 20.0],
                       "energy_mac_mj": [1.0, 2.0], "energy_dram_mj": [0.5, 0.2],
                       "area_mm2": [3.0, 4.0]})
    return plot_comparison(df, "cmp", out)


@pytest.mark.parametrize("draw", [_study_plot, _pareto, _compare], ids=lambda f: f.__name__)
def test_the_same_figure_twice_gives_identical_files(
        draw: Callable[[Path], list[Path]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")  # matplotlib's date, when it writes one
    first = draw(tmp_path / "1")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "86400")  # a day later, a user's salt of their own
    with matplotlib.rc_context({"svg.hashsalt": "the user's"}):
        second = draw(tmp_path / "2")
        assert matplotlib.rcParams["svg.hashsalt"] == "the user's"  # not changed for good
    assert sorted(p.suffix for p in first) == [".png", ".svg"]
    for a, b in zip(first, second, strict=True):
        assert a.name == b.name
        assert a.read_bytes() == b.read_bytes(), a.name
    svg = next(p for p in first if p.suffix == ".svg").read_text()
    assert "<dc:date>" not in svg

"""`quant.benchmark_report.plot_trajectories` writes byte-reproducible figures: the same results
plotted twice, a day apart (``SOURCE_DATE_EPOCH``) and under another user ``svg.hashsalt``, give
identical PNG and SVG files, and the user's setting stays."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest

from quant.benchmark_report import plot_trajectories


def _results() -> dict[tuple[str, int], dict[str, object]]:
    curve = {"start": 1.0, "values": [0.9, 0.7, 0.6], "decay_only": [0.95, 0.9, 0.85],
             "group": "act"}
    return {("pact", 0): {"curves": {"alpha": curve, "beta": {**curve, "start": 2.0}}}}


def test_trajectory_plots_are_byte_reproducible(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    first = plot_trajectories(_results(), ["pact"], 0, tmp_path / "1" / "traj")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "86400")
    with matplotlib.rc_context({"svg.hashsalt": "the user's"}):
        second = plot_trajectories(_results(), ["pact"], 0, tmp_path / "2" / "traj")
        assert matplotlib.rcParams["svg.hashsalt"] == "the user's"
    assert [p.name for p in first] == ["traj.png", "traj.svg"]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert "<dc:date>" not in first[1].read_text()

"""Reports a reader can use: tidy results tables, plots with worded legends beside the data in
numeric order (PNG and SVG), files with the umask's mode, progress lines instead of redraws in a
log, and no folder for a rejected command."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dse.cli import check_writable, progress
from dse.study.report import Plot, atomic_write_text, plot, write_results
from dse.study.tidy import tidy


def _results() -> pd.DataFrame:
    return pd.DataFrame({
        "cores": [8, 16], "accelerator": ["a", "b"], "acc_cores": [8, 16], "acc_name": ["a", "b"],
        "acc_node_nm": [14.0, 14.0], "opt_segments": [1, 1],
        "stall_cycles": [3.08e-12, 4096.0], "onload_cycles": [107.99999999999964, 12.0],
        "latency_overlap_s": [1e-20, 2e-3], "zeros": [0.0, 0.0], "tiny_only": [1e-15, 2e-15],
        "macs_by_bits": [json.dumps({"2x2": 0.9, "16x16": 0.1}), json.dumps({"2x4": 1.0})],
    })


def test_tidy_drops_repeats_rounds_cycles_and_zeroes_residue() -> None:
    out = tidy(_results())
    assert "acc_cores" not in out  # repeats `cores`
    assert "acc_name" not in out  # repeats `accelerator`
    assert {"acc_node_nm", "opt_segments"} <= set(out)  # a value no other column holds
    assert out["stall_cycles"].tolist() == [0, 4096]
    assert out["onload_cycles"].tolist() == [108, 12]
    assert out["onload_cycles"].dtype == np.int64
    assert out["latency_overlap_s"].tolist() == [0.0, 2e-3]
    assert out["tiny_only"].tolist() == [1e-15, 2e-15]  # small but not residue of anything
    assert out["zeros"].tolist() == [0.0, 0.0]


def test_results_files_are_tidy_and_parquet_holds_a_map(tmp_path) -> None:
    write_results(_results(), tmp_path)
    csv = pd.read_csv(tmp_path / "results.csv")
    assert list(csv.columns) == list(tidy(_results()).columns)
    assert json.loads(csv["macs_by_bits"][0]) == {"2x2": 0.9, "16x16": 0.1}
    table = pq.read_table(tmp_path / "results.parquet")
    kind = table.schema.field("macs_by_bits").type
    assert pa.types.is_map(kind)
    assert (kind.key_type, kind.item_type) == (pa.string(), pa.float64())
    assert table.column("macs_by_bits").to_pylist() == [[("2x2", 0.9), ("16x16", 0.1)],
                                                       [("2x4", 1.0)]]


def test_plot_words_legend_beside_the_data_in_numeric_order(tmp_path) -> None:
    import matplotlib.pyplot as plt

    data = pd.DataFrame({"bw": [8.0, 16.0, np.inf] * 3,
                         "y": [1, 2, 3, 2, 3, 4, 3, 4, 5],
                         "design": ["14.1 mm²"] * 3 + ["7.04 mm²"] * 3 + ["28.2 mm²"] * 3})
    spec = Plot("p.png", "Throughput", data, x="bw", y="y", hue="design", logx=True,
                legend={"7.04 mm²": "small (7.04 mm²)"}, context="alexnet, batch 8")
    seen = {}
    real_close = plt.close

    def keep(fig=None):  # look at the figure before plot() closes it
        seen["fig"] = fig
        real_close(fig)

    plt.close = keep
    try:
        png = plot(spec, tmp_path / "p.png")
    finally:
        plt.close = real_close
    assert png.exists()
    assert png.with_suffix(".svg").read_text().lstrip().startswith("<?xml")
    ax = seen["fig"].axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["small (7.04 mm²)", "14.1 mm²", "28.2 mm²"]
    fig = seen["fig"]
    fig.canvas.draw()
    legend_box = ax.get_legend().get_window_extent()
    assert legend_box.x0 >= ax.get_window_extent().x1  # beside the axes, not over the data
    assert "alexnet, batch 8" in ax.get_title()


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_umask_mode(tmp_path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        path = atomic_write_text(tmp_path / "summary.md", "x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode


def test_progress_in_a_log_is_at_most_a_line_per_tenth() -> None:
    log = io.StringIO()  # not a terminal
    bar = progress(126, desc="study", unit="point", stream=log)
    for i in range(126):
        bar.set_postfix_str(f"point {i}")
        bar.update(1)
    bar.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[-1].startswith("study: 100% (126/126 points)")
    assert "\r" not in log.getvalue()
    quiet = io.StringIO()
    bar = progress(5, desc="s", unit="point", stream=quiet, enabled=False)
    bar.update(5)
    bar.close()
    assert quiet.getvalue() == ""


def test_an_interrupted_run_says_how_far_it_got() -> None:
    log = io.StringIO()
    bar = progress(100, desc="s", unit="trial", stream=log)
    bar.update(3)
    bar.close()
    assert log.getvalue().splitlines() == [log.getvalue().splitlines()[0]]
    assert log.getvalue().startswith("s: 3% (3/100 trials)")


def test_check_writable_creates_nothing(tmp_path) -> None:
    out = tmp_path / "a" / "b"
    check_writable(out)
    assert not (tmp_path / "a").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="--out="):
        check_writable(tmp_path / "file" / "sub")


def test_fidelity_note_never_prints_negative_zero() -> None:
    """A mode whose change rounds to nothing reads ``+0.0%`` once, not ``-0.0% to -0.0%``; a real
    range keeps both ends, signed."""
    from studies.pipeline import HEADLINE_MODE, fidelity_note

    table = pd.DataFrame({HEADLINE_MODE: [1.0, 2.0], "layer": [1.0 - 4e-4, 2.0],
                          "tile": [0.9, 2.02]})
    note = fidelity_note(table, "x")
    assert "-0.0%" not in note
    assert "`layer` +0.0%," in note
    assert "`tile` -10.0% to +1.0%" in note

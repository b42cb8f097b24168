"""A report folder holds this run's files only: what an earlier run wrote and this one does not
is removed; a file the report never wrote is left alone."""

from __future__ import annotations

import pandas as pd

from dse.study.report import MANIFEST, RunInfo, Summary, write_report


def _report(out, tables) -> list:
    info = RunInfo(study="toy", points=1, cached=0, computed=1, elapsed_s=0.0, params={})
    summary = Summary(title="toy", tables={n: pd.DataFrame({"x": [1]}) for n in tables})
    return write_report(pd.DataFrame({"x": [1, 2]}), summary, info, out, formats=("csv",))


def test_a_table_the_last_run_wrote_and_this_one_does_not_is_removed(tmp_path) -> None:
    out = tmp_path / "report"
    _report(out, ["speedup", "speedup_by_fidelity"])
    (out / "notes_by_me.txt").write_text("mine")
    assert (out / "speedup_by_fidelity.csv").exists()
    _report(out, ["speedup"])
    assert not (out / "speedup_by_fidelity.csv").exists()
    assert (out / "speedup.csv").exists()
    assert (out / "summary.md").exists()
    assert (out / "notes_by_me.txt").read_text() == "mine"  # never written by a report


def test_a_folder_without_or_with_a_torn_manifest_loses_nothing(tmp_path) -> None:
    out = tmp_path / "report"
    out.mkdir()
    (out / "old_table.csv").write_text("x\n1\n")  # from before manifests existed
    _report(out, ["speedup"])
    assert (out / "old_table.csv").exists()
    (out / MANIFEST).write_text("{torn")
    _report(out, [])
    assert (out / "speedup.csv").exists()  # unknown history: nothing removed
    _report(out, ["speedup"])
    _report(out, [])
    assert not (out / "speedup.csv").exists()  # recorded again, then dropped

"""dse.study.runner and dse.study.report against a fake study whose points are cheap functions."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dse.study.report import Target, markdown_table
from dse.study.runner import expand_grid, point_key, run_study


def _calls(out) -> list[str]:
    log = out / ".cache" / "artefacts" / "calls.log"
    return log.read_text().split() if log.exists() else []


def test_rows_match_the_closed_form(fake_study, tmp_path):
    run = run_study(fake_study, out=tmp_path, params={"scale": 2.0})
    df = run.results
    assert len(df) == 3 * 2 * 2  # points x rows per point
    main = df[df["sub"] == 0]
    assert (main["value"] == main["x"] ** 2 * 2.0).all()
    assert (df.groupby(["x", "kind"])["value"].sum() == 0).all()  # conservation per point
    assert df["value_share"].sum() == pytest.approx(1.0)  # derive() ran over all points
    assert list(df.columns[:3]) == ["scale", "x", "kind"]  # every input parameter is a column
    names = {p.name for p in run.files}
    assert {"results.csv", "results.parquet", "totals.csv", "value.png", "summary.md"} <= names
    back = pd.read_parquet(tmp_path / "results.parquet")
    pd.testing.assert_frame_equal(back, df)
    csv = pd.read_csv(tmp_path / "results.csv")
    assert csv["value"].tolist() == df["value"].tolist()
    assert (tmp_path / "value.png").read_bytes()[:4] == b"\x89PNG"


def test_rerun_reuses_every_point_and_gives_the_same_table(fake_study, tmp_path):
    first = run_study(fake_study, out=tmp_path)
    assert (first.info.cached, first.info.computed) == (0, 6)
    second = run_study(fake_study, out=tmp_path)
    assert (second.info.cached, second.info.computed) == (6, 0)
    assert len(_calls(tmp_path)) == 6  # nothing evaluated twice
    pd.testing.assert_frame_equal(first.results, second.results)
    assert "6 reused from the cache" in (tmp_path / "summary.md").read_text()
    # a changed parameter is a different point
    third = run_study(fake_study, out=tmp_path, params={"xs": (1, 2, 3, 4)})
    assert (third.info.cached, third.info.computed) == (6, 2)


def test_interrupted_run_resumes_where_it_stopped(fake_study, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_STUDY_FAIL_AT", "2b")  # grid order: 1a 1b 2a 2b ...
    with pytest.raises(RuntimeError, match="on purpose"):
        run_study(fake_study, out=tmp_path)
    assert _calls(tmp_path) == ["1a", "1b", "2a"]
    assert not (tmp_path / "results.csv").exists()
    monkeypatch.delenv("FAKE_STUDY_FAIL_AT")
    run = run_study(fake_study, out=tmp_path)
    assert (run.info.cached, run.info.computed) == (3, 3)
    assert sorted(_calls(tmp_path)) == sorted(["1a", "1b", "2a", "2b", "3a", "3b"])
    prepared = (tmp_path / ".cache" / "artefacts" / "prepared.log").read_text().splitlines()
    assert prepared == ["1a 1b 2a 2b 3a 3b", "2b 3a 3b"]  # only the points still to compute


def test_corrupt_cache_entry_is_recomputed(fake_study, tmp_path):
    run_study(fake_study, out=tmp_path)
    entries = sorted((tmp_path / ".cache" / "fake_study").glob("*.json"))
    assert len(entries) == 6
    entries[0].write_text("{ truncated")
    run = run_study(fake_study, out=tmp_path)
    assert (run.info.cached, run.info.computed) == (5, 1)
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temporaries


def test_parallel_jobs_give_the_same_table(fake_study, tmp_path):
    serial = run_study(fake_study, out=tmp_path / "s", report=False)
    parallel = run_study(fake_study, out=tmp_path / "p", jobs=2, report=False)
    pd.testing.assert_frame_equal(serial.results, parallel.results)
    assert sorted(_calls(tmp_path / "p")) == sorted(_calls(tmp_path / "s"))


def test_python_api_without_out_writes_nothing(fake_study, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    df = fake_study.run(scale=3.0)
    assert df.loc[(df["x"] == 3) & (df["sub"] == 0), "value"].tolist() == [27.0, 27.0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("kw", "field"), [({"params": {"nope": 1}}, "nope"),
                                           ({"params": {"scale": -1}}, "scale"),
                                           ({"jobs": 0}, "jobs"),
                                           ({"formats": ("csv", "xlsx")}, "format")])
def test_bad_input_names_the_field(fake_study, tmp_path, kw, field):
    with pytest.raises(ValueError, match=field):
        run_study(fake_study, out=tmp_path, **kw)


def test_summary_reports_target_verdicts(fake_study, tmp_path):
    run_study(fake_study, out=tmp_path)
    text = (tmp_path / "summary.md").read_text()
    assert "1 of 1 targets inside their band" in text
    assert "![value over x](value.png)" in text
    missed = Target("t", 2.0, 2.5, 3.4, paper="2.7-3.1", source="s", unit="x")
    assert not missed.passed
    assert "0.5x (20.0%) below" in missed.verdict()
    assert Target("t", 3.0, 2.5, 3.4, paper="", source="").verdict() == "in band"


def test_a_missed_target_says_why_and_a_passed_one_does_not():
    why = "the preset's SRAM is an unverified recollection"
    missed = Target("t", 2.0, 2.5, 3.4, paper="2.7", source="s", unit="x", why=why)
    assert missed.verdict() == f"MISSED: 0.5x (20.0%) below the band - {why}"
    assert missed.row()["verdict"] == missed.verdict()
    passed = Target("t", 3.0, 2.5, 3.4, paper="2.7", source="s", why=why)
    assert passed.verdict() == "in band"
    assert why not in str(passed.row())
    plain = Target("t", 2.0, 2.5, 3.4, paper="2.7", source="s", unit="x")
    assert plain.verdict() == "MISSED: 0.5x (20.0%) below the band"  # no dangling separator
    assert Target("t", 1.0, 1.0, 1.0, paper="", source="", why=" ").verdict() == "in band"
    assert Target("t", 0.0, 1.0, 1.0, paper="", source="", why=" ").verdict() == \
        "MISSED: expected 1, got 0"
    with pytest.raises(ValueError, match=r"why='a\\nb' is not allowed; expected one line"):
        Target("t", 0.0, 1.0, 1.0, paper="", source="", why="a\nb")


def test_the_why_of_a_miss_reaches_summary_digest_and_console(fake_study, tmp_path, monkeypatch,
                                                               capsys):
    from dse.study import main, registry
    from dse.study.report import Summary, digest

    why = "a cause | with a pipe"
    targets = (Target("too big", 5.0, 1.0, 2.0, paper="1.5", source="p", why=why),
               Target("fine", 1.5, 1.0, 2.0, paper="1.5", source="p", why="never shown"),
               Target("unexplained", 0.0, 1.0, 2.0, paper="1.5", source="p"))
    monkeypatch.setattr(fake_study, "summarize",
                        lambda results, params: Summary(title="T", targets=targets))
    monkeypatch.setattr(registry, "get", lambda name: fake_study)
    assert main(["fake_study", "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"  too big: 5 (paper 1.5, band [1, 2]) MISSED: 3 (150.0%) above the band - {why}" \
        in out
    assert "  fine: 1.5 (paper 1.5, band [1, 2]) in band" in out
    assert "  unexplained: 0 (paper 1.5, band [1, 2]) MISSED: 1 (100.0%) below the band" in out
    for text in ((tmp_path / "summary.md").read_text(), digest(Summary("T", targets=targets),
                                                               "demo")):
        assert "above the band - a cause \\| with a pipe |" in text  # one cell, pipe escaped
        assert "never shown" not in text
        assert "below the band |" in text


@given(st.dictionaries(st.sampled_from("abcd"), st.lists(st.integers(), min_size=1, max_size=4),
                       min_size=1))
def test_expand_grid_is_the_cartesian_product(axes):
    points = expand_grid(axes, fixed=1)
    assert len(points) == math.prod(len(v) for v in axes.values())
    assert all(p["fixed"] == 1 and set(p) == {*axes, "fixed"} for p in points)
    keys = {point_key("s", p, "f") for p in points}
    distinct = {json.dumps(p, sort_keys=True) for p in points}
    assert len(keys) == len(distinct)


def test_markdown_table_shape():
    df = pd.DataFrame({"a": [1.0, math.inf], "b": ["x|y", "z"]})
    lines = markdown_table(df).splitlines()
    assert lines[0] == "| a | b |"
    assert lines[2] == "| 1 | x\\|y |"
    assert lines[3] == "| inf | z |"


def test_protocol_check_lists_every_gap():
    import types

    import studies

    mod = types.ModuleType("studies.broken")
    mod.NAME, mod.PARAMS, mod.grid = "broken", [], 3
    with pytest.raises(ValueError, match="missing TITLE, evaluate, summarize, run"):
        studies.check(mod)
    mod.TITLE, mod.evaluate, mod.summarize, mod.run = "t", len, len, len
    with pytest.raises(ValueError, match=r"PARAMS=list must be a dict; grid is not callable"):
        studies.check(mod)


def test_search_package_is_in_the_search_study_key_and_not_in_the_default_one(
        tmp_path, monkeypatch):
    """Every module of dse/search is presentation code for the default key (a change there keeps
    every other study's cache) but is hashed by wrpn_vs_pact_search, which names the folder."""
    import shutil
    from pathlib import Path

    import dse.study.runner
    from studies import wrpn_vs_pact_search

    root = Path(dse.study.runner.__file__).resolve().parents[2]
    shutil.copytree(root / "dse", tmp_path / "dse",
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(dse.study.runner, "_ROOT", tmp_path)
    code = ("dse", *(c for c in wrpn_vs_pact_search.CODE if c.startswith("dse/search")))
    assert code == ("dse", "dse/search")
    modules = sorted((tmp_path / "dse" / "search").glob("*.py"))
    assert len(modules) > 1
    for path in modules:
        fingerprint = dse.study.runner.code_fingerprint
        default, search = fingerprint(("dse",)), fingerprint(code)
        path.write_text(path.read_text() + "\n# changed\n")
        assert dse.study.runner.code_fingerprint(("dse",)) == default, path.name
        assert dse.study.runner.code_fingerprint(code) != search, path.name


def test_every_study_reporting_module_is_outside_the_cache_key(tmp_path, monkeypatch):
    """dse/study renders and runs, it computes no design point: editing any of its modules (a new
    one included) keeps every study's cache."""
    import shutil
    from pathlib import Path

    import dse.study.runner

    root = Path(dse.study.runner.__file__).resolve().parents[2]
    shutil.copytree(root / "dse", tmp_path / "dse", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(dse.study.runner, "_ROOT", tmp_path)
    modules = sorted((tmp_path / "dse" / "study").glob("*.py"))
    assert {"report.py", "atomic.py", "tables.py", "plots.py", "docs.py"} <= \
        {p.name for p in modules}
    default = dse.study.runner.code_fingerprint(("dse",))
    for path in modules:
        path.write_text(path.read_text() + "\n# changed\n")
        assert dse.study.runner.code_fingerprint(("dse",)) == default, path.name

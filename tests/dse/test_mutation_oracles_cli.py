"""Oracles for dse's study runner, report and CLI arithmetic that a mutation audit found
unchecked: each test kills a wrong variant named in its docstring, against a contract the docs
state (what a cache key holds) or numbers worked out by hand."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from dse.study import runner


def _tiny_study(monkeypatch: pytest.MonkeyPatch, name: str, calls: list[Any],
                extra: dict[str, Any] | None = None) -> types.ModuleType:
    """A study of two points (value = 10 x), importable by name (the runner imports it)."""
    mod = types.ModuleType(name)
    mod.NAME, mod.TITLE = name, "tiny"
    mod.PARAMS = {"xs": (1, 2)}

    def grid(params: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"x": x, **(extra or {})} for x in params["xs"]]

    def evaluate(point: dict[str, Any], ctx: runner.Context) -> dict[str, Any]:
        calls.append(point["x"])
        return {"value": 10 * point["x"]}

    mod.grid, mod.evaluate, mod.summarize = grid, evaluate, lambda df, params: None
    monkeypatch.setitem(sys.modules, name, mod)
    return mod


def test_a_code_change_recomputes_every_point(tmp_path, monkeypatch) -> None:
    """Kills a cache key without the code fingerprint: points cached under one version of the
    model code are reused while it is unchanged and recomputed once it changes."""
    calls: list[Any] = []
    study = _tiny_study(monkeypatch, "mut_oracle_code", calls)
    first = runner.run_study(study, out=tmp_path, report=False)
    assert (first.info.computed, calls) == (2, [1, 2])
    again = runner.run_study(study, out=tmp_path, report=False)
    assert (again.info.cached, calls) == (2, [1, 2])
    monkeypatch.setattr(runner, "code_fingerprint", lambda *a, **k: "0123456789abcdef")
    changed = runner.run_study(study, out=tmp_path, report=False)
    assert (changed.info.computed, calls) == (2, [1, 2, 1, 2])
    assert changed.results["value"].tolist() == [10, 20]
    assert runner.point_key("s", {"x": 1}, "a") != runner.point_key("s", {"x": 1}, "b")


@pytest.mark.parametrize("suffix", [".toml", ".yaml", ".yml"])
def test_editing_a_design_file_recomputes_its_points(tmp_path, monkeypatch, suffix) -> None:
    """Kills a files digest that skips one design-file suffix: a point naming a TOML or YAML
    design (a study's ``preset``) is recomputed when the file changes, as for a code change."""
    design = tmp_path / f"chip{suffix}"
    design.write_text("cores = 4\n")
    calls: list[Any] = []
    study = _tiny_study(monkeypatch, "mut_oracle_files", calls, {"preset": str(design)})
    runner.run_study(study, out=tmp_path / "out", report=False)
    assert runner.run_study(study, out=tmp_path / "out", report=False).info.cached == 2
    design.write_text("cores = 8\n")
    assert runner.run_study(study, out=tmp_path / "out", report=False).info.computed == 2
    assert calls == [1, 2, 1, 2]


def test_every_simulator_module_is_in_the_default_cache_key(tmp_path, monkeypatch) -> None:
    """Kills a simulator module listed as presentation code: the runner's key hashes the model
    code (docs: "arch/, dse/ simulator, workloads/, quant/"), so an edit to any module of
    dse/sim changes the default fingerprint and recomputes every cached point."""
    import shutil
    from pathlib import Path

    root = Path(runner.__file__).resolve().parents[2]
    shutil.copytree(root / "dse" / "sim", tmp_path / "dse" / "sim",
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(runner, "_ROOT", tmp_path)
    modules = sorted((tmp_path / "dse" / "sim").glob("*.py"))
    assert {"simulate.py", "schedule.py", "dram.py"} <= {p.name for p in modules}
    for path in modules:
        before = runner.code_fingerprint(("dse",))
        path.write_text(path.read_text() + "\n# changed\n")
        assert runner.code_fingerprint(("dse",)) != before, path.name


def test_table_cells_follow_the_documented_format() -> None:
    """Kills each edge of `format_value`'s rule (docstring: 4 significant digits below 1e3,
    whole from 1e3 to 1e7, e-notation above): 1000 is whole, 1e7 is e-notation, and small
    numbers keep four significant digits."""
    from dse.study.tables import format_value

    cases = {999.95: "1000", 1000.0: "1000", 12197.4: "12197", 9_999_999.0: "9999999",
             1e7: "1.000e+07", 3.14159: "3.142", 0.000123456: "0.0001235", -2.5: "-2.5",
             float("inf"): "inf", float("-inf"): "-inf", float("nan"): "", True: "True",
             "a|b": "a\\|b"}
    for value, text in cases.items():
        assert format_value(value) == text, value


def test_a_table_of_exactly_max_rows_has_no_more_rows_line() -> None:
    """Kills ``len(df) >= max_rows``: 3 rows at max_rows=3 are shown whole (header, rule,
    3 rows); a 4th row is left to the CSV and counted."""
    import pandas as pd

    from dse.study.tables import markdown_table

    three = markdown_table(pd.DataFrame({"x": [1, 2, 3]}), max_rows=3)
    assert three.splitlines() == ["| x |", "|---|", "| 1 |", "| 2 |", "| 3 |"]
    four = markdown_table(pd.DataFrame({"x": [1, 2, 3, 4]}), max_rows=3)
    assert four.splitlines()[2:] == ["| 1 |", "| 2 |", "| 3 |", "", "(1 more rows in the CSV)"]


def test_a_cycles_column_with_a_missing_value_keeps_it_missing() -> None:
    """Kills whole-cycle rounding of a column holding NaN (cast to int64, NaN becomes a huge
    negative count): only an all-finite ``*_cycles`` column is made integer."""
    import math

    import pandas as pd

    from dse.study.tidy import tidy

    out = tidy(pd.DataFrame({"stall_cycles": [1.4, math.nan], "total_cycles": [2.6, 3.4]}))
    assert out["total_cycles"].tolist() == [3, 3]
    assert out["stall_cycles"].iloc[0] == 1.4
    assert math.isnan(out["stall_cycles"].iloc[1])


def test_compare_table_ratios_are_over_the_first_design() -> None:
    """Kills a constant energy ratio (and an inverted speedup): by hand, designs of 100, 250
    and 50 images/s at 2, 1 and 4 mJ per image give 1, 2.5, 0.5 and 1, 0.5, 2."""
    from dse.compare import compare_table

    df = compare_table([{"design": d, "images_per_s": ips, "energy_per_image_mj": e}
                        for d, ips, e in (("a", 100.0, 2.0), ("b", 250.0, 1.0),
                                          ("c", 50.0, 4.0))])
    assert df["speedup_vs_first"].tolist() == pytest.approx([1.0, 2.5, 0.5])
    assert df["energy_vs_first"].tolist() == pytest.approx([1.0, 0.5, 2.0])

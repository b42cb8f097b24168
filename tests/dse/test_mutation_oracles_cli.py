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


def test_metrics_are_per_image_in_the_units_their_names_say() -> None:
    """Kills a per-batch energy (total or by component), MiB for MB, memory-bound counting the
    compute-bound layers and peak MACs for peak ops: a batch of 4 using 0.02 J (0.012 J in the
    MACs) and 8e6 DRAM bytes is 5 mJ (3 mJ MACs) and 2 MB per image; 2 of 3 layers are
    memory-bound; 4 cores of 8x64 MACs at 1 GHz peak at 2 x 2048 x 1e9 ops/s = 4.096 TOPS."""
    from types import SimpleNamespace

    import pandas as pd

    from arch import Accelerator
    from dse.simulate import metrics

    res = SimpleNamespace(layers=pd.DataFrame({"bound": ["memory", "compute", "memory"]}),
                          energy_by_component={"mac": 0.012, "sram": 0.006, "dram": 0.002},
                          images_per_s=200.0, latency_s=0.02, utilization=0.5, energy_j=0.02,
                          batch=4, dram_bytes=8e6)
    acc = Accelerator(cores=4, rows=8, cols=64, freq_ghz=1.0, mac_bits=(8, 8), name="chip")
    m = metrics(res, acc)
    assert m["energy_per_image_mj"] == pytest.approx(5.0)
    assert m["energy_mac_mj"] == pytest.approx(3.0)
    assert m["energy_dram_mj"] == pytest.approx(0.5)
    assert m["dram_mb_per_image"] == pytest.approx(2.0)
    assert (m["memory_bound_layers"], m["compute_bound_layers"], m["layers"]) == (2, 1, 3)
    assert m["peak_tops"] == pytest.approx(2 * 4 * 8 * 64 * 1e9 / 1e12)
    assert m["latency_ms"] == pytest.approx(20.0)
    assert (m["array"], m["mac_bits"]) == ("8x64", "W8A8")


@pytest.mark.parametrize(("w", "a", "mac"), [(4, 8, (4, 8)), (None, 8, (8, 8)), (4, None, (4, 4)),
                                             (2, 2, (2, 2))])
def test_model_bits_set_the_preset_mac_precision(w, a, mac) -> None:
    """Kills the activation bits dropped from the preset's MAC precision: without --mac-bits,
    --w-bits 4 --a-bits 8 asks for 4x8 MACs; one of the two alone stands for both."""
    from argparse import Namespace

    from dse.simulate import design_options

    args = Namespace(mac_bits=None, w_bits=w, a_bits=a, recipe=None, dram_gbps=None)
    assert design_options(args) == {"mac_bits": mac, "dram_gbps": None}


# -- studies.pipeline: the row every simulating study flattens ------------------------------------
def test_array_utilization_counts_the_slots_a_wide_mac_holds() -> None:
    """Kills occupancy counted as useful MACs: 1e6 MACs at 1 slot and 1e6 at 4 slots (16-bit
    layers on a lower-precision array) fill 5e6 MAC-slot cycles of 1000 MACs x 1 GHz x 10 us =
    1e7: 50 % occupied (the useful-MAC utilization would say 20 %)."""
    from types import SimpleNamespace

    import pandas as pd

    from studies.pipeline import array_utilization

    res = SimpleNamespace(latency_s=1e-5, layers=pd.DataFrame(
        {"macs": [1e6, 1e6], "precision_factor": [1.0, 4.0]}))
    acc = SimpleNamespace(mac_count=1000, freq_hz=1e9)
    assert array_utilization(res, acc) == pytest.approx(0.5)


def test_macs_by_bits_shares_keep_five_digits() -> None:
    """Kills shares rounded to two digits: 1 of 3 MACs at 8x8 is 0.33333 of them (a study's
    note prints the first/last share to 0.1 %)."""
    import json
    from types import SimpleNamespace

    from studies.pipeline import layer_bits_summary

    layers = [SimpleNamespace(w_bits=8, a_bits=8, macs=100),
              SimpleNamespace(w_bits=2, a_bits=2, macs=150),
              SimpleNamespace(w_bits=2, a_bits=2, macs=50)]
    wl = SimpleNamespace(name="w", weight_bytes=7, compute_layers=lambda: layers)
    row = layer_bits_summary(wl)
    assert json.loads(row["macs_by_bits"]) == {"2x2": 0.66667, "8x8": 0.33333}
    assert (row["workload_macs"], row["workload_weight_bytes"]) == (300, 7)


# -- dse.inputs and the sweep CLI's parsing --------------------------------------------------------
def test_a_design_file_takes_the_bandwidth_flag_and_its_stem_as_name(tmp_path) -> None:
    """Kills --dram-gbps ignored for a design file, and an unnamed design left nameless: the
    file's design at 7 GB/s, named after the file."""
    import dataclasses

    from arch import Accelerator, io
    from dse.inputs import load_design

    path = io.save(dataclasses.replace(Accelerator(cores=2, rows=8, cols=8), name=""),
                   tmp_path / "my_chip.toml")
    acc = load_design(str(path), dram_gbps=7.0)
    assert (acc.dram_gbps, acc.cores, acc.name) == (7.0, 2, "my_chip")
    assert load_design(str(path)).dram_gbps == io.load(path).dram_gbps


def test_bandwidth_flag_takes_positive_numbers_and_inf_only() -> None:
    """Kills 0 GB/s accepted: a bandwidth must be > 0 (or inf, unlimited)."""
    from dse.inputs import finite_or_inf

    assert finite_or_inf("16", "--dram-gbps") == 16.0
    assert finite_or_inf("inf", "--dram-gbps") == float("inf")
    for bad in ("0", "-1", "nan", "fast"):
        with pytest.raises(ValueError, match=r"--dram-gbps=.* is not allowed; expected GB/s > 0"):
            finite_or_inf(bad, "--dram-gbps")


def test_sweep_flags_take_their_limits_and_one_bit_width_for_both() -> None:
    """Kills the sweep CLI refusing its own limits (arch.area refuses only budgets ABOVE
    MAX_AREA_MM2 and core counts above MAX_COUNT) and ``--mac-bits 4`` read as 4x1."""
    from arch.area import MAX_AREA_MM2, MAX_COUNT
    from dse.study.sweep import _areas, _cores, _mac_bits

    assert _areas(f"{MAX_AREA_MM2:g},2x") == (MAX_AREA_MM2, "2x")
    with pytest.raises(ValueError, match="exceeds"):
        _areas(f"{2 * MAX_AREA_MM2:g}")
    assert _cores(f"1,{MAX_COUNT}") == (1, MAX_COUNT)
    with pytest.raises(ValueError, match="--cores"):
        _cores(f"{MAX_COUNT + 1}")
    assert _mac_bits("4") == (4, 4)
    assert _mac_bits("2x8") == (2, 8)

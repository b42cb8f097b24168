"""Issue 10 item 5: the fixed-total-SRAM formulation, enumeration of small spaces (grid sampler)
and edge-of-space warnings, on the tiny residual workload with the real simulator."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pandas as pd
import pytest
from searchkit import tiny_resnet

from arch.area import core_area_mm2, sram_area_mm2
from arch.presets import sysml19, sysml19_area_budget
from dse.search import Problem, main, run
from dse.search.coverage import design_count, edge_notes, grid, resolve_sampler
from dse.search.space import SearchSpace

BUDGET = sysml19_area_budget()  # 14.08 mm^2: 8 16-bit cores with 16 MiB SRAM
MACS = ((1, 1), (1, 2), (2, 2), (2, 4), (4, 4), (8, 8), (16, 16))
SPACE16 = SearchSpace(mac_bits=((2, 2), (2, 4), (4, 4), (8, 8)),
                      sram_kib=(256.0, 512.0, 1024.0, 2048.0))  # 4 x 4 = 16 designs


def _fixed(total_kib: float = 16384.0, **kw) -> SearchSpace:
    return SearchSpace(mac_bits=MACS, formulation="fixed_total_sram", total_sram_kib=total_kib,
                       **kw)


def _closed_form_cores(mac: tuple[int, int], total_kib: float, budget: float = BUDGET) -> int:
    """arch.area's closed form: the SRAM's area is spent once, the rest buys SRAM-less cores."""
    return math.floor((budget - sram_area_mm2(total_kib)) / core_area_mm2(8, 64, mac)
                      * (1 + 1e-9))


def _suggest(space: SearchSpace, params: dict, budget: float = BUDGET):
    return space.suggest(optuna.trial.FixedTrial(params), tiny_resnet(), area_budget=budget,
                         dram_gbps=32.0)


# -- the fixed-total-SRAM formulation ------------------------------------------------------------
@pytest.mark.parametrize("total_kib", [16384.0, 4096.0])
@pytest.mark.parametrize("mac", MACS)
def test_fixed_total_sram_cores_match_the_closed_form(mac, total_kib):
    d = _suggest(_fixed(total_kib), {"mac_bits": f"{mac[0]}x{mac[1]}", "array": "8x64"})
    acc = d.accelerator
    assert acc.cores == _closed_form_cores(mac, total_kib)
    assert acc.cores * acc.sram_kib == pytest.approx(total_kib)  # the total, whatever the cores
    assert acc.area <= BUDGET
    # one more core would not fit
    more = sram_area_mm2(total_kib) + (acc.cores + 1) * core_area_mm2(8, 64, mac)
    assert more > BUDGET


@pytest.mark.parametrize("mac", MACS)
def test_fixed_total_sram_is_the_wrpn_vs_pact_studys_rule(mac):
    """The same cores as the study's own iso-area systems (sysml19, 16 MiB total, area model)."""
    d = _suggest(_fixed(), {"mac_bits": f"{mac[0]}x{mac[1]}", "array": "8x64"})
    assert d.accelerator.cores == sysml19(mac, peak_scaling="density").cores


def test_per_core_sram_is_a_different_rule():
    """The wrong variant (each core carries the same per-core SRAM as the fixed-total design at
    16 bits: 2 MiB) gives other core counts: the closed-form test above tells them apart."""
    per_core = SearchSpace(mac_bits=MACS, sram_kib=(2048.0,))
    differ = []
    for mac in MACS:
        params = {"mac_bits": f"{mac[0]}x{mac[1]}", "array": "8x64"}
        fixed_n = _suggest(_fixed(), params).accelerator.cores
        per_core_n = _suggest(per_core, {**params, "sram_kib": 2048.0}).accelerator.cores
        differ.append(per_core_n != fixed_n)
        assert per_core_n != _closed_form_cores(mac, 16384.0) or mac == (16, 16)
    assert sum(differ) == len(MACS) - 1  # only the 16-bit reference system is the same (8)


def test_fixed_total_sram_samples_no_sram_and_counts_designs():
    wl = tiny_resnet()
    assert "sram_kib" not in grid(_fixed(), wl)
    assert design_count(_fixed(), wl) == len(MACS)
    assert design_count(SPACE16, wl) == 16
    sampled = SearchSpace(cores=(2, 5), layer_bits="search", layer_w_bits=(2, 4),
                          layer_a_bits=(2, 4, 8), sram_kib=(256.0,))
    layers = sampled.searched_layers(wl)
    assert design_count(sampled, wl) == 5 * 1 * 1 * 4 * (2 * 3) ** len(layers)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"formulation": "fixed"}, "formulation"),
    ({"total_sram_kib": 4096.0}, "total_sram_kib"),  # per_core_sram has no total
    ({"formulation": "fixed_total_sram", "total_sram_kib": -1.0}, "total_sram_kib"),
    ({"formulation": "fixed_total_sram", "total_sram_kib": math.inf}, "total_sram_kib"),
])
def test_bad_formulation_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"{field}=") as e:
        SearchSpace(**kwargs)
    assert "expected" in str(e.value)


def test_a_total_sram_over_the_budget_is_refused_up_front():
    from dse.search import problem_errors

    big = _fixed(total_kib=1 << 20)  # 1 GiB of SRAM alone is far over 14 mm^2
    errors = problem_errors(big, ("images_per_s",), BUDGET)
    assert len(errors) == 1
    assert "SRAM in total" in errors[0]
    assert "lower total_sram_kib" in errors[0]
    assert "area_budget=" in errors[0]


# -- enumeration of small spaces ------------------------------------------------------------------
def test_a_16_design_space_with_budget_40_runs_each_design_once(tmp_path):
    wl = tiny_resnet()
    study = run(SPACE16, ["images_per_s"], workload=wl, n_trials=40, out=tmp_path)
    keys = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(keys) == 16
    assert len(set(keys)) == 16
    assert study.user_attrs["qdse.sampler"] == "grid"
    summary = (tmp_path / "summary.txt").read_text()
    assert "enumerated all 16 designs" in summary
    best = json.loads((tmp_path / "best.json").read_text())
    assert (best["sampler"], best["space_designs"], best["designs_evaluated"]) == ("grid", 16, 16)
    # the best of an enumeration is the best design of the space
    df = pd.read_csv(tmp_path / "trials.csv")
    assert best["values"][0] == pytest.approx(df["images_per_s"].max())


def test_two_jobs_enumerate_without_repeats(tmp_path):
    study = run(SPACE16, ["images_per_s"], workload=tiny_resnet(), n_trials=40, out=tmp_path,
                jobs=2)
    keys = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(keys) == len(set(keys)) == 16


def test_auto_samples_a_space_larger_than_the_budget():
    wl = tiny_resnet()
    assert resolve_sampler("auto", SPACE16, wl, 1, 15) == "tpe"
    assert resolve_sampler("auto", SPACE16, wl, 2, 15) == "nsga2"
    assert resolve_sampler("auto", SPACE16, wl, 1, 16) == "grid"
    assert resolve_sampler("random", SPACE16, wl, 1, 100) == "random"
    study = run(SPACE16, ["images_per_s"], workload=wl, n_trials=5)
    assert study.user_attrs["qdse.sampler"] == "tpe"


def test_resume_continues_an_enumeration_and_refuses_another_sampler(tmp_path):
    wl = tiny_resnet()
    run(SPACE16, ["images_per_s"], workload=wl, n_trials=5, out=tmp_path, sampler="grid")
    part = (tmp_path / "summary.txt").read_text()
    assert "enumerated 5 of the 16 designs" in part
    with pytest.raises(ValueError, match="sampler='tpe' differs from the stored study's 'grid'"):
        run(SPACE16, ["images_per_s"], workload=wl, n_trials=5, out=tmp_path, resume=True,
            sampler="tpe")
    study = run(SPACE16, ["images_per_s"], workload=wl, n_trials=40, out=tmp_path,
                resume=True)  # "auto" keeps the stored grid and runs the 11 designs left
    keys = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(keys) == len(set(keys)) == 16
    again = run(SPACE16, ["images_per_s"], workload=wl, n_trials=40, out=tmp_path, resume=True)
    assert len(again.trials) == 16  # nothing left to enumerate
    assert "enumerated all 16 designs" in (tmp_path / "summary.txt").read_text()


def test_grid_refuses_a_space_too_large_to_enumerate():
    wl = tiny_resnet()
    huge = SearchSpace(cores=(1, 65536), sram_kib=(256.0, 512.0))
    with pytest.raises(ValueError, match="sampler='grid' is not allowed for a space of"):
        Problem(wl, huge, ("images_per_s",), BUDGET, sampler="grid")


# -- edge warnings --------------------------------------------------------------------------------
def test_edge_notes_name_parameter_value_and_bound():
    space = SearchSpace(mac_bits=((2, 2), (2, 4), (4, 4)), sram_kib=(256.0, 1024.0, 2048.0),
                        cores=(4, 64))
    inner = {"mac_bits": "2x4", "array": "8x64", "sram_kib": 1024.0, "cores": 16}
    assert edge_notes(space, inner) == []  # 2x4 lies between 2x2 and 4x4 by MAC area
    notes = edge_notes(space, {**inner, "mac_bits": "4x4", "sram_kib": 256.0, "cores": 64})
    assert notes == ["mac_bits=4x4 is the widest MAC offered (2x2 .. 4x4)",
                     "sram_kib=256 is the lowest SRAM per core offered (256 .. 2048 KiB)",
                     "cores=64 is the highest core count offered (4 .. 64)"]
    # one array shape: not searched, never an edge
    assert not any("array" in n for n in notes)
    low = edge_notes(space, {**inner, "mac_bits": "2x2"})
    assert low == ["mac_bits=2x2 is the narrowest MAC offered (2x2 .. 4x4)"]


def test_edge_notes_cover_per_layer_bits():
    space = SearchSpace(layer_bits="search", layer_w_bits=(1, 2, 4), layer_a_bits=(2, 4),
                        mac_bits=((2, 2),), sram_kib=(256.0,))
    notes = edge_notes(space, {"mac_bits": "2x2", "array": "8x64", "sram_kib": 256.0,
                               "w:c2": 2, "a:c2": 4, "w:c3": 1, "a:c3": 2})
    # w:c3=1 is the lowest choice but nothing lies below 1 bit: no edge
    assert notes == ["per-layer bits on a bound: a:c2=4 (highest of 2 .. 4), "
                     "a:c3=2 (lowest of 2 .. 4)"]


def test_a_lowest_choice_nothing_lies_below_is_no_edge():
    space = SearchSpace(mac_bits=((1, 1), (2, 2), (4, 4)), sram_kib=(256.0,), cores=(1, 8))
    assert edge_notes(space, {"mac_bits": "1x1", "array": "8x64", "cores": 1}) == []
    assert edge_notes(space, {"mac_bits": "2x2", "array": "8x64", "cores": 8}) == [
        "cores=8 is the highest core count offered (1 .. 8)"]


def test_summary_warns_only_when_the_best_design_is_on_an_edge(tmp_path):
    wl = tiny_resnet()
    # per-core SRAM: SRAM dominates a core's area, so the widest MAC and the least SRAM win
    run(SPACE16, ["images_per_s"], workload=wl, n_trials=40, out=tmp_path / "edge")
    text = (tmp_path / "edge" / "summary.txt").read_text()
    assert "warning: the best design is on the edge of its space: mac_bits=8x8 is the widest" \
        in text
    assert "sram_kib=256 is the lowest" in text
    # fixed total SRAM on the tiny net (16-bit first/last layers): 16x16 wins over 32x32
    inner = SearchSpace(mac_bits=((2, 2), (16, 16), (32, 32)), formulation="fixed_total_sram")
    run(inner, ["images_per_s"], workload=wl, n_trials=40, out=tmp_path / "inner")
    best = json.loads((tmp_path / "inner" / "best.json").read_text())
    assert best["accelerator"]["mac_bits"] == [16, 16]
    assert best["edges"] == []
    assert "warning" not in (tmp_path / "inner" / "summary.txt").read_text()


# -- every report names the formulation ----------------------------------------------------------
def test_every_report_names_the_formulation(tmp_path):
    wl = tiny_resnet()
    run(_fixed(), ["images_per_s"], workload=wl, n_trials=10, out=tmp_path)
    for name in ("trials.csv", "pareto.csv"):
        df = pd.read_csv(tmp_path / name)
        assert set(df["formulation"]) == {"fixed_total_sram"}, name
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["formulation"] == "fixed_total_sram"
    assert best["total_sram_kib"] == 16384.0
    assert (tmp_path / "summary.txt").read_text().startswith(
        "formulation fixed_total_sram: 16384 KiB of SRAM in total")


def _seed_cache(out: Path) -> None:
    from searchkit import tiny_proxy

    out.mkdir(parents=True, exist_ok=True)
    wl = tiny_resnet()
    wl.save(out / "workload.json")
    (out / "accuracy.json").write_text(json.dumps(tiny_proxy(wl).to_dict()))
    (out / "source.json").write_text(json.dumps({
        "model": "tiny_resnet", "recipe": "pact_sawb", "w_bits": 2, "a_bits": 2, "batch": 1,
        "sensitivity": "noise_gain", "seed": 0}))


def test_cli_formulation_and_enumeration(tmp_path, capsys):
    out = tmp_path / "cli"
    _seed_cache(out)
    assert main(["--model", "tiny_resnet", "--recipe", "pact_sawb", "--out", str(out),
                 "--trials", "40", "--layer-bits", "recipe", "--objectives", "images_per_s",
                 "--formulation", "fixed_total_sram", "--total-sram-kib", "8192",
                 "--mac-bits", "2x2,4x4,8x8", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("3 trials in")
    assert "formulation fixed_total_sram: 8192 KiB of SRAM in total" in text
    assert "enumerated all 3 designs" in text
    df = pd.read_csv(out / "trials.csv")
    assert len(df) == 3
    assert (df["cores"] * df["sram_kib"]).round(6).eq(8192.0).all()


@pytest.mark.parametrize(("args", "flag"), [
    (["--formulation", "fixed_total_sram", "--sram-kib", "512"], "--sram-kib="),
    (["--total-sram-kib", "8192"], "--total-sram-kib="),
    (["--formulation", "fixed_total_sram", "--total-sram-kib", "-1"], "--total-sram-kib="),
    (["--formulation", "whole_chip"], "--formulation"),
])
def test_cli_bad_formulation_flags_exit_2(tmp_path, capsys, args, flag):
    out = tmp_path / "bad"
    _seed_cache(out)
    code = main(["--model", "tiny_resnet", "--recipe", "pact_sawb", "--out", str(out),
                 "--trials", "1", *args])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error:")
    assert flag in err[0]


# -- base designs ---------------------------------------------------------------------------------
def test_a_preset_base_is_hashable_and_a_grouped_one_is_refused():
    import dataclasses

    from arch.groups import CoreGroup
    from dse.search.space import base_fields

    base = base_fields(sysml19(2))
    hash(base)  # templates are cached on it
    space = dataclasses.replace(_fixed(), base=base)
    d = _suggest(space, {"mac_bits": "2x2", "array": "8x64"})
    assert d.accelerator.cores == sysml19((2, 2), peak_scaling="density").cores
    grouped = dataclasses.replace(sysml19(2), cores=8,
                                  core_groups=(CoreGroup(6), CoreGroup(2, mac_bits=16)))
    with pytest.raises(ValueError, match="core_groups="):
        base_fields(grouped)

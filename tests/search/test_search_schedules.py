"""Issue 10 item 4 (part): the multi-core schedule and the number of core groups as search
parameters, on the tiny residual workload with the real simulator."""

from __future__ import annotations

import dataclasses
import json

import optuna
import pandas as pd
import pytest
from searchkit import tiny_resnet

from arch.presets import sysml19_area_budget
from dse.search import Problem, main, run
from dse.search.coverage import design_count, edge_notes, grid
from dse.search.space import SearchSpace, apply_layer_bits, decode_pair
from dse.sim import simulate

BUDGET = sysml19_area_budget()
SCHEDULES = ("layer_by_layer", "pipeline", "data_parallel")
SPACE = SearchSpace(mac_bits=((2, 2),), sram_kib=(512.0,), schedules=SCHEDULES, groups=(1, 2, 4))


def test_schedule_and_groups_are_parameters_only_with_choices():
    wl = tiny_resnet()
    assert grid(SPACE, wl)["schedule"] == list(SCHEDULES)
    assert grid(SPACE, wl)["groups"] == [1, 2, 4]
    assert design_count(SPACE, wl) == 9
    plain = SearchSpace(mac_bits=((2, 2),), sram_kib=(512.0,))
    assert "schedule" not in grid(plain, wl)
    assert "groups" not in grid(plain, wl)
    assert design_count(plain, wl) == 1


def test_layer_by_layer_on_one_group_is_todays_model():
    wl = tiny_resnet()
    d = SPACE.suggest(optuna.trial.FixedTrial({"mac_bits": "2x2", "array": "8x64",
                                               "sram_kib": 512.0, "schedule": "layer_by_layer",
                                               "groups": 1}), wl, area_budget=BUDGET,
                      dram_gbps=32.0)
    assert (d.schedule, d.groups) == ("layer_by_layer", None)
    ours = simulate(wl, d.accelerator, batch=4, **d.simulate_kwargs())
    today = simulate(wl, d.accelerator, batch=4)
    assert ours.images_per_s == today.images_per_s
    assert ours.latency_s == today.latency_s


def test_every_schedule_is_enumerated_and_simulated_as_recorded(tmp_path):
    wl = tiny_resnet()
    study = run(SPACE, ["images_per_s"], workload=wl, n_trials=20, out=tmp_path, batch=4)
    df = pd.read_csv(tmp_path / "trials.csv")
    assert len(df) == 9
    assert set(zip(df["schedule"], df["groups"], strict=True)) == {
        (s, g) for s in SCHEDULES for g in (1, 2, 4)}
    done = df[df["state"] == "COMPLETE"]
    assert len(done) == 9
    for _, row in done.iterrows():  # each recorded rate is the simulator's for that schedule
        acc = dataclasses.replace(
            SearchSpace.template(decode_pair(row["mac_bits"]), 8, 64, 512.0, 32.0),
            cores=int(row["cores"]))
        one_pool = row["schedule"] == "layer_by_layer" and row["groups"] == 1
        res = simulate(apply_layer_bits(wl, {}), acc, batch=4, schedule=row["schedule"],
                       groups=None if one_pool else int(row["groups"]))
        assert res.images_per_s == pytest.approx(row["images_per_s"])
    # the schedules do change the answer (else the parameter would be pointless here)
    assert done["images_per_s"].nunique() > 3
    best = json.loads((tmp_path / "best.json").read_text())
    top = done.loc[done["images_per_s"].idxmax()]
    assert (best["schedule"], best["groups"]) == (top["schedule"], int(top["groups"]))
    assert study.user_attrs["qdse.sampler"] == "grid"


def test_micro_batches_are_searched_and_cut_weight_traffic(tmp_path):
    wl = tiny_resnet()
    space = SearchSpace(mac_bits=((2, 2),), sram_kib=(512.0,), schedules=("pipeline",),
                        groups=(2,), micro_batches=(1, 4))
    run(space, ["images_per_s"], workload=wl, n_trials=5, out=tmp_path, batch=4)
    df = pd.read_csv(tmp_path / "trials.csv").set_index("micro_batch")
    assert sorted(df.index) == [1, 4]
    acc = dataclasses.replace(SearchSpace.template((2, 2), 8, 64, 512.0, 32.0),
                              cores=int(df.loc[1, "cores"]))
    for m in (1, 4):
        res = simulate(wl, acc, batch=4, schedule="pipeline", groups=2, micro_batch=m)
        assert res.images_per_s == pytest.approx(df.loc[m, "images_per_s"])
        assert res.dram_bytes == df.loc[m, "dram_bytes"]
    # four images as one tensor fetch the weights once, not four times
    assert df.loc[4, "dram_bytes"] < df.loc[1, "dram_bytes"]
    # on one pool the whole batch is one tensor already: the micro-batch is moot
    one_pool = dataclasses.replace(space, schedules=("layer_by_layer",), groups=(1,))
    d = one_pool.suggest(optuna.trial.FixedTrial({"mac_bits": "2x2", "array": "8x64",
                                                  "sram_kib": 512.0, "micro_batch": 4}), wl,
                         area_budget=BUDGET, dram_gbps=32.0)
    assert (d.groups, d.micro_batch) == (None, 1)


def test_a_micro_batch_that_does_not_divide_the_batch_fails_its_trial():
    space = SearchSpace(mac_bits=((2, 2),), sram_kib=(512.0,), schedules=("pipeline",),
                        groups=(2,), micro_batches=(3,))
    study = run(space, ["images_per_s"], workload=tiny_resnet(), n_trials=1, batch=4)
    assert study.trials[0].state.name == "FAIL"
    assert "micro_batch=3" in study.trials[0].user_attrs["reason"]


def test_groups_on_an_edge_are_warned_and_schedules_never():
    notes = edge_notes(SPACE, {"mac_bits": "2x2", "array": "8x64", "sram_kib": 512.0,
                               "schedule": "pipeline", "groups": 4})
    assert notes == ["groups=4 is the highest number of core groups offered (1 .. 4)"]
    assert edge_notes(SPACE, {"schedule": "data_parallel", "groups": 2}) == []
    assert edge_notes(SPACE, {"schedule": "layer_by_layer", "groups": 1}) == []  # the floor


def test_more_groups_than_cores_fails_the_trial_with_its_reason():
    wl = tiny_resnet()
    space = SearchSpace(mac_bits=((2, 2),), sram_kib=(512.0,), cores=(2, 2),
                        schedules=("data_parallel",), groups=(4,))
    study = run(space, ["images_per_s"], workload=wl, n_trials=1)
    t = study.trials[0]
    assert t.state.name == "FAIL"
    assert "groups=4" in t.user_attrs["reason"]


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"schedules": ("pipelined",)}, "schedules"),
    ({"schedules": ()}, "schedules"),
    ({"groups": (0,)}, "groups"),
    ({"groups": (2, 2)}, "groups"),
    ({"micro_batches": (0,)}, "micro_batches"),
])
def test_bad_schedule_choices_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"{field}="):
        SearchSpace(**kwargs)


def test_simulate_options_may_not_set_what_the_space_searches():
    with pytest.raises(ValueError, match=r"simulate_options=.*schedule"):
        Problem(tiny_resnet(), SPACE, ("images_per_s",), BUDGET,
                simulate_options={"schedule": "pipeline"})


def test_cli_schedules_flag(tmp_path, capsys):
    from test_search_formulation import _seed_cache

    out = tmp_path / "cli"
    _seed_cache(out)
    assert main(["--model", "tiny_resnet", "--recipe", "pact_sawb", "--out", str(out),
                 "--trials", "10", "--layer-bits", "recipe", "--objectives", "images_per_s",
                 "--mac-bits", "2x2", "--sram-kib", "512", "--schedules",
                 "layer_by_layer,pipeline", "--groups", "1,2", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "enumerated all 4 designs" in text
    assert "core group(s)" in text
    bad = main(["--model", "tiny_resnet", "--recipe", "pact_sawb", "--out", str(tmp_path / "b"),
                "--trials", "1", "--schedules", "stream"])
    assert bad == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: --schedules=")

"""Issue 10 item 4 (rest): a high-precision edge core group for the first and last layers, and the
pipeline's stage split, as search parameters (tiny residual workload, real simulator)."""

from __future__ import annotations

import dataclasses
import itertools
import json

import optuna
import pandas as pd
import pytest
from searchkit import tiny_resnet

from arch.groups import CoreGroup
from arch.presets import sysml19_area_budget
from dse.search import main, run
from dse.search.coverage import design_count, edge_notes, grid
from dse.search.space import SearchSpace, apply_layer_bits
from dse.search.stages import edge_stages, mac_stages
from dse.sim import simulate

BUDGET = sysml19_area_budget()
EDGE = SearchSpace(mac_bits=((2, 2),), sram_kib=(512.0,), edge_cores=(0, 2, 4),
                   edge_mac_bits=((16, 16), (8, 8)))
P = {"mac_bits": "2x2", "array": "8x64", "sram_kib": 512.0}


def _suggest(space: SearchSpace, params: dict, batch: int = 4):
    return space.suggest(optuna.trial.FixedTrial({**P, **params}), tiny_resnet(),
                         area_budget=BUDGET, dram_gbps=32.0, batch=batch)


@pytest.mark.parametrize("formulation", ["per_core_sram", "fixed_total_sram"])
@pytest.mark.parametrize(("k", "bits"), [(2, (16, 16)), (4, (8, 8)), (1, (16, 16))])
def test_edge_design_fills_the_budget(formulation, k, bits):
    fixed = formulation == "fixed_total_sram"
    space = dataclasses.replace(EDGE, formulation=formulation, edge_cores=(0, 1, 2, 4))
    params = {"edge_cores": k, "edge_mac_bits": f"{bits[0]}x{bits[1]}"}
    d = _suggest(space, params)
    acc = d.accelerator
    edge, body = acc.core_groups
    assert (edge.cores, edge.mac_bits, edge.name) == (k, bits, "edge")
    assert body.mac_bits is None
    assert acc.mac_bits == (2, 2)
    assert acc.cores == k + body.cores
    assert acc.area <= BUDGET
    # one more body core would not fit: the body got everything the edge group left
    more = dataclasses.replace(acc, cores=acc.cores + 1, core_groups=(
        edge, CoreGroup(body.cores + 1, name="body")),
        sram_kib=16384.0 / (acc.cores + 1) if fixed else acc.sram_kib)
    assert more.area > BUDGET
    if fixed:  # every core, edge or body, holds total / cores
        assert acc.sram_kib * acc.cores == pytest.approx(16384.0)
    # the edge group costs body cores (wider MACs per core, so more than k of them)
    plain = _suggest(space, {**params, "edge_cores": 0}).accelerator
    assert body.cores < plain.cores - k + 1


def test_first_and_last_layers_run_on_the_edge_group():
    wl = tiny_resnet()
    d = _suggest(EDGE, {"edge_cores": 2, "edge_mac_bits": "16x16"})
    assert d.stages == {"c1": 0, "c2": 1, "c3": 1, "sc": 1, "add": 1, "pool": 1, "fc": 0}
    assert (d.schedule, d.groups, d.micro_batch, d.reason) == ("layer_by_layer", None, 4, "")
    res = simulate(apply_layer_bits(wl, d.layer_bits), d.accelerator, batch=4,
                   **d.simulate_kwargs())
    rows = res.layers.set_index("name")
    for name in ("c1", "fc"):  # 16-bit layers at full speed on the 16-bit edge
        assert rows.loc[name, "core_group"] == 0
        assert rows.loc[name, "precision_factor"] == 1.0
    for name in ("c2", "c3", "sc"):
        assert rows.loc[name, "core_group"] == 1
    # without the edge group the same 16-bit layers run slowly on the 2-bit arrays
    plain = _suggest(EDGE, {"edge_cores": 0, "edge_mac_bits": "16x16"})
    slow = simulate(apply_layer_bits(wl, plain.layer_bits), plain.accelerator, batch=4,
                    **plain.simulate_kwargs()).layers.set_index("name")
    assert slow.loc["c1", "precision_factor"] > 1.0
    assert slow.loc["fc", "precision_factor"] > 1.0


def test_no_edge_group_is_todays_design():
    plain = SearchSpace(mac_bits=((2, 2),), sram_kib=(512.0,))
    today = _suggest(plain, {})
    ours = _suggest(EDGE, {"edge_cores": 0, "edge_mac_bits": "8x8"})
    assert ours.accelerator == today.accelerator
    assert not ours.accelerator.core_groups
    assert ours.simulate_kwargs() == today.simulate_kwargs()
    assert (ours.edge_cores, ours.edge_mac_bits, ours.stages) == (0, None, None)


def test_roles_missing_fall_back_to_topological_ends():
    wl = tiny_resnet()
    g = wl.graph.copy()
    for n in g.nodes:
        g.nodes[n]["layer"] = dataclasses.replace(g.nodes[n]["layer"], role="")
    from workloads.graph import Workload

    bare = Workload(g, name="bare", batch=1, input_shape=wl.input_shape)
    assert edge_stages(bare) == edge_stages(wl)


def test_mac_split_is_the_exact_linear_partition():
    wl = tiny_resnet()
    compute = [la for la in wl.compute_layers()]
    rows = mac_stages(wl, 2)
    # oracle: every contiguous cut of the compute layers in topological order (brute force)
    order = [n for n in rows if n in {la.name for la in compute}]
    macs = {la.name: la.macs for la in compute}
    best = min(max(sum(macs[n] for n in order[:i]), sum(macs[n] for n in order[i:]))
               for i in range(1, len(order)))
    got = [sum(macs[n] for n in order if rows[n] == g) for g in (0, 1)]
    assert max(got) == best
    assert all(rows[a] <= rows[b] for a, b in itertools.pairwise(order))  # contiguous, forward
    for n, g in rows.items():  # a memory-only layer never precedes its producers' stage
        for p in wl.graph.predecessors(n):
            if p in rows:
                assert rows[p] <= g


def test_stage_split_changes_the_stages_simulated():
    wl = tiny_resnet()
    space = SearchSpace(mac_bits=((2, 2),), sram_kib=(512.0,), schedules=("pipeline",),
                        groups=(2,), stage_splits=("balanced", "macs"))
    assert grid(space, wl)["stage_split"] == ["balanced", "macs"]
    assert design_count(space, wl) == 2
    bal = _suggest(space, {"stage_split": "balanced"})
    mac = _suggest(space, {"stage_split": "macs"})
    assert bal.stages is None
    assert mac.stages == mac_stages(wl, 2)
    assert mac.simulate_kwargs()["stages"] == mac_stages(wl, 2)
    r_bal = simulate(wl, bal.accelerator, batch=4, **bal.simulate_kwargs())
    r_mac = simulate(wl, mac.accelerator, batch=4, **mac.simulate_kwargs())
    assert list(r_bal.stages["last_layer"]) != list(r_mac.stages["last_layer"])
    # one group or data-parallel: nothing to split, recorded as the default
    one = _suggest(dataclasses.replace(space, groups=(1,)), {"stage_split": "macs"})
    assert (one.stage_split, one.stages) == ("balanced", None)


def test_search_records_edge_parameters_and_prunes_edge_pipelines(tmp_path):
    wl = tiny_resnet()
    space = dataclasses.replace(EDGE, schedules=("layer_by_layer", "pipeline"), groups=(1, 2))
    study = run(space, ["images_per_s"], workload=wl, n_trials=100, out=tmp_path, batch=4)
    assert study.user_attrs["qdse.sampler"] == "grid"
    df = pd.read_csv(tmp_path / "trials.csv")
    assert len(df) == 24
    edge = df[df["edge_cores"] > 0]
    runnable = (edge["schedule"] == "layer_by_layer") & (edge["groups"] == 1)
    assert (edge[runnable]["state"] == "COMPLETE").all()
    assert (edge[~runnable]["state"] == "PRUNED").all()
    assert edge[~runnable]["reason"].str.contains("needs schedule=layer_by_layer").all()
    assert set(edge["edge_mac_bits"]) == {"16x16", "8x8"}
    assert df[df["edge_cores"] == 0]["edge_mac_bits"].isna().all()
    best = json.loads((tmp_path / "best.json").read_text())
    top = df[df["state"] == "COMPLETE"].sort_values("images_per_s").iloc[-1]
    assert best["edge_cores"] == int(top["edge_cores"])
    if best["edge_cores"]:
        assert best["edge_mac_bits"] == [int(x) for x in top["edge_mac_bits"].split("x")]


def test_edge_notes_cover_the_edge_parameters():
    notes = edge_notes(EDGE, {"edge_cores": 4, "edge_mac_bits": "16x16"})
    assert any("edge_cores=4 is the highest" in n for n in notes)
    assert any("edge_mac_bits=16x16 is the widest" in n for n in notes)
    assert edge_notes(EDGE, {"edge_cores": 0, "edge_mac_bits": "8x8"}) == []  # no group: moot
    assert edge_notes(EDGE, {"edge_cores": 2, "edge_mac_bits": "8x8"})[0].startswith(
        "edge_mac_bits=8x8 is the narrowest")


@pytest.mark.parametrize(("flag", "value"), [("--edge-cores", "-1"), ("--edge-cores", "two"),
                                         ("--edge-cores", "2,2"), ("--edge-mac-bits", "16"),
                                         ("--edge-mac-bits", "64x64"),
                                         ("--stage-splits", "even")])
def test_cli_bad_edge_values_are_one_error_line(tmp_path, capsys, flag, value):
    out = tmp_path / "b"
    assert main(["--model", "tiny_resnet", "--recipe", "pact_sawb", "--out", str(out),
                 "--trials", "1", flag, value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"error: {flag}=")
    assert not out.exists()


def test_space_rejects_bad_edge_fields():
    with pytest.raises(ValueError, match=r"edge_cores=.*not allowed"):
        SearchSpace(edge_cores=())
    with pytest.raises(ValueError, match=r"edge_mac_bits=.*not allowed"):
        SearchSpace(edge_mac_bits=((0, 16),))
    with pytest.raises(ValueError, match=r"stage_splits=.*not allowed"):
        SearchSpace(stage_splits=("balanced", "balanced"))
    assert SearchSpace.from_dict(EDGE.to_dict()) == EDGE


@pytest.mark.parametrize("formulation", ["per_core_sram", "fixed_total_sram"])
def test_up_front_area_check_counts_the_edge_group(formulation):
    """A budget that one body core fits but one body core beside the (only) 4-core 16-bit edge
    group does not: every trial would be pruned, so `problem_errors` must refuse it up front.
    Oracle: the area of the design built with its core groups (`Accelerator.area`, the
    simulator's own model), not a formula of the test's."""
    from dse.search import problem_errors

    space = dataclasses.replace(EDGE, formulation=formulation, edge_cores=(4,),
                                edge_mac_bits=((16, 16), (8, 8)))
    one = SearchSpace.template((2, 2), 8, 64, space.total_sram or 512.0, 32.0)
    body_only = one.area  # one core; under fixed_total_sram it holds the whole total
    # the cheapest edge group of the space: 4 cores of 8x8 MACs (cheaper than 16x16)
    with_edge = dataclasses.replace(
        one, cores=5, sram_kib=one.sram_kib / 5 if space.total_sram else one.sram_kib,  # split
        core_groups=(CoreGroup(4, mac_bits=(8, 8), name="edge"), CoreGroup(1, name="body")))
    assert body_only < with_edge.area
    budget = (body_only + with_edge.area) / 2  # body fits, body + edge does not
    (err,) = problem_errors(space, ["images_per_s"], budget)
    assert err.startswith(f"area_budget={budget!r} is not allowed for this space")
    assert "4-core 8x8 edge group" in err
    assert err.endswith("edge cores, edge MAC bits)")
    assert f"{with_edge.area:.4g} mm^2" in err
    # every trial of that budget is indeed pruned: no body core fits beside the edge group
    assert space.suggest(optuna.trial.FixedTrial({**P, "edge_mac_bits": "8x8"}), tiny_resnet(),
                         area_budget=budget, dram_gbps=32.0) is None
    # just above the smallest edge design the check passes, and that design is sampled
    ok = with_edge.area * (1 + 1e-9)
    assert problem_errors(space, ["images_per_s"], ok) == []
    d = space.suggest(optuna.trial.FixedTrial({**P, "edge_mac_bits": "8x8"}), tiny_resnet(),
                      area_budget=ok, dram_gbps=32.0)
    assert d is not None
    assert d.accelerator.area == pytest.approx(with_edge.area)


def test_cli_refuses_an_edge_group_over_the_budget_before_any_trial(tmp_path, capsys):
    """64 16-bit edge cores are far over the sysml19 budget (which holds 8 such cores); a body
    core alone would fit, so only a check that counts the edge group refuses it up front."""
    out = tmp_path / "e"
    assert main(["--model", "tiny_resnet", "--recipe", "pact_sawb", "--out", str(out),
                 "--trials", "1", "--edge-cores", "64", "--edge-mac-bits", "16x16"]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.startswith("error: invalid search problem: area_budget=")
    assert "beside a 64-core 16x16 edge group" in err
    assert not out.exists()

"""dse.search.run on a tiny residual workload with the real simulator."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arch import Accelerator
from arch.presets import sysml19
from dse.search import OBJECTIVES, Problem, pareto_front, run, trials_frame
from dse.search.space import SearchSpace, decode_pair

BUDGET = sysml19(2).area  # ~14 mm^2: the sysml19 iso-area budget


def _row_area(row: pd.Series) -> float:
    """Independent recomputation of a trial's area from its parameters."""
    rows, cols = int(row["rows"]), int(row["cols"])
    return Accelerator(cores=int(row["cores"]), rows=rows, cols=cols,
                       mac_bits=decode_pair(row["mac_bits"]), sram_kib=float(row["sram_kib"]),
                       freq_ghz=sysml19(2).freq_ghz, node_nm=sysml19(2).node_nm).area


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """NSGA-II, cores sampled (so some designs overflow the budget), per-layer bits searched."""
    from searchkit import tiny_proxy, tiny_resnet

    wl = tiny_resnet()
    proxy = tiny_proxy(wl)
    out = tmp_path_factory.mktemp("nsga")
    space = SearchSpace(cores=(1, 256), layer_bits="search", first_last_bits=16,
                        shortcut_bits=16, sram_kib=(256.0, 1024.0))
    floor = proxy({la.name: (la.w_bits, la.a_bits) for la in wl.compute_layers()})
    study = run(space, ["images_per_s", "energy_j"], workload=wl, n_trials=30, sampler="nsga2",
                out=out, accuracy=proxy, min_accuracy=floor, area_budget=BUDGET, seed=3)
    return study, out, floor


def test_outputs_written(searched):
    _, out, _ = searched
    for f in ("trials.csv", "pareto.csv", "pareto.png", "best.json", "best_layers.csv",
              "best_trace.json", "study.journal"):
        assert (out / f).is_file(), f
    df = pd.read_csv(out / "trials.csv")
    for col in ("images_per_s", "energy_j", "area", "area_budget", "accuracy_proxy",
                "accuracy_model", "state", "cores", "mac_bits", "sram_kib", "w:c2", "a:c3"):
        assert col in df.columns, col
    assert len(df) == 30
    assert df["accuracy_model"].dropna().str.startswith("proxy:").all()


def test_every_complete_trial_respects_the_area_budget(searched):
    _, out, _ = searched
    df = pd.read_csv(out / "trials.csv")
    done = df[df["state"] == "COMPLETE"]
    assert len(done) > 5
    for _, row in done.iterrows():
        assert row["area"] <= row["area_budget"] == pytest.approx(BUDGET)
        assert _row_area(row) == pytest.approx(row["area"], rel=1e-9)
    # the sampler did propose designs over the budget, and they were pruned, not completed
    pruned = df[df["state"] == "PRUNED"]
    assert len(pruned) > 0
    assert (pruned["area"] > BUDGET).all()


def test_fixed_layers_never_searched(searched):
    study, out, _ = searched
    for t in study.trials:
        assert not any(k in t.params for k in ("w:c1", "a:c1", "w:fc", "a:fc", "w:sc", "a:sc"))
    best = json.loads((out / "best.json").read_text())
    assert best["layer_bits"]["c1"] == best["layer_bits"]["fc"] == [16, 16]
    assert best["layer_bits"]["sc"] == [16, 16]


def test_pareto_front_is_non_dominated_and_complete(searched):
    study, out, floor = searched
    df = pd.read_csv(out / "trials.csv")
    front = pd.read_csv(out / "pareto.csv")
    feas = df[(df["state"] == "COMPLETE") & df["feasible"].astype(bool)]
    assert (front["accuracy_proxy"] >= floor - 1e-9).all()
    assert (front["area"] <= BUDGET).all()

    def dominates(a, b):
        return (a["images_per_s"] >= b["images_per_s"] and a["energy_j"] <= b["energy_j"]
                and (a["images_per_s"] > b["images_per_s"] or a["energy_j"] < b["energy_j"]))

    fr = [r for _, r in front.iterrows()]
    for a in fr:
        assert not any(dominates(b, a) for b in fr)
    on_front = set(front["number"])
    for _, r in feas.iterrows():  # everything left off is dominated by the front
        if r["number"] not in on_front:
            assert any(dominates(a, r) for a in fr)
    # Optuna's own constrained Pareto set agrees
    assert {t.number for t in study.best_trials} == on_front


def test_best_json_is_the_fastest_feasible_and_full_simresult(searched):
    _, out, _ = searched
    best = json.loads((out / "best.json").read_text())
    front = pd.read_csv(out / "pareto.csv")
    assert best["trial"] == int(front.loc[front["images_per_s"].idxmax(), "number"])
    assert best["metrics"]["images_per_s"] == pytest.approx(front["images_per_s"].max())
    layers = pd.read_csv(out / "best_layers.csv")
    assert list(layers["name"]) == ["c1", "c2", "c3", "sc", "fc"]
    assert {"compute_cycles", "stall_cycles", "bound"} <= set(layers.columns)


def test_pareto_front_function_against_brute_force():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"number": range(200), "state": "COMPLETE", "feasible": True,
                       "images_per_s": rng.integers(0, 20, 200).astype(float),
                       "energy_j": rng.integers(0, 20, 200).astype(float),
                       "area": rng.random(200)})
    df.loc[::7, "state"] = "PRUNED"
    df.loc[::5, "feasible"] = False
    front = pareto_front(df, ["images_per_s", "energy_j", "area"])
    ok = df[(df["state"] == "COMPLETE") & df["feasible"]]
    cost = np.column_stack([-ok["images_per_s"], ok["energy_j"], ok["area"]])
    expect = [n for i, n in enumerate(ok["number"])
              if not any((cost[j] <= cost[i]).all() and (cost[j] < cost[i]).any()
                         for j in range(len(ok)))]
    assert sorted(front["number"]) == expect
    with pytest.raises(ValueError, match="objectives"):
        pareto_front(df, {"images_per_s": "up"})


def test_tpe_single_objective_with_constraint_and_resume(tmp_path, tiny_workload,
                                                         tiny_accuracy):
    space = SearchSpace(layer_bits="search", first_last_bits=16, shortcut_bits=16,
                        mac_bits=((2, 2), (4, 4), (8, 8)), sram_kib=(512.0,))
    high = tiny_accuracy({n: (4, 4) for n in tiny_accuracy.layers})
    kw = dict(workload=tiny_workload, sampler="tpe", out=tmp_path, accuracy=tiny_accuracy,
              min_accuracy=high, area_budget=BUDGET, study_name="s")
    study = run(space, ["images_per_s"], n_trials=12, **kw)
    assert len(study.trials) == 12
    df = trials_frame(study)
    feas = df[(df["state"] == "COMPLETE") & df["feasible"].astype(bool)]
    assert (feas["accuracy_proxy"] >= high).all()
    infeasible = df[(df["state"] == "COMPLETE") & ~df["feasible"].astype(bool)]
    assert (infeasible["accuracy_proxy"] < high).all()
    best = json.loads((tmp_path / "best.json").read_text())
    if len(feas):
        assert best["metrics"]["images_per_s"] == pytest.approx(feas["images_per_s"].max())
    # the study exists: refuse to start over silently, continue with resume=True
    with pytest.raises(ValueError, match="already exists"):
        run(space, ["images_per_s"], n_trials=1, **kw)
    with pytest.raises(ValueError, match="objectives"):
        run(space, ["energy_j"], n_trials=1, resume=True, **kw)
    study = run(space, ["images_per_s"], n_trials=3, resume=True, **kw)
    assert [t.number for t in study.trials] == list(range(15))
    assert len(pd.read_csv(tmp_path / "trials.csv")) == 15


def test_jobs_two_processes_share_the_journal(tmp_path, tiny_workload):
    space = SearchSpace(layer_bits="mac", sram_kib=(512.0, 1024.0))
    study = run(space, ["images_per_s", "area"], workload=tiny_workload, n_trials=9, jobs=2,
                sampler="random", out=tmp_path, area_budget=BUDGET)
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(9))
    pids = {t.user_attrs["qdse.worker"]["pid"] for t in study.trials}
    assert len(pids) == 2  # both processes ran trials
    assert len(pd.read_csv(tmp_path / "trials.csv")) == 9


@pytest.mark.parametrize(("kwargs", "msg"), [
    ({"objectives": ("speed",)}, "objectives"),
    ({"objectives": ("area", "area")}, "objectives"),
    ({"sampler": "cmaes"}, "sampler"),
    ({"area_budget": -3.0}, "area_budget"),
    ({"min_accuracy": 10.0}, "accuracy model"),
])
def test_bad_problem(tiny_workload, kwargs, msg):
    base = dict(workload=tiny_workload, space=SearchSpace(), objectives=("images_per_s",),
                area_budget=10.0)
    with pytest.raises(ValueError, match=msg):
        Problem(**{**base, **kwargs})


def test_bad_run_arguments(tiny_workload):
    with pytest.raises(ValueError, match="n_trials"):
        run(SearchSpace(), ["images_per_s"], workload=tiny_workload, n_trials=-1)
    with pytest.raises(ValueError, match="storage"):
        run(SearchSpace(), ["images_per_s"], workload=tiny_workload, n_trials=1,
            storage="not-a-url", area_budget=10.0)
    assert set(OBJECTIVES) >= {"images_per_s", "energy_j", "area"}


def test_worker_path_does_not_import_torch():
    code = ("import sys, dse.search, dse.search.space, dse.search.accuracy, dse.sim.simulate; "
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"


def test_problem_round_trips_through_the_study(tmp_path, tiny_workload, tiny_accuracy):
    p = Problem(tiny_workload, SearchSpace(layer_bits="search"), ("images_per_s", "energy_j"),
                12.5, float("inf"), tiny_accuracy, 3.0, "nsga2", 7)
    q = Problem.from_json(p.to_json())
    assert q.workload == p.workload
    assert q.space == p.space
    assert q.dram_gbps == float("inf")
    bits = {n: (2, 2) for n in tiny_accuracy.layers}
    assert q.accuracy(bits) == pytest.approx(p.accuracy(bits))
    assert (q.min_accuracy, q.sampler, q.seed, q.objectives) == (3.0, "nsga2", 7, p.objectives)
    assert isinstance(optuna.__version__, str)


@pytest.mark.parametrize("fsync", [False, True])
def test_journal_fsync_option(tmp_path, monkeypatch, fsync):
    """Default journal appends skip fsync (kill-safe, see the SIGKILL test); --fsync restores it."""
    from dse.search import make_storage

    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    st = make_storage(None, tmp_path, fsync=fsync)
    study = optuna.create_study(storage=st, study_name="f")
    study.set_user_attr("k", 1)
    assert bool(calls) is fsync
    again = optuna.load_study(study_name="f", storage=make_storage(None, tmp_path))
    assert again.user_attrs["k"] == 1


def test_incremental_table_writer_matches_batch_pareto(tmp_path):
    """The per-trial writer keeps its front incrementally; it must equal pareto_front's."""
    from dse.search.reports import _TableWriter

    rng = np.random.default_rng(5)
    study = optuna.create_study(directions=["maximize", "minimize"])
    writer = _TableWriter(tmp_path, ["images_per_s", "energy_j"])
    for batch in range(4):
        for _ in range(40):
            ips, e = float(rng.integers(1, 30)), float(rng.integers(1, 30))
            feasible = bool(rng.random() < 0.8)
            study.add_trial(optuna.trial.create_trial(
                values=[ips, e], params={"w:c2": 2},
                distributions={"w:c2": optuna.distributions.CategoricalDistribution([2, 4])},
                user_attrs={"qdse.metrics": {"images_per_s": ips, "energy_j": e,
                                             "feasible": feasible}}))
        writer(study, study.trials[-1])
        writer.flush()  # pareto.csv is rewritten at most every _FRONT_EVERY_S during a run
        df = pd.read_csv(tmp_path / "trials.csv")
        assert len(df) == 40 * (batch + 1)
        expect = pareto_front(trials_frame(study), ["images_per_s", "energy_j"])
        got = pd.read_csv(tmp_path / "pareto.csv")
        assert sorted(got["number"]) == sorted(expect["number"])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9), st.booleans()), min_size=1,
                max_size=40))
def test_pareto_front_properties(points):
    df = pd.DataFrame({"number": range(len(points)), "state": "COMPLETE",
                       "images_per_s": [float(p[0]) for p in points],
                       "energy_j": [float(p[1]) for p in points],
                       "feasible": [p[2] for p in points]})
    front = pareto_front(df, ["images_per_s", "energy_j"])
    feas = df[df["feasible"]]
    assert set(front["number"]) <= set(feas["number"])
    for _, a in front.iterrows():  # nothing feasible dominates a front member
        ips, e = feas["images_per_s"], feas["energy_j"]
        no_worse = (ips >= a["images_per_s"]) & (e <= a["energy_j"])
        better = (ips > a["images_per_s"]) | (e < a["energy_j"])
        assert not (no_worse & better).any()
    if len(feas):  # the best in each objective is always on the front
        assert feas["images_per_s"].max() == front["images_per_s"].max()
        assert feas["energy_j"].min() == front["energy_j"].min()


def test_jobs_need_a_shared_storage(tiny_workload):
    with pytest.raises(ValueError, match="jobs > 1 needs out="):
        run(SearchSpace(), ["images_per_s"], workload=tiny_workload, n_trials=2, jobs=2,
            area_budget=BUDGET)


def test_resume_fails_only_trials_of_dead_local_processes(tmp_path):
    import socket

    from dse.search import make_storage
    from dse.search.storage import _fail_dead_local_trials

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    storage = make_storage(None, tmp_path)
    study = optuna.create_study(storage=storage, study_name="r")
    host = socket.gethostname()
    owners = [{"host": host, "pid": dead.pid}, {"host": host, "pid": os.getpid()},
              {"host": "elsewhere", "pid": dead.pid}]
    for who in owners:
        study.ask().set_user_attr("qdse.worker", who)
    assert _fail_dead_local_trials(study, storage) == 1
    states = [t.state.name for t in study.trials]
    assert states == ["FAIL", "RUNNING", "RUNNING"]  # live or remote owners are left alone


def test_pruned_trials_keep_their_design_in_trials_csv(tmp_path, tiny_workload):
    """A design not even one core of which fits is pruned, but its row still says what it was."""
    from dse.search import make_storage

    space = SearchSpace(sram_kib=(256.0, 4096.0), mac_bits=((2, 2),))
    small = SearchSpace.template((2, 2), 8, 64, 256.0, 32.0).area
    large = SearchSpace.template((2, 2), 8, 64, 4096.0, 32.0).area
    budget = (small + large) / 2  # one core with 256 KiB fits, one with 4096 KiB does not
    kw = dict(workload=tiny_workload, sampler="random", out=tmp_path, area_budget=budget,
              study_name="p")
    run(space, ["images_per_s"], n_trials=0, **kw)
    study = optuna.load_study(study_name="p", storage=make_storage(None, tmp_path))
    for kib in (4096.0, 256.0):
        study.enqueue_trial({"mac_bits": "2x2", "array": "8x64", "sram_kib": kib})
    run(space, ["images_per_s"], n_trials=2, resume=True, **kw)
    df = pd.read_csv(tmp_path / "trials.csv").set_index("number")
    pruned, done = df.loc[0], df.loc[1]
    assert (pruned["state"], pruned["reason"]) == ("PRUNED", "no core fits budget")
    assert done["state"] == "COMPLETE"
    for row, kib in ((pruned, 4096.0), (done, 256.0)):
        assert (row["mac_bits"], row["rows"], row["cols"], row["sram_kib"]) == \
            ("2x2", 8, 64, kib)
    assert pruned["cores"] == 0  # iso-area fill: zero cores fit
    assert done["cores"] >= 1
    assert not df[["mac_bits", "rows", "cols", "sram_kib", "cores"]].isna().any().any()


def test_study_records_settings_and_resume_checks_them(tmp_path, tiny_workload, tiny_accuracy):
    space = SearchSpace(layer_bits="search", first_last_bits=16, shortcut_bits=16)
    kw = dict(workload=tiny_workload, out=tmp_path, area_budget=BUDGET, study_name="r")
    study = run(space, ["images_per_s"], n_trials=1, sampler="random", seed=5,
                accuracy=tiny_accuracy, **kw)
    attrs = study.user_attrs
    assert (attrs["qdse.sampler"], attrs["qdse.seed"]) == ("random", 5)
    assert attrs["qdse.accuracy"] == tiny_accuracy.label
    with pytest.raises(ValueError, match="sampler='tpe' differs from the stored study's 'random'"):
        run(space, ["images_per_s"], n_trials=1, sampler="tpe", seed=5, accuracy=tiny_accuracy,
            resume=True, **kw)
    with pytest.raises(ValueError, match="seed=6 differs from the stored study's 5"):
        run(space, ["images_per_s"], n_trials=1, sampler="random", seed=6,
            accuracy=tiny_accuracy, resume=True, **kw)
    with pytest.raises(ValueError, match="accuracy='none' differs from the stored study's "
                                         "'proxy: "):
        run(space, ["images_per_s"], n_trials=1, sampler="random", seed=5, resume=True, **kw)
    other = dataclasses.replace(tiny_accuracy, sensitivity={n: 2.0 for n in tiny_accuracy.layers})
    with pytest.raises(ValueError, match="other parameters"):
        run(space, ["images_per_s"], n_trials=1, sampler="random", seed=5, accuracy=other,
            resume=True, **kw)
    # every mismatch in one error
    with pytest.raises(ValueError, match=r"sampler=.*; seed=.*; accuracy="):
        run(space, ["images_per_s"], n_trials=1, sampler="tpe", seed=9, resume=True, **kw)
    study = run(space, ["images_per_s"], n_trials=1, sampler="random", seed=5,
                accuracy=tiny_accuracy, resume=True, **kw)
    assert len(study.trials) == 2


def test_every_row_names_its_accuracy_model(tmp_path, tiny_workload):
    """A measured model's rows, plot caption and best.json say "measured", never "proxy"."""
    from dse.search.accuracy import MeasuredAccuracy
    from dse.search.reports import _accuracy_caption

    def top1(bits):  # a stand-in evaluation: fewer bits, lower accuracy
        return 0.5 + sum(w + a for w, a in bits.values()) / 400

    measured = MeasuredAccuracy(top1, label="top-1 (stand-in)")
    space = SearchSpace(layer_bits="search", first_last_bits=16, shortcut_bits=16,
                        cores=(1, 256), sram_kib=(256.0, 1024.0))
    run(space, ["images_per_s"], workload=tiny_workload, n_trials=12, sampler="random",
        out=tmp_path, accuracy=measured, min_accuracy=0.6, area_budget=BUDGET)
    df = pd.read_csv(tmp_path / "trials.csv")
    assert (df["state"] == "PRUNED").any()  # over-budget rows are labelled too
    assert (df["accuracy_model"] == "measured: top-1 (stand-in)").all()
    caption = _accuracy_caption(df)
    assert caption.startswith("accuracy_proxy column = measured: top-1")
    assert "proxy:" not in caption
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["accuracy_model"].startswith("measured:")


def test_default_bit_choices_let_the_recipe_floor_bite(tiny_workload, tiny_accuracy):
    """With only choices >= the recipe's 2 bits no design could fall below its score."""
    space = SearchSpace(layer_bits="search")
    recipe = {la.name: (la.w_bits, la.a_bits) for la in tiny_workload.compute_layers()}
    floor = tiny_accuracy(recipe)
    lowest = space.layer_bits_for(tiny_workload, (2, 2), {
        n: (min(space.layer_w_bits), min(space.layer_a_bits))
        for n in space.searched_layers(tiny_workload)})
    assert min(space.layer_w_bits) < 2
    assert tiny_accuracy(lowest) < floor


@pytest.mark.parametrize("fsync", [False, True])
def test_journal_fsyncs_only_when_asked(tmp_path, monkeypatch, fsync):
    import dse.search.storage

    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    storage = dse.search.storage.make_storage(None, tmp_path, fsync=fsync)
    study = optuna.create_study(storage=storage, study_name="f")
    study.set_user_attr("k", 1)
    assert bool(calls) == fsync
    fresh = dse.search.storage.make_storage(None, tmp_path)  # another process's view
    assert optuna.load_study(study_name="f", storage=fresh).user_attrs["k"] == 1


def test_storage_uses_only_optunas_public_api():
    """No private Optuna module or attribute (they change between releases without notice)."""
    import ast

    import dse.search.storage

    tree = ast.parse(Path(dse.search.storage.__file__).read_text())
    private = sorted({n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                      and n.attr.startswith("_") and not n.attr.startswith("__")
                      and not (isinstance(n.value, ast.Name) and n.value.id == "self")})
    modules = sorted({n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                      and n.module and n.module.startswith("optuna")
                      and any(p.startswith("_") for p in n.module.split("."))})
    assert private == []
    assert modules == []


def test_problem_errors_need_no_workload():
    from dse.search import problem_errors

    space = SearchSpace(sram_kib=(2048.0,), mac_bits=((16, 16),))
    assert problem_errors(space, ["images_per_s"], 14.0) == []
    errs = problem_errors(space, ["speed"], -1.0, dram_gbps=0.0, sampler="x", batch=0,
                          min_accuracy=3.0, has_accuracy=False)
    assert [e.split("=")[0] for e in errs] == ["objectives", "area_budget", "dram_gbps",
                                               "sampler", "min_accuracy", "batch"]
    (err,) = problem_errors(space, ["images_per_s"], 0.5)
    assert err.startswith("area_budget=0.5 is not allowed for this space: its smallest design "
                          "(1 core of 8x64 16x16 MACs with 2048 KiB SRAM) needs")


def test_trial_metrics_read_studies_written_with_one_metrics_dict():
    """Studies stored before each metric had its own attribute still read the same."""
    from dse.search.problem import trial_metrics

    old = optuna.trial.create_trial(values=[2.0], user_attrs={
        "qdse.metrics": {"images_per_s": 2.0, "cores": 4}})
    new = optuna.trial.create_trial(values=[2.0], user_attrs={"images_per_s": 2.0, "cores": 4,
                                                              "qdse.worker": {"pid": 1}})
    assert trial_metrics(old) == trial_metrics(new) == {"images_per_s": 2.0, "cores": 4}


def test_a_kill_between_retry_and_fail_neither_loses_nor_doubles_the_design(tmp_path):
    """Resume marks a dead process's trial FAIL and queues its design again: two journal writes.
    Killed between them, the next resume must end with the design queued exactly once."""
    import socket

    from dse.search import make_storage
    from dse.search.storage import _fail_dead_local_trials

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    storage = make_storage(None, tmp_path)
    study = optuna.create_study(storage=storage, study_name="k")
    trial = study.ask({"sram_kib": optuna.distributions.CategoricalDistribution([64, 128])})
    trial.set_user_attr("qdse.worker", {"host": socket.gethostname(), "pid": dead.pid})

    class KilledError(Exception):
        pass

    writes = []
    real = {name: getattr(storage, name) for name in ("set_trial_state_values",
                                                      "create_new_trial")}

    def counted(name):
        def write(*args, **kwargs):
            writes.append(name)
            if len(writes) == 2:  # the process dies at its second write, whichever it is
                raise KilledError
            return real[name](*args, **kwargs)
        return write

    for name in real:
        setattr(storage, name, counted(name))
    with pytest.raises(KilledError):
        _fail_dead_local_trials(study, storage)
    for name, method in real.items():
        setattr(storage, name, method)
    _fail_dead_local_trials(study, storage)  # the next resume finishes the job
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    assert states == ["FAIL", "WAITING"]  # the design once more, not twice, not never
    assert study.get_trials(deepcopy=False)[1].params == trial.params

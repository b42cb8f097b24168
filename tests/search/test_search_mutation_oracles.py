"""Oracles for the search's decisions that a mutation audit found unchecked: each test kills a
wrong variant of a formula or decision (named in its docstring) against an independent answer -
a brute-force enumeration of a tiny space, a closed form, or a property the docs state."""

from __future__ import annotations

import itertools

import numpy as np
import optuna
import pandas as pd
import pytest
from scipy.stats import norm
from searchkit import tiny_resnet

from arch.presets import sysml19_area_budget
from dse.search.accuracy import ProxyAccuracy, weight_nsr
from dse.search.coverage import GRID_MAX_DESIGNS, design_count
from dse.search.objective import _constraints, _sampler, make_objective
from dse.search.problem import Problem, problem_errors
from dse.search.reports import _TableWriter, best_trial, pareto_front, trials_frame
from dse.search.space import SearchSpace, max_cores_within
from dse.search.stages import mac_stages
from dse.sim.simulate import schedulable_layers
from workloads.graph import Layer, Workload


def _chain(macs: list[int]) -> Workload:
    """input -> fc0 -> fc1 -> ... -> output: linear layers with the given MACs (c = MACs, k = 1)."""
    layers = [Layer(name="input", op="input", n=1, k=macs[0], ho=1, wo=1, o_bits=8,
                    output_elems=macs[0])]
    for i, m in enumerate(macs):
        nxt = macs[i + 1] if i + 1 < len(macs) else 1
        layers.append(Layer(name=f"fc{i}", op="linear", n=1, c=m, k=nxt, macs=m * nxt,
                            w_bits=8, a_bits=8, o_bits=8, weight_elems=m * nxt, input_elems=m,
                            output_elems=nxt, module=f"fc{i}"))
    layers.append(Layer(name="output", op="output", n=1, k=1, input_elems=1))
    return Workload.from_layers(layers, name="chain", input_shape=(macs[0],))


def _brute_force_minimax(macs: list[int], groups: int) -> int:
    """Least largest-stage MACs over every split of ``macs`` into ``groups`` contiguous,
    non-empty stages (every choice of groups - 1 cut points)."""
    best = None
    for cuts in itertools.combinations(range(1, len(macs)), groups - 1):
        bounds = (0, *cuts, len(macs))
        worst = max(sum(macs[a:b]) for a, b in itertools.pairwise(bounds))
        best = worst if best is None else min(best, worst)
    assert best is not None
    return best


@pytest.mark.parametrize("sizes", [[40, 1, 1, 1, 1], [1, 1, 1, 1, 40], [5, 9, 2, 7, 3, 8],
                                   [3, 3, 3, 3], [50, 2, 30, 2, 2, 20]])
def test_mac_stages_is_the_exact_linear_partition(sizes: list[int]) -> None:
    """Kills a DP that never lets the first stage hold one layer (``range(g + 1, j)``): a
    brute force over every set of cut points gives the least largest stage."""
    wl = _chain(sizes)
    compute = [la for la, _ in schedulable_layers(wl) if la.is_compute]
    macs = [la.macs for la in compute]
    for groups in range(1, len(macs) + 1):
        got = mac_stages(wl, groups)
        order = [got[la.name] for la in compute]
        assert order == sorted(order), "stages are contiguous in topological order"
        assert set(order) == set(range(groups)), "every group gets a compute layer"
        worst = max(sum(m for m, g in zip(macs, order) if g == k) for k in range(groups))
        assert worst == _brute_force_minimax(macs, groups), (groups, order)


@pytest.mark.parametrize("groups", [2, 3, 4])
def test_a_pipeline_only_flows_forward(groups: int) -> None:
    """Kills a memory-only layer that joins its EARLIEST producer's group (``min``): the add
    joining the 3x3 branch and the shortcut must run on the later of the two groups, so no
    layer's group is below a producer's (a pipeline never sends a tensor back)."""
    wl = tiny_resnet()
    got = mac_stages(wl, groups)
    for la, preds in schedulable_layers(wl):
        for p in preds:
            assert got[la.name] >= got[p], (la.name, p, got)
    if groups == 3:  # c1+c2 | c3 | sc+fc: the add's producers sit on groups 1 and 2
        add = next(la.name for la, _ in schedulable_layers(wl) if la.op == "add")
        assert got[add] == 2


def test_a_macs_split_on_as_many_groups_as_cores_is_still_cut_by_macs() -> None:
    """Kills a guard ``groups < min(cores, compute layers)``: with exactly as many groups as
    cores the design must still carry the MAC split (`mac_stages`), not fall back to the
    simulator's balanced one."""
    wl = tiny_resnet()
    space = SearchSpace(mac_bits=((2, 2),), sram_kib=(512.0,), cores=(4, 4),
                        schedules=("pipeline",), groups=(4,), stage_splits=("macs",))
    trial = optuna.trial.FixedTrial({"mac_bits": "2x2", "array": "8x64", "sram_kib": 512.0,
                                     "cores": 4})
    design = space.suggest(trial, wl, area_budget=1e4, dram_gbps=32.0)
    assert design is not None
    assert design.stage_split == "macs"
    assert design.stages == mac_stages(wl, 4)
    assert design.simulate_kwargs()["stages"] == mac_stages(wl, 4)
    n_compute = len(wl.compute_layers())  # 5: groups may equal the compute layers too
    space5 = SearchSpace(mac_bits=((2, 2),), sram_kib=(512.0,), cores=(n_compute, n_compute),
                         schedules=("pipeline",), groups=(n_compute,), stage_splits=("macs",))
    d5 = space5.suggest(optuna.trial.FixedTrial({"mac_bits": "2x2", "array": "8x64",
                                                 "sram_kib": 512.0, "cores": n_compute}),
                        wl, area_budget=1e4, dram_gbps=32.0)
    assert d5 is not None
    assert d5.stages == mac_stages(wl, n_compute)


def _brute_min(mse, top: float) -> float:
    """Least of ``mse(alphas)`` over 2000 clip values on (0, top], then 2001 around the best."""
    alphas = np.linspace(top / 2000, top, 2000)
    v = mse(alphas)
    i = int(np.argmin(v))
    fine = np.linspace(alphas[max(i - 2, 0)], alphas[min(i + 2, len(alphas) - 1)], 2001)
    return float(min(v.min(), mse(fine).min()))


def test_weight_nsr_is_the_brute_force_optimal_clip() -> None:
    """Kills a zoom that only searches below the best grid point (``hi = alphas[i]``): the
    relative MSE of the best symmetric 2^b-level quantizer of a Gaussian, by brute force over
    clip values, agrees to 1e-6 (the one-sided zoom misses by up to 7e-4)."""
    n = 2048
    w = norm.ppf((np.arange(n) + 0.5) / n)  # a deterministic Gaussian "sample"
    energy = float(np.mean(w ** 2))

    def mse(alphas: np.ndarray, levels: int) -> np.ndarray:
        a = alphas[:, None]
        step = 2 * a / (levels - 1)
        q = np.clip(np.rint((w[None, :] + a) / step), 0, levels - 1) * step - a
        return np.asarray(((w[None, :] - q) ** 2).mean(axis=1))

    table = weight_nsr(w)
    for b in range(1, 5):
        want = _brute_min(lambda al, b=b: mse(al, 2 ** b), float(np.abs(w).max())) / energy
        assert table[b - 1] == pytest.approx(want, rel=1e-6), b
    assert table[0] == pytest.approx(1 - 2 / np.pi, abs=1e-3)  # 1 bit: alpha = E|w| (Max 1960)
    assert table[1] == pytest.approx(0.1188, abs=1e-3)  # Max's optimal uniform 4-level quantizer


def test_constraints_are_positive_exactly_when_infeasible() -> None:
    """Kills a reversed area constraint (budget - area): Optuna (< 5, through
    ``constraints_func``) reads a trial as feasible when every value is <= 0, so a design
    over its budget must give area - budget > 0 and one below it a negative value."""
    def frozen(**attrs: object) -> optuna.trial.FrozenTrial:
        return optuna.trial.create_trial(values=[1.0], user_attrs=attrs)

    assert _constraints(frozen(area=12.0, area_budget=10.0)) == (2.0, 0.0)
    assert _constraints(frozen(area=7.5, area_budget=10.0)) == (-2.5, 0.0)
    over, short = _constraints(frozen(area=9.0, area_budget=10.0, min_accuracy=35.0,
                                      accuracy_proxy=30.0))
    assert (over, short) == (-1.0, 5.0)  # within budget, 5 dB below the floor
    assert _constraints(frozen(area=9.0, area_budget=10.0, min_accuracy=35.0,
                               accuracy_proxy=40.0)) == (-1.0, -5.0)
    assert _constraints(frozen(cores=0))[0] == 1.0  # no design at all: infeasible


def _one_trial(floor: float, proxy: ProxyAccuracy) -> optuna.trial.FrozenTrial:
    wl = tiny_resnet()
    problem = Problem(wl, SearchSpace(mac_bits=((2, 2),), sram_kib=(512.0,)), ("images_per_s",),
                      area_budget=sysml19_area_budget(), accuracy=proxy, min_accuracy=floor,
                      sampler="random")
    study = optuna.create_study(directions=problem.directions)
    study.optimize(make_objective(problem), n_trials=1)
    return study.trials[0]


def test_a_noise_free_design_meets_any_accuracy_floor() -> None:
    """Kills an infinite score read as a shortfall (``else 1.0``): a proxy with no noise at all
    scores +inf dB (SQNR of an exact network), which clears every floor; a finite score below
    the floor does not."""
    names = [la.name for la in tiny_resnet().compute_layers()]
    zero = tuple([0.0] * 32)
    exact = ProxyAccuracy(dict.fromkeys(names, zero), dict.fromkeys(names, 1.0), act_nsr=zero)
    t = _one_trial(60.0, exact)
    assert t.state == optuna.trial.TrialState.COMPLETE
    assert t.user_attrs["accuracy_proxy"] == np.inf
    assert t.user_attrs["feasible"] is True
    noisy = ProxyAccuracy(dict.fromkeys(names, tuple([1e-3] * 32)), dict.fromkeys(names, 1.0),
                          act_nsr=tuple([1e-3] * 32))  # NSR 5 x 2e-3 = 0.01: exactly 20 dB
    t = _one_trial(25.0, noisy)
    assert t.user_attrs["accuracy_proxy"] == pytest.approx(20.0)
    assert t.user_attrs["feasible"] is False
    assert _one_trial(15.0, noisy).user_attrs["feasible"] is True


def test_each_worker_samples_its_own_reproducible_stream() -> None:
    """Kills one seed for every worker (``seed + 1000 * worker_index`` dropped): parallel
    workers would then propose the same designs in the same order."""
    wl = tiny_resnet()
    space = SearchSpace(mac_bits=((2, 2), (4, 4), (8, 8)), sram_kib=(256.0, 512.0, 1024.0),
                        array_shapes=((8, 64), (16, 32), (32, 16)), layer_bits="search")
    problem = Problem(wl, space, ("images_per_s",), area_budget=1e4, sampler="random", seed=3)

    def stream(worker: int) -> list[dict[str, object]]:
        study = optuna.create_study(sampler=_sampler(problem, worker))
        out = []
        for _ in range(4):
            trial = study.ask()
            space.suggest(trial, wl, area_budget=1e4, dram_gbps=32.0)
            out.append(dict(trial.params))
            study.tell(trial, 1.0)
        return out

    assert stream(0) == stream(0)  # reproducible
    assert stream(1) == stream(1)
    assert stream(0) != stream(1)  # but each worker its own


def test_objective_directions_follow_what_better_means() -> None:
    """Kills a maximised latency (or energy, area): more images/s is better, less energy, area
    and latency are; so of two feasible designs that differ only in one objective, the front
    keeps the better one, and the study's directions say the same."""
    better = {"images_per_s": (10.0, 5.0), "energy_j": (1.0, 2.0), "area": (3.0, 4.0),
              "latency_s": (0.1, 0.2)}
    for name, (good, bad) in better.items():
        df = pd.DataFrame({"number": [0, 1], "state": ["COMPLETE", "COMPLETE"],
                           "feasible": [True, True], name: [bad, good]})
        assert pareto_front(df, [name])["number"].tolist() == [1], name
        problem = Problem(tiny_resnet(), SearchSpace(mac_bits=((2, 2),), sram_kib=(512.0,)),
                          (name,), area_budget=1e4)
        want = (optuna.study.StudyDirection.MAXIMIZE if good > bad
                else optuna.study.StudyDirection.MINIMIZE)
        assert problem.directions == [want], name


def test_a_budget_equal_to_the_smallest_design_admits_it() -> None:
    """Kills ``area >= budget`` in the problem check: a design fits when its area is <= the
    budget (`max_cores_within`, the trial's ``area > budget`` pruning), so a budget of exactly
    the smallest design's area holds one design; a hair less holds none."""
    space = SearchSpace(mac_bits=((2, 2), (4, 4)), sram_kib=(256.0, 512.0))
    area, _ = space.smallest_design(32.0)
    template = SearchSpace.template((2, 2), 8, 64, 256.0, 32.0)
    assert template.area == area  # the 2x2-bit core with the least SRAM is the smallest
    assert max_cores_within(template, area) == 1
    assert problem_errors(space, ("images_per_s",), area) == []
    assert len(problem_errors(space, ("images_per_s",), area * (1 - 1e-9))) == 1


def test_grid_takes_a_space_of_exactly_its_limit() -> None:
    """Kills ``n >= GRID_MAX_DESIGNS``: the grid sampler enumerates spaces of at most
    `GRID_MAX_DESIGNS` designs; counted by hand, 10 bit pairs on each of the 2 searched layers
    times 1000 core counts is exactly 100,000, and 1001 core counts one step over."""
    wl = tiny_resnet()

    def space(hi: int) -> SearchSpace:
        return SearchSpace(mac_bits=((2, 2),), sram_kib=(512.0,), cores=(1, hi),
                           layer_bits="search", layer_w_bits=(1, 2, 4, 8, 16), layer_a_bits=(1, 2))

    assert len(space(1000).searched_layers(wl)) == 2
    assert design_count(space(1000), wl) == (5 * 2) ** 2 * 1000 == GRID_MAX_DESIGNS
    Problem(wl, space(1000), ("images_per_s",), area_budget=1e4, sampler="grid")
    with pytest.raises(ValueError, match=r"sampler='grid' is not allowed for a space of 1\.001e"):
        Problem(wl, space(1001), ("images_per_s",), area_budget=1e4, sampler="grid")


def test_the_running_front_keeps_ties_as_the_final_one_does(tmp_path) -> None:
    """Kills a running front where an equal member dominates a newcomer: two designs with the
    same images/s and energy are both on the front (neither is strictly better), as
    `pareto_front` keeps them; so is every design the others do not dominate."""
    points = [(10.0, 5.0), (10.0, 5.0), (12.0, 7.0), (8.0, 6.0), (12.0, 7.0), (9.0, 4.0)]
    study = optuna.create_study(directions=["maximize", "minimize"])
    writer = _TableWriter(tmp_path, ["images_per_s", "energy_j"])
    for ips, e in points:
        study.add_trial(optuna.trial.create_trial(values=[ips, e], user_attrs={
            "images_per_s": ips, "energy_j": e, "feasible": True}))
        writer(study, study.trials[-1])
    writer.flush()
    # by hand: (8, 6) is dominated by (10, 5); every other point is beaten by nobody
    assert sorted(pd.read_csv(tmp_path / "pareto.csv")["number"]) == [0, 1, 2, 4, 5]
    assert sorted(pareto_front(trials_frame(study), ["images_per_s", "energy_j"])["number"]) \
        == [0, 1, 2, 4, 5]


def test_the_best_of_equal_designs_is_the_first_found() -> None:
    """Kills a tie broken towards the later trial: of designs equal in the first objective
    the report names the lowest trial number (a rerun of the same search names the same)."""
    problem = Problem(tiny_resnet(), SearchSpace(mac_bits=((2, 2),), sram_kib=(512.0,)),
                      ("images_per_s", "energy_j"), area_budget=1e4)
    study = optuna.create_study(directions=problem.directions)
    for ips, e in ((5.0, 1.0), (10.0, 3.0), (10.0, 2.0), (10.0, 2.0)):
        study.add_trial(optuna.trial.create_trial(values=[ips, e], user_attrs={
            "images_per_s": ips, "energy_j": e, "feasible": True}))
    best = best_trial(study, problem)
    assert best is not None
    assert best.number == 2  # 1 is dominated by 2 and 3; 2 and 3 tie: the first

"""Each design point simulates each mode it reports once: the simulator is the cost of a study.

`pipeline.simulate_row(..., other_modes=True)` used to run the headline mode twice (5 simulations
for 4 modes), `qn_fpga` simulated its point once more for the per-layer table and
`bandwidth_area_sweep` once more for the prefetched weights. These tests count the calls to
`dse.simulate` (both names it is imported under) and the mode of each.
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import Any

import pytest

import dse
import dse.sim
from dse.study.runner import Context, resolve_params
from studies import (
    bandwidth_area_sweep,
    binary_speedup,
    llsq_accelerator,
    pipeline,
    precision_sweep,
    qn_fpga,
    wrpn_vs_pact,
)


@pytest.fixture
def modes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The `SIM_MODES` name of every `dse.simulate` call made while the test runs, in order."""
    # The function itself: once the submodule dse/simulate.py has been imported (the CLI tests
    # do), the attribute dse.simulate is that callable module, which calls dse.sim.simulate -
    # the name patched below - and would recurse.
    real = dse.sim.simulate
    seen: list[str] = []

    @functools.wraps(real)  # keeps the signature simulate_row reads the defaults from
    def counting(workload: Any, accelerator: Any, batch: int | None = None,
                 **options: Any) -> Any:
        # dse.simulate's defaults: fidelity="layer", prefetch=True (its docstring)
        fidelity, prefetch = options.get("fidelity", "layer"), options.get("prefetch", True)
        seen.append(fidelity + ("+prefetch" if prefetch else ""))
        return real(workload, accelerator, batch, **options)

    monkeypatch.setattr(dse, "simulate", counting)
    monkeypatch.setattr(dse.sim, "simulate", counting)
    return seen


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any]:
    from arch import presets

    wl = pipeline.workload_for("resnet20", "pact_sawb", w_bits=2, a_bits=2)
    return wl, presets.sysml19((2, 2), 16.0)


def test_simulate_row_runs_each_mode_once(tiny, modes) -> None:
    wl, acc = tiny
    row = pipeline.simulate_row(wl, acc, batch=2, other_modes=True)
    assert Counter(modes) == dict.fromkeys(pipeline.SIM_MODES, 1)
    assert row[f"latency_s@{pipeline.HEADLINE_MODE}"] == row["latency_s"]
    modes.clear()
    assert pipeline.simulate_row(wl, acc, batch=2)["latency_s"] == row["latency_s"]
    assert modes == [pipeline.HEADLINE_MODE]  # no other modes: one simulation


def test_a_headline_in_another_mode_is_reused_for_that_mode(tiny, modes) -> None:
    """The headline's own mode comes from the options (here tile without prefetch), not from
    HEADLINE_MODE; the reused latency is the one a separate run in that mode gives."""
    wl, acc = tiny
    row, res = pipeline.simulate_point(wl, acc, batch=2, other_modes=True,
                                       **pipeline.sim_options("tile"))
    assert Counter(modes) == dict.fromkeys(pipeline.SIM_MODES, 1)
    assert row["latency_s@tile"] == row["latency_s"] == res.latency_s
    direct = dse.simulate(wl, acc, batch=2, fidelity="tile", prefetch=False)
    assert direct.latency_s == row["latency_s"]
    for mode in pipeline.SIM_MODES:  # every column is the run in its own mode
        assert row[f"latency_s@{mode}"] == dse.simulate(
            wl, acc, batch=2, **pipeline.sim_options(mode)).latency_s


def _first_point(study: Any, kind: str | None = None, **params: Any) -> dict[str, Any]:
    points = study.grid(resolve_params(study, params))
    return next(p for p in points if kind is None or p.get("kind") == kind)


@pytest.mark.parametrize(("study", "params", "kind", "want"), [
    # other_modes studies: the four modes, the headline once
    (qn_fpga, {"model": ("resnet20",), "batch": 1}, None, pipeline.SIM_MODES),
    (llsq_accelerator, {"batch": 1, "bits": (2,)}, None, pipeline.SIM_MODES),
    (binary_speedup, {"model": "resnet20", "batch": 1}, "sim", pipeline.SIM_MODES),
    # one mode per point (the modes are separate points)
    (precision_sweep, {"model": "resnet20", "batch": 1}, None, (pipeline.HEADLINE_MODE,)),
    (wrpn_vs_pact, {"model": "resnet20", "batch": 1}, None, (pipeline.HEADLINE_MODE,)),
    # the headline's layers come from the headline run; each extra mode once
    (bandwidth_area_sweep, {"model": "resnet20", "batch": 1, "cores": (4,),
                            "bandwidth": (16.0,), "sram_kib": (128.0,)}, None,
     pipeline.SIM_MODES),
    (bandwidth_area_sweep, {"model": "resnet20", "batch": 1, "cores": (4,),
                            "bandwidth": (16.0,), "sram_kib": (128.0,),
                            "modes": (pipeline.HEADLINE_MODE,)}, None,
     (pipeline.HEADLINE_MODE,)),
], ids=["qn_fpga", "llsq_accelerator", "binary_speedup", "precision_sweep", "wrpn_vs_pact",
        "bandwidth_area_sweep", "bandwidth_area_sweep-headline_only"])
def test_a_design_point_simulates_each_mode_once(study, params, kind, want, modes) -> None:
    point = _first_point(study, kind, **params)
    rows = study.evaluate(point, Context())
    assert Counter(modes) == dict.fromkeys(want, 1), f"{study.NAME}: {modes}"
    assert rows
    assert all(r["latency_s"] > 0 for r in rows)

"""The simulator: `simulate(workload, accelerator)` plays a workload graph on an accelerator with
SimPy events and returns a `SimResult`. No torch, no optuna, no studies."""

from __future__ import annotations

from dse.sim.results import SimResult
from dse.sim.simulate import simulate

__all__ = ["SimResult", "simulate"]

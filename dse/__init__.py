"""Design-space exploration: the SimPy simulator (`simulate` -> `SimResult`) and, in separate
modules, studies, sweeps, reports and search. Importing `dse` stays light: no torch, no optuna."""

from __future__ import annotations

from dse.results import SimResult
from dse.simulate import simulate

__all__ = ["SimResult", "simulate"]

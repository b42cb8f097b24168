"""Design-space exploration, in three folders that follow the data:

* `dse.sim`     the SimPy simulator: `simulate(workload, accelerator)` -> `SimResult`; one small
                module per hardware part (DRAM, buffers, cores), one layer's execution in one place.
* `dse.study`   the study runner (`python -m dse.study`), sweeps (`python -m dse.sweep`), reports.
* `dse.search`  the Optuna design search (`python -m dse.search`), its space and accuracy models.

Importing `dse` stays light: no torch, no optuna.
"""

from __future__ import annotations

from dse.sim import SimResult, simulate

__all__ = ["SimResult", "simulate"]

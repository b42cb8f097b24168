"""Hardware descriptions: accelerators, area and energy models, presets. Never imports torch."""

from __future__ import annotations

from arch import io, presets
from arch.area import (
    accelerator_area_breakdown_mm2,
    accelerator_area_mm2,
    core_area_breakdown_mm2,
    core_area_mm2,
    iso_area_cores,
    mac_area,
    mac_area_mm2,
    precision_slowdown,
    sram_area_mm2,
)
from arch.energy import EnergyModel, chip_power_w, default_energy_model
from arch.fpga import FpgaDesign, FpgaDevice, MacCost
from arch.io import from_dict, load, save, to_dict
from arch.presets import llsq40nm, sysml19, sysml19_area_budget, vu9p
from arch.scalesim_cfg import from_scalesim
from arch.spec import DATAFLOWS, HIGH_PRECISION_MODELS, PEAK_SCALINGS, Accelerator
from arch.tech import TECHNOLOGIES, Technology, technology

__all__ = [
    "DATAFLOWS",
    "HIGH_PRECISION_MODELS",
    "PEAK_SCALINGS",
    "TECHNOLOGIES",
    "Accelerator",
    "EnergyModel",
    "FpgaDesign",
    "FpgaDevice",
    "MacCost",
    "Technology",
    "accelerator_area_breakdown_mm2",
    "accelerator_area_mm2",
    "chip_power_w",
    "core_area_breakdown_mm2",
    "core_area_mm2",
    "default_energy_model",
    "from_dict",
    "from_scalesim",
    "io",
    "iso_area_cores",
    "llsq40nm",
    "load",
    "mac_area",
    "mac_area_mm2",
    "precision_slowdown",
    "presets",
    "save",
    "sram_area_mm2",
    "sysml19",
    "sysml19_area_budget",
    "technology",
    "to_dict",
    "vu9p",
]

"""Hardware descriptions: accelerators, area and energy models, presets. Never imports torch."""

from __future__ import annotations

from arch.spec import DATAFLOWS, HIGH_PRECISION_MODELS, PEAK_SCALINGS, Accelerator

__all__ = ["DATAFLOWS", "HIGH_PRECISION_MODELS", "PEAK_SCALINGS", "Accelerator"]

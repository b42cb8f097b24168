"""Chip power from a simulated energy split, and the 40 nm leakage the LLSQ power model uses."""

from __future__ import annotations

import math

import pytest

from arch import presets
from arch.energy import LEAKAGE_W_PER_MM2_40NM, ON_CHIP_PARTS, chip_power_w


def test_leakage_density_is_aladdins_40nm_multiplier() -> None:
    # Aladdin (Shao et al., ISCA 2014), 40 nm 32-bit multiplier: 0.0779 mW leakage in 6350 um^2
    assert pytest.approx(0.0779e-3 / (6350 / 1e6)) == LEAKAGE_W_PER_MM2_40NM
    # its adder (0.00225 mW in 278 um^2) and register (7.4e-5 mW in 5.98 um^2) agree within 35%
    for leak_mw, area_um2 in ((0.00225, 278.0), (7.4e-5, 5.98)):
        assert leak_mw * 1e-3 / (area_um2 * 1e-6) == pytest.approx(LEAKAGE_W_PER_MM2_40NM,
                                                                   rel=0.35)


def test_chip_power_is_on_chip_energy_over_time() -> None:
    energy = {"mac": 2e-3, "sram": 3e-3, "dram": 50e-3, "static": 1e-3}
    p = chip_power_w(energy, 0.5)
    assert p == pytest.approx({"mac": 4e-3, "sram": 6e-3, "static": 2e-3, "total": 12e-3})
    assert "dram" not in p  # off chip: not in a synthesised chip's power
    assert chip_power_w(energy, 0.5, parts=("mac", "dram"))["total"] == pytest.approx(0.104)
    # a part the split lacks (no leakage set) counts 0 W
    assert chip_power_w({"mac": 1.0}, 1.0)["total"] == 1.0
    assert ON_CHIP_PARTS == ("mac", "sram", "static")


@pytest.mark.parametrize("latency", [0.0, -1.0, math.inf, math.nan, True])
def test_chip_power_rejects_a_bad_latency(latency: float) -> None:
    with pytest.raises(ValueError, match=r"latency_s=.* is not allowed; expected a finite number"):
        chip_power_w({"mac": 1.0}, latency)


def test_chip_power_rejects_bad_parts() -> None:
    with pytest.raises(ValueError, match=r"parts=.* is not allowed"):
        chip_power_w({"mac": 1.0}, 1.0, parts=())


def test_llsq_energy_model_is_40nm_with_leakage() -> None:
    em = presets.llsq40nm_energy_model()
    assert em.node_nm == 40.0
    assert em.static_w_per_mm2 == LEAKAGE_W_PER_MM2_40NM
    acc = presets.llsq40nm(8)
    # the leakage of the 8-bit chip: 12.3 mW/mm^2 x its 4.4 mm^2
    assert em.static_w(acc.area) == pytest.approx(acc.area * 0.01227, rel=1e-3)
    # a MAC at full rate: 224 x 0.8 GHz x mac_pj(8, 8, acc 16) is tens of mW, as Table 5 scales
    mac_w = acc.peak_macs_per_s * em.mac_pj(8, 8, acc.acc_bits) * 1e-12
    assert 0.02 < mac_w < 0.228

"""Energy model against Horowitz ISSCC 2014 (45 nm, 0.9 V) and its node scaling."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arch import EnergyModel, default_energy_model
from arch.energy import sram_pj_per_bit_45nm
from arch.tech import technology

H45 = default_energy_model(45.0)


def test_multiplier_matches_horowitz() -> None:
    mult = lambda b: H45.mult_pj_per_bit2 * b * b  # noqa: E731
    assert mult(8) == pytest.approx(0.2, rel=0.02)
    assert mult(32) == pytest.approx(3.1, rel=0.03)


def test_adder_matches_horowitz() -> None:
    add = lambda b: H45.add_pj_fixed + H45.add_pj_per_bit * b  # noqa: E731
    assert add(8) == pytest.approx(0.03)
    assert add(32) == pytest.approx(0.1)
    assert add(16) == pytest.approx(0.05, rel=0.1)


def test_mac_is_multiplier_plus_accumulator() -> None:
    # 8x8 multiply (0.2 pJ) + 32-bit accumulate (0.1 pJ)
    assert H45.mac_pj(8, 8) == pytest.approx(0.3, rel=0.02)
    assert H45.mac_pj(8, 8, acc_bits=16) < H45.mac_pj(8, 8)
    # 16x16 costs ~ (256*3.1 fJ + 0.1) vs 2x2 (4*3.1 fJ + 0.1): the accumulator dominates at 2-bit.
    assert H45.mac_pj(16, 16) / H45.mac_pj(2, 2) == pytest.approx(
        (256 * 0.0031 + 0.1) / (4 * 0.0031 + 0.1), rel=1e-6)


@given(st.integers(1, 31), st.integers(1, 32))
def test_mac_energy_symmetric_monotone(w: int, a: int) -> None:
    assert H45.mac_pj(w, a) == H45.mac_pj(a, w)
    assert H45.mac_pj(w + 1, a) > H45.mac_pj(w, a)


def test_memory_energies() -> None:
    assert sram_pj_per_bit_45nm(8.0) == pytest.approx(5.0 / 32)  # 32-bit read, 8 KB: 5 pJ
    assert sram_pj_per_bit_45nm(32.0) == pytest.approx(20.0 / 64)  # 64-bit read, 32 KB: 20 pJ
    assert sram_pj_per_bit_45nm(1024.0) == pytest.approx(100.0 / 64, rel=0.15)  # 1 MB: 100 pJ
    assert H45.sram_pj_per_bit == pytest.approx(0.3125)
    assert H45.dram_pj_per_bit == pytest.approx(640.0 / 32)
    assert H45.dram_pj_per_bit / H45.sram_pj_per_bit > 50  # off-chip dominates per bit
    assert H45.sram_pj(64) == pytest.approx(20.0)
    assert H45.dram_pj(32) == pytest.approx(640.0)


def test_node_scaling() -> None:
    e14 = default_energy_model(14.0)
    s = (14 / 45) * (0.8 / 0.9) ** 2
    assert technology(14.0).energy_scale == pytest.approx(s)
    assert e14.mac_pj(8, 8) == pytest.approx(H45.mac_pj(8, 8) * s)
    assert e14.sram_pj_per_bit == pytest.approx(H45.sram_pj_per_bit * s)
    assert e14.dram_pj_per_bit == H45.dram_pj_per_bit  # off-chip, not node-scaled
    assert EnergyModel() == dataclasses.replace(H45)  # the field defaults are the 45 nm anchors


def test_static_power() -> None:
    assert H45.static_w(10.0) == 0.0
    em = default_energy_model(14.0, static_w_per_mm2=0.05)
    assert em.static_w(10.0) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"dram_pj_per_bit": -1.0}, "dram_pj_per_bit=-1.0"),
     ({"sram_pj_per_bit": float("nan")}, "sram_pj_per_bit=nan"),
     ({"node_nm": 5.0}, r"node_nm=5\.0")],
)
def test_bad_energy_model(kw: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EnergyModel(**kw)


def test_bad_bits() -> None:
    with pytest.raises(ValueError, match=r"a_bits=0 .*1\.\.32"):
        H45.mac_pj(8, 0)
    with pytest.raises(ValueError, match=r"acc_bits=65 .*1\.\.64"):
        H45.mac_pj(8, 8, acc_bits=65)
    with pytest.raises(ValueError, match="capacity_kib=0"):
        sram_pj_per_bit_45nm(0)


@pytest.mark.parametrize(("bits", "chip_mw"), [(8, 228.0), (4, 93.0), (2, 41.0)])
def test_llsq_mac_power_below_chip_power(bits: int, chip_mw: float) -> None:
    # LLSQ Table 5: whole-chip power at 179.2 GMAC/s. The MACs alone (40 nm, 16-bit accumulators)
    # must stay below it, and take a sizeable share of it (they are the chip's purpose).
    from arch import presets

    acc = presets.llsq40nm(bits)
    em = default_energy_model(acc.node_nm)
    mac_mw = em.mac_pj(bits, bits, acc.acc_bits) * 1e-12 * acc.peak_macs_per_s * 1e3
    assert 0.1 * chip_mw < mac_mw < chip_mw


def test_llsq_8_to_4_bit_mac_power_ratio() -> None:
    # 228 -> 93 mW (0.41x); the MAC energy model alone gives the same ratio at 40 nm.
    em = default_energy_model(40.0)
    assert em.mac_pj(4, 4, 16) / em.mac_pj(8, 8, 16) == pytest.approx(93 / 228, rel=0.1)


def test_mac_energy_of_high_precision_layers() -> None:
    em = H45
    # at or below the array precision: one array MAC
    assert em.mac_pj_on((2, 2), (8, 8)) == em.mac_pj(8, 8)
    assert em.mac_pj_on((8, 8), (8, 8), high_precision="bit_serial") == em.mac_pj(8, 8)
    # configurable: one wide MAC
    assert em.mac_pj_on((16, 16), (2, 2)) == em.mac_pj(16, 16)
    # bit-serial: 64 passes of a 2x2 MAC; the partial products add up to one 16x16 multiply,
    # and every pass pays its accumulation.
    serial = em.mac_pj_on((16, 16), (2, 2), high_precision="bit_serial")
    assert serial == pytest.approx(64 * em.mac_pj(2, 2))
    mult_16 = em.mult_pj_per_bit2 * 256
    acc_32 = em.add_pj_fixed + em.add_pj_per_bit * 32
    assert serial == pytest.approx(mult_16 + 64 * acc_32)
    assert serial > em.mac_pj_on((16, 16), (2, 2))
    with pytest.raises(ValueError, match="high_precision='x'"):
        em.mac_pj_on((16, 16), (2, 2), high_precision="x")

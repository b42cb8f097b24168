"""Presets: the PACT-SAWB iso-area template and the LLSQ 40 nm design; Accelerator.iso_area."""

from __future__ import annotations

import pytest

from arch import Accelerator, presets
from arch.area import sram_area_mm2

MIB = 1024 * 1024


@pytest.mark.parametrize(("bits", "cores"), [(16, 8), (8, 16), (4, 32), (2, 64)])
def test_sysml19_doubling_core_counts(bits: int, cores: int) -> None:
    acc = presets.sysml19(bits)
    assert acc.cores == cores
    assert acc.mac_bits == (bits, bits)
    assert acc.rows * acc.cols == 512
    # Peak doubles per halving of precision (Section 7.1): 8.19 TOPS * 16 / bits.
    assert acc.peak_tops == pytest.approx(8.192 * 16 / bits)


def test_sysml19_peak_tops_span_paper_range() -> None:
    assert presets.sysml19(16).peak_tops == pytest.approx(8.19, abs=0.01)
    assert presets.sysml19(2).peak_tops == pytest.approx(65.5, abs=0.1)


@pytest.mark.parametrize("scaling", ["doubling", "density"])
def test_sysml19_iso_area_constant_sram(scaling: str) -> None:
    budget = presets.sysml19_area_budget()
    for bits in (16, 8, 4, 2, (2, 4), (16, 2)):
        acc = presets.sysml19(bits, peak_scaling=scaling)
        assert abs(acc.sram_bytes_total - 16 * MIB) <= acc.cores  # int bytes per core
        assert acc.area <= budget * (1 + 1e-9)
        # density: one more core would not fit
        if scaling == "density":
            per_core = (acc.area - sram_area_mm2(16384.0)) / acc.cores
            assert acc.area + per_core > budget


def test_sysml19_density_core_counts() -> None:
    cores = [presets.sysml19(b, peak_scaling="density").cores for b in (16, 8, 4, 2)]
    assert cores[0] == 8
    assert cores[-1] == 64  # calibrated end point (Section 7.1)
    assert cores == sorted(cores)
    # 8- and 4-bit get more than doubling gives: density (3.2x, 8x) outruns 2x per halving.
    assert cores[1] > 16
    assert cores[2] > 32


def test_sysml19_mixed_precision() -> None:
    wrpn = presets.sysml19((2, 4))
    assert wrpn.mac_bits == (2, 4)
    assert wrpn.cores == 42  # floor(8 * 16 / 3)
    dens = presets.sysml19((2, 4), peak_scaling="density")
    assert 32 < wrpn.cores < dens.cores < 64


def test_sysml19_budget_and_parameters() -> None:
    acc16 = presets.sysml19(16)
    assert acc16.area == pytest.approx(presets.sysml19_area_budget())
    assert acc16.freq_ghz == 1.0
    assert acc16.node_nm == 14.0
    assert acc16.high_precision == "configurable"
    assert acc16.sram_kib == 2048.0
    assert presets.sysml19(2, 64.0).dram_gbps == 64.0
    assert presets.sysml19(2, float("inf")).dram_bytes_per_s == float("inf")


def test_sysml19_overrides_and_sensitivity() -> None:
    acc = presets.sysml19(4, dataflow="ws", dram_latency_ns=50.0, name="x")
    assert (acc.dataflow, acc.dram_latency_ns, acc.name, acc.cores) == ("ws", 50.0, "x", 32)
    small = presets.sysml19(4, total_sram_kib=4096.0)
    assert small.cores == 32
    assert small.sram_bytes_total == 4 * MIB
    # Geometry overrides move the budget with them: still 8 cores at 16-bit.
    assert presets.sysml19(16, rows=16).cores == 8


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"cores": 3}, "cores=3"), ({"sram_kib": 1.0}, "sram_kib=1.0"),
     ({"peak_scaling": "x"}, "peak_scaling='x'"), ({"dataflow": "zz"}, "dataflow='zz'"),
     ({"bogus": 1}, "bogus")],
)
def test_sysml19_bad_arguments(kw: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        presets.sysml19(2, **kw)


def test_llsq40nm() -> None:
    for b in (8, 4, 2):
        acc = presets.llsq40nm(b)
        assert acc.mac_count == 224
        assert acc.peak_macs_per_s == pytest.approx(179.2e9)  # Table 5 "GOps/sec"
        assert (acc.acc_bits, acc.node_nm, acc.freq_ghz) == (16, 40.0, 0.8)
    assert presets.llsq40nm(8).sram_kib == 512 + 512 + 256
    assert presets.llsq40nm(2).sram_kib == 128 + 128 + 256
    with pytest.raises(ValueError, match=r"bits=16.*w \+ a <= 16"):
        presets.llsq40nm(16)


def test_get_and_names() -> None:
    assert {"llsq40nm", "sysml19", "vu9p"} <= set(presets.names())
    assert presets.names() == sorted(presets.names())
    assert presets.get("sysml19", 4).cores == 32
    with pytest.raises(ValueError, match="unknown preset 'tpu'; available: "
                                         + ", ".join(presets.names())):
        presets.get("tpu")


# -- Accelerator.iso_area -----------------------------------------------------------------------
def test_iso_area_classmethod() -> None:
    budget = presets.sysml19_area_budget()
    acc = Accelerator.iso_area(budget, 4, total_sram_kib=16384.0, freq_ghz=1.0, node_nm=14.0)
    assert acc.cores == 32
    assert acc.sram_kib == 512.0
    dens = Accelerator.iso_area(budget, (4, 4), peak_scaling="density", total_sram_kib=16384.0)
    assert dens.cores == presets.sysml19(4, peak_scaling="density").cores


def test_iso_area_per_core_sram_replicated() -> None:
    # Without total_sram_kib every core carries its SRAM: low precision gains far less.
    budget = presets.sysml19_area_budget()
    acc = Accelerator.iso_area(budget, 2, peak_scaling="density", sram_kib=2048.0)
    assert acc.sram_kib == 2048.0
    assert 8 <= acc.cores < 16
    assert acc.area <= budget


def test_iso_area_errors() -> None:
    with pytest.raises(ValueError, match="too small"):
        Accelerator.iso_area(0.01, 2)
    with pytest.raises(ValueError, match="cores=4"):
        Accelerator.iso_area(100.0, 2, cores=4)
    with pytest.raises(ValueError, match=r"sram_kib=1\.0 is not allowed together"):
        Accelerator.iso_area(100.0, 2, total_sram_kib=1024.0, sram_kib=1.0)
    with pytest.raises(ValueError, match=r"unknown Accelerator field\(s\) \['colz'\]"):
        Accelerator.iso_area(100.0, 2, colz=3)
    with pytest.raises(ValueError, match="mac_bits=0"):
        Accelerator.iso_area(100.0, 0)


def test_llsq40nm_shares_the_preset_call() -> None:
    assert presets.llsq40nm(mac_bits=2, dram_gbps=25.6) == presets.llsq40nm(2, 25.6)
    assert presets.get("llsq40nm", mac_bits=(2, 4)).mac_bits == (2, 4)
    with pytest.raises(ValueError, match="mac_bits=2 is not allowed together with bits=8"):
        presets.llsq40nm(8, mac_bits=2)


def test_sysml19_area_budget_arguments() -> None:
    base = presets.sysml19_area_budget()
    assert presets.sysml19_area_budget(total_sram_kib=8192.0) == pytest.approx(
        base - sram_area_mm2(8192.0))
    assert presets.sysml19_area_budget(node_nm=7.0) < base
    with pytest.raises(ValueError, match="takes no freq_ghz"):
        presets.sysml19_area_budget(freq_ghz=2.0)

"""Formulas the other arch tests could not tell from a wrong variant (a mutation audit found them).

Each test checks one formula against an oracle built another way: bit-serial passes by slicing
each operand into MAC-width pieces, the bit-serial energy as passes x one array MAC (the cycles
and the energy count the same passes), and an FPGA design's peak from the Accelerator it becomes.
"""

from __future__ import annotations

import pytest

from arch import default_energy_model, presets
from arch.area import precision_slowdown


def _slices(bits: int, width: int) -> int:
    """Pieces of ``width`` bits an operand of ``bits`` bits is cut into (its last one partial)."""
    return len(range(0, bits, width))


def test_bit_serial_passes_are_slice_pairs_at_any_width() -> None:
    # Bit Fusion composition: every weight slice meets every activation slice once. Widths that
    # are not multiples of the MAC's leave a partial slice that still costs a whole pass:
    # 3x3 on 2x2 is 2 x 2 = 4 passes, not ceil(9 / 4) = 3.
    assert precision_slowdown((3, 3), (2, 2), high_precision="bit_serial") == 4.0
    assert precision_slowdown((5, 3), (2, 2), high_precision="bit_serial") == 6.0
    for ow in range(1, 13):
        for oa in range(1, 13):
            for mw in range(1, 7):
                for ma in range(1, 7):
                    w, a = max(ow, mw), max(oa, ma)
                    want = float(_slices(w, mw) * _slices(a, ma))
                    got = precision_slowdown((ow, oa), (mw, ma), high_precision="bit_serial")
                    assert got == want, (ow, oa, mw, ma)


def test_bit_serial_energy_is_one_array_mac_per_pass() -> None:
    # The energy model and the cycle model count the same passes: each pass is one MAC of the
    # array's own (mw, ma) precision. A 2x4 array runs 16x16 in 8 x 4 = 32 passes (not 8 x 8:
    # the activation is cut at the array's activation width, not its weight width).
    em = default_energy_model(14.0)
    assert em.mac_pj_on((16, 16), (2, 4), high_precision="bit_serial") == pytest.approx(
        32 * em.mac_pj(2, 4))
    for op in ((16, 16), (8, 4), (4, 8), (16, 2), (3, 7)):
        for mac in ((2, 4), (4, 2), (1, 2), (2, 2), (3, 1)):
            passes = precision_slowdown(op, mac, high_precision="bit_serial")
            got = em.mac_pj_on(op, mac, high_precision="bit_serial")
            assert got == pytest.approx(passes * em.mac_pj(*mac)), (op, mac)


@pytest.mark.parametrize("bits", [1, 2, (32, 32)])
def test_fpga_peak_is_the_accelerators_peak(bits: int | tuple[int, int]) -> None:
    # peak_gmacs (MHz x MACs / 1e3 = GMAC/s) against the Accelerator's own peak (GHz clock,
    # mac_count), and the binary design's 124,992 MACs x 250 MHz = 31.2 TMAC/s (docs/arch.md).
    design = presets.vu9p_design()
    r = design.resources(bits)
    acc = design.accelerator(bits)
    assert r["peak_gmacs"] == pytest.approx(acc.peak_macs_per_s / 1e9)
    assert r["peak_gmacs"] == pytest.approx(r["macs"] * 0.25)
    if bits == 1:
        assert r["peak_gmacs"] == pytest.approx(31_248.0)

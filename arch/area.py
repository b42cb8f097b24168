"""Area model: MAC area by precision (PACT-SAWB Fig. 7b), per-core overheads, accelerator area.

MAC area [derived in ../shared/MODELING.md from two anchors]:
    a(bw, ba) = bw*ba + 1.146*(bw + ba) + 13.27, normalised by a(16, 16) = 306.0
fitted to a(16,16)/a(2,2) = 14.0 (PACT-SAWB paper Fig. 7b, 14 nm, MAC incl. accumulator) and
a(16,16)/a(8,8) = 3.2 (Bit Fusion, Sharma et al. ISCA 2018, 45 nm PE synthesis).
"""

from __future__ import annotations

__all__ = ["mac_area"]

_MULT = 1.0  # bw*ba term: partial-product array of a bw x ba multiplier
_LIN = 1.146  # bw + ba term: operand registers and adder width
_CONST = 13.27  # accumulator, pipeline registers and control, independent of operand bits
_NORM = 16 * 16 + _LIN * 32 + _CONST  # a(16, 16) = 306.0


def mac_area(w_bits: int, a_bits: int) -> float:
    """Area of one (w_bits x a_bits) MAC incl. accumulator, relative to a 16x16-bit MAC (= 1.0)."""
    for name, b in (("w_bits", w_bits), ("a_bits", a_bits)):
        if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= 32:
            raise ValueError(f"{name}={b!r} is not allowed; expected an integer in 1..32")
    return (_MULT * w_bits * a_bits + _LIN * (w_bits + a_bits) + _CONST) / _NORM

"""Energy per access: MACs by precision, SRAM and DRAM per bit (Horowitz, ISSCC 2014, scaled).

Anchors, 45 nm, 0.9 V (M. Horowitz, "Computing's energy problem (and what we can do about it)",
ISSCC 2014, Fig. 1.1.9 and its table):

=================================  ==========  =======================================
operation                          energy      used for
=================================  ==========  =======================================
8-bit integer add                  0.03 pJ     adder line: 2.92 fJ/bit + 6.7 fJ
32-bit integer add                 0.1 pJ      (fit through the 8- and 32-bit points)
8-bit integer multiply             0.2 pJ      multiplier: 3.1 fJ per partial-product bit
32-bit integer multiply            3.1 pJ      (w*a bits; 0.2/64 = 3.13, 3.1/1024 = 3.03)
64-bit read, 8 KB SRAM             10 pJ       0.156 pJ/bit
64-bit read, 32 KB SRAM            20 pJ       0.3125 pJ/bit (default: a 32 KiB bank)
64-bit read, 1 MB SRAM             100 pJ      ~sqrt(capacity) wire scaling check
32-bit DRAM read                   640 pJ      20 pJ/bit
=================================  ==========  =======================================

A MAC is a w x a multiplier plus an accumulator adder of ``acc_bits`` (Eq. below):
    E_mac(w, a) = MULT_PJ_PER_BIT2 * w * a + ADD_PJ_FIXED + ADD_PJ_PER_BIT * acc_bits.
On-chip energies scale with the node by `arch.tech.Technology.energy_scale` (C*V^2, C ~ node);
DRAM energy is an interface property and is kept at Horowitz's value at every node (HBM2-class
interfaces are several times lower; pass your own `EnergyModel` to model them).
Leakage: ``static_w_per_mm2`` defaults to 0 (dynamic energy only). `LEAKAGE_W_PER_MM2_40NM` is a
cited 40 nm figure (Aladdin's standard-cell characterisation) for designs at that node; other
nodes have no cited number here. `chip_power_w` turns a simulated energy split into average power.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from arch.tech import technology

__all__ = [
    "ADD_PJ_FIXED_45NM",
    "ADD_PJ_PER_BIT_45NM",
    "CACTI_SRAM_LEAKAGE_W_PER_MM2_40NM",
    "DRAM_PJ_PER_BIT",
    "LEAKAGE_W_PER_MM2_40NM",
    "MULT_PJ_PER_BIT2_45NM",
    "ON_CHIP_PARTS",
    "SRAM_BANK_KIB",
    "SRAM_PJ_PER_BIT_8KIB_45NM",
    "WIRE_PJ_PER_BIT_MM",
    "EnergyModel",
    "chip_power_w",
    "default_energy_model",
    "sram_pj_per_bit_45nm",
]

MULT_PJ_PER_BIT2_45NM = 0.0031
"""Multiplier energy per partial-product bit (w*a), pJ: Horowitz 8b 0.2 pJ / 64, 32b 3.1 / 1024."""

ADD_PJ_PER_BIT_45NM = (0.1 - 0.03) / (32 - 8)
"""Adder energy per bit, pJ: the line through Horowitz's 8-bit (0.03 pJ) and 32-bit (0.1 pJ)
adds."""

ADD_PJ_FIXED_45NM = 0.03 - 8 * ADD_PJ_PER_BIT_45NM
"""Adder energy independent of width, pJ (intercept of the same line, 6.7 fJ)."""

SRAM_PJ_PER_BIT_8KIB_45NM = 10.0 / 64
"""SRAM read energy per bit of an 8 KB array, pJ: Horowitz 10 pJ per 64-bit read (5 pJ per
32 bits)."""

SRAM_BANK_KIB = 32.0
"""Capacity of the SRAM bank one access touches. A per-core scratchpad of MiBs is banked; an access
reads one bank, so its energy is that of a bank, not of the whole pool. 32 KiB is Horowitz's middle
point (20 pJ per 64-bit read)."""

DRAM_PJ_PER_BIT = 640.0 / 32
"""DRAM read energy per bit, pJ: Horowitz 640 pJ per 32-bit read (DDR3-class; not node-scaled)."""

WIRE_PJ_PER_BIT_MM = 0.1
"""Energy to move one bit 1 mm over a full-swing repeated on-chip wire, pJ: the order of magnitude
Dally and Keckler quote for 40-28 nm (about 256 pJ for 256 bits over 10 mm; Keckler et al., "GPUs
and the future of parallel computing", IEEE Micro 2011) - recalled, not checked against the
table. Wires barely scale with the node, so it is not node-scaled. Low-swing links reach 0.040 pJ
(Park et al., DATE 2013, 40.4 fJ/bit/mm in 45 nm). Router energy per hop is not modelled."""

LEAKAGE_W_PER_MM2_40NM = 0.0779e-3 / 6350e-6
"""Leakage power density of 40 nm logic, W/mm^2 (12.3 mW/mm^2): Aladdin's 40 nm characterisation
of a 32-bit fixed-point multiplier (Shao et al., ISCA 2014), 0.0779 mW leakage in 6350 um^2, as
tabulated by the Accelergy Aladdin plug-in (its 32-bit adder gives 8.1 and its 1-bit register 11.7
mW/mm^2 from the same tables). Applied to a whole chip it treats SRAM macros as leaking like logic,
an assumption: the tables have no SRAM leakage."""

CACTI_SRAM_LEAKAGE_W_PER_MM2_40NM = {
    "itrs-hp": (184.013 + 17.0256) / 1.40256 * 1e-3,
    "itrs-lop": (13.323 + 4.95457) / 1.66598 * 1e-3,
    "itrs-lstp": (0.0118669 + 0.00744255) / 1.46818 * 1e-3,
}
"""Standby leakage (subthreshold + gate) per mm^2 of a 40 nm SRAM bank at 300 K, W/mm^2, by ITRS
device flavour of its cells and periphery: 143, 11.0 and 0.013 mW/mm^2. CACTI 7.0 (HP Labs) on one
512 KiB scratchpad RAM bank, 64-bit port (bank leakage over bank area; runs, configs and outputs
in tests/golden/cacti/, from benchmarks/cacti_sram.py). Not in any preset: it brackets
`LEAKAGE_W_PER_MM2_40NM` applied to SRAM (the llsq_accelerator study's ``sram_leakage`` table),
whose flavour the LLSQ paper does not give."""

ON_CHIP_PARTS = ("mac", "sram", "static")
"""The parts of a simulated energy split that a chip's own power includes (DRAM is off chip); a
split with on-chip network traffic (``noc``, core groups) adds that part too (`chip_power_w`)."""


def sram_pj_per_bit_45nm(capacity_kib: float) -> float:
    """Read energy per bit of an SRAM array of ``capacity_kib`` at 45 nm, pJ.

    Wire-dominated sqrt(capacity) scaling from the 8 KB anchor: 8 KB 0.156, 32 KB 0.3125 (Horowitz's
    20 pJ/64 b exactly), 1 MB 1.77 pJ/bit (Horowitz: 100 pJ/64 b = 1.56, within 15%).
    """
    if isinstance(capacity_kib, bool) or not isinstance(capacity_kib, int | float) \
            or not math.isfinite(capacity_kib) or capacity_kib <= 0:
        raise ValueError(f"capacity_kib={capacity_kib!r} is not allowed; expected a finite "
                         "number > 0")
    return SRAM_PJ_PER_BIT_8KIB_45NM * math.sqrt(capacity_kib / 8.0)


@dataclass(frozen=True, slots=True)
class EnergyModel:
    """Per-access energies at one node, pJ (and leakage in W/mm^2). The field defaults are the
    unscaled 45 nm anchors; build a model for another node with `default_energy_model(node_nm)`
    and vary it with ``dataclasses.replace``."""

    node_nm: float = 45.0
    mult_pj_per_bit2: float = MULT_PJ_PER_BIT2_45NM
    add_pj_per_bit: float = ADD_PJ_PER_BIT_45NM
    add_pj_fixed: float = ADD_PJ_FIXED_45NM
    sram_pj_per_bit: float = sram_pj_per_bit_45nm(SRAM_BANK_KIB)  # 0.3125 pJ (32 KiB bank)
    dram_pj_per_bit: float = DRAM_PJ_PER_BIT
    static_w_per_mm2: float = 0.0
    noc_pj_per_bit_mm: float = WIRE_PJ_PER_BIT_MM

    def __post_init__(self) -> None:
        technology(self.node_nm)  # ValueError naming node_nm and the supported nodes
        problems = [
            f"{f}={getattr(self, f)!r} is not allowed; expected a finite number >= 0"
            for f in ("mult_pj_per_bit2", "add_pj_per_bit", "add_pj_fixed", "sram_pj_per_bit",
                      "dram_pj_per_bit", "static_w_per_mm2", "noc_pj_per_bit_mm")
            if isinstance(getattr(self, f), bool) or not isinstance(getattr(self, f), int | float)
            or not math.isfinite(getattr(self, f)) or getattr(self, f) < 0
        ]
        if problems:
            raise ValueError("invalid EnergyModel: " + "; ".join(problems))

    def mac_pj(self, w_bits: int, a_bits: int, acc_bits: int = 32) -> float:
        """Energy of one (w_bits x a_bits) MAC with an ``acc_bits`` accumulator, pJ:
        multiplier (~ w*a) + accumulator adder (~ acc_bits)."""
        for name, b, hi in (("w_bits", w_bits, 32), ("a_bits", a_bits, 32),
                            ("acc_bits", acc_bits, 64)):
            if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= hi:
                raise ValueError(f"{name}={b!r} is not allowed; expected an integer in 1..{hi}")
        return (self.mult_pj_per_bit2 * (w_bits * a_bits)
                + self.add_pj_fixed + self.add_pj_per_bit * acc_bits)

    def mac_pj_on(self, op_bits: tuple[int, int], mac_bits: tuple[int, int], *,
                  high_precision: str = "configurable", acc_bits: int = 32) -> float:
        """Energy of one ``op_bits`` = (w, a) MAC of a layer on an array of ``mac_bits`` MACs, pJ.

        At or below the MAC precision: one array MAC, ``mac_pj(mw, ma)`` (narrow data still toggles
        the full-width MAC). Above it (w, a = element-wise max):
        * ``"configurable"``: the MAC reconfigures into one (w, a) multiplier, ``mac_pj(w, a)``;
        * ``"bit_serial"``: ceil(w/mw) * ceil(a/ma) passes, each a full array MAC with its
          accumulation: passes * ``mac_pj(mw, ma)``. The partial-product energy is the same as one
          wide multiply (w*a bits in all); the extra cost is the accumulation of every pass.
        """
        from arch.spec import HIGH_PRECISION_MODELS

        (ow, oa), (mw, ma) = op_bits, mac_bits
        w, a = max(ow, mw), max(oa, ma)
        if high_precision not in HIGH_PRECISION_MODELS:
            raise ValueError(f"high_precision={high_precision!r} is not allowed; expected one of "
                             f"{', '.join(HIGH_PRECISION_MODELS)}")
        if high_precision == "configurable" or (w, a) == (mw, ma):
            return self.mac_pj(w, a, acc_bits)
        passes = math.ceil(w / mw) * math.ceil(a / ma)
        return passes * self.mac_pj(mw, ma, acc_bits)

    def sram_pj(self, n_bits: float) -> float:
        """Energy of reading or writing ``n_bits`` of on-chip SRAM, pJ."""
        return self.sram_pj_per_bit * n_bits

    def dram_pj(self, n_bits: float) -> float:
        """Energy of transferring ``n_bits`` to or from DRAM, pJ."""
        return self.dram_pj_per_bit * n_bits

    def static_w(self, area_mm2: float) -> float:
        """Leakage power of ``area_mm2`` of silicon, W (0 unless ``static_w_per_mm2`` is set)."""
        return self.static_w_per_mm2 * area_mm2


def default_energy_model(node_nm: float = 14.0, *, sram_bank_kib: float = SRAM_BANK_KIB,
                         dram_pj_per_bit: float = DRAM_PJ_PER_BIT,
                         static_w_per_mm2: float = 0.0) -> EnergyModel:
    """Horowitz's 45 nm energies scaled to ``node_nm`` (on-chip only; see the module docstring)."""
    s = technology(node_nm).energy_scale
    return EnergyModel(
        node_nm=node_nm,
        mult_pj_per_bit2=MULT_PJ_PER_BIT2_45NM * s,
        add_pj_per_bit=ADD_PJ_PER_BIT_45NM * s,
        add_pj_fixed=ADD_PJ_FIXED_45NM * s,
        sram_pj_per_bit=sram_pj_per_bit_45nm(sram_bank_kib) * s,
        dram_pj_per_bit=dram_pj_per_bit,
        static_w_per_mm2=static_w_per_mm2,
    )


def chip_power_w(energy_by_component: Mapping[str, float], latency_s: float, *,
                 parts: Iterable[str] = ON_CHIP_PARTS) -> dict[str, float]:
    """Average power of each of ``parts`` over ``latency_s`` (energy / time, W), plus ``total``.

    ``energy_by_component``: joules by part, as `dse.sim.SimResult.energy_by_component` gives them
    (``mac``, ``sram``, ``dram`` and, with leakage set, ``static``); a part it lacks counts 0 W.
    The default ``parts`` are what a synthesised chip's power report covers: its MACs, its SRAM
    and its leakage, not the off-chip DRAM.
    """
    if isinstance(latency_s, bool) or not isinstance(latency_s, int | float) \
            or not math.isfinite(latency_s) or latency_s <= 0:
        raise ValueError(f"latency_s={latency_s!r} is not allowed; expected a finite number > 0")
    names = tuple(parts)
    if parts is ON_CHIP_PARTS and "noc" in energy_by_component:
        names = (*names[:-1], "noc", names[-1])  # the network is on chip as well
    bad = [p for p in names if not isinstance(p, str)]
    if bad or not names:
        raise ValueError(f"parts={names!r} is not allowed; expected names of energy parts, e.g. "
                         f"{', '.join(ON_CHIP_PARTS)}")
    out = {p: float(energy_by_component.get(p, 0.0)) / latency_s for p in names}
    out["total"] = sum(out.values())
    return out

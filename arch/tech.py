"""Technology nodes: how area and energy move from the 45 nm anchors to the node a design uses.

The area and energy anchors of `arch.area` and `arch.energy` are 45 nm numbers (Bit Fusion's PE
synthesis, Horowitz's ISSCC 2014 table). A design states its node (``Accelerator.node_nm``); this
module scales the anchors to it with first-order rules, stated here once:

* Logic area scales ideally, ``(node / 45)^2``. Intel's published transistor densities
  (45 nm 3.3 MTr/mm^2, 14 nm 37.5 MTr/mm^2; recalled) give 0.088 for 45 -> 14 nm against the ideal
  0.097, so the rule is close down to 14 nm and optimistic below 10 nm.
* SRAM area does NOT scale ideally (bitcells shrink more slowly than logic), so each node carries
  its published high-density 6T bitcell area, and an array efficiency turns cells into macros.
* Dynamic energy scales as C*V^2 with C proportional to the feature size:
  ``E(node) = E(45) * (node / 45) * (vdd / 0.9 V)^2`` (Horowitz's table is at 45 nm, 0.9 V).
  This is the classic first-order rule; Stillmaker & Baas (Integration 2017) fit per-node factors
  that are within ~1.5x of it between 45 and 14 nm.
* DRAM energy per bit is an off-chip interface property and is not scaled with the logic node.

Bitcell areas are the foundries' published high-density 6T cells; they are recalled from the cited
conference papers and announcements, not re-measured here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ANCHOR_NODE_NM", "ANCHOR_VDD_V", "SRAM_ARRAY_EFFICIENCY", "TECHNOLOGIES", "Technology",
           "technology"]

ANCHOR_NODE_NM = 45.0
"""Node of the area and energy anchors (Bit Fusion synthesis, Horowitz ISSCC 2014)."""

ANCHOR_VDD_V = 0.9
"""Supply voltage of Horowitz's 45 nm energy table."""

SRAM_ARRAY_EFFICIENCY = 0.6
"""Fraction of an SRAM macro's area that is bitcells (the rest: decoders, sense amplifiers, IO,
redundancy). An assumption in the 0.5-0.7 range usual for 64-512 KiB macros; with it the LLSQ
40 nm design (Table 5) comes out within 10% of its published absolute area (see tests)."""


@dataclass(frozen=True, slots=True)
class Technology:
    """One CMOS node: its name, nominal supply and published high-density 6T SRAM bitcell."""

    node_nm: float
    vdd_v: float
    sram_bitcell_um2: float
    source: str

    def __post_init__(self) -> None:
        for name in ("node_nm", "vdd_v", "sram_bitcell_um2"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < 1e3:
                raise ValueError(f"{name}={v!r} is not allowed; expected a number in (0, 1000)")

    @property
    def logic_area_scale(self) -> float:
        """Logic area relative to 45 nm: ideal (node/45)^2."""
        return (self.node_nm / ANCHOR_NODE_NM) ** 2

    @property
    def energy_scale(self) -> float:
        """Dynamic energy relative to 45 nm, 0.9 V: (node/45) * (vdd/0.9)^2 (C*V^2, C ~ node)."""
        return (self.node_nm / ANCHOR_NODE_NM) * (self.vdd_v / ANCHOR_VDD_V) ** 2

    @property
    def sram_mm2_per_mib(self) -> float:
        """SRAM macro area per MiB: bitcell * 2^23 bits / array efficiency."""
        return self.sram_bitcell_um2 * 8 * 2**20 / SRAM_ARRAY_EFFICIENCY * 1e-6


TECHNOLOGIES: dict[float, Technology] = {
    t.node_nm: t
    for t in (
        Technology(45.0, 0.9, 0.346,
                   "Intel 45 nm HD 6T cell 0.346 um^2 (Mistry et al., IEDM 2007)"),
        Technology(40.0, 0.9, 0.242, "TSMC 40 nm 6T cell 0.242 um^2 (TSMC 40G/LP announcement)"),
        Technology(28.0, 0.9, 0.127,
                   "TSMC 28 nm HD 6T cell 0.127 um^2 (28LP platform, Wu et al. 2009)"),
        Technology(22.0, 0.8, 0.092, "Intel 22 nm HD 6T cell 0.092 um^2 (Auth et al., VLSI 2012)"),
        Technology(16.0, 0.8, 0.070, "TSMC 16 nm FinFET 6T cell 0.070 um^2 (Wu et al., IEDM 2013)"),
        Technology(14.0, 0.8, 0.0588,
                   "Intel 14 nm HD 6T cell 0.0588 um^2 (Natarajan et al., IEDM 2014)"),
        Technology(7.0, 0.75, 0.027, "TSMC N7 HD 6T cell 0.027 um^2 (Wu et al., IEDM 2016)"),
    )
}
"""Supported nodes, keyed by ``node_nm``."""


def technology(node_nm: float) -> Technology:
    """The `Technology` of ``node_nm``; ValueError listing the supported nodes otherwise."""
    tech = TECHNOLOGIES.get(node_nm) if isinstance(node_nm, int | float) else None
    if tech is None or isinstance(node_nm, bool):
        known = ", ".join(f"{n:g}" for n in sorted(TECHNOLOGIES))
        raise ValueError(f"node_nm={node_nm!r} is not allowed; expected one of {known} (nm)")
    return tech

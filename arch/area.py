"""Area model: MAC area by precision (PACT-SAWB Fig. 7b), per-core overheads, accelerator area.

MAC area [derived in ../shared/MODELING.md from two anchors]:
    a(bw, ba) = bw*ba + 1.146*(bw + ba) + 13.27, normalised by a(16, 16) = 306.0
fitted to a(16,16)/a(2,2) = 14.0 (PACT-SAWB paper Fig. 7b, 14 nm, MAC incl. accumulator) and
a(16,16)/a(8,8) = 3.2 (Bit Fusion, Sharma et al. ISCA 2018, 45 nm PE synthesis).

Core area (mm^2) = MAC array + control + SRAM:
    mac_array = rows * cols * mac_area(w, a) * A16(node)
    control   = CORE_CONTROL_FRACTION * rows * cols * A16(node)      (precision independent)
    sram      = sram_kib / 1024 * sram_mm2_per_mib(node)
with A16(45 nm) = MAC16_UM2_45NM scaled by `arch.tech` (logic (node/45)^2, SRAM by bitcell).

Peak scaling at iso-area (`iso_area_cores`), two rules (`arch.spec.PEAK_SCALINGS`):
* ``"density"``: as many cores as the area model fits in the budget.
* ``"doubling"``: the paper's "2x per halving of precision" (Section 7.1): the budget sizes the
  16-bit reference system (n16 cores) and a (w, a) system gets floor(n16 * 16 / b_eff) cores with
  b_eff = (w + a) / 2. Doubling is exactly the scaling of a MAC whose area is linear in its operand
  bits; for such a MAC the area of a (w, a) unit is proportional to w + a, hence the arithmetic mean
  for mixed precision (W2A4 -> b_eff = 3). Where the rule would exceed the budget by the area model
  (below 2 bits) the count is capped to the density count and a warning is logged.
With the total SRAM held constant (the paper's setup) SRAM cancels out of the iso-area balance, so
CORE_CONTROL_FRACTION is what separates the two rules; it is calibrated so that the density rule
also gives 64 cores at 2-bit for a budget of 8 16-bit cores (the paper's 8 -> 64 TOPS).
"""

from __future__ import annotations

import logging
import math
from typing import Protocol

from arch.tech import technology


class _Design(Protocol):
    """What the area of a design depends on (an `arch.Accelerator`; this module does not import
    arch.spec, which builds on it)."""

    @property
    def cores(self) -> int: ...
    @property
    def rows(self) -> int: ...
    @property
    def cols(self) -> int: ...
    @property
    def mac_bits(self) -> tuple[int, int]: ...
    @property
    def sram_kib(self) -> float: ...
    @property
    def node_nm(self) -> float: ...


HIGH_PRECISION_MODELS = ("bit_serial", "configurable")
"""How a layer whose bits exceed the MAC precision runs (see `dse` docs):

* ``bit_serial``: Bit Fusion-style composition, ceil(w/mw) * ceil(a/ma) passes over the array.
* ``configurable``: a precision-configurable MAC whose high-precision throughput follows the
  design's ``peak_scaling`` rule at iso-area: slowed by area(w, a) / area(mw, ma) under
  ``"density"``, by b_eff(w, a) / b_eff(mw, ma) with b_eff = (w + a) / 2 under ``"doubling"``
  (so a 16-bit layer on the paper's 64-core 2-bit system runs at the 8-core 16-bit system's peak).
See `arch.area.precision_slowdown` and `Accelerator.precision_slowdown`.
"""

PEAK_SCALINGS = ("doubling", "density")
"""How iso-area core count scales with precision: the paper's 2x per halving, or the area model
(`arch.area`). A design records the rule that sized it (``Accelerator.peak_scaling``); the rule
also sets the throughput of a ``configurable`` MAC at a precision above its own."""

MAX_COUNT = 1_000_000
"""Upper bound on ``cores``, ``rows`` and ``cols``: the largest chip built, the wafer-scale
Cerebras WSE-3 (46,225 mm^2, nearly a whole 300 mm wafer), has 900,000 cores; a million is beyond
any physical design and keeps every derived count (MACs, bytes, mm^2) a finite float."""

__all__ = [
    "CORE_CONTROL_FRACTION",
    "MAC16_UM2_45NM",
    "MAX_AREA_MM2",
    "REFERENCE_BITS",
    "accelerator_area_breakdown_mm2",
    "accelerator_area_mm2",
    "bits_pair",
    "core_area_breakdown_mm2",
    "core_area_mm2",
    "doubling_effective_bits",
    "iso_area_cores",
    "mac_area",
    "mac_area_mm2",
    "precision_slowdown",
    "sram_area_mm2",
]

log = logging.getLogger(__name__)

_MULT = 1.0  # bw*ba term: partial-product array of a bw x ba multiplier
_LIN = 1.146  # bw + ba term: operand registers and adder width
_CONST = 13.27  # accumulator, pipeline registers and control, independent of operand bits
_NORM = 16 * 16 + _LIN * 32 + _CONST  # a(16, 16) = 306.0

MAC16_UM2_45NM = 2203.0
"""Area of one 16x16-bit MAC PE incl. accumulator at 45 nm, um^2: Bit Fusion (Sharma et al.,
ISCA 2018) synthesis of fixed-precision PEs (2b 124.9, 4b 282.2, 8b 687.6, 16b 2203 um^2), as quoted
in ../shared/MODELING.md. The same data give the 3.2x 16->8-bit anchor of `mac_area`."""

REFERENCE_BITS = 16
"""Precision of the reference system whose core count the budget sizes under ``"doubling"``."""

MAX_AREA_MM2 = 1e6
"""Upper bound on an iso-area budget, mm^2: a 300 mm wafer is 70,686 mm^2 and the largest chip
built (Cerebras WSE-3) 46,225 mm^2; 1e6 mm^2 (one square metre) is beyond any package and keeps
the core count it sizes a finite number (which `arch.spec.MAX_COUNT` then bounds)."""

_PAPER_CORES_16, _PAPER_CORES_2 = 8, 64  # PACT-SAWB Section 7.1: 8 TOPS @16b ... 64 TOPS @2b


def mac_area(w_bits: int, a_bits: int) -> float:
    """Area of one (w_bits x a_bits) MAC incl. accumulator, relative to a 16x16-bit MAC (= 1.0)."""
    for name, b in (("w_bits", w_bits), ("a_bits", a_bits)):
        if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= 32:
            raise ValueError(f"{name}={b!r} is not allowed; expected an integer in 1..32")
    return (_MULT * w_bits * a_bits + _LIN * (w_bits + a_bits) + _CONST) / _NORM


CORE_CONTROL_FRACTION = (
    (_PAPER_CORES_16 * 1.0 - _PAPER_CORES_2 * mac_area(2, 2)) / (_PAPER_CORES_2 - _PAPER_CORES_16)
)
"""Per-core, precision-independent logic (sequencer, DMA engine, NoC port, accumulator read-out),
as a fraction of the core's 16-bit MAC-array area. [derived] Calibrated on PACT-SAWB Section 7.1:
iso-area with constant total SRAM, 8 * (1 + c) = 64 * (mac_area(2, 2) + c) gives c = 0.0612."""


def bits_pair(mac_bits: int | tuple[int, int], field: str = "mac_bits") -> tuple[int, int]:
    """Normalise ``b`` or ``(w, a)`` to ``(w, a)``, validating 1..32."""
    pair = (mac_bits, mac_bits) if isinstance(mac_bits, int) else mac_bits
    if (isinstance(mac_bits, bool) or not isinstance(pair, tuple | list) or len(pair) != 2
            or not all(isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= 32
                       for b in pair)):
        raise ValueError(f"{field}={mac_bits!r} is not allowed; expected an integer in 1..32 or a "
                         "tuple (weight_bits, act_bits) of two such integers")
    return int(pair[0]), int(pair[1])


def _positive(field: str, value: object, *, integer: bool = False, zero: bool = False) -> None:
    ok_type = int if integer else (int, float)
    if isinstance(value, ok_type) and not isinstance(value, bool) and math.isfinite(value) \
            and (value >= 0 if zero else value > 0):
        return
    kind = "an integer" if integer else "a finite number"
    raise ValueError(f"{field}={value!r} is not allowed; expected {kind} {'>=' if zero else '>'} 0")


def mac_area_mm2(mac_bits: int | tuple[int, int], node_nm: float = 14.0) -> float:
    """Absolute area of one MAC (incl. accumulator) at ``node_nm``, mm^2."""
    w, a = bits_pair(mac_bits)
    return mac_area(w, a) * MAC16_UM2_45NM * technology(node_nm).logic_area_scale * 1e-6


def sram_area_mm2(sram_kib: float, node_nm: float = 14.0) -> float:
    """Area of ``sram_kib`` KiB of SRAM macros at ``node_nm`` (see `arch.tech`), mm^2."""
    _positive("sram_kib", sram_kib, zero=True)
    return sram_kib / 1024.0 * technology(node_nm).sram_mm2_per_mib


def core_area_breakdown_mm2(rows: int, cols: int, mac_bits: int | tuple[int, int],
                            sram_kib: float = 0.0, *, node_nm: float = 14.0) -> dict[str, float]:
    """One core's area split into ``mac_array``, ``control`` and ``sram`` (mm^2)."""
    _positive("rows", rows, integer=True)
    _positive("cols", cols, integer=True)
    a16_mm2 = MAC16_UM2_45NM * technology(node_nm).logic_area_scale * 1e-6
    return {
        "mac_array": rows * cols * mac_area_mm2(mac_bits, node_nm),
        "control": CORE_CONTROL_FRACTION * rows * cols * a16_mm2,
        "sram": sram_area_mm2(sram_kib, node_nm),
    }


def core_area_mm2(rows: int, cols: int, mac_bits: int | tuple[int, int],
                  sram_kib: float = 0.0, *, node_nm: float = 14.0) -> float:
    """Area of one core: rows x cols MAC array, its control and ``sram_kib`` KiB of SRAM, mm^2."""
    return sum(core_area_breakdown_mm2(rows, cols, mac_bits, sram_kib, node_nm=node_nm).values())


def accelerator_area_breakdown_mm2(acc: _Design) -> dict[str, float]:
    """Whole-accelerator area by component (``mac_array``, ``control``, ``sram``), mm^2."""
    if getattr(acc, "core_groups", ()):  # heterogeneous: each group sized like a design of its own
        out = dict.fromkeys(("mac_array", "control", "sram"), 0.0)
        for group in acc.groups():  # type: ignore[attr-defined]
            for k, v in accelerator_area_breakdown_mm2(group).items():
                out[k] += v
        return out
    per_core = core_area_breakdown_mm2(acc.rows, acc.cols, acc.mac_bits, acc.sram_kib,
                                       node_nm=acc.node_nm)
    return {k: acc.cores * v for k, v in per_core.items()}


def accelerator_area_mm2(acc: _Design) -> float:
    """Silicon area of ``acc``: cores x (MAC array + control + per-core SRAM), mm^2.

    Chip-level blocks shared by all cores (DRAM PHY, host interface) are not modelled; they are the
    same for every design compared at iso-area and cancel out of the sizing.
    """
    return sum(accelerator_area_breakdown_mm2(acc).values())


def doubling_effective_bits(mac_bits: int | tuple[int, int]) -> float:
    """b_eff = (w + a) / 2, the precision the ``"doubling"`` rule scales by (module docstring)."""
    w, a = bits_pair(mac_bits)
    return (w + a) / 2.0


def _fit(budget: float, per_core: float) -> int:
    # A tiny relative tolerance so that a budget computed as exactly n cores is not rounded to n-1.
    return math.floor(budget / per_core * (1.0 + 1e-9))


def iso_area_cores(area_budget: float, mac_bits: int | tuple[int, int], *,
                   peak_scaling: str = "doubling", rows: int = 8, cols: int = 64,
                   node_nm: float = 14.0, sram_kib: float = 0.0,
                   total_sram_kib: float | None = None) -> int:
    """Number of ``rows x cols`` cores of precision ``mac_bits`` for ``area_budget`` mm^2.

    SRAM: with ``total_sram_kib`` the chip has that much SRAM whatever the core count (the paper's
    setup; ``sram_kib`` is then ignored); otherwise every core carries ``sram_kib`` KiB.
    ValueError if the budget cannot hold one core (at ``mac_bits``, or at 16-bit for doubling).
    """
    if peak_scaling not in PEAK_SCALINGS:
        raise ValueError(f"peak_scaling={peak_scaling!r} is not allowed; expected one of "
                         f"{', '.join(PEAK_SCALINGS)}")
    _positive("area_budget", area_budget)
    if area_budget > MAX_AREA_MM2:
        raise ValueError(f"area_budget={area_budget!r} mm^2 is not allowed; expected at most "
                         f"{MAX_AREA_MM2:g} mm^2 (about 14 whole 300 mm wafers; "
                         "see arch.area.MAX_AREA_MM2)")
    bits = bits_pair(mac_bits)
    if total_sram_kib is not None:
        _positive("total_sram_kib", total_sram_kib)
        fixed, core_sram = sram_area_mm2(total_sram_kib, node_nm), 0.0
    else:
        fixed, core_sram = 0.0, sram_kib
    left = area_budget - fixed
    per_core = core_area_mm2(rows, cols, bits, core_sram, node_nm=node_nm)
    n_density = _fit(left, per_core) if left > 0 else 0
    if n_density < 1:
        raise ValueError(
            f"area_budget={area_budget!r} mm^2 is too small for one {rows}x{cols} core of "
            f"mac_bits={bits} ({per_core:.4g} mm^2 + {fixed:.4g} mm^2 shared SRAM); allowed: "
            f">= {per_core + fixed:.4g} mm^2")
    if n_density > MAX_COUNT:
        raise ValueError(
            f"area_budget={area_budget!r} mm^2 holds {n_density} {rows}x{cols} cores of "
            f"mac_bits={bits}; expected a budget of at most {MAX_COUNT} cores "
            f"(<= {MAX_COUNT * per_core + fixed:.4g} mm^2; see arch.spec.MAX_COUNT)")
    if peak_scaling == "density":
        return n_density
    ref_core = core_area_mm2(rows, cols, REFERENCE_BITS, core_sram, node_nm=node_nm)
    n_ref = _fit(left, ref_core) if left > 0 else 0
    if n_ref < 1:
        raise ValueError(
            f"area_budget={area_budget!r} mm^2 is too small for one {REFERENCE_BITS}-bit "
            f"{rows}x{cols} reference core ({ref_core:.4g} mm^2 + {fixed:.4g} mm^2 shared SRAM), "
            f"which the 'doubling' rule scales from; allowed: >= {ref_core + fixed:.4g} mm^2")
    n = math.floor(n_ref * REFERENCE_BITS / doubling_effective_bits(bits) * (1.0 + 1e-9))
    if n > n_density:
        log.warning("doubling rule gives %d cores of mac_bits=%s but only %d fit in %.4g mm^2; "
                    "capped to %d", n, bits, n_density, area_budget, n_density)
        n = n_density
    return max(n, 1)  # n_density >= 1 here, so one core always fits


def precision_slowdown(op_bits: int | tuple[int, int], mac_bits: int | tuple[int, int], *,
                       high_precision: str = "configurable",
                       peak_scaling: str = "doubling") -> float:
    """Array cycles per MAC of precision ``op_bits`` on MACs of ``mac_bits``, relative to 1 (>= 1).

    Operand bits at or below the MAC precision run at the MAC rate (no speed-up from narrower data).
    Above it, with (w, a) = (max(ow, mw), max(oa, ma)):
    * ``bit_serial``: ceil(w / mw) * ceil(a / ma) passes (Bit Fusion composition; 16x16 on 2x2:
      64);
    * ``configurable``, ``peak_scaling="density"``: mac_area(w, a) / mac_area(mw, ma) (iso-area
      throughput by the area model; 16x16 on 2x2 = 14.0);
    * ``configurable``, ``peak_scaling="doubling"``: b_eff(w, a) / b_eff(mw, ma), b_eff = (w + a)/2
      (the paper's 2x per halving applied to the ops themselves; 16x16 on 2x2 = 8.0, so the 2-bit
      system runs 16-bit layers at the peak of the 16-bit system of the same area).
    """
    ow, oa = bits_pair(op_bits, "op_bits")
    mw, ma = bits_pair(mac_bits)
    w, a = max(ow, mw), max(oa, ma)
    if high_precision not in HIGH_PRECISION_MODELS:
        raise ValueError(f"high_precision={high_precision!r} is not allowed; expected one of "
                         f"{', '.join(HIGH_PRECISION_MODELS)}")
    if peak_scaling not in PEAK_SCALINGS:
        raise ValueError(f"peak_scaling={peak_scaling!r} is not allowed; expected one of "
                         f"{', '.join(PEAK_SCALINGS)}")
    if (w, a) == (mw, ma):
        return 1.0
    if high_precision == "bit_serial":
        return float(math.ceil(w / mw) * math.ceil(a / ma))
    if peak_scaling == "density":
        return mac_area(w, a) / mac_area(mw, ma)
    return doubling_effective_bits((w, a)) / doubling_effective_bits((mw, ma))

"""`Accelerator`: a multi-core systolic-array accelerator with shared DRAM, as a frozen value.

The template is the PACT-SAWB paper's Fig. 7(a) (Section 7.1): ``cores`` cores, each a
``rows x cols`` 2D systolic array of fixed-point MACs of precision ``mac_bits = (w, a)`` with its own
scratchpad of ``sram_kib`` KiB (one pool per core, shared by inputs, weights and outputs; the
simulator partitions it per tile), all sharing one external DRAM of ``dram_gbps`` GB/s.

Vary designs with ``dataclasses.replace``; every field is validated on construction and a bad value
raises ValueError naming the field, the value and the allowed range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DATAFLOWS", "HIGH_PRECISION_MODELS", "PEAK_SCALINGS", "Accelerator"]

DATAFLOWS = ("os", "ws", "is")
"""Output-, weight- and input-stationary (SCALE-Sim's three dataflows)."""

HIGH_PRECISION_MODELS = ("bit_serial", "configurable")
"""How a layer whose bits exceed the MAC precision runs (see `dse` docs):

* ``bit_serial``: Bit Fusion-style composition, ceil(w/mw) * ceil(a/ma) passes over the array.
* ``configurable``: a precision-configurable MAC whose high-precision throughput is the iso-area
  throughput of the area model, i.e. slowed by area(w, a) / area(mw, ma).
"""

PEAK_SCALINGS = ("doubling", "density")
"""How iso-area core count scales with precision: the paper's 2x per halving, or the area model."""


@dataclass(frozen=True, slots=True)
class Accelerator:
    """A multi-core systolic-array accelerator.

    Units are in the names: ``sram_kib`` is per core, ``dram_gbps`` is GB/s (1e9 bytes/s) and may be
    ``float("inf")``, ``dram_latency_ns`` is the fixed latency of one DRAM transfer.
    """

    cores: int
    rows: int = 8
    cols: int = 64
    mac_bits: tuple[int, int] = (16, 16)
    freq_ghz: float = 1.5
    sram_kib: float = 2048.0
    dram_gbps: float = 32.0
    dataflow: str = "os"
    acc_bits: int = 32
    dram_latency_ns: float = 100.0
    high_precision: str = "configurable"
    name: str = ""

    def __post_init__(self) -> None:
        problems: list[str] = []

        def bad(fieldname: str, value: object, allowed: str) -> None:
            problems.append(f"{fieldname}={value!r} is not allowed; {allowed}")

        for f in ("cores", "rows", "cols"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                bad(f, v, "expected an integer >= 1")
        mb = self.mac_bits
        if (not isinstance(mb, tuple) or len(mb) != 2
                or not all(isinstance(b, int) and not isinstance(b, bool) for b in mb)):
            bad("mac_bits", mb, "expected a tuple (weight_bits, act_bits) of two integers")
        elif not all(1 <= b <= 32 for b in mb):
            bad("mac_bits", mb, "each of (weight_bits, act_bits) must be in 1..32")
        if isinstance(self.acc_bits, bool) or not isinstance(self.acc_bits, int) \
                or not 1 <= self.acc_bits <= 64:
            bad("acc_bits", self.acc_bits, "expected an integer in 1..64")
        if not (isinstance(self.freq_ghz, int | float) and math.isfinite(self.freq_ghz)
                and self.freq_ghz > 0):
            bad("freq_ghz", self.freq_ghz, "expected a finite number > 0")
        if not (isinstance(self.sram_kib, int | float) and math.isfinite(self.sram_kib)
                and self.sram_kib > 0):
            bad("sram_kib", self.sram_kib, "expected a finite number of KiB per core > 0")
        if not (isinstance(self.dram_gbps, int | float) and not math.isnan(self.dram_gbps)
                and self.dram_gbps > 0):
            bad("dram_gbps", self.dram_gbps, "expected GB/s > 0 (float('inf') for unlimited)")
        if not (isinstance(self.dram_latency_ns, int | float)
                and math.isfinite(self.dram_latency_ns) and self.dram_latency_ns >= 0):
            bad("dram_latency_ns", self.dram_latency_ns, "expected a finite number >= 0")
        if self.dataflow not in DATAFLOWS:
            bad("dataflow", self.dataflow, f"expected one of {', '.join(DATAFLOWS)}")
        if self.high_precision not in HIGH_PRECISION_MODELS:
            bad("high_precision", self.high_precision,
                f"expected one of {', '.join(HIGH_PRECISION_MODELS)}")
        if problems:
            raise ValueError("invalid Accelerator: " + "; ".join(problems))

    # -- derived quantities -----------------------------------------------------------------------
    @property
    def macs_per_core(self) -> int:
        return self.rows * self.cols

    @property
    def mac_count(self) -> int:
        """MAC units in the whole system."""
        return self.cores * self.rows * self.cols

    @property
    def freq_hz(self) -> float:
        return self.freq_ghz * 1e9

    @property
    def peak_ops_per_s(self) -> float:
        """Peak ops/s at the MAC precision (1 MAC = 2 ops)."""
        return 2.0 * self.mac_count * self.freq_hz

    @property
    def peak_macs_per_s(self) -> float:
        return self.mac_count * self.freq_hz

    @property
    def sram_bytes_per_core(self) -> int:
        return int(self.sram_kib * 1024)

    @property
    def sram_bytes_total(self) -> int:
        return self.cores * self.sram_bytes_per_core

    @property
    def dram_bytes_per_s(self) -> float:
        return self.dram_gbps * 1e9

    @property
    def area(self) -> float:
        """Silicon area in mm^2 (MAC arrays + per-core SRAM and control), from `arch.area`."""
        from arch.area import accelerator_area_mm2

        return accelerator_area_mm2(self)

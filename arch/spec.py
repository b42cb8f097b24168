"""`Accelerator`: a multi-core systolic-array accelerator with shared DRAM, as a frozen value.

The template is the PACT-SAWB paper's Fig. 7(a) (Section 7.1): ``cores`` cores, each a
``rows x cols`` 2D systolic array of fixed-point MACs of precision ``mac_bits = (w, a)`` with its
own scratchpad of ``sram_kib`` KiB (one pool per core, shared by inputs, weights and outputs; the
simulator partitions it per tile), all sharing one external DRAM of ``dram_gbps`` GB/s.

``mac_bits`` may be given as one integer (same bits for weights and activations) or a list; it is
stored as a tuple ``(weight_bits, act_bits)``. Vary designs with ``dataclasses.replace``; every
field is validated on construction and a bad value raises ValueError naming the field, the value and
the allowed range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from arch.area import (
    HIGH_PRECISION_MODELS,
    MAX_COUNT,
    PEAK_SCALINGS,
    accelerator_area_breakdown_mm2,
    accelerator_area_mm2,
    bits_pair,
    iso_area_cores,
    precision_slowdown,
)
from arch.groups import NOC_TOPOLOGIES, CoreGroup, describe_groups
from arch.tech import TECHNOLOGIES

__all__ = ["BUFFER_KINDS", "DATAFLOWS", "DRAM_CHANNEL_MAPS", "HIGH_PRECISION_MODELS",
           "PEAK_SCALINGS", "TILE_POLICIES", "Accelerator"]

DATAFLOWS = ("os", "ws", "is")
"""Output-, weight- and input-stationary (SCALE-Sim's three dataflows)."""

BUFFER_KINDS = ("unified", "split")
"""Per-core on-chip buffers: ``unified`` - one ``sram_kib`` pool shared by inputs, weights and
outputs (the simulator partitions it per tile); ``split`` - separate ifmap / filter / ofmap buffers
of ``ifmap_kib`` / ``filter_kib`` / ``ofmap_kib`` (SCALE-Sim's organisation); ``sram_kib`` is then
their sum."""

TILE_POLICIES = ("best", "scalesim")
"""How a core tiles a layer into its buffers: ``best`` - qdse picks, per layer, the stationary
operand, block size and buffering with the least time (`dse.sim.mapping.tile_gemm`); ``scalesim``
- SCALE-Sim v3's fixed fold order and its buffers' sliding windows, re-fetches included
(`dse.sim.scalesim_tiles`; needs split buffers and one core)."""

DRAM_CHANNEL_MAPS = ("interleaved", "by_operand")
"""How traffic uses the ``dram_channels`` channels (``dram_gbps`` is their sum): ``interleaved`` -
addresses interleave over all channels at burst granularity, so every transfer spreads over all of
them; ``by_operand`` - ifmap, filter and ofmap traffic each have their own channel (channel index
0, 1, 2 modulo the count), as SCALE-Sim's separate backing-store ports."""


@dataclass(frozen=True, slots=True)
class Accelerator:
    """A multi-core systolic-array accelerator.

    Units are in the names: ``sram_kib`` is per core, ``dram_gbps`` is GB/s (1e9 bytes/s) and may be
    ``float("inf")``, ``dram_latency_ns`` is the fixed latency of one DRAM transfer, ``node_nm`` the
    CMOS node that area and energy are scaled to (one of `arch.tech.TECHNOLOGIES`; 14 nm is the
    PACT-SAWB paper's MAC implementation and the IBM core it builds on). ``peak_scaling`` is the
    rule that sized the design (set by `iso_area`) and that a configurable MAC follows above its
    precision (see `HIGH_PRECISION_MODELS`).
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
    node_nm: float = 14.0
    peak_scaling: str = "doubling"
    # -- memory hierarchy (docs/arch.md, "Memory hierarchy") ---------------------------------------
    buffers: str = "unified"
    ifmap_kib: float = 0.0
    filter_kib: float = 0.0
    ofmap_kib: float = 0.0
    double_buffered: bool = True
    global_buffer_kib: float = 0.0
    global_buffer_bytes_per_cycle: float = math.inf
    dram_burst_bytes: int = 64
    dram_channels: int = 1
    dram_channel_map: str = "interleaved"
    tile_policy: str = "best"
    # core groups and the on-chip network between them (`arch.groups`)
    core_groups: tuple[CoreGroup, ...] = ()
    noc: str = "none"
    noc_bytes_per_cycle: float = math.inf
    noc_hop_cycles: float = 1.0
    noc_multicast: bool = True

    def __post_init__(self) -> None:
        problems: list[str] = []

        def bad(fieldname: str, value: object, allowed: str) -> None:
            problems.append(f"{fieldname}={value!r} is not allowed; {allowed}")

        for f in ("cores", "rows", "cols"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                bad(f, v, "expected an integer >= 1")
            elif v > MAX_COUNT:
                bad(f, v, f"expected an integer in 1..{MAX_COUNT} (more than any chip holds; "
                    "see arch.spec.MAX_COUNT)")
        given = mb = self.mac_bits
        if isinstance(mb, int) and not isinstance(mb, bool) and 1 <= mb <= 32:
            mb = (mb, mb)  # one precision for weights and activations
        elif isinstance(mb, list):
            mb = tuple(mb)
        object.__setattr__(self, "mac_bits", mb)
        if not (isinstance(mb, tuple) and len(mb) == 2
                and all(isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= 32
                        for b in mb)):
            bad("mac_bits", given, "expected an integer in 1..32 or a tuple (weight_bits, "
                "act_bits) of two integers in 1..32")
        if isinstance(self.acc_bits, bool) or not isinstance(self.acc_bits, int) \
                or not 1 <= self.acc_bits <= 64:
            bad("acc_bits", self.acc_bits, "expected an integer in 1..64")
        def number(v: object) -> bool:  # int or float, not bool (True is not a clock)
            return isinstance(v, int | float) and not isinstance(v, bool)

        if not (number(self.freq_ghz) and math.isfinite(self.freq_ghz) and self.freq_ghz > 0):
            bad("freq_ghz", self.freq_ghz, "expected a finite number > 0")
        if not (number(self.sram_kib) and math.isfinite(self.sram_kib) and self.sram_kib > 0):
            bad("sram_kib", self.sram_kib, "expected a finite number of KiB per core > 0")
        if not (number(self.dram_gbps) and not math.isnan(self.dram_gbps)
                and self.dram_gbps > 0):
            bad("dram_gbps", self.dram_gbps, "expected GB/s > 0 (float('inf') for unlimited)")
        if not (number(self.dram_latency_ns)
                and math.isfinite(self.dram_latency_ns) and self.dram_latency_ns >= 0):
            bad("dram_latency_ns", self.dram_latency_ns, "expected a finite number >= 0")
        if self.dataflow not in DATAFLOWS:
            bad("dataflow", self.dataflow, f"expected one of {', '.join(DATAFLOWS)}")
        if self.high_precision not in HIGH_PRECISION_MODELS:
            bad("high_precision", self.high_precision,
                f"expected one of {', '.join(HIGH_PRECISION_MODELS)}")
        if not isinstance(self.name, str):
            bad("name", self.name, "expected a string")
        if self.peak_scaling not in PEAK_SCALINGS:
            bad("peak_scaling", self.peak_scaling, f"expected one of {', '.join(PEAK_SCALINGS)}")
        if (isinstance(self.node_nm, bool) or not isinstance(self.node_nm, int | float)
                or self.node_nm not in TECHNOLOGIES):
            bad("node_nm", self.node_nm,
                f"expected one of {', '.join(f'{n:g}' for n in sorted(TECHNOLOGIES))} (nm)")
        self._check_memory(bad, number)
        self._check_groups(bad, number)
        if problems:
            raise ValueError("invalid Accelerator: " + "; ".join(problems))

    def _check_memory(self, bad: Any, number: Any) -> None:
        """Validate the memory-hierarchy fields; split buffers set ``sram_kib`` to their sum."""
        def kib(field: str, *, zero: bool) -> bool:
            v = getattr(self, field)
            ok = number(v) and math.isfinite(v) and (v >= 0 if zero else v > 0)
            if not ok:
                bad(field, v, f"expected a finite number of KiB {'>= 0' if zero else '> 0'}")
            return bool(ok)

        if self.buffers not in BUFFER_KINDS:
            bad("buffers", self.buffers, f"expected one of {', '.join(BUFFER_KINDS)}")
        elif self.buffers == "split":
            parts = [kib(f, zero=False) for f in ("ifmap_kib", "filter_kib", "ofmap_kib")]
            if all(parts):
                object.__setattr__(self, "sram_kib",
                                   float(self.ifmap_kib + self.filter_kib + self.ofmap_kib))
        else:
            for f in ("ifmap_kib", "filter_kib", "ofmap_kib"):
                if getattr(self, f) != 0:
                    bad(f, getattr(self, f), 'expected 0 with buffers="unified" (KiB > 0 '
                        'with buffers="split", which sizes the ifmap/filter/ofmap buffers)')
        if not isinstance(self.double_buffered, bool):
            bad("double_buffered", self.double_buffered, "expected one of True, False")
        kib("global_buffer_kib", zero=True)
        gb = self.global_buffer_bytes_per_cycle
        if not (number(gb) and not math.isnan(gb) and gb > 0):
            bad("global_buffer_bytes_per_cycle", gb, "expected bytes per cycle > 0 (inf for no "
                "limit)")
        for f in ("dram_burst_bytes", "dram_channels"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                bad(f, v, "expected an integer >= 1")
        if self.tile_policy not in TILE_POLICIES:
            bad("tile_policy", self.tile_policy, f"expected one of {', '.join(TILE_POLICIES)}")
        elif self.tile_policy == "scalesim" and (self.buffers != "split" or self.cores != 1):
            bad("tile_policy", self.tile_policy, 'expected "best" unless buffers="split" and '
                "cores=1 (SCALE-Sim models one array with split buffers)")
        if self.dram_channel_map not in DRAM_CHANNEL_MAPS:
            bad("dram_channel_map", self.dram_channel_map,
                f"expected one of {', '.join(DRAM_CHANNEL_MAPS)}")

    def _check_groups(self, bad: Any, number: Any) -> None:
        """Validate ``core_groups`` (normalised to a tuple of `CoreGroup`) and the network."""
        raw = self.core_groups
        if not isinstance(raw, list | tuple):
            bad("core_groups", raw, "expected a list of core-group tables, each with cores >= 1")
            return
        try:
            groups = tuple(CoreGroup.from_value(g, i) for i, g in enumerate(raw))
        except (TypeError, ValueError) as exc:
            bad("core_groups", raw, str(exc))
            return
        object.__setattr__(self, "core_groups", groups)
        if groups and sum(g.cores for g in groups) != self.cores:
            bad("cores", self.cores, f"expected {sum(g.cores for g in groups)}, the sum of the "
                "core_groups' cores")
        if groups and self.tile_policy == "scalesim":
            bad("core_groups", "...", 'expected none with tile_policy="scalesim"')
        for i, g in enumerate(groups):
            try:
                self._group_fields(g)
            except ValueError as exc:
                bad(f"core_groups[{i}]", g.to_dict(), str(exc).removeprefix(
                    "invalid Accelerator: "))
        if self.noc not in NOC_TOPOLOGIES:
            bad("noc", self.noc, f"expected one of {', '.join(NOC_TOPOLOGIES)}")
        bw = self.noc_bytes_per_cycle
        if not (number(bw) and not math.isnan(bw) and bw > 0):
            bad("noc_bytes_per_cycle", bw, "expected bytes per cycle > 0 (inf for no limit)")
        hop = self.noc_hop_cycles
        if not (number(hop) and math.isfinite(hop) and hop >= 0):
            bad("noc_hop_cycles", hop, "expected a finite number of cycles >= 0")
        if not isinstance(self.noc_multicast, bool):
            bad("noc_multicast", self.noc_multicast, "expected one of True, False")

    def _group_fields(self, g: CoreGroup) -> Accelerator:
        return replace(self, cores=g.cores, rows=g.rows or self.rows, cols=g.cols or self.cols,
                       mac_bits=bits_pair(g.mac_bits) if g.mac_bits else self.mac_bits,
                       sram_kib=self.sram_kib if g.sram_kib is None else g.sram_kib,
                       name=g.name or self.name, core_groups=())

    def groups(self) -> tuple[Accelerator, ...]:
        """The core groups as homogeneous accelerators (one per `CoreGroup`, sharing this one's
        DRAM and every other field); a homogeneous design is its own single group."""
        if not self.core_groups:
            return (self,)
        return tuple(self._group_fields(g) for g in self.core_groups)

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def iso_area(cls, area_budget: float, mac_bits: int | tuple[int, int], *,
                 peak_scaling: str = "doubling", total_sram_kib: float | None = None,
                 **fields: Any) -> Accelerator:
        """The accelerator of precision ``mac_bits`` with the cores ``area_budget`` mm^2 holds.

        ``peak_scaling``: ``"doubling"`` (the paper's 2x per halving of precision, from the 16-bit
        system the budget holds) or ``"density"`` (the area model); see `arch.area`.
        ``total_sram_kib``: chip SRAM held constant across precisions (the paper's setup); each core
        gets ``total_sram_kib / cores``. If None, every core has ``fields["sram_kib"]`` (default
        2048 KiB) and the SRAM is replicated with the cores. ``fields``: any other field
        (rows, cols, freq_ghz, dram_gbps, dataflow, node_nm, ...). Raises ValueError if the budget
        cannot hold one core.
        """
        if "cores" in fields:
            raise ValueError(f"cores={fields['cores']!r} is not allowed in iso_area; the core "
                             "count is what it sizes (build Accelerator(cores=...) directly)")
        if total_sram_kib is not None and "sram_kib" in fields:
            raise ValueError(f"sram_kib={fields['sram_kib']!r} is not allowed together with "
                             f"total_sram_kib={total_sram_kib!r}; pass one of them")
        unknown = sorted(set(fields) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown Accelerator field(s) {unknown}; allowed: "
                             f"{', '.join(cls.__dataclass_fields__)}")
        defaults = cls(cores=1, **fields)  # validates the fields once, with their defaults filled
        bits = bits_pair(mac_bits)
        cores = iso_area_cores(area_budget, bits, peak_scaling=peak_scaling, rows=defaults.rows,
                               cols=defaults.cols, node_nm=defaults.node_nm,
                               sram_kib=defaults.sram_kib, total_sram_kib=total_sram_kib)
        if total_sram_kib is not None:
            fields["sram_kib"] = total_sram_kib / cores
        return cls(cores=cores, mac_bits=bits, peak_scaling=peak_scaling, **fields)

    # -- derived quantities -----------------------------------------------------------------------
    @property
    def macs_per_core(self) -> int:
        return self.rows * self.cols

    @property
    def mac_count(self) -> int:
        """MAC units in the whole system (summed over the core groups)."""
        if self.core_groups:
            return sum(g.mac_count for g in self.groups())
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
        if self.core_groups:
            return sum(g.sram_bytes_total for g in self.groups())
        return self.cores * self.sram_bytes_per_core

    @property
    def dram_bytes_per_s(self) -> float:
        return self.dram_gbps * 1e9

    def buffer_bytes(self) -> dict[str, int]:
        """Per-core buffer capacity by region, bytes: ``{"unified": ...}`` or ``{"ifmap": ...,
        "filter": ..., "ofmap": ...}``."""
        if self.buffers == "split":
            return {r: int(getattr(self, f"{r}_kib") * 1024) for r in ("ifmap", "filter", "ofmap")}
        return {"unified": self.sram_bytes_per_core}

    @property
    def hierarchy(self) -> str:
        """One line naming the memory hierarchy, e.g. ``"per core: unified 2048 KiB,
        double-buffered; DRAM 32 GB/s, 1 channel, 64 B bursts, 100 ns"``."""
        if self.buffers == "split":
            per_core = (f"ifmap {self.ifmap_kib:g} / filter {self.filter_kib:g} / ofmap "
                        f"{self.ofmap_kib:g} KiB")
        else:
            per_core = f"unified {self.sram_kib:g} KiB"
        buffering = "double-buffered" if self.double_buffered else "single-buffered"
        gb = (f"; global buffer {self.global_buffer_kib:g} KiB at "
              f"{self.global_buffer_bytes_per_cycle:g} B/cycle" if self.global_buffer_kib else "")
        ch = f"{self.dram_channels} channel{'s' * (self.dram_channels > 1)}"
        if self.dram_channel_map == "by_operand":
            ch += " (one per operand)"
        return (f"per core: {per_core}, {buffering}{gb}; DRAM {self.dram_gbps:g} GB/s, {ch}, "
                f"{self.dram_burst_bytes} B bursts, {self.dram_latency_ns:g} ns")

    @property
    def peak_tops(self) -> float:
        """Peak tera-ops/s at the MAC precision (1 MAC = 2 ops), as the paper quotes TOPS."""
        return self.peak_ops_per_s / 1e12

    def precision_slowdown(self, w_bits: int, a_bits: int,
                           high_precision: str | None = None) -> float:
        """How many array cycles a (w_bits, a_bits) MAC takes relative to one at ``mac_bits``
        (>= 1; 1 at or below the MAC precision), under ``high_precision`` (default: the design's).
        See `arch.area.precision_slowdown`."""
        return precision_slowdown((w_bits, a_bits), self.mac_bits,
                                  high_precision=high_precision or self.high_precision,
                                  peak_scaling=self.peak_scaling)

    def summary(self) -> dict[str, float | int | str]:
        """Flat scalars for report rows: every field (``mac_bits`` as ``mac_w_bits``/``mac_a_bits``)
        plus ``mac_count``, ``peak_tops``, ``sram_total_mib`` and the area split in mm^2."""
        row: dict[str, float | int | str] = {}
        for f in self.__dataclass_fields__:
            if f == "mac_bits":
                row["mac_w_bits"], row["mac_a_bits"] = self.mac_bits
            elif f == "core_groups":
                row[f] = describe_groups(self.core_groups)
            else:
                row[f] = getattr(self, f)
        parts = accelerator_area_breakdown_mm2(self)
        row.update(mac_count=self.mac_count, peak_tops=self.peak_tops,
                   sram_total_mib=self.sram_bytes_total / 2**20, area_mm2=sum(parts.values()))
        row.update({f"area_{k}_mm2": v for k, v in parts.items()})
        return row

    @property
    def area(self) -> float:
        """Silicon area in mm^2 (MAC arrays + per-core SRAM and control), from `arch.area`."""
        return accelerator_area_mm2(self)

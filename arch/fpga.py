"""FPGA targets: a device's resources and the cost of one MAC turned into an `Accelerator`.

An FPGA has no silicon area to spend; it has LUTs, DSP slices, block RAM and a clock. A design
instantiates as many MAC units of one precision as the scarcest resource allows,

    macs = min over r in {LUTs, DSPs} with cost_r > 0 of floor(utilization * available_r / cost_r)

(the MAC's cost includes its share of the accumulation tree and pipeline registers, as the
published per-MAC figures do). `FpgaDesign.accelerator` arranges those MACs as systolic PE arrays
of ``cols`` output channels by up to ``max_rows`` output pixels (as many arrays as needed; the
`dse` simulator splits a layer over them) and gives them the device's on-chip memory (block RAM
and UltraRAM, split evenly per array), its clock and the board's DRAM. The simulator then runs a
workload on it through the same interface as the ASIC templates; the FPGA-only facts (LUT, DSP and
memory use, which resource binds) stay here, in `FpgaDesign.resources`.

Every number of a real device or design lives in `arch.presets` with its source (`vu9p`); the
one published cost function, FINN-R's LUTs per fabric-built MAC (`finn_r_luts_per_mac`), is here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from arch.area import bits_pair
from arch.spec import Accelerator
from arch.tech import TECHNOLOGIES

__all__ = ["BRAM36_KIB", "FINN_R_LUT_OVERHEAD", "URAM_KIB", "FpgaDesign", "FpgaDevice", "MacCost",
           "finn_r_luts_per_mac"]

BRAM36_KIB = 36 / 8
"""One 36 Kb block RAM, KiB (Xilinx UG573: RAMB36E2 holds 36 Kb incl. parity bits; all 36 Kb are
usable as data for widths of 9, 18, 36 and 72 bits)."""

URAM_KIB = 288 / 8
"""One UltraRAM block, KiB (Xilinx UG573: URAM288, 288 Kb)."""


FINN_R_LUT_OVERHEAD = 1.1
"""c1 of FINN-R's LUT cost model: the fitted factor on the arithmetic's LUTs (the FINN compiler's
`MatrixVectorActivation.lut_estimation`: "parameters from experiments in [FINN-R]", c0 = 300,
c1 = 1.1; Blott et al., "FINN-R", ACM TRETS 2018)."""


def finn_r_luts_per_mac(w_bits: int, a_bits: int) -> float:
    """LUTs of one ``w_bits`` x ``a_bits`` MAC built in the fabric: FINN-R's cost model of a
    matrix-vector unit (PE output channels x SIMD input lanes, as the FINN compiler implements it
    in `MatrixVectorActivation.lut_estimation`) per SIMD lane, in the limit of wide SIMD:

        LUTs = c1 * [ (2 * ceil((w + a) / 6) - 1) * (w + a)    multiplier (LUT6s per product bit)
                      + 2 * (w + a) ]                           adder tree, (w + a)(2Q - 1) / Q

    with c1 = `FINN_R_LUT_OVERHEAD`. W1A1 (XNOR-popcount) -> 6.6, W2A2 -> 13.2, W4A4 -> 44 LUTs.
    The model's per-output terms - the accumulator, the threshold comparators and c0 = 300 LUTs per
    engine - are shared by the PE x Q lanes and left out here: for a 3x3x256 reduction on 64 PEs
    of Q = 64 lanes they would add ~12% (W1A1) and ~14% (W2A2, 2-bit outputs), so this is a
    lower bound (tested against the whole-engine formula)."""
    for name, bits in (("w_bits", w_bits), ("a_bits", a_bits)):
        if isinstance(bits, bool) or not isinstance(bits, int) or bits < 1:
            raise ValueError(f"{name}={bits!r} is not allowed; expected an integer >= 1")
    width = w_bits + a_bits
    multiplier = (2 * math.ceil(width / 6) - 1) * width
    adder_tree = 2 * width
    return FINN_R_LUT_OVERHEAD * (multiplier + adder_tree)


def _number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _count(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


@dataclass(frozen=True, slots=True)
class MacCost:
    """The resources one MAC unit of a precision takes: ``luts`` and ``dsps`` (fractions allowed:
    two INT8 MACs share one DSP48E2), and where the figure comes from."""

    luts: float
    dsps: float = 0.0
    source: str = ""

    def __post_init__(self) -> None:
        problems = [f"{f}={getattr(self, f)!r} is not allowed; expected a finite number >= 0"
                    for f in ("luts", "dsps")
                    if not _number(getattr(self, f)) or getattr(self, f) < 0]
        if not problems and self.luts + self.dsps <= 0:
            problems.append(f"luts={self.luts!r}, dsps={self.dsps!r} are not allowed; a MAC costs "
                            "at least some LUTs or DSPs")
        if problems:
            raise ValueError("invalid MacCost: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class FpgaDevice:
    """An FPGA part on a board: datasheet resources, the design clock and the board's DRAM.

    ``luts``, ``dsps``: CLB LUTs and DSP slices; ``bram36_blocks``, ``uram_blocks``: 36 Kb block
    RAMs and 288 Kb UltraRAMs; ``clock_mhz``: the clock the accelerator runs at; ``dram_gbps``: the
    board's DRAM bandwidth (GB/s, all ``dram_channels`` together); ``node_nm``: the process (one
    of `arch.tech.TECHNOLOGIES`).
    """

    name: str
    luts: int
    dsps: int
    bram36_blocks: int
    uram_blocks: int
    clock_mhz: float
    dram_gbps: float
    node_nm: float
    dram_channels: int = 1

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not isinstance(self.name, str) or not self.name:
            problems.append(f"name={self.name!r} is not allowed; expected a non-empty string")
        for f in ("luts", "dsps", "bram36_blocks", "uram_blocks"):
            if not _count(getattr(self, f)):
                problems.append(f"{f}={getattr(self, f)!r} is not allowed; expected an integer "
                                ">= 0")
        if not _count(self.dram_channels) or self.dram_channels < 1:
            problems.append(f"dram_channels={self.dram_channels!r} is not allowed; expected an "
                            "integer >= 1")
        for f in ("clock_mhz", "dram_gbps"):
            if not _number(getattr(self, f)) or getattr(self, f) <= 0:
                problems.append(f"{f}={getattr(self, f)!r} is not allowed; expected a finite "
                                "number > 0")
        if isinstance(self.node_nm, bool) or self.node_nm not in TECHNOLOGIES:
            problems.append(f"node_nm={self.node_nm!r} is not allowed; expected one of "
                            f"{', '.join(f'{n:g}' for n in sorted(TECHNOLOGIES))} (nm)")
        if problems:
            raise ValueError("invalid FpgaDevice: " + "; ".join(problems))

    @property
    def on_chip_kib(self) -> float:
        """Block RAM plus UltraRAM, KiB."""
        return self.bram36_blocks * BRAM36_KIB + self.uram_blocks * URAM_KIB


def _label(bits: tuple[int, int]) -> str:
    return f"W{bits[0]}A{bits[1]}"


@dataclass(frozen=True, slots=True)
class FpgaDesign:
    """A MAC-array accelerator built on ``device`` for the precisions of ``mac_costs``.

    ``mac_costs``: ((weight_bits, act_bits), `MacCost`) pairs, one per precision the design
    supports. ``utilization``: the fraction of LUTs and DSPs the MAC array may take (the rest is
    left for control, data movement and timing closure). ``cols``: PE-array columns (output
    channels); ``max_rows``: rows of one array at most (output pixels), so the MACs form
    ceil(rows needed / max_rows) arrays.
    """

    device: FpgaDevice
    mac_costs: tuple[tuple[tuple[int, int], MacCost], ...]
    utilization: float = 0.7
    cols: int = 64
    max_rows: int = 64

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not isinstance(self.device, FpgaDevice):
            problems.append(f"device={type(self.device).__name__} is not allowed; expected an "
                            "FpgaDevice")
        costs: list[tuple[tuple[int, int], MacCost]] = []
        try:
            for bits, cost in self.mac_costs:
                if not isinstance(cost, MacCost):
                    raise TypeError
                costs.append((bits_pair(bits), cost))
        except (TypeError, ValueError):
            problems.append(f"mac_costs={self.mac_costs!r} is not allowed; expected pairs "
                            "((weight_bits, act_bits), MacCost)")
        if not costs and not problems:
            problems.append("mac_costs=() is not allowed; give the cost of at least one precision")
        if len({b for b, _ in costs}) != len(costs):
            problems.append(f"mac_costs lists a precision twice: {[_label(b) for b, _ in costs]}")
        object.__setattr__(self, "mac_costs", tuple(costs))
        if not _number(self.utilization) or not 0 < self.utilization <= 1:
            problems.append(f"utilization={self.utilization!r} is not allowed; expected a number "
                            "in (0, 1]")
        for f in ("cols", "max_rows"):
            v = getattr(self, f)
            if not _count(v) or v < 1:
                problems.append(f"{f}={v!r} is not allowed; expected an integer >= 1")
        if problems:
            raise ValueError("invalid FpgaDesign: " + "; ".join(problems))

    @property
    def precisions(self) -> tuple[tuple[int, int], ...]:
        """The (weight_bits, act_bits) the design has a MAC cost for."""
        return tuple(b for b, _ in self.mac_costs)

    def mac_cost(self, mac_bits: int | tuple[int, int]) -> MacCost:
        """The cost of one MAC at ``mac_bits``; ValueError naming the precisions it has."""
        bits = bits_pair(mac_bits)
        for b, cost in self.mac_costs:
            if b == bits:
                return cost
        raise ValueError(f"mac_bits={mac_bits!r} is not allowed; the {self.device.name} design "
                         f"has a MAC cost for {', '.join(_label(b) for b in self.precisions)}")

    def mac_count(self, mac_bits: int | tuple[int, int]) -> int:
        """MAC units of ``mac_bits`` the device holds (module docstring); ValueError if none."""
        return int(self.resources(mac_bits)["macs"])

    def resources(self, mac_bits: int | tuple[int, int]) -> dict[str, Any]:
        """The design at ``mac_bits`` as the FPGA sees it: ``macs`` (all arrays), ``binding``
        (the resource that limits them), ``luts_used``/``dsps_used`` and their fractions of the
        device, ``on_chip_kib``, ``clock_mhz`` and ``peak_gmacs`` (MACs x clock)."""
        cost = self.mac_cost(mac_bits)
        bits = bits_pair(mac_bits)
        dev = self.device
        limits = {name: math.floor(self.utilization * have / need * (1 + 1e-12))
                  for name, have, need in (("luts", dev.luts, cost.luts),
                                           ("dsps", dev.dsps, cost.dsps)) if need > 0}
        binding = min(limits, key=lambda k: limits[k])
        macs = limits[binding]
        if macs < 1:
            need = cost.luts if binding == "luts" else cost.dsps
            have = dev.luts if binding == "luts" else dev.dsps
            raise ValueError(
                f"mac_costs[{_label(bits)}].{binding}={need!r} is not allowed on the {dev.name}: "
                f"it leaves no MAC on the device ({self.utilization:g} x {have} {binding} "
                f"usable); allowed: <= {self.utilization * have:g} {binding} per MAC")
        arrays = self._arrays(macs)
        used = arrays[0] * arrays[1] * arrays[2]
        return {
            "device": dev.name, "mac_w_bits": bits[0], "mac_a_bits": bits[1], "macs": used,
            "macs_affordable": macs, "binding": binding, "luts_per_mac": cost.luts,
            "dsps_per_mac": cost.dsps, "luts_used": used * cost.luts,
            "dsps_used": used * cost.dsps,
            "lut_fraction": used * cost.luts / dev.luts if dev.luts else 0.0,
            "dsp_fraction": used * cost.dsps / dev.dsps if dev.dsps else 0.0,
            "arrays": arrays[0], "rows": arrays[1], "cols": arrays[2],
            "on_chip_kib": dev.on_chip_kib, "clock_mhz": dev.clock_mhz,
            "peak_gmacs": used * dev.clock_mhz / 1e3, "cost_source": cost.source,
        }

    def sharing(self, other_bits: int | tuple[int, int]) -> FpgaDesign:
        """This design on what the ``other_bits`` arrays leave of the device: both datapaths on
        one FPGA (e.g. FP32 first/last layers on DSPs beside binary arrays in LUTs). The device
        loses the LUTs and DSPs ``resources(other_bits)`` uses, grossed up by ``utilization`` so
        that both datapaths together stay within ``utilization`` of the whole device."""
        used = self.resources(other_bits)
        dev = self.device
        luts = dev.luts - math.ceil(used["luts_used"] / self.utilization)
        dsps = dev.dsps - math.ceil(used["dsps_used"] / self.utilization)
        return replace(self, device=replace(dev, luts=max(luts, 0), dsps=max(dsps, 0)))

    def _arrays(self, macs: int) -> tuple[int, int, int]:
        """(arrays, rows, cols) holding at most ``macs`` MACs: ``cols`` wide (fewer if even one
        row does not fit), rows spread evenly over ceil(rows / max_rows) arrays."""
        cols = min(self.cols, macs)
        rows_total = macs // cols
        arrays = math.ceil(rows_total / self.max_rows)
        return arrays, rows_total // arrays, cols

    def accelerator(self, mac_bits: int | tuple[int, int], *, dram_gbps: float | None = None,
                    **overrides: Any) -> Accelerator:
        """The `Accelerator` the simulator runs: ``resources(mac_bits)``'s arrays as cores, the
        device clock, its on-chip memory split evenly per array, the board's DRAM channels (at
        ``dram_gbps`` in all if given), output-stationary, fixed-precision MACs (layers above
        them run bit-serially). ``overrides`` set any other Accelerator field except the sized
        ones."""
        sized = {"cores", "rows", "cols", "mac_bits", "sram_kib", "freq_ghz"}
        bad = sorted(sized & set(overrides))
        if bad:
            raise ValueError(f"{bad[0]}={overrides[bad[0]]!r} is not allowed as an override; the "
                             "FPGA design sizes it from the device (change the FpgaDesign)")
        res = self.resources(mac_bits)
        bits = (res["mac_w_bits"], res["mac_a_bits"])
        fields: dict[str, Any] = {
            "cores": res["arrays"], "rows": res["rows"], "cols": res["cols"], "mac_bits": bits,
            "freq_ghz": self.device.clock_mhz / 1e3,
            "sram_kib": self.device.on_chip_kib / res["arrays"],
            "dram_gbps": self.device.dram_gbps if dram_gbps is None else dram_gbps,
            "dram_channels": self.device.dram_channels,
            "dataflow": "os", "acc_bits": 32, "high_precision": "bit_serial",
            "node_nm": self.device.node_nm, "name": f"{self.device.name}-{_label(bits).lower()}",
        }
        fields.update(overrides)
        return Accelerator(**fields)

"""Named accelerator designs from the papers, with every parameter fixed once here.

* `sysml19`: the PACT-SAWB paper's iso-area template (Choi et al., SysML 2019, Section 7.1 and
  Fig. 7a): cores of 8x64 fixed-point MACs with their own scratchpads sharing one DRAM; the core
  count scales with the MAC precision at iso-area (8 cores at 16-bit ... 64 cores at 2-bit), the
  total on-chip SRAM and the DRAM bandwidth are the same at every precision.
* `llsq40nm`: the LLSQ paper's integer accelerator (Zhao et al., ICLR 2020, Section 4.3, Table 5):
  one 32x7 systolic array, 40 nm, 800 MHz, bits-bit multipliers and 16-bit accumulators.

The studies use these as they are: parameters are never tuned per study point. The module-level
constants below are the only knobs; change them (with a reason in the docstring) not the functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from arch.area import bits_pair, core_area_mm2
from arch.energy import LEAKAGE_W_PER_MM2_40NM, EnergyModel, default_energy_model
from arch.fpga import FpgaDesign, FpgaDevice, MacCost, finn_r_luts_per_mac
from arch.spec import PEAK_SCALINGS, Accelerator

__all__ = ["get", "llsq40nm", "llsq40nm_energy_model", "names", "scalesim", "sysml19",
           "sysml19_area_budget", "vu9p", "vu9p_design"]

# ================================ CALIBRATION CONSTANTS ==========================================
# Every number here has its source. After 06:00 the studies owner may adjust these (and only these)
# for calibration, recording the reason next to the value.

SYSML19_ROWS = 8
"""Rows of each core's systolic array. PACT-SAWB Section 7.1: "2d-array size of 8x64 MACs"."""
SYSML19_COLS = 64
"""Columns of each core's systolic array (same source)."""
SYSML19_FREQ_GHZ = 1.0
"""Clock. Chosen so that 8 cores of 512 MACs give the paper's "8 TOPs" at 16-bit (8.19 TOPS) and
64 cores its 64 TOPS at 2-bit (65.5 TOPS); the IBM core it cites runs at 1.5 GHz (Fleischer et al.,
VLSI 2018), which would give 12.3 TOPS at 16-bit, not the paper's 8."""
SYSML19_REFERENCE_CORES = 8
"""Cores of the 16-bit system that defines the area budget (8 TOPS at 16-bit, Section 7.1)."""
SYSML19_TOTAL_SRAM_KIB = 16 * 1024.0
"""Total on-chip SRAM, KiB, the same at every precision (Section 7.1: "the total on-chip memory ...
remains constant"). The paper does not give its size. 16 MiB = 2 MiB per 16-bit core, the per-core
scratchpad recalled for IBM's RaPiD (ISCA 2021) in ../shared/MODELING.md - UNVERIFIED; studies
should show the sensitivity to it (pass ``total_sram_kib=``)."""
SYSML19_NODE_NM = 14.0
"""Node: the paper's MAC area measurement (Fig. 7b) and the IBM core are 14 nm."""
SYSML19_DATAFLOW = "os"
"""Not stated in the paper (DeepMatrix explores dataflows); output-stationary, the Accelerator
default. SCALE-Sim reference runs exist for both "os" and "ws" (../shared/reference/scalesim)."""
SYSML19_ACC_BITS = 32
"""Accumulator width; not stated. 32 bits is the usual width next to 16-bit MAC arrays (a 16x16
product has 32 bits; TPU v1 accumulates its 8-bit products in 32 bits). Overflow is not modelled."""
SYSML19_DRAM_LATENCY_NS = 100.0
"""Fixed latency of one DRAM transfer; not stated. ~100 ns is a loaded DDR4 access latency."""
SYSML19_HIGH_PRECISION = "configurable"
"""The paper's MAC is "precision-configurable" (Section 7.1): layers above the MAC precision run at
the iso-area throughput of the area model (see `arch.spec.HIGH_PRECISION_MODELS`)."""

LLSQ_ROWS = 32
"""LLSQ Section 4.3: "a 32x7 array of processing elements"."""
LLSQ_COLS = 7
"""(same source) -> 224 MACs (Table 5, "#MAC Unit")."""
LLSQ_FREQ_GHZ = 0.8
"""LLSQ Section 4.3: "clocked at 800MHz" -> 224 * 0.8 GHz = 179.2 GMAC/s, Table 5's 179.2 GOps/s
(the paper counts one MAC as one op; `Accelerator.peak_ops_per_s` counts two)."""
LLSQ_ACC_BITS = 16
"""LLSQ Section 4.3: "a 16-bit accumulator"."""
LLSQ_NODE_NM = 40.0
"""LLSQ Section 4.3: "40nm technology" (Synopsys DC synthesis)."""
LLSQ_IFMAP_KIB_8BIT = 512.0
"""Input buffer at 8-bit, KiB. LLSQ does not state buffer sizes; we use SCALE-Sim's reference-run
split (512 KB ifmap / 512 KB filter / 256 KB ofmap, ../shared/reference/scalesim) for the 8-bit
design.
Input and weight buffers hold a fixed number of elements, so their bytes scale with ``bits``."""
LLSQ_FILTER_KIB_8BIT = 512.0
"""Weight buffer at 8-bit, KiB (same source and rule as the input buffer)."""
LLSQ_OFMAP_KIB = 256.0
"""Output (partial-sum) buffer, KiB; holds 16-bit accumulators, so it does not scale with bits."""
LLSQ_DRAM_GBPS = 12.8
"""External bandwidth; not stated in the paper. 12.8 GB/s = one 64-bit DDR3-1600 channel, usual for
a 40 nm part of this size."""
# ==================================================================================================


def _check_overrides(overrides: dict[str, Any], forbidden: dict[str, str]) -> None:
    for key, why in forbidden.items():
        if key in overrides:
            raise ValueError(f"{key}={overrides[key]!r} is not allowed as an override; {why}")


def sysml19_area_budget(**overrides: Any) -> float:
    """Area budget of the `sysml19` template, mm^2: the 16-bit system of SYSML19_REFERENCE_CORES
    cores with the total SRAM (``total_sram_kib``, default SYSML19_TOTAL_SRAM_KIB). ``overrides``
    may change the core geometry (rows, cols) or node_nm, as `sysml19` passes them."""
    unknown = sorted(set(overrides) - {"total_sram_kib", "rows", "cols", "node_nm"})
    if unknown:
        raise ValueError(f"sysml19_area_budget takes no {', '.join(unknown)}; allowed: "
                         "total_sram_kib, rows, cols, node_nm")
    total = overrides.pop("total_sram_kib", SYSML19_TOTAL_SRAM_KIB)
    if isinstance(total, bool) or not isinstance(total, int | float) or not 0 < total < math.inf:
        raise ValueError(f"total_sram_kib={total!r} is not allowed; expected a finite number of "
                         "KiB > 0 (the chip's SRAM, split over the cores)")
    rows = overrides.pop("rows", SYSML19_ROWS)
    cols = overrides.pop("cols", SYSML19_COLS)
    node = overrides.pop("node_nm", SYSML19_NODE_NM)
    n = SYSML19_REFERENCE_CORES
    ref = Accelerator(cores=n, rows=rows, cols=cols, mac_bits=(16, 16), sram_kib=total / n,
                      node_nm=node)
    return core_area_mm2(ref.rows, ref.cols, 16, ref.sram_kib, node_nm=ref.node_nm) * n


def sysml19(mac_bits: int | tuple[int, int] = 2, dram_gbps: float = 32.0, *,
            peak_scaling: str = "doubling", total_sram_kib: float = SYSML19_TOTAL_SRAM_KIB,
            **overrides: Any) -> Accelerator:
    """The PACT-SAWB paper's iso-area system at MAC precision ``mac_bits`` (b or (w, a)).

    Cores of 8x64 MACs at 1.0 GHz, 14 nm, sized by `Accelerator.iso_area` for the area of the
    8-core 16-bit system (`sysml19_area_budget`); ``total_sram_kib`` (16 MiB) is split evenly over
    the cores. With ``peak_scaling="doubling"`` (the paper's rule) 16/8/4/2-bit give 8/16/32/64
    cores = 8.2/16.4/32.8/65.5 TOPS; with ``"density"`` the area model sizes them (8/22/45/64).
    Mixed precision (e.g. WRPN's W2A4): see `arch.area` for both rules. ``overrides`` set any other
    Accelerator field (freq_ghz, dataflow, dram_latency_ns, high_precision, rows, cols, name, ...);
    the budget is computed with the same rows, cols and node.
    """
    _check_overrides(overrides, {
        "cores": "the core count is set by iso-area sizing (use arch.Accelerator directly)",
        "sram_kib": "the per-core SRAM is total_sram_kib / cores; pass total_sram_kib",
    })
    if peak_scaling not in PEAK_SCALINGS:
        raise ValueError(f"peak_scaling={peak_scaling!r} is not allowed; expected one of "
                         f"{', '.join(PEAK_SCALINGS)}")
    w, a = bits_pair(mac_bits)
    geometry = {k: overrides[k] for k in ("rows", "cols", "node_nm") if k in overrides}
    budget = sysml19_area_budget(total_sram_kib=total_sram_kib, **geometry)
    fields: dict[str, Any] = {
        "rows": SYSML19_ROWS, "cols": SYSML19_COLS, "freq_ghz": SYSML19_FREQ_GHZ,
        "dataflow": SYSML19_DATAFLOW, "acc_bits": SYSML19_ACC_BITS,
        "dram_latency_ns": SYSML19_DRAM_LATENCY_NS, "high_precision": SYSML19_HIGH_PRECISION,
        "node_nm": SYSML19_NODE_NM, "name": f"sysml19-w{w}a{a}-{peak_scaling}",
        "dram_gbps": dram_gbps,
    }
    fields.update(overrides)
    return Accelerator.iso_area(budget, (w, a), peak_scaling=peak_scaling,
                                total_sram_kib=total_sram_kib, **fields)


def llsq40nm(bits: int | tuple[int, int] = 4, dram_gbps: float = LLSQ_DRAM_GBPS, *,
             mac_bits: int | tuple[int, int] | None = None, **overrides: Any) -> Accelerator:
    """The LLSQ paper's ``bits``-bit integer accelerator (Table 5 has 8, 4 and 2 bits).

    One 32x7 array, 800 MHz (179.2 GMAC/s), 16-bit accumulators, 40 nm. The dataflow is not
    stated; the Accelerator default (output-stationary) is kept. SRAM (one pool) = input and weight
    buffers of 512 KiB each at 8-bit scaled by bits/8, plus a 256 KiB partial-sum buffer (see the
    constants). ``bits`` may be ``(w, a)``; w + a <= 16 so that products fit the accumulators.
    Layers above the MAC precision run by bit-serial composition (the design has fixed MACs).
    ``mac_bits`` is a synonym of ``bits``, so every preset takes ``(mac_bits=, dram_gbps=)``.
    """
    if mac_bits is not None:
        if bits not in (4, mac_bits):
            raise ValueError(f"mac_bits={mac_bits!r} is not allowed together with bits={bits!r}; "
                             "pass one of them")
        bits = mac_bits
    w, a = bits_pair(bits, "bits")
    if w + a > LLSQ_ACC_BITS:
        raise ValueError(f"bits={bits!r} is not allowed; the {LLSQ_ACC_BITS}-bit accumulators of "
                         "the LLSQ design need w + a <= 16 (e.g. 8, 4, 2 or (2, 4))")
    sram = (LLSQ_IFMAP_KIB_8BIT * a + LLSQ_FILTER_KIB_8BIT * w) / 8.0 + LLSQ_OFMAP_KIB
    fields: dict[str, Any] = {
        "cores": 1, "rows": LLSQ_ROWS, "cols": LLSQ_COLS, "mac_bits": (w, a),
        "freq_ghz": LLSQ_FREQ_GHZ, "sram_kib": sram, "dram_gbps": dram_gbps,
        "acc_bits": LLSQ_ACC_BITS, "node_nm": LLSQ_NODE_NM, "name": f"llsq40nm-w{w}a{a}",
        "high_precision": "bit_serial",
    }
    fields.update(overrides)
    return Accelerator(**fields)


# ============================ LLSQ POWER AND THE VU9P FPGA (issue 14) =============================
# The LLSQ power model's leakage and the Quantization Networks FPGA (Table 7): each value with its
# source; `docs/arch.md` ("FPGA targets", "Power") repeats them.

LLSQ_LEAKAGE_W_PER_MM2 = LEAKAGE_W_PER_MM2_40NM
"""Leakage of the 40 nm LLSQ chip, W/mm^2 of modelled area (`arch.energy.LEAKAGE_W_PER_MM2_40NM`,
Aladdin's 40 nm multiplier: 12.3 mW/mm^2), applied to the whole chip incl. its SRAM."""


def llsq40nm_energy_model() -> EnergyModel:
    """The energy model of the LLSQ chip: Horowitz's energies scaled to 40 nm plus its leakage."""
    return default_energy_model(LLSQ_NODE_NM, static_w_per_mm2=LLSQ_LEAKAGE_W_PER_MM2)


VU9P_LUTS = 1_182_240
"""CLB LUTs of the XCVU9P (Xilinx DS890 / UltraScale+ product selection guide XMP103: 1,182K)."""
VU9P_DSPS = 6_840
"""DSP48E2 slices of the XCVU9P (same source)."""
VU9P_BRAM36 = 2_160
"""36 Kb block RAMs of the XCVU9P (same source: 75.9 Mb)."""
VU9P_URAM = 960
"""288 Kb UltraRAMs of the XCVU9P (same source: 270 Mb)."""
VU9P_CLOCK_MHZ = 250.0
"""Accelerator clock, the same at every precision. AWS EC2 F1 is the public VU9P board; its HDK
offers the custom logic a main clock of 125 MHz (clock recipe A0, the default) or 250 MHz (recipe
A1) (aws-fpga HDK, `tb_type_defines_pkg.sv`, clk_main_a0). 250 MHz is recipe A1. Quantization
Networks (CVPR 2019) names only the device. The clock cancels out of every ratio between
precisions; no source gives a per-precision clock on this device (Zhang et al., FPGA 2015, ran
their FP32 design at 100 MHz on a Virtex-7)."""
VU9P_DRAM_CHANNELS = 4
"""DDR4 channels on the board (AWS EC2 F1: four DDR4 channels of 16 GiB beside each VU9P)."""
VU9P_DRAM_GBPS = VU9P_DRAM_CHANNELS * 2133e6 * 8 / 1e9
"""Board DRAM, GB/s: four 64-bit DDR4-2133 channels = 68.3 GB/s (the speed grade is recalled,
unverified); addresses interleave over the channels (the Accelerator default)."""
VU9P_NODE_NM = 16.0
"""UltraScale+ devices are built in TSMC 16 nm FinFET (16FF+)."""
VU9P_UTILIZATION = 0.7
"""Fraction of the LUTs and DSPs the MAC arrays may take: the rest holds control, data movement and
the board shell, and leaves room for routing. ~70% is the usual ceiling for timing closure at high
utilisation (Xilinx UltraFast methodology UG949 flags designs above ~70-80% LUT use as congestion
risks; recalled, not re-checked here). One value for every precision, so it cancels out of the
ratios between precisions; it sets the absolute scale (see the FINN-R check in docs/arch.md)."""
VU9P_COLS = 64
"""PE-array columns (output channels per array): Zhang et al. (FPGA 2015) tile their fp32 CNN
accelerator's output channels by Tm = 64."""
VU9P_MAX_ROWS = 64
"""PE-array rows at most (output pixels): square 64 x 64 arrays; more MACs become more arrays."""
VU9P_FP32_DSPS_PER_MAC = 5.0
"""DSP slices per FP32 MAC: Zhang et al. ("Optimizing FPGA-based Accelerator Design for Deep
Convolutional Neural Networks", FPGA 2015, Sec. 5) build each MAC from a Xilinx floating-point
multiplier (3 DSPs) and adder (2 DSPs) on a Virtex-7 VC707: 448 MACs (Tm = 64 x Tn = 7), 2,240
DSPs, 100 MHz, 61.62 GFLOPS (the abstract's figures checked; the 3 + 2 split and the LUT count
below are recalled from its resource table, not re-checked). UltraScale+'s DSP48E2 has a wider
27x18 multiplier than the Virtex-7 DSP48E1; whether the FP32 multiplier then needs 2 DSPs instead
of 3 (floating-point operator IP, PG060 resource tables) could not be checked here: unverified."""
VU9P_FP32_LUTS_PER_MAC = 416.0
"""LUTs per FP32 MAC: the whole Zhang et al. (FPGA 2015) design's 186,251 LUTs over its 448 MACs
(recalled); it includes their buffers and control. Not binding (the DSPs bind)."""
VU9P_MAC_COSTS: tuple[tuple[tuple[int, int], MacCost], ...] = (
    ((1, 1), MacCost(finn_r_luts_per_mac(1, 1), 0.0,
                     "W1A1 XNOR-popcount MAC in LUTs: FINN-R's LUT cost model (Blott et al., TRETS "
                     "2018; FINN compiler MatrixVectorActivation.lut_estimation) per SIMD lane: "
                     "1.1 x (2 multiplier + 4 adder-tree LUTs) = 6.6")),
    ((2, 2), MacCost(finn_r_luts_per_mac(2, 2), 0.0,
                     "W2A2 MAC in LUTs, the same FINN-R model: 1.1 x (4 multiplier + 8 adder-tree "
                     "LUTs) = 13.2")),
    ((32, 32), MacCost(VU9P_FP32_LUTS_PER_MAC, VU9P_FP32_DSPS_PER_MAC,
                       "FP32 MAC on DSPs: 3 DSPs for the multiplier + 2 for the adder (Zhang et "
                       "al., FPGA 2015); 416 LUTs = their design's LUTs per MAC (recalled)")),
)
"""Resources of one MAC per precision, each with its source; the LUT-built MACs include their
share of the adder tree, not the per-output accumulator (`arch.fpga.finn_r_luts_per_mac`). Until
issue 14's audit W1A1 cost 2.5 LUTs (recalled as FINN's roofline figure, FPGA 2017, not found in
the sources at hand) and W2A2 5.5 LUTs (a construction of ours)."""


def vu9p_design(**overrides: Any) -> FpgaDesign:
    """The VU9P device with the MAC costs and PE-array shape above (``overrides``: any FpgaDesign
    field, e.g. ``utilization=0.8`` for a sensitivity run)."""
    device = FpgaDevice(name="vu9p", luts=VU9P_LUTS, dsps=VU9P_DSPS, bram36_blocks=VU9P_BRAM36,
                        uram_blocks=VU9P_URAM, clock_mhz=VU9P_CLOCK_MHZ,
                        dram_gbps=VU9P_DRAM_GBPS, node_nm=VU9P_NODE_NM,
                        dram_channels=VU9P_DRAM_CHANNELS)
    fields: dict[str, Any] = {"device": device, "mac_costs": VU9P_MAC_COSTS,
                              "utilization": VU9P_UTILIZATION, "cols": VU9P_COLS,
                              "max_rows": VU9P_MAX_ROWS}
    fields.update(overrides)
    return FpgaDesign(**fields)


def vu9p(mac_bits: int | tuple[int, int] = 1, dram_gbps: float = VU9P_DRAM_GBPS,
         **overrides: Any) -> Accelerator:
    """The Xilinx VU9P running ``mac_bits`` MACs (W1A1, W2A2 or W32A32 = FP32), as the simulator
    sees it: as many 64 x <=64 PE arrays as the LUTs/DSPs allow (`arch.fpga.FpgaDesign`), 250 MHz,
    the block RAM and UltraRAM (43.2 MiB) split over the arrays, 68.3 GB/s of DDR4.
    ``overrides``: other Accelerator fields (dataflow, dram_latency_ns, name, ...)."""
    return vu9p_design().accelerator(mac_bits, dram_gbps=dram_gbps, **overrides)


def scalesim(rows: int = 8, cols: int = 64, dataflow: str = "os", ifmap_kib: float = 512.0,
             filter_kib: float = 512.0, ofmap_kib: float = 256.0,
             dram_words_per_cycle: float = 10.0, word_bytes: int = 1, freq_ghz: float = 1.0,
             **overrides: Any) -> Accelerator:
    """SCALE-Sim v3's single array (PyPI ``scalesim==3.0.0``, USER bandwidth mode) as a design.

    One ``rows x cols`` array of ``8 * word_bytes``-bit MACs; split, double-buffered ifmap /
    filter / ofmap buffers (SCALE-Sim splits each half active, half prefetch); three DRAM ports
    of ``dram_words_per_cycle`` words per cycle each, one per operand (SCALE-Sim's
    IfmapSRAMBankBandwidth, FilterSRAMBankBandwidth and Bandwidth), so ``dram_gbps`` is three
    times one port; SCALE-Sim's fold order and buffer windows (``tile_policy="scalesim"``); a
    one-cycle port latency and one-word requests, as its read port. The defaults are the
    reference runs' (../shared/reference/scalesim: 8x64, 512/512/256 KB, 1 GHz).
    """
    port_gbps = dram_words_per_cycle * word_bytes * freq_ghz
    fields: dict[str, Any] = {
        "cores": 1, "rows": rows, "cols": cols, "dataflow": dataflow,
        "mac_bits": (8 * word_bytes, 8 * word_bytes), "acc_bits": 8 * word_bytes,
        "freq_ghz": freq_ghz, "buffers": "split", "ifmap_kib": ifmap_kib,
        "filter_kib": filter_kib, "ofmap_kib": ofmap_kib, "double_buffered": True,
        "dram_gbps": 3 * port_gbps, "dram_channels": 3, "dram_channel_map": "by_operand",
        "dram_burst_bytes": word_bytes, "dram_latency_ns": 1.0 / freq_ghz,
        "tile_policy": "scalesim", "name": f"scalesim-{rows}x{cols}-{dataflow}",
    }
    fields.update(overrides)
    return Accelerator(**fields)


_PRESETS: dict[str, Callable[..., Accelerator]] = {
    "llsq40nm": llsq40nm, "scalesim": scalesim, "sysml19": sysml19, "vu9p": vu9p}


def names() -> list[str]:
    """Names of the presets, sorted."""
    return sorted(_PRESETS)


def get(name: str, *args: Any, **kwargs: Any) -> Accelerator:
    """The preset ``name`` built with ``args``/``kwargs`` (e.g. ``get("sysml19", 4, 64.0)``)."""
    if name not in _PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(names())}")
    return _PRESETS[name](*args, **kwargs)

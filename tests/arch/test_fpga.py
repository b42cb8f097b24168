"""FPGA targets: resources -> MAC count (closed form), the Accelerator they become, the VU9P."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arch import Accelerator, presets
from arch.fpga import BRAM36_KIB, URAM_KIB, FpgaDesign, FpgaDevice, MacCost, finn_r_luts_per_mac

DEV = FpgaDevice(name="toy", luts=10_000, dsps=100, bram36_blocks=10, uram_blocks=2,
                 clock_mhz=200.0, dram_gbps=10.0, node_nm=16.0)
COSTS = (((1, 1), MacCost(2.5)), ((8, 8), MacCost(10.0, 0.5)), ((32, 32), MacCost(400.0, 5.0)))


def design(**kw: object) -> FpgaDesign:
    fields: dict[str, object] = {"device": DEV, "mac_costs": COSTS, "utilization": 0.5,
                                 "cols": 16, "max_rows": 8}
    fields.update(kw)
    return FpgaDesign(**fields)  # type: ignore[arg-type]


def test_mac_count_is_the_scarcest_resource() -> None:
    d = design()
    # binary: 0.5 * 10000 / 2.5 = 2000 MACs by LUTs, no DSPs used
    r = d.resources(1)
    assert (r["macs_affordable"], r["binding"], r["dsps_used"]) == (2000, "luts", 0.0)
    # 8-bit: LUTs allow 500, DSPs 0.5 * 100 / 0.5 = 100 -> DSPs bind
    assert d.resources(8)["macs_affordable"] == 100
    assert d.resources(8)["binding"] == "dsps"
    # fp32: LUTs 12, DSPs 10 -> 10
    assert d.resources((32, 32))["macs_affordable"] == 10


def test_arrays_are_cols_wide_and_at_most_max_rows_high() -> None:
    r = design().resources(1)  # 2000 MACs: 125 rows of 16 -> 16 arrays of 7 rows (ceil(125/8))
    assert (r["arrays"], r["rows"], r["cols"]) == (16, 7, 16)
    assert r["macs"] == 16 * 7 * 16 <= r["macs_affordable"]
    small = design().resources((32, 32))  # 10 MACs: one array of 1 row x 10 columns
    assert (small["arrays"], small["rows"], small["cols"], small["macs"]) == (1, 1, 10, 10)


@given(luts=st.integers(1, 2_000_000), dsps=st.integers(0, 10_000),
       cost_luts=st.floats(0.5, 500.0), cost_dsps=st.sampled_from([0.0, 0.5, 1.0, 5.0]),
       util=st.floats(0.05, 1.0), cols=st.integers(1, 128), max_rows=st.integers(1, 128))
def test_design_never_exceeds_the_device(luts: int, dsps: int, cost_luts: float,
                                         cost_dsps: float, util: float, cols: int,
                                         max_rows: int) -> None:
    dev = dataclasses.replace(DEV, luts=luts, dsps=dsps)
    d = FpgaDesign(dev, (((2, 2), MacCost(cost_luts, cost_dsps)),), util, cols, max_rows)
    bound = min(util * luts / cost_luts,
                util * dsps / cost_dsps if cost_dsps else math.inf)
    if bound < 1:
        with pytest.raises(ValueError, match="leaves no MAC on the device"):
            d.resources(2)
        return
    r = d.resources(2)
    assert r["macs_affordable"] == math.floor(bound + 1e-9)  # one more would not fit
    assert 1 <= r["macs"] <= r["macs_affordable"]
    assert r["luts_used"] <= util * luts * (1 + 1e-9)
    assert r["dsps_used"] <= util * dsps * (1 + 1e-9)
    assert r["rows"] <= max_rows
    assert r["cols"] <= cols
    # the arrays keep all but less than one array's worth of rows plus the partial row
    assert r["macs_affordable"] - r["macs"] < r["cols"] * (r["arrays"] + 1)


def test_accelerator_carries_the_device() -> None:
    d = design()
    acc = d.accelerator(1)
    r = d.resources(1)
    assert isinstance(acc, Accelerator)
    assert acc.mac_count == r["macs"]
    assert (acc.cores, acc.rows, acc.cols, acc.mac_bits) == (r["arrays"], r["rows"], 16, (1, 1))
    assert acc.peak_macs_per_s == pytest.approx(r["macs"] * 200e6)
    assert acc.sram_kib * acc.cores == pytest.approx(10 * BRAM36_KIB + 2 * URAM_KIB)
    assert acc.dram_gbps == 10.0
    assert d.accelerator(1, dram_gbps=math.inf).dram_gbps == math.inf
    assert acc.node_nm == 16.0
    assert acc.high_precision == "bit_serial"
    assert d.accelerator(1, dataflow="ws").dataflow == "ws"
    with pytest.raises(ValueError, match="cores=3 is not allowed as an override"):
        d.accelerator(1, cores=3)


def test_a_dsp_only_device_and_design() -> None:
    dev = dataclasses.replace(DEV, luts=0)
    r = FpgaDesign(dev, (((16, 16), MacCost(0.0, 1.0)),), 1.0).resources(16)
    assert (r["macs_affordable"], r["binding"], r["lut_fraction"]) == (100, "dsps", 0.0)
    with pytest.raises(ValueError, match=r"mac_costs\[W1A1\]\.luts=2\.5 .* leaves no MAC"):
        FpgaDesign(dev, COSTS).resources(1)


def test_precision_without_a_cost_names_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"mac_bits=4 is not allowed; the toy design has a MAC "
                                         r"cost for W1A1, W8A8, W32A32"):
        design().mac_count(4)


def test_cost_that_leaves_no_mac_names_field_value_and_limit() -> None:
    d = design(mac_costs=(((16, 16), MacCost(100.0, 200.0)),))
    with pytest.raises(ValueError, match=r"mac_costs\[W16A16\]\.dsps=200\.0 is not allowed on the "
                                         r"toy: it leaves no MAC.*allowed: <= 50 dsps per MAC"):
        d.accelerator(16)


@pytest.mark.parametrize(("kw", "message"), [
    ({"luts": -1}, "luts=-1 is not allowed; expected an integer >= 0"),
    ({"clock_mhz": 0}, "clock_mhz=0 is not allowed; expected a finite number > 0"),
    ({"dram_gbps": math.inf}, "dram_gbps=inf is not allowed"),
    ({"node_nm": 12.0}, "node_nm=12.0 is not allowed; expected one of"),
    ({"name": ""}, "name='' is not allowed"),
    ({"dram_channels": 0}, "dram_channels=0 is not allowed; expected an integer >= 1"),
])
def test_device_validation(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        dataclasses.replace(DEV, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kw", "message"), [
    ({"utilization": 0.0}, "utilization=0.0 is not allowed; expected a number in"),
    ({"utilization": 1.5}, "utilization=1.5 is not allowed"),
    ({"cols": 0}, "cols=0 is not allowed; expected an integer >= 1"),
    ({"mac_costs": ()}, "mac_costs=() is not allowed"),
    ({"mac_costs": (((1, 1), 2.5),)}, "mac_costs=.* is not allowed; expected pairs"),
    ({"mac_costs": (((1, 1), MacCost(1.0)), (1, MacCost(2.0)))}, "lists a precision twice"),
])
def test_design_validation(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace(".*", ".*")):
        design(**kw)


def test_mac_cost_validation() -> None:
    with pytest.raises(ValueError, match=r"luts=-1\.0 is not allowed"):
        MacCost(-1.0)
    with pytest.raises(ValueError, match="a MAC costs at least some LUTs or DSPs"):
        MacCost(0.0, 0.0)


# -- the VU9P preset -------------------------------------------------------------------------------
def test_vu9p_datasheet_and_board() -> None:
    dev = presets.vu9p_design().device
    assert (dev.luts, dev.dsps, dev.bram36_blocks, dev.uram_blocks) == (1_182_240, 6_840, 2_160,
                                                                         960)
    # the datasheet's 75.9 Mb of block RAM and 270 Mb of UltraRAM (Mb = 2^20 bits)
    assert dev.on_chip_kib * 1024 * 8 / 2**20 == pytest.approx(75.9 + 270.0, abs=0.05)
    assert dev.dram_gbps == pytest.approx(68.256)
    assert dev.dram_channels == 4
    assert presets.vu9p(1).dram_channels == 4


@pytest.mark.parametrize(("bits", "binding", "luts_per_mac", "dsps_per_mac"),
                         [(1, "luts", 6.6, 0.0), (2, "luts", 13.2, 0.0),
                          ((32, 32), "dsps", 416.0, 5.0)])
def test_vu9p_mac_counts(bits: int | tuple[int, int], binding: str, luts_per_mac: float,
                         dsps_per_mac: float) -> None:
    r = presets.vu9p_design().resources(bits)
    assert r["binding"] == binding
    limit = min(0.7 * 1_182_240 / luts_per_mac,
                0.7 * 6_840 / dsps_per_mac if dsps_per_mac else math.inf)
    assert r["macs_affordable"] == math.floor(limit + 1e-9)
    assert r["rows"] <= 64
    acc = presets.get("vu9p", bits)
    assert acc.mac_count == r["macs"]
    assert acc.freq_ghz == 0.25


def test_vu9p_refuses_a_precision_it_has_no_cost_for() -> None:
    with pytest.raises(ValueError, match="mac_bits=4 is not allowed; the vu9p design has a MAC "
                                         "cost for W1A1, W2A2, W32A32"):
        presets.vu9p(4)


def test_vu9p_is_a_registered_preset() -> None:
    assert "vu9p" in presets.names()
    from arch import io

    assert io.from_dict({"preset": "vu9p", "mac_bits": 2}) == presets.vu9p(2)


# -- FINN-R's LUT cost model -----------------------------------------------------------------------
def _finn_engine_luts(w: int, a: int, pe: int, simd: int, mw: int, out_bits: int) -> float:
    """FINN-R's whole matrix-vector engine as the FINN compiler estimates it (c0 = 300, c1 = 1.1,
    multiplier, adder tree, accumulator of the data-type bound, thresholds and comparators)."""
    width = w + a
    mult = simd * (2 * math.ceil(width / 6) - 1) * width
    tree = width * (2 * simd - 1)
    alpha = math.log2(mw) + width - 1
    acc = math.ceil(alpha + math.log2(1 + 2 ** -alpha) + 1)
    thresholds = (2**out_bits - 1) * acc * 2  # threshold storage (one 64-deep LUTRAM) + compare
    return 300 + 1.1 * pe * (mult + tree + acc + thresholds)


@pytest.mark.parametrize(("w", "a", "out_bits"), [(1, 1, 1), (2, 2, 2), (4, 4, 4), (8, 8, 8)])
def test_finn_r_cost_is_the_wide_simd_limit_of_the_engine(w: int, a: int, out_bits: int) -> None:
    per_lane = [_finn_engine_luts(w, a, 64, q, 2304, out_bits) / (64 * q) for q in (16, 64, 2**16)]
    assert per_lane[0] > per_lane[1] > per_lane[2] > finn_r_luts_per_mac(w, a)  # a lower bound
    assert per_lane[2] == pytest.approx(finn_r_luts_per_mac(w, a), rel=0.01)
    assert per_lane[1] < 1.15 * finn_r_luts_per_mac(w, a) or w >= 4  # docstring: ~12-14% at 64


def test_finn_r_cost_values_and_bad_bits() -> None:
    assert finn_r_luts_per_mac(1, 1) == pytest.approx(6.6)
    assert finn_r_luts_per_mac(2, 2) == pytest.approx(13.2)
    assert finn_r_luts_per_mac(4, 4) == pytest.approx(44.0)  # a product of 8 bits: 3 LUT6 levels
    assert finn_r_luts_per_mac(2, 2) / finn_r_luts_per_mac(1, 1) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="a_bits=0 is not allowed; expected an integer >= 1"):
        finn_r_luts_per_mac(1, 0)


def test_sharing_leaves_both_datapaths_within_the_utilization() -> None:
    d = design()
    fp = d.resources((32, 32))  # 10 fp32 MACs: 4000 LUTs, 50 DSPs
    left = d.sharing((32, 32))
    assert (left.device.luts, left.device.dsps) == (10_000 - 8_000, 0)
    binary = left.resources(1)
    assert binary["macs_affordable"] == math.floor(0.5 * 2_000 / 2.5)  # 400, not 2000
    assert binary["luts_used"] + fp["luts_used"] <= 0.5 * 10_000 + 1e-9
    with pytest.raises(ValueError, match="leaves no MAC"):
        left.resources((32, 32))  # no DSPs left for a second fp32 datapath

"""Accelerator validation and derived quantities."""

from __future__ import annotations

import dataclasses
import math

import pytest

from arch import Accelerator


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("cores", 0, ">= 1"),
        ("cores", -3, ">= 1"),
        ("cores", 2.5, "integer"),
        ("rows", 0, ">= 1"),
        ("cols", -1, ">= 1"),
        ("dram_gbps", 0.0, "> 0"),
        ("dram_gbps", -32.0, "> 0"),
        ("dram_gbps", float("nan"), "> 0"),
        ("sram_kib", 0.0, "> 0"),
        ("sram_kib", -1.0, "> 0"),
        ("sram_kib", float("inf"), "finite"),
        ("freq_ghz", 0.0, "> 0"),
        ("freq_ghz", True, "> 0"),
        ("dram_gbps", "32", "> 0"),
        ("mac_bits", (0, 2), "1..32"),
        ("mac_bits", (2, 33), "1..32"),
        ("mac_bits", (2,), "tuple"),
        ("mac_bits", 0, "tuple"),
        ("mac_bits", "8", "tuple"),
        ("mac_bits", 40, "1..32"),
        ("mac_bits", 0, "1..32"),
        ("mac_bits", (2, 40), "1..32"),
        ("mac_bits", [2, 40], "1..32"),
        ("mac_bits", (2, 4, 8), "1..32"),
        ("mac_bits", 2.0, "1..32"),
        ("mac_bits", True, "1..32"),
        ("acc_bits", 65, "1..64"),
        ("acc_bits", 0, "1..64"),
        ("rows", 2.5, ">= 1"),
        ("cols", True, ">= 1"),
        ("freq_ghz", float("inf"), "finite"),
        ("dram_latency_ns", float("inf"), "finite"),
        ("name", 3, "string"),
        ("dataflow", "rs", "os, ws, is"),
        ("high_precision", "magic", "bit_serial, configurable"),
        ("dram_latency_ns", -1.0, ">= 0"),
        ("node_nm", 3.0, "14"),
        ("node_nm", "14", "14"),
        ("peak_scaling", "linear", "doubling, density"),
    ],
)
def test_bad_field_names_field_value_and_range(field: str, value: object, allowed: str) -> None:
    with pytest.raises(ValueError, match="invalid Accelerator") as info:
        Accelerator(cores=1, **{field: value}) if field != "cores" else Accelerator(cores=value)
    msg = str(info.value)
    assert f"{field}={value!r}" in msg
    assert allowed in msg


BAD_VALUE = {
    "cores": 0, "rows": 0, "cols": 0, "mac_bits": 40, "freq_ghz": -1.0, "sram_kib": 0.0,
    "dram_gbps": 0.0, "dataflow": "rs", "acc_bits": 0, "dram_latency_ns": -1.0,
    "high_precision": "x", "name": 3, "node_nm": 3.0, "peak_scaling": "x",
    "buffers": "banked", "ifmap_kib": 8.0, "filter_kib": 8.0, "ofmap_kib": 8.0,
    "double_buffered": "yes", "global_buffer_kib": -1.0, "global_buffer_bytes_per_cycle": 0.0,
    "dram_burst_bytes": 0, "dram_channels": 0, "dram_channel_map": "striped",
    "tile_policy": "fast", "core_groups": "x", "noc": "ring", "noc_bytes_per_cycle": 0.0,
    "noc_hop_cycles": -1.0, "noc_multicast": "yes",
}


def test_every_field_is_validated_with_field_value_and_allowed_range() -> None:
    assert set(BAD_VALUE) == set(Accelerator.__dataclass_fields__)  # a new field needs a row
    for field, value in BAD_VALUE.items():
        kw = {"cores": 1, field: value}
        with pytest.raises(ValueError) as info:
            Accelerator(**kw)
        msg = str(info.value)
        assert f"{field}={value!r} is not allowed; expected" in msg, msg
        # the rule: a range, a set of choices or a type
        assert any(s in msg for s in (">", "..", "one of", "string")), msg


def test_mac_bits_out_of_range_states_the_range() -> None:
    with pytest.raises(ValueError, match=r"mac_bits=40 is not allowed; expected an integer in "
                                         r"1\.\.32 or a tuple \(weight_bits, act_bits\)"):
        Accelerator(cores=1, mac_bits=40)
    with pytest.raises(ValueError, match=r"mac_bits=\(2, 40\) is not allowed; .*1\.\.32"):
        Accelerator(cores=1, mac_bits=(2, 40))
    assert Accelerator(cores=1, mac_bits=32).mac_bits == (32, 32)  # the bounds are allowed
    assert Accelerator(cores=1, mac_bits=(1, 32)).mac_bits == (1, 32)


def test_all_problems_reported_at_once() -> None:
    with pytest.raises(ValueError, match="cores=0") as info:
        Accelerator(cores=0, dram_gbps=-1.0, dataflow="xx")
    assert "dram_gbps=-1.0" in str(info.value)
    assert "dataflow='xx'" in str(info.value)


def test_unlimited_bandwidth_allowed() -> None:
    acc = Accelerator(cores=1, dram_gbps=float("inf"))
    assert math.isinf(acc.dram_bytes_per_s)


def test_derived_quantities(tiny: Accelerator) -> None:
    assert tiny.mac_count == 2 * 4 * 4
    assert tiny.macs_per_core == 16
    assert tiny.peak_macs_per_s == pytest.approx(32 * 1e9)
    assert tiny.peak_ops_per_s == pytest.approx(2 * 32 * 1e9)
    assert tiny.peak_tops == pytest.approx(0.064)
    assert tiny.sram_bytes_per_core == 64 * 1024
    assert tiny.sram_bytes_total == 2 * 64 * 1024
    assert tiny.dram_bytes_per_s == pytest.approx(8e9)


def test_frozen_and_replace(tiny: Accelerator) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        tiny.cores = 4  # type: ignore[misc]
    assert dataclasses.replace(tiny, cores=4).mac_count == 2 * tiny.mac_count
    with pytest.raises(ValueError, match="cores=0"):
        dataclasses.replace(tiny, cores=0)


def test_area_delegates_to_area_model(tiny: Accelerator) -> None:
    from arch.area import accelerator_area_mm2, core_area_mm2

    assert tiny.area == accelerator_area_mm2(tiny)
    assert tiny.area == pytest.approx(2 * core_area_mm2(4, 4, (4, 4), 64.0, node_nm=14.0))


def test_mac_bits_normalised_to_tuple() -> None:
    assert Accelerator(cores=1, mac_bits=4).mac_bits == (4, 4)
    assert Accelerator(cores=1, mac_bits=[2, 4]).mac_bits == (2, 4)  # type: ignore[arg-type]


def test_summary_row(tiny: Accelerator) -> None:
    row = tiny.summary()
    assert (row["cores"], row["mac_w_bits"], row["mac_a_bits"]) == (2, 4, 4)
    assert row["peak_tops"] == tiny.peak_tops
    assert row["area_mm2"] == pytest.approx(tiny.area)
    assert row["area_mm2"] == pytest.approx(
        row["area_mac_array_mm2"] + row["area_control_mm2"] + row["area_sram_mm2"])
    assert row["sram_total_mib"] == pytest.approx(128 / 1024)
    assert row["peak_scaling"] == "doubling"
    assert all(isinstance(v, int | float | str) for v in row.values())

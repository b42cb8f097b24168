"""Unusual but valid study parameters, and invalid ones: each study's ``grid`` (no simulation).

A valid value (one mode given as a string, one batch as a number) must give the design points
it means; an invalid one a ValueError naming the field - never a TypeError (a traceback on the
command line) or a value taken apart character by character.
"""

from __future__ import annotations

import pytest

from studies import bandwidth_area_sweep, binary_speedup, pipeline, precision_sweep, wrpn_vs_pact


def _grid(study, **overrides):
    return study.grid({**study.PARAMS, **overrides})


@pytest.mark.parametrize("study", [precision_sweep, wrpn_vs_pact])
def test_one_mode_as_a_string_is_that_mode(study):
    """``--set modes=tile`` is the mode 'tile', not the modes 't', 'i', 'l', 'e'."""
    points = _grid(study, modes="tile", batch_sensitivity=(), sram_sensitivity_kib=())
    assert {p["mode"] for p in points} == {pipeline.HEADLINE_MODE, "tile"}
    assert _grid(study, modes="tile", batch_sensitivity=(), sram_sensitivity_kib=()) \
        == _grid(study, modes=("tile",), batch_sensitivity=(), sram_sensitivity_kib=())


@pytest.mark.parametrize("study", [precision_sweep, wrpn_vs_pact])
def test_no_other_mode_runs_the_headline_only(study):
    points = _grid(study, modes=(), batch_sensitivity=(), sram_sensitivity_kib=())
    assert {p["mode"] for p in points} == {pipeline.HEADLINE_MODE}


@pytest.mark.parametrize("study", [precision_sweep, wrpn_vs_pact])
def test_one_sensitivity_batch_as_a_number(study):
    points = _grid(study, batch_sensitivity=4, modes=(), sram_sensitivity_kib=())
    assert {p["batch"] for p in points} == {study.PARAMS["batch"], 4}


@pytest.mark.parametrize("study", [precision_sweep, wrpn_vs_pact])
@pytest.mark.parametrize(("field", "value"), [
    ("modes", None), ("modes", 3), ("modes", "fast"), ("batch_sensitivity", None),
    ("batch_sensitivity", 0), ("batch_sensitivity", 2.5), ("total_sram_kib", "x"),
    ("total_sram_kib", 0), ("total_sram_kib", float("inf")),
])
def test_bad_values_name_the_field(study, field, value):
    with pytest.raises(ValueError, match=f"{field}="):
        _grid(study, **{field: value})


@pytest.mark.parametrize("study", [binary_speedup, precision_sweep, wrpn_vs_pact,
                                   bandwidth_area_sweep])
@pytest.mark.parametrize("preset", [0, None, ("sysml19",), "names", "sysml19_area_budget", "x"])
def test_a_preset_that_is_no_system_names_the_field(study, preset):
    """Not a string, or an arch.presets function that builds no system for (mac_bits,
    dram_gbps): one ValueError before any point runs (a TypeError traceback before)."""
    with pytest.raises(ValueError, match=r"preset=.* is not allowed; expected one of .*sysml19"):
        _grid(study, preset=preset, cores=(4,)) if study is bandwidth_area_sweep \
            else _grid(study, preset=preset)


def test_check_preset_takes_the_systems_and_design_files():
    assert "sysml19" in pipeline.preset_names()
    assert "names" not in pipeline.preset_names()
    assert pipeline.check_preset("chip.toml") == "chip.toml"


@pytest.mark.parametrize(("field", "value"), [
    ("word_bits", 0), ("word_bits", "x"), ("word_bits", 2.5), ("a_bits", 0), ("a_bits", None),
    ("peak_scaling", "linear"), ("peak_scaling", None),
])
def test_binary_speedup_checks_every_parameter_before_running(field, value):
    """word_bits='x' crashed inside Eq. 11 with a TypeError, a_bits=0 failed in the workload
    trace naming one layer's override, peak_scaling in the first design point."""
    with pytest.raises(ValueError, match=f"{field}="):
        _grid(binary_speedup, **{field: value})


def test_one_precision_spelled_twice_is_one_point():
    """bits=(1, (1, 1), (2, 2)) names W1A1 twice: two binary rows per model made qn_fpga's
    derive fail with a numpy broadcast error; mac_area listed the MAC twice."""
    from studies import mac_area, qn_fpga

    points = _grid(qn_fpga, model="alexnet", bits=(1, (1, 1), (2, 2)))
    assert [(p["w_bits"], p["a_bits"]) for p in points] == [(1, 1), (2, 2)]
    macs = [p for p in _grid(mac_area, mac_bits=(4, (4, 4), (2, 4))) if p["kind"] == "mac"]
    assert [(p["w_bits"], p["a_bits"]) for p in macs] == [(4, 4), (2, 4)]



@pytest.mark.parametrize(("value", "pair"), [(None, (2, 2)), (4, (4, 4)), ((2, 4), (2, 4)),
                                             ([8, 8], (8, 8))])
def test_sweep_mac_bits_forms(value, pair):
    points = _grid(bandwidth_area_sweep, mac_bits=value, cores=(4,), bandwidth=(8.0,))
    assert {(p["mac_w_bits"], p["mac_a_bits"]) for p in points} == {pair}


@pytest.mark.parametrize(("field", "value"), [
    ("mac_bits", 0), ("mac_bits", ()), ("mac_bits", 2.5), ("mac_bits", (0,)), ("mac_bits", "2x2"),
    ("mac_bits", ((1, 2),)), ("mac_bits", (2, 64)), ("first_last_bits", 0),
    ("first_last_bits", "x"), ("first_last_bits", 2.5),
])
def test_sweep_bad_bits_name_the_field(field, value):
    """mac_bits=0 or () silently became w_bits x a_bits, (0,) an IndexError, 2.5 a TypeError;
    first_last_bits was never checked."""
    with pytest.raises(ValueError, match=f"{field}="):
        _grid(bandwidth_area_sweep, **{field: value})


def test_sram_note_lists_only_the_swept_bandwidths():
    """With 64 GB/s not swept the note said 'nanx at 64 GB/s' for every SRAM size."""
    import pandas as pd

    rows = [{"mac_bits": 4, "variant": "first/last 8-bit", "dram_gbps": bw, "sram_total_mib": mib,
             "speedup": sp} for mib, bw, sp in ((4.0, 32.0, 4.24), (8.0, 32.0, 4.07))]
    note = precision_sweep._sram_note(pd.DataFrame(rows), 8)
    assert "4 MiB: 4.24x at 32 GB/s; 8 MiB: 4.07x at 32 GB/s" in note
    assert "nan" not in note
    both = pd.DataFrame(rows + [{**r, "dram_gbps": 64.0, "speedup": 5.0} for r in rows])
    assert "4 MiB: 4.24x at 32 GB/s, 5.00x at 64 GB/s;" in precision_sweep._sram_note(both, 8)


def _binary_rows():
    import pandas as pd

    eq = [{"kind": "eq11", "m": 1, "fp_roles": r, "flops_fp": 4.08e7, "flops_binary": 1.34e6,
           "speedup": 30.5} for r in ("first,last,shortcut", "first,last")]
    sim = [{"kind": "sim", "scheme": s, "dram_gbps": float("inf"), "images_per_s": ips,
            "high_precision": "configurable", "cores": c, "peak_tops": t, "utilization": 0.5}
           for s, ips, c, t in (("binary", 900.0, 73, 74.8), ("16-bit", 300.0, 8, 8.2))]
    return pd.DataFrame(eq + sim)


def test_binary_speedup_checks_the_papers_resnet18_numbers_only_on_resnet18():
    """--set model=resnet20 printed 'ResNet-18 full-precision FLOPs: 4.081e+07 ... MISSED':
    the paper's ResNet-18 numbers checked against another network, under ResNet-18's name."""
    other = binary_speedup.summarize(_binary_rows(), {**binary_speedup.PARAMS,
                                                      "model": "resnet20"})
    assert other.targets == ()
    assert "ResNet-18" not in other.title
    assert "no paper target is checked" in other.notes
    own = binary_speedup.summarize(_binary_rows(), dict(binary_speedup.PARAMS))
    assert own.targets[0].name == "ResNet-18 full-precision FLOPs"
    assert own.title == "Binary-weight ResNet-18 speedup (TARGETS 4, CReLU paper Eq. 11)"


def test_precision_sweep_names_the_model_it_ran():
    """--set model=resnet20: the title, intro and plot said ResNet-50."""
    import math

    params = {**precision_sweep.PARAMS, "model": "resnet20", "precisions": (16, 4),
              "bandwidth": (math.inf,), "batch": 1, "batch_sensitivity": (),
              "sram_sensitivity_kib": (), "modes": ("layer+prefetch",)}
    df = precision_sweep.run(**{k: v for k, v in params.items() if k in (
        "model", "precisions", "bandwidth", "batch", "batch_sensitivity",
        "sram_sensitivity_kib", "modes")})
    summary = precision_sweep.summarize(df, params)
    assert "ResNet-50" not in summary.title + summary.intro + summary.plots[0].context
    assert summary.title.startswith("Precision sweep on resnet20")


def test_summary_parameters_show_a_one_element_tuple_as_a_tuple():
    """--bandwidth 16 showed as `bandwidth=(16)`, which reads as the number 16."""
    from studies._params import describe_params

    text = describe_params({"bandwidth": (16.0,), "mac_bits": ((4, 4),), "m": (1, 2)})
    assert text == "Parameters: `bandwidth=(16,)`, `mac_bits=((4, 4),)`, `m=(1, 2)`."

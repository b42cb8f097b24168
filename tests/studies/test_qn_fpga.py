"""The Quantization Networks FPGA study on a small network: exact space ratios, roofline bounds."""

from __future__ import annotations

import pytest

from arch import presets
from dse.study import main
from studies import qn_fpga as study


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("qn_fpga")
    df = study.run(out=out, model=("resnet20",), batch=1)
    return out, df.set_index("scheme")


def test_files_and_schemes(study_run) -> None:
    out, df = study_run
    for name in ("results.csv", "table7.csv", "summary.md"):
        assert (out / name).stat().st_size > 0
    assert list(df.index) == ["binary", "ternary", "full-precision"]
    text = (out / "summary.md").read_text()
    assert text.count("in band") >= 2  # the two space targets
    # the fidelity note names this study's table (not another study's speedup_by_fidelity)
    assert (out / "time_by_fidelity.csv").stat().st_size > 0
    assert "**Simulator fidelity** (`time_by_fidelity`" in text
    assert "speedup_by_fidelity" not in text


def test_space_is_exactly_the_bit_ratio(study_run) -> None:
    _, df = study_run
    assert df.at["binary", "space_vs_binary"] == 1.0
    assert df.at["ternary", "space_vs_binary"] == 2.0
    assert df.at["full-precision", "space_vs_binary"] == 32.0


def test_each_scheme_runs_on_its_own_fpga_design(study_run) -> None:
    _, df = study_run
    for scheme, bits in (("binary", 1), ("ternary", 2), ("full-precision", (32, 32))):
        r = df.loc[scheme]
        res = presets.vu9p_design().resources(bits)
        assert r["fpga_macs"] == res["macs"] == r["cores"] * r["rows"] * r["cols"]
        assert r["fpga_binding"] == res["binding"]
        assert r["peak_gmacs"] == pytest.approx(res["macs"] * 0.25)
        # roofline: no run beats its peak MAC rate
        assert r["latency_s"] >= r["macs"] / (r["peak_gmacs"] * 1e9) * (1 - 1e-9)
    assert df.at["full-precision", "fpga_binding"] == "dsps"
    assert df.at["binary", "time_vs_binary"] == 1.0


def test_time_ratio_is_bounded_by_the_peak_ratio_and_utilizations(study_run) -> None:
    _, df = study_run
    for scheme in ("ternary", "full-precision"):
        r, b = df.loc[scheme], df.loc["binary"]
        # latency = MACs / (peak x utilization) for both, same MACs
        want = (b["peak_gmacs"] / r["peak_gmacs"]) * (b["utilization"] / r["utilization"])
        assert r["time_vs_binary"] == pytest.approx(want, rel=1e-6)
        assert r["time_vs_binary"] > 1.0


@pytest.mark.parametrize(("bits", "message"), [
    (((1, 1), (4, 4)), r"mac_bits=\(4, 4\) is not allowed; the vu9p design has a MAC cost for "
                       r"W1A1, W2A2, W32A32"),
    (((2, 2), (32, 32)), r"Table 7 is relative to the binary network"),
])
def test_bad_bits(bits, message) -> None:
    with pytest.raises(ValueError, match=message):
        study.grid({**study.PARAMS, "bits": bits})


def test_cli_bad_precision_is_one_error_line(tmp_path, capsys) -> None:
    out = tmp_path / "r"
    assert main(["qn_fpga", "--out", str(out), "--quiet", "--set", "bits=((1, 1), (3, 3))"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: mac_bits=(3, 3) is not allowed")
    assert not (out / "results.csv").exists()


def test_first_last_fp32_estimate_follows_amdahl(study_run) -> None:
    out, df = study_run
    assert (out / "first_last_fp32.csv").stat().st_size > 0
    fp, b, t = df.loc["full-precision"], df.loc["binary"], df.loc["ternary"]
    # roofline on the two FP32 layers: no faster than their MACs at the FP32 design's peak
    from studies import pipeline

    wl = pipeline.workload_for("resnet20", "fp32", w_bits=32, a_bits=32)
    layers = wl.compute_layers()
    fl_macs = (layers[0].macs + layers[-1].macs) * 1  # batch 1
    assert fp["first_last_s"] >= fl_macs / (fp["peak_gmacs"] * 1e9) * (1 - 1e-9)
    for r in (b, t):
        assert 0 < r["first_last_s"] < r["latency_s"]
        assert r["latency_fl32_s"] == pytest.approx(r["latency_s"] - r["first_last_s"]
                                                    + fp["first_last_s"])
        # sharing the LUTs with the FP32 datapath leaves fewer low-bit MACs: never faster
        assert r["fpga_macs_beside_fp32"] < r["fpga_macs"]
        assert r["latency_fl32_shared_s"] > r["latency_fl32_s"]
    # Amdahl: a common FP32 part pulls every ratio towards 1
    assert 1.0 < t["time_fl32_vs_binary"] < t["time_vs_binary"]
    assert 1.0 < fp["time_fl32_vs_binary"] < fp["time_vs_binary"]
    assert fp["latency_fl32_s"] == fp["latency_s"]


def test_shared_share_reads_the_modelled_ratio_as_the_papers() -> None:
    # T / B = x + (1 - x) r: the share that makes r read as the paper's ratio
    for r, paper in ((1.903, 1.4), (111.0, 45.0), (2.0, 1.4)):
        x = study.shared_share(r, paper)
        assert 0 < x < 1
        assert x + (1 - x) * r == pytest.approx(paper)
    assert study.shared_share(2.0, 1.4) == pytest.approx(0.6)
    assert study.shared_share(1.4, 1.4) == 0.0  # the model already reads as the paper


def test_notes_weigh_both_time_ratios_against_one_shared_part(study_run) -> None:
    out, df = study_run
    summary = (out / "summary.md").read_text()
    assert "Table 7's two time ratios ask for one shared part" in summary
    x_t = study.shared_share(df.at["ternary", "time_vs_binary"], 1.4)
    predicted = x_t + (1 - x_t) * df.at["full-precision", "time_vs_binary"]
    assert f"asks for x = {x_t:.2f}, which puts full precision at {predicted:.1f}x" in summary


def test_other_networks_are_reported_beside_the_headline(tmp_path) -> None:
    import pandas as pd

    rows = []
    for model, util in (("resnet20", 0.7), ("digits_cnn", 0.4)):
        for scheme, t in (("binary", 1.0), ("ternary", 1.6), ("full-precision", 70.0)):
            rows.append({"model": model, "scheme": scheme, "time_vs_binary": t,
                         "utilization": util})
    text = study._other_networks(pd.DataFrame(rows), "resnet20")
    assert "digits_cnn: ternary 1.60x and full precision 70x" in text
    assert "resnet20:" not in text  # the headline is not repeated as another network
    assert study._other_networks(pd.DataFrame(rows[:3]), "resnet20") == ""


def test_the_intro_names_the_schemes_that_ran() -> None:
    import pandas as pd

    ran = pd.DataFrame({"scheme": ["binary", "full-precision", "binary"], "w_bits": [1, 32, 1],
                        "a_bits": [1, 32, 1], "recipe": ["qn", "fp32", "qn"]})
    intro = study._intro(ran)
    assert intro.startswith("Networks binary (W1A1, `qn` recipe), full-precision (W32A32, "
                            "unquantized), every layer")
    assert "ternary" not in intro

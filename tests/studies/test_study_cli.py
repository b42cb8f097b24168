"""The CLIs: one-line errors with exit status 2 on bad input, files and cache reuse on success."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dse import study, sweep


def _run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


@pytest.mark.parametrize(("argv", "needle"), [
    (["nope"], "unknown study 'nope'; available: bandwidth_area_sweep"),
    (["wrpn_vs_pact", "--bandwidth", "8,,16"], "--bandwidth='8,,16' is malformed"),
    (["wrpn_vs_pact", "--bandwidth", "8:256:x1"], "factor > 1"),
    (["wrpn_vs_pact", "--bandwidth", "-8"], "is not > 0"),
    (["bandwidth_area_sweep", "--set", "model=nonet"], "unknown model 'nonet'; available:"),
    (["bandwidth_area_sweep", "--set", "recipe=magic"], "unknown recipe 'magic'; available:"),
    (["mac_area", "--bandwidth", "8"], "has no parameter 'bandwidth'"),
    (["wrpn_vs_pact", "--format", "xlsx"], "format='xlsx' is not allowed"),
    (["wrpn_vs_pact", "--batch", "0"], "--batch=0"),
    (["wrpn_vs_pact", "--jobs", "0"], "--jobs=0"),
    (["wrpn_vs_pact", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    ([], "missing study NAME"),
])
def test_bad_input_is_one_line_and_status_2(argv, needle, capsys, tmp_path):
    code = study.main([*argv, "--out", str(tmp_path / "o"), "--quiet"] if argv else [])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("error: ")
    assert needle in err


def test_unwritable_output_folder(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert study.main(["mac_area", "--out", str(blocker / "sub"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out=")
    assert "not a writable folder" in err


@pytest.mark.parametrize(("argv", "needle"), [
    (["--model", "nonet", "--recipe", "pact_sawb"], "unknown model 'nonet'"),
    (["--model", "alexnet", "--recipe", "pact_sawb", "--bandwidth", "8:x"], "is malformed"),
    (["--model", "alexnet", "--recipe", "pact_sawb", "--area", "0x"], "area="),
    (["--model", "alexnet", "--recipe", "pact_sawb", "--mac-bits", "2y4"], "--mac-bits='2y4'"),
    (["--model", "alexnet"], "required: --recipe"),
])
def test_sweep_bad_input(argv, needle, capsys, tmp_path):
    assert sweep.main([*argv, "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert needle in err


def test_real_process_exit_status_and_no_traceback(tmp_path):
    bad = _run("dse.study", "no_such_study", "--out", str(tmp_path))
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert bad.stderr.startswith("error: unknown study")


def test_list_names_every_study(capsys):
    assert study.main(["--list"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert {"wrpn_vs_pact", "precision_sweep", "mac_area", "binary_speedup",
            "bandwidth_area_sweep"} <= set(names)


def test_mac_area_end_to_end_and_cache_reuse(tmp_path, capsys):
    out = tmp_path / "mac_area"
    assert study.main(["mac_area", "--out", str(out), "--quiet"]) == 0
    assert "none cached" in capsys.readouterr().out
    for name in ("results.csv", "results.parquet", "summary.md", "mac_density.png",
                 "llsq_area.csv", "iso_area_systems.csv"):
        assert (out / name).stat().st_size > 0
    assert study.main(["mac_area", "--out", str(out), "--quiet"]) == 0
    assert "22 reused from cache, 0 computed" in capsys.readouterr().out


def test_sweep_end_to_end(tmp_path, capsys):
    import pandas as pd

    argv = ["--model", "resnet20", "--recipe", "pact_sawb", "--bandwidth", "4:16:x4,inf",
            "--area", "1x,8", "--sram-kib", "128", "--out", str(tmp_path), "--quiet"]
    assert sweep.main(argv) == 0
    out = capsys.readouterr().out
    assert "6 design points" in out
    assert "compute-bound from" in out
    res = pd.read_csv(tmp_path / "results.csv")
    assert sorted(res["dram_gbps"].unique().tolist()) == [4.0, 16.0, float("inf")]
    for _, g in res.groupby("area_budget_mm2"):  # more bandwidth is never slower
        ips = g.sort_values("dram_gbps")["images_per_s"].to_numpy()
        assert (ips[1:] >= ips[:-1] * (1 - 1e-9)).all()
        assert (g["area_mm2"] <= g["area_budget_mm2"] * (1 + 1e-9)).all()  # iso-area sizing
    knee = pd.read_csv(tmp_path / "compute_bound.csv")
    assert len(knee) == 2
    assert set(knee["compute_bound_gbps"]) <= {4.0, 16.0, float("inf")}

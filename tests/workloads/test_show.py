"""The `python -m workloads.show` CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from workloads import Workload
from workloads.show import main


def test_table_with_first_last_bits(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    assert main(["digits_cnn", "--bits", "2", "--first-last", "8", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[3:-2]}
    assert "8/8/2" in rows["features.0"]          # first layer at 8 bits, stores 2-bit output
    assert "8/8/8" in rows["fc"]                  # last layer 8 bits
    assert "2/2/2" in rows["features.3"]
    assert "total: " in out
    assert "GMACs" in out
    wl = Workload.load(path)
    assert wl["fc"].role == "last"
    assert wl["features.0"].w_bits == 8


def test_width_batch_and_compute_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resnet20", "--width", "2", "--batch", "3", "--compute-only"]) == 0
    out = capsys.readouterr().out
    assert "batch 3" in out
    assert " add " not in out
    assert "layer1.0.conv1" in out
    assert "32x32x32" in out


def test_unknown_model_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vgg16"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "unknown model 'vgg16'; available: alexnet" in err


def test_module_entry_point() -> None:
    res = subprocess.run([sys.executable, "-m", "workloads.show", "nope"], capture_output=True,
                         text=True, check=False, timeout=120)
    assert res.returncode == 2
    assert res.stderr.startswith("error: unknown model 'nope'")


@pytest.mark.parametrize(("argv", "msg"), [
    (["digits_cnn", "--bits", "0"], "--bits=0 is invalid"),
    (["digits_cnn", "--first-last", "99"], "--first-last=99 is invalid"),
    (["digits_cnn", "--batch", "0"], "--batch=0 is invalid"),
    (["digits_cnn", "--width", "-1"], "width=-1 is invalid"),
])
def test_bad_flags_exit_2(argv: list[str], msg: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert msg in capsys.readouterr().err


def test_builder_options(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["alexnet", "--compute-only", "-o", "variant=tensorpack", "-o", "grouped=false"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "12x12/4" in out
    assert "96x54x54" in out
    assert main(["alexnet", "-o", "grouped"]) == 2
    assert "--option 'grouped' is invalid; expected KEY=VALUE" in capsys.readouterr().err
    assert main(["resnet18", "-o", "grouped=false"]) == 2

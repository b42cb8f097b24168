"""The CLI error contract of quant.train and quant.table (issue 12): every bad input, unusable
output, overflow and diverging run ends as ONE ``error:`` line on stderr naming the flag or
file, exit status 2, and nothing created; Ctrl-C prints one line and exits 130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from quant import table as qtable
from quant import train as qtrain

BASE = ["--recipe", "pact_sawb", "--w-bits", "2", "--a-bits", "2", "--epochs", "1",
        "--no-progress"]


def _one_error_line(capsys: pytest.CaptureFixture[str], run, *needles: str) -> str:
    with pytest.raises(SystemExit) as info:
        run()
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: "), err[0]
    for needle in needles:
        assert needle in err[0], (needle, err[0])
    return err[0]


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_train_out_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "afile"
    f.write_text("keep me")
    _one_error_line(capsys, lambda: qtrain.main([*BASE, "--out", str(f)]), "--out", str(f),
                    "not a folder")
    assert f.read_text() == "keep me"
    assert _listing(tmp_path) == ["afile"]


def test_train_out_that_cannot_be_written(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("")
    bad = tmp_path / "afile" / "run"  # a path below a file
    _one_error_line(capsys, lambda: qtrain.main([*BASE, "--out", str(bad)]), "--out",
                    "cannot write")
    _one_error_line(capsys, lambda: qtrain.main([*BASE, "--out", "/proc/qdse-x/run"]), "--out",
                    "/proc/qdse-x/run")
    assert _listing(tmp_path) == ["afile"]


@pytest.mark.parametrize("lr", ["1e6", "1e308", "inf", "nan"])
def test_train_diverging_or_overflowing_lr(lr: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    _one_error_line(capsys, lambda: qtrain.main([*BASE, "--lr", lr, "--out", str(out)]),
                    "--lr", "allowed")
    assert not out.exists()  # the diverged run left no folder behind


def test_train_init_from_a_file_torch_cannot_read(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    blob = tmp_path / "weights.bin"
    blob.write_bytes(bytes(range(256)) * 8)
    out = tmp_path / "run"
    _one_error_line(capsys, lambda: qtrain.main([*BASE, "--init-from", str(blob), "--out",
                                                 str(out)]), "--init-from", str(blob))
    assert not out.exists()


def test_train_truncated_checkpoint_points_at_no_resume(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"format": 1, "x": torch.zeros(1000)}, out / qtrain.CHECKPOINT)
    data = (out / qtrain.CHECKPOINT).read_bytes()
    (out / qtrain.CHECKPOINT).write_bytes(data[: len(data) // 2])
    _one_error_line(capsys, lambda: qtrain.main([*BASE, "--out", str(out)]),
                    str(out / qtrain.CHECKPOINT), "--no-resume")


def test_train_keyboard_interrupt_is_one_line_and_130(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(*_a: object, **_k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(qtrain, "train", interrupted)
    assert qtrain.main([*BASE, "--out", str(tmp_path / "run")]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "interrupted" in err[0]


def test_train_sigint_mid_run_in_a_real_process(tmp_path: Path) -> None:
    """A real Ctrl-C while training: one stderr line, exit 130, the run resumable."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "quant.train", *BASE[:-3], "--epochs", "50",
                             "--no-progress", "--out", str(out)], stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not (out / qtrain.CHECKPOINT).exists() and time.monotonic() < deadline:
        time.sleep(0.2)  # wait until training runs (past the imports)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert len(err.strip().splitlines()) == 1, err
    assert (out / qtrain.CHECKPOINT).exists()


def test_table_out_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "afile"
    f.write_text("keep me")
    _one_error_line(capsys, lambda: qtable.main(["--out", str(f), "--recipes", "pact"]),
                    "--out", "not a folder")
    _one_error_line(capsys, lambda: qtable.main(["--out", str(f / "x"), "--recipes", "pact"]),
                    "--out", "cannot write")
    assert _listing(tmp_path) == ["afile"]


def test_table_keyboard_interrupt_is_one_line_and_130(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(*_a: object, **_k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(qtable, "build_table", interrupted)
    assert qtable.main(["--out", str(tmp_path / "t"), "--recipes", "pact"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "interrupted" in err[0]

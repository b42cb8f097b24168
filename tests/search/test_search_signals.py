"""Ctrl-C of ``python -m dse.search --jobs 2`` (issue 12): the interruption line and exit status
130, no Optuna tracebacks from the parent or its workers, no worker left running; a resume then
continues the study."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from killkit import children
from searchkit import tiny_proxy, tiny_resnet

_REPO = Path(__file__).resolve().parents[2]


def _seed_cache(out: Path) -> None:
    """A stand-in workload cached under the name of a zoo model (no torch, no extraction)."""
    out.mkdir(parents=True)
    wl = tiny_resnet()
    wl.save(out / "workload.json")
    (out / "accuracy.json").write_text(json.dumps(tiny_proxy(wl).to_dict()))
    (out / "source.json").write_text(json.dumps({
        "model": "digits_cnn", "recipe": "pact_sawb", "w_bits": 2, "a_bits": 2, "batch": 1,
        "sensitivity": "noise_gain", "seed": 0}))


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_ctrl_c_with_workers_is_one_line_and_exit_130(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _seed_cache(out)
    cmd = [sys.executable, "-m", "dse.search", "--model", "digits_cnn", "--recipe", "pact_sawb",
           "--out", str(out), "--sampler", "random", "--jobs", "2"]
    env = {**os.environ, "PYTHONPATH": str(_REPO)}
    with (tmp_path / "stderr.txt").open("w") as err:
        proc = subprocess.Popen([*cmd, "--trials", "100000"], stdout=subprocess.DEVNULL,
                                stderr=err, env=env, start_new_session=True)
    deadline = time.monotonic() + 90
    workers: set[int] = set()
    while True:
        assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()[-2000:]
        assert time.monotonic() < deadline, "no trials within 90 s"
        workers |= children(proc.pid)
        rows = out / "trials.csv"
        if workers and rows.exists() and len(rows.read_text().splitlines()) > 6:
            break
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends: the whole process group
    assert proc.wait(timeout=60) == 130
    err = (tmp_path / "stderr.txt").read_text()
    assert "Traceback" not in err
    assert "KeyboardInterrupt" not in err
    assert err.strip().splitlines()[-1].startswith("interrupted: finished trials are stored")
    time.sleep(1)
    assert not children(proc.pid) & workers
    for pid in workers:  # the worker was stopped, not orphaned
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    r = subprocess.run([*cmd, "--trials", "2", "--resume"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    df = pd.read_csv(out / "trials.csv")
    assert sorted(df["number"]) == list(range(len(df)))
    assert not (df["state"] == "RUNNING").any()

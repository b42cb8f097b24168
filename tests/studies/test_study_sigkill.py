"""SIGKILL of ``python -m dse.study`` at random points, then a resume (issue 12): nothing lost.

A small study of real simulations (two convolutions on sysml19 designs) runs as a program and
is killed with SIGKILL at points a seeded RNG draws across the run - between points, in the middle
of a cache write, while the report is written - then rerun with the same command. After every
kill each point cached before it is still cached, whole and with its checksum, and is not
evaluated again; the last run completes with the results of a run never interrupted.
"""

from __future__ import annotations

import json
import random
import signal
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from killkit import kill_and_rerun, python_path

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

_STUDY = '''
"""Real simulations to interrupt: two convolutions on sysml19 designs of several sizes."""
import dataclasses
import os
from pathlib import Path

from dse.study.report import Summary

NAME = "killable"
TITLE = "a study to SIGKILL"
PARAMS = {"cores": (1, 4, 16), "dram_gbps": (4.0, 16.0, 64.0, float("inf"))}


def grid(params):
    return [{"cores": c, "dram_gbps": b} for c in params["cores"] for b in params["dram_gbps"]]


def evaluate(point, ctx):
    from arch import presets
    from workloads.graph import Workload  # (torch-free)
    from dse.sim import simulate

    with open(os.environ["KILLABLE_CALLS"], "a") as f:
        f.write(f"{os.getpid()} {point['cores']} {point['dram_gbps']}\\n")
    acc = dataclasses.replace(presets.get("sysml19", dram_gbps=point["dram_gbps"]),
                              cores=point["cores"])
    res = simulate(Workload.load(os.environ["KILLABLE_WORKLOAD"]), acc)
    return [{"images_per_s": res.images_per_s, "energy_j": res.energy_j,
             "dram_bytes": res.dram_bytes, "latency_s": res.latency_s}]


def summarize(results, params):
    best = results.sort_values("images_per_s", ascending=False).head(3)
    return Summary(title="Killable", intro="Throughput of each design.", tables={"best": best})
'''


def _write_workload(path: Path) -> None:
    """input -> c1 (3x3, 3 -> 16) -> c2 (3x3 stride 2, 16 -> 32) -> output, on 16x16 images."""
    from workloads.graph import Layer, Workload


    def conv(name: str, c: int, k: int, stride: int) -> object:
        ho = 16 // stride
        return Layer(name=name, op="conv", n=1, c=c, h=16, w=16, k=k, r=3, s=3,
                     stride=(stride, stride), padding=(1, 1), ho=ho, wo=ho,
                     macs=c * k * 9 * ho * ho, w_bits=2, a_bits=2, o_bits=16,
                     weight_elems=c * k * 9, input_elems=c * 256, output_elems=k * ho * ho,
                     module=name)

    layers = [Layer(name="input", op="input", n=1, k=3, ho=16, wo=16, o_bits=8,
                    output_elems=768),
              conv("c1", 3, 16, 1), conv("c2", 16, 32, 2),
              Layer(name="output", op="output", n=1, k=2048, input_elems=2048)]
    edges = [("input", "c1"), ("c1", "c2"), ("c2", "output")]
    Workload.from_layers(layers, edges, name="two_convs", input_shape=(3, 16, 16)).save(path)


def _setup(tmp_path: Path) -> dict[str, str]:
    pkg = tmp_path / "qdse_killable"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "killable.py").write_text(textwrap.dedent(_STUDY))
    _write_workload(tmp_path / "workload.json")
    return {**python_path(tmp_path), "QDSE_STUDY_PACKAGES": "qdse_killable",
            "KILLABLE_WORKLOAD": str(tmp_path / "workload.json"),
            "KILLABLE_CALLS": str(tmp_path / "calls.log")}


def _entries(out: Path) -> dict[str, dict[str, object]]:
    """The cache entries on disk: file name -> the entry (each must load whole)."""
    folder = out / ".cache" / "killable"
    entries = {}
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        entries[path.name] = json.loads(path.read_text())  # a torn entry fails here
    return entries


def _calls(tmp_path: Path) -> list[tuple[int, str]]:
    log = tmp_path / "calls.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [(int(pid), rest) for pid, rest in (line.split(" ", 1) for line in lines)]


def _label(entry: dict[str, object]) -> str:
    point = entry["point"]
    assert isinstance(point, dict)
    return f"{point['cores']} {point['dram_gbps']}"


def test_sigkill_at_random_points_loses_no_finished_point(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from dse.study.runner import _rows_digest, run_study

    env = _setup(tmp_path)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "dse.study", "killable", "--out", str(out), "--quiet",
           "--format", "csv"]
    n_points = 12
    rng = random.Random(12)

    def check(snapshot: dict[str, dict[str, object]]) -> None:  # cached before the kill
        after = _entries(out)  # every entry still loads (none torn) ...
        assert set(snapshot) <= set(after)  # ... and none is lost
        for name, entry in after.items():
            assert entry["rows_sha256"] == _rows_digest(entry["rows"]), name
        litter = [p.name for p in (out / ".cache" / "killable").glob("*") if p.suffix != ".json"]
        assert all(n.startswith(".") and n.endswith(".tmp") for n in litter), litter  # never read
        if (out / "results.csv").exists():  # reports are whole or absent
            pd.read_csv(out / "results.csv")

    # kill points: after 0-4 newly cached points (three times), then once all are cached (it
    # falls while the report is written), each plus a random delay within a point
    runs = kill_and_rerun(lambda: cmd, env, lambda: _entries(out), check,
                          steps=[*(rng.randint(0, 4) for _ in range(3)), n_points],
                          total=n_points, rng=rng, max_delay_s=0.03,
                          stderr=tmp_path / "stderr.txt")
    kills = sum(run.killed for run in runs)
    assert kills >= 3, f"only {kills} runs were killed before they finished"
    # the last run removed the temporary files the killed runs left (their pids are gone)
    assert not list((out / ".cache").rglob("*.tmp"))
    assert not list(out.glob(".*.tmp"))
    # no run evaluated a point that was cached when it started
    calls = _calls(tmp_path)
    for run in runs:
        cached = {_label(e) for e in run.before.values()}
        again = {label for who, label in calls if who == run.pid} & cached
        assert not again, f"run {run.pid} evaluated cached points again: {sorted(again)}"
    assert {label for _, label in calls} == {_label(e) for e in _entries(out).values()}
    # the same result as a run never interrupted (in-process, no cache)
    import importlib

    monkeypatch.syspath_prepend(str(tmp_path))
    for k in ("KILLABLE_WORKLOAD", "KILLABLE_CALLS"):
        monkeypatch.setenv(k, env[k])
    reference = run_study(importlib.import_module("qdse_killable.killable"), report=False)
    resumed = pd.read_csv(out / "results.csv")
    expected = reference.results.reset_index(drop=True)
    pd.testing.assert_frame_equal(resumed[list(expected.columns)], expected,
                                  check_dtype=False, rtol=1e-12)
    assert pd.read_csv(out / "best.csv")["images_per_s"].iloc[0] == \
        pytest.approx(expected["images_per_s"].max(), rel=1e-12)

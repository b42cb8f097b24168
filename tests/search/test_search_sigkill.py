"""SIGKILL of ``python -m dse.search`` at random points, then ``--resume`` (issue 12): nothing lost.

A grid search of a small space (every design once, so the final result does not depend on where
the run was cut) over a cached `tiny_resnet` runs as a program and is killed with SIGKILL at
points a seeded RNG draws - a few trials in, mid-trial or mid-append to the journal and
trials.csv, and while the final reports are written - then resumed with the same command. After
every kill each trial trials.csv reported finished is still in the journal with the same values,
the journal and every cached file load, and the resumed search ends with the designs, values and
Pareto front of a search never interrupted.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import signal
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from killkit import kill_and_rerun, python_path
from searchkit import seed_cache

from dse.search import make_storage

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

_SPACE = ["--sampler", "grid", "--layer-bits", "mac", "--mac-bits", "2x2,4x4",
          "--arrays", "8x8,16x16", "--sram-kib", "64,128,256", "--quiet"]  # 12 designs
_N = 12
_DESIGN = ["mac_bits", "rows", "cols", "sram_kib", "cores"]
_VALUES = ["images_per_s", "energy_j", "area", "accuracy_proxy"]


def _args(out: Path) -> list[str]:
    return ["--model", "tiny_resnet", "--recipe", "pact_sawb", "--out", str(out),
            "--trials", "1000", *_SPACE]


def _reported(out: Path) -> pd.DataFrame:
    """The finished trials trials.csv holds now (whole lines only: it may be mid-append)."""
    path = out / "trials.csv"
    if not path.exists():
        return pd.DataFrame(columns=["number", "state", *_VALUES])
    text = path.read_bytes()
    text = text[: text.rfind(b"\n") + 1]
    df = pd.read_csv(io.BytesIO(text)) if text.count(b"\n") > 1 else \
        pd.DataFrame(columns=["number", "state", *_VALUES])
    return df[df["state"] == "COMPLETE"]


def _study(out: Path) -> optuna.Study | None:
    """The stored study, as a resume loads it (a torn last record is dropped first)."""
    if not (out / "study.journal").exists():
        return None
    storage = make_storage(None, out)
    names = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=names[0], storage=storage) if names else None


def _journal(out: Path) -> str:
    """Every stored trial, one line each (a failure's diagnosis): number, state, grid point,
    design, owner and retry history."""
    study = _study(out)
    if study is None:
        return "no study stored"
    return "\n".join(f"{t.number} {t.state.name} grid={t.system_attrs.get('grid_id')} "
                     f"params={t.params} worker={t.user_attrs.get('qdse.worker')} "
                     f"retries={t.system_attrs.get('retry_history')}" for t in study.trials)


def _designs(df: pd.DataFrame) -> pd.DataFrame:
    done = df[df["state"] == "COMPLETE"][[*_DESIGN, *_VALUES]]
    return done.sort_values(_DESIGN).reset_index(drop=True)


def test_sigkill_at_random_points_loses_no_finished_trial(tmp_path: Path) -> None:
    from workloads.graph import Workload

    out = tmp_path / "run"
    seed_cache(out)
    rng = random.Random(7)

    def command() -> list[str]:
        resume = ["--resume"] if _study(out) is not None else []
        return [sys.executable, "-m", "dse.search", *_args(out), *resume]

    def check(reported: pd.DataFrame) -> None:  # what the run reported finished before it died
        study = _study(out)  # the journal loads ...
        stored = {t.number: t for t in study.trials} if study is not None else {}
        for row in reported.itertuples():  # ... and holds every reported trial, unchanged
            trial = stored[row.number]
            assert trial.state == optuna.trial.TrialState.COMPLETE
            assert trial.values == pytest.approx([row.images_per_s, row.energy_j], rel=1e-12)
        for name in ("source.json", "accuracy.json"):  # the cached files load
            json.loads((out / name).read_text())
        Workload.load(out / "workload.json")
        for name in ("trials.csv", "pareto.csv"):
            if (out / name).exists():
                pd.read_csv(out / name)
        time.sleep(1.0)  # a trial killed before it named its process is dead after 2 s (storage)

    # kill points: after 0-4 newly reported trials (twice), then once all are reported (it falls
    # while the final reports are written), each plus a random delay within a trial
    runs = kill_and_rerun(command, python_path(), lambda: _reported(out), check,
                          steps=[rng.randint(0, 4), rng.randint(0, 4), _N], total=_N, rng=rng,
                          max_delay_s=0.05, stderr=tmp_path / "stderr.txt")
    kills = sum(run.killed for run in runs)
    assert kills >= 2, f"only {kills} runs were killed before they finished"
    # the resumed search ends as one never interrupted (in-process, same arguments)
    from dse.search import main

    ref = tmp_path / "reference"
    seed_cache(ref)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(_args(ref)) == 0
    got, want = pd.read_csv(out / "trials.csv"), pd.read_csv(ref / "trials.csv")
    assert not (got["state"] == "RUNNING").any()
    assert got["number"].is_unique
    assert len(_designs(got)) == _N, _journal(out)  # each design completed once
    pd.testing.assert_frame_equal(_designs(got), _designs(want), check_dtype=False, rtol=1e-12)
    front, want_front = pd.read_csv(out / "pareto.csv"), pd.read_csv(ref / "pareto.csv")
    pd.testing.assert_frame_equal(_designs(front), _designs(want_front), check_dtype=False,
                                  rtol=1e-12)
    best, want_best = (json.loads((d / "best.json").read_text()) for d in (out, ref))
    assert {**best, "trial": None} == {**want_best, "trial": None}  # numbering differs

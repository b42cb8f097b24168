"""The dse.search CLI: kill -9 and resume, bad input, and workers sharing a PostgreSQL study."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from searchkit import tiny_proxy, tiny_resnet

from dse.search import main, make_storage, run
from dse.space import SearchSpace

FINISHED = ("COMPLETE", "PRUNED", "FAIL")


def _seed_cache(out: Path) -> None:
    """Pre-extracted workload + proxy, as `prepare_workload` caches them (no torch needed)."""
    out.mkdir(parents=True, exist_ok=True)
    wl = tiny_resnet()
    wl.save(out / "workload.json")
    (out / "accuracy.json").write_text(json.dumps(tiny_proxy(wl).to_dict()))
    (out / "source.json").write_text(json.dumps({
        "model": "tiny_resnet", "recipe": "pact_sawb", "w_bits": 2, "a_bits": 2, "batch": 1,
        "sensitivity": "noise_gain", "seed": 0}))


def _cli(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "dse.search", "--model", "tiny_resnet", "--recipe",
            "pact_sawb", "--out", str(out), "--sampler", "random", *extra]


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.exists() else pd.DataFrame({"state": []})


@pytest.mark.slow
def test_sigkill_then_resume_keeps_every_finished_trial(tmp_path):
    out = tmp_path / "run"
    _seed_cache(out)
    log = (tmp_path / "stderr.txt").open("w")  # a file, not a pipe: a full pipe would block
    proc = subprocess.Popen(_cli(out, "--trials", "500"), stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail("search exited early: "
                            + (tmp_path / "stderr.txt").read_text()[-2000:])
            with contextlib.suppress(pd.errors.EmptyDataError, FileNotFoundError):
                if _read_csv(out / "trials.csv")["state"].isin(FINISHED).sum() >= 3:
                    break
            time.sleep(0.05)
        else:
            pytest.fail("no trials finished within 90 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        log.close()
    at_kill = pd.read_csv(out / "trials.csv")  # never torn: rewritten by rename
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(out / "study.journal")))
    stored = optuna.load_study(study_name="tiny_resnet-pact_sawb", storage=storage).trials
    done = {t.number: t for t in stored if t.state.name in FINISHED}
    csv_done = set(at_kill.loc[at_kill["state"].isin(FINISHED), "number"])
    # the CSV is current up to at most the one trial finishing at the instant of the kill
    assert csv_done <= set(done)
    assert len(set(done) - csv_done) <= 1
    n_before = len(stored)

    r = subprocess.run(_cli(out, "--trials", "2", "--resume"), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    after = pd.read_csv(out / "trials.csv").set_index("number")
    assert len(after) == n_before + 2
    for n, t in done.items():  # every trial finished before the kill survives unchanged
        assert after.loc[n, "state"] == t.state.name
        if t.state.name == "COMPLETE":
            assert after.loc[n, "images_per_s"] == pytest.approx(t.values[0])
    # the trial the kill interrupted is marked FAIL, not left RUNNING forever
    assert not (after["state"] == "RUNNING").any()
    assert (after["state"] == "COMPLETE").sum() >= 2


def test_cli_runs_and_reports(tmp_path, capsys):
    out = tmp_path / "cli"
    _seed_cache(out)
    assert main(["--model", "tiny_resnet", "--recipe", "pact_sawb", "--out", str(out),
                 "--trials", "6", "--sampler", "random"]) == 0
    text = capsys.readouterr().out
    assert "trials/s" in text
    assert "proxy:" in text
    df = pd.read_csv(out / "trials.csv")
    assert len(df) == 6
    # first/last/shortcut default to the recipe's bits (16 in the cached workload): not searched
    assert not any(c in df.columns for c in ("w:c1", "w:fc", "w:sc"))
    assert {"w:c2", "a:c2", "w:c3", "a:c3"} <= set(df.columns)
    # without --resume an existing study is refused with a one-line error, exit 2
    assert main(["--model", "tiny_resnet", "--recipe", "pact_sawb", "--out", str(out),
                 "--trials", "1"]) == 2
    assert "--resume" in capsys.readouterr().err


@pytest.mark.parametrize("args", [
    ["--objectives", "speed"],
    ["--mac-bits", "2by2"],
    ["--cores", "8:2"],
    ["--min-accuracy", "high"],
    ["--bits", "2,x"],
    ["--bits", "0,2"],
    ["--sram-kib", "-5"],
    ["--sram-kib", "lots"],
    ["--accuracy", "measured"],
])
def test_cli_bad_input_exit_2(tmp_path, capsys, args):
    out = tmp_path / "bad"
    _seed_cache(out)
    code = main(["--model", "tiny_resnet", "--recipe", "pact_sawb", "--out", str(out),
                 "--trials", "1", *args])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error:")


def test_worker_unknown_study(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert main(["worker", "--storage", url, "--study", "nope", "--trials", "1"]) == 2
    assert "unknown study 'nope'" in capsys.readouterr().err


# -- PostgreSQL --------------------------------------------------------------------------------
def _pg_bin() -> Path | None:
    exe = shutil.which("pg_ctl")
    if exe:
        return Path(exe).resolve().parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL server on localhost (initdb + pg_ctl in a temp dir)."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (pg_ctl) on PATH or in /usr/lib/postgresql")
    pytest.importorskip("psycopg2")
    root = Path(tempfile.mkdtemp(prefix="qdse-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root: drop to 'nobody'
        user = pwd.getpwnam("nobody")
        os.chown(root, user.pw_uid, user.pw_gid)
        os.chmod(root, 0o700)
        if shutil.which("setpriv"):
            prefix = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                      "--clear-groups"]
        else:
            prefix = ["runuser", "-u", "nobody", "--"]
    data, port = root / "data", _free_port()
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U",
                    "postgres"], check=True, capture_output=True, timeout=120)
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"),
                    "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "-w", "start"],
                   check=True, capture_output=True, timeout=120)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.postgres
def test_two_workers_share_one_postgres_study(postgres_url, tmp_path):
    wl = tiny_resnet()
    space = SearchSpace(layer_bits="search", first_last_bits=16, shortcut_bits=16,
                        sram_kib=(512.0, 1024.0))
    # the creating process stores the whole problem in the study; workers need only the URL
    run(space, ["images_per_s", "energy_j"], workload=wl, n_trials=0, storage=postgres_url,
        study_name="pg", sampler="nsga2", accuracy=tiny_proxy(wl), area_budget=14.0)
    cmd = [sys.executable, "-m", "dse.search", "worker", "--storage", postgres_url, "--study",
           "pg", "--trials", "4"]
    procs = [subprocess.Popen([*cmd, "--worker-index", str(i)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in (1, 2)]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-2000:]
    study = optuna.load_study(study_name="pg", storage=make_storage(postgres_url, None))
    trials = study.trials
    assert len(trials) == 8  # every trial recorded once
    assert sorted(t.number for t in trials) == list(range(8))
    assert len({t._trial_id for t in trials}) == 8
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    assert len({t.user_attrs["qdse.worker"]["pid"] for t in trials}) == 2

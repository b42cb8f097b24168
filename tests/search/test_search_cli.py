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
import stat
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
from dse.search.space import SearchSpace

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


@pytest.mark.parametrize(("url", "why"), [
    # port 1 refuses at once: no server needed
    ("postgresql://me:s3cret@127.0.0.1:1/qdse", "127.0.0.1"),
    ("sqlite:////nonexistent/dir/x.db", "'/nonexistent/dir' does not exist"),
    ("journal:/nonexistent/dir/study.journal", "No such file or directory"),
])
@pytest.mark.parametrize("worker", [False, True])
def test_unreachable_storage_is_one_line_exit_2(tmp_path, capsys, monkeypatch, url, why, worker):
    import dse.search.cli

    def no_extraction(*_a, **_k):
        raise AssertionError("the storage must be checked before the extraction")

    monkeypatch.setattr(dse.search.cli, "prepare_workload", no_extraction)
    if worker:
        argv = ["worker", "--storage", url, "--study", "s", "--trials", "1"]
    else:
        argv = ["--model", "alexnet", "--recipe", "pact_sawb", "--out", str(tmp_path / "o"),
                "--trials", "1", "--storage", url]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    masked = url.replace("s3cret", "***")
    assert err[0].startswith(f"error: storage={masked!r} cannot be opened: ")
    assert why in err[0]
    assert "s3cret" not in err[0]


def test_run_raises_value_error_for_unreachable_storage(tiny_workload):
    with pytest.raises(ValueError, match=r"storage='postgresql://u:\*\*\*@127.0.0.1:1/x'"):
        run(SearchSpace(), ["images_per_s"], workload=tiny_workload, n_trials=1,
            storage="postgresql://u:pw@127.0.0.1:1/x", area_budget=14.0)


@pytest.mark.parametrize("args", [
    ["--cores", "8:2"],
    ["--area-budget", "0.1"],  # not even the smallest design of the space fits
    ["--area-budget", "-1"],
    ["--objectives", "speed"],
    ["--sampler", "random", "--dram-gbps", "0"],
    ["--min-accuracy", "high"],
    ["--bits", "0,2"],
    ["--batch", "0"],
    ["--accuracy", "measured"],
])
def test_bad_space_or_problem_fails_before_extraction(tmp_path, capsys, monkeypatch, args):
    """No cached workload in --out: reaching prepare_workload would mean a ~20 s extraction."""
    import dse.search.cli

    def no_extraction(*_a, **_k):
        raise AssertionError("bad input must be rejected before the workload is extracted")

    monkeypatch.setattr(dse.search.cli, "prepare_workload", no_extraction)
    code = main(["--model", "alexnet", "--recipe", "pact_sawb", "--out", str(tmp_path / "o"),
                 "--trials", "1", *args])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error:")


def test_cli_output_has_no_optuna_info_lines(tmp_path):
    """stderr (a pipe here, not a terminal) holds at most a progress line per 10 % of the
    trials (the extraction is cached: no note before it); nothing at all with --quiet."""
    out = tmp_path / "quiet"
    _seed_cache(out)
    r = subprocess.run(_cli(out, "--trials", "20"), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "A new study created" not in r.stderr + r.stdout
    assert "[I " not in r.stderr  # no Optuna INFO record at all
    progress = r.stderr.strip().splitlines()
    assert 1 <= len(progress) <= 10, progress
    assert all(ln.startswith("tiny_resnet-pact_sawb: ") for ln in progress), progress
    assert progress[-1].startswith("tiny_resnet-pact_sawb: 100% (20/20 trials)")
    assert "\r" not in r.stderr  # no redraws in a log
    r = subprocess.run(_cli(out, "--trials", "2", "--resume", "--quiet"), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr == ""


def test_study_names_its_metrics_and_stores_each_metric_alone(tmp_path, tiny_workload):
    """optuna-dashboard shows the objective names and one attribute per metric."""
    study = run(SearchSpace(), ["images_per_s", "energy_j"], workload=tiny_workload,
                n_trials=3, sampler="random", out=tmp_path, area_budget=50.0)
    stored = optuna.load_study(study_name=study.study_name,
                               storage=make_storage(None, tmp_path))
    assert stored.metric_names == ["images_per_s", "energy_j"]
    done = [t for t in stored.trials if t.state.name == "COMPLETE"]
    assert done
    for t in done:
        assert "qdse.metrics" not in t.user_attrs
        assert t.user_attrs["images_per_s"] == pytest.approx(t.values[0])
        assert t.user_attrs["energy_j"] == pytest.approx(t.values[1])
        assert {"area", "cores", "mac_bits", "feasible"} <= set(t.user_attrs)


def test_cli_default_constraint_rejects_designs_and_reports_it(tmp_path, capsys):
    """Default --bits reach below the recipe's 2 bits, so --min-accuracy recipe can bite."""
    out = tmp_path / "floor"
    _seed_cache(out)
    assert main(["--model", "tiny_resnet", "--recipe", "pact_sawb", "--out", str(out),
                 "--trials", "16", "--sampler", "random"]) == 0
    text = capsys.readouterr().out
    df = pd.read_csv(out / "trials.csv")
    assert df["w:c2"].min() == 1  # a choice below the recipe's bits
    done = df[df["state"] == "COMPLETE"]
    below = done[~done["feasible"].astype(bool)]
    assert len(below) > 0
    assert (below["accuracy_proxy"] < below["min_accuracy"]).all()
    assert f"{len(done) - len(below)} feasible, {len(below)} below the accuracy floor" in text
    assert "accuracy_proxy column = proxy:" in text


def test_cli_resume_with_other_settings_is_one_line_exit_2(tmp_path, capsys):
    out = tmp_path / "resume"
    _seed_cache(out)  # cached for --seed 0 (another seed would re-extract; see test_search.py)
    base = ["--model", "tiny_resnet", "--recipe", "pact_sawb", "--out", str(out)]
    assert main([*base, "--trials", "2", "--sampler", "random"]) == 0
    capsys.readouterr()
    assert main([*base, "--trials", "1", "--resume", "--sampler", "tpe"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "sampler='tpe' differs from the stored study's 'random'" in err[0]
    assert main([*base, "--trials", "1", "--resume", "--sampler", "random",
                 "--accuracy", "none", "--min-accuracy", "none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "accuracy='none' differs from the stored study's 'proxy:" in err[0]
    assert main([*base, "--trials", "1", "--resume", "--sampler", "random"]) == 0
    assert len(pd.read_csv(out / "trials.csv")) == 3


def test_temp_base_skips_a_private_tmpdir(tmp_path, monkeypatch):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    uid = gid = 65534  # 'nobody' on Debian; owns nothing here
    assert not _enterable_by(private, uid, gid)
    base = _temp_base_for(uid, gid)
    if base is not None:
        assert private not in (base, *base.parents)
        assert _enterable_by(base, uid, gid)


# -- PostgreSQL --------------------------------------------------------------------------------
def _pg_version(path: str) -> tuple[int, ...]:
    """``/usr/lib/postgresql/9.6/bin/pg_ctl`` -> (9, 6): versions compare as numbers."""
    folder = Path(path).parent.parent.name
    return tuple(int(x) if x.isdigit() else -1 for x in folder.split("."))


def _pg_bin() -> Path | None:
    exe = shutil.which("pg_ctl")
    if exe:
        return Path(exe).resolve().parent
    found = glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")
    return Path(max(found, key=_pg_version)).parent if found else None


def test_pg_bin_prefers_the_newest_version_numerically():
    paths = [f"/usr/lib/postgresql/{v}/bin/pg_ctl" for v in ("9.6", "15", "10", "13")]
    assert max(paths, key=_pg_version) == "/usr/lib/postgresql/15/bin/pg_ctl"


def _enterable_by(path: Path, uid: int, gid: int) -> bool:
    """Whether a process with this uid/gid (no other groups) can traverse path and parents."""
    for d in (path, *path.parents):
        st = d.stat()
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _temp_base_for(uid: int, gid: int) -> Path | None:
    """A temp folder the server's user can reach: $TMPDIR may be private to root."""
    for c in (tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"):
        d = Path(c).resolve()
        if d.is_dir() and os.access(d, os.W_OK) and _enterable_by(d, uid, gid):
            return d
    return None


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
    prefix: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root: drop to 'nobody'
        user = pwd.getpwnam("nobody")
        base = _temp_base_for(user.pw_uid, user.pw_gid)
        if base is None:
            pytest.skip("no temp folder that 'nobody' can enter for the PostgreSQL data dir")
        root = Path(tempfile.mkdtemp(prefix="qdse-pg-", dir=base))
        os.chown(root, user.pw_uid, user.pw_gid)
        os.chmod(root, 0o700)
        if shutil.which("setpriv"):
            prefix = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                      "--clear-groups"]
        else:
            prefix = ["runuser", "-u", "nobody", "--"]
    else:
        root = Path(tempfile.mkdtemp(prefix="qdse-pg-"))
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

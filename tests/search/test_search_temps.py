"""The temporary files of a search's outputs are named ``.<name>.<pid>.<random>.tmp``
(`dse.study.atomic`), and a search that opens its folder removes those a killed process left -
only those: the exact name, a pid no longer running (the study runner's rule), and older than a
minute (a worker on another machine sharing the folder has pids that mean nothing here)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from searchkit import tiny_resnet

from dse.search import run, worker
from dse.search.space import SearchSpace
from dse.study.atomic import _TEMP_NAME

pytestmark = pytest.mark.skipif(os.name != "posix", reason="probes pids with os.kill(pid, 0)")

SPACE = SearchSpace(mac_bits=((2, 2), (4, 4)), array_shapes=((8, 8),), sram_kib=(64.0,),
                    layer_bits="mac")


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    out = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                         capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_every_temporary_of_a_search_is_named_for_the_clean_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    renamed: list[str] = []
    replace, link = os.replace, os.link

    def spy_replace(src: Any, dst: Any) -> None:
        renamed.append(Path(src).name)
        replace(src, dst)

    def spy_link(src: Any, dst: Any, **kw: Any) -> None:
        renamed.append(Path(src).name)
        link(src, dst, **kw)

    monkeypatch.setattr(os, "replace", spy_replace)
    monkeypatch.setattr(os, "link", spy_link)
    run(SPACE, ["images_per_s", "energy_j"], workload=tiny_resnet(), n_trials=3, out=tmp_path,
        sampler="random")
    # trials.csv (created by a link), pareto.csv, pareto.png/.svg, best.json, summary.txt, ...
    assert len(renamed) >= 6, renamed
    for name in renamed:
        m = _TEMP_NAME.fullmatch(name)
        assert m is not None, name
        assert int(m["pid"]) == os.getpid(), name
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_search_removes_only_the_temporaries_of_dead_writers(tmp_path: Path,
                                                               dead_pid: int) -> None:
    live = os.getppid()  # the process that started pytest: running, another pid than ours
    stale = [f".trials.csv.{dead_pid}.ab_c12xy.tmp", f".pareto.png.{dead_pid}.zz99zz99.tmp",
             f".best.json.{dead_pid}.k2j4h5g6.tmp"]
    keep = [f".pareto.csv.{live}.ab_c12xy.tmp",  # a live worker is writing it
            ".summary.txt.qwertyui.tmp",  # no pid: whose it is cannot be told
            f".best.json.{dead_pid}.short.tmp",  # not the random part of a temporary
            f"trials.csv.{dead_pid}.ab_c12xy.tmp",  # no leading dot
            "notes.tmp", ".hidden"]
    fresh = f".pareto.csv.{dead_pid}.fr3sh000.tmp"  # as another machine's live writer's
    old = time.time() - 3600
    for name in stale + keep + [fresh]:
        (tmp_path / name).write_text("torn")
        if name != fresh:
            os.utime(tmp_path / name, (old, old))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / stale[0]).write_text("torn")  # not the search's folder
    run(SPACE, ["images_per_s"], workload=tiny_resnet(), n_trials=2, out=tmp_path,
        sampler="random")
    names = {p.name for p in tmp_path.iterdir()}
    assert not names & set(stale)
    assert {*keep, fresh} <= names
    assert (tmp_path / "sub" / stale[0]).exists()


def test_a_worker_joining_a_search_cleans_its_folder_too(tmp_path: Path, dead_pid: int) -> None:
    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    out = tmp_path / "out"
    run(SPACE, ["images_per_s"], workload=tiny_resnet(), n_trials=1, out=out, sampler="random",
        storage=storage, study_name="s")
    stale = out / f".trials.csv.{dead_pid}.ab_c12xy.tmp"
    stale.write_text("torn")
    os.utime(stale, (time.time() - 3600,) * 2)
    worker(storage, "s", 1, out=out)
    assert not stale.exists()


def _spy_replace(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    renamed: list[str] = []
    replace = os.replace

    def spy(src: Any, dst: Any) -> None:
        renamed.append(Path(src).name)
        replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    return renamed


def test_the_measured_accuracy_cache_is_written_through_a_named_temporary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dse.search.accuracy import MeasuredAccuracy

    renamed = _spy_replace(monkeypatch)
    m = MeasuredAccuracy(lambda bits: 0.5, cache_path=tmp_path / "measured_accuracy.json")
    assert m({"c1": (2, 2)}) == 0.5
    assert renamed
    assert all(_TEMP_NAME.fullmatch(n) for n in renamed), renamed
    assert [p.name for p in tmp_path.iterdir()] == ["measured_accuracy.json"]


def test_the_cached_workload_files_are_written_through_named_temporaries(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`prepare_workload` with the extraction and the proxy replaced by the tiny ones (a real
    extraction takes ~20 s): workload.json, accuracy.json and source.json, renamed into place."""
    torch = pytest.importorskip("torch")
    from searchkit import tiny_proxy

    import workloads
    from dse.search.accuracy import ProxyAccuracy
    from dse.search.workload import prepare_workload

    wl = tiny_resnet()
    monkeypatch.setattr(workloads.zoo, "get", lambda *a, **k: torch.nn.Identity())
    monkeypatch.setattr(workloads, "extract", lambda *a, **k: wl)
    monkeypatch.setattr(ProxyAccuracy, "from_model", lambda *a, **k: tiny_proxy(wl))
    renamed = _spy_replace(monkeypatch)
    prepare_workload("digits_cnn", "fp32", tmp_path, w_bits=2, a_bits=2)
    assert len(renamed) == 3, renamed
    assert all(_TEMP_NAME.fullmatch(n) for n in renamed), renamed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accuracy.json", "source.json",
                                                          "workload.json"]

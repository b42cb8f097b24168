"""A run killed mid-write leaves `atomic_write`'s temporary file behind; the next run of the study
removes those of dead processes when it opens its cache, and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dse.study.atomic import _TEMP_NAME, atomic_write, atomic_write_text, remove_stale_temps
from dse.study.runner import run_study

pytestmark = pytest.mark.skipif(os.name != "posix", reason="probes pids with os.kill(pid, 0)")


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    out = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                         capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_atomic_write_names_its_temporary_file_by_pid(tmp_path: Path) -> None:
    seen: list[str] = []
    atomic_write(tmp_path / "a.json", lambda p: seen.append(p.name) or p.write_text("{}"))
    m = _TEMP_NAME.fullmatch(seen[0])
    assert m is not None, seen
    assert m["target"] == "a.json"
    assert int(m["pid"]) == os.getpid()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def _plant(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_text("torn")


def test_only_the_temporaries_of_dead_writers_go(tmp_path: Path, dead_pid: int) -> None:
    live = os.getppid()  # the process that started pytest: running, another pid than ours
    stale = [f".k1.json.{dead_pid}.ab_c12xy.tmp", f".results.csv.{dead_pid}.zz99zz99.tmp"]
    keep = [f".k2.json.{live}.ab_c12xy.tmp",  # a live run is writing it
            f".k3.json.{os.getpid()}.ab_c12xy.tmp",  # this process is
            ".k4.json.qwertyui.tmp",  # pid-less (an earlier version's): only with legacy=True
            f".k5.json.{dead_pid}.short.tmp",  # not mkstemp's 8 random characters
            f"k6.json.{dead_pid}.ab_c12xy.tmp",  # no leading dot
            f".k7.json.{dead_pid}.ab_c12xy.tmp.tmp",  # not ending in one .tmp
            ".k8.tmp", "k9.json", ".hidden", "notes.tmp"]
    _plant(tmp_path, stale + keep)
    _plant(tmp_path / "sub", [stale[0]])
    assert sorted(p.name for p in remove_stale_temps(tmp_path)) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*keep, "sub"])
    assert (tmp_path / "sub" / stale[0]).exists()  # not recursive unless told
    removed = remove_stale_temps(tmp_path, recursive=True, legacy=True)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in removed) == \
        [".k4.json.qwertyui.tmp", f"sub/{stale[0]}"]
    assert remove_stale_temps(tmp_path / "absent") == []


def test_a_study_run_removes_the_litter_of_a_killed_run(fake_study, tmp_path: Path,
                                                        dead_pid: int) -> None:
    first = run_study(fake_study, out=tmp_path, formats=("csv",)).results
    cache = tmp_path / ".cache" / "fake_study"
    entries = sorted(p.name for p in cache.iterdir())
    litter = {cache / f".{entries[0]}.{dead_pid}.x1y2z3ab.tmp",  # a point being cached
              cache / f".{entries[1]}.abcdefgh.tmp",  # the same, written by an earlier version
              tmp_path / ".cache" / "artefacts" / f".w.json.{dead_pid}.x1y2z3ab.tmp",
              tmp_path / f".results.csv.{dead_pid}.x1y2z3ab.tmp"}  # the report
    mine = {cache / "notes.txt", tmp_path / ".results.csv.abcdefgh.tmp",  # the report folder is
            tmp_path / "my.tmp"}                                      # not only ours: pids only
    for p in litter | mine:
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(p, "torn")  # whole files under the names a kill leaves
    again = run_study(fake_study, out=tmp_path, formats=("csv",))
    assert again.info.cached == again.info.points  # every point still reused
    assert again.results.equals(first)
    assert not [p for p in litter if p.exists()]
    assert all(p.exists() for p in mine)
    assert sorted(p.name for p in cache.iterdir()) == sorted([*entries, "notes.txt"])


def test_atomic_create_never_overwrites_and_leaves_no_temporary(tmp_path: Path) -> None:
    from dse.study.atomic import atomic_create

    path = tmp_path / "sub" / "trials.csv"
    assert atomic_create(path, lambda p: p.write_text("first\n"))
    assert not atomic_create(path, lambda p: p.write_text("second\n"))  # another got there first
    assert path.read_text() == "first\n"
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # not mkstemp's 0600
    assert [p.name for p in path.parent.iterdir()] == ["trials.csv"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_older_than_keeps_recent_temporaries(tmp_path: Path, dead_pid: int) -> None:
    """A folder shared with other machines: a dead pid there may be a live writer elsewhere, so
    ``older_than_s`` keeps what was written recently."""
    old, new = f".a.json.{dead_pid}.ab_c12xy.tmp", f".b.json.{dead_pid}.ab_c12xy.tmp"
    _plant(tmp_path, [old, new])
    os.utime(tmp_path / old, (0, 0))
    assert [p.name for p in remove_stale_temps(tmp_path, older_than_s=60)] == [old]
    assert [p.name for p in tmp_path.iterdir()] == [new]

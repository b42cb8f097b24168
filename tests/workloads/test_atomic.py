"""`workloads.atomic`, qdse's one atomic-write implementation, in both its shapes (a writer of an
open file, `atomic_file`; a writer of a path, `atomic_path`), and `dse.study.atomic` built on it:
the temporary is sealed (mode, fsync) before it is renamed, an error leaves the old file and no
temporary, and the stale-temporary rule is the same object for every caller."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import dse.study.atomic as study_atomic
from workloads import atomic


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """The fsyncs (which file: its inode) and renames, in order; the file shape also records
    whether the written file was closed by then."""
    seen: list[tuple[str, Any]] = []
    fsync, replace, link = os.fsync, os.replace, os.link

    def spy_fsync(fd: int) -> None:
        seen.append(("fsync", os.fstat(fd).st_ino))
        fsync(fd)

    def spy_replace(src: Any, dst: Any) -> None:
        seen.append(("replace", os.stat(src).st_ino))
        replace(src, dst)

    def spy_link(src: Any, dst: Any, **kw: Any) -> None:
        seen.append(("link", os.stat(src).st_ino))
        link(src, dst, **kw)

    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "replace", spy_replace)
    monkeypatch.setattr(os, "link", spy_link)
    return seen


def _shapes() -> dict[str, Any]:
    """Each way to write ``data`` to a path, by its module and shape."""
    def by_path(path: Path, data: bytes) -> None:
        with atomic.atomic_path(path) as tmp:
            tmp.write_bytes(data)

    def by_file(path: Path, data: bytes) -> None:
        with atomic.atomic_file(path) as f:
            f.write(data)

    return {"atomic_path": by_path, "atomic_file": by_file,
            "atomic_write": lambda path, data: atomic.atomic_write(path, lambda f: f.write(data)),
            "atomic_write_text": lambda path, data: atomic.atomic_write_text(path, data.decode()),
            "dse atomic_write": lambda path, data: study_atomic.atomic_write(
                path, lambda p: p.write_bytes(data)),
            "dse atomic_write_text": lambda path, data: study_atomic.atomic_write_text(
                path, data.decode())}


SHAPES = _shapes()


@pytest.mark.parametrize("shape", SHAPES)
def test_the_file_is_fsynced_then_renamed_with_the_usual_mode(
        tmp_path: Path, calls: list[tuple[str, Any]], shape: str) -> None:
    path = tmp_path / "a.csv"
    SHAPES[shape](path, b"x,y\n1,2\n")
    assert path.read_bytes() == b"x,y\n1,2\n"
    assert [c[0] for c in calls][-2:] == ["fsync", "replace"]
    assert calls[-2][1] == calls[-1][1] == path.stat().st_ino  # the file renamed is the one synced
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()  # not mkstemp's 0600
    assert [p.name for p in tmp_path.iterdir()] == ["a.csv"]


def _interrupted(*args: Any) -> None:
    raise RuntimeError("interrupted")


def _half_by_path(path: Path) -> None:
    with atomic.atomic_path(path) as tmp:
        tmp.write_bytes(b"new, half")
        _interrupted()


def _half_by_file(path: Path) -> None:
    with atomic.atomic_file(path) as f:
        f.write(b"new, half")
        _interrupted()


HALF_WRITES = {  # a writer that writes part of the file, then fails
    "atomic_path": _half_by_path,
    "atomic_file": _half_by_file,
    "atomic_write": lambda path: atomic.atomic_write(
        path, lambda f: (f.write(b"new, half"), _interrupted())),
    "dse atomic_write": lambda path: study_atomic.atomic_write(
        path, lambda p: (p.write_bytes(b"new, half"), _interrupted())),
}


@pytest.mark.parametrize("shape", HALF_WRITES)
def test_an_error_inside_the_writer_keeps_the_old_file(tmp_path: Path, shape: str) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"old\n")
    with pytest.raises(RuntimeError, match="interrupted"):
        HALF_WRITES[shape](path)
    assert path.read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.csv"]


def test_the_file_is_closed_before_it_is_renamed(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows cannot rename an open file: `atomic_file` closes it first."""
    opened: list[Any] = []
    replace = os.replace

    def check(src: Any, dst: Any) -> None:
        assert opened
        assert opened[0].closed
        replace(src, dst)

    monkeypatch.setattr(os, "replace", check)
    with atomic.atomic_file(tmp_path / "a.bin") as f:
        opened.append(f)
        f.write(b"\x00\x01")
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"


def test_folders_are_created_on_request_only(tmp_path: Path) -> None:
    deep = tmp_path / "x" / "y" / "a.txt"
    with pytest.raises(FileNotFoundError):
        atomic.atomic_write_text(deep, "a")
    assert list(tmp_path.iterdir()) == []
    atomic.atomic_write_text(deep, "a", parents=True)
    study_atomic.atomic_write_text(tmp_path / "z" / "b.txt", "b")  # the reports' default
    assert deep.read_text() == "a"
    assert (tmp_path / "z" / "b.txt").read_text() == "b"


def test_atomic_create_seals_the_file_and_the_first_wins(
        tmp_path: Path, calls: list[tuple[str, Any]]) -> None:
    path = tmp_path / "sub" / "trials.csv"
    assert study_atomic.atomic_create(path, lambda p: p.write_text("first\n"))
    assert [c[0] for c in calls] == ["fsync", "link"]
    assert not atomic.atomic_create(path, lambda p: p.write_text("second\n"))
    assert path.read_text() == "first\n"
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert [p.name for p in path.parent.iterdir()] == ["trials.csv"]


def test_dse_shares_the_stale_temporary_rule() -> None:
    """One rule for every writer: the name pattern and the clean-up are workloads.atomic's."""
    assert study_atomic.remove_stale_temps is atomic.remove_stale_temps
    assert study_atomic._TEMP_NAME is atomic.TEMP_NAME

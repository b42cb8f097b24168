"""Every file the workloads package writes - `Workload.save`, `Workload.to_scalesim` and
``python -m workloads.show --json`` - goes through `workloads.atomic`: a temporary file of its own
(``.<name>.<pid>.<random>.tmp`` beside the target, fsync, ``os.replace``), so two writers of one
file never share a temporary, a failed write leaves the old file and no temporary, and what a
killed writer leaves is the litter `workloads.atomic.remove_stale_temps` removes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from workloads.atomic import TEMP_NAME, remove_stale_temps
from workloads.graph import Layer, Workload

ROOT = Path(__file__).resolve().parents[2]


def _chain(name: str, k: int) -> Workload:
    layers = [Layer(name="input", op="input", n=1, k=3, ho=4, wo=4, o_bits=8, output_elems=48),
              Layer(name="fc", op="linear", n=1, c=48, k=k, macs=48 * k, w_bits=8, a_bits=8,
                    o_bits=16, weight_elems=48 * k, input_elems=48, output_elems=k, module="fc"),
              Layer(name="output", op="output", n=1, k=k, input_elems=k)]
    return Workload.from_layers(layers, [("input", "fc"), ("fc", "output")], name=name,
                                input_shape=(3, 4, 4))


def _show_json(wl: Workload, path: Path) -> None:
    from workloads.show import _save_json  # imports torch: only the tests that use it pay

    _save_json(wl, path)


WRITERS: dict[str, Callable[[Workload, Path], object]] = {
    "save": lambda wl, path: wl.save(path),
    "to_scalesim": lambda wl, path: wl.to_scalesim(path, format="gemm"),
    "show --json": _show_json,
}
TORCH_FREE = ("save", "to_scalesim")  # a subprocess of these starts in a moment


@pytest.mark.parametrize("writer", WRITERS)
def test_every_writer_names_its_temporary_for_the_clean_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str) -> None:
    seen: list[str] = []
    replace = os.replace

    def spy(src: Any, dst: Any) -> None:
        seen.append(Path(src).name)
        assert Path(src).parent == tmp_path  # same folder: the rename stays atomic
        replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    WRITERS[writer](_chain("a", 10), tmp_path / "out.txt")
    assert len(seen) == 1, seen
    m = TEMP_NAME.fullmatch(seen[0])
    assert m is not None, seen
    assert (m["target"], int(m["pid"])) == ("out.txt", os.getpid())
    assert seen[0] != f".out.txt.{os.getpid()}..tmp"  # a random part after the pid
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_two_writers_of_one_file_do_not_collide(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The second writer saves the same path while the first is between write and rename (what
    two processes saving at once do): each renames its own file and the last rename wins."""
    path = tmp_path / "workload.json"
    replace = os.replace
    calls = 0

    def interleave(src: Any, dst: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:  # the first writer's rename: the second writer runs in between
            _chain("second", 20).save(path)
        replace(src, dst)

    monkeypatch.setattr(os, "replace", interleave)
    _chain("first", 10).save(path)
    back = Workload.load(path)
    assert (back.name, back.compute_layers()[0].k) == ("first", 10)
    assert [p.name for p in tmp_path.iterdir()] == ["workload.json"]


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL and pid probes")
@pytest.mark.parametrize("writer", TORCH_FREE)  # `show --json` writes through `save`
@pytest.mark.parametrize("kill_at", ["fsync", "replace"])
def test_a_writer_killed_mid_write_leaves_only_what_the_clean_up_removes(
        tmp_path: Path, writer: str, kill_at: str) -> None:
    """SIGKILL once the data is in the temporary (at its fsync or at the rename): the old file
    stays whole, and the one temporary left is what `remove_stale_temps` removes."""
    path = tmp_path / "out.txt"
    WRITERS[writer](_chain("old", 10), path)
    before = path.read_bytes()
    here = Path(__file__).parent
    code = ("import os, signal, sys\n"
            f"sys.path[:0] = [{str(ROOT)!r}, {str(here)!r}]\n"
            "from test_save_atomic import WRITERS, _chain\n"
            f"os.{kill_at} = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
            f"WRITERS[{writer!r}](_chain('new', 20), {str(path)!r})\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    litter = sorted(p.name for p in tmp_path.iterdir() if p.name != "out.txt")
    assert len(litter) == 1, litter  # the killed writer's temporary, not renamed
    assert TEMP_NAME.fullmatch(litter[0])
    assert path.read_bytes() == before  # readers never saw a half-written file
    assert remove_stale_temps(tmp_path, older_than_s=3600) == []  # the search folders' rule
    assert [p.name for p in remove_stale_temps(tmp_path)] == litter
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("fail_at", ["fsync", "replace"])
def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str, fail_at: str) -> None:
    path = tmp_path / "out.txt"
    WRITERS[writer](_chain("old", 10), path)
    before = path.read_bytes()

    def fail(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, fail_at, fail)
    error = ValueError if writer == "show --json" else OSError  # the CLI names its flag
    with pytest.raises(error, match="No space left on device") as info:
        WRITERS[writer](_chain("new", 20), path)
    if writer == "show --json":
        assert str(info.value).startswith(f"--json={str(path)!r} cannot be written")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_failed_first_write_leaves_nothing(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(src: Any, dst: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        _chain("a", 10).save(tmp_path / "workload.json")
    assert list(tmp_path.iterdir()) == []

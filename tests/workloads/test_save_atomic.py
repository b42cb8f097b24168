"""`Workload.save` writes through a temporary file of its own (``.<name>.<pid>.<random>.tmp``
beside the target, fsync, ``os.replace``): two writers of one file never share a temporary, and
what a killed writer leaves is the litter `dse.study.atomic.remove_stale_temps` removes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dse.study.atomic import _TEMP_NAME, remove_stale_temps
from workloads.graph import Layer, Workload

ROOT = Path(__file__).resolve().parents[2]


def _chain(name: str, k: int) -> Workload:
    layers = [Layer(name="input", op="input", n=1, k=3, ho=4, wo=4, o_bits=8, output_elems=48),
              Layer(name="fc", op="linear", n=1, c=48, k=k, macs=48 * k, w_bits=8, a_bits=8,
                    o_bits=16, weight_elems=48 * k, input_elems=48, output_elems=k, module="fc"),
              Layer(name="output", op="output", n=1, k=k, input_elems=k)]
    return Workload.from_layers(layers, [("input", "fc"), ("fc", "output")], name=name,
                                input_shape=(3, 4, 4))


def test_the_temporary_file_is_named_for_the_clean_up(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    replace = os.replace

    def spy(src: Any, dst: Any) -> None:
        seen.append(Path(src).name)
        assert Path(src).parent == tmp_path  # same folder: the rename stays atomic
        replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    _chain("a", 10).save(tmp_path / "workload.json")
    m = _TEMP_NAME.fullmatch(seen[0])
    assert m is not None, seen
    assert (m["target"], int(m["pid"])) == ("workload.json", os.getpid())
    assert [p.name for p in tmp_path.iterdir()] == ["workload.json"]
    assert Workload.load(tmp_path / "workload.json").name == "a"


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
def test_a_writer_killed_mid_save_leaves_only_what_the_clean_up_removes(tmp_path: Path) -> None:
    path = tmp_path / "workload.json"
    _chain("old", 10).save(path)
    before = path.read_bytes()
    here = Path(__file__).parent
    code = ("import os, signal, sys\n"
            f"sys.path[:0] = [{str(ROOT)!r}, {str(here)!r}]\n"
            "from test_save_atomic import _chain\n"
            "os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
            f"_chain('new', 20).save({str(path)!r})\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    litter = sorted(p.name for p in tmp_path.iterdir() if p.name != "workload.json")
    assert len(litter) == 1, litter  # the killed writer's temporary, complete but not renamed
    assert path.read_bytes() == before  # readers never saw a half-written file
    assert [p.name for p in remove_stale_temps(tmp_path)] == litter
    assert [p.name for p in tmp_path.iterdir()] == ["workload.json"]


def test_a_failed_save_removes_its_temporary(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(src: Any, dst: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        _chain("a", 10).save(tmp_path / "workload.json")
    assert list(tmp_path.iterdir()) == []

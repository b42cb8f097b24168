"""Signals to ``python -m dse.study --jobs 2`` (issue 12): Ctrl-C prints one line and exits 130,
SIGKILL leaves no pool worker or resource tracker alive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from killkit import children, python_path

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

_SLEEPY = '''
"""A study whose points sleep: something to interrupt."""
import os
import time
from pathlib import Path

NAME = "sleepy"
TITLE = "points that sleep"
PARAMS = {"n": 4}


def grid(params):
    return [{"i": i} for i in range(params["n"])]


def evaluate(point, ctx):
    Path(os.environ["SLEEPY_DIR"], f"started-{os.getpid()}").touch()
    time.sleep(120)
    return [{"v": 1}]


def summarize(results, params):
    raise AssertionError("never reached")
'''


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _start(tmp_path: Path) -> tuple[subprocess.Popen[str], set[int]]:
    pkg = tmp_path / "qdse_sleepy"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "sleepy.py").write_text(textwrap.dedent(_SLEEPY))
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {**python_path(tmp_path), "QDSE_STUDY_PACKAGES": "qdse_sleepy", "SLEEPY_DIR": str(marks)}
    # output to a file, not a pipe: an orphan holding the pipe would block the test
    with (tmp_path / "stderr.txt").open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "dse.study", "sleepy", "--jobs", "2",
                                 "--out", str(tmp_path / "out"), "--quiet"], env=env,
                                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    deadline = time.monotonic() + 90
    while len(list(marks.iterdir())) < 2:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the study did not start two points: "
                        + (tmp_path / "stderr.txt").read_text()[-2000:])
        time.sleep(0.1)
    return proc, children(proc.pid)  # the pool workers and the resource tracker


def _wait_gone(pids: set[int]) -> set[int]:
    """The pids still alive after 15 s (then killed, so that a failing test leaks nothing)."""
    deadline = time.monotonic() + 15
    while (left := {p for p in pids if _alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


@pytest.mark.slow
def test_sigkill_leaves_no_orphans(tmp_path: Path) -> None:
    proc, children = _start(tmp_path)
    assert len(children) >= 2
    proc.kill()
    proc.wait()
    assert _wait_gone(children) == set()


@pytest.mark.slow
def test_ctrl_c_is_one_line_and_exit_130(tmp_path: Path) -> None:
    proc, children = _start(tmp_path)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends: the whole process group
    assert proc.wait(timeout=60) == 130
    err = (tmp_path / "stderr.txt").read_text()
    assert err.strip().splitlines() == [err.strip()]
    assert err.startswith("interrupted")
    assert _wait_gone(children) == set()

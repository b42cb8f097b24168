"""Kill a program with SIGKILL at chosen points and run it again (issue 12): the harness of the
crash-safety tests of ``python -m dse.search`` and ``python -m dse.study``, and the /proc look-ups
of their signal tests. Importable by name from any test module (tests/conftest.py puts tests/ on
``sys.path``; spawned programs get the repository through `python_path`).

`kill_and_rerun` starts the program once per kill step. A step of n lets it run until n more
results than when it started are reported finished (``finished``, polled every 2 ms; a run that
ends first is not waited for), then a random instant more (the test's seeded RNG), takes what is
finished an instant before the kill and kills it with SIGKILL; the test checks what was finished
then (``check``) before the next run starts. A last run, the same command, must end by itself
with status 0.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

REPO = Path(__file__).resolve().parents[1]

T = TypeVar("T", bound=Sized)


def python_path(*folders: Path) -> dict[str, str]:
    """The environment for a spawned ``python -m ...``: this one, with ``folders`` and then the
    repository as PYTHONPATH."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in (*folders, REPO))}


@dataclass(frozen=True, slots=True)
class Run(Generic[T]):
    """One start of the program: its pid and what was finished when it started."""

    pid: int
    before: T
    killed: bool  # False: the last run, or one that had ended before SIGKILL came


def kill_and_rerun(command: Callable[[], list[str]], env: dict[str, str],
                   finished: Callable[[], T], check: Callable[[T], None], *,
                   steps: Sequence[int], total: int, rng: random.Random, max_delay_s: float,
                   stderr: Path, timeout_s: float = 120.0) -> list[Run[T]]:
    """Start ``command()`` (called anew before each start, after ``finished()``) once per step of
    ``steps`` and SIGKILL it after that many more finished results (at most ``total``) plus a
    delay drawn from ``rng`` in [0, ``max_delay_s``]; after each kill, ``check`` what was
    finished an instant before it; then run it to the end. Returns every run, the last one last.
    The program's stderr goes to ``stderr`` (a file: an orphan holding a pipe would block the
    test), its tail into any failure message."""

    def start() -> tuple[T, subprocess.Popen[bytes]]:
        before = finished()
        with stderr.open("w") as err:
            return before, subprocess.Popen(command(), env=env, stdout=subprocess.DEVNULL,
                                            stderr=err, start_new_session=True)

    runs: list[Run[T]] = []
    for step in steps:
        before, proc = start()
        with _reaped(proc):
            target, deadline = min(len(before) + step, total), time.monotonic() + timeout_s
            while proc.poll() is None and len(finished()) < target:
                assert time.monotonic() < deadline, stderr.read_text()[-2000:]
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, max_delay_s))
            seen = finished()  # what the run has reported finished ...
            proc.send_signal(signal.SIGKILL)  # ... an instant before it dies (if still running)
            runs.append(Run(proc.pid, before, killed=proc.wait() == -signal.SIGKILL))
        check(seen)
    before, proc = start()  # the last run, to the end
    with _reaped(proc):
        assert proc.wait(timeout=timeout_s) == 0, stderr.read_text()[-2000:]
    runs.append(Run(proc.pid, before, killed=False))
    return runs


@contextlib.contextmanager
def _reaped(proc: subprocess.Popen[bytes]) -> Iterator[None]:
    """Kill and reap ``proc`` on the way out if it still runs: a failing test leaves none."""
    try:
        yield
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def children(pid: int) -> set[int]:
    """The pids whose parent is ``pid`` (Linux /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.add(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return out

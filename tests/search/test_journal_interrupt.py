"""A Ctrl-C while a journal append holds the file lock is delivered after the append.

Optuna's `JournalFileOpenLock.release` renames the lock file and unlinks the renamed file; on a
BaseException between the two it unlinks again, so a KeyboardInterrupt landing there became a
FileNotFoundError and an interrupted `--jobs 2` search exited 2 with "No such file" instead of
130 (seen once in CI). The tests send SIGINT to this process from inside `release`, before the
real release runs: the append must finish (record written, lock file gone) and the interrupt
must still arrive, as KeyboardInterrupt, right after it.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from dse.search import storage


@pytest.mark.parametrize("fsync", [False, True])
def test_a_sigint_inside_the_lock_arrives_after_the_append(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           fsync: bool) -> None:
    path = tmp_path / "study.journal"
    backend = storage._journal(path, fsync=fsync)._backend
    lock = backend._lock
    real_release = lock.release

    def interrupted_release() -> None:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the lock is held
        real_release()

    monkeypatch.setattr(lock, "release", interrupted_release)
    with pytest.raises(KeyboardInterrupt):
        backend.append_logs([{"op_code": 0, "worker_id": "w", "study_name": "s"}])
    assert not Path(lock._lock_file).exists(), "the lock was released"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records == [{"op_code": 0, "worker_id": "w", "study_name": "s"}]
    # the mask is restored: the next append takes no signal and runs normally
    monkeypatch.setattr(lock, "release", real_release)
    backend.append_logs([{"op_code": 1, "worker_id": "w"}])
    assert len(path.read_text().splitlines()) == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_sigint_is_held_back_even_when_another_thread_receives_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    # The progress display runs threads of its own; the OS may deliver the signal to any.
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        test_a_sigint_inside_the_lock_arrives_after_the_append(tmp_path, monkeypatch, False)
    finally:
        stop.set()

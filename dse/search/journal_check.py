"""Crash safety of a search journal file: `repair_journal` runs before a process opens one.

Optuna's journal is one JSON record per line, appended with one ``write``. A process killed by a
signal never tears a line (the kernel finishes the write), but a full disk or a power loss without
``--fsync`` can leave the last record cut part-way through its line. Optuna still reads such a file
(it ignores an unterminated last line) - and the next append then lands on that line, merging two
records into one that no longer parses, after which every load fails. So, under the journal's own
lock, before anything is appended:

* an unterminated last line that is a whole record gets its newline;
* an unterminated last line that is not (a torn record) is cut off, with a warning;
* a line that is not a JSON record anywhere else (a file cut in the middle and glued, a garbage
  line) is an error naming the file, the line and the way out - it is never "repaired" silently,
  since the records after it would be lost.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

__all__ = ["repair_journal"]

log = logging.getLogger("dse.search")

_LOCK_GRACE_S = 10  # as `dse.search.storage`: a lock older than this belongs to a dead process


def repair_journal(path: str | Path) -> int:
    """Check the journal at ``path`` and repair a torn tail; returns the bytes dropped (0 if the
    file is whole or absent). Raises ValueError naming the file for a corrupt line."""
    from optuna.storages.journal import JournalFileOpenLock

    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return 0
    lock = JournalFileOpenLock(str(path), grace_period=_LOCK_GRACE_S)
    lock.acquire()
    try:
        return _repair_locked(path)
    finally:
        lock.release()


def _repair_locked(path: Path) -> int:
    data = path.read_bytes()
    body, sep, tail = data.rpartition(b"\n")
    lines = body.split(b"\n") if sep else []
    for number, line in enumerate(lines, start=1):
        if not _is_record(line):
            raise ValueError(_corrupt_message(path, number, len(lines) + bool(tail), line))
    if not tail:
        return 0
    with path.open("r+b") as f:
        if _is_record(tail):  # a whole record that lost only its newline
            f.seek(0, os.SEEK_END)
            f.write(b"\n")
            return 0
        f.truncate(len(body) + len(sep))
        f.flush()
        os.fsync(f.fileno())
    log.warning("%s: dropped a torn last record (%d bytes, cut part-way through its line by a "
                "crash or a full disk); the %d records before it are intact", path, len(tail),
                len(lines))
    return len(tail)


def _is_record(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        return False


def _corrupt_message(path: Path, number: int, total: int, line: bytes) -> str:
    shown = line[:40].decode("utf-8", "replace")
    keep = number - 1
    return (f"search journal {str(path)!r} is corrupt: line {number} of {total} is not a journal "
            f"record ({shown!r}); the {keep} records before it are intact - keep them with "
            f"`head -n {keep} {path} > {path}.fixed && mv {path}.fixed {path}` (later trials are "
            "lost), or start a new study in another --out")

"""Atomic file writes of the workloads package (`Workload.save`).

`atomic_write_text` writes a temporary file beside the target, fsyncs it and renames it over the
target (``os.replace``), so a reader never sees a half-written file and two writers of one file
never share a temporary. The temporary is named as `dse.study.atomic.atomic_write` names its own,
``.<name>.<pid>.<random>.tmp``, so the clean-up of the study runner and of a search
(`dse.study.atomic.remove_stale_temps`: files of that name whose process is gone) also removes
what a writer killed here leaves behind. workloads sits upstream of dse, hence a helper of its own.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "atomic_write_text"]


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(f)`` on ``.<name>.<pid>.<random>.tmp`` in ``path``'s folder, fsync it, then
    rename it over ``path``; on any error the temporary is removed. The file gets the mode a
    plain ``open(path, "w")`` would give it (0666 less the umask)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                               dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):  # POSIX: mkstemp's 0600 -> the usual mode
                os.fchmod(f.fileno(), 0o666 & ~_umask())
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write` of ``text`` in UTF-8."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda f: f.write(data))


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it: set, then restore at once
    os.umask(mask)
    return mask

"""Atomic file writes, and the clean-up of what a killed writer leaves: qdse's one implementation.

A file is written under a temporary name beside its target, ``.<name>.<pid>.<random>.tmp``
(`tempfile.mkstemp`'s 8 random characters), given the mode a plain ``open(path, "w")`` would give
it (0666 less the umask, not mkstemp's 0600), fsynced, then renamed over the target
(``os.replace``): a reader never sees a half-written file, two writers of one file never share a
temporary, and a writer killed mid-write (SIGKILL, power loss) leaves the old file intact and only
its temporary behind, which `remove_stale_temps` removes once the writing process is gone.

Two shapes, for two kinds of writer: `atomic_file` yields an open binary file (`atomic_write`:
``write(f)``); `atomic_path` yields the temporary's path, for writers that open it themselves
(``fig.savefig(p)``, ``df.to_csv(p)``; `dse.study.atomic` builds on it). `atomic_create` makes a
file whole only if it does not exist. Standard library only, and no torch: `dse` and `quant` share
this module rather than copy it.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ["TEMP_NAME", "atomic_create", "atomic_file", "atomic_path", "atomic_write",
           "atomic_write_text", "remove_stale_temps"]

log = logging.getLogger(__name__)

TEMP_NAME = re.compile(r"\.(?P<target>.+?)\.(?:(?P<pid>\d+)\.)?[a-z0-9_]{8}\.tmp")
"""The temporaries' names: ``.<name>.<pid>.<8 random characters>.tmp`` (the random part is
`tempfile.mkstemp`'s); before the pid was added, ``.<name>.<random>.tmp`` ("legacy")."""


@contextmanager
def atomic_path(path: str | Path, *, parents: bool = False) -> Iterator[Path]:
    """Yield a new empty temporary beside ``path`` for the caller to write by its path; on a
    normal exit give it the usual mode, fsync it and rename it over ``path``. On any error
    (the caller's included) the temporary is removed and ``path`` left as it was. ``parents``:
    create ``path``'s folder first if it is missing."""
    path = Path(path)
    tmp = _new_temp(path, parents)
    try:
        yield tmp
        _seal(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_file(path: str | Path, *, parents: bool = False) -> Iterator[BinaryIO]:
    """`atomic_path` with the temporary opened for binary writing: ``with atomic_file(p) as f:
    f.write(data)``. The file is closed before it is renamed."""
    with atomic_path(path, parents=parents) as tmp, open(tmp, "wb") as f:
        yield f


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object], *,
                 parents: bool = False) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path`` opened for binary writing, then put
    it in place (`atomic_file`); returns ``path``."""
    with atomic_file(path, parents=parents) as f:
        write(f)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, *, parents: bool = False) -> Path:
    """:func:`atomic_write` of ``text`` in UTF-8."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda f: f.write(data), parents=parents)


def atomic_create(path: str | Path, writer: Callable[[Path], object], *,
                  parents: bool = False) -> bool:
    """Create ``path`` whole unless it exists: ``writer(tmp)`` on a temporary beside it (named,
    moded and fsynced as `atomic_path`'s), then a hard link ``tmp -> path``, which fails rather
    than overwrite, so of several processes creating one file the first wins and no reader sees
    it half-written. The temporary is always removed. True when this call created the file."""
    path = Path(path)
    tmp = _new_temp(path, parents)
    try:
        writer(tmp)
        _seal(tmp)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _new_temp(path: Path, parents: bool) -> Path:
    """A new empty file ``.<name>.<pid>.<random>.tmp`` in ``path``'s folder: the name
    `remove_stale_temps` recognises (the pid tells a killed writer's from a live one's)."""
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                                    dir=path.parent)
    os.close(fd)
    return Path(tmp_name)


def _seal(tmp: Path) -> None:
    """Give ``tmp`` the mode of a plain ``open(path, "w")`` and flush it to the disk, so that
    what is renamed into place is whole after a power loss too."""
    os.chmod(tmp, 0o666 & ~_umask())
    fd = os.open(tmp, os.O_RDWR)  # written for fsync's sake: Windows refuses a read-only handle
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it: set, then restore at once
    os.umask(mask)
    return mask


def remove_stale_temps(folder: str | Path, *, recursive: bool = False, legacy: bool = False,
                       older_than_s: float = 0.0) -> list[Path]:
    """Remove the temporary files a writer of this module left in ``folder`` when its process
    died mid-write (SIGKILL, power loss): names ``.<name>.<pid>.<random>.tmp`` (`TEMP_NAME`)
    whose pid is no running process; with ``legacy`` also the pid-less ``.<name>.<random>.tmp``
    of earlier versions (only for folders no one else writes, as a study's cache).
    ``recursive``: the sub-folders too. ``older_than_s``: only files last written that long ago -
    for a folder that processes on other machines may write too (a search's), where a pid says
    nothing: a live writer's temporary exists for the moments of one write. Files of a live
    process and every other name are left alone; returns the removed paths."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    now = time.time()
    for path in sorted(folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp")):
        m = TEMP_NAME.fullmatch(path.name)
        if m is None or not path.is_file() or path.is_symlink():
            continue
        if older_than_s > 0 and not _modified_before(path, now - older_than_s):
            continue
        pid = m.group("pid")
        if (pid is None and not legacy) or (pid is not None and _running(int(pid))):
            continue
        try:
            path.unlink()
        except FileNotFoundError:  # its writer finished (renamed it) or another run removed it
            continue
        removed.append(path)
    if removed:
        log.info("removed %d temporary files left by killed runs in %s", len(removed), folder)
    return removed


def _modified_before(path: Path, time_s: float) -> bool:
    try:
        return path.stat().st_mtime < time_s
    except FileNotFoundError:  # renamed or removed meanwhile: nothing to remove
        return False


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists (True when that cannot be told: the file is kept)."""
    if pid == os.getpid():
        return True
    if os.name != "posix":  # os.kill(pid, 0) is no probe on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True

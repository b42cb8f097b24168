"""Atomic file writes for reports and caches, and the clean-up of what a killed writer leaves.

`atomic_write` writes a temporary file in the target's folder and renames it over the target
(``os.replace``), so a reader or an interrupted run never sees a half-written file; a process
killed mid-write (SIGKILL, power loss) leaves only the temporary file, which
`remove_stale_temps` removes once its process is gone.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_create", "atomic_write", "atomic_write_text", "remove_stale_temps"]

log = logging.getLogger(__name__)


def atomic_write(path: str | Path, writer: Callable[[Path], object]) -> Path:
    """Call ``writer(tmp)`` on a temporary path beside ``path``, then rename it over ``path``.

    The temporary file is ``.<name>.<pid>.<random>.tmp``: the writing process's id lets
    `remove_stale_temps` tell the litter of a killed run from a file a live run is writing.
    The file gets the mode a plain ``open(path, "w")`` would give it (0666 less the umask), not
    the 0600 of `tempfile.mkstemp`."""
    path = Path(path)
    tmp = _temp_beside(path)
    try:
        writer(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_create(path: str | Path, writer: Callable[[Path], object]) -> bool:
    """Create ``path`` whole unless it exists: ``writer(tmp)`` on a temporary beside it (named
    as `atomic_write` names its own), then a hard link ``tmp -> path``, which fails rather than
    overwrite, so of several processes creating one file the first wins and no reader sees it
    half-written. True when this call created the file."""
    path = Path(path)
    tmp = _temp_beside(path)
    try:
        writer(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _temp_beside(path: Path) -> Path:
    """A new empty file ``.<name>.<pid>.<random>.tmp`` in ``path``'s folder (created if
    missing): the name `remove_stale_temps` recognises."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                                    dir=path.parent)
    os.close(fd)
    return Path(tmp_name)


_TEMP_NAME = re.compile(r"\.(?P<target>.+?)\.(?:(?P<pid>\d+)\.)?[a-z0-9_]{8}\.tmp")
"""`atomic_write`'s temporary names: ``.<name>.<pid>.<8 random characters>.tmp`` (the random
part is `tempfile.mkstemp`'s); before the pid was added, ``.<name>.<random>.tmp``."""


def remove_stale_temps(folder: str | Path, *, recursive: bool = False, legacy: bool = False,
                       older_than_s: float = 0.0) -> list[Path]:
    """Remove the temporary files `atomic_write` left in ``folder`` when its process died
    mid-write (SIGKILL, power loss): names ``.<name>.<pid>.<random>.tmp`` whose pid is no running
    process; with ``legacy`` also the pid-less ``.<name>.<random>.tmp`` of earlier versions (only
    for folders no one else writes, as a study's cache). ``recursive``: the sub-folders too.
    ``older_than_s``: only files last written that long ago - for a folder that processes on
    other machines may write too (a search's), where a pid says nothing: a live writer's
    temporary exists for the moments of one write. Files of a live process and every other name
    are left alone; returns the removed paths."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    now = time.time()
    for path in sorted(folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp")):
        m = _TEMP_NAME.fullmatch(path.name)
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


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it: set, then restore at once
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))

"""Atomic file writes for reports and caches, and the clean-up of what a killed writer leaves.

`atomic_write` hands its writer a temporary path in the target's folder (created if missing) and
renames the file over the target (``os.replace``), so a reader or an interrupted run never sees a
half-written file; a process killed mid-write (SIGKILL, power loss) leaves only the temporary
file, which `remove_stale_temps` removes once its process is gone. The implementation - temporary
names ``.<name>.<pid>.<random>.tmp``, mode, fsync, rename, the stale-temporary rule - is
`workloads.atomic`'s, shared with `Workload.save` and the quantization checkpoints; this module
gives it the shape the reports need (a writer of a path: ``fig.savefig(p)``, ``df.to_csv(p)``)
and creates missing folders.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from workloads import atomic as _shared
from workloads.atomic import remove_stale_temps

__all__ = ["atomic_create", "atomic_write", "atomic_write_text", "remove_stale_temps"]

_TEMP_NAME = _shared.TEMP_NAME
"""The temporaries' names (`workloads.atomic.TEMP_NAME`), for the tests of the clean-ups."""


def atomic_write(path: str | Path, writer: Callable[[Path], object]) -> Path:
    """Call ``writer(tmp)`` on a temporary path beside ``path``, then rename it over ``path``.

    The temporary file is ``.<name>.<pid>.<random>.tmp``: the writing process's id lets
    `remove_stale_temps` tell the litter of a killed run from a file a live run is writing.
    The file gets the mode a plain ``open(path, "w")`` would give it (0666 less the umask), not
    the 0600 of `tempfile.mkstemp`."""
    with _shared.atomic_path(path, parents=True) as tmp:
        writer(tmp)
    return Path(path)


def atomic_create(path: str | Path, writer: Callable[[Path], object]) -> bool:
    """Create ``path`` whole unless it exists (`workloads.atomic.atomic_create`, its folder
    created if missing): of several processes creating one file the first wins and no reader
    sees it half-written. True when this call created the file."""
    return _shared.atomic_create(path, writer, parents=True)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """`atomic_write` of ``text`` in UTF-8."""
    return _shared.atomic_write_text(path, text, parents=True)

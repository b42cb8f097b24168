"""Command-line plumbing shared by ``python -m dse.study``, ``dse.sweep`` and ``dse.search``.

The contract every CLI keeps: bad input (a ValueError or a malformed command line) prints one
``error: ...`` line on stderr and exits with status 2; Ctrl-C prints one line and exits with 130;
output piped into a reader that stops early (``| head``) is not an error. Beside that: the flag
value parsers (comma lists, bandwidth ranges), the output-folder check and the progress display
(a tqdm bar on a terminal; one line per 10 % when stderr is a file or a pipe).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, Protocol, TypeVar

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_INTERRUPTED",
    "CliParser",
    "Progress",
    "UsageError",
    "check_jobs",
    "check_writable",
    "float_list",
    "folder",
    "int_list",
    "pair_list",
    "parse_bandwidths",
    "progress",
    "qdse",
    "run_as_program",
    "run_cli",
]

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
_RESUME_FROM_CACHE = ("interrupted: finished design points are cached; rerun the same command to "
                      "resume")

T = TypeVar("T")


class UsageError(Exception):
    """A malformed command line (reported like any other bad input: one line, status 2)."""


class CliParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (the CLI contract), not usage + message."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None
                         ) -> tuple[argparse.Namespace, list[str]]:
        # argparse turns ``--flag=--`` into an empty list (it drops the "--"), not an error
        for tok in sys.argv[1:] if args is None else args:
            if isinstance(tok, str) and tok.startswith("-") and tok.endswith("=--"):
                self.error(f"argument {tok[:-3]}: expected one value, got '--'")
        return super().parse_known_args(args, namespace)


def run_cli(body: Callable[[], int], argv: Sequence[str] | None, *,
            interrupted: str = _RESUME_FROM_CACHE, debug_flag: str | None = "--debug") -> int:
    """Run a CLI ``body`` under the shared contract: bad input (ValueError, usage error) prints
    one ``error:`` line and returns 2 (a traceback instead when ``debug_flag`` is on the command
    line; None for a CLI without one); Ctrl-C prints ``interrupted`` and returns 130."""
    args = sys.argv[1:] if argv is None else argv
    debug = debug_flag is not None and debug_flag in args
    try:
        try:
            return body()
        except Exception as e:
            if _raised_by_an_interrupt(e):
                raise KeyboardInterrupt from e
            raise
    except (UsageError, ValueError) as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # `| head` stopped reading: not an error (`run_as_program`)
        raise
    except (OSError, OverflowError) as e:  # an unwritable file, a number past float range
        if debug:
            raise
        print(f"error: {_os_reason(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return EXIT_INTERRUPTED


def _raised_by_an_interrupt(e: BaseException) -> bool:
    """Whether ``e`` was raised while a Ctrl-C unwound the stack: a library's ``finally`` that
    fails on the interrupt (Optuna's trial loop reads a variable its interrupted ``tell`` never
    set, an UnboundLocalError) hides the KeyboardInterrupt in the exception's context."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def _os_reason(e: OSError | OverflowError) -> str:
    """One line for an OSError (reason and file) or an OverflowError."""
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename!s}" if e.filename else e.strerror
    return f"{type(e).__name__}: {' '.join(str(e).split())}"


MB_PER_JOB = 300
"""Resident memory of one worker process, MB: a search worker (Optuna, NumPy, pandas, SimPy and a
workload) measures 120-240 MB, a study worker with torch more; `check_jobs` bounds ``--jobs`` by
the machine's memory at this size."""


def check_jobs(jobs: int, flag: str = "--jobs") -> None:
    """ValueError naming ``flag`` unless 1 <= ``jobs`` <= what this machine's memory holds
    (physical memory / `MB_PER_JOB`; at least 1)."""
    try:
        total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    except (ValueError, OSError, AttributeError):  # not POSIX: no memory bound
        total_mb = 0
    most = max(1, total_mb // MB_PER_JOB) if total_mb else 4096
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= most:
        why = (f"each worker process needs ~{MB_PER_JOB} MB and this machine has "
               f"{total_mb / 1024:.0f} GiB" if total_mb else "at most 4096 processes")
        raise ValueError(f"{flag}={jobs} is not allowed; expected an integer in 1..{most} ({why})")


COMMANDS = {
    "simulate": ("dse.simulate", "one model on one design: summary, layers, trace"),
    "compare": ("dse.compare", "one model on several designs, side by side"),
    "sweep": ("dse.study.sweep", "DRAM bandwidth x area sweep of a model and recipe"),
    "search": ("dse.search.cli", "Optuna design search"),
    "study": ("dse.study.cli", "run a paper study (--list names them)"),
}
"""``qdse COMMAND`` -> (the module whose ``main`` runs it, what it does)."""


def qdse(argv: Sequence[str] | None = None) -> int:
    """``qdse COMMAND [ARGS]`` (``python -m dse COMMAND``): run ``python -m dse.COMMAND ARGS``."""
    import importlib

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print("usage: qdse COMMAND [ARGS ...]   (qdse COMMAND --help for its flags)\n\ncommands:")
        for name, (_, what) in COMMANDS.items():
            print(f"  {name:10s} {what}")
        return 0 if args else EXIT_BAD_INPUT
    if args[0] not in COMMANDS:
        print(f"error: command {args[0]!r} is not allowed; expected one of "
              f"{', '.join(COMMANDS)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    main: Callable[[list[str]], int] = importlib.import_module(COMMANDS[args[0]][0]).main
    return main(args[1:])


def run_as_program(main: Callable[[], int]) -> NoReturn:
    """Exit with ``main()``'s status: the body of a CLI's ``if __name__ == "__main__"``."""
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into e.g. `head`: not an error of ours
        sys.stderr.close()
        sys.exit(0)


def folder(text: str) -> Path:
    """argparse ``type`` of an output folder flag: an empty value (``--out ""``, an unset shell
    variable) is a usage error, not the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not a folder path")
    return Path(text)


def check_writable(out: Path) -> None:
    """ValueError (naming ``--out``) unless ``out`` is, or can be created as, a writable folder.

    Creates nothing (a probe file is written and removed again): a CLI checks its output folder
    with the rest of its input and creates it only once all of it is known to be valid (a
    rejected command leaves no folder behind)."""
    probe = Path(out)
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"--out={str(out)!r} is not a writable folder ({probe} is not a "
                         "folder)")
    try:  # try it: permission bits do not tell (root, read-only mounts, /proc)
        import tempfile

        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".write-test-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise ValueError(f"--out={str(out)!r} is not a writable folder ({probe} cannot be "
                         f"written: {e.strerror or e})") from None


# -- progress --------------------------------------------------------------------------------------
class Progress(Protocol):
    """What the runners call on a progress display (tqdm's names)."""

    def update(self, n: int = 1) -> Any: ...

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> Any: ...

    def close(self) -> Any: ...


def progress(total: int, *, desc: str, unit: str, initial: int = 0, enabled: bool = True,
             stream: Any = None) -> Progress:
    """A progress display of ``total`` items on ``stream`` (default stderr): a tqdm bar when it is
    a terminal, else `_Lines` (no redraws: a line per 10 % at most); nothing when not
    ``enabled``."""
    stream = sys.stderr if stream is None else stream
    if enabled and not _is_terminal(stream):
        return _Lines(total, desc=desc, unit=unit, initial=initial, stream=stream)
    from tqdm import tqdm

    # smoothing=0: the estimate is the average rate so far, not the rate of the last item
    bar: Progress = tqdm(total=total, initial=initial, desc=desc, unit=unit,
                         disable=not enabled, dynamic_ncols=True, smoothing=0, file=stream)
    return bar


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a file
        return False


class _Lines:
    """Progress for a log file or a pipe: one line each time another tenth of the items is done
    (and at the end), e.g. ``wrpn_vs_pact: 40% (51/126 points), 2.1 s, ~3.1 s left``."""

    def __init__(self, total: int, *, desc: str, unit: str, initial: int, stream: Any) -> None:
        import time

        self.total, self.desc, self.unit, self.stream = total, desc, unit, stream
        self.done = self.start = initial
        self.t0 = time.perf_counter()
        self.shown = self._tenth()
        self.postfix = ""
        self.closed = False
        self.first: tuple[float, int] | None = None  # (time, count) at the first update

    def _tenth(self) -> int:
        return 10 * self.done // self.total if self.total > 0 else 10

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def update(self, n: int = 1) -> None:
        import time

        self.done += n
        if self.first is None:  # the rate is measured from here: set-up time is no item's
            self.first = (time.perf_counter(), self.done)
        if self._tenth() > self.shown:
            self.shown = self._tenth()
            self._line()

    def _line(self) -> None:
        import time

        now = time.perf_counter()
        dt = now - self.t0
        t1, n1 = self.first or (self.t0, self.start)
        if self.done > n1:
            per_item = (now - t1) / (self.done - n1)
        else:
            per_item = dt / max(self.done - self.start, 1)
        left = (self.total - self.done) * per_item if self.done < self.total else 0.0
        pct = 100 * self.done // self.total if self.total > 0 else 100
        eta = f", ~{left:.1f} s left" if left > 0 else ""
        last = f" (last: {self.postfix})" if self.postfix else ""
        print(f"{self.desc}: {pct}% ({self.done}/{self.total} {self.unit}s), {dt:.1f} s{eta}"
              f"{last}", file=self.stream, flush=True)

    def close(self) -> None:
        if not self.closed and self.done > self.start and self.shown < 10:
            self._line()  # stopped early (an error, Ctrl-C): say how far it got
        self.closed = True


# -- flag values -----------------------------------------------------------------------------------
def _items(text: str, flag: str, parse: Callable[[str], T], noun: str, expected: str, *,
           positive: bool = False) -> tuple[T, ...]:
    """The comma-separated items of ``text``, each stripped and parsed by ``parse``; an item that
    does not parse (an empty one included), or with ``positive`` is not a finite value > 0,
    raises one ValueError naming the flag and the item."""
    out: list[T] = []
    for tok in text.split(","):
        tok = tok.strip()
        try:
            v = parse(tok)
        except ValueError:
            raise ValueError(f"{flag}={text!r} is malformed: {tok!r} is not {noun}; expected "
                             f"{expected}") from None
        if positive and not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
            raise ValueError(f"{flag}={text!r} is malformed: {tok!r} is not a finite value > 0")
        out.append(v)
    return tuple(out)


def int_list(text: str, flag: str, *, positive: bool = False) -> tuple[int, ...]:
    """``"1,2,4"`` -> ``(1, 2, 4)``; ``positive``: every value must be > 0 (otherwise the caller
    checks the values, e.g. a dataclass that lists every problem at once)."""
    return _items(text, flag, int, "an integer", "comma-separated integers", positive=positive)


def float_list(text: str, flag: str, *, positive: bool = False) -> tuple[float, ...]:
    """``"256,1024.5"`` -> ``(256.0, 1024.5)``; ``positive``: finite values > 0 only."""
    return _items(text, flag, float, "a number", "comma-separated numbers", positive=positive)


def pair_list(text: str, flag: str) -> tuple[tuple[int, int], ...]:
    """``"2x2,2x4"`` -> ``((2, 2), (2, 4))`` (`dse.search.space.decode_pair` per item)."""
    from dse.search.space import decode_pair

    return _items(text, flag, decode_pair, "an AxB pair",
                  "comma-separated AxB pairs such as 2x2,2x4")


def parse_bandwidths(text: str, field: str = "--bandwidth") -> tuple[float, ...]:
    """Parse a DRAM bandwidth list in GB/s.

    Comma-separated items; each item is a number, ``inf`` (unlimited), or a range
    ``START:STOP:xF`` (geometric, factor F > 1) or ``START:STOP:+D`` (arithmetic, step D > 0),
    STOP included when hit. Example: ``8:256:x2,inf`` -> 8, 16, 32, 64, 128, 256, inf.
    """
    def bad(why: str) -> ValueError:
        return ValueError(f"{field}={text!r} is malformed: {why}; expected a comma list of GB/s "
                          "values > 0, 'inf', or ranges like 8:256:x2 or 16:128:+16")

    def number(tok: str) -> float:
        try:
            v = float(tok)
        except ValueError:
            raise bad(f"{tok!r} is not a number") from None
        if math.isnan(v) or v <= 0:
            raise bad(f"{tok!r} is not > 0")
        return v

    if not isinstance(text, str) or not text.strip():
        raise bad("empty")
    values: list[float] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise bad("empty item")
        if ":" not in item:
            values.append(number(item))
            continue
        parts = item.split(":")
        if len(parts) != 3 or parts[2][:1] not in ("x", "+"):
            raise bad(f"range {item!r} is not START:STOP:xF or START:STOP:+D")
        start, stop, step = number(parts[0]), number(parts[1]), number(parts[2][1:])
        if not (math.isfinite(start) and math.isfinite(stop)) or stop < start:
            raise bad(f"range {item!r} needs finite START <= STOP")
        if parts[2][0] == "x" and step <= 1:
            raise bad(f"range {item!r} needs a factor > 1")
        v, n = start, 0
        while v <= stop * (1 + 1e-9):
            values.append(v)
            v = v * step if parts[2][0] == "x" else v + step
            n += 1
            if n > 10_000:
                raise bad(f"range {item!r} has more than 10000 values")
    return tuple(dict.fromkeys(values))  # de-duplicated, order kept

"""Command-line plumbing shared by ``python -m dse.study``, ``dse.sweep`` and ``dse.search``.

The contract every CLI keeps: bad input (a ValueError or a malformed command line) prints one
``error: ...`` line on stderr and exits with status 2; Ctrl-C prints one line and exits with 130;
output piped into a reader that stops early (``| head``) is not an error. Beside that: the flag
value parsers (comma lists, bandwidth ranges) and the output-folder check.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn, TypeVar

__all__ = ["EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "CliParser", "UsageError", "check_writable",
           "float_list", "int_list", "pair_list", "parse_bandwidths", "run_as_program",
           "run_cli"]

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


def run_cli(body: Callable[[], int], argv: Sequence[str] | None, *,
            interrupted: str = _RESUME_FROM_CACHE, debug_flag: str | None = "--debug") -> int:
    """Run a CLI ``body`` under the shared contract: bad input (ValueError, usage error) prints
    one ``error:`` line and returns 2 (a traceback instead when ``debug_flag`` is on the command
    line; None for a CLI without one); Ctrl-C prints ``interrupted`` and returns 130."""
    args = sys.argv[1:] if argv is None else argv
    debug = debug_flag is not None and debug_flag in args
    try:
        return body()
    except (UsageError, ValueError) as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return EXIT_INTERRUPTED


def run_as_program(main: Callable[[], int]) -> NoReturn:
    """Exit with ``main()``'s status: the body of a CLI's ``if __name__ == "__main__"``."""
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into e.g. `head`: not an error of ours
        sys.stderr.close()
        sys.exit(0)


def check_writable(out: Path) -> None:
    """Create the output folder ``out`` and check a file can be written there (ValueError if
    not, naming ``--out``)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".probe."):
            pass
    except OSError as e:
        raise ValueError(f"--out={str(out)!r} is not a writable folder ({e.strerror or e})"
                         ) from None


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

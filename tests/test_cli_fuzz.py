"""Property-based fuzz of every command line (issue 12): invalid input - a bad value for any flag,
an unknown flag, a missing argument - ends as one ``error:`` line on stderr naming what was wrong,
exit status 2, no traceback and no file created.

The CLIs run in-process (``main(argv)``) in a fresh empty working folder, their output folders
inside it; a few cases run as real programs to check the ``python -m`` entry points. Every bad
value here is one a CLI can reject before any extraction or simulation, so the fuzz stays fast.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# -- invalid values ------------------------------------------------------------------------------
_GARBAGE = st.text(alphabet="abcxyz!@#%^&*()[]{}<>?~_=;'\"| é漢", min_size=1, max_size=8)
_NON_FINITE = st.sampled_from(["nan", "-nan", "inf", "-inf", "1e400", "-1e400"])
_EMPTY = st.sampled_from(["", " "])  # an unset shell variable: not the current folder


def _ints(lo: int, hi: int) -> st.SearchStrategy[str]:
    """Text that is not an integer in lo..hi: out of range, fractional, or not a number."""
    return st.one_of(st.integers(max_value=lo - 1).map(str),
                     st.integers(min_value=hi + 1, max_value=10**30).map(str),
                     st.sampled_from(["1.5", "", " ", "0x10", "1e3", "--"]), _GARBAGE)


def _positive_floats(hi: float = 1e6) -> st.SearchStrategy[str]:
    return st.one_of(st.floats(max_value=0.0, allow_nan=False).map(repr),
                     st.floats(min_value=hi * 2, allow_infinity=False).map(repr), _NON_FINITE,
                     _GARBAGE)


def _non_positive() -> st.SearchStrategy[str]:
    """Not a value > 0 (for flags where any positive value, inf included, is valid)."""
    return st.one_of(st.floats(max_value=0.0, allow_nan=False).map(repr),
                     st.sampled_from(["nan", "-inf"]), _GARBAGE)


def _lists(item: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A comma list with at least one bad item (or an empty one)."""
    return st.tuples(st.lists(st.sampled_from(["2", "4", "8"]), max_size=2), item).map(
        lambda t: ",".join([*t[0], t[1]]))


# -- the CLIs --------------------------------------------------------------------------------------
def _main(module: str) -> Callable[[list[str]], int]:
    def call(argv: list[str]) -> int:
        import importlib

        return int(importlib.import_module(module).main(argv))

    return call


SEARCH = ["--model", "digits_cnn", "--recipe", "pact_sawb", "--out", "out", "--trials", "1"]
SWEEP = ["--model", "digits_cnn", "--recipe", "pact_sawb", "--out", "out", "--quiet"]
STUDY = ["wrpn_vs_pact", "--out", "out", "--quiet"]
SHOW = ["digits_cnn"]

CASES: dict[str, tuple[str, list[str], dict[str, st.SearchStrategy[str]]]] = {
    "dse.search": ("dse.search.cli", SEARCH, {
        "--trials": st.integers(max_value=-1).map(str) | _GARBAGE,
        "--jobs": _ints(1, 4096), "--batch": _ints(1, 1 << 20),
        "--area-budget": _positive_floats(), "--dram-gbps": _non_positive(),
        "--min-accuracy": _NON_FINITE | _GARBAGE,
        "--bits": _lists(_ints(1, 32)), "--mac-bits": _lists(_GARBAGE | st.just("0x0")),
        "--arrays": _lists(_GARBAGE | st.just("0x8")), "--sram-kib": _lists(_non_positive()),
        "--cores": st.sampled_from(["0:4", "5:2", "x", "1:x", "-3:-1", "1:99999999999"]),
        "--objectives": _GARBAGE, "--sampler": _GARBAGE, "--layer-bits": _GARBAGE,
        "--storage": st.sampled_from(["bogus://x", "nothing", "sqlite:////nonexistent/d/x.db"]),
        "--first-last-bits": _ints(1, 32), "--accuracy": _GARBAGE, "--out": _EMPTY,
    }),
    "dse.search worker": ("dse.search.cli", ["worker", "--storage", "journal:nope.journal",
                                             "--study", "s"], {
        "--trials": _GARBAGE, "--worker-index": _GARBAGE, "--out": _EMPTY,
    }),
    "dse.sweep": ("dse.study.sweep", SWEEP, {
        "--bandwidth": _lists(_non_positive() | st.just("8:4:x2")),
        "--area": _lists(_positive_floats() | st.just("0x") | st.just("1e308")),
        "--sram-kib": _lists(_positive_floats()), "--cores": _lists(_ints(1, 1_000_000)),
        "--w-bits": _ints(1, 32), "--a-bits": _ints(1, 32), "--first-last-bits": _ints(1, 32),
        "--mac-bits": _GARBAGE | st.just("0") | st.just("2x99"), "--width": _ints(1, 64),
        "--batch": _ints(1, 1 << 20), "--jobs": _ints(1, 4096),
        "--high-precision": _GARBAGE, "--format": _GARBAGE, "--out": _EMPTY,
    }),
    "dse.study": ("dse.study.cli", STUDY, {
        "--bandwidth": _lists(_non_positive()), "--batch": _ints(1, 1 << 20),
        "--jobs": _ints(1, 4096), "--format": _GARBAGE,
        "--set": st.sampled_from(["nosuch=1", "novalue", "=1"]), "--out": _EMPTY,
    }),
    "arch": ("arch.__main__", ["show", "sysml19"], {
        "--bits": _ints(1, 32) | st.just("2,4,8"), "--dram-gbps": _GARBAGE,
        "--peak-scaling": _GARBAGE, "--save": st.sampled_from(["x.txt", "/proc/nope/x.toml",
                                                                ".", "noext"]),
    }),
    "workloads.show": ("workloads.show", SHOW, {
        "--bits": _ints(1, 64), "--first-last": _ints(1, 64), "--batch": _ints(1, 1 << 20),
        "--width": _positive_floats(64.0) | st.just("65"), "--num-classes": _ints(1, 1 << 20),
        "--json": st.sampled_from([".", "/proc/nope/w.json", "missing/w.json", "d/"]),
    }),
}


def _call(cli: str, argv: list[str]) -> tuple[int, str, list[str]]:
    """Run a CLI in an empty temp folder: (status, stderr, what it left in the folder)."""
    module, _, _ = CASES[cli]
    err = io.StringIO()
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = _main(module)(argv)
        finally:
            os.chdir(here)
            left = sorted(str(p.relative_to(tmp)) for p in Path(tmp).rglob("*"))
    return code, err.getvalue(), left


def _check(cli: str, argv: Sequence[str], code: int, err: str, left: list[str]) -> None:
    where = f"{cli} {' '.join(map(repr, argv))}"
    assert code == 2, f"{where}: exit {code}, stderr {err!r}"
    assert err.startswith("error: "), f"{where}: {err!r}"
    assert err.count("\n") == 1, f"{where}: {err!r}"
    assert "Traceback" not in err
    assert left == [], f"{where}: left {left}"


@pytest.mark.parametrize("cli", sorted(CASES))
@settings(max_examples=20, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_bad_flag_value_is_one_error_line(cli: str, data: st.DataObject) -> None:
    _, base, flags = CASES[cli]
    flag = data.draw(st.sampled_from(sorted(flags)), label="flag")
    value = data.draw(flags[flag], label="value")
    argv = [*base, f"{flag}={value}"]
    code, err, left = _call(cli, argv)
    _check(cli, argv, code, err, left)
    named = any(text in err for text in (flag, repr(value), value.strip(), value.split("=")[0]))
    assert named, f"{cli} {argv}: the error names neither {flag} nor {value!r}: {err!r}"


@pytest.mark.parametrize("cli", sorted(CASES))
@settings(max_examples=8)
@given(extra=st.sampled_from(["--no-such-flag", "--no-such-flag=1", "-Z"]))
def test_an_unknown_flag_is_one_error_line(cli: str, extra: str) -> None:
    _, base, _ = CASES[cli]
    code, err, left = _call(cli, [*base, extra])
    _check(cli, [*base, extra], code, err, left)


@pytest.mark.parametrize("cli", sorted(CASES))
def test_missing_arguments_are_one_error_line(cli: str) -> None:
    _, base, _ = CASES[cli]
    code, err, left = _call(cli, base[:1] if cli in ("arch", "dse.search worker") else [])
    if cli == "workloads.show" or cli == "dse.study":  # no args: a usage error / a hint
        assert code == 2
    _check(cli, base[:1], code, err, left)


@pytest.mark.parametrize("argv", [
    ["arch", "show", "nosuch"],
    ["dse.sweep", "--model", "digits_cnn", "--recipe", "pact_sawb", "--first-last-bits", "0"],
    ["workloads.show", "digits_cnn", "--json", "/proc/nope/w.json"],
    ["dse.search", "--model", "digits_cnn", "--recipe", "pact_sawb", "--out", "o", "--trials",
     "1", "--jobs", "0"],
])
def test_the_programs_keep_the_contract(tmp_path: Path, argv: list[str]) -> None:
    repo = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-m", *argv], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(repo)})
    assert r.returncode == 2
    assert r.stderr.startswith("error: ")
    assert r.stderr.count("\n") == 1, r.stderr
    assert list(tmp_path.iterdir()) == []

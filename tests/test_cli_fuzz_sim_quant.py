"""Property-based fuzz of the command lines tests/test_cli_fuzz.py leaves out (issue 12):
``dse.simulate``, ``dse.compare``, the ``qdse`` dispatcher and quant's ``train``, ``table``,
``export`` and ``sawb_table``. Every invalid input - a bad value for any flag, a bad or unreadable
file, an unknown flag, a missing argument - ends as one ``error:`` line on stderr naming what was
wrong, exit status 2, no traceback, and the working folder exactly as it was.

The CLIs run in-process in a fresh folder holding a few hostile files (a binary design file, a
torn workload, a file where a folder belongs...). Nothing here may train, fit or simulate: the
heavy steps (building a model, training, fitting, simulating) are replaced by a tripwire, so an
invalid input that is noticed only after them fails the test (validate up front) instead of making
it slow.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli_fuzz import (
    _GARBAGE,
    _NON_FINITE,
    _check,
    _ints,
    _lists,
    _non_positive,
    _positive_floats,
)

_CPUS = os.cpu_count() or 1


class HeavyWorkError(AssertionError):
    """An invalid input got as far as training, fitting or simulating."""


def _tripwire(what: str) -> mock.Mock:
    return mock.Mock(side_effect=HeavyWorkError(f"reached {what}: validate this input up front"))


@contextlib.contextmanager
def _no_heavy_work() -> Iterator[None]:
    import dse.sim
    import quant.export
    import quant.sawb_table
    import quant.table
    import quant.train

    targets = [(dse.sim, "simulate"), (quant.train, "build_model"), (quant.train, "_fit"),
               (quant.table, "build_table"), (quant.export, "_gaps"),
               (quant.sawb_table, "fit_sawb")]
    with contextlib.ExitStack() as stack:
        for module, name in targets:
            stack.enter_context(mock.patch.object(module, name, _tripwire(name)))
        yield


# -- hostile files, made fresh in each working folder --------------------------------------------
_RUNS = [f"llsqf-w{b}a{b}-s{s}" for b in (4, 2) for s in (0, 1, 2)]  # quant.export's defaults


def _checkpoint() -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save({"model_state": {}}, buf)
    return buf.getvalue()


_CKPT = _checkpoint()
_FILES: dict[str, bytes | None] = {
    "binary.toml": b"\x80\xff\x00cores = 4\n",  # not UTF-8
    "broken.yaml": b"cores: [1, 2\nrows: {\n",
    "wrong.toml": b"cores = -3\nrows = 'x'\n",
    "torn.json": b'{"name": "w", "layers": [{"name": "c1", "op": "co',
    "junk.onnx": b"\x08\x01\x12\x00garbage",
    "junk.csv": b"Layer name,IFMAP Height\nconv1,x,,\n",
    "junk.pt": b"\x80\x03garbage that is no pickle\x00",
    "notes.txt": b"a file where a folder belongs\n",
    "empty": None,  # an empty folder
    **{f"cache/{r}/metrics.json": b"{}" for r in _RUNS},  # run folders quant.export reads
    **{f"cache/{r}/checkpoint.pt": _CKPT for r in _RUNS},
    "cache/torn/metrics.json": b"{}", "cache/torn/checkpoint.pt": _CKPT[: len(_CKPT) // 2],
    "cache/no_metrics/checkpoint.pt": _CKPT,
}
_BAD_OUT = st.sampled_from(["", " ", "notes.txt", "notes.txt/sub", "/proc/nope/x"])


def _plant(root: Path) -> None:
    for name, data in _FILES.items():
        path = root / name
        if data is None:
            path.mkdir(parents=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*")}


# -- the CLIs --------------------------------------------------------------------------------------
SIMULATE = ["--model", "digits_cnn", "--arch", "sysml19", "--out", "out"]
COMPARE = ["--model", "digits_cnn", "--arch", "sysml19", "--arch", "llsq40nm", "--out", "out"]
TRAIN = ["--recipe", "pact", "--w-bits", "2", "--a-bits", "2", "--out", "run", "--no-progress"]
TABLE = ["--out", "table", "--no-checks", "--recipes", "pact", "--seeds", "0"]
EXPORT = ["--cache", "cache", "--out", "export"]

_MODELS = st.sampled_from(["nosuch", "", "junk.onnx", "junk.csv", "torn.json", "missing.onnx",
                           "os:nosuch", "nosuch_module:net", "missing.py:net", ":", "junk.pt",
                           "notes.txt:net"]) | _GARBAGE
_ARCHS = st.sampled_from(["nosuch", "", "binary.toml", "broken.yaml", "wrong.toml",
                          "missing.toml", "notes.txt", "empty", "junk.onnx"]) | _GARBAGE
_NOT_POSITIVE_INT = st.integers(max_value=0).map(str) | st.sampled_from(["1.5", "", "x"])
_MODEL_FLAGS = {
    "--model": _MODELS, "--arch": _ARCHS, "--recipe": _GARBAGE,
    "--w-bits": _ints(1, 32), "--a-bits": _ints(1, 32), "--first-last-bits": _ints(1, 32),
    "--width": _ints(1, 64), "--batch": _ints(1, 1 << 20),
    "--input-shape": _lists(_non_positive()) | st.sampled_from(["", "1,2,3,4,5", "3,8,8",
                                                                "1,99999,99999"]),
    "--ignore-unsupported": st.sampled_from(["", ",", " , "]),
    "--mac-bits": _GARBAGE | st.sampled_from(["", "0", "0x0", "33", "2x99", "x", "2x2x2"]),
    "--dram-gbps": _non_positive(), "--high-precision": _GARBAGE, "--fidelity": _GARBAGE,
    "--out": _BAD_OUT, "--schedule": _GARBAGE,
    "--groups": _lists(_non_positive()) | st.sampled_from(["", "x", "2,,2"]),
    "--stages": st.sampled_from(["", "x", "=1", "c1=x", "c1=-1", "missing.json", "torn.json"]),
    "--buffer-images": _NOT_POSITIVE_INT, "--micro-batch": _NOT_POSITIVE_INT,
}


def _int_items(lo: int, hi: int) -> st.SearchStrategy[str]:
    """A comma list of quant.table's ``--bits``/``--seeds`` with a bad item (empty items are
    skipped there, so an empty list is its own case)."""
    return _lists(_ints(lo, hi).filter(lambda v: v.strip() != "")) | st.sampled_from(["", ","])


def _table_jobs() -> int:
    from quant.table import _max_jobs

    return _max_jobs()


_FLOAT32_MAX = 3.4028234663852886e38
CASES: dict[str, tuple[str, list[str], dict[str, st.SearchStrategy[str]]]] = {
    "dse.simulate": ("dse.simulate", SIMULATE, _MODEL_FLAGS),
    "dse.compare": ("dse.compare", COMPARE, _MODEL_FLAGS),
    "quant.train": ("quant.train", TRAIN, {
        "--model": _GARBAGE | st.just(""), "--recipe": _GARBAGE | st.just(""),
        "--w-bits": _ints(1, 32), "--a-bits": _ints(1, 32), "--epochs": _ints(1, 100_000),
        "--seed": _ints(0, 2**32 - 1), "--lr": _positive_floats(_FLOAT32_MAX),
        "--batch-size": _ints(1, 1 << 20), "--width": _ints(1, 64),
        "--weight-decay": st.floats(max_value=-1e-9).map(repr) | _NON_FINITE | _GARBAGE,
        "--clip-decay": st.floats(max_value=-1e-9).map(repr) | _NON_FINITE | _GARBAGE,
        "--grad-clip-norm": _non_positive() | _NON_FINITE,
        "--fixed-act-clip": _non_positive() | _NON_FINITE,
        "--optimizer": _GARBAGE, "--first-last-bits": _ints(1, 32),
        "--shortcut-bits": _ints(1, 32),
        "--init-from": st.sampled_from(["junk.pt", "notes.txt", "missing", "empty", ""]),
        "--data": _GARBAGE, "--data-root": st.sampled_from(["missing", "notes.txt"]),
        "--eval-split": _GARBAGE, "--device": _GARBAGE, "--threads": _ints(1, _CPUS),
        "--out": _BAD_OUT,
    }),
    "quant.table": ("quant.table", TABLE, {
        "--recipes": _GARBAGE | st.sampled_from(["", ",", "pact,nosuch"]),
        "--bits": _int_items(1, 16), "--seeds": _int_items(0, 2**32 - 1),
        "--fp-epochs": _ints(1, 100_000), "--ft-epochs": _ints(1, 100_000),
        "--jobs": _ints(1, _table_jobs()), "--threads": _ints(1, _CPUS),
        "--out": _BAD_OUT, "--cache": _BAD_OUT,
    }),
    "quant.export": ("quant.export", EXPORT, {
        "--runs": _GARBAGE | st.sampled_from(["", ",", "llsqf-w4a4-s0,nosuch", "../notes.txt",
                                              "torn", "llsqf-w2a2-s0,no_metrics", "empty"]),
        "--cache": st.sampled_from(["", "missing", "notes.txt", "empty"]), "--out": _BAD_OUT,
    }),
    "quant.sawb_table": ("quant.sawb_table", [], {"--bits": _ints(2, 16)}),
    "qdse": ("dse.cli", ["simulate", *SIMULATE], {  # the dispatcher passes flags through
        "--arch": _ARCHS, "--batch": _ints(1, 1 << 20), "--out": _BAD_OUT,
    }),
}


def _call(cli: str, argv: list[str]) -> tuple[int, str, dict[str, tuple[int, int]], list[str]]:
    """Run ``cli`` in-process in a fresh folder of hostile files: (status, stderr, the folder's
    files before, after)."""
    import torch

    module = importlib.import_module(CASES[cli][0])
    main = module.qdse if cli == "qdse" else module.main
    err = io.StringIO()
    here, threads = os.getcwd(), torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _plant(root)
        before = _snapshot(root)
        os.chdir(root)
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), \
                    _no_heavy_work():
                try:
                    code = main(argv)
                except SystemExit as e:  # quant's parsers exit (status 2) themselves
                    code = e.code
        finally:
            os.chdir(here)
            torch.set_num_threads(threads)
        after = _snapshot(root)
    changed = sorted(set(before.items()) ^ set(after.items()))
    return code, err.getvalue(), before, [name for name, _ in changed]


@pytest.mark.parametrize("cli", sorted(CASES))
@settings(max_examples=50, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_bad_flag_value_is_one_error_line(cli: str, data: st.DataObject) -> None:
    _, base, flags = CASES[cli]
    flag = data.draw(st.sampled_from(sorted(flags)), label="flag")
    value = data.draw(flags[flag], label="value")
    argv = [*base, f"{flag}={value}"]
    code, err, _, changed = _call(cli, argv)
    _check(cli, argv, code, err, changed)
    named = any(text in err for text in (flag, repr(value), value.strip()))
    assert named, f"{cli} {argv}: the error names neither {flag} nor {value!r}: {err!r}"


@pytest.mark.parametrize("cli", sorted(CASES))
@settings(max_examples=3)
@given(extra=st.sampled_from(["--no-such-flag", "--no-such-flag=1", "-Z"]))
def test_an_unknown_flag_is_one_error_line(cli: str, extra: str) -> None:
    argv = [*CASES[cli][1], extra]
    code, err, _, changed = _call(cli, argv)
    _check(cli, argv, code, err, changed)


@pytest.mark.parametrize(("cli", "argv"), [
    ("dse.simulate", []), ("dse.simulate", ["--model", "digits_cnn"]),
    ("dse.compare", ["--model", "digits_cnn"]),
    ("dse.compare", ["--model", "digits_cnn", "--arch", "sysml19"]),  # one design is no comparison
    ("quant.train", []), ("quant.train", ["--recipe", "pact", "--w-bits", "2"]),
    ("quant.table", []), ("quant.export", ["--out", "x"]), ("quant.sawb_table", ["--bits"]),
    ("qdse", ["nosuch"]), ("qdse", ["simulate"]),
])
def test_missing_arguments_are_one_error_line(cli: str, argv: list[str]) -> None:
    code, err, _, changed = _call(cli, argv)
    _check(cli, argv, code, err, changed)


@pytest.mark.parametrize("argv", [  # the python -m entry points (dse's: tests/test_cli_fuzz.py)
    ["quant.sawb_table", "--bits", "1"], ["quant.train", "--recipe", "pact", "--w-bits", "2",
                                          "--a-bits", "2", "--init-from", "junk.pt"],
])
def test_the_programs_keep_the_contract(tmp_path: Path, argv: list[str]) -> None:
    repo = Path(__file__).resolve().parents[1]
    _plant(tmp_path)
    before = _snapshot(tmp_path)
    r = subprocess.run([sys.executable, "-m", *argv], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(repo)})
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: ")
    assert r.stderr.count("\n") == 1, r.stderr
    assert _snapshot(tmp_path) == before

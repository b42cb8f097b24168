"""docs/usage.md works as written: its files are written and its commands run, in order, in a
fresh folder (in this process: one torch import for the whole walkthrough)."""

from __future__ import annotations

import importlib
import re
import runpy
import shlex
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "usage.md"
BLOCK = re.compile(r"^```(\w+)(?: file=(\S+))?\n(.*?)^```", re.S | re.M)

# what each step leaves behind: the walkthrough is only done when its files are there
EXPECTED = ("runs/resnet20/layers.csv", "runs/resnet20/layers.parquet", "runs/resnet20/summary.md",
            "runs/resnet20/trace.json", "runs/small_cnn/layers.csv", "runs/onnx/layers.csv",
            "runs/compare/compare.csv", "runs/compare/compare.svg",
            "runs/sweep/compute_bound.csv", "runs/search/trials.csv")


def _steps() -> list[tuple[str, str | None, str]]:
    return [(lang, name, body) for lang, name, body in BLOCK.findall(DOC.read_text())]


def _run(command: str) -> int:
    """``python -m MODULE ARGS`` (its ``main``) or ``python FILE`` (as a script)."""
    argv = shlex.split(command)
    assert argv[0] == "python", command
    if argv[1] != "-m":
        runpy.run_path(argv[1], run_name="__main__")
        return 0
    module = importlib.import_module(argv[2])
    main = getattr(module, "main", None)
    if main is None or not callable(main):
        main = importlib.import_module(f"{argv[2]}.__main__").main
    code: int = main(argv[3:])
    return code


def test_the_doc_names_its_files_and_commands() -> None:
    steps = _steps()
    files = [name for lang, name, _ in steps if name]
    assert files == ["my_chip.toml", "my_nets.py", "export_onnx.py"]
    commands = [ln for lang, _, body in steps if lang == "bash" for ln in body.splitlines()]
    modules = {shlex.split(c)[2] for c in commands if c.startswith("python -m ")}
    assert {"dse.simulate", "dse.compare", "dse.sweep", "dse.search"} <= modules


@pytest.mark.slow  # ~1 min: seven commands, a search with its accuracy proxy among them
def test_usage_walkthrough_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    has_onnx = importlib.util.find_spec("onnx") is not None
    skipped = []
    for lang, name, body in _steps():
        if name:
            (tmp_path / name).write_text(body)
            continue
        if lang != "bash":
            continue
        for command in body.strip().splitlines():
            if not has_onnx and "onnx" in command:
                skipped.append(command)
                continue
            code = _run(command)
            out = capsys.readouterr()
            assert code == 0, f"{command}\n{out.err[-2000:]}"
    missing = [f for f in EXPECTED if not (tmp_path / f).exists()
               and not (skipped and "onnx" in f)]
    assert not missing
    # the numbers are the simulator's, not placeholders: same design, same model, same result
    compare = pd.read_csv(tmp_path / "runs/compare/compare.csv")
    assert compare["design"].iloc[0] == "my-chip"
    layers = pd.read_csv(tmp_path / "runs/resnet20/layers.csv")
    assert int(layers["macs"].sum()) > 0
    if skipped:
        pytest.skip(f"no onnx package: skipped {skipped} (install the 'onnx' extra)")


@pytest.fixture(autouse=True)
def _restore_modules() -> object:
    """The walkthrough imports the user's `my_nets`; forget it afterwards."""
    yield
    sys.modules.pop("my_nets", None)

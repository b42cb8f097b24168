"""`python -m workloads.show` under bad input: one ``error:`` line naming the flag, exit 2, and no
file left behind (issue 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workloads.show import main


def _files(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


@pytest.mark.parametrize("json_arg", ["{tmp}/dir/", "{tmp}/dir", "/proc/nonexistent/w.json",
                                      "{tmp}/missing/w.json", "", "  "])
def test_unwritable_json_is_one_line_and_leaves_nothing(tmp_path: Path, json_arg: str,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    (tmp_path / "dir").mkdir()
    before = _files(tmp_path)
    assert main(["digits_cnn", "--json", json_arg.format(tmp=tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: --json=")
    assert _files(tmp_path) == before  # no DIR.tmp, no half-written file


@pytest.mark.parametrize(("argv", "flag"), [
    (["digits_cnn", "--width", "nan"], "--width=nan"),
    (["digits_cnn", "--width", "1e308"], "--width=1e+308"),
    (["digits_cnn", "--num-classes", "0"], "--num-classes=0"),
    (["digits_cnn", "--input-shape", "1", "0", "8"], "--input-shape=1 0 8"),
    (["digits_cnn", "--batch", "99999999999"], "--batch=99999999999"),
    (["digits_cnn", "--bits", "x"], "argument --bits"),
])
def test_bad_flags_are_one_line(argv: list[str], flag: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: ")
    assert flag in err
    assert "usage:" not in err


def test_json_is_written_atomically(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "w.json"
    path.write_text("old")
    assert main(["digits_cnn", "--json", str(path)]) == 0
    assert path.read_text().startswith("{")
    assert _files(tmp_path) == [path]

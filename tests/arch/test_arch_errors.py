"""Bad input to the arch library and ``python -m arch``: one clear error, never a traceback or an
overflow (issue 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from arch import Accelerator, presets
from arch.__main__ import main
from arch.area import MAX_AREA_MM2
from arch.spec import MAX_COUNT


def test_core_count_is_bounded_by_the_largest_chip_built() -> None:
    assert Accelerator(cores=MAX_COUNT).cores == MAX_COUNT
    with pytest.raises(ValueError, match=r"cores=1000000000000 is not allowed; expected an "
                                         r"integer in 1\.\.1000000"):
        Accelerator(cores=10**12)


@pytest.mark.parametrize("budget", [1e308, MAX_AREA_MM2 * 1.01, float("inf")])
def test_iso_area_of_an_absurd_budget_is_a_value_error(budget: float) -> None:
    with pytest.raises(ValueError, match="area_budget="):
        Accelerator.iso_area(budget, 2)


def test_iso_area_beyond_a_million_cores_names_the_budget() -> None:
    wafer_mm2 = 70_686.0  # a whole 300 mm wafer
    acc = Accelerator.iso_area(wafer_mm2, 16, total_sram_kib=16384.0)
    assert 1 <= acc.cores <= MAX_COUNT
    assert acc.area <= wafer_mm2
    with pytest.raises(ValueError, match=r"area_budget=1000000\.0 mm\^2 holds \d+ 8x64 cores"):
        Accelerator.iso_area(MAX_AREA_MM2, 2, total_sram_kib=16384.0)


def test_sysml19_names_the_total_sram_the_user_gave() -> None:
    with pytest.raises(ValueError, match=r"total_sram_kib=-1 is not allowed"):
        presets.sysml19(2, total_sram_kib=-1)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def test_unknown_design_names_the_presets(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(["show", "nosuch"], capsys)
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("error: design='nosuch' is neither a preset (")
    for name in presets.names():
        assert name in err


def test_usage_error_is_one_line_without_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(["show", "sysml19", "--bits", "x"], capsys)
    assert (code, err.count("\n")) == (2, 1)
    assert err.startswith("error: ")
    assert "usage" not in err


@pytest.mark.parametrize("content", [b"\x80\x81\xfe binary",
                                     "cores = 'caf\xe9'\n".encode("latin-1")])
def test_non_utf8_design_file_is_named(tmp_path: Path, content: bytes,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "d.toml"
    path.write_bytes(content)
    code, err = _run(["show", str(path)], capsys)
    assert (code, err.count("\n")) == (2, 1)
    assert str(path) in err
    assert "not a UTF-8 text file" in err


def test_yaml_syntax_error_is_one_line_with_its_position(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("cores: 4\nrows: [1\n")
    code, err = _run(["show", str(path)], capsys)
    assert (code, err.count("\n")) == (2, 1)
    assert str(path) in err
    assert "line 3" in err


@pytest.mark.parametrize("save", ["/proc/nonexistent/w.toml", "{tmp}", "{tmp}/w.txt"])
def test_unwritable_save_is_one_line_and_prints_nothing(tmp_path: Path, save: str,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    before = sorted(tmp_path.iterdir())
    code = main(["show", "sysml19", "--save", save.format(tmp=tmp_path)])
    out, err = capsys.readouterr()
    assert (code, err.count("\n"), out) == (2, 1, "")
    assert sorted(tmp_path.iterdir()) == before

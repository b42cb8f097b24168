"""Design files wherever a preset is taken (studies, dse.sweep, dse.study --arch), and studies
found by name without dse importing them."""

from __future__ import annotations

import textwrap

import pytest

from arch import Accelerator, io
from dse.study import registry
from dse.study.runner import _files_digest
from studies import pipeline

CHIP = Accelerator(cores=16, rows=16, cols=16, mac_bits=(4, 4), freq_ghz=1.0, sram_kib=512.0,
                   dram_gbps=64.0, name="my-chip", peak_scaling="density")


def test_a_design_file_is_itself_at_its_bits_and_iso_area_at_others(tmp_path) -> None:
    path = str(io.save(CHIP, tmp_path / "chip.toml"))
    same = pipeline.accelerator((4, 4), 32.0, preset=path)
    assert same == Accelerator(**{**io.to_dict(CHIP), "mac_bits": (4, 4), "dram_gbps": 32.0})
    two = pipeline.accelerator((2, 2), 32.0, preset=path, high_precision="bit_serial")
    assert two.area <= CHIP.area * (1 + 1e-9)
    assert two.cores > CHIP.cores  # 2-bit MACs are smaller: more of them fit the same area
    assert (two.rows, two.cols, two.freq_ghz, two.high_precision) == (16, 16, 1.0, "bit_serial")
    assert two.sram_kib * two.cores == pytest.approx(CHIP.sram_kib * CHIP.cores)  # same total
    assert pipeline.preset_defaults(path) == (CHIP.high_precision, "density")


def test_editing_a_design_file_changes_the_cache_key(tmp_path) -> None:
    path = tmp_path / "chip.toml"
    io.save(CHIP, path)
    before = _files_digest({"preset": str(path), "dram_gbps": 8.0})
    io.save(Accelerator(**{**io.to_dict(CHIP), "cores": 8, "mac_bits": (4, 4)}), path)
    assert _files_digest({"preset": str(path), "dram_gbps": 8.0}) != before
    assert _files_digest({"preset": "sysml19"}) == ""


def test_study_arch_flag(tmp_path, capsys) -> None:
    from dse.study.cli import main

    path = io.save(CHIP, tmp_path / "chip.toml")
    assert main(["mac_area", "--arch", str(path), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "takes no design template" in err
    assert "wrpn_vs_pact" in err  # the studies that do are named
    assert not (tmp_path / "x").exists()
    bad = tmp_path / "bad.toml"
    bad.write_text("cores = 0\n")
    assert main(["wrpn_vs_pact", "--arch", str(bad), "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --arch={str(bad)!r}")
    assert "cores=0" in err
    assert not (tmp_path / "y").exists()


def test_registry_finds_a_users_study_package(tmp_path, monkeypatch) -> None:
    pkg = tmp_path / "mystudies"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "tiny.py").write_text(textwrap.dedent("""
        NAME = "tiny"
        TITLE = "a user's study"
        PARAMS = {}
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(registry.ENV_PACKAGES, "mystudies")
    assert registry.packages() == ("studies", "mystudies")
    assert "tiny" in registry.names()
    assert "wrpn_vs_pact" in registry.names()
    assert registry.get("tiny").TITLE == "a user's study"
    with pytest.raises(ValueError, match=r"unknown study 'nope'; available: .*tiny"):
        registry.get("nope")
    monkeypatch.setenv(registry.ENV_PACKAGES, "no_such_package_here")
    with pytest.raises(ValueError, match="QDSE_STUDY_PACKAGES"):
        registry.names()

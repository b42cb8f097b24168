"""TOML/YAML round trips and error messages of arch.io."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arch import (
    DATAFLOWS,
    HIGH_PRECISION_MODELS,
    PEAK_SCALINGS,
    TECHNOLOGIES,
    Accelerator,
    io,
    presets,
)

DESIGNS = [
    Accelerator(cores=1),
    presets.sysml19(2),
    presets.sysml19((2, 4), float("inf"), peak_scaling="density"),
    presets.llsq40nm(4),
    Accelerator(cores=3, rows=2, cols=5, mac_bits=(3, 7), freq_ghz=0.3, sram_kib=1.5,
                dram_gbps=1e-3, dataflow="is", acc_bits=20, dram_latency_ns=0.0,
                high_precision="bit_serial", name='quote " back\\slash ü\ttab', node_nm=7.0),
]


@pytest.mark.parametrize("suffix", [".toml", ".yaml", ".yml"])
@pytest.mark.parametrize("acc", DESIGNS, ids=lambda a: a.name or "default")
def test_round_trip(tmp_path: Path, acc: Accelerator, suffix: str) -> None:
    path = io.save(acc, tmp_path / f"design{suffix}")
    assert io.load(path) == acc


def test_toml_is_standard_toml(tmp_path: Path) -> None:
    acc = presets.sysml19(4, float("inf"))
    text = io.to_toml(acc)
    data = tomllib.loads(text)
    assert data["mac_bits"] == [4, 4]
    assert data["dram_gbps"] == float("inf")
    # a homogeneous design writes no [[core_groups]] table
    assert set(data) == {f.name for f in dataclasses.fields(Accelerator)} - {"core_groups"}


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_core_groups_round_trip(tmp_path: Path, suffix: str) -> None:
    acc = dataclasses.replace(presets.sysml19(2, 32), noc="mesh", noc_bytes_per_cycle=64.0,
                              core_groups=({"cores": 4, "mac_bits": 16, "name": "edge"},
                                           {"cores": 60}))
    path = io.save(acc, tmp_path / f"groups{suffix}")
    back = io.load(path)
    assert back == acc
    assert [g.mac_bits for g in back.groups()] == [(16, 16), (2, 2)]
    if suffix == ".toml":
        assert [g["cores"] for g in tomllib.loads(path.read_text())["core_groups"]] == [4, 60]


def test_core_groups_from_a_preset_must_sum_to_its_cores(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('preset = "sysml19"\nmac_bits = 2\n[[core_groups]]\ncores = 3\n')
    with pytest.raises(ValueError, match=r"cores=64 is not allowed; expected 3"):
        io.load(path)


def test_yaml_is_plain_yaml(tmp_path: Path) -> None:
    path = io.save(presets.sysml19(2), tmp_path / "a.yaml")
    data = yaml.safe_load(path.read_text())
    assert data["cores"] == 64
    assert data["mac_bits"] == [2, 2]


settings_fast = settings(max_examples=40, deadline=None,
                         suppress_health_check=[HealthCheck.function_scoped_fixture])


accelerators = st.builds(
    Accelerator,
    cores=st.integers(1, 1024), rows=st.integers(1, 256), cols=st.integers(1, 256),
    mac_bits=st.tuples(st.integers(1, 32), st.integers(1, 32)),
    freq_ghz=st.floats(1e-3, 10.0), sram_kib=st.floats(1e-3, 1e6),
    dram_gbps=st.one_of(st.floats(1e-3, 1e4), st.just(float("inf"))),
    dataflow=st.sampled_from(DATAFLOWS), acc_bits=st.integers(1, 64),
    dram_latency_ns=st.floats(0.0, 1e4), high_precision=st.sampled_from(HIGH_PRECISION_MODELS),
    name=st.text(max_size=12), node_nm=st.sampled_from(sorted(TECHNOLOGIES)),
    peak_scaling=st.sampled_from(PEAK_SCALINGS),
)


@settings_fast
@given(acc=accelerators, suffix=st.sampled_from([".toml", ".yaml"]))
def test_round_trip_property(tmp_path: Path, acc: Accelerator, suffix: str) -> None:
    assert io.load(io.save(acc, tmp_path / f"p{suffix}")) == acc
    assert io.from_dict(io.to_dict(acc)) == acc


def test_hand_written_files(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(
        '[accelerator]\ncores = 4\nmac_bits = 2\ndram_gbps = inf\ndataflow = "ws"\n')
    acc = io.load(tmp_path / "a.toml")
    assert (acc.cores, acc.mac_bits, acc.dataflow) == (4, (2, 2), "ws")
    (tmp_path / "p.yaml").write_text("preset: sysml19\nmac_bits: [2, 4]\ndram_gbps: 64\n"
                                     "peak_scaling: density\n")
    assert io.load(tmp_path / "p.yaml") == presets.sysml19((2, 4), 64, peak_scaling="density")
    (tmp_path / "inf.yaml").write_text("cores: 2\ndram_gbps: inf\n")
    assert io.load(tmp_path / "inf.yaml").dram_gbps == float("inf")
    (tmp_path / "l.toml").write_text('preset = "llsq40nm"\nbits = 2\n')
    assert io.load(tmp_path / "l.toml") == presets.llsq40nm(2)


def test_unknown_keys_listed(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text("cores = 4\nbandwidth = 3\nsram = 1\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['bandwidth', 'sram'\].*dram_gbps"):
        io.load(tmp_path / "a.toml")
    (tmp_path / "b.yaml").write_text("preset: sysml19\ncorez: 3\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['corez'\] for preset 'sysml19'"):
        io.load(tmp_path / "b.yaml")
    (tmp_path / "c.yaml").write_text("preset: tpu\n")
    with pytest.raises(ValueError, match="preset='tpu' is not allowed; available: llsq40nm"):
        io.load(tmp_path / "c.yaml")


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"suffix='\.json'.*\.toml, \.yaml, \.yml"):
        io.save(Accelerator(cores=1), tmp_path / "a.json")
    (tmp_path / "bad.toml").write_text("cores = = 4\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        io.load(tmp_path / "bad.toml")
    (tmp_path / "nocores.yaml").write_text("rows: 4\n")
    with pytest.raises(ValueError, match="cores is missing"):
        io.load(tmp_path / "nocores.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        io.load(tmp_path / "list.yaml")
    (tmp_path / "neg.yaml").write_text("cores: 0\n")
    with pytest.raises(ValueError, match=r"neg\.yaml: invalid Accelerator: cores=0"):
        io.load(tmp_path / "neg.yaml")


def test_cli_show_iso_area_and_save(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from arch.__main__ import main

    assert main(["iso-area", "--bits", "16", "2"]) == 0
    out = capsys.readouterr().out
    assert "W16A16" in out
    assert "W2A2" in out
    assert main(["show", "sysml19", "--bits", "2,4", "--save", str(tmp_path / "w.toml")]) == 0
    assert "cores            42" in capsys.readouterr().out
    assert io.load(tmp_path / "w.toml") == presets.sysml19((2, 4))
    assert main(["show", str(tmp_path / "missing.yaml")]) == 2
    assert "error" in capsys.readouterr().err

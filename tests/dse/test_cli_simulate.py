"""``python -m dse.simulate`` and ``python -m dse.compare``: the files they write hold what the
library computes, bad input is one line and exit status 2 with no folder created, and the name
``dse.simulate`` keeps simulating once the CLI module of the same name is imported."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from arch import io
from arch.spec import Accelerator
from dse import compare as compare_cli
from dse.inputs import ModelSpec, load_workload
from dse.sim import simulate as sim_fn

ROOT = Path(__file__).resolve().parents[2]
CHIP = Accelerator(cores=4, rows=8, cols=8, mac_bits=(4, 4), freq_ghz=1.0, sram_kib=64.0,
                   dram_gbps=16.0, name="my-chip")


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, check=False)


@pytest.fixture
def chip(tmp_path: Path) -> Path:
    return io.save(CHIP, tmp_path / "my_chip.toml")


def test_the_module_name_still_simulates() -> None:
    """Importing the CLI module rebinds ``dse.simulate``; calling it still simulates."""
    code = textwrap.dedent("""
        import dse.simulate as m
        import dse
        from dse import simulate
        from arch.spec import Accelerator
        from workloads.graph import Workload
        from dse.sim import SimResult
        from dse.inputs import ModelSpec, load_workload
        wl = load_workload(ModelSpec("digits_cnn"))
        acc = Accelerator(cores=2, rows=4, cols=4, mac_bits=(8, 8), sram_kib=64.0)
        a, b, c = dse.simulate(wl, acc), simulate(wl, acc), m(wl, acc)
        assert all(isinstance(r, SimResult) for r in (a, b, c))
        assert a.latency_s == b.latency_s == c.latency_s > 0
        print("ok")
    """)
    out = _run("-c", code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize("module", ["dse.simulate", "dse.compare"])
def test_help_works_without_warnings(module: str) -> None:
    out = _run("-W", "error", "-m", module, "--help")
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    assert "examples:" in out.stdout
    assert f"python -m {module}" in out.stdout


def test_simulate_writes_what_the_library_computes(chip: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from dse.simulate import main

    out = tmp_path / "report"
    rc = main(["--model", "digits_cnn", "--arch", str(chip), "--w-bits", "4", "--a-bits", "4",
               "--batch", "2", "--out", str(out)])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["layers.csv", "layers.parquet",
                                                     "summary.md", "trace.json"]
    # the oracle: the same workload simulated through the library
    wl = load_workload(ModelSpec("digits_cnn", w_bits=4, a_bits=4, batch=2))
    res = sim_fn(wl, CHIP, batch=2)
    layers = pd.read_csv(out / "layers.csv")
    assert int(layers["macs"].sum()) == res.macs == sum(la.macs for la in wl.compute_layers())
    assert res.macs == 2 * load_workload(ModelSpec("digits_cnn")).total_macs  # batch 2
    assert set(layers["w_bits"]) == {4}
    pd.testing.assert_frame_equal(pd.read_parquet(out / "layers.parquet"), layers,
                                  check_dtype=False)
    summary = (out / "summary.md").read_text()
    assert f"{res.images_per_s:.4g} images/s" in summary
    assert "batch 2" in summary
    trace = json.loads((out / "trace.json").read_text())
    assert any(e.get("cat") == "compute" for e in trace["traceEvents"])
    printed = capsys.readouterr().out
    assert f"{res.images_per_s:.4g} images/s" in printed
    assert "my-chip" in printed


def test_module_factory_and_file_factory(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A user's own nn.Module by package.module:factory and by path/file.py:factory."""
    (tmp_path / "mynets.py").write_text(textwrap.dedent("""
        import torch.nn as nn
        INPUT_SHAPE = (3, 16, 16)
        def build():
            return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                                 nn.Linear(8 * 16 * 16, 10))
    """))
    from dse.simulate import main

    macs = 16 * 16 * 8 * 3 * 9 + 8 * 16 * 16 * 10
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for model in ("mynets:build", str(tmp_path / "mynets.py") + ":build"):
        assert main(["--model", model, "--arch", "sysml19", "--out", "o"]) == 0
        assert int(pd.read_csv(tmp_path / "o" / "layers.csv")["macs"].sum()) == macs


@pytest.mark.parametrize(("args", "words"), [
    (["--model", "nosuchpkg.nets:build", "--arch", "sysml19"],
     ["--model='nosuchpkg.nets:build'", "cannot be imported", "package.module:factory"]),
    (["--model", "json:nosuch", "--arch", "sysml19"],
     ["--model='json:nosuch'", "no callable 'nosuch'", "dumps"]),
    (["--model", "nosuchnet", "--arch", "sysml19"],
     ["--model='nosuchnet'", "alexnet", "FILE.onnx"]),
    (["--model", "digits_cnn", "--arch", "nosuchpreset"],
     ["--arch='nosuchpreset'", "sysml19", "FILE.toml"]),
    (["--model", "digits_cnn", "--arch", "sysml19", "--recipe", "nosuch"],
     ["--recipe='nosuch'", "pact_sawb"]),
    (["--model", "digits_cnn", "--arch", "sysml19", "--batch", "0"], ["--batch=0"]),
    (["--model", "digits_cnn", "--arch", "sysml19", "--fidelity", "cycle"],
     ["--fidelity", "'cycle'", "'layer', 'tile'"]),
    (["--model", "digits_cnn", "--arch", "sysml19", "--schedule", "pipeline", "--groups", "0"],
     ["--groups='0'"]),
    (["--model", "digits_cnn", "--arch", "sysml19", "--schedule", "pipeline", "--groups", "99"],
     ["groups=99 is not allowed", "1..64"]),
    (["--model", "digits_cnn", "--arch", "sysml19", "--schedule", "pipeline", "--stages",
      "conv1"], ["--stages item 'conv1'", "LAYER=GROUP"]),
    (["--model", "digits_cnn", "--arch", "sysml19", "--schedule", "pipeline", "--stages",
      "nosuch=0"], ["stages: layer 'nosuch' is not allowed", "layers:"]),
    (["--model", "digits_cnn", "--arch", "sysml19", "--schedule", "pipeline", "--groups", "2",
      "--buffer-images", "0"], ["--buffer-images=0"]),
])
def test_bad_input_is_one_line_and_creates_nothing(tmp_path: Path, args: list[str],
                                                   words: list[str],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from dse.simulate import main

    out = tmp_path / "never"
    assert main([*args, "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    for w in words:
        assert w in lines[0]
    assert not out.exists()


def test_binary_and_malformed_design_files(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    binary = tmp_path / "latin1.toml"
    binary.write_bytes("name = 'caf\xe9'\ncores = 4\n".encode("latin-1"))
    bad_field = tmp_path / "bad.yaml"
    bad_field.write_text("cores: 4\nrows: 0\n")
    for path, field in ((binary, "UTF-8"), (bad_field, "rows=0")):
        out = tmp_path / "never"
        assert compare_cli.main(["--model", "digits_cnn", "--arch", "sysml19", "--arch",
                                 str(path), "--out", str(out)]) == 2
        line = capsys.readouterr().err.strip()
        assert "\n" not in line
        assert line.startswith("error: --arch=")
        assert str(path) in line, line
        assert field in line, line
        assert not out.exists()


def test_compare_table_matches_single_runs(chip: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    rc = compare_cli.main(["--model", "digits_cnn", "--arch", str(chip), "--arch", "sysml19",
                           "--mac-bits", "4", "--out", str(out)])
    assert rc == 0
    assert {"compare.csv", "compare.png", "compare.svg", "summary.md"} <= {
        p.name for p in out.iterdir()}
    df = pd.read_csv(out / "compare.csv")
    assert list(df["design"]) == ["my-chip", "sysml19-w4a4-doubling"]
    wl = load_workload(ModelSpec("digits_cnn"))
    from arch import presets

    ips = [sim_fn(wl, a).images_per_s for a in (CHIP, presets.sysml19(mac_bits=4))]
    assert df["images_per_s"].tolist() == pytest.approx(ips, rel=1e-9)
    assert df["speedup_vs_first"].tolist() == pytest.approx([1.0, ips[1] / ips[0]])
    parts = df[[c for c in df if c in ("energy_mac_mj", "energy_sram_mj", "energy_dram_mj")]]
    assert parts.sum(axis=1).tolist() == pytest.approx(df["energy_per_image_mj"].tolist())


def test_compare_needs_two_designs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert compare_cli.main(["--model", "digits_cnn", "--arch", "sysml19",
                             "--out", str(tmp_path / "x")]) == 2
    assert "two or more" in capsys.readouterr().err


def test_onnx_file_gives_the_modules_layers(tmp_path: Path) -> None:
    """An ONNX export of a zoo model simulates like the model itself (same MACs, same cycles)."""
    pytest.importorskip("onnx", reason="ONNX input needs the onnx package (the 'onnx' extra)")
    import warnings

    import torch

    from dse.simulate import main
    from workloads import zoo

    path = tmp_path / "digits.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(zoo.get("digits_cnn").eval(), (torch.zeros(2, 1, 8, 8),), str(path),
                          dynamo=False)
    out = tmp_path / "o"
    assert main(["--model", str(path), "--arch", str(io.save(CHIP, tmp_path / "c.toml")),
                 "--out", str(out)]) == 0
    onnx_layers = pd.read_csv(out / "layers.csv")
    ref = sim_fn(load_workload(ModelSpec("digits_cnn", batch=2)), CHIP)
    assert int(onnx_layers["macs"].sum()) == ref.macs  # the file's own batch of 2
    assert onnx_layers["total_cycles"].sum() == pytest.approx(
        ref.layers["total_cycles"].round().sum(), abs=len(onnx_layers))


def test_unreadable_onnx_and_scalesim_files(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from dse.simulate import main

    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x80\x81 not a protobuf")
    topo = tmp_path / "topo.csv"
    topo.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, "
                    "Channels, Num Filter, Strides,\nc1, 10, 10, 3, 3, 4, 8, 1,\n")
    out = tmp_path / "never"
    assert main(["--model", str(bad), "--arch", "sysml19", "--out", str(out)]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"error: --model={str(bad)!r}")
    assert "\n" not in line
    assert not out.exists()
    # a SCALE-Sim topology: one 3x3 conv, 8x8 outputs x 8 filters x 36 MACs each, batch 3
    assert main(["--model", str(topo), "--arch", "sysml19", "--batch", "3",
                 "--out", str(out)]) == 0
    assert int(pd.read_csv(out / "layers.csv")["macs"].sum()) == 3 * 8 * 8 * 8 * 36


def test_tile_fidelity_and_no_prefetch_reach_the_simulator(tmp_path: Path) -> None:
    from dse.simulate import main

    assert main(["--model", "digits_cnn", "--arch", "sysml19", "--fidelity", "tile",
                 "--no-prefetch", "--out", str(tmp_path / "o")]) == 0
    trace = json.loads((tmp_path / "o" / "trace.json").read_text())["traceEvents"]
    assert any(e["ph"] == "C" and e["name"].startswith("buffer") for e in trace)


def test_a_pipeline_schedule_writes_its_stage_table(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from dse.simulate import main

    assert main(["--model", "digits_cnn", "--arch", "sysml19", "--schedule", "pipeline",
                 "--groups", "2", "--batch", "4", "--out", str(tmp_path / "o")]) == 0
    stages = pd.read_csv(tmp_path / "o" / "stages.csv")
    assert stages["group"].tolist() == [0, 1]
    assert stages["images"].tolist() == [4, 4]
    assert "pipeline on 2 core groups: steady state" in capsys.readouterr().out
    assert "## Core groups (pipeline" in (tmp_path / "o" / "summary.md").read_text()

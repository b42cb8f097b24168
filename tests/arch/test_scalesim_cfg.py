"""arch.from_scalesim: SCALE-Sim .cfg -> Accelerator (issue 11, item 4).

Oracle: SCALE-Sim's own config reader (`scalesim.scale_config`, when installed) reads the same
files; the two must agree on every value both understand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from arch import Accelerator, from_scalesim
from arch.scalesim_cfg import read_scalesim

V3 = """[general]
run_name = google_tpu_like

[architecture_presets]
ArrayHeight:    32
ArrayWidth:     16
IfmapSramSzkB:    512
FilterSramSzkB:   256
OfmapSramSzkB:    128
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : 20
Dataflow : ws
MemoryBanks:   1
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: {mode}
UseRamulatorTrace: False
"""


def write(tmp_path: Path, mode: str = "USER", text: str | None = None) -> Path:
    path = tmp_path / "scale.cfg"
    path.write_text(V3.format(mode=mode) if text is None else text)
    return path


def test_user_bandwidth_config_maps_array_buffers_and_ports(tmp_path: Path) -> None:
    acc = from_scalesim(write(tmp_path), freq_ghz=1.0)
    assert (acc.cores, acc.rows, acc.cols, acc.dataflow, acc.name) == (
        1, 32, 16, "ws", "google_tpu_like")
    assert acc.mac_bits == (8, 8)                    # SCALE-Sim's words are bytes
    # (10 ifmap + 10 filter + 20 ofmap) words/cycle x 1 byte x 1 GHz
    assert acc.dram_gbps == pytest.approx(40.0)
    assert acc.sram_kib == 512 + 256 + 128
    fields = Accelerator.__dataclass_fields__
    if "buffers" in fields:
        assert (acc.buffers, acc.ifmap_kib, acc.filter_kib, acc.ofmap_kib) == (
            "split", 512, 256, 128)
        assert (acc.dram_channels, acc.dram_channel_map) == (3, "by_operand")
    assert from_scalesim(write(tmp_path), freq_ghz=2.0).dram_gbps == pytest.approx(80.0)
    assert from_scalesim(write(tmp_path), word_bytes=2, freq_ghz=1.0).dram_gbps == \
        pytest.approx(80.0)


def test_calc_mode_is_unlimited_bandwidth_and_unmapped_keys_are_listed(tmp_path: Path) -> None:
    path = write(tmp_path, "CALC")
    assert math.isinf(from_scalesim(path).dram_gbps)
    cfg = read_scalesim(path)
    assert cfg.bandwidth_words_per_cycle is None
    for key in ("architecture_presets.ifmapoffset", "architecture_presets.readrequestbuffer",
                "layout.ifmapsrambanknum", "sparsity.sparsitysupport",
                "run_presets.useramulatortrace"):
        assert key in cfg.unmapped
    assert "architecture_presets.arrayheight" not in cfg.unmapped
    assert "bandwidth split" in read_scalesim(write(tmp_path)).unmapped   # 10/10/20 differ


def test_agrees_with_scalesims_own_reader(tmp_path: Path) -> None:
    scale_config = pytest.importorskip("scalesim.scale_config",
                                       reason="the scalesim package (peer reader) is missing")
    path = write(tmp_path)
    peer = scale_config.scale_config()
    peer.read_conf_file(str(path))
    ours = read_scalesim(path)
    assert [ours.rows, ours.cols] == list(peer.get_array_dims())
    assert [ours.ifmap_kib, ours.filter_kib, ours.ofmap_kib] == list(peer.get_mem_sizes())
    assert ours.dataflow == peer.df
    assert ours.bandwidth_words_per_cycle == (peer.ifmap_sram_bank_bandwidth,
                                              peer.filter_sram_bank_bandwidth,
                                              peer.get_bandwidths_as_list()[0])
    # and a file written by SCALE-Sim's own writer (no run_presets: CALC)
    out = tmp_path / "written.cfg"
    peer.write_conf_file(str(out))
    again = read_scalesim(out)
    assert (again.rows, again.cols, again.dataflow) == (ours.rows, ours.cols, ours.dataflow)


def test_v2_config_uses_one_bandwidth_for_all_ports(tmp_path: Path) -> None:
    text = ("[general]\nrun_name = v2\n[architecture_presets]\nArrayHeight: 8\nArrayWidth: 8\n"
            "IfmapSramSzkB: 64\nFilterSramSzkB: 64\nOfmapSramSzkB: 32\nDataflow: os\n"
            "Bandwidth: 4\n[run_presets]\nInterfaceBandwidth: USER\n")
    cfg = read_scalesim(write(tmp_path, text=text))
    assert cfg.bandwidth_words_per_cycle == (4, 4, 4)
    acc = cfg.accelerator(freq_ghz=0.5, cores=4, mac_bits=4)
    assert (acc.cores, acc.mac_bits, acc.dram_gbps) == (4, (4, 4), pytest.approx(6.0))


@pytest.mark.parametrize(("edit", "match"), [
    (("ArrayHeight:    32", "ArrayHeight: many"),
     r"\[architecture_presets\] ArrayHeight='many' is invalid; expected an integer > 0"),
    (("Dataflow : ws", "Dataflow : rs"), r"Dataflow='rs' is invalid; expected os, ws or is"),
    (("ArrayWidth:     16\n", ""), r"\[architecture_presets\] arraywidth is missing"),
    (("InterfaceBandwidth: USER", "InterfaceBandwidth: AUTO"),
     r"InterfaceBandwidth='AUTO' is invalid; expected CALC or USER"),
    (("Bandwidth : 20", "Bandwidth : 20,30"), r"per-layer bandwidths are not supported"),
    (("[general]", "no section header"), r"is not a SCALE-Sim .cfg \(INI\) file"),
])
def test_bad_configs_name_file_section_key_and_allowed(tmp_path: Path, edit: tuple[str, str],
                                                        match: str) -> None:
    path = write(tmp_path, text=V3.format(mode="USER").replace(*edit))
    with pytest.raises(ValueError, match=match) as info:
        from_scalesim(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)                   # one line for the CLIs


def test_unreadable_config_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"config_cfg='.*none.cfg': no such file"):
        from_scalesim(tmp_path / "none.cfg")
    binary = tmp_path / "bin.cfg"
    binary.write_bytes(b"[general]\n\x80\x81\xfe")
    with pytest.raises(ValueError, match=r"is not a text file"):
        from_scalesim(binary)
    with pytest.raises(ValueError, match=r"unknown Accelerator field\(s\) \['banks'\]"):
        from_scalesim(write(tmp_path), banks=2)
    with pytest.raises(ValueError, match=r"word_bytes=0 is invalid"):
        from_scalesim(write(tmp_path), word_bytes=0)

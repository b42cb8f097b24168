"""workloads.from_scalesim / Workload.to_scalesim (issue 11, item 4).

Oracles: SCALE-Sim's own results (shared/reference/scalesim: its GEMM view and MACs per layer)
and SCALE-Sim's own topology reader (the `scalesim` package, when installed)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest
from wlkit import meta_model

from workloads import Workload, extract, from_scalesim
from workloads.scalesim_io import CONV_HEADER

REF = Path(__file__).resolve().parents[3] / "shared" / "reference" / "scalesim"


def gemms(wl: Workload) -> list[tuple[int, int, int]]:
    """(M, N, K) of every GEMM SCALE-Sim runs: one per group of each compute layer."""
    return sorted((la.gemm_m, la.gemm_n, la.gemm_k) for la in wl.compute_layers()
                  for _ in range(max(la.groups, 1)))


def scalesim_gemms(path: Path, gemm: bool = False) -> list[tuple[int, int, int]]:
    topologies = pytest.importorskip("scalesim.topology_utils",
                                     reason="the scalesim package (peer reader) is not installed")
    topo = topologies.topologies()
    topo.load_arrays(str(path), mnk_inputs=gemm)
    # its "M" counts ofmap pixels times filters (calc_spatio_temporal_params divides it back)
    return sorted((int(m) // int(n), int(n), int(k))
                  for m, n, k in topo.get_transformed_mnk_dimensions())


@pytest.mark.parametrize("net", ["alexnet", "resnet50"])
def test_reference_topologies_give_scalesims_gemms_and_macs(net: str, tmp_path: Path) -> None:
    path = REF / f"{net}_8x64_os.csv"
    if not path.exists():
        pytest.skip(f"SCALE-Sim reference {path} not available")
    with path.open() as f:
        ref = list(csv.DictReader(f))
    topo = tmp_path / f"{net}.csv"
    cols = ("layer", "ifmap_h", "ifmap_w", "filt_h", "filt_w", "channels", "num_filt", "stride")
    topo.write_text(", ".join(CONV_HEADER) + ",\n"
                    + "".join(", ".join(r[c] for c in cols) + ",\n" for r in ref))
    wl = from_scalesim(topo)
    assert [la.name for la in wl] == [r["layer"] for r in ref]
    for la, r in zip(wl, ref):
        assert (la.gemm_m, la.gemm_n, la.gemm_k, la.macs, la.ho, la.wo) == tuple(
            int(r[c]) for c in ("gemm_M", "gemm_N", "gemm_K", "macs", "ofmap_h", "ofmap_w"))
    assert wl.total_macs == sum(int(r["macs"]) for r in ref)
    assert (wl.name, wl.batch, wl.input_shape) == (net, 1, (3, int(ref[0]["ifmap_h"]),
                                                            int(ref[0]["ifmap_w"])))
    assert not wl.lint()


def test_output_size_follows_scalesims_rule(tmp_path: Path) -> None:
    """SCALE-Sim: Ho = ceil((H - R + s) / s), so 228 rows, 11x11/4 give 56 (PyTorch: 55)."""
    path = tmp_path / "t.csv"
    path.write_text(", ".join(CONV_HEADER) + ",\nc1, 228, 227, 11, 11, 3, 96, 4,\n")
    wl = from_scalesim(path)
    assert (wl["c1"].ho, wl["c1"].wo) == (56, 55)
    assert scalesim_gemms(path) == gemms(wl)


@pytest.mark.parametrize("net", ["alexnet", "resnet50", "mobilenet_v2"])
@pytest.mark.parametrize("fmt", ["conv", "gemm"])
def test_to_scalesim_is_read_by_scalesim_as_the_same_gemms(net: str, fmt: str,
                                                           tmp_path: Path) -> None:
    """Grouped (AlexNet's towers) and depthwise (MobileNet) convs included; our reader gives
    the workload's GEMMs back."""
    wl = extract(meta_model(net), (3, 224, 224))
    path = wl.to_scalesim(tmp_path / f"{net}.csv", format=fmt)
    assert scalesim_gemms(path, gemm=fmt == "gemm") == gemms(wl)
    back = from_scalesim(path)
    assert gemms(back) == gemms(wl)
    assert back.total_macs == wl.total_macs


def test_gemm_format_is_exact_for_batches(tmp_path: Path) -> None:
    wl = extract(meta_model("resnet20"), (3, 32, 32), batch=4)
    with pytest.raises(ValueError, match=r"layer 'conv1' cannot be written in the conv format: "
                                         r"batch n=4.*format='gemm'"):
        wl.to_scalesim(tmp_path / "r.csv")
    back = from_scalesim(wl.to_scalesim(tmp_path / "r.csv", format="gemm"))
    assert gemms(back) == gemms(wl)
    assert [la.op for la in back] == ["linear"] * len(wl.compute_layers())


def test_gemm_topology_reads_as_linear_layers(tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    path.write_text("Layer, M, N, K,\nqk, 128, 128, 64,\nproj, 128, 512, 512,\n")
    wl = from_scalesim(path, default_bits=4)
    assert [(la.op, la.gemm_m, la.gemm_n, la.gemm_k, la.macs) for la in wl] == [
        ("linear", 128, 128, 64, 128 * 128 * 64), ("linear", 128, 512, 512, 128 * 512 * 512)]
    assert wl.predecessors("proj") == ["qk"]
    assert {la.w_bits for la in wl} == {4}
    assert scalesim_gemms(path, gemm=True) == gemms(wl)


def test_sparsity_column_is_kept_and_warned(tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "s.csv"
    path.write_text(", ".join(CONV_HEADER) + ", Sparsity,\nc1, 10, 10, 3, 3, 4, 8, 1, 2:4,\n")
    with caplog.at_level(logging.WARNING, logger="workloads.scalesim_io"):
        wl = from_scalesim(path)
    assert wl["c1"].meta["sparsity"] == "2:4"
    assert "not modelled" in caplog.text


@pytest.mark.parametrize(("text", "match"), [
    ("Layer name, IFMAP Height,\nc1, 10, 10, 3,\n", r"line 2: 4 fields; the conv format has"),
    (", ".join(CONV_HEADER) + ",\nc1, 10, ten, 3, 3, 4, 8, 1,\n",
     r"line 2: IFMAP Width='ten' is invalid; expected an integer >= 1"),
    (", ".join(CONV_HEADER) + ",\nc1, 2, 2, 3, 3, 4, 8, 1,\n", r"filter 3x3 is larger"),
    ("Layer, M, N, K,\n", r"has no layers"),
])
def test_bad_topologies_name_file_line_and_field(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        from_scalesim(path)


def test_unreadable_topology_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"topology_csv='.*nope.csv': no such file"):
        from_scalesim(tmp_path / "nope.csv")
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\x80\x81\x82" * 20)
    with pytest.raises(ValueError, match=r"is not a text file"):
        from_scalesim(binary)
    with pytest.raises(ValueError, match=r"format='csv' is invalid"):
        from_scalesim(binary, format="csv")

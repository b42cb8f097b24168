"""Layer-by-layer cross-check of zoo graphs against SCALE-Sim's topologies (independent oracle).

/work/shared/reference/scalesim holds SCALE-Sim v3 runs of ResNet-50 (stride in the 3x3, 1x1
projections, FC) and the single-tower AlexNet, with each layer's GEMM view: gemm_M = output pixels,
gemm_N = filters, gemm_K = R*S*C, and MACs. Our Layer.gemm_m/gemm_n/gemm_k must agree exactly.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from wlkit import meta_model, zoo_workload

from workloads import Workload, extract

REF = Path(__file__).resolve().parents[3] / "shared" / "reference" / "scalesim"


def _rows(name: str) -> list[dict[str, str]]:
    path = REF / name
    if not path.exists():
        pytest.skip(f"SCALE-Sim reference {path} not available")
    with path.open() as f:
        return list(csv.DictReader(f))


def _resnet50_name(ref: str) -> str:
    """SCALE-Sim layer name -> our module name (res3a_1x1a -> layer2.0.conv1, ...)."""
    if ref == "conv1":
        return "conv1"
    if ref == "fc1000":
        return "fc"
    block, part = ref[3:].split("_", 1)
    stage, idx = int(block[0]) - 1, ord(block[1]) - ord("a")
    conv = {"1x1a": "conv1", "3x3": "conv2", "1x1b": "conv3", "proj": "shortcut.0"}[part]
    return f"layer{stage}.{idx}.{conv}"


def _check(wl: Workload, rows: list[dict[str, str]], names: dict[str, str]) -> None:
    assert len(rows) == len(wl.compute_layers())
    for row in rows:
        la = wl[names[row["layer"]]]
        ours = (la.gemm_m, la.gemm_n * la.groups, la.gemm_k, la.macs, la.stride[0])
        ref = tuple(int(row[c]) for c in ("gemm_M", "gemm_N", "gemm_K", "macs", "stride"))
        assert ours == ref, (row["layer"], la.name)


def test_resnet50_matches_scalesim_layer_by_layer() -> None:
    rows = _rows("resnet50_8x64_os.csv")
    _, wl = zoo_workload("resnet50")
    _check(wl, rows, {r["layer"]: _resnet50_name(r["layer"]) for r in rows})
    assert wl.total_macs == sum(int(r["macs"]) for r in rows) == 4_089_184_256


def test_single_tower_alexnet_matches_scalesim_layer_by_layer() -> None:
    rows = _rows("alexnet_8x64_os.csv")
    wl = extract(meta_model("alexnet", grouped=False), (3, 224, 224))
    names = dict(zip([r["layer"] for r in rows], [la.name for la in wl.compute_layers()]))
    _check(wl, rows, names)


def test_grouped_alexnet_halves_the_split_layers() -> None:
    """Krizhevsky's two towers (our default) halve conv2/4/5 against SCALE-Sim's single tower."""
    rows = {r["layer"]: int(r["macs"]) for r in _rows("alexnet_8x64_os.csv")}
    _, wl = zoo_workload("alexnet")
    ours = {ref: la.macs for ref, la in zip(rows, wl.compute_layers())}
    for ref, macs in rows.items():
        assert ours[ref] == (macs // 2 if ref in ("conv2", "conv4", "conv5") else macs), ref

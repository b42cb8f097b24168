"""Workload additions owned by workloads/: lint(), summary(), totals(), ops, input_modules()."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from workloads import ExtractError, Layer, Workload, extract, zoo


def _conv(name: str, **kw: int) -> Layer:
    d = dict(n=1, c=4, h=8, w=8, k=8, r=3, s=3, ho=8, wo=8, groups=1)
    d.update(kw)
    macs = d["n"] * d["k"] * d["ho"] * d["wo"] * (d["c"] // d["groups"]) * d["r"] * d["s"]
    return Layer(name=name, op="conv", macs=macs, weight_elems=d["k"] * d["c"] * 9,
                 input_elems=d["n"] * d["c"] * 64, output_elems=d["n"] * d["k"] * 64, **d)


def test_lint_accepts_consistent_hand_built_graph() -> None:
    wl = Workload.from_layers([_conv("a"), _conv("b", c=8)])
    assert wl.lint() == []
    assert wl.totals()["macs"] == 8 * 64 * 4 * 9 + 8 * 64 * 8 * 9


def test_lint_reports_every_problem() -> None:
    bad_macs = Layer(name="a", op="conv", c=4, k=8, r=3, s=3, ho=8, wo=8, macs=7)
    bad_groups = _conv("b", c=8, groups=3)
    wl = Workload.from_layers([bad_macs, bad_groups])
    wl.graph.edges["a", "b"]["bytes"] += 1
    problems = wl.lint()
    assert any("layer 'a' (conv): macs=7, dims give 18432" in p for p in problems)
    assert any("groups=3 does not divide" in p for p in problems)
    assert any("edge a->b: bytes=" in p for p in problems)


def test_summary_lists_every_op_and_totals() -> None:
    with torch.device("meta"):
        model = zoo.get("digits_cnn")
    wl = extract(model, (1, 8, 8), default_bits=4)
    text = wl.summary()
    lines = text.splitlines()
    assert len(lines) == 3 + len(wl) + 2
    assert all(la.name in text for la in wl)
    assert f"{wl.total_macs / 1e9:.4f} GMACs" in lines[-1]
    assert len(wl.summary(compute_only=True).splitlines()) == 3 + 4 + 2
    assert set(wl.ops["name"]) == {la.name for la in wl}
    t = wl.totals()
    assert t["weight_bytes"] == wl.weight_bytes == wl.layers["weight_bytes"].sum()


def test_leaf_modules_parameter_free_kept_parametrised_rejected() -> None:
    class Shuffle(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n, c, h, w = x.shape
            return x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)
            self.shuffle = Shuffle()
            self.head = nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.shuffle(self.conv(x)))

    wl = extract(Net(), (3, 4, 4), leaf_modules=[Shuffle])
    assert wl["shuffle"].op == "other"
    assert wl.predecessors("head.0") == ["shuffle"]
    with pytest.raises(ExtractError, match=r"module 'head' \(Sequential\) has parameters"):
        extract(Net(), (3, 4, 4), leaf_modules=["head"])


def test_odd_width_multiplier_keeps_alexnet_groups_valid() -> None:
    with torch.device("meta"):
        model = zoo.get("alexnet", width=1.3)
    wl = extract(model, (3, 224, 224))
    assert all(la.c % la.groups == 0 and la.k % la.groups == 0 for la in wl.compute_layers())


def test_input_shape_checked_against_first_linear() -> None:
    mlp = nn.Sequential(nn.Linear(64, 10), nn.ReLU(), nn.Linear(10, 3))
    assert extract(mlp, (64,)).total_macs == 64 * 10 + 10 * 3
    with pytest.raises(ValueError, match=r"last dim 32 but layer '0' \(Linear\) expects 64"):
        extract(mlp, (32,))
    with pytest.raises(ValueError, match=r"input_shape=224 is invalid"):
        extract(mlp, 224)  # type: ignore[arg-type]


def test_multiple_outputs_share_one_output_node() -> None:
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(3, 4, 1)
            self.b = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            y = self.a(x)
            return {"feat": y, "logits": self.b(y.mean((2, 3)))}

    wl = extract(Two(), (3, 4, 4), batch=2)
    assert wl.predecessors("output") == ["a", "b"]
    assert (wl["output"].n, wl["output"].input_elems) == (2, 2 * 4 * 16 + 2 * 2)


def test_shape_errors_caught_without_running_the_model() -> None:
    """The meta-device pass must still reject what a real forward pass would reject (its
    shortcut checks fail, the real pass runs and names the node)."""
    broken = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(5), nn.ReLU())
    with pytest.raises(ExtractError, match=r"failed at node '_1' \(call_module 1\).*running_mean"):
        extract(broken, (3, 8, 8))
    broken = nn.Sequential(nn.Flatten(), nn.Linear(10, 2))
    with pytest.raises(ExtractError, match=r"failed at node '_1' .*1x12 and 10x2"):
        extract(broken, (3, 2, 2))


def test_resize_ops_are_modelled_not_unsupported() -> None:
    class Seg(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = nn.Conv2d(3, 4, 3, stride=2, padding=1)
            self.up = nn.Upsample(scale_factor=2)
            self.dec = nn.Conv2d(4, 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.dec(torch.nn.functional.pad(self.up(self.enc(x)), (1, 1, 1, 1)))

    wl = extract(Seg(), (3, 8, 8))
    assert [la.op for la in wl] == ["input", "conv", "resize", "resize", "conv", "output"]
    assert wl["up"].output_elems == 4 * 8 * 8
    assert not any("unsupported" in la.meta for la in wl)
    assert wl["dec"].macs == 2 * 4 * 10 * 10

"""extract(): bits protocol, overrides, fusion, residual structure, errors, persistence."""

from __future__ import annotations

import logging
import math

import networkx as nx
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from wlkit import (
    FakeQuantAct,
    FakeQuantConv2d,
    FakeQuantLinear,
    hook_macs,
    meta_model,
    zoo_workload,
)

from workloads import ExtractError, QuantizedModule, Workload, extract, is_quantized, zoo
from workloads.graph import bytes_for


class QuantNet(nn.Module):
    """conv0 (float) -> BN -> QuantAct(3) -> qconv (w2, act_bits None) -> ReLU -> pool -> qfc."""

    def __init__(self, act_bits: int | None = None) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(8)
        self.act0 = FakeQuantAct(3)
        self.qconv = FakeQuantConv2d(8, 16, 3, padding=1, bias=False, weight_bits=2,
                                     act_bits=act_bits)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.qfc = FakeQuantLinear(16 * 4 * 4, 10, weight_bits=4, act_bits=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act0(self.bn0(self.conv0(x)))
        x = self.pool(self.relu(self.qconv(x)))
        return self.qfc(x.flatten(1))


def test_protocol_detection() -> None:
    assert isinstance(FakeQuantConv2d(3, 4, 3), QuantizedModule)
    assert is_quantized(FakeQuantAct(2))
    assert not is_quantized(nn.Conv2d(3, 4, 3))


def test_bits_read_from_protocol_modules() -> None:
    model = QuantNet()
    wl = extract(model, (3, 8, 8), default_bits=16)
    c0, qc, fc = wl["conv0"], wl["qconv"], wl["qfc"]
    assert (c0.w_bits, c0.a_bits) == (16, 16)           # not quantized: default
    assert c0.o_bits == 3                               # QuantAct(3) fused on its output
    assert c0.meta["fused"] == ["bn0", "act0"]
    assert (qc.w_bits, qc.a_bits) == (2, 3)             # act_bits None: bits of the upstream act
    assert (fc.w_bits, fc.a_bits) == (4, 4)
    assert qc.o_bits == 4                               # stored at what its reader (qfc) needs
    assert wl.graph.edges["conv0", "qconv"]["bits"] == 3
    assert wl.graph.edges["conv0", "qconv"]["bytes"] == bytes_for(8 * 8 * 8, 3)
    assert qc.weight_bytes == math.ceil(16 * 8 * 9 * 2 / 8)
    assert wl.total_macs == hook_macs(model, (3, 8, 8))
    # the layer's own act_bits wins over the upstream quantizer
    assert extract(QuantNet(act_bits=5), (3, 8, 8))["qconv"].a_bits == 5


def test_overrides_int_tuple_dict() -> None:
    model = QuantNet()
    wl = extract(model, (3, 8, 8), default_bits=8,
                 overrides={"conv0": 6, "qconv": (3, 2), "qfc": {"o_bits": 12}, "pool": 5})
    assert (wl["conv0"].w_bits, wl["conv0"].a_bits) == (6, 6)
    assert (wl["qconv"].w_bits, wl["qconv"].a_bits) == (3, 2)
    assert wl["qfc"].o_bits == 12
    assert wl["qfc"].w_bits == 4
    assert wl["pool"].o_bits == 5                       # int on a memory op: its stored output
    assert wl["input"].o_bits == 6                      # the image is stored for conv0


@pytest.mark.parametrize(("overrides", "match"), [
    ({"nope": 4}, r"unknown layer 'nope'; compute layers are: conv0, qconv, qfc"),
    ({"bn0": 4}, r"'bn0' was fused into layer 'conv0'"),
    ({"conv0": 0}, r"overrides\['conv0'\]=0 is invalid; expected an int in \[1, 64\]"),
    ({"conv0": True}, r"overrides\['conv0'\]=True"),
    ({"conv0": (2, 2, 2)}, r"expected \(w_bits, a_bits\)"),
    ({"conv0": {"bits": 2}}, r"has keys \['bits'\]; allowed: w_bits, a_bits, o_bits"),
    ([("conv0", 2)], r"overrides=.* expected a dict"),
])
def test_bad_overrides(overrides: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        extract(QuantNet(), (3, 8, 8), overrides=overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kw", "match"), [
    ({"batch": 0}, r"batch=0 is invalid"),
    ({"default_bits": 65}, r"default_bits=65 is invalid; expected an int in \[1, 64\]"),
    ({"input_shape": (3, 8)}, r"input_shape=\(3, 8\) has 2 dims.*give \(C, H, W\)"),
    ({"input_shape": (3, 0, 8)}, r"input_shape=\(3, 0, 8\) is invalid; expected .*positive"),
    ({"input_shape": (1, 8, 8)}, r"C=1 but layer 'conv0' \(Conv2d\) expects 3 input channels"),
    ({"input_shape": (3, 10, 8)}, r"shape propagation of QuantNet failed at node 'qfc'"),
])
def test_bad_arguments(kw: dict[str, object], match: str) -> None:
    kw = {"input_shape": (3, 8, 8), **kw}
    with pytest.raises(ValueError, match=match):
        extract(QuantNet(), **kw)  # type: ignore[arg-type]


def test_bad_spatial_size_names_the_failing_layer() -> None:
    with pytest.raises(ExtractError, match=r"failed at node 'features_7' \(call_module features.7"
                                           r"\) for input \(batch=1, \*input_shape=\(3, 16, 16\)"):
        extract(meta_model("alexnet"), (3, 16, 16))


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.gate = Gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gate(self.conv(x))


class Gate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x
        return -x


def test_untraceable_model_error_names_module_op_and_fix() -> None:
    with pytest.raises(ExtractError) as info:
        extract(DataDependent(), (3, 8, 8))
    msg = str(info.value)
    assert "module 'gate' (Gate)" in msg
    assert "if x.sum() > 0:" in msg                       # the user's source line
    assert "control flow" in msg                          # torch.fx's reason
    assert "concrete_args" in msg
    assert "leaf_modules" in msg
    assert isinstance(info.value, ValueError)


def test_concrete_args_fix_python_branch() -> None:
    class Flag(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(3, 4, 3)
            self.b = nn.Conv2d(3, 4, 5)

        def forward(self, x: torch.Tensor, big: bool = False) -> torch.Tensor:
            return self.b(x) if big else self.a(x)

    wl = extract(Flag(), (3, 8, 8), concrete_args={"big": True})
    assert [la.name for la in wl.compute_layers()] == ["b"]


def test_unmodelled_parametrised_module_is_reported_without_a_leaf_modules_hint() -> None:
    """The user never added nn.Bilinear to leaf_modules: the error must not tell them to remove
    it from there (issue 11); it names the module and what qdse does lower."""

    class Bil(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bil = nn.Bilinear(8, 8, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.bil(x, x)

    with pytest.raises(ExtractError, match=r"module 'bil' \(Bilinear\) has parameters") as info:
        extract(Bil(), (8,))
    assert "leaf_modules" not in str(info.value)
    assert "MultiheadAttention" in str(info.value)          # what is allowed
    assert "ignore_unsupported" in str(info.value)           # the way out
    wl = extract(Bil(), (8,), ignore_unsupported=["bil"])
    assert wl["bil"].op == "other"
    assert wl["bil"].weight_elems == 8 * 8 * 4 + 4
    assert wl.ignored() == {"bil": "Bilinear"}


def test_unmodelled_arithmetic_is_an_error_unless_ignored(
        caplog: pytest.LogCaptureFixture) -> None:
    class Cum(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.cumsum(x, dim=1))

    with pytest.raises(ExtractError, match=r"op 'cumsum' \(cumsum\) has arithmetic"):
        extract(Cum(), (8,))
    with caplog.at_level(logging.WARNING, logger="workloads.lower"):
        wl = extract(Cum(), (8,), ignore_unsupported=True)
    other = [la for la in wl if la.op == "other"]
    assert len(other) == 1
    assert other[0].meta["unsupported"] == "cumsum"
    assert "cumsum" in caplog.text
    assert wl.predecessors("fc") == [other[0].name]
    assert "ignored (not modelled, no arithmetic counted): cumsum (cumsum)" in wl.summary()
    with pytest.raises(ValueError, match="ignore_unsupported='cumsum' is invalid"):
        extract(Cum(), (8,), ignore_unsupported="cumsum")


def test_functional_ops_are_modelled() -> None:
    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(6, 3, 3, 3))
            self.proj = nn.Parameter(torch.randn(12, 5))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = F.conv2d(x, self.w, padding=1)                 # 6 x 8 x 8
            a, b = torch.chunk(y, 2, dim=1)                     # views
            z = torch.cat([a * torch.sigmoid(b), y], dim=1)     # mul, act, concat: 9 x 8 x 8
            s = z.mean((2, 3))                                  # reduction -> pool
            return torch.matmul(s[:, :9].unsqueeze(1).expand(-1, 12, -1)[..., :5], self.proj.T)

    wl = extract(Mixed(), (3, 8, 8), batch=2)
    ops = sorted(la.op for la in wl)
    assert ops.count("concat") == 1
    assert ops.count("mul") == 1
    assert ops.count("pool") == 1
    conv = next(la for la in wl if la.op == "conv")
    assert conv.macs == 2 * 6 * 8 * 8 * 3 * 9
    assert conv.weight_elems == 6 * 3 * 9
    mm = next(la for la in wl if la.op == "matmul")
    assert mm.macs == 2 * 12 * 12 * 5                       # numel(out) * K
    assert mm.weight_elems == 12 * 5
    cat = next(la for la in wl if la.op == "concat")
    assert len(wl.predecessors(cat.name)) == 2
    assert not wl.lint()


def test_standalone_activation_kept_when_not_fusible() -> None:
    class Fork(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.relu = nn.ReLU()
            self.a = nn.Conv2d(3, 4, 1)
            self.b = nn.Conv2d(3, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            r = self.relu(x)              # reads the input, feeds two convs: costs traffic
            return self.a(r) + self.b(r)

    wl = extract(Fork(), (3, 4, 4))
    assert wl["relu"].op == "act"
    assert wl.successors("relu") == ["a", "b"]
    assert wl["relu"].output_bytes == bytes_for(3 * 16, 16)


def test_residual_structure_resnet18() -> None:
    _, wl = zoo_workload("resnet18")
    adds = [la for la in wl if la.op == "add"]
    assert len(adds) == 8
    assert all(len(wl.predecessors(a.name)) == 2 for a in adds)
    sc = wl["layer2.0.shortcut.0"]
    assert (sc.op, sc.role, sc.r, sc.s, sc.stride) == ("conv", "shortcut", 1, 1, (2, 2))
    (add,) = wl.successors(sc.name)
    assert sorted(wl.predecessors(add)) == ["layer2.0.conv2", "layer2.0.shortcut.0"]
    # the shortcut reads the same (pre-activated) tensor as the block's first conv
    assert wl.predecessors(sc.name) == wl.predecessors("layer2.0.conv1")
    assert wl["conv1"].role == "first"
    assert wl["fc"].role == "last"
    assert sorted(la.name for la in wl if la.role == "shortcut") == [
        "layer2.0.shortcut.0", "layer3.0.shortcut.0", "layer4.0.shortcut.0"]
    # everything but conv / pool / add / fc was fused or collapsed
    assert {la.op for la in wl} == {"input", "conv", "pool", "add", "linear", "output"}
    assert wl["conv1"].meta["fused"] == ["bn1", "relu"]
    assert wl["layer1.0.conv1"].meta["prologue"] == ["layer1.0.bn1", "layer1.0.relu1"]


class ProjNet(nn.Module):
    """Residual block whose projection is called 'proj' (no 'shortcut' in the name)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.conv1 = nn.Conv2d(8, 16, 3, 2, 1)
        self.conv2 = nn.Conv2d(16, 16, 3, 1, 1)
        self.proj = nn.Sequential(nn.Conv2d(8, 16, 1, 2), nn.BatchNorm2d(16))
        self.fc = nn.Linear(16 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = self.conv2(torch.relu(self.conv1(x))) + self.proj(x)
        return self.fc(y.flatten(1))


def test_shortcut_found_structurally(tiny_residual: nn.Module) -> None:
    wl = extract(ProjNet(), (3, 8, 8))
    assert wl["proj.0"].role == "shortcut"
    assert wl["conv2"].role == ""
    assert wl["proj.0"].meta["fused"] == ["proj.1"]
    wl = extract(tiny_residual, (3, 8, 8))
    assert wl["shortcut.0"].role == "shortcut"
    assert wl.graph.edges["pool", "fc"]["shape"] == (1, 16)     # flatten collapsed: fc's view
    assert wl.total_macs == hook_macs(tiny_residual, (3, 8, 8))


def test_mobilenet_depthwise_and_residuals() -> None:
    _model, wl = zoo_workload("mobilenet_v2")
    dw = [la for la in wl.compute_layers() if la.groups > 1]
    assert len(dw) == 17
    assert all(la.groups == la.c == la.k for la in dw)
    assert sum(la.op == "add" for la in wl) == 10
    assert not any(la.role == "shortcut" for la in wl)       # identity shortcuts only


def test_layer_dims_match_modules() -> None:
    model, wl = zoo_workload("resnet50")
    mods = dict(model.named_modules())
    for la in wl.compute_layers():
        m = mods[la.module]
        if la.op == "conv":
            assert (la.c, la.k, (la.r, la.s), la.stride, la.groups) == (
                m.in_channels, m.out_channels, m.kernel_size, m.stride, m.groups)
            assert la.weight_elems == m.weight.numel()
        else:
            assert (la.c, la.k) == (m.in_features, m.out_features)


@pytest.mark.parametrize("name", zoo.names())
def test_every_module_call_is_accounted_for(name: str) -> None:
    """Nothing dropped: each leaf module is a node, fused into one, or a collapsed view."""
    model, wl = zoo_workload(name)
    leaves = {n for n, m in model.named_modules() if not list(m.children())}
    nodes = {la.module for la in wl if la.module}
    fused = {f for la in wl for f in (*la.meta.get("fused", []), *la.meta.get("prologue", []))}
    views = {n for n, m in model.named_modules()
             if isinstance(m, nn.Flatten | nn.Dropout | nn.Identity)}
    assert leaves == nodes | fused | views
    assert not nodes & fused


@pytest.mark.parametrize("name", zoo.names())
def test_bytes_are_conserved_along_edges(name: str) -> None:
    _, wl = zoo_workload(name)
    for u, v, d in wl.graph.edges(data=True):
        assert d["bytes"] == bytes_for(math.prod(d["shape"]), d["bits"])
        if wl[u].op not in ("input",):
            assert math.prod(d["shape"]) == wl[u].output_elems, (u, v)
    for la in wl.compute_layers():
        (p,) = wl.predecessors(la.name)
        assert la.input_elems == math.prod(wl.graph.edges[p, la.name]["shape"])


@settings(max_examples=8, deadline=None)
@given(batch=st.integers(1, 5), bits=st.integers(1, 16))
def test_batch_and_bits_scaling(batch: int, bits: int) -> None:
    """MACs and activation elements are linear in batch; weights are not; bytes follow bits."""
    model = QuantNet()
    one = extract(model, (3, 8, 8), default_bits=bits)
    many = extract(model, (3, 8, 8), batch=batch, default_bits=bits)
    assert many.total_macs == batch * one.total_macs
    assert all(la.n == batch for la in many.compute_layers())
    for a, b in zip(one, many):
        assert b.output_elems == batch * a.output_elems
        assert b.weight_elems == a.weight_elems
    assert one["conv0"].weight_bytes == bytes_for(8 * 3 * 9, bits)


def test_model_is_not_mutated() -> None:
    model = QuantNet().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = list(model.parameters())
    extract(model, (3, 8, 8))
    assert all(p is q and p.device.type == "cpu" for p, q in zip(params, model.parameters()))
    assert all(m.training for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


class ValueGate(nn.Module):
    """Reads a tensor value (impossible on the meta device): shapes need a real forward pass."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 if x.sum().item() >= 0 else x


def test_real_forward_fallback_when_meta_fails(caplog: pytest.LogCaptureFixture) -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), ValueGate(), nn.Flatten(), nn.Linear(4 * 36, 2))
    with caplog.at_level(logging.DEBUG, logger="workloads.trace"):
        wl = extract(model, (3, 8, 8), leaf_modules=[ValueGate])
    assert "running a real forward pass" in caplog.text
    assert wl["1"].op == "other"
    assert wl.total_macs == hook_macs(model, (3, 8, 8))


def test_protocol_modules_never_need_a_real_pass(caplog: pytest.LogCaptureFixture) -> None:
    """Quantizers may read values (FakeQuantAct calls float(alpha)), but the bits protocol
    fixes their output shapes, so shapes still come from the meta device."""
    with caplog.at_level(logging.DEBUG, logger="workloads.trace"):
        wl = extract(QuantNet(), (3, 8, 8), batch=3)
    assert "real forward pass" not in caplog.text
    assert wl["qfc"].c == 256
    assert wl.total_macs == hook_macs(QuantNet(), (3, 8, 8), 3)


def test_topological_iteration_and_tables() -> None:
    _, wl = zoo_workload("resnet18")
    order = [la.name for la in wl]
    pos = {n: i for i, n in enumerate(order)}
    assert all(pos[u] < pos[v] for u, v in wl.graph.edges)
    assert order == list(nx.lexicographical_topological_sort(wl.graph))
    df = wl.layers
    assert list(df.columns[:8]) == ["name", "op", "macs", "w_bits", "a_bits", "o_bits",
                                    "weight_bytes", "input_bytes"]
    assert len(df) == 21
    assert df["macs"].sum() == wl.total_macs
    assert wl.weight_bytes == sum(bytes_for(la.weight_elems, 16) for la in wl)
    text = wl.summary()
    assert "layer4.1.conv2" in text
    assert f"{wl.total_macs / 1e9:.4f} GMACs" in text
    assert len(wl.ops) == len(wl)


def test_json_round_trip_identity(tmp_path: object) -> None:
    for wl in (zoo_workload("resnet18")[1], extract(QuantNet(), (3, 8, 8), default_bits=6)):
        path = tmp_path / f"{wl.name}.json"  # type: ignore[operator]
        wl.save(path)
        back = Workload.load(path)
        assert back == wl
        assert back.to_json() == wl.to_json()
        assert [la for la in back] == [la for la in wl]
        assert [la.meta for la in back] == [la.meta for la in wl]
        assert dict(back.graph.edges.items()) == dict(wl.graph.edges.items())
        assert (back.name, back.batch, back.input_shape) == (wl.name, wl.batch, wl.input_shape)


class PoolNet(nn.Module):
    """QuantAct(3) -> {max | avg} pool -> conv -> fc: does the 3-bit grid survive the pool?"""

    def __init__(self, pool: nn.Module) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.act = FakeQuantAct(3)
        self.pool = pool
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(self.pool(self.act(self.stem(x)))).flatten(1))


def test_quantizer_bits_survive_max_pool_not_avg_pool() -> None:
    wl = extract(PoolNet(nn.MaxPool2d(2)), (1, 8, 8), default_bits=16)
    assert wl["stem"].o_bits == 3
    assert wl["pool"].o_bits == 3
    assert wl["conv"].a_bits == 3
    wl = extract(PoolNet(nn.AvgPool2d(2)), (1, 8, 8), default_bits=16)
    assert wl["stem"].o_bits == 3
    assert wl["pool"].a_bits == 3
    assert wl["pool"].o_bits == 16
    assert wl["conv"].a_bits == 16
    assert wl["output"].a_bits == 16                              # max(w_bits, a_bits) of fc


def test_standalone_quant_act_sets_bits_of_its_output() -> None:
    class Fork(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q = FakeQuantAct(4)
            self.a = nn.Conv2d(3, 4, 1)
            self.b = nn.Conv2d(3, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.q(x)
            return self.a(y) * self.b(y)

    wl = extract(Fork(), (3, 4, 4), default_bits=8)
    assert (wl["q"].op, wl["q"].o_bits) == ("act", 4)
    assert wl["a"].a_bits == wl["b"].a_bits == 4
    assert wl["input"].o_bits == 8               # a quantizer reads its input unquantized
    assert wl["mul"].op == "mul"
    assert wl["mul"].vector_ops == 4 * 16


@st.composite
def conv_stacks(draw: st.DrawFn) -> tuple[nn.Module, tuple[int, int, int]]:
    """Random conv stacks: kernels, strides, padding (incl. 'same'), dilation, groups, pools."""
    c = draw(st.sampled_from([1, 2, 3, 4]))
    h, w = draw(st.integers(8, 20)), draw(st.integers(8, 20))
    layers: list[nn.Module] = []
    c_in, size = c, min(h, w)
    for _ in range(draw(st.integers(1, 4))):
        g = draw(st.sampled_from([1, 1, 2, c_in]))
        g = g if c_in % g == 0 else 1
        k_out = g * draw(st.integers(1, 3))
        kernel = draw(st.sampled_from([1, 3, 5]))
        dil = draw(st.sampled_from([1, 1, 2]))
        if draw(st.booleans()) and dil * (kernel - 1) + 1 <= size:
            conv = nn.Conv2d(c_in, k_out, kernel, padding="same", dilation=dil, groups=g)
        else:
            stride = draw(st.sampled_from([1, 2]))
            conv = nn.Conv2d(c_in, k_out, kernel, stride, padding=kernel // 2, groups=g)
            size = (size + 2 * (kernel // 2) - kernel) // stride + 1
        layers += [conv, nn.BatchNorm2d(k_out), nn.ReLU()]
        if size >= 4 and draw(st.booleans()):
            layers.append(draw(st.sampled_from([nn.MaxPool2d(2), nn.AvgPool2d(2)])))
            size //= 2
        c_in = k_out
    layers += [nn.AdaptiveAvgPool2d(draw(st.sampled_from([1, 2, 3]))), nn.Flatten()]
    model = nn.Sequential(*layers).eval()
    with torch.no_grad():
        feat = model(torch.zeros(1, c, h, w)).shape[1]
    model.append(nn.Linear(feat, draw(st.integers(1, 5))))
    return model, (c, h, w)


@settings(max_examples=15, deadline=None)
@given(case=conv_stacks(), batch=st.integers(1, 3), bits=st.integers(2, 16))
def test_random_conv_stacks_macs_bytes_and_round_trip(case: tuple[nn.Module, tuple[int, ...]],
                                                      batch: int, bits: int) -> None:
    model, shape = case
    wl = extract(model, shape, batch=batch, default_bits=bits)
    assert wl.total_macs == hook_macs(model, shape, batch)
    assert not wl.lint()
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    assert [la.groups for la in wl.compute_layers()][:-1] == [m.groups for m in convs]
    assert wl.weight_bytes == sum(bytes_for(m.weight.numel(), bits) for m in model
                                  if isinstance(m, nn.Conv2d | nn.Linear))
    assert Workload.from_json(wl.to_json()) == wl


def test_conv1d_and_linear_on_sequences() -> None:
    class Seq(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv1d(4, 8, 3, padding=1)
            self.fc = nn.Linear(8, 6)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.conv(x).transpose(1, 2))          # (N, L, 8) -> (N, L, 6)

    model = Seq()
    wl = extract(model, (4, 10), batch=2)
    conv, fc = wl["conv"], wl["fc"]
    assert (conv.c, conv.h, conv.w, conv.k, conv.r, conv.s, conv.wo) == (4, 1, 10, 8, 1, 3, 10)
    assert conv.padding == (0, 1)
    assert (fc.n, fc.ho, fc.c, fc.k) == (2, 10, 8, 6)
    assert wl.total_macs == hook_macs(model, (4, 10), 2) == 2 * (8 * 10 * 4 * 3 + 10 * 8 * 6)


def test_module_names_win_over_pseudo_node_names() -> None:
    class Named(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.input = nn.Conv2d(3, 4, 1)
            self.output = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.output(self.input(x).mean((2, 3)))

    wl = extract(Named(), (3, 4, 4), overrides={"input": 4, "output": 8})
    assert wl["input"].op == "conv"
    assert wl["input"].w_bits == 4
    assert wl["output"].op == "linear"
    assert wl["output"].w_bits == 8
    assert wl["input_"].op == "input"
    assert wl["output_"].op == "output"


def test_input_modules_finds_fused_quantizers() -> None:
    wl = extract(PoolNet(nn.MaxPool2d(2)), (1, 8, 8))
    assert wl.input_modules("conv") == ["act"]              # fused into stem, through the pool
    _, r18 = zoo_workload("resnet18")
    assert r18.input_modules("layer1.1.conv1") == ["layer1.1.bn1", "layer1.1.relu1"]
    assert r18.input_modules("layer2.0.shortcut.0") == ["layer2.0.bn1", "layer2.0.relu1"]


class PreActPact(nn.Module):
    """Pre-activation block, PACT after each BN: x + conv2(q(bn(conv1(q(bn(x))))))."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.q1 = FakeQuantAct(2)
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.q2 = FakeQuantAct(2)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = x + self.conv2(self.q2(self.bn2(self.conv1(self.q1(self.bn1(x))))))
        return self.fc(y.mean((2, 3)))


def test_residual_stream_keeps_raw_precision_under_preactivation_quantizers() -> None:
    """The add and the pre-activation BN read raw values: the stem output cannot be 2-bit."""
    wl = extract(PreActPact(), (3, 8, 8), default_bits=16)
    assert wl["conv1"].meta["prologue"] == ["bn1", "q1"]
    assert wl["conv1"].a_bits == 2
    assert wl["conv2"].a_bits == 2
    assert wl["conv1"].o_bits == 2                      # bn2 -> q2 fused on its output
    assert wl["stem"].o_bits == 16                      # read raw by bn1 and by the add
    assert wl["conv2"].o_bits == 16
    assert wl["add"].a_bits == 16

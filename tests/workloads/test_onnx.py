"""workloads.from_onnx (issue 11, item 2): zoo models exported with torch.onnx give the MACs and
layer shapes workloads.extract gives; QONNX / QCDQ quantizer nodes set the bits; bad input is one
clear error."""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from workloads import ExtractError, Layer, Workload, extract, from_onnx, zoo

onnx = pytest.importorskip("onnx", reason="optional extra qdse[onnx] (the onnx package) missing")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def export(model: nn.Module, shape: tuple[int, ...], batch: int = 2, *, dynamo: bool = False,
           **kw: object) -> onnx.ModelProto:
    """torch.onnx.export to memory (the legacy exporter unless ``dynamo``: 10x faster)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.zeros(batch, *shape),), buf, dynamo=dynamo,
                          **kw)  # type: ignore[arg-type]
    return onnx.load_from_string(buf.getvalue())


def key(la: Layer) -> tuple[object, ...]:
    return (la.op, la.macs, la.n, la.c, la.h, la.w, la.k, la.ho, la.wo, la.r, la.s, la.stride,
            la.padding, la.groups, la.weight_elems)


def assert_same_layers(ours: Workload, ref: Workload) -> None:
    assert ours.total_macs == ref.total_macs
    assert sorted(key(la) for la in ours.compute_layers()) == sorted(
        key(la) for la in ref.compute_layers())
    assert ours.batch == ref.batch
    assert ours.input_shape == ref.input_shape
    assert not ours.lint()


ZOO = [("digits_cnn", {}, None), ("resnet20", {}, None),
       ("alexnet", {"width": 0.25, "num_classes": 10}, None),       # grouped convs, max-pools
       pytest.param("mobilenet_v2", {"width": 0.25, "num_classes": 10}, (3, 32, 32),
                    marks=pytest.mark.slow),                         # depthwise, ~5 s to export
       pytest.param("resnet18", {"width": 0.25, "num_classes": 10}, (3, 64, 64),
                    marks=pytest.mark.slow)]


@pytest.mark.parametrize(("name", "kw", "shape"), ZOO, ids=lambda v: v if isinstance(v, str)
                         else "")
def test_zoo_model_exported_with_torch_onnx_equals_extract(name: str, kw: dict,
                                                           shape: tuple[int, ...] | None) -> None:
    model = zoo.get(name, **kw)
    shape = shape or zoo.input_shape(name)
    ours = from_onnx(export(model, shape))
    ref = extract(model, shape, batch=2)
    assert_same_layers(ours, ref)
    assert len(ours) == len(ref)              # same ops after fusion, memory ops included
    # module paths survive the export (the exporter's scopes): layers have extract's names,
    # so the same overrides apply, and the same roles
    assert {la.name: key(la) for la in ours.compute_layers()} == {
        la.name: key(la) for la in ref.compute_layers()}
    assert {la.name: la.role for la in ours.compute_layers()} == {
        la.name: la.role for la in ref.compute_layers()}


class Mixed(nn.Module):
    """Depthwise conv, Conv1d-free sequence head: Linear on 3-D input (ONNX MatMul + Add),
    concat, average pool, activation matmul."""

    def __init__(self) -> None:
        super().__init__()
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 8, 1)
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.proj = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        y = torch.cat([self.pw(self.dw(x)), x], dim=1)          # (N, 16, 8, 8)
        y = self.pool(y).flatten(2).transpose(1, 2)              # (N, 16 tokens, 16)
        t = self.proj(y)
        return t @ t.transpose(1, 2)


def test_depthwise_concat_matmul_and_dynamic_batch() -> None:
    model = Mixed()
    proto = export(model, (3, 16, 16), dynamic_axes={"x": {0: "n"}}, input_names=["x"])
    ours = from_onnx(proto, batch=3)
    assert_same_layers(ours, extract(model, (3, 16, 16), batch=3))
    assert {la.groups for la in ours.compute_layers()} == {1, 8}
    assert [la.op for la in ours.compute_layers()].count("matmul") == 1
    assert from_onnx(proto).batch == 1       # a symbolic batch defaults to 1


@pytest.mark.slow            # the torch.export-based exporter takes ~6-14 s for a tiny model
def test_default_dynamo_exporter_and_attention() -> None:
    class Attn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.MultiheadAttention(16, 4, batch_first=True)
            self.fc = nn.Linear(16, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.attn(x, x, x)[0])

    model = Attn()
    ref = extract(model, (5, 16), batch=2)
    legacy = from_onnx(export(model, (5, 16)))
    # the exporter packs q/k/v into one in_proj GEMM; MACs per kind of op are the same
    for wl in (legacy, from_onnx(export(model, (5, 16), dynamo=True))):
        assert wl.total_macs == ref.total_macs
        for kind in ("linear", "matmul"):
            assert sum(la.macs for la in wl.compute_layers() if la.op == kind) == sum(
                la.macs for la in ref.compute_layers() if la.op == kind)


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
def test_recurrent_onnx_nodes_give_extracts_macs(cls: type[nn.Module]) -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = cls(8, 16, num_layers=2, bidirectional=True, batch_first=True)
            self.fc = nn.Linear(32, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.rnn(x)[0])

    model = Net()
    proto = export(model, (5, 8))
    assert cls.__name__ in {n.op_type for n in proto.graph.node}
    ours = from_onnx(proto)
    ref = extract(model, (5, 8), batch=2)
    assert ours.total_macs == ref.total_macs
    assert sorted(key(la) for la in ours.compute_layers()) == sorted(
        key(la) for la in ref.compute_layers())
    assert sum(la.weight_elems for la in ours) == sum(la.weight_elems for la in ref)
    # the exporter transposes the batch_first input to layout 0: its batch axis still counts
    # sequences, so the recurrent GEMMs keep their 5 steps whatever the batch
    hh = [la for la in ours.compute_layers() if la.name.endswith(".hh")]
    assert hh
    assert all(la.meta["steps"] == 5 and "steps_axis" not in la.meta for la in hh)


def test_qcdq_from_torch_fake_quantize_sets_8_bits() -> None:
    class Q(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(4 * 6 * 6, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.fake_quantize_per_tensor_affine(x, 0.1, 0, 0, 255)
            w = torch.fake_quantize_per_tensor_affine(self.conv.weight, 0.1, 0, -128, 127)
            return self.fc(torch.flatten(nn.functional.conv2d(x, w, self.conv.bias), 1))

    proto = export(Q(), (3, 8, 8))
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in proto.graph.node}
    wl = from_onnx(proto)
    conv, fc = wl.compute_layers()
    assert (conv.w_bits, conv.a_bits) == (8, 8)
    assert (fc.w_bits, fc.a_bits) == (16, 16)
    assert conv.meta["quantized"] is True


def _init(name: str, value: object, dtype: object = np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)  # type: ignore[arg-type]


def qonnx_model(op: str = "Relu") -> onnx.ModelProto:
    """x -> Quant(3 bits) -> Conv(W: Quant 4 bits) -> Relu -> Gemm(W: BipolarQuant) -> y, and a
    QCDQ int4 activation quantizer in front of the Gemm (QONNX domain for Quant nodes)."""
    q = "qonnx.custom_op.general"
    nodes = [
        helper.make_node("Quant", ["x", "one", "zero", "b3"], ["xq"], domain=q, name="qa",
                         signed=0, narrow=0, rounding_mode="ROUND"),
        helper.make_node("Quant", ["w1", "one", "zero", "b4"], ["w1q"], domain=q, name="qw1",
                         signed=1, narrow=0, rounding_mode="ROUND"),
        helper.make_node("Conv", ["xq", "w1q"], ["c1"], name="conv", pads=[1, 1, 1, 1],
                         kernel_shape=[3, 3]),
        helper.make_node(op, ["c1"], ["r1"], name="act"),
        helper.make_node("Flatten", ["r1"], ["f1"], name="flat"),
        helper.make_node("QuantizeLinear", ["f1", "s", "zp4"], ["f1q"], name="ql"),
        helper.make_node("DequantizeLinear", ["f1q", "s", "zp4"], ["f1d"], name="dql"),
        helper.make_node("BipolarQuant", ["w2", "one"], ["w2q"], domain=q, name="qw2"),
        helper.make_node("Gemm", ["f1d", "w2q"], ["y"], name="fc", transB=1),
    ]
    inits = [_init("one", 1.0), _init("zero", 0.0), _init("b3", 3.0), _init("b4", 4.0),
             _init("w1", np.zeros((4, 2, 3, 3))), _init("w2", np.zeros((5, 4 * 4 * 4))),
             _init("s", 0.5), _init("zp4", 0, np.int8)]
    inits[-1] = helper.make_tensor("zp4", TensorProto.INT4, [], [0])
    graph = helper.make_graph(
        nodes, "qonnx_tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                            [1, 2, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21),
                                                   helper.make_opsetid(q, 1)])


def test_qonnx_and_qcdq_nodes_set_bits() -> None:
    wl = from_onnx(qonnx_model(), default_bits=16)
    assert (wl["conv"].w_bits, wl["conv"].a_bits) == (4, 3)     # Quant on W / on the input
    assert (wl["fc"].w_bits, wl["fc"].a_bits) == (1, 4)          # BipolarQuant / int4 QCDQ
    assert wl["conv"].o_bits == 4                                # stored for its int4 reader
    assert wl["conv"].macs == 4 * 4 * 4 * 2 * 9
    assert wl["conv"].meta["fused"] == ["act", "ql"]
    wl8 = from_onnx(qonnx_model(), overrides={"fc": 8})
    assert (wl8["fc"].w_bits, wl8["fc"].a_bits) == (8, 8)


def test_unsupported_op_is_one_error_naming_node_op_and_allowed() -> None:
    with pytest.raises(ExtractError) as info:
        from_onnx(qonnx_model("Hardmax"))
    msg = str(info.value)
    assert "node 'act' (ONNX Hardmax)" in msg
    assert "Conv" in msg
    assert "Gemm" in msg
    assert "ignore_unsupported" in msg
    wl = from_onnx(qonnx_model("Hardmax"), ignore_unsupported=["Hardmax"])
    assert wl.ignored() == {"act": "Hardmax"}
    assert "ignored" in wl.summary()


def test_unreadable_files_name_the_field_and_what_is_allowed(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"model='.*missing.onnx': no such file"):
        from_onnx(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x80\x81not a protobuf at all\xff" * 10)
    with pytest.raises(ValueError, match=r"model='.*garbage.onnx' is not a readable ONNX file") \
            as info:
        from_onnx(garbage)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"model=dict is invalid"):
        from_onnx({})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch=0 is invalid"):
        from_onnx(qonnx_model(), batch=0)
    with pytest.raises(ValueError, match=r"batch=2 but .* fixed batch 1"):
        from_onnx(qonnx_model(), batch=2)
    proto = qonnx_model()
    proto.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "h"
    with pytest.raises(ValueError, match=r"input 'x' dimension 2 is symbolic \('h'\)"):
        from_onnx(proto)


def test_file_path_and_proto_agree_and_proto_is_untouched(tmp_path: Path) -> None:
    proto = export(zoo.get("digits_cnn"), (1, 8, 8), dynamic_axes={"x": {0: "n"}},
                   input_names=["x"])
    path = tmp_path / "digits.onnx"
    onnx.save(proto, str(path))
    before = proto.SerializeToString()
    assert from_onnx(path, batch=4, name="d") == from_onnx(proto, batch=4, name="d")
    assert proto.SerializeToString() == before


def test_missing_onnx_package_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"qdse\[onnx\]"):
        from_onnx("x.onnx")


@pytest.mark.slow            # the torch.export-based exporter: ~10 s for resnet20
def test_dynamo_export_keeps_extract_names_through_bn_folding() -> None:
    """The default exporter folds BN into the conv before it and gives the Conv node the BN's
    scope; the weight parameter's name still says which module it is."""
    model = zoo.get("resnet20")
    ours = from_onnx(export(model, (3, 32, 32), dynamo=True))
    ref = extract(model, (3, 32, 32), batch=2)
    assert {la.name: (key(la), la.role) for la in ours.compute_layers()} == {
        la.name: (key(la), la.role) for la in ref.compute_layers()}


class UpEinsum(nn.Module):
    """A transposed conv (U-Net up-sampling) and einsum attention scores: the ONNX
    ConvTranspose and Einsum nodes lower as extract lowers the module."""

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2)
        self.q = nn.Linear(10, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.up(x).flatten(2)                      # (N, 6, 10*10)
        q = self.q(y[:, :, :10])                       # (N, 6, 8)
        return torch.einsum("nid,njd->nij", q, q)


def test_conv_transpose_and_einsum_from_onnx_equal_extract() -> None:
    model = UpEinsum()
    ours = from_onnx(export(model, (4, 5, 5)))
    ref = extract(model, (4, 5, 5), batch=2)
    assert_same_layers(ours, ref)
    (up,) = [la for la in ours if la.meta.get("transposed")]
    assert up.meta["transposed"] == ref["up"].meta["transposed"]
    assert up.macs == 2 * 5 * 5 * (4 // 2) * 6 * 3 * 3        # N*H*W*C/g*K*R*S

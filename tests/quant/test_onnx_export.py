"""quant.onnx_export: QCDQ that onnxruntime runs with the fake-quant model's predictions, and
QONNX Quant nodes carrying each quantizer's bit width. Skipped without the optional packages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import quant
from quant import hooks
from quant.data import digits
from workloads import zoo

onnx = pytest.importorskip("onnx", reason="ONNX export needs the optional onnx package "
                                          "(pip install onnx onnxruntime)")
from quant.onnx_export import QONNX_DOMAIN, export_onnx  # noqa: E402


@pytest.fixture(scope="module")
def llsqf_digits() -> nn.Module:
    """digits_cnn under llsqf W4A4 (first and last layers too), 60 SGD steps on digits."""
    torch.manual_seed(0)
    q = quant.quantize(zoo.get("digits_cnn"), "llsqf", 4, 4).train()
    tr = digits("train")
    hooks.calibrate(q, tr.images[:64])
    opt = torch.optim.SGD(hooks.param_groups(q, 0.05, 5e-4), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        idx = torch.randint(0, len(tr), (32,), generator=g)
        loss = nn.functional.cross_entropy(q(tr.images[idx]), tr.targets[idx])
        opt.zero_grad()
        loss.backward()
        hooks.after_backward(q)
        opt.step()
    return q.eval()


def test_qcdq_runs_in_onnxruntime_with_the_fake_quant_predictions(llsqf_digits,
                                                                  tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime", reason="running QCDQ needs onnxruntime")
    path = export_onnx(llsqf_digits, tmp_path / "m.onnx", (1, 8, 8))
    model = onnx.load(str(path))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") == 4  # the image and three activations
    assert ops.count("DequantizeLinear") == 4 + 4  # + four weight tensors (int8 codes)
    test = digits("test")
    out = ort.InferenceSession(str(path)).run(None, {"input": test.images.numpy()})[0]
    with torch.no_grad():
        ref = llsqf_digits(test.images).numpy()
    agree = float((out.argmax(1) == ref.argmax(1)).mean())
    assert agree >= 0.995  # the 0.5-point rule of the integer export
    acc_onnx = float((out.argmax(1) == test.targets.numpy()).mean())
    acc_ref = float((ref.argmax(1) == test.targets.numpy()).mean())
    assert abs(acc_onnx - acc_ref) <= 0.005
    assert np.abs(out - ref).max() < 1e-3


def test_qonnx_quant_nodes_carry_the_bit_widths(llsqf_digits, tmp_path: Path) -> None:
    path = export_onnx(llsqf_digits, tmp_path / "m.qonnx.onnx", (1, 8, 8), fmt="qonnx")
    model = onnx.load(str(path))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    quants = [n for n in model.graph.node if n.op_type == "Quant"]
    assert len(quants) == 4 + 4  # four input/activation quantizers, four weight tensors
    assert all(n.domain == QONNX_DOMAIN for n in quants)
    assert {float(inits[n.input[3]]) for n in quants} == {4.0}  # W4A4
    signed = [next(a.i for a in n.attribute if a.name == "signed") for n in quants]
    assert signed.count(1) == 4 + 1  # the weights and the (signed) image quantizer
    # LLSQ Eq. 1 uses every code of k bits ([-2^(k-1), 2^(k-1) - 1] or [0, 2^k - 1]): no
    # QONNX narrow range, which would drop -2^(k-1) (signed) or 2^k - 1 (unsigned)
    assert [next(a.i for a in n.attribute if a.name == "narrow") for n in quants] == [0] * 8


def test_bad_format_path_and_graph_are_refused(llsqf_digits, tmp_path: Path,
                                               tiny_resnet: nn.Module) -> None:
    with pytest.raises(ValueError, match="fmt"):
        export_onnx(llsqf_digits, tmp_path / "m.onnx", (1, 8, 8), fmt="tflite")  # type: ignore[arg-type]
    (tmp_path / "afile").write_text("")
    with pytest.raises(ValueError, match="path: cannot write"):
        export_onnx(llsqf_digits, tmp_path / "afile" / "m.onnx", (1, 8, 8))
    q = quant.quantize(tiny_resnet, "llsqf", 4, 4).eval()
    hooks.calibrate(q, torch.randn(4, 3, 8, 8))
    with pytest.raises(ValueError, match="chain"):
        export_onnx(q, tmp_path / "r.onnx", (3, 8, 8))


# ---- Conv1d: ONNX Conv with a 1-D kernel_shape/pads/strides/dilations ---------------------------
def _quantized(m: nn.Module, x: torch.Tensor) -> nn.Module:
    """``m`` through llsqf W4A4 (first and last layers too), BN statistics set, calibrated."""
    for bn in m.modules():
        if isinstance(bn, nn.BatchNorm1d | nn.BatchNorm2d):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.data.uniform_(-1.5, 1.5)  # some negative folded scales
    q = quant.quantize(m.eval(), "llsqf", 4, 4)
    hooks.calibrate(q, x)
    return q.eval()


def _kws_1d() -> nn.Module:
    """A 1-D CNN (keyword spotting / ECG style) with every Conv1d/MaxPool1d attribute set."""
    torch.manual_seed(7)
    return nn.Sequential(
        nn.Conv1d(3, 8, 5, stride=2, padding=2), nn.BatchNorm1d(8), nn.ReLU(),
        nn.MaxPool1d(3, 2, 1, dilation=2, ceil_mode=True),
        nn.Conv1d(8, 8, 4, padding="same", dilation=1, groups=2), nn.BatchNorm1d(8), nn.ReLU(),
        nn.Conv1d(8, 6, 3, padding=2, dilation=2), nn.ReLU(), nn.Flatten(), nn.Linear(36, 4))


def _run_ort(path: Path, x: torch.Tensor, optimize: bool) -> np.ndarray:
    """onnxruntime on the graph as written (``optimize=False``) or with its default graph
    optimizations, which fuse DequantizeLinear -> Conv -> QuantizeLinear into its own int8
    kernels (QLinearConv: the float bias and scales rounded its way)."""
    ort = pytest.importorskip("onnxruntime", reason="running QCDQ needs onnxruntime")
    opts = ort.SessionOptions()
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), opts).run(None, {"input": x.numpy()})[0]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_conv1d_qcdq_runs_in_onnxruntime_like_the_fake_quant_model(tmp_path: Path) -> None:
    """onnxruntime's Conv/MaxPool on the 1-D attributes against torch's conv1d/max_pool1d in
    the fake-quant model. The graph as written computes what the fake-quant model computes
    (bit for bit, measured). With onnxruntime's default optimizations its fused int8 kernels
    round the bias and scales their own way: single codes of some activations move (28 % of
    the rows' logits change, by up to 2 % of the largest), the predictions stay (100 %)."""
    g = torch.Generator().manual_seed(9)
    x, xt = torch.randn(64, 3, 24, generator=g), torch.randn(256, 3, 24, generator=g)
    q = _quantized(_kws_1d(), x)
    path = export_onnx(q, tmp_path / "kws.onnx", (3, 24))
    graph = onnx.load(str(path)).graph
    convs = [n for n in graph.node if n.op_type == "Conv"]
    attrs = [{a.name: list(a.ints) or a.i for a in n.attribute} for n in convs]
    assert [a["kernel_shape"] for a in attrs] == [[5], [4], [3]]
    assert [a["pads"] for a in attrs] == [[2, 2], [1, 2], [2, 2]]  # 'same', even k: 1 + 2
    assert [a["strides"] for a in attrs] == [[2], [1], [1]]
    assert [a["dilations"] for a in attrs] == [[1], [1], [2]]
    assert [a["group"] for a in attrs] == [1, 2, 1]
    pool = next(n for n in graph.node if n.op_type == "MaxPool")
    assert {a.name: list(a.ints) or a.i for a in pool.attribute} == {
        "kernel_shape": [3], "strides": [2], "pads": [1, 1], "dilations": [2], "ceil_mode": 1}
    with torch.no_grad():
        ref = q(xt).numpy()
    top = float(np.abs(ref).max())
    np.testing.assert_allclose(_run_ort(path, xt, optimize=False), ref, rtol=0, atol=1e-5 * top)
    fused = _run_ort(path, xt, optimize=True)
    assert float((fused.argmax(1) == ref.argmax(1)).mean()) >= 0.99
    assert float((np.abs(fused - ref).max(1) <= 1e-5 * top).mean()) >= 0.5  # 0.72 measured
    assert np.abs(fused - ref).max() <= 0.1 * top  # 0.022 measured


def test_conv2d_groups_and_dilation_export_too(tmp_path: Path) -> None:
    """The same Conv attributes for a Conv2d (grouped, dilated: refused before)."""
    torch.manual_seed(8)
    m = nn.Sequential(nn.Conv2d(2, 4, 3, padding=2, dilation=2, groups=2), nn.BatchNorm2d(4),
                      nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    x = torch.randn(64, 2, 8, 8)
    q = _quantized(m, x)
    path = export_onnx(q, tmp_path / "g.onnx", (2, 8, 8))
    with torch.no_grad():
        ref = q(x).numpy()
    out = _run_ort(path, x, optimize=False)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5 * float(np.abs(ref).max()))


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_conv1d_qonnx_quant_nodes_carry_the_bit_widths(tmp_path: Path) -> None:
    x = torch.randn(16, 3, 24)
    q = _quantized(_kws_1d(), x)
    path = export_onnx(q, tmp_path / "kws.qonnx.onnx", (3, 24), fmt="qonnx")
    model = onnx.load(str(path))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    quants = [n for n in model.graph.node if n.op_type == "Quant"]
    assert len(quants) == 4 + 4  # input + three QuantActs, four weight tensors
    assert {float(inits[n.input[3]]) for n in quants} == {4.0}
    weights = [inits[n.input[0]] for n in quants if n.input[0] in inits]
    assert [w.shape for w in weights] == [(8, 3, 5), (8, 4, 4), (6, 8, 3), (4, 36)]

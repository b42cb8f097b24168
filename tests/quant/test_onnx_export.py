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

"""Brevitas models are extracted with their real bit widths (issue 11, item 3).

Oracles: the bit widths the Brevitas modules were built with; forward hooks for MACs; and
Brevitas's own QONNX and QCDQ exports read by workloads.from_onnx (an independent path from the
same model to the same bits)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from wlkit import hook_macs

from workloads import ExtractError, extract, protocol

qnn = pytest.importorskip("brevitas.nn", reason="optional extra qdse[brevitas] not installed")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


class Net(nn.Module):
    """8-bit input quantizer, convs at 4 and 2 weight bits, ReLUs at 3 and 4 bits, max-pool,
    a 6-bit linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = qnn.QuantIdentity(bit_width=8)
        self.conv1 = qnn.QuantConv2d(3, 8, 3, padding=1, weight_bit_width=4)
        self.relu1 = qnn.QuantReLU(bit_width=3)
        self.conv2 = qnn.QuantConv2d(8, 8, 3, padding=1, weight_bit_width=2)
        self.relu2 = qnn.QuantReLU(bit_width=4)
        self.pool = nn.MaxPool2d(2)
        self.fc = qnn.QuantLinear(8 * 4 * 4, 10, bias=True, weight_bit_width=6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.conv1(self.inp(x)))
        x = self.pool(self.relu2(self.conv2(x)))
        return self.fc(torch.flatten(x, 1))


EXPECTED = {"conv1": (4, 8, 3), "conv2": (2, 3, 4), "fc": (6, 4, 6)}   # w / a / o bits


def bits_of(wl: object) -> dict[str, tuple[int, int, int]]:
    return {la.name: (la.w_bits, la.a_bits, la.o_bits)
            for la in wl.compute_layers()}  # type: ignore[attr-defined]


def test_brevitas_layers_speak_the_bits_protocol() -> None:
    model = Net()
    assert protocol.is_quantized_layer(model.conv1)
    assert protocol.weight_bits(model.conv1) == 4
    assert protocol.act_bits(model.conv1) is None            # no input quantizer of its own
    assert protocol.is_quantized_activation(model.relu1)
    assert protocol.act_bits(model.relu1) == 3
    assert not protocol.is_quantized(model.pool)


def test_brevitas_model_is_extracted_at_its_real_bit_widths() -> None:
    model = Net()
    wl = extract(model, (3, 8, 8), batch=2, default_bits=16)
    assert bits_of(wl) == EXPECTED
    assert wl.total_macs == hook_macs(model, (3, 8, 8), batch=2)
    assert wl["conv1"].meta["fused"] == ["relu1"]
    assert all(la.meta.get("quantized") for la in wl.compute_layers())


def test_layer_input_and_output_quantizers() -> None:
    from brevitas.quant import Int8ActPerTensorFloat

    class Io(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = qnn.QuantConv2d(3, 4, 3, weight_bit_width=5,
                                        input_quant=Int8ActPerTensorFloat,
                                        output_quant=Int8ActPerTensorFloat)
            self.fc = qnn.QuantLinear(4 * 6 * 6, 2, bias=False, weight_bit_width=3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.flatten(self.conv(x), 1))

    wl = extract(Io(), (3, 8, 8), default_bits=16)
    assert (wl["conv"].w_bits, wl["conv"].a_bits, wl["conv"].o_bits) == (5, 8, 8)
    assert wl["fc"].a_bits == 8                    # the conv's output quantizer feeds it


def test_quantized_add_and_truncated_pool() -> None:
    """(QuantCat is in the adapter's table too; Brevitas 0.13.4's own QuantCat.forward fails,
    so it is not exercised here.)"""

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = qnn.QuantConv2d(4, 4, 3, padding=1, weight_bit_width=4)
            self.b = qnn.QuantConv2d(4, 4, 1, weight_bit_width=4)
            self.add = qnn.QuantEltwiseAdd()
            self.pool = qnn.TruncAvgPool2d(kernel_size=2, stride=2)
            self.relu = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.out = qnn.QuantConv2d(4, 2, 1, weight_bit_width=2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.add(self.a(x), self.b(x))
            return self.out(self.pool(self.relu(y)))

    model = Block()
    wl = extract(model, (4, 8, 8))
    assert (wl["add"].op, wl["pool"].op) == ("add", "pool")
    assert sorted(wl.predecessors("add")) == ["a", "b"]
    assert (wl["pool"].ho, wl["pool"].wo) == (4, 4)
    assert wl["out"].a_bits == 16        # average pooling leaves the 4-bit grid
    assert wl.total_macs == hook_macs(model, (4, 8, 8))


def test_brevitas_modules_qdse_does_not_lower_are_named() -> None:
    class Rnn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = qnn.QuantLSTM(8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.rnn(x)[0]

    with pytest.raises(ExtractError, match="rnn"):
        extract(Rnn(), (4, 8))


@pytest.mark.slow            # each Brevitas export runs torch.export: ~10 s
@pytest.mark.parametrize("exporter", ["export_qonnx", "export_onnx_qcdq"])
def test_brevitas_onnx_exports_give_the_same_bits(exporter: str, tmp_path: object) -> None:
    pytest.importorskip("onnx", reason="optional extra qdse[onnx] not installed")
    pytest.importorskip("onnxoptimizer", reason="Brevitas's ONNX export needs onnxoptimizer")
    import onnx
    from brevitas import export

    from workloads import from_onnx

    model = Net().eval()
    path = f"{tmp_path}/m.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        getattr(export, exporter)(model, torch.zeros(1, 3, 8, 8), export_path=path)
    wl = from_onnx(onnx.load(path))
    assert bits_of(wl) == EXPECTED
    assert wl.total_macs == extract(model, (3, 8, 8)).total_macs

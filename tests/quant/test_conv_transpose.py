"""Quantized transposed convs (decoders, U-Nets): QuantConvTranspose1d/2d.

Oracles: a transposed conv equals the forward conv on the zero-stuffed, (k-1-p)-padded input
with the kernel flipped and the weight in `forward_layout` (the identity that makes the layout
the forward conv's); a QuantConv2d holding the forward-layout weights (the same quantizer on
the same values); the float layer (no quantizers); the workload graph of the float model."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import quant
import workloads
from quant.modules import (
    QuantConv2d,
    QuantConvTranspose1d,
    QuantConvTranspose2d,
    forward_layout,
    transposed_layout,
)
from quant.recipe_registry import get_recipe

WEIGHT_RECIPES = [r for r in quant.recipes() if get_recipe(r).weight is not None]


def _zero_stuffed_conv(x: torch.Tensor, ct: nn.ConvTranspose2d) -> torch.Tensor:
    """ConvTranspose2d as a forward conv (stride 1 on the stride-dilated input)."""
    s, p, k = ct.stride[0], ct.padding[0], ct.kernel_size[0]
    n, c, h, w = x.shape
    up = x.new_zeros(n, c, (h - 1) * s + 1, (w - 1) * s + 1)
    up[:, :, ::s, ::s] = x
    up = F.pad(up, [k - 1 - p] * 4)
    weight = forward_layout(ct.weight, ct.groups).flip(-1, -2)
    return F.conv2d(up, weight, ct.bias, groups=ct.groups)


@pytest.mark.parametrize(("groups", "stride", "padding"), [(1, 1, 0), (2, 2, 1), (4, 2, 0)])
def test_forward_layout_is_the_weight_of_the_forward_conv(groups: int, stride: int,
                                                          padding: int) -> None:
    torch.manual_seed(0)
    ct = nn.ConvTranspose2d(8, 12, 3, stride=stride, padding=padding, groups=groups)
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(ct(x), _zero_stuffed_conv(x, ct))
    w = ct.weight.detach()
    assert torch.equal(transposed_layout(forward_layout(w, groups), groups), w)


@pytest.mark.parametrize("recipe", WEIGHT_RECIPES)
def test_weights_quantize_as_the_equivalent_conv(recipe: str) -> None:
    """Same quantizer, same values: the transposed layer's weights are the forward conv's
    quantized weights put back in the transposed layout (per-filter CReLU alphas included)."""
    torch.manual_seed(1)
    ct = nn.ConvTranspose2d(6, 8, 3, groups=2)
    conv = nn.Conv2d(6, 8, 3, groups=2)  # the same map on the zero-stuffed input
    with torch.no_grad():
        conv.weight.copy_(forward_layout(ct.weight, 2))
    spec, bits = get_recipe(recipe).weight, 2
    assert spec is not None
    torch.manual_seed(2)
    qt = QuantConvTranspose2d.from_float(ct, spec.build(bits))
    torch.manual_seed(2)
    qc = QuantConv2d.from_float(conv, spec.build(bits))
    torch.testing.assert_close(qt.quantized_weight(), transposed_layout(qc.quantized_weight(), 2))
    assert qt.weight_bits == bits


def test_per_filter_alpha_scales_output_channels() -> None:
    """CReLU's per-channel alphas follow the layer's OUTPUT channels (dim 1 of its weight)."""
    torch.manual_seed(3)
    ct = nn.ConvTranspose2d(4, 3, 3)
    with torch.no_grad():
        ct.weight[:, 0] *= 100.0  # output channel 0 only
    spec = get_recipe("crelu_binary").weight
    assert spec is not None
    q = QuantConvTranspose2d.from_float(ct, spec.build(1))
    wq = q.quantized_weight().detach()
    ratio = wq[:, 0].abs().mean() / wq[:, 1:].abs().mean()
    assert 50.0 < float(ratio) < 200.0  # per input channel it would stay near 1


def test_float_behaviour_without_quantizers() -> None:
    torch.manual_seed(4)
    ct = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, dilation=1, groups=2)
    q = QuantConvTranspose2d.from_float(ct)
    x = torch.randn(1, 4, 5, 5)
    torch.testing.assert_close(q(x), ct(x))
    torch.testing.assert_close(q(x, output_size=[10, 10]), ct(x, output_size=[10, 10]))
    ct1 = nn.ConvTranspose1d(4, 2, 5, stride=3, padding=2, output_padding=1)
    x1 = torch.randn(2, 4, 7)
    torch.testing.assert_close(QuantConvTranspose1d.from_float(ct1)(x1), ct1(x1))
    with pytest.raises(ValueError, match=r"conv must be an nn\.ConvTranspose2d"):
        QuantConvTranspose2d.from_float(nn.Conv2d(2, 2, 1))


class Decoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.act = nn.ReLU()
        self.up = nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1, groups=2)
        self.act2 = nn.ReLU()
        self.up1d = nn.ConvTranspose3d(1, 1, 1)  # still unquantized: named in the warning
        self.out = nn.Conv2d(8, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.out(self.act2(self.up(self.act(self.enc(x)))))
        return self.up1d(y.unsqueeze(1)).squeeze(1)


def test_quantize_swaps_transposed_convs_and_reports_the_rest() -> None:
    with pytest.warns(quant.UnquantizedLayersWarning, match="ConvTranspose3d"):
        q = quant.quantize(Decoder(), "lsq", 2, 2)
    assert isinstance(q.up, QuantConvTranspose2d)
    assert (q.up.weight_bits, q.up.act_bits) == (2, 2)
    assert "up" in q.quantize_report.quantized_layers
    assert q.quantize_report.unquantized_layers == (("up1d", "ConvTranspose3d"),)
    assert q(torch.randn(1, 3, 16, 16)).shape == (1, 1, 16, 16)


def test_workload_of_the_quantized_decoder_has_the_float_shapes_and_the_bits() -> None:
    model = Decoder()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", quant.UnquantizedLayersWarning)
        q = quant.quantize(model, "lsq", 2, 2)
    wq, wf = (workloads.extract(m, (3, 16, 16), ignore_unsupported=True) for m in (q, model))
    assert [(la.name, la.macs) for la in wq] == [(la.name, la.macs) for la in wf]
    assert (wq["up"].w_bits, wq["up"].a_bits) == (2, 2)

"""quantize() coverage: Conv1d layers are quantized like Conv2d, and every other module with
weights that a recipe cannot quantize (RNNs, 3-d convs, embeddings, ...) is named by one
UnquantizedLayersWarning and listed in the result's quantize_report."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import quant
import workloads
from quant import QuantConv1d, QuantConv2d, QuantLinear, UnquantizedLayersWarning, quantize
from quant.recipes import recipes

WEIGHT_RECIPES = [r for r in recipes() if quant.get_recipe(r).weight is not None]


class TCN(nn.Module):
    """A small temporal conv net: 3 dilated Conv1d + ReLU, global pool, linear head."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(2, width, 5, padding=2)
        self.bn1 = nn.BatchNorm1d(width)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv1d(width, width, 3, padding=2, dilation=2, bias=False)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv1d(width, width, 3, padding=1, groups=2)
        self.relu3 = nn.ReLU()
        self.fc = nn.Linear(width, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu1(self.bn1(self.conv1(x)))
        y = self.relu3(self.conv3(self.relu2(self.conv2(y))))
        return self.fc(y.mean(dim=2))


class AsConv2d(nn.Module):
    """The same weights as ``TCN`` held by Conv2d layers with a (1, k) kernel."""

    def __init__(self, tcn: TCN) -> None:
        super().__init__()
        for name in ("conv1", "conv2", "conv3"):
            c: nn.Conv1d = getattr(tcn, name)
            c2 = nn.Conv2d(c.in_channels, c.out_channels, (1, c.kernel_size[0]),
                           padding=(0, c.padding[0]), dilation=(1, c.dilation[0]),  # type: ignore[index]
                           groups=c.groups, bias=c.bias is not None)
            with torch.no_grad():
                c2.weight.copy_(c.weight[:, :, None, :])
                if c.bias is not None:
                    c2.bias.copy_(c.bias)  # type: ignore[union-attr]
            setattr(self, name, c2)
        self.relu1, self.relu2, self.relu3 = nn.ReLU(), nn.ReLU(), nn.ReLU()
        self.fc = tcn.fc


class Attn(nn.Module):
    """conv -> ReLU -> self-attention -> GRU -> linear (the kind of model that used to be
    reported as fully quantized)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv1d(2, 8, 3, padding=1)
        self.relu = nn.ReLU()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.norm = nn.LayerNorm(8)
        self.rnn = nn.GRU(8, 8, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.embed(x)).transpose(1, 2)
        y = self.norm(y + self.attn(y, y, y, need_weights=False)[0])
        return self.head(self.rnn(y)[0][:, -1])


def _unquantized_warnings(fn: object) -> tuple[object, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn()  # type: ignore[operator]
    return out, [w for w in caught if issubclass(w.category, UnquantizedLayersWarning)]


def test_conv1d_layers_are_quantized_with_the_expected_levels() -> None:
    torch.manual_seed(0)
    model = TCN()
    q = quantize(model, "sawb", w_bits=2, a_bits=2)
    for name in ("conv1", "conv2", "conv3"):
        assert isinstance(q.get_submodule(name), QuantConv1d), name
    assert q.conv1.weight_bits is None  # first layer: full precision by the recipe's default
    for layer in (q.conv2, q.conv3):
        assert layer.weight_bits == 2
        w = layer.quantized_weight().detach()
        levels = torch.unique(w)
        # SAWB "even" 2-bit grid (Eq. 6-7): {-a, -a/3, a/3, a}, 4 = 2^2 levels
        assert len(levels) == 4
        a = levels.max()
        torch.testing.assert_close(levels, torch.stack([-a, -a / 3, a / 3, a]))
    # LSQ Eq. 1: w_q = round(clip(w/s, -2, 1)) s at 2 bits, so <= 4 levels, integer codes
    ql = quantize(model, "lsq", w_bits=2, a_bits=2)
    layer = ql.conv2
    assert isinstance(layer, QuantConv1d)
    assert layer.weight_bits == 2
    assert layer.act_bits == 2
    codes = layer.quantized_weight().detach() / layer.weight_quantizer.scale()
    torch.testing.assert_close(codes, codes.round())
    assert set(codes.round().unique().tolist()) <= {-2.0, -1.0, 0.0, 1.0}
    assert len(codes.unique()) >= 3
    # the forward pass runs the quantized weight through conv1d with the layer's geometry
    x = torch.randn(3, 8, 11)
    expected = F.conv1d(layer.input_quantizer(x), layer.quantized_weight(), None,
                        padding=2, dilation=2)
    torch.testing.assert_close(layer(x), expected)
    assert quantize(model, "lsq").quantize_report.unquantized_layers == ()


@pytest.mark.parametrize("recipe", WEIGHT_RECIPES)
def test_conv1d_weights_quantize_exactly_like_conv2d_weights(recipe: str) -> None:
    """The methods' formulas never read the kernel's rank: a Conv1d (out, in, k) weight
    quantizes to the values of a Conv2d (out, in, 1, k) weight holding the same numbers."""
    torch.manual_seed(1)
    tcn = TCN()
    q1 = quantize(tcn, recipe, w_bits=2, a_bits=2)
    q2 = quantize(AsConv2d(tcn), recipe, w_bits=2, a_bits=2)
    for name in ("conv2", "conv3"):
        l1, l2 = q1.get_submodule(name), q2.get_submodule(name)
        assert isinstance(l1, QuantConv1d)
        assert isinstance(l2, QuantConv2d)
        assert (l1.weight_bits, l1.act_bits) == (l2.weight_bits, l2.act_bits)
        torch.testing.assert_close(l1.quantized_weight().detach(),
                                   l2.quantized_weight().detach()[:, :, 0, :])


def test_workloads_extract_sees_conv1d_bits() -> None:
    torch.manual_seed(0)
    q = quantize(TCN(), "pact_sawb", w_bits=2, a_bits=2)
    wl = workloads.extract(q, input_shape=(2, 16), default_bits=16)
    bits = {la.name: la.w_bits for la in wl.compute_layers()}
    assert bits["conv2"] == bits["conv3"] == 2
    assert bits["conv1"] == bits["fc"] == 16  # first/last: full precision (extract's default)


def test_rnn_left_full_precision_warns_once_and_is_reported() -> None:
    torch.manual_seed(0)
    model = Attn()
    q, caught = _unquantized_warnings(lambda: quantize(model, "lsq", w_bits=2, a_bits=2))
    assert len(caught) == 1
    msg = str(caught[0].message)
    assert "'rnn' (GRU)" in msg
    assert "attn" not in msg  # quantized whole (quant.attention), its out_proj included
    assert "norm" not in msg
    assert caught[0].filename == __file__  # points at the caller of quantize()
    rep = q.quantize_report  # type: ignore[attr-defined]
    assert rep.recipe == "lsq"
    assert rep.unquantized_layers == (("rnn", "GRU"),)
    assert rep.quantized_layers == ("embed", "attn", "head")
    assert isinstance(q.embed, QuantConv1d)
    assert isinstance(q.attn, quant.QuantMultiheadAttention)
    assert isinstance(q.head, QuantLinear)
    # out_proj is not swapped on its own: the attention module quantizes its weight
    assert type(q.attn.out_proj) is type(model.attn.out_proj)  # type: ignore[union-attr]
    q.eval()(torch.randn(2, 2, 5))  # still runs


def test_other_weight_modules_are_listed() -> None:
    class Custom(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.kernel = nn.Parameter(torch.randn(4, 4))  # used with F.linear
            self.scale = nn.Parameter(torch.ones(4))  # a vector: not a weight to quantize

    model = nn.Sequential()
    model.add_module("conv", nn.Conv2d(3, 4, 3))
    model.add_module("up", nn.ConvTranspose3d(4, 4, 2))
    model.add_module("lstm", nn.LSTM(4, 4))
    model.add_module("cell", nn.LSTMCell(4, 4))
    model.add_module("emb", nn.Embedding(10, 4))
    model.add_module("bn", nn.BatchNorm2d(4))
    model.add_module("gn", nn.GroupNorm(2, 4))
    model.add_module("act", nn.PReLU())
    model.add_module("pool", nn.MaxPool2d(2))
    model.add_module("mine", Custom())
    model.add_module("fc", nn.Linear(4, 2))
    with pytest.warns(UnquantizedLayersWarning, match=r"'up' \(ConvTranspose3d\)"):
        q = quantize(model, "dorefa", w_bits=2, a_bits=2)
    assert q.quantize_report.unquantized_layers == (
        ("up", "ConvTranspose3d"), ("lstm", "LSTM"), ("cell", "LSTMCell"),
        ("emb", "Embedding"), ("mine", "Custom: kernel"))
    assert isinstance(q.up, nn.ConvTranspose3d)
    assert not quant.modules.is_quant_module(q.up)


@pytest.mark.parametrize("recipe", recipes())
def test_conv2d_linear_model_emits_no_warning(recipe: str, tiny_resnet: nn.Module) -> None:
    q, caught = _unquantized_warnings(lambda: quantize(tiny_resnet, recipe))
    assert caught == []
    rep = q.quantize_report  # type: ignore[attr-defined]
    assert rep.unquantized_layers == ()  # BatchNorm, ReLU and pooling are not listed
    if recipe != "fp32":
        convs = [n for n, m in tiny_resnet.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
        assert rep.quantized_layers == tuple(convs)


def test_to_integer_refuses_a_transposed_conv_by_name() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.ConvTranspose2d(2, 2, 2, stride=2))
    q = quantize(model, "llsqf", w_bits=4, a_bits=4)
    with pytest.raises(ValueError, match=r"module '2' \(QuantConvTranspose2d\) has no integer"):
        quant.to_integer(q)(torch.randn(1, 1, 6, 6))


def test_a_conv_subclass_with_its_own_forward_is_kept_and_reported() -> None:
    """A weight-standardised conv (a Conv2d subclass with its own forward) swapped for a plain
    QuantConv2d would silently lose its standardisation: it stays, and the report names it. A
    subclass that only adds attributes is swapped as before."""

    class WSConv2d(nn.Conv2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            w = self.weight
            w = (w - w.mean(dim=(1, 2, 3), keepdim=True)) / (w.std(dim=(1, 2, 3), keepdim=True)
                                                            + 1e-5)
            return F.conv2d(x, w, self.bias, self.stride, self.padding)

    class Tagged(nn.Conv2d):
        tag = "plain"

    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), WSConv2d(4, 4, 3), nn.ReLU(),
                          Tagged(4, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1))
    q, caught = _unquantized_warnings(lambda: quantize(model, "lsq", w_bits=2, a_bits=2))
    assert [str(w.message).count("'2' (WSConv2d)") for w in caught] == [1]
    assert isinstance(q[2], WSConv2d)
    assert not isinstance(q[2], QuantConv2d)
    assert isinstance(q[4], QuantConv2d)
    x = torch.randn(1, 1, 12, 12)
    assert torch.equal(q[2](q[1](q[0](x))), model[2](q[1](q[0](x))))  # its forward is intact

"""Integer-only export of Conv1d layers (quant.integer, LLSQ Eq. 3-6): against the fake-quantized
float model, against the same layer written as a Conv2d with a 1 x k kernel (identical integers)
and against a scalar MAC loop that saturates after every addition."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import quant
from quant import hooks
from quant.integer import to_integer
from quant.methods.llsq import LLSQActQuantizer, LLSQWeightQuantizer
from quant.modules import QuantConv1d, QuantConv2d

# torch warns that padding="same" with an even kernel copies the input; that is the point here
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")

W_ALPHA, A_ALPHA = 0.05, 0.1  # LLSQ scales: codes x alpha (Eq. 1)
S_ACC = W_ALPHA * A_ALPHA  # the accumulator LSB alpha_a alpha_w of Eq. 6

# stride / padding (int, "same" with an even kernel = asymmetric, "valid") / dilation / groups
VARIANTS = [
    {},
    {"stride": 2},
    {"padding": 2},
    {"padding": "same"},
    {"padding": "valid"},
    {"dilation": 2, "padding": 1},
    {"padding": "same", "dilation": 3},
    {"groups": 2, "stride": 3, "padding": 1},
    {"groups": 4},  # depthwise
    {"bias": False, "padding": 3, "stride": 2, "dilation": 2},
]


def _ids(kw: dict[str, object]) -> str:
    return ",".join(f"{k}={v}" for k, v in kw.items()) or "plain"


def _conv1d(kw: dict[str, object], k: int = 4, seed: int = 0) -> QuantConv1d:
    """QuantConv1d(4 -> 8, kernel k) with fixed LLSQ scales and, if any, a bias on the Eq. 6
    grid (a whole number of accumulator LSBs), so the bias is not rounded by the export."""
    torch.manual_seed(seed)
    conv = QuantConv1d.from_float(nn.Conv1d(4, 8, k, **kw), LLSQWeightQuantizer(4, alpha=W_ALPHA),
                                  LLSQActQuantizer(4, alpha=A_ALPHA))
    if conv.bias is not None:
        with torch.no_grad():
            conv.bias.copy_(torch.round(conv.bias * 4 / S_ACC) * S_ACC)  # up to ~+-100 LSBs
    return conv.eval()


def _as_conv2d(c: QuantConv1d) -> QuantConv2d:
    """The same layer as a Conv2d with a 1 x k kernel: weights (N, C/g, 1, k), same quantizers."""
    pad = c.padding if isinstance(c.padding, str) else (0, c.padding[0])
    c2 = nn.Conv2d(c.in_channels, c.out_channels, (1, c.kernel_size[0]), stride=(1, c.stride[0]),
                   padding=pad, dilation=(1, c.dilation[0]), groups=c.groups,
                   bias=c.bias is not None)
    with torch.no_grad():
        c2.weight.copy_(c.weight.unsqueeze(2))
        if c.bias is not None:
            c2.bias.copy_(c.bias)
    return QuantConv2d.from_float(c2, LLSQWeightQuantizer(4, alpha=W_ALPHA),
                                  LLSQActQuantizer(4, alpha=A_ALPHA)).eval()


# ---- one layer against the fake-quantized float model --------------------------------------
@pytest.mark.parametrize("accumulate", ["sequential", "final"])
@pytest.mark.parametrize("kw", VARIANTS, ids=_ids)
def test_conv1d_matches_the_fake_quant_layer(kw: dict[str, object], accumulate: str) -> None:
    """Bias on its grid and no requantization: the integer output s_acc (q_b + sum q_a q_w)
    is the fake-quant conv (torch's conv1d on alpha q values) up to float32 rounding."""
    conv = _conv1d(kw)
    x = torch.rand(3, 4, 13) * 1.6
    with torch.no_grad():
        fq = conv(x)
    im = to_integer(conv, acc_bits=32, bias_bits=16, accumulate=accumulate)  # the bare layer
    out = im(x)
    assert out.shape == fq.shape
    torch.testing.assert_close(out, fq, rtol=0, atol=1e-5 * float(fq.abs().max()))
    assert im.overflow_count == 0
    assert im.bias_clipped == 0


# ---- Conv1d == Conv2d 1 x k, integer for integer ---------------------------------------------
@pytest.mark.parametrize("acc_bits", [8, 32])
@pytest.mark.parametrize("kw", VARIANTS, ids=_ids)
def test_conv1d_equals_the_conv2d_with_a_1xk_kernel(kw: dict[str, object], acc_bits: int) -> None:
    """Same codes, same bias, same im2col order and saturation points: identical outputs,
    overflow counts and accumulator ranges, also where an 8-bit accumulator saturates."""
    c1 = _conv1d(kw, seed=1)
    c2 = _as_conv2d(c1)
    x = torch.rand(2, 4, 15) * 1.6
    for mode in ("sequential", "final"):
        i1 = to_integer(c1, acc_bits=acc_bits, bias_bits=16, accumulate=mode)
        i2 = to_integer(c2, acc_bits=acc_bits, bias_bits=16, accumulate=mode)
        o1, o2 = i1(x), i2(x.unsqueeze(2))
        assert torch.equal(o1, o2.squeeze(2))
        assert (i1.overflow_count, i1.acc_bits_needed) == (i2.overflow_count, i2.acc_bits_needed)
        if acc_bits == 8:
            assert i1.overflow_count > 0  # the comparison covers saturated outputs


# ---- saturation against a scalar MAC loop -----------------------------------------------------
def _ref_conv1d(xq: list[list[list[int]]], wq: list[list[list[int]]], qb: list[int], *,
                stride: int, pads: tuple[int, int], dilation: int, groups: int, acc_bits: int,
                final: bool) -> tuple[list[list[list[int]]], int, int]:
    """A MAC unit: start from the bias, add q_a q_w in (channel, tap) order, saturate after
    every addition (or once at the end). Returns (outputs, saturated outputs, bits needed)."""
    lo, hi = -(2 ** (acc_bits - 1)), 2 ** (acc_bits - 1) - 1
    n_out, cg, k = len(wq), len(wq[0]), len(wq[0][0])
    length = len(xq[0][0])
    out_len = (length + pads[0] + pads[1] - dilation * (k - 1) - 1) // stride + 1
    outs, overflows, vmin, vmax = [], 0, 0, 0
    for img in xq:
        chans = []
        for n in range(n_out):
            first_c = n // (n_out // groups) * cg  # the input channels of n's group
            row = []
            for o in range(out_len):
                ideal = qb[n]
                hit = not final and not lo <= ideal <= hi  # the register is loaded with q_b
                acc = ideal if final else min(max(ideal, lo), hi)
                vmin, vmax = min(vmin, ideal), max(vmax, ideal)
                for c in range(cg):
                    for j in range(k):
                        i = o * stride - pads[0] + j * dilation
                        prod = (img[first_c + c][i] if 0 <= i < length else 0) * wq[n][c][j]
                        acc, ideal = acc + prod, ideal + prod
                        if not final:
                            vmin, vmax = min(vmin, ideal), max(vmax, ideal)
                            if acc < lo or acc > hi:
                                hit, acc = True, min(max(acc, lo), hi)
                if final:
                    vmin, vmax = min(vmin, ideal), max(vmax, ideal)
                    hit, acc = acc < lo or acc > hi, min(max(acc, lo), hi)
                overflows += hit
                row.append(acc)
            chans.append(row)
        outs.append(chans)
    bits = next(b for b in range(1, 64) if -(2 ** (b - 1)) <= vmin and vmax <= 2 ** (b - 1) - 1)
    return outs, overflows, bits


@pytest.mark.parametrize("mode", ["sequential", "final"])
@pytest.mark.parametrize("acc_bits", [6, 8, 32])
@pytest.mark.parametrize(("kw", "pads"), [
    ({"padding": 2, "stride": 2, "dilation": 2}, (2, 2)),
    ({"padding": "same", "groups": 2}, (1, 2)),  # kernel 4: torch pads 1 before, 2 after
], ids=["pad-stride-dil", "same-groups"])
def test_conv1d_saturation_matches_a_scalar_mac_loop(kw: dict[str, object],
                                                     pads: tuple[int, int], acc_bits: int,
                                                     mode: str) -> None:
    conv = _conv1d(kw, seed=2)
    x = torch.rand(2, 4, 9) * 1.6
    im = to_integer(conv, acc_bits=acc_bits, bias_bits=16, accumulate=mode)
    out = im(x)
    xq = conv.input_quantizer.codes(x).long().tolist()
    wq = conv.weight_quantizer.codes(conv.weight).long().tolist()
    qb = torch.round(conv.bias.detach().double() / S_ACC).long().tolist()
    ref, n_over, bits = _ref_conv1d(xq, wq, qb, stride=conv.stride[0], pads=pads,
                                    dilation=conv.dilation[0], groups=conv.groups,
                                    acc_bits=acc_bits, final=mode == "final")
    assert torch.equal(torch.round(out.double() / S_ACC).long(), torch.tensor(ref))
    assert im.overflow_count == n_over
    assert im.acc_bits_needed == bits
    assert (n_over > 0) == (acc_bits < 32)  # 6 and 8 bits saturate here, 32 never
    ok = to_integer(conv, acc_bits=bits, bias_bits=16, accumulate=mode)
    ok(x)
    assert ok.overflow_count == 0  # acc_bits_needed is enough


# ---- a 1-D CNN through the llsqf recipe --------------------------------------------------------
class _KWS(nn.Module):
    """A keyword-spotting-style 1-D CNN: conv-BN-ReLU blocks, max/avg pooling (modules and
    functionals), global average pooling, a linear classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = nn.Conv1d(3, 8, 5, padding=2)
        self.bn0 = nn.BatchNorm1d(8)
        self.relu0 = nn.ReLU()
        self.pool0 = nn.MaxPool1d(2)
        self.conv1 = nn.Conv1d(8, 8, 3, padding="same", dilation=2, groups=2, bias=False)
        self.bn1 = nn.BatchNorm1d(8)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.AvgPool1d(2)
        self.conv2 = nn.Conv1d(8, 12, 4, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.fc = nn.Linear(12, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool1(self.relu1(self.bn1(self.conv1(self.pool0(self.relu0(self.bn0(
            self.conv0(x))))))))
        y = nn.functional.max_pool1d(self.relu2(self.conv2(y)), 2)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool1d(y, 1), 1))


@pytest.fixture(scope="module")
def kws_llsqf() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(4)
    m = _KWS().eval()
    for bn in (m.bn0, m.bn1):
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.3, 0.3)
    m.bn0.weight.data[1] = -0.8  # a negative folded scale (Eq. 5): its sign goes into q
    q = quant.quantize(m, "llsqf", 4, 4)  # first and last layers too
    x = torch.randn(16, 3, 32)
    hooks.calibrate(q, x)
    q.eval()
    with torch.no_grad():
        fq = q(x)
    return q, x, fq


def test_kws_1d_cnn_runs_integer_only_and_matches_fake_quant(kws_llsqf) -> None:
    """With 8 accumulator fraction bits (the Eq. 6 bias rounding gone) and 24-bit multipliers
    the integer logits are the fake-quant ones up to float rounding (1e-4 of the largest logit,
    the Conv2d exact test's bound; 1e-6 measured). With the defaults (Eq. 6 bias on the
    accumulator LSB, 8-bit multipliers) within 10 % of it, the Conv2d residual test's bound
    (3.6 % measured: the bias rounding)."""
    q, x, fq = kws_llsqf
    assert sum(isinstance(m, QuantConv1d) for m in q.modules()) == 3
    im = to_integer(q, acc_bits=48, bias_bits=48, scale_bits=24, bias_frac_bits=8)
    out = im(x)
    assert torch.allclose(out, fq, rtol=0, atol=1e-4 * float(fq.abs().max()))
    coarse = to_integer(q, acc_bits=32, bias_bits=32)(x)
    assert torch.allclose(coarse, fq, rtol=0, atol=0.1 * float(fq.abs().max()))
    rows = im.describe()
    assert [r["layer"] for r in rows] == ["conv0", "conv1", "conv2", "fc"]
    assert [r["bn_folded"] for r in rows] == [True, True, False, False]
    assert im.bias_clipped == 0


def test_kws_accumulator_width_is_the_needed_one(kws_llsqf) -> None:
    """As for Conv2d: no overflow at acc_bits_needed, overflows 3 bits below, counted per
    layer."""
    q, x, fq = kws_llsqf
    need = to_integer(q, acc_bits=32, bias_bits=16)
    need(x)
    bits = need.acc_bits_needed
    ok = to_integer(q, acc_bits=bits, bias_bits=16)
    ok(x)
    assert ok.overflow_count == 0
    narrow = to_integer(q, acc_bits=bits - 3, bias_bits=16)
    out = narrow(x)
    assert narrow.overflow_count > 0
    assert sum(r["overflows"] for r in narrow.describe()) == narrow.overflow_count
    assert out.shape == fq.shape


# ---- what stays unsupported: the Conv2d messages ----------------------------------------------
def test_unsupported_conv1d_cases_get_the_conv2d_errors() -> None:
    def seq(*mods: nn.Module) -> nn.Module:
        return nn.Sequential(*mods).eval()

    circ = _conv1d({"padding": 1, "padding_mode": "circular"})
    with pytest.raises(ValueError, match=r"layer '0'.*padding_mode='circular'; only 'zeros'"):
        to_integer(seq(circ))
    bare = QuantConv1d.from_float(nn.Conv1d(4, 8, 3), None, LLSQActQuantizer(4, alpha=0.1))
    with pytest.raises(ValueError, match="weights are not quantized"):
        to_integer(seq(bare))
    with pytest.raises(ValueError, match=r"Conv1d.*no integer implementation"):
        to_integer(seq(_conv1d({}), nn.Conv1d(8, 2, 1)))(torch.rand(1, 4, 8))
    pooled = seq(_conv1d({}), nn.AdaptiveAvgPool1d(3))  # 10 outputs into 3 windows
    with pytest.raises(ValueError, match="AdaptiveAvgPool1d 3 on 10: windows of unequal size"):
        to_integer(pooled)(torch.rand(1, 4, 13))
    ceil = seq(_conv1d({}), nn.AvgPool1d(3, ceil_mode=True))  # 10 = 3 + 3 + 3 + a partial 1
    with pytest.raises(ValueError, match="ceil_mode=True on 10 has partial windows"):
        to_integer(ceil)(torch.rand(1, 4, 13))
    second = QuantConv1d.from_float(nn.Conv1d(8, 2, 1), LLSQWeightQuantizer(4, alpha=W_ALPHA))
    bn = nn.BatchNorm1d(8)  # stand-alone (the first BN is folded): one scale per channel
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
    with pytest.raises(ValueError, match="input scale is per-channel"):
        to_integer(seq(_conv1d({}), nn.BatchNorm1d(8), bn, second))(torch.rand(1, 4, 8))


def test_default_export_flow_on_a_1d_cnn(kws_llsqf) -> None:
    """LLSQ Section 4.2's flow on the 1-D CNN, as the Conv2d flow test on digits: the bare
    export clips 8-bit biases (10 measured) and is far from its fake-quant model; after
    finetune_for_integer (bias and scales projected onto their integer grids) to_integer()
    with its defaults clips none and differs from the fine-tuned twin only at rounding ties
    (half-even there, half-up here): mean |error| 0.0016 against 0.14 for the bare export."""
    from quant.export import finetune_for_integer

    q, x, fq = kws_llsqf
    bare = to_integer(q)
    bare_err = float((bare(x) - fq).abs().mean())
    assert bare.bias_clipped > 0
    ready = finetune_for_integer(q, x, torch.arange(len(x)) % 5, epochs=1)
    im = to_integer(ready)
    out = im(x)
    with torch.no_grad():
        twin = ready(x)
    assert im.bias_clipped == 0
    assert im.overflow_count == 0
    assert float((out.argmax(1) == twin.argmax(1)).double().mean()) >= 0.99  # 1.0 measured
    assert float((out - twin).abs().mean()) <= 0.05 * bare_err  # 0.011 measured

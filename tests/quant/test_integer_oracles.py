"""Integer-deployment roundings against closed forms (LLSQ Section 3.4-3.5, Eq. 5-6): the
stand-alone BN offset, the bias-clip count at the exact Eq. 6 bounds and the accumulator width
at the exact two's-complement bounds. Each was a surviving mutant of the mutation audit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from quant.integer import LayerStats, quantize_multiplier, to_integer
from quant.integer_ops import _add, _bn, _IntT
from quant.methods.llsq import LLSQActQuantizer, LLSQWeightQuantizer
from quant.modules import QuantLinear


def test_standalone_bn_offset_rounds_to_nearest() -> None:
    """A stand-alone BN (pre-activation nets) becomes (q + round(c / (zeta s)), zeta s) with
    zeta = gamma / sqrt(var + eps), c = beta - mu zeta (Eq. 5 applied at the current scale):
    against torch's own BN every output is within half a step |zeta s| / 2. By hand, channel
    0's offset is c / (zeta s) = (0.33 - 0.05 * 1.5) / (1.5 * 0.1) = 1.7 (round 2, floor 1)."""
    bn = nn.BatchNorm2d(2).double().eval()
    gamma, beta = torch.tensor([1.5, -0.7]), torch.tensor([0.33, -0.41])
    mu, var = torch.tensor([0.05, -0.02]), torch.tensor([1.0, 0.5])
    with torch.no_grad():
        bn.weight.copy_(gamma)
        bn.bias.copy_(beta)
        bn.running_mean.copy_(mu)
        bn.running_var.copy_(var)
    s = torch.tensor([0.1, 0.2], dtype=torch.float64)
    x = _IntT(torch.arange(-3, 3).repeat(1, 2, 1, 1).long(), s.view(1, 2, 1, 1))
    out = _bn("bn", bn, x, 32, {})
    zeta = gamma.double() / torch.sqrt(var.double() + bn.eps)
    assert float((beta[0] - mu[0] * zeta[0]) / (zeta[0] * s[0])) == pytest.approx(1.7, abs=1e-4)
    with torch.no_grad():
        real = bn(x.value())
    err = (out.value() - real).abs().amax((0, 2, 3))
    assert bool((err <= (zeta * s).abs() / 2 + 1e-12).all()), err


def test_bias_clip_count_at_the_exact_eq6_bounds() -> None:
    """Eq. 6 clamps q_b to [-2^(kb-1), 2^(kb-1) - 1]: at kb = 8 a bias of exactly 128 steps is
    clipped (counted), -128 and 127 are not."""
    lin = QuantLinear.from_float(nn.Linear(3, 3), LLSQWeightQuantizer(4, alpha=0.5),
                                 LLSQActQuantizer(4, alpha=0.25)).eval()
    s_acc = 0.25 * 0.5
    with torch.no_grad():
        lin.bias.copy_(torch.tensor([128.0, -128.0, 127.0]) * s_acc)
    im = to_integer(lin, acc_bits=32, bias_bits=8)
    im(torch.zeros(1, 3))
    assert im.bias_clipped == 1


@pytest.mark.parametrize("bits", [2, 8, 16])
def test_accumulator_width_at_the_exact_twos_complement_bounds(bits: int) -> None:
    """b bits hold exactly [-2^(b-1), 2^(b-1) - 1]; one more at either end needs b + 1."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    assert LayerStats(acc_min=lo, acc_max=hi).acc_bits_needed == bits
    assert LayerStats(acc_min=lo - 1, acc_max=0).acc_bits_needed == bits + 1
    assert LayerStats(acc_min=0, acc_max=hi + 1).acc_bits_needed == bits + 1


def test_residual_add_works_at_the_finer_scale() -> None:
    """A residual add rescales both operands to the finer of the two scales (quant.integer's
    docstring): at s = min(0.1, 0.25) the sum is exact for a and within half a fine step for b
    (b's codes times 2.5, rounded), where the coarser scale would err by up to 0.125."""
    a = _IntT(torch.arange(-4, 5).view(1, 9), torch.tensor(0.1, dtype=torch.float64))
    b = _IntT(torch.tensor([[3, -1, 1, 2, -3, 0, 1, -2, 5]]), torch.tensor(0.25,
                                                                         dtype=torch.float64))
    out = _add("add", a, b, 16, 32, {})
    assert float(out.s) == 0.1
    err = (out.value() - (a.value() + b.value())).abs()
    assert float(err.max()) <= 0.05 + 1e-12


def test_negative_multiplier_keeps_its_sign() -> None:
    """m ~ mantissa 2^-shift holds for negative m too (Eq. 6 with a signed scale, e.g. a
    negative BN gamma): by hand -0.75 = -192 2^-8 with 2^7 <= 192 < 2^8 at 8 bits."""
    mant, shift = quantize_multiplier(torch.tensor([-0.75, 0.75, 0.0]), 8)
    assert mant.tolist() == [-192, 192, 0]
    assert shift.tolist()[:2] == [8, 8]

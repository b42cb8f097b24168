"""Projections of a fake-quantized model onto what :func:`quant.integer.to_integer` computes:
biases on their Eq. 6 grid and requantization multipliers on their integer form, in place, for
the fine-tune with quantized bias and scales of LLSQ Section 4.2."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from quant.modules import QuantConv1d, QuantConv2d, QuantLinear

__all__ = ["project_to_integer_", "quantize_biases_", "quantize_scales_"]


def _project_(model: nn.Module, x: Tensor, *, biases: bool, scales: bool, bias_bits: int,
               bias_frac_bits: int, scale_bits: int, pow2_scales: bool) -> tuple[int, int]:
    """The projections of :func:`quantize_biases_` / :func:`quantize_scales_` with one compile.

    Returns (layers whose multipliers moved, biases clipped)."""
    from quant.integer import to_integer  # quant.integer re-exports this module's functions

    im = to_integer(model, acc_bits=62, bias_bits=bias_bits, scale_bits=scale_bits,
                    pow2_scales=pow2_scales, bias_frac_bits=bias_frac_bits, accumulate="final")
    im._warned_clip = True  # clipping is what this projection resolves
    im(x[:1])
    bare = isinstance(model, QuantConv1d | QuantConv2d | QuantLinear)
    root = nn.Sequential(model) if bare else model
    mods = dict(root.named_modules())  # same names as the traced copy
    lim = 2 ** (bias_bits - 1)
    moved = 0
    with torch.no_grad():
        for name, plan in im._plans.items():
            if plan.s_acc is None:
                continue  # layer not reached by the sample
            layer = mods[name]
            bn_name = im._folded_names.get(name)
            bn = mods[bn_name] if bn_name is not None else None
            rec = im._multipliers.get(name)
            ratio = torch.ones_like(plan.s_acc)
            if scales and bn is not None and rec is not None:
                real, quant = rec  # gamma, beta *= M_q / M: b^ and alpha_w^ scale with them
                ratio = torch.where(real > 0, quant / real.clamp_min(1e-300), ratio)
                bn.weight.mul_(ratio.to(bn.weight.dtype))
                bn.bias.mul_(ratio.to(bn.bias.dtype))
                moved += 1
            if not biases:
                continue
            s_acc, b = plan.s_acc * ratio, plan.bias_real * ratio
            grid = torch.round(b / s_acc).clamp(-lim, lim - 1) * s_acc  # Eq. 6
            if bn is not None:  # b^ = (b - mu) zeta + beta: correct beta
                bn.bias.add_((grid - b).to(bn.bias.dtype))
            elif layer.bias is not None:
                layer.bias.copy_(grid.to(layer.bias.dtype))
    return moved, im.bias_clipped


def quantize_biases_(
    model: nn.Module, x: Tensor, bias_bits: int = 8, bias_frac_bits: int = 0
) -> int:
    """Put the biases of the fake-quantized ``model`` on their Eq. 6 grid, in place.

    Each conv/linear bias (after BN folding, Eq. 5) is rounded to its accumulator grid
    ``alpha_a alpha_w^ / 2^f`` and clamped to ``bias_bits``; for a layer followed by a BN the
    correction goes into the BN shift beta, so the float model then computes what
    :func:`to_integer` computes (up to requantization rounding). Apply it between the steps of a
    short fine-tune with BN in eval mode to train with quantized biases (LLSQ Section 4.2).
    ``x`` is a sample input used to read the activation scales. Returns the number of clipped
    biases.
    """
    return _project_(model, x, biases=True, scales=False, bias_bits=bias_bits,
                     bias_frac_bits=bias_frac_bits, scale_bits=8, pow2_scales=False)[1]


def quantize_scales_(
    model: nn.Module, x: Tensor, scale_bits: int = 8, pow2_scales: bool = False
) -> int:
    """Put the requantization multipliers of the fake-quantized ``model`` on their integer
    grid (a ``scale_bits`` mantissa and a shift, or a pure shift), in place.

    For a conv/linear with a folded BN whose output is requantized (directly or through ReLU,
    pooling, reshapes), the multiplier ``M = alpha_a alpha_w^ / alpha_o`` (Eq. 6) becomes
    ``M_q = m 2^-shift`` in :func:`to_integer`. Scaling that BN's gamma and beta by
    ``M_q / M`` per channel makes the float model compute what the integer model computes
    (the channel's pre-activation times ``M_q / M``, Eq. 5 with the quantized scaling factor).
    Layers without a folded BN, or requantized after a residual add, keep their multipliers.
    ``x`` is a sample input. Returns the number of layers whose multipliers it put on the grid.
    """
    return _project_(model, x, biases=False, scales=True, bias_bits=62, bias_frac_bits=0,
                     scale_bits=scale_bits, pow2_scales=pow2_scales)[0]


def project_to_integer_(
    model: nn.Module, x: Tensor, *, bias_bits: int = 8, scale_bits: int = 8,
    pow2_scales: bool = False, bias_frac_bits: int = 0,
) -> int:
    """:func:`quantize_scales_` then :func:`quantize_biases_` (in place, one compile): the float
    model then computes what ``to_integer(model, bias_bits=..., scale_bits=...,
    pow2_scales=...)`` computes, up to rounding ties. Apply it after every optimizer step of a
    short fine-tune with BN in eval mode (LLSQ Section 4.2: bias and scaling factors quantized
    to 8 bits, then fine-tuned; :func:`quant.export.finetune_for_integer`). Returns the number
    of biases that did not fit ``bias_bits`` before this projection (now clamped).
    """
    return _project_(model, x, biases=True, scales=True, bias_bits=bias_bits,
                     bias_frac_bits=bias_frac_bits, scale_bits=scale_bits,
                     pow2_scales=pow2_scales)[1]

"""qdse.quant: quantizers of five papers, quantized layers, recipes and training hooks.

Data flow: ``nn.Module --quantize(model, recipe)--> nn.Module`` whose QuantConv1d/QuantConv2d/
QuantConvTranspose1d/QuantConvTranspose2d/QuantLinear/QuantAct layers carry ``weight_bits``/
``act_bits`` for ``workloads.extract``; other modules with weights stay full precision, named by an
``UnquantizedLayersWarning`` and in the result's ``quantize_report``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quant import hooks
from quant.attention import QuantMultiheadAttention
from quant.coverage import QuantizeReport, UnquantizedLayersWarning
from quant.hooks import (
    after_backward,
    calibrate,
    on_epoch_start,
    param_groups,
    regularization_loss,
)
from quant.methods.base import Quantizer
from quant.methods.sawb import fit_sawb_coefficients, sawb_coefficients
from quant.modules import (
    QuantAct,
    QuantConv1d,
    QuantConv2d,
    QuantConvTranspose1d,
    QuantConvTranspose2d,
    QuantLinear,
)
from quant.recipes import Recipe, get_recipe, quantize, recipes

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "QuantAct",
    "QuantConv1d",
    "QuantConv2d",
    "QuantConvTranspose1d",
    "QuantConvTranspose2d",
    "QuantLinear",
    "QuantMultiheadAttention",
    "QuantizeReport",
    "Quantizer",
    "Recipe",
    "UnquantizedLayersWarning",
    "after_backward",
    "calibrate",
    "fit_sawb_coefficients",
    "get_recipe",
    "hooks",
    "on_epoch_start",
    "param_groups",
    "quantize",
    "recipes",
    "regularization_loss",
    "sawb_coefficients",
    "to_integer",
]


def to_integer(model: nn.Module, acc_bits: int = 16, **kwargs: Any) -> nn.Module:
    """Integer-only inference module (BN folded, bias and scales quantized, saturating
    ``acc_bits`` accumulator); see :func:`quant.integer.to_integer` (imported lazily). Compile
    the output of :func:`quant.export.finetune_for_integer` (LLSQ Section 4.2) so the default
    8-bit bias and scales cost no accuracy."""
    from quant.integer import to_integer as _to_integer

    return _to_integer(model, acc_bits=acc_bits, **kwargs)

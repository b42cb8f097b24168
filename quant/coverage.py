"""What :func:`quant.quantize` quantized and which weight-carrying modules it left alone.

Recipes swap ``nn.Conv1d``/``Conv2d``/``ConvTranspose1d``/``ConvTranspose2d``/``Linear`` layers,
``nn.MultiheadAttention`` (:mod:`quant.attention`) and ReLU/ReLU6 modules only. Any other module
that holds weights (``nn.LSTM``/``GRU``/``RNN`` and their cells; 3-d and other convs; a
MultiheadAttention subclass with its own forward; ``nn.Bilinear``; embeddings; a custom module with
a matrix/kernel Parameter of its own) keeps full-precision weights, and its inputs are not quantized
either. :func:`quant.quantize` records them in a :class:`QuantizeReport` on the result
(``model.quantize_report``) and emits one :class:`UnquantizedLayersWarning` naming them, so nobody
reads a "2-bit model" whose attention or recurrent weights are 32-bit.

Modules without weights to quantize are never listed: activations, pooling, dropout, and
normalisation layers (BatchNorm/LayerNorm/GroupNorm/InstanceNorm: fake-quantized training keeps
BN in float, and :func:`quant.to_integer` folds BN into the preceding layer), nor PReLU slopes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from torch import nn

from quant.methods.base import Quantizer
from quant.modules import is_quant_module

__all__ = ["QuantizeReport", "UnquantizedLayersWarning", "find_unquantized", "warn_unquantized"]

QUANTIZABLE = ("nn.Conv1d/Conv2d/ConvTranspose1d/ConvTranspose2d/Linear/MultiheadAttention layers "
               "and nn.ReLU/ReLU6 activations")
"""What a recipe can quantize, in the words the warning uses."""

_WEIGHT_MODULES = (
    nn.modules.conv._ConvNd,  # ConvTranspose1d/2d/3d, Conv3d and anything left unswapped
    nn.Linear,
    nn.Bilinear,
    nn.MultiheadAttention,
    nn.RNNBase,  # RNN, LSTM, GRU
    nn.RNNCellBase,  # RNNCell, LSTMCell, GRUCell
    nn.Embedding,
    nn.EmbeddingBag,
)
_NO_WEIGHTS_TO_QUANTIZE = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*, InstanceNorm*
    nn.LayerNorm,
    nn.GroupNorm,
    nn.PReLU,
)


class UnquantizedLayersWarning(UserWarning):
    """:func:`quant.quantize` left modules that carry weights at full precision."""


@dataclass(frozen=True, slots=True)
class QuantizeReport:
    """Coverage of one :func:`quant.quantize` call, stored as ``result.quantize_report``.

    Attributes:
        recipe: the recipe name.
        quantized_layers: qualified names of the conv/linear layers swapped for Quant* layers
            (a layer the recipe keeps at full precision on purpose, e.g. the first/last layer
            of most recipes or ``w_bits=32``, is swapped too and reports ``weight_bits`` None).
        quantized_activations: names of the ReLU/ReLU6 modules swapped for ``QuantAct``.
        unquantized_layers: ``(name, type name)`` of every module with weights that the recipe
            cannot quantize (weights and inputs stay full precision); empty for ``fp32``, which
            quantizes nothing by definition.
        first_layers, last_layers: the layers that took the recipe's first/last precision
            (:func:`quant.ends.end_layers`).
        ends_found_by: ``"graph"`` (torch.fx dataflow) or ``"module order: <why>"`` when the
            model could not be traced.
    """

    recipe: str
    quantized_layers: tuple[str, ...]
    quantized_activations: tuple[str, ...]
    unquantized_layers: tuple[tuple[str, str], ...]
    first_layers: tuple[str, ...] = ()
    last_layers: tuple[str, ...] = ()
    ends_found_by: str = "graph"


def find_unquantized(model: nn.Module) -> list[tuple[str, str]]:
    """``(name, type)`` of the modules of ``model`` that hold weights but are not Quant* layers.

    A listed weight layer's submodules are not listed again (``nn.MultiheadAttention`` appears
    once, not also as its ``out_proj``); Quant* layers and quantizers are skipped with their
    children. Any other module is listed when it owns a Parameter of two or more dimensions
    (a matrix or kernel used functionally), as ``"Type: param names"``, and its children are
    still examined; the root module appears as ``"<model>"``."""
    out: list[tuple[str, str]] = []
    skip: list[str] = []  # prefixes whose subtree is already accounted for
    for name, m in model.named_modules():
        if any(s == "" or name.startswith(f"{s}.") for s in skip):
            continue
        if is_quant_module(m) or isinstance(m, Quantizer):
            skip.append(name)
        elif isinstance(m, _WEIGHT_MODULES):
            out.append((name or "<model>", type(m).__name__))
            skip.append(name)
        elif not isinstance(m, _NO_WEIGHTS_TO_QUANTIZE):
            own = [p for p, t in m.named_parameters(recurse=False) if t.dim() >= 2]
            if own:
                out.append((name or "<model>", f"{type(m).__name__}: {', '.join(own)}"))
    return out


def warn_unquantized(report: QuantizeReport, *, stacklevel: int = 3) -> None:
    """Emit one :class:`UnquantizedLayersWarning` for ``report`` if it lists any module."""
    left = report.unquantized_layers
    if not left:
        return
    names = ", ".join(f"{n!r} ({t})" for n, t in left)
    warnings.warn(
        f"quant.quantize(recipe={report.recipe!r}) left {len(left)} module(s) with weights at "
        f"FULL PRECISION (weights and inputs): {names}. Recipes quantize only {QUANTIZABLE}; "
        f"this call quantized {len(report.quantized_layers)} conv/linear/attention layer(s) and "
        f"{len(report.quantized_activations)} activation(s). The lists are in the result's "
        "`quantize_report`.",
        UnquantizedLayersWarning,
        stacklevel=stacklevel,
    )

"""Brevitas quantized layers speak the bits protocol through this adapter (optional extra
``qdse[brevitas]``).

Brevitas (Xilinx's QAT library) keeps bit widths in quantizer proxies instead of ``weight_bits`` /
``act_bits`` attributes: ``module.weight_quant``, ``module.input_quant``, ``module.output_quant``
and, on activations, ``module.act_quant``; each has ``is_quant_enabled`` and ``bit_width()`` (a
tensor, possibly learned: rounded up to an integer here). `workloads.protocol` asks this module
for any module defined in the ``brevitas`` package, so `extract` sees real bit widths:

=================================  =========================================================
Brevitas module                    bits protocol
=================================  =========================================================
QuantConv1d/2d, QuantLinear        ``weight_bits`` = weight_quant; ``act_bits`` (its INPUT) =
                                   input_quant if enabled; `output_bits` = output_quant
QuantReLU, QuantIdentity,          weightless quantizer: ``act_bits`` (its OUTPUT) = act_quant
QuantHardTanh, QuantSigmoid, ...   (or output_quant when act_quant is off)
QuantEltwiseAdd, QuantCat,         ``add`` / ``concat`` / ``pool`` ops whose output quantizer
TruncAvgPool2d,                    sets the bits they write
TruncAdaptiveAvgPool2d
=================================  =========================================================

Any other Brevitas module (QuantMultiheadAttention, QuantLSTM, QuantConvTranspose2d, ...) is not
lowered: extraction raises `ExtractError` naming it. This module never imports brevitas; it reads
the proxies of modules that already exist.
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

__all__ = ["bits", "is_brevitas", "kind", "knows"]

_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Linear)
_KINDS = {"QuantEltwiseAdd": "add", "QuantCat": "concat", "TruncAvgPool2d": "pool",
          "TruncAdaptiveAvgPool2d": "pool"}
_ACT_BASES = {"QuantNonLinearActLayer"}


def is_brevitas(module: nn.Module) -> bool:
    """A module defined in the ``brevitas`` package."""
    return type(module).__module__.split(".")[0] == "brevitas"


def knows(module: nn.Module) -> bool:
    """A Brevitas module this adapter lowers (see the module table)."""
    if not is_brevitas(module):
        return False
    if isinstance(module, _LAYERS) and hasattr(module, "weight_quant"):
        return True
    names = {c.__name__ for c in type(module).__mro__}
    return bool(names & _ACT_BASES) or type(module).__name__ in _KINDS


def kind(module: nn.Module) -> str | None:
    """The op kind of a weightless Brevitas module that is not element-wise, else None."""
    return _KINDS.get(type(module).__name__) if knows(module) else None


def _proxy_bits(module: nn.Module, attr: str) -> int | None:
    proxy: Any = getattr(module, attr, None)
    if proxy is None or not getattr(proxy, "is_quant_enabled", False):
        return None
    try:
        value = float(proxy.bit_width())
    except Exception:        # a proxy that needs a forward pass first: the bits are not known
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    return math.ceil(value - 1e-6)


def bits(module: nn.Module) -> dict[str, int | None]:
    """``{"weight_bits", "act_bits", "output_bits"}`` of a module `knows`, in the protocol's
    meaning (``act_bits``: the input of a layer, the output of a weightless quantizer)."""
    if isinstance(module, _LAYERS):
        return {"weight_bits": _proxy_bits(module, "weight_quant"),
                "act_bits": _proxy_bits(module, "input_quant"),
                "output_bits": _proxy_bits(module, "output_quant")}
    out = _proxy_bits(module, "act_quant")
    if out is None:
        out = _proxy_bits(module, "output_quant")
    return {"weight_bits": None, "act_bits": out, "output_bits": None}

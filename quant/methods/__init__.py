"""One module per paper method; every quantizer subclasses :class:`quant.methods.base.Quantizer`.

Core methods are re-exported here; LLSQ, QN and CReLU live in ``quant.methods.llsq``,
``quant.methods.qnets`` and ``quant.methods.crelu``.
"""

from __future__ import annotations

from quant.methods.base import Quantizer, grad_scale, round_ste, sign_ste, uniform_quantize_unit
from quant.methods.dorefa import DoReFaActQuantizer, DoReFaWeightQuantizer
from quant.methods.lsq import LSQActQuantizer, LSQQuantizer, LSQWeightQuantizer
from quant.methods.pact import PACT
from quant.methods.sawb import SAWB
from quant.methods.wrpn import WRPNActQuantizer, WRPNWeightQuantizer

__all__ = [
    "PACT",
    "SAWB",
    "DoReFaActQuantizer",
    "DoReFaWeightQuantizer",
    "LSQActQuantizer",
    "LSQQuantizer",
    "LSQWeightQuantizer",
    "Quantizer",
    "WRPNActQuantizer",
    "WRPNWeightQuantizer",
    "grad_scale",
    "round_ste",
    "sign_ste",
    "uniform_quantize_unit",
]

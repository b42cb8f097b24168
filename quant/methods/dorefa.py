"""DoReFa-Net quantizers (Zhou et al., 2016), as the PACT and LSQ papers compare against.

Weights, k > 1 (notes 2.7, as in Distiller's DorefaQuantizer)::

    w_q = 2 * quantize_k( tanh(w) / (2 max|tanh(w)|) + 1/2 ) - 1

k = 1: w_q = sign(w) * E|w| with sign(0) = +1 (notes 2.7). Activations: clip to [0, 1], then
quantize_k. quantize_k(x) = round((2^k - 1) x) / (2^k - 1) with an STE;
gradients through tanh and the max are exact (autograd), as in the DoReFa paper.
"""

from __future__ import annotations

import torch
from torch import Tensor

from quant.methods.base import Quantizer, sign_ste, uniform_quantize_unit

__all__ = ["DoReFaActQuantizer", "DoReFaWeightQuantizer"]


class DoReFaWeightQuantizer(Quantizer):
    """DoReFa weight quantizer: levels {2i/(2^k-1) - 1}, or +-E|w| at k = 1."""

    max_bits = 16

    def __init__(self, bits: int) -> None:
        super().__init__(bits, signed=True)

    def forward(self, w: Tensor) -> Tensor:
        if self.bits == 1:
            return sign_ste(w) * w.detach().abs().mean()
        t = torch.tanh(w)
        x = t / (2 * t.abs().max().clamp_min(1e-12)) + 0.5
        return 2 * uniform_quantize_unit(x, self.bits) - 1


class DoReFaActQuantizer(Quantizer):
    """DoReFa activation quantizer: clip(x, 0, 1) then k-bit uniform (replaces a ReLU)."""

    max_bits = 16

    def __init__(self, bits: int) -> None:
        super().__init__(bits, signed=False)

    qmin = 0

    @property
    def qmax(self) -> int:
        return 2**self.bits - 1

    def scale(self) -> Tensor:
        """The fixed step 1 / (2^k - 1)."""
        return torch.tensor(1.0 / self.qmax)

    def codes(self, x: Tensor) -> Tensor:
        return torch.round(torch.clamp(x, 0.0, 1.0) * self.qmax)

    def forward(self, x: Tensor) -> Tensor:
        return uniform_quantize_unit(torch.clamp(x, 0.0, 1.0), self.bits)

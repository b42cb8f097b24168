"""WRPN quantizers (Mishra et al., "WRPN: Wide Reduced-Precision Networks", ICLR 2018).

Weights: clamp to [-1, 1], then symmetric linear quantization with one sign bit and k - 1
magnitude bits: w_q = round((2^(k-1) - 1) clip(w, -1, 1)) / (2^(k-1) - 1), so k = 2 is the
ternary set {-1, 0, 1}. Activations: clip to [0, 1], then k bits:
a_q = round((2^k - 1) clip(a, 0, 1)) / (2^k - 1). STE through round, zero gradient where the
clamp saturates. The paper's widening (2x channels) lives in the model definition
(``workloads.zoo.get(name, width=2)``), not here (notes 2.7). The paper's 1-bit special case
(binary weights) is not implemented: k >= 2 for weights.
"""

from __future__ import annotations

import torch
from torch import Tensor

from quant.methods.base import Quantizer, round_ste, uniform_quantize_unit

__all__ = ["WRPNActQuantizer", "WRPNWeightQuantizer"]


class WRPNWeightQuantizer(Quantizer):
    """WRPN weight quantizer (k >= 2 bits, 2^k - 1 levels in [-1, 1] including 0)."""

    min_bits = 2
    max_bits = 16

    def __init__(self, bits: int) -> None:
        super().__init__(bits, signed=True)

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1

    @property
    def qmin(self) -> int:
        return -self.qmax

    def scale(self) -> Tensor:
        """The fixed step 1 / (2^(k-1) - 1)."""
        return torch.tensor(1.0 / self.qmax)

    def codes(self, w: Tensor) -> Tensor:
        return torch.round(torch.clamp(w, -1.0, 1.0) * self.qmax)

    def forward(self, w: Tensor) -> Tensor:
        n = float(2 ** (self.bits - 1) - 1)
        return round_ste(torch.clamp(w, -1.0, 1.0) * n) / n


class WRPNActQuantizer(Quantizer):
    """WRPN activation quantizer: clip(a, 0, 1), k-bit uniform (replaces a ReLU)."""

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

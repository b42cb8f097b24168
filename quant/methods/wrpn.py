"""WRPN quantizers (Mishra et al., "WRPN: Wide Reduced-Precision Networks", ICLR 2018).

Weights: clamp to [-1, 1], then symmetric linear quantization with one sign bit and k - 1
magnitude bits: w_q = round((2^(k-1) - 1) clip(w, -1, 1)) / (2^(k-1) - 1), so k = 2 is the
ternary set {-1, 0, 1}. Activations: clip to [0, 1], then k bits:
a_q = round((2^k - 1) clip(a, 0, 1)) / (2^k - 1). STE through round, zero gradient where the
clamp saturates. The paper's widening (2x channels) is part of the recipe's procedure
(``procedure.width``, quant/procedure.py), which builds ``workloads.zoo.get(name, width=2)``.
The paper's 1-bit special case (binary weights) is not implemented: k >= 2 for weights.

Weight scale. WRPN's grid has no scale factor ("no parameter needed", PACT-SAWB Table 1): it
only represents weights that use the clip range [-1, 1]. Weights of a PyTorch network do not:
the default init gives |w| <= 1/sqrt(fan_in) (0.03-0.06 in digits_cnn) and trained weights stay
that small, so every weight rounds to 0 (the first threshold is 1 / (2 (2^(k-1) - 1)): 0.5 at 2
bits, 0.07 at 4 bits), the layer outputs a constant, no gradient reaches the weights and the
network sits at chance (measured on digits: 10 % at W2A2 fine-tuned from FP, and 10 % at W2A2
and W4A4 trained from scratch). :meth:`WRPNWeightQuantizer.weight_gain` is the factor that puts
a layer's latent weights onto the grid's scale: 1 / alpha*, alpha* the MSE-optimal outer level
of WRPN's grid for those weights (SAWB Eq. 6 on the ``"with_zero"`` grid, which is WRPN's grid
{-n..n}/n). ``quant.quantize(model, "wrpn")`` multiplies the latent weights of every WRPN layer
by it once (the recipe's ``rescale_weights``). With a BatchNorm after each quantized conv (as in
the networks WRPN trains) that gain changes nothing in full precision: BN divides it out. The
quantizer itself stays the paper's fixed, scale-free grid. The paper does not say how its
weights come to use [-1, 1]; the MSE-optimal gain is our choice (the literal alternative,
max|w| -> 1, also trains but measured 96.7 % against 98.3 % at W2A2 from scratch, one seed).

Training. WRPN trains its wide low-precision networks from scratch, first and last layers in
full precision (the common practice PACT-SAWB Section 6 follows, citing Zhou et al. 2016 and
Mishra et al. 2018b); ``quant.train.trained_digits_result`` and ``quant.table`` do the same for
``wrpn`` (its procedure, ``quant.procedure.PROCEDURES["wrpn"]``: width 2, from scratch), with
the rescale applied to the random init.
"""

from __future__ import annotations

import torch
from torch import Tensor

from quant.methods.base import Quantizer, round_ste
from quant.methods.dorefa import DoReFaActQuantizer
from quant.methods.sawb import optimal_scale

__all__ = ["GAIN_SAMPLE", "WRPNActQuantizer", "WRPNWeightQuantizer"]

GAIN_SAMPLE = 2**15
"""Layers with more than 4x this many weights fit :meth:`WRPNWeightQuantizer.weight_gain` on
an evenly strided sample of about this many (AlexNet's 2x-wide fc6 has 151 M weights; the scan
costs about 5 s per million on one core)."""


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

    def weight_gain(self, w: Tensor) -> float:
        """The factor g that fits latent weights ``w`` to the fixed grid: g = 1 / alpha*, where
        alpha* = argmin_a ||w - a q(w / a)||^2 over grids {-n..n} a / n (n = 2^(k-1) - 1).

        After ``w <- g w`` the grid's levels {-1, ..., 1} are the MSE-optimal levels for these
        weights (see the module docstring for why WRPN needs this). All-zero ``w``: 1.0. Layers
        above ``4 * GAIN_SAMPLE`` weights use an evenly strided sample of ``GAIN_SAMPLE``.
        """
        w = w.detach().flatten()
        if w.numel() > 4 * GAIN_SAMPLE:  # the scan costs O(numel): sample big layers
            w = w[:: -(-w.numel() // GAIN_SAMPLE)].contiguous()
        alpha = float(optimal_scale(w.float(), self.bits, "with_zero"))
        return 1.0 / alpha if alpha > 0.0 else 1.0


class WRPNActQuantizer(DoReFaActQuantizer):
    """WRPN activation quantizer: clip(a, 0, 1), k-bit uniform (replaces a ReLU).

    The rule is DoReFa's activation quantizer (clip to [0, 1], k-bit uniform; research notes
    2.7, as Distiller implements both), so it is that class under WRPN's name.
    """

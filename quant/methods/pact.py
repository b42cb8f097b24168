"""PACT: parameterized clipping activation (Choi et al., "Accurate and efficient 2-bit quantized
neural networks", SysML 2019, Section 3.2; papers/pact_sawb_2bit_qnn_sysml2019.txt).

Forward, Eq. 1-2::

    y   = clip(x, 0, alpha)                                    (1)
    y_q = round(y * (2^k - 1) / alpha) * alpha / (2^k - 1)     (2)

Backward, Eq. 3 with the STE d y_q / d y = 1::

    d y_q / d alpha = 1 if x >= alpha else 0                   (3)
    d y_q / d x     = 1 if 0 <= x < alpha else 0

The quantization scale alpha / (2^k - 1) is computed from a detached alpha (notes 2.1, Distiller
PR #336): if it stayed in the graph, autograd would add an LSQ-like quantization-error term to
d y_q / d alpha, which is a different method.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from quant import controls
from quant.methods.base import ParamGroup, Quantizer, round_ste

__all__ = ["PACT"]


class PACT(Quantizer):
    """PACT activation quantizer; replaces a ReLU (its output is in [0, alpha]).

    Args:
        bits: activation bits k (1..16).
        alpha_init: initial clipping level (10 in the paper, Fig. 2b).
        alpha_decay: coefficient lambda of the L2 regulariser returned by
            :meth:`regularization_loss` as ``0.5 * lambda * alpha^2`` (equivalent to SGD weight
            decay lambda on alpha). 0 (default) leaves the L2 to the optimizer's ``"clip"`` group
            (:func:`quant.hooks.param_groups`); use one or the other, not both.
        min_alpha: alpha is clamped to at least this value before every forward pass (a large
            learning rate or decay can drive it negative, Distiller issue #524).
    """

    max_bits = 16

    def __init__(
        self,
        bits: int,
        *,
        alpha_init: float = 10.0,
        alpha_decay: float = 0.0,
        min_alpha: float = 1e-3,
    ) -> None:
        super().__init__(bits, signed=False)
        for field, v, low in (("alpha_init", alpha_init, 0.0), ("min_alpha", min_alpha, 0.0)):
            if not (isinstance(v, int | float) and math.isfinite(v) and v > low):
                raise ValueError(f"{field}={v!r} must be a finite number > 0")
        if not (isinstance(alpha_decay, int | float) and math.isfinite(alpha_decay)
                and alpha_decay >= 0):
            raise ValueError(f"alpha_decay={alpha_decay!r} must be a finite number >= 0")
        if alpha_init < min_alpha:
            raise ValueError(f"alpha_init={alpha_init} must be >= min_alpha={min_alpha}")
        self.alpha = nn.Parameter(torch.tensor(float(alpha_init)))
        self.alpha_decay = float(alpha_decay)
        self.min_alpha = float(min_alpha)

    def forward(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            # .data keeps the version counter untouched, so graphs built earlier stay valid.
            self.alpha.data.clamp_(min=self.min_alpha)
        alpha = self.alpha.to(x.dtype)
        # Eq. 1 written with where(): d y / d alpha = 1 exactly where x >= alpha (Eq. 3).
        # (torch.relu has derivative 0 at x = 0; Eq. 1's middle branch [0, alpha) has 1.)
        y = torch.where(x >= alpha, alpha, torch.where(x >= 0, x, torch.zeros_like(x)))
        # (the negative control PACT_SCALE_IN_GRAPH keeps alpha in the graph here)
        in_graph = controls.active(controls.PACT_SCALE_IN_GRAPH)
        scale = (alpha if in_graph else alpha.detach()) / (2**self.bits - 1)
        return round_ste(y / scale) * scale  # Eq. 2, STE through round

    qmin = 0

    @property
    def qmax(self) -> int:
        return 2**self.bits - 1

    def scale(self) -> Tensor:
        """The quantization step alpha / (2^k - 1) (0-dim, detached)."""
        return self.alpha.detach().clamp(min=self.min_alpha) / self.qmax

    def codes(self, x: Tensor) -> Tensor:
        """Integer codes in [0, 2^k - 1] (``forward(x) == codes(x) * scale()``)."""
        s = self.scale().to(x.dtype)
        return torch.round(torch.clamp(x, min=0.0) / s).clamp(0, self.qmax)

    def regularization_loss(self) -> Tensor:
        """``0.5 * alpha_decay * alpha^2`` (PACT Section 3.2's L2 regulariser on alpha)."""
        return 0.5 * self.alpha_decay * self.alpha.square()

    def param_group(self) -> ParamGroup:
        return "clip"

    def extra_repr(self) -> str:
        return f"bits={self.bits}, alpha={self.alpha.item():.4g}, alpha_decay={self.alpha_decay}"

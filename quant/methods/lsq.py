"""LSQ: learned step size quantization (Esser et al., ICLR 2020;
papers/lsq_learned_step_size_iclr2020.txt, Section 2 and Appendix B).

Forward, Eq. 1-2, with Q_N = 0, Q_P = 2^b - 1 (unsigned) or Q_N = 2^(b-1), Q_P = 2^(b-1) - 1
(signed)::

    v_bar = round(clip(v / s, -Q_N, Q_P))        (1)
    v_hat = v_bar * s                            (2)

Backward: the STE through round gives Eq. 3 for d v_hat / d s and Eq. 5 (pass-through inside
(-Q_N, Q_P), zero outside) for d v_hat / d v, both falling out of autograd on the expression
above. The step gradient is scaled by g = 1 / sqrt(N * Q_P) (Section 2.2) with the *gradscale*
detach trick of Appendix B. N is the number of weights of the layer (N_W), or for activations
the number of features of ONE example (N_F = numel / batch; the paper's *nfeatures*). Using
the batch-inclusive numel, as some reimplementations do, would shrink the gradient by a further
sqrt(batch) (notes 2.3).

Initialisation: s = 2 <|v|> / sqrt(Q_P) from the weights (at build time, through
``calibrate``) or from the first batch of activations (``quant.hooks.calibrate`` or, failing
that, lazily on the first forward pass).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from quant import controls
from quant.methods.base import ParamGroup, Quantizer, grad_scale, round_ste

__all__ = ["LSQActQuantizer", "LSQQuantizer", "LSQWeightQuantizer", "lsq_levels"]


def lsq_levels(bits: int, signed: bool) -> tuple[int, int]:
    """Return ``(Q_N, Q_P)`` for ``bits`` (LSQ Section 2)."""
    if signed:
        return 2 ** (bits - 1), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


class LSQQuantizer(Quantizer):
    """Per-tensor LSQ quantizer with a learned step ``step`` (Eq. 1-5).

    Args:
        bits: 2..16.
        signed: grid with negative levels (weights) or not (activations after ReLU).
        per_example: True for activations: N in the gradient scale counts the features of one
            example (dim 0 is the batch); False for weights (N = all weights).
        min_step: the step is clamped to at least this before each forward pass.
    """

    min_bits = 2
    max_bits = 16

    def __init__(
        self, bits: int, signed: bool, *, per_example: bool = False, min_step: float = 1e-8
    ) -> None:
        super().__init__(bits, signed)
        if not (isinstance(min_step, int | float) and math.isfinite(min_step) and min_step > 0):
            raise ValueError(f"min_step={min_step!r} must be a finite number > 0")
        self.per_example = bool(per_example)
        self.min_step = float(min_step)
        self.step = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("initialized", torch.tensor(False))

    @property
    def qn(self) -> int:
        return lsq_levels(self.bits, self.signed)[0]

    @property
    def qp(self) -> int:
        return lsq_levels(self.bits, self.signed)[1]

    @property
    def qmin(self) -> int:
        return -self.qn

    @property
    def qmax(self) -> int:
        return self.qp

    def scale(self) -> Tensor:
        """The step s (0-dim, detached, clamped like the forward pass)."""
        return self.step.detach().clamp(min=self.min_step)

    def codes(self, v: Tensor) -> Tensor:
        """Integer codes v_bar of Eq. 1 (``forward(v) == codes(v) * scale()``)."""
        return torch.round(torch.clamp(v / self.scale().to(v.dtype), -self.qn, self.qp))

    def n_elements(self, v: Tensor) -> int:
        """N of the gradient scale: N_W, or N_F of one example when ``per_example``."""
        if self.per_example and v.dim() > 1 and not controls.active(controls.LSQ_N_WHOLE_BATCH):
            return max(1, v[0].numel())
        return max(1, v.numel())

    def init_step(self, v: Tensor) -> float:
        """s0 = 2 <|v|> / sqrt(Q_P) (LSQ Section 2.1)."""
        factor = 1.0 if controls.active(controls.LSQ_INIT_FACTOR_ONE) else 2.0
        return factor * float(v.detach().abs().mean()) / math.sqrt(self.qp)

    def calibrate(self, x: Tensor) -> None:
        with torch.no_grad():
            self.step.fill_(max(self.init_step(x), self.min_step))
            self.initialized.fill_(True)

    def forward(self, v: Tensor) -> Tensor:
        if not bool(self.initialized):
            self.calibrate(v)
        with torch.no_grad():
            self.step.data.clamp_(min=self.min_step)
        qn, qp = self.qn, self.qp
        g = 1.0 / math.sqrt(self.n_elements(v) * qp)
        if controls.active(controls.LSQ_GRAD_SCALE_ONE):
            g = 1.0
        s = grad_scale(self.step, g).to(v.dtype)
        r = v / s
        # Eq. 1 with the boundaries of Eq. 3 and 5: inside the OPEN interval (-Qn, Qp) the
        # gradient flows through r; at or beyond a clip point r is a constant (-Qn or Qp).
        inside = (r > -qn) & (r < qp)
        v_bar = round_ste(torch.where(inside, r, r.detach().clamp(-qn, qp)))
        return v_bar * s  # Eq. 2

    def param_group(self) -> ParamGroup:
        return "scale"

    def extra_repr(self) -> str:
        return (f"bits={self.bits}, signed={self.signed}, Qn={self.qn}, Qp={self.qp}, "
                f"step={self.step.item():.4g}")


class LSQWeightQuantizer(LSQQuantizer):
    """LSQ for weights: signed, N = N_W."""

    def __init__(self, bits: int, *, min_step: float = 1e-8) -> None:
        super().__init__(bits, signed=True, per_example=False, min_step=min_step)


class LSQActQuantizer(LSQQuantizer):
    """LSQ for activations: N = N_F of one example.

    Args:
        signed: False (default) for post-ReLU activations; None decides from the calibration
            batch (signed if it holds a negative value), for inputs that may be negative (the
            image at the first layer, MobileNetV2's linear bottlenecks).
    """

    def __init__(self, bits: int, *, signed: bool | None = False, min_step: float = 1e-8) -> None:
        if signed is not None and not isinstance(signed, bool):
            raise ValueError(f"signed={signed!r} must be True, False or None (auto)")
        super().__init__(bits, signed=bool(signed), per_example=True, min_step=min_step)
        self.auto_sign = signed is None
        if self.bits < 2 and self.auto_sign:  # pragma: no cover - min_bits already 2
            raise ValueError(f"bits={bits} too small for a signed grid")

    def calibrate(self, x: Tensor) -> None:
        if self.auto_sign:
            self.signed = bool((x < 0).any())
        super().calibrate(x)

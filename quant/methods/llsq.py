"""LLSQ: learned linear symmetric quantization (Zhao et al., ICLR 2020).

One scale ``alpha`` per tensor, Eq. 1::

    q = clamp(round(x / alpha), Qn, Qp),   x_q = alpha * q
    weights (signed):        Qn = -2^(k-1), Qp = 2^(k-1) - 1
    activations (unsigned):  Qn = 0,        Qp = 2^k - 1

``alpha`` targets Eq. 2, ``alpha* = argmin E|x_q - x|^l`` (l = 2 by default), without a brute
force search: the *simulated gradient* (SG, Section 3.3) compares the quantization error at
``alpha``, ``alpha/2`` and ``2*alpha`` on every training step, picks a direction
``d in {-1, 0, +1}`` and moves ``alpha`` by ``alpha^2 * d``:

* activations (``alpha`` is a Parameter): ``alpha.grad = -alpha^2 * d`` is written in
  :meth:`after_backward`, so the optimizer step moves alpha by ``lr * alpha^2`` in direction d.
  The loss gradient on alpha is not used: alpha is detached in the forward pass (as in the
  authors' code, see ../shared/research/quant_methods_notes.md 2.4). The relative step is
  ``lr * alpha``: keep it well below 1 (e.g. lr <= 0.5 for alpha ~ 1);
* weights (``alpha`` is a buffer): an exponential moving average toward ``2*alpha`` (grow) or
  ``alpha/2`` (shrink), decay 0.99, also applied in :meth:`after_backward`.

The alternative the paper compares against in Table 2 (``update="ema"``) tracks an exponential
moving average of the max-calibrated scale ``max|x| / 2^(k-1)`` (weights) or ``max|x| / 2^k``
(activations), the FQN/Jacob-style range tracking.

Gradients of the input follow Eq. 7 (weights: identity STE) and Eq. 8 (activations: zero outside
``[Qn*alpha, Qp*alpha]``). ``pow2=True`` restricts alpha to powers of two (rounded up, as the
authors' ``ActLLSQS``), which makes the Eq. 6 requantization multiplier a pure shift.

BN fusion (Eq. 5), bias quantization and the shift multiplier (Eq. 6) live in
:mod:`quant.integer`, which reads :meth:`LLSQQuantizer.scale` and :attr:`qmin`/:attr:`qmax`.
"""

from __future__ import annotations

import logging
import math
from typing import Literal

import torch
from torch import Tensor, nn

from quant import controls
from quant.methods.base import ParamGroup, Quantizer

__all__ = ["LLSQActQuantizer", "LLSQQuantizer", "LLSQWeightQuantizer", "sg_direction"]

log = logging.getLogger(__name__)

Update = Literal["sg", "ema", "none"]
_UPDATES = ("sg", "ema", "none")


def sg_direction(e: float, e_small: float, e_big: float) -> int:
    """Search direction of the simulated gradient from the errors at alpha, alpha/2, 2*alpha.

    With ``a1 = e - e_small`` and ``a2 = e_big - e`` (the truth table on the signs of a1, a2 and
    a1 + a2 of the authors' search):

    * a1 > 0, a2 >= 0: the smaller scale is better, the bigger worse -> shrink (-1);
    * a1 <= 0, a2 < 0: the bigger scale is better, the smaller worse -> grow (+1);
    * a1 > 0, a2 < 0: both neighbours are better -> toward the better one (sign of -(a1 + a2));
    * a1 <= 0, a2 >= 0: alpha is a local minimum of the three -> keep (0).
    """
    a1, a2 = e - e_small, e_big - e
    if a1 > 0 and a2 >= 0:
        return -1
    if a1 <= 0 and a2 < 0:
        return 1
    if a1 > 0 and a2 < 0:
        return -1 if a1 + a2 > 0 else 1
    return 0


class LLSQQuantizer(Quantizer):
    """Symmetric linear quantizer with one learned scale (Eq. 1) and the SG/EMA update.

    Args:
        bits: k, the bits of the integer code.
        signed: grid ``[-2^(k-1), 2^(k-1)-1]`` (True) or ``[0, 2^k - 1]`` (False).
        is_weight: weights keep alpha as a buffer updated by EMA toward 2a / a/2 and pass the
            gradient straight through (Eq. 7); activations keep alpha as a Parameter moved by
            the simulated gradient and mask the gradient outside the clip range (Eq. 8).
        update: ``"sg"`` (simulated gradient, the paper's default), ``"ema"`` (moving average
            of the max-calibrated scale, Table 2's alternative) or ``"none"`` (frozen alpha).
        norm: l of Eq. 2, the error norm of the search (1 or 2).
        ema_decay: decay of both moving averages (0.99 in the authors' code).
        pow2: restrict alpha to powers of two (rounded up) so requantization is a shift.
        alpha: initial scale; None initialises from the first tensor seen (``calibrate``).
    """

    def __init__(
        self,
        bits: int,
        *,
        signed: bool,
        is_weight: bool,
        update: Update = "sg",
        norm: int = 2,
        ema_decay: float = 0.99,
        pow2: bool = False,
        alpha: float | None = None,
    ) -> None:
        super().__init__(bits, signed)
        if update not in _UPDATES:
            raise ValueError(f"update={update!r} is not supported; allowed: {_UPDATES}")
        if norm not in (1, 2):
            raise ValueError(f"norm={norm!r} is not supported; allowed: 1 or 2 (l of Eq. 2)")
        if not 0.0 < ema_decay < 1.0:
            raise ValueError(f"ema_decay={ema_decay!r} must be in (0, 1)")
        if alpha is not None and not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"alpha={alpha!r} must be a finite number > 0 or None")
        self.is_weight = bool(is_weight)
        self.update = update
        self.norm = norm
        self.ema_decay = float(ema_decay)
        self.pow2 = bool(pow2)
        init = torch.tensor(1.0 if alpha is None else float(alpha))
        if self.is_weight:
            self.register_buffer("alpha", init)
        else:
            self.alpha = nn.Parameter(init)
        self.register_buffer("initialized", torch.tensor(alpha is not None))
        self._direction = 0  # last SG decision, consumed by after_backward

    # ---- grid ----------------------------------------------------------------------------
    @property
    def qmin(self) -> int:
        """Qn of Eq. 1."""
        return -(2 ** (self.bits - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        """Qp of Eq. 1."""
        return 2 ** (self.bits - 1) - 1 if self.signed else 2**self.bits - 1

    def scale(self) -> Tensor:
        """The scale alpha used in the forward pass (detached; a power of two if ``pow2``)."""
        a = self.alpha.detach().abs().clamp_min(torch.finfo(self.alpha.dtype).tiny)
        if self.pow2:
            a = torch.exp2(torch.ceil(torch.log2(a)))
        return a

    def codes(self, x: Tensor) -> Tensor:
        """Integer codes q of Eq. 1 (float tensor holding integers)."""
        return torch.clamp(torch.round(x / self.scale()), self.qmin, self.qmax)

    def error(self, x: Tensor, alpha: Tensor | float) -> Tensor:
        """Mean ``|x_q - x|^l`` at scale ``alpha`` (the objective of Eq. 2)."""
        a = torch.as_tensor(alpha, dtype=x.dtype, device=x.device)
        xq = torch.clamp(torch.round(x / a), self.qmin, self.qmax) * a
        return (xq - x).abs().pow(self.norm).mean()

    # ---- hooks ---------------------------------------------------------------------------
    def calibrate(self, x: Tensor) -> None:
        """Authors' initialisation: weights ``max|w| / (Qp + 1)``; activations
        ``max|x| / (Qp + 1)`` for k >= 4 bits and ``max|x| / (2 Qp)`` below.

        Initialisation only: a quantizer that already has a scale (given as ``alpha`` or set by
        an earlier call) keeps it, so re-calibrating a trained model never discards the
        learned alpha. Call :meth:`reset` first to force a new initialisation.
        """
        if bool(self.initialized):
            return
        m = float(x.detach().abs().max())
        if m <= 0.0 or not math.isfinite(m):
            log.debug("LLSQ calibrate: max|x|=%s, keeping alpha=%s", m, float(self.alpha))
            return
        qp = self.qmax
        denom = qp + 1 if (self.is_weight or self.bits >= 4) else 2 * qp
        with torch.no_grad():
            self.alpha.fill_(m / denom)
            self.initialized.fill_(True)

    def reset(self) -> None:
        """Forget the scale; the next ``calibrate`` or forward pass initialises it again."""
        self.initialized.fill_(False)

    def after_backward(self) -> None:
        """Apply the pending simulated-gradient decision (see module docstring)."""
        d, self._direction = self._direction, 0
        if self.update != "sg" or d == 0:
            return
        with torch.no_grad():
            if self.is_weight:
                target = self.alpha * (2.0 if d > 0 else 0.5)
                self.alpha.mul_(self.ema_decay).add_((1.0 - self.ema_decay) * target)
            else:
                # An SGD step moves |alpha| by lr * alpha^2 * d (the sign factor keeps the
                # direction right if a too large lr, lr * alpha > 1, overshot alpha below 0).
                a = self.alpha.detach()
                self.alpha.grad = -torch.sign(a) * a**2 * d

    def param_group(self) -> ParamGroup:
        return "scale"

    # ---- forward -------------------------------------------------------------------------
    def _train_update(self, x: Tensor) -> None:
        xd = x.detach()
        if self.update == "sg":
            a = self.scale()
            e, es, eb = (float(self.error(xd, s)) for s in (a, a / 2, a * 2))
            self._direction = sg_direction(e, es, eb)
            if controls.active(controls.LLSQ_SG_SIGN_FLIPPED):  # negative control
                self._direction = -self._direction
        elif self.update == "ema":
            m = float(xd.abs().max())
            if m > 0.0:
                stat = m / (2 ** (self.bits - 1) if self.signed else 2**self.bits)
                with torch.no_grad():
                    self.alpha.mul_(self.ema_decay).add_((1.0 - self.ema_decay) * stat)

    def forward(self, x: Tensor) -> Tensor:
        if not bool(self.initialized):
            self.calibrate(x)
        if self.training and self.update != "none":
            self._train_update(x)
        a = self.scale()
        xq = self.codes(x) * a
        if self.is_weight:
            return x + (xq - x).detach()  # Eq. 7: identity STE
        xc = torch.clamp(x, self.qmin * a, self.qmax * a)  # Eq. 8: zero outside the range
        return xc + (xq - xc).detach()

    def extra_repr(self) -> str:
        return (
            f"bits={self.bits}, signed={self.signed}, update={self.update!r}, "
            f"norm={self.norm}, pow2={self.pow2}, alpha={float(self.alpha.detach()):.4g}"
        )


class LLSQWeightQuantizer(LLSQQuantizer):
    """LLSQ weight quantizer: signed grid, alpha buffer, EMA-driven simulated gradient."""

    def __init__(self, bits: int, **kw: object) -> None:
        kw.setdefault("signed", True)
        super().__init__(bits, is_weight=True, **kw)  # type: ignore[arg-type]


class LLSQActQuantizer(LLSQQuantizer):
    """LLSQ activation quantizer: unsigned grid by default (after ReLU), alpha Parameter
    driven by the simulated gradient; ``signed=True`` for Leaky-ReLU nets (Section 4.1)."""

    def __init__(self, bits: int, **kw: object) -> None:
        kw.setdefault("signed", False)
        super().__init__(bits, is_weight=False, **kw)  # type: ignore[arg-type]

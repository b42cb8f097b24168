"""CReLU + multi-level binary weights (Huang, Ni, Yang, AAAI 2019).

Activations (:class:`CReLUActQuantizer`):

* CReLU, Eq. 1: ``crelu(x) = c`` for x > c, ``x`` on (0, c], 0 otherwise, with the learnable
  layer-wise clamp c (init 8) and the gradients of Eq. 2: d/dx = 1 on (0, c], d/dc = 1 on
  (c, inf). The L2 penalty ``lambda * c^2`` of Eq. 3 is :meth:`regularization_loss`
  (``alpha_decay`` = lambda, so :func:`quant.hooks.param_groups` adds no second decay).
* linear quantizer, Eq. 4: ``round(x (2^k - 1) / c) * c / (2^k - 1)``;
* logarithmic quantizer, Eq. 5: ``2^clamp(floor(log2 x), n - 2^k, n)``, n = log2 c. Eq. 5 as
  printed has 2^k + 1 exponents and no zero, which k bits cannot encode and which would turn
  every dead ReLU into a non-zero value. We keep Eq. 5's round-down (floor) rule on the 2^k - 1
  largest exponents ``c * 2^-j, j = 0 .. 2^k - 2`` and spend the remaining code on 0; values
  below the smallest power round down to 0. Exponents are taken relative to c, which equals
  Eq. 5 exactly when c is a power of two (tested).
* both quantizers use the STE ``dl/dx~ = dl/dx`` (after Eq. 5); the scale is not in the graph,
  so c learns only through Eq. 2.

Weights (:class:`MultiLevelBinaryWeightQuantizer`): greedy multi-level binarization, Eq. 6-8::

    r_0 = w,  b_i = sign(r_i),  alpha_i = mean|r_i| = ||r_i||_1 / n,  r_(i+1) = r_i - alpha_i b_i
    w~ = sum_(i < m) alpha_i b_i

Backward (Eq. 10): sign() uses the STE ``1{|r| <= 1}`` and alpha_i stays in the graph, so for
m = 1 autograd gives exactly Eq. 10::

    dl/dw_i = s(w_i)/n * sum_j dl/dw~_j s(w_j) + dl/dw~_i 1{|w_i| <= 1} alpha

For m > 1 autograd applies the same two rules level by level through the residual chain (the
paper derives only one level; this is its chain-rule extension, tested against an independent
hand-written recursion). ``backward="detached"`` detaches alpha_i, keeping only the STE term:
the XNOR-style mismatch the paper corrects. ``ste_clip`` sets the STE window (1 in Eq. 10); with
``ste_clip=0`` the backward is the exact derivative of the forward away from sign flips, which
the tests check against finite differences.

Scales are per output channel by default (XNOR's per-filter alpha, n = elements of one filter);
``per_channel=False`` uses one alpha per level for the whole tensor.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor, nn

from quant import controls
from quant.methods.base import ParamGroup, Quantizer

__all__ = ["CReLUActQuantizer", "MultiLevelBinaryWeightQuantizer", "crelu", "sign_ste_clip"]

_EPS = 1e-4  # smallest clamp value (keeps c > 0 under a large L2 step, Distiller #524)


class _SignSTE(torch.autograd.Function):
    """sign(x) (sign(0) = +1) with gradient ``g * 1{|x| <= clip}``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, clip: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.clip = clip
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        return g * (x.abs() <= ctx.clip).to(g.dtype), None


def sign_ste_clip(x: Tensor, clip: float = 1.0) -> Tensor:
    """sign with the hard-tanh STE of BinaryConnect/XNOR: gradient passes where |x| <= clip."""
    return _SignSTE.apply(x, clip)


def crelu(x: Tensor, c: Tensor) -> Tensor:
    """Eq. 1 with the gradients of Eq. 2 (d/dx = 1 on (0, c], d/dc = 1 on (c, inf))."""
    return torch.where(x > c, c.expand_as(x), torch.relu(x))


class MultiLevelBinaryWeightQuantizer(Quantizer):
    """m-level greedy binarization of weights (Eq. 6-8) with the refined backward (Eq. 10).

    Args:
        bits: ignored (kept for the ``(bits, **kw)`` constructor of the recipes); the quantizer
            reports ``bits = levels``, the bits stored per weight and the binary passes per MAC.
        levels: m, the number of binary tensors (the paper uses m = 2).
        backward: ``"refined"`` (Eq. 10) or ``"detached"`` (alpha treated as a constant).
        ste_clip: STE window of sign(), 1 in Eq. 10.
        per_channel: one alpha_i per output channel (dim 0) or per tensor.
    """

    def __init__(
        self,
        bits: int = 1,
        *,
        levels: int = 2,
        backward: Literal["refined", "detached"] = "refined",
        ste_clip: float = 1.0,
        per_channel: bool = True,
    ) -> None:
        if isinstance(levels, bool) or not isinstance(levels, int) or not 1 <= levels <= 8:
            raise ValueError(f"levels={levels!r} must be an int in [1, 8] (m of Eq. 6)")
        if backward not in ("refined", "detached"):
            raise ValueError(f"backward={backward!r}; allowed: 'refined' (Eq. 10), 'detached'")
        if not (math.isfinite(ste_clip) and ste_clip >= 0):
            raise ValueError(f"ste_clip={ste_clip!r} must be a finite number >= 0")
        super().__init__(levels, True)
        self.levels = levels
        self.backward = backward
        self.ste_clip = float(ste_clip)
        self.per_channel = bool(per_channel)

    def decompose(self, w: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """The greedy residual decomposition: lists of alpha_i (broadcastable) and b_i."""
        dims = tuple(range(1, w.dim())) if self.per_channel and w.dim() > 1 else None
        alphas: list[Tensor] = []
        signs: list[Tensor] = []
        r = w
        for _ in range(self.levels):
            b = sign_ste_clip(r, self.ste_clip)
            a = r.abs().mean() if dims is None else r.abs().mean(dim=dims, keepdim=True)  # Eq. 8
            if self.backward == "detached" or controls.active(controls.CRELU_BACKWARD_DETACHED):
                a = a.detach()
            alphas.append(a)
            signs.append(b)
            r = r - a * b  # Eq. 7
        return alphas, signs

    def forward(self, x: Tensor) -> Tensor:
        alphas, signs = self.decompose(x)
        out = alphas[0] * signs[0]
        for a, b in zip(alphas[1:], signs[1:]):
            out = out + a * b
        return out

    def extra_repr(self) -> str:
        return (
            f"levels={self.levels}, backward={self.backward!r}, ste_clip={self.ste_clip}, "
            f"per_channel={self.per_channel}"
        )


class CReLUActQuantizer(Quantizer):
    """CReLU (Eq. 1-3) followed by the linear (Eq. 4) or logarithmic (Eq. 5) quantizer.

    Replaces the ReLU (use it in ``QuantAct`` with ``pre=None``).

    Args:
        bits: k, bits of the activation code.
        mode: ``"linear"`` (Eq. 4) or ``"log"`` (Eq. 5 with a zero code).
        clip_init: initial clamp c (8 in the paper).
        alpha_decay: lambda of Eq. 3 (L2 penalty ``lambda * c^2`` in the loss).
    """

    def __init__(
        self,
        bits: int,
        *,
        mode: Literal["linear", "log"] = "linear",
        clip_init: float = 8.0,
        alpha_decay: float = 1e-4,
    ) -> None:
        super().__init__(bits, False)
        if mode not in ("linear", "log"):
            raise ValueError(f"mode={mode!r}; allowed: 'linear' (Eq. 4), 'log' (Eq. 5)")
        if not (math.isfinite(clip_init) and clip_init > 0):
            raise ValueError(f"clip_init={clip_init!r} must be a finite number > 0")
        if not (math.isfinite(alpha_decay) and alpha_decay >= 0):
            raise ValueError(f"alpha_decay={alpha_decay!r} must be a finite number >= 0")
        self.mode = mode
        self.alpha_decay = float(alpha_decay)
        self.clip = nn.Parameter(torch.tensor(float(clip_init)))

    def clip_value(self) -> Tensor:
        """c, kept positive (|c| clamped at 1e-4) and differentiable."""
        return self.clip.abs().clamp_min(_EPS)

    def quantize(self, x: Tensor, c: Tensor) -> Tensor:
        """The quantizer on values already in [0, c] (no gradient path)."""
        if self.mode == "linear":
            n = 2**self.bits - 1
            return torch.round(x * (n / c)) * (c / n)  # Eq. 4
        jmax = 2**self.bits - 2  # codes: 0 and c * 2^-j, j = 0 .. 2^k - 2
        pos = x > 0
        xs = torch.where(pos, x, c.expand_as(x))
        # smallest j >= 0 with c 2^-j <= x (= Eq. 5's floor(log2 x) when c is a power of two);
        # floor(log2(c/x)) can be one too small under rounding, so fix it with a comparison.
        j = torch.floor(torch.log2(c / xs)).clamp_min(0)
        j = torch.where(c * torch.exp2(-j) <= xs, j, j + 1)
        val = c * torch.exp2(-j)
        return torch.where(pos & (j <= jmax), val, torch.zeros_like(x))

    def forward(self, x: Tensor) -> Tensor:
        c = self.clip_value()
        xc = crelu(x, c)
        xq = self.quantize(xc.detach(), c.detach())
        return xc + (xq - xc).detach()  # STE: dl/dx = dl/dx~

    def regularization_loss(self) -> Tensor:
        """lambda * c^2 (Eq. 3, g = L2)."""
        return self.alpha_decay * self.clip**2

    def param_group(self) -> ParamGroup:
        return "clip"

    def extra_repr(self) -> str:
        return f"bits={self.bits}, mode={self.mode!r}, clip={float(self.clip.detach()):.4g}"

"""Base class of every quantizer and the straight-through-estimator (STE) helpers they share.

A quantizer is an ``nn.Module`` that maps a real tensor to its fake-quantized value (same shape,
same dtype, values on the quantizer's grid). It carries ``bits`` and ``signed`` so that layers
built from it implement the bits protocol (docs/CONTRACTS.md), and it offers five optional
training hooks that whole-model helpers in :mod:`quant.hooks` call. All hooks are no-ops here.

Quantizers whose output lies on a fixed uniform grid ``x_q = step * q`` (q an integer in
``[qmin, qmax]``) may also offer ``scale() -> Tensor`` (the 0-dim step), ``qmin``/``qmax`` and
``codes(x) -> Tensor`` (the integers q); :mod:`quant.integer` then reads the grid exactly
instead of probing it (LLSQ, LSQ, PACT, WRPN, DoReFa activations do).

STE helpers follow LSQ Appendix B (Functions 1 and 2): return ``y_out`` in the forward pass and
route the gradient to ``y_grad`` in the backward pass (written so the forward is bit-exact).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

__all__ = [
    "ParamGroup",
    "Quantizer",
    "check_bits",
    "grad_scale",
    "round_ste",
    "sign_ste",
    "uniform_quantize_unit",
]

ParamGroup = Literal["weights", "clip", "scale"]
"""How an optimizer should treat a quantizer's parameters (see :func:`quant.hooks.param_groups`):
``"weights"`` like ordinary weights, ``"clip"`` a clipping level with its own L2 (PACT alpha,
CReLU clamp), ``"scale"`` a step size that takes no weight decay (LSQ s, LLSQ alpha)."""


def check_bits(bits: object, *, field: str = "bits", low: int = 1, high: int = 32) -> int:
    """Return ``bits`` as an int or raise ValueError naming the field, value and allowed range."""
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise ValueError(f"{field}={bits!r} must be an int in [{low}, {high}]")
    if not low <= bits <= high:
        raise ValueError(f"{field}={bits} is not supported; allowed: {low} <= {field} <= {high}")
    return bits


def _ste(value: Tensor, grad_path: Tensor) -> Tensor:
    """``value`` in the forward pass, the gradient of ``grad_path`` in the backward pass.

    LSQ App. B writes this ``detach(value - grad_path) + grad_path``; in floating point that
    sum can differ from ``value`` by an ulp. ``grad_path - detach(grad_path)`` is exactly 0, so
    the form used here returns ``value`` bit-exactly (grid points stay on the grid)."""
    return value.detach() + (grad_path - grad_path.detach())


def round_ste(x: Tensor) -> Tensor:
    """Round to nearest in the forward pass, identity gradient (LSQ App. B, *roundpass*)."""
    return _ste(torch.round(x), x)


def sign_ste(x: Tensor) -> Tensor:
    """sign(x) with sign(0) = +1 in the forward pass, identity gradient (STE)."""
    return _ste(torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x)), x)


def grad_scale(x: Tensor, scale: float) -> Tensor:
    """Return ``x`` unchanged but multiply its gradient by ``scale`` (LSQ App. B, *gradscale*)."""
    return _ste(x, x * scale)


def uniform_quantize_unit(x: Tensor, bits: int) -> Tensor:
    """k-bit uniform quantization of ``x`` in [0, 1] onto {0, 1/n, ..., 1}, n = 2^k - 1, with STE.

    This is DoReFa's ``quantize_k`` and the inner step of PACT Eq. 2 (after division by alpha).
    The caller is responsible for ``x`` being in [0, 1].
    """
    n = float(2**bits - 1)
    return round_ste(x * n) / n


class Quantizer(nn.Module):
    """A fake quantizer: ``forward(x)`` returns ``x`` snapped to a ``bits``-bit grid.

    Subclasses set ``bits`` and ``signed`` through ``super().__init__`` and implement
    ``forward``. They may override the hooks below; the defaults do nothing.

    Attributes:
        bits: number of bits of the integer code the quantizer produces.
        signed: True if the grid has negative levels (weights), False for non-negative
            activations.
        max_bits: class-level upper bound checked in ``__init__`` (subclasses narrow it).
    """

    min_bits: ClassVar[int] = 1
    max_bits: ClassVar[int] = 32

    def __init__(self, bits: int, signed: bool) -> None:
        super().__init__()
        self.bits = check_bits(bits, low=self.min_bits, high=self.max_bits)
        if not isinstance(signed, bool):
            raise ValueError(f"signed={signed!r} must be a bool")
        self.signed = signed
        self.enabled = True
        """False: the layer holding this quantizer bypasses it (a training phase that has not
        switched it on yet, Quantization Networks Sec. 4.1; see quant.hooks.set_phase)."""

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x)")

    # ---- optional training hooks (no-ops on the base) ---------------------------------------
    def regularization_loss(self) -> Tensor:
        """Extra loss term (e.g. PACT/CReLU L2 on the clipping level); zero by default."""
        p = next(self.parameters(), None)
        device = p.device if p is not None else None
        return torch.zeros((), device=device)

    def on_epoch_start(self, epoch: int) -> None:
        """Called once at the start of every epoch (e.g. QN raises its temperature)."""

    def after_backward(self) -> None:
        """Called after ``loss.backward()`` and before ``optimizer.step()`` (e.g. LLSQ)."""

    def calibrate(self, x: Tensor) -> None:
        """Initialise data-dependent state from a sample of the tensor this quantizer sees."""

    def param_group(self) -> ParamGroup:
        """How an optimizer should treat this quantizer's parameters."""
        return "weights"

    def extra_repr(self) -> str:
        return f"bits={self.bits}, signed={self.signed}"

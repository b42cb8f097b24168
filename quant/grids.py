"""Uniform grids and integer multipliers of the integer-only export (LLSQ Eq. 1, Eq. 6): the
grid of a quantizer (read exactly, or probed and verified), weight codes, and the
mantissa/shift form of a real requantization multiplier with its integer application."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor

from quant.methods.base import Quantizer
from quant.modules import QuantConv1d, QuantConv2d, QuantLinear

__all__ = ["Grid", "quantize_multiplier"]


@dataclass(frozen=True, slots=True)
class Grid:
    """A uniform quantization grid ``step * q``, q integer in [qmin, qmax], round-to-nearest."""

    step: float
    qmin: int
    qmax: int

    def encode(self, x: Tensor) -> Tensor:
        """Real tensor -> int64 codes (what the fake quantizer does to a real input)."""
        return torch.clamp(torch.round(x.double() / self.step), self.qmin, self.qmax).long()


def quantize_multiplier(m: Tensor, scale_bits: int, pow2: bool = False) -> tuple[Tensor, Tensor]:
    """Split real multipliers into int64 ``(mantissa, shift)`` with ``m ~ mantissa * 2^-shift``.

    ``|mantissa|`` has ``scale_bits`` bits, ``2^(b-1) <= |mantissa| < 2^b`` (Eq. 6 with the
    scale quantized to b bits); ``pow2=True`` gives ``mantissa = +-1`` (a pure shift).
    Zero multipliers give mantissa 0.
    """
    m = torch.as_tensor(m, dtype=torch.float64)
    mag = m.abs()
    safe = torch.where(mag > 0, mag, torch.ones_like(mag))
    if pow2:
        shift = -torch.round(torch.log2(safe))
        mant = torch.ones_like(mag)
    else:
        shift = (scale_bits - 1) - torch.floor(torch.log2(safe))
        mant = torch.round(safe * torch.exp2(shift))
        over = mant >= 2.0**scale_bits  # rounding carried into the next power of two
        mant = torch.where(over, torch.round(safe * torch.exp2(shift - 1)), mant)
        shift = torch.where(over, shift - 1, shift)
    mant = torch.where(mag > 0, mant * torch.sign(m), torch.zeros_like(m))
    return mant.long(), shift.long()


def _apply_multiplier(q: Tensor, mant: Tensor, shift: Tensor) -> Tensor:
    """round(q * mant * 2^-shift) with integer ops (half-up rounding; left shift if shift < 0)."""
    prod = q * mant
    pos = shift > 0
    sh = shift.clamp_min(0)
    half = torch.where(pos, torch.ones_like(sh) << (sh - 1).clamp_min(0), torch.zeros_like(sh))
    right = torch.div(prod + half, torch.ones_like(sh) << sh, rounding_mode="floor")
    left = prod * (torch.ones_like(sh) << (-shift).clamp_min(0))
    return torch.where(pos, right, left)


def _bits_for(lo: int, hi: int) -> int:
    """Smallest two's-complement width holding every integer in [lo, hi]."""
    need_pos = int(max(hi, 0)).bit_length() + 1
    need_neg = int(max(-lo - 1, 0)).bit_length() + 1
    return max(need_pos, need_neg, 1)


def _uniform_step(values: Tensor) -> float | None:
    """The step of a uniform grid containing ``values`` (None if they are not on one)."""
    u = torch.unique(values.detach().double().flatten())
    if u.numel() == 0:
        return None
    if u.numel() == 1:
        v = abs(float(u[0]))
        return v if v > 0 else 1.0
    d = float((u[1:] - u[:-1]).min())
    tol = 1e-4
    for step in (d, d / 2):
        r = u / step
        if bool(((r - torch.round(r)).abs() <= tol).all()):
            return step
    return None


def _act_grid(q: Quantizer, where: str) -> Grid:
    """The grid of an activation quantizer: exact for LLSQ-style quantizers (``scale()``,
    ``qmin``, ``qmax``), otherwise probed on a copy in eval mode and verified to round to
    nearest (QN with k-means thresholds or CReLU-log fail here, as they should)."""
    if callable(getattr(q, "scale", None)) and hasattr(q, "qmin") and hasattr(q, "qmax"):
        return Grid(float(q.scale()), int(q.qmin), int(q.qmax))
    p = copy.deepcopy(q).eval()
    with torch.no_grad():
        ends = p(torch.tensor([-1e9, 1e9], dtype=torch.float32)).double()
        lo, hi = float(ends[0]), float(ends[1])
        span = max(hi - lo, 1e-12)
        probe = torch.linspace(lo - 0.25 * span, hi + 0.25 * span, 64 * 2**q.bits + 1)
        out = p(probe.float()).double()
    step = _uniform_step(out)
    if step is None:
        raise ValueError(f"{where}: {type(q).__name__} does not quantize onto a uniform grid; "
                         "integer export supports symmetric/linear quantizers only")
    grid = Grid(step, round(lo / step), round(hi / step))
    ref = grid.encode(probe).double() * step
    bad = (ref - out).abs() > 1e-4 * step
    if bool(bad.any()):
        raise ValueError(f"{where}: {type(q).__name__} does not round to the nearest level "
                         "of its grid; integer export cannot reproduce it")
    return grid


def _weight_codes(layer: QuantConv1d | QuantConv2d | QuantLinear,
                  where: str) -> tuple[Tensor, Tensor]:
    """(int64 codes shaped like the weight, per-output-channel float64 scale)."""
    wq = layer.weight_quantizer
    if wq is None:
        raise ValueError(f"{where}: weights are not quantized; integer-only export needs a "
                         "weight quantizer on every conv/linear (use e.g. recipe 'llsqf')")
    w = layer.weight.detach()
    n_out = w.shape[0]
    if callable(getattr(wq, "scale", None)) and callable(getattr(wq, "codes", None)):
        s = wq.scale().double()
        return wq.codes(w).long(), s.expand(n_out).clone() if s.dim() == 0 else s.flatten()
    p = copy.deepcopy(wq).eval()
    with torch.no_grad():
        y = p(w).double()
    step = _uniform_step(y)
    if step is not None:
        return torch.round(y / step).long(), torch.full((n_out,), step, dtype=torch.float64)
    steps = [_uniform_step(y[c]) for c in range(n_out)]
    if any(s is None for s in steps):
        raise ValueError(f"{where}: weights of {type(wq).__name__} are not on a uniform grid "
                         "(per tensor or per output channel); integer export cannot map them")
    st = torch.tensor(steps, dtype=torch.float64)
    return torch.round(y / st.view(-1, *[1] * (y.dim() - 1))).long(), st

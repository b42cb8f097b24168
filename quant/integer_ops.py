"""Run time of the integer-only export (:func:`quant.integer.to_integer`): the integer tensor
:class:`_IntT` (codes q with a real per-channel scale s, value ``s * q``) and the operations on
it - the conv/linear with its Eq. 6 bias and saturating accumulator, stand-alone BN, residual
add, pooling, reshapes - each counting saturations in a :class:`LayerStats`."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from quant.grids import _apply_multiplier, _bits_for, quantize_multiplier
from quant.integer_plan import _LayerPlan
from quant.modules import QuantConv1d, QuantConv2d, QuantLinear

__all__ = ["LayerStats"]

_EXACT = 2.0**52  # float64 integer arithmetic is exact below this


# ---- the integer tensor -------------------------------------------------------------------
@dataclass(slots=True)
class _IntT:
    """Integer tensor ``q`` (int64) with positive real scale ``s`` broadcastable to (1, ...).

    ``src``: the conv/linear whose accumulator this is, through scale-preserving ops only
    (ReLU, pooling, reshapes); None after a residual add or a stand-alone BN. A requantization
    of a tensor with a ``src`` records its multipliers for :func:`quantize_scales_`."""

    q: Tensor
    s: Tensor
    src: str | None = None

    def value(self) -> Tensor:
        return self.q.double() * self.s


def _per_channel(x: _IntT) -> Tensor:
    """The (C,) scale of an NC... tensor whose scale may be stored per element."""
    c = x.q.shape[1]
    s = x.s.expand((1, *x.q.shape[1:])).reshape(1, c, -1)
    if not bool((s == s[..., :1]).all()):
        raise ValueError("this op needs one scale per channel; the tensor mixes scales within "
                         "a channel")
    return s[0, :, 0]


def _chan_scale(s: Tensor, ndim: int) -> Tensor:
    """(C,) -> (1, C, 1, ...) for a tensor of ``ndim`` dims."""
    return s.view(1, -1, *[1] * (ndim - 2))


def _last_dim(s: Tensor, ndim: int) -> Tensor:
    """(K,) -> (1, ..., 1, K) for a tensor of ``ndim`` dims."""
    return s.view(*[1] * (ndim - 1), -1)


@dataclass(slots=True)
class LayerStats:
    """Accumulator statistics of one layer since the last :meth:`IntegerModel.reset_stats`."""

    outputs: int = 0
    overflows: int = 0
    acc_min: int = 0
    acc_max: int = 0

    @property
    def acc_bits_needed(self) -> int:
        return _bits_for(self.acc_min, self.acc_max)


def _sat(acc_bits: int) -> tuple[int, int]:
    """The range of an ``acc_bits`` two's-complement register."""
    return -(2 ** (acc_bits - 1)), 2 ** (acc_bits - 1) - 1


# ---- conv / linear ------------------------------------------------------------------------
def _accumulate(name: str, cols: Tensor, w: Tensor, qb: Tensor, *, acc_bits: int,
                accumulate: str, stats: dict[str, LayerStats]) -> Tensor:
    """Saturating MACs. cols (B, K, L) int64 inputs, w (N, K) codes, qb (N,) -> (B, N, L)."""
    lo, hi = _sat(acc_bits)
    st = stats[name]
    if accumulate == "final":
        exact = torch.einsum("bkl,nk->bnl", cols.double(), w.double()) + qb.double()[:, None]
        if float(exact.abs().max()) >= _EXACT:
            raise ValueError(f"layer {name!r}: accumulator beyond float64 exactness")
        ideal = exact.long()
        over = (ideal < lo) | (ideal > hi)
        acc = ideal.clamp(lo, hi)
        amin, amax = int(ideal.min()), int(ideal.max())
    else:
        # Before its first saturation a saturating register equals the exact running sum,
        # so "saturated at least once" <=> the exact running sum left [lo, hi], and the
        # exact running sums give acc_bits_needed. Only outputs that overflow need the
        # clamp-after-every-MAC replay for their final value.
        # Running sums in floating point are exact integers below 2^24 (float32) or 2^53
        # (float64); pick the cheaper type the worst-case bound allows.
        bound = float(qb.abs().max()) + float(cols.abs().amax((0, 2)).double()
                                              @ w.abs().amax(0).double())
        if bound >= _EXACT:
            raise ValueError(f"layer {name!r}: accumulator bound {bound:.3g} is beyond "
                             "float64 exactness")
        dt = torch.float32 if bound < 2.0**24 else torch.float64
        cf, wf = cols.to(dt), w.to(dt)
        ideal = qb.to(dt).view(1, -1, 1).expand(cols.shape[0], -1, cols.shape[2]).clone()
        run_min, run_max = ideal.clone(), ideal.clone()
        for k in range(cols.shape[1]):
            ideal.addcmul_(wf[:, k].view(1, -1, 1), cf[:, k].unsqueeze(1))
            torch.minimum(run_min, ideal, out=run_min)
            torch.maximum(run_max, ideal, out=run_max)
        ideal, run_min, run_max = ideal.long(), run_min.long(), run_max.long()
        over = (run_min < lo) | (run_max > hi)
        amin, amax = int(run_min.min()), int(run_max.max())
        acc = ideal
        if bool(over.any()):
            bi, ni, li = over.nonzero(as_tuple=True)
            sat = qb[ni].clamp(lo, hi)  # a bias wider than the register saturates on load
            for k in range(cols.shape[1]):
                sat.add_(w[ni, k] * cols[bi, k, li]).clamp_(lo, hi)
            acc[bi, ni, li] = sat
    st.outputs += acc.numel()
    st.overflows += int(over.sum())
    st.acc_min, st.acc_max = min(st.acc_min, amin), max(st.acc_max, amax)
    return acc


def _conv_pads(mod: QuantConv1d | QuantConv2d) -> tuple[tuple[int, int], ...]:
    """Zero padding (before, after) per spatial dim, first dim first. ``padding="same"`` pads
    ``d (k - 1)`` in total, the odd element after, as torch does; ``"valid"`` pads nothing."""
    if isinstance(mod.padding, str):
        if mod.padding == "valid":
            return tuple((0, 0) for _ in mod.kernel_size)
        total = [d * (k - 1) for d, k in zip(mod.dilation, mod.kernel_size)]
        return tuple((t // 2, t - t // 2) for t in total)
    return tuple((int(p), int(p)) for p in mod.padding)


def _conv_acc(name: str, mod: QuantConv1d | QuantConv2d, codes: Tensor, qb: Tensor, q: Tensor,
              *, acc_bits: int, accumulate: str, stats: dict[str, LayerStats]) -> Tensor:
    """Saturating conv MACs on int64 codes ``q`` (B, C, H, W) or (B, C, L) -> (B, N, ...).

    A Conv1d is run as the Conv2d with a 1 x k kernel holding the same weights (H = 1, no
    padding or stride along it), so both share one im2col order (c, r, s) with r = 0, one
    bias start and one saturation point: their integer outputs are identical."""
    one_d = isinstance(mod, QuantConv1d)
    pads = _conv_pads(mod)
    if one_d:
        q, pads = q.unsqueeze(2), ((0, 0), *pads)
    kernel, stride, dilation = ((1, *t) if one_d else tuple(t) for t in
                                (mod.kernel_size, mod.stride, mod.dilation))
    q = F.pad(q, (*pads[1], *pads[0]))  # zeros, (left, right, top, bottom)
    bsz, _, h, w_in = q.shape
    ho = (h - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    wo = (w_in - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    cols = F.unfold(q.double(), kernel, dilation, 0, stride).long()  # (B, C*kh*kw, L), (c, r, s)
    g = mod.groups
    n_out = codes.shape[0]
    kg = cols.shape[1] // g
    wc = codes.reshape(n_out, -1)
    parts = [_accumulate(name, cols[:, i * kg:(i + 1) * kg],
                         wc[i * n_out // g:(i + 1) * n_out // g],
                         qb[i * n_out // g:(i + 1) * n_out // g], acc_bits=acc_bits,
                         accumulate=accumulate, stats=stats) for i in range(g)]
    acc = torch.cat(parts, 1).view(bsz, n_out, ho, wo)
    return acc[:, :, 0] if one_d else acc


def _conv_linear(name: str, mod: QuantConv1d | QuantConv2d | QuantLinear, plan: _LayerPlan,
                 x: _IntT, *, acc_bits: int, bias_bits: int, bias_frac_bits: int,
                 accumulate: str, stats: dict[str, LayerStats]) -> _IntT:
    """The layer on its quantized input: Eq. 6 bias, saturating MACs, sign folded into q."""
    s_in = x.s.flatten()
    s_acc = s_in[0] * plan.w_scale if bool((s_in == s_in[0]).all()) else None
    if s_acc is None:
        raise ValueError(f"layer {name!r}: input scale is per-channel; insert a quantizer "
                         "(QuantAct or input_quantizer) before this layer")
    f = bias_frac_bits  # bias grid alpha_a alpha_w^ / 2^f; products shifted left f
    s_acc = s_acc / 2**f
    lim = 2 ** (bias_bits - 1)
    qb_real = torch.round(plan.bias_real / s_acc)
    plan.info["bias_clipped"] = int(((qb_real < -lim) | (qb_real > lim - 1)).sum())
    plan.s_acc = s_acc
    qb = qb_real.clamp(-lim, lim - 1).long()  # Eq. 6
    if isinstance(mod, QuantConv1d | QuantConv2d):
        acc = _conv_acc(name, mod, plan.codes << f, qb, x.q, acc_bits=acc_bits,
                        accumulate=accumulate, stats=stats)
    else:
        lead = x.q.shape[:-1]
        acc = _accumulate(name, x.q.reshape(-1, x.q.shape[-1], 1), plan.codes << f, qb,
                          acc_bits=acc_bits, accumulate=accumulate, stats=stats)
        acc = acc.reshape(*lead, -1)
    sign = torch.sign(s_acc)  # keep scales positive: (q, s) == (-q, -s)
    sign = torch.where(sign == 0, torch.ones_like(sign), sign).long()
    # output channels: dim 1 of a conv's (N, C, ...) output, the last dim of a linear's
    # (..., K) output - a sequence model's (N, L, K) included
    view = _chan_scale if isinstance(mod, QuantConv1d | QuantConv2d) else _last_dim
    acc = (acc * view(sign, acc.dim())).clamp(*_sat(acc_bits))
    return _IntT(acc, view(s_acc.abs(), acc.dim()), name)


# ---- vector-unit ops ------------------------------------------------------------------------
def _saturate(name: str, v: Tensor, acc_bits: int, stats: dict[str, LayerStats]) -> Tensor:
    """Clamp a vector-unit result (BN offset, residual add) to ``acc_bits``; count it."""
    lo, hi = _sat(acc_bits)
    st = stats.setdefault(name, LayerStats())
    st.outputs += v.numel()
    st.overflows += int(((v < lo) | (v > hi)).sum())
    st.acc_min, st.acc_max = min(st.acc_min, int(v.min())), max(st.acc_max, int(v.max()))
    return v.clamp(lo, hi)


def _bn(name: str, bn: nn.Module, x: _IntT, acc_bits: int,
        stats: dict[str, LayerStats]) -> _IntT:
    """Stand-alone BN: per-channel scale change and integer offset (pre-activation nets)."""
    zeta = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
    c = bn.bias.detach().double() - bn.running_mean.double() * zeta
    s_new = _per_channel(x) * zeta
    off = torch.round(c / s_new).long()
    sign = torch.where(s_new < 0, -1, 1).long()
    q = (_saturate(name, x.q + _chan_scale(off, x.q.dim()), acc_bits, stats)
         * _chan_scale(sign, x.q.dim()))
    return _IntT(q, _chan_scale(s_new.abs(), x.q.dim()))


def _add(name: str, a: _IntT, b: _IntT, scale_bits: int, acc_bits: int,
         stats: dict[str, LayerStats]) -> _IntT:
    """Residual add at the finer scale, both operands rescaled by mantissa/shift multipliers."""
    s = torch.minimum(a.s, b.s)  # the finer scale, per channel (broadcast shapes kept)
    qa = _apply_multiplier(a.q, *quantize_multiplier(a.s / s, scale_bits))
    qb = _apply_multiplier(b.q, *quantize_multiplier(b.s / s, scale_bits))
    return _IntT(_saturate(name, qa + qb, acc_bits, stats), s)


def _pool(fn: Callable[..., Tensor], x: _IntT, avg_div: int | None) -> _IntT:
    x = _IntT(x.q, _chan_scale(_per_channel(x), x.q.dim()), x.src)
    q = fn(x.q.double())
    if avg_div is None:
        return _IntT(q.long(), x.s, x.src)
    return _IntT(torch.round(q * avg_div).long(), x.s / avg_div, x.src)  # exact sums


_POOL_1D = (nn.AvgPool1d, nn.AdaptiveAvgPool1d, nn.MaxPool1d)


def _avg_div(mod: nn.Module, shape: torch.Size) -> int:
    """The number of inputs every window of the average pool ``mod`` (1-D or 2-D) divides by,
    so that ``round(avg * div)`` is the exact integer window sum; ValueError where windows
    differ in size (uneven adaptive windows, excluded padding, partial ceil-mode windows)."""
    nd = 1 if isinstance(mod, _POOL_1D) else 2
    sizes = tuple(int(d) for d in shape[-nd:])
    kind = type(mod).__name__
    if isinstance(mod, nn.AdaptiveAvgPool1d | nn.AdaptiveAvgPool2d):
        out = _ntuple(mod.output_size, nd)
        outs = tuple(o if o is not None else d for o, d in zip(out, sizes))
        if any(d % o for d, o in zip(sizes, outs)):
            raise ValueError(f"{kind} {mod.output_size} on {'x'.join(map(str, sizes))}: "
                             "windows of unequal size")
        return _prod(d // o for d, o in zip(sizes, outs))
    k = _ntuple(mod.kernel_size, nd)
    if mod.padding not in (0, (0,) * nd) and not mod.count_include_pad:
        raise ValueError(f"{kind} with padding and count_include_pad=False is not supported")
    if mod.ceil_mode:
        probe = torch.zeros(1, 1, *sizes)
        floor = copy.copy(mod)
        floor.ceil_mode = False
        if mod(probe).shape != floor(probe).shape:
            raise ValueError(f"{kind} with ceil_mode=True on {'x'.join(map(str, sizes))} has "
                             "partial windows (unequal sizes); not supported")
    override = getattr(mod, "divisor_override", None)
    return int(override) if override else _prod(k)


def _ntuple(v: Any, n: int) -> tuple[Any, ...]:
    return tuple(v) if isinstance(v, tuple | list) else (v,) * n


def _prod(values: Any) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


def _reshape(x: _IntT, fn: Callable[[Tensor], Tensor]) -> _IntT:
    q = fn(x.q)
    if x.s.numel() == 1:
        return _IntT(q, x.s, x.src)
    s = fn(x.s.expand((1, *x.q.shape[1:])).contiguous())
    return _IntT(q, s, x.src)


def _dequant(out: Any) -> Any:
    if isinstance(out, _IntT):
        return out.value().float()
    if isinstance(out, tuple | list):
        return type(out)(_dequant(o) for o in out)
    return out

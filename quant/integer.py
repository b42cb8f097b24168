"""Integer-only export of a symmetric fake-quantized model (LLSQ Section 3.4-3.5, Eq. 3-6).

Layout: grids and multipliers in quant/grids.py, the in-place projections of the fake-quant model
in quant/projection.py (re-exported here), a deployable program in quant/deploy.py, ONNX in
quant/onnx_export.py.

``to_integer(model)`` turns a model built from :class:`~quant.modules.QuantConv2d`,
:class:`~quant.modules.QuantLinear` and :class:`~quant.modules.QuantAct` (LLSQ/LLSQF, or any
recipe whose quantizers put values on a uniform grid ``x = step * q``, q an integer in
``[qmin, qmax]``) into an :class:`IntegerModel` that runs inference on int64 tensors holding
integer values. Every tensor between the input quantizer and the output is a pair (integer
tensor q, real per-channel scale s) with value ``s * q``; the scales are compile-time constants,
only the integers flow at run time.

Per layer (one output channel; Eq. 3-6):

* weights: the eval-mode codes ``q_w`` of the weight quantizer, scale ``alpha_w``;
* BN that directly follows a conv/linear is folded (Eq. 5): ``alpha_w^ = zeta alpha_w``,
  ``b^ = (b - mu) zeta + beta``, ``zeta = gamma / sqrt(var + eps)``; the weight codes do not
  change. A BN elsewhere (pre-activation ResNets) becomes a per-channel integer offset at the
  current scale, ``(q + round(c / (zeta s)), zeta s)``;
* bias: ``q_b = clamp(round(b^ / (alpha_a alpha_w^)), -2^(kb-1), 2^(kb-1) - 1)`` (Eq. 6), kb =
  ``bias_bits``; clipped biases are counted in ``bias_clipped`` (the paper fine-tunes after
  this step, Section 4.2);
* accumulator: ``acc = q_b + sum_k q_a[k] q_w[k]`` in an ``acc_bits`` two's-complement register
  that SATURATES. ``accumulate="sequential"`` (default) adds the products one at a time in
  im2col order (c, r, s) starting from the bias, as a MAC unit does, and clamps after every
  addition; ``"final"`` clamps only the finished sum. An output that saturated at least once
  counts once in ``overflow_count``; ``acc_bits_needed`` is the width that would have held
  every partial sum seen (no saturation);
* requantization where the fake-quant model quantizes (the next layer's input quantizer or a
  ``QuantAct``): ``q_o = clamp(round(M q), qmin, qmax)`` with ``M = s / step_o`` stored as an
  integer mantissa of ``scale_bits`` bits and a shift, ``M ~ m 2^-shift`` (Eq. 6), or as a pure
  shift (``pow2_scales=True``); rounding is half-up, ``(q m + 2^(shift-1)) >> shift``.

ReLU, max/avg pooling, flatten/view, dropout (identity) and residual adds run on the integers;
an add rescales both operands to the finer of the two scales with the same mantissa/shift
multipliers and saturates to ``acc_bits``. The only float operations are the quantization of
the real input by the first quantizer and the dequantization of the final output (``s * q``).

The fake-quant model models neither the bias clamp nor the quantized multipliers.
:func:`quantize_biases_`, :func:`quantize_scales_` and :func:`project_to_integer_` move its
biases (BN beta) and BN gamma onto exactly what this export computes, for the projected
fine-tune of LLSQ Section 4.2 (:func:`quant.export.finetune_for_integer`).
"""

from __future__ import annotations

import copy
import logging
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from quant.grids import (
    Grid,
    _act_grid,
    _apply_multiplier,
    _bits_for,
    _weight_codes,
    quantize_multiplier,
)
from quant.methods.base import Quantizer
from quant.modules import QuantAct, QuantConv2d, QuantLinear

__all__ = [
    "Grid",
    "IntegerModel",
    "LayerStats",
    "project_to_integer_",
    "quantize_biases_",
    "quantize_multiplier",
    "quantize_scales_",
    "to_integer",
]

log = logging.getLogger(__name__)

Accumulate = Literal["sequential", "final"]
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


@dataclass(slots=True)
class _LayerPlan:
    """Compile-time integer parameters of one conv/linear."""

    codes: Tensor  # int64 weight codes
    w_scale: Tensor  # (N,) alpha_w^ (BN folded, sign kept)
    bias_real: Tensor  # (N,) b^ (float64)
    in_grid: Grid | None  # input quantizer grid (None: input already on a grid)
    info: dict[str, Any] = field(default_factory=dict)
    s_acc: Tensor | None = None  # (N,) accumulator LSB, known after the first forward


# ---- tracing ----------------------------------------------------------------------------
class _LeafTracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, QuantConv2d | QuantLinear | QuantAct | Quantizer):
            return True
        return super().is_leaf_module(m, qualname)


_RELU_FNS = {F.relu, torch.relu}
_ADD_FNS = {operator.add, torch.add, operator.iadd}
_RESHAPE_METHODS = {"view", "reshape", "flatten"}


class IntegerModel(nn.Module):
    """Integer-only inference for a fake-quantized model (see the module docstring).

    ``forward(x)`` takes the real input and returns the dequantized output (float32).
    Attributes after forward passes (cumulative until :meth:`reset_stats`):
    ``overflow_count`` (outputs whose accumulator saturated), ``acc_bits_needed`` (max over
    layers), ``stats`` (:class:`LayerStats` per conv/linear, residual add and stand-alone BN
    node). ``bias_clipped`` counts biases that
    did not fit ``bias_bits``; :meth:`describe` lists the integer formats per layer.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        acc_bits: int,
        bias_bits: int,
        scale_bits: int,
        accumulate: Accumulate,
        pow2_scales: bool,
        bias_frac_bits: int = 0,
    ) -> None:
        super().__init__()
        self.acc_bits, self.bias_bits, self.scale_bits = acc_bits, bias_bits, scale_bits
        self.bias_frac_bits = bias_frac_bits
        self.accumulate, self.pow2_scales = accumulate, pow2_scales
        model = copy.deepcopy(model).eval()
        if isinstance(model, QuantConv2d | QuantLinear | QuantAct):
            model = nn.Sequential(model)  # the tracer only keeps children as leaves
        self._model = model
        self._graph = _LeafTracer().trace(self._model)
        self._mods = dict(self._model.named_modules())
        self._folded: dict[str, nn.BatchNorm2d | nn.BatchNorm1d] = {}  # layer -> BN folded in
        self._alias: dict[str, str] = {}  # folded BN node -> layer node
        self._folded_names: dict[str, str] = {}  # layer -> qualified name of its folded BN
        self._find_bn_folds()
        self._plans: dict[str, _LayerPlan] = {}
        self._act_grids: dict[str, Grid] = {}
        # layer -> (real, quantized) requantization multipliers per output channel, or None
        # when the layer's output is requantized twice with different multipliers
        self._multipliers: dict[str, tuple[Tensor, Tensor] | None] = {}
        self._warned_clip = False
        self.stats: dict[str, LayerStats] = {}
        self._compile()

    # -- compile time --------------------------------------------------------------------
    def _find_bn_folds(self) -> None:
        for node in self._graph.nodes:
            if node.op != "call_module":
                continue
            mod = self._mods[node.target]
            if not isinstance(mod, nn.BatchNorm2d | nn.BatchNorm1d):
                continue
            src = node.args[0]
            if (isinstance(src, fx.Node) and src.op == "call_module"
                    and isinstance(self._mods[src.target], QuantConv2d | QuantLinear)
                    and len(src.users) == 1 and src.target not in self._folded):
                self._folded[src.target] = mod
                self._folded_names[src.target] = node.target
                self._alias[node.name] = src.name

    def _compile(self) -> None:
        for node in self._graph.nodes:
            if node.op != "call_module":
                continue
            mod = self._mods[node.target]
            where = f"layer {node.target!r}"
            if isinstance(mod, QuantConv2d | QuantLinear):
                if isinstance(mod, QuantConv2d) and mod.padding_mode != "zeros":
                    raise ValueError(f"{where}: padding_mode={mod.padding_mode!r}; only 'zeros'")
                codes, w_scale = _weight_codes(mod, where)
                n_out = codes.shape[0]
                bias = (mod.bias.detach().double() if mod.bias is not None
                        else torch.zeros(n_out, dtype=torch.float64))
                bn = self._folded.get(node.target)
                if bn is not None:  # Eq. 5
                    zeta = bn.weight.detach().double() / torch.sqrt(
                        bn.running_var.double() + bn.eps)
                    w_scale = w_scale * zeta
                    bias = (bias - bn.running_mean.double()) * zeta + bn.bias.detach().double()
                iq = mod.input_quantizer
                grid = None if iq is None else _act_grid(iq, where + " input quantizer")
                self._plans[node.target] = _LayerPlan(codes, w_scale, bias, grid, {
                    "w_bits": mod.weight_bits, "a_bits": mod.act_bits, "bn_folded": bn is not None,
                    "w_code_range": (int(codes.min()), int(codes.max()))})
                self.stats[node.target] = LayerStats()
            elif isinstance(mod, QuantAct):
                self._act_grids[node.target] = _act_grid(mod.quantizer, where)

    # -- run time ------------------------------------------------------------------------
    def reset_stats(self) -> None:
        """Zero the overflow counters and accumulator ranges."""
        for k in self.stats:
            self.stats[k] = LayerStats()

    @property
    def bias_clipped(self) -> int:
        """Biases (over all layers) that saturated at ``bias_bits`` in the last forward."""
        return sum(p.info.get("bias_clipped", 0) for p in self._plans.values())

    @property
    def overflow_count(self) -> int:
        return sum(s.overflows for s in self.stats.values())

    @property
    def acc_bits_needed(self) -> int:
        return max((s.acc_bits_needed for s in self.stats.values() if s.outputs), default=0)

    def describe(self) -> list[dict[str, Any]]:
        """One row per conv/linear: bits, folded BN, bias clipping, accumulator statistics."""
        rows = []
        for name, plan in self._plans.items():
            st = self.stats[name]
            rows.append({"layer": name, **plan.info, "acc_bits": self.acc_bits,
                         "acc_bits_needed": st.acc_bits_needed if st.outputs else None,
                         "overflows": st.overflows, "outputs": st.outputs})
        return rows

    def _sat(self) -> tuple[int, int]:
        return -(2 ** (self.acc_bits - 1)), 2 ** (self.acc_bits - 1) - 1

    def _requant(self, t: _IntT | Tensor, grid: Grid) -> _IntT:
        """Real input -> codes, or integer tensor -> codes on ``grid`` via mantissa/shift."""
        if isinstance(t, Tensor):
            return _IntT(grid.encode(t), torch.tensor(grid.step, dtype=torch.float64))
        m = t.s / grid.step
        mant, shift = quantize_multiplier(m, self.scale_bits, self.pow2_scales)
        if t.src is not None:
            self._record_multiplier(t.src, t.q, m, mant.double() * torch.exp2(-shift.double()))
        q = _apply_multiplier(t.q, mant, shift).clamp(grid.qmin, grid.qmax)
        return _IntT(q, torch.tensor(grid.step, dtype=torch.float64))

    def _record_multiplier(self, src: str, q: Tensor, real: Tensor, quant: Tensor) -> None:
        """Remember the per-channel multipliers (real, quantized) applied to ``src``'s output;
        None if they are not per channel or ``src`` is requantized twice differently."""
        try:
            rec = (_per_channel(_IntT(q, real)), _per_channel(_IntT(q, quant)))
        except ValueError:  # scales mixed within a channel: no per-channel correction exists
            self._multipliers[src] = None
            return
        if src in self._multipliers:
            old = self._multipliers[src]
            if old is None or not torch.equal(old[1], rec[1]):
                self._multipliers[src] = None
                return
        self._multipliers[src] = rec

    def _accumulate(self, name: str, cols: Tensor, w: Tensor, qb: Tensor) -> Tensor:
        """Saturating MACs. cols (B, K, L) int64 inputs, w (N, K) codes, qb (N,) -> (B, N, L)."""
        lo, hi = self._sat()
        st = self.stats[name]
        if self.accumulate == "final":
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
                sat = qb[ni].clone()
                for k in range(cols.shape[1]):
                    sat.add_(w[ni, k] * cols[bi, k, li]).clamp_(lo, hi)
                acc[bi, ni, li] = sat
        st.outputs += acc.numel()
        st.overflows += int(over.sum())
        st.acc_min, st.acc_max = min(st.acc_min, amin), max(st.acc_max, amax)
        return acc

    def _layer(self, name: str, mod: QuantConv2d | QuantLinear, x: _IntT | Tensor) -> _IntT:
        plan = self._plans[name]
        if plan.in_grid is not None:
            x = self._requant(x, plan.in_grid)
        elif isinstance(x, Tensor):
            raise ValueError(f"layer {name!r}: real-valued input and no input quantizer; "
                             "integer-only export needs every layer input quantized")
        s_in = x.s.flatten()
        s_acc = s_in[0] * plan.w_scale if bool((s_in == s_in[0]).all()) else None
        if s_acc is None:
            raise ValueError(f"layer {name!r}: input scale is per-channel; insert a quantizer "
                             "(QuantAct or input_quantizer) before this layer")
        f = self.bias_frac_bits  # bias grid alpha_a alpha_w^ / 2^f; products shifted left f
        s_acc = s_acc / 2**f
        lim = 2 ** (self.bias_bits - 1)
        qb_real = torch.round(plan.bias_real / s_acc)
        plan.info["bias_clipped"] = int(((qb_real < -lim) | (qb_real > lim - 1)).sum())
        plan.s_acc = s_acc
        qb = qb_real.clamp(-lim, lim - 1).long()  # Eq. 6
        if isinstance(mod, QuantConv2d):
            bsz, _, h, w_in = x.q.shape
            kh, kw = mod.kernel_size
            ho = (h + 2 * mod.padding[0] - mod.dilation[0] * (kh - 1) - 1) // mod.stride[0] + 1
            wo = (w_in + 2 * mod.padding[1] - mod.dilation[1] * (kw - 1) - 1) // mod.stride[1] + 1
            cols = F.unfold(x.q.double(), mod.kernel_size, mod.dilation, mod.padding,
                            mod.stride).long()  # (B, C*kh*kw, L), im2col order (c, r, s)
            g = mod.groups
            n_out = plan.codes.shape[0]
            kg = cols.shape[1] // g
            wc = plan.codes.reshape(n_out, -1) << f
            parts = [self._accumulate(name, cols[:, i * kg:(i + 1) * kg],
                                      wc[i * n_out // g:(i + 1) * n_out // g],
                                      qb[i * n_out // g:(i + 1) * n_out // g]) for i in range(g)]
            acc = torch.cat(parts, 1).view(bsz, n_out, ho, wo)
        else:
            lead = x.q.shape[:-1]
            acc = self._accumulate(name, x.q.reshape(-1, x.q.shape[-1], 1), plan.codes << f, qb)
            acc = acc.reshape(*lead, -1)
        sign = torch.sign(s_acc)  # keep scales positive: (q, s) == (-q, -s)
        sign = torch.where(sign == 0, torch.ones_like(sign), sign).long()
        acc = (acc * _chan_scale(sign, acc.dim())).clamp(*self._sat())
        return _IntT(acc, _chan_scale(s_acc.abs(), acc.dim()), name)

    def _saturate(self, name: str, v: Tensor) -> Tensor:
        """Clamp a vector-unit result (BN offset, residual add) to ``acc_bits``; count it."""
        lo, hi = self._sat()
        st = self.stats.setdefault(name, LayerStats())
        st.outputs += v.numel()
        st.overflows += int(((v < lo) | (v > hi)).sum())
        st.acc_min, st.acc_max = min(st.acc_min, int(v.min())), max(st.acc_max, int(v.max()))
        return v.clamp(lo, hi)

    def _bn(self, name: str, bn: nn.Module, x: _IntT) -> _IntT:
        """Stand-alone BN: per-channel scale change and integer offset (pre-activation nets)."""
        zeta = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
        c = bn.bias.detach().double() - bn.running_mean.double() * zeta
        s_new = _per_channel(x) * zeta
        off = torch.round(c / s_new).long()
        sign = torch.where(s_new < 0, -1, 1).long()
        q = self._saturate(name, x.q + _chan_scale(off, x.q.dim())) * _chan_scale(sign, x.q.dim())
        return _IntT(q, _chan_scale(s_new.abs(), x.q.dim()))

    def _add(self, name: str, a: _IntT, b: _IntT) -> _IntT:
        s = torch.minimum(a.s, b.s)  # the finer scale, per channel (broadcast shapes kept)
        qa = _apply_multiplier(a.q, *quantize_multiplier(a.s / s, self.scale_bits))
        qb = _apply_multiplier(b.q, *quantize_multiplier(b.s / s, self.scale_bits))
        return _IntT(self._saturate(name, qa + qb), s)

    def _pool(self, fn: Callable[..., Tensor], x: _IntT, avg_div: int | None) -> _IntT:
        x = _IntT(x.q, _chan_scale(_per_channel(x), x.q.dim()), x.src)
        q = fn(x.q.double())
        if avg_div is None:
            return _IntT(q.long(), x.s, x.src)
        return _IntT(torch.round(q * avg_div).long(), x.s / avg_div, x.src)  # exact sums

    def _call_module(self, node: fx.Node, mod: nn.Module, args: list[Any]) -> Any:
        x = args[0]
        if isinstance(mod, QuantConv2d | QuantLinear):
            return self._layer(node.target, mod, x)
        if isinstance(mod, QuantAct):
            if mod.pre is not None:
                x = self._call_module(node, mod.pre, [x])
            return self._requant(x, self._act_grids[node.target])
        if isinstance(x, Tensor):
            return mod(x)  # still real-valued (before the first quantizer)
        if isinstance(mod, nn.BatchNorm2d | nn.BatchNorm1d):
            return x if node.name in self._alias else self._bn(node.name, mod, x)
        if isinstance(mod, nn.ReLU):
            return _IntT(x.q.clamp_min(0), x.s, x.src)
        if isinstance(mod, nn.Dropout | nn.Identity):
            return x
        if isinstance(mod, nn.Flatten):
            return self._reshape(x, lambda t: t.flatten(mod.start_dim, mod.end_dim))
        if isinstance(mod, nn.MaxPool2d):
            return self._pool(mod, x, None)
        if isinstance(mod, nn.AvgPool2d | nn.AdaptiveAvgPool2d):
            div = _avg_div(mod, x.q.shape)
            return self._pool(lambda t: mod(t), x, div)
        raise ValueError(f"module {node.target!r} ({type(mod).__name__}) has no integer "
                         "implementation; supported: QuantConv2d, QuantLinear, QuantAct, "
                         "BatchNorm, ReLU, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Flatten")

    @staticmethod
    def _reshape(x: _IntT, fn: Callable[[Tensor], Tensor]) -> _IntT:
        q = fn(x.q)
        if x.s.numel() == 1:
            return _IntT(q, x.s, x.src)
        s = fn(x.s.expand((1, *x.q.shape[1:])).contiguous())
        return _IntT(q, s, x.src)

    def forward(self, x: Tensor) -> Tensor:
        env: dict[str, Any] = {}

        def load(a: Any) -> Any:
            return fx.node.map_arg(a, lambda n: env[n.name])

        out: Any = None
        for node in self._graph.nodes:
            args, kwargs = load(node.args), load(node.kwargs)
            if node.op == "placeholder":
                env[node.name] = x
            elif node.op == "get_attr":
                raise ValueError(f"get_attr {node.target!r} is not supported by integer export")
            elif node.op == "call_module":
                env[node.name] = self._call_module(node, self._mods[node.target], list(args))
            elif node.op == "call_function":
                env[node.name] = self._call_function(node, args, kwargs)
            elif node.op == "call_method":
                env[node.name] = self._call_method(node, args, kwargs)
            elif node.op == "output":
                out = args[0]
        if self.bias_clipped and not self._warned_clip:
            self._warned_clip = True
            log.warning("to_integer: %d biases do not fit %d bits and were clipped (Eq. 6); "
                        "fine-tune with them quantized first: quant.export.finetune_for_integer "
                        "(LLSQ Section 4.2)", self.bias_clipped, self.bias_bits)
        return _dequant(out)

    def _call_function(self, node: fx.Node, args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
        f = node.target
        if not any(isinstance(a, _IntT) for a in args):
            return f(*args, **kw)  # shapes, sizes, real pre-quantizer math
        x = args[0]
        if f in _RELU_FNS:
            return _IntT(x.q.clamp_min(0), x.s, x.src)
        if f in _ADD_FNS and len(args) == 2 and all(isinstance(a, _IntT) for a in args):
            return self._add(node.name, args[0], args[1])
        if f is torch.flatten:
            return self._reshape(x, lambda t: torch.flatten(t, *args[1:], **kw))
        if f is F.max_pool2d:
            return self._pool(lambda t: F.max_pool2d(t, *args[1:], **kw), x, None)
        if f is F.adaptive_avg_pool2d:
            mod = nn.AdaptiveAvgPool2d(args[1] if len(args) > 1 else kw["output_size"])
            return self._pool(mod, x, _avg_div(mod, x.q.shape))
        if f is operator.getitem:
            raise ValueError(f"{node.name}: indexing integer tensors is not supported")
        raise ValueError(f"function {getattr(f, '__name__', f)!r} at {node.name} has no integer "
                         "implementation; supported: relu, add, flatten, max_pool2d, "
                         "adaptive_avg_pool2d")

    def _call_method(self, node: fx.Node, args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
        x, rest = args[0], args[1:]
        if not isinstance(x, _IntT):
            return getattr(x, node.target)(*rest, **kw)
        m = node.target
        if m == "size":
            return x.q.size(*rest, **kw)
        if m in _RESHAPE_METHODS:
            return self._reshape(x, lambda t: getattr(t, m)(*rest, **kw))
        if m == "relu":
            return _IntT(x.q.clamp_min(0), x.s, x.src)
        if m == "contiguous":
            return x
        if m == "add" and len(rest) == 1 and isinstance(rest[0], _IntT):
            return self._add(node.name, x, rest[0])
        raise ValueError(f"method .{m}() at {node.name} has no integer implementation")


def _avg_div(mod: nn.Module, shape: torch.Size) -> int:
    if isinstance(mod, nn.AdaptiveAvgPool2d):
        out = mod.output_size if isinstance(mod.output_size, tuple) else (mod.output_size,) * 2
        h, w = shape[-2:]
        oh, ow = (o if o is not None else d for o, d in zip(out, (h, w)))
        if h % oh or w % ow:
            raise ValueError(f"AdaptiveAvgPool2d {out} on {h}x{w}: windows of unequal size")
        return (h // oh) * (w // ow)
    k = mod.kernel_size if isinstance(mod.kernel_size, tuple) else (mod.kernel_size,) * 2
    if mod.padding not in (0, (0, 0)) and not mod.count_include_pad:
        raise ValueError("AvgPool2d with padding and count_include_pad=False is not supported")
    return k[0] * k[1]


def _dequant(out: Any) -> Any:
    if isinstance(out, _IntT):
        return out.value().float()
    if isinstance(out, tuple | list):
        return type(out)(_dequant(o) for o in out)
    return out


def to_integer(
    model: nn.Module,
    acc_bits: int = 16,
    bias_bits: int = 8,
    scale_bits: int = 8,
    *,
    accumulate: Accumulate = "sequential",
    pow2_scales: bool = False,
    bias_frac_bits: int = 0,
) -> IntegerModel:
    """Compile ``model`` (a fake-quantized model, not mutated) to integer-only inference.

    The defaults are LLSQ's accelerator formats (16-bit accumulator, 8-bit bias and scaling
    factors, Section 4.2-4.3). An 8-bit bias clips on most trained models (the paper's Fig. 4;
    a warning says how many), so compile the output of
    :func:`quant.export.finetune_for_integer` (the paper's fine-tune with quantized bias and
    scales), which then agrees with its fake-quant twin up to rounding ties.

    Args:
        acc_bits: accumulator width; sums saturate at ``[-2^(b-1), 2^(b-1)-1]``.
        bias_bits: k_b of Eq. 6, bits of the bias at scale ``alpha_a alpha_w^``.
        scale_bits: bits of the requantization mantissa (Eq. 6 scale quantization).
        accumulate: ``"sequential"`` (saturate after every MAC) or ``"final"`` (saturate once).
        pow2_scales: requantize with pure shifts (mantissa 1) instead of mantissa + shift.
        bias_frac_bits: f >= 0 extra fraction bits of the accumulator: the bias grid is
            ``alpha_a alpha_w^ / 2^f`` and every product enters shifted left by f. f = 0 is
            Eq. 6 exactly; at 2 bits its bias rounding (half an accumulator LSB) is comparable
            to the output step, and a few fraction bits remove that error (costing f
            accumulator bits).
    """
    for fname, v, lo, hi in (("acc_bits", acc_bits, 2, 62), ("bias_bits", bias_bits, 2, 62),
                             ("scale_bits", scale_bits, 1, 31),
                             ("bias_frac_bits", bias_frac_bits, 0, 16)):
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ValueError(f"{fname}={v!r} must be an int in [{lo}, {hi}]")
    if accumulate not in ("sequential", "final"):
        raise ValueError(f"accumulate={accumulate!r}; allowed: 'sequential', 'final'")
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be an nn.Module, got {type(model)!r}")
    return IntegerModel(model, acc_bits=acc_bits, bias_bits=bias_bits, scale_bits=scale_bits,
                        accumulate=accumulate, pow2_scales=bool(pow2_scales),
                        bias_frac_bits=bias_frac_bits)


# the projections live in quant/projection.py (they compile with to_integer above)
from quant.projection import (  # noqa: E402
    project_to_integer_,
    quantize_biases_,
    quantize_scales_,
)

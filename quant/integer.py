"""Integer-only export of a symmetric fake-quantized model (LLSQ Section 3.4-3.5, Eq. 3-6).

Layout: this module walks the traced graph (:class:`IntegerModel`) and holds :func:`to_integer`;
the compile-time plans (BN folding, weight codes) are in quant/integer_plan.py, the run-time
integer ops (saturating accumulator, residual add, pooling) in quant/integer_ops.py, grids and
multipliers in quant/grids.py, the in-place projections of the fake-quant model in
quant/projection.py (re-exported here), a deployable program in quant/deploy.py, ONNX in
quant/onnx_export.py.

``to_integer(model)`` turns a model built from :class:`~quant.modules.QuantConv1d`,
:class:`~quant.modules.QuantConv2d`, :class:`~quant.modules.QuantLinear` and
:class:`~quant.modules.QuantAct` (LLSQ/LLSQF, or any
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
  addition (a bias wider than the register saturates when it is loaded); ``"final"`` clamps
  only the finished sum. An output that saturated at least once counts once in
  ``overflow_count``; ``acc_bits_needed`` is the width that would have held every partial sum
  seen (no saturation);
* requantization where the fake-quant model quantizes (the next layer's input quantizer or a
  ``QuantAct``): ``q_o = clamp(round(M q), qmin, qmax)`` with ``M = s / step_o`` stored as an
  integer mantissa of ``scale_bits`` bits and a shift, ``M ~ m 2^-shift`` (Eq. 6), or as a pure
  shift (``pow2_scales=True``); rounding is half-up, ``(q m + 2^(shift-1)) >> shift``.

A Conv1d runs as the Conv2d with a 1 x k kernel holding the same weights (same im2col order,
bias and saturation points: identical integers). ReLU, max/avg pooling (1-D and 2-D),
flatten/view, dropout (identity) and residual adds run on the integers;
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
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from quant.grids import Grid, _apply_multiplier, quantize_multiplier
from quant.integer_ops import (
    LayerStats,
    _add,
    _avg_div,
    _bn,
    _conv_linear,
    _dequant,
    _IntT,
    _per_channel,
    _pool,
    _reshape,
)
from quant.integer_plan import _compile_plans, _find_bn_folds, _LayerPlan, _LeafTracer
from quant.modules import QuantAct, QuantConv1d, QuantConv2d, QuantLinear

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
_Layer = QuantConv1d | QuantConv2d | QuantLinear
_LAYERS = (QuantConv1d, QuantConv2d, QuantLinear)
_AVG_POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)

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
        if isinstance(model, (*_LAYERS, QuantAct)):
            model = nn.Sequential(model)  # the tracer only keeps children as leaves
        self._model = model
        self._graph = _LeafTracer().trace(self._model)
        self._mods = dict(self._model.named_modules())
        folds = _find_bn_folds(self._graph, self._mods)
        self._folded = folds.folded  # layer -> BN folded in
        self._alias = folds.alias  # folded BN node -> layer node
        self._folded_names = folds.names  # layer -> qualified name of its folded BN
        plans, act_grids = _compile_plans(self._graph, self._mods, self._folded)
        self._plans: dict[str, _LayerPlan] = plans
        self._act_grids: dict[str, Grid] = act_grids
        # layer -> (real, quantized) requantization multipliers per output channel, or None
        # when the layer's output is requantized twice with different multipliers
        self._multipliers: dict[str, tuple[Tensor, Tensor] | None] = {}
        self._warned_clip = False
        self.stats: dict[str, LayerStats] = {name: LayerStats() for name in self._plans}

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

    def _layer(self, name: str, mod: _Layer, x: _IntT | Tensor) -> _IntT:
        plan = self._plans[name]
        if plan.in_grid is not None:
            x = self._requant(x, plan.in_grid)
        elif isinstance(x, Tensor):
            raise ValueError(f"layer {name!r}: real-valued input and no input quantizer; "
                             "integer-only export needs every layer input quantized")
        return _conv_linear(name, mod, plan, x, acc_bits=self.acc_bits, bias_bits=self.bias_bits,
                            bias_frac_bits=self.bias_frac_bits, accumulate=self.accumulate,
                            stats=self.stats)

    def _call_module(self, node: fx.Node, mod: nn.Module, args: list[Any]) -> Any:
        x = args[0]
        if isinstance(mod, _LAYERS):
            return self._layer(node.target, mod, x)
        if isinstance(mod, QuantAct):
            if mod.pre is not None:
                x = self._call_module(node, mod.pre, [x])
            return self._requant(x, self._act_grids[node.target])
        if isinstance(x, Tensor):
            return mod(x)  # still real-valued (before the first quantizer)
        if isinstance(mod, nn.BatchNorm2d | nn.BatchNorm1d):
            if node.name in self._alias:
                return x
            return _bn(node.name, mod, x, self.acc_bits, self.stats)
        if isinstance(mod, nn.ReLU):
            return _IntT(x.q.clamp_min(0), x.s, x.src)
        if isinstance(mod, nn.Dropout | nn.Identity):
            return x
        if isinstance(mod, nn.Flatten):
            return _reshape(x, lambda t: t.flatten(mod.start_dim, mod.end_dim))
        if isinstance(mod, nn.MaxPool1d | nn.MaxPool2d):
            return _pool(mod, x, None)
        if isinstance(mod, _AVG_POOLS):
            div = _avg_div(mod, x.q.shape)
            return _pool(lambda t: mod(t), x, div)
        raise ValueError(f"module {node.target!r} ({type(mod).__name__}) has no integer "
                         "implementation; supported: QuantConv1d, QuantConv2d, QuantLinear, "
                         "QuantAct, BatchNorm, ReLU, MaxPool1d/2d, AvgPool1d/2d, "
                         "AdaptiveAvgPool1d/2d, Flatten")

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
            return _add(node.name, args[0], args[1], self.scale_bits, self.acc_bits,
                        self.stats)
        if f is torch.flatten:
            return _reshape(x, lambda t: torch.flatten(t, *args[1:], **kw))
        if f is F.max_pool2d or f is F.max_pool1d:
            return _pool(lambda t: f(t, *args[1:], **kw), x, None)
        if f is F.adaptive_avg_pool2d or f is F.adaptive_avg_pool1d:
            cls = nn.AdaptiveAvgPool2d if f is F.adaptive_avg_pool2d else nn.AdaptiveAvgPool1d
            mod = cls(args[1] if len(args) > 1 else kw["output_size"])
            return _pool(mod, x, _avg_div(mod, x.q.shape))
        if f is operator.getitem:
            raise ValueError(f"{node.name}: indexing integer tensors is not supported")
        raise ValueError(f"function {getattr(f, '__name__', f)!r} at {node.name} has no integer "
                         "implementation; supported: relu, add, flatten, max_pool1d/2d, "
                         "adaptive_avg_pool1d/2d")

    def _call_method(self, node: fx.Node, args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
        x, rest = args[0], args[1:]
        if not isinstance(x, _IntT):
            return getattr(x, node.target)(*rest, **kw)
        m = node.target
        if m == "size":
            return x.q.size(*rest, **kw)
        if m in _RESHAPE_METHODS:
            return _reshape(x, lambda t: getattr(t, m)(*rest, **kw))
        if m == "relu":
            return _IntT(x.q.clamp_min(0), x.s, x.src)
        if m == "contiguous":
            return x
        if m == "add" and len(rest) == 1 and isinstance(rest[0], _IntT):
            return _add(node.name, x, rest[0], self.scale_bits, self.acc_bits, self.stats)
        raise ValueError(f"method .{m}() at {node.name} has no integer implementation")


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


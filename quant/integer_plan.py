"""Compile time of the integer-only export (:func:`quant.integer.to_integer`): the traced graph,
the BatchNorms folded into the conv/linear before them (LLSQ Eq. 5) and one
:class:`_LayerPlan` per conv/linear (weight codes, scales, real bias) plus the grid of every
``QuantAct``. Nothing here runs per input; quant/integer_ops.py does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, fx, nn

from quant.grids import Grid, _act_grid, _weight_codes
from quant.methods.base import Quantizer
from quant.modules import QuantAct, QuantConv1d, QuantConv2d, QuantLinear, is_quant_module

__all__: list[str] = []

_BN = nn.BatchNorm2d | nn.BatchNorm1d
_LAYERS = (QuantConv1d, QuantConv2d, QuantLinear)


@dataclass(slots=True)
class _LayerPlan:
    """Compile-time integer parameters of one conv/linear."""

    codes: Tensor  # int64 weight codes
    w_scale: Tensor  # (N,) alpha_w^ (BN folded, sign kept)
    bias_real: Tensor  # (N,) b^ (float64)
    in_grid: Grid | None  # input quantizer grid (None: input already on a grid)
    info: dict[str, Any] = field(default_factory=dict)
    s_acc: Tensor | None = None  # (N,) accumulator LSB, known after the first forward


class _LeafTracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if is_quant_module(m) or isinstance(m, Quantizer):
            return True
        return super().is_leaf_module(m, qualname)


@dataclass(slots=True)
class _BNFolds:
    """BatchNorms folded into the conv/linear before them (the only user of its output)."""

    folded: dict[str, nn.BatchNorm2d | nn.BatchNorm1d] = field(default_factory=dict)  # layer -> BN
    names: dict[str, str] = field(default_factory=dict)  # layer -> qualified name of its BN
    alias: dict[str, str] = field(default_factory=dict)  # folded BN node -> layer node


def _find_bn_folds(graph: fx.Graph, mods: dict[str, nn.Module]) -> _BNFolds:
    folds = _BNFolds()
    for node in graph.nodes:
        if node.op != "call_module":
            continue
        mod = mods[node.target]
        if not isinstance(mod, _BN):
            continue
        src = node.args[0]
        if (isinstance(src, fx.Node) and src.op == "call_module"
                and isinstance(mods[src.target], _LAYERS)
                and len(src.users) == 1 and src.target not in folds.folded):
            folds.folded[src.target] = mod
            folds.names[src.target] = node.target
            folds.alias[node.name] = src.name
    return folds


def _compile_plans(graph: fx.Graph, mods: dict[str, nn.Module],
                   folded: dict[str, nn.BatchNorm2d | nn.BatchNorm1d],
                   ) -> tuple[dict[str, _LayerPlan], dict[str, Grid]]:
    """``(plan of every conv/linear, grid of every QuantAct)``, by module name, in graph order."""
    plans: dict[str, _LayerPlan] = {}
    act_grids: dict[str, Grid] = {}
    for node in graph.nodes:
        if node.op != "call_module":
            continue
        mod = mods[node.target]
        where = f"layer {node.target!r}"
        if isinstance(mod, _LAYERS):
            if isinstance(mod, QuantConv1d | QuantConv2d) and mod.padding_mode != "zeros":
                raise ValueError(f"{where}: padding_mode={mod.padding_mode!r}; only 'zeros'")
            codes, w_scale = _weight_codes(mod, where)
            n_out = codes.shape[0]
            bias = (mod.bias.detach().double() if mod.bias is not None
                    else torch.zeros(n_out, dtype=torch.float64))
            bn = folded.get(node.target)
            if bn is not None:  # Eq. 5
                zeta = bn.weight.detach().double() / torch.sqrt(
                    bn.running_var.double() + bn.eps)
                w_scale = w_scale * zeta
                bias = (bias - bn.running_mean.double()) * zeta + bn.bias.detach().double()
            iq = mod.input_quantizer
            grid = None if iq is None else _act_grid(iq, where + " input quantizer")
            plans[node.target] = _LayerPlan(codes, w_scale, bias, grid, {
                "w_bits": mod.weight_bits, "a_bits": mod.act_bits, "bn_folded": bn is not None,
                "w_code_range": (int(codes.min()), int(codes.max()))})
        elif isinstance(mod, QuantAct):
            act_grids[node.target] = _act_grid(mod.quantizer, where)
    return plans, act_grids

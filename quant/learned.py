"""The learned quantizer parameters of a ``quant.train`` run: every 0-dim one (PACT alpha, CReLU
clip, LLSQ activation alpha, LSQ step, QN alpha/beta) recorded per epoch with its optimizer
group, the curve it would follow under its decay alone (:func:`decay_only_curve`, issue 13),
and the PACT/CReLU clipping levels a procedure starts at a value, or freezes (PACT Fig. 1)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from quant import hooks

if TYPE_CHECKING:
    from quant.train_config import TrainConfig

__all__ = ["decay_only_curve"]


def _learned_scalars(model: nn.Module) -> dict[str, float]:
    """Every 0-dim trainable quantizer parameter (PACT alpha, CReLU clip, LLSQ activation alpha,
    LSQ step, QN alpha/beta) by qualified name: their per-epoch trajectories go to metrics."""
    return {f"{qn}.{pn}": float(p.detach()) for qn, q in hooks.quantizers(model)
            for pn, p in q.named_parameters(recurse=False) if p.dim() == 0}


def _scalar_groups(model: nn.Module) -> dict[str, str]:
    """The optimizer group (`quant.hooks.param_groups`: weights | clip | scale) of every learned
    scalar of `_learned_scalars`, so `decay_only_curve` applies the decay that group gets."""
    return {f"{qn}.{pn}": str(q.param_group()) for qn, q in hooks.quantizers(model)
            for pn, p in q.named_parameters(recurse=False) if p.dim() == 0}


def decay_only_curve(metrics: Mapping[str, Any], param: str) -> list[float]:
    """Per-epoch values that the 0-dim quantizer parameter ``param`` (a key of
    ``metrics["param_curves"]``) would take with NO task gradient: the run's optimizer, learning
    rate schedule and the decay of the parameter's optimizer group (clip decay for clipping
    levels, none for step sizes, weight decay otherwise) acting alone, from the same starting
    value.

    A clipping level that ends near this curve was set by its decay, not learned (issue 13);
    one that ends away from it moved under the task gradient."""
    start = float(metrics["param_start"][param])
    p = nn.Parameter(torch.tensor(start, dtype=torch.float64))
    group = metrics.get("param_group", {}).get(param, "clip")  # runs before the groups: clip
    if group == "scale":  # learned step sizes are never weight-decayed (`param_groups`)
        decay = 0.0
    elif group == "weights":
        decay = metrics["weight_decay"]
    else:
        decay = metrics["clip_decay"] if metrics["clip_decay"] is not None \
            else metrics["weight_decay"]
    if metrics["optimizer"] == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD([p], lr=metrics["lr"],
                                                     momentum=metrics["momentum"],
                                                     weight_decay=decay)
    else:
        opt = torch.optim.Adam([p], lr=metrics["lr"], weight_decay=decay)
    steps = math.ceil(metrics["train_size"] / metrics["batch_size"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=metrics["epochs"] * steps)
    out = []
    for _ in range(metrics["epochs"]):
        for _ in range(steps):
            p.grad = torch.zeros_like(p)
            opt.step()
            sched.step()
        out.append(float(p.detach()))
    return out


def _pact_quantizers(model: nn.Module) -> list[nn.Module]:
    from quant.methods.pact import PACT

    return [m for m in model.modules() if isinstance(m, PACT)]


def _freeze_act_clips(model: nn.Module, config: TrainConfig) -> None:
    """``fixed_act_clip``: PACT clipping levels become constants (not trained).

    This turns PACT into the two baselines of PACT Fig. 1: a clipping activation with a fixed
    level (a number, e.g. 1.0) and ReLU quantized over its full dynamic range (``"max"``).
    """
    pacts = _pact_quantizers(model)
    if not pacts:
        raise ValueError(f"fixed_act_clip={config.fixed_act_clip!r} needs PACT activations; "
                         f"recipe {config.recipe!r} at a_bits={config.a_bits} has none")
    for q in pacts:
        q.alpha.requires_grad_(False)


def _clip_levels(model: nn.Module, *, pact_only: bool) -> list[tuple[nn.Module, nn.Parameter]]:
    """``(quantizer, its clipping level)``: PACT alpha and (unless ``pact_only``) CReLU c."""
    from quant.methods.crelu import CReLUActQuantizer
    from quant.methods.pact import PACT

    out: list[tuple[nn.Module, nn.Parameter]] = []
    for m in model.modules():
        if isinstance(m, PACT):
            out.append((m, m.alpha))
        elif isinstance(m, CReLUActQuantizer) and not pact_only:
            out.append((m, m.clip))
    return out


@torch.no_grad()
def _set_act_clips(model: nn.Module, x: torch.Tensor, value: float | str, *,
                   pact_only: bool = True) -> None:
    """Set clipping levels (PACT alpha; CReLU c unless ``pact_only``): a number, or
    (``"max"``) each layer's largest input on the batch ``x``, layer by layer so that every
    level sees its quantized upstream."""
    clips = _clip_levels(model, pact_only=pact_only)
    if value != "max":
        for _, c in clips:
            c.fill_(float(value))
        return
    for q, level in clips:  # modules() order is forward order for the zoo's sequential models
        seen: list[float] = []

        def record(_m: nn.Module, args: tuple[torch.Tensor, ...], seen: list[float] = seen) -> None:
            seen.append(float(args[0].max()))

        handle = q.register_forward_pre_hook(record)
        try:
            hooks.calibrate(model, x)  # leaves BatchNorm statistics unchanged
        finally:
            handle.remove()
        level.fill_(max(max(seen), 1e-3))

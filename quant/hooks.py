"""Whole-model training helpers: they call the optional hooks of every quantizer in a model.

A training loop built on these looks like::

    groups = param_groups(model, lr=0.1, weight_decay=5e-4, clip_decay=1e-4)
    opt = torch.optim.SGD(groups, momentum=0.9)
    calibrate(model, first_batch)                 # LSQ activation steps, QN k-means on acts
    for epoch in range(epochs):
        on_epoch_start(model, epoch)              # QN temperature T = (epoch + 1) * T0
        for x, y in loader:
            loss = criterion(model(x), y) + regularization_loss(model)   # PACT/CReLU L2
            opt.zero_grad(); loss.backward()
            after_backward(model)                 # LLSQ simulated gradient
            opt.step()
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from quant.methods.base import Quantizer
from quant.procedure import Phase

__all__ = [
    "after_backward",
    "calibrate",
    "on_epoch_start",
    "param_groups",
    "quantizers",
    "regularization_loss",
    "set_phase",
]

_GROUPS = ("weights", "clip", "scale")


def quantizers(model: nn.Module) -> Iterator[tuple[str, Quantizer]]:
    """Yield ``(qualified name, quantizer)`` for every Quantizer in ``model``."""
    for name, m in model.named_modules():
        if isinstance(m, Quantizer):
            yield name, m


def regularization_loss(model: nn.Module) -> Tensor:
    """Sum of every quantizer's ``regularization_loss()`` (a 0-dim tensor, 0 if none)."""
    total: Tensor | None = None
    for _, q in quantizers(model):
        term = q.regularization_loss()
        total = term if total is None else total + term
    if total is None:
        p = next(model.parameters(), None)
        return torch.zeros((), device=None if p is None else p.device)
    return total


def on_epoch_start(model: nn.Module, epoch: int) -> None:
    """Call ``on_epoch_start(epoch)`` on every quantizer (epoch counts from 0)."""
    if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
        raise ValueError(f"epoch={epoch!r} must be an int >= 0")
    epoch = int(epoch)
    for _, q in quantizers(model):
        q.on_epoch_start(epoch)


def after_backward(model: nn.Module) -> None:
    """Call ``after_backward()`` on every quantizer (after loss.backward, before step)."""
    for _, q in quantizers(model):
        q.after_backward()


def calibrate(model: nn.Module, x: Tensor | tuple[Any, ...]) -> Tensor:
    """Run one forward pass on ``x`` in which every quantizer first sees its input.

    Each quantizer's ``calibrate(t)`` is called with the tensor it is about to quantize (the
    weight for weight quantizers, the activation for activation quantizers) and then quantizes
    as usual, so later quantizers calibrate on already-quantized upstream activations, as in
    training. The pass runs under ``no_grad`` in the model's current train/eval mode;
    BatchNorm running statistics are left unchanged. Returns the model output.
    """
    handles = []
    bn_momentum: dict[nn.Module, float | None] = {}

    def pre_hook(mod: nn.Module, args: tuple[Any, ...]) -> None:
        assert isinstance(mod, Quantizer)
        mod.calibrate(args[0].detach())

    for _, q in quantizers(model):
        handles.append(q.register_forward_pre_hook(pre_hook))
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            bn_momentum[m] = m.momentum
            m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch: unchanged
    try:
        with torch.no_grad():
            out = model(*x) if isinstance(x, tuple) else model(x)
    finally:
        for h in handles:
            h.remove()
        for m, mom in bn_momentum.items():
            m.momentum = mom
    return out


def param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.0,
    clip_decay: float | None = None,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups that treat quantizer parameters as their papers say.

    * ``"weights"``: every parameter outside a quantizer, and quantizer parameters whose
      ``param_group()`` is ``"weights"``; weight decay ``weight_decay``.
    * ``"clip"``: clipping levels (PACT alpha, CReLU clamp) in their own group with their own
      L2 coefficient ``clip_decay`` (PACT Section 3.2; Distiller's ``act_clip_decay``);
      ``None`` means ``weight_decay``. If a clip quantizer already adds its L2 through
      ``regularization_loss()`` (a non-zero ``alpha_decay``), its group gets no decay here so
      the penalty is not applied twice.
    * ``"scale"``: learned step sizes (LSQ s, LLSQ alpha): never weight-decayed (a decayed step
      shrinks towards 0 and the quantizer collapses).

    Empty groups are omitted. Each group carries ``"name"`` for logging.
    """
    if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr={lr!r} must be a finite number > 0")
    for field, v in (("weight_decay", weight_decay), ("clip_decay", clip_decay)):
        if v is not None and not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
            raise ValueError(f"{field}={v!r} must be a finite number >= 0")
    buckets: dict[str, list[nn.Parameter]] = {g: [] for g in _GROUPS}
    clip_in_loss: list[nn.Parameter] = []
    seen: set[int] = set()
    for _, q in quantizers(model):
        group = q.param_group()
        if group not in _GROUPS:
            raise ValueError(
                f"{type(q).__name__}.param_group() returned {group!r}; allowed: {_GROUPS}"
            )
        in_loss = float(getattr(q, "alpha_decay", 0.0) or 0.0) > 0.0
        for p in q.parameters(recurse=False):
            if id(p) in seen or not p.requires_grad:
                continue
            seen.add(id(p))
            (clip_in_loss if group == "clip" and in_loss else buckets[group]).append(p)
    for p in model.parameters():
        if id(p) not in seen and p.requires_grad:
            seen.add(id(p))
            buckets["weights"].append(p)
    decay = {
        "weights": weight_decay,
        "clip": weight_decay if clip_decay is None else clip_decay,
        "scale": 0.0,
    }
    groups = [
        {"name": g, "params": buckets[g], "lr": lr, "weight_decay": float(decay[g])}
        for g in _GROUPS
        if buckets[g]
    ]
    if clip_in_loss:
        groups.append({"name": "clip_l2_in_loss", "params": clip_in_loss, "lr": lr,
                       "weight_decay": 0.0})
    return groups


def _weight_and_act_quantizers(model: nn.Module) -> tuple[list[Quantizer], list[Quantizer]]:
    """(weight quantizers, activation quantizers): a layer's ``weight_quantizer`` (and the
    ``weight_quantizers`` of a QuantMultiheadAttention) are weight quantizers; its
    ``input_quantizer``(``s``) and a ``QuantAct``'s ``quantizer`` are activation ones."""
    weights: list[Quantizer] = []
    acts: list[Quantizer] = []
    for m in model.modules():
        for slot, out in (("weight_quantizer", weights), ("input_quantizer", acts),
                          ("quantizer", acts)):
            q = getattr(m, slot, None)
            if isinstance(q, Quantizer):
                out.append(q)
        for slot, out in (("weight_quantizers", weights), ("input_quantizers", acts)):
            table = getattr(m, slot, None)
            if isinstance(table, nn.ModuleDict):
                out += [q for q in table.values() if isinstance(q, Quantizer)]
    return weights, acts


def set_phase(model: nn.Module, phase: Phase) -> None:
    """Switch quantizers on or off and (un)freeze their parameters as ``phase`` says.

    A disabled weight quantizer leaves the latent weights in use; a disabled activation
    quantizer leaves the ReLU (Quantization Networks Sec. 4.1, phase 1: "we disable the
    activation quantization and only train the quantization of the weights"). Frozen
    quantizer parameters get ``requires_grad=False`` (build the optimizer before the first
    call: :func:`param_groups` skips frozen parameters). Buffers are not touched.
    """
    if not isinstance(phase, Phase):
        raise ValueError(f"phase={phase!r} must be a quant.procedure.Phase")
    weights, acts = _weight_and_act_quantizers(model)
    for qs, on, train in ((weights, phase.quantize_weights, phase.train_weight_quantizers),
                          (acts, phase.quantize_acts, phase.train_act_quantizers)):
        for q in qs:
            q.enabled = on
            for p in q.parameters(recurse=False):
                p.requires_grad_(train)

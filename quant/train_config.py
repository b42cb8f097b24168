"""What determines a ``quant.train`` run and what it returns: :class:`TrainConfig` (validated,
saved in the checkpoint and in metrics.json) and :class:`TrainResult`; a recipe's procedure,
from which :func:`quant.train.train` fills every setting left open, is :func:`procedure_of`."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from quant import data as qdata
from quant.checkpoints import _jsonable
from quant.procedure import OPTIMIZERS, Procedure, optimizer_problems

__all__ = ["FLOAT32_MAX", "LIMITS", "TrainConfig", "TrainResult", "procedure_of"]

FLOAT32_MAX = float(torch.finfo(torch.float32).max)
LIMITS = {"epochs": (1, 100_000), "batch_size": (1, 1 << 20), "width": (1, 64),
          "seed": (0, 2**32 - 1), "data_seed": (0, 2**32 - 1)}
"""Allowed (lowest, highest) of the integer settings: past these a run cannot finish or fit in
memory (a million images per step, 64x the channels), or torch cannot take the seed."""


def procedure_of(recipe: str) -> Procedure:
    """The training procedure of ``recipe`` (``quant.get_recipe(recipe).procedure``)."""
    from quant.recipes import get_recipe

    return get_recipe(recipe).procedure


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Everything that determines a run. Saved in the checkpoint and in metrics.json."""

    model: str
    recipe: str
    w_bits: int
    a_bits: int
    epochs: int
    lr: float
    batch_size: int
    seed: int = 0
    first_last_bits: int | None = None
    shortcut_bits: int | None = None
    overrides: Mapping[str, Any] | None = None
    init_from: str | None = None
    data: str = "digits"
    data_root: str | None = None
    data_seed: int = 0
    augment: bool = False
    width: float = 1
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    clip_decay: float | None = None
    fixed_act_clip: float | str | None = None
    grad_clip_norm: float | None = None
    act_clip_init: float | str | None = None
    eval_split: str = "test"

    def __post_init__(self) -> None:
        problems = []
        for name in ("w_bits", "a_bits"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 32:
                problems.append(f"{name}={v!r} (allowed: int 1..32)")
        for name in ("first_last_bits", "shortcut_bits"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)
                                  or not 1 <= v <= 32):
                problems.append(f"{name}={v!r} (allowed: None or int 1..32)")
        for name, (low, high) in LIMITS.items():
            v = getattr(self, name)
            if name == "width":  # the zoo's channel multiplier may be fractional (0.25)
                if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= high:
                    problems.append(f"width={v!r} (allowed: a number in (0, {high}])")
                continue
            if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
                problems.append(f"{name}={v!r} (allowed: int {low}..{high})")
        if not (isinstance(self.lr, int | float) and 0 < self.lr <= FLOAT32_MAX):
            problems.append(f"lr={self.lr!r} (allowed: a number > 0 that float32 holds, "
                            f"<= {FLOAT32_MAX:.3g})")
        problems += optimizer_problems(self)
        if self.eval_split not in ("test", "val"):
            problems.append(f"eval_split={self.eval_split!r} (allowed: test, val)")
        aci = self.act_clip_init
        if aci is not None and aci != "max" and not (
                isinstance(aci, int | float) and not isinstance(aci, bool) and math.isfinite(aci)
                and aci > 0):
            problems.append(f"act_clip_init={aci!r} (allowed: None, 'max' or a number > 0)")
        fac = self.fixed_act_clip
        if fac is not None and fac != "max" and not (
                isinstance(fac, int | float) and not isinstance(fac, bool) and math.isfinite(fac)
                and fac > 0):
            problems.append(f"fixed_act_clip={fac!r} (allowed: None, 'max' or a number > 0)")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer={self.optimizer!r} (allowed: {', '.join(OPTIMIZERS)})")
        if self.data not in qdata.DATASETS:
            problems.append(f"data={self.data!r} (allowed: {', '.join(qdata.DATASETS)})")
        if self.data == "cifar10" and not self.data_root:
            problems.append("data_root=None (cifar10 needs the folder with data_batch_1..5)")
        if problems:
            raise ValueError("invalid training configuration: " + "; ".join(problems))

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["overrides"] = _jsonable(self.overrides)
        return d


@dataclass(frozen=True, slots=True)
class TrainResult:
    """The trained model (eval mode) and the metrics written to ``metrics.json``."""

    model: nn.Module
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def test_accuracy(self) -> float:
        return float(self.metrics["test_accuracy"])

    @property
    def accuracy(self) -> float:
        """Accuracy on the split the run was scored on (``eval_split``: test or val)."""
        return float(self.metrics[f"{self.metrics.get('eval_split', 'test')}_accuracy"])

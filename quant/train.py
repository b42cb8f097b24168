"""Quantization-aware training on data a CPU can run: the Python API and ``python -m quant.train``.

One run, step by step (:func:`train`); every choice left open comes from the recipe's
:class:`~quant.procedure.Procedure` (``quant.get_recipe(recipe).procedure``)::

    torch.manual_seed(seed); model = workloads.zoo.get(name, num_classes, procedure.width)
    model.load_state_dict(fp_checkpoint)          # --init-from: fine-tune a full-precision model
    model = quant.quantize(model, recipe, w_bits, a_bits, ...)   # quantizers see the FP weights
    groups = hooks.param_groups(model, lr, procedure.weight_decay_at(w_bits),
                                procedure.clip_decay); SGD + cosine LR per step
    hooks.calibrate(model, first_batch)           # LSQ steps, QN k-means... (resume: then load)
    clip levels start at procedure.act_clip_init  # "max": each layer's first-batch maximum
    for epoch: reseed(seed, epoch); hooks.set_phase(model, procedure.phase_at(epoch, epochs))
        hooks.on_epoch_start(model, epoch)
        for x, y: loss = CE + hooks.regularization_loss(model); backward;
                  hooks.after_backward(model); clip_grad_norm_(procedure.grad_clip_norm); step
        evaluate; write DIR/checkpoint.pt (atomic)
    write DIR/metrics.json (atomic), with every 0-dim quantizer parameter's per-epoch curve

Reproducibility: the model is initialised under ``torch.manual_seed(seed)`` and every epoch
reseeds torch's global RNG and the loader's shuffle generator from ``(seed, epoch)``. A run is
therefore bit-identical when repeated with the same seed and thread count, and a run resumed from
its checkpoint is bit-identical to one that was never interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from quant import data as qdata
from quant import hooks
from quant.procedure import (
    DIGITS_BATCH_SIZE,
    DIGITS_CLIP_DECAY,
    DIGITS_FP_EPOCHS,
    DIGITS_FP_LR,
    DIGITS_FT_EPOCHS,
    DIGITS_FT_LR,
    Procedure,
)

__all__ = [
    "CHECKPOINT",
    "DIGITS_CLIP_DECAY",
    "METRICS",
    "OneLineErrorParser",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "evaluate",
    "load_run",
    "main",
    "procedure_of",
    "run_name",
    "train",
    "trained_digits_model",
    "trained_digits_result",
]

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
CHECKPOINT_FORMAT = 1
OPTIMIZERS = ("sgd", "adam")
FLOAT32_MAX = float(torch.finfo(torch.float32).max)


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
    width: int = 1
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
        for name, low in (("epochs", 1), ("batch_size", 1), ("width", 1), ("seed", 0),
                          ("data_seed", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                problems.append(f"{name}={v!r} (allowed: int >= {low})")
        if not (isinstance(self.lr, int | float) and 0 < self.lr <= FLOAT32_MAX):
            problems.append(f"lr={self.lr!r} (allowed: a number > 0 that float32 holds, "
                            f"<= {FLOAT32_MAX:.3g})")
        for name in ("momentum", "weight_decay"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                problems.append(f"{name}={v!r} (allowed: finite number >= 0)")
        for name in ("clip_decay", "grad_clip_norm"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                problems.append(f"{name}={v!r} (allowed: None or a finite number >= 0)")
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


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in sorted(v.items())}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return v


def _atomic_write(path: Path, write: Any) -> None:
    """Write through a temporary file in the same folder and ``os.replace`` it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write_json(path: Path, obj: Mapping[str, Any]) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=True) + "\n"
    _atomic_write(path, lambda f: f.write(text.encode()))


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919 + 12_345) % (2**63 - 1)


def _torch_load(path: Path, field: str, fix: str) -> Any:
    """``torch.load`` (tensors only) that turns an unreadable file into one ValueError naming
    ``field``, the file, what is wrong and ``fix`` (a truncated or foreign file raises many
    types: UnpicklingError, RuntimeError from the zip reader, EOFError...)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file ends the same way
        first = (str(err).strip().splitlines() or [""])[0].split(". ")[0][:100]
        reason = f"{type(err).__name__}: {first}" if first else type(err).__name__
        raise ValueError(f"{field}: {path} is not a readable torch checkpoint (truncated or not "
                         f"written by torch.save: {reason}); {fix}") from None


def _read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Model weights from a quant.train run folder, its checkpoint.pt, or a bare state_dict file."""
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT
    if not p.is_file():
        raise FileNotFoundError(f"init_from: no checkpoint at {p} (give a quant.train output "
                                f"folder, its {CHECKPOINT}, or a file holding a state_dict)")
    obj = _torch_load(p, "init_from", "give a quant.train run folder, its checkpoint.pt or a "
                      "torch.save'd state_dict")
    state = obj.get("model_state", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"init_from: {p} holds no state_dict (expected a dict of tensors or a "
                         f"quant.train checkpoint with 'model_state')")
    return state


def _load_float_weights(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load FP weights into the float model; quantizer entries of a quantized source are ignored."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise ValueError(f"init_from: {source} lacks {len(missing)} tensors of the model, e.g. "
                         f"{missing[:3]} (was it trained for another model or width?)")
    bad = [k for k in own if state[k].shape != own[k].shape]
    if bad:
        k = bad[0]
        raise ValueError(f"init_from: {source} has {k} of shape {tuple(state[k].shape)}, the model "
                         f"needs {tuple(own[k].shape)} (another model, width or class count?)")
    model.load_state_dict({k: state[k] for k in own})


def build_model(config: TrainConfig, num_classes: int) -> nn.Module:
    """Zoo model (seeded init) -> FP weights from ``init_from`` -> ``quant.quantize`` by recipe."""
    import workloads.zoo as zoo
    from quant.recipes import quantize

    torch.manual_seed(config.seed)
    model = zoo.get(config.model, num_classes=num_classes, width=config.width)
    if config.init_from is not None:
        _load_float_weights(model, _read_state_dict(config.init_from), config.init_from)
    return quantize(model, config.recipe, w_bits=config.w_bits, a_bits=config.a_bits,
                          first_last_bits=config.first_last_bits,
                          shortcut_bits=config.shortcut_bits,
                          overrides=dict(config.overrides) if config.overrides else None)


@torch.no_grad()
def evaluate(model: nn.Module, dataset: qdata.ImageDataset, *, batch_size: int = 256,
             device: str | torch.device = "cpu") -> tuple[float, float]:
    """``(accuracy in 0..1, mean cross-entropy)`` of ``model`` in eval mode on ``dataset``."""
    was_training = model.training
    model.eval()
    correct, loss_sum = 0, 0.0
    for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(dim=1) == y).sum())
    model.train(was_training)
    n = len(dataset)
    return correct / n, loss_sum / n


def _layer_bits(model: nn.Module) -> list[dict[str, Any]]:
    """Bits of every conv/linear and activation quantizer, as ``workloads.extract`` sees them
    (the bits protocol of docs/CONTRACTS.md; None = full precision)."""
    rows = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d | nn.Linear) or hasattr(m, "act_bits"):
            rows.append({"name": name, "type": type(m).__name__,
                         "weight_bits": getattr(m, "weight_bits", None),
                         "act_bits": getattr(m, "act_bits", None)})
    return rows


def _learned_scalars(model: nn.Module) -> dict[str, float]:
    """Every 0-dim trainable quantizer parameter (PACT alpha, CReLU clip, LLSQ activation alpha,
    LSQ step, QN alpha/beta) by qualified name: their per-epoch trajectories go to metrics."""
    return {f"{qn}.{pn}": float(p.detach()) for qn, q in hooks.quantizers(model)
            for pn, p in q.named_parameters(recurse=False) if p.dim() == 0}


def decay_only_curve(metrics: Mapping[str, Any], param: str) -> list[float]:
    """Per-epoch values that the 0-dim quantizer parameter ``param`` (a key of
    ``metrics["param_curves"]``) would take with NO task gradient: the run's optimizer, learning
    rate schedule and clip decay acting alone, from the same starting value.

    A clipping level that ends near this curve was set by its decay, not learned (issue 13);
    one that ends away from it moved under the task gradient."""
    start = float(metrics["param_start"][param])
    p = nn.Parameter(torch.tensor(start, dtype=torch.float64))
    decay = metrics["clip_decay"] if metrics["clip_decay"] is not None else metrics["weight_decay"]
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


def _prepare(model: nn.Module, config: TrainConfig, train_set: qdata.ImageDataset,
             dev: torch.device) -> None:
    """``hooks.calibrate`` on the run's first batch (fixed by the seed), then the frozen clips."""
    model.train()
    first_x, _ = next(iter(DataLoader(train_set, batch_size=config.batch_size, shuffle=True,
                                      generator=torch.Generator().manual_seed(config.seed))))
    hooks.calibrate(model, first_x.to(dev))
    if config.fixed_act_clip is not None:
        _set_act_clips(model, first_x.to(dev), config.fixed_act_clip)
    elif config.act_clip_init is not None:  # trainable levels, started as the procedure says
        _set_act_clips(model, first_x.to(dev), config.act_clip_init, pact_only=False)


def _make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    groups = hooks.param_groups(model, config.lr, config.weight_decay, config.clip_decay)
    if config.fixed_act_clip is not None:  # frozen PACT levels take no part in the optimizer
        frozen = {id(q.alpha) for q in _pact_quantizers(model)}
        groups = [{**g, "params": [p for p in g["params"] if id(p) not in frozen]}
                  for g in groups]
        groups = [g for g in groups if g["params"]]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    return torch.optim.Adam(groups, lr=config.lr)


def _load_checkpoint(path: Path, config: TrainConfig) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    ckpt = _torch_load(path, "out", "rerun with --no-resume to start over, or use another --out")
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        ckpt = ckpt if isinstance(ckpt, dict) else {}
        raise ValueError(f"{path}: checkpoint format {ckpt.get('format')!r}, this version "
                         f"reads {CHECKPOINT_FORMAT}; use another --out")
    if ckpt["config"] != config.to_json():
        diff = sorted(k for k, v in config.to_json().items() if ckpt["config"].get(k) != v)
        raise ValueError(f"{path}: checkpoint was written for another configuration (differs "
                         f"in {', '.join(diff)}); use another --out or delete it to start over")
    return ckpt


def train(model_name: str, recipe: str, w_bits: int, a_bits: int, *, epochs: int,
          lr: float | None = None, batch_size: int = DIGITS_BATCH_SIZE, seed: int = 0,
          out: str | Path | None = None,
          first_last_bits: int | None = None, shortcut_bits: int | None = None,
          init_from: str | Path | None = None, data: str = "digits",
          device: str = "cpu", data_root: str | Path | None = None,
          overrides: Mapping[str, Any] | None = None, width: int | None = None,
          augment: bool = False, optimizer: str | None = None,
          weight_decay: float | None = None, clip_decay: float | None = None,
          grad_clip_norm: float | None = None, fixed_act_clip: float | str | None = None,
          act_clip_init: float | str | None = None, data_seed: int = 0,
          eval_split: str = "test", resume: bool = True,
          progress: bool = False) -> TrainResult:
    """Train ``model_name`` from the zoo under ``recipe`` at ``w_bits``/``a_bits``.

    The recipe's :class:`~quant.procedure.Procedure` supplies every training choice left None
    here: ``lr`` (its ``lr`` with ``init_from``, ``lr_scratch`` without), ``optimizer``,
    ``weight_decay`` (at ``w_bits``, LSQ Sec. 3.1), ``clip_decay``, ``act_clip_init``
    (where PACT/CReLU clipping levels start: a number or ``"max"``), ``grad_clip_norm``,
    ``width`` (2 for ``wrpn``), and its phases (set at every epoch start,
    :func:`quant.hooks.set_phase`).

    With ``out``, writes ``out/checkpoint.pt`` after every epoch and ``out/metrics.json`` at the
    end (both atomically), and resumes from an existing checkpoint of the same configuration
    (a finished run is reloaded, not retrained); a folder this call created is removed again if
    the run fails. ``fixed_act_clip`` freezes every PACT clipping level at a number or at the
    layer's largest activation on the first batch (``"max"``; ReLU quantized over its dynamic
    range), the baselines of PACT Fig. 1. ``eval_split="val"`` trains on the training split
    minus a held-out validation fifth and scores on that fifth (metrics ``val_accuracy``;
    the test split is not read): the protocol for choosing hyperparameters. Raises ValueError
    for a bad argument or an unusable ``out``, FileNotFoundError for missing data or
    ``init_from`` files, FloatingPointError if the loss becomes non-finite.
    """
    import workloads.zoo as zoo
    from quant.recipes import recipes

    if model_name not in zoo.names():
        raise ValueError(f"model: {model_name!r} is not allowed; use one of "
                         f"{', '.join(zoo.names())}")
    if recipe not in recipes():
        raise ValueError(f"recipe: {recipe!r} is not allowed; use one of {', '.join(recipes())}")
    proc = procedure_of(recipe)
    if lr is None:
        lr = proc.lr if init_from is not None else proc.lr_scratch
    bits_ok = isinstance(w_bits, int) and not isinstance(w_bits, bool)
    config = TrainConfig(
        model=model_name, recipe=recipe, w_bits=w_bits, a_bits=a_bits, epochs=epochs, lr=lr,
        batch_size=batch_size, seed=seed, first_last_bits=first_last_bits,
        shortcut_bits=shortcut_bits, overrides=_jsonable(overrides) if overrides else None,
        init_from=None if init_from is None else str(Path(init_from).resolve()), data=data,
        data_root=None if data_root is None else str(Path(data_root).resolve()),
        data_seed=data_seed,
        augment=augment, width=proc.width if width is None else width,
        optimizer=proc.optimizer if optimizer is None else optimizer, momentum=proc.momentum,
        weight_decay=(proc.weight_decay_at(w_bits) if bits_ok else proc.weight_decay)
        if weight_decay is None else weight_decay,
        clip_decay=proc.clip_decay if clip_decay is None else clip_decay,
        grad_clip_norm=proc.grad_clip_norm if grad_clip_norm is None else grad_clip_norm,
        act_clip_init=proc.act_clip_init if act_clip_init is None else act_clip_init,
        fixed_act_clip=fixed_act_clip,
        eval_split=eval_split)
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device: {device!r} is not allowed; use 'cpu' or 'cuda[:N]'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} is not available on this machine; use 'cpu'")
    out_dir = None if out is None else Path(out)

    expected = zoo.input_shape(model_name)
    fit_split, score_split = ("train", "test") if eval_split == "test" else ("fit", "val")
    train_set = qdata.load(data, fit_split, seed=data_seed, root=data_root, augment=augment,
                           shape=expected)
    test_set = qdata.load(data, score_split, seed=data_seed, root=data_root, shape=expected)
    if train_set.input_shape[0] != expected[0]:
        raise ValueError(f"data: {data!r} has {train_set.input_shape[0]}-channel images, model "
                         f"{model_name!r} expects {expected} (C, H, W)")

    model = build_model(config, train_set.num_classes).to(dev)
    if config.fixed_act_clip is not None:
        _freeze_act_clips(model, config)
    optim = _make_optimizer(config, model)
    steps_per_epoch = math.ceil(len(train_set) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, T_max=epochs * steps_per_epoch)
    history: dict[str, list[float]] = {"train_loss": [], "train_accuracy": [],
                                       "test_accuracy": [], "test_loss": [], "lr": []}
    start_epoch, elapsed, cpu = 0, 0.0, 0.0

    # Calibrate on the first batch even when resuming: some quantizers keep calibration results
    # outside their state_dict (LSQ's auto-detected signedness is a Python attribute), so the
    # module must be prepared exactly as in the fresh run before the checkpoint overwrites it.
    _prepare(model, config, train_set, dev)
    for name, v in _learned_scalars(model).items():  # (a resumed run reloads its own below)
        history[f"start:{name}"] = [v]
    ckpt = None
    if out_dir is not None and resume:
        ckpt = _load_checkpoint(out_dir / CHECKPOINT, config)
    if ckpt is not None:
        model.load_state_dict(ckpt["model_state"])
        optim.load_state_dict(ckpt["optimizer_state"])
        sched.load_state_dict(ckpt["scheduler_state"])
        history, start_epoch = ckpt["history"], ckpt["epoch"]
        elapsed, cpu = ckpt["elapsed_s"], ckpt["cpu_s"]
        log.info("resuming %s from epoch %d", out_dir, start_epoch)
        if start_epoch >= epochs and (out_dir / METRICS).is_file():
            model.eval()
            return TrainResult(model, json.loads((out_dir / METRICS).read_text()))
    created = _make_run_folder(out_dir) if out_dir is not None else []
    try:
        return _fit(model, config, optim, sched, train_set, test_set, dev, out_dir, history,
                    start_epoch, elapsed, cpu, progress)
    except BaseException as exc:
        # "nothing created": a failed run leaves no folder behind (an interrupted one keeps its
        # checkpoint, from which the same command resumes)
        if created and (isinstance(exc, Exception) or not (out_dir / CHECKPOINT).exists()):
            shutil.rmtree(created[0], ignore_errors=True)
        raise


def _make_run_folder(out_dir: Path) -> list[Path]:
    """Create ``out_dir`` (and missing parents) now, so an unusable ``--out`` fails before any
    training; return the folders created, outermost first. ValueError names the reason."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out: {str(out_dir)!r} exists and is not a folder (allowed: a new or "
                         "existing run folder)")
    missing = [p for p in [out_dir, *out_dir.parents] if not p.exists()][::-1]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        if missing:
            shutil.rmtree(missing[0], ignore_errors=True)
        raise ValueError(f"out: cannot write the run folder {str(out_dir)!r} "
                         f"({err.strerror or err}; allowed: a folder you can write)") from None
    return missing


def _fit(model: nn.Module, config: TrainConfig, optim: torch.optim.Optimizer,
         sched: Any, train_set: qdata.ImageDataset, test_set: qdata.ImageDataset,
         dev: torch.device, out_dir: Path | None, history: dict[str, list[float]],
         start_epoch: int, elapsed: float, cpu: float, progress: bool) -> TrainResult:
    """The epochs of :func:`train` from ``start_epoch`` on, then metrics.json."""
    model_name, recipe, w_bits, a_bits = config.model, config.recipe, config.w_bits, config.a_bits
    epochs, batch_size, seed, lr = config.epochs, config.batch_size, config.seed, config.lr
    proc = procedure_of(recipe)
    steps_per_epoch = math.ceil(len(train_set) / batch_size)

    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=epochs * steps_per_epoch, initial=start_epoch * steps_per_epoch,
                   desc=f"{model_name} {recipe} W{w_bits}A{a_bits}", unit="step", leave=False)
    for epoch in range(start_epoch, epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        torch.manual_seed(_epoch_seed(seed, epoch))  # dropout, augmentation
        loader = DataLoader(train_set, batch_size=batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(_epoch_seed(seed, epoch)))
        model.train()
        hooks.set_phase(model, proc.phase_at(epoch, epochs))
        hooks.on_epoch_start(model, epoch)
        loss_sum, correct, seen = 0.0, 0, 0
        history["lr"].append(float(optim.param_groups[0]["lr"]))
        for step, (x, y) in enumerate(loader):
            x, y = x.to(dev), y.to(dev)
            logits = model(x)
            loss = F.cross_entropy(logits, y) + hooks.regularization_loss(model)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{recipe} W{w_bits}A{a_bits}: loss is "
                                         f"{float(loss.detach())} at epoch {epoch} step "
                                         f"{step}; lower lr={lr}")
            optim.zero_grad(set_to_none=True)
            loss.backward()
            hooks.after_backward(model)
            if config.grad_clip_norm is not None:  # QN Sec. 4.1: global L2 norm
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip_norm)
            optim.step()
            sched.step()
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.detach().argmax(dim=1) == y).sum())
            seen += len(y)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{loss_sum / seen:.3f}")
        test_acc, test_loss = evaluate(model, test_set, device=dev)
        history["train_loss"].append(loss_sum / seen)
        history["train_accuracy"].append(correct / seen)
        history["test_accuracy"].append(test_acc)
        history["test_loss"].append(test_loss)
        for name, v in _learned_scalars(model).items():
            history.setdefault(f"param:{name}", []).append(v)
        elapsed += time.perf_counter() - t0
        cpu += time.process_time() - c0
        log.info("%s %s W%dA%d epoch %d: loss %.4f test acc %.4f", model_name, recipe, w_bits,
                 a_bits, epoch, loss_sum / seen, test_acc)
        if out_dir is not None:
            ckpt = {"format": CHECKPOINT_FORMAT, "config": config.to_json(), "epoch": epoch + 1,
                    "model_state": model.state_dict(), "optimizer_state": optim.state_dict(),
                    "scheduler_state": sched.state_dict(), "history": history,
                    "elapsed_s": elapsed, "cpu_s": cpu}
            _atomic_write(out_dir / CHECKPOINT, lambda f, c=ckpt: torch.save(c, f))
    if bar is not None:
        bar.close()

    model.eval()
    ev = config.eval_split  # "test", or "val" when choosing hyperparameters
    metrics: dict[str, Any] = {
        **config.to_json(),
        f"{ev}_accuracy": history["test_accuracy"][-1],
        f"{ev}_loss": history["test_loss"][-1],
        "train_loss": history["train_loss"],
        "train_accuracy": history["train_accuracy"],
        f"{ev}_accuracy_curve": history["test_accuracy"],
        "lr_curve": history["lr"],
        "param_curves": {k.removeprefix("param:"): v for k, v in history.items()
                         if k.startswith("param:")},
        "param_start": {k.removeprefix("start:"): v[0] for k, v in history.items()
                        if k.startswith("start:")},
        "train_size": len(train_set),
        f"{ev}_size": len(test_set),
        "num_params": sum(p.numel() for p in model.parameters()),
        "layers": _layer_bits(model),
        "time_s": elapsed,
        "cpu_s": cpu,
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if out_dir is not None:
        _write_json(out_dir / METRICS, metrics)
    return TrainResult(model, metrics)


def load_run(out: str | Path, *, device: str = "cpu") -> TrainResult:
    """Rebuild the trained model of a finished run folder (metrics.json + checkpoint.pt)."""
    out = Path(out)
    if not (out / METRICS).is_file() or not (out / CHECKPOINT).is_file():
        raise FileNotFoundError(f"{out}: not a finished quant.train run (needs {METRICS} and "
                                f"{CHECKPOINT})")
    metrics = json.loads((out / METRICS).read_text())
    ckpt = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=True)
    config = TrainConfig(**{k: ckpt["config"][k] for k in TrainConfig.__dataclass_fields__})
    # build_model() would reload init_from; the checkpoint already holds every weight.
    model = build_model(dataclasses.replace(config, init_from=None), _num_classes(config))
    if config.fixed_act_clip is not None:
        _freeze_act_clips(model, config)
    train_set = qdata.load(config.data, "train", seed=config.data_seed, root=config.data_root,
                           shape=_zoo_input_shape(config.model))
    _prepare(model, config, train_set, torch.device("cpu"))  # state outside the state_dict
    model.load_state_dict(ckpt["model_state"])
    return TrainResult(model.to(device).eval(), metrics)


def _zoo_input_shape(model_name: str) -> tuple[int, int, int]:
    import workloads.zoo as zoo

    return tuple(zoo.input_shape(model_name))  # type: ignore[return-value]


def _num_classes(config: TrainConfig) -> int:
    return 10  # digits, CIFAR-10 and synthetic (10 classes) are what load() offers


# ---- cached runs for other packages (search: measured accuracy) ---------------------------

def run_name(recipe: str, w_bits: int, a_bits: int, *, seed: int = 0,
             first_last_bits: int | None = None, shortcut_bits: int | None = None,
             overrides: Mapping[str, Any] | None = None,
             fixed_act_clip: float | str | None = None, from_scratch: bool | None = None,
             clip_decay: float | None = None, eval_split: str = "test") -> str:
    """Folder name of a cached digits run, e.g. ``pact_sawb_fpsc-w2a2-s0``.

    ``from_scratch=None`` and ``clip_decay=None`` are the recipe's procedure (see
    :func:`trained_digits_result`); ``eval_split="val"`` runs end in ``-val``."""
    proc = procedure_of(recipe)
    from_scratch = _from_scratch(recipe, from_scratch)
    val = "-val" if eval_split == "val" else ""
    if recipe == "fp32":
        return _fp_name(proc.width, seed) + val
    name = f"{recipe}-w{w_bits}a{a_bits}"
    if first_last_bits is not None:
        name += f"-fl{first_last_bits}"
    if shortcut_bits is not None:
        name += f"-sc{shortcut_bits}"
    if fixed_act_clip is not None:
        name += f"-clip{fixed_act_clip}"
    if from_scratch:
        name += "-scratch"
    if clip_decay is not None and clip_decay != proc.clip_decay:
        name += f"-cd{clip_decay:g}"
    if overrides:
        blob = json.dumps(_jsonable(overrides), sort_keys=True).encode()
        name += "-ov" + hashlib.sha256(blob).hexdigest()[:10]
    return f"{name}-s{seed}{val}"


def _from_scratch(recipe: str, from_scratch: bool | None) -> bool:
    return procedure_of(recipe).from_scratch if from_scratch is None else bool(from_scratch)


def _fp_name(width: int, seed: int) -> str:
    return f"fp32-w32a32-s{seed}" if width == 1 else f"fp32-width{width}-w32a32-s{seed}"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Exclusive advisory lock so parallel workers train a cache entry once."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _digits_fp(cache_dir: Path, *, width: int, seed: int, epochs: int,
               eval_split: str = "test") -> TrainResult:
    name = _fp_name(width, seed) + ("-val" if eval_split == "val" else "")
    with _locked(cache_dir / f".{name}.lock"):
        return train("digits_cnn", "fp32", 32, 32, epochs=epochs, lr=DIGITS_FP_LR,
                     batch_size=DIGITS_BATCH_SIZE, seed=seed, out=cache_dir / name, width=width,
                     eval_split=eval_split)


def trained_digits_result(recipe: str, w_bits: int, a_bits: int, cache_dir: str | Path, *,
                          seed: int = 0, first_last_bits: int | None = None,
                          shortcut_bits: int | None = None,
                          overrides: Mapping[str, Any] | None = None,
                          fixed_act_clip: float | str | None = None,
                          from_scratch: bool | None = None, clip_decay: float | None = None,
                          fp_epochs: int = DIGITS_FP_EPOCHS,
                          ft_epochs: int = DIGITS_FT_EPOCHS,
                          eval_split: str = "test") -> TrainResult:
    """``digits_cnn`` on digits under ``recipe``, trained once and cached in ``cache_dir``.

    Quantized runs fine-tune for ``ft_epochs`` from a shared full-precision run
    (``cache_dir/fp32-w32a32-s<seed>``, ``fp_epochs`` at ``DIGITS_FP_LR``, trained first if
    missing; ``fp32-width2-...`` for a widened network such as ``wrpn``'s) under the recipe's
    procedure (:mod:`quant.procedure`: learning rate, weight/clip decay, phases, clipping,
    width); ``clip_decay`` overrides the procedure's. ``from_scratch`` trains the quantized
    model from random weights for ``fp_epochs`` at the procedure's ``lr_scratch`` instead;
    None (default) is the procedure's ``from_scratch`` (True for ``wrpn``, which the WRPN
    paper trains from scratch). ``eval_split="val"`` trains every run of the chain on the
    training split minus its validation fifth and scores on that fifth (hyperparameter
    selection; the test split is never read). The folder is ``cache_dir/`` + :func:`run_name`;
    later calls reload its checkpoint. Safe to call from parallel processes (one file lock per
    run folder).
    """
    cache = Path(cache_dir)
    width = procedure_of(recipe).width
    from_scratch = _from_scratch(recipe, from_scratch)
    if recipe == "fp32" and not (first_last_bits or shortcut_bits or overrides or fixed_act_clip):
        return _digits_fp(cache, width=width, seed=seed, epochs=fp_epochs, eval_split=eval_split)
    init_from = None
    if not from_scratch:
        _digits_fp(cache, width=width, seed=seed, epochs=fp_epochs, eval_split=eval_split)
        init_from = cache / (_fp_name(width, seed) + ("-val" if eval_split == "val" else ""))
    out = cache / run_name(recipe, w_bits, a_bits, seed=seed, first_last_bits=first_last_bits,
                           shortcut_bits=shortcut_bits, overrides=overrides,
                           fixed_act_clip=fixed_act_clip, from_scratch=from_scratch,
                           clip_decay=clip_decay, eval_split=eval_split)
    with _locked(cache / f".{out.name}.lock"):
        return train("digits_cnn", recipe, w_bits, a_bits,
                     epochs=fp_epochs if from_scratch else ft_epochs,
                     batch_size=DIGITS_BATCH_SIZE, seed=seed, out=out,
                     first_last_bits=first_last_bits, shortcut_bits=shortcut_bits,
                     overrides=overrides, init_from=init_from, width=width,
                     clip_decay=clip_decay, fixed_act_clip=fixed_act_clip,
                     eval_split=eval_split)


def trained_digits_model(recipe: str, w_bits: int, a_bits: int, cache_dir: str | Path,
                         **kwargs: Any) -> nn.Module:
    """The model of :func:`trained_digits_result` (eval mode); its accuracy is in the cached
    ``metrics.json`` (``test_accuracy``)."""
    return trained_digits_result(recipe, w_bits, a_bits, cache_dir, **kwargs).model


# ---- CLI -----------------------------------------------------------------------------------

class OneLineErrorParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (``error: ...`` on stderr), exit 2.

    :meth:`fail` turns a library error into the same line with the flag named: a message
    starting with a destination (``lr=...``, ``init_from: ...``) gets that flag's spelling."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see --help)\n")

    def fail(self, exc: BaseException) -> NoReturn:
        text = " ".join(str(exc).split()) or type(exc).__name__
        for action in self._actions:
            if action.option_strings and action.dest != "help":
                flag = action.option_strings[-1]
                text = re.sub(rf"(?<![\w-]){re.escape(action.dest)}(?=[=:])", flag, text)
        self.exit(2, f"error: {text}\n")


def _parser() -> argparse.ArgumentParser:
    p = OneLineErrorParser(
        prog="python -m quant.train",
        description="Quantization-aware training of a zoo model on digits or CIFAR-10. Options "
                    "left out take the recipe's training procedure (quant/procedure.py).")
    p.add_argument("--model", default="digits_cnn", help="zoo model name (default digits_cnn)")
    p.add_argument("--recipe", required=True, help="quant recipe, e.g. pact_sawb_fpsc")
    p.add_argument("--w-bits", type=int, required=True)
    p.add_argument("--a-bits", type=int, required=True)
    p.add_argument("--epochs", type=int, default=None,
                   help=f"default {DIGITS_FP_EPOCHS} from scratch, {DIGITS_FT_EPOCHS} with "
                        "--init-from")
    p.add_argument("--out", default=None, help="run folder (checkpoint.pt, metrics.json); "
                   "default runs/<model>-<recipe>-w<B>a<B>-s<seed>")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=None,
                   help=f"default: the recipe's procedure ({DIGITS_FP_LR} from scratch, "
                        f"{DIGITS_FT_LR} with --init-from)")
    p.add_argument("--batch-size", type=int, default=DIGITS_BATCH_SIZE)
    p.add_argument("--weight-decay", type=float, default=None,
                   help="default: the recipe's procedure (e.g. 0 for crelu_binary, x1/4 at "
                        "2 bits for lsq)")
    p.add_argument("--clip-decay", type=float, default=None,
                   help="weight decay of PACT/CReLU clipping levels (default: the recipe's "
                        f"procedure, {DIGITS_CLIP_DECAY} chosen on the digits validation split)")
    p.add_argument("--grad-clip-norm", type=float, default=None,
                   help="clip the gradient L2 norm (default: the recipe's procedure, 5 for qn)")
    p.add_argument("--fixed-act-clip", default=None,
                   help="freeze PACT clips at a number or 'max' (PACT Fig. 1 baselines)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=None)
    p.add_argument("--first-last-bits", type=int, default=None)
    p.add_argument("--shortcut-bits", type=int, default=None)
    p.add_argument("--width", type=int, default=None, help="zoo width (default: 2 for wrpn)")
    p.add_argument("--init-from", default=None, help="FP run folder or checkpoint to fine-tune")
    p.add_argument("--data", choices=qdata.DATASETS, default="digits")
    p.add_argument("--data-root", default=None, help="CIFAR-10 folder (python format)")
    p.add_argument("--augment", action="store_true", help="random crop + flip (CIFAR-10)")
    p.add_argument("--eval-split", choices=("test", "val"), default="test",
                   help="val: train without the held-out validation fifth of the training "
                        "split and score on it (for choosing hyperparameters)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: fastest for small models on a shared "
                        "machine; results are bit-identical for a fixed thread count)")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    fixed_clip: float | str | None = args.fixed_act_clip
    if fixed_clip not in (None, "max"):
        try:
            fixed_clip = float(fixed_clip)
        except ValueError:
            parser.error(f"--fixed-act-clip: {fixed_clip!r} is not allowed; give 'max' or a "
                         "number > 0")
    if args.threads < 1:
        parser.error(f"--threads: {args.threads} is not allowed; must be >= 1")
    torch.set_num_threads(args.threads)
    out = args.out or f"runs/{args.model}-{args.recipe}-w{args.w_bits}a{args.a_bits}-s{args.seed}"
    epochs = args.epochs if args.epochs is not None else (
        DIGITS_FT_EPOCHS if args.init_from else DIGITS_FP_EPOCHS)
    try:
        result = train(args.model, args.recipe, args.w_bits, args.a_bits, epochs=epochs,
                       lr=args.lr, batch_size=args.batch_size, seed=args.seed, out=out,
                       first_last_bits=args.first_last_bits, shortcut_bits=args.shortcut_bits,
                       init_from=args.init_from, data=args.data, device=args.device,
                       data_root=args.data_root, width=args.width, augment=args.augment,
                       optimizer=args.optimizer, weight_decay=args.weight_decay,
                       clip_decay=args.clip_decay, grad_clip_norm=args.grad_clip_norm,
                       fixed_act_clip=fixed_clip, eval_split=args.eval_split,
                       resume=not args.no_resume, progress=not args.no_progress)
    except KeyboardInterrupt:
        sys.stderr.write(f"interrupted; the last finished epoch is in {Path(out) / CHECKPOINT} "
                         "(rerun the same command to resume)\n")
        return 130
    except FloatingPointError as exc:
        parser.fail(ValueError(f"lr={args.lr if args.lr is not None else 'default'}: the run "
                               f"diverged ({exc}; allowed: a smaller --lr)"))
    except (ValueError, OSError) as exc:
        parser.fail(exc)  # one line on stderr, exit status 2
    m = result.metrics
    ev = m.get("eval_split", "test")
    print(f"{m['model']} {m['recipe']} W{m['w_bits']}A{m['a_bits']}: {ev} accuracy "
          f"{m[f'{ev}_accuracy']:.4f} ({m['time_s']:.1f} s) -> {Path(out) / METRICS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

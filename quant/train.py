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

import dataclasses
import json
import logging
import math
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from quant import data as qdata
from quant import hooks
from quant.checkpoints import (
    CHECKPOINT,
    CHECKPOINT_FORMAT,
    METRICS,
    _atomic_write,
    _jsonable,
    _load_float_weights,
    _make_run_folder,
    _read_state_dict,
    _torch_load,
    _write_json,
    check_folder,
)
from quant.procedure import (
    DIGITS_BATCH_SIZE,
    DIGITS_CLIP_DECAY,
    DIGITS_FP_EPOCHS,
    DIGITS_FP_LR,
    DIGITS_FT_EPOCHS,
    DIGITS_FT_LR,
    OPTIMIZERS,
    Procedure,
    optimizer_problems,
)

__all__ = [
    "CHECKPOINT",
    "DIGITS_BATCH_SIZE",
    "DIGITS_CLIP_DECAY",
    "DIGITS_FP_EPOCHS",
    "DIGITS_FP_LR",
    "DIGITS_FT_EPOCHS",
    "DIGITS_FT_LR",
    "METRICS",
    "OneLineErrorParser",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "decay_only_curve",
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


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919 + 12_345) % (2**63 - 1)


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
          overrides: Mapping[str, Any] | None = None, width: float | None = None,
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
    if out is not None:  # before the data is loaded: created only once training starts
        check_folder(out, "out")
    if init_from is not None:  # likewise: an unreadable checkpoint is one ValueError up front
        _read_state_dict(init_from)
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
        if config.fixed_act_clip is not None:  # set_phase unfroze them; they stay constants
            _freeze_act_clips(model, config)
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
        "param_group": _scalar_groups(model),
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


# ---- re-exports: cached digits runs and the CLI live in their own modules ------------------
from quant.digits_runs import (  # noqa: E402  (they call back into this module)
    run_name,
    trained_digits_model,
    trained_digits_result,
)
from quant.train_cli import OneLineErrorParser, main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())

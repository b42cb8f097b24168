"""Cached ``digits_cnn`` runs for other packages (the search's measured accuracy, the table):
each recipe trained once under its procedure, reloaded afterwards, safe from parallel workers."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from quant.checkpoints import _jsonable
from quant.procedure import DIGITS_BATCH_SIZE, DIGITS_FP_EPOCHS, DIGITS_FP_LR, DIGITS_FT_EPOCHS

__all__ = ["run_name", "trained_digits_model", "trained_digits_result"]


def _qtrain() -> Any:
    from quant import train  # (quant.train re-exports this module: import it when called)

    return train


def procedure_of(recipe: str) -> Any:
    return _qtrain().procedure_of(recipe)


def train(*args: Any, **kwargs: Any) -> Any:
    return _qtrain().train(*args, **kwargs)


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
               eval_split: str = "test") -> Any:
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
                          eval_split: str = "test") -> Any:
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

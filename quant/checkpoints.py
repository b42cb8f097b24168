"""Run-folder I/O of ``quant.train``: atomic writes, checkpoint and state_dict reading that
turns an unreadable file into one ValueError, and the run folder itself (created up front, so an
unusable ``--out`` fails before any training)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["CHECKPOINT", "CHECKPOINT_FORMAT", "METRICS", "check_folder"]

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
CHECKPOINT_FORMAT = 1


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in sorted(v.items())}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return v


def _atomic_write(path: Path, write: Any) -> None:
    """`workloads.atomic.atomic_write`, ``path``'s folder created if missing: a unique temporary
    beside it (``.<name>.<pid>.<random>.tmp``, which the study and search clean-ups remove once
    its process is gone), fsynced and renamed into place."""
    from workloads.atomic import atomic_write

    atomic_write(path, write, parents=True)


def _write_json(path: Path, obj: Mapping[str, Any]) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=True) + "\n"
    _atomic_write(path, lambda f: f.write(text.encode()))


def _torch_load(path: Path, field: str, fix: str) -> Any:
    """``torch.load`` (tensors only) that turns an unreadable file into one ValueError naming
    ``field``, the file, what is wrong and ``fix`` (a truncated or foreign file raises many
    types: UnpicklingError, RuntimeError from the zip reader, EOFError...)."""
    try:
        with warnings.catch_warnings():  # a foreign pickle warns before it fails: one line only
            warnings.simplefilter("ignore")
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


def check_folder(path: str | Path, field: str) -> None:
    """ValueError naming ``field`` unless ``path`` is, or can be created as, a writable folder.

    Creates nothing: the command lines check their folders with the rest of their input, before
    any data is loaded or a model trained (a rejected command leaves nothing behind)."""
    if not str(path).strip():
        raise ValueError(f"{field}: {str(path)!r} is not allowed; expected a folder path")
    probe = Path(path)
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if probe == Path(path) and not probe.is_dir():
        raise ValueError(f"{field}: {str(path)!r} exists and is not a folder (allowed: a new or "
                         "existing folder)")
    why = None if probe.is_dir() else "is not a folder"
    if why is None:  # try it (permission bits do not tell: root, read-only mounts, /proc)
        try:
            fd, tmp = tempfile.mkstemp(dir=probe, prefix=".write-test-")
            os.close(fd)
            os.unlink(tmp)
        except OSError as err:
            why = f"cannot be written: {err.strerror or err}"
    if why is not None:
        raise ValueError(f"{field}: cannot write the folder {str(path)!r} ({probe} {why}; "
                         "allowed: a folder you can write)")


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

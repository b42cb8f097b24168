"""The integer export flow of LLSQ Section 4.2: quantize bias and scaling factors, fine-tune.

:func:`quant.integer.to_integer` compiles a fake-quantized model as it is. Two of its steps are
not modelled by the fake-quantized network and cost accuracy on their own (measured in
docs/quant_advanced.md):

* the bias ``q_b = clamp(round(b^ / (alpha_a alpha_w^)), +-2^(kb-1))`` (Eq. 6): ``b^ / (alpha_a
  alpha_w^)`` spans about (-1000, 1000) (the paper's Fig. 4), so an 8-bit bias clips;
* the requantization multiplier ``alpha_a alpha_w^ / alpha_o`` rounded to an 8-bit mantissa and
  a shift, or to a pure shift (``pow2_scales``, "bit-shift quantization" of Section 3.5).

The paper's answer (Section 4.2): "we quantize the bias and the scaling factors to 8-bit words,
and then fine-tune the networks to restore the original performance. Generally, we need
fine-tuning for one epoch only." :func:`finetune_for_integer` does exactly that, as a
projected-gradient fine-tune::

    model = copy.deepcopy(model); project(model)
    BN layers in eval mode (the fold of Eq. 5 uses their running statistics: they must not move)
    for each step of ``epochs`` passes over (x, y):
        loss = CE(model(xb), yb) + regularization; backward; hooks.after_backward; SGD step
        project(model)   # quant.integer.project_to_integer_: scales (gamma, beta), biases

so the float model computes, after every step, what :func:`~quant.integer.to_integer` with the
same ``bias_bits``/``scale_bits``/``pow2_scales`` computes. Usage::

    ready = quant.export.finetune_for_integer(model, x_train, y_train)     # defaults: b8, s8
    im = quant.to_integer(ready)                                            # defaults: acc16 b8 s8

``python -m quant.export --cache runs/quant_table --out docs/quant_accuracy`` measures the
integer-vs-fake-quant gaps of the accuracy table's ``llsqf`` runs, with and without the flow.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from quant import hooks
from quant.integer import project_to_integer_

__all__ = ["finetune_for_integer"]

log = logging.getLogger(__name__)


def _freeze_bn(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def finetune_for_integer(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    bias_bits: int = 8,
    scale_bits: int = 8,
    pow2_scales: bool = False,
    epochs: int = 2,
    lr: float = 0.01,
    batch_size: int = 32,
    seed: int = 0,
) -> nn.Module:
    """A copy of the fake-quantized ``model`` fine-tuned with its bias and scaling factors on
    their integer grids (LLSQ Section 4.2; module docstring). ``model`` is not mutated.

    Args:
        x, y: training images and labels (the fine-tune data; never the test set).
        bias_bits, scale_bits, pow2_scales: the integer formats of the later
            :func:`~quant.integer.to_integer` call (pass the same values to it).
        epochs: passes over ``(x, y)``. The paper needs "one epoch only" on CIFAR-10/ImageNet;
            digits has 45 steps per epoch, and 2 epochs at the QAT fine-tune rate 0.01
            (``quant.train.DIGITS_FT_LR``) are the default (docs/quant_advanced.md).
        lr, batch_size, seed: SGD (momentum 0.9, cosine decay from ``lr`` over the steps, no
            weight decay; quantizer parameters in the groups of
            :func:`quant.hooks.param_groups`), batch size and shuffle seed.

    Returns:
        The fine-tuned copy in eval mode, projected after its last step: ``to_integer`` with the
        same formats clips no bias and agrees with it up to rounding ties.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs={epochs!r} must be an int >= 0")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be an int >= 1")
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must be non-empty and of equal length, got {len(x)} and "
                         f"{len(y)}")
    fmt = {"bias_bits": bias_bits, "scale_bits": scale_bits, "pow2_scales": pow2_scales}
    m = copy.deepcopy(model)
    clipped = project_to_integer_(m, x, **fmt)
    log.info("finetune_for_integer: %d biases clipped before the fine-tune", clipped)
    opt = torch.optim.SGD(hooks.param_groups(m, lr), lr=lr, momentum=0.9)
    steps = epochs * math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        m.train()
        _freeze_bn(m)
        for idx in torch.randperm(len(x), generator=gen).split(batch_size):
            loss = F.cross_entropy(m(x[idx]), y[idx]) + hooks.regularization_loss(m)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            hooks.after_backward(m)
            opt.step()
            sched.step()
            clipped = project_to_integer_(m, x, **fmt)
    log.info("finetune_for_integer: %d biases pushed past %d bits by the last step (clamped)",
             clipped, bias_bits)
    return m.eval()


# ---- CLI: the integer-export gaps of the accuracy table's runs ------------------------------
def _gaps(run: Path, xtr: Tensor, ytr: Tensor, xte: Tensor, yte: Tensor) -> list[dict[str, Any]]:
    """One row per export of a trained ``quant.train`` run: bare / flow x scales / shifts."""
    from quant.integer import to_integer
    from quant.train import load_run

    def acc(logits: Tensor) -> float:
        return float((logits.argmax(1) == yte).double().mean())

    model = load_run(run).model
    with torch.no_grad():
        acc_fq = acc(model(xte))
    rows = []
    for pow2 in (False, True):
        for flow in (False, True):
            t0 = time.process_time()
            m = finetune_for_integer(model, xtr, ytr, pow2_scales=pow2) if flow else model
            cpu = time.process_time() - t0
            with torch.no_grad():
                twin = m(xte)
            im = to_integer(m, pow2_scales=pow2)
            out = im(xte)
            rows.append({
                "run": run.name, "export": ("finetune_for_integer + " if flow else "")
                + f"to_integer({'pow2_scales=True' if pow2 else ''})",
                "fake_quant_accuracy": acc_fq, "integer_accuracy": acc(out),
                "gap_pts": 100 * (acc(out) - acc_fq),
                "twin_accuracy": acc(twin), "gap_vs_twin_pts": 100 * (acc(out) - acc(twin)),
                "argmax_agreement": float((out.argmax(1) == twin.argmax(1)).double().mean()),
                "bias_clipped": im.bias_clipped, "overflows": im.overflow_count,
                "acc_bits_needed": im.acc_bits_needed, "finetune_cpu_s": cpu})
    return rows


def _check_run(run: Path) -> None:
    """ValueError naming the file unless ``run`` holds a finished quant.train run whose
    metrics.json and checkpoint.pt load (a truncated or foreign file included)."""
    import json

    from quant.checkpoints import CHECKPOINT, METRICS, _torch_load

    try:
        json.loads((run / METRICS).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{run / METRICS} is not a readable metrics file "
                         f"({type(err).__name__})") from None
    if not (run / CHECKPOINT).is_file():
        raise ValueError(f"{run / CHECKPOINT} is missing")
    try:
        _torch_load(run / CHECKPOINT, "checkpoint", "")
    except ValueError as err:
        raise ValueError(str(err).removeprefix("checkpoint: ").removesuffix("; ")) from None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m quant.export --cache runs/quant_table --out docs/quant_accuracy``: the gap
    between integer-only and fake-quant accuracy for the table's ``llsqf`` runs, with and
    without :func:`finetune_for_integer`, written to ``OUT/integer_export.{csv,md}``."""
    import shlex
    import sys

    import pandas as pd

    from quant import data as qdata
    from quant.checkpoints import check_folder
    from quant.train import OneLineErrorParser

    p = OneLineErrorParser(prog="python -m quant.export", description=main.__doc__)
    p.add_argument("--cache", required=True, help="folder of quant.table run folders")
    p.add_argument("--out", required=True, help="folder for integer_export.csv and .md")
    p.add_argument("--runs", default="llsqf-w4a4-s0,llsqf-w4a4-s1,llsqf-w4a4-s2,"
                   "llsqf-w2a2-s0,llsqf-w2a2-s1,llsqf-w2a2-s2",
                   help="comma-separated run folder names (default: the table's llsqf runs)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    runs = [Path(args.cache) / r for r in args.runs.split(",") if r]
    if not runs:
        p.error(f"--runs: {args.runs!r} names no run folder (allowed: comma-separated names of "
                "quant.table run folders, e.g. llsqf-w4a4-s0)")
    try:
        check_folder(args.out, "--out")  # before the exports: it writes only at the end
    except ValueError as err:
        p.error(str(err))
    missing = [str(r) for r in runs if not r.is_dir()]
    if missing:
        p.error(f"--runs: {', '.join(missing)} not found; run python -m quant.table with "
                f"--cache {args.cache} first")
    for run in runs:  # before the data and the exports: a torn run folder is one line
        try:
            _check_run(run)
        except ValueError as err:
            p.error(f"--runs: {err}; run python -m quant.table with --cache {args.cache} again "
                    f"or leave {run.name} out")
    tr, te = qdata.load("digits", "train"), qdata.load("digits", "test")
    t0 = time.perf_counter()
    df = pd.DataFrame([row for r in runs
                       for row in _gaps(r, tr.images, tr.targets, te.images, te.targets)])
    wall = time.perf_counter() - t0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "integer_export.csv", index=False, float_format="%.6g")
    command = shlex.join(["python", "-m", "quant.export",
                          *(sys.argv[1:] if argv is None else argv)])
    md = ["# Integer-only export vs fake-quant on scikit-learn digits", "",
          "Defaults of `quant.to_integer`: 16-bit accumulator, 8-bit bias, 8-bit scale "
          "mantissa (LLSQ w4a4b8a8); `pow2_scales=True` requantizes with pure shifts. "
          "`finetune_for_integer` is the LLSQ Section 4.2 fine-tune with bias and scales on "
          "their integer grids (2 epochs, SGD lr 0.01). *gap* is integer minus the trained "
          "fake-quant model, *vs twin* integer minus the (fine-tuned) fake-quant model it "
          "compiles. 360 test images: one image = 0.28 points.", "",
          f"Command: `{command}` ({wall:.0f} s).", "",
          "| run | export | fake-quant % | integer % | gap (pts) | vs twin (pts) | argmax agree % "
          "| biases clipped | overflows | acc bits needed |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    md += [f"| {r.run} | {r.export} | {100 * r.fake_quant_accuracy:.2f} | "
           f"{100 * r.integer_accuracy:.2f} | {r.gap_pts:+.2f} | {r.gap_vs_twin_pts:+.2f} | "
           f"{100 * r.argmax_agreement:.2f} | {r.bias_clipped} | {r.overflows} | "
           f"{r.acc_bits_needed} |" for r in df.itertuples()]
    (out / "integer_export.md").write_text("\n".join([*md, ""]))
    print(f"{len(df)} exports in {wall:.0f} s -> {out / 'integer_export.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m quant.train``: the command line of :func:`quant.train.train` and the one-line
error contract shared with ``python -m quant.table``."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from quant import data as qdata
from quant.checkpoints import CHECKPOINT, METRICS
from quant.procedure import (
    DIGITS_BATCH_SIZE,
    DIGITS_CLIP_DECAY,
    DIGITS_FP_EPOCHS,
    DIGITS_FP_LR,
    DIGITS_FT_EPOCHS,
    DIGITS_FT_LR,
    OPTIMIZERS,
)

__all__ = ["OneLineErrorParser", "main", "max_threads"]


def max_threads() -> int:
    """The most torch threads a run may ask for: this machine's CPUs."""
    return os.cpu_count() or 1


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (``error: ...`` on stderr), exit 2.

    :meth:`fail` turns a library error into the same line with the flag named: a message
    starting with a destination (``lr=...``, ``init_from: ...``) gets that flag's spelling."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see --help)\n")

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None
                         ) -> tuple[argparse.Namespace, list[str]]:
        # argparse turns ``--flag=--`` into an empty value (it drops the "--"), not an error
        for tok in sys.argv[1:] if args is None else args:
            if isinstance(tok, str) and tok.startswith("-") and tok.endswith("=--"):
                self.error(f"argument {tok[:-3]}: expected one value, got '--'")
        return super().parse_known_args(args, namespace)

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
    most = max_threads()
    if not 1 <= args.threads <= most:  # torch crashes at tens of thousands
        parser.error(f"--threads: {args.threads} is not allowed; expected 1..{most} (the CPUs "
                     "of this machine)")
    if args.data_root is not None and not Path(args.data_root).is_dir():
        parser.error(f"--data-root: {args.data_root!r} is not a folder (allowed: the folder "
                     "holding the dataset)")
    import torch

    from quant import train as qtrain  # imported here: quant.train re-exports this module

    torch.set_num_threads(args.threads)
    out = args.out if args.out is not None else \
        f"runs/{args.model}-{args.recipe}-w{args.w_bits}a{args.a_bits}-s{args.seed}"
    epochs = args.epochs if args.epochs is not None else (
        DIGITS_FT_EPOCHS if args.init_from else DIGITS_FP_EPOCHS)
    try:
        result = qtrain.train(args.model, args.recipe, args.w_bits, args.a_bits, epochs=epochs,
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

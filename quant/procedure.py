"""Each recipe's training procedure, as data: optimizer, learning rate and schedule, weight decay,
clip decay, phases, gradient clipping and network width, with the paper section each comes from.

A :class:`Procedure` sits next to a recipe's quantizers (``quant.recipes.Recipe.procedure``) and
is what ``quant.train`` applies; nothing about a recipe's training lives anywhere else.

The papers train ImageNet/CIFAR networks for 55-200 epochs; our CPU protocol fine-tunes the tiny
``digits_cnn`` for 10 epochs from a full-precision run, or trains it for 20 from random weights
where the paper trains from scratch (``Procedure.from_scratch``: WRPN, PACT-SAWB). Values that
transfer (optimizer, momentum, the cosine schedule, the ratio of LSQ's weight decays, CReLU's
zero weight decay, QN's phases and gradient-norm clip, WRPN's width, where each paper starts) are
the papers'. Values that do not (the absolute learning
rates, PACT's clip decay, which the paper pairs with ~2600 "units" of summed learning rate where
we have ~2.3) are ours and are named in ``Procedure.ours``; they were chosen on a validation split
carved from the training images (``quant.data.load(..., "val")``), never on the test split - see
benchmarks/tune_digits.py and docs/quant_accuracy/tuning.md for the runs behind them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DIGITS_BATCH_SIZE",
    "DIGITS_CLIP_DECAY",
    "DIGITS_FP_EPOCHS",
    "DIGITS_FP_LR",
    "DIGITS_FT_EPOCHS",
    "DIGITS_FT_LR",
    "DIGITS_WEIGHT_DECAY",
    "JOINT",
    "OPTIMIZERS",
    "PROCEDURES",
    "Phase",
    "Procedure",
    "optimizer_problems",
]

# ---- our digits protocol (chosen on the validation split; docs/quant_accuracy/tuning.md) -----
OPTIMIZERS = ("sgd", "adam")
DIGITS_FP_EPOCHS = 20
DIGITS_FT_EPOCHS = 10
DIGITS_FP_LR = 0.05
DIGITS_FT_LR = 0.01
DIGITS_BATCH_SIZE = 32
DIGITS_WEIGHT_DECAY = 5e-4
# SGD weight decay on PACT/CReLU clipping levels. PACT Section 3.2 pairs its L2 on alpha with a
# 200-epoch schedule; over our few hundred steps the paper-sized 2e-4 leaves alpha where it
# started. Chosen on the validation split among 5e-4, 5e-3 and 5e-2 (W2A2, seed 0, crelu_binary
# fine-tuned and pact_sawb from scratch as their procedures say: mean val accuracy 98.96 /
# 98.96 / 99.31 %; it was 98.78 / 98.96 / 99.31 % with pact_sawb fine-tuned, the same choice;
# docs/quant_accuracy/tuning.md, benchmarks/tune_digits.py).
DIGITS_CLIP_DECAY = 0.05



def optimizer_problems(cfg: object) -> list[str]:
    """Bad ``momentum``/``weight_decay`` (finite >= 0), ``clip_decay`` (None or finite >= 0)
    and ``grad_clip_norm`` (None or finite > 0) of a `Procedure` or a training config:
    ``field=value (allowed: ...)`` lines."""
    problems = []
    for name in ("momentum", "weight_decay"):
        v = getattr(cfg, name)
        if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
            problems.append(f"{name}={v!r} (allowed: finite number >= 0)")
    for name, floor in (("clip_decay", ">="), ("grad_clip_norm", ">")):  # a norm of 0 would
        v = getattr(cfg, name)                                            # zero every gradient
        if v is not None and not (isinstance(v, int | float) and math.isfinite(v)
                                  and (v > 0 if floor == ">" else v >= 0)):
            problems.append(f"{name}={v!r} (allowed: None or a finite number {floor} 0)")
    return problems


@dataclass(frozen=True, slots=True)
class Phase:
    """One stage of a multi-phase schedule (Quantization Networks Section 4.1).

    Attributes:
        name: label for logs.
        epoch_share: fraction of the run's epochs spent in this phase (shares sum to 1).
        quantize_weights / quantize_acts: whether weight / activation quantizers are applied
            (a disabled activation quantizer leaves its ReLU in place).
        train_weight_quantizers / train_act_quantizers: whether the quantizers' own parameters
            (QN alpha/beta, PACT alpha, ...) receive updates; the network weights always train.
    """

    name: str
    epoch_share: float = 1.0
    quantize_weights: bool = True
    quantize_acts: bool = True
    train_weight_quantizers: bool = True
    train_act_quantizers: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.epoch_share, int | float) and 0 < self.epoch_share <= 1):
            raise ValueError(f"Phase {self.name!r}: epoch_share={self.epoch_share!r} must be in "
                             "(0, 1]")


JOINT = Phase("joint")
"""Everything quantized and trained from the first epoch (every paper but QN)."""


@dataclass(frozen=True, slots=True)
class Procedure:
    """How a recipe is trained (see the module docstring); ``cite`` names the paper sections.

    Attributes:
        cite: where each value comes from.
        optimizer, momentum: ``"sgd"`` (momentum) or ``"adam"``.
        schedule: ``"cosine"`` per step (LSQ Sec. 3, LLSQ Sec. 4.1 use it; the step decays of
            PACT/QN/CReLU have no meaning over 10 epochs, so the cosine stands in for them).
        lr: fine-tune learning rate (from a full-precision run); ``lr_scratch`` from scratch.
        weight_decay: SGD weight decay of the network weights.
        weight_decay_by_bits: ``((bits, factor), ...)``: at ``w_bits <= bits`` the weight decay
            is multiplied by ``factor`` (the smallest matching ``bits`` wins; LSQ Sec. 3.1).
        clip_decay: SGD weight decay of clipping levels (PACT alpha, CReLU c); None: the recipe
            has none.
        act_clip_init: where trainable clipping levels (PACT alpha, CReLU c) start: a number,
            ``"max"`` (each layer's largest activation on the first training batch, so the
            level covers the dynamic range as the papers' large initial values do, yet sits
            where the task gradient of PACT Eq. 3 / CReLU Eq. 2 reaches it within a short
            fine-tune), or None (the quantizer's own default: 10 for PACT, 8 for CReLU).
        grad_clip_norm: clip the global gradient L2 norm at this value (QN Sec. 4.1), or None.
        phases: the schedule of :class:`Phase` (one joint phase for most).
        width: channel multiplier of the network this recipe is defined on (WRPN Sec. 3: 2x);
            ``quant.train`` builds the zoo model at this width before ``quantize``.
        from_scratch: the paper trains the quantized network from random weights (WRPN Sec. 3,
            PACT-SAWB Sec. 6); otherwise it fine-tunes from a trained full-precision network
            (LSQ Sec. 3, LLSQ Fig. 1, CReLU Sec. 4).
        ours: fields whose values are ours rather than the paper's (chosen on validation).
    """

    cite: str
    optimizer: Literal["sgd", "adam"] = "sgd"
    momentum: float = 0.9
    schedule: Literal["cosine"] = "cosine"
    lr: float = DIGITS_FT_LR
    lr_scratch: float = DIGITS_FP_LR
    weight_decay: float = DIGITS_WEIGHT_DECAY
    weight_decay_by_bits: tuple[tuple[int, float], ...] = ()
    clip_decay: float | None = None
    act_clip_init: float | Literal["max"] | None = None
    grad_clip_norm: float | None = None
    phases: tuple[Phase, ...] = (JOINT,)
    width: int = 1
    from_scratch: bool = False
    ours: tuple[str, ...] = ("lr", "lr_scratch", "weight_decay")

    def __post_init__(self) -> None:
        problems = []
        for name in ("lr", "lr_scratch"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                problems.append(f"{name}={v!r} (allowed: finite number > 0)")
        problems += optimizer_problems(self)
        if self.optimizer not in ("sgd", "adam"):
            problems.append(f"optimizer={self.optimizer!r} (allowed: sgd, adam)")
        if self.schedule != "cosine":
            problems.append(f"schedule={self.schedule!r} (allowed: cosine)")
        if not self.phases or not math.isclose(sum(p.epoch_share for p in self.phases), 1.0):
            problems.append(f"phases={self.phases!r} (allowed: epoch shares summing to 1)")
        if isinstance(self.width, bool) or not isinstance(self.width, int) or self.width < 1:
            problems.append(f"width={self.width!r} (allowed: int >= 1)")
        if problems:
            raise ValueError("invalid procedure: " + "; ".join(problems))

    def weight_decay_at(self, w_bits: int) -> float:
        """The weight decay at ``w_bits`` (``weight_decay`` times the factor that applies)."""
        factor = 1.0
        for bits, f in sorted(self.weight_decay_by_bits):
            if w_bits <= bits:
                factor = f
                break
        return self.weight_decay * factor

    def phase_at(self, epoch: int, epochs: int) -> Phase:
        """The phase that epoch ``epoch`` (0-based) of an ``epochs``-epoch run belongs to.

        Phase i ends at epoch ``round(cumulative share * epochs)``: thirds of 10 epochs are
        3 + 4 + 3; a run shorter than the number of phases skips the phases that round to
        zero epochs."""
        total = 0.0
        for p in self.phases:
            total += p.epoch_share
            if epoch < round(total * epochs):
                return p
        return self.phases[-1]


_PACT_SAWB = ("PACT-SAWB Appendix A (CIFAR10: SGD momentum 0.9, weight decay 2e-4, step decay; "
              "ImageNet ResNet: SGD momentum 0.9, weight decay 1e-4), Sec. 3.2 (L2 on alpha; "
              "alpha starts at 10, Fig. 2b), Sec. 6 ('The networks are trained from scratch')")

_PACT_OURS = ("lr", "lr_scratch", "weight_decay", "clip_decay", "act_clip_init")

PROCEDURES: dict[str, Procedure] = {
    "fp32": Procedure("our full-precision digits baseline", ours=("lr", "lr_scratch",
                                                                   "weight_decay")),
    "pact": Procedure(_PACT_SAWB, clip_decay=DIGITS_CLIP_DECAY,
                      act_clip_init="max", from_scratch=True, ours=_PACT_OURS),
    "sawb": Procedure(_PACT_SAWB, from_scratch=True),
    "pact_sawb": Procedure(_PACT_SAWB, clip_decay=DIGITS_CLIP_DECAY,
                           act_clip_init="max", from_scratch=True, ours=_PACT_OURS),
    "pact_sawb_fpsc": Procedure(_PACT_SAWB + "; Sec. 5 (shortcut inputs and weights in full "
                                "precision)", clip_decay=DIGITS_CLIP_DECAY,
                                act_clip_init="max", from_scratch=True, ours=_PACT_OURS),
    "lsq": Procedure("LSQ Sec. 3 (SGD momentum 0.9, cosine decay without restarts, lr 0.01 "
                     "for 2-4 bits), Sec. 3.1 / Table 2 (weight decay x1/2 at 3 bits, x1/4 at "
                     "2 bits)", weight_decay_by_bits=((2, 0.25), (3, 0.5)),
                     ours=("lr_scratch", "weight_decay")),
    "llsq": Procedure("LLSQ Sec. 4.1 (cosine learning rate; alpha takes no weight decay, "
                      "its update is the simulated gradient of Sec. 3.3)"),
    "llsqf": Procedure("LLSQ Sec. 4.1 (as llsq, first and last layers quantized too)"),
    "qn": Procedure("Quantization Networks Sec. 4.1 (SGD momentum 0.9, weight decay 5e-4 for "
                    "AlexNet, three phases: weights only, then activations with the weight "
                    "quantization fixed, then both; gradients clipped at L2 norm 5; biases "
                    "frozen after initialisation, Sec. 4.4)",
                    grad_clip_norm=5.0,
                    phases=(Phase("weights", 1 / 3, quantize_acts=False,
                                  train_act_quantizers=False),
                            Phase("activations", 1 / 3, train_weight_quantizers=False),
                            Phase("joint", 1 / 3)),
                    ours=("lr", "lr_scratch")),
    "crelu_binary": Procedure("CReLU Sec. 4 (SGD momentum 0.9, weight decay 0 'since we no "
                              "longer encourage the weights to be close to 0'; lambda of Eq. 3 "
                              "on the clamp c)", weight_decay=0.0,
                              clip_decay=DIGITS_CLIP_DECAY, act_clip_init="max",
                              ours=("lr", "lr_scratch", "clip_decay", "act_clip_init")),
    "dorefa": Procedure("DoReFa (fixed quantizers; SGD as our FP baseline)"),
    "wrpn": Procedure("WRPN Sec. 3 (2x wide layers, trained from scratch with the first and last "
                      "layers in full precision)", width=2, from_scratch=True),
}


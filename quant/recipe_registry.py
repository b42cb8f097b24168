"""The registry of named quantization recipes (:func:`recipes`, :func:`get_recipe`);
:func:`quant.recipes.quantize` applies one to a float model.

A recipe is a small frozen record with a grammar, not code: which quantizer (if any) the
weights get, which the activations get and WHERE (``"relu"``: a :class:`QuantAct` replaces each
ReLU/ReLU6 and quantizes its output, as PACT, CReLU, DoReFa, WRPN, LLSQ and QN do; ``"input"``:
an input quantizer on every conv/linear, as LSQ does), and the defaults for the first/last
layers and the shortcuts. ``pact_sawb`` = PACT activations + SAWB weights, and so on.

======================  ==================  ==================  =========  ===========  ========
recipe                  weights             activations         site       first/last   shortcut
======================  ==================  ==================  =========  ===========  ========
fp32                    -                   -                   -          fp           -
pact                    - (W32-Ap, Tab. 3)  PACT                relu       fp           w_bits
sawb                    SAWB (even grid)    - (Ws-A32, Tab. 3)  -          fp           w_bits
pact_sawb               SAWB                PACT                relu       fp           w_bits
pact_sawb_fpsc          SAWB                PACT                relu       fp           32 (fp)
lsq                     LSQ                 LSQ                 input      8 bits       w_bits
llsq                    LLSQ                LLSQ                relu       fp           w_bits
llsqf                   LLSQ                LLSQ                relu       w/a bits     w_bits
qn                      QN                  QN                  relu       fp           w_bits
crelu_binary            m-level binary      CReLU               relu       fp           w_bits
dorefa                  DoReFa              DoReFa              relu       fp           w_bits
wrpn                    WRPN                WRPN                relu       fp           w_bits
======================  ==================  ==================  =========  ===========  ========

Bits equal to 32 mean "leave that tensor in full precision": ``quantize(m, "pact_sawb",
w_bits=32, a_bits=2)`` is Table 3's W32-Ap2 row. For ``crelu_binary`` ``w_bits`` is the number
m of binary levels. ``pact_sawb_fpsc`` keeps the shortcut convs' weights AND inputs in full
precision (PACT-SAWB Sec. 5): a ReLU that feeds a shortcut stays a ReLU and its PACT quantizer
moves to the inputs of the other layers reading it.

Every recipe also carries its training procedure (``Recipe.procedure``, quant/procedure.py):
optimizer, learning rate, weight and clip decay, phases, gradient clipping and the network
WIDTH. ``quantize`` works on the model it is given; WRPN's 2x-wide network is built from the
procedure (``workloads.zoo.get(name, width=get_recipe("wrpn").procedure.width)``, as
``quant.train`` does), and ``wrpn`` rescales each quantized layer's latent weights once onto
its scale-free grid (``Recipe.rescale_weights``, see quant/methods/wrpn.py).
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any, Literal

from quant.methods.base import Quantizer
from quant.procedure import PROCEDURES, Procedure

__all__ = ["FP_BITS", "SHORTCUT_KEYS", "MethodSpec", "Recipe", "get_recipe", "recipes"]

FP_BITS = 32
"""Bits value meaning "not quantized"."""

SHORTCUT_KEYS = ("shortcut", "downsample")
"""A conv/linear whose qualified name contains one of these is a shortcut (zoo: ``.shortcut``;
torchvision: ``.downsample``)."""


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """How to build one quantizer: ``module.cls(bits, **kwargs)`` (or ``cls(**{bits_kw: bits})``).

    The class is imported lazily, so a recipe of a method whose module is missing fails only
    when used.
    """

    module: str
    cls: str
    kwargs: tuple[tuple[str, Any], ...] = ()
    bits_kw: str | None = None
    exception_kwargs: tuple[int, tuple[tuple[str, Any], ...]] | None = None
    """``(max_bits, kwargs)``: extra kwargs for a per-layer exception (first/last, shortcut,
    override) above ``max_bits``, e.g. SAWB switches to the MSE search it approximates."""

    def build(self, bits: int, *, exception: bool = False, **extra: Any) -> Quantizer:
        klass = getattr(importlib.import_module(self.module), self.cls)
        kw = {**dict(self.kwargs), **extra}
        if exception and self.exception_kwargs and bits > self.exception_kwargs[0]:
            kw.update(dict(self.exception_kwargs[1]))
        q = klass(**{self.bits_kw: bits}, **kw) if self.bits_kw else klass(bits, **kw)
        if not isinstance(q, Quantizer):  # pragma: no cover - invariant of the registry
            raise TypeError(f"{self.module}.{self.cls} is not a Quantizer")
        return q


@dataclass(frozen=True, slots=True)
class Recipe:
    """A named rule set for :func:`quantize` (see the module docstring for the table).

    Attributes:
        weight: quantizer of conv/linear weights, None = weights stay full precision.
        act: activation quantizer, None = activations stay full precision.
        act_site: ``"relu"`` (QuantAct replaces ReLU/ReLU6) or ``"input"`` (conv/linear input).
        keep_relu: with ``"relu"``, keep the ReLU before the quantizer (for quantizers that do
            not clip at zero themselves).
        first_last: default precision of the first and last compute layers: ``"fp"``,
            ``"same"`` (w_bits/a_bits) or a bit width.
        first_input: with ``"relu"``, kwargs of an input quantizer (built from ``act``) put on a
            quantized FIRST layer's input (the image); None = the image is not quantized.
        shortcut_bits: default bits of shortcut layers, None = like the other layers.
        rescale_weights: multiply the latent weights of every layer with a weight quantizer,
            once, by that quantizer's ``weight_gain(w)``, for a fixed grid without a scale
            factor (WRPN: its grid only covers weights in [-1, 1]; a BN after the conv absorbs
            the gain, see quant/methods/wrpn.py).
        fp_shortcut_inputs: shortcut convs read the full-precision activation (PACT-SAWB
            Sec. 5, "-fpsc"): an activation quantizer whose output feeds a shortcut moves to
            the inputs of its other consumers, so the shortcut sees the unquantized ReLU.
        procedure: how the recipe is trained (:mod:`quant.procedure`): optimizer, learning
            rate, weight and clip decay, phases, gradient clipping, width.
    """

    name: str
    description: str
    weight: MethodSpec | None = None
    act: MethodSpec | None = None
    act_site: Literal["relu", "input"] = "relu"
    keep_relu: bool = False
    first_last: Literal["fp", "same"] | int = "fp"
    first_input: tuple[tuple[str, Any], ...] | None = None
    shortcut_bits: int | None = None
    rescale_weights: bool = False
    fp_shortcut_inputs: bool = False
    procedure: Procedure = PROCEDURES["fp32"]


_PACT = MethodSpec("quant.methods.pact", "PACT")
_SAWB = MethodSpec("quant.methods.sawb", "SAWB", exception_kwargs=(4, (("method", "mse"),)))
_LLSQ_W = MethodSpec("quant.methods.llsq", "LLSQWeightQuantizer")
_LLSQ_A = MethodSpec("quant.methods.llsq", "LLSQActQuantizer")

_RECIPES: dict[str, Recipe] = {
    r.name: dataclasses.replace(r, procedure=PROCEDURES[r.name])
    for r in (
        Recipe("fp32", "full precision (deep copy, nothing quantized)"),
        Recipe("pact", "PACT activations, full-precision weights (Table 3 W32-Ap)", act=_PACT),
        Recipe("sawb", "SAWB weights, full-precision activations (Table 3 Ws-A32)",
               weight=_SAWB),
        Recipe("pact_sawb", "PACT activations + SAWB weights", weight=_SAWB, act=_PACT),
        Recipe("pact_sawb_fpsc", "PACT + SAWB with full-precision shortcuts (Section 5)",
               weight=_SAWB, act=_PACT, shortcut_bits=FP_BITS, fp_shortcut_inputs=True),
        Recipe("lsq", "LSQ weights and conv/linear inputs; first/last layers 8-bit (Sec. 3)",
               weight=MethodSpec("quant.methods.lsq", "LSQWeightQuantizer"),
               act=MethodSpec("quant.methods.lsq", "LSQActQuantizer", (("signed", None),)),
               act_site="input", first_last=8),
        Recipe("llsq", "LLSQ weights and activations, first/last full precision",
               weight=_LLSQ_W, act=_LLSQ_A, keep_relu=True,
               first_input=(("signed", True),)),
        Recipe("llsqf", "LLSQ on the full network, first/last layers included",
               weight=_LLSQ_W, act=_LLSQ_A, keep_relu=True, first_last="same",
               first_input=(("signed", True),)),
        Recipe("qn", "Quantization Networks weights and activations",
               weight=MethodSpec("quant.methods.qnets", "QNWeightQuantizer"),
               act=MethodSpec("quant.methods.qnets", "QNActQuantizer"), keep_relu=True),
        Recipe("crelu_binary", "m-level binary weights (m = w_bits) + CReLU activations",
               weight=MethodSpec("quant.methods.crelu", "MultiLevelBinaryWeightQuantizer",
                                 bits_kw="levels"),
               # lambda of Eq. 3 goes through the optimizer's clip group (procedure.clip_decay)
               act=MethodSpec("quant.methods.crelu", "CReLUActQuantizer",
                              (("alpha_decay", 0.0),))),
        Recipe("dorefa", "DoReFa weights (tanh) and activations (clip [0, 1])",
               weight=MethodSpec("quant.methods.dorefa", "DoReFaWeightQuantizer"),
               act=MethodSpec("quant.methods.dorefa", "DoReFaActQuantizer")),
        Recipe("wrpn", "WRPN weights (clip [-1, 1]) and activations (clip [0, 1])",
               weight=MethodSpec("quant.methods.wrpn", "WRPNWeightQuantizer"),
               act=MethodSpec("quant.methods.wrpn", "WRPNActQuantizer"),
               rescale_weights=True),
    )
}


def recipes() -> list[str]:
    """Names of the recipes :func:`quantize` accepts."""
    return list(_RECIPES)


def get_recipe(name: str) -> Recipe:
    """The :class:`Recipe` called ``name``; ValueError listing the recipes otherwise."""
    try:
        return _RECIPES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown recipe {name!r}; available: {', '.join(_RECIPES)}") from None

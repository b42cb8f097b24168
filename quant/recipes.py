"""Named quantization recipes and :func:`quantize`, which applies one to a float model.

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

import copy
import dataclasses
import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from quant.methods.base import Quantizer
from quant.modules import QuantAct, QuantConv2d, QuantLinear
from quant.procedure import PROCEDURES, Procedure

__all__ = ["FP_BITS", "MethodSpec", "Recipe", "get_recipe", "quantize", "recipes"]

log = logging.getLogger(__name__)

FP_BITS = 32
"""Bits value meaning "not quantized"."""

SHORTCUT_KEYS = ("shortcut", "downsample")
"""A conv/linear whose qualified name contains one of these is a shortcut (zoo: ``.shortcut``;
torchvision: ``.downsample``)."""

_ACTIVATIONS = (nn.ReLU, nn.ReLU6)
_COMPUTE = (nn.Conv2d, nn.Linear)

BitsOverride = int | tuple[int, int]


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


def _check(field: str, bits: object, *, optional: bool = False) -> int | None:
    if bits is None and optional:
        return None
    if isinstance(bits, bool) or not isinstance(bits, int) or not (
        1 <= bits <= 16 or bits == FP_BITS
    ):
        raise ValueError(f"{field}={bits!r} must be an int in 1..16, or {FP_BITS} for full "
                         "precision" + (", or None for the recipe default" if optional else ""))
    return bits


def _parse_override(name: str, value: object) -> tuple[int, int]:
    if isinstance(value, tuple | list) and len(value) == 2:
        w = _check(f"overrides[{name!r}][0] (w_bits)", value[0])
        a = _check(f"overrides[{name!r}][1] (a_bits)", value[1])
        return int(w), int(a)  # type: ignore[arg-type]
    if isinstance(value, int) and not isinstance(value, bool):
        b = int(_check(f"overrides[{name!r}]", value))  # type: ignore[arg-type]
        return b, b
    raise ValueError(f"overrides[{name!r}]={value!r} must be bits (int) or (w_bits, a_bits)")


def _set_module(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def _layer_bits(
    r: Recipe, role: str, wb: int, ab: int, flb: int | None, scb: int | None,
    override: BitsOverride | None, name: str,
) -> tuple[int, int, bool]:
    """(w_bits, a_bits, is_exception) of one conv/linear. Priority: override > first/last >
    shortcut > global bits. ``is_exception``: the bits were set for this layer specifically."""
    if override is not None:
        lw, la = _parse_override(name, override)
        return lw, la, True
    if role == "first_last":
        if flb is not None:
            return flb, flb, True
        if r.first_last == "same":
            return wb, ab, False
        b = FP_BITS if r.first_last == "fp" else int(r.first_last)
        return b, b, True
    if role == "shortcut":
        sb = scb if scb is not None else r.shortcut_bits
        if sb is not None:
            return sb, sb, True
    return wb, ab, False


def _build(spec: MethodSpec, bits: int, recipe: str, field: str, *, exception: bool = False,
           **extra: Any) -> Quantizer:
    try:
        return spec.build(bits, exception=exception, **extra)
    except ValueError as err:
        raise ValueError(f"recipe {recipe!r} cannot quantize {field}={bits}: {err}") from err
    except TypeError as err:  # an unknown keyword in weight_kwargs / act_kwargs
        raise ValueError(f"recipe {recipe!r}: {spec.cls} rejects the arguments {sorted(extra)}: "
                         f"{err}") from err


def quantize(
    model: nn.Module,
    recipe: str,
    w_bits: int = 2,
    a_bits: int = 2,
    first_last_bits: int | None = None,
    shortcut_bits: int | None = None,
    overrides: Mapping[str, BitsOverride] | None = None,
    *,
    weight_kwargs: Mapping[str, Any] | None = None,
    act_kwargs: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Return a quantized deep copy of ``model`` (the input is not mutated).

    Args:
        model: a float model built from ``nn.Conv2d``/``nn.Linear`` and ``nn.ReLU``/``nn.ReLU6``
            modules (functional ReLUs cannot be swapped). The first/last compute layers are the
            first/last Conv2d/Linear in ``model.modules()`` order.
        recipe: one of :func:`recipes`.
        w_bits, a_bits: bits of weights and activations (1..16, or 32 = full precision).
        first_last_bits: bits of the first and last compute layers; None = recipe default
            (full precision for most, 8 for LSQ, w_bits/a_bits for LLSQF).
        shortcut_bits: bits of shortcut convs (name contains "shortcut"/"downsample"); None =
            recipe default (32 for pact_sawb_fpsc, else w_bits). Applies to their weights and,
            with input-site recipes, their inputs. SAWB layers given more than 4 bits this way
            (or by first_last_bits/overrides) use the MSE search Eq. 7 approximates; a global
            ``w_bits`` above 4 is refused for SAWB recipes.
        overrides: per-module bits by qualified name, highest priority: for a conv/linear
            ``bits`` or ``(w_bits, a_bits)`` (a_bits = its input, input-site recipes and a
            quantized first layer), for a ReLU/ReLU6 ``bits`` of its output.
        weight_kwargs, act_kwargs: extra constructor arguments of every weight / activation
            quantizer, e.g. ``act_kwargs={"alpha_init": 4.0}`` (PACT),
            ``weight_kwargs={"grid": "with_zero"}`` (SAWB), ``act_kwargs={"mode": "log"}``
            (CReLU). A name the quantizer does not take raises ValueError.

    Raises:
        ValueError: unknown recipe, bad bits, an override naming no conv/linear/activation, or
            bits the recipe's method cannot do.
    """
    r = get_recipe(recipe)
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be an nn.Module, got {type(model)!r}")
    wb, ab = int(_check("w_bits", w_bits)), int(_check("a_bits", a_bits))  # type: ignore[arg-type]
    flb = _check("first_last_bits", first_last_bits, optional=True)
    scb = _check("shortcut_bits", shortcut_bits, optional=True)
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ValueError(f"overrides must be a mapping name -> bits, got {type(overrides)!r}")
    if any(isinstance(m, QuantConv2d | QuantLinear | QuantAct) for m in model.modules()):
        raise ValueError("model is already quantized (contains Quant* modules); pass a float model")

    for field, kw in (("weight_kwargs", weight_kwargs), ("act_kwargs", act_kwargs)):
        if kw is not None and not (isinstance(kw, Mapping) and all(isinstance(k, str) for k in kw)):
            raise ValueError(f"{field}={kw!r} must be a mapping of keyword names to values")
    wkw, akw = dict(weight_kwargs or {}), dict(act_kwargs or {})

    q = copy.deepcopy(model)
    if r.weight is None and r.act is None:
        if overrides:
            raise ValueError(f"recipe 'fp32' takes no overrides, got {sorted(overrides)}")
        return q

    # nn.MultiheadAttention reads out_proj.weight directly: swapping it would quantize nothing.
    inside_mha = {f"{n}.{c}" if n else c for n, m in q.named_modules()
                  if isinstance(m, nn.MultiheadAttention) for c, _ in m.named_children()}
    compute = [n for n, m in q.named_modules() if isinstance(m, _COMPUTE) and n not in inside_mha]
    acts = [n for n, m in q.named_modules() if isinstance(m, _ACTIVATIONS)]
    ovr = dict(overrides or {})
    unknown = sorted(set(ovr) - set(compute) - set(acts))
    if unknown:
        raise ValueError(f"overrides name no conv/linear/activation module: {unknown}; "
                         f"valid names include {(compute + acts)[:12]}")
    if not compute:
        log.warning("quantize(%s): model has no Conv2d/Linear layers", recipe)
    first, last = (compute[0], compute[-1]) if compute else (None, None)
    p0 = next(q.parameters(), None)
    device = None if p0 is None else p0.device

    shortcuts = [n for n in compute if any(k in n for k in SHORTCUT_KEYS)]
    # traced while q is still the float model (its layers are fx leaves)
    moved = _consumers_of_shortcut_inputs(q, acts, compute) \
        if r.fp_shortcut_inputs and r.act is not None and shortcuts else {}

    # ---- conv / linear layers ---------------------------------------------------------------
    for name in compute:
        role = "first_last" if name in (first, last) else (
            "shortcut" if any(k in name for k in SHORTCUT_KEYS) else "")
        lw, la, exc = _layer_bits(r, role, wb, ab, flb, scb, ovr.get(name), name)
        layer = q.get_submodule(name)
        wq = iq = None
        if r.weight is not None and lw != FP_BITS:
            wq = _build(r.weight, lw, recipe, f"w_bits of {name!r}", exception=exc, **wkw)
        if r.act is not None and la != FP_BITS:
            if r.act_site == "input":
                iq = _build(r.act, la, recipe, f"a_bits of {name!r}", **akw)
            elif name == first and r.first_input is not None:
                iq = _build(r.act, la, recipe, f"a_bits of {name!r}",
                            **{**akw, **dict(r.first_input)})
        if wq is not None and r.rescale_weights and not layer.weight.is_meta:
            # (a meta-device model, as studies trace for shapes and bits, has no values to fit)
            with torch.no_grad():  # q is our deep copy: the caller's model is not touched
                layer.weight.mul_(wq.weight_gain(layer.weight))  # type: ignore[operator]
        cls = QuantConv2d if isinstance(layer, nn.Conv2d) else QuantLinear
        _set_module(q, name, cls.from_float(layer, wq, iq))  # type: ignore[arg-type]

    # ---- activations --------------------------------------------------------------------------
    if r.act is not None and r.act_site == "relu":
        if not acts:
            log.warning("quantize(%s): no nn.ReLU/ReLU6 modules found, activations stay "
                        "full precision (functional ReLUs cannot be replaced)", recipe)
        for name in acts:
            bits = _parse_override(name, ovr[name])[1] if name in ovr else ab
            if bits == FP_BITS:
                continue
            relu = q.get_submodule(name)
            if name in moved:
                # Sec. 5 "-fpsc": the shortcut reads this ReLU's full-precision output; every
                # other reader quantizes its own input instead (same method and bits).
                for reader in moved[name]:
                    iq = _build(r.act, bits, recipe, f"a_bits of {name!r}",
                                exception=name in ovr, **akw)
                    layer = q.get_submodule(reader)
                    layer.input_quantizer = iq.to(layer.weight.device) \
                        if not layer.weight.is_meta else iq
                continue
            aq = _build(r.act, bits, recipe, f"a_bits of {name!r}", exception=name in ovr,
                        **akw)
            if device is not None:
                aq.to(device)
            _set_module(q, name, QuantAct(aq, pre=relu if r.keep_relu else None))
    return q


def _consumers_of_shortcut_inputs(model: nn.Module, acts: list[str],
                                  compute: list[str]) -> dict[str, list[str]]:
    """``{activation name: its non-shortcut reader layers}`` for every activation module whose
    output a shortcut conv reads (found with a torch.fx trace of ``model``).

    Raises ValueError when the model cannot be traced, or when such an activation also feeds
    something other than a conv/linear (its quantizer would have nowhere to go)."""
    import torch.fx

    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception as err:  # fx raises many types (TraceError, TypeError, ...)
        raise ValueError(f"full-precision shortcut inputs need a torch.fx-traceable model to "
                         f"find what each ReLU feeds; tracing failed: {err}") from err
    act_set, compute_set = set(acts), set(compute)
    out: dict[str, list[str]] = {}
    for node in graph.nodes:
        if node.op != "call_module" or node.target not in act_set:
            continue
        readers = [u.target if u.op == "call_module" else u.name for u in node.users]
        if not any(isinstance(t, str) and any(k in t for k in SHORTCUT_KEYS)
                   and t in compute_set for t in readers):
            continue
        others = [t for t in readers if not (any(k in t for k in SHORTCUT_KEYS)
                                             and t in compute_set)]
        bad = [t for t in others if t not in compute_set]
        if bad:
            raise ValueError(f"activation {node.target!r} feeds a shortcut and also {bad}, which "
                             "are not conv/linear layers: its quantizer cannot move to their "
                             "inputs; use pact_sawb with shortcut_bits=32 instead")
        out[str(node.target)] = [str(t) for t in others]
    return out

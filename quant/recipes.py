"""Applies a named quantization recipe to a float model: :func:`quantize`.

The recipes themselves (what each quantizes, where, with which method, and its training
procedure) are the registry in :mod:`quant.recipe_registry`, re-exported here: ``Recipe``,
``MethodSpec``, ``recipes()``, ``get_recipe()``, ``FP_BITS``, ``SHORTCUT_KEYS``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from quant.attention import PROJECTIONS, QuantMultiheadAttention, projection_weight
from quant.coverage import QuantizeReport, find_unquantized, warn_unquantized
from quant.ends import end_layers
from quant.methods.base import Quantizer
from quant.modules import (
    QuantAct,
    QuantConv1d,
    QuantConv2d,
    QuantConvTranspose1d,
    QuantConvTranspose2d,
    QuantLinear,
    is_quant_module,
)
from quant.recipe_registry import FP_BITS, SHORTCUT_KEYS, MethodSpec, Recipe, get_recipe, recipes

__all__ = ["FP_BITS", "MethodSpec", "Recipe", "get_recipe", "quantize", "recipes"]

log = logging.getLogger(__name__)

_ACTIVATIONS = (nn.ReLU, nn.ReLU6)
# exact swaps: see quant.coverage for the rest
_COMPUTE = (nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.Linear)


def _plain_forward(m: nn.Module) -> bool:
    """Whether ``m`` computes what its `_COMPUTE` base does. A subclass with its own ``forward``
    (a weight-standardised conv, say) is left alone - a Quant* swap would drop that forward -
    and reported as unquantized (`quant.coverage`)."""
    return any(isinstance(m, base) and type(m).forward is base.forward
               for base in (*_COMPUTE, nn.MultiheadAttention))


_QUANT_CLS = ((nn.Conv1d, QuantConv1d), (nn.Conv2d, QuantConv2d),
              (nn.ConvTranspose1d, QuantConvTranspose1d),
              (nn.ConvTranspose2d, QuantConvTranspose2d), (nn.Linear, QuantLinear))

BitsOverride = int | tuple[int, int]


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


@dataclass(frozen=True, slots=True)
class _LayerBits:
    w_bits: int
    a_bits: int
    exception: bool  # the bits were set for this layer specifically
    first: bool  # a first layer: it reads the network input


def _quantizers(r: Recipe, recipe: str, label: str, weight: torch.Tensor, bits: _LayerBits,
                wkw: dict[str, Any], akw: dict[str, Any], *, reads_input: bool = True,
                ) -> tuple[Quantizer | None, Quantizer | None]:
    """(weight quantizer, input quantizer) of one layer (or one attention projection) at
    ``bits``; WRPN's weight gain is applied to ``weight`` in place."""
    wq = iq = None
    if r.weight is not None and bits.w_bits != FP_BITS:
        wq = _build(r.weight, bits.w_bits, recipe, f"w_bits of {label!r}",
                    exception=bits.exception, **wkw)
    if r.act is not None and bits.a_bits != FP_BITS:
        if r.act_site == "input":
            iq = _build(r.act, bits.a_bits, recipe, f"a_bits of {label!r}", **akw)
        elif bits.first and reads_input and r.first_input is not None:
            iq = _build(r.act, bits.a_bits, recipe, f"a_bits of {label!r}",
                        **{**akw, **dict(r.first_input)})
    if wq is not None and r.rescale_weights and not weight.is_meta:
        # (a meta-device model, as studies trace for shapes and bits, has no values to fit)
        with torch.no_grad():  # quantize() works on its deep copy: the caller's model is untouched
            weight.mul_(wq.weight_gain(weight))  # type: ignore[operator]
    return wq, iq


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

    Every ``nn.Conv1d``/``nn.Conv2d``/``nn.ConvTranspose1d``/``nn.ConvTranspose2d``/``nn.Linear``
    becomes the ``Quant*`` layer of the same name (:mod:`quant.modules`) and, for relu-site recipes,
    every ``nn.ReLU``/``nn.ReLU6`` a ``QuantAct``; every ``nn.MultiheadAttention`` becomes a
    :class:`~quant.attention.QuantMultiheadAttention` (each projection quantized as a layer).
    Other modules with weights (LSTM/GRU/RNN, 3-d convs, embeddings, ...) stay full precision: one
    :class:`~quant.coverage.UnquantizedLayersWarning` names them, and the result's
    ``quantize_report`` (:class:`~quant.coverage.QuantizeReport`) lists what was and was not
    quantized.

    Args:
        model: a float model built from conv/transposed conv/linear and ``nn.ReLU``/
            ``nn.ReLU6`` modules (functional ReLUs cannot be swapped). The first/last layers
            are found on a torch.fx trace of the dataflow (:func:`quant.ends.end_layers`: the
            conv/linear layers that read the network input and that make an output, as the
            workload graph's roles); a model fx cannot trace falls back to the
            ``model.modules()`` order (``quantize_report.ends_found_by``).
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
    if any(is_quant_module(m) for m in model.modules()):
        raise ValueError("model is already quantized (contains Quant* modules); pass a float model")

    for field, kw in (("weight_kwargs", weight_kwargs), ("act_kwargs", act_kwargs)):
        if kw is not None and not (isinstance(kw, Mapping) and all(isinstance(k, str) for k in kw)):
            raise ValueError(f"{field}={kw!r} must be a mapping of keyword names to values")
    wkw, akw = dict(weight_kwargs or {}), dict(act_kwargs or {})

    q = copy.deepcopy(model)
    if r.weight is None and r.act is None:
        if overrides:
            raise ValueError(f"recipe 'fp32' takes no overrides, got {sorted(overrides)}")
        q.quantize_report = QuantizeReport(recipe, (), (), ())  # nothing asked, nothing left
        return q

    # nn.MultiheadAttention reads out_proj.weight directly: it is swapped whole (its four
    # projections quantized by QuantMultiheadAttention), never its out_proj alone.
    inside_mha = {f"{n}.{c}" if n else c for n, m in q.named_modules()
                  if isinstance(m, nn.MultiheadAttention) for c, _ in m.named_children()}
    compute = [n for n, m in q.named_modules() if n not in inside_mha and _plain_forward(m)]
    acts = [n for n, m in q.named_modules() if isinstance(m, _ACTIVATIONS)]
    ovr = dict(overrides or {})
    unknown = sorted(set(ovr) - set(compute) - set(acts))
    if unknown:
        raise ValueError(f"overrides name no conv/linear/activation module: {unknown}; "
                         f"valid names include {(compute + acts)[:12]}")
    if not compute:
        log.warning("quantize(%s): model has no conv or linear layers to swap", recipe)
    ends = end_layers(q, compute)  # traced while q is still the float model
    if ends.found_by != "graph" and (flb is not None or r.first_last != "same"
                                     or r.first_input is not None):
        log.warning("quantize(%s): first/last layers %s taken by %s", recipe,
                    sorted({*ends.first, *ends.last}), ends.found_by)
    p0 = next(q.parameters(), None)
    device = None if p0 is None else p0.device

    shortcuts = [n for n in compute if any(k in n for k in SHORTCUT_KEYS)]
    # traced while q is still the float model (its layers are fx leaves)
    moved = _consumers_of_shortcut_inputs(q, acts, compute) \
        if r.fp_shortcut_inputs and r.act is not None and shortcuts else {}

    # ---- conv / linear layers ---------------------------------------------------------------
    for name in compute:
        role = "first_last" if name in ends.first or name in ends.last else (
            "shortcut" if any(k in name for k in SHORTCUT_KEYS) else "")
        lw, la, exc = _layer_bits(r, role, wb, ab, flb, scb, ovr.get(name), name)
        layer = q.get_submodule(name)
        bits = _LayerBits(lw, la, exc, name in ends.first)
        if isinstance(layer, nn.MultiheadAttention):
            wqs, iqs = {}, {}
            for part in PROJECTIONS:  # out_proj reads the context, not the network input
                wqs[part], iqs[part] = _quantizers(
                    r, recipe, f"{name}.{part}", projection_weight(layer, part), bits, wkw, akw,
                    reads_input=part != "out_proj")
            _set_module(q, name, QuantMultiheadAttention.from_float(layer, wqs, iqs))
            continue
        wq, iq = _quantizers(r, recipe, name, layer.weight, bits, wkw, akw)  # type: ignore[arg-type]
        cls = next(c for base, c in _QUANT_CLS if isinstance(layer, base))
        _set_module(q, name, cls.from_float(layer, wq, iq))  # type: ignore[attr-defined]

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
    report = QuantizeReport(
        recipe, tuple(compute),
        tuple(n for n, m in q.named_modules() if isinstance(m, QuantAct)),
        tuple(find_unquantized(q)), ends.first, ends.last, ends.found_by)
    q.quantize_report = report
    _no_fused_transformer_paths(q)
    warn_unquantized(report)  # stacklevel 3: points at the caller of quantize()
    return q


def _no_fused_transformer_paths(model: nn.Module) -> None:
    """Keep torch's Transformer encoder layers on their Python path when they hold Quant* layers.

    In eval mode under ``torch.no_grad()`` an ``nn.TransformerEncoderLayer`` runs one fused
    kernel that reads ``linear1``/``linear2``/attention weights directly, skipping every
    quantizer inside (a 2-bit LSQ encoder evaluated under no_grad returned the float
    network's outputs), and an ``nn.TransformerEncoder`` may turn padded input into a nested
    tensor for it. ``activation_relu_or_gelu`` only gates that kernel (the Python path calls
    ``activation``), and ``use_nested_tensor`` the conversion."""
    for m in model.modules():
        if not (isinstance(m, nn.TransformerEncoderLayer | nn.TransformerEncoder)
                and any(is_quant_module(s) for s in m.modules())):
            continue
        if isinstance(m, nn.TransformerEncoderLayer):
            m.activation_relu_or_gelu = 0
        else:
            m.use_nested_tensor = False


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

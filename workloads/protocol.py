"""The bits protocol: how a module tells `workloads.extract` its bit widths.

A module is *quantized* when it has an attribute ``weight_bits`` and/or ``act_bits`` (int, or None
for "not quantized by this module"). Meaning (docs/CONTRACTS.md):

* on an ``nn.Conv2d`` / ``nn.Linear`` subclass (``quant.modules.QuantConv2d``/``QuantLinear``):
  ``weight_bits`` = bits of its weights, ``act_bits`` = bits of its INPUT activations;
* on a module without weights (``quant.modules.QuantAct``, e.g. PACT replacing a ReLU):
  ``act_bits`` = bits of its OUTPUT.

The tracer keeps every such module as one fx leaf and lowers a quantized conv/linear by its
``nn.Conv2d``/``nn.Linear`` base class. This module never imports ``quant/``.

Modules of other QAT libraries speak the protocol through adapters: Brevitas layers
(`workloads.brevitas`) report the bit widths of their quantizer proxies, and a layer's own output
quantizer (`output_bits`) sets the bits of the tensor it writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from torch import nn

from workloads import brevitas

__all__ = [
    "QuantizedModule",
    "act_bits",
    "check_bits",
    "is_quantized",
    "is_quantized_activation",
    "is_quantized_layer",
    "op_kind",
    "output_bits",
    "projection_bits",
    "require_bits",
    "weight_bits",
]

_MAX_BITS = 64


@runtime_checkable
class QuantizedModule(Protocol):
    """Structural type of a quantized layer (``isinstance`` checks the attributes exist).

    ``runtime_checkable`` matches on attribute presence only, so `is_quantized` also accepts a
    module exposing just one of the two attributes.
    """

    weight_bits: int | None
    act_bits: int | None


def check_bits(value: object, field: str, allow_none: bool = False) -> int | None:
    """Validate a bit width: an int in [1, 64] (or None if ``allow_none``); return it."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_BITS:
        allowed = "an int in [1, 64]" + (" or None" if allow_none else "")
        raise ValueError(f"{field}={value!r} is invalid; expected {allowed}")
    return value


def require_bits(value: object, field: str) -> int:
    """Like `check_bits` without None: an int in [1, 64], else ValueError naming ``field``."""
    bits = check_bits(value, field)
    assert bits is not None  # invariant: check_bits returns its argument or raises
    return bits


def _attr_bits(module: nn.Module, attr: str) -> int | None:
    if not hasattr(module, attr) and brevitas.knows(module):
        value = brevitas.bits(module)[attr]
        return check_bits(value, f"{type(module).__name__} (Brevitas) {attr}", allow_none=True)
    value = getattr(module, attr, None)
    return check_bits(value, f"{type(module).__name__}.{attr}", allow_none=True)


def is_quantized(module: nn.Module) -> bool:
    """True if ``module`` speaks the bits protocol (has ``weight_bits`` or ``act_bits``, or is
    a Brevitas module the adapter knows)."""
    return hasattr(module, "weight_bits") or hasattr(module, "act_bits") or brevitas.knows(module)


def is_quantized_layer(module: nn.Module) -> bool:
    """A quantized conv/linear: protocol module that subclasses nn.Conv1d/2d or nn.Linear."""
    return is_quantized(module) and isinstance(module, nn.Conv1d | nn.Conv2d | nn.Linear)


def is_quantized_activation(module: nn.Module) -> bool:
    """A weightless protocol module (e.g. QuantAct): it quantizes its OUTPUT to ``act_bits``."""
    return is_quantized(module) and not is_quantized_layer(module) and not hasattr(
        module, "weight") and getattr(module, "weight_bits", None) is None and not isinstance(
        module, nn.MultiheadAttention)


def projection_bits(module: nn.Module, part: str) -> tuple[int | None, int | None]:
    """(weight bits, input bits) of projection ``part`` ("q_proj", "k_proj", "v_proj",
    "out_proj") of an attention module that declares ``projection_bits`` (a mapping part ->
    (weight bits, input bits), ``quant.attention.QuantMultiheadAttention``); (None, None) for
    one that does not."""
    table = getattr(module, "projection_bits", None)
    if table is None:
        return None, None
    name = f"{type(module).__name__}.projection_bits"
    if not isinstance(table, Mapping):
        raise ValueError(f"{name}={table!r} is invalid; expected a mapping of projection name "
                         "to (weight bits, input bits)")
    pair = table.get(part, (None, None))
    if not (isinstance(pair, tuple | list) and len(pair) == 2):
        raise ValueError(f"{name}[{part!r}]={pair!r} is invalid; expected (weight bits, "
                         "input bits)")
    w, a = pair
    name = f"{name}[{part!r}]"
    return (check_bits(w, f"{name} weight bits", allow_none=True),
            check_bits(a, f"{name} input bits", allow_none=True))


def weight_bits(module: nn.Module) -> int | None:
    """Bits of the module's weights, or None if it does not quantize them."""
    return _attr_bits(module, "weight_bits")


def act_bits(module: nn.Module) -> int | None:
    """``act_bits`` of the module (input bits for a layer, output bits for an activation)."""
    return _attr_bits(module, "act_bits")


def output_bits(module: nn.Module) -> int | None:
    """Bits a quantized layer's own output quantizer writes (attribute ``output_bits``, or a
    Brevitas ``output_quant``); None if its output is not quantized by the layer itself."""
    return _attr_bits(module, "output_bits")


def op_kind(module: nn.Module) -> str | None:
    """For a weightless quantized module that is not element-wise (a Brevitas QuantEltwiseAdd,
    QuantCat or TruncAvgPool2d): its op kind ('add', 'concat', 'pool'); else None."""
    return brevitas.kind(module)

"""`extract`: the one entry point from a PyTorch model to a `Workload`."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from torch import nn

from workloads.graph import Workload
from workloads.lower import lower
from workloads.protocol import check_bits
from workloads.trace import check_input_shape, propagate_shapes, trace
from workloads.unsupported import IgnoreSpec, check_ignore

__all__ = ["extract"]

log = logging.getLogger(__name__)


def extract(model: nn.Module, input_shape: Sequence[int] = (3, 224, 224), batch: int = 1,
            default_bits: int = 16, overrides: Mapping[str, Any] | None = None, name: str = "",
            *, concrete_args: dict[str, Any] | None = None,
            leaf_modules: Iterable[str | type[nn.Module]] = (),
            ignore_unsupported: IgnoreSpec = False) -> Workload:
    """Trace ``model`` and lower it to a `Workload` for ``batch`` images of ``input_shape``.

    Pipeline: torch.fx symbolic trace (quantizer-protocol modules and Conv/Linear subclasses are
    leaves) -> one forward pass recording shapes -> lowering passes (`workloads.lower`): build,
    collapse views, fuse BN/activations, bits, roles -> `Workload` (checked).

    Bits (all ints in [1, 64]):

    * ``w_bits`` of a conv/linear: the module's ``weight_bits`` (bits protocol) if set, else
      ``default_bits``.
    * ``a_bits`` (its INPUT): the module's ``act_bits`` if set; else the bits of a quantized
      activation (``QuantAct``) that feeds it, directly or through pooling/concat (of chained
      quantizers the last; of an op with two inputs, a matmul, the wider input's, and
      ``default_bits`` if one input has no quantizer); else ``default_bits``.
    * ``o_bits`` (how its OUTPUT is stored): a quantized activation fused on the output sets it;
      otherwise the tensor is stored at the highest precision any reader needs. A compute reader
      needs its ``a_bits`` (the producer's epilogue requantizes), or ``default_bits`` if it first
      applies a BN to the raw value (a pre-activation prologue); max-pool, concat and ReLU-like
      readers commute with quantization (they need their own ``o_bits``); add, average pooling,
      BN and quantizers read raw values (``default_bits``); the network output needs the wider
      of the last layer's ``w_bits`` and ``a_bits``. Quantizer bits pass through max-pooling and
      concat (values stay on the grid), not through averaging or adds. Memory-only ops read at
      the ``o_bits`` of their producers.
    * ``overrides`` by layer name, applied last: an int sets w_bits and a_bits of a compute layer
      (o_bits of a memory op), ``(w, a)`` a compute layer's pair, a dict any of
      ``w_bits``/``a_bits``/``o_bits``. Layer names are module names (``layer1.0.conv1``);
      functional ops keep their fx name (``add_3``).

    ``concrete_args`` / ``leaf_modules`` are passed to the tracer (see `workloads.trace`).

    Ops whose arithmetic qdse does not model (``torch.fft.fft``, ``cumsum``, a torch.nn module
    with parameters other than those `workloads.ops.MODELLED_MODULES` lists) raise `ExtractError`
    naming each of them, unless ``ignore_unsupported`` is True or lists their names: then each
    is kept as a memory-only ``other`` op (``meta["unsupported"]``) and `Workload.summary` lists
    it under "ignored". A parameter-free module the caller made a leaf is such an op too.
    Raises ValueError (``workloads.trace.ExtractError`` for trace/shape failures) naming the
    field or module at fault and the fix.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch={batch!r} is invalid; expected an int >= 1")
    check_bits(default_bits, "default_bits")
    ignore = check_ignore(ignore_unsupported)
    if not isinstance(name, str):
        raise ValueError(f"name={name!r} is invalid; expected a str")
    t0 = time.perf_counter()
    gm = trace(model, concrete_args=concrete_args, leaf_modules=leaf_modules)
    check_input_shape(gm, model, input_shape)
    shape = tuple(int(d) for d in input_shape)
    propagate_shapes(gm, model, shape, batch, concrete_args)
    wl = lower(gm, model, batch=batch, input_shape=shape, default_bits=default_bits,
               overrides=overrides, name=name or type(model).__name__, ignore_unsupported=ignore)
    log.info("extracted %r in %.3f s: %d ops, %.3f GMACs", wl.name, time.perf_counter() - t0,
             len(wl), wl.total_macs / 1e9)
    return wl
